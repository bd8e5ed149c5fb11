//! One run of a profile at a time: an advisory lock on a file under the state directory.
//! The kernel releases it when the process ends, however it ends, so a crash never leaves a
//! stale lock behind.

use std::fs::{File, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use crate::dirs::Fix;
use crate::error::Error;

/// Held while a profile runs.
#[derive(Debug)]
pub struct ProfileLock {
    _file: File,
}

impl ProfileLock {
    /// Takes the lock of `profile` under `state_dir`, without waiting.
    ///
    /// Fails with [`Error::Busy`] (naming the holder's pid) when another run holds it, and with
    /// an i/o error when the lock file cannot be created.
    pub fn acquire(state_dir: &Path, profile: &str) -> Result<ProfileLock, Error> {
        let dir = state_dir.join("locks");
        crate::dirs::private_dir(state_dir, &dir, &Fix::key("state_dir"))?;
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
        Ok(ProfileLock { _file: file })
    }
}

/// Creates `dir` as a directory resticpilot owns (mode 0700), or checks that the existing one
/// is: a real directory (never a symlink) of this user that no one else can open. Its parent is
/// the operator's (followed, created when missing). A directory that existed is never chmodded.
/// Under the state directory, prefer [`crate::dirs::private_dir`] with the state directory as
/// the trusted base, which checks every component below it.
///
/// Fails with a message naming the directory that does not qualify.
pub fn create_private_dir(dir: &Path) -> Result<(), Error> {
    let parent = dir.parent().unwrap_or(Path::new("/"));
    crate::dirs::private_dir(parent, dir, &Fix::key("state_dir or staging_dir"))?;
    Ok(())
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
