//! Max and average pooling (TFLite int8 semantics: input and output share scale and zero
//! point; the average divides by the number of in-bounds elements, rounding half away
//! from zero; both clamp to the fused activation range).

use super::{KernelError, Window, check_window, expect_len, sub, sub_mut};
use crate::quant::Clamp;
use crate::tensor::{Rows, Shape};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolKind {
    Max,
    Average,
}

/// Geometry of a pooling layer; `output.channels == input.channels`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolParams {
    pub kind: PoolKind,
    pub input: Shape,
    pub output: Shape,
    pub window: Window,
    pub clamp: Clamp,
}

impl PoolParams {
    pub fn check(&self) -> Result<(), KernelError> {
        if self.input.channels != self.output.channels {
            return Err(KernelError::Geometry(
                "pooling output channels differ from input channels",
            ));
        }
        check_window(&self.window, self.input, self.output)
    }
}

/// Computes output row `oy` of a pooling layer.
pub fn pool_row(p: &PoolParams, input: &Rows<'_>, oy: usize, out: &mut [i8]) -> Result<(), KernelError> {
    p.check()?;
    if oy >= p.output.height as usize {
        return Err(KernelError::Row {
            row: oy,
            height: p.output.height as usize,
        });
    }
    expect_len("input row", p.input.row_len(), input.row_len())?;
    expect_len("output row", p.output.row_len(), out.len())?;
    let c = p.input.channels as usize;
    let w = &p.window;
    let (h_in, w_in) = (p.input.height as isize, p.input.width as isize);
    let y0 = (oy * w.stride as usize) as isize - w.pad_top as isize;
    let y_lo = y0.max(0);
    let y_hi = (y0 + w.kernel_h as isize).min(h_in);
    let window = input.window(y0, w.kernel_h as usize, h_in as usize);
    let rows = &window[..w.kernel_h as usize];
    let (lo, hi) = (p.clamp.min as i32, p.clamp.max as i32);
    for ox in 0..p.output.width as usize {
        let x0 = (ox * w.stride as usize) as isize - w.pad_left as isize;
        let x_lo = x0.max(0);
        let x_hi = (x0 + w.kernel_w as isize).min(w_in);
        // A window always overlaps the input (checked with the parameters).
        let count = (((y_hi - y_lo) * (x_hi - x_lo)) as i32).max(1);
        let o = sub_mut(out, ox * c..(ox + 1) * c);
        match p.kind {
            PoolKind::Max => {
                // Channels innermost: contiguous in both the input pixel and the output.
                o.fill(i8::MIN);
                for row in rows.iter().flatten() {
                    for x in x_lo..x_hi {
                        let px = sub(row, x as usize * c..(x as usize + 1) * c);
                        for (m, &v) in o.iter_mut().zip(px) {
                            *m = (*m).max(v);
                        }
                    }
                }
                for m in o.iter_mut() {
                    *m = (*m as i32).max(lo).min(hi) as i8;
                }
            }
            PoolKind::Average => {
                // Sums in blocks of channels kept on the stack (no scratch needed).
                const BLOCK: usize = 16;
                for (b, ob) in o.chunks_mut(BLOCK).enumerate() {
                    let mut sum = [0i32; BLOCK];
                    let base = b * BLOCK;
                    for row in rows.iter().flatten() {
                        for x in x_lo..x_hi {
                            let px = sub(row, x as usize * c + base..x as usize * c + base + ob.len());
                            for (s, &v) in sum.iter_mut().zip(px) {
                                *s += v as i32;
                            }
                        }
                    }
                    for (dst, &s) in ob.iter_mut().zip(&sum) {
                        // TFLite: (sum ± count/2) / count with C's truncating division.
                        let v = if s > 0 {
                            (s + count / 2) / count
                        } else {
                            (s - count / 2) / count
                        };
                        *dst = v.max(lo).min(hi) as i8;
                    }
                }
            }
        }
    }
    Ok(())
}

/// Whole-map pooling.
pub fn pool2d(p: &PoolParams, input: &[i8], output: &mut [i8]) -> Result<(), KernelError> {
    let rows = Rows::whole(input, p.input).ok_or(KernelError::Length {
        what: "input",
        expected: p.input.len(),
        found: input.len(),
    })?;
    expect_len("output", p.output.len(), output.len())?;
    for (oy, out) in output.chunks_exact_mut(p.output.row_len().max(1)).enumerate() {
        pool_row(p, &rows, oy, out)?;
    }
    Ok(())
}
