//! Arbitrary bytes as a `.safetensors`, read end to end: `relu stats` reads every tensor, `relu
//! apply` into a `.safetensors` rewrites every tensor; plus the public API: every tensor's
//! header and source read to its end. Errors are expected; panics, hangs, OOMs are findings.
#![no_main]

#[path = "common/mod.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use relu::format::Format;

fuzz_target!(|data: &[u8]| {
    common::run_all(data, "safetensors", Format::Safetensors, &[Format::Safetensors, Format::Npy]);
    let p = common::write_input(data, "safetensors");
    if let Ok(st) = relu::format::safetensors::SafetensorsFile::open(&p) {
        for t in &st.tensors {
            let h = st.header(t);
            let _ = st.member_name(t);
            if let Ok(mut src) = st.source(t) {
                if let Some(bytes) = h.data_bytes {
                    let mut left = bytes.min(1 << 24) as usize;
                    while left > 0 {
                        let n = left.min(1 << 16);
                        if src.data.next_chunk(n).is_err() {
                            break;
                        }
                        left -= n;
                    }
                }
            }
        }
    }
});
