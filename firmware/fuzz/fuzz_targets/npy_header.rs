//! The playback's `.npy` header parser on arbitrary files: a header it accepts describes
//! data that starts after the header, and any other file is a typed error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tqc_playback::npy::{NpyError, Source, read_header};

struct Bytes<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Source for Bytes<'_> {
    fn read_exact(&mut self, buf: &mut [u8]) -> Result<(), NpyError> {
        let end = self.pos.checked_add(buf.len()).ok_or(NpyError::Io)?;
        let src = self.data.get(self.pos..end).ok_or(NpyError::Io)?;
        buf.copy_from_slice(src);
        self.pos = end;
        Ok(())
    }
    fn seek(&mut self, pos: u64) -> Result<(), NpyError> {
        self.pos = usize::try_from(pos).map_err(|_| NpyError::Io)?;
        Ok(())
    }
}

fuzz_target!(|data: &[u8]| {
    let mut src = Bytes { data, pos: 0 };
    if let Ok(header) = read_header(&mut src) {
        let _ = header.len();
        let _ = header.is_empty();
    }
});
