//! `trainer simulate`: run a specimen, write the recording and its previews, print what
//! was measured.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::preview::{self, Raster};
use tqc_data::Specimen;
use tqc_sim::scene::SURFACE;
use tqc_sim::simulate_to_dir;

pub fn run(specimen: &str, out: &Path, seed: u64) -> Result<()> {
    let spec = Specimen::load(specimen)?;
    let bar = crate::progress::bar(0, &format!("simulating {}", spec.name), "frames");
    let (scene, stats, rec) = simulate_to_dir(&spec, seed, tqc_sim::WallClock::Record, out, |done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    })?;
    bar.finish_and_clear();
    let (w, h) = (scene.width, scene.height);
    let previews = out.join("previews");
    let mut interrupted = rec.interrupted.clone();
    interrupted.extend(tqc_data::io::remove_partials(&previews)?);
    crate::progress::say_interrupted(&interrupted);
    std::fs::create_dir_all(&previews).with_context(|| format!("cannot create {}", previews.display()))?;
    let px_mm = scene.dx * 1e3;
    for (k, frame) in &rec.snapshots {
        let name = format!("frame-{k:05}-t{:.1}s.png", rec.times[*k]);
        let raster = Raster {
            values: frame,
            width: w,
            height: h,
        };
        preview::image_png(&previews.join(name), &raster, preview::range(frame), &[], px_mm)?;
    }
    if let Some((k, frame)) = &rec.best {
        let contrast: Vec<f32> = frame.iter().zip(&rec.cold).map(|(a, b)| a - b).collect();
        let name = format!("contrast-best-t{:.1}s.png", rec.times[*k]);
        let raster = Raster {
            values: &contrast,
            width: w,
            height: h,
        };
        preview::image_png(
            &previews.join(name),
            &raster,
            preview::range(&contrast),
            &scene.defects,
            px_mm,
        )?;
    }
    if !scene.defects.is_empty() {
        preview::contrast_curves_png(
            &previews.join("contrast-curves.png"),
            &rec.times,
            &scene.defects,
            &rec.defect_contrast,
        )?;
    }

    println!("{} (seed {seed}) → {}", spec.name, out.display());
    println!(
        "  {} frames of {w}×{h}, {} z-nodes, {} time steps, {:.1} s wall, {:.2e} cell-updates/s",
        stats.frames,
        stats.z_nodes,
        stats.steps,
        stats.wall_s.unwrap_or(0.0),
        stats.cell_updates_per_s.unwrap_or(0.0)
    );
    if !scene.defects.is_empty() {
        let netd = spec.station.camera.netd_k;
        println!("\n  local contrast after the heating (footprint mean − surrounding sound ring):");
        println!(
            "  {:<44} {:>10} {:>10} {:>12}",
            "defect", "peak (K)", "at (s)", "peak / NETD"
        );
        for (d, m) in scene.defects.iter().zip(&rec.defect_contrast) {
            let (mut peak, mut at) = (0.0f32, 0.0);
            // After the heating: at its end the emissivity texture under a footprint
            // (multiplied by the largest rise) would pass for contrast.
            let after = scene.pulse.duration_s + 1.0 / spec.station.recording.frame_rate_hz;
            for (&c, &t) in m.iter().zip(&rec.times).filter(|(_, t)| **t >= after) {
                let better = if d.class == SURFACE {
                    c.abs() > peak.abs()
                } else {
                    c > peak
                };
                if c.is_finite() && better {
                    peak = c;
                    at = t;
                }
            }
            println!(
                "  {:<44} {:>10.3} {:>10.1} {:>12.1}",
                d.name,
                peak,
                at,
                peak as f64 / netd
            );
        }
    }
    Ok(())
}

/// The arguments of `trainer simulate`.
#[derive(clap::Args)]
pub struct SimulateArgs {
    /// A shipped specimen (gfrp-reference, gfrp-sound, cfrp-delaminations) or a
    /// specimen TOML file (format: trainer/specimens/*.toml and specimen.rs).
    #[arg(long)]
    specimen: String,
    /// Output folder (created if needed).
    #[arg(long)]
    out: PathBuf,
    /// Seed for the lamp profile, emissivity texture and camera noise.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

impl SimulateArgs {
    pub fn run(self) -> Result<()> {
        run(&self.specimen, &self.out, self.seed)
    }
}
