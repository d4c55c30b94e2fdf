//! ThermoQC on the host, without learning: the host twin of the device ([`features`]
//! through the shared extractor, [`infer`] through the shared engine, [`report`] as the
//! verdict file), the classical thermography methods the CNN is measured against
//! ([`baseline`]), the scoring of a defect map against ground truth ([`score`]) and the
//! probability-of-detection statistics that qualify a method ([`pod`]).

pub mod baseline;
pub mod features;
pub mod infer;
pub mod pod;
pub mod report;
pub mod score;
