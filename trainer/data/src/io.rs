//! Writing files so that an interrupted run never leaves half of one: everything goes to a
//! `.partial` sibling first and is renamed over the target when complete.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use npyz::WriterBuilder;

/// A file that could not be written.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("cannot write {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {path}: {reason}")]
    Npy { path: PathBuf, reason: String },
    #[error("cannot remove {path}")]
    Remove {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot move {from} to {to}")]
    Rename {
        from: PathBuf,
        to: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot serialize {path}")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

/// `path` with `.partial` appended: where it is written before it is complete.
pub fn partial_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".partial");
    PathBuf::from(s)
}

/// Removes the `.partial` files directly in `dir` (none if `dir` does not exist): what a
/// run killed mid-write left behind, since every file is written under that name first.
/// Returns what it removed, for the caller to say so.
pub fn remove_partials(dir: &Path) -> Result<Vec<PathBuf>, WriteError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(WriteError::Write {
                path: dir.to_path_buf(),
                source,
            });
        }
    };
    let mut removed = Vec::new();
    for entry in entries {
        let path = entry
            .map_err(|source| WriteError::Write {
                path: dir.to_path_buf(),
                source,
            })?
            .path();
        if path.is_file() && path.extension().is_some_and(|e| e == "partial") {
            std::fs::remove_file(&path).map_err(|source| WriteError::Remove {
                path: path.clone(),
                source,
            })?;
            removed.push(path);
        }
    }
    removed.sort();
    Ok(removed)
}

/// Moves a complete `.partial` file over its target.
pub fn commit(partial: &Path, path: &Path) -> Result<(), WriteError> {
    std::fs::rename(partial, path).map_err(|source| WriteError::Rename {
        from: partial.to_path_buf(),
        to: path.to_path_buf(),
        source,
    })
}

/// Writes `bytes` to `path` atomically.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), WriteError> {
    let partial = partial_path(path);
    std::fs::write(&partial, bytes).map_err(|source| WriteError::Write {
        path: partial.clone(),
        source,
    })?;
    commit(&partial, path)
}

/// Writes `value` as pretty JSON to `path` atomically.
pub fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<(), WriteError> {
    let text = serde_json::to_string_pretty(value).map_err(|source| WriteError::Json {
        path: path.to_path_buf(),
        source,
    })?;
    write_atomic(path, text.as_bytes())
}

/// Parses JSON text into `T` through a [`serde_json::Value`]: with serde_json's
/// `arbitrary_precision` (which another crate of a build may switch on), numbers inside
/// internally tagged enums — the specimen's `heating` — fail to parse straight from text.
pub fn parse_json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, serde_json::Error> {
    serde_json::from_value(serde_json::from_str::<serde_json::Value>(text)?)
}

/// Why a JSON contract could not be read (the caller names the file and what it is).
#[derive(Debug)]
pub enum ReadJson {
    /// The file could not be read.
    Io(std::io::Error),
    /// It is not JSON of the expected shape.
    Parse(String),
}

/// Reads the JSON file `path` as `T` (through [`parse_json`]).
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, ReadJson> {
    let text = std::fs::read_to_string(path).map_err(ReadJson::Io)?;
    parse_json(&text).map_err(|e| ReadJson::Parse(e.to_string()))
}

/// A `.npy` file being written frame by frame (the simulator's `sequence.npy`), under its
/// `.partial` name until [`NpyStream::finish`].
pub struct NpyStream<T: npyz::AutoSerialize> {
    writer: npyz::NpyWriter<T, BufWriter<File>>,
    partial: PathBuf,
    path: PathBuf,
}

impl<T: npyz::AutoSerialize> NpyStream<T> {
    pub fn create(path: &Path, shape: &[u64]) -> Result<Self, WriteError> {
        let partial = partial_path(path);
        let file = File::create(&partial).map_err(|source| WriteError::Write {
            path: partial.clone(),
            source,
        })?;
        let writer = npyz::WriteOptions::new()
            .default_dtype()
            .shape(shape)
            .writer(BufWriter::new(file))
            .begin_nd()
            .map_err(|source| WriteError::Write {
                path: partial.clone(),
                source,
            })?;
        Ok(NpyStream {
            writer,
            partial,
            path: path.to_path_buf(),
        })
    }

    pub fn extend(&mut self, values: impl IntoIterator<Item = T>) -> Result<(), WriteError> {
        let partial = &self.partial;
        self.writer.extend(values).map_err(|source| WriteError::Write {
            path: partial.clone(),
            source,
        })
    }

    /// Checks the element count against the shape, flushes and renames into place.
    pub fn finish(self) -> Result<(), WriteError> {
        let NpyStream { writer, partial, path } = self;
        writer.finish().map_err(|source| WriteError::Write {
            path: partial.clone(),
            source,
        })?;
        commit(&partial, &path)
    }
}

/// Writes a whole `.npy` file atomically.
pub fn write_npy<T: npyz::AutoSerialize + Copy>(path: &Path, shape: &[u64], data: &[T]) -> Result<(), WriteError> {
    let mut w = NpyStream::create(path, shape)?;
    w.extend(data.iter().copied())?;
    w.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leftovers_of_an_interrupted_run_are_removed_and_named() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("sequence.npy.partial"), b"half").unwrap();
        std::fs::write(d.join("meta.json.partial"), b"{").unwrap();
        std::fs::write(d.join("labels.npy"), b"kept").unwrap();
        std::fs::create_dir(d.join("previews.partial")).unwrap();
        let removed = remove_partials(d).unwrap();
        assert_eq!(
            removed,
            vec![d.join("meta.json.partial"), d.join("sequence.npy.partial")]
        );
        assert!(d.join("labels.npy").is_file(), "complete files stay");
        assert!(d.join("previews.partial").is_dir(), "only files are removed");
        assert!(remove_partials(d).unwrap().is_empty(), "nothing left the second time");
        assert!(remove_partials(&d.join("absent")).unwrap().is_empty());
    }

    #[test]
    fn atomic_writes_leave_no_partial_and_replace_the_target() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.json");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert!(!partial_path(&p).exists());
        let n = dir.path().join("x.npy");
        write_npy(&n, &[2, 2], &[1u8, 2, 3, 4]).unwrap();
        assert!(n.is_file() && !partial_path(&n).exists());
        // A wrong element count is an error and the target is not created.
        let bad = dir.path().join("bad.npy");
        let mut w = NpyStream::<u8>::create(&bad, &[3]).unwrap();
        w.extend([1u8]).unwrap();
        assert!(w.finish().is_err());
        assert!(!bad.exists());
    }

    #[test]
    fn a_folder_that_does_not_exist_is_named() {
        let e = write_atomic(Path::new("/nonexistent-dir/x.bin"), b"").unwrap_err();
        assert!(e.to_string().contains("/nonexistent-dir/x.bin.partial"), "{e}");
    }
}
