//! MySQL / MariaDB back from a snapshot: `restic dump` streamed into the `mariadb`/`mysql`
//! client, never held in memory or on disk. Dumps are made with `--databases`, so they carry
//! their own `CREATE DATABASE` / `USE` lines; restoring under another name rewrites those lines
//! as they stream past (and refuses a dump that names a database it was not told about, so a
//! rename can never write into the original). Afterwards the restored table list is compared
//! with the dump's.
//!
//! The connection (the source's `restore_user`/`restore_password_file`, else its `user` and
//! `password_file`) goes through the same 0600 options file as the dump: no password in argv.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::progress::Progress;
use super::{Contents, ManifestDatabase, RestoreError};
use crate::config::{MysqlSelection, MysqlSource};
use crate::dump::mysql::{Credentials, client_tool, dump_tool};
use crate::process::{Cmd, describe_status};
use crate::restic::Restic;

/// A client connection to the source's server, as the restore account.
pub struct Conn {
    client: PathBuf,
    creds: Credentials,
    /// The source with the restore account's user and password in place.
    source: MysqlSource,
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
        Ok(Conn {
            client,
            creds,
            source,
        })
    }

    /// The client with the connection options, nothing else.
    pub fn client(&self) -> Cmd {
        Cmd::new(&self.client).arg(self.creds.arg())
    }

    /// Runs `sql`; returns its tab-separated rows.
    ///
    /// Fails with the client's own (password-redacted) message.
    pub fn query(&self, sql: &str) -> Result<String, String> {
        let out = self
            .client()
            .args(["--batch", "--skip-column-names", "-e", sql])
            .output()
            .map_err(|e| self.creds.redact(&e.to_string()))?;
        if !out.status.success() {
            return Err(self.creds.redact(&format!(
                "{} {}: {}",
                self.client
                    .file_name()
                    .unwrap_or_default()
                    .to_string_lossy(),
                describe_status(out.status),
                out.stderr.trim()
            )));
        }
        Ok(out.stdout_string())
    }

    /// Checks that the server answers and accepts the account.
    ///
    /// Fails with [`ConnectError::unreachable`] set when nothing answered.
    pub fn ping(&self) -> Result<(), ConnectError> {
        self.query("SELECT 1").map(drop).map_err(|message| {
            // Client errors 2002/2003/2005/2013: no socket, refused, unknown host, lost.
            let unreachable = ["ERROR 2002", "ERROR 2003", "ERROR 2005", "ERROR 2013"]
                .iter()
                .any(|code| message.contains(code));
            ConnectError {
                unreachable,
                message,
            }
        })
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

    /// Drops database `db` (a scratch database of the drill).
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
        crate::dump::mysql::dump(&src, out)
            .map(drop)
            .inspect_err(|_| {
                let _ = std::fs::remove_file(out);
            })
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

/// The streaming line filter: maps database names in `CREATE DATABASE`, `USE` and
/// `ALTER DATABASE` lines, and notes the tables and the completion trailer going past.
#[derive(Debug)]
pub struct Rewrite {
    /// Database in the dump -> database to load into.
    map: Vec<(String, String)>,
    current: Option<String>,
    /// `target.table` for every CREATE TABLE seen.
    pub tables: Vec<(String, String)>,
    pub trailer: bool,
    pub bytes: u64,
}

impl Rewrite {
    pub fn new(map: Vec<(String, String)>) -> Rewrite {
        Rewrite {
            map,
            current: None,
            tables: Vec::new(),
            trailer: false,
            bytes: 0,
        }
    }

    /// Passes one line (with its newline) to `out`, rewritten where it names a database.
    ///
    /// Fails when `out` fails, or the line names a database the map does not know (the stream
    /// must stop before anything is written to a database nobody asked for).
    pub fn line(&mut self, line: &[u8], out: &mut dyn Write) -> io::Result<()> {
        self.bytes += line.len() as u64;
        for prefix in [
            &b"CREATE DATABASE "[..],
            &b"USE "[..],
            &b"ALTER DATABASE "[..],
        ] {
            if !line.starts_with(prefix) {
                continue;
            }
            let Some((start, end, name)) = first_ident(line) else {
                break;
            };
            let Some((_, target)) = self.map.iter().find(|(from, _)| *from == name) else {
                return Err(io::Error::other(format!(
                    "the dump switches to database `{name}`, which the manifest did not list; stopped before writing to it"
                )));
            };
            let target = target.clone();
            if prefix == b"USE " {
                self.current = Some(target.clone());
            }
            out.write_all(&line[..start])?;
            out.write_all(quote_ident(&target).as_bytes())?;
            return out.write_all(&line[end..]);
        }
        if line.starts_with(b"CREATE TABLE `")
            && let Some((_, _, name)) = first_ident(line)
        {
            let db = self.current.clone().unwrap_or_default();
            self.tables.push((db, name));
        } else if line.starts_with(b"-- Dump completed") {
            self.trailer = true;
        }
        out.write_all(line)
    }
}

/// The first backtick-quoted identifier in `line`: its byte range (quotes included) and name.
fn first_ident(line: &[u8]) -> Option<(usize, usize, String)> {
    let start = line.iter().position(|b| *b == b'`')?;
    let mut name = Vec::new();
    let mut i = start + 1;
    while i < line.len() {
        if line[i] == b'`' {
            if line.get(i + 1) == Some(&b'`') {
                name.push(b'`');
                i += 2;
                continue;
            }
            return Some((start, i + 1, String::from_utf8_lossy(&name).into_owned()));
        }
        name.push(line[i]);
        i += 1;
    }
    None
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

/// Streams `db`'s dump from the snapshot into the server, database names mapped by `map`,
/// then compares the targets' tables with the dump's.
///
/// Fails when restic or the client fails, the dump lacks its completion trailer, or a table
/// of the dump is missing afterwards. What was already loaded stays loaded: the message says
/// so.
pub fn load(
    restic: &Restic,
    contents: &Contents,
    db: &ManifestDatabase,
    conn: &Conn,
    map: Vec<(String, String)>,
) -> Result<Loaded, RestoreError> {
    let targets: Vec<String> = map.iter().map(|(_, t)| t.clone()).collect();
    let what = format!("database {} into {}", db.name, targets.join(", "));
    let fail = |reason: String| RestoreError::failed(&what, reason);
    let start = Instant::now();
    let mut rewrite = Rewrite::new(map.clone());
    let mut progress = Progress::new(format!("loading {}", db.name), Some(db.bytes));
    let client = conn.client();
    let piped = restic.dump_piped(
        contents.id(),
        &contents.dump_path(db),
        &client,
        &mut |line, out| {
            progress.add(line.len() as u64);
            rewrite.line(line, out)
        },
    );
    progress.finish();
    let piped = piped?;
    let partial = |why: String| {
        fail(format!(
            "{why}; {} may be partly loaded",
            targets.join(", ")
        ))
    };
    if !piped.consumer.status.success() {
        return Err(partial(conn.creds.redact(&format!(
            "the client {}: {}",
            describe_status(piped.consumer.status),
            piped.consumer.stderr.trim()
        ))));
    }
    if let Err(e) = piped.restic {
        return Err(partial(format!(
            "reading the dump from the snapshot failed: {e}"
        )));
    }
    if !rewrite.trailer {
        return Err(partial(format!(
            "the dump in snapshot {} ends without its `-- Dump completed` trailer: it is incomplete",
            contents.short()
        )));
    }
    let mut tables = Vec::new();
    let mut missing = Vec::new();
    let mut extra = Vec::new();
    for target in &targets {
        let now = conn.tables(target).map_err(&fail)?;
        let dumped: Vec<&String> = rewrite
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
        bytes: rewrite.bytes,
        duration: start.elapsed(),
    })
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

/// Restores `db` into the server of `src` (names mapped by `map`). A target that exists and
/// is not empty needs `force`; it is then dumped into `keep_dir` before being overwritten.
///
/// Fails (changing nothing) when the server cannot be reached, a target is not empty without
/// `force`, or the copy of the current content fails; and as [`load`] does.
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
    let mut occupied = Vec::new();
    for target in &targets {
        if let Some(n) = conn.contents(target).map_err(&fail)?
            && n > 0
        {
            occupied.push((target.clone(), n));
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
    let mut previous = Vec::new();
    if !occupied.is_empty() {
        crate::lock::create_private_dir(keep_dir).map_err(|e| fail(e.to_string()))?;
        for (target, _) in &occupied {
            let out = super::unused_name(
                &keep_dir.join(target),
                &format!(".pre-restore-{}.sql", super::timestamp()),
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
            previous.push(out);
        }
    }
    let loaded =
        load(restic, contents, db, &conn, map).map_err(|e| match (e, previous.is_empty()) {
            (RestoreError::Failed { what, reason }, false) => RestoreError::Failed {
                what,
                reason: format!(
                    "{reason}. The content from before is in {}",
                    previous
                        .iter()
                        .map(|p| p.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            },
            (e, _) => e,
        })?;
    Ok(Restored { loaded, previous })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(rewrite: &mut Rewrite, text: &str) -> Result<String, io::Error> {
        let mut out = Vec::new();
        for line in text.split_inclusive('\n') {
            rewrite.line(line.as_bytes(), &mut out)?;
        }
        Ok(String::from_utf8(out).unwrap())
    }

    const DUMP: &str = "-- MariaDB dump\n\
        --\n-- Current Database: `shop`\n--\n\n\
        CREATE DATABASE /*!32312 IF NOT EXISTS*/ `shop` /*!40100 DEFAULT CHARACTER SET latin1 */;\n\n\
        USE `shop`;\n\
        DROP TABLE IF EXISTS `orders`;\n\
        CREATE TABLE `orders` (\n  `id` int(11) NOT NULL\n);\n\
        INSERT INTO `orders` VALUES (1),(2);\n\
        ALTER DATABASE `shop` CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci ;\n\
        CREATE TABLE `audit` (\n  `id` int(11)\n);\n\
        -- Dump completed on 2026-11-22 23:00:00\n";

    #[test]
    fn database_lines_are_renamed_and_tables_noted() {
        let mut r = Rewrite::new(vec![("shop".into(), "shop_copy".into())]);
        let out = run(&mut r, DUMP).unwrap();
        assert!(out.contains(
            "CREATE DATABASE /*!32312 IF NOT EXISTS*/ `shop_copy` /*!40100 DEFAULT CHARACTER SET latin1 */;\n"
        ));
        assert!(out.contains("\nUSE `shop_copy`;\n"));
        assert!(out.contains("\nALTER DATABASE `shop_copy` CHARACTER SET utf8mb4"));
        // Everything else passes untouched, comments included.
        assert!(out.contains("-- Current Database: `shop`\n"));
        assert!(out.contains("INSERT INTO `orders` VALUES (1),(2);\n"));
        assert_eq!(out.len(), DUMP.len() + 3 * "_copy".len());
        assert_eq!(
            r.tables,
            [
                ("shop_copy".to_string(), "orders".to_string()),
                ("shop_copy".to_string(), "audit".to_string())
            ]
        );
        assert!(r.trailer);
        assert_eq!(r.bytes, DUMP.len() as u64);
    }

    #[test]
    fn an_unmapped_database_stops_the_stream_before_its_use() {
        let mut r = Rewrite::new(vec![("other".into(), "x".into())]);
        let err = run(&mut r, DUMP).unwrap_err().to_string();
        assert!(err.contains("`shop`"), "{err}");
    }

    #[test]
    fn quoted_names_with_backticks_round_trip() {
        assert_eq!(
            first_ident(b"USE `we``ird`;\n"),
            Some((4, 13, "we`ird".to_string()))
        );
        let mut r = Rewrite::new(vec![("we`ird".into(), "plain".into())]);
        assert_eq!(run(&mut r, "USE `we``ird`;\n").unwrap(), "USE `plain`;\n");
        assert_eq!(quote_ident("a`b"), "`a``b`");
    }

    #[test]
    fn into_needs_one_database_and_a_plain_name() {
        let db = ManifestDatabase {
            name: "main".into(),
            kind: "mysql".into(),
            file: "main.sql".into(),
            bytes: 0,
            source: "a, b".into(),
            tables: vec![],
            hash: None,
            incremental: None,
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
    }
}
