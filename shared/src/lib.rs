//! ThermoQC's shared device arithmetic: `no_std`, no `alloc`.
//!
//! - [`quant`]: TFLite / CMSIS-NN requantization arithmetic;
//! - [`kernels`]: int8 convolution, depthwise, fully connected, pooling, softmax, argmax,
//!   with a portable path and a Cortex-M DSP path ([`kernels::mac`]);
//! - [`model`], [`blob`]: the model description and its postcard blob with validation;
//! - [`planner`]: the arena plan (tensor liveness and reuse);
//! - [`engine`]: runs a model over a caller-provided arena, streaming rows or whole maps;
//! - [`features`]: the streaming fixed-point thermal features host and device share;
//! - [`verdict`]: defect regions of a class map and the part's verdict;
//! - [`inspection`]: acquisition limits (RETEST faults) and the device's report;
//! - `owned` (feature `std`): owned models for host tools that build blobs.
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]

#[cfg(feature = "std")]
extern crate alloc;

pub mod blob;
pub mod engine;
pub mod features;
pub mod inspection;
pub mod kernels;
pub mod model;
mod order;
#[cfg(feature = "std")]
pub mod owned;
pub mod planner;
pub mod quant;
pub mod tensor;
pub mod vectors;
pub mod verdict;
