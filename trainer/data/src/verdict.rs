//! `verdict.json`: what the host twin (`trainer infer`) decided on one recording, in the
//! device's terms — verdict, regions, acquisition — and, for a simulated recording, the
//! part's true defects against the class map. `cargo xtask demo` reads it back.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tqc_shared::verdict::Verdict;

use crate::io::{ReadJson, WriteError, read_json, write_json};

/// File name of the verdict in an inference folder.
pub const VERDICT_FILE: &str = "verdict.json";

/// `verdict.json`. Fields are in alphabetical order, as the file lists them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VerdictFile {
    pub acquisition: AcquisitionEntry,
    /// Pixels per class name.
    pub class_pixels: BTreeMap<String, u32>,
    /// Why the acquisition is not trusted (the verdict is then RETEST).
    pub fault: Option<String>,
    pub height: usize,
    /// The model blob that ran.
    pub model: String,
    /// All regions found, including those not listed.
    pub region_count: u32,
    /// The largest regions, largest first.
    pub regions: Vec<RegionEntry>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub truth: Option<Truth>,
    #[serde(with = "verdict_label")]
    pub verdict: Verdict,
    pub width: usize,
}

/// The acquisition as the device's RETEST limits saw it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AcquisitionEntry {
    pub frames: u32,
    /// Median rise at the first feature sample, K.
    pub median_rise_k: f64,
    pub saturated_permille: u16,
    pub saturated_readings: u32,
}

/// One defect region of the class map.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RegionEntry {
    /// Inclusive bounding box `[min_x, min_y, max_x, max_y]`, pixels.
    pub box_px: [u16; 4],
    /// Centroid on the plate, mm (simulated recordings only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub centroid_mm: Option<[f64; 2]>,
    pub centroid_px: [f64; 2],
    /// The model's class name.
    pub class: String,
    /// Median of the model's depth estimate over the region, mm below the inspected face
    /// (models with a depth output; meaningful for in-depth classes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub depth_mm: Option<f64>,
    /// Diameter of the disc of the region's area, mm (simulated recordings only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub equivalent_diameter_mm: Option<f64>,
    pub equivalent_diameter_px: f64,
    pub pixels: u32,
}

/// The part's true defects against the class map.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Truth {
    pub defects: Vec<TrueDefect>,
    pub false_call_pixels: usize,
    /// Defects a region covers.
    pub found: usize,
    /// Pixel pitch `[x, y]`, mm.
    pub pixel_mm: [f64; 2],
}

/// One true defect.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrueDefect {
    pub centre_mm: [f64; 2],
    pub class: String,
    /// Below the inspected face, mm (none for surface defects).
    pub depth_mm: Option<f64>,
    pub equivalent_diameter_mm: f64,
    /// The depth the station reports for an in-depth defect: that of the listed region
    /// holding most of its flagged pixels (models with a depth output, defects a region
    /// covers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimated_depth_mm: Option<f64>,
    /// Its pixels flagged as a defect of any class.
    pub flagged_pixels: usize,
    pub found: bool,
    /// Its field in the specimen (`hole[3]`, `surface_defect[0]` …).
    pub name: String,
    pub pixels: usize,
}

/// Why a verdict file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum VerdictFileError {
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a verdict file: {reason}")]
    Parse { path: PathBuf, reason: String },
}

impl VerdictFile {
    /// Reads `dir/verdict.json`.
    pub fn read(dir: &Path) -> Result<Self, VerdictFileError> {
        let path = dir.join(VERDICT_FILE);
        read_json(&path).map_err(|e| match e {
            ReadJson::Io(source) => VerdictFileError::Read { path, source },
            ReadJson::Parse(reason) => VerdictFileError::Parse { path, reason },
        })
    }

    /// Writes `dir/verdict.json` atomically.
    pub fn write(&self, dir: &Path) -> Result<(), WriteError> {
        write_json(&dir.join(VERDICT_FILE), self)
    }
}

/// The verdict as its LED label (`"PASS"`, `"FAIL"`, `"RETEST"`).
mod verdict_label {
    use serde::{Deserialize, Deserializer, Serializer};
    use tqc_shared::verdict::Verdict;

    pub fn serialize<S: Serializer>(v: &Verdict, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(v.label())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Verdict, D::Error> {
        let label = String::deserialize(d)?;
        Verdict::from_label(&label)
            .ok_or_else(|| serde::de::Error::custom(format!("{label:?} is not PASS, FAIL or RETEST")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file() -> VerdictFile {
        VerdictFile {
            acquisition: AcquisitionEntry {
                frames: 601,
                median_rise_k: 4.5,
                saturated_permille: 0,
                saturated_readings: 0,
            },
            class_pixels: [("sound".to_string(), 10), ("surface".to_string(), 2)].into(),
            fault: None,
            height: 3,
            model: "m.tqm".into(),
            region_count: 1,
            regions: vec![RegionEntry {
                box_px: [0, 0, 1, 1],
                centroid_mm: None,
                centroid_px: [0.5, 0.5],
                class: "surface".into(),
                depth_mm: None,
                equivalent_diameter_mm: None,
                equivalent_diameter_px: 1.6,
                pixels: 2,
            }],
            truth: None,
            verdict: Verdict::Fail,
            width: 4,
        }
    }

    #[test]
    fn round_trips_with_the_verdict_as_its_label() {
        let dir = tempfile::tempdir().unwrap();
        let f = file();
        f.write(dir.path()).unwrap();
        let text = std::fs::read_to_string(dir.path().join(VERDICT_FILE)).unwrap();
        assert!(text.contains("\"verdict\": \"FAIL\""), "{text}");
        assert!(!text.contains("centroid_mm") && !text.contains("truth"), "{text}");
        assert_eq!(VerdictFile::read(dir.path()).unwrap(), f);
    }

    #[test]
    fn an_unknown_verdict_is_refused_with_the_file_named() {
        let dir = tempfile::tempdir().unwrap();
        let text = serde_json::to_string(&file()).unwrap().replace("\"FAIL\"", "\"MAYBE\"");
        std::fs::write(dir.path().join(VERDICT_FILE), text).unwrap();
        let e = VerdictFile::read(dir.path()).unwrap_err().to_string();
        assert!(e.contains("verdict.json") && e.contains("\"MAYBE\" is not PASS"), "{e}");
    }
}
