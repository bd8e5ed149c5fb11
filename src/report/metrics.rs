//! The Prometheus text exposition of every profile's status: served at `/metrics` and written
//! to `metrics_file` for node_exporter's textfile collector. Rendered from the status files
//! alone, so manual runs and scheduled ones show the same way.

use std::fmt::Write;

use chrono::{DateTime, Utc};

use super::status::{ProfileStatus, RunResult, StatusStore, write_atomically};
use crate::config::Config;
use crate::schedule::JobKind;

/// Writes the metrics of every profile to `metrics_file`, when the config sets one. A file
/// that cannot be written is logged: metrics never fail a run.
pub fn write_file(config: &Config, store: &StatusStore, now: DateTime<Utc>) {
    let Some(path) = &config.daemon.metrics_file else {
        return;
    };
    let statuses = store.load_all(config.profiles.keys().map(String::as_str));
    let text = render(config, &statuses, now);
    let written = match path.parent() {
        Some(dir) => std::fs::create_dir_all(dir)
            .map_err(|e| crate::error::Error::io(format!("cannot create {}", dir.display()), e)),
        None => Ok(()),
    }
    .and_then(|_| write_atomically(path, text.as_bytes()));
    if let Err(err) = written {
        tracing::warn!("cannot write the metrics file: {err}");
    }
}

struct Family {
    name: &'static str,
    kind: &'static str,
    help: &'static str,
    samples: Vec<(String, f64)>,
}

impl Family {
    fn new(name: &'static str, kind: &'static str, help: &'static str) -> Family {
        Family {
            name,
            kind,
            help,
            samples: Vec::new(),
        }
    }

    fn add(&mut self, labels: &[(&str, &str)], value: f64) {
        let labels: Vec<String> = labels
            .iter()
            .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
            .collect();
        self.samples.push((labels.join(","), value));
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', r"\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn timestamp(t: &DateTime<Utc>) -> f64 {
    t.timestamp_millis() as f64 / 1000.0
}

/// The metrics text for `statuses` (one per profile of `config`) at `now`.
pub fn render(config: &Config, statuses: &[ProfileStatus], now: DateTime<Utc>) -> String {
    let mut last_success = Family::new(
        "resticpilot_last_success_timestamp_seconds",
        "gauge",
        "When the job last finished successfully (Unix time).",
    );
    let mut last_run = Family::new(
        "resticpilot_last_run_timestamp_seconds",
        "gauge",
        "When the job's last run ended (Unix time).",
    );
    let mut last_duration = Family::new(
        "resticpilot_last_run_duration_seconds",
        "gauge",
        "How long the job's last run took.",
    );
    let mut last_ok = Family::new(
        "resticpilot_last_run_success",
        "gauge",
        "1 if the job's last run succeeded (warnings included), 0 if it failed or was interrupted.",
    );
    let mut last_status = Family::new(
        "resticpilot_last_run_status",
        "gauge",
        "1 for the status of the job's last run (success, warnings, failed, interrupted).",
    );
    let mut running = Family::new(
        "resticpilot_running",
        "gauge",
        "1 while a run of the job is in progress.",
    );
    let mut runs = Family::new(
        "resticpilot_runs_total",
        "counter",
        "Runs of the job (manual and scheduled).",
    );
    let mut failures = Family::new(
        "resticpilot_failures_total",
        "counter",
        "Runs of the job that failed or were interrupted.",
    );
    let mut skipped = Family::new(
        "resticpilot_skipped_total",
        "counter",
        "Scheduled times skipped because the job was still running.",
    );
    let mut bytes_added = Family::new(
        "resticpilot_backup_added_bytes",
        "gauge",
        "Bytes the last successful backup added to the repository.",
    );
    let mut bytes_processed = Family::new(
        "resticpilot_backup_processed_bytes",
        "gauge",
        "Bytes the last successful backup read (dumps and files).",
    );
    let mut files = Family::new(
        "resticpilot_backup_files",
        "gauge",
        "Files in the last successful backup.",
    );
    let mut snapshots = Family::new(
        "resticpilot_snapshots",
        "gauge",
        "The profile's snapshots on its host after the last successful backup.",
    );
    let mut phases = Family::new(
        "resticpilot_backup_phase_duration_seconds",
        "gauge",
        "Seconds each phase of the last successful backup took (dumps, snapshot, retention).",
    );
    let mut dump_duration = Family::new(
        "resticpilot_database_dump_duration_seconds",
        "gauge",
        "How long the database's dump took in the last successful backup.",
    );
    let mut dump_size = Family::new(
        "resticpilot_database_dump_size_bytes",
        "gauge",
        "Size of the database's dump in the last successful backup.",
    );
    let mut writers_held = Family::new(
        "resticpilot_database_writers_held_seconds",
        "gauge",
        "How long the last successful backup's SQLite copy kept the application's writers out (0 in WAL mode).",
    );
    let mut chain_length = Family::new(
        "resticpilot_database_chain_length",
        "gauge",
        "SQLite method incremental: files in the chain of the last successful backup (base + deltas).",
    );
    let mut max_age = Family::new(
        "resticpilot_max_age_seconds",
        "gauge",
        "The age of the last successful backup past which /healthz fails.",
    );

    let mut copy_ok = Family::new(
        "resticpilot_copy_success",
        "gauge",
        "1 if the last copy of the profile's snapshots into the copy_to repository succeeded, 0 if it failed.",
    );
    let mut copy_last_success = Family::new(
        "resticpilot_copy_last_success_timestamp_seconds",
        "gauge",
        "When the profile's snapshots were last all copied into the copy_to repository (Unix time).",
    );
    let mut copy_failures = Family::new(
        "resticpilot_copy_failures_total",
        "counter",
        "Failed copies of the profile's snapshots into the copy_to repository.",
    );

    for status in statuses {
        let profile = status.profile.as_str();
        for (repo, c) in &status.copies {
            let labels = [("profile", profile), ("repository", repo.as_str())];
            copy_ok.add(&labels, if c.last_ok { 1.0 } else { 0.0 });
            if let Some(t) = &c.last_success {
                copy_last_success.add(&labels, timestamp(t));
            }
            copy_failures.add(&labels, c.failures as f64);
        }
        if let Some(p) = config.profiles.get(profile)
            && let Some(age) = super::health::max_age(p, now)
        {
            max_age.add(&[("profile", profile)], age.as_secs_f64());
        }
        for kind in JobKind::ALL {
            let Some(job) = status.job(kind) else {
                continue;
            };
            let labels = [("profile", profile), ("job", kind.name())];
            if let Some(t) = &job.last_success {
                last_success.add(&labels, timestamp(t));
            }
            if let Some(t) = &job.last_end {
                last_run.add(&labels, timestamp(t));
            }
            if let Some(d) = job.last_duration_seconds {
                last_duration.add(&labels, d);
            }
            if let Some(r) = job.last_result {
                last_ok.add(&labels, if r.is_ok() { 1.0 } else { 0.0 });
                for each in [
                    RunResult::Success,
                    RunResult::Warnings,
                    RunResult::Failed,
                    RunResult::Interrupted,
                ] {
                    let v = if each == r { 1.0 } else { 0.0 };
                    last_status.add(
                        &[
                            ("profile", profile),
                            ("job", kind.name()),
                            ("status", each.name()),
                        ],
                        v,
                    );
                }
            }
            running.add(&labels, if job.running.is_some() { 1.0 } else { 0.0 });
            runs.add(&labels, job.runs as f64);
            failures.add(&labels, job.failures as f64);
            skipped.add(&labels, job.skipped as f64);
            if let Some(b) = &job.backup {
                let p = [("profile", profile)];
                bytes_added.add(&p, b.bytes_added as f64);
                bytes_processed.add(&p, b.bytes_processed as f64);
                files.add(&p, b.files as f64);
                if let Some(n) = b.snapshot_count {
                    snapshots.add(&p, n as f64);
                }
                for (phase, secs) in &b.phases {
                    phases.add(&[("profile", profile), ("phase", phase)], *secs);
                }
                for db in &b.databases {
                    let l = [
                        ("profile", profile),
                        ("database", db.name.as_str()),
                        ("type", db.kind.as_str()),
                    ];
                    dump_duration.add(&l, db.duration_seconds);
                    dump_size.add(&l, db.bytes as f64);
                    if let Some(held) = db.writers_held_seconds {
                        writers_held.add(&l, held);
                    }
                    if let Some(n) = db.chain_length {
                        chain_length.add(&l, n as f64);
                    }
                }
            }
        }
    }

    let mut out = String::new();
    for family in [
        last_success,
        last_run,
        last_duration,
        last_ok,
        last_status,
        running,
        runs,
        failures,
        skipped,
        bytes_added,
        bytes_processed,
        files,
        snapshots,
        phases,
        dump_duration,
        writers_held,
        chain_length,
        dump_size,
        max_age,
        copy_ok,
        copy_last_success,
        copy_failures,
    ] {
        let _ = writeln!(out, "# HELP {} {}", family.name, family.help);
        let _ = writeln!(out, "# TYPE {} {}", family.name, family.kind);
        for (labels, value) in &family.samples {
            let _ = writeln!(out, "{}{{{labels}}} {value}", family.name);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
