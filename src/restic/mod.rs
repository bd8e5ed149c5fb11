//! Everything resticpilot knows about restic: finding the binary and checking its version,
//! the environment that carries the repository and password (never arguments), running
//! commands with every wait bounded (a stall timeout and phase deadlines, `watch`; a repository
//! lock waited for up to `lock_wait`, stale locks removed first), mapping exit codes and
//! messages to named errors, and parsing `--json`.

pub mod args;
pub mod exit;
pub mod json;
pub mod sftp;
pub mod syntax;
pub mod watch;

use crate::units::show_duration;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::{
    Profile, Repository, RepositoryPassword, ResticOptions, Secret, Sftp, redact_url,
};
use crate::process::{Cmd, LineFilter, Output, Piped, ProcessError, StopSignal, describe_status};

pub use args::BackupArgs;
use exit::Outcome;
pub use json::{BackupSummary, ForgetGroup, LsLine, Snapshot, SnapshotRef, short_id};
use watch::{Limits, ResticWatch, Stop};

/// The oldest restic resticpilot drives: `--json` backup summaries with snapshot ids.
pub const MIN_VERSION: Version = Version(0, 14, 0);

/// How much of restic's stderr an error message keeps (the whole text goes to the debug log).
const DETAIL_LINE_CHARS: usize = 300;

#[derive(Debug, thiserror::Error)]
pub enum ResticError {
    #[error(
        "restic not found on PATH: install restic {MIN_VERSION} or newer, or set restic_binary in the config"
    )]
    NotFound,
    #[error("{path} is restic {found}; resticpilot needs restic {MIN_VERSION} or newer")]
    TooOld { path: String, found: Version },
    #[error("could not read the version of {path}: {detail}")]
    Version { path: String, detail: String },
    #[error("wrong password for repository {repo} ({url}): restic found no key the password opens")]
    WrongPassword { repo: String, url: String },
    #[error(
        "repository {repo} ({url}) does not exist: create it with `restic init`, or set `init: true` on the repository"
    )]
    NoRepository { repo: String, url: String },
    #[error("repository {repo} ({url}) is unreachable: {detail}")]
    Unreachable {
        repo: String,
        url: String,
        detail: String,
    },
    #[error("the server of repository {repo} ({url}) refused the credentials: {detail}; {fix}")]
    CredentialsRefused {
        repo: String,
        url: String,
        detail: String,
        fix: String,
    },
    #[error(
        "the SSH host key of repository {repo}'s server ({url}) is not known: {detail}; check the server's key fingerprint, then add it: {hint}"
    )]
    HostKeyUnknown {
        repo: String,
        url: String,
        detail: String,
        hint: String,
    },
    #[error(
        "the SSH host key of repository {repo}'s server ({url}) has CHANGED: {detail}; if the server was reinstalled, replace its line in the known_hosts file ({hint}); otherwise someone may be intercepting the connection"
    )]
    HostKeyChanged {
        repo: String,
        url: String,
        detail: String,
        hint: String,
    },
    #[error("repository {repo} stayed locked for {waited} (lock_wait): {detail}")]
    Locked {
        repo: String,
        waited: String,
        detail: String,
    },
    #[error(
        "restic {verb} on repository {repo} ({url}) made no progress for {waited}: the server stopped answering{detail}; restic was stopped (raise the repository's stall_timeout if the link is that slow)"
    )]
    Stalled {
        verb: String,
        repo: String,
        url: String,
        waited: String,
        detail: String,
    },
    #[error(
        "restic {verb} on repository {repo} ({url}) did not finish within {after} ({key}): restic was stopped; raise {key} if it needs longer"
    )]
    Deadline {
        verb: String,
        repo: String,
        url: String,
        after: String,
        key: &'static str,
    },
    #[error("restic {verb} on repository {repo} was interrupted ({how})")]
    Interrupted {
        verb: String,
        repo: String,
        how: String,
    },
    #[error("restic {verb} on repository {repo} failed ({how}): {detail}")]
    Failed {
        verb: String,
        repo: String,
        how: String,
        detail: String,
    },
    #[error("could not parse the output of restic {verb}: {detail}")]
    Parse { verb: String, detail: String },
    #[error("password file {path} of repository {repo} is not readable: {detail}")]
    PasswordFile {
        repo: String,
        path: String,
        detail: String,
    },
    #[error(
        "env_files.{name} {path} of repository {repo} is not readable: {detail} (it holds the value restic gets as {name})"
    )]
    EnvFile {
        repo: String,
        name: String,
        path: String,
        detail: String,
    },
    #[error("sftp.{key} {path} of repository {repo} is not readable: {detail}")]
    SftpFile {
        repo: String,
        key: &'static str,
        path: String,
        detail: String,
    },
    #[error("cannot lock {path} to create repository {repo}: {detail}")]
    InitLock {
        repo: String,
        path: String,
        detail: String,
    },
    #[error(
        "{key} needs restic {needs} or newer, and this is restic {found}: remove {key} or upgrade restic"
    )]
    Unsupported {
        key: &'static str,
        needs: &'static str,
        found: Version,
    },
    #[error(transparent)]
    Process(#[from] ProcessError),
}

/// A restic version, compared numerically.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version(pub u32, pub u32, pub u32);

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

impl Version {
    /// Reads the version from `restic version` output: "restic 0.14.0 compiled with ...".
    pub fn parse(output: &str) -> Option<Version> {
        let word = output.split_whitespace().nth(1)?;
        let mut parts = word.split(|c: char| !c.is_ascii_digit());
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        let patch = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        Some(Version(major, minor, patch))
    }

    /// `--retry-lock` appeared in restic 0.16.
    pub fn has_retry_lock(self) -> bool {
        self >= Version(0, 16, 0)
    }

    /// `backup --read-concurrency` appeared in restic 0.15.
    pub fn has_read_concurrency(self) -> bool {
        self >= Version(0, 15, 0)
    }

    /// `--stuck-request-timeout` appeared in restic 0.18.
    pub fn has_stuck_request_timeout(self) -> bool {
        self >= Version(0, 18, 0)
    }
}

/// The restic binary to use and its version.
#[derive(Debug, Clone)]
pub struct Binary {
    pub path: PathBuf,
    pub version: Version,
}

impl Binary {
    /// Finds restic (`configured`, else PATH) and checks it is recent enough.
    ///
    /// Fails when it is missing, cannot tell its version, or is older than [`MIN_VERSION`].
    pub fn locate(configured: Option<&Path>) -> Result<Binary, ResticError> {
        let path = match configured {
            Some(p) => p.to_path_buf(),
            None => which::which("restic").map_err(|_| ResticError::NotFound)?,
        };
        let out = Cmd::new(&path).arg("version").output()?;
        let text = out.stdout_string();
        if !out.status.success() {
            return Err(ResticError::Version {
                path: path.display().to_string(),
                detail: format!("{}: {}", describe_status(out.status), out.stderr.trim()),
            });
        }
        let version = Version::parse(&text).ok_or_else(|| ResticError::Version {
            path: path.display().to_string(),
            detail: format!("unexpected output {:?}", text.trim()),
        })?;
        if version < MIN_VERSION {
            return Err(ResticError::TooOld {
                path: path.display().to_string(),
                found: version,
            });
        }
        let _ = LOCATED.set(version);
        Ok(Binary { path, version })
    }
}

/// The version of the first restic [`Binary::locate`] accepted in this process.
static LOCATED: std::sync::OnceLock<Version> = std::sync::OnceLock::new();

/// The restic version this process runs, once it has looked for restic (for build_info).
pub fn located_version() -> Option<Version> {
    LOCATED.get().copied()
}

/// How long each of a profile's restic phases may take (the repository's own bounds,
/// `stall_timeout` and `open_timeout`, travel with the repository).
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// How long a command waits for a lock held by another process.
    pub lock_wait: Duration,
    pub backup: Duration,
    /// forget and prune.
    pub retention: Duration,
    pub check: Duration,
}

impl Timeouts {
    pub fn of(profile: &Profile) -> Self {
        Timeouts {
            lock_wait: profile.lock_wait,
            backup: profile.backup_timeout,
            retention: profile.retention_timeout,
            check: profile.check_timeout,
        }
    }
}

/// restic bound to one repository.
#[derive(Debug, Clone)]
pub struct Restic {
    binary: Binary,
    repo: Repository,
    timeouts: Timeouts,
    /// A file locked while the repository is created, so two runs sharing it (two profiles,
    /// a daemon and a manual run) never both `restic init` it: concurrent inits of one
    /// repository leave keys that do not open its config.
    init_lock: Option<PathBuf>,
    /// restic's knobs for this profile (repository's, overridden by the profile's).
    options: ResticOptions,
    /// The repository `copy` reads from and `init` takes chunker parameters from.
    copy_source: Option<Repository>,
}

/// What a finished `restic backup` reported.
#[derive(Debug, Clone)]
pub struct BackupOutcome {
    pub summary: BackupSummary,
    /// Files restic could not read (exit 3: the snapshot exists without them).
    pub unreadable: Vec<String>,
}

/// One lock in the repository, as `restic cat lock` describes it.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct LockInfo {
    #[serde(skip)]
    pub id: String,
    #[serde(default)]
    pub time: Option<chrono::DateTime<chrono::Utc>>,
    #[serde(default)]
    pub exclusive: bool,
    #[serde(default)]
    pub hostname: String,
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub pid: u32,
}

/// Age past which restic calls any lock stale (`restic unlock` removes it).
const RESTIC_STALE_LOCK_AGE: chrono::TimeDelta = chrono::TimeDelta::minutes(30);

impl LockInfo {
    /// Whether `restic unlock` (without `--remove-all`), run on host `here` at `now`, may
    /// remove this lock: older than 30 minutes, or of this host with no live process
    /// (`alive(pid)`). A lock of another host younger than that is never restic's to remove.
    pub fn restic_may_unlock(
        &self,
        here: &str,
        now: chrono::DateTime<chrono::Utc>,
        alive: impl Fn(u32) -> bool,
    ) -> bool {
        let old = self.time.is_none_or(|t| now - t > RESTIC_STALE_LOCK_AGE);
        old || (self.hostname == here && !alive(self.pid))
    }

    /// "exclusive lock 1a2b3c4d of host web-1 (pid 42, user backup), created 2024-05-02 03:00:01
    /// UTC, 3m12s ago".
    pub fn describe(&self) -> String {
        let age = self.time.map(|t| {
            let age = (chrono::Utc::now() - t).to_std().unwrap_or_default();
            format!(
                ", created {}, {} ago",
                t.format("%Y-%m-%d %H:%M:%S UTC"),
                show_duration(age)
            )
        });
        format!(
            "{} lock {} of host {} (pid {}, user {}){}",
            if self.exclusive {
                "exclusive"
            } else {
                "shared"
            },
            &self.id[..self.id.len().min(8)],
            self.hostname,
            self.pid,
            self.username,
            age.unwrap_or_default()
        )
    }
}

/// What [`Restic::remove_stale_locks`] found and did.
#[derive(Debug, Clone, Default)]
pub struct StaleLocks {
    /// Locks removed by resticpilot's own rule (this host, process gone, pid reused).
    pub removed: Vec<String>,
    /// Locks still there afterwards, described.
    pub remaining: Vec<String>,
}

impl Restic {
    pub fn new(binary: Binary, repo: Repository, timeouts: Timeouts) -> Self {
        let options = repo.restic.clone();
        Restic {
            binary,
            repo,
            timeouts,
            init_lock: None,
            options,
            copy_source: None,
        }
    }

    /// Makes this the destination of copies from `source`: `copy` reads from it, and `init`
    /// creates the repository with its chunker parameters (so copied data deduplicates).
    pub fn with_copy_source(mut self, source: Repository) -> Self {
        self.copy_source = Some(source);
        self
    }

    /// Copies every snapshot of one profile (host and both tags) that this repository lacks
    /// from the copy source; restic skips the ones copied before.
    ///
    /// Fails when restic fails (unreachable source or destination, lock, wrong password...).
    pub fn copy_profile(&self, host: &str, profile_tag: &str) -> Result<(), ResticError> {
        let mut args = vec!["copy".to_string()];
        args.extend(args::profile_filter(host, profile_tag));
        self.run(&args, |_| {})?;
        Ok(())
    }

    /// Uses `options` (a profile's merged restic knobs) for every command.
    pub fn with_options(mut self, options: ResticOptions) -> Self {
        self.options = options;
        self
    }

    /// Serialises repository creation through a lock on `path`.
    pub fn with_init_lock(mut self, path: PathBuf) -> Self {
        self.init_lock = Some(path);
        self
    }

    pub fn version(&self) -> Version {
        self.binary.version
    }

    pub fn repository(&self) -> &Repository {
        &self.repo
    }

    /// The repository URL with credentials masked.
    pub fn url(&self) -> String {
        redact_url(&self.repo.url)
    }

    /// A restic command for this repository. The repository and password travel in the
    /// environment; inherited RESTIC_* variables that could override them are removed.
    /// `retry_lock`: let restic (>= 0.16) wait that long for a lock itself.
    pub fn command(&self, args: &[String], retry_lock: Option<Duration>) -> Cmd {
        // restic removes its repository lock when interrupted (SIGINT); restic < 0.17 does
        // not catch SIGTERM and would leave the lock behind.
        let mut cmd = Cmd::new(&self.binary.path).stop_signal(StopSignal::Interrupt);
        for inherited in [
            "RESTIC_PASSWORD",
            "RESTIC_PASSWORD_FILE",
            "RESTIC_PASSWORD_COMMAND",
            "RESTIC_REPOSITORY_FILE",
            "RESTIC_PROGRESS_FPS",
            "RESTIC_FROM_REPOSITORY",
            "RESTIC_FROM_REPOSITORY_FILE",
            "RESTIC_FROM_PASSWORD",
            "RESTIC_FROM_PASSWORD_FILE",
            "RESTIC_FROM_PASSWORD_COMMAND",
        ] {
            cmd = cmd.env_remove(inherited);
        }
        let from = self
            .copy_source
            .as_ref()
            .filter(|_| matches!(args[0].as_str(), "copy" | "init"));
        if let Some(src) = from {
            cmd = cmd.secret_env("RESTIC_FROM_REPOSITORY", &src.url);
            cmd = match &src.password {
                RepositoryPassword::File(path) => cmd.env("RESTIC_FROM_PASSWORD_FILE", path),
                RepositoryPassword::Command(c) => cmd.env("RESTIC_FROM_PASSWORD_COMMAND", c),
            };
            // The source's backend credentials, where the destination does not set the same
            // variable (restic has one environment for both).
            for (key, value) in &src.env {
                if !self.repo.env.contains_key(key) {
                    cmd = cmd.secret_env(key, value.expose());
                }
            }
        }
        cmd = cmd.secret_env("RESTIC_REPOSITORY", &self.repo.url);
        cmd = match &self.repo.password {
            RepositoryPassword::File(path) => cmd.env("RESTIC_PASSWORD_FILE", path),
            RepositoryPassword::Command(command) => cmd.env("RESTIC_PASSWORD_COMMAND", command),
        };
        for (key, value) in &self.repo.env {
            cmd = cmd.secret_env(key, value.expose());
        }
        // Read at each command, never kept in the config: a rotated secret is picked up.
        // check_sources has already said which file cannot be read.
        for (key, value) in self.file_env() {
            cmd = cmd.secret_env(&key, value.expose());
        }
        if matches!(args[0].as_str(), "prune" | "check" | "restore") {
            // Progress lines every 5 s on a pipe too: they show the command is getting on.
            cmd = cmd.env("RESTIC_PROGRESS_FPS", "0.2");
        }
        let mut full = Vec::with_capacity(args.len() + 6);
        full.push(args[0].clone());
        if let Some(wait) = retry_lock.filter(|_| self.binary.version.has_retry_lock()) {
            full.push("--retry-lock".into());
            // Whole seconds, rounded up: restic waits at least what is left of lock_wait.
            full.push(format!("{}s", wait.as_millis().div_ceil(1000).max(1)));
        }
        if self.binary.version.has_stuck_request_timeout() {
            // restic retries a request that got stuck well before resticpilot gives up.
            full.push("--stuck-request-timeout".into());
            full.push(format!(
                "{}s",
                (self.repo.stall_timeout / 2).as_secs().max(1)
            ));
        }
        if let Some(sftp) = &self.repo.sftp
            && let Some(command) = sftp::command(
                sftp,
                &self.repo.url,
                self.repo.stall_timeout + Duration::from_secs(30),
            )
        {
            full.push("-o".into());
            full.push(format!("sftp.command={command}"));
        }
        full.extend(args::global_options(&self.options, &args[0]));
        if from.is_some() && args[0] == "init" {
            full.push("--copy-chunker-params".into());
        }
        full.extend(args[1..].iter().cloned());
        cmd.args(full)
    }

    /// The bounds of one command: the repository's stall timeout, and the deadline of the
    /// phase it belongs to.
    fn limits(&self, verb: &str) -> Limits {
        let deadline = match verb {
            "cat" | "init" | "unlock" | "list" | "snapshots" | "key" => {
                Some((self.repo.open_timeout, "open_timeout"))
            }
            "backup" | "copy" => Some((self.timeouts.backup, "backup_timeout")),
            "forget" | "prune" => Some((self.timeouts.retention, "retention_timeout")),
            "check" => Some((self.timeouts.check, "check_timeout")),
            // restore, dump, ls: as long as they get on (a restore of a large database takes
            // what it takes).
            _ => None,
        };
        Limits {
            stall: self.repo.stall_timeout,
            deadline,
            lock_wait: self.timeouts.lock_wait,
        }
    }

    /// The values of the repository's `env_files` that can be read (a trailing newline, as
    /// `echo` and Docker secrets leave one, is not part of the value).
    fn file_env(&self) -> Vec<(String, Secret)> {
        self.repo
            .env_files
            .iter()
            .filter_map(|(key, path)| {
                let text = std::fs::read_to_string(path).ok()?;
                Some((
                    key.clone(),
                    Secret::new(text.trim_end_matches(['\n', '\r'])),
                ))
            })
            .collect()
    }

    /// Checks the files restic will need before restic reports a vaguer error.
    fn check_sources(&self) -> Result<(), ResticError> {
        for (name, path) in &self.repo.env_files {
            if let Err(err) = std::fs::read_to_string(path) {
                return Err(ResticError::EnvFile {
                    repo: self.repo.name.clone(),
                    name: name.clone(),
                    path: path.display().to_string(),
                    detail: err.to_string(),
                });
            }
        }
        if let RepositoryPassword::File(path) = &self.repo.password
            && let Err(err) = std::fs::File::open(path)
        {
            return Err(ResticError::PasswordFile {
                repo: self.repo.name.clone(),
                path: path.display().to_string(),
                detail: err.to_string(),
            });
        }
        if let Some(Sftp::Keys(keys)) = &self.repo.sftp {
            for (key, path) in [
                ("identity_file", &keys.identity_file),
                ("known_hosts_file", &keys.known_hosts_file),
            ] {
                if let Some(path) = path
                    && let Err(err) = std::fs::File::open(path)
                {
                    return Err(ResticError::SftpFile {
                        repo: self.repo.name.clone(),
                        key,
                        path: path.display().to_string(),
                        detail: err.to_string(),
                    });
                }
            }
        }
        Ok(())
    }

    /// `text` with every backend secret (the repository's env values, a password in its URL)
    /// masked.
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        let file_env = self.file_env();
        let mut secrets: Vec<&str> = self
            .repo
            .env
            .values()
            .chain(file_env.iter().map(|(_, v)| v))
            .map(|v| v.expose())
            .filter(|v| v.len() >= 4)
            .collect();
        if let Some(pw) = url_password(&self.repo.url) {
            secrets.push(pw);
        }
        for secret in secrets {
            out = out.replace(secret, "***");
        }
        out
    }

    /// Runs `args` once, under a watch, handing stdout lines to `on_line`.
    fn exec(
        &self,
        args: &[String],
        retry_lock: Option<Duration>,
        on_line: &mut dyn FnMut(&str),
    ) -> Result<(Output, Arc<ResticWatch>), ResticError> {
        let watch = Arc::new(ResticWatch::new(self.limits(&args[0])));
        let cmd = self.command(args, retry_lock).watch(watch.clone());
        tracing::debug!(command = %cmd, "restic");
        let out = cmd.output_lines(|line| {
            watch.on_stdout(line);
            on_line(line)
        })?;
        self.log_stderr(&args[0], &out);
        Ok((out, watch))
    }

    /// restic's whole stderr goes to the debug log (secrets masked); errors keep a summary.
    fn log_stderr(&self, verb: &str, out: &Output) {
        if !out.stderr.trim().is_empty() {
            tracing::debug!(
                "restic {verb} ({}) stderr:\n{}",
                describe_status(out.status),
                self.redact(out.stderr.trim_end())
            );
        }
    }

    /// Runs `args`, waiting up to `lock_wait` while the repository is locked by someone else
    /// (stale locks are removed first), and maps failures to named errors. `on_line` sees
    /// every stdout line.
    ///
    /// Returns the output and whether restic reported an incomplete snapshot (exit 3).
    fn run(
        &self,
        args: &[String],
        mut on_line: impl FnMut(&str),
    ) -> Result<(Output, bool), ResticError> {
        self.check_sources()?;
        let verb = args[0].clone();
        // The lock wait starts once stale locks are gone.
        let mut start = Instant::now();
        let mut cleared = false;
        let mut pause = Duration::from_secs(1);
        let mut retry_lock = None;
        loop {
            let (out, watch) = self.exec(args, retry_lock, &mut on_line)?;
            if let Some(stop) = watch.stopped() {
                return Err(self.stop_error(stop, &verb, &out, &watch));
            }
            match exit::classify(out.status, &out.stderr) {
                Outcome::Success => return Ok((out, false)),
                Outcome::Incomplete => return Ok((out, true)),
                Outcome::Locked => {
                    if !cleared {
                        cleared = true;
                        tracing::info!(
                            repository = %self.repo.name,
                            "restic {verb}: the repository is locked; removing stale locks before waiting"
                        );
                        if let Err(e) = self.remove_stale_locks() {
                            tracing::warn!(repository = %self.repo.name, "could not remove stale locks: {e}");
                        }
                        start = Instant::now();
                        continue;
                    }
                    let remaining = self.timeouts.lock_wait.saturating_sub(start.elapsed());
                    if remaining.is_zero() || retry_lock.is_some() {
                        // Waited all of lock_wait (restic's own wait counts whole seconds).
                        return Err(self.locked_error(&out, self.timeouts.lock_wait));
                    }
                    if self.binary.version.has_retry_lock() {
                        tracing::info!(
                            repository = %self.repo.name,
                            "restic {verb}: the repository is locked by another process; retrying for up to {} (restic --retry-lock)",
                            show_duration(remaining)
                        );
                        retry_lock = Some(remaining);
                    } else {
                        let nap = pause.min(remaining);
                        tracing::info!(
                            repository = %self.repo.name,
                            "restic {verb}: the repository is locked by another process; retrying in {} (waiting up to {} more)",
                            show_duration(nap),
                            show_duration(remaining)
                        );
                        sleep_unless_stopping(nap);
                        crate::signals::check(&format!("restic {verb}"))
                            .map_err(|e| ProcessError::ShuttingDown { program: e.0 })?;
                        pause = (pause * 2).min(Duration::from_secs(30));
                    }
                }
                outcome => return Err(self.error(outcome, &verb, &out)),
            }
        }
    }

    /// The error for a command the watch stopped.
    fn stop_error(&self, stop: Stop, verb: &str, out: &Output, watch: &ResticWatch) -> ResticError {
        let repo = self.repo.name.clone();
        let url = self.url();
        match stop {
            Stop::Stalled { waited, last_error } => {
                let (retries, _) = watch.retries();
                let detail = match last_error {
                    Some(e) => format!(
                        " (restic retried {retries} failed requests; the last: {})",
                        shorten(&self.redact(e.trim()))
                    ),
                    None => String::new(),
                };
                // The moment restic is stopped; the error that follows is printed at the end.
                tracing::warn!(
                    repository = %repo,
                    "the server of repository {repo} stopped answering: restic {verb} made no progress for {}",
                    show_duration(waited)
                );
                if let (_, Some(last)) = watch.retries()
                    && exit::is_unreachable(&last)
                {
                    // Retrying a server that refuses connections: it is down, not slow.
                    return ResticError::Unreachable {
                        repo,
                        url,
                        detail: format!(
                            "the server stopped answering: no progress for {}{detail}",
                            show_duration(waited)
                        ),
                    };
                }
                ResticError::Stalled {
                    verb: verb.into(),
                    repo,
                    url,
                    waited: show_duration(waited),
                    detail,
                }
            }
            Stop::Deadline { after, key } => ResticError::Deadline {
                verb: verb.into(),
                repo,
                url,
                after: show_duration(after),
                key,
            },
            Stop::Hopeless { outcome, line } => {
                let mut out = Output {
                    status: out.status,
                    stdout: Vec::new(),
                    stderr: format!("{}\nFatal: {line}", out.stderr),
                };
                if !out.stderr.contains(&line) {
                    out.stderr.push('\n');
                }
                self.error(outcome, verb, &out)
            }
            Stop::Shutdown { waited } => ResticError::Interrupted {
                verb: verb.into(),
                repo,
                how: format!(
                    "stopped at shutdown: it made no progress for {}",
                    show_duration(waited)
                ),
            },
        }
    }

    fn error(&self, outcome: Outcome, verb: &str, out: &Output) -> ResticError {
        let repo = self.repo.name.clone();
        let url = self.url();
        let mut detail = self.redact(&summarize_stderr(&out.stderr));
        if crate::signals::terminating() {
            // The shutdown stopped restic (SIGINT): what it printed ("context canceled",
            // "unable to open config file") is the interruption, not the repository's state.
            return ResticError::Interrupted {
                verb: verb.into(),
                repo,
                how: format!("stopped at shutdown; restic said: {}", shorten(&detail)),
            };
        }
        let mut outcome = outcome;
        if outcome == Outcome::Unreachable
            && out.stderr.contains("unable to start the sftp session")
            && !out.stderr.contains("subprocess ssh:")
            && let Some(ssh) = self.probe_ssh()
        {
            // restic exited before it printed why ssh failed: ask ssh.
            if let Some(o) = exit::backend_refusal(&ssh) {
                outcome = o;
            }
            detail = format!("ssh: {}; {detail}", shorten(ssh.trim()));
        }
        match outcome {
            Outcome::WrongPassword => ResticError::WrongPassword { repo, url },
            Outcome::NoRepository => ResticError::NoRepository { repo, url },
            Outcome::Unreachable => ResticError::Unreachable { repo, url, detail },
            Outcome::CredentialsRefused => ResticError::CredentialsRefused {
                fix: credentials_fix(&self.repo.url),
                repo,
                url,
                detail,
            },
            Outcome::HostKeyUnknown | Outcome::HostKeyChanged => {
                let hint = sftp::keyscan_hint(&self.repo.url, self.repo.sftp.as_ref())
                    .unwrap_or_else(|| "ssh-keyscan HOST >> ~/.ssh/known_hosts".into());
                if outcome == Outcome::HostKeyUnknown {
                    ResticError::HostKeyUnknown {
                        repo,
                        url,
                        detail,
                        hint,
                    }
                } else {
                    ResticError::HostKeyChanged {
                        repo,
                        url,
                        detail,
                        hint,
                    }
                }
            }
            Outcome::Locked => self.locked_error(out, Duration::ZERO),
            Outcome::Interrupted => ResticError::Interrupted {
                verb: verb.into(),
                repo,
                how: describe_status(out.status),
            },
            Outcome::Success | Outcome::Incomplete | Outcome::Failed => ResticError::Failed {
                verb: verb.into(),
                repo,
                how: describe_status(out.status),
                detail,
            },
        }
    }

    /// Runs the sftp repository's ssh command with stdin closed and returns what ssh said
    /// (its stderr), when it said anything.
    fn probe_ssh(&self) -> Option<String> {
        let timeout = self.repo.stall_timeout + Duration::from_secs(30);
        let words = sftp::probe(self.repo.sftp.as_ref(), &self.repo.url, timeout)?;
        let (program, args) = words.split_first()?;
        let watch = Arc::new(ResticWatch::new(Limits {
            stall: self.repo.stall_timeout,
            deadline: Some((timeout, "stall_timeout")),
            lock_wait: Duration::ZERO,
        }));
        let cmd = Cmd::new(program).args(args).watch(watch);
        tracing::debug!(command = %cmd, "asking ssh why restic could not start its sftp session");
        let out = cmd.output().ok()?;
        let said: Vec<&str> = out
            .stderr
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        (!said.is_empty()).then(|| said.join("; "))
    }

    /// The error for a lock that did not go away, naming whose locks are in the way.
    fn locked_error(&self, out: &Output, waited: Duration) -> ResticError {
        let locks = self.locks().unwrap_or_default();
        let detail = if locks.is_empty() {
            self.redact(&summarize_stderr(&out.stderr))
        } else {
            let mut text = locks
                .iter()
                .map(LockInfo::describe)
                .collect::<Vec<_>>()
                .join("; ");
            let here = crate::config::local_hostname();
            if locks.iter().any(|l| l.hostname != here) {
                text.push_str(&format!(
                    "; restic treats a lock of another host name than this one ({here}) as live until it is 30 minutes old: if that host was a container of this service that is gone, give the container a fixed host name (compose `hostname:`)"
                ));
            }
            text
        };
        ResticError::Locked {
            repo: self.repo.name.clone(),
            waited: show_duration(waited),
            detail,
        }
    }

    /// Runs a short command without waiting for locks: unlock, list, cat lock.
    fn run_once(&self, args: &[String]) -> Result<Output, ResticError> {
        self.check_sources()?;
        let (out, watch) = self.exec(args, None, &mut |_| {})?;
        if let Some(stop) = watch.stopped() {
            return Err(self.stop_error(stop, &args[0], &out, &watch));
        }
        match exit::classify(out.status, &out.stderr) {
            Outcome::Success => Ok(out),
            outcome => Err(self.error(outcome, &args[0], &out)),
        }
    }

    /// The repository's locks, described (`restic list locks`, then `restic cat lock` each;
    /// at most 20).
    ///
    /// Fails when restic cannot list them.
    pub fn locks(&self) -> Result<Vec<LockInfo>, ResticError> {
        let mut ids = Vec::new();
        self.check_sources()?;
        let (out, watch) = self.exec(&args::list_locks(), None, &mut |line| {
            let id = line.trim();
            if !id.is_empty() && id.chars().all(|c| c.is_ascii_hexdigit()) {
                ids.push(id.to_string());
            }
        })?;
        if let Some(stop) = watch.stopped() {
            return Err(self.stop_error(stop, "list", &out, &watch));
        }
        if let o @ (Outcome::Failed
        | Outcome::Unreachable
        | Outcome::NoRepository
        | Outcome::WrongPassword
        | Outcome::CredentialsRefused
        | Outcome::Interrupted) = exit::classify(out.status, &out.stderr)
        {
            return Err(self.error(o, "list", &out));
        }
        let mut locks = Vec::new();
        for id in ids.into_iter().take(20) {
            let mut text = String::new();
            // A lock removed meanwhile is simply gone.
            if self
                .exec(&args::cat_lock(&id), None, &mut |l| {
                    text.push_str(l);
                    text.push('\n');
                })
                .is_ok_and(|(o, w)| o.status.success() && w.stopped().is_none())
                && let Ok(mut lock) = serde_json::from_str::<LockInfo>(text.trim())
            {
                lock.id = id;
                locks.push(lock);
            }
        }
        Ok(locks)
    }

    /// Removes stale locks before a run waits on them, and logs whose locks remain.
    ///
    /// First `restic unlock` (restic's own rules: locks of this host name whose process is
    /// gone, and locks older than 30 minutes). Then resticpilot's one addition: a lock of this
    /// host name whose pid now belongs to a program that is not restic (the pid was reused,
    /// as happens in a recreated container with the same host name) is stale too. Such locks
    /// can be removed only with `restic unlock --remove-all`, so that runs only when every lock
    /// left is one of them; otherwise they are left for restic's 30-minute rule.
    ///
    /// Fails when restic cannot unlock or list the locks.
    pub fn remove_stale_locks(&self) -> Result<StaleLocks, ResticError> {
        let mut report = StaleLocks::default();
        let before = self.locks()?;
        if before.is_empty() {
            tracing::info!(repository = %self.repo.name, "no locks in the repository");
            return Ok(report);
        }
        let here = crate::config::local_hostname();
        self.run_once(&args::unlock(false))?;
        let locks = self.locks()?;
        for gone in before
            .iter()
            .filter(|b| !locks.iter().any(|l| l.id == b.id))
        {
            // A lock that restic's rules could not call stale was released by its owner
            // between the two listings (another host's backup ending): not ours to report.
            if gone.restic_may_unlock(&here, chrono::Utc::now(), |pid| {
                is_live_restic(pid, &self.binary.path)
            }) {
                tracing::info!(
                    repository = %self.repo.name,
                    "restic unlock removed a stale {}",
                    gone.describe()
                );
                report.removed.push(gone.describe());
            } else {
                tracing::debug!(
                    repository = %self.repo.name,
                    "released by its owner meanwhile: {}",
                    gone.describe()
                );
            }
        }
        let dead: Vec<&LockInfo> = locks
            .iter()
            .filter(|l| l.hostname == here && !is_live_restic(l.pid, &self.binary.path))
            .collect();
        if !locks.is_empty() && dead.len() == locks.len() {
            for l in &dead {
                tracing::warn!(
                    repository = %self.repo.name,
                    "removing a stale {}: no restic process has that pid on this host",
                    l.describe()
                );
                report.removed.push(l.describe());
            }
            self.run_once(&args::unlock(true))?;
        } else {
            for l in &locks {
                tracing::info!(repository = %self.repo.name, "repository lock in the way: {}", l.describe());
                report.remaining.push(l.describe());
            }
        }
        Ok(report)
    }

    /// Makes sure the repository exists and opens with the password; creates it when it does
    /// not exist and the config says `init: true`.
    ///
    /// Fails with a named error for a wrong password, a missing repository (without `init`),
    /// refused credentials or an unreachable one.
    pub fn ensure_repository(&self) -> Result<(), ResticError> {
        match self.run(&["cat".into(), "config".into()], |_| {}) {
            Ok(_) => Ok(()),
            Err(ResticError::NoRepository { .. }) if self.repo.init => {
                let _held = self.lock_init()?;
                // Another run may have created it while this one waited for the lock.
                if self.run(&["cat".into(), "config".into()], |_| {}).is_ok() {
                    return Ok(());
                }
                tracing::info!(repository = %self.repo.name, url = %self.url(), "creating the repository (init: true)");
                self.run(&["init".into()], |_| {})?;
                Ok(())
            }
            Err(err) => Err(err),
        }
    }

    /// What [`ensure_repository`](Self::ensure_repository) proves, in the same restic call that
    /// lists one profile's snapshots (oldest first; none for a repository just created): a
    /// backup opens the repository once before its dumps instead of twice. The listing takes
    /// no repository lock, as `cat config` takes none.
    ///
    /// Fails as `ensure_repository` does.
    pub fn open_and_list(
        &self,
        host: &str,
        profile_tag: &str,
    ) -> Result<Vec<Snapshot>, ResticError> {
        let mut args = args::snapshots(host, profile_tag);
        args.push("--no-lock".into());
        match self.run_json(&args) {
            Err(ResticError::NoRepository { .. }) if self.repo.init => {
                self.ensure_repository()?;
                Ok(Vec::new())
            }
            other => other,
        }
    }

    /// Checks the profile's restic knobs against this restic and this repository before
    /// anything is dumped; returns warnings for knobs that will have no effect.
    ///
    /// Fails when a knob needs a newer restic, or when the repository's config can't be read.
    pub fn check_options(&self) -> Result<Vec<String>, ResticError> {
        if self.options.read_concurrency.is_some() && !self.binary.version.has_read_concurrency() {
            return Err(ResticError::Unsupported {
                key: "restic.read_concurrency",
                needs: "0.15",
                found: self.binary.version,
            });
        }
        let mut warnings = Vec::new();
        if let Some(c) = self.options.compression.as_deref().filter(|c| *c != "auto") {
            #[derive(serde::Deserialize)]
            struct RepoConfig {
                version: u32,
            }
            let config: RepoConfig = self.run_json(&["cat".into(), "config".into()])?;
            if config.version < 2 {
                // restic takes --compression on such a repository and stores packs as ever.
                warnings.push(format!(
                    "restic.compression {c} has no effect: repository {} has format version {}, and compression needs version 2 (upgrade it with `restic migrate upgrade_repo_v2`)",
                    self.repo.name, config.version
                ));
            }
        }
        Ok(warnings)
    }

    /// Waits for the init lock, when there is one; held until the returned file is dropped.
    fn lock_init(&self) -> Result<Option<std::fs::File>, ResticError> {
        let Some(path) = &self.init_lock else {
            return Ok(None);
        };
        let fail = |e: std::io::Error| ResticError::InitLock {
            repo: self.repo.name.clone(),
            path: path.display().to_string(),
            detail: e.to_string(),
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(fail)?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(fail)?;
        file.lock().map_err(fail)?;
        Ok(Some(file))
    }

    /// Takes one snapshot. `progress` sees restic's status messages.
    ///
    /// Fails when restic fails or makes no summary; a snapshot with unreadable files is a
    /// success with [`BackupOutcome::unreadable`] filled.
    pub fn backup(
        &self,
        req: &BackupArgs,
        mut progress: impl FnMut(&json::BackupStatus),
    ) -> Result<BackupOutcome, ResticError> {
        if self.options.read_concurrency.is_some() && !self.binary.version.has_read_concurrency() {
            return Err(ResticError::Unsupported {
                key: "restic.read_concurrency",
                needs: "0.15",
                found: self.binary.version,
            });
        }
        let mut summary = None;
        let mut unreadable = Vec::new();
        let (out, incomplete) =
            self.run(
                &args::backup_with(req, &self.options),
                |line| match serde_json::from_str::<json::BackupMessage>(line) {
                    Ok(json::BackupMessage::Summary(s)) => summary = Some(s),
                    Ok(json::BackupMessage::Error(e)) => unreadable.push(e.describe()),
                    Ok(json::BackupMessage::Status(s)) => progress(&s),
                    Ok(json::BackupMessage::Other) | Err(_) => {}
                },
            )?;
        if incomplete && unreadable.is_empty() {
            // Older restic versions report some read errors as text on stderr, not JSON.
            unreadable.extend(
                out.stderr
                    .lines()
                    .filter_map(|l| l.strip_prefix("error: "))
                    .map(str::to_string),
            );
            if unreadable.is_empty() {
                unreadable.push(summarize_stderr(&out.stderr));
            }
        }
        let summary = summary.ok_or_else(|| ResticError::Parse {
            verb: "backup".into(),
            detail: "no summary message in its --json output".into(),
        })?;
        // restic 0.14 reports the short id, 0.17 and later the full one: the run resolves a
        // short one against the repository's listing (`run::full_snapshot_id`).
        Ok(BackupOutcome {
            summary,
            unreadable,
        })
    }

    /// The snapshots of one profile on one host, oldest first.
    ///
    /// Fails when restic fails or its output is not the expected JSON.
    pub fn snapshots(&self, host: &str, profile_tag: &str) -> Result<Vec<Snapshot>, ResticError> {
        self.run_json(&args::snapshots(host, profile_tag))
    }

    /// The snapshots of one profile on any host, oldest first.
    ///
    /// Fails when restic fails or its output is not the expected JSON.
    pub fn snapshots_any_host(&self, profile_tag: &str) -> Result<Vec<Snapshot>, ResticError> {
        self.run_json(&args::snapshots_any_host(profile_tag))
    }

    /// Runs `args` and parses all of stdout as one JSON document.
    fn run_json<T: serde::de::DeserializeOwned>(&self, args: &[String]) -> Result<T, ResticError> {
        let mut stdout = String::new();
        self.run(args, |line| {
            stdout.push_str(line);
            stdout.push('\n');
        })?;
        parse_json(&stdout, &args[0])
    }

    /// Applies retention to one profile's snapshots; returns restic's keep/remove groups.
    ///
    /// Fails when restic fails or its output is not the expected JSON.
    pub fn forget(
        &self,
        host: &str,
        profile_tag: &str,
        retention: &crate::config::Retention,
        dry_run: bool,
    ) -> Result<Vec<ForgetGroup>, ResticError> {
        let mut stdout = String::new();
        self.run(
            &args::forget(host, profile_tag, retention, dry_run),
            |line| {
                // forget prints JSON on one line; other lines are progress text.
                if line.starts_with("[{") || line.starts_with('{') || line == "[]" {
                    stdout.push_str(line);
                    stdout.push('\n');
                }
            },
        )?;
        if stdout.trim().is_empty() {
            return Ok(Vec::new());
        }
        parse_json(&stdout, "forget")
    }

    /// Removes unreferenced data from the repository.
    ///
    /// Fails when restic fails.
    pub fn prune(&self) -> Result<(), ResticError> {
        self.run(&["prune".into()], |line| {
            tracing::debug!("restic prune: {line}")
        })?;
        Ok(())
    }

    /// Checks the repository's structure and, with `subset`, reads that part of the data.
    /// Returns restic's report (its stdout lines).
    ///
    /// Fails when restic finds errors or cannot run; the error carries restic's findings.
    pub fn check(&self, subset: Option<&str>) -> Result<Vec<String>, ResticError> {
        let mut lines = Vec::new();
        let result = self.run(&args::check(subset), |line| {
            tracing::debug!("restic check: {line}");
            lines.push(line.to_string());
        });
        match result {
            Ok(_) => Ok(lines),
            Err(ResticError::Failed {
                verb,
                repo,
                how,
                detail,
            }) => {
                // check reports what it found on stdout; the stderr tail alone says little.
                let found: Vec<&str> = lines
                    .iter()
                    .map(|l| l.trim())
                    .filter(|l| l.contains("error") || l.contains("Fatal"))
                    .take(10)
                    .collect();
                let detail = if found.is_empty() {
                    detail
                } else {
                    format!("{detail}; {}", found.join("; "))
                };
                Err(ResticError::Failed {
                    verb,
                    repo,
                    how,
                    detail,
                })
            }
            Err(err) => Err(err),
        }
    }
}

/// How a [`Restic::dump_piped`] ended: restic's side and the consumer's.
#[derive(Debug)]
pub struct PipedDump {
    /// `Err` when restic failed (the consumer then saw a truncated stream).
    pub restic: Result<(), ResticError>,
    pub consumer: Output,
    /// The consumer stopped reading before the end (restic was stopped).
    pub consumer_quit_early: bool,
}

impl Restic {
    /// Restores `includes` (absolute paths in the snapshot) of `snapshot` under `target`, with
    /// restic's layout (`target` + the original absolute path).
    ///
    /// Fails when restic fails.
    pub fn restore(
        &self,
        snapshot: &str,
        target: &Path,
        includes: &[String],
        verify: bool,
    ) -> Result<(), ResticError> {
        self.run(&args::restore(snapshot, target, includes, verify), |line| {
            tracing::debug!("restic restore: {line}")
        })?;
        Ok(())
    }

    /// Lists `dirs` of `snapshot` (their direct children, or with `recursive` everything
    /// beneath), handing each node to `on_node` as restic prints it.
    ///
    /// Fails when restic fails or prints a line that is not `ls --json` output.
    pub fn ls(
        &self,
        snapshot: &str,
        dirs: &[String],
        recursive: bool,
        mut on_node: impl FnMut(LsLine),
    ) -> Result<(), ResticError> {
        let mut bad = None;
        self.run(&args::ls(snapshot, dirs, recursive), |line| {
            if line.trim().is_empty() || bad.is_some() {
                return;
            }
            match serde_json::from_str::<LsLine>(line) {
                Ok(l) if l.is_node() => on_node(l),
                Ok(_) => {}
                Err(e) => bad = Some(format!("{e} in {line:?}")),
            }
        })?;
        match bad {
            Some(detail) => Err(ResticError::Parse {
                verb: "ls".into(),
                detail,
            }),
            None => Ok(()),
        }
    }

    /// Adds `tag` to the snapshot `id` of one profile (`restic tag` rewrites it under a new
    /// id) and returns the new id, found among the profile's snapshots by its `original`.
    ///
    /// Fails when restic fails or the rewritten snapshot cannot be found.
    pub fn tag_add(
        &self,
        id: &str,
        tag: &str,
        host: &str,
        profile_tag: &str,
    ) -> Result<String, ResticError> {
        self.run(&args::tag_add(id, tag), |line| {
            tracing::debug!("restic tag: {line}")
        })?;
        let list = self.snapshots(host, profile_tag)?;
        list.iter()
            .find(|s| {
                s.original.as_deref().is_some_and(|o| o.starts_with(id))
                    && s.tags.iter().any(|t| t == tag)
            })
            .map(|s| s.id.clone())
            .ok_or_else(|| ResticError::Parse {
                verb: "tag".into(),
                detail: format!("no snapshot of the profile has original id {id} after tagging"),
            })
    }

    /// Streams the file `path` of `snapshot` into `sink` (memory stays flat).
    ///
    /// Fails when restic fails (for example the path is not in the snapshot) or `sink` refuses
    /// a write.
    pub fn dump(
        &self,
        snapshot: &str,
        path: &str,
        sink: &mut dyn Write,
    ) -> Result<(), ResticError> {
        self.check_sources()?;
        let args = args::dump(snapshot, path);
        let watch = Arc::new(ResticWatch::new(self.limits("dump")));
        let cmd = self.command(&args, None).watch(watch.clone());
        tracing::debug!(command = %cmd, "restic");
        let out = cmd.output_to_writer(sink)?;
        self.log_stderr("dump", &out);
        if let Some(stop) = watch.stopped() {
            return Err(self.stop_error(stop, "dump", &out, &watch));
        }
        match exit::classify(out.status, &out.stderr) {
            Outcome::Success => Ok(()),
            outcome => Err(self.error(outcome, "dump", &out)),
        }
    }

    /// Streams the file `path` of `snapshot` into `consumer`'s stdin, each line through
    /// `filter`. No retry on a locked repository: data may already have reached the consumer.
    /// restic is bounded by the stall timeout only while the consumer keeps up: time spent
    /// waiting for the consumer to read is not restic's stall.
    ///
    /// Fails when either program cannot be started; how each side ended is in the result.
    pub fn dump_piped(
        &self,
        snapshot: &str,
        path: &str,
        consumer: &Cmd,
        filter: &mut LineFilter<'_>,
    ) -> Result<PipedDump, ResticError> {
        self.check_sources()?;
        let args = args::dump(snapshot, path);
        let watch = Arc::new(ResticWatch::new(self.limits("dump")));
        let cmd = self.command(&args, None).watch(watch.clone());
        tracing::debug!(command = %cmd, consumer = %consumer, "restic dump |");
        let mut watched = |line: &[u8], out: &mut dyn Write| {
            watch.consumer_busy(true);
            let result = filter(line, out);
            watch.consumer_busy(false);
            result
        };
        let Piped {
            producer,
            consumer,
            consumer_quit_early,
        } = cmd.pipe_to(consumer, &mut watched)?;
        self.log_stderr("dump", &producer);
        let restic = match watch.stopped() {
            Some(stop) => Err(self.stop_error(stop, "dump", &producer, &watch)),
            None => match exit::classify(producer.status, &producer.stderr) {
                Outcome::Success => Ok(()),
                outcome => Err(self.error(outcome, "dump", &producer)),
            },
        };
        Ok(PipedDump {
            restic,
            consumer,
            consumer_quit_early,
        })
    }
}

/// Sleeps `d`, waking early when a shutdown stops work.
fn sleep_unless_stopping(d: Duration) {
    let until = Instant::now() + d;
    while Instant::now() < until && !crate::signals::terminating() {
        std::thread::sleep((until - Instant::now()).min(Duration::from_millis(200)));
    }
}

/// Whether `pid` on this machine is a running restic (`binary`, or any program named restic),
/// by its command name (`/proc/<pid>/comm`, which is readable where `exe` is not). A pid whose
/// name cannot be read counts as live.
fn is_live_restic(pid: u32, binary: &Path) -> bool {
    if pid == 0 {
        return false;
    }
    let proc = PathBuf::from(format!("/proc/{pid}"));
    if !proc.exists() {
        return false;
    }
    match std::fs::read_to_string(proc.join("comm")) {
        Ok(comm) => {
            let comm = comm.trim();
            // The kernel keeps the first 15 bytes of the name.
            let ours: String = binary
                .file_name()
                .map(|n| n.to_string_lossy().chars().take(15).collect())
                .unwrap_or_default();
            comm.starts_with("restic") || (!ours.is_empty() && comm == ours)
        }
        Err(_) => true,
    }
}

/// The password in a repository URL's `user:password@`, if any.
fn url_password(url: &str) -> Option<&str> {
    let rest = &url[url.find("://")? + 3..];
    let authority = &rest[..rest.find('/').unwrap_or(rest.len())];
    let userinfo = &authority[..authority.rfind('@')?];
    let (_, pw) = userinfo.split_once(':')?;
    (!pw.is_empty()).then_some(pw)
}

/// What to check when a server refuses the credentials, by backend.
fn credentials_fix(url: &str) -> String {
    if url.starts_with("s3:") {
        "check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the repository's env, and that the key may read and write the bucket".into()
    } else if url.starts_with("rest:") {
        "check the user and password in the rest: URL (or RESTIC_REST_USERNAME and RESTIC_REST_PASSWORD in the repository's env)".into()
    } else if url.starts_with("sftp:") {
        "check the key (the repository's sftp.identity_file), the user, and the server's authorized_keys for it".into()
    } else {
        "check the backend credentials in the repository's env".into()
    }
}

fn parse_json<T: serde::de::DeserializeOwned>(text: &str, verb: &str) -> Result<T, ResticError> {
    serde_json::from_str(text.trim()).map_err(|err| ResticError::Parse {
        verb: verb.into(),
        detail: err.to_string(),
    })
}

/// restic's stderr reduced to what an error message needs: ssh's own complaint (sftp), the
/// `Fatal:` line (else the last lines), and how many requests restic retried with the last
/// retry's reason. The whole text goes to the debug log; this stays short whatever restic
/// printed (a dead server makes restic print a retry line per request).
pub fn summarize_stderr(stderr: &str) -> String {
    let lines: Vec<&str> = stderr
        .lines()
        .map(|l| strip_escapes(l).trim())
        .filter(|l| !l.is_empty())
        .collect();
    let is_retry = |l: &&str| l.contains("retrying after") || l.contains("returned error");
    let retries: Vec<&str> = lines.iter().copied().filter(is_retry).collect();
    let mut parts: Vec<String> = Vec::new();
    for ssh in lines
        .iter()
        .filter_map(|l| l.strip_prefix("subprocess ssh: "))
        .take(2)
    {
        parts.push(format!("ssh: {}", shorten(ssh)));
    }
    // restic may print "Fatal:" right after an unterminated line.
    match lines
        .iter()
        .find_map(|l| l.find("Fatal: ").map(|i| &l[i + "Fatal: ".len()..]))
    {
        Some(fatal) => {
            // "There were 1811 errors" says nothing of what they were (a restore onto a full
            // disk: "ignoring error for PATH: write PATH: no space left on device"): the first
            // one, its end, where the reason is.
            if let Some(first) = lines.iter().find(|l| l.starts_with("ignoring error for ")) {
                parts.push(shorten_tail(first));
            }
            parts.push(shorten(fatal))
        }
        None => {
            let tail: Vec<&str> = lines
                .iter()
                .copied()
                .filter(|l| !is_retry(l) && !l.starts_with("subprocess ssh: "))
                .collect();
            for l in &tail[tail.len().saturating_sub(2)..] {
                parts.push(shorten(l));
            }
        }
    }
    if let Some(last) = retries.last() {
        parts.push(format!(
            "restic retried {} failed requests; the last: {}",
            retries.len(),
            shorten(last)
        ));
    }
    parts.dedup();
    parts.join("; ")
}

/// `line` cut to [`DETAIL_LINE_CHARS`] characters.
fn shorten(line: &str) -> String {
    if line.chars().count() <= DETAIL_LINE_CHARS {
        line.to_string()
    } else {
        let cut: String = line.chars().take(DETAIL_LINE_CHARS).collect();
        format!("{cut}...")
    }
}

/// `line` cut to its last [`DETAIL_LINE_CHARS`] characters (where a reason is, after paths).
fn shorten_tail(line: &str) -> String {
    let n = line.chars().count();
    if n <= DETAIL_LINE_CHARS {
        line.to_string()
    } else {
        let tail: String = line.chars().skip(n - DETAIL_LINE_CHARS).collect();
        format!("...{tail}")
    }
}

/// `line` without terminal escape sequences ("\x1b[2K" before restic's last words).
fn strip_escapes(line: &str) -> &str {
    let mut l = line;
    while let Some(rest) = l.strip_prefix('\u{1b}') {
        let end = rest
            .find(|c: char| c.is_ascii_alphabetic())
            .map_or(rest.len(), |i| i + 1);
        l = &rest[end..];
    }
    l
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_locks_restic_could_call_stale_are_reported_as_removed_by_unlock() {
        let now = chrono::Utc::now();
        let lock = |host: &str, age_s: i64| LockInfo {
            id: "0da700c7aa".into(),
            time: Some(now - chrono::TimeDelta::seconds(age_s)),
            exclusive: false,
            hostname: host.into(),
            username: "resticpilot".into(),
            pid: 27,
        };
        // Another host's fresh lock vanishing meanwhile was released by that host.
        assert!(!lock("fleet-h3", 8).restic_may_unlock("fleet-h1", now, |_| false));
        // This host's lock whose process is gone, and anyone's lock past 30 minutes: stale.
        assert!(lock("fleet-h1", 8).restic_may_unlock("fleet-h1", now, |_| false));
        assert!(!lock("fleet-h1", 8).restic_may_unlock("fleet-h1", now, |_| true));
        assert!(lock("fleet-h3", 31 * 60).restic_may_unlock("fleet-h1", now, |_| true));
    }

    #[test]
    fn version_parsing() {
        assert_eq!(
            Version::parse("restic 0.14.0 compiled with go1.19.8 on linux/amd64"),
            Some(Version(0, 14, 0))
        );
        assert_eq!(
            Version::parse("restic 0.16.4-dev (compiled manually) compiled with go1.21"),
            Some(Version(0, 16, 4))
        );
        assert_eq!(Version::parse("restic"), None);
        assert!(Version(0, 13, 1) < MIN_VERSION);
        assert!(!Version(0, 14, 0).has_retry_lock());
        assert!(Version(0, 17, 3).has_retry_lock());
    }

    #[test]
    fn stderr_summary_keeps_the_fatal_line_and_counts_retries() {
        let mut stderr = String::new();
        for i in 0..400 {
            stderr.push_str(&format!(
                "Save(<data/{i:04x}>) returned error, retrying after 1.{i}s: Post \"http://127.0.0.1:9/r/data/{i:04x}\": dial tcp 127.0.0.1:9: connect: connection refused\n"
            ));
        }
        stderr.push_str("\u{1b}[2KFatal: unable to save snapshot: dial tcp 127.0.0.1:9: connect: connection refused\n");
        let s = summarize_stderr(&stderr);
        assert!(s.len() < 700, "{} bytes: {s}", s.len());
        assert!(s.starts_with("unable to save snapshot: dial tcp"), "{s}");
        assert!(
            s.contains("restic retried 400 failed requests; the last: Save(<data/018f>)"),
            "{s}"
        );
    }

    #[test]
    fn stderr_summary_of_a_restore_says_what_its_errors_were() {
        // restic 0.14 and 0.18 restoring onto a full disk (their own words).
        let path = format!(
            "/srv/state/chains/p/{}/base-d6ecf4c5867aa91a.sqlite3",
            "d".repeat(150)
        );
        let line = format!(
            "ignoring error for {path}: write /mnt/small/.resticpilot-chain-x{path}: no space left on device\n"
        );
        let stderr = format!(
            "{}Summary: Restored 7 / 1 files/dirs (1.011 GiB / 1.011 GiB) in 0:01\nFatal: There were 1811 errors\n",
            line.repeat(3)
        );
        let s = summarize_stderr(&stderr);
        assert!(
            s.ends_with("no space left on device; There were 1811 errors"),
            "{s}"
        );
        assert!(crate::space::is_full_text(&s), "{s}");
        assert!(s.len() < 700, "{} bytes: {s}", s.len());
    }

    #[test]
    fn durations_read_like_config_values() {
        assert_eq!(show_duration(Duration::from_secs(30)), "30s");
        assert_eq!(show_duration(Duration::from_secs(150)), "2m30s");
        assert_eq!(show_duration(Duration::from_secs(3900)), "1h5m");
        assert_eq!(show_duration(Duration::from_millis(40)), "40ms");
        assert_eq!(url_password("rest:http://u:pa:ss@h:1/r"), Some("pa:ss"));
        assert_eq!(url_password("s3:https://h/b"), None);
    }
}
