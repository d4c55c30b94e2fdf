//! The model description carried by a blob, and its validation into a runnable [`Model`].
//!
//! A model is a graph of tensors written once: tensor 0 is the input and layer `i`
//! writes tensor `i + 1`, reading the one or two tensors it names. A layer may only read
//! tensors written before its own, so layers in blob order are a topological order and a
//! cycle cannot be expressed (a layer naming a later tensor is refused). Every tensor is
//! read by some layer or is one of the model's outputs (class logits, a depth map, …).
//! Weights, per-channel scales and biases are borrowed straight from the blob bytes (zero
//! copy, no allocation): weights as int8 bytes, scales as little-endian f32, biases as
//! little-endian i32.

use serde::{Deserialize, Serialize};

use crate::kernels::conv::ConvParams;
use crate::kernels::depthwise::DepthwiseParams;
use crate::kernels::fully_connected::FullyConnectedParams;
use crate::kernels::merge::{AddQuant, AddScaleError, ConcatParams, upsample2_output};
use crate::kernels::pool::{PoolKind, PoolParams};
use crate::kernels::softmax::SoftmaxParams;
use crate::kernels::{ChannelQuant, KernelError, Window};
use crate::quant::{Activation, Clamp, ScaleError, quantize_multiplier};
use crate::tensor::{Padding, Shape, output_dim};

/// Most layers a model may have (fixed so the device needs no heap).
pub const MAX_LAYERS: usize = 32;
/// Tensors of a model: its input and one per layer.
pub const MAX_TENSORS: usize = MAX_LAYERS + 1;
/// Most tensors a layer reads (`Add` and `Concat` read two).
pub const MAX_INPUTS: usize = 2;
/// Most outputs a model may have.
pub const MAX_OUTPUTS: usize = 4;
/// Most classes a model may output.
pub const MAX_CLASSES: usize = 8;
/// Longest receptive field / fully-connected input the engine accepts. Keeps every int32
/// accumulator (at most 255 · 127 per term) clear of overflow.
pub const MAX_DOT_LEN: usize = 1 << 16;

/// Affine int8 quantization of a tensor: `real = scale · (q − zero_point)`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct QuantParams {
    pub scale: f32,
    pub zero_point: i8,
}

/// What a layer computes.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum Op {
    /// Filter OHWI, per-output-channel weight scales and int32 biases.
    Conv2d {
        kernel_h: u8,
        kernel_w: u8,
        stride: u8,
        padding: Padding,
        out_channels: u16,
    },
    /// Depth multiplier 1, filter 1HWC.
    DepthwiseConv2d {
        kernel_h: u8,
        kernel_w: u8,
        stride: u8,
        padding: Padding,
    },
    MaxPool {
        kernel_h: u8,
        kernel_w: u8,
        stride: u8,
        padding: Padding,
    },
    AvgPool {
        kernel_h: u8,
        kernel_w: u8,
        stride: u8,
        padding: Padding,
    },
    /// Weights `[out][in]` over the flattened HWC input; output 1×1×`out_features`.
    FullyConnected { out_features: u16 },
    /// Over the channels of each pixel; output scale 1/256, zero point −128.
    Softmax { beta: f32 },
    /// Element-wise sum of two tensors of one shape, each with its own quantization
    /// (TFLite `ADD`); the activation may be fused.
    Add,
    /// Channel concatenation of two tensors of one height and width; inputs and output
    /// share one quantization (TFLite `CONCATENATION`).
    Concat,
    /// Nearest-neighbour ×2 upsampling, quantization kept (TFLite `RESIZE_NEAREST_NEIGHBOR`).
    Upsample2,
}

impl Op {
    /// How many tensors the op reads.
    pub fn arity(&self) -> usize {
        match self {
            Op::Add | Op::Concat => 2,
            _ => 1,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Op::Conv2d { .. } => "Conv2d",
            Op::DepthwiseConv2d { .. } => "DepthwiseConv2d",
            Op::MaxPool { .. } => "MaxPool",
            Op::AvgPool { .. } => "AvgPool",
            Op::FullyConnected { .. } => "FullyConnected",
            Op::Softmax { .. } => "Softmax",
            Op::Add => "Add",
            Op::Concat => "Concat",
            Op::Upsample2 => "Upsample2",
        }
    }
}

/// One layer as stored in the blob.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Layer<'a> {
    pub op: Op,
    /// The tensors read, each written before this layer's own output (tensor `i + 1`).
    pub inputs: heapless::Vec<u8, MAX_INPUTS>,
    pub activation: Activation,
    pub output: QuantParams,
    /// int8 weights (empty for pooling and softmax).
    #[serde(borrow)]
    pub weights: &'a [u8],
    /// f32 little-endian, one per output channel.
    #[serde(borrow)]
    pub weight_scales: &'a [u8],
    /// i32 little-endian, one per output channel, at scale `s_in · s_w[c]`.
    #[serde(borrow)]
    pub bias: &'a [u8],
}

/// What the model expects as input.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InputSpec {
    pub shape: Shape,
    pub quant: QuantParams,
    /// How the input is computed from a recording (inspection models); `None` for
    /// models fed directly (kernel tests, benchmarks).
    pub features: Option<crate::features::FeatureSpec>,
}

/// The blob payload.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelDesc<'a> {
    #[serde(borrow)]
    pub name: &'a str,
    pub input: InputSpec,
    /// One name per channel of the first output (e.g. sound, subsurface, surface), or
    /// none for a model whose outputs are not classes (kernel test models).
    #[serde(borrow)]
    pub classes: heapless::Vec<&'a str, MAX_CLASSES>,
    #[serde(borrow)]
    pub layers: heapless::Vec<Layer<'a>, MAX_LAYERS>,
    /// The tensors handed to the caller, in this order (the class logits first).
    pub outputs: heapless::Vec<u8, MAX_OUTPUTS>,
    /// Arena bytes for streaming execution, as computed by the planner.
    pub arena_bytes: u32,
}

/// What is wrong with one layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LayerProblem {
    #[error("{what} is not a positive finite number")]
    Scale { what: &'static str },
    #[error("requantization factor of channel {channel}: {error}")]
    Requant { channel: usize, error: ScaleError },
    #[error("{what} has {found} bytes, expected {expected}")]
    Length {
        what: &'static str,
        expected: usize,
        found: usize,
    },
    #[error("weight {index} is −128; symmetric int8 weights use ±127")]
    WeightRange { index: usize },
    #[error("kernel window does not fit the {height}×{width} input")]
    Window { height: u16, width: u16 },
    #[error("output tensor would exceed 65535 in a dimension")]
    TooLarge,
    #[error("dot product of {len} terms exceeds the engine's limit")]
    DotTooLong { len: usize },
    #[error("{op} must keep its input's quantization")]
    KeepQuant { op: &'static str },
    #[error("{op} reads {expected} tensor(s), the layer names {found}")]
    Arity {
        op: &'static str,
        expected: usize,
        found: usize,
    },
    #[error("reads tensor {tensor}, which is not written before this layer's output (tensor {output})")]
    ReadsUnwritten { tensor: usize, output: usize },
    #[error("{op} inputs have shapes {first:?} and {second:?}")]
    ShapeMismatch {
        op: &'static str,
        first: Shape,
        second: Shape,
    },
    #[error("Concat inputs and output must share one scale and zero point (the exporter arranges it)")]
    ConcatQuant,
    #[error("Add quantization: {0}")]
    AddQuant(AddScaleError),
    #[error("{op} takes no fused activation")]
    NoActivation { op: &'static str },
    #[error("softmax output must have scale 1/256 and zero point −128")]
    SoftmaxQuant,
    #[error("softmax takes no fused activation")]
    SoftmaxActivation,
    #[error("softmax beta · input scale out of range")]
    SoftmaxBeta,
    #[error(transparent)]
    Kernel(#[from] KernelError),
}

/// Why a model description is not runnable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    #[error("model has more than {MAX_LAYERS} layers")]
    TooManyLayers,
    #[error("model has no layers")]
    NoLayers,
    #[error("input shape {0:?} has a zero dimension")]
    EmptyInput(Shape),
    #[error("input scale is not a positive finite number")]
    InputScale,
    #[error("input features: {0}")]
    Features(crate::features::FeatureError),
    #[error("the feature schedule has {features} channels, the input {channels}")]
    FeatureChannels { features: usize, channels: usize },
    #[error("model lists {classes} class names but its first output has {channels} channels")]
    ClassCount { classes: usize, channels: usize },
    #[error("model names no output tensor")]
    NoOutputs,
    #[error("output {index} names tensor {tensor}, the model has tensors 0..{tensors}")]
    OutputTensor {
        index: usize,
        tensor: usize,
        tensors: usize,
    },
    #[error("tensor {tensor} is listed twice among the outputs")]
    DuplicateOutput { tensor: usize },
    #[error("tensor {tensor} is neither read by a layer nor an output")]
    UnusedTensor { tensor: usize },
    #[error("layer {index}: {problem}")]
    Layer { index: usize, problem: LayerProblem },
}

/// The kernel one layer runs, with every parameter checked.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Kernel {
    Conv(ConvParams),
    Depthwise(DepthwiseParams),
    Pool(PoolParams),
    FullyConnected(FullyConnectedParams),
    Softmax { params: SoftmaxParams, depth: usize },
    Add { quant: AddQuant, shape: Shape },
    Concat(ConcatParams),
    Upsample2 { input: Shape },
}

/// A validated layer: its kernel, the tensors it reads, input and output shapes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LayerInfo {
    pub kernel: Kernel,
    /// Tensor ids read (the first `input_count`).
    pub inputs: [u8; MAX_INPUTS],
    pub input_count: u8,
    /// Shape and quantization of the first input.
    pub input: Shape,
    pub output: Shape,
    pub input_quant: QuantParams,
}

impl LayerInfo {
    /// The tensors this layer reads.
    pub fn inputs(&self) -> &[u8] {
        &self.inputs[..(self.input_count as usize).min(MAX_INPUTS)]
    }

    /// Rows of its input a layer's window spans (1 for row-wise ops).
    pub fn window_rows(&self) -> usize {
        match self.window() {
            Some(w) => w.kernel_h as usize,
            None => 1,
        }
    }

    fn window(&self) -> Option<Window> {
        match self.kernel {
            Kernel::Conv(p) => Some(p.window()),
            Kernel::Depthwise(p) => Some(p.window()),
            Kernel::Pool(p) => Some(p.window),
            _ => None,
        }
    }

    /// The last input row output row `oy` depends on (every input of a two-input op
    /// has the output's height, so the same row of each).
    pub fn last_input_row(&self, oy: usize) -> usize {
        let last = self.input.height as usize - 1;
        match self.kernel {
            Kernel::FullyConnected(_) => last,
            Kernel::Upsample2 { .. } => (oy / 2).min(last),
            _ => match self.window() {
                Some(w) => (oy * w.stride as usize + w.kernel_h as usize - 1)
                    .saturating_sub(w.pad_top as usize)
                    .min(last),
                None => oy.min(last),
            },
        }
    }

    /// The first input row output row `oy` depends on (fully-connected layers take
    /// their rows one by one as they arrive; the schedule tracks those).
    pub fn first_input_row(&self, oy: usize) -> usize {
        let last = self.input.height as usize - 1;
        match self.kernel {
            Kernel::FullyConnected(_) => 0,
            Kernel::Upsample2 { .. } => (oy / 2).min(last),
            _ => match self.window() {
                Some(w) => (oy * w.stride as usize).saturating_sub(w.pad_top as usize).min(last),
                None => oy.min(last),
            },
        }
    }

    /// Multiply-accumulates of one run (0 for pooling and softmax, which have none).
    pub fn macs(&self) -> u64 {
        match self.kernel {
            Kernel::Conv(p) => self.output.len() as u64 * p.column_len() as u64,
            Kernel::Depthwise(p) => self.output.len() as u64 * p.kernel_h as u64 * p.kernel_w as u64,
            Kernel::FullyConnected(p) => p.in_features as u64 * p.out_features as u64,
            _ => 0,
        }
    }

    /// Terms in one output's dot product (receptive field or input vector length).
    pub fn dot_len(&self) -> usize {
        match self.kernel {
            Kernel::Conv(p) => p.column_len(),
            Kernel::Depthwise(p) => p.kernel_h as usize * p.kernel_w as usize,
            Kernel::FullyConnected(p) => p.in_features,
            _ => 0,
        }
    }

    /// A short name of the layer's operation.
    pub fn kind(&self) -> &'static str {
        match self.kernel {
            Kernel::Conv(p) if p.is_pointwise() => "pointwise",
            Kernel::Conv(_) => "conv",
            Kernel::Depthwise(_) => "depthwise",
            Kernel::Pool(p) if p.kind == PoolKind::Max => "maxpool",
            Kernel::Pool(_) => "avgpool",
            Kernel::FullyConnected(_) => "fc",
            Kernel::Softmax { .. } => "softmax",
            Kernel::Add { .. } => "add",
            Kernel::Concat(_) => "concat",
            Kernel::Upsample2 { .. } => "upsample",
        }
    }

    /// Output channels that carry weights, biases and requantization parameters.
    pub fn weighted_channels(&self) -> usize {
        match self.kernel {
            Kernel::Conv(p) => p.output.channels as usize,
            Kernel::Depthwise(p) => p.output.channels as usize,
            Kernel::FullyConnected(p) => p.out_features,
            _ => 0,
        }
    }
}

/// A model whose every layer has been checked: every layer reads tensors written before
/// it, shapes agree, buffers have the right lengths, scales are positive and finite,
/// requantization factors are representable, every tensor is used.
#[derive(Clone, Debug)]
pub struct Model<'a> {
    pub desc: ModelDesc<'a>,
    pub layers: heapless::Vec<LayerInfo, MAX_LAYERS>,
    /// Shape and quantization of tensor `t` (0 the input, `i + 1` the output of layer `i`).
    tensors: [(Shape, QuantParams); MAX_TENSORS],
}

fn positive(x: f32) -> bool {
    x.is_finite() && x > 0.0
}

/// Word `i` of a little-endian array whose length validation checked (0 past its end).
fn word_at(bytes: &[u8], i: usize) -> [u8; 4] {
    bytes
        .get(4 * i..4 * i + 4)
        .and_then(|b| b.try_into().ok())
        .unwrap_or([0; 4])
}

fn f32_at(bytes: &[u8], i: usize) -> f32 {
    f32::from_le_bytes(word_at(bytes, i))
}

fn i32_at(bytes: &[u8], i: usize) -> i32 {
    i32::from_le_bytes(word_at(bytes, i))
}

impl<'a> Model<'a> {
    /// Validates a description. The stored arena size is checked by the blob decoder,
    /// which owns the planner's verdict.
    pub fn new(desc: ModelDesc<'a>) -> Result<Self, ModelError> {
        if desc.layers.is_empty() {
            return Err(ModelError::NoLayers);
        }
        if desc.input.shape.is_empty() {
            return Err(ModelError::EmptyInput(desc.input.shape));
        }
        if !positive(desc.input.quant.scale) {
            return Err(ModelError::InputScale);
        }
        if let Some(f) = &desc.input.features {
            f.check().map_err(ModelError::Features)?;
            if f.channels() != desc.input.shape.channels as usize {
                return Err(ModelError::FeatureChannels {
                    features: f.channels(),
                    channels: desc.input.shape.channels as usize,
                });
            }
        }
        let unset = (Shape::new(0, 0, 0), desc.input.quant);
        let mut tensors = [unset; MAX_TENSORS];
        tensors[0] = (desc.input.shape, desc.input.quant);
        let mut read = [false; MAX_TENSORS];
        let mut layers = heapless::Vec::new();
        for (index, layer) in desc.layers.iter().enumerate() {
            let fail = |problem| ModelError::Layer { index, problem };
            let output = index + 1;
            if layer.inputs.len() != layer.op.arity() {
                return Err(fail(LayerProblem::Arity {
                    op: layer.op.name(),
                    expected: layer.op.arity(),
                    found: layer.inputs.len(),
                }));
            }
            let mut ins = [unset; MAX_INPUTS];
            let mut ids = [0u8; MAX_INPUTS];
            for (k, &t) in layer.inputs.iter().enumerate() {
                let t = t as usize;
                if t >= output {
                    return Err(fail(LayerProblem::ReadsUnwritten { tensor: t, output }));
                }
                let (Some(r), Some(&tensor), Some(i), Some(id)) =
                    (read.get_mut(t), tensors.get(t), ins.get_mut(k), ids.get_mut(k))
                else {
                    return Err(ModelError::TooManyLayers);
                };
                *r = true;
                *i = tensor;
                *id = t as u8;
            }
            let mut info = check_layer(layer, &ins[..layer.inputs.len()]).map_err(fail)?;
            info.inputs = ids;
            info.input_count = layer.inputs.len() as u8;
            *tensors.get_mut(output).ok_or(ModelError::TooManyLayers)? = (info.output, layer.output);
            // Capacity equals MAX_LAYERS, the same bound as desc.layers.
            let _ = layers.push(info);
        }
        let count = desc.layers.len() + 1;
        if desc.outputs.is_empty() {
            return Err(ModelError::NoOutputs);
        }
        for (index, &t) in desc.outputs.iter().enumerate() {
            let tensor = t as usize;
            if tensor >= count {
                return Err(ModelError::OutputTensor {
                    index,
                    tensor,
                    tensors: count,
                });
            }
            if desc.outputs.iter().take(index).any(|&o| o == t) {
                return Err(ModelError::DuplicateOutput { tensor });
            }
            if let Some(r) = read.get_mut(tensor) {
                *r = true;
            }
        }
        if let Some(tensor) = read.iter().take(count).position(|&r| !r) {
            return Err(ModelError::UnusedTensor { tensor });
        }
        let first = desc
            .outputs
            .first()
            .and_then(|&t| tensors.get(t as usize))
            .ok_or(ModelError::NoOutputs)?
            .0;
        if !desc.classes.is_empty() && desc.classes.len() != first.channels as usize {
            return Err(ModelError::ClassCount {
                classes: desc.classes.len(),
                channels: first.channels as usize,
            });
        }
        Ok(Model { desc, layers, tensors })
    }

    pub fn input_shape(&self) -> Shape {
        self.desc.input.shape
    }

    /// The same network on frames of `height` × `width` (a fully convolutional network
    /// runs on any size; the device keeps the size it was built for). Every tensor's shape
    /// is derived again from the new input and validated as for a blob, so a layer that
    /// cannot follow (a fully connected layer, a skip whose two sides no longer agree) is
    /// a typed error naming it. The arena size is planned for the new shapes.
    pub fn resized(&self, height: u16, width: u16) -> Result<Model<'a>, ModelError> {
        let mut desc = self.desc.clone();
        desc.input.shape = Shape::new(height, width, self.desc.input.shape.channels);
        // Validation does not read the arena size, so it is set on the validated model.
        let mut model = Model::new(desc)?;
        let arena = crate::planner::plan(&model, crate::planner::Mode::Streaming).total;
        model.desc.arena_bytes = u32::try_from(arena).map_err(|_| ModelError::EmptyInput(model.desc.input.shape))?;
        Ok(model)
    }

    /// Tensors of the model (its input and one per layer).
    pub fn tensor_count(&self) -> usize {
        self.layers.len() + 1
    }

    /// Shape of tensor `t` (an empty shape past the last tensor).
    pub fn tensor_shape(&self, t: usize) -> Shape {
        self.tensors.get(t).map_or(Shape::new(0, 0, 0), |x| x.0)
    }

    /// Quantization of tensor `t`.
    pub fn tensor_quant(&self, t: usize) -> QuantParams {
        self.tensors.get(t).map_or(self.desc.input.quant, |x| x.1)
    }

    /// The output tensors, in the caller's order.
    pub fn outputs(&self) -> &[u8] {
        &self.desc.outputs
    }

    /// Shape of output `k`.
    pub fn output_shape_of(&self, k: usize) -> Shape {
        self.outputs()
            .get(k)
            .map_or(Shape::new(0, 0, 0), |&t| self.tensor_shape(t as usize))
    }

    /// Shape of the first output (the class logits of an inspection model).
    pub fn output_shape(&self) -> Shape {
        self.output_shape_of(0)
    }

    /// The index of an inspection model's depth output: a second (and last) output of
    /// one channel at the input's size (ThermoNet 2's depth head, mm). The class logits
    /// are always output 0.
    pub fn depth_output(&self) -> Option<usize> {
        let input = self.input_shape();
        let depth = self.output_shape_of(1);
        (self.outputs().len() == 2 && depth.channels == 1 && (depth.height, depth.width) == (input.height, input.width))
            .then_some(1)
    }

    /// Quantization of output `k`.
    pub fn output_quant(&self, k: usize) -> Option<QuantParams> {
        self.outputs().get(k).map(|&t| self.tensor_quant(t as usize))
    }

    /// Which output tensor `t` is, if it is one.
    pub fn output_index(&self, t: usize) -> Option<usize> {
        self.outputs().iter().position(|&o| o as usize == t)
    }

    /// Bias and requantization of channel `c` of layer `index` (validated at load).
    pub fn channel_quant(&self, index: usize, c: usize) -> Option<ChannelQuant> {
        let layer = self.desc.layers.get(index)?;
        let info = self.layers.get(index)?;
        if c >= info.weighted_channels() {
            return None;
        }
        let real = info.input_quant.scale as f64 * f32_at(layer.weight_scales, c) as f64 / layer.output.scale as f64;
        Some(ChannelQuant {
            bias: i32_at(layer.bias, c),
            requant: quantize_multiplier(real).ok()?,
        })
    }

    /// int8 weights of layer `index`.
    pub fn weights(&self, index: usize) -> &'a [i8] {
        self.desc
            .layers
            .get(index)
            .map_or(&[], |l| bytemuck::cast_slice(l.weights))
    }
}

fn window_output(
    input: Shape,
    kernel_h: u8,
    kernel_w: u8,
    stride: u8,
    padding: Padding,
) -> Result<(u16, u16, Window), LayerProblem> {
    let bad = LayerProblem::Window {
        height: input.height,
        width: input.width,
    };
    let (oh, pt) = output_dim(input.height, kernel_h, stride, padding).ok_or(bad)?;
    let (ow, pl) = output_dim(input.width, kernel_w, stride, padding).ok_or(bad)?;
    Ok((
        oh,
        ow,
        Window {
            kernel_h,
            kernel_w,
            stride,
            pad_top: pt,
            pad_left: pl,
        },
    ))
}

fn check_weighted(layer: &Layer<'_>, channels: usize, weights: usize, input: QuantParams) -> Result<(), LayerProblem> {
    let expect = |what, expected: usize, found: usize| {
        if expected == found {
            Ok(())
        } else {
            Err(LayerProblem::Length { what, expected, found })
        }
    };
    expect("weights", weights, layer.weights.len())?;
    expect("weight scales", 4 * channels, layer.weight_scales.len())?;
    expect("biases", 4 * channels, layer.bias.len())?;
    if let Some(index) = layer.weights.iter().position(|&w| w == 0x80) {
        return Err(LayerProblem::WeightRange { index });
    }
    for channel in 0..channels {
        let s = f32_at(layer.weight_scales, channel);
        if !positive(s) {
            return Err(LayerProblem::Scale { what: "weight scale" });
        }
        let real = input.scale as f64 * s as f64 / layer.output.scale as f64;
        quantize_multiplier(real).map_err(|error| LayerProblem::Requant { channel, error })?;
    }
    Ok(())
}

fn check_layer(layer: &Layer<'_>, inputs: &[(Shape, QuantParams)]) -> Result<LayerInfo, LayerProblem> {
    let Some(&(input, in_quant)) = inputs.first() else {
        return Err(LayerProblem::Arity {
            op: layer.op.name(),
            expected: layer.op.arity(),
            found: 0,
        });
    };
    let second = inputs.get(1).copied();
    if !positive(layer.output.scale) {
        return Err(LayerProblem::Scale { what: "output scale" });
    }
    let clamp = Clamp::for_activation(layer.activation, layer.output.scale, layer.output.zero_point as i32);
    let (izp, ozp) = (in_quant.zero_point as i32, layer.output.zero_point as i32);
    let no_weights = |l: &Layer<'_>| {
        for (what, b) in [
            ("weights", l.weights),
            ("weight scales", l.weight_scales),
            ("biases", l.bias),
        ] {
            if !b.is_empty() {
                return Err(LayerProblem::Length {
                    what,
                    expected: 0,
                    found: b.len(),
                });
            }
        }
        Ok(())
    };
    let (kernel, output) = match layer.op {
        Op::Conv2d {
            kernel_h,
            kernel_w,
            stride,
            padding,
            out_channels,
        } => {
            let (oh, ow, w) = window_output(input, kernel_h, kernel_w, stride, padding)?;
            let output = Shape::new(oh, ow, out_channels);
            let p = ConvParams {
                input,
                output,
                kernel_h,
                kernel_w,
                stride,
                pad_top: w.pad_top,
                pad_left: w.pad_left,
                input_zero_point: izp,
                output_zero_point: ozp,
                clamp,
            };
            if p.column_len() > MAX_DOT_LEN {
                return Err(LayerProblem::DotTooLong { len: p.column_len() });
            }
            check_weighted(
                layer,
                out_channels as usize,
                out_channels as usize * p.column_len(),
                in_quant,
            )?;
            p.check(layer.weights.len(), out_channels as usize)?;
            (Kernel::Conv(p), output)
        }
        Op::DepthwiseConv2d {
            kernel_h,
            kernel_w,
            stride,
            padding,
        } => {
            let (oh, ow, w) = window_output(input, kernel_h, kernel_w, stride, padding)?;
            let output = Shape::new(oh, ow, input.channels);
            let p = DepthwiseParams {
                input,
                output,
                kernel_h,
                kernel_w,
                stride,
                pad_top: w.pad_top,
                pad_left: w.pad_left,
                input_zero_point: izp,
                output_zero_point: ozp,
                clamp,
            };
            let c = input.channels as usize;
            check_weighted(layer, c, kernel_h as usize * kernel_w as usize * c, in_quant)?;
            p.check(layer.weights.len(), c)?;
            (Kernel::Depthwise(p), output)
        }
        Op::MaxPool {
            kernel_h,
            kernel_w,
            stride,
            padding,
        }
        | Op::AvgPool {
            kernel_h,
            kernel_w,
            stride,
            padding,
        } => {
            no_weights(layer)?;
            if layer.output != in_quant {
                return Err(LayerProblem::KeepQuant { op: layer.op.name() });
            }
            let (oh, ow, window) = window_output(input, kernel_h, kernel_w, stride, padding)?;
            let output = Shape::new(oh, ow, input.channels);
            let kind = if matches!(layer.op, Op::MaxPool { .. }) {
                PoolKind::Max
            } else {
                PoolKind::Average
            };
            let p = PoolParams {
                kind,
                input,
                output,
                window,
                clamp,
            };
            p.check()?;
            (Kernel::Pool(p), output)
        }
        Op::FullyConnected { out_features } => {
            let n = input.len();
            if n > MAX_DOT_LEN {
                return Err(LayerProblem::DotTooLong { len: n });
            }
            let out = out_features as usize;
            check_weighted(layer, out, n * out, in_quant)?;
            let p = FullyConnectedParams {
                in_features: n,
                out_features: out,
                input_zero_point: izp,
                output_zero_point: ozp,
                clamp,
            };
            p.check(layer.weights.len(), out)?;
            (Kernel::FullyConnected(p), Shape::new(1, 1, out_features))
        }
        Op::Softmax { beta } => {
            no_weights(layer)?;
            if layer.activation != Activation::None {
                return Err(LayerProblem::SoftmaxActivation);
            }
            if layer.output.scale != 1.0 / 256.0 || layer.output.zero_point != -128 {
                return Err(LayerProblem::SoftmaxQuant);
            }
            if !positive(beta) {
                return Err(LayerProblem::Scale { what: "softmax beta" });
            }
            let params = SoftmaxParams::new(beta, in_quant.scale).map_err(|_| LayerProblem::SoftmaxBeta)?;
            if input.channels == 0 {
                return Err(LayerProblem::Window {
                    height: input.height,
                    width: input.width,
                });
            }
            (
                Kernel::Softmax {
                    params,
                    depth: input.channels as usize,
                },
                input,
            )
        }
        Op::Add => {
            no_weights(layer)?;
            let Some((shape2, quant2)) = second else {
                return Err(LayerProblem::Arity {
                    op: "Add",
                    expected: 2,
                    found: 1,
                });
            };
            if shape2 != input {
                return Err(LayerProblem::ShapeMismatch {
                    op: "Add",
                    first: input,
                    second: shape2,
                });
            }
            let quant = AddQuant::prepare(
                (in_quant.scale, izp),
                (quant2.scale, quant2.zero_point as i32),
                (layer.output.scale, ozp),
                clamp,
            )
            .map_err(LayerProblem::AddQuant)?;
            (Kernel::Add { quant, shape: input }, input)
        }
        Op::Concat => {
            no_weights(layer)?;
            let Some((shape2, quant2)) = second else {
                return Err(LayerProblem::Arity {
                    op: "Concat",
                    expected: 2,
                    found: 1,
                });
            };
            if layer.activation != Activation::None {
                return Err(LayerProblem::NoActivation { op: "Concat" });
            }
            let p = ConcatParams {
                first: input,
                second: shape2,
            };
            if input.height != shape2.height || input.width != shape2.width {
                return Err(LayerProblem::ShapeMismatch {
                    op: "Concat",
                    first: input,
                    second: shape2,
                });
            }
            p.check()?;
            let q = |q: QuantParams| (q.scale, q.zero_point as i32);
            if !ConcatParams::check_quant(q(in_quant), q(quant2), q(layer.output)) {
                return Err(LayerProblem::ConcatQuant);
            }
            (Kernel::Concat(p), p.output())
        }
        Op::Upsample2 => {
            no_weights(layer)?;
            if layer.activation != Activation::None {
                return Err(LayerProblem::NoActivation { op: "Upsample2" });
            }
            if layer.output != in_quant {
                return Err(LayerProblem::KeepQuant { op: "Upsample2" });
            }
            let output = upsample2_output(input).ok_or(LayerProblem::TooLarge)?;
            (Kernel::Upsample2 { input }, output)
        }
    };
    if output.is_empty() {
        return Err(LayerProblem::Window {
            height: input.height,
            width: input.width,
        });
    }
    // Row buffers are addressed with usize; keep every tensor within u32 bytes.
    if output.len() > u32::MAX as usize / 4 {
        return Err(LayerProblem::TooLarge);
    }
    Ok(LayerInfo {
        kernel,
        inputs: [0; MAX_INPUTS],
        input_count: inputs.len() as u8,
        input,
        output,
        input_quant: in_quant,
    })
}
