//! The chunked SIMD core: activations, their gradients and element conversions over slices.
//!
//! Layout after memchr: the bodies are written once (`generic.rs`), each ISA wraps them with its
//! `#[target_feature]` (`x86.rs`, `aarch64.rs`), and the level is detected once and cached.
//! [`Kernel`] is the safe entry point; it holds a level so tests can run every available one.
//! Nothing here knows about files or formats.

#[cfg(target_arch = "aarch64")]
mod aarch64;
mod generic;
mod levels;
mod ops;
#[cfg(target_arch = "x86_64")]
mod x86;

use crate::act::{Float, Int};
pub use generic::{order_key, two_sum, HIT_BLOCK};
use generic::{FloatStats, IntStats, NoStats, Observe, RangeStats};
pub use ops::{BinSpec, ChunkStats, Counts, Op, Slope, UnitFold, EXACT, NEAR, ZERO};

/// The per-unit accumulators [`Kernel::unit_rows`] updates, one element per unit of a row.
pub struct UnitSlices<'a> {
    pub finite: &'a mut [u32],
    pub sum: &'a mut [f64],
    pub abs: &'a mut [f64],
    pub min: &'a mut [f64],
    pub max: &'a mut [f64],
}

impl UnitSlices<'_> {
    /// The accumulators as pointers and the row length, checked against `len` values.
    fn lanes(self, len: usize) -> (generic::UnitLanes, usize) {
        let UnitSlices { finite, sum, abs, min, max } = self;
        let n = finite.len();
        assert!(sum.len() == n && abs.len() == n && min.len() == n && max.len() == n);
        assert!(n > 0 && len.is_multiple_of(n), "unit_rows takes whole rows");
        let lanes = generic::UnitLanes {
            finite: finite.as_mut_ptr(),
            sum: sum.as_mut_ptr(),
            abs: abs.as_mut_ptr(),
            min: min.as_mut_ptr(),
            max: max.as_mut_ptr(),
        };
        (lanes, n)
    }
}
use std::sync::atomic::{AtomicU8, Ordering};

/// A `T` at any address: a slice of these may start anywhere (a memory-mapped tensor after an
/// odd-length zip name), where a `&[T]` must be aligned. The f32/f64 entries read them in place
/// with unaligned loads, the same instructions as aligned ones on x86_64 and aarch64, instead
/// of copying the input into an aligned buffer first. `Unaligned<T>` reports `T`'s dtype
/// (`dtype::Element`): code that casts by dtype to `&[f32]` must cast to `&[Unaligned<f32>]`
/// instead (the histogram and the quantile passes do, for [`Kernel::compress_nonzero_f32`] and
/// [`Kernel::block_hits_f32`]).
#[derive(Clone, Copy, Default)]
#[repr(C, packed)]
pub struct Unaligned<T>(pub T);

// SAFETY: one field of a Pod type, packed: no padding, every bit pattern valid.
unsafe impl<T: bytemuck::Pod> bytemuck::Zeroable for Unaligned<T> {}
unsafe impl<T: bytemuck::Pod> bytemuck::Pod for Unaligned<T> {}

/// The element types the kernels read as `T`: `T` itself, or [`Unaligned<T>`] at any address.
///
/// # Safety
/// Implementors have `T`'s size and bits, so a pointer to them reads as a (possibly
/// unaligned) pointer to `T`.
pub unsafe trait Reads<T>: Copy {
    /// The value.
    fn elem(self) -> T;
}
// SAFETY: the same type; a packed wrapper of one `T`.
unsafe impl<T: Copy> Reads<T> for T {
    #[inline(always)]
    fn elem(self) -> T {
        self
    }
}
unsafe impl<T: Copy> Reads<T> for Unaligned<T> {
    #[inline(always)]
    fn elem(self) -> T {
        self.0
    }
}

/// `x`'s elements as a pointer to `T`, for bodies that read it unaligned.
fn reads<T, E: Reads<T>>(x: &[E]) -> *const T {
    x.as_ptr().cast()
}

/// Whether a chunk's power sums stayed in f64's range (else they are taken again, scaled).
fn sums_finite(c: &ChunkStats) -> bool {
    c.s1.is_finite() && c.s2.is_finite() && c.s3.is_finite() && c.s4.is_finite()
}

/// An instruction-set level the kernel can run at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    /// Portable code: the baseline ISA only (on x86_64 that is SSE2, which the compiler may use).
    Scalar,
    Avx2,
    Avx512,
    Neon,
}

impl Level {
    pub fn name(self) -> &'static str {
        match self {
            Level::Scalar => "scalar",
            Level::Avx2 => "avx2+f16c",
            Level::Avx512 => "avx512",
            Level::Neon => "neon",
        }
    }

    /// Whether this CPU has every feature that any function of the level enables (the
    /// `target_feature` lists in `x86.rs`, `aarch64.rs`; a test checks they match): calling a
    /// function compiled for a feature the CPU lacks is undefined behaviour.
    fn supported(self) -> bool {
        match self {
            Level::Scalar => true,
            #[cfg(target_arch = "x86_64")]
            Level::Avx2 => {
                is_x86_feature_detected!("avx2")
                    && is_x86_feature_detected!("f16c")
                    && is_x86_feature_detected!("popcnt")
            }
            #[cfg(target_arch = "x86_64")]
            Level::Avx512 => {
                is_x86_feature_detected!("avx512f")
                    && is_x86_feature_detected!("avx512bw")
                    && is_x86_feature_detected!("avx512vl")
                    && is_x86_feature_detected!("avx2")
                    && is_x86_feature_detected!("f16c")
                    && is_x86_feature_detected!("popcnt")
            }
            #[cfg(target_arch = "aarch64")]
            Level::Neon => std::arch::is_aarch64_feature_detected!("neon"),
            #[allow(unreachable_patterns)]
            _ => false,
        }
    }

    /// Every level this machine can run, best last.
    pub fn available() -> Vec<Level> {
        [Level::Scalar, Level::Neon, Level::Avx2, Level::Avx512].into_iter().filter(|l| l.supported()).collect()
    }

    /// The best level, detected on first use and cached. `RELU_SIMD=scalar|avx2|avx512|neon`
    /// caps it (for benchmarks and bug reports).
    pub fn detect() -> Level {
        static CACHE: AtomicU8 = AtomicU8::new(u8::MAX);
        const ORDER: [Level; 4] = [Level::Scalar, Level::Neon, Level::Avx2, Level::Avx512];
        let c = CACHE.load(Ordering::Relaxed);
        if let Some(&l) = ORDER.get(c as usize) {
            return l;
        }
        let mut avail = Level::available();
        if let Ok(want) = std::env::var("RELU_SIMD") {
            if let Some(pos) = avail.iter().position(|l| l.name().starts_with(want.as_str())) {
                avail.truncate(pos + 1);
            }
        }
        let best = *avail.last().unwrap_or(&Level::Scalar);
        CACHE.store(ORDER.iter().position(|&l| l == best).unwrap_or(0) as u8, Ordering::Relaxed);
        best
    }
}

// The portable level: the same bodies with no extra features, software f16.
levels::level_module!(scalar, [], crate::kernel::generic::SoftHalf, crate::kernel::generic::Bf16);

/// Calls `$f` from the module of `$level`.
macro_rules! dispatch {
    ($level:expr, $f:ident $(::<$($g:ty),*>)? ( $($arg:expr),* )) => {
        // SAFETY: a Kernel is only built for a level `supported()` on this machine, and the
        // callers check slice lengths before passing pointers.
        unsafe {
            match $level {
                #[cfg(target_arch = "x86_64")]
                Level::Avx2 => x86::avx2::$f $(::<$($g),*>)? ($($arg),*),
                #[cfg(target_arch = "x86_64")]
                Level::Avx512 => x86::avx512::$f $(::<$($g),*>)? ($($arg),*),
                #[cfg(target_arch = "aarch64")]
                Level::Neon => aarch64::neon::$f $(::<$($g),*>)? ($($arg),*),
                _ => scalar::$f $(::<$($g),*>)? ($($arg),*),
            }
        }
    };
}

/// The kernel at one level. Cheap to copy; every method works on whole slices.
#[derive(Clone, Copy, Debug)]
pub struct Kernel {
    level: Level,
}

impl Default for Kernel {
    fn default() -> Self {
        Kernel { level: Level::detect() }
    }
}

fn opt_ptr<T>(g: Option<&[T]>, n: usize) -> *const T {
    match g {
        Some(g) => {
            assert_eq!(g.len(), n, "upstream chunk length");
            g.as_ptr()
        }
        None => std::ptr::null(),
    }
}

impl Kernel {
    /// A kernel at `level`; `None` when this machine cannot run it.
    pub fn at(level: Level) -> Option<Kernel> {
        level.supported().then_some(Kernel { level })
    }

    pub fn level(&self) -> Level {
        self.level
    }

    /// The level a body observed by `O` runs at: this one, but AVX2 for observers laid out for
    /// 256-bit vectors ([`Observe::WIDE`]) on an AVX-512 machine (which always has AVX2).
    #[inline(always)]
    fn level_for<T: Copy, O: Observe<T>>(&self) -> Level {
        if !O::WIDE && self.level == Level::Avx512 {
            Level::Avx2
        } else {
            self.level
        }
    }

    /// `y = op(x, g)` for f32/f64; `g` is the upstream gradient (1 when `None`).
    /// `x` may be [`Unaligned`] elements.
    pub fn float<T: Float, E: Reads<T>>(&self, op: Op<T>, x: &[E], g: Option<&[T]>, y: &mut [T]) {
        let n = x.len();
        assert_eq!(y.len(), n);
        let (op, g) = (op.raw(n), opt_ptr(g, n));
        dispatch!(self.level, float::<T, NoStats>(op, reads(x), g, y.as_mut_ptr(), n, 0.0));
    }

    /// [`Kernel::float`] with the statistics of `(x, y)` gathered in the same pass. `shift` is
    /// subtracted before summing (a value near the mean keeps the sum of squares accurate).
    pub fn float_stats<T: Float, E: Reads<T>>(
        &self,
        op: Op<T>,
        x: &[E],
        g: Option<&[T]>,
        y: &mut [T],
        shift: f64,
    ) -> ChunkStats {
        let n = x.len();
        assert_eq!(y.len(), n);
        let (op, g) = (op.raw(n), opt_ptr(g, n));
        let c = dispatch!(
            self.level_for::<T, FloatStats<T>>(),
            float::<T, FloatStats<T>>(op, reads(x), g, y.as_mut_ptr(), n, shift)
        );
        if sums_finite(&c) {
            c
        } else {
            // only f64 values can get here (f32 squares stay far below f64's range)
            generic::scaled_sums(c, y)
        }
    }

    /// The statistics of [`Kernel::float_stats`] with nothing written, for `Op::Identity` and
    /// `Op::Relu`; `None` for other ops.
    pub fn float_stats_only<T: Float, E: Reads<T>>(&self, op: Op<T>, x: &[E], shift: f64) -> Option<ChunkStats> {
        if !matches!(op, Op::Identity | Op::Relu) {
            return None;
        }
        let n = x.len();
        let (op, null) = (op.raw(n), std::ptr::null_mut());
        let c = dispatch!(
            self.level_for::<T, FloatStats<T>>(),
            float::<T, FloatStats<T>>(op, reads(x), null, null, n, shift)
        );
        // sums out of range are taken again from the output (`float_stats`), which this has not
        sums_finite(&c).then_some(c)
    }

    /// [`Kernel::float`] with only the finite min and max of `y` (and the counts of elements and
    /// of non-finite values) gathered: a histogram's first pass. The min and max equal those
    /// [`Kernel::float_stats`] finds (where both signs of zero tie, either may be reported).
    pub fn float_range<T: Float, E: Reads<T>>(&self, op: Op<T>, x: &[E], g: Option<&[T]>, y: &mut [T]) -> ChunkStats {
        let n = x.len();
        assert_eq!(y.len(), n);
        let (op, g) = (op.raw(n), opt_ptr(g, n));
        dispatch!(self.level, float::<T, RangeStats<T>>(op, reads(x), g, y.as_mut_ptr(), n, 0.0))
    }

    pub fn float_in_place<T: Float>(&self, op: Op<T>, xy: &mut [T], g: Option<&[T]>) {
        let n = xy.len();
        let (op, g) = (op.raw(n), opt_ptr(g, n));
        let p = xy.as_mut_ptr();
        dispatch!(self.level, float::<T, NoStats>(op, p, g, p, n, 0.0));
    }

    /// The 16-bit float body at this level, f16 or (`bf16`) bfloat16 bits, observed by `O`: the
    /// f16 and bfloat16 twins below are this one call. Callers check the lengths (as for
    /// `dispatch!`): `x`, and `g` and `y` unless null, hold `n` elements.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn sixteen<O: Observe<f32>>(
        &self,
        bf16: bool,
        op: ops::RawOp<f32>,
        x: *const u16,
        g: *const u16,
        y: *mut u16,
        n: usize,
        shift: f64,
    ) -> ChunkStats {
        let level = self.level_for::<f32, O>();
        if bf16 {
            dispatch!(level, bhalf::<O>(op, x, g, y, n, shift))
        } else {
            dispatch!(level, half::<O>(op, x, g, y, n, shift))
        }
    }

    /// [`Kernel::sixteen`] from slices: `y` as long as `x`.
    #[inline(always)]
    fn sixteen_into<O: Observe<f32>>(
        &self,
        bf16: bool,
        op: Op<f32>,
        x: &[u16],
        g: Option<&[u16]>,
        y: &mut [u16],
        shift: f64,
    ) -> ChunkStats {
        let n = x.len();
        assert_eq!(y.len(), n);
        let (op, g) = (op.raw(n), opt_ptr(g, n));
        self.sixteen::<O>(bf16, op, x.as_ptr(), g, y.as_mut_ptr(), n, shift)
    }

    /// f16 (as bits): computed in f32, rounded once to f16; slopes are f32.
    pub fn half(&self, op: Op<f32>, x: &[u16], g: Option<&[u16]>, y: &mut [u16]) {
        self.sixteen_into::<NoStats>(false, op, x, g, y, 0.0);
    }

    /// [`Kernel::half`] with statistics of the input and of the f16 results, in f32.
    pub fn half_stats(&self, op: Op<f32>, x: &[u16], g: Option<&[u16]>, y: &mut [u16], shift: f64) -> ChunkStats {
        self.sixteen_into::<FloatStats<f32>>(false, op, x, g, y, shift)
    }

    pub fn half_in_place(&self, op: Op<f32>, xy: &mut [u16], g: Option<&[u16]>) {
        let n = xy.len();
        let (op, g) = (op.raw(n), opt_ptr(g, n));
        let p = xy.as_mut_ptr();
        dispatch!(self.level, half::<NoStats>(op, p, g, p, n, 0.0));
    }

    /// bfloat16 bits, as [`Kernel::half`]: relu on the bits, the rest in f32 with one rounding.
    pub fn bf16(&self, op: Op<f32>, x: &[u16], g: Option<&[u16]>, y: &mut [u16]) {
        self.sixteen_into::<NoStats>(true, op, x, g, y, 0.0);
    }

    /// [`Kernel::bf16`] with statistics of the input and of the bf16 results, in f32.
    pub fn bf16_stats(&self, op: Op<f32>, x: &[u16], g: Option<&[u16]>, y: &mut [u16], shift: f64) -> ChunkStats {
        self.sixteen_into::<FloatStats<f32>>(true, op, x, g, y, shift)
    }

    /// The statistics of [`Kernel::half_stats`] or [`Kernel::bf16_stats`] with nothing written,
    /// for `Op::Identity` and `Op::Relu` (whose results the format holds exactly); `None` for
    /// other ops.
    pub fn half_stats_only(&self, bf16: bool, op: Op<f32>, x: &[u16], shift: f64) -> Option<ChunkStats> {
        if !matches!(op, Op::Identity | Op::Relu) {
            return None;
        }
        let n = x.len();
        let (op, null) = (op.raw(n), std::ptr::null_mut());
        Some(self.sixteen::<FloatStats<f32>>(bf16, op, x.as_ptr(), null, null, n, shift))
    }

    /// [`Kernel::float_range`] for f16 (`bf16`: bfloat16) bits: with `y`, as
    /// [`Kernel::half_stats`] writes it; without, as [`Kernel::half_stats_only`] (then `None` for
    /// ops other than `Op::Identity` and `Op::Relu`).
    pub fn half_range(
        &self,
        bf16: bool,
        op: Op<f32>,
        x: &[u16],
        g: Option<&[u16]>,
        y: Option<&mut [u16]>,
    ) -> Option<ChunkStats> {
        let n = x.len();
        let y = match y {
            Some(y) => {
                assert_eq!(y.len(), n);
                y.as_mut_ptr()
            }
            None if matches!(op, Op::Identity | Op::Relu) && g.is_none() => std::ptr::null_mut(),
            None => return None,
        };
        let (op, g) = (op.raw(n), opt_ptr(g, n));
        Some(self.sixteen::<RangeStats<f32>>(bf16, op, x.as_ptr(), g, y, n, 0.0))
    }

    pub fn bf16_to_f32(&self, x: &[u16], y: &mut [f32]) {
        assert_eq!(x.len(), y.len());
        dispatch!(self.level, bf16_to_f32(x.as_ptr(), y.as_mut_ptr(), x.len()))
    }

    pub fn f32_to_bf16(&self, x: &[f32], y: &mut [u16]) {
        assert_eq!(x.len(), y.len());
        dispatch!(self.level, f32_to_bf16(x.as_ptr(), y.as_mut_ptr(), x.len()))
    }

    /// Integers: `Op::Relu`, `Op::GradRelu` (times `g`) or `Op::Identity`.
    pub fn int<T: Int>(&self, op: Op<()>, x: &[T], g: Option<&[T]>, y: &mut [T]) {
        let n = x.len();
        assert_eq!(y.len(), n);
        let (op, g) = (op.raw(n), opt_ptr(g, n));
        dispatch!(self.level, int::<T, NoStats>(op, x.as_ptr(), g, y.as_mut_ptr(), n, 0.0));
    }

    pub fn int_stats<T: Int>(&self, op: Op<()>, x: &[T], g: Option<&[T]>, y: &mut [T], shift: f64) -> ChunkStats {
        let n = x.len();
        assert_eq!(y.len(), n);
        let (op, g) = (op.raw(n), opt_ptr(g, n));
        dispatch!(self.level, int::<T, IntStats<T>>(op, x.as_ptr(), g, y.as_mut_ptr(), n, shift))
    }

    pub fn int_in_place<T: Int>(&self, op: Op<()>, xy: &mut [T], g: Option<&[T]>) {
        let n = xy.len();
        let (op, g) = (op.raw(n), opt_ptr(g, n));
        let p = xy.as_mut_ptr();
        dispatch!(self.level, int::<T, NoStats>(op, p, g, p, n, 0.0));
    }

    /// `y[i] = f(x[i])`, vectorized at this level (conversions and byte swaps).
    pub fn convert<A: Copy, B: Copy + Default>(&self, x: &[A], y: &mut [B], f: impl Fn(A) -> B) {
        let n = x.len();
        assert_eq!(y.len(), n);
        dispatch!(self.level, convert(x.as_ptr(), y.as_mut_ptr(), n, f))
    }

    pub fn convert_in_place<A: Copy + Default>(&self, xy: &mut [A], f: impl Fn(A) -> A) {
        let p = xy.as_mut_ptr();
        dispatch!(self.level, convert(p, p, xy.len(), f))
    }

    /// `counts[i] += f(x[i])` (per-unit counters along a row).
    pub fn count_into<T: Copy>(&self, x: &[T], counts: &mut [u32], f: impl Fn(T) -> bool) {
        assert_eq!(x.len(), counts.len());
        dispatch!(self.level, count_into(x.as_ptr(), counts.as_mut_ptr(), x.len(), f))
    }

    /// Per-unit sums and extremes over whole rows of units: `y` holds rows of `n =
    /// finite.len()` units; for each unit `i`, every finite `v = f(y[r·n + i])` adds one to
    /// `finite[i]`, `v` to `sum[i]` (in row order), `|v|` to `abs[i]`, and moves `min[i]`,
    /// `max[i]`. `all_finite`: the caller knows every `f(y[i])` is finite (the checks are
    /// skipped).
    pub fn unit_rows<T: Copy>(&self, y: &[T], acc: UnitSlices, all_finite: bool, f: impl Fn(T) -> f64) {
        let (lanes, n) = acc.lanes(y.len());
        let rows = y.len() / n;
        if all_finite {
            dispatch!(self.level, unit_rows_finite(y.as_ptr(), n, rows, lanes, f))
        } else {
            dispatch!(self.level, unit_rows(y.as_ptr(), n, rows, lanes, f))
        }
    }

    /// [`Kernel::unit_rows`] of values that are all finite and that f32 holds exactly (`f`
    /// widens without rounding; `min` and `max` hold such values or ±inf): the same results,
    /// the extremes compared in f32. `nonneg`: no value is below zero, and each `abs[i]` equals
    /// `sum[i]` on entry (it does again on exit). `active`: one more for each value above zero.
    pub fn unit_rows_f32<T: Copy>(
        &self,
        y: &[T],
        acc: UnitSlices,
        nonneg: bool,
        active: Option<&mut [u32]>,
        f: impl Fn(T) -> f32,
    ) {
        let (lanes, n) = acc.lanes(y.len());
        let rows = y.len() / n;
        let active = match active {
            Some(a) => {
                assert_eq!(a.len(), n);
                a.as_mut_ptr()
            }
            None => std::ptr::null_mut(),
        };
        dispatch!(self.level, unit_rows_narrow(y.as_ptr(), n, rows, lanes, nonneg, active, f))
    }

    /// The top `64 - shift` bits of each value's order key ([`order_key`] of `f(x[i])`) into
    /// `out`, `none` for values that are not finite; `lohi` widened to the least and greatest
    /// finite key.
    pub fn key_tops<T: Copy>(
        &self,
        x: &[T],
        out: &mut [u32],
        shift: u32,
        none: u32,
        lohi: (u64, u64),
        f: impl Fn(T) -> f64,
    ) -> (u64, u64) {
        assert_eq!(x.len(), out.len());
        dispatch!(self.level, key_tops(x.as_ptr(), out.as_mut_ptr(), x.len(), shift, none, lohi, f))
    }

    /// For each whole block of [`HIT_BLOCK`] values of `x` (`hits` has one entry per block),
    /// whether any `f(x[i])` lies in one of the closed intervals `ranges`.
    pub fn block_hits<T: Copy, V: Float>(&self, x: &[T], ranges: &[(V, V)], hits: &mut [bool], f: impl Fn(T) -> V) {
        assert!(hits.len() * HIT_BLOCK <= x.len());
        let (p, r, h) = (x.as_ptr(), ranges.as_ptr(), hits.as_mut_ptr());
        dispatch!(self.level, block_hits(p, hits.len(), r, ranges.len(), h, f))
    }

    /// One unit's run of values folded: the finite ones' count, sum, sum of magnitudes, min, max.
    pub fn unit_run<T: Copy>(&self, y: &[T], f: impl Fn(T) -> f64) -> UnitFold {
        dispatch!(self.level, unit_run(y.as_ptr(), y.len(), f))
    }

    /// How many elements of `x` satisfy `f`.
    pub fn count<T: Copy>(&self, x: &[T], f: impl Fn(T) -> bool) -> u32 {
        dispatch!(self.level, count(x.as_ptr(), x.len(), f))
    }

    /// The bin of each value (see [`BinSpec`]), `n` below the range and `n + 1` above it,
    /// `NEAR | e` next to edge `e` (see [`NEAR`]), or [`EXACT`] where the exact path must decide
    /// (NaN, a range too narrow for the fast path).
    pub fn bin_index<T: Copy>(&self, x: &[T], out: &mut [u32], b: BinSpec<f64>, f: impl Fn(T) -> f64) {
        assert!(x.len() == out.len() && b.n >= 1 && b.n as u64 + 1 + 15 * b.stride as u64 <= i32::MAX as u64);
        dispatch!(self.level, bin_index(x.as_ptr(), out.as_mut_ptr(), x.len(), b, f))
    }

    /// [`Kernel::bin_index`] in f32 (for f32 and f16 data: twice the lanes).
    pub fn bin_index32<T: Copy>(&self, x: &[T], out: &mut [u32], b: BinSpec<f32>, f: impl Fn(T) -> f32) {
        assert!(x.len() == out.len() && b.n >= 1 && b.n as u64 + 1 + 15 * b.stride as u64 <= i32::MAX as u64);
        dispatch!(self.level, bin_index32(x.as_ptr(), out.as_mut_ptr(), x.len(), b, f))
    }

    /// Packs the values of `x` other than ±0 into `out` (16 elements longer): their count and
    /// the zeros' count. `None` where the level has no vector compress.
    #[cfg_attr(not(target_arch = "x86_64"), allow(unused_variables))]
    pub fn compress_nonzero_f32<E: Reads<f32>>(&self, x: &[E], out: &mut [f32]) -> Option<(usize, u64)> {
        match self.level {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: the level is only chosen where the CPU has AVX-512F and POPCNT.
            Level::Avx512 => Some(unsafe { x86::compress_nonzero_f32_avx512(reads(x), x.len(), out) }),
            #[cfg(target_arch = "x86_64")]
            // SAFETY: the level is only chosen where the CPU has AVX2 and POPCNT.
            Level::Avx2 => Some(unsafe { x86::compress_nonzero_f32_avx2(reads(x), x.len(), out) }),
            _ => None,
        }
    }

    /// [`Kernel::block_hits`] for f32 values, with AVX2 intrinsics where the CPU has them.
    pub fn block_hits_f32<E: Reads<f32>>(&self, x: &[E], ranges: &[(f32, f32)], hits: &mut [bool]) {
        match self.level {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: both levels are only chosen where the CPU has AVX2.
            Level::Avx2 | Level::Avx512 => unsafe { x86::block_hits_f32_avx2(reads(x), x.len(), ranges, hits) },
            _ => self.block_hits(x, ranges, hits, E::elem),
        }
    }

    /// Whether [`Kernel::split_codes`] does its work at this level.
    pub fn can_split_codes(&self) -> bool {
        cfg!(target_arch = "x86_64") && self.level == Level::Avx512
    }

    /// Splits a block of [`Kernel::bin_index`] codes: those below `limit` (certain bins, in
    /// their counter sets) packed into `sure`, the positions of the others other than `zero`
    /// into `rest`, and `zero`s counted: `(sure, rest, zeros)` lengths and count. `None` where
    /// the level has no vector compress; the caller then loops over the codes itself.
    /// `sure` and `rest` need 16 elements more than `codes`.
    #[cfg_attr(not(target_arch = "x86_64"), allow(unused_variables))]
    pub fn split_codes(
        &self,
        codes: &[u32],
        limit: u32,
        zero: u32,
        sure: &mut [u32],
        rest: &mut [u32],
    ) -> Option<(usize, usize, u64)> {
        match self.level {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: the level is only chosen where the CPU has AVX-512F and POPCNT.
            Level::Avx512 => Some(unsafe { x86::split_codes_avx512(codes, limit, zero, sure, rest) }),
            _ => None,
        }
    }

    pub fn half_to_f32(&self, x: &[u16], y: &mut [f32]) {
        assert_eq!(x.len(), y.len());
        dispatch!(self.level, half_to_f32(x.as_ptr(), y.as_mut_ptr(), x.len()))
    }

    pub fn f32_to_half(&self, x: &[f32], y: &mut [u16]) {
        assert_eq!(x.len(), y.len());
        dispatch!(self.level, f32_to_half(x.as_ptr(), y.as_mut_ptr(), x.len()))
    }
}

#[cfg(test)]
mod tests {
    /// Every feature a level's functions enable is one `Level::supported` checks: the kernel's
    /// x86 code is read as text, each `target_feature` list assigned to its level by the module
    /// (`level_module!(avx2, …)`) or the function's name suffix (`…_avx512`).
    #[test]
    fn each_level_checks_every_feature_its_code_enables() {
        let x86 = include_str!("x86.rs");
        let this = include_str!("mod.rs");
        let arm = |level: &str| -> &str {
            let from = this.find(&format!("Level::{level} => {{\n")).expect("the level's arm in supported()");
            let rest = &this[from..];
            &rest[..rest.find('}').expect("the arm ends")]
        };
        let lines: Vec<&str> = x86.lines().collect();
        let mut checked = 0;
        for (i, line) in lines.iter().enumerate() {
            let Some(at) = line.find("target_feature(enable = \"") else { continue };
            let list = &line[at + 25..];
            let list = &list[..list.find('"').unwrap()];
            let level = if line.contains("level_module!(avx512,") {
                "Avx512"
            } else if line.contains("level_module!(avx2,") {
                "Avx2"
            } else {
                let f = lines[i + 1..].iter().find(|l| l.contains("fn ")).expect("a function follows");
                let name = f[f.find("fn ").unwrap() + 3..].split('(').next().unwrap();
                if name.ends_with("_avx512") {
                    "Avx512"
                } else if name.ends_with("_avx2") {
                    "Avx2"
                } else {
                    panic!("which level runs {name}? name it _avx2 or _avx512")
                }
            };
            for feature in list.split(',') {
                assert!(
                    arm(level).contains(&format!("is_x86_feature_detected!(\"{feature}\")")),
                    "Level::{level} runs code compiled for {feature} (x86.rs line {}) but does not check it",
                    i + 1
                );
                checked += 1;
            }
        }
        assert!(checked >= 10, "{checked} features found: the test no longer reads x86.rs");
    }
}

#[cfg(test)]
mod null_output {
    use super::{generic::NoStats, ops::RawOp, scalar};

    /// A null output where the op writes is refused by a real check, not a debug assertion.
    #[test]
    #[should_panic(expected = "null output")]
    fn a_null_output_for_an_op_that_writes_panics() {
        let x = [0x3c00u16; 40]; // 1.0 in f16
                                 // SAFETY: `x` holds 40 elements; the null `y` is what the check under test refuses.
        unsafe {
            scalar::half::<NoStats>(RawOp::Leaky(0.5), x.as_ptr(), std::ptr::null(), std::ptr::null_mut(), 40, 0.0);
        }
    }
}
