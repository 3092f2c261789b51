//! The kernel bodies, written once over plain lane arrays and inlined into each ISA's
//! `#[target_feature]` wrapper (`x86.rs`, `aarch64.rs`), where the compiler turns the lane loops
//! into that ISA's vectors. Each body applies a per-element function from `act` — the same one the
//! scalar reference uses — so every level computes exactly the reference's values.
//!
//! All bodies take raw pointers so that `x` and `y` may be the same buffer (in-place use); a block
//! of `x` is always read completely before the matching block of `y` is written.

use super::ops::{ChunkStats, Counts, RawOp, UnitFold};
use crate::act::{self, Float, Int};

use std::ptr;

/// Elements per block: two to four vectors on AVX2/NEON, one or two on AVX-512.
const L: usize = 16;

/// Marks the end of a block in a loop over blocks. A block's lanes already become vectors; left
/// alone, LLVM's loop vectorizer then widens the loop *across* blocks as well, as sixteen strided
/// streams of gathers and scatters (AVX-512 has both), which made f32 relu 8× slower than the
/// scalar level. An empty `asm!` is a call it cannot widen; it emits no instruction.
#[inline(always)]
fn end_of_block() {
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    // SAFETY: an empty instruction sequence that touches no memory, stack or flags.
    unsafe {
        std::arch::asm!("", options(nomem, nostack, preserves_flags))
    }
}

/// How far ahead of a block its input is prefetched, in bytes: a memory-mapped input then
/// streams from memory while the blocks before it compute (without, each page's first lines were
/// waited for: bf16 `stats` from a map 0.19 s, with 0.13 s; 1–8 KiB measured alike). Data already
/// in cache (a `pread` buffer) pays one load-port hint a line.
const PREFETCH: usize = 4096;

/// Asks for the cache lines [`PREFETCH`] bytes past a block of `T`s. A prefetch never faults,
/// so the address may lie past the data (it is never dereferenced).
#[inline(always)]
pub(super) fn prefetch_block<T>(p: *const T) {
    let bytes = L * std::mem::size_of::<T>();
    let mut off = 0;
    while off < bytes {
        let _q = (p as *const u8).wrapping_add(PREFETCH + off);
        #[cfg(target_arch = "x86_64")]
        // SAFETY: a hint: it reads nothing architecturally and never faults.
        unsafe {
            std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(_q as *const i8)
        };
        #[cfg(target_arch = "aarch64")]
        // SAFETY: as above (`prfm` never faults).
        unsafe {
            std::arch::asm!("prfm pldl1keep, [{0}]", in(reg) _q, options(nostack, preserves_flags, readonly))
        };
        off += 64;
    }
}

/// A per-element operand: one value for all elements, or one per element.
pub trait Src<V: Copy>: Copy {
    /// # Safety
    /// `i` is in bounds of the stream.
    unsafe fn get(self, i: usize) -> V;
}

#[derive(Clone, Copy)]
pub struct Splat<V>(pub V);

impl<V: Copy> Src<V> for Splat<V> {
    #[inline(always)]
    unsafe fn get(self, _: usize) -> V {
        self.0
    }
}

#[derive(Clone, Copy)]
pub struct Each<V>(pub *const V);

impl<V: Copy> Src<V> for Each<V> {
    #[inline(always)]
    unsafe fn get(self, i: usize) -> V {
        *self.0.add(i)
    }
}

/// What a kernel body observes of each (input, output) pair: nothing ([`NoStats`], which compiles
/// away), or the fused statistics ([`FloatStats`], [`IntStats`]). Lane `j` of a block always goes
/// to accumulator lane `j`, so the accumulators stay in vector registers.
pub trait Observe<T: Copy> {
    fn new(shift: f64) -> Self;
    fn lane(&mut self, j: usize, x: T, y: T);
    /// True when the fast block path met a value it cannot sum (NaN, ±inf): the caller then
    /// observes the whole call again with `lane`, which checks every element.
    #[inline(always)]
    fn poisoned(&self) -> bool {
        false
    }
    /// Blocks the caller passes between two [`Observe::end_run`]s (`usize::MAX`: one run).
    const RUN: usize = usize::MAX;
    /// The end of a run of [`Observe::RUN`] blocks (or fewer, at the end of a call): a branch
    /// outside the loop over a run's blocks, so the accumulators stay in registers inside it.
    #[inline(always)]
    fn end_run(&mut self) {}
    /// A whole block; the default observes lane by lane.
    #[inline(always)]
    fn block(&mut self, xs: &[T; L], ys: &[T; L]) {
        for j in 0..L {
            self.lane(j, xs[j], ys[j]);
        }
    }
    /// A block of 16-bit floats, with their bits (`inf`: the format's infinity): an observer may
    /// count on the bits, sixteen lanes a vector, what [`Observe::block`] counts on the values.
    #[inline(always)]
    fn block_bits(&mut self, _xh: &[u16; L], _yh: &[u16; L], xs: &[T; L], ys: &[T; L], _inf: u16) {
        self.block(xs, ys);
    }
    fn finish(self) -> ChunkStats;
    /// Whether this observer gains from vectors wider than 256 bits. [`FloatStats`] of 16-bit
    /// and f32 values keeps its accumulators in 256-bit vectors (eight f32 or u32 lanes, four f64
    /// lanes, the same at every level so the sums' bits are); at AVX-512 the compiler packs a
    /// block into one zmm and then splits and joins it for them, and a Sapphire Rapids core runs
    /// 256-bit arithmetic on three ports, 512-bit on two. `Kernel` runs such bodies at AVX2 there.
    const WIDE: bool = true;
    /// This observer as [`FloatStats<f32>`], for a level's own loop over 16-bit floats
    /// ([`HalfCvt::exact_stats`]); `None` for every other observer.
    #[inline(always)]
    fn as_f32_stats(&mut self) -> Option<&mut FloatStats<f32>> {
        None
    }
}

pub struct NoStats;

impl<T: Copy> Observe<T> for NoStats {
    #[inline(always)]
    fn new(_: f64) -> Self {
        NoStats
    }
    #[inline(always)]
    fn lane(&mut self, _: usize, _: T, _: T) {}
    #[inline(always)]
    fn block(&mut self, _: &[T; L], _: &[T; L]) {}
    #[inline(always)]
    fn finish(self) -> ChunkStats {
        ChunkStats::default()
    }
}

/// The element count and the non-finite classes of a float observer, and its chunk result.
#[derive(Default)]
pub(super) struct Classes {
    pub(super) elements: u64,
    nan: u64,
    posinf: u64,
    neginf: u64,
}

impl Classes {
    #[inline(always)]
    fn nonfinite<T: Float>(&mut self, y: T) {
        self.nan += y.is_nan() as u64;
        self.posinf += (y == T::INFINITY) as u64;
        self.neginf += (y == T::NEG_INFINITY) as u64;
    }

    /// The chunk's counts and its finite min and max, the lanes folded in order; the moments are
    /// the caller's.
    fn stats<T: Float>(&self, shift: f64, min: &[T], max: &[T]) -> ChunkStats {
        ChunkStats {
            counts: Counts {
                elements: self.elements,
                nan: self.nan,
                posinf: self.posinf,
                neginf: self.neginf,
                finite: self.elements - self.nan - self.posinf - self.neginf,
                ..Counts::default()
            },
            shift,
            min: min.iter().fold(f64::INFINITY, |m, v| m.min(v.to_f64())),
            max: max.iter().fold(f64::NEG_INFINITY, |m, v| m.max(v.to_f64())),
            ..ChunkStats::default()
        }
    }
}

/// Accumulators for float values, eight lanes wide so they fit in vector registers: zero and
/// negative counters as u32 lanes (a call covers at most a chunk, far below 2^32 per lane), sums of
/// `y − shift` and its square in f64 lanes, min/max in the value type. NaN and ±inf are rare: a block
/// that has any is counted element by element, off the hot path.
pub struct FloatStats<T> {
    pub(super) shift: f64,
    pub(super) counts: Classes,
    zeros: [u32; W],
    negative: [u32; W],
    /// Zero and negative counts in the value type, moved into `zeros` and `negative` every
    /// [`COUNT_RUNS`] runs (exact: below 2^24 per lane even in f32) and at the end: counting in
    /// float lanes keeps the vectorizer from narrowing the comparisons to bytes and widening
    /// them again.
    zf: [T; W],
    nf: [T; W],
    /// The same counts of 16-bit floats, taken on their bits ([`Observe::block_bits`]): one
    /// vector of u16 lanes each, moved into `zeros` and `negative` with the float-lane counts.
    pub(super) zh: [u16; L],
    pub(super) nh: [u16; L],
    pub(super) runs: u32,
    /// Σy (not shifted: no rounding in a difference) of the current run of at most [`FLUSH`]
    /// elements per call, lane-wise; then moved into the compensated pair `hi + lo` without
    /// rounding error (TwoSum), so a chunk's sum carries only the rounding of those short runs
    /// (NumPy's pairwise sum carries theirs and a tree's on top). `finish` subtracts n·shift.
    pub(super) s1: [f64; S],
    pub(super) hi: [f64; S],
    pub(super) lo: [f64; S],
    /// Elements observed by `lane` since the last move into `hi + lo` (blocks come in runs).
    fill: u32,
    /// Σ(y − shift)², lane-wise (the std need not be exact: its sums are not compensated).
    pub(super) s2: [f64; S],
    /// Σ(y − shift)³ and Σ(y − shift)⁴ (the kurtosis), as `s2`.
    pub(super) s3: [f64; S],
    pub(super) s4: [f64; S],
    pub(super) min: [T; W],
    pub(super) max: [T; W],
}

/// Accumulator lanes: eight for the counters and extremes (one vector of f32 or u32), four for
/// the f64 sums (one AVX2 vector each: eight would need more registers than there are, and the
/// spilled sums would add through memory).
const W: usize = 8;
const S: usize = 4;

/// Elements summed in plain lanes before a compensated flush: 16 per lane, as NumPy's
/// unrolled blocks of 128.
const FLUSH: u32 = 64;

/// Runs between moves of [`FloatStats`]'s lane counts into u32s: a run adds at most 2·RUN = 8
/// to a float lane (2^13 runs stay far below 2^24) and RUN = 4 to a u16 lane (below 2^16).
pub(super) const COUNT_RUNS: u32 = 1 << 13;

/// `a + b` as the rounded sum and its exact error (Knuth's TwoSum: no condition on the order of
/// magnitudes; six operations the vectorizer keeps in lanes).
#[inline(always)]
pub fn two_sum(a: f64, b: f64) -> (f64, f64) {
    let s = a + b;
    let bb = s - a;
    (s, (a - (s - bb)) + (b - bb))
}

impl<T: Float> FloatStats<T> {
    /// A block's sixteen values into the lanes, with no branches and no selects on the sums
    /// (so the accumulators stay in registers): the counters and extremes take the block's two
    /// halves into eight lanes, the sums its four quarters into four lanes, the quarters added
    /// pairwise first, so each accumulator takes one dependent operation per block. A NaN or
    /// infinity makes its lane's sums non-finite (finite values cannot overflow an f64 sum of a
    /// chunk), which `poisoned` sees; the caller then recounts the whole call with `lane` (so
    /// min/max here only ever compare finite values).
    #[inline(always)]
    fn sixteen(&mut self, xs: &[T; L], ys: &[T; L]) {
        for j in 0..W {
            let (xa, xb, ya, yb) = (xs[j], xs[j + W], ys[j], ys[j + W]);
            let one = |c: bool| act::select(c, T::ONE, T::ZERO);
            self.zf[j] += one(ya == T::ZERO) + one(yb == T::ZERO);
            self.nf[j] += one(xa < T::ZERO) + one(xb < T::ZERO);
        }
        self.extremes_and_sums(ys);
    }

    /// The block's extremes and power sums (its counts are the caller's).
    #[inline(always)]
    fn extremes_and_sums(&mut self, ys: &[T; L]) {
        for j in 0..W {
            let (ya, yb) = (ys[j], ys[j + W]);
            let lo = act::select(yb < ya, yb, ya);
            let hi = act::select(yb > ya, yb, ya);
            self.min[j] = act::select(lo < self.min[j], lo, self.min[j]);
            self.max[j] = act::select(hi > self.max[j], hi, self.max[j]);
        }
        // the same sums written over whole quarters (quarter k: values 4k..4k+4, lane j to sum
        // lane j), each half's partial sums first: the loop vectorizer then keeps every quarter
        // one vector, converted once, and spills less (a block took ~95 instructions, now ~78)
        let shift = self.shift;
        let quarter = |k: usize| -> [f64; S] { std::array::from_fn(|j| ys[k * S + j].to_f64()) };
        let add = |a: [f64; S], b: [f64; S]| -> [f64; S] { std::array::from_fn(|j| a[j] + b[j]) };
        let mul = |a: [f64; S], b: [f64; S]| -> [f64; S] { std::array::from_fn(|j| a[j] * b[j]) };
        let half = |k: usize| {
            let (f0, f1) = (quarter(k), quarter(k + 1));
            let (d0, d1) = (f0.map(|v| v - shift), f1.map(|v| v - shift));
            let (q0, q1) = (mul(d0, d0), mul(d1, d1));
            (add(f0, f1), add(q0, q1), add(mul(q0, d0), mul(q1, d1)), add(mul(q0, q0), mul(q1, q1)))
        };
        // s += (quarters 0+1) + (quarters 2+3), as before: the same bits
        let (a1, a2, a3, a4) = half(0);
        let (b1, b2, b3, b4) = half(2);
        self.s1 = add(self.s1, add(a1, b1));
        self.s2 = add(self.s2, add(a2, b2));
        self.s3 = add(self.s3, add(a3, b3));
        self.s4 = add(self.s4, add(a4, b4));
    }
}

impl<T: Float> Observe<T> for FloatStats<T> {
    #[inline(always)]
    fn new(shift: f64) -> Self {
        FloatStats {
            shift,
            counts: Classes::default(),
            zeros: [0; W],
            negative: [0; W],
            zf: [T::ZERO; W],
            nf: [T::ZERO; W],
            zh: [0; L],
            nh: [0; L],
            runs: 0,
            s1: [0.0; S],
            hi: [0.0; S],
            lo: [0.0; S],
            fill: 0,
            s2: [0.0; S],
            s3: [0.0; S],
            s4: [0.0; S],
            min: [T::INFINITY; W],
            max: [T::NEG_INFINITY; W],
        }
    }

    const RUN: usize = FLUSH as usize / L;

    /// f64 values fill a zmm with their eight lanes (`stats` of 1 GiB of f64: 0.143 s at
    /// AVX-512, 0.153 s at AVX2); f32 ones do not (512 MiB: 0.100 s at AVX2, 0.112 s at AVX-512;
    /// bf16 0.151 s against 0.199 s).
    const WIDE: bool = std::mem::size_of::<T>() == 8;

    #[inline(always)]
    fn as_f32_stats(&mut self) -> Option<&mut FloatStats<f32>> {
        (self as &mut dyn std::any::Any).downcast_mut()
    }

    #[inline(always)]
    fn end_run(&mut self) {
        self.flush();
        self.runs += 1;
        if self.runs >= COUNT_RUNS {
            self.flush_counts();
        }
    }

    #[inline(always)]
    fn block(&mut self, xs: &[T; L], ys: &[T; L]) {
        self.counts.elements += L as u64;
        self.sixteen(xs, ys);
    }

    /// Zeros and negatives counted on the bits, sixteen u16 lanes a vector (in f32 lanes they
    /// took four compares and four adds a block, and the registers the sums need).
    #[inline(always)]
    fn block_bits(&mut self, xh: &[u16; L], yh: &[u16; L], _: &[T; L], ys: &[T; L], inf: u16) {
        self.counts.elements += L as u64;
        for j in 0..L {
            self.zh[j] += (yh[j] & 0x7fff == 0) as u16;
            // x < 0 (relu's own test, which the compiler then shares)
            self.nh[j] += act::half_below_zero(xh[j], inf) as u16;
        }
        self.extremes_and_sums(ys);
    }

    #[inline(always)]
    fn poisoned(&self) -> bool {
        // a non-finite run sum reaches `hi` at the next flush (and makes `lo` NaN)
        let sums = [&self.s1, &self.hi, &self.lo, &self.s2];
        !sums.iter().all(|a| a.iter().all(|v| v.is_finite()))
    }

    #[inline(always)]
    fn lane(&mut self, j: usize, x: T, y: T) {
        let j = j % W;
        self.counts.elements += 1;
        self.zeros[j] += (y == T::ZERO) as u32;
        self.negative[j] += (x < T::ZERO) as u32;
        let finite = y.is_finite();
        if !finite {
            self.counts.nonfinite(y);
        }
        let d = act::select(finite, y.to_f64() - self.shift, 0.0);
        let k = j % S;
        self.s1[k] += act::select(finite, y.to_f64(), 0.0);
        let q = d * d;
        self.s2[k] += q;
        self.s3[k] += q * d;
        self.s4[k] += q * q;
        self.min[j] = act::select(finite && y < self.min[j], y, self.min[j]);
        self.max[j] = act::select(finite && y > self.max[j], y, self.max[j]);
        self.fill += 1;
        if self.fill >= FLUSH {
            self.flush();
        }
    }

    fn finish(mut self) -> ChunkStats {
        self.flush();
        self.flush_counts();
        let sum = |a: [u32; W]| a.iter().map(|&v| v as u64).sum::<u64>();
        // the lanes' pairs folded without rounding but in `lo`, whose own error is ~2^-106 |Σ|
        let (raw, raw_lo) = fold(&self.hi, &self.lo);
        // Σ(y − shift) = Σy − n·shift, the product split exactly (an FMA gives its error)
        let n = (self.counts.elements - self.counts.nan - self.counts.posinf - self.counts.neginf) as f64;
        let p = n * self.shift;
        let p_lo = n.mul_add(self.shift, -p);
        let (s1, e) = two_sum(raw, -p);
        let (s1, s1_lo) = two_sum(s1, e + (raw_lo - p_lo));
        let c = self.counts.stats(self.shift, &self.min, &self.max);
        ChunkStats {
            counts: Counts { zeros: sum(self.zeros), negative: sum(self.negative), ..c.counts },
            s1,
            s1_lo,
            s2: pairwise(&self.s2),
            s3: pairwise(&self.s3),
            s4: pairwise(&self.s4),
            ..c
        }
    }
}

impl<T: Float> FloatStats<T> {
    /// Moves the float-lane counts into the integer ones.
    #[inline(never)]
    pub(super) fn flush_counts(&mut self) {
        for j in 0..W {
            // SAFETY: whole numbers in [0, 2^24)
            let (z, n) = unsafe {
                (self.zf[j].to_f64().to_int_unchecked::<i32>(), self.nf[j].to_f64().to_int_unchecked::<i32>())
            };
            self.zeros[j] += z as u32 + self.zh[j] as u32 + self.zh[j + W] as u32;
            self.negative[j] += n as u32 + self.nh[j] as u32 + self.nh[j + W] as u32;
            (self.zf[j], self.nf[j]) = (T::ZERO, T::ZERO);
        }
        (self.zh, self.nh) = ([0; L], [0; L]);
        self.runs = 0;
    }

    /// Moves the run sums into the compensated pairs, exactly.
    #[inline(always)]
    fn flush(&mut self) {
        for j in 0..S {
            let (s, e) = two_sum(self.hi[j], self.s1[j]);
            self.hi[j] = s;
            self.lo[j] += e;
            self.s1[j] = 0.0;
        }
        self.fill = 0;
    }
}

/// The lanes' compensated pairs `hi[j] + lo[j]` as one, `(sum, what it lost to rounding)`: the
/// lanes fold without rounding but in the low part, whose own error is ~2^-106 of the sum.
fn fold(hi: &[f64; S], lo: &[f64; S]) -> (f64, f64) {
    let (mut s, mut err) = (0.0, 0.0);
    for j in 0..S {
        let (t, e) = two_sum(s, hi[j]);
        s = t;
        err += e + lo[j];
    }
    two_sum(s, err)
}

/// The finite min and max alone (a histogram's first pass), at a fraction of [`FloatStats`]'s
/// work: one lane per position of a block, so each accumulator takes one `min`/`max` per block
/// (FloatStats pairs a block's halves first, a longer chain). Among equal values (±0) the first
/// in its lane wins; the lanes fold in order. `y · 0` is NaN for NaN and ±inf: kept in a probe
/// lane, it poisons the block path, and the call is observed again with `lane`, as in
/// `FloatStats`. The counts of elements and of non-finite values are exact; zeros, negatives and
/// the sums are not gathered (zero).
pub struct RangeStats<T> {
    shift: f64,
    counts: Classes,
    probe: [T; L],
    min: [T; L],
    max: [T; L],
}

impl<T: Float> Observe<T> for RangeStats<T> {
    #[inline(always)]
    fn new(shift: f64) -> Self {
        RangeStats {
            shift,
            counts: Classes::default(),
            probe: [T::ZERO; L],
            min: [T::INFINITY; L],
            max: [T::NEG_INFINITY; L],
        }
    }

    #[inline(always)]
    #[allow(clippy::needless_range_loop)] // lane j of four arrays: one vector op each
    fn block(&mut self, _: &[T; L], ys: &[T; L]) {
        self.counts.elements += L as u64;
        for j in 0..L {
            let y = ys[j];
            self.probe[j] = self.probe[j] - y * T::ZERO;
            self.min[j] = act::select(y < self.min[j], y, self.min[j]);
            self.max[j] = act::select(y > self.max[j], y, self.max[j]);
        }
    }

    #[inline(always)]
    fn poisoned(&self) -> bool {
        !self.probe.iter().all(|v| v.is_finite())
    }

    #[inline(always)]
    fn lane(&mut self, j: usize, _: T, y: T) {
        self.counts.elements += 1;
        let finite = y.is_finite();
        if !finite {
            self.counts.nonfinite(y);
        }
        self.min[j] = act::select(finite && y < self.min[j], y, self.min[j]);
        self.max[j] = act::select(finite && y > self.max[j], y, self.max[j]);
    }

    fn finish(self) -> ChunkStats {
        self.counts.stats(self.shift, &self.min, &self.max)
    }
}

/// Lane accumulators for integer values (all finite).
pub struct IntStats<T> {
    shift: f64,
    elements: [u32; L],
    zeros: [u32; L],
    negative: [u32; L],
    s1: [f64; L],
    s2: [f64; L],
    s3: [f64; L],
    s4: [f64; L],
    min: [T; L],
    max: [T; L],
}

impl<T: Int> Observe<T> for IntStats<T> {
    #[inline(always)]
    fn new(shift: f64) -> Self {
        IntStats {
            shift,
            elements: [0; L],
            zeros: [0; L],
            negative: [0; L],
            s1: [0.0; L],
            s2: [0.0; L],
            s3: [0.0; L],
            s4: [0.0; L],
            min: [T::MAX; L],
            max: [T::MIN; L],
        }
    }

    #[inline(always)]
    fn lane(&mut self, j: usize, x: T, y: T) {
        self.elements[j] += 1;
        self.zeros[j] += (y == T::ZERO) as u32;
        self.negative[j] += (x < T::ZERO) as u32;
        let d = y.to_f64() - self.shift;
        self.s1[j] += d;
        let q = d * d;
        self.s2[j] += q;
        self.s3[j] += q * d;
        self.s4[j] += q * q;
        self.min[j] = act::select(y < self.min[j], y, self.min[j]);
        self.max[j] = act::select(y > self.max[j], y, self.max[j]);
    }

    fn finish(self) -> ChunkStats {
        let sum = |a: [u32; L]| a.iter().map(|&v| v as u64).sum::<u64>();
        let elements = sum(self.elements);
        ChunkStats {
            counts: Counts {
                elements,
                zeros: sum(self.zeros),
                negative: sum(self.negative),
                finite: elements,
                ..Counts::default()
            },
            shift: self.shift,
            s1: pairwise(&self.s1),
            s2: pairwise(&self.s2),
            s3: pairwise(&self.s3),
            s4: pairwise(&self.s4),
            min: self.min.iter().fold(f64::INFINITY, |m, v| m.min(v.to_f64())),
            max: self.max.iter().fold(f64::NEG_INFINITY, |m, v| m.max(v.to_f64())),
            ..ChunkStats::default()
        }
    }
}

/// Pairwise sum of the lanes (error grows with log of the lane count, not the count).
fn pairwise(v: &[f64]) -> f64 {
    if v.len() <= 2 {
        return v.iter().sum();
    }
    let (a, b) = v.split_at(v.len() / 2);
    pairwise(a) + pairwise(b)
}

/// `y[i] = f(x[i], g[i], a[i])` for `i < n`, in blocks of `L` lanes; `O` observes each pair.
///
/// # Safety
/// `x` readable (at any alignment: it is read unaligned) and `y` null (nothing written) or
/// writable for `n` elements, the same buffer or disjoint; `g` and `a` readable at every index
/// below `n`.
#[inline(always)]
pub unsafe fn map<T: Copy, G: Copy, A: Copy, O: Observe<T>>(
    x: *const T,
    g: impl Src<G>,
    a: impl Src<A>,
    y: *mut T,
    n: usize,
    shift: f64,
    f: impl Fn(T, G, A) -> T,
) -> ChunkStats {
    let mut obs = O::new(shift);
    let mut i = 0;
    while i + L <= n {
        let end = i + ((n - i) / L).min(O::RUN) * L;
        while i < end {
            prefetch_block(x.add(i));
            let xs: [T; L] = ptr::read_unaligned(x.add(i) as *const [T; L]);
            let mut ys = xs;
            for j in 0..L {
                ys[j] = f(xs[j], g.get(i + j), a.get(i + j));
            }
            obs.block(&xs, &ys);
            if !y.is_null() {
                ptr::write(y.add(i) as *mut [T; L], ys);
            }
            end_of_block();
            i += L;
        }
        obs.end_run();
    }
    while i < n {
        let xv = x.add(i).read_unaligned();
        let yv = f(xv, g.get(i), a.get(i));
        if !y.is_null() {
            *y.add(i) = yv;
        }
        obs.lane(i % L, xv, yv);
        i += 1;
    }
    if obs.poisoned() {
        // (without an output, the values are made again)
        return recount::<T, O>(n, shift, |i| {
            let xv = x.add(i).read_unaligned();
            (xv, if y.is_null() { f(xv, g.get(i), a.get(i)) } else { *y.add(i) })
        });
    }
    obs.finish()
}

/// `c` with its sums taken again over the finite values of `y` scaled by a power of two that
/// keeps them in range (as careful `nrm2` implementations do), for f64 values whose squares or
/// differences overflow. Powers of two scale exactly; the result records the exponent.
#[cold]
pub fn scaled_sums<T: Float>(mut c: ChunkStats, y: &[T]) -> ChunkStats {
    let big = c.min.abs().max(c.max.abs()).max(c.shift.abs());
    // 2^exp >= big, so every scaled value and the scaled shift lie in [-1, 1]
    let exp = if big > 0.0 && big.is_finite() { (big.log2().ceil() as i32).max(0) } else { 0 };
    let down = act::ldexp(1.0, -exp);
    let shift = c.shift * down;
    let (mut s1, mut s2, mut s3, mut s4) = (0.0, 0.0, 0.0, 0.0);
    for v in y.iter().map(|v| v.to_f64()).filter(|v| v.is_finite()) {
        let d = v * down - shift;
        s1 += d;
        s2 += d * d;
        s3 += d * d * d;
        s4 += d * d * (d * d);
    }
    (c.s1, c.s1_lo, c.s2, c.s3, c.s4, c.exp) = (s1, 0.0, s2, s3, s4, exp);
    c
}

/// Observes a whole call again element by element (after the fast path met a NaN or infinity):
/// `xy(i)` gives element `i`'s input and output.
#[inline(never)]
unsafe fn recount<T: Copy, O: Observe<T>>(n: usize, shift: f64, xy: impl Fn(usize) -> (T, T)) -> ChunkStats {
    let mut obs = O::new(shift);
    for i in 0..n {
        let (x, y) = xy(i);
        obs.lane(i % L, x, y);
    }
    obs.finish()
}

/// `y[i] = f(x[i])` between element types (conversions, byte swaps).
///
/// # Safety
/// `x` readable and `y` writable for `n` elements, the same buffer or disjoint.
#[inline(always)]
pub unsafe fn convert<A: Copy, B: Copy + Default>(x: *const A, y: *mut B, n: usize, f: impl Fn(A) -> B) {
    let mut i = 0;
    while i + L <= n {
        let xs: [A; L] = ptr::read(x.add(i) as *const [A; L]);
        let mut ys = [B::default(); L];
        for j in 0..L {
            ys[j] = f(xs[j]);
        }
        ptr::write(y.add(i) as *mut [B; L], ys);
        end_of_block();
        i += L;
    }
    while i < n {
        *y.add(i) = f(*x.add(i));
        i += 1;
    }
}

///
/// # Safety
/// `x` readable (at any alignment) and `y` writable for `n` elements, the same buffer or
/// disjoint; `g` null or readable for `n` elements; the per-element slopes of `op` hold `n` values.
#[inline(always)]
pub unsafe fn float<T: Float, O: Observe<T>>(
    op: RawOp<T>,
    x: *const T,
    g: *const T,
    y: *mut T,
    n: usize,
    shift: f64,
) -> ChunkStats {
    let none = Splat(());
    // Opaque to the optimizer: `1.0 * a` must stay a multiply (it quiets a signalling NaN slope,
    // as PyTorch's `ones * a` does) instead of being folded to `a`.
    let one = Splat(std::hint::black_box(T::ONE));
    let s = shift;
    match (op, g.is_null()) {
        (RawOp::Identity, _) => map::<_, _, _, O>(x, none, none, y, n, s, |x, _, _| x),
        (RawOp::Relu, _) => map::<_, _, _, O>(x, none, none, y, n, s, |x, _, _| act::relu(x)),
        (RawOp::Leaky(a), _) => map::<_, _, _, O>(x, none, Splat(a), y, n, s, |x, _, a| act::leaky(x, a)),
        (RawOp::LeakyEach(a), _) => map::<_, _, _, O>(x, none, Each(a), y, n, s, |x, _, a| act::leaky(x, a)),
        (RawOp::GradRelu, true) => map::<_, _, _, O>(x, one, none, y, n, s, |x, g, _| act::grad_relu(x, g)),
        (RawOp::GradRelu, false) => map::<_, _, _, O>(x, Each(g), none, y, n, s, |x, g, _| act::grad_relu(x, g)),
        (RawOp::GradLeaky(a), true) => map::<_, _, _, O>(x, one, Splat(a), y, n, s, act::grad_leaky),
        (RawOp::GradLeaky(a), false) => {
            map::<_, _, _, O>(x, Each(g), Splat(a), y, n, s, |x, g, a| act::grad_leaky(x, g, a))
        }
        (RawOp::GradLeakyEach(a), true) => {
            map::<_, _, _, O>(x, one, Each(a), y, n, s, |x, g, a| act::grad_leaky(x, g, a))
        }
        (RawOp::GradLeakyEach(a), false) => {
            map::<_, _, _, O>(x, Each(g), Each(a), y, n, s, |x, g, a| act::grad_leaky(x, g, a))
        }
    }
}

///
/// # Safety
/// as [`float`].
#[inline(always)]
pub unsafe fn int<T: Int, O: Observe<T>>(
    op: RawOp<()>,
    x: *const T,
    g: *const T,
    y: *mut T,
    n: usize,
    shift: f64,
) -> ChunkStats {
    let none = Splat(());
    let s = shift;
    match (op, g.is_null()) {
        (RawOp::Relu, _) => map::<_, _, _, O>(x, none, none, y, n, s, |x, _, _| act::relu_int(x)),
        (RawOp::GradRelu, true) => {
            map::<_, _, _, O>(x, Splat(T::ONE), none, y, n, s, |x, g, _| act::grad_relu_int(x, g))
        }
        (RawOp::GradRelu, false) => map::<_, _, _, O>(x, Each(g), none, y, n, s, |x, g, _| act::grad_relu_int(x, g)),
        _ => map::<_, _, _, O>(x, none, none, y, n, s, |x, _, _| x),
    }
}

/// Eight 16-bit floats to and from f32: f16 in software or with F16C, or bf16. The scalar
/// conversions and relu on the bits are the format's own.
pub trait HalfCvt {
    /// The bits of +infinity (magnitudes above it are NaNs).
    const INF: u16 = 0x7c00;
    unsafe fn load(p: *const u16) -> [f32; 8];
    unsafe fn store(p: *mut u16, v: [f32; 8]);
    #[inline(always)]
    fn to_f32(h: u16) -> f32 {
        act::f16_to_f32(h)
    }
    #[inline(always)]
    fn from_f32(f: f32) -> u16 {
        act::f32_to_f16(f)
    }
    #[inline(always)]
    fn relu_bits(h: u16) -> u16 {
        act::relu_f16(h)
    }
    /// `blocks` whole blocks of relu (`relu`) or the identity observed into `obs` as
    /// [`FloatStats::block_bits`] and [`Observe::end_run`] would, in runs of
    /// [`FloatStats::RUN`] blocks, with relu's bits written to `y` unless it is null: a level's
    /// own vectors, written out. False where the level has none (the caller's loop runs).
    #[inline(always)]
    unsafe fn exact_stats(
        _obs: &mut FloatStats<f32>,
        _x: *const u16,
        _y: *mut u16,
        _blocks: usize,
        _relu: bool,
    ) -> bool {
        false
    }
}

/// The scalar side of a bf16 [`HalfCvt`]: the format's own conversions and relu on the bits
/// (every bf16 converter shares them; only the eight-lane `load` and `store` differ).
macro_rules! bf16_scalars {
    () => {
        const INF: u16 = 0x7f80;
        #[inline(always)]
        fn to_f32(h: u16) -> f32 {
            $crate::act::bf16_to_f32(h)
        }
        #[inline(always)]
        fn from_f32(f: f32) -> u16 {
            $crate::act::f32_to_bf16(f)
        }
        #[inline(always)]
        fn relu_bits(h: u16) -> u16 {
            $crate::act::relu_bf16(h)
        }
    };
}
#[cfg(target_arch = "x86_64")]
pub(crate) use bf16_scalars;

/// bfloat16: integer shifts and rounding, which vectorize at every level.
pub struct Bf16;

impl HalfCvt for Bf16 {
    #[inline(always)]
    unsafe fn load(p: *const u16) -> [f32; 8] {
        let h: [u16; 8] = ptr::read_unaligned(p as *const [u16; 8]);
        let mut v = [0f32; 8];
        for j in 0..8 {
            v[j] = f32::from_bits((h[j] as u32) << 16);
        }
        v
    }
    /// `act::f32_to_bf16` lane by lane, written with selects so that it vectorizes.
    #[inline(always)]
    unsafe fn store(p: *mut u16, v: [f32; 8]) {
        let mut h = [0u16; 8];
        for j in 0..8 {
            let u = v[j].to_bits();
            let nan = (u & 0x7fff_ffff) > 0x7f80_0000;
            let rounded = u.wrapping_add(0x7fff + ((u >> 16) & 1)) >> 16;
            h[j] = act::select(nan, (u >> 16) | 0x0040, rounded) as u16;
        }
        ptr::write_unaligned(p as *mut [u16; 8], h);
    }
    bf16_scalars!();
}

pub struct SoftHalf;

impl HalfCvt for SoftHalf {
    #[inline(always)]
    unsafe fn load(p: *const u16) -> [f32; 8] {
        let h: [u16; 8] = ptr::read_unaligned(p as *const [u16; 8]);
        h.map(act::f16_to_f32)
    }
    #[inline(always)]
    unsafe fn store(p: *mut u16, v: [f32; 8]) {
        ptr::write_unaligned(p as *mut [u16; 8], v.map(act::f32_to_f16));
    }
}

/// f16 activations: relu directly on the bits (without statistics); the rest, and anything
/// observed, in f32 with one rounding back to f16.
///
/// # Safety
/// as [`float`], except that `y` may be null where nothing is written: `Identity` or `Relu`
/// with an observer (`O` not zero-sized). Anything else with a null `y` panics (checked).
#[inline(always)]
pub unsafe fn half<C: HalfCvt, O: Observe<f32>>(
    op: RawOp<f32>,
    x: *const u16,
    g: *const u16,
    y: *mut u16,
    n: usize,
    shift: f64,
) -> ChunkStats {
    // A real check, once a chunk: a null `y` reaching a path that writes would be a wild write.
    assert!(
        !y.is_null() || (matches!(op, RawOp::Identity | RawOp::Relu) && std::mem::size_of::<O>() != 0),
        "internal error: a null output for an f16 op that writes"
    );
    let g = (!g.is_null()).then_some(g);
    let s = shift;
    match op {
        RawOp::Relu if std::mem::size_of::<O>() == 0 => {
            // A plain loop: the loop vectorizer handles u16 lanes better than the block form.
            for i in 0..n {
                *y.add(i) = C::relu_bits(*x.add(i));
            }
            ChunkStats::default()
        }
        RawOp::Identity => {
            // The bits themselves: a round trip through f32 would quiet a signalling NaN, and
            // `--act none` promises the values untouched. The observer still sees them as f32.
            let c = if std::mem::size_of::<O>() != 0 {
                half_map::<C, O, true>(x, None, Splat(0.0), ptr::null_mut(), n, s, |x, _, _| x, |h| h, false)
            } else {
                ChunkStats::default()
            };
            if !y.is_null() && !ptr::eq(x, y) {
                ptr::copy(x, y, n);
            }
            c
        }
        RawOp::Relu => half_map::<C, O, true>(x, None, Splat(0.0), y, n, s, |x, _, _| act::relu(x), C::relu_bits, true),
        RawOp::Leaky(a) => {
            half_map::<C, O, false>(x, None, Splat(a), y, n, s, |x, _, a| act::leaky(x, a), |h| h, false)
        }
        RawOp::LeakyEach(a) => {
            half_map::<C, O, false>(x, None, Each(a), y, n, s, |x, _, a| act::leaky(x, a), |h| h, false)
        }
        RawOp::GradRelu => {
            half_map::<C, O, false>(x, g, Splat(0.0), y, n, s, |x, g, _| act::grad_relu(x, g), |h| h, false)
        }
        RawOp::GradLeaky(a) => half_map::<C, O, false>(x, g, Splat(a), y, n, s, act::grad_leaky, |h| h, false),
        RawOp::GradLeakyEach(a) => half_map::<C, O, false>(x, g, Each(a), y, n, s, act::grad_leaky, |h| h, false),
    }
}

/// Observes the f32 value the f16 output holds (the result rounded to f16), so statistics describe
/// the data as written. `EXACT`: `f` always gives a value the format holds (identity, relu), so the
/// result is observed as computed, without reading the output back, and written as `bits` gives it
/// on the input's bits (what `f` gives, NaNs quieted as a round trip would: no conversion back;
/// `bits` is read with `EXACT` only; `relu` says which of the two `bits` is, for a level's own
/// loop, [`HalfCvt::exact_stats`]);
/// then `y` may be null (the statistics alone are wanted) and nothing is written.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn half_map<C: HalfCvt, O: Observe<f32>, const EXACT: bool>(
    x: *const u16,
    g: Option<*const u16>,
    a: impl Src<f32>,
    y: *mut u16,
    n: usize,
    shift: f64,
    f: impl Fn(f32, f32, f32) -> f32,
    bits: impl Fn(u16) -> u16,
    relu: bool,
) -> ChunkStats {
    let mut obs = O::new(shift);
    // see `float`: keep `1.0 * a` a multiply
    let ones = [std::hint::black_box(1.0f32); L];
    // Sixteen values a step (two conversions of eight), so that value j of a block is always
    // accumulator lane j and the statistics stay in vector registers (as in `float`). A function,
    // not a closure: a closure too big to inline would be compiled without the level's features.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    unsafe fn block<C: HalfCvt, O: Observe<f32>, const EXACT: bool>(
        obs: &mut O,
        f: &impl Fn(f32, f32, f32) -> f32,
        bits: &impl Fn(u16) -> u16,
        ones: [f32; L],
        x: *const u16,
        g: Option<*const u16>,
        y: *mut u16,
        lanes: usize,
        avs: [f32; L],
    ) {
        let load16 = |p: *const u16| -> [f32; L] {
            let (a, b) = (C::load(p), C::load(p.add(8)));
            std::array::from_fn(|j| if j < 8 { a[j] } else { b[j - 8] })
        };
        let xs = load16(x);
        let gs = match g {
            Some(g) => load16(g),
            None => ones,
        };
        let mut ys = [0f32; L];
        for j in 0..L {
            ys[j] = f(xs[j], gs[j], avs[j]);
        }
        if EXACT {
            // sixteen lanes of bits a vector: the results written and their counts
            let xh: [u16; L] = ptr::read_unaligned(x as *const [u16; L]);
            let yh = xh.map(bits);
            if !y.is_null() {
                ptr::write_unaligned(y as *mut [u16; L], yh);
            }
            if std::mem::size_of::<O>() != 0 {
                if lanes == L {
                    obs.block_bits(&xh, &yh, &xs, &ys, C::INF);
                } else {
                    for j in 0..lanes {
                        obs.lane(j, xs[j], ys[j]);
                    }
                }
            }
            return;
        }
        if !y.is_null() {
            let (lo, hi) = ys.split_at(8);
            C::store(y, lo.try_into().unwrap());
            C::store(y.add(8), hi.try_into().unwrap());
        }
        if std::mem::size_of::<O>() != 0 {
            let back = load16(y);
            if lanes == L {
                obs.block(&xs, &back);
            } else {
                for j in 0..lanes {
                    obs.lane(j, xs[j], back[j]);
                }
            }
        }
    }
    // `half` checked: a null `y` comes only with `EXACT`, whose results are never read back.
    let out = |i: usize| if y.is_null() { y } else { y.add(i) };
    let mut i = 0;
    if EXACT {
        if let Some(fs) = obs.as_f32_stats() {
            if C::exact_stats(fs, x, y, n / L, relu) {
                i = n / L * L;
            }
        }
    }
    while i + L <= n {
        let end = i + ((n - i) / L).min(O::RUN) * L;
        while i < end {
            prefetch_block(x.add(i));
            let avs = std::array::from_fn(|j| a.get(i + j));
            block::<C, O, EXACT>(&mut obs, &f, &bits, ones, x.add(i), g.map(|g| g.add(i)), out(i), L, avs);
            i += L;
        }
        obs.end_run();
    }
    if i < n {
        // The tail goes through the same conversion, padded to a full block.
        let r = n - i;
        let (mut xt, mut gt, mut yt) = ([0u16; L], [0u16; L], [0u16; L]);
        ptr::copy_nonoverlapping(x.add(i), xt.as_mut_ptr(), r);
        if let Some(g) = g {
            ptr::copy_nonoverlapping(g.add(i), gt.as_mut_ptr(), r);
        }
        // `a` may only be read in bounds: give the padding lanes the last real slope.
        let av: [f32; L] = std::array::from_fn(|j| a.get(i + j.min(r - 1)));
        block::<C, O, EXACT>(&mut obs, &f, &bits, ones, xt.as_ptr(), g.map(|_| gt.as_ptr()), yt.as_mut_ptr(), r, av);
        if !y.is_null() {
            ptr::copy_nonoverlapping(yt.as_ptr(), y.add(i), r);
        }
    }
    if obs.poisoned() {
        let mut slow = O::new(shift);
        for i in 0..n {
            let xv = C::to_f32(*x.add(i));
            // without an output, the (exact) result is computed again
            let yv = if y.is_null() { f(xv, 1.0, 0.0) } else { C::to_f32(*y.add(i)) };
            slow.lane(i % L, xv, yv);
        }
        return slow.finish();
    }
    obs.finish()
}

/// f16 → f32 and f32 → f16 in bulk, through the level's converter.
///
/// # Safety
/// `x` readable and `y` writable for `n` elements, disjoint.
#[inline(always)]
pub unsafe fn half_to_f32<C: HalfCvt>(x: *const u16, y: *mut f32, n: usize) {
    let mut i = 0;
    while i + 8 <= n {
        ptr::write_unaligned(y.add(i) as *mut [f32; 8], C::load(x.add(i)));
        i += 8;
    }
    while i < n {
        *y.add(i) = C::to_f32(*x.add(i));
        i += 1;
    }
}

///
/// # Safety
/// `x` readable and `y` writable for `n` elements, disjoint.
#[inline(always)]
pub unsafe fn f32_to_half<C: HalfCvt>(x: *const f32, y: *mut u16, n: usize) {
    let mut i = 0;
    while i + 8 <= n {
        C::store(y.add(i), ptr::read_unaligned(x.add(i) as *const [f32; 8]));
        i += 8;
    }
    while i < n {
        *y.add(i) = C::from_f32(*x.add(i));
        i += 1;
    }
}

/// `c[i] += f(x[i])`: per-unit counters along a row.
///
/// # Safety
/// `x` readable and `c` writable for `n` elements, disjoint.
#[inline(always)]
pub unsafe fn count_into<T: Copy>(x: *const T, c: *mut u32, n: usize, f: impl Fn(T) -> bool) {
    let (x, c) = (std::slice::from_raw_parts(x, n), std::slice::from_raw_parts_mut(c, n));
    for (c, &v) in c.iter_mut().zip(x) {
        *c += f(v) as u32;
    }
}

/// Per-unit sums and extremes over `rows` rows of `n` units each (dense `(N, U)` layouts; row
/// `r` starts at `y + r·n`): for each unit `i`, every finite `v = f(y[r·n + i])` adds one to
/// `finite[i]`, `v` to `sum[i]`, `|v|` to `abs[i]`, and moves `min[i]`/`max[i]` (strictly: of
/// equal values the first stays); a NaN or infinity moves nothing. Eight units at a time are
/// carried down all the rows in registers (a unit's values still add in row order), so the
/// accumulators are loaded and stored once per call, not once per row.
///
/// # Safety
/// `y` readable for `rows·n` elements, the five others writable for `n` elements, all disjoint.
#[inline(always)]
pub unsafe fn unit_rows<T: Copy>(y: *const T, n: usize, rows: usize, acc: UnitLanes, f: impl Fn(T) -> f64) {
    const K: usize = 8;
    let mut u = 0;
    while u + K <= n {
        // every lane f64 (the count too: exact below 2^53), selects rather than branches, so
        // the eight units are two or four vectors
        let mut fin = [0f64; K];
        let (mut sum, mut abs, mut min, mut max) = acc.from(u).load::<K>();
        for r in 0..rows {
            let ys: [T; K] = ptr::read_unaligned(y.add(r * n + u) as *const [T; K]);
            for j in 0..K {
                let v = f(ys[j]);
                let ok = v.abs() < f64::INFINITY;
                let z = act::select(ok, v, 0.0);
                fin[j] += act::select(ok, 1.0, 0.0);
                sum[j] += z;
                abs[j] += z.abs();
                let (lo, hi) = (act::select(ok, v, f64::INFINITY), act::select(ok, v, f64::NEG_INFINITY));
                min[j] = act::select(lo < min[j], lo, min[j]);
                max[j] = act::select(hi > max[j], hi, max[j]);
            }
        }
        for (j, c) in fin.iter().enumerate() {
            *acc.finite.add(u + j) += *c as u32;
        }
        acc.from(u).store(sum, abs, min, max);
        u += K;
    }
    if u < n {
        unit_rows_tail(y.add(u), n, n - u, rows, acc.from(u), f);
    }
}

/// The last units of [`unit_rows`] (fewer than eight: `w` of rows `n` long), one at a time.
#[inline(always)]
unsafe fn unit_rows_tail<T: Copy>(y: *const T, n: usize, w: usize, rows: usize, acc: UnitLanes, f: impl Fn(T) -> f64) {
    for u in 0..w {
        let (mut fin, mut sum, mut abs) = (*acc.finite.add(u), *acc.sum.add(u), *acc.abs.add(u));
        let (mut min, mut max) = (*acc.min.add(u), *acc.max.add(u));
        for r in 0..rows {
            let v = f(*y.add(r * n + u));
            let ok = v.is_finite();
            let z = act::select(ok, v, 0.0);
            fin += ok as u32;
            sum += z;
            abs += z.abs();
            min = act::select(ok && v < min, v, min);
            max = act::select(ok && v > max, v, max);
        }
        (*acc.finite.add(u), *acc.sum.add(u), *acc.abs.add(u)) = (fin, sum, abs);
        (*acc.min.add(u), *acc.max.add(u)) = (min, max);
    }
}

/// [`unit_rows`] where every value is finite (the caller knows it from the chunk's counts): the
/// same sums and extremes without the checks, about half the work.
///
/// # Safety
/// As [`unit_rows`].
#[inline(always)]
pub unsafe fn unit_rows_finite<T: Copy>(y: *const T, n: usize, rows: usize, acc: UnitLanes, f: impl Fn(T) -> f64) {
    const K: usize = 8;
    let mut u = 0;
    while u + K <= n {
        let (mut sum, mut abs, mut min, mut max) = acc.from(u).load::<K>();
        for r in 0..rows {
            let ys: [T; K] = ptr::read_unaligned(y.add(r * n + u) as *const [T; K]);
            for j in 0..K {
                let v = f(ys[j]);
                sum[j] += v;
                abs[j] += v.abs();
                min[j] = act::select(v < min[j], v, min[j]);
                max[j] = act::select(v > max[j], v, max[j]);
            }
        }
        for j in 0..K {
            *acc.finite.add(u + j) += rows as u32;
        }
        acc.from(u).store(sum, abs, min, max);
        u += K;
    }
    if u < n {
        unit_rows_tail(y.add(u), n, n - u, rows, acc.from(u), f);
    }
}

/// [`unit_rows_finite`] for values that f32 holds exactly (f16, bf16, f32, 8- and 16-bit
/// integers: `f` widens without rounding), sixteen units at a time: the extremes compared in f32
/// lanes (eight a vector where f64 has four; `min`/`max` come in and go out as f64, exactly),
/// the sums in f64 as there, so every result is [`unit_rows_finite`]'s, bit for bit. `NONNEG`:
/// no value is below zero (the chunk's minimum says so: relu's outputs), so `|v| = v` and each
/// `abs[i]`, equal to `sum[i]` on entry (both start a chunk at zero and took the same values),
/// is its sum again on exit, without a second sum. `active` not null: each value above zero
/// also adds one to `active[i]` (for relu and the identity, the input's active count: one pass
/// fewer over the chunk).
///
/// # Safety
/// As [`unit_rows`]; `active` null or writable for `n` elements; `min` and `max` hold values f32
/// holds exactly (±inf, or earlier values of `f`); with `NONNEG`, `abs` equals `sum` on entry.
#[inline(always)]
pub unsafe fn unit_rows_narrow<T: Copy, const NONNEG: bool>(
    y: *const T,
    n: usize,
    rows: usize,
    acc: UnitLanes,
    active: *mut u32,
    f: impl Fn(T) -> f32,
) {
    const K: usize = 16;
    let mut u = 0;
    let counting = !active.is_null();
    while u + K <= n {
        let (mut sum, mut abs, min64, max64) = acc.from(u).load::<K>();
        let (mut min, mut max) = (min64.map(|v| v as f32), max64.map(|v| v as f32));
        let mut on = [0u32; K];
        for r in 0..rows {
            let ys: [T; K] = ptr::read_unaligned(y.add(r * n + u) as *const [T; K]);
            let v = ys.map(&f);
            for j in 0..K {
                min[j] = act::select(v[j] < min[j], v[j], min[j]);
                max[j] = act::select(v[j] > max[j], v[j], max[j]);
                let w = v[j] as f64;
                sum[j] += w;
                if !NONNEG {
                    abs[j] += w.abs();
                }
                on[j] += (v[j] > 0.0) as u32;
            }
        }
        for (j, c) in on.iter().enumerate() {
            *acc.finite.add(u + j) += rows as u32;
            if counting {
                *active.add(u + j) += c;
            }
        }
        let abs = if NONNEG { sum } else { abs };
        acc.from(u).store(sum, abs, min.map(|v| v as f64), max.map(|v| v as f64));
        u += K;
    }
    if u < n {
        // (one unit at a time down the rows, as `unit_rows_finite` does its last units)
        unit_rows_tail(y.add(u), n, n - u, rows, acc.from(u), |v| f(v) as f64);
        if counting {
            for r in 0..rows {
                count_into(y.add(r * n + u), active.add(u), n - u, |v| f(v) > 0.0);
            }
        }
    }
}

/// The key of `x`: an unsigned integer in the order of the floats (-0 just below +0), NaNs
/// past both infinities.
#[inline(always)]
pub fn order_key(x: f64) -> u64 {
    let b = x.to_bits();
    b ^ ((((b as i64) >> 63) as u64) | (1 << 63))
}

/// For each `x[i]`, the top `64 - shift` bits of the key of `f(x[i])` into `out[i]`, or `none`
/// where the value is not finite; returns the least and greatest finite key, `lo` and `hi`
/// included. A radix select's first pass (`quantile.rs`), apart from its counting, which is a
/// scatter: written apart, this loop vectorizes.
///
/// # Safety
/// `x` readable and `out` writable for `n` elements.
#[inline(always)]
pub unsafe fn key_tops<T: Copy>(
    x: *const T,
    out: *mut u32,
    n: usize,
    shift: u32,
    none: u32,
    (lo, hi): (u64, u64),
    f: impl Fn(T) -> f64,
) -> (u64, u64) {
    let (x, out) = (std::slice::from_raw_parts(x, n), std::slice::from_raw_parts_mut(out, n));
    // the extremes as signed keys (the key with its top bit flipped): AVX2 compares signed
    // 64-bit lanes in one instruction, unsigned ones in three
    const TOP: u64 = 1 << 63;
    let (mut slo, mut shi) = ((lo ^ TOP) as i64, (hi ^ TOP) as i64);
    for (o, &x) in out.iter_mut().zip(x) {
        let v = f(x);
        let b = v.to_bits() as i64;
        let sk = b ^ ((b >> 63) & i64::MAX);
        let fin = v.abs() < f64::INFINITY;
        *o = act::select(fin, ((sk as u64 ^ TOP) >> shift) as u32, none);
        slo = act::select(fin && sk < slo, sk, slo);
        shi = act::select(fin && sk > shi, sk, shi);
    }
    (slo as u64 ^ TOP, shi as u64 ^ TOP)
}

/// For each block of [`HIT_BLOCK`] values of `x`, whether any `f(x[i])` lies in one of the
/// closed intervals `ranges` (a radix select's later passes turn the other blocks away). `V`:
/// f32 where it holds every value exactly (eight compares to a vector), else f64.
///
/// # Safety
/// `x` readable for `blocks · HIT_BLOCK` elements, `hits` writable for `blocks`, `ranges`
/// readable for `nr`.
#[inline(always)]
pub unsafe fn block_hits<T: Copy, V: Float>(
    x: *const T,
    blocks: usize,
    ranges: *const (V, V),
    nr: usize,
    hits: *mut bool,
    f: impl Fn(T) -> V,
) {
    let ranges = std::slice::from_raw_parts(ranges, nr);
    for b in 0..blocks {
        let block: [T; HIT_BLOCK] = ptr::read_unaligned(x.add(b * HIT_BLOCK) as *const [T; HIT_BLOCK]);
        let v = block.map(&f);
        // lane-wise flags, folded once per block (a fold per compare narrows and shuffles)
        let mut hit = [0u32; HIT_BLOCK];
        for &(lo, hi) in ranges {
            for j in 0..HIT_BLOCK {
                hit[j] |= ((v[j] >= lo) & (v[j] <= hi)) as u32;
            }
        }
        *hits.add(b) = hit.iter().fold(0, |a, &h| a | h) != 0;
    }
}

/// Values [`block_hits`] looks at together.
pub const HIT_BLOCK: usize = 16;

/// The five per-unit accumulators [`unit_rows`] updates, as raw pointers.
#[derive(Clone, Copy)]
pub struct UnitLanes {
    pub finite: *mut u32,
    pub sum: *mut f64,
    pub abs: *mut f64,
    pub min: *mut f64,
    pub max: *mut f64,
}

impl UnitLanes {
    /// The accumulators from unit `u` on.
    #[inline(always)]
    unsafe fn from(self, u: usize) -> UnitLanes {
        UnitLanes {
            finite: self.finite.add(u),
            sum: self.sum.add(u),
            abs: self.abs.add(u),
            min: self.min.add(u),
            max: self.max.add(u),
        }
    }

    /// The sums and extremes of the first `K` units.
    #[inline(always)]
    unsafe fn load<const K: usize>(self) -> ([f64; K], [f64; K], [f64; K], [f64; K]) {
        (
            ptr::read_unaligned(self.sum as *const [f64; K]),
            ptr::read_unaligned(self.abs as *const [f64; K]),
            ptr::read_unaligned(self.min as *const [f64; K]),
            ptr::read_unaligned(self.max as *const [f64; K]),
        )
    }

    /// Stores the sums and extremes of the first `K` units.
    #[inline(always)]
    unsafe fn store<const K: usize>(self, sum: [f64; K], abs: [f64; K], min: [f64; K], max: [f64; K]) {
        ptr::write_unaligned(self.sum as *mut [f64; K], sum);
        ptr::write_unaligned(self.abs as *mut [f64; K], abs);
        ptr::write_unaligned(self.min as *mut [f64; K], min);
        ptr::write_unaligned(self.max as *mut [f64; K], max);
    }
}

/// One unit's run of values (NCHW layouts: `inner` consecutive values share a unit), folded as
/// [`unit_rows`] folds a column: eight lanes, then the lanes in order.
///
/// # Safety
/// `y` readable for `n` elements.
#[inline(always)]
pub unsafe fn unit_run<T: Copy>(y: *const T, n: usize, f: impl Fn(T) -> f64) -> UnitFold {
    const K: usize = 8;
    let (mut fin, mut sum, mut abs) = ([0u64; K], [0f64; K], [0f64; K]);
    let (mut min, mut max) = ([f64::INFINITY; K], [f64::NEG_INFINITY; K]);
    let mut i = 0;
    while i + K <= n {
        let ys: [T; K] = ptr::read_unaligned(y.add(i) as *const [T; K]);
        for j in 0..K {
            let v = f(ys[j]);
            let ok = v.is_finite();
            let z = act::select(ok, v, 0.0);
            fin[j] += ok as u64;
            sum[j] += z;
            abs[j] += z.abs();
            min[j] = act::select(ok && v < min[j], v, min[j]);
            max[j] = act::select(ok && v > max[j], v, max[j]);
        }
        end_of_block();
        i += K;
    }
    while i < n {
        let (j, v) = (i % K, f(*y.add(i)));
        let ok = v.is_finite();
        let z = act::select(ok, v, 0.0);
        fin[j] += ok as u64;
        sum[j] += z;
        abs[j] += z.abs();
        min[j] = act::select(ok && v < min[j], v, min[j]);
        max[j] = act::select(ok && v > max[j], v, max[j]);
        i += 1;
    }
    UnitFold {
        finite: fin.iter().sum(),
        sum: pairwise(&sum),
        abs: pairwise(&abs),
        min: min.iter().fold(f64::INFINITY, |m, &v| m.min(v)),
        max: max.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v)),
    }
}

/// How many `x[i]` satisfy `f`.
///
/// # Safety
/// `x` readable for `n` elements.
#[inline(always)]
pub unsafe fn count<T: Copy>(x: *const T, n: usize, f: impl Fn(T) -> bool) -> u32 {
    std::slice::from_raw_parts(x, n).iter().map(|&v| f(v) as u32).sum()
}

macro_rules! bin_index_body {
    ($name:ident, $F:ty) => {
        /// See `Kernel::bin_index`: branch-free per lane, so the lanes vectorize.
        ///
        /// # Safety
        /// `x` readable and `out` writable for `n` elements, disjoint.
        #[inline(always)]
        pub unsafe fn $name<T: Copy>(
            x: *const T,
            out: *mut u32,
            n: usize,
            b: crate::kernel::ops::BinSpec<$F>,
            f: impl Fn(T) -> $F,
        ) {
            #[inline(always)]
            unsafe fn one(v: $F, b: crate::kernel::ops::BinSpec<$F>) -> u32 {
                let t = (v - b.lo) * b.c;
                // In [0, n) (NaN and the rest to 0, failing the tests below), so the conversion is
                // exact and needs none of `as`'s saturation, which would keep it from vectorizing.
                let inside = (t >= 0.0) & (t < b.n as $F);
                let t = act::select(inside, t, 0.0);
                let k = t.to_int_unchecked::<i32>();
                let fr = t - k as $F;
                // A value outside lo and hi has t < 0, or t within rounding of n (never further
                // than tau from it), so it is never sure; it is given its outside code below.
                let sure = inside & (fr > b.tau) & (fr < 1.0 - b.tau);
                // Close to edge e: the caller compares with it (a table lookup here would be a
                // gather, which costs as much as the rest together). Zeros, which a relu makes
                // by the half and which often sit on an edge, have their bin ready.
                let near = inside & !sure & (b.tau < 0.5);
                let e = (k + (fr >= 0.5) as i32).min(b.n - 1) as u32;
                let code = act::select(near, e | crate::kernel::ops::NEAR, crate::kernel::ops::EXACT);
                let code = act::select(v == 0.0, b.zero, act::select(sure, k as u32, code));
                // Outside the range: counters of their own (`n` below, `n + 1` above), so that a
                // zoomed range costs no more than a wide one (the exact path took them one by
                // one, with a branch each, 5x slower). `lo` and `hi` make these tests exact.
                let n = b.n as u32;
                act::select(v < b.lo, n, act::select(v > b.hi, n + 1, code))
            }
            /// A bin (or an outside counter) moves to the counter set of its position (`L` is
            /// 16, the sets' count).
            #[inline(always)]
            fn set<F>(code: u32, j: usize, b: crate::kernel::ops::BinSpec<F>) -> u32 {
                act::select(code < b.n as u32 + 2, code.wrapping_add(j as u32 * b.stride), code)
            }
            let mut i = 0;
            while i + L <= n {
                let xs: [T; L] = ptr::read_unaligned(x.add(i) as *const [T; L]);
                let mut o = [0u32; L];
                for j in 0..L {
                    o[j] = set(one(f(xs[j]), b), j, b);
                }
                ptr::write_unaligned(out.add(i) as *mut [u32; L], o);
                i += L;
            }
            while i < n {
                *out.add(i) = set(one(f(*x.add(i)), b), i % L, b);
                i += 1;
            }
        }
    };
}
bin_index_body!(bin_index, f64);
bin_index_body!(bin_index32, f32);
