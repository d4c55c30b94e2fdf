//! I2C1 as a blocking controller over the registers (the H7's I2C v2): fast mode from a
//! 120 MHz kernel clock, 7-bit addresses, transactions of any length (NBYTES reloads
//! past 255 bytes), adjacent operations of one direction merged as embedded-hal asks.
//!
//! Every wait is bounded; a NACK, a bus error, a lost arbitration or a timeout ends the
//! transaction with a STOP (and, after a timeout, a peripheral reset) and comes back as an
//! error the camera driver reports.

use embedded_hal::i2c::{ErrorKind, ErrorType, I2c, NoAcknowledgeSource, Operation};
use stm32_metapac::i2c::vals::{Addmode, Autoend, Dir, Reload};
use stm32_metapac::{I2C1, RCC};

/// Polls of a status flag before giving up: a byte at ~370 kHz takes ~25 µs, ~3 000
/// polls at 480 MHz; 200 000 polls also cover a device stretching the clock a while.
const POLLS: u32 = 200_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, defmt::Format)]
pub enum Error {
    /// The device did not acknowledge its address (`Address`) or a byte (`Data`).
    Nack(#[defmt(Debug2Format)] NoAcknowledgeSource),
    ArbitrationLoss,
    /// A misplaced START or STOP on the bus.
    Bus,
    Overrun,
    /// A flag did not come in time (a device holding the clock low, a dead bus).
    Timeout,
}

impl embedded_hal::i2c::Error for Error {
    fn kind(&self) -> ErrorKind {
        match *self {
            Error::Nack(s) => ErrorKind::NoAcknowledge(s),
            Error::ArbitrationLoss => ErrorKind::ArbitrationLoss,
            Error::Bus => ErrorKind::Bus,
            Error::Overrun => ErrorKind::Overrun,
            Error::Timeout => ErrorKind::Other,
        }
    }
}

/// I2C1, owned. The pins (SCL PB8, SDA PB9, AF4, open drain) are set up by the caller.
pub struct I2c1 {
    _private: (),
}

impl I2c1 {
    /// Clocks and configures I2C1 (kernel clock APB1 at 120 MHz, the reset selection).
    pub fn new() -> Self {
        RCC.apb1lenr().modify(|w| w.set_i2c1en(true));
        let _ = RCC.apb1lenr().read();
        I2C1.cr1().modify(|w| w.set_pe(false));
        // 120 MHz / 3 = 25 ns steps: SCL low 56 steps (1.4 µs ≥ 1.3), high 40 (1.0 µs ≥
        // 0.6), data setup 4 steps (100 ns), hold 1 step: about 370 kHz with the
        // synchronisation and rise times.
        I2C1.timingr().write(|w| {
            w.set_presc(2);
            w.set_scldel(3);
            w.set_sdadel(1);
            w.set_sclh(39);
            w.set_scll(55);
        });
        I2C1.cr1().modify(|w| w.set_pe(true));
        I2c1 { _private: () }
    }

    /// Resets the peripheral's state machine (PE low for three APB cycles), releasing
    /// the lines.
    fn recover() {
        I2C1.cr1().modify(|w| w.set_pe(false));
        for _ in 0..3 {
            let _ = I2C1.cr1().read();
        }
        I2C1.cr1().modify(|w| w.set_pe(true));
    }

    /// Waits for `ready`, ending the transaction on an error flag. `sent` says whether a
    /// byte already went out in this segment (a NACK is then the data's, not the address').
    fn poll(mut ready: impl FnMut() -> bool, sent: bool) -> Result<(), Error> {
        for _ in 0..POLLS {
            let isr = I2C1.isr().read();
            let error = if isr.nackf() {
                Some(Error::Nack(if sent {
                    NoAcknowledgeSource::Data
                } else {
                    NoAcknowledgeSource::Address
                }))
            } else if isr.arlo() {
                Some(Error::ArbitrationLoss)
            } else if isr.berr() {
                Some(Error::Bus)
            } else if isr.ovr() {
                Some(Error::Overrun)
            } else {
                None
            };
            if let Some(e) = error {
                Self::abort();
                return Err(e);
            }
            if ready() {
                return Ok(());
            }
        }
        Self::abort();
        Self::recover();
        Err(Error::Timeout)
    }

    /// A STOP (unless the bus already sent one), then every flag cleared and the
    /// transmit register flushed.
    fn abort() {
        if I2C1.isr().read().busy() && !I2C1.isr().read().stopf() {
            I2C1.cr2().modify(|w| w.set_stop(true));
            for _ in 0..POLLS {
                if I2C1.isr().read().stopf() || !I2C1.isr().read().busy() {
                    break;
                }
            }
        }
        I2C1.icr().write(|w| {
            w.set_nackcf(true);
            w.set_stopcf(true);
            w.set_berrcf(true);
            w.set_arlocf(true);
            w.set_ovrcf(true);
        });
        I2C1.isr().modify(|w| w.set_txe(true));
    }

    /// START (or repeated START) of a segment of `len` bytes (at most 255 now, `reload`
    /// if more follow), a STOP after it if `stop`.
    fn start(address: u8, read: bool, len: usize, more: bool, stop: bool) {
        I2C1.cr2().write(|w| {
            w.set_sadd(u16::from(address) << 1);
            w.set_add10(Addmode::BIT7);
            w.set_dir(if read { Dir::READ } else { Dir::WRITE });
            w.set_nbytes(len as u8);
            let (reload, autoend) = ending(more, stop);
            w.set_reload(reload);
            w.set_autoend(autoend);
            w.set_start(true);
        });
    }
}

/// How a chunk of NBYTES ends: reloaded when `more` bytes follow in its segment, else with
/// a STOP when the segment ends the transaction (`stop`), else held for a repeated START.
fn ending(more: bool, stop: bool) -> (Reload, Autoend) {
    let reload = if more { Reload::NOT_COMPLETED } else { Reload::COMPLETED };
    let autoend = if stop && !more {
        Autoend::AUTOMATIC
    } else {
        Autoend::SOFTWARE
    };
    (reload, autoend)
}

/// Bytes an operation moves.
fn len(op: &Operation<'_>) -> usize {
    match op {
        Operation::Read(b) => b.len(),
        Operation::Write(b) => b.len(),
    }
}

impl ErrorType for I2c1 {
    type Error = Error;
}

impl I2c for I2c1 {
    fn transaction(&mut self, address: u8, operations: &mut [Operation<'_>]) -> Result<(), Error> {
        let mut rest = operations;
        while !rest.is_empty() {
            // A segment: the run of operations of one direction at the front.
            let read = matches!(rest.first(), Some(Operation::Read(_)));
            let run = rest
                .iter()
                .take_while(|op| matches!(op, Operation::Read(_)) == read)
                .count();
            // `run` counts operations of `rest`, so the split always succeeds; the checked
            // form keeps a panic path out of the image.
            let Some((segment, after)) = core::mem::take(&mut rest).split_at_mut_checked(run) else {
                break;
            };
            rest = after;
            let last = rest.is_empty();
            let mut remaining: usize = segment.iter().map(len).sum();
            let mut chunk = remaining.min(255);
            Self::start(address, read, chunk, remaining > 255, last);
            let mut sent = false;
            for op in segment.iter_mut() {
                let bytes: &mut dyn Iterator<Item = Byte<'_>> = match op {
                    Operation::Read(b) => &mut b.iter_mut().map(Byte::In),
                    Operation::Write(b) => &mut b.iter().map(Byte::Out),
                };
                for byte in bytes {
                    if chunk == 0 {
                        // NBYTES ran out with more to move: reload the next 255 at most.
                        Self::poll(|| I2C1.isr().read().tcr(), sent)?;
                        chunk = remaining.min(255);
                        let more = remaining > 255;
                        I2C1.cr2().modify(|w| {
                            w.set_nbytes(chunk as u8);
                            let (reload, autoend) = ending(more, last);
                            w.set_reload(reload);
                            w.set_autoend(autoend);
                        });
                    }
                    match byte {
                        Byte::In(b) => {
                            Self::poll(|| I2C1.isr().read().rxne(), sent)?;
                            *b = I2C1.rxdr().read().rxdata();
                        }
                        Byte::Out(&b) => {
                            Self::poll(|| I2C1.isr().read().txis(), sent)?;
                            I2C1.txdr().write(|w| w.set_txdata(b));
                        }
                    }
                    sent = true;
                    chunk -= 1;
                    remaining -= 1;
                }
            }
            if last {
                Self::poll(|| I2C1.isr().read().stopf(), sent)?;
                I2C1.icr().write(|w| w.set_stopcf(true));
            } else {
                // The repeated START of the next segment follows the completed transfer.
                Self::poll(|| I2C1.isr().read().tc(), sent)?;
            }
        }
        Ok(())
    }
}

/// One byte of a segment: received into, or sent from.
enum Byte<'a> {
    In(&'a mut u8),
    Out(&'a u8),
}
