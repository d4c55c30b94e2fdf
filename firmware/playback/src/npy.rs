//! `.npy` headers (format versions 1–3), without allocation.

/// Bytes read in order from a file (with a way back to its start).
pub trait Source {
    /// Fills `buf` completely.
    fn read_exact(&mut self, buf: &mut [u8]) -> Result<(), NpyError>;
    /// Moves to byte `pos` from the start.
    fn seek(&mut self, pos: u64) -> Result<(), NpyError>;
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NpyError {
    /// The file could not be read (or ended early).
    Io,
    /// Not an `.npy` file.
    Magic,
    /// A format version other than 1, 2 or 3.
    Version(u8),
    /// The header dictionary is malformed or too long.
    Header,
    /// A dtype this reader does not take.
    Dtype,
    /// Fortran (column-major) order.
    FortranOrder,
    /// The shape is not what the file must hold.
    Shape,
}

impl core::fmt::Display for NpyError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            NpyError::Io => "cannot read the file (or it ends early)",
            NpyError::Magic => "not an .npy file (bad magic)",
            NpyError::Version(_) => "unsupported .npy format version",
            NpyError::Header => "malformed .npy header",
            NpyError::Dtype => "unsupported dtype (expected <f4, <f8 or <u2)",
            NpyError::FortranOrder => "Fortran-ordered array (expected C order)",
            NpyError::Shape => "unexpected array shape",
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dtype {
    F32,
    F64,
    U16,
}

impl Dtype {
    pub fn size(self) -> usize {
        match self {
            Dtype::F32 => 4,
            Dtype::F64 => 8,
            Dtype::U16 => 2,
        }
    }

    /// One little-endian value as f64.
    /// Too few bytes give NaN, which readers refuse as a non-finite value.
    pub fn value(self, b: &[u8]) -> f64 {
        match self {
            Dtype::F32 => b.first_chunk().map_or(f64::NAN, |b| f32::from_le_bytes(*b) as f64),
            Dtype::F64 => b.first_chunk().map_or(f64::NAN, |b| f64::from_le_bytes(*b)),
            Dtype::U16 => b.first_chunk().map_or(f64::NAN, |b| u16::from_le_bytes(*b) as f64),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NpyHeader {
    pub dtype: Dtype,
    pub shape: heapless::Vec<u64, 4>,
    /// Where the data starts.
    pub data_offset: u64,
}

impl NpyHeader {
    pub fn len(&self) -> u64 {
        self.shape.iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Longest header dictionary read (numpy pads to 64 bytes; real headers are ~100).
const MAX_DICT: usize = 1024;

/// Reads the header at the start of `src`; `src` is left at the data.
pub fn read_header<S: Source>(src: &mut S) -> Result<NpyHeader, NpyError> {
    let mut pre = [0u8; 8];
    src.read_exact(&mut pre)?;
    if &pre[..6] != b"\x93NUMPY" {
        return Err(NpyError::Magic);
    }
    let (len, prefix) = match pre[6] {
        1 => {
            let mut l = [0u8; 2];
            src.read_exact(&mut l)?;
            (u16::from_le_bytes(l) as usize, 10)
        }
        2 | 3 => {
            let mut l = [0u8; 4];
            src.read_exact(&mut l)?;
            (u32::from_le_bytes(l) as usize, 12)
        }
        v => return Err(NpyError::Version(v)),
    };
    if len > MAX_DICT {
        return Err(NpyError::Header);
    }
    let mut dict = [0u8; MAX_DICT];
    src.read_exact(&mut dict[..len])?;
    let dict = core::str::from_utf8(&dict[..len]).map_err(|_| NpyError::Header)?;
    let descr = value_of(dict, "descr")?;
    let dtype = match descr.trim_matches(|c| c == '\'' || c == '"') {
        "<f4" => Dtype::F32,
        "<f8" => Dtype::F64,
        "<u2" => Dtype::U16,
        _ => return Err(NpyError::Dtype),
    };
    match value_of(dict, "fortran_order")? {
        "False" => {}
        "True" => return Err(NpyError::FortranOrder),
        _ => return Err(NpyError::Header),
    }
    let shape_text = value_of(dict, "shape")?;
    let inner = shape_text
        .strip_prefix('(')
        .and_then(|s| s.strip_suffix(')'))
        .ok_or(NpyError::Header)?;
    let mut shape = heapless::Vec::new();
    // Split by bytes: `str::split` with a char pattern links panic paths.
    for part in inner.as_bytes().split(|&b| b == b',') {
        let part = core::str::from_utf8(part).map_err(|_| NpyError::Header)?.trim();
        if part.is_empty() {
            continue;
        }
        let n: u64 = part.parse().map_err(|_| NpyError::Header)?;
        shape.push(n).map_err(|_| NpyError::Shape)?;
    }
    Ok(NpyHeader {
        dtype,
        shape,
        data_offset: (prefix + len) as u64,
    })
}

/// The text of `key`'s value in the header dictionary: up to the next top-level comma
/// or the closing brace.
fn value_of<'d>(dict: &'d str, key: &str) -> Result<&'d str, NpyError> {
    let mut at = None;
    for quote in ['\'', '"'] {
        let mut pattern = [0u8; 32];
        let k = key.as_bytes();
        if k.len() + 2 > pattern.len() {
            return Err(NpyError::Header);
        }
        // The quoted key: quote, key, quote (it fits: checked above).
        for (d, &s) in pattern
            .iter_mut()
            .zip(core::iter::once(&(quote as u8)).chain(k).chain([quote as u8].iter()))
        {
            *d = s;
        }
        let quoted = pattern.get(..k.len() + 2).ok_or(NpyError::Header)?;
        // A plain byte search: `str::find`'s searcher links panic paths.
        let bytes = dict.as_bytes();
        let n = quoted.len();
        if let Some(i) = (0..=bytes.len().saturating_sub(n)).find(|&i| bytes.get(i..i + n) == Some(quoted)) {
            at = Some(i + n);
            break;
        }
    }
    let rest = dict
        .get(at.ok_or(NpyError::Header)?..)
        .ok_or(NpyError::Header)?
        .trim_start();
    let rest = rest.strip_prefix(':').ok_or(NpyError::Header)?.trim_start();
    let mut depth = 0i32;
    for (i, c) in rest.char_indices() {
        match c {
            '(' | '[' => depth += 1,
            ')' | ']' => depth -= 1,
            ',' | '}' if depth == 0 => return rest.get(..i).map(str::trim).ok_or(NpyError::Header),
            _ => {}
        }
        if depth < 0 {
            return Err(NpyError::Header);
        }
    }
    Err(NpyError::Header)
}
