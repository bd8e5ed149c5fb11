//! SQLite sources (`type: sqlite`): the file copied in-process through the online backup
//! API (or `VACUUM INTO`, a reflink clone, an incremental chain), checked, restored by
//! replacing the live file atomically. Everything resticpilot knows about SQLite is here.

pub mod drill;
pub mod dump;
pub mod incremental;
pub mod rebuild;
pub mod reflink;
pub mod restore;

use std::any::Any;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::{Done, Drill, Engine, Extra, Restore, Restored, Source, SourceAt};
use crate::config::Resolver;
use crate::error::Error;
use crate::restic::Restic;
use crate::restore::drill::DatabaseCheck;
use crate::restore::{Contents, ManifestDatabase, Prefetch, count};
use crate::units::human_bytes;

/// The engine of `type: sqlite`.
pub struct Sqlite;

/// Registered in [`super::REGISTRY`].
pub static ENGINE: Sqlite = Sqlite;

impl Engine for Sqlite {
    fn names(&self) -> &'static [&'static str] {
        &["sqlite"]
    }

    fn extension(&self) -> &'static str {
        "sqlite3"
    }

    fn keys(&self) -> &'static [&'static str] {
        &[
            "path",
            "method",
            "verify",
            "restore_check",
            "convert_to_wal",
            "writer_hold_limit",
            "max_delta_share",
            "rebase_after",
            "read_live",
        ]
    }

    fn schema(&self) -> &'static str {
        include_str!("schema.json")
    }

    fn resolve(&self, r: &mut Resolver, at: &SourceAt<'_>) -> Option<Arc<dyn Source>> {
        let (profile, name, d) = (at.profile, at.name, at.raw);
        let key = |k: &str| format!("profiles.{profile}.databases.{name}.{k}");
        let Some(path_s) = &d.path else {
            r.error(at.at, format!("database {name}: sqlite needs `path`"));
            return None;
        };
        let path = r.path(path_s, &key("path"))?;
        let method = match d.method.as_ref().map(|m| (m, m.value.as_str())) {
            None | Some((_, "online")) => SqliteMethod::Online,
            Some((_, "vacuum")) => SqliteMethod::Vacuum,
            Some((_, "reflink")) => SqliteMethod::Reflink,
            Some((_, "incremental")) => SqliteMethod::Incremental,
            Some((m, other)) => {
                r.error(
                    &m.referenced,
                    format!(
                        "database {name}: method {other:?} is not one of online, vacuum, reflink, incremental"
                    ),
                );
                return None;
            }
        };
        let verify = match d.verify.as_ref().map(|m| (m, m.value.as_str())) {
            None | Some((_, "quick")) => SqliteVerify::Quick,
            Some((_, "full")) => SqliteVerify::Full,
            Some((_, "none")) => SqliteVerify::None,
            Some((m, other)) => {
                r.error(
                    &m.referenced,
                    format!("database {name}: verify {other:?} is not one of quick, full, none"),
                );
                return None;
            }
        };
        let restore_check = match d.restore_check.as_ref().map(|m| (m, m.value.as_str())) {
            None | Some((_, "quick")) => RestoreCheck::Quick,
            Some((_, "hash")) => RestoreCheck::Hash,
            Some((_, "full")) => RestoreCheck::Full,
            Some((m, other)) => {
                r.error(
                    &m.referenced,
                    format!(
                        "database {name}: restore_check {other:?} is not one of quick, hash, full"
                    ),
                );
                return None;
            }
        };
        let writer_hold_limit = match &d.writer_hold_limit {
            None => DEFAULT_WRITER_HOLD_LIMIT,
            s => r.duration(s.as_ref(), &key("writer_hold_limit"))?,
        };
        let incremental = incremental(r, at, method)?;
        Some(Arc::new(SqliteSource {
            path,
            method,
            verify,
            restore_check,
            convert_to_wal: d.convert_to_wal.as_ref().is_some_and(|b| b.value),
            writer_hold_limit,
            incremental,
        }))
    }

    fn drill(
        &self,
        run: &Drill<'_>,
        db: &ManifestDatabase,
        source: Option<&dyn Source>,
    ) -> DatabaseCheck {
        // The check the profile asks of a restore, so the drill's time is the restore's.
        let how = source
            .and_then(|s| s.as_any().downcast_ref::<SqliteSource>())
            .map_or(RestoreCheck::Quick, |s| s.restore_check);
        drill::check(run.restic, run.contents, db, run.dir, how)
    }
}

/// The settings of `method: incremental` (`Some(None)` for the other methods, whose
/// incremental keys are errors). The chain and its page index live under the state
/// directory, per profile and database: see `dump::incremental`.
fn incremental(
    r: &mut Resolver,
    at: &SourceAt<'_>,
    method: SqliteMethod,
) -> Option<Option<Incremental>> {
    let (profile, name, d, state_dir) = (at.profile, at.name, at.raw, at.state_dir);
    if method != SqliteMethod::Incremental {
        for (k, at) in [
            (
                "max_delta_share",
                d.max_delta_share.as_ref().map(|v| &v.referenced),
            ),
            (
                "rebase_after",
                d.rebase_after.as_ref().map(|v| &v.referenced),
            ),
            ("read_live", d.read_live.as_ref().map(|v| &v.referenced)),
        ] {
            if let Some(at) = at {
                r.error(
                    at,
                    format!("database {name}: {k} applies only to method: incremental"),
                );
            }
        }
        return Some(None);
    }
    let max_delta_share = match &d.max_delta_share {
        None => DEFAULT_MAX_DELTA_SHARE,
        Some(v) if v.value.is_finite() && v.value > 0.0 && v.value <= 100.0 => v.value,
        Some(v) => {
            r.error(
                &v.referenced,
                format!(
                    "database {name}: max_delta_share {} must be a number above 0 (a share of the database: 0.5 takes a new base once the deltas add up to half its size)",
                    v.value
                ),
            );
            return None;
        }
    };
    let key = format!("profiles.{profile}.databases.{name}.rebase_after");
    let rebase_after = match &d.rebase_after {
        None => DEFAULT_REBASE_AFTER,
        s => r.duration(s.as_ref(), &key)?,
    };
    Some(Some(Incremental {
        chain_dir: state_dir.join("chains").join(profile).join(name),
        index_dir: state_dir.join("page-index").join(profile),
        max_delta_share,
        rebase_after,
        read_live: d.read_live.as_ref().is_none_or(|b| b.value),
    }))
}

#[derive(Debug, Clone)]
pub struct SqliteSource {
    pub path: PathBuf,
    pub method: SqliteMethod,
    pub verify: SqliteVerify,
    /// How a restore checks a copy whose hash the manifest records.
    pub restore_check: RestoreCheck,
    /// Switch a rollback-journal database to WAL (persistent) before its backup.
    pub convert_to_wal: bool,
    /// A rollback-journal database whose copy holds writers out for more than half of this
    /// gets a warning.
    pub writer_hold_limit: Duration,
    /// Set for `method: incremental`.
    pub incremental: Option<Incremental>,
}

/// Default `writer_hold_limit`: the Torrust tracker's busy timeout (it drops a write that
/// waits longer).
pub const DEFAULT_WRITER_HOLD_LIMIT: Duration = Duration::from_secs(5);
/// Default `max_delta_share`.
pub const DEFAULT_MAX_DELTA_SHARE: f64 = 0.5;
/// Default `rebase_after`: a week.
pub const DEFAULT_REBASE_AFTER: Duration = Duration::from_secs(7 * 86400);

/// `method: incremental`: where the chain (base + deltas, backed up) and its page index (not
/// backed up) live, and when a new base is taken.
#[derive(Debug, Clone, PartialEq)]
pub struct Incremental {
    /// `<state_dir>/chains/<profile>/<database>`; its parent is a restic backup source.
    pub chain_dir: PathBuf,
    /// `<state_dir>/page-index/<profile>`: `<database>.json` and `<database>.pages`.
    pub index_dir: PathBuf,
    pub max_delta_share: f64,
    pub rebase_after: Duration,
    /// Read the pages of the live database in place instead of copying it first (the run
    /// after a new base still copies): WAL, the check and the pass in one read transaction;
    /// rollback journal, the pass under the read lock and the check after it.
    pub read_live: bool,
}

/// How `restore` and `verify` check a SQLite copy. Without a hash in the manifest (dumps by
/// older versions) the check is always `integrity_check`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestoreCheck {
    /// The hash, then `quick_check`.
    Quick,
    /// The hash alone.
    Hash,
    /// The hash, then `integrity_check`.
    Full,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SqliteMethod {
    /// The online backup API, all pages in one step.
    Online,
    /// `VACUUM INTO`: a compacted copy.
    Vacuum,
    /// A copy-on-write clone of the file under a read lock (FICLONE); falls back to `Online`
    /// where the filesystem cannot clone.
    Reflink,
    /// The online copy, stored as a base plus page deltas (`dump::incremental`).
    Incremental,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SqliteVerify {
    Quick,
    Full,
    None,
}

impl Source for SqliteSource {
    fn engine(&self) -> &'static dyn Engine {
        &ENGINE
    }

    fn describe(&self) -> String {
        format!("sqlite {}", self.path.display())
    }

    fn dump_plan(&self) -> String {
        format!(
            "sqlite {} ({:?}, verify {:?})",
            self.path.display(),
            self.method,
            self.verify
        )
        .to_lowercase()
    }

    fn dump_target(&self, staged: &Path) -> String {
        match &self.incremental {
            Some(inc) => format!(
                "a base or a page delta in {} (page index in {})",
                inc.chain_dir.display(),
                inc.index_dir.display()
            ),
            None => staged.display().to_string(),
        }
    }

    fn location_noun(&self) -> &'static str {
        "path"
    }

    fn dump(&self, out: &Path) -> Result<(Done, Extra), String> {
        dump::dump(self, out)
    }

    fn space_needed(&self) -> String {
        let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        let wal = restore::side_file(&self.path, "-wal");
        format!(
            "the copy needs about {} (the size of {} and its WAL)",
            human_bytes(size(&self.path) + size(&wal)),
            self.path.display()
        )
    }

    fn backup_roots(&self) -> Vec<PathBuf> {
        self.incremental
            .as_ref()
            .and_then(|inc| inc.chain_dir.parent())
            .map(|root| vec![root.to_path_buf()])
            .unwrap_or_default()
    }

    fn named_paths(&self) -> Vec<(PathBuf, &'static str)> {
        vec![(self.path.clone(), "file")]
    }

    /// An incremental chain, fetched with the manifest into a scratch directory in the
    /// destination's directory; not when the live file is in use and `--force` is not given
    /// (the restore is refused before anything is fetched).
    fn restore_prefetch(&self, target: Option<&Path>, force: bool) -> Option<Prefetch> {
        let inc = self.incremental.as_ref()?;
        let dir = match target {
            Some(t) => t.to_path_buf(),
            None => {
                if !force && !restore::in_use(&self.path).is_empty() {
                    return None;
                }
                self.path.parent()?.to_path_buf()
            }
        };
        dir.is_dir().then(|| Prefetch {
            dir,
            chain: inc.chain_dir.display().to_string(),
        })
    }

    fn restore(&self, run: &Restore<'_>, db: &ManifestDatabase) -> Result<Restored, Error> {
        let r = restore::restore_in_place(
            run.restic,
            run.contents,
            db,
            &self.path,
            run.force,
            self.restore_check,
        )?;
        let kept = match &r.previous {
            Some(p) => format!("previous file kept as {}", p.display()),
            None => "there was no live file".into(),
        };
        let chain = match r.extracted.chain_length {
            Some(n) => format!(" (rebuilt from base + {})", count((n - 1) as u64, "delta")),
            None => String::new(),
        };
        let mut out = Restored::default();
        out.lines.push(format!(
            "database {} (sqlite): {}{chain} restored to {} in {:.1}s, {}, {}; {kept}",
            db.name,
            human_bytes(r.extracted.bytes),
            r.live.display(),
            r.extracted.duration.as_secs_f64(),
            r.extracted.check,
            count(r.extracted.tables.len() as u64, "table")
        ));
        if r.extracted.tables.is_empty() {
            out.warnings.push(format!(
                "database {}: the restored copy has no tables (the database was empty when it was backed up); the previous file is kept",
                db.name
            ));
        }
        if !r.forced_over.is_empty() {
            out.warnings.push(format!(
                "database {} was in use and replaced because of --force: {}; restart what uses it",
                db.name,
                r.forced_over.join("; ")
            ));
        }
        Ok(out)
    }

    fn restore_plan(&self, _run: &Restore<'_>, db: &ManifestDatabase, from: &str) -> Vec<String> {
        let users = restore::in_use(&self.path);
        let state = if !self.path.exists() {
            "no live file now".to_string()
        } else if users.is_empty() {
            format!(
                "previous file kept as {}.pre-restore-<time>",
                self.path.display()
            )
        } else {
            format!("IN USE ({}): refused without --force", users.join("; "))
        };
        let how = match (&db.hash, &db.incremental, self.restore_check) {
            (None, None, _) => "integrity_check".to_string(),
            (_, _, check) => format!(
                "the backup's hash{}",
                match check {
                    RestoreCheck::Quick => " and quick_check",
                    RestoreCheck::Hash => " (restore_check: hash)",
                    RestoreCheck::Full => " and integrity_check",
                }
            ),
        };
        vec![format!(
            "database  {} (sqlite): {from} -> {}, checked with {how} first; {state}",
            db.name,
            self.path.display()
        )]
    }

    fn restore_to_file(
        &self,
        restic: &Restic,
        contents: &Contents,
        db: &ManifestDatabase,
        dest: &Path,
    ) -> Result<String, Error> {
        let x = restore::extract_checked(
            restic,
            contents,
            db,
            dest,
            self.restore_check,
            "free space there, or choose another --target",
        )?;
        let chain = match x.chain_length {
            Some(n) => format!("; rebuilt from base + {}", count((n - 1) as u64, "delta")),
            None => String::new(),
        };
        Ok(format!(
            "checked: {}, {}{chain}",
            x.check,
            count(x.tables.len() as u64, "table")
        ))
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
