//! The compact fully-convolutional CNN (burn) that turns a feature image into a
//! per-pixel class map — sound, in-depth defect, surface defect — and its training.
//!
//! Architecture (only layers the engine runs; batch normalization is folded into the
//! convolutions at export): 3×3 conv K→w, BN, ReLU; 3×3 conv w→w, BN, ReLU; 3×3 conv w→w,
//! BN, ReLU; 1×1 conv w→3 (logits at full resolution; the device applies softmax and
//! argmax). Inputs are the shared extractor's int8 features, dequantized.

use burn::module::{AutodiffModule, Module};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::loss::CrossEntropyLossConfig;
use burn::nn::{BatchNorm, BatchNormConfig, PaddingConfig2d};
use burn::optim::{AdamConfig, GradientsParams, Optimizer};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{ElementConversion, Int, Tensor, TensorData, activation};

use crate::sequence::{ReadOptions, Sequence};

/// Classes of the per-pixel map.
pub const CLASSES: usize = 3;

#[derive(Module, Debug)]
pub struct ThermoNet<B: Backend> {
    conv1: Conv2d<B>,
    bn1: BatchNorm<B>,
    conv2: Conv2d<B>,
    bn2: BatchNorm<B>,
    conv3: Conv2d<B>,
    bn3: BatchNorm<B>,
    head: Conv2d<B>,
}

impl<B: Backend> ThermoNet<B> {
    pub fn new(channels: usize, width: usize, device: &B::Device) -> Self {
        let conv = |i: usize, o: usize, k: usize| {
            Conv2dConfig::new([i, o], [k, k])
                .with_padding(PaddingConfig2d::Same)
                .init(device)
        };
        ThermoNet {
            conv1: conv(channels, width, 3),
            bn1: BatchNormConfig::new(width).init(device),
            conv2: conv(width, width, 3),
            bn2: BatchNormConfig::new(width).init(device),
            conv3: conv(width, width, 3),
            bn3: BatchNormConfig::new(width).init(device),
            head: conv(width, CLASSES, 1),
        }
    }

    /// `[batch, K, H, W]` features to `[batch, 3, H, W]` logits.
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let x = activation::relu(self.bn1.forward(self.conv1.forward(x)));
        let x = activation::relu(self.bn2.forward(self.conv2.forward(x)));
        let x = activation::relu(self.bn3.forward(self.conv3.forward(x)));
        self.head.forward(x)
    }
}

/// One plate ready for training: features CHW (float) and labels.
#[derive(Clone, Debug)]
pub struct Sample {
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    pub features: Vec<f32>,
    pub labels: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("{0}")]
    Sequence(#[from] crate::sequence::SequenceError),
    #[error("{path}: features: {source}")]
    Features {
        path: String,
        source: tqc_shared::features::FeatureError,
    },
    #[error("{0}: no labels.npy, so no ground truth to train on")]
    NoLabels(String),
}

/// Reads a recording, computes its features with the shared extractor, dequantizes them.
pub fn load_sample(
    dir: &std::path::Path,
    spec: &tqc_shared::features::FeatureSpec,
    quant: tqc_shared::model::QuantParams,
) -> Result<Sample, DataError> {
    let seq = Sequence::open(dir, &ReadOptions::default())?;
    let labels = seq
        .labels
        .clone()
        .ok_or_else(|| DataError::NoLabels(dir.display().to_string()))?;
    let (image, _) = crate::features::feature_image(&seq, spec, quant).map_err(|source| DataError::Features {
        path: dir.display().to_string(),
        source,
    })?;
    let (c, px) = (spec.channels(), seq.pixels());
    let mut features = vec![0.0f32; c * px];
    for p in 0..px {
        for k in 0..c {
            features[k * px + p] = quant.scale * (image[p * c + k] as i32 - quant.zero_point as i32) as f32;
        }
    }
    Ok(Sample {
        channels: c,
        height: seq.height,
        width: seq.width,
        features,
        labels,
    })
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TrainConfig {
    pub epochs: usize,
    pub learning_rate: f64,
    pub width: usize,
    pub seed: u64,
    /// Loss weight of each class (rare defect pixels count more).
    pub class_weights: [f32; CLASSES],
}

#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct EpochReport {
    pub epoch: usize,
    pub train_loss: f64,
    pub validation_loss: f64,
    pub iou: [f64; CLASSES],
}

fn batch<B: Backend>(samples: &[&Sample], device: &B::Device) -> (Tensor<B, 4>, Tensor<B, 1, Int>) {
    let s0 = samples[0];
    let (c, h, w) = (s0.channels, s0.height, s0.width);
    let mut x = Vec::with_capacity(samples.len() * c * h * w);
    let mut y = Vec::with_capacity(samples.len() * h * w);
    for s in samples {
        x.extend_from_slice(&s.features);
        y.extend(s.labels.iter().map(|&l| l as i64));
    }
    let x = Tensor::from_data(TensorData::new(x, [samples.len(), c, h, w]), device);
    let y = Tensor::from_data(TensorData::new(y, [samples.len() * h * w]), device);
    (x, y)
}

/// `[n, 3, h, w]` logits as `[n·h·w, 3]` rows, pixel order matching the labels.
fn pixel_rows<B: Backend>(logits: Tensor<B, 4>) -> Tensor<B, 2> {
    let [n, c, h, w] = logits.dims();
    logits.permute([0, 2, 3, 1]).reshape([n * h * w, c])
}

/// Per-class IoU of a prediction against labels.
pub fn iou(pred: &[u8], labels: &[u8]) -> [f64; CLASSES] {
    let mut out = [0.0; CLASSES];
    for (c, o) in out.iter_mut().enumerate() {
        let (mut inter, mut union) = (0usize, 0usize);
        for (&p, &l) in pred.iter().zip(labels) {
            let (a, b) = (p as usize == c, l as usize == c);
            inter += usize::from(a && b);
            union += usize::from(a || b);
        }
        *o = if union == 0 { 1.0 } else { inter as f64 / union as f64 };
    }
    out
}

/// Predicted classes of `samples` (argmax of the logits).
pub fn predict<B: Backend>(model: &ThermoNet<B>, samples: &[&Sample], device: &B::Device) -> Vec<u8> {
    let (x, _) = batch::<B>(samples, device);
    let logits = pixel_rows(model.forward(x));
    let idx = logits.argmax(1);
    idx.into_data().iter::<i64>().map(|v| v as u8).collect()
}

/// Trains on `train` (one plate per step, all plates every epoch), reports each epoch on
/// `validation`.
pub fn train<B: AutodiffBackend>(
    train: &[Sample],
    validation: &[Sample],
    cfg: &TrainConfig,
    device: &B::Device,
    mut on_epoch: impl FnMut(&EpochReport),
) -> (ThermoNet<B>, Vec<EpochReport>) {
    B::seed(device, cfg.seed);
    let channels = train[0].channels;
    let mut model = ThermoNet::<B>::new(channels, cfg.width, device);
    let mut optim = AdamConfig::new().init();
    let loss_fn = CrossEntropyLossConfig::new()
        .with_weights(Some(cfg.class_weights.to_vec()))
        .init(device);
    let mut reports = Vec::new();
    for epoch in 1..=cfg.epochs {
        let mut total = 0.0;
        for s in train {
            let (x, y) = batch::<B>(&[s], device);
            let loss = loss_fn.forward(pixel_rows(model.forward(x)), y);
            total += loss.clone().into_scalar().elem::<f64>();
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optim.step(cfg.learning_rate, model, grads);
        }
        let valid = model.valid();
        let loss_valid = CrossEntropyLossConfig::new()
            .with_weights(Some(cfg.class_weights.to_vec()))
            .init::<B::InnerBackend>(device);
        let (mut vloss, mut pred, mut truth) = (0.0, Vec::new(), Vec::new());
        for s in validation {
            let (x, y) = batch::<B::InnerBackend>(&[s], device);
            vloss += loss_valid
                .forward(pixel_rows(valid.forward(x)), y)
                .into_scalar()
                .elem::<f64>();
            pred.extend(predict(&valid, &[s], device));
            truth.extend_from_slice(&s.labels);
        }
        let report = EpochReport {
            epoch,
            train_loss: total / train.len().max(1) as f64,
            validation_loss: vloss / validation.len().max(1) as f64,
            iou: iou(&pred, &truth),
        };
        on_epoch(&report);
        reports.push(report);
    }
    (model, reports)
}
