//! CSV/TSV tables through the pipeline on workers: the input is read in blocks of whole records
//! (`format::csv::BlockReader`), workers parse blocks in parallel and run their values through
//! their own fork of the [`ChunkProcessor`], and the results reach the sink in input order
//! (`par::ordered_map`). Values are gathered a chunk of whole rows at a time into f64.
//!
//! On CSV output a value the activation left unchanged is copied through as its original text;
//! others are written as the shortest text that reads back to the same value. relu to CSV skips
//! the conversion altogether for plain numbers (`fastpath::relu_plain_record`).

use crate::act::{Activation, Func};
use crate::dtype::DType;
use crate::fastpath::relu_plain_record;
use crate::format::csv::{
    check_text, parse_number, plain_record_values, trim_range, CsvEncoder, CsvTable, LineError, Scanner, BLOCK,
    MAX_RECORD,
};
use crate::par;
use crate::pipeline::{ChunkProcessor, Observer};
use crate::stats::StatsAccumulator;
use anyhow::Result;
use bytemuck::cast_slice;
use std::io::Read;

/// What the workers make of each block.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum TableOut {
    /// CSV text with this delimiter.
    Csv(u8),
    /// The output type's bytes, row after row (a `.npy`'s data).
    Raw,
    /// Nothing: statistics and observers only.
    Nothing,
}

#[derive(Default)]
struct Block {
    buf: Vec<u8>,
    start: usize,
    /// In place of a record past the length limit (the reader stops after it).
    too_long: bool,
    /// Longer than a block (it holds a record longer than one): parsed by the writer, its
    /// output streamed (see [`run`]).
    big: bool,
}

/// The most bytes of big blocks in flight (read, not yet written); one is always let through.
const BIG_BUDGET: usize = 2 * MAX_RECORD;

#[derive(Default)]
struct Done {
    bytes: Vec<u8>,
    rows: u64,
    lines: u64,
    stats: Option<StatsAccumulator>,
    /// A data error, its line counted from the block's first line (0).
    err: Option<LineError>,
}

struct Worker<O: Observer> {
    sc: Scanner,
    proc: ChunkProcessor<O>,
    enc: CsvEncoder,
    values: Vec<f64>,
    spans: Vec<(u32, u32)>,
    /// The column of `values[0]` (not 0 only when a record wider than a chunk is flushed in
    /// pieces).
    col0: u64,
}

/// Streams a table's records through forks of `proc` on `threads` workers; `sink` gets the
/// output bytes in order. Returns the row count; the statistics (merged in block order, so they
/// do not depend on the thread count) and the observers end up in `proc`.
///
/// Memory is bounded by bytes, whatever the thread count: ordinary blocks (about [`BLOCK`]) are
/// at most `threads + 2` in flight; a block longer than that holds a record up to
/// [`MAX_RECORD`], and such blocks are admitted up to [`BIG_BUDGET`] bytes in flight and parsed
/// one at a time by the writer, which streams their output to `sink` as it goes, so a 16 MiB
/// record's values (a few times its size as f64 or text) are never held at once. A record
/// wider than a chunk is scanned a group of fields at a time and flushed mid-row.
pub fn run<R: Read + Send, O: Observer>(
    t: CsvTable<R>,
    proc: &mut ChunkProcessor<O>,
    out: TableOut,
    threads: usize,
    mut sink: impl FnMut(&[u8]) -> Result<()>,
) -> Result<u64> {
    let CsvTable { name, delim, cols, mut reader, first, first_start, header_lines, .. } = t;
    let plan = proc.plan();
    // relu to f64 CSV decides each value by its sign and syntax: no number is converted.
    let fast = matches!(out, TableOut::Csv(_))
        && proc.stats().is_none()
        && plan.output == DType::F64
        && plan.act == Some(Activation::Value(Func::Relu))
        && plan.upstream.is_none();
    let worker = || Worker {
        sc: Scanner::new(delim),
        proc: proc.fork(),
        enc: CsvEncoder::new(if let TableOut::Csv(d) = out { d } else { b',' }, cols),
        values: Vec::new(),
        spans: Vec::new(),
        col0: 0,
    };
    let workers: Vec<Worker<O>> = (0..threads.max(1)).map(|_| worker()).collect();
    // the writer's own, for big blocks
    let mut writer = worker();
    let mut first = Some((first, first_start));
    let read = move |job: &mut Block| -> Result<bool> {
        if job.buf.capacity() > 2 * BLOCK {
            job.buf = Vec::new(); // after a big block: give its memory back
        }
        let more = if let Some((mut b, s)) = first.take() {
            std::mem::swap(&mut job.buf, &mut b);
            (job.start, job.too_long) = (s, false);
            true
        } else {
            job.start = 0;
            let more = reader.next_block(&mut job.buf)?;
            job.too_long = reader.too_long;
            more
        };
        job.big = job.buf.len() > BLOCK;
        Ok(more)
    };
    let cost = |job: &Block| if job.big { job.buf.capacity() } else { 0 };
    let work = |w: &mut Worker<O>, job: &Block, done: &mut Done| -> Result<()> {
        done.bytes.clear();
        done.rows = 0;
        done.err = None;
        if job.too_long {
            done.err = Some(crate::format::csv::too_long(0));
        } else if !job.big {
            done.err = parse_block(w, job, done, cols, out, fast, &mut None).err();
        }
        w.proc.take_stats_into(&mut done.stats);
        Ok(())
    };
    let mut base = 1 + header_lines;
    let mut rows = 0u64;
    let mut stats = proc.stats().map(|s| s.fresh());
    let write = |job: &mut Block, done: &mut Done| -> Result<()> {
        if job.big && !job.too_long {
            done.bytes.clear();
            done.rows = 0;
            let mut io = None;
            let mut spill = |bytes: &mut Vec<u8>| {
                if io.is_none() {
                    io = sink(bytes.as_slice()).err();
                }
                bytes.clear();
            };
            let mut spill: Spill = Some(&mut spill);
            done.err = parse_block(&mut writer, job, done, cols, out, fast, &mut spill).err();
            writer.proc.take_stats_into(&mut done.stats);
            job.buf = Vec::new();
            if let Some(e) = io {
                return Err(e);
            }
        }
        if let Some(e) = done.err.take() {
            return Err(LineError { line: e.line + base, ..e }.into());
        }
        sink(&done.bytes)?;
        rows += done.rows;
        base += done.lines;
        if let (Some(a), Some(s)) = (stats.as_mut(), &done.stats) {
            a.merge(s);
        }
        Ok(())
    };
    let depth = threads.max(1) + 2;
    let budget = par::Budget { bytes: BIG_BUDGET, cost: &cost };
    let workers = par::ordered_map(workers, depth, budget, read, work, write).map_err(|e| {
        if crate::output::is_broken_pipe(&e) {
            e
        } else {
            e.context(name.clone())
        }
    })?;
    // The statistics came block by block, in order; what else the workers observed merges now.
    for w in workers.into_iter().chain([writer]) {
        proc.merge(w.proc);
    }
    if let Some(s) = &stats {
        proc.merge_stats(s);
    }
    Ok(rows)
}

/// Where a big block's output goes as it is made (the writer's sink), once over a block's size.
type Spill<'a> = Option<&'a mut dyn FnMut(&mut Vec<u8>)>;

/// One block's records → output bytes (and statistics in the worker's processor). With `spill`
/// (a big block, on the writer), the output so far is handed on whenever it passes a block's
/// size; a spill that fails keeps its error to itself and the parse goes on harmlessly.
#[allow(clippy::too_many_arguments)]
fn parse_block<O: Observer>(
    w: &mut Worker<O>,
    job: &Block,
    done: &mut Done,
    cols: usize,
    out: TableOut,
    fast: bool,
    spill: &mut Spill,
) -> Result<(), LineError> {
    let b = &job.buf[..];
    let delim = w.sc.delim;
    let mut pos = job.start;
    let mut line = 0u64;
    let chunk = w.proc.chunk_elems;
    let rows_per_flush = (chunk / cols.max(1)).max(1);
    // a record's values are gathered whole on this path: only for records up to a chunk
    let plain = cols <= chunk;
    let keep_text = matches!(out, TableOut::Csv(_));
    let out_delim = if let TableOut::Csv(d) = out { d } else { delim };
    w.col0 = 0;
    let mut spill_now = |bytes: &mut Vec<u8>| {
        if bytes.len() >= BLOCK {
            if let Some(s) = spill.as_mut() {
                s(bytes);
            }
        }
    };
    loop {
        if fast {
            if let Some(next) = relu_plain_record(b, pos, delim, out_delim, cols, &mut done.bytes) {
                pos = next;
                line += 1;
                done.rows += 1;
                spill_now(&mut done.bytes);
                continue;
            }
        } else if plain {
            if let Some(next) =
                plain_record_values(b, pos, delim, cols, &mut w.values, keep_text.then_some(&mut w.spans))
            {
                pos = next;
                line += 1;
                done.rows += 1;
                if w.values.len() >= rows_per_flush * cols {
                    flush(w, b, done, out, cols);
                    spill_now(&mut done.bytes);
                }
                continue;
            }
        }
        let Some(rec) = w.sc.record(b, pos, true, &mut line)? else {
            break;
        };
        pos = rec.next;
        check_text(&b[rec.start..rec.end], rec.line)?;
        if w.sc.count != cols {
            return Err(LineError {
                line: rec.line,
                field: 0,
                msg: format!("{} fields, but the first record has {cols}", w.sc.count),
            });
        }
        let mut col = 0;
        loop {
            for k in 0..w.sc.fields.len() {
                let f = w.sc.fields[k];
                col += 1;
                let text = &b[f.start..f.end];
                let Some(v) = parse_number(text) else {
                    return Err(crate::format::csv::not_a_number(rec.line, col, text));
                };
                let (s, e) = trim_range(b, f.start, f.end);
                if fast {
                    let y = crate::act::relu(v);
                    if y.to_bits() == v.to_bits() {
                        w.enc.text(&b[s..e], &mut done.bytes);
                    } else {
                        w.enc.value(y, &mut done.bytes);
                    }
                } else {
                    w.values.push(v);
                    if keep_text {
                        w.spans.push((s as u32, e as u32));
                    }
                    if w.values.len() >= chunk {
                        flush(w, b, done, out, cols); // within a record wider than a chunk
                        spill_now(&mut done.bytes);
                    }
                }
            }
            if !w.sc.more_fields(b) {
                break;
            }
            spill_now(&mut done.bytes);
        }
        done.rows += 1;
        // a record wider than a chunk ends its pieces at its end, as one that fits would
        if !fast && (w.values.len() >= rows_per_flush * cols || (!plain && !w.values.is_empty())) {
            flush(w, b, done, out, cols);
        }
        spill_now(&mut done.bytes);
    }
    if !fast {
        flush(w, b, done, out, cols);
    }
    done.lines = line;
    Ok(())
}

/// Runs the gathered values through the processor (in pieces of at most one chunk) and encodes
/// them.
fn flush<O: Observer>(w: &mut Worker<O>, b: &[u8], done: &mut Done, out: TableOut, cols: usize) {
    let chunk = w.proc.chunk_elems;
    let out_dtype = w.proc.plan().output;
    let mut first = 0;
    while first < w.values.len() {
        let n = chunk.min(w.values.len() - first);
        let x = &w.values[first..first + n];
        // the offset only places values in their columns
        let y = w.proc.process(cast_slice(x), None, w.col0 + first as u64);
        match out {
            TableOut::Nothing => {}
            TableOut::Raw => done.bytes.extend_from_slice(y),
            TableOut::Csv(_) if out_dtype == DType::F64 => {
                for (j, (&y, &v)) in cast_slice::<u8, f64>(y).iter().zip(x).enumerate() {
                    if y.to_bits() == v.to_bits() {
                        let (s, e) = w.spans[first + j];
                        w.enc.text(&b[s as usize..e as usize], &mut done.bytes);
                    } else {
                        w.enc.value(y, &mut done.bytes);
                    }
                }
            }
            TableOut::Csv(_) => w.enc.encode(y, out_dtype, &mut done.bytes),
        }
        first += n;
    }
    w.col0 = (w.col0 + w.values.len() as u64) % cols.max(1) as u64;
    w.values.clear();
    w.spans.clear();
}
