//! ThermoNet 2 (the encoder–decoder with a depth head) on tiny simulated plates
//! (seconds): it learns classes and depth, and its exported files agree — the float ONNX
//! (tract) with burn on logits and depth, the QDQ ONNX (tract) with the shared engine on
//! both outputs, the float ONNX read back into the same graph, the blob through the host
//! twin.

use std::sync::OnceLock;

use tqc_data::specimen::Specimen;
use tqc_learn::cnn::{
    Architecture, Augment, OptimizerKind, Sample, Segmenter, TrainConfig, load_sample, train_thermonet2,
};
use tqc_learn::export::export;
use tqc_learn::export::fold::FloatNet;
use tqc_learn::onnx_run::{OnnxModel, argmax_chw};
use tqc_shared::features::FeatureSpec;
use tqc_shared::model::QuantParams;
use tqc_sim::simulate_to_dir;

type B = tqc_learn::pipeline::Backend;
type Inner = tqc_learn::pipeline::Inner;

const QUANT: QuantParams = tqc_eval::features::FEATURE_QUANT;

fn spec() -> FeatureSpec {
    FeatureSpec::log_spaced(6_000, 34_000, 4, 100).unwrap()
}

struct Plates {
    samples: Vec<Sample>,
    _dirs: Vec<tempfile::TempDir>,
}

/// Three 40 × 32 plates (the encoder needs sizes divisible by 8), the hole moved about.
fn plates() -> &'static Plates {
    static P: OnceLock<Plates> = OnceLock::new();
    P.get_or_init(|| {
        let text = include_str!("../../fixtures/small-part.toml").replace("pixels = [40, 30]", "pixels = [40, 32]");
        let (mut samples, mut dirs) = (Vec::new(), Vec::new());
        for i in 0..3 {
            let t = text.replace(
                "center_mm = [25.0, 30.0]",
                &format!("center_mm = [{}.0, 30.0]", 22 + 4 * i),
            );
            let s = Specimen::parse(&t, "small.toml").unwrap();
            let dir = tempfile::tempdir().unwrap();
            simulate_to_dir(&s, 200 + i as u64, tqc_sim::WallClock::Record, dir.path(), |_, _| {}).unwrap();
            samples.push(load_sample(dir.path(), &spec(), QUANT).unwrap());
            dirs.push(dir);
        }
        Plates { samples, _dirs: dirs }
    })
}

fn config(epochs: usize) -> TrainConfig {
    TrainConfig {
        epochs,
        learning_rate: 1e-2,
        warmup_epochs: 1,
        optimizer: OptimizerKind::Adam,
        weight_decay: 0.0,
        l1: 0.0,
        dropout: 0.0,
        batch_norm: false,
        width: 0,
        seed: 11,
        class_weights: [1.0, 4.0, 4.0],
        patience: None,
        augment: Augment::NONE,
        batch_size: 1,
        architecture: Architecture::Thermonet2,
        depth_weight: 0.5,
    }
}

fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

#[test]
fn thermonet2_learns_classes_and_depth() {
    let _turn = serial();
    let data = &plates().samples;
    assert!(
        data[0].depth_mm.iter().any(|d| d.is_finite() && *d > 0.0),
        "the plates have in-depth pixels"
    );
    let (_, reports) =
        train_thermonet2::<B>(&data[..2], &data[2..], &config(20), QUANT, &Default::default(), |_| {}).unwrap();
    let (first, last) = (&reports[0], &reports[reports.len() - 1]);
    assert!(
        last.train_loss < 0.5 * first.train_loss,
        "{} → {}",
        first.train_loss,
        last.train_loss
    );
    let (d0, d1) = (first.depth_mae_mm.unwrap(), last.depth_mae_mm.unwrap());
    assert!(d1 < d0, "validation depth error {d0} → {d1} mm");
    // Without the depth loss the depth head learns nothing.
    let no_depth = TrainConfig {
        depth_weight: 0.0,
        ..config(3)
    };
    let (_, r) = train_thermonet2::<B>(&data[..2], &data[2..], &no_depth, QUANT, &Default::default(), |_| {}).unwrap();
    assert!(r[2].depth_mae_mm.unwrap() > d1, "{:?} vs {d1}", r[2].depth_mae_mm);
}

#[test]
fn sizes_the_encoder_cannot_halve_three_times_are_refused() {
    let data = &plates().samples;
    let mut odd = data[0].clone();
    odd.height = 30;
    odd.features.truncate(odd.channels * 30 * 40);
    odd.labels.truncate(30 * 40);
    let e = train_thermonet2::<B>(&[odd.clone()], &[odd], &config(1), QUANT, &Default::default(), |_| {})
        .err()
        .unwrap();
    assert!(e.to_string().contains("divide by 8"), "{e}");
}

#[test]
fn thermonet2_exports_agree_with_burn_and_the_engine() {
    let _turn = serial();
    let data = &plates().samples;
    let device = Default::default();
    let (model, _) = train_thermonet2::<B>(&data[..2], &data[2..], &config(8), QUANT, &device, |_| {}).unwrap();
    let net = model.float_net();
    let dir = tempfile::tempdir().unwrap();
    let a = export(&net, &data[..2], QUANT, spec(), "tiny2", dir.path()).unwrap();
    let (h, w) = (data[0].height, data[0].width);
    let px = h * w;

    // The float ONNX reads back into the same graph (what `trainer finetune` starts from).
    let bytes = std::fs::read(&a.float_onnx).unwrap();
    let back = FloatNet::from_onnx(&bytes).unwrap();
    assert_eq!(back, net);
    // An upsampling the engine does not run is refused by name, not misread.
    {
        use prost::Message;
        let mut m = tract_onnx::pb::ModelProto::decode(&bytes[..]).unwrap();
        let g = m.graph.as_mut().unwrap();
        let scales = g.initializer.iter_mut().find(|t| t.name.ends_with(".scales")).unwrap();
        scales.raw_data = [1.0f32, 1.0, 3.0, 3.0].iter().flat_map(|v| v.to_le_bytes()).collect();
        let e = FloatNet::from_onnx(&m.encode_to_vec()).unwrap_err().to_string();
        assert!(e.contains("Resize") && e.contains("by 2"), "{e}");
    }

    let float = OnnxModel::load(&a.float_onnx, 4, h, w).unwrap();
    let int8 = OnnxModel::load(&a.int8_onnx, 4, h, w).unwrap();
    let model_blob = tqc_shared::blob::decode(&a.blob_bytes).unwrap();
    let (logit_q, depth_q) = (a.quant.tensor(net.outputs[0]), a.quant.tensor(net.outputs[1]));
    let (mut same, mut within, mut depth_within, mut total) = (0usize, 0usize, 0usize, 0usize);
    for s in data {
        // Float ONNX through tract = burn, to 1e-4 on logits and depth.
        let x = burn::tensor::Tensor::<Inner, 4>::from_data(
            burn::tensor::TensorData::new(s.features.clone(), [1, s.channels, h, w]),
            &device,
        );
        let (logits, depth) = model.segment_depth(x, None);
        let burn_outs: Vec<Vec<f32>> = [logits, depth.unwrap()]
            .into_iter()
            .map(|t| t.into_data().iter::<f32>().collect())
            .collect();
        let onnx = float.outputs(&s.features).unwrap();
        assert_eq!(onnx.len(), 3, "logits, probabilities, depth");
        for (what, b, o) in [("logits", &burn_outs[0], &onnx[0]), ("depth", &burn_outs[1], &onnx[2])] {
            let max = b.iter().zip(o).fold(0.0f32, |m, (x, y)| m.max((x - y).abs()));
            assert!(max <= 1e-4, "float ONNX vs burn {what}: max |Δ| {max}");
        }

        // QDQ ONNX through tract vs the engine on the blob, both outputs.
        let engine = tqc_eval::infer::run_outputs(&model_blob, &s.image).unwrap();
        let qdq = int8.outputs(&s.features).unwrap();
        let classes = argmax_chw(&qdq[0], 3);
        let lsb = |v: f32, q: QuantParams, e: i8| {
            let k = ((v / q.scale).round() as i32 + q.zero_point as i32).clamp(-128, 127);
            (k - e as i32).abs() <= 1
        };
        for p in 0..px {
            total += 1;
            let engine_class = argmax_chw(&(0..3).map(|c| f32::from(engine[0][p * 3 + c])).collect::<Vec<_>>(), 3)[0];
            same += usize::from(classes[p] == engine_class);
            within += usize::from((0..3).all(|c| lsb(qdq[0][c * px + p], logit_q, engine[0][p * 3 + c])));
            depth_within += usize::from(lsb(qdq[2][p], depth_q, engine[1][p]));
        }
    }
    // What `trainer depth-head --model X.tqm` scores: the engine's depth in mm from the
    // sample's float features (re-coded), against the QDQ file's depth.
    for s in data {
        let (depth, classes) = tqc_learn::depth::engine_estimates(&model_blob, s, QUANT)
            .unwrap()
            .unwrap();
        let qdq = int8.outputs(&s.features).unwrap();
        let close = depth
            .iter()
            .zip(&qdq[2])
            .filter(|(e, q)| (**e - f64::from(**q)).abs() <= f64::from(depth_q.scale) * 1.01)
            .count();
        assert!(
            close as f64 >= 0.99 * px as f64,
            "engine depth within 1 LSB of the QDQ file: {close}/{px}"
        );
        assert_eq!(
            tqc_eval::infer::run_features(&a.blob_bytes, &s.image).unwrap().1,
            classes
        );
    }
    let share = |n: usize| n as f64 / total as f64;
    assert!(
        share(same) >= 0.999,
        "int8 ONNX vs engine argmax agreement {}",
        share(same)
    );
    assert!(share(within) >= 0.99, "logits within 1 LSB {}", share(within));
    assert!(
        share(depth_within) >= 0.99,
        "depth within 1 LSB {}",
        share(depth_within)
    );
}

#[test]
fn per_channel_grids_refine_the_same_ratios() {
    let _turn = serial();
    let plate = tempfile::tempdir().unwrap();
    let text = include_str!("../../fixtures/small-part.toml").replace("pixels = [40, 30]", "pixels = [40, 32]");
    let s = Specimen::parse(&text, "small.toml").unwrap();
    simulate_to_dir(&s, 7, tqc_sim::WallClock::Record, plate.path(), |_, _| {}).unwrap();
    let shared = load_sample(plate.path(), &spec(), QUANT).unwrap();
    // The shared step everywhere: the very same features.
    let same = tqc_learn::cnn::load_sample_rescaled(plate.path(), &spec(), &[QUANT.scale; 4]).unwrap();
    assert_eq!(same.features, shared.features);
    assert_eq!(same.grid.as_deref(), Some(&[QUANT.scale; 4][..]));
    // Finer steps on channels 1–3: each value within half a step of each grid of the
    // one ratio, so within half the sum of the steps of the shared value — or saturated
    // at the finer grid's end.
    let steps = [QUANT.scale, 1.0 / 512.0, 1.0 / 1024.0, 1.0 / 4096.0];
    let fine = tqc_learn::cnn::load_sample_rescaled(plate.path(), &spec(), &steps).unwrap();
    let px = shared.height * shared.width;
    let mut finer = 0;
    for (k, step) in steps.iter().enumerate() {
        for p in 0..px {
            let (a, b) = (shared.features[k * px + p], fine.features[k * px + p]);
            let (lo, hi) = (-128.0 * step, 127.0 * step);
            let saturated = (b == lo && a <= lo + 0.5 * QUANT.scale) || (b == hi && a >= hi - 0.5 * QUANT.scale);
            assert!(
                saturated || (a - b).abs() <= 0.5 * (QUANT.scale + step) + 1e-6,
                "channel {k} pixel {p}: {a} vs {b}"
            );
            assert!((b / step - (b / step).round()).abs() < 1e-3, "on its own grid");
            finer += usize::from(a != b);
        }
    }
    assert!(
        finer > px,
        "the finer grids resolve what the shared one rounds ({finer} values)"
    );
    // Augmentation keeps each channel on its own grid.
    let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(3);
    let aug = tqc_learn::cnn::augment(&fine, &Augment::DEFAULT, QUANT, &mut rng);
    for (k, step) in steps.iter().enumerate() {
        assert!(
            aug.features[k * px..(k + 1) * px]
                .iter()
                .all(|v| (v / step - (v / step).round()).abs() < 1e-3)
        );
    }
}

/// Quantization-aware fine-tuning of the encoder–decoder: the fake-quantized graph
/// (strided convolutions, the residual sum, upsamplings and concatenations on shared
/// grids, both heads) is the engine's arithmetic up to rounding, on the class decisions,
/// the logits and the depth; the fine-tuning trains the depth head too and keeps the
/// graph's wiring.
#[test]
fn quantization_aware_fine_tuning_of_the_graph_simulates_the_engine() {
    use tqc_learn::cnn::{best_epoch, logits};
    use tqc_learn::export::quantize::{calibrate, quantize_with};
    use tqc_learn::qat::{QatNet, fine_tune};
    let _turn = serial();
    let data = &plates().samples;
    let device = Default::default();
    let (model, _) = train_thermonet2::<B>(&data[..2], &data[2..], &config(8), QUANT, &device, |_| {}).unwrap();
    let net = model.float_net();

    // Before any step the simulated network holds the float one's weights unchanged.
    let ranges = calibrate(&net, &data[..2], QUANT).unwrap();
    assert_eq!(
        QatNet::<Inner>::new(&net, &ranges, QUANT, 0.0, &device)
            .unwrap()
            .float_net(),
        net
    );
    let short = QatNet::<Inner>::new(&net, &ranges[1..], QUANT, 0.0, &device)
        .err()
        .unwrap();
    assert!(short.to_string().contains("activation ranges"), "{short}");

    let cfg = TrainConfig {
        learning_rate: 2e-3,
        warmup_epochs: 0,
        ..config(3)
    };
    let outcome = fine_tune::<B>(&net, &data[..2], &data[2..], &cfg, QUANT, &device, |_| {}).unwrap();
    assert_eq!(outcome.reports.len(), 3);
    assert_eq!(
        outcome.ranges, ranges,
        "the ranges calibrated before the fine-tuning are kept"
    );
    assert!(
        outcome.reports.iter().all(|r| r.depth_mae_mm.is_some()),
        "the depth head is scored (and trained) in every epoch"
    );
    if outcome.improved {
        assert!(best_epoch(&outcome.reports).unwrap().score > outcome.start_score);
        assert_ne!(outcome.net, net);
    } else {
        assert_eq!(outcome.net, net, "no epoch beat the start: the start is kept");
    }
    let wiring = |n: &FloatNet| {
        n.layers
            .iter()
            .map(|l| (std::mem::discriminant(&l.op), l.inputs.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(wiring(&outcome.net), wiring(&net));

    let quant = quantize_with(&outcome.net, outcome.ranges.clone(), QUANT).unwrap();
    let (h, w) = (data[0].height, data[0].width);
    let px = h * w;
    let bytes = quant.to_blob("qat2", h, w, spec()).unwrap();
    let blob = tqc_shared::blob::decode(&bytes).unwrap();
    let simulated = QatNet::<Inner>::new(&outcome.net, &outcome.ranges, QUANT, 0.0, &device).unwrap();
    let (logit_q, depth_q) = (quant.tensor(net.outputs[0]), quant.tensor(net.outputs[1]));
    let (mut total, mut same, mut within, mut depth_within) = (0usize, 0usize, 0usize, 0usize);
    for s in data {
        let fake = logits::<Inner, _>(&simulated, s, &device);
        let x = burn::tensor::Tensor::<Inner, 4>::from_data(
            burn::tensor::TensorData::new(s.features.clone(), [1, s.channels, h, w]),
            &device,
        );
        let depth: Vec<f32> = simulated
            .segment_depth(x, None)
            .1
            .unwrap()
            .into_data()
            .iter::<f32>()
            .collect();
        let engine = tqc_eval::infer::run_outputs(&blob, &s.image).unwrap();
        let code = |v: f32, q: QuantParams| {
            let k = v / q.scale + q.zero_point as f32;
            assert!((k - k.round()).abs() < 1e-2, "{v} is off its output grid");
            k.round() as i32
        };
        for p in 0..px {
            total += 1;
            let fake_p: Vec<f32> = (0..3).map(|c| fake[c * px + p]).collect();
            let engine_p: Vec<f32> = (0..3).map(|c| f32::from(engine[0][p * 3 + c])).collect();
            same += usize::from(argmax_chw(&fake_p, 3) == argmax_chw(&engine_p, 3));
            within += usize::from((0..3).all(|c| (code(fake_p[c], logit_q) - engine_p[c] as i32).abs() <= 1));
            depth_within += usize::from((code(depth[p], depth_q) - i32::from(engine[1][p])).abs() <= 1);
        }
    }
    let share = |n: usize| n as f64 / total as f64;
    eprintln!(
        "fake-quantized graph vs engine: classes {:.4}, logits ±1 {:.4}, depth ±1 {:.4}",
        share(same),
        share(within),
        share(depth_within)
    );
    // Rounding the float sum versus requantizing the integer one parts by a step where a
    // value sits on a half step: the bars are the export's (99.9 % of classes, 99 % within
    // one step).
    assert!(share(same) >= 0.999, "classes agree on {}", share(same));
    assert!(share(within) >= 0.99, "logits within 1 LSB on {}", share(within));
    assert!(
        share(depth_within) >= 0.99,
        "depth within 1 LSB on {}",
        share(depth_within)
    );
}
