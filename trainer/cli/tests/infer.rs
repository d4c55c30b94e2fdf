//! The host twin (`trainer infer`) on a recording: outputs, agreement with the engine on
//! the same features, and clear errors for bad input — wrong frame size, a recording too
//! short for the schedule, a blob of another format version, NaN frames.

use std::path::Path;
use std::process::Command;
use tqc_shared::inspection::AcquisitionLimits;

use burn::backend::NdArray;
use npyz::WriterBuilder;
use tqc_data::sequence::Sequence;
use tqc_data::specimen::Specimen;
use tqc_eval::infer::{infer, run_features};
use tqc_learn::cnn::{ThermoNet, load_sample};
use tqc_learn::export::export;
use tqc_learn::export::fold::FloatNet;
use tqc_shared::features::FeatureSpec;
use tqc_shared::model::QuantParams;
use tqc_shared::verdict::VerdictConfig;
use tqc_sim::simulate_to_dir;

/// The trainer's own input quantization.
const QUANT: QuantParams = tqc_eval::features::FEATURE_QUANT;

struct Setup {
    _tmp: tempfile::TempDir,
    plate: std::path::PathBuf,
    blob: std::path::PathBuf,
    blob_bytes: Vec<u8>,
}

/// A small simulated plate and an (untrained, but valid) inspection model for it.
fn setup() -> Setup {
    let tmp = tempfile::tempdir().unwrap();
    let plate = tmp.path().join("plate");
    let s = Specimen::parse(include_str!("../../fixtures/small-part.toml"), "small.toml").unwrap();
    simulate_to_dir(&s, 3, tqc_sim::WallClock::Record, &plate, |_, _| {}).unwrap();
    let spec = FeatureSpec::log_spaced(6_000, 34_000, 4, 100).unwrap();
    let sample = load_sample(&plate, &spec, QUANT).unwrap();
    let net = FloatNet::from_burn(&ThermoNet::<NdArray<f32>>::new(4, 6, 0.0, false, &Default::default()));
    let a = export(
        &net,
        std::slice::from_ref(&sample),
        QUANT,
        spec,
        "tiny",
        &tmp.path().join("model"),
    )
    .unwrap();
    Setup {
        plate,
        blob: a.blob.clone(),
        blob_bytes: a.blob_bytes,
        _tmp: tmp,
    }
}

/// `trainer infer` with `model` on `plate` into `out`, which must succeed.
fn trainer_infer(model: &Path, plate: &Path, out: &Path, extra: &[&str]) {
    let status = Command::new(env!("CARGO_BIN_EXE_trainer"))
        .arg("infer")
        .args(extra)
        .arg("--model")
        .arg(model)
        .arg("--sequence")
        .arg(plate)
        .arg("--out")
        .arg(out)
        .status()
        .unwrap();
    assert!(status.success());
}

fn read_npy<T: npyz::Deserialize>(path: &Path) -> Vec<T> {
    npyz::NpyFile::new(std::fs::read(path).unwrap().as_slice())
        .unwrap()
        .into_vec()
        .unwrap()
}

fn write_f32_npy(path: &Path, shape: &[u64], data: &[f32]) {
    let mut w = npyz::WriteOptions::<f32>::new()
        .default_dtype()
        .shape(shape)
        .writer(std::io::BufWriter::new(std::fs::File::create(path).unwrap()))
        .begin_nd()
        .unwrap();
    w.extend(data.iter().copied()).unwrap();
    w.finish().unwrap();
}

#[test]
fn infer_writes_the_device_bytes_and_a_verdict() {
    let s = setup();
    let seq = Sequence::open(&s.plate, &Default::default()).unwrap();
    let out = infer(
        &s.blob_bytes,
        &seq,
        &VerdictConfig::DEFAULT,
        &AcquisitionLimits::DEFAULT,
    )
    .unwrap();
    let (logits, classes) = run_features(&s.blob_bytes, &out.features).unwrap();
    assert_eq!((logits, classes), (out.logits.clone(), out.classes.clone()));
    assert_eq!(out.classes.len(), 40 * 30);
    let dir = s.plate.parent().unwrap().join("infer");
    trainer_infer(&s.blob, &s.plate, &dir, &[]);
    let classes: Vec<u8> = read_npy(&dir.join("classes.npy"));
    assert_eq!(classes, out.classes, "the CLI writes the twin's bytes");
    let verdict = tqc_data::VerdictFile::read(&dir).unwrap();
    assert_eq!(verdict.verdict, out.findings.verdict);
    assert_eq!(verdict.region_count, out.findings.region_count);
    // The file says the verdict as the LED does.
    let text = std::fs::read_to_string(dir.join("verdict.json")).unwrap();
    let expected = format!("{:?}", out.findings.verdict).to_uppercase();
    assert!(text.contains(&format!("\"verdict\": \"{expected}\"")), "{text}");
    assert!(std::fs::metadata(dir.join("overlay.png")).unwrap().len() > 1000);
}

/// A model with a depth output (seeded weights, the setup's features): `trainer infer`
/// writes the depth map, each in-depth region's median depth and, on a simulated plate,
/// each true defect's estimated depth — the same figures the host twin computes.
#[test]
fn a_depth_output_gives_depths_per_region_and_per_true_defect() {
    use tqc_shared::quant::Activation;
    use tqc_shared::tensor::Padding;
    let s = setup();
    let input = tqc_shared::blob::decode(&s.blob_bytes).unwrap().desc.input.clone();
    let mut g = tests::graph::GraphBuilder::new(input.shape);
    let h = g.conv(0, 3, 1, Padding::Same, 6, Activation::Relu).unwrap();
    let classes = g.conv(h, 1, 1, Padding::Same, 3, Activation::None).unwrap();
    let depth = g.conv(h, 1, 1, Padding::Same, 1, Activation::None).unwrap();
    let mut model = g.build_for("depth", &[classes, depth], 5, Some(input)).unwrap();
    model.classes = vec!["sound".into(), "subsurface".into(), "surface".into()];
    let blob = model.to_blob().unwrap();
    let path = s.plate.parent().unwrap().join("depth.tqm");
    std::fs::write(&path, &blob).unwrap();
    let seq = Sequence::open(&s.plate, &Default::default()).unwrap();
    let out = infer(
        &blob,
        &seq,
        &VerdictConfig { min_region_pixels: 1 },
        &AcquisitionLimits::DEFAULT,
    )
    .unwrap();
    let (codes, quant) = out.depth.clone().expect("a depth output");
    assert!(out.findings.regions.iter().all(|r| r.depth_um.is_some()));
    let dir = s.plate.parent().unwrap().join("infer-depth");
    trainer_infer(&path, &s.plate, &dir, &["--min-region-pixels", "1"]);
    let mm: Vec<f32> = read_npy(&dir.join("depth_mm.npy"));
    let want: Vec<f32> = codes
        .iter()
        .map(|&c| quant.scale * (i32::from(c) - i32::from(quant.zero_point)) as f32)
        .collect();
    assert_eq!(mm, want);
    let verdict = tqc_data::VerdictFile::read(&dir).unwrap();
    assert!(!verdict.regions.is_empty(), "the seeded model flags something");
    for (entry, region) in verdict.regions.iter().zip(&out.findings.regions) {
        assert_eq!(entry.depth_mm, region.depth_mm().map(f64::from));
    }
    // A found true defect carries the depth of a region that covers it.
    let truth = verdict.truth.expect("a simulated plate has its truth");
    let region_depths: Vec<Option<f64>> = verdict.regions.iter().map(|r| r.depth_mm).collect();
    for d in &truth.defects {
        if let Some(e) = d.estimated_depth_mm {
            assert!(d.flagged_pixels > 0 && region_depths.contains(&Some(e)), "{d:?}");
            assert_eq!(d.class, "subsurface", "only in-depth defects get a depth: {d:?}");
        }
    }
    assert!(
        truth.defects.iter().any(|d| d.estimated_depth_mm.is_some()),
        "{truth:?}"
    );
}

#[test]
fn bad_inputs_are_named_errors() {
    let s = setup();
    let seq = Sequence::open(&s.plate, &Default::default()).unwrap();

    // Frames of another camera: the fully convolutional network runs on them as the one
    // built for that size would.
    let mut small = seq.clone();
    small.width = 20;
    small.data = (0..seq.frames)
        .flat_map(|k| {
            seq.frame(k)
                .chunks(seq.width)
                .flat_map(|row| row[..20].to_vec())
                .collect::<Vec<_>>()
        })
        .collect();
    let out = infer(
        &s.blob_bytes,
        &small,
        &VerdictConfig::DEFAULT,
        &AcquisitionLimits::DEFAULT,
    )
    .unwrap();
    assert_eq!(
        (out.height, out.width, out.classes.len()),
        (seq.height, 20, seq.height * 20)
    );
    let model = tqc_shared::blob::decode(&s.blob_bytes).unwrap();
    let resized = model.resized(seq.height as u16, 20).unwrap();
    let (logits, classes) = tqc_eval::infer::run_model(&resized, &out.features).unwrap();
    assert_eq!((logits, classes), (out.logits.clone(), out.classes.clone()));

    // A recording that ends before the last sample time.
    let mut short = seq.clone();
    let keep = seq.times.iter().position(|&t| t > 20.0).unwrap();
    short.frames = keep;
    short.times.truncate(keep);
    short.data.truncate(keep * seq.pixels());
    let e = infer(
        &s.blob_bytes,
        &short,
        &VerdictConfig::DEFAULT,
        &AcquisitionLimits::DEFAULT,
    )
    .unwrap_err();
    // The whole chain, as the CLI prints it.
    let e = format!("{:#}", anyhow::Error::new(e));
    assert!(e.contains("ended before sample"), "{e}");
    assert_eq!(e.matches("ended before sample").count(), 1, "said once: {e}");

    // A blob of another format version.
    let mut other = s.blob_bytes.clone();
    other[4] = other[4].wrapping_add(1);
    let e = infer(&other, &seq, &VerdictConfig::DEFAULT, &AcquisitionLimits::DEFAULT).unwrap_err();
    let e = format!("{:#}", anyhow::Error::new(e));
    assert!(e.contains("format version"), "{e}");
    assert_eq!(e.matches("format version").count(), 1, "said once: {e}");

    // NaN in a frame: the reader names the frame, the CLI fails without writing a verdict.
    let dir = s.plate.parent().unwrap().join("nan");
    std::fs::create_dir_all(&dir).unwrap();
    let mut data = seq.data.clone();
    data[7 * seq.pixels() + 5] = f32::NAN;
    write_f32_npy(&dir.join("sequence.npy"), &[seq.frames as u64, 30, 40], &data);
    std::fs::copy(s.plate.join("times.npy"), dir.join("times.npy")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_trainer"))
        .args(["infer", "--model"])
        .arg(&s.blob)
        .arg("--sequence")
        .arg(&dir)
        .arg("--out")
        .arg(dir.join("out"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("frame 7"), "{err}");
    assert!(!dir.join("out/verdict.json").exists());
}
