//! Differential: relu's CSV record scanner against the `csv` crate
//! (`csv::ReaderBuilder::new().has_headers(false).flexible(true)`, byte records).
//!
//! For any bytes: (1) relu's `Scanner::record` over the whole input, (2) the same records through
//! `BlockReader` with a tiny block size and a reader that trickles a few bytes per read (records
//! cross block boundaries; every block scanned on its own, lines added up per block, as the table
//! workers do), (3) the `csv` crate. (1) and (2) must agree exactly: the same records, fields,
//! quoted flags and line numbers, or errors on the same line. (1) and (3) must give the same
//! records and fields.
//!
//! The delimiter is sniffed from the input (`,`, else tab, else `;`), so seeds stay unmodified.
//!
//! Documented differences (src/format/csv.rs module comment and `Scanner`, docs/formats.md
//! "Dialect"), and the normalisation or skip applied for each — everything else is strict:
//!  * `""` inside quotes: relu's `Field` keeps the escape doubled ("`\"\"` escapes still
//!    doubled"); normalised by undoubling relu's quoted fields before comparing.
//!  * Spaces (and tabs, unless the delimiter is a tab) before an opening quote or after a closing
//!    quote: relu skips them (`Scanner::is_space`: "spaces around a number are allowed"), the csv
//!    crate treats ` "a"` as an unquoted field with literal quotes. Inputs where relu saw such a
//!    quoted field are skipped (not compared with the csv crate; (1) vs (2) still checked).
//!  * Strictness: relu refuses text after a closing quote (`"a"b`) and an unterminated quote at
//!    the end of the input; the csv crate never refuses (it concatenates / reads to EOF). When
//!    relu refuses, only the records before the refused one are compared, and the error must be
//!    one of these two messages.
//!  * A UTF-8 BOM: relu's `CsvTable::open` skips one at the start (so relu's scanner is given
//!    the input after one BOM), the csv crate strips one itself (it is given the raw input).
//!  * Lone CR is a line end in relu; the csv crate's default terminator (CRLF) also takes `\r`,
//!    `\n` or `\r\n`: no normalisation needed. Line numbers are not compared with the csv crate
//!    (it positions a record before the blank lines it skips).
//!  * Empty field = NaN and NUL / UTF-8 checks are not the scanner's business (`check_text`,
//!    `parse_number`): not compared here.
#![no_main]

use libfuzzer_sys::fuzz_target;
use relu::format::csv::{BlockReader, LineError, Scanner};
use std::io::Read;

type Rec = (u64, Vec<(Vec<u8>, bool)>);

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

/// Records of `b` scanned at once, until the first error. Also: does any quoted field have
/// spaces before its opening quote or after its closing quote?
fn whole(b: &[u8], delim: u8) -> (Vec<Rec>, Option<LineError>, bool) {
    let mut sc = Scanner::new(delim);
    let (mut pos, mut line, mut out, mut spaced) = (0, 1u64, Vec::new(), false);
    loop {
        match sc.record(b, pos, true, &mut line) {
            Ok(Some(r)) => {
                assert!(r.start <= r.end && r.end <= r.next && r.next <= b.len() && r.next > pos, "{r:?}");
                let mut prev_end = r.start; // where the field's own text may start
                let mut fields = Vec::new();
                for (k, f) in sc.fields.iter().enumerate() {
                    assert!(f.start <= f.end && f.end <= b.len(), "{f:?}");
                    if f.quoted {
                        let open = f.start - 1;
                        assert_eq!(b[open], b'"');
                        assert_eq!(b.get(f.end), Some(&b'"'));
                        if open != prev_end {
                            spaced = true;
                        }
                        match b.get(f.end + 1) {
                            None => {}
                            Some(&c) if c == delim || c == b'\n' || c == b'\r' => {}
                            Some(_) => spaced = true,
                        }
                    }
                    let _ = k;
                    fields.push((b[f.start..f.end].to_vec(), f.quoted));
                    // the next field starts after this one's delimiter
                    let mut j = if f.quoted { f.end + 1 } else { f.end };
                    while j < b.len() && b[j] != delim && b[j] != b'\n' && b[j] != b'\r' {
                        j += 1;
                    }
                    prev_end = j + 1;
                }
                out.push((r.line, fields));
                pos = r.next;
            }
            Ok(None) => return (out, None, spaced),
            Err(e) => return (out, Some(e), spaced),
        }
    }
}

/// The same through `BlockReader` blocks of about `block` bytes, each scanned on its own.
fn blocked(b: &[u8], delim: u8, block: usize, step: usize) -> (Vec<Rec>, Option<LineError>) {
    let mut br = BlockReader::new(Trickle(b, step), delim);
    br.block = block;
    let mut sc = Scanner::new(delim);
    let (mut base, mut out, mut buf) = (1u64, Vec::new(), Vec::new());
    let mut total = 0usize;
    while br.next_block(&mut buf).expect("in-memory reads do not fail") {
        assert!(!br.too_long, "too_long on a fuzz-sized input");
        total += buf.len();
        let (mut pos, mut line) = (0, 0u64);
        loop {
            match sc.record(&buf, pos, true, &mut line) {
                Ok(Some(r)) => {
                    let f = sc.fields.iter().map(|f| (buf[f.start..f.end].to_vec(), f.quoted)).collect();
                    out.push((r.line + base, f));
                    pos = r.next;
                }
                Ok(None) => break,
                Err(e) => return (out, Some(LineError { line: e.line + base, ..e })),
            }
        }
        base += line;
    }
    assert_eq!(total, b.len(), "blocks do not add up to the input");
    (out, None)
}

fn undouble(f: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(f.len());
    let mut i = 0;
    while i < f.len() {
        out.push(f[i]);
        if f[i] == b'"' && f.get(i + 1) == Some(&b'"') {
            i += 2;
        } else {
            i += 1;
        }
    }
    out
}

fn show(recs: &[Vec<Vec<u8>>]) -> String {
    format!("{:?}", recs.iter().map(|r| r.iter().map(|f| String::from_utf8_lossy(f).into_owned()).collect::<Vec<_>>()).collect::<Vec<_>>())
}

fuzz_target!(|data: &[u8]| {
    let delim = if data.contains(&b',') {
        b','
    } else if data.contains(&b'\t') {
        b'\t'
    } else if data.contains(&b';') {
        b';'
    } else {
        b','
    };
    let b = data.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(data);

    // (1) whole vs (2) blocked
    let (recs, err, spaced) = whole(b, delim);
    let sum: usize = data.iter().map(|&c| c as usize).sum();
    for (block, step) in [(1 + sum % 13, 1 + data.len() % 5), (1, 1), (7, 3)] {
        let (brecs, berr) = blocked(b, delim, block, step);
        match (&err, &berr) {
            (None, None) => {}
            (Some(w), Some(g)) => assert_eq!(
                (w.line, w.field, &w.msg),
                (g.line, g.field, &g.msg),
                "whole vs blocked (block {block}, step {step}): different errors"
            ),
            (w, g) => panic!("whole vs blocked (block {block}, step {step}): {w:?} vs {g:?}"),
        }
        assert_eq!(recs, brecs, "whole vs blocked (block {block}, step {step}): different records");
    }

    // (1) vs (3), the csv crate
    if spaced {
        return; // documented: relu allows spaces around quoted fields
    }
    if let Some(e) = &err {
        assert!(
            e.msg == "a quote opened here is never closed" || e.msg == "text after a closing quote",
            "unexpected scanner error {e}"
        );
    }
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(delim)
        .from_reader(data);
    let mut theirs = Vec::new();
    let mut rec = csv::ByteRecord::new();
    loop {
        match rdr.read_byte_record(&mut rec) {
            Ok(true) => theirs.push(rec.iter().map(|f| f.to_vec()).collect::<Vec<_>>()),
            Ok(false) => break,
            Err(e) => panic!("the csv crate refused (relu: {err:?}): {e}"),
        }
    }
    let ours: Vec<Vec<Vec<u8>>> = recs
        .iter()
        .map(|(_, fs)| fs.iter().map(|(f, q)| if *q { undouble(f) } else { f.clone() }).collect())
        .collect();
    if err.is_some() {
        // refused by relu at record ours.len(): the records before it must match
        assert!(theirs.len() > ours.len(), "relu refused a record the csv crate does not have: ours {} theirs {}", show(&ours), show(&theirs));
        assert_eq!(show(&ours), show(&theirs[..ours.len()]), "records before relu's error differ");
    } else {
        assert_eq!(show(&ours), show(&theirs), "relu vs csv crate: different records");
        assert_eq!(ours, theirs);
    }
});
