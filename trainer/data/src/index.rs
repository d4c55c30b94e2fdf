//! `index.json` of a dataset folder: its plates, the split each belongs to (held out by
//! plate, never by pixel) and what each holds.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::io::{ReadJson, WriteError, read_json, write_json};

/// File name of the index in a dataset folder.
pub const INDEX_FILE: &str = "index.json";

/// Which part of a dataset a plate belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    Train,
    Validation,
    Test,
}

impl Split {
    pub const ALL: [Split; 3] = [Split::Train, Split::Validation, Split::Test];

    pub const fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Validation => "validation",
            Split::Test => "test",
        }
    }
}

impl std::fmt::Display for Split {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A split name that is not one.
#[derive(Debug, thiserror::Error)]
#[error("no {0} split: a dataset has train, validation and test plates")]
pub struct UnknownSplit(String);

impl std::str::FromStr for Split {
    type Err = UnknownSplit;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Split::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| UnknownSplit(s.to_string()))
    }
}

/// One plate of a dataset.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlateEntry {
    pub plate: usize,
    /// Its folder, relative to the dataset's.
    pub dir: String,
    pub split: Split,
    /// The simulation seed of this plate.
    pub seed: u64,
    pub holes: usize,
    pub delaminations: usize,
    pub surface_defects: usize,
}

/// `index.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DatasetIndex {
    pub seed: u64,
    /// The specimen the plates were varied from.
    pub template: String,
    pub plates: Vec<PlateEntry>,
}

/// Why a dataset's index cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("{dir}: no index.json (made by trainer dataset)")]
    Missing {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a dataset index: {reason}")]
    Parse { path: PathBuf, reason: String },
}

impl DatasetIndex {
    /// Reads `dir/index.json`.
    pub fn read(dir: &Path) -> Result<Self, IndexError> {
        let path = dir.join(INDEX_FILE);
        read_json(&path).map_err(|e| match e {
            ReadJson::Io(source) => IndexError::Missing {
                dir: dir.to_path_buf(),
                source,
            },
            ReadJson::Parse(reason) => IndexError::Parse { path, reason },
        })
    }

    /// Writes `dir/index.json` atomically.
    pub fn write(&self, dir: &Path) -> Result<(), WriteError> {
        write_json(&dir.join(INDEX_FILE), self)
    }

    /// The plates of `split`.
    pub fn plates_in(&self, split: Split) -> impl Iterator<Item = &PlateEntry> {
        self.plates.iter().filter(move |p| p.split == split)
    }

    /// The folders of the plates of `split`, under the dataset folder `root`.
    pub fn dirs(&self, root: &Path, split: Split) -> Vec<PathBuf> {
        self.plates_in(split).map(|p| root.join(&p.dir)).collect()
    }
}

/// The folders of a dataset's `split` (reads its index).
pub fn split_dirs(data: &Path, split: Split) -> Result<Vec<PathBuf>, IndexError> {
    Ok(DatasetIndex::read(data)?.dirs(data, split))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_selects_by_split() {
        let dir = tempfile::tempdir().unwrap();
        let plate = |n: usize, split| PlateEntry {
            plate: n,
            dir: format!("plate-{n:05}"),
            split,
            seed: n as u64,
            holes: 1,
            delaminations: 0,
            surface_defects: 2,
        };
        let index = DatasetIndex {
            seed: 4,
            template: "gfrp-sound".into(),
            plates: vec![plate(0, Split::Train), plate(1, Split::Test), plate(2, Split::Train)],
        };
        index.write(dir.path()).unwrap();
        let back = DatasetIndex::read(dir.path()).unwrap();
        assert_eq!(back, index);
        assert_eq!(
            back.dirs(Path::new("/d"), Split::Train),
            [PathBuf::from("/d/plate-00000"), PathBuf::from("/d/plate-00002")]
        );
        assert!(back.dirs(Path::new("/d"), Split::Validation).is_empty());
        let text = std::fs::read_to_string(dir.path().join(INDEX_FILE)).unwrap();
        assert!(text.contains("\"split\": \"test\""), "{text}");
        assert_eq!("validation".parse::<Split>().unwrap(), Split::Validation);
        assert!(
            "holdout"
                .parse::<Split>()
                .unwrap_err()
                .to_string()
                .contains("no holdout split")
        );
    }

    #[test]
    fn a_missing_or_foreign_index_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let e = DatasetIndex::read(dir.path()).unwrap_err().to_string();
        assert!(e.contains("no index.json"), "{e}");
        std::fs::write(dir.path().join(INDEX_FILE), "{\"plates\": 3}").unwrap();
        let e = DatasetIndex::read(dir.path()).unwrap_err().to_string();
        assert!(e.contains("not a dataset index"), "{e}");
    }
}
