//! 2-D convolution (any kernel size, stride, same/valid padding), with a 1×1 fast path.
//!
//! The CMSIS-NN scheme: for two output pixels at a time, gather their receptive fields
//! into int8 columns (padding filled with the input zero point, so it contributes 0),
//! widen them to q15 with the input offset, then multiply two filter rows against the two
//! columns. A 1×1, stride-1, unpadded convolution skips the gather: the column is the
//! input pixel itself.

use super::mac::Mac;
use super::{General, KernelError, PerChannel, Requantizer, Short, expect_at_least, expect_len, sub, sub_mut};
use crate::quant::Clamp;
use crate::tensor::{Rows, Shape};

/// Geometry and quantization of a convolution (filter OHWI).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvParams {
    pub input: Shape,
    pub output: Shape,
    pub kernel_h: u8,
    pub kernel_w: u8,
    pub stride: u8,
    pub pad_top: u16,
    pub pad_left: u16,
    pub input_zero_point: i32,
    pub output_zero_point: i32,
    pub clamp: Clamp,
}

impl ConvParams {
    /// Values in one receptive field: `kernel_h · kernel_w · in_channels`.
    pub fn column_len(&self) -> usize {
        self.kernel_h as usize * self.kernel_w as usize * self.input.channels as usize
    }

    pub fn is_pointwise(&self) -> bool {
        self.kernel_h == 1 && self.kernel_w == 1 && self.stride == 1 && self.pad_top == 0 && self.pad_left == 0
    }

    pub fn window(&self) -> super::Window {
        super::Window {
            kernel_h: self.kernel_h,
            kernel_w: self.kernel_w,
            stride: self.stride,
            pad_top: self.pad_top,
            pad_left: self.pad_left,
        }
    }

    /// Scratch a row needs, in elements: `(int8 gather, q15 columns, q15 weights)`.
    /// The gather buffer is unused by the 1×1 fast path.
    pub fn scratch_len(&self) -> (usize, usize, usize) {
        let k = self.column_len();
        let pairs = (self.output.channels as usize).div_ceil(2);
        (if self.is_pointwise() { 0 } else { 2 * k }, 2 * k, pairs * 2 * k)
    }

    /// Checks that the geometry is self-consistent and the buffers fit it.
    pub fn check(&self, filter: usize, channels: usize) -> Result<(), KernelError> {
        super::check_window(&self.window(), self.input, self.output)?;
        expect_len("filter", self.output.channels as usize * self.column_len(), filter)?;
        expect_len("channel parameters", self.output.channels as usize, channels)?;
        Ok(())
    }
}

/// Gathers the receptive field of output pixel `(oy, ox)` into `col` (length K).
#[inline(always)]
fn gather(p: &ConvParams, input: &Rows<'_>, oy: usize, ox: usize, col: &mut [i8]) {
    let cin = p.input.channels as usize;
    let kw = p.kernel_w as usize;
    let pad = p.input_zero_point as i8;
    let y0 = (oy * p.stride as usize) as isize - p.pad_top as isize;
    let x0 = (ox * p.stride as usize) as isize - p.pad_left as isize;
    for (ky, seg) in col
        .chunks_exact_mut((kw * cin).max(1))
        .take(p.kernel_h as usize)
        .enumerate()
    {
        let y = y0 + ky as isize;
        if y < 0 || y >= p.input.height as isize {
            seg.fill(pad);
            continue;
        }
        let row = input.row(y as usize);
        // Split the kernel row into left padding, the in-bounds run, right padding.
        let first = (-x0).clamp(0, kw as isize) as usize;
        let last = (p.input.width as isize - x0).clamp(0, kw as isize).max(first as isize) as usize;
        let src = (x0 + first as isize).max(0) as usize * cin;
        let run = sub(row, src..src + (last - first) * cin);
        let (left, rest) = seg.split_at_mut_checked(first * cin).unwrap_or((&mut [], &mut []));
        left.fill(pad);
        let (inside, right) = rest.split_at_mut_checked(run.len()).unwrap_or((&mut [], &mut []));
        for (d, &v) in inside.iter_mut().zip(run) {
            *d = v;
        }
        right.fill(pad);
    }
}

/// Widens the filter into pair layout, two output channels at a time (an odd last
/// channel in single layout), so the inner loop reads q15 weights without unpacking.
fn widen_filter<M: Mac>(p: &ConvParams, filter: &[i8], wq: &mut [i16]) {
    let k = p.column_len();
    let cout = p.output.channels as usize;
    let mut oc = 0;
    while oc + 1 < cout {
        M::widen_pair(
            sub(filter, oc * k..(oc + 1) * k),
            sub(filter, (oc + 1) * k..(oc + 2) * k),
            0,
            sub_mut(wq, oc * k..(oc + 2) * k),
        );
        oc += 2;
    }
    if oc < cout {
        M::widen(sub(filter, oc * k..(oc + 1) * k), 0, sub_mut(wq, oc * k..(oc + 1) * k));
    }
}

/// The widened filter, split once per row: the channel pairs, and the odd last channel.
#[derive(Clone, Copy)]
struct Widened<'w> {
    pairs: &'w [i16],
    last: &'w [i16],
}

impl<'w> Widened<'w> {
    fn of(p: &ConvParams, wq: &'w [i16]) -> Self {
        let k = p.column_len();
        let pairs = p.output.channels as usize / 2;
        let (pairs, last) = wq.split_at_checked(pairs * 2 * k).unwrap_or((wq, &[]));
        Widened {
            pairs,
            last: sub(last, 0..k),
        }
    }
}

/// Channel pairs whose dot products one backend call computes.
const BLOCK: usize = 16;

/// Multiplies every filter row with the widened column(s) of pixel `ox` (and `ox + 1`
/// when `pair`) and stores the requantized outputs. Iterators over exact chunks keep
/// bounds checks out of the channel loop; `accs` is the caller's, so it is not cleared
/// for every pixel (the backend writes each entry it hands back).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn multiply<M: Mac, P: PerChannel + ?Sized, R: Requantizer<P>>(
    p: &ConvParams,
    wq: Widened<'_>,
    quant: &P,
    cols: &[i16],
    pair: bool,
    ox: usize,
    out: &mut [i8],
    accs: &mut [[i32; 4]; BLOCK],
) {
    let k = p.column_len();
    let cout = p.output.channels as usize;
    let (zp, clamp) = (p.output_zero_point, p.clamp);
    let rq = |acc: i32, q: R::Entry| R::apply(acc, q, zp, clamp);
    // SAFETY: `conv_row_with` checked `quant.channels() == cout` (`ConvParams::check`)
    // before any call, and every `c` below is an output channel, `c < cout`.
    let ch = |c: usize| unsafe { R::entry_unchecked(quant, c) };
    let pairs = cout / 2;
    let Widened {
        pairs: wq_pairs,
        last: wq_last,
    } = wq;
    if pair {
        // An early return, not an empty fallback: the compiler then knows the lengths.
        let Some((out0, out1)) = out
            .get_mut(ox * cout..(ox + 2) * cout)
            .and_then(|o| o.split_at_mut_checked(cout))
        else {
            return;
        };
        // Dot products for a block of channel pairs in one backend call, then their
        // requantization: the DSP backend keeps the whole block in one loop.
        let mut oc = 0;
        for ((wb, o0b), o1b) in wq_pairs
            .chunks((BLOCK * 2 * k).max(1))
            .zip(out0.chunks_mut(2 * BLOCK))
            .zip(out1.chunks_mut(2 * BLOCK))
        {
            let n = (wb.len() / (2 * k).max(1)).min(BLOCK);
            let block = sub_mut(accs, 0..n);
            M::dot_pp_many(wb, cols, k, block);
            for ((a, o0), o1) in block.iter().zip(o0b.chunks_exact_mut(2)).zip(o1b.chunks_exact_mut(2)) {
                let (q0, q1) = (ch(oc), ch(oc + 1));
                o0[0] = rq(a[0], q0);
                o1[0] = rq(a[1], q0);
                o0[1] = rq(a[2], q1);
                o1[1] = rq(a[3], q1);
                oc += 2;
            }
        }
        if cout % 2 == 1
            && let (Some(o0), Some(o1)) = (out0.last_mut(), out1.last_mut())
        {
            let q = ch(cout - 1);
            let a = M::dot_sp(wq_last, cols, k);
            *o0 = rq(a[0], q);
            *o1 = rq(a[1], q);
        }
    } else {
        let Some(out0) = out.get_mut(ox * cout..(ox + 1) * cout) else {
            return;
        };
        // By index rather than zipped exact chunks: `Zip` of two chunk iterators divides
        // by a chunk size it cannot see is non-zero, a panic path in the firmware.
        let (o_pairs, _) = out0.as_chunks_mut::<2>();
        for (j, o0) in o_pairs.iter_mut().take(pairs).enumerate() {
            let oc = 2 * j;
            let (q0, q1) = (ch(oc), ch(oc + 1));
            let a = M::dot_ps(sub(wq_pairs, oc * k..(oc + 2) * k), cols, k);
            o0[0] = rq(a[0], q0);
            o0[1] = rq(a[1], q1);
        }
        if cout % 2 == 1
            && let Some(o0) = out0.last_mut()
        {
            *o0 = rq(M::dot_ss(wq_last, cols, k), ch(cout - 1));
        }
    }
}

/// Computes output row `oy` into `out` (`output.width · output.channels` values).
/// `input` must hold every input row the window of `oy` touches; the scratch buffers
/// hold at least [`ConvParams::scratch_len`] elements (word-aligned for the DSP path).
#[allow(clippy::too_many_arguments)]
pub fn conv_row<M: Mac, P: PerChannel + ?Sized>(
    p: &ConvParams,
    filter: &[i8],
    quant: &P,
    input: &Rows<'_>,
    oy: usize,
    out: &mut [i8],
    gather_buf: &mut [i8],
    columns: &mut [i16],
    weights: &mut [i16],
) -> Result<(), KernelError> {
    if quant.all_short() {
        conv_row_with::<M, P, Short>(p, filter, quant, input, oy, out, gather_buf, columns, weights)
    } else {
        conv_row_with::<M, P, General>(p, filter, quant, input, oy, out, gather_buf, columns, weights)
    }
}

#[allow(clippy::too_many_arguments)]
fn conv_row_with<M: Mac, P: PerChannel + ?Sized, R: Requantizer<P>>(
    p: &ConvParams,
    filter: &[i8],
    quant: &P,
    input: &Rows<'_>,
    oy: usize,
    out: &mut [i8],
    gather_buf: &mut [i8],
    columns: &mut [i16],
    weights: &mut [i16],
) -> Result<(), KernelError> {
    p.check(filter.len(), quant.channels())?;
    if oy >= p.output.height as usize {
        return Err(KernelError::Row {
            row: oy,
            height: p.output.height as usize,
        });
    }
    expect_len("input row", p.input.row_len(), input.row_len())?;
    expect_len("output row", p.output.row_len(), out.len())?;
    let (g_len, c_len, w_len) = p.scratch_len();
    expect_at_least("int8 gather", g_len, gather_buf.len())?;
    expect_at_least("q15 columns", c_len, columns.len())?;
    expect_at_least("q15 weights", w_len, weights.len())?;
    let (Some(wq), Some(cols)) = (weights.get_mut(..w_len), columns.get_mut(..c_len)) else {
        // Checked above.
        return Err(KernelError::Length {
            what: "scratch",
            expected: w_len + c_len,
            found: weights.len() + columns.len(),
        });
    };
    widen_filter::<M>(p, filter, wq);
    let widened = Widened::of(p, wq);
    let k = p.column_len();
    let offset = -p.input_zero_point;
    let width = p.output.width as usize;
    let mut accs = [[0i32; 4]; BLOCK];
    let mut ox = 0;
    if p.is_pointwise() {
        let row = input.row(oy);
        while ox + 1 < width {
            let Some((a, b)) = row.get(ox * k..(ox + 2) * k).and_then(|r| r.split_at_checked(k)) else {
                break;
            };
            M::widen_pair(a, b, offset, cols);
            multiply::<M, P, R>(p, widened, quant, cols, true, ox, out, &mut accs);
            ox += 2;
        }
        if ox < width
            && let Some(a) = row.get(ox * k..(ox + 1) * k)
        {
            M::widen(a, offset, cols);
            multiply::<M, P, R>(p, widened, quant, cols, false, ox, out, &mut accs);
        }
        return Ok(());
    }
    let (g0, g1) = sub_mut(gather_buf, 0..2 * k)
        .split_at_mut_checked(k)
        .unwrap_or((&mut [], &mut []));
    let cin = p.input.channels as usize;
    let (kh, kw, s) = (p.kernel_h as usize, p.kernel_w as usize, p.stride as usize);
    let segment = kw * cin;
    let y0 = (oy * s) as isize - p.pad_top as isize;
    // Windows wholly inside the input are widened straight from the input rows, one
    // kernel row (a contiguous segment) at a time; border windows are gathered first.
    let rows_inside = y0 >= 0 && y0 as usize + kh <= p.input.height as usize;
    let segments_fit = segment.is_multiple_of(4) || kh == 1;
    while ox + 1 < width {
        let xa = (ox * s) as isize - p.pad_left as isize;
        let xb = xa + s as isize;
        if rows_inside && segments_fit && xa >= 0 && xb as usize + kw <= p.input.width as usize {
            let (xa, xb) = (xa as usize * cin, xb as usize * cin);
            for ky in 0..kh {
                let row = input.row(y0 as usize + ky);
                if let (Some(a), Some(b)) = (row.get(xa..xa + segment), row.get(xb..xb + segment)) {
                    M::widen_pair_segment(a, b, offset, cols, ky * segment, k);
                }
            }
        } else {
            gather(p, input, oy, ox, g0);
            gather(p, input, oy, ox + 1, g1);
            M::widen_pair(g0, g1, offset, cols);
        }
        multiply::<M, P, R>(p, widened, quant, cols, true, ox, out, &mut accs);
        ox += 2;
    }
    if ox < width {
        gather(p, input, oy, ox, g0);
        M::widen(g0, offset, cols);
        multiply::<M, P, R>(p, widened, quant, cols, false, ox, out, &mut accs);
    }
    Ok(())
}

/// Whole-map convolution: every output row of `input` (HWC) into `output` (HWC).
#[allow(clippy::too_many_arguments)]
pub fn conv2d<M: Mac, P: PerChannel + ?Sized>(
    p: &ConvParams,
    filter: &[i8],
    quant: &P,
    input: &[i8],
    output: &mut [i8],
    gather_buf: &mut [i8],
    columns: &mut [i16],
    weights: &mut [i16],
) -> Result<(), KernelError> {
    let rows = Rows::whole(input, p.input).ok_or(KernelError::Length {
        what: "input",
        expected: p.input.len(),
        found: input.len(),
    })?;
    expect_len("output", p.output.len(), output.len())?;
    let row_len = p.output.row_len();
    for (oy, out) in output.chunks_exact_mut(row_len.max(1)).enumerate() {
        conv_row::<M, P>(p, filter, quant, &rows, oy, out, gather_buf, columns, weights)?;
    }
    Ok(())
}
