//! `.npy` headers: read exactly what `numpy.load(..., allow_pickle=False)` reads, refuse what it
//! refuses, and write headers the way `numpy.save` does.
//!
//! The header is a Python dict literal. NumPy evaluates it with `ast.literal_eval` (retrying
//! format 1.0 and 2.0 headers through `_filter_header`, which drops Python 2 `L` suffixes) and then
//! checks the keys and value types; [`parse_literal`] is an evaluator for Python literals that
//! follows CPython 3.11's tokenizer and parser, and [`parse_header_text`] does NumPy's checks, so
//! that the same files are accepted and refused. Only the header is parsed here: data streams
//! through `pipeline`.

pub mod literal;

use crate::dtype::{dtype_from_descr, ByteOrder, DType, Descr};
use anyhow::{anyhow, bail, Result};
pub use literal::{parse_literal, Value};
use literal::{py2_filter, short_repr};
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
