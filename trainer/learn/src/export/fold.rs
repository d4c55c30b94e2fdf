//! The trained network as plain float layers with batch normalization folded into the
//! convolutions — what ONNX export and quantization start from — and a direct float
//! forward pass over them (the calibration reference).
//!
//! Folding: `y = γ·(conv(x) + b − μ)/√(σ² + ε) + β` becomes a convolution with weights
//! `w·γ/√(σ² + ε)` per output channel and bias `(b − μ)·γ/√(σ² + ε) + β`.

use burn::tensor::backend::Backend;

use crate::cnn::ThermoNet;

/// One float convolution, same padding, stride 1.
#[derive(Clone, Debug, PartialEq)]
pub struct FloatConv {
    pub in_channels: usize,
    pub out_channels: usize,
    pub kernel: usize,
    /// OIHW.
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
    pub relu: bool,
}

/// The folded network.
#[derive(Clone, Debug, PartialEq)]
pub struct FloatNet {
    pub layers: Vec<FloatConv>,
}

fn values<B: Backend, const D: usize>(t: burn::tensor::Tensor<B, D>) -> Vec<f32> {
    t.into_data().iter::<f32>().collect()
}

impl FloatNet {
    /// Folds the batch norms of a trained (inference-mode) network.
    pub fn from_burn<B: Backend>(net: &ThermoNet<B>) -> FloatNet {
        let (convs, head) = net.layers();
        let mut layers = Vec::new();
        for (conv, bn) in convs {
            let [o, i, k, _] = conv.weight.dims();
            let w = values(conv.weight.val());
            let b = conv.bias.as_ref().map_or(vec![0.0; o], |b| values(b.val()));
            let Some(bn) = bn else {
                layers.push(FloatConv {
                    in_channels: i,
                    out_channels: o,
                    kernel: k,
                    weight: w,
                    bias: b,
                    relu: true,
                });
                continue;
            };
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
            layers.push(FloatConv {
                in_channels: i,
                out_channels: o,
                kernel: k,
                weight,
                bias,
                relu: true,
            });
        }
        let [o, i, k, _] = head.weight.dims();
        layers.push(FloatConv {
            in_channels: i,
            out_channels: o,
            kernel: k,
            weight: values(head.weight.val()),
            bias: head.bias.as_ref().map_or(vec![0.0; o], |b| values(b.val())),
            relu: false,
        });
        FloatNet { layers }
    }

    pub fn in_channels(&self) -> usize {
        self.layers.first().map_or(0, |l| l.in_channels)
    }

    pub fn parameters(&self) -> usize {
        self.layers.iter().map(|l| l.weight.len() + l.bias.len()).sum()
    }

    /// Multiply-accumulates for one `height`×`width` image.
    pub fn macs(&self, height: usize, width: usize) -> usize {
        self.layers.iter().map(|l| l.weight.len() * height * width).sum()
    }

    /// Every activation of a CHW input: `out[0]` is the input, `out[i+1]` layer i's output.
    pub fn activations(&self, input: &[f32], height: usize, width: usize) -> Vec<Vec<f32>> {
        let mut out = vec![input.to_vec()];
        for l in &self.layers {
            let next = conv_same(l, out.last().map_or(&[][..], Vec::as_slice), height, width);
            out.push(next);
        }
        out
    }

    /// The logits (CHW) of a CHW input.
    pub fn forward(&self, input: &[f32], height: usize, width: usize) -> Vec<f32> {
        self.activations(input, height, width).pop().unwrap_or_default()
    }
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
    /// Reads a float ONNX file of the shape `trainer` exports — Conv (→ Relu) repeated,
    /// Softmax at the end — back into float layers; anything else is refused by name.
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
        let mut layers: Vec<FloatConv> = Vec::new();
        for (index, n) in g.node.iter().enumerate() {
            let bad = |what: &str| OnnxReadError::Node {
                index,
                op: n.op_type.clone(),
                what: what.into(),
            };
            match n.op_type.as_str() {
                "Conv" => {
                    if n.input.len() != 3 {
                        return Err(bad("expected input, weight and bias"));
                    }
                    let (wd, weight) = init(&n.input[1])?;
                    let (bd, bias) = init(&n.input[2])?;
                    if wd.len() != 4 || wd[2] != wd[3] || wd[2] % 2 == 0 || bd != [wd[0]] {
                        return Err(bad(&format!("weight {wd:?} / bias {bd:?}: needs an odd square kernel")));
                    }
                    layers.push(FloatConv {
                        in_channels: wd[1],
                        out_channels: wd[0],
                        kernel: wd[2],
                        weight,
                        bias,
                        relu: false,
                    });
                }
                "Relu" => match layers.last_mut() {
                    Some(l) if !l.relu => l.relu = true,
                    _ => return Err(bad("Relu must follow a Conv")),
                },
                "Softmax" => {}
                _ => return Err(bad("not an operator of the ThermoQC network")),
            }
        }
        if layers.is_empty() {
            return Err(OnnxReadError::NoConv);
        }
        Ok(FloatNet { layers })
    }
}

/// Zero-padded same convolution, stride 1, CHW.
fn conv_same(l: &FloatConv, x: &[f32], h: usize, w: usize) -> Vec<f32> {
    let (k, pad) = (l.kernel, (l.kernel - 1) / 2);
    let px = h * w;
    let mut y = vec![0.0f32; l.out_channels * px];
    for o in 0..l.out_channels {
        let plane = &mut y[o * px..(o + 1) * px];
        plane.fill(l.bias[o]);
        for i in 0..l.in_channels {
            let src = &x[i * px..(i + 1) * px];
            for ky in 0..k {
                for kx in 0..k {
                    let wv = l.weight[((o * l.in_channels + i) * k + ky) * k + kx];
                    let dy = ky as isize - pad as isize;
                    let dx = kx as isize - pad as isize;
                    for yy in 0..h {
                        let sy = yy as isize + dy;
                        if sy < 0 || sy >= h as isize {
                            continue;
                        }
                        let (x0, x1) = ((-dx).max(0) as usize, (w as isize - dx.max(0)) as usize);
                        let row = &src[sy as usize * w..(sy as usize + 1) * w];
                        let dst = &mut plane[yy * w..(yy + 1) * w];
                        for xx in x0..x1 {
                            dst[xx] += wv * row[(xx as isize + dx) as usize];
                        }
                    }
                }
            }
        }
        if l.relu {
            for v in plane.iter_mut() {
                *v = v.max(0.0);
            }
        }
    }
    y
}
