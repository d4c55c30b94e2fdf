//! `trainer input-scale`: what one input scale for all feature channels costs — the
//! codes each channel uses on the shared grid and on a grid of its own, and the same
//! ThermoNet 2 trained on both inputs (table + JSON).

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::{Result, bail};
use tqc_data::index::Split;
use tqc_learn::cnn::Architecture;
use tqc_learn::input_scale::{InputScaleStudy, study};

use super::RunArgs;

/// The arguments of `trainer input-scale`.
#[derive(clap::Args)]
pub struct InputScaleArgs {
    /// A dataset folder (from `trainer dataset`) with train, validation and held-out plates.
    #[arg(long)]
    data: PathBuf,
    /// The held-out split the two networks are scored on.
    #[arg(long, default_value = "test")]
    split: Split,
    /// Also write the study as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Training options, the same for both inputs (a ThermoNet 2 architecture).
    #[command(flatten)]
    run: RunArgs,
    #[command(flatten)]
    features: super::FeatureArgs,
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

impl InputScaleArgs {
    pub fn run(self) -> Result<()> {
        if self.run.architecture == Architecture::Thermonet {
            bail!("--architecture: the study trains a ThermoNet 2 (thermonet2, thermonet2-refined, thermonet2-sharp)");
        }
        let cfg = self.run.config(3e-3, 12, self.seed)?;
        // One bar per training, replaced at each stage.
        let bar = std::cell::RefCell::new(None::<indicatif::ProgressBar>);
        let study = study(
            &self.data,
            self.features.schedule(),
            self.split,
            &cfg,
            |_, r| {
                if let Some(b) = bar.borrow().as_ref() {
                    b.set_position(r.epoch as u64);
                    b.set_message(format!("score {:.3}", r.score));
                }
            },
            |stage| {
                if let Some(b) = bar.borrow_mut().take() {
                    b.finish_and_clear();
                }
                eprintln!("{stage}");
                if stage.ends_with("scale") {
                    *bar.borrow_mut() = Some(crate::progress::bar(cfg.epochs as u64, "epochs", ""));
                }
            },
        )?;
        if let Some(b) = bar.borrow_mut().take() {
            b.finish_and_clear();
        }
        print!("{}", table(&study, self.split));
        if let Some(path) = &self.json {
            tqc_data::io::write_json(path, &study)?;
            println!("→ {}", path.display());
        }
        Ok(())
    }
}

fn table(s: &InputScaleStudy, split: Split) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "codes per channel on the training plates (all plates; median of one plate)\n\n| channel | p99.9 of abs(value) | shared step | codes | per plate | own step | codes | per plate |\n| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    for c in &s.channels {
        let _ = writeln!(
            t,
            "| {} | {:.4} | 1/{:.0} | {} | {} | 1/{:.0} | {} | {} |",
            c.channel,
            c.p999_abs,
            1.0 / c.shared_step,
            c.shared_codes,
            c.shared_codes_per_plate,
            1.0 / c.own_step,
            c.own_codes,
            c.own_codes_per_plate
        );
    }
    let _ = writeln!(
        t,
        "\nThe same network and recipe ({:?}, {} epochs, seed {}) on each input; float class maps\n\n| input | best epoch | validation score | validation IoU sub / surf | validation found | {split}: IoU sub / surf | {split}: found | {split}: sound plates failed |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        s.config.architecture, s.config.epochs, s.config.seed
    );
    if s.runs.is_empty() {
        let _ = writeln!(t, "(--epochs 0: no training)");
    }
    for r in &s.runs {
        let _ = writeln!(
            t,
            "| {} | {} | {:.3} | {:.3} / {:.3} | {:.1} % | {:.3} / {:.3} | {:.1} % | {:.1} % |",
            r.input,
            r.best.epoch,
            r.best.score,
            r.best.iou[1],
            r.best.iou[2],
            100.0 * r.best.found,
            r.held_out_iou[1],
            r.held_out_iou[2],
            100.0 * r.held_out_found,
            100.0 * r.held_out_false_fail
        );
    }
    t
}
