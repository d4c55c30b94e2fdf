//! Kernel test vectors exchanged between the host and the emulated device: each case is a
//! small model blob, an input map and the output the host computed for it. The device
//! runs every case on both MAC backends and must reproduce the output byte for byte.
//!
//! File layout: a sequence of records, each a little-endian u32 length followed by that
//! many bytes of postcard-encoded [`Case`].

use serde::{Deserialize, Serialize};

use crate::model::{MAX_OUTPUTS, Model};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Case<'a> {
    #[serde(borrow)]
    pub name: &'a str,
    #[serde(borrow)]
    pub blob: &'a [u8],
    #[serde(borrow)]
    pub input: &'a [u8],
    #[serde(borrow)]
    pub expected: &'a [u8],
}

impl<'a> Case<'a> {
    pub fn decode(bytes: &'a [u8]) -> Result<Self, postcard::Error> {
        postcard::from_bytes(bytes)
    }
}

/// Where each output of a model goes in a case's `expected` bytes: the outputs' whole
/// maps one after another, in the model's order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutputLayout {
    starts: [usize; MAX_OUTPUTS],
    row_lens: [usize; MAX_OUTPUTS],
    heights: [usize; MAX_OUTPUTS],
    count: usize,
}

impl OutputLayout {
    pub fn of(model: &Model<'_>) -> Self {
        let mut l = OutputLayout {
            starts: [0; MAX_OUTPUTS],
            row_lens: [0; MAX_OUTPUTS],
            heights: [0; MAX_OUTPUTS],
            count: model.outputs().len().min(MAX_OUTPUTS),
        };
        let mut at = 0;
        for k in 0..l.count {
            let shape = model.output_shape_of(k);
            l.starts[k] = at;
            l.row_lens[k] = shape.row_len();
            l.heights[k] = shape.height as usize;
            at += shape.len();
        }
        l
    }

    /// Bytes of all outputs together.
    pub fn total(&self) -> usize {
        (0..self.count).map(|k| self.row_lens[k] * self.heights[k]).sum()
    }

    /// The range of row `y` of output `k`, if both exist.
    pub fn row(&self, k: usize, y: usize) -> Option<core::ops::Range<usize>> {
        if k >= self.count || y >= self.heights[k] {
            return None;
        }
        let start = self.starts[k] + y * self.row_lens[k];
        Some(start..start + self.row_lens[k])
    }
}
