//! `trainer evaluate --model`: a shipped model against the baselines on held-out plates,
//! and the model card (`--card`): training data, architecture, budgets, metrics and the
//! per-hole table of the reference plate.

use std::fmt::Write as _;
use std::path::Path;
use tqc_shared::inspection::AcquisitionLimits;

use anyhow::{Context, Result};

use tqc_data::Specimen;
use tqc_data::{ReadOptions, Sequence};
use tqc_eval::infer::infer;
use tqc_eval::score::{evaluate, footprints_of};
use tqc_learn::model_eval::{ModelEvaluation, evaluate_model};
use tqc_shared::model::{Kernel, Model};
use tqc_shared::verdict::VerdictConfig;
use tqc_sim::simulate_to_dir;

use tqc_data::index::{Split, split_dirs};
use tqc_learn::pipeline::TrainingRecord;

pub fn run(model: &Path, data: &Path, split: Split, json: Option<&Path>, card: Option<&Path>) -> Result<()> {
    let blob = std::fs::read(model).with_context(|| format!("cannot read {}", model.display()))?;
    tqc_shared::blob::decode(&blob).with_context(|| format!("{} is not a valid model blob", model.display()))?;
    let dirs = split_dirs(data, split)?;
    if dirs.is_empty() {
        anyhow::bail!("{}: no plates in the {split} split", data.display());
    }
    let float = model.with_extension("onnx");
    let float = float.exists().then_some(float);
    let qdq = model.with_extension("int8.onnx");
    let qdq = qdq.exists().then_some(qdq);
    let bar = crate::progress::bar(dirs.len() as u64, "evaluating", "plates");
    let cfg = VerdictConfig::DEFAULT;
    let e = evaluate_model(&blob, float.as_deref(), qdq.as_deref(), &dirs, &cfg, |n| {
        bar.set_position(n as u64)
    })?;
    bar.finish_and_clear();
    println!(
        "{} on {} {split} plates of {}:\n",
        model.display(),
        dirs.len(),
        data.display()
    );
    print!("{}", e.table());
    println!(
        "\nfloat vs int8 CNN classes differ on {:.4} % of pixels",
        100.0 * e.float_int8_disagreement
    );
    if let Some(q) = e.qdq_vs_engine {
        println!(
            "int8 ONNX (tract) vs engine: same class on {:.4} % of pixels, logits within 1 LSB on {:.4} %",
            100.0 * q.same_class,
            100.0 * q.within_1_lsb
        );
    }
    let json_path = json
        .map(Path::to_path_buf)
        .unwrap_or_else(|| model.with_extension("evaluation.json"));
    std::fs::write(&json_path, serde_json::to_string_pretty(&e)?)
        .with_context(|| format!("cannot write {}", json_path.display()))?;
    println!("→ {}", json_path.display());
    if let Some(card) = card {
        let text = model_card(model, data, &blob, &e, split)?;
        tqc_data::io::write_atomic(card, text.as_bytes())?;
        println!("→ {}", card.display());
    }
    Ok(())
}

/// Per-defect rows of the reference plate (seed 1) inspected by the blob.
fn reference_rows(blob: &[u8]) -> Result<(String, String)> {
    let dir = tempfile_dir()?;
    let specimen = Specimen::load("gfrp-reference")?;
    simulate_to_dir(&specimen, 1, tqc_sim::WallClock::Record, &dir, |_, _| {})?;
    let seq = Sequence::open(&dir, &ReadOptions::default())?;
    let out = infer(blob, &seq, &VerdictConfig::DEFAULT, &AcquisitionLimits::DEFAULT)?;
    let labels = seq.labels.clone().context("reference plate without labels")?;
    let truth = footprints_of(&dir)?.context("reference plate without meta.json")?;
    let e = evaluate(&out.classes, &labels, &truth.0, None);
    // The depth each in-depth defect's region reports, as the verdict file has it.
    let estimated: std::collections::BTreeMap<String, f64> = if out.depth.is_some() {
        tqc_eval::report::verdict_file(&out, "reference", &dir, Some(&labels), Some(&truth))?
            .truth
            .map(|t| {
                t.defects
                    .into_iter()
                    .filter_map(|d| Some((d.name, d.estimated_depth_mm?)))
                    .collect()
            })
            .unwrap_or_default()
    } else {
        Default::default()
    };
    let depth_column = out.depth.is_some();
    let mut rows = String::from(if depth_column {
        "| defect | depth (mm) | estimated depth (mm) | pixels | flagged | found |\n| --- | ---: | ---: | ---: | ---: | --- |\n"
    } else {
        "| defect | depth (mm) | pixels | flagged | found |\n| --- | ---: | ---: | ---: | --- |\n"
    });
    for d in &e.defects {
        let estimate = match estimated.get(&d.name) {
            Some(mm) => format!(" {mm:.2} |"),
            None if depth_column => " – |".into(),
            None => String::new(),
        };
        let _ = writeln!(
            rows,
            "| {} | {} |{estimate} {} | {} | {} |",
            d.name,
            if d.depth_mm.is_finite() {
                format!("{:.2}", d.depth_mm)
            } else {
                "–".into()
            },
            d.pixels,
            d.flagged,
            if d.found { "yes" } else { "no" }
        );
    }
    let verdict = format!(
        "{:?}, {} of {} defects found, {} px flagged on sound material",
        out.findings.verdict,
        e.found,
        e.defects.len(),
        e.false_call_pixels
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok((rows, verdict))
}

fn tempfile_dir() -> Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("thermoqc-card-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir)
}

/// The float training of a record, as list items.
fn float_training(r: &TrainingRecord) -> String {
    let c = &r.config;
    format!(
        "- data: `{}` (`trainer dataset`, template `{}`, seed {}), {} training and {} validation plates, held out by plate;\n- {:?}, peak learning rate {}, {} warm-up epochs then cosine decay, weight decay {}, L1 {}, dropout {}, class weights {:?}, augmentation {:?};\n- {} of {} epochs (early stopping, patience {:?}), best epoch {}; seed {}; {:.0} s wall time on the CPU ({});\n- folded float network vs burn: max |Δlogit| {:.1e} on a validation plate.\n\n",
        r.data,
        r.dataset_index.template,
        r.dataset_index.seed,
        r.train_plates,
        r.validation_plates,
        c.optimizer,
        c.learning_rate,
        c.warmup_epochs,
        c.weight_decay,
        c.l1,
        c.dropout,
        c.class_weights,
        c.augment,
        r.epochs_run,
        c.epochs,
        c.patience,
        r.best_epoch,
        c.seed,
        r.wall_time_s,
        r.backend,
        r.float_vs_burn_max_abs
    )
}

fn model_card(model: &Path, data: &Path, blob: &[u8], e: &ModelEvaluation, split: Split) -> Result<String> {
    let m = tqc_shared::blob::decode(blob)?;
    let name = m.desc.name;
    let record = TrainingRecord::beside(model);
    let mut s = String::new();
    let _ = writeln!(s, "# Model card: `{name}`\n");
    let _ = writeln!(
        s,
        "Per-pixel defect segmentation for active-thermography inspection of plates at the \
         ThermoQC station: from the feature image of one recording (heating, then cooling, \
         160×120 Lepton frames) to a class per pixel — sound, subsurface (in-depth) defect, \
         surface defect —{} and the part verdict (FAIL when a defect region reaches {} pixels).\n",
        if m.depth_output().is_some() {
            " the depth of in-depth defects below the inspected face (mm; each region reports its median),"
        } else {
            ""
        },
        VerdictConfig::DEFAULT.min_region_pixels
    );
    if let Some(margin) = record.as_ref().map(folded_margin).filter(|&m| m > 0.0) {
        let _ = writeln!(
            s,
            "Operating point: a pixel is a defect when its best defect logit exceeds the sound logit by more than {margin} (the decision margin, folded into the class head's sound bias at export, so the station's argmax applies it; `trainer pod`'s CNN threshold 0 is this point).\n"
        );
    }
    let _ = writeln!(
        s,
        "Generated by `trainer evaluate --model {} --card …`; numbers below come from that command.\n",
        model.display()
    );
    s += &qualification_section(model);
    s += &files_section(model, &m);
    s += &features_section(&m);
    s += &architecture_section(&m, blob);
    s += &training_section(record.as_ref(), name);
    // The float interval the logits' 256 codes span, as calibrated.
    let logits = m.outputs().first().map_or((0.0, 0.0), |&t| {
        let q = m.tensor_quant(t as usize);
        let code = |c: i32| (c - i32::from(q.zero_point)) as f32 * q.scale;
        (code(-128), code(127))
    });
    s += &quantization_section(record.as_ref(), logits);
    s += &metrics_section(e, split);
    if m.depth_output().is_some() {
        s += &depth_section(model, data, split)?;
    }
    s += &reference_section(blob)?;
    s += &limits_section(m.depth_output().is_some());
    Ok(s)
}

/// The decision margin in the exported class head: each run of the chain (a fine-tuning
/// and the runs it started from) folded its own on top of the file it started from.
fn folded_margin(r: &TrainingRecord) -> f32 {
    r.decision_margin + r.source.as_deref().map_or(0.0, folded_margin)
}

/// The POD qualification `trainer pod --ship` wrote beside the model, first: what an NDT
/// engineer reads before anything else.
fn qualification_section(model: &Path) -> String {
    let pod = model.with_extension("pod.md");
    match std::fs::read_to_string(&pod) {
        Ok(text) => format!(
            "## Qualification: probability of detection and false calls\n\nFrom `trainer pod --ship` (`{}`, the rules in \
             docs/qualification.md).\n\n{text}\n",
            pod.display()
        ),
        Err(_) => format!(
            "## Qualification\n\nNo POD study beside this model (`{}`): run `trainer pod --ship` on an evaluation set.\n\n",
            pod.display()
        ),
    }
}

/// The shipped files and the model's input and outputs.
fn files_section(model: &Path, m: &Model<'_>) -> String {
    let mut s = String::new();
    let input = m.desc.input.shape;
    let _ = writeln!(s, "## Files\n");
    for (f, what) in [
        (model.with_extension("onnx"), "float ONNX (opset 13), batch norm folded"),
        (model.with_extension("int8.onnx"), "int8 ONNX, QDQ form"),
        (
            model.to_path_buf(),
            "engine blob (postcard, CRC-32) the firmware embeds",
        ),
    ] {
        let size = std::fs::metadata(&f).map(|m| m.len()).unwrap_or(0);
        let _ = writeln!(
            s,
            "- `{}` — {what}, {size} bytes",
            f.file_name().and_then(|n| n.to_str()).unwrap_or("?")
        );
    }
    let _ = writeln!(
        s,
        "\nInput `features` float32 `[batch, {}, {}, {}]` (the dequantized int8 features, scale {} zero point {}); outputs `logits` and `probabilities` (softmax, axis 1) `[batch, 3, {}, {}]`, full resolution. The device takes the argmax of the int8 logits.\n",
        input.channels,
        input.height,
        input.width,
        m.desc.input.quant.scale,
        m.desc.input.quant.zero_point,
        input.height,
        input.width
    );
    if let Some(q) = m.depth_output().and_then(|k| m.output_quant(k)) {
        let _ = writeln!(
            s,
            "A third output, `depth` `[batch, 1, {}, {}]`: the estimated depth below the inspected face in mm, meaningful on in-depth defect pixels (int8 in the blob, scale {:.4} mm, zero point {}: {:.2}–{:.2} mm).\n",
            input.height,
            input.width,
            q.scale,
            q.zero_point,
            q.scale * (-128 - i32::from(q.zero_point)) as f32,
            q.scale * (127 - i32::from(q.zero_point)) as f32
        );
    }
    s
}

/// The feature schedule.
fn features_section(m: &Model<'_>) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "## Features\n");
    if let Some(f) = &m.desc.input.features {
        let relative_to = match f.amplitude_window_px {
            0 => "the image median".to_string(),
            px => format!(
                "the mean rise of the {px}×{px}-pixel window around the pixel (the lamp's smooth non-uniformity cancels)"
            ),
        };
        let _ = writeln!(
            s,
            "Shared streaming extractor (`shared/src/features.rs`), sample times {:?} ms after the start of heating, averaging window ±{} ‰. Channel 0: rise at the first time over {relative_to} (amplitude); channels 1…: rise at t_k over the rise at t_0 (shape, emissivity- and lamp-free).\n",
            f.times_ms.as_slice(),
            f.window_permille
        );
    }
    s
}

/// Layers, MACs, parameters and memory.
fn architecture_section(m: &Model<'_>, blob: &[u8]) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "## Architecture and budgets\n");
    let _ = writeln!(
        s,
        "| layer | kernel | in → out channels | activation | MACs |\n| --- | --- | --- | --- | ---: |"
    );
    let mut macs = 0u64;
    let mut params = 0usize;
    for (i, (l, info)) in m.desc.layers.iter().zip(m.layers.iter()).enumerate() {
        let (k, mac) = match info.kernel {
            Kernel::Conv(p) => (
                format!("{}×{}", p.kernel_h, p.kernel_w),
                info.output.len() as u64 * p.kernel_h as u64 * p.kernel_w as u64 * info.input.channels as u64,
            ),
            _ => ("–".into(), 0),
        };
        macs += mac;
        params += l.weights.len() + l.bias.len() / 4;
        let _ = writeln!(
            s,
            "| {i} | {k} | {} → {} | {:?} | {mac} |",
            info.input.channels, info.output.channels, l.activation
        );
    }
    let _ = writeln!(
        s,
        "\n{params} parameters (int8 weights + int32 biases), {:.1} M MACs per part, arena {} bytes (streaming rows), blob {} bytes.\n",
        macs as f64 / 1e6,
        m.desc.arena_bytes,
        blob.len()
    );
    s
}

/// How the float network was trained (and what it was fine-tuned from).
fn training_section(record: Option<&TrainingRecord>, name: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "## Training\n");
    match record {
        Some(r) => {
            if let Some(source) = &r.source {
                let _ = writeln!(s, "The float network (`trainer train`):\n");
                s += &float_training(source);
                let _ = writeln!(s, "Then `trainer finetune` from its export:\n");
            }
            if r.epochs_run > 0 || r.source.is_none() {
                s += &float_training(r);
            } else if r.qat.is_some() {
                let _ = writeln!(
                    s,
                    "- no further float epochs (`--epochs 0`): straight to the quantization-aware fine-tuning below.\n"
                );
            } else {
                let _ = writeln!(
                    s,
                    "- no further epochs (`--epochs 0 --qat-epochs 0`): the same float network, calibrated again on the {} training plates of `{}` and quantized by the rule below.\n",
                    r.train_plates, r.data
                );
            }
        }
        None => {
            let _ = writeln!(s, "No training record (`{name}.training.json`) beside the blob.\n");
        }
    }
    s
}

/// Post-training quantization, and the quantization-aware fine-tuning if any.
fn quantization_section(record: Option<&TrainingRecord>, logits: (f32, f32)) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "## Quantization\n\nBy the TFLite rules the engine runs: per-output-channel symmetric int8 weights (max |w| / 127), int32 biases at s_in·s_w, per-tensor asymmetric activations calibrated on the training plates (hidden layers: [0, 99.99th percentile]; logits: up to their maximum, from the bottom percentile of {:?} whose engine class map differs from the float argmax on the fewest calibration pixels — here [{:.2}, {:.2}]), requantization multipliers from the engine's own `quantize_multiplier`.\n",
        tqc_learn::export::quantize::LOGIT_PERCENTILES,
        logits.0,
        logits.1
    );
    match record.and_then(|r| r.qat.as_ref()) {
        Some(q) => {
            let _ = writeln!(
                s,
                "Quantization-aware fine-tuning (`--qat-epochs {}`, peak learning rate {}): the forward pass rounded as the engine rounds (weights per channel, activations on their calibrated grids, straight-through gradients), the ranges calibrated before it and kept in the blob. Int8-simulated validation score (mean defect IoU): {:.3} after post-training quantization; best of {} quantization-aware epochs: epoch {}, {:.3} — {}; {:.0} s.\n",
                q.epochs_planned,
                q.learning_rate,
                q.start_score,
                q.epochs_run,
                q.best_epoch,
                q.best_score,
                if q.improved {
                    "better, so the fine-tuned network ships"
                } else {
                    "not better, so the post-training-quantized network ships"
                },
                q.wall_time_s
            );
        }
        None => {
            let _ = writeln!(s, "Post-training only (no quantization-aware fine-tuning).\n");
        }
    }
    s
}

/// The held-out plates: the evaluation table and the goals.
fn metrics_section(e: &ModelEvaluation, split: Split) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "## Metrics on the held-out {split} plates\n");
    let _ = writeln!(s, "{} plates; pixel metrics pooled over all of them.\n", e.plates.len());
    s += &e.table();
    let _ = writeln!(
        s,
        "\nFloat and int8 CNN classes differ on {:.4} % of the pixels. Baselines flag defects without a class, so they have no per-class IoU.\n",
        100.0 * e.float_int8_disagreement
    );
    if let Some(q) = e.qdq_vs_engine {
        let _ = writeln!(
            s,
            "The int8 ONNX file (QDQ, run by tract) against the engine on these plates' features: same class on {:.4} % of the pixels, every logit within 1 LSB on {:.4} %.\n",
            100.0 * q.same_class,
            100.0 * q.within_1_lsb
        );
    }
    if let Some(int8) = e.methods.iter().find(|m| m.method.starts_with("CNN int8")) {
        let best_baseline = e
            .methods
            .iter()
            .filter(|m| m.iou.is_none())
            .map(|m| m.iou_defect)
            .fold(0.0, f64::max);
        let iou = int8.iou.unwrap_or_default();
        let _ = writeln!(
            s,
            "Against the goals (int8, the device's model): subsurface IoU {:.3} (goal ≥ 0.8), surface IoU {:.3} (goal ≥ 0.8), false FAIL on sound plates {}/{} = {:.1} % (goal ≤ 1 %), any-defect IoU {:.3} against the best baseline's {:.3}.\n",
            iou[1],
            iou[2],
            int8.false_fails,
            int8.sound_plates,
            100.0 * int8.false_fail_rate(),
            int8.iou_defect,
            best_baseline
        );
    }
    s
}

/// The reference plate, defect by defect.
fn reference_section(blob: &[u8]) -> Result<String> {
    let mut s = String::new();
    let (rows, verdict) = reference_rows(blob)?;
    let _ = writeln!(
        s,
        "## Reference plate (`gfrp-reference`, seed 1)\n\nVerdict: {verdict}.\n"
    );
    s += &rows;
    let _ = writeln!(
        s,
        "\nThe detectability table in README.md says which of these holes any method can see at this station (peak contrast over NETD).\n"
    );
    Ok(s)
}

/// The int8 depth output on the held-out plates, per depth band.
fn depth_section(model: &Path, data: &Path, split: Split) -> Result<String> {
    let (train, held) = (split_dirs(data, Split::Train)?, split_dirs(data, split)?);
    let report = super::depth::engine_report(model, data, split, &train, &held)?;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "## Depth on the held-out {split} plates\n\nThe int8 depth output as the device computes it (`trainer depth-head --model {}`); a defect's estimate is the median over its pixels the class map flags, the figure a station region reports.\n",
        model.display()
    );
    let table = super::depth::table(&report, split, &super::depth::plate_names(&held), None);
    // The bands, not the per-defect list (that is the command's).
    let bands: String = table.split("\n\n").take(3).collect::<Vec<_>>().join("\n\n");
    let _ = writeln!(s, "{bands}\n");
    Ok(s)
}

fn limits_section(depth: bool) -> String {
    format!(
        "## Limits\n\nTrained on simulated GFRP plates only (one column per pixel, adiabatic hole bottoms, linearized radiation); real recordings need fine-tuning (`trainer finetune`) on labelled parts. {}\n",
        if depth {
            "Depth is trained on in-depth defect pixels only: a surface spot's region carries no depth, and a sound region's depth means nothing."
        } else {
            "No depth head: the class map says subsurface, not how deep (`trainer depth-head` measures what a 1×1 head on this trunk reaches; README.md gives the figures)."
        }
    )
}
