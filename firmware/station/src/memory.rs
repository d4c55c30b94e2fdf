//! Every buffer an inspection needs, sized at compile time and allocated statically by
//! the board: no heap, and the image's RAM figure is the station's whole memory.
//!
//! Per pixel: the reference rise (2 B), the class map (1 B), one byte per feature
//! channel, and a *work region* that each stage of the cycle uses in turn:
//!
//! ```text
//! acquisition   frame (2 B) | cold reference sum (4 B) | window sums (4 B)
//! inference     engine arena (the feature image is read in place, outside it)
//!               | depth codes (1 B, the last bytes; only for a model with a depth output)
//! verdict       the region search's stack (4 B) … depth codes
//! ```
//!
//! The frame and the running sums are dead once the features are complete, and the
//! arena is dead once the class map is written, so one region of [`work_bytes`] (10 B a
//! pixel, 192 000 B for a Lepton's 160 × 120) holds all three: an encoder–decoder's
//! delay lines cost no RAM of their own.

use tqc_shared::engine::Arena;

/// Bytes of the work region a station of `pixels` pixels needs at least: the frame
/// (rounded up to a word), the cold reference sums and the window sums. The verdict's
/// stack (a word a pixel) fits in the same bytes.
pub const fn work_bytes(pixels: usize) -> usize {
    frame_bytes(pixels) + 8 * pixels
}

const fn frame_bytes(pixels: usize) -> usize {
    (2 * pixels).next_multiple_of(4)
}

/// The buffers of a station for `PIXELS` pixels, `FEATURE_BYTES` bytes of feature image
/// (pixels × channels) and a work region of `WORK` bytes (at least
/// [`work_bytes`]`(PIXELS)`; more lets a model's arena grow beyond it).
#[repr(C)]
pub struct Buffers<const PIXELS: usize, const FEATURE_BYTES: usize, const WORK: usize> {
    work: Arena<WORK>,
    reference: [u16; PIXELS],
    features: [i8; FEATURE_BYTES],
    classes: [u8; PIXELS],
}

impl<const PIXELS: usize, const FEATURE_BYTES: usize, const WORK: usize> Buffers<PIXELS, FEATURE_BYTES, WORK> {
    /// All zeros: a `static` of this lands in `.bss` (use a const initializer, e.g.
    /// `static_cell::ConstStaticCell`, so the value is never built on the stack).
    pub const fn new() -> Self {
        const {
            assert!(
                WORK >= work_bytes(PIXELS),
                "the work region is smaller than work_bytes(PIXELS)"
            )
        };
        Buffers {
            work: Arena::new(),
            reference: [0; PIXELS],
            features: [0; FEATURE_BYTES],
            classes: [0; PIXELS],
        }
    }

    pub fn memory(&mut self) -> Memory<'_> {
        Memory {
            work: self.work.bytes(),
            reference: &mut self.reference,
            features: &mut self.features,
            classes: &mut self.classes,
        }
    }
}

impl<const PIXELS: usize, const FEATURE_BYTES: usize, const WORK: usize> Default
    for Buffers<PIXELS, FEATURE_BYTES, WORK>
{
    fn default() -> Self {
        Self::new()
    }
}

/// The station's view of its buffers (made by [`Buffers::memory`], which guarantees the
/// work region's size and alignment).
pub struct Memory<'a> {
    /// Aligned to the engine's 8 bytes, at least [`work_bytes`]`(pixels)` long.
    work: &'a mut [u8],
    pub(crate) reference: &'a mut [u16],
    pub(crate) features: &'a mut [i8],
    pub(crate) classes: &'a mut [u8],
}

/// The work region during acquisition.
pub(crate) struct Acquiring<'w> {
    pub frame: &'w mut [u16],
    pub cold: &'w mut [u32],
    pub window: &'w mut [i32],
}

impl<'a> Memory<'a> {
    pub fn pixels(&self) -> usize {
        self.classes.len()
    }

    /// The work region's bytes (the engine's arena during inference).
    pub fn work_len(&self) -> usize {
        self.work.len()
    }

    /// The whole work region, for the engine's arena.
    pub(crate) fn arena(&mut self) -> &mut [u8] {
        self.work
    }

    /// The work region split into the frame and the feature extractor's running sums;
    /// `None` only if the region were not what [`Buffers::memory`] makes.
    pub(crate) fn acquiring(work: &mut [u8], pixels: usize) -> Option<Acquiring<'_>> {
        let (frame, rest) = work.split_at_mut_checked(frame_bytes(pixels))?;
        let (cold, rest) = rest.split_at_mut_checked(4 * pixels)?;
        let window = rest.get_mut(..4 * pixels)?;
        Some(Acquiring {
            frame: bytemuck::try_cast_slice_mut(frame).ok()?.get_mut(..pixels)?,
            cold: bytemuck::try_cast_slice_mut(cold).ok()?,
            window: bytemuck::try_cast_slice_mut(window).ok()?,
        })
    }

    /// The work region during inference: the engine's arena and, for a model with a
    /// depth output, the depth codes in its last `pixels` bytes (they outlive the arena).
    pub(crate) fn inference(work: &mut [u8], pixels: usize, depth: bool) -> Option<(&mut [u8], Option<&mut [i8]>)> {
        if !depth {
            return Some((work, None));
        }
        let at = work.len().checked_sub(pixels)?;
        let (arena, codes) = work.split_at_mut_checked(at)?;
        Some((arena, Some(bytemuck::cast_slice_mut(codes))))
    }

    /// The work region during the verdict: the region search's stack, a word a pixel,
    /// and the depth codes inference left at the end.
    pub(crate) fn verdict(work: &mut [u8], pixels: usize, depth: bool) -> Option<(&mut [u32], Option<&[i8]>)> {
        let (head, codes) = Self::inference(work, pixels, depth)?;
        let stack = bytemuck::try_cast_slice_mut(head.get_mut(..4 * pixels)?).ok()?;
        Some((stack, codes.map(|c| &*c)))
    }

    /// The depth codes inference left at the end of the work region.
    pub(crate) fn depth_codes(&self) -> Option<&[i8]> {
        let at = self.work.len().checked_sub(self.pixels())?;
        Some(bytemuck::cast_slice(self.work.get(at..)?))
    }

    /// Every buffer at once, for the inspection cycle.
    pub(crate) fn parts(&mut self) -> (&mut [u8], &mut [u16], &mut [i8], &mut [u8]) {
        (self.work, self.reference, self.features, self.classes)
    }
}
