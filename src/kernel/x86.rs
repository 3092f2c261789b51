//! x86_64 levels: AVX2 (+F16C) and AVX-512. The bodies are `generic`'s; these wrappers only
//! compile them with the ISA's features enabled.

use super::generic::HalfCvt;
use std::arch::x86_64::*;

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
    super::generic::bf16_scalars!();
}

super::levels::level_module!(avx2, [#[target_feature(enable = "avx2,f16c")]], crate::kernel::x86::F16c, crate::kernel::x86::Bf16Avx2);
super::levels::level_module!(avx512, [#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,f16c")]], crate::kernel::x86::F16c, crate::kernel::x86::Bf16Avx512);

/// See [`super::Kernel::compress_nonzero_f32`]: `vcompressps` 16 values a step. NaN is not
/// zero (unordered compare), -0 is.
///
/// # Safety
/// The CPU has AVX512F and POPCNT (slice lengths are checked here).
#[target_feature(enable = "avx512f,popcnt")]
pub unsafe fn compress_nonzero_f32_avx512(x: &[f32], out: &mut [f32]) -> (usize, u64) {
    assert!(out.len() >= x.len() + 16);
    let (mut m, mut zeros) = (0usize, 0u64);
    for start in (0..x.len()).step_by(16) {
        let live: __mmask16 = if x.len() - start >= 16 { 0xffff } else { (1u16 << (x.len() - start)) - 1 };
        let v = _mm512_maskz_loadu_ps(live, x.as_ptr().add(start));
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
/// The CPU has AVX2 and POPCNT (slice lengths are checked here).
#[target_feature(enable = "avx2,popcnt")]
pub unsafe fn compress_nonzero_f32_avx2(x: &[f32], out: &mut [f32]) -> (usize, u64) {
    assert!(out.len() >= x.len() + 16);
    let (mut m, mut zeros) = (0usize, 0u64);
    let whole = x.len() / 8 * 8;
    for start in (0..whole).step_by(8) {
        let v = _mm256_loadu_ps(x.as_ptr().add(start));
        let keep = _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_NEQ_UQ>(v, _mm256_setzero_ps())) as u32;
        let idx = _mm256_cvtepu8_epi32(_mm_loadl_epi64(LEFT_PACK.as_ptr().add(keep as usize) as *const __m128i));
        _mm256_storeu_ps(out.as_mut_ptr().add(m), _mm256_permutevar8x32_ps(v, idx));
        let k = keep.count_ones();
        m += k as usize;
        zeros += (8 - k) as u64;
    }
    for &v in &x[whole..] {
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
/// The CPU has AVX2 (slice lengths are checked here).
#[target_feature(enable = "avx2")]
pub unsafe fn block_hits_f32_avx2(x: &[f32], ranges: &[(f32, f32)], hits: &mut [bool]) {
    const B: usize = super::generic::HIT_BLOCK;
    assert!(hits.len() * B <= x.len());
    for (b, hit) in hits.iter_mut().enumerate() {
        let p = x.as_ptr().add(b * B);
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
