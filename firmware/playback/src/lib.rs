//! Recorded sequences as a station's camera, for the emulated board.
//!
//! A recording is the trainer's layout: `sequence.npy` (frames × height × width, kelvin
//! as `<f4`/`<f8`, or TLinear counts as `<u2`) and `times.npy` (seconds from the start of
//! heating, `<f8`/`<f4`, negative before it). [`npy`] reads their headers from any
//! [`Source`] of bytes (semihosting files on the board, memory in tests); [`playback`]
//! delivers the frames in order on a [`Timeline`] that stands in for the station clock;
//! [`vospi`] sends them over an emulated Lepton link, with faults, to the real driver.
#![no_std]

pub mod npy;
pub mod playback;
pub mod vospi;

pub use npy::{Dtype, NpyError, NpyHeader, Source};
pub use playback::{LampSwitch, Playback, PlaybackClock, Recording, RecordingError, Timeline};
pub use vospi::{FaultRate, Link, LinkDelay, LinkSpi};
