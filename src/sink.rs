//! Where a job's output bytes go, in order: an atomic output file, a stream (standard output, or
//! a device, FIFO or socket named by `-o`; through a temporary spool when the bytes must be
//! patched after the last one, as a `.npy` of unknown length or a zip's directory), or an `.npz`
//! member being written. Small writes (CSV lines) are
//! gathered into 64 KiB; a file target also takes positional writes from parallel workers.

use crate::format::npy::GrowingHeader;
use crate::output::{AtomicOutput, Output, Stream};
use anyhow::{Context, Result};
use std::fs::File;
use std::io::{Seek, Write};
use std::path::{Path, PathBuf};

const GATHER: usize = 1 << 16;

enum Target<'a> {
    File(AtomicOutput, PathBuf),
    Stream(Stream),
    /// A stream, through a temporary file copied out at the end.
    Spool(File, Stream),
    Writer(&'a mut (dyn Write + Send)),
}

/// An output stream; see the module comment.
pub struct Sink<'a> {
    target: Target<'a>,
    buf: Vec<u8>,
}

impl<'a> Sink<'a> {
    /// A file that appears complete at `path` on [`Sink::finish`] + commit, or not at all; or,
    /// when `path` names a device, FIFO or socket, a stream into it (see [`Sink::stream`]).
    pub fn file(path: &Path, seekable: bool) -> Result<Sink<'static>> {
        match Output::create(path)? {
            Output::File(f) => Ok(Sink::new(Target::File(f, path.to_path_buf()))),
            Output::Stream(s) => Sink::stream(s, seekable),
        }
    }

    /// Standard output; see [`Sink::stream`].
    pub fn stdout(seekable: bool) -> Result<Sink<'static>> {
        Sink::stream(Stream::stdout(), seekable)
    }

    /// A stream; `seekable` spools it through a temporary file, for outputs patched after their
    /// last byte.
    fn stream(s: Stream, seekable: bool) -> Result<Sink<'static>> {
        if seekable {
            let spool = tempfile::tempfile().context("cannot create a temporary file to spool the output")?;
            return Ok(Sink::new(Target::Spool(spool, s)));
        }
        Ok(Sink::new(Target::Stream(s)))
    }

    /// Any writer (an `.npz` member).
    pub fn writer(w: &'a mut (dyn Write + Send)) -> Sink<'a> {
        Sink::new(Target::Writer(w))
    }

    fn new(target: Target<'a>) -> Sink<'a> {
        Sink { target, buf: Vec::new() }
    }

    pub fn write(&mut self, b: &[u8]) -> Result<()> {
        if self.buf.len() + b.len() > GATHER {
            self.drain()?;
        }
        if b.len() > GATHER {
            return self.raw(b);
        }
        if self.buf.capacity() == 0 {
            self.buf.reserve(GATHER);
        }
        self.buf.extend_from_slice(b);
        Ok(())
    }

    fn drain(&mut self) -> Result<()> {
        let buf = std::mem::take(&mut self.buf);
        let r = self.raw(&buf);
        self.buf = buf;
        self.buf.clear();
        r
    }

    fn raw(&mut self, b: &[u8]) -> Result<()> {
        match &mut self.target {
            Target::File(f, path) => f.write_all(b).with_context(|| format!("cannot write {}", path.display())),
            Target::Stream(s) => Ok(s.write_all(b)?),
            Target::Spool(f, _) => Ok(f.write_all(b)?),
            Target::Writer(w) => Ok(w.write_all(b)?),
        }
    }

    /// Reserves the output's final size when it is known (a file target only): a full disk fails
    /// at once, and ext4 skips the flush it forces when a rename replaces a file.
    pub fn preallocate(&mut self, len: u64) {
        if let Target::File(f, _) = &mut self.target {
            f.preallocate(len);
        }
    }

    /// The file behind a file or spool target, for positional writes (everything written so far
    /// is in it); `None` for a stream.
    pub fn file_mut(&mut self) -> Result<Option<&mut File>> {
        self.drain()?;
        Ok(match &mut self.target {
            Target::File(f, _) => Some(f.file()),
            Target::Spool(f, _) => Some(f),
            _ => None,
        })
    }

    /// Whether writes go to a stream (a pipe, a terminal, a device: the writer thread helps
    /// there), not a file.
    pub fn is_stream(&self) -> bool {
        // a writer (a zip member) takes its bytes in order, as a stream does
        matches!(self.target, Target::Stream(_) | Target::Writer(_))
    }

    /// Rewrites a growing `.npy` header for its final row count (a file or spool target).
    pub fn patch(&mut self, h: &GrowingHeader, rows: u64) -> Result<()> {
        let f = self.file_mut()?.context("internal error: a patched output needs a file")?;
        h.patch(f, rows)?;
        f.seek(std::io::SeekFrom::End(0))?;
        Ok(())
    }

    /// Everything written out: a spool is copied to its stream, a stream flushed. A file target
    /// comes back still uncommitted, so the caller decides (after writing statistics, say).
    pub fn finish(mut self) -> Result<Option<AtomicOutput>> {
        self.drain()?;
        match self.target {
            Target::File(f, _) => Ok(Some(f)),
            Target::Stream(mut s) => {
                s.flush()?;
                Ok(None)
            }
            Target::Spool(mut f, mut s) => {
                f.rewind()?;
                std::io::copy(&mut f, &mut s)?;
                s.flush()?;
                Ok(None)
            }
            Target::Writer(w) => {
                w.flush()?;
                Ok(None)
            }
        }
    }
}
