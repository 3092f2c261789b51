//! `.npy` headers: read exactly what `numpy.load(..., allow_pickle=False)` reads, refuse what it
//! refuses, and write headers the way `numpy.save` does.
//!
//! The header is a Python dict literal. NumPy evaluates it with `ast.literal_eval` (retrying
//! format 1.0 and 2.0 headers through `_filter_header`, which drops Python 2 `L` suffixes) and then
//! checks the keys and value types; [`parse_literal`] is an evaluator for Python literals that
//! follows CPython 3.11's tokenizer and parser, and [`parse_header_text`] does NumPy's checks, so
//! that the same files are accepted and refused. Only the header is parsed here: data streams
//! through `pipeline`.

use crate::dtype::{dtype_from_descr, ByteOrder, DType, Descr};
use anyhow::{anyhow, bail, Result};
use std::io::Read;

pub const MAGIC: &[u8; 6] = b"\x93NUMPY";
/// `numpy.lib.format`'s default `max_header_size`, in characters of the decoded header: longer
/// headers need `allow_pickle`-level trust.
pub const MAX_HEADER_SIZE: usize = 10_000;
const ARRAY_ALIGN: usize = 64;
const GROWTH_AXIS_MAX_DIGITS: usize = 21;
/// NumPy's `NPY_MAXDIMS`.
const MAX_DIMS: usize = 64;

/// A parsed, validated `.npy` header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    pub version: (u8, u8),
    /// The element type, or why it is not one relu processes (the file itself is valid NumPy).
    pub dtype: Result<DType, String>,
    /// The header's `descr`: the string, or the Python literal of a list or tuple.
    pub descr: String,
    pub order: ByteOrder,
    pub fortran_order: bool,
    pub shape: Vec<u64>,
    /// Bytes before the data: magic, version, length field and header text.
    pub data_offset: u64,
    pub elements: u64,
    /// `elements * itemsize` (the element's size, for a sub-array type).
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
            Err(_) => self.descr.escape_debug().to_string(),
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
    // NumPy counts the limit in characters after decoding: Latin-1 has one byte per character,
    // UTF-8 (format 3.0) at most four.
    let max_bytes = if version.0 >= 3 { 4 * MAX_HEADER_SIZE } else { MAX_HEADER_SIZE };
    if header_len > max_bytes {
        bail!("header is {header_len} bytes, over NumPy's limit of {MAX_HEADER_SIZE} characters");
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
    let chars = text.chars().count();
    if chars > MAX_HEADER_SIZE {
        bail!("header is {chars} characters, over NumPy's limit of {MAX_HEADER_SIZE}");
    }
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

/// Validates the dict the way `numpy.lib.format._read_array_header` and `read_array` do.
pub fn parse_header_text(text: &str, version: (u8, u8), data_offset: u64) -> Result<Header> {
    let value = match parse_literal(text) {
        Ok(v) => v,
        // Format 1.0 and 2.0 headers NumPy could not evaluate get a second try through
        // `_filter_header` (Python 2's `3L` integers).
        Err(e) if version <= (2, 0) => {
            parse_literal(&py2_filter(text)).map_err(|_| anyhow!("cannot parse the header: {e}"))?
        }
        Err(e) => bail!("cannot parse the header: {e}"),
    };
    let Value::Dict(items) = value else {
        bail!("header is not a dictionary: {}", crate::quote::text(text.trim()));
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
                "header has an unexpected key {}: NumPy wants exactly 'descr', 'fortran_order' and 'shape'",
                short_repr(&other)
            ),
        }
    }
    let (Some(descr), Some(fortran), Some(shape)) = (descr, fortran, shape) else {
        bail!("header lacks a key: NumPy wants exactly 'descr', 'fortran_order' and 'shape'");
    };
    let Value::Tuple(dims) = shape else {
        bail!("header 'shape' is not a tuple of integers: {}", short_repr(&shape));
    };
    let fortran_order = match fortran {
        Value::Bool(b) => b,
        other => bail!("header 'fortran_order' is not a boolean: {}", short_repr(&other)),
    };
    let descr_text = match &descr {
        Value::Str(s) => s.clone(),
        other => short_repr(other),
    };
    let np = dtype_from_descr(&descr)
        .map_err(|why| anyhow!("header 'descr' is not a valid dtype descriptor ({why}): {}", short_repr(&descr)))?;
    if np.elem == Descr::Object {
        bail!(
            "object arrays ({}) need pickle, which relu (like numpy.load(allow_pickle=False)) refuses",
            short_repr(&descr)
        );
    }
    // numpy.load's `reshape(shape)`: non-negative ints (not bools) of at most 63 bits, at most 64
    // of them.
    let mut shape = Vec::with_capacity(dims.len());
    for d in &dims {
        match *d {
            Value::Int(n) if n < 0 => bail!("header 'shape' has a negative dimension {n}"),
            Value::Int(n) => shape.push(
                u64::try_from(n)
                    .ok()
                    .filter(|&n| n <= i64::MAX as u64)
                    .ok_or_else(|| anyhow!("header 'shape' has a dimension too large: {n}"))?,
            ),
            Value::Bool(b) => bail!(
                "header 'shape' has a bool dimension ({}): numpy.load refuses it",
                if b { "True" } else { "False" }
            ),
            _ => bail!("header 'shape' is not a tuple of integers: {}", short_repr(&Value::Tuple(dims))),
        }
    }
    if shape.len() > MAX_DIMS {
        bail!("header 'shape' has {} dimensions, more than NumPy's {MAX_DIMS}", shape.len());
    }
    // NumPy's array size limit: the non-zero dimensions times the item size fit in 63 bits. With
    // items of no bytes, only `reshape`'s running product of the dimensions (in the order it
    // reshapes: reversed for Fortran order) must, up to the first zero.
    let fits = |b: Option<u64>| b.is_some_and(|b| b <= i64::MAX as u64);
    let too_big = if np.itemsize == 0 {
        let mut dims: Vec<u64> = shape.clone();
        if fortran_order {
            dims.reverse();
        }
        !fits(dims.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d).filter(|&p| p <= i64::MAX as u64)))
    } else {
        !fits(shape.iter().filter(|&&d| d != 0).try_fold(np.itemsize, |acc, &d| acc.checked_mul(d)))
    };
    if too_big {
        bail!("shape {} is too big: its byte count does not fit in 63 bits", shape_repr(&shape));
    }
    // Fits: the non-zero dimensions' product does (checked above).
    let elements = if shape.contains(&0) {
        0
    } else {
        shape.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d)).unwrap_or(u64::MAX)
    };
    // A sub-array type: numpy.load reads `elements` items of `sub_items` elements each and
    // reshapes them to `shape`, which works with one element per item, or no items.
    if !np.sub_shape.is_empty() {
        if 1 + np.sub_shape.len() > MAX_DIMS {
            bail!("sub-array dtype {}: more than NumPy's {MAX_DIMS} dimensions", short_repr(&descr));
        }
        let sub = np.sub_items();
        if sub != 1 && elements != 0 {
            bail!(
                "sub-array dtype {} holds {sub} elements per item: numpy.load cannot read it as shape {}",
                short_repr(&descr),
                shape_repr(&shape)
            );
        }
    }
    let (dtype, order) = match np.elem {
        Descr::Supported(dt, order) => (Ok(dt), order),
        Descr::Unsupported(name) => (Err(format!("{name} ({})", short_repr(&descr))), ByteOrder::Little),
        Descr::Object | Descr::Invalid => bail!("header 'descr' is not a dtype relu can read: {}", short_repr(&descr)),
    };
    let data_bytes = elements.checked_mul(np.itemsize);
    Ok(Header { version, dtype, descr: descr_text, order, fortran_order, shape, data_offset, elements, data_bytes })
}
/// The header bytes `numpy.save` writes for a native little-endian array (format 1.0 unless the
/// header needs more than 65535 bytes), padded so the data starts on a 64-byte boundary.
pub fn write_header(dtype: DType, fortran_order: bool, shape: &[u64]) -> Vec<u8> {
    // NumPy has no bfloat16: every job refuses it before it makes a header
    debug_assert_ne!(dtype, DType::BF16, "a bfloat16 .npy header");
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
    check_size(header, file.metadata()?.len(), "file")
}

/// Checks that `len` bytes (header included) of a file or `.npz` member (`what`) hold the data
/// the header promises, as `numpy.load` does (bytes after the data are ignored, as NumPy ignores
/// them). Returns the data's length.
pub fn check_size(header: &Header, len: u64, what: &str) -> Result<u64> {
    let have = len.saturating_sub(header.data_offset);
    match header.data_bytes {
        Some(data_bytes) if have >= data_bytes => Ok(data_bytes),
        Some(data_bytes) => bail!(
            "truncated: the header says {} data bytes ({} × {}), the {what} has {have}",
            data_bytes,
            shape_repr(&header.shape),
            header.dtype_name()
        ),
        None => bail!(
            "the header's shape {} × {} is more than 2^64 bytes, the {what} has {have}",
            shape_repr(&header.shape),
            header.dtype_name()
        ),
    }
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
// `ast.literal_eval`, as CPython 3.11 runs it on a header.

/// A Python literal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    Dict(Vec<(Value, Value)>),
    Tuple(Vec<Value>),
    List(Vec<Value>),
    Set(Vec<Value>),
    Str(String),
    /// A str with a lone surrogate (`'\ud800'`), which a Rust `String` cannot hold: its code points.
    WStr(Vec<u32>),
    Bytes(Vec<u8>),
    /// Saturated to the range of `i128` (far beyond any dimension NumPy takes).
    Int(i128),
    Bool(bool),
    None,
    /// Floats, complex numbers and `...`: valid literals, never a valid header value.
    Other,
}

impl Value {
    fn hashable(&self) -> bool {
        match self {
            Value::Dict(_) | Value::List(_) | Value::Set(_) => false,
            Value::Tuple(items) => items.iter().all(Value::hashable),
            _ => true,
        }
    }
}

/// The literal as Python would print it, shortened for a message.
fn short_repr(v: &Value) -> String {
    fn seq(out: &mut String, items: &[Value], open: &str, close: &str) {
        out.push_str(open);
        for (i, x) in items.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            repr(out, x);
        }
        out.push_str(close);
    }
    fn repr(out: &mut String, v: &Value) {
        if out.len() > 200 {
            return;
        }
        match v {
            Value::Dict(items) => {
                out.push('{');
                for (i, (k, x)) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    repr(out, k);
                    out.push_str(": ");
                    repr(out, x);
                }
                out.push('}');
            }
            Value::Tuple(items) if items.len() == 1 => seq(out, items, "(", ",)"),
            Value::Tuple(items) => seq(out, items, "(", ")"),
            Value::List(items) => seq(out, items, "[", "]"),
            Value::Set(items) if items.is_empty() => out.push_str("set()"),
            Value::Set(items) => seq(out, items, "{", "}"),
            Value::Str(s) => out.push_str(&format!("'{}'", s.escape_debug())),
            Value::WStr(cs) => {
                out.push('\'');
                for &c in cs {
                    match char::from_u32(c) {
                        Some(c) => out.extend(c.escape_debug()),
                        None => out.push_str(&format!("\\u{c:04x}")),
                    }
                }
                out.push('\'');
            }
            Value::Bytes(b) => out.push_str(&format!("b'{}'", b.escape_ascii())),
            Value::Int(n) => out.push_str(&n.to_string()),
            Value::Bool(b) => out.push_str(if *b { "True" } else { "False" }),
            Value::None => out.push_str("None"),
            Value::Other => out.push_str("<number>"),
        }
    }
    let mut out = String::new();
    repr(&mut out, v);
    if out.len() > 200 {
        let mut end = 200;
        while !out.is_char_boundary(end) {
            end -= 1;
        }
        out.truncate(end);
        out.push('…');
    }
    out
}

/// `ast.literal_eval(s)` as CPython 3.11 evaluates it: literals only (strings with any prefix,
/// escapes, implicit concatenation; ints in any base; floats and complex numbers; tuples, lists,
/// sets, dicts, `set()`; True, False, None, `...`), comments, line continuations, at most 200
/// nested brackets. `Err` says why Python would raise.
pub fn parse_literal(s: &str) -> Result<Value, String> {
    // literal_eval strips leading spaces and tabs; the compiler refuses NUL and reads '\r\n' and
    // a lone '\r' as '\n'.
    let s = s.trim_start_matches([' ', '\t']);
    if s.contains('\0') {
        return Err("the header contains a NUL character".into());
    }
    let text = s.replace("\r\n", "\n").replace('\r', "\n");
    let mut p = Parser { lx: Lexer { s: &text, i: 0, open: Vec::new(), atbol: true }, peeked: None };
    p.eval()
}

/// Python's limit on nested brackets (the tokenizer's `MAXLEVEL`).
const MAX_BRACKETS: usize = 200;

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Newline,
    End,
    /// One of `( ) [ ] { } , : + -`.
    Op(u8),
    Ellipsis,
    Name(String),
    Int(i128),
    Float,
    Imaginary,
    Str(Value),
    FString,
}

struct Lexer<'a> {
    s: &'a str,
    i: usize,
    /// The open brackets, innermost last.
    open: Vec<u8>,
    /// At the beginning of a line.
    atbol: bool,
}

impl Lexer<'_> {
    fn byte(&self, k: usize) -> Option<u8> {
        self.s.as_bytes().get(self.i + k).copied()
    }

    fn cur(&self) -> Option<char> {
        self.s[self.i..].chars().next()
    }

    fn bump(&mut self) {
        self.i += self.cur().map_or(0, char::len_utf8);
    }

    /// After a backslash: a newline, and more text.
    fn continuation(&mut self) -> Result<(), String> {
        if self.byte(0) != Some(b'\n') {
            return Err("unexpected character after a line continuation backslash".into());
        }
        self.i += 1;
        if self.byte(0).is_none() {
            return Err("the header ends after a line continuation backslash".into());
        }
        Ok(())
    }

    /// The next token (CPython's `tok_get`).
    fn next(&mut self) -> Result<Tok, String> {
        'line: loop {
            // Lines with only whitespace and comments are skipped.
            let mut blank = false;
            if self.atbol {
                self.atbol = false;
                let (mut col, mut cont_col) = (0usize, 0usize);
                loop {
                    match self.byte(0) {
                        Some(b' ') => col += 1,
                        Some(b'\t') => col = (col / 8 + 1) * 8,
                        Some(b'\x0c') => col = 0,
                        Some(b'\\') => {
                            if cont_col == 0 {
                                cont_col = col;
                            }
                            self.i += 1;
                            self.continuation()?;
                            continue;
                        }
                        _ => break,
                    }
                    self.i += 1;
                }
                blank = matches!(self.byte(0), Some(b'#' | b'\n'));
                let col = if cont_col != 0 { cont_col } else { col };
                if !blank && self.open.is_empty() && col != 0 {
                    return Err("unexpected indent".into());
                }
            }
            loop {
                while matches!(self.byte(0), Some(b' ' | b'\t' | b'\x0c')) {
                    self.i += 1;
                }
                let Some(c) = self.byte(0) else {
                    return match self.open.last() {
                        None => Ok(Tok::End),
                        Some(&b) => Err(format!("'{}' was never closed", b as char)),
                    };
                };
                match c {
                    b'#' => {
                        while !matches!(self.byte(0), None | Some(b'\n')) {
                            self.bump();
                        }
                    }
                    b'\n' => {
                        self.i += 1;
                        self.atbol = true;
                        if blank || !self.open.is_empty() {
                            continue 'line;
                        }
                        return Ok(Tok::Newline);
                    }
                    b'\\' => {
                        self.i += 1;
                        self.continuation()?;
                    }
                    _ => return self.token(c),
                }
            }
        }
    }

    fn token(&mut self, c: u8) -> Result<Tok, String> {
        if c.is_ascii_alphabetic() || c == b'_' {
            return self.name_or_string();
        }
        if c.is_ascii_digit() || (c == b'.' && self.byte(1).is_some_and(|d| d.is_ascii_digit())) {
            return self.number();
        }
        if c == b'\'' || c == b'"' {
            return self.string(false, false, false);
        }
        if self.s[self.i..].starts_with("...") {
            self.i += 3;
            return Ok(Tok::Ellipsis);
        }
        let what = self.cur().unwrap_or(' ');
        self.bump();
        match c {
            b'(' | b'[' | b'{' => {
                if self.open.len() >= MAX_BRACKETS {
                    return Err(format!("too many nested brackets (Python allows {MAX_BRACKETS})"));
                }
                self.open.push(c);
                Ok(Tok::Op(c))
            }
            b')' | b']' | b'}' => {
                let want = match c {
                    b')' => b'(',
                    b']' => b'[',
                    _ => b'{',
                };
                match self.open.pop() {
                    Some(o) if o == want => Ok(Tok::Op(c)),
                    Some(o) => Err(format!("'{}' does not close '{}'", c as char, o as char)),
                    None => Err(format!("unmatched '{}'", c as char)),
                }
            }
            b',' | b':' | b'+' | b'-' => Ok(Tok::Op(c)),
            _ => Err(format!("{what:?} is not part of a literal")),
        }
    }

    /// A name, or a string with a prefix (`r''`, `b''`, `u''`, `f''`, `rb''`, ...).
    fn name_or_string(&mut self) -> Result<Tok, String> {
        let start = self.i;
        let (mut b, mut r, mut u, mut f) = (false, false, false, false);
        loop {
            match self.byte(0) {
                Some(b'b' | b'B') if !(b || u || f) => b = true,
                Some(b'u' | b'U') if !(b || u || r || f) => u = true,
                Some(b'r' | b'R') if !(r || u) => r = true,
                Some(b'f' | b'F') if !(f || b || u) => f = true,
                _ => break,
            }
            self.i += 1;
            if matches!(self.byte(0), Some(b'\'' | b'"')) {
                return self.string(r, b, f);
            }
        }
        while self.cur().is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || !c.is_ascii()) {
            self.bump();
        }
        let name = &self.s[start..self.i];
        if !name.is_ascii() {
            return Err(format!("{} is not a literal", crate::quote::text(name)));
        }
        Ok(Tok::Name(name.to_string()))
    }

    fn number(&mut self) -> Result<Tok, String> {
        let start = self.i;
        let digit = |l: &Self| l.byte(0).is_some_and(|c| c.is_ascii_digit());
        // Digits with single underscores between them.
        let tail = |l: &mut Self| -> Result<(), String> {
            loop {
                while digit(l) {
                    l.i += 1;
                }
                if l.byte(0) != Some(b'_') {
                    return Ok(());
                }
                l.i += 1;
                if !digit(l) {
                    return Err("invalid decimal literal".into());
                }
            }
        };
        let c = self.byte(0).unwrap_or(0);
        let radix = match (c, self.byte(1)) {
            (b'0', Some(b'x' | b'X')) => 16,
            (b'0', Some(b'o' | b'O')) => 8,
            (b'0', Some(b'b' | b'B')) => 2,
            _ => 10,
        };
        if radix != 10 {
            self.i += 2;
            loop {
                if self.byte(0) == Some(b'_') {
                    self.i += 1;
                }
                if !self.byte(0).is_some_and(|c| (c as char).is_digit(radix)) {
                    return Err(format!("invalid base-{radix} literal"));
                }
                while self.byte(0).is_some_and(|c| (c as char).is_digit(radix)) {
                    self.i += 1;
                }
                if self.byte(0) != Some(b'_') {
                    break;
                }
            }
            if digit(self) {
                return Err(format!("invalid digit in a base-{radix} literal"));
            }
            return self.int_token(start + 2, radix);
        }
        let mut float = false;
        if c == b'0' {
            // "0", "00", "0_0"; more digits only before a fraction, exponent or j.
            while matches!(self.byte(0), Some(b'0' | b'_')) {
                if self.byte(0) == Some(b'_') {
                    self.i += 1;
                    if !digit(self) {
                        return Err("invalid decimal literal".into());
                    }
                } else {
                    self.i += 1;
                }
            }
            let nonzero = digit(self);
            tail(self)?;
            if nonzero && !matches!(self.byte(0), Some(b'.' | b'e' | b'E' | b'j' | b'J')) {
                return Err("leading zeros in a decimal integer".into());
            }
        } else if c != b'.' {
            tail(self)?;
        }
        if self.byte(0) == Some(b'.') {
            float = true;
            self.i += 1;
            if digit(self) {
                tail(self)?;
            }
        }
        if matches!(self.byte(0), Some(b'e' | b'E')) {
            float = true;
            self.i += 1;
            if matches!(self.byte(0), Some(b'+' | b'-')) {
                self.i += 1;
            }
            if !digit(self) {
                return Err("invalid decimal literal".into());
            }
            tail(self)?;
        }
        if matches!(self.byte(0), Some(b'j' | b'J')) {
            self.i += 1;
            self.end_of_number()?;
            return Ok(Tok::Imaginary);
        }
        if float {
            self.end_of_number()?;
            return Ok(Tok::Float);
        }
        self.int_token(start, 10)
    }

    /// A number may not run into a name (`3L`, `1_`, `0x1g`).
    fn end_of_number(&self) -> Result<(), String> {
        match self.cur() {
            Some(c) if c.is_ascii_alphanumeric() || c == '_' || !c.is_ascii() => Err(format!(
                "invalid number literal {}",
                crate::quote::text(self.s[..self.i].rsplit([' ', '(', ',']).next().unwrap_or(""))
            )),
            _ => Ok(()),
        }
    }

    fn int_token(&mut self, digits_start: usize, radix: u32) -> Result<Tok, String> {
        self.end_of_number()?;
        let digits: String = self.s[digits_start..self.i].chars().filter(|&c| c != '_').collect();
        // Python 3.11 refuses decimal literals of more than 4300 digits.
        if radix == 10 && digits.len() > 4300 {
            return Err("an integer literal of more than 4300 digits".into());
        }
        Ok(Tok::Int(i128::from_str_radix(&digits, radix).unwrap_or(i128::MAX)))
    }

    /// A string literal from its opening quote.
    fn string(&mut self, raw: bool, bytes: bool, fstring: bool) -> Result<Tok, String> {
        let q = self.byte(0).unwrap_or(b'\'');
        self.i += 1;
        let triple = self.byte(0) == Some(q) && self.byte(1) == Some(q);
        if triple {
            self.i += 2;
        } else if self.byte(0) == Some(q) {
            self.i += 1;
            return Ok(if fstring {
                Tok::FString
            } else {
                Tok::Str(if bytes { Value::Bytes(Vec::new()) } else { Value::Str(String::new()) })
            });
        }
        let start = self.i;
        let mut quotes = 0;
        let end = loop {
            let Some(c) = self.cur() else {
                return Err("unterminated string".into());
            };
            self.bump();
            if c == q as char {
                quotes += 1;
                if !triple || quotes == 3 {
                    break self.i - quotes;
                }
                continue;
            }
            quotes = 0;
            if c == '\n' && !triple {
                return Err("unterminated string (a newline in a one-line string)".into());
            }
            if c == '\\' {
                if self.cur().is_none() {
                    return Err("unterminated string".into());
                }
                self.bump();
            }
        };
        if fstring {
            return Ok(Tok::FString);
        }
        let body = &self.s[start..end];
        if bytes {
            if !body.is_ascii() {
                return Err("bytes can only contain ASCII literal characters".into());
            }
            let mut out = Vec::new();
            if raw {
                out.extend_from_slice(body.as_bytes());
            } else {
                unescape(body, true, |c| out.push(c as u8))?;
            }
            return Ok(Tok::Str(Value::Bytes(out)));
        }
        let mut cps: Vec<u32> = Vec::new();
        if raw {
            cps.extend(body.chars().map(u32::from));
        } else {
            unescape(body, false, |c| cps.push(c))?;
        }
        Ok(Tok::Str(match cps.iter().map(|&c| char::from_u32(c)).collect::<Option<String>>() {
            Some(s) => Value::Str(s),
            None => Value::WStr(cps),
        }))
    }
}

/// Python's backslash escapes in a non-raw string body; `bytes` for `b''` (no `\u`, `\U`, `\N`;
/// octal escapes wrap at 256).
fn unescape(body: &str, bytes: bool, mut push: impl FnMut(u32)) -> Result<(), String> {
    let mut it = body.chars().peekable();
    while let Some(c) = it.next() {
        if c != '\\' {
            push(c.into());
            continue;
        }
        let Some(e) = it.next() else {
            return Err("unterminated string".into()); // cannot happen: the lexer pairs backslashes
        };
        let mut hex = |n: usize| -> Result<u32, String> {
            let mut v = 0u32;
            for _ in 0..n {
                let d = it.next().and_then(|c| c.to_digit(16)).ok_or_else(|| format!("truncated \\{e} escape"))?;
                v = v * 16 + d;
            }
            Ok(v)
        };
        match e {
            '\n' => {}
            '\\' | '\'' | '"' => push(e.into()),
            'a' => push(7),
            'b' => push(8),
            'f' => push(12),
            'n' => push(10),
            'r' => push(13),
            't' => push(9),
            'v' => push(11),
            'x' => push(hex(2)?),
            'u' if !bytes => push(hex(4)?),
            'U' if !bytes => {
                let v = hex(8)?;
                if v > 0x10ffff {
                    return Err("illegal Unicode character in \\U escape".into());
                }
                push(v);
            }
            'N' if !bytes => {
                let mut name = String::new();
                if it.next() != Some('{') {
                    return Err("malformed \\N character escape".into());
                }
                loop {
                    match it.next() {
                        Some('}') => break,
                        Some(c) => name.push(c),
                        None => return Err("malformed \\N character escape".into()),
                    }
                }
                match ascii_named(&name) {
                    Some(c) => push(c),
                    None => return Err(format!("\\N{{{}}}: not the name of a printable ASCII character", name)),
                }
            }
            '0'..='7' => {
                let mut v = e.to_digit(8).unwrap_or(0);
                for _ in 0..2 {
                    match it.peek().and_then(|c| c.to_digit(8)) {
                        Some(d) => {
                            v = v * 8 + d;
                            it.next();
                        }
                        None => break,
                    }
                }
                push(if bytes { v & 0xff } else { v });
            }
            _ => {
                push('\\'.into());
                push(e.into());
            }
        }
    }
    Ok(())
}

/// The character a `\N{NAME}` escape names (case-insensitive, as Python looks names up), for
/// the printable ASCII characters only: keys and `descr` strings that `numpy.load` accepts are
/// ASCII, so any other name, valid or not, makes a header it refuses anyway.
fn ascii_named(name: &str) -> Option<u32> {
    const PUNCT: [(&str, u8); 33] = [
        ("SPACE", b' '),
        ("SP", b' '), // Unicode's abbreviation alias, which Python accepts
        ("EXCLAMATION MARK", b'!'),
        ("QUOTATION MARK", b'"'),
        ("NUMBER SIGN", b'#'),
        ("DOLLAR SIGN", b'$'),
        ("PERCENT SIGN", b'%'),
        ("AMPERSAND", b'&'),
        ("APOSTROPHE", b'\''),
        ("LEFT PARENTHESIS", b'('),
        ("RIGHT PARENTHESIS", b')'),
        ("ASTERISK", b'*'),
        ("PLUS SIGN", b'+'),
        ("COMMA", b','),
        ("HYPHEN-MINUS", b'-'),
        ("FULL STOP", b'.'),
        ("SOLIDUS", b'/'),
        ("COLON", b':'),
        ("SEMICOLON", b';'),
        ("LESS-THAN SIGN", b'<'),
        ("EQUALS SIGN", b'='),
        ("GREATER-THAN SIGN", b'>'),
        ("QUESTION MARK", b'?'),
        ("COMMERCIAL AT", b'@'),
        ("LEFT SQUARE BRACKET", b'['),
        ("REVERSE SOLIDUS", b'\\'),
        ("RIGHT SQUARE BRACKET", b']'),
        ("CIRCUMFLEX ACCENT", b'^'),
        ("LOW LINE", b'_'),
        ("GRAVE ACCENT", b'`'),
        ("LEFT CURLY BRACKET", b'{'),
        ("VERTICAL LINE", b'|'),
        ("RIGHT CURLY BRACKET", b'}'),
    ];
    const DIGITS: [&str; 10] = ["ZERO", "ONE", "TWO", "THREE", "FOUR", "FIVE", "SIX", "SEVEN", "EIGHT", "NINE"];
    let up = name.to_ascii_uppercase();
    let letter = |rest: &str| match rest.as_bytes() {
        [c @ b'A'..=b'Z'] => Some(*c),
        _ => None,
    };
    let c = if let Some(rest) = up.strip_prefix("LATIN CAPITAL LETTER ") {
        letter(rest)?
    } else if let Some(rest) = up.strip_prefix("LATIN SMALL LETTER ") {
        letter(rest)?.to_ascii_lowercase()
    } else if let Some(rest) = up.strip_prefix("DIGIT ") {
        b'0' + DIGITS.iter().position(|&d| d == rest)? as u8
    } else if up == "TILDE" {
        b'~'
    } else {
        PUNCT.iter().find(|(n, _)| *n == up)?.1
    };
    Some(c.into())
}

/// How an expression's AST node looks to `literal_eval`'s number rules.
#[derive(Clone, Copy, PartialEq)]
enum Node {
    /// A number constant (possibly in parentheses).
    Number {
        imaginary: bool,
    },
    /// `+` or `-` applied to a number constant.
    Signed {
        imaginary: bool,
    },
    Other,
}

struct Parser<'a> {
    lx: Lexer<'a>,
    peeked: Option<Tok>,
}

fn unexpected(t: &Tok) -> String {
    match t {
        Tok::Newline => "unexpected end of line".into(),
        Tok::End => "unexpected end of header".into(),
        Tok::Op(c) => format!("unexpected '{}'", *c as char),
        Tok::Ellipsis => "unexpected '...'".into(),
        Tok::Name(n) => format!("{} is not a literal", crate::quote::text(n)),
        Tok::Int(_) | Tok::Float | Tok::Imaginary => "unexpected number".into(),
        Tok::Str(_) => "unexpected string".into(),
        Tok::FString => "f-strings are not literals".into(),
    }
}

impl Parser<'_> {
    fn peek(&mut self) -> Result<&Tok, String> {
        let tok = match self.peeked.take() {
            Some(t) => t,
            None => self.lx.next()?,
        };
        Ok(self.peeked.insert(tok))
    }

    fn next(&mut self) -> Result<Tok, String> {
        match self.peeked.take() {
            Some(t) => Ok(t),
            None => self.lx.next(),
        }
    }

    /// Takes the operator `c` if it comes next.
    fn eat(&mut self, c: u8) -> Result<bool, String> {
        if *self.peek()? == Tok::Op(c) {
            self.peeked = None;
            return Ok(true);
        }
        Ok(false)
    }

    /// `eval_input`: an expression or a tuple without brackets, then newlines.
    fn eval(&mut self) -> Result<Value, String> {
        let first = self.expr()?;
        let v = if *self.peek()? == Tok::Op(b',') {
            let mut items = vec![first];
            while self.eat(b',')? {
                if matches!(self.peek()?, Tok::Newline | Tok::End) {
                    break;
                }
                items.push(self.expr()?);
            }
            Value::Tuple(items)
        } else {
            first
        };
        loop {
            match self.next()? {
                Tok::Newline => {}
                Tok::End => return Ok(v),
                t => return Err(unexpected(&t)),
            }
        }
    }

    fn expr(&mut self) -> Result<Value, String> {
        Ok(self.expr_node()?.0)
    }

    /// A literal expression: an atom, a signed number, or `real ± imaginary`.
    fn expr_node(&mut self) -> Result<(Value, Node), String> {
        let (v, node) = match *self.peek()? {
            Tok::Op(sign @ (b'+' | b'-')) => {
                self.peeked = None;
                let (v, node) = self.atom()?;
                let Node::Number { imaginary } = node else {
                    return Err("a sign applies only to a number".into());
                };
                let v = match v {
                    Value::Int(n) if sign == b'-' => Value::Int(n.saturating_neg()),
                    v => v,
                };
                (v, Node::Signed { imaginary })
            }
            _ => self.atom()?,
        };
        if matches!(*self.peek()?, Tok::Op(b'+' | b'-')) {
            self.peeked = None;
            let real = matches!(node, Node::Number { imaginary: false } | Node::Signed { imaginary: false });
            let (_, right) = self.atom()?;
            if !real || right != (Node::Number { imaginary: true }) {
                return Err("the only sums that are literals are real ± imaginary numbers".into());
            }
            return Ok((Value::Other, Node::Other));
        }
        Ok((v, node))
    }

    fn atom(&mut self) -> Result<(Value, Node), String> {
        let number = Node::Number { imaginary: false };
        Ok(match self.next()? {
            Tok::Op(b'(') => {
                if self.eat(b')')? {
                    return Ok((Value::Tuple(Vec::new()), Node::Other));
                }
                let (first, node) = self.expr_node()?;
                if self.eat(b')')? {
                    return Ok((first, node)); // parentheses only group
                }
                let mut items = vec![first];
                self.rest(&mut items, b')')?;
                (Value::Tuple(items), Node::Other)
            }
            Tok::Op(b'[') => {
                let mut items = Vec::new();
                if !self.eat(b']')? {
                    items.push(self.expr()?);
                    self.rest(&mut items, b']')?;
                }
                (Value::List(items), Node::Other)
            }
            Tok::Op(b'{') => (self.dict_or_set()?, Node::Other),
            Tok::Str(s) => (self.strings(s)?, Node::Other),
            Tok::Int(n) => (Value::Int(n), number),
            Tok::Float => (Value::Other, number),
            Tok::Imaginary => (Value::Other, Node::Number { imaginary: true }),
            Tok::Ellipsis => (Value::Other, Node::Other),
            Tok::Name(n) => match n.as_str() {
                "True" => (Value::Bool(true), Node::Other),
                "False" => (Value::Bool(false), Node::Other),
                "None" => (Value::None, Node::Other),
                "set" if self.eat(b'(')? && self.eat(b')')? => (Value::Set(Vec::new()), Node::Other),
                _ => return Err(format!("{} is not a literal", crate::quote::text(&n))),
            },
            t => return Err(unexpected(&t)),
        })
    }

    /// After a sequence's first item: `, item` ... `[,] close`.
    fn rest(&mut self, items: &mut Vec<Value>, close: u8) -> Result<(), String> {
        loop {
            match self.next()? {
                Tok::Op(c) if c == close => return Ok(()),
                Tok::Op(b',') => {
                    if self.eat(close)? {
                        return Ok(());
                    }
                    items.push(self.expr()?);
                }
                t => return Err(unexpected(&t)),
            }
        }
    }

    fn dict_or_set(&mut self) -> Result<Value, String> {
        if self.eat(b'}')? {
            return Ok(Value::Dict(Vec::new()));
        }
        let first = self.expr()?;
        if !self.eat(b':')? {
            let mut items = vec![first];
            self.rest(&mut items, b'}')?;
            if !items.iter().all(Value::hashable) {
                return Err("unhashable set element".into());
            }
            let mut set: Vec<Value> = Vec::new();
            for x in items {
                if !set.contains(&x) {
                    set.push(x);
                }
            }
            return Ok(Value::Set(set));
        }
        let mut items: Vec<(Value, Value)> = Vec::new();
        let mut key = first;
        loop {
            let value = self.expr()?;
            if !key.hashable() {
                return Err("unhashable dict key".into());
            }
            // A repeated key keeps its first place and its last value.
            match items.iter_mut().find(|(k, _)| *k == key) {
                Some(slot) => slot.1 = value,
                None => items.push((key, value)),
            }
            match self.next()? {
                Tok::Op(b'}') => return Ok(Value::Dict(items)),
                Tok::Op(b',') if self.eat(b'}')? => return Ok(Value::Dict(items)),
                Tok::Op(b',') => {
                    key = self.expr()?;
                    if !self.eat(b':')? {
                        return Err("':' expected after a dict key".into());
                    }
                }
                t => return Err(unexpected(&t)),
            }
        }
    }

    /// Adjacent string literals are one string (`'des' 'cr'`); str and bytes do not mix, and
    /// f-strings are no literals.
    fn strings(&mut self, first: Value) -> Result<Value, String> {
        let mut acc = first;
        loop {
            let next = match self.peek()? {
                Tok::Str(_) => match self.peeked.take() {
                    Some(Tok::Str(v)) => v,
                    _ => return Ok(acc),
                },
                Tok::FString => return Err("f-strings are not literals".into()),
                _ => return Ok(acc),
            };
            acc = match (acc, next) {
                (Value::Bytes(mut a), Value::Bytes(b)) => {
                    a.extend(b);
                    Value::Bytes(a)
                }
                (Value::Str(mut a), Value::Str(b)) => {
                    a.push_str(&b);
                    Value::Str(a)
                }
                (a @ (Value::Str(_) | Value::WStr(_)), b @ (Value::Str(_) | Value::WStr(_))) => {
                    let cps = |v: Value| -> Vec<u32> {
                        match v {
                            Value::Str(s) => s.chars().map(u32::from).collect(),
                            Value::WStr(c) => c,
                            _ => Vec::new(),
                        }
                    };
                    let mut c = cps(a);
                    c.extend(cps(b));
                    Value::WStr(c)
                }
                _ => return Err("cannot mix bytes and str literals".into()),
            };
        }
    }
}

// ---------------------------------------------------------------------------------------------
// NumPy's `_filter_header`, for format 1.0 and 2.0 headers `ast.literal_eval` refused: Python's
// `tokenize` and `untokenize` over the text, dropping each name `L` that follows a number.

/// The header as `_filter_header` returns it, for what `parse_literal` does with it: an `L` after
/// a number (`3L`, `3 L`, or across a line continuation) becomes a space; a last line of only
/// spaces, tabs and form feeds (which `tokenize` stops at) goes; the first line's indentation
/// (which `untokenize` writes as spaces, which `literal_eval` strips) goes. The rest is unchanged.
fn py2_filter(text: &str) -> String {
    let s = text.trim_start_matches([' ', '\t', '\x0c']);
    let mut v = s.as_bytes().to_vec();
    let n = v.len();
    let mut i = 0;
    let mut after_number = false;
    // Where the line after the last newline token starts.
    let mut last_line = None;
    while i < n {
        let c = v[i];
        let rest = &s.as_bytes()[i..];
        match c {
            b' ' | b'\t' | b'\x0c' => i += 1,
            // A line continuation is no token.
            b'\\' if rest[1..].starts_with(b"\n") => i += 2,
            b'\\' if rest[1..].starts_with(b"\r\n") => i += 3,
            b'#' => {
                i += rest.iter().take_while(|&&c| c != b'\n' && c != b'\r').count();
                after_number = false;
            }
            b'\n' | b'\r' if rest.starts_with(b"\n") || rest.starts_with(b"\r\n") => {
                i += if c == b'\r' { 2 } else { 1 };
                after_number = false;
                last_line = Some(i);
            }
            b'0'..=b'9' => {
                i += py_number_end(rest);
                after_number = true;
            }
            b'.' if rest.get(1).is_some_and(u8::is_ascii_digit) => {
                i += py_number_end(rest);
                after_number = true;
            }
            b'\'' | b'"' => {
                i += skip_py_string(rest);
                after_number = false;
            }
            _ if c.is_ascii_alphanumeric() || c == b'_' || c >= 0x80 => {
                // A word (`\w+`), or an error token for any other character.
                let word_len = s[i..]
                    .char_indices()
                    .find(|&(_, c)| !(c.is_alphanumeric() || c == '_'))
                    .map_or(rest.len(), |(k, _)| k);
                if word_len == 0 {
                    i += s[i..].chars().next().map_or(1, char::len_utf8);
                    after_number = false;
                    continue;
                }
                let word = &rest[..word_len];
                let prefix = matches!(
                    word.to_ascii_lowercase().as_slice(),
                    b"b" | b"r" | b"u" | b"f" | b"br" | b"rb" | b"fr" | b"rf"
                );
                if prefix && matches!(rest.get(word_len), Some(b'\'' | b'"')) {
                    i += word_len + skip_py_string(&rest[word_len..]);
                    after_number = false;
                } else if word == b"L" && after_number {
                    v[i] = b' '; // and the number stays the last token
                    i += 1;
                } else {
                    i += word_len;
                    after_number = false;
                }
            }
            _ => {
                i += 1;
                after_number = false;
            }
        }
    }
    if let Some(k) = last_line {
        if k < n && v[k..].iter().all(|c| matches!(c, b' ' | b'\t' | b'\x0c')) {
            v.truncate(k);
        }
    }
    String::from_utf8(v).unwrap_or_default()
}

/// The length of the string literal at the start of `v` (its quote first), as `tokenize` reads
/// it; a one-line string with no closing quote is just its quote (an error token).
fn skip_py_string(v: &[u8]) -> usize {
    let q = v[0];
    let triple = v[1..].starts_with(&[q, q]);
    let mut k = if triple { 3 } else { 1 };
    let mut quotes = 0;
    while k < v.len() {
        let c = v[k];
        k += 1;
        if c == q {
            quotes += 1;
            if !triple || quotes == 3 {
                return k;
            }
            continue;
        }
        quotes = 0;
        if c == b'\\' {
            k += if v[k..].starts_with(b"\r\n") { 2 } else { 1 };
        } else if c == b'\n' && !triple {
            break;
        }
    }
    if triple {
        v.len()
    } else {
        1
    }
}

/// The length of the number at the start of `v`, by `tokenize`'s `Number` pattern (imaginary,
/// then float, then integer literals; the first that matches).
fn py_number_end(v: &[u8]) -> usize {
    let i = 0;
    let digit = |k: usize| v.get(k).is_some_and(u8::is_ascii_digit);
    // [0-9](?:_?[0-9])*
    let digitpart = |k: usize| -> Option<usize> {
        if !digit(k) {
            return None;
        }
        let mut k = k + 1;
        loop {
            if digit(k) {
                k += 1;
            } else if v.get(k) == Some(&b'_') && digit(k + 1) {
                k += 2;
            } else {
                return Some(k);
            }
        }
    };
    let exponent = |k: usize| -> Option<usize> {
        if !matches!(v.get(k), Some(b'e' | b'E')) {
            return None;
        }
        let k = k + 1 + matches!(v.get(k + 1), Some(b'+' | b'-')) as usize;
        digitpart(k)
    };
    // Pointfloat without its exponent.
    let point = |k: usize| -> Option<usize> {
        match digitpart(k) {
            Some(j) if v.get(j) == Some(&b'.') => Some(digitpart(j + 1).unwrap_or(j + 1)),
            Some(_) => None,
            None if v.get(k) == Some(&b'.') => digitpart(k + 1),
            None => None,
        }
    };
    let imag = |k: usize| v.get(k).is_some_and(|c| matches!(c, b'j' | b'J'));
    // Imagnumber: [0-9](?:_?[0-9])*[jJ] | Floatnumber[jJ]
    let mut floats = Vec::new();
    if let Some(p) = point(i) {
        if let Some(e) = exponent(p) {
            floats.push(e);
        }
        floats.push(p);
    }
    if let Some(e) = digitpart(i).and_then(exponent) {
        floats.push(e);
    }
    if let Some(d) = digitpart(i).filter(|&d| imag(d)) {
        return d + 1;
    }
    if let Some(&f) = floats.iter().find(|&&f| imag(f)) {
        return f + 1;
    }
    if let Some(&f) = floats.first() {
        return f;
    }
    // Intnumber: 0[xX](?:_?[0-9a-fA-F])+ | 0[bB](?:_?[01])+ | 0[oO](?:_?[0-7])+ | Decnumber
    let based = |radix: u32| -> Option<usize> {
        let mut k = i + 2;
        let is = |k: usize| v.get(k).is_some_and(|&c| (c as char).is_digit(radix));
        loop {
            if is(k) {
                k += 1;
            } else if v.get(k) == Some(&b'_') && is(k + 1) {
                k += 2;
            } else {
                return (k > i + 2).then_some(k);
            }
        }
    };
    if v[i] == b'0' {
        let radix = match v.get(i + 1) {
            Some(b'x' | b'X') => 16,
            Some(b'b' | b'B') => 2,
            Some(b'o' | b'O') => 8,
            _ => 0,
        };
        if let Some(k) = (radix != 0).then(|| based(radix)).flatten() {
            return k;
        }
        // 0(?:_?0)*
        let mut k = i + 1;
        loop {
            if v.get(k) == Some(&b'0') {
                k += 1;
            } else if v.get(k) == Some(&b'_') && v.get(k + 1) == Some(&b'0') {
                k += 2;
            } else {
                return k;
            }
        }
    }
    digitpart(i).unwrap_or(i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hdr(text: &str) -> Result<Header> {
        parse_header_text(text, (1, 0), 128)
    }

    /// A header with these `descr`, `fortran_order` and `shape` texts.
    fn dict(descr: &str, shape: &str) -> String {
        format!("{{'descr': {descr}, 'fortran_order': False, 'shape': {shape}, }}")
    }

    fn shape_of(text: &str, version: (u8, u8)) -> Result<Vec<u64>> {
        parse_header_text(text, version, 128).map(|h| h.shape)
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
    fn python_literal_grammar() {
        let ok = |s: &str| parse_literal(s).unwrap_or_else(|e| panic!("{s:?}: {e}"));
        let str_ = |s: &str| Value::Str(s.into());
        // Comments, line continuations, form feeds; CR and CR LF are newlines.
        assert_eq!(ok("(1, # one\n 2)  # end"), Value::Tuple(vec![Value::Int(1), Value::Int(2)]));
        assert_eq!(ok("(1,\\\n2)"), ok("(1, 2)"));
        assert_eq!(ok("\\\n1"), Value::Int(1));
        assert_eq!(ok("1 \\\n  "), Value::Int(1));
        assert_eq!(ok("\x0c1\n\n  \n# c\n"), Value::Int(1));
        assert_eq!(ok("(1,\r2)\r\n"), ok("(1, 2)"));
        // Strings: prefixes, concatenation, triple quotes, escapes, continuation inside.
        assert_eq!(ok("u'a' R'b' \"c\" U\"d\""), str_("abcd"));
        assert_eq!(ok("('des'\n 'cr')"), str_("descr"));
        assert_eq!(ok("'''a\nb''' \"\"\"'\"\"\""), str_("a\nb'"));
        assert_eq!(ok(r"'\x3cf4\074\u0065\U0001F600\n\t\\\'\q'"), str_("<f4<e\u{1F600}\n\t\\'\\q"));
        assert_eq!(ok("'des\\\ncr'"), str_("descr"));
        assert_eq!(ok(r"'\N{less-than sign}f\N{DIGIT FOUR}\N{SP}\N{LATIN CAPITAL LETTER Z}'"), str_("<f4 Z"));
        assert_eq!(ok(r"r'\x3c\''"), str_(r"\x3c\'"));
        assert_eq!(ok(r"'\ud800'"), Value::WStr(vec![0xd800]));
        assert_eq!(ok(r"b'a\x00\777' rb'\n'"), Value::Bytes(b"a\x00\xff\\n".to_vec()));
        // Numbers: one sign, bases, underscores; floats and complex are literals too.
        assert_eq!(ok("(-3, +3, - 3, -(3), 0x1_f, 0o7, 0b11, 1_000, 00, 0_0, -0)"), {
            Value::Tuple([-3, 3, -3, -3, 31, 7, 3, 1000, 0, 0, 0].map(Value::Int).to_vec())
        });
        for other in ["1.5", "-1e3", ".5", "1.", "1j", "1+2j", "-1.5-2j", "(1)+(2j)", "03.5", "..."] {
            assert_eq!(ok(other), Value::Other, "{other}");
        }
        // Containers.
        assert_eq!(ok("{}"), Value::Dict(vec![]));
        assert_eq!(ok("set()"), Value::Set(vec![]));
        assert_eq!(ok("{1, 1, 2,}"), Value::Set(vec![Value::Int(1), Value::Int(2)]));
        assert_eq!(ok("[(),]"), Value::List(vec![Value::Tuple(vec![])]));
        assert_eq!(ok("1, 2,"), Value::Tuple(vec![Value::Int(1), Value::Int(2)]));
        assert_eq!(ok("{'a': 1, 'a': 2}"), Value::Dict(vec![(str_("a"), Value::Int(2))]));
        // 200 nested brackets is Python's limit.
        let nest = |n: usize| format!("{}1{}", "(".repeat(n), ")".repeat(n));
        assert_eq!(ok(&nest(200)), Value::Int(1));
        for bad in [
            "--3",
            "- -3",
            "+-3",
            "-(-3)",
            "-True",
            "-'a'",
            "1+2",
            "1j+1",
            "1+2j+3j",
            "1+-2j",
            "3_",
            "1__2",
            "0_3",
            "03",
            "0x",
            "0b2",
            "0o8",
            "3L",
            "3l",
            "1e",
            "1_e5",
            "1".repeat(4301).as_str(),
            "f'a'",
            "'a' f'b'",
            "'a' b'b'",
            "ur'a'",
            "bu'a'",
            "b'\u{e9}'",
            r"'\x3'",
            r"'\N{SNOWMAN}'",
            r"'\N{DIGIT FOUR'",
            r"'\N{ DIGIT FOUR}'",
            r"'\N'",
            r"'\U00110000'",
            "'a\nb'",
            "'a",
            "'''a",
            "r'\\'",
            "(,)",
            "[,]",
            "{,}",
            "(1,,)",
            "{1:2, 3}",
            "{1, 2:3}",
            "{[1]: 2}",
            "{[1]}",
            "{**{}}",
            "[*()]",
            "x",
            "Ellipsis",
            "set(1)",
            "set()()",
            "(1)(2)",
            "'a'[0]",
            "1 if 1 else 2",
            "1\n 2",
            "\n 1",
            "1\n   ",
            "1\n\t",
            "\x0c 1",
            "1 \\\n",
            "1\\",
            "1\\ \n",
            "(1",
            "1)",
            "(1]",
            "1;",
            "1\x0b",
            "\u{feff}1",
            "1\u{a0}",
            "a\0",
            "'a'\n'b'",
            "-\n3",
            "",
            "   ",
            "# only a comment",
            "Ｔｒｕｅ",
            "é",
        ] {
            assert!(parse_literal(bad).is_err(), "accepted {bad:?}: {:?}", parse_literal(bad));
        }
        assert!(parse_literal(&nest(201)).is_err());
        assert!(parse_literal(&format!("{{'a': {}}}", nest(199))).is_ok());
        assert!(parse_literal(&format!("{{'a': {}}}", nest(200))).is_err());
    }

    #[test]
    fn python2_longs_and_indented_tails_only_before_format_3() {
        let long = dict("'<f4'", "(3L, 2 L, 1L L)");
        let tail = format!("{}\n   ", dict("'<f4'", "(3,)"));
        for v in [(1, 0), (2, 0)] {
            assert_eq!(shape_of(&long, v).unwrap(), vec![3, 2, 1]);
            assert_eq!(shape_of(&tail, v).unwrap(), vec![3]);
            assert_eq!(shape_of(&dict("'<f4'", "(3\\\n L,)"), v).unwrap(), vec![3]);
            assert_eq!(shape_of(&format!("\x0c {}", dict("'<f4'", "(3,)")), v).unwrap(), vec![3]);
            for bad in ["(3l,)", "(3LL,)", "(3 # c\n L,)", "(3_L,)", "(03L,)", "('3L',)", "(L3,)"] {
                assert!(shape_of(&dict("'<f4'", bad), v).is_err(), "accepted {bad}");
            }
            // Continued lines keep their tail, as tokenize keeps it.
            assert!(shape_of(&format!("{} \\\n  ", dict("'<f4'", "(3L,)")), v).is_ok());
        }
        assert!(shape_of(&long, (3, 0)).is_err());
        assert!(shape_of(&tail, (3, 0)).is_err());
        assert!(shape_of(&format!("{}\n\t", dict("'<f4'", "(3,)")), (3, 0)).is_err());
        assert_eq!(shape_of(&format!("{}\n   ", dict("'<f4'", "(3,)")).replace("\n   ", "\n"), (3, 0)).unwrap(), [3]);
    }

    #[test]
    fn shapes_numpy_load_refuses() {
        for bad in [
            "(True,)",
            "(True, 2)",
            "(False, 2)",
            "(9223372036854775808, 0)",
            "(1152921504606846976, 0)",
            "(2305843009213693952, 0)",
            "(4294967296, 4294967296)",
        ] {
            assert!(hdr(&dict("'<f8'", bad)).is_err(), "accepted {bad}");
        }
        assert_eq!(hdr(&dict("'<f8'", "(576460752303423488, 0)")).unwrap().elements, 0);
        assert_eq!(hdr(&dict("'|u1'", "(4611686018427387904, 0)")).unwrap().elements, 0);
        // Items of no bytes: only reshape's running product (reversed for Fortran order) counts.
        let big = "(4611686018427387904, 4611686018427387904, 0)";
        assert!(hdr(&dict("'|S0'", big)).is_err());
        assert!(hdr(&dict("'|S0'", big).replace("False", "True")).is_ok());
        assert_eq!(hdr(&dict("[]", "(4294967296, 1, 0, 576460752303423488)")).unwrap().elements, 0);
        let dims = |n: usize| format!("({})", vec!["1"; n].join(", "));
        assert_eq!(hdr(&dict("'<f4'", &dims(64))).unwrap().shape.len(), 64);
        assert!(hdr(&dict("'<f4'", &dims(65))).is_err());
    }

    #[test]
    fn descrs_as_numpy_load_reads_them() {
        let dtype = |d: &str, shape: &str| hdr(&dict(d, shape)).map(|h| (h.dtype, h.order, h.shape));
        let f4 = |shape: Vec<u64>| (Ok::<DType, String>(DType::F32), ByteOrder::Little, shape);
        for d in
            ["('<f4', ())", "('<f4', (1,))", "('<f4', 1)", "'(1,)<f4'", "'1<f4'", "('<f4', (1, 1), 'x')", "'()<f4'"]
        {
            assert_eq!(dtype(d, "(3,)").unwrap(), f4(vec![3]), "{d}");
        }
        assert_eq!(dtype("('>i2', (1, 1))", "(3,)").unwrap(), (Ok(DType::I16), ByteOrder::Big, vec![3]));
        assert_eq!(dtype("('<f4', (2,))", "(0,)").unwrap(), f4(vec![0]));
        assert_eq!(dtype("'int_'", "(3,)").unwrap().0, Ok(DType::I64));
        for bad in ["('<f4', (2,))", "'(2,)<f4'", "(('<i2', (2,)), (3,))", "('<f4', 0)", "('<f4',)", "('<f4', True)"] {
            assert!(dtype(bad, "(3,)").is_err(), "accepted {bad}");
        }
        // Types NumPy refuses, and object types, which numpy.load refuses without pickle.
        for bad in [
            "'<float32'",
            "'>float64'",
            "'<f3'",
            "' <f4'",
            "'<f4 '",
            "''",
            "'int0'",
            "'float_'",
            "5",
            "None",
            "True",
            "b'<f4'",
            "['<f4']",
            "{'names': ['a'], 'formats': ['<f4']}",
            "'|O'",
            "'O8'",
            "[('a', '|O')]",
            "[('a', '<f4'), ('a', '<i4')]",
            "'T'",
            "'O,<f4'",
            "'<M8[xs]'",
        ] {
            let e = dtype(bad, "(3,)").expect_err(bad).to_string();
            assert!(!e.contains('\n'), "{e}");
        }
        // Types NumPy reads and relu does not process: a valid header, an unsupported dtype.
        for (d, name) in [
            ("'bool'", "bool"),
            ("'<M8'", "datetime64"),
            ("'<M8[ns]'", "datetime64"),
            ("'<f4,<i4'", "structured"),
            ("'|S3'", "bytes"),
            ("[('a', '<f4')]", "structured"),
            ("[('', '|V4')]", "structured"),
            ("{'ab': 0}", "structured"),
            ("('|b1', (1,))", "bool"),
        ] {
            let why = dtype(d, "(3,)").unwrap_or_else(|e| panic!("{d}: {e}")).0.unwrap_err();
            assert_eq!(why, format!("{name} ({d})"));
        }
    }

    #[test]
    fn header_size_counts_characters() {
        let body = |n: usize, version: (u8, u8)| {
            let text = format!("{{'descr': '{}', {}", "\u{e9}".repeat(n), &dict("'<f4'", "(3,)")[1..]);
            let enc: Vec<u8> = if version.0 == 3 { text.into_bytes() } else { text.chars().map(|c| c as u8).collect() };
            let mut b = MAGIC.to_vec();
            b.extend_from_slice(&[version.0, version.1]);
            b.extend_from_slice(&(enc.len() as u32).to_le_bytes()[..if version.0 == 1 { 2 } else { 4 }]);
            b.extend_from_slice(&enc);
            b
        };
        assert!(read_header(&mut &body(9900, (3, 0))[..]).is_ok());
        assert!(read_header(&mut &body(9990, (3, 0))[..]).is_err());
        assert!(read_header(&mut &body(9900, (1, 0))[..]).is_ok());
        assert!(read_header(&mut &body(9990, (2, 0))[..]).is_err());
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
