//! Where results go: atomic output files (a temporary file beside the target, renamed into place
//! after the last byte, removed on error and on Ctrl-C), streams (standard output, and what an
//! output path names when it is not a regular file: a device, a FIFO, a socket), and the check
//! that no output is the same file as an input or as another output.

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
const SIGBUS_MSG: &[u8] =
    b"relu: a mapped input file could not be read (it shrank, or an I/O error: SIGBUS): no output written\n";

/// A memory-mapped input (on unix an aligned file region of 4 MiB or more, not `--in-place`; a
/// Fortran-order array written as CSV) that another process truncates faults on the pages it
/// lost (as does a page the file system cannot read). Instead of dying with a core dump and leaving
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
    /// A new file for `path`, or for the file its symlinks lead to (the temporary file is made
    /// beside that target, so the rename replaces the target and keeps the links).
    pub fn create(path: &Path) -> Result<Self> {
        let target = &follow(path).with_context(|| format!("cannot create {}", path.display()))?;
        let dir = match target.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        if std::fs::metadata(target).is_ok_and(|m| m.is_dir()) {
            anyhow::bail!("cannot create {}: it is a directory", path.display());
        }
        let name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let prefix = format!(".{name}.");
        let mut b = tempfile::Builder::new();
        b.prefix(&prefix).suffix(".relu-tmp");
        crate::platform::new_file_options(&mut b);
        let tmp = b.tempfile_in(dir).map_err(|e| {
            // tempfile's message names its own random file: name the target the user gave
            if e.kind() == io::ErrorKind::NotFound && std::fs::metadata(dir).is_err() {
                return anyhow::anyhow!("cannot create {}: no directory {}", path.display(), dir.display());
            }
            let text = e.to_string();
            let why = text.split_once(" at path ").map_or(text.as_str(), |(why, _)| why);
            anyhow::anyhow!("cannot create {}: {why}", path.display())
        })?;
        if let Ok(mut p) = PENDING.lock() {
            p.push(Pending::new(tmp.path()));
        }
        // replacing a file keeps its mode, as writing into it would
        if let Ok(m) = std::fs::metadata(target) {
            if m.is_file() {
                let _ = tmp.as_file().set_permissions(m.permissions());
            }
        }
        Ok(AtomicOutput { tmp: Some(tmp), target: target.clone(), written: 0, reserved: 0 })
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
    let mut out = Output::create(path)?;
    out.write_all(text.as_bytes()).with_context(|| format!("cannot write {}", path.display()))?;
    out.commit()
}

/// True when an error is a write to a closed pipe: the reader went away, which is not a failure.
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.downcast_ref::<io::Error>().is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe))
}

/// The most symlinks followed for one output path (Linux's own limit).
const MAX_LINKS: usize = 40;

/// The file `path` leads to once its symlinks are followed (it may not exist yet: a dangling
/// link is followed to where its target would be, as shell redirection and `numpy.save` do).
/// A relative link is read from the link's own directory, left unresolved so that the system
/// resolves it exactly as it would the link.
pub fn follow(path: &Path) -> io::Result<PathBuf> {
    let mut p = path.to_path_buf();
    for _ in 0..MAX_LINKS {
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_symlink() => {
                let to = std::fs::read_link(&p)?;
                p = match p.parent() {
                    Some(dir) => dir.join(to), // `to` replaces `dir` when absolute
                    None => to,
                };
            }
            _ => return Ok(p),
        }
    }
    Err(io::Error::other(format!("more than {MAX_LINKS} levels of symbolic links")))
}

/// An output written in order into something that is not replaced: standard output, or a
/// device, FIFO or socket named by an output path. Complete-or-absent cannot hold there.
pub struct Stream {
    w: Box<dyn Write + Send>,
}

impl Stream {
    pub fn stdout() -> Stream {
        Stream { w: Box::new(io::stdout()) }
    }

    /// The stream an output path names, or `None` when it names a regular file or nothing (to be
    /// replaced atomically), following symlinks; an open or connect failure names the path.
    pub fn open(path: &Path) -> Result<Option<Stream>> {
        let name = || format!("cannot write {}", path.display());
        #[cfg(unix)]
        if let Some(fd) = own_descriptor(path) {
            // this process's own descriptor (`/dev/stdout`, `/dev/fd/2`): written as it stands,
            // at its offset and in its mode (`>>` appends), even when a regular file is behind it
            let w: Box<dyn Write + Send> = if fd == 1 { Box::new(io::stdout()) } else { Box::new(io::stderr()) };
            return Ok(Some(Stream { w }));
        }
        let Ok(meta) = std::fs::metadata(path) else { return Ok(None) };
        let kind = meta.file_type();
        if kind.is_file() || kind.is_dir() {
            return Ok(None);
        }
        #[cfg(unix)]
        if std::os::unix::fs::FileTypeExt::is_socket(&kind) {
            let s = std::os::unix::net::UnixStream::connect(path).with_context(name)?;
            return Ok(Some(Stream { w: Box::new(s) }));
        }
        // a device or a FIFO: opened for writing (a FIFO waits here for its reader)
        let f = std::fs::OpenOptions::new().write(true).open(path).with_context(name)?;
        Ok(Some(Stream { w: Box::new(f) }))
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.w.write(buf)
    }
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.w.write_all(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.w.flush()
    }
}

/// Standard output or error named by a path through this process's descriptors
/// (`/dev/stdout`, `/dev/stderr`, `/dev/fd/N`, `/proc/self/fd/N`, directly or through
/// symlinks): 1 or 2. Other descriptors are opened by their path like any device.
#[cfg(unix)]
fn own_descriptor(path: &Path) -> Option<i32> {
    let fd_of = |p: &Path| -> Option<i32> {
        let s = p.to_str()?;
        match s {
            "/dev/stdout" => return Some(1),
            "/dev/stderr" => return Some(2),
            _ => {}
        }
        let n = s.strip_prefix("/dev/fd/").or_else(|| s.strip_prefix("/proc/self/fd/"))?;
        n.parse().ok().filter(|n| matches!(n, 1 | 2))
    };
    let mut p = path.to_path_buf();
    for _ in 0..MAX_LINKS {
        if let Some(fd) = fd_of(&p) {
            return Some(fd);
        }
        let to = std::fs::read_link(&p).ok()?;
        p = match p.parent() {
            Some(dir) => dir.join(to),
            None => to,
        };
    }
    None
}

/// Where an output path's bytes go: a regular file (or a new one) replaced atomically, or a
/// stream written into (see [`Stream`]).
pub enum Output {
    File(AtomicOutput),
    Stream(Stream),
}

impl Output {
    pub fn create(path: &Path) -> Result<Output> {
        Ok(match Stream::open(path)? {
            Some(s) => Output::Stream(s),
            None => Output::File(AtomicOutput::create(path)?),
        })
    }

    /// Puts a file in place; flushes a stream.
    pub fn commit(self) -> Result<()> {
        match self {
            Output::File(f) => f.commit(),
            Output::Stream(mut s) => Ok(s.flush()?),
        }
    }
}

impl Write for Output {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Output::File(f) => f.write(buf),
            Output::Stream(s) => s.write(buf),
        }
    }
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            Output::File(f) => f.write_all(buf),
            Output::Stream(s) => s.write_all(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Output::File(f) => f.flush(),
            Output::Stream(s) => s.flush(),
        }
    }
}

/// Which file a path names, whether or not it exists yet, for telling two spellings of one file
/// apart by what they lead to: the device and inode of the deepest existing directory or file
/// on the way (symlinks followed), and the names below it that do not exist yet.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct FileId {
    #[cfg(unix)]
    base: (u64, u64),
    #[cfg(not(unix))]
    base: PathBuf,
    rest: PathBuf,
}

impl FileId {
    /// `None` for stdin/stdout (`-`), for what is neither a regular file nor a directory (a
    /// device, a FIFO: writing there destroys nothing), and for paths that cannot be resolved
    /// (their open fails later, with its own message).
    pub fn of(path: &Path) -> Option<FileId> {
        if path.as_os_str() == "-" {
            return None;
        }
        let path = follow(path).ok()?;
        let path = if path.as_os_str().is_empty() { Path::new(".") } else { &path };
        match std::fs::metadata(path) {
            Ok(m) if m.is_file() || m.is_dir() => Some(FileId { base: base(&m, path)?, rest: PathBuf::new() }),
            Ok(_) => None,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let name = path.file_name()?;
                let parent = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
                let mut id = FileId::of(parent)?;
                id.rest.push(name);
                Some(id)
            }
            Err(_) => None,
        }
    }

    /// Whether this is an existing directory or file (not a name still to be made).
    pub fn exists(&self) -> bool {
        self.rest.as_os_str().is_empty()
    }
}

#[cfg(unix)]
fn base(m: &std::fs::Metadata, _: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    Some((m.dev(), m.ino()))
}

#[cfg(not(unix))]
fn base(_: &std::fs::Metadata, p: &Path) -> Option<PathBuf> {
    std::fs::canonicalize(p).ok()
}

/// The files one run reads and writes, each with how the command line names it (`the input`,
/// `--stats`), checked before any work.
#[derive(Default)]
pub struct RunFiles {
    inputs: std::collections::HashMap<FileId, String>,
    outputs: std::collections::HashMap<FileId, String>,
}

impl RunFiles {
    /// `what` (a flag, or "the input") names `path`, which is read.
    pub fn input(&mut self, what: &str, path: &Path) {
        if let Some(id) = FileId::of(path).filter(|id| id.exists()) {
            self.inputs.entry(id).or_insert_with(|| format!("{what} {}", path.display()));
        }
    }

    /// `what` names `path`, which is written: a usage error when it is the same regular file as
    /// an input (other than `may_replace`, the one input it may replace) or an output already
    /// named. Devices and FIFOs are never the same file (`-o /dev/null --stats /dev/null`).
    pub fn output(&mut self, what: &str, path: &Path, may_replace: Option<&Path>) -> Result<()> {
        let Some(id) = FileId::of(path) else { return Ok(()) };
        let this = format!("{what} {}", path.display());
        if let Some(input) = self.inputs.get(&id) {
            let allowed = may_replace.and_then(FileId::of).is_some_and(|own| own == id);
            if !allowed {
                return crate::usage::usage(format!(
                    "{this} is the same file as {input}: writing it would destroy what is read; give another path"
                ));
            }
        }
        if let Some(other) = self.outputs.get(&id) {
            return crate::usage::usage(format!(
                "{this} and {other} are the same file: one would overwrite the other; give another path"
            ));
        }
        self.outputs.insert(id, this);
        Ok(())
    }
}
