//! The Prometheus text exposition of every profile's status: served at `/metrics`, written to
//! `metrics_file` for node_exporter's textfile collector, and pushed after each run to a
//! Pushgateway (`metrics.push_url`: a CronJob's pod is gone before anything scrapes it).
//! Rendered from the status files alone, so manual runs and scheduled ones show the same way.

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

/// Pushes the metrics of `profile`'s `kind` job to the Pushgateway, when the config sets one.
///
/// One group per job, host and profile (`/metrics/job/<kind>/instance/<host>/profile/<name>`),
/// replaced whole by each push (PUT), so a host's backup and its prune job never overwrite
/// each other, and a fleet of hosts shows one series per host. The group's labels carry the
/// job and profile, so the samples leave them out (the Pushgateway refuses both). Bounded by
/// `metrics.push_timeout`; a failure is logged with the URL's scheme and host only, and never
/// fails the run.
pub fn push(
    config: &Config,
    store: &StatusStore,
    profile: &crate::config::Profile,
    kind: JobKind,
    now: DateTime<Utc>,
) {
    let Some(push) = &config.daemon.push else {
        return;
    };
    let status = match store.load(&profile.name) {
        Ok(s) => s,
        Err(err) => {
            tracing::warn!(profile = %profile.name, "cannot push metrics: {err}");
            return;
        }
    };
    let body = render_scoped(config, std::slice::from_ref(&status), now, Some(kind));
    let url = format!(
        "{}/metrics/{}/{}/{}",
        push.url,
        group_pair("job", kind.name()),
        group_pair("instance", &profile.host),
        group_pair("profile", &profile.name)
    );
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_connect(Some(push.timeout.min(std::time::Duration::from_secs(5))))
        .timeout_global(Some(push.timeout))
        .http_status_as_error(false)
        .user_agent(format!("resticpilot/{}", env!("CARGO_PKG_VERSION")))
        .build()
        .into();
    let mut request = agent
        .put(&url)
        .header("Content-Type", "text/plain; version=0.0.4");
    if let Some(auth) = &push.basic_auth {
        use base64::Engine;
        let token = base64::engine::general_purpose::STANDARD.encode(auth.expose());
        request = request.header("Authorization", format!("Basic {token}"));
    }
    let target = super::notify::mask_url(&push.url);
    match request.send(body.as_str()) {
        Ok(response) if response.status().is_success() => {
            tracing::debug!(profile = %profile.name, "metrics of the {kind} run pushed to {target}");
        }
        Ok(mut response) => {
            let code = response.status().as_u16();
            let text = response
                .body_mut()
                .with_config()
                .limit(2000)
                .read_to_string()
                .unwrap_or_default();
            tracing::warn!(
                profile = %profile.name,
                "cannot push metrics to the Pushgateway {target}: it answered HTTP {code}: {}",
                text.trim()
            );
        }
        Err(err) => tracing::warn!(
            profile = %profile.name,
            "cannot push metrics to the Pushgateway {target} (push_timeout {:?}): {}",
            push.timeout,
            err
        ),
    }
}

/// One `label/value` pair of the Pushgateway's grouping key: as is when the value is plain,
/// else `label@base64/VALUE` (base64url), which the Pushgateway decodes (a `/` cannot be
/// escaped otherwise; the empty value is `=`).
fn group_pair(label: &str, v: &str) -> String {
    let plain = !v.is_empty()
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if plain {
        format!("{label}/{v}")
    } else if v.is_empty() {
        format!("{label}@base64/=")
    } else {
        use base64::Engine;
        format!(
            "{label}@base64/{}",
            base64::engine::general_purpose::URL_SAFE.encode(v)
        )
    }
}

struct Family {
    name: &'static str,
    kind: &'static str,
    help: &'static str,
    samples: Vec<(String, f64)>,
    /// Labels left out of every sample (they are the Pushgateway group's).
    omit: &'static [&'static str],
}

impl Family {
    fn add(&mut self, labels: &[(&str, &str)], value: f64) {
        let labels: Vec<String> = labels
            .iter()
            .filter(|(k, _)| !self.omit.contains(k))
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
    render_scoped(config, statuses, now, None)
}

/// [`render`], or with `only` the samples of that job alone, without the `profile` and `job`
/// labels and without empty families: one Pushgateway group.
fn render_scoped(
    config: &Config,
    statuses: &[ProfileStatus],
    now: DateTime<Utc>,
    only: Option<JobKind>,
) -> String {
    let omit: &'static [&'static str] = if only.is_some() {
        &["profile", "job"]
    } else {
        &[]
    };
    let new = |name, kind, help| Family {
        name,
        kind,
        help,
        samples: Vec::new(),
        omit,
    };
    let mut last_success = new(
        "resticpilot_last_success_timestamp_seconds",
        "gauge",
        "When the job last finished successfully (Unix time).",
    );
    let mut last_run = new(
        "resticpilot_last_run_timestamp_seconds",
        "gauge",
        "When the job's last run ended (Unix time).",
    );
    let mut last_duration = new(
        "resticpilot_last_run_duration_seconds",
        "gauge",
        "How long the job's last run took.",
    );
    let mut last_ok = new(
        "resticpilot_last_run_success",
        "gauge",
        "1 if the job's last run succeeded (warnings included), 0 if it failed or was interrupted.",
    );
    let mut last_status = new(
        "resticpilot_last_run_status",
        "gauge",
        "1 for the status of the job's last run (success, warnings, failed, interrupted).",
    );
    let mut running = new(
        "resticpilot_running",
        "gauge",
        "1 while a run of the job is in progress.",
    );
    let mut runs = new(
        "resticpilot_runs_total",
        "counter",
        "Runs of the job (manual and scheduled).",
    );
    let mut failures = new(
        "resticpilot_failures_total",
        "counter",
        "Runs of the job that failed or were interrupted.",
    );
    let mut skipped = new(
        "resticpilot_skipped_total",
        "counter",
        "Scheduled times skipped because the job was still running.",
    );
    let mut bytes_added = new(
        "resticpilot_backup_added_bytes",
        "gauge",
        "Bytes the last successful backup added to the repository.",
    );
    let mut bytes_processed = new(
        "resticpilot_backup_processed_bytes",
        "gauge",
        "Bytes the last successful backup read (dumps and files).",
    );
    let mut files = new(
        "resticpilot_backup_files",
        "gauge",
        "Files in the last successful backup.",
    );
    let mut snapshots = new(
        "resticpilot_snapshots",
        "gauge",
        "The profile's snapshots on its host after the last successful backup.",
    );
    let mut phases = new(
        "resticpilot_backup_phase_duration_seconds",
        "gauge",
        "Seconds each phase of the last successful backup took (dumps, snapshot, retention).",
    );
    let mut dump_duration = new(
        "resticpilot_database_dump_duration_seconds",
        "gauge",
        "How long the database's dump took in the last successful backup.",
    );
    let mut dump_size = new(
        "resticpilot_database_dump_size_bytes",
        "gauge",
        "Size of the database's dump in the last successful backup.",
    );
    let mut writers_held = new(
        "resticpilot_database_writers_held_seconds",
        "gauge",
        "How long the last successful backup's SQLite copy kept the application's writers out (0 in WAL mode).",
    );
    let mut chain_length = new(
        "resticpilot_database_chain_length",
        "gauge",
        "SQLite method incremental: files in the chain of the last successful backup (base + deltas).",
    );
    let mut max_age = new(
        "resticpilot_max_age_seconds",
        "gauge",
        "The age of the last successful backup past which /healthz fails.",
    );

    let mut copy_ok = new(
        "resticpilot_copy_success",
        "gauge",
        "1 if the last copy of the profile's snapshots into the copy_to repository succeeded, 0 if it failed.",
    );
    let mut copy_last_success = new(
        "resticpilot_copy_last_success_timestamp_seconds",
        "gauge",
        "When the profile's snapshots were last all copied into the copy_to repository (Unix time).",
    );
    let mut copy_failures = new(
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
            && only.is_none_or(|k| k == JobKind::Backup)
            && let Some(age) = super::health::max_age(p, now)
        {
            max_age.add(&[("profile", profile)], age.as_secs_f64());
        }
        for kind in JobKind::ALL {
            if only.is_some_and(|k| k != kind) {
                continue;
            }
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

    let mut build_info = new(
        "resticpilot_build_info",
        "gauge",
        "1, labelled with resticpilot's version and commit and the restic it runs (unknown until it first ran restic).",
    );
    let restic_version = crate::restic::located_version()
        .map(|v| v.to_string())
        .unwrap_or_else(|| "unknown".to_string());
    build_info.add(
        &[
            ("version", env!("CARGO_PKG_VERSION")),
            ("commit", env!("RESTICPILOT_COMMIT")),
            ("restic_version", &restic_version),
        ],
        1.0,
    );

    let mut out = String::new();
    for family in [
        build_info,
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
        if only.is_some() && family.samples.is_empty() {
            continue;
        }
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
    fn grouping_values_that_are_not_plain_are_base64() {
        assert_eq!(
            group_pair("instance", "db-1.prod_a"),
            "instance/db-1.prod_a"
        );
        assert_eq!(group_pair("instance", "a/b"), "instance@base64/YS9i");
        assert_eq!(group_pair("instance", ""), "instance@base64/=");
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
