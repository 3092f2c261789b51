//! Arbitrary bytes into the `.npy` header parser: `read_header` on the bytes as a file's start,
//! and (when the bytes are text) `parse_header_text` / `parse_literal` on them as header text.
//! Must never panic, whatever the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use relu::format::npy;

fuzz_target!(|data: &[u8]| {
    let mut r = data;
    if let Ok(h) = npy::read_header(&mut r) {
        // what a caller does next with a header it accepted
        let _ = h.dtype();
        let _ = h.dtype_name();
        let _ = npy::shape_repr(&h.shape);
        assert!(h.data_offset as usize <= data.len(), "data offset past the bytes read");
        assert_eq!(h.data_offset as usize, data.len() - r.len(), "reader not left at the first data byte");
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = npy::parse_literal(text);
        for v in [(1, 0), (3, 0)] {
            let _ = npy::parse_header_text(text, v, 0);
        }
    }
});
