//! The two-phase run of one profile (DESIGN.md, "The run of one profile"), which `backup` and
//! the daemon call: one [`Plan`] built once, printed by `backup --dry-run`, executed here.
//!
//! lock -> repository check -> before hooks -> staging -> dumps (each verified; any failure
//! stops here, before restic) -> one restic snapshot -> retention -> after hooks -> staging
//! cleared. On failure: staging cleared (unless kept for debugging), on_failure hooks run.
//! Without before hooks or a maintenance window the repository check runs beside the dumps
//! ([`RepoCheck`]), and is waited for before restic backup.

use std::cell::OnceCell;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::config::{Config, Profile};
use crate::error::Error;
use crate::hooks::{self, HookKind};
use crate::lock::ProfileLock;
use crate::maintenance;
use crate::manifest::{MANIFEST, Manifest};
use crate::report::{self, JobRun};
use crate::restic::args::INCOMPLETE_TAG;
use crate::restic::{BackupArgs, BackupSummary, Binary, Restic, Timeouts, args, short_id};
use crate::schedule::JobKind;
use crate::signals;
use crate::source::DumpReport;
use crate::staging::Staging;
use crate::units::{count, human_bytes};

pub mod check;
mod copy;
pub mod verify;

/// How a command that did not fail ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Success,
    /// Finished, but something deserves attention (exit 3).
    Warnings,
}

/// What every command and the run share: the resolved config and the restic binary (located
/// once, on first need).
pub struct Context {
    pub config: Config,
    binary: OnceCell<Binary>,
}

impl Context {
    pub fn new(config: Config) -> Self {
        Context {
            config,
            binary: OnceCell::new(),
        }
    }

    /// The profile called `name`.
    ///
    /// Fails with a usage error listing the profiles that exist.
    pub fn profile(&self, name: &str) -> Result<&Profile, Error> {
        self.config.profiles.get(name).ok_or_else(|| {
            let known: Vec<&str> = self.config.profiles.keys().map(String::as_str).collect();
            Error::Usage(format!(
                "no profile named {name:?} in {} (profiles: {})",
                self.config.file.display(),
                known.join(", ")
            ))
        })
    }

    /// restic bound to `profile`'s repository.
    ///
    /// Fails when restic is missing or too old.
    pub fn restic(&self, profile: &Profile) -> Result<Restic, Error> {
        self.restic_in(profile, &profile.repository)
    }

    /// restic for `profile`'s work on `repository` (its own or a `copy_to` one).
    ///
    /// Fails when restic cannot be found or is too old.
    pub fn restic_in(&self, profile: &Profile, repository: &str) -> Result<Restic, Error> {
        let binary = match self.binary.get() {
            Some(b) => b.clone(),
            None => {
                let b = Binary::locate(self.config.restic_binary.as_deref())?;
                tracing::debug!(path = %b.path.display(), version = %b.version, "using restic");
                self.binary.get_or_init(|| b).clone()
            }
        };
        let repo = self
            .config
            .repositories
            .get(repository)
            .expect("config resolution checked the repository exists")
            .clone();
        let init_lock = self
            .config
            .state_dir
            .join("locks")
            .join(format!("repository-{}.lock", repo.name));
        let options = self.config.restic_options_in(profile, repository);
        Ok(Restic::new(binary, repo, Timeouts::of(profile))
            .with_init_lock(init_lock)
            .with_options(options))
    }
}

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
        snapshot: crate::restic::SnapshotRef::new(&r.summary.snapshot_id),
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
    let plan = Plan::of(&ctx.config, profile);
    let restic = ctx.restic(profile)?;
    // A missing repository or a wrong password fails the run before restic backup, and before
    // any dump when something before the dumps depends on the repository (see `RepoCheck`).
    // The listing counts the snapshots after this run without another restic call (`listed`).
    let mut repo_check = if RepoCheck::beside_dumps(profile, job) {
        RepoCheck::start(ctx, profile)?
    } else {
        RepoCheck(Some(Checking::Done(RepoCheck::check(
            &restic,
            &profile.host,
            &profile.profile_tag(),
        )?)))
    };
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
    for source in &profile.databases {
        signals::check(&format!("the dump of {}", source.name))
            .map_err(|e| repo_check.rather(e.into()))?;
        tracing::info!(profile = %profile.name, database = %source.name, "dumping {} database", source.type_name());
        let watch = report::progress::watch_file(
            format!("dumping {}", source.name),
            crate::source::partial_path(source, staging.path()),
        );
        let report = crate::source::dump(source, staging.path());
        drop(watch);
        let report = report.map_err(|e| repo_check.rather(e.into()))?;
        tracing::info!(
            profile = %profile.name,
            database = %report.name,
            "dumped {} ({}) in {:.1}s, verified{}",
            report.file,
            human_bytes(report.bytes),
            report.duration.as_secs_f64(),
            dump_notes(&report)
        );
        dumps.push(report);
    }
    let (before, mut warnings) = repo_check.wait()?;
    for w in &warnings {
        tracing::warn!(profile = %profile.name, "{w}");
    }
    warnings.extend(dumps.iter().flat_map(|d| d.warnings.iter().cloned()));
    // The dumps are whole: a container that won't start again fails the run, after the
    // snapshot is taken.
    let restart_failed = window.and_then(|w| w.close().err());
    if let Some(e) = &restart_failed {
        tracing::warn!(
            profile = %profile.name,
            "{e}; the snapshot is taken all the same, then the run fails"
        );
    }
    write_manifest(profile, staging, &dumps)?;
    phases.push(("dumps", dumps_started.elapsed()));

    // Anything that means the snapshot may lack data makes it `incomplete`: retention keeps
    // such snapshots in a group of their own, so they never push complete ones out.
    let mut gaps: Vec<String> = dumps.iter().flat_map(|d| d.gaps.clone()).collect();
    for w in &gaps {
        tracing::warn!(profile = %profile.name, "{w}");
    }
    // The plan's snapshot, less the profile's paths that are missing now.
    let mut request = plan.backup.clone();
    // Staging as opened (its path normalised); the plan names it first.
    request.sources[0] = staging.path().to_path_buf();
    request.sources.retain(|source| {
        let missing = profile.paths.contains(source) && source.symlink_metadata().is_err();
        if missing {
            let w = format!(
                "path {} does not exist; backed up without it",
                source.display()
            );
            tracing::warn!(profile = %profile.name, "{w}");
            gaps.push(w);
        }
        !missing
    });
    let mut incomplete = !gaps.is_empty();
    warnings.append(&mut gaps);
    if incomplete {
        request.tags.push(INCOMPLETE_TAG.to_string());
    }
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
            short_id(&summary.snapshot_id),
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
                    tracing::info!(
                        profile = %profile.name,
                        "snapshot {} tagged `{INCOMPLETE_TAG}` (now {})",
                        short_id(&summary.snapshot_id),
                        short_id(&id)
                    );
                    summary.snapshot_id = id;
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
                short_id(&summary.snapshot_id),
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
    let forgotten = retained.as_ref().map_or(0, |r| r.removed);
    // forget has just listed every snapshot of the profile. Without it, restic 0.17 and later
    // named the new snapshot in full: the profile's snapshots are the ones listed before the
    // dumps plus it (the profile's lock kept this host's other runs out meanwhile). restic
    // 0.14 gave a short id, which only a listing resolves.
    let listed = match retained {
        Some(r) => Some(r.kept_ids),
        None if is_full_id(&summary.snapshot_id) => {
            let mut ids = before;
            ids.push(summary.snapshot_id.clone());
            Some(ids)
        }
        None => match restic.snapshots(&profile.host, &profile.profile_tag()) {
            Ok(list) => Some(list.into_iter().map(|s| s.id).collect()),
            Err(e) => {
                tracing::warn!(profile = %profile.name, "could not count the snapshots: {e}");
                None
            }
        },
    };
    let snapshot_count = listed.as_ref().map(|ids| ids.len() as u64);
    if let Some(ids) = &listed {
        summary.snapshot_id = full_snapshot_id(&summary.snapshot_id, ids);
    }
    hooks::run(HookKind::After, &profile.hooks.after, &profile.name, None).or_else(|e| {
        // The snapshot exists; a failing after-hook is worth a warning, not a failed backup.
        tracing::warn!(profile = %profile.name, "{e}");
        warnings.push(e.to_string());
        Ok::<(), Error>(())
    })?;
    if let Some(e) = restart_failed {
        return Err(Error::Failed(format!(
            "snapshot {} was taken, but the maintenance window failed: {e}",
            short_id(&summary.snapshot_id)
        )));
    }
    // The primary snapshot exists: now the second repositories (`copy_to`).
    let copy_started = Instant::now();
    copy::run(ctx, profile, &summary.snapshot_id)?;
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

/// The repository check of a run: `restic snapshots` of the profile (it proves that the
/// repository exists, or creates it with `init: true`, and that the password opens it) and the
/// check of the profile's restic knobs. What it gives: the profile's snapshot ids before the
/// run, and the knobs' warnings.
///
/// It runs on a thread beside the dumps (restic's key derivation, ~0.5 s of one core, overlaps
/// the copy) unless something before the dumps must not happen against a repository that cannot
/// be used: a before hook, a maintenance window (containers stopped), stale locks to clear.
/// Either way a failed check fails the run before `restic backup`, and its error wins over a
/// dump's (it is the cause to fix first).
struct RepoCheck(Option<Checking>);

/// What a repository check gives: the profile's snapshot ids before the run, the knobs' warnings.
type Checked = (Vec<String>, Vec<String>);

enum Checking {
    Done(Checked),
    Running(std::thread::JoinHandle<Result<Checked, Error>>),
}

impl RepoCheck {
    fn beside_dumps(profile: &Profile, job: &JobRun) -> bool {
        !profile.databases.is_empty()
            && profile.hooks.before.is_empty()
            && profile.maintenance.is_none()
            && !job.unlock_pending()
    }

    fn check(restic: &Restic, host: &str, tag: &str) -> Result<Checked, Error> {
        let ids = restic
            .open_and_list(host, tag)?
            .into_iter()
            .map(|s| s.id)
            .collect();
        Ok((ids, restic.check_options()?))
    }

    fn start(ctx: &Context, profile: &Profile) -> Result<RepoCheck, Error> {
        let (restic, host, tag) = (
            ctx.restic(profile)?,
            profile.host.clone(),
            profile.profile_tag(),
        );
        let handle = std::thread::Builder::new()
            .name("repository-check".into())
            .spawn(move || RepoCheck::check(&restic, &host, &tag));
        Ok(RepoCheck(Some(match handle {
            Ok(h) => Checking::Running(h),
            Err(e) => {
                tracing::debug!(
                    "no thread for the repository check ({e}): it runs before the dumps"
                );
                Checking::Done(RepoCheck::check(
                    &ctx.restic(profile)?,
                    &profile.host,
                    &profile.profile_tag(),
                )?)
            }
        })))
    }

    /// The check's result, once it has finished (an error once only: then nothing).
    fn wait(&mut self) -> Result<Checked, Error> {
        match self.0.take() {
            None => Ok((Vec::new(), Vec::new())),
            Some(Checking::Done(r)) => Ok(r),
            Some(Checking::Running(h)) => h.join().unwrap_or_else(|_| {
                Err(Error::Failed("the repository check panicked".to_string()))
            }),
        }
    }

    /// The error that ends the run when a dump failed with `dump`: the repository's, when its
    /// check failed too.
    fn rather(&mut self, dump: Error) -> Error {
        match self.wait() {
            Err(repository) => {
                tracing::debug!("the dump failed too: {dump}");
                repository
            }
            Ok(_) => dump,
        }
    }
}

impl Drop for RepoCheck {
    /// A run that ends early still waits for its restic call: nothing runs on unseen.
    fn drop(&mut self) {
        let _ = self.wait();
    }
}

/// Whether `id` is a whole snapshot id (64 hex digits), not restic 0.14's short one.
fn is_full_id(id: &str) -> bool {
    id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The full id of the snapshot restic reported as `reported` (restic 0.14's backup summary
/// gives the short id, later versions the full one), looked up in `ids` (the profile's
/// snapshots listed after the run); `reported` itself when it is not there.
fn full_snapshot_id(reported: &str, ids: &[String]) -> String {
    let mut found = ids.iter().filter(|id| id.starts_with(reported));
    match (found.next(), found.next()) {
        (Some(id), None) => id.clone(),
        _ => reported.to_string(),
    }
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
    use crate::restic::ResticError as E;
    match restic.remove_stale_locks() {
        Ok(_) => job.unlocked(),
        // The repository cannot be opened at all: the step that follows meets the same error
        // and reports it; saying it here too would print it twice.
        Err(
            e @ (E::WrongPassword { .. }
            | E::NoRepository { .. }
            | E::Unreachable { .. }
            | E::CredentialsRefused { .. }
            | E::HostKeyUnknown { .. }
            | E::HostKeyChanged { .. }),
        ) => tracing::debug!(profile = %profile.name, "removing stale restic locks failed: {e}"),
        Err(e) => {
            tracing::warn!(profile = %profile.name, "removing stale restic locks failed: {e}")
        }
    }
}

fn write_manifest(profile: &Profile, staging: &Staging, dumps: &[DumpReport]) -> Result<(), Error> {
    let manifest = Manifest {
        resticpilot: env!("CARGO_PKG_VERSION").to_string(),
        profile: profile.name.clone(),
        host: profile.host.clone(),
        created: chrono::Utc::now().to_rfc3339(),
        staging_dir: staging.path().display().to_string(),
        databases: dumps.iter().map(|d| d.entry.clone()).collect(),
    };
    let text = serde_json::to_string_pretty(&manifest).expect("manifest serialises");
    staging.write(MANIFEST, text.as_bytes())
}

/// Shows restic's progress on a terminal, or logs it every heartbeat.
fn progress_logger(profile: &str) -> impl FnMut(&crate::restic::json::BackupStatus) + '_ {
    let mut line = report::progress::Line::new();
    move |status| {
        line.set(&format!(
            "{profile}: {}",
            report::progress::restic_line(
                "backup",
                status.percent_done,
                status.bytes_done,
                status.total_bytes,
                status.seconds_remaining,
            )
        ));
    }
}

/// What retention did to a profile's snapshots (on a dry run: would do).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retained {
    pub removed: usize,
    /// Every snapshot of the profile on its host is in one of forget's groups, kept or removed:
    /// after a real run this is how many the profile has.
    pub kept: usize,
    /// The full ids of the kept snapshots.
    pub kept_ids: Vec<String>,
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
    let kept_ids: Vec<String> = groups
        .iter()
        .flat_map(|g| g.keep.iter().flatten())
        .map(|s| s.id.clone())
        .collect();
    let kept = kept_ids.len();
    let verb = if dry_run { "would remove" } else { "removed" };
    tracing::info!(
        profile = %profile.name,
        "retention: kept {}, {verb} {}{}",
        count(kept as u64, "snapshot", "snapshots"),
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
        kept_ids,
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
        snapshot = %short_id(&s.snapshot_id),
        snapshot_id = %s.snapshot_id,
        files = s.total_files_processed,
        bytes_added = s.data_added,
        duration_s = crate::report::seconds(r.duration),
        "backup done: snapshot {}, {} ({}), {}, {} added to the repository, {} forgotten, {:.1}s{}",
        short_id(&s.snapshot_id),
        count(r.dumps.len() as u64, "database dump", "database dumps"),
        human_bytes(dumped),
        count(s.total_files_processed, "file", "files"),
        human_bytes(s.data_added),
        count(r.forgotten as u64, "snapshot", "snapshots"),
        r.duration.as_secs_f64(),
        if r.warnings.is_empty() { String::new() } else { format!(", {}", count(r.warnings.len() as u64, "warning", "warnings")) }
    );
}

/// One dump of the plan: the database, how it is dumped, where to.
#[derive(Debug, Clone)]
pub struct PlannedDump {
    pub name: String,
    pub how: String,
    pub to: String,
}

/// What a run of one profile does, built once from the config: printed by `backup --dry-run`,
/// executed by [`run_profile`] (which drops the paths missing at run time and adds the
/// `incomplete` tag when a dump or path is missing).
#[derive(Debug, Clone)]
pub struct Plan {
    pub profile: String,
    /// The profile's lock file.
    pub lock: PathBuf,
    pub staging: PathBuf,
    pub before: Vec<String>,
    pub after: Vec<String>,
    pub maintenance: Option<crate::config::Maintenance>,
    pub dumps: Vec<PlannedDump>,
    /// The snapshot: staging, the engines' other roots, the profile's paths.
    pub backup: BackupArgs,
    /// restic's `forget` arguments, when the profile has retention.
    pub forget: Option<Vec<String>>,
    pub prune: bool,
    /// The repository, with any password in its URL redacted.
    pub repository: String,
    /// restic's knobs for this profile on its repository (`restic:`).
    pub options: crate::config::ResticOptions,
    /// `copy_to`: each second repository's URL (redacted) and restic's `copy` arguments.
    pub copies: Vec<(String, Vec<String>)>,
}

impl Plan {
    /// The plan of `profile` under `config`.
    pub fn of(config: &Config, p: &Profile) -> Plan {
        let mut sources = vec![p.staging_dir.clone()];
        sources.extend(crate::source::backup_roots(&p.databases));
        sources.extend(p.paths.iter().cloned());
        Plan {
            profile: p.name.clone(),
            lock: config
                .state_dir
                .join("locks")
                .join(format!("{}.lock", p.name)),
            staging: p.staging_dir.clone(),
            before: p.hooks.before.clone(),
            after: p.hooks.after.clone(),
            maintenance: p.maintenance.clone(),
            dumps: p
                .databases
                .iter()
                .map(|source| PlannedDump {
                    name: source.name.clone(),
                    how: source.source.dump_plan(),
                    to: source
                        .source
                        .dump_target(&p.staging_dir.join(source.dump_file_name())),
                })
                .collect(),
            backup: BackupArgs {
                host: p.host.clone(),
                tags: p.all_tags(),
                excludes: p.exclude.clone(),
                exclude_files: p.exclude_file.clone(),
                exclude_caches: p.exclude_caches,
                exclude_if_present: p.exclude_if_present.clone(),
                sources,
            },
            forget: p
                .retention
                .as_ref()
                .map(|r| args::forget(&p.host, &p.profile_tag(), r, false)),
            prune: p.retention.as_ref().is_some_and(|r| r.prune),
            repository: crate::config::redact_url(&config.repositories[&p.repository].url),
            options: config.restic_options(p),
            copies: p
                .copy_to
                .iter()
                .map(|target| {
                    let mut copy = vec!["copy".to_string()];
                    copy.extend(args::profile_filter(&p.host, &p.profile_tag()));
                    (
                        crate::config::redact_url(&config.repositories[target].url),
                        copy,
                    )
                })
                .collect(),
        }
    }

    /// The plan as `backup --dry-run` prints it.
    pub fn render(&self) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        let mut line = |text: String| {
            let _ = writeln!(out, "{text}");
        };
        line(format!(
            "profile {} (dry run: nothing is executed)",
            self.profile
        ));
        line(format!("  lock      {}", self.lock.display()));
        line(format!(
            "  staging   {} (emptied, mode 0700)",
            self.staging.display()
        ));
        for cmd in &self.before {
            line(format!("  hook      before: {cmd}"));
        }
        if let Some(m) = &self.maintenance {
            let mut reverse = m.stop.clone();
            reverse.reverse();
            line(format!(
                "  stop      {} (Docker engine; {}s each before it kills), started again after the dumps: {}",
                m.stop.join(", "),
                m.timeout.as_secs(),
                reverse.join(", ")
            ));
        }
        for d in &self.dumps {
            line(format!("  dump      {}: {} -> {}", d.name, d.how, d.to));
        }
        let repo = &self.repository;
        let mut backup = args::backup_with(&self.backup, &self.options);
        backup.splice(1..1, args::global_options(&self.options, "backup"));
        line(format!("  restic    -r {repo} {}", quote_all(&backup)));
        if let Some(forget) = &self.forget {
            line(format!("  restic    -r {repo} {}", quote_all(forget)));
            if self.prune {
                line(format!("  restic    -r {repo} prune"));
            }
        }
        for (url, copy) in &self.copies {
            line(format!(
                "  restic    -r {url} {}   (from {repo}; then the retention above there too)",
                quote_all(copy)
            ));
        }
        for cmd in &self.after {
            line(format!("  hook      after: {cmd}"));
        }
        out
    }
}

fn quote_all(args: &[String]) -> String {
    args.iter()
        .map(|a| crate::process::shell_quote(a.as_ref()))
        .collect::<Vec<_>>()
        .join(" ")
}
