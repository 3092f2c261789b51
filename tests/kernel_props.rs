//! Every SIMD level this machine runs equals the scalar reference (`relu::act`) bit for bit, on
//! data salted with NaNs (several payloads, both signs), ±0, ±inf and subnormals, for every length
//! 0..=300 and misaligned starts.

use proptest::prelude::*;
use relu::act;
use relu::kernel::{Kernel, Level, Op, Slope};

fn kernels() -> Vec<Kernel> {
    let levels = Level::available();
    assert!(levels.contains(&Level::Scalar));
    levels.into_iter().map(|l| Kernel::at(l).expect("available")).collect()
}

const F32_SPECIAL: [u32; 14] = [
    0x7fc0_0000,
    0xffc0_0000,
    0x7fc0_0001,
    0xffc1_2345,
    0x7f80_0001,
    0xff80_0100, // NaNs
    0x0000_0000,
    0x8000_0000,
    0x7f80_0000,
    0xff80_0000, // ±0, ±inf
    0x0000_0001,
    0x8000_0001,
    0x007f_ffff,
    0x807f_ffff, // subnormals
];
const F64_SPECIAL: [u64; 12] = [
    0x7ff8_0000_0000_0000,
    0xfff8_0000_0000_0001,
    0x7ff0_0000_0000_0001,
    0xfff4_0000_0000_0000,
    0,
    0x8000_0000_0000_0000,
    0x7ff0_0000_0000_0000,
    0xfff0_0000_0000_0000,
    1,
    0x8000_0000_0000_0001,
    0x000f_ffff_ffff_ffff,
    0x800f_ffff_ffff_ffff,
];
const F16_SPECIAL: [u16; 12] =
    [0x7e00, 0xfe00, 0x7c01, 0xfc01, 0x7d55, 0x0000, 0x8000, 0x7c00, 0xfc00, 0x0001, 0x8001, 0x83ff];

/// A small deterministic generator, so the exhaustive-length tests need no proptest runner.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn f32(&mut self) -> f32 {
        let r = self.next();
        if r.is_multiple_of(5) {
            f32::from_bits(F32_SPECIAL[(r >> 8) as usize % F32_SPECIAL.len()])
        } else {
            ((r >> 11) as f64 / (1u64 << 53) as f64 * 8.0 - 4.0) as f32
        }
    }
    fn f64(&mut self) -> f64 {
        let r = self.next();
        if r.is_multiple_of(5) {
            f64::from_bits(F64_SPECIAL[(r >> 8) as usize % F64_SPECIAL.len()])
        } else {
            (r >> 11) as f64 / (1u64 << 53) as f64 * 8.0 - 4.0
        }
    }
    fn f16(&mut self) -> u16 {
        let r = self.next();
        if r.is_multiple_of(5) {
            F16_SPECIAL[(r >> 8) as usize % F16_SPECIAL.len()]
        } else {
            act::f32_to_f16(self.f32())
        }
    }
}

/// Which function the kernel computes, with its parameters as f64 (rounded per type in the test).
#[derive(Clone, Copy, Debug)]
enum Case {
    Relu,
    Leaky(f64),
    PreluEach,
    GradRelu,
    GradLeaky(f64),
    GradPreluEach,
}

const CASES: [Case; 8] = [
    Case::Relu,
    Case::Leaky(0.01),
    Case::Leaky(-0.3),
    Case::PreluEach,
    Case::GradRelu,
    Case::GradLeaky(0.2),
    Case::GradLeaky(1.5),
    Case::GradPreluEach,
];

fn op<W: Copy>(c: Case, all: impl Fn(f64) -> W, each: &[W]) -> Op<'_, W> {
    match c {
        Case::Relu => Op::Relu,
        Case::Leaky(a) => Op::Leaky(Slope::All(all(a))),
        Case::PreluEach => Op::Leaky(Slope::Each(each)),
        Case::GradRelu => Op::GradRelu,
        Case::GradLeaky(a) => Op::GradLeaky(Slope::All(all(a))),
        Case::GradPreluEach => Op::GradLeaky(Slope::Each(each)),
    }
}

fn ref_f32(c: Case, x: f32, g: f32, each: f32) -> f32 {
    match c {
        Case::Relu => act::relu(x),
        Case::Leaky(a) => act::leaky(x, a as f32),
        Case::PreluEach => act::leaky(x, each),
        Case::GradRelu => act::grad_relu(x, g),
        Case::GradLeaky(a) => act::grad_leaky(x, g, a as f32),
        Case::GradPreluEach => act::grad_leaky(x, g, each),
    }
}

fn ref_f64(c: Case, x: f64, g: f64, each: f64) -> f64 {
    match c {
        Case::Relu => act::relu(x),
        Case::Leaky(a) => act::leaky(x, a),
        Case::PreluEach => act::leaky(x, each),
        Case::GradRelu => act::grad_relu(x, g),
        Case::GradLeaky(a) => act::grad_leaky(x, g, a),
        Case::GradPreluEach => act::grad_leaky(x, g, each),
    }
}

fn ref_f16(c: Case, x: u16, g: u16, each: f32) -> u16 {
    if let Case::Relu = c {
        return act::relu_f16(x);
    }
    act::f32_to_f16(ref_f32(c, act::f16_to_f32(x), act::f16_to_f32(g), each))
}

/// Runs one case on every level for `x[start..]`, with and without an upstream gradient, out of
/// place and in place, and compares bits with the reference.
fn check_f32(x: &[f32], g: &[f32], slopes: &[f32]) {
    for k in kernels() {
        for c in CASES {
            let grads: &[Option<&[f32]>] = if matches!(c, Case::GradRelu | Case::GradLeaky(_) | Case::GradPreluEach) {
                &[None, Some(g)]
            } else {
                &[None]
            };
            for &gg in grads {
                let want: Vec<u32> =
                    (0..x.len()).map(|i| ref_f32(c, x[i], gg.map_or(1.0, |g| g[i]), slopes[i]).to_bits()).collect();
                let mut y = vec![0f32; x.len()];
                k.float(op(c, |a| a as f32, slopes), x, gg, &mut y);
                assert_eq!(
                    y.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                    want,
                    "{:?} {c:?} g={} n={}",
                    k.level(),
                    gg.is_some(),
                    x.len()
                );
                let mut z = x.to_vec();
                k.float_in_place(op(c, |a| a as f32, slopes), &mut z, gg);
                assert_eq!(z.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), want, "in place {:?} {c:?}", k.level());
            }
        }
    }
}

fn check_f64(x: &[f64], g: &[f64], slopes: &[f64]) {
    for k in kernels() {
        for c in CASES {
            for gg in [None, Some(g)] {
                let want: Vec<u64> =
                    (0..x.len()).map(|i| ref_f64(c, x[i], gg.map_or(1.0, |g| g[i]), slopes[i]).to_bits()).collect();
                let mut y = vec![0f64; x.len()];
                k.float(op(c, |a| a, slopes), x, gg, &mut y);
                assert_eq!(
                    y.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                    want,
                    "{:?} {c:?} n={}",
                    k.level(),
                    x.len()
                );
            }
        }
    }
}

fn check_f16(x: &[u16], g: &[u16], slopes: &[f32]) {
    for k in kernels() {
        for c in CASES {
            for gg in [None, Some(g)] {
                let gg = if matches!(c, Case::GradRelu | Case::GradLeaky(_) | Case::GradPreluEach) { gg } else { None };
                let want: Vec<u16> =
                    (0..x.len()).map(|i| ref_f16(c, x[i], gg.map_or(0x3c00, |g| g[i]), slopes[i])).collect();
                let mut y = vec![0u16; x.len()];
                k.half(op(c, |a| a as f32, slopes), x, gg, &mut y);
                assert_eq!(y, want, "{:?} {c:?} n={}", k.level(), x.len());
                let mut z = x.to_vec();
                k.half_in_place(op(c, |a| a as f32, slopes), &mut z, gg);
                assert_eq!(z, want, "in place {:?} {c:?}", k.level());
            }
        }
    }
}

#[test]
fn every_length_and_misaligned_start_f32() {
    let mut r = Rng(0x9e37_79b9_7f4a_7c15);
    for n in 0..=300 {
        let start = n % 7;
        let buf: Vec<f32> = (0..n + start).map(|_| r.f32()).collect();
        let g: Vec<f32> = (0..n + start).map(|_| r.f32()).collect();
        let s: Vec<f32> = (0..n + start).map(|_| r.f32()).collect();
        check_f32(&buf[start..], &g[start..], &s[start..]);
    }
}

#[test]
fn every_length_and_misaligned_start_f64() {
    let mut r = Rng(0x1234_5678_9abc_def1);
    for n in 0..=300 {
        let start = n % 5;
        let buf: Vec<f64> = (0..n + start).map(|_| r.f64()).collect();
        let g: Vec<f64> = (0..n + start).map(|_| r.f64()).collect();
        let s: Vec<f64> = (0..n + start).map(|_| r.f64()).collect();
        check_f64(&buf[start..], &g[start..], &s[start..]);
    }
}

#[test]
fn every_length_and_misaligned_start_f16() {
    let mut r = Rng(0x0bad_cafe_f00d_d00d);
    for n in 0..=300 {
        let start = n % 9;
        let buf: Vec<u16> = (0..n + start).map(|_| r.f16()).collect();
        let g: Vec<u16> = (0..n + start).map(|_| r.f16()).collect();
        let s: Vec<f32> = (0..n + start).map(|_| act::f16_to_f32(r.f16())).collect();
        check_f16(&buf[start..], &g[start..], &s[start..]);
    }
}

#[test]
fn every_f16_value_on_every_level() {
    let all: Vec<u16> = (0..=u16::MAX).collect();
    let g: Vec<u16> = all.iter().rev().copied().collect();
    let s: Vec<f32> = all.iter().map(|&h| act::f16_to_f32(h.wrapping_mul(31))).collect();
    check_f16(&all, &g, &s);
    for k in kernels() {
        let mut f = vec![0f32; all.len()];
        k.half_to_f32(&all, &mut f);
        for (&h, &v) in all.iter().zip(&f) {
            assert_eq!(v.to_bits(), act::f16_to_f32(h).to_bits(), "{:?} {h:#06x}", k.level());
        }
        let mut back = vec![0u16; all.len()];
        k.f32_to_half(&f, &mut back);
        let want: Vec<u16> = f.iter().map(|&v| act::f32_to_f16(v)).collect();
        assert_eq!(back, want, "{:?}", k.level());
    }
}

/// `--act none` on f16 and bf16 keeps every bit pattern, signalling NaNs included (a round trip
/// through f32 would quiet them), with and without statistics (f16 in place too), on every level.
#[test]
fn identity_keeps_every_half_bit_pattern() {
    let all: Vec<u16> = (0..=u16::MAX).collect();
    for k in kernels() {
        for bf16 in [false, true] {
            let mut y = vec![0u16; all.len()];
            let mut ys = vec![0u16; all.len()];
            let mut xy = all.clone();
            let s = if bf16 {
                k.bf16(Op::Identity, &all, None, &mut y);
                k.bf16_stats(Op::Identity, &all, None, &mut ys, 0.0)
            } else {
                k.half(Op::Identity, &all, None, &mut y);
                k.half_in_place(Op::Identity, &mut xy, None);
                k.half_stats(Op::Identity, &all, None, &mut ys, 0.0)
            };
            assert!(y == all, "{:?} bf16={bf16}: identity changed bits", k.level());
            assert!(ys == all, "{:?} bf16={bf16}: identity with statistics changed bits", k.level());
            assert!(xy == all, "{:?} bf16={bf16}: identity in place changed bits", k.level());
            // the statistics still see every value, NaNs counted
            let nans =
                all.iter().filter(|&&h| if bf16 { act::bf16_to_f32(h).is_nan() } else { act::f16_to_f32(h).is_nan() });
            assert_eq!((s.elements, s.nan), (all.len() as u64, nans.count() as u64), "{:?} bf16={bf16}", k.level());
        }
    }
}

/// relu and the identity on finite f16 and bf16 values count zeros and negatives on the bits
/// (sixteen u16 lanes a vector): the whole statistics, bit for bit, are those of the same values
/// as f32, on every level, with and without an output, at every length's tail.
#[test]
fn half_statistics_on_bits_equal_those_of_the_values_as_f32() {
    for bf16 in [false, true] {
        let widen = |h: u16| if bf16 { act::bf16_to_f32(h) } else { act::f16_to_f32(h) };
        // every finite pattern, shuffled so that blocks mix signs, zeros and magnitudes
        let mut x: Vec<u16> = (0..=u16::MAX).filter(|&h| widen(h).is_finite()).collect();
        let mut r = Rng(5);
        for i in (1..x.len()).rev() {
            x.swap(i, (r.next() % (i as u64 + 1)) as usize);
        }
        let xf: Vec<f32> = x.iter().map(|&h| widen(h)).collect();
        for k in kernels() {
            for n in [x.len(), 1000, 17, 16, 5] {
                for (o, of) in [(Op::Identity, Op::Identity), (Op::Relu, Op::Relu)] {
                    let (mut y, mut yf) = (vec![0u16; n], vec![0f32; n]);
                    let want = k.float_stats(of, &xf[..n], None, &mut yf, 0.25);
                    let got = if bf16 {
                        k.bf16_stats(o, &x[..n], None, &mut y, 0.25)
                    } else {
                        k.half_stats(o, &x[..n], None, &mut y, 0.25)
                    };
                    let only = k.half_stats_only(bf16, o, &x[..n], 0.25).unwrap();
                    let what = format!("{:?} {o:?} bf16={bf16} n={n}", k.level());
                    assert_eq!(format!("{got:?}"), format!("{want:?}"), "{what}");
                    assert_eq!(format!("{only:?}"), format!("{want:?}"), "{what} without an output");
                    assert!(y.iter().zip(&yf).all(|(&h, &f)| widen(h).to_bits() == f.to_bits()), "{what}");
                    assert_eq!(got.negative, xf[..n].iter().filter(|&&v| v < 0.0).count() as u64, "{what}");
                }
            }
        }
        // every pattern, NaNs and infinities too (their calls are recounted lane by lane, and
        // relu writes NaNs quieted), and a call long enough that the u16 lane counts move into
        // the u32 ones on the way (every 2^13 runs of 64 values)
        let mut every: Vec<u16> = (0..=u16::MAX).collect();
        for i in (1..every.len()).rev() {
            every.swap(i, (r.next() % (i as u64 + 1)) as usize);
        }
        let long: Vec<u16> = x.iter().cycle().take(600_011).copied().collect();
        let relu_bits = if bf16 { act::relu_bf16 } else { act::relu_f16 };
        for (xs, name) in [(&every, "every pattern"), (&long, "600,011 finite values")] {
            let xf: Vec<f32> = xs.iter().map(|&h| widen(h)).collect();
            for k in kernels() {
                for o in [Op::Identity, Op::Relu] {
                    let n = xs.len();
                    let (mut y, mut yf) = (vec![0u16; n], vec![0f32; n]);
                    let want = k.float_stats(o, &xf, None, &mut yf, -3.5);
                    let got = if bf16 {
                        k.bf16_stats(o, xs, None, &mut y, -3.5)
                    } else {
                        k.half_stats(o, xs, None, &mut y, -3.5)
                    };
                    let only = k.half_stats_only(bf16, o, xs, -3.5).unwrap();
                    let what = format!("{:?} {o:?} bf16={bf16} {name}", k.level());
                    assert_eq!(format!("{got:?}"), format!("{want:?}"), "{what}");
                    assert_eq!(format!("{only:?}"), format!("{want:?}"), "{what} without an output");
                    let relu = matches!(o, Op::Relu);
                    assert!(y.iter().zip(xs.iter()).all(|(&h, &v)| h == if relu { relu_bits(v) } else { v }), "{what}");
                }
            }
        }
    }
}

#[test]
fn integers_on_every_level() {
    let mut r = Rng(77);
    for n in [0usize, 1, 15, 16, 17, 31, 33, 300] {
        let x: Vec<i16> = (0..n).map(|_| r.next() as i16).collect();
        let g: Vec<i16> = (0..n).map(|_| r.next() as i16).collect();
        for k in kernels() {
            let mut y = vec![0i16; n];
            k.int(Op::Relu, &x, None, &mut y);
            assert_eq!(y, x.iter().map(|&v| v.max(0)).collect::<Vec<_>>());
            k.int(Op::GradRelu, &x, Some(&g), &mut y);
            assert_eq!(y, x.iter().zip(&g).map(|(&v, &g)| if v <= 0 { 0 } else { g }).collect::<Vec<_>>());
            k.int(Op::GradRelu, &x, None, &mut y);
            assert_eq!(y, x.iter().map(|&v| (v > 0) as i16).collect::<Vec<_>>());
            let u: Vec<u32> = x.iter().map(|&v| v as u32).collect();
            let mut uy = vec![0u32; n];
            k.int(Op::Relu, &u, None, &mut uy);
            assert_eq!(uy, u);
        }
    }
}

fn f32_bits() -> impl Strategy<Value = f32> {
    prop_oneof![
        3 => any::<f32>(),
        1 => proptest::sample::select(F32_SPECIAL.to_vec()).prop_map(f32::from_bits),
        1 => -1e-38f32..1e-38f32,
    ]
}

fn f16_bits() -> impl Strategy<Value = u16> {
    prop_oneof![3 => any::<u16>(), 1 => proptest::sample::select(F16_SPECIAL.to_vec())]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn simd_equals_scalar_f32(v in proptest::collection::vec((f32_bits(), f32_bits(), f32_bits()), 0..300), start in 0usize..8) {
        let start = start.min(v.len());
        let x: Vec<f32> = v.iter().map(|t| t.0).collect();
        let g: Vec<f32> = v.iter().map(|t| t.1).collect();
        let s: Vec<f32> = v.iter().map(|t| t.2).collect();
        check_f32(&x[start..], &g[start..], &s[start..]);
    }

    #[test]
    fn simd_equals_scalar_f64(v in proptest::collection::vec((any::<f64>(), any::<f64>(), -2.0f64..2.0), 0..300)) {
        let x: Vec<f64> = v.iter().map(|t| t.0).collect();
        let g: Vec<f64> = v.iter().map(|t| t.1).collect();
        let s: Vec<f64> = v.iter().map(|t| t.2).collect();
        check_f64(&x, &g, &s);
    }

    #[test]
    fn simd_equals_scalar_f16(v in proptest::collection::vec((f16_bits(), f16_bits(), f16_bits()), 0..300)) {
        let x: Vec<u16> = v.iter().map(|t| t.0).collect();
        let g: Vec<u16> = v.iter().map(|t| t.1).collect();
        let s: Vec<f32> = v.iter().map(|t| act::f16_to_f32(t.2)).collect();
        check_f16(&x, &g, &s);
    }
}

/// The fused statistics of every level: counts and min/max exactly as a plain loop over the
/// reference outputs computes them, sums within rounding of an f64 reference, and every level
/// bit-identical to the portable one (same lanes, same order).
fn check_stats_f32(x: &[f32], shift: f64) {
    let scalar = Kernel::at(Level::Scalar).unwrap();
    for c in [Case::Relu, Case::Leaky(0.1), Case::GradRelu] {
        let mut y0 = vec![0f32; x.len()];
        let s0 = scalar.float_stats(op(c, |a| a as f32, x), x, None, &mut y0, shift);
        let want: Vec<f32> = x.iter().map(|&v| ref_f32(c, v, 1.0, 0.0)).collect();
        assert_eq!(
            y0.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            want.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
        let fin: Vec<f64> = want.iter().filter(|v| v.is_finite()).map(|&v| v as f64).collect();
        assert_eq!(s0.elements, x.len() as u64);
        assert_eq!(s0.zeros, want.iter().filter(|&&v| v == 0.0).count() as u64);
        assert_eq!(s0.negative, x.iter().filter(|&&v| v < 0.0).count() as u64);
        assert_eq!(s0.nan, want.iter().filter(|v| v.is_nan()).count() as u64);
        assert_eq!(s0.posinf, want.iter().filter(|&&v| v == f32::INFINITY).count() as u64);
        assert_eq!(s0.neginf, want.iter().filter(|&&v| v == f32::NEG_INFINITY).count() as u64);
        assert_eq!(s0.finite, fin.len() as u64);
        assert_eq!(s0.min, fin.iter().copied().fold(f64::INFINITY, f64::min));
        assert_eq!(s0.max, fin.iter().copied().fold(f64::NEG_INFINITY, f64::max));
        let s1: f64 = fin.iter().map(|v| v - shift).sum();
        let s2: f64 = fin.iter().map(|v| (v - shift) * (v - shift)).sum();
        let scale: f64 = fin.iter().map(|v| (v - shift).abs()).sum::<f64>() + 1e-300;
        assert!((s0.s1 - s1).abs() <= 1e-12 * scale, "{c:?} s1 {} vs {s1}", s0.s1);
        assert!((s0.s2 - s2).abs() <= 1e-12 * (s2 + 1e-300), "{c:?} s2 {} vs {s2}", s0.s2);
        for k in kernels() {
            let mut y = vec![0f32; x.len()];
            let s = k.float_stats(op(c, |a| a as f32, x), x, None, &mut y, shift);
            assert_eq!(format!("{s:?}"), format!("{s0:?}"), "{:?} {c:?}", k.level());
            assert_eq!(
                y.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                want.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
            );
        }
    }
}

#[test]
fn fused_statistics_every_length() {
    let mut r = Rng(4242);
    for n in 0..=300 {
        let x: Vec<f32> = (0..n).map(|_| r.f32()).collect();
        check_stats_f32(&x, 0.25);
    }
}

#[test]
fn fused_statistics_f16_and_int_match_their_outputs() {
    let mut r = Rng(99);
    let x: Vec<u16> = (0..1000).map(|_| r.f16()).collect();
    let xi: Vec<i32> = (0..1000).map(|_| (r.next() % 2001) as i32 - 1000).collect();
    let mut base = None;
    for k in kernels() {
        let mut y = vec![0u16; x.len()];
        let s = k.half_stats(Op::Leaky(Slope::All(0.1)), &x, None, &mut y, 0.0);
        let vals: Vec<f32> = y.iter().map(|&h| act::f16_to_f32(h)).collect();
        assert_eq!(s.nan, vals.iter().filter(|v| v.is_nan()).count() as u64);
        assert_eq!(s.zeros, vals.iter().filter(|&&v| v == 0.0).count() as u64);
        assert_eq!(s.negative, x.iter().filter(|&&h| act::f16_to_f32(h) < 0.0).count() as u64);
        let mut yi = vec![0i32; xi.len()];
        let si = k.int_stats(Op::Relu, &xi, None, &mut yi, 0.0);
        assert_eq!(si.zeros, yi.iter().filter(|&&v| v == 0).count() as u64);
        assert_eq!(si.max, *yi.iter().max().unwrap() as f64);
        assert_eq!(si.s1, yi.iter().map(|&v| v as f64).sum::<f64>());
        let key = format!("{s:?} {si:?}");
        assert_eq!(base.get_or_insert(key.clone()), &key, "{:?}", k.level());
    }
}

/// The min/max-only pass (`float_range`, `half_range`): the finite min and max and the counts of
/// the full statistics, every level bit-identical to the portable one, the output as written.
fn check_range_f32(x: &[f32]) {
    let scalar = Kernel::at(Level::Scalar).unwrap();
    for c in [Case::Relu, Case::Leaky(0.1), Case::GradRelu] {
        let mut y0 = vec![0f32; x.len()];
        let full = scalar.float_stats(op(c, |a| a as f32, x), x, None, &mut y0, 0.0);
        let mut y1 = vec![0f32; x.len()];
        let r0 = scalar.float_range(op(c, |a| a as f32, x), x, None, &mut y1);
        assert_eq!(
            y0.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            y1.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
        let counts = |s: &relu::kernel::ChunkStats| (s.elements, s.nan, s.posinf, s.neginf, s.finite);
        assert_eq!(counts(&r0), counts(&full), "{c:?}");
        // equal as numbers (a zero's sign may come from another element of equal value)
        assert_eq!(r0.min, full.min, "{c:?}");
        assert_eq!(r0.max, full.max, "{c:?}");
        for k in kernels() {
            let mut y = vec![0f32; x.len()];
            let r = k.float_range(op(c, |a| a as f32, x), x, None, &mut y);
            assert_eq!(format!("{r:?}"), format!("{r0:?}"), "{:?} {c:?}", k.level());
            assert_eq!(
                y.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                y0.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
            );
        }
    }
}

#[test]
fn range_pass_every_length() {
    let mut r = Rng(777);
    for n in 0..=300 {
        let x: Vec<f32> = (0..n).map(|_| r.f32()).collect();
        check_range_f32(&x);
    }
    // a lone NaN or infinity in a block, and nothing finite at all
    check_range_f32(&[1.0, f32::NAN, -3.0, 2.0, 0.5, 0.25, 7.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, -2.0]);
    check_range_f32(&[f32::INFINITY; 40]);
    check_range_f32(&[f32::NAN; 17]);
}

#[test]
fn range_pass_f16_and_bf16_match_the_full_statistics() {
    let mut r = Rng(31);
    for n in [0usize, 1, 7, 16, 33, 1000] {
        let x: Vec<u16> = (0..n).map(|_| r.f16()).collect();
        for bf16 in [false, true] {
            for o in [Op::Identity, Op::Relu, Op::Leaky(Slope::All(0.1))] {
                let mut base = None;
                for k in kernels() {
                    let mut y = vec![0u16; n];
                    let full = if bf16 {
                        k.bf16_stats(o, &x, None, &mut y, 0.0)
                    } else {
                        k.half_stats(o, &x, None, &mut y, 0.0)
                    };
                    let mut y2 = vec![0u16; n];
                    let with_y = k.half_range(bf16, o, &x, None, Some(&mut y2)).unwrap();
                    assert_eq!(y, y2, "{:?} {o:?}", k.level());
                    // without an output only where the results are exact (identity, relu)
                    let without = k.half_range(bf16, o, &x, None, None);
                    assert_eq!(without.is_some(), !matches!(o, Op::Leaky(_)));
                    for s in [Some(with_y), without].into_iter().flatten() {
                        let counts = (s.elements, s.nan, s.posinf, s.neginf, s.finite);
                        assert_eq!(counts, (full.elements, full.nan, full.posinf, full.neginf, full.finite));
                        assert_eq!((s.min, s.max), (full.min, full.max), "{:?} {o:?} bf16={bf16}", k.level());
                    }
                    let key = format!("{with_y:?} {without:?}");
                    assert_eq!(base.get_or_insert(key.clone()), &key, "{:?} {o:?} bf16={bf16}", k.level());
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn simd_statistics_equal_scalar(v in proptest::collection::vec(f32_bits(), 0..400), shift in -2.0f64..2.0) {
        check_stats_f32(&v, shift);
    }

    #[test]
    fn simd_range_pass_equals_scalar(v in proptest::collection::vec(f32_bits(), 0..400)) {
        check_range_f32(&v);
    }
}

/// NumPy's `histogram` for one value (its uniform-bin path, as `numpy/lib/_histograms_impl.py`
/// writes it): `None` outside `[lo, hi]` and for NaN.
fn numpy_bin(edges: &[f64], lo: f64, hi: f64, x: f64) -> Option<usize> {
    if !(x >= lo && x <= hi) {
        return None;
    }
    let n = edges.len() - 1;
    let f = ((x - lo) / (hi - lo)) * n as f64;
    let mut i = (f as usize).min(n - 1);
    if x < edges[i] {
        i = i.saturating_sub(1);
    }
    if i != n - 1 && x >= edges[i + 1] {
        i += 1;
    }
    Some(i)
}

/// Every level's histogram counts, under/overflow and NaN equal NumPy's steps value by value.
fn check_hist<T: relu::dtype::Element>(xs: &[T], lo: f64, hi: f64, n: usize) {
    let bins = std::sync::Arc::new(relu::hist::Bins::new(lo, hi, n).expect("valid bins"));
    let mut want = vec![0u64; n];
    let (mut under, mut over, mut nan) = (0u64, 0u64, 0u64);
    for v in xs {
        let x = v.to_f64();
        match numpy_bin(&bins.edges, bins.lo, bins.hi, x) {
            Some(i) => want[i] += 1,
            None if x < bins.lo => under += 1,
            None if x > bins.hi => over += 1,
            None => nan += 1,
        }
    }
    for k in kernels() {
        let mut h = relu::hist::Histogram::with_kernel(bins.clone(), k);
        // two calls, so that the counter sets carry over
        let (a, b) = xs.split_at(xs.len() / 3);
        h.add(a);
        h.add(b);
        let got = h.to_json();
        let level = k.level().name();
        assert_eq!(got.counts, want, "{level}: counts, range [{lo}, {hi}], {n} bins");
        assert_eq!((got.underflow, got.overflow, got.nan), (under, over, nan), "{level}: outside");
    }
}

/// Values that land on and next to the edges, zeros, a relu's share of them, and the specials.
fn hist_values(lo: f64, hi: f64, n: usize, seed: u64, len: usize) -> Vec<f64> {
    let bins = relu::hist::Bins::new(lo, hi, n).expect("valid bins");
    let mut r = Rng(seed | 1);
    (0..len)
        .map(|_| {
            let u = r.next();
            let w = (u >> 11) as f64 / (1u64 << 53) as f64;
            match u % 8 {
                0 | 1 => 0.0,
                2 => bins.edges[(u >> 20) as usize % bins.edges.len()],
                3 => {
                    let e = bins.edges[(u >> 20) as usize % bins.edges.len()];
                    if u & 1 << 30 != 0 {
                        e.next_up()
                    } else {
                        e.next_down()
                    }
                }
                4 => f64::from_bits(F64_SPECIAL[(u >> 20) as usize % F64_SPECIAL.len()]),
                _ => lo - (hi - lo) * 0.1 + w * (hi - lo) * 1.2,
            }
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn hist_every_level_equals_numpy(
        ends in prop_oneof![
            Just((-4.0, 4.0)), Just((0.0, 1.0)), Just((-1.0, 0.0)), Just((0.1, 0.7)),
            (-1e3f64..1e3, 1e-6f64..1e3).prop_map(|(a, w)| (a, a + w)),
            (-1.0f64..1.0).prop_map(|a| (a, a + 1e-12)),
        ],
        n in prop_oneof![1usize..8, Just(100usize), 8usize..300, Just(5000usize)],
        seed in any::<u64>(),
        len in 0usize..1400,
    ) {
        let v = hist_values(ends.0, ends.1, n, seed, len);
        check_hist(&v, ends.0, ends.1, n);
        let v32: Vec<f32> = v.iter().map(|&x| x as f32).collect();
        check_hist(&v32, ends.0, ends.1, n);
        let v16: Vec<relu::dtype::F16> = v32.iter().map(|&x| relu::dtype::F16(act::f32_to_f16(x))).collect();
        check_hist(&v16, ends.0, ends.1, n);
    }
}

/// f32 → bf16 to nearest, ties to even, found by comparing the two neighbours in f64 (an
/// independent reference for the kernel's integer rounding); NaN stays NaN.
fn ref_round_bf16(v: f32) -> u16 {
    if v.is_nan() {
        return 0x7fc0;
    }
    let b = v.to_bits();
    let lo = (b >> 16) as u16; // toward zero
    let hi = lo.wrapping_add(1); // away from zero (to infinity at the top)
                                 // past the largest finite bf16, the next step is 2^128 (IEEE rounds to infinity beyond half of it)
    let value =
        |h: u16| if h & 0x7fff == 0x7f80 { (2f64).powi(128).copysign(v as f64) } else { act::bf16_to_f32(h) as f64 };
    let (dl, dh) = ((v as f64 - value(lo)).abs(), (value(hi) - v as f64).abs());
    if b & 0xffff == 0 || dl < dh || (dl == dh && lo & 1 == 0) {
        lo
    } else {
        hi
    }
}

/// All 65,536 bf16 inputs through every op at every level: non-NaN outputs equal an
/// independent reference bit for bit (f32 math, one rounding), NaN inputs give NaN, and every
/// level equals the portable one bit for bit.
#[test]
fn bf16_all_values_every_level() {
    let x: Vec<u16> = (0..=u16::MAX).collect();
    let g: Vec<u16> = (0..x.len()).map(|i| x[(i * 7919 + 13) % x.len()]).collect();
    let mut r = Rng(0x1234_5678_9abc_def1);
    let slopes: Vec<f32> = (0..x.len()).map(|_| act::bf16_to_f32(act::f32_to_bf16(r.f32()))).collect();
    let scalar = Kernel::at(Level::Scalar).unwrap();
    for c in CASES {
        let grad = matches!(c, Case::GradRelu | Case::GradLeaky(_) | Case::GradPreluEach);
        let gg = grad.then_some(&g[..]);
        let want: Vec<u16> = (0..x.len())
            .map(|i| {
                let (xv, gv) = (act::bf16_to_f32(x[i]), gg.map_or(1.0, |g| act::bf16_to_f32(g[i])));
                ref_round_bf16(ref_f32(c, xv, gv, slopes[i]))
            })
            .collect();
        let mut base = vec![0u16; x.len()];
        scalar.bf16(op(c, |a| a as f32, &slopes), &x, gg, &mut base);
        for k in kernels() {
            let mut y = vec![0u16; x.len()];
            k.bf16(op(c, |a| a as f32, &slopes), &x, gg, &mut y);
            assert!(y == base, "{:?} {c:?}: differs from the portable level", k.level());
            for i in 0..x.len() {
                let (got, w) = (act::bf16_to_f32(y[i]), act::bf16_to_f32(want[i]));
                if w.is_nan() {
                    assert!(got.is_nan(), "{:?} {c:?} x={:#06x}: got {:#06x}, want NaN", k.level(), x[i], y[i]);
                } else {
                    assert_eq!(y[i], want[i], "{:?} {c:?} x={:#06x} g={:#06x}", k.level(), x[i], g[i]);
                }
            }
            // with statistics: the same outputs; and for relu, the statistics without an output
            // (NaNs and infinities included, so the recount path runs) equal them
            let mut z = vec![0u16; x.len()];
            let st = k.bf16_stats(op(c, |a| a as f32, &slopes), &x, gg, &mut z, 0.5);
            assert!(z == base, "{:?} {c:?}: statistics path differs", k.level());
            if let (Case::Relu, Some(only)) = (c, k.half_stats_only(true, Op::Relu, &x, 0.5)) {
                assert_eq!(only, st, "{:?}: statistics without output", k.level());
                for n in [1usize, 15, 17, 1000] {
                    let (mut y, sub) = (vec![0u16; n], &x[0x3f00..0x3f00 + n]);
                    let full = k.bf16_stats(Op::Relu, sub, None, &mut y, 0.0);
                    assert_eq!(k.half_stats_only(true, Op::Relu, sub, 0.0), Some(full), "n={n}");
                    let full16 = k.half_stats(Op::Relu, sub, None, &mut y, 0.0);
                    assert_eq!(k.half_stats_only(false, Op::Relu, sub, 0.0), Some(full16), "f16 n={n}");
                }
            }
        }
    }
}

/// Conversions: bf16 → f32 exact, f32 → bf16 equal to the reference for a sweep of f32 bits
/// (subnormals kept), f64 → bf16 rounding once.
#[test]
fn bf16_conversions() {
    for k in kernels() {
        let x: Vec<u16> = (0..=u16::MAX).collect();
        let mut y = vec![0f32; x.len()];
        k.bf16_to_f32(&x, &mut y);
        assert!(y.iter().zip(&x).all(|(f, &h)| f.to_bits() == (h as u32) << 16));
        let f: Vec<f32> = (0..1u32 << 20).map(|i| f32::from_bits(i.wrapping_mul(4093).rotate_left(7))).collect();
        let mut b = vec![0u16; f.len()];
        k.f32_to_bf16(&f, &mut b);
        for (v, &h) in f.iter().zip(&b) {
            if v.is_nan() {
                assert!(act::bf16_to_f32(h).is_nan());
            } else {
                assert_eq!(h, ref_round_bf16(*v), "{:?} {v:e}", k.level());
            }
        }
    }
    // f64 → bf16 in one rounding: just above a tie between two bf16 values rounds up, where
    // rounding through f32 first would land on the tie and go to even (down)
    let tie = 1.0 + 2f64.powi(-8); // halfway between 1.0 and the next bf16
    assert_eq!(act::f64_to_bf16(tie + 2f64.powi(-40)), 0x3f81);
    assert_eq!(act::f64_to_bf16(tie), 0x3f80);
    assert_eq!(act::f64_to_bf16(-tie - 2f64.powi(-40)), 0xbf81);
    assert_eq!(act::f64_to_bf16(1e300), 0x7f80);
    assert_eq!(act::f64_to_bf16(1e-300), 0x0000);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// The histogram's zero dropping, where a level has it (AVX-512 `vcompressps`, AVX2 a
    /// table permutation): the values other than ±0, in order and bit for bit (NaN kept), and
    /// the zeros' count, for every length around the vector widths.
    #[test]
    fn compress_nonzero_keeps_order_and_counts_zeros(
        v in proptest::collection::vec(prop_oneof![
            3 => Just(0.0f32), 1 => Just(-0.0f32),
            1 => proptest::sample::select(F32_SPECIAL.to_vec()).prop_map(f32::from_bits),
            3 => any::<f32>(),
        ], 0..600),
    ) {
        let want: Vec<u32> = v.iter().filter(|x| **x != 0.0).map(|x| x.to_bits()).collect();
        for k in kernels() {
            let mut out = vec![7.0f32; v.len() + 16];
            if let Some((m, zeros)) = k.compress_nonzero_f32(&v, &mut out) {
                let got: Vec<u32> = out[..m].iter().map(|x| x.to_bits()).collect();
                prop_assert_eq!(&got, &want, "{}", k.level().name());
                prop_assert_eq!(zeros as usize, v.len() - want.len());
            }
        }
    }
}

/// The per-unit sums and extremes (`Kernel::unit_rows`, `Kernel::unit_run`) on every level
/// against a plain loop: counts, min and max exactly, sums to the rounding of their order.
fn check_units_f32(v: &[f32], units: usize) {
    let units = units.max(1);
    let rows = v.len() / units;
    let v = &v[..rows * units];
    // the reference, one unit at a time, in f64; among equal extremes (-0 and +0) the first
    // row's wins, as the kernels compare strictly (`f64::min`/`max` leave that sign to the
    // platform: aarch64's fminnm orders -0 below +0, x86's minsd does not)
    let mut want = vec![(0u32, 0.0f64, 0.0f64, f64::INFINITY, f64::NEG_INFINITY); units];
    for (i, &x) in v.iter().enumerate() {
        let x = x as f64;
        let w = &mut want[i % units];
        if x.is_finite() {
            let lo = if x < w.3 { x } else { w.3 };
            let hi = if x > w.4 { x } else { w.4 };
            *w = (w.0 + 1, w.1 + x, w.2 + x.abs(), lo, hi);
        }
    }
    // the rows one call each, in blocks of three, and all in one call
    // (and without the finiteness checks where every value is finite)
    let all_finite = v.iter().all(|x| x.is_finite());
    for (k, block) in kernels().into_iter().flat_map(|k| [(k, 1), (k, 3), (k, rows.max(1))]) {
        let (mut f, mut s, mut a) = (vec![0u32; units], vec![0.0; units], vec![0.0; units]);
        let (mut lo, mut hi) = (vec![f64::INFINITY; units], vec![f64::NEG_INFINITY; units]);
        for rows in v.chunks(units * block) {
            let acc = relu::kernel::UnitSlices { finite: &mut f, sum: &mut s, abs: &mut a, min: &mut lo, max: &mut hi };
            k.unit_rows(rows, acc, all_finite && block != 3, |x: f32| x as f64);
        }
        for u in 0..units {
            let w = want[u];
            assert_eq!(
                (f[u], lo[u].to_bits(), hi[u].to_bits()),
                (w.0, w.3.to_bits(), w.4.to_bits()),
                "{:?} rows unit {u}, {block} rows a call",
                k.level()
            );
            // the rows add in the same order as the reference
            assert_eq!(
                (s[u].to_bits(), a[u].to_bits()),
                (w.1.to_bits(), w.2.to_bits()),
                "{:?} rows sums unit {u}, {block} rows a call",
                k.level()
            );
        }
        // a unit's run (NCHW): the whole slice as one run
        let r = k.unit_run(v, |x: f32| x as f64);
        let fin: Vec<f64> = v.iter().map(|&x| x as f64).filter(|x| x.is_finite()).collect();
        assert_eq!(r.finite, fin.len() as u64, "{:?} run count", k.level());
        // the lanes fold in their own order, so between -0 and +0 either may stand: values here,
        // bits against the scalar level below
        assert_eq!(r.min, fin.iter().copied().fold(f64::INFINITY, |m, x| if x < m { x } else { m }));
        assert_eq!(r.max, fin.iter().copied().fold(f64::NEG_INFINITY, |m, x| if x > m { x } else { m }));
        let (sum, abs): (f64, f64) = (fin.iter().sum(), fin.iter().map(|x| x.abs()).sum());
        let big: f64 = fin.iter().map(|x| x.abs()).sum::<f64>() * 1e-12 + 1e-300;
        assert!((r.sum - sum).abs() <= big && (r.abs - abs).abs() <= big, "{:?} run sums", k.level());
        let scalar = Kernel::at(Level::Scalar).unwrap().unit_run(v, |x: f32| x as f64);
        assert_eq!(r, scalar, "{:?} run equals the scalar level", k.level());
        if !all_finite {
            continue;
        }
        // finite values f32 holds: the narrow pass (extremes in f32 lanes, sixteen units a time,
        // `abs` left as the sums where nothing is below zero, the active counts beside) gives
        // the same bits, and counts the values above zero
        let nonneg = v.iter().all(|&x| x >= 0.0);
        let (mut f, mut s, mut a) = (vec![0u32; units], vec![0.0; units], vec![0.0; units]);
        let (mut lo, mut hi) = (vec![f64::INFINITY; units], vec![f64::NEG_INFINITY; units]);
        let mut on = vec![0u32; units];
        for (i, rows) in v.chunks(units * block).enumerate() {
            let acc = relu::kernel::UnitSlices { finite: &mut f, sum: &mut s, abs: &mut a, min: &mut lo, max: &mut hi };
            // the active counts on every other call: counting must not change the rest
            let active = (i % 2 == 0).then_some(&mut on[..]);
            k.unit_rows_f32(rows, acc, nonneg, active, |x: f32| x);
        }
        let mut want_on = vec![0u32; units];
        for (i, rows) in v.chunks(units * block).enumerate() {
            for (j, &x) in rows.iter().enumerate() {
                want_on[j % units] += (i % 2 == 0 && x > 0.0) as u32;
            }
        }
        for u in 0..units {
            let w = want[u];
            assert_eq!(
                (f[u], s[u].to_bits(), a[u].to_bits(), lo[u].to_bits(), hi[u].to_bits(), on[u]),
                (w.0, w.1.to_bits(), w.2.to_bits(), w.3.to_bits(), w.4.to_bits(), want_on[u]),
                "{:?} narrow rows unit {u} of {units}, {block} rows a call, nonneg {nonneg}",
                k.level()
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn simd_unit_values_equal_scalar(v in proptest::collection::vec(f32_bits(), 0..400), units in 1usize..40) {
        check_units_f32(&v, units);
    }

    /// Finite values only: the kernel's path without the finiteness checks.
    #[test]
    fn simd_unit_values_of_finite_values_equal_scalar(
        v in proptest::collection::vec(prop_oneof![3 => -1e30f32..1e30, 1 => Just(0.0f32), 1 => Just(-0.0f32), 1 => -1e-38f32..1e-38], 0..400),
        units in 1usize..40,
    ) {
        check_units_f32(&v, units);
        // none below zero (relu's outputs, -0 among them): the narrow pass's sums of magnitudes
        let relu: Vec<f32> = v.iter().map(|&x| if x < 0.0 { 0.0 } else { x }).collect();
        check_units_f32(&relu, units);
    }
}

/// The radix select's filters at every level: the block test (AVX2 intrinsics for f32) says a
/// block is hit exactly when one of its values lies in one of the intervals, and the digits and
/// extreme keys of the first pass are the scalar definition's.
fn check_select_filters(v: &[f32], ranges: &[(f32, f32)]) {
    let blocks = v.len() / relu::kernel::HIT_BLOCK;
    let want: Vec<bool> = v
        .chunks_exact(relu::kernel::HIT_BLOCK)
        .map(|b| b.iter().any(|&x| ranges.iter().any(|&(lo, hi)| x >= lo && x <= hi)))
        .collect();
    let wide: Vec<(f64, f64)> = ranges.iter().map(|&(a, b)| (a as f64, b as f64)).collect();
    let (mut lo, mut hi) = (u64::MAX, 0u64);
    let mut want_d = Vec::new();
    for &x in v {
        let k = relu::kernel::order_key(x as f64);
        let fin = x.is_finite();
        want_d.push(if fin { (k >> 48) as u32 } else { 1 << 16 });
        if fin {
            (lo, hi) = (lo.min(k), hi.max(k));
        }
    }
    for k in kernels() {
        let mut hits = vec![false; blocks];
        k.block_hits_f32(v, ranges, &mut hits);
        assert_eq!(hits, want, "{k:?} f32 blocks");
        k.block_hits(v, &wide, &mut hits, |x| x as f64);
        assert_eq!(hits, want, "{k:?} f64 blocks");
        let mut d = vec![0u32; v.len()];
        let got = k.key_tops(v, &mut d, 48, 1 << 16, (u64::MAX, 0), |x| x as f64);
        assert_eq!((d, got), (want_d.clone(), (lo, hi)), "{k:?} digits");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn select_filters_equal_their_definition(
        v in proptest::collection::vec(f32_bits(), 0..300),
        picks in proptest::collection::vec((0usize..300, 0usize..300), 0..6),
    ) {
        // intervals between values of the data (so some blocks hit), some empty (lo > hi)
        let at = |i: usize| if v.is_empty() { 0.0 } else { v[i % v.len()] };
        let ranges: Vec<(f32, f32)> = picks.iter().map(|&(a, b)| (at(a), at(b))).collect();
        check_select_filters(&v, &ranges);
    }
}

/// Input read where it lies (`Unaligned` elements at every byte offset, as a mapped `.pt`
/// storage after an odd-length zip name): every f32/f64 entry and the per-unit passes give the
/// bits they give on the same values aligned, on every level.
#[test]
fn unaligned_input_reads_as_aligned() {
    use relu::kernel::{Unaligned, UnitSlices};
    fn bits<T: bytemuck::Pod>(s: &relu::kernel::ChunkStats, y: &[T]) -> String {
        format!("{s:?} {:?}", bytemuck::cast_slice::<T, u8>(y))
    }
    /// `v`'s bytes `off` bytes into an 8-aligned buffer, and that buffer.
    fn shifted<T: bytemuck::Pod>(v: &[T], off: usize) -> Vec<u64> {
        let len = std::mem::size_of_val(v);
        let mut buf = vec![0u64; len / 8 + 2];
        bytemuck::cast_slice_mut::<u64, u8>(&mut buf)[off..off + len].copy_from_slice(bytemuck::cast_slice(v));
        buf
    }
    fn at<T: bytemuck::Pod>(buf: &[u64], off: usize, n: usize) -> &[Unaligned<T>] {
        bytemuck::cast_slice(&bytemuck::cast_slice::<u64, u8>(buf)[off..off + n * std::mem::size_of::<T>()])
    }
    // the identity, relu, leaky and PReLU, and their gradients with an upstream
    fn ops<'a, W: Copy>(all: impl Fn(f64) -> W, each: &'a [W]) -> [(Op<'a, W>, bool); 7] {
        [
            (Op::Identity, false),
            (Op::Relu, false),
            (Op::Leaky(Slope::All(all(0.1))), false),
            (Op::Leaky(Slope::Each(each)), false),
            (Op::GradRelu, true),
            (Op::GradLeaky(Slope::All(all(0.2))), true),
            (Op::GradLeaky(Slope::Each(each)), true),
        ]
    }
    let mut r = Rng(0x005e_ed0f_f5e7);
    // every tail length of every level's blocks, a few rows of sixteen-unit blocks, one of many
    for n in (0..=100).chain([255, 256, 257, 4099]) {
        let x: Vec<f32> = (0..n).map(|_| r.f32()).collect();
        let x64: Vec<f64> = (0..n).map(|_| r.f64()).collect();
        let g: Vec<f32> = (0..n).map(|_| r.f32()).collect();
        let g64: Vec<f64> = (0..n).map(|_| r.f64()).collect();
        let fin: Vec<f32> = x.iter().map(|&v| if v.is_finite() { v } else { 1.5 }).collect();
        for off in 1..8 {
            let (b, b64, bf) = (shifted(&x, off), shifted(&x64, off), shifted(&fin, off));
            let (ux, ux64, uf) = (at::<f32>(&b, off, n), at::<f64>(&b64, off, n), at::<f32>(&bf, off, n));
            for k in kernels() {
                let lv = k.level();
                for (i, (o, grad)) in ops(|a| a as f32, &g).into_iter().enumerate() {
                    let gg = grad.then_some(&g[..]);
                    let (mut y0, mut y1) = (vec![0f32; n], vec![0f32; n]);
                    k.float(o, &x, gg, &mut y0);
                    k.float(o, ux, gg, &mut y1);
                    let none = Default::default();
                    assert_eq!(bits(&none, &y0), bits(&none, &y1), "f32 {lv:?} op {i} {n} +{off}");
                    let s0 = k.float_stats(o, &x, gg, &mut y0, 0.5);
                    let s1 = k.float_stats(o, ux, gg, &mut y1, 0.5);
                    assert_eq!(bits(&s0, &y0), bits(&s1, &y1), "f32 stats {lv:?} op {i} {n} +{off}");
                    let (r0, r1) = (k.float_range(o, &x, gg, &mut y0), k.float_range(o, ux, gg, &mut y1));
                    assert_eq!(bits(&r0, &y0), bits(&r1, &y1), "f32 range {lv:?} op {i} {n} +{off}");
                    let (a, b) = (k.float_stats_only(o, &x, 0.5), k.float_stats_only(o, ux, 0.5));
                    assert_eq!(a.is_some(), i < 2, "statistics alone: the identity and relu");
                    assert_eq!(format!("{a:?}"), format!("{b:?}"), "f32 stats only {lv:?} op {i} {n} +{off}");
                }
                for (i, (o, grad)) in ops(|a| a, &g64).into_iter().enumerate() {
                    let gg = grad.then_some(&g64[..]);
                    let (mut y0, mut y1) = (vec![0f64; n], vec![0f64; n]);
                    k.float(o, &x64, gg, &mut y0);
                    k.float(o, ux64, gg, &mut y1);
                    let none = Default::default();
                    assert_eq!(bits(&none, &y0), bits(&none, &y1), "f64 {lv:?} op {i} {n} +{off}");
                    let s0 = k.float_stats(o, &x64, gg, &mut y0, 0.5);
                    let s1 = k.float_stats(o, ux64, gg, &mut y1, 0.5);
                    assert_eq!(bits(&s0, &y0), bits(&s1, &y1), "f64 stats {lv:?} op {i} {n} +{off}");
                    let (r0, r1) = (k.float_range(o, &x64, gg, &mut y0), k.float_range(o, ux64, gg, &mut y1));
                    assert_eq!(bits(&r0, &y0), bits(&r1, &y1), "f64 range {lv:?} op {i} {n} +{off}");
                    let (a, b) = (k.float_stats_only(o, &x64, 0.5), k.float_stats_only(o, ux64, 0.5));
                    assert_eq!(format!("{a:?}"), format!("{b:?}"), "f64 stats only {lv:?} op {i} {n} +{off}");
                }
                // the per-unit passes over the input itself (statistics without an activation)
                let units = 1 + n % 13;
                let rows = n / units * units;
                let unit = |v: &mut dyn FnMut(UnitSlices)| {
                    let (mut f, mut s, mut a) = (vec![0u32; units], vec![0.0; units], vec![0.0; units]);
                    let (mut lo, mut hi) = (vec![f64::INFINITY; units], vec![f64::NEG_INFINITY; units]);
                    v(UnitSlices { finite: &mut f, sum: &mut s, abs: &mut a, min: &mut lo, max: &mut hi });
                    format!("{f:?} {s:?} {a:?} {lo:?} {hi:?}")
                };
                if rows > 0 {
                    let want = unit(&mut |a| k.unit_rows(&x[..rows], a, false, |v: f32| v as f64));
                    let got = unit(&mut |a| k.unit_rows(&ux[..rows], a, false, |v: Unaligned<f32>| v.0 as f64));
                    assert_eq!(want, got, "unit rows {lv:?} {n} +{off}");
                    // the narrow pass (finite values), with the active counts
                    let (mut on0, mut on1) = (vec![0u32; units], vec![0u32; units]);
                    let want = unit(&mut |a| k.unit_rows_f32(&fin[..rows], a, false, Some(&mut on0), |v: f32| v));
                    let got =
                        unit(&mut |a| k.unit_rows_f32(&uf[..rows], a, false, Some(&mut on1), |v: Unaligned<f32>| v.0));
                    assert_eq!((want, on0), (got, on1), "narrow unit rows {lv:?} {n} +{off}");
                }
                let run0 = k.unit_run(&x, |v: f32| v as f64);
                let run1 = k.unit_run(ux, |v: Unaligned<f32>| v.0 as f64);
                assert_eq!(format!("{run0:?}"), format!("{run1:?}"), "unit run {lv:?} {n} +{off}");
                let (mut c0, mut c1) = (vec![0u32; n], vec![0u32; n]);
                k.count_into(&x, &mut c0, |v: f32| v > 0.0);
                k.count_into(ux, &mut c1, |v: Unaligned<f32>| { v.0 } > 0.0);
                assert_eq!(c0, c1, "count into {lv:?} {n} +{off}");
                let (n0, n1) = (k.count(&x, |v: f32| v > 0.0), k.count(ux, |v: Unaligned<f32>| { v.0 } > 0.0));
                assert_eq!(n0, n1, "count {lv:?} {n} +{off}");
                // the histogram's packing of nonzero values, the quantile passes' interval tests
                let (mut p0, mut p1) = (vec![0f32; n + 16], vec![0f32; n + 16]);
                let (c0, c1) = (k.compress_nonzero_f32(&x, &mut p0), k.compress_nonzero_f32(ux, &mut p1));
                assert_eq!(c0, c1, "compress {lv:?} {n} +{off}");
                let m = c0.map_or(0, |c| c.0);
                assert_eq!(bits(&Default::default(), &p0[..m]), bits(&Default::default(), &p1[..m]));
                let blocks = n / relu::kernel::HIT_BLOCK;
                let ranges = [(-1.0f32, -0.5f32), (0.25, 3.0)];
                let (mut h0, mut h1) = (vec![false; blocks], vec![false; blocks]);
                k.block_hits_f32(&x, &ranges, &mut h0);
                k.block_hits_f32(ux, &ranges, &mut h1);
                assert_eq!(h0, h1, "block hits {lv:?} {n} +{off}");
            }
        }
    }
}
