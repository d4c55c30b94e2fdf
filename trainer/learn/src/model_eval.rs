//! A shipped model on held-out plates, side by side: the CNN in float (the exported ONNX
//! through tract), the CNN in int8 (the blob through the shared engine — the device's
//! bytes) and the classical baselines, scored against the ground truth.
//!
//! Pixel metrics pool the confusion counts of all plates. Baselines flag "defect" without
//! a class, so the common ground is the IoU of sound and of any-defect; the CNN also gets
//! its per-class IoU. Verdicts of every method go through the same region rule
//! ([`VerdictConfig`]): a sound plate called FAIL is a false FAIL.

use std::path::{Path, PathBuf};
use tqc_shared::inspection::AcquisitionLimits;

use serde::Serialize;
use tqc_shared::verdict::{Verdict, VerdictConfig, inspect};

use crate::cnn::{CLASSES, confusion};
use crate::onnx_run::{OnnxModel, argmax_chw};
use tqc_data::sequence::{ReadOptions, Sequence};
use tqc_eval::baseline::{self, Method, Params};
use tqc_eval::infer::{MAX_REGIONS, infer};
use tqc_eval::score::{Footprint, components, evaluate, footprints_of};

/// Pooled scores of one method.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct MethodScore {
    pub method: String,
    /// `[true][predicted]` pixel counts (baselines: classes 0 and 1 only).
    pub confusion: [[u64; CLASSES]; CLASSES],
    /// Per-class IoU (None for baselines, which do not classify).
    pub iou: Option<[f64; CLASSES]>,
    pub iou_sound: f64,
    pub iou_defect: f64,
    pub defects_found: usize,
    pub defects: usize,
    pub sound_plates: usize,
    pub false_fails: usize,
    pub defect_plates: usize,
    pub missed_parts: usize,
}

impl MethodScore {
    fn new(method: &str) -> Self {
        MethodScore {
            method: method.into(),
            ..Default::default()
        }
    }

    fn add(
        &mut self,
        map: &[u8],
        labels: &[u8],
        footprints: &[Footprint],
        (width, height): (usize, usize),
        cfg: &VerdictConfig,
    ) {
        let m = confusion(map, labels);
        for (a, b) in self.confusion.iter_mut().zip(m) {
            for (x, y) in a.iter_mut().zip(b) {
                *x += y;
            }
        }
        let e = evaluate(map, labels, footprints, None);
        self.defects += e.defects.len();
        self.defects_found += e.found;
        let mut work = map.to_vec();
        let mut stack = vec![0u32; work.len()];
        let verdict = inspect::<MAX_REGIONS>(&mut work, width, height, &mut stack, cfg).map(|f| f.verdict);
        let defective = labels.iter().any(|&l| l != 0);
        if defective {
            self.defect_plates += 1;
            self.missed_parts += usize::from(verdict != Ok(Verdict::Fail));
        } else {
            self.sound_plates += 1;
            self.false_fails += usize::from(verdict != Ok(Verdict::Pass));
        }
    }

    fn finish(&mut self, classified: bool) {
        let m = &self.confusion;
        let iou = |pred: &dyn Fn(usize) -> bool, truth: &dyn Fn(usize) -> bool| {
            let (mut inter, mut union) = (0u64, 0u64);
            for (t, row) in m.iter().enumerate() {
                for (p, &n) in row.iter().enumerate() {
                    inter += n * u64::from(pred(p) && truth(t));
                    union += n * u64::from(pred(p) || truth(t));
                }
            }
            if union == 0 { 1.0 } else { inter as f64 / union as f64 }
        };
        self.iou_sound = iou(&|p| p == 0, &|t| t == 0);
        self.iou_defect = iou(&|p| p != 0, &|t| t != 0);
        if classified {
            let mut per = [0.0; CLASSES];
            for (c, v) in per.iter_mut().enumerate() {
                *v = iou(&|p| p == c, &|t| t == c);
            }
            self.iou = Some(per);
        }
    }

    pub fn false_fail_rate(&self) -> f64 {
        self.false_fails as f64 / self.sound_plates.max(1) as f64
    }
}

/// Scores of every method on a set of plates.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ModelEvaluation {
    pub plates: Vec<String>,
    pub methods: Vec<MethodScore>,
    /// Pixels where float and int8 CNN classes differ, over all pixels.
    pub float_int8_disagreement: f64,
    /// The int8 ONNX file (QDQ, through tract) against the engine on the same features,
    /// when that file was given.
    pub qdq_vs_engine: Option<QdqAgreement>,
}

/// How closely the int8 ONNX file reproduces the engine, over all pixels.
#[derive(Clone, Copy, Debug, Serialize, PartialEq)]
pub struct QdqAgreement {
    /// Share of pixels with the same class.
    pub same_class: f64,
    /// Share of pixels whose every int8 logit is within 1 LSB of the engine's.
    pub within_1_lsb: f64,
}

#[derive(Debug, thiserror::Error)]
pub enum ModelEvalError {
    #[error(transparent)]
    Sequence(#[from] tqc_data::SequenceError),
    #[error(transparent)]
    Infer(#[from] tqc_eval::infer::InferError),
    #[error(transparent)]
    Onnx(#[from] crate::onnx_run::OnnxError),
    #[error(transparent)]
    Score(#[from] tqc_eval::score::ScoreError),
    #[error(transparent)]
    Meta(#[from] tqc_data::recording::MetaError),
    #[error("{dir}: no labels.npy, nothing to score against")]
    NoLabels { dir: PathBuf },
    #[error("{dir}: baseline {method:?}")]
    Baseline {
        dir: PathBuf,
        method: Method,
        source: baseline::BaselineError,
    },
    #[error("no plates to evaluate")]
    NoPlates,
}

/// Evaluates the blob (and, when given, the float ONNX) and the baselines on `dirs`;
/// with the int8 ONNX file it also measures how closely that file reproduces the engine.
pub fn evaluate_model(
    blob: &[u8],
    float_onnx: Option<&Path>,
    int8_onnx: Option<&Path>,
    dirs: &[PathBuf],
    cfg: &VerdictConfig,
    mut progress: impl FnMut(usize),
) -> Result<ModelEvaluation, ModelEvalError> {
    if dirs.is_empty() {
        return Err(ModelEvalError::NoPlates);
    }
    let model = tqc_shared::blob::decode(blob).map_err(tqc_eval::infer::InferError::from)?;
    let quant = model.desc.input.quant;
    let input = model.desc.input.shape;
    let load = |p: &Path| OnnxModel::load(p, input.channels as usize, input.height as usize, input.width as usize);
    let float = float_onnx.map(load).transpose()?;
    let qdq = int8_onnx.map(load).transpose()?;
    // The logits are the first output (a network with depth has a second, later layer).
    let q_out = model.outputs().first().map(|&t| model.tensor_quant(t as usize));
    let (mut qdq_same, mut qdq_within, mut qdq_total) = (0usize, 0usize, 0usize);
    let methods = [Method::Contrast, Method::Pct, Method::Ppt, Method::Tsr];
    let mut int8 = MethodScore::new("CNN int8 (engine)");
    let mut fl = MethodScore::new("CNN float (ONNX, tract)");
    let mut base: Vec<MethodScore> = methods.iter().map(|m| MethodScore::new(&format!("{m:?}"))).collect();
    let (mut differ, mut total) = (0usize, 0usize);
    for (i, dir) in dirs.iter().enumerate() {
        let seq = Sequence::open(dir, &ReadOptions::default())?;
        let labels = seq
            .labels
            .clone()
            .ok_or_else(|| ModelEvalError::NoLabels { dir: dir.clone() })?;
        let (w, h) = (seq.width, seq.height);
        let out = infer(blob, &seq, cfg, &AcquisitionLimits::DEFAULT)?;
        let footprints = footprints_of(dir)?.map_or_else(|| components(&labels, None, w, h), |(f, _)| f);
        int8.add(&out.classes, &labels, &footprints, (w, h), cfg);
        let px = w * h;
        let chw = tqc_eval::features::dequantize_chw(&out.features, input.channels as usize, quant);
        if let (Some(m), Some(q)) = (&qdq, q_out) {
            let classes = out.class_names.len();
            let logits = m.logits(&chw)?;
            for (p, (&engine_class, qdq_class)) in out.classes.iter().zip(argmax_chw(&logits, classes)).enumerate() {
                qdq_same += usize::from(engine_class == qdq_class);
                qdq_within += usize::from((0..classes).all(|k| {
                    let v = ((logits[k * px + p] / q.scale).round() as i32 + q.zero_point as i32).clamp(-128, 127);
                    (v - out.logits[p * classes + k] as i32).abs() <= 1
                }));
            }
            qdq_total += px;
        }
        if let Some(f) = &float {
            let classes = argmax_chw(&f.logits(&chw)?, out.class_names.len());
            differ += classes.iter().zip(&out.classes).filter(|(a, b)| a != b).count();
            total += px;
            fl.add(&classes, &labels, &footprints, (w, h), cfg);
        }
        let params = Params {
            start_s: tqc_data::recording::heating_end(dir)?.unwrap_or(0.0),
            threshold: 4.0,
            tsr_degree: 5,
            components: 4,
        };
        for (m, score) in methods.iter().zip(base.iter_mut()) {
            let o = baseline::run(&seq, *m, &params).map_err(|source| ModelEvalError::Baseline {
                dir: dir.clone(),
                method: *m,
                source,
            })?;
            score.add(&o.map, &labels, &footprints, (w, h), cfg);
        }
        progress(i + 1);
    }
    int8.finish(true);
    let mut methods_out = Vec::new();
    if float.is_some() {
        fl.finish(true);
        methods_out.push(fl);
    }
    methods_out.push(int8);
    for mut b in base {
        b.finish(false);
        methods_out.push(b);
    }
    Ok(ModelEvaluation {
        plates: dirs.iter().map(|d| d.display().to_string()).collect(),
        methods: methods_out,
        float_int8_disagreement: differ as f64 / total.max(1) as f64,
        qdq_vs_engine: qdq.map(|_| QdqAgreement {
            same_class: qdq_same as f64 / qdq_total.max(1) as f64,
            within_1_lsb: qdq_within as f64 / qdq_total.max(1) as f64,
        }),
    })
}

impl ModelEvaluation {
    /// The table as Markdown.
    pub fn table(&self) -> String {
        let mut s = String::from(
            "| method | IoU sound | IoU subsurface | IoU surface | IoU any defect | defects found | false FAIL (sound plates) | missed parts |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n",
        );
        for m in &self.methods {
            let (a, b) = m.iou.map_or(("–".to_string(), "–".to_string()), |v| {
                (format!("{:.3}", v[1]), format!("{:.3}", v[2]))
            });
            s += &format!(
                "| {} | {:.3} | {a} | {b} | {:.3} | {}/{} | {}/{} | {}/{} |\n",
                m.method,
                m.iou_sound,
                m.iou_defect,
                m.defects_found,
                m.defects,
                m.false_fails,
                m.sound_plates,
                m.missed_parts,
                m.defect_plates
            );
        }
        s
    }
}
