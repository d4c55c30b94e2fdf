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
    #[serde(default)]
    pub inclusions: usize,
}

impl PlateEntry {
    /// Defects of every kind on the plate (0: a sound plate).
    pub fn defects(&self) -> usize {
        self.holes + self.delaminations + self.surface_defects + self.inclusions
    }
}

/// A closed range of a drawn quantity, `[low, high]`.
pub type Range = [f64; 2];

/// What the dataset generator draws each plate from, recorded in `index.json` so that a
/// dataset says what it covers. Spreads are relative (±); depths are from the inspected
/// face.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DrawRanges {
    /// Density, specific heat and both conductivities, each ± this share.
    pub material_spread: f64,
    pub thickness_spread: f64,
    /// Heating power (or energy) and duration, each ± this share.
    pub heating_spread: f64,
    /// Defects on a plate that is not sound, `[min, max]`.
    pub defects_per_plate: [usize; 2],
    /// Shares of holes, delaminations, inclusions and surface spots among defects.
    pub kind_shares: KindShares,
    /// Every defect's diameter (capped at a third of the plate's smaller side).
    pub diameter_mm: Range,
    /// Hole bottoms, log-uniform between `hole_depth_min_mm` and this share of the
    /// plate's thickness, so shallow and deep (faint) holes both occur.
    pub hole_depth_min_mm: f64,
    pub hole_depth_max_share: f64,
    /// Delamination and inclusion tops, as shares of the thickness (uniform).
    pub delamination_depth_share: Range,
    pub delamination_gap_mm: Range,
    pub inclusion_depth_share: Range,
    pub inclusion_thickness_mm: Range,
    /// Conductivity of insulating inclusions (PTFE, film, foam), log-uniform.
    pub inclusion_low_k_w_mk: Range,
    /// Conductivity of conducting inclusions (metal shims), log-uniform.
    pub inclusion_high_k_w_mk: Range,
    /// Share of inclusions that conduct better than the plate.
    pub inclusion_high_k_share: f64,
    /// Surface spots: absorptivity factor of dark spots; bright ones go from the low end
    /// of `spot_bright_absorptivity` to what keeps the absorptivity at most 1.
    pub spot_dark_absorptivity: Range,
    pub spot_bright_absorptivity: Range,
    pub spot_emissivity: Range,
    /// Lamp peak-to-valley non-uniformity across the view (0.67: one side twice as
    /// warm as the other).
    pub lamp_non_uniformity: Range,
    pub camera_netd_k: Range,
    pub camera_fixed_pattern_k: Range,
    pub emissivity_texture_amplitude: Range,
    pub emissivity_texture_correlation_mm: Range,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KindShares {
    pub holes: f64,
    pub delaminations: f64,
    pub inclusions: f64,
    pub surface_spots: f64,
}

/// Shard `index` (1-based) of `count`: a contiguous block of a dataset's plates, so that
/// a large dataset runs as a batch job (one shard per task) and merges afterwards.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

/// A `--shard` argument that is not `K/N` with 1 ≤ K ≤ N.
#[derive(Debug, thiserror::Error)]
#[error("{0:?} is not a shard: write K/N with 1 ≤ K ≤ N (e.g. 2/8)")]
pub struct BadShard(String);

impl std::str::FromStr for Shard {
    type Err = BadShard;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadShard(s.to_string());
        let (k, n) = s.split_once('/').ok_or_else(bad)?;
        let (index, count) = (
            k.trim().parse::<usize>().map_err(|_| bad())?,
            n.trim().parse::<usize>().map_err(|_| bad())?,
        );
        if index == 0 || index > count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl Shard {
    /// The whole job as one shard.
    pub const ALL: Shard = Shard { index: 1, count: 1 };

    /// The plates of this shard out of `plates`: block `index` of `count` near-equal
    /// contiguous blocks.
    pub fn plates(self, plates: usize) -> std::ops::Range<usize> {
        let at = |k: usize| k * plates / self.count;
        at(self.index - 1)..at(self.index)
    }

    /// The index file a shard writes in the dataset folder.
    pub fn index_file(self) -> String {
        format!("index.shard-{}-of-{}.json", self.index, self.count)
    }
}

/// `index.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DatasetIndex {
    pub seed: u64,
    /// The specimen the plates were varied from.
    pub template: String,
    /// What the plates were drawn from (absent in datasets older than this field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ranges: Option<DrawRanges>,
    /// Set in a shard's own index: which shard, out of how many plates in all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<ShardOf>,
    pub plates: Vec<PlateEntry>,
}

/// A shard index's place in the whole dataset.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardOf {
    pub shard: Shard,
    pub total_plates: usize,
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
    #[error("{dir}: no shard indexes (index.shard-K-of-N.json) to merge")]
    NoShards { dir: PathBuf },
    #[error("{path}: {reason}")]
    ShardMismatch { path: PathBuf, reason: String },
    #[error("{dir}: shard {missing} of {count} has not finished (no {file})")]
    ShardMissing {
        dir: PathBuf,
        missing: usize,
        count: usize,
        file: String,
    },
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

    /// Reads a shard index written by shard `shard` in `dir`.
    fn read_shard(dir: &Path, shard: Shard) -> Result<Self, IndexError> {
        let path = dir.join(shard.index_file());
        read_json(&path).map_err(|e| match e {
            ReadJson::Io(_) => IndexError::ShardMissing {
                dir: dir.to_path_buf(),
                missing: shard.index,
                count: shard.count,
                file: shard.index_file(),
            },
            ReadJson::Parse(reason) => IndexError::Parse { path, reason },
        })
    }

    /// Merges the shard indexes in `dir` into the index one run over all plates writes
    /// (not written here). Every shard of the count the first one names must be there,
    /// all from the same dataset, together holding each plate exactly once.
    pub fn merge_shards(dir: &Path) -> Result<Self, IndexError> {
        let listing = std::fs::read_dir(dir).map_err(|source| IndexError::Missing {
            dir: dir.to_path_buf(),
            source,
        })?;
        let count = listing
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                let rest = name.strip_prefix("index.shard-")?.strip_suffix(".json")?;
                let (_, n) = rest.split_once("-of-")?;
                n.parse::<usize>().ok()
            })
            .max()
            .ok_or_else(|| IndexError::NoShards { dir: dir.to_path_buf() })?;
        let mut merged: Option<DatasetIndex> = None;
        let mut total = 0;
        for k in 1..=count {
            let shard = Shard { index: k, count };
            let part = Self::read_shard(dir, shard)?;
            let path = dir.join(shard.index_file());
            let mismatch = |reason: String| IndexError::ShardMismatch {
                path: path.clone(),
                reason,
            };
            let of = part
                .shard
                .ok_or_else(|| mismatch("is not a shard index (no shard field)".into()))?;
            if of.shard != shard {
                return Err(mismatch(format!("says it is shard {}", of.shard)));
            }
            let want: Vec<usize> = shard.plates(of.total_plates).collect();
            let have: Vec<usize> = part.plates.iter().map(|p| p.plate).collect();
            if have != want {
                return Err(mismatch(format!(
                    "holds plates {have:?}, shard {shard} of {} plates is {want:?}",
                    of.total_plates
                )));
            }
            match &mut merged {
                None => {
                    total = of.total_plates;
                    merged = Some(DatasetIndex { shard: None, ..part });
                }
                Some(m) => {
                    if m.seed != part.seed
                        || m.template != part.template
                        || m.ranges != part.ranges
                        || total != of.total_plates
                    {
                        return Err(mismatch(format!(
                            "is from another dataset (seed {}, template {}, {} plates) than shard 1 (seed {}, template {}, {total} plates)",
                            part.seed, part.template, of.total_plates, m.seed, m.template
                        )));
                    }
                    m.plates.extend(part.plates);
                }
            }
        }
        merged.ok_or_else(|| IndexError::NoShards { dir: dir.to_path_buf() })
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
            inclusions: 1,
        };
        let index = DatasetIndex {
            seed: 4,
            template: "gfrp-sound".into(),
            ranges: None,
            shard: None,
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
    fn shards_cover_every_plate_once_and_parse() {
        for plates in [0, 1, 2, 7, 10, 101] {
            for count in 1..=5 {
                let all: Vec<usize> = (1..=count)
                    .flat_map(|k| Shard { index: k, count }.plates(plates))
                    .collect();
                assert_eq!(all, (0..plates).collect::<Vec<_>>(), "{plates} plates in {count}");
            }
        }
        assert_eq!("2/8".parse::<Shard>().unwrap(), Shard { index: 2, count: 8 });
        for bad in ["0/3", "4/3", "3", "a/b", "1/0"] {
            let e = bad.parse::<Shard>().unwrap_err().to_string();
            assert!(e.contains("is not a shard"), "{bad}: {e}");
        }
    }

    #[test]
    fn a_missing_or_foreign_shard_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let e = DatasetIndex::merge_shards(dir.path()).unwrap_err().to_string();
        assert!(e.contains("no shard indexes"), "{e}");
        let entry = |n: usize| PlateEntry {
            plate: n,
            dir: format!("plate-{n:05}"),
            split: Split::Train,
            seed: 0,
            holes: 0,
            delaminations: 0,
            surface_defects: 0,
            inclusions: 0,
        };
        let part = |k: usize, seed: u64| DatasetIndex {
            seed,
            template: "t".into(),
            ranges: None,
            shard: Some(ShardOf {
                shard: Shard { index: k, count: 2 },
                total_plates: 4,
            }),
            plates: Shard { index: k, count: 2 }.plates(4).map(entry).collect(),
        };
        write_json(&dir.path().join("index.shard-1-of-2.json"), &part(1, 3)).unwrap();
        let e = DatasetIndex::merge_shards(dir.path()).unwrap_err().to_string();
        assert!(e.contains("shard 2 of 2 has not finished"), "{e}");
        write_json(&dir.path().join("index.shard-2-of-2.json"), &part(2, 4)).unwrap();
        let e = DatasetIndex::merge_shards(dir.path()).unwrap_err().to_string();
        assert!(e.contains("index.shard-2-of-2.json: is from another dataset"), "{e}");
        write_json(&dir.path().join("index.shard-2-of-2.json"), &part(2, 3)).unwrap();
        let merged = DatasetIndex::merge_shards(dir.path()).unwrap();
        assert_eq!(merged.shard, None);
        assert_eq!(merged.plates, (0..4).map(entry).collect::<Vec<_>>());
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
