//! `check`: `restic check` of a profile's repository, reading the profile's `check_subset` of
//! the data (or `--read-data-subset`), under the profile lock and recorded in its status file.

use std::time::Instant;

use super::{Context, Status};
use crate::config::Profile;
use crate::error::Error;
use crate::lock::ProfileLock;
use crate::report::JobRun;
use crate::restic::args::is_read_data_subset;
use crate::run::clear_stale_locks;
use crate::schedule::JobKind;

/// Checks the repository of profile `name`; `subset` overrides the profile's `check_subset`.
///
/// Fails when the profile is unknown, the subset is malformed, the profile is busy, or restic
/// finds errors or cannot run.
pub fn run(ctx: &Context, name: &str, subset: Option<&str>) -> Result<Status, Error> {
    let profile = ctx.profile(name)?;
    if let Some(s) = subset
        && !is_read_data_subset(s)
    {
        return Err(Error::Usage(format!(
            "--read-data-subset {s:?} is not n/t (1/10), a percentage (5%) or a size (500M)"
        )));
    }
    run_profile(ctx, profile, subset.or(profile.check_subset.as_deref()))?;
    Ok(Status::Success)
}

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
                duration_s = crate::report::seconds(start.elapsed()),
                "check done: repository {} has no errors{}, {:.1}s",
                profile.repository,
                subset.map(|s| format!(" (read {s} of the data)")).unwrap_or_default(),
                start.elapsed().as_secs_f64()
            );
            job.succeeded(Vec::new(), None);
        }
        // The error is printed by whoever asked: the command's end, or the daemon's log.
        Err(err) => job.failed(err),
    }
    result
}
