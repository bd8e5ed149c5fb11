//! PostgreSQL sources (`type: postgresql`, alias `postgres`): one `pg_dump` archive per
//! database (custom format, uncompressed: restic deduplicates and compresses), plus the
//! cluster's globals (`pg_dumpall --globals-only`) for `databases: all` or `globals: true`.
//! The source's dump is a directory `<name>.pgdump/` in staging holding `<database>.dump`
//! files and `globals.sql`. Restores go into a scratch database that replaces the target by
//! rename only once it loaded whole. Everything resticpilot knows about PostgreSQL is here.

pub mod client;
pub mod dump;
pub mod load_role;
pub mod restore;

use std::any::Any;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::{Done, Engine, Extra, Source, SourceAt};
use crate::config::Resolver;
use crate::restore::ManifestDatabase;

/// The engine of `type: postgresql` (and `type: postgres`).
pub struct Postgresql;

/// Registered in [`super::REGISTRY`].
pub static ENGINE: Postgresql = Postgresql;

/// The file of one database's archive inside the source's dump directory.
pub fn archive_name(database: &str) -> String {
    format!("{database}.dump")
}

/// The file of the globals inside the source's dump directory.
pub const GLOBALS_FILE: &str = "globals.sql";

pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
pub const DEFAULT_LOCK_WAIT_TIMEOUT: Duration = Duration::from_secs(300);
pub const DEFAULT_DUMP_TIMEOUT: Duration = Duration::from_secs(12 * 3600);
pub const DEFAULT_RESTORE_TIMEOUT: Duration = Duration::from_secs(12 * 3600);

impl Engine for Postgresql {
    fn names(&self) -> &'static [&'static str] {
        &["postgresql", "postgres"]
    }

    fn extension(&self) -> &'static str {
        "pgdump"
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
            "globals",
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
        resolve_source(r, at).map(|s| Arc::new(s) as Arc<dyn Source>)
    }

    fn check_manifest(&self, db: &ManifestDatabase) -> Result<(), String> {
        let list = db.databases.clone().unwrap_or_default();
        if list.is_empty() {
            return Err(format!(
                "its manifest lists no PostgreSQL database in the dump of {}",
                db.name
            ));
        }
        for name in list {
            if let Err(why) = check_name(&name) {
                return Err(format!(
                    "its manifest says the dump of database {} holds the PostgreSQL database {name:?}, which {why}",
                    db.name
                ));
            }
        }
        Ok(())
    }

    fn drill(
        &self,
        run: &super::Drill<'_>,
        db: &ManifestDatabase,
        source: Option<&dyn Source>,
    ) -> crate::restore::drill::DatabaseCheck {
        let source = source.and_then(|s| s.as_any().downcast_ref::<PgSource>());
        restore::drill(run, db, source)
    }
}

/// Whether `name` can be a PostgreSQL database that resticpilot dumps, restores or names a
/// file after: 1 to 63 bytes, no control character, not `.` or `..`, no `/`, no leading `-`.
///
/// Fails with the reason, to follow the quoted name in a message.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        Err("is empty".into())
    } else if name.len() > 63 {
        Err(format!(
            "is {} bytes long: PostgreSQL names have at most 63",
            name.len()
        ))
    } else if name.starts_with('-') {
        Err("starts with '-': a tool would take it for an option".into())
    } else if name.chars().any(char::is_control) {
        Err("holds a control character".into())
    } else if name.contains('/') || name == "." || name == ".." {
        Err("cannot name a file (it holds '/' or is '.' or '..')".into())
    } else {
        Ok(())
    }
}

/// What `options:` may not pass to `pg_dump`.
pub static OPTION_GUARD: super::OptionGuard = super::OptionGuard {
    forbidden: &[
        ("--password", "passwords go in password_file"),
        ("--file", "resticpilot writes the dump file itself"),
        (
            "--format",
            "resticpilot dumps in the custom format (see the README)",
        ),
        (
            "--compress",
            "restic compresses; a compressed dump defeats dedup",
        ),
        ("--dbname", "the databases come from `databases`"),
        ("--host", "use the `host` key"),
        ("--port", "use the `port` key"),
        ("--username", "use the `user` key"),
        (
            "--jobs",
            "a directory-format option; resticpilot writes one archive",
        ),
        (
            "--create",
            "restores choose their target database themselves",
        ),
    ],
    other: |flag, option| {
        (!flag.starts_with("--")).then(|| {
            format!(
                "option {option:?} is not allowed: give pg_dump options in their long form (--name or --name=value)"
            )
        })
    },
};

fn resolve_source(r: &mut Resolver, at: &SourceAt<'_>) -> Option<PgSource> {
    let name = at.name;
    let d = at.raw;
    let key = |k: &str| format!("databases.{name}.{k}");
    let databases = match super::database_list(
        r,
        &super::ListOf {
            engine: "postgresql",
            name,
            at: at.at,
            check: &check_name,
            unique: true,
        },
        d.databases.as_ref(),
    )? {
        None => PgSelection::All,
        Some(names) => PgSelection::Named(names),
    };
    let options = super::dump_options(r, name, &d.options, &OPTION_GUARD);
    let host = d.host.as_ref().and_then(|s| r.nonempty(s, &key("host")));
    let socket = d.socket.as_ref().and_then(|s| r.path(s, &key("socket")));
    if let (Some(_), Some(s)) = (&host, &d.socket) {
        r.error(
            &s.referenced,
            format!("database {name}: set host or socket, not both"),
        );
    }
    Some(PgSource {
        host,
        port: d.port.as_ref().map(|p| p.value),
        socket,
        user: d.user.as_ref().and_then(|s| r.nonempty(s, &key("user"))),
        password_file: d
            .password_file
            .as_ref()
            .and_then(|s| r.path(s, &key("password_file"))),
        globals: matches!(databases, PgSelection::All)
            || d.globals.as_ref().is_some_and(|g| g.value),
        databases,
        options,
        connect_timeout: r
            .timeout(d.connect_timeout.as_ref(), &key("connect_timeout"))
            .unwrap_or(DEFAULT_CONNECT_TIMEOUT),
        lock_wait_timeout: r
            .timeout(d.lock_wait_timeout.as_ref(), &key("lock_wait_timeout"))
            .unwrap_or(DEFAULT_LOCK_WAIT_TIMEOUT),
        dump_timeout: r
            .timeout(d.dump_timeout.as_ref(), &key("dump_timeout"))
            .unwrap_or(DEFAULT_DUMP_TIMEOUT),
        restore_timeout: r
            .timeout(d.restore_timeout.as_ref(), &key("restore_timeout"))
            .unwrap_or(DEFAULT_RESTORE_TIMEOUT),
    })
}

/// One configured PostgreSQL source, resolved.
#[derive(Debug, Clone)]
pub struct PgSource {
    pub host: Option<String>,
    pub port: Option<u16>,
    /// The socket directory.
    pub socket: Option<PathBuf>,
    pub user: Option<String>,
    pub password_file: Option<PathBuf>,
    pub databases: PgSelection,
    pub options: Vec<String>,
    /// Dump the globals (roles, tablespaces) too.
    pub globals: bool,
    pub connect_timeout: Duration,
    pub lock_wait_timeout: Duration,
    pub dump_timeout: Duration,
    pub restore_timeout: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PgSelection {
    /// Every database that accepts connections, but the templates and `postgres`.
    All,
    Named(Vec<String>),
}

impl PgSource {
    /// "host:port", the socket directory, or "the default server".
    pub fn server(&self) -> String {
        let port = self.port.unwrap_or(5432);
        match (&self.socket, &self.host) {
            (Some(s), _) => format!("{} (port {port})", s.display()),
            (None, Some(h)) => format!("{h}:{port}"),
            (None, None) => "the default server".into(),
        }
    }
}

impl Source for PgSource {
    fn engine(&self) -> &'static dyn Engine {
        &ENGINE
    }

    fn describe(&self) -> String {
        format!(
            "postgresql {}{}",
            match &self.databases {
                PgSelection::All => "all databases".to_string(),
                PgSelection::Named(n) => n.join(", "),
            },
            if self.globals { " + globals" } else { "" }
        )
    }

    fn dump_plan(&self) -> String {
        let tool = client::tool("pg_dump")
            .map(|t| t.display().to_string())
            .unwrap_or_else(|e| format!("<{e}>"));
        let mut plan = format!(
            "{tool} {} {} on {}",
            dump::DUMP_FLAGS.join(" "),
            self.options.join(" "),
            self.server()
        );
        if self.globals {
            plan.push_str(", and pg_dumpall --globals-only");
        }
        plan
    }

    fn location_noun(&self) -> &'static str {
        "database"
    }

    fn dump(&self, out: &Path) -> Result<(Done, Extra), String> {
        dump::dump(self, out)
    }

    fn space_needed(&self) -> String {
        "an uncompressed pg_dump archive is about the size of the tables' data (indexes are not in it)".to_string()
    }

    fn named_paths(&self) -> Vec<(PathBuf, &'static str)> {
        [
            (&self.password_file, "password_file"),
            (&self.socket, "socket"),
        ]
        .into_iter()
        .filter_map(|(file, what)| file.clone().map(|f| (f, what)))
        .collect()
    }

    fn restore(
        &self,
        run: &super::Restore<'_>,
        db: &ManifestDatabase,
    ) -> Result<super::Restored, crate::error::Error> {
        restore::restore(self, run, db)
    }

    fn restore_plan(
        &self,
        run: &super::Restore<'_>,
        db: &ManifestDatabase,
        from: &str,
    ) -> Vec<String> {
        restore::plan(self, run, db, from)
    }

    fn restore_to_file(
        &self,
        restic: &crate::restic::Restic,
        contents: &crate::restore::Contents,
        db: &ManifestDatabase,
        dest: &Path,
    ) -> Result<String, crate::error::Error> {
        restore::to_dir(restic, contents, db, dest)
    }

    fn check_into(&self, name: &str) -> Option<Result<(), String>> {
        Some(check_name(name).map_err(|why| format!("database name {name:?} {why}")))
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
