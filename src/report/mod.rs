//! What a run tells the world: its status file, Prometheus metrics (served and written to a
//! file), health, notifications, and progress on a terminal.
//!
//! [`JobRun`] is the one hook every run goes through, manual or scheduled: `begin` when the
//! profile lock is held, then `succeeded` or `failed`. Reporting never fails or blocks a run:
//! a status that cannot be written or a notification that cannot be sent is logged.

pub mod health;
pub mod http;
pub mod metrics;
pub mod notify;
pub mod progress;
pub mod status;

use std::time::Instant;

use chrono::{DateTime, Utc};

use crate::config::{Config, Profile};
use crate::error::Error;
use crate::process::ProcessError;
use crate::restic::ResticError;
use crate::schedule::JobKind;
/// The version of every JSON document resticpilot prints or sends (`snapshots --json`,
/// `status --json`, `verify --json`, the webhook's body): raised when a field changes meaning
/// or goes away, not when one is added. The README's "JSON outputs" documents each.
pub const JSON_VERSION: u32 = 1;

/// A JSON document with its `version` first, then `body`'s fields.
#[derive(serde::Serialize)]
pub struct Versioned<'a, T: serde::Serialize> {
    version: u32,
    #[serde(flatten)]
    body: &'a T,
}

impl<'a, T: serde::Serialize> Versioned<'a, T> {
    pub fn new(body: &'a T) -> Self {
        Versioned {
            version: JSON_VERSION,
            body,
        }
    }

    /// Pretty-printed, as the commands print it.
    pub fn to_pretty(&self) -> String {
        serde_json::to_string_pretty(self).expect("JSON outputs serialise")
    }
}

pub use status::{BackupStats, JobStatus, ProfileStatus, RunResult, StatusStore};

/// One run of one job of one profile, from start to end.
pub struct JobRun<'a> {
    config: &'a Config,
    profile: &'a Profile,
    kind: JobKind,
    store: StatusStore,
    started: DateTime<Utc>,
    clock: Instant,
    unlock_pending: bool,
}

impl<'a> JobRun<'a> {
    /// Records that a run starts; call it holding the profile lock. A run still marked as
    /// running in the status file belonged to a process that is gone (the lock proves it): it
    /// is recorded as interrupted. Backups ping healthchecks' start.
    pub fn begin(config: &'a Config, profile: &'a Profile, kind: JobKind) -> JobRun<'a> {
        let store = StatusStore::new(&config.state_dir);
        let started = Utc::now();
        let pid = std::process::id();
        let unlock_pending = store
            .update(&profile.name, |s| {
                for (k, job) in s.jobs.iter_mut() {
                    if let Some(dead) = job.running.take() {
                        tracing::warn!(
                            profile = %profile.name,
                            "the {k} run started at {} by pid {} never finished (its process was killed or the machine stopped); recorded as interrupted",
                            dead.started.to_rfc3339(),
                            dead.pid
                        );
                        job.last_result = Some(RunResult::Interrupted);
                        job.failures += 1;
                        job.last_failure = Some(status::Failure {
                            time: dead.started,
                            error: format!("the run by pid {} never finished: its process was killed or the machine stopped", dead.pid),
                        });
                        s.unlock_pending = true;
                    }
                }
                let job = s.jobs.entry(kind).or_default();
                job.running = Some(status::Running { pid, started });
                job.last_start = Some(started);
                s.unlock_pending
            })
            .unwrap_or_else(|err| {
                tracing::warn!(profile = %profile.name, "cannot record the run's start: {err}");
                false
            });
        if kind == JobKind::Backup {
            notify::started(profile);
        }
        JobRun {
            config,
            profile,
            kind,
            store,
            started,
            clock: Instant::now(),
            unlock_pending,
        }
    }

    /// A previous run was interrupted: restic may have left a stale lock to remove first.
    pub fn unlock_pending(&self) -> bool {
        self.unlock_pending
    }

    /// Stale locks were removed.
    pub fn unlocked(&mut self) {
        self.unlock_pending = false;
        if let Err(err) = self
            .store
            .update(&self.profile.name, |s| s.unlock_pending = false)
        {
            tracing::warn!(profile = %self.profile.name, "cannot update the status file: {err}");
        }
    }

    /// Records a run that finished (with `warnings`, if any) and reports it.
    pub fn succeeded(self, warnings: Vec<String>, backup: Option<BackupStats>) {
        let result = if warnings.is_empty() {
            RunResult::Success
        } else {
            RunResult::Warnings
        };
        let snapshot = backup.as_ref().map(|b| b.snapshot.clone());
        self.finish(result, None, warnings, backup, snapshot);
    }

    /// Records a run that failed and reports it.
    pub fn failed(self, err: &Error) {
        let result = if is_interruption(err) {
            RunResult::Interrupted
        } else {
            RunResult::Failed
        };
        self.finish(result, Some(err.to_string()), Vec::new(), None, None);
    }

    fn finish(
        self,
        result: RunResult,
        error: Option<String>,
        warnings: Vec<String>,
        backup: Option<BackupStats>,
        snapshot: Option<crate::restic::SnapshotRef>,
    ) {
        let ended = Utc::now();
        let duration = self.clock.elapsed();
        let started = self.started;
        let recorded = self.store.update(&self.profile.name, |s| {
            if !result.is_ok() {
                // A failed run may have left a restic lock too (a server that went away
                // mid-backup): the next run removes stale locks first.
                s.unlock_pending = true;
            }
            let job = s.jobs.entry(self.kind).or_default();
            job.running = None;
            job.last_end = Some(ended);
            job.last_result = Some(result);
            job.last_duration_seconds = Some(round_ms(duration.as_secs_f64()));
            job.last_warnings = warnings.clone();
            job.runs += 1;
            if result.is_ok() {
                job.last_success = Some(ended);
                job.last_success_start = Some(started);
                if backup.is_some() {
                    job.backup = backup.clone();
                }
            } else {
                job.failures += 1;
                job.last_failure = Some(status::Failure {
                    time: ended,
                    error: error.clone().unwrap_or_default(),
                });
            }
        });
        if let Err(err) = recorded {
            tracing::warn!(profile = %self.profile.name, "cannot record the run's end: {err}");
        }
        metrics::write_file(self.config, &self.store, ended);
        metrics::push(self.config, &self.store, self.profile, self.kind, ended);
        notify::finished(&notify::Finished {
            profile: self.profile,
            job: self.kind,
            result,
            error: error.as_deref(),
            started,
            ended,
            duration,
            snapshot: snapshot.as_ref(),
            warnings: &warnings,
        });
    }
}

/// Whether `err` means the run was stopped (by a shutdown or a signal) rather than failed on
/// its own: restic may have left a lock behind.
pub fn is_interruption(err: &Error) -> bool {
    crate::signals::terminating()
        || matches!(
            err,
            Error::Interrupted(_)
                | Error::Process(ProcessError::ShuttingDown { .. })
                | Error::Restic(ResticError::Interrupted { .. })
                | Error::Restic(ResticError::Process(ProcessError::ShuttingDown { .. }))
        )
}

fn round_ms(secs: f64) -> f64 {
    (secs * 1000.0).round() / 1000.0
}

/// Seconds with millisecond precision, for status files and metrics.
pub fn seconds(d: std::time::Duration) -> f64 {
    round_ms(d.as_secs_f64())
}
