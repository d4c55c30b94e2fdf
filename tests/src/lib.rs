//! Fixtures for the cross-crate tests and for `cargo xtask`: owned models built from
//! layer specifications with seeded random weights, the reference benchmark network, and
//! the kernel test vectors the emulated device replays; [`emulator`] runs the emulated
//! station under QEMU.

pub mod emulator;
pub mod faults;
pub mod graph;

use tqc_shared::blob;
use tqc_shared::engine::Engine;
use tqc_shared::kernels::mac::Portable;
use tqc_shared::model::{InputSpec, ModelError, Op, QuantParams};
use tqc_shared::planner::Mode;
use tqc_shared::quant::Activation;
use tqc_shared::tensor::{Padding, Shape};
use tqc_shared::vectors::Case;

/// SplitMix64: tiny, seedable, identical everywhere.
#[derive(Clone, Debug)]
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next_u64() % (hi - lo + 1) as u64) as i64
    }
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    pub fn bytes(&mut self, n: usize) -> Vec<i8> {
        (0..n).map(|_| self.range(-128, 127) as i8).collect()
    }
}

pub use tqc_shared::owned::{OwnedLayer, OwnedModel};

/// What to put in a layer; weights and quantization are drawn at random.
#[derive(Clone, Copy, Debug)]
pub enum Spec {
    Conv {
        k: u8,
        stride: u8,
        padding: Padding,
        out: u16,
        act: Activation,
    },
    ConvRect {
        kh: u8,
        kw: u8,
        stride: u8,
        padding: Padding,
        out: u16,
        act: Activation,
    },
    Depthwise {
        k: u8,
        stride: u8,
        padding: Padding,
        act: Activation,
    },
    MaxPool {
        k: u8,
        stride: u8,
        padding: Padding,
    },
    AvgPool {
        k: u8,
        stride: u8,
        padding: Padding,
    },
    FullyConnected {
        out: u16,
        act: Activation,
    },
    Softmax,
}

/// Random int8 weights of `channels` filters of `k_len` terms, their per-channel scales
/// and int32 biases (little-endian bytes, as a blob stores them). Scales keep a product
/// of `k_len` terms the size of one input.
pub fn random_weights(rng: &mut Rng, channels: usize, k_len: usize) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let weights: Vec<u8> = (0..channels * k_len)
        .map(|_| rng.range(-127, 127) as i8 as u8)
        .collect();
    let mut weight_scales = Vec::new();
    let mut bias = Vec::new();
    for _ in 0..channels {
        // Products of k_len terms: scale weights by 1/√k so outputs stay O(inputs).
        let s_w = (0.5 + rng.unit()) / (127.0 * (k_len as f64).sqrt()) * 8.0;
        weight_scales.extend_from_slice(&(s_w as f32).to_le_bytes());
        let b = rng.range(-2000, 2000) as i32;
        bias.extend_from_slice(&b.to_le_bytes());
    }
    (weights, weight_scales, bias)
}

/// Builds a model with seeded random weights. Scales keep activations in a useful range
/// (neither all saturated nor all zero), and zero points are random, extremes included.
pub fn random_model(name: &str, input: Shape, specs: &[Spec], seed: u64) -> Result<OwnedModel, ModelError> {
    let mut rng = Rng(seed);
    let mut zp = |rng: &mut Rng| -> i8 {
        match rng.range(0, 5) {
            0 => -128,
            1 => 127,
            _ => rng.range(-100, 100) as i8,
        }
    };
    let in_quant = QuantParams {
        scale: 1.0 / 32.0,
        zero_point: zp(&mut rng),
    };
    let mut shape = input;
    let mut quant = in_quant;
    let mut layers = Vec::new();
    for spec in specs {
        let act_out = |rng: &mut Rng, zp: &mut dyn FnMut(&mut Rng) -> i8| QuantParams {
            scale: (1.0 / 32.0) * (0.5 + rng.unit() as f32),
            zero_point: zp(rng),
        };
        let (op, activation, channels, k_len, _) = match *spec {
            Spec::Conv {
                k,
                stride,
                padding,
                out,
                act,
            } => (
                Op::Conv2d {
                    kernel_h: k,
                    kernel_w: k,
                    stride,
                    padding,
                    out_channels: out,
                },
                act,
                out as usize,
                k as usize * k as usize * shape.channels as usize,
                out,
            ),
            Spec::ConvRect {
                kh,
                kw,
                stride,
                padding,
                out,
                act,
            } => (
                Op::Conv2d {
                    kernel_h: kh,
                    kernel_w: kw,
                    stride,
                    padding,
                    out_channels: out,
                },
                act,
                out as usize,
                kh as usize * kw as usize * shape.channels as usize,
                out,
            ),
            Spec::Depthwise {
                k,
                stride,
                padding,
                act,
            } => (
                Op::DepthwiseConv2d {
                    kernel_h: k,
                    kernel_w: k,
                    stride,
                    padding,
                },
                act,
                shape.channels as usize,
                k as usize * k as usize,
                shape.channels,
            ),
            Spec::MaxPool { k, stride, padding } => (
                Op::MaxPool {
                    kernel_h: k,
                    kernel_w: k,
                    stride,
                    padding,
                },
                Activation::None,
                0,
                0,
                shape.channels,
            ),
            Spec::AvgPool { k, stride, padding } => (
                Op::AvgPool {
                    kernel_h: k,
                    kernel_w: k,
                    stride,
                    padding,
                },
                Activation::None,
                0,
                0,
                shape.channels,
            ),
            Spec::FullyConnected { out, act } => (
                Op::FullyConnected { out_features: out },
                act,
                out as usize,
                shape.len(),
                out,
            ),
            Spec::Softmax => (Op::Softmax { beta: 1.0 }, Activation::None, 0, 0, shape.channels),
        };
        let output = match op {
            Op::MaxPool { .. } | Op::AvgPool { .. } => quant,
            Op::Softmax { .. } => QuantParams {
                scale: 1.0 / 256.0,
                zero_point: -128,
            },
            _ => act_out(&mut rng, &mut zp),
        };
        let (weights, weight_scales, bias) = random_weights(&mut rng, channels, k_len);
        layers.push(OwnedLayer {
            inputs: vec![layers.len() as u8],
            op,
            activation,
            output,
            weights,
            weight_scales,
            bias,
        });
        // Next shape: let the validator compute it.
        let partial = OwnedModel {
            name: name.into(),
            input: InputSpec {
                shape: input,
                quant: in_quant,
                features: None,
            },
            classes: vec![],
            outputs: vec![layers.len() as u8],
            layers: layers.clone(),
        };
        let desc = partial.desc();
        let model = tqc_shared::model::Model::new(desc)?;
        shape = model.output_shape();
        quant = output;
    }
    Ok(OwnedModel {
        name: name.into(),
        input: InputSpec {
            shape: input,
            quant: in_quant,
            features: None,
        },
        classes: vec![],
        outputs: vec![layers.len() as u8],
        layers,
    })
}

/// The reference network of the benchmark: every kernel at thermal-image scale
/// (120×160 input, 8 feature channels).
pub fn reference_network_specs() -> Vec<Spec> {
    use Activation::*;
    use Padding::*;
    vec![
        Spec::Conv {
            k: 3,
            stride: 1,
            padding: Same,
            out: 16,
            act: Relu,
        },
        Spec::Conv {
            k: 3,
            stride: 2,
            padding: Same,
            out: 32,
            act: Relu,
        },
        Spec::Depthwise {
            k: 3,
            stride: 1,
            padding: Same,
            act: Relu6,
        },
        Spec::Conv {
            k: 1,
            stride: 1,
            padding: Valid,
            out: 32,
            act: Relu,
        },
        Spec::MaxPool {
            k: 2,
            stride: 2,
            padding: Valid,
        },
        Spec::AvgPool {
            k: 2,
            stride: 2,
            padding: Valid,
        },
        Spec::FullyConnected { out: 3, act: None },
        Spec::Softmax,
    ]
}

pub fn reference_network(height: u16, width: u16, seed: u64) -> OwnedModel {
    let mut m = random_model(
        "reference",
        Shape::new(height, width, 8),
        &reference_network_specs(),
        seed,
    )
    .expect("the reference network is valid at any size of at least 8×8");
    m.classes = vec!["sound".into(), "subsurface".into(), "surface".into()];
    m
}

/// Runs a blob on the host (portable backend, streaming) and returns its outputs, one
/// after the other in the model's order.
pub fn run_host(blob_bytes: &[u8], input: &[i8]) -> Result<Vec<i8>, String> {
    let model = blob::decode(blob_bytes).map_err(|e| e.to_string())?;
    // u64 storage gives the engine its 8-byte alignment.
    let mut arena = vec![0u64; model.desc.arena_bytes as usize / 8 + 1];
    let bytes: &mut [u8] = bytemuck::cast_slice_mut(&mut arena);
    let mut engine = Engine::new(&model, bytes, Mode::Streaming).map_err(|e| e.to_string())?;
    let layout = tqc_shared::vectors::OutputLayout::of(&model);
    let mut out = vec![0i8; layout.total()];
    engine
        .run_streaming_with::<Portable>(input, &mut |k, y, row| {
            if let Some(dst) = layout.row(k, y).and_then(|r| out.get_mut(r)) {
                dst.copy_from_slice(row)
            }
        })
        .map_err(|e| e.to_string())?;
    Ok(out)
}

/// The kernel test cases: every kernel on shapes that exercise its tails (odd channel
/// counts, odd widths, K not a multiple of 4), padding and strides, extreme zero points,
/// the reference networks at reduced size and random graphs.
pub fn kernel_cases(seed: u64) -> Vec<(String, Vec<u8>, Vec<i8>)> {
    use Activation::*;
    use Padding::*;
    let mut rng = Rng(seed);
    let mut cases = Vec::new();
    let mut add = |name: String, input: Shape, specs: &[Spec], rng: &mut Rng| {
        let s = rng.next_u64();
        let model = random_model(&name, input, specs, s).expect("kernel case is a valid model");
        let blob = model.to_blob().expect("valid case");
        let x = rng.bytes(input.len());
        cases.push((name, blob, x));
    };
    for (i, &(h, w, cin, cout, k, stride, pad)) in [
        (9u16, 11u16, 8u16, 16u16, 3u8, 1u8, Same),
        (10, 13, 3, 5, 3, 2, Same),
        (7, 7, 5, 7, 5, 1, Valid),
        (12, 9, 16, 32, 3, 2, Valid),
        (6, 5, 1, 3, 2, 1, Same),
        (5, 17, 7, 9, 1, 1, Valid),
        (8, 8, 32, 32, 1, 1, Valid),
        (9, 9, 4, 6, 1, 2, Same),
    ]
    .iter()
    .enumerate()
    {
        add(
            format!("conv{i}_{k}x{k}s{stride}_{cin}to{cout}"),
            Shape::new(h, w, cin),
            &[Spec::Conv {
                k,
                stride,
                padding: pad,
                out: cout,
                act: Relu,
            }],
            &mut rng,
        );
    }
    add(
        "conv_rect_1x3".into(),
        Shape::new(6, 10, 6),
        &[Spec::ConvRect {
            kh: 1,
            kw: 3,
            stride: 1,
            padding: Same,
            out: 4,
            act: None,
        }],
        &mut rng,
    );
    for (i, &(h, w, c, k, stride, pad)) in [
        (9u16, 10u16, 32u16, 3u8, 1u8, Same),
        (11, 7, 5, 3, 2, Same),
        (6, 6, 3, 2, 1, Valid),
    ]
    .iter()
    .enumerate()
    {
        add(
            format!("depthwise{i}"),
            Shape::new(h, w, c),
            &[Spec::Depthwise {
                k,
                stride,
                padding: pad,
                act: Relu6,
            }],
            &mut rng,
        );
    }
    add(
        "maxpool".into(),
        Shape::new(9, 11, 5),
        &[Spec::MaxPool {
            k: 3,
            stride: 2,
            padding: Same,
        }],
        &mut rng,
    );
    add(
        "avgpool".into(),
        Shape::new(8, 10, 6),
        &[Spec::AvgPool {
            k: 3,
            stride: 2,
            padding: Same,
        }],
        &mut rng,
    );
    add(
        "fully_connected".into(),
        Shape::new(3, 5, 7),
        &[Spec::FullyConnected { out: 9, act: None }],
        &mut rng,
    );
    add("softmax".into(), Shape::new(4, 6, 3), &[Spec::Softmax], &mut rng);
    let s = rng.next_u64();
    let small = reference_network(24, 32, s);
    let x = rng.bytes(small.input.shape.len());
    cases.push((
        "reference_network_24x32".into(),
        small.to_blob().expect("valid reference"),
        x,
    ));
    // The graph ops alone (each join reads tensors of different quantization where the
    // op allows it), then whole graphs.
    let mut graph_case = |name: &str, g: graph::GraphBuilder, outputs: &[usize], rng: &mut Rng| {
        let model = g.build(name, outputs, rng.next_u64()).expect("valid graph case");
        let x = rng.bytes(model.input.shape.len());
        cases.push((name.into(), model.to_blob().expect("valid graph case"), x));
    };
    let mut g = graph::GraphBuilder::new(Shape::new(7, 9, 5));
    let t = g.conv(0, 1, 1, Valid, 5, None).expect("fits");
    let t = g.add(t, 0, Relu);
    graph_case("add_relu", g, &[t], &mut rng);
    let mut g = graph::GraphBuilder::new(Shape::new(6, 7, 3));
    let t = g.conv(0, 3, 1, Same, 5, Relu).expect("fits");
    let t = g.concat(t, 0);
    graph_case("concat", g, &[t], &mut rng);
    let mut g = graph::GraphBuilder::new(Shape::new(5, 7, 6));
    let t = g.upsample(0);
    graph_case("upsample2", g, &[t], &mut rng);
    let s = rng.next_u64();
    let small = graph::encoder_decoder(24, 32, s);
    let x = rng.bytes(small.input.shape.len());
    cases.push((
        "encoder_decoder_24x32".into(),
        small.to_blob().expect("valid encoder–decoder"),
        x,
    ));
    let mut graphs = 0;
    while graphs < 8 {
        if let Some(m) = graph::random_graph(rng.next_u64(), 14) {
            let x = rng.bytes(m.input.shape.len());
            cases.push((format!("random_graph{graphs}"), m.to_blob().expect("valid graph"), x));
            graphs += 1;
        }
    }
    cases
}

/// Encodes the cases with their host-computed outputs as a vector file.
pub fn vector_file(seed: u64) -> Result<Vec<u8>, String> {
    let mut file = Vec::new();
    for (name, blob_bytes, input) in kernel_cases(seed) {
        let expected = run_host(&blob_bytes, &input)?;
        let case = Case {
            name: &name,
            blob: &blob_bytes,
            input: bytemuck_i8(&input),
            expected: bytemuck_i8(&expected),
        };
        let mut buf = vec![0u8; blob_bytes.len() + input.len() + expected.len() + name.len() + 64];
        let n = postcard::to_slice(&case, &mut buf).map_err(|e| e.to_string())?.len();
        file.extend_from_slice(&(n as u32).to_le_bytes());
        file.extend_from_slice(&buf[..n]);
    }
    Ok(file)
}

fn bytemuck_i8(x: &[i8]) -> &[u8] {
    bytemuck::cast_slice(x)
}
