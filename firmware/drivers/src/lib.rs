//! Drivers for the inspection station, on embedded-hal 1.0 traits, `no_std`, no heap.
//!
//! - [`lepton`]: the FLIR Lepton 3.5 thermal camera — frames over VoSPI (`SpiDevice`),
//!   control over CCI (`I2c`);
//! - [`station`]: lamp relay with its on-time interlock, verdict LEDs, debounced trigger.
#![no_std]

pub mod lepton;
pub mod station;
