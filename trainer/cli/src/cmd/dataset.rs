//! `trainer dataset`: many plates with a progress bar.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};

use tqc_trainer::dataset::{DatasetSpec, generate};
use tqc_trainer::specimen::Specimen;

pub fn run(template: &str, spec: &DatasetSpec, out: &Path) -> Result<()> {
    if spec.plates == 0 {
        bail!("--plates must be at least 1");
    }
    for (name, v) in [
        ("--sound-share", spec.sound_share),
        ("--validation-share", spec.validation_share),
        ("--test-share", spec.test_share),
    ] {
        if !(0.0..=1.0).contains(&v) {
            bail!("{name} must be within 0..=1, got {v}");
        }
    }
    if spec.validation_share + spec.test_share > 1.0 {
        bail!("--validation-share plus --test-share exceed 1");
    }
    let template = Specimen::load(template)?;
    let bar = ProgressBar::new(spec.plates as u64);
    bar.set_style(
        ProgressStyle::with_template("plates [{bar:40}] {pos}/{len}, {elapsed} elapsed, ETA {eta}")
            .context("progress template")?
            .progress_chars("=> "),
    );
    let started = Instant::now();
    let index = generate(&template, spec, out, |done, _| bar.set_position(done as u64))?;
    bar.finish_and_clear();
    let count = |s: &str| index.plates.iter().filter(|p| p.split == s).count();
    let sound = index
        .plates
        .iter()
        .filter(|p| p.holes + p.delaminations + p.surface_defects == 0)
        .count();
    println!(
        "{} plates from {} in {:.1} s → {} (train {}, validation {}, test {}; {sound} without defects)",
        index.plates.len(),
        template.name,
        started.elapsed().as_secs_f64(),
        out.display(),
        count("train"),
        count("validation"),
        count("test"),
    );
    Ok(())
}
