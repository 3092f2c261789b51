//! Statistics of one array, gathered in the kernel's pass (see `kernel::ChunkStats`), merged
//! exactly across chunks and across shards, and written as the SPEC §4 JSON.
//!
//! Definitions (docs/statistics.md): values are the output of the activation (or the input as it
//! is); "active" means the *input* element is > 0 (NaN is not active); "negative" means the input is
//! < 0. Mean and std are over finite values; std is the population std. Chunks and shards combine
//! with Chan et al.'s parallel formulas, so merging N shards equals one pass over all of them.

use crate::act::ldexp;
use crate::hist::HistJson;
use crate::kernel::{ChunkStats, Counts, Kernel};
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

/// Where the unit (neuron / channel) index sits in the flat element order.
#[derive(Clone, Debug, PartialEq)]
pub struct UnitLayout {
    /// The axis as the user sees it (after resolving negative values).
    pub axis: usize,
    pub count: u64,
    /// Consecutive elements in file order that belong to one unit.
    pub inner: u64,
}

impl UnitLayout {
    /// Units along `axis` (in range) of `shape`, C or Fortran order.
    pub fn new(shape: &[u64], fortran: bool, axis: usize) -> UnitLayout {
        UnitLayout { axis, count: shape[axis], inner: inner_size(shape, fortran, axis).max(1) }
    }
}

/// Elements of one index of `axis`, consecutive in file order: the product of the axes after it
/// (C order) or before it (Fortran). Saturating: only an empty array's axes can overflow a u64
/// (a header may promise (0, 2**40, 2**40)), and then no element is ever placed by it.
pub fn inner_size(shape: &[u64], fortran: bool, axis: usize) -> u64 {
    let axes = if fortran { &shape[..axis] } else { &shape[axis + 1..] };
    axes.iter().fold(1u64, |a, &d| a.saturating_mul(d))
}

/// Limbs of [`ExactSum`]: bit 0 is 2^-1074 (the least subnormal), 32 bits a limb, up to 2^1024
/// times 2^64 summands (2162 bits) and room for a scale of 2^±128.
const LIMBS: usize = 76;
/// Bit 0 of limb 0 is `2^-BIAS`; [`ExactSum::add_scaled`] may move a value down by 2^128.
const BIAS: i32 = 1074 + 128;

/// The exact sum of any number of f64 values: fixed point over f64's whole range (a
/// "superaccumulator"), each limb holding 32 bits and gathering carries in its upper half until
/// [`ExactSum::normalize`] passes them on. No rounding happens until the sum is read, so chunks,
/// threads and shards add up to the same sum in any order, and huge values that cancel leave the
/// small ones intact (NumPy's `[1e300, -1e300, 1.7e308, -1.7e308, 3]` sums to exactly 3).
#[derive(Clone, Debug, PartialEq)]
pub struct ExactSum {
    limbs: [i64; LIMBS],
    /// Additions since the last normalization: each moves a limb by less than 2^32, so 2^30 of
    /// them cannot overflow an i64.
    pending: u32,
}

impl Default for ExactSum {
    fn default() -> Self {
        ExactSum { limbs: [0; LIMBS], pending: 0 }
    }
}

impl ExactSum {
    /// Adds a finite `x` (others are ignored: statistics sum finite values only).
    pub fn add(&mut self, x: f64) {
        self.add_scaled(x, 0)
    }

    /// Adds `x · 2^k`, exactly (`k` within ±128).
    pub fn add_scaled(&mut self, x: f64, k: i32) {
        if x == 0.0 || !x.is_finite() {
            return;
        }
        let bits = x.to_bits();
        let biased = ((bits >> 52) & 0x7ff) as i32;
        let frac = bits & ((1u64 << 52) - 1);
        // x = m · 2^(e - 1074) with m < 2^53
        let (m, e) = if biased == 0 { (frac, 0) } else { (frac | 1 << 52, biased - 1) };
        let p = (e + k + 128) as usize; // the bit of m's lowest bit, counted from 2^-BIAS
        let v = (m as u128) << (p % 32);
        let neg = bits >> 63 == 1;
        for i in 0..3 {
            let piece = ((v >> (32 * i)) & 0xffff_ffff) as i64;
            self.limbs[p / 32 + i] += if neg { -piece } else { piece };
        }
        self.pending += 1;
        if self.pending >= 1 << 30 {
            self.normalize();
        }
    }

    /// Adds `a · b` exactly (both finite): the product and its rounding error (an FMA), scaled
    /// where the product would overflow or lose bits to underflow.
    pub fn add_product(&mut self, a: f64, b: f64) {
        let k = if (a * b).abs() > 2f64.powi(900) {
            -128
        } else if (a * b).abs() < 2f64.powi(-900) {
            128
        } else {
            0
        };
        let b = ldexp(b, k);
        let p = a * b;
        let e = a.mul_add(b, -p);
        self.add_scaled(p, -k);
        self.add_scaled(e, -k);
    }

    pub fn merge(&mut self, o: &ExactSum) {
        let mut o = o.clone();
        o.normalize();
        self.normalize();
        for (a, b) in self.limbs.iter_mut().zip(&o.limbs) {
            *a += b;
        }
        self.pending = 1;
    }

    /// Passes every limb's carry up: limbs below the top end in [0, 2^32), the top one signed.
    fn normalize(&mut self) {
        for i in 0..LIMBS - 1 {
            let c = self.limbs[i] >> 32;
            self.limbs[i] -= c << 32;
            self.limbs[i + 1] += c;
        }
        self.pending = 0;
    }

    /// The sum divided by `n` (> 0), rounded to f64 (to within an ulp: the top 160 bits of the
    /// sum as a double-double, then one division with its remainder).
    pub fn mean(&self, n: u64) -> f64 {
        let mut s = self.clone();
        s.normalize();
        let neg = s.limbs[LIMBS - 1] < 0;
        if neg {
            s.limbs.iter_mut().for_each(|l| *l = -*l);
            s.normalize();
        }
        let Some(top) = s.limbs.iter().rposition(|&l| l != 0) else { return 0.0 };
        // Σ limbs[i] · 2^(32(i - top)), top limb first, as hi + lo
        let (mut hi, mut lo) = (0.0f64, 0.0f64);
        for i in (top.saturating_sub(5)..=top).rev() {
            let t = ldexp(s.limbs[i] as f64, 32 * (i as i32 - top as i32));
            // Knuth's two-sum: sum + err == hi + t exactly
            let sum = hi + t;
            let bb = sum - hi;
            let err = (hi - (sum - bb)) + (t - bb);
            (hi, lo) = (sum, lo + err);
        }
        let nf = n as f64;
        let q = hi / nf;
        let r = (-q).mul_add(nf, hi);
        let q = q + (r + lo) / nf;
        let m = ldexp(q, 32 * top as i32 - BIAS);
        if neg {
            -m
        } else {
            m
        }
    }
}

/// A set of finite values' moments as the accumulators combine them: the mean, the central
/// moment sums `M2 = Σ(y − mean)²`, `M3`, `M4` of the values scaled by `2^-exp` (so `M2 · 4^exp`
/// is the unscaled sum, `M3 · 8^exp`, `M4 · 16^exp`: kept in range for any f64 data), and the
/// exact sum.
#[derive(Clone, Debug)]
struct Moments {
    mean: f64,
    m2: f64,
    m3: f64,
    m4: f64,
    exp: i32,
    sum: ExactSum,
}

/// Per-unit sums and extremes of the output's finite values (SmoothQuant's scales, ReDo's
/// scores): counts, compensated sums of `y` and `|y|` (`hi + lo`), min and max; and the
/// kernel's per-call scratch, allocated once.
#[derive(Clone, Debug, Default)]
pub struct UnitValues {
    pub finite: Vec<u64>,
    sum: Vec<f64>,
    sum_lo: Vec<f64>,
    abs: Vec<f64>,
    abs_lo: Vec<f64>,
    pub min: Vec<f64>,
    pub max: Vec<f64>,
    scratch_finite: Vec<u32>,
    scratch_sum: Vec<f64>,
    scratch_abs: Vec<f64>,
}

impl UnitValues {
    fn new(units: usize) -> UnitValues {
        UnitValues {
            finite: vec![0; units],
            sum: vec![0.0; units],
            sum_lo: vec![0.0; units],
            abs: vec![0.0; units],
            abs_lo: vec![0.0; units],
            min: vec![f64::INFINITY; units],
            max: vec![f64::NEG_INFINITY; units],
            ..UnitValues::default()
        }
    }

    fn clear(&mut self) {
        self.finite.fill(0);
        for v in [&mut self.sum, &mut self.sum_lo, &mut self.abs, &mut self.abs_lo] {
            v.fill(0.0);
        }
        self.min.fill(f64::INFINITY);
        self.max.fill(f64::NEG_INFINITY);
    }

    /// Adds one unit's finite values: `n` of them, sum `sum`, sum of magnitudes `abs`.
    fn add(&mut self, u: usize, n: u64, sum: f64, abs: f64) {
        self.finite[u] += n;
        let (s, e) = crate::kernel::two_sum(self.sum[u], sum);
        (self.sum[u], self.sum_lo[u]) = (s, self.sum_lo[u] + e);
        let (s, e) = crate::kernel::two_sum(self.abs[u], abs);
        (self.abs[u], self.abs_lo[u]) = (s, self.abs_lo[u] + e);
    }

    fn merge(&mut self, o: &UnitValues) {
        for u in 0..self.finite.len().min(o.finite.len()) {
            self.add(u, o.finite[u], o.sum[u], o.abs[u]);
            self.sum_lo[u] += o.sum_lo[u];
            self.abs_lo[u] += o.abs_lo[u];
            self.min[u] = self.min[u].min(o.min[u]);
            self.max[u] = self.max[u].max(o.max[u]);
        }
    }

    /// Unit `u`'s mean and mean magnitude over its finite values; `None` without one.
    pub fn means(&self, u: usize) -> Option<(f64, f64)> {
        let n = self.finite[u];
        (n > 0).then(|| ((self.sum[u] + self.sum_lo[u]) / n as f64, (self.abs[u] + self.abs_lo[u]) / n as f64))
    }
}

/// Running statistics of one array.
#[derive(Clone, Debug)]
pub struct StatsAccumulator {
    /// Read as the accumulator's own (`acc.finite`); `finite` moves with the moments.
    counts: Counts,
    /// The exact sum of the finite values; `mean` is it divided by `finite`.
    sum: ExactSum,
    mean: f64,
    /// The central moment sums of the values scaled by `2^-exp`: the sum of squared deviations is
    /// `m2 · 4^exp`, of cubed ones `m3 · 8^exp`, of fourth powers `m4 · 16^exp`.
    m2: f64,
    m3: f64,
    m4: f64,
    exp: i32,
    /// Whether `m3` and `m4` describe every value (statistics JSON without them merged in: not).
    higher: bool,
    min: f64,
    max: f64,
    pub units: Option<UnitLayout>,
    pub active: Vec<u64>,
    /// Per-unit sums and extremes of the output (with `units`).
    pub values: UnitValues,
    /// Per-call u32 counters for the dense layout, allocated once.
    scratch: Vec<u32>,
    /// Only the finite min and max are wanted (a histogram's first pass): the kernel gathers
    /// nothing else where it can (`Kernel::float_range`), and the other moments stay unset.
    pub range_only: bool,
    /// `--outlier-threshold` and `--dormant-tau`, for the JSON.
    pub limits: UnitLimits,
}

/// The per-unit thresholds the JSON applies: outliers have absmax above `outlier`; a unit is
/// dormant when its ReDo score is at most `dormant_tau`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct UnitLimits {
    pub outlier: f64,
    pub dormant_tau: f64,
}

impl Default for UnitLimits {
    fn default() -> Self {
        UnitLimits { outlier: 6.0, dormant_tau: 0.025 }
    }
}

impl std::ops::Deref for StatsAccumulator {
    type Target = Counts;
    fn deref(&self) -> &Counts {
        &self.counts
    }
}

impl StatsAccumulator {
    pub fn new(units: Option<UnitLayout>) -> Self {
        let n = units.as_ref().map_or(0, |u| u.count as usize);
        StatsAccumulator {
            counts: Counts::default(),
            sum: ExactSum::default(),
            mean: 0.0,
            m2: 0.0,
            m3: 0.0,
            m4: 0.0,
            exp: 0,
            higher: true,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            units,
            active: vec![0; n],
            values: UnitValues::new(n),
            scratch: Vec::new(),
            range_only: false,
            limits: UnitLimits::default(),
        }
    }

    /// Empties the accumulator in place (keeping its unit layout and buffers).
    pub fn clear(&mut self) {
        let units = self.units.take();
        let (mut active, scratch) = (std::mem::take(&mut self.active), std::mem::take(&mut self.scratch));
        let mut values = std::mem::take(&mut self.values);
        active.fill(0);
        values.clear();
        *self = StatsAccumulator {
            units,
            active,
            values,
            scratch,
            range_only: self.range_only,
            limits: self.limits,
            ..StatsAccumulator::new(None)
        };
    }

    /// An empty accumulator with the same unit layout.
    pub fn fresh(&self) -> StatsAccumulator {
        StatsAccumulator {
            range_only: self.range_only,
            limits: self.limits,
            ..StatsAccumulator::new(self.units.clone())
        }
    }

    /// Adds another accumulator's statistics (of disjoint elements of the same array).
    pub fn merge(&mut self, o: &StatsAccumulator) {
        self.add(&o.counts, o.min, o.max, || o.moments());
        self.higher &= o.higher;
        for (a, b) in self.active.iter_mut().zip(&o.active) {
            *a += b;
        }
        self.values.merge(&o.values);
    }

    fn moments(&self) -> Moments {
        Moments { mean: self.mean, m2: self.m2, m3: self.m3, m4: self.m4, exp: self.exp, sum: self.sum.clone() }
    }

    /// Adds the statistics of elements disjoint from those seen so far: their counts, finite
    /// min and max, and the `moments` of their finite values, asked for only when there are
    /// some. Merging accumulators and adding a chunk (summed by the kernel or again exactly)
    /// are all this step.
    fn add(&mut self, c: &Counts, min: f64, max: f64, moments: impl FnOnce() -> Moments) {
        let finite = self.counts.finite;
        self.counts.add(c);
        self.counts.finite = finite; // `absorb` counts them, with their moments
        if c.finite > 0 {
            self.absorb(c.finite, &moments());
            self.min = self.min.min(min);
            self.max = self.max.max(max);
        }
    }

    /// A shift for the next chunk's sums: the mean so far, else `fallback` (a value from the chunk).
    pub fn shift(&self, fallback: f64) -> f64 {
        if self.counts.finite > 0 {
            self.mean
        } else if fallback.is_finite() {
            fallback
        } else {
            0.0
        }
    }

    /// A chunk's central moment sums from the kernel's shifted power sums (scaled by `2^-exp`):
    /// with `m = Σd/n` (d = y − shift), `M2 = S2 − m·S1`, `M3 = S3 − 3m·S2 + 2n·m³`,
    /// `M4 = S4 − 4m·S3 + 6m²·S2 − 3n·m⁴`; and the size of the terms M4 is the difference of
    /// (its rounding error is about 2^-53 of that). A chunk of one value has none.
    fn central(c: &ChunkStats) -> (f64, f64, f64, f64) {
        if c.min == c.max {
            return (0.0, 0.0, 0.0, 0.0);
        }
        let n = c.finite as f64;
        let m = (c.s1 + c.s1_lo) / n;
        let m2 = (c.s2 - c.s1 * (c.s1 / n)).max(0.0);
        let m3 = c.s3 - 3.0 * m * c.s2 + 2.0 * n * m * m * m;
        let mm = m * m;
        let m4 = (c.s4 - 4.0 * m * c.s3 + 6.0 * mm * c.s2 - 3.0 * n * mm * mm).max(0.0);
        let size = c.s4.abs() + 4.0 * (m * c.s3).abs() + 6.0 * mm * c.s2 + 3.0 * n * mm * mm;
        (m2, m3, m4, size)
    }

    /// Adds a chunk's statistics as the kernel's pass summed them.
    pub fn add_chunk(&mut self, c: &ChunkStats) {
        self.add(&c.counts, c.min, c.max, || {
            let n = c.finite as f64;
            // in the scaled domain first: shift + delta may overflow where the mean does not
            let mean = ldexp(ldexp(c.shift, -c.exp) + (c.s1 + c.s1_lo) / n, c.exp);
            let (m2, m3, m4, _) = Self::central(c);
            // the chunk's sum, n · shift + Σ(y − shift): exact but for the rounding in Σ
            let mut sum = ExactSum::default();
            sum.add_product(n, c.shift);
            sum.add(ldexp(c.s1, c.exp));
            sum.add(ldexp(c.s1_lo, c.exp));
            Moments { mean, m2, m3, m4, exp: c.exp, sum }
        });
    }

    /// Adds the statistics `c` the kernel gathered over the values `y` (`ints`: integer
    /// values): as summed, or, where those sums may be off ([`StatsAccumulator::needs_exact`]:
    /// rare), summed again exactly.
    pub fn add_chunk_of<T: crate::dtype::Element>(&mut self, c: &ChunkStats, y: &[T], ints: bool) {
        if self.needs_exact(c, ints) {
            self.add_chunk_exact(c, y.iter().map(|v| v.to_f64()).filter(|v| v.is_finite()));
        } else {
            self.add_chunk(c);
        }
    }

    /// Whether the kernel's sums of a chunk may be off (`ints`: integer values), so that
    /// [`StatsAccumulator::add_chunk_exact`] should sum it again. For integers the lane sums of
    /// `y − shift` (an integral shift) are exact while every partial sum stays below 2^53. For
    /// floats, when the rounding error the kernel's sums typically carry may exceed 2^-24 of the
    /// chunk's sum: huge values that cancel, or sums that overflowed. Typical data (even
    /// centred on 0) stays far below this. For both, when the fourth central moment comes out
    /// of power sums about a shift far from the chunk's mean (the terms it is the difference of
    /// exceed it 2^10 times: a first chunk whose first value lies six deviations out, sorted
    /// data): then the kurtosis would lose digits.
    pub fn needs_exact(&self, c: &ChunkStats, ints: bool) -> bool {
        if c.finite == 0 || self.range_only {
            return false;
        }
        if c.exp != 0 || ![c.s1, c.s2, c.s3, c.s4].iter().all(|v| v.is_finite()) {
            return true;
        }
        let (_, _, m4, size) = Self::central(c);
        if size > 1024.0 * m4 {
            return true;
        }
        let n = c.finite as f64;
        let spread = (c.max - c.shift).abs().max((c.min - c.shift).abs());
        if ints {
            // (a NaN spread, from differences that overflowed, is not below: summed again)
            let exact = n * spread < 2f64.powi(53);
            return !exact;
        }
        // The kernel rounds each of the 16 additions of a lane's run of y (≤ 16·max|y|·2^-53
        // each); the runs' sums are gathered without error, and n·shift taken off exactly.
        // Rounding errors add like a random walk (Higham, "Accuracy and Stability", §4.2), so
        // the typical total is 16·√n·max|y|·2^-53, not the worst case 16·n·max|y|·2^-53 that
        // only adversarial orderings reach and that would send every chunk of zero-centred data
        // down the exact path.
        let big = c.max.abs().max(c.min.abs());
        let bound = big * (16.0 * n.sqrt() + 32.0) * 2f64.powi(-53);
        let sum = n.mul_add(c.shift, c.s1).abs();
        let close_enough = bound <= sum * 2f64.powi(-24);
        !close_enough
    }

    /// Adds a chunk whose counts, min and max are `c` and whose values are `values`, summing
    /// them exactly (the mean) and then the powers of their deviations from that mean (std,
    /// kurtosis), off the kernel's fast path.
    #[cold]
    pub fn add_chunk_exact(&mut self, c: &ChunkStats, values: impl Iterator<Item = f64> + Clone) {
        self.add(&c.counts, c.min, c.max, || {
            let mut sum = ExactSum::default();
            values.clone().for_each(|v| sum.add(v));
            let mean = sum.mean(c.finite);
            // scaled by a power of two where deviations or their fourth powers could overflow
            let big = c.min.abs().max(c.max.abs());
            let exp = if big > 1e70 { big.log2().ceil() as i32 + 1 } else { 0 };
            let m = ldexp(mean, -exp);
            let (mut m2, mut m3, mut m4) = (0.0, 0.0, 0.0);
            for v in values.filter(|v| v.is_finite()) {
                let d = ldexp(v, -exp) - m;
                let q = d * d;
                m2 += q;
                m3 += q * d;
                m4 += q * q;
            }
            Moments { mean, m2, m3, m4, exp, sum }
        });
    }

    /// Adds `nb` finite values of moments `b`: the mean comes from the exact sum, the central
    /// moment sums from Pébay's formulas.
    fn absorb(&mut self, nb: u64, b: &Moments) {
        self.merge_moments(nb, b);
        self.sum.merge(&b.sum);
        self.mean = self.sum.mean(self.counts.finite);
    }

    /// Chan et al. and Pébay (2008, "Formulas for robust, one-pass parallel computation of
    /// covariances and arbitrary-order statistical moments", eqs. 3.1): combine (count, mean,
    /// M2, M3, M4) of two disjoint sets. Sums that would overflow are kept scaled by a power of
    /// two.
    fn merge_moments(&mut self, nb: u64, b: &Moments) {
        let na = self.counts.finite;
        if na == 0 {
            (self.counts.finite, self.mean, self.m2, self.m3, self.m4, self.exp) =
                (nb, b.mean, b.m2, b.m3, b.m4, b.exp);
            return;
        }
        let n = na + nb;
        let (fa, fb, fnn) = (na as f64, nb as f64, n as f64);
        let (pa, pb) = (fa / fnn, fb / fnn);
        let mut e = self.exp.max(b.exp);
        loop {
            let delta = ldexp(b.mean, -e) - ldexp(self.mean, -e);
            let (a2, a3, a4) = (
                ldexp(self.m2, 2 * (self.exp - e)),
                ldexp(self.m3, 3 * (self.exp - e)),
                ldexp(self.m4, 4 * (self.exp - e)),
            );
            let (b2, b3, b4) =
                (ldexp(b.m2, 2 * (b.exp - e)), ldexp(b.m3, 3 * (b.exp - e)), ldexp(b.m4, 4 * (b.exp - e)));
            let d2 = delta * delta;
            let m2 = a2 + b2 + d2 * (fa * fb / fnn);
            let m3 = a3 + b3 + d2 * delta * fa * pb * (pa - pb) + 3.0 * delta * (pa * b2 - pb * a2);
            let m4 = a4
                + b4
                + d2 * d2 * fa * pb * (pa * pa - pa * pb + pb * pb)
                + 6.0 * d2 * (pa * pa * b2 + pb * pb * a2)
                + 4.0 * delta * (pa * b3 - pb * a3);
            // 2^(64·k) scales any f64 difference's fourth power into range by the ninth turn
            if (m2.is_finite() && m3.is_finite() && m4.is_finite()) || e > 2000 {
                self.mean = ldexp(ldexp(self.mean, -e) + delta * pb, e);
                (self.m2, self.m3, self.m4, self.exp, self.counts.finite) = (m2, m3, m4.max(0.0), e, n);
                return;
            }
            e += 64;
        }
    }

    /// An accumulator's moments from a statistics object's count, mean, std and (when
    /// present) central moment sums M3, M4; `false` when those are missing.
    fn moments_of(n: u64, mean: f64, std: f64, m3: Option<f64>, m4: Option<f64>, sum: ExactSum) -> (Moments, bool) {
        // the exponent of std, so that std⁴ · n stays in range
        let exp = if std > 1e60 && std.is_finite() { std.log2().ceil() as i32 } else { 0 };
        let s = ldexp(std, -exp);
        let m2 = s * s * n as f64;
        let known = m3.is_some() && m4.is_some();
        let m3 = ldexp(m3.unwrap_or(0.0), -3 * exp);
        let m4 = ldexp(m4.unwrap_or(0.0), -4 * exp);
        (Moments { mean, m2, m3, m4, exp, sum }, known)
    }

    pub fn mean(&self) -> Option<f64> {
        (self.counts.finite > 0).then_some(self.mean)
    }

    pub fn std(&self) -> Option<f64> {
        (self.counts.finite > 0).then(|| ldexp((self.m2 / self.counts.finite as f64).sqrt(), self.exp))
    }

    /// The excess kurtosis `n·M4 / M2² − 3` (scipy.stats.kurtosis, Fisher, biased); `None`
    /// under two finite values, with zero variance, or when a merged object lacked M3/M4.
    pub fn kurtosis(&self) -> Option<f64> {
        let ok = self.counts.finite >= 2 && self.m2 > 0.0 && self.higher;
        ok.then(|| self.counts.finite as f64 * (self.m4 / self.m2) / self.m2 - 3.0)
    }

    /// The unscaled central moment sums M3 and M4 (`None` without finite values, when unknown,
    /// or beyond f64's range).
    fn higher_sums(&self) -> (Option<f64>, Option<f64>) {
        let ok = self.counts.finite > 0 && self.higher;
        let f = |v: f64| Some(v).filter(|v| ok && v.is_finite());
        (f(ldexp(self.m3, 3 * self.exp)), f(ldexp(self.m4, 4 * self.exp)))
    }

    /// Adds the active (input > 0) elements of `x`, whose first element has flat index `start`,
    /// to their units' counts.
    pub fn count_active<T: Copy>(&mut self, k: &Kernel, x: &[T], start: u64, active: impl Fn(T) -> bool + Copy) {
        let Some(u) = &self.units else {
            return;
        };
        let (units, inner) = (u.count, u.inner);
        if units == 0 || x.is_empty() {
            return;
        }
        let counts = &mut self.active[..];
        let mut p = start;
        let mut i = 0;
        if inner == 1 {
            // Units vary fastest (dense (N, U), NHWC): add whole rows lane-wise into u32 counters
            // (a call covers one chunk, < 2^32 elements), folded into the totals once per call.
            let scratch = &mut self.scratch;
            scratch.resize(units as usize, 0);
            while i < x.len() {
                let u0 = (p % units) as usize;
                let len = (units as usize - u0).min(x.len() - i);
                k.count_into(&x[i..i + len], &mut scratch[u0..u0 + len], active);
                i += len;
                p += len as u64;
            }
            for (c, s) in counts.iter_mut().zip(scratch.iter_mut()) {
                *c += *s as u64;
                *s = 0;
            }
        } else {
            // Runs of `inner` elements share a unit (NCHW): count a run, add once.
            while i < x.len() {
                let run = p / inner;
                let len = ((run + 1) * inner - p).min((x.len() - i) as u64) as usize;
                let n = k.count(&x[i..i + len], active);
                counts[(run % units) as usize] += n as u64;
                i += len;
                p += len as u64;
            }
        }
    }

    /// Adds the output values `y`, whose first element has flat index `start`, to their units'
    /// sums and extremes (laid out as [`StatsAccumulator::count_active`] lays out its counts).
    /// `all_finite`: every value of `y` is finite (the chunk's counts say so); `nonneg`: none is
    /// below zero (its minimum); `actives`: the input's active elements are those of `y` above
    /// zero (relu, the identity). True when the active counts were taken here as well (then
    /// [`StatsAccumulator::count_active`] is not to be called for these values).
    #[must_use]
    pub fn observe_units<T: crate::dtype::Element>(
        &mut self,
        k: &Kernel,
        y: &[T],
        start: u64,
        all_finite: bool,
        nonneg: bool,
        actives: bool,
    ) -> bool {
        let Some(u) = &self.units else {
            return false;
        };
        let (units, inner) = (u.count, u.inner);
        if units == 0 || y.is_empty() || self.range_only {
            return false;
        }
        let narrow = all_finite && T::F32_EXACT;
        let counted = narrow && actives && inner == 1;
        let v = &mut self.values;
        let mut p = start;
        let mut i = 0;
        if inner == 1 {
            // whole rows lane-wise into per-call sums, folded into the compensated totals once
            let n = units as usize;
            v.scratch_finite.resize(n, 0);
            v.scratch_sum.resize(n, 0.0);
            v.scratch_abs.resize(n, 0.0);
            self.scratch.resize(n, 0);
            // a partial first row, the whole rows in one call, a partial last row
            while i < y.len() {
                let u0 = (p % units) as usize;
                let len = if u0 == 0 && y.len() - i >= n { (y.len() - i) / n * n } else { (n - u0).min(y.len() - i) };
                let w = len.min(n - u0);
                let acc = crate::kernel::UnitSlices {
                    finite: &mut v.scratch_finite[u0..u0 + w],
                    sum: &mut v.scratch_sum[u0..u0 + w],
                    abs: &mut v.scratch_abs[u0..u0 + w],
                    min: &mut v.min[u0..u0 + w],
                    max: &mut v.max[u0..u0 + w],
                };
                if narrow {
                    // (each unit's abs and sum start the call at zero: equal, as `nonneg` needs)
                    let active = counted.then(|| &mut self.scratch[u0..u0 + w]);
                    k.unit_rows_f32(&y[i..i + len], acc, nonneg, active, T::to_f32);
                } else {
                    k.unit_rows(&y[i..i + len], acc, all_finite, T::to_f64);
                }
                i += len;
                p += len as u64;
            }
            for u in 0..n {
                let (f, s, a) = (v.scratch_finite[u], v.scratch_sum[u], v.scratch_abs[u]);
                if f > 0 {
                    v.add(u, f as u64, s, a);
                }
                (v.scratch_finite[u], v.scratch_sum[u], v.scratch_abs[u]) = (0, 0.0, 0.0);
            }
            if counted {
                for (c, s) in self.active.iter_mut().zip(self.scratch.iter_mut()) {
                    *c += *s as u64;
                    *s = 0;
                }
            }
        } else {
            while i < y.len() {
                let run = p / inner;
                let len = ((run + 1) * inner - p).min((y.len() - i) as u64) as usize;
                let f = k.unit_run(&y[i..i + len], T::to_f64);
                let u = (run % units) as usize;
                if f.finite > 0 {
                    v.add(u, f.finite, f.sum, f.abs);
                    v.min[u] = v.min[u].min(f.min);
                    v.max[u] = v.max[u].max(f.max);
                }
                i += len;
                p += len as u64;
            }
        }
        counted
    }

    /// The SPEC §4 object (and SPEC §7's additions).
    pub fn to_json(
        &self,
        input: &str,
        activation: Option<String>,
        dtype: &str,
        shape: &[u64],
        threshold: f64,
    ) -> StatsJson {
        let units = self.units.as_ref().map(|u| {
            let m = self.counts.elements.checked_div(u.count).unwrap_or(0);
            let v = &self.values;
            let some = |i: usize, x: f64| (v.finite[i] > 0).then_some(x);
            let n = v.finite.len();
            let means: Vec<Option<(f64, f64)>> = (0..n).map(|i| v.means(i)).collect();
            UnitsJson::from_counts(u.axis, m, self.active.clone(), threshold).with_values(
                v.finite.clone(),
                (0..n).map(|i| some(i, v.min[i])).collect(),
                (0..n).map(|i| some(i, v.max[i])).collect(),
                means.iter().map(|m| m.map(|m| m.0)).collect(),
                means.iter().map(|m| m.map(|m| m.1)).collect(),
                self.limits,
            )
        });
        let (m3, m4) = self.higher_sums();
        StatsJson {
            input: input.to_string(),
            name: None,
            activation,
            dtype: dtype.to_string(),
            shape: Some(shape.to_vec()),
            elements: self.counts.elements,
            zeros: self.counts.zeros,
            sparsity: (self.counts.elements > 0).then(|| self.counts.zeros as f64 / self.counts.elements as f64),
            negative_inputs: self.counts.negative,
            nan: self.counts.nan,
            posinf: self.counts.posinf,
            neginf: self.counts.neginf,
            finite: self.counts.finite,
            min: (self.counts.finite > 0).then_some(self.min),
            max: (self.counts.finite > 0).then_some(self.max),
            mean: self.mean(),
            std: self.std(),
            kurtosis: self.kurtosis(),
            m3,
            m4,
            units,
            quantiles: None,
            quantile_bounds: None,
            hist: None,
            merged: None,
            inputs: None,
            sum: None,
        }
    }
}

/// Values by key, in the order given, written as a JSON object (`"quantiles": {"0.5": x}`).
#[derive(Clone, Debug, PartialEq)]
pub struct Keyed<V>(pub Vec<(String, V)>);

impl<V: Serialize> Serialize for Keyed<V> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

impl<'de, V: Deserialize<'de>> Deserialize<'de> for Keyed<V> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct Visit<V>(std::marker::PhantomData<V>);
        impl<'de, V: Deserialize<'de>> serde::de::Visitor<'de> for Visit<V> {
            type Value = Keyed<V>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut a: A) -> std::result::Result<Keyed<V>, A::Error> {
                let mut out = Vec::new();
                while let Some(e) = a.next_entry::<String, V>()? {
                    out.push(e);
                }
                Ok(Keyed(out))
            }
        }
        d.deserialize_map(Visit(std::marker::PhantomData))
    }
}

/// SPEC §4, field for field (plus `merged`, the shard count, on merged objects).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct StatsJson {
    pub input: String,
    /// The array's name (SPEC §6): a member's or tensor's name, else the file's path without its
    /// extension, relative to the directory it was found under. What `merge-stats --by name`
    /// and `trend` group by.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub activation: Option<String>,
    pub dtype: String,
    pub shape: Option<Vec<u64>>,
    pub elements: u64,
    pub zeros: u64,
    pub sparsity: Option<f64>,
    pub negative_inputs: u64,
    pub nan: u64,
    pub posinf: u64,
    pub neginf: u64,
    pub finite: u64,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub mean: Option<f64>,
    pub std: Option<f64>,
    /// Excess kurtosis (population, Fisher) of the finite values; null under two of them or
    /// with zero variance.
    #[serde(default)]
    pub kurtosis: Option<f64>,
    /// The central moment sums Σ(y − mean)³ and Σ(y − mean)⁴ of the finite values, which
    /// `merge-stats` combines (Pébay); null without finite values or beyond f64's range.
    #[serde(default)]
    pub m3: Option<f64>,
    #[serde(default)]
    pub m4: Option<f64>,
    pub units: Option<UnitsJson>,
    /// `--quantiles`: numpy.quantile of the finite values, keyed as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantiles: Option<Keyed<Option<f64>>>,
    /// `merge-stats` of objects with quantiles and equal-edge histograms: each quantile's
    /// `[low, high]` bounds from the merged histogram.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantile_bounds: Option<Keyed<[f64; 2]>>,
    /// With `--bins` and `--range`: the histogram of the values, from the same pass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hist: Option<HistJson>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merged: Option<u64>,
    /// `merge-stats --by name`: how many objects went into this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inputs: Option<u64>,
    /// A merge's exact sum of the finite values, so that merging many objects one after another
    /// rounds the mean once, not once per merge (never written: a file's objects give
    /// `finite × mean`, exactly).
    #[serde(skip)]
    pub sum: Option<ExactSum>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct UnitsJson {
    pub axis: usize,
    pub count: u64,
    pub elements_per_unit: u64,
    pub active_count: Vec<u64>,
    pub dead: u64,
    pub dead_indices: Vec<u64>,
    pub threshold: f64,
    pub near_dead: u64,
    /// Per unit over its finite output values (null for a unit without one): max |y|, min,
    /// max, mean (SPEC §7).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub absmax: Option<Vec<Option<f64>>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<Vec<Option<f64>>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<Vec<Option<f64>>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mean: Option<Vec<Option<f64>>>,
    /// The raw values merging needs: finite values per unit and their mean |y|.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finite_count: Option<Vec<u64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mean_abs: Option<Vec<Option<f64>>>,
    /// Units whose absmax exceeds `outlier_threshold` (LLM.int8's outlier features).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outlier_threshold: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outliers: Option<Vec<u64>>,
    /// ReDo's τ-dormant units: mean |y| over the mean of all units' mean |y| at most τ.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dormant_tau: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dormant: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dormant_indices: Option<Vec<u64>>,
}

impl UnitsJson {
    /// These counts with the per-unit values (`finite` values per unit, their min, max, mean
    /// and mean |y|), and what follows from them under `limits`: absmax, outliers, dormant.
    pub fn with_values(
        mut self,
        finite: Vec<u64>,
        min: Vec<Option<f64>>,
        max: Vec<Option<f64>>,
        mean: Vec<Option<f64>>,
        mean_abs: Vec<Option<f64>>,
        limits: UnitLimits,
    ) -> UnitsJson {
        let absmax: Vec<Option<f64>> =
            min.iter().zip(&max).map(|(a, b)| Some(a.as_ref()?.abs().max(b.as_ref()?.abs()))).collect();
        let outliers = absmax
            .iter()
            .enumerate()
            .filter(|(_, a)| a.is_some_and(|a| a > limits.outlier))
            .map(|(i, _)| i as u64)
            .collect();
        let dormant_indices = dormant(&mean_abs, limits.dormant_tau);
        self.absmax = Some(absmax);
        self.min = Some(min);
        self.max = Some(max);
        self.mean = Some(mean);
        self.finite_count = Some(finite);
        self.mean_abs = Some(mean_abs);
        self.outlier_threshold = Some(limits.outlier);
        self.outliers = Some(outliers);
        self.dormant_tau = Some(limits.dormant_tau);
        self.dormant = Some(dormant_indices.len() as u64);
        self.dormant_indices = Some(dormant_indices);
        self
    }

    /// The per-unit values of both, merged (`None` when either lacks them): counts add,
    /// extremes combine, means weigh by the finite counts.
    fn merge_values(mut self, a: &UnitsJson, b: &UnitsJson) -> Result<UnitsJson> {
        let (Some(fa), Some(fb)) = (&a.finite_count, &b.finite_count) else { return Ok(self) };
        let lists = |u: &UnitsJson| -> Option<[Vec<Option<f64>>; 4]> {
            Some([u.min.clone()?, u.max.clone()?, u.mean.clone()?, u.mean_abs.clone()?])
        };
        let (Some([mina, maxa, meana, absa]), Some([minb, maxb, meanb, absb])) = (lists(a), lists(b)) else {
            return Ok(self);
        };
        let limits = |u: &UnitsJson| UnitLimits {
            outlier: u.outlier_threshold.unwrap_or(6.0),
            dormant_tau: u.dormant_tau.unwrap_or(0.025),
        };
        let (la, lb) = (limits(a), limits(b));
        if la != lb {
            bail!(
                "cannot merge statistics with different --outlier-threshold or --dormant-tau ({}, {} and {}, {})",
                la.outlier,
                la.dormant_tau,
                lb.outlier,
                lb.dormant_tau
            );
        }
        let n = fa.len();
        let pick = |x: Option<f64>, y: Option<f64>, f: fn(f64, f64) -> f64| match (x, y) {
            (Some(x), Some(y)) => Some(f(x, y)),
            (x, y) => x.or(y),
        };
        let weigh = |x: Option<f64>, y: Option<f64>, i: usize| {
            let (na, nb) = (fa[i] as f64, fb[i] as f64);
            match (x, y) {
                (Some(x), Some(y)) => Some((na * x + nb * y) / (na + nb)),
                (x, y) => x.or(y),
            }
        };
        let finite = (0..n).map(|i| add(fa[i], fb[i], "finite_count")).collect::<Result<Vec<u64>>>()?;
        self = self.with_values(
            finite,
            (0..n).map(|i| pick(mina[i], minb[i], f64::min)).collect(),
            (0..n).map(|i| pick(maxa[i], maxb[i], f64::max)).collect(),
            (0..n).map(|i| weigh(meana[i], meanb[i], i)).collect(),
            (0..n).map(|i| weigh(absa[i], absb[i], i)).collect(),
            la,
        );
        Ok(self)
    }

    /// The lengths of the per-unit lists, when present.
    fn check_values(&self) -> Result<(), String> {
        let count = self.count as usize;
        let lists: [(&str, Option<usize>); 6] = [
            ("absmax", self.absmax.as_ref().map(|v| v.len())),
            ("min", self.min.as_ref().map(|v| v.len())),
            ("max", self.max.as_ref().map(|v| v.len())),
            ("mean", self.mean.as_ref().map(|v| v.len())),
            ("finite_count", self.finite_count.as_ref().map(|v| v.len())),
            ("mean_abs", self.mean_abs.as_ref().map(|v| v.len())),
        ];
        for (key, len) in lists {
            if let Some(len) = len.filter(|&l| l != count) {
                return Err(format!("'count' {count} but '{key}' holds {len} values"));
            }
        }
        if let Some((i, c)) = self.finite_count.iter().flatten().enumerate().find(|(_, &c)| c > self.elements_per_unit)
        {
            return Err(format!(
                "'finite_count'[{i}] is {c}, more than 'elements_per_unit' ({})",
                self.elements_per_unit
            ));
        }
        Ok(())
    }

    /// The invariants of a `units` object of an array of `elements` values.
    fn check(&self, elements: u64) -> Result<(), String> {
        let (count, m) = (self.count, self.elements_per_unit);
        if self.active_count.len() as u64 != count {
            return Err(format!("'count' {count} but 'active_count' holds {} values", self.active_count.len()));
        }
        if count > 0 && count.checked_mul(m) != Some(elements) {
            return Err(format!("'count' × 'elements_per_unit' is {count} × {m}, not 'elements' ({elements})"));
        }
        if let Some((i, c)) = self.active_count.iter().enumerate().find(|(_, &c)| c > m) {
            return Err(format!("'active_count'[{i}] is {c}, more than 'elements_per_unit' ({m})"));
        }
        if !(self.threshold.is_finite() && self.threshold >= 0.0) {
            return Err(format!("'threshold' is {:?}: it must be a finite number >= 0", self.threshold));
        }
        let want = UnitsJson::from_counts(self.axis, m, self.active_count.clone(), self.threshold);
        for (key, got, want) in [("dead", self.dead, want.dead), ("near_dead", self.near_dead, want.near_dead)] {
            if got != want {
                return Err(format!("'{key}' is {got} but 'active_count' gives {want}"));
            }
        }
        if self.dead_indices != want.dead_indices {
            return Err("'dead_indices' do not list the units whose 'active_count' is 0".into());
        }
        self.check_values()
    }

    /// Dead and near-dead units from the counts; with no elements per unit (an empty array) there
    /// is no evidence, and no unit is called dead.
    pub fn from_counts(axis: usize, m: u64, active_count: Vec<u64>, threshold: f64) -> UnitsJson {
        let dead_indices: Vec<u64> =
            active_count.iter().enumerate().filter(|(_, &c)| m > 0 && c == 0).map(|(i, _)| i as u64).collect();
        let near_dead = active_count.iter().filter(|&&c| m > 0 && (c as f64 / m as f64) < threshold).count() as u64;
        UnitsJson {
            axis,
            count: active_count.len() as u64,
            elements_per_unit: m,
            dead: dead_indices.len() as u64,
            dead_indices,
            threshold,
            near_dead,
            active_count,
            absmax: None,
            min: None,
            max: None,
            mean: None,
            finite_count: None,
            mean_abs: None,
            outlier_threshold: None,
            outliers: None,
            dormant_tau: None,
            dormant: None,
            dormant_indices: None,
        }
    }
}

/// ReDo's τ-dormant units (Sokar et al. 2023): unit i's score is its mean |y| over the mean of
/// every unit's mean |y|, `s_i = a_i / mean_j a_j`, dormant when `s_i <= tau`. Units without a
/// finite value have no score and are left out of the mean; when the mean is 0 every scored
/// unit is dormant (ReDo's code divides by the mean + 1e-9: a score of 0).
pub fn dormant(mean_abs: &[Option<f64>], tau: f64) -> Vec<u64> {
    let scored: Vec<f64> = mean_abs.iter().flatten().copied().collect();
    if scored.is_empty() {
        return Vec::new();
    }
    let avg = scored.iter().sum::<f64>() / scored.len() as f64;
    let score = |a: f64| if avg > 0.0 { a / avg } else { 0.0 };
    mean_abs.iter().enumerate().filter(|(_, a)| a.is_some_and(|a| score(a) <= tau)).map(|(i, _)| i as u64).collect()
}

impl StatsJson {
    /// Bounds `[low, high]` on each quantile (key, fraction) of the finite values from the
    /// histogram: the ranks numpy.quantile interpolates between (⌊(n−1)q⌋ and the next) lie in
    /// known bins, `[min, lo]` below the range or `[hi, max]` above it, so the quantile lies
    /// between the lower edge of the first one's bin and the upper edge of the second's.
    /// `None` without a histogram or a finite value.
    pub fn quantile_bounds(&self, qs: &[(String, f64)]) -> Option<Keyed<[f64; 2]>> {
        let h = self.hist.as_ref()?;
        let (n, min, max) = (self.finite, self.min?, self.max?);
        if n == 0 || h.edges.len() != h.counts.len() + 1 {
            return None;
        }
        let (lo, hi) = (h.edges[0], h.edges[h.edges.len() - 1]);
        // the finite values bucket by bucket: below the range, each bin, above the range
        let mut buckets = vec![(h.underflow.saturating_sub(self.neginf), min, lo)];
        buckets.extend(h.counts.iter().enumerate().map(|(i, &c)| (c, h.edges[i], h.edges[i + 1])));
        buckets.push((h.overflow.saturating_sub(self.posinf), hi, max));
        let bucket_of = |r: u64| {
            let mut seen = 0u64;
            for &(c, a, b) in &buckets {
                seen = seen.saturating_add(c);
                if r < seen {
                    return (a, b);
                }
            }
            (min, max)
        };
        Some(Keyed(
            qs.iter()
                .map(|(k, q)| {
                    let vi = (n - 1) as f64 * q;
                    let below = (vi.floor() as u64).min(n - 1);
                    let above = if vi >= (n - 1) as f64 { n - 1 } else { below + 1 };
                    let (a, _) = bucket_of(below);
                    let (_, b) = bucket_of(above);
                    (k.clone(), [a.max(min), b.min(max)])
                })
                .collect(),
        ))
    }
}

/// Adds two counts read from JSON, which may claim anything.
fn add(a: u64, b: u64, key: &str) -> Result<u64> {
    a.checked_add(b).with_context(|| format!("cannot merge: the '{key}' counts add up to more than 2^64"))
}

impl StatsJson {
    /// The counts, as the accumulators hold them (the JSON keeps its own field order, SPEC §4).
    pub fn counts(&self) -> Counts {
        Counts {
            elements: self.elements,
            zeros: self.zeros,
            negative: self.negative_inputs,
            nan: self.nan,
            posinf: self.posinf,
            neginf: self.neginf,
            finite: self.finite,
        }
    }

    /// Every object in a statistics JSON file (or `-` for stdin): one object, JSON Lines, or
    /// objects separated by whitespace. A histogram is checked ([`HistJson::check`]) before
    /// anything merges, indexes or draws it.
    pub fn read_all(path: &std::path::Path) -> Result<Vec<StatsJson>> {
        use std::io::Read;
        let mut text = String::new();
        if crate::usage::is_dash(path) {
            std::io::stdin().read_to_string(&mut text)?;
        } else {
            std::fs::File::open(path)?.read_to_string(&mut text)?;
        }
        let mut out = Vec::new();
        let mut objects = serde_json::Deserializer::from_str(&text).into_iter::<StatsJson>();
        for k in 1.. {
            // the line the object starts on, for messages
            let at = objects.byte_offset();
            let start = at + text[at..].len() - text[at..].trim_start().len();
            let line = text[..start].matches('\n').count() + 1;
            let Some(item) = objects.next() else { break };
            let s = item.context("not relu statistics JSON")?;
            let what = || format!("object {k} ('{}') on line {line}", crate::quote::one_line(&s.input));
            if let Some(h) = &s.hist {
                h.check().map_err(|why| anyhow::anyhow!("{}: hist: {why}", what()))?;
            }
            s.check().map_err(|why| anyhow::anyhow!("{}: {why}", what()))?;
            out.push(s);
        }
        Ok(out)
    }

    /// The invariants every object relu writes holds (SPEC §4): counts that add up, moments
    /// present exactly when there are finite values, `min <= max`, `std >= 0`, units that agree
    /// with the counts. An object that breaks one is refused before it merges: taken as it is,
    /// it would move the merged numbers silently (a null mean read as 0 halves the merged mean).
    pub fn check(&self) -> Result<(), String> {
        let n = self.elements;
        let sum = [self.nan, self.posinf, self.neginf].iter().try_fold(self.finite, |a, &b| a.checked_add(b));
        if sum != Some(n) {
            return Err(format!(
                "'finite' + 'nan' + 'posinf' + 'neginf' is {} + {} + {} + {}, not 'elements' ({n})",
                self.finite, self.nan, self.posinf, self.neginf
            ));
        }
        if self.zeros > self.finite {
            return Err(format!("'zeros' is {} but only {} values are finite ('finite')", self.zeros, self.finite));
        }
        if self.negative_inputs > n {
            return Err(format!("'negative_inputs' is {} but 'elements' is {n}", self.negative_inputs));
        }
        match self.sparsity {
            None if n > 0 => return Err(format!("'sparsity' is null but 'elements' is {n}")),
            Some(x) if !(0.0..=1.0).contains(&x) => return Err(format!("'sparsity' is {x:?}: not in [0, 1]")),
            _ => {}
        }
        let moments = [("min", self.min), ("max", self.max), ("mean", self.mean), ("std", self.std)];
        for (key, v) in moments {
            match v {
                None if self.finite > 0 => {
                    return Err(format!("'{key}' is null but 'finite' is {}: it must be a number", self.finite))
                }
                Some(v) if self.finite == 0 => {
                    return Err(format!("'{key}' is {v:?} but 'finite' is 0: it must be null"));
                }
                Some(v) if !v.is_finite() => return Err(format!("'{key}' is {v:?}: it must be finite")),
                _ => {}
            }
        }
        if let (Some(lo), Some(hi)) = (self.min, self.max) {
            if lo > hi {
                return Err(format!("'min' ({lo:?}) is greater than 'max' ({hi:?})"));
            }
        }
        if let Some(sd) = self.std.filter(|&sd| sd < 0.0) {
            return Err(format!("'std' is {sd:?}: a standard deviation is >= 0"));
        }
        if self.merged == Some(0) {
            return Err("'merged' is 0: a merge counts at least one object".into());
        }
        if let Some(u) = &self.units {
            u.check(n).map_err(|why| format!("units: {why}"))?;
        }
        Ok(())
    }

    /// Combines two statistics objects exactly (SPEC §4): counts add, min/max combine, mean and
    /// std by Chan's formulas, `active_count` element-wise. Different activations or unit layouts
    /// are an error, never a silent mix.
    pub fn merge(&self, b: &StatsJson) -> Result<StatsJson> {
        let a = self;
        if a.activation != b.activation {
            // plain values: 'relu' and none, not Rust's Some("relu") and None
            let act = |x: &Option<String>| x.as_deref().map_or("none".into(), crate::quote::text);
            bail!(
                "cannot merge statistics of different activations ({} and {})",
                act(&a.activation),
                act(&b.activation)
            );
        }
        let units = match (&a.units, &b.units) {
            (None, None) => None,
            (Some(ua), Some(ub)) => {
                // say what differs: the layout, or a count list that does not match its count
                if ua.count != ub.count || ua.axis != ub.axis {
                    bail!(
                        "cannot merge statistics with different units: {} units on axis {} and {} units on axis {}",
                        ua.count,
                        ua.axis,
                        ub.count,
                        ub.axis
                    );
                }
                for (u, which) in [(ub, "this object"), (ua, "the objects before it")] {
                    if u.active_count.len() as u64 != u.count {
                        bail!(
                            "{which}: 'units' has 'count' {} but 'active_count' holds {} values",
                            u.count,
                            u.active_count.len()
                        );
                    }
                }
                if ua.threshold != ub.threshold {
                    bail!(
                        "cannot merge statistics with different dead thresholds ({} and {})",
                        ua.threshold,
                        ub.threshold
                    );
                }
                let active = ua
                    .active_count
                    .iter()
                    .zip(&ub.active_count)
                    .map(|(&x, &y)| add(x, y, "active"))
                    .collect::<Result<_>>()?;
                let per_unit = add(ua.elements_per_unit, ub.elements_per_unit, "elements_per_unit")?;
                Some(UnitsJson::from_counts(ua.axis, per_unit, active, ua.threshold).merge_values(ua, ub)?)
            }
            _ => bail!("cannot merge statistics with units and without (arrays of different dimensions)"),
        };
        // counts first: the moments below add the finite counts unchecked
        let c = a.counts().checked_add(&b.counts()).map_err(|i| {
            let key = ["elements", "zeros", "negative_inputs", "nan", "posinf", "neginf", "finite"][i];
            anyhow::anyhow!("cannot merge: the '{key}' counts add up to more than 2^64")
        })?;
        // the shards' sums are finite × mean, exactly: the merged mean is their exact sum over
        // the count, rounded once (`check` made sure both are present when finite > 0)
        let mut acc = StatsAccumulator::new(None);
        for s in [a, b] {
            let sum = s.sum.clone().unwrap_or_else(|| {
                let mut sum = ExactSum::default();
                sum.add_product(s.finite as f64, s.mean.unwrap_or(0.0));
                sum
            });
            let (m, known) =
                StatsAccumulator::moments_of(s.finite, s.mean.unwrap_or(0.0), s.std.unwrap_or(0.0), s.m3, s.m4, sum);
            if s.finite > 0 {
                acc.absorb(s.finite, &m);
                acc.higher &= known;
            }
        }
        let (m3, m4) = acc.higher_sums();
        let opt = |x: Option<f64>, y: Option<f64>, f: fn(f64, f64) -> f64| match (x, y) {
            (Some(x), Some(y)) => Some(f(x, y)),
            (x, y) => x.or(y),
        };
        let hist = match (&a.hist, &b.hist) {
            (None, None) => None,
            (Some(x), Some(y)) => Some(x.merge(y).map_err(anyhow::Error::msg)?),
            _ => bail!("cannot merge statistics with a histogram and without (give every shard --bins and --range)"),
        };
        Ok(StatsJson {
            input: "<merged>".into(),
            // one name survives a merge of objects that all carry it
            name: if a.name == b.name { a.name.clone() } else { None },
            activation: a.activation.clone(),
            dtype: if a.dtype == b.dtype { a.dtype.clone() } else { "mixed".into() },
            // A merge covers several arrays: no one shape describes it (`elements` does).
            shape: None,
            elements: c.elements,
            zeros: c.zeros,
            sparsity: (c.elements > 0).then(|| c.zeros as f64 / c.elements as f64),
            negative_inputs: c.negative,
            nan: c.nan,
            posinf: c.posinf,
            neginf: c.neginf,
            finite: c.finite,
            min: opt(a.min, b.min, f64::min),
            max: opt(a.max, b.max, f64::max),
            mean: acc.mean(),
            std: acc.std(),
            kurtosis: acc.kurtosis(),
            m3,
            m4,
            units,
            // exact quantiles do not merge: `merge-stats` bounds them from histograms
            quantiles: None,
            quantile_bounds: None,
            hist,
            merged: Some(add(a.merged.unwrap_or(1), b.merged.unwrap_or(1), "merged")?),
            inputs: None,
            sum: Some(acc.sum),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::Op;

    fn chunk(values: &[f64], shift: f64) -> ChunkStats {
        let fin: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
        ChunkStats {
            counts: Counts {
                elements: values.len() as u64,
                zeros: values.iter().filter(|&&v| v == 0.0).count() as u64,
                negative: 0,
                nan: values.iter().filter(|v| v.is_nan()).count() as u64,
                posinf: values.iter().filter(|&&v| v == f64::INFINITY).count() as u64,
                neginf: values.iter().filter(|&&v| v == f64::NEG_INFINITY).count() as u64,
                finite: fin.len() as u64,
            },
            shift,
            s1: fin.iter().map(|v| v - shift).sum(),
            s1_lo: 0.0,
            s2: fin.iter().map(|v| (v - shift) * (v - shift)).sum(),
            s3: fin.iter().map(|v| (v - shift).powi(3)).sum(),
            s4: fin.iter().map(|v| (v - shift).powi(4)).sum(),
            min: fin.iter().copied().fold(f64::INFINITY, f64::min),
            max: fin.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            exp: 0,
        }
    }

    fn reference(values: &[f64]) -> (f64, f64) {
        let fin: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
        let mean = fin.iter().sum::<f64>() / fin.len() as f64;
        let var = fin.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / fin.len() as f64;
        (mean, var.sqrt())
    }

    #[test]
    fn merge_of_splits_equals_the_whole_at_every_split_point() {
        let values: Vec<f64> = (0..200)
            .map(|i| ((i * 37 % 101) as f64 - 40.0) * 0.37 + 1e4)
            .chain([f64::NAN, f64::INFINITY, 0.0])
            .collect();
        let (mean, std) = reference(&values);
        let mut whole = StatsAccumulator::new(None);
        whole.add_chunk(&chunk(&values, 0.0));
        for split in 0..=values.len() {
            let mut acc = StatsAccumulator::new(None);
            acc.add_chunk(&chunk(&values[..split], 1e4));
            acc.add_chunk(&chunk(&values[split..], acc.shift(0.0)));
            assert_eq!((acc.elements, acc.zeros, acc.nan, acc.posinf, acc.finite), (203, 1, 1, 1, 201));
            assert!((acc.mean().unwrap() - mean).abs() <= 1e-12 * mean.abs(), "split {split}");
            assert!((acc.std().unwrap() - std).abs() <= 1e-9 * std, "split {split}: {} vs {std}", acc.std().unwrap());
            let j1 = {
                let mut a = StatsAccumulator::new(None);
                a.add_chunk(&chunk(&values[..split], 0.0));
                a.to_json("a", None, "float64", &[split as u64], 0.01)
            };
            let j2 = {
                let mut a = StatsAccumulator::new(None);
                a.add_chunk(&chunk(&values[split..], 0.0));
                a.to_json("b", None, "float64", &[0], 0.01)
            };
            let m = j1.merge(&j2).unwrap();
            assert_eq!((m.elements, m.nan, m.finite, m.zeros), (203, 1, 201, 1));
            assert_eq!(m.min, Some(values.iter().copied().filter(|v| v.is_finite()).fold(f64::INFINITY, f64::min)));
            assert!((m.mean.unwrap() - mean).abs() <= 1e-12 * mean.abs());
            assert!((m.std.unwrap() - std).abs() <= 1e-9 * std);
        }
    }

    /// Mean and std of finite values scaled by 2^-s first, so that nothing overflows.
    fn scaled_reference(values: &[f64], s: i32) -> (f64, f64) {
        let scaled: Vec<f64> = values.iter().map(|&v| ldexp(v, -s)).collect();
        let (m, sd) = reference(&scaled);
        (ldexp(m, s), ldexp(sd, s))
    }

    #[test]
    fn squares_that_overflow_keep_std_finite_and_right() {
        let k = Kernel::default();
        let cases: [&[f64]; 4] = [
            &[1e200, 2e200, 3e200, 5e199],
            &[1e300, -1e300, 1.7e308, -1.7e308, 3.0],
            &[f64::MAX, f64::MAX, -f64::MAX, 1.0, f64::NAN, f64::INFINITY],
            &[1e160, 3e160, -2e160, 0.0, 7e159, 1e-300],
        ];
        for values in cases {
            let (mean, std) = scaled_reference(values, 1000);
            assert!(std.is_finite() && std > 0.0);
            let close = |a: f64, b: f64| (a - b).abs() <= 1e-12 * b.abs();
            // the kernel's chunks, split at every point, merged as accumulators and as JSON
            for split in 0..=values.len() {
                let mut acc = StatsAccumulator::new(None);
                let mut parts = Vec::new();
                for part in [&values[..split], &values[split..]] {
                    let mut y = vec![0.0; part.len()];
                    let c = k.float_stats(
                        Op::Identity,
                        part,
                        None,
                        &mut y,
                        acc.shift(part.first().copied().unwrap_or(0.0)),
                    );
                    acc.add_chunk_of(&c, &y, false);
                    let mut one = StatsAccumulator::new(None);
                    let c = k.float_stats(Op::Identity, part, None, &mut y, 0.0);
                    one.add_chunk_of(&c, &y, false);
                    parts.push(one.to_json("p", None, "float64", &[part.len() as u64], 0.01));
                }
                let (m, s) = (acc.mean().unwrap(), acc.std().unwrap());
                assert!(
                    close(s, std) && (m - mean).abs() <= 1e-12 * std,
                    "{values:?} split {split}: {m} {s} vs {mean} {std}"
                );
                let j = parts[0].merge(&parts[1]).unwrap();
                let (m, s) = (j.mean.unwrap(), j.std.unwrap());
                assert!(close(s, std) && (m - mean).abs() <= 1e-12 * std, "{values:?} json split {split}: {m} {s}");
            }
        }
        assert_eq!(ldexp(1.5, 2000), f64::INFINITY);
        assert_eq!(ldexp(ldexp(3.0, 1020), -1020), 3.0);
        assert_eq!(ldexp(1.0, -1074), f64::from_bits(1));
        assert_eq!(ldexp(f64::from_bits(1), 1074 + 1023), 2f64.powi(1023));
        assert_eq!(ldexp(f64::MIN_POSITIVE, -1), f64::MIN_POSITIVE / 2.0);
    }

    proptest::proptest! {
        /// The exact sum against i128 arithmetic: values m · 2^e with |m| < 2^40 and e in
        /// [-20, 40], summed in i128 units of 2^-20; the mean equals that sum's mean to an ulp,
        /// and is the same bit for bit however the values are split and merged.
        #[test]
        fn exact_sums_agree_with_integers_and_ignore_the_split(
            parts in proptest::collection::vec((-(1i64 << 40)..(1i64 << 40), -20i32..40), 1..200),
            split in 0usize..200,
        ) {
            let vals: Vec<f64> = parts.iter().map(|&(m, e)| ldexp(m as f64, e)).collect();
            let units: i128 = parts.iter().map(|&(m, e)| (m as i128) << (e + 20)).sum();
            let n = vals.len() as u64;
            let want = units as f64 / n as f64 / 2f64.powi(20);
            let mut all = ExactSum::default();
            vals.iter().for_each(|&v| all.add(v));
            let got = all.mean(n);
            proptest::prop_assert!((got - want).abs() <= 2.0 * f64::EPSILON * want.abs(), "{got} vs {want}");
            let (a, b) = vals.split_at(split.min(vals.len()));
            let (mut sa, mut sb) = (ExactSum::default(), ExactSum::default());
            a.iter().for_each(|&v| sa.add(v));
            b.iter().rev().for_each(|&v| sb.add(v));
            sb.merge(&sa);
            proptest::prop_assert_eq!(sb.mean(n).to_bits(), got.to_bits());
            // huge values that cancel leave the sum untouched
            sb.add(f64::MAX);
            sb.add_product(3.0, 1e300);
            sb.add(-f64::MAX);
            sb.add_product(-1.5, 2e300);
            proptest::prop_assert_eq!(sb.mean(n).to_bits(), got.to_bits());
        }
    }

    #[test]
    fn the_issues_means_are_numpys() {
        let k = Kernel::default();
        let x = [1e300, -1e300, 1.7e308, -1.7e308, 3.0];
        for split in 0..=x.len() {
            let mut acc = StatsAccumulator::new(None);
            for part in [&x[..split], &x[split..]] {
                let mut y = vec![0.0; part.len()];
                let c =
                    k.float_stats(Op::Identity, part, None, &mut y, acc.shift(part.first().copied().unwrap_or(0.0)));
                acc.add_chunk_of(&c, &y, false);
            }
            assert_eq!(acc.mean(), Some(0.6), "split {split}");
        }
        let x: [i64; 4] = [i64::MIN, i64::MAX, 0, -1];
        for split in 0..=x.len() {
            let mut acc = StatsAccumulator::new(None);
            for part in [&x[..split], &x[split..]] {
                let mut y = vec![0; part.len()];
                let shift = acc.shift(part.first().map_or(0.0, |&v| v as f64)).round();
                let c = k.int_stats(Op::Identity, part, None, &mut y, shift);
                acc.add_chunk_of(&c, &y, true);
            }
            assert_eq!(acc.mean(), Some(-0.25), "split {split}");
        }
    }

    #[test]
    fn inner_sizes_of_empty_arrays_saturate_instead_of_wrapping() {
        // found by fuzzing: (0, 5, 2**40, 2**40) is a valid empty array; 2**80 wrapped to 0
        let shape = [0, 5, 1 << 40, 1 << 40];
        assert_eq!(inner_size(&shape, false, 1), u64::MAX);
        assert_eq!(inner_size(&shape, true, 3), 0);
        assert_eq!(inner_size(&[0, 1 << 40, 1 << 40], true, 2), 0);
        assert_eq!(inner_size(&[7, 1 << 40, 1 << 40], true, 2), 7 << 40);
        assert_eq!(UnitLayout::new(&shape, false, 1).inner, u64::MAX);
        assert_eq!(inner_size(&[2, 3, 4], false, 0), 12);
    }

    #[test]
    fn unit_counts_for_dense_and_conv_layouts() {
        let k = Kernel::default();
        // (N=3, U=4) C order, start mid-row
        let x: Vec<f32> = vec![1.0, -1.0, 0.0, 2.0, 3.0, 0.0, -1.0, 1.0, f32::NAN, 1.0, 1.0, 1.0];
        for split in 0..=x.len() {
            let mut acc = StatsAccumulator::new(Some(UnitLayout::new(&[3, 4], false, 1)));
            acc.count_active(&k, &x[..split], 0, |v| v > 0.0);
            acc.count_active(&k, &x[split..], split as u64, |v| v > 0.0);
            assert_eq!(acc.active, vec![2, 1, 1, 3]);
        }
        // NCHW (2, 3, 2, 1): inner = 2
        let y: Vec<i32> = vec![1, 1, 0, 0, 1, -1, 1, 0, 0, 0, 0, 5];
        let mut acc = StatsAccumulator::new(Some(UnitLayout::new(&[2, 3, 2, 1], false, 1)));
        acc.count_active(&k, &y[..5], 0, |v| v > 0);
        acc.count_active(&k, &y[5..], 5, |v| v > 0);
        assert_eq!(acc.active, vec![3, 0, 2]);
        assert_eq!(UnitLayout::new(&[2, 3, 4, 5], true, 3).inner, 24);
    }

    #[test]
    fn merge_refuses_different_units() {
        let a = StatsAccumulator::new(Some(UnitLayout::new(&[10, 4], false, 1))).to_json(
            "a",
            None,
            "float32",
            &[10, 4],
            0.01,
        );
        let b = StatsAccumulator::new(Some(UnitLayout::new(&[10, 5], false, 1))).to_json(
            "b",
            None,
            "float32",
            &[10, 5],
            0.01,
        );
        assert!(a.merge(&b).is_err());
        assert!(a.merge(&a).is_ok());
    }
}
