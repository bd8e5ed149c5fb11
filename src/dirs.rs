//! Directories resticpilot creates and owns: the staging directory, the state directory's
//! `locks`, `status`, `scratch`... They are made without following symbolic links (every step
//! is `mkdirat`/`openat` with `O_NOFOLLOW` from the directory above), with mode 0700, and
//! resticpilot never changes the mode or owner of a directory it did not create.
//!
//! The operator's own paths (the state directory, the parent of a configured `staging_dir`)
//! are followed as configured; everything resticpilot makes below them must be a real
//! directory owned by the user resticpilot runs as. A symlink, a file, another user's
//! directory or one that others can open is refused with an error naming it, never "fixed".

use std::ffi::OsStr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, Stat};
use rustix::io::Errno;

/// A directory that cannot serve as resticpilot's own.
#[derive(Debug, thiserror::Error)]
pub enum DirError {
    #[error(
        "{path} is a symbolic link: resticpilot never follows a link where it keeps its own directory; remove the link{fix}"
    )]
    Symlink { path: PathBuf, fix: Fix },
    #[error("{path} exists and is not a directory; remove it{fix}")]
    NotDirectory { path: PathBuf, fix: Fix },
    #[error(
        "{path} belongs to uid {owner}, not to the user resticpilot runs as (uid {me}): resticpilot uses only directories it owns; remove it so resticpilot creates its own{fix}"
    )]
    NotOwned {
        path: PathBuf,
        owner: u32,
        me: u32,
        fix: Fix,
    },
    #[error(
        "{path} can be opened by other users (mode {mode:04o}): resticpilot keeps private data there and never changes the mode of a directory it did not create; `chmod 700 {path}` if it is yours{fix}"
    )]
    OpenToOthers { path: PathBuf, mode: u32, fix: Fix },
    #[error(
        "{path} can be changed by other users (uid {owner}, mode {mode:04o}): they could replace what resticpilot creates in it; it must belong to root or to the user resticpilot runs as, and be writable only by its owner (`chmod go-w {path}`) or have the sticky bit, as /tmp does{fix}"
    )]
    UnsafeParent {
        path: PathBuf,
        owner: u32,
        mode: u32,
        fix: Fix,
    },
    #[error("cannot {what} {path}: {source}{fix}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
        fix: Fix,
    },
}

/// The config key (or option) that moves a directory elsewhere, appended to an error as
/// "; or set KEY to ...". Empty when there is none.
#[derive(Debug, Clone, Default)]
pub struct Fix(pub String);

impl Fix {
    pub fn key(key: &str) -> Fix {
        Fix(format!(
            " (or set {key} to a directory resticpilot can create)"
        ))
    }
}

impl std::fmt::Display for Fix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A directory resticpilot owns, held open: operations through it never follow a symlink
/// that someone puts in place of it later.
#[derive(Debug)]
pub struct OwnedDir {
    path: PathBuf,
    fd: OwnedFd,
    /// Made by this call (it did not exist before).
    #[cfg_attr(not(test), expect(dead_code, reason = "only the tests ask"))]
    created: bool,
    /// Its permission bits.
    mode: u32,
    fix: Fix,
}

impl OwnedDir {
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether this call made the directory (it did not exist before).
    #[cfg(test)]
    pub fn created(&self) -> bool {
        self.created
    }

    /// Checks that no one else can open the directory (mode 0700 or stricter).
    ///
    /// Fails with [`DirError::OpenToOthers`]; the mode is left as it is.
    pub fn require_private(&self) -> Result<(), DirError> {
        if self.mode & 0o077 != 0 {
            return Err(DirError::OpenToOthers {
                path: self.path.clone(),
                mode: self.mode,
                fix: self.fix.clone(),
            });
        }
        Ok(())
    }

    /// The names in the directory (without `.` and `..`).
    ///
    /// Fails when the directory cannot be read.
    pub fn names(&self) -> Result<Vec<std::ffi::OsString>, DirError> {
        list(self.fd.as_fd()).map_err(|e| self.io("read", &self.path, e))
    }

    /// Whether `name` is a regular file in the directory (a symlink is not).
    pub fn has_file(&self, name: &str) -> bool {
        rustix::fs::statat(&self.fd, name, AtFlags::SYMLINK_NOFOLLOW)
            .is_ok_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::RegularFile)
    }

    /// Removes `name` from the directory: a file or symlink is unlinked (a symlink is never
    /// followed), a directory is emptied the same way and removed.
    ///
    /// Fails with the first entry that cannot be removed.
    pub fn remove(&self, name: &OsStr) -> Result<(), DirError> {
        remove_at(self.fd.as_fd(), &self.path, name)
            .map_err(|(path, e)| self.io("remove", &path, e))
    }

    /// Creates or truncates the file `name` (mode 0600, never through a symlink) with `text`.
    ///
    /// Fails when it cannot be written.
    pub fn write_file(&self, name: &str, text: &[u8]) -> Result<(), DirError> {
        use std::io::Write;
        let path = self.path.join(name);
        let fd = rustix::fs::openat(
            &self.fd,
            name,
            OFlags::WRONLY | OFlags::CREATE | OFlags::TRUNC | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )
        .map_err(|e| self.io("write", &path, e.into()))?;
        std::fs::File::from(fd)
            .write_all(text)
            .map_err(|e| self.io("write", &path, e))
    }

    fn io(&self, what: &'static str, path: &Path, source: std::io::Error) -> DirError {
        DirError::Io {
            what,
            path: path.to_path_buf(),
            source,
            fix: Fix::default(),
        }
    }
}

/// `path` with `.` dropped and `..` applied to what precedes it, without looking at the
/// filesystem (so a `..` never climbs through a symlink).
pub fn lexical(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            // `/..` is `/`; a relative path keeps its leading `..`s.
            Component::ParentDir => match out.components().next_back() {
                Some(Component::Normal(_)) => {
                    out.pop();
                }
                Some(Component::RootDir | Component::Prefix(_)) => {}
                _ => out.push(".."),
            },
            other => out.push(other),
        }
    }
    out
}

/// Opens the directory `dir`, creating what is missing, as a directory resticpilot owns.
///
/// `trusted` is the operator's directory above it (the state directory for everything in it;
/// otherwise `dir`'s parent): it is followed as configured, created with default permissions
/// when missing, and must not be changeable by other users. Every component of `dir` below
/// `trusted` must be a real directory (never a symlink) owned by this user and not writable by
/// others; missing ones are created with mode 0700. `dir` itself must be open to no one else.
/// A directory that existed is never chmodded.
///
/// Fails with a [`DirError`] naming the first component that does not qualify.
pub fn private_dir(trusted: &Path, dir: &Path, fix: &Fix) -> Result<OwnedDir, DirError> {
    let owned = owned_dir(trusted, dir, fix)?;
    owned.require_private()?;
    Ok(owned)
}

/// [`private_dir`] without the last check, that `dir` itself is open to no one else: for a
/// caller with a more telling refusal to make first (staging: "not ours, not empty").
///
/// Fails with a [`DirError`] naming the first component that does not qualify.
pub fn owned_dir(trusted: &Path, dir: &Path, fix: &Fix) -> Result<OwnedDir, DirError> {
    let dir = lexical(dir);
    let trusted = lexical(trusted);
    let (trusted, rel) = match dir.strip_prefix(&trusted) {
        Ok(rel) if !rel.as_os_str().is_empty() => (trusted.clone(), rel.to_path_buf()),
        _ => match (dir.parent(), dir.file_name()) {
            (Some(parent), Some(name)) => (parent.to_path_buf(), PathBuf::from(name)),
            _ => {
                return Err(DirError::NotDirectory {
                    path: dir.clone(),
                    fix: fix.clone(),
                });
            }
        },
    };
    let io = |what, path: &Path, source: std::io::Error| DirError::Io {
        what,
        path: path.to_path_buf(),
        source,
        fix: fix.clone(),
    };
    if let Err(e) = std::fs::create_dir_all(&trusted) {
        return Err(io("create", &trusted, e));
    }
    let mut fd = rustix::fs::open(
        &trusted,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| io("open", &trusted, e.into()))?;
    check_parent(&fd, &trusted, fix)?;
    let me = nix::unistd::geteuid().as_raw();
    let mut path = trusted.clone();
    let mut created = false;
    let mut mode = 0;
    let names: Vec<&OsStr> = rel.iter().collect();
    for (i, name) in names.iter().enumerate() {
        let last = i + 1 == names.len();
        path.push(name);
        if *name == OsStr::new("..") {
            return Err(DirError::NotDirectory {
                path,
                fix: fix.clone(),
            });
        }
        created = match rustix::fs::mkdirat(&fd, *name, Mode::from_raw_mode(0o700)) {
            Ok(()) => true,
            Err(Errno::EXIST) => false,
            Err(e) => return Err(io("create", &path, e.into())),
        };
        let child = open_nofollow(fd.as_fd(), name, &path, fix)?;
        let st = rustix::fs::fstat(&child).map_err(|e| io("inspect", &path, e.into()))?;
        if st.st_uid != me {
            return Err(DirError::NotOwned {
                path,
                owner: st.st_uid,
                me,
                fix: fix.clone(),
            });
        }
        mode = st.st_mode & 0o7777;
        if created {
            // Ours: exactly 0700 whatever the umask.
            rustix::fs::fchmod(&child, Mode::from_raw_mode(0o700))
                .map_err(|e| io("set the mode of", &path, e.into()))?;
            mode = 0o700;
        } else if !last && mode & 0o022 != 0 {
            return Err(DirError::UnsafeParent {
                path,
                owner: st.st_uid,
                mode,
                fix: fix.clone(),
            });
        }
        fd = child;
    }
    Ok(OwnedDir {
        path,
        fd,
        created,
        mode,
        fix: fix.clone(),
    })
}

/// Opens `name` in `parent` as a directory, refusing a symlink or anything else.
fn open_nofollow(
    parent: BorrowedFd<'_>,
    name: &OsStr,
    path: &Path,
    fix: &Fix,
) -> Result<OwnedFd, DirError> {
    match rustix::fs::openat(
        parent,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => Ok(fd),
        Err(e) => {
            let kind = rustix::fs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW)
                .map(|st| FileType::from_raw_mode(st.st_mode));
            Err(match kind {
                Ok(FileType::Symlink) => DirError::Symlink {
                    path: path.to_path_buf(),
                    fix: fix.clone(),
                },
                Ok(FileType::Directory) | Err(_) => DirError::Io {
                    what: "open",
                    path: path.to_path_buf(),
                    source: e.into(),
                    fix: fix.clone(),
                },
                Ok(_) => DirError::NotDirectory {
                    path: path.to_path_buf(),
                    fix: fix.clone(),
                },
            })
        }
    }
}

/// The directory that holds resticpilot's own must not let another user replace them: it
/// belongs to root or to this user, and when others may write to it the sticky bit (as on
/// /tmp) keeps them from renaming what is not theirs.
///
/// Fails with [`DirError::UnsafeParent`].
fn check_parent(fd: &OwnedFd, path: &Path, fix: &Fix) -> Result<(), DirError> {
    let st: Stat = rustix::fs::fstat(fd).map_err(|e| DirError::Io {
        what: "inspect",
        path: path.to_path_buf(),
        source: e.into(),
        fix: fix.clone(),
    })?;
    let me = nix::unistd::geteuid().as_raw();
    let mode = st.st_mode & 0o7777;
    let others_write = mode & 0o022 != 0 && mode & 0o1000 == 0;
    if (st.st_uid != 0 && st.st_uid != me) || others_write {
        return Err(DirError::UnsafeParent {
            path: path.to_path_buf(),
            owner: st.st_uid,
            mode,
            fix: fix.clone(),
        });
    }
    Ok(())
}

/// Checks that the existing directory `dir` (the operator's, such as `verify --scratch DIR`)
/// cannot be changed under resticpilot by another user; see [`check_parent`].
///
/// Fails when it cannot be opened, or another user could replace entries in it.
pub fn check_trusted(dir: &Path, fix: &Fix) -> Result<(), DirError> {
    let fd = rustix::fs::open(
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| DirError::Io {
        what: "open",
        path: dir.to_path_buf(),
        source: e.into(),
        fix: fix.clone(),
    })?;
    check_parent(&fd, dir, fix)
}

fn list(fd: BorrowedFd<'_>) -> std::io::Result<Vec<std::ffi::OsString>> {
    let mut names = Vec::new();
    for entry in rustix::fs::Dir::read_from(fd)? {
        let entry = entry?;
        let name = entry.file_name();
        if name != c"." && name != c".." {
            names.push(OsStr::from_bytes(name.to_bytes()).to_os_string());
        }
    }
    Ok(names)
}

/// Removes `name` in the directory `dir` (at `path`), never following a symlink. On failure,
/// the path that could not be removed and why.
fn remove_at(
    dir: BorrowedFd<'_>,
    path: &Path,
    name: &OsStr,
) -> Result<(), (PathBuf, std::io::Error)> {
    let here = path.join(name);
    let st = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)
        .map_err(|e| (here.clone(), e.into()))?;
    if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
        return rustix::fs::unlinkat(dir, name, AtFlags::empty()).map_err(|e| (here, e.into()));
    }
    let child = rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| (here.clone(), e.into()))?;
    for inner in list(child.as_fd()).map_err(|e| (here.clone(), e))? {
        remove_at(child.as_fd(), &here, &inner)?;
    }
    rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR).map_err(|e| (here, e.into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(p: &Path) -> u32 {
        std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn creates_missing_components_private_and_reopens_them() {
        let base = tempfile::tempdir().unwrap();
        let dir = base.path().join("staging/p");
        let d = private_dir(base.path(), &dir, &Fix::default()).unwrap();
        assert!(d.created());
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&base.path().join("staging")), 0o700);
        let again = private_dir(base.path(), &dir, &Fix::default()).unwrap();
        assert!(!again.created());
    }

    #[test]
    fn a_symlink_anywhere_below_the_trusted_dir_is_refused_not_followed() {
        let base = tempfile::tempdir().unwrap();
        let elsewhere = base.path().join("elsewhere");
        std::fs::create_dir(&elsewhere).unwrap();
        std::fs::set_permissions(&elsewhere, std::fs::Permissions::from_mode(0o700)).unwrap();
        std::os::unix::fs::symlink(&elsewhere, base.path().join("staging")).unwrap();
        let err =
            private_dir(base.path(), &base.path().join("staging/p"), &Fix::default()).unwrap_err();
        assert!(matches!(err, DirError::Symlink { .. }), "{err}");
        assert!(
            err.to_string().contains("staging is a symbolic link"),
            "{err}"
        );
        assert!(
            !elsewhere.join("p").exists(),
            "nothing made through the link"
        );
    }

    #[test]
    fn an_existing_directory_open_to_others_is_refused_and_left_as_it_was() {
        let base = tempfile::tempdir().unwrap();
        let dir = base.path().join("s");
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let err = private_dir(base.path(), &dir, &Fix::default()).unwrap_err();
        assert!(matches!(err, DirError::OpenToOthers { .. }), "{err}");
        assert_eq!(mode(&dir), 0o755, "never chmodded");
    }

    #[test]
    fn removing_never_follows_a_symlink() {
        let base = tempfile::tempdir().unwrap();
        let victim = base.path().join("victim");
        std::fs::create_dir(&victim).unwrap();
        std::fs::write(victim.join("keep"), "x").unwrap();
        let d = private_dir(base.path(), &base.path().join("s"), &Fix::default()).unwrap();
        std::fs::create_dir(d.path().join("sub")).unwrap();
        std::os::unix::fs::symlink(&victim, d.path().join("sub/link")).unwrap();
        std::os::unix::fs::symlink(&victim, d.path().join("link")).unwrap();
        for name in d.names().unwrap() {
            d.remove(&name).unwrap();
        }
        assert!(d.names().unwrap().is_empty());
        assert!(victim.join("keep").exists());
    }

    #[test]
    fn lexical_applies_dot_dot_without_the_filesystem() {
        assert_eq!(lexical(Path::new("/a/b/../c/./d")), Path::new("/a/c/d"));
        assert_eq!(lexical(Path::new("/../..")), Path::new("/"));
    }
}
