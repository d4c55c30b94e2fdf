//! Every kernel against a plain i64 reference on random shapes, zero points at the
//! extremes, saturating requantization and every stride/padding combination.

use proptest::prelude::*;
use tqc_shared::kernels::conv::{ConvParams, conv2d};
use tqc_shared::kernels::depthwise::{DepthwiseParams, depthwise_conv2d};
use tqc_shared::kernels::fully_connected::{FullyConnectedParams, fully_connected};
use tqc_shared::kernels::mac::Portable;
use tqc_shared::kernels::pool::{PoolKind, PoolParams, pool2d};
use tqc_shared::kernels::softmax::{SoftmaxParams, softmax};
use tqc_shared::kernels::{ChannelQuant, Window, argmax};
use tqc_shared::quant::{Clamp, multiply_by_quantized_multiplier, quantize_multiplier};
use tqc_shared::tensor::{Padding, Shape, output_dim};

fn requant_ref(acc: i64, q: ChannelQuant, zp: i32, clamp: Clamp) -> i8 {
    let acc = (acc + q.bias as i64) as i32;
    let v = multiply_by_quantized_multiplier(acc, q.requant) as i64 + zp as i64;
    v.clamp(clamp.min as i64, clamp.max as i64) as i8
}

/// Straight from the definition: zero-point-corrected products over the in-bounds window.
fn conv_ref(p: &ConvParams, x: &[i8], w: &[i8], q: &[ChannelQuant], depthwise: bool) -> Vec<i8> {
    let (h, wd, cin) = (p.input.height as i64, p.input.width as i64, p.input.channels as usize);
    let cout = p.output.channels as usize;
    let mut out = vec![0i8; p.output.len()];
    for oy in 0..p.output.height as i64 {
        for ox in 0..p.output.width as i64 {
            for oc in 0..cout {
                let mut acc: i64 = 0;
                for ky in 0..p.kernel_h as i64 {
                    for kx in 0..p.kernel_w as i64 {
                        let iy = oy * p.stride as i64 + ky - p.pad_top as i64;
                        let ix = ox * p.stride as i64 + kx - p.pad_left as i64;
                        if iy < 0 || iy >= h || ix < 0 || ix >= wd {
                            continue;
                        }
                        let px = ((iy * wd + ix) as usize) * cin;
                        if depthwise {
                            let wv = w[((ky * p.kernel_w as i64 + kx) as usize) * cout + oc] as i64;
                            acc += (x[px + oc] as i64 - p.input_zero_point as i64) * wv;
                        } else {
                            for ci in 0..cin {
                                let widx = ((oc * p.kernel_h as usize + ky as usize) * p.kernel_w as usize
                                    + kx as usize)
                                    * cin
                                    + ci;
                                acc += (x[px + ci] as i64 - p.input_zero_point as i64) * w[widx] as i64;
                            }
                        }
                    }
                }
                out[((oy * p.output.width as i64 + ox) as usize) * cout + oc] =
                    requant_ref(acc, q[oc], p.output_zero_point, p.clamp);
            }
        }
    }
    out
}

fn zero_point() -> impl Strategy<Value = i32> {
    prop_oneof![Just(-128), Just(127), Just(0), -128i32..=127]
}

fn clamp() -> impl Strategy<Value = Clamp> {
    prop_oneof![
        Just(Clamp::FULL),
        (-128i8..=0, 0i8..=127).prop_map(|(min, max)| Clamp { min, max })
    ]
}

fn channel_quant(n: usize) -> impl Strategy<Value = Vec<ChannelQuant>> {
    // Scales from tiny to large enough to saturate; biases up to ±2^20.
    proptest::collection::vec(
        (
            -(1i32 << 20)..(1 << 20),
            prop_oneof![1e-5f64..1e-2, 1e-2f64..0.9, 0.9f64..4.0],
        ),
        n,
    )
    .prop_map(|v| {
        v.into_iter()
            .map(|(bias, s)| ChannelQuant {
                bias,
                requant: quantize_multiplier(s).unwrap(),
            })
            .collect()
    })
}

fn bytes(n: usize) -> impl Strategy<Value = Vec<i8>> {
    proptest::collection::vec(any::<i8>(), n)
}

fn weights(n: usize) -> impl Strategy<Value = Vec<i8>> {
    proptest::collection::vec(-127i8..=127, n)
}

#[derive(Debug, Clone)]
struct ConvCase {
    p: ConvParams,
    x: Vec<i8>,
    w: Vec<i8>,
    q: Vec<ChannelQuant>,
}

fn conv_case(depthwise: bool) -> impl Strategy<Value = ConvCase> {
    (
        1u16..14,
        1u16..14,
        1u16..10,
        1u16..10,
        1u8..5,
        1u8..5,
        1u8..3,
        prop_oneof![Just(Padding::Same), Just(Padding::Valid)],
    )
        .prop_filter_map("window larger than input", move |(h, w, cin, cout, kh, kw, s, pad)| {
            let (oh, pt) = output_dim(h, kh, s, pad)?;
            let (ow, pl) = output_dim(w, kw, s, pad)?;
            let cout = if depthwise { cin } else { cout };
            Some((Shape::new(h, w, cin), Shape::new(oh, ow, cout), kh, kw, s, pt, pl))
        })
        .prop_flat_map(move |(input, output, kh, kw, s, pt, pl)| {
            let k = if depthwise {
                kh as usize * kw as usize * output.channels as usize
            } else {
                output.channels as usize * kh as usize * kw as usize * input.channels as usize
            };
            (
                bytes(input.len()),
                weights(k),
                channel_quant(output.channels as usize),
                zero_point(),
                zero_point(),
                clamp(),
            )
                .prop_map(move |(x, w, q, zi, zo, clamp)| ConvCase {
                    p: ConvParams {
                        input,
                        output,
                        kernel_h: kh,
                        kernel_w: kw,
                        stride: s,
                        pad_top: pt,
                        pad_left: pl,
                        input_zero_point: zi,
                        output_zero_point: zo,
                        clamp,
                    },
                    x,
                    w,
                    q,
                })
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn conv2d_matches_reference(c in conv_case(false)) {
        let (g, cols, wq) = c.p.scratch_len();
        let mut out = vec![0i8; c.p.output.len()];
        conv2d::<Portable, _>(&c.p, &c.w, c.q.as_slice(), &c.x, &mut out, &mut vec![0; g], &mut vec![0; cols], &mut vec![0; wq]).unwrap();
        prop_assert_eq!(out, conv_ref(&c.p, &c.x, &c.w, &c.q, false));
    }

    #[test]
    fn depthwise_matches_reference(c in conv_case(true)) {
        let p = DepthwiseParams {
            input: c.p.input, output: c.p.output, kernel_h: c.p.kernel_h, kernel_w: c.p.kernel_w,
            stride: c.p.stride, pad_top: c.p.pad_top, pad_left: c.p.pad_left,
            input_zero_point: c.p.input_zero_point, output_zero_point: c.p.output_zero_point, clamp: c.p.clamp,
        };
        let mut out = vec![0i8; p.output.len()];
        depthwise_conv2d::<Portable, _>(&p, &c.w, c.q.as_slice(), &c.x, &mut out, &mut vec![0; p.scratch_len()]).unwrap();
        prop_assert_eq!(out, conv_ref(&c.p, &c.x, &c.w, &c.q, true));
    }

    #[test]
    fn pool_matches_reference(c in conv_case(true), avg in any::<bool>()) {
        let p = PoolParams {
            kind: if avg { PoolKind::Average } else { PoolKind::Max },
            input: c.p.input, output: c.p.output,
            window: Window { kernel_h: c.p.kernel_h, kernel_w: c.p.kernel_w, stride: c.p.stride, pad_top: c.p.pad_top, pad_left: c.p.pad_left },
            clamp: c.p.clamp,
        };
        let mut out = vec![0i8; p.output.len()];
        pool2d(&p, &c.x, &mut out).unwrap();
        let (h, w, ch) = (p.input.height as i64, p.input.width as i64, p.input.channels as usize);
        let mut want = vec![0i8; p.output.len()];
        for oy in 0..p.output.height as i64 {
            for ox in 0..p.output.width as i64 {
                for c_ in 0..ch {
                    let mut vals = vec![];
                    for ky in 0..p.window.kernel_h as i64 {
                        for kx in 0..p.window.kernel_w as i64 {
                            let iy = oy * p.window.stride as i64 + ky - p.window.pad_top as i64;
                            let ix = ox * p.window.stride as i64 + kx - p.window.pad_left as i64;
                            if iy >= 0 && iy < h && ix >= 0 && ix < w {
                                vals.push(c.x[((iy * w + ix) as usize) * ch + c_] as f64);
                            }
                        }
                    }
                    let v = if avg {
                        // Round half away from zero in f64.
                        let m = vals.iter().sum::<f64>() / vals.len() as f64;
                        m.round()
                    } else {
                        vals.iter().cloned().fold(f64::MIN, f64::max)
                    };
                    want[((oy * p.output.width as i64 + ox) as usize) * ch + c_] =
                        v.clamp(p.clamp.min as f64, p.clamp.max as f64) as i8;
                }
            }
        }
        prop_assert_eq!(out, want);
    }

    #[test]
    fn fully_connected_matches_reference(
        (n_in, n_out, x, w, q) in (1usize..300, 1usize..12).prop_flat_map(|(i, o)| (Just(i), Just(o), bytes(i), weights(i * o), channel_quant(o))),
        zi in zero_point(), zo in zero_point(), clamp in clamp(),
    ) {
        let p = FullyConnectedParams { in_features: n_in, out_features: n_out, input_zero_point: zi, output_zero_point: zo, clamp };
        let mut out = vec![0i8; n_out];
        fully_connected::<Portable, _>(&p, &w, q.as_slice(), &x, &mut out, &mut vec![0; n_out], &mut vec![0; n_in]).unwrap();
        let want: Vec<i8> = (0..n_out).map(|o| {
            let acc: i64 = (0..n_in).map(|i| (x[i] as i64 - zi as i64) * w[o * n_in + i] as i64).sum();
            requant_ref(acc, q[o], zo, clamp)
        }).collect();
        prop_assert_eq!(out, want);
    }

    #[test]
    fn softmax_close_to_float(depth in 1usize..12, x in bytes(60), scale in 0.01f32..0.5, beta in 0.5f32..2.0) {
        let n = (x.len() / depth) * depth;
        let x = &x[..n];
        let p = SoftmaxParams::new(beta, scale).unwrap();
        let mut out = vec![0i8; n];
        softmax(&p, depth, x, &mut out).unwrap();
        for (xs, ys) in x.chunks(depth).zip(out.chunks(depth)) {
            let m = *xs.iter().max().unwrap() as f64;
            let e: Vec<f64> = xs.iter().map(|&v| ((v as f64 - m) * scale as f64 * beta as f64).exp()).collect();
            let s: f64 = e.iter().sum();
            for (ei, &y) in e.iter().zip(ys) {
                let want = (ei / s * 256.0 - 128.0).round().clamp(-128.0, 127.0);
                prop_assert!((y as f64 - want).abs() <= 1.0, "softmax {:?} → {:?}, want ≈{}", xs, ys, want);
            }
        }
    }

    #[test]
    fn argmax_is_first_maximum(x in proptest::collection::vec(any::<i8>(), 1..20)) {
        let i = argmax(&x).unwrap();
        let m = *x.iter().max().unwrap();
        prop_assert_eq!(x[i], m);
        prop_assert!(x[..i].iter().all(|&v| v < m));
    }
}

#[test]
fn softmax_fixed_point_values() {
    // Values traced by hand through TFLM's reference algorithm (beta 1, scale 1/16):
    // equal inputs share probability evenly: 1/2 → 128 − 128 = 0, 1/4 → −64.
    let p = SoftmaxParams::new(1.0, 1.0 / 16.0).unwrap();
    let mut out = [0i8; 4];
    softmax(&p, 2, &[5, 5, -7, -7], &mut out).unwrap();
    assert_eq!(out, [0, 0, 0, 0]);
    let mut out = [0i8; 4];
    softmax(&p, 4, &[3, 3, 3, 3], &mut out).unwrap();
    assert_eq!(out, [-64; 4]);
    // A dominant logit saturates at 127 (probability 1 − ε → 255 − 128), the rest at −128.
    let mut out = [0i8; 3];
    softmax(&p, 3, &[127, -128, -128], &mut out).unwrap();
    assert_eq!(out, [127, -128, -128]);
    // Parameters as TFLite derives them for beta·scale = 1/16: 2^26/16 = 2^22 → mantissa
    // 0.5 (2^30) with a left shift of 23; diff_min = −floor(31·2^26 / 2^23) = −248.
    assert_eq!(
        p,
        SoftmaxParams {
            input_multiplier: 1 << 30,
            input_left_shift: 23,
            diff_min: -248
        }
    );
}

/// TFLM's `Softmax4DQuantizedInt8ShouldMatchGolden` setting: input scale 0.1, zero point 0,
/// depth 5, output scale 1/256 and zero point −128, within 1 LSB of the quantized float
/// golden. The inputs are the first rows of that test's 4-D data.
#[test]
fn softmax_tflm_test_setting() {
    let inputs: [f32; 20] = [
        3.0, 6.0, -5.0, 4.0, -9.0, -10.0, -10.0, -8.0, 2.0, 2.0, 8.0, -5.0, -8.0, 5.0, -6.0, -8.0, 6.0, 1.0, -10.0,
        -8.0,
    ];
    let golden: [f64; 20] = [
        0.042009463,
        0.843782625,
        0.000014093,
        0.114193561,
        0.000000258,
        0.000003072,
        0.000003072,
        0.000022699,
        0.499985578,
        0.499985578,
        0.952571219,
        0.000002153,
        0.000000107,
        0.047425728,
        0.000000792,
        0.000000826,
        0.993305397,
        0.006692839,
        0.000000112,
        0.000000826,
    ];
    let q: Vec<i8> = inputs
        .iter()
        .map(|&x| tqc_shared::quant::quantize_f32(x, 0.1, 0))
        .collect();
    let p = SoftmaxParams::new(1.0, 0.1).unwrap();
    let mut out = [0i8; 20];
    softmax(&p, 5, &q, &mut out).unwrap();
    for (i, (&o, &g)) in out.iter().zip(&golden).enumerate() {
        let want = ((g * 256.0).round() - 128.0).clamp(-128.0, 127.0);
        assert!((o as f64 - want).abs() <= 1.0, "value {i}: {o}, golden {want}");
    }
}

#[test]
fn argmax_of_empty_is_none() {
    assert_eq!(argmax(&[]), None);
}
