//! What the state machine needs from a board: a camera, the lamp, a clock, the LEDs and
//! a watchdog. The boards implement these on their drivers (a Lepton, GPIO pins) or on
//! emulation (a recorded sequence read through semihosting).

use embedded_hal::digital::OutputPin;
use tqc_drivers::lepton::{self, Lepton};
use tqc_drivers::station::{Indication, Lamp as LampRelay, LampError, Leds};

/// Why a frame did not come.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum CameraError {
    /// This frame is lost (CRC errors, lost sync, unreadable pixels); the camera goes on
    /// streaming. Counted against the station's error budget.
    Lost,
    /// The camera cannot deliver frames any more (bus error, no answer).
    Failed,
    /// A recorded sequence has no more frames (emulated camera only).
    Ended,
}

/// A radiometric camera: frames of centikelvin (TLinear), row-major.
pub trait Camera {
    /// Waits for the next frame and writes it into `frame`; the time it was taken is read
    /// from the [`Clock`] right after.
    fn capture(&mut self, frame: &mut [u16]) -> Result<(), CameraError>;
}

/// The Lepton as the station's camera: a frame that cannot be assembled within the
/// driver's packet budget is lost; a bus error, a wrong buffer or a CCI failure means the
/// camera is gone.
pub struct LeptonCamera<S, I, D>(pub Lepton<S, I, D>);

impl<S, I, D> LeptonCamera<S, I, D> {
    /// Gives the driver back.
    pub fn destroy(self) -> Lepton<S, I, D> {
        self.0
    }
}

impl<S, I, D> Camera for LeptonCamera<S, I, D>
where
    S: embedded_hal::spi::SpiDevice,
    I: embedded_hal::i2c::I2c,
    D: embedded_hal::delay::DelayNs,
{
    fn capture(&mut self, frame: &mut [u16]) -> Result<(), CameraError> {
        match self.0.read_frame(frame) {
            Ok(_) => Ok(()),
            Err(lepton::Error::NoFrame { .. }) => Err(CameraError::Lost),
            Err(_) => Err(CameraError::Failed),
        }
    }
}

/// The station's monotonic clock.
pub trait Clock {
    /// Milliseconds on the station's time line.
    fn now_ms(&mut self) -> i64;
    /// CPU cycles, for stage timings (on QEMU with `-icount shift=0`: instructions).
    fn cycles(&mut self) -> u64;
}

/// The heating lamp, behind its interlock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum LampFault {
    /// The lamp reached its hard on-time limit and was switched off.
    Interlock,
    /// The relay pin could not be driven.
    Pin,
}

pub trait Lamp {
    fn on(&mut self, now_ms: i64) -> Result<(), LampFault>;
    fn off(&mut self) -> Result<(), LampFault>;
    /// Enforces the interlock; `Err(Interlock)` once it has tripped.
    fn service(&mut self, now_ms: i64) -> Result<(), LampFault>;
    /// Re-arms a tripped interlock for the next part (an operator restarting the station).
    fn rearm(&mut self);
}

/// The interlocked relay of the drivers crate (its clock is 32-bit milliseconds).
impl<P: OutputPin> Lamp for LampRelay<P> {
    fn on(&mut self, now_ms: i64) -> Result<(), LampFault> {
        LampRelay::on(self, now_ms as u32).map_err(lamp_fault)
    }
    fn off(&mut self) -> Result<(), LampFault> {
        LampRelay::off(self).map_err(lamp_fault)
    }
    fn service(&mut self, now_ms: i64) -> Result<(), LampFault> {
        if LampRelay::service(self, now_ms as u32).map_err(lamp_fault)? || self.tripped() {
            return Err(LampFault::Interlock);
        }
        Ok(())
    }
    fn rearm(&mut self) {
        self.reset_interlock();
    }
}

fn lamp_fault<E>(e: LampError<E>) -> LampFault {
    match e {
        LampError::Interlock => LampFault::Interlock,
        LampError::Pin(_) => LampFault::Pin,
    }
}

/// The verdict LEDs.
pub trait Indicator {
    /// Lights `what`; a failing LED cannot change a verdict, so errors are the board's
    /// to log.
    fn show(&mut self, what: Indication);
}

impl<E: embedded_hal::digital::Error, G, R, A, B> Indicator for Leds<G, R, A, B>
where
    G: OutputPin<Error = E>,
    R: OutputPin<Error = E>,
    A: OutputPin<Error = E>,
    B: OutputPin<Error = E>,
{
    fn show(&mut self, what: Indication) {
        let _ = Leds::show(self, what);
    }
}

/// A watchdog that resets the board unless fed in time.
pub trait Watchdog {
    fn feed(&mut self);
}

/// The hardware of one station.
pub struct Hardware<C, K, L, I, W> {
    pub camera: C,
    pub clock: K,
    pub lamp: L,
    pub leds: I,
    pub watchdog: W,
}
