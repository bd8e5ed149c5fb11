//! One `restic check` of a profile's repository, as `check` and the daemon run it.

use std::time::Instant;

use super::{Context, clear_stale_locks};
use crate::config::Profile;
use crate::error::Error;
use crate::lock::ProfileLock;
use crate::report::JobRun;
use crate::schedule::JobKind;

/// One check of `profile`'s repository, reading `subset` of its data when given.
///
/// Fails when the profile is busy, or restic finds errors or cannot run.
pub fn run_profile(ctx: &Context, profile: &Profile, subset: Option<&str>) -> Result<(), Error> {
    let _lock = ProfileLock::acquire(&ctx.config.state_dir, &profile.name)?;
    let mut job = JobRun::begin(&ctx.config, profile, JobKind::Check);
    let start = Instant::now();
    tracing::info!(
        profile = %profile.name,
        "check started{}",
        subset.map(|s| format!(" (reading {s} of the data)")).unwrap_or_default()
    );
    let result = (|| -> Result<(), Error> {
        let restic = ctx.restic(profile)?;
        clear_stale_locks(&restic, profile, &mut job);
        restic.check(subset)?;
        Ok(())
    })();
    match &result {
        Ok(()) => {
            tracing::info!(
                profile = %profile.name,
                duration_s = format!("{:.1}", start.elapsed().as_secs_f64()),
                "check done: repository {} has no errors{}, {:.1}s",
                profile.repository,
                subset.map(|s| format!(" (read {s} of the data)")).unwrap_or_default(),
                start.elapsed().as_secs_f64()
            );
            job.succeeded(Vec::new(), None);
        }
        Err(err) => {
            tracing::error!(profile = %profile.name, "check failed: {err}");
            job.failed(err);
        }
    }
    result
}
