//! `trainer train`: the CNN on a dataset folder — progress bar, per-epoch metrics in CSV,
//! training curves, confusion matrix and predicted maps in PNG — then batch-norm folding,
//! int8 calibration and export of `<name>.onnx`, `<name>.int8.onnx`, `<name>.tqm`.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result, bail};
use burn::backend::{Autodiff, NdArray};
use indicatif::{ProgressBar, ProgressStyle};
use plotters::prelude::*;

use rayon::prelude::*;
use tqc_shared::features::FeatureSpec;
use tqc_shared::model::QuantParams;
use tqc_trainer::cnn::{
    CLASSES, EpochReport, Sample, Segmenter, TrainConfig, TrainError, best_epoch, confusion, load_sample, logits,
    predict, train,
};
use tqc_trainer::export::fold::FloatNet;
use tqc_trainer::export::quantize;
use tqc_trainer::export::{export_quantized, write_atomic};

pub type Backend = Autodiff<NdArray<f32>>;
type Inner = NdArray<f32>;

/// The input quantization of the features: deviations from the plate median −2..2 (ratios
/// 0..3) in 1/64 steps.
pub const FEATURE_QUANT: QuantParams = QuantParams {
    scale: 1.0 / 64.0,
    zero_point: 0,
};

/// A schedule for a dataset's station. The first sample (the amplitude channel and the
/// reference of the shape channels) falls at half the shortest heating of any plate:
/// while the lamps are on, lateral diffusion has not yet blurred a surface spot and deep
/// defects have not yet reached the surface, so a spot's absorptivity or emissivity
/// stands out more sharply than after the heating. The other
/// `channels - 1` are log-spaced from just after the longest heating (no cooling sample
/// falls inside a heating) to near the end of the shortest recording.
pub fn schedule_for(plate_dirs: &[std::path::PathBuf], channels: usize) -> Result<FeatureSpec> {
    let (mut heating, mut shortest_heating, mut duration) = (0.0f64, f64::INFINITY, f64::INFINITY);
    for dir in plate_dirs {
        let meta: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(dir.join("meta.json"))
                .with_context(|| format!("{}: no meta.json", dir.display()))?,
        )
        .with_context(|| format!("{}: meta.json is not JSON", dir.display()))?;
        let station = &meta["specimen"]["station"];
        let this_heating = station["heating"]["duration_s"]
            .as_f64()
            .with_context(|| format!("{}: meta.json has no heating duration", dir.display()))?;
        heating = heating.max(this_heating);
        shortest_heating = shortest_heating.min(this_heating);
        duration = duration.min(
            station["recording"]["duration_s"]
                .as_f64()
                .with_context(|| format!("{}: meta.json has no recording duration", dir.display()))?,
        );
    }
    let first = (heating * 1.15 * 1000.0).max(500.0) as u32;
    let last = (duration / 1.12 * 1000.0) as u32;
    if last <= first {
        bail!("the recording ({duration} s) is too short after the heating ({heating} s) for features");
    }
    if channels < 3 {
        bail!("a schedule needs at least 3 channels (one during the heating, two after), not {channels}");
    }
    let mut spec = FeatureSpec::log_spaced(first, last, channels - 1, 100)?;
    let during = (shortest_heating * 0.5 * 1000.0).max(500.0) as u32;
    spec.times_ms
        .insert(0, during)
        .map_err(|_| anyhow::anyhow!("{channels} channels: more than the engine's 16"))?;
    spec.check()?;
    Ok(spec)
}

fn curves_png(path: &Path, reports: &[EpochReport]) -> Result<()> {
    let root = BitMapBackend::new(path, (900, 500)).into_drawing_area();
    root.fill(&WHITE)?;
    let (left, right) = root.split_horizontally(450);
    let max_loss = reports
        .iter()
        .map(|r| r.train_loss.max(r.validation_loss))
        .fold(0.0, f64::max)
        * 1.1;
    let n = reports.len() as f64;
    let mut c = ChartBuilder::on(&left)
        .caption("loss", ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(50)
        .build_cartesian_2d(1f64..n.max(2.0), 0f64..max_loss.max(1e-6))?;

    c.configure_mesh().x_desc("epoch").draw()?;
    c.draw_series(LineSeries::new(
        reports.iter().map(|r| (r.epoch as f64, r.train_loss)),
        BLUE.stroke_width(2),
    ))?
    .label("train")
    .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 15, y)], BLUE));
    c.draw_series(LineSeries::new(
        reports.iter().map(|r| (r.epoch as f64, r.validation_loss)),
        RED.stroke_width(2),
    ))?
    .label("validation")
    .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 15, y)], RED));
    c.configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE.mix(0.8))
        .draw()?;
    let mut c = ChartBuilder::on(&right)
        .caption("validation IoU", ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(50)
        .build_cartesian_2d(1f64..n.max(2.0), 0f64..1f64)?;
    c.configure_mesh().x_desc("epoch").draw()?;
    for (k, (name, colour)) in [("sound", BLACK), ("subsurface", RED), ("surface", BLUE)]
        .into_iter()
        .enumerate()
    {
        c.draw_series(LineSeries::new(
            reports.iter().map(|r| (r.epoch as f64, r.iou[k])),
            colour.stroke_width(2),
        ))?
        .label(name)
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 15, y)], colour));
    }
    c.configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE.mix(0.8))
        .draw()?;
    root.present()?;
    Ok(())
}

/// Confusion matrix (rows: truth, columns: prediction, row-normalized colour, counts).
fn confusion_png(path: &Path, m: &[[u64; CLASSES]; CLASSES]) -> Result<()> {
    use plotters::style::text_anchor::{HPos, Pos, VPos};
    let names = ["sound", "subsurface", "surface"];
    let root = BitMapBackend::new(path, (520, 460)).into_drawing_area();
    root.fill(&WHITE)?;
    // Segmented axes: one labelled cell per class, labels at the cells' centres.
    let mut c = ChartBuilder::on(&root)
        .caption("validation confusion (rows: truth)", ("sans-serif", 18))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(90)
        .build_cartesian_2d((0i32..3).into_segmented(), (0i32..3).into_segmented())?;
    let name = |v: &SegmentValue<i32>, flip: bool| match v {
        SegmentValue::CenterOf(i) | SegmentValue::Exact(i) => {
            let k = if flip { 2 - *i } else { *i };
            usize::try_from(k)
                .ok()
                .and_then(|k| names.get(k))
                .map_or(String::new(), |s| s.to_string())
        }
        SegmentValue::Last => String::new(),
    };
    c.configure_mesh()
        .disable_mesh()
        .x_labels(3)
        .y_labels(3)
        .x_label_formatter(&|x| name(x, false))
        .y_label_formatter(&|y| name(y, true))
        .x_desc("predicted")
        .draw()?;
    let centred = ("sans-serif", 15)
        .into_font()
        .color(&BLACK)
        .pos(Pos::new(HPos::Center, VPos::Center));
    for (t, row) in m.iter().enumerate() {
        let sum = row.iter().sum::<u64>().max(1) as f64;
        for (p, &n) in row.iter().enumerate() {
            let f = n as f64 / sum;
            let shade = (255.0 * (1.0 - f)) as u8;
            let (x, y) = (p as i32, 2 - t as i32);
            c.draw_series(std::iter::once(Rectangle::new(
                [
                    (SegmentValue::Exact(x), SegmentValue::Exact(y)),
                    (SegmentValue::Exact(x + 1), SegmentValue::Exact(y + 1)),
                ],
                RGBColor(shade, shade, 255).filled(),
            )))?;
            let at = (SegmentValue::CenterOf(x), SegmentValue::CenterOf(y));
            c.draw_series(std::iter::once(
                EmptyElement::at(at)
                    + Text::new(n.to_string(), (0, -9), centred.clone())
                    + Text::new(format!("{:.1} %", 100.0 * f), (0, 9), centred.clone()),
            ))?;
        }
    }
    root.present()?;
    Ok(())
}

/// Truth and prediction of a few validation plates, side by side.
fn maps_png(path: &Path, pairs: &[(&Sample, Vec<u8>)]) -> Result<()> {
    let (w, h) = pairs.first().map_or((1, 1), |(s, _)| (s.width, s.height));
    let scale = 3;
    let (cw, ch) = ((2 * w + 10) * scale, (h + 4) * scale);
    let mut img = vec![255u8; cw * ch * pairs.len() * 3];
    let colour = |c: u8| match c {
        0 => [40, 40, 40],
        1 => [220, 40, 30],
        _ => [40, 120, 230],
    };
    for (k, (s, pred)) in pairs.iter().enumerate() {
        for (col, map) in [&s.labels, pred].into_iter().enumerate() {
            for y in 0..h * scale {
                for x in 0..w * scale {
                    let c = colour(map[(y / scale) * w + x / scale]);
                    let (px, py) = (x + col * (w + 10) * scale, y + k * ch);
                    let o = (py * cw + px) * 3;
                    img[o..o + 3].copy_from_slice(&c);
                }
            }
        }
    }
    let file = std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let mut enc = png::Encoder::new(std::io::BufWriter::new(file), cw as u32, (ch * pairs.len()) as u32);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    enc.write_header()?.write_image_data(&img)?;
    Ok(())
}

/// Plate folders of a dataset split.
pub fn split_dirs(data: &Path, split: &str) -> Result<Vec<std::path::PathBuf>> {
    let index: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(data.join("index.json"))
            .with_context(|| format!("{}: no index.json (made by trainer dataset)", data.display()))?,
    )
    .with_context(|| format!("{}: index.json is not JSON", data.display()))?;
    let plates = index["plates"]
        .as_array()
        .with_context(|| format!("{}: index.json has no plates", data.display()))?;
    Ok(plates
        .iter()
        .filter(|p| p["split"] == split)
        .filter_map(|p| p["dir"].as_str())
        .map(|d| data.join(d))
        .collect())
}

/// The schedule for a dataset: [`schedule_for`] over all its plates, test plates included
/// (their station must fit the schedule too), with the amplitude window asked for.
pub fn dataset_schedule(data: &Path, channels: usize, amplitude_window_px: u16) -> Result<FeatureSpec> {
    let all: Vec<std::path::PathBuf> = ["train", "validation", "test"]
        .iter()
        .map(|s| split_dirs(data, s))
        .collect::<Result<Vec<_>>>()?
        .concat();
    let mut spec = schedule_for(&all, channels)?;
    spec.amplitude_window_px = amplitude_window_px;
    spec.check().context("--amplitude-window")?;
    Ok(spec)
}

pub fn load_plates(dirs: &[std::path::PathBuf], spec: &FeatureSpec) -> Result<Vec<Sample>> {
    dirs.par_iter()
        .map(|d| load_sample(d, spec, FEATURE_QUANT).with_context(|| format!("loading {}", d.display())))
        .collect()
}

/// What a training run leaves beside the artifacts (read by the model card).
#[derive(serde::Serialize, serde::Deserialize)]
pub struct TrainingRecord {
    pub data: String,
    pub dataset_index: serde_json::Value,
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
    /// The quantization-aware fine-tuning after the float training, if any.
    #[serde(default)]
    pub qat: Option<QatRecord>,
    /// The record of the model a fine-tuning started from (`<from>.training.json`).
    #[serde(default)]
    pub source: Option<Box<TrainingRecord>>,
}

/// What the quantization-aware fine-tuning did.
#[derive(serde::Serialize, serde::Deserialize)]
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

pub struct Options<'a> {
    pub name: &'a str,
    pub export_to: &'a Path,
    pub qat: Option<Qat>,
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
    pub save: &'a dyn Fn(&M, &Path) -> Result<()>,
    pub float_net: &'a dyn Fn(&M) -> FloatNet,
}

pub fn run(
    data: &Path,
    out: &Path,
    cfg: &TrainConfig,
    (channels, amplitude_window_px): (usize, u16),
    opts: &Options<'_>,
) -> Result<()> {
    let device = Default::default();
    let job = Job {
        spec: dataset_schedule(data, channels, amplitude_window_px)?,
        source: None,
        train: Box::new(|t: &[Sample], v: &[Sample], f: &mut dyn FnMut(&EpochReport)| {
            train::<Backend>(t, v, cfg, FEATURE_QUANT, &device, f)
        }),
        save: &|m, p| tqc_trainer::cnn::save(m, p).context("saving the weights"),
        float_net: &|m| FloatNet::from_burn(m),
    };
    run_job(data, out, cfg, opts, job)
}

fn epoch_bar(epochs: usize, what: &str) -> Result<ProgressBar> {
    let bar = ProgressBar::new(epochs as u64);
    bar.set_style(
        ProgressStyle::with_template(&format!(
            "{what} [{{bar:40}}] {{pos}}/{{len}} {{elapsed}} (ETA {{eta}}) {{msg}}"
        ))
        .context("template")?
        .progress_chars("=> "),
    );
    Ok(bar)
}

fn log_epoch(csv: &mut std::fs::File, bar: &ProgressBar, r: &EpochReport) {
    let _ = writeln!(
        csv,
        "{},{:.6},{:.6},{:.6},{:.4},{:.4},{:.4}",
        r.epoch, r.learning_rate, r.train_loss, r.validation_loss, r.iou[0], r.iou[1], r.iou[2]
    );
    bar.set_message(format!(
        "loss {:.4}, IoU {:.2}/{:.2}/{:.2}",
        r.train_loss, r.iou[0], r.iou[1], r.iou[2]
    ));
    bar.inc(1);
}

const CSV_HEADER: &str = "epoch,learning_rate,train_loss,validation_loss,iou_sound,iou_subsurface,iou_surface";

/// Quantization-aware fine-tuning of the folded `net` (same recipe as `cfg`, without
/// warm-up, at the QAT learning rate); `qat-metrics.csv` in `out`.
fn quantization_aware(
    net: &FloatNet,
    train_set: &[Sample],
    val_set: &[Sample],
    cfg: &TrainConfig,
    q: Qat,
    out: &Path,
) -> Result<(FloatNet, QatRecord)> {
    let qcfg = TrainConfig {
        epochs: q.epochs,
        learning_rate: q.learning_rate,
        warmup_epochs: 0,
        batch_norm: false,
        ..*cfg
    };
    let mut csv = std::fs::File::create(out.join("qat-metrics.csv")).context("qat-metrics.csv")?;
    writeln!(csv, "{CSV_HEADER}")?;
    let bar = epoch_bar(q.epochs, "quantization-aware epochs")?;
    let started = std::time::Instant::now();
    let device = Default::default();
    let outcome =
        tqc_trainer::qat::fine_tune::<Backend>(net, train_set, val_set, &qcfg, FEATURE_QUANT, &device, |r| {
            log_epoch(&mut csv, &bar, r)
        })?;
    bar.finish_and_clear();
    let best = best_epoch(&outcome.reports).context("no quantization-aware epoch ran")?;
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
    println!(
        "quantization-aware: {} epochs in {:.1} s; int8-simulated validation score (mean defect IoU) {:.3} after post-training quantization, best epoch {}: {:.3} (IoU sound {:.3}, subsurface {:.3}, surface {:.3}): {}",
        record.epochs_run,
        record.wall_time_s,
        record.start_score,
        best.epoch,
        best.score,
        best.iou[0],
        best.iou[1],
        best.iou[2],
        if outcome.improved {
            "kept"
        } else {
            "not better, the post-training-quantized network is kept"
        }
    );
    Ok((outcome.net, record))
}

pub fn run_job<M: Segmenter<Inner>>(
    data: &Path,
    out: &Path,
    cfg: &TrainConfig,
    opts: &Options<'_>,
    job: Job<'_, M>,
) -> Result<()> {
    if cfg.epochs == 0 && opts.qat.is_none() {
        bail!("no epoch to run: --epochs 0 only makes sense with --qat-epochs");
    }
    let (train_dirs, val_dirs) = (split_dirs(data, "train")?, split_dirs(data, "validation")?);
    if train_dirs.is_empty() || val_dirs.is_empty() {
        bail!(
            "{}: the index needs plates in both the train and the validation split",
            data.display()
        );
    }
    let spec = job.spec.clone();
    let channels = spec.channels();
    let (train_set, val_set) = (load_plates(&train_dirs, &spec)?, load_plates(&val_dirs, &spec)?);
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let mut csv = std::fs::File::create(out.join("metrics.csv")).context("metrics.csv")?;
    writeln!(csv, "{CSV_HEADER}")?;
    let bar = epoch_bar(cfg.epochs, "epochs")?;
    let started = std::time::Instant::now();
    let device = Default::default();
    let (model, reports) = (job.train)(&train_set, &val_set, &mut |r: &EpochReport| {
        log_epoch(&mut csv, &bar, r);
    })?;
    bar.finish_and_clear();
    let wall = started.elapsed().as_secs_f64();
    let best = best_epoch(&reports);
    if !reports.is_empty() {
        curves_png(&out.join("training-curves.png"), &reports)?;
    }
    (job.save)(&model, &out.join("model"))?;

    // Plots of the kept model on the validation plates.
    let (mut pred, mut truth) = (Vec::new(), Vec::new());
    let mut pairs = Vec::new();
    for (i, s) in val_set.iter().enumerate() {
        let p = predict::<Inner, M>(&model, &[s], &device);
        truth.extend_from_slice(&s.labels);
        pred.extend_from_slice(&p);
        if i < 4 {
            pairs.push((s, p));
        }
    }
    confusion_png(&out.join("confusion.png"), &confusion(&pred, &truth))?;
    maps_png(&out.join("validation-maps.png"), &pairs)?;

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
    if let Some(b) = best {
        println!(
            "{} epochs ({} planned) on {} plates ({} validation) in {:.1} s; best epoch {}: validation IoU sound {:.3}, subsurface {:.3}, surface {:.3}",
            reports.len(),
            cfg.epochs,
            train_set.len(),
            val_set.len(),
            wall,
            b.epoch,
            b.iou[0],
            b.iou[1],
            b.iou[2],
        );
    }

    // Quantize (after a quantization-aware fine-tuning, with its ranges) and export.
    let (net, quant, qat) = match opts.qat {
        None => {
            let quant = quantize::quantize(&net, &train_set, FEATURE_QUANT)?;
            (net, quant, None)
        }
        Some(q) => {
            let (net, record) = quantization_aware(&net, &train_set, &val_set, cfg, q, out)?;
            let quant = quantize::quantize_with(&net, record.ranges.clone(), FEATURE_QUANT)?;
            (net, quant, Some(record))
        }
    };
    let artifacts = export_quantized(&net, quant, (h, w), spec.clone(), opts.name, opts.export_to)?;
    let record = TrainingRecord {
        data: data.display().to_string(),
        dataset_index: serde_json::from_str(&std::fs::read_to_string(data.join("index.json"))?)?,
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
        qat,
        source: job.source.map(Box::new),
    };
    write_atomic(
        &opts.export_to.join(format!("{}.training.json", opts.name)),
        serde_json::to_string_pretty(&record)?.as_bytes(),
    )?;
    println!(
        "{} parameters, {:.1} M MACs per {}×{} part; folded float vs burn max |Δlogit| {:.2e}",
        record.parameters,
        record.macs as f64 / 1e6,
        w,
        h,
        max_abs
    );
    println!(
        "plots and weights → {}\nexported → {}, {}, {} (arena {} B)",
        out.display(),
        artifacts.float_onnx.display(),
        artifacts.int8_onnx.display(),
        artifacts.blob.display(),
        tqc_shared::blob::decode(&artifacts.blob_bytes)?.desc.arena_bytes
    );
    Ok(())
}

/// A float ONNX file exported by `trainer train`: its layers and its metadata (feature
/// schedule, input quantization, which must be the trainer's).
pub fn read_float_model(path: &Path) -> Result<(FloatNet, tqc_trainer::export::onnx::Meta)> {
    use prost::Message;
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let net = FloatNet::from_onnx(&bytes).with_context(|| format!("{}", path.display()))?;
    let proto = tract_onnx::pb::ModelProto::decode(bytes.as_slice())?;
    let meta = tqc_trainer::export::onnx::read_meta(&proto).with_context(|| {
        format!(
            "{}: no feature schedule in the metadata: only ONNX files exported by `trainer train` carry one",
            path.display()
        )
    })?;
    if meta.input_quant != FEATURE_QUANT {
        bail!(
            "{}: input quantization {:?} differs from the trainer's {:?}",
            path.display(),
            meta.input_quant,
            FEATURE_QUANT
        );
    }
    Ok((net, meta))
}

/// `trainer finetune`: the shipped architecture (generated by burn-import at build time)
/// with the weights of `from`, trained further on `data`.
pub fn finetune(from: &Path, data: &Path, out: &Path, cfg: &TrainConfig, opts: &Options<'_>) -> Result<()> {
    use tqc_trainer::finetune::{ShippedNet, load, to_float_net};
    let (net, meta) = read_float_model(from)?;
    let device = Default::default();
    let model = load::<Backend>(&net, &device).with_context(|| format!("{}", from.display()))?;
    // The record `trainer train` left beside the file, carried into this one's.
    let source = std::fs::read_to_string(from.with_extension("training.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok());
    let job = Job {
        spec: meta.features,
        source,
        train: Box::new(move |t: &[Sample], v: &[Sample], f: &mut dyn FnMut(&EpochReport)| {
            if cfg.epochs == 0 {
                // Straight to the quantization-aware fine-tuning.
                use burn::module::AutodiffModule;
                return Ok((model.valid(), Vec::new()));
            }
            tqc_trainer::cnn::continue_training::<Backend, _>(model, t, v, cfg, FEATURE_QUANT, &device, f)
        }),
        save: &|m: &ShippedNet<Inner>, p: &Path| {
            use burn::module::Module;
            m.clone()
                .save_file(p.to_path_buf(), &tqc_trainer::cnn::Recorder::new())
                .context("saving the weights")
        },
        float_net: &|m| to_float_net(m),
    };
    run_job(data, out, cfg, opts, job)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plate(root: &Path, name: &str, heating_s: f64, recording_s: f64) -> std::path::PathBuf {
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let meta = serde_json::json!({"specimen": {"station": {
            "heating": {"duration_s": heating_s},
            "recording": {"duration_s": recording_s},
        }}});
        std::fs::write(dir.join("meta.json"), meta.to_string()).unwrap();
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
