//! `prune`: maintenance of one repository, for the host (or job) that owns it. Every profile of
//! this config on the repository gets its own retention (scoped by its tag and host, as a
//! backup's retention is; plus the hosts its `retention.other_hosts` names, each host's series
//! apart), then `restic prune` reclaims the space once, then `restic check` with `--check`.
//! Other hosts sharing the repository set `prune: false` and leave this to it.

use std::time::Instant;

use super::{Context, Status};
use crate::config::Profile;
use crate::error::Error;
use crate::lock::ProfileLock;
use crate::report::JobRun;
use crate::restic::args::is_read_data_subset;
use crate::run::apply_retention;
use crate::schedule::JobKind;

/// What to maintain and how.
#[derive(Debug, Clone)]
pub struct Args {
    /// A repository name, or `None` with `profile`.
    pub repository: Option<String>,
    /// The repository of this profile.
    pub profile: Option<String>,
    pub check: bool,
    pub read_data_subset: Option<String>,
    pub dry_run: bool,
}

/// Fails with a usage error for an unknown repository or profile, a malformed subset, or a
/// repository no profile uses; with a run failure when a profile of the repository is running,
/// or restic fails.
pub fn run(ctx: &Context, args: &Args) -> Result<Status, Error> {
    let repository = match (&args.repository, &args.profile) {
        (Some(r), None) => r.clone(),
        (None, Some(p)) => ctx.profile(p)?.repository.clone(),
        _ => {
            return Err(Error::Usage(
                "name the repository to maintain, or --profile PROFILE for its repository".into(),
            ));
        }
    };
    if !ctx.config.repositories.contains_key(&repository) {
        let known: Vec<&str> = ctx.config.repositories.keys().map(String::as_str).collect();
        return Err(Error::Usage(format!(
            "no repository named {repository:?} in {} (repositories: {})",
            ctx.config.file.display(),
            known.join(", ")
        )));
    }
    if let Some(s) = &args.read_data_subset
        && !is_read_data_subset(s)
    {
        return Err(Error::Usage(format!(
            "--read-data-subset {s:?} is not n/t (1/10), a percentage (5%) or a size (500M)"
        )));
    }
    let profiles: Vec<&Profile> = ctx
        .config
        .profiles
        .values()
        .filter(|p| p.repository == repository)
        .collect();
    let Some(first) = profiles.first() else {
        return Err(Error::Usage(format!(
            "no profile of {} uses repository {repository}: prune applies their retention, so it needs one",
            ctx.config.file.display()
        )));
    };
    // No backup of these profiles may start meanwhile: prune locks the repository exclusively.
    let mut held = Vec::new();
    for p in &profiles {
        held.push(ProfileLock::acquire(&ctx.config.state_dir, &p.name)?);
    }
    let mut jobs: Vec<JobRun> = if args.dry_run {
        Vec::new()
    } else {
        profiles
            .iter()
            .map(|p| JobRun::begin(&ctx.config, p, JobKind::Prune))
            .collect()
    };
    let start = Instant::now();
    tracing::info!(
        repository = %repository,
        "maintenance of repository {repository} started: retention of {} profiles{}{}",
        profiles.len(),
        if args.dry_run { " (dry run)" } else { ", then prune" },
        if args.check { ", then check" } else { "" }
    );
    let result = (|| -> Result<usize, Error> {
        let restic = ctx.restic(first)?;
        if !args.dry_run {
            restic.remove_stale_locks()?;
        }
        let mut removed = 0;
        for p in &profiles {
            let Some(retention) = &p.retention else {
                tracing::info!(profile = %p.name, "no retention: its snapshots are all kept");
                continue;
            };
            removed += apply_retention(&restic, p, retention, args.dry_run, false)?.removed;
            for host in &retention.other_hosts {
                let groups = restic.forget(host, &p.profile_tag(), retention, args.dry_run)?;
                let gone: usize = groups
                    .iter()
                    .map(|g| g.remove.as_ref().map_or(0, Vec::len))
                    .sum();
                let kept: usize = groups
                    .iter()
                    .map(|g| g.keep.as_ref().map_or(0, Vec::len))
                    .sum();
                tracing::info!(
                    profile = %p.name,
                    "retention of host {host} (other_hosts): kept {kept} snapshots, {} {gone}",
                    if args.dry_run { "would remove" } else { "removed" }
                );
                removed += gone;
            }
        }
        if args.dry_run {
            return Ok(removed);
        }
        tracing::info!(repository = %repository, "pruning unreferenced data");
        restic.prune()?;
        if args.check {
            let subset = args
                .read_data_subset
                .as_deref()
                .or(first.check_subset.as_deref());
            tracing::info!(
                repository = %repository,
                "checking the repository{}",
                subset
                    .map(|s| format!(" (reading {s} of the data)"))
                    .unwrap_or_default()
            );
            restic.check(subset)?;
        }
        Ok(removed)
    })();
    match &result {
        Ok(removed) => {
            tracing::info!(
                repository = %repository,
                duration_s = format!("{:.1}", start.elapsed().as_secs_f64()),
                "maintenance of repository {repository} done: {removed} snapshots {}{}{}, {:.1}s",
                if args.dry_run { "would be forgotten" } else { "forgotten" },
                if args.dry_run { "" } else { ", unreferenced data pruned" },
                if args.check && !args.dry_run { ", no errors found" } else { "" },
                start.elapsed().as_secs_f64()
            );
            for job in jobs.drain(..) {
                job.succeeded(Vec::new(), None);
            }
        }
        Err(err) => {
            tracing::error!(repository = %repository, "maintenance failed: {err}");
            for job in jobs.drain(..) {
                job.failed(err);
            }
        }
    }
    drop(held);
    result.map(|_| Status::Success)
}
