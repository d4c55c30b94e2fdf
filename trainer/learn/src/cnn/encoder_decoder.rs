//! ThermoNet 2: an encoder–decoder the graph engine runs, with a class head and a depth
//! head at full resolution.
//!
//! Encoder: three stride-2 3×3 convolutions (K→16→24→32, to 1/8 of the frame); a
//! bottleneck of three 3×3 convolutions at 1/8, the first two a residual block (`Add`).
//! Its view is 63 pixels, several defect diameters: the diffusion blur of a deep defect
//! spreads its contrast wider than the 7-pixel view of the first ThermoNet. Decoder: at
//! each level nearest-neighbour ×2 (`Upsample2`), the encoder's map of that level
//! concatenated (`Concat`, the frame's features themselves at the last), a 1×1
//! convolution, at 1/4 and 1/2 followed by a 3×3 that smooths the upsampled blocks
//! (`refine`; the view grows to 75 pixels); then two 1×1 heads: the class logits and the
//! depth in mm.
//!
//! The engine's `Concat` rescales nothing, so the tensors it joins share one int8 grid.
//! Every hidden map is therefore a bounded ReLU: at 6 (ReLU6) in general, so joined maps
//! have comparable ranges, and at the top of the features' grid (≈ 2) for the map joined
//! with the features themselves — the float network saturates where the int8 one will.

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{Dropout, DropoutConfig, PaddingConfig2d};
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData, activation};

use super::model::{CLASSES, conv_same, drop_seeded};
use crate::export::fold::{FloatConv, FloatLayer, FloatNet, FloatOp, fold_conv};

/// The shape of a [`ThermoNet2`], saved beside its weights.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ThermoNet2Config {
    /// Feature channels of the input.
    pub channels: usize,
    /// Maps of the three encoder levels (1/2, 1/4, 1/8).
    pub encoder: [usize; 3],
    /// Maps of the decoder's 1×1 convolutions at 1/4, 1/2 and full resolution.
    pub decoder: [usize; 3],
    /// Top of the input features' int8 grid (`scale · (127 − zero_point)`): the bound
    /// of the map concatenated with them.
    pub input_top: f32,
    /// Bound of every other hidden map (a ReLU6): maps joined by a `Concat` share one
    /// int8 grid, and an unbounded encoder map (seen at 90–140 after a few epochs)
    /// would leave the decoder map joined with it a handful of codes.
    #[serde(default = "relu6")]
    pub hidden_top: f32,
    /// A 3×3 convolution after the decoder's 1×1 at 1/4 and at 1/2: it smooths the
    /// blocks nearest upsampling spreads and sharpens the class map's edges at those
    /// grids (without it the maps are blocks of the 1/8 grid, seen as false calls).
    #[serde(default)]
    pub refine: bool,
    /// Kernel of the class head (1 or 3): a 3×3 decides each pixel with its neighbours
    /// at full resolution, where the rest of the decoder only mixes maps pixel by pixel.
    #[serde(default = "one")]
    pub class_kernel: usize,
}

fn one() -> usize {
    1
}

fn relu6() -> f32 {
    6.0
}

impl ThermoNet2Config {
    /// The standard shape: 29.0 M MACs per 160×120 part with 8 feature channels (56.0 M
    /// instructions of inference on the emulated M7, `cargo xtask qemu`). With `refine`,
    /// a narrower one that pays for the two 3×3 refinements: encoder 16/24/24, decoder
    /// 16/8/8, 26.6 M MACs.
    pub fn standard(channels: usize, input: tqc_shared::model::QuantParams, refine: bool) -> Self {
        let (encoder, decoder) = if refine {
            ([16, 24, 24], [16, 8, 8])
        } else {
            ([16, 24, 32], [24, 16, 8])
        };
        ThermoNet2Config {
            channels,
            encoder,
            decoder,
            input_top: input.scale * (127 - i32::from(input.zero_point)) as f32,
            hidden_top: relu6(),
            refine,
            class_kernel: 1,
        }
    }

    /// The narrower encoder–decoder (encoder 16/24/24, decoder 16/8/8) with a 3×3 class
    /// head: 24.8 M MACs per 160×120 part with 8 feature channels.
    pub fn sharp(channels: usize, input: tqc_shared::model::QuantParams) -> Self {
        ThermoNet2Config {
            encoder: [16, 24, 24],
            decoder: [16, 8, 8],
            class_kernel: 3,
            ..Self::standard(channels, input, false)
        }
    }

    /// A fresh network of this shape, with `dropout` before the heads in training.
    pub fn init<B: Backend>(&self, dropout: f64, device: &B::Device) -> ThermoNet2<B> {
        let conv = |i: usize, o: usize, k: usize, s: usize| {
            Conv2dConfig::new([i, o], [k, k])
                .with_stride([s, s])
                .with_padding(PaddingConfig2d::Same)
                .init(device)
        };
        let [e1, e2, e3] = self.encoder;
        let [m2, m1, m0] = self.decoder;
        // The map bounded at the features' grid (≈ 2) starts well inside it: a unit
        // pinned at the bound from the start has no gradient to leave it.
        let small = |i: usize, o: usize| {
            Conv2dConfig::new([i, o], [1, 1])
                .with_initializer(burn::nn::Initializer::KaimingUniform {
                    gain: 0.25 / 3f64.sqrt(),
                    fan_out_only: false,
                })
                .init(device)
        };
        // A refinement starts as the identity plus a little noise: the network it is
        // added to trains as without it, and the smoothing grows from there (a freshly
        // initialised 3×3 in the decoder stalled training: surface spots never learned).
        let refine = |c: usize| {
            let conv = Conv2dConfig::new([c, c], [3, 3])
                .with_padding(PaddingConfig2d::Same)
                .with_initializer(burn::nn::Initializer::KaimingUniform {
                    gain: 0.1 / 3f64.sqrt(),
                    fan_out_only: false,
                })
                .init::<B>(device);
            let mut dirac = vec![0f32; c * c * 9];
            for o in 0..c {
                dirac[(o * c + o) * 9 + 4] = 1.0;
            }
            let dirac = Tensor::<B, 4>::from_data(TensorData::new(dirac, [c, c, 3, 3]), device);
            Conv2d {
                weight: conv.weight.map(|w| w + dirac),
                ..conv
            }
        };
        ThermoNet2 {
            down1: conv(self.channels, e1, 3, 2),
            down2: conv(e1, e2, 3, 2),
            down3: conv(e2, e3, 3, 2),
            block1: conv(e3, e3, 3, 1),
            block2: conv(e3, e3, 3, 1),
            bottleneck: conv(e3, e3, 3, 1),
            up2: conv(e3 + e2, m2, 1, 1),
            refine2: self.refine.then(|| refine(m2)),
            up1: small(m2 + e1, m1),
            refine1: self.refine.then(|| refine(m1)),
            up0: conv(m1 + self.channels, m0, 1, 1),
            classes: conv(m0, CLASSES, self.class_kernel, 1),
            depth: conv(m0, 1, 1, 1),
            dropout: DropoutConfig::new(dropout).init(),
            input_top: self.input_top,
            hidden_top: self.hidden_top,
        }
    }
}

#[derive(Module, Debug)]
pub struct ThermoNet2<B: Backend> {
    pub(crate) down1: Conv2d<B>,
    pub(crate) down2: Conv2d<B>,
    pub(crate) down3: Conv2d<B>,
    pub(crate) block1: Conv2d<B>,
    pub(crate) block2: Conv2d<B>,
    pub(crate) bottleneck: Conv2d<B>,
    pub(crate) up2: Conv2d<B>,
    pub(crate) refine2: Option<Conv2d<B>>,
    pub(crate) up1: Conv2d<B>,
    pub(crate) refine1: Option<Conv2d<B>>,
    pub(crate) up0: Conv2d<B>,
    pub(crate) classes: Conv2d<B>,
    pub(crate) depth: Conv2d<B>,
    pub(crate) dropout: Dropout,
    #[module(skip)]
    pub(crate) input_top: f32,
    #[module(skip)]
    pub(crate) hidden_top: f32,
}

impl<B: Backend> ThermoNet2<B> {
    pub fn config(&self) -> ThermoNet2Config {
        let out = |c: &Conv2d<B>| c.weight.dims()[0];
        ThermoNet2Config {
            channels: self.down1.weight.dims()[1],
            encoder: [out(&self.down1), out(&self.down2), out(&self.down3)],
            decoder: [out(&self.up2), out(&self.up1), out(&self.up0)],
            input_top: self.input_top,
            hidden_top: self.hidden_top,
            refine: self.refine1.is_some(),
            class_kernel: self.classes.weight.dims()[2],
        }
    }

    /// `[batch, K, H, W]` features (H, W divisible by 8) to the class logits
    /// `[batch, 3, H, W]` and the depth `[batch, 1, H, W]` (mm); dropout before the heads
    /// with masks drawn from `seed` when the backend records gradients.
    pub fn forward_seeded(&self, x: Tensor<B, 4>, seed: Option<u64>) -> (Tensor<B, 4>, Tensor<B, 4>) {
        let conv = |c: &Conv2d<B>, x: Tensor<B, 4>, stride: usize| {
            strided_conv_same(x, c.weight.val(), c.bias.as_ref().map(|b| b.val()), stride)
        };
        let top = self.hidden_top;
        let bounded = |x: Tensor<B, 4>, top: f32| activation::relu(x).clamp_max(top);
        let d1 = bounded(conv(&self.down1, x.clone(), 2), top);
        let d2 = bounded(conv(&self.down2, d1.clone(), 2), top);
        let d3 = bounded(conv(&self.down3, d2.clone(), 2), top);
        let b = bounded(conv(&self.block1, d3.clone(), 1), top);
        let b = activation::relu(conv(&self.block2, b, 1) + d3);
        let b = bounded(conv(&self.bottleneck, b, 1), top);
        let m = bounded(conv(&self.up2, Tensor::cat(vec![upsample2(b), d2], 1), 1), top);
        let m = match &self.refine2 {
            Some(r) => bounded(conv(r, m, 1), top),
            None => m,
        };
        let up1 = conv(&self.up1, Tensor::cat(vec![upsample2(m), d1], 1), 1);
        // The map joined with the features is bounded at their grid's top.
        let m = match &self.refine1 {
            Some(r) => bounded(conv(r, bounded(up1, top), 1), self.input_top),
            None => bounded(up1, self.input_top),
        };
        let h = bounded(conv(&self.up0, Tensor::cat(vec![upsample2(m), x], 1), 1), top);
        let h = drop_seeded(h, self.dropout.prob, seed);
        (conv(&self.classes, h.clone(), 1), conv(&self.depth, h, 1))
    }

    /// The network as a float graph, in the engine's layer order.
    pub fn float_net(&self) -> FloatNet {
        let cfg = self.config();
        // ReLUs are bounded at `hidden_top`; the linear convolutions are not.
        let conv = |c: &Conv2d<B>, stride: usize, relu: bool| FloatConv {
            clip: relu.then_some(cfg.hidden_top),
            ..fold_conv(c, None, stride, relu)
        };
        let mut layers: Vec<FloatLayer> = Vec::new();
        let mut push = |op: FloatOp, inputs: &[usize]| {
            layers.push(FloatLayer {
                op,
                inputs: inputs.to_vec(),
            });
            layers.len()
        };
        let d1 = push(FloatOp::Conv(conv(&self.down1, 2, true)), &[0]);
        let d2 = push(FloatOp::Conv(conv(&self.down2, 2, true)), &[d1]);
        let d3 = push(FloatOp::Conv(conv(&self.down3, 2, true)), &[d2]);
        let b1 = push(FloatOp::Conv(conv(&self.block1, 1, true)), &[d3]);
        let b2 = push(FloatOp::Conv(conv(&self.block2, 1, false)), &[b1]);
        let r = push(FloatOp::Add { relu: true }, &[b2, d3]);
        let b = push(FloatOp::Conv(conv(&self.bottleneck, 1, true)), &[r]);
        let u = push(FloatOp::Upsample2, &[b]);
        let c = push(FloatOp::Concat, &[u, d2]);
        let mut m2 = push(FloatOp::Conv(conv(&self.up2, 1, true)), &[c]);
        if let Some(r) = &self.refine2 {
            m2 = push(FloatOp::Conv(conv(r, 1, true)), &[m2]);
        }
        let u = push(FloatOp::Upsample2, &[m2]);
        let c = push(FloatOp::Concat, &[u, d1]);
        let joined_with_features = |c: FloatConv| FloatConv {
            clip: Some(cfg.input_top),
            ..c
        };
        let m1 = match &self.refine1 {
            Some(r) => {
                let m = push(FloatOp::Conv(conv(&self.up1, 1, true)), &[c]);
                push(FloatOp::Conv(joined_with_features(conv(r, 1, true))), &[m])
            }
            None => push(FloatOp::Conv(joined_with_features(conv(&self.up1, 1, true))), &[c]),
        };
        let u = push(FloatOp::Upsample2, &[m1]);
        let c = push(FloatOp::Concat, &[u, 0]);
        let h = push(FloatOp::Conv(conv(&self.up0, 1, true)), &[c]);
        let classes = push(FloatOp::Conv(conv(&self.classes, 1, false)), &[h]);
        let depth = push(FloatOp::Conv(conv(&self.depth, 1, false)), &[h]);
        FloatNet {
            in_channels: cfg.channels,
            layers,
            outputs: vec![classes, depth],
        }
    }
}

impl<B: Backend> super::Segmenter<B> for ThermoNet2<B> {
    fn segment(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        self.forward_seeded(x, None).0
    }

    fn segment_train(&self, x: Tensor<B, 4>, seed: u64) -> Tensor<B, 4> {
        self.forward_seeded(x, Some(seed)).0
    }

    fn segment_depth(&self, x: Tensor<B, 4>, seed: Option<u64>) -> (Tensor<B, 4>, Option<Tensor<B, 4>>) {
        let (logits, depth) = self.forward_seeded(x, seed);
        (logits, Some(depth))
    }

    fn l1(&self) -> Option<Tensor<B, 1>> {
        [
            Some(&self.down1),
            Some(&self.down2),
            Some(&self.down3),
            Some(&self.block1),
            Some(&self.block2),
            Some(&self.bottleneck),
            Some(&self.up2),
            self.refine2.as_ref(),
            Some(&self.up1),
            self.refine1.as_ref(),
            Some(&self.up0),
            Some(&self.classes),
            Some(&self.depth),
        ]
        .into_iter()
        .flatten()
        .map(|c| c.weight.val().abs().sum())
        .reduce(|a, b| a + b)
    }
}

/// Nearest-neighbour ×2 of `[n, c, h, w]` (each value copied into a 2×2 block; the
/// gradient sums the block).
pub fn upsample2<B: Backend>(x: Tensor<B, 4>) -> Tensor<B, 4> {
    let [n, c, h, w] = x.dims();
    x.reshape([n, c, h, 1, w, 1])
        .expand([n, c, h, 2, w, 2])
        .reshape([n, c, 2 * h, 2 * w])
}

/// [`conv_same`] at `stride`, with TFLite's "same" padding (output `ceil(size / stride)`,
/// the odd padding pixel after): the stride-1 result at the positions a strided window
/// centres on, picked before the matrix product so only those outputs are computed.
pub fn strided_conv_same<B: Backend>(
    x: Tensor<B, 4>,
    weight: Tensor<B, 4>,
    bias: Option<Tensor<B, 1>>,
    stride: usize,
) -> Tensor<B, 4> {
    if stride <= 1 {
        return conv_same(x, weight, bias);
    }
    let [_, _, h, w] = x.dims();
    let k = weight.dims()[2];
    // Stride-1 output y reads rows y − k/2 … y + k/2; strided output o reads rows
    // s·o − before … : the same window is centred at s·o − before + k/2.
    let centres = |size: usize| -> Vec<usize> {
        let (before, _) = crate::export::fold::same_padding(size, k, stride);
        let out = crate::export::fold::same_out(size, stride);
        (0..out).map(|o| stride * o + k / 2 - before).collect()
    };
    let (rows, cols) = (centres(h), centres(w));
    let pick: Vec<i64> = rows
        .iter()
        .flat_map(|&y| cols.iter().map(move |&x| (y * w + x) as i64))
        .collect();
    let device = x.device();
    let pick = Tensor::<B, 1, Int>::from_data(TensorData::new(pick, [rows.len() * cols.len()]), &device);
    super::model::conv_same_at(x, weight, bias, Some((pick, rows.len(), cols.len())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, NdArray};
    use burn::tensor::{Distribution, Tensor};

    type B = NdArray<f32>;
    type A = Autodiff<B>;

    #[test]
    fn upsampling_copies_each_value_into_a_block_and_sums_the_gradient_back() {
        let device = Default::default();
        let x = Tensor::<A, 4>::from_data(
            TensorData::new(vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0], [1, 1, 2, 3]),
            &device,
        )
        .require_grad();
        let y = upsample2(x.clone());
        let got: Vec<f32> = y.clone().inner().into_data().iter::<f32>().collect();
        #[rustfmt::skip]
        let expect = [
            1.0, 1.0, 2.0, 2.0, 3.0, 3.0,
            1.0, 1.0, 2.0, 2.0, 3.0, 3.0,
            4.0, 4.0, 5.0, 5.0, 6.0, 6.0,
            4.0, 4.0, 5.0, 5.0, 6.0, 6.0,
        ];
        assert_eq!(got, expect);
        let weights: Vec<f32> = (0..24).map(|i| i as f32).collect();
        let wt = Tensor::<A, 4>::from_data(TensorData::new(weights.clone(), [1, 1, 4, 6]), &device);
        let grads = (y * wt).sum().backward();
        let g: Vec<f32> = x.grad(&grads).unwrap().into_data().iter::<f32>().collect();
        // Input (r, c) collects output rows 2r, 2r + 1 and columns 2c, 2c + 1.
        let block = |r: usize, c: usize| -> f32 {
            [(0, 0), (0, 1), (1, 0), (1, 1)]
                .iter()
                .map(|(dy, dx)| weights[(2 * r + dy) * 6 + 2 * c + dx])
                .sum()
        };
        assert_eq!(
            g,
            vec![
                block(0, 0),
                block(0, 1),
                block(0, 2),
                block(1, 0),
                block(1, 1),
                block(1, 2)
            ]
        );
    }

    /// burn's forward pass and the folded float graph (the reference the quantizer
    /// calibrates on and the ONNX export writes) give the same logits and depth.
    #[test]
    fn the_float_graph_is_the_burn_network() {
        for (refine, class_kernel) in [(false, 1), (true, 1), (false, 3)] {
            float_graph_matches(refine, class_kernel);
        }
    }

    fn float_graph_matches(refine: bool, class_kernel: usize) {
        let device = Default::default();
        let _turn = crate::cnn::seeded_turn();
        <B as Backend>::seed(&device, 3);
        let cfg = ThermoNet2Config {
            channels: 3,
            encoder: [4, 5, 6],
            decoder: [5, 4, 3],
            input_top: 0.01,
            hidden_top: 0.4,
            refine,
            class_kernel,
        };
        let net = cfg.init::<B>(0.0, &device);
        let (h, w) = (16, 24);
        let x = Tensor::<B, 4>::random([1, 3, h, w], Distribution::Normal(0.0, 1.0), &device);
        let features: Vec<f32> = x.clone().into_data().iter::<f32>().collect();
        let (logits, depth) = net.forward_seeded(x, None);
        let float = net.float_net();
        assert_eq!(float.classes(), CLASSES);
        let outs = float.forward_all(&features, h, w);
        for (what, burn, graph) in [
            ("logits", logits.into_data().iter::<f32>().collect::<Vec<_>>(), &outs[0]),
            ("depth", depth.into_data().iter::<f32>().collect::<Vec<_>>(), &outs[1]),
        ] {
            assert_eq!(burn.len(), graph.len(), "{what}");
            for (i, (a, b)) in burn.iter().zip(graph).enumerate() {
                assert!(
                    (a - b).abs() <= 1e-4 * (1.0 + b.abs()),
                    "{what} [{i}], refine {refine}: {a} vs {b}"
                );
            }
        }
        // The bounded maps reach their bounds somewhere, so the comparison covers them.
        let acts = float.activations(&features, h, w);
        for top in [0.01, 0.4] {
            let clipped = float
                .layers
                .iter()
                .position(|l| matches!(&l.op, FloatOp::Conv(c) if c.clip == Some(top)))
                .unwrap();
            assert!(
                acts[clipped + 1].contains(&top),
                "no value at the clip {top}, refine {refine}"
            );
        }
    }
}
