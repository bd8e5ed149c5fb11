//! Connecting to PostgreSQL: the client tools found on PATH, and a connection's settings given
//! to each of them. The password goes into a passfile that exists only in memory (a memfd,
//! mode 0600) which the child alone inherits and libpq reads through `PGPASSFILE=/dev/fd/N`:
//! it is never on disk, in an argument list, in an environment (only the passfile's path is),
//! in a log line or in an error (whatever the tools print is masked too). `-w` makes every
//! tool fail rather than prompt, and `PGCONNECT_TIMEOUT` bounds connecting.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::PgSource;
use crate::process::{Cmd, Secrets};

/// A PostgreSQL client tool (`pg_dump`, `pg_restore`, `pg_dumpall`, `psql`) from PATH.
///
/// Fails when it is not there, naming the package.
pub fn tool(name: &str) -> Result<PathBuf, String> {
    which::which(name).map_err(|_| {
        format!("{name} is not on PATH: install the PostgreSQL client (Debian: postgresql-client)")
    })
}

/// A connection's settings and credentials, given to each client command.
pub struct Conn {
    pub source: PgSource,
    passfile: Option<Arc<OwnedFd>>,
    password: Option<String>,
}

/// A failed query: the message, and whether the server could not be reached at all.
#[derive(Debug)]
pub struct QueryError {
    pub message: String,
    pub unreachable: bool,
}

impl std::fmt::Display for QueryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl Conn {
    /// Reads the password file of `source` into an in-memory passfile.
    ///
    /// Fails when the password file cannot be read or holds more than the password.
    pub fn new(source: &PgSource) -> Result<Conn, String> {
        let password = match &source.password_file {
            Some(path) => Some(read_password(path)?),
            None => None,
        };
        let passfile = match &password {
            Some(p) => {
                Some(Arc::new(passfile_fd(p).map_err(|e| {
                    format!("cannot create the in-memory passfile: {e}")
                })?))
            }
            None => None,
        };
        Ok(Conn {
            source: source.clone(),
            passfile,
            password,
        })
    }

    /// The same server, logged in as `user` with `password` (kept in its own in-memory
    /// passfile like the configured one).
    ///
    /// Fails when the passfile cannot be made.
    pub fn as_login(&self, user: &str, password: &str) -> Result<Conn, String> {
        let mut source = self.source.clone();
        source.user = Some(user.to_string());
        source.password_file = None;
        let fd = passfile_fd(password)
            .map_err(|e| format!("cannot create the in-memory passfile: {e}"))?;
        Ok(Conn {
            source,
            passfile: Some(Arc::new(fd)),
            password: Some(password.to_string()),
        })
    }

    /// `tool` with the connection's settings: host or socket, port, user, no prompt, the
    /// connect bound, the passfile; the password marked as a secret of the command.
    pub fn command(&self, tool: &Path) -> Cmd {
        let s = &self.source;
        let mut cmd = Cmd::new(tool)
            .env(
                "PGCONNECT_TIMEOUT",
                s.connect_timeout.as_secs().max(2).to_string(),
            )
            // Settings that would change where or as whom the tools connect come from the
            // config only.
            .env_remove("PGSERVICE")
            .env_remove("PGSERVICEFILE")
            .env_remove("PGDATABASE")
            .env_remove("PGOPTIONS");
        if let Some(socket) = &s.socket {
            cmd = cmd.arg("--host").arg(socket);
        } else if let Some(host) = &s.host {
            cmd = cmd.arg(format!("--host={host}"));
        }
        if let Some(port) = s.port {
            cmd = cmd.arg(format!("--port={port}"));
        }
        if let Some(user) = &s.user {
            cmd = cmd.arg(format!("--username={user}"));
        }
        cmd = cmd.arg("--no-password");
        match (&self.passfile, &self.password) {
            (Some(fd), Some(p)) => cmd
                .env("PGPASSFILE", format!("/dev/fd/{}", fd.as_raw_fd()))
                .env_remove("PGPASSWORD")
                .inherit_fd(fd.clone())
                .redact(p),
            _ => cmd,
        }
    }

    /// `text` with the password masked, for messages built from a tool's output.
    pub fn redact(&self, text: &str) -> String {
        let mut secrets = Secrets::default();
        if let Some(p) = &self.password {
            secrets.add(p);
        }
        secrets.mask(text)
    }

    /// Runs `sql` in database `db` through psql; returns the rows, one line each, columns
    /// separated by tabs.
    ///
    /// Fails with psql's message; `unreachable` is set when no connection was made.
    pub fn query(&self, db: &str, sql: &str) -> Result<Vec<String>, QueryError> {
        self.psql(db, sql, None, false)
    }

    /// [`Conn::query`] for undoing what this run made (a scratch database, a temporary
    /// role): it still runs while the run is being stopped by a signal.
    pub fn cleanup_query(&self, db: &str, sql: &str) -> Result<Vec<String>, QueryError> {
        self.psql(db, sql, None, true)
    }

    /// [`Conn::query`] for a statement holding `secret`: the statement goes to psql through
    /// an in-memory file it inherits (never its argument list), and `secret` is masked in
    /// whatever psql prints.
    pub fn query_secret(
        &self,
        db: &str,
        sql: &str,
        secret: &str,
    ) -> Result<Vec<String>, QueryError> {
        self.psql(db, sql, Some(secret), false)
    }

    fn psql(
        &self,
        db: &str,
        sql: &str,
        secret: Option<&str>,
        cleanup: bool,
    ) -> Result<Vec<String>, QueryError> {
        let psql = tool("psql").map_err(|message| QueryError {
            message,
            unreachable: false,
        })?;
        let bound = self.source.connect_timeout;
        let mut cmd = self
            .command(&psql)
            .arg(format!("--dbname={}", conninfo_dbname(db)))
            .args(["-X", "-q", "-A", "-t", "-F", "\t", "-v", "ON_ERROR_STOP=1"]);
        if cleanup {
            cmd = cmd.cleanup();
        }
        let mut secrets = Secrets::default();
        if let Some(p) = &self.password {
            secrets.add(p);
        }
        if let Some(secret) = secret {
            let fd = sql_fd(sql).map_err(|e| QueryError {
                message: format!("cannot create an in-memory file for psql: {e}"),
                unreachable: false,
            })?;
            secrets.add(secret);
            cmd = cmd
                .arg("-f")
                .arg(format!("/dev/fd/{}", fd.as_raw_fd()))
                .inherit_fd(Arc::new(fd))
                .redact(secret);
        } else {
            cmd = cmd.arg("-c").arg(sql);
        }
        let out = cmd
            .time_limit(
                bound * 4 + std::time::Duration::from_secs(60),
                "connect_timeout",
            )
            .output()
            .map_err(|e| QueryError {
                message: secrets.mask(&e.to_string()),
                unreachable: false,
            })?;
        if !out.status.success() {
            let stderr = secrets.mask(out.stderr.trim());
            let unreachable = stderr.contains("could not connect")
                || stderr.contains("Connection refused")
                || stderr.contains("No such file or directory")
                || stderr.contains("timeout expired")
                || stderr.contains("could not translate host name");
            return Err(QueryError {
                message: if unreachable {
                    format!(
                        "the server {} is not reachable (connect_timeout {}s): {stderr}",
                        self.source.server(),
                        bound.as_secs()
                    )
                } else {
                    stderr
                },
                unreachable,
            });
        }
        Ok(out
            .stdout_string()
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect())
    }

    /// The server's version (`server_version_num`, e.g. 150018).
    ///
    /// Fails when the server cannot be reached or the login is refused.
    pub fn server_version(&self) -> Result<u32, QueryError> {
        let rows = self.query("postgres", "SHOW server_version_num")?;
        rows.first()
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| QueryError {
                message: format!("the server answered {rows:?} to SHOW server_version_num"),
                unreachable: false,
            })
    }
}

/// A `--dbname` value naming database `db` (a conninfo string, so that a name holding `=`
/// is not taken for one).
pub fn conninfo_dbname(db: &str) -> String {
    format!("dbname='{}'", db.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// Whether database `name` exists on the server of `conn`.
///
/// Fails when the server cannot be asked.
pub fn database_exists(conn: &Conn, name: &str) -> Result<bool, QueryError> {
    Ok(!conn
        .query(
            "postgres",
            &format!(
                "SELECT 1 FROM pg_database WHERE datname = {}",
                literal(name)
            ),
        )?
        .is_empty())
}

/// `name` as an SQL identifier: `"name"`, quotes doubled.
pub fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `text` as an SQL string literal (standard_conforming_strings): `'text'`, quotes doubled.
pub fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// The major version of a client tool (`pg_dump (PostgreSQL) 15.18 (Debian ...)` -> 15).
///
/// Fails when the tool cannot run or says something else.
pub fn tool_version(tool: &Path) -> Result<(u32, String), String> {
    let out = Cmd::new(tool)
        .arg("--version")
        .output()
        .map_err(|e| e.to_string())?;
    parse_version(&out.stdout_string()).ok_or_else(|| {
        format!(
            "{} --version said {:?}",
            tool.display(),
            out.stdout_string()
        )
    })
}

/// The major version and the version of a `--version` line.
fn parse_version(text: &str) -> Option<(u32, String)> {
    let version = text.split_whitespace().nth(2)?.to_string();
    let major = version.split(['.', 'b', 'r']).next()?.parse().ok()?;
    Some((major, version))
}

/// A memfd passfile matching any host, port, database and user with `password`, mode 0600
/// (libpq ignores a passfile that others can read).
fn passfile_fd(password: &str) -> std::io::Result<OwnedFd> {
    use rustix::fs::{MemfdFlags, Mode, fchmod, memfd_create};
    let fd = memfd_create("resticpilot-pgpass", MemfdFlags::CLOEXEC)?;
    fchmod(&fd, Mode::from_raw_mode(0o600))?;
    let mut file = std::fs::File::from(fd);
    let escaped = password.replace('\\', "\\\\").replace(':', "\\:");
    std::io::Write::write_all(&mut file, format!("*:*:*:*:{escaped}\n").as_bytes())?;
    Ok(OwnedFd::from(file))
}

/// A memfd holding `sql`, for `psql -f /dev/fd/N`.
fn sql_fd(sql: &str) -> std::io::Result<OwnedFd> {
    use rustix::fs::{MemfdFlags, Mode, fchmod, memfd_create};
    let fd = memfd_create("resticpilot-sql", MemfdFlags::CLOEXEC)?;
    fchmod(&fd, Mode::from_raw_mode(0o600))?;
    let mut file = std::fs::File::from(fd);
    std::io::Write::write_all(&mut file, sql.as_bytes())?;
    std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(0))?;
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
    if password.contains(['\n', '\r']) || password.chars().any(|c| c.is_control()) {
        return Err(format!(
            "password_file {} holds more than one line or a control character: it must hold only the password (a final line break is fine)",
            path.display()
        ));
    }
    Ok(password.to_string())
}

#[cfg(test)]
mod tests {
    use super::{conninfo_dbname, ident, literal, parse_version};

    #[test]
    fn client_versions_are_read_from_version_lines() {
        assert_eq!(
            parse_version("pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)\n"),
            Some((15, "15.18".to_string()))
        );
        assert_eq!(
            parse_version("pg_dump (PostgreSQL) 17beta2\n").map(|v| v.0),
            Some(17)
        );
        assert_eq!(parse_version("nonsense"), None);
    }

    #[test]
    fn names_are_quoted_for_sql_and_conninfo() {
        assert_eq!(ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(literal("it's"), "'it''s'");
        assert_eq!(conninfo_dbname("x' host=evil"), "dbname='x\\' host=evil'");
    }
}
