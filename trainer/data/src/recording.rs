//! `meta.json` of a simulated recording: what was simulated (the specimen, the seed), how
//! the arrays are laid out and what the run cost. Real recordings have none; readers that
//! can do without it use [`RecordingMeta::find`].

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::class::Class;
use crate::io::{ReadJson, WriteError, read_json, write_json};
use crate::specimen::Specimen;

/// Format version of the written recordings.
pub const RECORDING_VERSION: u32 = 1;

/// File name of the metadata in a recording folder.
pub const META_FILE: &str = "meta.json";

/// What a simulation run measured.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunStats {
    pub frames: usize,
    pub steps: u64,
    pub z_nodes: usize,
    pub cell_updates: u64,
    /// Wall-clock figures; left out of dataset plates, which are byte-reproducible.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wall_s: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cell_updates_per_s: Option<f64>,
}

/// The units of the arrays, spelled out for whoever opens the folder by hand.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Units {
    pub sequence: String,
    pub times: String,
    pub depth: String,
}

impl Units {
    /// The units the simulator writes.
    pub fn simulated() -> Self {
        Units {
            sequence: "kelvin, f32, frames x height x width".into(),
            times: "seconds from the start of heating, f64 (pre-heating frames negative)".into(),
            depth: "mm from the inspected face; 0 for surface defects; NaN where sound".into(),
        }
    }
}

/// `meta.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RecordingMeta {
    pub format_version: u32,
    pub simulator: String,
    pub seed: u64,
    pub width: usize,
    pub height: usize,
    pub frames: usize,
    pub units: Units,
    pub classes: [Class; Class::COUNT],
    pub specimen: Specimen,
    pub stats: RunStats,
}

/// Why `meta.json` cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum MetaError {
    #[error("{dir}: no meta.json")]
    Read {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a recording's metadata: {reason}")]
    Parse { path: PathBuf, reason: String },
    #[error("{path}: format version {found}, this build reads {RECORDING_VERSION}")]
    Version { path: PathBuf, found: u32 },
}

impl RecordingMeta {
    /// Reads `dir/meta.json`.
    pub fn read(dir: &Path) -> Result<Self, MetaError> {
        let path = dir.join(META_FILE);
        let meta: RecordingMeta = read_json(&path).map_err(|e| match e {
            ReadJson::Io(source) => MetaError::Read {
                dir: dir.to_path_buf(),
                source,
            },
            ReadJson::Parse(reason) => MetaError::Parse {
                path: path.clone(),
                reason,
            },
        })?;
        if meta.format_version != RECORDING_VERSION {
            return Err(MetaError::Version {
                path,
                found: meta.format_version,
            });
        }
        Ok(meta)
    }

    /// `dir/meta.json` if the folder has one (a simulated recording), `None` for a real
    /// recording; a file that is there but unreadable is an error.
    pub fn find(dir: &Path) -> Result<Option<Self>, MetaError> {
        if dir.join(META_FILE).is_file() {
            Self::read(dir).map(Some)
        } else {
            Ok(None)
        }
    }

    /// Writes `dir/meta.json` atomically.
    pub fn write(&self, dir: &Path) -> Result<(), WriteError> {
        write_json(&dir.join(META_FILE), self)
    }

    /// Heating duration of the simulated station, s.
    pub fn heating_s(&self) -> f64 {
        self.specimen.station.heating.duration_s()
    }

    /// Pixel → plate coordinates (mm).
    pub fn geometry(&self) -> PlateGeometry {
        PlateGeometry::new(self.specimen.view_mm(), self.width, self.height)
    }
}

/// Heating duration of a simulated recording (s), `None` for a real one.
pub fn heating_end(dir: &Path) -> Result<Option<f64>, MetaError> {
    Ok(RecordingMeta::find(dir)?.map(|m| m.heating_s()))
}

/// Where the camera's pixels fall on the plate.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PlateGeometry {
    pub x0: f64,
    pub y0: f64,
    /// Pixel pitch, mm.
    pub dx: f64,
    pub dy: f64,
}

impl PlateGeometry {
    /// `width` × `height` pixels over the view rectangle `[x0, y0, x1, y1]` (mm).
    pub fn new([x0, y0, x1, y1]: [f64; 4], width: usize, height: usize) -> Self {
        PlateGeometry {
            x0,
            y0,
            dx: (x1 - x0) / width as f64,
            dy: (y1 - y0) / height as f64,
        }
    }

    /// Centre of pixel (x, y) in mm.
    pub fn mm(&self, x: f64, y: f64) -> [f64; 2] {
        [self.x0 + (x + 0.5) * self.dx, self.y0 + (y + 0.5) * self.dy]
    }

    /// Area of one pixel, mm².
    pub fn pixel_mm2(&self) -> f64 {
        self.dx * self.dy
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> RecordingMeta {
        RecordingMeta {
            format_version: RECORDING_VERSION,
            simulator: "test".into(),
            seed: 3,
            width: 160,
            height: 120,
            frames: 10,
            units: Units::simulated(),
            classes: Class::ALL,
            specimen: Specimen::load("gfrp-reference").unwrap(),
            stats: RunStats {
                frames: 10,
                steps: 1,
                z_nodes: 2,
                cell_updates: 3,
                wall_s: Some(0.5),
                cell_updates_per_s: Some(6.0),
            },
        }
    }

    #[test]
    fn round_trips_and_refuses_other_versions_and_garbage() {
        let dir = tempfile::tempdir().unwrap();
        assert!(RecordingMeta::find(dir.path()).unwrap().is_none());
        let m = meta();
        m.write(dir.path()).unwrap();
        assert_eq!(RecordingMeta::read(dir.path()).unwrap(), m);
        let mut v2 = m.clone();
        v2.format_version = 2;
        v2.write(dir.path()).unwrap();
        let e = RecordingMeta::read(dir.path()).unwrap_err().to_string();
        assert!(e.contains("format version 2"), "{e}");
        std::fs::write(dir.path().join(META_FILE), "{\"format_version\": 1}").unwrap();
        let e = RecordingMeta::find(dir.path()).unwrap_err().to_string();
        assert!(e.contains("meta.json: not a recording's metadata"), "{e}");
    }
}
