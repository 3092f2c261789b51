//! Shared by the end-to-end targets: the fuzz input is written to a file with the right
//! extension, then run through `relu::job::Job` exactly as `relu stats` and `relu apply` build
//! their jobs (the format readers are only public through these paths).
#![allow(dead_code)]

use relu::act::{Activation, Func};
use relu::format::Format;
use relu::job::Job;
use relu::options::{ActOptions, Dest, ReadOptions, UnitOptions};
use std::path::PathBuf;

/// A per-process scratch directory (libFuzzer may run several jobs side by side).
pub fn scratch() -> PathBuf {
    let d = std::env::temp_dir().join(format!("relu-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(&d).expect("scratch dir");
    d
}

/// The input written to `input.<ext>` in the scratch directory.
pub fn write_input(data: &[u8], ext: &str) -> PathBuf {
    let p = scratch().join(format!("input.{ext}"));
    std::fs::write(&p, data).expect("write input");
    p
}

fn job(input: PathBuf, from: Format, dest: Dest, units: bool, threads: usize) -> Job {
    Job {
        input,
        read: ReadOptions { format: Some(from), ..Default::default() },
        dest,
        act: ActOptions { act: Some(Activation::Value(Func::Relu)), ..Default::default() },
        units: units.then_some(UnitOptions { axis: Some(1), threshold: 0.01, range_only: false }),
        threads,
        observer: None,
    }
}

/// `relu stats FILE` (statistics, units on axis 1, relu applied), then `relu apply` of the same
/// input into each output format in `outs`. Errors are fine; panics and hangs are the findings.
pub fn run_all(data: &[u8], ext: &str, from: Format, outs: &[Format]) {
    let input = write_input(data, ext);
    let _ = job(input.clone(), from, Dest::Discard, true, 1).run().map(|f| f.stats());
    for (i, &to) in outs.iter().enumerate() {
        let out_ext = match to {
            Format::Npy => "npy",
            Format::Npz => "npz",
            Format::Safetensors => "safetensors",
            Format::Pt => "pt",
            Format::Csv => "csv",
            Format::Tsv => "tsv",
        };
        let out = scratch().join(format!("out{i}.{out_ext}"));
        // not committed: the atomic output's temporary file is dropped
        let _ = job(input.clone(), from, Dest::File(out, to), false, 2).run();
    }
}
