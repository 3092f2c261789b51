//! Arbitrary bytes as a whole `.npy` file, read end to end: `relu stats` on it (statistics with
//! units), then `relu apply` into `.npy`, CSV and `.safetensors` files (the CSV output reads
//! Fortran-ordered arrays through the transposing view). Errors are expected; panics, hangs,
//! OOMs are findings.
#![no_main]

#[path = "common/mod.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use relu::format::Format;

fuzz_target!(|data: &[u8]| {
    common::run_all(data, "npy", Format::Npy, &[Format::Npy, Format::Csv, Format::Safetensors]);
});
