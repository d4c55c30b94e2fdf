//! `trainer`: the host side of ThermoQC. Today it inspects model blobs; simulation,
//! datasets, training, quantization and export land here as their issues do.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use tqc_trainer::baseline::{Method, Params};
use tqc_trainer::cnn::TrainConfig;
use tqc_trainer::dataset::DatasetSpec;
use tqc_trainer::sequence::ReadOptions;

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
    /// Simulates many plates for training: random variations of a template specimen
    /// (material ±20 %, thickness, defect sets, heating, noise, lamp profile, emissivity
    /// texture, a share of defect-free plates), one folder per plate as `simulate`
    /// writes it, and `index.json` with the split held out by plate.
    Dataset {
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
    },
    /// Trains the CNN on a dataset folder (from `trainer dataset`): features through the
    /// shared extractor, Adam, class-weighted cross-entropy; writes metrics.csv and
    /// training-curves.png. Quantization and export to onnx_models/ are not built yet.
    Train {
        #[arg(long)]
        data: PathBuf,
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 20)]
        epochs: usize,
        #[arg(long, default_value_t = 1e-2)]
        learning_rate: f64,
        /// Feature maps per hidden layer.
        #[arg(long, default_value_t = 16)]
        width: usize,
        /// Feature channels (log-spaced sample times).
        #[arg(long, default_value_t = 8)]
        channels: usize,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Classical processing of a recording — absolute contrast, PCT, PPT or TSR — into
    /// processed images (npy + PNG), a score image and a thresholded defect map
    /// (`map.npy`, u8 0/1).
    Baseline {
        #[arg(long, value_enum)]
        method: Method,
        /// A recording folder (sequence.npy, times.npy) or a sequence .npy file.
        #[arg(long)]
        sequence: PathBuf,
        #[arg(long)]
        out: PathBuf,
        /// Analysis window start in s (default: the end of the heating when meta.json
        /// says it, else 0).
        #[arg(long)]
        start_s: Option<f64>,
        /// Robust z-score above which a pixel is flagged.
        #[arg(long, default_value_t = 4.0)]
        threshold: f64,
        /// TSR polynomial degree (4..=7).
        #[arg(long, default_value_t = 5)]
        degree: usize,
        /// PCT components / PPT frequencies kept.
        #[arg(long, default_value_t = 4)]
        components: usize,
        #[command(flatten)]
        read: ReadArgs,
    },
    /// Scores a defect map (u8 .npy: 0/1, or classes 0/1/2) against a recording's ground
    /// truth: per-class IoU, pixel precision and recall, per-defect detection (found when
    /// half its footprint is flagged), false-call area; prints a table, writes JSON.
    Evaluate {
        #[arg(long)]
        map: PathBuf,
        /// The recording folder holding labels.npy (and meta.json for named defects).
        #[arg(long)]
        truth: PathBuf,
        /// Where to write the JSON (default: next to the map).
        #[arg(long)]
        json: Option<PathBuf>,
    },
}

/// How to read a recording that has no times.npy, or holds raw counts.
#[derive(clap::Args)]
struct ReadArgs {
    /// Frame rate, when the recording has no times.npy.
    #[arg(long)]
    frame_rate: Option<f64>,
    /// Frames before the heating starts (with --frame-rate).
    #[arg(long, default_value_t = 0)]
    preheat_frames: usize,
    /// Raw counts to kelvin: kelvin = scale · counts + offset (a Lepton in TLinear: 0.01).
    #[arg(long)]
    counts_scale: Option<f64>,
    #[arg(long, default_value_t = 0.0)]
    counts_offset: f64,
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
        Command::Baseline {
            method,
            sequence,
            out,
            start_s,
            threshold,
            degree,
            components,
            read,
        } => {
            let opts = ReadOptions {
                frame_rate_hz: read.frame_rate,
                preheat_frames: read.preheat_frames,
                counts_to_kelvin: read.counts_scale.map(|s| (s, read.counts_offset)),
            };
            let params = Params {
                start_s: 0.0,
                threshold,
                tsr_degree: degree,
                components,
            };
            cli::baseline::run(method, &sequence, &out, &opts, params, start_s)
        }
        Command::Dataset {
            plates,
            seed,
            out,
            specimen_template,
            sound_share,
            validation_share,
            test_share,
        } => {
            let spec = DatasetSpec {
                plates,
                seed,
                sound_share,
                validation_share,
                test_share,
            };
            cli::dataset::run(&specimen_template, &spec, &out)
        }
        Command::Train {
            data,
            out,
            epochs,
            learning_rate,
            width,
            channels,
            seed,
        } => {
            let cfg = TrainConfig {
                epochs,
                learning_rate,
                width,
                seed,
                class_weights: [1.0, 8.0, 8.0],
            };
            cli::train::run(&data, &out, &cfg, channels)
        }
        Command::Evaluate { map, truth, json } => cli::evaluate::run(&map, &truth, json.as_deref()),
    }
}
