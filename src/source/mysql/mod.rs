//! MySQL / MariaDB sources (`type: mysql`, alias `mariadb`): `mariadb-dump` or `mysqldump`
//! found on PATH, in one transaction, checked by its exit status and its completion trailer;
//! restored through the client after the whole dump was checked to stay inside its
//! databases. Everything resticpilot knows about MySQL is here.

pub mod drill;
pub mod dump;
pub mod restore;
pub mod sqlcheck;

use std::any::Any;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_saphyr::Location;

use super::{Done, Engine, Extra, Source, SourceAt};
use crate::config::Resolver;
use crate::config::raw::RawDatabase;

/// The engine of `type: mysql` (and `type: mariadb`).
pub struct Mysql;

/// Registered in [`super::REGISTRY`].
pub static ENGINE: Mysql = Mysql;

impl Engine for Mysql {
    fn names(&self) -> &'static [&'static str] {
        &["mysql", "mariadb"]
    }

    fn extension(&self) -> &'static str {
        "sql"
    }

    fn keys(&self) -> &'static [&'static str] {
        &[
            "host",
            "port",
            "socket",
            "user",
            "password_file",
            "databases",
            "options",
            "binary",
            "restore_user",
            "restore_password_file",
            "connect_timeout",
            "lock_wait_timeout",
            "dump_timeout",
            "restore_timeout",
        ]
    }

    fn schema(&self) -> &'static str {
        include_str!("schema.json")
    }

    fn resolve(&self, r: &mut Resolver, at: &SourceAt<'_>) -> Option<Arc<dyn Source>> {
        let source = resolve_source(r, at.name, at.raw, at.at)?;
        Some(Arc::new(source))
    }

    fn check_manifest(&self, db: &crate::restore::ManifestDatabase) -> Result<(), String> {
        for name in db.mysql_databases() {
            if !crate::restore::is_plain_name(&name) {
                return Err(format!(
                    "its manifest says the dump of database {} holds the MySQL database {name:?}, which cannot name a file",
                    db.name
                ));
            }
        }
        Ok(())
    }

    fn drill(
        &self,
        run: &super::Drill<'_>,
        db: &crate::restore::ManifestDatabase,
        source: Option<&dyn Source>,
    ) -> crate::restore::drill::DatabaseCheck {
        let source = source.and_then(|s| s.as_any().downcast_ref::<MysqlSource>());
        drill::check(run.restic, run.contents, db, source)
    }
}

fn resolve_source(
    r: &mut Resolver,
    name: &str,
    d: &RawDatabase,
    at: &Location,
) -> Option<MysqlSource> {
    let key = |k: &str| format!("databases.{name}.{k}");
    let databases = match super::database_list(
        r,
        &super::ListOf {
            engine: "mysql",
            name,
            at,
            check: &check_name_for_dump,
            unique: false,
        },
        d.databases.as_ref(),
    )? {
        None => MysqlSelection::All,
        Some(names) => MysqlSelection::Named(names),
    };
    let options = super::dump_options(r, name, &d.options, &OPTION_GUARD);
    Some(MysqlSource {
        host: d.host.as_ref().and_then(|s| r.nonempty(s, &key("host"))),
        port: d.port.as_ref().map(|p| p.value),
        socket: d.socket.as_ref().and_then(|s| r.path(s, &key("socket"))),
        user: d.user.as_ref().and_then(|s| r.nonempty(s, &key("user"))),
        password_file: d
            .password_file
            .as_ref()
            .and_then(|s| r.path(s, &key("password_file"))),
        databases,
        options,
        binary: d.binary.as_ref().and_then(|s| r.path(s, &key("binary"))),
        restore_user: d
            .restore_user
            .as_ref()
            .and_then(|s| r.nonempty(s, &key("restore_user"))),
        restore_password_file: d
            .restore_password_file
            .as_ref()
            .and_then(|s| r.path(s, &key("restore_password_file"))),
        connect_timeout: r
            .timeout(d.connect_timeout.as_ref(), &key("connect_timeout"))
            .unwrap_or(DEFAULT_MYSQL_CONNECT_TIMEOUT),
        lock_wait_timeout: r
            .timeout(d.lock_wait_timeout.as_ref(), &key("lock_wait_timeout"))
            .unwrap_or(DEFAULT_MYSQL_LOCK_WAIT_TIMEOUT),
        dump_timeout: r
            .timeout(d.dump_timeout.as_ref(), &key("dump_timeout"))
            .unwrap_or(DEFAULT_MYSQL_DUMP_TIMEOUT),
        restore_timeout: r
            .timeout(d.restore_timeout.as_ref(), &key("restore_timeout"))
            .unwrap_or(DEFAULT_MYSQL_RESTORE_TIMEOUT),
    })
}

/// What `options:` may not pass to the dump tool.
pub static OPTION_GUARD: super::OptionGuard = super::OptionGuard {
    forbidden: &[
        (
            "--skip-comments",
            "the `-- Dump completed` trailer that proves a dump finished needs comments",
        ),
        (
            "--compact",
            "it drops the `-- Dump completed` trailer that proves a dump finished",
        ),
        (
            "--password",
            "passwords go in password_file, never on a command line",
        ),
        ("--result-file", "resticpilot writes the dump file itself"),
        ("--tab", "resticpilot needs one SQL file per source"),
        (
            "--defaults-file",
            "resticpilot passes the connection through its own options file",
        ),
        (
            "--defaults-extra-file",
            "resticpilot passes the connection through its own options file",
        ),
    ],
    other: |flag, _| {
        // Named by its first two characters only: what follows `-p` is a password.
        (flag.starts_with("-p") || flag.starts_with("-r") || flag == "-T").then(|| {
            format!(
                "short option {} is not allowed: use the long form (passwords go in password_file)",
                &flag[..2]
            )
        })
    },
};

/// Whether `name` can be a MySQL database name that resticpilot passes to the dump tool:
/// 1 to 64 characters, no control characters, no leading '-' (it would become an option),
/// no trailing space (the server refuses it).
///
/// Fails with the reason, to follow the quoted name in a message.
pub fn check_name_for_dump(name: &str) -> Result<(), String> {
    if name.is_empty() {
        Err("is empty".into())
    } else if name.chars().count() > 64 {
        Err(format!(
            "is {} characters long: MySQL database names have at most 64",
            name.chars().count()
        ))
    } else if name.starts_with('-') {
        Err("starts with '-': the dump tool would take it for an option".into())
    } else if name.chars().any(char::is_control) {
        Err("holds a control character".into())
    } else if name.ends_with(' ') {
        Err("ends with a space, which MySQL does not allow".into())
    } else {
        Ok(())
    }
}

/// Defaults of a MySQL source's bounds: connecting (and the server's greeting), a lock held
/// by another session (the dump: no byte written for this long), the whole dump, the whole
/// load of a restore or drill.
pub const DEFAULT_MYSQL_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
pub const DEFAULT_MYSQL_LOCK_WAIT_TIMEOUT: Duration = Duration::from_secs(300);
pub const DEFAULT_MYSQL_DUMP_TIMEOUT: Duration = Duration::from_secs(12 * 3600);
pub const DEFAULT_MYSQL_RESTORE_TIMEOUT: Duration = Duration::from_secs(12 * 3600);

#[derive(Debug, Clone)]
pub struct MysqlSource {
    pub host: Option<String>,
    pub port: Option<u16>,
    pub socket: Option<PathBuf>,
    pub user: Option<String>,
    pub password_file: Option<PathBuf>,
    pub databases: MysqlSelection,
    pub options: Vec<String>,
    /// The dump tool; found on PATH (`mariadb-dump`, then `mysqldump`) when not set.
    pub binary: Option<PathBuf>,
    /// Who `restore` and `verify` connect as, when not `user` / `password_file`: loading a
    /// dump needs CREATE, DROP, INSERT, ALTER, TRIGGER... that a backup user should not have.
    pub restore_user: Option<String>,
    pub restore_password_file: Option<PathBuf>,
    /// How long connecting may take, the server's greeting included (`connect_timeout`).
    pub connect_timeout: Duration,
    /// How long a statement may wait for a lock another session holds; the dump, which
    /// cannot be told, is stopped when it writes nothing for this long (`lock_wait_timeout`).
    pub lock_wait_timeout: Duration,
    /// The whole dump (`dump_timeout`).
    pub dump_timeout: Duration,
    /// The whole load of a restore or of the drill (`restore_timeout`).
    pub restore_timeout: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MysqlSelection {
    /// Every database but the server's own (`mysql`, `sys`, the schemas).
    All,
    Named(Vec<String>),
}

impl MysqlSource {
    /// "host:port", the socket, or "the default server".
    fn server(&self) -> String {
        self.socket
            .as_ref()
            .map(|s| s.display().to_string())
            .or_else(|| {
                self.host
                    .as_ref()
                    .map(|h| format!("{h}:{}", self.port.unwrap_or(3306)))
            })
            .unwrap_or_else(|| "the default server".into())
    }
}

impl Source for MysqlSource {
    fn engine(&self) -> &'static dyn Engine {
        &ENGINE
    }

    fn describe(&self) -> String {
        format!(
            "mysql {}",
            match &self.databases {
                MysqlSelection::All => "all databases".to_string(),
                MysqlSelection::Named(n) => n.join(", "),
            }
        )
    }

    fn dump_plan(&self) -> String {
        format!(
            "{} {}",
            dump::dump_tool(self)
                .map(|t| t.display().to_string())
                .unwrap_or_else(|e| format!("<{e}>")),
            dump::DUMP_FLAGS.join(" ")
        )
    }

    fn location_noun(&self) -> &'static str {
        "database"
    }

    fn dump(&self, out: &Path) -> Result<(Done, Extra), String> {
        dump::dump(self, out).map(|d| (d, Extra::default()))
    }

    fn space_needed(&self) -> String {
        "a SQL dump is about the size of the database's data, often more".to_string()
    }

    fn named_paths(&self) -> Vec<(PathBuf, &'static str)> {
        [
            (&self.password_file, "password_file"),
            (&self.restore_password_file, "restore_password_file"),
            (&self.socket, "socket"),
            (&self.binary, "binary"),
        ]
        .into_iter()
        .filter_map(|(file, what)| file.clone().map(|f| (f, what)))
        .collect()
    }

    fn restore(
        &self,
        run: &super::Restore<'_>,
        db: &crate::restore::ManifestDatabase,
    ) -> Result<super::Restored, crate::error::Error> {
        use crate::restore::{RestoreError, count};
        use crate::units::human_bytes;
        let map = restore::target_map(db, run.into)
            .map_err(|e| RestoreError::failed(format!("database {}", db.name), e))?;
        let r = restore::restore(
            run.restic,
            run.contents,
            db,
            self,
            map,
            run.force,
            &run.keep_dir,
        )?;
        let names: Vec<String> = r
            .loaded
            .databases
            .iter()
            .map(|(from, to)| {
                if from == to {
                    to.clone()
                } else {
                    format!("{to} (from {from})")
                }
            })
            .collect();
        let mut out = super::Restored::default();
        out.lines.push(format!(
            "database {} (mysql): {} loaded into {} in {:.1}s; {}, as in the dump",
            db.name,
            human_bytes(r.loaded.bytes),
            names.join(", "),
            r.loaded.duration.as_secs_f64(),
            count(r.loaded.tables.len() as u64, "table")
        ));
        for p in &r.previous {
            out.lines
                .push(format!("  previous content kept in {}", p.display()));
        }
        if !r.loaded.extra.is_empty() {
            out.warnings.push(format!(
                "database {}: tables not in the dump were left as they were: {}",
                db.name,
                r.loaded.extra.join(", ")
            ));
        }
        Ok(out)
    }

    fn restore_plan(
        &self,
        run: &super::Restore<'_>,
        db: &crate::restore::ManifestDatabase,
        from: &str,
    ) -> Vec<String> {
        let map = match restore::target_map(db, run.into) {
            Ok(map) => map,
            Err(e) => {
                return vec![format!(
                    "database  {} (mysql): cannot restore: {e}",
                    db.name
                )];
            }
        };
        let server = self.server();
        let mut lines = Vec::new();
        for (from_db, to_db) in map {
            let state = match restore::Conn::new(self).map(|c| c.contents(&to_db)) {
                Ok(Ok(None)) => "does not exist: created".to_string(),
                Ok(Ok(Some(0))) => "exists, empty".to_string(),
                Ok(Ok(Some(n))) => format!(
                    "exists with {n} tables and routines: needs --force, and its content is dumped into {} first",
                    run.keep_dir.display()
                ),
                Ok(Err(e)) | Err(e) => format!("cannot inspect it now: {e}"),
            };
            lines.push(format!(
                "database  {} (mysql): {from} -> {server} database {to_db}{} ({state})",
                db.name,
                if from_db == to_db {
                    String::new()
                } else {
                    format!(" (renamed from {from_db})")
                }
            ));
        }
        lines
    }

    fn restore_to_file(
        &self,
        restic: &crate::restic::Restic,
        contents: &crate::restore::Contents,
        db: &crate::restore::ManifestDatabase,
        dest: &Path,
    ) -> Result<String, crate::error::Error> {
        use crate::error::Error;
        use crate::restore::RestoreError;
        let file = crate::process::create_private(dest)
            .map_err(|e| Error::io(format!("cannot create {}", dest.display()), e))?;
        let mut sink = std::io::BufWriter::new(file);
        let result = restic
            .dump(contents.id(), &contents.dump_path(db), &mut sink)
            .map_err(Error::from)
            .and_then(|()| {
                let file = sink.into_inner().map_err(|e| {
                    Error::io(format!("cannot write {}", dest.display()), e.into_error())
                })?;
                file.sync_all()
                    .map_err(|e| Error::io(format!("cannot write {}", dest.display()), e))?;
                match dump::has_trailer(dest) {
                    Ok(true) => Ok(()),
                    Ok(false) => Err(RestoreError::failed(
                        format!("database {}", db.name),
                        "the dump in the snapshot lacks its `-- Dump completed` trailer: it is incomplete",
                    )
                    .into()),
                    Err(e) => Err(Error::io(format!("cannot read {}", dest.display()), e)),
                }
            });
        if let Err(e) = result {
            let _ = std::fs::remove_file(dest);
            return Err(e);
        }
        Ok("checked".to_string())
    }

    fn check_into(&self, name: &str) -> Option<Result<(), String>> {
        Some(restore::check_name(name))
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
