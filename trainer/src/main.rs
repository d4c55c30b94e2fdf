//! `trainer`: the host side of ThermoQC. Today it inspects model blobs; simulation,
//! datasets, training, quantization and export land here as their issues do.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

mod inspect;
#[allow(unused_imports)]
use tqc_trainer as _;

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
            let report =
                inspect::report(&bytes).with_context(|| format!("{} is not a valid model blob", blob.display()))?;
            print!("{report}");
            Ok(())
        }
    }
}
