//! The compact fully-convolutional CNN (burn) that turns a feature image into a
//! per-pixel class map — sound, in-depth defect, surface defect — and its training.
//!
//! Architecture (only layers the engine runs; optional batch normalization is folded into
//! the convolutions at export): 3×3 conv K→w, [BN], ReLU; 3×3 conv w→w, [BN], ReLU; 3×3
//! conv w→w, [BN], ReLU; 1×1 conv w→3 (logits at full resolution; the device applies softmax and
//! argmax). Inputs are the shared extractor's int8 features, dequantized. Dropout before
//! the head during training only.
//!
//! Training: one plate per step (a 160×120 plate holds ~19 000 labelled pixels, enough
//! for batch-norm statistics), plates shuffled every epoch, augmented (flips, gain of the
//! amplitude channel, a linear lamp-profile tilt, noise, re-quantized to the device's
//! int8 grid), Adam / AdamW / SGD with Nesterov momentum, linear warm-up then cosine
//! decay, L2 (and optional L1) weight decay, class-weighted cross-entropy, early stopping
//! on the validation split keeping the best epoch. Deterministic for a seed.

use burn::module::{AutodiffModule, Module};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::loss::CrossEntropyLossConfig;
use burn::nn::{BatchNorm, BatchNormConfig, Dropout, DropoutConfig, PaddingConfig2d};
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{AdamConfig, AdamWConfig, GradientsParams, Optimizer, SgdConfig};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{ElementConversion, Int, Tensor, TensorData, activation};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

use crate::sequence::{ReadOptions, Sequence};

/// Classes of the per-pixel map.
pub const CLASSES: usize = 3;

#[derive(Module, Debug)]
pub struct ThermoNet<B: Backend> {
    pub(crate) conv1: Conv2d<B>,
    pub(crate) bn1: Option<BatchNorm<B>>,
    pub(crate) conv2: Conv2d<B>,
    pub(crate) bn2: Option<BatchNorm<B>>,
    pub(crate) conv3: Conv2d<B>,
    pub(crate) bn3: Option<BatchNorm<B>>,
    pub(crate) dropout: Dropout,
    pub(crate) head: Conv2d<B>,
}

impl<B: Backend> ThermoNet<B> {
    /// `batch_norm` adds a batch norm after each hidden convolution (folded at export).
    pub fn new(channels: usize, width: usize, dropout: f64, batch_norm: bool, device: &B::Device) -> Self {
        let bn = || batch_norm.then(|| BatchNormConfig::new(width).init(device));
        let conv = |i: usize, o: usize, k: usize| {
            Conv2dConfig::new([i, o], [k, k])
                .with_padding(PaddingConfig2d::Same)
                .init(device)
        };
        ThermoNet {
            conv1: conv(channels, width, 3),
            bn1: bn(),
            conv2: conv(width, width, 3),
            bn2: bn(),
            conv3: conv(width, width, 3),
            bn3: bn(),
            dropout: DropoutConfig::new(dropout).init(),
            head: conv(width, CLASSES, 1),
        }
    }

    /// `[batch, K, H, W]` features to `[batch, 3, H, W]` logits.
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let norm = |bn: &Option<BatchNorm<B>>, x: Tensor<B, 4>| match bn {
            Some(bn) => bn.forward(x),
            None => x,
        };
        let x = activation::relu(norm(&self.bn1, self.conv1.forward(x)));
        let x = activation::relu(norm(&self.bn2, self.conv2.forward(x)));
        let x = activation::relu(norm(&self.bn3, self.conv3.forward(x)));
        self.head.forward(self.dropout.forward(x))
    }

    /// The trained layers in order, for folding and export: the three 3×3 convolutions
    /// with their batch norms, then the head.
    pub fn layers(&self) -> ([HiddenLayer<'_, B>; 3], &Conv2d<B>) {
        (
            [
                (&self.conv1, self.bn1.as_ref()),
                (&self.conv2, self.bn2.as_ref()),
                (&self.conv3, self.bn3.as_ref()),
            ],
            &self.head,
        )
    }
}

/// A hidden convolution and its batch norm, if any.
pub type HiddenLayer<'a, B> = (&'a Conv2d<B>, Option<&'a BatchNorm<B>>);

/// A per-pixel classifier the training loop can train: the ThermoNet, or a network
/// burn-import generated from a shipped ONNX file (fine-tuning).
pub trait Segmenter<B: Backend>: Module<B> + Clone {
    /// `[batch, K, H, W]` features to `[batch, classes, H, W]` logits.
    fn segment(&self, x: Tensor<B, 4>) -> Tensor<B, 4>;
    /// Sum of |w| over the convolution weights (the L1 penalty), if any.
    fn l1(&self) -> Option<Tensor<B, 1>>;
}

impl<B: Backend> Segmenter<B> for ThermoNet<B> {
    fn segment(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        self.forward(x)
    }

    fn l1(&self) -> Option<Tensor<B, 1>> {
        let (convs, head) = self.layers();
        convs
            .iter()
            .map(|(c, _)| c.weight.val())
            .chain(std::iter::once(head.weight.val()))
            .map(|w| w.abs().sum())
            .reduce(|a, b| a + b)
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
    /// The int8 feature image as the device computes it (HWC); empty for augmented copies.
    pub image: Vec<i8>,
    /// True defect depth per pixel in mm (NaN sound, 0 surface) from `depth.npy`; empty
    /// when the recording has none, and for augmented copies.
    pub depth_mm: Vec<f32>,
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
        image,
        depth_mm: seq.depth_mm.clone().unwrap_or_default(),
    })
}

/// The optimizer of a training run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum)]
pub enum OptimizerKind {
    Adam,
    /// Adam with decoupled weight decay.
    Adamw,
    /// SGD with Nesterov momentum 0.9.
    Sgd,
}

/// Augmentation of the feature images during training.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Augment {
    /// Random horizontal and vertical flips.
    pub flips: bool,
    /// Gain of the amplitude channel, uniform in `1 ± gain` (emissivity, lamp power).
    pub gain: f32,
    /// Lamp-profile tilt of the amplitude channel: up to `± tilt` from edge to centre.
    pub tilt: f32,
    /// Gaussian noise on every feature, in feature units.
    pub noise: f32,
}

impl Augment {
    pub const NONE: Augment = Augment {
        flips: false,
        gain: 0.0,
        tilt: 0.0,
        noise: 0.0,
    };
    pub const DEFAULT: Augment = Augment {
        flips: true,
        gain: 0.1,
        tilt: 0.1,
        noise: 0.01,
    };
}

#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TrainConfig {
    pub epochs: usize,
    /// Peak learning rate (after the warm-up).
    pub learning_rate: f64,
    /// Epochs of linear warm-up from zero; cosine decay to 1 % of the peak afterwards.
    pub warmup_epochs: usize,
    pub optimizer: OptimizerKind,
    /// L2 penalty (decoupled for AdamW).
    pub weight_decay: f32,
    /// L1 penalty on the convolution weights, added to the loss (0 = off).
    pub l1: f32,
    /// Dropout before the head.
    pub dropout: f64,
    /// Batch norm after the hidden convolutions. With one plate per step its statistics
    /// are per plate, and inference-mode running statistics can part from them.
    pub batch_norm: bool,
    pub width: usize,
    pub seed: u64,
    /// Loss weight of each class (rare defect pixels count more).
    pub class_weights: [f32; CLASSES],
    /// Stop after this many epochs without a better validation score (`None`: never).
    pub patience: Option<usize>,
    pub augment: Augment,
}

impl TrainConfig {
    /// Learning rate at `step` of `total` (warm-up steps first).
    pub fn rate_at(&self, step: usize, warmup: usize, total: usize) -> f64 {
        if step < warmup {
            return self.learning_rate * (step + 1) as f64 / warmup as f64;
        }
        let span = total.saturating_sub(warmup).max(1) as f64;
        let f = ((step - warmup) as f64 / span).min(1.0);
        let floor = 0.01 * self.learning_rate;
        floor + (self.learning_rate - floor) * 0.5 * (1.0 + (std::f64::consts::PI * f).cos())
    }
}

#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct EpochReport {
    pub epoch: usize,
    pub learning_rate: f64,
    pub train_loss: f64,
    pub validation_loss: f64,
    pub iou: [f64; CLASSES],
    /// Mean IoU of the defect classes: what early stopping watches.
    pub score: f64,
}

/// The validation score early stopping watches: mean IoU of the two defect classes.
pub fn score(iou: &[f64; CLASSES]) -> f64 {
    0.5 * (iou[1] + iou[2])
}

/// The epoch whose model [`train`] keeps: the first to reach the highest score.
pub fn best_epoch(reports: &[EpochReport]) -> Option<&EpochReport> {
    reports.iter().fold(None, |best: Option<&EpochReport>, r| match best {
        Some(b) if r.score <= b.score => Some(b),
        _ => Some(r),
    })
}

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("no training plates")]
    NoTrainingPlates,
    #[error("no validation plates: early stopping and the metrics need a validation split")]
    NoValidationPlates,
    #[error("the training plates hold no defect pixel: nothing to learn")]
    NoDefects,
    #[error("plate {index} is {found}, the first plate {expected}: all plates need one shape")]
    Shape {
        index: usize,
        expected: String,
        found: String,
    },
    #[error("label {label} at pixel {pixel} of plate {index} is not a class (0..{CLASSES})")]
    Label { index: usize, pixel: usize, label: u8 },
    #[error("the loss became {value} at epoch {epoch}: lower the learning rate")]
    Diverged { epoch: usize, value: f64 },
    #[error("invalid configuration: {0}")]
    Config(&'static str),
}

fn check_data(train: &[Sample], validation: &[Sample], cfg: &TrainConfig) -> Result<(), TrainError> {
    let first = train.first().ok_or(TrainError::NoTrainingPlates)?;
    if validation.is_empty() {
        return Err(TrainError::NoValidationPlates);
    }
    if cfg.epochs == 0 || cfg.width == 0 {
        return Err(TrainError::Config("epochs and width must be positive"));
    }
    if !(cfg.learning_rate.is_finite() && cfg.learning_rate > 0.0) {
        return Err(TrainError::Config("the learning rate must be positive"));
    }
    if !(0.0..1.0).contains(&cfg.dropout) {
        return Err(TrainError::Config("dropout must be within 0..1"));
    }
    if cfg.class_weights.iter().any(|w| !(w.is_finite() && *w > 0.0)) {
        return Err(TrainError::Config("class weights must be positive"));
    }
    let shape = |s: &Sample| format!("{}×{}×{}", s.channels, s.height, s.width);
    for (index, s) in train.iter().chain(validation).enumerate() {
        if (s.channels, s.height, s.width) != (first.channels, first.height, first.width) {
            return Err(TrainError::Shape {
                index,
                expected: shape(first),
                found: shape(s),
            });
        }
        if let Some((pixel, &label)) = s.labels.iter().enumerate().find(|(_, l)| **l as usize >= CLASSES) {
            return Err(TrainError::Label { index, pixel, label });
        }
    }
    if train.iter().all(|s| s.labels.iter().all(|&l| l == 0)) {
        return Err(TrainError::NoDefects);
    }
    Ok(())
}

/// An augmented copy of `s`; features stay on the int8 grid of `quant`.
pub fn augment(s: &Sample, a: &Augment, quant: tqc_shared::model::QuantParams, rng: &mut ChaCha8Rng) -> Sample {
    let (c, h, w) = (s.channels, s.height, s.width);
    let px = h * w;
    let (flip_x, flip_y) = if a.flips {
        (rng.random::<bool>(), rng.random::<bool>())
    } else {
        (false, false)
    };
    let gain = 1.0 + a.gain * (2.0 * rng.random::<f32>() - 1.0);
    let (tx, ty) = (
        a.tilt * (2.0 * rng.random::<f32>() - 1.0),
        a.tilt * (2.0 * rng.random::<f32>() - 1.0),
    );
    let noise = Normal::new(0.0f32, a.noise.max(0.0)).ok();
    let (lo, hi) = (
        quant.scale * (-128 - quant.zero_point as i32) as f32,
        quant.scale * (127 - quant.zero_point as i32) as f32,
    );
    let mut out = Sample {
        channels: c,
        height: h,
        width: w,
        features: vec![0.0; s.features.len()],
        labels: vec![0; px],
        image: Vec::new(),
        depth_mm: Vec::new(),
    };
    for y in 0..h {
        let sy = if flip_y { h - 1 - y } else { y };
        for x in 0..w {
            let sx = if flip_x { w - 1 - x } else { x };
            let (d, src) = (y * w + x, sy * w + sx);
            out.labels[d] = s.labels[src];
            let u = 2.0 * x as f32 / (w.max(2) - 1) as f32 - 1.0;
            let v = 2.0 * y as f32 / (h.max(2) - 1) as f32 - 1.0;
            for k in 0..c {
                let mut f = s.features[k * px + src];
                if k == 0 {
                    // The amplitude is a ratio stored as its deviation from 1.
                    f = (f + 1.0) * gain * (1.0 + tx * u + ty * v) - 1.0;
                }
                if let Some(n) = noise {
                    f += n.sample(rng);
                }
                // Back onto the device's grid: the network only ever sees int8 features.
                let q = (f / quant.scale).round() * quant.scale;
                out.features[k * px + d] = q.clamp(lo, hi);
            }
        }
    }
    out
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

/// Per-class IoU of a prediction against labels (1 for a class absent from both).
pub fn iou(pred: &[u8], labels: &[u8]) -> [f64; CLASSES] {
    let m = confusion(pred, labels);
    let mut out = [0.0; CLASSES];
    for (c, o) in out.iter_mut().enumerate() {
        let inter = m[c][c];
        let union: u64 = (0..CLASSES).map(|k| m[c][k] + m[k][c]).sum::<u64>() - inter;
        *o = if union == 0 { 1.0 } else { inter as f64 / union as f64 };
    }
    out
}

/// Confusion matrix, `[true class][predicted class]` pixel counts.
pub fn confusion(pred: &[u8], labels: &[u8]) -> [[u64; CLASSES]; CLASSES] {
    let mut m = [[0u64; CLASSES]; CLASSES];
    for (&p, &l) in pred.iter().zip(labels) {
        if (p as usize) < CLASSES && (l as usize) < CLASSES {
            m[l as usize][p as usize] += 1;
        }
    }
    m
}

/// Float logits of one plate, CHW.
pub fn logits<B: Backend, M: Segmenter<B>>(model: &M, sample: &Sample, device: &B::Device) -> Vec<f32> {
    let (x, _) = batch::<B>(&[sample], device);
    model.segment(x).into_data().iter::<f32>().collect()
}

/// Predicted classes of `samples` (argmax of the logits).
pub fn predict<B: Backend, M: Segmenter<B>>(model: &M, samples: &[&Sample], device: &B::Device) -> Vec<u8> {
    let (x, _) = batch::<B>(samples, device);
    let logits = pixel_rows(model.segment(x));
    let idx = logits.argmax(1);
    idx.into_data().iter::<i64>().map(|v| v as u8).collect()
}

/// Trains on `train` (one plate per step, all plates every epoch in a seeded order),
/// reports each epoch on `validation`, and returns the model of the best epoch.
pub fn train<B: AutodiffBackend>(
    train: &[Sample],
    validation: &[Sample],
    cfg: &TrainConfig,
    quant: tqc_shared::model::QuantParams,
    device: &B::Device,
    on_epoch: impl FnMut(&EpochReport),
) -> Result<(ThermoNet<B::InnerBackend>, Vec<EpochReport>), TrainError> {
    check_data(train, validation, cfg)?;
    B::seed(device, cfg.seed);
    let model = ThermoNet::<B>::new(train[0].channels, cfg.width, cfg.dropout, cfg.batch_norm, device);
    continue_training(model, train, validation, cfg, quant, device, on_epoch)
}

/// The training loop from a given model (a fresh one, or a shipped one for fine-tuning).
pub fn continue_training<B: AutodiffBackend, M>(
    model: M,
    train: &[Sample],
    validation: &[Sample],
    cfg: &TrainConfig,
    quant: tqc_shared::model::QuantParams,
    device: &B::Device,
    on_epoch: impl FnMut(&EpochReport),
) -> Result<(M::InnerModule, Vec<EpochReport>), TrainError>
where
    M: Segmenter<B> + AutodiffModule<B>,
    M::InnerModule: Segmenter<B::InnerBackend>,
{
    check_data(train, validation, cfg)?;
    match cfg.optimizer {
        OptimizerKind::Adam => {
            let o = AdamConfig::new()
                .with_weight_decay((cfg.weight_decay > 0.0).then(|| WeightDecayConfig::new(cfg.weight_decay)))
                .init();
            run(model, o, train, validation, cfg, quant, device, on_epoch)
        }
        OptimizerKind::Adamw => {
            let o = AdamWConfig::new().with_weight_decay(cfg.weight_decay).init();
            run(model, o, train, validation, cfg, quant, device, on_epoch)
        }
        OptimizerKind::Sgd => {
            let o = SgdConfig::new()
                .with_momentum(Some(MomentumConfig {
                    momentum: 0.9,
                    dampening: 0.0,
                    nesterov: true,
                }))
                .with_weight_decay((cfg.weight_decay > 0.0).then(|| WeightDecayConfig::new(cfg.weight_decay)))
                .init();
            run(model, o, train, validation, cfg, quant, device, on_epoch)
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn run<B: AutodiffBackend, M, O: Optimizer<M, B>>(
    mut model: M,
    mut optim: O,
    train: &[Sample],
    validation: &[Sample],
    cfg: &TrainConfig,
    quant: tqc_shared::model::QuantParams,
    device: &B::Device,
    mut on_epoch: impl FnMut(&EpochReport),
) -> Result<(M::InnerModule, Vec<EpochReport>), TrainError>
where
    M: Segmenter<B> + AutodiffModule<B>,
    M::InnerModule: Segmenter<B::InnerBackend>,
{
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed ^ 0x7471_635f_6175_6731);
    let loss_fn = CrossEntropyLossConfig::new()
        .with_weights(Some(cfg.class_weights.to_vec()))
        .init(device);
    let loss_valid = CrossEntropyLossConfig::new()
        .with_weights(Some(cfg.class_weights.to_vec()))
        .init::<B::InnerBackend>(device);
    let total_steps = cfg.epochs * train.len();
    let warmup_steps = cfg.warmup_epochs * train.len();
    let mut order: Vec<usize> = (0..train.len()).collect();
    let (mut reports, mut best): (Vec<EpochReport>, Option<(f64, M::InnerModule)>) = (Vec::new(), None);
    let mut since_best = 0;
    let mut step = 0;
    for epoch in 1..=cfg.epochs {
        order.shuffle(&mut rng);
        let (mut total, mut rate) = (0.0, 0.0);
        for &i in &order {
            let s = augment(&train[i], &cfg.augment, quant, &mut rng);
            let (x, y) = batch::<B>(&[&s], device);
            let mut loss = loss_fn.forward(pixel_rows(model.segment(x)), y);
            if cfg.l1 > 0.0
                && let Some(l1) = model.l1()
            {
                loss = loss + l1.mul_scalar(cfg.l1);
            }
            let value = loss.clone().into_scalar().elem::<f64>();
            if !value.is_finite() {
                return Err(TrainError::Diverged { epoch, value });
            }
            total += value;
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            rate = cfg.rate_at(step, warmup_steps, total_steps);
            model = optim.step(rate, model, grads);
            step += 1;
        }
        let valid = model.valid();
        let (mut vloss, mut pred, mut truth) = (0.0, Vec::new(), Vec::new());
        for s in validation {
            let (x, y) = batch::<B::InnerBackend>(&[s], device);
            vloss += loss_valid
                .forward(pixel_rows(valid.segment(x)), y)
                .into_scalar()
                .elem::<f64>();
            pred.extend(predict(&valid, &[s], device));
            truth.extend_from_slice(&s.labels);
        }
        let iou = iou(&pred, &truth);
        let report = EpochReport {
            epoch,
            learning_rate: rate,
            train_loss: total / train.len() as f64,
            validation_loss: vloss / validation.len() as f64,
            iou,
            score: score(&iou),
        };
        on_epoch(&report);
        let better = best.as_ref().is_none_or(|(b, _)| report.score > *b);
        reports.push(report);
        if better {
            best = Some((reports[reports.len() - 1].score, valid));
            since_best = 0;
        } else {
            since_best += 1;
            if cfg.patience.is_some_and(|p| since_best >= p) {
                break;
            }
        }
    }
    let (_, model) = best.ok_or(TrainError::Config("no epoch ran"))?;
    Ok((model, reports))
}

/// Recorder of trained weights (full precision, named MessagePack).
pub type Recorder = burn::record::NamedMpkFileRecorder<burn::record::FullPrecisionSettings>;

/// Writes the weights to `path` (`.mpk` is added).
pub fn save<B: Backend>(model: &ThermoNet<B>, path: &std::path::Path) -> Result<(), burn::record::RecorderError> {
    model.clone().save_file(path.to_path_buf(), &Recorder::new())
}

/// Reads weights written by [`save`] into a network of the given size.
pub fn load<B: Backend>(
    path: &std::path::Path,
    channels: usize,
    width: usize,
    batch_norm: bool,
    device: &B::Device,
) -> Result<ThermoNet<B>, burn::record::RecorderError> {
    ThermoNet::new(channels, width, 0.0, batch_norm, device).load_file(path.to_path_buf(), &Recorder::new(), device)
}
