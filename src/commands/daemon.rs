//! `daemon`: the scheduler for containers. Runs each profile's jobs (backup, check, prune) on
//! their cron schedules, catches up a run missed while it was down, never runs one profile
//! twice at once (the same lock as a manual run), runs up to `max_concurrent` profiles at once,
//! and serves /healthz and /metrics when asked to listen.
//!
//! Each job runs on its own thread with its own context; the main thread only plans, queues
//! and waits. On SIGTERM/SIGINT nothing new starts, running jobs finish or are stopped after
//! the grace period (`signals`), and the daemon exits 0.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use super::{Context, Status};
use crate::config::{Config, Profile};
use crate::error::Error;
use crate::lock::ProfileLock;
use crate::report::health;
use crate::report::http::{Served, Server};
use crate::report::{JobRun, StatusStore, metrics, notify};

use crate::schedule::{
    Clock, Decision, JobKey, JobKind, Planned, Queue, Schedule, Scheduler, SystemClock, Zone,
    random_jitter,
};
use crate::signals;

/// How often the main loop looks at the shutdown flag while it waits.
const TICK: Duration = Duration::from_millis(250);
/// How long the daemon waits for notifications still queued at exit.
const NOTIFY_FLUSH: Duration = Duration::from_secs(15);

/// How a job ended, as the scheduler sees it.
enum Outcome {
    Ran(Result<(), Error>),
    /// The profile's lock was held by another process (a manual run): skipped.
    Busy(String),
}

struct Done {
    key: JobKey,
    outcome: Outcome,
}

/// Runs until SIGTERM/SIGINT; `listen` overrides the config's `listen`, which overrides
/// `RESTICPILOT_LISTEN`.
///
/// Fails when no profile has a schedule, `RESTICPILOT_LISTEN` is not an address, or the HTTP
/// address cannot be bound.
pub fn run(ctx: &Context, listen: Option<SocketAddr>) -> Result<Status, Error> {
    let config = &ctx.config;
    let clock = SystemClock;
    let started = clock.now();
    let store = StatusStore::new(&config.state_dir);
    let planned = plan(config, &store);
    if planned.is_empty() {
        return Err(Error::Usage(format!(
            "nothing to schedule: no profile in {} has `schedule`, `check_schedule` or `prune_schedule`",
            config.file.display()
        )));
    }
    let implied = health::daemon_address(config.daemon.listen)?;
    if let Some(flag) = listen {
        let asked = implied.map(health::probe_address);
        let default: SocketAddr = health::DEFAULT_ADDRESS.parse().expect("a valid address");
        if health::probe_address(flag) != asked.unwrap_or(default) {
            tracing::warn!(
                "--listen {flag}: `resticpilot health` without --address (the image's \
                 HEALTHCHECK) asks {} instead; set `listen:` in the config or {}={flag} so it \
                 follows",
                asked.unwrap_or(default),
                health::LISTEN_ENV
            );
        }
    }
    let server = match listen.or(implied) {
        Some(addr) => {
            let served = Arc::new(Served {
                config: config.clone(),
                store: store.clone(),
                started,
            });
            let server = Server::start(addr, served)?;
            tracing::info!("serving /healthz and /metrics on http://{}", server.addr());
            Some(server)
        }
        None => None,
    };
    write_metrics_file(config, &store, started);

    let (mut scheduler, decisions) = Scheduler::new(planned, started, &mut random_jitter);
    let mut queue = Queue::new(config.daemon.max_concurrent);
    tracing::info!(
        "daemon started: {} scheduled jobs, up to {} profiles at once, grace period {}s",
        decisions.len(),
        config.daemon.max_concurrent,
        config.daemon.grace_period.as_secs()
    );
    for decision in decisions {
        if let Some(key) = log_decision(config, &decision) {
            queue.submit(key);
        }
    }

    let (tx, rx) = mpsc::channel::<Done>();
    loop {
        if signals::requested() {
            break;
        }
        while let Some(key) = queue.start_next() {
            start_job(config, key, tx.clone());
        }
        let now = clock.now();
        let wait = scheduler
            .next_due()
            .map(|t| (t - now).to_std().unwrap_or_default())
            .unwrap_or(TICK)
            .min(TICK);
        match rx.recv_timeout(wait) {
            Ok(done) => finished(config, &store, &mut queue, done),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => unreachable!("the loop holds a sender"),
        }
        for key in scheduler.take_due(clock.now(), &mut random_jitter) {
            if queue.submit(key.clone()) {
                tracing::debug!("{key}: due");
            } else {
                tracing::warn!(
                    "{key}: skipped this scheduled run: the previous one is still running or waiting"
                );
                count_skip(config, &store, &key);
            }
            if let Some(next) = scheduler.next_of(&key) {
                tracing::debug!("{key}: next run at {}", next.to_rfc3339());
            }
        }
    }

    for key in queue.drain_waiting() {
        tracing::info!("{key}: not started: shutting down");
    }
    if queue.running() > 0 {
        tracing::info!("waiting for {} running jobs to end", queue.running());
    }
    // Jobs end within the grace period, or are stopped then (children get SIGTERM, SIGKILL
    // 10 s later; on_failure hooks get 30 s). Past that, something in-process is stuck: leave.
    let deadline = Instant::now() + config.daemon.grace_period + Duration::from_secs(60);
    while queue.running() > 0 {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            tracing::error!(
                "{} jobs did not end in time; exiting anyway (their staging is emptied by the next run)",
                queue.running()
            );
            break;
        }
        match rx.recv_timeout(left.min(TICK)) {
            Ok(done) => finished(config, &store, &mut queue, done),
            Err(_) => continue,
        }
    }
    if let Some(server) = server {
        server.stop();
    }
    notify::flush(NOTIFY_FLUSH);
    tracing::info!("daemon stopped");
    Ok(Status::Success)
}

/// Every scheduled job of every profile, with its last success from the status files.
fn plan(config: &Config, store: &StatusStore) -> Vec<Planned> {
    let mut planned = Vec::new();
    for p in config.profiles.values() {
        let status = store.load_all([p.name.as_str()]).remove(0);
        let zone = Zone::from_config(p.timezone.as_deref());
        for kind in JobKind::ALL {
            let Some(expr) = schedule_of(p, kind) else {
                continue;
            };
            let schedule = match Schedule::parse(expr, zone) {
                Ok(s) => s,
                Err(why) => {
                    // validate checked it; a failure here is a bug, not a reason to stop.
                    tracing::error!(profile = %p.name, "{} {expr:?}: {why}", kind.schedule_key());
                    continue;
                }
            };
            planned.push(Planned {
                key: JobKey {
                    profile: p.name.clone(),
                    kind,
                },
                schedule,
                jitter: p.jitter,
                catch_up: p.catch_up,
                last_success_start: status.job(kind).and_then(|j| j.last_success_start),
            });
        }
    }
    planned
}

fn schedule_of(p: &Profile, kind: JobKind) -> Option<&str> {
    match kind {
        JobKind::Backup => p.schedule.as_deref(),
        JobKind::Check => p.check_schedule.as_deref(),
        JobKind::Prune => p.prune_schedule.as_deref(),
        JobKind::Verify => p.verify_schedule.as_deref(),
    }
}

/// Logs what the scheduler decided for one job; returns the job when it runs now.
fn log_decision(config: &Config, d: &Decision) -> Option<JobKey> {
    let describe = |key: &JobKey| {
        let p = &config.profiles[&key.profile];
        let zone = Zone::from_config(p.timezone.as_deref());
        format!(
            "schedule \"{}\" ({zone})",
            schedule_of(p, key.kind).unwrap_or_default()
        )
    };
    match d {
        Decision::CatchUp { key, missed } => {
            tracing::info!(
                "{key}: {}: running now (catch_up: once; {})",
                missed_text(*missed),
                describe(key)
            );
            Some(key.clone())
        }
        Decision::Skipped { key, missed, next } => {
            tracing::info!(
                "{key}: {}; catch_up: skip, next run at {} ({})",
                missed_text(*missed),
                next.to_rfc3339(),
                describe(key)
            );
            None
        }
        Decision::Next { key, next } => {
            tracing::info!(
                "{key}: next run at {} ({})",
                next.to_rfc3339(),
                describe(key)
            );
            None
        }
        Decision::Never { key } => {
            tracing::warn!("{key}: {} never matches again", describe(key));
            None
        }
    }
}

fn missed_text(missed: Option<DateTime<Utc>>) -> String {
    match missed {
        Some(t) => format!("missed the run due at {}", t.to_rfc3339()),
        None => "no successful run recorded".to_string(),
    }
}

fn start_job(config: &Config, key: JobKey, tx: mpsc::Sender<Done>) {
    tracing::debug!("{key}: starting");
    let config = config.clone();
    let name = format!("job {key}");
    let spawned = std::thread::Builder::new().name(name).spawn({
        let key = key.clone();
        let tx = tx.clone();
        move || {
            let ctx = Context::new(config);
            let outcome =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run_job(&ctx, &key)))
                    .unwrap_or_else(|_| {
                        Outcome::Ran(Err(Error::Failed(format!("{key}: the job panicked"))))
                    });
            let _ = tx.send(Done { key, outcome });
        }
    });
    if let Err(err) = spawned {
        let _ = tx.send(Done {
            key,
            outcome: Outcome::Ran(Err(Error::io("cannot start a job thread", err))),
        });
    }
}

/// Runs one job of one profile: the single place the daemon starts work.
fn run_job(ctx: &Context, key: &JobKey) -> Outcome {
    let profile = ctx
        .profile(&key.profile)
        .expect("jobs are planned from the config's profiles");
    let result = match key.kind {
        JobKind::Backup => crate::run::run_profile(ctx, profile).map(|report| {
            crate::run::log_report(profile, &report);
        }),
        JobKind::Check => {
            crate::run::check::run_profile(ctx, profile, profile.check_subset.as_deref())
        }
        JobKind::Prune => prune(ctx, profile),
        JobKind::Verify => crate::run::verify::run_scheduled(ctx, profile),
    };
    match result {
        Err(Error::Busy(why)) => Outcome::Busy(why),
        other => Outcome::Ran(other),
    }
}

/// `prune_schedule`: the profile's retention (if any) then `restic prune`, under its lock.
///
/// Fails when the profile is busy or restic fails.
fn prune(ctx: &Context, profile: &Profile) -> Result<(), Error> {
    let _lock = ProfileLock::acquire(&ctx.config.state_dir, &profile.name)?;
    let mut job = JobRun::begin(&ctx.config, profile, JobKind::Prune);
    let start = Instant::now();
    tracing::info!(profile = %profile.name, "prune started");
    let result = (|| -> Result<usize, Error> {
        let restic = ctx.restic(profile)?;
        crate::run::clear_stale_locks(&restic, profile, &mut job);
        match &profile.retention {
            Some(r) => {
                crate::run::apply_retention(&restic, profile, r, false, true).map(|r| r.removed)
            }
            None => {
                tracing::info!(profile = %profile.name, "pruning unreferenced data (no retention to apply)");
                restic.prune()?;
                Ok(0)
            }
        }
    })();
    match &result {
        Ok(removed) => {
            tracing::info!(
                profile = %profile.name,
                duration_s = format!("{:.1}", start.elapsed().as_secs_f64()),
                "prune done: {removed} snapshots forgotten, unreferenced data pruned, {:.1}s",
                start.elapsed().as_secs_f64()
            );
            job.succeeded(Vec::new(), None);
        }
        Err(err) => job.failed(err),
    }
    result.map(|_| ())
}

fn finished(config: &Config, store: &StatusStore, queue: &mut Queue, done: Done) {
    queue.finish(&done.key);
    let key = done.key;
    match done.outcome {
        Outcome::Ran(Ok(())) => tracing::debug!("{key}: done"),
        Outcome::Ran(Err(err)) => tracing::error!("{key} failed: {err}"),
        Outcome::Busy(why) => {
            tracing::warn!("{key}: skipped: {why}");
            count_skip(config, store, &key);
        }
    }
}

fn count_skip(config: &Config, store: &StatusStore, key: &JobKey) {
    let counted = store.update(&key.profile, |s| {
        s.jobs.entry(key.kind).or_default().skipped += 1;
    });
    if let Err(err) = counted {
        tracing::warn!("{key}: cannot record the skipped run: {err}");
    }
    write_metrics_file(config, store, Utc::now());
}

fn write_metrics_file(config: &Config, store: &StatusStore, now: DateTime<Utc>) {
    metrics::write_file(config, store, now);
}
