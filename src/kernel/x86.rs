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
