//! `trainer baseline`: classical processing of a recording into images and a defect map.

use std::path::{Path, PathBuf};

use super::ReadArgs;
use anyhow::{Context, Result};
use tqc_data::io::write_npy;

use crate::preview::{self, Raster};
use tqc_data::{ReadOptions, Sequence};
use tqc_eval::baseline::{self, Method, Params};

pub fn run(
    method: Method,
    sequence: &Path,
    out: &Path,
    read: &ReadOptions,
    mut params: Params,
    start: Option<f64>,
) -> Result<()> {
    let seq = Sequence::open(sequence, read).with_context(|| format!("reading {}", sequence.display()))?;
    params.start_s = match start {
        Some(s) => s,
        None => tqc_data::recording::heating_end(sequence)?.unwrap_or(0.0),
    };
    let result = baseline::run(&seq, method, &params)?;
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let (w, h) = (seq.width, seq.height);
    let shape = [h as u64, w as u64];
    for (name, img) in &result.images {
        write_npy(&out.join(format!("{name}.npy")), &shape, img)?;
        let raster = Raster {
            values: img,
            width: w,
            height: h,
        };
        preview::image_png(&out.join(format!("{name}.png")), &raster, preview::range(img), &[], 1.0)?;
    }
    write_npy(&out.join("score.npy"), &shape, &result.score)?;
    let raster = Raster {
        values: &result.score,
        width: w,
        height: h,
    };
    preview::image_png(
        &out.join("score.png"),
        &raster,
        (0.0, (2.0 * params.threshold) as f32),
        &[],
        1.0,
    )?;
    write_npy(&out.join("map.npy"), &shape, &result.map)?;
    let map_f: Vec<f32> = result.map.iter().map(|&m| m as f32).collect();
    let raster = Raster {
        values: &map_f,
        width: w,
        height: h,
    };
    preview::image_png(&out.join("map.png"), &raster, (0.0, 1.0), &[], 1.0)?;
    let flagged = result.map.iter().filter(|&&m| m != 0).count();
    println!(
        "{method:?} on {} ({} frames, window from {:.1} s): {} images, {flagged} pixels flagged above z = {} → {}",
        sequence.display(),
        seq.frames,
        params.start_s,
        result.images.len(),
        params.threshold,
        out.display()
    );
    Ok(())
}

/// The arguments of `trainer baseline`.
#[derive(clap::Args)]
pub struct BaselineArgs {
    #[arg(long, value_enum)]
    method: Method,
    /// A recording folder (sequence.npy, times.npy) or a sequence .npy file.
    #[arg(long)]
    sequence: PathBuf,
    #[arg(long)]
    out: PathBuf,
    /// Analysis window start in s (default: the end of the heating when meta.json
    /// says it, else 0).
    #[arg(long)]
    start_s: Option<f64>,
    /// Robust z-score above which a pixel is flagged.
    #[arg(long, default_value_t = 4.0)]
    threshold: f64,
    /// TSR polynomial degree (4..=7).
    #[arg(long, default_value_t = 5)]
    degree: usize,
    /// PCT components / PPT frequencies kept.
    #[arg(long, default_value_t = 4)]
    components: usize,
    #[command(flatten)]
    read: ReadArgs,
}

impl BaselineArgs {
    pub fn run(self) -> Result<()> {
        let params = Params {
            start_s: 0.0,
            threshold: self.threshold,
            tsr_degree: self.degree,
            components: self.components,
        };
        run(
            self.method,
            &self.sequence,
            &self.out,
            &self.read.options(),
            params,
            self.start_s,
        )
    }
}
