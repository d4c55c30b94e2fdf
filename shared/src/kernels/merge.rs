//! The kernels an encoder–decoder needs beyond convolutions: `Add` of two tensors of
//! different scales, `Concat` along channels and nearest-neighbour `Upsample` by 2 —
//! each one output row at a time, like every spatial kernel, and each bit-exact with the
//! TFLite Micro reference kernel of the same op:
//!
//! - **Add** (TFLite `ADD`, int8): both inputs are re-centred (`q − zero_point`), shifted
//!   left by 20 bits, brought to a common scale (twice the larger input scale) by their
//!   own multipliers, summed, and the sum brought to the output scale by a third
//!   multiplier; then the output zero point and the fused activation's clamp. All three
//!   multipliers are below one and use `MultiplyByQuantizedMultiplierSmallerThanOneExp`:
//!   gemmlowp's saturating rounding doubling high multiply (round half up, to +∞), then a
//!   rounding right shift (round half away from zero) — the double rounding of
//!   [`crate::quant`], with no left shift.
//! - **Concat** (TFLite `CONCATENATION` along the channel axis): a copy. TFLite's int8
//!   kernel requires every input to share the output's scale and zero point (it does not
//!   requantize); [`ConcatParams::check_quant`] refuses anything else, so the exporter has
//!   to arrange it.
//! - **Upsample** (TFLite `RESIZE_NEAREST_NEIGHBOR`, factor 2, no requantization): output
//!   pixel (y, x) is input pixel (y / 2, x / 2). For an exact factor of 2 this is also what
//!   `align_corners = false` gives with and without half-pixel centres, and ONNX `Resize`
//!   (nearest, `asymmetric` + `floor`, or `half_pixel` + `round_prefer_floor`).

use super::{KernelError, expect_len, sub, sub_mut};
use crate::quant::saturating_rounding_doubling_high_mul as srdhm;
use crate::quant::{Clamp, Requant, ScaleError, quantize_multiplier, rounding_divide_by_pot};
use crate::tensor::{Rows, Shape};

/// The left shift TFLite applies to int8 `ADD` inputs before rescaling.
pub const ADD_LEFT_SHIFT: i32 = 20;

/// The integer parameters of an int8 `Add`, as TFLite Micro prepares them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AddQuant {
    pub input1_zero_point: i32,
    pub input2_zero_point: i32,
    pub output_zero_point: i32,
    pub input1: Requant,
    pub input2: Requant,
    pub output: Requant,
    pub clamp: Clamp,
}

/// Why the scales of an `Add` cannot be prepared.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AddScaleError {
    #[error("an Add scale is not a positive finite number")]
    Scale,
    #[error("an Add zero point is outside the int8 range")]
    ZeroPoint,
    #[error("the Add output scale is too small for its inputs: the output factor reaches 1")]
    OutputFactor,
    #[error(transparent)]
    Multiplier(#[from] ScaleError),
}

impl AddQuant {
    /// TFLite Micro's preparation of int8 `ADD` (`CalculateOpDataAdd`): real factors in
    /// double precision from the single-precision scales, each quantized by
    /// `QuantizeMultiplier` and required to be below one.
    pub fn prepare(
        (s1, z1): (f32, i32),
        (s2, z2): (f32, i32),
        (so, zo): (f32, i32),
        clamp: Clamp,
    ) -> Result<Self, AddScaleError> {
        if [s1, s2, so].iter().any(|s| !(s.is_finite() && *s > 0.0)) {
            return Err(AddScaleError::Scale);
        }
        if [z1, z2, zo].iter().any(|z| !(-128..=127).contains(z)) {
            return Err(AddScaleError::ZeroPoint);
        }
        let twice_max = 2.0 * f64::from(s1.max(s2));
        let real_out = twice_max / (f64::from(1u32 << ADD_LEFT_SHIFT) * f64::from(so));
        if real_out >= 1.0 {
            return Err(AddScaleError::OutputFactor);
        }
        let q = AddQuant {
            input1_zero_point: z1,
            input2_zero_point: z2,
            output_zero_point: zo,
            input1: quantize_multiplier(f64::from(s1) / twice_max)?,
            input2: quantize_multiplier(f64::from(s2) / twice_max)?,
            output: quantize_multiplier(real_out)?,
            clamp,
        };
        q.check()?;
        Ok(q)
    }

    /// What [`add_row`] relies on: zero points in int8, every factor below one (no left
    /// shift) and a right shift the rounding division supports.
    pub fn check(&self) -> Result<(), AddScaleError> {
        let zps = [self.input1_zero_point, self.input2_zero_point, self.output_zero_point];
        if zps.iter().any(|z| !(-128..=127).contains(z)) {
            return Err(AddScaleError::ZeroPoint);
        }
        for rq in [self.input1, self.input2, self.output] {
            if !rq.is_valid() || rq.shift > 0 {
                return Err(AddScaleError::OutputFactor);
            }
        }
        Ok(())
    }

    /// One output value (TFLite's `AddFunc`).
    #[inline(always)]
    pub fn add(&self, a: i8, b: i8) -> i8 {
        // |q − zp| ≤ 255 and 255 · 2^20 < 2^28: the shift cannot overflow.
        let a = (i32::from(a) - self.input1_zero_point) << ADD_LEFT_SHIFT;
        let b = (i32::from(b) - self.input2_zero_point) << ADD_LEFT_SHIFT;
        let scale = |x: i32, rq: Requant| rounding_divide_by_pot(srdhm(x, rq.multiplier), -rq.shift);
        // Each scaled input is at most half of 2^28 (factors ≤ 1/2): the sum fits.
        let sum = scale(a, self.input1) + scale(b, self.input2);
        let out = scale(sum, self.output).saturating_add(self.output_zero_point);
        // `max` then `min`, not `Ord::clamp`: no assertion on the bounds' order.
        out.max(i32::from(self.clamp.min)).min(i32::from(self.clamp.max)) as i8
    }
}

/// Output row `y` of `Add`: both inputs and the output share one shape.
pub fn add_row(
    q: &AddQuant,
    shape: Shape,
    a: &Rows<'_>,
    b: &Rows<'_>,
    y: usize,
    out: &mut [i8],
) -> Result<(), KernelError> {
    q.check()
        .map_err(|_| KernelError::Geometry("invalid Add quantization"))?;
    check_row(y, shape)?;
    let n = shape.row_len();
    expect_len("first Add input row", n, a.row_len())?;
    expect_len("second Add input row", n, b.row_len())?;
    expect_len("Add output row", n, out.len())?;
    for ((o, &x), &z) in out.iter_mut().zip(a.row(y)).zip(b.row(y)) {
        *o = q.add(x, z);
    }
    Ok(())
}

/// Channel concatenation of two tensors of one height and width.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConcatParams {
    pub first: Shape,
    pub second: Shape,
}

impl ConcatParams {
    pub fn output(&self) -> Shape {
        Shape::new(
            self.first.height,
            self.first.width,
            self.first.channels.saturating_add(self.second.channels),
        )
    }

    pub fn check(&self) -> Result<(), KernelError> {
        let (a, b) = (self.first, self.second);
        if a.height != b.height || a.width != b.width {
            return Err(KernelError::Geometry("Concat inputs differ in height or width"));
        }
        if a.is_empty() || b.is_empty() {
            return Err(KernelError::Geometry("empty tensor"));
        }
        if a.channels.checked_add(b.channels).is_none() {
            return Err(KernelError::Geometry("Concat output has too many channels"));
        }
        Ok(())
    }

    /// TFLite's int8 concatenation copies bytes: inputs and output must share scale and
    /// zero point (`(scale, zero_point)` of the two inputs and the output).
    pub fn check_quant(first: (f32, i32), second: (f32, i32), output: (f32, i32)) -> bool {
        let same = |a: (f32, i32), b: (f32, i32)| a.0.to_bits() == b.0.to_bits() && a.1 == b.1;
        same(first, output) && same(second, output)
    }
}

/// Output row `y` of `Concat`: for every pixel, the first input's channels, then the
/// second's.
pub fn concat_row(p: &ConcatParams, a: &Rows<'_>, b: &Rows<'_>, y: usize, out: &mut [i8]) -> Result<(), KernelError> {
    p.check()?;
    check_row(y, p.first)?;
    expect_len("first Concat input row", p.first.row_len(), a.row_len())?;
    expect_len("second Concat input row", p.second.row_len(), b.row_len())?;
    expect_len("Concat output row", p.output().row_len(), out.len())?;
    let (ca, cb) = (p.first.channels as usize, p.second.channels as usize);
    let (x, z) = (a.row(y), b.row(y));
    // Word-aligned rows of whole words per pixel (what the planner lays out for
    // channel counts that are multiples of 4) move by words, unrolled per pixel.
    if let (Ok(o), Ok(xw), Ok(zw)) = (words_mut(out), words(x), words(z))
        && ca.is_multiple_of(4)
        && cb.is_multiple_of(4)
        && concat_words(ca / 4, cb / 4, o, xw, zw)
    {
        return Ok(());
    }
    let pixels = out
        .chunks_exact_mut((ca + cb).max(1))
        .zip(x.chunks_exact(ca.max(1)))
        .zip(z.chunks_exact(cb.max(1)));
    for ((o, x), z) in pixels {
        let (head, tail) = o.split_at_mut_checked(ca).unwrap_or((&mut [], &mut []));
        for (d, &v) in head.iter_mut().zip(x) {
            *d = v;
        }
        for (d, &v) in tail.iter_mut().zip(z) {
            *d = v;
        }
    }
    Ok(())
}

fn words(x: &[i8]) -> Result<&[u32], bytemuck::PodCastError> {
    bytemuck::try_cast_slice(x)
}

fn words_mut(x: &mut [i8]) -> Result<&mut [u32], bytemuck::PodCastError> {
    bytemuck::try_cast_slice_mut(x)
}

/// Per-pixel copies of a few words are cheaper inline than as `memcpy` calls: channel
/// counts of 4 to 32 per input get a loop over fixed-size arrays. False for any other
/// count (the caller copies bytes).
fn concat_words(a: usize, b: usize, out: &mut [u32], x: &[u32], z: &[u32]) -> bool {
    if !(1..=8).contains(&a) || !(1..=8).contains(&b) {
        return false;
    }
    place_words(a, a + b, 0, out, x) && place_words(b, a + b, a, out, z)
}

/// Writes pixel `p` of `x` (`n` words each) at `out[p · stride + at ..][.. n]`.
fn place_words(n: usize, stride: usize, at: usize, out: &mut [u32], x: &[u32]) -> bool {
    fn run<const N: usize>(stride: usize, at: usize, out: &mut [u32], x: &[u32]) {
        let (x, _) = x.as_chunks::<N>();
        for (o, x) in out.chunks_exact_mut(stride.max(1)).zip(x) {
            if let Some(Ok(o)) = o.get_mut(at..at + N).map(<&mut [u32; N]>::try_from) {
                *o = *x;
            }
        }
    }
    match n {
        1 => run::<1>(stride, at, out, x),
        2 => run::<2>(stride, at, out, x),
        3 => run::<3>(stride, at, out, x),
        4 => run::<4>(stride, at, out, x),
        5 => run::<5>(stride, at, out, x),
        6 => run::<6>(stride, at, out, x),
        7 => run::<7>(stride, at, out, x),
        8 => run::<8>(stride, at, out, x),
        _ => return false,
    }
    true
}

/// As [`concat_words`], for ×2 upsampling: every input pixel of `c` words twice.
fn upsample_words(c: usize, out: &mut [u32], x: &[u32]) -> bool {
    fn run<const C: usize>(out: &mut [u32], x: &[u32]) {
        let (x, _) = x.as_chunks::<C>();
        let (out, _) = out.as_chunks_mut::<C>();
        for (o, x) in out.chunks_exact_mut(2).zip(x) {
            o[0] = *x;
            o[1] = *x;
        }
    }
    match c {
        1 => run::<1>(out, x),
        2 => run::<2>(out, x),
        3 => run::<3>(out, x),
        4 => run::<4>(out, x),
        5 => run::<5>(out, x),
        6 => run::<6>(out, x),
        7 => run::<7>(out, x),
        8 => run::<8>(out, x),
        _ => return false,
    }
    true
}

/// Output shape of a ×2 nearest-neighbour upsampling of `input`, if it fits in `u16`.
pub fn upsample2_output(input: Shape) -> Option<Shape> {
    Some(Shape::new(
        input.height.checked_mul(2)?,
        input.width.checked_mul(2)?,
        input.channels,
    ))
}

/// Output row `y` of a ×2 nearest-neighbour upsampling of a tensor of shape `input`:
/// input row `y / 2`, every pixel twice.
pub fn upsample2_row(input: Shape, rows: &Rows<'_>, y: usize, out: &mut [i8]) -> Result<(), KernelError> {
    let output = upsample2_output(input).ok_or(KernelError::Geometry("Upsample output too large"))?;
    if input.is_empty() {
        return Err(KernelError::Geometry("empty tensor"));
    }
    check_row(y, output)?;
    expect_len("Upsample input row", input.row_len(), rows.row_len())?;
    expect_len("Upsample output row", output.row_len(), out.len())?;
    let c = input.channels as usize;
    let x = rows.row(y / 2);
    if let (Ok(o), Ok(xw)) = (words_mut(out), words(x))
        && c.is_multiple_of(4)
        && upsample_words(c / 4, o, xw)
    {
        return Ok(());
    }
    // By index: zipped exact chunks divide by a chunk size the compiler cannot see is
    // non-zero (a panic path in the firmware).
    for j in 0..x.len() / c.max(1) {
        let (src, dst) = (sub(x, j * c..(j + 1) * c), sub_mut(out, 2 * j * c..2 * (j + 1) * c));
        let (left, right) = dst.split_at_mut_checked(c).unwrap_or((&mut [], &mut []));
        for ((l, r), &v) in left.iter_mut().zip(right.iter_mut()).zip(src) {
            (*l, *r) = (v, v);
        }
    }
    Ok(())
}

fn check_row(y: usize, shape: Shape) -> Result<(), KernelError> {
    if y >= shape.height as usize {
        return Err(KernelError::Row {
            row: y,
            height: shape.height as usize,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::Activation;

    extern crate std;
    use proptest::prelude::*;
    use std::vec;
    use std::vec::Vec;

    /// TFLite's `AddFunc` on TFLite's prepared parameters, in 64-bit arithmetic, each
    /// rescaling by the exact double-rounding reference of [`crate::quant`].
    fn add_reference(q: &AddQuant, a: i8, b: i8) -> i8 {
        let scale = |x: i64, rq: Requant| -> i64 { i64::from(crate::quant::requant_reference(x as i32, rq)) };
        let a = (i64::from(a) - i64::from(q.input1_zero_point)) * (1 << ADD_LEFT_SHIFT);
        let b = (i64::from(b) - i64::from(q.input2_zero_point)) * (1 << ADD_LEFT_SHIFT);
        let sum = scale(a, q.input1) + scale(b, q.input2);
        let out = scale(sum, q.output) + i64::from(q.output_zero_point);
        out.clamp(i64::from(q.clamp.min), i64::from(q.clamp.max)) as i8
    }

    fn scale() -> impl Strategy<Value = f32> {
        (-12.0f32..2.0).prop_map(|e| 2f32.powf(e))
    }

    fn zero_point() -> impl Strategy<Value = i32> {
        -128i32..=127
    }

    proptest! {
        #[test]
        fn add_is_tflite_add_and_close_to_the_real_sum(
            (s1, z1, s2, z2, so, zo) in (scale(), zero_point(), scale(), zero_point(), scale(), zero_point()),
            relu in any::<bool>(),
            data in prop::collection::vec((any::<i8>(), any::<i8>()), 1..64),
        ) {
            let act = if relu { Activation::Relu } else { Activation::None };
            let clamp = Clamp::for_activation(act, so, zo);
            let Ok(q) = AddQuant::prepare((s1, z1), (s2, z2), (so, zo), clamp) else {
                // Only an output scale 2^-20 below the inputs' is refused.
                prop_assert!(2.0 * f64::from(s1.max(s2)) >= f64::from(1u32 << 20) * f64::from(so));
                return Ok(());
            };
            for (a, b) in data {
                let got = q.add(a, b);
                prop_assert_eq!(got, add_reference(&q, a, b));
                let real = s1 * (f32::from(a) - z1 as f32) + s2 * (f32::from(b) - z2 as f32);
                let ideal = (real / so + zo as f32).round().clamp(f32::from(clamp.min), f32::from(clamp.max));
                // Three roundings of at most half a step each, of factors ≤ 1/2: one LSB.
                prop_assert!((f32::from(got) - ideal).abs() <= 1.0, "{got} vs {ideal}");
            }
        }

        #[test]
        fn rows_of_add_concat_and_upsample_are_their_definitions(
            h in 1u16..6, w in 1u16..7,
            // Multiples of 4 up to 32 take the word copies, others and misaligned rows
            // (`shift`) the byte copies.
            ca in prop_oneof![1u16..5, (1u16..10).prop_map(|n| 4 * n)],
            cb in prop_oneof![1u16..5, (1u16..10).prop_map(|n| 4 * n)],
            shift in 0usize..2,
            seed in any::<u64>(),
        ) {
            let mut state = seed | 1;
            let mut next = || { state ^= state << 13; state ^= state >> 7; state ^= state << 17; state as i8 };
            let sa = Shape::new(h, w, ca);
            let sb = Shape::new(h, w, cb);
            // u32 storage: word-aligned, then shifted by `shift` bytes.
            let mut a_store = vec![0u32; sa.len() / 4 + 1];
            let a: &mut [i8] = &mut bytemuck::cast_slice_mut::<u32, i8>(&mut a_store)[shift..shift + sa.len()];
            a.iter_mut().for_each(|v| *v = next());
            let a: &[i8] = a;
            let b: Vec<i8> = (0..sb.len()).map(|_| next()).collect();
            let b_same: Vec<i8> = (0..sa.len()).map(|_| next()).collect();
            let ra = Rows::whole(a, sa).unwrap();
            let rb = Rows::whole(&b, sb).unwrap();
            let rs = Rows::whole(&b_same, sa).unwrap();
            let p = ConcatParams { first: sa, second: sb };
            let so = p.output();
            let q = AddQuant::prepare((0.05, 3), (0.02, -7), (0.06, 1), Clamp::for_activation(Activation::Relu, 0.06, 1)).unwrap();
            let up = upsample2_output(sa).unwrap();
            let (c, cs) = (ca as usize, so.channels as usize);
            for y in 0..h as usize {
                let mut row = vec![0i8; so.row_len()];
                concat_row(&p, &ra, &rb, y, &mut row).unwrap();
                for x in 0..w as usize {
                    for k in 0..cs {
                        let want = if k < c { a[(y * w as usize + x) * c + k] } else { b[(y * w as usize + x) * cb as usize + k - c] };
                        prop_assert_eq!(row[x * cs + k], want);
                    }
                }
                let mut row = vec![0i8; sa.row_len()];
                add_row(&q, sa, &ra, &rs, y, &mut row).unwrap();
                for (i, &v) in row.iter().enumerate() {
                    prop_assert_eq!(v, q.add(a[y * sa.row_len() + i], b_same[y * sa.row_len() + i]));
                }
            }
            for y in 0..up.height as usize {
                let mut row = vec![0i8; up.row_len()];
                upsample2_row(sa, &ra, y, &mut row).unwrap();
                for x in 0..up.width as usize {
                    for k in 0..c {
                        prop_assert_eq!(row[x * c + k], a[((y / 2) * w as usize + x / 2) * c + k]);
                    }
                }
            }
        }
    }

    #[test]
    fn known_values_of_tflite_add() {
        // Equal scales and zero points 0, no activation: an exact sum where it fits.
        let q = AddQuant::prepare((0.1, 0), (0.1, 0), (0.1, 0), Clamp { min: -128, max: 127 }).unwrap();
        assert_eq!(q.add(3, 4), 7);
        assert_eq!(q.add(-100, -50), -128);
        assert_eq!(q.add(100, 50), 127);
        // A ReLU clamps at the output zero point.
        let relu = Clamp::for_activation(Activation::Relu, 0.1, 5);
        let q = AddQuant::prepare((0.1, 0), (0.1, 0), (0.1, 5), relu).unwrap();
        assert_eq!(q.add(-20, 3), 5);
        // Equal scales: each input's factor is one half (2^30 · 2^-31), the output's
        // 2 · 0.1 / (2^20 · 0.1) = 2^-19 (2^30 · 2^(-18-31)).
        assert_eq!(
            q.input1,
            Requant {
                multiplier: 1 << 30,
                shift: 0
            }
        );
        assert_eq!(
            q.output,
            Requant {
                multiplier: 1 << 30,
                shift: -18
            }
        );
    }

    #[test]
    fn bad_parameters_and_buffers_are_errors() {
        let none = Clamp { min: -128, max: 127 };
        assert_eq!(
            AddQuant::prepare((0.0, 0), (0.1, 0), (0.1, 0), none),
            Err(AddScaleError::Scale)
        );
        assert_eq!(
            AddQuant::prepare((f32::NAN, 0), (0.1, 0), (0.1, 0), none),
            Err(AddScaleError::Scale)
        );
        assert_eq!(
            AddQuant::prepare((0.1, 200), (0.1, 0), (0.1, 0), none),
            Err(AddScaleError::ZeroPoint)
        );
        assert_eq!(
            AddQuant::prepare((1.0, 0), (1.0, 0), (1e-7, 0), none),
            Err(AddScaleError::OutputFactor)
        );
        let s = Shape::new(2, 3, 2);
        let data = [0i8; 12];
        let r = Rows::whole(&data, s).unwrap();
        let q = AddQuant::prepare((0.1, 0), (0.1, 0), (0.1, 0), none).unwrap();
        let mut out = [0i8; 6];
        assert!(matches!(
            add_row(&q, s, &r, &r, 2, &mut out),
            Err(KernelError::Row { row: 2, height: 2 })
        ));
        assert!(matches!(
            add_row(&q, s, &r, &r, 0, &mut out[..5]),
            Err(KernelError::Length { .. })
        ));
        let mut bad = q;
        bad.output.shift = 3;
        assert!(add_row(&bad, s, &r, &r, 0, &mut out).is_err());
        let other = Shape::new(3, 3, 2);
        let p = ConcatParams {
            first: s,
            second: other,
        };
        assert!(concat_row(&p, &r, &r, 0, &mut [0i8; 12]).is_err());
        assert!(upsample2_row(s, &r, 4, &mut [0i8; 24]).is_err());
        assert!(upsample2_output(Shape::new(40000, 1, 1)).is_none());
        assert!(ConcatParams::check_quant((0.1, 0), (0.1, 0), (0.1, 0)));
        assert!(!ConcatParams::check_quant((0.1, 0), (0.2, 0), (0.1, 0)));
        assert!(!ConcatParams::check_quant((0.1, 0), (0.1, 1), (0.1, 0)));
    }
}
