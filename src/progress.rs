//! Progress on stderr (indicatif): bytes, throughput and ETA. Drawn only when stderr is a
//! terminal that is not `TERM=dumb` (`--progress auto`), or always (`--progress always`, for logs), never with `-q`.
//! Single-file commands count the data bytes the pipeline takes in: one relaxed atomic add per
//! 256 KiB chunk, polled by a drawing thread ten times a second.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

/// When to draw a bar (`--progress`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum When {
    /// On a terminal that is not `TERM=dumb`.
    Auto,
    Always,
    Never,
}

/// Data bytes the pipeline has taken in, process-wide.
static BYTES: AtomicU64 = AtomicU64::new(0);

/// Counts `n` bytes taken in (called once per chunk).
#[inline]
pub fn add(n: usize) {
    BYTES.fetch_add(n as u64, Ordering::Relaxed);
}

/// Under `auto`, inputs smaller than this get no bar (it would only flicker).
pub const AUTO_MIN_BYTES: u64 = 256 << 20;

/// Whether to draw at all.
pub fn wanted(progress: When, quiet: bool) -> bool {
    !quiet
        && match progress {
            When::Always => true,
            When::Never => false,
            // a dumb terminal cannot redraw a line
            When::Auto => std::io::stderr().is_terminal() && std::env::var_os("TERM").is_none_or(|t| t != "dumb"),
        }
}

/// A bar over `total` bytes on stderr; hidden unless [`wanted`].
pub fn bar(progress: When, quiet: bool, total: u64) -> indicatif::ProgressBar {
    if !wanted(progress, quiet) {
        return indicatif::ProgressBar::hidden();
    }
    // indicatif's own stderr target stays silent off a terminal; `always` means always
    let target = if std::io::stderr().is_terminal() {
        indicatif::ProgressDrawTarget::stderr()
    } else {
        indicatif::ProgressDrawTarget::term_like(Box::new(Stderr))
    };
    let bar = indicatif::ProgressBar::with_draw_target(Some(total), target);
    let style =
        indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> ");
    bar.set_style(style);
    bar
}

/// A bar following [`BYTES`] from a thread of its own, until dropped (then it is cleared).
pub struct Watch {
    bar: indicatif::ProgressBar,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Watch {
    /// Watches the pipeline's bytes for a job of `total` input bytes; `None` when no bar is
    /// wanted (or, under `auto`, the input is small).
    pub fn start(progress: When, quiet: bool, total: u64, what: &str) -> Option<Watch> {
        if !wanted(progress, quiet) || (progress == When::Auto && total < AUTO_MIN_BYTES) {
            return None;
        }
        let bar = bar(progress, quiet, total);
        bar.set_message(what.to_string());
        let stop = Arc::new(AtomicBool::new(false));
        let base = BYTES.load(Ordering::Relaxed);
        let (b, s) = (bar.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                b.set_position(BYTES.load(Ordering::Relaxed) - base);
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
        });
        Some(Watch { bar, stop, thread: Some(thread) })
    }
}

impl Watch {
    /// Runs `f` (which prints) with the bar cleared, then draws the bar again below what it
    /// printed: a terminal shows stdout and stderr on one screen, and text written while the bar
    /// is up would start on the bar's line.
    pub fn suspend<R>(watch: Option<&Watch>, f: impl FnOnce() -> R) -> R {
        match watch {
            Some(w) => w.bar.suspend(f),
            None => f(),
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.bar.finish_and_clear();
    }
}

/// The bytes of binary inputs (`.npy`, `.npz`, `.safetensors` files) a command will read: what
/// the bar counts against. CSV (whose text the pipeline sees as parsed numbers), stdin and paths
/// that are not files count nothing.
pub fn input_bytes(paths: &[std::path::PathBuf], format: Option<crate::format::Format>) -> u64 {
    paths
        .iter()
        .filter(|p| !crate::format::Format::of_input(p, format).is_text())
        .filter_map(|p| std::fs::metadata(p).ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum()
}

/// stderr as a terminal for `--progress always` when it is not one (a log file, a pipe).
#[derive(Debug)]
pub struct Stderr;

impl indicatif::TermLike for Stderr {
    fn width(&self) -> u16 {
        std::env::var("COLUMNS").ok().and_then(|c| c.parse().ok()).unwrap_or(80)
    }
    fn move_cursor_up(&self, n: usize) -> std::io::Result<()> {
        self.write_str(&format!("\x1b[{n}A"))
    }
    fn move_cursor_down(&self, n: usize) -> std::io::Result<()> {
        self.write_str(&format!("\x1b[{n}B"))
    }
    fn move_cursor_right(&self, n: usize) -> std::io::Result<()> {
        self.write_str(&format!("\x1b[{n}C"))
    }
    fn move_cursor_left(&self, n: usize) -> std::io::Result<()> {
        self.write_str(&format!("\x1b[{n}D"))
    }
    fn write_line(&self, s: &str) -> std::io::Result<()> {
        self.write_str(&format!("{s}\n"))
    }
    fn write_str(&self, s: &str) -> std::io::Result<()> {
        use std::io::Write;
        std::io::stderr().write_all(s.as_bytes())
    }
    fn clear_line(&self) -> std::io::Result<()> {
        self.write_str("\r\x1b[2K")
    }
    fn flush(&self) -> std::io::Result<()> {
        use std::io::Write;
        std::io::stderr().flush()
    }
}
