//! SQLite through the online backup API, all pages in one step under one read transaction.
//!
//! Never the sqlite3 shell's `.backup`: it copies 100 pages at a time and restarts whenever a
//! writer commits, so on a busy database it never finishes (DESIGN.md's measurements). One step
//! copies at disk speed; in WAL mode writers keep going meanwhile. `method: vacuum` uses
//! `VACUUM INTO` for a compacted copy instead; `method: reflink` clones the file under a read
//! lock (`reflink`), falling back to the online backup where the filesystem cannot clone.

use std::fs::File;
use std::path::Path;
use std::time::{Duration, Instant};

use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, OpenFlags};

use super::incremental;
use super::reflink::{self, Outcome};
use super::{SqliteMethod, SqliteSource, SqliteVerify};
use crate::source::{Done, Extra};

/// How long the copy waits for a writer's lock to clear (rollback-journal mode) before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(60);

/// Copies the database at `src.path` into `out` and verifies the copy (for `method:
/// incremental`, into its chain instead: `incremental`).
///
/// Fails when the source is missing or not a database, stays locked past the busy timeout, or
/// the copy fails its check.
pub fn dump(src: &SqliteSource, out: &Path) -> Result<(Done, Extra), String> {
    let started = Instant::now();
    let path = &src.path;
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() => {}
        Ok(_) => return Err(format!("{} is not a file", path.display())),
        Err(e) => return Err(format!("cannot open {}: {e}", path.display())),
    }
    let mut warnings = Vec::new();
    if src.convert_to_wal
        && let Err(w) = convert_to_wal(path)
    {
        tracing::warn!(database = %path.display(), "{w}");
        warnings.push(w);
    }
    let source = open_source(path)?;
    // An empty or foreign file opens fine; reading the schema is what proves it is SQLite.
    source
        .query_row("SELECT count(*) FROM sqlite_schema", [], |r| {
            r.get::<_, i64>(0)
        })
        .map_err(|e| format!("{} is not a readable SQLite database: {e}", path.display()))?;
    let journal_mode: String = source
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .map_err(|e| format!("cannot read the journal mode of {}: {e}", path.display()))?;
    let _ = std::fs::remove_file(out);
    // How long the copy held SQLite's read lock: in rollback-journal modes, how long writers
    // were held out (in WAL mode they are not).
    let mut read_lock = Duration::ZERO;
    // What held them: the copy, or an incremental page pass and the copy it gave way to.
    let mut during = "the copy";
    let mut session = None;
    let mut copy = out.to_path_buf();
    let method = match src.method {
        SqliteMethod::Online => {
            read_lock = online_backup(&source, out)?;
            "online backup (one step)".to_string()
        }
        SqliteMethod::Vacuum => {
            let target = out
                .to_str()
                .ok_or_else(|| format!("staging path {} is not UTF-8", out.display()))?;
            let started = Instant::now();
            source
                .execute("VACUUM INTO ?1", [target])
                .map_err(|e| format!("VACUUM INTO failed: {e}"))?;
            read_lock = started.elapsed();
            "vacuum into".to_string()
        }
        SqliteMethod::Reflink => clone_or_copy(&source, path, out, &mut read_lock)?,
        SqliteMethod::Incremental => {
            let inc = src
                .incremental
                .as_ref()
                .ok_or("method incremental without its settings")?;
            let s = incremental::Session::start(inc, path)?;
            let mut after_pass = false;
            if inc.read_live {
                let wal = journal_mode.eq_ignore_ascii_case("wal");
                let live = if wal {
                    read_live(&source, path, &s, src.verify)?
                } else {
                    read_locked(&source, path, &s, src.verify, &mut read_lock)?
                };
                match live {
                    Live::Passed { tables, pass } => match s.needs_base(&pass) {
                        None => {
                            let committed = s.commit(pass)?;
                            let (how, held) = if wal {
                                (
                                    "read in place (one read transaction, no copy)",
                                    Duration::ZERO,
                                )
                            } else {
                                (
                                    "read in place under the read lock (no copy; the previous copy, brought up to date, checked after it)",
                                    read_lock,
                                )
                            };
                            if let Some(w) = hold_warning(
                                path,
                                &journal_mode,
                                held,
                                src.writer_hold_limit,
                                "the page pass",
                            ) {
                                tracing::warn!(database = %path.display(), "{w}");
                                warnings.push(w);
                            }
                            let (mut done, mut extra) = record(
                                path,
                                how.to_string(),
                                tables,
                                &journal_mode,
                                held,
                                warnings,
                            );
                            add_chain(&mut done, &mut extra, committed);
                            return Ok((done, extra));
                        }
                        Some(reason) => {
                            tracing::info!(
                                database = %path.display(),
                                "incremental: a new base is due ({reason}): copying the database for it"
                            );
                            after_pass = true;
                        }
                    },
                    Live::NotUsed { why, after_pass: a } => {
                        tracing::info!(
                            database = %path.display(),
                            "incremental: copying the database instead of reading it in place: {why}"
                        );
                        after_pass = a;
                    }
                }
            }
            copy = s.copy_path();
            // A pass under the read lock that gave way to the copy held writers out too (in WAL
            // mode nothing holds them out, and no hold is warned of).
            if after_pass {
                during = "the page pass and the copy after it";
            }
            read_lock += online_backup(&source, &copy)?;
            session = Some(s);
            "online backup (one step)".to_string()
        }
    };
    if src.method == SqliteMethod::Reflink && src.verify != SqliteVerify::None {
        // A clone is a new file: none of its pages are in the page cache, and the check reads
        // them in b-tree order, a page at a time. One sequential pass first halves the check's
        // time (measured: 8.4 s -> 4.2 s for 1 GB), and restic reads it from memory after.
        read_through(&copy)?;
    }
    tracing::debug!(database = %path.display(), "copy: {:.2}s (read lock {:.2}s)", started.elapsed().as_secs_f64(), read_lock.as_secs_f64());
    drop(source);
    let wal = journal_mode.eq_ignore_ascii_case("wal");
    let held = if wal { Duration::ZERO } else { read_lock };
    if let Some(w) = hold_warning(path, &journal_mode, held, src.writer_hold_limit, during) {
        tracing::warn!(database = %path.display(), "{w}");
        warnings.push(w);
    }
    // The check (CPU-bound, one core) and the hash pass (sequential reads) run side by side.
    let copied = Instant::now();
    let (tables, hashed) = std::thread::scope(|scope| {
        if session.as_ref().is_some_and(|s| s.needs_new_base()) {
            // The copy will be the new base, which the commit fsyncs: its writeback starts
            // now, beside the check, instead of inside the commit (ext4 writes a new file's
            // data before a later fsync's journal commit). Not for a copy that only becomes
            // the previous copy (never fsynced): forcing its writeback at once made the
            // application's commits wait 1-4 s at 8 GiB, against 0.56 s left to the kernel
            // (measured by hand, backup time alike).
            scope.spawn(|| {
                let t = Instant::now();
                let _ = File::open(&copy).and_then(|f| f.sync_data());
                tracing::debug!(database = %path.display(), "copy written back: {:.2}s", t.elapsed().as_secs_f64());
            });
        }
        let hasher = scope.spawn(|| {
            let hashed = match &session {
                Some(s) => s.pass().map(Hashed::Pass),
                None => incremental::hash_file(&copy).map(Hashed::Whole),
            };
            tracing::debug!(database = %path.display(), "hash pass: {:.2}s", copied.elapsed().as_secs_f64());
            hashed
        });
        let tables = verify(&copy, src.verify);
        tracing::debug!(database = %path.display(), "check of the copy: {:.2}s", copied.elapsed().as_secs_f64());
        let hashed = hasher
            .join()
            .unwrap_or_else(|_| Err("the hash pass panicked".into()));
        (tables, hashed)
    });
    let tables = tables?;
    let hashed = hashed?;
    let (mut done, mut extra) = record(path, method, tables, &journal_mode, held, warnings);
    match (hashed, session) {
        (Hashed::Whole(h), _) => extra.hash = Some(incremental::hash_text(&h)),
        (Hashed::Pass(pass), Some(session)) => {
            let committing = Instant::now();
            let committed = session.commit(pass)?;
            tracing::debug!(database = %path.display(), "commit: {:.2}s", committing.elapsed().as_secs_f64());
            add_chain(&mut done, &mut extra, committed);
        }
        (Hashed::Pass(_), None) => unreachable!("a pass needs a session"),
    }
    Ok((done, extra))
}

enum Hashed {
    Whole(blake3::Hash),
    Pass(incremental::PassResult),
}

/// The dump's record of a SQLite copy (its hash or chain added by the caller).
fn record(
    path: &Path,
    method: String,
    tables: Vec<String>,
    journal_mode: &str,
    held: Duration,
    warnings: Vec<String>,
) -> (Done, Extra) {
    let done = Done {
        source: path.display().to_string(),
        method,
        tables,
        databases: Vec::new(),
    };
    let extra = Extra {
        hash: None,
        journal_mode: Some(journal_mode.to_lowercase()),
        writers_held: Some(held),
        chain: None,
        warnings,
    };
    (done, extra)
}

/// What a committed incremental run adds to the dump's record.
fn add_chain(done: &mut Done, extra: &mut Extra, committed: incremental::Committed) {
    done.method = format!("{}; {}", done.method, committed.description);
    extra.hash = Some(committed.chain.hash.clone());
    extra.chain = Some(committed.chain);
}

enum Live {
    /// The check passed and the pages were read, in one snapshot of the database.
    Passed {
        tables: Vec<String>,
        pass: incremental::PassResult,
    },
    /// Why the database is copied instead, and whether a page pass read it first (under a
    /// rollback database's read lock, writers then wait for the pass and the copy).
    NotUsed { why: String, after_pass: bool },
}

/// `method: incremental` on a WAL database: its check and the page pass run inside one read
/// transaction on `source`, the live database, so both see the same snapshot and nothing as
/// large as the database is written (writers go on meanwhile; the WAL cannot be checkpointed
/// past this snapshot until it ends). `Live::NotUsed` when the run must copy instead.
///
/// Fails when the check fails (the live database is damaged) or the pass cannot complete.
fn read_live(
    source: &Connection,
    path: &Path,
    session: &incremental::Session,
    verify: SqliteVerify,
) -> Result<Live, String> {
    let started = Instant::now();
    // The transaction's first read takes the snapshot that the check and the pass both see.
    in_read_transaction(source, path, |page_size, page_count| {
        let mirror = match session.live_mirror(page_size, page_count) {
            Ok(mirror) => mirror,
            Err(why) => {
                return Ok(Live::NotUsed {
                    why,
                    after_pass: false,
                });
            }
        };
        let tables = check(source, verify, "the live database")?;
        let checked = started.elapsed();
        let pass = session.pass_live(source, page_size, page_count, mirror)?;
        tracing::debug!(
            database = %path.display(),
            "read in place: check {:.2}s, page pass {:.2}s",
            checked.as_secs_f64(),
            (started.elapsed() - checked).as_secs_f64()
        );
        Ok(match pass {
            Ok(pass) => Live::Passed { tables, pass },
            Err(why) => Live::NotUsed {
                why,
                after_pass: false,
            },
        })
    })
}

/// Runs `f` with the database's page size and page count inside one read transaction on
/// `source` (its first read takes the snapshot, and in rollback-journal mode the shared lock
/// that writers wait for), then ends it: a read transaction has nothing to keep or undo.
fn in_read_transaction<T>(
    source: &Connection,
    path: &Path,
    f: impl FnOnce(u32, u64) -> Result<T, String>,
) -> Result<T, String> {
    source
        .execute_batch("BEGIN")
        .map_err(|e| format!("cannot begin a read transaction on {}: {e}", path.display()))?;
    let result = (|| {
        let read = |sql: &str| {
            source
                .query_row(sql, [], |r| r.get::<_, i64>(0))
                .map_err(|e| format!("cannot read {} ({sql}): {e}", path.display()))
        };
        read("SELECT count(*) FROM sqlite_schema")?;
        let page_size = u32::try_from(read("PRAGMA page_size")?).unwrap_or(0);
        let page_count = u64::try_from(read("PRAGMA page_count")?).unwrap_or(0);
        f(page_size, page_count)
    })();
    let _ = source.execute_batch("ROLLBACK");
    result
}

/// `method: incremental` on a rollback-journal database whose chain goes on: the page pass
/// reads the live pages inside one read transaction (SQLite's shared lock, which writers wait
/// for, as for a copy; but the pass writes only the delta and the changed pages into the
/// previous copy, not the whole database) and brings the previous copy up to date. The lock is
/// released before the check, which runs on that previous copy once it hashes to the pages
/// the pass read: the bytes checked are the bytes stored. `held` gets how long the lock was
/// held. `Live::NotUsed` when the run must copy instead (a new base due, no previous copy, or
/// a previous copy that does not come out equal to what was read).
///
/// Fails when the check fails (the live database is damaged) or the pass cannot complete.
fn read_locked(
    source: &Connection,
    path: &Path,
    session: &incremental::Session,
    verify: SqliteVerify,
    held: &mut Duration,
) -> Result<Live, String> {
    let started = Instant::now();
    // Writers wait from the first read until the transaction ends.
    let result = in_read_transaction(source, path, |page_size, page_count| {
        match session.live_mirror(page_size, page_count) {
            Ok(mirror) => session.pass_live(source, page_size, page_count, mirror),
            Err(why) => Ok(Err(why)),
        }
    });
    *held += started.elapsed();
    let pass = match result? {
        Ok(pass) => pass,
        Err(why) => {
            return Ok(Live::NotUsed {
                why,
                after_pass: false,
            });
        }
    };
    let passed = started.elapsed();
    let checked = session.check_mirror(&pass, |copy| {
        check_file(
            copy,
            verify,
            "the live database (its pages as read under the read lock)",
        )
    })?;
    tracing::debug!(
        database = %path.display(),
        "read in place under the read lock: page pass {:.2}s, then check of the previous copy {:.2}s",
        passed.as_secs_f64(),
        (started.elapsed() - passed).as_secs_f64()
    );
    Ok(match checked {
        Ok(tables) => Live::Passed { tables, pass },
        Err(why) => Live::NotUsed {
            why,
            after_pass: true,
        },
    })
}

/// A warning when a rollback-journal database kept its writers out for more than half of
/// `limit` (`writer_hold_limit`).
fn hold_warning(
    path: &Path,
    mode: &str,
    held: Duration,
    limit: Duration,
    during: &str,
) -> Option<String> {
    if held.as_secs_f64() <= limit.as_secs_f64() / 2.0 {
        return None;
    }
    Some(format!(
        "database {} (journal mode {mode}) held its writers out for {:.1}s during {during}, more than half of writer_hold_limit ({}s): an application whose writes wait longer than its busy timeout loses them. Switch it to WAL (convert_to_wal: true), use method: reflink on XFS/btrfs, or a maintenance window",
        path.display(),
        held.as_secs_f64(),
        limit.as_secs_f64()
    ))
}

/// `convert_to_wal`: switches a rollback-journal database to WAL, which persists in the file.
///
/// Fails (a warning for the caller; the backup goes on in the current mode) when the file
/// cannot be opened for writing or the switch does not take.
fn convert_to_wal(path: &Path) -> Result<(), String> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| {
        format!(
            "convert_to_wal: cannot open {} for writing ({e}); it stays in its journal mode (mount it read-write for the backup, or switch it by hand)",
            path.display()
        )
    })?;
    conn.busy_timeout(Duration::from_secs(10))
        .map_err(|e| format!("convert_to_wal: {e}"))?;
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .map_err(|e| format!("convert_to_wal: cannot read the journal mode: {e}"))?;
    if mode.eq_ignore_ascii_case("wal") {
        return Ok(());
    }
    let now: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .map_err(|e| {
            format!(
                "convert_to_wal: {} could not be switched from {mode} to WAL: {e}",
                path.display()
            )
        })?;
    if !now.eq_ignore_ascii_case("wal") {
        return Err(format!(
            "convert_to_wal: {} stayed in journal mode {now} (another connection may hold it in exclusive mode)",
            path.display()
        ));
    }
    tracing::warn!(
        database = %path.display(),
        "convert_to_wal: switched {} from journal mode {mode} to WAL (persistent: the application's writers no longer wait for backups; undo with PRAGMA journal_mode=DELETE while the application is stopped)",
        path.display()
    );
    Ok(())
}

fn open_source(path: &Path) -> Result<Connection, String> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(|e| format!("cannot set busy timeout: {e}"))?;
    stop_on_shutdown(&conn);
    Ok(conn)
}

/// Makes statements on `conn` (VACUUM INTO, the checks) stop once a shutdown stops running
/// work. The one-step backup copy cannot be interrupted; it runs at disk speed.
fn stop_on_shutdown(conn: &Connection) {
    conn.progress_handler(10_000, Some(crate::signals::terminating));
}

/// `method: reflink`: a clone under a read lock, else (with a warning) the online backup.
/// `read_lock` gets how long the read lock was held.
fn clone_or_copy(
    source: &Connection,
    path: &Path,
    out: &Path,
    read_lock: &mut Duration,
) -> Result<String, String> {
    match reflink::clone_database(source, path, out)? {
        Outcome::Cloned { wal, lock_held } => {
            *read_lock = lock_held;
            if wal {
                fold_wal(out)?;
            }
            let held_ms = lock_held.as_secs_f64() * 1000.0;
            tracing::info!(
                database = %path.display(),
                lock_held_ms = held_ms,
                "cloned {} (reflink{}); writers waited at most {held_ms:.1} ms for it",
                path.display(),
                if wal { ", with its WAL" } else { "" },
            );
            Ok(format!("reflink (read lock held {held_ms:.1} ms)"))
        }
        Outcome::Unsupported(reason) => {
            tracing::warn!(
                database = %path.display(),
                "reflink is not possible for {}: {reason}; falling back to the online backup (in rollback-journal mode writers wait for the whole copy)",
                path.display()
            );
            *read_lock = online_backup(source, out)?;
            Ok(format!(
                "online backup (one step); reflink not possible: {reason}"
            ))
        }
    }
}

/// Reads the file at `path` once, sequentially, with a small buffer.
fn read_through(path: &Path) -> Result<(), String> {
    use std::io::Read;
    let mut file =
        std::fs::File::open(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        match file.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(_) => {}
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        }
    }
}

/// Folds a cloned WAL (`out-wal`) into the cloned main file `out`, so the copy is one file.
///
/// Opening the copy replays the WAL's committed frames (SQLite's recovery); the checkpoint
/// writes them into the main file, and closing the last connection removes the WAL.
///
/// Fails when the checkpoint does not complete or a WAL is left behind.
fn fold_wal(out: &Path) -> Result<(), String> {
    let wal = reflink::wal_path(out);
    let result = (|| {
        let conn = Connection::open(out)
            .map_err(|e| format!("cannot open the clone {}: {e}", out.display()))?;
        let (busy, _, _): (i64, i64, i64) = conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .map_err(|e| format!("cannot fold the cloned WAL into the copy: {e}"))?;
        if busy != 0 {
            return Err("the checkpoint of the cloned WAL did not complete".to_string());
        }
        conn.close()
            .map_err(|(_, e)| format!("cannot close the clone {}: {e}", out.display()))?;
        match std::fs::metadata(&wal) {
            Ok(m) if m.len() > 0 => Err(format!(
                "the cloned WAL {} was left with {} bytes after the checkpoint",
                wal.display(),
                m.len()
            )),
            _ => Ok(()),
        }
    })();
    // An empty WAL or a shared-memory index left beside the copy must not reach the snapshot.
    let _ = std::fs::remove_file(&wal);
    let mut shm = out.as_os_str().to_owned();
    shm.push("-shm");
    let _ = std::fs::remove_file(shm);
    result
}

/// The online backup of `source` into a new file `out`, all pages in one step; returns how
/// long that step held the source's read lock.
fn online_backup(source: &Connection, out: &Path) -> Result<Duration, String> {
    let mut dest =
        Connection::open(out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    // The copy is a scratch file that restic reads at once and that is thrown away if anything
    // fails: forcing it to disk (fsync) and journaling it buys nothing and costs a second or
    // more per GB on the critical path.
    dest.execute_batch("PRAGMA synchronous = OFF; PRAGMA journal_mode = OFF;")
        .map_err(|e| format!("cannot set up {}: {e}", out.display()))?;
    let started = Instant::now();
    let held = {
        let backup =
            Backup::new(source, &mut dest).map_err(|e| format!("cannot start the backup: {e}"))?;
        loop {
            // -1: every page in one step, so the copy is one consistent read transaction and
            // a concurrent commit cannot restart it.
            let step = Instant::now();
            let result = backup.step(-1);
            match result {
                Ok(StepResult::Done) => break step.elapsed(),
                Ok(StepResult::More) => continue,
                Ok(StepResult::Busy | StepResult::Locked) if started.elapsed() < BUSY_TIMEOUT => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                Ok(StepResult::Busy | StepResult::Locked) => {
                    return Err(format!(
                        "the database stayed locked by a writer for {}s",
                        BUSY_TIMEOUT.as_secs()
                    ));
                }
                Ok(other) => return Err(format!("unexpected backup step result {other:?}")),
                Err(e) => return Err(format!("backup failed: {e}")),
            }
        }
    };
    dest.close()
        .map_err(|(_, e)| format!("cannot close {}: {e}", out.display()))?;
    Ok(held)
}

/// Checks the copy at `path` and returns its table names.
///
/// Fails when the check reports anything but "ok".
pub fn verify(path: &Path, how: SqliteVerify) -> Result<Vec<String>, String> {
    check_file(path, how, "the copy")
}

/// [`verify`] of the file at `path`, which errors call `what`.
fn check_file(path: &Path, how: SqliteVerify, what: &str) -> Result<Vec<String>, String> {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| format!("cannot open {what} {}: {e}", path.display()))?;
    stop_on_shutdown(&conn);
    check(&conn, how, what)
}

/// Runs `how`'s check on `conn` (`what` names the database in errors) and returns its table
/// names.
fn check(conn: &Connection, how: SqliteVerify, what: &str) -> Result<Vec<String>, String> {
    // No mmap_size here: mapped pages count as resident memory, so a memory-mapped check of a
    // 1 GB copy would show resticpilot at 1 GB RSS (measured), for ~0.2 s saved per GB.
    let pragma = match how {
        SqliteVerify::Quick => Some("quick_check"),
        SqliteVerify::Full => Some("integrity_check"),
        SqliteVerify::None => None,
    };
    if let Some(pragma) = pragma {
        let mut stmt = conn
            .prepare(&format!("PRAGMA {pragma}"))
            .map_err(|e| format!("{pragma} could not run on {what}: {e}"))?;
        let rows: Vec<String> = stmt
            .query_map([], |r| r.get::<_, String>(0))
            .and_then(|rows| rows.collect())
            .map_err(|e| format!("{pragma} failed on {what}: {e}"))?;
        if rows != ["ok"] {
            let shown: Vec<&str> = rows.iter().take(5).map(String::as_str).collect();
            return Err(format!("{pragma} on {what} reported: {}", shown.join("; ")));
        }
    }
    table_names(conn)
}

pub fn table_names(conn: &Connection) -> Result<Vec<String>, String> {
    let mut stmt = conn
        .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")
        .map_err(|e| format!("cannot list tables: {e}"))?;
    stmt.query_map([], |r| r.get::<_, String>(0))
        .and_then(|rows| rows.collect())
        .map_err(|e| format!("cannot list tables: {e}"))
}
