//! Usage mistakes (exit code 2) as opposed to problems with the data (exit code 1), and the `-`
//! path: the two things every layer may need to say about how relu was called.

use anyhow::Result;
use std::fmt;
use std::path::Path;

/// A mistake in how relu was called (exit code 2), as opposed to a problem with the data (1).
#[derive(Debug)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// `Err(UsageError)` as an `anyhow` error.
pub fn usage<T>(msg: impl Into<String>) -> Result<T> {
    Err(UsageError(msg.into()).into())
}

/// `path` is `-` (stdin or stdout).
pub fn is_dash(p: &Path) -> bool {
    p.as_os_str() == "-"
}
