//! Getting a snapshot back: which snapshot of a profile, where its dumps are inside it, and
//! what its manifest says about them. `sqlite`, `mysql` and `files` put things back; `drill`
//! is the restore drill (`verify`).
//!
//! Dumps are found through the snapshot itself (the directory holding `resticpilot-manifest.json`
//! among the snapshot's paths), never through the profile's current `staging_dir`, which may
//! have changed since the backup.

pub mod drill;
pub mod files;
pub mod mysql;
pub mod progress;
pub mod sqlcheck;
pub mod sqlite;

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::commands::backup::MANIFEST;
use crate::config::Profile;
use crate::error::Error;
use crate::restic::{Restic, ResticError, Snapshot};

#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// The snapshot cannot serve the restore: no manifest, a dump missing from it, ...
    #[error("snapshot {snapshot}: {reason}")]
    Snapshot { snapshot: String, reason: String },
    /// Refused before anything was changed.
    #[error("restore of {what} refused: {reason}")]
    Refused { what: String, reason: String },
    #[error("restore of {what} failed: {reason}")]
    Failed { what: String, reason: String },
    #[error(transparent)]
    Restic(#[from] ResticError),
}

impl RestoreError {
    pub fn failed(what: impl Into<String>, reason: impl Into<String>) -> Self {
        RestoreError::Failed {
            what: what.into(),
            reason: reason.into(),
        }
    }

    pub fn refused(what: impl Into<String>, reason: impl Into<String>) -> Self {
        RestoreError::Refused {
            what: what.into(),
            reason: reason.into(),
        }
    }
}

/// The manifest a backup writes next to its dumps (see `commands::backup`). Read leniently:
/// only `databases[].name`, `type` and `file` are essential.
#[derive(Debug, Clone, Deserialize)]
pub struct Manifest {
    #[serde(default)]
    pub resticpilot: String,
    #[serde(default)]
    pub profile: String,
    #[serde(default)]
    pub created: String,
    pub databases: Vec<ManifestDatabase>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ManifestDatabase {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub file: String,
    #[serde(default)]
    pub bytes: u64,
    /// SQLite: the live file it was copied from; MySQL: the databases, comma-separated.
    #[serde(default)]
    pub source: String,
    #[serde(default)]
    pub tables: Vec<String>,
    /// MySQL: the databases as a list (manifests since the list was added; older ones have
    /// only `source`).
    #[serde(default)]
    pub databases: Option<Vec<String>>,
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

/// One snapshot of a profile, opened: where its dumps are and what else it holds.
#[derive(Debug, Clone)]
pub struct Contents {
    pub snapshot: Snapshot,
    /// The staging directory as recorded in the snapshot (absolute).
    pub staging: String,
    pub manifest: Manifest,
    /// The snapshot's other paths: the profile's files at backup time.
    pub files: Vec<String>,
}

impl Contents {
    pub fn id(&self) -> &str {
        &self.snapshot.id
    }

    pub fn short(&self) -> &str {
        self.snapshot.short()
    }

    /// The path of a dump file inside the snapshot.
    pub fn dump_path(&self, db: &ManifestDatabase) -> String {
        format!("{}/{}", self.staging.trim_end_matches('/'), db.file)
    }

    pub fn database(&self, name: &str) -> Option<&ManifestDatabase> {
        self.manifest.databases.iter().find(|d| d.name == name)
    }

    /// "a, b" or "none".
    pub fn database_names(&self) -> String {
        let names: Vec<&str> = self
            .manifest
            .databases
            .iter()
            .map(|d| d.name.as_str())
            .collect();
        if names.is_empty() {
            "none".into()
        } else {
            names.join(", ")
        }
    }
}

/// The snapshot `spec` ("latest" or an id or id prefix) among `profile`'s snapshots (its tags
/// on its host).
///
/// Fails when restic fails, when the profile has no snapshot, and with a usage error when no
/// snapshot of the profile matches `spec` (or more than one does).
pub fn select(restic: &Restic, profile: &Profile, spec: &str) -> Result<Snapshot, Error> {
    let mut list = restic.snapshots(&profile.host, &profile.profile_tag())?;
    if list.is_empty() {
        // A new server has a new name: say where the profile's snapshots are.
        let mut elsewhere: Vec<(String, usize)> = Vec::new();
        for s in restic.snapshots_any_host(&profile.profile_tag())? {
            match elsewhere.iter_mut().find(|(h, _)| *h == s.hostname) {
                Some((_, n)) => *n += 1,
                None => elsewhere.push((s.hostname.clone(), 1)),
            }
        }
        let hint = match elsewhere.as_slice() {
            [] => String::new(),
            hosts => format!(
                "; it has {}: set `host:` in the profile to the old machine's name to restore them",
                hosts
                    .iter()
                    .map(|(h, n)| format!("{} on host {h}", count(*n as u64, "snapshot")))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        return Err(Error::Failed(format!(
            "profile {} has no snapshots on host {} in repository {} ({}){hint}",
            profile.name,
            profile.host,
            profile.repository,
            restic.url()
        )));
    }
    if spec == "latest" {
        // RFC 3339 times from one restic sort as text once normalised to one zone; restic
        // already lists oldest first, so the last is the newest.
        list.sort_by(|a, b| {
            let ta = chrono::DateTime::parse_from_rfc3339(&a.time).ok();
            let tb = chrono::DateTime::parse_from_rfc3339(&b.time).ok();
            ta.cmp(&tb)
        });
        return Ok(list.pop().expect("not empty"));
    }
    let matches: Vec<&Snapshot> = list.iter().filter(|s| s.id.starts_with(spec)).collect();
    match matches.as_slice() {
        [one] => Ok((*one).clone()),
        [] => {
            let recent: Vec<&str> = list.iter().rev().take(5).map(|s| s.short()).collect();
            Err(Error::Usage(format!(
                "no snapshot {spec:?} among profile {}'s snapshots on host {} (latest: {})",
                profile.name,
                profile.host,
                recent.join(", ")
            )))
        }
        many => Err(Error::Usage(format!(
            "snapshot id {spec:?} is ambiguous: it starts {} snapshots; give more characters",
            many.len()
        ))),
    }
}

/// Finds the staging directory in `snapshot` and reads its manifest.
///
/// Fails when restic fails, or the snapshot holds no resticpilot manifest or an unreadable one.
pub fn open(restic: &Restic, snapshot: Snapshot) -> Result<Contents, RestoreError> {
    let mut candidates = Vec::new();
    restic.ls(&snapshot.id, &snapshot.paths, false, |node| {
        if node.is_file() && node.name == MANIFEST {
            candidates.push(node.path);
        }
    })?;
    let manifest_path = candidates
        .into_iter()
        .find(|p| {
            Path::new(p)
                .parent()
                .is_some_and(|dir| snapshot.paths.iter().any(|sp| Path::new(sp) == dir))
        })
        .ok_or_else(|| RestoreError::Snapshot {
            snapshot: snapshot.short().to_string(),
            reason: format!(
                "none of its paths ({}) holds a {MANIFEST}: it was not made by resticpilot, or its staging directory is missing",
                snapshot.paths.join(", ")
            ),
        })?;
    let staging = Path::new(&manifest_path)
        .parent()
        .expect("checked above")
        .display()
        .to_string();
    let mut text = Vec::new();
    restic.dump(&snapshot.id, &manifest_path, &mut text)?;
    let manifest: Manifest = serde_json::from_slice(&text).map_err(|e| RestoreError::Snapshot {
        snapshot: snapshot.short().to_string(),
        reason: format!("its {manifest_path} is not a readable manifest: {e}"),
    })?;
    let files = snapshot
        .paths
        .iter()
        .filter(|p| **p != staging)
        .cloned()
        .collect();
    Ok(Contents {
        snapshot,
        staging,
        manifest,
        files,
    })
}

/// "1 file", "2 files".
pub fn count(n: impl Into<u64>, what: &str) -> String {
    let n = n.into();
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

/// An RFC 3339 time from restic as "2026-11-22 23:34:12 +00:00".
pub fn show_time(rfc3339: &str) -> String {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S %:z").to_string())
        .unwrap_or_else(|_| rfc3339.to_string())
}

/// A file name suffix for "now": `20261122T232730Z`.
pub fn timestamp() -> String {
    chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string()
}

/// `base` + `suffix`, or with `-1`, `-2`... appended when that name is taken.
pub fn unused_name(base: &Path, suffix: &str) -> PathBuf {
    let first = PathBuf::from(format!("{}{suffix}", base.display()));
    if first.symlink_metadata().is_err() {
        return first;
    }
    (1..)
        .map(|n| PathBuf::from(format!("{}{suffix}-{n}", base.display())))
        .find(|p| p.symlink_metadata().is_err())
        .expect("some number is free")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_from_a_backup_is_read() {
        let text = r#"{"resticpilot":"0.1.0","profile":"shop","host":"h","created":"2026-11-22T23:00:00Z",
            "staging_dir":"/var/lib/resticpilot/staging/shop","databases":[
            {"name":"main","type":"mysql","file":"main.sql","bytes":10,"duration":0.5,
             "source":"shop, billing","method":"mariadb-dump","tables":["shop.t"]}]}"#;
        let m: Manifest = serde_json::from_str(text).unwrap();
        assert_eq!(m.databases[0].mysql_databases(), ["shop", "billing"]);
        assert_eq!(m.databases[0].tables, ["shop.t"]);
    }

    #[test]
    fn the_database_list_wins_over_the_joined_source() {
        let text = r#"{"databases":[{"name":"main","type":"mysql","file":"main.sql",
             "source":"we, ird","databases":["we, ird"]}]}"#;
        let m: Manifest = serde_json::from_str(text).unwrap();
        assert_eq!(m.databases[0].mysql_databases(), ["we, ird"]);
    }

    #[test]
    fn unused_name_counts_up() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("app.db");
        let a = unused_name(&base, ".pre-restore-X");
        assert!(a.ends_with("app.db.pre-restore-X"));
        std::fs::write(&a, "").unwrap();
        let b = unused_name(&base, ".pre-restore-X");
        assert!(b.ends_with("app.db.pre-restore-X-1"));
    }
}
