//! Fine-tuning from an exported ONNX file through the network burn-import generated from
//! the shipped model: the weights load exactly (same logits as the folded float network),
//! training continues and lowers the loss, and a file of another architecture is refused.

use tqc_data::specimen::Specimen;
use tqc_learn::cnn::{Augment, OptimizerKind, ThermoNet, TrainConfig, continue_training, load_sample, logits};
use tqc_learn::export::fold::FloatNet;
use tqc_learn::export::onnx::{Meta, float_onnx, read_meta};
use tqc_learn::finetune::{FinetuneError, load, to_float_net};
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
    let text = include_str!("../../fixtures/small-part.toml");
    let samples: Vec<_> = (0..2)
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
            simulate_to_dir(&s, 200 + i as u64, tqc_sim::WallClock::Record, dir.path(), |_, _| {}).unwrap();
            load_sample(dir.path(), &spec, QUANT).unwrap()
        })
        .collect();
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
    let generated = load::<Inner>(&read, &device).unwrap();
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
    let model = load::<B>(&read, &device).unwrap();
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
    match load::<Inner>(&other, &device) {
        Err(FinetuneError::Architecture { found, .. }) => assert_eq!(found, 8),
        Ok(_) => panic!("a 4-channel, 8-wide network loaded into the shipped shape"),
    }
    assert!(FloatNet::from_onnx(b"not a model").is_err());
}
