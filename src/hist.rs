//! Histograms counted exactly as `numpy.histogram` counts the values converted to float64: edges
//! from `np.linspace(lo, hi, n + 1)`, each bin `[e_i, e_{i+1})` with the last one closed, a value's
//! bin computed as `((x - lo) / (hi - lo)) * n` and then corrected against the edges. Values
//! outside the range, ±inf and NaN are counted apart, never dropped. Histograms with equal edges
//! merge by adding their counts (shards give one exact histogram).
//!
//! A [`Histogram`] is a pipeline [`Observer`]: it sees the output of the activation chunk by chunk.
//! [`MinMax`] is the observer of the first pass when the range comes from the data.

use crate::dtype::{f32_down, f32_up, DType, Element};
use crate::kernel::{BinSpec, Kernel, Unaligned, EXACT, NEAR, ZERO};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Equal-width bins over `[lo, hi]`, with their edges as NumPy computes them.
#[derive(Clone, Debug, PartialEq)]
pub struct Bins {
    pub lo: f64,
    pub hi: f64,
    pub edges: Vec<f64>,
    denom: f64,
}

/// The most bins a histogram may have: 1,048,576 (8 MiB of counts; more would not be drawn or
/// read by anyone, and an absurd count must not size an allocation).
pub const MAX_BINS: usize = 1 << 20;

impl Bins {
    /// `n` bins over `[lo, hi]`; `lo == hi` widens to `[lo - 0.5, hi + 0.5]` (as NumPy does). The
    /// error says why NumPy would refuse the same range.
    pub fn new(lo: f64, hi: f64, n: usize) -> Result<Bins, String> {
        if n == 0 {
            return Err("--bins must be at least 1".into());
        }
        if n > MAX_BINS {
            return Err(format!("at most {MAX_BINS} bins"));
        }
        if !(lo.is_finite() && hi.is_finite()) {
            return Err(format!("the range [{lo}, {hi}] is not finite"));
        }
        if lo > hi {
            return Err(format!("the range [{lo}, {hi}] is empty: its low end is above its high end"));
        }
        let (lo, hi) = if lo == hi { (lo - 0.5, hi + 0.5) } else { (lo, hi) };
        let denom = hi - lo;
        if !denom.is_finite() {
            return Err(format!("the range [{lo}, {hi}] is wider than float64 can hold (NumPy refuses it too)"));
        }
        let edges = linspace(lo, hi, n + 1);
        if edges.windows(2).any(|w| w[0] >= w[1]) {
            return Err(format!(
                "too many bins for the range [{lo}, {hi}]: float64 cannot make {n} bins of nonzero width there"
            ));
        }
        Ok(Bins { lo, hi, edges, denom })
    }

    pub fn count(&self) -> usize {
        self.edges.len() - 1
    }

    /// The kernel's fast path. `t = (x - lo) · (n / (hi - lo))` and NumPy's
    /// `((x - lo) / (hi - lo)) · n` differ by a few roundings of `t`, and each edge lies within a
    /// few roundings of `lo + i·(hi - lo)/n`: where `t` is further than `tau` (a bound on both,
    /// with a wide margin, for the precision `eps` the fast path computes in) from an integer,
    /// NumPy's estimate truncates to the same bin and neither of its corrections fires. In f32,
    /// a value that `lo` or `hi` rounded to f32 would misplace is within that bound of the end,
    /// so it fails the test too. Ranges too narrow for the bound take the exact path.
    fn spec(&self, eps: f64) -> Option<(f64, f64, f64, f64)> {
        let n = self.count() as f64;
        let scale = self.lo.abs().max(self.hi.abs()) / self.denom;
        let tau = 64.0 * eps * n * (1.0 + scale);
        let usable = tau < 1e-2 && self.denom > f64::MIN_POSITIVE * 1e6 && self.count() < i32::MAX as usize;
        usable.then_some((self.lo, self.hi, n / self.denom, tau))
    }

    fn spec64(&self) -> BinSpec<f64> {
        let n = self.count() as i32;
        let mut b = match self.spec(f64::EPSILON) {
            Some((lo, hi, c, tau)) => BinSpec::new(lo, hi, c, tau, n),
            // nothing passes: every value takes NumPy's steps
            None => BinSpec::new(self.lo, self.hi, 0.0, 1.0, n),
        };
        b.zero = self.zero_code();
        b
    }

    /// The bin of ±0, when the range holds it.
    fn zero_code(&self) -> u32 {
        if self.lo <= 0.0 && 0.0 <= self.hi {
            self.bin(0.0) as u32
        } else {
            EXACT
        }
    }

    /// In f32, with the range rounded inward so that its tests are exact for f32 values.
    fn spec32(&self) -> Option<BinSpec<f32>> {
        let (lo, hi, c, tau) = self.spec(f32::EPSILON as f64)?;
        let mut b = BinSpec::new(f32_up(lo), f32_down(hi), c as f32, tau as f32, self.count() as i32);
        b.zero = self.zero_code();
        (b.c.is_finite() && b.c > 0.0 && b.lo.is_finite() && b.hi.is_finite()).then_some(b)
    }

    /// The bin of `x` (finite, in `[lo, hi]`), as NumPy's uniform-bin fast path finds it.
    #[inline(always)]
    fn bin(&self, x: f64) -> usize {
        let n = self.edges.len() - 1;
        let f = ((x - self.lo) / self.denom) * n as f64;
        let mut i = (f as usize).min(n - 1);
        // the estimate can be one off within an ulp or so of an edge: NumPy corrects it once each way
        if x < self.edges[i] {
            i = i.saturating_sub(1);
        }
        if i != n - 1 && x >= self.edges[i + 1] {
            i += 1;
        }
        i
    }
}

/// `np.linspace(lo, hi, num)` in float64, operation for operation.
fn linspace(lo: f64, hi: f64, num: usize) -> Vec<f64> {
    let div = (num - 1) as f64;
    let delta = hi - lo;
    let step = delta / div;
    let mut y: Vec<f64> = (0..num)
        .map(|i| {
            let i = i as f64;
            // NumPy scales by the step, unless the step underflows to 0
            if step == 0.0 {
                (i / div) * delta + lo
            } else {
                i * step + lo
            }
        })
        .collect();
    if num > 1 {
        y[num - 1] = hi;
    }
    y
}

const LANES: usize = 16;

/// Values counted a block at a time (the buffers live on the stack).
const BLOCK: usize = 512;

/// One call's counting state: the bins, the counter sets, and the buffers of a block.
struct Counter<'a> {
    k: Kernel,
    b: &'a Bins,
    lanes: &'a mut [u32],
    sets: usize,
    nbins: usize,
    limit: u32,
    zero_bin: u32,
    spec32: Option<BinSpec<f32>>,
    spec: BinSpec<f64>,
    outside: Outside,
    idx: [u32; BLOCK],
    sure: [u32; BLOCK + 16],
    rest: [u32; BLOCK + 16],
}

impl Counter<'_> {
    /// Counts up to [`BLOCK`] values.
    fn block<U: Element>(&mut self, vals: &[U]) {
        let (k, b, nbins, sets, limit) = (self.k, self.b, self.nbins, self.sets, self.limit);
        let idx = &mut self.idx[..vals.len()];
        match self.spec32 {
            Some(s32) => k.bin_index32(vals, idx, s32, U::to_f32),
            None => k.bin_index(vals, idx, self.spec, U::to_f64),
        }
        let lanes = &mut *self.lanes;
        let r = match k.split_codes(idx, limit, ZERO, &mut self.sure, &mut self.rest) {
            Some((m, r, zeros)) => {
                // a loop of increments and nothing else (the kernel put each bin in its set)
                for &code in &self.sure[..m] {
                    // SAFETY: `split_codes` packs only codes below `limit`.
                    unsafe { *lanes.get_unchecked_mut(code as usize) += 1 };
                }
                if zeros > 0 {
                    lanes[self.zero_bin as usize] += zeros as u32;
                }
                r
            }
            None => {
                // the certain bins in a tight loop, four at a time with one test (a block
                // holds a few codes next to an edge, so whole blocks are rarely all certain);
                // the positions of the others to a list
                let mut r = 0;
                let mut quads = idx.chunks_exact(4);
                for (q, c) in (&mut quads).enumerate() {
                    if c[0].max(c[1]).max(c[2]).max(c[3]) < limit {
                        for &code in c {
                            // SAFETY: all four are below `limit`.
                            unsafe { *lanes.get_unchecked_mut(code as usize) += 1 };
                        }
                    } else {
                        tally(lanes, &mut self.rest, &mut r, 4 * q, c, limit);
                    }
                }
                let base = idx.len() - quads.remainder().len();
                tally(lanes, &mut self.rest, &mut r, base, quads.remainder(), limit);
                r
            }
        };
        for &j in &self.rest[..r] {
            let j = j as usize;
            let row = &mut lanes[(j % sets) * (nbins + 2)..][..nbins];
            self.outside.add(b, row, idx[j], vals[j].to_f64());
        }
    }
}

/// Counts the codes below `limit` (the certain bins) and lists the positions of the others
/// (`start` is the first code's) in `rest`, from `*r` on.
#[inline(always)]
fn tally(lanes: &mut [u32], rest: &mut [u32], r: &mut usize, start: usize, codes: &[u32], limit: u32) {
    for (j, &code) in codes.iter().enumerate() {
        if code < limit {
            // SAFETY: just checked.
            unsafe { *lanes.get_unchecked_mut(code as usize) += 1 };
        } else {
            rest[*r] = (start + j) as u32;
            *r += 1;
        }
    }
}

/// What the kernel left to the exact path: values next to an edge, out of range, NaN.
#[derive(Default)]
struct Outside {
    under: u64,
    over: u64,
    nan: u64,
}

impl Outside {
    /// Counts `x`, whose kernel code was `code` (not a certain bin), into `row` or apart.
    #[inline]
    fn add(&mut self, b: &Bins, row: &mut [u32], code: u32, x: f64) {
        debug_assert!(code != ZERO);
        if code != EXACT && x >= b.lo && x <= b.hi {
            // next to edge e: at or above it is bin e, below it bin e - 1
            let e = (code & !NEAR) as usize;
            row[e.saturating_sub((x < b.edges[e]) as usize)] += 1;
        } else if code == EXACT && x >= b.lo && x <= b.hi {
            // a range too narrow for the fast path: NumPy's steps
            row[b.bin(x)] += 1;
        } else if x < b.lo {
            self.under += 1;
        } else if x > b.hi {
            self.over += 1;
        } else {
            self.nan += 1;
        }
    }
}

/// Counts per bin, and what fell outside.
#[derive(Clone, Debug)]
pub struct Histogram {
    pub bins: Arc<Bins>,
    pub counts: Vec<u64>,
    pub underflow: u64,
    pub overflow: u64,
    pub nan: u64,
    /// `LANES` sets of counters (the bins, then the counts below and above the range), one after
    /// the other: value `j` of a block counts in set `j % LANES`, so values landing in one bin (the zeros of a relu) update different memory
    /// instead of waiting on each other's store.
    lanes: Vec<u32>,
    /// `LANES`, or 1 where that many sets would not fit in cache.
    sets: usize,
    pending: usize,
    kernel: Kernel,
}

impl Histogram {
    pub fn new(bins: Arc<Bins>) -> Histogram {
        let n = bins.count();
        let sets = if n <= 4096 { LANES } else { 1 };
        Histogram {
            bins,
            counts: vec![0; n],
            underflow: 0,
            overflow: 0,
            nan: 0,
            lanes: vec![0; sets * (n + 2)],
            sets,
            pending: 0,
            kernel: Kernel::default(),
        }
    }

    /// The same, counting with the kernel `k` (the tests pin every level to one answer).
    pub fn with_kernel(bins: Arc<Bins>, k: Kernel) -> Histogram {
        Histogram { kernel: k, ..Histogram::new(bins) }
    }

    /// Counts the values `xs`: the kernel finds the bins that are certain, a block at a time;
    /// one comparison with an edge settles those next to one, and the rest (outside the range,
    /// NaN, a range too narrow for the fast path) take NumPy's own steps.
    pub fn add<T: Element>(&mut self, xs: &[T]) {
        // u32 lanes hold at most one call's counts; fold them before they could overflow
        if self.pending + xs.len() >= u32::MAX as usize / 2 {
            self.fold();
        }
        self.pending += xs.len();
        let k = self.kernel;
        let b = &*self.bins;
        let nbins = b.count();
        let sets = self.sets;
        // each set: the bins, then the counters below and above the range
        let stride = if sets > 1 { nbins as u32 + 2 } else { 0 };
        // Zeros (half of a relu's output) are only counted where the level packs the codes;
        // elsewhere they come out as their bin like any other value.
        let zero_bin = b.zero_code();
        let zero = if zero_bin != EXACT && k.can_split_codes() { ZERO } else { zero_bin };
        // f32 lanes for data that is f32 already (f16 and bfloat16 widen to it exactly)
        let spec32 = if matches!(T::DTYPE, DType::F32 | DType::F16 | DType::BF16) { b.spec32() } else { None };
        let spec32 = spec32.map(|s| BinSpec { stride, zero, ..s });
        let spec = BinSpec { stride, zero, ..b.spec64() };
        let mut c = Counter {
            k,
            b,
            lanes: &mut self.lanes[..],
            sets,
            nbins,
            limit: (sets * (nbins + 2)) as u32,
            zero_bin,
            spec32,
            spec,
            outside: Outside::default(),
            idx: [0; BLOCK],
            sure: [0; BLOCK + 16],
            rest: [0; BLOCK + 16],
        };
        let mut packed = [0f32; BLOCK + 16];
        // f32 data whose zeros fall in the range: the zeros (half of a relu's output) are
        // counted and dropped before the bins are found, where the level packs vectors; the
        // first block tells whether there are zeros enough to pay for it
        let mut compress = T::DTYPE == DType::F32 && zero_bin != EXACT;
        for block in xs.chunks(BLOCK) {
            if compress {
                // (f32 or `Unaligned<f32>`: read as the latter, at any address)
                let block: &[Unaligned<f32>] = bytemuck::cast_slice(block);
                if let Some((m, zeros)) = k.compress_nonzero_f32(block, &mut packed) {
                    c.lanes[zero_bin as usize] += zeros as u32;
                    c.block(&packed[..m]);
                    compress = zeros as usize * 8 >= block.len();
                    continue;
                }
            }
            c.block(block);
        }
        self.underflow += c.outside.under;
        self.overflow += c.outside.over;
        self.nan += c.outside.nan;
    }

    /// Moves the lane counters into `counts`.
    fn fold(&mut self) {
        let n = self.counts.len();
        for set in self.lanes.chunks_exact_mut(n + 2) {
            for (c, l) in self.counts.iter_mut().zip(set.iter_mut()) {
                *c += *l as u64;
                *l = 0;
            }
            self.underflow += set[n] as u64;
            self.overflow += set[n + 1] as u64;
            set[n] = 0;
            set[n + 1] = 0;
        }
        self.pending = 0;
    }

    /// Adds another histogram of the same bins.
    pub fn merge(&mut self, o: &Histogram) {
        let mut o = o.clone();
        o.fold();
        self.fold();
        for (a, b) in self.counts.iter_mut().zip(&o.counts) {
            *a += b;
        }
        self.underflow += o.underflow;
        self.overflow += o.overflow;
        self.nan += o.nan;
    }

    pub fn to_json(&mut self) -> HistJson {
        self.fold();
        HistJson {
            edges: self.bins.edges.clone(),
            counts: self.counts.clone(),
            underflow: self.underflow,
            overflow: self.overflow,
            nan: self.nan,
        }
    }
}

/// The finite minimum and maximum of the values: the range of the first pass.
#[derive(Clone, Copy, Debug)]
pub struct MinMax {
    pub min: f64,
    pub max: f64,
}

impl Default for MinMax {
    fn default() -> Self {
        MinMax { min: f64::INFINITY, max: f64::NEG_INFINITY }
    }
}

impl MinMax {
    pub fn merge(&mut self, o: &MinMax) {
        self.min = self.min.min(o.min);
        self.max = self.max.max(o.max);
    }

    /// The range NumPy would pick: `(0, 1)` without any finite value.
    pub fn range(&self) -> (f64, f64) {
        if self.min <= self.max {
            (self.min, self.max)
        } else {
            (0.0, 1.0)
        }
    }
}

/// The histogram's JSON (SPEC §1, hist; also the `hist` key of the statistics object).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct HistJson {
    pub edges: Vec<f64>,
    pub counts: Vec<u64>,
    pub underflow: u64,
    pub overflow: u64,
    pub nan: u64,
}

impl HistJson {
    /// Why these are not a histogram's edges and counts, if they are not: relu writes `n + 1 >= 2`
    /// finite, strictly increasing edges for `n` counts, over a range whose width float64 holds.
    /// JSON read back from a file (`hist --from-stats`, `merge-stats`) is checked with this before
    /// anything indexes its edges or draws them.
    pub fn check(&self) -> Result<(), String> {
        let (e, n) = (&self.edges, self.counts.len());
        if e.len() < 2 {
            let have = if e.is_empty() { "no edges" } else { "1 edge" };
            return Err(format!("{have}: a histogram needs at least 2 edges (one bin)"));
        }
        if e.len() != n + 1 {
            return Err(format!("{} edges for {n} counts: there must be one edge more than counts", e.len()));
        }
        if n > MAX_BINS {
            return Err(format!("{n} bins: relu draws and merges at most {MAX_BINS}"));
        }
        if let Some((i, x)) = e.iter().enumerate().find(|(_, x)| !x.is_finite()) {
            return Err(format!("edge {i} is {x:?}: edges must be finite"));
        }
        if let Some(i) = (1..e.len()).find(|&i| e[i - 1] >= e[i]) {
            return Err(format!(
                "the edges are not strictly increasing: edge {} is {:?} and edge {i} is {:?}",
                i - 1,
                e[i - 1],
                e[i]
            ));
        }
        let (lo, hi) = (e[0], e[e.len() - 1]);
        if !(hi - lo).is_finite() {
            return Err(format!("the range [{lo:?}, {hi:?}] is wider than float64 can hold (NumPy refuses it too)"));
        }
        Ok(())
    }

    /// The first and last edge, when there are edges.
    pub fn span(&self) -> Option<(f64, f64)> {
        Some((*self.edges.first()?, *self.edges.last()?))
    }

    /// Adds a histogram with the same edges; others, and counts that would overflow, are refused
    /// with the reason.
    pub fn merge(&self, o: &HistJson) -> Result<HistJson, String> {
        if self.edges.len() != o.edges.len() || self.edges.iter().zip(&o.edges).any(|(a, b)| a.to_bits() != b.to_bits())
        {
            let span = |h: &HistJson| match h.span() {
                Some((lo, hi)) => format!("{} bins over [{lo}, {hi}]", h.counts.len()),
                None => format!("{} bins and no edges", h.counts.len()),
            };
            return Err(format!(
                "cannot merge histograms with different edges ({} and {}): give every shard the same --bins and --range",
                span(self),
                span(o)
            ));
        }
        if self.counts.len() != o.counts.len() {
            return Err(format!(
                "cannot merge histograms of {} and {} counts over the same edges",
                self.counts.len(),
                o.counts.len()
            ));
        }
        let add = |a: u64, b: u64| a.checked_add(b).ok_or("the merged histogram's counts overflow a 64-bit count");
        Ok(HistJson {
            edges: self.edges.clone(),
            counts: self.counts.iter().zip(&o.counts).map(|(&a, &b)| add(a, b)).collect::<Result<_, _>>()?,
            underflow: add(self.underflow, o.underflow)?,
            overflow: add(self.overflow, o.overflow)?,
            nan: add(self.nan, o.nan)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(xs: &[f64], lo: f64, hi: f64, n: usize) -> (Vec<u64>, u64, u64, u64) {
        let mut h = Histogram::new(Arc::new(Bins::new(lo, hi, n).unwrap()));
        h.add(xs);
        let j = h.to_json();
        (j.counts, j.underflow, j.overflow, j.nan)
    }

    #[test]
    fn edges_and_outside_values() {
        let xs = [f64::NAN, f64::NEG_INFINITY, f64::INFINITY, -5.0, -1.0, 0.0, 0.5, 1.0, 2.0, 5.0];
        assert_eq!(counts(&xs, -2.0, 2.0, 4), (vec![0, 1, 2, 2], 2, 2, 1));
        let b = Bins::new(0.0, 1.0, 10).unwrap();
        assert_eq!(b.edges[3], 0.30000000000000004); // 3 * 0.1 + 0, as NumPy has it
        assert_eq!(b.bin(0.30000000000000004), 3);
        assert_eq!(b.bin(0.3), 2);
        assert_eq!(b.bin(1.0), 9);
        assert_eq!(Bins::new(3.0, 3.0, 2).unwrap().edges, vec![2.5, 3.0, 3.5]);
        assert!(Bins::new(-1e308, 1e308, 3).is_err());
        assert!(Bins::new(1e20, 1e20, 3).is_err());
        assert!(Bins::new(1.0, 0.0, 3).is_err());
        assert_eq!(MinMax::default().range(), (0.0, 1.0));
        for x in [0.1f64, -0.1, 1e-40, -1e-40, 3.0, 1e39, -1e39, 0.0] {
            let (u, d) = (f32_up(x), f32_down(x));
            assert!(u as f64 >= x && d as f64 <= x, "{x}");
            assert!(u == d || (d.next_up() == u), "{x}: {d} {u}");
        }
    }
}
