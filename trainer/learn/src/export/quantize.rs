//! Post-training int8 quantization of the folded network, by the TFLite rules the engine
//! runs:
//! - weights: per output channel, symmetric, `s_w = max|w| / 127`, values in ±127;
//! - biases: int32 at `s_in · s_w[c]`;
//! - activations: per tensor, asymmetric, calibrated on training plates. Hidden layers
//!   (after ReLU) take `[0, p]` with `p` the 99.99th percentile of the float activations
//!   (clipping the rare outliers buys resolution for the rest); the logits take their
//!   full `[min, max]` so no class score is clipped. Zero is always exactly representable.
//! - the input keeps the feature extractor's quantization;
//! - requantization multipliers come from the engine's own `quantize_multiplier` when
//!   the blob is validated, so nothing here re-implements the device arithmetic.

use tqc_shared::features::FeatureSpec;
use tqc_shared::model::{InputSpec, Op, QuantParams};
use tqc_shared::owned::{OwnedLayer, OwnedModel};
use tqc_shared::quant::Activation;
use tqc_shared::tensor::{Padding, Shape};

use super::fold::FloatNet;
use crate::cnn::Sample;

/// Class names stored in the blob, in class order.
pub const CLASS_NAMES: [&str; 3] = tqc_data::Class::NAMES;
/// Percentile of hidden activations taken as the top of their range.
pub const PERCENTILE: f64 = 99.99;

/// One quantized convolution.
#[derive(Clone, Debug, PartialEq)]
pub struct QuantConv {
    pub in_channels: usize,
    pub out_channels: usize,
    pub kernel: usize,
    /// OIHW, symmetric.
    pub weight: Vec<i8>,
    pub weight_scales: Vec<f32>,
    /// At `input.scale · weight_scales[c]`.
    pub bias: Vec<i32>,
    pub input: QuantParams,
    pub output: QuantParams,
    pub relu: bool,
}

/// The quantized network and what it was calibrated on.
#[derive(Clone, Debug, PartialEq)]
pub struct QuantNet {
    pub input: QuantParams,
    pub layers: Vec<QuantConv>,
    /// Calibrated float range of each layer's output.
    pub ranges: Vec<(f32, f32)>,
}

#[derive(Debug, thiserror::Error)]
pub enum QuantizeError {
    #[error("no calibration plates")]
    NoCalibration,
    #[error("calibration plate {index} has {found} channels, the network takes {expected}")]
    Channels {
        index: usize,
        expected: usize,
        found: usize,
    },
    #[error("layer {layer}: activations are not finite (NaN or inf) on calibration plate {index}")]
    NotFinite { layer: usize, index: usize },
    #[error("{ranges} activation ranges for a network of {layers} layers")]
    Ranges { layers: usize, ranges: usize },
    #[error("the blob is invalid")]
    Blob(#[from] tqc_shared::blob::BlobError),
}

/// Quantization parameters covering `[lo, hi]` (widened to contain 0).
pub fn range_quant(lo: f32, hi: f32) -> QuantParams {
    let (lo, hi) = (lo.min(0.0), hi.max(0.0));
    let span = (hi - lo).max(1e-6);
    let scale = span / 255.0;
    let zero_point = (-128.0 - lo / scale).round().clamp(-128.0, 127.0) as i8;
    QuantParams { scale, zero_point }
}

fn percentile(values: &mut [f32], p: f64) -> f32 {
    if values.is_empty() {
        return 0.0;
    }
    let k = ((p / 100.0) * (values.len() - 1) as f64).round() as usize;
    let (_, v, _) = values.select_nth_unstable_by(k, f32::total_cmp);
    *v
}

/// Calibrates activation ranges on `samples` and quantizes `net`.
pub fn quantize(net: &FloatNet, samples: &[Sample], input: QuantParams) -> Result<QuantNet, QuantizeError> {
    let ranges = calibrate(net, samples)?;
    quantize_with(net, ranges, input)
}

/// The float output range of every layer on `samples`: `[0, p]` with `p` the
/// [`PERCENTILE`] after a ReLU, the full `[min, max]` otherwise.
pub fn calibrate(net: &FloatNet, samples: &[Sample]) -> Result<Vec<(f32, f32)>, QuantizeError> {
    if samples.is_empty() {
        return Err(QuantizeError::NoCalibration);
    }
    let n = net.layers.len();
    let mut collected: Vec<Vec<f32>> = vec![Vec::new(); n];
    for (index, s) in samples.iter().enumerate() {
        if s.channels != net.in_channels() {
            return Err(QuantizeError::Channels {
                index,
                expected: net.in_channels(),
                found: s.channels,
            });
        }
        let acts = net.activations(&s.features, s.height, s.width);
        for (layer, a) in acts.into_iter().skip(1).enumerate() {
            if a.iter().any(|v| !v.is_finite()) {
                return Err(QuantizeError::NotFinite { layer, index });
            }
            // Keep every 3rd value: the percentile needs a sample, not every pixel.
            collected[layer].extend(a.iter().step_by(3));
        }
    }
    let mut ranges = Vec::with_capacity(n);
    for (layer, values) in collected.iter_mut().enumerate() {
        let l = &net.layers[layer];
        let range = if l.relu {
            (0.0, percentile(values, PERCENTILE))
        } else {
            let lo = values.iter().copied().fold(f32::INFINITY, f32::min);
            let hi = values.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            (lo, hi)
        };
        ranges.push(range);
    }
    Ok(ranges)
}

/// Quantizes `net` with given activation ranges (one per layer, from [`calibrate`]; a
/// quantization-aware fine-tuning keeps the ranges it trained with).
pub fn quantize_with(net: &FloatNet, ranges: Vec<(f32, f32)>, input: QuantParams) -> Result<QuantNet, QuantizeError> {
    let n = net.layers.len();
    if ranges.len() != n {
        return Err(QuantizeError::Ranges {
            layers: n,
            ranges: ranges.len(),
        });
    }
    let mut layers = Vec::with_capacity(n);
    let mut s_in = input;
    for (l, &(lo, hi)) in net.layers.iter().zip(&ranges) {
        let output = range_quant(lo, hi);
        let per = l.in_channels * l.kernel * l.kernel;
        let mut weight = vec![0i8; l.weight.len()];
        let mut weight_scales = vec![0f32; l.out_channels];
        let mut bias = vec![0i32; l.out_channels];
        for c in 0..l.out_channels {
            let w = &l.weight[c * per..(c + 1) * per];
            let max = w.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            // An all-zero channel still needs a valid scale; its weights stay 0.
            let sw = if max > 0.0 { max / 127.0 } else { 1.0 / 127.0 };
            weight_scales[c] = sw;
            for (q, &v) in weight[c * per..(c + 1) * per].iter_mut().zip(w) {
                *q = (v / sw).round().clamp(-127.0, 127.0) as i8;
            }
            let b = l.bias[c] as f64 / (s_in.scale as f64 * sw as f64);
            bias[c] = b.round().clamp(i32::MIN as f64, i32::MAX as f64) as i32;
        }
        layers.push(QuantConv {
            in_channels: l.in_channels,
            out_channels: l.out_channels,
            kernel: l.kernel,
            weight,
            weight_scales,
            bias,
            input: s_in,
            output,
            relu: l.relu,
        });
        s_in = output;
    }
    Ok(QuantNet { input, layers, ranges })
}

impl QuantNet {
    /// The engine model: OHWI filters, per-channel scales, biases, fused ReLU.
    pub fn to_owned_model(&self, name: &str, height: usize, width: usize, features: FeatureSpec) -> OwnedModel {
        let layers = self
            .layers
            .iter()
            .map(|l| {
                let (k, i) = (l.kernel, l.in_channels);
                let mut ohwi = Vec::with_capacity(l.weight.len());
                for o in 0..l.out_channels {
                    for ky in 0..k {
                        for kx in 0..k {
                            for c in 0..i {
                                ohwi.push(l.weight[((o * i + c) * k + ky) * k + kx] as u8);
                            }
                        }
                    }
                }
                OwnedLayer {
                    op: Op::Conv2d {
                        kernel_h: k as u8,
                        kernel_w: k as u8,
                        stride: 1,
                        padding: Padding::Same,
                        out_channels: l.out_channels as u16,
                    },
                    activation: if l.relu { Activation::Relu } else { Activation::None },
                    output: l.output,
                    weights: ohwi,
                    weight_scales: l.weight_scales.iter().flat_map(|s| s.to_le_bytes()).collect(),
                    bias: l.bias.iter().flat_map(|b| b.to_le_bytes()).collect(),
                }
            })
            .collect();
        OwnedModel {
            name: name.to_string(),
            input: InputSpec {
                shape: Shape {
                    height: height as u16,
                    width: width as u16,
                    channels: self.layers.first().map_or(0, |l| l.in_channels) as u16,
                },
                quant: self.input,
                features: Some(features),
            },
            classes: CLASS_NAMES.iter().map(|s| s.to_string()).collect(),
            layers,
        }
    }

    /// The sealed blob (`.tqm`), validated by decoding it as the device will.
    pub fn to_blob(
        &self,
        name: &str,
        height: usize,
        width: usize,
        features: FeatureSpec,
    ) -> Result<Vec<u8>, QuantizeError> {
        let blob = self.to_owned_model(name, height, width, features).to_blob()?;
        tqc_shared::blob::decode(&blob)?;
        Ok(blob)
    }

    pub fn output(&self) -> QuantParams {
        self.layers.last().map_or(self.input, |l| l.output)
    }
}
