//! One module per subcommand; each turns its arguments into settings and runs jobs (`job.rs`).

pub mod apply;
pub mod batch;
pub mod diff;
pub mod discover;
pub mod hist;
pub mod inspect;
pub mod merge;
pub mod parts;
pub mod stats;
pub mod trend;
