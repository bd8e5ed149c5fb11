//! resticpilot: database backups with restic, made safe and boring.
//!
//! The pipeline: `cli` parses arguments into plain data, `config` turns the YAML into a
//! resolved plan, `commands` run it. `source` holds the database engines (dump, restore, drill), `restic` is the
//! only module that knows restic, `process` the only one that starts children.

// Public: what the binary (`main`), the bench (a source dumped directly) and the integration
// tests (the schema and engines, sizes in messages) use. Everything else is the crate's own.
mod cli;
mod commands;
pub mod config;
mod dirs;
mod error;
mod hooks;
mod lock;
mod maintenance;
mod manifest;
mod process;
mod report;
mod restic;
mod restore;
mod run;
mod schedule;
mod signals;
pub mod source;
mod space;
mod staging;
pub mod units;

/// The version and the commit it was built from, as `--version` prints them.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("RESTICPILOT_COMMIT"),
    ")"
);

use cli::{Cli, Command, LogFormat};
use commands::{Context, Status};
use error::{Error, exit};

/// Runs the command line and returns the process exit code.
pub fn main() -> i32 {
    quiet_broken_pipe();
    use clap::{CommandFactory, FromArgMatches};
    let parsed = Cli::command()
        .try_get_matches()
        .and_then(|m| Cli::from_arg_matches(&m).map(|cli| (cli, m)));
    let (cli, matches) = match parsed {
        Ok(parsed) => parsed,
        Err(err) => return usage_error(err),
    };
    init_logging(&cli);
    let json = cli.log_format == LogFormat::Json;
    let config_from = match matches.value_source("config") {
        Some(clap::parser::ValueSource::CommandLine) => "-c",
        Some(clap::parser::ValueSource::EnvVariable) => "RESTICPILOT_CONFIG",
        _ => "the default path (neither -c nor RESTICPILOT_CONFIG is set)",
    };
    let code = match execute(cli, config_from) {
        Ok(Status::Success) => exit::SUCCESS,
        Ok(Status::Warnings) => exit::WARNINGS,
        Err(err) => {
            print_error(&err, json);
            err.exit_code()
        }
    };
    report::notify::flush(std::time::Duration::from_secs(15));
    code
}

/// `resticpilot snapshots | head`: stdout closed by its reader ends the process quietly with
/// the shell's code for SIGPIPE (141), as a process killed by it would, instead of a panic.
/// (SIGPIPE itself stays ignored: a child that exits before reading its stdin must give an
/// error to handle, not kill resticpilot.) This is the one way out for a closed stdout:
/// `println!` reaches it through the panic hook [`quiet_broken_pipe`] installs (std panics
/// when printing fails), and [`write_stdout`] from the error of its write.
fn stdout_closed() -> ! {
    std::process::exit(141)
}

/// Whether a failed write to stdout failed because its reader went away.
fn is_closed_stdout(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::BrokenPipe
}

/// Installs the panic hook that turns `println!`'s panic on a closed stdout into
/// [`stdout_closed`]; every other panic is reported as before.
fn quiet_broken_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or_default();
        if message.starts_with("failed printing to stdout") && message.contains("Broken pipe") {
            stdout_closed();
        }
        default(info);
    }));
}

/// The run's final error: a line of text, or with `--log-format json` a JSON event like every
/// other line (one per config error, with its position as numbers). Written directly, not
/// through the log filter: RUST_LOG or -q never hide it.
fn print_error(err: &Error, json: bool) {
    let code = err.exit_code();
    match (err, json) {
        (Error::Config(errors), true) => {
            for e in &errors.0 {
                error_event(
                    &format!("invalid config: {}", e.message),
                    code,
                    serde_json::json!({
                        "file": e.file.display().to_string(),
                        "line": e.line,
                        "column": e.column,
                    }),
                );
            }
        }
        (_, true) => error_event(&err.to_string(), code, serde_json::json!({})),
        (Error::Config(_), false) => eprintln!("error: invalid config:\n{err}"),
        (_, false) => eprintln!("error: {err}"),
    }
}

/// One JSON line on stderr in the shape of the log's events (timestamp, level, message, fields).
fn error_event(message: &str, exit_code: i32, fields: serde_json::Value) {
    let mut event = serde_json::json!({
        "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        "level": "ERROR",
        "message": message,
        "exit_code": exit_code,
    });
    if let (Some(event), serde_json::Value::Object(fields)) = (event.as_object_mut(), fields) {
        event.extend(fields);
    }
    eprintln!("{event}");
}

/// Arguments clap refused (exit 2), or --help/--version (exit 0, on stdout). With the JSON log
/// format asked for (by option or RESTICPILOT_LOG_FORMAT), the refusal is a JSON event too.
fn usage_error(err: clap::Error) -> i32 {
    use clap::error::ErrorKind;
    let informational = matches!(
        err.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    );
    if informational || !json_asked() {
        err.exit();
    }
    let text = err.render().to_string();
    let message = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    error_event(
        message.strip_prefix("error: ").unwrap_or(&message),
        exit::USAGE,
        serde_json::json!({}),
    );
    exit::USAGE
}

/// Whether the command line or the environment asks for JSON logs (read before clap could
/// parse them, for clap's own errors).
fn json_asked() -> bool {
    let args: Vec<String> = std::env::args().collect();
    let mut from_args = None;
    for (i, a) in args.iter().enumerate() {
        if let Some(v) = a.strip_prefix("--log-format=") {
            from_args = Some(v.to_string());
        } else if a == "--log-format" {
            from_args = args.get(i + 1).cloned();
        }
    }
    from_args
        .or_else(|| std::env::var("RESTICPILOT_LOG_FORMAT").ok())
        .is_some_and(|v| v == "json")
}

fn execute(cli: Cli, config_from: &str) -> Result<Status, Error> {
    match &cli.command {
        Command::Health { address } => {
            return commands::health::run(address.as_deref(), &cli.config);
        }
        Command::Completions { shell } => return print_completions(*shell),
        Command::Man => return print_man_page(),
        _ => {}
    }
    let config = config::load(&cli.config).map_err(|mut errors| {
        if !cli.config.exists()
            && let Some(e) = errors.0.first_mut()
        {
            e.message = format!(
                "{}; this path comes from {config_from}. Choose another with -c FILE or \
                 RESTICPILOT_CONFIG=FILE (profiles/*.yaml in the repository are examples)",
                e.message
            );
        }
        errors
    })?;
    if let Err(err) = signals::install(config.daemon.grace_period) {
        tracing::warn!("cannot catch SIGTERM/SIGINT: {err}");
    }
    let ctx = Context::new(config);
    match cli.command {
        Command::Validate { resolved } => commands::validate::run(&ctx, resolved),
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
        Command::Health { .. } | Command::Completions { .. } | Command::Man => {
            unreachable!("answered before the config is read")
        }
    }
}

fn print_completions(shell: clap_complete::Shell) -> Result<Status, Error> {
    use clap::CommandFactory;
    let mut cmd = Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, "resticpilot", &mut out);
    write_stdout(&out, "the completion script")
}

fn print_man_page() -> Result<Status, Error> {
    use clap::CommandFactory;
    let mut out = Vec::new();
    clap_mangen::Man::new(Cli::command())
        .render(&mut out)
        .map_err(|source| Error::Io {
            what: "cannot render the manual page".to_string(),
            source,
        })?;
    write_stdout(&out, "the manual page")
}

/// `bytes` on stdout; a reader that went away ends the process through [`stdout_closed`].
fn write_stdout(bytes: &[u8], what: &str) -> Result<Status, Error> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        Ok(()) => Ok(Status::Success),
        Err(e) if is_closed_stdout(&e) => stdout_closed(),
        Err(source) => Err(Error::Io {
            what: format!("cannot write {what}"),
            source,
        }),
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
    // Colours only on a terminal, and never with NO_COLOR set (no-color.org): container logs
    // and log collectors get plain text.
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal() && !no_color)
        .with_writer(report::progress::StderrWriter);
    match cli.log_format {
        // The event's fields beside its message, not nested under "fields".
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Text => builder.with_target(false).init(),
    }
}
