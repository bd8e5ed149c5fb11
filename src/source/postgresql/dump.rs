//! Dumping a PostgreSQL source: each database with `pg_dump` into its own custom-format
//! archive without compression (restic deduplicates and compresses; see the README for the
//! measurements behind the format), the globals with `pg_dumpall --globals-only`. A dump
//! counts only when the tool exited 0 and the archive reads back whole: pg_dump's stream goes
//! both into the staged file and into a `pg_restore` that reads all of it to nowhere as it
//! comes (on the other core, so the check ends about when the dump does), then `pg_restore
//! --list` reads the staged file's table of contents for the table list. The globals must end
//! with their completion trailer. A client older than the server is refused before anything
//! is dumped (the tools refuse it themselves; resticpilot words their refusal): its dump could
//! miss what the newer server has.

use std::os::unix::fs::DirBuilderExt;
use std::path::Path;

use super::client::{Conn, QueryError, database_exists, tool, tool_version};
use super::{GLOBALS_FILE, PgSelection, PgSource, archive_name, check_name};
use crate::process::{Cmd, describe_status};
use crate::source::{Done, Extra};

/// The flags every database dump gets: custom format (a table of contents that
/// `pg_restore` checks, a restore that never goes through psql's meta-commands),
/// uncompressed (restic compresses after deduplicating).
pub const DUMP_FLAGS: [&str; 2] = ["--format=custom", "--compress=0"];

/// The trailer `pg_dumpall` writes last (a comment line between two `--` lines).
const GLOBALS_TRAILER: &str = "-- PostgreSQL database cluster dump complete";

/// Dumps `src` into the directory `out` (created here, mode 0700): one archive per database,
/// and the globals when asked. Removes `out` on failure.
///
/// Fails when the server cannot be reached, refuses the login, is newer than the client, or
/// a tool fails or its output does not read back.
pub fn dump(src: &PgSource, out: &Path) -> Result<(Done, Extra), String> {
    let result = dump_into(src, out);
    if result.is_err() {
        let _ = std::fs::remove_dir_all(out);
    }
    result
}

fn dump_into(src: &PgSource, out: &Path) -> Result<(Done, Extra), String> {
    let pg_dump = tool("pg_dump")?;
    let pg_restore = tool("pg_restore")?;
    let conn = Conn::new(src)?;
    let databases = match &src.databases {
        PgSelection::Named(names) => names.clone(),
        PgSelection::All => list_databases(&conn).map_err(|e| e.message)?,
    };
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(out)
        .map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let mut tables = Vec::new();
    let mut client_version = None;
    let mut dumped = Vec::new();
    let mut warnings = Vec::new();
    for db in &databases {
        let file = out.join(archive_name(db));
        // pg_dump writes to stdout (the archive then has no data offsets: pg_restore reads it
        // in order, and `pg_restore --jobs` still finds each block in the file), so that the
        // check reads the stream while it is written.
        let cmd = conn
            .command(&pg_dump)
            .args(DUMP_FLAGS)
            .arg(format!(
                "--lock-wait-timeout={}",
                src.lock_wait_timeout.as_millis()
            ))
            .args(&src.options)
            .arg(format!("--dbname={}", super::client::conninfo_dbname(db)))
            .time_limit(src.dump_timeout, "dump_timeout");
        let piped = cmd
            .tee_to(&file, &Cmd::new(&pg_restore).arg("--file=/dev/null"))
            .map_err(|e| conn.redact(&e.to_string()))?;
        if !piped.producer.status.success() {
            let stderr = conn.redact(piped.producer.stderr.trim());
            if matches!(src.databases, PgSelection::All) && dropped_since_listed(&conn, db) {
                // `all` means the databases there are: one dropped since the list was read
                // is not there to lose. Named ones are never skipped.
                let w = format!(
                    "database {db} was dropped while the backup ran (it was listed for `databases: all`, then pg_dump found it gone): not in this snapshot"
                );
                tracing::warn!("{w}");
                warnings.push(w);
                let _ = std::fs::remove_file(&file);
                continue;
            }
            return Err(match version_mismatch(&stderr) {
                Some((server, client)) => older_client(&client, &server, src),
                None => format!(
                    "pg_dump of database {db} {}: {stderr}",
                    describe_status(piped.producer.status)
                ),
            });
        }
        if piped.consumer_quit_early || !piped.consumer.status.success() {
            return Err(format!(
                "database {db}: the archive pg_dump wrote does not read back whole (pg_restore {}{}): {}",
                describe_status(piped.consumer.status),
                if piped.consumer_quit_early {
                    ", before the end of the stream"
                } else {
                    ""
                },
                piped.consumer.stderr.trim()
            ));
        }
        let (toc, version) =
            list_archive(&pg_restore, &file).map_err(|e| format!("database {db}: {e}"))?;
        client_version = client_version.or(version);
        tables.extend(toc.into_iter().map(|t| format!("{db}.{t}")));
        dumped.push(db.clone());
    }
    if dumped.is_empty() && !databases.is_empty() {
        return Err(format!(
            "every database listed for `databases: all` ({}) was dropped before it could be dumped",
            databases.join(", ")
        ));
    }
    let databases = dumped;
    let client_version = match client_version {
        Some(v) => v,
        None => tool_version(&pg_dump)?.1,
    };
    if src.globals {
        let pg_dumpall = tool("pg_dumpall")?;
        let file = out.join(GLOBALS_FILE);
        let cmd = conn
            .command(&pg_dumpall)
            .args(["--globals-only", "--database=postgres", "--file"])
            .arg(&file)
            .time_limit(src.dump_timeout, "dump_timeout");
        run(&cmd, &conn, "pg_dumpall --globals-only", src)?;
        let text = std::fs::read_to_string(&file)
            .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
        let tail = &text[text.len().saturating_sub(256)..];
        if !tail.lines().any(|l| l == GLOBALS_TRAILER) {
            return Err(format!(
                "the globals dump lacks its trailer `{GLOBALS_TRAILER}`: it is incomplete"
            ));
        }
    }
    let done = Done {
        source: format!("{} on {}", databases.join(", "), src.server()),
        method: format!("pg_dump {client_version} (custom format, uncompressed)"),
        tables,
        databases,
    };
    Ok((
        done,
        Extra {
            warnings,
            ..Extra::default()
        },
    ))
}

/// Whether database `db` is gone from the server (asked after its dump failed). A server
/// that cannot be asked counts as "not dropped": the dump's own error stands.
fn dropped_since_listed(conn: &Conn, db: &str) -> bool {
    matches!(database_exists(conn, db), Ok(false))
}

/// The server's and the client's versions in the message of a tool that refused a server
/// newer than itself (`server version: 16.1; pg_dump version: 15.18`). The tools check this
/// themselves, so resticpilot does not ask the server its version before dumping.
fn version_mismatch(stderr: &str) -> Option<(String, String)> {
    if !stderr.contains("server version mismatch") {
        return None;
    }
    let detail = stderr.lines().find_map(|l| {
        let at = l.find("server version: ")?;
        Some(&l[at + "server version: ".len()..])
    })?;
    let (server, rest) = detail.split_once("; ")?;
    let client = rest.split_once(" version: ")?.1;
    Some((server.trim().to_string(), client.trim().to_string()))
}

/// The error for a client older than the server.
fn older_client(client: &str, server: &str, src: &PgSource) -> String {
    let major = server.split(['.', ' ']).next().unwrap_or(server);
    format!(
        "pg_dump {client} is older than the server {} (PostgreSQL {server}): a dump needs a client at least as new as the server; install postgresql-client-{major} or newer",
        src.server()
    )
}

/// Runs a dump tool; fails with its (masked) stderr when it did not exit 0.
fn run(cmd: &Cmd, conn: &Conn, what: &str, src: &PgSource) -> Result<(), String> {
    let out = cmd.output().map_err(|e| conn.redact(&e.to_string()))?;
    if !out.status.success() {
        let stderr = conn.redact(out.stderr.trim());
        return Err(match version_mismatch(&stderr) {
            Some((server, client)) => older_client(&client, &server, src),
            None => format!("{what} {}: {stderr}", describe_status(out.status)),
        });
    }
    Ok(())
}

/// The databases of `databases: all`: every one that accepts connections, but the templates,
/// `postgres` (the server's maintenance database) and the scratch databases of a resticpilot
/// drill or restore running beside this backup.
///
/// Fails when the server cannot be asked, or holds a name resticpilot cannot dump to a file.
pub fn list_databases(conn: &Conn) -> Result<Vec<String>, QueryError> {
    let rows = conn.query(
        "postgres",
        "SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate AND datname <> 'postgres' ORDER BY datname",
    )?;
    let (scratch, rows): (Vec<String>, Vec<String>) = rows
        .into_iter()
        .partition(|name| crate::source::is_scratch_database(name));
    for name in &scratch {
        tracing::info!(
            "not dumping {name}: the scratch database of a resticpilot verify or restore in progress"
        );
    }
    for name in &rows {
        if let Err(why) = check_name(name) {
            return Err(QueryError {
                message: format!(
                    "the server has a database {name:?}, which {why}: list the databases to dump by name instead of `all`"
                ),
                unreachable: false,
            });
        }
    }
    Ok(rows)
}

/// Checks that the archive `file` reads back whole: its table of contents (`pg_restore
/// --list`) and every data block (the whole archive restored to nowhere). Returns its tables
/// as `schema.table`.
///
/// Fails with pg_restore's message.
pub fn read_back(pg_restore: &Path, file: &Path) -> Result<Vec<String>, String> {
    let (tables, _) = list_archive(pg_restore, file)?;
    let out = Cmd::new(pg_restore)
        .args(["--file=/dev/null"])
        .arg(file)
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!(
            "the archive does not read back whole (pg_restore {}): {}",
            describe_status(out.status),
            out.stderr.trim()
        ));
    }
    Ok(tables)
}

/// Reads the table of contents of the archive `file` (`pg_restore --list`, which reads the
/// header and the entries, not the data). Returns its tables as `schema.table`, and the
/// version of the pg_dump that wrote it when the header says.
///
/// Fails with pg_restore's message.
pub fn list_archive(
    pg_restore: &Path,
    file: &Path,
) -> Result<(Vec<String>, Option<String>), String> {
    let out = Cmd::new(pg_restore)
        .arg("--list")
        .arg(file)
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!(
            "the archive does not read back (pg_restore --list {}): {}",
            describe_status(out.status),
            out.stderr.trim()
        ));
    }
    let list = out.stdout_string();
    Ok((toc_tables(&list), toc_dumped_by(&list)))
}

/// The pg_dump version in a `pg_restore --list` header (`;     Dumped by pg_dump version:
/// 15.18 (Debian 15.18-0+deb12u1)` -> `15.18`).
fn toc_dumped_by(list: &str) -> Option<String> {
    list.lines()
        .take_while(|l| l.starts_with(';'))
        .find_map(|l| l.split_once("Dumped by pg_dump version: "))
        .and_then(|(_, v)| v.split_whitespace().next())
        .map(str::to_string)
}

/// The tables of a `pg_restore --list` output, as `schema.table`, sorted. Entries look like
/// `215; 1259 16386 TABLE public orders owner`.
pub fn toc_tables(list: &str) -> Vec<String> {
    let mut tables: Vec<String> = list
        .lines()
        .filter(|l| !l.starts_with(';'))
        .filter_map(|l| l.split_once("; ").map(|(_, rest)| rest))
        .filter_map(|rest| {
            let words: Vec<&str> = rest.split(' ').collect();
            (words.len() == 6 && words[2] == "TABLE").then(|| format!("{}.{}", words[3], words[4]))
        })
        .collect();
    tables.sort();
    tables.dedup();
    tables
}

#[cfg(test)]
mod tests {
    use super::{toc_dumped_by, toc_tables, version_mismatch};

    #[test]
    fn a_refused_newer_server_is_read_from_the_tools_message() {
        let stderr = "pg_dump: error: aborting because of server version mismatch\npg_dump: detail: server version: 16.4 (Debian 16.4-1); pg_dump version: 15.18 (Debian 15.18-0+deb12u1)";
        assert_eq!(
            version_mismatch(stderr),
            Some((
                "16.4 (Debian 16.4-1)".to_string(),
                "15.18 (Debian 15.18-0+deb12u1)".to_string()
            ))
        );
        assert_eq!(version_mismatch("pg_dump: error: connection failed"), None);
    }

    #[test]
    fn the_dumping_version_is_read_from_the_archive_header() {
        let list = ";\n; Archive created at 2026-11-30 20:14:19 UTC\n;     Dumped from database version: 15.18 (Debian 15.18-0+deb12u1)\n;     Dumped by pg_dump version: 15.18 (Debian 15.18-0+deb12u1)\n;\n214; 1259 16385 TABLE public items postgres\n";
        assert_eq!(toc_dumped_by(list), Some("15.18".to_string()));
        assert_eq!(
            toc_dumped_by("214; 1259 16385 TABLE public items postgres\n"),
            None
        );
    }

    #[test]
    fn tables_are_read_from_the_table_of_contents() {
        let list = ";\n; Archive created at 2026-11-30\n;\n215; 1259 16386 TABLE public orders rp\n216; 1259 16390 SEQUENCE public orders_id_seq rp\n3350; 0 16386 TABLE DATA public orders rp\n217; 1259 16391 TABLE app items rp\n";
        assert_eq!(toc_tables(list), vec!["app.items", "public.orders"]);
    }
}
