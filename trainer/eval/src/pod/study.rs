//! A POD study over a set of plates: per plate and method, each defect's detection score
//! and the false calls at every threshold of the method's sweep ([`PlateOutcome`], one
//! file per plate so a study runs in shards); then, over all plates, the hit/miss fits,
//! detection rates and false-call rates with their intervals ([`summarize`]).
//!
//! Rules, the same for every method:
//! - a pixel is flagged when its score exceeds the threshold (baselines: the robust
//!   z-score; the CNN: the margin of its best defect logit over the sound logit, so 0 is
//!   its own class decision);
//! - a defect is **hit** when at least half of its footprint is flagged — the rule of
//!   `trainer evaluate` — so its detection score is the ⌈n/2⌉-th largest score inside it;
//! - a **call** is a region of flagged pixels (8-connected, one class) of at least the
//!   verdict rule's minimum size; a **false call** is such a region of flagged pixels
//!   farther than [`NEAR_PX`] from every defect footprint (so a call spreading from a
//!   defect over sound material still counts); a sound plate with any call is a **false
//!   FAIL** (the station's rule).

use serde::{Deserialize, Serialize};
use tqc_shared::verdict::VerdictConfig;

pub use tqc_sim::scene::DefectKind;

use super::fit::{FitError, HitMiss, PodFit, clopper_pearson, fit, poisson_rate_interval};

/// Confidence of every interval of a study.
pub const CONFIDENCE: f64 = 0.95;

/// Flagged pixels this close to a defect (pixels, in x and y) are neither hit nor false
/// call.
pub const NEAR_PX: isize = 2;

/// Per-plate outcome file format.
pub const OUTCOME_VERSION: u32 = 2;

/// Peak contrast over NETD (by magnitude: a spot that absorbs less is darker) from which
/// a surface spot is one the station must find.
pub const VISIBLE_NETD: f64 = 3.0;

/// A true defect of a plate.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DefectTruth {
    pub kind: DefectKind,
    pub diameter_mm: f64,
    /// Below the inspected face (0 for surface spots).
    pub depth_mm: f64,
    /// Footprint pixels.
    pub pixels: usize,
    /// Peak local contrast after the heating (footprint mean − its sound ring, largest
    /// magnitude over the recorded frames) over the camera's NETD.
    #[serde(default)]
    pub peak_contrast_netd: Option<f64>,
}

impl DefectTruth {
    /// Diameter over depth, the size a POD curve of in-depth defects is read against.
    pub fn aspect_ratio(&self) -> f64 {
        self.diameter_mm / self.depth_mm
    }
}

/// One method on one plate.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MethodOutcome {
    pub method: String,
    /// The sweep; `operating` is the method's own setting within it.
    pub thresholds: Vec<f64>,
    pub operating: usize,
    /// Per defect (in the plate's order): the threshold below which it is hit.
    pub detection: Vec<f64>,
    /// Per threshold: calls that touch no defect, and whether the plate would FAIL.
    pub false_calls: Vec<u32>,
    pub fails: Vec<bool>,
}

/// Every method on one plate, as written to `plates/plate-NNNNN.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlateOutcome {
    pub format_version: u32,
    pub plate: usize,
    pub dir: String,
    /// What produced it (the model blob's CRC and the study settings); an outcome of
    /// another model is computed again.
    pub provenance: String,
    /// The inspected area and the part of it that is sound material, m².
    pub area_m2: f64,
    pub sound_area_m2: f64,
    pub defects: Vec<DefectTruth>,
    pub methods: Vec<MethodOutcome>,
}

impl PlateOutcome {
    pub fn sound(&self) -> bool {
        self.defects.is_empty()
    }
}

/// A plate as a study scores it: image size and the defect footprints.
pub struct PlateTruth<'a> {
    pub width: usize,
    pub height: usize,
    /// Row-major pixel indices of each defect.
    pub footprints: &'a [Vec<usize>],
}

/// A method's thresholds, strictest last, and its own setting among them.
#[derive(Clone, Copy)]
pub struct Sweep<'a> {
    pub thresholds: &'a [f64],
    pub operating: usize,
}

/// Scores a method's per-pixel `score` (and the defect class each flagged pixel would
/// get, for connectivity) against a plate's footprints over a sweep.
pub fn method_outcome(
    method: &str,
    score: &[f32],
    class_of: &dyn Fn(usize) -> u8,
    plate: &PlateTruth<'_>,
    sweep: Sweep<'_>,
    cfg: &VerdictConfig,
) -> MethodOutcome {
    let (width, height, footprints) = (plate.width, plate.height, plate.footprints);
    let (thresholds, operating) = (sweep.thresholds, sweep.operating);
    let detection = footprints
        .iter()
        .map(|f| {
            let mut s: Vec<f64> = f.iter().map(|&i| score[i] as f64).collect();
            s.sort_by(|a, b| b.total_cmp(a));
            // An empty footprint is never hit (a finite score, so JSON holds it).
            if s.is_empty() {
                f64::MIN
            } else {
                s[s.len().div_ceil(2) - 1]
            }
        })
        .collect();
    // Flagged pixels within `NEAR_PX` of a defect count neither way: a detection that
    // spills over its footprint's pixelated edge is not a false call.
    let mut near = vec![false; score.len()];
    for f in footprints {
        for &i in f {
            let (x, y) = ((i % width) as isize, (i / width) as isize);
            for dy in -NEAR_PX..=NEAR_PX {
                for dx in -NEAR_PX..=NEAR_PX {
                    let (nx, ny) = (x + dx, y + dy);
                    if nx >= 0 && ny >= 0 && (nx as usize) < width && (ny as usize) < height {
                        near[ny as usize * width + nx as usize] = true;
                    }
                }
            }
        }
    }
    let mut false_calls = Vec::with_capacity(thresholds.len());
    let mut fails = Vec::with_capacity(thresholds.len());
    for &t in thresholds {
        let map: Vec<u8> = score
            .iter()
            .enumerate()
            .map(|(i, &s)| if s as f64 > t { class_of(i).max(1) } else { 0 })
            .collect();
        let min = cfg.min_region_pixels as usize;
        fails.push(!regions(&map, width, height, min).is_empty());
        let away: Vec<u8> = map.iter().zip(&near).map(|(&m, &n)| if n { 0 } else { m }).collect();
        false_calls.push(regions(&away, width, height, min).len() as u32);
    }
    MethodOutcome {
        method: method.to_string(),
        thresholds: thresholds.to_vec(),
        operating,
        detection,
        false_calls,
        fails,
    }
}

/// 8-connected regions of one non-zero class with at least `min_pixels` pixels.
fn regions(map: &[u8], w: usize, h: usize, min_pixels: usize) -> Vec<Vec<usize>> {
    let mut seen = vec![false; map.len()];
    let mut out = Vec::new();
    let mut stack = Vec::new();
    for start in 0..map.len() {
        if map[start] == 0 || seen[start] {
            continue;
        }
        let class = map[start];
        seen[start] = true;
        stack.push(start);
        let mut region = Vec::new();
        while let Some(i) = stack.pop() {
            region.push(i);
            let (x, y) = ((i % w) as isize, (i / w) as isize);
            for dy in -1..=1 {
                for dx in -1..=1 {
                    let (nx, ny) = (x + dx, y + dy);
                    if nx < 0 || ny < 0 || nx >= w as isize || ny >= h as isize {
                        continue;
                    }
                    let j = ny as usize * w + nx as usize;
                    if !seen[j] && map[j] == class {
                        seen[j] = true;
                        stack.push(j);
                    }
                }
            }
        }
        if region.len() >= min_pixels {
            out.push(region);
        }
    }
    out
}

/// A proportion with its Clopper–Pearson interval (the default: none of none).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Proportion {
    pub k: usize,
    pub n: usize,
    pub rate: f64,
    pub interval: [f64; 2],
}

impl Proportion {
    pub fn new(k: usize, n: usize) -> Self {
        Proportion {
            k,
            n,
            rate: k as f64 / n.max(1) as f64,
            interval: clopper_pearson(k, n, CONFIDENCE),
        }
    }
}

/// False calls per m² with the exact Poisson interval.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Rate {
    pub calls: usize,
    pub area_m2: f64,
    pub per_m2: f64,
    pub interval: [f64; 2],
}

impl Rate {
    pub fn new(calls: usize, area_m2: f64) -> Self {
        Rate {
            calls,
            area_m2,
            per_m2: calls as f64 / area_m2.max(1e-12),
            interval: poisson_rate_interval(calls, area_m2.max(1e-12), CONFIDENCE),
        }
    }
}

/// A fitted curve and what it says, or why there is none.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Curve {
    /// What the size is: "aspect ratio (diameter / depth)", "depth (mm)".
    pub size: String,
    /// Which defects.
    pub defects: String,
    pub n: usize,
    pub hits: usize,
    pub fit: Option<PodFit>,
    pub a50: Option<f64>,
    pub a50_interval: Option<[f64; 2]>,
    pub a90: Option<f64>,
    /// Where the 95 % lower bound reaches 90 %; None when it does not within the range
    /// searched (the curve is too flat or too uncertain).
    pub a90_95: Option<f64>,
    pub error: Option<String>,
    /// The hit/miss points, for the plots.
    pub points: Vec<HitMiss>,
}

impl Curve {
    fn new(size: &str, defects: &str, points: Vec<HitMiss>) -> Self {
        let hits = points.iter().filter(|p| p.hit).count();
        let fitted: Result<PodFit, FitError> = fit(&points);
        let (fit, error) = match fitted {
            Ok(f) => (Some(f), None),
            Err(e) => (None, Some(e.to_string())),
        };
        Curve {
            size: size.into(),
            defects: defects.into(),
            n: points.len(),
            hits,
            a50: fit.as_ref().map(|f| f.a(0.5)),
            a50_interval: fit.as_ref().map(|f| f.a_interval(0.5, CONFIDENCE)),
            a90: fit.as_ref().map(|f| f.a(0.9)),
            a90_95: fit.as_ref().and_then(|f| f.a_bound(0.9, CONFIDENCE)),
            fit,
            error,
            points,
        }
    }
}

/// One threshold of a method's sweep, over all plates.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SweepPoint {
    pub threshold: f64,
    pub false_calls: Rate,
    pub false_fail: Proportion,
    pub in_depth_found: Proportion,
    pub surface_found: Proportion,
}

/// One method over the study.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MethodPod {
    pub method: String,
    /// At the method's own setting.
    pub operating: Operating,
    /// At the false-call rate of the reference method's setting (the lowest threshold
    /// whose rate does not exceed it); None for the reference itself.
    pub at_reference_rate: Option<Operating>,
    pub sweep: Vec<SweepPoint>,
}

/// A method at one threshold: every figure of the study.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Operating {
    pub point: SweepPoint,
    /// POD against aspect ratio, in-depth defects of every kind.
    pub aspect: Curve,
    /// The same, flat-bottom holes only (the qualification standard).
    pub aspect_holes: Curve,
    /// POD against depth, in-depth defects, per diameter class.
    pub depth_by_diameter: Vec<Curve>,
    /// Detection rate per defect kind.
    pub by_kind: Vec<(DefectKind, Proportion)>,
    /// Surface spots whose peak contrast reaches [`VISIBLE_NETD`] × NETD, found.
    #[serde(default)]
    pub visible_surface_found: Proportion,
}

/// The whole study.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PodReport {
    pub plates: usize,
    pub sound_plates: usize,
    pub defects: usize,
    pub in_depth_defects: usize,
    pub surface_defects: usize,
    pub inspected_m2: f64,
    pub confidence: f64,
    /// The method whose operating false-call rate the others are compared at.
    pub reference: String,
    pub rules: String,
    pub methods: Vec<MethodPod>,
}

/// What a station's qualification says in a few numbers: one method at its own setting,
/// for readers that show it beside an inspection (the demo's table of true defects).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PodSummary {
    pub method: String,
    pub threshold: f64,
    pub plates: usize,
    pub sound_plates: usize,
    pub in_depth_defects: usize,
    /// Aspect ratio (diameter / depth) of in-depth defects.
    pub a50: Option<f64>,
    pub a90: Option<f64>,
    pub a90_95: Option<f64>,
    pub false_calls_per_m2: f64,
    pub false_fail: Proportion,
}

/// File name of a study's summary (and of the shipped model's, beside it in
/// `onnx_models/`: `thermonet2.pod-summary.json`).
pub const SUMMARY_FILE: &str = "pod-summary.json";

impl PodReport {
    /// The summary of `method` at its own setting.
    pub fn summary(&self, method: &str) -> Option<PodSummary> {
        let m = self.methods.iter().find(|m| m.method == method)?;
        let o = &m.operating;
        Some(PodSummary {
            method: m.method.clone(),
            threshold: o.point.threshold,
            plates: self.plates,
            sound_plates: self.sound_plates,
            in_depth_defects: self.in_depth_defects,
            a50: o.aspect.a50,
            a90: o.aspect.a90,
            a90_95: o.aspect.a90_95,
            false_calls_per_m2: o.point.false_calls.per_m2,
            false_fail: o.point.false_fail.clone(),
        })
    }
}

/// Diameter classes of the depth curves, mm.
pub const DIAMETER_CLASSES: [[f64; 2]; 3] = [[0.0, 10.0], [10.0, 15.0], [15.0, f64::INFINITY]];

#[derive(Debug, thiserror::Error)]
pub enum StudyError {
    #[error("no plate outcomes to summarize")]
    Empty,
    #[error("plate {plate} has no outcome of method {method:?}")]
    MissingMethod { plate: usize, method: String },
    #[error("plate {plate}, method {method}: {what} do not match the plate's ({found} vs {expected})")]
    Inconsistent {
        plate: usize,
        method: String,
        what: &'static str,
        found: usize,
        expected: usize,
    },
}

fn operating(outcomes: &[(&PlateOutcome, &MethodOutcome)], t: usize) -> Operating {
    let threshold = outcomes[0].1.thresholds[t];
    let mut hits: Vec<(DefectTruth, bool)> = Vec::new();
    let (mut calls, mut area, mut sound, mut fails) = (0usize, 0.0, 0usize, 0usize);
    for (plate, m) in outcomes {
        for (d, &s) in plate.defects.iter().zip(&m.detection) {
            hits.push((d.clone(), s > threshold));
        }
        calls += m.false_calls[t] as usize;
        area += plate.sound_area_m2;
        if plate.sound() {
            sound += 1;
            fails += usize::from(m.fails[t]);
        }
    }
    let prop = |keep: &dyn Fn(&DefectTruth) -> bool| {
        let sel: Vec<bool> = hits.iter().filter(|(d, _)| keep(d)).map(|(_, h)| *h).collect();
        Proportion::new(sel.iter().filter(|h| **h).count(), sel.len())
    };
    let points = |keep: &dyn Fn(&DefectTruth) -> bool, size: &dyn Fn(&DefectTruth) -> f64| -> Vec<HitMiss> {
        hits.iter()
            .filter(|(d, _)| keep(d))
            .map(|(d, h)| HitMiss { size: size(d), hit: *h })
            .collect()
    };
    let in_depth = |d: &DefectTruth| d.kind.in_depth() && d.depth_mm > 0.0;
    let aspect = Curve::new(
        "aspect ratio (diameter / depth)",
        "in-depth defects",
        points(&in_depth, &|d| d.aspect_ratio()),
    );
    let aspect_holes = Curve::new(
        "aspect ratio (diameter / depth)",
        "flat-bottom holes",
        points(&|d| d.kind == DefectKind::Hole && d.depth_mm > 0.0, &|d| {
            d.aspect_ratio()
        }),
    );
    let depth_by_diameter = DIAMETER_CLASSES
        .iter()
        .map(|&[lo, hi]| {
            let label = if hi.is_finite() {
                format!("in-depth defects ⌀{lo}–{hi} mm")
            } else {
                format!("in-depth defects ⌀ ≥ {lo} mm")
            };
            Curve::new(
                "depth (mm)",
                &label,
                points(&|d| in_depth(d) && d.diameter_mm >= lo && d.diameter_mm < hi, &|d| {
                    d.depth_mm
                }),
            )
        })
        .collect();
    let kinds = DefectKind::ALL;
    Operating {
        point: SweepPoint {
            threshold,
            false_calls: Rate::new(calls, area),
            false_fail: Proportion::new(fails, sound),
            in_depth_found: prop(&|d| d.kind.in_depth()),
            surface_found: prop(&|d| !d.kind.in_depth()),
        },
        aspect,
        aspect_holes,
        depth_by_diameter,
        by_kind: kinds.iter().map(|&k| (k, prop(&|d| d.kind == k))).collect(),
        visible_surface_found: prop(&|d| {
            !d.kind.in_depth() && d.peak_contrast_netd.is_some_and(|c| c.abs() >= VISIBLE_NETD)
        }),
    }
}

/// Summarizes the outcomes of `methods` over all plates; the others are compared at the
/// false-call rate `reference` has at its own setting.
pub fn summarize(outcomes: &[PlateOutcome], methods: &[String], reference: &str) -> Result<PodReport, StudyError> {
    if outcomes.is_empty() {
        return Err(StudyError::Empty);
    }
    let mut per_method: Vec<Vec<(&PlateOutcome, &MethodOutcome)>> = Vec::new();
    for name in methods {
        let mut list = Vec::new();
        for p in outcomes {
            let m = p
                .methods
                .iter()
                .find(|m| &m.method == name)
                .ok_or_else(|| StudyError::MissingMethod {
                    plate: p.plate,
                    method: name.clone(),
                })?;
            let check = |what, found: usize, expected: usize| {
                if found == expected {
                    Ok(())
                } else {
                    Err(StudyError::Inconsistent {
                        plate: p.plate,
                        method: name.clone(),
                        what,
                        found,
                        expected,
                    })
                }
            };
            check("detection scores", m.detection.len(), p.defects.len())?;
            let first = list.first().map_or(m, |(_, f): &(&PlateOutcome, &MethodOutcome)| *f);
            check("thresholds", m.thresholds.len(), first.thresholds.len())?;
            check("false-call counts", m.false_calls.len(), m.thresholds.len())?;
            check("verdicts", m.fails.len(), m.thresholds.len())?;
            list.push((p, m));
        }
        per_method.push(list);
    }
    let reference_rate = methods
        .iter()
        .zip(&per_method)
        .find(|(n, _)| n.as_str() == reference)
        .map(|(_, list)| operating(list, list[0].1.operating).point.false_calls.per_m2);
    let mut out = Vec::new();
    for (name, list) in methods.iter().zip(&per_method) {
        let n_t = list[0].1.thresholds.len();
        let sweep: Vec<SweepPoint> = (0..n_t).map(|t| operating(list, t).point).collect();
        let own = list[0].1.operating;
        let at_reference_rate = match reference_rate {
            Some(rate) if name != reference => {
                // Thresholds rise with strictness. From the strictest down, the most
                // sensitive one before the rate is first exceeded (or the strictest): a
                // threshold flagging nearly everything merges its calls into one region a
                // plate, and that falling count is no low rate.
                let mut order: Vec<usize> = (0..n_t).collect();
                order.sort_by(|&a, &b| sweep[b].threshold.total_cmp(&sweep[a].threshold));
                let mut t = order.first().copied().unwrap_or(own);
                for &k in &order {
                    if sweep[k].false_calls.per_m2 > rate + 1e-12 {
                        break;
                    }
                    t = k;
                }
                Some(operating(list, t))
            }
            _ => None,
        };
        out.push(MethodPod {
            method: name.clone(),
            operating: operating(list, own),
            at_reference_rate,
            sweep,
        });
    }
    let defects: Vec<&DefectTruth> = outcomes.iter().flat_map(|p| &p.defects).collect();
    Ok(PodReport {
        plates: outcomes.len(),
        sound_plates: outcomes.iter().filter(|p| p.sound()).count(),
        defects: defects.len(),
        in_depth_defects: defects.iter().filter(|d| d.kind.in_depth()).count(),
        surface_defects: defects.iter().filter(|d| !d.kind.in_depth()).count(),
        inspected_m2: outcomes.iter().map(|p| p.area_m2).sum(),
        confidence: CONFIDENCE,
        reference: reference.to_string(),
        rules: RULES.to_string(),
        methods: out,
    })
}

/// The rules of a study, for its report.
pub const RULES: &str = "hit: at least half of a defect's footprint flagged (the rule of trainer evaluate); \
call: a flagged region (8-connected, one class) of at least the verdict rule's minimum size; \
false call: a region of such size of flagged pixels more than 2 pixels from every true defect, counted per m² of sound material inspected; \
false FAIL: a sound plate with any call; POD: logit of ln(size), maximum likelihood; \
a90/95: where the one-sided 95 % Wald lower bound reaches 90 %; proportions: Clopper–Pearson 95 %; \
false-call rates: exact Poisson 95 %";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_defect_is_hit_when_half_its_footprint_is_flagged() {
        // 12 × 4 plate; a 4-pixel defect (columns 0–1, rows 0–1) scoring 5, 4, 1, 0: hit
        // below 4.
        let mut score = vec![0.0f32; 48];
        for (i, s) in [(0, 5.0), (1, 4.0), (12, 1.0), (13, 0.0)] {
            score[i] = s;
        }
        // A detection spilling over the defect's edge (columns 2–3), and a 6-pixel region
        // far from it (columns 8–9), both scoring 3.
        for i in [2, 3, 14, 15, 26, 27, 8, 9, 20, 21, 32, 33] {
            score[i] = 3.0;
        }
        let cfg = VerdictConfig { min_region_pixels: 6 };
        let footprints = [vec![0, 1, 12, 13]];
        let plate = PlateTruth {
            width: 12,
            height: 4,
            footprints: &footprints,
        };
        let sweep = Sweep {
            thresholds: &[0.5, 2.0, 3.5, 4.5],
            operating: 1,
        };
        let o = method_outcome("m", &score, &|_| 1, &plate, sweep, &cfg);
        assert_eq!(o.detection, vec![4.0]);
        // Up to 3 the far region is a false call and the spill is not; above 3 nothing of
        // 6 pixels is left to call.
        assert_eq!(o.false_calls, vec![1, 1, 0, 0]);
        assert_eq!(o.fails, vec![true, true, false, false]);
        // Without the far region, the spill alone fails the part but is no false call.
        for i in [8, 9, 20, 21, 32, 33] {
            score[i] = 0.0;
        }
        let one = Sweep {
            thresholds: &[0.5],
            operating: 0,
        };
        let o = method_outcome("m", &score, &|_| 1, &plate, one, &cfg);
        assert_eq!((o.false_calls[0], o.fails[0]), (0, true));
    }

    /// At the reference method's rate, another method is read from its strictest
    /// threshold down: a loose threshold whose calls have merged into one plate-wide
    /// region (few calls, every part failed) is not taken for a low rate.
    #[test]
    fn equal_rate_is_read_from_the_strict_end() {
        let thresholds = vec![-8.0, 0.0, 1.0, 2.0];
        // Calls per plate at each threshold: merged at −8, many at 0, few above.
        let other = |plate: usize| MethodOutcome {
            method: "other".into(),
            thresholds: thresholds.clone(),
            operating: 1,
            detection: vec![if plate.is_multiple_of(2) { 1.5 } else { -1.0 }],
            false_calls: vec![1, 9, 2, 0],
            fails: vec![true, true, true, false],
        };
        let reference = MethodOutcome {
            method: "ref".into(),
            thresholds: vec![0.0],
            operating: 0,
            detection: vec![0.5],
            false_calls: vec![2],
            fails: vec![true],
        };
        let outcomes: Vec<PlateOutcome> = (0..20)
            .map(|plate| PlateOutcome {
                format_version: OUTCOME_VERSION,
                plate,
                dir: format!("plate-{plate:05}"),
                provenance: String::new(),
                area_m2: 0.1,
                sound_area_m2: 0.09,
                defects: vec![DefectTruth {
                    kind: DefectKind::Hole,
                    diameter_mm: 10.0,
                    depth_mm: 1.0 + plate as f64 * 0.2,
                    pixels: 30,
                    peak_contrast_netd: None,
                }],
                methods: vec![reference.clone(), other(plate)],
            })
            .collect();
        let report = summarize(&outcomes, &["ref".into(), "other".into()], "ref").unwrap();
        let other = &report.methods[1];
        let at = other.at_reference_rate.as_ref().unwrap();
        // Within the reference's 2 calls a plate: thresholds 2 and 1; 0 exceeds it, so
        // −8 (1 call, merged) is never reached.
        assert_eq!(at.point.threshold, 1.0);
    }

    #[test]
    fn regions_are_eight_connected_and_per_class() {
        #[rustfmt::skip]
        let map = [
            1, 0, 0,
            0, 1, 2,
            0, 0, 2,
        ];
        let r = regions(&map, 3, 3, 1);
        assert_eq!(r.len(), 2);
        assert_eq!(regions(&map, 3, 3, 3).len(), 0);
    }
}
