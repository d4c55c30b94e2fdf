//! The emulated board's defmt logger: frames go to the host's stdout through semihosting
//! (SYS_WRITE on `:tt`), inside a critical section. Written here rather than taken from
//! `defmt-semihosting`, whose logger panics when taken twice and whose I/O panics on a
//! bad handle: a log line must never stop the station. A nested use (an interrupt
//! logging while a frame is open) is dropped, not fatal.

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use cortex_m_semihosting::{nr, syscall};

#[defmt::global_logger]
struct Logger;

static TAKEN: AtomicBool = AtomicBool::new(false);
/// True while a nested acquire is being ignored.
static NESTED: AtomicBool = AtomicBool::new(false);
/// The `:tt` handle plus one (0: not open yet).
static STDOUT: AtomicUsize = AtomicUsize::new(0);
/// State touched only inside the logger's critical section.
struct Frame {
    restore: critical_section::RestoreState,
    encoder: defmt::Encoder,
}

struct FrameCell(UnsafeCell<Frame>);

// SAFETY: only accessed between acquire and release, inside the critical section.
unsafe impl Sync for FrameCell {}

static FRAME: FrameCell = FrameCell(UnsafeCell::new(Frame {
    restore: critical_section::RestoreState::invalid(),
    encoder: defmt::Encoder::new(),
}));

fn write(bytes: &[u8]) {
    let mut handle = STDOUT.load(Ordering::Relaxed);
    if handle == 0 {
        let name = b":tt\0";
        // SAFETY: SYS_OPEN reads a NUL-terminated name of the given length.
        let fd = unsafe { syscall!(OPEN, name.as_ptr(), nr::open::W_TRUNC, 3) } as isize;
        if fd < 0 {
            return;
        }
        handle = fd as usize + 1;
        STDOUT.store(handle, Ordering::Relaxed);
    }
    // SAFETY: SYS_WRITE reads `bytes.len()` bytes from `bytes`; what it could not write
    // is lost, as a log line may be.
    unsafe {
        syscall!(WRITE, handle - 1, bytes.as_ptr(), bytes.len());
    }
}

// SAFETY: acquire and release pair up (defmt guarantees it), the encoder is only touched
// between them, inside the critical section, so never from two contexts at once.
unsafe impl defmt::Logger for Logger {
    fn acquire() {
        // SAFETY: released in `release`, in the same order.
        let restore = unsafe { critical_section::acquire() };
        if TAKEN.load(Ordering::Relaxed) {
            // Nested: this frame is dropped; the outer one keeps the critical section.
            NESTED.store(true, Ordering::Relaxed);
            // SAFETY: releases the section this call just took.
            unsafe { critical_section::release(restore) };
            return;
        }
        TAKEN.store(true, Ordering::Relaxed);
        // SAFETY: inside the critical section, no other access.
        unsafe {
            let frame = &mut *FRAME.0.get();
            frame.restore = restore;
            frame.encoder.start_frame(write);
        }
    }

    unsafe fn flush() {}

    unsafe fn release() {
        if NESTED.swap(false, Ordering::Relaxed) {
            return;
        }
        // SAFETY: the outer frame's critical section is held.
        unsafe {
            let frame = &mut *FRAME.0.get();
            frame.encoder.end_frame(write);
            TAKEN.store(false, Ordering::Relaxed);
            critical_section::release(frame.restore);
        }
    }

    unsafe fn write(bytes: &[u8]) {
        if NESTED.load(Ordering::Relaxed) {
            return;
        }
        // SAFETY: the frame's critical section is held.
        unsafe { (*FRAME.0.get()).encoder.write(bytes, write) };
    }
}
