//! ONNX export through the protobuf types tract-onnx exposes (prost-generated from the
//! official onnx.proto), opset 13.
//!
//! Both graphs take `features`, float32 `[batch, K, H, W]`: the extractor's int8 features
//! dequantized (`scale · (q − zero_point)`), channel k = feature k of the model card. They
//! give `logits` `[batch, 3, H, W]` and `probabilities` (softmax over axis 1); class order
//! sound, subsurface, surface; a network with a depth head also `depth` `[batch, 1, H, W]`
//! in mm.
//! - float: the folded graph — Conv (explicit TFLite-"same" pads, stride 1 or 2), Relu,
//!   Clip (a ReLU bounded to the features' grid), Add, Concat, Resize (nearest, ×2);
//! - int8 (QDQ): the input, every activation and the logits pass QuantizeLinear →
//!   DequantizeLinear with the calibrated scale and zero point; weights are int8
//!   initializers behind a per-channel DequantizeLinear (axis 0, zero point 0), biases
//!   int32 at `s_in · s_w`. A QDQ-aware runtime runs what the engine runs.

use prost::Message;
use tract_onnx::pb;

use super::fold::{FloatNet, FloatOp, same_padding};
use super::quantize::{QuantConv, QuantNet, QuantOp};

pub const OPSET: i64 = 13;
/// IR version 7 is what opset 13 came with.
pub const IR_VERSION: i64 = 7;
pub const INPUT: &str = "features";
pub const LOGITS: &str = "logits";
pub const PROBABILITIES: &str = "probabilities";
pub const DEPTH: &str = "depth";

const FLOAT: i32 = pb::tensor_proto::DataType::Float as i32;
const INT8: i32 = pb::tensor_proto::DataType::Int8 as i32;
const INT32: i32 = pb::tensor_proto::DataType::Int32 as i32;

fn tensor(name: &str, dims: &[usize], data_type: i32, raw: Vec<u8>) -> pb::TensorProto {
    pb::TensorProto {
        name: name.into(),
        dims: dims.iter().map(|&d| d as i64).collect(),
        data_type,
        raw_data: raw,
        ..Default::default()
    }
}

fn f32s(name: &str, dims: &[usize], v: &[f32]) -> pb::TensorProto {
    tensor(name, dims, FLOAT, v.iter().flat_map(|x| x.to_le_bytes()).collect())
}

fn i8s(name: &str, dims: &[usize], v: &[i8]) -> pb::TensorProto {
    tensor(name, dims, INT8, v.iter().map(|&x| x as u8).collect())
}

fn i32s(name: &str, dims: &[usize], v: &[i32]) -> pb::TensorProto {
    tensor(name, dims, INT32, v.iter().flat_map(|x| x.to_le_bytes()).collect())
}

fn ints(name: &str, v: &[i64]) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        r#type: pb::attribute_proto::AttributeType::Ints as i32,
        ints: v.to_vec(),
        ..Default::default()
    }
}

fn int(name: &str, v: i64) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        r#type: pb::attribute_proto::AttributeType::Int as i32,
        i: v,
        ..Default::default()
    }
}

fn node(op: &str, name: &str, inputs: &[&str], outputs: &[&str], attribute: Vec<pb::AttributeProto>) -> pb::NodeProto {
    pb::NodeProto {
        op_type: op.into(),
        name: name.into(),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        attribute,
        ..Default::default()
    }
}

fn value_info(name: &str, channels: usize, height: usize, width: usize, doc: &str) -> pb::ValueInfoProto {
    use pb::tensor_shape_proto::{Dimension, dimension::Value};
    let dim = |v: Value| Dimension {
        value: Some(v),
        ..Default::default()
    };
    pb::ValueInfoProto {
        name: name.into(),
        doc_string: doc.into(),
        r#type: Some(pb::TypeProto {
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type: FLOAT,
                shape: Some(pb::TensorShapeProto {
                    dim: vec![
                        dim(Value::DimParam("batch".into())),
                        dim(Value::DimValue(channels as i64)),
                        dim(Value::DimValue(height as i64)),
                        dim(Value::DimValue(width as i64)),
                    ],
                }),
            })),
            ..Default::default()
        }),
    }
}

/// Conv attributes of TFLite's "same" padding on a `h`×`w` input: explicit pads, the odd
/// pixel after (ONNX order: top, left, bottom, right).
fn conv_attrs(kernel: usize, stride: usize, (h, w): (usize, usize)) -> Vec<pb::AttributeProto> {
    let (top, bottom) = same_padding(h, kernel, stride);
    let (left, right) = same_padding(w, kernel, stride);
    vec![
        ints("kernel_shape", &[kernel as i64, kernel as i64]),
        ints("pads", &[top as i64, left as i64, bottom as i64, right as i64]),
        ints("strides", &[stride as i64, stride as i64]),
    ]
}

fn string(name: &str, v: &str) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        r#type: pb::attribute_proto::AttributeType::String as i32,
        s: v.as_bytes().to_vec(),
        ..Default::default()
    }
}

/// Graph inputs, outputs, metadata.
struct Frame {
    channels: usize,
    classes: usize,
    height: usize,
    width: usize,
    /// The network estimates depth (a `depth` output).
    depth: bool,
}

/// Metadata key of the feature schedule (JSON of `FeatureSpec`): what the input means.
pub const META_FEATURES: &str = "thermoqc.features";
/// Metadata key of the input quantization (JSON of `QuantParams`).
pub const META_INPUT_QUANT: &str = "thermoqc.input_quant";

/// What the exported graphs carry besides the network.
#[derive(Clone, Debug)]
pub struct Meta {
    pub features: tqc_shared::features::FeatureSpec,
    pub input_quant: tqc_shared::model::QuantParams,
}

fn model(
    graph_name: &str,
    f: &Frame,
    nodes: Vec<pb::NodeProto>,
    init: Vec<pb::TensorProto>,
    doc: &str,
    meta: &Meta,
) -> pb::ModelProto {
    let graph = pb::GraphProto {
        name: graph_name.into(),
        node: nodes,
        initializer: init,
        input: vec![value_info(
            INPUT,
            f.channels,
            f.height,
            f.width,
            "dequantized int8 features of the shared extractor, NCHW",
        )],
        output: vec![
            value_info(
                LOGITS,
                f.classes,
                f.height,
                f.width,
                "class scores: sound, subsurface, surface",
            ),
            value_info(
                PROBABILITIES,
                f.classes,
                f.height,
                f.width,
                "softmax of the logits over axis 1",
            ),
        ]
        .into_iter()
        .chain(f.depth.then(|| {
            value_info(
                DEPTH,
                1,
                f.height,
                f.width,
                "estimated depth of an in-depth defect below the surface, mm (meaningful where the class is subsurface)",
            )
        }))
        .collect(),
        doc_string: doc.into(),
        ..Default::default()
    };
    pb::ModelProto {
        ir_version: IR_VERSION,
        opset_import: vec![pb::OperatorSetIdProto {
            domain: String::new(),
            version: OPSET,
        }],
        producer_name: "thermoqc-trainer".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        doc_string: doc.into(),
        graph: Some(graph),
        metadata_props: vec![
            pb::StringStringEntryProto {
                key: META_FEATURES.into(),
                value: serde_json::to_string(&meta.features).unwrap_or_default(),
            },
            pb::StringStringEntryProto {
                key: META_INPUT_QUANT.into(),
                value: serde_json::to_string(&meta.input_quant).unwrap_or_default(),
            },
        ],
        ..Default::default()
    }
}

/// The feature schedule and input quantization stored in an exported ONNX file.
pub fn read_meta(m: &pb::ModelProto) -> Option<Meta> {
    let get = |k: &str| m.metadata_props.iter().find(|e| e.key == k).map(|e| e.value.as_str());
    Some(Meta {
        features: serde_json::from_str(get(META_FEATURES)?).ok()?,
        input_quant: serde_json::from_str(get(META_INPUT_QUANT)?).ok()?,
    })
}

/// The float model as ONNX bytes.
pub fn float_onnx(net: &FloatNet, name: &str, height: usize, width: usize, meta: &Meta) -> Vec<u8> {
    let (nodes, init) = graph(net, None, height, width);
    let doc = "ThermoQC defect segmentation (float, batch norm folded)";
    encode(nodes, init, name, frame(net, height, width), doc, meta)
}

/// The int8 model `quant` (quantized from `net`) in QDQ form as ONNX bytes.
pub fn qdq_onnx(net: &FloatNet, quant: &QuantNet, name: &str, height: usize, width: usize, meta: &Meta) -> Vec<u8> {
    let (nodes, init) = graph(net, Some(quant), height, width);
    let doc = "ThermoQC defect segmentation, int8 QDQ: the arithmetic of the .tqm blob";
    encode(nodes, init, name, frame(net, height, width), doc, meta)
}

fn frame(net: &FloatNet, height: usize, width: usize) -> Frame {
    Frame {
        channels: net.in_channels(),
        classes: net.classes(),
        height,
        width,
        depth: net.depth_output().is_some(),
    }
}

/// The nodes and initializers of `net`: float, or with the weights, biases and every
/// tensor's quantization of `quant` (QDQ).
fn graph(net: &FloatNet, quant: Option<&QuantNet>, h: usize, w: usize) -> (Vec<pb::NodeProto>, Vec<pb::TensorProto>) {
    let (mut nodes, mut init) = (Vec::new(), Vec::new());
    let shapes = net.shapes(h, w);
    let input = match quant {
        Some(q) => qdq(&mut nodes, &mut init, INPUT, "input", q.input, None),
        None => INPUT.to_string(),
    };
    let mut names: Vec<String> = vec![input];
    for (i, l) in net.layers.iter().enumerate() {
        let t = i + 1;
        let output_name = if net.outputs.first() == Some(&t) {
            Some(LOGITS)
        } else if net.depth_output() == Some(t) {
            Some(DEPTH)
        } else {
            None
        };
        let inputs: Vec<&str> = l.inputs.iter().map(|&t| names[t].as_str()).collect();
        let x = inputs.first().copied().unwrap_or(INPUT);
        let (y, relu, clip) = match &l.op {
            FloatOp::Conv(c) => {
                let (wd, bd) = match quant.and_then(|q| q.layers.get(i)).map(|q| &q.op) {
                    Some(QuantOp::Conv(q)) => quantized_conv(&mut nodes, &mut init, i, q),
                    _ => {
                        let (wd, bd) = (format!("conv{i}.weight"), format!("conv{i}.bias"));
                        let dims = [c.out_channels, c.in_channels, c.kernel, c.kernel];
                        init.push(f32s(&wd, &dims, &c.weight));
                        init.push(f32s(&bd, &[c.out_channels], &c.bias));
                        (wd, bd)
                    }
                };
                let y = format!("conv{i}");
                let (_, ih, iw) = shapes[l.inputs[0]];
                let attrs = conv_attrs(c.kernel, c.stride, (ih, iw));
                nodes.push(node("Conv", &y, &[x, &wd, &bd], &[&y], attrs));
                (y, c.relu, c.clip)
            }
            FloatOp::Add { relu } => {
                let y = format!("add{i}");
                nodes.push(node("Add", &y, &inputs, &[&y], vec![]));
                (y, *relu, None)
            }
            FloatOp::Concat => {
                let y = format!("concat{i}");
                nodes.push(node("Concat", &y, &inputs, &[&y], vec![int("axis", 1)]));
                (y, false, None)
            }
            FloatOp::Upsample2 => {
                let (y, scales) = (format!("up{i}"), format!("up{i}.scales"));
                init.push(f32s(&scales, &[4], &[1.0, 1.0, 2.0, 2.0]));
                // Asymmetric coordinates with floor: output pixel (y, x) takes input
                // (y / 2, x / 2), the engine's nearest-neighbour copy.
                let attrs = vec![
                    string("mode", "nearest"),
                    string("coordinate_transformation_mode", "asymmetric"),
                    string("nearest_mode", "floor"),
                ];
                nodes.push(node("Resize", &y, &[x, "", &scales], &[&y], attrs));
                (y, false, None)
            }
        };
        let mut y = y;
        if relu {
            let r = format!("relu{i}");
            nodes.push(node("Relu", &r, &[&y], &[&r], vec![]));
            y = r;
        }
        if let Some(hi) = clip {
            let (r, lo_name, hi_name) = (format!("clip{i}"), format!("clip{i}.min"), format!("clip{i}.max"));
            init.push(f32s(&lo_name, &[], &[0.0]));
            init.push(f32s(&hi_name, &[], &[hi]));
            nodes.push(node("Clip", &r, &[&y, &lo_name, &hi_name], &[&r], vec![]));
            y = r;
        }
        let y = match quant.and_then(|q| q.layers.get(i)) {
            Some(q) => qdq(&mut nodes, &mut init, &y, &format!("act{i}"), q.output, output_name),
            None => match (output_name, nodes.last_mut()) {
                (Some(out), Some(last)) => {
                    last.output = vec![out.to_string()];
                    out.to_string()
                }
                _ => y,
            },
        };
        names.push(y);
    }
    (nodes, init)
}

/// Initializers and DequantizeLinear nodes of a quantized convolution's int8 weights
/// (per output channel) and int32 biases; returns the dequantized names.
fn quantized_conv(
    nodes: &mut Vec<pb::NodeProto>,
    init: &mut Vec<pb::TensorProto>,
    i: usize,
    l: &QuantConv,
) -> (String, String) {
    let o = l.out_channels;
    let (wq, ws, wz, wd) = (
        format!("conv{i}.weight_q"),
        format!("conv{i}.weight_scale"),
        format!("conv{i}.weight_zero_point"),
        format!("conv{i}.weight"),
    );
    init.push(i8s(&wq, &[o, l.in_channels, l.kernel, l.kernel], &l.weight));
    init.push(f32s(&ws, &[o], &l.weight_scales));
    init.push(i8s(&wz, &[o], &vec![0; o]));
    nodes.push(node(
        "DequantizeLinear",
        &wd,
        &[&wq, &ws, &wz],
        &[&wd],
        vec![int("axis", 0)],
    ));
    let (bq, bs, bz, bd) = (
        format!("conv{i}.bias_q"),
        format!("conv{i}.bias_scale"),
        format!("conv{i}.bias_zero_point"),
        format!("conv{i}.bias"),
    );
    let bias_scales: Vec<f32> = l.weight_scales.iter().map(|s| s * l.input.scale).collect();
    init.push(i32s(&bq, &[o], &l.bias));
    init.push(f32s(&bs, &[o], &bias_scales));
    init.push(i32s(&bz, &[o], &vec![0; o]));
    nodes.push(node(
        "DequantizeLinear",
        &bd,
        &[&bq, &bs, &bz],
        &[&bd],
        vec![int("axis", 0)],
    ));
    (wd, bd)
}

/// Adds `Q → DQ` of `x` with scale and zero point named after `tag`; returns the output name.
fn qdq(
    nodes: &mut Vec<pb::NodeProto>,
    init: &mut Vec<pb::TensorProto>,
    x: &str,
    tag: &str,
    q: tqc_shared::model::QuantParams,
    out: Option<&str>,
) -> String {
    let (s, z) = (format!("{tag}.scale"), format!("{tag}.zero_point"));
    init.push(f32s(&s, &[], &[q.scale]));
    init.push(i8s(&z, &[], &[q.zero_point]));
    let (qn, dq) = (format!("{tag}.q"), out.map_or(format!("{tag}.dq"), str::to_string));
    nodes.push(node("QuantizeLinear", &qn, &[x, &s, &z], &[&qn], vec![]));
    nodes.push(node(
        "DequantizeLinear",
        &format!("{tag}.dequantize"),
        &[&qn, &s, &z],
        &[&dq],
        vec![],
    ));
    dq
}

/// Adds the softmax output and serializes the model.
fn encode(
    mut nodes: Vec<pb::NodeProto>,
    init: Vec<pb::TensorProto>,
    name: &str,
    f: Frame,
    doc: &str,
    meta: &Meta,
) -> Vec<u8> {
    nodes.push(node(
        "Softmax",
        "softmax",
        &[LOGITS],
        &[PROBABILITIES],
        vec![int("axis", 1)],
    ));
    model(name, &f, nodes, init, doc, meta).encode_to_vec()
}
