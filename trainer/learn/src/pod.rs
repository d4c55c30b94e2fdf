//! A POD study's per-plate work: every method on one plate of an evaluation set — the
//! CNN in int8 (the blob through the shared engine, the device's bytes), the CNN in float
//! (the exported ONNX through tract) and the four classical methods — scored by
//! [`tqc_eval::pod::study::method_outcome`] over each method's threshold sweep. Outcomes
//! are written one file per plate, so a study runs as shards and resumes where it
//! stopped; [`run_study`] does the plates of one shard, [`read_outcomes`] collects them.

use std::path::{Path, PathBuf};

use rayon::prelude::*;
use tqc_data::index::{DatasetIndex, PlateEntry, Shard};
use tqc_data::io::{ReadJson, read_json, write_json};
use tqc_data::recording::RecordingMeta;
use tqc_data::sequence::{ReadOptions, Sequence};
use tqc_eval::baseline::{self, Method, Params};
use tqc_eval::infer::infer;
use tqc_eval::pod::study::{DefectTruth, OUTCOME_VERSION, PlateOutcome, PlateTruth, Sweep, method_outcome};
use tqc_shared::inspection::AcquisitionLimits;
use tqc_shared::verdict::VerdictConfig;
use tqc_sim::scene::Scene;

use crate::onnx_run::OnnxModel;

/// The methods of a study, in report order; the first is the reference the others are
/// compared at (its false-call rate).
pub const CNN_INT8: &str = "CNN int8 (engine)";
pub const CNN_FLOAT: &str = "CNN float (ONNX, tract)";
pub const BASELINES: [(Method, &str); 4] = [
    (Method::Contrast, "contrast"),
    (Method::Pct, "PCT"),
    (Method::Ppt, "PPT"),
    (Method::Tsr, "TSR"),
];

/// The CNN's sweep: the margin of its best defect logit over the sound logit; 0 is its
/// own class decision.
pub const CNN_MARGINS: [f64; 17] = [
    -8.0, -6.0, -4.0, -3.0, -2.0, -1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0,
];
/// The baselines' sweep: robust z-scores; 4 is their setting in `trainer baseline`.
pub const BASELINE_Z: [f64; 17] = [
    1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 5.0, 6.0, 7.0, 8.0, 10.0, 13.0, 16.0, 20.0, 25.0, 30.0, 40.0,
];

/// Every method name of a study, in report order.
pub fn method_names() -> Vec<String> {
    let mut v = vec![CNN_INT8.to_string(), CNN_FLOAT.to_string()];
    v.extend(BASELINES.iter().map(|(_, n)| n.to_string()));
    v
}

#[derive(Debug, thiserror::Error)]
pub enum PodError {
    #[error(transparent)]
    Index(#[from] tqc_data::index::IndexError),
    #[error(transparent)]
    Sequence(#[from] tqc_data::SequenceError),
    #[error(transparent)]
    Meta(#[from] tqc_data::recording::MetaError),
    #[error(transparent)]
    Infer(#[from] tqc_eval::infer::InferError),
    #[error(transparent)]
    Onnx(#[from] crate::onnx_run::OnnxError),
    #[error(transparent)]
    Write(#[from] tqc_data::io::WriteError),
    #[error("{dir}: no meta.json: a POD study needs the ground truth of simulated plates")]
    NoTruth { dir: PathBuf },
    #[error("{dir}: the specimen of meta.json does not build")]
    Scene {
        dir: PathBuf,
        #[source]
        source: tqc_sim::solver::SolverError,
    },
    #[error("{dir}: baseline {method:?}")]
    Baseline {
        dir: PathBuf,
        method: Method,
        #[source]
        source: baseline::BaselineError,
    },
    #[error("cannot read the model {path}")]
    ReadModel {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot create {path}")]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a plate outcome: {reason}")]
    Outcome { path: PathBuf, reason: String },
    #[error("{dir}: {missing} of {total} plates have no outcome yet (first: plate {first}); run the remaining shards")]
    Incomplete {
        dir: PathBuf,
        missing: usize,
        total: usize,
        first: usize,
    },
    #[error("plate {plate}")]
    Plate {
        plate: usize,
        #[source]
        source: Box<PodError>,
    },
}

/// The model a study runs: the blob and its float ONNX twin.
pub struct StudyModel {
    pub blob: Vec<u8>,
    pub float: OnnxModel,
    /// Identifies the model and sweep in every outcome file.
    pub provenance: String,
    /// Scale of the blob's output logits, to read them as float margins.
    output_scale: f32,
    /// Quantization and channel count of the blob's input, to give the float twin the
    /// same features the engine saw.
    input_quant: tqc_shared::model::QuantParams,
    input_channels: usize,
}

impl StudyModel {
    pub fn load(blob_path: &Path, float_onnx: &Path) -> Result<Self, PodError> {
        let blob = std::fs::read(blob_path).map_err(|source| PodError::ReadModel {
            path: blob_path.to_path_buf(),
            source,
        })?;
        // Decoded once; the description borrows the blob, so only its plain values leave.
        let (shape, input_quant, output_scale) = {
            let model = tqc_shared::blob::decode(&blob).map_err(tqc_eval::infer::InferError::from)?;
            // The logits are the first output, not necessarily the last layer.
            let scale = model
                .outputs()
                .first()
                .map_or(1.0, |&t| model.tensor_quant(t as usize).scale);
            (model.desc.input.shape, model.desc.input.quant, scale)
        };
        let float = OnnxModel::load(
            float_onnx,
            shape.channels as usize,
            shape.height as usize,
            shape.width as usize,
        )?;
        let onnx_len = std::fs::metadata(float_onnx).map(|m| m.len()).unwrap_or(0);
        // Bytes 12..16 of a blob are its payload CRC-32.
        let crc = blob
            .get(12..16)
            .map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
        Ok(StudyModel {
            provenance: format!(
                "blob crc32 {crc:08x} ({} bytes), float ONNX {onnx_len} bytes, outcome v{OUTCOME_VERSION}",
                blob.len()
            ),
            blob,
            float,
            output_scale,
            input_quant,
            input_channels: shape.channels as usize,
        })
    }
}

/// File of plate `plate`'s outcome under a study folder.
pub fn outcome_path(out: &Path, plate: usize) -> PathBuf {
    out.join("plates").join(format!("plate-{plate:05}.json"))
}

/// Every method on one plate.
pub fn plate_outcome(
    model: &StudyModel,
    data: &Path,
    entry: &PlateEntry,
    cfg: &VerdictConfig,
) -> Result<PlateOutcome, PodError> {
    let dir = data.join(&entry.dir);
    let seq = Sequence::open(&dir, &ReadOptions::default())?;
    let meta = RecordingMeta::find(&dir)?.ok_or_else(|| PodError::NoTruth { dir: dir.clone() })?;
    let scene = Scene::build(&meta.specimen, meta.seed).map_err(|source| PodError::Scene {
        dir: dir.clone(),
        source,
    })?;
    let (w, h) = (seq.width, seq.height);
    let pixel_m2 = scene.dx * scene.dy;
    // A defect too small to hold a pixel centre is not in the ground truth either.
    let seen: Vec<&tqc_sim::scene::DefectView> = scene.defects.iter().filter(|d| !d.pixels.is_empty()).collect();
    let netd = meta.specimen.station.camera.netd_k;
    let after_s = meta.heating_s() + 1.0 / meta.specimen.station.recording.frame_rate_hz;
    let defects: Vec<DefectTruth> = seen
        .iter()
        .map(|d| DefectTruth {
            kind: d.kind,
            diameter_mm: d.diameter_mm,
            depth_mm: d.depth_mm,
            pixels: d.pixels.len(),
            peak_contrast_netd: peak_contrast(&seq, &d.pixels, &d.ring, after_s).map(|c| c / netd),
        })
        .collect();
    let footprints: Vec<Vec<usize>> = seen.iter().map(|d| d.pixels.clone()).collect();
    let sound_px = scene.labels.iter().filter(|&&l| l == 0).count();
    let plate = PlateTruth {
        width: w,
        height: h,
        footprints: &footprints,
    };
    let cnn_sweep = Sweep {
        thresholds: &CNN_MARGINS,
        operating: CNN_MARGINS.iter().position(|&t| t == 0.0).unwrap_or(0),
    };
    let mut methods = Vec::new();

    // The CNN, int8 and float: margin of the best defect logit over sound, and the class
    // a flagged pixel gets.
    let out = infer(&model.blob, &seq, cfg, &AcquisitionLimits::DEFAULT)?;
    let classes = out.class_names.len();
    let scale = model.output_scale;
    let margins = |logit: &dyn Fn(usize, usize) -> f32| -> (Vec<f32>, Vec<u8>) {
        (0..w * h)
            .map(|p| {
                let (mut best, mut class) = (f32::MIN, 1u8);
                for c in 1..classes {
                    if logit(p, c) > best {
                        best = logit(p, c);
                        class = c as u8;
                    }
                }
                (best - logit(p, 0), class)
            })
            .unzip()
    };
    let (int8_margin, int8_class) = margins(&|p, c| out.logits[p * classes + c] as f32 * scale);
    methods.push(method_outcome(
        CNN_INT8,
        &int8_margin,
        &|i| int8_class[i],
        &plate,
        cnn_sweep,
        cfg,
    ));
    let chw = tqc_eval::features::dequantize_chw(&out.features, model.input_channels, model.input_quant);
    let float_logits = model.float.logits(&chw)?;
    let px = w * h;
    let (float_margin, float_class) = margins(&|p, c| float_logits[c * px + p]);
    methods.push(method_outcome(
        CNN_FLOAT,
        &float_margin,
        &|i| float_class[i],
        &plate,
        cnn_sweep,
        cfg,
    ));

    let params = Params {
        start_s: meta.heating_s(),
        threshold: 4.0,
        tsr_degree: 5,
        components: 4,
    };
    let z_sweep = Sweep {
        thresholds: &BASELINE_Z,
        operating: BASELINE_Z.iter().position(|&t| t == params.threshold).unwrap_or(0),
    };
    for (m, name) in BASELINES {
        let o = baseline::run(&seq, m, &params).map_err(|source| PodError::Baseline {
            dir: dir.clone(),
            method: m,
            source,
        })?;
        methods.push(method_outcome(name, &o.score, &|_| 1, &plate, z_sweep, cfg));
    }
    Ok(PlateOutcome {
        format_version: OUTCOME_VERSION,
        plate: entry.plate,
        dir: entry.dir.clone(),
        provenance: model.provenance.clone(),
        area_m2: (w * h) as f64 * pixel_m2,
        sound_area_m2: sound_px as f64 * pixel_m2,
        defects,
        methods,
    })
}

/// The largest local contrast (K) of a footprint over its sound ring in the frames from
/// `after_s` on — after the heating, when the emissivity texture under a footprint no
/// longer passes for contrast — by magnitude (a surface spot may be darker); `None`
/// without a ring or a frame.
pub fn peak_contrast(seq: &Sequence, pixels: &[usize], ring: &[usize], after_s: f64) -> Option<f64> {
    if pixels.is_empty() || ring.is_empty() {
        return None;
    }
    let mean = |frame: &[f32], at: &[usize]| {
        at.iter()
            .filter_map(|&i| frame.get(i))
            .map(|&v| f64::from(v))
            .sum::<f64>()
            / at.len() as f64
    };
    (0..seq.frames)
        .filter(|&k| seq.times.get(k).is_some_and(|&t| t >= after_s))
        .map(|k| {
            let frame = seq.frame(k);
            mean(frame, pixels) - mean(frame, ring)
        })
        .filter(|c| c.is_finite())
        .max_by(|a, b| a.abs().total_cmp(&b.abs()))
}

/// Reads an outcome file if it is there and was made by `provenance`.
fn cached(path: &Path, provenance: &str) -> Option<PlateOutcome> {
    match read_json::<PlateOutcome>(path) {
        Ok(o) if o.provenance == provenance && o.format_version == OUTCOME_VERSION => Some(o),
        _ => None,
    }
}

/// Computes the outcomes of shard `shard` of the evaluation set `data` into `out/plates/`
/// (skipping plates whose outcome of this model is already there); `progress(done,
/// total)` after each plate. Returns how many plates were computed.
pub fn run_study(
    model: &StudyModel,
    data: &Path,
    out: &Path,
    shard: Shard,
    cfg: &VerdictConfig,
    progress: impl Fn(usize, usize) + Sync,
) -> Result<usize, PodError> {
    let index = DatasetIndex::read(data)?;
    let mine: Vec<&PlateEntry> = shard.plates(index.plates.len()).map(|i| &index.plates[i]).collect();
    let todo: Vec<&PlateEntry> = mine
        .into_iter()
        .filter(|e| cached(&outcome_path(out, e.plate), &model.provenance).is_none())
        .collect();
    let total = todo.len();
    let plates = out.join("plates");
    std::fs::create_dir_all(&plates).map_err(|source| PodError::CreateDir { path: plates, source })?;
    let done = std::sync::atomic::AtomicUsize::new(0);
    todo.par_iter()
        .map(|entry| -> Result<(), PodError> {
            let in_plate = |e: PodError| PodError::Plate {
                plate: entry.plate,
                source: Box::new(e),
            };
            let o = plate_outcome(model, data, entry, cfg).map_err(in_plate)?;
            // Atomic: a killed or retried shard leaves whole files only.
            write_json(&outcome_path(out, entry.plate), &o).map_err(|e| in_plate(e.into()))?;
            progress(done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1, total);
            Ok(())
        })
        .collect::<Result<Vec<()>, _>>()?;
    Ok(total)
}

/// The outcomes of every plate of `data` in `out/plates/`, all made by `provenance`.
pub fn read_outcomes(data: &Path, out: &Path, provenance: &str) -> Result<Vec<PlateOutcome>, PodError> {
    let index = DatasetIndex::read(data)?;
    let mut outcomes = Vec::with_capacity(index.plates.len());
    let mut missing = Vec::new();
    for e in &index.plates {
        let path = outcome_path(out, e.plate);
        match read_json::<PlateOutcome>(&path) {
            Ok(o) if o.provenance == provenance => outcomes.push(o),
            Ok(_) | Err(ReadJson::Io(_)) => missing.push(e.plate),
            Err(ReadJson::Parse(reason)) => return Err(PodError::Outcome { path, reason }),
        }
    }
    if let Some(&first) = missing.first() {
        return Err(PodError::Incomplete {
            dir: out.to_path_buf(),
            missing: missing.len(),
            total: index.plates.len(),
            first,
        });
    }
    Ok(outcomes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tqc_data::specimen::Specimen;

    #[test]
    fn a_brighter_spot_has_a_peak_contrast_and_its_own_ring_none() {
        let text = include_str!("../../fixtures/small-part.toml");
        let specimen = Specimen::parse(text, "small.toml").unwrap();
        let dir = tempfile::tempdir().unwrap();
        tqc_sim::simulate_to_dir(&specimen, 5, tqc_sim::WallClock::Record, dir.path(), |_, _| {}).unwrap();
        let seq = Sequence::open(dir.path(), &ReadOptions::default()).unwrap();
        let meta = RecordingMeta::find(dir.path()).unwrap().unwrap();
        let scene = Scene::build(&meta.specimen, meta.seed).unwrap();
        let after = meta.heating_s() + 1.0 / meta.specimen.station.recording.frame_rate_hz;
        let netd = meta.specimen.station.camera.netd_k;
        let spot = scene.defects.iter().find(|d| !d.kind.in_depth()).unwrap();
        // Absorptivity × 1.1 on a 4 kW/m² step: well above the 0.05 K NETD, and warmer.
        let c = peak_contrast(&seq, &spot.pixels, &spot.ring, after).unwrap();
        assert!(c / netd > 3.0, "spot: {c} K");
        // The ring against itself: only the frames' rounding.
        let flat = peak_contrast(&seq, &spot.ring, &spot.ring, after).unwrap();
        assert!(flat.abs() < 1e-9, "{flat}");
        // Before any frame after the recording: nothing to measure.
        assert_eq!(peak_contrast(&seq, &spot.pixels, &spot.ring, 1e9), None);
        assert_eq!(peak_contrast(&seq, &spot.pixels, &[], after), None);
    }
}
