//! `.npy` headers: read exactly what `numpy.load(..., allow_pickle=False)` reads, refuse what it
//! refuses, and write headers the way `numpy.save` does.
//!
//! The header is a Python dict literal. NumPy evaluates it with `ast.literal_eval` and then checks
//! the keys and value types; [`parse_literal`] is a small evaluator for the literal subset that can
//! appear there (dicts, tuples, lists, strings, ints, booleans, None), so that the same files are
//! accepted and refused. Only the header is parsed here: data streams through `pipeline`.

use crate::dtype::{parse_descr, ByteOrder, DType, Descr};
use anyhow::{anyhow, bail, Result};
use std::io::Read;

pub const MAGIC: &[u8; 6] = b"\x93NUMPY";
/// `numpy.lib.format`'s default `max_header_size`: longer headers need `allow_pickle`-level trust.
pub const MAX_HEADER_SIZE: usize = 10_000;
const ARRAY_ALIGN: usize = 64;
const GROWTH_AXIS_MAX_DIGITS: usize = 21;

/// A parsed, validated `.npy` header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    pub version: (u8, u8),
    /// The element type, or why it is not one relu processes (the file itself is valid NumPy).
    pub dtype: Result<DType, String>,
    pub descr: String,
    pub order: ByteOrder,
    pub fortran_order: bool,
    pub shape: Vec<u64>,
    /// Bytes before the data: magic, version, length field and header text.
    pub data_offset: u64,
    pub elements: u64,
    /// `elements * itemsize`; `None` for unsupported types of unknown width.
    pub data_bytes: Option<u64>,
}

impl Header {
    pub fn dtype(&self) -> Result<DType> {
        self.dtype
            .clone()
            .map_err(|why| anyhow!("unsupported dtype {why}: relu processes float16/32/64 and integer arrays"))
    }

    /// The numpy name of the dtype for display: `float32`, or the descr of an unsupported one.
    pub fn dtype_name(&self) -> String {
        match &self.dtype {
            Ok(dt) => dt.name().to_string(),
            Err(_) => self.descr.clone(),
        }
    }
}

/// Reads and validates the header from the start of `r`, leaving `r` at the first data byte.
pub fn read_header(r: &mut impl Read) -> Result<Header> {
    let mut magic = [0u8; 8];
    let got = read_up_to(r, &mut magic)?;
    if got == 0 {
        bail!("empty file: not a .npy file");
    }
    if got < 8 || &magic[..6] != MAGIC {
        if got < 8 && MAGIC.starts_with(&magic[..got.min(6)]) {
            bail!("not a .npy file: it ends inside the magic string");
        }
        bail!("not a .npy file: the magic string is not \\x93NUMPY");
    }
    let version = (magic[6], magic[7]);
    let len_bytes = match version {
        (1, 0) => 2,
        (2, 0) | (3, 0) => 4,
        (a, b) => bail!("unsupported .npy format version {a}.{b} (NumPy reads 1.0, 2.0 and 3.0)"),
    };
    let mut lenbuf = [0u8; 4];
    if read_up_to(r, &mut lenbuf[..len_bytes])? < len_bytes {
        bail!("truncated .npy file: it ends inside the header length");
    }
    let header_len = u32::from_le_bytes(lenbuf) as usize;
    if header_len > MAX_HEADER_SIZE {
        bail!("header is {header_len} bytes, over NumPy's limit of {MAX_HEADER_SIZE}");
    }
    let mut text = vec![0u8; header_len];
    if read_up_to(r, &mut text)? < header_len {
        bail!("truncated .npy file: it ends inside the header");
    }
    let text: String = if version.0 >= 3 {
        String::from_utf8(text).map_err(|_| anyhow!("header is not valid UTF-8"))?
    } else {
        text.iter().map(|&b| b as char).collect() // latin-1
    };
    let data_offset = (8 + len_bytes + header_len) as u64;
    parse_header_text(&text, version, data_offset)
}

fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(n)
}

/// Validates the dict the way `numpy.lib.format._read_array_header` does.
pub fn parse_header_text(text: &str, version: (u8, u8), data_offset: u64) -> Result<Header> {
    let value = parse_literal(text).map_err(|e| anyhow!("cannot parse the header: {e}"))?;
    let Value::Dict(items) = value else {
        bail!("header is not a dictionary: {:?}", text.trim());
    };
    let mut descr = None;
    let mut fortran = None;
    let mut shape = None;
    for (k, v) in items {
        match k {
            Value::Str(k) if k == "descr" => descr = Some(v),
            Value::Str(k) if k == "fortran_order" => fortran = Some(v),
            Value::Str(k) if k == "shape" => shape = Some(v),
            other => bail!(
                "header has an unexpected key {other:?}: NumPy wants exactly 'descr', 'fortran_order' and 'shape'"
            ),
        }
    }
    let (Some(descr), Some(fortran), Some(shape)) = (descr, fortran, shape) else {
        bail!("header lacks a key: NumPy wants exactly 'descr', 'fortran_order' and 'shape'");
    };
    let Value::Tuple(dims) = shape else {
        bail!("header 'shape' is not a tuple of integers");
    };
    let mut shape = Vec::with_capacity(dims.len());
    for d in dims {
        match d {
            Value::Int(n) if n >= 0 => {
                shape.push(u64::try_from(n).map_err(|_| anyhow!("header 'shape' has a dimension too large: {n}"))?)
            }
            Value::Int(n) => bail!("header 'shape' has a negative dimension {n}"),
            Value::Bool(b) => shape.push(b as u64), // Python's bool is an int
            _ => bail!("header 'shape' is not a tuple of integers"),
        }
    }
    let fortran_order = match fortran {
        Value::Bool(b) => b,
        _ => bail!("header 'fortran_order' is not a boolean"),
    };
    let descr = match descr {
        Value::Str(s) => s,
        Value::List(_) => {
            return Ok(unsupported_header(
                version,
                "structured (record) dtype".into(),
                String::from("[structured]"),
                fortran_order,
                shape,
                data_offset,
            ));
        }
        _ => bail!("header 'descr' is not a dtype description"),
    };
    let (dtype, order) = match parse_descr(&descr) {
        Descr::Supported(dt, order) => (Ok(dt), order),
        Descr::Unsupported(why) => (Err(format!("{why} ('{descr}')")), ByteOrder::Little),
        Descr::Invalid if descr.trim_start_matches(['<', '>', '|', '=']) == "O" => {
            bail!("object arrays ('{descr}') need pickle, which relu (like numpy.load(allow_pickle=False)) refuses")
        }
        Descr::Invalid => bail!("header 'descr' is not a data type NumPy knows: '{descr}'"),
    };
    let elements = shape
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| anyhow!("shape {shape:?} overflows: its element count does not fit in 64 bits"))?;
    let data_bytes = match &dtype {
        Err(_) => descr_itemsize(&descr).and_then(|size| elements.checked_mul(size)),
        Ok(dt) => Some(
            elements
                .checked_mul(dt.size() as u64)
                .filter(|&b| b <= i64::MAX as u64)
                .ok_or_else(|| anyhow!("shape {shape:?} overflows: its byte count does not fit in 63 bits"))?,
        ),
    };
    Ok(Header { version, dtype, descr, order, fortran_order, shape, data_offset, elements, data_bytes })
}

/// Item size of a type relu does not process, from its descr (`|S2` → 2, `<U3` → 12, `<c8` → 8).
fn descr_itemsize(descr: &str) -> Option<u64> {
    let t = descr.trim_start_matches(['<', '>', '|', '=']);
    let (code, digits) = t.split_at(t.find(|c: char| c.is_ascii_digit())?);
    let n: u64 = digits.parse().ok()?;
    match code {
        "U" => n.checked_mul(4),
        "S" | "a" | "V" | "c" | "f" | "b" | "M" | "m" => Some(n),
        _ => None,
    }
}

fn unsupported_header(
    version: (u8, u8),
    why: String,
    descr: String,
    fortran_order: bool,
    shape: Vec<u64>,
    data_offset: u64,
) -> Header {
    let elements = shape.iter().try_fold(1u64, |a, &d| a.checked_mul(d)).unwrap_or(u64::MAX);
    Header {
        version,
        dtype: Err(why),
        descr,
        order: ByteOrder::Little,
        fortran_order,
        shape,
        data_offset,
        elements,
        data_bytes: None,
    }
}

/// The header bytes `numpy.save` writes for a native little-endian array (format 1.0 unless the
/// header needs more than 65535 bytes), padded so the data starts on a 64-byte boundary.
pub fn write_header(dtype: DType, fortran_order: bool, shape: &[u64]) -> Vec<u8> {
    let mut dict = format!(
        "{{'descr': '{}', 'fortran_order': {}, 'shape': {}, }}",
        dtype.descr(),
        if fortran_order { "True" } else { "False" },
        shape_repr(shape)
    );
    // NumPy leaves room for the growth axis to grow in place (numpy.lib.format, GROWTH_AXIS_MAX_DIGITS).
    if let Some(&g) = if fortran_order { shape.last() } else { shape.first() } {
        let digits = g.to_string().len();
        dict.extend(std::iter::repeat_n(' ', GROWTH_AXIS_MAX_DIGITS.saturating_sub(digits)));
    }
    let mut out = Vec::with_capacity(dict.len() + 80);
    for (version, len_bytes) in [((1u8, 0u8), 2usize), ((2, 0), 4)] {
        let pre = 8 + len_bytes;
        let total = (pre + dict.len() + 1).div_ceil(ARRAY_ALIGN) * ARRAY_ALIGN;
        let hlen = total - pre;
        if len_bytes == 2 && hlen > u16::MAX as usize {
            continue;
        }
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&[version.0, version.1]);
        out.extend_from_slice(&(hlen as u32).to_le_bytes()[..len_bytes]);
        out.extend_from_slice(dict.as_bytes());
        out.resize(total - 1, b' ');
        out.push(b'\n');
        break;
    }
    out
}

/// Refuses unsupported dtypes and files shorter than their header says, before any output.
/// Returns the data's byte count.
pub fn check_length(file: &std::fs::File, header: &Header) -> Result<u64> {
    header.dtype()?;
    let data_bytes = header.data_bytes.unwrap_or(0);
    let len = file.metadata()?.len();
    let have = len.saturating_sub(header.data_offset);
    if have < data_bytes {
        bail!(
            "truncated: the header says {} data bytes ({} × {}), the file has {have}",
            data_bytes,
            shape_repr(&header.shape),
            header.dtype_name()
        );
    }
    Ok(data_bytes)
}

/// A C-order `.npy` whose first dimension (rows) is known only at the end, as a CSV table's:
/// its header is written first for 0 rows, then rewritten in place with the real count. The
/// lengths match because NumPy's header leaves room for the growth axis to grow.
pub struct GrowingHeader {
    dtype: DType,
    /// The shape after the first axis.
    rest: Vec<u64>,
    len: usize,
}

impl GrowingHeader {
    /// The header for 0 rows, to write first.
    pub fn start(dtype: DType, rest: &[u64]) -> (GrowingHeader, Vec<u8>) {
        let h = Self::bytes(dtype, rest, 0);
        (GrowingHeader { dtype, rest: rest.to_vec(), len: h.len() }, h)
    }

    fn bytes(dtype: DType, rest: &[u64], rows: u64) -> Vec<u8> {
        let shape: Vec<u64> = std::iter::once(rows).chain(rest.iter().copied()).collect();
        write_header(dtype, false, &shape)
    }

    /// Rewrites the header at the start of `f` for `rows` rows.
    pub fn patch(&self, f: &mut (impl std::io::Write + std::io::Seek), rows: u64) -> Result<()> {
        let h = Self::bytes(self.dtype, &self.rest, rows);
        if h.len() != self.len {
            bail!("internal error: the .npy header changed length");
        }
        f.seek(std::io::SeekFrom::Start(0))?;
        f.write_all(&h)?;
        Ok(())
    }
}

pub fn shape_repr(shape: &[u64]) -> String {
    match shape {
        [] => "()".into(),
        [n] => format!("({n},)"),
        _ => format!("({})", shape.iter().map(u64::to_string).collect::<Vec<_>>().join(", ")),
    }
}

// ---------------------------------------------------------------------------------------------
// A Python literal evaluator for header dicts.

#[derive(Debug, PartialEq, Eq)]
pub enum Value {
    Dict(Vec<(Value, Value)>),
    Tuple(Vec<Value>),
    List(Vec<Value>),
    Str(String),
    Int(i128),
    Bool(bool),
    None,
    /// Floats and other literals: valid Python, never a valid header value.
    Other,
}

pub fn parse_literal(s: &str) -> Result<Value, String> {
    let mut p = Parser { s: s.as_bytes(), i: 0, depth: 0 };
    let v = p.value()?;
    p.ws();
    if p.i != p.s.len() {
        return Err(format!("unexpected text at offset {}", p.i));
    }
    Ok(v)
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
    depth: usize,
}

impl Parser<'_> {
    fn ws(&mut self) {
        while self.i < self.s.len() && matches!(self.s[self.i], b' ' | b'\t' | b'\n' | b'\r' | b'\x0c') {
            self.i += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.s.get(self.i).copied()
    }

    fn value(&mut self) -> Result<Value, String> {
        self.depth += 1;
        if self.depth > 64 {
            return Err("nested too deeply".into());
        }
        let v = match self.peek() {
            None => Err("unexpected end of header".into()),
            Some(b'{') => self.dict(),
            Some(b'(') => self.seq(b')').map(|(items, tuple)| {
                if tuple {
                    Value::Tuple(items)
                } else {
                    items.into_iter().next().unwrap_or(Value::None)
                }
            }),
            Some(b'[') => self.seq(b']').map(|(items, _)| Value::List(items)),
            Some(q @ (b'\'' | b'"')) => self.string(q),
            Some(b'-' | b'+' | b'0'..=b'9' | b'.') => self.number(),
            Some(c) if c.is_ascii_alphabetic() || c == b'_' => self.name(),
            Some(c) => Err(format!("unexpected character {:?}", c as char)),
        };
        self.depth -= 1;
        v
    }

    fn dict(&mut self) -> Result<Value, String> {
        self.i += 1;
        let mut items: Vec<(Value, Value)> = Vec::new();
        loop {
            if self.peek() == Some(b'}') {
                self.i += 1;
                return Ok(Value::Dict(items));
            }
            let k = self.value()?;
            if self.peek() != Some(b':') {
                return Err("expected ':' in dict".into());
            }
            self.i += 1;
            let v = self.value()?;
            // literal_eval builds a real dict: a repeated key keeps its last value.
            if let Some(slot) = items.iter_mut().find(|(ek, _)| *ek == k) {
                slot.1 = v;
            } else {
                items.push((k, v));
            }
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b'}') => {}
                _ => return Err("expected ',' or '}' in dict".into()),
            }
        }
    }

    /// Items up to `close`; the flag says whether this was a tuple (a comma, or `()`).
    fn seq(&mut self, close: u8) -> Result<(Vec<Value>, bool), String> {
        self.i += 1;
        let mut items = Vec::new();
        let mut comma = false;
        loop {
            if self.peek() == Some(close) {
                self.i += 1;
                let tuple = comma || items.is_empty();
                return Ok((items, tuple));
            }
            items.push(self.value()?);
            match self.peek() {
                Some(b',') => {
                    self.i += 1;
                    comma = true;
                }
                Some(c) if c == close => {}
                _ => return Err("expected ',' or a closing bracket".into()),
            }
        }
    }

    fn string(&mut self, q: u8) -> Result<Value, String> {
        self.i += 1;
        let mut out = String::new();
        loop {
            let Some(&c) = self.s.get(self.i) else {
                return Err("unterminated string".into());
            };
            self.i += 1;
            match c {
                _ if c == q => return Ok(Value::Str(out)),
                b'\n' => return Err("newline in string".into()),
                b'\\' => {
                    let Some(&e) = self.s.get(self.i) else {
                        return Err("unterminated string".into());
                    };
                    self.i += 1;
                    match e {
                        b'n' => out.push('\n'),
                        b't' => out.push('\t'),
                        b'\\' | b'\'' | b'"' => out.push(e as char),
                        other => {
                            out.push('\\');
                            out.push(other as char);
                        }
                    }
                }
                _ => {
                    // Re-decode multi-byte UTF-8 from the original text.
                    let start = self.i - 1;
                    let len = utf8_len(c);
                    let end = (start + len).min(self.s.len());
                    out.push_str(
                        std::str::from_utf8(&self.s[start..end]).map_err(|_| "bad text in string".to_string())?,
                    );
                    self.i = end;
                }
            }
        }
    }

    fn number(&mut self) -> Result<Value, String> {
        let mut neg = false;
        while let Some(c @ (b'-' | b'+')) = self.peek() {
            neg ^= c == b'-';
            self.i += 1;
        }
        let start = self.i;
        while self.i < self.s.len() && (self.s[self.i].is_ascii_alphanumeric() || matches!(self.s[self.i], b'_' | b'.'))
        {
            self.i += 1;
        }
        let tok = std::str::from_utf8(&self.s[start..self.i]).unwrap_or("").replace('_', "");
        let (digits, radix) = match tok.get(..2) {
            Some("0x" | "0X") => (&tok[2..], 16),
            Some("0o" | "0O") => (&tok[2..], 8),
            Some("0b" | "0B") => (&tok[2..], 2),
            _ => (tok.as_str(), 10),
        };
        if digits.is_empty() {
            return Err("bad number".into());
        }
        if let Ok(n) = i128::from_str_radix(digits, radix) {
            if radix == 10 && digits.len() > 1 && digits.starts_with('0') && n != 0 {
                return Err("leading zeros in a decimal integer".into());
            }
            return Ok(Value::Int(if neg { -n } else { n }));
        }
        if radix == 10 && digits.bytes().all(|b| b.is_ascii_digit()) {
            // Valid Python, but far beyond any real dimension.
            return Ok(Value::Int(if neg { i128::MIN } else { i128::MAX }));
        }
        if tok.parse::<f64>().is_ok() || tok.ends_with('j') {
            return Ok(Value::Other);
        }
        Err(format!("bad number {tok:?}"))
    }

    fn name(&mut self) -> Result<Value, String> {
        let start = self.i;
        while self.i < self.s.len() && (self.s[self.i].is_ascii_alphanumeric() || self.s[self.i] == b'_') {
            self.i += 1;
        }
        match &self.s[start..self.i] {
            b"True" => Ok(Value::Bool(true)),
            b"False" => Ok(Value::Bool(false)),
            b"None" => Ok(Value::None),
            other => Err(format!("'{}' is not a literal", String::from_utf8_lossy(other))),
        }
    }
}

fn utf8_len(first: u8) -> usize {
    match first {
        0xC0..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF7 => 4,
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hdr(text: &str) -> Result<Header> {
        parse_header_text(text, (1, 0), 128)
    }

    #[test]
    fn accepts_numpy_spellings() {
        let h = hdr("{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }  \n").unwrap();
        assert_eq!((h.shape.clone(), h.elements, h.data_bytes), (vec![3, 4], 12, Some(48)));
        assert_eq!(hdr("{\"shape\":(5,),\"fortran_order\":True,\"descr\":\">f8\"}").unwrap().shape, vec![5]);
        assert_eq!(hdr("{'descr': '<f4', 'fortran_order': False, 'shape': ()}").unwrap().elements, 1);
        assert_eq!(hdr("{'descr': '<f4', 'fortran_order': False, 'shape': (0, 5)}").unwrap().elements, 0);
    }

    #[test]
    fn refuses_what_numpy_refuses() {
        for bad in [
            "{'descr': '<f4', 'fortran_order': False, 'shape': [3, 4]}",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (-3, 4)}",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), 'x': 1}",
            "{'descr': '<f4', 'fortran_order': False}",
            "['<f4', False, (3, 4)]",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4)",
            "{'descr': '<f4', 'fortran_order': 0, 'shape': (3, 4)}",
            "{'descr': '<q7', 'fortran_order': False, 'shape': (3, 4)}",
            "{'descr': '|O', 'fortran_order': False, 'shape': (2,)}",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (3.0,)}",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296, 4294967296)}",
            "{'descr': '<f8', 'fortran_order': False, 'shape': (4611686018427387904,)}",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (3)}",
        ] {
            assert!(hdr(bad).is_err(), "accepted {bad}");
        }
    }

    #[test]
    fn written_headers_read_back_aligned() {
        for shape in [vec![], vec![7], vec![3, 4], vec![1; 8], vec![0, 5]] {
            for f in [false, true] {
                let bytes = write_header(DType::F32, f, &shape);
                assert_eq!(bytes.len() % 64, 0);
                assert_eq!(*bytes.last().unwrap(), b'\n');
                let h = read_header(&mut &bytes[..]).unwrap();
                assert_eq!((h.shape, h.fortran_order, h.data_offset), (shape.clone(), f, bytes.len() as u64));
            }
        }
    }
}
