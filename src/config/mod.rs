//! Configuration in two phases: `raw` parses the YAML (serde only, unknown keys rejected,
//! positions kept), `resolve` here expands the environment, applies defaults and checks
//! everything that can be checked without running anything. The result is the plan the
//! commands execute; no command reads YAML.

mod expand;
pub mod raw;
mod staging;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_saphyr::{Location, Spanned};

use raw::{RawConfig, RawDatabase, RawProfile, RawRepository, RawSftp, S};

pub use expand::expand;

/// Where the config is read from when `-c` is not given and `RESTICPILOT_CONFIG` is unset.
pub const DEFAULT_CONFIG: &str = "/etc/resticpilot/config.yaml";
pub const DEFAULT_STATE_DIR: &str = "/var/lib/resticpilot";
/// Default for `lock_wait`: how long restic commands retry on a locked repository.
pub const DEFAULT_LOCK_WAIT: Duration = Duration::from_secs(120);
/// Default for a repository's `stall_timeout`: a restic command that shows no progress (no
/// network or disk i/o, no new output) this long is stopped.
pub const DEFAULT_STALL_TIMEOUT: Duration = Duration::from_secs(120);
/// Default for a repository's `open_timeout`: deadline of opening the repository and the other
/// short commands (init, snapshots, unlock, locks).
pub const DEFAULT_OPEN_TIMEOUT: Duration = Duration::from_secs(300);
/// Default for a profile's `backup_timeout`, `retention_timeout` and `check_timeout`.
pub const DEFAULT_PHASE_TIMEOUT: Duration = Duration::from_secs(24 * 3600);
/// Default for `maintenance.timeout`: how long Docker waits for a container to stop before
/// killing it.
pub const DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// The grace period when the config does not set `grace_period` (see `signals`).
pub const DEFAULT_GRACE_PERIOD: Duration = Duration::from_secs(60);
/// The longest file name most filesystems take (bytes).
pub const MAX_FILE_NAME: usize = 255;

/// One problem in a config file, with its position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    /// 1-based; 0 when the position is unknown.
    pub line: u64,
    pub column: u64,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file.display(), self.message)
        } else {
            write!(
                f,
                "{}:{}:{}: {}",
                self.file.display(),
                self.line,
                self.column,
                self.message
            )
        }
    }
}

/// Every problem found in a config file.
#[derive(Debug, Clone)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, err) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{err}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// The resolved configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub file: PathBuf,
    pub state_dir: PathBuf,
    pub restic_binary: Option<PathBuf>,
    pub repositories: BTreeMap<String, Repository>,
    pub profiles: BTreeMap<String, Profile>,
    pub daemon: DaemonSettings,
}

/// Top-level settings of the daemon and of shutdowns.
#[derive(Debug, Clone)]
pub struct DaemonSettings {
    /// Where `daemon` serves /healthz and /metrics; `--listen` overrides.
    pub listen: Option<std::net::SocketAddr>,
    /// How many profiles may run at once.
    pub max_concurrent: usize,
    /// How long running work may go on after SIGTERM/SIGINT (every command, not only `daemon`).
    pub grace_period: Duration,
    /// Where the Prometheus metrics are also written, after every run.
    pub metrics_file: Option<PathBuf>,
}

impl Default for DaemonSettings {
    fn default() -> Self {
        DaemonSettings {
            listen: None,
            max_concurrent: 1,
            grace_period: DEFAULT_GRACE_PERIOD,
            metrics_file: None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Repository {
    pub name: String,
    /// Any restic repository string. May hold credentials: printed only through [`redact_url`].
    pub url: String,
    pub password: RepositoryPassword,
    /// Backend credentials and settings passed to restic's environment; values are secret.
    pub env: BTreeMap<String, Secret>,
    pub init: bool,
    /// A restic command that shows no progress this long is stopped.
    pub stall_timeout: Duration,
    /// Deadline of opening the repository and the other short commands.
    pub open_timeout: Duration,
    /// How restic reaches an `sftp:` repository (`None`: restic's own ssh call).
    pub sftp: Option<Sftp>,
}

/// How restic's sftp backend starts ssh: from keys, or a whole command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sftp {
    Keys(SftpKeys),
    /// restic's `sftp.command`, as written.
    Command(String),
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SftpKeys {
    pub port: Option<u16>,
    pub user: Option<String>,
    pub identity_file: Option<PathBuf>,
    pub known_hosts_file: Option<PathBuf>,
    /// Extra `ssh -o` options, "Key=Value".
    pub options: Vec<String>,
}

#[derive(Debug, Clone)]
pub enum RepositoryPassword {
    File(PathBuf),
    Command(String),
}

#[derive(Debug, Clone)]
pub struct Profile {
    pub name: String,
    pub repository: String,
    pub host: String,
    /// Extra tags; `resticpilot` and `profile:<name>` are always added.
    pub tags: Vec<String>,
    pub staging_dir: PathBuf,
    pub databases: Vec<DatabaseSource>,
    pub paths: Vec<PathBuf>,
    pub exclude: Vec<String>,
    pub hooks: Hooks,
    pub retention: Option<Retention>,
    pub schedule: Option<String>,
    pub keep_staging_on_failure: bool,
    pub lock_wait: Duration,
    /// Deadlines of restic backup, of retention (forget, prune), of restic check.
    pub backup_timeout: Duration,
    pub retention_timeout: Duration,
    pub check_timeout: Duration,
    /// Containers stopped before the dumps and started after them.
    pub maintenance: Option<Maintenance>,
    /// Cron schedules of the other jobs the daemon runs (checked cron expressions).
    pub check_schedule: Option<String>,
    pub prune_schedule: Option<String>,
    pub verify_schedule: Option<String>,
    /// `restic check --read-data-subset` value.
    pub check_subset: Option<String>,
    /// IANA time zone of the schedules; `None`: the local zone (`TZ`, else /etc/localtime).
    pub timezone: Option<String>,
    /// Each scheduled run starts up to this much later, at random.
    pub jitter: Duration,
    pub catch_up: CatchUp,
    /// Health fails when the last success is older; `None`: twice the schedule's period.
    pub max_age: Option<Duration>,
    pub notify: Notify,
}

/// What the daemon does on start about a run missed while it was down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CatchUp {
    /// Run once at once.
    #[default]
    Once,
    Skip,
}

/// Where a profile's runs are reported.
#[derive(Debug, Clone, Default)]
pub struct Notify {
    /// healthchecks.io ping URL (start, success, fail). May hold a token: print via redact_url.
    pub healthchecks: Option<String>,
    /// JSON POST on failure (and on success with `webhook_on_success`).
    pub webhook: Option<String>,
    pub webhook_on_success: bool,
}

/// The maintenance window: containers stopped, in order, before the dumps and started again,
/// in reverse order, after them (also when a dump fails).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Maintenance {
    /// Container names or ids, in stop order.
    pub stop: Vec<String>,
    /// How long Docker waits for each container to stop before it kills it.
    pub timeout: Duration,
}

impl Profile {
    /// The tag that marks this profile's snapshots.
    pub fn profile_tag(&self) -> String {
        format!("profile:{}", self.name)
    }

    /// Every tag a snapshot of this profile carries.
    pub fn all_tags(&self) -> Vec<String> {
        let mut tags = vec!["resticpilot".to_string(), self.profile_tag()];
        tags.extend(self.tags.iter().cloned());
        tags
    }
}

/// One database of a profile: its name and its engine's resolved source.
#[derive(Debug, Clone)]
pub struct DatabaseSource {
    pub name: String,
    pub source: Arc<dyn crate::source::Source>,
}

impl DatabaseSource {
    /// The dump's file name inside the staging directory.
    pub fn dump_file_name(&self) -> String {
        format!("{}.{}", self.name, self.source.extension())
    }

    /// The engine's name: what the manifest records as the dump's `type`.
    pub fn type_name(&self) -> &'static str {
        self.source.engine().name()
    }
}

#[derive(Debug, Clone, Default)]
pub struct Hooks {
    pub before: Vec<String>,
    pub after: Vec<String>,
    pub on_failure: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Retention {
    pub keep_last: Option<u32>,
    pub keep_hourly: Option<u32>,
    pub keep_daily: Option<u32>,
    pub keep_weekly: Option<u32>,
    pub keep_monthly: Option<u32>,
    pub keep_yearly: Option<u32>,
    pub keep_within: Option<String>,
    pub prune: bool,
    /// Other hosts whose snapshots of this profile `prune` (the maintenance command) thins
    /// with these rules, each host's series separately.
    pub other_hosts: Vec<String>,
}

/// A value that must never be printed. `Debug` and `Display` show `<redacted>`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// A repository URL with any `user:password@` credentials masked, for logs and messages.
pub fn redact_url(url: &str) -> String {
    if let Some(scheme_end) = url.find("://") {
        let rest = &url[scheme_end + 3..];
        let authority_end = rest.find('/').unwrap_or(rest.len());
        if let Some(at) = rest[..authority_end].rfind('@') {
            let userinfo = &rest[..at];
            if let Some(colon) = userinfo.find(':') {
                return format!(
                    "{}://{}:***@{}",
                    &url[..scheme_end],
                    &userinfo[..colon],
                    &rest[at + 1..]
                );
            }
        }
    }
    url.to_string()
}

/// Reads and resolves the config file at `path` with the process environment.
///
/// Fails with every problem found (file, line, column, message) when the file cannot be read,
/// is not valid YAML, has unknown keys or values that don't check out.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let text = std::fs::read_to_string(path).map_err(|err| {
        ConfigErrors(vec![ConfigError {
            file: path.to_path_buf(),
            line: 0,
            column: 0,
            message: format!("cannot read config file: {err}"),
        }])
    })?;
    parse(
        path,
        &text,
        &|name| std::env::var(name).ok(),
        &local_hostname,
    )
}

/// Resolves config `text` as if read from `path`, with `env` for `${VAR}` expansion and
/// `hostname` for the default `host`.
///
/// Fails as [`load`] does.
pub fn parse(
    path: &Path,
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
    hostname: &dyn Fn() -> String,
) -> Result<Config, ConfigErrors> {
    let raw: RawConfig = serde_saphyr::from_str(text).map_err(|err| {
        let (line, column) = err
            .location()
            .map(|l| (l.line(), l.column()))
            .unwrap_or((0, 0));
        let message = err.without_snippet().to_string();
        // The plain message starts with "line L column C: " which our prefix already says.
        let message = match message.split_once(": ") {
            Some((head, rest)) if head.starts_with("line ") => rest.to_string(),
            _ => message,
        };
        ConfigErrors(vec![ConfigError {
            file: path.to_path_buf(),
            line,
            column,
            message: message.lines().next().unwrap_or_default().to_string(),
        }])
    })?;
    let base = path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let mut resolver = Resolver {
        file: path.to_path_buf(),
        base: if base.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            base
        },
        env,
        errors: Vec::new(),
    };
    let config = resolver.config(raw, hostname);
    if resolver.errors.is_empty() {
        Ok(config)
    } else {
        resolver.errors.sort_by_key(|e| (e.line, e.column));
        Err(ConfigErrors(resolver.errors))
    }
}

/// The machine's name, the default `host` of a profile.
pub fn local_hostname() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .map(|s| s.trim().to_string())
        .find(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

/// Resolves the raw config, collecting every problem with its position. Engines resolve
/// their sources' keys through its helpers (`source::Engine::resolve`).
pub struct Resolver<'a> {
    file: PathBuf,
    base: PathBuf,
    env: &'a dyn Fn(&str) -> Option<String>,
    errors: Vec<ConfigError>,
}

impl Resolver<'_> {
    /// The environment `${VAR}` is expanded from.
    pub fn env(&self) -> &dyn Fn(&str) -> Option<String> {
        self.env
    }

    pub fn error(&mut self, at: &Location, message: impl Into<String>) {
        self.errors.push(ConfigError {
            file: self.file.clone(),
            line: at.line(),
            column: at.column(),
            message: message.into(),
        });
    }

    /// The expanded value of `s`, or `None` after recording why not.
    pub fn string(&mut self, s: &S, key: &str) -> Option<String> {
        match expand(&s.value, self.env) {
            Ok(v) => Some(v),
            Err(msg) => {
                self.error(&s.referenced, format!("{key}: {msg}"));
                None
            }
        }
    }

    pub fn nonempty(&mut self, s: &S, key: &str) -> Option<String> {
        let v = self.string(s, key)?;
        if v.trim().is_empty() {
            self.error(&s.referenced, format!("{key} must not be empty"));
            return None;
        }
        Some(v)
    }

    /// An expanded path; relative paths are taken from the config file's directory.
    pub fn path(&mut self, s: &S, key: &str) -> Option<PathBuf> {
        let v = self.nonempty(s, key)?;
        let p = PathBuf::from(v);
        Some(if p.is_absolute() {
            p
        } else {
            self.base.join(p)
        })
    }

    fn config(&mut self, raw: RawConfig, hostname: &dyn Fn() -> String) -> Config {
        let state_dir = raw
            .state_dir
            .as_ref()
            .and_then(|s| self.path(s, "state_dir"))
            .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR));
        let restic_binary = raw
            .restic_binary
            .as_ref()
            .and_then(|s| self.path(s, "restic_binary"));
        if raw.profiles.is_empty() {
            self.errors.push(ConfigError {
                file: self.file.clone(),
                line: 0,
                column: 0,
                message: "no profiles: add at least one under `profiles:`".into(),
            });
        }
        let mut repositories = BTreeMap::new();
        for (name, repo) in &raw.repositories {
            if let Some(r) = self.repository(name, repo) {
                repositories.insert(name.clone(), r);
            }
        }
        let daemon = self.daemon_settings(&raw);
        let mut profiles = BTreeMap::new();
        for (name, profile) in &raw.profiles {
            // `${VAR}` works here too (the example stack picks its repository this way).
            let repository = self.string(
                &profile.value.repository,
                &format!("profiles.{name}.repository"),
            );
            if let Some(repository) = &repository
                && !raw.repositories.contains_key(repository)
            {
                let known: Vec<&str> = raw.repositories.keys().map(String::as_str).collect();
                let known = if known.is_empty() {
                    "none are defined under `repositories:`".to_string()
                } else {
                    format!("defined: {}", known.join(", "))
                };
                self.error(
                    &profile.value.repository.referenced,
                    format!("profile {name}: repository {repository:?} is not defined ({known})"),
                );
            }
            let mut p = self.profile(name, profile, &state_dir, hostname);
            if let Some(repository) = repository {
                p.repository = repository;
            }
            profiles.insert(name.clone(), p);
        }
        let config = Config {
            file: self.file.clone(),
            state_dir,
            restic_binary,
            repositories,
            profiles,
            daemon,
        };
        self.check_staging_dirs(&raw, &config);
        config
    }

    fn daemon_settings(&mut self, raw: &RawConfig) -> DaemonSettings {
        let mut d = DaemonSettings::default();
        if let Some(s) = &raw.listen
            && let Some(v) = self.nonempty(s, "listen")
        {
            match v.parse() {
                Ok(addr) => d.listen = Some(addr),
                Err(_) => self.error(
                    &s.referenced,
                    format!(
                        "listen {v:?} is not an address such as 127.0.0.1:9898 or 0.0.0.0:9898"
                    ),
                ),
            }
        }
        if let Some(n) = &raw.max_concurrent {
            if n.value == 0 {
                self.error(&n.referenced, "max_concurrent must be at least 1");
            } else {
                d.max_concurrent = n.value as usize;
            }
        }
        if let Some(g) = self.duration(raw.grace_period.as_ref(), "grace_period") {
            d.grace_period = g;
        }
        d.metrics_file = raw
            .metrics_file
            .as_ref()
            .and_then(|s| self.path(s, "metrics_file"));
        d
    }

    /// A duration such as 90s, 5m, 2h or 1d, or `None` after recording why not.
    pub fn duration(&mut self, s: Option<&S>, key: &str) -> Option<Duration> {
        let s = s?;
        let v = self.nonempty(s, key)?;
        let short = key.rsplit('.').next().unwrap_or(key);
        match parse_duration(&v) {
            Some(d) => Some(d),
            None => {
                self.error(
                    &s.referenced,
                    format!("{short} {v:?} is not a duration such as 30s, 5m, 1h or 2d"),
                );
                None
            }
        }
    }

    /// A checked cron expression, or `None` after recording why not.
    fn cron(&mut self, s: Option<&S>, key: &str) -> Option<String> {
        let s = s?;
        let v = self.nonempty(s, key)?;
        let short = key.rsplit('.').next().unwrap_or(key);
        match crate::schedule::check_expression(&v) {
            Ok(()) => Some(v),
            Err(why) => {
                self.error(&s.referenced, format!("{short} {v:?}: {why}"));
                None
            }
        }
    }

    fn notify(&mut self, profile: &str, n: &Spanned<raw::RawNotify>) -> Notify {
        let key = |k: &str| format!("profiles.{profile}.notify.{k}");
        let mut url = |s: &Option<S>, k: &str| -> Option<String> {
            let s = s.as_ref()?;
            let v = self.nonempty(s, &key(k))?;
            if v.starts_with("http://") || v.starts_with("https://") {
                Some(v)
            } else {
                self.error(
                    &s.referenced,
                    format!(
                        "notify.{k} {:?} must be an http:// or https:// URL",
                        redact_url(&v)
                    ),
                );
                None
            }
        };
        let healthchecks = url(&n.value.healthchecks, "healthchecks");
        let webhook = url(&n.value.webhook, "webhook");
        if n.value.webhook_on_success && n.value.webhook.is_none() {
            self.error(
                &n.referenced,
                format!("profile {profile}: notify.webhook_on_success needs notify.webhook"),
            );
        }
        Notify {
            healthchecks,
            webhook,
            webhook_on_success: n.value.webhook_on_success,
        }
    }

    fn repository(&mut self, name: &str, repo: &Spanned<RawRepository>) -> Option<Repository> {
        let at = &repo.referenced;
        let r = &repo.value;
        let url = self.nonempty(&r.url, &format!("repositories.{name}.url"));
        let password = match (&r.password_file, &r.password_command) {
            (Some(file), None) => self
                .path(file, &format!("repositories.{name}.password_file"))
                .map(RepositoryPassword::File),
            (None, Some(cmd)) => self
                .nonempty(cmd, &format!("repositories.{name}.password_command"))
                .map(RepositoryPassword::Command),
            (Some(_), Some(cmd)) => {
                self.error(
                    &cmd.referenced,
                    format!("repository {name}: set password_file or password_command, not both"),
                );
                None
            }
            (None, None) => {
                self.error(
                    at,
                    format!(
                        "repository {name}: needs password_file or password_command (restic repositories are always encrypted)"
                    ),
                );
                None
            }
        };
        let mut env = BTreeMap::new();
        for (key, value) in &r.env {
            if key.starts_with("RESTIC_PASSWORD") || key == "RESTIC_REPOSITORY" {
                self.error(
                    &value.referenced,
                    format!(
                        "repository {name}: env {key} is managed by resticpilot; use url / password_file / password_command"
                    ),
                );
                continue;
            }
            if let Some(v) = self.string(value, &format!("repositories.{name}.env.{key}")) {
                env.insert(key.clone(), Secret::new(v));
            }
        }
        let key = |k: &str| format!("repositories.{name}.{k}");
        let stall_timeout = self
            .duration(r.stall_timeout.as_ref(), &key("stall_timeout"))
            .unwrap_or(DEFAULT_STALL_TIMEOUT);
        let open_timeout = self
            .duration(r.open_timeout.as_ref(), &key("open_timeout"))
            .unwrap_or(DEFAULT_OPEN_TIMEOUT);
        for (k, s, d) in [
            ("stall_timeout", &r.stall_timeout, stall_timeout),
            ("open_timeout", &r.open_timeout, open_timeout),
        ] {
            if let Some(s) = s
                && d < Duration::from_secs(1)
            {
                self.error(&s.referenced, format!("{k} must be at least 1s"));
            }
        }
        let sftp = match &r.sftp {
            Some(s) => {
                let is_sftp = url.as_deref().is_some_and(|u| u.starts_with("sftp:"));
                if !is_sftp {
                    self.error(
                        &s.referenced,
                        format!("repository {name}: `sftp` applies to sftp: repositories, and url is not one"),
                    );
                }
                self.sftp(name, s, url.as_deref().unwrap_or_default())
            }
            None => None,
        };
        Some(Repository {
            name: name.to_string(),
            url: url?,
            password: password?,
            env,
            init: r.init,
            stall_timeout,
            open_timeout,
            sftp,
        })
    }

    fn sftp(&mut self, repo: &str, s: &Spanned<RawSftp>, url: &str) -> Option<Sftp> {
        let key = |k: &str| format!("repositories.{repo}.sftp.{k}");
        let r = &s.value;
        if let Some(cmd) = &r.command {
            let set: Vec<&str> = [
                ("port", r.port.is_some()),
                ("user", r.user.is_some()),
                ("identity_file", r.identity_file.is_some()),
                ("known_hosts_file", r.known_hosts_file.is_some()),
                ("options", !r.options.is_empty()),
            ]
            .iter()
            .filter(|k| k.1)
            .map(|k| k.0)
            .collect();
            if !set.is_empty() {
                self.error(
                    &cmd.referenced,
                    format!(
                        "repository {repo}: sftp.command is the whole ssh command; it cannot be combined with {}",
                        set.join(", ")
                    ),
                );
            }
            return self.nonempty(cmd, &key("command")).map(Sftp::Command);
        }
        let mut keys = SftpKeys {
            port: r.port.as_ref().map(|p| p.value),
            user: r.user.as_ref().and_then(|u| self.nonempty(u, &key("user"))),
            identity_file: r
                .identity_file
                .as_ref()
                .and_then(|p| self.path(p, &key("identity_file"))),
            known_hosts_file: r
                .known_hosts_file
                .as_ref()
                .and_then(|p| self.path(p, &key("known_hosts_file"))),
            options: Vec::new(),
        };
        if let Some(p) = &r.port
            && p.value == 0
        {
            self.error(&p.referenced, "sftp.port must be 1 to 65535");
        }
        for o in &r.options {
            let Some(opt) = self.nonempty(o, &key("options")) else {
                continue;
            };
            let well_formed = opt.split_once('=').is_some_and(|(k, v)| {
                !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric()) && !v.is_empty()
            });
            if !well_formed || opt.contains(['"', '\'', '\n']) {
                self.error(
                    &o.referenced,
                    format!("sftp option {opt:?} is not an ssh option such as ServerAliveInterval=15 (Key=Value, no quotes)"),
                );
            } else {
                keys.options.push(opt);
            }
        }
        let mut quoted_paths = vec![];
        if let Some(p) = &keys.identity_file {
            quoted_paths.push(("identity_file", p.clone(), &r.identity_file));
        }
        if let Some(p) = &keys.known_hosts_file {
            quoted_paths.push(("known_hosts_file", p.clone(), &r.known_hosts_file));
        }
        for (k, p, raw) in quoted_paths {
            if p.to_string_lossy().contains(['"', '\'', '\n']) {
                let at = raw.as_ref().map(|r| r.referenced).unwrap_or(s.referenced);
                self.error(
                    &at,
                    format!("sftp.{k} {} must not contain quotes", p.display()),
                );
            }
        }
        if let (Some(port), Some(target)) = (keys.port, crate::restic::sftp::Target::parse(url))
            && let Some(url_port) = target.port
            && url_port != port
        {
            self.error(
                &s.referenced,
                format!("repository {repo}: sftp.port {port} and the port {url_port} in the url disagree: set one"),
            );
        }
        Some(Sftp::Keys(keys))
    }

    fn profile(
        &mut self,
        name: &str,
        profile: &Spanned<RawProfile>,
        state_dir: &Path,
        hostname: &dyn Fn() -> String,
    ) -> Profile {
        let at = &profile.referenced;
        let p = &profile.value;
        if !is_safe_name(name) {
            self.error(
                at,
                format!("profile name {name:?} may use only letters, digits, '-', '_' and '.'"),
            );
        }
        let key = |k: &str| format!("profiles.{name}.{k}");
        let host = p
            .host
            .as_ref()
            .and_then(|h| self.nonempty(h, &key("host")))
            .unwrap_or_else(hostname);
        let mut tags = Vec::new();
        for t in &p.tags {
            if let Some(tag) = self.nonempty(t, &key("tags")) {
                if tag.contains(',') || tag.contains(char::is_whitespace) {
                    self.error(
                        &t.referenced,
                        format!("tag {tag:?} must not contain ',' or spaces"),
                    );
                } else if tag == "resticpilot"
                    || tag.starts_with("profile:")
                    || tag == crate::restic::args::INCOMPLETE_TAG
                {
                    self.error(
                        &t.referenced,
                        format!("tag {tag:?} is reserved: resticpilot adds it"),
                    );
                } else {
                    tags.push(tag);
                }
            }
        }
        let staging_dir = p
            .staging_dir
            .as_ref()
            .and_then(|s| self.path(s, &key("staging_dir")))
            .unwrap_or_else(|| state_dir.join("staging").join(name));
        let mut databases = Vec::new();
        let mut seen = BTreeSet::new();
        for db in &p.databases {
            if let Some(source) = self.database(name, db, state_dir) {
                if !seen.insert(source.name.clone()) {
                    self.error(
                        &db.value.name.referenced,
                        format!("profile {name}: two databases are named {:?}", source.name),
                    );
                }
                databases.push(source);
            }
        }
        let paths: Vec<PathBuf> = p
            .paths
            .iter()
            .filter_map(|s| self.path(s, &key("paths")))
            .collect();
        if p.databases.is_empty() && p.paths.is_empty() {
            self.error(
                at,
                format!("profile {name}: nothing to back up: add databases or paths"),
            );
        }
        let exclude = p
            .exclude
            .iter()
            .filter_map(|s| self.nonempty(s, &key("exclude")))
            .collect();
        let hooks = Hooks {
            before: self.commands(&p.hooks.before, &key("hooks.before")),
            after: self.commands(&p.hooks.after, &key("hooks.after")),
            on_failure: self.commands(&p.hooks.on_failure, &key("hooks.on_failure")),
        };
        let retention = p.retention.as_ref().and_then(|r| self.retention(name, r));
        let schedule = self.cron(p.schedule.as_ref(), &key("schedule"));
        let check_schedule = self.cron(p.check_schedule.as_ref(), &key("check_schedule"));
        let prune_schedule = self.cron(p.prune_schedule.as_ref(), &key("prune_schedule"));
        let verify_schedule = self.cron(p.verify_schedule.as_ref(), &key("verify_schedule"));
        let check_subset = p.check_subset.as_ref().and_then(|s| {
            let v = self.nonempty(s, &key("check_subset"))?;
            if crate::restic::args::is_read_data_subset(&v) {
                Some(v)
            } else {
                self.error(
                    &s.referenced,
                    format!("check_subset {v:?} is not a restic --read-data-subset such as 5%, 1/10 or 500M"),
                );
                None
            }
        });
        let timezone = p.timezone.as_ref().and_then(|s| {
            let v = self.nonempty(s, &key("timezone"))?;
            match crate::schedule::Zone::named(&v) {
                Ok(_) => Some(v),
                Err(why) => {
                    self.error(&s.referenced, why);
                    None
                }
            }
        });
        let jitter = self
            .duration(p.jitter.as_ref(), &key("jitter"))
            .unwrap_or_default();
        let catch_up = match p.catch_up.as_ref().map(|c| (c, c.value.as_str())) {
            None | Some((_, "once")) => CatchUp::Once,
            Some((_, "skip")) => CatchUp::Skip,
            Some((c, other)) => {
                self.error(
                    &c.referenced,
                    format!("catch_up {other:?} is not one of once, skip"),
                );
                CatchUp::Once
            }
        };
        let max_age = self.duration(p.max_age.as_ref(), &key("max_age"));
        let scheduled = [
            ("schedule", &p.schedule),
            ("check_schedule", &p.check_schedule),
            ("prune_schedule", &p.prune_schedule),
            ("verify_schedule", &p.verify_schedule),
        ];
        if !scheduled.iter().any(|(_, s)| s.is_some()) {
            for (k, v) in [
                ("timezone", &p.timezone),
                ("jitter", &p.jitter),
                ("catch_up", &p.catch_up),
            ] {
                if let Some(v) = v {
                    self.error(
                        &v.referenced,
                        format!(
                            "profile {name}: {k} applies to schedules, and this profile has none"
                        ),
                    );
                }
            }
        }
        let notify = p
            .notify
            .as_ref()
            .map(|n| self.notify(name, n))
            .unwrap_or_default();
        let lock_wait = p
            .lock_wait
            .as_ref()
            .and_then(|s| {
                let v = self.nonempty(s, &key("lock_wait"))?;
                match parse_duration(&v) {
                    Some(d) => Some(d),
                    None => {
                        self.error(
                            &s.referenced,
                            format!("lock_wait {v:?} is not a duration such as 30s, 5m or 1h"),
                        );
                        None
                    }
                }
            })
            .unwrap_or(DEFAULT_LOCK_WAIT);
        let backup_timeout = self
            .duration(p.backup_timeout.as_ref(), &key("backup_timeout"))
            .unwrap_or(DEFAULT_PHASE_TIMEOUT);
        let retention_timeout = self
            .duration(p.retention_timeout.as_ref(), &key("retention_timeout"))
            .unwrap_or(DEFAULT_PHASE_TIMEOUT);
        let check_timeout = self
            .duration(p.check_timeout.as_ref(), &key("check_timeout"))
            .unwrap_or(DEFAULT_PHASE_TIMEOUT);
        let maintenance = p
            .maintenance
            .as_ref()
            .and_then(|m| self.maintenance(name, m, !p.databases.is_empty()));
        Profile {
            name: name.to_string(),
            repository: p.repository.value.clone(),
            host,
            tags,
            staging_dir,
            databases,
            paths,
            exclude,
            hooks,
            retention,
            schedule,
            keep_staging_on_failure: p.keep_staging_on_failure,
            lock_wait,
            backup_timeout,
            retention_timeout,
            check_timeout,
            check_schedule,
            prune_schedule,
            verify_schedule,
            check_subset,
            timezone,
            jitter,
            catch_up,
            max_age,
            notify,
            maintenance,
        }
    }

    fn maintenance(
        &mut self,
        profile: &str,
        m: &Spanned<raw::RawMaintenance>,
        has_databases: bool,
    ) -> Option<Maintenance> {
        let key = |k: &str| format!("profiles.{profile}.maintenance.{k}");
        if !has_databases {
            self.error(
                &m.referenced,
                format!("profile {profile}: maintenance wraps the database dumps, but the profile has no databases"),
            );
        }
        if m.value.stop.is_empty() {
            self.error(
                &m.referenced,
                format!(
                    "profile {profile}: maintenance.stop is empty: name the containers to stop"
                ),
            );
        }
        let mut stop: Vec<String> = Vec::new();
        for s in &m.value.stop {
            let Some(name) = self.nonempty(s, &key("stop")) else {
                continue;
            };
            if !is_container_name(&name) {
                self.error(
                    &s.referenced,
                    format!("container name {name:?} is not a Docker container name or id (letters, digits, '_', '.', '-'; starting with a letter or digit)"),
                );
            } else if stop.contains(&name) {
                self.error(
                    &s.referenced,
                    format!("container {name:?} is listed twice in maintenance.stop"),
                );
            } else {
                stop.push(name);
            }
        }
        let timeout = match &m.value.timeout {
            None => DEFAULT_STOP_TIMEOUT,
            Some(s) => {
                let v = self.nonempty(s, &key("timeout"))?;
                match parse_duration(&v) {
                    // Docker takes whole seconds as a 32-bit number.
                    Some(d) if d.as_secs() <= i32::MAX as u64 => d,
                    _ => {
                        self.error(
                            &s.referenced,
                            format!(
                                "maintenance timeout {v:?} is not a duration such as 30s, 5m or 1h"
                            ),
                        );
                        return None;
                    }
                }
            }
        };
        (has_databases && stop.len() == m.value.stop.len() && !stop.is_empty())
            .then_some(Maintenance { stop, timeout })
    }

    fn commands(&mut self, list: &[S], key: &str) -> Vec<String> {
        list.iter().filter_map(|s| self.nonempty(s, key)).collect()
    }

    fn retention(&mut self, profile: &str, r: &Spanned<raw::RawRetention>) -> Option<Retention> {
        let v = &r.value;
        let keep_within = v.keep_within.as_ref().and_then(|s| {
            let w = self.nonempty(s, &format!("profiles.{profile}.retention.keep_within"))?;
            if is_restic_duration(&w) {
                Some(w)
            } else {
                self.error(
                    &s.referenced,
                    format!("keep_within {w:?} is not a restic duration such as 7d, 2m or 1y6m"),
                );
                None
            }
        });
        let mut other_hosts = Vec::new();
        for h in &v.other_hosts {
            if let Some(host) =
                self.nonempty(h, &format!("profiles.{profile}.retention.other_hosts"))
            {
                if host.contains(',') {
                    self.error(&h.referenced, format!("host {host:?} must not contain ','"));
                } else {
                    other_hosts.push(host);
                }
            }
        }
        let retention = Retention {
            other_hosts,
            keep_last: v.keep_last,
            keep_hourly: v.keep_hourly,
            keep_daily: v.keep_daily,
            keep_weekly: v.keep_weekly,
            keep_monthly: v.keep_monthly,
            keep_yearly: v.keep_yearly,
            keep_within,
            prune: v.prune,
        };
        let keeps = [
            retention.keep_last,
            retention.keep_hourly,
            retention.keep_daily,
            retention.keep_weekly,
            retention.keep_monthly,
            retention.keep_yearly,
        ];
        if keeps.iter().all(|k| k.unwrap_or(0) == 0) && retention.keep_within.is_none() {
            self.error(
                &r.referenced,
                format!(
                    "profile {profile}: retention keeps nothing: set at least one keep_* rule above 0 (or remove retention to keep every snapshot)"
                ),
            );
            return None;
        }
        Some(retention)
    }

    fn database(
        &mut self,
        profile: &str,
        db: &Spanned<RawDatabase>,
        state_dir: &Path,
    ) -> Option<DatabaseSource> {
        let d = &db.value;
        let name = self.nonempty(&d.name, &format!("profiles.{profile}.databases.name"))?;
        let kind = d.kind.value.as_str();
        let engine = crate::source::engine(kind);
        if !is_safe_name(&name) || name.starts_with('-') {
            self.error(
                &d.name.referenced,
                format!("database name {name:?} may use only letters, digits, '-', '_' and '.', and may not start with '.' or '-' (it names the dump file)"),
            );
        } else {
            // The dump is written as <name><suffix>.partial: all of it must fit in a name.
            let suffix = format!(".{}.partial", engine.map_or("sql", |e| e.extension()));
            let max = MAX_FILE_NAME - suffix.len();
            if name.len() > max {
                self.error(
                    &d.name.referenced,
                    format!(
                        "database name {}... is {} bytes long: its dump file {}{suffix} would not fit the {MAX_FILE_NAME}-byte limit of a file name; use at most {max} bytes",
                        &name[..20],
                        name.len(),
                        "<name>"
                    ),
                );
            }
        }
        let Some(engine) = engine else {
            self.error(
                &d.kind.referenced,
                format!(
                    "database {name}: unknown type {kind:?} (supported: {})",
                    crate::source::known_types()
                ),
            );
            return None;
        };
        let foreign: Vec<&str> = d
            .keys_set()
            .into_iter()
            .filter(|k| !engine.keys().contains(k))
            .collect();
        if !foreign.is_empty() {
            self.error(
                &db.referenced,
                format!(
                    "database {name}: key(s) {} do not apply to type {kind}",
                    foreign.join(", ")
                ),
            );
        }
        let source = engine.resolve(
            self,
            &crate::source::SourceAt {
                profile,
                name: &name,
                raw: d,
                at: &db.referenced,
                state_dir,
            },
        )?;
        Some(DatabaseSource { name, source })
    }

    /// A duration of at least one second, or `None` after recording why not.
    pub fn timeout(&mut self, s: Option<&S>, key: &str) -> Option<Duration> {
        let d = self.duration(s, key)?;
        if d.is_zero() {
            let short = key.rsplit('.').next().unwrap_or(key);
            self.error(
                &s.expect("parsed above").referenced,
                format!("{short} must be at least 1s"),
            );
            return None;
        }
        Some(d)
    }
}

fn is_safe_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

/// Docker's container names: `[a-zA-Z0-9][a-zA-Z0-9_.-]*` (ids fit too).
fn is_container_name(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

/// restic's `--keep-within` durations: one or more of a number followed by y, m, d or h.
fn is_restic_duration(s: &str) -> bool {
    let mut digits = 0;
    let mut units = 0;
    for c in s.chars() {
        if c.is_ascii_digit() {
            digits += 1;
        } else if "ymdh".contains(c) && digits > 0 {
            digits = 0;
            units += 1;
        } else {
            return false;
        }
    }
    digits == 0 && units > 0
}

/// "90s", "5m", "2h", "7d", or a plain number of seconds.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let (num, mult) = match s.chars().last()? {
        's' => (&s[..s.len() - 1], 1),
        'm' => (&s[..s.len() - 1], 60),
        'h' => (&s[..s.len() - 1], 3600),
        'd' => (&s[..s.len() - 1], 86400),
        c if c.is_ascii_digit() => (s, 1),
        _ => return None,
    };
    num.trim()
        .parse::<u64>()
        .ok()
        .map(|n| Duration::from_secs(n * mult))
}

#[cfg(test)]
mod tests;
