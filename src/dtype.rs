//! Element types relu understands, with NumPy's names and type strings.

use crate::format::npy::literal::{parse_literal, Value};
use crate::kernel::Unaligned;
use std::fmt;

/// A numeric element type. Byte order is kept apart (see [`ByteOrder`]): the kernel only ever sees
/// native little-endian data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    F16,
    /// bfloat16: `.safetensors` and `--dtype bf16` only (NumPy has no such type).
    BF16,
    F32,
    F64,
    I8,
    I16,
    I32,
    I64,
    U8,
    U16,
    U32,
    U64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ByteOrder {
    Little,
    Big,
}

impl DType {
    /// The types NumPy has (all but bf16).
    pub const ALL: [DType; 11] = [
        DType::F16,
        DType::F32,
        DType::F64,
        DType::I8,
        DType::I16,
        DType::I32,
        DType::I64,
        DType::U8,
        DType::U16,
        DType::U32,
        DType::U64,
    ];

    pub fn size(self) -> usize {
        match self {
            DType::I8 | DType::U8 => 1,
            DType::F16 | DType::BF16 | DType::I16 | DType::U16 => 2,
            DType::F32 | DType::I32 | DType::U32 => 4,
            DType::F64 | DType::I64 | DType::U64 => 8,
        }
    }

    /// Whether the kernels read input of this working type where it lies, at any address
    /// (when it needs no conversion: little-endian): f32 and f64, with unaligned loads
    /// ([`Unaligned`]). Other types are copied to an aligned buffer first.
    pub fn reads_unaligned(self) -> bool {
        matches!(self, DType::F32 | DType::F64)
    }

    pub fn is_float(self) -> bool {
        matches!(self, DType::F16 | DType::BF16 | DType::F32 | DType::F64)
    }

    pub fn is_signed_int(self) -> bool {
        matches!(self, DType::I8 | DType::I16 | DType::I32 | DType::I64)
    }

    /// NumPy's name, as `str(array.dtype)` prints it.
    pub fn name(self) -> &'static str {
        match self {
            DType::F16 => "float16",
            DType::BF16 => "bfloat16",
            DType::F32 => "float32",
            DType::F64 => "float64",
            DType::I8 => "int8",
            DType::I16 => "int16",
            DType::I32 => "int32",
            DType::I64 => "int64",
            DType::U8 => "uint8",
            DType::U16 => "uint16",
            DType::U32 => "uint32",
            DType::U64 => "uint64",
        }
    }

    /// The little-endian type string NumPy writes into a `.npy` header (`'<f4'`, `'|u1'`); bf16
    /// has none NumPy reads as a number (jobs refuse it before a header is written).
    pub fn descr(self) -> &'static str {
        match self {
            DType::F16 => "<f2",
            DType::BF16 => "<V2",
            DType::F32 => "<f4",
            DType::F64 => "<f8",
            DType::I8 => "|i1",
            DType::I16 => "<i2",
            DType::I32 => "<i4",
            DType::I64 => "<i8",
            DType::U8 => "|u1",
            DType::U16 => "<u2",
            DType::U32 => "<u4",
            DType::U64 => "<u8",
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a `.npy` `descr` names, following `numpy.dtype` on a little-endian LP64 Linux host (NumPy 2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Descr {
    Supported(DType, ByteOrder),
    /// A type NumPy knows but relu does not process: its NumPy name (`bool`, `complex64`, `bytes`,
    /// `datetime64`, `structured`, …).
    Unsupported(String),
    /// Python objects (`|O`, or a structured type with an object field): `numpy.load` refuses
    /// these without `allow_pickle`.
    Object,
    /// Not a type at all: `numpy.dtype` raises.
    Invalid,
}

/// A dtype as `numpy.dtype` builds it from a `.npy` descr: the element type, its size in bytes,
/// and the sub-array shape that each item of the array holds (empty for a plain type).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NpDtype {
    /// Never [`Descr::Invalid`].
    pub elem: Descr,
    /// Bytes per element of `elem`.
    pub itemsize: u64,
    /// Each item's sub-array shape, outermost first (nested sub-arrays flattened).
    pub sub_shape: Vec<u64>,
}

impl NpDtype {
    fn plain(elem: Descr, itemsize: u64) -> NpDtype {
        NpDtype { elem, itemsize, sub_shape: Vec::new() }
    }

    fn supported(dt: DType, order: ByteOrder) -> NpDtype {
        NpDtype::plain(Descr::Supported(dt, order), dt.size() as u64)
    }

    fn unsupported(name: &str, itemsize: u64) -> NpDtype {
        NpDtype::plain(Descr::Unsupported(name.into()), itemsize)
    }

    /// NumPy's "unsized" types (`PyDataType_ISUNSIZED`): no bytes and no fields, like `'S'`,
    /// `'V'` or `('<f4', 0)`, which a tuple `(type, n)` gives a size instead of a shape.
    fn sizeless(&self) -> bool {
        self.total_size() == 0 && !(self.sub_shape.is_empty() && self.elem == Descr::Unsupported(STRUCTURED.into()))
    }

    /// An unsized type given a size: a flexible type of that size, else raw bytes.
    fn resized(self, size: u64) -> NpDtype {
        match self.elem {
            Descr::Unsupported(name) if self.sub_shape.is_empty() => NpDtype::unsupported(&name, size),
            _ => NpDtype::unsupported(VOID, size),
        }
    }

    /// Elements per item: the product of the sub-array shape (1 for a plain type).
    pub fn sub_items(&self) -> u64 {
        self.sub_shape.iter().product()
    }

    /// Bytes per item (`numpy.dtype(...).itemsize`).
    pub fn total_size(&self) -> u64 {
        self.itemsize * self.sub_items()
    }
}

const STRUCTURED: &str = "structured";
const VOID: &str = "void";

/// `numpy.dtype(s)` for a plain type: what it names, or [`Descr::Invalid`]. Sub-array strings
/// (`'(2,)<f4'`) name an unsupported "sub-array" here; [`dtype_from_str`] has their shape.
pub fn parse_descr(s: &str) -> Descr {
    match dtype_from_str(s) {
        None => Descr::Invalid,
        Some(d) if d.sub_shape.is_empty() => d.elem,
        Some(_) => Descr::Unsupported("sub-array".into()),
    }
}

/// `numpy.dtype(s)` for a string (NumPy's `_convert_from_str`), `None` where it raises.
pub fn dtype_from_str(s: &str) -> Option<NpDtype> {
    let b = s.as_bytes();
    if b.is_empty() {
        return None;
    }
    if is_commastring(b) {
        return commastring(s);
    }
    // One byte-order character, then the type. Names are looked up with it (`'<float32'` is no type).
    let (big, rest) = match b[0] {
        b'<' | b'=' | b'|' => (false, &b[1..]),
        b'>' => (true, &b[1..]),
        _ => (false, b),
    };
    if rest.is_empty() {
        return None;
    }
    if let Some(dt) = datetime(rest) {
        return dt;
    }
    if rest.len() == 1 {
        return char_code(rest[0], big).or_else(|| named(s));
    }
    // A kind and a size (`f4`, `S10`), the size as C's strtol reads it.
    let (size, digits, whole) = strtol(&rest[1..]);
    if !(0..=i32::MAX as i64).contains(&size) {
        return None;
    }
    if !(digits && whole) {
        return named(s);
    }
    let n = size as u64;
    match rest[0] {
        b'S' | b'a' if n == 0 => Some(NpDtype::unsupported("bytes", 0)),
        b'S' | b'a' => Some(NpDtype::unsupported("bytes", n)),
        b'U' if n == 0 => Some(NpDtype::unsupported("str", 0)),
        b'U' => Some(NpDtype::unsupported("str", n * 4)),
        b'V' if n == 0 => Some(NpDtype::unsupported(VOID, 0)),
        b'V' => Some(NpDtype::unsupported(VOID, n)),
        _ if n == 0 => named(s),
        kind => kind_size(kind, n, big).or_else(|| named(s)),
    }
}

/// C's `strtol(s, &end, 10)`: (value, whether any digit was read, whether it read all of `s`).
fn strtol(s: &[u8]) -> (i64, bool, bool) {
    let mut i = s.iter().take_while(|c| matches!(c, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r')).count();
    let neg = match s.get(i) {
        Some(b'-') => {
            i += 1;
            true
        }
        Some(b'+') => {
            i += 1;
            false
        }
        _ => false,
    };
    let start = i;
    let mut v: i64 = 0;
    while let Some(d) = s.get(i).filter(|c| c.is_ascii_digit()) {
        v = v.saturating_mul(10).saturating_add((d - b'0') as i64);
        i += 1;
    }
    if i == start {
        return (0, false, s.is_empty());
    }
    (if neg { -v } else { v }, true, i == s.len())
}

fn order(big: bool, size: u64) -> ByteOrder {
    if big && size > 1 {
        ByteOrder::Big
    } else {
        ByteOrder::Little
    }
}

/// NumPy's `PyArray_TypestrConvert`: a kind letter and a size in bytes.
fn kind_size(kind: u8, n: u64, big: bool) -> Option<NpDtype> {
    let dt = match (kind, n) {
        (b'f', 2) => DType::F16,
        (b'f', 4) => DType::F32,
        (b'f', 8) => DType::F64,
        (b'i', 1) => DType::I8,
        (b'i', 2) => DType::I16,
        (b'i', 4) => DType::I32,
        (b'i', 8) => DType::I64,
        (b'u', 1) => DType::U8,
        (b'u', 2) => DType::U16,
        (b'u', 4) => DType::U32,
        (b'u', 8) => DType::U64,
        (b'b', 1) => return Some(NpDtype::unsupported("bool", 1)),
        (b'f', 16) => return Some(NpDtype::unsupported("longdouble", 16)),
        (b'c', 8) => return Some(NpDtype::unsupported("complex64", 8)),
        (b'c', 16) => return Some(NpDtype::unsupported("complex128", 16)),
        (b'c', 32) => return Some(NpDtype::unsupported("complex256", 32)),
        (b'O', 4 | 8) => return Some(NpDtype::plain(Descr::Object, 8)),
        _ => return None,
    };
    Some(NpDtype::supported(dt, order(big, n)))
}

/// One-character type codes (`numpy.dtype('d')`), as on LP64 Linux; NumPy also takes control
/// characters as type numbers (`'\x04'` is type 4, `ushort`).
fn char_code(c: u8, big: bool) -> Option<NpDtype> {
    let dt = match c {
        b'e' | 23 => DType::F16,
        b'f' | 11 => DType::F32,
        b'd' | 12 => DType::F64,
        b'b' | 1 => DType::I8,
        b'h' | 3 => DType::I16,
        b'i' | 5 => DType::I32,
        b'l' | b'q' | b'p' | b'n' | 7 | 9 => DType::I64,
        b'B' | 2 => DType::U8,
        b'H' | 4 => DType::U16,
        b'I' | 6 => DType::U32,
        b'L' | b'Q' | b'P' | b'N' | 8 | 10 => DType::U64,
        b'?' | 0 => return Some(NpDtype::unsupported("bool", 1)),
        b'g' | 13 => return Some(NpDtype::unsupported("longdouble", 16)),
        b'F' | 14 => return Some(NpDtype::unsupported("complex64", 8)),
        b'D' | 15 => return Some(NpDtype::unsupported("complex128", 16)),
        b'G' | 16 => return Some(NpDtype::unsupported("complex256", 32)),
        b'S' | 18 => return Some(NpDtype::unsupported("bytes", 0)),
        b'c' => return Some(NpDtype::unsupported("bytes", 1)),
        b'U' | 19 => return Some(NpDtype::unsupported("str", 0)),
        b'V' | 20 => return Some(NpDtype::unsupported(VOID, 0)),
        b'M' | 21 => return Some(NpDtype::unsupported("datetime64", 8)),
        b'm' | 22 => return Some(NpDtype::unsupported("timedelta64", 8)),
        // Object, and NumPy 2's variable-width strings (which hold objects).
        b'O' | b'T' | 17 => return Some(NpDtype::plain(Descr::Object, 8)),
        _ => return None,
    };
    Some(NpDtype::supported(dt, order(big, dt.size() as u64)))
}

/// NumPy's type dictionary (`numpy.sctypeDict`), looked up with the whole descr: the names of
/// NumPy 2 on LP64 Linux.
fn named(s: &str) -> Option<NpDtype> {
    let dt = match s {
        "float16" | "half" => DType::F16,
        "float32" | "single" => DType::F32,
        "float64" | "double" | "float" => DType::F64,
        "int8" | "byte" => DType::I8,
        "int16" | "short" => DType::I16,
        "int32" | "intc" => DType::I32,
        "int64" | "int" | "int_" | "long" | "longlong" | "intp" => DType::I64,
        "uint8" | "ubyte" => DType::U8,
        "uint16" | "ushort" => DType::U16,
        "uint32" | "uintc" => DType::U32,
        "uint64" | "uint" | "ulong" | "ulonglong" | "uintp" => DType::U64,
        "bool" | "bool_" => return Some(NpDtype::unsupported("bool", 1)),
        "float128" | "longdouble" => return Some(NpDtype::unsupported("longdouble", 16)),
        "complex64" | "csingle" => return Some(NpDtype::unsupported("complex64", 8)),
        "complex128" | "complex" | "cdouble" => return Some(NpDtype::unsupported("complex128", 16)),
        "complex256" | "clongdouble" => return Some(NpDtype::unsupported("complex256", 32)),
        "a" | "bytes" | "bytes_" => return Some(NpDtype::unsupported("bytes", 0)),
        "str" | "str_" | "unicode" => return Some(NpDtype::unsupported("str", 0)),
        "void" => return Some(NpDtype::unsupported(VOID, 0)),
        "object" | "object_" => return Some(NpDtype::plain(Descr::Object, 8)),
        _ => return None,
    };
    Some(NpDtype::supported(dt, ByteOrder::Little))
}

/// `M8`, `m8[ns]`, `datetime64[2D]`, `timedelta64`: `Some(None)` when malformed.
fn datetime(t: &[u8]) -> Option<Option<NpDtype>> {
    let (name, meta) = if t.len() >= 2 && t[1] == b'8' && matches!(t[0], b'M' | b'm') {
        (if t[0] == b'M' { "datetime64" } else { "timedelta64" }, &t[2..])
    } else if let Some(meta) = t.strip_prefix(b"datetime64") {
        ("datetime64", meta)
    } else if let Some(meta) = t.strip_prefix(b"timedelta64") {
        ("timedelta64", meta)
    } else {
        return None;
    };
    let ok = meta.is_empty()
        || meta.strip_prefix(b"[").and_then(|m| m.strip_suffix(b"]")).is_some_and(|m| {
            let unit = m.trim_ascii_start();
            let unit = &unit[unit.iter().take_while(|c| c.is_ascii_digit()).count()..];
            let unit = match unit.iter().position(|&c| c == b'/') {
                Some(k) if k + 1 < unit.len() && unit[k + 1..].iter().all(u8::is_ascii_digit) => &unit[..k],
                Some(_) => return false,
                None => unit,
            };
            let units: [&[u8]; 15] = [
                b"Y",
                b"M",
                b"W",
                b"D",
                b"h",
                b"m",
                b"s",
                b"ms",
                b"us",
                "\u{3bc}s".as_bytes(),
                b"ns",
                b"ps",
                b"fs",
                b"as",
                b"generic",
            ];
            units.contains(&unit)
        });
    Some(ok.then(|| NpDtype::unsupported(name, 8)))
}

/// NumPy's `_check_for_commastring`: a leading repeat count, `()`, or a comma outside `[]`.
fn is_commastring(b: &[u8]) -> bool {
    let order = |c: u8| matches!(c, b'<' | b'>' | b'|' | b'=');
    if b[0].is_ascii_digit() || (b.len() > 1 && order(b[0]) && b[1].is_ascii_digit()) {
        return true;
    }
    if b.starts_with(b"()") || (b.len() > 3 && order(b[0]) && b[1..].starts_with(b"()")) {
        return true;
    }
    let mut sq = 0i64;
    for &c in b {
        match c {
            b',' if sq == 0 => return true,
            b'[' => sq += 1,
            b']' => sq -= 1,
            _ => {}
        }
    }
    false
}

/// Python's `str.isspace`.
fn py_space(c: char) -> bool {
    c.is_whitespace() || ('\x1c'..='\x1f').contains(&c)
}

/// NumPy's `_commastring` (`numpy/_core/_internal.py`): `'(2,)<f4'`, `'2i4'`, `'<f4,<i4'`.
fn commastring(s: &str) -> Option<NpDtype> {
    let b = s.as_bytes();
    let n = b.len();
    let order = |i: usize| b.get(i).copied().filter(|c| matches!(c, b'<' | b'>' | b'|' | b'='));
    let mut items = Vec::new();
    let mut islist = false;
    let mut i = 0;
    while i < n {
        // format_re: [<>|=]? ( *[(]?[ ,0-9]*[)]? *) [<>|=]? ([A-Za-z0-9.?]*(?:\[[a-zA-Z0-9,.]+\])?)
        let o1 = order(i);
        i += o1.is_some() as usize;
        let r0 = i;
        i += b[i..].iter().take_while(|&&c| c == b' ').count();
        i += (b.get(i) == Some(&b'(')) as usize;
        i += b[i..].iter().take_while(|&&c| matches!(c, b' ' | b',' | b'0'..=b'9')).count();
        i += (b.get(i) == Some(&b')')) as usize;
        i += b[i..].iter().take_while(|&&c| c == b' ').count();
        let repeats = &s[r0..i];
        let o2 = order(i);
        i += o2.is_some() as usize;
        let d0 = i;
        i += b[i..].iter().take_while(|&&c| c.is_ascii_alphanumeric() || c == b'.' || c == b'?').count();
        if b.get(i) == Some(&b'[') {
            let k = b[i + 1..].iter().take_while(|&&c| c.is_ascii_alphanumeric() || c == b',' || c == b'.').count();
            if k > 0 && b.get(i + 1 + k) == Some(&b']') {
                i += k + 2;
            }
        }
        let dtype = &s[d0..i];
        if i < n {
            if s[i..].chars().all(py_space) {
                i = n;
            } else {
                let t = s[i..].trim_start_matches(py_space);
                let t = t.strip_prefix(',')?.trim_start_matches(py_space);
                i = n - t.len();
                islist = true;
            }
        }
        // `=` is the native order; the native order and `|` are dropped.
        let norm = |o: Option<u8>| o.map(|c| if c == b'=' { b'<' } else { c });
        let order = match (norm(o1), norm(o2)) {
            (a, None) => a,
            (None, b) => b,
            (Some(a), Some(b)) if a == b => Some(a),
            _ => return None,
        };
        let spec = format!("{}{dtype}", if order == Some(b'>') { ">" } else { "" });
        items.push((spec, repeats));
    }
    // A list ending in an empty item ('f4,=') drops it.
    if islist && items.last().is_some_and(|(spec, repeats)| spec.is_empty() && repeats.is_empty()) {
        items.pop();
    }
    let mut dtypes = Vec::with_capacity(items.len());
    for (spec, repeats) in items {
        let base = dtype_from_str(&spec)?;
        dtypes.push(if repeats.is_empty() { base } else { with_shape(base, &parse_literal(repeats).ok()?)? });
    }
    if islist {
        (!dtypes.is_empty()).then(|| structured_of(dtypes, 0))
    } else {
        dtypes.pop()
    }
}

/// A structured type with these fields (and padding, which counts in the size only).
fn structured_of(fields: Vec<NpDtype>, padding: u64) -> NpDtype {
    let size = fields.iter().map(NpDtype::total_size).sum::<u64>() + padding;
    if fields.iter().any(|f| f.elem == Descr::Object) {
        NpDtype::plain(Descr::Object, size)
    } else {
        NpDtype::unsupported(STRUCTURED, size)
    }
}

/// `numpy.dtype((base, shape))` (NumPy's `_convert_from_tuple`): a sub-array type, `base` itself
/// for `()`, or a size for an unsized flexible type. `None` where NumPy raises.
pub fn with_shape(base: NpDtype, shape: &Value) -> Option<NpDtype> {
    let ints = |items: &[Value]| -> Option<Vec<i128>> {
        items.iter().map(|v| if let Value::Int(n) = v { Some(*n) } else { None }).collect()
    };
    // A second type instead of a shape (NumPy's old "union" types): the base, if the sizes agree.
    let other = match shape {
        Value::Tuple(items) | Value::List(items) if !items.is_empty() && ints(items).is_some() => None,
        Value::None => Some(NpDtype::supported(DType::F64, ByteOrder::Little)),
        Value::Str(_) | Value::List(_) | Value::Tuple(_) => dtype_from_descr(shape).ok(),
        _ => None,
    };
    if let Some(other) = other {
        if other.elem == Descr::Object || base.elem == Descr::Object {
            return None;
        }
        if base.sizeless() {
            return Some(base.resized(other.total_size()));
        }
        return (other.total_size() == base.total_size()).then_some(base);
    }
    let dims = match shape {
        Value::Int(n) => vec![*n],
        Value::Tuple(items) | Value::List(items) => ints(items)?,
        _ => return None,
    };
    if base.sizeless() {
        // `('S', 3)` is `'S3'`.
        let Value::Int(n @ 0..=0x7fff_ffff) = *shape else { return None };
        let n = n as u64;
        let size = if base.elem == Descr::Unsupported("str".into()) { n * 4 } else { n };
        return Some(base.resized(size));
    }
    if dims.is_empty() {
        return Some(base); // (base, ()) is base
    }
    if dims.len() > 64 || dims.iter().any(|&d| !(0..=i32::MAX as i128).contains(&d)) {
        return None;
    }
    let items = dims.iter().try_fold(1u64, |a, &d| a.checked_mul(d as u64)).filter(|&k| k <= i32::MAX as u64)?;
    if items.checked_mul(base.total_size()).is_none_or(|b| b > i32::MAX as u64) {
        return None;
    }
    let mut sub_shape: Vec<u64> = dims.iter().map(|&d| d as u64).collect();
    sub_shape.extend_from_slice(&base.sub_shape);
    Some(NpDtype { sub_shape, ..base })
}

/// NumPy's `numpy.lib.format.descr_to_dtype`: a `.npy` header's `descr` value (a string, a
/// `(descr, shape)` tuple, or a list of fields) as `numpy.load` reads it. `Err` says why NumPy
/// refuses it.
pub fn dtype_from_descr(v: &Value) -> Result<NpDtype, String> {
    match v {
        Value::Str(s) => dtype_from_str(s).ok_or_else(|| "not a dtype NumPy knows".into()),
        Value::Tuple(items) => {
            let [base, shape, ..] = &items[..] else {
                return Err("a tuple descr needs a type and a shape".into());
            };
            with_shape(dtype_from_descr(base)?, shape).ok_or_else(|| "not a valid sub-array type".into())
        }
        _ => {
            let fields = iterate(v).ok_or("not a dtype description")?;
            let mut names: Vec<String> = Vec::new();
            let mut out = Vec::new();
            let mut padding = 0;
            for field in &fields {
                let parts = iterate(field).ok_or("a field is not a (name, type[, shape]) tuple")?;
                let (name, dt) = match &parts[..] {
                    [name, t] => (name, dtype_from_descr(t)?),
                    [name, t, shape] => {
                        (name, with_shape(dtype_from_descr(t)?, shape).ok_or("a field has an invalid shape")?)
                    }
                    _ => return Err("a field is not a (name, type[, shape]) tuple".into()),
                };
                let void = !dt.sub_shape.is_empty() || dt.elem == Descr::Unsupported(VOID.into());
                if void && *name == Value::Str(String::new()) {
                    padding += dt.total_size();
                } else {
                    // Not padding: a name, or a (title, name) pair, each used once.
                    let labels: Vec<&Value> = match name {
                        Value::Tuple(tn) if tn.len() == 2 => vec![&tn[1], &tn[0]],
                        other => vec![other],
                    };
                    for label in labels {
                        let Value::Str(label) = label else { return Err("a field name is not a string".into()) };
                        if names.contains(label) {
                            return Err(format!("field {label:?} occurs more than once"));
                        }
                        names.push(label.clone());
                    }
                    out.push(dt);
                }
            }
            Ok(structured_of(out, padding))
        }
    }
}

/// What Python's `for x in v` gives, for the values a descr can hold; `None` for non-iterables.
fn iterate(v: &Value) -> Option<Vec<Value>> {
    Some(match v {
        Value::List(items) | Value::Tuple(items) | Value::Set(items) => items.clone(),
        Value::Dict(items) => items.iter().map(|(k, _)| k.clone()).collect(),
        Value::Str(s) => s.chars().map(|c| Value::Str(c.into())).collect(),
        Value::Bytes(b) => b.iter().map(|&c| Value::Int(c.into())).collect(),
        _ => return None,
    })
}

/// f16 as its raw bits: the element type of a `float16` array (the kernel computes on the bits
/// or in f32, see `act`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(transparent)]
pub struct F16(pub u16);

// SAFETY: a transparent wrapper of u16: every bit pattern is valid, no padding.
unsafe impl bytemuck::Zeroable for F16 {}
unsafe impl bytemuck::Pod for F16 {}

/// bf16 as its raw bits (the upper half of an f32).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(transparent)]
pub struct BF16(pub u16);

// SAFETY: a transparent wrapper of u16: every bit pattern is valid, no padding.
unsafe impl bytemuck::Zeroable for BF16 {}
unsafe impl bytemuck::Pod for BF16 {}

/// A Rust type for each [`DType`], with the per-type operations the pipeline needs. Code that
/// works per element type is written once, generic over `Element`, and [`with_element!`] picks
/// the type for a runtime `DType`: this is the only `match` over element types.
pub trait Element: bytemuck::Pod + Default + Send + Sync + 'static {
    const DTYPE: DType;
    /// Whether f32 holds every value exactly ([`Element::to_f32`] widens without rounding).
    const F32_EXACT: bool;
    /// The exact value, widened (integers beyond 2^53 round to nearest).
    fn to_f64(self) -> f64;
    /// The value as f32 (f64 rounds to nearest; integers round to nearest).
    fn to_f32(self) -> f32;
    /// The value as f16 bits, rounded once to nearest even.
    fn to_f16(self) -> F16;
    /// The value as bf16 bits, rounded once to nearest even.
    fn to_bf16(self) -> BF16;
    /// "Active" in the statistics' sense: greater than zero (NaN is not).
    fn is_active(self) -> bool;
    /// Reverses the byte order.
    fn swap(self) -> Self;
    /// Appends the value as text: the shortest that reads back the same.
    fn write_text(self, out: &mut Vec<u8>, fmt: &mut ryu::Buffer);
}

macro_rules! int_element {
    ($($t:ty => $dt:ident),*) => {$(
        impl Element for $t {
            const DTYPE: DType = DType::$dt;
            const F32_EXACT: bool = std::mem::size_of::<$t>() <= 2;
            #[inline(always)]
            fn to_f64(self) -> f64 { self as f64 }
            #[inline(always)]
            fn to_f32(self) -> f32 { self as f32 }
            #[inline(always)]
            // via f64: exact for every integer f16 can hold; the rest round once or overflow
            fn to_f16(self) -> F16 { F16(crate::act::f64_to_f16(self as f64)) }
            #[inline(always)]
            fn to_bf16(self) -> BF16 { BF16(crate::act::f64_to_bf16(self as f64)) }
            #[inline(always)]
            fn is_active(self) -> bool { self > 0 }
            #[inline(always)]
            fn swap(self) -> Self { self.swap_bytes() }
            fn write_text(self, out: &mut Vec<u8>, _: &mut ryu::Buffer) {
                use std::io::Write;
                let _ = write!(out, "{self}");
            }
        }
    )*};
}
int_element!(i8 => I8, i16 => I16, i32 => I32, i64 => I64, u8 => U8, u16 => U16, u32 => U32, u64 => U64);

/// An element read where it lies ([`Unaligned`]): the same type, values and order.
impl<T: Element> Element for Unaligned<T> {
    const DTYPE: DType = T::DTYPE;
    const F32_EXACT: bool = T::F32_EXACT;
    #[inline(always)]
    fn to_f64(self) -> f64 {
        { self.0 }.to_f64()
    }
    #[inline(always)]
    fn to_f32(self) -> f32 {
        { self.0 }.to_f32()
    }
    #[inline(always)]
    fn to_f16(self) -> F16 {
        { self.0 }.to_f16()
    }
    #[inline(always)]
    fn to_bf16(self) -> BF16 {
        { self.0 }.to_bf16()
    }
    #[inline(always)]
    fn is_active(self) -> bool {
        { self.0 }.is_active()
    }
    #[inline(always)]
    fn swap(self) -> Self {
        Unaligned({ self.0 }.swap())
    }
    fn write_text(self, out: &mut Vec<u8>, fmt: &mut ryu::Buffer) {
        { self.0 }.write_text(out, fmt)
    }
}

impl Element for F16 {
    const DTYPE: DType = DType::F16;
    const F32_EXACT: bool = true;
    #[inline(always)]
    fn to_f64(self) -> f64 {
        crate::act::f16_to_f32(self.0) as f64
    }
    #[inline(always)]
    fn to_f32(self) -> f32 {
        crate::act::f16_to_f32(self.0)
    }
    #[inline(always)]
    fn to_f16(self) -> F16 {
        self
    }
    #[inline(always)]
    fn to_bf16(self) -> BF16 {
        BF16(crate::act::f32_to_bf16(self.to_f32()))
    }
    /// Positive, non-zero, not NaN: bits 0x0001..=0x7c00.
    #[inline(always)]
    fn is_active(self) -> bool {
        self.0.wrapping_sub(1) < 0x7c00
    }
    #[inline(always)]
    fn swap(self) -> Self {
        F16(self.0.swap_bytes())
    }
    fn write_text(self, out: &mut Vec<u8>, fmt: &mut ryu::Buffer) {
        self.to_f32().write_text(out, fmt)
    }
}

impl Element for BF16 {
    const DTYPE: DType = DType::BF16;
    const F32_EXACT: bool = true;
    #[inline(always)]
    fn to_f64(self) -> f64 {
        crate::act::bf16_to_f32(self.0) as f64
    }
    #[inline(always)]
    fn to_f32(self) -> f32 {
        crate::act::bf16_to_f32(self.0)
    }
    #[inline(always)]
    fn to_f16(self) -> F16 {
        F16(crate::act::f32_to_f16(self.to_f32()))
    }
    #[inline(always)]
    fn to_bf16(self) -> BF16 {
        self
    }
    /// Positive, non-zero, not NaN: bits 0x0001..=0x7f80.
    #[inline(always)]
    fn is_active(self) -> bool {
        self.0.wrapping_sub(1) < 0x7f80
    }
    #[inline(always)]
    fn swap(self) -> Self {
        BF16(self.0.swap_bytes())
    }
    fn write_text(self, out: &mut Vec<u8>, fmt: &mut ryu::Buffer) {
        self.to_f32().write_text(out, fmt)
    }
}

impl Element for f32 {
    const DTYPE: DType = DType::F32;
    const F32_EXACT: bool = true;
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self as f64
    }
    #[inline(always)]
    fn to_f32(self) -> f32 {
        self
    }
    #[inline(always)]
    fn to_f16(self) -> F16 {
        F16(crate::act::f32_to_f16(self))
    }
    #[inline(always)]
    fn to_bf16(self) -> BF16 {
        BF16(crate::act::f32_to_bf16(self))
    }
    #[inline(always)]
    fn is_active(self) -> bool {
        self > 0.0
    }
    #[inline(always)]
    fn swap(self) -> Self {
        f32::from_bits(self.to_bits().swap_bytes())
    }
    fn write_text(self, out: &mut Vec<u8>, fmt: &mut ryu::Buffer) {
        if self.is_finite() {
            out.extend_from_slice(fmt.format_finite(self).as_bytes());
        } else {
            (self as f64).write_text(out, fmt);
        }
    }
}

impl Element for f64 {
    const DTYPE: DType = DType::F64;
    const F32_EXACT: bool = false;
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self
    }
    #[inline(always)]
    fn to_f32(self) -> f32 {
        self as f32
    }
    #[inline(always)]
    fn to_f16(self) -> F16 {
        F16(crate::act::f64_to_f16(self))
    }
    #[inline(always)]
    fn to_bf16(self) -> BF16 {
        BF16(crate::act::f64_to_bf16(self))
    }
    #[inline(always)]
    fn is_active(self) -> bool {
        self > 0.0
    }
    #[inline(always)]
    fn swap(self) -> Self {
        f64::from_bits(self.to_bits().swap_bytes())
    }
    fn write_text(self, out: &mut Vec<u8>, fmt: &mut ryu::Buffer) {
        if self.is_finite() {
            out.extend_from_slice(fmt.format_finite(self).as_bytes());
        } else {
            out.extend_from_slice(if self.is_nan() {
                b"nan"
            } else if self > 0.0 {
                b"inf"
            } else {
                b"-inf"
            });
        }
    }
}

/// Evaluates `$body` with `$T` standing for the [`Element`] type of the runtime `DType` `$dt`.
#[macro_export]
macro_rules! with_element {
    ($dt:expr, $T:ident => $body:expr) => {{
        use $crate::dtype::DType;
        match $dt {
            DType::F16 => {
                type $T = $crate::dtype::F16;
                $body
            }
            DType::BF16 => {
                type $T = $crate::dtype::BF16;
                $body
            }
            DType::F32 => {
                type $T = f32;
                $body
            }
            DType::F64 => {
                type $T = f64;
                $body
            }
            DType::I8 => {
                type $T = i8;
                $body
            }
            DType::I16 => {
                type $T = i16;
                $body
            }
            DType::I32 => {
                type $T = i32;
                $body
            }
            DType::I64 => {
                type $T = i64;
                $body
            }
            DType::U8 => {
                type $T = u8;
                $body
            }
            DType::U16 => {
                type $T = u16;
                $body
            }
            DType::U32 => {
                type $T = u32;
                $body
            }
            DType::U64 => {
                type $T = u64;
                $body
            }
        }
    }};
}

/// The value of element `i` of native little-endian `bytes` of type `dt`, as f64.
pub fn element_f64(dt: DType, bytes: &[u8], i: usize) -> f64 {
    with_element!(dt, T => bytemuck::pod_read_unaligned::<T>(&bytes[i * dt.size()..(i + 1) * dt.size()]).to_f64())
}

/// The smallest f32 not below `x` (an f32 `v` has `v >= x` exactly when `v >= f32_up(x)`).
pub fn f32_up(x: f64) -> f32 {
    let f = x as f32;
    if (f as f64) < x {
        f.next_up()
    } else {
        f
    }
}

/// The largest f32 not above `x`.
pub fn f32_down(x: f64) -> f32 {
    -f32_up(-x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descr_forms() {
        assert_eq!(parse_descr("<f4"), Descr::Supported(DType::F32, ByteOrder::Little));
        assert_eq!(parse_descr(">f2"), Descr::Supported(DType::F16, ByteOrder::Big));
        assert_eq!(parse_descr("|u1"), Descr::Supported(DType::U8, ByteOrder::Little));
        assert_eq!(parse_descr("float64"), Descr::Supported(DType::F64, ByteOrder::Little));
        assert_eq!(parse_descr("<i8"), Descr::Supported(DType::I64, ByteOrder::Little));
        assert!(matches!(parse_descr("<c8"), Descr::Unsupported(_)));
        assert!(matches!(parse_descr("|S2"), Descr::Unsupported(_)));
        assert!(matches!(parse_descr("|b1"), Descr::Unsupported(_)));
        assert_eq!(parse_descr("|O"), Descr::Object);
        assert_eq!(parse_descr("<x4"), Descr::Invalid);
        assert_eq!(parse_descr(""), Descr::Invalid);
        // The byte order goes before type codes, never before names.
        assert_eq!(parse_descr("<float32"), Descr::Invalid);
        assert_eq!(parse_descr("=f4"), Descr::Supported(DType::F32, ByteOrder::Little));
        assert_eq!(parse_descr(">H"), Descr::Supported(DType::U16, ByteOrder::Big));
        assert_eq!(parse_descr("<f 4"), Descr::Supported(DType::F32, ByteOrder::Little)); // C's strtol
        assert_eq!(parse_descr("int_"), Descr::Supported(DType::I64, ByteOrder::Little));
        for bad in ["<f3", "<i16", "int0", "float_", "bool8", " <f4", "<f4 ", "<<f4", "F4", "<q8", "u", "<M[ns]"] {
            assert_eq!(parse_descr(bad), Descr::Invalid, "{bad}");
        }
        for (d, name) in [("bool", "bool"), ("?", "bool"), ("<M8", "datetime64"), ("M8[ns]", "datetime64")] {
            assert_eq!(parse_descr(d), Descr::Unsupported(name.into()), "{d}");
        }
        assert_eq!(parse_descr("<datetime64"), Descr::Unsupported("datetime64".into()));
        assert_eq!(parse_descr("<f4,<i4"), Descr::Unsupported("structured".into()));
        assert_eq!(parse_descr("f4,O"), Descr::Object);
        // Sub-arrays: `(shape)type` strings and `(type, shape)` tuples.
        let sub = |s: &str| dtype_from_str(s).map(|d| (d.elem, d.sub_shape));
        let f4 = Descr::Supported(DType::F32, ByteOrder::Little);
        assert_eq!(sub("(1,)<f4"), Some((f4.clone(), vec![1])));
        assert_eq!(sub("2<f4"), Some((f4.clone(), vec![2])));
        assert_eq!(sub("(2, 3)f4"), Some((f4.clone(), vec![2, 3])));
        assert_eq!(sub("()<f4"), Some((f4.clone(), vec![])));
        assert_eq!(sub("1,<f4"), Some((f4.clone(), vec![1])));
        for bad in ["(1)<f4x", "(01,)<f4", "<(1,)>f4", "(-1,)<f4", "(1,),", " ,f4", "f4,,f4"] {
            assert_eq!(sub(bad), None, "{bad}");
        }
        let tup = |base: &str, shape: Value| with_shape(dtype_from_str(base).unwrap(), &shape).map(|d| d.sub_shape);
        assert_eq!(tup("<f4", Value::Tuple(vec![])), Some(vec![]));
        assert_eq!(tup("<f4", Value::Int(1)), Some(vec![1]));
        assert_eq!(tup("<f4", Value::List(vec![Value::Int(2)])), Some(vec![2]));
        assert_eq!(tup("<f4", Value::Bool(true)), None);
        assert_eq!(tup("<f4", Value::Int(-1)), None);
        assert_eq!(tup("<f4", Value::Int(1 << 31)), None);
        assert_eq!(tup("<f8", Value::None), Some(vec![]));
        assert_eq!(tup("<f4", Value::None), None);
        assert_eq!(dtype_from_str("S").and_then(|d| with_shape(d, &Value::Int(3))).map(|d| d.itemsize), Some(3));
        for dt in DType::ALL {
            assert_eq!(parse_descr(dt.descr()), Descr::Supported(dt, ByteOrder::Little));
            assert_eq!(parse_descr(dt.name()), Descr::Supported(dt, ByteOrder::Little));
        }
    }
}
