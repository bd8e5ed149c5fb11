//! `backup`: runs the named profiles (all when none is named) through `run`, or prints their
//! plans (`--dry-run`), and says how they went.

use super::{Context, Status};
use crate::config::Profile;
use crate::error::Error;
use crate::run::{Plan, log_report, run_profile};
use crate::signals;

/// Runs `names` (all profiles when empty), each to its end; reports how they went.
///
/// Fails when any profile failed (after running the others).
pub fn run(ctx: &Context, names: &[String], dry_run: bool) -> Result<Status, Error> {
    let profiles: Vec<&Profile> = if names.is_empty() {
        ctx.config.profiles.values().collect()
    } else {
        names
            .iter()
            .map(|n| ctx.profile(n))
            .collect::<Result<_, _>>()?
    };
    if dry_run {
        for p in &profiles {
            print!("{}", Plan::of(&ctx.config, p).render());
        }
        return Ok(Status::Success);
    }
    let mut failed = Vec::new();
    let mut warnings = false;
    for profile in &profiles {
        if signals::requested() {
            tracing::warn!(profile = %profile.name, "not started: resticpilot is shutting down");
            failed.push((
                profile.name.clone(),
                signals::Interrupted(format!("backup of {} not started", profile.name)).into(),
            ));
            continue;
        }
        match run_profile(ctx, profile) {
            Ok(report) => {
                log_report(profile, &report);
                warnings |= !report.warnings.is_empty();
            }
            Err(err) => {
                tracing::error!(profile = %profile.name, "backup failed: {err}");
                failed.push((profile.name.clone(), err));
            }
        }
    }
    match failed.len() {
        0 if warnings => Ok(Status::Warnings),
        0 => Ok(Status::Success),
        1 if profiles.len() == 1 => Err(failed.remove(0).1),
        _ => {
            let names: Vec<String> = failed.iter().map(|(n, _)| n.clone()).collect();
            Err(Error::Failed(format!(
                "{} of {} profiles failed: {}",
                failed.len(),
                profiles.len(),
                names.join(", ")
            )))
        }
    }
}
