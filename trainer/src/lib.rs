//! ThermoQC host library: specimens and the thermography simulator (more as issues land).

pub mod sim;
pub mod specimen;
