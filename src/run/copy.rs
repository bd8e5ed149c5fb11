//! `copy_to`: after a backup, the profile's snapshots go into each second repository with
//! `restic copy`, and the profile's retention applies there too, scoped by host and tags as on
//! the first. A repository created here takes the first one's chunker parameters, so copied
//! data deduplicates. One call site (the end of a backup run) and nothing else knows copies.
//!
//! restic copy skips snapshots the destination already has, so each run copies every snapshot
//! of the profile not yet copied: a copy that failed is retried by the next run.

use chrono::Utc;

use super::Context;
use super::apply_retention;
use crate::config::Profile;
use crate::error::Error;
use crate::report::status::StatusStore;

/// Copies `profile`'s snapshots into each of its `copy_to` repositories, then applies its
/// retention there; records each repository's outcome in the status file.
///
/// Fails, after trying every repository, when any copy failed: the error names the primary
/// snapshot `snapshot_id` as safe and each copy that is not.
pub fn run(ctx: &Context, profile: &Profile, snapshot_id: &str) -> Result<(), Error> {
    if profile.copy_to.is_empty() {
        return Ok(());
    }
    let source = ctx.config.repositories[&profile.repository].clone();
    let store = StatusStore::new(&ctx.config.state_dir);
    let mut failed = Vec::new();
    for target in &profile.copy_to {
        crate::signals::check(&format!("the copy to {target}"))?;
        tracing::info!(profile = %profile.name, repository = %target, "copying snapshots to {target}");
        let outcome = copy_one(ctx, profile, target, source.clone());
        let now = Utc::now();
        let recorded = store.update(&profile.name, |s| {
            let c = s.copies.entry(target.clone()).or_default();
            c.last_attempt = Some(now);
            c.last_ok = outcome.is_ok();
            match &outcome {
                Ok(()) => {
                    c.last_success = Some(now);
                    c.last_error = None;
                }
                Err(e) => {
                    c.failures += 1;
                    c.last_error = Some(e.to_string());
                }
            }
        });
        if let Err(e) = recorded {
            tracing::warn!(profile = %profile.name, "cannot record the copy to {target}: {e}");
        }
        match outcome {
            Ok(()) => {
                tracing::info!(profile = %profile.name, repository = %target, "copied to {target}")
            }
            Err(e) => {
                tracing::error!(profile = %profile.name, repository = %target, "copy to {target} failed: {e}");
                failed.push(format!("copy to repository {target} failed: {e}"));
            }
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(Error::Failed(format!(
            "snapshot {snapshot_id} is safe in repository {}, but the copy is not: {}; the next run copies every snapshot not yet copied",
            profile.repository,
            failed.join("; ")
        )))
    }
}

/// Opens (or creates) `target`, copies into it, applies the retention there.
fn copy_one(
    ctx: &Context,
    profile: &Profile,
    target: &str,
    source: crate::config::Repository,
) -> Result<(), Error> {
    let dest = ctx.restic_in(profile, target)?.with_copy_source(source);
    dest.ensure_repository()?;
    dest.copy_profile(&profile.host, &profile.profile_tag())?;
    if let Some(retention) = &profile.retention {
        apply_retention(&dest, profile, retention, false, retention.prune)?;
    }
    Ok(())
}
