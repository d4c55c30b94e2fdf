//! int8 softmax, bit-exact with TFLite Micro's reference `Softmax` (int8 → int8).
//!
//! The input difference to the row maximum is scaled by `beta · s_in` into a Q5.26
//! fixed-point number, `exp` is evaluated on negative values with gemmlowp's barrel
//! shifter and Taylor polynomial, exponentials are summed in Q12.19, the reciprocal of the
//! sum comes from gemmlowp's Newton–Raphson `one_over_one_plus_x_for_x_in_0_1`, and the
//! output is quantized with scale 1/256 and zero point −128.

use super::{KernelError, expect_len};
use crate::quant::{
    ScaleError, quantize_multiplier, rounding_divide_by_pot, saturating_rounding_doubling_high_mul as srdhm,
};

/// Integer bits of the scaled input difference (Q5.26).
const SCALED_DIFF_INTEGER_BITS: i32 = 5;
/// Integer bits of the sum of exponentials (Q12.19).
const ACCUMULATION_INTEGER_BITS: i32 = 12;

/// Fixed-point parameters of a softmax, from TFLite's `PreprocessSoftmaxScaling` and
/// `CalculateInputRadius`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SoftmaxParams {
    pub input_multiplier: i32,
    pub input_left_shift: i32,
    pub diff_min: i32,
}

impl SoftmaxParams {
    pub fn new(beta: f32, input_scale: f32) -> Result<Self, ScaleError> {
        let max_real_multiplier = ((1i64 << 31) - 1) as f64;
        let real = (beta as f64 * input_scale as f64 * (1i64 << (31 - SCALED_DIFF_INTEGER_BITS)) as f64)
            .min(max_real_multiplier);
        if !real.is_finite() {
            return Err(ScaleError::NotFinite);
        }
        if real <= 1.0 {
            // QuantizeMultiplierGreaterThanOne requires > 1: beta · s_in > 2^-26.
            return Err(ScaleError::Negative);
        }
        let rq = quantize_multiplier(real)?;
        let left_shift = rq.shift;
        // CalculateInputRadius(5, left_shift, 31), floored.
        let max_input_rescaled = ((1i64 << SCALED_DIFF_INTEGER_BITS) - 1) as f64
            * (1i64 << (31 - SCALED_DIFF_INTEGER_BITS)) as f64
            / (1i64 << left_shift) as f64;
        Ok(SoftmaxParams {
            input_multiplier: rq.multiplier,
            input_left_shift: left_shift,
            diff_min: -(libm::floor(max_input_rescaled) as i32),
        })
    }
}

/// gemmlowp `SaturatingRoundingMultiplyByPOT` with a positive exponent.
fn saturating_shift_left(x: i32, exponent: i32) -> i32 {
    let threshold = (1i32 << (31 - exponent)) - 1;
    if x > threshold {
        i32::MAX
    } else if x < -threshold {
        i32::MIN
    } else {
        x << exponent
    }
}

/// gemmlowp `exp_on_interval_between_negative_one_quarter_and_0_excl`, Q0.31 in and out.
fn exp_on_interval_between_negative_one_quarter_and_0_excl(a: i32) -> i32 {
    const CONSTANT_TERM: i32 = 1895147668; // exp(−1/8)
    const ONE_THIRD: i32 = 715827883;
    let x = a.wrapping_add(1 << 28); // a + 1/8
    let x2 = srdhm(x, x);
    let x3 = srdhm(x2, x);
    let x4 = srdhm(x2, x2);
    let x4_over_4 = rounding_divide_by_pot(x4, 2);
    let poly = rounding_divide_by_pot(srdhm(x4_over_4.wrapping_add(x3), ONE_THIRD).wrapping_add(x2), 1);
    CONSTANT_TERM.wrapping_add(srdhm(CONSTANT_TERM, x.wrapping_add(poly)))
}

/// gemmlowp `exp_on_negative_values` for a Q5.26 input ≤ 0; result in Q0.31.
fn exp_on_negative_values(a: i32) -> i32 {
    const FRACTIONAL_BITS: i32 = 31 - SCALED_DIFF_INTEGER_BITS;
    let one_quarter = 1i32 << (FRACTIONAL_BITS - 2);
    let mask = one_quarter - 1;
    let a_mod_quarter_minus_one_quarter = (a & mask) - one_quarter;
    // Rescale Q5.26 → Q0.31: a saturating left shift by 5 (never saturates here).
    let mut result = exp_on_interval_between_negative_one_quarter_and_0_excl(saturating_shift_left(
        a_mod_quarter_minus_one_quarter,
        SCALED_DIFF_INTEGER_BITS,
    ));
    let remainder = a_mod_quarter_minus_one_quarter.wrapping_sub(a);
    // exp(−2^e) in Q0.31 for e = −2..=4.
    const BARREL: [(i32, i32); 7] = [
        (-2, 1672461947),
        (-1, 1302514674),
        (0, 790015084),
        (1, 290630308),
        (2, 39332535),
        (3, 720401),
        (4, 242),
    ];
    for (exponent, multiplier) in BARREL {
        if remainder & (1 << (FRACTIONAL_BITS + exponent)) != 0 {
            result = srdhm(result, multiplier);
        }
    }
    if a == 0 { i32::MAX } else { result }
}

/// gemmlowp `one_over_one_plus_x_for_x_in_0_1`, Q0.31 in and out.
fn one_over_one_plus_x_for_x_in_0_1(a: i32) -> i32 {
    // RoundingHalfSum(a, One) with One = i32::MAX in Q0.31.
    let sum = a as i64 + i32::MAX as i64;
    let half_denominator = ((sum + if sum >= 0 { 1 } else { -1 }) / 2) as i32;
    const C48_OVER_17: i32 = 1515870810; // Q2.29
    const CNEG32_OVER_17: i32 = -1010580540; // Q2.29
    let mut x = C48_OVER_17.wrapping_add(srdhm(half_denominator, CNEG32_OVER_17));
    const ONE_Q2: i32 = 1 << 29;
    for _ in 0..3 {
        let half_denominator_times_x = srdhm(half_denominator, x);
        let one_minus = ONE_Q2.wrapping_sub(half_denominator_times_x);
        // x · one_minus is Q4.27; Rescale<2> shifts it left by 2, saturating.
        x = x.wrapping_add(saturating_shift_left(srdhm(x, one_minus), 2));
    }
    // ExactMulByPot<−1> reinterprets Q2.29 as Q1.30; Rescale<0> shifts left by 1.
    saturating_shift_left(x, 1)
}

/// TFLite `GetReciprocal`: `1 / x` for `x` in Q(12).19, as a Q0.31 scale and the number of
/// bits above one.
fn reciprocal(x: i32) -> (i32, i32) {
    let headroom_plus_one = (x as u32).leading_zeros() as i32;
    let num_bits_over_unit = ACCUMULATION_INTEGER_BITS - headroom_plus_one;
    let shifted_sum_minus_one = ((x as u32) << headroom_plus_one).wrapping_sub(1u32 << 31) as i32;
    (
        one_over_one_plus_x_for_x_in_0_1(shifted_sum_minus_one),
        num_bits_over_unit,
    )
}

/// Softmax over each group of `depth` consecutive values (one pixel's channels).
pub fn softmax(p: &SoftmaxParams, depth: usize, input: &[i8], output: &mut [i8]) -> Result<(), KernelError> {
    if depth == 0 || !input.len().is_multiple_of(depth) {
        return Err(KernelError::Geometry("softmax input is not a whole number of pixels"));
    }
    expect_len("softmax output", input.len(), output.len())?;
    for (x, y) in input.chunks_exact(depth).zip(output.chunks_exact_mut(depth)) {
        softmax_pixel(p, x, y);
    }
    Ok(())
}

fn softmax_pixel(p: &SoftmaxParams, x: &[i8], y: &mut [i8]) {
    let max = x.iter().copied().max().unwrap_or(i8::MIN) as i32;
    let scaled = |v: i8| -> Option<i32> {
        let diff = v as i32 - max;
        (diff >= p.diff_min).then(|| srdhm(diff.wrapping_mul(1 << p.input_left_shift), p.input_multiplier))
    };
    // Sum in Q12.19: Rescale<12> of each Q0.31 exponential.
    let mut sum = 0i32;
    for &v in x {
        if let Some(d) = scaled(v) {
            sum = sum.wrapping_add(rounding_divide_by_pot(
                exp_on_negative_values(d),
                ACCUMULATION_INTEGER_BITS,
            ));
        }
    }
    let (scale, bits_over_unit) = reciprocal(sum);
    for (&v, out) in x.iter().zip(y.iter_mut()) {
        *out = match scaled(v) {
            Some(d) => {
                let e = exp_on_negative_values(d);
                let unsat = rounding_divide_by_pot(srdhm(scale, e), bits_over_unit + 31 - 8);
                (unsat - 128).clamp(-128, 127) as i8
            }
            None => i8::MIN,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_matches_float() {
        for raw in [0i32, -1 << 20, -1 << 24, -1 << 26, -3 << 26, -10 << 26, -31 << 26] {
            let x = raw as f64 / (1u64 << 26) as f64;
            let e = exp_on_negative_values(raw) as f64 / (1u64 << 31) as f64;
            assert!((e - x.exp()).abs() < 1e-6, "exp({x}) = {e}, want {}", x.exp());
        }
    }

    #[test]
    fn reciprocal_matches_float() {
        for x in [0.0f64, 0.1, 0.5, 0.9, 0.999] {
            let raw = (x * (1u64 << 31) as f64) as i32;
            let r = one_over_one_plus_x_for_x_in_0_1(raw) as f64 / (1u64 << 31) as f64;
            assert!((r - 1.0 / (1.0 + x)).abs() < 1e-7, "1/(1+{x}) = {r}");
        }
    }
}
