//! `trainer`: the host side of ThermoQC — simulation, datasets, baselines, training,
//! quantization and export, the host twin of the device, model blobs.

use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

/// Training allocates and frees tensors of megabytes every step; the system allocator
/// hands them back to the kernel and faults the pages in again each time (a fifth of a
/// training run), mimalloc keeps them for reuse.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod cmd;
mod plot;
mod preview;
mod progress;

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
    Inspect(cmd::inspect::InspectArgs),
    /// Simulates a part at the inspection station and writes the recording:
    /// `sequence.npy` (frames × height × width, f32 kelvin), `times.npy` (f64 s from the
    /// start of heating), `labels.npy` (u8: 0 sound, 1 in-depth defect, 2 surface defect),
    /// `depth.npy` (f32 mm; NaN where sound), `meta.json`, and PNG previews in
    /// `DIR/previews/`. Deterministic for a given seed.
    Simulate(cmd::simulate::SimulateArgs),
    /// Simulates many plates for training: random variations of a template specimen
    /// (material ±20 %, thickness, defect sets, heating, noise, lamp profile, emissivity
    /// texture, a share of defect-free plates), one folder per plate as `simulate`
    /// writes it, and `index.json` with the split held out by plate.
    Dataset(cmd::dataset::DatasetArgs),
    /// Trains the CNN on a dataset folder (from `trainer dataset`): features through the
    /// shared extractor, augmentation, warm-up + cosine learning rate, early stopping on
    /// the validation split. Writes metrics.csv, training-curves.png, confusion.png,
    /// validation-maps.png and the weights (model.mpk, with the network's shape in
    /// model.json beside them) into OUT, then folds batch norm, calibrates
    /// int8 on the training plates and exports NAME.onnx, NAME.int8.onnx, NAME.tqm and
    /// NAME.training.json into EXPORT_TO.
    Train(cmd::train::TrainArgs),
    /// Transfer learning: loads a float ONNX file exported by `trainer train` into the
    /// burn network that burn-import generated at build time from the shipped model, and
    /// trains it further on a dataset of your own parts (same outputs as `train`). The
    /// feature schedule comes from the file's metadata.
    Finetune(cmd::train::FinetuneArgs),
    /// Inspects a recording with a model blob exactly as the device does (shared feature
    /// extractor, shared int8 engine, the device's acquisition limits): writes classes.npy
    /// (u8 per pixel), logits.npy, depth_mm.npy (f32, for a model with a depth output),
    /// contrast.png (the best-contrast image), overlay.png (the class map over it with a
    /// legend, the true outlines of a simulated part and each in-depth region's estimated
    /// depth) and verdict.json (PASS, FAIL or RETEST with the fault; defect regions with
    /// position, size and median depth, in mm for simulated recordings, and their true
    /// defects found or missed with the depth estimated for them).
    Infer(cmd::infer::InferArgs),
    /// How much defect depth a trained network carries: fits a 1×1 depth head (least
    /// squares, trunk frozen) from the last hidden maps of the float ONNX model to the true
    /// depth of the in-depth pixels of the training plates, and scores it on a held-out
    /// split — mean absolute error per pixel and per defect (median over its footprint),
    /// against the training mean depth. The head is measured, not exported.
    DepthHead(cmd::depth::DepthHeadArgs),
    /// Host inference speed of a model blob: the shared int8 engine against tract on the
    /// float and int8 ONNX files beside it (same stem), same input, one run; prints parts
    /// per second and the ratios.
    Bench(cmd::bench::BenchArgs),
    /// Classical processing of a recording — absolute contrast, PCT, PPT or TSR — into
    /// processed images (npy + PNG), a score image and a thresholded defect map
    /// (`map.npy`, u8 0/1).
    Baseline(cmd::baseline::BaselineArgs),
    /// Scores a defect map (u8 .npy: 0/1, or classes 0/1/2) against a recording's ground
    /// truth: per-class IoU, pixel precision and recall, per-defect detection (found when
    /// half its footprint is flagged), false-call area; prints a table, writes JSON.
    ///
    /// With `--model M.tqm --data DIR` instead: the model on a dataset split — CNN float
    /// (M.onnx through tract, when present), CNN int8 (the blob through the shared
    /// engine) and the four baselines — as a table and JSON; `--card` also simulates the
    /// reference plate and writes the model card.
    Evaluate(cmd::evaluate::EvaluateArgs),
    /// Qualifies the model and the baselines the way NDT does, on an evaluation set:
    /// per defect hit/miss for CNN int8 (the engine), CNN float (tract), contrast, PCT,
    /// PPT and TSR; hit/miss POD fitted by maximum likelihood against aspect ratio
    /// (diameter / depth) and against depth per diameter class, with a50, a90 and a90/95
    /// (95 % Wald bound); surface spots apart; false calls per m² (exact Poisson
    /// interval) and false FAIL per sound part (Clopper–Pearson). Every method is swept
    /// over its threshold and also compared at the CNN's false-call rate. Writes
    /// pod.json, pod.md, a POD plot per method and pod-vs-false-calls.png.
    Pod(cmd::pod::PodArgs),
    /// Measures what one input scale for all feature channels costs: the int8 codes each
    /// channel takes on the shared grid and on a power-of-two grid of its own (sized to the
    /// channel's spread on the training plates), and the same ThermoNet 2 trained (float,
    /// same recipe and seed) on both inputs, scored on validation and held-out plates.
    InputScale(cmd::input_scale::InputScaleArgs),
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
        Command::Inspect(args) => args.run(),
        Command::Simulate(args) => args.run(),
        Command::Dataset(args) => args.run(),
        Command::Train(args) => args.run(),
        Command::Finetune(args) => args.run(),
        Command::Infer(args) => args.run(),
        Command::DepthHead(args) => args.run(),
        Command::Bench(args) => args.run(),
        Command::Baseline(args) => args.run(),
        Command::Evaluate(args) => args.run(),
        Command::Pod(args) => args.run(),
        Command::InputScale(args) => args.run(),
    }
}
