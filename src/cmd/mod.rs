//! One module per subcommand; each has its own `run`.

pub mod apply;
pub mod inspect;
