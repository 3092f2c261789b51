//! Arbitrary bytes as an `.npz`, read end to end: `relu stats` reads every member (statistics of
//! each), `relu apply` into an `.npz` reads and rewrites every member; into `.npy` (one member
//! only). Errors are expected; panics, hangs, OOMs are findings.
#![no_main]

#[path = "common/mod.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use relu::format::Format;

fuzz_target!(|data: &[u8]| {
    common::run_all(data, "npz", Format::Npz, &[Format::Npz, Format::Npy]);
    // the public archive API too: list, then read every member to its end (CRC checked)
    let p = common::write_input(data, "npz");
    if let Ok(mut ar) = relu::format::npz::NpzArchive::open(&p) {
        if let Ok(members) = ar.members() {
            for m in members {
                let name = ar.member_name(&m);
                if let Ok(mut r) = ar.reader(&m) {
                    let _ = relu::format::npz::finish_member(&mut r, &name);
                }
            }
        }
    }
});
