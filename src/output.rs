//! Where results go: atomic output files (a temporary file beside the target, renamed into place
//! after the last byte, removed on error and on Ctrl-C) and standard output.

use anyhow::{Context, Result};
use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Temporary files not yet committed, for the Ctrl-C and SIGBUS cleanup (in normal context) to remove.
static PENDING: Mutex<Vec<Pending>> = Mutex::new(Vec::new());

struct Pending {
    path: PathBuf,
}

impl Pending {
    fn new(path: &Path) -> Pending {
        Pending { path: path.to_path_buf() }
    }
}

/// Installs the handlers: SIGINT, SIGTERM and SIGHUP remove pending temporary files, then the
/// process dies by the same signal (see [`on_interrupt`]); SIGBUS on a truncated map likewise
/// cleans up (see [`on_sigbus`]); SIGXFSZ is ignored.
pub fn install_interrupt_cleanup() {
    #[cfg(unix)]
    {
        use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
        // SAFETY: SIG_IGN installs no handler. A write past the file size limit (`ulimit -f`)
        // then fails with EFBIG, like a full disk, and takes the error path that removes the
        // temporary file, instead of killing the process.
        unsafe {
            let _ = nix::sys::signal::signal(Signal::SIGXFSZ, SigHandler::SigIgn);
        }
        // The handler only writes the signal's number to a pipe; a thread does the rest.
        if let Ok((reader, writer)) = std::io::pipe() {
            use std::os::fd::IntoRawFd;
            INTERRUPT_PIPE.store(writer.into_raw_fd(), std::sync::atomic::Ordering::SeqCst);
            std::thread::spawn(move || on_interrupt(reader));
            let action = SigAction::new(SigHandler::Handler(note_interrupt), SaFlags::SA_RESTART, SigSet::empty());
            for sig in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
                // SAFETY: the handler only makes an async-signal-safe `write` (see `note_interrupt`).
                // A signal ignored at startup stays ignored (`nohup`, a script's background job),
                // as for any well-behaved command.
                unsafe {
                    if let Ok(old) = sigaction(sig, &action) {
                        if matches!(old.handler(), SigHandler::SigIgn) {
                            let _ = sigaction(sig, &old);
                        }
                    }
                }
            }
        }
        let action = SigAction::new(SigHandler::Handler(on_sigbus), SaFlags::empty(), SigSet::empty());
        // SAFETY: the handler only makes async-signal-safe calls (see `on_sigbus`).
        unsafe {
            let _ = sigaction(Signal::SIGBUS, &action);
        }
    }
    #[cfg(windows)]
    let _ = ctrlc::set_handler(|| {
        remove_pending();
        std::process::exit(130);
    });
}

fn remove_pending() {
    if let Ok(pending) = PENDING.lock() {
        for p in pending.iter() {
            let _ = std::fs::remove_file(&p.path);
        }
    }
}

/// The write end of the interrupt pipe, for the signal handler (-1 before it exists).
#[cfg(unix)]
static INTERRUPT_PIPE: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(-1);

/// Signal context: hands the signal's number to [`on_interrupt`] (one byte, `write` only).
#[cfg(unix)]
extern "C" fn note_interrupt(sig: nix::libc::c_int) {
    let fd = INTERRUPT_PIPE.load(std::sync::atomic::Ordering::SeqCst);
    if fd >= 0 {
        // SAFETY: the descriptor stays open for the life of the process.
        let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
        let _ = rustix::io::write(fd, &[sig as u8]);
    }
}

/// Waits for an interrupt, removes the pending temporary files, then dies by the same signal
/// (default action restored, signal raised again): a shell sees "killed by SIGINT", so a
/// `for` loop around relu stops at Ctrl-C, as it does around `cp` or `rg`; an exit status of
/// 130 would tell it that relu handled the signal and the loop should go on.
#[cfg(unix)]
fn on_interrupt(mut reader: std::io::PipeReader) {
    use nix::sys::signal::{raise, signal, SigHandler, Signal};
    use std::io::Read;
    let mut b = [0u8; 1];
    if reader.read_exact(&mut b).is_err() {
        return;
    }
    let sig = Signal::try_from(b[0] as i32).unwrap_or(Signal::SIGINT);
    if sig == Signal::SIGBUS {
        // a thread waits in `on_sigbus`: clean up, one line, exit 1 (nothing else runs)
        let _ = std::io::stderr().write_all(SIGBUS_MSG);
        remove_pending();
        // SAFETY: `_exit` ends the process without running anything else.
        unsafe { nix::libc::_exit(1) }
    }
    remove_pending();
    // SAFETY: restores the default action; nothing runs in signal context.
    unsafe {
        let _ = signal(sig, SigHandler::SigDfl);
    }
    let _ = raise(sig);
    // not reached unless the signal is blocked in this thread
    std::process::exit(128 + sig as i32);
}

/// What SIGBUS (see [`on_sigbus`]) prints.
#[cfg(unix)]
const SIGBUS_MSG: &[u8] = b"relu: an input file shrank while it was mapped (SIGBUS): no output written\n";

/// A memory-mapped input (`RELU_READ=mmap`, a Fortran-order array written as CSV) that another
/// process truncates faults on the pages it lost. Instead of dying with a core dump and leaving
/// the temporary output behind: the same cleanup as Ctrl-C, one line, exit 1. In signal context
/// only `write`, `pause` and `_exit` run (all async-signal-safe): the handler hands the signal to
/// the [`on_interrupt`] thread through the pipe, as the Ctrl-C handler does, and waits there for
/// that thread to remove the temporary files (taking the list's lock in normal context) and end
/// the process. It must not return: the faulting read would run again. The faulting thread
/// cannot hold the list's lock (nothing under it touches a map), so the cleanup never waits on it.
#[cfg(unix)]
extern "C" fn on_sigbus(sig: nix::libc::c_int) {
    let fd = INTERRUPT_PIPE.load(std::sync::atomic::Ordering::SeqCst);
    if fd >= 0 {
        // SAFETY: the descriptor stays open for the life of the process.
        let pipe = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
        if rustix::io::write(pipe, &[sig as u8]) == Ok(1) {
            loop {
                // SAFETY: `pause` only waits for a signal.
                unsafe { nix::libc::pause() };
            }
        }
    }
    // no cleanup thread: the temporary file stays, as after SIGKILL
    let _ = rustix::io::write(std::io::stderr(), SIGBUS_MSG);
    // SAFETY: `_exit` ends the process without running anything else.
    unsafe { nix::libc::_exit(1) }
}

fn forget(path: &Path) {
    if let Ok(mut p) = PENDING.lock() {
        p.retain(|q| q.path != path);
    }
}

/// A file that appears at its path complete or not at all.
pub struct AtomicOutput {
    tmp: Option<tempfile::NamedTempFile>,
    target: PathBuf,
    /// Bytes written through `Write`, and bytes reserved on disk (see `preallocate`).
    written: u64,
    reserved: u64,
}

impl AtomicOutput {
    pub fn create(target: &Path) -> Result<Self> {
        let dir = match target.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let prefix = format!(".{name}.");
        let mut b = tempfile::Builder::new();
        b.prefix(&prefix).suffix(".relu-tmp");
        crate::platform::new_file_options(&mut b);
        let tmp = b.tempfile_in(dir).with_context(|| format!("cannot create a file in {}", dir.display()))?;
        if let Ok(mut p) = PENDING.lock() {
            p.push(Pending::new(tmp.path()));
        }
        // replacing a file keeps its mode, as writing into it would
        if let Ok(m) = std::fs::metadata(target) {
            if m.is_file() {
                let _ = tmp.as_file().set_permissions(m.permissions());
            }
        }
        Ok(AtomicOutput { tmp: Some(tmp), target: target.to_path_buf(), written: 0, reserved: 0 })
    }

    /// Reserves `len` bytes for the file up front when the size is known. This fails early on a
    /// full disk, and on ext4 it also spares the rename the forced flush of delayed allocations
    /// (`auto_da_alloc`), which otherwise dominates replacing a large file. Output of unknown
    /// size (CSV) is reserved as it grows, in doubling steps, and the excess released at commit.
    pub fn preallocate(&mut self, len: u64) {
        crate::platform::reserve(self.file(), len);
        self.reserved = self.reserved.max(len);
    }

    fn grow(&mut self, n: usize) {
        let need = self.written + n as u64;
        if need > self.reserved {
            self.preallocate(need.max(2 * self.reserved).max(8 << 20));
        }
        self.written = need;
    }

    pub fn file(&mut self) -> &mut File {
        self.tmp.as_mut().expect("not committed").as_file_mut()
    }

    /// Renames the finished file into place.
    pub fn commit(mut self) -> Result<()> {
        let size = self.file().metadata()?.len();
        if self.reserved > size {
            self.file().set_len(size)?; // releases the blocks reserved past the end
        }
        let tmp = self.tmp.take().expect("committed once");
        let path = tmp.path().to_path_buf();
        tmp.persist(&self.target)
            .map_err(|e| e.error)
            .with_context(|| format!("cannot rename the output into place at {}", self.target.display()))?;
        forget(&path);
        Ok(())
    }
}

impl Write for AtomicOutput {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.grow(buf.len());
        self.file().write(buf)
    }
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.grow(buf.len());
        self.file().write_all(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file().flush()
    }
}

impl Drop for AtomicOutput {
    fn drop(&mut self) {
        if let Some(tmp) = self.tmp.take() {
            forget(tmp.path());
            // NamedTempFile removes itself when dropped.
        }
    }
}

/// Writes statistics as JSON Lines to `path` (atomically) or to stdout for `-`.
pub fn write_stats(path: &Path, objects: &[crate::stats::StatsJson]) -> Result<()> {
    let mut text = String::new();
    for o in objects {
        text.push_str(&serde_json::to_string(o)?);
        text.push('\n');
    }
    if path.as_os_str() == "-" {
        let mut out = io::stdout().lock();
        out.write_all(text.as_bytes())?;
        return Ok(out.flush()?);
    }
    let mut out = AtomicOutput::create(path)?;
    out.write_all(text.as_bytes()).with_context(|| format!("cannot write {}", path.display()))?;
    out.commit()
}

/// True when an error is a write to a closed pipe: the reader went away, which is not a failure.
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.downcast_ref::<io::Error>().is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe))
}
