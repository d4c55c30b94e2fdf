//! Every classical method on a simulated part read back through the recording reader:
//! the shallow hole and the surface spot are found, and the sound area stays mostly
//! quiet; a defect-free plate gets few false calls.

use tqc_data::sequence::{ReadOptions, Sequence};
use tqc_data::specimen::Specimen;
use tqc_eval::baseline::{self, Method, Params};
use tqc_eval::score::{Footprint, evaluate};
use tqc_sim::simulate_to_dir;

const PART: &str = include_str!("../../fixtures/small-part.toml");

#[test]
fn every_method_finds_the_shallow_hole_and_the_surface_spot() {
    let spec = Specimen::parse(PART, "part.toml").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (scene, _, _) = simulate_to_dir(&spec, 11, tqc_sim::WallClock::Record, dir.path(), |_, _| {}).unwrap();
    let seq = Sequence::open(dir.path(), &ReadOptions::default()).unwrap();
    let labels = seq.labels.clone().unwrap();
    let footprints: Vec<Footprint> = scene
        .defects
        .iter()
        .map(|d| Footprint {
            name: d.name.clone(),
            class: d.class,
            depth_mm: d.depth_mm,
            pixels: d.pixels.clone(),
        })
        .collect();
    for method in [Method::Contrast, Method::Pct, Method::Ppt, Method::Tsr] {
        let params = Params {
            start_s: 5.0,
            threshold: 4.0,
            tsr_degree: 5,
            components: 4,
        };
        let out = baseline::run(&seq, method, &params).unwrap();
        assert_eq!(out.map.len(), 40 * 30);
        assert!(!out.images.is_empty());
        let e = evaluate(&out.map, &labels, &footprints, None);
        assert!(e.defects[0].found, "{method:?} missed the hole: {:?}", e.defects[0]);
        if method == Method::Contrast {
            // Only the contrast sees amplitude: PCT standardizes every pixel's history,
            // TSR and PPT look at the shape of the cooling, and an absorptivity or
            // emissivity spot only scales it.
            assert!(
                e.defects[1].found,
                "{method:?} missed the surface spot: {:?}",
                e.defects[1]
            );
        }
        let sound = labels.iter().filter(|&&l| l == 0).count();
        assert!(
            e.false_call_pixels * 10 < sound,
            "{method:?}: {} false calls of {sound}",
            e.false_call_pixels
        );
    }
    // Too short a window is an error, not a guess.
    let params = Params {
        start_s: 1000.0,
        threshold: 4.0,
        tsr_degree: 5,
        components: 4,
    };
    assert!(baseline::run(&seq, Method::Tsr, &params).is_err());
}

/// The shared feature extractor on a simulated part: the hole cools slower than sound
/// material (shape channels), the surface spot stands out in amplitude only.
#[test]
fn shared_features_separate_the_defects() {
    use tqc_eval::features::feature_image;
    use tqc_shared::features::FeatureSpec;
    let spec = Specimen::parse(PART, "part.toml").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (scene, _, _) = simulate_to_dir(&spec, 3, tqc_sim::WallClock::Record, dir.path(), |_, _| {}).unwrap();
    let seq = Sequence::open(dir.path(), &ReadOptions::default()).unwrap();
    let fspec = FeatureSpec::log_spaced(5_000, 35_000, 5, 100).unwrap();
    let quant = tqc_eval::features::FEATURE_QUANT;
    let (image, acquisition) = feature_image(&seq, &fspec, quant).unwrap();
    assert_eq!(acquisition.saturated, 0);
    assert!(acquisition.frames > 0 && acquisition.frames as usize <= seq.frames);
    assert!(acquisition.median_rise_ck >= 50, "{acquisition:?}");
    assert_eq!(image.len(), seq.pixels() * 5);
    let labels = seq.labels.as_ref().unwrap();
    let mean = |idx: &[usize], c: usize| idx.iter().map(|&p| image[p * 5 + c] as f64).sum::<f64>() / idx.len() as f64;
    let sound: Vec<usize> = (0..seq.pixels()).filter(|&p| labels[p] == 0).collect();
    let (hole, spot) = (&scene.defects[0].pixels, &scene.defects[1].pixels);
    // Late shape channel: the hole keeps more of its rise.
    assert!(
        mean(hole, 4) > mean(&sound, 4) + 3.0,
        "hole {} sound {}",
        mean(hole, 4),
        mean(&sound, 4)
    );
    // Amplitude channel: the spot absorbs 10 % more.
    assert!(
        mean(spot, 0) > mean(&sound, 0) + 3.0,
        "spot {} sound {}",
        mean(spot, 0),
        mean(&sound, 0)
    );
    // …and its cooling shape is close to that of sound material: changed about ten times
    // less than the hole's (its extra heat spreads sideways a little).
    let (spot_shape, hole_shape) = ((mean(spot, 4) - mean(&sound, 4)).abs(), mean(hole, 4) - mean(&sound, 4));
    let spot_amplitude = mean(spot, 0) - mean(&sound, 0);
    assert!(
        spot_shape < 0.15 * hole_shape && spot_amplitude > 3.0,
        "spot shape {spot_shape}, hole shape {hole_shape}, spot amplitude {spot_amplitude}"
    );
    // A schedule longer than the recording is an error, not a guess.
    let long = FeatureSpec::log_spaced(5_000, 500_000, 5, 100).unwrap();
    assert!(feature_image(&seq, &long, quant).is_err());
}
