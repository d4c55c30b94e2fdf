//! `trainer infer`: the host twin of the device on one recording — classes, logits,
//! depths, the verdict file and the overlay PNGs.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use tqc_data::io::write_npy;
use tqc_data::{ReadOptions, Sequence};
use tqc_eval::infer::infer;
use tqc_eval::report::{best_contrast, verdict_file};
use tqc_eval::score::footprints_of;
use tqc_shared::inspection::AcquisitionLimits;
use tqc_shared::verdict::VerdictConfig;

use super::ReadArgs;
use crate::plot::{class_colour, write_rgb_png};

/// What an overlay shows over the grey image.
pub struct Overlay<'a> {
    /// Class per pixel (sound pixels show the image); names for the legend.
    pub classes: &'a [u8],
    pub class_names: &'a [String],
    /// True defect footprints (pixel indices), outlined in white: simulated recordings.
    pub outlines: &'a [Vec<usize>],
    /// Text at a pixel position (x, y): the regions' estimated depths.
    pub labels: &'a [((f64, f64), String)],
}

/// Pixels per image pixel of the overlay PNGs.
const ZOOM: usize = 4;
/// Height of the legend strip under the image (pixels).
const LEGEND_PX: usize = 28;

/// The class map over a grey image, scaled ×4, as PNG, with the true outlines, the
/// labels and a legend strip under the image. With nothing to show, the grey image.
pub fn overlay_png(path: &Path, image: &[f32], (width, height): (usize, usize), overlay: &Overlay<'_>) -> Result<()> {
    let (lo, hi) = crate::preview::range(image);
    let (w, h) = (width * ZOOM, height * ZOOM);
    let has_defects = overlay.classes.iter().any(|&c| c > 0);
    let legend = if has_defects || !overlay.outlines.is_empty() {
        LEGEND_PX
    } else {
        0
    };
    let mut rgb = vec![255u8; w * (h + legend) * 3];
    let outline: std::collections::HashSet<usize> = overlay.outlines.iter().flatten().copied().collect();
    let inside = |x: isize, y: isize| {
        x >= 0
            && y >= 0
            && (x as usize) < width
            && (y as usize) < height
            && outline.contains(&(y as usize * width + x as usize))
    };
    for y in 0..h {
        for x in 0..w {
            let (px, py) = (x / ZOOM, y / ZOOM);
            let p = py * width + px;
            let g = image
                .get(p)
                .map_or(0, |&v| (((v - lo) / (hi - lo).max(1e-6)).clamp(0.0, 1.0) * 255.0) as u8);
            let mut c = [g, g, g];
            let class = overlay.classes.get(p).copied().unwrap_or(0);
            if class > 0 {
                let k = class_colour(class);
                for i in 0..3 {
                    c[i] = ((c[i] as u16 * 2 + k[i] as u16 * 3) / 5) as u8;
                }
            }
            // The outermost zoomed pixel of a footprint pixel whose neighbour on that
            // side is outside the footprint: a one-pixel outline on the 4× grid.
            let (ix, iy) = (px as isize, py as isize);
            if inside(ix, iy) {
                let (fx, fy) = (x % ZOOM, y % ZOOM);
                let edge = (fx == 0 && !inside(ix - 1, iy))
                    || (fx == ZOOM - 1 && !inside(ix + 1, iy))
                    || (fy == 0 && !inside(ix, iy - 1))
                    || (fy == ZOOM - 1 && !inside(ix, iy + 1));
                if edge {
                    c = [255, 255, 255];
                }
            }
            rgb[(y * w + x) * 3..(y * w + x) * 3 + 3].copy_from_slice(&c);
        }
    }
    if legend > 0 || !overlay.labels.is_empty() {
        draw_text(&mut rgb, (w, h + legend), h, overlay)?;
    }
    write_rgb_png(path, w, h + legend, &rgb)
}

/// The labels over the image and the legend strip (from `legend_top` down).
fn draw_text(rgb: &mut [u8], (w, h): (usize, usize), legend_top: usize, overlay: &Overlay<'_>) -> Result<()> {
    use plotters::prelude::*;
    use plotters::style::text_anchor::{HPos, Pos, VPos};
    let root = BitMapBackend::with_buffer(rgb, (w as u32, h as u32)).into_drawing_area();
    let label = ("sans-serif", 14).into_font().color(&WHITE);
    let shadow = ("sans-serif", 14).into_font().color(&BLACK);
    for ((x, y), text) in overlay.labels {
        let at = (((x + 0.5) * ZOOM as f64) as i32, ((y + 0.5) * ZOOM as f64) as i32);
        root.draw(&Text::new(text.clone(), (at.0 + 1, at.1 + 1), shadow.clone()))?;
        root.draw(&Text::new(text.clone(), at, label.clone()))?;
    }
    if h > legend_top {
        let mid = (legend_top + (h - legend_top) / 2) as i32;
        let text = ("sans-serif", 13)
            .into_font()
            .color(&BLACK)
            .pos(Pos::new(HPos::Left, VPos::Center));
        let mut x = 8i32;
        // A swatch: filled in a class colour, or a white outline on grey.
        enum Swatch {
            Fill(RGBColor),
            Outline,
            None,
        }
        let mut entry = |swatch: Swatch, name: String| -> Result<()> {
            let rect = [(x, mid - 6), (x + 12, mid + 6)];
            let indent = match swatch {
                Swatch::Fill(c) => {
                    root.draw(&Rectangle::new(rect, c.filled()))?;
                    18
                }
                Swatch::Outline => {
                    root.draw(&Rectangle::new(rect, WHITE.filled()))?;
                    let inner = [(x + 2, mid - 4), (x + 10, mid + 4)];
                    root.draw(&Rectangle::new(inner, RGBColor(90, 90, 90).filled()))?;
                    18
                }
                Swatch::None => 0,
            };
            let width = indent + 7 * name.chars().count() as i32;
            root.draw(&Text::new(name, (x + indent, mid), text.clone()))?;
            x += width + 14;
            Ok(())
        };
        for (c, name) in overlay.class_names.iter().enumerate().skip(1) {
            let [r, g, b] = class_colour(c as u8);
            entry(Swatch::Fill(RGBColor(r, g, b)), name.clone())?;
        }
        if !overlay.outlines.is_empty() {
            entry(Swatch::Outline, "true defect".into())?;
        }
        if !overlay.labels.is_empty() {
            entry(Swatch::None, "4.2 = estimated depth, mm (region median)".into())?;
        }
    }
    root.present()?;
    Ok(())
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
    if let Some(map) = out.depth_map() {
        let mm: Vec<f32> = map.codes.iter().map(|&c| map.millimetres(c)).collect();
        write_npy(&out_dir.join("depth_mm.npy"), &[h, w], &mm)?;
    }
    // Simulated recordings (with their labels): the true footprints, for the verdict
    // and outlined.
    let footprints = match &seq.labels {
        Some(_) => footprints_of(sequence)?,
        None => None,
    };
    let verdict = verdict_file(
        &out,
        &model.display().to_string(),
        sequence,
        seq.labels.as_deref(),
        footprints.as_ref(),
    )?;
    let background = best_contrast(&seq);
    let size = (out.width, out.height);
    let outlines: Vec<Vec<usize>> =
        footprints.map_or_else(Vec::new, |(fps, _)| fps.into_iter().map(|f| f.pixels).collect());
    let in_depth = tqc_data::Class::Subsurface.index();
    let labels: Vec<((f64, f64), String)> = out
        .findings
        .regions
        .iter()
        .filter(|r| r.class == in_depth && r.pixels >= min_region_pixels)
        .filter_map(|r| {
            let depth = r.depth_mm()?;
            Some(((r.max_x as f64 + 1.0, r.min_y as f64), format!("{depth:.1}")))
        })
        .collect();
    let overlay = Overlay {
        classes: &out.classes,
        class_names: &out.class_names,
        outlines: &outlines,
        labels: &labels,
    };
    overlay_png(&out_dir.join("overlay.png"), &background, size, &overlay)?;
    let nothing = Overlay {
        classes: &[],
        class_names: &[],
        outlines: &[],
        labels: &[],
    };
    overlay_png(&out_dir.join("contrast.png"), &background, size, &nothing)?;
    verdict.write(out_dir)?;
    println!("{}: {}", sequence.display(), verdict.verdict.label());
    for r in out.findings.regions.iter() {
        let (cx, cy) = r.centroid();
        println!(
            "  {:<11} {:>5} px at ({cx:.1}, {cy:.1}) px{}",
            out.class_names.get(r.class as usize).map_or("?", String::as_str),
            r.pixels,
            r.depth_mm()
                .filter(|_| r.class == in_depth)
                .map_or(String::new(), |d| format!(", estimated depth {d:.2} mm"))
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
