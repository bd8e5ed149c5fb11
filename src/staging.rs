//! The staging directory: a fixed path per profile (stable paths keep restic's parent
//! snapshot and dedup stable), mode 0700, emptied before each run and cleared after it.
//!
//! Staging must be a real directory that resticpilot created and owns: a symlink (at the
//! staging path or at any component resticpilot made under the state directory), a file,
//! another user's directory or one others can open is refused, naming it. Emptying a directory
//! is dangerous when the config points at the wrong one, so resticpilot only ever empties a
//! directory it created (it carries its marker file) or an empty one it adopts; and emptying
//! works through the open directory, unlinking a symlink found inside, never following it.

use std::path::Path;

use crate::dirs::{Fix, OwnedDir, owned_dir};
use crate::error::Error;

const MARKER: &str = ".resticpilot-staging";

#[derive(Debug)]
pub struct Staging {
    dir: OwnedDir,
}

impl Staging {
    /// Creates or empties the staging directory `dir`. Below `state_dir` (the default place),
    /// every component must be resticpilot's own; elsewhere, `dir` itself.
    ///
    /// Fails when it cannot be created, is not a private directory of this user, or holds
    /// files but no marker (it is not ours).
    pub fn prepare(dir: &Path, state_dir: &Path) -> Result<Staging, Error> {
        let trusted = if crate::dirs::lexical(dir).starts_with(crate::dirs::lexical(state_dir)) {
            state_dir
        } else {
            dir.parent().unwrap_or(Path::new("/"))
        };
        let owned = owned_dir(trusted, dir, &Fix::key("staging_dir"))?;
        let staging = Staging { dir: owned };
        let names = staging.dir.names()?;
        if !names.is_empty() && !staging.dir.has_file(MARKER) {
            return Err(Error::Failed(format!(
                "staging directory {} is not empty and was not created by resticpilot; refusing to empty it (choose another staging_dir)",
                dir.display()
            )));
        }
        // Dumps hold every row of the databases: nobody else may open the directory. An empty
        // one that is not yet resticpilot's (a mount point) is adopted only when private.
        staging.dir.require_private()?;
        staging.empty()?;
        staging.dir.write_file(
            MARKER,
            b"resticpilot staging directory: emptied before and after every run\n",
        )?;
        Ok(staging)
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes the file `name` in the directory (never through a symlink).
    ///
    /// Fails when it cannot be written.
    pub fn write(&self, name: &str, bytes: &[u8]) -> Result<(), Error> {
        Ok(self.dir.write_file(name, bytes)?)
    }

    /// Removes everything in the directory but the marker, never following a symlink.
    ///
    /// Fails with the first entry that cannot be removed.
    pub fn empty(&self) -> Result<(), Error> {
        for name in self.dir.names()? {
            if name != MARKER {
                self.dir.remove(&name)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn refuses_a_foreign_non_empty_directory() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("precious"), "data").unwrap();
        let state = tempfile::tempdir().unwrap();
        let err = Staging::prepare(dir.path(), state.path())
            .unwrap_err()
            .to_string();
        assert!(err.contains("refusing to empty it"), "{err}");
        assert!(dir.path().join("precious").exists());
    }

    #[test]
    fn empties_its_own_directory_and_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let staging_dir = dir.path().join("s");
        let s = Staging::prepare(&staging_dir, dir.path()).unwrap();
        std::fs::write(staging_dir.join("old.sql"), "x").unwrap();
        std::fs::create_dir(staging_dir.join("sub")).unwrap();
        drop(s);
        let s = Staging::prepare(&staging_dir, dir.path()).unwrap();
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
