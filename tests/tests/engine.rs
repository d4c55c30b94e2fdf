//! Stripe (streaming) execution against whole-map execution, and engine refusals.

use proptest::prelude::*;
use tests::{Rng, Spec, random_model, reference_network};
use tqc_shared::blob;
use tqc_shared::engine::{Engine, EngineError};
use tqc_shared::kernels::mac::Portable;
use tqc_shared::model::Model;
use tqc_shared::planner::{Mode, plan};
use tqc_shared::quant::Activation;
use tqc_shared::tensor::{Padding, Shape};

/// Runs `model` in `mode` and returns its outputs, checking every row of every output is
/// delivered exactly once.
fn run_all(model: &Model<'_>, mode: Mode, input: &[i8]) -> Vec<Vec<i8>> {
    let need = plan(model, mode).total;
    let mut storage = vec![0u64; need / 8 + 1];
    let mut engine = Engine::new(model, bytemuck::cast_slice_mut(&mut storage), mode).unwrap();
    let shapes: Vec<_> = (0..model.outputs().len()).map(|k| model.output_shape_of(k)).collect();
    let mut got: Vec<Vec<i8>> = shapes.iter().map(|s| vec![0i8; s.len()]).collect();
    let mut seen: Vec<Vec<bool>> = shapes.iter().map(|s| vec![false; s.height as usize]).collect();
    let mut sink = |k: usize, y: usize, row: &[i8]| {
        assert!(!seen[k][y], "output {k} row {y} delivered twice");
        seen[k][y] = true;
        let n = shapes[k].row_len();
        got[k][y * n..(y + 1) * n].copy_from_slice(row);
    };
    match mode {
        Mode::Streaming | Mode::ResidentInput => engine.run_streaming_with::<Portable>(input, &mut sink).unwrap(),
        Mode::WholeMap => engine.run_whole_map::<Portable>(input, &mut sink).unwrap(),
    }
    assert!(seen.iter().flatten().all(|&s| s), "every output row delivered");
    assert!(engine.is_complete());
    got
}

/// The first output of a single-output model.
fn run(model: &Model<'_>, mode: Mode, input: &[i8]) -> Vec<i8> {
    run_all(model, mode, input).swap_remove(0)
}

#[test]
fn reference_network_full_resolution_stripes_equal_whole_map() {
    let owned = reference_network(120, 160, 7);
    let blob_bytes = owned.to_blob().unwrap();
    let model = blob::decode(&blob_bytes).unwrap();
    let input = Rng(11).bytes(model.input_shape().len());
    let stream = run(&model, Mode::Streaming, &input);
    let whole = run(&model, Mode::WholeMap, &input);
    assert_eq!(stream, whole);
    // The point of stripes: far less memory than whole maps.
    let (s, w) = (plan(&model, Mode::Streaming).total, plan(&model, Mode::WholeMap).total);
    assert!(s * 4 < w, "streaming arena {s} B vs whole-map {w} B");
    assert_eq!(model.desc.arena_bytes as usize, s);
    // The output is a probability distribution over 3 classes (scale 1/256, zp −128).
    let total: i32 = stream.iter().map(|&v| v as i32 + 128).sum();
    assert!((250..=260).contains(&total), "softmax sums to {total}/256");
}

fn spec() -> impl Strategy<Value = Spec> {
    let pad = prop_oneof![Just(Padding::Same), Just(Padding::Valid)];
    let act = prop_oneof![Just(Activation::None), Just(Activation::Relu), Just(Activation::Relu6)];
    prop_oneof![
        (1u8..4, 1u8..3, pad.clone(), 1u16..7, act.clone()).prop_map(|(k, stride, padding, out, act)| Spec::Conv {
            k,
            stride,
            padding,
            out,
            act
        }),
        (1u8..4, 1u8..3, pad.clone(), act).prop_map(|(k, stride, padding, act)| Spec::Depthwise {
            k,
            stride,
            padding,
            act
        }),
        (1u8..4, 1u8..3, pad.clone()).prop_map(|(k, stride, padding)| Spec::MaxPool { k, stride, padding }),
        (1u8..4, 1u8..3, pad).prop_map(|(k, stride, padding)| Spec::AvgPool { k, stride, padding }),
    ]
}

static RAN: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

proptest! {
    #![proptest_config(ProptestConfig::with_cases(120))]

    /// Random stacks of windowed layers (plus optional softmax / fully connected heads):
    /// streaming and whole-map give the same bytes.
    #[test]
    fn random_stacks_stream_like_whole_map(
        h in 8u16..20, w in 8u16..20, c in 1u16..6,
        specs in proptest::collection::vec(spec(), 1..6),
        head in 0u8..3, seed in any::<u64>(),
    ) {
        let mut specs = specs;
        match head {
            1 => specs.push(Spec::Softmax),
            2 => specs.push(Spec::FullyConnected { out: 3, act: Activation::None }),
            _ => {}
        }
        // Skip stacks that shrink the map below a window (the validator rejects them).
        let owned = random_model("stack", Shape::new(h, w, c), &specs, seed);
        prop_assume!(owned.is_ok());
        let owned = owned.unwrap();
        RAN.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let blob_bytes = owned.to_blob().unwrap();
        let model = blob::decode(&blob_bytes).unwrap();
        let input = Rng(seed ^ 1).bytes(model.input_shape().len());
        prop_assert_eq!(run(&model, Mode::Streaming, &input), run(&model, Mode::WholeMap, &input));
    }
}

#[test]
fn random_stacks_really_ran() {
    random_stacks_stream_like_whole_map();
    assert!(
        RAN.load(std::sync::atomic::Ordering::Relaxed) >= 120,
        "proptest cases that built a model"
    );
}

static GRAPHS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    /// Random graphs (skips of every length, Add, Concat, Upsample, strides, several
    /// outputs): streaming, streaming over a resident input and whole-map execution give
    /// the same bytes for every output.
    #[test]
    fn random_graphs_stream_like_whole_map(seed in any::<u64>()) {
        let owned = tests::graph::random_graph(seed, 14);
        prop_assume!(owned.is_some());
        let owned = owned.unwrap();
        GRAPHS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let blob_bytes = owned.to_blob().unwrap();
        let model = blob::decode(&blob_bytes).unwrap();
        let input = Rng(seed ^ 3).bytes(model.input_shape().len());
        let whole = run_all(&model, Mode::WholeMap, &input);
        prop_assert_eq!(&run_all(&model, Mode::Streaming, &input), &whole);
        prop_assert_eq!(&run_all(&model, Mode::ResidentInput, &input), &whole);
    }
}

#[test]
fn random_graphs_really_ran_and_joined() {
    random_graphs_stream_like_whole_map();
    assert!(
        GRAPHS.load(std::sync::atomic::Ordering::Relaxed) >= 300,
        "proptest cases that built a graph"
    );
    // The generator does make what the test is about: joins, upsampling, several outputs.
    let (mut joins, mut ups, mut multi, mut skips) = (0, 0, 0, 0);
    for seed in 0..200 {
        let Some(m) = tests::graph::random_graph(seed, 14) else {
            continue;
        };
        let desc = m.desc();
        let model = Model::new(desc).unwrap();
        joins += model.layers.iter().filter(|l| l.input_count == 2).count();
        ups += model.layers.iter().filter(|l| l.kind() == "upsample").count();
        multi += usize::from(model.outputs().len() > 1);
        // A skip: a layer reading a tensor other than the one just before it.
        skips += model
            .layers
            .iter()
            .enumerate()
            .filter(|(i, l)| l.inputs().iter().any(|&t| t as usize != *i))
            .count();
    }
    eprintln!("{joins} joins, {ups} upsamplings, {multi} multi-output, {skips} skips");
    assert!(
        joins > 100 && ups > 50 && multi > 30 && skips > 200,
        "{joins} joins, {ups} upsamplings, {multi} multi-output, {skips} skips"
    );
}

#[test]
fn encoder_decoder_streams_like_whole_map_with_short_delay_lines() {
    let owned = tests::graph::encoder_decoder(120, 160, 5);
    let blob_bytes = owned.to_blob().unwrap();
    let model = blob::decode(&blob_bytes).unwrap();
    let input = Rng(8).bytes(model.input_shape().len());
    let whole = run_all(&model, Mode::WholeMap, &input);
    assert_eq!(whole.len(), 2);
    assert_eq!(whole[0].len(), 120 * 160 * 3);
    assert_eq!(whole[1].len(), 120 * 160);
    assert_eq!(run_all(&model, Mode::Streaming, &input), whole);
    assert_eq!(run_all(&model, Mode::ResidentInput, &input), whole);
    // Every ring is far shorter than its map (the point of streaming), and the resident
    // input saves the input's delay line.
    let s = plan(&model, Mode::Streaming);
    let r = plan(&model, Mode::ResidentInput);
    for t in 1..model.tensor_count() {
        let h = model.tensor_shape(t).height as usize;
        assert!(
            s.ring_rows[t] * 2 <= h.max(8),
            "tensor {t}: {} of {h} rows",
            s.ring_rows[t]
        );
    }
    assert!(r.total < s.total, "resident {} vs streaming {}", r.total, s.total);
    assert_eq!(r.tensors[0].len, 0);
}

#[test]
fn engine_refuses_bad_arena_and_rows() {
    let owned = reference_network(12, 16, 3);
    let blob_bytes = owned.to_blob().unwrap();
    let model = blob::decode(&blob_bytes).unwrap();
    let need = model.desc.arena_bytes as usize;
    let mut storage = vec![0u64; need / 8 + 2];
    let bytes: &mut [u8] = bytemuck::cast_slice_mut(&mut storage);
    assert_eq!(
        Engine::new(&model, &mut bytes[..need - 1], Mode::Streaming).err(),
        Some(EngineError::ArenaTooSmall {
            needed: need,
            available: need - 1
        })
    );
    assert_eq!(
        Engine::new(&model, &mut bytes[1..need + 1], Mode::Streaming).err(),
        Some(EngineError::ArenaMisaligned)
    );
    let mut engine = Engine::new(&model, &mut bytes[..need], Mode::Streaming).unwrap();
    let row = vec![0i8; 16 * 8];
    let mut sink = |_: usize, _: usize, _: &[i8]| {};
    assert_eq!(
        engine.push_row::<Portable>(&row[1..], &mut sink),
        Err(EngineError::InputRow {
            expected: 128,
            found: 127
        })
    );
    for _ in 0..12 {
        engine.push_row::<Portable>(&row, &mut sink).unwrap();
    }
    assert!(engine.is_complete());
    assert_eq!(
        engine.push_row::<Portable>(&row, &mut sink),
        Err(EngineError::TooManyRows { height: 12 })
    );
    assert_eq!(
        engine.run_whole_map::<Portable>(&vec![0; 12 * 128], &mut sink),
        Err(EngineError::WrongMode(Mode::Streaming))
    );
    // A reset engine runs the next part and gives the same answer for the same input.
    let input = Rng(5).bytes(12 * 128);
    let mut first = vec![];
    engine
        .run_streaming_with::<Portable>(&input, &mut |_, _, r| first.extend_from_slice(r))
        .unwrap();
    let mut second = vec![];
    engine
        .run_streaming_with::<Portable>(&input, &mut |_, _, r| second.extend_from_slice(r))
        .unwrap();
    assert_eq!(first, second);
}

/// The engine's prepared table (short requantization form where the accumulator bound
/// allows) against the kernels called directly with the general form.
#[test]
fn engine_equals_direct_kernels() {
    use tqc_shared::kernels::ChannelQuant;
    use tqc_shared::kernels::conv::conv2d;
    use tqc_shared::kernels::depthwise::depthwise_conv2d;
    use tqc_shared::kernels::fully_connected::fully_connected;
    use tqc_shared::model::Kernel;
    let mut rng = Rng(99);
    let specs = [
        Spec::Conv {
            k: 3,
            stride: 1,
            padding: Padding::Same,
            out: 7,
            act: Activation::Relu,
        },
        Spec::Conv {
            k: 3,
            stride: 2,
            padding: Padding::Valid,
            out: 8,
            act: Activation::None,
        },
        Spec::Conv {
            k: 1,
            stride: 1,
            padding: Padding::Valid,
            out: 5,
            act: Activation::Relu6,
        },
        Spec::Depthwise {
            k: 3,
            stride: 1,
            padding: Padding::Same,
            act: Activation::None,
        },
        Spec::FullyConnected {
            out: 5,
            act: Activation::None,
        },
    ];
    for (n, spec) in specs.iter().enumerate() {
        for trial in 0..10 {
            let owned = random_model("one", Shape::new(9, 11, 6), &[*spec], rng.next_u64()).unwrap();
            let blob_bytes = owned.to_blob().unwrap();
            let model = blob::decode(&blob_bytes).unwrap();
            let input = rng.bytes(model.input_shape().len());
            let engine_out = run(&model, Mode::Streaming, &input);
            let info = model.layers[0];
            let quant: Vec<ChannelQuant> = (0..info.weighted_channels())
                .map(|c| model.channel_quant(0, c).unwrap())
                .collect();
            let mut direct = vec![0i8; info.output.len()];
            match info.kernel {
                Kernel::Conv(p) => {
                    let (g, c, w) = p.scratch_len();
                    conv2d::<Portable, _>(
                        &p,
                        model.weights(0),
                        quant.as_slice(),
                        &input,
                        &mut direct,
                        &mut vec![0; g],
                        &mut vec![0; c],
                        &mut vec![0; w],
                    )
                    .unwrap()
                }
                Kernel::Depthwise(p) => depthwise_conv2d::<Portable, _>(
                    &p,
                    model.weights(0),
                    quant.as_slice(),
                    &input,
                    &mut direct,
                    &mut vec![0; p.scratch_len()],
                )
                .unwrap(),
                Kernel::FullyConnected(p) => fully_connected::<Portable, _>(
                    &p,
                    model.weights(0),
                    quant.as_slice(),
                    &input,
                    &mut direct,
                    &mut vec![0; p.out_features],
                    &mut vec![0; p.in_features],
                )
                .unwrap(),
                _ => unreachable!(),
            }
            assert_eq!(engine_out, direct, "spec {n} trial {trial}");
        }
    }
}

/// A fully convolutional network resized to another frame size is the network built for
/// that size (same weights, shapes derived again, arena planned again); a network with
/// a fully connected layer cannot follow and says which layer.
#[test]
fn a_resized_network_is_the_one_built_for_that_size_and_a_dense_layer_refuses() {
    let specs = [
        Spec::Conv {
            k: 3,
            stride: 1,
            padding: Padding::Same,
            out: 8,
            act: Activation::Relu,
        },
        Spec::Conv {
            k: 3,
            stride: 2,
            padding: Padding::Same,
            out: 4,
            act: Activation::None,
        },
    ];
    let built = |h, w| random_model("fcn", Shape::new(h, w, 3), &specs, 11).unwrap();
    let native = built(12, 16);
    let native_blob = native.to_blob().unwrap();
    let model = blob::decode(&native_blob).unwrap();
    let other_blob = built(30, 22).to_blob().unwrap();
    let other = blob::decode(&other_blob).unwrap();
    let resized = model.resized(30, 22).unwrap();
    assert_eq!(resized.desc, other.desc);
    assert_eq!(resized.output_shape(), Shape::new(15, 11, 4));
    let input: Vec<i8> = (0..30 * 22 * 3).map(|i| (i * 29 % 251) as i8).collect();
    let run = |m: &Model<'_>| {
        let mut arena = vec![0u64; m.desc.arena_bytes as usize / 8 + 1];
        let mut engine = Engine::new(m, bytemuck::cast_slice_mut(&mut arena), Mode::Streaming).unwrap();
        let mut out = Vec::new();
        engine
            .run_streaming_with::<Portable>(&input, &mut |_, _, row| out.extend_from_slice(row))
            .unwrap();
        out
    };
    assert_eq!(run(&resized), run(&other));
    // Back to its own size: the model it was.
    assert_eq!(model.resized(12, 16).unwrap().desc, model.desc);

    let dense = random_model(
        "dense",
        Shape::new(4, 4, 2),
        &[
            specs[0],
            Spec::FullyConnected {
                out: 3,
                act: Activation::None,
            },
        ],
        5,
    )
    .unwrap()
    .to_blob()
    .unwrap();
    let e = blob::decode(&dense).unwrap().resized(8, 8).unwrap_err();
    assert!(e.to_string().contains("layer 1"), "{e}");
}
