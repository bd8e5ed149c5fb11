//! `forget`: a profile's retention alone, scoped to its tag and host.

use super::{Context, Status};
use crate::error::Error;
use crate::lock::ProfileLock;
use crate::run::apply_retention;

/// Fails when the profile is unknown or has no retention, is busy, or restic fails.
pub fn run(ctx: &Context, name: &str, prune: bool, dry_run: bool) -> Result<Status, Error> {
    let profile = ctx.profile(name)?;
    let retention = profile.retention.as_ref().ok_or_else(|| {
        Error::Usage(format!(
            "profile {name} has no retention: add `retention:` with keep_* rules to its config"
        ))
    })?;
    let _lock = ProfileLock::acquire(&ctx.config.state_dir, &profile.name)?;
    let restic = ctx.restic(profile)?;
    apply_retention(
        &restic,
        profile,
        retention,
        dry_run,
        prune || retention.prune,
    )?;
    Ok(Status::Success)
}
