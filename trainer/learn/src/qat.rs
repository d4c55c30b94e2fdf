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
    self, EpochReport, Sample, Segmenter, ThermoNet, TrainConfig, TrainError, best_epoch, continue_training,
};
use crate::export::fold::FloatNet;
use crate::export::quantize::{QuantizeError, calibrate, range_quant};

/// The ThermoNet with int8 rounding in its forward pass.
#[derive(Module, Debug)]
pub struct QatNet<B: Backend> {
    pub net: ThermoNet<B>,
    /// Output quantization of each layer (three hidden, then the logits).
    #[module(skip)]
    outputs: Vec<QuantParams>,
}

impl<B: Backend> QatNet<B> {
    /// `net` with its layers' outputs quantized over `ranges` (one per layer).
    pub fn new(net: &FloatNet, ranges: &[(f32, f32)], dropout: f64, device: &B::Device) -> Result<Self, QatError> {
        if ranges.len() != net.layers.len() {
            return Err(QuantizeError::Ranges {
                layers: net.layers.len(),
                ranges: ranges.len(),
            }
            .into());
        }
        Ok(QatNet {
            net: network(net, dropout, device)?,
            outputs: ranges.iter().map(|&(lo, hi)| range_quant(lo, hi)).collect(),
        })
    }
}

impl<B: Backend> QatNet<B> {
    fn forward_seeded(&self, x: Tensor<B, 4>, seed: Option<u64>) -> Tensor<B, 4> {
        let n = &self.net;
        let mut x = x;
        for (conv, &q) in [&n.conv1, &n.conv2, &n.conv3].into_iter().zip(&self.outputs) {
            x = fake_quant(activation::relu(int8_weight_conv(conv, x)), q);
        }
        let logits = int8_weight_conv(&n.head, n.drop(x, seed));
        // `new` holds one range per layer: the fourth is the logits'.
        match self.outputs.get(3) {
            Some(&q) => fake_quant(logits, q),
            None => logits,
        }
    }
}

impl<B: Backend> Segmenter<B> for QatNet<B> {
    fn segment(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        self.forward_seeded(x, None)
    }

    fn segment_train(&self, x: Tensor<B, 4>, seed: u64) -> Tensor<B, 4> {
        self.forward_seeded(x, Some(seed))
    }

    fn l1(&self) -> Option<Tensor<B, 1>> {
        self.net.l1()
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

/// A same-padded stride-1 convolution with its weights rounded per output channel as
/// the exporter does (symmetric, ±127).
fn int8_weight_conv<B: Backend>(conv: &Conv2d<B>, x: Tensor<B, 4>) -> Tensor<B, 4> {
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
    cnn::conv_same(x, w, conv.bias.as_ref().map(|b| b.val()))
}

#[derive(Debug, thiserror::Error)]
pub enum QatError {
    #[error("quantization-aware fine-tuning takes the ThermoNet shape (3×3 ReLU ×3, 1×1 head): {0}")]
    Shape(String),
    #[error(transparent)]
    Quantize(#[from] QuantizeError),
    #[error(transparent)]
    Train(#[from] TrainError),
}

/// A ThermoNet (no batch norm) holding the weights of a folded float network.
pub fn network<B: Backend>(net: &FloatNet, dropout: f64, device: &B::Device) -> Result<ThermoNet<B>, QatError> {
    let layers = net
        .as_chain()
        .ok_or_else(|| QatError::Shape("not a chain of convolutions (an encoder–decoder)".into()))?;
    let shape: Vec<(usize, usize, bool)> = layers.iter().map(|l| (l.kernel, l.stride, l.relu)).collect();
    if shape != [(3, 1, true), (3, 1, true), (3, 1, true), (1, 1, false)] {
        return Err(QatError::Shape(format!("found (kernel, stride, ReLU) {shape:?}")));
    }
    let width = layers[0].out_channels;
    if layers[1..].iter().any(|l| l.in_channels != width) || layers[..3].iter().any(|l| l.out_channels != width) {
        return Err(QatError::Shape("hidden layers of different widths".into()));
    }
    if layers[3].out_channels != cnn::CLASSES {
        return Err(QatError::Shape(format!(
            "{} outputs, not {}",
            layers[3].out_channels,
            cnn::CLASSES
        )));
    }
    let mut model = ThermoNet::new(net.in_channels(), width, dropout, false, device);
    for (conv, l) in [&mut model.conv1, &mut model.conv2, &mut model.conv3, &mut model.head]
        .into_iter()
        .zip(layers)
    {
        let dims = [l.out_channels, l.in_channels, l.kernel, l.kernel];
        conv.weight = Param::from_tensor(Tensor::from_data(TensorData::new(l.weight.clone(), dims), device));
        conv.bias = Some(Param::from_tensor(Tensor::from_data(
            TensorData::new(l.bias.clone(), [l.out_channels]),
            device,
        )));
    }
    Ok(model)
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
    let start = QatNet::<B>::new(net, &ranges, cfg.dropout, device)?;
    let start_score = score(&start.valid(), validation, device);
    let (best, reports) = continue_training(start, train, validation, cfg, quant, device, on_epoch)?;
    let improved = best_epoch(&reports).is_some_and(|r| r.score > start_score);
    Ok(QatOutcome {
        net: if improved {
            FloatNet::from_burn(&best.net)
        } else {
            net.clone()
        },
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
        let y: Vec<f32> = int8_weight_conv(&conv, Tensor::ones([1, 2, 1, 1], &device))
            .into_data()
            .iter::<f32>()
            .collect();
        // 0.3 → 38/127; −0.0061 → round(−59.6) = −60 steps of 0.013/127.
        let expect = [1.0 + 38.0 / 127.0, 0.013 * (1.0 - 60.0 / 127.0)];
        for (a, b) in y.iter().zip(expect) {
            assert!((a - b).abs() < 1e-6, "{y:?} vs {expect:?}");
        }
    }

    #[test]
    fn a_network_of_another_shape_is_refused() {
        let device = Default::default();
        let conv = |i: usize, o: usize, k: usize, relu| {
            crate::export::fold::FloatConv::new(i, o, k, vec![0.0; i * o * k * k], vec![0.0; o], relu)
        };
        let layers = vec![
            conv(8, 4, 3, true),
            conv(4, 4, 3, true),
            conv(4, 4, 3, true),
            conv(4, 3, 1, false),
        ];
        let ok = FloatNet::chain(layers.clone());
        assert!(network::<B>(&ok, 0.0, &device).is_ok());
        let mut two_classes = layers.clone();
        two_classes[3] = conv(4, 2, 1, false);
        assert!(
            network::<B>(&FloatNet::chain(two_classes), 0.0, &device)
                .unwrap_err()
                .to_string()
                .contains("2 outputs")
        );
        let mut short = layers.clone();
        short.remove(1);
        assert!(
            network::<B>(&FloatNet::chain(short), 0.0, &device)
                .unwrap_err()
                .to_string()
                .contains("kernel")
        );
        // A graph (a skip) is not a chain.
        let mut graph = ok.clone();
        graph.layers[2].inputs = vec![1];
        assert!(
            network::<B>(&graph, 0.0, &device)
                .unwrap_err()
                .to_string()
                .contains("chain")
        );
    }
}
