//! Element types relu understands, with NumPy's names and type strings.

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

    fn from_kind_size(kind: char, size: usize) -> Option<DType> {
        Some(match (kind, size) {
            ('f', 2) => DType::F16,
            ('f', 4) => DType::F32,
            ('f', 8) => DType::F64,
            ('i', 1) => DType::I8,
            ('i', 2) => DType::I16,
            ('i', 4) => DType::I32,
            ('i', 8) => DType::I64,
            ('u', 1) => DType::U8,
            ('u', 2) => DType::U16,
            ('u', 4) => DType::U32,
            ('u', 8) => DType::U64,
            _ => return None,
        })
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a `.npy` `descr` string names, following `numpy.dtype(str)` on a little-endian Linux host.
#[derive(Debug, PartialEq, Eq)]
pub enum Descr {
    Supported(DType, ByteOrder),
    /// A type NumPy knows but relu does not process (complex, bool, bytes, datetime, …): its name.
    Unsupported(String),
    /// Not a type at all, or one NumPy refuses to load without pickle.
    Invalid,
}

pub fn parse_descr(s: &str) -> Descr {
    let (order, rest) = match s.as_bytes().first() {
        Some(b'<') | Some(b'=') | Some(b'|') => (ByteOrder::Little, &s[1..]),
        Some(b'>') => (ByteOrder::Big, &s[1..]),
        _ => (ByteOrder::Little, s),
    };
    if let Some(dt) = named(rest) {
        return Descr::Supported(dt, order);
    }
    let mut chars = rest.chars();
    let Some(code) = chars.next() else {
        return Descr::Invalid;
    };
    let digits = chars.as_str();
    // Single-character codes (C type names), as on LP64 Linux.
    if digits.is_empty() {
        let dt = match code {
            'e' => Some(DType::F16),
            'f' => Some(DType::F32),
            'd' => Some(DType::F64),
            'b' => Some(DType::I8),
            'h' => Some(DType::I16),
            'i' => Some(DType::I32),
            'l' | 'q' | 'p' => Some(DType::I64),
            'B' => Some(DType::U8),
            'H' => Some(DType::U16),
            'I' => Some(DType::U32),
            'L' | 'Q' | 'P' => Some(DType::U64),
            _ => None,
        };
        if let Some(dt) = dt {
            return Descr::Supported(dt, order);
        }
        return match code {
            '?' => Descr::Unsupported("bool".into()),
            'g' => Descr::Unsupported("longdouble".into()),
            'F' | 'D' | 'G' => Descr::Unsupported("complex".into()),
            'S' | 'a' | 'U' | 'V' => Descr::Unsupported(format!("{code} (bytes/str/void)")),
            'M' | 'm' => Descr::Unsupported("datetime64/timedelta64".into()),
            _ => Descr::Invalid,
        };
    }
    let Ok(size) = digits.parse::<usize>() else {
        if matches!(code, 'M' | 'm') && digits.starts_with('8') {
            return Descr::Unsupported(format!("datetime '{s}'"));
        }
        return Descr::Invalid;
    };
    if let Some(dt) = DType::from_kind_size(code, size) {
        return Descr::Supported(dt, order);
    }
    match (code, size) {
        ('b', 1) => Descr::Unsupported("bool".into()),
        ('c', 8) => Descr::Unsupported("complex64".into()),
        ('c', 16) => Descr::Unsupported("complex128".into()),
        ('c', _) | ('f', _) => Descr::Unsupported(format!("'{s}'")),
        ('S', _) | ('a', _) => Descr::Unsupported(format!("bytes ('{s}')")),
        ('U', _) => Descr::Unsupported(format!("str ('{s}')")),
        ('V', _) => Descr::Unsupported(format!("void ('{s}')")),
        _ => Descr::Invalid,
    }
}

fn named(s: &str) -> Option<DType> {
    Some(match s {
        "float16" | "half" => DType::F16,
        "float32" | "single" => DType::F32,
        "float64" | "double" | "float" => DType::F64,
        "int8" | "byte" => DType::I8,
        "int16" | "short" => DType::I16,
        "int32" | "intc" => DType::I32,
        "int64" | "int" | "long" | "longlong" | "intp" => DType::I64,
        "uint8" | "ubyte" => DType::U8,
        "uint16" | "ushort" => DType::U16,
        "uint32" | "uintc" => DType::U32,
        "uint64" | "uint" | "ulong" | "ulonglong" | "uintp" => DType::U64,
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

impl Element for F16 {
    const DTYPE: DType = DType::F16;
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
        assert_eq!(parse_descr("|O"), Descr::Invalid);
        assert_eq!(parse_descr("<x4"), Descr::Invalid);
        assert_eq!(parse_descr(""), Descr::Invalid);
        for dt in DType::ALL {
            assert_eq!(parse_descr(dt.descr()), Descr::Supported(dt, ByteOrder::Little));
            assert_eq!(parse_descr(dt.name()), Descr::Supported(dt, ByteOrder::Little));
        }
    }
}
