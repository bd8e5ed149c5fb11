//! Configuration in two phases: `raw` parses the YAML (serde only, unknown keys rejected,
//! positions kept), `resolve` here expands the environment, applies defaults and checks
//! everything that can be checked without running anything. The result is the plan the
//! commands execute; no command reads YAML.

mod expand;
mod inherit;
pub mod raw;
mod staging;
mod unknown;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_saphyr::{Location, Spanned};

use raw::{RawConfig, RawDatabase, RawProfile, RawRepository, RawSftp, RawUrl, S};

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
    /// Each profile after `extends:` and `defaults:`, as YAML (`validate --resolved`).
    pub resolved_yaml: BTreeMap<String, String>,
    /// Files the config names that `validate` checks (the rest of parsing never touches the
    /// filesystem).
    pub file_checks: Vec<FileCheck>,
}

/// A file named in the config that must be readable (or exist) when the config is used.
#[derive(Debug, Clone)]
pub struct FileCheck {
    pub path: PathBuf,
    /// The key that names it, for the message.
    pub key: String,
    pub line: u64,
    pub column: u64,
}

impl Config {
    /// The restic knobs of `profile`: its repository's, overridden by its own.
    pub fn restic_options(&self, profile: &Profile) -> ResticOptions {
        self.restic_options_in(profile, &profile.repository)
    }

    /// The restic knobs of `profile` when it works on `repository` (its own, or a `copy_to`
    /// one): that repository's, overridden by the profile's.
    pub fn restic_options_in(&self, profile: &Profile, repository: &str) -> ResticOptions {
        self.repositories
            .get(repository)
            .map(|r| r.restic.overridden_by(&profile.restic))
            .unwrap_or_else(|| profile.restic.clone())
    }

    /// Checks that every file in [`Config::file_checks`] can be read.
    ///
    /// Fails with one error per file that cannot, with its position in the config.
    pub fn check_files(&self) -> Result<(), ConfigErrors> {
        let errors: Vec<ConfigError> = self
            .file_checks
            .iter()
            .filter_map(|c| {
                let err = match std::fs::File::open(&c.path) {
                    Ok(f) => match f.metadata() {
                        Ok(m) if m.is_dir() => "is a directory".to_string(),
                        Ok(_) => return None,
                        Err(err) => err.to_string(),
                    },
                    Err(err) => err.to_string(),
                };
                Some(ConfigError {
                    file: self.file.clone(),
                    line: c.line,
                    column: c.column,
                    message: format!("{} {} cannot be read: {err}", c.key, c.path.display()),
                })
            })
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ConfigErrors(errors))
        }
    }
}

/// A URL from the config, or from a file read when it is used (a ping URL is a secret).
#[derive(Clone, PartialEq, Eq)]
pub enum UrlSource {
    Url(String),
    File(PathBuf),
}

impl fmt::Debug for UrlSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UrlSource::Url(_) => f.write_str("Url(<redacted>)"),
            UrlSource::File(p) => write!(f, "File({})", p.display()),
        }
    }
}

impl UrlSource {
    /// The URL: as written, or the first line of its file.
    ///
    /// Fails with a message naming the file when it cannot be read, is empty or does not
    /// hold an http:// or https:// URL.
    pub fn read(&self) -> Result<String, String> {
        match self {
            UrlSource::Url(u) => Ok(u.clone()),
            UrlSource::File(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|err| format!("url_file {} cannot be read: {err}", path.display()))?;
                let url = text.lines().next().unwrap_or_default().trim().to_string();
                if url.starts_with("http://") || url.starts_with("https://") {
                    Ok(url)
                } else {
                    Err(format!(
                        "url_file {} does not hold an http:// or https:// URL on its first line",
                        path.display()
                    ))
                }
            }
        }
    }
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
    /// The Pushgateway each run's metrics are pushed to (`metrics.push_url`).
    pub push: Option<MetricsPush>,
}

/// `metrics.push_url` and its bound.
#[derive(Debug, Clone)]
pub struct MetricsPush {
    /// The Pushgateway's base URL, without credentials: printable.
    pub url: String,
    /// `user:password` from the URL, sent as basic auth; never printed.
    pub basic_auth: Option<Secret>,
    pub timeout: Duration,
}

/// Default bound of one push to the Pushgateway.
pub const DEFAULT_PUSH_TIMEOUT: Duration = Duration::from_secs(10);

impl Default for DaemonSettings {
    fn default() -> Self {
        DaemonSettings {
            listen: None,
            max_concurrent: 1,
            grace_period: DEFAULT_GRACE_PERIOD,
            metrics_file: None,
            push: None,
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
    /// Environment variables whose values restic gets from these files, read at run time.
    pub env_files: BTreeMap<String, PathBuf>,
    pub init: bool,
    /// A restic command that shows no progress this long is stopped.
    pub stall_timeout: Duration,
    /// Deadline of opening the repository and the other short commands.
    pub open_timeout: Duration,
    /// How restic reaches an `sftp:` repository (`None`: restic's own ssh call).
    pub sftp: Option<Sftp>,
    /// restic's own knobs; a profile's `restic:` overrides them key by key.
    pub restic: ResticOptions,
}

/// restic's own knobs. `None`: restic's default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResticOptions {
    /// `--compression`: auto, off or max (repository format 2).
    pub compression: Option<String>,
    /// `--limit-upload`, KiB/s.
    pub limit_upload: Option<u32>,
    /// `--limit-download`, KiB/s.
    pub limit_download: Option<u32>,
    /// `--pack-size`, MiB.
    pub pack_size: Option<u32>,
    /// `restic backup --read-concurrency` (restic 0.15 and newer).
    pub read_concurrency: Option<u32>,
    /// Passed to `restic backup` only, checked not to touch what resticpilot owns.
    pub extra_args: Option<Vec<String>>,
}

impl ResticOptions {
    /// `self` with every key `over` sets replaced by its value (lists replace whole).
    pub fn overridden_by(&self, over: &ResticOptions) -> ResticOptions {
        ResticOptions {
            compression: over
                .compression
                .clone()
                .or_else(|| self.compression.clone()),
            limit_upload: over.limit_upload.or(self.limit_upload),
            limit_download: over.limit_download.or(self.limit_download),
            pack_size: over.pack_size.or(self.pack_size),
            read_concurrency: over.read_concurrency.or(self.read_concurrency),
            extra_args: over.extra_args.clone().or_else(|| self.extra_args.clone()),
        }
    }
}

/// restic options resticpilot sets itself (or that would break what it relies on), refused in
/// `extra_args`, with the key to use instead where there is one.
const OWNED_OPTIONS: &[(&str, &str)] = &[
    ("--host", "profile host"),
    ("-H", "profile host"),
    ("--tag", "profile tags"),
    ("--repo", "repository url"),
    ("-r", "repository url"),
    ("--repository-file", "repository url"),
    ("--password-file", "repository password_file"),
    ("-p", "repository password_file"),
    ("--password-command", "repository password_command"),
    ("--insecure-no-password", "repository password_file"),
    ("--key-hint", "repository password_file"),
    ("--json", "nothing: resticpilot reads restic's JSON"),
    ("--quiet", "nothing: resticpilot reads restic's output"),
    ("-q", "nothing: resticpilot reads restic's output"),
    ("--verbose", "resticpilot -v"),
    ("-v", "resticpilot -v"),
    ("--dry-run", "backup --dry-run"),
    ("-n", "backup --dry-run"),
    ("--stdin", "databases"),
    ("--stdin-filename", "databases"),
    ("--stdin-from-command", "databases"),
    ("--files-from", "paths"),
    ("--files-from-raw", "paths"),
    ("--files-from-verbatim", "paths"),
    ("--retry-lock", "lock_wait"),
    ("--no-lock", "nothing: a backup always locks"),
    ("--stuck-request-timeout", "repository stall_timeout"),
    ("--option", "repository sftp"),
    ("-o", "repository sftp"),
    ("--compression", "restic.compression"),
    ("--limit-upload", "restic.limit_upload"),
    ("--limit-download", "restic.limit_download"),
    ("--pack-size", "restic.pack_size"),
    ("--read-concurrency", "restic.read_concurrency"),
    ("--exclude-file", "exclude_file"),
    ("--exclude-caches", "exclude_caches"),
    ("--exclude-if-present", "exclude_if_present"),
];

/// Why `arg` may not be one of `extra_args`, if it may not.
pub fn owned_option(arg: &str) -> Option<(&'static str, &'static str)> {
    let name = arg.split_once('=').map_or(arg, |(n, _)| n);
    if name.starts_with("--password") {
        return Some(("--password*", "repository password_file"));
    }
    OWNED_OPTIONS.iter().copied().find(|(opt, _)| {
        *opt == name
            // "-rREPO", "-pFILE": a short option with its value attached.
            || (opt.len() == 2 && !name.starts_with("--") && name.starts_with(opt))
    })
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
    /// Files of exclude patterns, read by restic (`--exclude-file`).
    pub exclude_file: Vec<PathBuf>,
    /// Skip directories tagged with CACHEDIR.TAG (`--exclude-caches`).
    pub exclude_caches: bool,
    /// Skip directories holding a file of one of these names (`--exclude-if-present`).
    pub exclude_if_present: Vec<String>,
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
    /// The profile's overrides of its repository's restic knobs (`Config::restic_options`
    /// merges them).
    pub restic: ResticOptions,
    /// Repositories each new snapshot is copied into, in order (`crate::run::copy`).
    pub copy_to: Vec<String>,
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
    pub healthchecks: Option<UrlSource>,
    /// JSON POST on failure (and on success with `webhook_on_success`).
    pub webhook: Option<UrlSource>,
    pub webhook_on_success: bool,
    pub ntfy: Option<Ntfy>,
    pub email: Option<Email>,
}

/// What a notification channel is told of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Event {
    /// A backup started.
    Start,
    /// A job finished cleanly.
    Success,
    /// A job finished with warnings (exit 3).
    Warning,
    /// A job failed or was interrupted.
    Failure,
}

impl Event {
    pub const ALL: [Event; 4] = [Event::Start, Event::Success, Event::Warning, Event::Failure];
    /// What a channel is told of when its `events` are not set.
    pub const DEFAULT: [Event; 2] = [Event::Warning, Event::Failure];

    pub fn name(self) -> &'static str {
        match self {
            Event::Start => "start",
            Event::Success => "success",
            Event::Warning => "warning",
            Event::Failure => "failure",
        }
    }
}

/// ntfy: a JSON-less POST of the message to `<server>/<topic>`, priority by event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ntfy {
    /// `https://ntfy.sh` by default.
    pub server: String,
    pub topic: String,
    /// An access token (`tk_...`), read when a message is sent.
    pub token_file: Option<PathBuf>,
    pub events: Vec<Event>,
}

/// Default ntfy server.
pub const DEFAULT_NTFY_SERVER: &str = "https://ntfy.sh";
/// Default bound of one SMTP conversation.
pub const DEFAULT_SMTP_TIMEOUT: Duration = Duration::from_secs(20);

/// How the SMTP connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS (required), port 587 by default.
    Starttls,
    /// TLS from the first byte (SMTPS), port 465 by default.
    Tls,
    /// No encryption, port 25 by default: only for a relay on the same host or network.
    None,
}

/// Email over SMTP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email {
    pub smtp_host: String,
    pub smtp_port: u16,
    pub tls: SmtpTls,
    pub username: Option<String>,
    /// The SMTP password, read when a message is sent.
    pub password_file: Option<PathBuf>,
    pub from: String,
    pub to: Vec<String>,
    pub events: Vec<Event>,
    /// Bound of connecting and of each SMTP exchange.
    pub timeout: Duration,
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

/// A database source of the config as written, with where it stands: what the engines'
/// registry ([`crate::source::resolve`]) and then the engine resolve.
pub struct SourceAt<'a> {
    pub profile: &'a str,
    /// The source's `name`; the registry checks it before the engine sees it.
    pub name: &'a str,
    pub raw: &'a RawDatabase,
    /// The position of the source's mapping, for errors about the source as a whole.
    pub at: &'a Location,
    /// resticpilot's state directory (engines may keep state under it).
    pub state_dir: &'a Path,
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

/// `%XX` escapes decoded (URL userinfo); anything malformed is kept as written.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `https://hc-ping.com/***`: scheme and host only, for logs (notification
/// and push targets, whose path or query may hold a token).
pub fn mask_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "***".into();
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = authority.rsplit('@').next().unwrap_or_default();
    if rest.len() > authority.len() || authority.contains('@') {
        format!("{scheme}://{host}/***")
    } else {
        format!("{scheme}://{host}")
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

/// Re-words each unknown key met inside a source with a suggestion from the keys of that
/// source's `type` (serde knows only the union of every type's keys): the source holding it is
/// the last one that starts before it.
fn suggest_by_type(raw: &RawConfig, in_sources: &[(usize, String)], errors: &mut [ConfigError]) {
    if in_sources.is_empty() {
        return;
    }
    let mut starts: Vec<((usize, usize), &str)> = raw
        .profiles
        .values()
        .chain(raw.defaults.iter())
        .flat_map(|p| p.value.databases.iter())
        .map(|d| {
            let at = d.referenced;
            (
                (at.line() as usize, at.column() as usize),
                d.value.kind.value.as_str(),
            )
        })
        .collect();
    starts.sort();
    for (index, key) in in_sources {
        let Some(error) = errors.get_mut(*index) else {
            continue;
        };
        let at = (error.line as usize, error.column as usize);
        let Some((_, kind)) = starts.iter().rev().find(|(start, _)| *start <= at) else {
            continue;
        };
        let Some(engine) = crate::source::engine(kind) else {
            continue;
        };
        let known: Vec<&str> = ["name", "type"]
            .into_iter()
            .chain(engine.keys().iter().copied())
            .collect();
        error.message = unknown::suggest(key, &known);
    }
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
    // Whole `${...}` scalars first, so numbers, booleans and durations can come from the
    // environment; the rest of the strings are expanded as they are resolved.
    let (mut expanded, unexpanded) = expand::expand_plain_scalars(text, env);
    // Every unknown key in one pass: each is reported, blanked out, and the text parsed again.
    let mut errors: Vec<ConfigError> = Vec::new();
    // Unknown keys met inside a database source: (index in `errors`, key).
    let mut in_sources: Vec<(usize, String)> = Vec::new();
    let mut raw: RawConfig = loop {
        let err = match serde_saphyr::from_str(&expanded) {
            Ok(raw) => break raw,
            Err(err) => err,
        };
        let (line, column) = err
            .location()
            .map(|l| (l.line(), l.column()))
            .unwrap_or((0, 0));
        let plain = err.without_snippet().to_string();
        let plain = strip_position(plain.lines().next().unwrap_or_default());
        if let Some((key, known)) = unknown::parse_message(plain) {
            // Inside a source (the one struct with both): suggested from its type's keys
            // once the whole text is parsed (below).
            if known.contains(&"type") && known.contains(&"path") {
                in_sources.push((errors.len(), key.to_string()));
            }
            let message = unknown::suggest(key, &known);
            errors.push(ConfigError {
                file: path.to_path_buf(),
                line,
                column,
                message,
            });
            match unknown::blank_entry(&expanded, line, column) {
                Some(blanked) if errors.len() < 100 => {
                    expanded = blanked;
                    continue;
                }
                _ => return Err(ConfigErrors(errors)),
            }
        }
        let message = match unexpanded
            .iter()
            .find(|u| u.line == line && u.column == column)
        {
            Some(u) => u.message.clone(),
            None => type_message(plain, &expanded, line, column),
        };
        errors.push(ConfigError {
            file: path.to_path_buf(),
            line,
            column,
            message,
        });
        return Err(ConfigErrors(errors));
    };
    suggest_by_type(&raw, &in_sources, &mut errors);
    let inheritance = inherit::apply(&mut raw, path);
    let resolved_yaml = raw
        .profiles
        .iter()
        .map(|(name, p)| (name.clone(), inherit::to_yaml(&p.value)))
        .collect();
    let base = path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let mut resolver = Resolver {
        file: path.to_path_buf(),
        // Absolute, so what the config names stays where it is whatever a child's working
        // directory (the plan, restic's -r and the logs say the full path).
        base: std::path::absolute(if base.as_os_str().is_empty() {
            Path::new(".")
        } else {
            &base
        })
        .unwrap_or(base),
        env,
        errors: Vec::new(),
        file_checks: Vec::new(),
    };
    // The values are checked once the keys are right: a blanked-out key would only bring
    // errors that follow from it ("nothing to back up" after a misspelt `paths`).
    if !errors.is_empty() {
        return Err(ConfigErrors(errors));
    }
    resolver.errors.extend(inheritance);
    let mut config = resolver.config(raw, hostname);
    config.resolved_yaml = resolved_yaml;
    if resolver.errors.is_empty() {
        Ok(config)
    } else {
        resolver.errors.sort_by_key(|e| (e.line, e.column));
        Err(ConfigErrors(resolver.errors))
    }
}

/// A local repository's relative path taken from the config file's directory, like every
/// other path of the config (restic would take it from wherever it was started). Backend URLs
/// (`sftp:`, `rest:`, `s3:`...) are left alone.
fn local_url(base: &Path, url: String) -> String {
    let (prefix, path) = match url.strip_prefix("local:") {
        Some(path) => ("local:", path),
        None => ("", url.as_str()),
    };
    let scheme = path
        .split_once(':')
        .is_some_and(|(s, _)| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric()));
    if path.starts_with('/') || (prefix.is_empty() && scheme) {
        return url;
    }
    format!("{prefix}{}", base.join(path).display())
}

/// The YAML parser's message in words: the position is said once (by the caller), the value
/// is quoted, and Rust's type names become what the key wants.
fn type_message(first: &str, text: &str, line: u64, column: u64) -> String {
    let wanted = match first {
        "invalid u8" => Some("a whole number from 0 to 255"),
        "invalid u16" => Some("a whole number from 0 to 65535 (a port number, for one)"),
        "invalid u32" => Some("a whole number from 0 to 4294967295"),
        "invalid u64" | "invalid usize" => Some("a whole number, 0 or more"),
        "invalid i32" | "invalid i64" => Some("a whole number"),
        "invalid f32" | "invalid f64" => Some("a number"),
        "invalid boolean" | "invalid bool" => Some("true or false"),
        _ => None,
    };
    match (wanted, value_at(text, line, column)) {
        (Some(wanted), Some(value)) => format!("{value:?} is not {wanted}"),
        (Some(wanted), None) => format!("expected {wanted}"),
        _ => first.to_string(),
    }
}

/// The parser's message without its position ("line L column C: ..." at the front, " at line
/// L, column C" at the end): the error's prefix says it once.
fn strip_position(message: &str) -> &str {
    let message = match message.split_once(": ") {
        Some((head, rest)) if head.starts_with("line ") => rest,
        _ => message,
    };
    match message.rfind(" at line ") {
        Some(i) => &message[..i],
        None => message,
    }
}

/// The plain scalar at `line`:`column` (1-based) of `text`.
fn value_at(text: &str, line: u64, column: u64) -> Option<String> {
    let l = text.lines().nth(line.checked_sub(1)? as usize)?;
    let rest: String = l.chars().skip(column.checked_sub(1)? as usize).collect();
    let end = rest.find([',', '}', ']', '#']).unwrap_or(rest.len());
    let v = rest[..end].trim();
    (!v.is_empty()).then(|| v.to_string())
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
    file_checks: Vec<FileCheck>,
}

impl Resolver<'_> {
    /// The environment `${VAR}` is expanded from.
    pub fn env(&self) -> &dyn Fn(&str) -> Option<String> {
        self.env
    }

    /// Records that `validate` must find `path` (named by `key`, written at `at`) readable.
    fn check_file(&mut self, path: &Path, key: &str, at: &Location) {
        self.file_checks.push(FileCheck {
            path: path.to_path_buf(),
            key: key.to_string(),
            line: at.line(),
            column: at.column(),
        });
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
            let repository = match &profile.value.repository {
                Some(r) => self.string(r, &format!("profiles.{name}.repository")),
                None => {
                    self.error(
                        &profile.referenced,
                        format!("profile {name}: needs a repository (set `repository:` on it, on a profile it extends, or under `defaults:`)"),
                    );
                    None
                }
            };
            if let Some(repository) = &repository
                && !raw.repositories.contains_key(repository)
            {
                let known: Vec<&str> = raw.repositories.keys().map(String::as_str).collect();
                let known = if known.is_empty() {
                    "none are defined under `repositories:`".to_string()
                } else {
                    format!("defined: {}", known.join(", "))
                };
                let at = profile
                    .value
                    .repository
                    .as_ref()
                    .map(|r| r.referenced)
                    .unwrap_or(profile.referenced);
                self.error(
                    &at,
                    format!("profile {name}: repository {repository:?} is not defined ({known})"),
                );
            }
            let mut seen = BTreeSet::new();
            let mut copy_to = Vec::new();
            for target in &profile.value.copy_to {
                let Some(t) = self.nonempty(target, &format!("profiles.{name}.copy_to")) else {
                    continue;
                };
                if !raw.repositories.contains_key(&t) {
                    let known: Vec<&str> = raw.repositories.keys().map(String::as_str).collect();
                    self.error(
                        &target.referenced,
                        format!(
                            "profile {name}: copy_to {t:?} is not a repository (defined: {})",
                            known.join(", ")
                        ),
                    );
                } else if repository.as_deref() == Some(t.as_str()) {
                    self.error(
                        &target.referenced,
                        format!("profile {name}: copy_to {t:?} is the profile's own repository"),
                    );
                } else if !seen.insert(t.clone()) {
                    self.error(
                        &target.referenced,
                        format!("profile {name}: copy_to names {t:?} twice"),
                    );
                } else {
                    copy_to.push(t);
                }
            }
            let mut p = self.profile(name, profile, &state_dir, hostname);
            p.copy_to = copy_to;
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
            file_checks: std::mem::take(&mut self.file_checks),
            resolved_yaml: BTreeMap::new(),
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
        if let Some(m) = &raw.metrics {
            d.push = self.metrics_push(m);
        }
        d
    }

    /// `metrics:`; `None` when it pushes nowhere or after recording why not.
    fn metrics_push(&mut self, m: &Spanned<raw::RawMetrics>) -> Option<MetricsPush> {
        let timeout = self.duration(m.value.push_timeout.as_ref(), "metrics.push_timeout");
        let Some(s) = &m.value.push_url else {
            if m.value.push_timeout.is_some() {
                self.error(&m.referenced, "metrics.push_timeout needs metrics.push_url");
            }
            return None;
        };
        let v = self.nonempty(s, "metrics.push_url")?;
        let Some((scheme, rest)) = v
            .split_once("://")
            .filter(|(scheme, _)| *scheme == "http" || *scheme == "https")
        else {
            self.error(
                &s.referenced,
                format!(
                    "metrics.push_url {:?} must be an http:// or https:// URL (the Pushgateway, such as http://pushgateway:9091)",
                    redact_url(&v)
                ),
            );
            return None;
        };
        let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(authority_end);
        if path.contains(['?', '#']) {
            self.error(
                &s.referenced,
                format!(
                    "metrics.push_url {:?}: no query or fragment: resticpilot appends /metrics/job/...",
                    redact_url(&v)
                ),
            );
            return None;
        }
        let (basic_auth, host) = match authority.rsplit_once('@') {
            Some((userinfo, host)) => (Some(Secret::new(percent_decode(userinfo))), host),
            None => (None, authority),
        };
        if host.is_empty() {
            self.error(
                &s.referenced,
                format!("metrics.push_url {:?} has no host", redact_url(&v)),
            );
            return None;
        }
        Some(MetricsPush {
            url: format!("{scheme}://{host}{}", path.trim_end_matches('/')),
            basic_auth,
            timeout: timeout.unwrap_or(DEFAULT_PUSH_TIMEOUT),
        })
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
                    format!("{short} {v:?} is not a duration such as 30s, 5m, 1h30m, 2d or a number of seconds"),
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
        let mut url = |s: &Option<Spanned<RawUrl>>, k: &str| -> Option<UrlSource> {
            let s = s.as_ref()?;
            match &s.value {
                RawUrl::Url(v) => {
                    let v =
                        self.nonempty(&Spanned::new(v.clone(), s.referenced, s.defined), &key(k))?;
                    if v.starts_with("http://") || v.starts_with("https://") {
                        Some(UrlSource::Url(v))
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
                }
                RawUrl::File(f) => {
                    let path = self.path(&f.url_file, &key(&format!("{k}.url_file")))?;
                    self.check_file(
                        &path,
                        &format!("notify.{k}.url_file"),
                        &f.url_file.referenced,
                    );
                    Some(UrlSource::File(path))
                }
            }
        };
        let healthchecks = url(&n.value.healthchecks, "healthchecks");
        let webhook = url(&n.value.webhook, "webhook");
        let webhook_on_success = n.value.webhook_on_success.unwrap_or(false);
        if webhook_on_success && n.value.webhook.is_none() {
            self.error(
                &n.referenced,
                format!("profile {profile}: notify.webhook_on_success needs notify.webhook"),
            );
        }
        let ntfy = n.value.ntfy.as_ref().and_then(|x| self.ntfy(profile, x));
        let email = n.value.email.as_ref().and_then(|x| self.email(profile, x));
        Notify {
            healthchecks,
            webhook,
            webhook_on_success,
            ntfy,
            email,
        }
    }

    fn events(&mut self, list: Option<&Vec<S>>, key: &str, at: &Location) -> Vec<Event> {
        let Some(list) = list else {
            return Event::DEFAULT.to_vec();
        };
        let mut events = Vec::new();
        for s in list {
            match Event::ALL.iter().find(|e| e.name() == s.value) {
                Some(e) => events.push(*e),
                None => self.error(
                    &s.referenced,
                    format!(
                        "{key} {:?} is not one of start, success, warning, failure",
                        s.value
                    ),
                ),
            }
        }
        if list.is_empty() {
            self.error(at, format!("{key} is empty: list at least one of start, success, warning, failure, or remove the channel"));
        }
        events.sort();
        events.dedup();
        events
    }

    fn ntfy(&mut self, profile: &str, n: &Spanned<raw::RawNtfy>) -> Option<Ntfy> {
        let key = |k: &str| format!("profiles.{profile}.notify.ntfy.{k}");
        let r = &n.value;
        let events = self.events(r.events.as_ref(), "ntfy.events", &n.referenced);
        let server = match &r.server {
            Some(s) => {
                let v = self.nonempty(s, &key("server"))?;
                if !(v.starts_with("http://") || v.starts_with("https://")) {
                    self.error(
                        &s.referenced,
                        format!(
                            "ntfy.server {:?} must be an http:// or https:// URL",
                            redact_url(&v)
                        ),
                    );
                    return None;
                }
                v.trim_end_matches('/').to_string()
            }
            None => DEFAULT_NTFY_SERVER.to_string(),
        };
        let topic = self.nonempty(&r.topic, &key("topic"))?;
        if !topic
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            || topic.len() > 64
        {
            self.error(
                &r.topic.referenced,
                format!(
                    "ntfy.topic {topic:?} may use only letters, digits, '-' and '_' (64 at most)"
                ),
            );
            return None;
        }
        let token_file = match &r.token_file {
            Some(t) => {
                let p = self.path(t, &key("token_file"))?;
                self.check_file(&p, "notify.ntfy.token_file", &t.referenced);
                Some(p)
            }
            None => None,
        };
        Some(Ntfy {
            server,
            topic,
            token_file,
            events,
        })
    }

    fn email(&mut self, profile: &str, e: &Spanned<raw::RawEmail>) -> Option<Email> {
        let key = |k: &str| format!("profiles.{profile}.notify.email.{k}");
        let r = &e.value;
        let smtp_host = self.nonempty(&r.smtp_host, &key("smtp_host"));
        let tls = match r.tls.as_ref().map(|t| (t, t.value.as_str())) {
            None | Some((_, "starttls")) => SmtpTls::Starttls,
            Some((_, "tls")) => SmtpTls::Tls,
            Some((_, "none")) => SmtpTls::None,
            Some((t, other)) => {
                self.error(
                    &t.referenced,
                    format!("email.tls {other:?} is not one of starttls, tls, none"),
                );
                SmtpTls::Starttls
            }
        };
        let smtp_port = match &r.smtp_port {
            Some(p) if p.value == 0 => {
                self.error(&p.referenced, "email.smtp_port must be 1 to 65535");
                25
            }
            Some(p) => p.value,
            None => match tls {
                SmtpTls::Starttls => 587,
                SmtpTls::Tls => 465,
                SmtpTls::None => 25,
            },
        };
        let username = r
            .username
            .as_ref()
            .and_then(|u| self.nonempty(u, &key("username")));
        let password_file = match &r.password_file {
            Some(p) => {
                let path = self.path(p, &key("password_file"));
                if let Some(path) = &path {
                    self.check_file(path, "notify.email.password_file", &p.referenced);
                }
                path
            }
            None => None,
        };
        if username.is_some() != r.password_file.is_some() {
            self.error(
                &e.referenced,
                "email: username and password_file go together (SMTP AUTH needs both)",
            );
        }
        let mut address = |s: &S, k: &str| -> Option<String> {
            let v = self.nonempty(s, &key(k))?;
            if v.parse::<lettre::message::Mailbox>().is_err() {
                self.error(
                    &s.referenced,
                    format!("email.{k} {v:?} is not an email address such as backup@example.org or 'Backups <backup@example.org>'"),
                );
                return None;
            }
            Some(v)
        };
        let from = address(&r.from, "from");
        let to: Vec<String> = r.to.iter().filter_map(|t| address(t, "to")).collect();
        if r.to.is_empty() {
            self.error(
                &e.referenced,
                "email.to is empty: list at least one address",
            );
        }
        let timeout = self
            .duration(r.timeout.as_ref(), &key("timeout"))
            .unwrap_or(DEFAULT_SMTP_TIMEOUT);
        let events = self.events(r.events.as_ref(), "email.events", &e.referenced);
        Some(Email {
            smtp_host: smtp_host?,
            smtp_port,
            tls,
            username,
            password_file,
            from: from?,
            to,
            events,
            timeout,
        })
    }

    fn repository(&mut self, name: &str, repo: &Spanned<RawRepository>) -> Option<Repository> {
        let at = &repo.referenced;
        let r = &repo.value;
        let url = self
            .nonempty(&r.url, &format!("repositories.{name}.url"))
            .map(|u| local_url(&self.base, u));
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
        let mut env_files = BTreeMap::new();
        for (key, value) in &r.env_files {
            let reserved = key.starts_with("RESTIC_PASSWORD") || key == "RESTIC_REPOSITORY";
            if reserved || r.env.contains_key(key) {
                self.error(
                    &value.referenced,
                    if reserved {
                        format!("repository {name}: env_files {key} is managed by resticpilot; use url / password_file / password_command")
                    } else {
                        format!("repository {name}: {key} is set in both env and env_files: keep one")
                    },
                );
                continue;
            }
            if key.is_empty() || key.contains(['=', '\0']) {
                self.error(
                    &value.referenced,
                    format!("repository {name}: env_files name {key:?} is not an environment variable name"),
                );
                continue;
            }
            if let Some(path) = self.path(value, &format!("repositories.{name}.env_files.{key}")) {
                self.check_file(
                    &path,
                    &format!("repositories.{name}.env_files.{key}"),
                    &value.referenced,
                );
                env_files.insert(key.clone(), path);
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
        let restic = self.restic_options(r.restic.as_ref(), &format!("repositories.{name}"));
        Some(Repository {
            name: name.to_string(),
            url: url?,
            password: password?,
            env,
            env_files,
            init: r.init,
            stall_timeout,
            open_timeout,
            sftp,
            restic,
        })
    }

    fn restic_options(
        &mut self,
        o: Option<&Spanned<raw::RawResticOptions>>,
        prefix: &str,
    ) -> ResticOptions {
        let Some(o) = o else {
            return ResticOptions::default();
        };
        let r = &o.value;
        let key = |k: &str| format!("{prefix}.restic.{k}");
        let compression = r.compression.as_ref().and_then(|c| {
            let v = self.nonempty(c, &key("compression"))?;
            if ["auto", "off", "max"].contains(&v.as_str()) {
                Some(v)
            } else {
                self.error(
                    &c.referenced,
                    format!("restic.compression {v:?} is not one of auto, off, max"),
                );
                None
            }
        });
        let mut positive = |n: &Option<Spanned<u32>>, k: &str, range: (u32, u32), unit: &str| {
            let n = n.as_ref()?;
            if n.value < range.0 || n.value > range.1 {
                self.error(
                    &n.referenced,
                    format!(
                        "restic.{k} {} must be {} to {}{unit}",
                        n.value, range.0, range.1
                    ),
                );
                return None;
            }
            Some(n.value)
        };
        let limit_upload = positive(&r.limit_upload, "limit_upload", (1, u32::MAX), " KiB/s");
        let limit_download = positive(&r.limit_download, "limit_download", (1, u32::MAX), " KiB/s");
        // restic's own bounds of the pack size.
        let pack_size = positive(&r.pack_size, "pack_size", (4, 128), " MiB");
        let read_concurrency = positive(&r.read_concurrency, "read_concurrency", (1, 1024), "");
        let extra_args = r.extra_args.as_ref().map(|list| {
            let mut out = Vec::new();
            for a in list {
                let Some(v) = self.nonempty(a, &key("extra_args")) else {
                    continue;
                };
                if let Some((opt, instead)) = owned_option(&v) {
                    self.error(
                        &a.referenced,
                        format!(
                            "restic.extra_args: {opt} is set by resticpilot; use {instead} instead"
                        ),
                    );
                } else if v == "--" {
                    self.error(
                        &a.referenced,
                        "restic.extra_args: \"--\" would end restic's options; resticpilot adds it before the paths",
                    );
                } else {
                    out.push(v);
                }
            }
            out
        });
        ResticOptions {
            compression,
            limit_upload,
            limit_download,
            pack_size,
            read_concurrency,
            extra_args,
        }
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
        if let (Some(port), Some(target)) = (keys.port, crate::restic::syntax::Target::parse(url))
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
                    || tag == crate::restic::syntax::INCOMPLETE_TAG
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
        let mut exclude_file = Vec::new();
        for s in &p.exclude_file {
            if let Some(path) = self.path(s, &key("exclude_file")) {
                self.check_file(&path, "exclude_file", &s.referenced);
                exclude_file.push(path);
            }
        }
        let exclude_if_present = p
            .exclude_if_present
            .iter()
            .filter_map(|s| {
                let v = self.nonempty(s, &key("exclude_if_present"))?;
                if v.contains('/') {
                    self.error(
                        &s.referenced,
                        format!("exclude_if_present {v:?} is a file name (such as .nobackup), not a path"),
                    );
                    return None;
                }
                Some(v)
            })
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
            if crate::restic::syntax::is_read_data_subset(&v) {
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
            repository: p
                .repository
                .as_ref()
                .map(|r| r.value.clone())
                .unwrap_or_default(),
            host,
            tags,
            staging_dir,
            databases,
            paths,
            exclude,
            exclude_file,
            exclude_caches: p.exclude_caches.unwrap_or(false),
            exclude_if_present,
            hooks,
            retention,
            schedule,
            keep_staging_on_failure: p.keep_staging_on_failure.unwrap_or(false),
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
            restic: self.restic_options(p.restic.as_ref(), &format!("profiles.{name}")),
            copy_to: Vec::new(),
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
            prune: v.prune.unwrap_or(false),
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
        // The one place the config reaches the engines: their registry resolves the source.
        let source = crate::source::resolve(
            self,
            &SourceAt {
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

/// Whether `name` is safe as a file name: letters, digits, '-', '_' and '.', not starting
/// with '.'.
pub(crate) fn is_safe_name(name: &str) -> bool {
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

/// A duration: "90s", "5m", "2h", "7d", compounds of them largest unit first ("1h30m",
/// "1d 12h", "2m30s"), or a plain number of seconds ("90").
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse::<u64>().ok().map(Duration::from_secs);
    }
    if s.is_empty() {
        return None;
    }
    let mut total: u64 = 0;
    // Each unit at most once, in falling order: "30m1h" and "1h1h" are typos, not durations.
    let mut last_unit = u64::MAX;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let n: u64 = rest[..digits].parse().ok()?;
        let unit = match rest.as_bytes().get(digits)? {
            b's' => 1,
            b'm' => 60,
            b'h' => 3600,
            b'd' => 86400,
            _ => return None,
        };
        if unit >= last_unit {
            return None;
        }
        last_unit = unit;
        total = total.checked_add(n.checked_mul(unit)?)?;
        rest = rest[digits + 1..].trim_start();
    }
    Some(Duration::from_secs(total))
}

#[cfg(test)]
mod tests;
