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

use std::cell::OnceCell;

use crate::config::{Config, Profile};
use crate::error::Error;
use crate::restic::{Binary, Restic, Timeouts};

/// How a command that did not fail ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Success,
    /// Finished, but something deserves attention (exit 3).
    Warnings,
}

pub struct Context {
    pub config: Config,
    binary: OnceCell<Binary>,
}

impl Context {
    pub fn new(config: Config) -> Self {
        Context {
            config,
            binary: OnceCell::new(),
        }
    }

    /// The profile called `name`.
    ///
    /// Fails with a usage error listing the profiles that exist.
    pub fn profile(&self, name: &str) -> Result<&Profile, Error> {
        self.config.profiles.get(name).ok_or_else(|| {
            let known: Vec<&str> = self.config.profiles.keys().map(String::as_str).collect();
            Error::Usage(format!(
                "no profile named {name:?} in {} (profiles: {})",
                self.config.file.display(),
                known.join(", ")
            ))
        })
    }

    /// restic bound to `profile`'s repository.
    ///
    /// Fails when restic is missing or too old.
    pub fn restic(&self, profile: &Profile) -> Result<Restic, Error> {
        self.restic_in(profile, &profile.repository)
    }

    /// restic for `profile`'s work on `repository` (its own or a `copy_to` one).
    ///
    /// Fails when restic cannot be found or is too old.
    pub fn restic_in(&self, profile: &Profile, repository: &str) -> Result<Restic, Error> {
        let binary = match self.binary.get() {
            Some(b) => b.clone(),
            None => {
                let b = Binary::locate(self.config.restic_binary.as_deref())?;
                tracing::debug!(path = %b.path.display(), version = %b.version, "using restic");
                self.binary.get_or_init(|| b).clone()
            }
        };
        let repo = self
            .config
            .repositories
            .get(repository)
            .expect("config resolution checked the repository exists")
            .clone();
        let init_lock = self
            .config
            .state_dir
            .join("locks")
            .join(format!("repository-{}.lock", repo.name));
        let options = self.config.restic_options_in(profile, repository);
        Ok(Restic::new(binary, repo, Timeouts::of(profile))
            .with_init_lock(init_lock)
            .with_options(options))
    }
}
