//! The emulated board's defmt logger: frames go to the host's stdout through semihosting
//! (SYS_WRITE on `:tt`); the frame bookkeeping is `tqc-log`'s. Written here rather than
//! taken from `defmt-semihosting`, whose logger panics when taken twice and whose I/O
//! panics on a bad handle: a log line must never stop the station. A nested use (a fault
//! handler logging while a frame is open) is dropped, not fatal.

use core::sync::atomic::{AtomicUsize, Ordering};

use cortex_m_semihosting::{nr, syscall};
use tqc_log::Frames;

#[defmt::global_logger]
struct Logger;

/// The `:tt` handle plus one (0: not open yet).
static STDOUT: AtomicUsize = AtomicUsize::new(0);
static FRAMES: Frames = Frames::new();

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

// SAFETY: defmt pairs acquire and release; `Frames` keeps the encoder inside the
// critical section the frame holds.
unsafe impl defmt::Logger for Logger {
    fn acquire() {
        FRAMES.acquire(write);
    }

    unsafe fn flush() {}

    unsafe fn release() {
        unsafe { FRAMES.release(write) };
    }

    unsafe fn write(bytes: &[u8]) {
        unsafe { FRAMES.write(bytes, write) };
    }
}
