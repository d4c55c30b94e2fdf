//! ThermoQC learning: everything that needs burn or tract. The network and its training
//! ([`cnn`]: model, data, training loop), quantization-aware fine-tuning ([`qat`]), the
//! export to float and QDQ ONNX and to the engine's blob ([`export`]), fine-tuning of a
//! shipped model through burn-import ([`finetune`]), tract as the ONNX reference
//! ([`onnx_run`]), a whole training run from a dataset folder ([`pipeline`]), the
//! evaluation of a shipped model against the baselines ([`model_eval`]), K-fold
//! cross-validation ([`crossval`]), the depth probe of the trunk ([`depth`]) and the
//! per-plate work of a POD study ([`pod`]).

pub mod cnn;
pub mod crossval;
pub mod depth;
pub mod export;
pub mod finetune;
pub mod input_scale;
pub mod model_eval;
pub mod onnx_run;
pub mod pipeline;
pub mod pod;
pub mod qat;
