//! Plates as training samples: features through the shared extractor, augmentation,
//! batches.

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

use tqc_data::sequence::{ReadOptions, Sequence};

use super::*;

/// One plate ready for training: features CHW (float) and labels.
#[derive(Clone, Debug)]
pub struct Sample {
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    pub features: Vec<f32>,
    pub labels: Vec<u8>,
    /// The int8 feature image as the device computes it (HWC); empty for augmented copies.
    pub image: Vec<i8>,
    /// True defect depth per pixel in mm (NaN sound, 0 surface) from `depth.npy`; empty
    /// when the recording has none.
    pub depth_mm: Vec<f32>,
    /// The step of each channel's int8 grid (zero point 0) when the features were computed
    /// with one scale per channel ([`load_sample_rescaled`]); `None`: the model input's
    /// grid, the same for every channel.
    pub grid: Option<Vec<f32>>,
}

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error(transparent)]
    Sequence(#[from] tqc_data::SequenceError),
    #[error("{path}: features")]
    Features {
        path: String,
        source: tqc_shared::features::FeatureError,
    },
    #[error("{0}: no labels.npy, so no ground truth to train on")]
    NoLabels(String),
}

/// Reads a recording, computes its features with the shared extractor, dequantizes them.
pub fn load_sample(
    dir: &std::path::Path,
    spec: &tqc_shared::features::FeatureSpec,
    quant: tqc_shared::model::QuantParams,
) -> Result<Sample, DataError> {
    let (seq, labels) = labelled(dir)?;
    let image = feature_image(&seq, spec, quant, dir)?;
    let features = tqc_eval::features::dequantize_chw(&image, spec.channels(), quant);
    Ok(sample(&seq, labels, features, image, None))
}

/// A plate of `seq` with its features (CHW) and, when computed on the device's grid, its
/// int8 image.
fn sample(seq: &Sequence, labels: Vec<u8>, features: Vec<f32>, image: Vec<i8>, grid: Option<Vec<f32>>) -> Sample {
    Sample {
        channels: features.len() / seq.pixels().max(1),
        height: seq.height,
        width: seq.width,
        features,
        labels,
        image,
        depth_mm: seq.depth_mm.clone().unwrap_or_default(),
        grid,
    }
}

/// A recording and its labels (a plate without them cannot be trained on).
fn labelled(dir: &std::path::Path) -> Result<(Sequence, Vec<u8>), DataError> {
    let seq = Sequence::open(dir, &ReadOptions::default())?;
    let labels = seq
        .labels
        .clone()
        .ok_or_else(|| DataError::NoLabels(dir.display().to_string()))?;
    Ok((seq, labels))
}

/// The shared extractor's int8 image (HWC) of a plate on `quant`'s grid.
fn feature_image(
    seq: &Sequence,
    spec: &tqc_shared::features::FeatureSpec,
    quant: tqc_shared::model::QuantParams,
    dir: &std::path::Path,
) -> Result<Vec<i8>, DataError> {
    let (image, _) = tqc_eval::features::feature_image(seq, spec, quant).map_err(|source| DataError::Features {
        path: dir.display().to_string(),
        source,
    })?;
    Ok(image)
}

/// A plate whose channel `k` is computed by the shared extractor on a grid of step
/// `scales[k]` (zero point 0) instead of one grid for all: what a per-channel input
/// scale would give the network. One extractor pass per distinct scale.
pub fn load_sample_rescaled(
    dir: &std::path::Path,
    spec: &tqc_shared::features::FeatureSpec,
    scales: &[f32],
) -> Result<Sample, DataError> {
    let c = spec.channels();
    let (seq, labels) = labelled(dir)?;
    let px = seq.pixels();
    let mut features = vec![0.0f32; c * px];
    let mut done = vec![false; c];
    for k in 0..c {
        if done[k] {
            continue;
        }
        let scale = scales.get(k).copied().unwrap_or(1.0);
        let quant = tqc_shared::model::QuantParams { scale, zero_point: 0 };
        let image = feature_image(&seq, spec, quant, dir)?;
        let chw = tqc_eval::features::dequantize_chw(&image, c, quant);
        for j in (k..c).filter(|&j| scales.get(j).copied().unwrap_or(1.0) == scale) {
            // Both are `c` planes of `px`: the extractor's image is the recording's size.
            if let (Some(dst), Some(src)) = (features.get_mut(j * px..(j + 1) * px), chw.get(j * px..(j + 1) * px)) {
                dst.copy_from_slice(src);
            }
            done[j] = true;
        }
    }
    let grid = (0..c).map(|k| scales.get(k).copied().unwrap_or(1.0)).collect();
    Ok(sample(&seq, labels, features, Vec::new(), Some(grid)))
}

/// An augmented copy of `s`; features stay on the int8 grid of `quant` (or on the sample's
/// own per-channel grid).
pub fn augment(s: &Sample, a: &Augment, quant: tqc_shared::model::QuantParams, rng: &mut ChaCha8Rng) -> Sample {
    let (c, h, w) = (s.channels, s.height, s.width);
    let px = h * w;
    let (flip_x, flip_y) = if a.flips {
        (rng.random::<bool>(), rng.random::<bool>())
    } else {
        (false, false)
    };
    let gain = 1.0 + a.gain * (2.0 * rng.random::<f32>() - 1.0);
    let (tx, ty) = (
        a.tilt * (2.0 * rng.random::<f32>() - 1.0),
        a.tilt * (2.0 * rng.random::<f32>() - 1.0),
    );
    let noise = Normal::new(0.0f32, a.noise.max(0.0)).ok();
    // Each channel's grid: step, lowest and highest value.
    let grids: Vec<(f32, f32, f32)> = (0..c)
        .map(|k| match s.grid.as_ref().and_then(|g| g.get(k)) {
            Some(&step) => (step, -128.0 * step, 127.0 * step),
            None => (
                quant.scale,
                quant.scale * (-128 - quant.zero_point as i32) as f32,
                quant.scale * (127 - quant.zero_point as i32) as f32,
            ),
        })
        .collect();
    let mut out = Sample {
        channels: c,
        height: h,
        width: w,
        features: vec![0.0; s.features.len()],
        labels: vec![0; px],
        image: Vec::new(),
        depth_mm: if s.depth_mm.len() == px {
            vec![0.0; px]
        } else {
            Vec::new()
        },
        grid: s.grid.clone(),
    };
    for y in 0..h {
        let sy = if flip_y { h - 1 - y } else { y };
        for x in 0..w {
            let sx = if flip_x { w - 1 - x } else { x };
            let (d, src) = (y * w + x, sy * w + sx);
            out.labels[d] = s.labels[src];
            if let Some(depth) = out.depth_mm.get_mut(d) {
                *depth = s.depth_mm[src];
            }
            let u = 2.0 * x as f32 / (w.max(2) - 1) as f32 - 1.0;
            let v = 2.0 * y as f32 / (h.max(2) - 1) as f32 - 1.0;
            for (k, &(step, lo, hi)) in grids.iter().enumerate() {
                let mut f = s.features[k * px + src];
                if k == 0 {
                    // The amplitude is a ratio stored as its deviation from 1.
                    f = (f + 1.0) * gain * (1.0 + tx * u + ty * v) - 1.0;
                }
                if let Some(n) = noise {
                    f += n.sample(rng);
                }
                // Back onto the device's grid: the network only ever sees int8 features.
                let q = (f / step).round() * step;
                out.features[k * px + d] = q.clamp(lo, hi);
            }
        }
    }
    out
}

pub(crate) fn batch<B: Backend>(samples: &[&Sample], device: &B::Device) -> (Tensor<B, 4>, Tensor<B, 1, Int>) {
    let s0 = samples[0];
    let (c, h, w) = (s0.channels, s0.height, s0.width);
    let mut x = Vec::with_capacity(samples.len() * c * h * w);
    let mut y = Vec::with_capacity(samples.len() * h * w);
    for s in samples {
        x.extend_from_slice(&s.features);
        y.extend(s.labels.iter().map(|&l| l as i64));
    }
    let x = Tensor::from_data(TensorData::new(x, [samples.len(), c, h, w]), device);
    let y = Tensor::from_data(TensorData::new(y, [samples.len() * h * w]), device);
    (x, y)
}
