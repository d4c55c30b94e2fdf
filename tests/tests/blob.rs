//! Blob round trip, exhaustive corruption and truncation, and typed errors for invalid
//! fields.

use tests::graph::GraphBuilder;
use tests::{Rng, Spec, random_model, reference_network, run_host};
use tqc_shared::blob::{self, BlobError, HEADER_LEN, decode, header_for};
use tqc_shared::engine::Engine;
use tqc_shared::kernels::mac::Portable;
use tqc_shared::model::{LayerProblem, ModelError, Op};
use tqc_shared::planner::Mode;
use tqc_shared::quant::{Activation, ScaleError};
use tqc_shared::tensor::{Padding, Shape};

fn small_blob() -> Vec<u8> {
    let specs = [
        Spec::Conv {
            k: 3,
            stride: 2,
            padding: Padding::Same,
            out: 4,
            act: Activation::Relu,
        },
        Spec::Depthwise {
            k: 3,
            stride: 1,
            padding: Padding::Same,
            act: Activation::None,
        },
        Spec::MaxPool {
            k: 2,
            stride: 1,
            padding: Padding::Valid,
        },
        Spec::Conv {
            k: 1,
            stride: 1,
            padding: Padding::Valid,
            out: 3,
            act: Activation::None,
        },
        Spec::Softmax,
    ];
    let mut m = random_model("small", Shape::new(6, 8, 2), &specs, 42).unwrap();
    m.classes = vec!["sound".into(), "subsurface".into(), "surface".into()];
    m.to_blob().unwrap()
}

/// Runs a decoded model to completion: it must not panic and must produce every row.
fn exercise(bytes: &[u8]) {
    if let Ok(model) = decode(bytes) {
        let mut storage = vec![0u64; model.desc.arena_bytes as usize / 8 + 1];
        let mut engine = Engine::new(&model, bytemuck::cast_slice_mut(&mut storage), Mode::Streaming).unwrap();
        let input = vec![3i8; model.input_shape().len()];
        engine
            .run_streaming_with::<Portable>(&input, &mut |_, _, _| {})
            .unwrap();
        assert!(engine.is_complete());
    }
}

#[test]
fn round_trip_keeps_everything() {
    let owned = reference_network(16, 20, 9);
    let bytes = owned.to_blob().unwrap();
    let model = decode(&bytes).unwrap();
    let mut want = owned.desc();
    blob::seal(&mut want).unwrap();
    assert_eq!(model.desc, want);
    assert_eq!(model.desc.classes.as_slice(), ["sound", "subsurface", "surface"]);
    assert!(model.desc.arena_bytes > 0);
}

#[test]
fn every_single_byte_corruption_is_rejected() {
    let good = small_blob();
    decode(&good).unwrap();
    let mut checked = 0;
    for i in 0..good.len() {
        for flip in [0x01u8, 0x80, 0xff, 0x5a] {
            let mut bad = good.clone();
            bad[i] ^= flip;
            assert!(decode(&bad).is_err(), "byte {i} ^ {flip:#x} accepted");
            checked += 1;
        }
    }
    assert_eq!(checked, 4 * good.len());
}

#[test]
fn every_truncation_is_rejected() {
    let good = small_blob();
    for n in 0..good.len() {
        let err = decode(&good[..n]).unwrap_err();
        if n < HEADER_LEN {
            assert_eq!(err, BlobError::TooShort { len: n });
        } else {
            assert_eq!(
                err,
                BlobError::Length {
                    declared: good.len() - HEADER_LEN,
                    present: n - HEADER_LEN
                }
            );
        }
    }
    let mut longer = good.clone();
    longer.push(0);
    assert!(matches!(decode(&longer), Err(BlobError::Length { .. })));
}

/// Behind the CRC: corrupt the payload, re-seal it with a fresh CRC, and the structural
/// validation must still stop it or the model must run safely.
#[test]
fn resealed_corruptions_never_panic() {
    resealed_corruptions_of(&small_blob());
    // A graph: a skip, Add, Concat, Upsample, two outputs.
    resealed_corruptions_of(&graph().to_blob().unwrap());
}

fn resealed_corruptions_of(good: &[u8]) {
    let payload = &good[HEADER_LEN..];
    let (mut rejected, mut accepted) = (0, 0);
    for i in 0..payload.len() {
        for value in [0x00u8, 0x01, 0x7f, 0x80, 0xff, payload[i].wrapping_add(1)] {
            let mut p = payload.to_vec();
            p[i] = value;
            let mut bytes = header_for(&p).to_vec();
            bytes.extend_from_slice(&p);
            match decode(&bytes) {
                Ok(_) => accepted += 1,
                Err(_) => rejected += 1,
            }
            exercise(&bytes);
        }
        // Truncated payloads with a consistent header.
        let p = &payload[..i];
        let mut bytes = header_for(p).to_vec();
        bytes.extend_from_slice(p);
        assert!(decode(&bytes).is_err(), "payload truncated to {i} bytes accepted");
    }
    // Weight bytes can change freely; structure bytes must not.
    assert!(rejected > 0 && accepted > 0, "rejected {rejected}, accepted {accepted}");
}

#[test]
fn random_garbage_never_panics() {
    let mut rng = Rng(1234);
    for n in 0..2000 {
        let len = rng.range(0, 300) as usize;
        let mut p: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
        if n % 2 == 0 {
            let mut b = header_for(&p).to_vec();
            b.append(&mut p);
            p = b;
        }
        exercise(&p);
    }
}

fn expect_layer_problem(mutate: impl FnOnce(&mut tests::OwnedModel), index: usize, problem: LayerProblem) {
    let mut m = random_model(
        "m",
        Shape::new(6, 8, 2),
        &[
            Spec::Conv {
                k: 3,
                stride: 1,
                padding: Padding::Same,
                out: 4,
                act: Activation::Relu,
            },
            Spec::MaxPool {
                k: 2,
                stride: 2,
                padding: Padding::Valid,
            },
        ],
        3,
    )
    .unwrap();
    mutate(&mut m);
    let desc = m.desc();
    assert_eq!(blob::seal(&mut desc.clone()), Err(ModelError::Layer { index, problem }));
}

#[test]
fn invalid_fields_name_what_is_wrong() {
    expect_layer_problem(
        |m| m.layers[0].weights.pop().map(|_| ()).unwrap(),
        0,
        LayerProblem::Length {
            what: "weights",
            expected: 72,
            found: 71,
        },
    );
    expect_layer_problem(
        |m| m.layers[0].weights[5] = 0x80,
        0,
        LayerProblem::WeightRange { index: 5 },
    );
    expect_layer_problem(
        |m| m.layers[0].weight_scales[0..4].copy_from_slice(&f32::NAN.to_le_bytes()),
        0,
        LayerProblem::Scale { what: "weight scale" },
    );
    expect_layer_problem(
        |m| m.layers[0].weight_scales[4..8].copy_from_slice(&(-1.0f32).to_le_bytes()),
        0,
        LayerProblem::Scale { what: "weight scale" },
    );
    expect_layer_problem(
        |m| m.layers[0].output.scale = 0.0,
        0,
        LayerProblem::Scale { what: "output scale" },
    );
    expect_layer_problem(
        |m| m.layers[0].weight_scales[8..12].copy_from_slice(&1e12f32.to_le_bytes()),
        0,
        LayerProblem::Requant {
            channel: 2,
            error: ScaleError::TooLarge,
        },
    );
    expect_layer_problem(
        |m| m.layers[0].bias.truncate(8),
        0,
        LayerProblem::Length {
            what: "biases",
            expected: 16,
            found: 8,
        },
    );
    expect_layer_problem(
        |m| m.layers[1].output.zero_point = m.layers[1].output.zero_point.wrapping_add(1),
        1,
        LayerProblem::KeepQuant { op: "MaxPool" },
    );
    expect_layer_problem(
        |m| {
            m.layers[1].op = Op::MaxPool {
                kernel_h: 9,
                kernel_w: 2,
                stride: 2,
                padding: Padding::Valid,
            }
        },
        1,
        LayerProblem::Window { height: 6, width: 8 },
    );
    expect_layer_problem(
        |m| m.layers[1].weights = vec![1],
        1,
        LayerProblem::Length {
            what: "weights",
            expected: 0,
            found: 1,
        },
    );

    let mut m = random_model("m", Shape::new(6, 8, 2), &[Spec::Softmax], 3).unwrap();
    m.classes = vec!["a".into()];
    assert_eq!(
        blob::seal(&mut m.desc()),
        Err(ModelError::ClassCount {
            classes: 1,
            channels: 2
        })
    );
    m.classes.clear();
    m.input.quant.scale = f32::INFINITY;
    assert_eq!(blob::seal(&mut m.desc()), Err(ModelError::InputScale));

    // A stored arena size that disagrees with the planner.
    let good = small_blob();
    let model = decode(&good).unwrap();
    let mut desc = model.desc.clone();
    desc.arena_bytes -= 8;
    let mut out = vec![0u8; good.len() + 16];
    let n = blob::encode(&desc, &mut out).unwrap();
    assert_eq!(
        decode(&out[..n]).unwrap_err(),
        BlobError::Arena {
            stored: desc.arena_bytes,
            planned: desc.arena_bytes as usize + 8
        }
    );
    // Wrong magic and version.
    let mut bad = good.clone();
    bad[0] = b'X';
    assert!(matches!(decode(&bad), Err(BlobError::Magic { .. })));
    // A blob of format version 1 (before the feature schedule) is refused by name.
    let mut bad = good.clone();
    bad[4] = 1;
    assert_eq!(decode(&bad).unwrap_err(), BlobError::Version { found: 1 });
    // A chain blob of version 3 (before graphs): the message names both versions.
    bad[4] = 3;
    let err = decode(&bad).unwrap_err();
    assert_eq!(err, BlobError::Version { found: 3 });
    assert_eq!(err.to_string(), "format version 3, this build reads version 4");
}

/// A small graph for the graph validation tests: input 8×8×2; t1 = conv; t2 = conv
/// stride 2; t3 = upsample(t2); t4 = concat(t3, t1); t5 = add(t1, t1); outputs t4, t5.
fn graph() -> tests::OwnedModel {
    let mut g = GraphBuilder::new(Shape::new(8, 8, 2));
    let t1 = g.conv(0, 3, 1, Padding::Same, 4, Activation::Relu).unwrap();
    let t2 = g.conv(t1, 3, 2, Padding::Same, 4, Activation::Relu).unwrap();
    let t3 = g.upsample(t2);
    let t4 = g.concat(t3, t1);
    let t5 = g.add(t1, t1, Activation::None);
    g.build("g", &[t4, t5], 7).unwrap()
}

fn graph_error(mutate: impl FnOnce(&mut tests::OwnedModel)) -> ModelError {
    let mut m = graph();
    mutate(&mut m);
    blob::seal(&mut m.desc()).unwrap_err()
}

#[test]
fn invalid_graphs_are_refused_by_name() {
    let good = graph();
    let bytes = good.to_blob().unwrap();
    let model = decode(&bytes).unwrap();
    assert_eq!(model.outputs(), [4, 5]);
    let layer = |index, problem| ModelError::Layer { index, problem };
    // A tensor read before it is written, and a layer reading its own output (a cycle).
    assert_eq!(
        graph_error(|m| m.layers[1].inputs = vec![3]),
        layer(1, LayerProblem::ReadsUnwritten { tensor: 3, output: 2 })
    );
    assert_eq!(
        graph_error(|m| m.layers[0].inputs = vec![1]),
        layer(0, LayerProblem::ReadsUnwritten { tensor: 1, output: 1 })
    );
    // Two-input ops with one input, one-input ops with two.
    assert_eq!(
        graph_error(|m| m.layers[3].inputs = vec![3]),
        layer(
            3,
            LayerProblem::Arity {
                op: "Concat",
                expected: 2,
                found: 1
            }
        )
    );
    assert_eq!(
        graph_error(|m| m.layers[0].inputs = vec![0, 0]),
        layer(
            0,
            LayerProblem::Arity {
                op: "Conv2d",
                expected: 1,
                found: 2
            }
        )
    );
    // Shape mismatches at an Add and a Concat.
    assert_eq!(
        graph_error(|m| m.layers[4].inputs = vec![1, 2]),
        layer(
            4,
            LayerProblem::ShapeMismatch {
                op: "Add",
                first: Shape::new(8, 8, 4),
                second: Shape::new(4, 4, 4)
            }
        )
    );
    assert_eq!(
        graph_error(|m| m.layers[3].inputs = vec![2, 1]),
        layer(
            3,
            LayerProblem::ShapeMismatch {
                op: "Concat",
                first: Shape::new(4, 4, 4),
                second: Shape::new(8, 8, 4)
            }
        )
    );
    // Concat inputs of another quantization (TFLite's int8 concatenation copies bytes).
    assert_eq!(
        graph_error(|m| m.layers[0].output.zero_point = m.layers[0].output.zero_point.wrapping_add(1)),
        layer(3, LayerProblem::ConcatQuant)
    );
    assert_eq!(
        graph_error(|m| m.layers[2].output.scale *= 2.0),
        layer(2, LayerProblem::KeepQuant { op: "Upsample2" })
    );
    assert_eq!(
        graph_error(|m| m.layers[3].activation = Activation::Relu),
        layer(3, LayerProblem::NoActivation { op: "Concat" })
    );
    // An Add whose output scale is too small for its inputs.
    assert!(matches!(
        graph_error(|m| m.layers[4].output.scale = 1e-9),
        ModelError::Layer {
            index: 4,
            problem: LayerProblem::AddQuant(_)
        }
    ));
    // Outputs: none, out of range, twice, and a tensor nobody reads.
    assert_eq!(graph_error(|m| m.outputs.clear()), ModelError::NoOutputs);
    assert_eq!(
        graph_error(|m| m.outputs = vec![4, 9]),
        ModelError::OutputTensor {
            index: 1,
            tensor: 9,
            tensors: 6
        }
    );
    assert_eq!(
        graph_error(|m| m.outputs = vec![4, 5, 4]),
        ModelError::DuplicateOutput { tensor: 4 }
    );
    assert_eq!(
        graph_error(|m| m.outputs = vec![4]),
        ModelError::UnusedTensor { tensor: 5 }
    );
    // Class names count the first output's channels.
    assert_eq!(
        graph_error(|m| m.classes = vec!["a".into(), "b".into()]),
        ModelError::ClassCount {
            classes: 2,
            channels: 8
        }
    );
}

#[test]
fn vector_cases_run_identically_after_round_trip() {
    let file = tests::vector_file(1).unwrap();
    let mut at = 0;
    let mut n = 0;
    while at < file.len() {
        let len = u32::from_le_bytes(file[at..at + 4].try_into().unwrap()) as usize;
        let case = tqc_shared::vectors::Case::decode(&file[at + 4..at + 4 + len]).unwrap();
        let input: &[i8] = bytemuck::cast_slice(case.input);
        assert_eq!(
            run_host(case.blob, input).unwrap(),
            bytemuck::cast_slice::<u8, i8>(case.expected),
            "{}",
            case.name
        );
        at += 4 + len;
        n += 1;
    }
    assert!(n >= 15, "{n} cases");
}
