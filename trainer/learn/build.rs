//! Generates, at build time, the burn model of the shipped float ONNX file with
//! burn-import: `trainer finetune` trains that generated network further on a user's
//! own parts. The architecture comes from the file; weights are loaded at run time from
//! whichever ONNX file of that architecture `--from` names. Without the file everything
//! else still builds; `finetune` then says what is missing (cfg `shipped_model` unset).

// burn-import 0.21 is the maintained re-export of burn-onnx under its old name.
#![allow(deprecated)]

use std::path::Path;

use burn_import::onnx::{LoadStrategy, ModelGen};

fn main() {
    println!("cargo::rustc-check-cfg=cfg(shipped_model)");
    println!("cargo::rerun-if-env-changed=THERMOQC_FINETUNE_ONNX");
    let onnx = std::env::var("THERMOQC_FINETUNE_ONNX").unwrap_or_else(|_| "../../onnx_models/thermonet.onnx".into());
    println!("cargo::rerun-if-changed={onnx}");
    if !Path::new(&onnx).exists() {
        println!(
            "cargo::warning={onnx} is missing: `trainer finetune` is left out of this build (train a model with \
             `cargo xtask train`, or point THERMOQC_FINETUNE_ONNX at an ONNX file made by `trainer train`)"
        );
        return;
    }
    println!("cargo::rustc-cfg=shipped_model");
    ModelGen::new()
        .input(&onnx)
        .out_dir("shipped/")
        .load_strategy(LoadStrategy::None)
        .run_from_script();
}
