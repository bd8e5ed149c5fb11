//! The command line, as plain data (clap derive). Nothing here runs anything.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// Safe, boring database backups with restic.
///
/// resticpilot reads YAML profiles; for each it dumps the databases into a private staging
/// directory (SQLite through the online backup API, MySQL/MariaDB through mariadb-dump),
/// verifies every dump, takes one restic snapshot of the dumps and the profile's files, and
/// applies retention. A failed dump fails the run before restic runs.
///
/// Exit codes: 0 success, 1 a run failed, 2 usage or config error (nothing was run),
/// 3 finished with warnings (for example restic could not read some files).
#[derive(Debug, Parser)]
#[command(name = "resticpilot", version = crate::VERSION, max_term_width = 100)]
pub struct Cli {
    /// Config file.
    #[arg(
        short,
        long,
        global = true,
        help_heading = "Global options",
        env = "RESTICPILOT_CONFIG",
        default_value = crate::config::DEFAULT_CONFIG,
        value_name = "FILE"
    )]
    pub config: PathBuf,

    /// Log format on stderr: text, or JSON lines (every line, the final error too).
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        value_enum,
        env = "RESTICPILOT_LOG_FORMAT",
        default_value_t = LogFormat::Text
    )]
    pub log_format: LogFormat,

    /// More detail in logs (-v: debug, -vv: trace). RUST_LOG overrides.
    #[arg(short, long, global = true, help_heading = "Global options", action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Only warnings and errors in logs.
    #[arg(
        short,
        long,
        global = true,
        help_heading = "Global options",
        conflicts_with = "verbose"
    )]
    pub quiet: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Parse and check the config; report every error with file, line and column. Runs nothing.
    Validate {
        /// Also print each profile as resolved: after `extends:` and `defaults:`, as YAML.
        #[arg(long)]
        resolved: bool,
    },

    /// Dump the databases, take one restic snapshot, apply retention.
    ///
    /// Runs the named profiles, or all of them, one after another. A profile that is already
    /// running (another backup holds its lock) is refused at once.
    Backup {
        /// Profiles to run (default: all).
        profiles: Vec<String>,
        /// Print what would be done, run nothing.
        #[arg(long)]
        dry_run: bool,
    },

    /// List a profile's snapshots (default: every profile's).
    Snapshots {
        /// Only this profile's snapshots (default: every profile's).
        profile: Option<String>,
        /// JSON array of snapshots, each with its profile.
        #[arg(long)]
        json: bool,
    },

    /// Apply the profile's retention alone (restic forget, scoped to the profile and host).
    Forget {
        /// The profile whose retention to apply.
        profile: String,
        /// Prune unreferenced data afterwards, even if the profile's retention doesn't say so.
        #[arg(long)]
        prune: bool,
        /// Show which snapshots would be removed, remove nothing.
        #[arg(long)]
        dry_run: bool,
    },

    /// Repository maintenance, for the one host or job that owns it.
    ///
    /// Applies the retention of every profile of this config on the repository (each scoped
    /// to its own tag and host, plus the hosts in its retention.other_hosts), then restic
    /// prune once, then restic check with --check. The profiles' locks are held throughout,
    /// so none of their backups runs meanwhile. Where many hosts share a repository, one runs
    /// this (by hand, from cron or a CronJob) and the others set `retention: { prune: false }`.
    Prune {
        /// The repository (a name under `repositories:`).
        #[arg(required_unless_present = "profile")]
        repository: Option<String>,
        /// Maintain the repository of this profile instead.
        #[arg(long, value_name = "PROFILE", conflicts_with = "repository")]
        profile: Option<String>,
        /// Run restic check afterwards.
        #[arg(long)]
        check: bool,
        /// With --check, the part of the data to read: n/t, a percentage or a size
        /// (default: the first profile's check_subset, else none).
        #[arg(long, value_name = "SUBSET", requires = "check")]
        read_data_subset: Option<String>,
        /// Show which snapshots retention would remove; prune nothing.
        #[arg(long)]
        dry_run: bool,
    },

    /// Restore a snapshot: files under a directory or in place, databases back where they live.
    ///
    /// Databases (--database) are checked before they replace anything: a SQLite copy must
    /// pass integrity_check, then is renamed over the live file atomically, the previous file
    /// kept as <file>.pre-restore-<time>; a database in use is refused without --force. A MySQL
    /// dump is streamed from restic into the client (the source's restore_user, else its
    /// user); a non-empty target needs --force and is dumped beside first. A PostgreSQL
    /// archive is read back whole, loaded into a scratch database and renamed into place; a
    /// non-empty target needs --force and is kept under another name.
    /// With --target, databases are written into DIR as checked files instead.
    Restore(RestoreArgs),

    /// The restore drill: restore a snapshot into scratch space and check everything.
    ///
    /// SQLite copies get integrity_check and row counts; MySQL and PostgreSQL dumps are loaded
    /// into a scratch database on the configured server (dropped afterwards; skipped with a note when the
    /// server is unreachable); files are restored with restic --verify and every configured
    /// path must be there. Reports size, restore time and result per item. Exit 0 when all
    /// pass, 3 when something could not be checked, 1 when anything failed.
    Verify {
        /// The profile to drill.
        profile: String,
        /// Snapshot id (or unique prefix) of the profile, or `latest`.
        #[arg(long, default_value = "latest", value_name = "ID")]
        snapshot: String,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        /// Where scratch copies go (default: <state_dir>/scratch). Needs room for the largest
        /// database and the files. The drill works in a fresh private directory made inside
        /// DIR and removed afterwards; DIR's own mode is never changed.
        #[arg(long, value_name = "DIR")]
        scratch: Option<PathBuf>,
    },

    /// Check the profile's repository (restic check), reading its `check_subset` of the data.
    Check {
        /// The profile whose repository to check.
        profile: String,
        /// Part of the data to read and verify: n/t (1/10), a percentage (5%) or a size
        /// (500M). Overrides the profile's check_subset.
        #[arg(long, value_name = "SUBSET")]
        read_data_subset: Option<String>,
    },

    /// Scheduler for containers: run each profile's jobs on their cron schedules.
    ///
    /// Backups on `schedule`, `restic check` on `check_schedule`, retention and prune on
    /// `prune_schedule`, the restore drill on `verify_schedule` (cron expressions, 5 fields or 6
    /// with seconds first, in the profile's `timezone`, spread by `jitter`). A run missed while the daemon was down runs once at start
    /// (`catch_up`). On SIGTERM/SIGINT nothing new starts, running jobs get `grace_period` to
    /// finish, then their processes are stopped; the exit is 0.
    Daemon {
        /// Serve /healthz and /metrics on this address (IP:PORT). Overrides the config's
        /// `listen:`, which overrides RESTICPILOT_LISTEN.
        #[arg(long, value_name = "ADDR")]
        listen: Option<std::net::SocketAddr>,
    },

    /// The last runs of each profile, from the status files (manual and scheduled runs).
    Status {
        /// Only this profile.
        profile: Option<String>,
        /// The status files' content as JSON: an array with one entry per profile.
        #[arg(long)]
        json: bool,
    },

    /// Print a shell completion script on stdout.
    ///
    /// bash: `resticpilot completions bash > /etc/bash_completion.d/resticpilot`; zsh: into a
    /// directory on $fpath as `_resticpilot`; fish: `~/.config/fish/completions/resticpilot.fish`.
    /// The image has them installed. Reads no config.
    Completions {
        /// The shell to complete for.
        shell: clap_complete::Shell,
    },

    /// Print the manual page (roff) on stdout: `resticpilot man | man -l -`. Reads no config.
    Man,

    /// Ask a running daemon's /healthz: exit 0 when healthy, 1 otherwise (for HEALTHCHECK).
    ///
    /// Without --address it asks where `daemon` without --listen listens: the config's
    /// `listen:`, else RESTICPILOT_LISTEN, else 127.0.0.1:9898; 0.0.0.0 and :: are asked on
    /// loopback. A config that does not load is skipped with a note.
    Health {
        /// Where the daemon listens (default: see above).
        #[arg(
            long,
            value_name = "HOST:PORT",
            value_parser = parse_address
        )]
        address: Option<String>,
    },
}

#[derive(Debug, clap::Args)]
pub struct RestoreArgs {
    /// The profile whose snapshot to restore.
    pub profile: String,
    /// Snapshot id (or unique prefix) of the profile, or `latest` (the newest, even when
    /// tagged incomplete: the restore then says so and names the latest complete one).
    #[arg(long, default_value = "latest", value_name = "ID")]
    pub snapshot: String,
    /// Restore under DIR: the profile's files (restic's layout: DIR/original/absolute/path),
    /// or with --database only those databases, as checked files in DIR (add --files for the
    /// files too).
    #[arg(long, value_name = "DIR", conflicts_with = "in_place")]
    pub target: Option<PathBuf>,
    /// A database of the profile to restore (repeatable), or `all`.
    #[arg(long = "database", value_name = "NAME")]
    pub databases: Vec<String>,
    /// With --target and --database: the profile's files too (without --database, --target
    /// restores the files anyway).
    #[arg(long, requires = "target")]
    pub files: bool,
    /// Restore the one MySQL or PostgreSQL database under this name instead (created if
    /// missing).
    #[arg(long, value_name = "NAME")]
    pub into: Option<String>,
    /// Restore the profile's files over their original locations (needs --force).
    #[arg(long)]
    pub in_place: bool,
    /// Replace what is in use or not empty (a live SQLite database, a non-empty MySQL or
    /// PostgreSQL database, files in place).
    #[arg(long)]
    pub force: bool,
    /// Print what would be restored where; change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// Checks a `HOST:PORT` argument.
///
/// Fails with a message naming what is missing.
pub fn parse_address(s: &str) -> Result<String, String> {
    match s.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => Ok(s.to_string()),
        _ => Err(format!(
            "{s:?} is not HOST:PORT (for example 127.0.0.1:9898)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    /// `--help` of every command describes each of its positional arguments.
    #[test]
    fn every_positional_argument_is_described() {
        for sub in Cli::command().get_subcommands() {
            for arg in sub.get_positionals() {
                assert!(
                    arg.get_help().is_some(),
                    "{} {}: no help text",
                    sub.get_name(),
                    arg.get_id()
                );
            }
        }
    }
}
