//! `trainer infer`: the host twin of the device on one recording — classes, logits,
//! the verdict file and the overlay PNGs.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use tqc_data::io::write_npy;
use tqc_data::{ReadOptions, Sequence};
use tqc_eval::infer::infer;
use tqc_eval::report::{best_contrast, verdict_file};
use tqc_shared::inspection::AcquisitionLimits;
use tqc_shared::verdict::VerdictConfig;

use super::ReadArgs;
use crate::plot::{class_colour, write_rgb_png};

/// The class map over a grey image, scaled ×`scale`, as PNG (sound pixels show the image).
pub fn overlay_png(
    path: &Path,
    image: &[f32],
    classes: &[u8],
    (width, height): (usize, usize),
    scale: usize,
) -> Result<()> {
    let (lo, hi) = crate::preview::range(image);
    let (w, h) = (width * scale, height * scale);
    let mut rgb = vec![0u8; w * h * 3];
    for y in 0..h {
        for x in 0..w {
            let p = (y / scale) * width + x / scale;
            let g = (((image[p] - lo) / (hi - lo).max(1e-6)).clamp(0.0, 1.0) * 255.0) as u8;
            let mut c = [g, g, g];
            if classes[p] > 0 {
                let k = class_colour(classes[p]);
                for i in 0..3 {
                    c[i] = ((c[i] as u16 * 2 + k[i] as u16 * 3) / 5) as u8;
                }
            }
            rgb[(y * w + x) * 3..(y * w + x) * 3 + 3].copy_from_slice(&c);
        }
    }
    write_rgb_png(path, w, h, &rgb)
}

pub fn run(model: &Path, sequence: &Path, out_dir: &Path, opts: &ReadOptions, min_region_pixels: u32) -> Result<()> {
    let blob = std::fs::read(model).with_context(|| format!("cannot read {}", model.display()))?;
    let seq = Sequence::open(sequence, opts)?;
    let cfg = VerdictConfig { min_region_pixels };
    let out = infer(&blob, &seq, &cfg, &AcquisitionLimits::DEFAULT)
        .with_context(|| format!("{} on {}", model.display(), sequence.display()))?;
    std::fs::create_dir_all(out_dir).with_context(|| format!("cannot create {}", out_dir.display()))?;
    let (h, w) = (out.height as u64, out.width as u64);
    write_npy(&out_dir.join("classes.npy"), &[h, w], &out.classes)?;
    let depth = out.logits.len() as u64 / (h * w);
    write_npy(&out_dir.join("logits.npy"), &[h, w, depth], &out.logits)?;
    let background = best_contrast(&seq);
    let size = (out.width, out.height);
    overlay_png(&out_dir.join("overlay.png"), &background, &out.classes, size, 4)?;
    overlay_png(
        &out_dir.join("contrast.png"),
        &background,
        &vec![0u8; out.classes.len()],
        size,
        4,
    )?;
    let verdict = verdict_file(&out, &model.display().to_string(), sequence, seq.labels.as_deref())?;
    verdict.write(out_dir)?;
    println!("{}: {}", sequence.display(), verdict.verdict.label());
    for r in out.findings.regions.iter() {
        let (cx, cy) = r.centroid();
        println!(
            "  {:<11} {:>5} px at ({cx:.1}, {cy:.1}) px",
            out.class_names.get(r.class as usize).map_or("?", String::as_str),
            r.pixels
        );
    }
    println!("  → {}", out_dir.display());
    Ok(())
}

/// The arguments of `trainer infer`.
#[derive(clap::Args)]
pub struct InferArgs {
    /// The model blob (.tqm).
    #[arg(long)]
    model: PathBuf,
    /// A recording folder (sequence.npy, times.npy) or a sequence .npy file.
    #[arg(long)]
    sequence: PathBuf,
    #[arg(long)]
    out: PathBuf,
    /// Smallest defect region (pixels) that fails the part.
    #[arg(long, default_value_t = tqc_shared::verdict::VerdictConfig::DEFAULT.min_region_pixels)]
    min_region_pixels: u32,
    #[command(flatten)]
    read: ReadArgs,
}

impl InferArgs {
    pub fn run(self) -> Result<()> {
        run(
            &self.model,
            &self.sequence,
            &self.out,
            &self.read.options(),
            self.min_region_pixels,
        )
    }
}
