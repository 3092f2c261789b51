//! File formats: each knows its bytes and nothing about activations.

pub mod csv;
pub mod npy;
pub mod npz;

use std::path::Path;

/// A format relu reads and writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Npy,
    Npz,
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
            _ => Format::Npy,
        }
    }

    /// CSV or TSV.
    pub fn is_text(self) -> bool {
        matches!(self, Format::Csv | Format::Tsv)
    }

    /// What the first bytes of a stream say it is: `\x93NUMPY`, `PK\x03\x04`, else text.
    pub fn sniff(head: &[u8]) -> Format {
        if head.starts_with(npy::MAGIC) {
            Format::Npy
        } else if head.starts_with(b"PK\x03\x04") {
            Format::Npz
        } else {
            Format::Csv
        }
    }
}
