//! The inspection state machine of a ThermoQC station, independent of the board.
//!
//! - [`hw`]: what a board provides (camera, clock, lamp, LEDs, watchdog);
//! - [`config`]: how a station inspects (pre-heat frames, heating time, fault budgets);
//! - [`memory`]: every buffer, sized at compile time, for a `static`;
//! - [`station`]: boot-time model validation and the inspection cycle.
//!
//! `no_std`, no heap; the arithmetic is the shared crate's (features, engine, verdict),
//! exactly what the host twin `trainer infer` runs.
#![no_std]

mod fmt;

pub mod config;
pub mod hw;
pub mod memory;
pub mod station;

pub use config::StationConfig;
pub use hw::{Camera, CameraError, Clock, Hardware, Indicator, Lamp, LampFault, LeptonCamera, Watchdog};
pub use memory::{Buffers, Memory, work_bytes};
pub use station::{ModelFault, Station};
pub use tqc_drivers::station::Indication;
pub use tqc_shared::inspection::{Fault, Report};
