//! `trainer`: the host side of ThermoQC. Today it inspects model blobs; simulation,
//! datasets, training, quantization and export land here as their issues do.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

mod cli;

#[derive(Parser)]
#[command(name = "trainer", version, about = "ThermoQC host tools", long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Validates a model blob (`.tqm`) exactly as the device does at boot — header,
    /// CRC-32, version, every layer's shapes and quantization, the arena size — and
    /// prints its layers with output shapes, parameters, MACs and the arena it needs.
    Inspect {
        /// The blob to check.
        blob: PathBuf,
    },
    /// Simulates a part at the inspection station and writes the recording:
    /// `sequence.npy` (frames × height × width, f32 kelvin), `times.npy` (f64 s from the
    /// start of heating), `labels.npy` (u8: 0 sound, 1 in-depth defect, 2 surface defect),
    /// `depth.npy` (f32 mm; NaN where sound), `meta.json`, and PNG previews in
    /// `DIR/previews/`. Deterministic for a given seed.
    Simulate {
        /// A shipped specimen (gfrp-reference, gfrp-sound, cfrp-delaminations) or a
        /// specimen TOML file (format: trainer/specimens/*.toml and specimen.rs).
        #[arg(long)]
        specimen: String,
        /// Output folder (created if needed).
        #[arg(long)]
        out: PathBuf,
        /// Seed for the lamp profile, emissivity texture and camera noise.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Inspect { blob } => {
            let bytes = std::fs::read(&blob).with_context(|| format!("cannot read {}", blob.display()))?;
            let report = cli::inspect::report(&bytes)
                .with_context(|| format!("{} is not a valid model blob", blob.display()))?;
            print!("{report}");
            Ok(())
        }
        Command::Simulate { specimen, out, seed } => cli::simulate::run(&specimen, &out, seed),
    }
}
