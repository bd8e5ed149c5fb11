//! `verify`: the restore drill of one profile (see `restore::drill`). Prints a table, or JSON
//! with `--json`; exits 0 only when every item passed, 3 when something could not be checked
//! (and nothing failed), 1 when anything failed. The daemon runs the same drill on
//! `verify_schedule` through `run::verify::run_scheduled`, recording it in the profile's status.

use std::path::Path;

use super::{Context, Status};
use crate::error::Error;
use crate::restore::drill;
use crate::run::verify::{drill_profile, outcome, recorded};

/// Fails when the profile is unknown or busy, restic fails, the snapshot is not resticpilot's,
/// or the drill finds a problem (after printing its report). Like the daemon's scheduled drill
/// it holds the profile's lock and is recorded in the status file and the metrics.
pub fn run(
    ctx: &Context,
    profile: &str,
    snapshot: &str,
    json: bool,
    scratch: Option<&Path>,
) -> Result<Status, Error> {
    let profile = ctx.profile(profile)?;
    recorded(ctx, profile, |ctx| {
        let report = drill_profile(ctx, profile, snapshot, scratch)?;
        if json {
            println!("{}", crate::report::Versioned::new(&report).to_pretty());
        } else {
            print!("{}", drill::render(&report));
        }
        outcome(&report)
    })
}
