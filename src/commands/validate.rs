//! `validate`: the config was already loaded and checked by the time this runs; print what it
//! describes so the operator can see it was read as meant.

use super::{Context, Status};
use crate::config::redact_url;

pub fn run(ctx: &Context) -> Status {
    let c = &ctx.config;
    println!(
        "{}: OK ({}, {})",
        c.file.display(),
        crate::units::count(c.repositories.len() as u64, "repository", "repositories"),
        crate::units::count(c.profiles.len() as u64, "profile", "profiles")
    );
    for p in c.profiles.values() {
        let repo = &c.repositories[&p.repository];
        println!(
            "  profile {}: repository {} ({}), host {}",
            p.name,
            repo.name,
            redact_url(&repo.url),
            p.host
        );
        for db in &p.databases {
            let what = db.source.describe();
            println!("    database {}: {what}", db.name);
        }
        for path in &p.paths {
            println!("    path {}", path.display());
        }
        if let Some(m) = &p.maintenance {
            println!(
                "    maintenance: stop {} around the dumps (timeout {}s each)",
                m.stop.join(", "),
                m.timeout.as_secs()
            );
        }
        if let Some(s) = &p.schedule {
            println!("    schedule {s}");
        }
        for (key, s) in [
            ("check_schedule", &p.check_schedule),
            ("prune_schedule", &p.prune_schedule),
            ("verify_schedule", &p.verify_schedule),
        ] {
            if let Some(s) = s {
                println!("    {key} {s}");
            }
        }
    }
    Status::Success
}
