//! `snapshots`: one profile's snapshots (its tag on its host), or every profile's.

use serde::Serialize;

use super::{Context, Status};
use crate::error::Error;

/// `snapshots --json` (version 1; see the README's "JSON outputs").
#[derive(Serialize)]
struct Listing<'a> {
    snapshots: Vec<Entry<'a>>,
}

#[derive(Serialize)]
struct Entry<'a> {
    profile: &'a str,
    id: &'a str,
    short_id: &'a str,
    /// RFC 3339, as restic records it.
    time: &'a str,
    host: &'a str,
    tags: &'a [String],
    paths: &'a [String],
    /// Tagged `incomplete`: its run finished with warnings that mean it may lack data.
    incomplete: bool,
}

/// Fails when the profile is unknown or restic fails.
pub fn run(ctx: &Context, profile: Option<&str>, json: bool) -> Result<Status, Error> {
    let profiles = match profile {
        Some(name) => vec![ctx.profile(name)?],
        None => ctx.config.profiles.values().collect(),
    };
    let mut all = Vec::new();
    for p in profiles {
        let restic = ctx.restic(p)?;
        let list = restic.snapshots(&p.host, &p.profile_tag())?;
        all.push((p.name.as_str(), list));
    }
    if json {
        let snapshots: Vec<Entry> = all
            .iter()
            .flat_map(|(profile, list)| {
                list.iter().map(move |s| Entry {
                    profile,
                    id: &s.id,
                    short_id: s.short(),
                    time: &s.time,
                    host: &s.hostname,
                    tags: &s.tags,
                    paths: &s.paths,
                    incomplete: s.is_incomplete(),
                })
            })
            .collect();
        println!(
            "{}",
            crate::report::Versioned::new(&Listing { snapshots }).to_pretty()
        );
        return Ok(Status::Success);
    }
    let mut any_incomplete = false;
    for (profile, list) in &all {
        println!(
            "profile {profile}: {}",
            crate::units::count(list.len() as u64, "snapshot", "snapshots")
        );
        for s in list {
            let time = crate::restore::show_time(&s.time);
            let incomplete = s.is_incomplete();
            any_incomplete |= incomplete;
            println!(
                "  {}  {}  {}  {}{}",
                s.short(),
                time,
                s.hostname,
                s.tags.join(","),
                if incomplete { "  INCOMPLETE" } else { "" }
            );
        }
    }
    if any_incomplete {
        println!(
            "INCOMPLETE: the run finished with warnings (a configured path missing, files restic could not read, or a database with no tables; `status` shows them). Retention keeps these apart from complete snapshots."
        );
    }
    Ok(Status::Success)
}
