//! Everything resticpilot knows about restic: finding the binary and checking its version,
//! the environment that carries the repository and password (never arguments), running
//! commands with a bounded wait on repository locks, mapping exit codes, and parsing `--json`.

pub mod args;
pub mod exit;
pub mod json;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::config::{Repository, RepositoryPassword, redact_url};
use crate::process::{Cmd, LineFilter, Output, Piped, ProcessError, StopSignal, describe_status};

pub use args::BackupArgs;
use exit::Outcome;
pub use json::{BackupSummary, ForgetGroup, LsLine, Snapshot};

/// The oldest restic resticpilot drives: `--json` backup summaries with snapshot ids.
pub const MIN_VERSION: Version = Version(0, 14, 0);

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
    #[error("repository {repo} stayed locked for {waited:?} by another restic process: {detail}")]
    Locked {
        repo: String,
        waited: Duration,
        detail: String,
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
    #[error("cannot lock {path} to create repository {repo}: {detail}")]
    InitLock {
        repo: String,
        path: String,
        detail: String,
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
        Ok(Binary { path, version })
    }
}

/// restic bound to one repository.
#[derive(Debug, Clone)]
pub struct Restic {
    binary: Binary,
    repo: Repository,
    lock_wait: Duration,
    /// A file locked while the repository is created, so two runs sharing it (two profiles,
    /// a daemon and a manual run) never both `restic init` it: concurrent inits of one
    /// repository leave keys that do not open its config.
    init_lock: Option<PathBuf>,
}

/// What a finished `restic backup` reported.
#[derive(Debug, Clone)]
pub struct BackupOutcome {
    pub summary: BackupSummary,
    /// Files restic could not read (exit 3: the snapshot exists without them).
    pub unreadable: Vec<String>,
}

impl Restic {
    pub fn new(binary: Binary, repo: Repository, lock_wait: Duration) -> Self {
        Restic {
            binary,
            repo,
            lock_wait,
            init_lock: None,
        }
    }

    /// Serialises repository creation through a lock on `path`.
    pub fn with_init_lock(mut self, path: PathBuf) -> Self {
        self.init_lock = Some(path);
        self
    }

    pub fn version(&self) -> Version {
        self.binary.version
    }

    /// The repository URL with credentials masked.
    pub fn url(&self) -> String {
        redact_url(&self.repo.url)
    }

    /// A restic command for this repository. The repository and password travel in the
    /// environment; inherited RESTIC_* variables that could override them are removed.
    pub fn command(&self, args: &[String]) -> Cmd {
        // restic removes its repository lock when interrupted (SIGINT); restic < 0.17 does
        // not catch SIGTERM and would leave the lock behind.
        let mut cmd = Cmd::new(&self.binary.path).stop_signal(StopSignal::Interrupt);
        for inherited in [
            "RESTIC_PASSWORD",
            "RESTIC_PASSWORD_FILE",
            "RESTIC_PASSWORD_COMMAND",
            "RESTIC_REPOSITORY_FILE",
        ] {
            cmd = cmd.env_remove(inherited);
        }
        cmd = cmd.secret_env("RESTIC_REPOSITORY", &self.repo.url);
        cmd = match &self.repo.password {
            RepositoryPassword::File(path) => cmd.env("RESTIC_PASSWORD_FILE", path),
            RepositoryPassword::Command(command) => cmd.env("RESTIC_PASSWORD_COMMAND", command),
        };
        for (key, value) in &self.repo.env {
            cmd = cmd.secret_env(key, value.expose());
        }
        let mut full = Vec::with_capacity(args.len() + 3);
        full.push(args[0].clone());
        if self.binary.version.has_retry_lock() && takes_lock(&args[0]) {
            full.push("--retry-lock".into());
            full.push(format!("{}s", self.lock_wait.as_secs()));
        }
        full.extend(args[1..].iter().cloned());
        cmd.args(full)
    }

    /// Checks the password file before restic reports a vaguer error.
    fn check_password_source(&self) -> Result<(), ResticError> {
        if let RepositoryPassword::File(path) = &self.repo.password
            && let Err(err) = std::fs::File::open(path)
        {
            return Err(ResticError::PasswordFile {
                repo: self.repo.name.clone(),
                path: path.display().to_string(),
                detail: err.to_string(),
            });
        }
        Ok(())
    }

    /// Runs `args`, retrying while the repository is locked by someone else (up to the lock
    /// wait, with a growing pause), and maps failure exits to named errors. `on_line` sees
    /// every stdout line of the last attempt.
    ///
    /// Returns the output and whether restic reported an incomplete snapshot (exit 3).
    fn run(
        &self,
        args: &[String],
        mut on_line: impl FnMut(&str),
    ) -> Result<(Output, bool), ResticError> {
        self.check_password_source()?;
        let verb = args[0].clone();
        let start = Instant::now();
        let mut pause = Duration::from_secs(1);
        loop {
            let cmd = self.command(args);
            tracing::debug!(command = %cmd, "restic");
            let out = cmd.output_lines(&mut on_line)?;
            match exit::classify(out.status, &out.stderr) {
                Outcome::Success => return Ok((out, false)),
                Outcome::Incomplete => return Ok((out, true)),
                Outcome::Locked
                    if !self.binary.version.has_retry_lock()
                        && start.elapsed() + pause <= self.lock_wait =>
                {
                    tracing::info!(
                        repository = %self.repo.name,
                        "repository is locked by another process; retrying in {pause:?}"
                    );
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_secs(30));
                }
                outcome => return Err(self.error(outcome, &verb, &out, start.elapsed())),
            }
        }
    }

    fn error(&self, outcome: Outcome, verb: &str, out: &Output, waited: Duration) -> ResticError {
        let repo = self.repo.name.clone();
        let url = self.url();
        let detail = clean_stderr(&out.stderr);
        match outcome {
            Outcome::WrongPassword => ResticError::WrongPassword { repo, url },
            Outcome::NoRepository => ResticError::NoRepository { repo, url },
            Outcome::Unreachable => ResticError::Unreachable { repo, url, detail },
            Outcome::Locked => ResticError::Locked {
                repo,
                waited,
                detail,
            },
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

    /// Makes sure the repository exists and opens with the password; creates it when it does
    /// not exist and the config says `init: true`.
    ///
    /// Fails with a named error for a wrong password, a missing repository (without `init`) or
    /// an unreachable one.
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
        let mut summary = None;
        let mut unreadable = Vec::new();
        let (out, incomplete) =
            self.run(&args::backup(req), |line| {
                match serde_json::from_str::<json::BackupMessage>(line) {
                    Ok(json::BackupMessage::Summary(s)) => summary = Some(s),
                    Ok(json::BackupMessage::Error(e)) => unreadable.push(e.describe()),
                    Ok(json::BackupMessage::Status(s)) => progress(&s),
                    Ok(json::BackupMessage::Other) | Err(_) => {}
                }
            })?;
        if incomplete && unreadable.is_empty() {
            // Older restic versions report some read errors as text on stderr, not JSON.
            unreadable.extend(
                out.stderr
                    .lines()
                    .filter_map(|l| l.strip_prefix("error: "))
                    .map(str::to_string),
            );
            if unreadable.is_empty() {
                unreadable.push(clean_stderr(&out.stderr));
            }
        }
        let summary = summary.ok_or_else(|| ResticError::Parse {
            verb: "backup".into(),
            detail: "no summary message in its --json output".into(),
        })?;
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
                if line.starts_with('[') || line.starts_with('{') {
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

    /// Removes stale locks: those whose process is gone on this host (restic's own rule also
    /// counts locks older than 30 minutes as stale). Live locks are left alone.
    ///
    /// Fails when restic fails.
    pub fn unlock(&self) -> Result<(), ResticError> {
        self.run(&args::unlock(), |line| {
            tracing::debug!("restic unlock: {line}")
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
        self.check_password_source()?;
        let cmd = self.command(&args::dump(snapshot, path));
        tracing::debug!(command = %cmd, "restic");
        let start = Instant::now();
        let out = cmd.output_to_writer(sink)?;
        match exit::classify(out.status, &out.stderr) {
            Outcome::Success => Ok(()),
            outcome => Err(self.error(outcome, "dump", &out, start.elapsed())),
        }
    }

    /// Streams the file `path` of `snapshot` into `consumer`'s stdin, each line through
    /// `filter`. No retry on a locked repository: data may already have reached the consumer.
    ///
    /// Fails when either program cannot be started; how each side ended is in the result.
    pub fn dump_piped(
        &self,
        snapshot: &str,
        path: &str,
        consumer: &Cmd,
        filter: &mut LineFilter<'_>,
    ) -> Result<PipedDump, ResticError> {
        self.check_password_source()?;
        let cmd = self.command(&args::dump(snapshot, path));
        tracing::debug!(command = %cmd, consumer = %consumer, "restic dump |");
        let start = Instant::now();
        let Piped {
            producer,
            consumer,
            consumer_quit_early,
        } = cmd.pipe_to(consumer, filter)?;
        let restic = match exit::classify(producer.status, &producer.stderr) {
            Outcome::Success => Ok(()),
            outcome => Err(self.error(outcome, "dump", &producer, start.elapsed())),
        };
        Ok(PipedDump {
            restic,
            consumer,
            consumer_quit_early,
        })
    }
}

/// Commands that take a repository lock (and so accept `--retry-lock` on restic >= 0.16).
fn takes_lock(verb: &str) -> bool {
    matches!(
        verb,
        "backup"
            | "forget"
            | "prune"
            | "check"
            | "restore"
            | "snapshots"
            | "dump"
            | "ls"
            | "cat"
            | "tag"
    )
}

fn parse_json<T: serde::de::DeserializeOwned>(text: &str, verb: &str) -> Result<T, ResticError> {
    serde_json::from_str(text.trim()).map_err(|err| ResticError::Parse {
        verb: verb.into(),
        detail: err.to_string(),
    })
}

/// restic's stderr reduced to its meaningful lines, for error messages.
fn clean_stderr(stderr: &str) -> String {
    let lines: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let text = lines.join("; ");
    text.strip_prefix("Fatal: ").unwrap_or(&text).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
