//! Database engines: one module per `type:` (`sqlite/`, `mysql/`), each implementing the two
//! traits here, and [`REGISTRY`], which maps a source's `type:` to its engine. Nothing outside
//! this folder knows an engine by name: the config resolver, the run, `restore`, `verify` and
//! `validate` go through [`Engine`] and [`Source`].
//!
//! Phase 1 of a run lives here too: each database source writes one verified dump file into
//! the staging directory. A dump is written under a `.partial` name and renamed to its final
//! name only after the tool succeeded and the copy was verified, so a file with the final name
//! is always a whole dump.

pub mod command;
pub mod mysql;
pub mod postgresql;
pub mod sqlite;

pub use crate::error::DumpError;

use std::any::Any;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_saphyr::Location;

pub use crate::config::SourceAt;
use crate::config::{DatabaseSource, MAX_FILE_NAME, Resolver, is_safe_name};
use crate::error::Error;
use crate::restic::Restic;
use crate::restore::drill::DatabaseCheck;
use crate::restore::{Contents, ManifestDatabase, Prefetch};

/// Every engine, in the order `validate` names them. Adding an engine is one module and one
/// line here.
pub static REGISTRY: &[&dyn Engine] = &[
    &sqlite::ENGINE,
    &mysql::ENGINE,
    &postgresql::ENGINE,
    &command::ENGINE,
];

/// The engine that `type:` (or a manifest's `type`) names, if any.
pub fn engine(kind: &str) -> Option<&'static dyn Engine> {
    REGISTRY.iter().copied().find(|e| e.names().contains(&kind))
}

/// The registry's side of resolving a database source (the one place the config reaches the
/// engines): checks the source's name (it names the dump file), finds the engine its `type:`
/// names, refuses keys of other types, and has the engine resolve the rest. `None` after
/// recording why not.
pub fn resolve(r: &mut Resolver, at: &SourceAt<'_>) -> Option<Arc<dyn Source>> {
    let (d, name) = (at.raw, at.name);
    let kind = d.kind.value.as_str();
    let engine = engine(kind);
    if !is_safe_name(name) || name.starts_with('-') {
        r.error(
            &d.name.referenced,
            format!("database name {name:?} may use only letters, digits, '-', '_' and '.', and may not start with '.' or '-' (it names the dump file)"),
        );
    } else {
        // The dump is written as <name><suffix>.partial: all of it must fit in a name.
        let suffix = format!(".{}.partial", engine.map_or("sql", |e| e.extension()));
        let max = MAX_FILE_NAME - suffix.len();
        if name.len() > max {
            r.error(
                &d.name.referenced,
                format!(
                    "database name {}... is {} bytes long: its dump file {}{suffix} would not fit the {MAX_FILE_NAME}-byte limit of a file name; use at most {max} bytes",
                    &name[..20],
                    name.len(),
                    "<name>"
                ),
            );
        }
    }
    let Some(engine) = engine else {
        r.error(
            &d.kind.referenced,
            format!(
                "database {name}: unknown type {kind:?} (supported: {})",
                known_types()
            ),
        );
        return None;
    };
    let foreign: Vec<&str> = d
        .keys_set()
        .into_iter()
        .filter(|k| !engine.keys().contains(k))
        .collect();
    if !foreign.is_empty() {
        r.error(
            at.at,
            format!(
                "database {name}: key(s) {} do not apply to type {kind}",
                foreign.join(", ")
            ),
        );
    }
    engine.resolve(r, at)
}

/// The `type:` values the registry knows, for messages: "sqlite, mysql".
pub fn known_types() -> String {
    REGISTRY
        .iter()
        .map(|e| e.name())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The `$defs` entries of config.schema.json for database sources: `database`, a `oneOf` on
/// `type` with one branch per engine, and each branch `database_<engine>`: `name`, `type` and
/// the engine's own keys ([`Engine::schema`]), nothing else. An editor then rejects a key of
/// one type on a source of another, as `validate` does.
pub fn schema_defs() -> serde_json::Map<String, serde_json::Value> {
    use serde_json::{Value, json};
    let mut defs = serde_json::Map::new();
    let all: Vec<&str> = REGISTRY
        .iter()
        .flat_map(|e| e.names().iter().copied())
        .collect();
    let files: Vec<String> = REGISTRY
        .iter()
        .map(|e| format!("{}: <name>.{}", e.name(), e.extension()))
        .collect();
    let mut branches = Vec::new();
    for engine in REGISTRY {
        let own: Value = serde_json::from_str(engine.schema()).expect("the engine's schema.json");
        let mut properties = serde_json::Map::new();
        properties.insert(
            "name".into(),
            json!({
                "type": "string",
                "description": format!("Names the dump file: <name>.{}.", engine.extension())
            }),
        );
        let kind = match engine.names() {
            [one] => json!({ "const": one }),
            many => json!({ "enum": many }),
        };
        properties.insert("type".into(), kind);
        if let Some(own) = own["properties"].as_object() {
            properties.extend(own.clone());
        }
        let mut required = vec![json!("name"), json!("type")];
        required.extend(own["required"].as_array().cloned().unwrap_or_default());
        let key = format!("database_{}", engine.name());
        branches.push(json!({ "$ref": format!("#/$defs/{key}") }));
        defs.insert(
            key,
            json!({
                "type": "object",
                "additionalProperties": false,
                "required": required,
                "properties": properties,
            }),
        );
    }
    defs.insert(
        "database".into(),
        json!({
            "type": "object",
            "description": format!("A database source; its `type` says which keys apply. The dump file is {}.", files.join(", ")),
            "required": ["name", "type"],
            "properties": { "type": { "enum": all } },
            "oneOf": branches,
        }),
    );
    defs
}

/// One database engine: what a `type:` means. Engines are stateless values registered in
/// [`REGISTRY`]; a configured database is a [`Source`] that [`Engine::resolve`] made.
pub trait Engine: Sync {
    /// The `type:` values that select this engine; the first is its name in manifests,
    /// messages and the schema (`mysql` also answers to `mariadb`).
    fn names(&self) -> &'static [&'static str];

    /// The engine's name: the first of [`Engine::names`].
    fn name(&self) -> &'static str {
        self.names()[0]
    }

    /// The dump file's extension, without the dot: the dump of source `x` is `x.<extension>`.
    fn extension(&self) -> &'static str;

    /// The keys a source of this type may set besides `name` and `type`; any other key set
    /// on it is an error naming the key and the type. Each must also be a field of
    /// [`crate::config::raw::RawDatabase`] (where it is parsed with its position) and listed in
    /// [`crate::config::raw::RawDatabase::keys_set`].
    fn keys(&self) -> &'static [&'static str];

    /// The JSON Schema of this type's own keys, as JSON text: `{"required": [...],
    /// "properties": {...}}` (kept as `schema.json` beside the engine). The published
    /// config.schema.json holds one branch per engine built from these (`oneOf` on `type`).
    fn schema(&self) -> &'static str;

    /// Resolves one source of this type from its raw keys: defaults, `${VAR}` expansion,
    /// checks. Every problem is recorded on `r` at the position of the key at fault
    /// (`at.raw.<key>.referenced`, or `at.at` for the source as a whole).
    ///
    /// Returns `None` when the source cannot be used (after recording why).
    fn resolve(&self, r: &mut Resolver, at: &SourceAt<'_>) -> Option<Arc<dyn Source>>;

    /// Checks what is the engine's own in manifest entry `db` (untrusted: it comes from the
    /// snapshot) once its name and file were found plain. Fails with the reason, which
    /// follows "snapshot X is refused: ".
    fn check_manifest(&self, db: &ManifestDatabase) -> Result<(), String> {
        let _ = db;
        Ok(())
    }

    /// The drill's check of dump `db` of snapshot `contents` (`verify`): restore it into
    /// scratch space (`dir` for files, a scratch database on the server), check it, remove
    /// it. `source` is the profile's configuration of this database now, `None` when the
    /// profile no longer has it. Failures are results in the check, never errors.
    fn drill(
        &self,
        run: &Drill<'_>,
        db: &ManifestDatabase,
        source: Option<&dyn Source>,
    ) -> DatabaseCheck;
}

/// What a drill has at hand.
pub struct Drill<'a> {
    pub restic: &'a Restic,
    pub contents: &'a Contents,
    /// The drill's own private scratch directory (removed afterwards).
    pub dir: &'a Path,
}

/// What a restore of one database has at hand.
pub struct Restore<'a> {
    pub restic: &'a Restic,
    pub contents: &'a Contents,
    /// Replace what is in use or not empty.
    pub force: bool,
    /// `--into NAME`: restore under another name (engines whose [`Source::takes_into`]).
    pub into: Option<&'a str>,
    /// Where a replaced database's previous content is kept, when it is not kept beside it
    /// (`<state_dir>/pre-restore/<profile>`).
    pub keep_dir: PathBuf,
}

/// What a restore in place did, for the command to print.
#[derive(Debug, Default)]
pub struct Restored {
    /// Lines to print, in order.
    pub lines: Vec<String>,
    /// Worth the operator's attention; the restore ends with warnings (exit 3).
    pub warnings: Vec<String>,
}

/// One configured database of one engine, resolved: everything the run, `restore`,
/// `verify`, `validate` and `--dry-run` need of it.
pub trait Source: fmt::Debug + Send + Sync {
    /// The engine that made it.
    fn engine(&self) -> &'static dyn Engine;

    /// The dump file's extension: the engine's, unless the source sets its own.
    fn extension(&self) -> String {
        self.engine().extension().to_string()
    }

    /// One line for `validate`: "sqlite /data/app.db", "mysql a, b".
    fn describe(&self) -> String;

    /// `backup --dry-run`: how it is dumped ("sqlite /data/app.db (online, verify quick)",
    /// the dump tool's command line).
    fn dump_plan(&self) -> String;

    /// `backup --dry-run`: where the dump goes, when not to `staged`, its file in staging.
    fn dump_target(&self, staged: &Path) -> String {
        staged.display().to_string()
    }

    /// Whether [`Done::tables`] lists the dump's tables, so that none means an empty database
    /// (a warning, the snapshot tagged `incomplete`). A custom command's dump lists none.
    fn lists_tables(&self) -> bool {
        true
    }

    /// What a warning about an empty dump calls where the data was read: "path", "database".
    fn location_noun(&self) -> &'static str;

    /// Writes the dump to `out` (streamed, memory flat) and verifies it. Fails with the
    /// reason (the tool's own message where there is one); the caller removes `out`.
    fn dump(&self, out: &Path) -> Result<(Done, Extra), String>;

    /// How much room a dump needs, for the message when staging filled up.
    fn space_needed(&self) -> String;

    /// Directories restic backs up for this source besides staging.
    fn backup_roots(&self) -> Vec<PathBuf> {
        Vec::new()
    }

    /// The files and directories the source names, with the key that names each ("file",
    /// "password_file"), so that staging is never put over one of them.
    fn named_paths(&self) -> Vec<(PathBuf, &'static str)>;

    /// Restores dump `db` in place (where the source says the database lives, or under
    /// `run.into`). Checks the dump whole before the first byte reaches the live database;
    /// a failed restore leaves it as it was.
    ///
    /// Fails when the restore is refused (in use, not empty, without `force`) or fails.
    fn restore(&self, run: &Restore<'_>, db: &ManifestDatabase) -> Result<Restored, Error>;

    /// `restore --dry-run`: what [`Source::restore`] would do, one line per target; `from`
    /// says where the dump is read from.
    fn restore_plan(&self, run: &Restore<'_>, db: &ManifestDatabase, from: &str) -> Vec<String>;

    /// Writes a checked copy of dump `db` to the file `dest` (`restore --target DIR`), which
    /// does not exist yet. Returns how it was checked; removes `dest` on failure.
    fn restore_to_file(
        &self,
        restic: &Restic,
        contents: &Contents,
        db: &ManifestDatabase,
        dest: &Path,
    ) -> Result<String, Error>;

    /// What `restore` of this database alone may fetch in the same restic call as the
    /// snapshot's manifest (one call fewer; see [`Prefetch`]): `target` is `--target DIR`,
    /// `force` is `--force`. None when nothing is worth fetching early, or when the restore
    /// would be refused before it fetched anything.
    fn restore_prefetch(&self, target: Option<&Path>, force: bool) -> Option<Prefetch> {
        let _ = (target, force);
        None
    }

    /// Whether `restore --into NAME` applies; `Some(Err)` when `name` cannot be used.
    fn check_into(&self, name: &str) -> Option<Result<(), String>> {
        let _ = name;
        None
    }

    /// For an engine to find its own type behind a `dyn Source`.
    fn as_any(&self) -> &dyn Any;
}

/// What one dump produced: its manifest entry (through `Deref`) and what the run reports
/// besides.
#[derive(Debug, Clone)]
pub struct DumpReport {
    /// Recorded in the manifest.
    pub entry: ManifestDatabase,
    pub duration: Duration,
    /// SQLite: how long the copy kept the application's writers out (0 in WAL mode).
    pub writers_held: Option<Duration>,
    /// Worth a look, not a failure (logged already; the run ends with warnings).
    pub warnings: Vec<String>,
    /// Signs that the dump may not hold the data the user means (a database with no tables:
    /// a wrong path, a volume not mounted): the run ends with warnings and the snapshot is
    /// tagged `incomplete`. Not logged yet.
    pub gaps: Vec<String>,
}

impl std::ops::Deref for DumpReport {
    type Target = ManifestDatabase;

    fn deref(&self) -> &ManifestDatabase {
        &self.entry
    }
}

/// Where the dump of `source` is written in `staging` until it is verified.
pub fn partial_path(source: &DatabaseSource, staging: &Path) -> PathBuf {
    staging.join(format!("{}.partial", source.dump_file_name()))
}

/// Dumps `source` into `staging`.
///
/// Fails when the tool fails, is killed, or the copy does not verify; the partial file is
/// removed in that case.
pub fn dump(source: &DatabaseSource, staging: &Path) -> Result<DumpReport, DumpError> {
    let file = source.dump_file_name();
    let final_path = staging.join(&file);
    let partial = partial_path(source, staging);
    let start = Instant::now();
    let result = source.source.dump(&partial);
    let finish = |(done, extra): (Done, Extra)| -> Result<DumpReport, String> {
        let bytes = match &extra.chain {
            // Incremental: the copy is in its chain, nothing in staging.
            Some(chain) => chain.bytes(),
            None => {
                std::fs::rename(&partial, &final_path).map_err(|e| {
                    format!(
                        "cannot move the dump into place at {}: {e}",
                        final_path.display()
                    )
                })?;
                stored_bytes(&final_path)
            }
        };
        let mut gaps = Vec::new();
        if done.tables.is_empty() && source.source.lists_tables() {
            // A new application creates its schema at start: no table at all most often
            // means the wrong file (a typo, a volume that is not mounted, a 0-byte file).
            gaps.push(format!(
                "database {} ({}) has no tables: is `{}` the right {}? (a wrong path, or a volume that is not mounted, gives an empty database); the snapshot is tagged `incomplete`",
                source.name,
                source.type_name(),
                done.source,
                source.source.location_noun()
            ));
        }
        let duration = start.elapsed();
        Ok(DumpReport {
            entry: ManifestDatabase {
                name: source.name.clone(),
                kind: source.type_name().to_string(),
                file: file.clone(),
                bytes,
                duration: crate::manifest::seconds(duration),
                source: done.source,
                method: done.method,
                tables: done.tables,
                hash: extra.hash,
                journal_mode: extra.journal_mode,
                writers_held_seconds: extra.writers_held.map(crate::manifest::seconds),
                incremental: extra.chain,
                databases: (!done.databases.is_empty()).then_some(done.databases),
            },
            duration,
            writers_held: extra.writers_held,
            warnings: extra.warnings,
            gaps,
        })
    };
    match result.and_then(finish) {
        Ok(report) => Ok(report),
        Err(reason) => {
            let _ = std::fs::remove_file(&partial);
            let _ = std::fs::remove_file(&final_path);
            let reason = if crate::space::is_full_text(&reason) {
                staging_full(source, staging, &reason)
            } else {
                reason
            };
            Err(DumpError {
                database: source.name.clone(),
                reason,
            })
        }
    }
}

/// The reason of a dump that filled the staging directory's disk: where, how much the copy
/// needs (a SQLite copy is about the size of the file and its WAL; a SQL dump's size is not
/// known in advance), how much is free now that the partial file is gone, and the key.
fn staging_full(source: &DatabaseSource, staging: &Path, reason: &str) -> String {
    let needed = source.source.space_needed();
    format!(
        "the staging directory {} ran out of space ({reason}): {needed}{}; free space there, or set staging_dir to a directory on a filesystem with room",
        staging.display(),
        crate::space::free_note(staging)
    )
}

/// The size of a dump: its file's, or the sum of its files' when the dump is a directory
/// (PostgreSQL: one archive per database).
fn stored_bytes(path: &Path) -> u64 {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => std::fs::read_dir(path)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.metadata().ok())
            .filter(|m| m.is_file())
            .map(|m| m.len())
            .sum(),
        Ok(m) => m.len(),
        Err(_) => 0,
    }
}

/// The directories restic backs up for `databases` besides staging (each once).
pub fn backup_roots(databases: &[DatabaseSource]) -> Vec<PathBuf> {
    let mut roots: Vec<PathBuf> = Vec::new();
    for root in databases.iter().flat_map(|db| db.source.backup_roots()) {
        if !roots.contains(&root) {
            roots.push(root);
        }
    }
    roots
}

/// What a source module reports after writing and verifying its file.
pub struct Done {
    pub source: String,
    pub method: String,
    pub tables: Vec<String>,
    /// MySQL: the databases dumped.
    pub databases: Vec<String>,
}

/// What the SQLite source reports besides [`Done`].
#[derive(Default)]
pub struct Extra {
    pub hash: Option<String>,
    pub journal_mode: Option<String>,
    pub writers_held: Option<Duration>,
    /// Set when the copy went into an incremental chain instead of staging.
    pub chain: Option<sqlite::incremental::Chain>,
    pub warnings: Vec<String>,
}

/// What a server engine's `databases:` must be, for [`database_list`].
pub struct ListOf<'a> {
    /// The type's name, for the message of a missing list.
    pub engine: &'a str,
    /// The source's name.
    pub name: &'a str,
    /// Where the source stands (for a missing list).
    pub at: &'a Location,
    /// Whether a name can be dumped (`Err` says why not).
    pub check: &'a dyn Fn(&str) -> Result<(), String>,
    /// Whether a name listed twice is an error.
    pub unique: bool,
}

/// A server engine's `databases:`: `all` (`Some(None)`), or the names, expanded and checked
/// (`Some(Some(names))`); `None` after recording why not, each error at its entry.
pub fn database_list(
    r: &mut Resolver,
    of: &ListOf<'_>,
    list: Option<&serde_saphyr::Spanned<crate::config::raw::RawDatabaseList>>,
) -> Option<Option<Vec<String>>> {
    use crate::config::raw::RawDatabaseList;
    let name = of.name;
    let Some(list) = list else {
        r.error(
            of.at,
            format!(
                "database {name}: {} needs `databases`: a list of names, or `all`",
                of.engine
            ),
        );
        return None;
    };
    match &list.value {
        RawDatabaseList::Keyword(k) if k == "all" => Some(None),
        RawDatabaseList::Keyword(k) => {
            r.error(
                &list.referenced,
                format!("database {name}: databases must be a list of names or `all`, not {k:?}"),
            );
            None
        }
        RawDatabaseList::Names(names) if names.is_empty() => {
            r.error(
                &list.referenced,
                format!("database {name}: databases is empty"),
            );
            None
        }
        RawDatabaseList::Names(names) => {
            let mut out = Vec::new();
            for n in names {
                // Items of a list that may also be a word carry no position of their own: the
                // list's is the nearest.
                let at = if n.referenced.line() == 0 {
                    &list.referenced
                } else {
                    &n.referenced
                };
                match crate::config::expand(&n.value, r.env()) {
                    Ok(v) => match (of.check)(&v) {
                        Ok(()) if of.unique && out.contains(&v) => {
                            r.error(at, format!("database {name}: databases lists {v:?} twice"))
                        }
                        Ok(()) => out.push(v),
                        Err(why) => {
                            r.error(at, format!("database {name}: databases entry {v:?} {why}"))
                        }
                    },
                    Err(msg) => r.error(at, format!("databases.{name}.databases: {msg}")),
                }
            }
            Some(Some(out))
        }
    }
}

/// What a server engine's `options:` (extra arguments of its dump tool) may not hold, for
/// [`dump_options`]: options that would leak a password, move or reshape the dump, or fight
/// the connection resticpilot sets up.
pub struct OptionGuard {
    /// Options refused by their name (the part before any `=`), each with why.
    pub forbidden: &'static [(&'static str, &'static str)],
    /// Why an option the list does not name is refused anyway (short forms, say), given the
    /// option's name and its whole text; `None` lets it through.
    pub other: fn(flag: &str, option: &str) -> Option<String>,
}

impl OptionGuard {
    /// Whether `option` may go to the dump tool.
    ///
    /// Fails with the reason, to follow "database NAME: " in a message.
    pub fn check(&self, option: &str) -> Result<(), String> {
        let flag = option.split('=').next().unwrap_or_default();
        if let Some((_, why)) = self.forbidden.iter().find(|(f, _)| *f == flag) {
            Err(format!("option {flag} is not allowed: {why}"))
        } else if let Some(why) = (self.other)(flag, option) {
            Err(why)
        } else {
            Ok(())
        }
    }
}

/// A server engine's `options:`, expanded and each checked by `guard`: the allowed ones, in
/// order; every refused one is recorded as an error at its entry.
pub fn dump_options(
    r: &mut Resolver,
    name: &str,
    options: &[crate::config::raw::S],
    guard: &OptionGuard,
) -> Vec<String> {
    let mut out = Vec::new();
    for o in options {
        let Some(opt) = r.nonempty(o, &format!("databases.{name}.options")) else {
            continue;
        };
        match guard.check(&opt) {
            Ok(()) => out.push(opt),
            Err(why) => r.error(&o.referenced, format!("database {name}: {why}")),
        }
    }
    out
}

/// The name of a scratch database a drill loads on a server (`resticpilot_verify_PID_N`).
pub fn verify_scratch_name(n: u32) -> String {
    format!("resticpilot_verify_{}_{n}", std::process::id())
}

/// The tag of the scratch database a restore loads before it takes the target's name
/// (`TARGET_rp_newN`).
pub const RESTORE_SCRATCH_TAG: &str = "rp_new";

/// Whether database `name` is a scratch database of a resticpilot drill or restore: half
/// loaded while that runs, dropped or renamed when it ends. `databases: all` leaves them out,
/// so that a backup beside a drill on the same server neither copies one nor fails when it
/// is dropped under it.
pub fn is_scratch_database(name: &str) -> bool {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if let Some(rest) = name.strip_prefix("resticpilot_verify_") {
        return rest
            .split_once('_')
            .is_some_and(|(pid, n)| digits(pid) && digits(n));
    }
    name.rsplit_once(&format!("_{RESTORE_SCRATCH_TAG}"))
        .is_some_and(|(base, n)| !base.is_empty() && digits(n))
}

#[cfg(test)]
mod tests {
    use super::REGISTRY;

    #[test]
    fn scratch_databases_are_told_from_the_users_by_their_whole_name() {
        use super::is_scratch_database as scratch;
        assert!(scratch("resticpilot_verify_4242_0"));
        assert!(scratch(&super::verify_scratch_name(7)));
        assert!(scratch("shop_rp_new0"));
        assert!(scratch("creator_0_copy_rp_new12"));
        for user in [
            "shop",
            "resticpilot_verify_",
            "resticpilot_verify_12",
            "resticpilot_verify_x_1",
            "shop_rp_new",
            "shop_rp_newest",
            "_rp_new1",
            "shop_rp_old0",
        ] {
            assert!(!scratch(user), "{user}");
        }
    }

    #[test]
    fn options_guards_refuse_what_would_leak_or_reshape_a_dump() {
        let mysql = &super::mysql::OPTION_GUARD;
        assert_eq!(mysql.check("--single-transaction"), Ok(()));
        assert_eq!(mysql.check("--max-allowed-packet=1G"), Ok(()));
        assert_eq!(
            mysql.check("--password=hunter2"),
            Err("option --password is not allowed: passwords go in password_file, never on a command line".into())
        );
        assert!(mysql.check("--compact").unwrap_err().contains("trailer"));
        for short in ["-phunter2", "-r/tmp/x", "-T"] {
            let why = mysql.check(short).unwrap_err();
            assert!(why.starts_with("short option "), "{why}");
            // `-pSECRET` is a password: the message names the option, not its value.
            assert!(!why.contains("hunter2") && !why.contains("/tmp/x"), "{why}");
        }
        let pg = &super::postgresql::OPTION_GUARD;
        assert_eq!(pg.check("--no-owner"), Ok(()));
        assert_eq!(
            pg.check("--compress=9"),
            Err("option --compress is not allowed: restic compresses; a compressed dump defeats dedup".into())
        );
        assert!(pg.check("--format=plain").is_err());
        assert_eq!(
            pg.check("-W"),
            Err("option \"-W\" is not allowed: give pg_dump options in their long form (--name or --name=value)".into())
        );
    }

    #[test]
    fn every_engine_declares_a_schema_for_exactly_its_keys() {
        for engine in REGISTRY {
            let schema: serde_json::Value = serde_json::from_str(engine.schema())
                .unwrap_or_else(|e| panic!("{}: schema.json: {e}", engine.name()));
            let mut in_schema: Vec<&str> = schema["properties"]
                .as_object()
                .expect("properties")
                .keys()
                .map(String::as_str)
                .collect();
            let mut keys = engine.keys().to_vec();
            in_schema.sort_unstable();
            keys.sort_unstable();
            assert_eq!(in_schema, keys, "{}", engine.name());
            for required in schema["required"].as_array().expect("required") {
                assert!(keys.contains(&required.as_str().unwrap()), "{required}");
            }
        }
    }

    #[test]
    fn every_type_name_finds_its_engine_and_every_key_is_parsed() {
        let all_keys = [
            "path",
            "method",
            "verify",
            "restore_check",
            "convert_to_wal",
            "writer_hold_limit",
            "max_delta_share",
            "rebase_after",
            "read_live",
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
            "globals",
            "dump",
            "restore",
            "extension",
        ];
        for engine in REGISTRY {
            for name in engine.names() {
                assert_eq!(super::engine(name).map(|e| e.name()), Some(engine.name()));
            }
            for key in engine.keys() {
                assert!(all_keys.contains(key), "{key} is not a RawDatabase key");
            }
        }
        assert!(super::engine("oracle").is_none());
    }
}
