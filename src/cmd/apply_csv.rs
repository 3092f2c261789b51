//! `relu apply` with CSV/TSV on either side: CSV → CSV, CSV → `.npy`, `.npy` → CSV.
//!
//! The input is read in blocks of whole records; workers parse blocks in parallel and the results
//! are written in order (`par::ordered_map`). Values are gathered a chunk of whole rows at a time
//! into f64 and go through the same `ChunkProcessor` as `.npy` data. On output, a value the
//! activation left unchanged is copied through as its original text; others are written as the
//! shortest text that reads back to the same value. relu to CSV skips the conversion altogether
//! for plain numbers: the sign and a syntax check decide (`csv::relu_plain_record`).

use super::common::{resolve_plan, NpyInput};
use crate::act::{self, Activation};
use crate::cli::{ApplyArgs, FormatArg, UsageError};
use crate::dtype::{ByteOrder, DType};
use crate::format::csv::{
    check_text, parse_number, plain_record_values, push_f32, push_f64, relu_plain_record, trim_range, BlockReader,
    LineError, Scanner,
};
use crate::format::npy::{self, Header};
use crate::kernel::Kernel;
use crate::output::AtomicOutput;
use crate::par;
use crate::pipeline::{self, ChunkProcessor, ChunkSource, Plan};
use crate::stats::StatsAccumulator;
use anyhow::{bail, Context, Result};
use bytemuck::cast_slice;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

/// Where the output goes and in which format.
pub enum Dest<'a> {
    Csv(Option<&'a Path>),
    Npy(Option<&'a Path>),
}

/// The delimiter from `-d` (one byte; `\t` and `tab` spell a tab), else the format's own.
pub fn delimiter(arg: Option<&str>, format: FormatArg) -> Result<u8> {
    match arg {
        None => Ok(if format == FormatArg::Tsv { b'\t' } else { b',' }),
        Some("\\t") | Some("tab") | Some("\t") => Ok(b'\t'),
        Some(s) if s.len() == 1 && s != "\"" && s != "\n" && s != "\r" => Ok(s.as_bytes()[0]),
        Some(s) => {
            Err(UsageError(format!("-d '{s}': the delimiter is one character (not a quote or a line end)")).into())
        }
    }
}

fn line_error(line: u64, field: usize, msg: String) -> anyhow::Error {
    LineError { line, field, msg }.into()
}

/// How the first record is treated.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum HeaderMode {
    /// A header when any of its fields is not a number.
    Auto,
    Yes,
    No,
}

impl HeaderMode {
    pub fn from_flags(header: bool, no_header: bool) -> HeaderMode {
        match (header, no_header) {
            (true, _) => HeaderMode::Yes,
            (_, true) => HeaderMode::No,
            _ => HeaderMode::Auto,
        }
    }
}

/// A CSV table opened for streaming: its first record looked at (header or not, column count),
/// the rest still to be read block by block.
pub struct CsvTable<R> {
    pub name: String,
    pub delim: u8,
    /// The header record's raw text, when there is one, and its fields as written (quoted or not).
    pub header: Option<Vec<u8>>,
    header_fields: Vec<(Vec<u8>, bool)>,
    pub cols: usize,
    reader: BlockReader<R>,
    /// The first block, and where its data starts (after a BOM and the header).
    first: Vec<u8>,
    first_start: usize,
    /// Lines before the data starts.
    header_lines: u64,
}

impl<R: Read> CsvTable<R> {
    pub fn open(name: &str, r: R, delim: u8, mode: HeaderMode) -> Result<CsvTable<R>> {
        let ctx = || name.to_string();
        let mut reader = BlockReader::new(r, delim);
        let mut first = Vec::new();
        if !reader.next_block(&mut first).with_context(ctx)? {
            bail!("{name}: empty input: no records");
        }
        let bom = if first.starts_with(b"\xEF\xBB\xBF") { 3 } else { 0 };
        let mut sc = Scanner::new(delim);
        let mut line = 1;
        let Some(rec) = sc.record(&first, bom, true, &mut line).with_context(ctx)? else {
            bail!("{name}: empty input: no records");
        };
        check_text(&first[rec.start..rec.end], rec.line).with_context(ctx)?;
        let not_number = sc.fields.iter().position(|f| parse_number(&first[f.start..f.end]).is_none());
        let is_header = match (mode, not_number) {
            (HeaderMode::Yes, _) => true,
            (HeaderMode::No, Some(i)) => {
                let f = sc.fields[i];
                let text = String::from_utf8_lossy(&first[f.start..f.end]).into_owned();
                return Err(line_error(rec.line, i + 1, format!("'{text}' is not a number (--no-header)")))
                    .with_context(ctx);
            }
            (HeaderMode::No, None) => false,
            (HeaderMode::Auto, n) => n.is_some(),
        };
        let cols = sc.fields.len();
        let header_fields = if is_header {
            sc.fields.iter().map(|f| (first[f.start..f.end].to_vec(), f.quoted)).collect()
        } else {
            vec![]
        };
        let (header, first_start, header_lines) =
            if is_header { (Some(first[rec.start..rec.end].to_vec()), rec.next, line - 1) } else { (None, bom, 0) };
        Ok(CsvTable {
            name: name.to_string(),
            delim,
            header,
            header_fields,
            cols,
            reader,
            first,
            first_start,
            header_lines,
        })
    }

    /// The header line for an output with `out_delim`: as it was, or re-joined (and quoted where
    /// needed) when the delimiter changes.
    pub fn header_line(&self, out_delim: u8) -> Option<Vec<u8>> {
        let raw = self.header.as_ref()?;
        if out_delim == self.delim {
            return Some(raw.clone());
        }
        let mut line = Vec::new();
        for (i, (text, quoted)) in self.header_fields.iter().enumerate() {
            if i > 0 {
                line.push(out_delim);
            }
            let needs = text.iter().any(|&c| c == out_delim || c == b'"' || c == b'\n' || c == b'\r');
            if *quoted {
                // still escaped as it was read: `""` inside
                line.push(b'"');
                line.extend_from_slice(text);
                line.push(b'"');
            } else if needs {
                line.push(b'"');
                for &c in text {
                    if c == b'"' {
                        line.push(b'"');
                    }
                    line.push(c);
                }
                line.push(b'"');
            } else {
                line.extend_from_slice(text);
            }
        }
        Some(line)
    }
}

/// What the workers make of each block.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum TableOutput {
    Csv,
    /// The output type's bytes, row after row.
    Npy,
    /// Statistics only.
    Nothing,
}

#[derive(Default)]
struct Job {
    buf: Vec<u8>,
    start: usize,
}

#[derive(Default)]
struct Done {
    bytes: Vec<u8>,
    rows: u64,
    lines: u64,
    stats: Option<StatsAccumulator>,
    /// A data error, its line counted from the block's first line (0).
    err: Option<LineError>,
}

struct Worker {
    sc: Scanner,
    out_delim: u8,
    proc: ChunkProcessor,
    values: Vec<f64>,
    spans: Vec<(u32, u32)>,
    fmt: ryu::Buffer,
}

/// Streams a table's records through `plan` on `threads` workers; `sink` gets the output bytes in
/// order. Returns the row count and the statistics (when `stats` asked for them).
pub fn run_table<R: Read + Send>(
    t: CsvTable<R>,
    plan: Plan,
    stats: Option<StatsAccumulator>,
    output: TableOutput,
    out_delim: u8,
    threads: usize,
    mut sink: impl FnMut(&[u8]) -> Result<()>,
) -> Result<(u64, Option<StatsAccumulator>)> {
    let CsvTable { name, delim, cols, mut reader, first, first_start, header_lines, .. } = t;
    let out_dtype = plan.output;
    // relu to f64 CSV decides each value by its sign and syntax: no number is converted.
    let fast = output == TableOutput::Csv
        && stats.is_none()
        && out_dtype == DType::F64
        && plan.act.is_some_and(|a| a.func() == act::Func::Relu)
        && plan.upstream.is_none();
    let workers: Vec<Worker> = (0..threads.max(1))
        .map(|_| Worker {
            sc: Scanner::new(delim),
            out_delim,
            proc: ChunkProcessor::new(plan.clone(), Kernel::default(), stats.as_ref().map(|s| s.fresh())),
            values: Vec::new(),
            spans: Vec::new(),
            fmt: ryu::Buffer::new(),
        })
        .collect();
    let mut first = Some((first, first_start));
    let read = move |job: &mut Job| -> Result<bool> {
        if let Some((mut b, s)) = first.take() {
            std::mem::swap(&mut job.buf, &mut b);
            job.start = s;
            return Ok(true);
        }
        job.start = 0;
        reader.next_block(&mut job.buf)
    };
    let work = |w: &mut Worker, job: &Job, done: &mut Done| -> Result<()> {
        done.bytes.clear();
        done.rows = 0;
        done.err = None;
        if let Err(e) = parse_block(w, job, done, cols, output, fast) {
            done.err = Some(e);
        }
        w.proc.take_stats_into(&mut done.stats);
        Ok(())
    };
    let mut base = 1 + header_lines;
    let mut rows = 0u64;
    let mut acc = stats;
    let write = |done: &mut Done| -> Result<()> {
        if let Some(e) = done.err.take() {
            return Err(LineError { line: e.line + base, ..e }.into());
        }
        sink(&done.bytes)?;
        rows += done.rows;
        base += done.lines;
        if let (Some(a), Some(s)) = (acc.as_mut(), &done.stats) {
            a.merge(s);
        }
        Ok(())
    };
    let depth = threads.max(1) + 2;
    par::ordered_map(workers, depth, read, work, write).map_err(|e| {
        if crate::output::is_broken_pipe(&e) {
            e
        } else {
            e.context(name.clone())
        }
    })?;
    Ok((rows, acc))
}

/// One block's records → output bytes (and statistics in the worker's processor).
fn parse_block(
    w: &mut Worker,
    job: &Job,
    done: &mut Done,
    cols: usize,
    output: TableOutput,
    fast: bool,
) -> Result<(), LineError> {
    let b = &job.buf[..];
    let delim = w.sc.delim;
    let mut pos = job.start;
    let mut line = 0u64;
    let chunk = w.proc.chunk_elems;
    let rows_per_flush = (chunk / cols.max(1)).max(1);
    loop {
        if fast {
            if let Some(next) = relu_plain_record(b, pos, delim, w.out_delim, cols, &mut done.bytes) {
                pos = next;
                line += 1;
                done.rows += 1;
                continue;
            }
        }
        if !fast {
            if let Some(next) = plain_record_values(b, pos, delim, cols, &mut w.values, &mut w.spans) {
                pos = next;
                line += 1;
                done.rows += 1;
                if w.values.len() >= rows_per_flush * cols {
                    flush(w, b, done, cols, output);
                }
                continue;
            }
        }
        let Some(rec) = w.sc.record(b, pos, true, &mut line)? else {
            break;
        };
        pos = rec.next;
        check_text(&b[rec.start..rec.end], rec.line)?;
        if w.sc.fields.len() != cols {
            return Err(LineError {
                line: rec.line,
                field: 0,
                msg: format!("{} fields, but the first record has {cols}", w.sc.fields.len()),
            });
        }
        for (i, f) in w.sc.fields.iter().enumerate() {
            let text = &b[f.start..f.end];
            let Some(v) = parse_number(text) else {
                let text = String::from_utf8_lossy(text).into_owned();
                return Err(LineError { line: rec.line, field: i + 1, msg: format!("'{text}' is not a number") });
            };
            let (s, e) = trim_range(b, f.start, f.end);
            if fast {
                let y = act::relu(v);
                if y.to_bits() == v.to_bits() {
                    done.bytes.extend_from_slice(&b[s..e]);
                } else {
                    push_f64(&mut done.bytes, &mut w.fmt, y);
                }
                done.bytes.push(if i + 1 == cols { b'\n' } else { w.out_delim });
            } else {
                w.values.push(v);
                w.spans.push((s as u32, e as u32));
            }
        }
        done.rows += 1;
        if !fast && w.values.len() >= rows_per_flush * cols {
            flush(w, b, done, cols, output);
        }
    }
    if !fast {
        flush(w, b, done, cols, output);
    }
    done.lines = line;
    Ok(())
}

/// Runs the gathered rows through the processor (in pieces of at most one chunk) and writes them.
fn flush(w: &mut Worker, b: &[u8], done: &mut Done, cols: usize, output: TableOutput) {
    let chunk = w.proc.chunk_elems;
    let out_dtype = w.proc.plan().output;
    let mut first = 0;
    while first < w.values.len() {
        let n = chunk.min(w.values.len() - first);
        let x = &w.values[first..first + n];
        let out = w.proc.process(cast_slice(x), None, first as u64);
        match output {
            TableOutput::Nothing => {}
            TableOutput::Npy => done.bytes.extend_from_slice(out),
            TableOutput::Csv => {
                for (j, &v) in x.iter().enumerate() {
                    let idx = first + j;
                    let unchanged = out_dtype == DType::F64 && cast_slice::<u8, f64>(out)[j].to_bits() == v.to_bits();
                    if unchanged {
                        let (s, e) = w.spans[idx];
                        done.bytes.extend_from_slice(&b[s as usize..e as usize]);
                    } else {
                        push_value(&mut done.bytes, &mut w.fmt, out_dtype, out, j);
                    }
                    done.bytes.push(if (idx + 1) % cols == 0 { b'\n' } else { w.out_delim });
                }
            }
        }
        first += n;
    }
    w.values.clear();
    w.spans.clear();
}

/// The plan for a CSV table: (rows, columns) of float64.
pub fn table_header(cols: usize) -> Header {
    Header {
        version: (1, 0),
        dtype: Ok(DType::F64),
        descr: "<f8".into(),
        order: ByteOrder::Little,
        fortran_order: false,
        shape: vec![0, cols as u64],
        data_offset: 0,
        elements: 0,
        data_bytes: Some(0),
    }
}

/// Units of a CSV table are its columns: the row count is not known until the end.
pub fn table_units(cols: usize, u: &crate::cli::UnitArgs) -> Result<Option<crate::stats::UnitLayout>> {
    let l = crate::stats::UnitLayout::new(&[0, cols as u64], false, u.unit_axis)?;
    if l.as_ref().is_some_and(|l| l.axis != 1) {
        return Err(UsageError("CSV units are its columns: --unit-axis 1 (or -1)".into()).into());
    }
    Ok(l)
}

/// CSV input: blocks of records → workers (parse, activation, format) → CSV or `.npy`, in order.
pub fn csv_input(
    args: &ApplyArgs,
    act: Option<Activation>,
    name: &str,
    input: Box<dyn Read + Send>,
    (delim, out_delim): (u8, u8),
    dest: Dest,
) -> Result<()> {
    if args.act.upstream.is_some() {
        return Err(
            UsageError("--upstream with CSV input is not supported: convert the input to .npy first".into()).into()
        );
    }
    let table = CsvTable::open(name, input, delim, HeaderMode::from_flags(args.table.header, args.table.no_header))?;
    let cols = table.cols;
    let plan =
        resolve_plan(&args.act, act, &table_header(cols), args.dtype.dtype()).with_context(|| name.to_string())?;
    let out_dtype = plan.output;
    let work_name = plan.work.name();
    let act_name = plan.act.map(|a| a.name());
    let stats = match &args.stats {
        Some(_) => Some(StatsAccumulator::new(table_units(cols, &args.units)?)),
        None => None,
    };
    let mut sink = Sink::open(&dest, out_dtype, cols)?;
    if let (Some(h), Dest::Csv(_)) = (table.header_line(out_delim), &dest) {
        sink.write(&h)?;
        sink.write(b"\n")?;
    }
    let output = if matches!(dest, Dest::Npy(_)) { TableOutput::Npy } else { TableOutput::Csv };
    let (rows, acc) =
        run_table(table, plan, stats, output, out_delim, super::common::threads(args.threads), |b| sink.write(b))?;
    if let (Some(path), Some(acc)) = (&args.stats, acc) {
        let json = acc.to_json(name, act_name, work_name, &[rows, cols as u64], args.units.dead_threshold);
        // The statistics first: a run that fails there leaves no output either.
        super::common::write_stats(path, &[json])?;
    }
    sink.finish(rows)
}

/// Appends output element `i` of `out` (type `dt`) as text.
fn push_value(line: &mut Vec<u8>, fmt: &mut ryu::Buffer, dt: DType, out: &[u8], i: usize) {
    let s = dt.size();
    let b = &out[i * s..(i + 1) * s];
    match dt {
        DType::F64 => push_f64(line, fmt, f64::from_le_bytes(b.try_into().unwrap())),
        DType::F32 => push_f32(line, fmt, f32::from_le_bytes(b.try_into().unwrap())),
        DType::F16 => push_f32(line, fmt, act::f16_to_f32(u16::from_le_bytes(b.try_into().unwrap()))),
        _ => {
            let v: i128 = match dt {
                DType::I8 => b[0] as i8 as i128,
                DType::U8 => b[0] as i128,
                DType::I16 => i16::from_le_bytes(b.try_into().unwrap()) as i128,
                DType::U16 => u16::from_le_bytes(b.try_into().unwrap()) as i128,
                DType::I32 => i32::from_le_bytes(b.try_into().unwrap()) as i128,
                DType::U32 => u32::from_le_bytes(b.try_into().unwrap()) as i128,
                DType::I64 => i64::from_le_bytes(b.try_into().unwrap()) as i128,
                _ => u64::from_le_bytes(b.try_into().unwrap()) as i128,
            };
            let _ = write!(line, "{v}");
        }
    }
}

/// The output: a CSV text stream, or a `.npy` whose row count is patched in at the end (a file
/// written in place, or for stdout a temporary spool copied out at the end).
struct Sink {
    file: Option<AtomicOutput>,
    spool: Option<std::fs::File>,
    npy: Option<(DType, usize)>,
    header_len: usize,
    buf: Vec<u8>,
}

impl Sink {
    fn open(dest: &Dest, dt: DType, cols: usize) -> Result<Sink> {
        let (path, npy) = match dest {
            Dest::Csv(p) => (*p, None),
            Dest::Npy(p) => (*p, Some((dt, cols))),
        };
        let mut s = Sink { file: None, spool: None, npy, header_len: 0, buf: Vec::with_capacity(1 << 16) };
        match path {
            Some(p) => s.file = Some(AtomicOutput::create(p)?),
            None if npy.is_some() => s.spool = Some(tempfile::tempfile()?),
            None => {}
        }
        if let Some((dt, cols)) = npy {
            let h = npy::write_header(dt, false, &[0, cols as u64]);
            s.header_len = h.len();
            s.write(&h)?;
        }
        Ok(s)
    }

    fn write(&mut self, b: &[u8]) -> Result<()> {
        if self.buf.len() + b.len() > 1 << 16 {
            self.drain()?;
        }
        if b.len() > 1 << 16 {
            return self.raw(b);
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
        if let Some(f) = &mut self.file {
            f.write_all(b)?;
        } else if let Some(f) = &mut self.spool {
            f.write_all(b)?;
        } else {
            std::io::stdout().write_all(b)?;
        }
        Ok(())
    }

    fn finish(mut self, rows: u64) -> Result<()> {
        self.drain()?;
        if let Some((dt, cols)) = self.npy {
            let h = npy::write_header(dt, false, &[rows, cols as u64]);
            if h.len() != self.header_len {
                bail!("internal error: the .npy header changed length");
            }
            let f = match (&mut self.file, &mut self.spool) {
                (Some(a), _) => a.file(),
                (None, Some(s)) => s,
                _ => unreachable!("npy output has a file"),
            };
            f.seek(SeekFrom::Start(0))?;
            f.write_all(&h)?;
            if let Some(s) = &mut self.spool {
                s.seek(SeekFrom::Start(0))?;
                std::io::copy(s, &mut std::io::stdout().lock())?;
            }
        }
        if let Some(f) = self.file.take() {
            f.commit()?;
        } else {
            std::io::stdout().flush()?;
        }
        Ok(())
    }
}

/// `.npy` → CSV: 1-D as one column, 2-D as rows, more dimensions as (shape[0], rest).
pub fn npy_to_csv(
    args: &ApplyArgs,
    act: Option<Activation>,
    mut input: NpyInput,
    delim: u8,
    path: Option<&Path>,
) -> Result<()> {
    let name = input.name.clone();
    if args.act.upstream.is_some() {
        return Err(UsageError("--upstream with CSV output is not supported: write .npy, then convert".into()).into());
    }
    if input.header.fortran_order && input.header.shape.iter().filter(|&&d| d > 1).count() > 1 {
        // CSV rows are C order: read the array through a transposing view of its data.
        let src = FortranAsC::new(&mut input).with_context(|| name.clone())?;
        input.source = Box::new(src);
        input.header.fortran_order = false;
    }
    let h = &input.header;
    let plan = resolve_plan(&args.act, act, h, args.dtype.dtype()).with_context(|| name.clone())?;
    let out_dtype = plan.output;
    let cols = if h.shape.len() <= 1 { 1 } else { h.shape[1..].iter().product::<u64>().max(1) } as usize;
    let elements = h.elements;
    let mut proc = ChunkProcessor::new(plan, Kernel::default(), None);
    let mut sink = Sink::open(&Dest::Csv(path), out_dtype, cols)?;
    let mut fmt = ryu::Buffer::new();
    let mut line: Vec<u8> = Vec::new();
    let mut index = 0u64;
    let mut write = |out: &[u8]| -> Result<()> {
        line.clear();
        for i in 0..out.len() / out_dtype.size() {
            push_value(&mut line, &mut fmt, out_dtype, out, i);
            index += 1;
            line.push(if index % cols as u64 == 0 { b'\n' } else { delim });
        }
        sink.write(&line)
    };
    pipeline::stream(&mut proc, elements, input.source.as_mut(), None, &mut write).with_context(|| name.clone())?;
    sink.finish(0)
}

/// A Fortran-ordered array's data handed out in C order, for CSV rows. The data is memory-mapped
/// (a file's own data region, or a spool of a stream) and gathered element by element with an
/// odometer over the shape, so no second copy of the array is held in memory.
struct FortranAsC {
    map: memmap2::Mmap,
    base: usize,
    size: usize,
    shape: Vec<usize>,
    /// Fortran strides in elements, per axis.
    strides: Vec<usize>,
    idx: Vec<usize>,
    off: usize,
    buf: Vec<u8>,
}

impl FortranAsC {
    fn new(input: &mut NpyInput) -> Result<FortranAsC> {
        let h = &input.header;
        let size = h.dtype()?.size();
        let bytes = h.elements as usize * size;
        let (file, base) = match &input.file {
            Some(f) => (f.try_clone()?, h.data_offset as usize),
            None => {
                let mut spool = tempfile::tempfile().context("cannot create a temporary file")?;
                let mut left = bytes;
                while left > 0 {
                    let n = left.min(pipeline::CHUNK_BYTES);
                    spool.write_all(input.source.next_chunk(n)?)?;
                    left -= n;
                }
                (spool, 0)
            }
        };
        // SAFETY: read-only private map; a file truncated meanwhile could raise SIGBUS, as any
        // mmap reader would.
        let map = unsafe { memmap2::MmapOptions::new().map(&file)? };
        if map.len() < base + bytes {
            bail!("data ends early: the file was truncated while being read");
        }
        let shape: Vec<usize> = h.shape.iter().map(|&d| d as usize).collect();
        let mut strides = vec![1usize; shape.len()];
        for a in 1..shape.len() {
            strides[a] = strides[a - 1] * shape[a - 1];
        }
        let idx = vec![0; shape.len()];
        Ok(FortranAsC { map, base, size, shape, strides, idx, off: 0, buf: Vec::new() })
    }
}

impl ChunkSource for FortranAsC {
    fn next_chunk(&mut self, len: usize) -> Result<&[u8]> {
        let s = self.size;
        self.buf.clear();
        for _ in 0..len / s {
            let at = self.base + self.off * s;
            self.buf.extend_from_slice(&self.map[at..at + s]);
            // next C-order index: the last axis runs fastest
            for a in (0..self.shape.len()).rev() {
                self.idx[a] += 1;
                self.off += self.strides[a];
                if self.idx[a] < self.shape[a] {
                    break;
                }
                self.off -= self.strides[a] * self.shape[a];
                self.idx[a] = 0;
            }
        }
        Ok(&self.buf)
    }
}
