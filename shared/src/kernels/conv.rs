//! 2-D convolution (any kernel size, stride, same/valid padding), with a 1×1 fast path.
//!
//! The CMSIS-NN scheme: for two output pixels at a time, gather their receptive fields
//! into int8 columns (padding filled with the input zero point, so it contributes 0),
//! widen them to q15 with the input offset, then multiply two filter rows against the two
//! columns. A 1×1, stride-1, unpadded convolution skips the gather: the column is the
//! input pixel itself.

use super::mac::Mac;
use super::{ChannelQuant, KernelError, PerChannel, expect_at_least, expect_len};
use crate::quant::{Clamp, requantize_to_i8};
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
        self.kernel_h == 1
            && self.kernel_w == 1
            && self.stride == 1
            && self.pad_top == 0
            && self.pad_left == 0
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

    /// Scratch a row needs: `(int8 gather, q15 columns)` element counts.
    pub fn scratch_len(&self) -> (usize, usize) {
        (self.column_len(), 2 * self.column_len())
    }

    /// Checks that the geometry is self-consistent and the buffers fit it.
    pub fn check(&self, filter: usize, channels: usize) -> Result<(), KernelError> {
        super::check_window(&self.window(), self.input, self.output)?;
        expect_len(
            "filter",
            self.output.channels as usize * self.column_len(),
            filter,
        )?;
        expect_len(
            "channel parameters",
            self.output.channels as usize,
            channels,
        )?;
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
    for ky in 0..p.kernel_h as usize {
        let seg = &mut col[ky * kw * cin..(ky + 1) * kw * cin];
        let y = y0 + ky as isize;
        if y < 0 || y >= p.input.height as isize {
            seg.fill(pad);
            continue;
        }
        let row = input.row(y as usize);
        // Split the kernel row into left padding, the in-bounds run, right padding.
        let first = (-x0).clamp(0, kw as isize) as usize;
        let last = (p.input.width as isize - x0).clamp(0, kw as isize) as usize;
        seg[..first * cin].fill(pad);
        if last > first {
            let src = (x0 + first as isize) as usize * cin;
            seg[first * cin..last * cin].copy_from_slice(&row[src..src + (last - first) * cin]);
        }
        seg[last.max(first) * cin..].fill(pad);
    }
}

#[inline(always)]
fn store(out: &mut [i8], idx: usize, acc: i32, q: ChannelQuant, p: &ConvParams) {
    out[idx] = requantize_to_i8(
        acc.wrapping_add(q.bias),
        q.requant,
        p.output_zero_point,
        p.clamp,
    );
}

/// Multiplies every filter row with one or two widened columns and stores the outputs
/// of pixels `ox` (and `ox + 1`).
#[inline(always)]
fn multiply<M: Mac, P: PerChannel + ?Sized>(
    p: &ConvParams,
    filter: &[i8],
    quant: &P,
    c0: &[i16],
    c1: Option<&[i16]>,
    ox: usize,
    out: &mut [i8],
) {
    let k = p.column_len();
    let cout = p.output.channels as usize;
    let base0 = ox * cout;
    let mut oc = 0;
    while oc + 1 < cout {
        let w0 = &filter[oc * k..(oc + 1) * k];
        let w1 = &filter[(oc + 1) * k..(oc + 2) * k];
        let (q0, q1) = (quant.get(oc), quant.get(oc + 1));
        match c1 {
            Some(c1) => {
                let a = M::dot_2x2(w0, w1, c0, c1);
                store(out, base0 + oc, a[0], q0, p);
                store(out, base0 + cout + oc, a[1], q0, p);
                store(out, base0 + oc + 1, a[2], q1, p);
                store(out, base0 + cout + oc + 1, a[3], q1, p);
            }
            None => {
                let a = M::dot_2x1(w0, w1, c0);
                store(out, base0 + oc, a[0], q0, p);
                store(out, base0 + oc + 1, a[1], q1, p);
            }
        }
        oc += 2;
    }
    if oc < cout {
        let w = &filter[oc * k..(oc + 1) * k];
        let q = quant.get(oc);
        store(out, base0 + oc, M::dot_1x1(w, c0), q, p);
        if let Some(c1) = c1 {
            store(out, base0 + cout + oc, M::dot_1x1(w, c1), q, p);
        }
    }
}

/// Computes output row `oy` into `out` (`output.width · output.channels` values).
/// `input` must hold every input row the window of `oy` touches.
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
    let k = p.column_len();
    let offset = -p.input_zero_point;
    let width = p.output.width as usize;
    if p.is_pointwise() {
        expect_at_least("q15 columns", 2 * k, columns.len())?;
        let row = input.row(oy);
        let (c0, rest) = columns.split_at_mut(k);
        let c1 = &mut rest[..k];
        let mut ox = 0;
        while ox + 1 < width {
            M::widen(&row[ox * k..(ox + 1) * k], offset, c0);
            M::widen(&row[(ox + 1) * k..(ox + 2) * k], offset, c1);
            multiply::<M, P>(p, filter, quant, c0, Some(c1), ox, out);
            ox += 2;
        }
        if ox < width {
            M::widen(&row[ox * k..(ox + 1) * k], offset, c0);
            multiply::<M, P>(p, filter, quant, c0, None, ox, out);
        }
        return Ok(());
    }
    expect_at_least("int8 gather", k, gather_buf.len())?;
    expect_at_least("q15 columns", 2 * k, columns.len())?;
    let g = &mut gather_buf[..k];
    let (c0, rest) = columns.split_at_mut(k);
    let c1 = &mut rest[..k];
    let mut ox = 0;
    while ox + 1 < width {
        gather(p, input, oy, ox, g);
        M::widen(g, offset, c0);
        gather(p, input, oy, ox + 1, g);
        M::widen(g, offset, c1);
        multiply::<M, P>(p, filter, quant, c0, Some(c1), ox, out);
        ox += 2;
    }
    if ox < width {
        gather(p, input, oy, ox, g);
        M::widen(g, offset, c0);
        multiply::<M, P>(p, filter, quant, c0, None, ox, out);
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
) -> Result<(), KernelError> {
    let rows = Rows::whole(input, p.input).ok_or(KernelError::Length {
        what: "input",
        expected: p.input.len(),
        found: input.len(),
    })?;
    expect_len("output", p.output.len(), output.len())?;
    let row_len = p.output.row_len();
    for (oy, out) in output.chunks_exact_mut(row_len.max(1)).enumerate() {
        conv_row::<M, P>(p, filter, quant, &rows, oy, out, gather_buf, columns)?;
    }
    Ok(())
}
