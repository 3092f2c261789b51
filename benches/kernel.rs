//! Kernel throughput in cache: a 256 KiB buffer (the pipeline's chunk size) through each
//! activation, next to a plain memcpy of the same buffer and a branchy scalar loop.
//!
//!     cargo bench --bench kernel
//!
//! Throughput is input bytes per second. Random signs make a branchy loop mispredict about half
//! the time; the kernel's selects do not care.

use divan::counter::BytesCount;
use divan::{black_box, Bencher};
use relu::act;
use relu::kernel::{Kernel, Level, Op, Slope};

const BYTES: usize = 256 * 1024;

fn main() {
    eprintln!("kernel level: {}", Level::detect().name());
    divan::main();
}

fn random_f32(n: usize) -> Vec<f32> {
    let mut s = 0x9e37_79b9_7f4a_7c15u64;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

fn best() -> Kernel {
    Kernel::default()
}

fn scalar() -> Kernel {
    Kernel::at(Level::Scalar).expect("scalar always runs")
}

#[divan::bench]
fn memcpy(b: Bencher) {
    let src = vec![1u8; BYTES];
    let mut dst = vec![0u8; BYTES];
    b.counter(BytesCount::new(BYTES)).bench_local(|| dst.copy_from_slice(black_box(&src)));
}

/// The same copy as `memcpy`, written as the kernel's identity op (vector loads and stores); glibc's
/// `memcpy` picks `rep movsb` for this size, which is slow on some virtual machines.
#[divan::bench]
fn f32_copy_loop(b: Bencher) {
    let x = random_f32(BYTES / 4);
    let mut y = vec![0f32; x.len()];
    b.counter(BytesCount::new(BYTES)).bench_local(|| best().float(Op::Identity, black_box(&x), None, &mut y));
}

#[divan::bench(args = ["best", "scalar-level"])]
fn f32_relu(b: Bencher, level: &str) {
    let k = if level == "best" { best() } else { scalar() };
    let x = random_f32(BYTES / 4);
    let mut y = vec![0f32; x.len()];
    b.counter(BytesCount::new(BYTES)).bench_local(|| k.float(Op::Relu, black_box(&x), None, &mut y));
}

#[divan::bench(args = ["best", "scalar-level"])]
fn f32_leaky(b: Bencher, level: &str) {
    let k = if level == "best" { best() } else { scalar() };
    let x = random_f32(BYTES / 4);
    let mut y = vec![0f32; x.len()];
    b.counter(BytesCount::new(BYTES)).bench_local(|| k.float(Op::Leaky(Slope::All(0.01)), black_box(&x), None, &mut y));
}

/// relu with the fused statistics (`apply --stats`, `stats`), and the first pass of an
/// auto-range histogram: the finite min and max alone.
#[divan::bench(args = ["stats", "range"])]
fn f32_relu_with(b: Bencher, what: &str) {
    let x = random_f32(BYTES / 4);
    let mut y = vec![0f32; x.len()];
    let k = best();
    b.counter(BytesCount::new(BYTES)).bench_local(|| match what {
        "stats" => k.float_stats(Op::Relu, black_box(&x), None, &mut y, 0.0),
        _ => k.float_range(Op::Relu, black_box(&x), None, &mut y),
    });
}

#[divan::bench]
fn f64_relu(b: Bencher) {
    let x: Vec<f64> = random_f32(BYTES / 8).into_iter().map(f64::from).collect();
    let mut y = vec![0f64; x.len()];
    b.counter(BytesCount::new(BYTES)).bench_local(|| best().float(Op::Relu, black_box(&x), None, &mut y));
}

#[divan::bench]
fn f64_leaky(b: Bencher) {
    let x: Vec<f64> = random_f32(BYTES / 8).into_iter().map(f64::from).collect();
    let mut y = vec![0f64; x.len()];
    b.counter(BytesCount::new(BYTES))
        .bench_local(|| best().float(Op::Leaky(Slope::All(0.01)), black_box(&x), None, &mut y));
}

#[divan::bench(args = ["best", "scalar-level"])]
fn f16_relu(b: Bencher, level: &str) {
    let k = if level == "best" { best() } else { scalar() };
    let x: Vec<u16> = random_f32(BYTES / 2).into_iter().map(act::f32_to_f16).collect();
    let mut y = vec![0u16; x.len()];
    b.counter(BytesCount::new(BYTES)).bench_local(|| k.half(Op::Relu, black_box(&x), None, &mut y));
}

#[divan::bench(args = ["best", "scalar-level"])]
fn f16_leaky(b: Bencher, level: &str) {
    let k = if level == "best" { best() } else { scalar() };
    let x: Vec<u16> = random_f32(BYTES / 2).into_iter().map(act::f32_to_f16).collect();
    let mut y = vec![0u16; x.len()];
    b.counter(BytesCount::new(BYTES)).bench_local(|| k.half(Op::Leaky(Slope::All(0.01)), black_box(&x), None, &mut y));
}

#[divan::bench(args = ["best", "scalar-level"])]
fn bf16_relu(b: Bencher, level: &str) {
    let k = if level == "best" { best() } else { scalar() };
    let x: Vec<u16> = random_f32(BYTES / 2).into_iter().map(act::f32_to_bf16).collect();
    let mut y = vec![0u16; x.len()];
    b.counter(BytesCount::new(BYTES)).bench_local(|| k.bf16(Op::Relu, black_box(&x), None, &mut y));
}

#[divan::bench(args = ["best", "scalar-level"])]
fn bf16_leaky(b: Bencher, level: &str) {
    let k = if level == "best" { best() } else { scalar() };
    let x: Vec<u16> = random_f32(BYTES / 2).into_iter().map(act::f32_to_bf16).collect();
    let mut y = vec![0u16; x.len()];
    b.counter(BytesCount::new(BYTES)).bench_local(|| k.bf16(Op::Leaky(Slope::All(0.01)), black_box(&x), None, &mut y));
}

/// What a naive loop does: one data-dependent branch per element.
#[divan::bench(args = ["random signs", "sorted signs"])]
fn f32_relu_branchy_loop(b: Bencher, signs: &str) {
    let mut x = random_f32(BYTES / 4);
    if signs == "sorted signs" {
        x.sort_by(|a, b| a.total_cmp(b));
    }
    let mut y = vec![0f32; x.len()];
    b.counter(BytesCount::new(BYTES)).bench_local(|| {
        for (o, &v) in y.iter_mut().zip(black_box(&x)) {
            // black_box on the condition keeps it a real branch instead of a select
            if black_box(v < 0.0) {
                *o = 0.0;
            } else {
                *o = v;
            }
        }
    });
}

/// Histogram counting (100 bins over -4..4) of relu outputs (half exact zeros, which sit on an
/// edge) and of raw values; `apply --stats --bins` pays this on top of the kernel.
#[divan::bench(args = ["relu-out", "raw"])]
fn f32_hist100(b: Bencher, data: &str) {
    let mut x = random_f32(BYTES / 4);
    if data == "relu-out" {
        x.iter_mut().for_each(|v| *v = v.max(0.0));
    }
    let bins = std::sync::Arc::new(relu::hist::Bins::new(-4.0, 4.0, 100).expect("valid bins"));
    let mut h = relu::hist::Histogram::new(bins);
    b.counter(BytesCount::new(BYTES)).bench_local(|| h.add::<f32>(black_box(&x)));
}

/// The passes `stats --act relu` makes over a bf16 chunk of 256 units a row: the kernel with the
/// fused statistics (writing the output the per-unit pass reads; and without an output), then
/// the per-unit sums and extremes of the output: `units-f32` as `stats` takes them (f32 lanes,
/// the active counts included), `units` and `active` the two passes it replaced.
#[divan::bench(args = ["kernel", "kernel-no-output", "units", "units-f32", "active"])]
fn bf16_relu_stats(b: Bencher, pass: &str) {
    let k = best();
    let x: Vec<u16> = random_f32(BYTES / 2).into_iter().map(act::f32_to_bf16).collect();
    let mut y = vec![0u16; x.len()];
    k.bf16(Op::Relu, &x, None, &mut y);
    let n = 256;
    let (mut fin, mut sum, mut abs) = (vec![0u32; n], vec![0f64; n], vec![0f64; n]);
    let (mut min, mut max) = (vec![f64::INFINITY; n], vec![f64::NEG_INFINITY; n]);
    let mut counts = vec![0u32; n];
    b.counter(BytesCount::new(BYTES)).bench_local(|| match pass {
        "kernel" => {
            black_box(k.bf16_stats(Op::Relu, black_box(&x), None, &mut y, 0.1));
        }
        "kernel-no-output" => {
            black_box(k.half_stats_only(true, Op::Relu, black_box(&x), 0.1));
        }
        "units" | "units-f32" => {
            let acc = relu::kernel::UnitSlices {
                finite: &mut fin,
                sum: &mut sum,
                abs: &mut abs,
                min: &mut min,
                max: &mut max,
            };
            if pass == "units" {
                k.unit_rows(black_box(&y), acc, true, |h: u16| act::bf16_to_f32(h) as f64);
            } else {
                k.unit_rows_f32(black_box(&y), acc, true, Some(&mut counts), act::bf16_to_f32);
            }
        }
        _ => {
            for row in black_box(&x).chunks_exact(n) {
                k.count_into(row, &mut counts, |h: u16| act::bf16_to_f32(h) > 0.0);
            }
        }
    });
}
