//! Scoring a defect map against ground truth.
//!
//! - per class IoU: a binary map (0 / 1) is scored as sound vs defect of any kind; a map
//!   with classes (0 sound, 1 in-depth, 2 surface) class by class;
//! - pixel precision and recall of "defect" (any non-zero class);
//! - per defect: found when at least half of its footprint is flagged;
//! - false calls: flagged pixels on sound ground, as a pixel count and, when the pixel
//!   size is known, in mm² (on a defect-free plate this is all that can go wrong).

use serde::Serialize;
use tqc_data::{Class, RecordingMeta};
use tqc_sim::scene::Scene;

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ClassScore {
    pub class: String,
    pub iou: f64,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct DefectScore {
    pub name: String,
    pub class: u8,
    pub depth_mm: f64,
    pub pixels: usize,
    pub flagged: usize,
    pub found: bool,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Evaluation {
    pub classes: Vec<ClassScore>,
    pub precision: f64,
    pub recall: f64,
    pub defects: Vec<DefectScore>,
    pub found: usize,
    pub false_call_pixels: usize,
    pub false_call_mm2: Option<f64>,
}

/// A defect footprint to check, named.
pub struct Footprint {
    pub name: String,
    pub class: u8,
    pub depth_mm: f64,
    pub pixels: Vec<usize>,
}

impl Footprint {
    /// Pixels of the footprint `map` flags (any defect class).
    pub fn flagged_in(&self, map: &[u8]) -> usize {
        self.pixels
            .iter()
            .filter(|&&i| map.get(i).is_some_and(|&c| c != 0))
            .count()
    }

    /// Whether `map` finds the defect: at least half its footprint flagged.
    pub fn found_in(&self, map: &[u8]) -> bool {
        !self.pixels.is_empty() && 2 * self.flagged_in(map) >= self.pixels.len()
    }
}

/// 4-connected components of non-zero `labels` with the same class, as footprints.
pub fn components(labels: &[u8], depth: Option<&[f32]>, w: usize, h: usize) -> Vec<Footprint> {
    let mut seen = vec![false; labels.len()];
    let mut out = Vec::new();
    for start in 0..labels.len() {
        if labels[start] == 0 || seen[start] {
            continue;
        }
        let class = labels[start];
        let mut stack = vec![start];
        seen[start] = true;
        let mut pixels = Vec::new();
        while let Some(i) = stack.pop() {
            pixels.push(i);
            let (x, y) = (i % w, i / w);
            let mut push = |j: usize| {
                if !seen[j] && labels[j] == class {
                    seen[j] = true;
                    stack.push(j);
                }
            };
            if x > 0 {
                push(i - 1);
            }
            if x + 1 < w {
                push(i + 1);
            }
            if y > 0 {
                push(i - w);
            }
            if y + 1 < h {
                push(i + w);
            }
        }
        pixels.sort_unstable();
        let d = depth.map_or(f64::NAN, |d| d[pixels[0]] as f64);
        out.push(Footprint {
            name: format!("defect at ({}, {}) px", pixels[0] % w, pixels[0] / w),
            class,
            depth_mm: d,
            pixels,
        });
    }
    out
}

/// Confusion matrix of `N` classes, `[true class][predicted class]` pixel counts; values
/// outside `0..N` are not counted.
pub fn confusion<const N: usize>(pred: &[u8], labels: &[u8]) -> [[u64; N]; N] {
    let mut m = [[0u64; N]; N];
    for (&p, &l) in pred.iter().zip(labels) {
        if (p as usize) < N && (l as usize) < N {
            m[l as usize][p as usize] += 1;
        }
    }
    m
}

/// Per-class IoU of a confusion matrix (1 for a class absent from both maps).
pub fn iou_of<const N: usize>(m: &[[u64; N]; N]) -> [f64; N] {
    let mut out = [0.0; N];
    for (c, o) in out.iter_mut().enumerate() {
        let inter = m[c][c];
        let union: u64 = (0..N).map(|k| m[c][k] + m[k][c]).sum::<u64>() - inter;
        *o = if union == 0 { 1.0 } else { inter as f64 / union as f64 };
    }
    out
}

/// Per-class IoU of a prediction against labels.
pub fn iou<const N: usize>(pred: &[u8], labels: &[u8]) -> [f64; N] {
    iou_of(&confusion::<N>(pred, labels))
}

pub fn evaluate(map: &[u8], labels: &[u8], footprints: &[Footprint], pixel_mm2: Option<f64>) -> Evaluation {
    let classed = map.iter().any(|&m| m >= 2);
    let classes = if classed {
        Class::ALL
            .iter()
            .zip(iou::<{ Class::COUNT }>(map, labels))
            .map(|(c, iou)| ClassScore {
                class: c.name().to_string(),
                iou,
            })
            .collect()
    } else {
        let binary = |v: &[u8]| v.iter().map(|&x| u8::from(x != 0)).collect::<Vec<_>>();
        let [sound, defect] = iou::<2>(&binary(map), &binary(labels));
        vec![
            ClassScore {
                class: "sound".into(),
                iou: sound,
            },
            ClassScore {
                class: "defect".into(),
                iou: defect,
            },
        ]
    };
    let (mut tp, mut fp, mut fn_) = (0usize, 0usize, 0usize);
    for (&m, &l) in map.iter().zip(labels) {
        match (m != 0, l != 0) {
            (true, true) => tp += 1,
            (true, false) => fp += 1,
            (false, true) => fn_ += 1,
            _ => {}
        }
    }
    let ratio = |a: usize, b: usize| if a + b == 0 { 1.0 } else { a as f64 / (a + b) as f64 };
    let defects: Vec<DefectScore> = footprints
        .iter()
        .map(|f| {
            let flagged = f.flagged_in(map);
            DefectScore {
                name: f.name.clone(),
                class: f.class,
                depth_mm: f.depth_mm,
                pixels: f.pixels.len(),
                flagged,
                found: f.found_in(map),
            }
        })
        .collect();
    Evaluation {
        classes,
        precision: ratio(tp, fp),
        recall: ratio(tp, fn_),
        found: defects.iter().filter(|d| d.found).count(),
        defects,
        false_call_pixels: fp,
        false_call_mm2: pixel_mm2.map(|a| a * fp as f64),
    }
}

/// Named footprints and the pixel area (mm²), from the specimen a simulated recording was
/// made of (its `meta.json`); `None` for a recording without one.
pub fn footprints_of(dir: &std::path::Path) -> Result<Option<(Vec<Footprint>, f64)>, ScoreError> {
    match RecordingMeta::find(dir)? {
        Some(meta) => footprints_in(&meta, dir).map(Some),
        None => Ok(None),
    }
}

/// [`footprints_of`] for a recording in `dir` whose `meta.json` is already read.
pub fn footprints_in(meta: &RecordingMeta, dir: &std::path::Path) -> Result<(Vec<Footprint>, f64), ScoreError> {
    let scene = Scene::build(&meta.specimen, meta.seed).map_err(|source| ScoreError::Scene {
        dir: dir.to_path_buf(),
        source,
    })?;
    let area = scene.dx * scene.dy * 1e6;
    let fps = scene
        .defects
        .into_iter()
        .map(|d| Footprint {
            name: d.name,
            class: d.class,
            depth_mm: d.depth_mm,
            pixels: d.pixels,
        })
        .collect();
    Ok((fps, area))
}

/// Why the ground truth of a recording cannot be had.
#[derive(Debug, thiserror::Error)]
pub enum ScoreError {
    #[error(transparent)]
    Meta(#[from] tqc_data::recording::MetaError),
    #[error("{dir}: the specimen of meta.json does not build")]
    Scene {
        dir: std::path::PathBuf,
        #[source]
        source: tqc_sim::solver::SolverError,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_a_simple_map() {
        // 4 × 3 image: a 2-pixel defect and a 1-pixel surface defect.
        let labels = [0, 1, 1, 0, 0, 0, 0, 0, 2, 0, 0, 0];
        let map = [0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0];
        let fp = components(&labels, None, 4, 3);
        assert_eq!(fp.len(), 2);
        let e = evaluate(&map, &labels, &fp, Some(4.0));
        assert_eq!(e.precision, 0.5);
        assert!((e.recall - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(e.false_call_pixels, 1);
        assert_eq!(e.false_call_mm2, Some(4.0));
        // Half of the 2-pixel defect is flagged: found; the surface one is not.
        assert!(e.defects[0].found && !e.defects[1].found);
        assert_eq!(e.found, 1);
        let defect_iou = e.classes.iter().find(|c| c.class == "defect").unwrap().iou;
        assert!((defect_iou - 1.0 / 4.0).abs() < 1e-12);
        // A perfect class map.
        let e = evaluate(&labels, &labels, &fp, None);
        assert!(e.classes.iter().all(|c| c.iou == 1.0) && e.classes.len() == 3);
    }
}
