//! The mps2 board's station I/O: LEDs on the SCC's CFG1 register (QEMU reports every
//! change with `-trace led_change_intensity`, as "SCC LED<n>") and the CMSDK APB
//! watchdog, whose first expiry raises an NMI.

use core::convert::Infallible;
use core::ptr::{read_volatile, write_volatile};

/// SCC CFG1: one bit per board LED (mps2 AN385/AN386/AN500).
const SCC_CFG1: *mut u32 = 0x4002_F004 as *mut u32;

/// Which LED does what.
pub const LED_PASS: u8 = 0;
pub const LED_FAIL: u8 = 1;
pub const LED_RETEST: u8 = 2;
pub const LED_BUSY: u8 = 3;
pub const LED_LAMP: u8 = 4;

/// One board LED as an output pin.
pub struct Led(pub u8);

impl embedded_hal::digital::ErrorType for Led {
    type Error = Infallible;
}

impl embedded_hal::digital::OutputPin for Led {
    fn set_high(&mut self) -> Result<(), Infallible> {
        // SAFETY: SCC CFG1 is a plain read/write register of the board; single core.
        unsafe { write_volatile(SCC_CFG1, read_volatile(SCC_CFG1) | 1 << self.0) };
        Ok(())
    }
    fn set_low(&mut self) -> Result<(), Infallible> {
        // SAFETY: as above.
        unsafe { write_volatile(SCC_CFG1, read_volatile(SCC_CFG1) & !(1 << self.0)) };
        Ok(())
    }
}

/// Which LEDs are lit (bit n = LED n).
pub fn leds() -> u32 {
    // SAFETY: a read of the board register.
    unsafe { read_volatile(SCC_CFG1) }
}

const WDOG_BASE: usize = 0x4000_8000;
const WDOG_LOAD: *mut u32 = WDOG_BASE as *mut u32;
const WDOG_CONTROL: *mut u32 = (WDOG_BASE + 0x08) as *mut u32;
const WDOG_INTCLR: *mut u32 = (WDOG_BASE + 0x0C) as *mut u32;
const WDOG_LOCK: *mut u32 = (WDOG_BASE + 0xC00) as *mut u32;
const UNLOCK: u32 = 0x1ACC_E551;
/// WDOGCLK on the mps2 boards.
pub const WDOG_HZ: u32 = 25_000_000;

/// The CMSDK watchdog: counts down from its load value; at zero it raises the NMI.
pub struct CmsdkWatchdog {
    load: u32,
}

impl CmsdkWatchdog {
    /// Starts it with `timeout_ms` (at most ~171 s).
    pub fn start(timeout_ms: u32) -> Self {
        let load = (WDOG_HZ / 1000).saturating_mul(timeout_ms);
        // SAFETY: the watchdog's registers, unlocked for the writes and locked after.
        unsafe {
            write_volatile(WDOG_LOCK, UNLOCK);
            write_volatile(WDOG_LOAD, load);
            // Interrupt enable (the NMI); no reset, so the NMI handler can report.
            write_volatile(WDOG_CONTROL, 1);
            write_volatile(WDOG_LOCK, 0);
        }
        CmsdkWatchdog { load }
    }
}

impl tqc_station::Watchdog for CmsdkWatchdog {
    fn feed(&mut self) {
        // SAFETY: as in `start`; writing LOAD restarts the count.
        unsafe {
            write_volatile(WDOG_LOCK, UNLOCK);
            write_volatile(WDOG_INTCLR, 1);
            write_volatile(WDOG_LOAD, self.load);
            write_volatile(WDOG_LOCK, 0);
        }
    }
}
