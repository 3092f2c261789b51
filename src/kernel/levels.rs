//! `level_module!`: one instruction-set level stamped out from `generic.rs`'s bodies. Used by the
//! portable level (`mod.rs`) and the ISA wrappers (`x86.rs`, `aarch64.rs`), below all of them.

/// Stamps out one level: `generic`'s bodies compiled with the given attributes (the ISA's
/// `target_feature`, or none for the portable level) and half-precision converter.
macro_rules! level_module {
    ($name:ident, [$(#[$attr:meta])*], $cvt:ty, $bcvt:ty) => {
        pub(crate) mod $name {
            #[allow(unused_imports)]
            use crate::kernel::generic::{self, Observe, SoftHalf};
            use crate::kernel::ops::{ChunkStats, RawOp};
            use crate::act::{Float, Int};

            /// # Safety
            /// The CPU has the level's features (a `Kernel` is only built for a level
            /// `Level::supported` here), and the pointers are as `generic`'s function of the
            /// same name requires.
            $(#[$attr])*
            pub unsafe fn float<T: Float, O: Observe<T>>(op: RawOp<T>, x: *const T, g: *const T, y: *mut T, n: usize, shift: f64) -> ChunkStats {
                generic::float::<T, O>(op, x, g, y, n, shift)
            }
            /// # Safety
            /// The CPU has the level's features (a `Kernel` is only built for a level
            /// `Level::supported` here), and the pointers are as `generic`'s function of the
            /// same name requires.
            $(#[$attr])*
            pub unsafe fn half<O: Observe<f32>>(op: RawOp<f32>, x: *const u16, g: *const u16, y: *mut u16, n: usize, shift: f64) -> ChunkStats {
                generic::half::<$cvt, O>(op, x, g, y, n, shift)
            }
            /// # Safety
            /// The CPU has the level's features (a `Kernel` is only built for a level
            /// `Level::supported` here), and the pointers are as `generic`'s function of the
            /// same name requires.
            $(#[$attr])*
            pub unsafe fn bhalf<O: Observe<f32>>(op: RawOp<f32>, x: *const u16, g: *const u16, y: *mut u16, n: usize, shift: f64) -> ChunkStats {
                generic::half::<$bcvt, O>(op, x, g, y, n, shift)
            }
            /// # Safety
            /// The CPU has the level's features (a `Kernel` is only built for a level
            /// `Level::supported` here), and the pointers are as `generic`'s function of the
            /// same name requires.
            $(#[$attr])*
            pub unsafe fn bf16_to_f32(x: *const u16, y: *mut f32, n: usize) {
                generic::half_to_f32::<$bcvt>(x, y, n)
            }
            /// # Safety
            /// The CPU has the level's features (a `Kernel` is only built for a level
            /// `Level::supported` here), and the pointers are as `generic`'s function of the
            /// same name requires.
            $(#[$attr])*
            pub unsafe fn f32_to_bf16(x: *const f32, y: *mut u16, n: usize) {
                generic::f32_to_half::<$bcvt>(x, y, n)
            }
            /// # Safety
            /// The CPU has the level's features (a `Kernel` is only built for a level
            /// `Level::supported` here), and the pointers are as `generic`'s function of the
            /// same name requires.
            $(#[$attr])*
            pub unsafe fn int<T: Int, O: Observe<T>>(op: RawOp<()>, x: *const T, g: *const T, y: *mut T, n: usize, shift: f64) -> ChunkStats {
                generic::int::<T, O>(op, x, g, y, n, shift)
            }
            /// # Safety
            /// The CPU has the level's features (a `Kernel` is only built for a level
            /// `Level::supported` here), and the pointers are as `generic`'s function of the
            /// same name requires.
            $(#[$attr])*
            pub unsafe fn convert<A: Copy, B: Copy + Default, F: Fn(A) -> B>(x: *const A, y: *mut B, n: usize, f: F) {
                generic::convert(x, y, n, f)
            }
            /// # Safety
            /// The CPU has the level's features (a `Kernel` is only built for a level
            /// `Level::supported` here), and the pointers are as `generic`'s function of the
            /// same name requires.
            $(#[$attr])*
            pub unsafe fn half_to_f32(x: *const u16, y: *mut f32, n: usize) {
                generic::half_to_f32::<$cvt>(x, y, n)
            }
            /// # Safety
            /// The CPU has the level's features (a `Kernel` is only built for a level
            /// `Level::supported` here), and the pointers are as `generic`'s function of the
            /// same name requires.
            $(#[$attr])*
            pub unsafe fn f32_to_half(x: *const f32, y: *mut u16, n: usize) {
                generic::f32_to_half::<$cvt>(x, y, n)
            }
            /// # Safety
            /// The CPU has the level's features (a `Kernel` is only built for a level
            /// `Level::supported` here), and the pointers are as `generic`'s function of the
            /// same name requires.
            $(#[$attr])*
            pub unsafe fn count_into<T: Copy, F: Fn(T) -> bool>(x: *const T, c: *mut u32, n: usize, f: F) {
                generic::count_into(x, c, n, f)
            }
            /// # Safety
            /// The CPU has the level's features (a `Kernel` is only built for a level
            /// `Level::supported` here), and the pointers are as `generic`'s function of the
            /// same name requires.
            $(#[$attr])*
            pub unsafe fn count<T: Copy, F: Fn(T) -> bool>(x: *const T, n: usize, f: F) -> u32 {
                generic::count(x, n, f)
            }
            /// # Safety
            /// The CPU has the level's features (a `Kernel` is only built for a level
            /// `Level::supported` here), and the pointers are as `generic`'s function of the
            /// same name requires.
            $(#[$attr])*
            pub unsafe fn unit_rows<T: Copy, F: Fn(T) -> f64>(y: *const T, n: usize, rows: usize, acc: generic::UnitLanes, f: F) {
                generic::unit_rows(y, n, rows, acc, f)
            }
            /// # Safety
            /// The CPU has the level's features (a `Kernel` is only built for a level
            /// `Level::supported` here), and the pointers are as `generic`'s function of the
            /// same name requires.
            $(#[$attr])*
            pub unsafe fn unit_rows_finite<T: Copy, F: Fn(T) -> f64>(y: *const T, n: usize, rows: usize, acc: generic::UnitLanes, f: F) {
                generic::unit_rows_finite(y, n, rows, acc, f)
            }
            /// # Safety
            /// The CPU has the level's features (a `Kernel` is only built for a level
            /// `Level::supported` here), and the pointers are as `generic`'s function of the
            /// same name requires.
            $(#[$attr])*
            pub unsafe fn unit_rows_narrow<T: Copy, F: Fn(T) -> f32>(y: *const T, n: usize, rows: usize, acc: generic::UnitLanes, nonneg: bool, active: *mut u32, f: F) {
                if nonneg {
                    generic::unit_rows_narrow::<T, true>(y, n, rows, acc, active, f)
                } else {
                    generic::unit_rows_narrow::<T, false>(y, n, rows, acc, active, f)
                }
            }
            /// # Safety
            /// The CPU has the level's features (a `Kernel` is only built for a level
            /// `Level::supported` here), and the pointers are as `generic`'s function of the
            /// same name requires.
            $(#[$attr])*
            pub unsafe fn key_tops<T: Copy, F: Fn(T) -> f64>(x: *const T, out: *mut u32, n: usize, shift: u32, none: u32, lohi: (u64, u64), f: F) -> (u64, u64) {
                generic::key_tops(x, out, n, shift, none, lohi, f)
            }
            /// # Safety
            /// The CPU has the level's features (a `Kernel` is only built for a level
            /// `Level::supported` here), and the pointers are as `generic`'s function of the
            /// same name requires.
            $(#[$attr])*
            pub unsafe fn block_hits<T: Copy, V: Float, F: Fn(T) -> V>(x: *const T, blocks: usize, ranges: *const (V, V), nr: usize, hits: *mut bool, f: F) {
                generic::block_hits(x, blocks, ranges, nr, hits, f)
            }
            /// # Safety
            /// The CPU has the level's features (a `Kernel` is only built for a level
            /// `Level::supported` here), and the pointers are as `generic`'s function of the
            /// same name requires.
            $(#[$attr])*
            pub unsafe fn unit_run<T: Copy, F: Fn(T) -> f64>(y: *const T, n: usize, f: F) -> crate::kernel::ops::UnitFold {
                generic::unit_run(y, n, f)
            }
            /// # Safety
            /// The CPU has the level's features (a `Kernel` is only built for a level
            /// `Level::supported` here), and the pointers are as `generic`'s function of the
            /// same name requires.
            $(#[$attr])*
            pub unsafe fn bin_index<T: Copy, F: Fn(T) -> f64>(x: *const T, out: *mut u32, n: usize, b: crate::kernel::ops::BinSpec<f64>, f: F) {
                generic::bin_index(x, out, n, b, f)
            }
            /// # Safety
            /// The CPU has the level's features (a `Kernel` is only built for a level
            /// `Level::supported` here), and the pointers are as `generic`'s function of the
            /// same name requires.
            $(#[$attr])*
            pub unsafe fn bin_index32<T: Copy, F: Fn(T) -> f32>(x: *const T, out: *mut u32, n: usize, b: crate::kernel::ops::BinSpec<f32>, f: F) {
                generic::bin_index32(x, out, n, b, f)
            }
        }
    };
}
pub(crate) use level_module;
