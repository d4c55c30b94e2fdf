//! The command-line front ends of the library.

pub mod baseline;
pub mod dataset;
pub mod evaluate;
pub mod inspect;
pub mod simulate;
pub mod train;
