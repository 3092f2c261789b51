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

super::level_module!(avx2, [#[target_feature(enable = "avx2,f16c")]], super::F16c);
super::level_module!(avx512, [#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,f16c")]], super::F16c);

/// See [`super::Kernel::split_codes`]: 16 codes a step, `vpcompressd` packing the certain bins
/// and the positions of the rest, the zeros only counted.
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
