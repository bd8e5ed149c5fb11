//! SQLite back in place: the copy is extracted from the snapshot to a temporary file beside the
//! live one, checked with `PRAGMA integrity_check`, then renamed over the live file in one
//! atomic step. The previous file (and its `-wal`/`-journal`, which belong to it and would
//! corrupt the restored file if left beside it) is kept as `<name>.pre-restore-<timestamp>`.
//! A copy that fails its check never reaches the live path.
//!
//! A database in use is refused unless forced: another process holds one of its files open
//! (`/proc/*/fd`), or holds one of SQLite's locks on them so that a write lock could not be
//! taken (tested with `fcntl(F_GETLK)`, which sees across users and containers and changes
//! nothing: the live file is never opened as a database before it is replaced).

use std::fs::File;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags};

use super::RestoreCheck;
use super::incremental::Chain;
use crate::restic::Restic;
use crate::restore::bound;
use crate::restore::progress::{Counting, Progress};
use crate::restore::{Contents, ManifestDatabase, RestoreError};

/// The files SQLite keeps beside a database. `-wal` and `-journal` hold data of the file they
/// sit beside; `-shm` is an index rebuilt from the `-wal`.
const SIDE_FILES: [&str; 3] = ["-wal", "-journal", "-shm"];

/// A checked copy of a database extracted from a snapshot.
#[derive(Debug, Clone)]
pub struct Extracted {
    pub bytes: u64,
    pub duration: Duration,
    pub tables: Vec<String>,
    /// What the check proved: "hash ok (bit-identical to the backup), quick_check ok".
    pub check: String,
    /// Incremental: base + deltas applied.
    pub chain_length: Option<usize>,
}

/// Gets `db`'s copy out of the snapshot into `dest` (a new file): streamed, or for an
/// incremental dump put together from its chain (`incremental`). Then checks it: when the
/// manifest records a hash, the copy must have it (bit-identical to what the backup checked),
/// then `check` says what SQLite checks follow; without one, `PRAGMA integrity_check`.
///
/// `room` says what to change when `dest`'s disk fills up.
///
/// Fails when restic fails, the disk is full, the copy differs from the backup's or is not a sound SQLite
/// database; `dest` is removed then.
pub fn extract_checked(
    restic: &Restic,
    contents: &Contents,
    db: &ManifestDatabase,
    dest: &Path,
    check: RestoreCheck,
    room: &str,
) -> Result<Extracted, RestoreError> {
    let dir = dest.parent().unwrap_or(Path::new("/"));
    let full = |reason: String| -> RestoreError {
        let size = db.incremental.as_ref().map_or(db.bytes, Chain::bytes);
        let needed = if size > 0 {
            format!(
                "it needs {} (its size at backup)",
                crate::units::human_bytes(size)
            )
        } else {
            "its size is not recorded".to_string()
        };
        RestoreError::failed(
            format!("database {}", db.name),
            format!(
                "no space left in {} for the restored copy ({reason}): {needed}{}; {room}",
                dir.display(),
                crate::space::free_note(dir)
            ),
        )
    };
    let result = extract_inner(restic, contents, db, dest, check);
    match result {
        Err(e) if crate::space::is_full_text(&e.to_string()) => Err(full(match e {
            RestoreError::Failed { reason, .. } => reason,
            other => other.to_string(),
        })),
        other => other,
    }
}

fn extract_inner(
    restic: &Restic,
    contents: &Contents,
    db: &ManifestDatabase,
    dest: &Path,
    check: RestoreCheck,
) -> Result<Extracted, RestoreError> {
    let start = Instant::now();
    let what = format!("database {}", db.name);
    let expected = match (&db.incremental, &db.hash) {
        (Some(chain), Some(h)) if *h != chain.hash => {
            return Err(RestoreError::failed(
                &what,
                format!(
                    "the manifest of snapshot {} gives two different hashes for it",
                    contents.short()
                ),
            ));
        }
        (Some(chain), _) if db.bytes != 0 && db.bytes != chain.bytes() => {
            return Err(RestoreError::failed(
                &what,
                format!(
                    "the manifest of snapshot {} gives two different sizes for it ({} and {} bytes)",
                    contents.short(),
                    db.bytes,
                    chain.bytes()
                ),
            ));
        }
        (Some(chain), _) => Some(chain.hash.clone()),
        (None, h) => h.clone(),
    };
    if dest.symlink_metadata().is_ok() {
        return Err(RestoreError::failed(
            &what,
            format!("cannot create {}: it exists", dest.display()),
        ));
    }
    let guard = Scratch::new(dest.to_path_buf());
    let (bytes, chain_length, fetched_before) = match &db.incremental {
        Some(chain) => {
            let r = super::rebuild::rebuild(restic, contents, db, chain, dest)?;
            (chain.bytes(), Some(r.chain_length), r.fetched_before)
        }
        None => (stream(restic, contents, db, dest)?, None, Duration::ZERO),
    };
    let damaged = |reason: String| {
        RestoreError::failed(
            &what,
            format!(
                "the copy in snapshot {} is damaged: {reason}",
                contents.short()
            ),
        )
    };
    let (tables, done) = match expected {
        Some(hash) => check_with_hash(dest, &hash, check).map_err(damaged)?,
        None => (
            integrity_check(dest).map_err(damaged)?,
            "integrity_check ok".to_string(),
        ),
    };
    guard.keep();
    Ok(Extracted {
        bytes,
        duration: start.elapsed() + fetched_before,
        tables,
        check: done,
        chain_length,
    })
}

/// Streams the dump file of `db` into the new file `dest`; returns its size.
fn stream(
    restic: &Restic,
    contents: &Contents,
    db: &ManifestDatabase,
    dest: &Path,
) -> Result<u64, RestoreError> {
    let what = || format!("database {}", db.name);
    // The manifest's size bounds what is written beside the live database: a file in the
    // snapshot larger than that is not the one backed up (restic stores a sparse giant in a
    // few bytes), and must not fill the disk the application writes to.
    if let Some(need) = bound::recorded(db.bytes) {
        bound::room(dest.parent().unwrap_or(Path::new("/")), need)
            .map_err(|e| RestoreError::failed(what(), e))?;
    }
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(dest)
        .map_err(|e| {
            RestoreError::failed(
                format!("database {}", db.name),
                format!("cannot create {}: {e}", dest.display()),
            )
        })?;
    // Written back while it streams; the fsync below finds little left.
    let flush = crate::restore::flush::Flusher::start(dest);
    let mut progress = Progress::new(format!("extracting {}", db.name), Some(db.bytes));
    let sink = Counting {
        inner: std::io::BufWriter::with_capacity(1 << 20, file),
        progress: &mut progress,
    };
    let sink = bound::dump(restic, contents, &contents.dump_path(db), db.bytes, sink).map_err(
        |e| match e {
            bound::Stop::Larger(reason) => RestoreError::failed(what(), reason),
            bound::Stop::Restic(e) => e.into(),
        },
    )?;
    let file = sink.inner.into_inner().map_err(|e| {
        RestoreError::failed(format!("database {}", db.name), e.error().to_string())
    })?;
    drop(flush);
    file.sync_all().map_err(|e| {
        RestoreError::failed(
            format!("database {}", db.name),
            format!("cannot write {}: {e}", dest.display()),
        )
    })?;
    let bytes = progress.done();
    progress.finish();
    Ok(bytes)
}

/// The copy at `path` must hash to `expected` (`blake3:<hex>`); then `check`'s SQLite check,
/// run beside the hash on the other core. Returns the table names and what was proved.
///
/// Fails with the first difference or problem found.
fn check_with_hash(
    path: &Path,
    expected: &str,
    check: RestoreCheck,
) -> Result<(Vec<String>, String), String> {
    let pragma = match check {
        RestoreCheck::Quick => Some("quick_check"),
        RestoreCheck::Full => Some("integrity_check"),
        RestoreCheck::Hash => None,
    };
    // The hash, the check and the copy's fsync (a rebuilt chain is not synced yet) at once:
    // the hash takes one core, the check the other, the fsync the disk.
    let (hashed, checked, synced) = std::thread::scope(|scope| {
        let hasher = scope.spawn(|| crate::source::sqlite::incremental::hash_file(path));
        let syncer = scope.spawn(|| {
            File::open(path)
                .and_then(|f| f.sync_all())
                .map_err(|e| format!("cannot write it to disk: {e}"))
        });
        let checked = run_check(path, pragma);
        let hashed = hasher
            .join()
            .unwrap_or_else(|_| Err("the hash panicked".into()));
        let synced = syncer
            .join()
            .unwrap_or_else(|_| Err("the fsync panicked".into()));
        (hashed, checked, synced)
    });
    synced?;
    let got = crate::source::sqlite::incremental::hash_text(&hashed?);
    if got != expected {
        return Err(format!(
            "its hash {got} differs from the one recorded at backup ({expected}): it is not the database that was backed up"
        ));
    }
    let tables = checked?;
    let done = match pragma {
        Some(p) => format!("hash ok (bit-identical to the backup), {p} ok"),
        None => "hash ok (bit-identical to the backup)".to_string(),
    };
    Ok((tables, done))
}

/// Runs `PRAGMA integrity_check` on the database at `path` (ours: no one else has it open)
/// and returns its table names. Leaves no `-wal`/`-shm` behind.
///
/// Fails with what the check reported, or why it could not run.
pub fn integrity_check(path: &Path) -> Result<Vec<String>, String> {
    run_check(path, Some("integrity_check"))
}

/// Runs `PRAGMA <pragma>` (when given) on the database at `path` (ours: no one else has it
/// open) and returns its table names. Leaves no `-wal`/`-shm` behind.
fn run_check(path: &Path, pragma: Option<&str>) -> Result<Vec<String>, String> {
    let result = (|| {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| format!("cannot open it: {e}"))?;
        if let Some(pragma) = pragma {
            let mut stmt = conn
                .prepare(&format!("PRAGMA {pragma}"))
                .map_err(|e| format!("{pragma} could not run: {e}"))?;
            let rows: Vec<String> = stmt
                .query_map([], |r| r.get::<_, String>(0))
                .and_then(|rows| rows.collect())
                .map_err(|e| format!("{pragma} failed: {e}"))?;
            drop(stmt);
            if rows != ["ok"] {
                let shown: Vec<&str> = rows.iter().take(5).map(String::as_str).collect();
                return Err(format!("{pragma} reported: {}", shown.join("; ")));
            }
        }
        let tables = crate::source::sqlite::dump::table_names(&conn)?;
        conn.close()
            .map_err(|(_, e)| format!("cannot close it: {e}"))?;
        Ok(tables)
    })();
    for side in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(side_file(path, side));
    }
    result
}

/// Rows per table of the database at `path`, in table order.
///
/// Fails when the database cannot be read.
pub fn row_counts(path: &Path) -> Result<Vec<(String, i64)>, String> {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let mut out = Vec::new();
    for table in crate::source::sqlite::dump::table_names(&conn)? {
        let quoted = format!("\"{}\"", table.replace('"', "\"\""));
        let n: i64 = conn
            .query_row(&format!("SELECT count(*) FROM {quoted}"), [], |r| r.get(0))
            .map_err(|e| format!("cannot count rows of {table}: {e}"))?;
        out.push((table, n));
    }
    drop(conn);
    for side in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(side_file(path, side));
    }
    Ok(out)
}

/// What a restore in place did.
#[derive(Debug, Clone)]
pub struct InPlace {
    pub live: PathBuf,
    /// Where the file it replaced was kept (none when there was no live file).
    pub previous: Option<PathBuf>,
    pub extracted: Extracted,
    /// Who was using the database when `--force` overrode the refusal.
    pub forced_over: Vec<String>,
}

/// Restores `db` from the snapshot over the live database at `live`.
///
/// Fails (changing nothing) when the database is in use and `force` is not set, when the copy
/// fails its check, or when the files cannot be written or renamed.
pub fn restore_in_place(
    restic: &Restic,
    contents: &Contents,
    db: &ManifestDatabase,
    live: &Path,
    force: bool,
    check: RestoreCheck,
) -> Result<InPlace, RestoreError> {
    let what = format!("database {} ({})", db.name, live.display());
    let fail = |reason: String| RestoreError::failed(&what, reason);
    let mut forced_over = in_use(live);
    if !forced_over.is_empty() && !force {
        return Err(refusal(&what, &forced_over));
    }
    let (dir, name) = match (live.parent(), live.file_name()) {
        (Some(dir), Some(name)) => (dir, name.to_string_lossy().into_owned()),
        _ => return Err(fail(format!("{} is not a file path", live.display()))),
    };
    // Before anything is fetched: a directory the copy cannot be written into.
    writable(dir, &db.name).map_err(&fail)?;
    std::fs::create_dir_all(dir)
        .map_err(|e| fail(format!("cannot create {}: {e}", dir.display())))?;
    let tmp = dir.join(format!(
        ".{name}.restore-{}-{}",
        std::process::id(),
        crate::restore::timestamp()
    ));
    let guard = Scratch::new(tmp.clone());
    let extracted = extract_checked(
        restic,
        contents,
        db,
        &tmp,
        check,
        "free space on that filesystem (the copy is written beside the live file, so that it replaces it in one atomic rename), or restore it with --target DIR onto another filesystem and move it into place yourself",
    )?;
    match std::fs::metadata(live) {
        Ok(meta) => copy_ownership(&tmp, meta.mode() & 0o7777, meta.uid(), meta.gid()),
        Err(_) => {
            let parent = std::fs::metadata(dir).map_err(|e| fail(e.to_string()))?;
            copy_ownership(&tmp, 0o640, parent.uid(), parent.gid())
        }
    }
    .map_err(|e| fail(format!("cannot set the mode of {}: {e}", tmp.display())))?;

    // The check took time: look again right before the swap.
    if !force {
        let now = in_use(live);
        if !now.is_empty() {
            return Err(refusal(&what, &now));
        }
    } else if forced_over.is_empty() {
        forced_over = in_use(live);
    }

    let previous = if live.symlink_metadata().is_ok() {
        let kept = crate::restore::unused_name(
            live,
            &format!(".pre-restore-{}", crate::restore::timestamp()),
        );
        // A hard link keeps the old file whole under the new name while the live name still
        // points at it; copying is the fallback on filesystems without links.
        if std::fs::hard_link(live, &kept).is_err() {
            std::fs::copy(live, &kept).map_err(|e| {
                fail(format!(
                    "cannot keep the previous file as {}: {e}",
                    kept.display()
                ))
            })?;
        }
        Some(kept)
    } else {
        None
    };
    for side in SIDE_FILES {
        let stale = side_file(live, side);
        if stale.symlink_metadata().is_err() {
            continue;
        }
        let moved = match (&previous, side) {
            (Some(kept), "-wal" | "-journal") => std::fs::rename(&stale, side_file(kept, side)),
            _ => std::fs::remove_file(&stale),
        };
        moved.map_err(|e| fail(format!("cannot move {} aside: {e}", stale.display())))?;
    }
    std::fs::rename(&tmp, live).map_err(|e| {
        fail(format!(
            "cannot rename {} to {}: {e}",
            tmp.display(),
            live.display()
        ))
    })?;
    guard.keep();
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(InPlace {
        live: live.to_path_buf(),
        previous,
        extracted,
        forced_over,
    })
}

/// Whether this process can write into `dir`, the live database's directory (the copy is
/// written there, then renamed over the live file). A directory that does not exist yet is
/// created later; its nearest existing parent is asked instead.
fn writable(dir: &Path, database: &str) -> Result<(), String> {
    use rustix::fs::Access;
    use rustix::io::Errno;
    let mut at = dir;
    while !at.exists() {
        match at.parent() {
            Some(parent) => at = parent,
            None => return Ok(()),
        }
    }
    match rustix::fs::access(at, Access::WRITE_OK) {
        Ok(()) => Ok(()),
        Err(Errno::ROFS) => Err(format!(
            "{} is on a read-only filesystem, so the database cannot be put back there; nothing \
             was restored. The compose example mounts the application's data read-only into \
             the backup service: restore with the restore override file, which mounts it \
             read-write (docker compose -f compose.yaml -f compose.restore.yaml run --rm \
             --no-deps backup restore PROFILE --database {database}; README, \"Restore with \
             compose\"), or restore a copy with --target DIR and move it into place",
            at.display()
        )),
        Err(e) => Err(format!(
            "this process (uid {}) cannot write into {}: {e}; nothing was restored. Run the \
             restore as the owner of the database's directory, or restore a copy with --target \
             DIR and move it into place",
            nix::unistd::geteuid().as_raw(),
            at.display()
        )),
    }
}

fn refusal(what: &str, users: &[String]) -> RestoreError {
    RestoreError::refused(
        what,
        format!(
            "the database is in use: {}. Stop the application first (for example `docker compose stop <service>`), or pass --force to replace it anyway (the application would keep writing to the old file). The live file was not touched",
            users.join("; ")
        ),
    )
}

fn copy_ownership(path: &Path, mode: u32, uid: u32, gid: u32) -> std::io::Result<()> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    let meta = std::fs::metadata(path)?;
    if (meta.uid(), meta.gid()) != (uid, gid)
        && let Err(e) = std::os::unix::fs::chown(path, Some(uid), Some(gid))
    {
        tracing::warn!(
            "cannot give {} owner {uid}:{gid} ({e}); check the application can open it",
            path.display()
        );
    }
    Ok(())
}

/// `path` with SQLite's side-file suffix (`-wal`, `-shm`, `-journal`) appended.
pub fn side_file(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Who is using the database at `live` (or its side files): processes that hold them open
/// (`/proc/*/fd`, for processes we may look into), and locks that would stop us taking the
/// write lock (seen through `fcntl(F_GETLK)`, which also sees processes of other users and in
/// other containers sharing the file, without taking or changing anything). Empty when it is
/// free or absent.
pub fn in_use(live: &Path) -> Vec<String> {
    let mut files: Vec<(PathBuf, u64, u64)> = Vec::new();
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let p = side_file(live, suffix);
        if let Ok(meta) = std::fs::metadata(&p) {
            files.push((p, meta.dev(), meta.ino()));
        }
    }
    if files.is_empty() {
        return Vec::new();
    }
    let me = std::process::id();
    let mut users: Vec<(u32, String)> = Vec::new();
    let procs = std::fs::read_dir("/proc").into_iter().flatten().flatten();
    for entry in procs {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
            continue; // gone, or another user's process we may not look into
        };
        for fd in fds.flatten() {
            let Ok(meta) = std::fs::metadata(fd.path()) else {
                continue;
            };
            if let Some((p, _, _)) = files
                .iter()
                .find(|(_, dev, ino)| meta.dev() == *dev && meta.ino() == *ino)
            {
                users.push((pid, format!("{} has {} open", process(pid), p.display())));
                break;
            }
        }
    }
    for (pid, path, meaning) in lock_users(live) {
        if pid > 0 && users.iter().any(|(p, _)| *p == pid as u32) {
            continue;
        }
        let who = if pid > 0 {
            process(pid as u32)
        } else {
            "a process outside this container".to_string()
        };
        users.push((
            pid.max(0) as u32,
            format!(
                "{who} holds SQLite's lock on {} ({meaning})",
                path.display()
            ),
        ));
    }
    users.into_iter().map(|(_, s)| s).collect()
}

/// SQLite's own locks (os_unix.c) that show a database in use, as (file suffix, first byte,
/// length, meaning): in WAL mode every open connection holds a read lock on byte 128 of the
/// `-shm` file (the "DMS" slot) for as long as it is open; in rollback mode a transaction
/// locks bytes among the 512 at 1 GiB of the database file (PENDING, RESERVED, SHARED).
const SQLITE_LOCKS: [(&str, i64, i64, &str); 2] = [
    ("-shm", 128, 1, "a connection is open"),
    ("", 0x4000_0000, 512, "a transaction is in progress"),
];

/// The processes holding one of [`SQLITE_LOCKS`] on the files of the database at `live`:
/// (pid, 0 when it is not visible from here; the locked file; what the lock means).
fn lock_users(live: &Path) -> Vec<(i32, PathBuf, &'static str)> {
    SQLITE_LOCKS
        .iter()
        .filter_map(|(suffix, start, len, meaning)| {
            let path = side_file(live, suffix);
            lock_holder(&path, *start, *len).map(|pid| (pid, path, *meaning))
        })
        .collect()
}

/// The pid of a process whose POSIX lock on `len` bytes at `start` of `path` would block a
/// write lock there (0 when it is not visible from here), or `None` when nothing would.
/// Our own locks never count (POSIX locks are per process).
fn lock_holder(path: &Path, start: i64, len: i64) -> Option<i32> {
    use nix::fcntl::{FcntlArg, fcntl};
    use nix::libc;
    let file = File::open(path).ok()?;
    let mut probe = libc::flock {
        l_type: libc::F_WRLCK as libc::c_short,
        l_whence: libc::SEEK_SET as libc::c_short,
        l_start: start,
        l_len: len,
        l_pid: 0,
    };
    fcntl(&file, FcntlArg::F_GETLK(&mut probe)).ok()?;
    (probe.l_type != libc::F_UNLCK as libc::c_short).then_some(probe.l_pid)
}

/// "pid 123 (tracker)".
fn process(pid: u32) -> String {
    match std::fs::read_to_string(format!("/proc/{pid}/comm")) {
        Ok(comm) => format!("pid {pid} ({})", comm.trim()),
        Err(_) => format!("pid {pid}"),
    }
}

/// Removes a temporary database (and side files) unless kept.
struct Scratch {
    path: PathBuf,
    keep: std::cell::Cell<bool>,
}

impl Scratch {
    fn new(path: PathBuf) -> Scratch {
        Scratch {
            path,
            keep: std::cell::Cell::new(false),
        }
    }

    fn keep(&self) {
        self.keep.set(true);
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if !self.keep.get() {
            let _ = std::fs::remove_file(&self.path);
            for side in SIDE_FILES {
                let _ = std::fs::remove_file(side_file(&self.path, side));
            }
        }
    }
}

/// Writes `text` to a new private file; used by tests of this module.
#[cfg(test)]
fn write_new(path: &Path, text: &[u8]) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .unwrap();
    f.write_all(text).unwrap();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integrity_check_reports_damage_and_cleans_up() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good.db");
        let conn = Connection::open(&good).unwrap();
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; CREATE TABLE t (x); CREATE INDEX tx ON t(x);
             WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i < 2000)
             INSERT INTO t SELECT randomblob(100) FROM c;",
        )
        .unwrap();
        drop(conn);
        assert_eq!(integrity_check(&good).unwrap(), ["t"]);
        assert!(!side_file(&good, "-wal").exists());
        assert!(!side_file(&good, "-shm").exists());

        let mut bytes = std::fs::read(&good).unwrap();
        let page = 4096;
        // From the page's header on: damage in row data alone can be invisible to the check.
        for b in &mut bytes[3 * page..3 * page + 400] {
            *b = 0x5a;
        }
        let bad = dir.path().join("bad.db");
        write_new(&bad, &bytes);
        let err = integrity_check(&bad).unwrap_err();
        assert!(
            err.contains("integrity_check") || err.contains("malformed"),
            "{err}"
        );

        let not_db = dir.path().join("text.db");
        write_new(&not_db, b"hello, this is not a database at all.........................................................................................");
        assert!(integrity_check(&not_db).is_err());
    }

    #[test]
    fn a_connection_in_this_process_is_not_a_user_but_another_process_is() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("app.db");
        let conn = Connection::open(&db).unwrap();
        conn.execute_batch("PRAGMA journal_mode=WAL; CREATE TABLE t (x);")
            .unwrap();
        // Our own handle does not count (restore never runs beside the application in-process).
        assert!(in_use(&db).is_empty(), "{:?}", in_use(&db));
        drop(conn);
        let mut holder = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("exec 3<'{}'; exec sleep 30", db.display()))
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let users = loop {
            let users = in_use(&db);
            if !users.is_empty() || Instant::now() > deadline {
                break users;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let _ = holder.kill();
        let _ = holder.wait();
        assert_eq!(users.len(), 1, "{users:?}");
        assert!(
            users[0].contains(&format!("pid {}", holder.id())),
            "{users:?}"
        );
        assert!(users[0].contains("app.db open"), "{users:?}");
    }

    /// A sqlite3 shell in another process, fed through its stdin, answering on its stdout.
    /// When the tests run as root, the shell runs as user nobody: a writer of another user,
    /// whose open files this process may not be able to see in `/proc` (in another container
    /// it could not), only its locks.
    struct Shell(
        std::process::Child,
        std::io::BufReader<std::process::ChildStdout>,
    );

    impl Shell {
        fn open(db: &Path) -> Shell {
            let root = nix::unistd::geteuid().is_root();
            let mut cmd = if root {
                let mut c = std::process::Command::new("setpriv");
                c.args([
                    "--reuid=65534",
                    "--regid=65534",
                    "--clear-groups",
                    "sqlite3",
                ]);
                c
            } else {
                std::process::Command::new("sqlite3")
            };
            let mut child = cmd
                .arg(db)
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .expect("sqlite3 is installed by scripts/install-deps.sh");
            let out = std::io::BufReader::new(child.stdout.take().unwrap());
            Shell(child, out)
        }

        /// Runs `sql` and waits until the shell has done it.
        fn run(&mut self, sql: &str) {
            use std::io::{BufRead, Write};
            let stdin = self.0.stdin.as_mut().unwrap();
            writeln!(stdin, "{sql}\nSELECT 'done';").unwrap();
            stdin.flush().unwrap();
            let mut line = String::new();
            while line.trim() != "done" {
                line.clear();
                assert!(self.1.read_line(&mut line).unwrap() > 0, "sqlite3 quit");
            }
        }
    }

    impl Drop for Shell {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    #[test]
    fn sqlite_locks_of_another_process_are_seen_without_touching_the_database() {
        let dir = tempfile::tempdir().unwrap();
        // The shell may run as another user (see Shell): let it create -shm and journals.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let shared =
            |p: &Path| std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o666)).unwrap();
        // WAL: an idle connection in another process holds the -shm lock while open.
        let wal = dir.path().join("wal.db");
        let conn = Connection::open(&wal).unwrap();
        conn.execute_batch("PRAGMA journal_mode=WAL; CREATE TABLE t (x);")
            .unwrap();
        drop(conn);
        shared(&wal);
        let mut shell = Shell::open(&wal);
        shell.run("SELECT count(*) FROM t;");
        let pid = shell.0.id() as i32;
        let held = lock_users(&wal);
        // (SQLite in WAL mode also keeps a SHARED lock on the database file.)
        assert!(
            held.iter()
                .any(|(p, path, _)| *p == pid && *path == side_file(&wal, "-shm")),
            "{held:?}"
        );
        assert!(
            in_use(&wal)
                .iter()
                .any(|u| u.contains(&format!("pid {pid}")))
        );
        drop(shell);
        assert!(lock_users(&wal).is_empty());

        // Rollback journal: an idle connection holds nothing, an open transaction does.
        let plain = dir.path().join("plain.db");
        let conn = Connection::open(&plain).unwrap();
        conn.execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (1);")
            .unwrap();
        drop(conn);
        shared(&plain);
        let before = std::fs::read(&plain).unwrap();
        let mut shell = Shell::open(&plain);
        shell.run("SELECT count(*) FROM t;");
        assert!(lock_users(&plain).is_empty());
        shell.run("BEGIN; SELECT count(*) FROM t;");
        let pid = shell.0.id() as i32;
        let held = lock_users(&plain);
        assert_eq!(held.len(), 1, "{held:?}");
        assert_eq!((held[0].0, held[0].1.as_path()), (pid, plain.as_path()));
        let users = in_use(&plain);
        assert_eq!(users.len(), 1, "one process, named once: {users:?}");
        assert!(users[0].contains(&format!("pid {pid}")), "{users:?}");
        drop(shell);
        assert_eq!(
            std::fs::read(&plain).unwrap(),
            before,
            "probing changed nothing"
        );
    }
}
