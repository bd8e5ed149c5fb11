//! The manifest: one JSON file the run writes into staging next to the dumps, and restore and
//! verify read back out of a snapshot. One type both ways. Read leniently (older manifests
//! lack the newer fields); what is read is untrusted (`restore::check_manifest`).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::source::sqlite::incremental::Chain;

/// The manifest's file name inside staging.
pub const MANIFEST: &str = "resticpilot-manifest.json";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    #[serde(default)]
    pub resticpilot: String,
    #[serde(default)]
    pub profile: String,
    #[serde(default)]
    pub host: String,
    #[serde(default)]
    pub created: String,
    /// Where staging was when the backup ran (restores find the dumps through the snapshot).
    #[serde(default)]
    pub staging_dir: String,
    pub databases: Vec<ManifestDatabase>,
}

/// What one dump produced. Only `name`, `type` and `file` are essential when read.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ManifestDatabase {
    pub name: String,
    /// The engine's name (`source::Engine::name`).
    #[serde(rename = "type")]
    pub kind: String,
    /// File name inside the staging directory.
    pub file: String,
    #[serde(default)]
    pub bytes: u64,
    /// How long the dump took, in seconds (to the millisecond).
    #[serde(default)]
    pub duration: f64,
    /// What was dumped: the SQLite file, or the MySQL databases joined with ", ".
    #[serde(default)]
    pub source: String,
    /// How: "online backup", "vacuum into", "mariadb-dump 10.11.6", ...
    #[serde(default)]
    pub method: String,
    /// Tables in the dump (SQLite: from the copy; MySQL: from the dump's CREATE TABLEs).
    #[serde(default)]
    pub tables: Vec<String>,
    /// SQLite: `blake3:<hex>` of the checked copy; a restore that reproduces it is bit-identical.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<String>,
    /// SQLite: the live database's journal mode (`wal`, `delete`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub journal_mode: Option<String>,
    /// SQLite: how long the copy kept the application's writers out, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub writers_held_seconds: Option<f64>,
    /// SQLite `method: incremental`: the chain to rebuild the copy from (no file in staging).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incremental: Option<Chain>,
    /// MySQL: the databases as a list (names may hold ", "; older manifests have only
    /// `source`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub databases: Option<Vec<String>>,
}

/// Seconds to the millisecond, as the manifest and the status file record them.
pub fn seconds(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0).round() / 1000.0
}

impl ManifestDatabase {
    /// MySQL: the databases the dump holds (it was made with `--databases`): the `databases`
    /// list, or for an older manifest its `source` split at ", ".
    pub fn mysql_databases(&self) -> Vec<String> {
        if let Some(list) = &self.databases {
            return list.clone();
        }
        self.source
            .split(", ")
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    }
}
