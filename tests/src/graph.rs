//! Graph models for tests and benchmarks: a builder that wires layers by tensor id and
//! gives them seeded random weights and quantization that satisfies every rule of the
//! engine (pooling, upsampling and concatenation keep one quantization across their
//! tensors), a generator of random graphs, and the reference encoder–decoder.

use tqc_shared::model::{InputSpec, MAX_OUTPUTS, ModelError, Op, QuantParams};
use tqc_shared::quant::Activation;
use tqc_shared::tensor::{Padding, Shape, output_dim};

use crate::{OwnedLayer, OwnedModel, Rng, random_weights};

/// One layer of a graph under construction.
#[derive(Clone, Debug)]
struct Node {
    op: Op,
    inputs: Vec<u8>,
    activation: Activation,
}

/// Wires a graph by tensor id (0 is the input; each layer returns the id it writes).
#[derive(Clone, Debug)]
pub struct GraphBuilder {
    shapes: Vec<Shape>,
    nodes: Vec<Node>,
}

impl GraphBuilder {
    pub fn new(input: Shape) -> Self {
        GraphBuilder {
            shapes: vec![input],
            nodes: Vec::new(),
        }
    }

    pub fn shape(&self, t: usize) -> Shape {
        self.shapes[t]
    }

    pub fn tensors(&self) -> usize {
        self.shapes.len()
    }

    pub fn layers(&self) -> usize {
        self.nodes.len()
    }

    fn push(&mut self, op: Op, inputs: &[usize], activation: Activation, shape: Shape) -> usize {
        self.nodes.push(Node {
            op,
            inputs: inputs.iter().map(|&t| t as u8).collect(),
            activation,
        });
        self.shapes.push(shape);
        self.shapes.len() - 1
    }

    fn window(&self, from: usize, k: u8, stride: u8, padding: Padding) -> Option<(u16, u16)> {
        let s = self.shapes[from];
        Some((
            output_dim(s.height, k, stride, padding)?.0,
            output_dim(s.width, k, stride, padding)?.0,
        ))
    }

    /// A k×k convolution, or `None` if the window does not fit.
    pub fn conv(
        &mut self,
        from: usize,
        k: u8,
        stride: u8,
        padding: Padding,
        out: u16,
        act: Activation,
    ) -> Option<usize> {
        let (h, w) = self.window(from, k, stride, padding)?;
        let op = Op::Conv2d {
            kernel_h: k,
            kernel_w: k,
            stride,
            padding,
            out_channels: out,
        };
        Some(self.push(op, &[from], act, Shape::new(h, w, out)))
    }

    pub fn depthwise(&mut self, from: usize, k: u8, stride: u8, padding: Padding, act: Activation) -> Option<usize> {
        let (h, w) = self.window(from, k, stride, padding)?;
        let op = Op::DepthwiseConv2d {
            kernel_h: k,
            kernel_w: k,
            stride,
            padding,
        };
        let c = self.shapes[from].channels;
        Some(self.push(op, &[from], act, Shape::new(h, w, c)))
    }

    pub fn pool(&mut self, from: usize, max: bool, k: u8, stride: u8, padding: Padding) -> Option<usize> {
        let (h, w) = self.window(from, k, stride, padding)?;
        let (kernel_h, kernel_w) = (k, k);
        let op = if max {
            Op::MaxPool {
                kernel_h,
                kernel_w,
                stride,
                padding,
            }
        } else {
            Op::AvgPool {
                kernel_h,
                kernel_w,
                stride,
                padding,
            }
        };
        let c = self.shapes[from].channels;
        Some(self.push(op, &[from], Activation::None, Shape::new(h, w, c)))
    }

    pub fn upsample(&mut self, from: usize) -> usize {
        let s = self.shapes[from];
        self.push(
            Op::Upsample2,
            &[from],
            Activation::None,
            Shape::new(2 * s.height, 2 * s.width, s.channels),
        )
    }

    pub fn add(&mut self, a: usize, b: usize, act: Activation) -> usize {
        let s = self.shapes[a];
        self.push(Op::Add, &[a, b], act, s)
    }

    pub fn concat(&mut self, a: usize, b: usize) -> usize {
        let (x, y) = (self.shapes[a], self.shapes[b]);
        self.push(
            Op::Concat,
            &[a, b],
            Activation::None,
            Shape::new(x.height, x.width, x.channels + y.channels),
        )
    }

    pub fn fully_connected(&mut self, from: usize, out: u16) -> usize {
        self.push(
            Op::FullyConnected { out_features: out },
            &[from],
            Activation::None,
            Shape::new(1, 1, out),
        )
    }

    pub fn softmax(&mut self, from: usize) -> usize {
        let s = self.shapes[from];
        self.push(Op::Softmax { beta: 1.0 }, &[from], Activation::None, s)
    }

    /// Tensors no layer reads.
    pub fn unread(&self) -> Vec<usize> {
        (0..self.shapes.len())
            .filter(|&t| !self.nodes.iter().any(|n| n.inputs.contains(&(t as u8))))
            .collect()
    }

    /// The model with `outputs`, seeded weights and quantization. Tensors that must share
    /// a quantization (a pooling or upsampling layer's input and output, a concatenation's
    /// inputs and output) get one drawn per group; a softmax output is fixed at 1/256, −128.
    pub fn build(&self, name: &str, outputs: &[usize], seed: u64) -> Result<OwnedModel, ModelError> {
        self.build_for(name, outputs, seed, None)
    }

    /// [`GraphBuilder::build`] for a given input (its quantization kept, e.g. an
    /// inspection model's feature schedule and scale).
    pub fn build_for(
        &self,
        name: &str,
        outputs: &[usize],
        seed: u64,
        input: Option<InputSpec>,
    ) -> Result<OwnedModel, ModelError> {
        let mut rng = Rng(seed);
        let n = self.shapes.len();
        let mut group: Vec<usize> = (0..n).collect();
        fn root(g: &mut [usize], mut t: usize) -> usize {
            while g[t] != t {
                g[t] = g[g[t]];
                t = g[t];
            }
            t
        }
        for (i, node) in self.nodes.iter().enumerate() {
            if matches!(
                node.op,
                Op::MaxPool { .. } | Op::AvgPool { .. } | Op::Upsample2 | Op::Concat
            ) {
                for &t in &node.inputs {
                    let (a, b) = (root(&mut group, t as usize), root(&mut group, i + 1));
                    group[a] = b;
                }
            }
        }
        let zp = |rng: &mut Rng| -> i8 {
            match rng.range(0, 5) {
                0 => -128,
                1 => 127,
                _ => rng.range(-100, 100) as i8,
            }
        };
        let mut drawn: Vec<Option<QuantParams>> = vec![None; n];
        if let Some(i) = &input {
            let r = root(&mut group, 0);
            drawn[r] = Some(i.quant);
        }
        for (i, node) in self.nodes.iter().enumerate() {
            if matches!(node.op, Op::Softmax { .. }) {
                let r = root(&mut group, i + 1);
                drawn[r] = Some(QuantParams {
                    scale: 1.0 / 256.0,
                    zero_point: -128,
                });
            }
        }
        let mut quant = Vec::with_capacity(n);
        for t in 0..n {
            let r = root(&mut group, t);
            let q = *drawn[r].get_or_insert_with(|| QuantParams {
                scale: (1.0 / 32.0) * (0.5 + rng.unit() as f32),
                zero_point: zp(&mut rng),
            });
            quant.push(q);
        }
        let layers = self
            .nodes
            .iter()
            .enumerate()
            .map(|(i, node)| {
                let input = self.shapes[node.inputs[0] as usize];
                let (channels, k_len) = match node.op {
                    Op::Conv2d {
                        kernel_h,
                        kernel_w,
                        out_channels,
                        ..
                    } => (
                        out_channels as usize,
                        kernel_h as usize * kernel_w as usize * input.channels as usize,
                    ),
                    Op::DepthwiseConv2d { kernel_h, kernel_w, .. } => {
                        (input.channels as usize, kernel_h as usize * kernel_w as usize)
                    }
                    Op::FullyConnected { out_features } => (out_features as usize, input.len()),
                    _ => (0, 0),
                };
                let (weights, weight_scales, bias) = random_weights(&mut rng, channels, k_len);
                OwnedLayer {
                    op: node.op,
                    inputs: node.inputs.clone(),
                    activation: node.activation,
                    output: quant[i + 1],
                    weights,
                    weight_scales,
                    bias,
                }
            })
            .collect();
        let model = OwnedModel {
            name: name.into(),
            input: input.unwrap_or(InputSpec {
                shape: self.shapes[0],
                quant: quant[0],
                features: None,
            }),
            classes: vec![],
            layers,
            outputs: outputs.iter().map(|&t| t as u8).collect(),
        };
        tqc_shared::model::Model::new(model.desc())?;
        Ok(model)
    }
}

/// A random graph: 1 to `max_layers` layers of every kind the engine runs, reading the
/// input or any earlier tensor (unread ones preferred), so skips of every length, joins
/// of tensors at different depths and several outputs occur. `None` when the draw ends
/// with more unread tensors than a model may output.
pub fn random_graph(seed: u64, max_layers: usize) -> Option<OwnedModel> {
    let mut rng = Rng(seed);
    let input = Shape::new(rng.range(3, 20) as u16, rng.range(3, 20) as u16, rng.range(1, 6) as u16);
    let mut g = GraphBuilder::new(input);
    let layers = rng.range(1, max_layers as i64) as usize;
    let act = |rng: &mut Rng| [Activation::None, Activation::Relu, Activation::Relu6][rng.range(0, 2) as usize];
    let pad = |rng: &mut Rng| {
        if rng.range(0, 1) == 0 {
            Padding::Same
        } else {
            Padding::Valid
        }
    };
    let mut attempts = 0;
    while g.layers() < layers && attempts < 20 * max_layers {
        attempts += 1;
        let unread = g.unread();
        let from = if rng.range(0, 9) < 7 {
            unread[rng.range(0, unread.len() as i64 - 1) as usize]
        } else {
            rng.range(0, g.tensors() as i64 - 1) as usize
        };
        let s = g.shape(from);
        match rng.range(0, 9) {
            0..=2 => {
                let (k, st, p, out, a) = (
                    rng.range(1, 3) as u8,
                    rng.range(1, 2) as u8,
                    pad(&mut rng),
                    rng.range(1, 8) as u16,
                    act(&mut rng),
                );
                g.conv(from, k, st, p, out, a);
            }
            3 => {
                let (k, st, p, a) = (
                    rng.range(1, 3) as u8,
                    rng.range(1, 2) as u8,
                    pad(&mut rng),
                    act(&mut rng),
                );
                g.depthwise(from, k, st, p, a);
            }
            4 => {
                let (max, k, st, p) = (
                    rng.range(0, 1) == 0,
                    rng.range(1, 3) as u8,
                    rng.range(1, 2) as u8,
                    pad(&mut rng),
                );
                g.pool(from, max, k, st, p);
            }
            5 => {
                if s.height <= 24 && s.width <= 24 {
                    g.upsample(from);
                }
            }
            _ => {
                // A join with another tensor of the same height and width (itself too).
                let same: Vec<usize> = (0..g.tensors())
                    .filter(|&t| {
                        let o = g.shape(t);
                        o.height == s.height && o.width == s.width
                    })
                    .collect();
                let other = same[rng.range(0, same.len() as i64 - 1) as usize];
                if rng.range(0, 1) == 0 && g.shape(other) == s {
                    let a = act(&mut rng);
                    g.add(from, other, a);
                } else if s.channels + g.shape(other).channels <= 64 {
                    g.concat(from, other);
                }
            }
        }
    }
    let last = g.tensors() - 1;
    match rng.range(0, 5) {
        0 => {
            g.softmax(last);
        }
        1 => {
            g.fully_connected(last, rng.range(1, 5) as u16);
        }
        _ => {}
    }
    let mut outputs = g.unread();
    if outputs.len() > MAX_OUTPUTS {
        return None;
    }
    // Rotate so the outputs' order is not always tensor order.
    let k = rng.range(0, outputs.len() as i64 - 1) as usize;
    outputs.rotate_left(k);
    g.build("graph", &outputs, rng.next_u64()).ok()
}

/// The reference encoder–decoder of the benchmark: 120×160×8 features in, three stride-2
/// levels of 3×3 convolutions down, a residual bottleneck (`Add`), and back up with
/// nearest-neighbour upsampling and a skip (`Concat`) at every level — the last one the
/// input itself, which the device holds whole — to two outputs at full resolution:
/// 3 class logits and 1 depth channel.
pub fn encoder_decoder(height: u16, width: u16, seed: u64) -> OwnedModel {
    encoder_decoder_for(Shape::new(height, width, 8), None, seed)
}

/// The reference encoder–decoder on an inspection model's input (its shape, feature
/// schedule and quantization), for the station.
pub fn inspection_encoder_decoder(input: InputSpec, seed: u64) -> OwnedModel {
    encoder_decoder_for(input.shape, Some(input), seed)
}

fn encoder_decoder_for(shape: Shape, input: Option<InputSpec>, seed: u64) -> OwnedModel {
    use Activation::{None as Linear, Relu};
    use Padding::Same;
    let mut g = GraphBuilder::new(shape);
    let fail = "the reference encoder–decoder fits any input divisible by 8";
    let d1 = g.conv(0, 3, 2, Same, 16, Relu).expect(fail);
    let d2 = g.conv(d1, 3, 2, Same, 24, Relu).expect(fail);
    let d3 = g.conv(d2, 3, 2, Same, 32, Relu).expect(fail);
    let b = g.conv(d3, 3, 1, Same, 32, Relu).expect(fail);
    let b = g.add(b, d3, Relu);
    let u2 = g.upsample(b);
    let c2 = g.concat(u2, d2);
    let m2 = g.conv(c2, 1, 1, Same, 24, Relu).expect(fail);
    let m2 = g.conv(m2, 3, 1, Same, 24, Relu).expect(fail);
    let u1 = g.upsample(m2);
    let c1 = g.concat(u1, d1);
    let m1 = g.conv(c1, 1, 1, Same, 16, Relu).expect(fail);
    let u0 = g.upsample(m1);
    let c0 = g.concat(u0, 0);
    let h = g.conv(c0, 1, 1, Same, 8, Relu).expect(fail);
    let classes = g.conv(h, 1, 1, Same, 3, Linear).expect(fail);
    let depth = g.conv(h, 1, 1, Same, 1, Linear).expect(fail);
    let mut m = g
        .build_for("encoder-decoder", &[classes, depth], seed, input)
        .expect(fail);
    m.classes = vec!["sound".into(), "subsurface".into(), "surface".into()];
    m
}
