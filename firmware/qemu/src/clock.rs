//! Instruction counting with SysTick.
//!
//! QEMU's mps2 boards clock SysTick (processor clock source) at 25 MHz. Under
//! `-icount shift=0` every instruction advances virtual time by exactly 1 ns, so one tick
//! is exactly [`INSTRUCTIONS_PER_TICK`] = 40 instructions: counts are deterministic,
//! whatever the host machine is doing. SysTick is 24 bits; its exception extends it.

use core::sync::atomic::{AtomicU32, Ordering};

use cortex_m::peripheral::SYST;
use cortex_m::peripheral::syst::SystClkSource;
use cortex_m_rt::exception;

pub const INSTRUCTIONS_PER_TICK: u64 = 40;
const RELOAD: u32 = 0x00FF_FFFF;

static WRAPS: AtomicU32 = AtomicU32::new(0);

#[exception]
fn SysTick() {
    WRAPS.fetch_add(1, Ordering::Relaxed);
}

/// Starts SysTick free-running from the processor clock with its wrap interrupt.
pub fn start(mut syst: SYST) {
    syst.set_clock_source(SystClkSource::Core);
    syst.set_reload(RELOAD);
    syst.clear_current();
    syst.enable_interrupt();
    syst.enable_counter();
}

/// Ticks since [`start`].
pub fn ticks() -> u64 {
    loop {
        let before = WRAPS.load(Ordering::Acquire);
        let value = SYST::get_current();
        if WRAPS.load(Ordering::Acquire) == before {
            return before as u64 * (RELOAD as u64 + 1) + (RELOAD - value) as u64;
        }
    }
}
