//! A smoke training run (seconds): features through the shared extractor, a few epochs
//! on tiny plates, the loss falls and the metrics are sane.

use burn::backend::{Autodiff, NdArray};
use tqc_shared::features::FeatureSpec;
use tqc_shared::model::QuantParams;
use tqc_trainer::cnn::{Sample, TrainConfig, load_sample, train};
use tqc_trainer::simulate::simulate_to_dir;
use tqc_trainer::specimen::Specimen;

type B = Autodiff<NdArray<f32>>;

fn plates() -> Vec<Sample> {
    let text = include_str!("fixtures/small-part.toml");
    let spec = FeatureSpec::log_spaced(6_000, 34_000, 4, 100).unwrap();
    let quant = QuantParams {
        scale: 1.0 / 64.0,
        zero_point: -128,
    };
    (0..3)
        .map(|i| {
            // Move the defects around from plate to plate.
            let t = text.replace(
                "center_mm = [25.0, 30.0]",
                &format!("center_mm = [{}.0, 30.0]", 22 + 4 * i),
            );
            let s = Specimen::parse(&t, "small.toml").unwrap();
            let dir = tempfile::tempdir().unwrap();
            simulate_to_dir(&s, 100 + i as u64, dir.path(), |_, _| {}).unwrap();
            load_sample(dir.path(), &spec, quant).unwrap()
        })
        .collect()
}

#[test]
fn smoke_training_reduces_the_loss() {
    let data = plates();
    assert_eq!(data[0].channels, 4);
    assert_eq!(data[0].features.len(), 4 * 40 * 30);
    let cfg = TrainConfig {
        epochs: 12,
        learning_rate: 3e-2,
        width: 8,
        seed: 7,
        class_weights: [1.0, 4.0, 4.0],
    };
    let device = Default::default();
    let mut seen = 0;
    let (_model, reports) = train::<B>(&data[..2], &data[2..], &cfg, &device, |_| seen += 1);
    assert_eq!(seen, 12);
    assert!(
        reports
            .iter()
            .all(|r| r.train_loss.is_finite() && r.validation_loss.is_finite())
    );
    let (first, last) = (reports[0].train_loss, reports[11].train_loss);
    assert!(last < 0.7 * first, "training loss {first} → {last}");
    assert!(reports.iter().all(|r| r.iou.iter().all(|v| (0.0..=1.0).contains(v))));
    // Twenty-four steps are too few for the batch-norm running statistics, so the
    // validation numbers of a smoke run are checked for sanity only, not for quality.
}
