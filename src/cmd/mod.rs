//! One module per subcommand; each has its own `run`. Shared plumbing is in `common`.

pub mod apply;
pub mod apply_csv;
pub mod apply_npz;
pub mod common;
pub mod inspect;
pub mod merge;
pub mod stats;
