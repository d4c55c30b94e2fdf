//! Kernel test vectors exchanged between the host and the emulated device: each case is a
//! small model blob, an input map and the output the host computed for it. The device
//! runs every case on both MAC backends and must reproduce the output byte for byte.
//!
//! File layout: a sequence of records, each a little-endian u32 length followed by that
//! many bytes of postcard-encoded [`Case`].

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Case<'a> {
    #[serde(borrow)]
    pub name: &'a str,
    #[serde(borrow)]
    pub blob: &'a [u8],
    #[serde(borrow)]
    pub input: &'a [u8],
    #[serde(borrow)]
    pub expected: &'a [u8],
}

impl<'a> Case<'a> {
    pub fn decode(bytes: &'a [u8]) -> Result<Self, postcard::Error> {
        postcard::from_bytes(bytes)
    }
}
