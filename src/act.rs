//! The activations' math, with PyTorch's CPU semantics (SPEC §2), one element at a time.
//!
//! These functions are the scalar reference: the SIMD kernels apply exactly these per-element
//! functions (see `kernel::generic`), and the property tests compare every SIMD level against them.
//! Half precision is handled as raw `u16` bits: PyTorch computes f16 activations in f32 and rounds
//! once at the end, so `f16_to_f32` / `f32_to_f16` here define that rounding (matching F16C).

/// Which function, before its parameters are resolved for an element type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Func {
    Relu,
    Leaky,
    Prelu,
}

impl Func {
    pub fn name(self) -> &'static str {
        match self {
            Func::Relu => "relu",
            Func::Leaky => "leaky",
            Func::Prelu => "prelu",
        }
    }
}

/// What `apply` computes: a function's value, or its derivative times the upstream gradient.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    Value(Func),
    Grad(Func),
}

impl Activation {
    pub fn func(self) -> Func {
        match self {
            Activation::Value(f) | Activation::Grad(f) => f,
        }
    }
    pub fn is_grad(self) -> bool {
        matches!(self, Activation::Grad(_))
    }
    pub fn needs_slope(self) -> bool {
        self.func() != Func::Relu
    }
    /// `relu`, `leaky`, `grad` (of relu), `grad:leaky`, …
    pub fn name(self) -> String {
        match self {
            Activation::Value(f) => f.name().into(),
            Activation::Grad(Func::Relu) => "grad".into(),
            Activation::Grad(f) => format!("grad:{}", f.name()),
        }
    }
}

// ---------------------------------------------------------------- element functions

/// relu: `x < 0 ? +0 : x` (NaN and -0 pass through with their bits).
#[inline(always)]
pub fn relu<T: Float>(x: T) -> T {
    if x < T::ZERO {
        T::ZERO
    } else {
        x
    }
}

/// `p·q` with x86's NaN rules made explicit: when `p` is NaN the result is `p`, quieted, whatever
/// `q` is; a NaN made from two non-NaN operands is x86's negative "indefinite" on every target. PyTorch's kernels multiply `x·a` and `g·a` with the data first; the compiler may swap
/// the operands of a plain `*`, which would pick the other payload when both are NaN.
#[inline(always)]
pub fn mul<T: Float>(p: T, q: T) -> T {
    // Both candidates are computed up front so the compiler emits selects, not branches.
    let prod = p * q;
    // elsewhere (Arm's default NaN is positive) ∞·0 is given x86's NaN explicitly
    #[cfg(not(any(target_arch = "x86", target_arch = "x86_64")))]
    let prod = select(prod.is_nan() && !q.is_nan(), T::INDEFINITE, prod);
    let quiet = p.quiet();
    select(p.is_nan(), quiet, prod)
}

/// `c ? a : b` for values already computed: kept branch-free in the kernels' lane loops.
#[inline(always)]
pub fn select<T: Copy>(c: bool, a: T, b: T) -> T {
    if c {
        a
    } else {
        b
    }
}

/// leaky and prelu: `x > 0 ? x : x·a`.
#[inline(always)]
pub fn leaky<T: Float>(x: T, a: T) -> T {
    let neg = mul(x, a);
    select(x > T::ZERO, x, neg)
}

/// derivative of relu times g: `x <= 0 ? +0 : g` (at NaN it is g).
#[inline(always)]
pub fn grad_relu<T: Float>(x: T, g: T) -> T {
    if x <= T::ZERO {
        T::ZERO
    } else {
        g
    }
}

/// derivative of leaky/prelu times g: `x > 0 ? g : g·a` (at 0 and NaN it is g·a).
#[inline(always)]
pub fn grad_leaky<T: Float>(x: T, g: T, a: T) -> T {
    let neg = mul(g, a);
    select(x > T::ZERO, g, neg)
}

/// relu on f16 bits, without converting: negative non-NaN values become +0, NaNs come out quiet
/// (as PyTorch's f16→f32→f16 round trip leaves them), everything else keeps its bits.
#[inline(always)]
pub fn relu_f16(h: u16) -> u16 {
    relu_half_bits::<0x7c00, 0x0200>(h)
}

/// relu on bf16 bits: the f16 rule with bf16's exponent (negative non-NaN → +0, NaN quiet).
#[inline(always)]
pub fn relu_bf16(h: u16) -> u16 {
    relu_half_bits::<0x7f80, 0x0040>(h)
}

/// Whether 16-bit float bits (+infinity's bits `inf`) hold a value below zero: the sign, a
/// magnitude above zero and at most infinity's. One subtraction and one signed compare: `h − 1`
/// moves -0 (0x8000) to the top of the i16 range and the magnitudes 1..=INF of negative values
/// to its bottom, below `inf − 0x8000`; NaNs' magnitudes land above it.
#[inline(always)]
pub fn half_below_zero(h: u16, inf: u16) -> bool {
    (h.wrapping_sub(1) as i16) < (inf.wrapping_sub(0x8000) as i16)
}

/// relu on 16-bit float bits: lane masks instead of branches or selects, so that it vectorizes
/// to a handful of u16 ops (and shares [`half_below_zero`] with the statistics' count).
#[inline(always)]
fn relu_half_bits<const INF: u16, const QUIET: u16>(h: u16) -> u16 {
    let nan = ((h & 0x7fff > INF) as u16).wrapping_neg();
    let negative = (half_below_zero(h, INF) as u16).wrapping_neg();
    (h & !negative) | (nan & QUIET)
}

/// relu on integers: `max(x, 0)`.
#[inline(always)]
pub fn relu_int<T: Int>(x: T) -> T {
    if x < T::ZERO {
        T::ZERO
    } else {
        x
    }
}

/// derivative of relu on integers: `x <= 0 ? 0 : g`.
#[inline(always)]
pub fn grad_relu_int<T: Int>(x: T, g: T) -> T {
    if x <= T::ZERO {
        T::ZERO
    } else {
        g
    }
}

// ---------------------------------------------------------------- half precision

/// f16 bits to f32, exactly; NaNs come out quiet with their payload (as F16C's `vcvtph2ps`).
#[inline(always)]
pub fn f16_to_f32(h: u16) -> f32 {
    let sign = ((h as u32) & 0x8000) << 16;
    let exp = (h >> 10) & 0x1f;
    let man = (h & 0x3ff) as u32;
    let bits = if exp == 0x1f {
        if man == 0 {
            sign | 0x7f80_0000
        } else {
            sign | 0x7fc0_0000 | (man << 13)
        }
    } else if exp == 0 {
        // zero or subnormal: man · 2^-24, exact in f32
        let v = man as f32 * f32::from_bits(0x3380_0000);
        v.to_bits() | sign
    } else {
        sign | ((exp as u32 + 112) << 23) | (man << 13)
    };
    f32::from_bits(bits)
}

/// f32 to f16 bits, round to nearest even; NaNs quiet, payload truncated (as `vcvtps2ph`).
#[inline(always)]
pub fn f32_to_f16(f: f32) -> u16 {
    let x = f.to_bits();
    let sign = ((x >> 16) & 0x8000) as u16;
    let ax = x & 0x7fff_ffff;
    if ax > 0x7f80_0000 {
        return sign | 0x7e00 | ((ax >> 13) & 0x3ff) as u16;
    }
    if ax >= 0x477f_f000 {
        return sign | 0x7c00; // ≥ 65520 rounds to infinity
    }
    if ax >= 0x3880_0000 {
        let r = ax + 0xfff + ((ax >> 13) & 1);
        return sign | ((r - 0x3800_0000) >> 13) as u16;
    }
    // Subnormal or zero: adding 0.5 puts the f16 subnormal ulp (2^-24) at f32's last bit,
    // so the FPU rounds to nearest even for us.
    let v = f32::from_bits(ax) + 0.5;
    sign | (v.to_bits() - 0x3f00_0000) as u16
}

// ---------------------------------------------------------------- bfloat16

/// bf16 bits to f32: the upper half of an f32, exactly (subnormals included).
#[inline(always)]
pub fn bf16_to_f32(h: u16) -> f32 {
    f32::from_bits((h as u32) << 16)
}

/// f32 to bf16 bits, rounded to nearest even in integer arithmetic, subnormals kept (as
/// PyTorch's `round_to_nearest_even`; hardware conversions that flush them are not used). A NaN
/// keeps its sign and top payload bits, quieted.
#[inline(always)]
pub fn f32_to_bf16(f: f32) -> u16 {
    let u = f.to_bits();
    let nan = (u & 0x7fff_ffff) > 0x7f80_0000;
    let rounded = (u.wrapping_add(0x7fff + ((u >> 16) & 1)) >> 16) as u16;
    if nan {
        (u >> 16) as u16 | 0x0040
    } else {
        rounded
    }
}

/// f64 to bf16 bits with a single rounding: to f32 rounding to odd (24 bits keep the sticky
/// information bf16's 8 need), then to nearest even.
#[inline(always)]
pub fn f64_to_bf16(d: f64) -> u16 {
    if d.is_nan() {
        return f32_to_bf16(d as f32);
    }
    let mut f = d as f32;
    if (f as f64).abs() > d.abs() {
        // rounded away from zero (to infinity, perhaps): one step back toward it
        f = f32::from_bits(f.to_bits() - 1);
    }
    if f as f64 != d {
        f = f32::from_bits(f.to_bits() | 1);
    }
    f32_to_bf16(f)
}

/// f64 to f16 bits with a single rounding (to nearest even), as NumPy's `astype(float16)`.
#[inline(always)]
pub fn f64_to_f16(d: f64) -> u16 {
    let x = d.to_bits();
    let sign = ((x >> 48) & 0x8000) as u16;
    let ax = x & 0x7fff_ffff_ffff_ffff;
    if ax > 0x7ff0_0000_0000_0000 {
        return sign | 0x7e00 | ((ax >> 42) & 0x3ff) as u16;
    }
    if ax >= 0x40ef_fe00_0000_0000 {
        return sign | 0x7c00;
    }
    if ax >= 0x3f10_0000_0000_0000 {
        let r = ax + (1u64 << 41) - 1 + ((ax >> 42) & 1);
        return sign | ((r - 0x3f00_0000_0000_0000) >> 42) as u16;
    }
    let m = (f64::from_bits(ax) * 16_777_216.0).round_ties_even(); // units of 2^-24
    sign | m as u16
}

/// f64 to f32 (IEEE rounding), named for symmetry.
#[inline(always)]
pub fn f64_to_f32(d: f64) -> f32 {
    d as f32
}

// ---------------------------------------------------------------- element traits

/// A float type the kernel computes in (f32 or f64).
pub trait Float:
    Copy
    + PartialOrd
    + std::ops::Mul<Output = Self>
    + std::ops::Sub<Output = Self>
    + std::ops::Add<Output = Self>
    + std::ops::AddAssign
    + bytemuck::Pod
    + Send
    + Sync
    + 'static
{
    const ZERO: Self;
    const ONE: Self;
    const INFINITY: Self;
    const NEG_INFINITY: Self;
    /// The NaN x86 arithmetic makes from non-NaN operands (∞·0): the "real indefinite", a quiet
    /// NaN with the sign bit set. PyTorch's reference outputs come from x86 CPUs.
    const INDEFINITE: Self;
    fn from_f64(v: f64) -> Self;
    fn to_f64(self) -> f64;
    /// A NaN with its quiet bit set (what hardware arithmetic returns for a NaN operand).
    fn quiet(self) -> Self;
    fn is_nan(self) -> bool;
    /// Neither NaN nor infinite.
    fn is_finite(self) -> bool;
}

impl Float for f32 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    const INFINITY: Self = f32::INFINITY;
    const NEG_INFINITY: Self = f32::NEG_INFINITY;
    const INDEFINITE: Self = f32::from_bits(0xffc0_0000);
    #[inline(always)]
    fn from_f64(v: f64) -> Self {
        v as f32
    }
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self as f64
    }
    #[inline(always)]
    fn quiet(self) -> Self {
        f32::from_bits(self.to_bits() | 0x0040_0000)
    }
    #[inline(always)]
    fn is_nan(self) -> bool {
        f32::is_nan(self)
    }
    #[inline(always)]
    fn is_finite(self) -> bool {
        f32::is_finite(self)
    }
}

impl Float for f64 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    const INFINITY: Self = f64::INFINITY;
    const NEG_INFINITY: Self = f64::NEG_INFINITY;
    const INDEFINITE: Self = f64::from_bits(0xfff8_0000_0000_0000);
    #[inline(always)]
    fn from_f64(v: f64) -> Self {
        v
    }
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self
    }
    #[inline(always)]
    fn quiet(self) -> Self {
        f64::from_bits(self.to_bits() | 0x0008_0000_0000_0000)
    }
    #[inline(always)]
    fn is_nan(self) -> bool {
        f64::is_nan(self)
    }
    #[inline(always)]
    fn is_finite(self) -> bool {
        f64::is_finite(self)
    }
}

/// An integer element type.
pub trait Int: Copy + PartialOrd + bytemuck::Pod + Send + Sync + 'static {
    const ZERO: Self;
    const ONE: Self;
    const MIN: Self;
    const MAX: Self;
    const SIGNED: bool;
    fn to_f64(self) -> f64;
    fn to_f32(self) -> f32;
}

macro_rules! int_impl {
    ($($t:ty: $signed:expr),*) => {$(
        impl Int for $t {
            const ZERO: Self = 0;
            const ONE: Self = 1;
            const MIN: Self = <$t>::MIN;
            const MAX: Self = <$t>::MAX;
            const SIGNED: bool = $signed;
            #[inline(always)]
            fn to_f64(self) -> f64 { self as f64 }
            #[inline(always)]
            fn to_f32(self) -> f32 { self as f32 }
        }
    )*};
}
int_impl!(i8: true, i16: true, i32: true, i64: true, u8: false, u16: false, u32: false, u64: false);

/// `x · 2^k`, exact unless the result leaves f64's range (then 0 or ±inf, as multiplying gives).
pub fn ldexp(x: f64, k: i32) -> f64 {
    let (mut x, mut k) = (x, k);
    // 2^±1000 in steps: the factor itself must stay representable
    while k > 1000 {
        x *= f64::from_bits(((1023 + 1000) as u64) << 52);
        k -= 1000;
    }
    while k < -1000 {
        x *= f64::from_bits(((1023 - 1000) as u64) << 52);
        k += 1000;
    }
    x * f64::from_bits(((1023 + k) as u64) << 52)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nan_from_infinity_times_zero_is_x86s_on_every_target() {
        // PyTorch on x86: leaky(-inf, 0) = -inf·0 = the negative "indefinite" NaN. (black_box:
        // constant folding makes a positive NaN; the kernels multiply at run time.)
        use std::hint::black_box as b;
        assert_eq!(leaky(b(f32::NEG_INFINITY), b(0.0)).to_bits(), 0xffc0_0000);
        assert_eq!(leaky(b(f64::NEG_INFINITY), b(0.0)).to_bits(), 0xfff8_0000_0000_0000);
        assert_eq!(grad_leaky(b(-1.0f32), b(f32::INFINITY), b(0.0)).to_bits(), 0xffc0_0000);
        // a NaN operand still wins, quieted, with its sign and payload
        assert_eq!(mul(b(f32::from_bits(0x7f80_0001)), b(0.0)).to_bits(), 0x7fc0_0001);
        assert_eq!(mul(b(1.0f32), b(f32::from_bits(0x7fc0_0002))).to_bits(), 0x7fc0_0002);
    }

    #[test]
    fn pytorch_edge_values() {
        assert_eq!(relu(-0.0f32).to_bits(), (-0.0f32).to_bits());
        assert_eq!(relu(f32::NEG_INFINITY).to_bits(), 0);
        let nan = f32::from_bits(0x7fc0_0001);
        assert_eq!(relu(nan).to_bits(), 0x7fc0_0001);
        assert_eq!(leaky(-0.0f32, 0.01).to_bits(), (-0.0f32).to_bits());
        assert_eq!(grad_relu(0.0f64, 5.0), 0.0);
        assert!(grad_relu(f64::NAN, 5.0) == 5.0);
        assert_eq!(grad_leaky(0.0f32, 2.0, 0.5), 1.0);
        assert_eq!(grad_leaky(f32::NAN, 2.0, 0.5), 1.0);
        assert_eq!(relu_f16(0x8000), 0x8000);
        assert_eq!(relu_f16(0xbc00), 0);
        assert_eq!(relu_f16(0x7c01), 0x7e01);
        assert_eq!(relu_f16(0xfc00), 0);
    }

    /// The bit forms against the values: every bit pattern of both formats.
    #[test]
    fn relu_on_bits_is_relu_on_values() {
        for h in 0..=u16::MAX {
            for (f, inf, quiet, got, below) in [
                (f16_to_f32(h), 0x7c00, 0x0200, relu_f16(h), half_below_zero(h, 0x7c00)),
                (bf16_to_f32(h), 0x7f80, 0x0040, relu_bf16(h), half_below_zero(h, 0x7f80)),
            ] {
                let want = if h & 0x7fff > inf {
                    h | quiet
                } else if f < 0.0 {
                    0
                } else {
                    h
                };
                assert_eq!(got, want, "{h:#06x}");
                assert_eq!(below, f < 0.0, "{h:#06x}");
            }
        }
    }

    #[test]
    fn half_round_trips_every_value() {
        for h in 0..=u16::MAX {
            let f = f16_to_f32(h);
            let back = f32_to_f16(f);
            let want = if h & 0x7fff > 0x7c00 { h | 0x0200 } else { h };
            assert_eq!(back, want, "{h:#06x}");
            assert_eq!(f64_to_f16(f as f64), want, "{h:#06x} via f64");
        }
    }

    /// The f16 nearest to `d` (ties to even), by search: an independent reference for f64 → f16,
    /// which must round once (the half crate's F16C path goes through f32 and rounds twice).
    fn nearest_f16(d: f64) -> u16 {
        let sign = if d.is_sign_negative() { 0x8000u16 } else { 0 };
        let a = d.abs();
        if a >= 65520.0 {
            return sign | 0x7c00;
        }
        let mut best = 0u16;
        let mut lo = 0u16;
        let mut hi = 0x7bffu16;
        while lo <= hi {
            // largest h with value(h) <= a
            let mid = lo + (hi - lo) / 2;
            if (f16_to_f32(mid) as f64) <= a {
                best = mid;
                lo = mid + 1;
            } else if mid == 0 {
                break;
            } else {
                hi = mid - 1;
            }
        }
        let below = f16_to_f32(best) as f64;
        let above = f16_to_f32(best + 1) as f64;
        let pick = match (a - below).partial_cmp(&(above - a)).unwrap() {
            std::cmp::Ordering::Less => best,
            std::cmp::Ordering::Greater => best + 1,
            std::cmp::Ordering::Equal => {
                if best & 1 == 0 {
                    best
                } else {
                    best + 1
                }
            }
        };
        sign | pick
    }

    #[test]
    fn half_rounding_matches_half_crate() {
        let mut x = 0x1234_5678u32;
        for _ in 0..2_000_000 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let f = f32::from_bits(x);
            if f.is_nan() {
                continue;
            }
            assert_eq!(f32_to_f16(f), half::f16::from_f32(f).to_bits(), "{f:e}");
            let d = f as f64 * (1.0 + f64::EPSILON * 3.0);
            assert_eq!(f64_to_f16(d), nearest_f16(d), "{d:e}");
            let d = f as f64 * (1.0 - f64::EPSILON * 5.0);
            assert_eq!(f64_to_f16(d), nearest_f16(d), "{d:e}");
        }
        for ax in [0x3300_0000u32, 0x3300_0001, 0x3380_0000, 0x387f_ffff, 0x477f_efff, 0x477f_f000] {
            let f = f32::from_bits(ax);
            assert_eq!(f32_to_f16(f), half::f16::from_f32(f).to_bits(), "{f:e}");
            assert_eq!(f32_to_f16(-f), half::f16::from_f32(-f).to_bits(), "{f:e}");
        }
    }
}
