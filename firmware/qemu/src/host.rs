//! Read-only host files through ARM semihosting (SYS_OPEN / SYS_FLEN / SYS_READ /
//! SYS_CLOSE), relative to QEMU's working directory.

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
    pub fn open(name: &CStr) -> Result<Self, HostError> {
        let bytes = name.to_bytes();
        // SAFETY: SYS_OPEN reads a NUL-terminated name of the given length.
        let fd = unsafe { syscall!(OPEN, bytes.as_ptr(), nr::open::R_BINARY, bytes.len()) } as isize;
        if fd < 0 {
            Err(HostError::Open)
        } else {
            Ok(HostFile { fd: fd as usize })
        }
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
