//! `verify`: the restore drill of one profile (see `restore::drill`). Prints a table, or JSON
//! with `--json`; exits 0 only when every item passed, 3 when something could not be checked
//! (and nothing failed), 1 when anything failed.

use std::path::Path;

use super::{Context, Status};
use crate::error::Error;
use crate::restore::{self, drill};

/// Fails when the profile is unknown, restic fails, the snapshot is not resticpilot's, or the
/// drill finds a problem (after printing its report).
pub fn run(
    ctx: &Context,
    profile: &str,
    snapshot: &str,
    json: bool,
    scratch: Option<&Path>,
) -> Result<Status, Error> {
    let profile = ctx.profile(profile)?;
    let restic = ctx.restic(profile)?;
    let snapshot = restore::select(&restic, profile, snapshot)?;
    let contents = restore::open(&restic, snapshot)?;
    let default_scratch = ctx.config.state_dir.join("scratch");
    let scratch = scratch.unwrap_or(&default_scratch);
    let report = drill::run(&restic, profile, &contents, scratch)?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).expect("report serialises")
        );
    } else {
        print!("{}", drill::render(&report));
    }
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
                profile.name,
                failed.join(", ")
            )))
        }
    }
}
