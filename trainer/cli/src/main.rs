//! `trainer`: the host side of ThermoQC — simulation, datasets, baselines, training,
//! quantization and export, the host twin of the device, model blobs.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use tqc_trainer::baseline::{Method, Params};
use tqc_trainer::cnn::{Augment, OptimizerKind, TrainConfig};
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
    /// shared extractor, augmentation, warm-up + cosine learning rate, early stopping on
    /// the validation split. Writes metrics.csv, training-curves.png, confusion.png,
    /// validation-maps.png and the weights into OUT, then folds batch norm, calibrates
    /// int8 on the training plates and exports NAME.onnx, NAME.int8.onnx, NAME.tqm and
    /// NAME.training.json into EXPORT_TO.
    Train {
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
        /// Feature channels (log-spaced sample times).
        #[arg(long, default_value_t = 8)]
        channels: usize,
        /// Side (pixels, odd, 3..=81) of the window whose mean rise the amplitude channel
        /// is relative to — a few defect diameters, so the lamp's smooth non-uniformity
        /// cancels and spots stand out; 0 uses the image median instead.
        #[arg(long, default_value_t = 31)]
        amplitude_window: u16,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Instead of one run and an export: K-fold cross-validation over the train and
        /// validation plates (test plates untouched), each fold validated by a model that
        /// never saw it; writes crossval.csv and crossval.json into OUT.
        #[arg(long, value_name = "K", conflicts_with = "export_to")]
        folds: Option<usize>,
    },
    /// Transfer learning: loads a float ONNX file exported by `trainer train` into the
    /// burn network that burn-import generated at build time from the shipped model, and
    /// trains it further on a dataset of your own parts (same outputs as `train`). The
    /// feature schedule comes from the file's metadata.
    Finetune {
        /// The float ONNX model to start from (e.g. onnx_models/thermonet.onnx).
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
    },
    /// Inspects a recording with a model blob exactly as the device does (shared feature
    /// extractor, shared int8 engine, the device's acquisition limits): writes classes.npy
    /// (u8 per pixel), logits.npy, contrast.png (the best-contrast image), overlay.png (the
    /// class map over it) and verdict.json (PASS, FAIL or RETEST with the fault; defect
    /// regions with position and size, in mm for simulated recordings, and their true
    /// defects found or missed).
    Infer {
        /// The model blob (.tqm).
        #[arg(long)]
        model: PathBuf,
        /// A recording folder (sequence.npy, times.npy) or a sequence .npy file.
        #[arg(long)]
        sequence: PathBuf,
        #[arg(long)]
        out: PathBuf,
        /// Smallest defect region (pixels) that fails the part.
        #[arg(long, default_value_t = tqc_shared::verdict::VerdictConfig::DEFAULT.min_region_pixels)]
        min_region_pixels: u32,
        #[command(flatten)]
        read: ReadArgs,
    },
    /// How much defect depth a trained network carries: fits a 1×1 depth head (least
    /// squares, trunk frozen) from the last hidden maps of the float ONNX model to the true
    /// depth of the in-depth pixels of the training plates, and scores it on a held-out
    /// split — mean absolute error per pixel and per defect (median over its footprint),
    /// against the training mean depth. The head is measured, not exported.
    DepthHead {
        /// The float ONNX model (e.g. onnx_models/thermonet.onnx).
        #[arg(long, default_value = "onnx_models/thermonet.onnx")]
        model: PathBuf,
        /// A dataset folder (from `trainer dataset`).
        #[arg(long)]
        data: PathBuf,
        #[arg(long, default_value = "test")]
        split: String,
        /// Also write the head and the scores as JSON.
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// Host inference speed of a model blob: the shared int8 engine against tract on the
    /// float and int8 ONNX files beside it (same stem), same input, one run; prints parts
    /// per second and the ratios.
    Bench {
        #[arg(long, default_value = "onnx_models/thermonet.tqm")]
        model: PathBuf,
        #[arg(long, default_value_t = 20)]
        iterations: usize,
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
    ///
    /// With `--model M.tqm --data DIR` instead: the model on a dataset split — CNN float
    /// (M.onnx through tract, when present), CNN int8 (the blob through the shared
    /// engine) and the four baselines — as a table and JSON; `--card` also simulates the
    /// reference plate and writes the model card.
    Evaluate {
        /// A defect map (.npy) to score (with --truth).
        #[arg(long, conflicts_with_all = ["model", "data"], required_unless_present = "model")]
        map: Option<PathBuf>,
        /// The recording folder holding labels.npy (and meta.json for named defects).
        #[arg(long, requires = "map")]
        truth: Option<PathBuf>,
        /// A model blob (.tqm) to evaluate on --data.
        #[arg(long, requires = "data")]
        model: Option<PathBuf>,
        /// A dataset folder (index.json).
        #[arg(long)]
        data: Option<PathBuf>,
        /// The split of --data to evaluate on.
        #[arg(long, default_value = "test")]
        split: String,
        /// Write the model card (Markdown) here.
        #[arg(long, requires = "model")]
        card: Option<PathBuf>,
        /// Where to write the JSON (default: next to the map / the model).
        #[arg(long)]
        json: Option<PathBuf>,
    },
}

/// Options of a training run (`train` and `finetune`).
#[derive(clap::Args)]
struct RunArgs {
    /// Epochs (at most: early stopping may end sooner). For finetune, 0 goes straight to
    /// the quantization-aware fine-tuning (with --qat-epochs).
    #[arg(long, default_value_t = 40)]
    epochs: usize,
    /// Quantization-aware fine-tuning after the float epochs: this many more epochs with
    /// the forward pass rounded as the int8 engine rounds (weights per channel, every
    /// activation on its calibrated grid), early-stopped on the int8-simulated validation
    /// score; the blob keeps the activation ranges it trained with (0: post-training
    /// quantization only). Writes qat-metrics.csv.
    #[arg(long, default_value_t = 0)]
    qat_epochs: usize,
    /// Peak learning rate of the quantization-aware epochs (default: a tenth of the
    /// learning rate), cosine-decayed without warm-up.
    #[arg(long)]
    qat_learning_rate: Option<f64>,
    /// Peak learning rate (default: 3e-3 for train, 1e-3 for finetune).
    #[arg(long)]
    learning_rate: Option<f64>,
    #[arg(long, default_value_t = 2)]
    warmup_epochs: usize,
    #[arg(long, value_enum, default_value = "adamw")]
    optimizer: OptimizerKind,
    /// L2 weight decay (decoupled for AdamW).
    #[arg(long, default_value_t = 1e-4)]
    weight_decay: f32,
    /// L1 penalty on the convolution weights.
    #[arg(long, default_value_t = 0.0)]
    l1: f32,
    /// Dropout before the 1×1 head (train, and the quantization-aware epochs of either;
    /// the network finetune generates has none).
    #[arg(long, default_value_t = 0.1)]
    dropout: f64,
    /// Batch norm after each hidden convolution (folded at export). Off by default: with
    /// one plate per step its per-plate statistics part from the running ones.
    #[arg(long)]
    batch_norm: bool,
    /// Epochs without a better validation score before stopping (0: never stop early).
    #[arg(long, default_value_t = 10)]
    patience: usize,
    /// Train without augmentation (flips, gain, lamp tilt, noise).
    #[arg(long)]
    no_augment: bool,
    /// Loss weights of sound, subsurface, surface pixels.
    #[arg(long, value_delimiter = ',', default_value = "1,30,30")]
    class_weights: Vec<f32>,
}

impl RunArgs {
    fn qat(&self, cfg: &TrainConfig) -> Option<cli::train::Qat> {
        (self.qat_epochs > 0).then(|| cli::train::Qat {
            epochs: self.qat_epochs,
            learning_rate: self.qat_learning_rate.unwrap_or(cfg.learning_rate / 10.0),
        })
    }

    fn config(&self, default_rate: f64, width: usize, seed: u64) -> Result<TrainConfig> {
        let class_weights: [f32; 3] = self
            .class_weights
            .clone()
            .try_into()
            .map_err(|v: Vec<f32>| anyhow::anyhow!("--class-weights takes 3 values, got {}", v.len()))?;
        Ok(TrainConfig {
            epochs: self.epochs,
            learning_rate: self.learning_rate.unwrap_or(default_rate),
            warmup_epochs: self.warmup_epochs,
            optimizer: self.optimizer,
            weight_decay: self.weight_decay,
            l1: self.l1,
            dropout: self.dropout,
            batch_norm: self.batch_norm,
            width,
            seed,
            class_weights,
            patience: (self.patience > 0).then_some(self.patience),
            augment: if self.no_augment {
                Augment::NONE
            } else {
                Augment::DEFAULT
            },
        })
    }
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
            export_to,
            name,
            run,
            width,
            channels,
            amplitude_window,
            seed,
            folds,
        } => {
            let cfg = run.config(3e-3, width, seed)?;
            if let Some(folds) = folds {
                if run.qat_epochs > 0 {
                    anyhow::bail!("--folds exports nothing, so it takes no --qat-epochs");
                }
                return cli::crossval::run(&data, &out, &cfg, (channels, amplitude_window), folds);
            }
            let export_to = export_to.unwrap_or_else(|| out.clone());
            let opts = cli::train::Options {
                name: &name,
                export_to: &export_to,
                qat: run.qat(&cfg),
            };
            cli::train::run(&data, &out, &cfg, (channels, amplitude_window), &opts)
        }
        Command::Finetune {
            from,
            data,
            out,
            export_to,
            name,
            run,
            seed,
        } => {
            // Width is the file's; dropout does not exist in the generated network.
            let cfg = run.config(1e-3, 1, seed)?;
            let export_to = export_to.unwrap_or_else(|| out.clone());
            let opts = cli::train::Options {
                name: &name,
                export_to: &export_to,
                qat: run.qat(&cfg),
            };
            cli::train::finetune(&from, &data, &out, &cfg, &opts)
        }
        Command::Bench { model, iterations } => cli::bench::run(&model, iterations),
        Command::DepthHead {
            model,
            data,
            split,
            json,
        } => cli::depth::run(&model, &data, &split, json.as_deref()),
        Command::Infer {
            model,
            sequence,
            out,
            min_region_pixels,
            read,
        } => {
            let opts = ReadOptions {
                frame_rate_hz: read.frame_rate,
                preheat_frames: read.preheat_frames,
                counts_to_kelvin: read.counts_scale.map(|s| (s, read.counts_offset)),
            };
            cli::infer::run(&model, &sequence, &out, &opts, min_region_pixels)
        }
        Command::Evaluate {
            map,
            truth,
            model,
            data,
            split,
            card,
            json,
        } => match (map, truth, model, data) {
            (Some(map), Some(truth), _, _) => cli::evaluate::run(&map, &truth, json.as_deref()),
            (_, _, Some(model), Some(data)) => {
                cli::model_card::run(&model, &data, &split, json.as_deref(), card.as_deref())
            }
            _ => anyhow::bail!("give --map with --truth, or --model with --data"),
        },
    }
}
