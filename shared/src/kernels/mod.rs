//! int8 kernels, row by row.
//!
//! Every spatial kernel computes **one output row** from a [`Rows`](crate::tensor::Rows)
//! view of its input, so the same code serves whole-map execution (the view is the
//! whole map) and stripe execution (the view is a ring of a few rows). Kernels check
//! their geometry and buffer lengths up front and return [`KernelError`]; past the
//! checks they index only inside the verified bounds.

pub mod conv;
pub mod depthwise;
pub mod fully_connected;
pub mod mac;
pub mod merge;
pub mod pool;
pub mod softmax;

use crate::quant::{Clamp, Prepared, Requant, multiply_short, requantize_prepared};
use crate::tensor::Shape;

/// Bias and requantization of one output channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChannelQuant {
    /// int32 at scale `s_in · s_w[c]`.
    pub bias: i32,
    pub requant: Requant,
}

/// Per-output-channel parameters, wherever they are stored.
pub trait PerChannel {
    fn channels(&self) -> usize;
    /// Bias and prepared requantization of channel `c`. Caller guarantees
    /// `c < self.channels()`. An invalid factor acts as zero (output = zero point), never
    /// a panic; validated models have none.
    fn get(&self, c: usize) -> (i32, Prepared);
    /// True when every channel takes the short requantization form: a kernel may then
    /// use [`PerChannel::get_short`] throughout, with no per-output branch.
    fn all_short(&self) -> bool {
        false
    }
    /// Bias and short-form operands `(multiplier, nudge, right)` of channel `c` (see
    /// [`crate::quant::multiply_short`]); meaningful only when [`PerChannel::all_short`].
    fn get_short(&self, c: usize) -> (i32, i32, i32, u32) {
        let (bias, p) = self.get(c);
        let (m, nudge, right) = p.short_form().unwrap_or((0, 0, 0));
        (bias, m, nudge, right)
    }
    /// [`PerChannel::get_short`] without the index check, for the convolution's
    /// per-output loop, where the check costs a head layer ~2 % of its instructions.
    ///
    /// # Safety
    /// `c < self.channels()`.
    #[inline(always)]
    unsafe fn get_short_unchecked(&self, c: usize) -> (i32, i32, i32, u32) {
        self.get_short(c)
    }
}

impl PerChannel for [ChannelQuant] {
    fn channels(&self) -> usize {
        self.len()
    }
    #[inline(always)]
    fn get(&self, c: usize) -> (i32, Prepared) {
        let q = self[c];
        (q.bias, Prepared::new(q.requant).unwrap_or(Prepared::ZERO))
    }
}

/// How a kernel requantizes its outputs, chosen once per row: [`General`] handles any
/// factor; [`Short`] is for tables whose every channel takes the short form, which keeps
/// the per-output code short (no branch between forms, the nudge read from the table).
pub trait Requantizer<P: PerChannel + ?Sized> {
    type Entry: Copy;
    fn entry(quant: &P, c: usize) -> Self::Entry;
    /// [`Requantizer::entry`] where the caller has proven the index.
    ///
    /// # Safety
    /// `c < quant.channels()`.
    #[inline(always)]
    unsafe fn entry_unchecked(quant: &P, c: usize) -> Self::Entry {
        Self::entry(quant, c)
    }
    fn apply(acc: i32, e: Self::Entry, output_zero_point: i32, clamp: Clamp) -> i8;
}

/// Any factor, either form.
pub struct General;

/// Every channel in the short form ([`PerChannel::all_short`]).
pub struct Short;

impl<P: PerChannel + ?Sized> Requantizer<P> for General {
    type Entry = (i32, Prepared);
    #[inline(always)]
    fn entry(quant: &P, c: usize) -> Self::Entry {
        quant.get(c)
    }
    #[inline(always)]
    fn apply(acc: i32, e: Self::Entry, zp: i32, clamp: Clamp) -> i8 {
        requantize_prepared(acc.wrapping_add(e.0), e.1, zp, clamp)
    }
}

impl<P: PerChannel + ?Sized> Requantizer<P> for Short {
    type Entry = (i32, i32, i32, u32);
    #[inline(always)]
    fn entry(quant: &P, c: usize) -> Self::Entry {
        quant.get_short(c)
    }
    #[inline(always)]
    unsafe fn entry_unchecked(quant: &P, c: usize) -> Self::Entry {
        // SAFETY: the caller's contract.
        unsafe { quant.get_short_unchecked(c) }
    }
    #[inline(always)]
    fn apply(acc: i32, (bias, m, nudge, right): Self::Entry, zp: i32, clamp: Clamp) -> i8 {
        let v = multiply_short(acc.wrapping_add(bias), m, nudge, right).saturating_add(zp);
        v.max(clamp.min as i32).min(clamp.max as i32) as i8
    }
}

/// Words per channel in a [`ChannelTable`]: bias, multiplier, left shift (the rounding
/// nudge for the short form), right shift with the short-form flag.
pub const TABLE_WORDS: usize = 4;

/// The engine's per-channel table in the arena, [`TABLE_WORDS`] i32 per channel.
#[derive(Clone, Copy)]
pub struct ChannelTable<'a>(pub &'a [[i32; TABLE_WORDS]]);

impl ChannelTable<'_> {
    pub fn entry(bias: i32, p: Prepared) -> [i32; TABLE_WORDS] {
        let [m, l, r] = p.to_words();
        [bias, m, l, r]
    }
}

impl PerChannel for ChannelTable<'_> {
    fn channels(&self) -> usize {
        self.0.len()
    }
    #[inline(always)]
    fn get(&self, c: usize) -> (i32, Prepared) {
        let [bias, m, l, r] = self.0.get(c).copied().unwrap_or_default();
        (bias, Prepared::from_words([m, l, r]))
    }
    fn all_short(&self) -> bool {
        self.0.iter().all(|e| e[3] as u32 & 0x100 != 0)
    }
    #[inline(always)]
    fn get_short(&self, c: usize) -> (i32, i32, i32, u32) {
        // Written by `entry` for a short-form factor: [bias, multiplier, nudge, right | 0x100].
        let [bias, m, nudge, r] = self.0.get(c).copied().unwrap_or_default();
        (bias, m, nudge, r as u32 & 31)
    }
    #[inline(always)]
    unsafe fn get_short_unchecked(&self, c: usize) -> (i32, i32, i32, u32) {
        // SAFETY: `c < self.channels()`, the caller's contract.
        let [bias, m, nudge, r] = unsafe { *self.0.get_unchecked(c) };
        (bias, m, nudge, r as u32 & 31)
    }
}

/// A kernel was handed inconsistent shapes or buffers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KernelError {
    #[error("{what}: expected {expected} elements, got {found}")]
    Length {
        what: &'static str,
        expected: usize,
        found: usize,
    },
    #[error("invalid geometry: {0}")]
    Geometry(&'static str),
    #[error("output row {row} outside 0..{height}")]
    Row { row: usize, height: usize },
}

/// The sliding window of a convolution or pooling layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub kernel_h: u8,
    pub kernel_w: u8,
    pub stride: u8,
    pub pad_top: u16,
    pub pad_left: u16,
}

/// Every output window must overlap the input, and padding must be smaller than the
/// kernel, so no window lies wholly in the padding.
pub(crate) fn check_window(w: &Window, input: Shape, output: Shape) -> Result<(), KernelError> {
    if w.kernel_h == 0 || w.kernel_w == 0 || w.stride == 0 {
        return Err(KernelError::Geometry("zero kernel size or stride"));
    }
    if w.kernel_h as usize > crate::tensor::MAX_KERNEL || w.kernel_w as usize > crate::tensor::MAX_KERNEL {
        return Err(KernelError::Geometry("kernel larger than 16"));
    }
    if input.is_empty() || output.is_empty() {
        return Err(KernelError::Geometry("empty tensor"));
    }
    let last_y = (output.height as usize - 1) * w.stride as usize;
    let last_x = (output.width as usize - 1) * w.stride as usize;
    if w.pad_top as usize >= w.kernel_h as usize
        || w.pad_left as usize >= w.kernel_w as usize
        || last_y >= input.height as usize + w.pad_top as usize
        || last_x >= input.width as usize + w.pad_left as usize
    {
        return Err(KernelError::Geometry("output window outside the padded input"));
    }
    Ok(())
}

/// `v[r]`, or nothing where `v` is shorter. The kernels check every length up front, so
/// this never comes empty for them; it keeps a panic path out of the firmware where the
/// compiler cannot prove an index.
#[inline(always)]
pub(crate) fn sub<T>(v: &[T], r: core::ops::Range<usize>) -> &[T] {
    v.get(r).unwrap_or(&[])
}

/// `v[r]` mutably, or nothing (see [`sub`]).
#[inline(always)]
pub(crate) fn sub_mut<T>(v: &mut [T], r: core::ops::Range<usize>) -> &mut [T] {
    v.get_mut(r).unwrap_or(&mut [])
}

pub(crate) fn expect_len(what: &'static str, expected: usize, found: usize) -> Result<(), KernelError> {
    if expected == found {
        Ok(())
    } else {
        Err(KernelError::Length { what, expected, found })
    }
}

pub(crate) fn expect_at_least(what: &'static str, expected: usize, found: usize) -> Result<(), KernelError> {
    if found >= expected {
        Ok(())
    } else {
        Err(KernelError::Length { what, expected, found })
    }
}

/// Index of the first largest value (TFLite's `ArgMax` keeps the first on ties).
/// `None` for an empty slice.
pub fn argmax(values: &[i8]) -> Option<usize> {
    let mut best: Option<(usize, i8)> = None;
    for (i, &v) in values.iter().enumerate() {
        match best {
            Some((_, b)) if v <= b => {}
            _ => best = Some((i, v)),
        }
    }
    best.map(|(i, _)| i)
}
