//! The arena planner: no two buffers that are alive together share a byte, every buffer
//! is aligned and inside the arena, and whole-map plans reuse memory.

use proptest::prelude::*;
use tests::{Spec, random_model};
use tqc_shared::blob;
use tqc_shared::model::Model;
use tqc_shared::planner::{ALIGN, Mode, Plan, Region, plan};
use tqc_shared::quant::Activation;
use tqc_shared::tensor::{Padding, Shape};

/// Every buffer of a plan with its lifetime in layer steps, as documented in planner.rs.
fn buffers(model: &Model<'_>, p: &Plan) -> Vec<(&'static str, Region, usize, usize)> {
    let n = model.layers.len();
    let mut v = Vec::new();
    for i in 0..n {
        let (first, last) = match p.mode {
            Mode::Streaming => (0, n),
            Mode::WholeMap => (i.saturating_sub(1), i),
        };
        v.push(("tensor", p.tensors[i], first, last));
        v.push(("table", p.tables[i], 0, n));
        let (f, l) = if p.mode == Mode::Streaming { (0, n) } else { (i, i) };
        v.push(("accumulator", p.accumulators[i], f, l));
        v.push(("scratch", p.scratch[i], i, i));
    }
    let (f, l) = if p.mode == Mode::Streaming { (0, n) } else { (n - 1, n) };
    v.push(("output", p.output, f, l));
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
    // Ring sizes: the rows each layer's window needs.
    for (i, layer) in model.layers.iter().enumerate() {
        let rows = if mode == Mode::Streaming {
            layer.window_rows()
        } else {
            layer.input.height as usize
        };
        prop_assert_eq!(p.ring_rows[i], rows);
        prop_assert!(p.tensors[i].len >= rows * layer.input.row_len());
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
