//! `simulate_to_dir` end to end on a small part: files, shapes, ground truth,
//! determinism, and a defect that shows where and when physics says it should.

use std::path::Path;

use npyz::NpyFile;
use tqc_data::specimen::Specimen;
use tqc_sim::scene::{SOUND, SUBSURFACE, SURFACE};
use tqc_sim::simulate_to_dir;

const SMALL: &str = include_str!("../../fixtures/small-part.toml");

fn read<T: npyz::Deserialize>(path: &Path) -> (Vec<u64>, Vec<T>) {
    let file = NpyFile::new(std::fs::File::open(path).unwrap()).unwrap();
    let shape = file.shape().to_vec();
    (shape, file.into_vec::<T>().unwrap())
}

#[test]
fn writes_a_complete_deterministic_recording() {
    let spec = Specimen::parse(SMALL, "small.toml").unwrap();
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let c = tempfile::tempdir().unwrap();
    let (scene, stats, _) = simulate_to_dir(&spec, 7, tqc_sim::WallClock::Record, a.path(), |_, _| {}).unwrap();
    simulate_to_dir(&spec, 7, tqc_sim::WallClock::Record, b.path(), |_, _| {}).unwrap();
    simulate_to_dir(&spec, 8, tqc_sim::WallClock::Record, c.path(), |_, _| {}).unwrap();

    let (shape, seq) = read::<f32>(&a.path().join("sequence.npy"));
    assert_eq!(shape, vec![4 + 81, 30, 40]);
    assert_eq!(stats.frames, 85);
    let (tshape, times) = read::<f64>(&a.path().join("times.npy"));
    assert_eq!(tshape, vec![85]);
    assert!(times.windows(2).all(|w| w[1] > w[0]));
    assert_eq!(times[0], -2.0);
    assert_eq!(times[4], 0.0);
    assert_eq!(*times.last().unwrap(), 40.0);
    let (lshape, labels) = read::<u8>(&a.path().join("labels.npy"));
    assert_eq!(lshape, vec![30, 40]);
    let (_, depth) = read::<f32>(&a.path().join("depth.npy"));
    for (l, d) in labels.iter().zip(&depth) {
        match *l {
            SOUND => assert!(d.is_nan()),
            SUBSURFACE => assert_eq!(*d, 1.5),
            SURFACE => assert_eq!(*d, 0.0),
            other => panic!("label {other}"),
        }
    }
    // A 16 mm hole on 2 mm pixels covers about π·4² ≈ 50 pixels; a 10 mm spot about 20.
    let holes = labels.iter().filter(|&&l| l == SUBSURFACE).count();
    let spots = labels.iter().filter(|&&l| l == SURFACE).count();
    assert!((40..=60).contains(&holes), "{holes} hole pixels");
    assert!((14..=26).contains(&spots), "{spots} surface pixels");
    let meta = tqc_data::RecordingMeta::read(a.path()).unwrap();
    assert_eq!(meta.seed, 7);
    assert_eq!(meta.specimen.name, "small");
    // No temporary file left behind.
    assert!(
        std::fs::read_dir(a.path())
            .unwrap()
            .all(|e| !e.unwrap().file_name().to_string_lossy().ends_with(".partial"))
    );

    // Same seed, same bytes; another seed, other noise.
    assert_eq!(
        std::fs::read(a.path().join("sequence.npy")).unwrap(),
        std::fs::read(b.path().join("sequence.npy")).unwrap()
    );
    assert_ne!(
        std::fs::read(a.path().join("sequence.npy")).unwrap(),
        std::fs::read(c.path().join("sequence.npy")).unwrap()
    );

    // Physics: pre-heating frames sit at ambient (within noise); the hole (1.5 mm deep,
    // t ≈ z²/α ≈ 13 s) is warmer than its surroundings after the heating.
    let px = 30 * 40;
    let ambient = 293.15f32;
    let pre_mean: f32 = seq[..4 * px].iter().sum::<f32>() / (4 * px) as f32;
    assert!((pre_mean - ambient).abs() < 0.05, "pre-heating mean {pre_mean}");
    let hole = &scene.defects[0];
    let frame = |k: usize| &seq[k * px..(k + 1) * px];
    let mean = |f: &[f32], idx: &[usize]| idx.iter().map(|&i| f[i]).sum::<f32>() / idx.len() as f32;
    let contrast = |k: usize| mean(frame(k), &hole.pixels) - mean(frame(k), &hole.ring);
    let (peak_k, peak) = (14..85)
        .map(|k| (k, contrast(k)))
        .fold((0, f32::MIN), |a, b| if b.1 > a.1 { b } else { a });
    let t_peak = times[peak_k];
    assert!(peak > 0.5, "hole contrast peaks at {peak} K");
    assert!((8.0..30.0).contains(&t_peak), "hole contrast peaks at {t_peak} s");
    assert!(stats.cell_updates_per_s.is_some_and(|r| r > 0.0));
}

#[test]
fn a_bad_specimen_is_rejected_before_anything_is_written() {
    let text = SMALL.replace("depth_mm = 1.5", "depth_mm = 7.0");
    let err = Specimen::parse(&text, "small.toml").unwrap_err().to_string();
    assert!(err.contains("hole[0].depth_mm"), "{err}");
}
