//! `status`: the last runs of every profile, from the status files (manual and scheduled runs
//! alike): human-readable, or `--json` (the status files' content, one entry per profile, in
//! the envelope of the README's "JSON outputs").

use chrono::{DateTime, Local, Utc};

use super::{Context, Status};
use crate::config::Profile;
use crate::error::Error;
use crate::report::{JobStatus, ProfileStatus, StatusStore};
use crate::schedule::{JobKind, Schedule, Zone};
use crate::units::human_bytes;

/// Prints the status of every profile (or of `profile`).
///
/// Fails when the profile is unknown.
pub fn run(ctx: &Context, profile: Option<&str>, json: bool) -> Result<Status, Error> {
    let profiles: Vec<&Profile> = match profile {
        Some(name) => vec![ctx.profile(name)?],
        None => ctx.config.profiles.values().collect(),
    };
    let store = StatusStore::new(&ctx.config.state_dir);
    let statuses = store.load_all(profiles.iter().map(|p| p.name.as_str()));
    if json {
        #[derive(serde::Serialize)]
        struct Listing<'a> {
            profiles: &'a [ProfileStatus],
        }
        let listing = Listing {
            profiles: &statuses,
        };
        println!("{}", crate::report::Versioned::new(&listing).to_pretty());
        return Ok(Status::Success);
    }
    let now = Utc::now();
    for (p, s) in profiles.iter().zip(&statuses) {
        print_profile(p, s, now);
    }
    Ok(Status::Success)
}

fn time(t: &DateTime<Utc>) -> String {
    t.with_timezone(&Local)
        .format("%Y-%m-%d %H:%M:%S %:z")
        .to_string()
}

fn print_profile(p: &Profile, s: &ProfileStatus, now: DateTime<Utc>) {
    println!(
        "profile {} (host {}, repository {})",
        p.name, p.host, p.repository
    );
    for kind in JobKind::ALL {
        let expr = match kind {
            JobKind::Backup => &p.schedule,
            JobKind::Check => &p.check_schedule,
            JobKind::Prune => &p.prune_schedule,
            JobKind::Verify => &p.verify_schedule,
        };
        let job = s.job(kind);
        if job.is_none() && expr.is_none() && kind != JobKind::Backup {
            continue;
        }
        let label = format!("  {:<7}", kind.name());
        match job {
            None => println!("{label} never run"),
            Some(j) => print_job(&label, j),
        }
        if let Some(expr) = expr {
            let zone = Zone::from_config(p.timezone.as_deref());
            let next = Schedule::parse(expr, zone)
                .ok()
                .and_then(|s| s.next_after(now))
                .map(|t| time(&t))
                .unwrap_or_else(|| "never".into());
            println!("          schedule \"{expr}\" ({zone}), next {next}");
        }
    }
    if s.unlock_pending {
        println!("  a run was interrupted: stale restic locks are removed before the next run");
    }
}

fn print_job(label: &str, j: &JobStatus) {
    let pad = " ".repeat(label.len());
    if let Some(r) = &j.running {
        println!("{label} RUNNING since {} (pid {})", time(&r.started), r.pid);
    }
    match (j.last_result, j.last_end) {
        (Some(result), Some(end)) => println!(
            "{}{} {} at {}, took {:.1}s",
            if j.running.is_some() { &pad } else { label },
            if j.running.is_some() { " last run" } else { "" },
            result.name(),
            time(&end),
            j.last_duration_seconds.unwrap_or_default()
        ),
        (Some(result), None) => println!("{label} {}", result.name()),
        _ if j.running.is_none() => println!("{label} never finished a run"),
        _ => {}
    }
    for w in &j.last_warnings {
        println!("{pad}   warning: {w}");
    }
    if let Some(t) = &j.last_success {
        print!("{pad}   last success {}", time(t));
        if let Some(b) = &j.backup {
            print!(
                ": snapshot {}, {}, {} added",
                b.snapshot.short_id,
                crate::units::count(b.files, "file", "files"),
                human_bytes(b.bytes_added)
            );
            if let Some(n) = b.snapshot_count {
                print!(", {}", crate::units::count(n, "snapshot", "snapshots"));
            }
            if b.incomplete {
                print!(" (snapshot INCOMPLETE: tagged `incomplete`, see the warnings)");
            }
        }
        println!();
        if let Some(b) = &j.backup {
            if !b.phases.is_empty() {
                // In the order they run; any other phase after them.
                let order = ["dumps", "snapshot", "retention"];
                let mut named: Vec<(&String, &f64)> = b.phases.iter().collect();
                named
                    .sort_by_key(|(k, _)| order.iter().position(|o| o == k).unwrap_or(order.len()));
                let phases: Vec<String> =
                    named.iter().map(|(k, v)| format!("{k} {v:.1}s")).collect();
                println!("{pad}   phases: {}", phases.join(", "));
            }
            for db in &b.databases {
                println!(
                    "{pad}   database {} ({}): {} in {:.1}s",
                    db.name,
                    db.kind,
                    human_bytes(db.bytes),
                    db.duration_seconds
                );
            }
        }
    }
    if let Some(f) = &j.last_failure {
        println!("{pad}   last failure {}: {}", time(&f.time), f.error);
    }
    println!(
        "{pad}   runs {}, failures {}, skipped {}",
        j.runs, j.failures, j.skipped
    );
}
