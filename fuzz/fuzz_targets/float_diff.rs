//! Differential: relu's number parsing against Rust's `str::parse::<f64>` and lexical-core.
//!
//! * `plain_record_values` (the fast Clinger path the table workers use): when it takes a
//!   record, every field must be a plain number (`[+-]?d+(.d+)?([eE][+-]?d{1,4})?`), its span
//!   the field's text, and its value bit-identical to `str::parse::<f64>` and to lexical-core.
//!   Declining is always allowed (the general path takes over).
//! * `parse_number` (the general path, lexical-core after trimming spaces/tabs): whenever it and
//!   `str::parse::<f64>` both accept a text, identical bits (NaN: both NaN). Documented syntax
//!   differences, not compared: relu reads an empty field as NaN (std refuses); relu trims spaces
//!   and tabs around a number; std does not accept forms lexical-core's default format refuses
//!   and vice versa (see the acceptance list in fuzz/README.md).
//! * `fastpath::relu_plain_record` (relu to CSV without converting): when it takes a record, each
//!   output field is the input text if relu keeps the value (std's value, by f64 bits, has
//!   `relu(v) == v`), else `0.0`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use relu::format::csv::{parse_number, plain_record_values};

fn is_plain(t: &[u8]) -> bool {
    let mut i = 0;
    let digits = |i: &mut usize| {
        let s = *i;
        while *i < t.len() && t[*i].is_ascii_digit() {
            *i += 1;
        }
        *i - s
    };
    if matches!(t.first(), Some(b'+' | b'-')) {
        i += 1;
    }
    if digits(&mut i) == 0 {
        return false;
    }
    if t.get(i) == Some(&b'.') {
        i += 1;
        if digits(&mut i) == 0 {
            return false;
        }
    }
    if matches!(t.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(t.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let k = digits(&mut i);
        if k == 0 || k > 4 {
            return false;
        }
    }
    i == t.len()
}

fn same(a: f64, b: f64) -> bool {
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}

fuzz_target!(|data: &[u8]| {
    // the record: the input up to its first line end, with LF (or CRLF) after it
    let line_len = data.iter().position(|&c| c == b'\n' || c == b'\r').unwrap_or(data.len());
    let line = &data[..line_len];
    let crlf = data.len() % 2 == 1;
    let mut rec = line.to_vec();
    rec.extend_from_slice(if crlf { b"\r\n" } else { b"\n" });
    // some bytes after it: the reader must stop at the line end
    rec.extend_from_slice(&data[line_len..]);
    let fields: Vec<&[u8]> = line.split(|&c| c == b',').collect();
    let cols = fields.len();

    // general path, field by field
    for f in &fields {
        let ours = parse_number(f);
        if let Ok(s) = std::str::from_utf8(f) {
            let std_v = s.parse::<f64>();
            if let (Some(a), Ok(b)) = (ours, &std_v) {
                assert!(same(a, *b), "parse_number({s:?}) = {a:?} ({:#x}), std {b:?} ({:#x})", a.to_bits(), b.to_bits());
            }
            if is_plain(f) {
                // plain syntax: both must accept
                let b = std_v.expect("std refuses a plain number");
                let a = ours.expect("parse_number refuses a plain number");
                assert!(same(a, b), "plain {s:?}: {a:?} vs {b:?}");
            }
        }
        if let (Ok(l), Some(a)) = (lexical_core::parse::<f64>(f), ours) {
            assert!(same(l, a));
        }
    }

    // fast path
    let (mut values, mut spans) = (vec![1.5], vec![(7u32, 9u32)]);
    let got = plain_record_values(&rec, 0, b',', cols, &mut values, Some(&mut spans));
    match got {
        Some(next) => {
            assert_eq!(next, line_len + if crlf { 2 } else { 1 }, "record end");
            assert_eq!((values.len(), spans.len()), (cols + 1, cols + 1));
            let mut at = 0usize;
            for (k, f) in fields.iter().enumerate() {
                assert!(is_plain(f), "fast path took a field that is not plain: {:?}", String::from_utf8_lossy(f));
                assert_eq!(spans[k + 1], (at as u32, (at + f.len()) as u32), "span of field {k}");
                at += f.len() + 1;
                let s = std::str::from_utf8(f).unwrap();
                let want = s.parse::<f64>().unwrap();
                let v = values[k + 1];
                assert!(v.to_bits() == want.to_bits(), "fast path {s:?} = {v:?} ({:#x}), std {want:?} ({:#x})", v.to_bits(), want.to_bits());
                let lex = lexical_core::parse::<f64>(f).unwrap();
                assert_eq!(v.to_bits(), lex.to_bits(), "fast path vs lexical-core on {s:?}");
            }
        }
        None => assert_eq!((values, spans), (vec![1.5], vec![(7, 9)]), "declined but left values behind"),
    }

    // relu to CSV without conversion
    let mut out = b"keep".to_vec();
    let got = relu::fastpath::relu_plain_record(&rec, 0, b',', b';', cols, &mut out);
    match got {
        Some(next) => {
            assert_eq!(next, line_len + if crlf { 2 } else { 1 }, "record end (relu_plain_record)");
            let body = &out[4..];
            assert_eq!(body.last(), Some(&b'\n'));
            let outs: Vec<&[u8]> = body[..body.len() - 1].split(|&c| c == b';').collect();
            assert_eq!(outs.len(), cols);
            for (f, o) in fields.iter().zip(outs) {
                assert!(is_plain(f), "relu_plain_record took a field that is not plain");
                let v = std::str::from_utf8(f).unwrap().parse::<f64>().unwrap();
                let keep = !(v < 0.0); // relu keeps -0.0, NaN never here
                if keep {
                    assert_eq!(o, *f, "relu({}) should copy the text", String::from_utf8_lossy(f));
                } else {
                    assert_eq!(o, b"0.0", "relu({}) should be 0.0", String::from_utf8_lossy(f));
                }
            }
        }
        None => assert_eq!(out, b"keep"),
    }
});
