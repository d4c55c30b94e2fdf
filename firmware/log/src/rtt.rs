//! A SEGGER RTT control block with one up channel, in the layout debug probes read
//! (probe-rs finds it by the `_SEGGER_RTT` symbol or its id in RAM). The target only
//! moves the write cursor and never waits: what does not fit is dropped, whatever mode
//! the host asks for, so a station without a debugger attached logs into a full ring
//! and runs on.

use core::sync::atomic::{AtomicU32, Ordering};

/// Mode bits of `flags`: trim what does not fit.
const NON_BLOCKING_TRIM: u32 = 1;

/// One up channel (target to host).
#[repr(C)]
struct UpChannel {
    name: *const u8,
    buffer: *mut u8,
    size: u32,
    /// Next byte the target writes (the target moves it).
    write: AtomicU32,
    /// Next byte the host reads (the host moves it).
    read: AtomicU32,
    flags: AtomicU32,
}

/// The control block; a board declares one as `#[unsafe(no_mangle)] static _SEGGER_RTT`.
#[repr(C)]
pub struct ControlBlock {
    id: [u8; 16],
    max_up_channels: u32,
    max_down_channels: u32,
    up: UpChannel,
}

// SAFETY: the raw pointers name a 'static name and ring (see `new`); the ring is written
// only through `write_all`, which the caller serializes (a logger's critical section).
unsafe impl Sync for ControlBlock {}

impl ControlBlock {
    /// A block whose up channel `name` (NUL-terminated) writes into the `size` bytes at
    /// `buffer`.
    ///
    /// # Safety
    /// `buffer` points to `size` bytes that live for the program and that nothing but
    /// this block writes; `name` ends with a NUL.
    pub const unsafe fn new(name: &'static [u8], buffer: *mut u8, size: usize) -> Self {
        ControlBlock {
            id: *b"SEGGER RTT\0\0\0\0\0\0",
            max_up_channels: 1,
            max_down_channels: 0,
            up: UpChannel {
                name: name.as_ptr(),
                buffer,
                size: size as u32,
                write: AtomicU32::new(0),
                read: AtomicU32::new(0),
                flags: AtomicU32::new(NON_BLOCKING_TRIM),
            },
        }
    }

    /// Appends as much of `bytes` as the ring has room for; drops the rest. Callers
    /// serialize their calls (one writer).
    pub fn write_all(&self, mut bytes: &[u8]) {
        let up = &self.up;
        let size = up.size as usize;
        while !bytes.is_empty() {
            let write = up.write.load(Ordering::Acquire) as usize;
            let read = up.read.load(Ordering::Acquire) as usize;
            if write >= size || read >= size {
                // Cursors outside the ring (a host writing nonsense): log nothing rather
                // than write outside it.
                return;
            }
            let room = contiguous_room(read, write, size);
            let n = room.min(bytes.len());
            let (Some(now), Some(later)) = (bytes.get(..n), bytes.get(n..)) else {
                return;
            };
            if n == 0 {
                return;
            }
            // SAFETY: `write + n ≤ size` (`contiguous_room`), the ring is `size` bytes
            // (`new`), and the caller is the one writer.
            unsafe { core::ptr::copy_nonoverlapping(now.as_ptr(), up.buffer.add(write), n) };
            let next = if write + n == size { 0 } else { write + n };
            up.write.store(next as u32, Ordering::Release);
            bytes = later;
        }
    }
}

/// Bytes writable from `write` on without wrapping and without reaching the byte before
/// `read` (one stays free: equal cursors mean empty).
fn contiguous_room(read: usize, write: usize, size: usize) -> usize {
    if read > write {
        read - write - 1
    } else if read == 0 {
        size - write - 1
    } else {
        size - write
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use proptest::prelude::*;
    use std::collections::VecDeque;
    use std::vec::Vec;

    /// A block over a leaked ring of `size` bytes.
    fn block(size: usize) -> (&'static ControlBlock, *mut u8) {
        let ring: &'static mut [u8] = std::vec![0u8; size].leak();
        let ptr = ring.as_mut_ptr();
        let b = std::boxed::Box::leak(std::boxed::Box::new(unsafe {
            ControlBlock::new(b"defmt\0", ptr, size)
        }));
        (b, ptr)
    }

    /// What a host reads: everything between the cursors, then the read cursor moved.
    fn host_read(b: &ControlBlock, ring: *mut u8, max: usize) -> Vec<u8> {
        let size = b.up.size as usize;
        let mut read = b.up.read.load(Ordering::Acquire) as usize;
        let write = b.up.write.load(Ordering::Acquire) as usize;
        let mut out = Vec::new();
        while read != write && out.len() < max {
            out.push(unsafe { *ring.add(read) });
            read = (read + 1) % size;
        }
        b.up.read.store(read as u32, Ordering::Release);
        out
    }

    proptest! {
        /// Against a bounded queue: every write keeps the longest prefix that fits
        /// (`size − 1` bytes pending at most), the host reads them back in order.
        #[test]
        fn the_ring_keeps_what_fits_in_order(
            size in 2usize..64,
            steps in proptest::collection::vec((proptest::collection::vec(any::<u8>(), 0..40), 0usize..50), 1..40),
        ) {
            let (b, ring) = block(size);
            let mut model: VecDeque<u8> = VecDeque::new();
            for (bytes, read) in steps {
                b.write_all(&bytes);
                let room = size - 1 - model.len();
                model.extend(bytes.iter().take(room));
                let got = host_read(b, ring, read);
                let want: Vec<u8> = model.drain(..read.min(model.len())).collect();
                prop_assert_eq!(got, want);
            }
            let rest = host_read(b, ring, usize::MAX);
            prop_assert_eq!(rest, model.into_iter().collect::<Vec<u8>>());
        }
    }

    #[test]
    fn cursors_outside_the_ring_write_nothing() {
        let (b, ring) = block(8);
        b.up.read.store(9, Ordering::Release);
        b.write_all(b"abc");
        assert_eq!(b.up.write.load(Ordering::Acquire), 0);
        b.up.read.store(0, Ordering::Release);
        b.up.write.store(8, Ordering::Release);
        b.write_all(b"abc");
        assert_eq!(b.up.write.load(Ordering::Acquire), 8);
        let _ = ring;
    }
}
