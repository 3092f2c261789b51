//! aarch64: NEON is part of the base ISA, so this level is the generic bodies compiled with it
//! explicitly; f16 converts in software (Rust's f16 NEON intrinsics are not stable yet).

use super::generic::{Bf16, SoftHalf};

super::level_module!(neon, [#[target_feature(enable = "neon")]], super::SoftHalf, super::Bf16);
