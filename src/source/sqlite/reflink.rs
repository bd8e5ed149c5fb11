//! `method: reflink`: a copy-on-write clone of a SQLite database taken under a read lock.
//!
//! A consistent copy of a rollback-journal database makes writers wait for as long as the copy
//! takes (about 3 s per GB at disk speed). A filesystem clone (the FICLONE ioctl, on XFS with
//! reflink or btrfs) shares the file's blocks instead of copying them: it takes milliseconds
//! whatever the size, so writers wait milliseconds.
//!
//! Why the copy is consistent:
//! - **Rollback journal.** A read transaction holds SQLite's SHARED lock. A writer must get the
//!   EXCLUSIVE lock before it changes the database file, and cannot while SHARED is held, so
//!   the file does not change during the clone and holds only committed transactions. The
//!   journal is not needed: it only holds what an uncommitted writer would roll back.
//! - **WAL.** The database is the main file plus the committed frames of the `-wal` file. Both
//!   are cloned while a read transaction is open; that transaction stops the WAL from being
//!   restarted (overwritten from its start) when it reads through the WAL, and stops any
//!   checkpoint from writing the main file when it reads the main file alone. So every page a
//!   checkpoint may write into the main file during the clones is still in the cloned WAL, and
//!   replaying the cloned WAL over the cloned main file, as SQLite's crash recovery does when
//!   the copy is first opened, gives a committed state. Frames of a transaction still being
//!   written are ignored by that recovery (no commit frame, or a checksum that breaks).
//!   The caller folds the cloned WAL into the copy and verifies it.
//!
//! POSIX locks belong to the process, not the descriptor: closing *any* descriptor of the
//! database file drops the locks SQLite holds on it. So the descriptor used for the clone is
//! closed only after the read transaction has ended and the connection is done.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rusqlite::Connection;

/// What a clone attempt did.
#[derive(Debug)]
pub enum Outcome {
    /// `out` holds a clone of the main file, and `out-wal` one of the WAL when `wal` is set.
    Cloned {
        wal: bool,
        /// How long the read transaction (the lock writers may wait on) was held.
        lock_held: Duration,
    },
    /// The filesystem cannot clone here; nothing was written. The reason is for the user.
    Unsupported(String),
}

/// The path SQLite uses for the WAL of the database at `db`.
pub fn wal_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push("-wal");
    PathBuf::from(name)
}

/// Clones the database at `path`, open as `conn` (not in a transaction), into `out` (and its
/// WAL, in WAL mode, into `out-wal`) under one read transaction.
///
/// Fails when the database cannot be read or locked within the connection's busy timeout, or a
/// file cannot be opened or created; a filesystem that cannot clone is not a failure but
/// [`Outcome::Unsupported`], with `out` removed.
pub fn clone_database(conn: &Connection, path: &Path, out: &Path) -> Result<Outcome, String> {
    let journal_mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .map_err(|e| format!("cannot read the journal mode of {}: {e}", path.display()))?;
    let wal_mode = journal_mode.eq_ignore_ascii_case("wal");
    let source = File::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let dest =
        create_new(out).map_err(|e| format!("cannot create the copy {}: {e}", out.display()))?;

    conn.execute_batch("BEGIN")
        .map_err(|e| format!("cannot begin a read transaction: {e}"))?;
    let lock_start = Instant::now();
    // The first read takes the SHARED lock (rollback journal) or the WAL read snapshot.
    let cloned = conn
        .query_row("SELECT count(*) FROM sqlite_schema", [], |r| {
            r.get::<_, i64>(0)
        })
        .map_err(|e| format!("cannot read {} under a read lock: {e}", path.display()))
        .and_then(|_| match clone_file(&dest, &source, out) {
            Some(reason) => Ok(Step::Unsupported(reason)),
            None if wal_mode => clone_wal(path, out),
            None => Ok(Step::Cloned { wal: false }),
        });
    // Ending the transaction releases the lock: writers go on from here.
    let ended = conn
        .execute_batch("COMMIT")
        .map_err(|e| format!("cannot end the read transaction: {e}"));
    let lock_held = lock_start.elapsed();
    drop(dest);
    let result = match (cloned, ended) {
        (Ok(Step::Cloned { wal }), Ok(())) => Ok(Outcome::Cloned { wal, lock_held }),
        (Ok(Step::Unsupported(reason)), _) => Ok(Outcome::Unsupported(reason)),
        (Err(e), _) | (Ok(Step::Cloned { .. }), Err(e)) => Err(e),
    };
    if !matches!(result, Ok(Outcome::Cloned { .. })) {
        let _ = std::fs::remove_file(out);
        let _ = std::fs::remove_file(wal_path(out));
    }
    // Only now, with the transaction over, may the descriptor of the database file close.
    drop(source);
    result
}

enum Step {
    Cloned { wal: bool },
    Unsupported(String),
}

/// Clones the WAL beside `path`, if there is one, to beside `out`.
fn clone_wal(path: &Path, out: &Path) -> Result<Step, String> {
    let wal = wal_path(path);
    let source = match File::open(&wal) {
        Ok(f) => f,
        // No WAL file: every committed page is in the main file.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Step::Cloned { wal: false });
        }
        Err(e) => return Err(format!("cannot open {}: {e}", wal.display())),
    };
    let out_wal = wal_path(out);
    let dest = create_new(&out_wal)
        .map_err(|e| format!("cannot create the copy {}: {e}", out_wal.display()))?;
    Ok(match clone_file(&dest, &source, &out_wal) {
        None => Step::Cloned { wal: true },
        Some(reason) => Step::Unsupported(format!("its WAL could not be cloned: {reason}")),
    })
}

fn create_new(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let _ = std::fs::remove_file(path);
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

/// Clones `source` into `dest`: `None` when done, else why this filesystem (or this pair of
/// filesystems) could not. Any failure is a reason to fall back to copying, which reports
/// real i/o errors itself.
#[cfg(target_os = "linux")]
fn clone_file(dest: &File, source: &File, dest_path: &Path) -> Option<String> {
    use rustix::io::Errno;
    match rustix::fs::ioctl_ficlone(dest, source) {
        Ok(()) => None,
        Err(Errno::XDEV) => Some(format!(
            "{} is on another filesystem than the database: a clone needs both on the same one (set staging_dir to a directory there)",
            dest_path.parent().unwrap_or(dest_path).display()
        )),
        Err(e @ (Errno::OPNOTSUPP | Errno::NOTTY | Errno::INVAL)) => Some(format!(
            "the filesystem cannot clone files ({e}); reflink needs XFS made with reflink=1, or btrfs"
        )),
        Err(e) => Some(format!("cloning into {} failed: {e}", dest_path.display())),
    }
}

#[cfg(not(target_os = "linux"))]
fn clone_file(_: &File, _: &File, _: &Path) -> Option<String> {
    Some("file clones (FICLONE) exist only on Linux".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wal_path_appends_the_suffix() {
        assert_eq!(
            wal_path(Path::new("/data/db.sqlite3")),
            Path::new("/data/db.sqlite3-wal")
        );
    }
}
