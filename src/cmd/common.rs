//! Plumbing shared by the subcommands: opening `.npy` inputs, resolving what to compute.

use crate::act::{self, Activation, Func};
use crate::cli::{ActArgs, FormatArg, UnitArgs, UsageError};
use crate::dtype::{ByteOrder, DType};
use crate::format::npy::{self, Header};
use crate::format::npz::NpzArchive;
use crate::output::AtomicOutput;
use crate::pipeline::{file_source, Channels, ChunkSource, Plan, ReadSource};
use crate::stats::{StatsJson, UnitLayout};
use anyhow::{bail, Context, Result};
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

pub fn is_dash(p: &Path) -> bool {
    p.as_os_str() == "-"
}

/// An opened `.npy` input: its header, and a source positioned at its data.
pub struct NpyInput<'a> {
    pub name: String,
    pub header: Header,
    pub source: Box<dyn ChunkSource + 'a>,
    /// The file, for workers that map their own ranges (`None` for stdin).
    pub file: Option<File>,
}

impl<'a> NpyInput<'a> {
    /// A `.npy` stream from any reader (stdin after sniffing its first bytes, an `.npz` member).
    pub fn from_reader(name: &str, mut r: Box<dyn std::io::Read + 'a>) -> Result<NpyInput<'a>> {
        let name = name.to_string();
        let header = npy::read_header(&mut r).with_context(|| name.clone())?;
        header.dtype().with_context(|| name.clone())?;
        let total = header.data_bytes.unwrap_or(0);
        Ok(NpyInput { name, header, source: Box::new(ReadSource::new(r, total)), file: None })
    }

    pub fn open(path: &Path) -> Result<NpyInput<'static>> {
        if is_dash(path) {
            let name = "<stdin>".to_string();
            let mut stdin = std::io::stdin().lock();
            let header = npy::read_header(&mut stdin).with_context(|| name.clone())?;
            let total = header.data_bytes.unwrap_or(0);
            header.dtype().with_context(|| name.clone())?;
            return Ok(NpyInput { name, header, source: Box::new(ReadSource::new(stdin, total)), file: None });
        }
        let name = path.display().to_string();
        let mut file = File::open(path).with_context(|| name.clone())?;
        let header = npy::read_header(&mut file).with_context(|| name.clone())?;
        let data_bytes = check_length(&file, &header).with_context(|| name.clone())?;
        let shared = file.try_clone().ok();
        let source = file_source(file, header.data_offset, header.data_offset + data_bytes);
        Ok(NpyInput { name, header, source, file: shared })
    }
}

/// Refuses unsupported dtypes and files shorter than their header says, before any output.
pub fn check_length(file: &File, header: &Header) -> Result<u64> {
    header.dtype()?;
    let data_bytes = header.data_bytes.unwrap_or(0);
    let len = file.metadata()?.len();
    let have = len.saturating_sub(header.data_offset);
    if have < data_bytes {
        bail!(
            "truncated: the header says {} data bytes ({} × {}), the file has {have}",
            data_bytes,
            npy::shape_repr(&header.shape),
            header.dtype_name()
        );
    }
    Ok(data_bytes)
}

/// Works out types and parameters for one array (SPEC §2).
pub fn resolve_plan(a: &ActArgs, act: Option<Activation>, h: &Header, dtype: Option<DType>) -> Result<Plan> {
    let func = act.map(|a| a.func());
    let input = h.dtype()?;
    let (work, output) = match (input.is_float(), dtype) {
        (true, d) => (input, d.unwrap_or(input)),
        (false, Some(d)) => (d, d),
        (false, None) => {
            if let Some(act) = act.filter(|a| a.func() != Func::Relu) {
                return Err(UsageError(format!(
                    "{} on {input} input needs a float type: add --dtype f16, f32 or f64",
                    act.name()
                ))
                .into());
            }
            (input, input)
        }
    };
    if a.slope.is_some() && func != Some(Func::Leaky) {
        return Err(UsageError("--slope goes with --act leaky (or --act grad --of leaky)".into()).into());
    }
    let mut slope = a.slope.unwrap_or(0.01);
    let mut channels = None;
    if func == Some(Func::Prelu) {
        let spec = a.alpha.as_deref().ok_or_else(|| UsageError("--act prelu (and --of prelu) needs --alpha".into()))?;
        let alphas: Vec<f64> = read_alpha(spec)?.into_iter().map(|v| round_to(work, v)).collect();
        if alphas.is_empty() {
            return Err(UsageError("--alpha has no slopes".into()).into());
        }
        let ndim = h.shape.len();
        // The axis must make sense even for one slope (0-d and 1-D inputs have no channel axis).
        let axis = match normalize_axis(a.channel_axis, ndim) {
            Some(axis) => Some(axis),
            None if ndim < 2 => None,
            None => {
                let why = format!("--channel-axis {} is out of range for a {ndim}-D array", a.channel_axis);
                return Err(UsageError(why).into());
            }
        };
        if alphas.len() == 1 {
            slope = alphas[0];
        } else {
            let Some(axis) = axis.filter(|_| ndim >= 2) else {
                bail!("a {ndim}-D input takes exactly one slope, --alpha has {}", alphas.len());
            };
            if h.shape[axis] != alphas.len() as u64 {
                bail!(
                    "--alpha has {} slopes but axis {axis} of shape {} has {} channels",
                    alphas.len(),
                    npy::shape_repr(&h.shape),
                    h.shape[axis]
                );
            }
            let inner: u64 =
                if h.fortran_order { h.shape[..axis].iter().product() } else { h.shape[axis + 1..].iter().product() };
            channels = Some(Channels { slopes: alphas, inner: inner.max(1) });
        }
    } else if a.alpha.is_some() {
        return Err(UsageError("--alpha goes with --act prelu or --of prelu".into()).into());
    }
    Ok(Plan {
        input,
        input_order: h.order,
        work,
        output,
        output_order: ByteOrder::Little,
        act,
        slope,
        channels,
        upstream: None,
    })
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
        DType::F32 => v as f32 as f64,
        _ => v,
    }
}

/// `--alpha`: a number, a comma list, or a `.npy` file of slopes.
fn read_alpha(spec: &str) -> Result<Vec<f64>> {
    let path = Path::new(spec);
    if spec.ends_with(".npy") || path.is_file() {
        return read_small_array(path).with_context(|| format!("--alpha {spec}"));
    }
    spec.split(',')
        .map(|s| {
            s.trim().parse::<f64>().map_err(|_| {
                UsageError(format!(
                    "--alpha: '{}' is not a number (give numbers, a comma list, or a .npy file)",
                    s.trim()
                ))
                .into()
            })
        })
        .collect()
}

/// A small 0-d or 1-D array, read whole into f64.
fn read_small_array(path: &Path) -> Result<Vec<f64>> {
    let mut file = File::open(path)?;
    let h = npy::read_header(&mut file)?;
    let dt = h.dtype()?;
    if h.shape.len() > 1 {
        bail!("slopes must be a 1-D array, this one has shape {}", npy::shape_repr(&h.shape));
    }
    if h.elements > 1 << 24 {
        bail!("{} slopes is more than any layer has", h.elements);
    }
    check_length(&file, &h)?;
    let mut raw = vec![0u8; h.data_bytes.unwrap_or(0) as usize];
    std::io::Read::read_exact(&mut file, &mut raw)?;
    Ok(raw.chunks_exact(dt.size()).map(|b| element_to_f64(dt, h.order, b)).collect())
}

fn element_to_f64(dt: DType, order: ByteOrder, b: &[u8]) -> f64 {
    let mut a = [0u8; 8];
    a[..b.len()].copy_from_slice(b);
    if order == ByteOrder::Big {
        a[..b.len()].reverse();
    }
    match dt {
        DType::F16 => act::f16_to_f32(u16::from_le_bytes([a[0], a[1]])) as f64,
        DType::F32 => f32::from_le_bytes([a[0], a[1], a[2], a[3]]) as f64,
        DType::F64 => f64::from_le_bytes(a),
        DType::I8 => a[0] as i8 as f64,
        DType::I16 => i16::from_le_bytes([a[0], a[1]]) as f64,
        DType::I32 => i32::from_le_bytes([a[0], a[1], a[2], a[3]]) as f64,
        DType::I64 => i64::from_le_bytes(a) as f64,
        DType::U8 => a[0] as f64,
        DType::U16 => u16::from_le_bytes([a[0], a[1]]) as f64,
        DType::U32 => u32::from_le_bytes([a[0], a[1], a[2], a[3]]) as f64,
        DType::U64 => u64::from_le_bytes(a) as f64,
    }
}

/// Opens `--upstream`, checks it against the input, and records its byte order in the plan.
pub fn open_upstream(a: &ActArgs, input: &NpyInput, plan: &Plan) -> Result<Option<NpyInput<'static>>> {
    let Some(path) = &a.upstream else {
        return Ok(None);
    };
    if is_dash(path) && input.name == "<stdin>" {
        return Err(UsageError("the input and --upstream cannot both be stdin".into()).into());
    }
    let up = NpyInput::open(path).context("--upstream")?;
    let (h, ih) = (&up.header, &input.header);
    let up_dtype = h.dtype()?;
    let describe = |h: &Header| format!("{} {}", h.dtype_name(), npy::shape_repr(&h.shape));
    if up_dtype != plan.work || h.shape != ih.shape {
        bail!(
            "--upstream {} is {} but the input {} is {}{}: they must have the same shape and element type",
            up.name,
            describe(h),
            input.name,
            describe(ih),
            if plan.work != plan.input { format!(" (computed as {})", plan.work) } else { String::new() }
        );
    }
    let significant = ih.shape.iter().filter(|&&d| d > 1).count();
    if h.fortran_order != ih.fortran_order && significant > 1 {
        bail!(
            "--upstream {} and the input {} differ in memory order (C vs Fortran): save both the same way",
            up.name,
            input.name
        );
    }
    Ok(Some(up))
}

/// The unit layout `--unit-axis` asks for on this array (`None` for 0-d and 1-D).
pub fn unit_layout(h: &Header, u: &UnitArgs) -> Result<Option<UnitLayout>> {
    UnitLayout::new(&h.shape, h.fortran_order, u.unit_axis)
}

/// Writes statistics as JSON Lines to `path` (atomically) or to stdout for `-`.
pub fn write_stats(path: &Path, objects: &[StatsJson]) -> Result<()> {
    let mut text = String::new();
    for o in objects {
        text.push_str(&serde_json::to_string(o)?);
        text.push('\n');
    }
    if is_dash(path) {
        let mut out = std::io::stdout().lock();
        out.write_all(text.as_bytes())?;
        return Ok(out.flush()?);
    }
    let mut out = AtomicOutput::create(path)?;
    out.write_all(text.as_bytes()).with_context(|| format!("cannot write {}", path.display()))?;
    out.commit()
}

/// The format a path's extension names (`.npy` when it names none relu knows).
pub fn format_of(p: &Path) -> FormatArg {
    match p.extension().and_then(|e| e.to_str()).map(|e| e.to_ascii_lowercase()).as_deref() {
        Some("csv") | Some("txt") => FormatArg::Csv,
        Some("tsv") | Some("tab") => FormatArg::Tsv,
        Some("npz") => FormatArg::Npz,
        _ => FormatArg::Npy,
    }
}

/// Reads the first bytes of stdin to tell `.npy` (`\x93NUMPY`) and `.npz` (`PK\x03\x04`) from
/// CSV; returns the format and a reader that still yields those bytes.
fn sniff_stdin() -> Result<(FormatArg, Box<dyn Read + Send>)> {
    let mut head = Vec::with_capacity(6);
    let mut stdin = std::io::stdin();
    (&mut stdin).take(6).read_to_end(&mut head).context("<stdin>")?;
    let f = if head.starts_with(b"\x93NUMPY") {
        FormatArg::Npy
    } else if head.starts_with(b"PK\x03\x04") {
        FormatArg::Npz
    } else {
        FormatArg::Csv
    };
    Ok((f, Box::new(std::io::Cursor::new(head).chain(stdin))))
}

/// An input whose format is decided: by `--from`, else the extension, else (stdin) its first
/// bytes. Opened as whichever format that is.
pub struct Input {
    pub format: FormatArg,
    /// The name for messages (`<stdin>` for `-`).
    pub name: String,
    path: PathBuf,
    /// stdin after sniffing, still yielding the sniffed bytes.
    sniffed: Option<Box<dyn Read + Send>>,
}

impl Input {
    pub fn resolve(path: &Path, from: Option<FormatArg>) -> Result<Input> {
        let name = if is_dash(path) { "<stdin>".to_string() } else { path.display().to_string() };
        let (format, sniffed) = match from {
            Some(f) => (f, None),
            None if is_dash(path) => {
                let (f, r) = sniff_stdin()?;
                (f, Some(r))
            }
            None => (format_of(path), None),
        };
        Ok(Input { format, name, path: path.to_path_buf(), sniffed })
    }

    /// The bytes as a stream (CSV, or a header to inspect).
    pub fn reader(self) -> Result<Box<dyn Read + Send>> {
        Ok(match self.sniffed {
            Some(r) => r,
            None if is_dash(&self.path) => Box::new(std::io::stdin()),
            None => Box::new(File::open(&self.path).with_context(|| self.name.clone())?),
        })
    }

    pub fn npy(self) -> Result<NpyInput<'static>> {
        match self.sniffed {
            Some(r) => NpyInput::from_reader(&self.name, r),
            None => NpyInput::open(&self.path),
        }
    }

    pub fn npz(self) -> Result<NpzArchive> {
        match self.sniffed {
            Some(r) => NpzArchive::from_reader(&self.name, r),
            None => NpzArchive::open(&self.path),
        }
    }
}

/// Worker threads: `-j`, else all cores.
pub fn threads(arg: Option<usize>) -> usize {
    arg.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())).max(1)
}
