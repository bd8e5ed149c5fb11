//! `validate`: the config was already loaded and checked by the time this runs; print what it
//! describes so the operator can see it was read as meant.

use super::{Context, Status};
use crate::config::redact_url;
use crate::error::Error;

/// Prints the plan, after checking that the files the config reads at run time can be read.
///
/// Fails with a config error (exit 2) naming each file that cannot.
pub fn run(ctx: &Context, resolved: bool) -> Result<Status, Error> {
    let c = &ctx.config;
    c.check_files()?;
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
        if !p.copy_to.is_empty() {
            println!("    copy_to {}", p.copy_to.join(", "));
        }
        if let Some(n) = &p.notify.ntfy {
            println!("    ntfy {}/{}", n.server, n.topic);
        }
        if let Some(e) = &p.notify.email {
            println!(
                "    email via {}:{} to {}",
                e.smtp_host,
                e.smtp_port,
                e.to.join(", ")
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
    if resolved {
        for (name, yaml) in &c.resolved_yaml {
            println!("\n# profile {name}, resolved (extends and defaults applied)\n{name}:");
            for line in yaml.lines() {
                println!("  {line}");
            }
        }
    }
    Ok(Status::Success)
}
