//! One array's bytes, wherever they lie: [`ArraySource`] (a header and a source positioned at
//! the data), [`FileRegion`] (where parallel workers read their own ranges), and the chunk
//! sources that hand the bytes out (positional reads of a file region, a sliding memory map, any
//! reader, a Fortran-ordered array seen in C order), into [`AlignedBuf`]s of [`CHUNK_BYTES`].
//! Below both the containers of `format/` (a `.safetensors` tensor is a region of its file) and
//! `source.rs` (which opens inputs).

use crate::dtype::ByteOrder;
use crate::format::npy::{self, Header};
use crate::options::ArrayInfo;
use anyhow::{bail, Context, Result};
use bytemuck::{cast_slice, cast_slice_mut};
use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;

/// Bytes of input per chunk: small enough to stay in L2, large enough to amortize syscalls.
pub const CHUNK_BYTES: usize = 256 * 1024;

/// An 8-byte-aligned scratch buffer, allocated (zeroed) once, on first use: a pipeline makes
/// buffers for every path it might take (alignment, conversion, output), and a directory of small
/// files would otherwise zero megabytes it never touches for each file.
pub struct AlignedBuf {
    words: usize,
    buf: std::cell::OnceCell<Vec<u64>>,
}

impl AlignedBuf {
    pub fn new(bytes: usize) -> Self {
        AlignedBuf { words: bytes.div_ceil(8), buf: std::cell::OnceCell::new() }
    }
    pub fn bytes(&self) -> &[u8] {
        cast_slice(self.buf.get_or_init(|| vec![0; self.words]))
    }
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        let words = self.words;
        self.buf.get_or_init(|| vec![0; words]);
        cast_slice_mut(self.buf.get_mut().expect("made above"))
    }
}

/// One array's data: its header, and a source positioned at its first byte.
pub struct ArraySource<'a> {
    pub name: String,
    pub header: Header,
    pub data: Box<dyn ChunkSource + 'a>,
    /// The data's place in a file, for workers that read their own ranges (`None` for streams).
    pub region: Option<FileRegion>,
    /// The data was Fortran-ordered and is handed out in C order ([`ArraySource::into_c_order`]):
    /// the header now describes the order the elements stream in.
    pub transposed: bool,
    /// The member's key when the array is a member of an `.npz` (names a tensor written from it).
    pub member: Option<String>,
}

impl<'a> ArraySource<'a> {
    /// A `.npy` stream from any reader (stdin, an `.npz` member).
    pub fn from_reader(name: &str, mut r: impl Read + 'a) -> Result<ArraySource<'a>> {
        let name = name.to_string();
        let header = npy::read_header(&mut r).with_context(|| name.clone())?;
        header.dtype().with_context(|| name.clone())?;
        let total = header.data_bytes.unwrap_or(0);
        Ok(ArraySource {
            name,
            header,
            data: Box::new(ReadSource::new(r, total)),
            region: None,
            transposed: false,
            member: None,
        })
    }

    /// A `.npy` file, checked to hold the data its header promises.
    pub fn open(path: &Path) -> Result<ArraySource<'static>> {
        Self::open_with(path, true)
    }

    /// [`ArraySource::open`] for `--in-place`, which writes the bytes it reads: never through a
    /// memory map (not even with `RELU_READ=mmap`), as writing the file under a live `&[u8]` of its map would
    /// change memory Rust assumes immutable (undefined behaviour). Reads copy into a buffer.
    pub fn open_for_rewrite(path: &Path) -> Result<ArraySource<'static>> {
        Self::open_with(path, false)
    }

    fn open_with(path: &Path, mappable: bool) -> Result<ArraySource<'static>> {
        let name = path.display().to_string();
        let mut file = File::open(path).with_context(|| name.clone())?;
        let header = npy::read_header(&mut file).with_context(|| name.clone())?;
        let len = npy::check_length(&file, &header).with_context(|| name.clone())?;
        let align = map_align(&header);
        let region = FileRegion { file, start: header.data_offset, len, mappable, align };
        let data = region.range(0, len)?;
        Ok(ArraySource { name, header, data, region: Some(region), transposed: false, member: None })
    }

    /// What the plan needs to know of the array.
    pub fn info(&self) -> Result<ArrayInfo> {
        let h = &self.header;
        Ok(ArrayInfo { dtype: h.dtype()?, order: h.order, shape: h.shape.clone(), fortran: h.fortran_order })
    }

    /// The same array with its data handed out in C order (for CSV rows, `.safetensors`): a
    /// Fortran-ordered array with more than one dimension longer than 1 is read through a
    /// transposing view. Its header then says C order, so that everything planned from it
    /// (PReLU channels, statistics units) places elements as they now stream: plan after this.
    pub fn into_c_order(mut self) -> Result<ArraySource<'a>> {
        let h = &self.header;
        if !h.fortran_order || h.shape.iter().filter(|&&d| d > 1).count() <= 1 {
            return Ok(self);
        }
        let view = FortranAsC::new(&mut self).with_context(|| self.name.clone())?;
        self.data = Box::new(view);
        self.header.fortran_order = false;
        self.region = None;
        self.transposed = true;
        Ok(self)
    }
}

impl<'a> ArraySource<'a> {
    /// The elements in Fortran order (first index fastest), for an upstream that must follow a
    /// Fortran-order input as it streams. A C-order array of shape S holds the bytes of a
    /// Fortran-order array of S reversed, whose C-order view is S's Fortran order.
    pub fn into_fortran_order(mut self) -> Result<ArraySource<'a>> {
        let h = &self.header;
        if h.fortran_order || h.shape.iter().filter(|&&d| d > 1).count() <= 1 {
            return Ok(self);
        }
        let shape = h.shape.clone();
        self.header.shape.reverse();
        self.header.fortran_order = true;
        let mut s = self.into_c_order()?;
        s.header.shape = shape;
        s.header.fortran_order = true;
        s.transposed = false;
        Ok(s)
    }
}

/// A region of a file: where parallel workers read their own ranges from.
pub struct FileRegion {
    pub file: File,
    /// The region's first byte in the file, and its length.
    pub start: u64,
    pub len: u64,
    /// Whether it may be read through a memory map (not when the same file is being written).
    pub mappable: bool,
    /// The alignment its start needs for a map to pay ([`map_align`]).
    pub align: u64,
}

/// The file offset alignment at which data of `header`'s type is mapped: 1 for little-endian
/// f32 and f64, which the kernels read where they lie ([`DType::reads_unaligned`]), else the
/// element size. Data off it would be copied aligned chunk by chunk, where a read lands it
/// aligned for the same copy (a `.pt` of 512 MiB f32 at offset 339: 0.102 s mapped and copied,
/// 0.087 s read; mapped and read unaligned, 0.073 s).
pub fn map_align(header: &Header) -> u64 {
    match header.dtype {
        Ok(d) if d.reads_unaligned() && header.order == ByteOrder::Little => 1,
        Ok(d) => d.size() as u64,
        Err(_) => 8,
    }
}

impl FileRegion {
    /// A source for the bytes `[a, b)` of the region.
    pub fn range(&self, a: u64, b: u64) -> Result<Box<dyn ChunkSource>> {
        let (file, a, b) = (self.file.try_clone()?, self.start + a, self.start + b);
        Ok(if self.mappable { file_source(file, a, b, self.align) } else { Box::new(PreadSource::new(file, a, b)) })
    }
}

/// Hands out the input's data bytes in chunks.
pub trait ChunkSource {
    /// The next `len` bytes. An error if the input ends first.
    fn next_chunk(&mut self, len: usize) -> Result<&[u8]>;

    /// Whether the chunks are views of a memory map.
    fn is_mapped(&self) -> bool {
        false
    }
}

/// A file's data region, read through a sliding memory map: no copy into a buffer, and only a
/// window of the file is mapped at a time, so resident memory stays bounded (a window a worker).
/// The kernel prefetches ahead of each block, so the map streams from memory while it computes.
/// Where the file system cannot map, the source falls back to positional reads.
pub struct MmapSource {
    file: File,
    pos: u64,
    end: u64,
    map: Option<(u64, memmap2::Mmap)>,
    fallback: Option<PreadSource>,
}

/// Bytes mapped at a time (made present at once, [`touch`]). 4 MiB measured as 8 and 32 (2 MiB
/// and less slower); one window per worker is resident.
const WINDOW: u64 = 4 << 20;

/// The kernel's prefetches are dropped on pages not yet in the page table, so a window is made
/// present when it is mapped: one read every 64 KiB, each fault mapping its 64 KiB around it
/// (Linux's `fault_around_bytes`). Cheaper than `MAP_POPULATE`, which walks every page (apply's
/// populate 16% of its CPU against the faults' 12.7%; bf16 `stats` 0.127 against 0.139 s, measured).
fn touch(m: &[u8]) {
    for i in (0..m.len()).step_by(64 << 10) {
        // SAFETY: in bounds; a volatile read, so that it is not optimized away
        unsafe { std::ptr::read_volatile(m.as_ptr().add(i)) };
    }
}

impl MmapSource {
    /// The bytes `[start, end)` of `file`; the caller has checked the file is that long.
    pub fn new(file: File, start: u64, end: u64) -> Self {
        MmapSource { file, pos: start, end, map: None, fallback: None }
    }
}

impl ChunkSource for MmapSource {
    fn is_mapped(&self) -> bool {
        self.fallback.is_none()
    }

    fn next_chunk(&mut self, len: usize) -> Result<&[u8]> {
        if self.fallback.is_none() {
            self.window_for(len)?;
        }
        if let Some(p) = &mut self.fallback {
            return p.next_chunk(len);
        }
        let (pos, len64) = (self.pos, len as u64);
        self.pos += len64;
        match &self.map {
            Some((s, m)) => {
                let off = (pos - s) as usize;
                Ok(&m[off..off + len])
            }
            None => Ok(&[]), // nothing to map: an empty chunk
        }
    }
}

impl MmapSource {
    /// Maps the window that holds the next `len` bytes, unless the current one does; where the
    /// file cannot be mapped, switches to positional reads from here on.
    fn window_for(&mut self, len: usize) -> Result<()> {
        let (pos, len64) = (self.pos, len as u64);
        if pos + len64 > self.end {
            bail!("data ends early: the file was truncated while being read");
        }
        let in_map = matches!(&self.map, Some((s, m)) if pos >= *s && pos + len64 <= *s + m.len() as u64);
        if in_map {
            return Ok(());
        }
        self.map = None; // unmap the old window first: bounded resident memory
        let page = 4096u64;
        let start = pos / page * page;
        let map_len = (WINDOW.max(pos + len64 - start)).min(self.end - start);
        if map_len == 0 {
            return Ok(());
        }
        // SAFETY: the map is read-only. What another process does to the file meanwhile reaches
        // it, as it reaches any mmap reader (ripgrep's, NumPy's `mmap_mode`): a truncation
        // raises SIGBUS, which `output` turns into a clean exit (docs/reliability.md); a
        // concurrent write changes bytes under a live `&[u8]` (then the results are as
        // undefined as a `pread` racing the writer would make them).
        let m = unsafe { memmap2::MmapOptions::new().offset(start).len(map_len as usize).map(&self.file) };
        match m {
            Ok(m) => {
                #[cfg(unix)]
                let _ = m.advise(memmap2::Advice::Sequential);
                touch(&m);
                self.map = Some((start, m));
            }
            // a file system that cannot map (some FUSE and network mounts): read instead
            Err(_) => self.fallback = Some(PreadSource::new(self.file.try_clone()?, pos, self.end)),
        }
        Ok(())
    }
}

/// A file's data region read with positional reads into one aligned buffer: small regions (a
/// memory map pays for its setup and teardown only over a window or more), unaligned data,
/// `--in-place` rewrites, Windows, and `RELU_READ=pread`.
pub struct PreadSource {
    file: File,
    pos: u64,
    end: u64,
    buf: AlignedBuf,
}

impl PreadSource {
    /// The bytes `[start, end)` of `file`; the caller has checked the file is that long.
    pub fn new(file: File, start: u64, end: u64) -> Self {
        PreadSource { file, pos: start, end, buf: AlignedBuf::new(CHUNK_BYTES) }
    }
}

impl ChunkSource for PreadSource {
    fn next_chunk(&mut self, len: usize) -> Result<&[u8]> {
        use crate::platform::FileAt;
        if self.pos + len as u64 > self.end {
            bail!("data ends early: the file was truncated while being read");
        }
        if self.buf.bytes().len() < len {
            self.buf = AlignedBuf::new(len);
        }
        let buf = &mut self.buf.bytes_mut()[..len];
        self.file.read_exact_at(buf, self.pos).map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                anyhow::anyhow!("data ends early: the file was truncated while being read")
            } else {
                e.into()
            }
        })?;
        self.pos += len as u64;
        Ok(&self.buf.bytes()[..len])
    }
}

/// How a file's data region `[start, end)` is read: on unix, a memory map from one [`WINDOW`]
/// up (as ripgrep maps large files and reads small ones) where `start` is a multiple of `align`
/// ([`map_align`]), else positional reads. `RELU_READ=mmap` or
/// `pread` forces one (benchmarks, tests, a file system where maps misbehave).
pub fn file_source(file: File, start: u64, end: u64, align: u64) -> Box<dyn ChunkSource> {
    if maps(std::env::var_os("RELU_READ").as_deref(), start, end.saturating_sub(start), align) {
        Box::new(MmapSource::new(file, start, end))
    } else {
        Box::new(PreadSource::new(file, start, end))
    }
}

/// Whether [`file_source`] maps the `len` bytes from `start`, given `RELU_READ`: not data off
/// `align` (a zip member after an odd-length name, an odd `.safetensors` header, of a type the
/// kernels cannot read there).
fn maps(forced: Option<&std::ffi::OsStr>, start: u64, len: u64, align: u64) -> bool {
    match forced {
        Some(v) if v == "mmap" => true,
        Some(v) if v == "pread" => false,
        // (unix only: Windows keeps a mapped file from being replaced, and `-o` may name the input)
        _ => cfg!(unix) && len >= WINDOW && start.is_multiple_of(align.max(1)),
    }
}

/// Any reader (stdin, a pipe), through one aligned buffer.
pub struct ReadSource<R> {
    r: R,
    buf: AlignedBuf,
    read: u64,
    total: u64,
}

impl<R: Read> ReadSource<R> {
    pub fn new(r: R, total: u64) -> Self {
        ReadSource { r, buf: AlignedBuf::new(CHUNK_BYTES), read: 0, total }
    }
}

impl<R: Read> ChunkSource for ReadSource<R> {
    fn next_chunk(&mut self, len: usize) -> Result<&[u8]> {
        if self.buf.bytes().len() < len {
            self.buf = AlignedBuf::new(len);
        }
        let buf = &mut self.buf.bytes_mut()[..len];
        let mut got = 0;
        while got < len {
            match self.r.read(&mut buf[got..]) {
                Ok(0) => bail!("truncated: the data ends after {} of {} bytes", self.read + got as u64, self.total),
                Ok(k) => got += k,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        self.read += len as u64;
        Ok(&self.buf.bytes()[..len])
    }
}

/// A Fortran-ordered array's data handed out in C order, for CSV rows. The data is memory-mapped
/// (a file's own data region, or a spool of a stream) and gathered element by element with an
/// odometer over the shape, so no second copy of the array is held in memory.
struct FortranAsC {
    map: memmap2::Mmap,
    base: usize,
    size: usize,
    shape: Vec<u64>,
    /// Fortran strides in elements, per axis.
    strides: Vec<u64>,
    idx: Vec<u64>,
    off: u64,
    buf: Vec<u8>,
}

/// One step of a C-order walk over `shape` (the last axis turns fastest), keeping `off`, the
/// element offset under `strides`, in step with the index `idx`.
pub fn odometer_step(idx: &mut [u64], shape: &[u64], strides: &[u64], off: &mut u64) {
    for a in (0..shape.len()).rev() {
        idx[a] += 1;
        *off += strides[a];
        if idx[a] < shape[a] {
            return;
        }
        *off -= strides[a] * shape[a];
        idx[a] = 0;
    }
}

impl FortranAsC {
    fn new(input: &mut ArraySource) -> Result<FortranAsC> {
        let h = &input.header;
        let size = h.dtype()?.size();
        let bytes = h.elements as usize * size;
        let (file, base) = match &input.region {
            Some(r) => (r.file.try_clone()?, r.start as usize),
            None => {
                let mut spool = tempfile::tempfile().context("cannot create a temporary file")?;
                let mut left = bytes;
                while left > 0 {
                    let n = left.min(CHUNK_BYTES);
                    spool.write_all(input.data.next_chunk(n)?)?;
                    left -= n;
                }
                (spool, 0)
            }
        };
        // SAFETY: read-only private map; a file truncated meanwhile could raise SIGBUS, as any
        // mmap reader would.
        let map = unsafe { memmap2::MmapOptions::new().map(&file)? };
        if map.len() < base + bytes {
            bail!("data ends early: the file was truncated while being read");
        }
        let shape = h.shape.clone();
        let mut strides = vec![1u64; shape.len()];
        for a in 1..shape.len() {
            strides[a] = strides[a - 1] * shape[a - 1];
        }
        let idx = vec![0; shape.len()];
        Ok(FortranAsC { map, base, size, shape, strides, idx, off: 0, buf: Vec::new() })
    }
}

impl ChunkSource for FortranAsC {
    fn next_chunk(&mut self, len: usize) -> Result<&[u8]> {
        let s = self.size;
        self.buf.clear();
        for _ in 0..len / s {
            let at = self.base + self.off as usize * s;
            self.buf.extend_from_slice(&self.map[at..at + s]);
            odometer_step(&mut self.idx, &self.shape, &self.strides, &mut self.off);
        }
        Ok(&self.buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `--in-place` writes the file it reads: its source is never a memory map, even where a
    /// plain read of the same file is one (a window or more, on unix).
    #[test]
    fn a_source_for_rewriting_is_never_mapped() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x.npy");
        let len = WINDOW as usize / 8 + 4096;
        let mut bytes = npy::write_header(crate::dtype::DType::F64, false, &[len as u64]);
        bytes.resize(bytes.len() + len * 8, 0);
        std::fs::write(&p, bytes).unwrap();
        // (RELU_READ, when a run sets it, applies to the plain read only; no test sets it: the
        // tests run on threads, and one setting it would race with the others' reads of it)
        let forced = std::env::var_os("RELU_READ");
        let mapped = ArraySource::open(&p).unwrap();
        let rewrite = ArraySource::open_for_rewrite(&p).unwrap();
        let plain = maps(forced.as_deref(), mapped.header.data_offset, 8 * len as u64, 8);
        assert_eq!(mapped.data.is_mapped(), plain, "a plain read of a large file");
        assert!(!rewrite.data.is_mapped());
        let r = rewrite.region.as_ref().unwrap();
        assert!(!r.range(0, r.len).unwrap().is_mapped(), "the workers' ranges are not mapped either");
    }

    /// Unforced, a region of a window or more is mapped and a smaller one read; a file that
    /// cannot be mapped is read instead (here `/dev/null`, whose read then ends early).
    #[test]
    fn large_regions_are_mapped_and_unmappable_files_read() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("big");
        std::fs::write(&p, vec![7u8; WINDOW as usize + 4096]).unwrap();
        let f = || File::open(&p).unwrap();
        assert!(maps(None, 64, WINDOW, 8) == cfg!(unix) && !maps(None, 64, WINDOW - 1, 8));
        // off its alignment only where the kernels read the type there
        assert!(!maps(None, 339, WINDOW, 4) && !maps(None, 2, WINDOW, 4) && maps(None, 6, WINDOW, 2) == cfg!(unix));
        assert!(maps(None, 339, WINDOW, 1) == cfg!(unix));
        assert!(maps(Some("mmap".as_ref()), 339, 1, 8) && !maps(Some("pread".as_ref()), 0, WINDOW, 1));
        assert!(maps(Some("other".as_ref()), 0, WINDOW, 8) == cfg!(unix));
        let mut m = MmapSource::new(f(), 100, 100 + WINDOW);
        assert_eq!(m.next_chunk(1000).unwrap(), &[7u8; 1000][..]);
        assert!(m.is_mapped());
        #[cfg(unix)]
        {
            let mut null = MmapSource::new(File::open("/dev/null").unwrap(), 0, 4096);
            let e = null.next_chunk(16).unwrap_err().to_string();
            assert!(!null.is_mapped() && e.contains("ends early"), "{e}");
        }
    }
}
