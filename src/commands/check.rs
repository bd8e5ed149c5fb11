//! `check`: `restic check` of a profile's repository, reading the profile's `check_subset` of
//! the data (or `--read-data-subset`), under the profile lock and recorded in its status file.

use super::{Context, Status};
use crate::error::Error;
use crate::restic::args::is_read_data_subset;
use crate::run::check::run_profile;

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
