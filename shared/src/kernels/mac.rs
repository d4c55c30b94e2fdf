//! The innermost multiply-accumulate loops, behind one trait so that every kernel exists
//! once and runs either on the portable reference or on the Cortex-M DSP instructions.
//!
//! Operands: weights stay int8 as stored; activations are widened once per column to
//! q15 with the input offset (`x − zero_point`, in −255..=255) added, as CMSIS-NN does.
//! Each backend owns the order of values inside a widened column, so a column must be
//! produced by the same backend's [`Mac::widen`] that consumes it.

/// A multiply-accumulate backend.
pub trait Mac {
    /// Widen `src` to q15 adding `offset` (the negated input zero point) into `dst`,
    /// in this backend's column order. `dst.len() >= src.len()`.
    fn widen(src: &[i8], offset: i32, dst: &mut [i16]);
    /// `[w0·c0, w0·c1, w1·c0, w1·c1]` over `w0.len()` terms.
    fn dot_2x2(w0: &[i8], w1: &[i8], c0: &[i16], c1: &[i16]) -> [i32; 4];
    /// `[w0·c, w1·c]`.
    fn dot_2x1(w0: &[i8], w1: &[i8], c: &[i16]) -> [i32; 2];
    /// `w·c`.
    fn dot_1x1(w: &[i8], c: &[i16]) -> i32;
}

/// Plain Rust, natural column order. The reference every other backend must equal.
pub struct Portable;

impl Mac for Portable {
    fn widen(src: &[i8], offset: i32, dst: &mut [i16]) {
        for (d, &s) in dst.iter_mut().zip(src) {
            *d = (s as i32 + offset) as i16;
        }
    }

    fn dot_2x2(w0: &[i8], w1: &[i8], c0: &[i16], c1: &[i16]) -> [i32; 4] {
        let mut acc = [0i32; 4];
        for (((&a, &b), &x), &y) in w0.iter().zip(w1).zip(c0).zip(c1) {
            acc[0] = acc[0].wrapping_add(a as i32 * x as i32);
            acc[1] = acc[1].wrapping_add(a as i32 * y as i32);
            acc[2] = acc[2].wrapping_add(b as i32 * x as i32);
            acc[3] = acc[3].wrapping_add(b as i32 * y as i32);
        }
        acc
    }

    fn dot_2x1(w0: &[i8], w1: &[i8], c: &[i16]) -> [i32; 2] {
        let mut acc = [0i32; 2];
        for ((&a, &b), &x) in w0.iter().zip(w1).zip(c) {
            acc[0] = acc[0].wrapping_add(a as i32 * x as i32);
            acc[1] = acc[1].wrapping_add(b as i32 * x as i32);
        }
        acc
    }

    fn dot_1x1(w: &[i8], c: &[i16]) -> i32 {
        w.iter()
            .zip(c)
            .fold(0i32, |acc, (&a, &x)| acc.wrapping_add(a as i32 * x as i32))
    }
}

#[cfg(target_arch = "arm")]
pub use dsp::Dsp;

/// The backend the engine uses on this target: DSP on Arm, portable elsewhere.
#[cfg(target_arch = "arm")]
pub type Native = dsp::Dsp;
/// The backend the engine uses on this target: DSP on Arm, portable elsewhere.
#[cfg(not(target_arch = "arm"))]
pub type Native = Portable;

#[cfg(target_arch = "arm")]
mod dsp {
    //! Cortex-M4/M7 DSP extension: `SXTB16` sign-extends bytes 0 and 2 (or, rotated by 8,
    //! bytes 1 and 3) of a word into two halfwords; `SMLAD` adds two 16×16 products to an
    //! accumulator. A group of four weights `[a b c d]` thus becomes the pairs `[a c]` and
    //! `[b d]`, so columns are stored in the matching order `[x0 x2 x1 x3]` per group of
    //! four (what `SXTB16` yields on the activations for free); a tail shorter than four
    //! stays in natural order.
    use super::Mac;
    use core::arch::asm;

    pub struct Dsp;

    #[inline(always)]
    fn smlad(a: u32, b: u32, acc: i32) -> i32 {
        let r: i32;
        // SAFETY: pure register arithmetic; SMLAD exists on every thumbv7em core.
        unsafe {
            asm!("smlad {r}, {a}, {b}, {c}", r = lateout(reg) r, a = in(reg) a, b = in(reg) b,
                 c = in(reg) acc, options(pure, nomem, nostack));
        }
        r
    }

    #[inline(always)]
    fn sxtb16(x: u32) -> u32 {
        let r: u32;
        // SAFETY: pure register arithmetic.
        unsafe {
            asm!("sxtb16 {r}, {x}", r = lateout(reg) r, x = in(reg) x, options(pure, nomem, nostack, preserves_flags));
        }
        r
    }

    #[inline(always)]
    fn sxtb16_ror8(x: u32) -> u32 {
        let r: u32;
        // SAFETY: pure register arithmetic.
        unsafe {
            asm!("sxtb16 {r}, {x}, ror #8", r = lateout(reg) r, x = in(reg) x, options(pure, nomem, nostack, preserves_flags));
        }
        r
    }

    #[inline(always)]
    fn sadd16(a: u32, b: u32) -> u32 {
        let r: u32;
        // SAFETY: pure register arithmetic (sets only the GE flags).
        unsafe {
            asm!("sadd16 {r}, {a}, {b}", r = lateout(reg) r, a = in(reg) a, b = in(reg) b, options(pure, nomem, nostack));
        }
        r
    }

    /// Four int8 weights as one word. SAFETY: `p..p+4` is readable.
    #[inline(always)]
    unsafe fn word_i8(p: *const i8) -> u32 {
        // SAFETY: the caller guarantees four readable bytes; v7-M loads unaligned words.
        unsafe { core::ptr::read_unaligned(p as *const u32) }
    }

    /// Two q15 values as one word. SAFETY: `p..p+2` is readable.
    #[inline(always)]
    unsafe fn word_i16(p: *const i16) -> u32 {
        // SAFETY: as above.
        unsafe { core::ptr::read_unaligned(p as *const u32) }
    }

    impl Mac for Dsp {
        fn widen(src: &[i8], offset: i32, dst: &mut [i16]) {
            let n = src.len().min(dst.len());
            let groups = n / 4;
            let off = ((offset as u32) << 16) | (offset as u32 & 0xffff);
            let (s, d) = (src.as_ptr(), dst.as_mut_ptr());
            for g in 0..groups {
                // SAFETY: 4·g + 3 < n ≤ both lengths.
                unsafe {
                    let x = word_i8(s.add(4 * g));
                    let even = sadd16(sxtb16(x), off);
                    let odd = sadd16(sxtb16_ror8(x), off);
                    core::ptr::write_unaligned(d.add(4 * g) as *mut u32, even);
                    core::ptr::write_unaligned(d.add(4 * g + 2) as *mut u32, odd);
                }
            }
            for i in 4 * groups..n {
                dst[i] = (src[i] as i32 + offset) as i16;
            }
        }

        fn dot_2x2(w0: &[i8], w1: &[i8], c0: &[i16], c1: &[i16]) -> [i32; 4] {
            let k = w0.len().min(w1.len()).min(c0.len()).min(c1.len());
            let groups = k / 4;
            let (mut a00, mut a01, mut a10, mut a11) = (0i32, 0i32, 0i32, 0i32);
            let (p0, p1, q0, q1) = (w0.as_ptr(), w1.as_ptr(), c0.as_ptr(), c1.as_ptr());
            for g in 0..groups {
                // SAFETY: 4·g + 3 < k ≤ every length.
                unsafe {
                    let u = word_i8(p0.add(4 * g));
                    let v = word_i8(p1.add(4 * g));
                    let (x_lo, x_hi) = (word_i16(q0.add(4 * g)), word_i16(q0.add(4 * g + 2)));
                    let (y_lo, y_hi) = (word_i16(q1.add(4 * g)), word_i16(q1.add(4 * g + 2)));
                    let (u_lo, u_hi) = (sxtb16(u), sxtb16_ror8(u));
                    let (v_lo, v_hi) = (sxtb16(v), sxtb16_ror8(v));
                    a00 = smlad(u_lo, x_lo, a00);
                    a00 = smlad(u_hi, x_hi, a00);
                    a01 = smlad(u_lo, y_lo, a01);
                    a01 = smlad(u_hi, y_hi, a01);
                    a10 = smlad(v_lo, x_lo, a10);
                    a10 = smlad(v_hi, x_hi, a10);
                    a11 = smlad(v_lo, y_lo, a11);
                    a11 = smlad(v_hi, y_hi, a11);
                }
            }
            for i in 4 * groups..k {
                let (a, b, x, y) = (w0[i] as i32, w1[i] as i32, c0[i] as i32, c1[i] as i32);
                a00 = a00.wrapping_add(a * x);
                a01 = a01.wrapping_add(a * y);
                a10 = a10.wrapping_add(b * x);
                a11 = a11.wrapping_add(b * y);
            }
            [a00, a01, a10, a11]
        }

        fn dot_2x1(w0: &[i8], w1: &[i8], c: &[i16]) -> [i32; 2] {
            let k = w0.len().min(w1.len()).min(c.len());
            let groups = k / 4;
            let (mut a0, mut a1) = (0i32, 0i32);
            let (p0, p1, q) = (w0.as_ptr(), w1.as_ptr(), c.as_ptr());
            for g in 0..groups {
                // SAFETY: 4·g + 3 < k ≤ every length.
                unsafe {
                    let u = word_i8(p0.add(4 * g));
                    let v = word_i8(p1.add(4 * g));
                    let (x_lo, x_hi) = (word_i16(q.add(4 * g)), word_i16(q.add(4 * g + 2)));
                    a0 = smlad(sxtb16(u), x_lo, a0);
                    a0 = smlad(sxtb16_ror8(u), x_hi, a0);
                    a1 = smlad(sxtb16(v), x_lo, a1);
                    a1 = smlad(sxtb16_ror8(v), x_hi, a1);
                }
            }
            for i in 4 * groups..k {
                a0 = a0.wrapping_add(w0[i] as i32 * c[i] as i32);
                a1 = a1.wrapping_add(w1[i] as i32 * c[i] as i32);
            }
            [a0, a1]
        }

        fn dot_1x1(w: &[i8], c: &[i16]) -> i32 {
            let k = w.len().min(c.len());
            let groups = k / 4;
            let mut acc = 0i32;
            let (p, q) = (w.as_ptr(), c.as_ptr());
            for g in 0..groups {
                // SAFETY: 4·g + 3 < k ≤ both lengths.
                unsafe {
                    let u = word_i8(p.add(4 * g));
                    acc = smlad(sxtb16(u), word_i16(q.add(4 * g)), acc);
                    acc = smlad(sxtb16_ror8(u), word_i16(q.add(4 * g + 2)), acc);
                }
            }
            for i in 4 * groups..k {
                acc = acc.wrapping_add(w[i] as i32 * c[i] as i32);
            }
            acc
        }
    }
}
