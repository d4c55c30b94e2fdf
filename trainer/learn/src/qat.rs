//! Quantization-aware fine-tuning: the folded float network trained further while its
//! forward pass rounds the way the int8 engine will — weights per output channel onto
//! ±127 steps of `max|w| / 127`, every layer's output clipped to its calibrated range and
//! rounded onto its int8 grid — with straight-through gradients through the rounding
//! (fake quantization, as TensorFlow's QAT does). The network learns to keep its class
//! margins wider than the int8 steps, so the device's argmax agrees with the float one.
//!
//! The activation ranges are calibrated once on the training plates, exactly as
//! post-training quantization does, and kept: the exported blob uses the very ranges the
//! network was trained and validated with. Biases are not rounded (their int32 step is
//! about 1e-5 of a logit step). Batch norm must be folded first, which [`FloatNet`]
//! already is. When no epoch beats the post-training-quantized start on validation, the
//! start is kept.

use burn::module::{AutodiffModule, Module, Param};
use burn::nn::conv::Conv2d;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Tensor, TensorData, activation};
use tqc_shared::model::QuantParams;

use crate::cnn::{
    self, EpochReport, Sample, Segmenter, TrainConfig, TrainError, best_epoch, continue_training, strided_conv_same,
    upsample2,
};
use crate::export::fold::{FloatNet, FloatOp};
use crate::export::quantize::{QuantizeError, calibrate, tensor_quant};

/// A folded float network — a chain like ThermoNet or a graph like ThermoNet 2 — with
/// int8 rounding in its forward pass: every convolution's weights rounded per output
/// channel, every tensor with a grid of its own (convolutions, sums) clipped and rounded
/// onto it. Concatenations and upsamplings write on their inputs' grid, as in the engine,
/// so what they produce is already on it.
#[derive(Module, Debug)]
pub struct QatNet<B: Backend> {
    /// The graph's convolutions in layer order (trained).
    pub convs: Vec<Conv2d<B>>,
    /// The float graph this was built from: its ops, wiring and outputs (its weights are
    /// the start's; [`QatNet::float_net`] puts the trained ones in).
    #[module(skip)]
    graph: FloatNet,
    /// The quantization of every tensor (0 the input), shared grids resolved.
    #[module(skip)]
    tensors: Vec<QuantParams>,
    /// Dropout on the tensors the output convolutions read, in training.
    #[module(skip)]
    dropout: f64,
}

impl<B: Backend> QatNet<B> {
    /// `net` with its layers' outputs quantized over `ranges` (one per layer, as
    /// [`calibrate`] gives them) and features on the `input` grid.
    pub fn new(
        net: &FloatNet,
        ranges: &[(f32, f32)],
        input: QuantParams,
        dropout: f64,
        device: &B::Device,
    ) -> Result<Self, QatError> {
        if ranges.len() != net.layers.len() {
            return Err(QuantizeError::Ranges {
                layers: net.layers.len(),
                ranges: ranges.len(),
            }
            .into());
        }
        let convs = net
            .convs()
            .map(|c| {
                let dims = [c.out_channels, c.in_channels, c.kernel, c.kernel];
                let conv = burn::nn::conv::Conv2dConfig::new([c.in_channels, c.out_channels], [c.kernel, c.kernel])
                    .init::<B>(device);
                Conv2d {
                    weight: Param::from_tensor(Tensor::from_data(TensorData::new(c.weight.clone(), dims), device)),
                    bias: Some(Param::from_tensor(Tensor::from_data(
                        TensorData::new(c.bias.clone(), [c.out_channels]),
                        device,
                    ))),
                    ..conv
                }
            })
            .collect();
        Ok(QatNet {
            convs,
            graph: net.clone(),
            tensors: tensor_quant(net, ranges, input),
            dropout,
        })
    }

    /// The float network with the trained weights.
    pub fn float_net(&self) -> FloatNet {
        let mut net = self.graph.clone();
        let convs = net.layers.iter_mut().filter_map(|l| match &mut l.op {
            FloatOp::Conv(c) => Some(c),
            _ => None,
        });
        for (c, trained) in convs.zip(&self.convs) {
            c.weight = trained.weight.val().into_data().iter::<f32>().collect();
            if let Some(b) = &trained.bias {
                c.bias = b.val().into_data().iter::<f32>().collect();
            }
        }
        net
    }

    /// The logits and the depth (if the graph has one) of `x`, dropout drawn from `seed`.
    fn forward_seeded(&self, x: Tensor<B, 4>, seed: Option<u64>) -> (Tensor<B, 4>, Option<Tensor<B, 4>>) {
        let g = &self.graph;
        // Tensors read by a convolution that writes an output: dropout goes there (before
        // the heads, as in float training).
        let head_inputs: Vec<usize> = g
            .layers
            .iter()
            .enumerate()
            .filter(|(i, l)| matches!(l.op, FloatOp::Conv(_)) && g.outputs.contains(&(i + 1)))
            .flat_map(|(_, l)| l.inputs.clone())
            .collect();
        let mut tensors: Vec<Tensor<B, 4>> = Vec::with_capacity(g.layers.len() + 1);
        tensors.push(x.clone());
        let mut convs = self.convs.iter();
        for (i, l) in g.layers.iter().enumerate() {
            // A FloatNet's layers read earlier tensors; the features stand in otherwise.
            let read = |k: usize| l.inputs.get(k).and_then(|&t| tensors.get(t)).cloned();
            let a = read(0).unwrap_or_else(|| x.clone());
            let q = self.tensors.get(i + 1).copied();
            let on_grid = |y: Tensor<B, 4>| match q {
                Some(q) => fake_quant(y, q),
                None => y,
            };
            let y = match &l.op {
                FloatOp::Conv(c) => match convs.next() {
                    Some(conv) => {
                        let mut y = int8_weight_conv(conv, a, c.stride);
                        if c.relu {
                            y = activation::relu(y);
                        }
                        if let Some(top) = c.clip {
                            y = y.clamp_max(top);
                        }
                        on_grid(y)
                    }
                    None => a,
                },
                FloatOp::Add { relu } => {
                    let mut y = match read(1) {
                        Some(b) => a + b,
                        None => a,
                    };
                    if *relu {
                        y = activation::relu(y);
                    }
                    on_grid(y)
                }
                FloatOp::Concat => Tensor::cat(l.inputs.iter().filter_map(|&t| tensors.get(t).cloned()).collect(), 1),
                FloatOp::Upsample2 => upsample2(a),
            };
            let y = if head_inputs.contains(&(i + 1)) {
                cnn::drop_seeded(y, self.dropout, seed)
            } else {
                y
            };
            tensors.push(y);
        }
        let output = |k: usize| g.outputs.get(k).and_then(|&t| tensors.get(t)).cloned();
        (output(0).unwrap_or(x), output(1))
    }
}

impl<B: Backend> Segmenter<B> for QatNet<B> {
    fn segment(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        self.forward_seeded(x, None).0
    }

    fn segment_train(&self, x: Tensor<B, 4>, seed: u64) -> Tensor<B, 4> {
        self.forward_seeded(x, Some(seed)).0
    }

    fn segment_depth(&self, x: Tensor<B, 4>, seed: Option<u64>) -> (Tensor<B, 4>, Option<Tensor<B, 4>>) {
        self.forward_seeded(x, seed)
    }

    fn l1(&self) -> Option<Tensor<B, 1>> {
        self.convs
            .iter()
            .map(|c| c.weight.val().abs().sum())
            .reduce(|a, b| a + b)
    }
}

/// `x` clipped to the range of `q` and rounded onto its grid; the gradient passes the
/// rounding unchanged and stops where the clip bites.
fn fake_quant<B: Backend>(x: Tensor<B, 4>, q: QuantParams) -> Tensor<B, 4> {
    let zp = q.zero_point as f32;
    let x = x.clamp((-128.0 - zp) * q.scale, (127.0 - zp) * q.scale);
    let rounded = x.clone().div_scalar(q.scale).round().mul_scalar(q.scale);
    x.clone() + (rounded - x).detach()
}

/// A "same" convolution at `stride` with its weights rounded per output channel as the
/// exporter does (symmetric, ±127).
fn int8_weight_conv<B: Backend>(conv: &Conv2d<B>, x: Tensor<B, 4>, stride: usize) -> Tensor<B, 4> {
    let w = conv.weight.val();
    let [o, i, kh, kw] = w.dims();
    let scale = w
        .clone()
        .abs()
        .reshape([o, i * kh * kw])
        .max_dim(1)
        .reshape([o, 1, 1, 1])
        .clamp_min(1e-12)
        .div_scalar(127.0)
        .detach();
    let rounded = (w.clone() / scale.clone()).round().clamp(-127.0, 127.0) * scale;
    let w = w.clone() + (rounded - w).detach();
    strided_conv_same(x, w, conv.bias.as_ref().map(|b| b.val()), stride)
}

#[derive(Debug, thiserror::Error)]
pub enum QatError {
    #[error(transparent)]
    Quantize(#[from] QuantizeError),
    #[error(transparent)]
    Train(#[from] TrainError),
}

/// Validation score ([`cnn::score`]) of a model.
fn score<B: Backend, M: Segmenter<B>>(model: &M, validation: &[Sample], device: &B::Device) -> f64 {
    let maps: Vec<Vec<u8>> = validation.iter().map(|s| cnn::predict(model, &[s], device)).collect();
    cnn::validate(validation, &maps).score
}

/// What a quantization-aware fine-tuning leaves.
#[derive(Clone, Debug)]
pub struct QatOutcome {
    /// The float network to export (the fine-tuned one, or the start if it stayed best).
    pub net: FloatNet,
    /// Activation ranges to quantize it with (calibrated before the fine-tuning).
    pub ranges: Vec<(f32, f32)>,
    pub reports: Vec<EpochReport>,
    /// Validation score of the start, quantized after training (the baseline to beat).
    pub start_score: f64,
    /// Whether an epoch beat the start (otherwise `net` is the start).
    pub improved: bool,
}

/// Fine-tunes `net` with fake quantization on `train` for `cfg.epochs` (early stopping on
/// the int8-simulated validation score), the ranges calibrated on `train` first.
pub fn fine_tune<B: AutodiffBackend>(
    net: &FloatNet,
    train: &[Sample],
    validation: &[Sample],
    cfg: &TrainConfig,
    quant: QuantParams,
    device: &B::Device,
    on_epoch: impl FnMut(&EpochReport),
) -> Result<QatOutcome, QatError> {
    let ranges = calibrate(net, train, quant)?;
    // Its own seed, so the same start gives the same result whatever ran before.
    B::seed(device, cfg.seed ^ 0x7161_7400);
    let start = QatNet::<B>::new(net, &ranges, quant, cfg.dropout, device)?;
    let start_score = score(&start.valid(), validation, device);
    let (best, reports) = continue_training(start, train, validation, cfg, quant, device, on_epoch)?;
    let improved = best_epoch(&reports).is_some_and(|r| r.score > start_score);
    Ok(QatOutcome {
        net: if improved { best.float_net() } else { net.clone() },
        ranges,
        reports,
        start_score,
        improved,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;

    type B = NdArray<f32>;

    #[test]
    fn fake_quantization_lands_on_the_grid_and_clips_to_the_range() {
        let device = Default::default();
        let q = QuantParams {
            scale: 0.1,
            zero_point: -28,
        };
        // Range: (-128 + 28)·0.1 = -10 .. (127 + 28)·0.1 = 15.5.
        let x = Tensor::<B, 4>::from_data(
            TensorData::new(vec![-20.0f32, -0.04, 0.06, 3.12, 15.54, 99.0], [1, 1, 1, 6]),
            &device,
        );
        let y: Vec<f32> = fake_quant(x, q).into_data().iter::<f32>().collect();
        let expect = [-10.0f32, 0.0, 0.1, 3.1, 15.5, 15.5];
        for (a, b) in y.iter().zip(expect) {
            assert!((a - b).abs() < 1e-5, "{y:?} vs {expect:?}");
        }
    }

    #[test]
    fn weights_round_per_output_channel_like_the_exporter() {
        let device = Default::default();
        // Two output channels of two inputs: max |w| 1.0 (step 1/127) and 0.013.
        let conv = Conv2d {
            weight: Param::from_tensor(Tensor::from_data(
                TensorData::new(vec![1.0f32, 0.3, 0.013, -0.0061], [2, 2, 1, 1]),
                &device,
            )),
            bias: None,
            ..burn::nn::conv::Conv2dConfig::new([2, 2], [1, 1]).init::<B>(&device)
        };
        let y: Vec<f32> = int8_weight_conv(&conv, Tensor::ones([1, 2, 1, 1], &device), 1)
            .into_data()
            .iter::<f32>()
            .collect();
        // 0.3 → 38/127; −0.0061 → round(−59.6) = −60 steps of 0.013/127.
        let expect = [1.0 + 38.0 / 127.0, 0.013 * (1.0 - 60.0 / 127.0)];
        for (a, b) in y.iter().zip(expect) {
            assert!((a - b).abs() < 1e-6, "{y:?} vs {expect:?}");
        }
    }
}
