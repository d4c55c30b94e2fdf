//! What a board's defmt logger needs beyond its output: [`Frames`], the encoder state
//! between defmt's `acquire` and `release`, kept in a critical section and never
//! panicking (a nested frame is dropped); [`rtt::ControlBlock`], a SEGGER RTT up channel
//! that trims what does not fit instead of blocking.
//!
//! `defmt-rtt` and `defmt-semihosting` panic when their logger is taken twice and
//! `defmt-rtt` may block on a full buffer: a log line must never stop a station.

#![no_std]

mod frames;
pub mod rtt;

pub use frames::Frames;
