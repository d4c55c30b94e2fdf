//! Tensor shapes, padding geometry and row access.
//!
//! Layout: every activation tensor is int8 **HWC** (height, width, channels; channels
//! fastest), as in TFLite and CMSIS-NN. A row is `width · channels` bytes. Filters are
//! **OHWI** (output channel, kernel row, kernel column, input channel); depthwise filters
//! are **1HWC**; fully-connected weights are `[out][in]` with `in` the flattened HWC index.

use serde::{Deserialize, Serialize};

/// Height × width × channels of an int8 HWC tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shape {
    pub height: u16,
    pub width: u16,
    pub channels: u16,
}

impl Shape {
    pub const fn new(height: u16, width: u16, channels: u16) -> Self {
        Shape {
            height,
            width,
            channels,
        }
    }
    pub const fn row_len(&self) -> usize {
        self.width as usize * self.channels as usize
    }
    pub const fn len(&self) -> usize {
        self.height as usize * self.row_len()
    }
    pub const fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// TFLite padding modes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Padding {
    /// Output `ceil(in / stride)`; the padding total `max((out−1)·stride + k − in, 0)`
    /// is split with the smaller half on top/left, as TFLite does.
    Same,
    /// No padding; output `(in − k) / stride + 1`.
    Valid,
}

/// Output size and leading padding of one spatial dimension, or `None` when the window
/// does not fit (valid padding with a kernel larger than the input) or a size is zero.
pub fn output_dim(input: u16, kernel: u8, stride: u8, padding: Padding) -> Option<(u16, u16)> {
    let (i, k, s) = (input as u32, kernel as u32, stride as u32);
    if i == 0 || k == 0 || s == 0 {
        return None;
    }
    match padding {
        Padding::Same => {
            let out = i.div_ceil(s);
            let total = ((out - 1) * s + k).saturating_sub(i);
            Some((out as u16, (total / 2) as u16))
        }
        Padding::Valid => {
            if k > i {
                return None;
            }
            Some((((i - k) / s + 1) as u16, 0))
        }
    }
}

/// Read access to rows `y` of an HWC tensor held in a ring of `capacity` rows: row `y`
/// lives in slot `y % capacity`. A whole map is the ring with `capacity == height`.
#[derive(Clone, Copy)]
pub struct Rows<'a> {
    data: &'a [i8],
    row_len: usize,
    capacity: usize,
}

impl<'a> Rows<'a> {
    /// `data` must hold at least `capacity · row_len` values (checked; `None` otherwise).
    pub fn new(data: &'a [i8], row_len: usize, capacity: usize) -> Option<Self> {
        if capacity == 0 || data.len() < capacity.checked_mul(row_len)? {
            return None;
        }
        Some(Rows {
            data,
            row_len,
            capacity,
        })
    }

    /// The whole map of `shape`.
    pub fn whole(data: &'a [i8], shape: Shape) -> Option<Self> {
        if data.len() != shape.len() {
            return None;
        }
        Rows::new(data, shape.row_len(), shape.height as usize)
    }

    /// Row `y`; empty if the ring's buffer cannot hold it (never for a ring built by
    /// [`Rows::new`], which checks its length; the kernels then refuse the short row).
    #[inline(always)]
    pub fn row(&self, y: usize) -> &'a [i8] {
        self.row_checked(y).unwrap_or(&[])
    }

    /// Row `y`, or `None` if the ring's buffer cannot hold it.
    #[inline(always)]
    pub fn row_checked(&self, y: usize) -> Option<&'a [i8]> {
        let start = (y % self.capacity.max(1)) * self.row_len;
        self.data.get(start..start + self.row_len)
    }

    pub fn row_len(&self) -> usize {
        self.row_len
    }

    /// The rows `y0 .. y0 + kh` of a window (at most [`MAX_KERNEL`]), `None` where a row
    /// lies outside `0..height` (padding). Resolving the ring slots once per output row
    /// keeps divisions out of the inner loops.
    #[inline(always)]
    pub fn window(&self, y0: isize, kh: usize, height: usize) -> [Option<&'a [i8]>; MAX_KERNEL] {
        let mut rows = [None; MAX_KERNEL];
        for (ky, slot) in rows.iter_mut().enumerate().take(kh.min(MAX_KERNEL)) {
            let y = y0 + ky as isize;
            if y >= 0 && (y as usize) < height {
                *slot = Some(self.row(y as usize));
            }
        }
        rows
    }
}

/// Largest kernel height or width the engine runs (thermal CNNs use 1 to 7).
pub const MAX_KERNEL: usize = 16;
