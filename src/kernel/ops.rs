//! What a kernel call is given and gives back: the operation ([`Op`], lowered to [`RawOp`] for
//! the bodies), the statistics of a chunk ([`ChunkStats`]) and the histogram bins as the fast
//! path sees them ([`BinSpec`]). Below the bodies (`generic.rs`) and the dispatch (`mod.rs`).

/// A slope for leaky/prelu: one for every element, or one per element (prelu's channels laid out).
#[derive(Clone, Copy, Debug)]
pub enum Slope<'a, W> {
    All(W),
    Each(&'a [W]),
}

/// One kernel call's function, with its parameters in the working type `W`.
#[derive(Clone, Copy, Debug)]
pub enum Op<'a, W> {
    /// The values as they are (statistics without an activation).
    Identity,
    Relu,
    Leaky(Slope<'a, W>),
    GradRelu,
    GradLeaky(Slope<'a, W>),
}

/// [`Op`] lowered to raw pointers for the bodies.
#[derive(Clone, Copy)]
pub(crate) enum RawOp<W> {
    Identity,
    Relu,
    Leaky(W),
    LeakyEach(*const W),
    GradRelu,
    GradLeaky(W),
    GradLeakyEach(*const W),
}

impl<W: Copy> Op<'_, W> {
    pub(crate) fn raw(self, n: usize) -> RawOp<W> {
        let each = |s: &[W]| {
            assert!(s.len() >= n, "slope buffer shorter than the data");
            s.as_ptr()
        };
        match self {
            Op::Identity => RawOp::Identity,
            Op::Relu => RawOp::Relu,
            Op::Leaky(Slope::All(a)) => RawOp::Leaky(a),
            Op::Leaky(Slope::Each(s)) => RawOp::LeakyEach(each(s)),
            Op::GradRelu => RawOp::GradRelu,
            Op::GradLeaky(Slope::All(a)) => RawOp::GradLeaky(a),
            Op::GradLeaky(Slope::Each(s)) => RawOp::GradLeakyEach(each(s)),
        }
    }
}

/// The counts of every statistic, one type for a chunk (the kernel's), an array and shards
/// merged: elements, zeros (of the output), negative inputs, and the output's NaN, ±inf and
/// finite values.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub elements: u64,
    pub zeros: u64,
    pub negative: u64,
    pub nan: u64,
    pub posinf: u64,
    pub neginf: u64,
    pub finite: u64,
}

impl Counts {
    /// Adds the counts of other elements.
    pub fn add(&mut self, o: &Counts) {
        self.elements += o.elements;
        self.zeros += o.zeros;
        self.negative += o.negative;
        self.nan += o.nan;
        self.posinf += o.posinf;
        self.neginf += o.neginf;
        self.finite += o.finite;
    }

    /// [`Counts::add`] of counts that may claim anything (read from JSON): the one that passes
    /// 2^64, by its index in the field order, when one does.
    pub fn checked_add(&self, o: &Counts) -> Result<Counts, usize> {
        let (a, b) = (self.fields(), o.fields());
        let mut sum = [0u64; 7];
        for i in 0..7 {
            sum[i] = a[i].checked_add(b[i]).ok_or(i)?;
        }
        let [elements, zeros, negative, nan, posinf, neginf, finite] = sum;
        Ok(Counts { elements, zeros, negative, nan, posinf, neginf, finite })
    }

    fn fields(&self) -> [u64; 7] {
        [self.elements, self.zeros, self.negative, self.nan, self.posinf, self.neginf, self.finite]
    }
}

/// What one kernel call saw, for the fused statistics: counts, shifted sums of the finite
/// output values (`s1 + s1_lo = Σ(y − shift)`, `s2 = Σ(y − shift)²`, `s3` and `s4` the third
/// and fourth powers, for the kurtosis), and the finite min/max. "negative" counts inputs below zero. When the sums of f64 values would
/// overflow, they are of the values scaled by `2^-exp` (shift included), else `exp` is 0.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ChunkStats {
    pub counts: Counts,
    pub shift: f64,
    pub s1: f64,
    /// What `s1` lost to rounding, where the observer kept it (float statistics): the sum is
    /// `s1 + s1_lo`.
    pub s1_lo: f64,
    pub s2: f64,
    pub s3: f64,
    pub s4: f64,
    pub min: f64,
    pub max: f64,
    pub exp: i32,
}

/// One unit's finite values in a run of them (`Kernel::unit_run`): how many, their sum and the
/// sum of their magnitudes, their min and max (±inf when there is none).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct UnitFold {
    pub finite: u64,
    pub sum: f64,
    pub abs: f64,
    pub min: f64,
    pub max: f64,
}

/// A chunk's counts read as its own (`c.finite`).
impl std::ops::Deref for ChunkStats {
    type Target = Counts;
    fn deref(&self) -> &Counts {
        &self.counts
    }
}

/// Equal-width histogram bins as the kernel's fast path sees them, in float type `F`: a value `v`
/// with `lo <= v <= hi` whose scaled position `t = (v - lo) * c` lies more than `tau` away from
/// an integer is in bin `trunc(t)` for certain; one within `tau` of edge `e` is in bin `e` when
/// `v >= edges[e]`, else `e - 1` (the caller compares). `lo` and `hi` must make their tests exact
/// for the data (for f32 data: the f64 values rounded inward).
#[derive(Clone, Copy, Debug)]
pub struct BinSpec<F> {
    pub lo: F,
    pub hi: F,
    pub c: F,
    pub tau: F,
    /// The bin count.
    pub n: i32,
    /// The code of ±0 (which a relu makes by the half): its bin, or [`EXACT`].
    pub zero: u32,
    /// The bin of the value at `i` comes out as `bin + (i % 16) * stride`: with `stride = n + 2`,
    /// an index into 16 counter sets (each `n` bins and the two outside counters), so that runs
    /// of one bin update different memory.
    pub stride: u32,
}

impl<F> BinSpec<F> {
    pub fn new(lo: F, hi: F, c: F, tau: F, n: i32) -> Self {
        BinSpec { lo, hi, c, tau, n, zero: EXACT, stride: 0 }
    }
}

/// `bin_index` gives a value below `lo` the code `n` and one above `hi` the code `n + 1` (in
/// its counter set, as a bin), so that outside values are counted as cheaply as inside ones.
///
/// `bin_index`'s answer where the exact (NumPy) path must decide.
pub const EXACT: u32 = u32::MAX;
/// `bin_index`'s answer `NEAR | e` for a value within `tau` of edge `e`: it is in bin `e` when
/// `v >= edges[e]`, else `e - 1`.
pub const NEAR: u32 = 1 << 31;
/// A code [`Kernel::split_codes`] only counts: `BinSpec::zero` where the level can split.
pub const ZERO: u32 = u32::MAX - 1;
