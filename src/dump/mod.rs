//! Phase 1: each database source writes one verified dump file into the staging directory.
//!
//! A dump is written under a `.partial` name and renamed to its final name only after the tool
//! succeeded and the copy was verified, so a file with the final name is always a whole dump.

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
    /// MySQL: the databases in the dump, as a list (names may hold ", "). Older manifests
    /// have only `source`, the names joined with ", ".
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub databases: Vec<String>,
}

fn as_secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64((d.as_secs_f64() * 1000.0).round() / 1000.0)
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
        SourceKind::Mysql(m) => mysql::dump(m, &partial),
    };
    let finish = |done: Done| -> Result<DumpReport, String> {
        std::fs::rename(&partial, &final_path).map_err(|e| {
            format!(
                "cannot move the dump into place at {}: {e}",
                final_path.display()
            )
        })?;
        let bytes = std::fs::metadata(&final_path).map(|m| m.len()).unwrap_or(0);
        Ok(DumpReport {
            name: source.name.clone(),
            kind: source.type_name(),
            file: file.clone(),
            bytes,
            duration: start.elapsed(),
            source: done.source,
            method: done.method,
            tables: done.tables,
            databases: done.databases,
        })
    };
    match result.and_then(finish) {
        Ok(report) => Ok(report),
        Err(reason) => {
            let _ = std::fs::remove_file(&partial);
            let _ = std::fs::remove_file(&final_path);
            Err(DumpError {
                database: source.name.clone(),
                reason,
            })
        }
    }
}

/// What a source module reports after writing and verifying its file.
pub struct Done {
    pub source: String,
    pub method: String,
    pub tables: Vec<String>,
    /// MySQL: the databases dumped.
    pub databases: Vec<String>,
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
