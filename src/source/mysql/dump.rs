//! MySQL / MariaDB through `mariadb-dump` or `mysqldump`.
//!
//! The connection settings and the password go into an options file that exists only in
//! memory (a memfd, mode 0600), handed to the tool as `--defaults-extra-file=/dev/fd/N`: the
//! password is never on disk, in an argument list, an environment, a log line or an error
//! (whatever the tool prints is masked too). A dump counts only if the tool exited 0 and the
//! file ends with its `-- Dump completed` trailer.
//!
//! Every wait is bounded: the server is first pinged with the client and `--connect-timeout`
//! (the dump tool has no such option and would wait for ever on a server that never greets),
//! the dump is stopped when it writes nothing for `lock_wait_timeout` (a table locked by
//! another session: the dump tool cannot be given a lock timeout) or runs past `dump_timeout`.

use std::io::{Read, Seek, SeekFrom};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{MysqlSelection, MysqlSource};
use crate::process::{Cmd, ProcessError, describe_status};
use crate::source::Done;
use crate::units::human_bytes;
use crate::units::show_duration;

/// Databases that belong to the server, never dumped by `databases: all`.
const SYSTEM_DATABASES: [&str; 4] = ["information_schema", "performance_schema", "mysql", "sys"];

/// The flags every dump gets: one consistent InnoDB snapshot, rows streamed not buffered, and
/// the schema objects that a plain dump would silently leave out.
pub const DUMP_FLAGS: [&str; 6] = [
    "--single-transaction",
    "--quick",
    "--routines",
    "--triggers",
    "--events",
    "--hex-blob",
];

/// A connection's credentials in an in-memory options file, given to each client command.
pub struct Credentials {
    fd: Arc<OwnedFd>,
    password: Option<String>,
}

impl Credentials {
    /// Writes the options file for `src`.
    ///
    /// Fails when the password file cannot be read or holds more than the password (a second
    /// line, a control character), or a setting holds a control character.
    pub fn new(src: &MysqlSource) -> Result<Credentials, String> {
        let password = match &src.password_file {
            Some(path) => Some(read_password(path)?),
            None => None,
        };
        let mut text = String::from("[client]\n");
        let mut put = |key: &str, value: &str| -> Result<(), String> {
            if value.chars().any(|c| c.is_control() && c != '\t') {
                return Err(format!(
                    "the MySQL setting {key} holds a control character (a line break?): remove it"
                ));
            }
            text.push_str(&format!("{key}=\"{}\"\n", escape_option(value)));
            Ok(())
        };
        if let Some(user) = &src.user {
            put("user", user)?;
        }
        if let Some(password) = &password {
            put("password", password)?;
        }
        if let Some(host) = &src.host {
            put("host", host)?;
        }
        if let Some(port) = src.port {
            put("port", &port.to_string())?;
        }
        if let Some(socket) = &src.socket {
            put("socket", &socket.display().to_string())?;
        }
        let fd = options_fd(text.as_bytes())
            .map_err(|e| format!("cannot create the in-memory options file: {e}"))?;
        Ok(Credentials {
            fd: Arc::new(fd),
            password,
        })
    }

    /// `program` with the connection options (its first argument) and the password marked as
    /// a secret of the command.
    pub fn command(&self, program: &Path) -> Cmd {
        let cmd = Cmd::new(program)
            .arg(format!(
                "--defaults-extra-file=/dev/fd/{}",
                self.fd.as_raw_fd()
            ))
            .inherit_fd(self.fd.clone());
        match &self.password {
            // As written in the options file too, should a tool quote that.
            Some(p) => cmd.redact(p).redact(&escape_option(p)),
            None => cmd,
        }
    }

    /// `text` with the password masked, for messages built from a tool's output.
    pub fn redact(&self, text: &str) -> String {
        let mut secrets = crate::process::Secrets::default();
        if let Some(p) = &self.password {
            secrets.add(p);
        }
        secrets.mask(text)
    }
}

/// A memfd holding `text`, mode 0600 (the clients ignore a world-writable options file).
fn options_fd(text: &[u8]) -> std::io::Result<OwnedFd> {
    use rustix::fs::{MemfdFlags, Mode, fchmod, memfd_create};
    let fd = memfd_create("resticpilot-mysql-options", MemfdFlags::CLOEXEC)?;
    fchmod(&fd, Mode::from_raw_mode(0o600))?;
    let mut file = std::fs::File::from(fd);
    std::io::Write::write_all(&mut file, text)?;
    Ok(OwnedFd::from(file))
}

/// The password: the file's content less one final line break.
///
/// Fails when the file cannot be read, or holds a second line or a control character (the
/// message names the file, never its content).
fn read_password(path: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read password_file {}: {e}", path.display()))?;
    let password = text
        .strip_suffix("\r\n")
        .or_else(|| text.strip_suffix('\n'))
        .unwrap_or(&text);
    if password.contains(['\n', '\r']) {
        return Err(format!(
            "password_file {} holds more than one line: it must hold only the password (a final line break is fine)",
            path.display()
        ));
    }
    if password.chars().any(|c| c.is_control() && c != '\t') {
        return Err(format!(
            "password_file {} holds a control character: it must hold only the password",
            path.display()
        ));
    }
    Ok(password.to_string())
}

/// Escapes a value for a double-quoted option-file value.
fn escape_option(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\t', "\\t")
}

/// The dump tool: the configured one, else `mariadb-dump`, else `mysqldump` from PATH.
///
/// Fails when none is found.
pub fn dump_tool(src: &MysqlSource) -> Result<PathBuf, String> {
    if let Some(binary) = &src.binary {
        return Ok(binary.clone());
    }
    which::which("mariadb-dump")
        .or_else(|_| which::which("mysqldump"))
        .map_err(|_| "neither mariadb-dump nor mysqldump is on PATH: install the MariaDB or MySQL client (Debian: mariadb-client)".to_string())
}

/// The interactive client that goes with `dump_tool` (`mariadb` or `mysql`).
///
/// Fails when none is found.
pub fn client_tool(dump_tool: &Path) -> Result<PathBuf, String> {
    let dir = dump_tool.parent().unwrap_or(Path::new(""));
    for name in ["mariadb", "mysql"] {
        let sibling = dir.join(name);
        if sibling.is_file() {
            return Ok(sibling);
        }
    }
    which::which("mariadb")
        .or_else(|_| which::which("mysql"))
        .map_err(|_| "neither mariadb nor mysql (the client) is on PATH".to_string())
}

/// Checks that the server answers and accepts the account, within `connect_timeout`.
///
/// Fails with the client's message, or names the bound when the server never answered.
pub fn ping(client: &Path, creds: &Credentials, src: &MysqlSource) -> Result<(), String> {
    let bound = src.connect_timeout;
    let out = creds
        .command(client)
        .arg(format!("--connect-timeout={}", bound.as_secs().max(1)))
        .args(["--batch", "--skip-column-names", "-e", "SELECT 1"])
        // The greeting is bounded by --connect-timeout; what follows it is bounded here.
        .time_limit(bound * 2, "connect_timeout")
        .output()
        .map_err(|e| format!("the server did not answer: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "cannot connect to the server (connect_timeout {}): {}",
            show_duration(bound),
            out.stderr.trim()
        ));
    }
    Ok(())
}

/// Dumps the selected databases of `src` into `out`.
///
/// Fails with the tool's own message when it cannot connect, exits non-zero or is killed,
/// when it is stopped by one of the source's bounds, when the file lacks the completion
/// trailer, and names the directory and the key to change when the disk is full.
pub fn dump(src: &MysqlSource, out: &Path) -> Result<Done, String> {
    let tool = dump_tool(src)?;
    if let Err(e) = std::fs::metadata(&tool) {
        return Err(format!("could not start {}: {e}", tool.display()));
    }
    let creds = Credentials::new(src)?;
    let client = client_tool(&tool);
    if let Ok(client) = &client {
        ping(client, &creds, src)?;
    }
    let databases = match &src.databases {
        MysqlSelection::Named(names) => names.clone(),
        MysqlSelection::All => list_databases(&client?, &creds, src)?,
    };
    if databases.is_empty() {
        return Err("the server has no databases besides its own system schemas".into());
    }
    let cmd = creds
        .command(&tool)
        .args(DUMP_FLAGS)
        .args(&src.options)
        .arg("--databases")
        // Names are names, never options.
        .arg("--")
        .args(&databases)
        .stall_limit(src.lock_wait_timeout, "lock_wait_timeout")
        .time_limit(src.dump_timeout, "dump_timeout");
    tracing::debug!(command = %cmd, "dumping");
    let name = cmd.program_name();
    let written = || std::fs::metadata(out).map(|m| m.len()).unwrap_or(0);
    let output = match cmd.output_to_file(out) {
        Ok(output) => output,
        Err(ProcessError::Stopped { program, reason }) => {
            // The tool buffers its output: the file may lag behind the table it is at.
            let at = last_table(out).map_or(String::new(), |t| {
                format!(" (its output so far ends in table {t})")
            });
            let hint = if reason.contains("lock_wait_timeout") {
                format!(
                    "; it was waiting for the server{at}, most likely for a lock another session holds (LOCK TABLES ... WRITE, a long ALTER TABLE): find it with SHOW PROCESSLIST, or raise lock_wait_timeout"
                )
            } else {
                at
            };
            return Err(format!("{program} was stopped: {reason}{hint}"));
        }
        Err(e) if is_disk_full(&e.to_string()) => return Err(disk_full(out, written())),
        Err(e) => return Err(e.to_string()),
    };
    if !output.status.success() {
        if is_disk_full(&output.stderr) {
            return Err(disk_full(out, written()));
        }
        return Err(format!(
            "{name} {}: {}",
            describe_status(output.status),
            output.stderr.trim()
        ));
    }
    if !has_trailer(out).map_err(|e| format!("cannot read back {}: {e}", out.display()))? {
        return Err(format!(
            "{name} exited 0 but the dump lacks its `-- Dump completed` trailer: it is incomplete"
        ));
    }
    let tables = dumped_tables(out).unwrap_or_default();
    Ok(Done {
        source: databases.join(", "),
        method: name,
        tables,
        databases,
    })
}

/// Whether a tool's message says the disk filled (errno 28, ENOSPC).
pub fn is_disk_full(message: &str) -> bool {
    message.contains("errno 28")
        || message.contains("Errcode: 28")
        || message.contains("No space left on device")
}

/// The message for a dump that filled the disk of its staging directory.
fn disk_full(out: &Path, written: u64) -> String {
    let dir = out.parent().unwrap_or(Path::new("."));
    let free = rustix::fs::statvfs(dir)
        .map(|s| format!(", {} free now", human_bytes(s.f_bavail * s.f_frsize)))
        .unwrap_or_default();
    format!(
        "the staging directory {} ran out of space: the dump had written {} when the disk filled{free}. Free space there, or set `staging_dir` to a filesystem with room for the whole dump",
        dir.display(),
        human_bytes(written)
    )
}

/// The table a partial dump was at: its last "Dumping data for table" or "Table structure
/// for table" comment, with the database of the last `USE`.
fn last_table(path: &Path) -> Option<String> {
    let mut file = std::fs::File::open(path).ok()?;
    let len = file.metadata().ok()?.len();
    file.seek(SeekFrom::Start(len.saturating_sub(64 * 1024)))
        .ok()?;
    let mut tail = Vec::new();
    file.read_to_end(&mut tail).ok()?;
    let text = String::from_utf8_lossy(&tail);
    let table = text.lines().rev().find_map(|l| {
        l.strip_prefix("-- Dumping data for table ")
            .or_else(|| l.strip_prefix("-- Table structure for table "))
    })?;
    let db = dumped_tables(path).ok().and_then(|t| {
        t.last()
            .and_then(|t| t.split_once('.').map(|(d, _)| d.to_string()))
    });
    Some(match db {
        Some(db) => format!("`{db}`.{table}"),
        None => table.to_string(),
    })
}

fn list_databases(
    client: &Path,
    creds: &Credentials,
    src: &MysqlSource,
) -> Result<Vec<String>, String> {
    let out = creds
        .command(client)
        .arg(format!(
            "--connect-timeout={}",
            src.connect_timeout.as_secs().max(1)
        ))
        .args(["--batch", "--skip-column-names", "-e", "SHOW DATABASES"])
        .time_limit(src.connect_timeout * 2, "connect_timeout")
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!(
            "listing databases failed: {}: {}",
            describe_status(out.status),
            out.stderr.trim()
        ));
    }
    Ok(out
        .stdout_string()
        .lines()
        .map(str::trim)
        .filter(|db| !db.is_empty() && !SYSTEM_DATABASES.contains(db))
        .filter(|db| {
            let scratch = crate::source::is_scratch_database(db);
            if scratch {
                tracing::info!(
                    "not dumping {db}: the scratch database of a resticpilot verify in progress"
                );
            }
            !scratch
        })
        .map(str::to_string)
        .collect())
}

/// Whether the dump at `path` ends with the tool's completion comment.
pub fn has_trailer(path: &Path) -> std::io::Result<bool> {
    let mut file = std::fs::File::open(path)?;
    let len = file.metadata()?.len();
    file.seek(SeekFrom::Start(len.saturating_sub(512)))?;
    let mut tail = String::new();
    file.take(512).read_to_string(&mut tail).ok();
    Ok(tail
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .is_some_and(|l| l.starts_with("-- Dump completed")))
}

/// `db.table` for every CREATE TABLE in a dump, read line by line (memory stays flat).
///
/// One buffer is reused for every line: a dump has a line per row, so a fresh allocation per
/// line would make this read-back cost a noticeable share of the dump itself.
pub fn dumped_tables(path: &Path) -> std::io::Result<Vec<String>> {
    use std::io::BufRead;
    let mut reader = std::io::BufReader::with_capacity(1 << 20, std::fs::File::open(path)?);
    let mut db = String::new();
    let mut tables = Vec::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        if let Some(rest) = line.strip_prefix(b"USE `") {
            db = String::from_utf8_lossy(rest)
                .trim_end()
                .trim_end_matches(';')
                .trim_end_matches('`')
                .to_string();
        } else if let Some(rest) = line.strip_prefix(b"CREATE TABLE `") {
            let rest = String::from_utf8_lossy(rest);
            if let Some(name) = rest.split('`').next() {
                tables.push(format!("{db}.{name}"));
            }
        }
    }
    Ok(tables)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn option_values_are_escaped() {
        assert_eq!(escape_option(r#"a"b\c"#), r#"a\"b\\c"#);
    }

    #[test]
    fn trailer_must_be_the_last_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("d.sql");
        std::fs::write(
            &p,
            "CREATE TABLE `t` (\n);\n-- Dump completed on 2026-11-22 23:00:00\n",
        )
        .unwrap();
        assert!(has_trailer(&p).unwrap());
        std::fs::write(&p, "-- Dump completed on x\nINSERT INTO t VALUES (1);\n").unwrap();
        assert!(!has_trailer(&p).unwrap());
    }

    #[test]
    fn tables_are_read_from_the_dump() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("d.sql");
        std::fs::write(&p, "USE `shop`;\nCREATE TABLE `orders` (\n);\nCREATE TABLE `items` (\n);\nUSE `b`;\nCREATE TABLE `x` (\n").unwrap();
        assert_eq!(
            dumped_tables(&p).unwrap(),
            ["shop.orders", "shop.items", "b.x"]
        );
    }

    fn source(password_file: Option<std::path::PathBuf>) -> MysqlSource {
        MysqlSource {
            host: Some("127.0.0.1".into()),
            port: Some(3307),
            socket: None,
            user: Some("backup".into()),
            password_file,
            databases: MysqlSelection::All,
            options: vec![],
            binary: None,
            restore_user: None,
            restore_password_file: None,
            connect_timeout: super::super::DEFAULT_MYSQL_CONNECT_TIMEOUT,
            lock_wait_timeout: super::super::DEFAULT_MYSQL_LOCK_WAIT_TIMEOUT,
            dump_timeout: super::super::DEFAULT_MYSQL_DUMP_TIMEOUT,
            restore_timeout: super::super::DEFAULT_MYSQL_RESTORE_TIMEOUT,
        }
    }

    #[test]
    fn options_are_in_memory_private_and_the_password_redacted() {
        let dir = tempfile::tempdir().unwrap();
        let pw = dir.path().join("pw");
        std::fs::write(&pw, "s3cr\"et\n").unwrap();
        let creds = Credentials::new(&source(Some(pw))).unwrap();
        // What the tool would read: its descriptor, 0600, in memory only.
        let cmd = creds.command(Path::new("tool"));
        let arg = cmd.to_string();
        let fd = arg
            .split("--defaults-extra-file=/dev/fd/")
            .nth(1)
            .unwrap()
            .trim_end_matches('\'')
            .to_string();
        let path = format!("/proc/self/fd/{fd}");
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert!(
            std::fs::read_link(&path)
                .unwrap()
                .to_string_lossy()
                .starts_with("/memfd:"),
            "not a file on disk"
        );
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("password=\"s3cr\\\"et\""), "{text}");
        assert!(text.contains("port=\"3307\""));
        assert_eq!(creds.redact("denied for s3cr\"et"), "denied for <redacted>");
        // The child reads it through the same number.
        let tool = dir.path().join("tool");
        std::fs::write(
            &tool,
            "#!/bin/sh\ncat \"${1#--defaults-extra-file=}\" >&2; exit 1\n",
        )
        .unwrap();
        std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).unwrap();
        let out = creds.command(&tool).output().unwrap();
        assert!(
            out.stderr.contains("password=\"<redacted>"),
            "{}",
            out.stderr
        );
    }

    #[test]
    fn a_password_file_with_a_second_line_is_refused_without_quoting_it() {
        let dir = tempfile::tempdir().unwrap();
        let pw = dir.path().join("pw");
        std::fs::write(&pw, "first-line\nsecond-line\n").unwrap();
        let err = Credentials::new(&source(Some(pw.clone()))).err().unwrap();
        assert!(err.contains(&pw.display().to_string()), "{err}");
        assert!(err.contains("more than one line"), "{err}");
        assert!(!err.contains("first-line") && !err.contains("second-line"));
        std::fs::write(&pw, "only\r\n").unwrap();
        assert!(Credentials::new(&source(Some(pw))).is_ok());
    }
}
