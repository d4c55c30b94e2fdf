//! `trainer dataset`: many plates with a progress bar.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Result, bail};

use tqc_data::index::Shard;
use tqc_data::{Specimen, Split};
use tqc_sim::dataset::{DatasetSpec, STANDARD, describe, generate, merge};

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
    let mine = spec.shard.plates(spec.plates).len();
    let bar = crate::progress::bar(mine as u64, "simulating", "plates");
    let started = Instant::now();
    let generated = generate(&template, spec, out, |done, _| bar.set_position(done as u64))?;
    bar.finish_and_clear();
    crate::progress::say_interrupted(&generated.interrupted);
    let index = generated.index;
    let written = if spec.shard == Shard::ALL {
        "index.json".to_string()
    } else {
        format!(
            "shard {} ({}; merge with trainer dataset --merge --out {} once every shard is done)",
            spec.shard,
            spec.shard.index_file(),
            out.display()
        )
    };
    summary(&index, &template.name, started, out, &written);
    Ok(())
}

fn summary(index: &tqc_data::DatasetIndex, template: &str, started: Instant, out: &Path, written: &str) {
    let count = |s| index.plates_in(s).count();
    let sound = index.plates.iter().filter(|p| p.defects() == 0).count();
    println!(
        "{} plates from {template} in {:.1} s → {}, {written} (train {}, validation {}, test {}; {sound} without defects)",
        index.plates.len(),
        started.elapsed().as_secs_f64(),
        out.display(),
        count(Split::Train),
        count(Split::Validation),
        count(Split::Test),
    );
}

/// The arguments of `trainer dataset`.
#[derive(clap::Args)]
#[command(after_long_help = describe(&STANDARD))]
pub struct DatasetArgs {
    /// Number of plates (of the whole dataset, also when simulating one shard).
    #[arg(long, required_unless_present = "merge")]
    plates: Option<usize>,
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
    /// Simulate only shard K of N (contiguous blocks of plates) and write
    /// index.shard-K-of-N.json instead of index.json; plates are the same bytes as in a
    /// run over all of them. For batch jobs: `--shard $SLURM_ARRAY_TASK_ID/N` with
    /// `--array=1-N`, or `--shard $((JOB_COMPLETION_INDEX + 1))/N` in a Kubernetes
    /// Indexed Job. Every file is written under a temporary name and renamed, so a
    /// retried shard replaces whole files only.
    #[arg(long, default_value = "1/1")]
    shard: Shard,
    /// Merge the shard indexes in --out into index.json (after every shard finished).
    #[arg(long, conflicts_with_all = ["plates", "shard"])]
    merge: bool,
}

impl DatasetArgs {
    pub fn run(self) -> Result<()> {
        if self.merge {
            let started = Instant::now();
            let index = merge(&self.out)?;
            summary(
                &index,
                &index.template,
                started,
                &self.out,
                "index.json merged from the shards",
            );
            return Ok(());
        }
        let spec = DatasetSpec {
            // clap requires --plates unless --merge.
            plates: self.plates.unwrap_or(0),
            seed: self.seed,
            sound_share: self.sound_share,
            validation_share: self.validation_share,
            test_share: self.test_share,
            shard: self.shard,
        };
        run(&self.specimen_template, &spec, &self.out)
    }
}
