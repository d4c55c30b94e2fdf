//! PNG previews of a recording: frames and contrast images in a perceptual colour map
//! with the defect outlines, and contrast-versus-time curves.

use std::path::Path;

use anyhow::Result;
use plotters::prelude::*;

use tqc_sim::scene::{DefectView, SURFACE};

/// Pixels per image pixel in the written PNGs (a 160 × 120 frame becomes 640 × 480).
const ZOOM: usize = 4;

/// A row-major image of `width × height` values.
pub struct Raster<'a> {
    pub values: &'a [f32],
    pub width: usize,
    pub height: usize,
}

/// Writes `image` as a colour-mapped PNG over `range` (low, high), outlining `defects`
/// (white: in-depth, cyan: surface); `px_mm` is the pixel pitch on the part.
pub fn image_png(path: &Path, image: &Raster<'_>, range: (f32, f32), defects: &[DefectView], px_mm: f64) -> Result<()> {
    let (values, w, h) = (image.values, image.width, image.height);
    let (lo, hi) = range;
    let (zw, zh) = (w * ZOOM, h * ZOOM);
    let mut rgb = vec![0u8; zw * zh * 3];
    let span = (hi - lo).max(1e-6);
    for y in 0..zh {
        for x in 0..zw {
            let v = values[(y / ZOOM) * w + x / ZOOM];
            let t = if v.is_finite() {
                ((v - lo) / span).clamp(0.0, 1.0)
            } else {
                0.0
            };
            let c = colorous::INFERNO.eval_continuous(t as f64);
            let o = (y * zw + x) * 3;
            rgb[o..o + 3].copy_from_slice(&[c.r, c.g, c.b]);
        }
    }
    for d in defects {
        let colour = if d.class == SURFACE {
            [0, 255, 255]
        } else {
            [255, 255, 255]
        };
        let r = d.diameter_mm / 2.0 / px_mm * ZOOM as f64;
        let (cx, cy) = (
            (d.center_px[0] + 0.5) * ZOOM as f64,
            (d.center_px[1] + 0.5) * ZOOM as f64,
        );
        let steps = (r * 8.0).max(32.0) as usize;
        for s in 0..steps {
            let a = s as f64 / steps as f64 * std::f64::consts::TAU;
            let (x, y) = ((cx + r * a.cos()).round(), (cy + r * a.sin()).round());
            if x >= 0.0 && y >= 0.0 && (x as usize) < zw && (y as usize) < zh {
                let o = (y as usize * zw + x as usize) * 3;
                rgb[o..o + 3].copy_from_slice(&colour);
            }
        }
    }
    crate::plot::write_rgb_png(path, zw, zh, &rgb)
}

/// Robust display range: the 1st and 99th percentiles.
pub fn range(values: &[f32]) -> (f32, f32) {
    let mut v: Vec<f32> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return (0.0, 1.0);
    }
    v.sort_by(|a, b| a.total_cmp(b));
    (v[v.len() / 100], v[(v.len() * 99) / 100])
}

/// Local contrast (defect mean minus its sound ring) against time, one curve per
/// defect, coloured by depth; log time axis.
pub fn contrast_curves_png(path: &Path, times: &[f64], defects: &[DefectView], contrast: &[Vec<f32>]) -> Result<()> {
    let root = BitMapBackend::new(path, (1100, 700)).into_drawing_area();
    root.fill(&WHITE)?;
    let t_min = times
        .iter()
        .copied()
        .filter(|&t| t > 0.0)
        .fold(f64::MAX, f64::min)
        .max(1e-3);
    let t_max = times.iter().copied().fold(0.0, f64::max).max(t_min * 10.0);
    let mut lo: f64 = 0.0;
    let mut hi: f64 = 0.0;
    let series: Vec<Vec<(f64, f64)>> = contrast
        .iter()
        .map(|m| {
            times
                .iter()
                .zip(m)
                .filter(|(t, v)| **t >= t_min && v.is_finite())
                .map(|(t, v)| {
                    let c = *v as f64;
                    lo = lo.min(c);
                    hi = hi.max(c);
                    (*t, c)
                })
                .collect()
        })
        .collect();
    let pad = (hi - lo).max(0.01) * 0.05;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Contrast over each defect (footprint mean − surrounding sound ring)",
            ("sans-serif", 22),
        )
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(65)
        .right_y_label_area_size(10)
        .build_cartesian_2d((t_min..t_max).log_scale(), (lo - pad)..(hi + pad))?;
    chart
        .configure_mesh()
        .x_desc("time since the start of heating (s)")
        .y_desc("contrast (K)")
        .draw()?;
    let max_depth = defects.iter().map(|d| d.depth_mm).fold(1.0, f64::max);
    for (d, s) in defects.iter().zip(series) {
        let colour = if d.class == SURFACE {
            RGBColor(0, 150, 200)
        } else {
            let c = colorous::VIRIDIS.eval_continuous((d.depth_mm / max_depth).clamp(0.0, 1.0) * 0.9);
            RGBColor(c.r, c.g, c.b)
        };
        chart
            .draw_series(LineSeries::new(s, colour.stroke_width(2)))?
            .label(d.name.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], colour.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 12))
        .position(SeriesLabelPosition::UpperRight)
        .draw()?;
    root.present()?;
    Ok(())
}
