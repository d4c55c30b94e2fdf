//! The trained network as plain float layers with batch normalization folded into the
//! convolutions — what ONNX export and quantization start from — and a direct float
//! forward pass over them (the calibration reference).
//!
//! Folding: `y = γ·(conv(x) + b − μ)/√(σ² + ε) + β` becomes a convolution with weights
//! `w·γ/√(σ² + ε)` per output channel and bias `(b − μ)·γ/√(σ² + ε) + β`.

use burn::tensor::backend::Backend;

use burn::nn::BatchNorm;
use burn::nn::conv::Conv2d;

use crate::cnn::ThermoNet;

/// One float convolution (OIHW) with TFLite's "same" padding: output `ceil(in / stride)`,
/// the padding split with its odd pixel after (bottom, right) — what the engine computes.
#[derive(Clone, Debug, PartialEq)]
pub struct FloatConv {
    pub in_channels: usize,
    pub out_channels: usize,
    pub kernel: usize,
    pub stride: usize,
    /// OIHW.
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
    pub relu: bool,
    /// Upper bound of the activation, when the output must share another tensor's int8
    /// grid (a concatenation with the input features): the float network saturates
    /// where the int8 one does.
    pub clip: Option<f32>,
}

impl FloatConv {
    /// A stride-1 convolution without clip.
    pub fn new(
        in_channels: usize,
        out_channels: usize,
        kernel: usize,
        weight: Vec<f32>,
        bias: Vec<f32>,
        relu: bool,
    ) -> Self {
        FloatConv {
            in_channels,
            out_channels,
            kernel,
            stride: 1,
            weight,
            bias,
            relu,
            clip: None,
        }
    }
}

/// What a layer of the float graph computes.
#[derive(Clone, Debug, PartialEq)]
pub enum FloatOp {
    Conv(FloatConv),
    /// Element-wise sum of two tensors of one shape, ReLU after if `relu`.
    Add {
        relu: bool,
    },
    /// Channel concatenation (first input's channels first).
    Concat,
    /// Nearest-neighbour upsampling by 2.
    Upsample2,
}

impl FloatOp {
    /// Whether the op's output gets a quantization of its own (convolutions, sums);
    /// a concatenation or an upsampling writes on its inputs' grid.
    pub fn own_grid(&self) -> bool {
        matches!(self, FloatOp::Conv(_) | FloatOp::Add { .. })
    }
}

/// A layer of the float graph: tensor 0 is the input, layer `i` writes tensor `i + 1`
/// from earlier tensors (the engine's model layout).
#[derive(Clone, Debug, PartialEq)]
pub struct FloatLayer {
    pub op: FloatOp,
    pub inputs: Vec<usize>,
}

/// Why a decision margin cannot be folded into a network.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum MarginError {
    #[error("decision margin {0}: must be a finite logit difference ≥ 0")]
    Value(f32),
    #[error("the class logits do not come straight from a convolution: no bias to fold a decision margin into")]
    Head,
}

/// A decision margin must be a finite logit difference ≥ 0 (checked before a run trains,
/// and again where it is folded).
pub fn check_margin(margin: f32) -> Result<(), MarginError> {
    if margin.is_finite() && margin >= 0.0 {
        Ok(())
    } else {
        Err(MarginError::Value(margin))
    }
}

/// The folded network: a graph of float layers, its outputs the class logits first and
/// the depth estimate (mm) second, if the network has one.
#[derive(Clone, Debug, PartialEq)]
pub struct FloatNet {
    pub in_channels: usize,
    pub layers: Vec<FloatLayer>,
    pub outputs: Vec<usize>,
}

/// Height and width after a "same" convolution of `stride`.
pub fn same_out(size: usize, stride: usize) -> usize {
    size.div_ceil(stride.max(1))
}

/// Padding (before, after) of TFLite's "same" convolution.
pub fn same_padding(size: usize, kernel: usize, stride: usize) -> (usize, usize) {
    let total = ((same_out(size, stride).saturating_sub(1)) * stride + kernel).saturating_sub(size);
    (total / 2, total - total / 2)
}

fn values<B: Backend, const D: usize>(t: burn::tensor::Tensor<B, D>) -> Vec<f32> {
    t.into_data().iter::<f32>().collect()
}

/// A burn convolution and its batch norm folded into one float convolution.
pub fn fold_conv<B: Backend>(conv: &Conv2d<B>, bn: Option<&BatchNorm<B>>, stride: usize, relu: bool) -> FloatConv {
    let [o, i, k, _] = conv.weight.dims();
    let w = values(conv.weight.val());
    let b = conv.bias.as_ref().map_or(vec![0.0; o], |b| values(b.val()));
    let (weight, bias) = match bn {
        None => (w, b),
        Some(bn) => {
            let (gamma, beta) = (values(bn.gamma.val()), values(bn.beta.val()));
            let (mean, var) = (values(bn.running_mean.value()), values(bn.running_var.value()));
            let mut weight = vec![0.0; w.len()];
            let mut bias = vec![0.0; o];
            let per = i * k * k;
            for c in 0..o {
                // In f64 so folding adds no rounding beyond the final f32 store.
                let f = gamma[c] as f64 / (var[c] as f64 + bn.epsilon).sqrt();
                for j in 0..per {
                    weight[c * per + j] = (w[c * per + j] as f64 * f) as f32;
                }
                bias[c] = ((b[c] as f64 - mean[c] as f64) * f + beta[c] as f64) as f32;
            }
            (weight, bias)
        }
    };
    FloatConv {
        stride,
        ..FloatConv::new(i, o, k, weight, bias, relu)
    }
}

impl FloatNet {
    /// A chain of convolutions, each reading the one before; the last gives the logits.
    pub fn chain(convs: Vec<FloatConv>) -> FloatNet {
        let n = convs.len();
        FloatNet {
            in_channels: convs.first().map_or(0, |c| c.in_channels),
            layers: convs
                .into_iter()
                .enumerate()
                .map(|(i, c)| FloatLayer {
                    op: FloatOp::Conv(c),
                    inputs: vec![i],
                })
                .collect(),
            outputs: vec![n],
        }
    }

    /// Folds the batch norms of a trained (inference-mode) ThermoNet.
    pub fn from_burn<B: Backend>(net: &ThermoNet<B>) -> FloatNet {
        let (convs, head) = net.layers();
        let mut layers: Vec<FloatConv> = convs.iter().map(|(c, bn)| fold_conv(c, *bn, 1, true)).collect();
        layers.push(fold_conv(head, None, 1, false));
        FloatNet::chain(layers)
    }

    /// The convolutions in layer order.
    pub fn convs(&self) -> impl Iterator<Item = &FloatConv> {
        self.layers.iter().filter_map(|l| match &l.op {
            FloatOp::Conv(c) => Some(c),
            _ => None,
        })
    }

    pub fn in_channels(&self) -> usize {
        self.in_channels
    }

    /// Classes of the logits output (channels do not depend on the frame size).
    pub fn classes(&self) -> usize {
        let shapes = self.shapes(1, 1);
        self.outputs.first().and_then(|&t| shapes.get(t)).map_or(0, |s| s.0)
    }

    /// The network with a decision margin folded into the class head: the sound logit's
    /// bias grows by `margin`, so a pixel is called a defect only when its best defect
    /// logit exceeds the sound logit by more than `margin` — the station's argmax then
    /// applies the stricter threshold with no code of its own. The logits must come
    /// straight from a convolution (no activation).
    pub fn with_decision_margin(mut self, margin: f32) -> Result<FloatNet, MarginError> {
        check_margin(margin)?;
        let head = self
            .outputs
            .first()
            .and_then(|&t| t.checked_sub(1))
            .and_then(|l| self.layers.get_mut(l));
        match head.map(|l| &mut l.op) {
            Some(FloatOp::Conv(c)) if !c.relu && c.clip.is_none() => {
                if let Some(sound) = c.bias.first_mut() {
                    *sound += margin;
                }
                Ok(self)
            }
            _ => Err(MarginError::Head),
        }
    }

    /// The tensor of the depth output, if any.
    pub fn depth_output(&self) -> Option<usize> {
        self.outputs.get(1).copied()
    }

    /// (channels, height, width) of every tensor for a `height`×`width` input.
    pub fn shapes(&self, height: usize, width: usize) -> Vec<(usize, usize, usize)> {
        let mut s = vec![(self.in_channels, height, width)];
        for l in &self.layers {
            let a = l.inputs.first().map_or((0, 0, 0), |&i| s[i]);
            s.push(match &l.op {
                FloatOp::Conv(c) => (c.out_channels, same_out(a.1, c.stride), same_out(a.2, c.stride)),
                FloatOp::Add { .. } => a,
                FloatOp::Concat => (l.inputs.iter().map(|&i| s[i].0).sum(), a.1, a.2),
                FloatOp::Upsample2 => (a.0, 2 * a.1, 2 * a.2),
            });
        }
        s
    }

    pub fn parameters(&self) -> usize {
        self.convs().map(|l| l.weight.len() + l.bias.len()).sum()
    }

    /// Multiply-accumulates for one `height`×`width` image.
    pub fn macs(&self, height: usize, width: usize) -> usize {
        let shapes = self.shapes(height, width);
        self.layers
            .iter()
            .enumerate()
            .map(|(i, l)| match &l.op {
                FloatOp::Conv(c) => c.weight.len() * shapes[i + 1].1 * shapes[i + 1].2,
                _ => 0,
            })
            .sum()
    }

    /// Every tensor of a CHW input: `out[0]` is the input, `out[i+1]` layer i's output.
    pub fn activations(&self, input: &[f32], height: usize, width: usize) -> Vec<Vec<f32>> {
        let shapes = self.shapes(height, width);
        let mut out: Vec<Vec<f32>> = vec![input.to_vec()];
        for l in &self.layers {
            let a = l.inputs.first().copied().unwrap_or(0);
            let (_, h, w) = shapes[a];
            let next = match &l.op {
                FloatOp::Conv(c) => conv_same(c, &out[a], h, w),
                FloatOp::Add { relu } => {
                    let b = l.inputs.get(1).copied().unwrap_or(a);
                    out[a]
                        .iter()
                        .zip(&out[b])
                        .map(|(x, y)| if *relu { (x + y).max(0.0) } else { x + y })
                        .collect()
                }
                FloatOp::Concat => l.inputs.iter().flat_map(|&i| out[i].iter().copied()).collect(),
                FloatOp::Upsample2 => upsample2(&out[a], shapes[a].0, h, w),
            };
            out.push(next);
        }
        out
    }

    /// The outputs (CHW each) of a CHW input: the logits, then the depth if any.
    pub fn forward_all(&self, input: &[f32], height: usize, width: usize) -> Vec<Vec<f32>> {
        let mut acts = self.activations(input, height, width);
        self.outputs.iter().map(|&t| std::mem::take(&mut acts[t])).collect()
    }

    /// The logits (CHW) of a CHW input.
    pub fn forward(&self, input: &[f32], height: usize, width: usize) -> Vec<f32> {
        self.forward_all(input, height, width)
            .into_iter()
            .next()
            .unwrap_or_default()
    }
}

/// Nearest-neighbour ×2 of a CHW tensor.
fn upsample2(x: &[f32], c: usize, h: usize, w: usize) -> Vec<f32> {
    let mut y = Vec::with_capacity(4 * x.len());
    for k in 0..c {
        for yy in 0..2 * h {
            let row = &x[(k * h + yy / 2) * w..(k * h + yy / 2 + 1) * w];
            y.extend(row.iter().flat_map(|&v| [v, v]));
        }
    }
    y
}

#[derive(Debug, thiserror::Error)]
pub enum OnnxReadError {
    #[error("not an ONNX model")]
    Decode(#[from] prost::DecodeError),
    #[error("the model has no graph")]
    NoGraph,
    #[error("node {index} ({op}): {what}")]
    Node { index: usize, op: String, what: String },
    #[error("initializer {name}: {what}")]
    Initializer { name: String, what: String },
    #[error("the graph holds no convolution")]
    NoConv,
}

impl FloatNet {
    /// Reads a float ONNX file of the shape `trainer` exports — Conv (strides 1 or 2),
    /// Relu and Clip after it, Add, Concat on channels, Resize nearest ×2, Softmax for the
    /// probabilities; `logits` and `depth` outputs — back into the float graph. Anything
    /// else, and any read of a value an activation replaced, is refused by name.
    pub fn from_onnx(bytes: &[u8]) -> Result<FloatNet, OnnxReadError> {
        use prost::Message;
        use tract_onnx::pb;
        let m = pb::ModelProto::decode(bytes)?;
        let g = m.graph.ok_or(OnnxReadError::NoGraph)?;
        let init = |name: &str| -> Result<(Vec<usize>, Vec<f32>), OnnxReadError> {
            let t = g
                .initializer
                .iter()
                .find(|t| t.name == name)
                .ok_or_else(|| OnnxReadError::Initializer {
                    name: name.into(),
                    what: "missing".into(),
                })?;
            if t.data_type != pb::tensor_proto::DataType::Float as i32 {
                return Err(OnnxReadError::Initializer {
                    name: name.into(),
                    what: format!("data type {} is not float", t.data_type),
                });
            }
            let dims: Vec<usize> = t.dims.iter().map(|&d| d.max(0) as usize).collect();
            let v: Vec<f32> = if !t.raw_data.is_empty() {
                t.raw_data
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect()
            } else {
                t.float_data.clone()
            };
            if v.len() != dims.iter().product::<usize>() {
                return Err(OnnxReadError::Initializer {
                    name: name.into(),
                    what: format!("{} values for dims {dims:?}", v.len()),
                });
            }
            Ok((dims, v))
        };
        // Every value name to the tensor it holds (0 the input, `i + 1` layer i's output).
        let mut names: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
        let input = g.input.first().ok_or(OnnxReadError::NoGraph)?;
        names.insert(input.name.clone(), 0);
        let in_channels = input
            .r#type
            .as_ref()
            .and_then(|t| match &t.value {
                Some(pb::type_proto::Value::TensorType(t)) => t.shape.as_ref(),
                _ => None,
            })
            .and_then(|s| s.dim.get(1))
            .and_then(|d| match d.value {
                Some(pb::tensor_shape_proto::dimension::Value::DimValue(v)) => Some(v.max(0) as usize),
                _ => None,
            });
        let attr = |n: &pb::NodeProto, name: &str| n.attribute.iter().find(|a| a.name == name).cloned();
        let mut layers: Vec<FloatLayer> = Vec::new();
        for (index, n) in g.node.iter().enumerate() {
            let bad = |what: &str| OnnxReadError::Node {
                index,
                op: n.op_type.clone(),
                what: what.into(),
            };
            let tensor = |name: &String| {
                names
                    .get(name)
                    .copied()
                    .ok_or_else(|| bad(&format!("reads {name}, which no earlier node wrote")))
            };
            let out = n.output.first().ok_or_else(|| bad("no output"))?.clone();
            // An activation rewrites the layer that wrote its input, when it is the last one.
            let last_writes = |t: usize, written: usize| t == written && t > 0;
            match n.op_type.as_str() {
                "Conv" => {
                    if n.input.len() != 3 {
                        return Err(bad("expected input, weight and bias"));
                    }
                    let x = tensor(&n.input[0])?;
                    let (wd, weight) = init(&n.input[1])?;
                    let (bd, bias) = init(&n.input[2])?;
                    if wd.len() != 4 || wd[2] != wd[3] || wd[2] % 2 == 0 || bd != [wd[0]] {
                        return Err(bad(&format!("weight {wd:?} / bias {bd:?}: needs an odd square kernel")));
                    }
                    let stride = attr(n, "strides").map_or(1, |a| a.ints.first().copied().unwrap_or(1));
                    if !(1..=2).contains(&stride)
                        || attr(n, "strides").is_some_and(|a| a.ints.iter().any(|&s| s != stride))
                    {
                        return Err(bad("strides must be 1 or 2, equal on both axes"));
                    }
                    let group = attr(n, "group").map_or(1, |a| a.i);
                    if group != 1 {
                        return Err(bad("grouped convolutions are not part of the network"));
                    }
                    let conv = FloatConv {
                        stride: stride as usize,
                        ..FloatConv::new(wd[1], wd[0], wd[2], weight, bias, false)
                    };
                    layers.push(FloatLayer {
                        op: FloatOp::Conv(conv),
                        inputs: vec![x],
                    });
                    names.insert(out, layers.len());
                }
                "Relu" => {
                    let x = tensor(&n.input[0])?;
                    let written = layers.len();
                    match layers.last_mut().map(|l| &mut l.op) {
                        Some(FloatOp::Conv(c)) if last_writes(x, written) && !c.relu => c.relu = true,
                        Some(FloatOp::Add { relu }) if last_writes(x, written) && !*relu => *relu = true,
                        _ => return Err(bad("Relu must follow a Conv or an Add")),
                    }
                    // The layer now ends in the activation: its value before is gone.
                    names.remove(&n.input[0]);
                    names.insert(out, x);
                }
                "Clip" => {
                    let x = tensor(&n.input[0])?;
                    let bound = |k: usize| -> Result<Option<f32>, OnnxReadError> {
                        match n.input.get(k).filter(|s| !s.is_empty()) {
                            None => Ok(None),
                            Some(name) => Ok(init(name)?.1.first().copied()),
                        }
                    };
                    let (lo, hi) = (bound(1)?, bound(2)?);
                    let written = layers.len();
                    match layers.last_mut().map(|l| &mut l.op) {
                        Some(FloatOp::Conv(c)) if last_writes(x, written) && c.relu && lo.is_none_or(|v| v == 0.0) => {
                            c.clip = hi
                        }
                        _ => return Err(bad("Clip must follow a Conv and its Relu, with minimum 0")),
                    }
                    names.remove(&n.input[0]);
                    names.insert(out, x);
                }
                "Add" | "Concat" => {
                    let inputs = n.input.iter().map(&tensor).collect::<Result<Vec<_>, _>>()?;
                    if inputs.len() != 2 {
                        return Err(bad("takes exactly two inputs"));
                    }
                    if n.op_type == "Concat" && attr(n, "axis").is_none_or(|a| a.i != 1) {
                        return Err(bad("concatenates along the channel axis (1) only"));
                    }
                    let op = if n.op_type == "Add" {
                        FloatOp::Add { relu: false }
                    } else {
                        FloatOp::Concat
                    };
                    layers.push(FloatLayer { op, inputs });
                    names.insert(out, layers.len());
                }
                "Resize" => {
                    let x = tensor(&n.input[0])?;
                    let mode = attr(n, "mode").map(|a| String::from_utf8_lossy(&a.s).into_owned());
                    let scales = n.input.get(2).map(|s| init(s)).transpose()?.map(|(_, v)| v);
                    if mode.as_deref() != Some("nearest") || scales.as_deref() != Some(&[1.0, 1.0, 2.0, 2.0][..]) {
                        return Err(bad("only nearest-neighbour upsampling by 2 (scales 1, 1, 2, 2)"));
                    }
                    layers.push(FloatLayer {
                        op: FloatOp::Upsample2,
                        inputs: vec![x],
                    });
                    names.insert(out, layers.len());
                }
                "Softmax" => {}
                _ => return Err(bad("not an operator of the ThermoQC networks")),
            }
        }
        if !layers.iter().any(|l| matches!(l.op, FloatOp::Conv(_))) {
            return Err(OnnxReadError::NoConv);
        }
        let output = |name: &str| {
            g.output
                .iter()
                .any(|o| o.name == name)
                .then(|| names.get(name).copied())
                .flatten()
        };
        let logits = output(super::onnx::LOGITS).ok_or_else(|| OnnxReadError::Node {
            index: g.node.len(),
            op: "output".into(),
            what: format!("no `{}` output", super::onnx::LOGITS),
        })?;
        let mut outputs = vec![logits];
        outputs.extend(output(super::onnx::DEPTH));
        let first_conv_channels = layers.iter().find_map(|l| match &l.op {
            FloatOp::Conv(c) if l.inputs == [0] => Some(c.in_channels),
            _ => None,
        });
        Ok(FloatNet {
            in_channels: in_channels.or(first_conv_channels).unwrap_or(0),
            layers,
            outputs,
        })
    }
}

/// TFLite-"same" convolution of a CHW tensor (the straightforward reference).
fn conv_same(l: &FloatConv, x: &[f32], h: usize, w: usize) -> Vec<f32> {
    let (k, s) = (l.kernel, l.stride.max(1));
    let (oh, ow) = (same_out(h, s), same_out(w, s));
    let (pt, pl) = (same_padding(h, k, s).0 as isize, same_padding(w, k, s).0 as isize);
    let (px, opx) = (h * w, oh * ow);
    let mut y = vec![0.0f32; l.out_channels * opx];
    for o in 0..l.out_channels {
        let plane = &mut y[o * opx..(o + 1) * opx];
        plane.fill(l.bias[o]);
        for i in 0..l.in_channels {
            let src = &x[i * px..(i + 1) * px];
            for ky in 0..k {
                for kx in 0..k {
                    let wv = l.weight[((o * l.in_channels + i) * k + ky) * k + kx];
                    for yy in 0..oh {
                        let sy = (yy * s) as isize + ky as isize - pt;
                        if sy < 0 || sy >= h as isize {
                            continue;
                        }
                        let row = &src[sy as usize * w..(sy as usize + 1) * w];
                        let dst = &mut plane[yy * ow..(yy + 1) * ow];
                        for (xx, d) in dst.iter_mut().enumerate() {
                            let sx = (xx * s) as isize + kx as isize - pl;
                            if sx >= 0 && sx < w as isize {
                                *d += wv * row[sx as usize];
                            }
                        }
                    }
                }
            }
        }
        for v in plane.iter_mut() {
            if l.relu {
                *v = v.max(0.0);
            }
            if let Some(c) = l.clip {
                *v = v.min(c);
            }
        }
    }
    y
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 1×1 class head on 2 input channels: logits = W·x + b, 3 classes.
    fn head(relu: bool) -> FloatNet {
        let weight = vec![0.5, -1.0, 1.5, 0.25, -0.75, 2.0];
        FloatNet::chain(vec![FloatConv::new(2, 3, 1, weight, vec![0.1, -0.2, 0.3], relu)])
    }

    fn argmax(l: &[f32]) -> usize {
        (1..l.len()).fold(0, |best, c| if l[c] > l[best] { c } else { best })
    }

    #[test]
    fn a_decision_margin_is_the_sound_logits_lead_the_argmax_applies() {
        let plain = head(false);
        let margin = 0.8;
        let strict = plain.clone().with_decision_margin(margin).unwrap();
        // A grid of pixels, each classified by both.
        let mut calls = [0usize; 2];
        for i in 0..41 {
            for j in 0..41 {
                let x = [i as f32 / 10.0 - 2.0, j as f32 / 10.0 - 2.0];
                let l = plain.forward(&x, 1, 1);
                let best_defect = if l[1] >= l[2] { 1 } else { 2 };
                if (l[best_defect] - l[0] - margin).abs() < 1e-4 {
                    continue; // on the boundary, float rounding decides
                }
                let want = if l[best_defect] > l[0] + margin { best_defect } else { 0 };
                assert_eq!(argmax(&strict.forward(&x, 1, 1)), want, "x = {x:?}, logits {l:?}");
                calls[0] += (argmax(&l) != 0) as usize;
                calls[1] += (want != 0) as usize;
            }
        }
        assert!(
            calls[1] < calls[0] && calls[1] > 0,
            "defect calls plain / strict: {calls:?}"
        );
        assert_eq!(plain.clone().with_decision_margin(0.0).unwrap(), plain);
    }

    #[test]
    fn a_margin_needs_a_plain_head_and_a_sane_value() {
        assert_eq!(head(true).with_decision_margin(1.0), Err(MarginError::Head));
        assert_eq!(head(false).with_decision_margin(-1.0), Err(MarginError::Value(-1.0)));
        assert!(matches!(
            head(false).with_decision_margin(f32::NAN),
            Err(MarginError::Value(_))
        ));
    }
}
