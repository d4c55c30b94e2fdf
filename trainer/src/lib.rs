//! ThermoQC host library: specimens and the thermography simulator (more as issues land).

pub mod baseline;
pub mod cnn;
pub mod dataset;
pub mod evaluate;
pub mod features;
pub mod preview;
pub mod sequence;
pub mod sim;
pub mod simulate;
pub mod specimen;
