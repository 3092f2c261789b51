//! Settings, resolved once from the command line (`cli.rs`) into plain values that the layers
//! below read: what to compute, how tables are read, how units are counted, where output goes.
//! No clap type crosses this line, and nothing here reads a file (`--alpha` files are read by
//! `source::read_alpha`, the plan for an array is `pipeline::Plan::new`). The unit layout's
//! per-array check (an axis out of range for this shape) raises [`UsageError`].

use crate::act::Activation;
use crate::dtype::{ByteOrder, DType};
use crate::format::Format;
use crate::stats::{UnitLayout, UnitLimits};
pub use crate::usage::{is_dash, usage, UsageError};
use anyhow::Result;
use std::path::PathBuf;

/// What an array needs to be planned: its element type, byte order, shape and memory order.
#[derive(Clone, Debug)]
pub struct ArrayInfo {
    pub dtype: DType,
    pub order: ByteOrder,
    pub shape: Vec<u64>,
    pub fortran: bool,
}

/// What to compute, before it meets an array.
#[derive(Clone, Debug, Default)]
pub struct ActOptions {
    /// `None`: the values as they are.
    pub act: Option<Activation>,
    /// `--slope`, when given (leaky only).
    pub slope: Option<f64>,
    /// `--alpha`, read (from a list or a file) but not yet rounded.
    pub alpha: Option<Vec<f64>>,
    pub channel_axis: i64,
    pub upstream: Option<PathBuf>,
    /// The file `--alpha` was read from, if any (an input, like `upstream`).
    pub alpha_file: Option<PathBuf>,
    /// `--dtype`; `None` is `same`.
    pub dtype: Option<DType>,
}

/// `-1` → the last axis; `None` when out of range.
pub fn normalize_axis(axis: i64, ndim: usize) -> Option<usize> {
    let n = ndim as i64;
    let a = if axis < 0 { axis + n } else { axis };
    (0..n).contains(&a).then_some(a as usize)
}

impl ActOptions {
    /// Records the files these settings read (`--upstream`, an `--alpha` file), for
    /// [`crate::output::RunFiles`].
    pub fn inputs(&self, files: &mut crate::output::RunFiles) {
        if let Some(p) = &self.upstream {
            files.input("--upstream", p);
        }
        if let Some(p) = &self.alpha_file {
            files.input("--alpha", p);
        }
    }
}

/// The most units one array's statistics count (a u64 counter each, and a number in the JSON).
pub const MAX_UNITS: u64 = 1 << 20;

/// How units are counted for the statistics.
#[derive(Clone, Copy, Debug)]
pub struct UnitOptions {
    /// `None`: statistics without units.
    pub axis: Option<i64>,
    pub threshold: f64,
    /// Only the finite min and max are wanted (see `StatsAccumulator::range_only`).
    pub range_only: bool,
    /// `--outlier-threshold` and `--dormant-tau`.
    pub limits: UnitLimits,
}

impl UnitOptions {
    /// The unit layout on an array of this shape (`None` for 0-d and 1-D).
    pub fn layout(&self, shape: &[u64], fortran: bool) -> Result<Option<UnitLayout>> {
        let nd = shape.len();
        let Some(axis) = self.axis.filter(|_| nd >= 2) else {
            return Ok(None);
        };
        let Some(a) = normalize_axis(axis, nd) else {
            return usage(format!("--unit-axis {axis} is out of range for a {nd}-D array"));
        };
        if shape[a] > MAX_UNITS {
            // a header may promise any shape, e.g. (0, 10**12): the counters must not follow it
            anyhow::bail!(
                "axis {a} has {} units, more than relu counts ({MAX_UNITS}, {} MiB of counters): pick another --unit-axis",
                shape[a],
                (MAX_UNITS * 8) >> 20
            );
        }
        Ok(Some(UnitLayout::new(shape, fortran, a)))
    }

    /// Units of a CSV table are its columns: its row count is not known until the end.
    pub fn table_layout(&self, cols: usize) -> Result<Option<UnitLayout>> {
        let l = self.layout(&[0, cols as u64], false)?;
        if l.as_ref().is_some_and(|l| l.axis != 1) {
            return usage("CSV units are its columns: --unit-axis 1 (or -1)");
        }
        Ok(l)
    }
}

pub use crate::format::csv::HeaderMode;

/// How inputs are read: the format, CSV's dialect, and which `.npz` member.
#[derive(Clone, Debug, Default)]
pub struct ReadOptions {
    /// `--from`; else by extension, and for stdin by content.
    pub format: Option<Format>,
    /// `-d`: the delimiter of input and output; else the format's own.
    pub delimiter: Option<u8>,
    pub header: HeaderMode,
    pub member: Option<String>,
}

/// The delimiter from `-d` (one byte; `\t` and `tab` spell a tab).
pub fn parse_delimiter(s: &str) -> Result<u8> {
    match s {
        "\\t" | "tab" | "\t" => Ok(b'\t'),
        s if s.len() == 1 && s != "\"" && s != "\n" && s != "\r" => Ok(s.as_bytes()[0]),
        s => usage(format!("-d '{s}': the delimiter is one character (not a quote or a line end)")),
    }
}

/// A delimiter for a side in format `f`: `-d`'s, else the format's own.
pub fn delimiter(given: Option<u8>, f: Format) -> u8 {
    given.unwrap_or(if f == Format::Tsv { b'\t' } else { b',' })
}

/// Where an `apply` job's output goes.
#[derive(Clone, Debug)]
pub enum Dest {
    /// Standard output, in this format (`None`: the input's).
    Stdout(Option<Format>),
    /// A file (written atomically), in this format.
    File(PathBuf, Format),
    /// Over the input's own data (`--in-place`).
    InPlace,
    /// Nowhere: statistics and observers only.
    Discard,
}

/// The most threads `-j` may ask for.
pub const MAX_THREADS: usize = 1024;

/// Worker threads: `-j`, else all cores; never more than four per core (each holds its own
/// buffers and counters, and more would only wait for a core).
pub fn threads(arg: Option<usize>) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    arg.unwrap_or(cores).min(cores.saturating_mul(4)).clamp(1, MAX_THREADS)
}
