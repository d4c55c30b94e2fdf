//! Post-training int8 quantization of the folded network, by the TFLite rules the engine
//! runs:
//! - weights: per output channel, symmetric, `s_w = max|w| / 127`, values in ±127;
//! - biases: int32 at `s_in · s_w[c]`;
//! - activations: per tensor, asymmetric, calibrated on training plates. Hidden layers
//!   (after ReLU) take `[0, p]` with `p` the 99.99th percentile of the float activations
//!   (clipping the rare outliers buys resolution for the rest). The logits only feed an
//!   argmax, so their range is chosen for the decision: it keeps the largest logit (a
//!   clipped top would tie two confident classes) and clips the bottom at the percentile
//!   of [`LOGIT_PERCENTILES`] whose engine class map differs from the float argmax on the
//!   fewest calibration pixels. A losing score of −250 decides nothing that −45 does not,
//!   but a full-range grid steps 1.2 logits, about the margin of a faint defect. Zero is
//!   always exactly representable.
//! - the input keeps the feature extractor's quantization;
//! - requantization multipliers come from the engine's own `quantize_multiplier` when
//!   the blob is validated, so nothing here re-implements the device arithmetic.

use tqc_shared::features::FeatureSpec;
use tqc_shared::model::{InputSpec, Op, QuantParams};
use tqc_shared::owned::{OwnedLayer, OwnedModel};
use tqc_shared::quant::Activation;
use tqc_shared::tensor::{Padding, Shape};

use super::fold::{FloatConv, FloatNet, FloatOp};
use crate::cnn::Sample;

/// Class names stored in the blob, in class order.
pub const CLASS_NAMES: [&str; 3] = tqc_data::Class::NAMES;
/// Percentile of hidden activations taken as the top of their range.
pub const PERCENTILE: f64 = 99.99;
/// Candidate bottoms of the logit range, as percentiles of all the logits of the
/// calibration plates (the top is their maximum); the full range first, kept on a tie.
pub const LOGIT_PERCENTILES: [f64; 6] = [0.0, 0.01, 0.1, 0.5, 1.0, 5.0];

/// One quantized convolution.
#[derive(Clone, Debug, PartialEq)]
pub struct QuantConv {
    pub in_channels: usize,
    pub out_channels: usize,
    pub kernel: usize,
    pub stride: usize,
    /// OIHW, symmetric.
    pub weight: Vec<i8>,
    pub weight_scales: Vec<f32>,
    /// At `input.scale · weight_scales[c]`.
    pub bias: Vec<i32>,
    pub input: QuantParams,
    pub output: QuantParams,
    pub relu: bool,
}

/// What a quantized layer computes (the float graph's ops).
#[derive(Clone, Debug, PartialEq)]
pub enum QuantOp {
    Conv(QuantConv),
    Add { relu: bool },
    Concat,
    Upsample2,
}

/// A quantized layer: its op, the tensors it reads, its output's quantization.
#[derive(Clone, Debug, PartialEq)]
pub struct QuantLayer {
    pub op: QuantOp,
    pub inputs: Vec<usize>,
    pub output: QuantParams,
}

/// The quantized network and what it was calibrated on.
#[derive(Clone, Debug, PartialEq)]
pub struct QuantNet {
    pub input: QuantParams,
    pub in_channels: usize,
    pub layers: Vec<QuantLayer>,
    /// Output tensors: the class logits, then the depth if any.
    pub outputs: Vec<usize>,
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
    #[error("calibration plate {index}: the engine failed")]
    Engine {
        index: usize,
        source: tqc_eval::infer::InferError,
    },
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
    let ranges = calibrate(net, samples, input)?;
    quantize_with(net, ranges, input)
}

/// The float output range of every layer on `samples` (features quantized as `input`):
/// `[0, p]` with `p` the [`PERCENTILE`] after a ReLU (at most its clip); the
/// [`PERCENTILE`]s at both ends for a linear hidden layer; the extremes for the depth
/// output; for the logits, up to their maximum from the bottom of [`LOGIT_PERCENTILES`]
/// whose int8 class map (run by the shared engine) agrees best with the float argmax.
/// Tensors that must share one quantization (a concatenation's inputs and output, an
/// upsampling's input and output) get the union of their ranges — the input features'
/// own range when the input is one of them.
pub fn calibrate(net: &FloatNet, samples: &[Sample], input: QuantParams) -> Result<Vec<(f32, f32)>, QuantizeError> {
    if samples.is_empty() {
        return Err(QuantizeError::NoCalibration);
    }
    let n = net.layers.len();
    let logits = net.outputs.first().copied().unwrap_or(n);
    // Shared-quantization layers take their group's range: nothing to collect.
    let own_range = |layer: usize| net.layers[layer].op.own_grid();
    let mut collected: Vec<Vec<f32>> = vec![Vec::new(); n];
    // Float class of every pixel of every plate, HW order.
    let mut float_classes: Vec<Vec<u8>> = Vec::with_capacity(samples.len());
    for (index, s) in samples.iter().enumerate() {
        if s.channels != net.in_channels() {
            return Err(QuantizeError::Channels {
                index,
                expected: net.in_channels(),
                found: s.channels,
            });
        }
        let acts = net.activations(&s.features, s.height, s.width);
        if let Some(l) = acts.get(logits) {
            float_classes.push(argmax_chw(l, s.height * s.width));
        }
        for (layer, a) in acts.into_iter().skip(1).enumerate() {
            if a.iter().any(|v| !v.is_finite()) {
                return Err(QuantizeError::NotFinite { layer, index });
            }
            if own_range(layer) {
                // Every 3rd value: the percentile needs a sample, not every pixel.
                collected[layer].extend(a.iter().step_by(3));
            }
        }
    }
    let mut ranges = Vec::with_capacity(n);
    for (layer, values) in collected.iter_mut().enumerate() {
        let relu = match &net.layers[layer].op {
            FloatOp::Conv(c) => c.relu,
            FloatOp::Add { relu } => *relu,
            _ => false,
        };
        let clip = match &net.layers[layer].op {
            FloatOp::Conv(c) => c.clip,
            _ => None,
        };
        let range = if values.is_empty() {
            (0.0, 0.0)
        } else if relu {
            let top = percentile(values, PERCENTILE);
            (0.0, clip.map_or(top, |c| top.min(c)))
        } else if net.outputs.contains(&(layer + 1)) {
            let lo = values.iter().copied().fold(f32::INFINITY, f32::min);
            let hi = values.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            (lo, hi)
        } else {
            (percentile(values, 100.0 - PERCENTILE), percentile(values, PERCENTILE))
        };
        ranges.push(range);
    }
    let ranges = shared_ranges(net, ranges, input);
    let Some(last) = logits.checked_sub(1).and_then(|l| collected.get_mut(l)) else {
        return Ok(ranges);
    };
    // The logits' range, chosen by the class decisions it gives on the engine.
    let top = percentile(last, 100.0);
    let candidates: Vec<(f32, f32)> = LOGIT_PERCENTILES
        .iter()
        .map(|&lo| (percentile(last, lo), top))
        .collect();
    let mut ranges = ranges;
    let mut best: Option<((f32, f32), usize)> = None;
    for candidate in candidates {
        ranges[logits - 1] = candidate;
        let differ = disagreement(net, &ranges, input, samples, &float_classes)?;
        if best.is_none_or(|(_, d)| differ < d) {
            best = Some((candidate, differ));
        }
    }
    if let Some((range, _)) = best {
        ranges[logits - 1] = range;
    }
    Ok(ranges)
}

/// The group of every tensor that must share one quantization: a concatenation's inputs
/// and output (TFLite `CONCATENATION` rescales nothing) and an upsampling's input and
/// output. Tensors of one group have one root.
pub fn shared_groups(net: &FloatNet) -> Vec<usize> {
    let mut group: Vec<usize> = (0..=net.layers.len()).collect();
    fn root(g: &mut [usize], mut t: usize) -> usize {
        while g[t] != t {
            g[t] = g[g[t]];
            t = g[t];
        }
        t
    }
    for (i, l) in net.layers.iter().enumerate() {
        if matches!(l.op, FloatOp::Concat | FloatOp::Upsample2) {
            for &t in &l.inputs {
                let (a, b) = (root(&mut group, t), root(&mut group, i + 1));
                // The smaller tensor is the root, so the input's group has root 0.
                let (lo, hi) = (a.min(b), a.max(b));
                group[hi] = lo;
            }
        }
    }
    (0..group.len()).map(|t| root(&mut group, t)).collect()
}

/// `ranges` (one per layer) with every shared group widened to the union of its members,
/// or set to the input's range when the input belongs to it.
fn shared_ranges(net: &FloatNet, mut ranges: Vec<(f32, f32)>, input: QuantParams) -> Vec<(f32, f32)> {
    let groups = shared_groups(net);
    let input_range = (
        input.scale * (-128 - input.zero_point as i32) as f32,
        input.scale * (127 - input.zero_point as i32) as f32,
    );
    let mut union: Vec<Option<(f32, f32)>> = vec![None; groups.len()];
    union[0] = Some(input_range);
    for (layer, &(lo, hi)) in ranges.iter().enumerate() {
        let own = net.layers[layer].op.own_grid();
        let g = groups[layer + 1];
        if own && g != 0 {
            let u = union[g].get_or_insert((lo, hi));
            *u = (u.0.min(lo), u.1.max(hi));
        }
    }
    for (layer, r) in ranges.iter_mut().enumerate() {
        if let Some(u) = union[groups[layer + 1]] {
            *r = u;
        }
    }
    ranges
}

/// The quantization of every tensor of `net` (0 the input) for per-layer `ranges`.
pub(crate) fn tensor_quant(net: &FloatNet, ranges: &[(f32, f32)], input: QuantParams) -> Vec<QuantParams> {
    let groups = shared_groups(net);
    let ranges = shared_ranges(net, ranges.to_vec(), input);
    (0..groups.len())
        .map(|t| {
            if groups[t] == 0 {
                input
            } else {
                let (lo, hi) = ranges[t - 1];
                range_quant(lo, hi)
            }
        })
        .collect()
}

/// Index of the largest of `classes = len / px` planes at each pixel (first on ties, as
/// the engine's argmax).
fn argmax_chw(logits: &[f32], px: usize) -> Vec<u8> {
    let classes = logits.len() / px.max(1);
    (0..px)
        .map(|p| {
            let mut best = 0;
            for k in 1..classes {
                if logits[k * px + p] > logits[best * px + p] {
                    best = k;
                }
            }
            best as u8
        })
        .collect()
}

/// Pixels of `samples` where the engine, running `net` quantized over `ranges`, decides
/// another class than the float network did.
fn disagreement(
    net: &FloatNet,
    ranges: &[(f32, f32)],
    input: QuantParams,
    samples: &[Sample],
    float_classes: &[Vec<u8>],
) -> Result<usize, QuantizeError> {
    let Some(first) = samples.first() else {
        return Ok(0);
    };
    let model = quantize_with(net, ranges.to_vec(), input)?.owned_model("calibration", first.height, first.width, None);
    let blob = model.to_blob()?;
    use rayon::prelude::*;
    samples
        .par_iter()
        .zip(float_classes)
        .enumerate()
        .map(|(index, (s, float))| {
            let image = if s.image.is_empty() {
                quantize_chw(&s.features, s.channels, input)
            } else {
                s.image.clone()
            };
            let (_, classes) = tqc_eval::infer::run_features(&blob, &image)
                .map_err(|source| QuantizeError::Engine { index, source })?;
            Ok(classes.iter().zip(float).filter(|(a, b)| a != b).count())
        })
        .sum()
}

/// Float CHW features back onto the int8 HWC grid of `q` (exact for features that came
/// from it).
fn quantize_chw(features: &[f32], channels: usize, q: QuantParams) -> Vec<i8> {
    let px = features.len() / channels.max(1);
    let mut out = Vec::with_capacity(features.len());
    for p in 0..px {
        for c in 0..channels {
            let v = (features[c * px + p] / q.scale).round() + f32::from(q.zero_point);
            out.push(v.clamp(-128.0, 127.0) as i8);
        }
    }
    out
}

/// Quantizes `net` with given activation ranges (one per layer, from [`calibrate`]; a
/// quantization-aware fine-tuning keeps the ranges it trained with). Shared groups are
/// widened as [`calibrate`] does, so any ranges give a model the engine accepts.
pub fn quantize_with(net: &FloatNet, ranges: Vec<(f32, f32)>, input: QuantParams) -> Result<QuantNet, QuantizeError> {
    let n = net.layers.len();
    if ranges.len() != n {
        return Err(QuantizeError::Ranges {
            layers: n,
            ranges: ranges.len(),
        });
    }
    let quant = tensor_quant(net, &ranges, input);
    let mut layers = Vec::with_capacity(n);
    for (i, l) in net.layers.iter().enumerate() {
        let output = quant[i + 1];
        let op = match &l.op {
            FloatOp::Conv(c) => {
                let s_in = l.inputs.first().map_or(input, |&t| quant[t]);
                QuantOp::Conv(quantize_conv(c, s_in, output))
            }
            FloatOp::Add { relu } => QuantOp::Add { relu: *relu },
            FloatOp::Concat => QuantOp::Concat,
            FloatOp::Upsample2 => QuantOp::Upsample2,
        };
        layers.push(QuantLayer {
            op,
            inputs: l.inputs.clone(),
            output,
        });
    }
    Ok(QuantNet {
        input,
        in_channels: net.in_channels(),
        layers,
        outputs: net.outputs.clone(),
        ranges,
    })
}

/// Per-output-channel symmetric weights, int32 biases at `s_in · s_w`.
fn quantize_conv(l: &FloatConv, s_in: QuantParams, output: QuantParams) -> QuantConv {
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
    QuantConv {
        in_channels: l.in_channels,
        out_channels: l.out_channels,
        kernel: l.kernel,
        stride: l.stride,
        weight,
        weight_scales,
        bias,
        input: s_in,
        output,
        relu: l.relu,
    }
}

impl QuantNet {
    /// The engine model: OHWI filters, per-channel scales, biases, fused ReLU.
    pub fn to_owned_model(&self, name: &str, height: usize, width: usize, features: FeatureSpec) -> OwnedModel {
        self.owned_model(name, height, width, Some(features))
    }

    fn owned_model(&self, name: &str, height: usize, width: usize, features: Option<FeatureSpec>) -> OwnedModel {
        let act = |relu: bool| if relu { Activation::Relu } else { Activation::None };
        let layers: Vec<OwnedLayer> = self
            .layers
            .iter()
            .map(|layer| {
                let inputs = layer.inputs.iter().map(|&t| t as u8).collect();
                let plain = |op: Op, activation: Activation| OwnedLayer {
                    op,
                    inputs: layer.inputs.iter().map(|&t| t as u8).collect(),
                    activation,
                    output: layer.output,
                    weights: Vec::new(),
                    weight_scales: Vec::new(),
                    bias: Vec::new(),
                };
                match &layer.op {
                    QuantOp::Conv(l) => {
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
                            inputs,
                            op: Op::Conv2d {
                                kernel_h: k as u8,
                                kernel_w: k as u8,
                                stride: l.stride as u8,
                                padding: Padding::Same,
                                out_channels: l.out_channels as u16,
                            },
                            activation: act(l.relu),
                            output: l.output,
                            weights: ohwi,
                            weight_scales: l.weight_scales.iter().flat_map(|s| s.to_le_bytes()).collect(),
                            bias: l.bias.iter().flat_map(|b| b.to_le_bytes()).collect(),
                        }
                    }
                    QuantOp::Add { relu } => plain(Op::Add, act(*relu)),
                    QuantOp::Concat => plain(Op::Concat, Activation::None),
                    QuantOp::Upsample2 => plain(Op::Upsample2, Activation::None),
                }
            })
            .collect();
        OwnedModel {
            name: name.to_string(),
            input: InputSpec {
                shape: Shape {
                    height: height as u16,
                    width: width as u16,
                    channels: self.in_channels as u16,
                },
                quant: self.input,
                features,
            },
            classes: CLASS_NAMES.iter().map(|s| s.to_string()).collect(),
            outputs: self.outputs.iter().map(|&t| t as u8).collect(),
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

    /// Quantization of tensor `t` (0 the input).
    pub fn tensor(&self, t: usize) -> QuantParams {
        t.checked_sub(1)
            .and_then(|l| self.layers.get(l))
            .map_or(self.input, |l| l.output)
    }

    /// Quantization of the logits.
    pub fn output(&self) -> QuantParams {
        self.tensor(self.outputs.first().copied().unwrap_or(0))
    }

    /// The convolutions in layer order.
    pub fn convs(&self) -> impl Iterator<Item = &QuantConv> {
        self.layers.iter().filter_map(|l| match &l.op {
            QuantOp::Conv(c) => Some(c),
            _ => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INPUT: QuantParams = QuantParams {
        scale: 1.0 / 64.0,
        zero_point: 0,
    };

    /// One 1×1 layer over two channels (a, b): class 0 scores 0, class 1 `100·a + 0.3 −
    /// 100·b`, class 2 `−100·a − 1 − 100·b`. Most pixels sit near the boundaries (a = 0 or
    /// ±1/64, b = 0); one in 125 has b ≈ 2, where class 0 wins by 200 and the losers
    /// stretch the logits down to −200: a full-range grid steps 0.8 and rounds class 1's
    /// 0.3 at a = 0 onto class 0's code.
    fn steep_boundary() -> (FloatNet, Vec<Sample>) {
        let net = FloatNet::chain(vec![FloatConv::new(
            2,
            3,
            1,
            vec![0.0, 0.0, 100.0, -100.0, -100.0, -100.0],
            vec![0.0, 0.3, -1.0],
            false,
        )]);
        let (h, w) = (40, 40);
        let pixels: Vec<[i8; 2]> = (0..h * w)
            .map(|p| match p % 250 {
                0 | 125 => [0, 127],
                k => [[0, 1, -1][k % 3], 0],
            })
            .collect();
        let features = (0..2)
            .flat_map(|c| pixels.iter().map(move |px| f32::from(px[c]) * INPUT.scale))
            .collect();
        let sample = Sample {
            channels: 2,
            height: h,
            width: w,
            features,
            labels: vec![0; h * w],
            image: pixels.concat(),
            depth_mm: Vec::new(),
            grid: None,
        };
        (net, vec![sample])
    }

    #[test]
    fn logits_are_calibrated_for_the_decision_not_the_extremes() {
        let (net, samples) = steep_boundary();
        let float = vec![argmax_chw(&net.forward(&samples[0].features, 40, 40), 1600)];
        assert!((0..3).all(|c| float[0].contains(&c)));
        let full = {
            let mut all = net.activations(&samples[0].features, 40, 40).pop().unwrap();
            (percentile(&mut all, 0.0), percentile(&mut all, 100.0))
        };
        assert!(full.0 < -190.0 && full.1 < 2.0, "{full:?}");
        let full_differ = disagreement(&net, &[full], INPUT, &samples, &float).unwrap();
        assert!(full_differ > 0, "the full range must lose the 0.3 margins");

        let ranges = calibrate(&net, &samples, INPUT).unwrap();
        let (lo, hi) = ranges[0];
        assert!(lo > full.0, "{ranges:?} is not narrower than {full:?}");
        assert_eq!(hi, full.1, "the top is never clipped");
        assert_eq!(disagreement(&net, &ranges, INPUT, &samples, &float).unwrap(), 0);
    }

    #[test]
    fn features_go_back_onto_their_grid_in_hwc_order() {
        let (_, samples) = steep_boundary();
        let s = &samples[0];
        assert_eq!(quantize_chw(&s.features, 2, INPUT), s.image);
        // Two channels, two pixels: CHW [a0 a1 b0 b1] → HWC [a0 b0 a1 b1].
        let chw = [1.0, 2.0, -1.0, 0.0].map(|v| v * INPUT.scale);
        assert_eq!(quantize_chw(&chw, 2, INPUT), vec![1, -1, 2, 0]);
    }

    /// A small encoder–decoder graph: a stride-2 convolution, upsampled and concatenated
    /// with a full-resolution convolution, that concatenated with the input, two heads.
    fn skip_graph() -> FloatNet {
        use crate::export::fold::FloatLayer;
        let conv = |i: usize, o: usize, k: usize, stride: usize, relu: bool, scale: f32| FloatConv {
            stride,
            ..FloatConv::new(
                i,
                o,
                k,
                (0..i * o * k * k)
                    .map(|j| scale * (((j * 7) % 11) as f32 - 5.0) / 5.0)
                    .collect(),
                vec![0.1; o],
                relu,
            )
        };
        let layer = |op: FloatOp, inputs: &[usize]| FloatLayer {
            op,
            inputs: inputs.to_vec(),
        };
        FloatNet {
            in_channels: 2,
            layers: vec![
                // 1: wide (×20), 2: narrow, at full resolution.
                layer(FloatOp::Conv(conv(2, 3, 3, 2, true, 20.0)), &[0]),
                layer(FloatOp::Conv(conv(2, 2, 1, 1, true, 0.5)), &[0]),
                layer(FloatOp::Upsample2, &[1]),
                layer(FloatOp::Concat, &[3, 2]),
                layer(FloatOp::Conv(conv(5, 2, 1, 1, true, 0.1)), &[4]),
                layer(FloatOp::Concat, &[5, 0]),
                layer(FloatOp::Conv(conv(4, 3, 1, 1, false, 1.0)), &[6]),
                layer(FloatOp::Conv(conv(4, 1, 1, 1, false, 1.0)), &[6]),
            ],
            outputs: vec![7, 8],
        }
    }

    /// Tensors a Concat or an Upsample joins get one quantization — the union of their
    /// ranges, or exactly the input's when the input is among them — and the blob the
    /// engine validates; the other tensors keep their own.
    #[test]
    fn joined_tensors_share_one_grid_and_the_inputs_group_keeps_the_input_grid() {
        let net = skip_graph();
        assert_eq!(shared_groups(&net), vec![0, 1, 1, 1, 1, 0, 0, 7, 8]);
        let (h, w) = (8, 6);
        let features: Vec<f32> = (0..2 * h * w)
            .map(|j| INPUT.scale * ((j * 13) % 120) as f32 - 0.9)
            .collect();
        let sample = Sample {
            channels: 2,
            height: h,
            width: w,
            features: features.clone(),
            labels: vec![0; h * w],
            image: quantize_chw(&features, 2, INPUT),
            depth_mm: Vec::new(),
            grid: None,
        };
        let ranges = calibrate(&net, &[sample], INPUT).unwrap();
        let q = quantize_with(&net, ranges.clone(), INPUT).unwrap();
        // The wide stride-2 map and the narrow one it is joined with: one grid, spanning
        // the wide one's range.
        let wide = ranges[0];
        for t in [1, 2, 3, 4] {
            assert_eq!(q.tensor(t), q.tensor(1), "tensor {t}");
            assert_eq!(ranges[t - 1], wide, "tensor {t}");
        }
        assert!(wide.1 > 5.0, "{wide:?}: the wide map is wide");
        // The map joined with the input takes the input's quantization exactly.
        for t in [5, 6] {
            assert_eq!(q.tensor(t), INPUT, "tensor {t}");
        }
        // The heads keep their own.
        assert_ne!(q.tensor(7), q.tensor(8));
        let blob = q
            .to_blob("skips", h, w, FeatureSpec::log_spaced(6_000, 34_000, 2, 100).unwrap())
            .unwrap();
        let model = tqc_shared::blob::decode(&blob).unwrap();
        assert_eq!(model.outputs(), &[7, 8]);
        // Arbitrary ranges are widened the same way: the engine accepts any.
        let rough: Vec<(f32, f32)> = (0..net.layers.len()).map(|i| (0.0, 1.0 + i as f32)).collect();
        let q = quantize_with(&net, rough, INPUT).unwrap();
        assert_eq!(q.tensor(2), q.tensor(4));
        assert!(
            q.to_blob("rough", h, w, FeatureSpec::log_spaced(6_000, 34_000, 2, 100).unwrap())
                .is_ok()
        );
    }
}
