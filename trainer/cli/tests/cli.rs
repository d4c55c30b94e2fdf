//! The `trainer` binary as a user runs it.

use std::process::Command;

use tqc_learn::pipeline::TrainingRecord;

fn trainer() -> Command {
    Command::new(env!("CARGO_BIN_EXE_trainer"))
}

#[test]
fn simulate_writes_recording_and_previews() {
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("part.toml");
    let text = include_str!("../../specimens/gfrp-reference.toml")
        .replace("duration_s = 600.0", "duration_s = 20.0")
        .replace("pixels = [160, 120]", "pixels = [48, 36]");
    std::fs::write(&spec, text).unwrap();
    let out = dir.path().join("run");
    let o = trainer()
        .args(["simulate", "--specimen"])
        .arg(&spec)
        .arg("--out")
        .arg(&out)
        .args(["--seed", "3"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("cell-updates/s"), "{stdout}");
    assert!(stdout.contains("hole[14]"), "{stdout}");
    for f in [
        "sequence.npy",
        "times.npy",
        "labels.npy",
        "depth.npy",
        "meta.json",
        "previews/contrast-curves.png",
    ] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    let pngs = std::fs::read_dir(out.join("previews")).unwrap().count();
    assert!(pngs >= 4, "{pngs} previews");

    // A run killed mid-write leaves `.partial` files; the next run into the folder
    // removes them and says so.
    std::fs::write(out.join("sequence.npy.partial"), b"half a sequence").unwrap();
    std::fs::write(out.join("previews/contrast-curves.png.partial"), b"half").unwrap();
    let o = trainer()
        .args(["simulate", "--specimen"])
        .arg(&spec)
        .arg("--out")
        .arg(&out)
        .args(["--seed", "3"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let said = String::from_utf8_lossy(&o.stderr);
    assert!(
        said.contains("removed 2 unfinished files an interrupted run left") && said.contains("sequence.npy.partial"),
        "{said}"
    );
    let leftovers: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .chain(std::fs::read_dir(out.join("previews")).unwrap())
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".partial"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn bad_specimen_file_fails_with_the_field_named() {
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("bad.toml");
    std::fs::write(
        &spec,
        include_str!("../../specimens/gfrp-sound.toml").replace("thickness_mm = 20.0", "thickness_mm = -3.0"),
    )
    .unwrap();
    let o = trainer()
        .args(["simulate", "--specimen"])
        .arg(&spec)
        .arg("--out")
        .arg(dir.path().join("x"))
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("bad.toml: plate.thickness_mm: must be positive, got -3"),
        "{err}"
    );
    assert!(!dir.path().join("x").exists(), "nothing written for a bad file");
    let o = trainer()
        .args(["simulate", "--specimen", "no-such-part", "--out"])
        .arg(dir.path().join("y"))
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("no shipped specimen named \"no-such-part\""));
}

#[test]
fn dataset_writes_plates_and_an_index_split_by_plate() {
    let dir = tempfile::tempdir().unwrap();
    let template = dir.path().join("small.toml");
    let text = include_str!("../../specimens/gfrp-sound.toml")
        .replace("duration_s = 600.0", "duration_s = 12.0")
        .replace("pixels = [160, 120]", "pixels = [32, 24]");
    std::fs::write(&template, text).unwrap();
    let out = dir.path().join("ds");
    let o = trainer()
        .args(["dataset", "--plates", "6", "--seed", "4", "--specimen-template"])
        .arg(&template)
        .arg("--out")
        .arg(&out)
        .args(["--validation-share", "0.2", "--test-share", "0.2"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let index = tqc_data::DatasetIndex::read(&out).unwrap();
    let plates = &index.plates;
    assert_eq!(plates.len(), 6);
    assert_eq!(index.plates_in(tqc_data::Split::Test).count(), 1);
    assert_eq!(index.plates_in(tqc_data::Split::Validation).count(), 1);
    for p in plates {
        let d = out.join(&p.dir);
        for f in ["sequence.npy", "times.npy", "labels.npy", "depth.npy", "meta.json"] {
            assert!(d.join(f).is_file(), "{} lacks {f}", d.display());
        }
    }
    // Deterministic: a second run gives the same index and the same frames.
    let out2 = dir.path().join("ds2");
    let o = trainer()
        .args(["dataset", "--plates", "6", "--seed", "4", "--specimen-template"])
        .arg(&template)
        .arg("--out")
        .arg(&out2)
        .args(["--validation-share", "0.2", "--test-share", "0.2"])
        .output()
        .unwrap();
    assert!(o.status.success());
    assert_eq!(
        std::fs::read(out.join("index.json")).unwrap(),
        std::fs::read(out2.join("index.json")).unwrap()
    );
    assert_eq!(
        std::fs::read(out.join("plate-00003/sequence.npy")).unwrap(),
        std::fs::read(out2.join("plate-00003/sequence.npy")).unwrap()
    );
    // Bad arguments are refused before any work.
    let o = trainer()
        .args(["dataset", "--plates", "0", "--out"])
        .arg(dir.path().join("x"))
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--plates must be at least 1"));
}

/// A dataset of six small plates (short heating and recording, 32×24 pixels): seconds,
/// not minutes.
fn small_dataset(dir: &std::path::Path) -> std::path::PathBuf {
    let template = dir.join("small.toml");
    let text = include_str!("../../specimens/gfrp-sound.toml")
        .replacen("duration_s = 30.0", "duration_s = 4.0", 1)
        .replace("duration_s = 600.0", "duration_s = 40.0")
        .replace("frame_rate_hz = 1.0", "frame_rate_hz = 2.0")
        .replace("pixels = [160, 120]", "pixels = [32, 24]");
    std::fs::write(&template, text).unwrap();
    let data = dir.join("ds");
    let o = trainer()
        .args([
            "dataset",
            "--plates",
            "6",
            "--seed",
            "5",
            "--sound-share",
            "0",
            "--specimen-template",
        ])
        .arg(&template)
        .arg("--out")
        .arg(&data)
        .args(["--validation-share", "0.2", "--test-share", "0.2"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    data
}

#[test]
fn train_with_folds_cross_validates_and_exports_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = small_dataset(dir.path());
    let out = dir.path().join("cv");
    let o = trainer()
        .args([
            "train",
            "--folds",
            "2",
            "--epochs",
            "2",
            "--warmup-epochs",
            "1",
            "--width",
            "4",
            "--data",
        ])
        .arg(&data)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let said = String::from_utf8_lossy(&o.stdout);
    assert!(said.contains("2-fold cross-validation on 5 plates"), "{said}");
    let csv = std::fs::read_to_string(out.join("crossval.csv")).unwrap();
    let rows: Vec<&str> = csv.lines().skip(1).collect();
    assert_eq!(rows.len(), 2, "{csv}");
    // The five train and validation plates, each validated by exactly one fold.
    let mut seen: Vec<&str> = rows
        .iter()
        .flat_map(|r| r.split(',').nth(1).unwrap().split(' '))
        .collect();
    seen.sort();
    assert_eq!(seen.len(), 5, "{csv}");
    seen.dedup();
    assert_eq!(seen.len(), 5, "{csv}");
    let json: tqc_learn::crossval::CrossvalFile =
        tqc_data::io::parse_json(&std::fs::read_to_string(out.join("crossval.json")).unwrap()).unwrap();
    assert_eq!(json.folds.len(), 2);
    // The summary is the folds' own: each class's mean of the folds' best-epoch IoU.
    for c in 0..json.summary.mean_iou.len() {
        let ious: Vec<f64> = json.folds.iter().map(|f| f.best.iou[c]).collect();
        assert!(ious.iter().all(|v| (0.0..=1.0).contains(v)), "{ious:?}");
        let mean = ious.iter().sum::<f64>() / ious.len() as f64;
        assert!((json.summary.mean_iou[c] - mean).abs() < 1e-12, "{:?}", json.summary);
    }
    assert!(
        json.folds
            .iter()
            .all(|f| f.best.train_loss.is_finite() && f.best.train_loss > 0.0)
    );
    assert!(!out.join("thermonet.tqm").exists(), "cross-validation exports nothing");

    // More folds than plates: a clear error, nothing written.
    let o = trainer()
        .args(["train", "--folds", "9", "--epochs", "1", "--data"])
        .arg(&data)
        .arg("--out")
        .arg(dir.path().join("cv9"))
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("too few for 9 folds"));
    assert!(!dir.path().join("cv9").exists());
    // Nothing would be exported: asking for an export folder is a mistake, said at once.
    let o = trainer()
        .args(["train", "--folds", "2", "--export-to", "models", "--data"])
        .arg(&data)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--export-to"));
    // An amplitude window the extractor cannot centre: named, nothing written.
    let o = trainer()
        .args(["train", "--amplitude-window", "30", "--epochs", "1", "--data"])
        .arg(&data)
        .arg("--out")
        .arg(dir.path().join("even"))
        .output()
        .unwrap();
    assert!(!o.status.success());
    let said = String::from_utf8_lossy(&o.stderr);
    assert!(said.contains("--amplitude-window") && said.contains("odd"), "{said}");
    assert!(!dir.path().join("even").exists());
}

/// `--qat-epochs` after a float training and as a fine-tuning of its own (`finetune
/// --epochs 0`): the quantization-aware epochs are logged, the blob carries the ranges
/// they trained with, and the record says where the float network came from.
#[test]
fn quantization_aware_epochs_after_training_and_on_their_own() {
    let dir = tempfile::tempdir().unwrap();
    let data = small_dataset(dir.path());
    let out = dir.path().join("run");
    // The shipped shape (8 channels, 12 maps), so finetune's generated network takes it.
    let o = trainer()
        .args([
            "train",
            "--epochs",
            "2",
            "--warmup-epochs",
            "1",
            "--qat-epochs",
            "2",
            "--data",
        ])
        .arg(&data)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let said = String::from_utf8_lossy(&o.stdout);
    assert!(said.contains("quantization-aware: 2 epochs"), "{said}");
    let csv = std::fs::read_to_string(out.join("qat-metrics.csv")).unwrap();
    assert_eq!(csv.lines().count(), 3, "{csv}");
    let record = TrainingRecord::beside(&out.join("thermonet.tqm")).expect("training record");
    let qat = record.qat.as_ref().expect("a QAT record");
    assert_eq!(qat.epochs_run, 2);
    assert!((qat.learning_rate - 3e-4).abs() < 1e-12, "a tenth of the default 3e-3");
    let ranges = &qat.ranges;
    assert_eq!(ranges.len(), 4);
    // The blob's logits are quantized over the last range the fine-tuning used.
    let blob = std::fs::read(out.join("thermonet.tqm")).unwrap();
    let model = tqc_shared::blob::decode(&blob).unwrap();
    let last = model.desc.layers.last().unwrap().output;
    let (lo, hi) = ranges[3];
    assert_eq!(last, tqc_learn::export::quantize::range_quant(lo, hi));
    // The amplitude channel is relative to the default window's mean, not the median.
    let spec = model.desc.input.features.clone().unwrap();
    assert_eq!(spec.amplitude_window_px, 31);

    // Quantization-aware epochs alone, from the exported float model.
    let tuned = dir.path().join("tuned");
    let o = trainer()
        .args(["finetune", "--epochs", "0", "--qat-epochs", "1", "--from"])
        .arg(out.join("thermonet.onnx"))
        .arg("--data")
        .arg(&data)
        .arg("--out")
        .arg(&tuned)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let float_epochs = std::fs::read_to_string(tuned.join("metrics.csv")).unwrap();
    assert_eq!(float_epochs.lines().count(), 1, "no float epoch: {float_epochs}");
    let record = TrainingRecord::beside(&tuned.join("thermonet-finetuned.tqm")).expect("training record");
    assert_eq!(record.epochs_run, 0);
    assert_eq!(record.qat.as_ref().map(|q| q.epochs_run), Some(1));
    assert_eq!(
        record
            .source
            .as_ref()
            .and_then(|s| s.qat.as_ref())
            .map(|q| q.epochs_run),
        Some(2),
        "the float run's record is carried"
    );
    let tuned_blob = std::fs::read(tuned.join("thermonet-finetuned.tqm")).unwrap();
    assert_eq!(
        tqc_shared::blob::decode(&tuned_blob).unwrap().desc.input.features,
        Some(spec.clone()),
        "a fine-tuning keeps the features its source was trained on"
    );

    // No epochs of either kind: the same float network calibrated again and exported.
    let again = dir.path().join("again");
    let o = trainer()
        .args(["finetune", "--epochs", "0", "--from"])
        .arg(out.join("thermonet.onnx"))
        .arg("--data")
        .arg(&data)
        .arg("--out")
        .arg(&again)
        .args(["--name", "thermonet"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        std::fs::read(again.join("thermonet.onnx")).unwrap(),
        std::fs::read(out.join("thermonet.onnx")).unwrap(),
        "the float network is exported unchanged"
    );
    let record = TrainingRecord::beside(&again.join("thermonet.tqm")).expect("training record");
    assert_eq!((record.epochs_run, record.qat.is_none()), (0, true));
    assert!(record.source.is_some(), "the float run's record is carried");
    let blob = std::fs::read(again.join("thermonet.tqm")).unwrap();
    assert_eq!(tqc_shared::blob::decode(&blob).unwrap().desc.input.features, Some(spec));

    // A fresh network with no epochs of either kind: said, nothing written.
    let none = dir.path().join("none");
    let o = trainer()
        .args(["train", "--epochs", "0", "--data"])
        .arg(&data)
        .arg("--out")
        .arg(&none)
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--qat-epochs"));
    assert!(!none.exists(), "refused before anything is written");
}

/// `trainer depth-head` on the validation plates of `data`, JSON to `json`.
/// `trainer finetune` from the float file `from` on `data` into `out`, with `args` before.
fn finetune(
    args: &[&str],
    from: &std::path::Path,
    data: &std::path::Path,
    out: &std::path::Path,
) -> std::process::Output {
    trainer()
        .arg("finetune")
        .args(args)
        .arg("--from")
        .arg(from)
        .arg("--data")
        .arg(data)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap()
}

fn depth_head(model: &std::path::Path, data: &std::path::Path, json: &std::path::Path) -> std::process::Output {
    trainer()
        .args(["depth-head", "--split", "validation", "--model"])
        .arg(model)
        .arg("--data")
        .arg(data)
        .arg("--json")
        .arg(json)
        .output()
        .unwrap()
}

/// `depth-head` fits on the training plates and scores the held-out ones; a split with no
/// plates is named.
#[test]
fn depth_head_reports_its_error_against_the_mean_depth() {
    let dir = tempfile::tempdir().unwrap();
    let data = small_dataset(dir.path());
    let out = dir.path().join("run");
    let o = trainer()
        .args([
            "train",
            "--epochs",
            "1",
            "--warmup-epochs",
            "0",
            "--width",
            "4",
            "--data",
        ])
        .arg(&data)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let json = dir.path().join("depth.json");
    let o = depth_head(&out.join("thermonet.onnx"), &data, &json);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let said = String::from_utf8_lossy(&o.stdout);
    assert!(said.contains("| training mean depth |"), "{said}");
    let v: tqc_learn::depth::DepthFile = tqc_data::io::parse_json(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let r = &v.report;
    assert!(r.pixels > 0, "{r:?}");
    assert!(r.mae_mm.is_finite(), "{r:?}");
    assert_eq!(v.head.as_ref().map(|h| h.weight.len()), Some(4));
    let o = trainer()
        .args(["depth-head", "--split", "nowhere", "--model"])
        .arg(out.join("thermonet.onnx"))
        .arg("--data")
        .arg(&data)
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("nowhere split"));
}

/// A POD study's smoke run: a one-epoch model on the small set, in two shards and a
/// last run that only reports.
#[test]
fn pod_runs_in_shards_and_writes_the_table_and_the_plots() {
    let dir = tempfile::tempdir().unwrap();
    let data = small_dataset(dir.path());
    let run = dir.path().join("run");
    let o = trainer()
        .args(["train", "--epochs", "1", "--warmup-epochs", "0", "--data"])
        .arg(&data)
        .arg("--out")
        .arg(&run)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let pod = dir.path().join("pod");
    let study = |extra: &[&str]| {
        trainer()
            .args(["pod", "--data"])
            .arg(&data)
            .arg("--model")
            .arg(run.join("thermonet.tqm"))
            .arg("--out")
            .arg(&pod)
            .args(extra)
            .output()
            .unwrap()
    };
    let o = study(&["--shard", "1/2"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let said = String::from_utf8_lossy(&o.stdout);
    assert!(
        said.contains("3 plates inspected") && said.contains("shard 1/2 done"),
        "{said}"
    );
    assert!(!pod.join("pod.md").exists(), "a shard wrote the report");
    let o = study(&["--shard", "2/2"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = study(&[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let said = String::from_utf8_lossy(&o.stdout);
    assert!(
        said.contains("0 plates inspected"),
        "every plate was done by the shards: {said}"
    );
    assert!(said.contains("POD study: 6 plates"), "{said}");
    let report: tqc_eval::pod::PodReport = tqc_data::io::read_json(&pod.join("pod.json")).unwrap();
    assert_eq!(report.methods.len(), 6);
    assert_eq!(report.defects, report.in_depth_defects + report.surface_defects);
    for m in &report.methods {
        assert_eq!(m.sweep.len(), 17, "{}", m.method);
        // Stricter thresholds never find more.
        let found: Vec<usize> = m.sweep.iter().map(|p| p.in_depth_found.k).collect();
        assert!(found.windows(2).all(|w| w[1] <= w[0]), "{}: {found:?}", m.method);
    }
    for png in ["pod-cnn-int8-engine.png", "pod-tsr.png", "pod-vs-false-calls.png"] {
        let bytes = std::fs::read(pod.join(png)).unwrap();
        assert!(bytes.starts_with(b"\x89PNG"), "{png}");
    }
    let md = std::fs::read_to_string(pod.join("pod.md")).unwrap();
    assert!(md.contains("a90/95") && md.contains("Clopper"), "{md}");
    let plates = std::fs::read_dir(pod.join("plates")).unwrap().count();
    assert_eq!(plates, 6);
}

/// ThermoNet 2 end to end on the small set: trained with a decision margin (in the
/// training record, in the class head's sound bias), its int8 depth scored as the device
/// computes it, a margin added again by `finetune --epochs 0`, a blob without a depth
/// output refused by `depth-head`, and the input-scale codes table.
#[test]
fn thermonet2_with_a_decision_margin_and_its_int8_depth() {
    use tqc_learn::export::fold::{FloatNet, FloatOp};
    let dir = tempfile::tempdir().unwrap();
    let data = small_dataset(dir.path());
    let run = dir.path().join("run");
    let o = trainer()
        .args([
            "train",
            "--architecture",
            "thermonet2-sharp",
            "--epochs",
            "1",
            "--warmup-epochs",
            "0",
            "--decision-margin",
            "0.5",
            "--name",
            "thermonet2",
            "--data",
        ])
        .arg(&data)
        .arg("--out")
        .arg(&run)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let record: tqc_learn::pipeline::TrainingRecord =
        tqc_data::io::read_json(&run.join("thermonet2.training.json")).unwrap();
    assert_eq!(record.decision_margin, 0.5);

    // The int8 depth output, scored on the defects the blob's own class map finds.
    let json = dir.path().join("depth.json");
    let o = depth_head(&run.join("thermonet2.tqm"), &data, &json);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let said = String::from_utf8_lossy(&o.stdout);
    assert!(said.contains("the network's depth head"), "{said}");
    let v: tqc_learn::depth::DepthFile = tqc_data::io::parse_json(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert!(
        v.head.is_none() && v.report.pixels > 0 && v.report.mae_mm.is_finite(),
        "{v:?}"
    );

    // Another margin on top, no epochs: the sound bias moves by exactly that.
    let again = dir.path().join("again");
    let float = run.join("thermonet2.onnx");
    let o = finetune(
        &["--epochs", "0", "--decision-margin", "0.25", "--name", "m"],
        &float,
        &data,
        &again,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let sound_bias = |p: std::path::PathBuf| {
        let net = FloatNet::from_onnx(&std::fs::read(p).unwrap()).unwrap();
        match &net.layers[net.outputs[0] - 1].op {
            FloatOp::Conv(c) => c.bias[0],
            op => panic!("class head {op:?}"),
        }
    };
    let moved = sound_bias(again.join("m.onnx")) - sound_bias(float.clone());
    assert!((moved - 0.25).abs() < 1e-6, "sound bias moved by {moved}");

    // A margin the fold would refuse is refused before anything trains or is written.
    let bad = dir.path().join("bad");
    let o = finetune(
        &["--epochs", "0", "--qat-epochs", "1", "--decision-margin", "-1"],
        &float,
        &data,
        &bad,
    );
    assert!(!o.status.success());
    let said = String::from_utf8_lossy(&o.stderr);
    assert!(said.contains("decision margin -1"), "{said}");
    assert!(!bad.exists(), "refused before anything is written");

    // Quantization-aware epochs on the encoder–decoder (at a rate of 1e-12 the weights
    // stay put to 1e-6), the margin folded after them: the sound bias again moves by
    // exactly the margin, the blob keeps its depth output and the ranges the epochs ran with.
    let qat = dir.path().join("qat");
    let o = finetune(
        &[
            "--epochs",
            "0",
            "--qat-epochs",
            "1",
            "--qat-learning-rate",
            "1e-12",
            "--decision-margin",
            "0.25",
            "--name",
            "q",
        ],
        &float,
        &data,
        &qat,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let moved = sound_bias(qat.join("q.onnx")) - sound_bias(float.clone());
    assert!((moved - 0.25).abs() < 1e-6, "sound bias moved by {moved}");
    let record: tqc_learn::pipeline::TrainingRecord = tqc_data::io::read_json(&qat.join("q.training.json")).unwrap();
    let net = FloatNet::from_onnx(&std::fs::read(qat.join("q.onnx")).unwrap()).unwrap();
    let ranges = &record.qat.as_ref().expect("a QAT record").ranges;
    assert_eq!(ranges.len(), net.layers.len());
    let bytes = std::fs::read(qat.join("q.tqm")).unwrap();
    let blob = tqc_shared::blob::decode(&bytes).unwrap();
    assert!(blob.depth_output().is_some(), "the depth output survives");
    let (lo, hi) = ranges[net.outputs[0] - 1];
    assert_eq!(
        blob.output_quant(0),
        Some(tqc_learn::export::quantize::range_quant(lo, hi)),
        "the logits on the range the record gives"
    );

    // A blob without a depth output is named.
    let v1 = dir.path().join("v1");
    let o = trainer()
        .args([
            "train",
            "--epochs",
            "1",
            "--warmup-epochs",
            "0",
            "--width",
            "4",
            "--data",
        ])
        .arg(&data)
        .arg("--out")
        .arg(&v1)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = trainer()
        .args(["depth-head", "--split", "validation", "--model"])
        .arg(v1.join("thermonet.tqm"))
        .arg("--data")
        .arg(&data)
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("no depth output"));

    // The codes each channel takes on both grids.
    let o = trainer()
        .args([
            "input-scale",
            "--epochs",
            "0",
            "--architecture",
            "thermonet2-sharp",
            "--split",
            "validation",
            "--data",
        ])
        .arg(&data)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let said = String::from_utf8_lossy(&o.stdout);
    let rows = said
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| channel"))
        .count();
    assert!(rows >= 8, "a row per channel: {said}");
}
