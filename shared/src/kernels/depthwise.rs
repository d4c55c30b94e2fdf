//! Depthwise 2-D convolution, depth multiplier 1 (filter 1HWC): each channel is convolved
//! with its own kernel. Portable code: its inner loop runs along the channels of one
//! pixel, which the compiler vectorises on the host and keeps in registers on Cortex-M.

use super::mac::Mac;
use super::{General, KernelError, PerChannel, Requantizer, Short, expect_at_least, expect_len};
use crate::quant::Clamp;
use crate::tensor::{Rows, Shape};

/// Geometry and quantization of a depthwise convolution; `output.channels == input.channels`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DepthwiseParams {
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

impl DepthwiseParams {
    pub fn check(&self, filter: usize, channels: usize) -> Result<(), KernelError> {
        if self.input.channels != self.output.channels {
            return Err(KernelError::Geometry(
                "depthwise output channels differ from input channels",
            ));
        }
        super::check_window(&self.window(), self.input, self.output)?;
        let c = self.input.channels as usize;
        expect_len("channel parameters", c, channels)?;
        expect_len(
            "depthwise filter",
            self.kernel_h as usize * self.kernel_w as usize * c,
            filter,
        )
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

    /// i32 accumulators a row needs.
    pub fn scratch_len(&self) -> usize {
        self.input.channels as usize
    }
}

/// Computes output row `oy`. `acc` holds at least `channels` accumulators.
pub fn depthwise_row<M: Mac, P: PerChannel + ?Sized>(
    p: &DepthwiseParams,
    filter: &[i8],
    quant: &P,
    input: &Rows<'_>,
    oy: usize,
    out: &mut [i8],
    acc: &mut [i32],
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
    let c = p.input.channels as usize;
    expect_at_least("accumulators", c, acc.len())?;
    let (kh, kw) = (p.kernel_h as isize, p.kernel_w as isize);
    let (h, w) = (p.input.height as isize, p.input.width as isize);
    let zp = p.input_zero_point;
    let (ozp, clamp) = (p.output_zero_point, p.clamp);
    let y0 = (oy * p.stride as usize) as isize - p.pad_top as isize;
    let window = input.window(y0, kh as usize, h as usize);
    let rows = &window[..kh as usize];
    let acc = &mut acc[..c];
    let short = quant.all_short();
    for ox in 0..p.output.width as usize {
        let x0 = (ox * p.stride as usize) as isize - p.pad_left as isize;
        let (kx_lo, kx_hi) = ((-x0).max(0) as usize, (w - x0).min(kw) as usize);
        acc.fill(0);
        // Tap by tap, all channels of the pixel at once: the inner loop runs along
        // contiguous channels of the input pixel and the filter tap.
        for (ky, row) in rows.iter().enumerate() {
            let Some(row) = row else { continue };
            for kx in kx_lo..kx_hi {
                let xi = (x0 + kx as isize) as usize * c;
                let wi = (ky * kw as usize + kx) * c;
                if let (Some(x), Some(f)) = (row.get(xi..xi + c), filter.get(wi..wi + c)) {
                    M::multiply_channels(acc, x, f, -zp);
                }
            }
        }
        let Some(o) = out.get_mut(ox * c..(ox + 1) * c) else {
            break;
        };
        if short {
            requantize_pixel::<P, Short>(quant, acc, o, ozp, clamp);
        } else {
            requantize_pixel::<P, General>(quant, acc, o, ozp, clamp);
        }
    }
    Ok(())
}

/// The pixel's accumulators into its outputs.
#[inline(always)]
fn requantize_pixel<P: PerChannel + ?Sized, R: Requantizer<P>>(
    quant: &P,
    acc: &[i32],
    out: &mut [i8],
    zp: i32,
    clamp: Clamp,
) {
    for (ch, (dst, &a)) in out.iter_mut().zip(acc).enumerate() {
        *dst = R::apply(a, R::entry(quant, ch), zp, clamp);
    }
}

/// Whole-map depthwise convolution.
pub fn depthwise_conv2d<M: Mac, P: PerChannel + ?Sized>(
    p: &DepthwiseParams,
    filter: &[i8],
    quant: &P,
    input: &[i8],
    output: &mut [i8],
    acc: &mut [i32],
) -> Result<(), KernelError> {
    let rows = Rows::whole(input, p.input).ok_or(KernelError::Length {
        what: "input",
        expected: p.input.len(),
        found: input.len(),
    })?;
    expect_len("output", p.output.len(), output.len())?;
    for (oy, out) in output.chunks_exact_mut(p.output.row_len().max(1)).enumerate() {
        depthwise_row::<M, P>(p, filter, quant, &rows, oy, out, acc)?;
    }
    Ok(())
}
