//! The arena planner: no two buffers that are alive together share a byte, every buffer
//! is aligned and inside the arena, and whole-map plans reuse memory.

use proptest::prelude::*;
use tests::{Spec, random_model};
use tqc_shared::blob;
use tqc_shared::model::Model;
use tqc_shared::planner::{ALIGN, Mode, Plan, Region, plan};
use tqc_shared::quant::Activation;
use tqc_shared::tensor::{Padding, Shape};

/// Every buffer of a plan with its lifetime in steps, as documented in planner.rs (step
/// 0 takes the input, layer `i` runs at step `i + 1`).
fn buffers(model: &Model<'_>, p: &Plan) -> Vec<(&'static str, Region, usize, usize)> {
    let n = model.layers.len();
    let whole = p.mode == Mode::WholeMap;
    let mut v = Vec::new();
    for t in 0..model.tensor_count() {
        let readers = (0..n).filter(|&i| model.layers[i].inputs().contains(&(t as u8)));
        let (first, last) = if whole {
            (t, readers.map(|i| i + 1).max().unwrap_or(t).max(t))
        } else {
            (0, n)
        };
        v.push(("tensor", p.tensors[t], first, last));
    }
    for i in 0..n {
        v.push(("table", p.tables[i], 0, n));
        let (f, l) = if whole { (i + 1, i + 1) } else { (0, n) };
        v.push(("accumulator", p.accumulators[i], f, l));
        v.push(("scratch", p.scratch[i], i + 1, i + 1));
    }
    v
}

fn check(model: &Model<'_>, mode: Mode) -> Result<usize, TestCaseError> {
    let p = plan(model, mode);
    let all = buffers(model, &p);
    let mut sum = 0;
    for &(name, r, _, _) in &all {
        prop_assert!(r.offset.is_multiple_of(ALIGN), "{name} at {} unaligned", r.offset);
        prop_assert!(r.offset + r.len <= p.total, "{name} outside the arena");
        sum += r.len;
    }
    prop_assert!(p.total <= sum);
    for (a, &(na, ra, fa, la)) in all.iter().enumerate() {
        for &(nb, rb, fb, lb) in &all[a + 1..] {
            if ra.len == 0 || rb.len == 0 || fa > lb || fb > la {
                continue;
            }
            let overlap = ra.offset < rb.offset + rb.len && rb.offset < ra.offset + ra.len;
            prop_assert!(!overlap, "{na} {ra:?} and {nb} {rb:?} are alive together and overlap");
        }
    }
    // Ring sizes: in a chain, each ring holds the rows of its reader's window (the last
    // rows of a map can arrive together, one more); a whole map all of them.
    for t in 0..model.tensor_count() {
        let shape = model.tensor_shape(t);
        let rows = p.ring_rows[t];
        if mode == Mode::Streaming {
            let window = model
                .layers
                .iter()
                .filter(|l| l.inputs().contains(&(t as u8)))
                .map(|l| l.window_rows().min(l.input.height as usize))
                .max()
                .unwrap_or(1);
            prop_assert!(
                rows >= 1 && rows <= window + 1,
                "tensor {t}: {rows} rows for a window of {window}"
            );
        } else {
            prop_assert_eq!(rows, shape.height as usize);
        }
        prop_assert!(p.tensors[t].len >= rows * shape.row_len());
    }
    Ok(p.total)
}

fn spec() -> impl Strategy<Value = Spec> {
    let pad = prop_oneof![Just(Padding::Same), Just(Padding::Valid)];
    prop_oneof![
        (1u8..4, 1u8..3, pad.clone(), 1u16..9).prop_map(|(k, stride, padding, out)| Spec::Conv {
            k,
            stride,
            padding,
            out,
            act: Activation::Relu
        }),
        (1u8..4, 1u8..3, pad.clone()).prop_map(|(k, stride, padding)| Spec::Depthwise {
            k,
            stride,
            padding,
            act: Activation::None
        }),
        (1u8..4, 1u8..3, pad).prop_map(|(k, stride, padding)| Spec::MaxPool { k, stride, padding }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn plans_never_overlap_live_buffers(
        h in 4u16..40, w in 4u16..40, c in 1u16..9,
        specs in proptest::collection::vec(spec(), 1..8),
        fc in any::<bool>(), seed in any::<u64>(),
    ) {
        let mut specs = specs;
        if fc {
            specs.push(Spec::FullyConnected { out: 4, act: Activation::None });
        }
        let owned = random_model("p", Shape::new(h, w, c), &specs, seed);
        prop_assume!(owned.is_ok());
        let owned = owned.unwrap();
        let bytes = owned.to_blob().unwrap();
        let model = blob::decode(&bytes).unwrap();
        check(&model, Mode::Streaming)?;
        check(&model, Mode::WholeMap)?;
    }
}

#[test]
fn whole_map_plan_reuses_memory() {
    // A chain of equal-size layers: ping-pong needs two maps, not one per layer.
    let specs = vec![
        Spec::Conv {
            k: 3,
            stride: 1,
            padding: Padding::Same,
            out: 8,
            act: Activation::Relu
        };
        6
    ];
    let owned = random_model("chain", Shape::new(32, 32, 8), &specs, 1).unwrap();
    let bytes = owned.to_blob().unwrap();
    let model = blob::decode(&bytes).unwrap();
    let p = plan(&model, Mode::WholeMap);
    let map = 32 * 32 * 8;
    assert!(
        p.total < 3 * map + 16 * 1024,
        "whole-map arena {} for maps of {map} bytes",
        p.total
    );
    assert!(p.total >= 2 * map);
    let s = plan(&model, Mode::Streaming);
    assert!(s.total < p.total / 2, "streaming {} vs whole map {}", s.total, p.total);
}
