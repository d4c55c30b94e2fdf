//! defmt's global logger over RTT, without a panic path (`tqc-log`): a nested log is
//! dropped, a full ring trims the frame instead of blocking — an unattended station must
//! not wait for a debugger to read its log. probe-rs (`cargo xtask flash --log`) finds
//! the control block by its symbol, as it finds defmt-rtt's.

use core::cell::UnsafeCell;

use tqc_log::Frames;
use tqc_log::rtt::ControlBlock;

/// Bytes of the log ring (the host drains it while attached).
const SIZE: usize = 1024;

struct Ring(UnsafeCell<[u8; SIZE]>);
// SAFETY: written only through `_SEGGER_RTT`, inside the logger's critical section.
unsafe impl Sync for Ring {}

#[unsafe(link_section = ".uninit.tqc-rtt.BUFFER")]
static RING: Ring = Ring(UnsafeCell::new([0; SIZE]));

// SAFETY: the ring is static, SIZE bytes, written by nothing else; the name ends in NUL.
#[unsafe(no_mangle)]
static _SEGGER_RTT: ControlBlock = unsafe { ControlBlock::new(b"defmt\0", RING.0.get() as *mut u8, SIZE) };

static FRAMES: Frames = Frames::new();

fn emit(bytes: &[u8]) {
    _SEGGER_RTT.write_all(bytes);
}

#[defmt::global_logger]
struct Logger;

// SAFETY: defmt pairs acquire and release; `Frames` keeps the encoder inside the
// critical section the frame holds.
unsafe impl defmt::Logger for Logger {
    fn acquire() {
        FRAMES.acquire(emit);
    }

    unsafe fn flush() {
        // Nothing is buffered on this side of the ring.
    }

    unsafe fn release() {
        unsafe { FRAMES.release(emit) };
    }

    unsafe fn write(bytes: &[u8]) {
        unsafe { FRAMES.write(bytes, emit) };
    }
}
