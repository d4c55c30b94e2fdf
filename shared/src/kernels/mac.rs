//! The innermost multiply-accumulate loops, behind one trait so that every kernel exists
//! once and runs either on the portable reference or on the Cortex-M DSP instructions.
//!
//! Operands are widened to q15 first, as CMSIS-NN does: activations with the input
//! offset added (`x − zero_point`, in −255..=255), convolution weights as they are
//! (once per output row, from the int8 filter). Each backend owns the order of values
//! inside a widened buffer, so a buffer must be produced by the same backend's `widen*`
//! that consumes it. Two layouts exist:
//! - *single*: one vector of `k` values;
//! - *pair*: two vectors `a`, `b` of `k` values each, stored so that one pass reads both
//!   (two filter rows, or the receptive fields of two output pixels).
//!
//! Fully-connected weights stay int8 in flash and are read with `dot_i8_*`.

/// A multiply-accumulate backend.
pub trait Mac {
    /// Widens `src` adding `offset` into `dst[..src.len()]`, single layout.
    fn widen(src: &[i8], offset: i32, dst: &mut [i16]);
    /// Widens `a` and `b` (same length `k`) adding `offset` into `dst[..2k]`, pair layout.
    fn widen_pair(a: &[i8], b: &[i8], offset: i32, dst: &mut [i16]);
    /// Widens one segment of a pair: `a` and `b` (same length) become positions
    /// `at..at + a.len()` of two vectors of total length `k`, pair layout. Valid when
    /// `at` is a multiple of 4 and the segment length is too, or the segment ends the
    /// vectors. Lets a convolution widen its receptive fields straight from input rows.
    fn widen_pair_segment(a: &[i8], b: &[i8], offset: i32, dst: &mut [i16], at: usize, k: usize);
    /// Pair × pair: `[a·c, a·d, b·c, b·d]` for weights `(a, b)` and columns `(c, d)`.
    fn dot_pp(w: &[i16], c: &[i16], k: usize) -> [i32; 4];
    /// [`Mac::dot_pp`] for consecutive weight pairs `w[i·2k..(i+1)·2k]`, one result per
    /// pair in `out` (as many pairs as `out` holds).
    fn dot_pp_many(w: &[i16], c: &[i16], k: usize, out: &mut [[i32; 4]]) {
        for (wp, o) in w.chunks_exact((2 * k).max(1)).zip(out.iter_mut()) {
            *o = Self::dot_pp(wp, c, k);
        }
    }
    /// Single × pair: `[w·c, w·d]`.
    fn dot_sp(w: &[i16], c: &[i16], k: usize) -> [i32; 2];
    /// Pair × single: `[a·c, b·c]`.
    fn dot_ps(w: &[i16], c: &[i16], k: usize) -> [i32; 2];
    /// Single × single.
    fn dot_ss(w: &[i16], c: &[i16], k: usize) -> i32;
    /// Depthwise tap: `acc[i] += (x[i] + offset) · w[i]` over `acc.len()` channels.
    fn multiply_channels(acc: &mut [i32], x: &[i8], w: &[i8], offset: i32);
    /// int8 weight rows against a single-layout column: `[w0·c, w1·c]`.
    fn dot_i8_2x1(w0: &[i8], w1: &[i8], c: &[i16]) -> [i32; 2];
    /// int8 weight row against a single-layout column.
    fn dot_i8_1x1(w: &[i8], c: &[i16]) -> i32;
}

#[inline(always)]
fn mac(acc: i32, a: i16, b: i16) -> i32 {
    acc.wrapping_add(a as i32 * b as i32)
}

/// Plain Rust: single layout is natural order, pair layout is `a` then `b`.
/// The reference every other backend must equal.
pub struct Portable;

impl Mac for Portable {
    fn widen(src: &[i8], offset: i32, dst: &mut [i16]) {
        for (d, &s) in dst.iter_mut().zip(src) {
            *d = (s as i32 + offset) as i16;
        }
    }

    fn widen_pair(a: &[i8], b: &[i8], offset: i32, dst: &mut [i16]) {
        let (da, db) = dst.split_at_mut(a.len().min(dst.len()));
        Self::widen(a, offset, da);
        Self::widen(b, offset, db);
    }

    fn widen_pair_segment(a: &[i8], b: &[i8], offset: i32, dst: &mut [i16], at: usize, k: usize) {
        let n = a.len();
        Self::widen(a, offset, &mut dst[at..at + n]);
        Self::widen(b, offset, &mut dst[k + at..k + at + n]);
    }

    fn dot_pp(w: &[i16], c: &[i16], k: usize) -> [i32; 4] {
        let (wa, wb) = (&w[..k], &w[k..2 * k]);
        let (ca, cb) = (&c[..k], &c[k..2 * k]);
        let mut acc = [0i32; 4];
        for i in 0..k {
            acc[0] = mac(acc[0], wa[i], ca[i]);
            acc[1] = mac(acc[1], wa[i], cb[i]);
            acc[2] = mac(acc[2], wb[i], ca[i]);
            acc[3] = mac(acc[3], wb[i], cb[i]);
        }
        acc
    }

    fn dot_sp(w: &[i16], c: &[i16], k: usize) -> [i32; 2] {
        [Self::dot_ss(w, &c[..k], k), Self::dot_ss(w, &c[k..2 * k], k)]
    }

    fn dot_ps(w: &[i16], c: &[i16], k: usize) -> [i32; 2] {
        [Self::dot_ss(&w[..k], c, k), Self::dot_ss(&w[k..2 * k], c, k)]
    }

    fn dot_ss(w: &[i16], c: &[i16], k: usize) -> i32 {
        w[..k].iter().zip(&c[..k]).fold(0, |acc, (&a, &b)| mac(acc, a, b))
    }

    fn multiply_channels(acc: &mut [i32], x: &[i8], w: &[i8], offset: i32) {
        for ((a, &xv), &wv) in acc.iter_mut().zip(x).zip(w) {
            *a = a.wrapping_add((xv as i32 + offset) * wv as i32);
        }
    }

    fn dot_i8_2x1(w0: &[i8], w1: &[i8], c: &[i16]) -> [i32; 2] {
        let mut acc = [0i32; 2];
        for ((&a, &b), &x) in w0.iter().zip(w1).zip(c) {
            acc[0] = mac(acc[0], a as i16, x);
            acc[1] = mac(acc[1], b as i16, x);
        }
        acc
    }

    fn dot_i8_1x1(w: &[i8], c: &[i16]) -> i32 {
        w.iter().zip(c).fold(0, |acc, (&a, &x)| mac(acc, a as i16, x))
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
    //! Cortex-M4/M7 DSP extension. `SXTB16` sign-extends bytes 0 and 2 (or, rotated by 8,
    //! bytes 1 and 3) of a word into two halfwords and `SADD16` adds the offset to both;
    //! `SMLAD` adds two 16×16 products to an accumulator.
    //!
    //! Widening four int8 values `[x0 x1 x2 x3]` thus naturally yields the halfword pairs
    //! `[x0 x2]` and `[x1 x3]`; every buffer keeps that order per group of four (which
    //! leaves dot products unchanged, as both operands share it), and a tail shorter than
    //! four stays in natural order.
    //! - single layout, per group: `a02 a13`;
    //! - pair layout, per group: `a02 b02 a13 b13`, so one `LDRD` fetches the same pair of
    //!   positions from both vectors; the tails follow as `a` tail then `b` tail.
    //!
    //! The pair × pair loop is one `asm!` block: per group, two `LDRD` of weights and two
    //! of columns feed eight `SMLAD` (16 MACs in 12 instructions), unrolled twice.
    use super::{Mac, mac};
    use crate::kernels::{sub, sub_mut};
    use core::arch::asm;

    pub struct Dsp;

    #[inline(always)]
    fn smlad(a: u32, b: u32, acc: i32) -> i32 {
        let r: i32;
        // SAFETY: register arithmetic only; SMLAD exists on every thumbv7em core.
        unsafe {
            asm!("smlad {r}, {a}, {b}, {c}", r = lateout(reg) r, a = in(reg) a, b = in(reg) b,
                 c = in(reg) acc, options(pure, nomem, nostack));
        }
        r
    }

    #[inline(always)]
    fn smlabb(a: u32, b: u32, acc: i32) -> i32 {
        let r: i32;
        // SAFETY: register arithmetic only.
        unsafe {
            asm!("smlabb {r}, {a}, {b}, {c}", r = lateout(reg) r, a = in(reg) a, b = in(reg) b,
                 c = in(reg) acc, options(pure, nomem, nostack));
        }
        r
    }

    #[inline(always)]
    fn smlatt(a: u32, b: u32, acc: i32) -> i32 {
        let r: i32;
        // SAFETY: register arithmetic only.
        unsafe {
            asm!("smlatt {r}, {a}, {b}, {c}", r = lateout(reg) r, a = in(reg) a, b = in(reg) b,
                 c = in(reg) acc, options(pure, nomem, nostack));
        }
        r
    }

    #[inline(always)]
    fn sxtb16(x: u32) -> u32 {
        let r: u32;
        // SAFETY: register arithmetic only.
        unsafe {
            asm!("sxtb16 {r}, {x}", r = lateout(reg) r, x = in(reg) x, options(pure, nomem, nostack, preserves_flags));
        }
        r
    }

    #[inline(always)]
    fn sxtb16_ror8(x: u32) -> u32 {
        let r: u32;
        // SAFETY: register arithmetic only.
        unsafe {
            asm!("sxtb16 {r}, {x}, ror #8", r = lateout(reg) r, x = in(reg) x, options(pure, nomem, nostack, preserves_flags));
        }
        r
    }

    #[inline(always)]
    fn sadd16(a: u32, b: u32) -> u32 {
        let r: u32;
        // SAFETY: register arithmetic only (sets the GE flags, which nothing reads).
        unsafe {
            asm!("sadd16 {r}, {a}, {b}", r = lateout(reg) r, a = in(reg) a, b = in(reg) b, options(pure, nomem, nostack));
        }
        r
    }

    /// Word `i` of a byte slice. The caller checks `4·i + 3 < s.len()`.
    #[inline(always)]
    fn word_i8(s: &[i8], i: usize) -> u32 {
        // SAFETY: in bounds per the caller; v7-M loads unaligned words.
        unsafe { core::ptr::read_unaligned(s.as_ptr().add(4 * i) as *const u32) }
    }

    /// Word at halfword index `h` of a q15 slice. The caller checks `h + 1 < s.len()`.
    #[inline(always)]
    fn word_i16(s: &[i16], h: usize) -> u32 {
        // SAFETY: in bounds per the caller; v7-M loads unaligned words.
        unsafe { core::ptr::read_unaligned(s.as_ptr().add(h) as *const u32) }
    }

    #[inline(always)]
    fn put_word(d: &mut [i16], h: usize, v: u32) {
        // SAFETY: callers write halfwords `h, h + 1` inside `d` (checked lengths).
        unsafe { core::ptr::write_unaligned(d.as_mut_ptr().add(h) as *mut u32, v) }
    }

    /// `dst[..t] = a + offset`, `dst[t..2t] = b + offset`, `t = a.len()`: the tail of a
    /// widened pair (natural order, a then b).
    #[inline(always)]
    fn widen_tail_pair(a: &[i8], b: &[i8], offset: i32, dst: &mut [i16]) {
        if let Some((da, db)) = dst.split_at_mut_checked(a.len()) {
            for (d, &x) in da.iter_mut().zip(a) {
                *d = (x as i32 + offset) as i16;
            }
            for (d, &x) in db.iter_mut().zip(b) {
                *d = (x as i32 + offset) as i16;
            }
        }
    }

    /// The tails of a pair laid out as `v[base..base + t]`, `v[base + t..base + 2t]`
    /// (empty where `v` is shorter).
    #[inline(always)]
    fn pair_tail(v: &[i16], base: usize, t: usize) -> (&[i16], &[i16]) {
        v.get(base..base + 2 * t)
            .and_then(|p| p.split_at_checked(t))
            .unwrap_or((&[], &[]))
    }

    fn offset_pair(offset: i32) -> u32 {
        ((offset as u32) << 16) | (offset as u32 & 0xffff)
    }

    /// Pair × pair dot products of `out.len()` consecutive weight pairs against one
    /// column pair, `double` iterations of two groups (16 MACs × 2) each, in one asm
    /// loop: per group two `LDRD` of weights and two of columns feed eight `SMLAD`. The
    /// channel loop's bookkeeping lives in a small parameter block so that the 12
    /// allocatable registers hold the operands.
    ///
    /// SAFETY: `w` must hold `out.len() · 16 · double` readable halfwords, `c` at least
    /// `16 · double`, both word-aligned; `double ≥ 1` and `out` non-empty.
    #[inline(always)]
    unsafe fn smlad_pairs(w: *const i16, c: *const i16, double: usize, out: &mut [[i32; 4]]) {
        // [column base, inner iterations, output cursor, pairs left]
        let mut params: [usize; 4] = [c as usize, double, out.as_mut_ptr() as usize, out.len()];
        // SAFETY: per the caller's contract; `params` outlives the block.
        unsafe {
            asm!(
                "1:",
                "ldr {pc}, [{prm}]",
                "ldr {n}, [{prm}, #4]",
                "movs {a00}, #0",
                "movs {a01}, #0",
                "movs {a10}, #0",
                "movs {a11}, #0",
                "2:",
                "ldrd {x}, {y}, [{pw}], #8",
                "ldrd {u}, {v}, [{pc}], #8",
                "smlad {a00}, {x}, {u}, {a00}",
                "smlad {a01}, {x}, {v}, {a01}",
                "smlad {a10}, {y}, {u}, {a10}",
                "smlad {a11}, {y}, {v}, {a11}",
                "ldrd {x}, {y}, [{pw}], #8",
                "ldrd {u}, {v}, [{pc}], #8",
                "smlad {a00}, {x}, {u}, {a00}",
                "smlad {a01}, {x}, {v}, {a01}",
                "smlad {a10}, {y}, {u}, {a10}",
                "smlad {a11}, {y}, {v}, {a11}",
                "ldrd {x}, {y}, [{pw}], #8",
                "ldrd {u}, {v}, [{pc}], #8",
                "smlad {a00}, {x}, {u}, {a00}",
                "smlad {a01}, {x}, {v}, {a01}",
                "smlad {a10}, {y}, {u}, {a10}",
                "smlad {a11}, {y}, {v}, {a11}",
                "ldrd {x}, {y}, [{pw}], #8",
                "ldrd {u}, {v}, [{pc}], #8",
                "smlad {a00}, {x}, {u}, {a00}",
                "smlad {a01}, {x}, {v}, {a01}",
                "smlad {a10}, {y}, {u}, {a10}",
                "smlad {a11}, {y}, {v}, {a11}",
                "subs {n}, {n}, #1",
                "bne 2b",
                "ldr {pc}, [{prm}, #8]",
                "strd {a00}, {a01}, [{pc}], #8",
                "strd {a10}, {a11}, [{pc}], #8",
                "str {pc}, [{prm}, #8]",
                "ldr {n}, [{prm}, #12]",
                "subs {n}, {n}, #1",
                "str {n}, [{prm}, #12]",
                "bne 1b",
                pw = inout(reg) w => _,
                prm = in(reg) params.as_mut_ptr(),
                pc = out(reg) _,
                n = out(reg) _,
                x = out(reg) _, y = out(reg) _, u = out(reg) _, v = out(reg) _,
                a00 = out(reg) _, a01 = out(reg) _, a10 = out(reg) _, a11 = out(reg) _,
                options(nostack),
            );
        }
    }

    impl Mac for Dsp {
        fn widen(src: &[i8], offset: i32, dst: &mut [i16]) {
            let n = src.len().min(dst.len());
            let groups = n / 4;
            let off = offset_pair(offset);
            for g in 0..groups {
                let x = word_i8(src, g);
                put_word(dst, 4 * g, sadd16(sxtb16(x), off));
                put_word(dst, 4 * g + 2, sadd16(sxtb16_ror8(x), off));
            }
            // Tails only when there is one: their checked access would cost a head
            // layer's every pixel.
            if n > 4 * groups {
                let tail = sub(src, 4 * groups..n);
                for (d, &x) in dst.iter_mut().skip(4 * groups).zip(tail) {
                    *d = (x as i32 + offset) as i16;
                }
            }
        }

        // Inlined: a call costs as much as the work for the few channels of a head layer.
        #[inline(always)]
        fn widen_pair(a: &[i8], b: &[i8], offset: i32, dst: &mut [i16]) {
            let k = a.len().min(b.len()).min(dst.len() / 2);
            let groups = k / 4;
            let off = offset_pair(offset);
            for g in 0..groups {
                let (x, y) = (word_i8(a, g), word_i8(b, g));
                put_word(dst, 8 * g, sadd16(sxtb16(x), off));
                put_word(dst, 8 * g + 2, sadd16(sxtb16(y), off));
                put_word(dst, 8 * g + 4, sadd16(sxtb16_ror8(x), off));
                put_word(dst, 8 * g + 6, sadd16(sxtb16_ror8(y), off));
            }
            if k > 4 * groups {
                widen_tail_pair(
                    sub(a, 4 * groups..k),
                    sub(b, 4 * groups..k),
                    offset,
                    sub_mut(dst, 8 * groups..dst.len()),
                );
            }
        }

        #[inline(always)]
        fn widen_pair_segment(a: &[i8], b: &[i8], offset: i32, dst: &mut [i16], at: usize, k: usize) {
            let n = a.len().min(b.len());
            let groups = n / 4;
            let first = at / 4;
            if 8 * (first + groups) > dst.len() {
                return;
            }
            let off = offset_pair(offset);
            for g in 0..groups {
                let (x, y) = (word_i8(a, g), word_i8(b, g));
                let h = 8 * (first + g);
                put_word(dst, h, sadd16(sxtb16(x), off));
                put_word(dst, h + 2, sadd16(sxtb16(y), off));
                put_word(dst, h + 4, sadd16(sxtb16_ror8(x), off));
                put_word(dst, h + 6, sadd16(sxtb16_ror8(y), off));
            }
            // A remainder is the tail of the whole vectors: natural order, a then b.
            let t = n - 4 * groups;
            let base = 8 * (k / 4);
            if t > 0 && base + 2 * t <= dst.len() {
                widen_tail_pair(
                    sub(a, 4 * groups..n),
                    sub(b, 4 * groups..n),
                    offset,
                    sub_mut(dst, base..dst.len()),
                );
            }
        }

        #[inline(always)]
        fn dot_pp(w: &[i16], c: &[i16], k: usize) -> [i32; 4] {
            let k = k.min(w.len() / 2).min(c.len() / 2);
            let groups = k / 4;
            let [mut a00, mut a01, mut a10, mut a11] = [0i32; 4];
            // LDRD needs word-aligned addresses; the engine's buffers always are.
            let aligned = (w.as_ptr() as usize | c.as_ptr() as usize).is_multiple_of(4);
            let double = if aligned { groups / 2 } else { 0 };
            if double > 0 {
                let mut acc = [[0i32; 4]; 1];
                // SAFETY: one pair, `double` iterations read 32·double ≤ 16·groups bytes
                // ≤ 2k halfwords of each operand, word-aligned (checked above).
                unsafe { smlad_pairs(w.as_ptr(), c.as_ptr(), double, &mut acc) };
                [a00, a01, a10, a11] = acc[0];
            }
            for g in 2 * double..groups {
                for half in [0, 4] {
                    let (x, y) = (word_i16(w, 8 * g + half), word_i16(w, 8 * g + half + 2));
                    let (u, v) = (word_i16(c, 8 * g + half), word_i16(c, 8 * g + half + 2));
                    a00 = smlad(x, u, a00);
                    a01 = smlad(x, v, a01);
                    a10 = smlad(y, u, a10);
                    a11 = smlad(y, v, a11);
                }
            }
            let (base, t) = (8 * groups, k - 4 * groups);
            if t > 0 {
                let (wa, wb) = pair_tail(w, base, t);
                let (ca, cb) = pair_tail(c, base, t);
                for (((&wa, &wb), &ca), &cb) in wa.iter().zip(wb).zip(ca).zip(cb) {
                    a00 = mac(a00, wa, ca);
                    a01 = mac(a01, wa, cb);
                    a10 = mac(a10, wb, ca);
                    a11 = mac(a11, wb, cb);
                }
            }
            [a00, a01, a10, a11]
        }

        #[inline(always)]
        fn dot_pp_many(w: &[i16], c: &[i16], k: usize, out: &mut [[i32; 4]]) {
            let pairs = out.len().min(w.len() / (2 * k).max(1));
            let groups = k / 4;
            let aligned = (w.as_ptr() as usize | c.as_ptr() as usize).is_multiple_of(4);
            // Consecutive pairs in one asm loop need each pair to end where the next
            // starts: whole double groups (k a multiple of 8).
            if !aligned || !k.is_multiple_of(8) || groups < 2 || pairs == 0 || c.len() < 2 * k {
                for (wp, o) in w.chunks_exact((2 * k).max(1)).zip(out.iter_mut()) {
                    *o = Self::dot_pp(wp, c, k);
                }
                return;
            }
            // SAFETY: each pair reads 2k halfwords of `w` (pairs·2k ≤ w.len()) and 2k of
            // `c` (checked above), word-aligned; `out` holds at least `pairs` results.
            unsafe { smlad_pairs(w.as_ptr(), c.as_ptr(), groups / 2, &mut out[..pairs]) };
        }

        // Inlined: a call costs as much as the work for the few channels of a head layer.
        #[inline(always)]
        fn dot_sp(w: &[i16], c: &[i16], k: usize) -> [i32; 2] {
            let k = k.min(w.len()).min(c.len() / 2);
            let groups = k / 4;
            let (mut a0, mut a1) = (0i32, 0i32);
            for g in 0..groups {
                let (lo, hi) = (word_i16(w, 4 * g), word_i16(w, 4 * g + 2));
                a0 = smlad(lo, word_i16(c, 8 * g), a0);
                a1 = smlad(lo, word_i16(c, 8 * g + 2), a1);
                a0 = smlad(hi, word_i16(c, 8 * g + 4), a0);
                a1 = smlad(hi, word_i16(c, 8 * g + 6), a1);
            }
            let t = k - 4 * groups;
            if t > 0 {
                let (ca, cb) = pair_tail(c, 8 * groups, t);
                for ((&wv, &ca), &cb) in sub(w, 4 * groups..k).iter().zip(ca).zip(cb) {
                    a0 = mac(a0, wv, ca);
                    a1 = mac(a1, wv, cb);
                }
            }
            [a0, a1]
        }

        fn dot_ps(w: &[i16], c: &[i16], k: usize) -> [i32; 2] {
            let k = k.min(w.len() / 2).min(c.len());
            let groups = k / 4;
            let (mut a0, mut a1) = (0i32, 0i32);
            for g in 0..groups {
                let (lo, hi) = (word_i16(c, 4 * g), word_i16(c, 4 * g + 2));
                a0 = smlad(word_i16(w, 8 * g), lo, a0);
                a1 = smlad(word_i16(w, 8 * g + 2), lo, a1);
                a0 = smlad(word_i16(w, 8 * g + 4), hi, a0);
                a1 = smlad(word_i16(w, 8 * g + 6), hi, a1);
            }
            let t = k - 4 * groups;
            if t > 0 {
                let (wa, wb) = pair_tail(w, 8 * groups, t);
                for ((&wa, &wb), &cv) in wa.iter().zip(wb).zip(sub(c, 4 * groups..k)) {
                    a0 = mac(a0, wa, cv);
                    a1 = mac(a1, wb, cv);
                }
            }
            [a0, a1]
        }

        fn dot_ss(w: &[i16], c: &[i16], k: usize) -> i32 {
            let k = k.min(w.len()).min(c.len());
            let pairs = k / 2;
            let mut acc = 0i32;
            for p in 0..pairs {
                acc = smlad(word_i16(w, 2 * p), word_i16(c, 2 * p), acc);
            }
            if k % 2 == 1
                && let (Some(&wv), Some(&cv)) = (w.get(k - 1), c.get(k - 1))
            {
                acc = mac(acc, wv, cv);
            }
            acc
        }

        fn multiply_channels(acc: &mut [i32], x: &[i8], w: &[i8], offset: i32) {
            let n = acc.len().min(x.len()).min(w.len());
            let groups = n / 4;
            let off = offset_pair(offset);
            // Groups of four accumulators as arrays: no index to check in the loop.
            let (quads, _) = acc.as_chunks_mut::<4>();
            for (g, a) in quads.iter_mut().take(groups).enumerate() {
                let (xw, ww) = (word_i8(x, g), word_i8(w, g));
                // Channels (0, 2) and (1, 3) as halfword pairs; SMLABB / SMLATT multiply
                // the bottom and top halves separately, one product per channel.
                let (x02, x13) = (sadd16(sxtb16(xw), off), sadd16(sxtb16_ror8(xw), off));
                let (w02, w13) = (sxtb16(ww), sxtb16_ror8(ww));
                a[0] = smlabb(x02, w02, a[0]);
                a[1] = smlabb(x13, w13, a[1]);
                a[2] = smlatt(x02, w02, a[2]);
                a[3] = smlatt(x13, w13, a[3]);
            }
            if n == 4 * groups {
                return;
            }
            for ((a, &xv), &wv) in acc
                .iter_mut()
                .skip(4 * groups)
                .zip(sub(x, 4 * groups..n))
                .zip(sub(w, 4 * groups..n))
            {
                *a = a.wrapping_add((xv as i32 + offset) * wv as i32);
            }
        }

        fn dot_i8_2x1(w0: &[i8], w1: &[i8], c: &[i16]) -> [i32; 2] {
            let k = w0.len().min(w1.len()).min(c.len());
            let groups = k / 4;
            let (mut a0, mut a1) = (0i32, 0i32);
            for g in 0..groups {
                let (u, v) = (word_i8(w0, g), word_i8(w1, g));
                let (lo, hi) = (word_i16(c, 4 * g), word_i16(c, 4 * g + 2));
                a0 = smlad(sxtb16(u), lo, a0);
                a0 = smlad(sxtb16_ror8(u), hi, a0);
                a1 = smlad(sxtb16(v), lo, a1);
                a1 = smlad(sxtb16_ror8(v), hi, a1);
            }

            if k == 4 * groups {
                return [a0, a1];
            }
            for ((&u, &v), &cv) in sub(w0, 4 * groups..k)
                .iter()
                .zip(sub(w1, 4 * groups..k))
                .zip(sub(c, 4 * groups..k))
            {
                a0 = mac(a0, u as i16, cv);
                a1 = mac(a1, v as i16, cv);
            }
            [a0, a1]
        }

        fn dot_i8_1x1(w: &[i8], c: &[i16]) -> i32 {
            let k = w.len().min(c.len());
            let groups = k / 4;
            let mut acc = 0i32;
            for g in 0..groups {
                let u = word_i8(w, g);
                acc = smlad(sxtb16(u), word_i16(c, 4 * g), acc);
                acc = smlad(sxtb16_ror8(u), word_i16(c, 4 * g + 2), acc);
            }
            if k == 4 * groups {
                return acc;
            }
            for (&wv, &cv) in sub(w, 4 * groups..k).iter().zip(sub(c, 4 * groups..k)) {
                acc = mac(acc, wv as i16, cv);
            }
            acc
        }
    }
}
