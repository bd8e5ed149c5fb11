//! The restore drill of a profile (`restore::drill`), as `verify` and the daemon run it.

use std::path::Path;

use super::{Context, Status};
use crate::config::Profile;
use crate::error::Error;
use crate::lock::ProfileLock;
use crate::report::JobRun;
use crate::restore::{self, drill};
use crate::schedule::JobKind;

/// The drill of `profile`'s latest snapshot, as the daemon runs it: the report logged.
///
/// Fails when the profile is busy, restic fails or the drill finds a problem.
pub fn run_scheduled(ctx: &Context, profile: &Profile) -> Result<(), Error> {
    recorded(ctx, profile, |ctx| {
        let report = drill_profile(ctx, profile, "latest", None)?;
        for line in drill::render(&report).lines() {
            tracing::info!(profile = %profile.name, "{line}");
        }
        outcome(&report)
    })
    .map(|_| ())
}

/// `drill` under the profile's lock (so it never overlaps the profile's backup or another
/// drill), recorded in its status file (and so the metrics) as a `verify` job: the daemon's
/// scheduled drill and a drill run by hand alike.
///
/// Fails when the profile is busy or the drill fails.
pub fn recorded(
    ctx: &Context,
    profile: &Profile,
    drill: impl FnOnce(&Context) -> Result<Status, Error>,
) -> Result<Status, Error> {
    let _lock = ProfileLock::acquire(&ctx.config.state_dir, &profile.name)?;
    let job = JobRun::begin(&ctx.config, profile, JobKind::Verify);
    tracing::info!(profile = %profile.name, "restore drill started");
    let result = drill(ctx);
    match &result {
        Ok(Status::Success) => job.succeeded(Vec::new(), None),
        Ok(Status::Warnings) => job.succeeded(
            vec!["the restore drill could not check everything (see its report)".into()],
            None,
        ),
        // The error is printed by whoever asked: the command's end, or the daemon's log.
        Err(err) => job.failed(err),
    }
    result
}

/// The drill of `snapshot` of `profile`, in `scratch` (default: under the state directory).
///
/// Fails when restic fails, or the snapshot is not resticpilot's.
pub fn drill_profile(
    ctx: &Context,
    profile: &Profile,
    snapshot: &str,
    scratch: Option<&Path>,
) -> Result<drill::Report, Error> {
    let restic = ctx.restic(profile)?;
    let snapshot = restore::select(&restic, profile, snapshot)?;
    let default_scratch = ctx.config.state_dir.join("scratch");
    let dir = drill::space(scratch.unwrap_or(&default_scratch), &ctx.config.state_dir)?;
    // One incremental SQLite database in the profile: its chain comes with the manifest, into
    // the drill's space (one restic call fewer, as for `restore`).
    let mut chains = profile
        .databases
        .iter()
        .filter_map(|d| d.source.restore_prefetch(Some(dir.path()), true));
    let prefetch = match (chains.next(), chains.next()) {
        (Some(one), None) => Some(one),
        _ => None,
    };
    let contents = restore::open(&restic, snapshot, prefetch.as_ref())?;
    drill::run(&restic, profile, &contents, dir)
}

/// How a drill ended: success, warnings (something not checked), or an error naming what
/// failed.
///
/// Fails when anything failed.
pub fn outcome(report: &drill::Report) -> Result<Status, Error> {
    match report.result {
        drill::Outcome::Pass => Ok(Status::Success),
        drill::Outcome::Skipped => Ok(Status::Warnings),
        drill::Outcome::Fail => {
            let failed: Vec<&str> = report
                .databases
                .iter()
                .filter(|d| d.result == drill::Outcome::Fail)
                .map(|d| d.name.as_str())
                .chain((report.files.result == drill::Outcome::Fail).then_some("(files)"))
                .collect();
            Err(Error::Failed(format!(
                "restore drill of profile {} failed: {}",
                report.profile,
                failed.join(", ")
            )))
        }
    }
}
