//! `trainer infer`: the host twin of the device on one recording — classes, logits,
//! an overlay PNG and the verdict.

use std::path::Path;
use tqc_shared::inspection::AcquisitionLimits;

use anyhow::{Context, Result};
use serde_json::json;

use tqc_shared::verdict::{Verdict, VerdictConfig};
use tqc_trainer::infer::{Inference, infer};
use tqc_trainer::sequence::{ReadOptions, Sequence};

use tqc_trainer::evaluate::{evaluate, footprints_of};
use tqc_trainer::specimen::Specimen;

use super::baseline::write_npy;

/// Pixel → plate coordinates (mm) of a simulated recording, from its `meta.json`.
struct PlateGeometry {
    x0: f64,
    y0: f64,
    dx: f64,
    dy: f64,
}

impl PlateGeometry {
    fn of(dir: &Path, width: usize, height: usize) -> Option<Self> {
        let meta: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("meta.json")).ok()?).ok()?;
        let spec: Specimen = serde_json::from_value(meta["specimen"].clone()).ok()?;
        let [x0, y0, x1, y1] = spec.view_mm();
        Some(PlateGeometry {
            x0,
            y0,
            dx: (x1 - x0) / width as f64,
            dy: (y1 - y0) / height as f64,
        })
    }

    /// Centre of pixel (x, y) in mm.
    fn mm(&self, x: f64, y: f64) -> [f64; 2] {
        [self.x0 + (x + 0.5) * self.dx, self.y0 + (y + 0.5) * self.dy]
    }
}

/// The recording's true defects (simulated recordings only) against the class map: for
/// each, where it is, how large, how deep, and whether a defect region covers it.
fn truth_json(dir: &Path, out: &Inference) -> Option<serde_json::Value> {
    let geo = PlateGeometry::of(dir, out.width, out.height)?;
    let (footprints, pixel_mm2) = footprints_of(dir)?;
    let labels = Sequence::open(dir, &ReadOptions::default()).ok()?.labels?;
    let e = evaluate(&out.classes, &labels, &footprints, Some(pixel_mm2));
    let defects: Vec<_> = footprints
        .iter()
        .zip(&e.defects)
        .map(|(f, d)| {
            let n = f.pixels.len().max(1) as f64;
            let cx = f.pixels.iter().map(|&p| (p % out.width) as f64).sum::<f64>() / n;
            let cy = f.pixels.iter().map(|&p| (p / out.width) as f64).sum::<f64>() / n;
            json!({
                "name": d.name,
                "class": out.class_names.get(d.class as usize).cloned().unwrap_or_default(),
                "centre_mm": geo.mm(cx, cy),
                "equivalent_diameter_mm": 2.0 * (f.pixels.len() as f64 * pixel_mm2 / std::f64::consts::PI).sqrt(),
                "depth_mm": d.depth_mm.is_finite().then_some(d.depth_mm),
                "pixels": d.pixels,
                "flagged_pixels": d.flagged,
                "found": d.found,
            })
        })
        .collect();
    Some(json!({
        "defects": defects,
        "found": e.found,
        "false_call_pixels": e.false_call_pixels,
        "pixel_mm": [geo.dx, geo.dy],
    }))
}

/// The frame of largest spatial spread of the rise over the cold image: where defects
/// show best, the background of the overlay.
pub fn best_contrast(seq: &Sequence) -> Vec<f32> {
    let cold = seq.cold();
    let mut best = (f64::NEG_INFINITY, vec![0.0; seq.pixels()]);
    for k in 0..seq.frames {
        if seq.times[k] <= 0.0 {
            continue;
        }
        let rise: Vec<f32> = seq.frame(k).iter().zip(&cold).map(|(a, b)| a - b).collect();
        let n = rise.len() as f64;
        let mean = rise.iter().map(|&v| v as f64).sum::<f64>() / n;
        let var = rise.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
        if var > best.0 {
            best = (var, rise);
        }
    }
    best.1
}

/// Class colours: subsurface red, surface blue (sound shows the image).
pub const COLOURS: [[u8; 3]; 3] = [[0, 0, 0], [230, 40, 30], [40, 130, 240]];

/// The class map over a grey image, scaled ×`scale`, as PNG.
pub fn overlay_png(
    path: &Path,
    image: &[f32],
    classes: &[u8],
    width: usize,
    height: usize,
    scale: usize,
) -> Result<()> {
    let (lo, hi) = tqc_trainer::preview::range(image);
    let (w, h) = (width * scale, height * scale);
    let mut rgb = vec![0u8; w * h * 3];
    for y in 0..h {
        for x in 0..w {
            let p = (y / scale) * width + x / scale;
            let g = (((image[p] - lo) / (hi - lo).max(1e-6)).clamp(0.0, 1.0) * 255.0) as u8;
            let mut c = [g, g, g];
            let class = classes[p] as usize;
            if class > 0 {
                let k = COLOURS[class.min(COLOURS.len() - 1)];
                for i in 0..3 {
                    c[i] = ((c[i] as u16 * 2 + k[i] as u16 * 3) / 5) as u8;
                }
            }
            rgb[(y * w + x) * 3..(y * w + x) * 3 + 3].copy_from_slice(&c);
        }
    }
    let file = std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let mut enc = png::Encoder::new(std::io::BufWriter::new(file), w as u32, h as u32);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    enc.write_header()?.write_image_data(&rgb)?;
    Ok(())
}

/// The verdict as JSON: regions with centroid, box, pixel count and equivalent diameter.
pub fn verdict_json(out: &Inference, model: &str) -> serde_json::Value {
    let f = &out.findings;
    let regions: Vec<_> = f
        .regions
        .iter()
        .map(|r| {
            let (cx, cy) = r.centroid();
            json!({
                "class": out.class_names.get(r.class as usize).cloned().unwrap_or_default(),
                "pixels": r.pixels,
                "centroid_px": [cx, cy],
                "box_px": [r.min_x, r.min_y, r.max_x, r.max_y],
                "equivalent_diameter_px": 2.0 * (r.pixels as f64 / std::f64::consts::PI).sqrt(),
            })
        })
        .collect();
    json!({
        "model": model,
        "verdict": match f.verdict { Verdict::Pass => "PASS", Verdict::Fail => "FAIL", Verdict::Retest => "RETEST" },
        "regions": regions,
        "region_count": f.region_count,
        "class_pixels": out.class_names.iter().enumerate().map(|(i, n)| (n.clone(), json!(f.class_pixels[i]))).collect::<serde_json::Map<_, _>>(),
        "fault": out.fault.map(|f| f.to_string()),
        "acquisition": {
            "frames": out.acquisition.frames,
            "saturated_readings": out.acquisition.saturated,
            "saturated_permille": out.acquisition.saturated_permille(),
            "median_rise_k": out.acquisition.median_rise_ck as f64 / 100.0,
        },
        "width": out.width,
        "height": out.height,
    })
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
    overlay_png(
        &out_dir.join("overlay.png"),
        &best_contrast(&seq),
        &out.classes,
        out.width,
        out.height,
        4,
    )?;
    overlay_png(
        &out_dir.join("contrast.png"),
        &best_contrast(&seq),
        &vec![0u8; out.classes.len()],
        out.width,
        out.height,
        4,
    )?;
    let mut v = verdict_json(&out, &model.display().to_string());
    if let Some(geo) = PlateGeometry::of(sequence, out.width, out.height)
        && let Some(regions) = v["regions"].as_array_mut()
    {
        for (r, found) in regions.iter_mut().zip(out.findings.regions.iter()) {
            let (cx, cy) = found.centroid();
            r["centroid_mm"] = json!(geo.mm(cx as f64, cy as f64));
            r["equivalent_diameter_mm"] =
                json!(2.0 * (found.pixels as f64 * geo.dx * geo.dy / std::f64::consts::PI).sqrt());
        }
    }
    if let Some(truth) = truth_json(sequence, &out) {
        v["truth"] = truth;
    }
    std::fs::write(out_dir.join("verdict.json"), serde_json::to_string_pretty(&v)?)
        .with_context(|| format!("cannot write {}", out_dir.join("verdict.json").display()))?;
    println!("{}: {}", sequence.display(), v["verdict"].as_str().unwrap_or("?"));
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
