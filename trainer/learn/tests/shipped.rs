//! The committed models in onnx_models/ (ThermoNet 2, shipped, and the previous ThermoNet)
//! are consistent (CI does not retrain it): the blob
//! decodes as the device decodes it, tract runs both ONNX files, the int8 ONNX agrees with
//! the engine on the blob (on simulated held-out plates, and near it on synthetic feature
//! images), the float ONNX with its own weights, and the network burn-import generated
//! from it loads them.

use std::path::PathBuf;

use burn::backend::NdArray;
use tqc_data::specimen::Specimen;
use tqc_eval::infer::run_features;
use tqc_learn::export::fold::FloatNet;
use tqc_learn::finetune::{ShippedNet, ShippedNet2};
use tqc_learn::model_eval::evaluate_model;
use tqc_learn::onnx_run::OnnxModel;
use tqc_shared::verdict::VerdictConfig;
use tqc_sim::simulate_to_dir;

fn models() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../onnx_models")
}

/// Synthetic feature images: a smooth field around the plate median (the zero point) with
/// hot, cold and slow spots of random strength per channel, seeded — combinations no
/// plate produces, so more pixels sit near a tie between two classes than on real parts.
fn inputs(h: usize, w: usize, c: usize, zero_point: i8) -> Vec<Vec<i8>> {
    let mut state = 0x5eed_u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    (0..4)
        .map(|_| {
            let spots: Vec<(f64, f64, f64, Vec<f64>)> = (0..6)
                .map(|_| {
                    let amp: Vec<f64> = (0..c).map(|_| 40.0 * (next() - 0.5)).collect();
                    (next() * w as f64, next() * h as f64, 2.0 + 6.0 * next(), amp)
                })
                .collect();
            let mut img = vec![0i8; h * w * c];
            for y in 0..h {
                for x in 0..w {
                    for k in 0..c {
                        let mut v = zero_point as f64 + 6.0 * (x as f64 / w as f64 - 0.5) + 4.0 * (next() - 0.5);
                        for (sx, sy, r, amp) in &spots {
                            let d2 = (x as f64 - sx).powi(2) + (y as f64 - sy).powi(2);
                            v += amp[k] * (-d2 / (r * r)).exp();
                        }
                        img[(y * w + x) * c + k] = v.round().clamp(-128.0, 127.0) as i8;
                    }
                }
            }
            img
        })
        .collect()
}

/// The shipped files of `name` agree with each other; `load` fills the network
/// burn-import generated from its float ONNX file.
fn artifacts_agree(name: &str, load: impl Fn(&FloatNet)) {
    let blob = std::fs::read(models().join(format!("{name}.tqm"))).expect("the shipped blob");
    let model = tqc_shared::blob::decode(&blob).expect("the shipped blob is valid");
    let shape = model.desc.input.shape;
    let (h, w, c) = (shape.height as usize, shape.width as usize, shape.channels as usize);
    assert!(
        model.desc.input.features.is_some(),
        "an inspection model carries its feature schedule"
    );
    assert_eq!(model.desc.classes.as_slice(), ["sound", "subsurface", "surface"]);
    let q_in = model.desc.input.quant;
    let q_out = model.output_quant(0).unwrap();
    let depth = model.depth_output().map(|k| (k, model.output_quant(k).unwrap()));

    let float_bytes = std::fs::read(models().join(format!("{name}.onnx"))).unwrap();
    let net = FloatNet::from_onnx(&float_bytes).unwrap();
    assert_eq!(
        net.depth_output().is_some(),
        depth.is_some(),
        "the float file has the blob's outputs"
    );
    let float = OnnxModel::load(&models().join(format!("{name}.onnx")), c, h, w).unwrap();
    let int8 = OnnxModel::load(&models().join(format!("{name}.int8.onnx")), c, h, w).unwrap();
    // The network burn-import generated at build time takes these weights.
    load(&net);

    let px = h * w;
    // Counted per value, logits and depth apart (the export's promise: ≤ 1 LSB on ≥ 99 %).
    let (mut within, mut logits, mut depth_within, mut total) = (0usize, 0usize, 0usize, 0usize);
    let code = |v: f32, q: tqc_shared::model::QuantParams| {
        ((v / q.scale).round() as i32 + q.zero_point as i32).clamp(-128, 127)
    };
    for img in inputs(h, w, c, q_in.zero_point) {
        let chw = tqc_eval::features::dequantize_chw(&img, c, q_in);
        let reference = net.forward(&chw, h, w);
        let onnx = float.logits(&chw).unwrap();
        let max = reference
            .iter()
            .zip(&onnx)
            .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(max <= 1e-4, "float ONNX (tract) vs its weights: max |Δ| {max}");

        let (engine_logits, engine_classes) = run_features(&blob, &img).unwrap();
        let qdq = int8.outputs(&chw).unwrap();
        assert_eq!(engine_classes.len(), px);
        let engine_depth = match depth {
            Some((k, _)) => tqc_eval::infer::run_outputs(&model, &img).unwrap().swap_remove(k),
            None => Vec::new(),
        };
        for p in 0..px {
            total += 1;
            for k in 0..3 {
                logits += 1;
                within += usize::from((code(qdq[0][k * px + p], q_out) - engine_logits[p * 3 + k] as i32).abs() <= 1);
            }
            if let Some((_, q)) = depth {
                // The QDQ file's outputs: logits, probabilities, depth.
                depth_within += usize::from((code(qdq[2][p], q) - engine_depth[p] as i32).abs() <= 1);
            }
        }
    }
    // Classes are compared on held-out plates (below): these images put many pixels within
    // 1 LSB of a tie between two classes, where a 1-LSB difference flips the class.
    let lsb = within as f64 / logits as f64;
    assert!(lsb >= 0.99, "{name}: int8 ONNX vs engine logits within 1 LSB: {lsb}");
    if depth.is_some() {
        let lsb = depth_within as f64 / total as f64;
        assert!(lsb >= 0.99, "{name}: int8 ONNX vs engine depth within 1 LSB: {lsb}");
    }
}

#[test]
fn shipped_thermonet2_artifacts_agree() {
    artifacts_agree("thermonet2", |net| {
        tqc_learn::finetune::load::<NdArray<f32>, ShippedNet2<NdArray<f32>>>(net, &Default::default()).unwrap();
    });
}

#[test]
fn previous_thermonet_artifacts_agree() {
    artifacts_agree("thermonet", |net| {
        tqc_learn::finetune::load::<NdArray<f32>, ShippedNet<NdArray<f32>>>(net, &Default::default()).unwrap();
    });
}

/// On parts the model never saw — the reference plate and a defect-free plate, simulated
/// here — the int8 ONNX file run by tract and the engine running the blob give the same
/// class on ≥ 99.9 % of the pixels and every logit within 1 LSB on ≥ 99 %, and the float
/// model's classes differ from the engine's on under 1 % of them.
fn reproduces_the_engine_on_held_out_plates(name: &str) {
    let blob = std::fs::read(models().join(format!("{name}.tqm"))).unwrap();
    let root = tempfile::tempdir().unwrap();
    let mut dirs = Vec::new();
    for (name, seed) in [("gfrp-reference", 1), ("gfrp-sound", 2)] {
        let specimen = Specimen::load(name).unwrap();
        let dir = root.path().join(name);
        simulate_to_dir(&specimen, seed, tqc_sim::WallClock::Record, &dir, |_, _| {}).unwrap();
        dirs.push(dir);
    }
    let e = evaluate_model(
        &blob,
        Some(&models().join(format!("{name}.onnx"))),
        Some(&models().join(format!("{name}.int8.onnx"))),
        &dirs,
        &VerdictConfig::DEFAULT,
        |_| {},
    )
    .unwrap();
    let q = e.qdq_vs_engine.expect("the int8 ONNX file was given");
    assert!(q.same_class >= 0.999, "same class on {}", q.same_class);
    assert!(q.within_1_lsb >= 0.99, "within 1 LSB on {}", q.within_1_lsb);
    assert!(
        e.float_int8_disagreement < 0.01,
        "float and int8 classes differ on {}",
        e.float_int8_disagreement
    );
}

#[test]
fn thermonet2_int8_onnx_reproduces_the_engine_on_held_out_plates() {
    reproduces_the_engine_on_held_out_plates("thermonet2");
}

#[test]
fn thermonet_int8_onnx_reproduces_the_engine_on_held_out_plates() {
    reproduces_the_engine_on_held_out_plates("thermonet");
}
