//! The clock tree at 480 MHz, written to the registers directly (RM0433, STM32H743 rev V).
//!
//! HSI 64 MHz / 4 = 16 MHz into PLL1; × 60 = 960 MHz VCO (wide range); P / 2 = 480 MHz
//! system clock, Q / 8 = 120 MHz for SPI1's kernel clock. AHB (AXI) 240 MHz, every APB
//! 120 MHz (I2C1's kernel clock is APB1). 480 MHz needs voltage scale 0 (scale 1 plus
//! the overdrive) and four flash wait states.
//!
//! Every wait is bounded: a step that never completes leaves the part on the slower clock
//! it had, and the caller reports it (the station's figures then run slow, nothing stops).

use stm32_metapac::rcc::vals::{Hpre, Plldiv, Pllm, Plln, Pllrge, Pllsrc, Pllvcosel, Ppre, Sw};
use stm32_metapac::{FLASH, PWR, RCC, SYSCFG, pwr::vals::Vos};

/// System clock once [`init`] succeeded.
pub const SYS_HZ: u32 = 480_000_000;
/// The clock at reset (HSI), which stays if [`init`] fails.
pub const RESET_HZ: u32 = 64_000_000;

/// A step of the clock set-up that did not complete.
#[derive(Clone, Copy, Debug, PartialEq, Eq, defmt::Format)]
pub enum ClockError {
    /// The LDO did not report the voltage level ready.
    Supply,
    /// Voltage scale 1, then 0 (overdrive), not reached.
    VoltageScale,
    /// The flash did not take four wait states.
    FlashLatency,
    /// PLL1 did not lock.
    Pll,
    /// The system clock switch to PLL1 did not take.
    Switch,
}

/// Polls `done` at most `tries` times (the HSI runs ≥ 64 M cycles a second: 1 M tries
/// are well over the few hundred microseconds any of these steps takes).
fn wait(mut done: impl FnMut() -> bool, error: ClockError) -> Result<(), ClockError> {
    for _ in 0..1_000_000u32 {
        if done() {
            return Ok(());
        }
    }
    Err(error)
}

/// Sets the clock tree up. On an error the part keeps running from the HSI at 64 MHz.
pub fn init() -> Result<(), ClockError> {
    // Supply: the NUCLEO powers the core from the LDO (the reset configuration, written
    // once to lock it).
    PWR.cr3().modify(|w| {
        w.set_scuen(true);
        w.set_ldoen(true);
        w.set_bypass(false);
    });
    wait(|| PWR.csr1().read().actvosrdy(), ClockError::Supply)?;

    // Scale 1, then the overdrive for scale 0.
    PWR.d3cr().modify(|w| w.set_vos(Vos::SCALE1));
    wait(|| PWR.d3cr().read().vosrdy(), ClockError::VoltageScale)?;
    RCC.apb4enr().modify(|w| w.set_syscfgen(true));
    SYSCFG.pwrcr().modify(|w| w.set_oden(1));
    wait(|| PWR.d3cr().read().vosrdy(), ClockError::VoltageScale)?;

    // Flash: 4 wait states and programming delay 2 for a 240 MHz AXI clock at scale 0,
    // set before the clock rises.
    FLASH.acr().modify(|w| {
        w.set_latency(4);
        w.set_wrhighfreq(2);
    });
    wait(|| FLASH.acr().read().latency() == 4, ClockError::FlashLatency)?;

    // PLL1 from the HSI: 16 MHz reference (8–16 MHz range), 960 MHz VCO.
    RCC.pllckselr().modify(|w| {
        w.set_pllsrc(Pllsrc::HSI);
        w.set_divm(0, Pllm::DIV4);
    });
    RCC.pllcfgr().modify(|w| {
        w.set_pllrge(0, Pllrge::RANGE8);
        w.set_pllvcosel(0, Pllvcosel::WIDE_VCO);
        w.set_pllfracen(0, false);
        w.set_divpen(0, true);
        w.set_divqen(0, true);
        w.set_divren(0, false);
    });
    RCC.plldivr(0).modify(|w| {
        w.set_plln(Plln::MUL60);
        w.set_pllp(Plldiv::DIV2);
        w.set_pllq(Plldiv::DIV8);
    });
    RCC.cr().modify(|w| w.set_pllon(0, true));
    wait(|| RCC.cr().read().pllrdy(0), ClockError::Pll)?;

    // Bus prescalers before the switch: AXI/AHB 240 MHz, APBs 120 MHz.
    RCC.d1cfgr().modify(|w| {
        w.set_d1cpre(Hpre::DIV1);
        w.set_hpre(Hpre::DIV2);
        w.set_d1ppre(Ppre::DIV2);
    });
    RCC.d2cfgr().modify(|w| {
        w.set_d2ppre1(Ppre::DIV2);
        w.set_d2ppre2(Ppre::DIV2);
    });
    RCC.d3cfgr().modify(|w| w.set_d3ppre(Ppre::DIV2));
    RCC.cfgr().modify(|w| w.set_sw(Sw::PLL1_P));
    wait(|| RCC.cfgr().read().sws() == Sw::PLL1_P, ClockError::Switch)
}
