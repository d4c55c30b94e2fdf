//! The command-line front ends of the library.

pub mod baseline;
pub mod bench;
pub mod crossval;
pub mod dataset;
pub mod depth;
pub mod evaluate;
pub mod infer;
pub mod inspect;
pub mod model_card;
pub mod simulate;
pub mod train;
