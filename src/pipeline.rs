//! Reader → kernel → writer, one chunk at a time, with buffers allocated once.
//!
//! A [`Plan`] says what to compute for one array (types, activation, slopes); a [`ChunkProcessor`]
//! turns a chunk of input bytes (and upstream bytes) into a chunk of output bytes; [`stream`]
//! drives a [`ChunkSource`] through it into a writer. Sources hand out slices straight from a
//! memory map when they can, so the common case touches each input byte once.

use crate::act::{self, Activation, Func};
use crate::dtype::{ByteOrder, DType};
use crate::kernel::{ChunkStats, Kernel, Op, Slope};
use crate::stats::StatsAccumulator;
use anyhow::{bail, Result};
use bytemuck::{cast_slice, cast_slice_mut, Pod};
use std::fs::File;
use std::io::{Read, Write};

/// Bytes of input per chunk: small enough to stay in L2, large enough to amortize syscalls.
pub const CHUNK_BYTES: usize = 256 * 1024;

/// An 8-byte-aligned scratch buffer, allocated once.
pub struct AlignedBuf(Vec<u64>);

impl AlignedBuf {
    pub fn new(bytes: usize) -> Self {
        AlignedBuf(vec![0; bytes.div_ceil(8)])
    }
    pub fn bytes(&self) -> &[u8] {
        cast_slice(&self.0)
    }
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        cast_slice_mut(&mut self.0)
    }
}

/// PReLU's slopes, one per channel, and where the channel index sits in the flat element order.
#[derive(Clone, Debug)]
pub struct Channels {
    /// Slopes already rounded to the input's float type (as PyTorch's weight tensor), as f64.
    pub slopes: Vec<f64>,
    /// Consecutive elements (in file order) that share one channel.
    pub inner: u64,
}

/// What to compute for one array.
#[derive(Clone, Debug)]
pub struct Plan {
    pub input: DType,
    pub input_order: ByteOrder,
    /// The type the activation runs in: the input's own for floats, `--dtype`'s for integers.
    pub work: DType,
    pub output: DType,
    pub output_order: ByteOrder,
    /// The function; `None` passes values through as they are (statistics of the input).
    pub act: Option<Activation>,
    /// leaky's slope as given (rounded to the working type at use).
    pub slope: f64,
    /// prelu's per-channel slopes; `None` with one slope for all (in `slope`).
    pub channels: Option<Channels>,
    /// The upstream gradient's byte order, when there is one (its type is `work`).
    pub upstream: Option<ByteOrder>,
}

/// Turns chunks of input bytes into chunks of output bytes.
pub struct ChunkProcessor {
    plan: Plan,
    kernel: Kernel,
    /// Elements per chunk.
    pub chunk_elems: usize,
    aligned_in: AlignedBuf,
    aligned_up: AlignedBuf,
    work: AlignedBuf,
    up: AlignedBuf,
    slopes: AlignedBuf,
    y: AlignedBuf,
    out: AlignedBuf,
    /// Per-channel slopes in the working type's compute type (f32 for f16), as bytes.
    channel_slopes: AlignedBuf,
    /// Statistics gathered in the kernel's pass, when asked for.
    stats: Option<StatsAccumulator>,
}

impl ChunkProcessor {
    pub fn new(plan: Plan, kernel: Kernel, stats: Option<StatsAccumulator>) -> Self {
        let widest = plan.input.size().max(plan.work.size()).max(plan.output.size()).max(4);
        let chunk_elems = CHUNK_BYTES / widest;
        let cap = chunk_elems * 8;
        let channel_slopes = match &plan.channels {
            Some(ch) => {
                let mut b = AlignedBuf::new(ch.slopes.len() * 8);
                if plan.work == DType::F64 {
                    cast_slice_mut::<u8, f64>(&mut b.bytes_mut()[..ch.slopes.len() * 8]).copy_from_slice(&ch.slopes);
                } else {
                    for (d, &s) in
                        cast_slice_mut::<u8, f32>(&mut b.bytes_mut()[..ch.slopes.len() * 4]).iter_mut().zip(&ch.slopes)
                    {
                        *d = s as f32;
                    }
                }
                b
            }
            None => AlignedBuf::new(0),
        };
        let has_slopes = plan.channels.is_some();
        ChunkProcessor {
            chunk_elems,
            aligned_in: AlignedBuf::new(cap),
            aligned_up: AlignedBuf::new(if plan.upstream.is_some() { cap } else { 0 }),
            work: AlignedBuf::new(cap),
            up: AlignedBuf::new(if plan.upstream.is_some() { cap } else { 0 }),
            slopes: AlignedBuf::new(if has_slopes { cap } else { 0 }),
            y: AlignedBuf::new(cap),
            out: AlignedBuf::new(cap),
            channel_slopes,
            stats,
            plan,
            kernel,
        }
    }

    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// A processor for the same plan with its own buffers and an empty accumulator (for workers).
    pub fn fork(&self) -> ChunkProcessor {
        ChunkProcessor::new(self.plan.clone(), self.kernel, self.stats.as_ref().map(|s| s.fresh()))
    }

    /// The statistics gathered so far (when created with an accumulator).
    pub fn stats(&self) -> Option<&StatsAccumulator> {
        self.stats.as_ref()
    }

    /// Moves the statistics gathered so far into `dst` and starts over empty, reusing `dst`'s
    /// old accumulator when there is one (no allocation once both exist).
    pub fn take_stats_into(&mut self, dst: &mut Option<StatsAccumulator>) {
        let Some(s) = &mut self.stats else { return };
        match dst {
            Some(d) => {
                std::mem::swap(s, d);
                s.clear();
            }
            None => *dst = Some(std::mem::replace(s, s.fresh())),
        }
    }

    /// Processes `n` elements whose input bytes are `x` (and upstream bytes `g`), the first of
    /// them at flat index `start`. Returns the output bytes.
    pub fn process(&mut self, x: &[u8], g: Option<&[u8]>, start: u64) -> &[u8] {
        let plan = &self.plan;
        let n = x.len() / plan.input.size();
        debug_assert!(n <= self.chunk_elems);
        let ws = plan.work.size();
        let k = self.kernel;

        // 1. input → working type, native byte order
        let x = if plan.input == plan.work && plan.input_order == ByteOrder::Little && is_aligned(x, ws) {
            x
        } else {
            let x = realign(x, plan.input.size(), &mut self.aligned_in);
            let dst = &mut self.work.bytes_mut()[..n * ws];
            decode(&k, x, plan.input, plan.input_order, plan.work, dst);
            &self.work.bytes()[..n * ws]
        };
        let g = g.map(|g| {
            let order = plan.upstream.unwrap_or(ByteOrder::Little);
            if order == ByteOrder::Little && is_aligned(g, ws) {
                g
            } else {
                let g = realign(g, ws, &mut self.aligned_up);
                let dst = &mut self.up.bytes_mut()[..n * ws];
                decode(&k, g, plan.work, order, plan.work, dst);
                &self.up.bytes()[..n * ws]
            }
        });
        // 2. prelu: lay the channel slopes out along this chunk
        let slopes = match &plan.channels {
            Some(ch) => {
                let sw = if plan.work == DType::F64 { 8 } else { 4 };
                let dst = &mut self.slopes.bytes_mut()[..n * sw];
                let per = &self.channel_slopes.bytes()[..ch.slopes.len() * sw];
                if sw == 8 {
                    fill_slopes::<f64>(cast_slice_mut(dst), cast_slice(per), ch.inner, start);
                } else {
                    fill_slopes::<f32>(cast_slice_mut(dst), cast_slice(per), ch.inner, start);
                }
                Some(&self.slopes.bytes()[..n * sw])
            }
            None => None,
        };
        // 3. the activation, into y, with the statistics from the same pass
        let y = &mut self.y.bytes_mut()[..n * ws];
        run_kernel(&k, plan, x, g, slopes, y, self.stats.as_mut(), start);
        // 4. working type → output type and byte order
        if plan.output == plan.work && plan.output_order == ByteOrder::Little {
            return &self.y.bytes()[..n * ws];
        }
        let os = plan.output.size();
        let out = &mut self.out.bytes_mut()[..n * os];
        encode(&k, &self.y.bytes()[..n * ws], plan.work, plan.output, plan.output_order, out);
        &self.out.bytes()[..n * os]
    }
}

fn is_aligned(b: &[u8], size: usize) -> bool {
    (b.as_ptr() as usize) % size == 0
}

/// `b` itself when aligned for its elements, else a copy in `buf`.
fn realign<'a>(b: &'a [u8], size: usize, buf: &'a mut AlignedBuf) -> &'a [u8] {
    if is_aligned(b, size) {
        b
    } else {
        let dst = &mut buf.bytes_mut()[..b.len()];
        dst.copy_from_slice(b);
        dst
    }
}

fn fill_slopes<W: Copy>(dst: &mut [W], per_channel: &[W], inner: u64, start: u64) {
    let count = per_channel.len() as u64;
    let mut p = start;
    let mut i = 0;
    while i < dst.len() {
        let run = p / inner;
        let len = ((run + 1) * inner - p).min((dst.len() - i) as u64) as usize;
        dst[i..i + len].fill(per_channel[(run % count) as usize]);
        i += len;
        p += len as u64;
    }
}

#[allow(clippy::too_many_arguments)]
fn run_kernel(
    k: &Kernel,
    plan: &Plan,
    x: &[u8],
    g: Option<&[u8]>,
    slopes: Option<&[u8]>,
    y: &mut [u8],
    stats: Option<&mut StatsAccumulator>,
    start: u64,
) {
    fn op<W: Pod>(act: Option<Activation>, all: W, each: Option<&[u8]>) -> Op<'_, W> {
        let slope = match each {
            Some(s) => Slope::Each(cast_slice(s)),
            None => Slope::All(all),
        };
        match act {
            None => Op::Identity,
            Some(Activation::Value(Func::Relu)) => Op::Relu,
            Some(Activation::Value(_)) => Op::Leaky(slope),
            Some(Activation::Grad(Func::Relu)) => Op::GradRelu,
            Some(Activation::Grad(_)) => Op::GradLeaky(slope),
        }
    }
    let act = plan.act;
    match stats {
        None => {
            macro_rules! int {
                ($t:ty) => {
                    k.int::<$t>(op(act, (), None), cast_slice(x), g.map(cast_slice), cast_slice_mut(y))
                };
            }
            match plan.work {
                DType::F32 => k.float::<f32>(
                    op(act, plan.slope as f32, slopes),
                    cast_slice(x),
                    g.map(cast_slice),
                    cast_slice_mut(y),
                ),
                DType::F64 => {
                    k.float::<f64>(op(act, plan.slope, slopes), cast_slice(x), g.map(cast_slice), cast_slice_mut(y))
                }
                DType::F16 => {
                    k.half(op(act, plan.slope as f32, slopes), cast_slice(x), g.map(cast_slice), cast_slice_mut(y))
                }
                DType::I8 => int!(i8),
                DType::I16 => int!(i16),
                DType::I32 => int!(i32),
                DType::I64 => int!(i64),
                DType::U8 => int!(u8),
                DType::U16 => int!(u16),
                DType::U32 => int!(u32),
                DType::U64 => int!(u64),
            }
        }
        Some(acc) => {
            macro_rules! int {
                ($t:ty) => {
                    fused(
                        acc,
                        k,
                        cast_slice::<u8, $t>(x),
                        start,
                        |v| v as f64,
                        |v| v > 0,
                        |xs, shift| {
                            k.int_stats::<$t>(op(act, (), None), xs, g.map(cast_slice), cast_slice_mut(y), shift)
                        },
                    )
                };
            }
            match plan.work {
                DType::F32 => fused(
                    acc,
                    k,
                    cast_slice::<u8, f32>(x),
                    start,
                    |v| v as f64,
                    |v| v > 0.0,
                    |xs, shift| {
                        k.float_stats(
                            op(act, plan.slope as f32, slopes),
                            xs,
                            g.map(cast_slice),
                            cast_slice_mut(y),
                            shift,
                        )
                    },
                ),
                DType::F64 => fused(
                    acc,
                    k,
                    cast_slice::<u8, f64>(x),
                    start,
                    |v| v,
                    |v| v > 0.0,
                    |xs, shift| {
                        k.float_stats(op(act, plan.slope, slopes), xs, g.map(cast_slice), cast_slice_mut(y), shift)
                    },
                ),
                // active f16: positive, non-zero, not NaN, i.e. bits 0x0001..=0x7c00
                DType::F16 => fused(
                    acc,
                    k,
                    cast_slice::<u8, u16>(x),
                    start,
                    |h| act::f16_to_f32(h) as f64,
                    |h| h.wrapping_sub(1) < 0x7c00,
                    |xs, shift| {
                        k.half_stats(
                            op(act, plan.slope as f32, slopes),
                            xs,
                            g.map(cast_slice),
                            cast_slice_mut(y),
                            shift,
                        )
                    },
                ),
                DType::I8 => int!(i8),
                DType::I16 => int!(i16),
                DType::I32 => int!(i32),
                DType::I64 => int!(i64),
                DType::U8 => int!(u8),
                DType::U16 => int!(u16),
                DType::U32 => int!(u32),
                DType::U64 => int!(u64),
            }
        }
    }
}

/// One chunk's fused statistics: the kernel call (`run`, given the sums' shift) and the per-unit
/// active counts of its input `xs`, both into `acc`.
fn fused<T: Copy>(
    acc: &mut StatsAccumulator,
    k: &Kernel,
    xs: &[T],
    start: u64,
    value: impl Fn(T) -> f64,
    active: impl Fn(T) -> bool + Copy,
    run: impl FnOnce(&[T], f64) -> ChunkStats,
) {
    let shift = acc.shift(xs.first().map_or(0.0, |&v| value(v)));
    acc.add_chunk(&run(xs, shift));
    acc.count_active(k, xs, start, active);
}

/// Elements of type `from` in byte order `order` → native elements of type `to` (a float type, or
/// `from` itself). Integers convert exactly where the target can hold them, else round to nearest.
pub fn decode(k: &Kernel, src: &[u8], from: DType, order: ByteOrder, to: DType, dst: &mut [u8]) {
    let big = order == ByteOrder::Big;
    macro_rules! from_int {
        ($t:ty) => {{
            let x: &[$t] = cast_slice(src);
            let fix = move |v: $t| if big { <$t>::from_be(v) } else { v };
            match to {
                DType::F32 => k.convert(x, cast_slice_mut::<u8, f32>(dst), move |v| fix(v) as f32),
                DType::F64 => k.convert(x, cast_slice_mut::<u8, f64>(dst), move |v| fix(v) as f64),
                // via f64, exact for every integer f16 can hold; the rest round once or overflow
                DType::F16 => k.convert(x, cast_slice_mut::<u8, u16>(dst), move |v| act::f64_to_f16(fix(v) as f64)),
                _ => k.convert(x, cast_slice_mut::<u8, $t>(dst), fix),
            }
        }};
    }
    match from {
        DType::F16 => k.convert(
            cast_slice::<u8, u16>(src),
            cast_slice_mut(dst),
            move |v: u16| if big { u16::from_be(v) } else { v },
        ),
        DType::F32 => k.convert(
            cast_slice::<u8, u32>(src),
            cast_slice_mut(dst),
            move |v: u32| if big { u32::from_be(v) } else { v },
        ),
        DType::F64 => k.convert(
            cast_slice::<u8, u64>(src),
            cast_slice_mut(dst),
            move |v: u64| if big { u64::from_be(v) } else { v },
        ),
        DType::I8 => from_int!(i8),
        DType::I16 => from_int!(i16),
        DType::I32 => from_int!(i32),
        DType::I64 => from_int!(i64),
        DType::U8 => from_int!(u8),
        DType::U16 => from_int!(u16),
        DType::U32 => from_int!(u32),
        DType::U64 => from_int!(u64),
    }
}

/// Native working-type elements → output type (rounded once) in byte order `order`.
pub fn encode(k: &Kernel, src: &[u8], from: DType, to: DType, order: ByteOrder, dst: &mut [u8]) {
    let big = order == ByteOrder::Big;
    match (from, to) {
        (DType::F32, DType::F16) => k.f32_to_half(cast_slice(src), cast_slice_mut(dst)),
        (DType::F64, DType::F16) => {
            k.convert(cast_slice::<u8, f64>(src), cast_slice_mut::<u8, u16>(dst), act::f64_to_f16)
        }
        (DType::F16, DType::F32) => k.half_to_f32(cast_slice(src), cast_slice_mut(dst)),
        (DType::F16, DType::F64) => {
            k.convert(cast_slice::<u8, u16>(src), cast_slice_mut::<u8, f64>(dst), |h| act::f16_to_f32(h) as f64)
        }
        (DType::F32, DType::F64) => k.convert(cast_slice::<u8, f32>(src), cast_slice_mut::<u8, f64>(dst), |v| v as f64),
        (DType::F64, DType::F32) => {
            k.convert(cast_slice::<u8, f64>(src), cast_slice_mut::<u8, f32>(dst), act::f64_to_f32)
        }
        (a, b) if a == b => match a.size() {
            1 => dst.copy_from_slice(src),
            2 => k.convert(
                cast_slice::<u8, u16>(src),
                cast_slice_mut(dst),
                move |v: u16| if big { v.to_be() } else { v },
            ),
            4 => k.convert(
                cast_slice::<u8, u32>(src),
                cast_slice_mut(dst),
                move |v: u32| if big { v.to_be() } else { v },
            ),
            _ => k.convert(
                cast_slice::<u8, u64>(src),
                cast_slice_mut(dst),
                move |v: u64| if big { v.to_be() } else { v },
            ),
        },
        (a, b) => unreachable!("no conversion from {a} to {b}: the plan checks this"),
    }
    if big && from != to {
        // Conversions above produced native order; swap for a big-endian target.
        match to.size() {
            2 => k.convert_in_place(cast_slice_mut::<u8, u16>(dst), u16::swap_bytes),
            4 => k.convert_in_place(cast_slice_mut::<u8, u32>(dst), u32::swap_bytes),
            8 => k.convert_in_place(cast_slice_mut::<u8, u64>(dst), u64::swap_bytes),
            _ => {}
        }
    }
}

// ---------------------------------------------------------------- sources

/// Hands out the input's data bytes in chunks.
pub trait ChunkSource {
    /// The next `len` bytes. An error if the input ends first.
    fn next_chunk(&mut self, len: usize) -> Result<&[u8]>;
}

/// A file's data region, read through a sliding memory map: no copy into a buffer, and only a
/// window of the file is mapped at a time, so resident memory stays bounded.
pub struct MmapSource {
    file: File,
    pos: u64,
    end: u64,
    map: Option<(u64, memmap2::Mmap)>,
}

const WINDOW: u64 = 8 << 20;

impl MmapSource {
    /// The bytes `[start, end)` of `file`; the caller has checked the file is that long.
    pub fn new(file: File, start: u64, end: u64) -> Self {
        MmapSource { file, pos: start, end, map: None }
    }
}

impl ChunkSource for MmapSource {
    fn next_chunk(&mut self, len: usize) -> Result<&[u8]> {
        let (pos, len64) = (self.pos, len as u64);
        if pos + len64 > self.end {
            bail!("data ends early: the file was truncated while being read");
        }
        let in_map = matches!(&self.map, Some((s, m)) if pos >= *s && pos + len64 <= *s + m.len() as u64);
        if !in_map {
            self.map = None; // unmap the old window first: bounded resident memory
            let page = 4096u64;
            let start = pos / page * page;
            let map_len = (WINDOW.max(pos + len64 - start)).min(self.end - start);
            if map_len == 0 {
                self.pos += len64;
                return Ok(&[]);
            }
            // SAFETY: the map is read-only and private to this process; if another process
            // truncates the file meanwhile we may see SIGBUS, as any mmap reader would.
            let m =
                unsafe { memmap2::MmapOptions::new().offset(start).len(map_len as usize).populate().map(&self.file)? };
            let _ = m.advise(memmap2::Advice::Sequential);
            self.map = Some((start, m));
        }
        let (s, m) = self.map.as_ref().expect("mapped above");
        let off = (pos - s) as usize;
        self.pos += len64;
        Ok(&m[off..off + len])
    }
}

/// A file's data region read with positional reads into one aligned buffer. The kernel copy from
/// the page cache is cheaper than mapping: no page tables to populate and tear down, no TLB misses
/// on 4 KiB user pages, and the buffer stays in L2 for the kernel pass.
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
        use std::os::unix::fs::FileExt;
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

/// Opens the right source for a file's data region (`RELU_READ=mmap` picks the memory map).
pub fn file_source(file: File, start: u64, end: u64) -> Box<dyn ChunkSource> {
    if std::env::var_os("RELU_READ").is_some_and(|v| v == "mmap") {
        Box::new(MmapSource::new(file, start, end))
    } else {
        Box::new(PreadSource::new(file, start, end))
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

/// Drives `elements` elements from `src` (and `up`) through `proc` into `out`.
pub fn stream(
    proc: &mut ChunkProcessor,
    elements: u64,
    src: &mut dyn ChunkSource,
    up: Option<&mut dyn ChunkSource>,
    out: &mut dyn FnMut(&[u8]) -> Result<()>,
) -> Result<()> {
    stream_range(proc, 0, elements, src, up, out)
}

/// [`stream`] for the elements `[first, first + elements)` of an array (the sources are positioned
/// there): flat indices, and so PReLU channels and units, count from `first`.
pub fn stream_range(
    proc: &mut ChunkProcessor,
    first: u64,
    elements: u64,
    src: &mut dyn ChunkSource,
    mut up: Option<&mut dyn ChunkSource>,
    out: &mut dyn FnMut(&[u8]) -> Result<()>,
) -> Result<()> {
    let in_size = proc.plan().input.size();
    let up_size = proc.plan().work.size();
    let mut done = 0u64;
    while done < elements {
        let n = (elements - done).min(proc.chunk_elems as u64) as usize;
        let x = src.next_chunk(n * in_size)?;
        let g = match up.as_deref_mut() {
            Some(u) => Some(u.next_chunk(n * up_size)?),
            None => None,
        };
        out(proc.process(x, g, first + done))?;
        done += n as u64;
    }
    Ok(())
}

/// A file's data region: where parallel workers map their own ranges from.
pub struct FileData<'a> {
    pub file: &'a File,
    pub offset: u64,
}

/// Statistics only, on `threads` workers: each maps its own contiguous range of the file (whole
/// chunks), runs its own processor, and the accumulators merge exactly (in range order).
pub fn stats_parallel(
    proto: &ChunkProcessor,
    elements: u64,
    input: FileData,
    up: Option<FileData>,
    threads: usize,
) -> Result<StatsAccumulator> {
    let chunk = proto.chunk_elems as u64;
    let per = elements.div_ceil(chunk).div_ceil(threads.max(1) as u64).max(1) * chunk;
    let ranges: Vec<(u64, u64)> =
        (0..threads as u64).map(|t| (t * per, ((t + 1) * per).min(elements))).filter(|(a, b)| a < b).collect();
    let (isz, wsz) = (proto.plan().input.size() as u64, proto.plan().work.size() as u64);
    let results: Vec<Result<StatsAccumulator>> = std::thread::scope(|s| {
        let workers: Vec<_> = ranges
            .iter()
            .map(|&(a, b)| {
                let (input, up) = (&input, &up);
                s.spawn(move || -> Result<StatsAccumulator> {
                    let mut p = proto.fork();
                    let mut src = file_source(input.file.try_clone()?, input.offset + a * isz, input.offset + b * isz);
                    let mut upsrc = match up {
                        Some(u) => Some(file_source(u.file.try_clone()?, u.offset + a * wsz, u.offset + b * wsz)),
                        None => None,
                    };
                    let ups: Option<&mut dyn ChunkSource> = match upsrc.as_mut() {
                        Some(u) => Some(u.as_mut()),
                        None => None,
                    };
                    stream_range(&mut p, a, b - a, src.as_mut(), ups, &mut |_| Ok(()))?;
                    Ok(p.stats.take().expect("forked with an accumulator"))
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().unwrap_or_else(|_| Err(anyhow::anyhow!("a worker thread panicked"))))
            .collect()
    });
    let mut total = proto.stats.as_ref().expect("stats_parallel needs an accumulator").fresh();
    for r in results {
        total.merge(&r?);
    }
    Ok(total)
}

/// [`stream`] with the writing on a second thread: the kernel works on the next chunk while the
/// previous one is copied into the page cache (or a pipe). Up to `DEPTH` chunks are in flight, in
/// buffers recycled between the two threads, so memory stays bounded. A write error stops the
/// reader at its next chunk and is returned.
pub fn stream_overlapped(
    proc: &mut ChunkProcessor,
    elements: u64,
    src: &mut dyn ChunkSource,
    up: Option<&mut dyn ChunkSource>,
    sink: &mut (dyn FnMut(&[u8]) -> Result<()> + Send),
) -> Result<()> {
    use std::sync::mpsc::{channel, sync_channel};
    const DEPTH: usize = 3;
    let (full_tx, full_rx) = sync_channel::<(AlignedBuf, usize)>(DEPTH);
    let (free_tx, free_rx) = channel::<AlignedBuf>();
    std::thread::scope(|s| {
        let writer = s.spawn(move || -> Result<()> {
            for (buf, len) in full_rx {
                sink(&buf.bytes()[..len])?;
                let _ = free_tx.send(buf);
            }
            Ok(())
        });
        // The kernel side: each output chunk is copied into a free buffer and handed over.
        // "writer stopped" only ends the loop: the writer's own error is the one reported.
        let mut made = 0;
        let mut hand_over = |out: &[u8]| -> Result<()> {
            let stopped = || anyhow::anyhow!("the writer stopped");
            let mut buf = match free_rx.try_recv() {
                Ok(b) => b,
                Err(_) if made < DEPTH + 1 => {
                    made += 1;
                    AlignedBuf::new(CHUNK_BYTES.max(out.len()))
                }
                Err(_) => free_rx.recv().map_err(|_| stopped())?,
            };
            if buf.bytes().len() < out.len() {
                buf = AlignedBuf::new(out.len());
            }
            buf.bytes_mut()[..out.len()].copy_from_slice(out);
            full_tx.send((buf, out.len())).map_err(|_| stopped())
        };
        let reader = stream_range(proc, 0, elements, src, up, &mut hand_over);
        drop(full_tx);
        let written = writer.join().unwrap_or_else(|_| Err(anyhow::anyhow!("the writer thread panicked")));
        // A write error explains a stopped reader; otherwise report the reader's own error.
        written.and(reader)
    })
}

/// Writes every chunk to `w`.
pub fn to_writer(w: &mut dyn Write) -> impl FnMut(&[u8]) -> Result<()> + '_ {
    move |b| Ok(w.write_all(b)?)
}
