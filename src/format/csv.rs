//! CSV and TSV: a streaming record reader that knows RFC 4180 quoting, CRLF and LF, a UTF-8 BOM,
//! spaces around numbers, and the line each record starts on (for error messages); and number
//! formatting for output (the shortest text that reads back to the same value).
//!
//! The reader holds one buffer that grows only to the longest record; fields are byte ranges into
//! it, so reading allocates nothing per field.

use anyhow::{bail, Result};
use std::io::Read;

const BLOCK: usize = 1 << 20;

/// A field of the current record: its bytes are `buf[start..end]` (quotes removed, `""` escapes
/// still doubled; numbers never contain quotes).
#[derive(Clone, Copy, Debug)]
pub struct Field {
    pub start: usize,
    pub end: usize,
    pub quoted: bool,
}

pub struct CsvReader<R> {
    r: R,
    buf: Vec<u8>,
    /// Unconsumed bytes are `buf[pos..len]`.
    pos: usize,
    len: usize,
    eof: bool,
    /// 1-based line number of the next byte at `pos`.
    line: u64,
    delim: u8,
    started: bool,
    fields: Vec<Field>,
    /// Where the current record starts in `buf` and its first line.
    rec_start: usize,
    rec_line: u64,
}

impl<R: Read> CsvReader<R> {
    pub fn new(r: R, delim: u8) -> Self {
        CsvReader {
            r,
            buf: vec![0; BLOCK],
            pos: 0,
            len: 0,
            eof: false,
            line: 1,
            delim,
            started: false,
            fields: Vec::new(),
            rec_start: 0,
            rec_line: 1,
        }
    }

    /// Moves unconsumed bytes to the front and reads more; false at end of input.
    fn refill(&mut self) -> Result<bool> {
        if self.eof {
            return Ok(false);
        }
        if self.pos > 0 {
            self.buf.copy_within(self.pos..self.len, 0);
            self.len -= self.pos;
            self.pos = 0;
        }
        if self.len == self.buf.len() {
            let n = self.buf.len() * 2;
            self.buf.resize(n, 0);
        }
        loop {
            match self.r.read(&mut self.buf[self.len..]) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(false);
                }
                Ok(k) => {
                    self.len += k;
                    return Ok(true);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// The next record's fields (empty lines are skipped); `None` at the end. The record's line
    /// is [`CsvReader::line_of_record`]; field bytes via [`CsvReader::bytes`].
    pub fn next_record(&mut self) -> Result<Option<&[Field]>> {
        if !self.started {
            self.started = true;
            while self.len < 3 && self.refill()? {}
            if self.buf[..self.len].starts_with(b"\xEF\xBB\xBF") {
                self.pos = 3;
            }
        }
        loop {
            // Skip empty lines.
            loop {
                if self.pos == self.len && !self.refill()? {
                    return Ok(None);
                }
                match self.buf[self.pos] {
                    b'\n' => {
                        self.pos += 1;
                        self.line += 1;
                    }
                    b'\r' if self.buf.get(self.pos + 1) == Some(&b'\n') => {
                        self.pos += 2;
                        self.line += 1;
                    }
                    b'\r' if self.pos + 1 == self.len && !self.eof => {
                        if !self.refill()? {
                            continue;
                        }
                    }
                    _ => break,
                }
            }
            match self.scan()? {
                Some(next) => {
                    self.pos = next;
                    return Ok(Some(&self.fields));
                }
                None => {
                    // Incomplete: read more and scan the record again from its start.
                    let before = self.pos;
                    if !self.refill()? {
                        // At end of input the record ends at the end of the data.
                        return match self.scan_final()? {
                            Some(next) => {
                                self.pos = next;
                                Ok(Some(&self.fields))
                            }
                            None => Ok(None),
                        };
                    }
                    let _ = before;
                }
            }
        }
    }

    /// Scans one record at `pos`; the position after it, or `None` when the buffer ends first.
    fn scan(&mut self) -> Result<Option<usize>> {
        self.scan_inner(false)
    }

    fn scan_final(&mut self) -> Result<Option<usize>> {
        if self.pos >= self.len {
            return Ok(None);
        }
        self.scan_inner(true)
    }

    fn scan_inner(&mut self, at_eof: bool) -> Result<Option<usize>> {
        self.fields.clear();
        let b = &self.buf[..self.len];
        let mut i = self.pos;
        let mut line = self.line;
        self.rec_start = i;
        self.rec_line = line;
        loop {
            // one field
            let mut j = i;
            while j < b.len() && (b[j] == b' ' || (b[j] == b'\t' && self.delim != b'\t')) {
                j += 1;
            }
            if j < b.len() && b[j] == b'"' {
                let open_line = line;
                let start = j + 1;
                let mut k = start;
                loop {
                    if k >= b.len() {
                        if at_eof {
                            bail!(LineError {
                                line: open_line,
                                field: self.fields.len() + 1,
                                msg: "a quote opened here is never closed".into()
                            });
                        }
                        return Ok(None);
                    }
                    match b[k] {
                        b'"' if b.get(k + 1) == Some(&b'"') => k += 2,
                        b'"' => break,
                        b'\n' => {
                            line += 1;
                            k += 1;
                        }
                        _ => k += 1,
                    }
                }
                if k + 1 >= b.len() && !at_eof {
                    return Ok(None); // cannot tell a `""` escape from the closing quote yet
                }
                self.fields.push(Field { start, end: k, quoted: true });
                j = k + 1;
                while j < b.len() && (b[j] == b' ' || (b[j] == b'\t' && self.delim != b'\t')) {
                    j += 1;
                }
                if j < b.len() && b[j] != self.delim && b[j] != b'\n' && b[j] != b'\r' {
                    bail!(LineError { line, field: self.fields.len(), msg: "text after a closing quote".into() });
                }
            } else {
                let start = i;
                let mut k = j;
                while k < b.len() && b[k] != self.delim && b[k] != b'\n' && b[k] != b'\r' {
                    k += 1;
                }
                if k >= b.len() && !at_eof {
                    return Ok(None);
                }
                self.fields.push(Field { start, end: k, quoted: false });
                j = k;
            }
            // after a field: delimiter, end of line, or end of input
            if j >= b.len() {
                if !at_eof {
                    return Ok(None);
                }
                self.line = line + 1;
                return Ok(Some(j));
            }
            match b[j] {
                c if c == self.delim => i = j + 1,
                b'\n' => {
                    self.line = line + 1;
                    return Ok(Some(j + 1));
                }
                b'\r' => {
                    if j + 1 >= b.len() && !at_eof {
                        return Ok(None);
                    }
                    let next = if b.get(j + 1) == Some(&b'\n') { j + 2 } else { j + 1 };
                    self.line = line + 1;
                    return Ok(Some(next));
                }
                _ => unreachable!("fields end at a delimiter or a line end"),
            }
        }
    }

    /// The current record's fields (after `next_record` returned one).
    pub fn fields(&self) -> &[Field] {
        &self.fields
    }

    /// The line the current record starts on (1-based, as in the file).
    pub fn line_of_record(&self) -> u64 {
        self.rec_line
    }

    pub fn bytes(&self, f: &Field) -> &[u8] {
        &self.buf[f.start..f.end]
    }

    /// The current record's raw bytes (without its line end), for copying a header through.
    pub fn record_bytes(&self) -> &[u8] {
        let end = self.fields.last().map_or(self.rec_start, |f| if f.quoted { f.end + 1 } else { f.end });
        &self.buf[self.rec_start..end]
    }

    /// The current record is text: no NUL byte, valid UTF-8.
    pub fn check_text(&self) -> Result<()> {
        let raw = self.record_bytes();
        if raw.contains(&0) {
            bail!(LineError { line: self.rec_line, field: 0, msg: "a NUL byte: this is not a text file".into() });
        }
        if let Err(e) = std::str::from_utf8(raw) {
            let line = self.rec_line + raw[..e.valid_up_to()].iter().filter(|&&c| c == b'\n').count() as u64;
            bail!(LineError { line, field: 0, msg: "invalid UTF-8".into() });
        }
        Ok(())
    }
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
#[inline]
pub fn parse_number(bytes: &[u8]) -> Option<f64> {
    let mut s = bytes;
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    lexical_core::parse::<f64>(s).ok()
}

/// Appends the shortest text that reads back to `v`.
#[inline]
pub fn push_f64(out: &mut Vec<u8>, buf: &mut ryu::Buffer, v: f64) {
    if v.is_finite() {
        out.extend_from_slice(buf.format_finite(v).as_bytes());
    } else {
        out.extend_from_slice(if v.is_nan() {
            b"nan"
        } else if v > 0.0 {
            b"inf"
        } else {
            b"-inf"
        });
    }
}

#[inline]
pub fn push_f32(out: &mut Vec<u8>, buf: &mut ryu::Buffer, v: f32) {
    if v.is_finite() {
        out.extend_from_slice(buf.format_finite(v).as_bytes());
    } else {
        push_f64(out, buf, v as f64);
    }
}

/// The delimiter for a path: tab for `.tsv`, else comma.
pub fn default_delimiter(path: &std::path::Path) -> u8 {
    match path.extension().and_then(|e| e.to_str()).map(|e| e.to_ascii_lowercase()) {
        Some(e) if e == "tsv" || e == "tab" => b'\t',
        _ => b',',
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(text: &[u8], delim: u8) -> Result<Vec<(u64, Vec<String>)>> {
        let mut r = CsvReader::new(text, delim);
        let mut out = Vec::new();
        while let Some(fields) = r.next_record()? {
            let fields = fields.to_vec();
            let v = fields.iter().map(|f| String::from_utf8_lossy(r.bytes(f)).into_owned()).collect();
            out.push((r.line_of_record(), v));
        }
        Ok(out)
    }

    #[test]
    fn dialects() {
        let r = records(b"\xEF\xBB\xBFa,b\r\n1, 2 \r\n\n\"3\",\"x\ny\"\n5,6", b',').unwrap();
        assert_eq!(r[0], (1, vec!["a".into(), "b".into()]));
        assert_eq!(r[1], (2, vec!["1".into(), " 2 ".into()]));
        assert_eq!(r[2], (4, vec!["3".into(), "x\ny".into()]));
        assert_eq!(r[3], (6, vec!["5".into(), "6".into()]));
        let t = records(b"1\t2\n3\t4\n", b'\t').unwrap();
        assert_eq!(t.len(), 2);
        let e = records(b"1,2\n\"3,4\n5,6\n", b',').unwrap_err();
        assert_eq!(e.downcast_ref::<LineError>().unwrap().line, 2);
    }

    #[test]
    fn records_across_refills() {
        // Records that straddle the 1 MiB buffer boundary, quoted newlines included.
        let mut text = Vec::new();
        let mut want = 0;
        while text.len() < 3 << 20 {
            text.extend_from_slice(b"1.25,\"-2\n\",3e1\r\n");
            want += 1;
        }
        let r = records(&text, b',').unwrap();
        assert_eq!(r.len(), want);
        assert!(r.iter().all(|(_, f)| f.len() == 3));
        assert_eq!(r.last().unwrap().0, 2 * want as u64 - 1);
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
        assert_eq!(parse_number(b""), None);
        let mut out = Vec::new();
        let mut b = ryu::Buffer::new();
        push_f64(&mut out, &mut b, 0.1);
        out.push(b',');
        push_f32(&mut out, &mut b, 0.1);
        assert_eq!(out, b"0.1,0.1");
    }
}
