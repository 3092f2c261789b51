//! aarch64: NEON is part of the base ISA, so this level is the generic bodies compiled with it
//! explicitly; f16 converts in software (Rust's f16 NEON intrinsics are not stable yet).

super::levels::level_module!(neon, [#[target_feature(enable = "neon")]], crate::kernel::generic::SoftHalf, crate::kernel::generic::Bf16);
