//! One module per subcommand, and the context they share: the resolved config and the restic
//! binary (located once, on first need).

pub mod backup;
pub mod check;
pub mod daemon;
pub mod forget;
pub mod health;
pub mod prune;
pub mod restore;
pub mod snapshots;
pub mod status;
pub mod validate;
pub mod verify;

pub use crate::run::Context;

/// How a command that did not fail ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Success,
    /// Finished, but something deserves attention (exit 3).
    Warnings,
}
