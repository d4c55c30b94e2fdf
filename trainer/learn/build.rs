//! Generates, at build time, burn models of the shipped float ONNX files with
//! burn-import: `trainer finetune` trains such a generated network further on a user's
//! own parts. Two architectures ship — `thermonet.onnx` (the four-layer network) and
//! `thermonet2.onnx` (the encoder–decoder with a depth head); the architecture comes from
//! each file, the weights are loaded at run time from whichever ONNX file `--from` names.
//! A missing file leaves its architecture out (cfg `shipped_thermonet` /
//! `shipped_thermonet2` unset); `finetune` then says what is missing.

// burn-import 0.21 is the maintained re-export of burn-onnx under its old name.
#![allow(deprecated)]

use std::path::Path;

use burn_import::onnx::{LoadStrategy, ModelGen};

fn main() {
    for name in ["thermonet", "thermonet2"] {
        let cfg = format!("shipped_{name}");
        println!("cargo::rustc-check-cfg=cfg({cfg})");
        let onnx = format!("../../onnx_models/{name}.onnx");
        println!("cargo::rerun-if-changed={onnx}");
        if !Path::new(&onnx).exists() {
            println!(
                "cargo::warning={onnx} is missing: `trainer finetune` cannot start from that architecture in this \
                 build (restore the file, or train one with `cargo xtask train`)"
            );
            continue;
        }
        println!("cargo::rustc-cfg={cfg}");
        ModelGen::new()
            .input(&onnx)
            .out_dir("shipped/")
            .load_strategy(LoadStrategy::None)
            .run_from_script();
    }
}
