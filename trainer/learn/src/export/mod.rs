//! From a trained network to the shipped artifacts: batch norm folded ([`fold`]),
//! post-training int8 quantization ([`quantize`]), ONNX float and QDQ ([`onnx`]) and the
//! engine's `.tqm` blob — written atomically side by side.

pub mod fold;
pub mod onnx;
pub mod quantize;

use std::path::{Path, PathBuf};

use tqc_shared::features::FeatureSpec;
use tqc_shared::model::QuantParams;

use crate::cnn::Sample;
use fold::FloatNet;
use quantize::{QuantNet, QuantizeError};
use tqc_data::io::write_atomic;

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Quantize(#[from] QuantizeError),
    #[error("cannot create {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Write(#[from] tqc_data::io::WriteError),
}

/// Paths of the written artifacts.
#[derive(Clone, Debug)]
pub struct Artifacts {
    pub float_onnx: PathBuf,
    pub int8_onnx: PathBuf,
    pub blob: PathBuf,
    pub quant: QuantNet,
    pub blob_bytes: Vec<u8>,
}

/// Quantizes `net` on `calibration` and writes `<name>.onnx`, `<name>.int8.onnx` and
/// `<name>.tqm` into `dir`.
pub fn export(
    net: &FloatNet,
    calibration: &[Sample],
    input: QuantParams,
    features: FeatureSpec,
    name: &str,
    dir: &Path,
) -> Result<Artifacts, ExportError> {
    let (h, w) = calibration.first().map_or((0, 0), |s| (s.height, s.width));
    let quant = quantize::quantize(net, calibration, input)?;
    export_quantized(net, quant, (h, w), features, name, dir)
}

/// Writes the artifacts of `net` quantized as `quant` (e.g. with the activation ranges a
/// quantization-aware fine-tuning trained with) for `(height, width)` images.
pub fn export_quantized(
    net: &FloatNet,
    quant: QuantNet,
    (h, w): (usize, usize),
    features: FeatureSpec,
    name: &str,
    dir: &Path,
) -> Result<Artifacts, ExportError> {
    let meta = onnx::Meta {
        features: features.clone(),
        input_quant: quant.input,
    };
    let blob_bytes = quant.to_blob(name, h, w, features)?;
    std::fs::create_dir_all(dir).map_err(|source| ExportError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let a = Artifacts {
        float_onnx: dir.join(format!("{name}.onnx")),
        int8_onnx: dir.join(format!("{name}.int8.onnx")),
        blob: dir.join(format!("{name}.tqm")),
        quant,
        blob_bytes,
    };
    write_atomic(&a.float_onnx, &onnx::float_onnx(net, name, h, w, &meta))?;
    write_atomic(&a.int8_onnx, &onnx::qdq_onnx(net, &a.quant, name, h, w, &meta))?;
    write_atomic(&a.blob, &a.blob_bytes)?;
    Ok(a)
}
