//! Integer quantization arithmetic, exactly as TFLite and CMSIS-NN do it.
//!
//! Conventions (the TFLite int8 quantization spec):
//! - activations: asymmetric int8, `real = scale · (q − zero_point)`;
//! - weights: symmetric int8 per output channel, zero point 0, range ±127;
//! - bias: int32 at scale `s_in · s_w[c]`, zero point 0;
//! - an accumulator is brought to the output scale by the real factor
//!   `s_in · s_w[c] / s_out`, represented as a Q31 multiplier and a power-of-two shift.
//!
//! Rounding mode: we use the *double rounding* of TFLite's reference
//! `MultiplyByQuantizedMultiplier` and CMSIS-NN's default `arm_nn_requantize`
//! (`CMSIS_NN_USE_SINGLE_ROUNDING` unset): a left shift for positive shifts, then
//! [`saturating_rounding_doubling_high_mul`] (round half away from zero), then
//! [`rounding_divide_by_pot`] (round half away from zero). It is the rounding every
//! TFLite / TFLM / CMSIS-NN build produces by default, so results can be compared
//! bit for bit against those independent implementations.

use serde::{Deserialize, Serialize};

/// Largest right shift the requantization supports (TFLite flushes smaller factors to 0).
pub const MIN_SHIFT: i32 = -31;
/// Largest left shift: the single-rounding path of TFLite saturates above this, and a
/// factor of 2^30 is far beyond any sane layer scale.
pub const MAX_SHIFT: i32 = 30;

/// A real multiplier `m` as `multiplier · 2^(shift − 31)`, `multiplier` in `[2^30, 2^31)`
/// (or 0 for a zero factor).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Requant {
    pub multiplier: i32,
    pub shift: i32,
}

/// Why a real scale cannot be turned into a [`Requant`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ScaleError {
    #[error("scale is not finite")]
    NotFinite,
    #[error("scale is negative")]
    Negative,
    #[error("scale needs a left shift above {MAX_SHIFT} (factor ≥ 2^{MAX_SHIFT})")]
    TooLarge,
}

impl Requant {
    /// A multiplier/shift pair that came from [`quantize_multiplier`] satisfies this.
    pub fn is_valid(self) -> bool {
        (MIN_SHIFT..=MAX_SHIFT).contains(&self.shift) && (self.multiplier == 0 || self.multiplier >= 1 << 30)
    }

    /// The real factor this pair represents (for reports and tests).
    pub fn to_f64(self) -> f64 {
        self.multiplier as f64 * libm::exp2(self.shift as f64 - 31.0)
    }
}

/// TFLite's `QuantizeMultiplier`: frexp, round the mantissa to Q31 (half away from zero),
/// fold the 2^31 overflow case into the exponent, flush factors below 2^-32 to zero.
pub fn quantize_multiplier(real: f64) -> Result<Requant, ScaleError> {
    if !real.is_finite() {
        return Err(ScaleError::NotFinite);
    }
    if real < 0.0 {
        return Err(ScaleError::Negative);
    }
    if real == 0.0 {
        return Ok(Requant {
            multiplier: 0,
            shift: 0,
        });
    }
    let (mantissa, mut shift) = libm::frexp(real);
    let mut q_fixed = libm::round(mantissa * (1i64 << 31) as f64) as i64;
    // The mantissa is in [0.5, 1); rounding can reach exactly 2^31.
    if q_fixed == 1i64 << 31 {
        q_fixed /= 2;
        shift += 1;
    }
    if shift < MIN_SHIFT {
        return Ok(Requant {
            multiplier: 0,
            shift: 0,
        });
    }
    if shift > MAX_SHIFT {
        return Err(ScaleError::TooLarge);
    }
    Ok(Requant {
        multiplier: q_fixed as i32,
        shift,
    })
}

/// gemmlowp's `SaturatingRoundingDoublingHighMul`: `a · b / 2^31` rounded to nearest, ties
/// toward +∞ (the nudge `±2^30` with C's truncating division), saturating the single
/// overflow case `i32::MIN · i32::MIN`.
#[inline(always)]
pub fn saturating_rounding_doubling_high_mul(a: i32, b: i32) -> i32 {
    if a == i32::MIN && b == i32::MIN {
        return i32::MAX;
    }
    // gemmlowp computes (ab + nudge) / 2^31 with nudge = 2^30 for ab ≥ 0 and 1 − 2^30
    // otherwise, dividing toward zero; for every ab both equal floor((ab + 2^30) / 2^31),
    // which is one arithmetic shift (SMULL, ADDS/ADC, two shifts on Cortex-M).
    ((a as i64 * b as i64 + (1i64 << 30)) >> 31) as i32
}

/// gemmlowp's original formulation, kept as the reference of the property test.
#[cfg(test)]
fn srdhm_gemmlowp(a: i32, b: i32) -> i32 {
    if a == i32::MIN && b == i32::MIN {
        return i32::MAX;
    }
    let ab = a as i64 * b as i64;
    let nudge: i64 = if ab >= 0 { 1 << 30 } else { 1 - (1 << 30) };
    ((ab + nudge) / (1i64 << 31)) as i32
}

/// Exact reference of double rounding with unbounded integers, for the property tests of
/// the requantization and of the kernels built on it.
#[cfg(test)]
pub(crate) fn requant_reference(x: i32, rq: Requant) -> i32 {
    let left = rq.shift.max(0);
    let right = (-rq.shift).max(0);
    let shifted = (x as i64) << left;
    let shifted = shifted as i32 as i64; // the wrap of the C code
    let prod = shifted as i128 * rq.multiplier as i128;
    // floor(prod / 2^31 + 1/2): gemmlowp's ties-toward-+∞ rounding
    let high = (prod + (1i128 << 30)).div_euclid(1i128 << 31);
    let high = high.clamp(i32::MIN as i128, i32::MAX as i128);
    // round(high / 2^right), half away from zero
    if right == 0 {
        return high as i32;
    }
    let d = 1i128 << right;
    let mut r = (high.abs() + d / 2) / d;
    if high < 0 {
        r = -r;
    }
    r as i32
}

/// gemmlowp's `RoundingDivideByPOT`: `x / 2^exponent`, rounding half away from zero.
/// `exponent` must be in `0..=31`.
#[inline(always)]
pub fn rounding_divide_by_pot(x: i32, exponent: i32) -> i32 {
    let mask: i32 = ((1i64 << exponent) - 1) as i32;
    let remainder = x & mask;
    let threshold = (mask >> 1) + i32::from(x < 0);
    (x >> exponent) + i32::from(remainder > threshold)
}

/// TFLite's `MultiplyByQuantizedMultiplier` / CMSIS-NN's `arm_nn_requantize` (double
/// rounding). The left shift wraps like the C code on two's-complement targets; with
/// shifts from [`quantize_multiplier`] and int32 accumulators of real layers it never does.
#[inline(always)]
pub fn multiply_by_quantized_multiplier(x: i32, rq: Requant) -> i32 {
    let left = if rq.shift > 0 { rq.shift } else { 0 };
    let right = if rq.shift > 0 { 0 } else { -rq.shift };
    rounding_divide_by_pot(
        saturating_rounding_doubling_high_mul(x.wrapping_mul(1i32 << left), rq.multiplier),
        right,
    )
}

/// A valid [`Requant`] unpacked for the inner loops: the shift split into its left and
/// right parts once, and the multiplier known to be non-negative, so that
/// [`multiply_prepared`] needs no saturation branch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Prepared {
    multiplier: i32,
    left: u32,
    right: u32,
    /// The accumulator (after bias) is known to stay within ±2^30 and the factor is
    /// below 1/2 (`left == 0`, `right ≥ 1`): [`multiply_prepared`] may then use the short
    /// form, equal to the general one on that domain.
    short: bool,
}

/// Accumulators (bias included) strictly inside ±2^30 may take the short form.
pub const SHORT_FORM_BOUND: u64 = 1 << 30;

impl Prepared {
    /// The zero factor: every accumulator maps to the output zero point.
    pub const ZERO: Prepared = Prepared {
        multiplier: 0,
        left: 0,
        right: 0,
        short: false,
    };

    /// Packs into table words: `[multiplier, left, right | short << 8]`; for the short
    /// form (whose left shift is 0) the middle word holds the rounding nudge
    /// `2^(right − 1)` instead, so [`multiply_short`] needs no shift to make it.
    pub fn to_words(self) -> [i32; 3] {
        let middle = if self.short {
            (1i32 << self.right) >> 1
        } else {
            self.left as i32
        };
        [self.multiplier, middle, (self.right | (self.short as u32) << 8) as i32]
    }

    /// The short form's operands `(multiplier, nudge, right)`, if this factor takes it.
    pub fn short_form(self) -> Option<(i32, i32, u32)> {
        self.short
            .then(|| (self.multiplier, (1i32 << self.right) >> 1, self.right))
    }

    /// Unpacks table words written by [`Prepared::to_words`]. Total: shifts are masked to
    /// 0..=31 and a negative multiplier becomes 0, so arbitrary words cannot panic (they
    /// can only compute a wrong value, and the engine writes its tables itself).
    #[inline(always)]
    pub fn from_words(words: [i32; 3]) -> Self {
        let short = words[2] as u32 & 0x100 != 0;
        Prepared {
            multiplier: words[0].max(0),
            left: if short { 0 } else { words[1] as u32 & 31 },
            right: words[2] as u32 & 31,
            short,
        }
    }

    /// `None` unless `rq.is_valid()`. Uses the general form.
    pub fn new(rq: Requant) -> Option<Self> {
        if !rq.is_valid() {
            return None;
        }
        Some(Prepared {
            multiplier: rq.multiplier,
            left: rq.shift.max(0) as u32,
            right: (-rq.shift).max(0) as u32,
            short: false,
        })
    }

    /// Like [`Prepared::new`], for accumulators (bias included) bounded by
    /// `max_abs_accumulator`: enables the short form where it is exact.
    pub fn with_bound(rq: Requant, max_abs_accumulator: u64) -> Option<Self> {
        let mut p = Self::new(rq)?;
        p.short = p.left == 0 && p.right >= 1 && max_abs_accumulator < SHORT_FORM_BOUND;
        Some(p)
    }

    pub fn requant(self) -> Requant {
        Requant {
            multiplier: self.multiplier,
            shift: self.left as i32 - self.right as i32,
        }
    }

    pub fn is_short(self) -> bool {
        self.short
    }
}

/// `floor((a·b + 2^31) / 2^32)`: one `SMMULR` on Cortex-M4/M7.
#[inline(always)]
fn mul_high_rounded(a: i32, b: i32) -> i32 {
    #[cfg(target_arch = "arm")]
    {
        let r: i32;
        // SAFETY: register arithmetic only; SMMULR exists on every thumbv7em core.
        unsafe {
            core::arch::asm!("smmulr {r}, {a}, {b}", r = lateout(reg) r, a = in(reg) a, b = in(reg) b,
                options(pure, nomem, nostack, preserves_flags));
        }
        r
    }
    #[cfg(not(target_arch = "arm"))]
    {
        ((a as i64 * b as i64 + (1i64 << 31)) >> 32) as i32
    }
}

/// [`multiply_by_quantized_multiplier`] for a prepared factor: the same double rounding.
///
/// General form: the multiplier's validity (0 or ≥ 2^30, never `i32::MIN`) rules out the
/// one saturating case of the high multiply.
///
/// Short form, for |x| < 2^30 and a right shift `r ≥ 1`: the high multiply
/// `floor((x·m + 2^30) / 2^31)` equals `floor((2x·m + 2^31) / 2^32)` (one `SMMULR` on
/// Cortex-M), its result stays below 2^30 in magnitude, so the rounding division
/// `round_half_away(h / 2^r)` is `(h + 2^(r−1) − [h < 0]) >> r` without overflow.
/// Property tests prove both forms equal to the reference.
#[inline(always)]
pub fn multiply_prepared(x: i32, p: Prepared) -> i32 {
    if p.short {
        return multiply_short(x, p.multiplier, (1i32 << p.right) >> 1, p.right);
    }
    let x = x.wrapping_shl(p.left);
    let high = ((x as i64 * p.multiplier as i64 + (1i64 << 30)) >> 31) as i32;
    rounding_divide_by_pot(high, p.right as i32)
}

/// The short form of [`multiply_prepared`] on its operands (see
/// [`Prepared::short_form`]): for |x| < 2^30 and `right ≥ 1`, with `nudge = 2^(right − 1)`.
/// Shifts are masked, so any operands compute a value, never a panic.
#[inline(always)]
pub fn multiply_short(x: i32, multiplier: i32, nudge: i32, right: u32) -> i32 {
    // |x| < 2^30, so 2x cannot overflow.
    let high = mul_high_rounded(x.wrapping_mul(2), multiplier);
    high.wrapping_add(nudge)
        .wrapping_sub(((high as u32) >> 31) as i32)
        .wrapping_shr(right)
}

/// Requantize an int32 accumulator to int8 with a prepared factor: scale, add the output
/// zero point, clamp to the fused activation range.
#[inline(always)]
pub fn requantize_prepared(acc: i32, p: Prepared, output_zero_point: i32, clamp: Clamp) -> i8 {
    let v = multiply_prepared(acc, p).saturating_add(output_zero_point);
    v.max(clamp.min as i32).min(clamp.max as i32) as i8
}

/// Requantize an int32 accumulator to int8: scale, add the output zero point, clamp to
/// the fused activation range.
#[inline(always)]
pub fn requantize_to_i8(acc: i32, rq: Requant, output_zero_point: i32, clamp: Clamp) -> i8 {
    let v = multiply_by_quantized_multiplier(acc, rq).saturating_add(output_zero_point);
    // max/min rather than clamp: no bounds assertion to keep out of the inner loops.
    v.max(clamp.min as i32).min(clamp.max as i32) as i8
}

/// A fused activation expressed, as in TFLite, as the int8 output range.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Clamp {
    pub min: i8,
    pub max: i8,
}

/// The fused activation of a layer, in real terms.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Activation {
    None,
    Relu,
    Relu6,
}

impl Clamp {
    pub const FULL: Clamp = Clamp { min: -128, max: 127 };

    /// TFLite's `CalculateActivationRangeQuantized`: quantize 0 (and 6) with the output
    /// scale and zero point, intersect with the int8 range.
    pub fn for_activation(act: Activation, scale: f32, zero_point: i32) -> Clamp {
        let quantize = |real: f32| -> i32 {
            // `as` saturates a huge quotient (tiny scale); the sum must saturate too.
            let q = (libm::roundf(real / scale) as i64).saturating_add(zero_point as i64);
            q.clamp(-128, 127) as i32
        };
        let (lo, hi) = match act {
            Activation::None => (-128, 127),
            Activation::Relu => (quantize(0.0).max(-128), 127),
            Activation::Relu6 => (quantize(0.0).max(-128), quantize(6.0).min(127)),
        };
        Clamp {
            min: lo as i8,
            max: hi as i8,
        }
    }
}

/// Quantize a real value with an affine int8 scheme (round half away from zero, as
/// TFLite's `Quantize` and ONNX's `QuantizeLinear` rounds half to even: see
/// [`quantize_f32_half_even`] for the ONNX one).
pub fn quantize_f32(real: f32, scale: f32, zero_point: i32) -> i8 {
    let q = (libm::roundf(real / scale) as i64).saturating_add(zero_point as i64);
    q.clamp(-128, 127) as i8
}

/// ONNX `QuantizeLinear` rounding: half to even.
pub fn quantize_f32_half_even(real: f32, scale: f32, zero_point: i32) -> i8 {
    let q = (libm::rintf(real / scale) as i64).saturating_add(zero_point as i64);
    q.clamp(-128, 127) as i8
}

/// `scale · (q − zero_point)`.
pub fn dequantize(q: i8, scale: f32, zero_point: i32) -> f32 {
    scale * (q as i32 - zero_point) as f32
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn srdhm_known_values() {
        assert_eq!(saturating_rounding_doubling_high_mul(i32::MIN, i32::MIN), i32::MAX);
        assert_eq!(saturating_rounding_doubling_high_mul(1 << 30, 1 << 30), 1 << 29);
        // gemmlowp's nudge rounds ties toward +∞: 1.5 → 2, −1.5 → −1, 0.5 → 1, −0.5 → 0.
        assert_eq!(saturating_rounding_doubling_high_mul(3, 1 << 30), 2);
        assert_eq!(saturating_rounding_doubling_high_mul(-3, 1 << 30), -1);
        assert_eq!(saturating_rounding_doubling_high_mul(1, 1 << 30), 1);
        assert_eq!(saturating_rounding_doubling_high_mul(-1, 1 << 30), 0);
        // Off the tie, it is round to nearest.
        assert_eq!(saturating_rounding_doubling_high_mul(-3, (1 << 30) + 1), -2);
    }

    #[test]
    fn rdbpot_known_values() {
        assert_eq!(rounding_divide_by_pot(5, 1), 3); // 2.5 → 3
        assert_eq!(rounding_divide_by_pot(-5, 1), -3); // −2.5 → −3
        assert_eq!(rounding_divide_by_pot(7, 2), 2); // 1.75 → 2
        assert_eq!(rounding_divide_by_pot(-6, 2), -2); // −1.5 → −2
        assert_eq!(rounding_divide_by_pot(-5, 2), -1); // −1.25 → −1
        assert_eq!(rounding_divide_by_pot(i32::MAX, 31), 1);
        assert_eq!(rounding_divide_by_pot(i32::MIN, 31), -1);
        assert_eq!(rounding_divide_by_pot(123, 0), 123);
    }

    #[test]
    fn quantize_multiplier_known_values() {
        assert_eq!(
            quantize_multiplier(0.5).unwrap(),
            Requant {
                multiplier: 1 << 30,
                shift: 0
            }
        );
        assert_eq!(
            quantize_multiplier(1.0).unwrap(),
            Requant {
                multiplier: 1 << 30,
                shift: 1
            }
        );
        assert_eq!(
            quantize_multiplier(0.25).unwrap(),
            Requant {
                multiplier: 1 << 30,
                shift: -1
            }
        );
        assert_eq!(
            quantize_multiplier(0.0).unwrap(),
            Requant {
                multiplier: 0,
                shift: 0
            }
        );
        // A mantissa that rounds up to 2^31: the overflow case folds into the shift.
        let almost_one = 1.0 - 1e-12;
        assert_eq!(
            quantize_multiplier(almost_one).unwrap(),
            Requant {
                multiplier: 1 << 30,
                shift: 1
            }
        );
        // Below 2^-32 the factor flushes to zero, as TFLite does.
        assert_eq!(
            quantize_multiplier(1e-12).unwrap(),
            Requant {
                multiplier: 0,
                shift: 0
            }
        );
        assert_eq!(quantize_multiplier(f64::NAN), Err(ScaleError::NotFinite));
        assert_eq!(quantize_multiplier(-0.1), Err(ScaleError::Negative));
        assert_eq!(quantize_multiplier(1e12), Err(ScaleError::TooLarge));
        // 0.1 = 0.8 · 2^-3 ; 0.8 · 2^31 = 1717986918.4 → 1717986918
        assert_eq!(
            quantize_multiplier(0.1).unwrap(),
            Requant {
                multiplier: 1717986918,
                shift: -3
            }
        );
    }

    #[test]
    fn clamp_for_activations() {
        assert_eq!(Clamp::for_activation(Activation::None, 0.1, 3), Clamp::FULL);
        assert_eq!(
            Clamp::for_activation(Activation::Relu, 0.1, -20),
            Clamp { min: -20, max: 127 }
        );
        assert_eq!(
            Clamp::for_activation(Activation::Relu6, 0.1, -128),
            Clamp { min: -128, max: -68 }
        );
        assert_eq!(
            Clamp::for_activation(Activation::Relu6, 0.01, 0),
            Clamp { min: 0, max: 127 }
        );
    }

    proptest! {
        #[test]
        fn multiplier_roundtrips_scale(real in 1e-9f64..1e9) {
            let rq = quantize_multiplier(real).unwrap();
            prop_assert!(rq.is_valid());
            if rq.multiplier != 0 {
                let rel = (rq.to_f64() - real).abs() / real;
                prop_assert!(rel <= 1.0 / (1u64 << 30) as f64, "real {real} rq {rq:?} rel {rel}");
            }
        }

        #[test]
        fn requantize_matches_exact_reference(x in any::<i32>(), real in 1e-7f64..0.99) {
            let rq = quantize_multiplier(real).unwrap();
            prop_assert_eq!(multiply_by_quantized_multiplier(x, rq), requant_reference(x, rq));
        }

        #[test]
        fn prepared_equals_generic(x in any::<i32>(), real in prop_oneof![1e-9f64..1.0, 1.0f64..1e6]) {
            let rq = quantize_multiplier(real).unwrap();
            let p = Prepared::new(rq).unwrap();
            prop_assert_eq!(p.requant(), rq);
            prop_assert_eq!(multiply_prepared(x, p), multiply_by_quantized_multiplier(x, rq));
        }

        #[test]
        fn short_form_equals_generic(x in -(1i32 << 30) + 1..(1 << 30), real in prop_oneof![1e-9f64..0.49, 0.49f64..0.5, 1e-4f64..1e-2]) {
            let rq = quantize_multiplier(real).unwrap();
            let p = Prepared::with_bound(rq, x.unsigned_abs() as u64).unwrap();
            prop_assert!(p.is_short());
            prop_assert_eq!(multiply_prepared(x, p), multiply_by_quantized_multiplier(x, rq));
            prop_assert_eq!(multiply_prepared(x, p), requant_reference(x, rq));
        }

        #[test]
        fn short_form_ties(q in -(1i32 << 20)..(1 << 20), r in 1i32..10) {
            // x · 2^30 / 2^31 = x / 2: with multiplier 2^30 and shift −r the quotient
            // x / 2^(r+1) lands exactly on halves for odd multiples.
            let rq = Requant { multiplier: 1 << 30, shift: -r };
            let x = q * 2 + 1;
            let p = Prepared::with_bound(rq, x.unsigned_abs() as u64).unwrap();
            prop_assert_eq!(multiply_prepared(x, p), requant_reference(x, rq));
        }

        #[test]
        fn requantize_left_shift_matches_reference(x in -(1i32 << 20)..(1 << 20), real in 1.0f64..1000.0) {
            let rq = quantize_multiplier(real).unwrap();
            prop_assert_eq!(multiply_by_quantized_multiplier(x, rq), requant_reference(x, rq));
        }

        #[test]
        fn srdhm_shift_form_equals_gemmlowp(a in any::<i32>(), b in any::<i32>()) {
            prop_assert_eq!(saturating_rounding_doubling_high_mul(a, b), srdhm_gemmlowp(a, b));
        }

        #[test]
        fn srdhm_ties_equal_gemmlowp(a in any::<i32>(), s in 0u32..31) {
            // b = 2^s makes ab / 2^31 land on halves and exact values.
            let b = 1i32 << s;
            prop_assert_eq!(saturating_rounding_doubling_high_mul(a, b), srdhm_gemmlowp(a, b));
            prop_assert_eq!(saturating_rounding_doubling_high_mul(a, -b), srdhm_gemmlowp(a, -b));
        }

        #[test]
        fn rdbpot_matches_reference(x in any::<i32>(), e in 0i32..=31) {
            let d = 1i64 << e;
            let xi = x as i64;
            let mut r = (xi.abs() + d / 2) / d;
            if xi < 0 { r = -r; }
            prop_assert_eq!(rounding_divide_by_pot(x, e) as i64, r);
        }
    }
}
