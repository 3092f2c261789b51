//! Chunks through the kernel, and the drivers that move a source's chunks through it.
//!
//! A [`Plan`] says what to compute for one array (types, activation, slopes); a [`ChunkProcessor`]
//! turns a chunk of input bytes (and upstream bytes) into a chunk of output bytes, with the fused
//! statistics and any [`Observer`] riding along. The drivers feed it: [`stream`] in order,
//! [`stream_overlapped`] with the writes on a second thread, [`ranges`] on several threads over
//! ranges of a file. Nothing here knows a file format: sources hand out bytes (`source.rs`),
//! sinks take them (`sink.rs`).

use crate::act::{self, Activation, Func};
use crate::chunks::{AlignedBuf, ChunkSource, FileRegion, CHUNK_BYTES};
use crate::dtype::{ByteOrder, DType, Element, BF16, F16};
use crate::format::npy;
use crate::kernel::{ChunkStats, Kernel, Op, Reads, Slope, Unaligned};
use crate::options::{normalize_axis, usage, ActOptions, ArrayInfo};
use crate::stats::StatsAccumulator;
use crate::with_element;
use anyhow::{anyhow, bail, Context, Result};
use bytemuck::{cast_slice, cast_slice_mut, Pod};

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

impl Plan {
    /// Types and parameters for one array (SPEC §2), from what to compute (`act`).
    pub fn new(act: &ActOptions, a: &ArrayInfo) -> Result<Plan> {
        let this = act;
        let input = a.dtype;
        let (work, output) = match (input.is_float(), this.dtype) {
            (true, d) => (input, d.unwrap_or(input)),
            (false, Some(d)) => (d, d),
            (false, None) => {
                if let Some(act) = this.act.filter(|a| a.func() != Func::Relu) {
                    return usage(format!(
                        "{} on {input} input needs a float type: add --dtype f16, f32 or f64",
                        act.name()
                    ));
                }
                (input, input)
            }
        };
        let mut slope = this.slope.unwrap_or(0.01);
        let mut channels = None;
        if let Some(alpha) = &this.alpha {
            let alphas: Vec<f64> = alpha.iter().map(|&v| round_to(work, v)).collect();
            let ndim = a.shape.len();
            // The axis must make sense even for one slope (0-d and 1-D inputs have no channel axis).
            let axis = match normalize_axis(this.channel_axis, ndim) {
                Some(axis) => Some(axis),
                None if ndim < 2 => None,
                None => {
                    return usage(format!("--channel-axis {} is out of range for a {ndim}-D array", this.channel_axis))
                }
            };
            if alphas.len() == 1 {
                slope = alphas[0];
            } else {
                let Some(axis) = axis.filter(|_| ndim >= 2) else {
                    bail!("a {ndim}-D input takes exactly one slope, --alpha has {}", alphas.len());
                };
                if a.shape[axis] != alphas.len() as u64 {
                    bail!(
                        "--alpha has {} slopes but axis {axis} of shape {} has {} channels",
                        alphas.len(),
                        npy::shape_repr(&a.shape),
                        a.shape[axis]
                    );
                }
                let inner = crate::stats::inner_size(&a.shape, a.fortran, axis);
                channels = Some(Channels { slopes: alphas, inner: inner.max(1) });
            }
        }
        Ok(Plan {
            input,
            input_order: a.order,
            work,
            output,
            output_order: ByteOrder::Little,
            act: this.act,
            slope,
            channels,
            upstream: None,
        })
    }
}

/// A PReLU weight rounded to the working float type, as PyTorch's weight tensor holds it.
fn round_to(dt: DType, v: f64) -> f64 {
    match dt {
        DType::F16 => act::f16_to_f32(act::f64_to_f16(v)) as f64,
        DType::BF16 => act::bf16_to_f32(act::f64_to_bf16(v)) as f64,
        DType::F32 => v as f32 as f64,
        _ => v,
    }
}

/// Watches the values an array's activation produces (a histogram, say) as they stream by:
/// each chunk's output in the working type, native byte order, with the flat index of its first
/// element. Parallel drivers give each worker a [`Observer::fresh`] one and merge them in order.
/// A processor is generic over its observer's type, so the caller gets back the type it asked
/// for (as ripgrep's searcher hands results to the caller's own `Sink`).
pub trait Observer: Send + Sized {
    /// `values` are aligned for their elements, but f32/f64 input passed on as it lies, which
    /// may sit at any address ([`observe_typed`] reads both).
    fn observe(&mut self, values: &[u8], dtype: DType, start: u64);
    /// An empty observer of the same kind and settings.
    fn fresh(&self) -> Self;
    /// Adds what another observer (made by `fresh`) saw.
    fn merge(&mut self, other: Self);
}

/// An observer of typed values ([`observe_typed`] gives it the bytes as elements).
pub trait TypedObserver {
    /// Adds values of type `T` (`Unaligned<f32>`/`Unaligned<f64>` for f32/f64 at any address).
    fn add_values<T: Element>(&mut self, xs: &[T]);
}

/// Hands `values` (of `dtype`) to `o` as elements: `Unaligned<T>` where f32/f64 values lie
/// unaligned, else `T`.
pub fn observe_typed(o: &mut impl TypedObserver, values: &[u8], dtype: DType) {
    match (is_aligned(values, dtype.size()), dtype) {
        (false, DType::F32) => o.add_values::<Unaligned<f32>>(cast_slice(values)),
        (false, DType::F64) => o.add_values::<Unaligned<f64>>(cast_slice(values)),
        _ => with_element!(dtype, T => o.add_values::<T>(cast_slice(values))),
    }
}

/// The observer of a processor that watches nothing: there is no value of this type.
#[derive(Clone, Copy, Debug)]
pub enum Unwatched {}

impl Observer for Unwatched {
    fn observe(&mut self, _: &[u8], _: DType, _: u64) {
        match *self {}
    }
    fn fresh(&self) -> Self {
        match *self {}
    }
    fn merge(&mut self, _: Self) {
        match *self {}
    }
}

/// Turns chunks of input bytes into chunks of output bytes.
pub struct ChunkProcessor<O: Observer = Unwatched> {
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
    /// Per-channel slopes in the working type's slope type (f32 for f16), as bytes.
    channel_slopes: AlignedBuf,
    /// Statistics gathered in the kernel's pass, when asked for.
    stats: Option<StatsAccumulator>,
    observer: Option<O>,
    /// The output is thrown away (statistics and observers only).
    discard: bool,
}

impl<O: Observer> ChunkProcessor<O> {
    pub fn new(plan: Plan, stats: Option<StatsAccumulator>) -> Self {
        let widest = plan.input.size().max(plan.work.size()).max(plan.output.size()).max(4);
        let chunk_elems = CHUNK_BYTES / widest;
        let cap = chunk_elems * 8;
        let channel_slopes = match &plan.channels {
            Some(ch) => with_element!(plan.work, T => slope_bytes::<T>(&ch.slopes)),
            None => AlignedBuf::new(0),
        };
        let has_slopes = plan.channels.is_some();
        let has_up = plan.upstream.is_some();
        ChunkProcessor {
            chunk_elems,
            aligned_in: AlignedBuf::new(cap),
            aligned_up: AlignedBuf::new(if has_up { cap } else { 0 }),
            work: AlignedBuf::new(cap),
            up: AlignedBuf::new(if has_up { cap } else { 0 }),
            slopes: AlignedBuf::new(if has_slopes { cap } else { 0 }),
            y: AlignedBuf::new(cap),
            out: AlignedBuf::new(cap),
            channel_slopes,
            stats,
            observer: None,
            discard: false,
            plan,
            kernel: Kernel::default(),
        }
    }

    /// Marks the output as thrown away: with nothing to compute, the kernel pass is skipped.
    pub fn discarding(mut self, discard: bool) -> Self {
        self.discard = discard;
        self
    }

    /// Attaches an observer of the output values.
    pub fn with_observer(mut self, o: Option<O>) -> Self {
        self.observer = o;
        self
    }

    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// A processor for the same plan with its own buffers and empty statistics (for workers).
    pub fn fork(&self) -> ChunkProcessor<O> {
        let stats = self.stats.as_ref().map(|s| s.fresh());
        ChunkProcessor::new(self.plan.clone(), stats)
            .with_observer(self.observer.as_ref().map(|o| o.fresh()))
            .discarding(self.discard)
    }

    /// Adds what a fork saw (of elements after those this one saw).
    pub fn merge(&mut self, other: ChunkProcessor<O>) {
        if let (Some(a), Some(b)) = (&mut self.stats, &other.stats) {
            a.merge(b);
        }
        if let (Some(a), Some(b)) = (&mut self.observer, other.observer) {
            a.merge(b);
        }
    }

    /// Adds statistics gathered elsewhere (of later elements of the same array).
    pub fn merge_stats(&mut self, s: &StatsAccumulator) {
        if let Some(a) = &mut self.stats {
            a.merge(s);
        }
    }

    /// The statistics gathered so far (when created with an accumulator).
    pub fn stats(&self) -> Option<&StatsAccumulator> {
        self.stats.as_ref()
    }

    /// The statistics and the observer, when the run is over.
    pub fn into_results(self) -> (Option<StatsAccumulator>, Option<O>) {
        (self.stats, self.observer)
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

    /// Processes the elements whose input bytes are `x` (and upstream bytes `g`), the first of
    /// them at flat index `start`, into the processor's own buffer. Returns the output bytes.
    pub fn process(&mut self, x: &[u8], g: Option<&[u8]>, start: u64) -> &[u8] {
        let n = x.len() / self.plan.input.size();
        let bytes = n * self.plan.output.size();
        let mut out = std::mem::replace(&mut self.out, AlignedBuf::new(0));
        self.process_into(x, g, start, &mut out.bytes_mut()[..bytes]);
        self.out = out;
        &self.out.bytes()[..bytes]
    }

    /// [`ChunkProcessor::process`] into `out` (8-byte aligned, exactly the output's length): the
    /// kernel writes there directly when no conversion follows it.
    pub fn process_into(&mut self, x: &[u8], g: Option<&[u8]>, start: u64, out: &mut [u8]) {
        crate::progress::add(x.len());
        let plan = &self.plan;
        if self.discard
            && plan.act.is_none()
            && self.stats.is_none()
            && plan.input == plan.work
            && plan.input_order == ByteOrder::Little
        {
            // Nothing to compute and nothing written: the observer sees the input itself (f32
            // and f64 where they lie; the others copied when a map leaves them unaligned).
            if let Some(o) = &mut self.observer {
                o.observe(as_read(x, plan.work, &mut self.aligned_in), plan.work, start);
            }
            return;
        }
        let n = x.len() / plan.input.size();
        debug_assert!(n <= self.chunk_elems);
        debug_assert_eq!(out.len(), n * plan.output.size());
        let ws = plan.work.size();
        let k = self.kernel;

        // 1. input → working type, native byte order
        let x = if plan.input == plan.work && plan.input_order == ByteOrder::Little {
            // (a mapped member at an odd offset: read where it lies, or one copy)
            as_read(x, plan.work, &mut self.aligned_in)
        } else {
            let x = realign(x, plan.input.size(), &mut self.aligned_in);
            let dst = &mut self.work.bytes_mut()[..n * ws];
            decode(&k, x, plan.input, plan.input_order, plan.work, dst);
            &self.work.bytes()[..n * ws]
        };
        let g = g.map(|g| {
            let order = plan.upstream.unwrap_or(ByteOrder::Little);
            // (a mapped upstream at an odd offset: one copy; the kernels read `g` aligned)
            let g = realign(g, ws, &mut self.aligned_up);
            if order == ByteOrder::Little {
                g
            } else {
                let dst = &mut self.up.bytes_mut()[..n * ws];
                decode(&k, g, plan.work, order, plan.work, dst);
                &self.up.bytes()[..n * ws]
            }
        });
        // 2. prelu: lay the channel slopes out along this chunk
        let slopes = plan.channels.as_ref().map(|ch| {
            let sw = with_element!(plan.work, T => std::mem::size_of::<<T as Compute>::S>());
            let per = &self.channel_slopes.bytes()[..ch.slopes.len() * sw];
            let dst = &mut self.slopes.bytes_mut()[..n * sw];
            fill_slopes(dst, per, sw, ch.inner, start);
            &self.slopes.bytes()[..n * sw]
        });
        // 3. the activation, straight into `out` when no conversion follows, with the statistics
        //    from the same pass
        let direct = plan.output == plan.work && plan.output_order == ByteOrder::Little;
        let y = if direct { &mut *out } else { &mut self.y.bytes_mut()[..n * ws] };
        let stats = self.stats.as_mut();
        let y_unused = self.discard && self.observer.is_none();
        match (is_aligned(x, ws), plan.work) {
            (false, DType::F32) => run_kernel::<f32, Unaligned<f32>>(&k, plan, x, g, slopes, y, stats, start, y_unused),
            (false, DType::F64) => run_kernel::<f64, Unaligned<f64>>(&k, plan, x, g, slopes, y, stats, start, y_unused),
            _ => with_element!(plan.work, T => run_kernel::<T, T>(&k, plan, x, g, slopes, y, stats, start, y_unused)),
        }
        if let Some(o) = &mut self.observer {
            o.observe(y, plan.work, start);
        }
        // 4. working type → output type and byte order
        if !direct {
            encode(&k, &self.y.bytes()[..n * ws], plan.work, plan.output, plan.output_order, out);
        }
    }
}

/// Per-channel slopes in `T`'s slope type, as bytes.
fn slope_bytes<T: Compute>(slopes: &[f64]) -> AlignedBuf {
    let sw = std::mem::size_of::<T::S>();
    let mut b = AlignedBuf::new(slopes.len() * sw);
    let dst: &mut [T::S] = cast_slice_mut(&mut b.bytes_mut()[..slopes.len() * sw]);
    for (d, &s) in dst.iter_mut().zip(slopes) {
        *d = T::slope(s);
    }
    b
}

fn is_aligned(b: &[u8], size: usize) -> bool {
    (b.as_ptr() as usize).is_multiple_of(size)
}

/// Native elements of `dt` as the kernels and observers take them: `b` itself where they read
/// `dt` at any address ([`DType::reads_unaligned`]) or it is aligned, else a copy in `buf`.
fn as_read<'a>(b: &'a [u8], dt: DType, buf: &'a mut AlignedBuf) -> &'a [u8] {
    if dt.reads_unaligned() {
        b
    } else {
        realign(b, dt.size(), buf)
    }
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

/// Lays `per_channel` (slopes of `sw` bytes each) out along `dst`, runs of `inner` per channel.
fn fill_slopes(dst: &mut [u8], per_channel: &[u8], sw: usize, inner: u64, start: u64) {
    let count = (per_channel.len() / sw) as u64;
    let elems = dst.len() / sw;
    let mut p = start;
    let mut i = 0;
    while i < elems {
        let run = p / inner;
        let len = ((run + 1) * inner - p).min((elems - i) as u64) as usize;
        let c = (run % count) as usize;
        let slope = &per_channel[c * sw..(c + 1) * sw];
        for d in dst[i * sw..(i + len) * sw].chunks_exact_mut(sw) {
            d.copy_from_slice(slope);
        }
        i += len;
        p += len as u64;
    }
}

/// How the kernel computes on one working type: its slope type and kernel entry points.
pub trait Compute: Element {
    /// leaky/prelu slopes: f32 for f16 and f32, f64 for f64, none for integers.
    type S: Pod;
    fn slope(v: f64) -> Self::S;
    /// `x` is `Self` or, where [`DType::reads_unaligned`], `Unaligned<Self>` elements.
    fn run<E: Reads<Self> + Pod>(k: &Kernel, op: Op<Self::S>, x: &[E], g: Option<&[Self]>, y: &mut [Self]);
    /// The statistics alone, nothing written, where the type has a way to skip the output.
    fn stats_only<E: Reads<Self> + Pod>(_k: &Kernel, _op: Op<Self::S>, _x: &[E], _shift: f64) -> Option<ChunkStats> {
        None
    }
    fn run_stats<E: Reads<Self> + Pod>(
        k: &Kernel,
        op: Op<Self::S>,
        x: &[E],
        g: Option<&[Self]>,
        y: &mut [Self],
        shift: f64,
    ) -> ChunkStats;
    /// Only the finite min and max (and counts) of the output, where the type has a kernel for
    /// that (`Kernel::float_range`); `y_unused`: nothing reads `y` afterwards.
    fn run_range<E: Reads<Self> + Pod>(
        _k: &Kernel,
        _op: Op<Self::S>,
        _x: &[E],
        _g: Option<&[Self]>,
        _y: &mut [Self],
        _y_unused: bool,
    ) -> Option<ChunkStats> {
        None
    }
}

macro_rules! float_compute {
    ($($t:ty),*) => {$(
        impl Compute for $t {
            type S = $t;
            fn slope(v: f64) -> $t {
                v as $t
            }
            fn run<E: Reads<$t> + Pod>(k: &Kernel, op: Op<$t>, x: &[E], g: Option<&[$t]>, y: &mut [$t]) {
                k.float(op, x, g, y)
            }
            fn run_stats<E: Reads<$t> + Pod>(k: &Kernel, op: Op<$t>, x: &[E], g: Option<&[$t]>, y: &mut [$t], shift: f64) -> ChunkStats {
                k.float_stats(op, x, g, y, shift)
            }
            fn stats_only<E: Reads<$t> + Pod>(k: &Kernel, op: Op<$t>, x: &[E], shift: f64) -> Option<ChunkStats> {
                k.float_stats_only(op, x, shift)
            }
            fn run_range<E: Reads<$t> + Pod>(k: &Kernel, op: Op<$t>, x: &[E], g: Option<&[$t]>, y: &mut [$t], _: bool) -> Option<ChunkStats> {
                Some(k.float_range(op, x, g, y))
            }
        }
    )*};
}
float_compute!(f32, f64);

/// The 16-bit floats, f16 and (`bf16`) bfloat16: computed in f32, with f32 slopes. `run_range`
/// goes without the output where nothing reads it.
macro_rules! half_compute {
    ($($t:ty: $bf16:expr, $run:ident, $stats:ident);*) => {$(
        impl Compute for $t {
            type S = f32;
            fn slope(v: f64) -> f32 {
                v as f32
            }
            fn run<E: Reads<$t> + Pod>(k: &Kernel, op: Op<f32>, x: &[E], g: Option<&[$t]>, y: &mut [$t]) {
                k.$run(op, cast_slice(x), g.map(cast_slice), cast_slice_mut(y))
            }
            fn stats_only<E: Reads<$t> + Pod>(k: &Kernel, op: Op<f32>, x: &[E], shift: f64) -> Option<ChunkStats> {
                k.half_stats_only($bf16, op, cast_slice(x), shift)
            }
            fn run_range<E: Reads<$t> + Pod>(
                k: &Kernel,
                op: Op<f32>,
                x: &[E],
                g: Option<&[$t]>,
                y: &mut [$t],
                unused: bool,
            ) -> Option<ChunkStats> {
                let (x, g) = (cast_slice(x), g.map(cast_slice));
                let without_output = if unused { k.half_range($bf16, op, x, g, None) } else { None };
                without_output.or_else(|| k.half_range($bf16, op, x, g, Some(cast_slice_mut(y))))
            }
            fn run_stats<E: Reads<$t> + Pod>(k: &Kernel, op: Op<f32>, x: &[E], g: Option<&[$t]>, y: &mut [$t], shift: f64) -> ChunkStats {
                k.$stats(op, cast_slice(x), g.map(cast_slice), cast_slice_mut(y), shift)
            }
        }
    )*};
}
half_compute!(F16: false, half, half_stats; BF16: true, bf16, bf16_stats);

macro_rules! int_compute {
    ($($t:ty),*) => {$(
        impl Compute for $t {
            type S = ();
            fn slope(_: f64) {}
            fn run<E: Reads<$t> + Pod>(k: &Kernel, op: Op<()>, x: &[E], g: Option<&[$t]>, y: &mut [$t]) {
                k.int(op, cast_slice(x), g, y)
            }
            fn run_stats<E: Reads<$t> + Pod>(k: &Kernel, op: Op<()>, x: &[E], g: Option<&[$t]>, y: &mut [$t], shift: f64) -> ChunkStats {
                k.int_stats(op, cast_slice(x), g, y, shift)
            }
        }
    )*};
}
int_compute!(i8, i16, i32, i64, u8, u16, u32, u64);

/// One chunk through the kernel in working type `T`, with the fused statistics when asked: the
/// kernel's pass gathers the value statistics, then the per-unit active counts of the input.
/// The input `x` holds `E` elements: `T`, or `Unaligned<T>` where it lies unaligned.
#[allow(clippy::too_many_arguments)]
fn run_kernel<T: Compute, E: Reads<T> + Element>(
    k: &Kernel,
    plan: &Plan,
    x: &[u8],
    g: Option<&[u8]>,
    slopes: Option<&[u8]>,
    y: &mut [u8],
    stats: Option<&mut StatsAccumulator>,
    start: u64,
    y_unused: bool,
) {
    let slope = match slopes {
        Some(s) => Slope::Each(cast_slice(s)),
        None => Slope::All(T::slope(plan.slope)),
    };
    let op = match plan.act {
        None => Op::Identity,
        Some(Activation::Value(Func::Relu)) => Op::Relu,
        Some(Activation::Value(_)) => Op::Leaky(slope),
        Some(Activation::Grad(Func::Relu)) => Op::GradRelu,
        Some(Activation::Grad(_)) => Op::GradLeaky(slope),
    };
    let (x, g, y) = (cast_slice::<u8, E>(x), g.map(cast_slice::<u8, T>), cast_slice_mut::<u8, T>(y));
    match stats {
        None => T::run(k, op, x, g, y),
        Some(acc) => {
            // Before any finite value the shift is the chunk's first *output*: the input's first value
            // may lie far from the outputs (a grad's are on the upstream's scale; relu of -1e20 is 0),
            // and a shift far from the values cancels the sums of squares catastrophically.
            let first = if acc.finite > 0 || x.is_empty() {
                0.0
            } else {
                T::run(k, op, &x[..1], g.map(|g| &g[..1]), &mut y[..1]);
                y[0].to_f64()
            };
            let shift = acc.shift(first);
            // integers: an integral shift keeps every difference, and so the sums, exact
            let ints = !plan.work.is_float();
            let shift = if ints { shift.round() } else { shift };
            let range = if acc.range_only { T::run_range(k, op, x, g, y, y_unused) } else { None };
            // nothing written: the output need not be made at all, unless the per-unit values
            // need it (without an activation they are the input's)
            let identity = matches!(op, Op::Identity);
            // (sums that may be off are taken again from the output, made below)
            let only = if range.is_none() && y_unused && g.is_none() && (acc.units.is_none() || identity) {
                T::stats_only(k, op, x, shift).filter(|c| !acc.needs_exact(c, ints))
            } else {
                None
            };
            // relu's and the identity's outputs are above zero where their inputs are active, so
            // the per-unit pass may count those too
            let actives = matches!(op, Op::Identity | Op::Relu);
            let counted = match range.or(only) {
                Some(s) => {
                    acc.add_chunk(&s);
                    identity && acc.observe_units(k, x, start, s.finite == s.elements, s.min >= 0.0, true)
                }
                None => {
                    let c = T::run_stats(k, op, x, g, y, shift);
                    acc.add_chunk_of(&c, y, ints);
                    acc.observe_units(k, y, start, c.finite == c.elements, c.min >= 0.0, actives)
                }
            };
            if !counted {
                acc.count_active(k, x, start, E::is_active);
            }
        }
    }
}

/// Elements of type `from` in byte order `order` → native elements of type `to` (a float type, or
/// `from` itself). Integers convert exactly where the target can hold them, else round to nearest.
pub fn decode(k: &Kernel, src: &[u8], from: DType, order: ByteOrder, to: DType, dst: &mut [u8]) {
    fn typed<A: Element>(k: &Kernel, x: &[A], big: bool, to: DType, dst: &mut [u8]) {
        let fix = move |v: A| if big { v.swap() } else { v };
        match to {
            DType::F16 => k.convert(x, cast_slice_mut::<u8, F16>(dst), move |v| fix(v).to_f16()),
            DType::BF16 => k.convert(x, cast_slice_mut::<u8, BF16>(dst), move |v| fix(v).to_bf16()),
            DType::F32 => k.convert(x, cast_slice_mut::<u8, f32>(dst), move |v| fix(v).to_f32()),
            DType::F64 => k.convert(x, cast_slice_mut::<u8, f64>(dst), move |v| fix(v).to_f64()),
            _ => k.convert(x, cast_slice_mut::<u8, A>(dst), fix),
        }
    }
    let big = order == ByteOrder::Big;
    with_element!(from, A => typed::<A>(k, cast_slice(src), big, to, dst))
}

/// Native working-type elements → output type (rounded once) in byte order `order`.
pub fn encode(k: &Kernel, src: &[u8], from: DType, to: DType, order: ByteOrder, dst: &mut [u8]) {
    fn typed<A: Element>(k: &Kernel, x: &[A], to: DType, dst: &mut [u8]) {
        match to {
            DType::F16 => k.convert(x, cast_slice_mut::<u8, F16>(dst), A::to_f16),
            DType::BF16 => k.convert(x, cast_slice_mut::<u8, BF16>(dst), A::to_bf16),
            DType::F32 => k.convert(x, cast_slice_mut::<u8, f32>(dst), A::to_f32),
            DType::F64 => k.convert(x, cast_slice_mut::<u8, f64>(dst), A::to_f64),
            _ => dst.copy_from_slice(cast_slice(x)),
        }
    }
    match (from, to) {
        (DType::F32, DType::F16) => k.f32_to_half(cast_slice(src), cast_slice_mut(dst)),
        (DType::F16, DType::F32) => k.half_to_f32(cast_slice(src), cast_slice_mut(dst)),
        (DType::F32, DType::BF16) => k.f32_to_bf16(cast_slice(src), cast_slice_mut(dst)),
        (DType::BF16, DType::F32) => k.bf16_to_f32(cast_slice(src), cast_slice_mut(dst)),
        (a, b) if a == b => dst.copy_from_slice(src),
        _ => with_element!(from, A => typed::<A>(k, cast_slice(src), to, dst)),
    }
    if order == ByteOrder::Big {
        swap_in_place(k, to, dst);
    }
}

/// Reverses the byte order of every element of `b` (type `dt`).
pub fn swap_in_place(k: &Kernel, dt: DType, b: &mut [u8]) {
    with_element!(dt, T => k.convert_in_place(cast_slice_mut::<u8, T>(b), T::swap))
}

// ---------------------------------------------------------------- drivers

/// Drives `elements` elements from `src` (and `up`) through `proc` into `out`.
pub fn stream<O: Observer>(
    proc: &mut ChunkProcessor<O>,
    elements: u64,
    src: &mut dyn ChunkSource,
    up: Option<&mut dyn ChunkSource>,
    out: &mut dyn FnMut(&[u8]) -> Result<()>,
) -> Result<()> {
    stream_range(proc, 0, elements, src, up, &mut |proc, x, g, start| out(proc.process(x, g, start)))
}

/// What a driver does with one chunk: `(processor, input bytes, upstream bytes, flat index)`.
type EachChunk<'a, O> = dyn FnMut(&mut ChunkProcessor<O>, &[u8], Option<&[u8]>, u64) -> Result<()> + 'a;

/// The elements `[first, first + elements)` of an array (the sources are positioned there), a
/// chunk at a time: `each(proc, x, g, start)` processes one. Flat indices, and so PReLU channels
/// and units, count from `first`.
fn stream_range<O: Observer>(
    proc: &mut ChunkProcessor<O>,
    first: u64,
    elements: u64,
    src: &mut dyn ChunkSource,
    mut up: Option<&mut dyn ChunkSource>,
    each: &mut EachChunk<O>,
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
        each(proc, x, g, first + done)?;
        done += n as u64;
    }
    Ok(())
}

/// Where positional output goes: the file and the offset of the array's first element, and
/// whether the writer wants the CRC-32 of the bytes written (a zip entry's, for `.pt` storages).
#[derive(Clone, Copy)]
pub struct PositionalOut<'a> {
    pub file: &'a std::fs::File,
    pub offset: u64,
    pub crc: bool,
}

/// Chunks whose output [`ranges`] writes at once: 1 MiB for a 4-byte type. More gave large
/// page-cache folios, whose allocation ran into reclaim on the development VM (4 MiB writes took
/// 1-6 s of system time for 2 GiB, against 0.65 s; docs/performance.md).
const WRITE_CHUNKS: usize = 4;

/// The CRC-32 of the output's bytes, when [`PositionalOut::crc`] asked for it.
pub type OutCrc = Option<crc32fast::Hasher>;

/// The array on `threads` workers, each over its own contiguous range of whole chunks: it reads
/// its range of `input` (and `up`) with its own reader, runs its own fork of `proc`, and writes
/// its output at its own offset of `out` (when there is one). The forks' statistics and observers
/// merge into `proc` in range order, exactly.
pub fn ranges<O: Observer>(
    proc: &mut ChunkProcessor<O>,
    elements: u64,
    input: &FileRegion,
    up: Option<&FileRegion>,
    out: Option<PositionalOut>,
    threads: usize,
) -> Result<OutCrc> {
    use crate::platform::FileAt;
    let chunk = proc.chunk_elems as u64;
    let per = elements.div_ceil(chunk).div_ceil(threads.max(1) as u64).max(1) * chunk;
    let bounds: Vec<(u64, u64)> =
        (0..threads as u64).map(|t| (t * per, ((t + 1) * per).min(elements))).filter(|(a, b)| a < b).collect();
    let plan = proc.plan();
    let (isz, wsz, osz) = (plan.input.size() as u64, plan.work.size() as u64, plan.output.size() as u64);
    let forks: Vec<ChunkProcessor<O>> = bounds.iter().map(|_| proc.fork()).collect();
    let gate = &std::sync::Mutex::new(());
    let run = |(a, b): (u64, u64), mut p: ChunkProcessor<O>| -> Result<(ChunkProcessor<O>, OutCrc)> {
        let mut src = input.range(a * isz, b * isz)?;
        let mut upsrc = match up {
            Some(u) => Some(u.range(a * wsz, b * wsz)?),
            None => None,
        };
        let ups: Option<&mut dyn ChunkSource> = match upsrc.as_mut() {
            Some(u) => Some(u.as_mut()),
            None => None,
        };
        // the output of WRITE_CHUNKS chunks gathered into one write (the kernel still works a
        // chunk at a time, in cache): fewer turns at the file's inode lock. The workers take turns
        // at a lock of their own first: at the inode's, a waiting worker spins in the kernel (12%
        // of `apply .pt`'s CPU, measured). A worker that finds the turn taken computes on into a
        // second batch's room and waits only when both are full.
        let cap = p.chunk_elems * osz as usize;
        let piece = cap * WRITE_CHUNKS;
        // without an output, one chunk's place, reused in cache
        let room = if out.is_some() { 2 * piece } else { cap };
        let mut buf = AlignedBuf::new(room);
        let (mut filled, mut at) = (0usize, out.map_or(0, |o| o.offset + a * osz));
        let mut write = |buf: &AlignedBuf, filled: &mut usize, wait: bool| -> Result<()> {
            let Some(out) = out else {
                *filled = 0;
                return Ok(());
            };
            let _turn = match gate.try_lock() {
                Ok(t) => t,
                Err(std::sync::TryLockError::Poisoned(e)) => e.into_inner(),
                Err(std::sync::TryLockError::WouldBlock) if !wait => return Ok(()),
                Err(std::sync::TryLockError::WouldBlock) => gate.lock().unwrap_or_else(|e| e.into_inner()),
            };
            // at most `piece` bytes a call: larger writes got large page-cache folios (above)
            for part in buf.bytes()[..*filled].chunks(piece) {
                out.file.write_all_at(part, at).context("cannot write the output")?;
                at += part.len() as u64;
            }
            *filled = 0;
            Ok(())
        };
        // each range's own CRC, combined in range order below (while the chunk is in cache)
        let mut crc = out.filter(|o| o.crc).map(|_| crc32fast::Hasher::new());
        stream_range(&mut p, a, b - a, src.as_mut(), ups, &mut |p, x, g, start| {
            let len = (x.len() as u64 / isz * osz) as usize;
            let o = &mut buf.bytes_mut()[filled..filled + len];
            p.process_into(x, g, start, o);
            if let Some(h) = crc.as_mut() {
                h.update(o);
            }
            filled += len;
            if filled + cap > room {
                write(&buf, &mut filled, true)?;
            } else if filled >= piece {
                write(&buf, &mut filled, false)?;
            }
            Ok(())
        })?;
        if filled > 0 {
            write(&buf, &mut filled, true)?;
        }
        Ok((p, crc))
    };
    let run = &run;
    let results: Vec<Result<(ChunkProcessor<O>, OutCrc)>> = std::thread::scope(|s| {
        // the last range on this thread: one wakeup fewer (milliseconds on an idle virtual CPU)
        let mut forks = forks.into_iter();
        let Some((&last, rest)) = bounds.split_last() else { return Vec::new() };
        let workers: Vec<_> = rest.iter().zip(&mut forks).map(|(&r, p)| s.spawn(move || run(r, p))).collect();
        let mine = forks.next().map(|p| {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(last, p)))
                .unwrap_or_else(|_| Err(anyhow!("a worker thread panicked")))
        });
        let mut results: Vec<Result<(ChunkProcessor<O>, OutCrc)>> = workers
            .into_iter()
            .map(|w| w.join().unwrap_or_else(|_| Err(anyhow!("a worker thread panicked"))))
            .collect();
        results.extend(mine);
        results
    });
    let mut crc = out.filter(|o| o.crc).map(|_| crc32fast::Hasher::new());
    for r in results {
        let (p, c) = r?;
        proc.merge(p);
        if let (Some(all), Some(c)) = (crc.as_mut(), c) {
            all.combine(&c);
        }
    }
    Ok(crc)
}

/// [`stream`] with the writing on a second thread: the kernel works on the next chunk while the
/// previous one is copied into the page cache (or a pipe). The kernel writes each chunk straight
/// into a buffer that is then handed over; up to `DEPTH` are in flight, recycled between the two
/// threads, so memory stays bounded. A write error stops the reader at its next chunk.
pub fn stream_overlapped<O: Observer>(
    proc: &mut ChunkProcessor<O>,
    elements: u64,
    src: &mut dyn ChunkSource,
    up: Option<&mut dyn ChunkSource>,
    sink: &mut (dyn FnMut(&[u8]) -> Result<()> + Send),
) -> Result<()> {
    use std::sync::mpsc::{channel, sync_channel};
    const DEPTH: usize = 3;
    let (full_tx, full_rx) = sync_channel::<(AlignedBuf, usize)>(DEPTH);
    let (free_tx, free_rx) = channel::<AlignedBuf>();
    let (isz, osz) = (proc.plan().input.size(), proc.plan().output.size());
    let cap = proc.chunk_elems * osz;
    std::thread::scope(|s| {
        let writer = s.spawn(move || -> Result<()> {
            for (buf, len) in full_rx {
                sink(&buf.bytes()[..len])?;
                let _ = free_tx.send(buf);
            }
            Ok(())
        });
        // "writer stopped" only ends the loop: the writer's own error is the one reported.
        let mut made = 0;
        let mut hand_over = |p: &mut ChunkProcessor<O>, x: &[u8], g: Option<&[u8]>, start: u64| -> Result<()> {
            let stopped = || anyhow!("the writer stopped");
            let mut buf = match free_rx.try_recv() {
                Ok(b) => b,
                Err(_) if made < DEPTH + 1 => {
                    made += 1;
                    AlignedBuf::new(cap)
                }
                Err(_) => free_rx.recv().map_err(|_| stopped())?,
            };
            let len = x.len() / isz * osz;
            p.process_into(x, g, start, &mut buf.bytes_mut()[..len]);
            full_tx.send((buf, len)).map_err(|_| stopped())
        };
        let reader = stream_range(proc, 0, elements, src, up, &mut hand_over);
        drop(full_tx);
        let written = writer.join().unwrap_or_else(|_| Err(anyhow!("the writer thread panicked")));
        // A write error explains a stopped reader; otherwise report the reader's own error.
        written.and(reader)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunks::ReadSource;

    /// Counts the values it sees and remembers where each chunk started.
    struct Count {
        n: u64,
        starts: Vec<u64>,
    }
    impl Observer for Count {
        fn observe(&mut self, values: &[u8], dtype: DType, start: u64) {
            self.n += (values.len() / dtype.size()) as u64;
            self.starts.push(start);
        }
        fn fresh(&self) -> Count {
            Count { n: 0, starts: vec![] }
        }
        fn merge(&mut self, o: Count) {
            self.n += o.n;
            self.starts.extend(o.starts);
        }
    }

    fn plan() -> Plan {
        Plan {
            input: DType::F32,
            input_order: ByteOrder::Little,
            work: DType::F32,
            output: DType::F16,
            output_order: ByteOrder::Little,
            act: Some(Activation::Value(Func::Relu)),
            slope: 0.01,
            channels: None,
            upstream: None,
        }
    }

    /// Workers writing one file by position, more batches than one lock turn holds, an odd tail:
    /// every byte lands where it belongs, whoever writes first, and the CRC is the file's.
    #[test]
    fn ranges_write_every_batch_in_place() {
        use std::io::Write;
        let n = 3 * 1024 * 1024 + 7;
        let x: Vec<f32> = (0..n).map(|i| ((i * 7919) % 2001) as f32 - 1000.5).collect();
        let want: Vec<u8> = x.iter().flat_map(|v| v.max(0.0).to_le_bytes()).collect();
        // data at an odd offset (as in compare.py's zip) read, or mapped and read unaligned by the
        // kernel (`align` 1); at an aligned one, mapped
        for (start, align, threads) in [(3, 4, 1), (3, 4, 3), (3, 1, 1), (3, 1, 2), (3, 1, 3), (8, 8, 2), (8, 8, 8)] {
            let mut input = tempfile::tempfile().unwrap();
            input.write_all(&vec![0u8; start]).unwrap();
            input.write_all(cast_slice(&x)).unwrap();
            let region = FileRegion { file: input, start: start as u64, len: 4 * n as u64, mappable: true, align };
            let out = tempfile::tempfile().unwrap();
            let plan = Plan { output: DType::F32, ..plan() };
            let mut p: ChunkProcessor<Unwatched> = ChunkProcessor::new(plan, None);
            let at = PositionalOut { file: &out, offset: 5, crc: true };
            let crc = ranges(&mut p, n as u64, &region, None, Some(at), threads).unwrap().unwrap();
            let mut got = Vec::new();
            std::io::Read::read_to_end(&mut &out, &mut got).unwrap();
            assert_eq!(got.len(), 5 + want.len(), "{threads} workers");
            assert!(got[5..] == want[..], "{threads} workers");
            assert_eq!(crc.finalize(), crc32fast::hash(&want), "{threads} workers");
        }
    }

    /// Statistics (with per-unit values and counts) of f32 data mapped at an odd offset and read
    /// unaligned, with an upstream mapped the same way: the same as of the data read aligned.
    #[test]
    fn statistics_of_unaligned_maps_equal_aligned_reads() {
        use crate::stats::{StatsAccumulator, UnitLayout};
        use std::io::Write;
        let (rows, units) = (12_289u64, 256u64);
        let n = rows * units;
        let x: Vec<f32> = (0..n).map(|i| ((i * 7919) % 2003) as f32 / 64.0 - 15.0).collect();
        let file_at = |start: usize| {
            let mut f = tempfile::tempfile().unwrap();
            f.write_all(&vec![0u8; start]).unwrap();
            f.write_all(cast_slice(&x)).unwrap();
            f
        };
        let acts = [None, Some(Activation::Value(Func::Relu)), Some(Activation::Value(Func::Leaky))];
        for act in acts.into_iter().chain([Some(Activation::Grad(Func::Relu))]) {
            let upstream = matches!(act, Some(Activation::Grad(_))).then_some(ByteOrder::Little);
            let mut found = vec![];
            // odd offsets mapped and read unaligned (`align` 1), then read aligned
            for (start, align) in [(3, 1), (5, 1), (3, 4), (8, 8)] {
                let region = |f| FileRegion { file: f, start: start as u64, len: 4 * n, mappable: true, align };
                let (input, up) = (region(file_at(start)), region(file_at(start)));
                if std::env::var_os("RELU_READ").is_none() && cfg!(unix) {
                    assert_eq!(input.range(0, input.len).unwrap().is_mapped(), align == 1 || start == 8);
                }
                let plan = Plan { output: DType::F32, act, upstream, ..plan() };
                let acc = StatsAccumulator::new(Some(UnitLayout::new(&[rows, units], false, 1)));
                let mut p: ChunkProcessor<Unwatched> = ChunkProcessor::new(plan, Some(acc)).discarding(true);
                ranges(&mut p, n, &input, upstream.map(|_| &up), None, 2).unwrap();
                let json = p.stats().unwrap().to_json("x", None, "float32", &[rows, units], 0.0);
                found.push(serde_json::to_string(&json).unwrap());
            }
            assert!(found.iter().all(|j| *j == found[0]), "{act:?}");
        }
    }

    #[test]
    fn observers_see_every_value_and_merge_in_order() {
        let x: Vec<f32> = (0..200_000).map(|i| i as f32 - 1000.0).collect();
        let bytes: Vec<u8> = cast_slice(&x).to_vec();
        let mut p = ChunkProcessor::new(plan(), None).with_observer(Some(Count { n: 0, starts: vec![] }));
        let mut out = Vec::new();
        let mut src = ReadSource::new(&bytes[..], bytes.len() as u64);
        stream(&mut p, x.len() as u64, &mut src, None, &mut |b| {
            out.extend_from_slice(b);
            Ok(())
        })
        .unwrap();
        assert_eq!(out.len(), x.len() * 2);
        let mut q = p.fork();
        q.process(&bytes[..40], None, x.len() as u64);
        p.merge(q);
        let (_, o) = p.into_results();
        let c = o.unwrap();
        assert_eq!(c.n, x.len() as u64 + 10);
        assert_eq!(c.starts[..2], [0, 65536]);
        assert_eq!(*c.starts.last().unwrap(), x.len() as u64);
    }
}
