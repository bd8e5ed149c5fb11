//! The one place that starts child processes.
//!
//! A [`Cmd`] is plain data (program, arguments, explicit environment changes) with a `Display`
//! that prints a shell-escaped command line for logs; secrets never go into arguments, so the
//! printed line is safe to log. Running it drains stderr on its own thread into a bounded tail
//! (a chatty child can neither deadlock us nor grow our memory), and handles stdout in one of
//! three ways: captured (small outputs), streamed to a file (dumps), or fed line by line to a
//! callback (restic's JSON messages). "Could not start" and "exited badly" are different errors.
//! A child that is still running when its guard drops (an early return, a panic) is killed.
//!
//! Every running child is also kept in a registry so a shutdown (`signals`) can stop them all:
//! each child leads its own process group (so its own children are stopped with it, and a
//! terminal's Ctrl-C reaches resticpilot alone, which then decides), and says which signal stops
//! it cleanly (restic removes its repository lock on SIGINT, not on SIGTERM).
//!
//! Secrets: a command can carry the secrets it was given ([`Cmd::redact`]); every occurrence
//! (and every line of a multi-line secret) is masked in the stderr tail it leaves, and so in
//! every error made from it, before anything is logged, stored or served. A command can also
//! be handed an open descriptor ([`Cmd::inherit_fd`]) that only it inherits, so a password can
//! reach a tool as `/dev/fd/N` without ever being on disk.
//!
//! Bounds: one mechanism, a [`Watch`] polled by a supervisor thread while the child runs
//! ([`Supervisor`]); when the watch asks to stop the child, the child's group gets a signal,
//! then SIGKILL if it does not go. Two kinds of watch use it:
//! - a command's own bounds ([`Cmd::time_limit`] stops a child that runs too long,
//!   [`Cmd::stall_limit`] one whose output stops growing): SIGKILL at once, and the error says
//!   which bound and how long;
//! - a caller's [`Watch`] ([`Cmd::watch`]): it also sees each line of the child's stderr as it
//!   comes, is polled every half second, and stops the child (it stopped making progress, a
//!   deadline passed, or its stderr says waiting is pointless) with its stop signal first. This
//!   is how restic's waits on a repository server are bounded.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

/// How much of a child's stderr is kept for error messages.
const STDERR_TAIL_BYTES: usize = 16 * 1024;
/// How long a stopped child gets to exit before it is killed.
const KILL_AFTER: Duration = Duration::from_secs(10);
/// How long a cleanup child (an on_failure hook) may run once a shutdown stops work.
const CLEANUP_LIMIT: Duration = Duration::from_secs(30);
/// How often a [`Watch`] is polled.
const WATCH_TICK: Duration = Duration::from_millis(500);
/// How often a command's own bounds ([`Cmd::time_limit`], [`Cmd::stall_limit`]) are checked.
const BOUNDS_TICK: Duration = Duration::from_millis(100);
/// How long a child a [`Watch`] stopped gets to exit before it is killed (restic tries to
/// remove its lock first; against a server that is gone that cannot work).
const WATCH_KILL_AFTER: Duration = Duration::from_secs(5);

/// Supervises one running child: sees its stderr lines, and is polled while it runs.
pub trait Watch: Send + Sync {
    /// One line of the child's stderr (also kept in the stderr tail as usual).
    fn on_stderr(&self, _line: &str) {}
    /// Called every half second while the child (`pid`, also its process group) runs.
    /// `Some(reason)` stops it: its stop signal first, SIGKILL if it is still there
    /// [`WATCH_KILL_AFTER`] later. The watch keeps the reason for its owner to report.
    fn poll(&self, pid: u32) -> Option<String>;
}

#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("could not start {program}: {source}")]
    Spawn {
        program: String,
        #[source]
        source: io::Error,
    },
    #[error("{program} {how}{}", stderr_suffix(.stderr))]
    Failed {
        program: String,
        how: String,
        stderr: String,
    },
    #[error("i/o error while running {program}: {source}")]
    Io {
        program: String,
        #[source]
        source: io::Error,
    },
    #[error("{program} not started: resticpilot is shutting down")]
    ShuttingDown { program: String },
    /// Stopped by resticpilot because a bound ([`Cmd::time_limit`], [`Cmd::stall_limit`])
    /// ran out; `reason` says which.
    #[error("{program} was stopped: {reason}")]
    Stopped { program: String, reason: String },
}

fn stderr_suffix(stderr: &str) -> String {
    let trimmed = stderr.trim();
    if trimmed.is_empty() {
        String::new()
    } else {
        format!(": {trimmed}")
    }
}

/// A command to run: program, arguments and the changes to the inherited environment.
#[derive(Clone)]
pub struct Cmd {
    program: PathBuf,
    args: Vec<OsString>,
    /// `Some(value)` sets a variable, `None` removes an inherited one.
    env: BTreeMap<OsString, Option<OsString>>,
    /// Names of variables whose values must never be printed.
    secret_env: Vec<OsString>,
    cwd: Option<PathBuf>,
    /// The signal that asks this program to stop cleanly.
    stop_signal: StopSignal,
    /// Cleanup work (on_failure hooks): may start and run a while during a shutdown.
    cleanup: bool,
    /// Values masked in everything the child prints that we keep.
    secrets: Secrets,
    /// Descriptors this child (and no other) inherits, under the same numbers.
    fds: Vec<Arc<OwnedFd>>,
    time_limit: Option<Limit>,
    stall_limit: Option<Limit>,
    /// A file to read as stdin (for [`Cmd::output`]).
    stdin: Option<PathBuf>,
    /// Supervision of the running child, if any.
    watch: Option<Arc<dyn Watch>>,
}

/// A bound on a child, with the config key that sets it (for the message).
#[derive(Clone, Debug)]
struct Limit {
    after: Duration,
    key: String,
}

/// Secret values to mask in text. Lines of a multi-line value are masked one by one too: a
/// tool that rejects a value often quotes only the part it choked on.
#[derive(Clone, Default)]
pub struct Secrets(Vec<String>);

impl Secrets {
    /// Adds `value` (ignored when empty).
    pub fn add(&mut self, value: &str) {
        let mut add_one = |v: &str| {
            let v = v.trim_matches(['\r', '\n']);
            if !v.is_empty() && !self.0.iter().any(|s| s == v) {
                self.0.push(v.to_string());
            }
        };
        add_one(value);
        for line in value.lines() {
            add_one(line);
        }
        // Longest first, so a line of a longer secret never leaves half of it visible.
        self.0.sort_by_key(|s| std::cmp::Reverse(s.len()));
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `text` with every secret replaced by `<redacted>`. Secrets shorter than four
    /// characters are masked only where they stand alone (between non-alphanumeric
    /// characters), so a password "ab" does not garble every word that contains "ab".
    pub fn mask(&self, text: &str) -> String {
        let mut out = text.to_string();
        for secret in &self.0 {
            if secret.chars().count() >= 4 {
                out = out.replace(secret.as_str(), "<redacted>");
            } else {
                out = mask_word(&out, secret);
            }
        }
        out
    }
}

fn mask_word(text: &str, word: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut prev: Option<char> = None;
    while let Some(at) = rest.find(word) {
        let before = rest[..at].chars().last().or(prev);
        let after = rest[at + word.len()..].chars().next();
        let alone =
            !before.is_some_and(char::is_alphanumeric) && !after.is_some_and(char::is_alphanumeric);
        out.push_str(&rest[..at]);
        out.push_str(if alone { "<redacted>" } else { word });
        prev = word.chars().last();
        rest = &rest[at + word.len()..];
    }
    out.push_str(rest);
    out
}

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secrets({} redacted)", self.0.len())
    }
}

/// How a child is asked to stop at shutdown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopSignal {
    Terminate,
    Interrupt,
}

impl StopSignal {
    fn signal(self) -> Signal {
        match self {
            StopSignal::Terminate => Signal::SIGTERM,
            StopSignal::Interrupt => Signal::SIGINT,
        }
    }
}

impl Cmd {
    pub fn new(program: impl Into<PathBuf>) -> Self {
        Cmd {
            program: program.into(),
            args: Vec::new(),
            env: BTreeMap::new(),
            secret_env: Vec::new(),
            cwd: None,
            stop_signal: StopSignal::Terminate,
            cleanup: false,
            secrets: Secrets::default(),
            fds: Vec::new(),
            time_limit: None,
            stall_limit: None,
            stdin: None,
            watch: None,
        }
    }

    /// Gives the program the file `path` as its stdin (with [`Cmd::output`]).
    pub fn stdin_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.stdin = Some(path.into());
        self
    }

    /// Declares `secret` as given to this program (through a file, a descriptor or the
    /// environment): it is masked in the stderr the program leaves, and in every error made
    /// from it.
    pub fn redact(mut self, secret: &str) -> Self {
        self.secrets.add(secret);
        self
    }

    /// Masks this command's secrets in `text` (for messages callers build from its output).
    pub fn mask(&self, text: &str) -> String {
        self.secrets.mask(text)
    }

    /// Lets the program inherit `fd` under its own number (`/dev/fd/N`); no other child does.
    pub fn inherit_fd(mut self, fd: Arc<OwnedFd>) -> Self {
        self.fds.push(fd);
        self
    }

    /// Stops the program when it runs longer than `after`; `key` is the setting that says so
    /// (named in the error).
    pub fn time_limit(mut self, after: Duration, key: &str) -> Self {
        self.time_limit = Some(Limit {
            after,
            key: key.to_string(),
        });
        self
    }

    /// Stops the program when its output (the file it writes, or the bytes it passes through
    /// [`Cmd::pipe_to`]) does not grow for `after`; `key` names the setting.
    pub fn stall_limit(mut self, after: Duration, key: &str) -> Self {
        self.stall_limit = Some(Limit {
            after,
            key: key.to_string(),
        });
        self
    }

    /// Supervises the child with `watch` (see [`Watch`]).
    pub fn watch(mut self, watch: Arc<dyn Watch>) -> Self {
        self.watch = Some(watch);
        self
    }

    /// The signal that stops this program cleanly at shutdown (default SIGTERM).
    pub fn stop_signal(mut self, signal: StopSignal) -> Self {
        self.stop_signal = signal;
        self
    }

    /// Marks cleanup work that must still run while a shutdown stops everything else (bounded
    /// to a short time).
    pub fn cleanup(mut self) -> Self {
        self.cleanup = true;
        self
    }

    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.env
            .insert(key.as_ref().to_owned(), Some(value.as_ref().to_owned()));
        self
    }

    /// Sets a variable whose value is a secret: it is passed to the child and never displayed.
    pub fn secret_env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.secret_env.push(key.as_ref().to_owned());
        self.env(key, value)
    }

    pub fn env_remove(mut self, key: impl AsRef<OsStr>) -> Self {
        self.env.insert(key.as_ref().to_owned(), None);
        self
    }

    pub fn current_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cwd = Some(dir.into());
        self
    }

    /// The program's file name, for messages.
    pub fn program_name(&self) -> String {
        self.program
            .file_name()
            .unwrap_or(self.program.as_os_str())
            .to_string_lossy()
            .into_owned()
    }

    fn command(&self) -> Command {
        let mut command = Command::new(&self.program);
        command.args(&self.args);
        for (key, value) in &self.env {
            match value {
                Some(value) => command.env(key, value),
                None => command.env_remove(key),
            };
        }
        if let Some(dir) = &self.cwd {
            command.current_dir(dir);
        }
        command.process_group(0);
        command
    }

    fn spawn(&self, stdin: Stdio, stdout: Stdio) -> Result<Running, ProcessError> {
        if stopping() && !self.cleanup {
            return Err(ProcessError::ShuttingDown {
                program: self.program_name(),
            });
        }
        tracing::debug!(command = %self, "starting");
        let mut command = self.command();
        command.stdin(stdin).stdout(stdout).stderr(Stdio::piped());
        let spawned = {
            // Descriptors meant for this child are inheritable only while it is being
            // started, and every start takes this lock: no other child can inherit them.
            let _only_us = SPAWN.lock().unwrap_or_else(|p| p.into_inner());
            let set = |fd: &OwnedFd, flags| rustix::io::fcntl_setfd(fd.as_fd(), flags);
            let mut result = self
                .fds
                .iter()
                .try_for_each(|fd| set(fd, rustix::io::FdFlags::empty()))
                .map_err(io::Error::from)
                .and_then(|()| command.spawn());
            for fd in &self.fds {
                if let Err(e) = set(fd, rustix::io::FdFlags::CLOEXEC) {
                    result = Err(io::Error::from(e));
                }
            }
            result
        };
        let mut child = spawned.map_err(|source| ProcessError::Spawn {
            program: self.program.display().to_string(),
            source,
        })?;
        register(&child, self);
        let watch = self.watch.clone();
        let stderr = child.stderr.take().map(|pipe| {
            std::thread::spawn(move || {
                let mut tail = Tail::new(STDERR_TAIL_BYTES);
                match watch {
                    None => {
                        let _ = io::copy(&mut BufReader::new(pipe), &mut tail);
                    }
                    Some(watch) => {
                        let mut reader = BufReader::new(pipe);
                        let mut line = Vec::new();
                        while let Ok(n) = reader.read_until(b'\n', &mut line) {
                            if n == 0 {
                                break;
                            }
                            let _ = tail.write_all(&line);
                            watch.on_stderr(String::from_utf8_lossy(&line).trim_end());
                            line.clear();
                        }
                    }
                }
                tail.into_string()
            })
        });
        let supervisor = self.watch.as_ref().map(|watch| {
            Supervisor::start(
                vec![child.id()],
                watch.clone(),
                Stopping {
                    tick: WATCH_TICK,
                    signal: self.stop_signal.signal(),
                    kill_after: WATCH_KILL_AFTER,
                    announce: true,
                },
                self.program_name(),
            )
        });
        Ok(Running {
            child: Some(child),
            stderr,
            program: self.program_name(),
            secrets: self.secrets.clone(),
            supervisor,
        })
    }

    /// Runs to completion with stdout captured in memory. For commands with small output.
    ///
    /// Fails only when the program cannot be started or an i/o error occurs; a non-zero exit is
    /// reported in the returned [`Output`] for the caller to interpret.
    pub fn output(&self) -> Result<Output, ProcessError> {
        let stdin = match &self.stdin {
            Some(path) => Stdio::from(File::open(path).map_err(|source| ProcessError::Io {
                program: self.program_name(),
                source: io::Error::new(
                    source.kind(),
                    format!("cannot open {}: {source}", path.display()),
                ),
            })?),
            None => Stdio::null(),
        };
        let mut running = self.spawn(stdin, Stdio::piped())?;
        let watchdog = self.watchdog(&[&running], None);
        let mut stdout = Vec::new();
        if let Some(mut pipe) = running.stdout() {
            pipe.read_to_end(&mut stdout)
                .map_err(|source| running.io_error(source))?;
        }
        let waited = running.wait();
        self.check_watchdog(watchdog)?;
        let (status, stderr) = waited?;
        Ok(Output {
            status,
            stdout,
            stderr,
        })
    }

    /// Runs to completion with stdout streamed into `path` (created with mode 0600, truncated).
    /// Memory stays flat whatever the output size.
    ///
    /// Fails when the program cannot be started or the file cannot be written.
    pub fn output_to_file(&self, path: &Path) -> Result<Output, ProcessError> {
        let file = create_private(path).map_err(|source| ProcessError::Io {
            program: self.program_name(),
            source: io::Error::new(
                source.kind(),
                format!("cannot create {}: {source}", path.display()),
            ),
        })?;
        let progress = file.try_clone().ok().map(Progress::File);
        let running = self.spawn(Stdio::null(), Stdio::from(file))?;
        let watchdog = self.watchdog(&[&running], progress);
        let waited = running.wait();
        self.check_watchdog(watchdog)?;
        let (status, stderr) = waited?;
        Ok(Output {
            status,
            stdout: Vec::new(),
            stderr,
        })
    }

    /// Starts supervising `children` with this command's bounds, if it has any: a
    /// [`Supervisor`] whose watch is [`Bounds`], killing them all at once when one runs out.
    fn watchdog(
        &self,
        children: &[&Running],
        progress: Option<Progress>,
    ) -> Option<(Supervisor, Arc<Bounds>)> {
        if self.time_limit.is_none() && self.stall_limit.is_none() {
            return None;
        }
        let pids = children
            .iter()
            .filter_map(|r| r.child.as_ref().map(Child::id))
            .collect();
        let bounds = Arc::new(Bounds::new(
            self.time_limit.clone(),
            self.stall_limit.clone().zip(progress),
        ));
        let supervisor = Supervisor::start(
            pids,
            bounds.clone(),
            Stopping {
                tick: BOUNDS_TICK,
                signal: Signal::SIGKILL,
                kill_after: KILL_AFTER,
                announce: false,
            },
            self.program_name(),
        );
        Some((supervisor, bounds))
    }

    /// Stops supervising; the error says which bound stopped the child, if one did.
    fn check_watchdog(
        &self,
        watchdog: Option<(Supervisor, Arc<Bounds>)>,
    ) -> Result<(), ProcessError> {
        let Some((supervisor, bounds)) = watchdog else {
            return Ok(());
        };
        supervisor.finish();
        match bounds
            .reason
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            Some(reason) => Err(ProcessError::Stopped {
                program: self.program_name(),
                reason,
            }),
            None => Ok(()),
        }
    }

    /// Runs to completion, handing each line of stdout to `on_line` as it arrives.
    ///
    /// Fails when the program cannot be started or its stdout cannot be read.
    pub fn output_lines(&self, mut on_line: impl FnMut(&str)) -> Result<Output, ProcessError> {
        let mut running = self.spawn(Stdio::null(), Stdio::piped())?;
        if let Some(pipe) = running.stdout() {
            let mut reader = BufReader::new(pipe);
            let mut line = String::new();
            loop {
                line.clear();
                match reader.read_line(&mut line) {
                    Ok(0) => break,
                    Ok(_) if self.secrets.is_empty() => {
                        on_line(line.trim_end_matches(['\n', '\r']))
                    }
                    Ok(_) => on_line(&self.secrets.mask(line.trim_end_matches(['\n', '\r']))),
                    Err(source) => return Err(running.io_error(source)),
                }
            }
        }
        let (status, stderr) = running.wait()?;
        Ok(Output {
            status,
            stdout: Vec::new(),
            stderr,
        })
    }

    /// Runs to completion with stdout streamed into `sink` as it arrives (memory stays flat).
    ///
    /// Fails when the program cannot be started, its stdout cannot be read, or `sink` refuses a
    /// write (the child is then killed).
    pub fn output_to_writer(&self, sink: &mut dyn Write) -> Result<Output, ProcessError> {
        let mut running = self.spawn(Stdio::null(), Stdio::piped())?;
        if let Some(mut pipe) = running.stdout() {
            io::copy(&mut pipe, sink).map_err(|source| running.io_error(source))?;
        }
        sink.flush().map_err(|source| running.io_error(source))?;
        let (status, stderr) = running.wait()?;
        Ok(Output {
            status,
            stdout: Vec::new(),
            stderr,
        })
    }

    /// Runs `self` with its stdout fed into `consumer`'s stdin, line by line through `filter`
    /// (which writes each line, changed or not, to the writer it is given). Nothing is held in
    /// memory beyond one line. `consumer` is started first, so a consumer that cannot start
    /// never starts the producer.
    ///
    /// When the consumer exits before the producer is done (it failed on its input), the
    /// producer is killed and [`Piped::consumer_quit_early`] is set.
    ///
    /// Fails when either program cannot be started, the producer's stdout cannot be read, or
    /// `filter` fails for another reason than the consumer going away.
    pub fn pipe_to(
        &self,
        consumer: &Cmd,
        filter: &mut LineFilter<'_>,
    ) -> Result<Piped, ProcessError> {
        self.feed(consumer, |pipe, stdin, passed| {
            let mut reader = BufReader::with_capacity(256 * 1024, pipe);
            let mut writer = io::BufWriter::with_capacity(256 * 1024, stdin);
            let mut line = Vec::new();
            loop {
                line.clear();
                match reader.read_until(b'\n', &mut line) {
                    Ok(0) => break,
                    Ok(n) => {
                        passed.fetch_add(n as u64, Ordering::Relaxed);
                    }
                    Err(e) => return Err(Transfer::Read(e)),
                }
                match filter(&line, &mut writer) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::BrokenPipe => return Ok(true),
                    Err(e) => return Err(Transfer::Feed(e)),
                }
            }
            match writer.flush() {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::BrokenPipe => return Ok(true),
                Err(e) => return Err(Transfer::Feed(e)),
            }
            // Dropping the writer closes the consumer's stdin: its end of input.
            drop(writer.into_inner().ok());
            Ok(false)
        })
    }

    /// The plumbing of [`Cmd::pipe_to`] and [`Cmd::tee_to`]: starts `consumer` (first, so a
    /// consumer that cannot start never starts the producer), then `self`; `transfer` moves the
    /// producer's stdout into the consumer's stdin (counting bytes in `passed` for the stall
    /// bound) and says whether the consumer quit early, in which case the producer is killed.
    /// The producer's bounds, else the consumer's, cover both.
    fn feed(
        &self,
        consumer: &Cmd,
        transfer: impl FnOnce(ChildStdout, ChildStdin, &AtomicU64) -> Result<bool, Transfer>,
    ) -> Result<Piped, ProcessError> {
        let mut sink = consumer.spawn(Stdio::piped(), Stdio::piped())?;
        let sink_stdout = sink.stdout().map(|pipe| {
            std::thread::spawn(move || {
                let mut tail = Tail::new(STDERR_TAIL_BYTES);
                let _ = io::copy(&mut BufReader::new(pipe), &mut tail);
                tail.into_string()
            })
        });
        let stdin = sink.child.as_mut().and_then(|c| c.stdin.take());
        let mut source = self.spawn(Stdio::null(), Stdio::piped())?;
        let passed = Arc::new(AtomicU64::new(0));
        let bounds = if self.time_limit.is_some() || self.stall_limit.is_some() {
            self
        } else {
            consumer
        };
        let watchdog = bounds.watchdog(&[&source, &sink], Some(Progress::Counter(passed.clone())));
        let mut quit_early = false;
        if let (Some(pipe), Some(stdin)) = (source.stdout(), stdin) {
            match transfer(pipe, stdin, &passed) {
                Ok(quit) => quit_early = quit,
                Err(Transfer::Read(e)) => {
                    bounds.check_watchdog(watchdog)?;
                    return Err(source.io_error(e));
                }
                Err(Transfer::Write(e)) => return Err(source.io_error(e)),
                Err(Transfer::Feed(e)) => return Err(sink.io_error(e)),
            }
        }
        if quit_early && let Some(child) = source.child.as_mut() {
            let _ = child.kill();
        }
        let consumer_waited = sink.wait();
        let consumer_stdout = sink_stdout
            .map(|h| h.join().unwrap_or_default())
            .unwrap_or_default();
        let producer_waited = source.wait();
        bounds.check_watchdog(watchdog)?;
        let (consumer_status, consumer_stderr) = consumer_waited?;
        let consumer_stdout = consumer.secrets.mask(&consumer_stdout);
        let (producer_status, producer_stderr) = producer_waited?;
        Ok(Piped {
            producer: Output {
                status: producer_status,
                stdout: Vec::new(),
                stderr: producer_stderr,
            },
            consumer: Output {
                status: consumer_status,
                stdout: consumer_stdout.into_bytes(),
                stderr: consumer_stderr,
            },
            consumer_quit_early: quit_early,
        })
    }

    /// Runs `self` with its stdout written both into `path` (created with mode 0600,
    /// truncated) and into `checker`'s stdin, so that a check reading the whole output runs
    /// beside the producer instead of after it. Bytes are passed on in blocks (nothing is
    /// held beyond one). `checker` is started first; the producer's bounds, else the
    /// checker's, cover both.
    ///
    /// When the checker exits before the producer is done, the producer is killed and
    /// [`Piped::consumer_quit_early`] is set.
    ///
    /// Fails when either program cannot be started, `path` cannot be written, or the
    /// producer's stdout cannot be read.
    pub fn tee_to(&self, path: &Path, checker: &Cmd) -> Result<Piped, ProcessError> {
        let mut file = create_private(path).map_err(|source| ProcessError::Io {
            program: self.program_name(),
            source: io::Error::new(
                source.kind(),
                format!("cannot create {}: {source}", path.display()),
            ),
        })?;
        self.feed(checker, |mut pipe, mut stdin, passed| {
            let mut block = vec![0u8; 256 * 1024];
            loop {
                let n = match pipe.read(&mut block) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(Transfer::Read(e)),
                };
                passed.fetch_add(n as u64, Ordering::Relaxed);
                file.write_all(&block[..n]).map_err(|e| {
                    Transfer::Write(io::Error::new(
                        e.kind(),
                        format!("cannot write {}: {e}", path.display()),
                    ))
                })?;
                match stdin.write_all(&block[..n]) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::BrokenPipe => return Ok(true),
                    Err(e) => return Err(Transfer::Feed(e)),
                }
            }
            // Dropping stdin closes the checker's input: its end of input.
            Ok(false)
        })
    }
}

/// Why [`Cmd::feed`]'s transfer stopped: the producer's output could not be read, the
/// producer's output could not be written where it goes besides the consumer, or the consumer's
/// input could not be written.
enum Transfer {
    Read(io::Error),
    Write(io::Error),
    Feed(io::Error),
}

/// What [`Cmd::pipe_to`] passes each line through: the line (with its newline) and the
/// consumer's stdin to write it, or something else, to.
pub type LineFilter<'a> = dyn FnMut(&[u8], &mut dyn Write) -> io::Result<()> + 'a;

/// How the two ends of [`Cmd::pipe_to`] finished. The producer's stdout went to the consumer,
/// so only the consumer's (bounded) stdout is kept.
#[derive(Debug)]
pub struct Piped {
    pub producer: Output,
    pub consumer: Output,
    /// The consumer stopped reading before the producer was done; the producer was killed.
    pub consumer_quit_early: bool,
}

impl fmt::Display for Cmd {
    /// The command line as a shell would need it typed. Environment values are not shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", shell_quote(self.program.as_os_str()))?;
        for arg in &self.args {
            write!(f, " {}", shell_quote(arg))?;
        }
        Ok(())
    }
}

impl fmt::Debug for Cmd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let env: Vec<String> = self
            .env
            .iter()
            .map(|(k, v)| match v {
                None => format!("-{}", k.to_string_lossy()),
                Some(_) if self.secret_env.contains(k) => {
                    format!("{}=<redacted>", k.to_string_lossy())
                }
                Some(v) => format!("{}={}", k.to_string_lossy(), v.to_string_lossy()),
            })
            .collect();
        f.debug_struct("Cmd")
            .field("command", &self.to_string())
            .field("env", &env)
            .finish()
    }
}

/// Quotes `arg` for a POSIX shell when it needs quoting.
pub fn shell_quote(arg: &OsStr) -> String {
    let s = arg.to_string_lossy();
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@%+".contains(c));
    if plain {
        s.into_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// A finished child: its status and the tail of its stderr (and stdout where captured).
#[derive(Debug)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

impl Output {
    /// `Ok(self)` when the child exited 0, otherwise the [`ProcessError::Failed`] describing how.
    pub fn ensure_success(self, program: &str) -> Result<Output, ProcessError> {
        if self.status.success() {
            Ok(self)
        } else {
            Err(ProcessError::Failed {
                program: program.to_string(),
                how: describe_status(self.status),
                stderr: self.stderr,
            })
        }
    }

    pub fn stdout_string(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
}

/// "exited with status 2" or "was killed by signal 9 (SIGKILL)".
pub fn describe_status(status: ExitStatus) -> String {
    if let Some(code) = status.code() {
        format!("exited with status {code}")
    } else if let Some(signal) = status.signal() {
        let name = match signal {
            1 => " (SIGHUP)",
            2 => " (SIGINT)",
            6 => " (SIGABRT)",
            9 => " (SIGKILL)",
            11 => " (SIGSEGV)",
            13 => " (SIGPIPE)",
            15 => " (SIGTERM)",
            _ => "",
        };
        format!("was killed by signal {signal}{name}")
    } else {
        format!("ended abnormally ({status})")
    }
}

/// A started child. Killed and reaped if dropped before [`Running::wait`].
struct Running {
    child: Option<Child>,
    stderr: Option<JoinHandle<String>>,
    program: String,
    secrets: Secrets,
    /// The supervisor of the command's [`Watch`], if any: stopped once the child is reaped.
    supervisor: Option<Supervisor>,
}

impl Running {
    fn stdout(&mut self) -> Option<ChildStdout> {
        self.child.as_mut().and_then(|c| c.stdout.take())
    }

    fn io_error(&self, source: io::Error) -> ProcessError {
        ProcessError::Io {
            program: self.program.clone(),
            source,
        }
    }

    fn wait(mut self) -> Result<(ExitStatus, String), ProcessError> {
        let mut child = self.child.take().expect("child present until waited");
        let waited = child.wait();
        if let Some(supervisor) = self.supervisor.take() {
            supervisor.finish();
        }
        unregister(child.id());
        let status = waited.map_err(|source| self.io_error(source))?;
        let stderr = self
            .stderr
            .take()
            .map(|h| h.join().unwrap_or_default())
            .unwrap_or_default();
        Ok((status, self.secrets.mask(&stderr)))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // The whole group: whatever the child started goes with it.
            let _ = killpg(pgid(&child), Signal::SIGKILL);
            let _ = child.kill();
            let _ = child.wait();
            if let Some(supervisor) = self.supervisor.take() {
                supervisor.finish();
            }
            unregister(child.id());
        }
    }
}

/// A running child, as the shutdown sees it.
struct Tracked {
    program: String,
    stop_signal: StopSignal,
    cleanup: bool,
    started: Instant,
    stop_sent: Option<Instant>,
}

/// Every running child by pid (which is also its process group id).
static CHILDREN: Mutex<BTreeMap<u32, Tracked>> = Mutex::new(BTreeMap::new());

fn children() -> std::sync::MutexGuard<'static, BTreeMap<u32, Tracked>> {
    CHILDREN
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn pgid(child: &Child) -> Pid {
    Pid::from_raw(child.id() as i32)
}

fn register(child: &Child, cmd: &Cmd) {
    children().insert(
        child.id(),
        Tracked {
            program: cmd.program_name(),
            stop_signal: cmd.stop_signal,
            cleanup: cmd.cleanup,
            started: Instant::now(),
            stop_sent: None,
        },
    );
}

fn unregister(pid: u32) {
    children().remove(&pid);
}

/// "restic (pid 12)", for each running child.
pub fn running_children() -> Vec<String> {
    children()
        .iter()
        .map(|(pid, t)| format!("{} (pid {pid})", t.program))
        .collect()
}

/// One pass of the shutdown: asks every running child to stop with its stop signal, kills
/// those that did not stop within a few seconds of being asked, and gives cleanup children a
/// short while before doing the same to them. `signals` calls it repeatedly once work is being
/// stopped, so children started meanwhile are caught too.
pub fn stop_children() {
    let now = Instant::now();
    let mut children = children();
    for (pid, t) in children.iter_mut() {
        let group = Pid::from_raw(*pid as i32);
        match t.stop_sent {
            None if !t.cleanup || now.duration_since(t.started) >= CLEANUP_LIMIT => {
                tracing::info!(
                    "stopping {} (pid {pid}) with {}",
                    t.program,
                    t.stop_signal.signal()
                );
                let _ = killpg(group, t.stop_signal.signal());
                t.stop_sent = Some(now);
            }
            Some(sent) if now.duration_since(sent) >= KILL_AFTER => {
                tracing::warn!(
                    "{} (pid {pid}) did not stop within {}s: killing it",
                    t.program,
                    KILL_AFTER.as_secs()
                );
                let _ = killpg(group, Signal::SIGKILL);
                t.stop_sent = Some(now);
            }
            _ => {}
        }
    }
}

/// Taken around every start of a child; see [`Cmd::inherit_fd`].
static SPAWN: Mutex<()> = Mutex::new(());

/// What a stall limit watches grow.
enum Progress {
    /// The file the child writes (its size).
    File(File),
    /// Bytes passed on by [`Cmd::pipe_to`].
    Counter(Arc<AtomicU64>),
}

impl Progress {
    fn value(&self) -> u64 {
        match self {
            Progress::File(f) => f.metadata().map(|m| m.len()).unwrap_or(0),
            Progress::Counter(c) => c.load(Ordering::Relaxed),
        }
    }
}

/// A command's own bounds as a [`Watch`]: its time limit and its stall limit, and why one ran
/// out (kept for [`Cmd::check_watchdog`]'s error).
struct Bounds {
    started: Instant,
    time: Option<Limit>,
    stall: Option<(Limit, Progress)>,
    /// The progress value last seen, and when it last changed.
    last: Mutex<(u64, Instant)>,
    reason: Mutex<Option<String>>,
}

impl Bounds {
    fn new(time: Option<Limit>, stall: Option<(Limit, Progress)>) -> Bounds {
        let now = Instant::now();
        let last = stall.as_ref().map(|(_, p)| p.value()).unwrap_or(0);
        Bounds {
            started: now,
            time,
            stall,
            last: Mutex::new((last, now)),
            reason: Mutex::new(None),
        }
    }
}

impl Watch for Bounds {
    fn poll(&self, _pid: u32) -> Option<String> {
        let now = Instant::now();
        let mut why = None;
        if let Some(t) = &self.time
            && now.duration_since(self.started) >= t.after
        {
            why = Some(format!(
                "it did not finish within {} ({})",
                crate::units::show_duration(t.after),
                t.key
            ));
        }
        if let Some((limit, progress)) = &self.stall {
            let value = progress.value();
            let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
            if value != last.0 {
                *last = (value, now);
            } else if why.is_none() && now.duration_since(last.1) >= limit.after {
                why = Some(format!(
                    "it made no progress for {} ({} bytes so far; {})",
                    crate::units::show_duration(limit.after),
                    value,
                    limit.key
                ));
            }
        }
        if let Some(why) = &why {
            *self.reason.lock().unwrap_or_else(|p| p.into_inner()) = Some(why.clone());
        }
        why
    }
}

/// How a [`Supervisor`] polls its watch and stops its children.
#[derive(Clone, Copy)]
struct Stopping {
    /// How often the watch is polled.
    tick: Duration,
    /// What the children's groups get when the watch asks to stop them.
    signal: Signal,
    /// SIGKILL follows if they are still there this long after.
    kill_after: Duration,
    /// Whether stopping is logged (a command's own bounds say why in their error instead).
    announce: bool,
}

/// The one thing that bounds running children: a thread that polls a [`Watch`] every tick
/// until [`Supervisor::finish`], and stops the children's process groups when it asks.
struct Supervisor {
    done: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Supervisor {
    /// Supervises `pids` (each also its process group; the watch is polled with the first).
    fn start(pids: Vec<u32>, watch: Arc<dyn Watch>, how: Stopping, program: String) -> Supervisor {
        let done = Arc::new(AtomicBool::new(false));
        let finished = done.clone();
        let name = format!("watch {program}");
        let spawned = std::thread::Builder::new()
            .name(name.clone())
            .spawn(move || {
                let pid = pids.first().copied().unwrap_or_default();
                let stop = |signal: Signal| {
                    for pid in &pids {
                        let _ = killpg(Pid::from_raw(*pid as i32), signal);
                    }
                };
                let mut stop_sent: Option<Instant> = None;
                let mut next = Instant::now() + how.tick;
                loop {
                    // Woken early by `finish`; a spurious wake-up waits out the tick.
                    let now = Instant::now();
                    if finished.load(Ordering::SeqCst) {
                        return;
                    }
                    if now < next {
                        std::thread::park_timeout(next - now);
                        continue;
                    }
                    next = now + how.tick;
                    match stop_sent {
                        None => {
                            if let Some(reason) = watch.poll(pid) {
                                if how.announce {
                                    tracing::warn!(
                                        "stopping {program} (pid {pid}) with {}: {reason}",
                                        how.signal
                                    );
                                }
                                stop(how.signal);
                                stop_sent = Some(Instant::now());
                            }
                        }
                        Some(sent) if sent.elapsed() >= how.kill_after => {
                            tracing::warn!(
                                "{program} (pid {pid}) did not stop within {}s: killing it",
                                how.kill_after.as_secs()
                            );
                            stop(Signal::SIGKILL);
                            stop_sent = Some(Instant::now());
                        }
                        Some(_) => {}
                    }
                }
            });
        let thread = spawned
            .map_err(|err| tracing::warn!("cannot start the {name} thread: {err}"))
            .ok();
        Supervisor { done, thread }
    }

    /// Stops supervising (the children were reaped) and waits for the thread to end, so what
    /// the watch recorded is final.
    fn finish(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        self.done.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            let _ = thread.join();
        }
    }
}

impl Drop for Supervisor {
    /// An early return stops supervising too (its children are killed by their guards).
    fn drop(&mut self) {
        self.stop();
    }
}

/// Set once running work is being stopped (by `signals` at the end of a grace period): every
/// running child is stopped, and only cleanup children may start.
static STOPPING: AtomicBool = AtomicBool::new(false);

/// From now on, children are being stopped and only cleanup may start.
pub fn stop_all() {
    STOPPING.store(true, Ordering::SeqCst);
}

/// Whether [`stop_all`] was called.
pub fn stopping() -> bool {
    STOPPING.load(Ordering::SeqCst)
}

/// Keeps the last `cap` bytes written to it.
struct Tail {
    buf: Vec<u8>,
    cap: usize,
    truncated: bool,
}

impl Tail {
    fn new(cap: usize) -> Self {
        Tail {
            buf: Vec::new(),
            cap,
            truncated: false,
        }
    }

    fn into_string(self) -> String {
        let text = String::from_utf8_lossy(&self.buf).into_owned();
        if self.truncated {
            format!("[...] {text}")
        } else {
            text
        }
    }
}

impl Write for Tail {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() > self.cap {
            let excess = self.buf.len() - self.cap;
            self.buf.drain(..excess);
            self.truncated = true;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Creates (or truncates) a file readable and writable by the owner only.
pub fn create_private(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_quotes_only_what_needs_it() {
        let cmd = Cmd::new("restic")
            .args(["backup", "--tag", "profile:a b", "it's"])
            .secret_env("RESTIC_PASSWORD", "hunter2");
        assert_eq!(
            cmd.to_string(),
            r"restic backup --tag 'profile:a b' 'it'\''s'"
        );
        assert!(!format!("{cmd:?}").contains("hunter2"));
    }

    #[test]
    fn failed_child_reports_status_and_stderr_tail() {
        let out = Cmd::new("sh")
            .args(["-c", "echo oops >&2; exit 4"])
            .output()
            .unwrap();
        let err = out.ensure_success("sh").unwrap_err().to_string();
        assert_eq!(err, "sh exited with status 4: oops");
    }

    #[test]
    fn missing_program_is_a_spawn_error() {
        let err = Cmd::new("/nonexistent/tool").output().unwrap_err();
        assert!(matches!(err, ProcessError::Spawn { .. }), "{err}");
        assert!(
            err.to_string()
                .starts_with("could not start /nonexistent/tool")
        );
    }

    #[test]
    fn stderr_tail_is_bounded() {
        let out = Cmd::new("sh")
            .args([
                "-c",
                "head -c 200000 /dev/zero | tr '\\0' x >&2; echo end >&2",
            ])
            .output()
            .unwrap();
        assert!(out.stderr.len() <= STDERR_TAIL_BYTES + 10);
        assert!(out.stderr.starts_with("[...] ") && out.stderr.ends_with("end\n"));
    }

    #[test]
    fn writer_gets_the_whole_stdout() {
        let mut sink = Vec::new();
        let out = Cmd::new("sh")
            .args(["-c", "printf 'a\\nb\\n'"])
            .output_to_writer(&mut sink)
            .unwrap();
        assert!(out.status.success());
        assert_eq!(sink, b"a\nb\n");
    }

    #[test]
    fn pipe_filters_lines_into_the_consumer() {
        let producer = Cmd::new("sh").args(["-c", "printf 'keep 1\\nUSE x;\\nkeep 2'"]);
        let consumer = Cmd::new("sh").args(["-c", "cat; echo done"]);
        let piped = producer
            .pipe_to(&consumer, &mut |line, out| {
                if line.starts_with(b"USE ") {
                    out.write_all(b"USE y;\n")
                } else {
                    out.write_all(line)
                }
            })
            .unwrap();
        assert!(piped.producer.status.success());
        assert!(piped.consumer.status.success());
        assert!(!piped.consumer_quit_early);
        assert_eq!(
            piped.consumer.stdout_string(),
            "keep 1\nUSE y;\nkeep 2done\n"
        );
    }

    #[test]
    fn consumer_that_quits_early_stops_the_producer() {
        // The producer would write for ever; the consumer reads one line and fails.
        let producer = Cmd::new("sh").args(["-c", "while :; do echo line; done"]);
        let consumer = Cmd::new("sh").args(["-c", "read x; echo bad input >&2; exit 5"]);
        let piped = producer
            .pipe_to(&consumer, &mut |line, out| out.write_all(line))
            .unwrap();
        assert!(piped.consumer_quit_early);
        assert_eq!(piped.consumer.status.code(), Some(5));
        assert_eq!(piped.consumer.stderr.trim(), "bad input");
        assert!(!piped.producer.status.success());
    }

    #[test]
    fn tee_writes_the_file_and_the_checker_reads_the_same_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("out");
        // 3 MB: more than a block and more than a pipe holds.
        let producer = Cmd::new("sh").args(["-c", "head -c 3000000 /dev/zero | tr '\\0' x"]);
        let checker = Cmd::new("wc").arg("-c");
        let piped = producer.tee_to(&file, &checker).unwrap();
        assert!(piped.producer.status.success());
        assert!(piped.consumer.status.success());
        assert!(!piped.consumer_quit_early);
        assert_eq!(piped.consumer.stdout_string().trim(), "3000000");
        assert_eq!(std::fs::metadata(&file).unwrap().len(), 3_000_000);
    }

    #[test]
    fn tee_checker_that_quits_early_stops_the_producer() {
        let dir = tempfile::tempdir().unwrap();
        let producer = Cmd::new("sh").args(["-c", "while :; do echo line; done"]);
        let checker = Cmd::new("sh").args(["-c", "read x; echo bad input >&2; exit 5"]);
        let piped = producer.tee_to(&dir.path().join("out"), &checker).unwrap();
        assert!(piped.consumer_quit_early);
        assert_eq!(piped.consumer.status.code(), Some(5));
        assert_eq!(piped.consumer.stderr.trim(), "bad input");
        assert!(!piped.producer.status.success());
    }

    #[test]
    fn tee_checker_that_hangs_is_stopped_by_the_producers_bound() {
        // The producer is done at once; the checker never ends: the producer's time limit
        // covers the wait for it too.
        let dir = tempfile::tempdir().unwrap();
        let err = Cmd::new("echo")
            .arg("archive")
            .time_limit(Duration::from_millis(300), "dump_timeout")
            .tee_to(&dir.path().join("out"), &Cmd::new("sleep").arg("30"))
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "echo was stopped: it did not finish within 300ms (dump_timeout)"
        );
    }

    /// A watch that stops the child once stderr said "stuck", and records what it saw.
    struct StopOnStuck {
        seen: Mutex<Vec<String>>,
        stuck: AtomicBool,
    }

    impl Watch for StopOnStuck {
        fn on_stderr(&self, line: &str) {
            self.seen.lock().unwrap().push(line.to_string());
            if line == "stuck" {
                self.stuck.store(true, Ordering::SeqCst);
            }
        }
        fn poll(&self, _pid: u32) -> Option<String> {
            self.stuck
                .load(Ordering::SeqCst)
                .then(|| "it said it is stuck".to_string())
        }
    }

    #[test]
    fn watch_sees_stderr_lines_and_stops_a_hung_child() {
        let watch = Arc::new(StopOnStuck {
            seen: Mutex::new(Vec::new()),
            stuck: AtomicBool::new(false),
        });
        // Without the watch this child would sleep for an hour.
        let out = Cmd::new("sh")
            .args(["-c", "echo working >&2; echo stuck >&2; exec sleep 3600"])
            .watch(watch.clone())
            .output()
            .unwrap();
        assert_eq!(
            describe_status(out.status),
            "was killed by signal 15 (SIGTERM)"
        );
        assert_eq!(*watch.seen.lock().unwrap(), ["working", "stuck"]);
        assert_eq!(out.stderr, "working\nstuck\n");
    }

    #[test]
    fn killed_child_is_described_by_signal() {
        let out = Cmd::new("sh").args(["-c", "kill -9 $$"]).output().unwrap();
        assert_eq!(
            describe_status(out.status),
            "was killed by signal 9 (SIGKILL)"
        );
    }

    #[test]
    fn secrets_are_masked_in_what_the_child_prints_line_by_line() {
        // A tool that quotes only the second line of a two-line secret.
        let out = Cmd::new("sh")
            .args(["-c", "echo \"unknown option '--part-two'\" >&2; exit 2"])
            .redact("part-one\npart-two")
            .output()
            .unwrap();
        let err = out.ensure_success("tool").unwrap_err().to_string();
        assert_eq!(
            err,
            "tool exited with status 2: unknown option '--<redacted>'"
        );
        let mut s = Secrets::default();
        s.add("ab");
        assert_eq!(s.mask("ab cab (ab)"), "<redacted> cab (<redacted>)");
    }

    #[test]
    fn a_child_past_its_time_limit_is_stopped_and_the_key_named() {
        let err = Cmd::new("sleep")
            .arg("30")
            .time_limit(Duration::from_millis(300), "dump_timeout")
            .output()
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "sleep was stopped: it did not finish within 300ms (dump_timeout)"
        );
    }

    #[test]
    fn a_child_whose_output_stops_growing_is_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let err = Cmd::new("sh")
            .args(["-c", "echo start; sleep 30"])
            .stall_limit(Duration::from_secs(1), "lock_wait_timeout")
            .output_to_file(&dir.path().join("out"))
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "sh was stopped: it made no progress for 1s (6 bytes so far; lock_wait_timeout)"
        );
    }

    #[test]
    fn an_inherited_descriptor_reaches_the_child_only() {
        let fd = rustix::fs::memfd_create("t", rustix::fs::MemfdFlags::CLOEXEC).unwrap();
        let mut file = File::from(fd);
        file.write_all(b"hello").unwrap();
        let fd = Arc::new(OwnedFd::from(file));
        let n = std::os::fd::AsRawFd::as_raw_fd(&*fd);
        let out = Cmd::new("cat")
            .arg(format!("/dev/fd/{n}"))
            .inherit_fd(fd.clone())
            .output()
            .unwrap();
        assert_eq!(out.stdout_string(), "hello");
        // Other children do not get it.
        let out = Cmd::new("cat")
            .arg(format!("/dev/fd/{n}"))
            .output()
            .unwrap();
        assert!(!out.status.success());
        let flags = rustix::io::fcntl_getfd(fd.as_fd()).unwrap();
        assert!(flags.contains(rustix::io::FdFlags::CLOEXEC));
    }
}
