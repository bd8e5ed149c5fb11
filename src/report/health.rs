//! Health, as `/healthz` reports it: every profile's last run of each job succeeded, and its
//! last successful backup is younger than `max_age` (default: twice the schedule's longest
//! gap). A profile that never succeeded is given `max_age` from the daemon's start.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::status::{ProfileStatus, RunResult};
use crate::config::{Config, Profile};
use crate::error::Error;
use crate::schedule::{JobKind, Schedule, Zone};

/// The verdict and a short text saying why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    pub healthy: bool,
    /// One line per profile ("app: backup ok, last success 2024-05-01T03:00:12Z"), problems
    /// first.
    pub text: String,
}

/// How old a profile's last successful backup may be: `max_age`, else twice its schedule's
/// longest gap, else no limit.
pub fn max_age(profile: &Profile, now: DateTime<Utc>) -> Option<Duration> {
    profile.max_age.or_else(|| {
        let expr = profile.schedule.as_deref()?;
        let schedule =
            Schedule::parse(expr, Zone::from_config(profile.timezone.as_deref())).ok()?;
        schedule.period(now).map(|p| p * 2)
    })
}

/// Judges `statuses` at `now`; `since` is when the daemon started.
pub fn evaluate(
    config: &Config,
    statuses: &[ProfileStatus],
    now: DateTime<Utc>,
    since: DateTime<Utc>,
) -> Health {
    let mut problems = Vec::new();
    let mut fine = Vec::new();
    for profile in config.profiles.values() {
        let empty = ProfileStatus::default();
        let status = statuses
            .iter()
            .find(|s| s.profile == profile.name)
            .unwrap_or(&empty);
        let mut ok = true;
        for kind in JobKind::ALL {
            let Some(job) = status.job(kind) else {
                continue;
            };
            if let Some(RunResult::Failed | RunResult::Interrupted) = job.last_result {
                ok = false;
                let error = job
                    .last_failure
                    .as_ref()
                    .map(|f| first_line(&f.error))
                    .unwrap_or_default();
                let verb = if job.last_result == Some(RunResult::Failed) {
                    "failed"
                } else {
                    "was interrupted"
                };
                problems.push(format!("{}: last {kind} {verb}: {error}", profile.name));
            }
        }
        let backup = status.job(JobKind::Backup);
        let last_success = backup.and_then(|j| j.last_success);
        if let Some(limit) = max_age(profile, now) {
            let reference = last_success.unwrap_or(since);
            let age = (now - reference).to_std().unwrap_or_default();
            if age > limit {
                ok = false;
                let what = match last_success {
                    Some(t) => format!("last successful backup at {}", t.to_rfc3339()),
                    None => format!(
                        "no successful backup since the daemon started at {}",
                        since.to_rfc3339()
                    ),
                };
                problems.push(format!(
                    "{}: {what}, older than max_age {}",
                    profile.name,
                    human(limit)
                ));
            }
        }
        if ok {
            fine.push(match last_success {
                Some(t) => format!("{}: ok, last backup {}", profile.name, t.to_rfc3339()),
                None => format!("{}: ok, no backup yet", profile.name),
            });
        }
    }
    let healthy = problems.is_empty();
    let mut text = String::from(if healthy { "ok\n" } else { "unhealthy\n" });
    for line in problems.iter().chain(fine.iter()) {
        text.push_str(line);
        text.push('\n');
    }
    Health { healthy, text }
}

fn first_line(s: &str) -> String {
    let line = s.lines().next().unwrap_or_default();
    if line.chars().count() > 200 {
        let cut: String = line.chars().take(200).collect();
        format!("{cut}...")
    } else {
        line.to_string()
    }
}

/// "2d", "6h", "90s".
pub fn human(d: Duration) -> String {
    let s = d.as_secs();
    if s.is_multiple_of(86400) && s > 0 {
        format!("{}d", s / 86400)
    } else if s.is_multiple_of(3600) && s > 0 {
        format!("{}h", s / 3600)
    } else if s.is_multiple_of(60) && s > 0 {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}

// Where the daemon listens, for the daemon and for `health`, which asks it.

/// The address `health` asks when nothing says where the daemon listens.
pub const DEFAULT_ADDRESS: &str = "127.0.0.1:9898";
/// Where the daemon listens when neither `--listen` nor the config's `listen:` says (the
/// image sets it to 0.0.0.0:9898); `health` reads it too.
pub const LISTEN_ENV: &str = "RESTICPILOT_LISTEN";

/// Where the daemon listens without `--listen`: the config's `listen:`, else
/// `RESTICPILOT_LISTEN` (unset or empty: nowhere).
///
/// Fails with a usage error naming the variable when it is set to something that is not an
/// address.
pub fn daemon_address(configured: Option<SocketAddr>) -> Result<Option<SocketAddr>, Error> {
    if configured.is_some() {
        return Ok(configured);
    }
    match std::env::var(LISTEN_ENV) {
        Ok(v) if v.trim().is_empty() => Ok(None),
        Ok(v) => v.trim().parse().map(Some).map_err(|_| {
            Error::Usage(format!(
                "{LISTEN_ENV}={v:?} is not an address to listen on: use IP:PORT such as \
                 0.0.0.0:9898, or unset it"
            ))
        }),
        Err(_) => Ok(None),
    }
}

/// The address to ask a daemon listening on `listen`: the loopback address of the same family
/// when it listens on all of them (0.0.0.0, ::).
pub fn probe_address(listen: SocketAddr) -> SocketAddr {
    let ip = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, listen.port())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::status::{Failure, JobStatus};
    use chrono::TimeZone;
    use std::path::Path;

    fn config(profile_extra: &str) -> Config {
        let text = format!(
            "repositories:\n  r: {{ url: /r, password_file: /p }}\nprofiles:\n  app:\n    repository: r\n    paths: [/x]\n    schedule: '0 3 * * *'\n    timezone: UTC\n{profile_extra}"
        );
        crate::config::parse(Path::new("/c.yaml"), &text, &|_| None, &|| "h".into()).unwrap()
    }

    fn at(d: u32, h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 5, d, h, 0, 0).unwrap()
    }

    fn status(result: RunResult, last_success: Option<DateTime<Utc>>) -> Vec<ProfileStatus> {
        let mut s = ProfileStatus {
            profile: "app".into(),
            ..Default::default()
        };
        s.jobs.insert(
            JobKind::Backup,
            JobStatus {
                last_result: Some(result),
                last_success,
                last_failure: (!result.is_ok()).then(|| Failure {
                    time: at(2, 3),
                    error: "dump of database app failed: disk full\nmore".into(),
                }),
                ..Default::default()
            },
        );
        vec![s]
    }

    #[test]
    fn healthy_while_recent_and_successful() {
        let c = config("");
        let h = evaluate(
            &c,
            &status(RunResult::Success, Some(at(2, 3))),
            at(2, 12),
            at(1, 0),
        );
        assert!(h.healthy, "{}", h.text);
        assert!(
            h.text
                .starts_with("ok\napp: ok, last backup 2024-05-02T03:00:00")
        );
    }

    #[test]
    fn a_failed_last_run_is_unhealthy_with_its_error() {
        let c = config("");
        let h = evaluate(
            &c,
            &status(RunResult::Failed, Some(at(1, 3))),
            at(2, 12),
            at(1, 0),
        );
        assert!(!h.healthy);
        assert_eq!(
            h.text,
            "unhealthy\napp: last backup failed: dump of database app failed: disk full\n"
        );
    }

    #[test]
    fn too_old_a_success_is_unhealthy_default_twice_the_period() {
        let c = config("");
        assert_eq!(
            max_age(&c.profiles["app"], at(1, 0)),
            Some(Duration::from_secs(2 * 86400))
        );
        let h = evaluate(
            &c,
            &status(RunResult::Success, Some(at(1, 3))),
            at(3, 2),
            at(1, 0),
        );
        assert!(h.healthy, "47h: {}", h.text);
        let h = evaluate(
            &c,
            &status(RunResult::Success, Some(at(1, 3))),
            at(3, 4),
            at(1, 0),
        );
        assert!(!h.healthy);
        assert!(h.text.contains("older than max_age 2d"), "{}", h.text);
        // An explicit max_age wins.
        let c = config("    max_age: 6h\n");
        let h = evaluate(
            &c,
            &status(RunResult::Success, Some(at(1, 3))),
            at(1, 10),
            at(1, 0),
        );
        assert!(!h.healthy, "{}", h.text);
    }

    #[test]
    fn never_ran_counts_from_the_daemon_start() {
        let c = config("");
        let h = evaluate(&c, &[], at(2, 0), at(1, 0));
        assert!(h.healthy, "{}", h.text);
        assert!(h.text.contains("app: ok, no backup yet"));
        let h = evaluate(&c, &[], at(4, 0), at(1, 0));
        assert!(!h.healthy);
        assert!(
            h.text
                .contains("no successful backup since the daemon started")
        );
    }
}

#[cfg(test)]
mod address_tests {
    use super::*;

    #[test]
    fn a_daemon_on_every_address_is_asked_on_loopback() {
        let probe = |s: &str| probe_address(s.parse().unwrap()).to_string();
        assert_eq!(probe("0.0.0.0:9898"), "127.0.0.1:9898");
        assert_eq!(probe("[::]:9999"), "[::1]:9999");
        assert_eq!(probe("10.0.0.5:9898"), "10.0.0.5:9898");
        assert_eq!(probe("127.0.0.2:80"), "127.0.0.2:80");
    }
}
