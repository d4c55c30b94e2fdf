//! GPIO pins over the registers: a pin's number is a type parameter, so every register
//! index is a constant the compiler checks (no bounds check is left in the image).

use core::convert::Infallible;

use stm32_metapac::gpio::Gpio;
use stm32_metapac::gpio::regs::Bsrr;
use stm32_metapac::gpio::vals::{Moder, Ospeedr, Ot, Pupdr};
use stm32_metapac::{GPIOA, GPIOB, GPIOC, GPIOD, GPIOE, GPIOF, RCC};

/// Clocks the ports the board uses (A–F).
pub fn enable_ports() {
    RCC.ahb4enr().modify(|w| {
        w.set_gpioaen(true);
        w.set_gpioben(true);
        w.set_gpiocen(true);
        w.set_gpioden(true);
        w.set_gpioeen(true);
        w.set_gpiofen(true);
    });
    // The enable takes effect two AHB cycles later: read back before the first access.
    let _ = RCC.ahb4enr().read();
}

pub mod port {
    use super::*;
    pub const A: Gpio = GPIOA;
    pub const B: Gpio = GPIOB;
    pub const C: Gpio = GPIOC;
    pub const D: Gpio = GPIOD;
    pub const E: Gpio = GPIOE;
    pub const F: Gpio = GPIOF;
}

/// Pin `N`'s mode, output type, speed and pull; the alternate function `af` for
/// [`Moder::ALTERNATE`].
fn configure<const N: usize>(port: Gpio, mode: Moder, ot: Ot, speed: Ospeedr, pull: Pupdr, af: u8) {
    const { assert!(N < 16) };
    port.afr(N / 8).modify(|w| w.set_afr(N % 8, af));
    port.otyper().modify(|w| w.set_ot(N, ot));
    port.ospeedr().modify(|w| w.set_ospeedr(N, speed));
    port.pupdr().modify(|w| w.set_pupdr(N, pull));
    port.moder().modify(|w| w.set_moder(N, mode));
}

/// A push-pull output.
pub struct Output<const N: usize> {
    port: Gpio,
}

impl<const N: usize> Output<N> {
    /// Pin `N` of `port` driven to `high`, then made an output (no glitch at the switch).
    pub fn new(port: Gpio, high: bool, speed: Ospeedr) -> Self {
        let pin = Output { port };
        pin.write(high);
        configure::<N>(port, Moder::OUTPUT, Ot::PUSH_PULL, speed, Pupdr::FLOATING, 0);
        pin
    }

    fn write(&self, high: bool) {
        const { assert!(N < 16) };
        // BSRR: bit N sets, bit N + 16 resets, atomically.
        let bit = if high { 1u32 << N } else { 1u32 << (N + 16) };
        self.port.bsrr().write_value(Bsrr(bit));
    }
}

impl<const N: usize> embedded_hal::digital::ErrorType for Output<N> {
    type Error = Infallible;
}

impl<const N: usize> embedded_hal::digital::OutputPin for Output<N> {
    fn set_low(&mut self) -> Result<(), Infallible> {
        self.write(false);
        Ok(())
    }
    fn set_high(&mut self) -> Result<(), Infallible> {
        self.write(true);
        Ok(())
    }
}

/// An input with a pull resistor.
pub struct Input<const N: usize> {
    port: Gpio,
}

impl<const N: usize> Input<N> {
    pub fn new(port: Gpio, pull: Pupdr) -> Self {
        configure::<N>(port, Moder::INPUT, Ot::PUSH_PULL, Ospeedr::LOW_SPEED, pull, 0);
        Input { port }
    }
}

impl<const N: usize> embedded_hal::digital::ErrorType for Input<N> {
    type Error = Infallible;
}

impl<const N: usize> embedded_hal::digital::InputPin for Input<N> {
    fn is_high(&mut self) -> Result<bool, Infallible> {
        const { assert!(N < 16) };
        Ok(self.port.idr().read().0 & (1 << N) != 0)
    }
    fn is_low(&mut self) -> Result<bool, Infallible> {
        self.is_high().map(|h| !h)
    }
}

/// Pin `N` of `port` handed to a peripheral (alternate function `af`); `open_drain` for
/// a bus several devices pull (I²C).
pub fn alternate<const N: usize>(port: Gpio, af: u8, open_drain: bool, speed: Ospeedr) {
    let ot = if open_drain { Ot::OPEN_DRAIN } else { Ot::PUSH_PULL };
    configure::<N>(port, Moder::ALTERNATE, ot, speed, Pupdr::FLOATING, af);
}
