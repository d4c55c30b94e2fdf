//! The emulated ThermoQC board (QEMU `mps2-an386`, Cortex-M4F, or `mps2-an500`, Cortex-M7):
//! host files through semihosting, a deterministic instruction clock from SysTick, and a
//! panic handler that makes QEMU exit with a failure status.
#![no_std]

pub mod board;
pub mod clock;
pub mod host;
mod logger;
pub mod stack;

pub use cortex_m_semihosting::hprintln as println;

use cortex_m_semihosting::debug;

/// Ends the emulation with a status QEMU passes on as its own exit code.
pub fn exit(success: bool) -> ! {
    debug::exit(if success {
        debug::EXIT_SUCCESS
    } else {
        debug::EXIT_FAILURE
    });
    // Only reached when no debugger/emulator honours the exit request.
    loop {
        cortex_m::asm::bkpt();
    }
}

/// The panic message, cut to fit, for one semihosting call.
struct PanicText {
    buf: [u8; 256],
    len: usize,
}

impl core::fmt::Write for PanicText {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        // One byte stays free for the terminating NUL.
        for &b in s.as_bytes() {
            if self.len + 1 >= self.buf.len() {
                break;
            }
            if let Some(slot) = self.buf.get_mut(self.len) {
                *slot = b;
                self.len += 1;
            }
        }
        Ok(())
    }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    // To QEMU's debug console (stderr), not stdout, which carries the defmt stream. One
    // SYS_WRITE0 call and nothing that retries: a panic must end the run, whatever the
    // host does with the text.
    let mut text = PanicText { buf: [0; 256], len: 0 };
    let _ = core::fmt::write(&mut text, format_args!("PANIC: {info}\n"));
    // SAFETY: `text.buf` is NUL-terminated (its last byte is never written).
    unsafe {
        cortex_m_semihosting::syscall!(WRITE0, text.buf.as_ptr());
    }
    exit(false)
}
