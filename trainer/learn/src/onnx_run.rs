//! Host reference inference of the exported ONNX files with tract-onnx: independent of
//! the burn model and of the engine, so agreement with both means something.

use std::path::Path;

use tract_onnx::prelude::*;

#[derive(Debug, thiserror::Error)]
pub enum OnnxError {
    #[error("{path}: {message}")]
    Tract { path: String, message: String },
}

/// A loaded, optimized ONNX model for `[1, K, H, W]` inputs.
pub struct OnnxModel {
    path: String,
    plan: std::sync::Arc<TypedSimplePlan>,
    shape: [usize; 4],
}

impl OnnxModel {
    pub fn load(path: &Path, channels: usize, height: usize, width: usize) -> Result<Self, OnnxError> {
        let p = path.display().to_string();
        let err = |e: TractError| OnnxError::Tract {
            path: p.clone(),
            message: format!("{e:#}"),
        };
        let shape = [1, channels, height, width];
        let plan = tract_onnx::onnx()
            .model_for_path(path)
            .map_err(err)?
            .with_input_fact(0, f32::fact(shape).into())
            .map_err(err)?
            .into_optimized()
            .map_err(err)?
            .into_runnable()
            .map_err(err)?;
        Ok(OnnxModel { path: p, plan, shape })
    }

    /// Logits (CHW) of one CHW feature image.
    pub fn logits(&self, features: &[f32]) -> Result<Vec<f32>, OnnxError> {
        Ok(self.outputs(features)?.into_iter().next().unwrap_or_default())
    }

    /// Every output (CHW each) of one CHW feature image, in the graph's order: logits,
    /// probabilities, and the depth (mm) for a network with a depth head.
    pub fn outputs(&self, features: &[f32]) -> Result<Vec<Vec<f32>>, OnnxError> {
        let err = |e: TractError| OnnxError::Tract {
            path: self.path.clone(),
            message: format!("{e:#}"),
        };
        let input = Tensor::from_shape(&self.shape, features).map_err(err)?;
        let out = self.plan.run(tvec!(input.into())).map_err(err)?;
        out.iter()
            .map(|t| Ok(t.to_plain_array_view::<f32>().map_err(err)?.iter().copied().collect()))
            .collect()
    }
}

/// Classes (argmax over channels) of CHW logits, row-major pixels.
pub fn argmax_chw(logits: &[f32], classes: usize) -> Vec<u8> {
    let px = logits.len() / classes.max(1);
    (0..px)
        .map(|p| {
            let mut best = 0;
            for c in 1..classes {
                // Ties go to the lower class, as the engine's argmax does.
                if logits[c * px + p] > logits[best * px + p] {
                    best = c;
                }
            }
            best as u8
        })
        .collect()
}
