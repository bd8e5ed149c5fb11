//! resticpilot: database backups with restic, made safe and boring.
//!
//! The pipeline: `cli` parses arguments into plain data, `config` turns the YAML into a
//! resolved plan, `commands` run it. `source` holds the database engines (dump, restore, drill), `restic` is the
//! only module that knows restic, `process` the only one that starts children.

pub mod cli;
pub mod commands;
pub mod config;
pub mod dirs;
pub mod error;
pub mod hooks;
pub mod lock;
pub mod maintenance;
pub mod manifest;
pub mod process;
pub mod report;
pub mod restic;
pub mod restore;
pub mod run;
pub mod schedule;
pub mod signals;
pub mod source;
pub mod space;
pub mod staging;
pub mod units;

use clap::Parser;

use cli::{Cli, Command, LogFormat};
use commands::{Context, Status};
use error::{Error, exit};

/// Runs the command line and returns the process exit code.
pub fn main() -> i32 {
    let cli = Cli::parse();
    init_logging(&cli);
    let code = match execute(cli) {
        Ok(Status::Success) => exit::SUCCESS,
        Ok(Status::Warnings) => exit::WARNINGS,
        Err(err) => {
            match &err {
                Error::Config(_) => eprintln!("error: invalid config:\n{err}"),
                _ => eprintln!("error: {err}"),
            }
            err.exit_code()
        }
    };
    report::notify::flush(std::time::Duration::from_secs(15));
    code
}

fn execute(cli: Cli) -> Result<Status, Error> {
    if let Command::Health { address } = &cli.command {
        return commands::health::run(address.as_deref(), &cli.config);
    }
    let config = config::load(&cli.config)?;
    if let Err(err) = signals::install(config.daemon.grace_period) {
        tracing::warn!("cannot catch SIGTERM/SIGINT: {err}");
    }
    let ctx = Context::new(config);
    match cli.command {
        Command::Validate => Ok(commands::validate::run(&ctx)),
        Command::Backup { profiles, dry_run } => commands::backup::run(&ctx, &profiles, dry_run),
        Command::Snapshots { profile, json } => {
            commands::snapshots::run(&ctx, profile.as_deref(), json)
        }
        Command::Forget {
            profile,
            prune,
            dry_run,
        } => commands::forget::run(&ctx, &profile, prune, dry_run),
        Command::Prune {
            repository,
            profile,
            check,
            read_data_subset,
            dry_run,
        } => commands::prune::run(
            &ctx,
            &commands::prune::Args {
                repository,
                profile,
                check,
                read_data_subset,
                dry_run,
            },
        ),
        Command::Restore(args) => commands::restore::run(&ctx, &args.into()),
        Command::Verify {
            profile,
            snapshot,
            json,
            scratch,
        } => commands::verify::run(&ctx, &profile, &snapshot, json, scratch.as_deref()),
        Command::Check {
            profile,
            read_data_subset,
        } => commands::check::run(&ctx, &profile, read_data_subset.as_deref()),
        Command::Daemon { listen } => commands::daemon::run(&ctx, listen),
        Command::Status { profile, json } => commands::status::run(&ctx, profile.as_deref(), json),
        Command::Health { .. } => unreachable!("answered before the config is read"),
    }
}

fn init_logging(cli: &Cli) {
    use tracing_subscriber::EnvFilter;
    let default = match (cli.quiet, cli.verbose) {
        (true, _) => "warn",
        (false, 0) => "info",
        (false, 1) => "debug",
        (false, _) => "trace",
    };
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("resticpilot={default}")));
    use std::io::IsTerminal;
    report::progress::enable(
        cli.log_format == LogFormat::Text && !cli.quiet && std::io::stderr().is_terminal(),
    );
    // Colours only on a terminal: container logs and log collectors get plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(report::progress::StderrWriter);
    match cli.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.with_target(false).init(),
    }
}
