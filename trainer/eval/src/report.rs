//! The host twin's verdict file: an [`Inference`] in the device's terms, and, for a
//! simulated recording, its true defects against the class map.

use std::collections::BTreeMap;
use std::path::Path;

use tqc_data::RecordingMeta;
use tqc_data::recording::PlateGeometry;
use tqc_data::sequence::Sequence;
use tqc_data::verdict::{AcquisitionEntry, RegionEntry, TrueDefect, Truth, VerdictFile};

use crate::infer::Inference;
use crate::score::{Footprint, ScoreError, evaluate};

/// Diameter of the disc of `area`.
fn equivalent_diameter(area: f64) -> f64 {
    2.0 * (area / std::f64::consts::PI).sqrt()
}

fn class_name(out: &Inference, class: u8) -> String {
    out.class_names.get(class as usize).cloned().unwrap_or_default()
}

/// The verdict file of `out`, the inspection of the recording in `recording` by `model`;
/// `labels` are the recording's ground truth, if it has any (`Sequence::labels`), and
/// `footprints` its defects' footprints and pixel area ([`footprints_of`], read once by
/// the caller, which may draw them too).
pub fn verdict_file(
    out: &Inference,
    model: &str,
    recording: &Path,
    labels: Option<&[u8]>,
    footprints: Option<&(Vec<Footprint>, f64)>,
) -> Result<VerdictFile, ScoreError> {
    let f = &out.findings;
    let meta = RecordingMeta::find(recording)?;
    let geometry = meta
        .as_ref()
        .map(|m| PlateGeometry::new(m.specimen.view_mm(), out.width, out.height));
    let regions = f
        .regions
        .iter()
        .map(|r| {
            let (cx, cy) = r.centroid();
            RegionEntry {
                box_px: [r.min_x, r.min_y, r.max_x, r.max_y],
                centroid_mm: geometry.map(|g| g.mm(cx as f64, cy as f64)),
                centroid_px: [cx as f64, cy as f64],
                class: class_name(out, r.class),
                depth_mm: r.depth_mm().map(f64::from),
                equivalent_diameter_mm: geometry.map(|g| equivalent_diameter(r.pixels as f64 * g.pixel_mm2())),
                equivalent_diameter_px: equivalent_diameter(r.pixels as f64),
                pixels: r.pixels,
            }
        })
        .collect();
    let class_pixels: BTreeMap<String, u32> = out
        .class_names
        .iter()
        .zip(f.class_pixels)
        .map(|(n, p)| (n.clone(), p))
        .collect();
    Ok(VerdictFile {
        acquisition: AcquisitionEntry {
            frames: out.acquisition.frames,
            median_rise_k: out.acquisition.median_rise_ck as f64 / 100.0,
            saturated_permille: out.acquisition.saturated_permille(),
            saturated_readings: out.acquisition.saturated,
        },
        class_pixels,
        fault: out.fault.map(|f| f.to_string()),
        height: out.height,
        model: model.to_string(),
        region_count: f.region_count,
        regions,
        truth: match (geometry, labels, footprints) {
            (Some(geometry), Some(labels), Some(footprints)) => Some(truth(footprints, labels, out, geometry)),
            _ => None,
        },
        verdict: f.verdict,
        width: out.width,
    })
}

/// The true defects of a simulated recording against the class map: for each, where it
/// is, how large, how deep, and whether a defect region covers it.
fn truth((footprints, pixel_mm2): &(Vec<Footprint>, f64), labels: &[u8], out: &Inference, geo: PlateGeometry) -> Truth {
    let pixel_mm2 = *pixel_mm2;
    let e = evaluate(&out.classes, labels, footprints, Some(pixel_mm2));
    let defects = footprints
        .iter()
        .zip(&e.defects)
        .map(|(f, d)| {
            let n = f.pixels.len().max(1) as f64;
            let cx = f.pixels.iter().map(|&p| (p % out.width) as f64).sum::<f64>() / n;
            let cy = f.pixels.iter().map(|&p| (p / out.width) as f64).sum::<f64>() / n;
            TrueDefect {
                centre_mm: geo.mm(cx, cy),
                class: class_name(out, d.class),
                depth_mm: d.depth_mm.is_finite().then_some(d.depth_mm),
                equivalent_diameter_mm: equivalent_diameter(f.pixels.len() as f64 * pixel_mm2),
                // A depth head is trained on in-depth defects only.
                estimated_depth_mm: (d.class == tqc_data::Class::Subsurface.index())
                    .then(|| covering_region(out, &f.pixels))
                    .flatten()
                    .and_then(|r| r.depth_mm())
                    .map(f64::from),
                flagged_pixels: d.flagged,
                found: d.found,
                name: d.name.clone(),
                pixels: d.pixels,
            }
        })
        .collect();
    Truth {
        defects,
        false_call_pixels: e.false_call_pixels,
        found: e.found,
        pixel_mm: [geo.dx, geo.dy],
    }
}

/// The listed region that holds most of `pixels` flagged (of its class, inside its
/// box: regions of one class are disjoint, so a box rarely holds another's pixels).
fn covering_region<'a>(out: &'a Inference, pixels: &[usize]) -> Option<&'a tqc_shared::verdict::Region> {
    let holds = |r: &tqc_shared::verdict::Region| {
        pixels
            .iter()
            .filter(|&&p| {
                let (x, y) = ((p % out.width) as u16, (p / out.width) as u16);
                out.classes.get(p) == Some(&r.class)
                    && (r.min_x..=r.max_x).contains(&x)
                    && (r.min_y..=r.max_y).contains(&y)
            })
            .count()
    };
    out.findings
        .regions
        .iter()
        .map(|r| (holds(r), r))
        .filter(|(n, _)| *n > 0)
        .max_by_key(|(n, _)| *n)
        .map(|(_, r)| r)
}

/// The frame of largest spatial spread of the rise over the cold image: where defects
/// show best (the background of the overlay images).
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
