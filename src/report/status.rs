//! The status file of each profile, `<state_dir>/status/<profile>.json`: what its last runs of
//! each job did. Every change is a read-modify-write under a file lock, written to a temporary
//! file and renamed into place, so a reader never sees half a file and two writers (the daemon
//! and a manual run) never lose each other's update.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::restic::SnapshotRef;
use crate::schedule::JobKind;

/// Everything recorded about one profile.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ProfileStatus {
    pub profile: String,
    #[serde(default)]
    pub jobs: BTreeMap<JobKind, JobStatus>,
    /// A run was interrupted (or its process died): restic may have left a stale lock in the
    /// repository, removed with `restic unlock` before the next run.
    #[serde(default)]
    pub unlock_pending: bool,
    /// The copies into each `copy_to` repository, by repository name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub copies: BTreeMap<String, CopyStatus>,
}

/// The last copy of a profile's snapshots into one `copy_to` repository.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CopyStatus {
    pub last_attempt: Option<DateTime<Utc>>,
    pub last_success: Option<DateTime<Utc>>,
    /// Whether the last attempt copied everything.
    pub last_ok: bool,
    /// Why the last attempt failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    #[serde(default)]
    pub failures: u64,
}

impl ProfileStatus {
    pub fn job(&self, kind: JobKind) -> Option<&JobStatus> {
        self.jobs.get(&kind)
    }
}

/// How a finished run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunResult {
    Success,
    /// Finished, with warnings (a snapshot was made without some files).
    Warnings,
    Failed,
    /// Stopped by a shutdown, or its process died mid-run.
    Interrupted,
}

impl RunResult {
    pub fn is_ok(self) -> bool {
        matches!(self, RunResult::Success | RunResult::Warnings)
    }

    pub fn name(self) -> &'static str {
        match self {
            RunResult::Success => "success",
            RunResult::Warnings => "warnings",
            RunResult::Failed => "failed",
            RunResult::Interrupted => "interrupted",
        }
    }
}

/// The record of one job (backup, check, prune, verify) of one profile.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct JobStatus {
    /// Set while a run is in progress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub running: Option<Running>,
    #[serde(default)]
    pub last_start: Option<DateTime<Utc>>,
    #[serde(default)]
    pub last_end: Option<DateTime<Utc>>,
    #[serde(default)]
    pub last_result: Option<RunResult>,
    #[serde(default)]
    pub last_duration_seconds: Option<f64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub last_warnings: Vec<String>,
    /// When the last successful run ended, and when it started.
    #[serde(default)]
    pub last_success: Option<DateTime<Utc>>,
    #[serde(default)]
    pub last_success_start: Option<DateTime<Utc>>,
    #[serde(default)]
    pub last_failure: Option<Failure>,
    #[serde(default)]
    pub runs: u64,
    #[serde(default)]
    pub failures: u64,
    /// Scheduled times skipped because the job was still running.
    #[serde(default)]
    pub skipped: u64,
    /// Details of the last successful backup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<BackupStats>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Running {
    pub pid: u32,
    pub started: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Failure {
    pub time: DateTime<Utc>,
    pub error: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(from = "BackupStatsFile")]
pub struct BackupStats {
    /// The snapshot the run made.
    pub snapshot: SnapshotRef,
    pub files: u64,
    /// restic's count of files it took from the parent snapshot without reading them.
    #[serde(default)]
    pub files_unmodified: u64,
    pub bytes_added: u64,
    pub bytes_processed: u64,
    /// The profile's snapshots on its host after the run (and its retention).
    #[serde(default)]
    pub snapshot_count: Option<u64>,
    /// The snapshot is tagged `incomplete`: the run finished with warnings that mean it may
    /// lack data (a missing path, unreadable files, an empty database).
    #[serde(default)]
    pub incomplete: bool,
    /// Seconds spent in each phase: dumps, snapshot, retention.
    #[serde(default)]
    pub phases: BTreeMap<String, f64>,
    #[serde(default)]
    pub databases: Vec<DatabaseStats>,
}

/// [`BackupStats`] as a status file holds it: files written before the JSON vocabulary was
/// unified (version 1) name the snapshot by `snapshot_id` (its short form) instead of
/// `snapshot`.
#[derive(Deserialize)]
struct BackupStatsFile {
    #[serde(default)]
    snapshot: Option<SnapshotRef>,
    #[serde(default)]
    snapshot_id: Option<String>,
    files: u64,
    #[serde(default)]
    files_unmodified: u64,
    bytes_added: u64,
    bytes_processed: u64,
    #[serde(default)]
    snapshot_count: Option<u64>,
    #[serde(default)]
    incomplete: bool,
    #[serde(default)]
    phases: BTreeMap<String, f64>,
    #[serde(default)]
    databases: Vec<DatabaseStats>,
}

impl From<BackupStatsFile> for BackupStats {
    fn from(f: BackupStatsFile) -> Self {
        let snapshot = f
            .snapshot
            .unwrap_or_else(|| SnapshotRef::new(f.snapshot_id.as_deref().unwrap_or_default()));
        BackupStats {
            snapshot,
            files: f.files,
            files_unmodified: f.files_unmodified,
            bytes_added: f.bytes_added,
            bytes_processed: f.bytes_processed,
            snapshot_count: f.snapshot_count,
            incomplete: f.incomplete,
            phases: f.phases,
            databases: f.databases,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DatabaseStats {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub bytes: u64,
    pub duration_seconds: f64,
    /// SQLite: how long the copy kept the application's writers out (0 in WAL mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub writers_held_seconds: Option<f64>,
    /// SQLite `method: incremental`: files in the chain (base + deltas).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain_length: Option<u64>,
}

/// The status files under one state directory.
#[derive(Debug, Clone)]
pub struct StatusStore {
    state_dir: PathBuf,
    dir: PathBuf,
}

impl StatusStore {
    pub fn new(state_dir: &Path) -> StatusStore {
        StatusStore {
            state_dir: state_dir.to_path_buf(),
            dir: state_dir.join("status"),
        }
    }

    pub fn path(&self, profile: &str) -> PathBuf {
        self.dir.join(format!("{profile}.json"))
    }

    /// The status of `profile`; empty when it never ran.
    ///
    /// Fails when the file exists but cannot be read or is not a status file.
    pub fn load(&self, profile: &str) -> Result<ProfileStatus, Error> {
        let path = self.path(profile);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                Error::io(
                    format!("status file {} is damaged", path.display()),
                    std::io::Error::new(std::io::ErrorKind::InvalidData, e),
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(ProfileStatus {
                profile: profile.to_string(),
                ..Default::default()
            }),
            Err(e) => Err(Error::io(format!("cannot read {}", path.display()), e)),
        }
    }

    /// The status of every profile in `names`; one that cannot be read is logged and shown
    /// as never run.
    pub fn load_all<'a>(&self, names: impl IntoIterator<Item = &'a str>) -> Vec<ProfileStatus> {
        names
            .into_iter()
            .map(|name| {
                self.load(name).unwrap_or_else(|err| {
                    tracing::warn!(profile = name, "{err}");
                    ProfileStatus {
                        profile: name.to_string(),
                        ..Default::default()
                    }
                })
            })
            .collect()
    }

    /// Changes the status of `profile` with `change` and writes it back atomically. A damaged
    /// file is set aside (`.damaged`) and started afresh, so it never stops a backup.
    ///
    /// Fails when the status directory or file cannot be written.
    pub fn update<T>(
        &self,
        profile: &str,
        change: impl FnOnce(&mut ProfileStatus) -> T,
    ) -> Result<T, Error> {
        crate::dirs::private_dir(
            &self.state_dir,
            &self.dir,
            &crate::dirs::Fix::key("state_dir"),
        )?;
        let lock_path = self.dir.join(format!(".{profile}.lock"));
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| Error::io(format!("cannot open {}", lock_path.display()), e))?;
        lock.lock()
            .map_err(|e| Error::io(format!("cannot lock {}", lock_path.display()), e))?;
        let mut status = match self.load(profile) {
            Ok(s) => s,
            Err(err) => {
                let path = self.path(profile);
                tracing::warn!(
                    profile,
                    "{err}; starting a new one (the old one is kept as .damaged)"
                );
                let _ = std::fs::rename(&path, path.with_extension("json.damaged"));
                ProfileStatus::default()
            }
        };
        status.profile = profile.to_string();
        let out = change(&mut status);
        let text = serde_json::to_vec_pretty(&status).expect("status serialises");
        write_atomically(&self.path(profile), &text)?;
        Ok(out)
    }
}

/// Writes `bytes` to a temporary file beside `path`, flushes it to disk and renames it over
/// `path`: readers see the old file or the new one, never a part.
///
/// Fails when the directory is not writable.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(dir)
        .map_err(|e| Error::io(format!("cannot write in {}", dir.display()), e))?;
    tmp.write_all(bytes)
        .and_then(|_| tmp.as_file().sync_all())
        .map_err(|e| Error::io(format!("cannot write {}", path.display()), e))?;
    // Readable by others (node_exporter reads the metrics file); tempfile creates 0600.
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o644));
    tmp.persist(path)
        .map_err(|e| Error::io(format!("cannot replace {}", path.display()), e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_file_from_before_version_1_names_its_snapshot() {
        let old = r#"{"snapshot_id":"b5eb941c","files":3,"bytes_added":10,"bytes_processed":20}"#;
        let b: BackupStats = serde_json::from_str(old).unwrap();
        assert_eq!(b.snapshot.id, "b5eb941c");
        assert_eq!(b.snapshot.short_id, "b5eb941c");
        let full = "b5eb941c".repeat(8);
        let now = serde_json::to_value(BackupStats {
            snapshot: SnapshotRef::new(&full),
            ..b
        })
        .unwrap();
        assert_eq!(now["snapshot"]["id"], full.as_str());
        assert_eq!(now["snapshot"]["short_id"], "b5eb941c");
        assert!(now.get("snapshot_id").is_none());
        let back: BackupStats = serde_json::from_value(now).unwrap();
        assert_eq!(back.snapshot.id, full);
    }

    #[test]
    fn updates_are_kept_and_a_damaged_file_is_set_aside() {
        let dir = tempfile::tempdir().unwrap();
        let store = StatusStore::new(dir.path());
        assert!(store.load("app").unwrap().jobs.is_empty());
        store
            .update("app", |s| {
                s.jobs.entry(JobKind::Backup).or_default().runs += 1;
            })
            .unwrap();
        store
            .update("app", |s| {
                s.jobs.entry(JobKind::Backup).or_default().runs += 1;
            })
            .unwrap();
        assert_eq!(store.load("app").unwrap().jobs[&JobKind::Backup].runs, 2);

        std::fs::write(store.path("app"), "{ not json").unwrap();
        assert!(store.load("app").is_err());
        store
            .update("app", |s| {
                s.jobs.entry(JobKind::Check).or_default().runs += 1;
            })
            .unwrap();
        let s = store.load("app").unwrap();
        assert_eq!(s.profile, "app");
        assert_eq!(s.jobs[&JobKind::Check].runs, 1);
        assert!(dir.path().join("status/app.json.damaged").exists());
    }
}
