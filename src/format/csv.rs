//! CSV and TSV: a streaming record reader that knows RFC 4180 quoting, CRLF and LF, a UTF-8 BOM,
//! spaces around numbers, and the line each record starts on (for error messages); and number
//! formatting for output (the shortest text that reads back to the same value).
//!
//! Input is read in blocks of whole records ([`BlockReader`]), cut only where a record ends (a
//! quoted newline is not a cut), so blocks can be parsed on separate threads; fields are byte
//! ranges into a block, so parsing allocates nothing per field.

use crate::dtype::{DType, Element};
use crate::with_element;
use anyhow::{bail, Context, Result};
use std::io::Read;

/// Bytes read per block: big enough that handing a block to a worker costs little, small enough
/// that a few of them in flight keep memory low.
pub const BLOCK: usize = 1 << 20;

/// A field of a record: its bytes are `b[start..end]` (quotes removed, `""` escapes still
/// doubled; numbers never contain quotes).
#[derive(Clone, Copy, Debug)]
pub struct Field {
    pub start: usize,
    pub end: usize,
    pub quoted: bool,
}

/// A record found by [`Scanner::record`].
#[derive(Clone, Copy, Debug)]
pub struct Record {
    /// The record's raw bytes are `b[start..end]` (without its line end).
    pub start: usize,
    pub end: usize,
    /// Where the next record (or blank line) begins.
    pub next: usize,
    /// The line the record starts on, counted as the caller counts (see [`Scanner::record`]).
    pub line: u64,
}

/// Finds records in a byte slice. Holds the current record's fields, so scanning allocates
/// nothing per record once the field list has grown to the widest record, up to [`FIELD_CAP`]:
/// a wider record is scanned whole (its end, its field count and its syntax errors are known)
/// but only its first fields are kept, and [`Scanner::more_fields`] hands out the rest a cap at
/// a time, so memory does not grow with a record's width (16 MiB of commas is 16 M fields).
pub struct Scanner {
    pub delim: u8,
    /// The current record's fields (its first `cap`, then each later group).
    pub fields: Vec<Field>,
    /// How many fields the current record has.
    pub count: usize,
    cap: usize,
    /// Where the first field not in `fields` starts, and its line.
    resume: Option<(usize, u64)>,
}

/// The most fields a [`Scanner`] holds at once.
pub const FIELD_CAP: usize = 1 << 16;

impl Scanner {
    pub fn new(delim: u8) -> Self {
        Scanner { delim, fields: Vec::new(), count: 0, cap: FIELD_CAP, resume: None }
    }

    /// The next group of the current record's fields after those in `fields` (the record was
    /// scanned whole by [`Scanner::record`] on the same `b`): false when there are no more.
    pub fn more_fields(&mut self, b: &[u8]) -> bool {
        let Some((i, ln)) = self.resume.take() else { return false };
        self.fields.clear();
        let (count, mut line) = (self.count, ln);
        // The record scanned without error the first time: so does any part of it.
        let _ = self.scan(b, i, i, ln, true, true, &mut line);
        self.count = count;
        true
    }

    #[inline]
    fn is_space(&self, c: u8) -> bool {
        c == b' ' || (c == b'\t' && self.delim != b'\t')
    }

    /// The next record of `b` from `pos`, skipping blank lines; its fields are in `self.fields`.
    /// `line` is the line `pos` is on and, on success, becomes the line after the record.
    /// `Ok(None)`: no complete record from `pos` (with `at_eof`, none at all). Without `at_eof`,
    /// a record is complete only when its line end is in `b`.
    pub fn record(
        &mut self,
        b: &[u8],
        mut pos: usize,
        at_eof: bool,
        line: &mut u64,
    ) -> Result<Option<Record>, LineError> {
        let mut ln = *line;
        // blank lines: LF, CRLF or a lone CR
        loop {
            match b.get(pos) {
                None => {
                    if at_eof {
                        *line = ln; // the blank lines are consumed
                    }
                    return Ok(None);
                }
                Some(b'\n') => pos += 1,
                Some(b'\r') => match b.get(pos + 1) {
                    Some(b'\n') => pos += 2,
                    None if !at_eof => return Ok(None),
                    _ => pos += 1,
                },
                Some(_) => break,
            }
            ln += 1;
        }
        self.fields.clear();
        (self.count, self.resume) = (0, None);
        self.scan(b, pos, pos, ln, at_eof, false, line)
    }

    /// Scans a record's fields from `i` (a field's start, on line `ln`) for [`Scanner::record`]
    /// (the record starts at `start`); with `group`, stops once `fields` is full, for
    /// [`Scanner::more_fields`].
    #[allow(clippy::too_many_arguments)]
    #[inline]
    fn scan(
        &mut self,
        b: &[u8],
        start: usize,
        mut i: usize,
        mut ln: u64,
        at_eof: bool,
        group: bool,
        line: &mut u64,
    ) -> Result<Option<Record>, LineError> {
        let rec_line = ln;
        loop {
            if self.fields.len() == self.cap {
                if self.resume.is_none() {
                    self.resume = Some((i, ln));
                }
                if group {
                    return Ok(None);
                }
            }
            let mut j = i;
            while j < b.len() && self.is_space(b[j]) {
                j += 1;
            }
            let field_end;
            if j < b.len() && b[j] == b'"' {
                let open_line = ln;
                let fstart = j + 1;
                let mut k = fstart;
                loop {
                    let Some(&c) = b.get(k) else {
                        if at_eof {
                            return Err(LineError {
                                line: open_line,
                                field: self.count + 1,
                                msg: "a quote opened here is never closed".into(),
                            });
                        }
                        return Ok(None);
                    };
                    match c {
                        b'"' if b.get(k + 1) == Some(&b'"') => k += 2,
                        b'"' => break,
                        b'\n' => {
                            ln += 1;
                            k += 1;
                        }
                        _ => k += 1,
                    }
                }
                if k + 1 >= b.len() && !at_eof {
                    return Ok(None); // cannot tell a `""` escape from the closing quote yet
                }
                self.push(Field { start: fstart, end: k, quoted: true });
                field_end = k + 1;
                j = k + 1;
                while j < b.len() && self.is_space(b[j]) {
                    j += 1;
                }
                if j < b.len() && b[j] != self.delim && b[j] != b'\n' && b[j] != b'\r' {
                    return Err(LineError { line: ln, field: self.count, msg: "text after a closing quote".into() });
                }
            } else {
                let d = self.delim;
                let k = match memchr::memchr3(d, b'\n', b'\r', &b[j..]) {
                    Some(o) => j + o,
                    None if at_eof => b.len(),
                    None => return Ok(None),
                };
                self.push(Field { start: i, end: k, quoted: false });
                field_end = k;
                j = k;
            }
            // after a field: delimiter, line end, or end of input
            let Some(&c) = b.get(j) else {
                if !at_eof {
                    return Ok(None);
                }
                *line = ln + 1;
                return Ok(Some(Record { start, end: field_end, next: j, line: rec_line }));
            };
            let next = match c {
                b'\n' => j + 1,
                b'\r' => match b.get(j + 1) {
                    Some(b'\n') => j + 2,
                    None if !at_eof => return Ok(None),
                    _ => j + 1,
                },
                _ => {
                    i = j + 1; // the delimiter
                    continue;
                }
            };
            *line = ln + 1;
            return Ok(Some(Record { start, end: field_end, next, line: rec_line }));
        }
    }

    #[inline(always)]
    fn push(&mut self, f: Field) {
        self.count += 1;
        if self.fields.len() < self.cap {
            self.fields.push(f);
        }
    }
}

/// How the first record of a table is treated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum HeaderMode {
    /// A header when any of its fields is not a number.
    #[default]
    Auto,
    Yes,
    No,
}

/// A CSV table opened for streaming: its first record looked at (header or not, column count),
/// the rest still to be read block by block.
pub struct CsvTable<R> {
    pub name: String,
    pub delim: u8,
    /// The header record's raw text, when there is one, and its fields as written (quoted or not).
    pub header: Option<Vec<u8>>,
    pub cols: usize,
    pub reader: BlockReader<R>,
    /// The first block, and where its data starts (after a BOM and the header).
    pub first: Vec<u8>,
    pub first_start: usize,
    /// Lines before the data starts.
    pub header_lines: u64,
}

impl<R: Read> CsvTable<R> {
    pub fn open(name: &str, r: R, delim: u8, mode: HeaderMode) -> Result<CsvTable<R>> {
        let ctx = || name.to_string();
        let mut reader = BlockReader::new(r, delim);
        let mut first = Vec::new();
        if !reader.next_block(&mut first).with_context(ctx)? {
            bail!("{name}: empty input: no records");
        }
        if reader.too_long {
            return Err(anyhow::Error::from(too_long(1))).with_context(ctx);
        }
        let bom = if first.starts_with(b"\xEF\xBB\xBF") { 3 } else { 0 };
        let mut sc = Scanner::new(delim);
        let mut line = 1;
        let Some(rec) = sc.record(&first, bom, true, &mut line).with_context(ctx)? else {
            bail!("{name}: empty input: no records");
        };
        check_text(&first[rec.start..rec.end], rec.line).with_context(ctx)?;
        let cols = sc.count;
        // the first field that is not a number, over every group of a wide record
        let mut not_number = None;
        let mut seen = 0;
        loop {
            if let Some(i) = sc.fields.iter().position(|f| parse_number(&first[f.start..f.end]).is_none()) {
                not_number = Some((seen + i, sc.fields[i]));
                break;
            }
            seen += sc.fields.len();
            if !sc.more_fields(&first) {
                break;
            }
        }
        let is_header = match (mode, not_number) {
            (HeaderMode::Yes, _) => true,
            (HeaderMode::No, Some((i, f))) => {
                let mut e = not_a_number(rec.line, i + 1, &first[f.start..f.end]);
                e.msg.push_str(" (--no-header)");
                return Err(anyhow::Error::from(e)).with_context(ctx);
            }
            (HeaderMode::No, None) => false,
            (HeaderMode::Auto, n) => n.is_some(),
        };
        let (header, first_start, header_lines) =
            if is_header { (Some(first[rec.start..rec.end].to_vec()), rec.next, line - 1) } else { (None, bom, 0) };
        Ok(CsvTable { name: name.to_string(), delim, header, cols, reader, first, first_start, header_lines })
    }

    /// The header line for an output with `out_delim`: as it was, or re-joined (and quoted where
    /// needed) when the delimiter changes.
    pub fn header_line(&self, out_delim: u8) -> Option<Vec<u8>> {
        let raw = self.header.as_ref()?;
        if out_delim == self.delim {
            return Some(raw.clone());
        }
        // its fields scanned again, a group at a time (a header may be as wide as a record)
        let mut sc = Scanner::new(self.delim);
        sc.record(raw, 0, true, &mut 0).ok()??;
        let mut line = Vec::new();
        let mut i = 0;
        loop {
            for f in &sc.fields {
                let (text, quoted) = (&raw[f.start..f.end], &f.quoted);
                if i > 0 {
                    line.push(out_delim);
                }
                i += 1;
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
            if !sc.more_fields(raw) {
                return Some(line);
            }
        }
    }
}

/// Output elements as CSV text: `cols` values a line, each the shortest text that reads back to
/// the same value. Keeps its place in the line across calls.
pub struct CsvEncoder {
    delim: u8,
    cols: u64,
    index: u64,
    fmt: ryu::Buffer,
}

impl CsvEncoder {
    pub fn new(delim: u8, cols: usize) -> Self {
        CsvEncoder { delim, cols: cols.max(1) as u64, index: 0, fmt: ryu::Buffer::new() }
    }

    /// Appends `bytes` (native elements of type `dt`) to `dst`.
    pub fn encode(&mut self, bytes: &[u8], dt: DType, dst: &mut Vec<u8>) {
        with_element!(dt, T => {
            for &v in bytemuck::cast_slice::<u8, T>(bytes) {
                self.value(v, dst);
            }
        })
    }

    /// Appends one value and what follows it (the delimiter, or a line end after the last column).
    #[inline]
    pub fn value<T: Element>(&mut self, v: T, dst: &mut Vec<u8>) {
        v.write_text(dst, &mut self.fmt);
        self.index += 1;
        dst.push(if self.index.is_multiple_of(self.cols) { b'\n' } else { self.delim });
    }

    /// Appends a value's original text instead (a value the activation left unchanged).
    #[inline]
    pub fn text(&mut self, t: &[u8], dst: &mut Vec<u8>) {
        dst.extend_from_slice(t);
        self.index += 1;
        dst.push(if self.index.is_multiple_of(self.cols) { b'\n' } else { self.delim });
    }
}

/// Where the last complete record of `b` ends (the scan starts at a record boundary), or `None`
/// when `b` holds no complete record. Without quotes that is just after the last line end; with
/// quotes the records are walked as a worker will walk them, so a quoted newline is never a cut.
pub fn last_boundary(b: &[u8], sc: &mut Scanner) -> Option<usize> {
    if memchr::memchr(b'"', b).is_none() {
        if let Some(i) = memchr::memrchr(b'\n', b) {
            return Some(i + 1);
        }
        // lone-CR line ends: a CR with a byte after it (so not the first half of a CRLF)
        return memchr::memrchr(b'\r', &b[..b.len().saturating_sub(1)]).map(|i| i + 1);
    }
    let (mut pos, mut line, mut last) = (0, 0, None);
    loop {
        match sc.record(b, pos, false, &mut line) {
            Ok(Some(r)) => {
                pos = r.next;
                last = Some(pos);
            }
            Ok(None) => return last,
            // The worker that scans this block from its start meets the same error first.
            Err(_) => return Some(b.len()),
        }
    }
}

/// Reads input in blocks of whole records (about [`BLOCK`] bytes; longer when one record is).
/// Blocks are cut at the same places whatever the reads return, so results never depend on
/// timing or on the number of threads.
pub struct BlockReader<R> {
    r: R,
    carry: Vec<u8>,
    eof: bool,
    sc: Scanner,
    pub block: usize,
    /// The last block returned is empty in place of a record longer than [`max_record`].
    pub too_long: bool,
}

/// The longest record relu reads by default (an unterminated quote, or a file with no line end,
/// would otherwise be buffered whole). A block holds whole records, so this bounds a block too.
/// `RELU_MAX_RECORD` (MiB) raises it for tables whose rows are that wide ([`max_record`]).
pub const MAX_RECORD: usize = 16 << 20;

/// The most `RELU_MAX_RECORD` may ask for, in MiB: blocks in flight each hold up to a record, so
/// memory grows with the limit (about the limit times the threads plus two).
pub const MAX_RECORD_CEILING_MIB: usize = 1024;

/// The record limit in force, in bytes ([`MAX_RECORD`] until [`set_max_record_from_env`] says otherwise).
static RECORD_LIMIT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(MAX_RECORD);

/// The longest record relu reads now, in bytes.
pub fn max_record() -> usize {
    RECORD_LIMIT.load(std::sync::atomic::Ordering::Relaxed)
}

/// Reads `RELU_MAX_RECORD` (a whole number of MiB, 1 to [`MAX_RECORD_CEILING_MIB`]) into the
/// record limit; a value that is not one is a usage error.
pub fn set_max_record_from_env() -> Result<()> {
    let Some(v) = std::env::var_os("RELU_MAX_RECORD") else { return Ok(()) };
    let text = v.to_string_lossy();
    match text.trim().parse::<usize>() {
        Ok(mib) if (1..=MAX_RECORD_CEILING_MIB).contains(&mib) => {
            RECORD_LIMIT.store(mib << 20, std::sync::atomic::Ordering::Relaxed);
            Ok(())
        }
        _ => crate::usage::usage(format!(
            "RELU_MAX_RECORD={}: give the longest CSV record in MiB, a whole number from 1 to {MAX_RECORD_CEILING_MIB}",
            crate::quote::text(&text)
        )),
    }
}

/// The error for a record past [`max_record`], on its first line (0 = the block's first). A
/// legitimate wide row gets here as well as a broken file, so it says how to raise the limit.
pub fn too_long(line: u64) -> LineError {
    let mib = max_record() >> 20;
    LineError {
        line,
        field: 0,
        msg: format!(
            "a record longer than {mib} MiB, the limit: refused (an unterminated quote, or no line end? \
             if rows are this wide, raise the limit with RELU_MAX_RECORD=MIB, e.g. RELU_MAX_RECORD={})",
            (mib * 4).min(MAX_RECORD_CEILING_MIB)
        ),
    }
}

/// The error for a field that is not a number, quoting (the start of) its text.
pub fn not_a_number(line: u64, field: usize, text: &[u8]) -> LineError {
    LineError { line, field, msg: format!("{} is not a number", crate::quote::field(text)) }
}

impl<R: Read> BlockReader<R> {
    pub fn new(r: R, delim: u8) -> Self {
        BlockReader { r, carry: Vec::new(), eof: false, sc: Scanner::new(delim), block: BLOCK, too_long: false }
    }

    /// Fills `buf` with the next block; false when the input is exhausted.
    pub fn next_block(&mut self, buf: &mut Vec<u8>) -> Result<bool> {
        buf.clear();
        buf.extend_from_slice(&self.carry);
        self.carry.clear();
        let mut want = self.block;
        loop {
            if !self.eof && buf.len() < want {
                let need = (want - buf.len()) as u64;
                let got = read_up_to(&mut self.r, buf, need)?;
                if got < need {
                    self.eof = true;
                }
            }
            if buf.is_empty() {
                return Ok(false);
            }
            if self.eof {
                return Ok(true);
            }
            match last_boundary(buf, &mut self.sc) {
                Some(cut) => {
                    self.carry.extend_from_slice(&buf[cut..]);
                    buf.truncate(cut);
                    return Ok(true);
                }
                // one record longer than a block: read more, up to the limit
                None if buf.len() < max_record() => want = (buf.len() * 2).min(max_record()),
                None => {
                    // nothing after this is read: memory stays at the limit
                    buf.clear();
                    (self.too_long, self.eof) = (true, true);
                    return Ok(true);
                }
            }
        }
    }
}

/// Appends up to `n` bytes from `r` to `buf`; fewer only at the end of the input.
fn read_up_to(r: &mut impl Read, buf: &mut Vec<u8>, n: u64) -> Result<u64> {
    // exactly: a block grown for a long record holds no doubled capacity
    buf.reserve_exact(n as usize);
    let mut got = 0;
    while got < n {
        match r.by_ref().take(n - got).read_to_end(buf) {
            Ok(0) => break,
            Ok(k) => got += k as u64,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(got)
}

/// A record's raw bytes are text: no NUL byte, valid UTF-8. `line` is the record's first line.
pub fn check_text(raw: &[u8], line: u64) -> Result<(), LineError> {
    if raw.contains(&0) {
        return Err(LineError { line, field: 0, msg: "a NUL byte: this is not a text file".into() });
    }
    if let Err(e) = std::str::from_utf8(raw) {
        let line = line + raw[..e.valid_up_to()].iter().filter(|&&c| c == b'\n').count() as u64;
        return Err(LineError { line, field: 0, msg: "invalid UTF-8".into() });
    }
    Ok(())
}

/// A plain number: `[+-]?d+(.d+)?([eE][+-]?d+)?` with at most 4 exponent digits.
pub(crate) struct Plain {
    /// Where its text ends.
    pub(crate) end: usize,
    pub(crate) neg: bool,
    /// The digits as one integer (wrapped when there are more than 19 of them).
    pub(crate) mant: u64,
    /// Some digit is not 0 (unlike `mant`, never wrapped).
    pub(crate) nonzero: bool,
    pub(crate) digits: usize,
    /// The power of ten that scales `mant`: the exponent less the fraction digits.
    pub(crate) e10: i64,
}

/// Reads the decimal digits at `b[*i..]` into `acc` (wrapping past 19 digits), ORs something
/// nonzero into `nz` when any digit is not 0, and returns how many there were. Eight bytes at a
/// time (SWAR): one load finds how many of them are digits and one multiply-add chain converts
/// them, instead of a dependent multiply per digit.
#[inline(always)]
fn digits(b: &[u8], i: &mut usize, acc: &mut u64, nz: &mut u8) -> usize {
    const POW10: [u64; 9] = [1, 10, 100, 1_000, 10_000, 100_000, 1_000_000, 10_000_000, 100_000_000];
    let s = *i;
    while let Some(w) = b.get(*i..*i + 8) {
        let x = u64::from_le_bytes(w.try_into().expect("eight bytes")) ^ 0x3030_3030_3030_3030;
        // A byte is a digit when `x` is 0..=9 there: adding 0x76 to its low 7 bits sets bit 7
        // for 10 and up (no carry crosses bytes), and bit 7 of `x` itself marks bytes ≥ 0x80.
        let t = x & 0x7f7f_7f7f_7f7f_7f7f;
        let non = (t.wrapping_add(0x7676_7676_7676_7676) | x) & 0x8080_8080_8080_8080;
        let n = (non.trailing_zeros() / 8) as usize;
        if n == 0 {
            break;
        }
        // The n digits to the top bytes (zero digits below them), then the usual 8-digit fold.
        let v = x << (8 * (8 - n));
        let v = v.wrapping_mul(10).wrapping_add(v >> 8);
        const MASK: u64 = 0x0000_00ff_0000_00ff;
        let v = ((v & MASK)
            .wrapping_mul(100 + (1_000_000 << 32))
            .wrapping_add(((v >> 16) & MASK).wrapping_mul(1 + (10_000 << 32))))
            >> 32;
        *acc = acc.wrapping_mul(POW10[n]).wrapping_add(v);
        *nz |= (v != 0) as u8;
        *i += n;
        if n < 8 {
            return *i - s;
        }
    }
    while let Some(&c) = b.get(*i) {
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            break;
        }
        *acc = acc.wrapping_mul(10).wrapping_add(d as u64);
        *nz |= d;
        *i += 1;
    }
    *i - s
}

#[inline(always)]
fn plain_number(b: &[u8], mut i: usize) -> Option<Plain> {
    let neg = b.get(i) == Some(&b'-');
    if matches!(b.get(i), Some(b'-' | b'+')) {
        i += 1;
    }
    let (mut mant, mut nz) = (0u64, 0u8);
    let mut n = digits(b, &mut i, &mut mant, &mut nz);
    if n == 0 {
        return None;
    }
    let mut e10 = 0i64;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let f = digits(b, &mut i, &mut mant, &mut nz);
        if f == 0 {
            return None;
        }
        n += f;
        e10 = -(f as i64);
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        let eneg = b.get(i) == Some(&b'-');
        if matches!(b.get(i), Some(b'-' | b'+')) {
            i += 1;
        }
        let mut e = 0u64;
        let k = digits(b, &mut i, &mut e, &mut 0);
        if k == 0 || k > 4 {
            return None;
        }
        e10 += if eneg { -(e as i64) } else { e as i64 };
    }
    Some(Plain { end: i, neg, mant, nonzero: nz != 0, digits: n, e10 })
}

/// Walks one plain record: `cols` plain numbers with nothing around them, separated by `delim`,
/// ending in LF or CRLF. `field(column, start, number)` takes each (false declines the record).
/// Returns where the next record starts, or `None` for anything else.
#[inline(always)]
pub(crate) fn plain_record(
    b: &[u8],
    mut i: usize,
    delim: u8,
    cols: usize,
    mut field: impl FnMut(usize, usize, &Plain) -> bool,
) -> Option<usize> {
    for c in 0..cols {
        let start = i;
        let p = plain_number(b, i)?;
        if !field(c, start, &p) {
            return None;
        }
        i = p.end;
        if c + 1 < cols {
            if b.get(i) != Some(&delim) {
                return None;
            }
            i += 1;
        } else {
            match b.get(i) {
                Some(b'\n') => i += 1,
                Some(b'\r') if b.get(i + 1) == Some(&b'\n') => i += 2,
                _ => return None,
            }
        }
    }
    Some(i)
}

/// Exact powers of ten in f64.
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20,
    1e21, 1e22,
];

/// One plain record (see `plain_record`) parsed into `values`, with each field's byte span in
/// `spans`, when every number is one that Clinger's fast path converts exactly: at most 19 digits
/// making an integer up to 2^53, times or divided by a power of ten up to 10^22. Both factors are
/// exact in f64, so one IEEE multiply or divide gives the correctly rounded value, the same bits
/// any correct parser gives. Anything else returns `None` with `values` and `spans` as they were,
/// and the caller parses the record in full.
#[inline]
pub fn plain_record_values(
    b: &[u8],
    i: usize,
    delim: u8,
    cols: usize,
    values: &mut Vec<f64>,
    mut spans: Option<&mut Vec<(u32, u32)>>,
) -> Option<usize> {
    let mark = values.len();
    let next = plain_record(b, i, delim, cols, |_, start, p| {
        if p.digits > 19 || p.mant > 1 << 53 || !(-22..=22).contains(&p.e10) {
            return false;
        }
        let m = p.mant as f64;
        let v = if p.e10 >= 0 { m * POW10[p.e10 as usize] } else { m / POW10[(-p.e10) as usize] };
        values.push(if p.neg { -v } else { v });
        if let Some(s) = spans.as_deref_mut() {
            s.push((start as u32, p.end as u32));
        }
        true
    });
    if next.is_none() {
        values.truncate(mark);
        if let Some(s) = spans {
            s.truncate(mark);
        }
    }
    next
}

/// An error at a line (and field, when not 0) of a CSV file.
#[derive(Debug)]
pub struct LineError {
    pub line: u64,
    pub field: usize,
    pub msg: String,
}

impl std::fmt::Display for LineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.field > 0 {
            write!(f, "line {}, field {}: {}", self.line, self.field, self.msg)
        } else {
            write!(f, "line {}: {}", self.line, self.msg)
        }
    }
}

impl std::error::Error for LineError {}

/// A number from a field: spaces around it are allowed; `nan`, `inf`, `-inf`, `Infinity` too.
/// An empty field is a missing value, NaN, as pandas and polars write and read it.
#[inline]
pub fn parse_number(bytes: &[u8]) -> Option<f64> {
    let (a, z) = trim_range(bytes, 0, bytes.len());
    let s = &bytes[a..z];
    if s.is_empty() {
        return Some(f64::NAN);
    }
    lexical_core::parse::<f64>(s).ok()
}

/// `b[s..e]` without the spaces and tabs around it, as a range.
pub fn trim_range(b: &[u8], mut s: usize, mut e: usize) -> (usize, usize) {
    while s < e && matches!(b[s], b' ' | b'\t') {
        s += 1;
    }
    while e > s && matches!(b[e - 1], b' ' | b'\t') {
        e -= 1;
    }
    (s, e)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A record wider than the field cap is scanned whole (its count, its end) and handed out a
    /// group at a time, quoted fields with newlines included, with the same fields in order.
    #[test]
    fn a_wide_record_comes_in_groups() {
        let n = 2 * FIELD_CAP + 5;
        let mut b = Vec::new();
        for i in 0..n {
            if i > 0 {
                b.push(b',');
            }
            if i % 1000 == 7 {
                b.extend_from_slice(format!("\"{i}\n\"").as_bytes());
            } else {
                b.extend_from_slice(i.to_string().as_bytes());
            }
        }
        b.extend_from_slice(b"\n1\n");
        let mut sc = Scanner::new(b',');
        let mut line = 1;
        let rec = sc.record(&b, 0, true, &mut line).unwrap().unwrap();
        assert_eq!(sc.count, n);
        assert_eq!(line, 2 + (0..n).filter(|i| i % 1000 == 7).count() as u64);
        let mut got = Vec::new();
        loop {
            assert!(sc.fields.len() <= FIELD_CAP);
            got.extend(sc.fields.iter().map(|f| String::from_utf8_lossy(&b[f.start..f.end]).trim().to_string()));
            if !sc.more_fields(&b) {
                break;
            }
        }
        assert_eq!(got, (0..n).map(|i| i.to_string()).collect::<Vec<_>>());
        assert_eq!(sc.count, n, "the count stays the record's");
        assert_eq!(&b[rec.next..], b"1\n");
    }
    use crate::dtype::Element;

    /// (line, fields) of every record, scanning all of `text` at once.
    fn whole(text: &[u8], delim: u8) -> Result<Vec<(u64, Vec<String>)>, LineError> {
        let mut sc = Scanner::new(delim);
        let (mut pos, mut line, mut out) = (0, 1, Vec::new());
        while let Some(r) = sc.record(text, pos, true, &mut line)? {
            out.push((
                r.line,
                sc.fields.iter().map(|f| String::from_utf8_lossy(&text[f.start..f.end]).into()).collect(),
            ));
            pos = r.next;
        }
        Ok(out)
    }

    /// A reader that hands out at most `step` bytes per read.
    struct Trickle<'a>(&'a [u8], usize);
    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.0.len().min(buf.len()).min(self.1);
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    /// The same through blocks of about `block` bytes, each scanned on its own (as workers do),
    /// with lines counted per block and added up in order.
    fn blocked(text: &[u8], delim: u8, block: usize, step: usize) -> Result<Vec<(u64, Vec<String>)>, LineError> {
        let mut br = BlockReader::new(Trickle(text, step), delim);
        br.block = block;
        let mut sc = Scanner::new(delim);
        let (mut base, mut out, mut buf) = (1, Vec::new(), Vec::new());
        while br.next_block(&mut buf).unwrap() {
            let (mut pos, mut line) = (0, 0);
            while let Some(r) =
                sc.record(&buf, pos, true, &mut line).map_err(|e| LineError { line: e.line + base, ..e })?
            {
                let f = sc.fields.iter().map(|f| String::from_utf8_lossy(&buf[f.start..f.end]).into()).collect();
                out.push((r.line + base, f));
                pos = r.next;
            }
            base += line;
        }
        Ok(out)
    }

    #[test]
    fn dialects() {
        let r = whole(b"a,b\r\n1, 2 \r\n\n\"3\",\"x\ny\"\n5,6", b',').unwrap();
        assert_eq!(r[0], (1, vec!["a".into(), "b".into()]));
        assert_eq!(r[1], (2, vec!["1".into(), " 2 ".into()]));
        assert_eq!(r[2], (4, vec!["3".into(), "x\ny".into()]));
        assert_eq!(r[3], (6, vec!["5".into(), "6".into()]));
        let t = whole(b"1\t2\n3\t4\n", b'\t').unwrap();
        assert_eq!(t.len(), 2);
        let e = whole(b"1,2\n\"3,4\n5,6\n", b',').unwrap_err();
        assert_eq!(e.line, 2);
        // lone CR line ends
        let cr = whole(b"1,2\r3,4\r\r5,6", b',').unwrap();
        assert_eq!(cr.iter().map(|r| r.0).collect::<Vec<_>>(), vec![1, 2, 4]);
    }

    #[test]
    fn records_across_blocks() {
        // Records that straddle the 1 MiB block boundary, quoted newlines included.
        let mut text = Vec::new();
        let mut want = 0;
        while text.len() < 3 << 20 {
            text.extend_from_slice(b"1.25,\"-2\n\",3e1\r\n");
            want += 1;
        }
        let r = blocked(&text, b',', BLOCK, 1 << 16).unwrap();
        assert_eq!(r.len(), want);
        assert!(r.iter().all(|(_, f)| f.len() == 3));
        assert_eq!(r.last().unwrap().0, 2 * want as u64 - 1);
        assert_eq!(r, whole(&text, b',').unwrap());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(400))]
        /// Any block size and any read sizes give the records (and lines) of one sequential scan,
        /// with quoted newlines and delimiters, CRLF, lone CRs and blank lines in the mix.
        #[test]
        fn blocks_give_the_sequential_records(
            parts in proptest::collection::vec(0usize..15, 0..80),
            block in 1usize..40,
            step in 1usize..17,
        ) {
            // with stray quotes inside fields and text after a closing quote
            const PIECES: [&str; 15] = [
                "1", "-2.5", ",", "\n", "\r\n", "\r", "\"a\nb\"", "\"x,\"\"y\"", " ", "3e-1", "\"\"", "\n\n", "1\"2",
                "\"q\"z", "\"",
            ];
            let text: String = parts.iter().map(|&i| PIECES[i]).collect();
            let want = whole(text.as_bytes(), b',');
            let got = blocked(text.as_bytes(), b',', block, step);
            match (want, got) {
                (Ok(w), Ok(g)) => proptest::prop_assert_eq!(w, g),
                (Err(w), Err(g)) => proptest::prop_assert_eq!(w.line, g.line),
                (w, g) => proptest::prop_assert!(false, "{w:?} vs {g:?}"),
            }
        }
    }

    proptest::proptest! {
        /// The fast conversion gives the bits lexical-core gives, or declines.
        #[test]
        fn plain_values_are_exact(
            mant in 0u64..u64::MAX, digits in 1usize..21, point in 0usize..21, exp in -30i32..30,
            neg in proptest::bool::ANY, with_exp in proptest::bool::ANY,
        ) {
            let m = mant.to_string();
            let m = &m[..digits.min(m.len())];
            let p = point.min(m.len());
            let mut t = String::new();
            if neg { t.push('-'); }
            t.push_str(if p == 0 { m } else { &m[..p] });
            if p > 0 && p < m.len() { t.push('.'); t.push_str(&m[p..]); }
            if with_exp { t.push_str(&format!("e{exp}")); }
            t.push('\n');
            let (mut v, mut sp) = (Vec::new(), Vec::new());
            if plain_record_values(t.as_bytes(), 0, b',', 1, &mut v, Some(&mut sp)).is_some() {
                let want = parse_number(t.trim_end().as_bytes()).unwrap();
                proptest::prop_assert_eq!(v[0].to_bits(), want.to_bits(), "{}", t);
            }
        }
    }

    proptest::proptest! {
        /// The eight-at-a-time digit reader agrees with a digit-by-digit loop, whatever follows
        /// the digits (bytes next to '0' and '9', bytes with the high bit set) and wherever the
        /// input ends.
        #[test]
        fn swar_digits_match_a_plain_loop(
            text in proptest::collection::vec(proptest::sample::select(
                b"0123456789/:.,e-\x80\xb0\xb9\xff ".to_vec()), 0..40),
            from in 0usize..40,
        ) {
            let from = from.min(text.len());
            let (mut i, mut acc, mut nz) = (from, 0u64, 0u8);
            let n = digits(&text, &mut i, &mut acc, &mut nz);
            let (mut j, mut want, mut wnz) = (from, 0u64, 0u8);
            while let Some(&c) = text.get(j) {
                if !c.is_ascii_digit() {
                    break;
                }
                want = want.wrapping_mul(10).wrapping_add((c - b'0') as u64);
                wnz |= c - b'0';
                j += 1;
            }
            proptest::prop_assert_eq!((n, i, acc, nz != 0), (j - from, j, want, wnz != 0));
        }
    }

    #[test]
    fn plain_values_decline_what_they_cannot_do_exactly() {
        let (mut v, mut sp) = (vec![9.0], vec![(0, 0)]);
        for bad in
            [&b"1e23,1\n"[..], b"12345678901234567890,1\n", b"9007199254740993,1\n", b"1,2", b"1e12345,1\n", b"nan,1\n"]
        {
            assert_eq!(
                plain_record_values(bad, 0, b',', 2, &mut v, Some(&mut sp)),
                None,
                "{}",
                String::from_utf8_lossy(bad)
            );
            assert_eq!((v.len(), sp.len()), (1, 1));
        }
        assert_eq!(plain_record_values(b"-0,2.5e-3,+7\r\n", 0, b',', 3, &mut v, Some(&mut sp)), Some(14));
        assert_eq!(v[1].to_bits(), (-0.0f64).to_bits());
        assert_eq!(&v[2..], &[2.5e-3, 7.0]);
        assert_eq!(sp[1..], [(0, 2), (3, 9), (10, 12)]);
    }

    #[test]
    fn numbers() {
        for (s, v) in [
            (" 1.5 ", 1.5),
            ("-2", -2.0),
            ("1e3", 1e3),
            ("inf", f64::INFINITY),
            ("-inf", f64::NEG_INFINITY),
            ("Infinity", f64::INFINITY),
        ] {
            assert_eq!(parse_number(s.as_bytes()), Some(v), "{s}");
        }
        assert!(parse_number(b"nan").unwrap().is_nan());
        assert!(parse_number(b"NaN").unwrap().is_nan());
        assert_eq!(parse_number(b"abc"), None);
        assert!(parse_number(b"").unwrap().is_nan()); // a missing value
        assert!(parse_number(b"  ").unwrap().is_nan());
        assert_eq!(parse_number(b"1 2"), None);
        let mut out = Vec::new();
        let mut b = ryu::Buffer::new();
        0.1f64.write_text(&mut out, &mut b);
        out.push(b',');
        0.1f32.write_text(&mut out, &mut b);
        out.push(b',');
        f64::NEG_INFINITY.write_text(&mut out, &mut b);
        assert_eq!(out, b"0.1,0.1,-inf");
    }
}
