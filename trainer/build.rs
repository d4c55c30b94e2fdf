//! Generates, at build time, the burn model of the shipped float ONNX file with
//! burn-import: `trainer finetune` trains that generated network further on a user's
//! own parts. The architecture comes from the file; weights are loaded at run time from
//! whichever ONNX file of that architecture `--from` names.

// burn-import 0.21 is the maintained re-export of burn-onnx under its old name.
#![allow(deprecated)]

use std::path::Path;

use burn_import::onnx::{LoadStrategy, ModelGen};

fn main() {
    println!("cargo:rerun-if-env-changed=THERMOQC_FINETUNE_ONNX");
    let onnx = std::env::var("THERMOQC_FINETUNE_ONNX").unwrap_or_else(|_| "../onnx_models/thermonet.onnx".into());
    println!("cargo:rerun-if-changed={onnx}");
    if !Path::new(&onnx).exists() {
        panic!(
            "{onnx} is missing: the trainer generates its fine-tuning network from the shipped model \
             (train it with `cargo xtask train`, or point THERMOQC_FINETUNE_ONNX at an ONNX file made by `trainer train`)"
        );
    }
    ModelGen::new()
        .input(&onnx)
        .out_dir("shipped/")
        .load_strategy(LoadStrategy::None)
        .run_from_script();
}
