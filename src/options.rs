//! Settings, resolved once from the command line (`cli.rs`) into plain values that the layers
//! below read: what to compute, how tables are read, how units are counted, where output goes.
//! No clap type crosses this line. Per-array checks (an axis out of range for this array's
//! shape, slopes that do not match its channels) are made here too, and raise [`UsageError`].

use crate::act::{self, Activation, Func};
use crate::dtype::{ByteOrder, DType};
use crate::format::npy;
use crate::format::Format;
use crate::pipeline::{Channels, Plan};
use crate::stats::UnitLayout;
use anyhow::{bail, Context, Result};
use std::fmt;
use std::path::{Path, PathBuf};

/// A mistake in how relu was called (exit code 2), as opposed to a problem with the data (1).
#[derive(Debug)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// `Err(UsageError)` as an `anyhow` error.
pub fn usage<T>(msg: impl Into<String>) -> Result<T> {
    Err(UsageError(msg.into()).into())
}

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

impl ActOptions {
    /// Types and parameters for one array (SPEC §2).
    pub fn plan(&self, a: &ArrayInfo) -> Result<Plan> {
        let input = a.dtype;
        let (work, output) = match (input.is_float(), self.dtype) {
            (true, d) => (input, d.unwrap_or(input)),
            (false, Some(d)) => (d, d),
            (false, None) => {
                if let Some(act) = self.act.filter(|a| a.func() != Func::Relu) {
                    return usage(format!(
                        "{} on {input} input needs a float type: add --dtype f16, f32 or f64",
                        act.name()
                    ));
                }
                (input, input)
            }
        };
        let mut slope = self.slope.unwrap_or(0.01);
        let mut channels = None;
        if let Some(alpha) = &self.alpha {
            let alphas: Vec<f64> = alpha.iter().map(|&v| round_to(work, v)).collect();
            let ndim = a.shape.len();
            // The axis must make sense even for one slope (0-d and 1-D inputs have no channel axis).
            let axis = match normalize_axis(self.channel_axis, ndim) {
                Some(axis) => Some(axis),
                None if ndim < 2 => None,
                None => {
                    return usage(format!("--channel-axis {} is out of range for a {ndim}-D array", self.channel_axis))
                }
            };
            if alphas.len() == 1 {
                slope = alphas[0];
            } else {
                let Some(axis) = axis.filter(|_| ndim >= 2) else {
                    bail!("a {ndim}-D input takes exactly one slope, --alpha has {}", alphas.len());
                };
                if a.shape[axis] != alphas.len() as u64 {
                    bail!(
                        "--alpha has {} slopes but axis {axis} of shape {} has {} channels",
                        alphas.len(),
                        npy::shape_repr(&a.shape),
                        a.shape[axis]
                    );
                }
                let inner = crate::stats::inner_size(&a.shape, a.fortran, axis);
                channels = Some(Channels { slopes: alphas, inner: inner.max(1) });
            }
        }
        Ok(Plan {
            input,
            input_order: a.order,
            work,
            output,
            output_order: ByteOrder::Little,
            act: self.act,
            slope,
            channels,
            upstream: None,
        })
    }
}

/// `-1` → the last axis; `None` when out of range.
pub fn normalize_axis(axis: i64, ndim: usize) -> Option<usize> {
    let n = ndim as i64;
    let a = if axis < 0 { axis + n } else { axis };
    (0..n).contains(&a).then_some(a as usize)
}

/// A PReLU weight rounded to the working float type, as PyTorch's weight tensor holds it.
fn round_to(dt: DType, v: f64) -> f64 {
    match dt {
        DType::F16 => act::f16_to_f32(act::f64_to_f16(v)) as f64,
        DType::BF16 => act::bf16_to_f32(act::f64_to_bf16(v)) as f64,
        DType::F32 => v as f32 as f64,
        _ => v,
    }
}

/// `--alpha`: a number, a comma list, or a `.npy` file of slopes.
pub fn read_alpha(spec: &str) -> Result<Vec<f64>> {
    let path = Path::new(spec);
    let alphas = if alpha_file(spec).is_some() {
        read_small_array(path).with_context(|| format!("--alpha {spec}"))?
    } else {
        let mut v = Vec::new();
        for s in spec.split(',') {
            match s.trim().parse::<f64>() {
                Ok(x) => v.push(x),
                Err(_) => {
                    return usage(format!(
                        "--alpha: '{}' is not a number (give numbers, a comma list, or a .npy file)",
                        s.trim()
                    ))
                }
            }
        }
        v
    };
    if alphas.is_empty() {
        return usage("--alpha has no slopes");
    }
    Ok(alphas)
}

/// The file an `--alpha` value names, when it names one rather than listing numbers.
pub fn alpha_file(spec: &str) -> Option<PathBuf> {
    let file = spec.ends_with(".npy") || spec.ends_with(".safetensors") || Path::new(spec).is_file();
    file.then(|| PathBuf::from(spec))
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

/// The most PReLU slopes (channels) a file may hold: every worker keeps them laid out in its
/// working type (8 MiB at most, in f64).
pub const MAX_SLOPES: u64 = 1 << 20;

/// A small 0-d or 1-D array, read whole into f64: a `.npy`, or the only tensor of a
/// `.safetensors`.
fn read_small_array(path: &Path) -> Result<Vec<f64>> {
    if crate::format::Format::of_path(path) == crate::format::Format::Safetensors {
        let st = crate::format::safetensors::SafetensorsFile::open(path)?;
        let [t] = &st.tensors[..] else {
            bail!("slopes must be the only tensor of their file; this one holds {}", st.tensors.len());
        };
        if t.shape.len() > 1 {
            bail!("slopes must be a 1-D array, this one has shape {}", npy::shape_repr(&t.shape));
        }
        let elements = t.shape.iter().product::<u64>();
        if elements > MAX_SLOPES {
            bail!("{elements} slopes is more than any layer has");
        }
        let mut src = st.source(t)?;
        let dt = src.header.dtype()?;
        let raw = src.data.next_chunk((t.end - t.start) as usize)?.to_vec();
        return Ok((0..elements as usize).map(|i| crate::dtype::element_f64(dt, &raw, i)).collect());
    }
    let mut file = std::fs::File::open(path)?;
    let h = npy::read_header(&mut file)?;
    let dt = h.dtype()?;
    if h.shape.len() > 1 {
        bail!("slopes must be a 1-D array, this one has shape {}", npy::shape_repr(&h.shape));
    }
    if h.elements > MAX_SLOPES {
        bail!("{} slopes is more than any layer has", h.elements);
    }
    npy::check_length(&file, &h)?;
    let mut raw = vec![0u8; h.data_bytes.unwrap_or(0) as usize];
    std::io::Read::read_exact(&mut file, &mut raw)?;
    if h.order == ByteOrder::Big {
        // element by element: `raw` has no alignment to view it as typed values
        for e in raw.chunks_exact_mut(dt.size()) {
            e.reverse();
        }
    }
    Ok((0..h.elements as usize).map(|i| crate::dtype::element_f64(dt, &raw, i)).collect())
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

/// `path` is `-` (stdin or stdout).
pub fn is_dash(p: &Path) -> bool {
    p.as_os_str() == "-"
}
