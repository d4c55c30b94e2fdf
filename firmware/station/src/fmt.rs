//! Logging that is defmt on the boards and nothing in host tests (where no defmt logger
//! exists). Arguments are still evaluated by reference, so both builds see the same code.

#[cfg(feature = "defmt")]
macro_rules! log {
    ($level:ident, $($arg:tt)*) => { defmt::$level!($($arg)*) };
}

#[cfg(not(feature = "defmt"))]
macro_rules! log {
    ($level:ident, $fmt:literal $(, $arg:expr)* $(,)?) => {{ $( let _ = &$arg; )* }};
}

macro_rules! info { ($($arg:tt)*) => { $crate::fmt::log!(info, $($arg)*) }; }
macro_rules! warning { ($($arg:tt)*) => { $crate::fmt::log!(warn, $($arg)*) }; }
macro_rules! error { ($($arg:tt)*) => { $crate::fmt::log!(error, $($arg)*) }; }

pub(crate) use {error, info, log, warning};

/// Shows a `core::fmt::Display` value in a defmt log.
#[cfg_attr(not(feature = "defmt"), allow(dead_code))]
pub struct Disp<'a, T: core::fmt::Display>(pub &'a T);

#[cfg(feature = "defmt")]
impl<T: core::fmt::Display> defmt::Format for Disp<'_, T> {
    fn format(&self, f: defmt::Formatter<'_>) {
        defmt::write!(f, "{}", defmt::Display2Format(self.0))
    }
}
