//! The training loop: configuration, optimizers, learning-rate schedule, class-weighted
//! loss, validation and early stopping.

use burn::module::AutodiffModule;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{AdamConfig, AdamWConfig, GradientsAccumulator, GradientsParams, Optimizer, SgdConfig};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{ElementConversion, Tensor};
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
}

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

/// `[n, 3, h, w]` logits as `[n·h·w, 3]` rows, pixel order matching the labels.
fn pixel_rows<B: Backend>(logits: Tensor<B, 4>) -> Tensor<B, 2> {
    let [n, c, h, w] = logits.dims();
    logits.permute([0, 2, 3, 1]).reshape([n * h * w, c])
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
        let mut loss = loss_fn
            .forward(pixel_rows(worker.segment_train(x, *seed)), y)
            .mul_scalar(share);
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
            train_loss: total / steps_per_epoch as f64,
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
