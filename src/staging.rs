//! The staging directory: a fixed path per profile (stable paths keep restic's parent
//! snapshot and dedup stable), mode 0700, emptied before each run and cleared after it.
//!
//! Emptying a directory is dangerous when the config points at the wrong one, so resticpilot
//! only ever empties a directory that is empty or carries its own marker file.

use std::path::{Path, PathBuf};

use crate::error::Error;
use crate::lock::create_private_dir;

const MARKER: &str = ".resticpilot-staging";

#[derive(Debug)]
pub struct Staging {
    dir: PathBuf,
}

impl Staging {
    /// Creates or empties the staging directory `dir`.
    ///
    /// Fails when it cannot be created, or when it holds files but no marker (it is not ours).
    pub fn prepare(dir: &Path) -> Result<Staging, Error> {
        create_private_dir(dir)?;
        let marker = dir.join(MARKER);
        let read = std::fs::read_dir(dir).map_err(|e| {
            Error::io(
                format!("cannot read staging directory {}", dir.display()),
                e,
            )
        })?;
        let entries: Vec<_> = read.filter_map(Result::ok).collect();
        if !entries.is_empty() && !marker.exists() {
            return Err(Error::Failed(format!(
                "staging directory {} is not empty and was not created by resticpilot; refusing to empty it (choose another staging_dir)",
                dir.display()
            )));
        }
        let staging = Staging {
            dir: dir.to_path_buf(),
        };
        staging.empty()?;
        std::fs::write(
            &marker,
            "resticpilot staging directory: emptied before and after every run\n",
        )
        .map_err(|e| Error::io(format!("cannot write {}", marker.display()), e))?;
        Ok(staging)
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Removes everything in the directory but the marker.
    ///
    /// Fails with the first entry that cannot be removed.
    pub fn empty(&self) -> Result<(), Error> {
        let read = std::fs::read_dir(&self.dir).map_err(|e| {
            Error::io(
                format!("cannot read staging directory {}", self.dir.display()),
                e,
            )
        })?;
        for entry in read.filter_map(Result::ok) {
            let path = entry.path();
            if entry.file_name() == MARKER {
                continue;
            }
            let result = if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
            result.map_err(|e| Error::io(format!("cannot remove {}", path.display()), e))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_a_foreign_non_empty_directory() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("precious"), "data").unwrap();
        let err = Staging::prepare(dir.path()).unwrap_err().to_string();
        assert!(err.contains("refusing to empty it"), "{err}");
        assert!(dir.path().join("precious").exists());
    }

    #[test]
    fn empties_its_own_directory_and_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let staging_dir = dir.path().join("s");
        let s = Staging::prepare(&staging_dir).unwrap();
        std::fs::write(staging_dir.join("old.sql"), "x").unwrap();
        std::fs::create_dir(staging_dir.join("sub")).unwrap();
        drop(s);
        let s = Staging::prepare(&staging_dir).unwrap();
        let names: Vec<_> = std::fs::read_dir(s.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, [MARKER]);
        let mode = std::fs::metadata(&staging_dir)
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o700);
    }
}
