//! `.safetensors` (Hugging Face's format): an 8-byte little-endian header length, a JSON header
//! that gives each tensor's dtype, shape and byte range (and an optional `__metadata__` map of
//! strings), then the tensors' bytes back to back, C order, little-endian.
//!
//! The header is parsed and validated by the `safetensors` crate, the code the Python library
//! runs, over a memory map of the file: only the header's pages are touched. The tensors are then
//! read by position like a `.npy` file's data. A stream (stdin) is spooled to an unnamed
//! temporary file first, its header checked before anything is spooled and the spool bounded by
//! what the header declares.

use crate::chunks::{ArraySource, FileRegion};
use crate::dtype::{ByteOrder, DType};
use crate::format::npy::Header;
use anyhow::{bail, Context, Result};
use safetensors::tensor::{Dtype, SafeTensors};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::path::Path;

use crate::platform::FileAt;

/// The safetensors library's limit on the header's length (it refuses longer ones).
const MAX_HEADER: u64 = 100_000_000;

/// One tensor of a file: its name, type (or the safetensors name of one relu does not compute
/// on), shape and byte range in the data section.
#[derive(Clone, Debug)]
pub struct Tensor {
    pub name: String,
    pub dtype: Result<DType, String>,
    pub shape: Vec<u64>,
    pub start: u64,
    pub end: u64,
}

/// An opened `.safetensors` file, its header validated.
pub struct SafetensorsFile {
    /// The name for messages.
    pub name: String,
    file: File,
    pub metadata: Option<BTreeMap<String, String>>,
    /// In data order (the order of their byte ranges), which is the order outputs keep.
    pub tensors: Vec<Tensor>,
    /// The first byte of the data section.
    data_start: u64,
}

impl SafetensorsFile {
    pub fn open(path: &Path) -> Result<SafetensorsFile> {
        let name = path.display().to_string();
        let file = File::open(path).with_context(|| name.clone())?;
        if !file.metadata().with_context(|| name.clone())?.is_file() {
            return Self::from_reader(&name, file); // a pipe: no map, spool it
        }
        Self::from_file(name, file)
    }

    /// A stream, spooled to an unnamed temporary file (bounded memory, removed on exit). The
    /// header is checked as soon as its bytes arrive (the 8-byte length, at most 100 MB, then the
    /// JSON parsed and validated), and only the data it declares is spooled: a stream that ends
    /// early, or goes on after it (the library refuses a file with bytes past the tensors), is
    /// refused without reading further, so `cat /dev/zero` costs nothing.
    pub fn from_reader(name: &str, r: impl Read) -> Result<SafetensorsFile> {
        use safetensors::SafeTensorError as E;
        use std::io::Write;
        let mut r = r;
        let invalid = |e: E| anyhow::anyhow!("{name}: not a valid .safetensors file: {e}{}", hint(&e));
        let mut head = Vec::with_capacity(8);
        (&mut r).take(8).read_to_end(&mut head).with_context(|| name.to_string())?;
        if head.len() < 8 {
            bail!("{name}: not a .safetensors file: {} bytes, shorter than the 8-byte header length", head.len());
        }
        let n = u64::from_le_bytes(head[..8].try_into().expect("eight bytes"));
        if n > MAX_HEADER {
            return Err(invalid(E::HeaderTooLarge));
        }
        (&mut r).take(n).read_to_end(&mut head).with_context(|| name.to_string())?;
        if (head.len() as u64) < 8 + n {
            return Err(invalid(E::InvalidHeaderLength));
        }
        let (_, meta) = metadata(&head).map_err(invalid)?;
        let data = meta.data_len() as u64;
        let mut spool = tempfile::tempfile().context("a temporary file for the stream")?;
        spool.write_all(&head).with_context(|| name.to_string())?;
        let got = std::io::copy(&mut (&mut r).take(data), &mut spool).with_context(|| name.to_string())?;
        let mut one = [0u8; 1];
        let more = loop {
            match r.read(&mut one) {
                Ok(k) => break k,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(anyhow::Error::from(e).context(name.to_string())),
            }
        };
        if got < data || more > 0 {
            return Err(invalid(E::MetadataIncompleteBuffer));
        }
        Self::from_file(name.to_string(), spool)
    }

    fn from_file(name: String, file: File) -> Result<SafetensorsFile> {
        let len = file.metadata().with_context(|| name.clone())?.len();
        if len < 8 {
            bail!("{name}: not a .safetensors file: {len} bytes, shorter than the 8-byte header length");
        }
        // The header is read, not mapped: a file cut short meanwhile is an error, not SIGBUS,
        // and a large file takes no address space. `read_metadata` sees the header alone, so
        // it decides everything but the data section's length, checked here as it would.
        use safetensors::SafeTensorError as E;
        let invalid = |e: E| anyhow::anyhow!("{name}: not a valid .safetensors file: {e}{}", hint(&e));
        let mut len8 = [0u8; 8];
        file.read_exact_at(&mut len8, 0).with_context(|| name.clone())?;
        let n = u64::from_le_bytes(len8);
        // past either bound, 8 bytes get the library's own refusal (too large, or past the end)
        let head = if n <= MAX_HEADER && n <= len - 8 {
            let mut head = vec![0u8; 8 + n as usize];
            file.read_exact_at(&mut head, 0).with_context(|| format!("{name}: the file shrank while being read"))?;
            head
        } else {
            len8.to_vec()
        };
        let (n, meta) = metadata(&head).map_err(invalid)?;
        if (meta.data_len() as u64).checked_add(8 + n as u64) != Some(len) {
            return Err(invalid(E::MetadataIncompleteBuffer));
        }
        let mut tensors = Vec::new();
        for key in meta.offset_keys() {
            let info = meta.info(&key).context("internal error: a listed tensor has no info")?;
            tensors.push(Tensor {
                dtype: dtype_of(info.dtype),
                shape: info.shape.iter().map(|&d| d as u64).collect(),
                start: info.data_offsets.0 as u64,
                end: info.data_offsets.1 as u64,
                name: key,
            });
        }
        // Tensors of equal ranges (empty ones) keep the header's order, which the map loses.
        if let Ok(text) = std::str::from_utf8(&head[8..]) {
            if let Ok(Keys(keys)) = serde_json::from_str::<Keys>(text) {
                let at = |name: &str| keys.iter().position(|k| k == name);
                tensors.sort_by_key(|t| (t.start, t.end, at(&t.name)));
            }
        }
        let metadata = meta.metadata().as_ref().map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect());
        Ok(SafetensorsFile { name, file, metadata, tensors, data_start: 8 + n as u64 })
    }

    /// The tensor called `name`, or an error listing those there are.
    pub fn find(&self, name: &str) -> Result<&Tensor> {
        Ok(self.select(name)?.remove(0))
    }

    /// The tensors NAME picks: the one so named, else those matching it as a pattern (`glob`);
    /// none is an error that lists the names.
    pub fn select(&self, name: &str) -> Result<Vec<&Tensor>> {
        let names: Vec<&str> = self.tensors.iter().map(|t| t.name.as_str()).collect();
        let picked = crate::glob::select(&names, name);
        anyhow::ensure!(!picked.is_empty(), "{}: no tensor {name:?} (it holds {})", self.name, names.join(", "));
        Ok(picked.into_iter().map(|i| &self.tensors[i]).collect())
    }

    /// `FILE:TENSOR`, the name results and messages use.
    pub fn member_name(&self, t: &Tensor) -> String {
        format!("{}:{}", self.name, t.name)
    }

    /// The tensor described as a `.npy` header would describe it.
    pub fn header(&self, t: &Tensor) -> Header {
        let dtype = t.dtype.clone().map_err(|d| format!("'{d}' (safetensors)"));
        let elements = t.shape.iter().product::<u64>();
        Header {
            version: (1, 0),
            dtype,
            descr: t.dtype.as_ref().map_or_else(|d| d.clone(), |d| d.descr().to_string()),
            order: ByteOrder::Little,
            fortran_order: false,
            shape: t.shape.clone(),
            data_offset: self.data_start + t.start,
            elements,
            data_bytes: Some(t.end - t.start),
        }
    }

    /// The tensor's data as an array source: its byte range, as `chunks::file_source` reads it.
    pub fn source(&self, t: &Tensor) -> Result<ArraySource<'static>> {
        let name = self.member_name(t);
        let header = self.header(t);
        header.dtype().with_context(|| name.clone())?;
        let region = FileRegion {
            file: self.file.try_clone()?,
            start: self.data_start + t.start,
            len: t.end - t.start,
            mappable: true,
            align: crate::chunks::map_align(&header),
        };
        let data = region.range(0, region.len)?;
        Ok(ArraySource { name, header, data, region: Some(region), transposed: false, member: None })
    }
}

/// The header's length and its validated metadata, from the length field and the header
/// alone (`head`: exactly those bytes, or just the 8 of the length when it is out of bounds).
/// `read_metadata` decides everything but the data section's length, which the callers check.
fn metadata(head: &[u8]) -> Result<(usize, safetensors::tensor::Metadata), safetensors::SafeTensorError> {
    use safetensors::SafeTensorError as E;
    match SafeTensors::read_metadata(head) {
        Ok(r) => Ok(r),
        // a valid header whose tensors hold data: the library's own parse, then the length
        Err(E::MetadataIncompleteBuffer) if head.len() > 8 => {
            let meta = serde_json::from_slice::<safetensors::tensor::Metadata>(&head[8..])
                .map_err(E::InvalidHeaderDeserialization)?;
            Ok((head.len() - 8, meta))
        }
        Err(e) => Err(e),
    }
}

/// The keys of a JSON object, in the order written.
struct Keys(Vec<String>);

impl<'de> serde::Deserialize<'de> for Keys {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Keys, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Keys;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut m: A) -> Result<Keys, A::Error> {
                let mut keys = Vec::new();
                while let Some(k) = m.next_key::<String>()? {
                    m.next_value::<serde::de::IgnoredAny>()?;
                    keys.push(k);
                }
                Ok(Keys(keys))
            }
        }
        d.deserialize_map(V)
    }
}

/// What to tell the user beyond the library's words.
fn hint(e: &safetensors::SafeTensorError) -> &'static str {
    use safetensors::SafeTensorError as E;
    match e {
        E::HeaderTooLarge => " (over 100 MB)",
        E::InvalidHeaderLength => " (the header runs past the end of the file)",
        E::MetadataIncompleteBuffer => " (the data section does not end where the tensors do: truncated or padded)",
        E::InvalidOffset(_) => " (tensors must follow each other with no gap or overlap)",
        E::TensorInvalidInfo => " (a shape does not match its bytes)",
        _ => "",
    }
}

fn dtype_of(d: Dtype) -> Result<DType, String> {
    Ok(match d {
        Dtype::F16 => DType::F16,
        Dtype::BF16 => DType::BF16,
        Dtype::F32 => DType::F32,
        Dtype::F64 => DType::F64,
        Dtype::I8 => DType::I8,
        Dtype::I16 => DType::I16,
        Dtype::I32 => DType::I32,
        Dtype::I64 => DType::I64,
        Dtype::U8 => DType::U8,
        Dtype::U16 => DType::U16,
        Dtype::U32 => DType::U32,
        Dtype::U64 => DType::U64,
        other => return Err(format!("{other:?}")),
    })
}

/// The safetensors name of a type.
pub fn tag(dt: DType) -> &'static str {
    match dt {
        DType::F16 => "F16",
        DType::BF16 => "BF16",
        DType::F32 => "F32",
        DType::F64 => "F64",
        DType::I8 => "I8",
        DType::I16 => "I16",
        DType::I32 => "I32",
        DType::I64 => "I64",
        DType::U8 => "U8",
        DType::U16 => "U16",
        DType::U32 => "U32",
        DType::U64 => "U64",
    }
}

/// The header of an output file: `__metadata__` first, then the tensors in the order given,
/// back to back, padded with spaces to a multiple of 8 as the library pads it. Returns the
/// bytes (length field included) and each tensor's first byte in the file.
pub fn write_header(
    metadata: Option<&BTreeMap<String, String>>,
    tensors: &[(String, DType, Vec<u64>)],
) -> (Vec<u8>, Vec<u64>) {
    use serde_json::{json, Value};
    // pairs written one by one: a JSON map type would sort the names
    let mut pairs: Vec<(String, Value)> = Vec::new();
    if let Some(m) = metadata {
        pairs.push(("__metadata__".into(), json!(m)));
    }
    let mut at = 0u64;
    let mut starts = Vec::new();
    for (name, dt, shape) in tensors {
        let bytes = shape.iter().product::<u64>() * dt.size() as u64;
        starts.push(at);
        pairs.push((name.clone(), json!({"dtype": tag(*dt), "shape": shape, "data_offsets": [at, at + bytes]})));
        at += bytes;
    }
    let mut text = String::from("{");
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            text.push(',');
        }
        text.push_str(&Value::String(k.clone()).to_string());
        text.push(':');
        text.push_str(&v.to_string());
    }
    text.push('}');
    let mut body = text.into_bytes();
    body.resize(body.len().div_ceil(8) * 8, b' ');
    let mut out = (body.len() as u64).to_le_bytes().to_vec();
    let base = out.len() as u64 + body.len() as u64;
    out.extend_from_slice(&body);
    (out, starts.into_iter().map(|s| s + base).collect())
}
