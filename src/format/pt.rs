//! `.pt` / `.pth`: PyTorch's zip format (`torch.save` since 1.6). A zip whose entries share one
//! top folder: `data.pkl` (the pickled container), `data/<key>` (one entry per storage, raw
//! elements), `byteorder` (`little` or `big`; absent means little), `version`.
//!
//! `data.pkl` is read by the restricted unpickler in [`super::pickle`], which runs nothing; the
//! container is then walked for its tensors, each named by its path (`layers.0.out`, a bare
//! tensor ""). A tensor's elements are read from its storage's entry by position: torch writes
//! storages stored (uncompressed), so a contiguous tensor is a plain file region, read like a
//! `.npy`'s data; a strided view (transposed, sliced) is gathered chunk by chunk through a map of
//! its storage. A compressed entry (not written by torch, but a valid zip) is inflated once to an
//! unnamed temporary file, its CRC checked, and read from there. Like `torch.load`, stored
//! entries' CRCs are not checked; every position is checked against the entry's length.
//!
//! Refused: the legacy non-zip format, TorchScript archives, and (by the unpickler) every global
//! outside what a tensor container needs. The writer ([`PtWriter`]) writes what
//! `torch.load(weights_only=True)` loads.

use super::pickle::{self, Id, Out, Pickle, StorageKind, StorageRecord, TensorRecord, Value};
use crate::chunks::{ArraySource, ChunkSource, FileRegion};
use crate::dtype::{ByteOrder, DType};
use crate::format::npy::Header;
use anyhow::{bail, Context, Result};
use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::Path;
use zip::{CompressionMethod, ZipArchive, ZipWriter};

/// The largest `data.pkl` read (a state dict of 10,000 tensors pickles to about 2 MB).
pub const MAX_PICKLE: u64 = 64 << 20;
/// The most tensors and container visits while naming them (a shared list nested in itself
/// many times would otherwise name exponentially many paths).
const MAX_VISITS: usize = 10_000_000;

/// How a legacy (pre-1.6) `torch.save` file starts: pickle protocol 2, then the magic number
/// 0x1950a86a20f9469cfc6c as a `LONG1`.
const LEGACY_MAGIC: &[u8] = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19";

/// One tensor of the container.
#[derive(Clone, Debug)]
pub struct PtTensor {
    /// Its path in the container: keys and list indices joined by `.` ("" for a bare tensor).
    pub name: String,
    pub record: TensorRecord,
    pub dtype: DType,
    /// Index into [`PtFile::storages`].
    storage: usize,
}

/// Where a storage's bytes are.
#[derive(Debug)]
struct Storage {
    file: File,
    start: u64,
    len: u64,
}

/// An opened `.pt`: its container read, its tensors listed and checked against their storages.
pub struct PtFile {
    /// The name for messages.
    pub name: String,
    pub pickle: Pickle,
    /// In the order a walk of the container meets them (dict order, list order).
    pub tensors: Vec<PtTensor>,
    storages: Vec<Storage>,
    pub order: ByteOrder,
}

impl PtFile {
    pub fn open(path: &Path) -> Result<PtFile> {
        let name = path.display().to_string();
        let file = File::open(path).with_context(|| name.clone())?;
        if !file.metadata().with_context(|| name.clone())?.is_file() {
            return Self::from_reader(&name, file);
        }
        Self::from_file(name, file)
    }

    /// A stream (stdin), spooled to an unnamed temporary file first: a zip's directory is at
    /// its end. Bounded as an `.npz` stream is.
    pub fn from_reader(name: &str, r: impl Read) -> Result<PtFile> {
        let mut r = r;
        let limit = crate::format::npz::MAX_SPOOL;
        let mut spool = tempfile::tempfile().context("cannot create a temporary file to spool the .pt")?;
        let got = std::io::copy(&mut (&mut r).take(limit), &mut spool).with_context(|| name.to_string())?;
        if got == limit && r.read(&mut [0u8; 1]).with_context(|| name.to_string())? > 0 {
            bail!(
                "{name}: a .pt on stdin is spooled up to {} GiB, and this one is longer: pass it as a file",
                limit >> 30
            );
        }
        spool.rewind()?;
        Self::from_file(name.to_string(), spool)
    }

    fn from_file(name: String, mut file: File) -> Result<PtFile> {
        let len = file.metadata().with_context(|| name.clone())?.len();
        let mut head = [0u8; 16];
        let n = file.read(&mut head).with_context(|| name.clone())?;
        file.rewind()?;
        if head[..n].starts_with(LEGACY_MAGIC) {
            bail!(
                "{name}: the legacy .pt format (torch < 1.6, or _use_new_zipfile_serialization=False) is not read: \
                 re-save it with torch.save in a current PyTorch"
            );
        }
        if !head[..n].starts_with(b"PK\x03\x04") {
            bail!("{name}: not a PyTorch .pt file: it is not a zip archive (torch.save writes one since 1.6)");
        }
        let mut zip = ZipArchive::new(file.try_clone()?)
            .map_err(|e| anyhow::anyhow!("{name}: not a readable .pt (zip) archive: {e}"))?;
        let names: Vec<String> = zip.file_names().map(String::from).collect();
        let pkl = names
            .iter()
            .filter(|n| n.ends_with("data.pkl") && n.matches('/').count() <= 1)
            .min_by_key(|n| n.len())
            .with_context(|| format!("{name}: a zip without data.pkl: not a torch.save file"))?
            .clone();
        let prefix = pkl[..pkl.len() - "data.pkl".len()].to_string();
        if names.iter().any(|n| n == &format!("{prefix}constants.pkl") || n.starts_with(&format!("{prefix}code/"))) {
            bail!("{name}: a TorchScript archive (torch.jit.save) is not read: save the tensors with torch.save");
        }
        let text = |zip: &mut ZipArchive<File>, entry: &str| -> Result<Option<String>> {
            let Ok(f) = zip.by_name(entry) else { return Ok(None) };
            let mut s = String::new();
            f.take(64).read_to_string(&mut s).with_context(|| format!("{name}: {entry}"))?;
            Ok(Some(s))
        };
        let order = match text(&mut zip, &format!("{prefix}byteorder"))?.as_deref().map(str::trim) {
            None | Some("little") => ByteOrder::Little,
            Some("big") => ByteOrder::Big,
            Some(o) => bail!("{name}: byteorder says {o:?}, not little or big"),
        };
        let bytes = {
            let f = zip.by_name(&pkl).with_context(|| format!("{name}: {pkl}"))?;
            if f.size() > MAX_PICKLE {
                bail!("{name}: data.pkl is {} bytes, over the {} MiB relu reads", f.size(), MAX_PICKLE >> 20);
            }
            let mut b = Vec::with_capacity(f.size() as usize);
            f.take(MAX_PICKLE).read_to_end(&mut b).with_context(|| format!("{name}: corrupt data.pkl"))?;
            b
        };
        let pickle = pickle::read(&bytes).map_err(|e| anyhow::anyhow!("{name}: refused: {e}"))?;
        let found = walk(&pickle).with_context(|| name.clone())?;
        let mut storages: Vec<Storage> = Vec::new();
        let mut by_key: HashMap<String, usize> = HashMap::new();
        let mut tensors = Vec::new();
        for (tname, record) in found {
            let key = record.storage.key.clone();
            let at = match by_key.get(&key) {
                Some(&i) => i,
                None => {
                    let entry = format!("{prefix}data/{key}");
                    let s = storage(&mut zip, &file, &entry, len)
                        .with_context(|| format!("{name}: storage {entry:?} of tensor {}", shown(&tname)))?;
                    storages.push(s);
                    by_key.insert(key, storages.len() - 1);
                    storages.len() - 1
                }
            };
            let dtype = record.storage.kind.dtype();
            check_bounds(&record, dtype.size() as u64, storages[at].len)
                .with_context(|| format!("{name}: tensor {}", shown(&tname)))?;
            tensors.push(PtTensor { name: tname, record, dtype, storage: at });
        }
        Ok(PtFile { name, pickle, tensors, storages, order })
    }

    /// `FILE:NAME`, or the file for a bare tensor.
    pub fn member_name(&self, t: &PtTensor) -> String {
        if t.name.is_empty() {
            self.name.clone()
        } else {
            format!("{}:{}", self.name, t.name)
        }
    }

    /// The tensors `name` picks, by index: the one so called, else those whose paths match it as
    /// a pattern (`glob`); none is an error listing those there are.
    pub fn select(&self, name: &str) -> Result<Vec<usize>> {
        let names: Vec<&str> = self.tensors.iter().map(|t| t.name.as_str()).collect();
        let picked = crate::glob::select(&names, name);
        if picked.is_empty() {
            let names: Vec<String> = self.tensors.iter().map(|t| shown(&t.name)).collect();
            anyhow::bail!("{}: no tensor {} (it holds {})", self.name, crate::quote::text(name), names.join(", "));
        }
        Ok(picked)
    }

    /// The tensor described as a `.npy` header would describe it, in C order ([`PtFile::source`]
    /// says Fortran order where it streams a view so).
    pub fn header(&self, t: &PtTensor) -> Header {
        let elements = t.record.shape.iter().product::<u64>();
        Header {
            version: (1, 0),
            dtype: Ok(t.dtype),
            descr: t.dtype.descr().to_string(),
            order: self.order,
            fortran_order: false,
            shape: t.record.shape.clone(),
            data_offset: self.storages[t.storage].start + t.record.offset * t.dtype.size() as u64,
            elements,
            data_bytes: Some(elements * t.dtype.size() as u64),
        }
    }

    /// The tensor's elements: a file region when contiguous in C or Fortran order (read as
    /// `chunks::file_source` reads, on all workers; a transposed matrix is a Fortran-order array, streamed in its
    /// storage's order as a Fortran `.npy` is), else gathered in C order from a map of its storage.
    pub fn source(&self, t: &PtTensor) -> Result<ArraySource<'static>> {
        let name = self.member_name(t);
        let mut header = self.header(t);
        let st = &self.storages[t.storage];
        let size = t.dtype.size() as u64;
        let r = &t.record;
        let c = is_contiguous(&r.shape, &r.strides);
        let fortran = !c && is_fortran_contiguous(&r.shape, &r.strides);
        if header.elements == 0 || fortran || c {
            header.fortran_order = fortran;
            let region = FileRegion {
                file: st.file.try_clone()?,
                start: st.start + r.offset * size,
                len: header.elements * size,
                mappable: true,
                align: crate::chunks::map_align(&header),
            };
            let data = region.range(0, region.len)?;
            return Ok(ArraySource { name, header, data, region: Some(region), transposed: false, member: None });
        }
        let view = StridedView::new(st, r, size as usize).with_context(|| name.clone())?;
        Ok(ArraySource { name, header, data: Box::new(view), region: None, transposed: false, member: None })
    }

    /// The container with the tensors picked (`picked[i]`: the i-th of [`PtFile::tensors`], or
    /// `None` to leave it out) replaced by new records: what a `.pt` output pickles.
    pub fn rebuild(&self, picked: &[Option<TensorRecord>]) -> Result<Out> {
        let mut n = 0;
        to_out(&self.pickle, self.pickle.root, picked, &mut n, 0)?
            .with_context(|| format!("{}: every tensor left out", self.name))
    }
}

/// A tensor's name for messages ("" shown as the bare tensor it is).
fn shown(name: &str) -> String {
    if name.is_empty() {
        "(the bare tensor)".into()
    } else {
        crate::quote::text(name)
    }
}

/// Where a storage entry's bytes lie: its own region of the file when stored; else inflated to
/// a temporary file (the zip reader checks the CRC as it goes).
fn storage(zip: &mut ZipArchive<File>, file: &File, entry: &str, file_len: u64) -> Result<Storage> {
    let f = zip.by_name(entry).map_err(|_| anyhow::anyhow!("the archive has no record {entry:?}"))?;
    match f.compression() {
        CompressionMethod::Stored => {
            let start = f.data_start().context("no data offset for the entry")?;
            let len = f.compressed_size();
            if start.checked_add(len).is_none_or(|end| end > file_len) {
                bail!("the entry runs past the end of the file (truncated)");
            }
            Ok(Storage { file: file.try_clone()?, start, len })
        }
        CompressionMethod::Deflated => {
            let mut spool = tempfile::tempfile().context("cannot create a temporary file")?;
            let mut f = f;
            let len = std::io::copy(&mut f, &mut spool).context("corrupt entry (bad deflate data or CRC-32)")?;
            Ok(Storage { file: spool, start: 0, len })
        }
        c => bail!("compression method {c} is not supported"),
    }
}

/// A tensor's elements must lie inside its storage: the highest element offset below `numel`,
/// and `numel` elements inside the entry.
fn check_bounds(r: &TensorRecord, size: u64, entry_len: u64) -> Result<()> {
    let have = entry_len / size;
    if r.storage.numel > have {
        bail!("its storage declares {} elements but its record holds {entry_len} bytes", r.storage.numel);
    }
    if r.shape.contains(&0) {
        return Ok(());
    }
    let mut last = Some(r.offset);
    for (&d, &s) in r.shape.iter().zip(&r.strides) {
        last = last.and_then(|l| (d - 1).checked_mul(s).and_then(|x| x.checked_add(l)));
    }
    match last {
        Some(l) if l < r.storage.numel => Ok(()),
        _ => bail!(
            "its view (offset {}, size {:?}, stride {:?}) runs past its storage of {} elements",
            r.offset,
            r.shape,
            r.strides,
            r.storage.numel
        ),
    }
}

/// Whether strides are C order's for the shape (axes of length 1 may have any stride).
pub fn is_contiguous(shape: &[u64], strides: &[u64]) -> bool {
    let mut want = 1u64;
    for (&d, &s) in shape.iter().zip(strides).rev() {
        if d != 1 && s != want {
            return false;
        }
        want = want.saturating_mul(d);
    }
    true
}

/// Whether strides are Fortran order's for the shape (the first axis fastest).
pub fn is_fortran_contiguous(shape: &[u64], strides: &[u64]) -> bool {
    let rev = |v: &[u64]| v.iter().rev().copied().collect::<Vec<u64>>();
    is_contiguous(&rev(shape), &rev(strides))
}

/// Fortran-order strides of a shape (the first axis fastest).
pub fn fortran_strides(shape: &[u64]) -> Vec<u64> {
    let rev: Vec<u64> = shape.iter().rev().copied().collect();
    c_strides(&rev).into_iter().rev().collect()
}

/// C-order strides of a shape.
pub fn c_strides(shape: &[u64]) -> Vec<u64> {
    let mut s = vec![1u64; shape.len()];
    for a in (0..shape.len().saturating_sub(1)).rev() {
        s[a] = s[a + 1] * shape[a + 1];
    }
    s
}

/// The tensors of a container, named by path, in walk order.
fn walk(p: &Pickle) -> Result<Vec<(String, TensorRecord)>> {
    let mut out = Vec::new();
    let mut visits = 0;
    walk_at(p, p.root, String::new(), 0, &mut visits, &mut out)?;
    Ok(out)
}

fn walk_at(
    p: &Pickle,
    id: Id,
    path: String,
    depth: usize,
    visits: &mut usize,
    out: &mut Vec<(String, TensorRecord)>,
) -> Result<()> {
    *visits += 1;
    if depth > pickle::MAX_DEPTH || *visits > MAX_VISITS {
        bail!("the container nests deeper than {} levels or refers to itself", pickle::MAX_DEPTH);
    }
    let join = |k: &str| if path.is_empty() { k.to_string() } else { format!("{path}.{k}") };
    match p.get(id) {
        Value::Tensor(t) => out.push((path, t.clone())),
        Value::List(v) | Value::Tuple(v) => {
            for (i, &x) in v.iter().enumerate() {
                walk_at(p, x, join(&i.to_string()), depth + 1, visits, out)?;
            }
        }
        Value::Dict { items, .. } => {
            for &(k, x) in items {
                walk_at(p, x, join(&key_name(p, k)?), depth + 1, visits, out)?;
            }
        }
        Value::Storage(_) => bail!("a bare storage (not a tensor) is not read"),
        Value::Global(_) => bail!("the container holds a class or function object, which is not read"),
        _ => {}
    }
    Ok(())
}

/// A dict key as a path component: a string as it is, a number in decimal.
fn key_name(p: &Pickle, k: Id) -> Result<String> {
    Ok(match p.get(k) {
        Value::Str(s) => s.clone(),
        Value::Int(i) => i.to_string(),
        Value::Bool(b) => if *b { "True" } else { "False" }.to_string(),
        Value::None => "None".to_string(),
        Value::Float(f) => f.to_string(),
        _ => bail!("a dict key that is not a string or a number cannot name a tensor"),
    })
}

fn to_out(p: &Pickle, id: Id, picked: &[Option<TensorRecord>], n: &mut usize, depth: usize) -> Result<Option<Out>> {
    if depth > pickle::MAX_DEPTH {
        bail!("the container nests deeper than {} levels", pickle::MAX_DEPTH);
    }
    let seq = |v: &[Id], n: &mut usize| -> Result<Vec<Out>> {
        let mut o = Vec::new();
        for &x in v {
            if let Some(x) = to_out(p, x, picked, n, depth + 1)? {
                o.push(x);
            }
        }
        Ok(o)
    };
    Ok(Some(match p.get(id) {
        Value::None => Out::None,
        Value::Bool(b) => Out::Bool(*b),
        Value::Int(i) => Out::Int(*i),
        Value::Float(f) => Out::Float(*f),
        Value::Str(s) => Out::Str(s.clone()),
        Value::Bytes(b) => Out::Bytes(b.clone()),
        Value::Tensor(_) => {
            let t = picked.get(*n).cloned().flatten();
            *n += 1;
            return Ok(t.map(Out::Tensor));
        }
        Value::List(v) => Out::List(seq(v, n)?),
        Value::Tuple(v) => Out::Tuple(seq(v, n)?),
        Value::Dict { items, ordered, state } => {
            let mut o = Vec::new();
            for &(k, x) in items {
                if let Some(x) = to_out(p, x, picked, n, depth + 1)? {
                    let k = to_out(p, k, &[], &mut 0, depth + 1)?.context("a dict key")?;
                    o.push((k, x));
                }
            }
            // the metadata holds no tensors: kept as read
            let state = match state {
                Some(s) => to_out(p, *s, &[], &mut 0, depth + 1)?.map(Box::new),
                None => None,
            };
            Out::Dict { items: o, ordered: *ordered, state }
        }
        Value::Storage(_) | Value::Global(_) => bail!("internal error: a storage or global in a container"),
    }))
}

/// A strided view's elements in C order, gathered from a read-only map of its storage: runs of
/// the last axis copied whole when its stride is 1, else element by element with an odometer.
struct StridedView {
    map: memmap2::Mmap,
    size: usize,
    /// The axes the odometer turns (all but the last when it is a contiguous run).
    shape: Vec<u64>,
    strides: Vec<u64>,
    idx: Vec<u64>,
    /// The element offset of the current run's first element, and the run's length and progress.
    off: u64,
    run: u64,
    in_run: u64,
    buf: Vec<u8>,
}

impl StridedView {
    fn new(st: &Storage, r: &TensorRecord, size: usize) -> Result<StridedView> {
        // SAFETY: a read-only private map of a region checked to lie in the file; a file
        // truncated meanwhile could raise SIGBUS, as any mmap reader would.
        let map = unsafe { memmap2::MmapOptions::new().offset(st.start).len(st.len as usize).map(&st.file)? };
        let (mut shape, mut strides) = (r.shape.clone(), r.strides.clone());
        let run = if strides.last() == Some(&1) {
            strides.pop();
            shape.pop().unwrap_or(1)
        } else {
            1
        };
        let idx = vec![0; shape.len()];
        Ok(StridedView { map, size, shape, strides, idx, off: r.offset, run, in_run: 0, buf: Vec::new() })
    }
}

impl ChunkSource for StridedView {
    fn next_chunk(&mut self, len: usize) -> Result<&[u8]> {
        let s = self.size;
        self.buf.clear();
        let mut left = (len / s) as u64;
        while left > 0 {
            let k = (self.run - self.in_run).min(left);
            let at = ((self.off + self.in_run) as usize) * s;
            let bytes = self.map.get(at..at + k as usize * s).context("internal error: a view past its storage")?;
            self.buf.extend_from_slice(bytes);
            left -= k;
            self.in_run += k;
            if self.in_run == self.run {
                self.in_run = 0;
                // the next run
                crate::chunks::odometer_step(&mut self.idx, &self.shape, &self.strides, &mut self.off);
            }
        }
        Ok(&self.buf)
    }
}

/// Writes a `.pt` as `torch.save` does: `archive/data.pkl`, then one stored entry per storage
/// (64-byte aligned, as torch aligns them; CRC-32 computed as the data streams through), then
/// `byteorder` and `version`.
pub struct PtWriter<W: Write + Seek> {
    zip: ZipWriter<W>,
    /// Storages started so far.
    storages: usize,
}

const ARCHIVE: &str = "archive";

impl<W: Write + Seek> PtWriter<W> {
    /// Starts the archive with its pickle.
    pub fn new(w: W, tree: &Out) -> Result<Self> {
        let mut zip = ZipWriter::new(w);
        zip.start_file(format!("{ARCHIVE}/data.pkl"), options(0))?;
        zip.write_all(&pickle::Writer::pickle(tree))?;
        Ok(PtWriter { zip, storages: 0 })
    }

    /// Starts storage `key` of `bytes` bytes; its data is then written through [`PtWriter::writer`],
    /// or at positions (see [`PtWriter::written_at`]).
    pub fn start_storage(&mut self, key: &str, bytes: u64) -> Result<()> {
        self.zip.start_file(format!("{ARCHIVE}/data/{key}"), options(bytes).with_alignment(64))?;
        self.storages += 1;
        Ok(())
    }

    /// Declares the started storage's data as written by the caller at positions, through
    /// another handle of the same file description (so that all workers write their ranges in
    /// place, and nothing is copied through the zip writer): `bytes` bytes with CRC-32 `crc`. The
    /// caller leaves the file's offset at the data's end, where the zip writer goes on.
    pub fn written_at(&mut self, bytes: u64, crc: u32) -> Result<()> {
        // SAFETY: not a memory-safety contract: the crate marks it unsafe because it replaces the
        // CRC and length of the data that did not go through it, which is what happened here
        unsafe { self.zip.set_file_metadata(bytes, crc)? };
        Ok(())
    }

    /// How many storages were started: the next one's key, when they are keyed `0`, `1`, ….
    pub fn storages(&self) -> usize {
        self.storages
    }

    pub fn writer(&mut self) -> &mut ZipWriter<W> {
        &mut self.zip
    }

    /// The closing records and the zip's directory.
    pub fn finish(mut self) -> Result<W> {
        for (entry, text) in [("byteorder", "little"), ("version", "3\n")] {
            self.zip.start_file(format!("{ARCHIVE}/{entry}"), options(0))?;
            self.zip.write_all(text.as_bytes())?;
        }
        Ok(self.zip.finish()?)
    }
}

fn options(bytes: u64) -> zip::write::SimpleFileOptions {
    zip::write::SimpleFileOptions::default()
        .compression_method(CompressionMethod::Stored)
        .large_file(bytes >= u32::MAX as u64)
        .unix_permissions(0o644)
}

/// A fresh contiguous record for an output tensor: its own storage `key`.
pub fn record_for(dtype: DType, shape: &[u64], key: String, like: &TensorRecord) -> Result<TensorRecord> {
    let kind = StorageKind::of_dtype(dtype)
        .with_context(|| format!("PyTorch has no typed storage for {dtype}: pick another --dtype for a .pt output"))?;
    Ok(TensorRecord {
        storage: StorageRecord { kind, key, numel: shape.iter().product() },
        offset: 0,
        shape: shape.to_vec(),
        strides: c_strides(shape),
        requires_grad: like.requires_grad,
        parameter: like.parameter,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contiguity_ignores_axes_of_one() {
        assert!(is_contiguous(&[2, 3], &[3, 1]));
        assert!(is_contiguous(&[2, 1, 3], &[3, 99, 1]));
        assert!(!is_contiguous(&[3, 2], &[1, 3]));
        assert!(is_contiguous(&[], &[]));
        assert_eq!(c_strides(&[2, 3, 4]), vec![12, 4, 1]);
    }

    fn rec(offset: u64, shape: &[u64], strides: &[u64], numel: u64) -> TensorRecord {
        TensorRecord {
            storage: StorageRecord { kind: StorageKind::Float, key: "0".into(), numel },
            offset,
            shape: shape.to_vec(),
            strides: strides.to_vec(),
            requires_grad: false,
            parameter: false,
        }
    }

    #[test]
    fn views_past_their_storage_are_refused() {
        assert!(check_bounds(&rec(0, &[2, 3], &[3, 1], 6), 4, 24).is_ok());
        assert!(check_bounds(&rec(1, &[2, 3], &[3, 1], 6), 4, 24).is_err());
        assert!(check_bounds(&rec(0, &[2, 3], &[3, 1], 6), 4, 20).is_err(), "entry shorter than numel");
        assert!(check_bounds(&rec(0, &[2, u64::MAX], &[u64::MAX, 1], 6), 4, 24).is_err());
        assert!(check_bounds(&rec(99, &[0, 3], &[3, 1], 6), 4, 24).is_ok(), "empty: nothing is read");
    }
}
