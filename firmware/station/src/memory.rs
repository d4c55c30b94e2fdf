//! Every buffer an inspection needs, sized at compile time and allocated statically by
//! the board: no heap, and the image's RAM figure is the station's whole memory.
//!
//! Per pixel: the frame (2 B), the cold reference sum (4 B), the window sums (4 B), the
//! reference rise (2 B), the class map (1 B) and one byte per feature channel. The
//! window sums are dead once the features are complete, so they become the verdict's
//! search stack.

use tqc_shared::engine::Arena;

/// The buffers of a station for `PIXELS` pixels, `FEATURE_BYTES` bytes of feature image
/// (pixels × channels) and an engine arena of `ARENA` bytes.
#[repr(C)]
pub struct Buffers<const PIXELS: usize, const FEATURE_BYTES: usize, const ARENA: usize> {
    arena: Arena<ARENA>,
    frame: [u16; PIXELS],
    cold: [u32; PIXELS],
    window: [i32; PIXELS],
    reference: [u16; PIXELS],
    features: [i8; FEATURE_BYTES],
    classes: [u8; PIXELS],
}

impl<const PIXELS: usize, const FEATURE_BYTES: usize, const ARENA: usize> Buffers<PIXELS, FEATURE_BYTES, ARENA> {
    /// All zeros: a `static` of this lands in `.bss` (use a const initializer, e.g.
    /// `static_cell::ConstStaticCell`, so the value is never built on the stack).
    pub const fn new() -> Self {
        Buffers {
            arena: Arena::new(),
            frame: [0; PIXELS],
            cold: [0; PIXELS],
            window: [0; PIXELS],
            reference: [0; PIXELS],
            features: [0; FEATURE_BYTES],
            classes: [0; PIXELS],
        }
    }

    pub fn memory(&mut self) -> Memory<'_> {
        Memory {
            frame: &mut self.frame,
            cold: &mut self.cold,
            window: &mut self.window,
            reference: &mut self.reference,
            features: &mut self.features,
            classes: &mut self.classes,
            arena: self.arena.bytes(),
        }
    }
}

impl<const PIXELS: usize, const FEATURE_BYTES: usize, const ARENA: usize> Default
    for Buffers<PIXELS, FEATURE_BYTES, ARENA>
{
    fn default() -> Self {
        Self::new()
    }
}

/// The station's view of its buffers.
pub struct Memory<'a> {
    pub frame: &'a mut [u16],
    pub cold: &'a mut [u32],
    pub window: &'a mut [i32],
    pub reference: &'a mut [u16],
    pub features: &'a mut [i8],
    pub classes: &'a mut [u8],
    /// Aligned to the engine's 8 bytes.
    pub arena: &'a mut [u8],
}

impl Memory<'_> {
    pub fn pixels(&self) -> usize {
        self.frame.len()
    }
}
