//! `relu apply` with CSV/TSV on either side: CSV → CSV, CSV → `.npy`, `.npy` → CSV.
//!
//! The CSV reader hands out records; values are gathered a chunk of whole rows at a time into f64
//! and go through the same `ChunkProcessor` as `.npy` data. On output, a value the activation left
//! unchanged is copied through as its original text; others are written as the shortest text that
//! reads back to the same value. This path is sequential for now (parallel parsing is planned).

use super::common::{resolve_plan, NpyInput};
use crate::act::{self, Activation};
use crate::cli::{ApplyArgs, UsageError};
use crate::dtype::{ByteOrder, DType};
use crate::format::csv::{parse_number, push_f32, push_f64, CsvReader, LineError};
use crate::format::npy::{self, Header};
use crate::kernel::Kernel;
use crate::output::AtomicOutput;
use crate::pipeline::{self, ChunkProcessor};
use anyhow::{bail, Context, Result};
use bytemuck::cast_slice;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

/// Where the output goes and in which format.
pub enum Dest<'a> {
    Csv(Option<&'a Path>),
    Npy(Option<&'a Path>),
}

/// The delimiter from `-d` (one byte; `\t` and `tab` spell a tab).
pub fn delimiter(arg: Option<&str>, default: u8) -> Result<u8> {
    match arg {
        None => Ok(default),
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

/// CSV input: records → chunks of f64 rows → kernel → CSV or `.npy`.
pub fn csv_input(
    args: &ApplyArgs,
    act: Option<Activation>,
    name: &str,
    input: impl Read,
    delim: u8,
    dest: Dest,
) -> Result<()> {
    if args.act.upstream.is_some() {
        return Err(UsageError("--upstream with CSV input is not supported yet".into()).into());
    }
    let mut rd = CsvReader::new(input, delim);
    let mut header: Option<Vec<u8>> = None;
    let first = rd.next_record().with_context(|| name.to_string())?.map(|f| f.to_vec());
    if first.is_none() {
        bail!("{name}: empty input: no records");
    }
    let mut pending_first = false;
    let mut cols = 0usize;
    if let Some(fields) = &first {
        rd.check_text().with_context(|| name.to_string())?;
        let numeric = fields.iter().all(|f| parse_number(rd.bytes(f)).is_some());
        let is_header = if args.header {
            true
        } else if args.no_header {
            if let Some((i, f)) = fields.iter().enumerate().find(|(_, f)| parse_number(rd.bytes(f)).is_none()) {
                let text = String::from_utf8_lossy(rd.bytes(f)).into_owned();
                return Err(line_error(rd.line_of_record(), i + 1, format!("'{text}' is not a number (--no-header)")))
                    .with_context(|| name.to_string());
            }
            false
        } else {
            !numeric
        };
        cols = fields.len();
        if is_header {
            header = Some(rd.record_bytes().to_vec());
        } else {
            pending_first = true;
        }
    }
    // A CSV table is (rows, columns), read as float64.
    let h = Header {
        version: (1, 0),
        dtype: Ok(DType::F64),
        descr: "<f8".into(),
        order: ByteOrder::Little,
        fortran_order: false,
        shape: vec![0, cols as u64],
        data_offset: 0,
        elements: 0,
        data_bytes: Some(0),
    };
    let plan = resolve_plan(&args.act, act, &h, args.dtype.dtype()).with_context(|| name.to_string())?;
    let out_dtype = plan.output;
    let mut proc = ChunkProcessor::new(plan, Kernel::default(), None);
    let rows_per_chunk = (proc.chunk_elems / cols.max(1)).max(1);
    let mut values: Vec<f64> = Vec::with_capacity(rows_per_chunk * cols.max(1));
    let mut texts: Vec<u8> = Vec::new();
    let mut ends: Vec<u32> = Vec::with_capacity(values.capacity());
    let mut rows: u64 = 0;
    let mut done: u64 = 0;
    let mut line_out: Vec<u8> = Vec::new();
    let mut fmt = ryu::Buffer::new();

    let mut sink = Sink::open(&dest, out_dtype, cols)?;
    if let (Some(h), Dest::Csv(_)) = (&header, &dest) {
        sink.write(h)?;
        sink.write(b"\n")?;
    }
    let mut flush = |values: &mut Vec<f64>,
                     texts: &mut Vec<u8>,
                     ends: &mut Vec<u32>,
                     sink: &mut Sink,
                     done: &mut u64|
     -> Result<()> {
        if values.is_empty() {
            return Ok(());
        }
        let out = proc.process(cast_slice(values), None, *done);
        match &dest {
            Dest::Npy(_) => sink.write(out)?,
            Dest::Csv(_) => {
                line_out.clear();
                let mut start = 0usize;
                for (i, &x) in values.iter().enumerate() {
                    let end = ends[i] as usize;
                    let unchanged = match out_dtype {
                        DType::F64 => cast_slice::<u8, f64>(out)[i].to_bits() == x.to_bits(),
                        _ => false,
                    };
                    if unchanged {
                        line_out.extend_from_slice(&texts[start..end]);
                    } else {
                        push_value(&mut line_out, &mut fmt, out_dtype, out, i);
                    }
                    start = end;
                    line_out.push(if (i + 1) % cols == 0 { b'\n' } else { delim });
                }
                sink.write(&line_out)?;
            }
        }
        *done += values.len() as u64;
        values.clear();
        texts.clear();
        ends.clear();
        Ok(())
    };

    // Reads the reader's current record into the chunk (no allocation per record or field).
    let record = |rd: &CsvReader<_>, values: &mut Vec<f64>, texts: &mut Vec<u8>, ends: &mut Vec<u32>| -> Result<()> {
        let fields = rd.fields();
        rd.check_text()?;
        if fields.len() != cols {
            return Err(line_error(
                rd.line_of_record(),
                0,
                format!("{} fields, but the first record has {cols}", fields.len()),
            ));
        }
        for (i, f) in fields.iter().enumerate() {
            let b = rd.bytes(f);
            let Some(v) = parse_number(b) else {
                let text = String::from_utf8_lossy(b).into_owned();
                return Err(line_error(rd.line_of_record(), i + 1, format!("'{text}' is not a number")));
            };
            values.push(v);
            texts.extend_from_slice(trim(b));
            ends.push(texts.len() as u32);
        }
        Ok(())
    };

    let result = (|| -> Result<()> {
        if pending_first {
            // The first record is still the reader's current one.
            record(&rd, &mut values, &mut texts, &mut ends)?;
            rows += 1;
        }
        while rd.next_record()?.is_some() {
            record(&rd, &mut values, &mut texts, &mut ends)?;
            rows += 1;
            if values.len() >= rows_per_chunk * cols {
                flush(&mut values, &mut texts, &mut ends, &mut sink, &mut done)?;
            }
        }
        flush(&mut values, &mut texts, &mut ends, &mut sink, &mut done)
    })();
    result.with_context(|| name.to_string())?;
    sink.finish(rows)
}

fn trim(b: &[u8]) -> &[u8] {
    let mut s = b;
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
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
    let h = &input.header;
    if h.fortran_order && h.shape.iter().filter(|&&d| d > 1).count() > 1 {
        bail!("{name}: Fortran-ordered arrays to CSV are not supported yet");
    }
    if args.act.upstream.is_some() {
        return Err(UsageError("--upstream with CSV output is not supported yet".into()).into());
    }
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
