//! The few calls that differ between operating systems, in one place: positional reads and
//! writes (threads share one file handle, each at its own offsets), reserving disk space, and the
//! mode of new files.

use std::fs::File;
use std::io;

/// Positional I/O on a shared `File`: `pread`/`pwrite` on Unix, `seek_read`/`seek_write` on
/// Windows (which also move the handle's cursor, which nothing here uses).
pub trait FileAt {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;
}

#[cfg(unix)]
impl FileAt for File {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        std::os::unix::fs::FileExt::read_exact_at(self, buf, offset)
    }
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        std::os::unix::fs::FileExt::write_all_at(self, buf, offset)
    }
}

#[cfg(windows)]
impl FileAt for File {
    fn read_exact_at(&self, mut buf: &mut [u8], mut offset: u64) -> io::Result<()> {
        use std::os::windows::fs::FileExt;
        while !buf.is_empty() {
            match self.seek_read(buf, offset) {
                Ok(0) => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "failed to fill whole buffer")),
                Ok(n) => {
                    buf = &mut buf[n..];
                    offset += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
    fn write_all_at(&self, mut buf: &[u8], mut offset: u64) -> io::Result<()> {
        use std::os::windows::fs::FileExt;
        while !buf.is_empty() {
            match self.seek_write(buf, offset) {
                Ok(0) => return Err(io::Error::new(io::ErrorKind::WriteZero, "failed to write whole buffer")),
                Ok(n) => {
                    buf = &buf[n..];
                    offset += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// Reserves `len` bytes of disk for `f` without changing its size, where the system can
/// (Linux: `fallocate(FALLOC_FL_KEEP_SIZE)`); elsewhere the space is taken as it is written.
/// Failure (a file system without it) is harmless: the writes then allocate.
pub fn reserve(f: &File, len: u64) {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    let _ = rustix::fs::fallocate(f, rustix::fs::FallocateFlags::KEEP_SIZE, 0, len);
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let _ = (f, len);
}

/// New output files are created readable and writable by all, less the umask, as `cp` and
/// shell redirection create them (tempfile's default is owner-only).
pub fn new_file_options(b: &mut tempfile::Builder<'_, '_>) {
    #[cfg(unix)]
    b.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666));
    #[cfg(not(unix))]
    let _ = b;
}
