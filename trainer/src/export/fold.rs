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
