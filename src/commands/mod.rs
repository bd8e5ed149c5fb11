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

pub use crate::run::{Context, Status};
