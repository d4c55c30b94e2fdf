//! Fully connected layer (weights `[out][in]`, `in` the flattened HWC index), computable
//! in one go or accumulated chunk by chunk as input rows stream in.

use super::mac::Mac;
use super::{KernelError, PerChannel, expect_at_least, expect_len, sub, sub_mut};
use crate::quant::{Clamp, requantize_prepared};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FullyConnectedParams {
    pub in_features: usize,
    pub out_features: usize,
    pub input_zero_point: i32,
    pub output_zero_point: i32,
    pub clamp: Clamp,
}

impl FullyConnectedParams {
    pub fn check(&self, weights: usize, channels: usize) -> Result<(), KernelError> {
        if self.in_features == 0 || self.out_features == 0 {
            return Err(KernelError::Geometry("fully connected layer with no features"));
        }
        expect_len("weights", self.in_features * self.out_features, weights)?;
        expect_len("channel parameters", self.out_features, channels)
    }
}

/// Adds the contribution of input values `chunk`, which start at flattened index
/// `start`, to the accumulators `acc` (one per output, start them at 0).
/// `columns` holds at least `chunk.len()` q15 values.
pub fn accumulate<M: Mac>(
    p: &FullyConnectedParams,
    weights: &[i8],
    chunk: &[i8],
    start: usize,
    acc: &mut [i32],
    columns: &mut [i16],
) -> Result<(), KernelError> {
    expect_len("weights", p.in_features * p.out_features, weights.len())?;
    expect_len("accumulators", p.out_features, acc.len())?;
    let n = chunk.len();
    if start.checked_add(n).is_none_or(|end| end > p.in_features) {
        return Err(KernelError::Length {
            what: "input chunk end",
            expected: p.in_features,
            found: start + n,
        });
    }
    expect_at_least("q15 columns", n, columns.len())?;
    let col = sub_mut(columns, 0..n);
    M::widen(chunk, -p.input_zero_point, col);
    let row = |o: usize| sub(weights, o * p.in_features + start..o * p.in_features + start + n);
    let mut o = 0;
    while o + 1 < p.out_features {
        let a = M::dot_i8_2x1(row(o), row(o + 1), col);
        acc[o] = acc[o].wrapping_add(a[0]);
        acc[o + 1] = acc[o + 1].wrapping_add(a[1]);
        o += 2;
    }
    if o < p.out_features {
        acc[o] = acc[o].wrapping_add(M::dot_i8_1x1(row(o), col));
    }
    Ok(())
}

/// Adds the biases and requantizes the accumulators into `out`.
pub fn finish<P: PerChannel + ?Sized>(
    p: &FullyConnectedParams,
    quant: &P,
    acc: &[i32],
    out: &mut [i8],
) -> Result<(), KernelError> {
    expect_len("channel parameters", p.out_features, quant.channels())?;
    expect_len("accumulators", p.out_features, acc.len())?;
    expect_len("output", p.out_features, out.len())?;
    for (o, (dst, &a)) in out.iter_mut().zip(acc).enumerate() {
        let q = quant.get(o);
        *dst = requantize_prepared(a.wrapping_add(q.0), q.1, p.output_zero_point, p.clamp);
    }
    Ok(())
}

/// The whole layer at once.
#[allow(clippy::too_many_arguments)]
pub fn fully_connected<M: Mac, P: PerChannel + ?Sized>(
    p: &FullyConnectedParams,
    weights: &[i8],
    quant: &P,
    input: &[i8],
    output: &mut [i8],
    acc: &mut [i32],
    columns: &mut [i16],
) -> Result<(), KernelError> {
    p.check(weights.len(), quant.channels())?;
    expect_len("input", p.in_features, input.len())?;
    expect_at_least("accumulators", p.out_features, acc.len())?;
    let acc = &mut acc[..p.out_features];
    acc.fill(0);
    accumulate::<M>(p, weights, input, 0, acc, columns)?;
    finish(p, quant, acc, output)
}
