//! relu: stream numeric arrays through PyTorch-exact activations.
//!
//! Data flows one way: format reader → chunks → kernel → format writer. `format` reads and writes
//! files, `kernel` computes over slices, `pipeline` wires them chunk by chunk, `cmd` holds one
//! module per subcommand.

/// `eprintln!` that shrugs off a closed stderr (`relu … 2>&1 | head`) instead of panicking, and
/// escapes control characters (a message may quote an input's text: it stays one harmless line).
#[macro_export]
macro_rules! errln {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), "{}", $crate::quote::one_line(&format!($($t)*)));
    }};
}

pub mod act;
pub mod args;
pub mod chunks;
pub mod cli;
pub mod cmd;
pub mod drift;
pub mod dtype;
pub mod fastpath;
pub mod format;
pub mod glob;
pub mod hist;
pub mod inputs;
pub mod job;
pub mod kernel;
pub mod options;
pub mod output;
pub mod par;
pub mod pipeline;
pub mod platform;
pub mod progress;
pub mod quantile;
pub mod quote;
pub mod render;
pub mod report;
pub mod sink;
pub mod source;
pub mod stats;
pub mod table;
pub mod usage;
