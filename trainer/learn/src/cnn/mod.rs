//! The compact fully-convolutional CNN (burn) that turns a feature image into a
//! per-pixel class map — sound, in-depth defect, surface defect — and its training.
//!
//! Architecture (only layers the engine runs; optional batch normalization is folded into
//! the convolutions at export): 3×3 conv K→w, [BN], ReLU; 3×3 conv w→w, [BN], ReLU; 3×3
//! conv w→w, [BN], ReLU; 1×1 conv w→3 (logits at full resolution; the device applies softmax and
//! argmax). Inputs are the shared extractor's int8 features, dequantized. Dropout before
//! the head during training only.
//!
//! Training: one plate per step by default (a 160×120 plate holds ~19 000 labelled
//! pixels, enough for batch-norm statistics; a step of several plates runs them on
//! several threads), plates shuffled every epoch, augmented (flips, gain of the
//! amplitude channel, a linear lamp-profile tilt, noise, re-quantized to the device's
//! int8 grid), Adam / AdamW / SGD with Nesterov momentum, linear warm-up then cosine
//! decay, L2 (and optional L1) weight decay, class-weighted cross-entropy, early stopping
//! on the validation split keeping the best epoch. Deterministic for a seed.

mod data;
mod encoder_decoder;
mod model;
mod training;

pub use data::*;
pub use encoder_decoder::*;
pub use model::*;
pub use training::*;

/// burn's NdArray backend seeds one process-wide generator, so unit tests that seed it
/// and draw from it take turns (in parallel they would draw from each other's stream).
#[cfg(test)]
pub(crate) fn seeded_turn() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}
