//! The emulated ThermoQC board (QEMU `mps2-an386`, Cortex-M4F, or `mps2-an500`, Cortex-M7):
//! host files through semihosting, a deterministic instruction clock from SysTick, and a
//! panic handler that makes QEMU exit with a failure status.
#![no_std]

pub mod board;
pub mod clock;
pub mod host;

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

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    // stderr: stdout may carry the defmt stream.
    cortex_m_semihosting::heprintln!("PANIC: {}", info);
    exit(false)
}
