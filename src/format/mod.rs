//! File formats: each knows its bytes and nothing about activations.

pub mod csv;
pub mod npy;
pub mod npz;
pub mod pickle;
pub mod pt;
pub mod safetensors;

use std::path::Path;

/// How many bytes [`Format::sniff`] looks at (a safetensors header may start with spaces; a
/// `.pt`'s first zip entry name, `<archive>/data.pkl`, starts at byte 30).
pub const SNIFF: usize = 128;

/// A format relu reads and writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Npy,
    Npz,
    Safetensors,
    /// PyTorch's zip format (`.pt`, `.pth`).
    Pt,
    Csv,
    Tsv,
}

impl Format {
    /// The format a path's extension names (`.npy` when it names none relu knows).
    pub fn of_path(p: &Path) -> Format {
        match p.extension().and_then(|e| e.to_str()).map(|e| e.to_ascii_lowercase()).as_deref() {
            Some("csv") | Some("txt") => Format::Csv,
            Some("tsv") | Some("tab") => Format::Tsv,
            Some("npz") => Format::Npz,
            Some("safetensors") => Format::Safetensors,
            Some("pt") | Some("pth") => Format::Pt,
            _ => Format::Npy,
        }
    }

    /// CSV or TSV.
    pub fn is_text(self) -> bool {
        matches!(self, Format::Csv | Format::Tsv)
    }

    /// What the first bytes of a stream (up to [`SNIFF`]) say it is: `\x93NUMPY`, `PK\x03\x04`
    /// (a `.pt` when the first entry's name ends in `data.pkl`, as `torch.save` writes it first,
    /// else an `.npz`), the legacy `.pt`'s pickle magic (refused by the `.pt` reader), a safetensors header (an 8-byte little-endian length, then optional spaces and `{`, as
    /// SPEC §1 says and the JSON parser allows), else text.
    pub fn sniff(head: &[u8]) -> Format {
        if head.starts_with(npy::MAGIC) {
            Format::Npy
        } else if head.starts_with(b"PK\x03\x04") {
            let n = head.get(26..28).map_or(0, |b| u16::from_le_bytes([b[0], b[1]]) as usize);
            match head.get(30..30 + n) {
                Some(name) if name.ends_with(b"data.pkl") => Format::Pt,
                _ => Format::Npz,
            }
        } else if head.starts_with(b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19") {
            Format::Pt
        } else if head.len() >= 9 && head[8..].iter().find(|&&c| c != b' ') == Some(&b'{') {
            Format::Safetensors
        } else {
            Format::Csv
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_safetensors_header_may_start_with_spaces() {
        let mut h = 40u64.to_le_bytes().to_vec();
        h.extend_from_slice(b"   {\"a\":");
        assert_eq!(Format::sniff(&h), Format::Safetensors);
        assert_eq!(Format::sniff(&h[..11]), Format::Csv, "spaces alone are not a header");
        assert_eq!(Format::sniff(b"1.5,2.5,3.5\n4,5,6\n"), Format::Csv);
    }
}
