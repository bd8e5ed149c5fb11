//! Dumping a PostgreSQL source: each database with `pg_dump` into its own custom-format
//! archive without compression (restic deduplicates and compresses; see the README for the
//! measurements behind the format), the globals with `pg_dumpall --globals-only`. A dump
//! counts only when the tool exited 0 and the archive reads back whole (`pg_restore --list`
//! for its table of contents, then the whole archive through `pg_restore` to nowhere); the
//! globals must end with their completion trailer. A client older than the server is refused
//! before anything is dumped: its dump could miss what the newer server has.

use std::os::unix::fs::DirBuilderExt;
use std::path::Path;

use super::client::{Conn, QueryError, tool, tool_version};
use super::{GLOBALS_FILE, PgSelection, PgSource, archive_name, check_name};
use crate::process::{Cmd, describe_status};
use crate::source::Done;

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
pub fn dump(src: &PgSource, out: &Path) -> Result<Done, String> {
    let result = dump_into(src, out);
    if result.is_err() {
        let _ = std::fs::remove_dir_all(out);
    }
    result
}

fn dump_into(src: &PgSource, out: &Path) -> Result<Done, String> {
    let pg_dump = tool("pg_dump")?;
    let pg_restore = tool("pg_restore")?;
    let conn = Conn::new(src)?;
    let (client_major, client_version) = tool_version(&pg_dump)?;
    let server = conn.server_version().map_err(|e| e.message)?;
    let server_major = server / 10000;
    if client_major < server_major {
        return Err(format!(
            "pg_dump {client_version} is older than the server {} (PostgreSQL {}.{}): a dump needs a client at least as new as the server; install postgresql-client-{server_major} or newer",
            src.server(),
            server_major,
            server % 10000
        ));
    }
    let databases = match &src.databases {
        PgSelection::Named(names) => names.clone(),
        PgSelection::All => list_databases(&conn).map_err(|e| e.message)?,
    };
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(out)
        .map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let mut tables = Vec::new();
    for db in &databases {
        let file = out.join(archive_name(db));
        let cmd = conn
            .command(&pg_dump)
            .args(DUMP_FLAGS)
            .arg(format!(
                "--lock-wait-timeout={}",
                src.lock_wait_timeout.as_millis()
            ))
            .args(&src.options)
            .arg("--file")
            .arg(&file)
            .arg(format!("--dbname={}", super::client::conninfo_dbname(db)))
            .time_limit(src.dump_timeout, "dump_timeout");
        run(&cmd, &conn, &format!("pg_dump of database {db}"))?;
        let toc = read_back(&pg_restore, &file).map_err(|e| format!("database {db}: {e}"))?;
        tables.extend(toc.into_iter().map(|t| format!("{db}.{t}")));
    }
    if src.globals {
        let pg_dumpall = tool("pg_dumpall")?;
        let file = out.join(GLOBALS_FILE);
        let cmd = conn
            .command(&pg_dumpall)
            .args(["--globals-only", "--database=postgres", "--file"])
            .arg(&file)
            .time_limit(src.dump_timeout, "dump_timeout");
        run(&cmd, &conn, "pg_dumpall --globals-only")?;
        let text = std::fs::read_to_string(&file)
            .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
        let tail = &text[text.len().saturating_sub(256)..];
        if !tail.lines().any(|l| l == GLOBALS_TRAILER) {
            return Err(format!(
                "the globals dump lacks its trailer `{GLOBALS_TRAILER}`: it is incomplete"
            ));
        }
    }
    Ok(Done {
        source: format!("{} on {}", databases.join(", "), src.server()),
        method: format!("pg_dump {client_version} (custom format, uncompressed)"),
        tables,
        databases,
    })
}

/// Runs a dump tool; fails with its (masked) stderr when it did not exit 0.
fn run(cmd: &Cmd, conn: &Conn, what: &str) -> Result<(), String> {
    let out = cmd.output().map_err(|e| conn.redact(&e.to_string()))?;
    if !out.status.success() {
        return Err(format!(
            "{what} {}: {}",
            describe_status(out.status),
            conn.redact(out.stderr.trim())
        ));
    }
    Ok(())
}

/// The databases of `databases: all`: every one that accepts connections, but the templates
/// and `postgres` (the server's maintenance database).
///
/// Fails when the server cannot be asked, or holds a name resticpilot cannot dump to a file.
pub fn list_databases(conn: &Conn) -> Result<Vec<String>, QueryError> {
    let rows = conn.query(
        "postgres",
        "SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate AND datname <> 'postgres' ORDER BY datname",
    )?;
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
    let tables = toc_tables(&out.stdout_string());
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
    use super::toc_tables;

    #[test]
    fn tables_are_read_from_the_table_of_contents() {
        let list = ";\n; Archive created at 2026-11-30\n;\n215; 1259 16386 TABLE public orders rp\n216; 1259 16390 SEQUENCE public orders_id_seq rp\n3350; 0 16386 TABLE DATA public orders rp\n217; 1259 16391 TABLE app items rp\n";
        assert_eq!(toc_tables(list), vec!["app.items", "public.orders"]);
    }
}
