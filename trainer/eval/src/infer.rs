//! The host twin of the device: a recording through the shared feature extractor and the
//! shared int8 engine (portable path, streaming, bit-exact with the device's DSP path),
//! argmax per pixel, defect regions and the verdict — the same code and the same bytes
//! the firmware produces.

use tqc_shared::blob;
use tqc_shared::engine::{Engine, EngineError};
use tqc_shared::inspection::{Acquisition, AcquisitionLimits, Fault};
use tqc_shared::kernels::argmax;
use tqc_shared::kernels::mac::Portable;
use tqc_shared::model::{Model, ModelError, QuantParams};
use tqc_shared::planner::Mode;
use tqc_shared::verdict::{DepthMap, Findings, Verdict, VerdictConfig, VerdictError, inspect_with_depth};

use tqc_data::sequence::Sequence;

/// Most regions a report keeps (the largest first).
pub const MAX_REGIONS: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum InferError {
    #[error("model")]
    Blob(#[from] blob::BlobError),
    #[error("the model has no feature schedule: it is not an inspection model")]
    NotInspectionModel,
    #[error(
        "the model was built for {model_h}×{model_w} frames and cannot run on the sequence's {seq_h}×{seq_w}: {reason}"
    )]
    FrameSize {
        model_h: usize,
        model_w: usize,
        seq_h: usize,
        seq_w: usize,
        reason: ModelError,
    },
    #[error("features")]
    Features(#[from] tqc_shared::features::FeatureError),
    #[error("engine")]
    Engine(#[from] EngineError),
    #[error("verdict")]
    Verdict(#[from] VerdictError),
}

/// Everything one inspection produces.
#[derive(Clone, Debug)]
pub struct Inference {
    pub height: usize,
    pub width: usize,
    /// Model input, HWC int8.
    pub features: Vec<i8>,
    /// Model output, HWC int8 logits.
    pub logits: Vec<i8>,
    /// Class per pixel, row-major.
    pub classes: Vec<u8>,
    /// The depth output's int8 codes per pixel, row-major, for a model with one
    /// ([`Model::depth_output`]); the regions carry their median depth from it.
    pub depth: Option<(Vec<i8>, QuantParams)>,
    pub class_names: Vec<String>,
    pub findings: Findings<MAX_REGIONS>,
    /// Frames, saturated readings and heating rise of the recording.
    pub acquisition: Acquisition,
    /// Why the device would not trust this acquisition (the verdict is then RETEST).
    pub fault: Option<Fault>,
}

/// Runs the model `blob` on a feature image (HWC int8): logits and classes.
pub fn run_features(blob_bytes: &[u8], features: &[i8]) -> Result<(Vec<i8>, Vec<u8>), InferError> {
    run_model(&blob::decode(blob_bytes)?, features)
}

/// Runs `model` on a feature image (HWC int8): logits and classes.
pub fn run_model(model: &Model<'_>, features: &[i8]) -> Result<(Vec<i8>, Vec<u8>), InferError> {
    let logits = run_outputs(model, features)?.into_iter().next().unwrap_or_default();
    let classes = class_map(model, &logits);
    Ok((logits, classes))
}

/// The class per pixel of `model`'s logits (HWC int8): the device's argmax.
pub fn class_map(model: &Model<'_>, logits: &[i8]) -> Vec<u8> {
    logits
        .chunks_exact(model.output_shape().channels.max(1) as usize)
        .map(|px| argmax(px).unwrap_or(0) as u8)
        .collect()
}

/// The depth codes of an [`Inference`] as the verdict code reads them.
fn depth_map(depth: &Option<(Vec<i8>, QuantParams)>) -> Option<DepthMap<'_>> {
    depth.as_ref().map(|(codes, quant)| DepthMap { codes, quant: *quant })
}

impl Inference {
    /// The depth output as the verdict code reads it (for a model with one).
    pub fn depth_map(&self) -> Option<DepthMap<'_>> {
        depth_map(&self.depth)
    }
}

/// Runs `model` on a feature image (HWC int8): every output (HWC int8), in the model's
/// order (the logits first).
pub fn run_outputs(model: &Model<'_>, features: &[i8]) -> Result<Vec<Vec<i8>>, InferError> {
    // u64 storage gives the engine its 8-byte alignment.
    let mut arena = vec![0u64; model.desc.arena_bytes as usize / 8 + 1];
    let bytes: &mut [u8] = bytemuck::cast_slice_mut(&mut arena);
    let mut engine = Engine::new(model, bytes, Mode::Streaming)?;
    let shapes: Vec<_> = (0..model.outputs().len()).map(|k| model.output_shape_of(k)).collect();
    let mut outputs: Vec<Vec<i8>> = shapes.iter().map(|s| vec![0i8; s.len()]).collect();
    engine.run_streaming_with::<Portable>(features, &mut |k, y, row| {
        if let (Some(out), Some(s)) = (outputs.get_mut(k), shapes.get(k)) {
            let n = s.row_len();
            if let Some(dst) = out.get_mut(y * n..(y + 1) * n) {
                dst.copy_from_slice(row);
            }
        }
    })?;
    Ok(outputs)
}

/// Inspects a recording with the model `blob`. An acquisition outside `limits` (the
/// device's, [`AcquisitionLimits::DEFAULT`] unless the station is configured otherwise)
/// still gets its class map, but the verdict is RETEST with the fault, as on the device.
pub fn infer(
    blob_bytes: &[u8],
    seq: &Sequence,
    cfg: &VerdictConfig,
    limits: &AcquisitionLimits,
) -> Result<Inference, InferError> {
    let model = blob::decode(blob_bytes)?;
    let spec = model
        .desc
        .input
        .features
        .clone()
        .ok_or(InferError::NotInspectionModel)?;
    // A recording from another camera: the network again on its frame size.
    let input = model.desc.input.shape;
    let model = if (input.height as usize, input.width as usize) == (seq.height, seq.width) {
        model
    } else {
        let size_error = |reason| InferError::FrameSize {
            model_h: input.height as usize,
            model_w: input.width as usize,
            seq_h: seq.height,
            seq_w: seq.width,
            reason,
        };
        let (h, w) = (
            u16::try_from(seq.height).map_err(|_| size_error(ModelError::EmptyInput(input)))?,
            u16::try_from(seq.width).map_err(|_| size_error(ModelError::EmptyInput(input)))?,
        );
        model.resized(h, w).map_err(size_error)?
    };
    let (features, acquisition) = crate::features::feature_image(seq, &spec, model.desc.input.quant)?;
    let fault = limits.check(&acquisition).err();
    let mut outputs = run_outputs(&model, &features)?.into_iter();
    let logits = outputs.next().unwrap_or_default();
    let classes = class_map(&model, &logits);
    let depth = model
        .depth_output()
        .and_then(|k| Some((outputs.nth(k - 1)?, model.output_quant(k)?)));
    let mut map = classes.clone();
    let mut stack = vec![0u32; map.len()];
    let depth_map = depth.as_ref().map(|(codes, quant)| DepthMap { codes, quant: *quant });
    let mut findings = inspect_with_depth::<MAX_REGIONS>(&mut map, depth_map, seq.width, seq.height, &mut stack, cfg)?;
    if fault.is_some() {
        findings.verdict = Verdict::Retest;
    }
    Ok(Inference {
        height: seq.height,
        width: seq.width,
        features,
        logits,
        classes,
        depth,
        class_names: model.desc.classes.iter().map(|s| s.to_string()).collect(),
        findings,
        acquisition,
        fault,
    })
}
