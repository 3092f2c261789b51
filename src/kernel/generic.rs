//! The kernel bodies, written once over plain lane arrays and inlined into each ISA's
//! `#[target_feature]` wrapper (`x86.rs`, `aarch64.rs`), where the compiler turns the lane loops
//! into that ISA's vectors. Each body applies a per-element function from `act` — the same one the
//! scalar reference uses — so every level computes exactly the reference's values.
//!
//! All bodies take raw pointers so that `x` and `y` may be the same buffer (in-place use); a block
//! of `x` is always read completely before the matching block of `y` is written.

use super::RawOp;
use crate::act::{self, Float, Int};
use std::ptr;

/// Elements per block: two to four vectors on AVX2/NEON, one or two on AVX-512.
const L: usize = 16;

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

/// `y[i] = f(x[i], g[i], a[i])` for `i < n`, in blocks of `L` lanes.
#[inline(always)]
pub unsafe fn map<T: Copy, G: Copy, A: Copy>(
    x: *const T,
    g: impl Src<G>,
    a: impl Src<A>,
    y: *mut T,
    n: usize,
    f: impl Fn(T, G, A) -> T,
) {
    let mut i = 0;
    while i + L <= n {
        let xs: [T; L] = ptr::read(x.add(i) as *const [T; L]);
        let mut ys = xs;
        for j in 0..L {
            ys[j] = f(xs[j], g.get(i + j), a.get(i + j));
        }
        ptr::write(y.add(i) as *mut [T; L], ys);
        i += L;
    }
    while i < n {
        *y.add(i) = f(*x.add(i), g.get(i), a.get(i));
        i += 1;
    }
}

/// `y[i] = f(x[i])` between element types (conversions, byte swaps).
#[inline(always)]
pub unsafe fn convert<A: Copy, B: Copy + Default>(
    x: *const A,
    y: *mut B,
    n: usize,
    f: impl Fn(A) -> B,
) {
    let mut i = 0;
    while i + L <= n {
        let xs: [A; L] = ptr::read(x.add(i) as *const [A; L]);
        let mut ys = [B::default(); L];
        for j in 0..L {
            ys[j] = f(xs[j]);
        }
        ptr::write(y.add(i) as *mut [B; L], ys);
        i += L;
    }
    while i < n {
        *y.add(i) = f(*x.add(i));
        i += 1;
    }
}

#[inline(always)]
pub unsafe fn float<T: Float>(op: RawOp<T>, x: *const T, g: *const T, y: *mut T, n: usize) {
    let none = Splat(());
    // Opaque to the optimizer: `1.0 * a` must stay a multiply (it quiets a signalling NaN slope,
    // as PyTorch's `ones * a` does) instead of being folded to `a`.
    let one = Splat(std::hint::black_box(T::ONE));
    match (op, g.is_null()) {
        (RawOp::Relu, _) => map(x, none, none, y, n, |x, _, _| act::relu(x)),
        (RawOp::Leaky(a), _) => map(x, none, Splat(a), y, n, |x, _, a| act::leaky(x, a)),
        (RawOp::LeakyEach(a), _) => map(x, none, Each(a), y, n, |x, _, a| act::leaky(x, a)),
        (RawOp::GradRelu, true) => map(x, one, none, y, n, |x, g, _| act::grad_relu(x, g)),
        (RawOp::GradRelu, false) => map(x, Each(g), none, y, n, |x, g, _| act::grad_relu(x, g)),
        (RawOp::GradLeaky(a), true) => {
            map(x, one, Splat(a), y, n, |x, g, a| act::grad_leaky(x, g, a))
        }
        (RawOp::GradLeaky(a), false) => map(x, Each(g), Splat(a), y, n, |x, g, a| {
            act::grad_leaky(x, g, a)
        }),
        (RawOp::GradLeakyEach(a), true) => {
            map(x, one, Each(a), y, n, |x, g, a| act::grad_leaky(x, g, a))
        }
        (RawOp::GradLeakyEach(a), false) => map(x, Each(g), Each(a), y, n, |x, g, a| {
            act::grad_leaky(x, g, a)
        }),
    }
}

#[inline(always)]
pub unsafe fn int<T: Int>(grad: bool, x: *const T, g: *const T, y: *mut T, n: usize) {
    let none = Splat(());
    match (grad, g.is_null()) {
        (false, _) => map(x, none, none, y, n, |x, _, _| act::relu_int(x)),
        (true, true) => map(x, Splat(T::ONE), none, y, n, |x, g, _| {
            act::grad_relu_int(x, g)
        }),
        (true, false) => map(x, Each(g), none, y, n, |x, g, _| act::grad_relu_int(x, g)),
    }
}

/// Eight f16 values to and from f32: in software, or with F16C.
pub trait HalfCvt {
    unsafe fn load(p: *const u16) -> [f32; 8];
    unsafe fn store(p: *mut u16, v: [f32; 8]);
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

/// f16 activations: relu directly on the bits; the rest in f32 with one rounding back to f16.
#[inline(always)]
pub unsafe fn half<C: HalfCvt>(
    op: RawOp<f32>,
    x: *const u16,
    g: *const u16,
    y: *mut u16,
    n: usize,
) {
    let g = (!g.is_null()).then_some(g);
    match op {
        RawOp::Relu => map(x, Splat(()), Splat(()), y, n, |h, _, _| act::relu_f16(h)),
        RawOp::Leaky(a) => half_map::<C>(x, None, Splat(a), y, n, |x, _, a| act::leaky(x, a)),
        RawOp::LeakyEach(a) => half_map::<C>(x, None, Each(a), y, n, |x, _, a| act::leaky(x, a)),
        RawOp::GradRelu => half_map::<C>(x, g, Splat(0.0), y, n, |x, g, _| act::grad_relu(x, g)),
        RawOp::GradLeaky(a) => {
            half_map::<C>(x, g, Splat(a), y, n, |x, g, a| act::grad_leaky(x, g, a))
        }
        RawOp::GradLeakyEach(a) => {
            half_map::<C>(x, g, Each(a), y, n, |x, g, a| act::grad_leaky(x, g, a))
        }
    }
}

#[inline(always)]
unsafe fn half_map<C: HalfCvt>(
    x: *const u16,
    g: Option<*const u16>,
    a: impl Src<f32>,
    y: *mut u16,
    n: usize,
    f: impl Fn(f32, f32, f32) -> f32,
) {
    let ones = [std::hint::black_box(1.0f32); 8]; // see `float`: keep `1.0 * a` a multiply
    let block = |x: *const u16, g: Option<*const u16>, y: *mut u16, base: usize| {
        let xs = C::load(x);
        let gs = match g {
            Some(g) => C::load(g),
            None => ones,
        };
        let mut ys = [0f32; 8];
        for j in 0..8 {
            ys[j] = f(xs[j], gs[j], a.get(base + j));
        }
        C::store(y, ys);
    };
    let mut i = 0;
    while i + 8 <= n {
        block(x.add(i), g.map(|g| g.add(i)), y.add(i), i);
        i += 8;
    }
    if i < n {
        // The tail goes through the same conversion, padded to a full block.
        let r = n - i;
        let (mut xt, mut gt, mut yt) = ([0u16; 8], [0u16; 8], [0u16; 8]);
        ptr::copy_nonoverlapping(x.add(i), xt.as_mut_ptr(), r);
        if let Some(g) = g {
            ptr::copy_nonoverlapping(g.add(i), gt.as_mut_ptr(), r);
        }
        // `a` may only be read in bounds: give the padding lanes the last real slope.
        let av: [f32; 8] = std::array::from_fn(|j| a.get(i + j.min(r - 1)));
        let xs = C::load(xt.as_ptr());
        let gs = if g.is_some() {
            C::load(gt.as_ptr())
        } else {
            [1.0; 8]
        };
        let mut ys = [0f32; 8];
        for j in 0..8 {
            ys[j] = f(xs[j], gs[j], av[j]);
        }
        C::store(yt.as_mut_ptr(), ys);
        ptr::copy_nonoverlapping(yt.as_ptr(), y.add(i), r);
    }
}

/// f16 → f32 and f32 → f16 in bulk, through the level's converter.
#[inline(always)]
pub unsafe fn half_to_f32<C: HalfCvt>(x: *const u16, y: *mut f32, n: usize) {
    let mut i = 0;
    while i + 8 <= n {
        ptr::write_unaligned(y.add(i) as *mut [f32; 8], C::load(x.add(i)));
        i += 8;
    }
    while i < n {
        *y.add(i) = act::f16_to_f32(*x.add(i));
        i += 1;
    }
}

#[inline(always)]
pub unsafe fn f32_to_half<C: HalfCvt>(x: *const f32, y: *mut u16, n: usize) {
    let mut i = 0;
    while i + 8 <= n {
        C::store(y.add(i), ptr::read_unaligned(x.add(i) as *const [f32; 8]));
        i += 8;
    }
    while i < n {
        *y.add(i) = act::f32_to_f16(*x.add(i));
        i += 1;
    }
}
