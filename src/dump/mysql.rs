//! MySQL / MariaDB through `mariadb-dump` or `mysqldump`.
//!
//! The connection settings and the password go into a 0600 options file in a private temporary
//! directory, passed with `--defaults-extra-file` and removed when the dump ends: the password
//! is never in an argument list, an environment, a log line or an error. A dump counts only if
//! the tool exited 0 and the file ends with its `-- Dump completed` trailer.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::Done;
use crate::config::{MysqlSelection, MysqlSource};
use crate::process::{Cmd, describe_status};

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

/// A connection's credentials written to a private options file, deleted on drop.
pub struct Credentials {
    dir: tempfile::TempDir,
    password: Option<String>,
}

impl Credentials {
    /// Writes the options file for `src`.
    ///
    /// Fails when the password file cannot be read or the options file cannot be written.
    pub fn new(src: &MysqlSource) -> Result<Credentials, String> {
        let password = match &src.password_file {
            Some(path) => Some(read_password(path)?),
            None => None,
        };
        let dir = tempfile::Builder::new()
            .prefix("resticpilot-mysql-")
            .tempdir()
            .map_err(|e| format!("cannot create a private directory for the options file: {e}"))?;
        let mut text = String::from("[client]\n");
        let mut put = |key: &str, value: &str| {
            text.push_str(&format!("{key}=\"{}\"\n", escape_option(value)));
        };
        if let Some(user) = &src.user {
            put("user", user);
        }
        if let Some(password) = &password {
            put("password", password);
        }
        if let Some(host) = &src.host {
            put("host", host);
        }
        if let Some(port) = src.port {
            put("port", &port.to_string());
        }
        if let Some(socket) = &src.socket {
            put("socket", &socket.display().to_string());
        }
        let path = dir.path().join("client.cnf");
        let mut file = crate::process::create_private(&path)
            .map_err(|e| format!("cannot write the options file: {e}"))?;
        file.write_all(text.as_bytes())
            .and_then(|_| file.sync_all())
            .map_err(|e| format!("cannot write the options file: {e}"))?;
        Ok(Credentials { dir, password })
    }

    /// The argument that must come first on a client's command line.
    pub fn arg(&self) -> String {
        format!(
            "--defaults-extra-file={}",
            self.dir.path().join("client.cnf").display()
        )
    }

    /// `text` with the password masked, for any message that quotes a tool's output. The
    /// clients never print the password; this is a second line of defence. Passwords shorter
    /// than four characters are left alone: masking them would garble ordinary words.
    pub fn redact(&self, text: &str) -> String {
        match &self.password {
            Some(p) if p.chars().count() >= 4 => text.replace(p.as_str(), "<redacted>"),
            _ => text.to_string(),
        }
    }
}

fn read_password(path: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read password_file {}: {e}", path.display()))?;
    Ok(text.trim_end_matches(['\n', '\r']).to_string())
}

/// Escapes a value for a double-quoted option-file value.
fn escape_option(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"")
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

/// Dumps the selected databases of `src` into `out`.
///
/// Fails with the tool's own message when it cannot connect, exits non-zero or is killed, and
/// when the file lacks the completion trailer.
pub fn dump(src: &MysqlSource, out: &Path) -> Result<Done, String> {
    let tool = dump_tool(src)?;
    let creds = Credentials::new(src)?;
    let databases = match &src.databases {
        MysqlSelection::Named(names) => names.clone(),
        MysqlSelection::All => list_databases(&client_tool(&tool)?, &creds)?,
    };
    if databases.is_empty() {
        return Err("the server has no databases besides its own system schemas".into());
    }
    let cmd = Cmd::new(&tool)
        .arg(creds.arg())
        .args(DUMP_FLAGS)
        .args(&src.options)
        .arg("--databases")
        .args(&databases);
    tracing::debug!(command = %cmd, "dumping");
    let name = cmd.program_name();
    let output = cmd
        .output_to_file(out)
        .map_err(|e| creds.redact(&e.to_string()))?;
    if !output.status.success() {
        return Err(creds.redact(&format!(
            "{name} {}: {}",
            describe_status(output.status),
            output.stderr.trim()
        )));
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
    })
}

fn list_databases(client: &Path, creds: &Credentials) -> Result<Vec<String>, String> {
    let out = Cmd::new(client)
        .arg(creds.arg())
        .args(["--batch", "--skip-column-names", "-e", "SHOW DATABASES"])
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(creds.redact(&format!(
            "listing databases failed: {}: {}",
            describe_status(out.status),
            out.stderr.trim()
        )));
    }
    Ok(out
        .stdout_string()
        .lines()
        .map(str::trim)
        .filter(|db| !db.is_empty() && !SYSTEM_DATABASES.contains(db))
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

    #[test]
    fn credentials_file_is_private_and_redacts() {
        let dir = tempfile::tempdir().unwrap();
        let pw = dir.path().join("pw");
        std::fs::write(&pw, "s3cr\"et\n").unwrap();
        let src = MysqlSource {
            host: Some("127.0.0.1".into()),
            port: Some(3307),
            socket: None,
            user: Some("backup".into()),
            password_file: Some(pw),
            databases: MysqlSelection::All,
            options: vec![],
            binary: None,
            restore_user: None,
            restore_password_file: None,
        };
        let creds = Credentials::new(&src).unwrap();
        let file = creds
            .arg()
            .trim_start_matches("--defaults-extra-file=")
            .to_string();
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(text.contains("password=\"s3cr\\\"et\""), "{text}");
        assert!(text.contains("port=\"3307\""));
        assert_eq!(creds.redact("denied for s3cr\"et"), "denied for <redacted>");
        drop(creds);
        assert!(!Path::new(&file).exists(), "options file removed on drop");
    }
}
