//! Host files through ARM semihosting (SYS_OPEN / SYS_FLEN / SYS_READ / SYS_SEEK /
//! SYS_WRITE / SYS_CLOSE), relative to QEMU's working directory.

use core::ffi::CStr;

use cortex_m_semihosting::{nr, syscall};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostError {
    /// The host could not open the file.
    Open,
    /// The file ended before the requested bytes.
    ShortRead { wanted: usize, got: usize },
    /// The host reported an error.
    Io,
}

pub struct HostFile {
    fd: usize,
}

impl HostFile {
    /// Opens a file for reading.
    pub fn open(name: &CStr) -> Result<Self, HostError> {
        Self::open_mode(name, nr::open::R_BINARY)
    }

    /// Creates (or truncates) a file for writing.
    pub fn create(name: &CStr) -> Result<Self, HostError> {
        Self::open_mode(name, nr::open::W_TRUNC_BINARY)
    }

    fn open_mode(name: &CStr, mode: usize) -> Result<Self, HostError> {
        let bytes = name.to_bytes();
        // SAFETY: SYS_OPEN reads a NUL-terminated name of the given length.
        let fd = unsafe { syscall!(OPEN, bytes.as_ptr(), mode, bytes.len()) } as isize;
        if fd < 0 {
            Err(HostError::Open)
        } else {
            Ok(HostFile { fd: fd as usize })
        }
    }

    /// Writes all of `data`.
    pub fn write_all(&mut self, data: &[u8]) -> Result<(), HostError> {
        // SAFETY: SYS_WRITE reads `data.len()` bytes from `data`; it returns the number of
        // bytes *not* written.
        let left = unsafe { syscall!(WRITE, self.fd, data.as_ptr(), data.len()) };
        if left != 0 { Err(HostError::Io) } else { Ok(()) }
    }

    /// Moves to byte `pos` from the start.
    pub fn seek(&mut self, pos: usize) -> Result<(), HostError> {
        // SAFETY: SYS_SEEK takes the handle and an absolute position.
        let r = unsafe { syscall!(SEEK, self.fd, pos) } as isize;
        if r != 0 { Err(HostError::Io) } else { Ok(()) }
    }

    /// File length in bytes.
    pub fn len(&self) -> Result<usize, HostError> {
        // SAFETY: SYS_FLEN takes the handle.
        let n = unsafe { syscall!(FLEN, self.fd) } as isize;
        if n < 0 { Err(HostError::Io) } else { Ok(n as usize) }
    }

    pub fn is_empty(&self) -> Result<bool, HostError> {
        Ok(self.len()? == 0)
    }

    /// Fills `buf` completely or reports how much was there.
    pub fn read_exact(&mut self, buf: &mut [u8]) -> Result<(), HostError> {
        // SAFETY: SYS_READ writes at most `buf.len()` bytes into `buf`; it returns the
        // number of bytes *not* read.
        let left = unsafe { syscall!(READ, self.fd, buf.as_mut_ptr(), buf.len()) };
        if left > buf.len() {
            return Err(HostError::Io);
        }
        if left != 0 {
            return Err(HostError::ShortRead {
                wanted: buf.len(),
                got: buf.len() - left,
            });
        }
        Ok(())
    }
}

impl Drop for HostFile {
    fn drop(&mut self) {
        // SAFETY: closes the handle this value owns.
        unsafe {
            syscall!(CLOSE, self.fd);
        }
    }
}

/// Recordings are read straight from host files.
impl tqc_playback::Source for HostFile {
    fn read_exact(&mut self, buf: &mut [u8]) -> Result<(), tqc_playback::NpyError> {
        HostFile::read_exact(self, buf).map_err(|_| tqc_playback::NpyError::Io)
    }
    fn seek(&mut self, pos: u64) -> Result<(), tqc_playback::NpyError> {
        let pos = usize::try_from(pos).map_err(|_| tqc_playback::NpyError::Io)?;
        HostFile::seek(self, pos).map_err(|_| tqc_playback::NpyError::Io)
    }
}
