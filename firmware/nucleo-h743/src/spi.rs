//! SPI1 as a blocking master bus over the registers (the H7's SPI with FIFOs): mode 3,
//! 8-bit frames, 120 MHz / 8 = 15 MHz (the Lepton's VoSPI runs at 2.2–20 MHz). The
//! Lepton only talks (MISO); what the bus sends is clocked out to no pin.
//!
//! Every wait is bounded, so a stuck peripheral is an error the camera driver reports
//! (the station RETESTs), never a hang or a panic.

use embedded_hal::spi::{ErrorKind, ErrorType, SpiBus};
use stm32_metapac::spi::vals::{Comm, Cpha, Cpol, Fthlv, Lsbfirst, Master, Mbr};
use stm32_metapac::{RCC, SPI1};

/// Polls of a status flag before giving up: a byte at 15 MHz takes 0.53 µs, a poll a few
/// cycles at 480 MHz, so 20 000 polls are far beyond any byte.
const POLLS: u32 = 20_000;

/// What went wrong on the bus.
#[derive(Clone, Copy, Debug, PartialEq, Eq, defmt::Format)]
pub enum Error {
    /// A byte did not move in time (the peripheral is stuck or unclocked).
    Timeout,
    /// A received byte was overwritten before it was read.
    Overrun,
    /// The peripheral left master mode (its internal select went low).
    ModeFault,
}

impl embedded_hal::spi::Error for Error {
    fn kind(&self) -> ErrorKind {
        match self {
            Error::Timeout => ErrorKind::Other,
            Error::Overrun => ErrorKind::Overrun,
            Error::ModeFault => ErrorKind::ModeFault,
        }
    }
}

/// SPI1, owned. The pins (SCK PA5, MISO PA6, AF5) are set up by the caller.
pub struct Spi1 {
    _private: (),
}

impl Spi1 {
    /// Clocks and configures SPI1 (kernel clock PLL1 Q at 120 MHz, the reset selection).
    pub fn new() -> Self {
        RCC.apb2enr().modify(|w| w.set_spi1en(true));
        let _ = RCC.apb2enr().read();
        SPI1.cr1().modify(|w| w.set_spe(false));
        SPI1.cfg1().modify(|w| {
            w.set_mbr(Mbr::DIV8);
            w.set_dsize(8 - 1);
            w.set_fthlv(Fthlv::ONE_FRAME);
            w.set_crcen(false);
            w.set_rxdmaen(false);
            w.set_txdmaen(false);
        });
        SPI1.cfg2().modify(|w| {
            w.set_master(Master::MASTER);
            w.set_comm(Comm::FULL_DUPLEX);
            w.set_cpol(Cpol::IDLE_HIGH);
            w.set_cpha(Cpha::SECOND_EDGE);
            w.set_lsbfirst(Lsbfirst::MSBFIRST);
            // Software select held high: the chip select is a GPIO of the device.
            w.set_ssm(true);
            w.set_ssoe(false);
            // Keep SCK at its idle level while the peripheral is disabled.
            w.set_afcntr(true);
        });
        SPI1.cr1().modify(|w| w.set_ssi(true));
        // Endless transfer: the master clocks one frame per byte written.
        SPI1.cr2().modify(|w| w.set_tsize(0));
        Spi1 { _private: () }
    }

    fn poll(mut ready: impl FnMut() -> bool) -> Result<(), Error> {
        for _ in 0..POLLS {
            let sr = SPI1.sr().read();
            if sr.modf() {
                SPI1.ifcr().write(|w| w.set_modfc(true));
                return Err(Error::ModeFault);
            }
            if sr.ovr() {
                SPI1.ifcr().write(|w| w.set_ovrc(true));
                return Err(Error::Overrun);
            }
            if ready() {
                return Ok(());
            }
        }
        Err(Error::Timeout)
    }

    /// Re-enables the peripheral (which clears a stuck receive state) and empties the
    /// receive FIFO before a transfer.
    fn begin() {
        SPI1.cr1().modify(|w| w.set_spe(false));
        SPI1.cr1().modify(|w| w.set_spe(true));
        while SPI1.sr().read().rxp() {
            let _ = SPI1.rxdr8().read();
        }
    }

    fn exchange(byte: u8) -> Result<u8, Error> {
        Self::poll(|| SPI1.sr().read().txp())?;
        SPI1.txdr8().write_value(byte);
        SPI1.cr1().modify(|w| w.set_cstart(true));
        Self::poll(|| SPI1.sr().read().rxp())?;
        Ok(SPI1.rxdr8().read())
    }
}

impl ErrorType for Spi1 {
    type Error = Error;
}

impl SpiBus<u8> for Spi1 {
    fn read(&mut self, words: &mut [u8]) -> Result<(), Error> {
        Self::begin();
        for w in words {
            *w = Self::exchange(0)?;
        }
        Ok(())
    }

    fn write(&mut self, words: &[u8]) -> Result<(), Error> {
        Self::begin();
        for &w in words {
            Self::exchange(w)?;
        }
        Ok(())
    }

    fn transfer(&mut self, read: &mut [u8], write: &[u8]) -> Result<(), Error> {
        Self::begin();
        let n = read.len().max(write.len());
        let mut read = read.iter_mut();
        let mut write = write.iter();
        for _ in 0..n {
            let rx = Self::exchange(write.next().copied().unwrap_or(0))?;
            if let Some(r) = read.next() {
                *r = rx;
            }
        }
        Ok(())
    }

    fn transfer_in_place(&mut self, words: &mut [u8]) -> Result<(), Error> {
        Self::begin();
        for w in words {
            *w = Self::exchange(*w)?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), Error> {
        // Each exchange waits for its byte back: nothing is in flight after it.
        Ok(())
    }
}
