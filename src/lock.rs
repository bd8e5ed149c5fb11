//! One run of a profile at a time: an advisory lock on a file under the state directory.
//! The kernel releases it when the process ends, however it ends, so a crash never leaves a
//! stale lock behind.

use std::fs::{File, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::error::Error;

/// Held while a profile runs.
#[derive(Debug)]
pub struct ProfileLock {
    _file: File,
    path: PathBuf,
}

impl ProfileLock {
    /// Takes the lock of `profile` under `state_dir`, without waiting.
    ///
    /// Fails with [`Error::Busy`] (naming the holder's pid) when another run holds it, and with
    /// an i/o error when the lock file cannot be created.
    pub fn acquire(state_dir: &Path, profile: &str) -> Result<ProfileLock, Error> {
        let dir = state_dir.join("locks");
        create_private_dir(&dir)?;
        let path = dir.join(format!("{profile}.lock"));
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| Error::io(format!("cannot open lock file {}", path.display()), e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                let by = if holder.is_empty() {
                    String::new()
                } else {
                    format!(" (pid {holder})")
                };
                return Err(Error::Busy(format!(
                    "profile {profile} is already running in another resticpilot process{by}; lock file {}",
                    path.display()
                )));
            }
            Err(TryLockError::Error(e)) => {
                return Err(Error::io(format!("cannot lock {}", path.display()), e));
            }
        }
        let _ = file.set_len(0);
        let _ = file.seek(SeekFrom::Start(0));
        let _ = writeln!(file, "{}", std::process::id());
        Ok(ProfileLock { _file: file, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Creates `dir` (and parents) and makes it 0700.
///
/// Fails with a message naming the directory.
pub fn create_private_dir(dir: &Path) -> Result<(), Error> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir)
        .and_then(|_| std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)))
        .map_err(|e| {
            Error::io(
                format!(
                    "cannot create directory {} (set state_dir or staging_dir to a writable place)",
                    dir.display()
                ),
                e,
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_holder_is_refused_and_named() {
        let dir = tempfile::tempdir().unwrap();
        let first = ProfileLock::acquire(dir.path(), "p").unwrap();
        let err = ProfileLock::acquire(dir.path(), "p")
            .unwrap_err()
            .to_string();
        assert!(err.contains("profile p is already running"), "{err}");
        assert!(
            err.contains(&format!("pid {}", std::process::id())),
            "{err}"
        );
        // Other profiles are independent.
        ProfileLock::acquire(dir.path(), "q").unwrap();
        drop(first);
        // A child that another test thread is starting may hold a copy of the descriptor
        // between fork and exec (it is close-on-exec, so only that long): allow for it.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while let Err(e) = ProfileLock::acquire(dir.path(), "p") {
            assert!(
                std::time::Instant::now() < deadline,
                "lock not released: {e}"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
}
