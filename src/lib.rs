//! resticpilot: database backups with restic, made safe and boring.
//!
//! The pipeline: `cli` parses arguments into plain data, `config` turns the YAML into a
//! resolved plan, `commands` run it. `dump` writes verified database dumps, `restic` is the
//! only module that knows restic, `process` the only one that starts children.

pub mod cli;
pub mod commands;
pub mod config;
pub mod dump;
pub mod error;
pub mod hooks;
pub mod lock;
pub mod maintenance;
pub mod process;
pub mod restic;
pub mod staging;

use clap::Parser;

use cli::{Cli, Command, LogFormat};
use commands::{Context, Status};
use error::{Error, exit};

/// Runs the command line and returns the process exit code.
pub fn main() -> i32 {
    let cli = Cli::parse();
    init_logging(&cli);
    match execute(cli) {
        Ok(Status::Success) => exit::SUCCESS,
        Ok(Status::Warnings) => exit::WARNINGS,
        Err(err) => {
            match &err {
                Error::Config(_) => eprintln!("error: invalid config:\n{err}"),
                _ => eprintln!("error: {err}"),
            }
            err.exit_code()
        }
    }
}

fn execute(cli: Cli) -> Result<Status, Error> {
    let config = config::load(&cli.config)?;
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
    // Colours only on a terminal: container logs and log collectors get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.with_target(false).init(),
    }
}
