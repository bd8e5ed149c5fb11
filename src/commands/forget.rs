//! `forget`: a profile's retention alone, scoped to its tag and host.

use super::{Context, Status};
use crate::error::Error;
use crate::lock::ProfileLock;
use crate::restic::json::ForgetGroup;
use crate::run::apply_retention;
use crate::units::count;

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
    if dry_run {
        let groups = restic.forget(&profile.host, &profile.profile_tag(), retention, true)?;
        print!("{}", render_dry_run(&profile.name, &groups));
        return Ok(Status::Success);
    }
    apply_retention(
        &restic,
        profile,
        retention,
        dry_run,
        prune || retention.prune,
    )?;
    Ok(Status::Success)
}

/// The answer of `forget --dry-run`: each snapshot kept (with the rules that keep it) or
/// removed, newest first, then the counts.
fn render_dry_run(profile: &str, groups: &[ForgetGroup]) -> String {
    let mut rows: Vec<(String, &str, String, String)> = Vec::new();
    for g in groups {
        for s in g.keep.iter().flatten() {
            let why = g.reasons_for(s).join(", ");
            rows.push((s.time.clone(), "keep", s.short().to_string(), why));
        }
        for s in g.remove.iter().flatten() {
            rows.push((
                s.time.clone(),
                "remove",
                s.short().to_string(),
                String::new(),
            ));
        }
    }
    rows.sort_by(|a, b| b.0.cmp(&a.0));
    let kept = rows.iter().filter(|r| r.1 == "keep").count();
    let removed = rows.len() - kept;
    let mut out = format!("retention of profile {profile} (dry run: nothing is removed)\n");
    for (time, action, id, why) in &rows {
        let time = crate::restore::show_time(time);
        let line = format!("  {action:<7} {id}  {time}  {why}");
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out.push_str(&format!(
        "would keep {}, remove {}\n",
        count(kept as u64, "snapshot", "snapshots"),
        count(removed as u64, "snapshot", "snapshots")
    ));
    out
}
