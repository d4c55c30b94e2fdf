//! `trainer train` and `trainer finetune`: a training run (the library's pipeline) with a
//! progress bar per stage, then what a person looks at — training curves, the confusion
//! matrix and predicted maps of the validation plates (PNG) — and a summary.

use std::path::{Path, PathBuf};

use anyhow::Result;
use indicatif::ProgressBar;
use plotters::prelude::*;
use tqc_learn::cnn::{CLASSES, EpochReport, Sample, TrainConfig, best_epoch};
use tqc_learn::pipeline::{self, Options, Progress, TrainOutcome};

use super::RunArgs;
use crate::plot::{class_map_rgb, write_rgb_png};
use tqc_data::Class;

/// One progress bar per training stage, the epoch's loss and IoU beside it.
#[derive(Default)]
pub struct EpochBars {
    bar: Option<ProgressBar>,
}

impl Progress for EpochBars {
    fn stage(&mut self, what: &str, epochs: usize) {
        self.bar = Some(crate::progress::bar(epochs as u64, what, ""));
    }

    fn epoch(&mut self, r: &EpochReport) {
        if let Some(bar) = &self.bar {
            bar.set_message(format!(
                "loss {:.4}, IoU {:.2}/{:.2}/{:.2}",
                r.train_loss, r.iou[0], r.iou[1], r.iou[2]
            ));
            bar.inc(1);
        }
    }

    fn done(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

/// Plots and the summary of a finished run.
fn report(out: &Path, cfg: &TrainConfig, o: &TrainOutcome) -> Result<()> {
    let r = &o.record;
    if !o.reports.is_empty() {
        curves_png(&out.join("training-curves.png"), &o.reports)?;
    }
    confusion_png(&out.join("confusion.png"), &o.validation_confusion)?;
    maps_png(&out.join("validation-maps.png"), &o.validation_maps)?;
    if let Some(b) = best_epoch(&o.reports) {
        println!(
            "{} epochs ({} planned) on {} plates ({} validation) in {:.1} s ({:.3} s per plate-epoch); best epoch {}: validation IoU sound {:.3}, subsurface {:.3}, surface {:.3}",
            o.reports.len(),
            cfg.epochs,
            r.train_plates,
            r.validation_plates,
            r.wall_time_s,
            r.seconds_per_plate_epoch(),
            b.epoch,
            b.iou[0],
            b.iou[1],
            b.iou[2],
        );
    }
    if let (Some(q), Some(best)) = (&r.qat, best_epoch(&o.qat_reports)) {
        println!(
            "quantization-aware: {} epochs in {:.1} s; int8-simulated validation score (mean defect IoU) {:.3} after post-training quantization, best epoch {}: {:.3} (IoU sound {:.3}, subsurface {:.3}, surface {:.3}): {}",
            q.epochs_run,
            q.wall_time_s,
            q.start_score,
            best.epoch,
            best.score,
            best.iou[0],
            best.iou[1],
            best.iou[2],
            if q.improved {
                "kept"
            } else {
                "not better, the post-training-quantized network is kept"
            }
        );
    }
    let a = &o.artifacts;
    let (h, w) = o.validation_maps.first().map_or((0, 0), |(s, _)| (s.height, s.width));
    println!(
        "{} parameters, {:.1} M MACs per {}×{} part; folded float vs burn max |Δlogit| {:.2e}",
        r.parameters,
        r.macs as f64 / 1e6,
        w,
        h,
        r.float_vs_burn_max_abs
    );
    println!(
        "plots and weights → {}\nexported → {}, {}, {} (arena {} B)",
        out.display(),
        a.float_onnx.display(),
        a.int8_onnx.display(),
        a.blob.display(),
        tqc_shared::blob::decode(&a.blob_bytes)?.desc.arena_bytes
    );
    Ok(())
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
    for (k, (name, colour)) in Class::NAMES.into_iter().zip([BLACK, RED, BLUE]).enumerate() {
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
    let names = Class::NAMES;
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
fn maps_png(path: &Path, pairs: &[(Sample, Vec<u8>)]) -> Result<()> {
    let (w, h) = pairs.first().map_or((1, 1), |(s, _)| (s.width, s.height));
    let scale = 3;
    let (cw, ch) = ((2 * w + 10) * scale, (h + 4) * scale);
    let mut img = vec![255u8; cw * ch * pairs.len() * 3];
    for (k, (s, pred)) in pairs.iter().enumerate() {
        for (col, map) in [&s.labels, pred].into_iter().enumerate() {
            class_map_rgb(map, (w, h), scale, &mut img, cw, (col * (w + 10) * scale, k * ch));
        }
    }
    write_rgb_png(path, cw, ch * pairs.len(), &img)
}

/// The arguments of `trainer train`.
#[derive(clap::Args)]
pub struct TrainArgs {
    #[arg(long)]
    data: PathBuf,
    /// Folder for metrics, plots and weights.
    #[arg(long)]
    out: PathBuf,
    /// Folder for the exported model (default: OUT).
    #[arg(long)]
    export_to: Option<PathBuf>,
    /// Model name: the exported files are NAME.onnx, NAME.int8.onnx, NAME.tqm.
    #[arg(long, default_value = "thermonet")]
    name: String,
    #[command(flatten)]
    run: RunArgs,
    /// Feature maps per hidden layer.
    #[arg(long, default_value_t = 12)]
    width: usize,
    #[command(flatten)]
    features: super::FeatureArgs,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Instead of one run and an export: K-fold cross-validation over the train and
    /// validation plates (test plates untouched), each fold validated by a model that
    /// never saw it; writes crossval.csv and crossval.json into OUT.
    #[arg(long, value_name = "K", conflicts_with = "export_to")]
    folds: Option<usize>,
}

impl TrainArgs {
    pub fn run(self) -> Result<()> {
        let cfg = self.run.config(3e-3, self.width, self.seed)?;
        let features = self.features.schedule();
        if let Some(folds) = self.folds {
            if self.run.qat_epochs > 0 {
                anyhow::bail!("--folds exports nothing, so it takes no --qat-epochs");
            }
            return super::crossval::run(&self.data, &self.out, &cfg, features, folds);
        }
        let export_to = self.export_to.clone().unwrap_or_else(|| self.out.clone());
        let opts = Options {
            name: &self.name,
            export_to: &export_to,
            qat: self.run.qat(&cfg),
            decision_margin: self.run.decision_margin,
        };
        let outcome = pipeline::run(&self.data, &self.out, &cfg, features, &opts, &mut EpochBars::default())?;
        report(&self.out, &cfg, &outcome)
    }
}

/// The arguments of `trainer finetune`.
#[derive(clap::Args)]
pub struct FinetuneArgs {
    /// The float ONNX model to start from (e.g. onnx_models/thermonet2.onnx).
    #[arg(long)]
    from: PathBuf,
    #[arg(long)]
    data: PathBuf,
    #[arg(long)]
    out: PathBuf,
    /// Folder for the exported model (default: OUT).
    #[arg(long)]
    export_to: Option<PathBuf>,
    #[arg(long, default_value = "thermonet-finetuned")]
    name: String,
    #[command(flatten)]
    run: RunArgs,
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

impl FinetuneArgs {
    pub fn run(self) -> Result<()> {
        // Width is the file's; dropout does not exist in the generated network.
        let cfg = self.run.config(1e-3, 1, self.seed)?;
        let export_to = self.export_to.clone().unwrap_or_else(|| self.out.clone());
        let opts = Options {
            name: &self.name,
            export_to: &export_to,
            qat: self.run.qat(&cfg),
            decision_margin: self.run.decision_margin,
        };
        let outcome = pipeline::finetune(
            &self.from,
            &self.data,
            &self.out,
            &cfg,
            &opts,
            &mut EpochBars::default(),
        )?;
        report(&self.out, &cfg, &outcome)
    }
}
