//! Runs a specimen through the simulator and writes the recording:
//! `sequence.npy` (frames × height × width, f32 kelvin), `times.npy` (f64 s from the start
//! of heating; pre-heating frames are negative), `labels.npy` (u8 per pixel),
//! `depth.npy` (f32 mm), `meta.json`, and PNG previews. Frames are written as they are
//! produced; every file is written under a temporary name and renamed when complete, so
//! an interrupted run leaves no half-written file behind.

use std::path::Path;
use std::time::Instant;

use tqc_data::io::{NpyStream, write_npy};
use tqc_data::recording::{RECORDING_VERSION, RecordingMeta, RunStats, Units};
use tqc_data::{Class, Specimen};

use crate::SimError;
use crate::camera::Camera;
use crate::scene::Scene;
use crate::schedule::Stepper;
use crate::solver::Solver;

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
    /// Unfinished files of an interrupted earlier run in the folder, removed first.
    pub interrupted: Vec<std::path::PathBuf>,
}

fn frame_times(spec: &Specimen) -> Vec<f64> {
    let r = &spec.station.recording;
    let period = 1.0 / r.frame_rate_hz;
    let pre = (0..r.preheat_frames).map(|i| -((r.preheat_frames - i) as f64) * period);
    let n = (r.duration_s * r.frame_rate_hz).floor() as usize;
    pre.chain((0..=n).map(|k| k as f64 * period)).collect()
}

/// Whether `meta.json` records the run's wall-clock time (dataset plates leave it out,
/// so that a plate is the same bytes wherever and whenever it is simulated).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WallClock {
    Record,
    Omit,
}

/// Simulates `spec`, streaming frames to `on_frame(index, time, frame)`.
pub fn run(
    spec: &Specimen,
    seed: u64,
    clock: WallClock,
    mut on_frame: impl FnMut(usize, f64, &[f32]) -> Result<(), SimError>,
    mut progress: impl FnMut(usize, usize),
) -> Result<(Scene, RunStats), SimError> {
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
        wall_s: (clock == WallClock::Record).then_some(wall),
        cell_updates_per_s: (clock == WallClock::Record).then(|| solver.cell_updates as f64 / wall.max(1e-9)),
    };
    Ok((scene, stats))
}

/// Simulates and writes everything into `out`; returns the statistics and what the
/// previews need.
pub fn simulate_to_dir(
    spec: &Specimen,
    seed: u64,
    clock: WallClock,
    out: &Path,
    progress: impl FnMut(usize, usize),
) -> Result<(Scene, RunStats, Recorded), SimError> {
    std::fs::create_dir_all(out).map_err(|source| SimError::CreateDir {
        path: out.to_path_buf(),
        source,
    })?;
    let interrupted = tqc_data::io::remove_partials(out)?;
    let times = frame_times(spec);
    let [w, h] = [
        spec.station.camera.pixels[0] as usize,
        spec.station.camera.pixels[1] as usize,
    ];
    let mut writer = NpyStream::create(&out.join("sequence.npy"), &[times.len() as u64, h as u64, w as u64])?;

    // The per-frame contrasts need the defect footprints during the run: the scene built
    // once more from the same seed (deterministic, cheap next to the simulation).
    let mut rec = Recorded {
        times: times.clone(),
        defect_contrast: Vec::new(),
        snapshots: Vec::new(),
        best: None,
        cold: vec![0.0; w * h],
        interrupted,
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
        clock,
        |k, _t, frame| {
            writer.extend(frame.iter().copied())?;
            // The best frame for a contrast image: largest summed local contrast of the
            // in-depth defects (surface ones peak at the end of heating anyway).
            let mut score = 0.0;
            for (d, contrast) in footprint.defects.iter().zip(rec.defect_contrast.iter_mut()) {
                let c = mean_over(frame, &d.pixels) - mean_over(frame, &d.ring);
                contrast.push(c);
                if c.is_finite() && d.class != crate::scene::SURFACE {
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
    write_npy(&out.join("times.npy"), &[times.len() as u64], &times)?;
    write_npy(&out.join("labels.npy"), &[h as u64, w as u64], &scene.labels)?;
    write_npy(&out.join("depth.npy"), &[h as u64, w as u64], &scene.depth_mm)?;
    let meta = RecordingMeta {
        format_version: RECORDING_VERSION,
        simulator: concat!("thermoqc-trainer ", env!("CARGO_PKG_VERSION")).to_string(),
        seed,
        width: w,
        height: h,
        frames: times.len(),
        units: Units::simulated(),
        classes: Class::ALL,
        specimen: spec.clone(),
        stats: stats.clone(),
    };
    meta.write(out)?;
    Ok((scene, stats, rec))
}
