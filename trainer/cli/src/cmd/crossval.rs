//! `trainer train --folds K`: K-fold cross-validation of the training recipe over the
//! dataset's train and validation plates (the test plates stay untouched); writes
//! `crossval.csv` (one row per fold) and `crossval.json` (folds and summary) into OUT.
//! Nothing is exported: the shipped model comes from a single run.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result, bail};
use tqc_data::io::write_atomic;
use tqc_learn::cnn::TrainConfig;
use tqc_learn::crossval::{CrossvalFile, cross_validate, summarize};

use tqc_data::index::{Split, split_dirs};
use tqc_learn::pipeline::{Backend, FEATURE_QUANT, dataset_schedule, load_plates};

pub fn run(
    data: &Path,
    out: &Path,
    cfg: &TrainConfig,
    (channels, amplitude_window_px): (usize, u16),
    folds: usize,
) -> Result<()> {
    let mut dirs = split_dirs(data, Split::Train)?;
    dirs.extend(split_dirs(data, Split::Validation)?);
    if dirs.len() < folds.max(2) {
        bail!(
            "{}: {} train and validation plates, too few for {folds} folds",
            data.display(),
            dirs.len()
        );
    }
    // The schedule a single run on this dataset would use, so the folds judge that recipe.
    let spec = dataset_schedule(data, channels, amplitude_window_px)?;
    let plates = load_plates(&dirs, &spec)?;
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;

    let bar = crate::progress::bar((folds * cfg.epochs) as u64, "cross-validation", "epochs");
    let device = Default::default();
    let mut last_fold = 0;
    let results = cross_validate::<Backend>(&plates, folds, cfg, FEATURE_QUANT, &device, |fold, r| {
        if fold != last_fold {
            // Early stopping ends a fold before its planned epochs: skip what it left.
            bar.set_position((fold * cfg.epochs) as u64);
            last_fold = fold;
        }
        bar.set_message(format!(
            "fold {}/{folds}: IoU {:.2}/{:.2}/{:.2}",
            fold + 1,
            r.iou[0],
            r.iou[1],
            r.iou[2]
        ));
        bar.inc(1);
    })?;
    bar.finish_and_clear();
    let summary = summarize(&results);

    let mut csv = String::from("fold,validation_plates,epochs_run,best_epoch,iou_sound,iou_subsurface,iou_surface\n");
    for r in &results {
        let names: Vec<String> = r
            .validation
            .iter()
            .map(|&i| {
                dirs[i]
                    .file_name()
                    .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
            })
            .collect();
        writeln!(
            csv,
            "{},{},{},{},{:.4},{:.4},{:.4}",
            r.fold + 1,
            names.join(" "),
            r.epochs_run,
            r.best.epoch,
            r.best.iou[0],
            r.best.iou[1],
            r.best.iou[2]
        )?;
    }
    write_atomic(&out.join("crossval.csv"), csv.as_bytes())?;
    let file = CrossvalFile {
        config: *cfg,
        data: data.display().to_string(),
        features: spec,
        folds: results,
        summary: summary.clone(),
    };
    tqc_data::io::write_json(&out.join("crossval.json"), &file)?;
    println!(
        "{folds}-fold cross-validation on {} plates: validation IoU (best epoch per fold, mean ± std) sound {:.3} ± {:.3}, subsurface {:.3} ± {:.3}, surface {:.3} ± {:.3}",
        plates.len(),
        summary.mean_iou[0],
        summary.std_iou[0],
        summary.mean_iou[1],
        summary.std_iou[1],
        summary.mean_iou[2],
        summary.std_iou[2]
    );
    println!(
        "→ {}, {}",
        out.join("crossval.csv").display(),
        out.join("crossval.json").display()
    );
    Ok(())
}
