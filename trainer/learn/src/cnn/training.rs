//! The training loop: configuration, optimizers, learning-rate schedule, class-weighted
//! loss, validation and early stopping.

use burn::module::AutodiffModule;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{AdamConfig, AdamWConfig, GradientsAccumulator, GradientsParams, Optimizer, SgdConfig};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{ElementConversion, Tensor, TensorData};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::data::batch;
use super::*;

/// The optimizer of a training run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
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
    /// Batch norm after the hidden convolutions. Its statistics are per plate, whatever
    /// the batch size (each plate of a step has its own pass), and inference-mode running
    /// statistics can part from them.
    pub batch_norm: bool,
    pub width: usize,
    pub seed: u64,
    /// Loss weight of each class (rare defect pixels count more).
    pub class_weights: [f32; CLASSES],
    /// Stop after this many epochs without a better validation score (`None`: never).
    pub patience: Option<usize>,
    pub augment: Augment,
    /// Plates per optimizer step (the loss is the mean over their pixels).
    #[serde(default = "one_plate")]
    pub batch_size: usize,
    /// The network trained.
    #[serde(default)]
    pub architecture: Architecture,
    /// Weight of the depth loss (pseudo-Huber in mm over the in-depth pixels) against
    /// the class loss; 0 trains no depth.
    #[serde(default)]
    pub depth_weight: f32,
}

/// Which network a run trains.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum Architecture {
    /// Four full-resolution convolutions, a 7-pixel view, classes only.
    #[default]
    Thermonet,
    /// The encoder–decoder: a 63-pixel view, classes and depth.
    Thermonet2,
    /// ThermoNet 2 with a 3×3 refinement after the decoder's 1×1 at 1/4 and 1/2 (a
    /// 75-pixel view, 26.6 M MACs).
    #[cfg_attr(feature = "clap", value(name = "thermonet2-refined"))]
    Thermonet2Refined,
    /// A narrower ThermoNet 2 whose class head is a 3×3 at full resolution (24.8 M MACs).
    #[cfg_attr(feature = "clap", value(name = "thermonet2-sharp"))]
    Thermonet2Sharp,
}

/// Width (mm) of the quadratic core of the depth loss: errors beyond it cost linearly,
/// like the mean absolute error the depth is judged by.
pub const DEPTH_LOSS_CORE_MM: f32 = 0.25;

fn one_plate() -> usize {
    1
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

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EpochReport {
    pub epoch: usize,
    pub learning_rate: f64,
    pub train_loss: f64,
    pub validation_loss: f64,
    pub iou: [f64; CLASSES],
    /// Share of the validation defects found (at least half their footprint flagged).
    #[serde(default)]
    pub found: f64,
    /// Share of the defect-free validation plates a region would FAIL.
    #[serde(default)]
    pub false_fail: f64,
    /// Mean absolute depth error over the true in-depth pixels, for a network with depth.
    #[serde(default)]
    pub depth_mae_mm: Option<f64>,
    /// What early stopping watches ([`score`]).
    pub score: f64,
}

/// The validation score early stopping watches: the mean IoU of the two defect classes
/// and the share of defects found, equally weighted, less the share of sound plates
/// failed — detection at a false-call rate, not outlines alone.
pub fn score(iou: &[f64; CLASSES], found: f64, false_fail: f64) -> f64 {
    0.5 * (0.5 * (iou[1] + iou[2])) + 0.5 * found - false_fail
}

/// What a model's class maps give on validation plates.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Validation {
    pub iou: [f64; CLASSES],
    pub found: f64,
    pub false_fail: f64,
    pub score: f64,
}

/// Scores class maps (`maps[i]` of `plates[i]`) as [`score`] does.
pub fn validate(plates: &[Sample], maps: &[Vec<u8>]) -> Validation {
    let (mut pred, mut truth) = (Vec::new(), Vec::new());
    let (mut defects, mut found, mut sound, mut failed) = (0usize, 0usize, 0usize, 0usize);
    let cfg = tqc_shared::verdict::VerdictConfig::DEFAULT;
    for (s, map) in plates.iter().zip(maps) {
        pred.extend_from_slice(map);
        truth.extend_from_slice(&s.labels);
        let footprints = tqc_eval::score::components(&s.labels, None, s.width, s.height);
        defects += footprints.len();
        found += footprints.iter().filter(|f| f.found_in(map)).count();
        if footprints.is_empty() {
            sound += 1;
            let mut m = map.clone();
            let mut stack = vec![0u32; m.len()];
            let fails = tqc_shared::verdict::inspect::<1>(&mut m, s.width, s.height, &mut stack, &cfg)
                .is_ok_and(|f| f.verdict == tqc_shared::verdict::Verdict::Fail);
            failed += usize::from(fails);
        }
    }
    let iou = iou(&pred, &truth);
    let share = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    let (found, false_fail) = (
        if defects == 0 { 1.0 } else { share(found, defects) },
        share(failed, sound),
    );
    Validation {
        iou,
        found,
        false_fail,
        score: score(&iou, found, false_fail),
    }
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
    if cfg.epochs == 0 || (cfg.width == 0 && cfg.architecture == Architecture::Thermonet) {
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

/// `[n, 3, h, w]` logits as `[n·h·w, 3]` rows, pixel order matching the labels.
fn pixel_rows<B: Backend>(logits: Tensor<B, 4>) -> Tensor<B, 2> {
    let [n, c, h, w] = logits.dims();
    logits.permute([0, 2, 3, 1]).reshape([n * h * w, c])
}

/// The depth target of a plate: per pixel (mask, depth mm), the mask 1 on true in-depth
/// pixels of known depth; and how many there are.
fn depth_target(s: &Sample) -> (Vec<(f32, f32)>, usize) {
    if s.depth_mm.len() != s.labels.len() {
        return (Vec::new(), 0);
    }
    let t: Vec<(f32, f32)> = s
        .labels
        .iter()
        .zip(&s.depth_mm)
        .map(|(&l, &d)| {
            if l == 1 && d.is_finite() && d > 0.0 {
                (1.0, d)
            } else {
                (0.0, 0.0)
            }
        })
        .collect();
    let n = t.iter().filter(|(m, _)| *m > 0.0).count();
    (t, n)
}

/// Sum over the in-depth pixels of `s` of the pseudo-Huber loss of the depth estimate
/// `[1, 1, H, W]`: √(e² + c²) − c, quadratic within [`DEPTH_LOSS_CORE_MM`], linear
/// beyond.
fn depth_loss<B: Backend>(depth: Tensor<B, 4>, s: &Sample, device: &B::Device) -> Tensor<B, 1> {
    let (t, _) = depth_target(s);
    let px = t.len();
    let mask = Tensor::<B, 1>::from_data(TensorData::new(t.iter().map(|p| p.0).collect::<Vec<_>>(), [px]), device);
    let truth = Tensor::<B, 1>::from_data(TensorData::new(t.iter().map(|p| p.1).collect::<Vec<_>>(), [px]), device);
    let c = DEPTH_LOSS_CORE_MM;
    let e = depth.reshape([px]) - truth;
    ((e.clone() * e).add_scalar(c * c).sqrt().sub_scalar(c) * mask).sum()
}

/// Per-class IoU of a prediction against labels (1 for a class absent from both).
pub fn iou(pred: &[u8], labels: &[u8]) -> [f64; CLASSES] {
    tqc_eval::score::iou::<CLASSES>(pred, labels)
}

/// Confusion matrix, `[true class][predicted class]` pixel counts.
pub fn confusion(pred: &[u8], labels: &[u8]) -> [[u64; CLASSES]; CLASSES] {
    tqc_eval::score::confusion::<CLASSES>(pred, labels)
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

/// Trains on `train` (`batch_size` plates per step, all plates every epoch in a seeded
/// order),
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

/// Trains a fresh [`ThermoNet2`] (classes and depth) as [`train`] does.
pub fn train_thermonet2<B: AutodiffBackend>(
    train: &[Sample],
    validation: &[Sample],
    cfg: &TrainConfig,
    quant: tqc_shared::model::QuantParams,
    device: &B::Device,
    on_epoch: impl FnMut(&EpochReport),
) -> Result<(ThermoNet2<B::InnerBackend>, Vec<EpochReport>), TrainError> {
    check_data(train, validation, cfg)?;
    let first = &train[0];
    if !first.height.is_multiple_of(8) || !first.width.is_multiple_of(8) {
        return Err(TrainError::Config(
            "ThermoNet 2 takes frames whose height and width divide by 8",
        ));
    }
    B::seed(device, cfg.seed);
    let shape = match cfg.architecture {
        Architecture::Thermonet2Sharp => ThermoNet2Config::sharp(first.channels, quant),
        a => ThermoNet2Config::standard(first.channels, quant, a == Architecture::Thermonet2Refined),
    };
    let model = shape.init::<B>(cfg.dropout, device);
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

/// The loss of one optimizer step over `plates` (each with its dropout seed) and its
/// gradients. Every plate has its own forward and backward pass on its own copy of the
/// model (the parameters' ids are shared, so the gradients add up per parameter), and the
/// plates are spread over the cores; the class-weighted mean over all their pixels is
/// kept by weighting each plate's own mean by its share of the step's total weight. The
/// gradients are summed in plate order, so the result does not depend on how many
/// threads ran.
fn step_gradients<B: AutodiffBackend, M>(
    model: &M,
    plates: &[(Sample, u64)],
    cfg: &TrainConfig,
    threads: usize,
    device: &B::Device,
) -> (f64, GradientsParams)
where
    M: Segmenter<B> + AutodiffModule<B>,
{
    let weights: Vec<f64> = plates
        .iter()
        .map(|(s, _)| s.labels.iter().map(|&l| f64::from(cfg.class_weights[l as usize])).sum())
        .collect();
    let total_weight: f64 = weights.iter().sum();
    // The depth loss is the mean over the step's in-depth pixels, shared out the same way.
    let depth_pixels: Vec<usize> = plates.iter().map(|(s, _)| depth_target(s).1).collect();
    let total_depth_pixels: usize = depth_pixels.iter().sum();
    let plate = |j: usize, worker: M| -> (usize, f64, GradientsParams) {
        let (s, seed) = &plates[j];
        let loss_fn = CrossEntropyLossConfig::new()
            .with_weights(Some(cfg.class_weights.to_vec()))
            .init(device);
        let (x, y) = batch::<B>(&[s], device);
        let share = if total_weight > 0.0 {
            weights[j] / total_weight
        } else {
            0.0
        };
        let (logits, depth) = worker.segment_depth(x, Some(*seed));
        let mut loss = loss_fn.forward(pixel_rows(logits), y).mul_scalar(share);
        if let Some(depth) = depth.filter(|_| cfg.depth_weight > 0.0 && depth_pixels[j] > 0) {
            let scale = cfg.depth_weight as f64 / total_depth_pixels as f64;
            loss = loss + depth_loss(depth, s, device).mul_scalar(scale);
        }
        // The penalty belongs to the step, not to each plate.
        if j == 0
            && cfg.l1 > 0.0
            && let Some(l1) = worker.l1()
        {
            loss = loss + l1.mul_scalar(cfg.l1);
        }
        let value = loss.clone().into_scalar().elem::<f64>();
        (j, value, GradientsParams::from_grads(loss.backward(), &worker))
    };
    // The copies are made here: a module is Send, not Sync.
    let threads = threads.min(plates.len()).max(1);
    let groups: Vec<Vec<(usize, M)>> = (0..threads)
        .map(|t| {
            (t..plates.len())
                .step_by(threads)
                .map(|j| (j, M::from_inner(model.valid())))
                .collect()
        })
        .collect();
    let run_group = |group: Vec<(usize, M)>| group.into_iter().map(|(j, w)| plate(j, w)).collect::<Vec<_>>();
    let mut results: Vec<(usize, f64, GradientsParams)> = if threads == 1 {
        groups.into_iter().flat_map(run_group).collect()
    } else {
        let run_group = &run_group;
        std::thread::scope(|scope| {
            let handles: Vec<_> = groups
                .into_iter()
                .map(|group| scope.spawn(move || run_group(group)))
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
                .collect()
        })
    };
    results.sort_by_key(|(j, _, _)| *j);
    let mut accumulator = GradientsAccumulator::<M>::new();
    let mut value = 0.0;
    for (_, v, g) in results {
        value += v;
        accumulator.accumulate(model, g);
    }
    (value, accumulator.grads())
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
    let loss_valid = CrossEntropyLossConfig::new()
        .with_weights(Some(cfg.class_weights.to_vec()))
        .init::<B::InnerBackend>(device);
    let batch_size = cfg.batch_size.max(1);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let steps_per_epoch = train.len().div_ceil(batch_size);
    let total_steps = cfg.epochs * steps_per_epoch;
    let warmup_steps = cfg.warmup_epochs * steps_per_epoch;
    let mut order: Vec<usize> = (0..train.len()).collect();
    let (mut reports, mut best): (Vec<EpochReport>, Option<(f64, M::InnerModule)>) = (Vec::new(), None);
    let mut since_best = 0;
    let mut step = 0;
    for epoch in 1..=cfg.epochs {
        order.shuffle(&mut rng);
        let (mut total, mut rate) = (0.0, 0.0);
        for chunk in order.chunks(batch_size) {
            // Augmentation and dropout seeds are drawn here, in plate order, so the
            // threads below change nothing a seed decides.
            let plates: Vec<(Sample, u64)> = chunk
                .iter()
                .map(|&i| (augment(&train[i], &cfg.augment, quant, &mut rng), rng.random::<u64>()))
                .collect();
            let (value, grads) = step_gradients(&model, &plates, cfg, threads, device);
            if !value.is_finite() {
                return Err(TrainError::Diverged { epoch, value });
            }
            total += value;
            rate = cfg.rate_at(step, warmup_steps, total_steps);
            model = optim.step(rate, model, grads);
            step += 1;
        }
        let valid = model.valid();
        let (mut vloss, mut maps) = (0.0, Vec::new());
        let (mut depth_error, mut depth_pixels, mut has_depth) = (0.0, 0usize, false);
        for s in validation {
            let (x, y) = batch::<B::InnerBackend>(&[s], device);
            let (logits, depth) = valid.segment_depth(x, None);
            let rows = pixel_rows(logits);
            maps.push(
                rows.clone()
                    .argmax(1)
                    .into_data()
                    .iter::<i64>()
                    .map(|v| v as u8)
                    .collect(),
            );
            vloss += loss_valid.forward(rows, y).into_scalar().elem::<f64>();
            if let Some(depth) = depth {
                has_depth = true;
                let (t, _) = depth_target(s);
                for (e, (m, d)) in depth.into_data().iter::<f32>().zip(t) {
                    if m > 0.0 {
                        depth_error += f64::from((e - d).abs());
                        depth_pixels += 1;
                    }
                }
            }
        }
        let v = validate(validation, &maps);
        let report = EpochReport {
            epoch,
            learning_rate: rate,
            train_loss: total / steps_per_epoch as f64,
            validation_loss: vloss / validation.len() as f64,
            iou: v.iou,
            found: v.found,
            false_fail: v.false_fail,
            depth_mae_mm: (has_depth && depth_pixels > 0).then(|| depth_error / depth_pixels as f64),
            score: v.score,
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

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, NdArray};
    use burn::optim::SgdConfig;

    type B = Autodiff<NdArray<f32>>;

    fn plate(seed: u64, c: usize, h: usize, w: usize) -> Sample {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        Sample {
            channels: c,
            height: h,
            width: w,
            features: (0..c * h * w).map(|_| rng.random::<f32>() - 0.5).collect(),
            labels: (0..h * w).map(|_| rng.random_range(0..CLASSES as u8)).collect(),
            image: Vec::new(),
            depth_mm: Vec::new(),
            grid: None,
        }
    }

    fn weights(m: &ThermoNet<NdArray<f32>>) -> Vec<f32> {
        let (convs, head) = m.layers();
        convs
            .iter()
            .map(|(c, _)| c.weight.val())
            .chain([head.weight.val()])
            .flat_map(|t| t.into_data().iter::<f32>().collect::<Vec<_>>())
            .collect()
    }

    /// Per-plate passes on several threads give the step the gradient of one pass over
    /// the whole batch (class-weighted mean over all its pixels), and the same bits
    /// whatever the number of threads.
    #[test]
    fn per_plate_gradients_are_the_batch_gradient() {
        let device = Default::default();
        let _turn = crate::cnn::seeded_turn();
        B::seed(&device, 5);
        let model = ThermoNet::<B>::new(2, 3, 0.0, false, &device);
        let cfg = TrainConfig {
            epochs: 1,
            learning_rate: 1.0,
            warmup_epochs: 0,
            optimizer: OptimizerKind::Sgd,
            weight_decay: 0.0,
            l1: 0.0,
            dropout: 0.0,
            batch_norm: false,
            width: 3,
            seed: 5,
            class_weights: [1.0, 6.0, 15.0],
            patience: None,
            augment: Augment::NONE,
            batch_size: 3,
            architecture: Default::default(),
            depth_weight: 0.0,
        };
        let plates: Vec<(Sample, u64)> = (0..3).map(|i| (plate(i, 2, 9, 7), i)).collect();
        let refs: Vec<&Sample> = plates.iter().map(|(s, _)| s).collect();
        let (x, y) = batch::<B>(&refs, &device);
        let loss_fn = CrossEntropyLossConfig::new()
            .with_weights(Some(cfg.class_weights.to_vec()))
            .init(&device);
        let loss = loss_fn.forward(pixel_rows(model.segment(x)), y);
        let joint_value = loss.clone().into_scalar().elem::<f64>();
        let joint = GradientsParams::from_grads(loss.backward(), &model);
        let step = |grads| {
            let mut sgd = SgdConfig::new().init::<B, ThermoNet<B>>();
            weights(&sgd.step(1.0, model.clone(), grads).valid())
        };
        let joint = step(joint);
        let (one_value, one) = step_gradients(&model, &plates, &cfg, 1, &device);
        let (three_value, three) = step_gradients(&model, &plates, &cfg, 3, &device);
        let (one, three) = (step(one), step(three));
        assert!((one_value - joint_value).abs() < 1e-6, "{one_value} vs {joint_value}");
        assert_eq!(one_value.to_bits(), three_value.to_bits());
        assert_eq!(one, three, "the thread count changed the gradients");
        let before = weights(&model.valid());
        let moved = joint
            .iter()
            .zip(&before)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(
            moved > 1e-3,
            "the step moved nothing: the comparison would prove nothing"
        );
        for (k, (a, b)) in one.iter().zip(&joint).enumerate() {
            assert!((a - b).abs() < 1e-5, "weight {k}: {a} per plate vs {b} in one pass");
        }
    }
}
