//! MySQL / MariaDB back from a snapshot: `restic dump` streamed into the `mariadb`/`mysql`
//! client, never held in memory or on disk, in two passes over the same content-addressed
//! file. The first pass checks the whole dump without touching the server (`sqlcheck`: its
//! trailer, and that it can reach no database but the one being restored); only a dump that
//! passed is streamed again into the client, its database names mapped to the target's.
//! Afterwards the restored table list is compared with the dump's.
//!
//! A restore over an existing database keeps a copy of it first; when the load fails
//! midway (a server error, a full disk, a bound ran out, the client killed) the database is
//! put back from that copy, and the message says so.
//!
//! The client runs with `--binary-mode` (no client commands but DELIMITER) and, where the
//! client has it, `--sandbox`; the connection (the source's `restore_user` /
//! `restore_password_file`, else its `user` and `password_file`) goes through the same
//! in-memory options file as the dump: no password in argv or on disk. Every wait is bounded:
//! `--connect-timeout`, the server's `lock_wait_timeout` and `innodb_lock_wait_timeout` for
//! the session, and `restore_timeout` for the whole load.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::sqlcheck::Scanner;
use super::{MysqlSelection, MysqlSource};
use crate::process::{Cmd, describe_status};
use crate::restic::Restic;
use crate::restore::bound::{self, Bounded};
use crate::restore::progress::Progress;
use crate::restore::{Contents, ManifestDatabase, RestoreError};
use crate::source::mysql::dump::{Credentials, client_tool, dump_tool, is_disk_full};
use crate::units::show_duration;

/// A client connection to the source's server, as the restore account.
pub struct Conn {
    client: PathBuf,
    creds: Credentials,
    /// The source with the restore account's user and password in place.
    source: MysqlSource,
    /// Whether the client has `--sandbox` (MariaDB 10.5.25, 10.11.8 and later).
    sandbox: bool,
    /// Whether the client has `--print-query-on-error` (MariaDB 10.x), which would quote a
    /// whole failing statement (megabytes of rows) in the error.
    quiet: bool,
}

/// Why the server could not be used.
#[derive(Debug)]
pub struct ConnectError {
    /// The server did not answer at all (as opposed to refusing the account).
    pub unreachable: bool,
    pub message: String,
}

impl Conn {
    /// Prepares a connection to `src`'s server as its restore account (nothing is contacted).
    ///
    /// Fails when no client is installed or the password file cannot be read.
    pub fn new(src: &MysqlSource) -> Result<Conn, String> {
        let mut source = src.clone();
        if let Some(user) = &src.restore_user {
            source.user = Some(user.clone());
            source.password_file = src.restore_password_file.clone();
        } else if let Some(file) = &src.restore_password_file {
            source.password_file = Some(file.clone());
        }
        let client = client_tool(&dump_tool(src)?)?;
        let creds = Credentials::new(&source)?;
        let help = Cmd::new(&client)
            .arg("--help")
            .time_limit(Duration::from_secs(30), "connect_timeout")
            .output()
            .map(|o| o.stdout_string())
            .unwrap_or_default();
        Ok(Conn {
            client,
            creds,
            source,
            sandbox: help.contains("--sandbox"),
            quiet: help.contains("print-query-on-error"),
        })
    }

    /// The client with the connection options and the session's bounds, nothing else.
    pub fn client(&self) -> Cmd {
        let lock = self.source.lock_wait_timeout.as_secs().clamp(1, 31_536_000);
        self.creds
            .command(&self.client)
            .arg(format!(
                "--connect-timeout={}",
                self.source.connect_timeout.as_secs().max(1)
            ))
            // A lock held by another session ends the statement after lock_wait_timeout, and
            // the dump is read as the scanner read it (no ANSI_QUOTES, backslash escapes on).
            .arg(format!(
                "--init-command=SET SESSION lock_wait_timeout={lock}, innodb_lock_wait_timeout={lock}, sql_mode='NO_ENGINE_SUBSTITUTION'"
            ))
    }

    /// The client that loads a dump: no client commands, a time limit on the whole load.
    fn loader(&self) -> Cmd {
        // A lost connection ends the load (and puts the database back) rather than
        // reconnecting into a session that lost the dump's USE and settings.
        let mut cmd = self.client().args([
            "--binary-mode",
            "--default-character-set=utf8mb4",
            "--batch",
            "--skip-reconnect",
        ]);
        if self.sandbox {
            cmd = cmd.arg("--sandbox");
        }
        if self.quiet {
            cmd = cmd.arg("--skip-print-query-on-error");
        }
        cmd.time_limit(self.source.restore_timeout, "restore_timeout")
    }

    /// Runs `sql`; returns its tab-separated rows.
    ///
    /// Fails with the client's own (password-redacted) message.
    pub fn query(&self, sql: &str) -> Result<String, String> {
        let out = self
            .client()
            .args(["--batch", "--skip-column-names", "-e", sql])
            .time_limit(
                self.source.connect_timeout + self.source.lock_wait_timeout,
                "connect_timeout + lock_wait_timeout",
            )
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(format!(
                "{} {}: {}",
                self.client
                    .file_name()
                    .unwrap_or_default()
                    .to_string_lossy(),
                describe_status(out.status),
                out.stderr.trim()
            ));
        }
        Ok(out.stdout_string())
    }

    /// Checks that the server answers and accepts the account.
    ///
    /// Fails with [`ConnectError::unreachable`] set when nothing answered.
    pub fn ping(&self) -> Result<(), ConnectError> {
        self.query("SELECT 1").map(drop).map_err(|message| {
            // Client errors 2002/2003/2005/2013: no socket, refused, unknown host, lost (a
            // server that never greets, after connect_timeout).
            let unreachable = ["ERROR 2002", "ERROR 2003", "ERROR 2005", "ERROR 2013"]
                .iter()
                .any(|code| message.contains(code))
                || message.contains("was stopped");
            let message = if message.contains("ERROR 2013") || message.contains("was stopped") {
                format!(
                    "the server did not answer within {} (connect_timeout): {message}",
                    show_duration(self.source.connect_timeout)
                )
            } else {
                message
            };
            ConnectError {
                unreachable,
                message,
            }
        })
    }

    /// Every database the account can see.
    ///
    /// Fails when the server cannot be queried.
    pub fn databases(&self) -> Result<Vec<String>, String> {
        Ok(self
            .query("SHOW DATABASES")?
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect())
    }

    /// Whether database `db` exists, and how many tables and routines it holds.
    ///
    /// Fails when the server cannot be queried.
    pub fn contents(&self, db: &str) -> Result<Option<u64>, String> {
        let lit = sql_string(db)?;
        let out = self.query(&format!(
            "SELECT (SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name = {lit}),
                    (SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = {lit})
                  + (SELECT COUNT(*) FROM information_schema.routines WHERE routine_schema = {lit})"
        ))?;
        let mut fields = out
            .split_whitespace()
            .map(|f| f.parse::<u64>().unwrap_or(0));
        match (fields.next(), fields.next()) {
            (Some(0), _) => Ok(None),
            (Some(_), Some(n)) => Ok(Some(n)),
            _ => Err(format!("unexpected answer {out:?} when inspecting {db}")),
        }
    }

    /// The tables and views of `db`.
    ///
    /// Fails when the server cannot be queried.
    pub fn tables(&self, db: &str) -> Result<Vec<String>, String> {
        let out = self.query(&format!(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = {} ORDER BY table_name",
            sql_string(db)?
        ))?;
        Ok(out
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect())
    }

    /// Drops database `db` (a scratch database of the drill, or a failed load).
    ///
    /// Fails when the server refuses.
    pub fn drop_database(&self, db: &str) -> Result<(), String> {
        self.query(&format!("DROP DATABASE IF EXISTS {}", quote_ident(db)))
            .map(drop)
    }

    /// Dumps database `db` as it is now into `out` (the copy kept before overwriting it).
    ///
    /// Fails when the dump fails; `out` is removed then.
    pub fn dump_current(&self, db: &str, out: &Path) -> Result<(), String> {
        let mut src = self.source.clone();
        src.databases = MysqlSelection::Named(vec![db.to_string()]);
        crate::source::mysql::dump::dump(&src, out)
            .map(drop)
            .inspect_err(|_| {
                let _ = std::fs::remove_file(out);
            })
    }

    /// Loads a copy made by [`Conn::dump_current`] (our own dump of the live server).
    ///
    /// Fails with the client's message.
    fn load_copy(&self, copy: &Path) -> Result<(), String> {
        let mut cmd = self.client().args(["--binary-mode", "--batch"]);
        if self.quiet {
            cmd = cmd.arg("--skip-print-query-on-error");
        }
        let out = cmd
            .stdin_file(copy)
            .time_limit(self.source.restore_timeout, "restore_timeout")
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(format!(
                "the client {}: {}",
                describe_status(out.status),
                out.stderr.trim()
            ));
        }
        Ok(())
    }
}

/// `name` as a backtick-quoted identifier.
pub fn quote_ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// `value` as a single-quoted SQL string; backslashes are refused (their meaning depends on
/// the server's sql_mode).
fn sql_string(value: &str) -> Result<String, String> {
    if value.contains('\\') || value.contains('\0') {
        return Err(format!(
            "database name {value:?} contains a backslash or NUL"
        ));
    }
    Ok(format!("'{}'", value.replace('\'', "''")))
}

/// Checks a database name given on the command line.
///
/// Fails with the reason when MySQL would not take it or it could surprise.
pub fn check_name(name: &str) -> Result<(), String> {
    let ok_chars = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$' || c == '-');
    if name.is_empty() || name.len() > 64 || !ok_chars {
        return Err(format!(
            "{name:?} is not a database name resticpilot will create: use 1 to 64 letters, digits, '_', '$' or '-'"
        ));
    }
    Ok(())
}

/// Feeds a byte stream to a [`Scanner`] line by line, writing nothing: the check pass.
struct CheckSink<'a> {
    scanner: &'a mut Scanner,
    progress: &'a mut Progress,
    line: Vec<u8>,
    refusal: Option<String>,
}

impl Write for CheckSink<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.progress.add(buf.len() as u64);
        let mut rest = buf;
        while let Some(nl) = rest.iter().position(|b| *b == b'\n') {
            self.line.extend_from_slice(&rest[..=nl]);
            rest = &rest[nl + 1..];
            let line = std::mem::take(&mut self.line);
            if let Err(e) = self.scanner.line(&line, &mut io::sink()) {
                self.refusal = Some(e.to_string());
                return Err(e);
            }
        }
        self.line.extend_from_slice(rest);
        if self.line.len() > 1 << 30 {
            let e = "a line longer than 1 GiB".to_string();
            self.refusal = Some(e.clone());
            return Err(io::Error::other(e));
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The first pass: reads `db`'s whole dump from the snapshot and checks it with a scanner
/// for `map` on a server that also holds `others`, writing nothing anywhere.
///
/// Fails with the reason (the line and the rule) when the dump breaks a rule or is
/// incomplete, or when it cannot be read.
pub fn check(
    restic: &Restic,
    contents: &Contents,
    db: &ManifestDatabase,
    map: &[(String, String)],
    others: &[String],
) -> Result<Scanner, String> {
    let mut scanner = Scanner::new(map.to_vec(), others);
    let mut progress = Progress::new(format!("checking {}", db.name), Some(db.bytes));
    let mut sink = CheckSink {
        scanner: &mut scanner,
        progress: &mut progress,
        line: Vec::new(),
        refusal: None,
    };
    // The size the manifest records bounds the read: a dump of another size is not the one
    // backed up, and a longer one is not read past it.
    let limit = bound::recorded(db.bytes);
    let mut bounded = Bounded::new(&mut sink, limit);
    let read = restic.dump(contents.id(), &contents.dump_path(db), &mut bounded);
    let (over, seen) = (bounded.over(), bounded.written());
    if over && sink.refusal.is_none() {
        sink.refusal = Some(format!(
            "it is larger than the {} bytes its manifest records: it is not the dump that was backed up",
            db.bytes
        ));
    }
    let (refusal, last) = (sink.refusal.take(), std::mem::take(&mut sink.line));
    progress.finish();
    if let Some(refusal) = refusal {
        return Err(format!(
            "the dump in snapshot {} was refused before anything was loaded: {refusal}",
            contents.short()
        ));
    }
    read.map_err(|e| format!("reading the dump from the snapshot failed: {e}"))?;
    if let Some(limit) = limit.filter(|l| *l != seen) {
        return Err(format!(
            "the dump in snapshot {} was refused before anything was loaded: it has {seen} bytes, its manifest records {limit}: it is not the dump that was backed up",
            contents.short()
        ));
    }
    if !last.is_empty() {
        scanner
            .line(&last, &mut io::sink())
            .map_err(|e| format!("the dump in snapshot {} was refused: {e}", contents.short()))?;
    }
    scanner.finish(&mut io::sink()).map_err(|e| {
        format!(
            "the dump in snapshot {} was refused before anything was loaded: {e}",
            contents.short()
        )
    })?;
    Ok(scanner)
}

/// What loading one dump did.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// (database in the dump, database loaded into).
    pub databases: Vec<(String, String)>,
    /// Tables the dump created, as `database.table` of the target.
    pub tables: Vec<String>,
    /// Tables in the targets that the dump does not have (left as they were).
    pub extra: Vec<String>,
    pub bytes: u64,
    pub duration: Duration,
}

/// Checks `db`'s dump whole (see [`check`]), then streams it from the snapshot into the
/// server, database names mapped by `map`, then compares the targets' tables with the dump's.
///
/// Fails, before anything reaches the server, when the dump is refused; and when restic or
/// the client fails, a bound runs out, or a table of the dump is missing afterwards (what was
/// already loaded stays loaded: [`restore`] puts the previous content back).
pub fn load(
    restic: &Restic,
    contents: &Contents,
    db: &ManifestDatabase,
    conn: &Conn,
    map: Vec<(String, String)>,
) -> Result<Loaded, RestoreError> {
    let targets: Vec<String> = map.iter().map(|(_, t)| t.clone()).collect();
    let what = format!("database {} into {}", db.name, targets.join(", "));
    let others = conn
        .databases()
        .map_err(|e| RestoreError::failed(&what, e))?;
    check(restic, contents, db, &map, &others).map_err(|e| RestoreError::refused(&what, e))?;
    load_checked(restic, contents, db, conn, map, &others)
}

/// The second pass of [`load`], for a dump that passed [`check`].
fn load_checked(
    restic: &Restic,
    contents: &Contents,
    db: &ManifestDatabase,
    conn: &Conn,
    map: Vec<(String, String)>,
    others: &[String],
) -> Result<Loaded, RestoreError> {
    let targets: Vec<String> = map.iter().map(|(_, t)| t.clone()).collect();
    let what = format!("database {} into {}", db.name, targets.join(", "));
    let fail = |reason: String| RestoreError::failed(&what, reason);
    let start = Instant::now();
    let mut scanner = Scanner::new(map.clone(), others);
    let mut progress = Progress::new(format!("loading {}", db.name), Some(db.bytes));
    let client = conn.loader();
    let piped = restic.dump_piped(
        contents.id(),
        &contents.dump_path(db),
        &client,
        &mut |line, out| {
            progress.add(line.len() as u64);
            scanner.line(line, out)
        },
    );
    progress.finish();
    let piped = piped.map_err(|e| fail(e.to_string()))?;
    if !piped.consumer.status.success() {
        let stderr = piped.consumer.stderr.trim();
        let why = if is_server_disk_full(stderr) {
            format!(
                "the MySQL server ran out of disk space while loading ({stderr}): free space in the server's data directory, then restore again"
            )
        } else {
            format!(
                "the client {}: {stderr}",
                describe_status(piped.consumer.status)
            )
        };
        return Err(fail(why));
    }
    if let Err(e) = piped.restic {
        return Err(fail(format!(
            "reading the dump from the snapshot failed: {e}"
        )));
    }
    scanner.finish(&mut io::sink()).map_err(|e| {
        fail(format!(
            "the second read of the dump differs from the first: {e}"
        ))
    })?;
    let mut tables = Vec::new();
    let mut missing = Vec::new();
    let mut extra = Vec::new();
    for target in &targets {
        let now = conn.tables(target).map_err(&fail)?;
        let dumped: Vec<&String> = scanner
            .tables
            .iter()
            .filter(|(d, _)| d == target)
            .map(|(_, t)| t)
            .collect();
        for t in &dumped {
            tables.push(format!("{target}.{t}"));
            if !now.contains(t) {
                missing.push(format!("{target}.{t}"));
            }
        }
        for t in &now {
            if !dumped.contains(&t) {
                extra.push(format!("{target}.{t}"));
            }
        }
    }
    if !missing.is_empty() {
        return Err(fail(format!(
            "the client succeeded but these tables of the dump are missing: {}",
            missing.join(", ")
        )));
    }
    Ok(Loaded {
        databases: map,
        tables,
        extra,
        bytes: scanner.bytes,
        duration: start.elapsed(),
    })
}

/// Whether the client's message says the server's disk is full (InnoDB: "The table ... is
/// full", error 1114; the OS: errno 28; MariaDB's "Disk full").
fn is_server_disk_full(message: &str) -> bool {
    message.contains("ERROR 1114")
        || message.contains("ERROR 1021")
        || message.contains("Disk full")
        || is_disk_full(message)
}

/// What a restore of one MySQL source did.
#[derive(Debug, Clone)]
pub struct Restored {
    pub loaded: Loaded,
    /// Dumps of the databases as they were before being overwritten.
    pub previous: Vec<PathBuf>,
}

/// Where each database of `db`'s dump goes: its own name, or `into` (one database only).
///
/// Fails with the reason when `into` is given for a dump of several databases.
pub fn target_map(
    db: &ManifestDatabase,
    into: Option<&str>,
) -> Result<Vec<(String, String)>, String> {
    let names = db.mysql_databases();
    if names.is_empty() {
        return Err(format!(
            "the manifest does not say which databases the dump of {} holds",
            db.name
        ));
    }
    match into {
        None => Ok(names.into_iter().map(|n| (n.clone(), n)).collect()),
        Some(target) if names.len() == 1 => Ok(vec![(names[0].clone(), target.to_string())]),
        Some(_) => Err(format!(
            "--into needs a dump of one database, and the dump of {} holds {}",
            db.name,
            names.join(", ")
        )),
    }
}

/// Restores `db` into the server of `src` (names mapped by `map`). The dump is checked
/// whole first; a target that exists and is not empty needs `force`; every target that
/// exists is dumped into `keep_dir` before it is overwritten, and put back from that copy
/// when the load fails.
///
/// Fails (changing nothing) when the server cannot be reached, the dump is refused, a target
/// is not empty without `force`, or the copy of the current content fails; and when the load
/// fails (the targets put back as they were, the message says so).
pub fn restore(
    restic: &Restic,
    contents: &Contents,
    db: &ManifestDatabase,
    src: &MysqlSource,
    map: Vec<(String, String)>,
    force: bool,
    keep_dir: &Path,
) -> Result<Restored, RestoreError> {
    let targets: Vec<String> = map.iter().map(|(_, t)| t.clone()).collect();
    let what = format!("database {} into {}", db.name, targets.join(", "));
    let fail = |reason: String| RestoreError::failed(&what, reason);
    let conn = Conn::new(src).map_err(&fail)?;
    conn.ping()
        .map_err(|e| fail(format!("cannot use the server: {}", e.message)))?;
    let mut existing = Vec::new();
    let mut occupied = Vec::new();
    for target in &targets {
        if let Some(n) = conn.contents(target).map_err(&fail)? {
            existing.push(target.clone());
            if n > 0 {
                occupied.push((target.clone(), n));
            }
        }
    }
    if !occupied.is_empty() && !force {
        let list: Vec<String> = occupied
            .iter()
            .map(|(t, n)| format!("{t} ({n} tables and routines)"))
            .collect();
        return Err(RestoreError::refused(
            &what,
            format!(
                "the target is not empty: {}. Pass --force to load over it (its current content is dumped beside first), or --into NAME to restore under another name",
                list.join(", ")
            ),
        ));
    }
    // The whole dump is checked before anything is copied or changed.
    let others = conn.databases().map_err(&fail)?;
    check(restic, contents, db, &map, &others).map_err(|e| RestoreError::refused(&what, e))?;
    let mut previous: Vec<(String, PathBuf)> = Vec::new();
    if !existing.is_empty() {
        crate::lock::create_private_dir(keep_dir).map_err(|e| fail(e.to_string()))?;
        for target in &existing {
            let out = crate::restore::unused_name(
                &keep_dir.join(target),
                &format!(".pre-restore-{}.sql", crate::restore::timestamp()),
            );
            tracing::info!(
                "keeping the current content of {target} in {}",
                out.display()
            );
            conn.dump_current(target, &out).map_err(|e| {
                fail(format!(
                    "could not keep a copy of the current {target} before overwriting it: {e}. Nothing was changed; to restore anyway, drop the database first"
                ))
            })?;
            previous.push((target.clone(), out));
        }
    }
    match load_checked(restic, contents, db, &conn, map, &others) {
        Ok(loaded) => Ok(Restored {
            loaded,
            previous: previous.into_iter().map(|(_, p)| p).collect(),
        }),
        Err(RestoreError::Failed { what, reason }) => {
            let undo = roll_back(&conn, &targets, &previous);
            Err(RestoreError::Failed {
                what,
                reason: format!("{reason}. {undo}"),
            })
        }
        Err(e) => Err(e),
    }
}

/// Puts `targets` back as they were before a failed load: each is dropped, and loaded again
/// from its copy in `previous` if it existed. Returns what happened, for the message.
fn roll_back(conn: &Conn, targets: &[String], previous: &[(String, PathBuf)]) -> String {
    let mut said = Vec::new();
    for target in targets {
        let copy = previous.iter().find(|(t, _)| t == target).map(|(_, p)| p);
        let result = conn.drop_database(target).and_then(|()| match copy {
            Some(copy) => conn.load_copy(copy),
            None => Ok(()),
        });
        said.push(match (result, copy) {
            (Ok(()), Some(copy)) => format!(
                "{target} was put back as it was before the restore, from {}",
                copy.display()
            ),
            (Ok(()), None) => format!(
                "{target}, which did not exist before the restore, was dropped again"
            ),
            (Err(e), Some(copy)) => format!(
                "putting {target} back failed too ({e}): its content from before the restore is in {}; load it with the mariadb client",
                copy.display()
            ),
            (Err(e), None) => format!(
                "{target} may be partly loaded: dropping it failed too ({e})"
            ),
        });
    }
    said.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn into_needs_one_database_and_a_plain_name() {
        let db = ManifestDatabase {
            name: "main".into(),
            kind: "mysql".into(),
            file: "main.sql".into(),
            bytes: 0,
            duration: 0.0,
            source: "a, b".into(),
            method: String::new(),
            tables: vec![],
            hash: None,
            journal_mode: None,
            writers_held_seconds: None,
            incremental: None,
            databases: None,
        };
        assert_eq!(
            target_map(&db, None).unwrap(),
            [("a".into(), "a".into()), ("b".into(), "b".into())]
        );
        assert!(
            target_map(&db, Some("c"))
                .unwrap_err()
                .contains("holds a, b")
        );
        assert!(check_name("shop_restored").is_ok());
        assert!(check_name("x; DROP").is_err());
        assert!(check_name(&"a".repeat(65)).is_err());
        assert_eq!(sql_string("it's").unwrap(), "'it''s'");
        assert!(sql_string("a\\b").is_err());
        assert_eq!(quote_ident("a`b"), "`a``b`");
    }

    #[test]
    fn a_full_server_disk_is_recognised() {
        assert!(is_server_disk_full(
            "ERROR 1114 (HY000) at line 40: The table `t` is full"
        ));
        assert!(!is_server_disk_full("ERROR 1045 (28000): Access denied"));
    }
}
