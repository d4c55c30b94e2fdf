//! The station's simple I/O: the heating lamp with its on-time interlock, the verdict
//! LEDs, and the debounced start trigger. Time is passed in as milliseconds from any
//! monotonic clock (SysTick on the boards), so the logic is host-testable.

use embedded_hal::digital::{InputPin, OutputPin};

/// The lamp relay with a hard maximum on-time.
///
/// `service(now)` must run periodically (the boards call it from their timer tick): once
/// the lamp has been on for `max_on_ms` it switches off and the interlock trips; `on`
/// then refuses until `reset_interlock`. Whatever the caller does, the lamp is never on
/// longer than the limit plus one service period.
pub struct Lamp<P> {
    pin: P,
    max_on_ms: u32,
    on_since: Option<u32>,
    tripped: bool,
}

#[derive(Debug, PartialEq, Eq)]
pub enum LampError<E> {
    Pin(E),
    /// The interlock tripped; the lamp stays off until it is reset.
    Interlock,
}

impl<P: OutputPin> Lamp<P> {
    /// Drives the pin low (lamp off) first.
    pub fn new(mut pin: P, max_on_ms: u32) -> Result<Self, LampError<P::Error>> {
        pin.set_low().map_err(LampError::Pin)?;
        Ok(Lamp {
            pin,
            max_on_ms,
            on_since: None,
            tripped: false,
        })
    }

    pub fn on(&mut self, now_ms: u32) -> Result<(), LampError<P::Error>> {
        if self.tripped {
            return Err(LampError::Interlock);
        }
        self.pin.set_high().map_err(LampError::Pin)?;
        self.on_since.get_or_insert(now_ms);
        Ok(())
    }

    pub fn off(&mut self) -> Result<(), LampError<P::Error>> {
        self.on_since = None;
        self.pin.set_low().map_err(LampError::Pin)
    }

    /// Enforces the limit; returns true when it just tripped.
    pub fn service(&mut self, now_ms: u32) -> Result<bool, LampError<P::Error>> {
        match self.on_since {
            Some(t) if now_ms.wrapping_sub(t) >= self.max_on_ms => {
                self.off()?;
                self.tripped = true;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    pub fn is_on(&self) -> bool {
        self.on_since.is_some()
    }

    pub fn tripped(&self) -> bool {
        self.tripped
    }

    pub fn reset_interlock(&mut self) {
        self.tripped = false;
    }

    pub fn destroy(self) -> P {
        self.pin
    }
}

/// What the LEDs show.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Indication {
    Off,
    Busy,
    Pass,
    Fail,
    Retest,
}

/// PASS (green), FAIL (red), RETEST (amber) and BUSY LEDs, active high.
pub struct Leds<G, R, A, B> {
    pass: G,
    fail: R,
    retest: A,
    busy: B,
}

impl<E: embedded_hal::digital::Error, G, R, A, B> Leds<G, R, A, B>
where
    G: OutputPin<Error = E>,
    R: OutputPin<Error = E>,
    A: OutputPin<Error = E>,
    B: OutputPin<Error = E>,
{
    pub fn new(pass: G, fail: R, retest: A, busy: B) -> Self {
        Leds {
            pass,
            fail,
            retest,
            busy,
        }
    }

    /// Lights exactly the LED of `what` (none for `Off`).
    pub fn show(&mut self, what: Indication) -> Result<(), E> {
        let set = |pin: &mut dyn OutputPin<Error = E>, on: bool| if on { pin.set_high() } else { pin.set_low() };
        set(&mut self.pass, what == Indication::Pass)?;
        set(&mut self.fail, what == Indication::Fail)?;
        set(&mut self.retest, what == Indication::Retest)?;
        set(&mut self.busy, what == Indication::Busy)
    }

    pub fn destroy(self) -> (G, R, A, B) {
        (self.pass, self.fail, self.retest, self.busy)
    }
}

/// A start trigger (active high) that reports a press once the input has read high for
/// `stable_ms` without interruption, and re-arms after it has read low as long.
pub struct Trigger<I> {
    pin: I,
    stable_ms: u32,
    level: bool,
    since: u32,
    reported: bool,
}

impl<I: InputPin> Trigger<I> {
    pub fn new(pin: I, stable_ms: u32, now_ms: u32) -> Self {
        Trigger {
            pin,
            stable_ms,
            level: false,
            since: now_ms,
            reported: true,
        }
    }

    /// Samples the input; true exactly once per debounced press.
    pub fn poll(&mut self, now_ms: u32) -> Result<bool, I::Error> {
        let high = self.pin.is_high()?;
        if high != self.level {
            self.level = high;
            self.since = now_ms;
        }
        let stable = now_ms.wrapping_sub(self.since) >= self.stable_ms;
        if stable && !high {
            self.reported = false;
        }
        if stable && high && !self.reported {
            self.reported = true;
            return Ok(true);
        }
        Ok(false)
    }

    pub fn destroy(self) -> I {
        self.pin
    }
}
