//! ThermoQC host library: specimens, the thermography simulator, datasets, classical
//! baselines, the CNN, its quantization and export, and the host twin of the device.

pub mod baseline;
pub mod cnn;
pub mod crossval;
pub mod dataset;
pub mod depth;
pub mod evaluate;
pub mod export;
pub mod features;
pub mod finetune;
pub mod infer;
pub mod model_eval;
pub mod onnx_run;
pub mod preview;
pub mod qat;
pub mod sequence;
pub mod sim;
pub mod simulate;
pub mod specimen;
