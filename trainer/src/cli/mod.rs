//! The command-line front ends of the library.

pub mod inspect;
pub mod simulate;
