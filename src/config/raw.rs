//! The config file as written: serde types only, unknown keys rejected, positions kept.
//!
//! Nothing here is interpreted; `resolve` turns these into the plan the commands run.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_saphyr::Spanned;

pub type S = Spanned<String>;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub state_dir: Option<S>,
    #[serde(default)]
    pub restic_binary: Option<S>,
    #[serde(default)]
    pub repositories: BTreeMap<String, Spanned<RawRepository>>,
    #[serde(default)]
    pub profiles: BTreeMap<String, Spanned<RawProfile>>,
    /// Settings every profile gets unless it (or a profile it extends) sets them.
    #[serde(default)]
    pub defaults: Option<Spanned<RawProfile>>,
    // The daemon.
    /// Address of the HTTP server (/healthz, /metrics), "IP:PORT".
    #[serde(default)]
    pub listen: Option<S>,
    #[serde(default)]
    pub max_concurrent: Option<Spanned<u32>>,
    /// How long running work may go on after SIGTERM/SIGINT before its children are stopped.
    #[serde(default)]
    pub grace_period: Option<S>,
    /// Prometheus text file for node_exporter's textfile collector.
    #[serde(default)]
    pub metrics_file: Option<S>,
    /// `metrics: { push_url, push_timeout }`: the Prometheus Pushgateway.
    #[serde(default)]
    pub metrics: Option<Spanned<RawMetrics>>,
}

/// `metrics:`: where a run's metrics are pushed (a CronJob's pod is gone before any scrape).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawMetrics {
    /// The Pushgateway's base URL; `user:password@` in it becomes basic auth.
    #[serde(default)]
    pub push_url: Option<S>,
    /// Bound of one push (connect and answer).
    #[serde(default)]
    pub push_timeout: Option<S>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawRepository {
    pub url: S,
    #[serde(default)]
    pub password_file: Option<S>,
    #[serde(default)]
    pub password_command: Option<S>,
    #[serde(default)]
    pub env: BTreeMap<String, S>,
    /// Environment variables read from files at run time (Docker secrets): NAME -> path.
    #[serde(default)]
    pub env_files: BTreeMap<String, S>,
    #[serde(default)]
    pub init: bool,
    /// A restic command that shows no progress this long is stopped (the server stopped
    /// answering).
    #[serde(default)]
    pub stall_timeout: Option<S>,
    /// Deadline of the short commands: opening the repository, init, snapshots, locks.
    #[serde(default)]
    pub open_timeout: Option<S>,
    /// How restic reaches an `sftp:` repository.
    #[serde(default)]
    pub sftp: Option<Spanned<RawSftp>>,
    /// restic's own knobs (profiles may override them key by key).
    #[serde(default)]
    pub restic: Option<Spanned<RawResticOptions>>,
}

/// `restic: { compression, limit_upload, limit_download, pack_size, read_concurrency,
/// extra_args }`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawResticOptions {
    #[serde(default)]
    pub compression: Option<S>,
    #[serde(default)]
    pub limit_upload: Option<Spanned<u32>>,
    #[serde(default)]
    pub limit_download: Option<Spanned<u32>>,
    #[serde(default)]
    pub pack_size: Option<Spanned<u32>>,
    #[serde(default)]
    pub read_concurrency: Option<Spanned<u32>>,
    #[serde(default)]
    pub extra_args: Option<Vec<S>>,
}

/// `sftp: { port, user, identity_file, known_hosts_file, options, command }`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawSftp {
    #[serde(default)]
    pub port: Option<Spanned<u16>>,
    #[serde(default)]
    pub user: Option<S>,
    #[serde(default)]
    pub identity_file: Option<S>,
    #[serde(default)]
    pub known_hosts_file: Option<S>,
    /// Extra `ssh -o` options, "Key=Value".
    #[serde(default)]
    pub options: Vec<S>,
    /// The whole ssh command instead (restic's sftp.command).
    #[serde(default)]
    pub command: Option<S>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawProfile {
    /// Another profile whose settings this one starts from (`config::inherit`).
    #[serde(default, skip_serializing)]
    pub extends: Option<S>,
    #[serde(default)]
    pub repository: Option<S>,
    #[serde(default)]
    pub host: Option<S>,
    #[serde(default)]
    pub tags: Vec<S>,
    #[serde(default)]
    pub staging_dir: Option<S>,
    #[serde(default)]
    pub databases: Vec<Spanned<RawDatabase>>,
    #[serde(default)]
    pub paths: Vec<S>,
    #[serde(default)]
    pub exclude: Vec<S>,
    /// Files of exclude patterns (`--exclude-file`).
    #[serde(default)]
    pub exclude_file: Vec<S>,
    /// `--exclude-caches`: skip directories holding a CACHEDIR.TAG.
    #[serde(default)]
    pub exclude_caches: Option<bool>,
    /// `--exclude-if-present NAME`: skip directories holding a file of this name.
    #[serde(default)]
    pub exclude_if_present: Vec<S>,
    #[serde(default)]
    pub hooks: RawHooks,
    #[serde(default)]
    pub retention: Option<Spanned<RawRetention>>,
    /// Cron schedule for the daemon; checked here, used by `daemon`.
    #[serde(default)]
    pub schedule: Option<S>,
    #[serde(default)]
    pub keep_staging_on_failure: Option<bool>,
    /// How long a restic command waits for a repository lock held by another process.
    #[serde(default)]
    pub lock_wait: Option<S>,
    /// Deadlines of restic's phases.
    #[serde(default)]
    pub backup_timeout: Option<S>,
    #[serde(default)]
    pub retention_timeout: Option<S>,
    #[serde(default)]
    pub check_timeout: Option<S>,
    /// Containers stopped around the dumps.
    #[serde(default)]
    pub maintenance: Option<Spanned<RawMaintenance>>,
    // The daemon: more schedules, their time zone and spread, and health.
    #[serde(default)]
    pub check_schedule: Option<S>,
    #[serde(default)]
    pub prune_schedule: Option<S>,
    #[serde(default)]
    pub verify_schedule: Option<S>,
    /// `--read-data-subset` of `check`.
    #[serde(default)]
    pub check_subset: Option<S>,
    #[serde(default)]
    pub timezone: Option<S>,
    #[serde(default)]
    pub jitter: Option<S>,
    #[serde(default)]
    pub catch_up: Option<S>,
    #[serde(default)]
    pub max_age: Option<S>,
    #[serde(default)]
    pub notify: Option<Spanned<RawNotify>>,
    /// Repositories each new snapshot is copied into (`restic copy`).
    #[serde(default)]
    pub copy_to: Vec<S>,
    /// Overrides of the repository's `restic:` knobs, key by key.
    #[serde(default)]
    pub restic: Option<Spanned<RawResticOptions>>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawNotify {
    #[serde(default)]
    pub healthchecks: Option<Spanned<RawUrl>>,
    #[serde(default)]
    pub webhook: Option<Spanned<RawUrl>>,
    #[serde(default)]
    pub webhook_on_success: Option<bool>,
    #[serde(default)]
    pub ntfy: Option<Spanned<RawNtfy>>,
    #[serde(default)]
    pub email: Option<Spanned<RawEmail>>,
}

/// `ntfy: { server, topic, token_file, events }`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawNtfy {
    #[serde(default)]
    pub server: Option<S>,
    pub topic: S,
    #[serde(default)]
    pub token_file: Option<S>,
    #[serde(default)]
    pub events: Option<Vec<S>>,
}

/// `email: { smtp_host, smtp_port, tls, username, password_file, from, to, events }`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawEmail {
    pub smtp_host: S,
    #[serde(default)]
    pub smtp_port: Option<Spanned<u16>>,
    #[serde(default)]
    pub tls: Option<S>,
    #[serde(default)]
    pub username: Option<S>,
    #[serde(default)]
    pub password_file: Option<S>,
    pub from: S,
    pub to: Vec<S>,
    #[serde(default)]
    pub events: Option<Vec<S>>,
    #[serde(default)]
    pub timeout: Option<S>,
}

/// A URL written in the config, or `{ url_file: PATH }`: read from a file at run time.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(untagged)]
pub enum RawUrl {
    Url(String),
    File(RawUrlFile),
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawUrlFile {
    pub url_file: S,
}

/// `maintenance: { stop: [containers], timeout: 30s }`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawMaintenance {
    pub stop: Vec<S>,
    #[serde(default)]
    pub timeout: Option<S>,
}

/// One database source. A flat struct rather than a tagged enum so every key keeps its
/// position for error messages; which keys suit which `type` is checked in `resolve` against
/// the engine's `keys()` (`source::Engine`). An engine's new key is a field here and a line of
/// `keys_set`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawDatabase {
    pub name: S,
    #[serde(rename = "type")]
    pub kind: S,
    // sqlite
    #[serde(default)]
    pub path: Option<S>,
    #[serde(default)]
    pub method: Option<S>,
    #[serde(default)]
    pub verify: Option<S>,
    /// How `restore` and `verify` check a copy whose hash the manifest records.
    #[serde(default)]
    pub restore_check: Option<S>,
    /// Switch a rollback-journal database to WAL on its first backup.
    #[serde(default)]
    pub convert_to_wal: Option<Spanned<bool>>,
    /// Warn when a rollback-journal database's writers are held out near this long.
    #[serde(default)]
    pub writer_hold_limit: Option<S>,
    /// `method: incremental`: a new base once the deltas pass this share of the database.
    #[serde(default)]
    pub max_delta_share: Option<Spanned<f64>>,
    /// `method: incremental`: a new base once the base is this old.
    #[serde(default)]
    pub rebase_after: Option<S>,
    /// `method: incremental`, WAL databases: read the pages in place instead of copying.
    #[serde(default)]
    pub read_live: Option<Spanned<bool>>,
    // mysql
    #[serde(default)]
    pub host: Option<S>,
    #[serde(default)]
    pub port: Option<Spanned<u16>>,
    #[serde(default)]
    pub socket: Option<S>,
    #[serde(default)]
    pub user: Option<S>,
    #[serde(default)]
    pub password_file: Option<S>,
    #[serde(default)]
    pub databases: Option<Spanned<RawDatabaseList>>,
    #[serde(default)]
    pub options: Vec<S>,
    #[serde(default)]
    pub binary: Option<S>,
    /// The account `restore` and `verify` load dumps with (the backup user usually can't write).
    #[serde(default)]
    pub restore_user: Option<S>,
    #[serde(default)]
    pub restore_password_file: Option<S>,
    /// Bounds on every wait on the server (durations).
    #[serde(default)]
    pub connect_timeout: Option<S>,
    #[serde(default)]
    pub lock_wait_timeout: Option<S>,
    #[serde(default)]
    pub dump_timeout: Option<S>,
    #[serde(default)]
    pub restore_timeout: Option<S>,
    // postgresql
    /// Dump the cluster's globals (roles, tablespaces) even when `databases` is a list.
    #[serde(default)]
    pub globals: Option<Spanned<bool>>,
    // command
    /// The shell command whose stdout is the dump.
    #[serde(default)]
    pub dump: Option<S>,
    /// The shell command that reads a dump on its stdin and puts it back.
    #[serde(default)]
    pub restore: Option<S>,
    /// The dump file's extension.
    #[serde(default)]
    pub extension: Option<S>,
}

impl RawDatabase {
    /// The keys set on this source besides `name` and `type`, in the order they are declared
    /// here: an engine rejects those not in its `keys()`.
    pub fn keys_set(&self) -> Vec<&'static str> {
        [
            ("path", self.path.is_some()),
            ("method", self.method.is_some()),
            ("verify", self.verify.is_some()),
            ("restore_check", self.restore_check.is_some()),
            ("convert_to_wal", self.convert_to_wal.is_some()),
            ("writer_hold_limit", self.writer_hold_limit.is_some()),
            ("max_delta_share", self.max_delta_share.is_some()),
            ("rebase_after", self.rebase_after.is_some()),
            ("read_live", self.read_live.is_some()),
            ("host", self.host.is_some()),
            ("port", self.port.is_some()),
            ("socket", self.socket.is_some()),
            ("user", self.user.is_some()),
            ("password_file", self.password_file.is_some()),
            ("databases", self.databases.is_some()),
            ("options", !self.options.is_empty()),
            ("binary", self.binary.is_some()),
            ("restore_user", self.restore_user.is_some()),
            (
                "restore_password_file",
                self.restore_password_file.is_some(),
            ),
            ("connect_timeout", self.connect_timeout.is_some()),
            ("lock_wait_timeout", self.lock_wait_timeout.is_some()),
            ("dump_timeout", self.dump_timeout.is_some()),
            ("restore_timeout", self.restore_timeout.is_some()),
            ("globals", self.globals.is_some()),
            ("dump", self.dump.is_some()),
            ("restore", self.restore.is_some()),
            ("extension", self.extension.is_some()),
        ]
        .into_iter()
        .filter(|(_, set)| *set)
        .map(|(key, _)| key)
        .collect()
    }
}

/// `databases: all` or `databases: [a, b]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(untagged)]
pub enum RawDatabaseList {
    Keyword(String),
    Names(Vec<S>),
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawHooks {
    #[serde(default)]
    pub before: Vec<S>,
    #[serde(default)]
    pub after: Vec<S>,
    #[serde(default)]
    pub on_failure: Vec<S>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawRetention {
    #[serde(default)]
    pub keep_last: Option<u32>,
    #[serde(default)]
    pub keep_hourly: Option<u32>,
    #[serde(default)]
    pub keep_daily: Option<u32>,
    #[serde(default)]
    pub keep_weekly: Option<u32>,
    #[serde(default)]
    pub keep_monthly: Option<u32>,
    #[serde(default)]
    pub keep_yearly: Option<u32>,
    #[serde(default)]
    pub keep_within: Option<S>,
    #[serde(default)]
    pub prune: Option<bool>,
    /// Other hosts whose snapshots of this profile the `prune` command thins with these rules.
    #[serde(default)]
    pub other_hosts: Vec<S>,
}
