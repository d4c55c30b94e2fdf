//! `trainer train`: the CNN on a dataset folder, with a progress bar, per-epoch metrics in
//! CSV and training curves in PNG.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result, bail};
use burn::backend::{Autodiff, NdArray};
use indicatif::{ProgressBar, ProgressStyle};
use plotters::prelude::*;

use tqc_shared::features::FeatureSpec;
use tqc_shared::model::QuantParams;
use tqc_trainer::cnn::{EpochReport, Sample, TrainConfig, load_sample, train};

type Backend = Autodiff<NdArray<f32>>;

/// The input quantization of the features: ratios 0..4 in 1/64 steps.
pub const FEATURE_QUANT: QuantParams = QuantParams {
    scale: 1.0 / 64.0,
    zero_point: -128,
};

/// A schedule for a dataset's station: from just after the heating to the end of the
/// recording, `channels` log-spaced times.
pub fn schedule_for(plate_dir: &Path, channels: usize) -> Result<FeatureSpec> {
    let meta: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(plate_dir.join("meta.json"))
            .with_context(|| format!("{}: no meta.json", plate_dir.display()))?,
    )?;
    let station = &meta["specimen"]["station"];
    let heating = station["heating"]["duration_s"]
        .as_f64()
        .context("meta.json: no heating duration")?;
    let duration = station["recording"]["duration_s"]
        .as_f64()
        .context("meta.json: no recording duration")?;
    let first = (heating * 1.15 * 1000.0).max(500.0) as u32;
    let last = (duration / 1.12 * 1000.0) as u32;
    if last <= first {
        bail!("the recording ({duration} s) is too short after the heating ({heating} s) for features");
    }
    Ok(FeatureSpec::log_spaced(first, last, channels, 100)?)
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

pub fn run(data: &Path, out: &Path, cfg: &TrainConfig, channels: usize) -> Result<()> {
    let index: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(data.join("index.json"))
            .with_context(|| format!("{}: no index.json (made by trainer dataset)", data.display()))?,
    )?;
    let plates = index["plates"].as_array().context("index.json: no plates")?;
    let dirs = |split: &str| -> Vec<std::path::PathBuf> {
        plates
            .iter()
            .filter(|p| p["split"] == split)
            .filter_map(|p| p["dir"].as_str())
            .map(|d| data.join(d))
            .collect()
    };
    let (train_dirs, val_dirs) = (dirs("train"), dirs("validation"));
    if train_dirs.is_empty() || val_dirs.is_empty() {
        bail!(
            "{}: the index needs plates in both the train and the validation split",
            data.display()
        );
    }
    let spec = schedule_for(&train_dirs[0], channels)?;
    let load = |dirs: &[std::path::PathBuf]| -> Result<Vec<Sample>> {
        dirs.iter()
            .map(|d| load_sample(d, &spec, FEATURE_QUANT).with_context(|| format!("loading {}", d.display())))
            .collect()
    };
    let (train_set, val_set) = (load(&train_dirs)?, load(&val_dirs)?);
    if train_set.iter().all(|s| s.labels.iter().all(|&l| l == 0)) {
        bail!("the training plates hold no defect pixel: nothing to learn");
    }
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let mut csv = std::fs::File::create(out.join("metrics.csv")).context("metrics.csv")?;
    writeln!(
        csv,
        "epoch,train_loss,validation_loss,iou_sound,iou_subsurface,iou_surface"
    )?;
    let bar = ProgressBar::new(cfg.epochs as u64);
    bar.set_style(
        ProgressStyle::with_template("epochs [{bar:40}] {pos}/{len} {msg}")
            .context("template")?
            .progress_chars("=> "),
    );
    let started = std::time::Instant::now();
    let (_model, reports) = train::<Backend>(&train_set, &val_set, cfg, &Default::default(), |r| {
        let _ = writeln!(
            csv,
            "{},{:.6},{:.6},{:.4},{:.4},{:.4}",
            r.epoch, r.train_loss, r.validation_loss, r.iou[0], r.iou[1], r.iou[2]
        );
        bar.set_message(format!(
            "loss {:.4}, IoU {:.2}/{:.2}/{:.2}",
            r.train_loss, r.iou[0], r.iou[1], r.iou[2]
        ));
        bar.inc(1);
    });
    bar.finish_and_clear();
    curves_png(&out.join("training-curves.png"), &reports)?;
    let last = reports.last().context("no epoch ran")?;
    println!(
        "{} epochs on {} plates ({} validation) in {:.1} s: loss {:.4}, validation IoU sound {:.3}, subsurface {:.3}, surface {:.3} → {}",
        reports.len(),
        train_set.len(),
        val_set.len(),
        started.elapsed().as_secs_f64(),
        last.train_loss,
        last.iou[0],
        last.iou[1],
        last.iou[2],
        out.display()
    );
    Ok(())
}
