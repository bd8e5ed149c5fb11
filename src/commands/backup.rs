//! `backup`: the two-phase run of one profile (DESIGN.md, "The run of one profile").
//!
//! lock -> repository check -> before hooks -> staging -> dumps (each verified; any failure
//! stops here, before restic) -> one restic snapshot -> retention -> after hooks -> staging
//! cleared. On failure: staging cleared (unless kept for debugging), on_failure hooks run.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::{Context, Status};
use crate::config::Profile;
use crate::dump::{self, DumpReport, human_bytes};
use crate::error::Error;
use crate::hooks::{self, HookKind};
use crate::lock::ProfileLock;
use crate::maintenance;
use crate::report::{self, JobRun};
use crate::restic::args::INCOMPLETE_TAG;
use crate::restic::{BackupArgs, BackupSummary, Restic, args};
use crate::schedule::JobKind;
use crate::signals;
use crate::staging::Staging;

/// The manifest written into staging next to the dumps: what each file is, for restores.
pub const MANIFEST: &str = "resticpilot-manifest.json";

/// What a successful run did.
#[derive(Debug)]
pub struct RunReport {
    pub summary: BackupSummary,
    pub dumps: Vec<DumpReport>,
    pub warnings: Vec<String>,
    pub forgotten: usize,
    pub duration: Duration,
    /// Time spent in each phase: dumps, snapshot, retention.
    pub phases: Vec<(&'static str, Duration)>,
    /// The profile's snapshots on its host after the run (`None` when they could not be listed).
    pub snapshot_count: Option<u64>,
    /// The snapshot is tagged `incomplete` (see [`INCOMPLETE_TAG`]).
    pub incomplete: bool,
}

#[derive(Serialize)]
struct Manifest<'a> {
    resticpilot: &'static str,
    profile: &'a str,
    host: &'a str,
    created: String,
    staging_dir: &'a std::path::Path,
    databases: &'a [DumpReport],
}

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
            print_plan(ctx, p);
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

/// One run of one profile, with its failure handling.
///
/// Fails when the profile is busy, a hook or dump fails, or restic fails.
pub fn run_profile(ctx: &Context, profile: &Profile) -> Result<RunReport, Error> {
    let _lock = ProfileLock::acquire(&ctx.config.state_dir, &profile.name)?;
    let mut job = JobRun::begin(&ctx.config, profile, JobKind::Backup);
    let result = run_locked(ctx, profile, &mut job);
    match &result {
        Ok(report) => job.succeeded(report.warnings.clone(), Some(stats(report))),
        Err(err) => job.failed(err),
    }
    result
}

/// The status file's record of a successful run.
fn stats(r: &RunReport) -> report::BackupStats {
    report::BackupStats {
        snapshot_id: r.summary.snapshot_id.clone(),
        files: r.summary.total_files_processed,
        files_unmodified: r.summary.files_unmodified,
        bytes_added: r.summary.data_added,
        bytes_processed: r.summary.total_bytes_processed,
        snapshot_count: r.snapshot_count,
        incomplete: r.incomplete,
        phases: r
            .phases
            .iter()
            .map(|(name, d)| (name.to_string(), report::seconds(*d)))
            .collect(),
        databases: r
            .dumps
            .iter()
            .map(|d| report::status::DatabaseStats {
                name: d.name.clone(),
                kind: d.kind.to_string(),
                bytes: d.bytes,
                duration_seconds: report::seconds(d.duration),
                writers_held_seconds: d.writers_held.map(report::seconds),
                chain_length: d.incremental.as_ref().map(|c| 1 + c.deltas.len() as u64),
            })
            .collect(),
    }
}

fn run_locked(ctx: &Context, profile: &Profile, job: &mut JobRun) -> Result<RunReport, Error> {
    let start = Instant::now();
    tracing::info!(profile = %profile.name, "backup started");
    let mut staging = None;
    let result = attempt(ctx, profile, &mut staging, start, job);
    match result {
        Ok(report) => {
            if let Some(s) = &staging
                && let Err(e) = s.empty()
            {
                tracing::warn!(profile = %profile.name, "could not clear staging: {e}");
            }
            Ok(report)
        }
        Err(err) => {
            if let Some(s) = &staging {
                if profile.keep_staging_on_failure {
                    tracing::warn!(profile = %profile.name, "staging kept for inspection: {}", s.path().display());
                } else if let Err(e) = s.empty() {
                    tracing::warn!(profile = %profile.name, "could not clear staging: {e}");
                }
            }
            let message = err.to_string();
            if let Err(hook_err) = hooks::run(
                HookKind::OnFailure,
                &profile.hooks.on_failure,
                &profile.name,
                Some(&message),
            ) {
                tracing::error!(profile = %profile.name, "{hook_err}");
            }
            Err(err)
        }
    }
}

fn attempt(
    ctx: &Context,
    profile: &Profile,
    staging_slot: &mut Option<Staging>,
    start: Instant,
    job: &mut JobRun,
) -> Result<RunReport, Error> {
    let restic = ctx.restic(profile)?;
    restic.ensure_repository()?;
    let option_warnings = restic.check_options()?;
    clear_stale_locks(&restic, profile, job);
    signals::check("the before hooks")?;
    hooks::run(HookKind::Before, &profile.hooks.before, &profile.name, None)?;

    let staging = staging_slot.insert(Staging::prepare(
        &profile.staging_dir,
        &ctx.config.state_dir,
    )?);
    let mut phases = Vec::new();
    let dumps_started = Instant::now();
    // Containers stopped for the dumps; an early return below drops the window, which starts
    // them again.
    let window = match &profile.maintenance {
        Some(m) => Some(maintenance::Window::open(&profile.name, m)?),
        None => None,
    };
    let mut dumps = Vec::new();
    let mut warnings = option_warnings;
    for w in &warnings {
        tracing::warn!(profile = %profile.name, "{w}");
    }
    for source in &profile.databases {
        signals::check(&format!("the dump of {}", source.name))?;
        tracing::info!(profile = %profile.name, database = %source.name, "dumping {} database", source.type_name());
        let watch = report::progress::watch_file(
            format!("dumping {}", source.name),
            dump::partial_path(source, staging.path()),
        );
        let report = dump::dump(source, staging.path());
        drop(watch);
        let report = report?;
        tracing::info!(
            profile = %profile.name,
            database = %report.name,
            "dumped {} ({}) in {:.1}s, verified{}",
            report.file,
            human_bytes(report.bytes),
            report.duration.as_secs_f64(),
            dump_notes(&report)
        );
        warnings.extend(report.warnings.iter().cloned());
        dumps.push(report);
    }
    // The dumps are whole: a container that won't start again fails the run, after the
    // snapshot is taken.
    let restart_failed = window.and_then(|w| w.close().err());
    if let Some(e) = &restart_failed {
        tracing::error!(profile = %profile.name, "{e}");
    }
    write_manifest(profile, staging, &dumps)?;
    phases.push(("dumps", dumps_started.elapsed()));

    // Anything that means the snapshot may lack data makes it `incomplete`: retention keeps
    // such snapshots in a group of their own, so they never push complete ones out.
    let mut gaps: Vec<String> = dumps.iter().flat_map(|d| d.gaps.clone()).collect();
    for w in &gaps {
        tracing::warn!(profile = %profile.name, "{w}");
    }
    let mut sources: Vec<PathBuf> = vec![staging.path().to_path_buf()];
    // SQLite `method: incremental`: the chains (bases and deltas) live beside staging.
    sources.extend(dump::incremental::roots(&profile.databases));
    for path in &profile.paths {
        if path.symlink_metadata().is_ok() {
            sources.push(path.clone());
        } else {
            let w = format!(
                "path {} does not exist; backed up without it",
                path.display()
            );
            tracing::warn!(profile = %profile.name, "{w}");
            gaps.push(w);
        }
    }
    let mut incomplete = !gaps.is_empty();
    warnings.append(&mut gaps);
    let mut tags = profile.all_tags();
    if incomplete {
        tags.push(INCOMPLETE_TAG.to_string());
    }
    let request = BackupArgs {
        host: profile.host.clone(),
        tags,
        excludes: profile.exclude.clone(),
        exclude_files: profile.exclude_file.clone(),
        exclude_caches: profile.exclude_caches,
        exclude_if_present: profile.exclude_if_present.clone(),
        sources,
    };
    signals::check("restic backup")?;
    let snapshot_started = Instant::now();
    let mut progress = progress_logger(&profile.name);
    let outcome = match restic.backup(&request, &mut progress) {
        Ok(outcome) => outcome,
        Err(e) if crate::space::is_full_text(&e.to_string()) => {
            let repo = &ctx.config.repositories[&profile.repository];
            let env = |k: &str| {
                repo.env
                    .get(k)
                    .map(|v| v.expose().to_string())
                    .or_else(|| std::env::var(k).ok())
            };
            let adding = dumps.iter().map(|d| d.bytes).sum::<u64>()
                + profile.paths.iter().map(|p| tree_size(p)).sum::<u64>();
            return Err(Error::Failed(crate::space::restic_backup_full(
                &e.to_string(),
                &repo.name,
                &repo.url,
                &env,
                adding,
            )));
        }
        Err(e) => return Err(e.into()),
    };
    drop(progress);
    phases.push(("snapshot", snapshot_started.elapsed()));
    for file in &outcome.unreadable {
        warnings.push(format!("restic could not read {file}"));
    }
    let mut summary = outcome.summary;
    // Set when the snapshot lacks data but could not be tagged so: retention then waits.
    let mut untagged = None;
    if !outcome.unreadable.is_empty() {
        tracing::warn!(
            profile = %profile.name,
            "snapshot {} is missing files restic could not read: {}",
            summary.snapshot_id,
            outcome.unreadable.join("; ")
        );
        // Known only now that restic ran: tag it after the fact (restic rewrites the snapshot
        // under a new id).
        if !incomplete {
            match restic.tag_add(
                &summary.snapshot_id,
                INCOMPLETE_TAG,
                &profile.host,
                &profile.profile_tag(),
            ) {
                Ok(id) => {
                    let len = summary.snapshot_id.len().max(8).min(id.len());
                    tracing::info!(
                        profile = %profile.name,
                        "snapshot {} tagged `{INCOMPLETE_TAG}` (now {})",
                        summary.snapshot_id,
                        &id[..len]
                    );
                    summary.snapshot_id = id[..len].to_string();
                    incomplete = true;
                }
                Err(e) => untagged = Some(e),
            }
        }
    }

    let retained = match &profile.retention {
        Some(_) if untagged.is_some() => {
            let w = format!(
                "retention skipped: snapshot {} lacks files but could not be tagged `{INCOMPLETE_TAG}` ({}), so retention could count it against complete snapshots",
                summary.snapshot_id,
                untagged.as_ref().expect("checked")
            );
            tracing::warn!(profile = %profile.name, "{w}");
            warnings.push(w);
            None
        }
        Some(_) if signals::requested() => {
            // The snapshot exists; retention can wait for the next run.
            let w = "retention skipped: resticpilot is shutting down".to_string();
            tracing::warn!(profile = %profile.name, "{w}");
            warnings.push(w);
            None
        }
        Some(retention) => {
            let retention_started = Instant::now();
            let r = apply_retention(&restic, profile, retention, false, retention.prune)?;
            phases.push(("retention", retention_started.elapsed()));
            Some(r)
        }
        None => None,
    };
    let forgotten = retained.map_or(0, |r| r.removed);
    // forget has just listed every snapshot of the profile; without it, ask restic.
    let snapshot_count = match retained {
        Some(r) => Some(r.kept as u64),
        None => match restic.snapshots(&profile.host, &profile.profile_tag()) {
            Ok(list) => Some(list.len() as u64),
            Err(e) => {
                tracing::warn!(profile = %profile.name, "could not count the snapshots: {e}");
                None
            }
        },
    };
    hooks::run(HookKind::After, &profile.hooks.after, &profile.name, None).or_else(|e| {
        // The snapshot exists; a failing after-hook is worth a warning, not a failed backup.
        tracing::warn!(profile = %profile.name, "{e}");
        warnings.push(e.to_string());
        Ok::<(), Error>(())
    })?;
    if let Some(e) = restart_failed {
        return Err(Error::Failed(format!(
            "snapshot {} was taken, but the maintenance window failed: {e}",
            summary.snapshot_id
        )));
    }
    // The primary snapshot exists: now the second repositories (`copy_to`).
    let copy_started = Instant::now();
    crate::copy::run(ctx, profile, &summary.snapshot_id)?;
    if !profile.copy_to.is_empty() {
        phases.push(("copy", copy_started.elapsed()));
    }
    Ok(RunReport {
        incomplete,
        summary,
        dumps,
        warnings,
        forgotten,
        duration: start.elapsed(),
        phases,
        snapshot_count,
    })
}

/// Bytes in the files under `path` (symlinks not followed); 0 when it cannot be read.
fn tree_size(path: &std::path::Path) -> u64 {
    match path.symlink_metadata() {
        Ok(m) if m.is_dir() => std::fs::read_dir(path)
            .map(|rd| rd.flatten().map(|e| tree_size(&e.path())).sum())
            .unwrap_or(0),
        Ok(m) => m.len(),
        Err(_) => 0,
    }
}

/// Removes stale restic locks (see [`Restic::remove_stale_locks`]) when a previous run of this
/// profile failed or was interrupted and may have left its lock in the repository: a lock left
/// by a server outage would otherwise block this run's retention. A failure is logged: the run
/// goes on, and restic reports a lock that is really in the way.
pub fn clear_stale_locks(restic: &Restic, profile: &Profile, job: &mut JobRun) {
    if !job.unlock_pending() {
        return;
    }
    tracing::info!(
        profile = %profile.name,
        "a previous run failed or was interrupted: removing stale restic locks (those whose process is gone)"
    );
    match restic.remove_stale_locks() {
        Ok(_) => job.unlocked(),
        Err(e) => {
            tracing::warn!(profile = %profile.name, "removing stale restic locks failed: {e}")
        }
    }
}

fn write_manifest(profile: &Profile, staging: &Staging, dumps: &[DumpReport]) -> Result<(), Error> {
    let manifest = Manifest {
        resticpilot: env!("CARGO_PKG_VERSION"),
        profile: &profile.name,
        host: &profile.host,
        created: chrono::Utc::now().to_rfc3339(),
        staging_dir: staging.path(),
        databases: dumps,
    };
    let text = serde_json::to_string_pretty(&manifest).expect("manifest serialises");
    staging.write(MANIFEST, text.as_bytes())
}

/// Shows restic's progress on a terminal, or logs it at most every 10 seconds.
fn progress_logger(profile: &str) -> impl FnMut(&crate::restic::json::BackupStatus) + '_ {
    let mut last = Instant::now();
    let mut line = report::progress::Line::new();
    move |status| {
        if let Some(line) = &mut line {
            line.set(&report::progress::restic_line(
                "backup",
                status.percent_done,
                status.bytes_done,
                status.total_bytes,
                status.seconds_remaining,
            ));
        } else if last.elapsed() >= Duration::from_secs(10) {
            last = Instant::now();
            tracing::info!(
                profile,
                "restic backup {:.0}% ({} of {})",
                status.percent_done * 100.0,
                human_bytes(status.bytes_done),
                human_bytes(status.total_bytes)
            );
        }
    }
}

/// What retention did to a profile's snapshots (on a dry run: would do).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retained {
    pub removed: usize,
    /// Every snapshot of the profile on its host is in one of forget's groups, kept or removed:
    /// after a real run this is how many the profile has.
    pub kept: usize,
}

/// Runs `restic forget` for the profile (and prune when asked).
///
/// Fails when restic fails.
pub fn apply_retention(
    restic: &Restic,
    profile: &Profile,
    retention: &crate::config::Retention,
    dry_run: bool,
    prune: bool,
) -> Result<Retained, Error> {
    let groups = restic.forget(&profile.host, &profile.profile_tag(), retention, dry_run)?;
    let removed: Vec<String> = groups
        .iter()
        .flat_map(|g| g.remove.iter().flatten())
        .map(|s| s.short().to_string())
        .collect();
    let kept: usize = groups
        .iter()
        .map(|g| g.keep.as_ref().map_or(0, Vec::len))
        .sum();
    let verb = if dry_run { "would remove" } else { "removed" };
    tracing::info!(
        profile = %profile.name,
        "retention: kept {kept} snapshots, {verb} {}{}",
        removed.len(),
        if removed.is_empty() { String::new() } else { format!(": {}", removed.join(", ")) }
    );
    if prune && !dry_run {
        tracing::info!(profile = %profile.name, "pruning unreferenced data");
        restic.prune()?;
    }
    Ok(Retained {
        removed: removed.len(),
        kept,
    })
}

/// What a dump's log line adds: how long writers were held out, the incremental chain.
fn dump_notes(r: &DumpReport) -> String {
    let mut notes = String::new();
    if let (Some(held), Some(mode)) = (r.writers_held, &r.journal_mode) {
        if mode == "wal" {
            notes.push_str("; journal mode wal: writers were not held out");
        } else {
            notes.push_str(&format!(
                "; journal mode {mode}: writers were held out {:.2}s",
                held.as_secs_f64()
            ));
        }
    }
    if let Some(c) = &r.incremental {
        notes.push_str(&format!(
            "; {} (chain {}: base + {} deltas, {} in deltas)",
            r.method,
            c.id,
            c.deltas.len(),
            human_bytes(c.delta_bytes())
        ));
    }
    notes
}

/// The one summary line of a successful run.
pub fn log_report(profile: &Profile, r: &RunReport) {
    let s = &r.summary;
    let dumped: u64 = r.dumps.iter().map(|d| d.bytes).sum();
    tracing::info!(
        profile = %profile.name,
        snapshot = %s.snapshot_id,
        files = s.total_files_processed,
        bytes_added = s.data_added,
        duration_s = format!("{:.1}", r.duration.as_secs_f64()),
        "backup done: snapshot {}, {} database dumps ({}), {} files, {} added to the repository, {} snapshots forgotten, {:.1}s{}",
        s.snapshot_id,
        r.dumps.len(),
        human_bytes(dumped),
        s.total_files_processed,
        human_bytes(s.data_added),
        r.forgotten,
        r.duration.as_secs_f64(),
        if r.warnings.is_empty() { String::new() } else { format!(", {} warnings", r.warnings.len()) }
    );
}

fn print_plan(ctx: &Context, p: &Profile) {
    let repo = &ctx.config.repositories[&p.repository];
    println!("profile {} (dry run: nothing is executed)", p.name);
    println!(
        "  lock      {}",
        ctx.config
            .state_dir
            .join("locks")
            .join(format!("{}.lock", p.name))
            .display()
    );
    println!(
        "  staging   {} (emptied, mode 0700)",
        p.staging_dir.display()
    );
    for cmd in &p.hooks.before {
        println!("  hook      before: {cmd}");
    }
    if let Some(m) = &p.maintenance {
        let mut reverse = m.stop.clone();
        reverse.reverse();
        println!(
            "  stop      {} (Docker engine; {}s each before it kills), started again after the dumps: {}",
            m.stop.join(", "),
            m.timeout.as_secs(),
            reverse.join(", ")
        );
    }
    for source in &p.databases {
        let how = match &source.kind {
            crate::config::SourceKind::Sqlite(s) => format!(
                "sqlite {} ({:?}, verify {:?})",
                s.path.display(),
                s.method,
                s.verify
            )
            .to_lowercase(),
            crate::config::SourceKind::Mysql(m) => format!(
                "{} {}",
                dump::mysql::dump_tool(m)
                    .map(|t| t.display().to_string())
                    .unwrap_or_else(|e| format!("<{e}>")),
                dump::mysql::DUMP_FLAGS.join(" ")
            ),
        };
        let to = match &source.kind {
            crate::config::SourceKind::Sqlite(s) if s.incremental.is_some() => {
                let inc = s.incremental.as_ref().expect("checked");
                format!(
                    "a base or a page delta in {} (page index in {})",
                    inc.chain_dir.display(),
                    inc.index_dir.display()
                )
            }
            _ => p
                .staging_dir
                .join(source.dump_file_name())
                .display()
                .to_string(),
        };
        println!("  dump      {}: {how} -> {to}", source.name);
    }
    let mut sources = vec![p.staging_dir.clone()];
    sources.extend(dump::incremental::roots(&p.databases));
    sources.extend(p.paths.iter().cloned());
    let options = ctx.config.restic_options(p);
    let mut backup = args::backup_with(
        &BackupArgs {
            host: p.host.clone(),
            tags: p.all_tags(),
            excludes: p.exclude.clone(),
            exclude_files: p.exclude_file.clone(),
            exclude_caches: p.exclude_caches,
            exclude_if_present: p.exclude_if_present.clone(),
            sources,
        },
        &options,
    );
    backup.splice(1..1, args::global_options(&options, "backup"));
    let repo_url = crate::config::redact_url(&repo.url);
    println!("  restic    -r {repo_url} {}", quote_all(&backup));
    if let Some(r) = &p.retention {
        let forget = args::forget(&p.host, &p.profile_tag(), r, false);
        println!("  restic    -r {repo_url} {}", quote_all(&forget));
        if r.prune {
            println!("  restic    -r {repo_url} prune");
        }
    }
    for target in &p.copy_to {
        let url = crate::config::redact_url(&ctx.config.repositories[target].url);
        let mut copy = vec!["copy".to_string()];
        copy.extend(args::profile_filter(&p.host, &p.profile_tag()));
        println!(
            "  restic    -r {url} {}   (from {repo_url}; then the retention above there too)",
            quote_all(&copy)
        );
    }
    for cmd in &p.hooks.after {
        println!("  hook      after: {cmd}");
    }
}

fn quote_all(args: &[String]) -> String {
    args.iter()
        .map(|a| crate::process::shell_quote(a.as_ref()))
        .collect::<Vec<_>>()
        .join(" ")
}
