//! A training run from a dataset folder to exported artifacts: the feature schedule for
//! the dataset's station, the plates through the shared extractor, the float training
//! (from scratch or from a shipped model), batch-norm folding checked against burn,
//! int8 quantization (post-training, or quantization-aware), export, and the training
//! record written beside the artifacts. Progress goes to a [`Progress`]; what a person
//! would look at comes back in the [`TrainOutcome`].

use std::io::Write;
use std::path::{Path, PathBuf};

use burn::backend::Autodiff;
use rayon::prelude::*;
use tqc_data::index::{DatasetIndex, IndexError, Split};
use tqc_data::recording::{MetaError, RecordingMeta};
use tqc_shared::features::{FeatureError, FeatureSpec};

use crate::cnn::{
    self, Architecture, DataError, EpochReport, Sample, Segmenter, TrainConfig, TrainError, WeightsError, best_epoch,
    confusion, load_sample, logits, predict, train,
};
use crate::export::fold::{FloatNet, OnnxReadError};
use crate::export::quantize::{self, QuantizeError};
use crate::export::{Artifacts, ExportError, export_quantized};
use crate::qat::QatError;

/// The backend without autodiff (training, validation, export): burn's Flex CPU backend
/// on every core — its matrix products split the outputs, not the sums, and it sums on
/// several threads only above 4 M elements (our tensors hold < 1 M), so a seed still
/// reproduces a run (tested) — or, with the `ndarray` feature, burn-ndarray
/// single-threaded (its threads are not reproducible for a seed).
#[cfg(not(feature = "ndarray"))]
pub type Inner = burn_flex::Flex;
#[cfg(feature = "ndarray")]
pub type Inner = burn::backend::NdArray<f32>;
/// The name of [`Inner`], as training records keep it.
#[cfg(not(feature = "ndarray"))]
pub const BACKEND: &str = "burn-flex (threads, SIMD)";
#[cfg(feature = "ndarray")]
pub const BACKEND: &str = "burn-ndarray (one thread)";
/// The training backend: [`Inner`] with autodiff.
pub type Backend = Autodiff<Inner>;

pub use tqc_eval::features::FEATURE_QUANT;

/// The header of `metrics.csv` and `qat-metrics.csv`.
pub const CSV_HEADER: &str = "epoch,learning_rate,train_loss,validation_loss,iou_sound,iou_subsurface,iou_surface,found,false_fail,depth_mae_mm,score";

/// Why a training run stopped.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Index(#[from] IndexError),
    #[error(transparent)]
    Meta(#[from] MetaError),
    #[error("{0}")]
    Schedule(String),
    #[error("the feature schedule")]
    Features(#[from] FeatureError),
    #[error("loading {dir}")]
    Plate {
        dir: PathBuf,
        #[source]
        source: DataError,
    },
    #[error(transparent)]
    Train(#[from] TrainError),
    #[error(transparent)]
    Qat(#[from] QatError),
    #[error(transparent)]
    Quantize(#[from] QuantizeError),
    #[error(transparent)]
    Export(#[from] ExportError),
    #[error(transparent)]
    Weights(#[from] WeightsError),
    #[error(transparent)]
    Write(#[from] tqc_data::io::WriteError),
    #[error("cannot write {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}")]
    OnnxRead {
        path: PathBuf,
        #[source]
        source: OnnxReadError,
    },
    #[error("{0}")]
    Model(String),
}

fn io_at(path: &Path) -> impl FnOnce(std::io::Error) -> PipelineError + '_ {
    move |source| PipelineError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A schedule for a dataset's station. The first sample (the amplitude channel and the
/// reference of the shape channels) falls at half the shortest heating of any plate:
/// while the lamps are on, lateral diffusion has not yet blurred a surface spot and deep
/// defects have not yet reached the surface, so a spot's absorptivity or emissivity
/// stands out more sharply than after the heating. The other `channels - 1` are
/// log-spaced from just after the longest heating (no cooling sample falls inside a
/// heating) to near the end of the shortest recording.
pub fn schedule_for(plate_dirs: &[PathBuf], channels: usize) -> Result<FeatureSpec, PipelineError> {
    let (mut heating, mut shortest_heating, mut duration) = (0.0f64, f64::INFINITY, f64::INFINITY);
    for dir in plate_dirs {
        let meta = RecordingMeta::read(dir)?;
        let this_heating = meta.heating_s();
        heating = heating.max(this_heating);
        shortest_heating = shortest_heating.min(this_heating);
        duration = duration.min(meta.specimen.station.recording.duration_s);
    }
    let first = (heating * 1.15 * 1000.0).max(500.0) as u32;
    let last = (duration / 1.12 * 1000.0) as u32;
    if last <= first {
        return Err(PipelineError::Schedule(format!(
            "the recording ({duration} s) is too short after the heating ({heating} s) for features"
        )));
    }
    if channels < 3 {
        return Err(PipelineError::Schedule(format!(
            "a schedule needs at least 3 channels (one during the heating, two after), not {channels}"
        )));
    }
    let mut spec = FeatureSpec::log_spaced(first, last, channels - 1, 100)?;
    let during = (shortest_heating * 0.5 * 1000.0).max(500.0) as u32;
    spec.times_ms
        .insert(0, during)
        .map_err(|_| PipelineError::Schedule(format!("{channels} channels: more than the engine's 16")))?;
    spec.check()?;
    Ok(spec)
}

/// The schedule for a dataset: [`schedule_for`] over all its plates, test plates included
/// (their station must fit the schedule too), with the amplitude window asked for.
pub fn dataset_schedule(data: &Path, channels: usize, amplitude_window_px: u16) -> Result<FeatureSpec, PipelineError> {
    let index = DatasetIndex::read(data)?;
    let all: Vec<PathBuf> = Split::ALL.iter().flat_map(|&s| index.dirs(data, s)).collect();
    let mut spec = schedule_for(&all, channels)?;
    spec.amplitude_window_px = amplitude_window_px;
    spec.check()
        .map_err(|e| PipelineError::Schedule(format!("--amplitude-window: {e}")))?;
    Ok(spec)
}

/// The plates in `dirs` as training samples (in parallel).
pub fn load_plates(dirs: &[PathBuf], spec: &FeatureSpec) -> Result<Vec<Sample>, PipelineError> {
    dirs.par_iter()
        .map(|d| load_sample(d, spec, FEATURE_QUANT).map_err(|source| PipelineError::Plate { dir: d.clone(), source }))
        .collect()
}

/// What a training run leaves beside the artifacts (read by the model card).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct TrainingRecord {
    pub data: String,
    pub dataset_index: DatasetIndex,
    pub config: TrainConfig,
    pub features: FeatureSpec,
    pub channels: usize,
    pub epochs_run: usize,
    pub best_epoch: usize,
    pub train_plates: usize,
    pub validation_plates: usize,
    pub wall_time_s: f64,
    pub parameters: usize,
    pub macs: usize,
    pub float_vs_burn_max_abs: f32,
    /// The CPU backend the epochs ran on ([`BACKEND`]); records older than the field were
    /// all trained on burn-ndarray.
    #[serde(default = "ndarray_backend")]
    pub backend: String,
    /// The quantization-aware fine-tuning after the float training, if any.
    #[serde(default)]
    pub qat: Option<QatRecord>,
    /// The record of the model a fine-tuning started from (`<from>.training.json`).
    #[serde(default)]
    pub source: Option<Box<TrainingRecord>>,
    /// The decision margin folded into the exported class head (0 before the field).
    #[serde(default)]
    pub decision_margin: f32,
}

fn ndarray_backend() -> String {
    "burn-ndarray (one thread)".into()
}

impl TrainingRecord {
    /// Wall seconds of the training loop (steps and each epoch's validation) per training
    /// plate and epoch: the figure backends and batch sizes are compared by.
    pub fn seconds_per_plate_epoch(&self) -> f64 {
        self.wall_time_s / (self.epochs_run * self.train_plates).max(1) as f64
    }

    /// The record `trainer train` wrote beside a model file (`<name>.training.json`), if any.
    pub fn beside(model: &Path) -> Option<TrainingRecord> {
        let text = std::fs::read_to_string(model.with_extension("training.json")).ok()?;
        tqc_data::io::parse_json(&text).ok()
    }
}

/// What the quantization-aware fine-tuning did.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct QatRecord {
    pub epochs_planned: usize,
    pub epochs_run: usize,
    pub learning_rate: f64,
    /// Validation score (mean defect IoU, int8-simulated) of the post-training-quantized start.
    pub start_score: f64,
    /// The best quantization-aware epoch and its score.
    pub best_score: f64,
    pub best_epoch: usize,
    /// Whether that epoch beat the start and ships (otherwise the start ships).
    pub improved: bool,
    pub wall_time_s: f64,
    /// Activation ranges the blob is quantized with.
    pub ranges: Vec<(f32, f32)>,
}

/// Quantization-aware fine-tuning after the float training.
#[derive(Clone, Copy, Debug)]
pub struct Qat {
    pub epochs: usize,
    pub learning_rate: f64,
}

/// Where and how a run exports.
pub struct Options<'a> {
    pub name: &'a str,
    pub export_to: &'a Path,
    pub qat: Option<Qat>,
    /// Logit margin a defect call needs over sound, folded into the exported class head
    /// ([`FloatNet::with_decision_margin`]); 0 is the plain argmax.
    pub decision_margin: f32,
}

/// Told how a run advances (a progress bar, a log).
pub trait Progress {
    /// A training stage of `epochs` epochs begins (`"epochs"`, `"quantization-aware epochs"`).
    fn stage(&mut self, what: &str, epochs: usize);
    fn epoch(&mut self, report: &EpochReport);
    /// The stage ended.
    fn done(&mut self);
}

/// The training loop of a job: train and validation plates, a per-epoch callback.
pub type TrainFn<'a, M> =
    dyn FnOnce(&[Sample], &[Sample], &mut dyn FnMut(&EpochReport)) -> Result<(M, Vec<EpochReport>), TrainError> + 'a;

/// What differs between training from scratch and fine-tuning.
pub struct Job<'a, M> {
    pub spec: FeatureSpec,
    /// The training record of the model this job starts from, if any.
    pub source: Option<TrainingRecord>,
    pub train: Box<TrainFn<'a, M>>,
    pub save: &'a dyn Fn(&M, &Path) -> Result<(), PipelineError>,
    pub float_net: &'a dyn Fn(&M) -> FloatNet,
}

/// What a run produced, for the person who started it.
pub struct TrainOutcome {
    pub reports: Vec<EpochReport>,
    /// The quantization-aware epochs, if any ran.
    pub qat_reports: Vec<EpochReport>,
    /// The confusion matrix of the kept model on the validation plates.
    pub validation_confusion: [[u64; cnn::CLASSES]; cnn::CLASSES],
    /// The first validation plates and the kept model's classes on them.
    pub validation_maps: Vec<(Sample, Vec<u8>)>,
    pub record: TrainingRecord,
    pub artifacts: Artifacts,
}

/// Trains a fresh ThermoNet on `data` and exports it.
pub fn run(
    data: &Path,
    out: &Path,
    cfg: &TrainConfig,
    (channels, amplitude_window_px): (usize, u16),
    opts: &Options<'_>,
    progress: &mut dyn Progress,
) -> Result<TrainOutcome, PipelineError> {
    if cfg.epochs == 0 && opts.qat.is_none() {
        return Err(PipelineError::Model(
            "no epoch to run: a fresh network needs --epochs, or --qat-epochs after --epochs 0".into(),
        ));
    }
    let device = Default::default();
    let spec = dataset_schedule(data, channels, amplitude_window_px)?;
    match cfg.architecture {
        Architecture::Thermonet => {
            let job = Job {
                spec,
                source: None,
                train: Box::new(|t: &[Sample], v: &[Sample], f: &mut dyn FnMut(&EpochReport)| {
                    train::<Backend>(t, v, cfg, FEATURE_QUANT, &device, f)
                }),
                save: &|m, p| Ok(cnn::save(m, p)?),
                float_net: &|m| FloatNet::from_burn(m),
            };
            run_job(data, out, cfg, opts, job, progress)
        }
        Architecture::Thermonet2 | Architecture::Thermonet2Refined | Architecture::Thermonet2Sharp => {
            let job = Job {
                spec,
                source: None,
                train: Box::new(|t: &[Sample], v: &[Sample], f: &mut dyn FnMut(&EpochReport)| {
                    cnn::train_thermonet2::<Backend>(t, v, cfg, FEATURE_QUANT, &device, f)
                }),
                save: &|m, p| Ok(cnn::save_thermonet2(m, p)?),
                float_net: &|m| m.float_net(),
            };
            run_job(data, out, cfg, opts, job, progress)
        }
    }
}

fn epoch_line(csv: &mut std::fs::File, r: &EpochReport) -> std::io::Result<()> {
    writeln!(
        csv,
        "{},{:.6},{:.6},{:.6},{:.4},{:.4},{:.4},{:.4},{:.4},{},{:.4}",
        r.epoch,
        r.learning_rate,
        r.train_loss,
        r.validation_loss,
        r.iou[0],
        r.iou[1],
        r.iou[2],
        r.found,
        r.false_fail,
        r.depth_mae_mm.map_or(String::new(), |m| format!("{m:.4}")),
        r.score
    )
}

/// Quantization-aware fine-tuning of the folded `net` (same recipe as `cfg`, without
/// warm-up, at the QAT learning rate); `qat-metrics.csv` in `out`.
fn quantization_aware(
    net: &FloatNet,
    (train_set, val_set): (&[Sample], &[Sample]),
    cfg: &TrainConfig,
    q: Qat,
    out: &Path,
    progress: &mut dyn Progress,
) -> Result<(FloatNet, QatRecord, Vec<EpochReport>), PipelineError> {
    let qcfg = TrainConfig {
        epochs: q.epochs,
        learning_rate: q.learning_rate,
        warmup_epochs: 0,
        batch_norm: false,
        ..*cfg
    };
    let path = out.join("qat-metrics.csv");
    let mut csv = std::fs::File::create(&path).map_err(io_at(&path))?;
    writeln!(csv, "{CSV_HEADER}").map_err(io_at(&path))?;
    progress.stage("quantization-aware epochs", q.epochs);
    let started = std::time::Instant::now();
    let device = Default::default();
    let mut written = Ok(());
    let outcome = crate::qat::fine_tune::<Backend>(net, train_set, val_set, &qcfg, FEATURE_QUANT, &device, |r| {
        if written.is_ok() {
            written = epoch_line(&mut csv, r);
        }
        progress.epoch(r);
    })?;
    progress.done();
    written.map_err(io_at(&path))?;
    let best =
        best_epoch(&outcome.reports).ok_or_else(|| PipelineError::Model("no quantization-aware epoch ran".into()))?;
    let record = QatRecord {
        epochs_planned: q.epochs,
        epochs_run: outcome.reports.len(),
        learning_rate: q.learning_rate,
        start_score: outcome.start_score,
        best_score: best.score,
        best_epoch: best.epoch,
        improved: outcome.improved,
        wall_time_s: started.elapsed().as_secs_f64(),
        ranges: outcome.ranges,
    };
    Ok((outcome.net, record, outcome.reports))
}

/// A run: train (as `job` says), fold, quantize, export, record.
pub fn run_job<M: Segmenter<Inner>>(
    data: &Path,
    out: &Path,
    cfg: &TrainConfig,
    opts: &Options<'_>,
    job: Job<'_, M>,
    progress: &mut dyn Progress,
) -> Result<TrainOutcome, PipelineError> {
    // Refused before any epoch runs: the margin is folded only after the training.
    crate::export::fold::check_margin(opts.decision_margin).map_err(|e| PipelineError::Model(e.to_string()))?;
    let index = DatasetIndex::read(data)?;
    let (train_dirs, val_dirs) = (index.dirs(data, Split::Train), index.dirs(data, Split::Validation));
    if train_dirs.is_empty() || val_dirs.is_empty() {
        return Err(PipelineError::Model(format!(
            "{}: the index needs plates in both the train and the validation split",
            data.display()
        )));
    }
    let spec = job.spec.clone();
    let channels = spec.channels();
    let (train_set, val_set) = (load_plates(&train_dirs, &spec)?, load_plates(&val_dirs, &spec)?);

    // Float training, one CSV line per epoch.
    std::fs::create_dir_all(out).map_err(io_at(out))?;
    let metrics = out.join("metrics.csv");
    let mut csv = std::fs::File::create(&metrics).map_err(io_at(&metrics))?;
    writeln!(csv, "{CSV_HEADER}").map_err(io_at(&metrics))?;
    progress.stage("epochs", cfg.epochs);
    let started = std::time::Instant::now();
    let device = Default::default();
    let mut written = Ok(());
    let (model, reports) = (job.train)(&train_set, &val_set, &mut |r: &EpochReport| {
        if written.is_ok() {
            written = epoch_line(&mut csv, r);
        }
        progress.epoch(r);
    })?;
    progress.done();
    written.map_err(io_at(&metrics))?;
    let wall = started.elapsed().as_secs_f64();
    let best = best_epoch(&reports);
    (job.save)(&model, &out.join("model"))?;

    // The kept model on the validation plates.
    let (mut pred, mut truth) = (Vec::new(), Vec::new());
    let mut validation_maps = Vec::new();
    for (i, s) in val_set.iter().enumerate() {
        let p = predict::<Inner, M>(&model, &[s], &device);
        truth.extend_from_slice(&s.labels);
        pred.extend_from_slice(&p);
        if i < 4 {
            validation_maps.push((s.clone(), p));
        }
    }
    let validation_confusion = confusion(&pred, &truth);

    // Fold and check the fold against burn.
    let net = (job.float_net)(&model);
    let probe = &val_set[0];
    let reference = logits::<Inner, M>(&model, probe, &device);
    let folded = net.forward(&probe.features, probe.height, probe.width);
    let max_abs = reference
        .iter()
        .zip(&folded)
        .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
    let (h, w) = (probe.height, probe.width);
    // Quantize (after a quantization-aware fine-tuning, with its ranges) and export. The
    // decision margin is an operating point, not something to learn: it is folded after
    // the fine-tuning (whose loss would pull the sound bias back) and before the plain
    // calibration, so the logits' range is the exported one's.
    let margin = |net: FloatNet| {
        net.with_decision_margin(opts.decision_margin)
            .map_err(|e| PipelineError::Model(e.to_string()))
    };
    let (net, quant, qat, qat_reports) = match opts.qat {
        None => {
            let net = margin(net)?;
            let quant = quantize::quantize(&net, &train_set, FEATURE_QUANT)?;
            (net, quant, None, Vec::new())
        }
        Some(q) => {
            let (net, mut record, reports) = quantization_aware(&net, (&train_set, &val_set), cfg, q, out, progress)?;
            let net = margin(net)?;
            // The sound logit rises by the margin: so may the top of the logits' range.
            if let Some(range) = net
                .outputs
                .first()
                .and_then(|&t| t.checked_sub(1))
                .and_then(|l| record.ranges.get_mut(l))
            {
                range.1 += opts.decision_margin;
            }
            let quant = quantize::quantize_with(&net, record.ranges.clone(), FEATURE_QUANT)?;
            (net, quant, Some(record), reports)
        }
    };
    let artifacts = export_quantized(&net, quant, (h, w), spec.clone(), opts.name, opts.export_to)?;
    let record = TrainingRecord {
        data: data.display().to_string(),
        dataset_index: index,
        config: *cfg,
        features: spec,
        channels,
        epochs_run: reports.len(),
        best_epoch: best.map_or(0, |b| b.epoch),
        train_plates: train_set.len(),
        validation_plates: val_set.len(),
        wall_time_s: wall,
        parameters: net.parameters(),
        macs: net.macs(h, w),
        float_vs_burn_max_abs: max_abs,
        backend: BACKEND.into(),
        qat,
        source: job.source.map(Box::new),
        decision_margin: opts.decision_margin,
    };
    tqc_data::io::write_json(&opts.export_to.join(format!("{}.training.json", opts.name)), &record)?;
    Ok(TrainOutcome {
        reports,
        qat_reports,
        validation_confusion,
        validation_maps,
        record,
        artifacts,
    })
}

/// A float ONNX file exported by `trainer train`: its layers and its metadata (feature
/// schedule, input quantization, which must be the trainer's).
pub fn read_float_model(path: &Path) -> Result<(FloatNet, crate::export::onnx::Meta), PipelineError> {
    use prost::Message;
    let bytes = std::fs::read(path).map_err(io_at(path))?;
    let onnx_err = |source| PipelineError::OnnxRead {
        path: path.to_path_buf(),
        source,
    };
    let net = FloatNet::from_onnx(&bytes).map_err(onnx_err)?;
    let proto = tract_onnx::pb::ModelProto::decode(bytes.as_slice()).map_err(|e| onnx_err(e.into()))?;
    let meta = crate::export::onnx::read_meta(&proto).ok_or_else(|| {
        PipelineError::Model(format!(
            "{}: no feature schedule in the metadata: only ONNX files exported by `trainer train` carry one",
            path.display()
        ))
    })?;
    if meta.input_quant != FEATURE_QUANT {
        return Err(PipelineError::Model(format!(
            "{}: input quantization {:?} differs from the trainer's {:?}",
            path.display(),
            meta.input_quant,
            FEATURE_QUANT
        )));
    }
    Ok((net, meta))
}

/// `trainer finetune`: the shipped architecture of `from` (a network burn-import generated
/// at build time: ThermoNet when the file has one output, ThermoNet 2 when it also has a
/// depth output) with the weights of `from`, trained further on `data`.
pub fn finetune(
    from: &Path,
    data: &Path,
    out: &Path,
    cfg: &TrainConfig,
    opts: &Options<'_>,
    progress: &mut dyn Progress,
) -> Result<TrainOutcome, PipelineError> {
    let (net, meta) = read_float_model(from)?;
    let args = (from, data, out, cfg, opts, progress);
    if net.depth_output().is_some() {
        #[cfg(shipped_thermonet2)]
        return finetune_as::<crate::finetune::ShippedNet2<Backend>, crate::finetune::ShippedNet2<Inner>>(
            net, meta, args,
        );
        #[cfg(not(shipped_thermonet2))]
        return Err(not_built(from, "thermonet2"));
    }
    #[cfg(shipped_thermonet)]
    return finetune_as::<crate::finetune::ShippedNet<Backend>, crate::finetune::ShippedNet<Inner>>(net, meta, args);
    #[cfg(not(shipped_thermonet))]
    return Err(not_built(from, "thermonet"));
}

/// A build made without the shipped file of `from`'s architecture has no generated
/// network to fine-tune.
#[allow(dead_code)]
fn not_built(from: &Path, name: &str) -> PipelineError {
    PipelineError::Model(format!(
        "cannot fine-tune {}: this trainer was built without onnx_models/{name}.onnx, the shipped architecture \
         the file has (restore it and rebuild)",
        from.display()
    ))
}

type FinetuneArgs<'a, 'o, 'p> = (
    &'a Path,
    &'a Path,
    &'a Path,
    &'a TrainConfig,
    &'a Options<'o>,
    &'p mut dyn Progress,
);

/// Fine-tuning through the generated network `M` (`V` the same without autodiff).
#[allow(dead_code)]
fn finetune_as<M, V>(
    net: FloatNet,
    meta: crate::export::onnx::Meta,
    (from, data, out, cfg, opts, progress): FinetuneArgs<'_, '_, '_>,
) -> Result<TrainOutcome, PipelineError>
where
    M: crate::finetune::Generated<Backend> + burn::module::AutodiffModule<Backend, InnerModule = V>,
    V: Segmenter<Inner>,
{
    let device = Default::default();
    let model = crate::finetune::load::<Backend, M>(&net, &device)
        .map_err(|e| PipelineError::Model(format!("{}: {e} (architecture of {})", from.display(), M::FILE)))?;
    let job = Job {
        spec: meta.features,
        // The record `trainer train` left beside the file, carried into this one's.
        source: TrainingRecord::beside(from),
        train: Box::new(move |t: &[Sample], v: &[Sample], f: &mut dyn FnMut(&EpochReport)| {
            if cfg.epochs == 0 {
                // Straight to the quantization-aware fine-tuning (or the export).
                return Ok((model.valid(), Vec::new()));
            }
            cnn::continue_training::<Backend, _>(model, t, v, cfg, FEATURE_QUANT, &device, f)
        }),
        save: &|m: &V, p: &Path| {
            m.clone()
                .save_file(p.to_path_buf(), &cnn::Recorder::new())
                .map_err(|source| {
                    WeightsError::Record {
                        path: p.to_path_buf(),
                        source,
                    }
                    .into()
                })
        },
        float_net: &|m| crate::finetune::to_float_net(m, &net),
    };
    run_job(data, out, cfg, opts, job, progress)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tqc_data::recording::{RECORDING_VERSION, RunStats, Units};
    use tqc_data::specimen::Heating;
    use tqc_data::{Class, Specimen};

    fn plate(root: &Path, name: &str, heating_s: f64, recording_s: f64) -> PathBuf {
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let mut specimen = Specimen::load("gfrp-sound").unwrap();
        let (Heating::Step { duration_s, .. } | Heating::Flash { duration_s, .. }) = &mut specimen.station.heating;
        *duration_s = heating_s;
        specimen.station.recording.duration_s = recording_s;
        RecordingMeta {
            format_version: RECORDING_VERSION,
            simulator: "test".into(),
            seed: 1,
            width: 4,
            height: 3,
            frames: 2,
            units: Units::simulated(),
            classes: Class::ALL,
            specimen,
            stats: RunStats {
                frames: 2,
                steps: 1,
                z_nodes: 1,
                cell_updates: 1,
                wall_s: Some(1.0),
                cell_updates_per_s: Some(1.0),
            },
        }
        .write(&dir)
        .unwrap();
        dir
    }

    #[test]
    fn the_first_sample_falls_inside_every_heating_and_the_rest_after_all_of_them() {
        let root = tempfile::tempdir().unwrap();
        let dirs = [
            plate(root.path(), "a", 20.0, 300.0),
            plate(root.path(), "b", 30.0, 200.0),
        ];
        let spec = schedule_for(&dirs, 8).unwrap();
        assert_eq!(spec.channels(), 8);
        assert_eq!(spec.times_ms[0], 10_000);
        let (_, end) = spec.window(0);
        assert!(
            end < 20_000,
            "first window ends at {end} ms, after the shortest heating (20 s)"
        );
        let (start, _) = spec.window(1);
        assert!(
            start > 30_000,
            "first cooling window starts at {start} ms, within the longest heating (30 s)"
        );
        let (_, last_end) = spec.window(7);
        assert!(
            last_end <= 200_000,
            "last window ends at {last_end} ms, after the shortest recording (200 s)"
        );
    }

    #[test]
    fn schedules_too_short_or_too_narrow_are_refused() {
        let root = tempfile::tempdir().unwrap();
        let short = [plate(root.path(), "a", 30.0, 33.0)];
        assert!(schedule_for(&short, 8).unwrap_err().to_string().contains("too short"));
        let fine = [plate(root.path(), "b", 30.0, 300.0)];
        assert!(schedule_for(&fine, 2).unwrap_err().to_string().contains("at least 3"));
        let missing = [root.path().join("nowhere")];
        assert!(
            schedule_for(&missing, 8)
                .unwrap_err()
                .to_string()
                .contains("no meta.json")
        );
    }
}
