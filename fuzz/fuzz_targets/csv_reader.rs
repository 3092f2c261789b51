//! Arbitrary bytes as a CSV file (and as TSV), read end to end: `relu stats` (block splitter,
//! record scanner, fast number path, statistics), then `relu apply` (relu) into CSV (the
//! no-conversion fast path) and `.npy` (the growing header). Errors are expected; panics, hangs,
//! OOMs are findings.
#![no_main]

#[path = "common/mod.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use relu::format::Format;

fuzz_target!(|data: &[u8]| {
    common::run_all(data, "csv", Format::Csv, &[Format::Csv, Format::Npy]);
    let input = common::write_input(data, "tsv");
    let job = relu::job::Job {
        input,
        read: relu::options::ReadOptions { format: Some(Format::Tsv), ..Default::default() },
        dest: relu::options::Dest::Discard,
        act: Default::default(),
        units: Some(relu::options::UnitOptions { axis: Some(1), threshold: 0.01 }),
        threads: 2,
        observer: None,
    };
    let _ = job.run();
});
