//! Runs a specimen through the simulator and writes the recording:
//! `sequence.npy` (frames × height × width, f32 kelvin), `times.npy` (f64 s from the start
//! of heating; pre-heating frames are negative), `labels.npy` (u8 per pixel),
//! `depth.npy` (f32 mm), `meta.json`, and PNG previews. Frames are written as they are
//! produced; every file is written under a temporary name and renamed when complete, so
//! an interrupted run leaves no half-written file behind.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use npyz::WriterBuilder;
use serde::Serialize;

use crate::sim::camera::Camera;
use crate::sim::scene::Scene;
use crate::sim::schedule::Stepper;
use crate::sim::solver::Solver;
use crate::specimen::Specimen;

/// Format version of the written recordings.
pub const RECORDING_VERSION: u32 = 1;

/// What a run measured.
#[derive(Clone, Debug, Serialize)]
pub struct RunStats {
    pub frames: usize,
    pub steps: u64,
    pub z_nodes: usize,
    pub cell_updates: u64,
    pub wall_s: f64,
    pub cell_updates_per_s: f64,
}

/// The recording in memory-light form for previews: the surface contrast of every
/// defect and the reference over time, and a few frames.
pub struct Recorded {
    pub times: Vec<f64>,
    /// Local contrast of each defect per frame: footprint mean minus its sound ring.
    pub defect_contrast: Vec<Vec<f32>>,
    /// (frame index, frame) kept for previews.
    pub snapshots: Vec<(usize, Vec<f32>)>,
    /// Frame with the largest mean absolute defect contrast, and that frame.
    pub best: Option<(usize, Vec<f32>)>,
    /// Mean of the pre-heating frames (cold reference).
    pub cold: Vec<f32>,
}

fn frame_times(spec: &Specimen) -> Vec<f64> {
    let r = &spec.station.recording;
    let period = 1.0 / r.frame_rate_hz;
    let pre = (0..r.preheat_frames).map(|i| -((r.preheat_frames - i) as f64) * period);
    let n = (r.duration_s * r.frame_rate_hz).floor() as usize;
    pre.chain((0..=n).map(|k| k as f64 * period)).collect()
}

/// Simulates `spec`, streaming frames to `on_frame(index, time, frame)`.
pub fn run(
    spec: &Specimen,
    seed: u64,
    mut on_frame: impl FnMut(usize, f64, &[f32]) -> Result<()>,
    mut progress: impl FnMut(usize, usize),
) -> Result<(Scene, RunStats)> {
    let started = Instant::now();
    let scene = Scene::build(spec, seed)?;
    let mut solver = Solver::new(
        scene.width,
        scene.height,
        scene.dx,
        scene.dy,
        scene.grid.clone(),
        scene.columns.clone(),
        scene.thermal,
    )?;
    let times = frame_times(spec);
    let period = 1.0 / spec.station.recording.frame_rate_hz;
    let mut stepper = Stepper::new(scene.pulse, period);
    let pixels = scene.width * scene.height;
    let mut camera = Camera::new(&spec.station.camera, spec.station.environment.ambient_k, pixels, seed);
    let mut rise = vec![0.0; pixels];
    let mut frame = vec![0.0f32; pixels];
    let mut last_t = times.first().copied().unwrap_or(0.0);
    for (k, &t) in times.iter().enumerate() {
        if t > 0.0 {
            stepper.advance(&mut solver, t);
            solver.surface_into(&mut rise);
        }
        camera.frame(k as u64, t - last_t, &rise, &scene.emissivity_gain, &mut frame);
        last_t = t;
        on_frame(k, t, &frame)?;
        progress(k + 1, times.len());
    }
    let wall = started.elapsed().as_secs_f64();
    let stats = RunStats {
        frames: times.len(),
        steps: stepper.steps,
        z_nodes: scene.grid.nodes(),
        cell_updates: solver.cell_updates,
        wall_s: wall,
        cell_updates_per_s: solver.cell_updates as f64 / wall.max(1e-9),
    };
    Ok((scene, stats))
}

#[derive(Serialize)]
struct Meta<'a> {
    format_version: u32,
    simulator: &'static str,
    seed: u64,
    width: usize,
    height: usize,
    frames: usize,
    units: Units,
    classes: [&'static str; 3],
    specimen: &'a Specimen,
    stats: &'a RunStats,
}

#[derive(Serialize)]
struct Units {
    sequence: &'static str,
    times: &'static str,
    depth: &'static str,
}

/// Writes `path` through a temporary file renamed on success.
fn commit(tmp: &Path, path: &Path) -> Result<()> {
    std::fs::rename(tmp, path).with_context(|| format!("cannot move {} to {}", tmp.display(), path.display()))
}

fn tmp_name(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".partial");
    PathBuf::from(s)
}

fn write_npy<T: npyz::AutoSerialize + Copy>(path: &Path, shape: &[u64], data: &[T]) -> Result<()> {
    let tmp = tmp_name(path);
    let file = File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    let mut w = npyz::WriteOptions::new()
        .default_dtype()
        .shape(shape)
        .writer(BufWriter::new(file))
        .begin_nd()?;
    w.extend(data.iter().copied())?;
    w.finish()?;
    commit(&tmp, path)
}

/// Simulates and writes everything into `out`; returns the statistics and what the
/// previews need.
pub fn simulate_to_dir(
    spec: &Specimen,
    seed: u64,
    out: &Path,
    progress: impl FnMut(usize, usize),
) -> Result<(Scene, RunStats, Recorded)> {
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let times = frame_times(spec);
    let [w, h] = [
        spec.station.camera.pixels[0] as usize,
        spec.station.camera.pixels[1] as usize,
    ];
    let seq_path = out.join("sequence.npy");
    let seq_tmp = tmp_name(&seq_path);
    let file = File::create(&seq_tmp).with_context(|| format!("cannot create {}", seq_tmp.display()))?;
    let mut writer = npyz::WriteOptions::new()
        .default_dtype()
        .shape(&[times.len() as u64, h as u64, w as u64])
        .writer(BufWriter::new(file))
        .begin_nd()?;

    // The per-frame contrasts need the defect footprints during the run: the scene built
    // once more from the same seed (deterministic, cheap next to the simulation).
    let mut rec = Recorded {
        times: times.clone(),
        defect_contrast: Vec::new(),
        snapshots: Vec::new(),
        best: None,
        cold: vec![0.0; w * h],
    };
    let footprint = Scene::build(spec, seed)?;
    rec.defect_contrast = vec![Vec::with_capacity(times.len()); footprint.defects.len()];
    let preheat = spec.station.recording.preheat_frames as usize;
    let snapshot_at: Vec<usize> = {
        let n = times.len();
        let mut v = vec![
            preheat,
            preheat + (n - preheat) / 20,
            preheat + (n - preheat) / 4,
            n - 1,
        ];
        v.dedup();
        v
    };
    let mut best_score = f64::MIN;
    let mean_over = |frame: &[f32], idx: &[usize]| -> f32 {
        if idx.is_empty() {
            return f32::NAN;
        }
        (idx.iter().map(|&i| frame[i] as f64).sum::<f64>() / idx.len() as f64) as f32
    };
    let (scene, stats) = run(
        spec,
        seed,
        |k, _t, frame| {
            writer.extend(frame.iter().copied())?;
            // The best frame for a contrast image: largest summed local contrast of the
            // in-depth defects (surface ones peak at the end of heating anyway).
            let mut score = 0.0;
            for (d, contrast) in footprint.defects.iter().zip(rec.defect_contrast.iter_mut()) {
                let c = mean_over(frame, &d.pixels) - mean_over(frame, &d.ring);
                contrast.push(c);
                if c.is_finite() && d.class != crate::sim::scene::SURFACE {
                    score += c.max(0.0) as f64;
                }
            }
            if k < preheat {
                for (c, &v) in rec.cold.iter_mut().zip(frame) {
                    *c += v / preheat as f32;
                }
            }
            if snapshot_at.contains(&k) {
                rec.snapshots.push((k, frame.to_vec()));
            }
            if k >= preheat && score > best_score {
                best_score = score;
                rec.best = Some((k, frame.to_vec()));
            }
            Ok(())
        },
        progress,
    )?;
    writer.finish()?;
    commit(&seq_tmp, &seq_path)?;
    write_npy(&out.join("times.npy"), &[times.len() as u64], &times)?;
    write_npy(&out.join("labels.npy"), &[h as u64, w as u64], &scene.labels)?;
    write_npy(&out.join("depth.npy"), &[h as u64, w as u64], &scene.depth_mm)?;
    let meta = Meta {
        format_version: RECORDING_VERSION,
        simulator: concat!("thermoqc-trainer ", env!("CARGO_PKG_VERSION")),
        seed,
        width: w,
        height: h,
        frames: times.len(),
        units: Units {
            sequence: "kelvin, f32, frames x height x width",
            times: "seconds from the start of heating, f64 (pre-heating frames negative)",
            depth: "mm from the inspected face; 0 for surface defects; NaN where sound",
        },
        classes: ["sound", "subsurface", "surface"],
        specimen: spec,
        stats: &stats,
    };
    let meta_path = out.join("meta.json");
    let tmp = tmp_name(&meta_path);
    std::fs::write(&tmp, serde_json::to_string_pretty(&meta)?)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    commit(&tmp, &meta_path)?;
    Ok((scene, stats, rec))
}

/// Heating duration recorded in a simulated recording's meta.json, if any.
pub fn heating_end(dir: &Path) -> Option<f64> {
    let meta: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("meta.json")).ok()?).ok()?;
    meta["specimen"]["station"]["heating"]["duration_s"].as_f64()
}
