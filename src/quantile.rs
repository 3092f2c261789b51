//! Exact quantiles: `numpy.quantile(x, q)` (and `numpy.percentile`, method "linear") of the
//! finite values as float64, in bounded memory and without sorting the data.
//!
//! A radix select over each value's order-preserving 64-bit key ([`key`]): the first pass counts
//! the top 16 bits of every finite value's key (and finds the least and greatest key), which
//! places each wanted rank in one of 65,536 buckets; every later pass looks only at the values in
//! those buckets and either counts their next 16 bits or, when a bucket is small enough
//! ([`GATHER`] keys in all), gathers its keys so that the ranks are read off them directly. Four
//! counting passes know every bit of a key, so a selection ends after at most four passes (two
//! where the buckets are small, one for the minimum and maximum); memory is a few counter tables
//! and at most [`GATHER`] keys, whatever the size of the data.
//!
//! A pass is a [`PassCounter`], an [`Observer`] of the pipeline: the caller runs it over its
//! inputs (threads and chunks merge exactly) and hands the merged counter back to [`select`].
//! Nothing here knows about files.

use crate::dtype::{f32_down, f32_up, DType, Element};
use crate::kernel::Unaligned;
use crate::pipeline::{observe_typed, Observer, TypedObserver};
use anyhow::Result;
use std::sync::Arc;

/// Bits a counting pass resolves.
const DIGIT: u32 = 16;
const BUCKETS: usize = 1 << DIGIT;
/// The most keys the passes gather at once (16 MiB), across all buckets and threads.
pub const GATHER: u64 = 1 << 21;
/// The most quantiles one selection takes (each may hold a counter table per thread).
pub const MAX_QUANTILES: usize = 64;

/// The key of `x`: unsigned integers in the order of the floats (-0 just below +0).
pub use crate::kernel::order_key as key;

/// The float whose key is `k`.
pub fn value(k: u64) -> f64 {
    f64::from_bits(if k >> 63 == 1 { k ^ (1 << 63) } else { !k })
}

/// `numpy.percentile`'s fraction of a percentile: `p / 100` in float64, as `np.true_divide`.
pub fn fraction(p: f64) -> f64 {
    p / 100.0
}

/// One end of `--range`: a value, or a percentile of the data (`p0.5`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum RangeEnd {
    At(f64),
    Percentile(f64),
}

/// `--range=LO:HI`, each end a number or `pP` with P in [0, 100] (`p0.5:p99.5`, `p1:5`).
pub fn parse_range(s: &str) -> Result<(RangeEnd, RangeEnd), String> {
    let bad = || format!("'{s}' is not a range: give --range=LO:HI, e.g. --range=-4:4 or --range=p0.5:p99.5");
    let end = |t: &str| -> Result<RangeEnd, String> {
        let t = t.trim();
        match t.strip_prefix(['p', 'P']) {
            Some(p) => {
                let p: f64 = p.trim().parse().map_err(|_| bad())?;
                if !(0.0..=100.0).contains(&p) {
                    return Err(format!("'{s}': a percentile is between p0 and p100"));
                }
                Ok(RangeEnd::Percentile(p))
            }
            None => t.parse().map(RangeEnd::At).map_err(|_| bad()),
        }
    };
    let (a, b) = s.split_once(':').ok_or_else(bad)?;
    Ok((end(a)?, end(b)?))
}

/// What one pass looks at: the values whose key starts with one of `targets`' prefixes, the top
/// `depth` bits of the key.
#[derive(Clone, Debug)]
pub struct Pass {
    depth: u32,
    /// Sorted by prefix.
    targets: Vec<Target>,
}

#[derive(Clone, Copy, Debug)]
struct Target {
    prefix: u64,
    /// Gather the keys (the bucket is small), rather than count their next digit.
    gather: bool,
}

impl Pass {
    /// The first pass: every finite value's top digit. A caller may run it fused with another
    /// pass over the data (`stats` gathers it with the statistics) and hand its counter to
    /// [`select_ranks`] as the answer to the first request.
    pub fn first() -> Pass {
        Pass { depth: 0, targets: vec![Target { prefix: 0, gather: false }] }
    }
}

/// A pass's findings for one target bucket.
#[derive(Clone, Debug)]
struct Found {
    /// Counts of the next digit (counting targets): 65,536 and one for what is not finite.
    counts: Vec<u64>,
    keys: Vec<u64>,
    n: u64,
    lo: u64,
    hi: u64,
}

/// The observer of one pass (see the module comment).
pub struct PassCounter {
    pass: Arc<Pass>,
    found: Vec<Found>,
    /// One bit per top digit (a key's 16 high bits): set where some target's prefix starts with
    /// it. Most values of a later pass lie in no target; one load of this 8 KiB map (it stays in
    /// L1) turns them away before the search.
    tops: Vec<u64>,
    /// The values each target's keys span, `[lo, hi]` (a key interval is a value interval), where
    /// there are at most [`RANGES`] targets: blocks of values wholly outside them are passed
    /// over with compares the vectorizer does sixteen at a time.
    ranges: [(f64, f64); RANGES],
    /// `ranges` narrowed to the f32 values inside them (the same f32 values pass).
    ranges32: [(f32, f32); RANGES],
    nranges: usize,
    kernel: crate::kernel::Kernel,
    /// The first pass's counts, in [`SPLIT`] tables of u32 (allocated when first used), and
    /// how many values they hold: moved into `found[0]` before they could overflow, and by
    /// [`PassCounter::settle`].
    split: Vec<u32>,
    pending: u64,
}

/// The most target intervals the block filter checks.
const RANGES: usize = 8;
/// Values the block filter looks at together.
const BLOCK: usize = crate::kernel::HIT_BLOCK;

impl PassCounter {
    pub fn new(pass: Arc<Pass>) -> PassCounter {
        let found = pass
            .targets
            .iter()
            .map(|t| Found {
                counts: if t.gather { Vec::new() } else { vec![0; BUCKETS + 1] },
                keys: Vec::new(),
                n: 0,
                lo: u64::MAX,
                hi: 0,
            })
            .collect();
        let mut tops = vec![0u64; BUCKETS / 64];
        if pass.depth >= DIGIT {
            for t in &pass.targets {
                let top = (t.prefix >> (pass.depth - DIGIT)) as usize;
                tops[top / 64] |= 1 << (top % 64);
            }
        }
        let mut ranges = [(0.0, 0.0); RANGES];
        let nranges = if pass.depth >= DIGIT && pass.targets.len() <= RANGES { pass.targets.len() } else { 0 };
        for (r, t) in ranges.iter_mut().zip(&pass.targets).take(nranges) {
            let s = 64 - pass.depth;
            let lo = t.prefix << s;
            let hi = lo | ((1u64 << s) - 1);
            // (keys past the finite ones are NaN's: the interval is open there)
            let (a, b) = (value(lo), value(hi));
            *r = (if a.is_nan() { f64::NEG_INFINITY } else { a }, if b.is_nan() { f64::INFINITY } else { b });
        }
        let ranges32 = ranges.map(|(lo, hi)| (f32_up(lo), f32_down(hi)));
        let kernel = crate::kernel::Kernel::default();
        PassCounter { pass, found, tops, ranges, ranges32, nranges, kernel, split: Vec::new(), pending: 0 }
    }

    /// Takes the values `xs` (non-finite ones are left out).
    pub fn add<T: Element>(&mut self, xs: &[T]) {
        let depth = self.pass.depth;
        if depth == 0 {
            // the first pass: every finite value, one count each, no branch on the data; the
            // digits made by the kernel (vectorized), then counted (a scatter)
            let mut f = &mut self.found[0];
            if self.split.is_empty() {
                self.split = vec![0; SPLIT * (BUCKETS + 1)];
            }
            let mut digits = [0u32; 1024];
            for xs in xs.chunks(digits.len()) {
                let d = &mut digits[..xs.len()];
                (f.lo, f.hi) = self.kernel.key_tops(xs, d, 64 - DIGIT, BUCKETS as u32, (f.lo, f.hi), T::to_f64);
                // four tables taken in turn: an increment need not wait for the one before it
                // when neighbours share a bucket (as zstd's histograms count)
                let (t, rest) = self.split.split_at_mut(BUCKETS + 1);
                let (u, rest) = rest.split_at_mut(BUCKETS + 1);
                let (v, w) = rest.split_at_mut(BUCKETS + 1);
                let mut quads = d.chunks_exact(SPLIT);
                for q in &mut quads {
                    t[q[0] as usize] += 1;
                    u[q[1] as usize] += 1;
                    v[q[2] as usize] += 1;
                    w[q[3] as usize] += 1;
                }
                for &d in quads.remainder() {
                    t[d as usize] += 1;
                }
                // no u32 cell can pass `pending`: settled long before it could wrap
                self.pending += xs.len() as u64;
                if self.pending >= 1 << 31 {
                    self.settle();
                    f = &mut self.found[0];
                }
            }
            return;
        }
        let (ranges, ranges32, n) = (self.ranges, self.ranges32, self.nranges);
        // where f32 holds every value, the narrowed intervals, compared eight to a vector
        use DType::*;
        let narrow = matches!(T::DTYPE, F32 | F16 | BF16 | I8 | U8 | I16 | U16);
        let mut i = 0;
        if n > 0 {
            // the kernel tests blocks (vectorized), a batch at a time
            let mut hits = [false; 256];
            while i + BLOCK <= xs.len() {
                let blocks = ((xs.len() - i) / BLOCK).min(hits.len());
                let span = &xs[i..i + blocks * BLOCK];
                if T::DTYPE == F32 {
                    // (f32 or `Unaligned<f32>`: read as the latter, at any address)
                    let span: &[Unaligned<f32>] = bytemuck::cast_slice(span);
                    self.kernel.block_hits_f32(span, &ranges32[..n], &mut hits[..blocks]);
                } else if narrow {
                    self.kernel.block_hits(span, &ranges32[..n], &mut hits[..blocks], T::to_f32);
                } else {
                    self.kernel.block_hits(span, &ranges[..n], &mut hits[..blocks], T::to_f64);
                }
                for (b, _) in hits[..blocks].iter().enumerate().filter(|(_, &h)| h) {
                    self.add_later(&span[b * BLOCK..(b + 1) * BLOCK]);
                }
                i += blocks * BLOCK;
            }
        }
        self.add_later(&xs[i..]);
    }

    /// A later pass's values, one at a time.
    fn add_later<T: Element>(&mut self, xs: &[T]) {
        let targets = &self.pass.targets;
        let shift = 64 - self.pass.depth;
        for &x in xs {
            let v = x.to_f64();
            if !v.is_finite() {
                continue;
            }
            let k = key(v);
            let top = (k >> (64 - DIGIT)) as usize;
            if (self.tops[top / 64] >> (top % 64)) & 1 == 0 {
                continue;
            }
            let p = k >> shift;
            // most values are in no wanted bucket: a scan of a few targets that finds nothing
            // predicts well, where a binary search's branches would not
            let found = if targets.len() <= 8 {
                targets.iter().position(|t| t.prefix == p)
            } else {
                targets.binary_search_by_key(&p, |t| t.prefix).ok()
            };
            let Some(i) = found else { continue };
            let f = &mut self.found[i];
            f.n += 1;
            f.lo = f.lo.min(k);
            f.hi = f.hi.max(k);
            if targets[i].gather {
                f.keys.push(k);
            } else {
                f.counts[((k >> (shift - DIGIT)) as usize) & (BUCKETS - 1)] += 1;
            }
        }
    }

    /// Moves the first pass's split counts into its table.
    fn settle(&mut self) {
        if let Some(f) = self.found.first_mut() {
            add_split(&mut f.counts, &self.split);
        }
        self.split.iter_mut().for_each(|c| *c = 0);
        self.pending = 0;
    }

    /// Adds what another counter of the same pass found.
    pub fn merge_from(&mut self, o: &PassCounter) {
        self.settle();
        if let Some(f) = self.found.first_mut() {
            add_split(&mut f.counts, &o.split);
        }
        for (a, b) in self.found.iter_mut().zip(&o.found) {
            for (x, y) in a.counts.iter_mut().zip(&b.counts) {
                *x += y;
            }
            a.keys.extend_from_slice(&b.keys);
            a.n += b.n;
            a.lo = a.lo.min(b.lo);
            a.hi = a.hi.max(b.hi);
        }
    }
}

impl TypedObserver for PassCounter {
    fn add_values<T: Element>(&mut self, xs: &[T]) {
        self.add(xs)
    }
}

impl Observer for PassCounter {
    fn observe(&mut self, values: &[u8], dtype: DType, _start: u64) {
        observe_typed(self, values, dtype)
    }
    fn fresh(&self) -> PassCounter {
        PassCounter::new(self.pass.clone())
    }
    fn merge(&mut self, other: PassCounter) {
        self.merge_from(&other);
    }
}

/// Tables the first pass counts into in turn ([`PassCounter::settle`] adds them up).
const SPLIT: usize = 4;

/// `counts[d] += Σ split[t·(BUCKETS + 1) + d]` over the split tables (none when `split` is empty).
fn add_split(counts: &mut [u64], split: &[u32]) {
    for t in split.chunks_exact(BUCKETS + 1) {
        for (c, &s) in counts.iter_mut().zip(t) {
            *c += s as u64;
        }
    }
}

/// A bucket that still holds wanted ranks: its prefix (the top `depth` bits), its size, and the
/// ranks, as (rank within the bucket, index into the answers).
struct Open {
    prefix: u64,
    count: u64,
    ranks: Vec<(u64, usize)>,
}

/// The keys of the values at the 0-based `ranks` of the finite values in sorted order, and their
/// count; `run` runs one pass over all the data and returns its merged counter. `None` when
/// there is no finite value.
pub fn select_ranks(
    ranks: impl Fn(u64) -> Vec<u64>,
    mut run: impl FnMut(Arc<Pass>) -> Result<PassCounter>,
) -> Result<Option<(u64, Vec<u64>)>> {
    let mut first = run(Arc::new(Pass::first()))?;
    first.settle();
    let f = &first.found[0];
    let n: u64 = f.counts[..BUCKETS].iter().sum();
    if n == 0 {
        return Ok(None);
    }
    let wanted = ranks(n);
    let mut keys = vec![0u64; wanted.len()];
    let all = Open { prefix: 0, count: n, ranks: wanted.iter().copied().zip(0..).collect() };
    let mut open = descend(all, 0, f, &mut keys);
    let mut depth = DIGIT;
    while !open.is_empty() {
        // the smallest buckets are gathered while the budget lasts; the rest count a digit more
        let mut by_size: Vec<usize> = (0..open.len()).collect();
        by_size.sort_by_key(|&i| open[i].count);
        let mut gather = vec![false; open.len()];
        let mut budget = GATHER;
        for i in by_size {
            if open[i].count <= budget {
                budget -= open[i].count;
                gather[i] = true;
            }
        }
        let targets = open.iter().zip(&gather).map(|(o, &g)| Target { prefix: o.prefix, gather: g }).collect();
        let counter = run(Arc::new(Pass { depth, targets }))?;
        let mut next = Vec::new();
        for ((o, g), mut f) in open.into_iter().zip(gather).zip(counter.found) {
            if g {
                f.keys.sort_unstable();
                for &(r, at) in &o.ranks {
                    // a pass that found fewer values than the one before counted (the file
                    // changed between passes) is an error, not a panic
                    keys[at] = *f
                        .keys
                        .get(r as usize)
                        .ok_or_else(|| anyhow::anyhow!("the data changed between passes of the quantile selection"))?;
                }
            } else {
                next.extend(descend(o, depth, &f, &mut keys));
            }
        }
        open = next;
        depth += DIGIT;
    }
    Ok(Some((n, keys)))
}

/// Places the ranks of `o` (a bucket of the top `depth` bits, counted by `f`) in the buckets of
/// the next digit, or answers them where the bucket's least or greatest key does, or the digit
/// was the last one.
fn descend(o: Open, depth: u32, f: &Found, keys: &mut [u64]) -> Vec<Open> {
    let mut next: Vec<Open> = Vec::new();
    let mut cum = vec![0u64; BUCKETS + 1];
    for d in 0..BUCKETS {
        cum[d + 1] = cum[d] + f.counts[d];
    }
    let mut ranks = o.ranks;
    ranks.sort_unstable();
    for (r, at) in ranks {
        if r == 0 || f.lo == f.hi {
            keys[at] = f.lo;
            continue;
        }
        if r == o.count - 1 {
            keys[at] = f.hi;
            continue;
        }
        // the digit whose cumulative count passes r
        let d = cum.partition_point(|&c| c <= r) - 1;
        let prefix = (o.prefix << DIGIT) | d as u64;
        let (r, count) = (r - cum[d], f.counts[d]);
        if depth + DIGIT == 64 {
            keys[at] = prefix;
            continue;
        }
        match next.last_mut() {
            Some(b) if b.prefix == prefix => b.ranks.push((r, at)),
            _ => next.push(Open { prefix, count, ranks: vec![(r, at)] }),
        }
    }
    // the ranks went in order, so the buckets are in prefix order (a pass's targets must be)
    next
}

/// `numpy.quantile(values, qs)` (method "linear") of the finite values as float64, each `q` in
/// [0, 1]; `None` when there is no finite value. `run` runs one pass over all the data.
pub fn quantiles(qs: &[f64], run: impl FnMut(Arc<Pass>) -> Result<PassCounter>) -> Result<Option<Vec<f64>>> {
    // NumPy's steps (`_quantile`, `_get_indexes`, `_get_gamma`, `_lerp`), operation for operation
    let positions = |n: u64| -> Vec<(u64, u64, f64)> {
        qs.iter()
            .map(|&q| {
                let vi = (n - 1) as f64 * q;
                if vi >= (n - 1) as f64 {
                    // past the last index: both neighbours are the last one, indexed as -1
                    (n - 1, n - 1, vi - -1.0)
                } else {
                    let prev = vi.floor();
                    (prev as u64, prev as u64 + 1, vi - prev)
                }
            })
            .collect()
    };
    let Some((n, keys)) = select_ranks(|n| positions(n).iter().flat_map(|&(a, b, _)| [a, b]).collect(), run)? else {
        return Ok(None);
    };
    Ok(Some(
        positions(n)
            .iter()
            .enumerate()
            .map(|(i, &(_, _, t))| lerp(value(keys[2 * i]), value(keys[2 * i + 1]), t))
            .collect(),
    ))
}

/// NumPy's `_lerp(a, b, t)`.
fn lerp(a: f64, b: f64, t: f64) -> f64 {
    let diff = b - a;
    if t >= 0.5 {
        b - diff * (1.0 - t)
    } else {
        a + diff * t
    }
}

/// Quantiles of values held in memory, with the passes run over `xs` in chunks of `chunk`
/// (what the tests and small callers use).
pub fn quantiles_of<T: Element>(xs: &[T], qs: &[f64], chunk: usize) -> Option<Vec<f64>> {
    quantiles(qs, |pass| {
        let mut c = PassCounter::new(pass.clone());
        for part in xs.chunks(chunk.max(1)) {
            // a fresh counter per chunk, merged: as the pipeline's threads do
            let mut p = PassCounter::new(pass.clone());
            p.add(part);
            c.merge_from(&p);
        }
        Ok(c)
    })
    .expect("in-memory passes do not fail")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The reference: sort the finite values and follow NumPy's formula.
    fn reference(xs: &[f64], qs: &[f64]) -> Option<Vec<f64>> {
        let mut v: Vec<f64> = xs.iter().copied().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(|a, b| a.total_cmp(b));
        let n = v.len();
        Some(
            qs.iter()
                .map(|&q| {
                    let vi = (n - 1) as f64 * q;
                    let (p, t) =
                        if vi >= (n - 1) as f64 { (n - 1, vi + 1.0) } else { (vi.floor() as usize, vi - vi.floor()) };
                    lerp(v[p], v[(p + 1).min(n - 1)], t)
                })
                .collect(),
        )
    }

    fn same(a: &Option<Vec<f64>>, b: &Option<Vec<f64>>) -> bool {
        match (a, b) {
            (None, None) => true,
            (Some(a), Some(b)) => a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits()),
            _ => false,
        }
    }

    #[test]
    fn keys_keep_the_order() {
        let xs = [
            f64::NEG_INFINITY,
            -1e300,
            -1.5,
            -f64::MIN_POSITIVE,
            -5e-324,
            -0.0,
            0.0,
            5e-324,
            1.0,
            1e300,
            f64::INFINITY,
        ];
        for w in xs.windows(2) {
            assert!(key(w[0]) < key(w[1]), "{} {}", w[0], w[1]);
        }
        for &x in &xs {
            assert_eq!(value(key(x)).to_bits(), x.to_bits());
        }
    }

    #[test]
    fn small_cases_as_numpy() {
        let qs = [0.0, 0.005, 0.25, 0.5, 0.75, 0.995, 1.0];
        assert_eq!(quantiles_of::<f64>(&[], &qs, 7), None);
        assert_eq!(quantiles_of(&[f64::NAN, f64::INFINITY], &qs, 7), None);
        assert_eq!(quantiles_of(&[3.0f64], &[0.5], 7), Some(vec![3.0]));
        // np.percentile([1, 2, 3, 4], [25, 50, 75]) == [1.75, 2.5, 3.25]
        assert_eq!(quantiles_of(&[4.0f64, 1.0, 3.0, 2.0], &[0.25, 0.5, 0.75], 2), Some(vec![1.75, 2.5, 3.25]));
        // NaN and infinities left out
        assert_eq!(
            quantiles_of(&[f64::NAN, 4.0f64, f64::NEG_INFINITY, 1.0, 3.0, 2.0, f64::INFINITY], &[0.5], 3),
            Some(vec![2.5])
        );
        // at t = 0.5 NumPy interpolates from the upper neighbour: np.percentile([a, b], 50)
        let (a, b) = (-4.898619485211566f64, 5.275492379532281f64);
        assert_eq!(quantiles_of(&[b, a], &[0.5], 1), Some(vec![0.1884364471603579]));
        for xs in [vec![0.0f64, -0.0, 0.0], vec![1.0; 1000], vec![-2.0, 5.0, -2.0, 5.0, 5.0]] {
            assert!(same(&quantiles_of(&xs, &qs, 3), &reference(&xs, &qs)), "{xs:?}");
        }
    }

    /// Every path: buckets too large to gather count down to the last digit.
    #[test]
    fn counting_to_the_last_digit() {
        let mut xs: Vec<f64> = (0..(GATHER as usize + 4000)).map(|i| 1.0 + (i % 7) as f64 * 1e-12).collect();
        xs.extend((0..5000).map(|i| i as f64 * 0.37 - 900.0));
        let qs = [0.0, 0.001, 0.3, 0.5, 0.77, 0.999, 1.0];
        assert!(same(&quantiles_of(&xs, &qs, 1 << 16), &reference(&xs, &qs)));
    }

    #[test]
    fn other_element_types() {
        let xs: Vec<i64> = (0..10_000).map(|i| (i * 7919 % 10_007) - 5000).collect();
        let f: Vec<f64> = xs.iter().map(|&x| x as f64).collect();
        let qs = [0.0, 0.1, 0.5, 0.9, 1.0];
        assert!(same(&quantiles_of(&xs, &qs, 1000), &reference(&f, &qs)));
        let xs: Vec<f32> = (0..10_000).map(|i| ((i * 31) % 977) as f32 * 0.013 - 5.0).collect();
        let f: Vec<f64> = xs.iter().map(|&x| x as f64).collect();
        assert!(same(&quantiles_of(&xs, &qs, 999), &reference(&f, &qs)));
    }

    #[test]
    fn ranges_parse() {
        assert_eq!(parse_range("p0.5:p99.5"), Ok((RangeEnd::Percentile(0.5), RangeEnd::Percentile(99.5))));
        assert_eq!(parse_range("p1:5"), Ok((RangeEnd::Percentile(1.0), RangeEnd::At(5.0))));
        assert_eq!(parse_range("-4:4"), Ok((RangeEnd::At(-4.0), RangeEnd::At(4.0))));
        assert!(parse_range("p101:p2").is_err());
        assert!(parse_range("p-1:p2").is_err());
        assert!(parse_range("pa:3").is_err());
        assert!(parse_range("3").is_err());
    }

    fn value_strategy() -> impl Strategy<Value = f64> {
        prop_oneof![
            any::<f64>(),
            (-20i32..20).prop_map(|i| i as f64 * 0.25),
            Just(0.0),
            Just(-0.0),
            Just(f64::NAN),
            Just(f64::INFINITY),
            -1e6f64..1e6,
        ]
    }

    proptest! {
        #[test]
        fn equals_the_sorting_reference(
            xs in proptest::collection::vec(value_strategy(), 0..300),
            qs in proptest::collection::vec(0.0f64..=1.0, 1..6),
            chunk in 1usize..64,
        ) {
            let got = quantiles_of(&xs, &qs, chunk);
            let want = reference(&xs, &qs);
            // ±0 compare equal in NumPy's sort, so its zero may carry either sign
            let eq = match (&got, &want) {
                (Some(a), Some(b)) => a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits() || (*x == 0.0 && *y == 0.0)),
                _ => got.is_none() && want.is_none(),
            };
            prop_assert!(eq, "{:?} != {:?}", got, want);
        }
    }
}
