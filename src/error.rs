//! The top-level error of a resticpilot invocation and the exit code each kind maps to.
//!
//! Every layer has its own error enum; this one gathers them (the dump's and the restore's
//! live here, so that this module depends on no layer above it) so `main` can print one message and
//! exit with the code DESIGN.md promises: 1 a run failed, 2 usage or config error, 3 warnings.

use crate::config::ConfigErrors;
use crate::dirs::DirError;
use crate::maintenance::MaintenanceError;
use crate::process::ProcessError;
use crate::restic::ResticError;

/// A database source that could not be dumped, with the reason (the tool's own message where
/// there is one).
#[derive(Debug, thiserror::Error)]
#[error("dump of database {database} failed: {reason}")]
pub struct DumpError {
    pub database: String,
    pub reason: String,
}

/// A restore (`restore`, `verify`) that could not be done, refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// The snapshot cannot serve the restore: no manifest, a dump missing from it, ...
    #[error("snapshot {snapshot}: {reason}")]
    Snapshot { snapshot: String, reason: String },
    /// Refused before anything was changed.
    #[error("restore of {what} refused: {reason}")]
    Refused { what: String, reason: String },
    #[error("restore of {what} failed: {reason}")]
    Failed { what: String, reason: String },
    #[error(transparent)]
    Restic(#[from] ResticError),
}

impl RestoreError {
    pub fn failed(what: impl Into<String>, reason: impl Into<String>) -> Self {
        RestoreError::Failed {
            what: what.into(),
            reason: reason.into(),
        }
    }

    pub fn refused(what: impl Into<String>, reason: impl Into<String>) -> Self {
        RestoreError::Refused {
            what: what.into(),
            reason: reason.into(),
        }
    }
}

/// Process exit codes (DESIGN.md, "Command line").
pub mod exit {
    pub const SUCCESS: i32 = 0;
    pub const FAILURE: i32 = 1;
    pub const USAGE: i32 = 2;
    pub const WARNINGS: i32 = 3;
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Config(#[from] ConfigErrors),
    /// A command-line argument that names something the config doesn't have.
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Restic(#[from] ResticError),
    #[error(transparent)]
    Dump(#[from] DumpError),
    #[error(transparent)]
    Process(#[from] ProcessError),
    #[error(transparent)]
    Restore(#[from] RestoreError),
    /// A directory resticpilot would keep its own data in is not safe to use.
    #[error(transparent)]
    Dir(#[from] DirError),
    #[error("maintenance window: {0}")]
    Maintenance(#[from] MaintenanceError),
    #[error("{0}")]
    Busy(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// A run that failed for a reason already reported (for example one of several profiles).
    #[error("{0}")]
    Failed(String),
    /// A run stopped by SIGTERM/SIGINT once its grace period was over.
    #[error(transparent)]
    Interrupted(#[from] crate::signals::Interrupted),
}

impl Error {
    pub fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            what: what.into(),
            source,
        }
    }

    /// The process exit code for this error. Exhaustive on purpose: a new kind of error must
    /// decide its code here.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Config(_) | Error::Usage(_) => exit::USAGE,
            Error::Restic(_)
            | Error::Dump(_)
            | Error::Process(_)
            | Error::Restore(_)
            | Error::Maintenance(_)
            | Error::Dir(_)
            | Error::Busy(_)
            | Error::Io { .. }
            | Error::Failed(_)
            | Error::Interrupted(_) => exit::FAILURE,
        }
    }
}
