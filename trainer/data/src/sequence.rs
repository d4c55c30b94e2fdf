//! Reading recordings: simulated ones and real ones come in through this one door.
//!
//! A recording is a folder with `sequence.npy` (frames × height × width) and either
//! `times.npy` (seconds, strictly increasing; the heating starts at t = 0, pre-heating
//! frames are negative) or a frame rate given by the caller; `labels.npy` and
//! `depth.npy` (ground truth) are read when present. A single `.npy` file is accepted
//! too. Frames may be kelvin (f32 / f64) or raw camera counts (u16 / i16 / u8 / i32 /
//! f32) converted with `kelvin = scale · counts + offset` (a Lepton in TLinear mode:
//! scale 0.01, offset 0).

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use npyz::{DType, NpyFile, TypeChar};

/// Why a recording cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SequenceError {
    #[error("cannot open {path}")]
    Open { path: PathBuf, source: std::io::Error },
    #[error("{path}: not a readable .npy file ({reason})")]
    Npy { path: PathBuf, reason: String },
    #[error("{path}: dtype {found} is not supported (expected {expected})")]
    Dtype {
        path: PathBuf,
        found: String,
        expected: &'static str,
    },
    #[error("{path}: shape {shape:?}, expected {expected}")]
    Shape {
        path: PathBuf,
        shape: Vec<u64>,
        expected: &'static str,
    },
    #[error("{path}: holds {found} values, its header promises {expected} (truncated?)")]
    Truncated {
        path: PathBuf,
        expected: usize,
        found: usize,
    },
    #[error("{path}: frame {frame} has a non-finite value ({value}) at row {row}, column {col}")]
    NonFinite {
        path: PathBuf,
        frame: usize,
        row: usize,
        col: usize,
        value: f64,
    },
    #[error(
        "{path}: frame {frame} at row {row}, column {col} reads {value} K, outside 150..=1000 K (raw counts without a conversion?)"
    )]
    Implausible {
        path: PathBuf,
        frame: usize,
        row: usize,
        col: usize,
        value: f64,
    },
    #[error("{path}: times are not strictly increasing at index {index} ({prev} then {next})")]
    Times {
        path: PathBuf,
        index: usize,
        prev: f64,
        next: f64,
    },
    #[error("{path}: time {index} is not finite")]
    TimeNotFinite { path: PathBuf, index: usize },
    #[error("{frames} frames but {times} times")]
    TimesLength { frames: usize, times: usize },
    #[error("no times.npy next to {0} and no frame rate given")]
    NoTimes(PathBuf),
    #[error("frame rate {0} Hz is not a positive finite number")]
    FrameRate(f64),
    #[error("{path}: shape {found:?} does not match the {height}×{width} frames")]
    TruthShape {
        path: PathBuf,
        found: Vec<u64>,
        height: usize,
        width: usize,
    },
}

/// How to interpret a recording.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ReadOptions {
    /// Frame rate to use when there is no `times.npy`; frame `k` is then at
    /// `(k − preheat_frames) / rate`.
    pub frame_rate_hz: Option<f64>,
    /// Frames before the heating starts (only with `frame_rate_hz`).
    pub preheat_frames: usize,
    /// `(scale, offset)` turning raw counts into kelvin.
    pub counts_to_kelvin: Option<(f64, f64)>,
}

/// A recording in memory, in kelvin.
#[derive(Clone, Debug)]
pub struct Sequence {
    pub frames: usize,
    pub height: usize,
    pub width: usize,
    /// `frames × height × width`, kelvin.
    pub data: Vec<f32>,
    pub times: Vec<f64>,
    pub labels: Option<Vec<u8>>,
    pub depth_mm: Option<Vec<f32>>,
}

/// Longest `.npy` header read (numpy's default `max_header_size`).
const MAX_HEADER_BYTES: u64 = 10_000;
/// Deepest bracket nesting in a header: a dict holding a shape tuple is 2, structured
/// dtypes (refused later anyway) go to 4.
const MAX_HEADER_NESTING: i32 = 4;

/// An opened `.npy` file and its length in bytes.
struct Npy {
    file: NpyFile<BufReader<File>>,
    len: u64,
}

fn open_npy(path: &Path) -> Result<Npy, SequenceError> {
    let open_err = |source| SequenceError::Open {
        path: path.into(),
        source,
    };
    let mut file = File::open(path).map_err(open_err)?;
    let len = file.metadata().map_err(open_err)?.len();
    // The header length the preamble declares, checked against the file before the
    // reader allocates it (a corrupt length would ask for gigabytes). One read holds the
    // preamble and any header this reader accepts.
    let mut head = Vec::new();
    std::io::Read::read_to_end(&mut std::io::Read::take(&mut file, MAX_HEADER_BYTES + 12), &mut head)
        .map_err(open_err)?;
    if head.len() >= 10 && head.starts_with(b"\x93NUMPY") {
        // The header's length (with the preamble), and where its text starts.
        let start: u64 = if head[6] == 1 { 10 } else { 12 };
        let declared = if head[6] == 1 {
            u64::from(u16::from_le_bytes([head[8], head[9]]))
        } else {
            let word = head
                .get(8..12)
                .and_then(|w| <[u8; 4]>::try_from(w).ok())
                .unwrap_or([0xFF; 4]);
            u64::from(u32::from_le_bytes(word))
        };
        let header = declared + start;
        if header > len {
            return Err(SequenceError::Npy {
                path: path.into(),
                reason: format!("its header claims {header} bytes, the file has {len}"),
            });
        }
        // numpy's own reader refuses headers over 10 000 bytes by default; nesting
        // deeper than a structured dtype's makes the header parser backtrack for minutes
        // (found by the `recording` fuzz target).
        if header > MAX_HEADER_BYTES {
            return Err(SequenceError::Npy {
                path: path.into(),
                reason: format!("its header has {header} bytes, at most {MAX_HEADER_BYTES} are read"),
            });
        }
        let (mut depth, mut deepest) = (0i32, 0i32);
        for &b in head.get(start as usize..header as usize).unwrap_or(&[]) {
            match b {
                b'{' | b'[' | b'(' => depth += 1,
                b'}' | b']' | b')' => depth -= 1,
                _ => {}
            }
            deepest = deepest.max(depth);
        }
        if deepest > MAX_HEADER_NESTING {
            return Err(SequenceError::Npy {
                path: path.into(),
                reason: format!("its header nests {deepest} levels deep, at most {MAX_HEADER_NESTING} are read"),
            });
        }
        if let Some(text) = head.get(start as usize..header as usize) {
            header_shape_fits(text).map_err(|reason| SequenceError::Npy {
                path: path.into(),
                reason,
            })?;
        }
    }
    std::io::Seek::rewind(&mut file).map_err(open_err)?;
    let file = NpyFile::new(BufReader::new(file)).map_err(|e| SequenceError::Npy {
        path: path.into(),
        reason: e.to_string(),
    })?;
    Ok(Npy { file, len })
}

/// The header's `shape` must be a tuple of plain sizes whose product a `u64` holds: the
/// npy reader multiplies them unchecked (an overflow, found by the `recording` fuzz
/// target). A header without a shape is left to the reader to refuse.
fn header_shape_fits(header: &[u8]) -> Result<(), String> {
    let text = String::from_utf8_lossy(header);
    let Some(at) = text.find("'shape'").or_else(|| text.find("\"shape\"")) else {
        return Ok(());
    };
    let rest = text.get(at..).unwrap_or_default();
    let (Some(open), Some(close)) = (rest.find('('), rest.find(')')) else {
        return Ok(());
    };
    let dims = rest.get(open + 1..close).unwrap_or_default();
    let mut values: u64 = 1;
    for size in dims.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        let size: u64 = size
            .parse()
            .map_err(|_| format!("its header's shape ({dims}) has {size:?} where a size belongs"))?;
        values = values
            .checked_mul(size)
            .ok_or_else(|| format!("its header's shape ({dims}) holds more values than any file"))?;
    }
    Ok(())
}

/// Reads every value as f64 whatever the numeric dtype; checks the count.
fn read_values(path: &Path, npy: Npy) -> Result<(Vec<u64>, Vec<f64>, DType), SequenceError> {
    let Npy { file: npy, len } = npy;
    let shape = npy.shape().to_vec();
    let dtype = npy.dtype();
    // What the shape promises must fit in the file before anything is allocated for it.
    let item = match &dtype {
        DType::Plain(ts) => ts.size_field(),
        _ => 1,
    };
    let promised = shape.iter().try_fold(1u64, |n, &d| n.checked_mul(d));
    let Some(expected) = promised.filter(|&n| n.checked_mul(item).is_some_and(|b| b <= len)) else {
        return Err(SequenceError::Truncated {
            path: path.into(),
            expected: promised.map_or(usize::MAX, |n| usize::try_from(n).unwrap_or(usize::MAX)),
            found: usize::try_from(len / item.max(1)).unwrap_or(usize::MAX),
        });
    };
    let expected = usize::try_from(expected).unwrap_or(usize::MAX);
    let npy_err = |e: std::io::Error| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            SequenceError::Truncated {
                path: path.into(),
                expected,
                found: 0,
            }
        } else {
            SequenceError::Npy {
                path: path.into(),
                reason: e.to_string(),
            }
        }
    };
    let unsupported = |d: &DType| SequenceError::Dtype {
        path: path.into(),
        found: d.descr(),
        expected: "f32, f64, u8, u16, i16, i32",
    };
    let DType::Plain(ts) = &dtype else {
        return Err(unsupported(&dtype));
    };
    macro_rules! read_as {
        ($t:ty) => {{
            let mut out = Vec::with_capacity(expected);
            for v in npy.data::<$t>().map_err(|e| SequenceError::Npy {
                path: path.into(),
                reason: e.to_string(),
            })? {
                out.push(v.map_err(npy_err)? as f64);
            }
            out
        }};
    }
    let values = match (ts.type_char(), ts.size_field()) {
        (TypeChar::Float, 4) => read_as!(f32),
        (TypeChar::Float, 8) => read_as!(f64),
        (TypeChar::Uint, 1) => read_as!(u8),
        (TypeChar::Uint, 2) => read_as!(u16),
        (TypeChar::Int, 2) => read_as!(i16),
        (TypeChar::Int, 4) => read_as!(i32),
        _ => return Err(unsupported(&dtype)),
    };
    if values.len() != expected {
        return Err(SequenceError::Truncated {
            path: path.into(),
            expected,
            found: values.len(),
        });
    }
    Ok((shape, values, dtype))
}

impl Sequence {
    /// Opens a recording folder, or a single sequence `.npy` file.
    pub fn open(path: &Path, opts: &ReadOptions) -> Result<Self, SequenceError> {
        let (dir, seq_path) = if path.is_dir() {
            (path.to_path_buf(), path.join("sequence.npy"))
        } else {
            (
                path.parent().unwrap_or(Path::new(".")).to_path_buf(),
                path.to_path_buf(),
            )
        };
        let (shape, values, _) = read_values(&seq_path, open_npy(&seq_path)?)?;
        if shape.len() != 3 || shape.contains(&0) {
            return Err(SequenceError::Shape {
                path: seq_path,
                shape,
                expected: "frames × height × width, none zero",
            });
        }
        let (frames, height, width) = (shape[0] as usize, shape[1] as usize, shape[2] as usize);
        let (scale, offset) = opts.counts_to_kelvin.unwrap_or((1.0, 0.0));
        let mut data = Vec::with_capacity(values.len());
        for (i, v) in values.into_iter().enumerate() {
            let (frame, row, col) = (i / (height * width), (i / width) % height, i % width);
            if !v.is_finite() {
                return Err(SequenceError::NonFinite {
                    path: seq_path,
                    frame,
                    row,
                    col,
                    value: v,
                });
            }
            let k = scale * v + offset;
            if !(150.0..=1000.0).contains(&k) {
                return Err(SequenceError::Implausible {
                    path: seq_path,
                    frame,
                    row,
                    col,
                    value: k,
                });
            }
            data.push(k as f32);
        }

        let times_path = dir.join("times.npy");
        let times = if opts.frame_rate_hz.is_none() && path.is_dir() && times_path.exists() {
            let (tshape, t, _) = read_values(&times_path, open_npy(&times_path)?)?;
            if tshape.len() != 1 {
                return Err(SequenceError::Shape {
                    path: times_path,
                    shape: tshape,
                    expected: "one time per frame",
                });
            }
            for (i, v) in t.iter().enumerate() {
                if !v.is_finite() {
                    return Err(SequenceError::TimeNotFinite {
                        path: times_path,
                        index: i,
                    });
                }
                if i > 0 && *v <= t[i - 1] {
                    return Err(SequenceError::Times {
                        path: times_path,
                        index: i,
                        prev: t[i - 1],
                        next: *v,
                    });
                }
            }
            t
        } else if let Some(rate) = opts.frame_rate_hz {
            if !rate.is_finite() || rate <= 0.0 {
                return Err(SequenceError::FrameRate(rate));
            }
            (0..frames)
                .map(|k| (k as f64 - opts.preheat_frames as f64) / rate)
                .collect()
        } else {
            return Err(SequenceError::NoTimes(seq_path));
        };
        if times.len() != frames {
            return Err(SequenceError::TimesLength {
                frames,
                times: times.len(),
            });
        }

        let truth = |name: &str| -> Result<Option<Vec<f64>>, SequenceError> {
            let p = dir.join(name);
            if !path.is_dir() || !p.exists() {
                return Ok(None);
            }
            let (s, v, _) = read_values(&p, open_npy(&p)?)?;
            if s != [height as u64, width as u64] {
                return Err(SequenceError::TruthShape {
                    path: p,
                    found: s,
                    height,
                    width,
                });
            }
            Ok(Some(v))
        };
        let labels = truth("labels.npy")?.map(|v| v.into_iter().map(|x| x as u8).collect());
        let depth_mm = truth("depth.npy")?.map(|v| v.into_iter().map(|x| x as f32).collect());
        Ok(Sequence {
            frames,
            height,
            width,
            data,
            times,
            labels,
            depth_mm,
        })
    }

    pub fn pixels(&self) -> usize {
        self.height * self.width
    }

    pub fn frame(&self, k: usize) -> &[f32] {
        &self.data[k * self.pixels()..(k + 1) * self.pixels()]
    }

    /// Mean of the frames before the heating (t < 0), or the first frame.
    pub fn cold(&self) -> Vec<f32> {
        let pre: Vec<usize> = (0..self.frames).filter(|&k| self.times[k] < 0.0).collect();
        let pre = if pre.is_empty() { vec![0] } else { pre };
        let mut cold = vec![0.0f32; self.pixels()];
        for &k in &pre {
            for (c, &v) in cold.iter_mut().zip(self.frame(k)) {
                *c += v / pre.len() as f32;
            }
        }
        cold
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use npyz::WriterBuilder;

    fn write<T: npyz::AutoSerialize + Copy>(path: &Path, shape: &[u64], data: &[T]) {
        let f = File::create(path).unwrap();
        let mut w = npyz::WriteOptions::new()
            .default_dtype()
            .shape(shape)
            .writer(f)
            .begin_nd()
            .unwrap();
        w.extend(data.iter().copied()).unwrap();
        w.finish().unwrap();
    }

    fn folder(frames: usize) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        let data: Vec<f32> = (0..frames * 6).map(|i| 293.0 + i as f32 * 0.01).collect();
        write(&d.path().join("sequence.npy"), &[frames as u64, 2, 3], &data);
        let t: Vec<f64> = (0..frames).map(|k| k as f64 - 1.0).collect();
        write(&d.path().join("times.npy"), &[frames as u64], &t);
        d
    }

    #[test]
    fn reads_a_folder() {
        let d = folder(4);
        let s = Sequence::open(d.path(), &ReadOptions::default()).unwrap();
        assert_eq!((s.frames, s.height, s.width), (4, 2, 3));
        assert_eq!(s.times, vec![-1.0, 0.0, 1.0, 2.0]);
        assert_eq!(s.cold(), s.frame(0).to_vec());
        assert!(s.labels.is_none());
    }

    #[test]
    fn raw_counts_with_a_conversion() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("counts.npy");
        write(&p, &[2, 1, 2], &[29315u16, 29316, 29400, 29500]);
        let opts = ReadOptions {
            frame_rate_hz: Some(8.7),
            preheat_frames: 1,
            counts_to_kelvin: Some((0.01, 0.0)),
        };
        let s = Sequence::open(&p, &opts).unwrap();
        assert!((s.data[0] - 293.15).abs() < 1e-4);
        assert_eq!(s.times[1], 0.0);
        assert!((s.times[0] + 1.0 / 8.7).abs() < 1e-12);
        // Without the conversion the counts are no temperatures.
        let e = Sequence::open(
            &p,
            &ReadOptions {
                frame_rate_hz: Some(8.7),
                ..Default::default()
            },
        )
        .unwrap_err();
        assert!(e.to_string().contains("outside 150..=1000 K"), "{e}");
    }

    #[test]
    fn bad_files_are_named_precisely() {
        // NaN in frame 2.
        let d = folder(3);
        let mut data: Vec<f32> = vec![293.0; 18];
        data[2 * 6 + 4] = f32::NAN;
        write(&d.path().join("sequence.npy"), &[3, 2, 3], &data);
        let e = Sequence::open(d.path(), &ReadOptions::default())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("frame 2 has a non-finite value (NaN) at row 1, column 1"),
            "{e}"
        );
        // Times not increasing.
        let d = folder(3);
        write(&d.path().join("times.npy"), &[3], &[0.0f64, 1.0, 1.0]);
        let e = Sequence::open(d.path(), &ReadOptions::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("not strictly increasing at index 2"), "{e}");
        // Wrong rank.
        let d = folder(3);
        write(&d.path().join("sequence.npy"), &[18], &[293.0f32; 18]);
        let e = Sequence::open(d.path(), &ReadOptions::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("expected frames × height × width"), "{e}");
        // Wrong dtype.
        let d = folder(3);
        write(&d.path().join("sequence.npy"), &[1, 1, 2], &[1u64, 2]);
        let e = Sequence::open(d.path(), &ReadOptions::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("dtype") && e.contains("not supported"), "{e}");
        // Truncated file.
        let d = folder(3);
        let p = d.path().join("sequence.npy");
        let bytes = std::fs::read(&p).unwrap();
        std::fs::write(&p, &bytes[..bytes.len() - 10]).unwrap();
        let e = Sequence::open(d.path(), &ReadOptions::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("truncated") || e.contains("not a readable"), "{e}");
        // Times of the wrong length.
        let d = folder(3);
        write(&d.path().join("times.npy"), &[2], &[0.0f64, 1.0]);
        assert!(matches!(
            Sequence::open(d.path(), &ReadOptions::default()),
            Err(SequenceError::TimesLength { .. })
        ));
        // No times at all.
        let d = folder(3);
        std::fs::remove_file(d.path().join("times.npy")).unwrap();
        assert!(matches!(
            Sequence::open(d.path(), &ReadOptions::default()),
            Err(SequenceError::NoTimes(_))
        ));
    }

    /// Found by the `recording` fuzz target (minutes in the header parser): a header of
    /// nested braces is refused before it is parsed.
    #[test]
    fn deeply_nested_headers_are_refused_before_parsing() {
        let d = folder(3);
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        let header = format!("{{'descr': '<u2',{}}}\n", "{".repeat(150));
        bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
        bytes.extend_from_slice(header.as_bytes());
        std::fs::write(d.path().join("sequence.npy"), &bytes).unwrap();
        let start = std::time::Instant::now();
        let e = Sequence::open(d.path(), &ReadOptions::default()).unwrap_err();
        assert!(
            matches!(&e, SequenceError::Npy { reason, .. } if reason.contains("nests")),
            "{e}"
        );
        assert!(start.elapsed() < std::time::Duration::from_secs(5));
    }

    /// A version-1 `.npy` file of `header` (padded to a 128-byte preamble) and 64 data bytes.
    fn npy_v1_with_64_bytes(header: &str) -> Vec<u8> {
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        let padded = format!("{header:<117}\n");
        bytes.extend_from_slice(&(padded.len() as u16).to_le_bytes());
        bytes.extend_from_slice(padded.as_bytes());
        bytes.extend_from_slice(&[0u8; 64]);
        bytes
    }

    /// Found by the `recording` fuzz target (an overflow in the npy reader): a shape that
    /// is not plain sizes, or whose product no integer holds, is refused by name.
    #[test]
    fn shapes_the_reader_cannot_multiply_are_refused() {
        let d = folder(3);
        let seq = d.path().join("sequence.npy");
        for (shape, said) in [
            ("(3, 1, 2, 11111111111111111111-2)", "where a size belongs"),
            ("(3, 11111111111111111111, 2)", "more values than any file"),
        ] {
            let header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}");
            std::fs::write(&seq, npy_v1_with_64_bytes(&header)).unwrap();
            let e = Sequence::open(d.path(), &ReadOptions::default()).unwrap_err();
            assert!(
                matches!(&e, SequenceError::Npy { reason, .. } if reason.contains(said)),
                "{e}"
            );
        }
    }

    /// Found by the `recording` fuzz target (out of memory): headers whose lengths or
    /// shapes promise more than the file holds are named errors, allocated for nothing.
    #[test]
    fn headers_promising_more_than_the_file_holds_are_refused_before_reading() {
        let d = folder(3);
        let seq = d.path().join("sequence.npy");
        // Version 2, a header of 0xb0b00077 bytes, in a 16-byte file.
        std::fs::write(&seq, b"\x93NUMPY\x02\x00w\x00\xb0\xb0\xb0\xb0{7").unwrap();
        let e = Sequence::open(d.path(), &ReadOptions::default()).unwrap_err();
        assert!(
            matches!(&e, SequenceError::Npy { reason, .. } if reason.contains("header claims")),
            "{e}"
        );
        // A valid header whose shape asks for 10^12 values, in a 192-byte file.
        let header = "{'descr': '<f4', 'fortran_order': False, 'shape': (1000000, 1000, 1000), }";
        std::fs::write(&seq, npy_v1_with_64_bytes(header)).unwrap();
        let e = Sequence::open(d.path(), &ReadOptions::default()).unwrap_err();
        assert!(
            matches!(
                e,
                SequenceError::Truncated {
                    expected: 1_000_000_000_000,
                    found: 48,
                    ..
                }
            ),
            "{e}"
        );
    }
}
