//! `trainer dataset`: many plates with a progress bar.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Result, bail};

use tqc_data::{Specimen, Split};
use tqc_sim::dataset::{DatasetSpec, generate};

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
    let bar = crate::progress::bar(spec.plates as u64, "simulating", "plates");
    let started = Instant::now();
    let index = generate(&template, spec, out, |done, _| bar.set_position(done as u64))?;
    bar.finish_and_clear();
    let count = |s| index.plates_in(s).count();
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
        count(Split::Train),
        count(Split::Validation),
        count(Split::Test),
    );
    Ok(())
}

/// The arguments of `trainer dataset`.
#[derive(clap::Args)]
pub struct DatasetArgs {
    /// Number of plates.
    #[arg(long)]
    plates: usize,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    #[arg(long)]
    out: PathBuf,
    /// The specimen (shipped name or TOML file) whose plate, material and station are
    /// varied; its own defects are replaced by random ones.
    #[arg(long, default_value = "gfrp-sound")]
    specimen_template: String,
    /// Share of plates without defects.
    #[arg(long, default_value_t = 0.2)]
    sound_share: f64,
    #[arg(long, default_value_t = 0.15)]
    validation_share: f64,
    #[arg(long, default_value_t = 0.15)]
    test_share: f64,
}

impl DatasetArgs {
    pub fn run(self) -> Result<()> {
        let spec = DatasetSpec {
            plates: self.plates,
            seed: self.seed,
            sound_share: self.sound_share,
            validation_share: self.validation_share,
            test_share: self.test_share,
        };
        run(&self.specimen_template, &spec, &self.out)
    }
}
