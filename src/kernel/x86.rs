//! x86_64 levels: AVX2 (+F16C) and AVX-512. The bodies are `generic`'s, compiled here with the
//! ISA's features enabled; one loop is written out in intrinsics (`exact_stats`, the statistics
//! of relu and the identity on 16-bit floats), bit for bit the generic one.

use super::generic::{prefetch_block, FloatStats, HalfCvt, Observe, COUNT_RUNS};
use std::arch::x86_64::*;

/// [`HalfCvt::exact_stats`] in 256-bit vectors, f16 or (`BF16`) bfloat16: `block_bits` and
/// `end_run` of [`FloatStats<f32>`] written out, bit for bit (vector lane j is the arrays' lane
/// j; each `min`/`max` instruction is the select `extremes_and_sums` spells; the sums in the same
/// order). What the compiler made of the generic loop widened every block twice (relu in f32 for
/// the sums, then relu's bits again for the counts), split relu into 128-bit halves, and kept
/// four accumulators on the stack: 85 instructions a block where this takes ~55.
#[inline(always)]
unsafe fn exact_stats<const BF16: bool>(
    st: &mut FloatStats<f32>,
    x: *const u16,
    y: *mut u16,
    blocks: usize,
    relu: bool,
) {
    let (inf, quiet): (u16, u16) = if BF16 { (0x7f80, 0x0040) } else { (0x7c00, 0x0200) };
    // act::half_below_zero: h − 1 (as i16) below inf − 0x8000
    let (below_thr, minus1) = (_mm256_set1_epi16(inf.wrapping_sub(0x8000) as i16), _mm256_set1_epi16(-1));
    let (abs, inf_v, quiet_v) =
        (_mm256_set1_epi16(0x7fff), _mm256_set1_epi16(inf as i16), _mm256_set1_epi16(quiet as i16));
    let zero = _mm256_setzero_si256();
    let shift = _mm256_set1_pd(st.shift);
    let (mut zh, mut nh) = (_mm256_loadu_si256(st.zh.as_ptr().cast()), _mm256_loadu_si256(st.nh.as_ptr().cast()));
    let (mut min, mut max) = (_mm256_loadu_ps(st.min.as_ptr()), _mm256_loadu_ps(st.max.as_ptr()));
    let (mut s1, mut s2) = (_mm256_loadu_pd(st.s1.as_ptr()), _mm256_loadu_pd(st.s2.as_ptr()));
    let (mut s3, mut s4) = (_mm256_loadu_pd(st.s3.as_ptr()), _mm256_loadu_pd(st.s4.as_ptr()));
    let (mut hi, mut lo) = (_mm256_loadu_pd(st.hi.as_ptr()), _mm256_loadu_pd(st.lo.as_ptr()));
    let mut b = 0;
    while b < blocks {
        let end = b + (blocks - b).min(<FloatStats<f32> as Observe<f32>>::RUN);
        while b < end {
            let p = x.add(b * 16);
            prefetch_block(p);
            let xh = _mm256_loadu_si256(p.cast());
            let below = _mm256_cmpgt_epi16(below_thr, _mm256_add_epi16(xh, minus1));
            nh = _mm256_sub_epi16(nh, below);
            let yh = if relu { _mm256_andnot_si256(below, xh) } else { xh };
            if relu && !y.is_null() {
                // act::relu_half_bits: NaNs quieted as a round trip through f32 would
                let nan = _mm256_cmpgt_epi16(_mm256_and_si256(xh, abs), inf_v);
                let out = _mm256_or_si256(yh, _mm256_and_si256(nan, quiet_v));
                _mm256_storeu_si256(y.add(b * 16).cast(), out);
            }
            zh = _mm256_sub_epi16(zh, _mm256_cmpeq_epi16(_mm256_and_si256(yh, abs), zero));
            // the values as f32: values 0..8 and 8..16 (bf16: the bits above sixteen zeros,
            // the quadwords ordered so each 128-bit half's unpack takes consecutive values)
            let (ya, yb) = if BF16 {
                let q = _mm256_permute4x64_epi64::<0b11_01_10_00>(yh);
                (
                    _mm256_castsi256_ps(_mm256_unpacklo_epi16(zero, q)),
                    _mm256_castsi256_ps(_mm256_unpackhi_epi16(zero, q)),
                )
            } else {
                (_mm256_cvtph_ps(_mm256_castsi256_si128(yh)), _mm256_cvtph_ps(_mm256_extracti128_si256::<1>(yh)))
            };
            // minps/maxps are `a < b ? a : b` / `a > b ? a : b`: the selects, operand for operand
            min = _mm256_min_ps(_mm256_min_ps(yb, ya), min);
            max = _mm256_max_ps(_mm256_max_ps(yb, ya), max);
            let f0 = _mm256_cvtps_pd(_mm256_castps256_ps128(ya));
            let f1 = _mm256_cvtps_pd(_mm256_extractf128_ps::<1>(ya));
            let f2 = _mm256_cvtps_pd(_mm256_castps256_ps128(yb));
            let f3 = _mm256_cvtps_pd(_mm256_extractf128_ps::<1>(yb));
            let half = |f0: __m256d, f1: __m256d| {
                let (d0, d1) = (_mm256_sub_pd(f0, shift), _mm256_sub_pd(f1, shift));
                let (q0, q1) = (_mm256_mul_pd(d0, d0), _mm256_mul_pd(d1, d1));
                (
                    _mm256_add_pd(f0, f1),
                    _mm256_add_pd(q0, q1),
                    _mm256_add_pd(_mm256_mul_pd(q0, d0), _mm256_mul_pd(q1, d1)),
                    _mm256_add_pd(_mm256_mul_pd(q0, q0), _mm256_mul_pd(q1, q1)),
                )
            };
            let (a1, a2, a3, a4) = half(f0, f1);
            let (b1, b2, b3, b4) = half(f2, f3);
            s1 = _mm256_add_pd(s1, _mm256_add_pd(a1, b1));
            s2 = _mm256_add_pd(s2, _mm256_add_pd(a2, b2));
            s3 = _mm256_add_pd(s3, _mm256_add_pd(a3, b3));
            s4 = _mm256_add_pd(s4, _mm256_add_pd(a4, b4));
            b += 1;
        }
        // FloatStats::end_run: the run's sums into the compensated pair (two_sum), exactly
        let s = _mm256_add_pd(hi, s1);
        let bb = _mm256_sub_pd(s, hi);
        let e = _mm256_add_pd(_mm256_sub_pd(hi, _mm256_sub_pd(s, bb)), _mm256_sub_pd(s1, bb));
        (hi, lo, s1) = (s, _mm256_add_pd(lo, e), _mm256_setzero_pd());
        st.runs += 1;
        if st.runs >= COUNT_RUNS {
            _mm256_storeu_si256(st.zh.as_mut_ptr().cast(), zh);
            _mm256_storeu_si256(st.nh.as_mut_ptr().cast(), nh);
            st.flush_counts();
            (zh, nh) = (zero, zero);
        }
    }
    _mm256_storeu_si256(st.zh.as_mut_ptr().cast(), zh);
    _mm256_storeu_si256(st.nh.as_mut_ptr().cast(), nh);
    _mm256_storeu_ps(st.min.as_mut_ptr(), min);
    _mm256_storeu_ps(st.max.as_mut_ptr(), max);
    for (a, v) in
        [(&mut st.s1, s1), (&mut st.s2, s2), (&mut st.s3, s3), (&mut st.s4, s4), (&mut st.hi, hi), (&mut st.lo, lo)]
    {
        _mm256_storeu_pd(a.as_mut_ptr(), v);
    }
    st.counts.elements += 16 * blocks as u64;
}

/// Half-precision conversion with F16C (`vcvtph2ps` / `vcvtps2ph`, round to nearest even).
pub struct F16c;

impl HalfCvt for F16c {
    #[inline(always)]
    unsafe fn load(p: *const u16) -> [f32; 8] {
        std::mem::transmute::<__m256, [f32; 8]>(_mm256_cvtph_ps(_mm_loadu_si128(p as *const __m128i)))
    }
    #[inline(always)]
    unsafe fn store(p: *mut u16, v: [f32; 8]) {
        let h = _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(std::mem::transmute::<[f32; 8], __m256>(v));
        _mm_storeu_si128(p as *mut __m128i, h);
    }
    #[inline(always)]
    unsafe fn exact_stats(obs: &mut FloatStats<f32>, x: *const u16, y: *mut u16, blocks: usize, relu: bool) -> bool {
        exact_stats::<false>(obs, x, y, blocks, relu);
        true
    }
}

/// bf16 with AVX2 integer ops: widening is a shift, narrowing a round to nearest even in
/// integers (subnormals kept, unlike AVX512-BF16's conversion) with NaNs quieted. Intrinsics,
/// because the loop vectorizer otherwise transposes the block loop into gathers.
pub struct Bf16Avx2;

impl HalfCvt for Bf16Avx2 {
    #[inline(always)]
    unsafe fn load(p: *const u16) -> [f32; 8] {
        let w = _mm256_cvtepu16_epi32(_mm_loadu_si128(p as *const __m128i));
        std::mem::transmute::<__m256i, [f32; 8]>(_mm256_slli_epi32::<16>(w))
    }
    #[inline(always)]
    unsafe fn store(p: *mut u16, v: [f32; 8]) {
        let u = std::mem::transmute::<[f32; 8], __m256i>(v);
        let lsb = _mm256_and_si256(_mm256_srli_epi32::<16>(u), _mm256_set1_epi32(1));
        let rounded = _mm256_srli_epi32::<16>(_mm256_add_epi32(u, _mm256_add_epi32(lsb, _mm256_set1_epi32(0x7fff))));
        let abs = _mm256_and_si256(u, _mm256_set1_epi32(0x7fff_ffff));
        let nan = _mm256_cmpgt_epi32(abs, _mm256_set1_epi32(0x7f80_0000));
        let quiet = _mm256_or_si256(_mm256_srli_epi32::<16>(u), _mm256_set1_epi32(0x0040));
        let h = _mm256_blendv_epi8(rounded, quiet, nan);
        // 32 → 16 bits (values fit): pack within 128-bit halves, then put the halves together
        let packed = _mm256_permute4x64_epi64::<0b1000>(_mm256_packus_epi32(h, h));
        _mm_storeu_si128(p as *mut __m128i, _mm256_castsi256_si128(packed));
    }
    #[inline(always)]
    unsafe fn exact_stats(obs: &mut FloatStats<f32>, x: *const u16, y: *mut u16, blocks: usize, relu: bool) -> bool {
        exact_stats::<true>(obs, x, y, blocks, relu);
        true
    }
    super::generic::bf16_scalars!();
}

/// [`Bf16Avx2`] narrowing with AVX-512VL/BW: a mask blend for NaNs and `vpmovdw` to 16 bits.
pub struct Bf16Avx512;

impl HalfCvt for Bf16Avx512 {
    #[inline(always)]
    unsafe fn load(p: *const u16) -> [f32; 8] {
        Bf16Avx2::load(p)
    }
    #[inline(always)]
    unsafe fn store(p: *mut u16, v: [f32; 8]) {
        let u = std::mem::transmute::<[f32; 8], __m256i>(v);
        let hi = _mm256_srli_epi32::<16>(u);
        let lsb = _mm256_and_si256(hi, _mm256_set1_epi32(1));
        let rounded = _mm256_srli_epi32::<16>(_mm256_add_epi32(u, _mm256_add_epi32(lsb, _mm256_set1_epi32(0x7fff))));
        let abs = _mm256_and_si256(u, _mm256_set1_epi32(0x7fff_ffff));
        let nan = _mm256_cmpgt_epu32_mask(abs, _mm256_set1_epi32(0x7f80_0000));
        let h = _mm256_mask_blend_epi32(nan, rounded, _mm256_or_si256(hi, _mm256_set1_epi32(0x0040)));
        _mm_storeu_si128(p as *mut __m128i, _mm256_cvtepi32_epi16(h));
    }
    // no `exact_stats`: `FloatStats` of 16-bit floats runs at AVX2 on AVX-512 machines
    // (`Kernel::level_for`), so this level never observes them with it
    super::generic::bf16_scalars!();
}

super::levels::level_module!(avx2, [#[target_feature(enable = "avx2,f16c")]], crate::kernel::x86::F16c, crate::kernel::x86::Bf16Avx2);
super::levels::level_module!(avx512, [#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,f16c")]], crate::kernel::x86::F16c, crate::kernel::x86::Bf16Avx512);

/// See [`super::Kernel::compress_nonzero_f32`]: `vcompressps` 16 values a step. NaN is not
/// zero (unordered compare), -0 is.
///
/// # Safety
/// The CPU has AVX512F and POPCNT; `x` readable for `n` values, at any alignment (`out`'s
/// length is checked here).
#[target_feature(enable = "avx512f,popcnt")]
pub unsafe fn compress_nonzero_f32_avx512(x: *const f32, n: usize, out: &mut [f32]) -> (usize, u64) {
    assert!(out.len() >= n + 16);
    let (mut m, mut zeros) = (0usize, 0u64);
    for start in (0..n).step_by(16) {
        let live: __mmask16 = if n - start >= 16 { 0xffff } else { (1u16 << (n - start)) - 1 };
        let v = _mm512_maskz_loadu_ps(live, x.add(start));
        let keep = _mm512_mask_cmp_ps_mask::<_CMP_NEQ_UQ>(live, v, _mm512_setzero_ps());
        _mm512_storeu_ps(out.as_mut_ptr().add(m), _mm512_maskz_compress_ps(keep, v));
        m += keep.count_ones() as usize;
        zeros += (live & !keep).count_ones() as u64;
    }
    (m, zeros)
}

/// For each 8-bit lane mask, the indices (one byte each, lowest first) of the set lanes, for
/// `vpermps` to move them to the front: AVX2 has no compress instruction.
static LEFT_PACK: [u64; 256] = {
    let mut t = [0u64; 256];
    let mut m = 0;
    while m < 256 {
        let (mut i, mut k, mut v) = (0, 0, 0u64);
        while i < 8 {
            if (m >> i) & 1 == 1 {
                v |= (i as u64) << (8 * k);
                k += 1;
            }
            i += 1;
        }
        t[m] = v;
        m += 1;
    }
    t
};

/// [`compress_nonzero_f32_avx512`] with AVX2: 8 values a step, packed by a table permutation.
///
/// # Safety
/// The CPU has AVX2 and POPCNT; `x` readable for `n` values, at any alignment (`out`'s length
/// is checked here).
#[target_feature(enable = "avx2,popcnt")]
pub unsafe fn compress_nonzero_f32_avx2(x: *const f32, n: usize, out: &mut [f32]) -> (usize, u64) {
    assert!(out.len() >= n + 16);
    let (mut m, mut zeros) = (0usize, 0u64);
    let whole = n / 8 * 8;
    for start in (0..whole).step_by(8) {
        let v = _mm256_loadu_ps(x.add(start));
        let keep = _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_NEQ_UQ>(v, _mm256_setzero_ps())) as u32;
        let idx = _mm256_cvtepu8_epi32(_mm_loadl_epi64(LEFT_PACK.as_ptr().add(keep as usize) as *const __m128i));
        _mm256_storeu_ps(out.as_mut_ptr().add(m), _mm256_permutevar8x32_ps(v, idx));
        let k = keep.count_ones();
        m += k as usize;
        zeros += (8 - k) as u64;
    }
    for i in whole..n {
        let v = x.add(i).read_unaligned();
        // NaN is kept (unordered), -0 is a zero
        if v != 0.0 {
            out[m] = v;
            m += 1;
        } else {
            zeros += 1;
        }
    }
    (m, zeros)
}

/// See [`super::Kernel::split_codes`]: 16 codes a step, `vpcompressd` packing the certain bins
/// and the positions of the rest, the zeros only counted.
///
/// # Safety
/// The CPU has AVX512F and POPCNT (slice lengths are checked here).
#[target_feature(enable = "avx512f,popcnt")]
pub unsafe fn split_codes_avx512(
    codes: &[u32],
    limit: u32,
    zero: u32,
    sure: &mut [u32],
    rest: &mut [u32],
) -> (usize, usize, u64) {
    assert!(sure.len() >= codes.len() + 16 && rest.len() >= codes.len() + 16);
    let (lim, zer) = (_mm512_set1_epi32(limit as i32), _mm512_set1_epi32(zero as i32));
    let step = _mm512_set1_epi32(16);
    let mut pos = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    let (mut m, mut r, mut zeros) = (0usize, 0usize, 0u64);
    for start in (0..codes.len()).step_by(16) {
        let live: __mmask16 = if codes.len() - start >= 16 { 0xffff } else { (1u16 << (codes.len() - start)) - 1 };
        let v = _mm512_maskz_loadu_epi32(live, codes.as_ptr().add(start) as *const i32);
        let is_sure = _mm512_mask_cmplt_epu32_mask(live, v, lim);
        let is_zero = _mm512_mask_cmpeq_epi32_mask(live, v, zer);
        let other = live & !is_sure & !is_zero;
        _mm512_storeu_si512(sure.as_mut_ptr().add(m) as *mut __m512i, _mm512_maskz_compress_epi32(is_sure, v));
        m += is_sure.count_ones() as usize;
        zeros += is_zero.count_ones() as u64;
        if other != 0 {
            _mm512_storeu_si512(rest.as_mut_ptr().add(r) as *mut __m512i, _mm512_maskz_compress_epi32(other, pos));
            r += other.count_ones() as usize;
        }
        pos = _mm512_add_epi32(pos, step);
    }
    (m, r, zeros)
}

/// See [`super::Kernel::block_hits_f32`]: a block's sixteen values as two vectors, tested
/// against each interval with two compares, the flags or-ed and read with one `movemask`.
/// (The portable body's per-block fold is vectorized across the intervals, with shuffles.)
///
/// # Safety
/// The CPU has AVX2; `x` readable for `n` values, at any alignment (checked against `hits`
/// here).
#[target_feature(enable = "avx2")]
pub unsafe fn block_hits_f32_avx2(x: *const f32, n: usize, ranges: &[(f32, f32)], hits: &mut [bool]) {
    const B: usize = super::generic::HIT_BLOCK;
    assert!(hits.len() * B <= n);
    for (b, hit) in hits.iter_mut().enumerate() {
        let p = x.add(b * B);
        let (v0, v1) = (_mm256_loadu_ps(p), _mm256_loadu_ps(p.add(8)));
        let mut any = _mm256_setzero_ps();
        for &(lo, hi) in ranges {
            // a broadcast from memory is one instruction: no table of vectors to allocate
            let (lo, hi) = (_mm256_set1_ps(lo), _mm256_set1_ps(hi));
            let in0 = _mm256_and_ps(_mm256_cmp_ps::<_CMP_GE_OQ>(v0, lo), _mm256_cmp_ps::<_CMP_LE_OQ>(v0, hi));
            let in1 = _mm256_and_ps(_mm256_cmp_ps::<_CMP_GE_OQ>(v1, lo), _mm256_cmp_ps::<_CMP_LE_OQ>(v1, hi));
            any = _mm256_or_ps(any, _mm256_or_ps(in0, in1));
        }
        *hit = _mm256_movemask_ps(any) != 0;
    }
}
