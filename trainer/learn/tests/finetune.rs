//! Fine-tuning from an exported ONNX file through the networks burn-import generated from
//! the shipped models (ThermoNet and ThermoNet 2): the weights load exactly (same logits —
//! and depth — as the folded float network), training continues and lowers the loss, and
//! a file of another architecture is refused.

use tqc_data::specimen::Specimen;
use tqc_learn::cnn::{Augment, OptimizerKind, ThermoNet, TrainConfig, continue_training, load_sample, logits};
use tqc_learn::export::fold::FloatNet;
use tqc_learn::export::onnx::{Meta, float_onnx, read_meta};
use tqc_learn::finetune::{FinetuneError, ShippedNet, ShippedNet2, load, to_float_net};
use tqc_shared::features::FeatureSpec;
use tqc_shared::model::QuantParams;
use tqc_sim::simulate_to_dir;

/// The backends `trainer train` uses, so what is tested here is what trains.
type B = tqc_learn::pipeline::Backend;
type Inner = tqc_learn::pipeline::Inner;

/// The trainer's own input quantization.
const QUANT: QuantParams = tqc_eval::features::FEATURE_QUANT;

/// The shipped architecture: 8 feature channels, 12 maps per hidden layer.
const CHANNELS: usize = 8;
const WIDTH: usize = 12;

#[test]
fn finetuning_starts_from_the_file_and_trains() {
    let spec = FeatureSpec::log_spaced(6_000, 34_000, CHANNELS, 100).unwrap();
    let samples = small_plates(&spec, [40, 30], 200);
    let (h, w) = (samples[0].height, samples[0].width);
    let device = Default::default();
    // A network of the shipped shape with its own random weights, exported as trainer does.
    let original = FloatNet::from_burn(&ThermoNet::<Inner>::new(CHANNELS, WIDTH, 0.0, true, &device));
    let meta = Meta {
        features: spec.clone(),
        input_quant: QUANT,
    };
    let bytes = float_onnx(&original, "start", h, w, &meta);
    let read = FloatNet::from_onnx(&bytes).unwrap();
    assert_eq!(read, original);
    use prost::Message;
    let proto = tract_onnx::pb::ModelProto::decode(bytes.as_slice()).unwrap();
    assert_eq!(read_meta(&proto).unwrap().features, spec);

    // Loaded into the generated network: the same function.
    let generated: ShippedNet<Inner> = load(&read, &device).unwrap();
    let a = logits::<Inner, _>(&generated, &samples[0], &device);
    let b = original.forward(&samples[0].features, h, w);
    let max = a.iter().zip(&b).fold(0.0f32, |m, (x, y)| m.max((x - y).abs()));
    assert!(max <= 1e-4, "generated vs folded float: max |Δ| {max}");
    assert_eq!(to_float_net(&generated, &original), original);

    // Training continues from there.
    let cfg = TrainConfig {
        epochs: 6,
        learning_rate: 1e-2,
        warmup_epochs: 0,
        optimizer: OptimizerKind::Adam,
        weight_decay: 0.0,
        l1: 0.0,
        dropout: 0.0,
        batch_norm: true,
        width: WIDTH,
        seed: 3,
        class_weights: [1.0, 4.0, 4.0],
        patience: None,
        augment: Augment::NONE,
        batch_size: 1,
        architecture: Default::default(),
        depth_weight: 0.0,
    };
    let model: ShippedNet<B> = load(&read, &device).unwrap();
    let (tuned, reports) =
        continue_training(model, &samples[..1], &samples[1..], &cfg, QUANT, &device, |_| {}).unwrap();
    assert!(
        reports[5].train_loss < reports[0].train_loss,
        "{} → {}",
        reports[0].train_loss,
        reports[5].train_loss
    );
    assert_ne!(to_float_net(&tuned, &original), original);
}

#[test]
fn another_architecture_is_refused() {
    let device = Default::default();
    let other = FloatNet::from_burn(&ThermoNet::<Inner>::new(4, 8, 0.0, false, &device));
    match load::<Inner, ShippedNet<Inner>>(&other, &device) {
        Err(FinetuneError::Architecture { found, .. }) => assert_eq!(found, 8),
        Ok(_) => panic!("a 4-channel, 8-wide network loaded into the shipped shape"),
    }
    assert!(FloatNet::from_onnx(b"not a model").is_err());
}

/// Two small plates of `pixels`, the hole moved about, simulated with seeds from `seed`.
fn small_plates(spec: &FeatureSpec, pixels: [usize; 2], seed: u64) -> Vec<tqc_learn::cnn::Sample> {
    let text = include_str!("../../fixtures/small-part.toml")
        .replace("pixels = [40, 30]", &format!("pixels = [{}, {}]", pixels[0], pixels[1]));
    (0..2)
        .map(|i| {
            let s = Specimen::parse(
                &text.replace(
                    "center_mm = [25.0, 30.0]",
                    &format!("center_mm = [{}.0, 30.0]", 22 + 6 * i),
                ),
                "small.toml",
            )
            .unwrap();
            let dir = tempfile::tempdir().unwrap();
            simulate_to_dir(&s, seed + i as u64, tqc_sim::WallClock::Record, dir.path(), |_, _| {}).unwrap();
            load_sample(dir.path(), spec, QUANT).unwrap()
        })
        .collect()
}

#[test]
fn thermonet2_finetunes_from_the_shipped_file_with_its_depth_head() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../onnx_models/thermonet2.onnx");
    let shipped = FloatNet::from_onnx(&std::fs::read(&path).unwrap()).unwrap();
    assert!(
        shipped.depth_output().is_some(),
        "the shipped ThermoNet 2 has a depth output"
    );
    let spec = FeatureSpec::log_spaced(6_000, 34_000, shipped.in_channels(), 100).unwrap();
    // 40 × 32: ThermoNet 2 halves the frame three times.
    let samples = small_plates(&spec, [40, 32], 300);
    let (h, w) = (samples[0].height, samples[0].width);
    let device = Default::default();

    // The generated network computes what the folded graph computes, on both outputs.
    let generated: ShippedNet2<Inner> = load(&shipped, &device).unwrap();
    let x = burn::tensor::Tensor::<Inner, 4>::from_data(
        burn::tensor::TensorData::new(samples[0].features.clone(), [1, samples[0].channels, h, w]),
        &device,
    );
    let (logits, depth) = tqc_learn::cnn::Segmenter::segment_depth(&generated, x, None);
    let outputs = shipped.forward_all(&samples[0].features, h, w);
    let (want_logits, want_depth) = (&outputs[0], &outputs[1]);
    let got_logits: Vec<f32> = logits.into_data().iter::<f32>().collect();
    let got_depth: Vec<f32> = depth.expect("a depth output").into_data().iter::<f32>().collect();
    let max = |a: &[f32], b: &[f32]| a.iter().zip(b).fold(0.0f32, |m, (x, y)| m.max((x - y).abs()));
    assert_eq!(
        (got_logits.len(), got_depth.len()),
        (want_logits.len(), want_depth.len())
    );
    assert!(
        max(&got_logits, want_logits) <= 1e-4,
        "logits: max |Δ| {}",
        max(&got_logits, want_logits)
    );
    assert!(
        max(&got_depth, want_depth) <= 1e-4,
        "depth: max |Δ| {}",
        max(&got_depth, want_depth)
    );
    assert_eq!(to_float_net(&generated, &shipped), shipped);

    // Training continues with the depth loss, and the depth head moves too.
    let cfg = TrainConfig {
        epochs: 4,
        learning_rate: 3e-3,
        warmup_epochs: 0,
        optimizer: OptimizerKind::Adam,
        weight_decay: 0.0,
        l1: 0.0,
        dropout: 0.0,
        batch_norm: false,
        // The generated network's width is the file's; the check wants a positive one.
        width: 1,
        seed: 5,
        class_weights: [1.0, 4.0, 4.0],
        patience: None,
        augment: Augment::NONE,
        batch_size: 1,
        architecture: Default::default(),
        depth_weight: 0.5,
    };
    let model: ShippedNet2<B> = load(&shipped, &device).unwrap();
    let (tuned, reports) =
        continue_training(model, &samples[..1], &samples[1..], &cfg, QUANT, &device, |_| {}).unwrap();
    assert!(
        reports[3].depth_mae_mm.is_some(),
        "the depth is validated while fine-tuning"
    );
    assert!(
        reports[3].train_loss < reports[0].train_loss,
        "{} → {}",
        reports[0].train_loss,
        reports[3].train_loss
    );
    let after = to_float_net(&tuned, &shipped);
    let depth_head = |n: &FloatNet| match &n.layers[n.outputs[1] - 1].op {
        tqc_learn::export::fold::FloatOp::Conv(c) => c.weight.clone(),
        op => panic!("depth head is {op:?}"),
    };
    assert_ne!(depth_head(&after), depth_head(&shipped), "the depth head was trained");
}
