//! defmt frame bookkeeping for a global logger.

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicU8, Ordering};

struct State {
    restore: critical_section::RestoreState,
    encoder: defmt::Encoder,
}

/// The encoder of a defmt global logger and the critical section a frame holds. A
/// board's `defmt::Logger` forwards `acquire`, `write` and `release` here with its sink.
pub struct Frames {
    /// Frames open: 1 while the one frame is written, more while nested ones (only
    /// possible from a fault handler, interrupts being masked) are dropped.
    depth: AtomicU8,
    state: UnsafeCell<State>,
}

// SAFETY: `state` is touched only at depth 1, inside the critical section the outer
// frame holds, so never from two contexts at once.
unsafe impl Sync for Frames {}

impl Frames {
    pub const fn new() -> Self {
        Frames {
            depth: AtomicU8::new(0),
            state: UnsafeCell::new(State {
                restore: critical_section::RestoreState::invalid(),
                encoder: defmt::Encoder::new(),
            }),
        }
    }

    /// Opens a frame: takes the critical section and starts the frame on `sink`, or,
    /// when a frame is already open, notes a nested one whose bytes are dropped.
    pub fn acquire(&self, sink: impl FnMut(&[u8])) {
        // SAFETY: released in `release` (outer frame) or right below (nested one).
        let restore = unsafe { critical_section::acquire() };
        if self.depth.load(Ordering::Relaxed) == 0 {
            self.depth.store(1, Ordering::Relaxed);
            // SAFETY: depth 1, inside the critical section.
            let state = unsafe { &mut *self.state.get() };
            state.restore = restore;
            state.encoder.start_frame(sink);
        } else {
            self.depth
                .store(self.depth.load(Ordering::Relaxed).saturating_add(1), Ordering::Relaxed);
            // SAFETY: releases the section this call just took; the outer frame keeps its own.
            unsafe { critical_section::release(restore) };
        }
    }

    /// Encodes `bytes` of the open frame onto `sink` (nothing while a nested frame is open).
    ///
    /// # Safety
    /// Between [`Frames::acquire`] and [`Frames::release`], as defmt calls a logger.
    pub unsafe fn write(&self, bytes: &[u8], sink: impl FnMut(&[u8])) {
        if self.depth.load(Ordering::Relaxed) == 1 {
            // SAFETY: depth 1, inside the frame's critical section.
            unsafe { (*self.state.get()).encoder.write(bytes, sink) };
        }
    }

    /// Closes the innermost frame: a nested one is forgotten; the outer one is ended on
    /// `sink` and its critical section released. A release without a frame does nothing.
    ///
    /// # Safety
    /// After [`Frames::acquire`], as defmt calls a logger.
    pub unsafe fn release(&self, sink: impl FnMut(&[u8])) {
        match self.depth.load(Ordering::Relaxed) {
            0 => {}
            1 => {
                // SAFETY: depth 1, inside the frame's critical section.
                let state = unsafe { &mut *self.state.get() };
                state.encoder.end_frame(sink);
                let restore = state.restore;
                self.depth.store(0, Ordering::Relaxed);
                // SAFETY: the section `acquire` took for this frame.
                unsafe { critical_section::release(restore) };
            }
            n => self.depth.store(n - 1, Ordering::Relaxed),
        }
    }
}

impl Default for Frames {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec::Vec;

    /// What defmt's encoder sends for these frames in a row (its first frame starts
    /// with a delimiter, the others do not).
    fn frames(payloads: &[&[&[u8]]]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut e = defmt::Encoder::new();
        for payload in payloads {
            e.start_frame(|b| out.extend_from_slice(b));
            for p in *payload {
                e.write(p, |b| out.extend_from_slice(b));
            }
            e.end_frame(|b| out.extend_from_slice(b));
        }
        out
    }

    #[test]
    fn a_frame_is_the_encoders_and_a_nested_one_is_dropped() {
        let log = Frames::new();
        let mut out = Vec::new();
        log.acquire(|b| out.extend_from_slice(b));
        unsafe { log.write(b"outer ", |b| out.extend_from_slice(b)) };
        // A nested frame (a fault handler logging mid-frame): its bytes go nowhere.
        log.acquire(|b| out.extend_from_slice(b));
        unsafe { log.write(b"inner", |b| out.extend_from_slice(b)) };
        log.acquire(|b| out.extend_from_slice(b));
        unsafe { log.release(|b| out.extend_from_slice(b)) };
        unsafe { log.release(|b| out.extend_from_slice(b)) };
        unsafe { log.write(b"again", |b| out.extend_from_slice(b)) };
        unsafe { log.release(|b| out.extend_from_slice(b)) };
        assert_eq!(out, frames(&[&[b"outer ", b"again"]]));
        // Closed: a stray release does nothing, and the next frame follows cleanly.
        unsafe { log.release(|b| out.extend_from_slice(b)) };
        log.acquire(|b| out.extend_from_slice(b));
        unsafe { log.write(b"next", |b| out.extend_from_slice(b)) };
        unsafe { log.release(|b| out.extend_from_slice(b)) };
        assert_eq!(out, frames(&[&[b"outer ", b"again"], &[b"next"]]));
    }
}
