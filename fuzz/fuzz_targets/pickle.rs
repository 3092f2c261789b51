//! Arbitrary bytes as a `.pt`'s `data.pkl`: the restricted unpickler on them, then (when it
//! reads them) the whole `.pt` path: a zip holding them beside storages `data/0` and `data/1`
//! (64 bytes each), opened by `PtFile` (walk, names, bounds), every tensor's source read to its
//! end (contiguous regions and strided views), the container pickled again for a `.pt` output
//! and read back. Refusals are expected; panics, hangs, OOMs are findings.
#![no_main]

#[path = "common/mod.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use relu::format::pickle;
use relu::format::pt::{record_for, PtFile};
use std::io::Write;

fuzz_target!(|data: &[u8]| {
    if pickle::read(data).is_err() {
        return;
    }
    let p = common::scratch().join("input.pt");
    {
        let f = std::fs::File::create(&p).expect("create");
        let mut z = zip::ZipWriter::new(f);
        let o = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
        z.start_file("archive/data.pkl", o).unwrap();
        z.write_all(data).unwrap();
        for key in ["0", "1"] {
            z.start_file(format!("archive/data/{key}"), o).unwrap();
            z.write_all(&[0x3c; 64]).unwrap();
        }
        z.finish().unwrap();
    }
    let Ok(f) = PtFile::open(&p) else { return };
    let mut picked = Vec::new();
    for (i, t) in f.tensors.iter().enumerate() {
        let h = f.header(t);
        let _ = f.member_name(t);
        if let Ok(mut src) = f.source(t) {
            let mut left = h.data_bytes.unwrap_or(0).min(1 << 20) as usize;
            let size = t.dtype.size();
            while left > 0 {
                let n = left.min(4096 / size * size).max(size).min(left);
                if src.data.next_chunk(n).is_err() {
                    break;
                }
                left -= n;
            }
        }
        picked.push(record_for(t.dtype, &t.record.shape, i.to_string(), &t.record).ok());
    }
    if let Ok(tree) = f.rebuild(&picked) {
        let bytes = pickle::Writer::pickle(&tree);
        pickle::read(&bytes).expect("relu's own pickle reads back");
    }
});
