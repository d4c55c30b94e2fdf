//! A depth head for in-depth defects, measured on a trained network: a 1×1 convolution
//! from the last hidden maps to the defect depth in mm, fitted by least squares on the
//! true in-depth pixels of the training plates with the trunk frozen — the optimum an
//! L2-trained 1×1 head on that trunk would approach. It says how much depth the trunk's
//! features carry; it is not part of the exported model.
//!
//! Scored on the true in-depth pixels of held-out plates (mean absolute error in mm), per
//! defect (median estimate over its footprint against its depth), and against the
//! trivial estimate, the training plates' mean depth.

use nalgebra::{DMatrix, DVector};
use serde::{Deserialize, Serialize};

use crate::cnn::Sample;
use crate::export::fold::FloatNet;
use tqc_eval::score::components;

/// Class of in-depth defect pixels.
const IN_DEPTH: u8 = 1;
/// Ridge on the weights (not the bias): keeps the fit defined when a map is dead.
const RIDGE: f64 = 1e-3;

/// `depth_mm = weight · hidden + bias` per pixel.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DepthHead {
    pub weight: Vec<f64>,
    pub bias: f64,
    /// Mean depth of the training pixels: the trivial estimate to beat.
    pub mean_depth_mm: f64,
    pub training_pixels: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum DepthError {
    #[error("plate {index} has no depth.npy: no ground truth for the depth")]
    NoDepth { index: usize },
    #[error("plate {index}: in-depth pixel {pixel} has depth {depth} mm")]
    BadDepth { index: usize, pixel: usize, depth: f32 },
    #[error("the training plates hold no in-depth defect pixel")]
    NoDefects,
    #[error("the least-squares system is singular")]
    Singular,
}

/// The last hidden layer's maps (CHW) of a plate.
fn hidden(net: &FloatNet, s: &Sample) -> Vec<f32> {
    let mut acts = net.activations(&s.features, s.height, s.width);
    // The tensor the logits' head reads is the trunk's end.
    let at = net
        .outputs
        .first()
        .and_then(|&t| net.layers.get(t.wrapping_sub(1)))
        .and_then(|l| l.inputs.first().copied())
        .unwrap_or(0);
    acts.swap_remove(at)
}

/// The true in-depth pixels of a plate and their depths.
fn in_depth(s: &Sample, index: usize) -> Result<Vec<(usize, f64)>, DepthError> {
    if s.depth_mm.len() != s.labels.len() {
        return Err(DepthError::NoDepth { index });
    }
    let mut out = Vec::new();
    for (pixel, (&l, &d)) in s.labels.iter().zip(&s.depth_mm).enumerate() {
        if l == IN_DEPTH {
            if !(d.is_finite() && d > 0.0) {
                return Err(DepthError::BadDepth { index, pixel, depth: d });
            }
            out.push((pixel, d as f64));
        }
    }
    Ok(out)
}

/// Fits the head on the true in-depth pixels of `train`.
pub fn fit(net: &FloatNet, train: &[Sample]) -> Result<DepthHead, DepthError> {
    let maps = net.convs().last().map_or(0, |l| l.in_channels); // the logits' head reads the trunk's maps
    let n = maps + 1;
    // Normal equations, accumulated plate by plate (no matrix of all pixels).
    let (mut xtx, mut xty) = (DMatrix::<f64>::zeros(n, n), DVector::<f64>::zeros(n));
    let (mut count, mut sum) = (0usize, 0.0);
    for (index, s) in train.iter().enumerate() {
        let pixels = in_depth(s, index)?;
        if pixels.is_empty() {
            continue;
        }
        let h = hidden(net, s);
        let px = s.height * s.width;
        for (p, d) in pixels {
            let x = DVector::<f64>::from_iterator(n, (0..maps).map(|c| h[c * px + p] as f64).chain([1.0]));
            xtx.ger(1.0, &x, &x, 1.0);
            xty.axpy(d, &x, 1.0);
            count += 1;
            sum += d;
        }
    }
    if count == 0 {
        return Err(DepthError::NoDefects);
    }
    for c in 0..maps {
        xtx[(c, c)] += RIDGE * count as f64;
    }
    let solution = xtx.cholesky().ok_or(DepthError::Singular)?.solve(&xty);
    Ok(DepthHead {
        weight: solution.iter().take(maps).copied().collect(),
        bias: solution[maps],
        mean_depth_mm: sum / count as f64,
        training_pixels: count,
    })
}

impl DepthHead {
    /// Depth estimate (mm) of every pixel of a plate; a defect lies below the face, so
    /// the linear estimate is clamped at 0.
    pub fn estimate(&self, net: &FloatNet, s: &Sample) -> Vec<f64> {
        let h = hidden(net, s);
        let px = s.height * s.width;
        (0..px)
            .map(|p| {
                let linear = self.bias
                    + self
                        .weight
                        .iter()
                        .enumerate()
                        .map(|(c, w)| w * h[c * px + p] as f64)
                        .sum::<f64>();
                linear.max(0.0)
            })
            .collect()
    }
}

/// One in-depth defect of a held-out plate.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DefectDepth {
    pub plate: usize,
    pub depth_mm: f64,
    pub pixels: usize,
    /// Median estimate over the footprint.
    pub estimate_mm: f64,
    /// Whether the network's class map flags at least half the footprint (a defect
    /// found); `None` when no class map was scored (the probe).
    #[serde(default)]
    pub found: Option<bool>,
}

/// The `--json` file of `trainer depth-head`. Fields in alphabetical order, as the file
/// lists them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DepthFile {
    /// The dataset folder.
    pub data: String,
    /// The fitted probe; `None` when the network has a depth head of its own.
    pub head: Option<DepthHead>,
    /// The float ONNX model probed.
    pub model: String,
    pub report: DepthReport,
    pub split: tqc_data::Split,
}

/// The defects of one depth band.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DepthBand {
    pub from_mm: f64,
    /// `None`: the open last band.
    pub to_mm: Option<f64>,
    pub defects: usize,
    /// Of them found (all, when no class map was scored).
    pub found: usize,
    /// Mean absolute error of the found defects' median estimates (none found: `None`).
    pub mae_mm: Option<f64>,
}

/// Band edges (mm) of [`DepthReport::bands`]; the last band is open.
pub const BANDS_MM: [f64; 5] = [0.0, 2.0, 4.0, 6.0, 8.0];

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DepthReport {
    pub pixels: usize,
    /// Mean absolute error over the true in-depth pixels.
    pub mae_mm: f64,
    /// The same for the training mean depth.
    pub mean_estimate_mae_mm: f64,
    pub defects: Vec<DefectDepth>,
    /// Mean absolute error of the defects' median estimates (the found ones, when a class
    /// map was scored); `None` when no defect counts.
    pub defect_mae_mm: Option<f64>,
    pub defect_mean_estimate_mae_mm: Option<f64>,
    #[serde(default)]
    pub bands: Vec<DepthBand>,
}

/// Scores `head` on the true in-depth pixels of `plates`.
pub fn score(head: &DepthHead, net: &FloatNet, plates: &[Sample]) -> Result<DepthReport, DepthError> {
    let estimates: Vec<Vec<f64>> = plates.iter().map(|s| head.estimate(net, s)).collect();
    score_estimates(plates, &estimates, None, head.mean_depth_mm)
}

/// Mean depth of the true in-depth pixels of `plates` (the trivial estimate).
pub fn mean_depth(plates: &[Sample]) -> Result<f64, DepthError> {
    let (mut n, mut sum) = (0usize, 0.0);
    for (index, s) in plates.iter().enumerate() {
        for (_, d) in in_depth(s, index)? {
            n += 1;
            sum += d;
        }
    }
    if n == 0 {
        return Err(DepthError::NoDefects);
    }
    Ok(sum / n as f64)
}

/// The depth output (mm) and the class map of a network with a depth head, per plate.
pub fn network_estimates(net: &FloatNet, s: &Sample) -> Option<Estimates> {
    net.depth_output()?;
    let outs = net.forward_all(&s.features, s.height, s.width);
    let classes = crate::onnx_run::argmax_chw(outs.first()?, net.classes());
    Some((outs.get(1)?.iter().map(|&d| f64::from(d)).collect(), classes))
}

/// Per-pixel depth estimates (mm) and the class map they go with.
pub type Estimates = (Vec<f64>, Vec<u8>);

/// What the device computes: the int8 engine's depth output (dequantized, mm) and class
/// map for one plate, `None` for a model without a depth output. The plate's features are
/// the extractor's codes on `input`'s grid (as [`crate::cnn::load_sample`] made them).
pub fn engine_estimates(
    model: &tqc_shared::model::Model<'_>,
    s: &Sample,
    input: tqc_shared::model::QuantParams,
) -> Result<Option<Estimates>, tqc_eval::infer::InferError> {
    let Some((k, depth_quant)) = model.depth_output().and_then(|k| Some((k, model.output_quant(k)?))) else {
        return Ok(None);
    };
    // CHW floats back to the HWC codes they were dequantized from.
    let (c, pixels) = (s.channels, s.height * s.width);
    let mut codes = vec![0i8; c * pixels];
    for (k, plane) in s.features.chunks_exact(pixels.max(1)).enumerate().take(c) {
        for (p, &v) in plane.iter().enumerate() {
            let q = (v / input.scale).round() as i32 + i32::from(input.zero_point);
            codes[p * c + k] = q.clamp(-128, 127) as i8;
        }
    }
    let outputs = tqc_eval::infer::run_outputs(model, &codes)?;
    let classes = tqc_eval::infer::class_map(model, outputs.first().map_or(&[][..], Vec::as_slice));
    let depth = outputs
        .get(k)
        .map(|d| {
            d.iter()
                .map(|&q| {
                    f64::from(tqc_shared::quant::dequantize(
                        q,
                        depth_quant.scale,
                        depth_quant.zero_point.into(),
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(Some((depth, classes)))
}

/// Scores per-pixel depth estimates (mm, one vector per plate) on the true in-depth
/// pixels of `plates`; with class maps, a defect's median counts only where the map
/// found it. `mean_depth_mm` is the trivial estimate compared against.
pub fn score_estimates(
    plates: &[Sample],
    estimates: &[Vec<f64>],
    maps: Option<&[Vec<u8>]>,
    mean_depth_mm: f64,
) -> Result<DepthReport, DepthError> {
    let (mut n, mut err, mut trivial) = (0usize, 0.0, 0.0);
    let mut defects = Vec::new();
    for (index, (s, est)) in plates.iter().zip(estimates).enumerate() {
        let pixels = in_depth(s, index)?;
        if pixels.is_empty() {
            continue;
        }
        for &(p, d) in &pixels {
            n += 1;
            err += (est[p] - d).abs();
            trivial += (mean_depth_mm - d).abs();
        }
        for f in components(&s.labels, Some(&s.depth_mm), s.width, s.height) {
            if f.class != IN_DEPTH {
                continue;
            }
            let mut e: Vec<f64> = f.pixels.iter().map(|&p| est[p].max(0.0)).collect();
            e.sort_by(f64::total_cmp);
            let found = maps.and_then(|m| m.get(index)).map(|m| f.found_in(m));
            defects.push(DefectDepth {
                plate: index,
                depth_mm: f.depth_mm,
                pixels: f.pixels.len(),
                estimate_mm: e[e.len() / 2],
                found,
            });
        }
    }
    let mean = |v: f64, k: usize| if k == 0 { f64::NAN } else { v / k as f64 };
    let counted: Vec<&DefectDepth> = defects.iter().filter(|d| d.found != Some(false)).collect();
    let k = counted.len();
    let bands = BANDS_MM
        .iter()
        .enumerate()
        .map(|(i, &from)| {
            let upper = BANDS_MM.get(i + 1).copied();
            let to = upper.unwrap_or(f64::INFINITY);
            let all: Vec<&DefectDepth> = defects
                .iter()
                .filter(|d| d.depth_mm >= from && d.depth_mm < to)
                .collect();
            let found: Vec<&&DefectDepth> = all.iter().filter(|d| d.found != Some(false)).collect();
            DepthBand {
                from_mm: from,
                to_mm: upper,
                defects: all.len(),
                found: found.len(),
                mae_mm: (!found.is_empty()).then(|| {
                    mean(
                        found.iter().map(|d| (d.estimate_mm - d.depth_mm).abs()).sum(),
                        found.len(),
                    )
                }),
            }
        })
        .collect();
    Ok(DepthReport {
        pixels: n,
        mae_mm: mean(err, n),
        mean_estimate_mae_mm: mean(trivial, n),
        defect_mae_mm: (k > 0).then(|| mean(counted.iter().map(|d| (d.estimate_mm - d.depth_mm).abs()).sum(), k)),
        defect_mean_estimate_mae_mm: (k > 0)
            .then(|| mean(counted.iter().map(|d| (mean_depth_mm - d.depth_mm).abs()).sum(), k)),
        defects,
        bands,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::fold::FloatConv;

    /// A network whose last hidden map is its input channel 0 (identity 1×1 layers) and a
    /// plate whose depth is a linear function of that channel: the fit recovers it.
    #[test]
    fn a_depth_linear_in_the_hidden_maps_is_recovered_exactly() {
        let identity = |k: usize| {
            let mut w = vec![0.0; k * k];
            w[(k / 2) * k + k / 2] = 1.0;
            FloatConv::new(1, 1, k, w, vec![0.0], true)
        };
        let head = FloatConv::new(1, 3, 1, vec![0.0; 3], vec![0.0; 3], false);
        let net = FloatNet::chain(vec![identity(3), identity(3), identity(3), head]);
        let (h, w) = (4, 5);
        let features: Vec<f32> = (0..h * w).map(|p| 0.1 * p as f32).collect();
        let labels: Vec<u8> = (0..h * w).map(|p| u8::from(p % 3 != 0)).collect();
        let depth_mm: Vec<f32> = (0..h * w)
            .map(|p| {
                if labels[p] == 1 {
                    2.0 + 3.0 * features[p]
                } else {
                    f32::NAN
                }
            })
            .collect();
        let s = Sample {
            channels: 1,
            height: h,
            width: w,
            features,
            labels,
            image: Vec::new(),
            depth_mm,
            grid: None,
        };
        let fitted = fit(&net, std::slice::from_ref(&s)).unwrap();
        assert!((fitted.weight[0] - 3.0).abs() < 1e-2, "{fitted:?}");
        assert!((fitted.bias - 2.0).abs() < 1e-2, "{fitted:?}");
        let r = score(&fitted, &net, std::slice::from_ref(&s)).unwrap();
        assert!(r.mae_mm < 1e-2, "{r:?}");
        assert!(r.mean_estimate_mae_mm > 1.0, "{r:?}");

        let mut no_depth = s.clone();
        no_depth.depth_mm.clear();
        assert!(matches!(fit(&net, &[no_depth]), Err(DepthError::NoDepth { index: 0 })));
        let mut sound = s.clone();
        sound.labels.fill(0);
        assert!(matches!(fit(&net, &[sound]), Err(DepthError::NoDefects)));
        let mut bad = s;
        bad.depth_mm[1] = f32::NAN;
        assert!(matches!(
            fit(&net, &[bad]),
            Err(DepthError::BadDepth { index: 0, pixel: 1, .. })
        ));
    }
}
