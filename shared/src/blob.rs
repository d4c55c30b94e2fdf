//! The model blob: a fixed header followed by a postcard-encoded [`ModelDesc`].
//!
//! ```text
//! offset  size  field
//!      0     4  magic "TQCM"
//!      4     2  format version (little endian): [`FORMAT_VERSION`]
//!      6     2  reserved, 0
//!      8     4  payload length in bytes (little endian)
//!     12     4  CRC-32 (ISO-HDLC, as zlib) of the payload (little endian)
//!     16     …  payload: postcard(ModelDesc)
//! ```
//!
//! Decoding checks, in order: header length, magic, version, reserved, payload length
//! against the bytes present, CRC, postcard structure (no trailing bytes), the model
//! itself ([`Model::new`]), and finally that the stored arena size equals the planner's.
//! A CRC-32 catches every single-byte corruption and every truncation; the structural
//! checks behind it make sure even a blob with a *recomputed* CRC cannot make the engine
//! index out of bounds.

use crc::{CRC_32_ISO_HDLC, Crc};

use crate::model::{Model, ModelDesc, ModelError};
use crate::planner::{Mode, plan};

pub const MAGIC: [u8; 4] = *b"TQCM";
/// 2: the input spec carries the feature schedule. 3: the schedule carries the amplitude
/// window (the amplitude channel can be relative to a local mean). 4: graph models — each
/// layer names the tensors it reads, the model lists its outputs; `Add`, `Concat` and
/// `Upsample2` layers.
pub const FORMAT_VERSION: u16 = 4;
pub const HEADER_LEN: usize = 16;

const CRC32: Crc<u32> = Crc::<u32>::new(&CRC_32_ISO_HDLC);

/// Why a blob was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BlobError {
    #[error("blob is {len} bytes, shorter than its {HEADER_LEN}-byte header")]
    TooShort { len: usize },
    #[error("bad magic {found:02x?}, expected \"TQCM\"")]
    Magic { found: [u8; 4] },
    #[error("format version {found}, this build reads version {FORMAT_VERSION}")]
    Version { found: u16 },
    #[error("reserved header field is {0}, expected 0")]
    Reserved(u16),
    #[error("header says {declared} payload bytes, blob holds {present}")]
    Length { declared: usize, present: usize },
    #[error("payload CRC-32 is {computed:#010x}, header says {stored:#010x}")]
    Crc { stored: u32, computed: u32 },
    #[error("payload is not a valid model description ({0})")]
    Payload(&'static str),
    #[error("payload has {0} trailing bytes after the model description")]
    Trailing(usize),
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error("header says the arena needs {stored} bytes, the planner computes {planned}")]
    Arena { stored: u32, planned: usize },
    #[error("output buffer of {capacity} bytes is too small for the blob")]
    BufferTooSmall { capacity: usize },
}

fn payload_error(e: postcard::Error) -> BlobError {
    use postcard::Error as E;
    BlobError::Payload(match e {
        E::DeserializeUnexpectedEnd => "it ends early",
        E::DeserializeBadVarint => "bad varint",
        E::DeserializeBadBool => "bad bool",
        E::DeserializeBadChar => "bad char",
        E::DeserializeBadUtf8 => "a name is not UTF-8",
        E::DeserializeBadOption => "bad option tag",
        E::DeserializeBadEnum => "unknown layer or enum tag",
        E::DeserializeBadEncoding => "bad encoding",
        _ => "malformed",
    })
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Checks the header and CRC and returns the payload.
pub fn payload(blob: &[u8]) -> Result<&[u8], BlobError> {
    if blob.len() < HEADER_LEN {
        return Err(BlobError::TooShort { len: blob.len() });
    }
    let magic = [blob[0], blob[1], blob[2], blob[3]];
    if magic != MAGIC {
        return Err(BlobError::Magic { found: magic });
    }
    let version = u16_at(blob, 4);
    if version != FORMAT_VERSION {
        return Err(BlobError::Version { found: version });
    }
    let reserved = u16_at(blob, 6);
    if reserved != 0 {
        return Err(BlobError::Reserved(reserved));
    }
    let declared = u32_at(blob, 8) as usize;
    let body = &blob[HEADER_LEN..];
    if declared != body.len() {
        return Err(BlobError::Length {
            declared,
            present: body.len(),
        });
    }
    let stored = u32_at(blob, 12);
    let computed = CRC32.checksum(body);
    if stored != computed {
        return Err(BlobError::Crc { stored, computed });
    }
    Ok(body)
}

/// Decodes and validates a payload (no header): for tests and tools that re-seal.
pub fn decode_payload(body: &[u8]) -> Result<Model<'_>, BlobError> {
    let (desc, rest): (ModelDesc<'_>, &[u8]) = postcard::take_from_bytes(body).map_err(payload_error)?;
    if !rest.is_empty() {
        return Err(BlobError::Trailing(rest.len()));
    }
    let stored = desc.arena_bytes;
    let model = Model::new(desc)?;
    let planned = plan(&model, Mode::Streaming).total;
    if stored as usize != planned {
        return Err(BlobError::Arena { stored, planned });
    }
    Ok(model)
}

/// Decodes and fully validates a blob. The model borrows its weights from `blob`.
pub fn decode(blob: &[u8]) -> Result<Model<'_>, BlobError> {
    decode_payload(payload(blob)?)
}

/// Sets the arena size the planner computes for `desc`.
pub fn seal(desc: &mut ModelDesc<'_>) -> Result<(), ModelError> {
    let model = Model::new(desc.clone())?;
    desc.arena_bytes = plan(&model, Mode::Streaming).total as u32;
    Ok(())
}

/// Writes header and payload into `out`, returning the blob length. Call [`seal`] first.
pub fn encode(desc: &ModelDesc<'_>, out: &mut [u8]) -> Result<usize, BlobError> {
    let capacity = out.len();
    if capacity < HEADER_LEN {
        return Err(BlobError::BufferTooSmall { capacity });
    }
    let (header, body) = out.split_at_mut(HEADER_LEN);
    let n = postcard::to_slice(desc, body)
        .map_err(|_| BlobError::BufferTooSmall { capacity })?
        .len();
    header[0..4].copy_from_slice(&MAGIC);
    header[4..6].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    header[6..8].copy_from_slice(&0u16.to_le_bytes());
    header[8..12].copy_from_slice(&(n as u32).to_le_bytes());
    header[12..16].copy_from_slice(&CRC32.checksum(&body[..n]).to_le_bytes());
    Ok(HEADER_LEN + n)
}

/// Writes a header for an existing payload (tools that edit payloads, corruption tests).
pub fn header_for(payload: &[u8]) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[0..4].copy_from_slice(&MAGIC);
    h[4..6].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    h[8..12].copy_from_slice(&(payload.len() as u32).to_le_bytes());
    h[12..16].copy_from_slice(&CRC32.checksum(payload).to_le_bytes());
    h
}
