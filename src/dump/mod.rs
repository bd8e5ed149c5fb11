//! Phase 1: each database source writes one verified dump file into the staging directory.
//!
//! A dump is written under a `.partial` name and renamed to its final name only after the tool
//! succeeded and the copy was verified, so a file with the final name is always a whole dump.

pub mod incremental;
pub mod mysql;
pub mod reflink;
pub mod sqlite;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::config::{DatabaseSource, SourceKind};

/// A database source that could not be dumped, with the reason (the tool's own message where
/// there is one).
#[derive(Debug, thiserror::Error)]
#[error("dump of database {database} failed: {reason}")]
pub struct DumpError {
    pub database: String,
    pub reason: String,
}

/// What one dump produced; recorded in the staging manifest and the run's log.
#[derive(Debug, Clone, Serialize)]
pub struct DumpReport {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// File name inside the staging directory.
    pub file: String,
    pub bytes: u64,
    #[serde(serialize_with = "as_secs")]
    pub duration: Duration,
    /// What was dumped: the SQLite file, or the MySQL databases.
    pub source: String,
    /// How: "online backup", "vacuum into", "mariadb-dump 10.11.6", ...
    pub method: String,
    /// Tables in the dump (SQLite: from the copy; MySQL: from the dump's CREATE TABLEs).
    pub tables: Vec<String>,
    /// SQLite: `blake3:<hex>` of the checked copy; a restore that reproduces it is bit-identical.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hash: Option<String>,
    /// SQLite: the live database's journal mode (`wal`, `delete`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub journal_mode: Option<String>,
    /// SQLite: how long the copy kept the application's writers out (0 in WAL mode).
    #[serde(
        rename = "writers_held_seconds",
        serialize_with = "opt_secs",
        skip_serializing_if = "Option::is_none"
    )]
    pub writers_held: Option<Duration>,
    /// SQLite `method: incremental`: the chain that holds the copy (no file in staging).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub incremental: Option<incremental::Chain>,
    /// Worth a look, not a failure (logged already; the run ends with warnings).
    #[serde(skip)]
    pub warnings: Vec<String>,
    /// Signs that the dump may not hold the data the user means (a database with no tables:
    /// a wrong path, a volume not mounted): the run ends with warnings and the snapshot is
    /// tagged `incomplete`. Not logged yet.
    #[serde(skip)]
    pub gaps: Vec<String>,
    /// MySQL: the databases in the dump, as a list (names may hold ", "). Older manifests
    /// have only `source`, the names joined with ", ".
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub databases: Vec<String>,
}

fn as_secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64((d.as_secs_f64() * 1000.0).round() / 1000.0)
}

fn opt_secs<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => as_secs(d, s),
        None => s.serialize_none(),
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
    let result = match &source.kind {
        SourceKind::Sqlite(s) => sqlite::dump(s, &partial),
        SourceKind::Mysql(m) => mysql::dump(m, &partial).map(|d| (d, Extra::default())),
    };
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
                std::fs::metadata(&final_path).map(|m| m.len()).unwrap_or(0)
            }
        };
        let mut gaps = Vec::new();
        if done.tables.is_empty() {
            // A new application creates its schema at start: no table at all most often
            // means the wrong file (a typo, a volume that is not mounted, a 0-byte file).
            gaps.push(format!(
                "database {} ({}) has no tables: is `{}` the right {}? (a wrong path, or a volume that is not mounted, gives an empty database); the snapshot is tagged `incomplete`",
                source.name,
                source.type_name(),
                done.source,
                match source.kind {
                    SourceKind::Sqlite(_) => "path",
                    SourceKind::Mysql(_) => "database",
                }
            ));
        }
        Ok(DumpReport {
            name: source.name.clone(),
            kind: source.type_name(),
            file: file.clone(),
            bytes,
            duration: start.elapsed(),
            source: done.source,
            method: done.method,
            tables: done.tables,
            hash: extra.hash,
            journal_mode: extra.journal_mode,
            writers_held: extra.writers_held,
            incremental: extra.chain,
            warnings: extra.warnings,
            gaps,
            databases: done.databases,
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
    let needed = match &source.kind {
        SourceKind::Sqlite(s) => {
            let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
            let wal = crate::restore::sqlite::side_file(&s.path, "-wal");
            format!(
                "the copy needs about {} (the size of {} and its WAL)",
                human_bytes(size(&s.path) + size(&wal)),
                s.path.display()
            )
        }
        SourceKind::Mysql(_) => {
            "a SQL dump is about the size of the database's data, often more".to_string()
        }
    };
    format!(
        "the staging directory {} ran out of space ({reason}): {needed}{}; free space there, or set staging_dir to a directory on a filesystem with room",
        staging.display(),
        crate::space::free_note(staging)
    )
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
    pub chain: Option<incremental::Chain>,
    pub warnings: Vec<String>,
}

/// A human-readable size: "1.4 GiB".
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::human_bytes;

    #[test]
    fn sizes_read_naturally() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3 * 1024 * 1024 * 1024), "3.0 GiB");
    }
}
