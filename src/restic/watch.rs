//! The bound on every restic command: a [`process::Watch`](crate::process::Watch) that stops
//! restic when it makes no progress for the repository's `stall_timeout`, when its phase's
//! deadline passes, when its stderr shows that waiting cannot help (the server refused the
//! credentials, the S3 bucket does not exist, ssh does not know the host key), or when a
//! shutdown finds it making no progress.
//!
//! Progress is what restic does, not what it says: the bytes it reads and writes (network,
//! disk and pipes, from `/proc/<pid>/io`) less what it wrote to our pipes, a change in the
//! counters of its `--json` status lines, or a new line of output. A restic that retries a dead
//! server, or waits on one that accepts and never answers, does none of these. restic's own
//! lock wait (`--retry-lock`) is not a stall: it is bounded by `lock_wait`.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::exit::{self, Outcome};
use crate::process::Watch;

/// Net i/o (beyond what restic wrote to our pipes) that counts as progress. Small enough that
/// a link of a few KB/s shows progress within a minute, large enough that a lock refresh or a
/// request written to a server that never answers does not.
const IO_PROGRESS_BYTES: u64 = 64 * 1024;
/// CPU time within one poll that counts as progress (restic hashing, compressing or deriving
/// its key, with no i/o to show for it yet): 40 % of the poll interval. A restic waiting on a
/// server is idle.
const CPU_PROGRESS: Duration = Duration::from_millis(200);
/// During a shutdown, a restic that made no progress this long is stopped at once instead of
/// waiting out the grace period.
const SHUTDOWN_STALL: Duration = Duration::from_secs(10);

/// The bounds of one restic command.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// No progress this long stops it.
    pub stall: Duration,
    /// The phase's deadline and the config key that sets it.
    pub deadline: Option<(Duration, &'static str)>,
    /// How long restic itself may wait for a lock (`--retry-lock`), during which no progress is
    /// expected.
    pub lock_wait: Duration,
}

/// Why the watch stopped restic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    /// No progress for `waited`; `last_error` is restic's last retry message, if any.
    Stalled {
        waited: Duration,
        last_error: Option<String>,
    },
    /// The phase's deadline passed.
    Deadline { after: Duration, key: &'static str },
    /// stderr showed a refusal or a missing repository: retrying cannot help.
    Hopeless { outcome: Outcome, line: String },
    /// A shutdown found restic making no progress.
    Shutdown { waited: Duration },
}

impl Stop {
    pub fn describe(&self) -> String {
        match self {
            Stop::Stalled { waited, .. } => format!(
                "no progress for {}: the server stopped answering",
                crate::units::show_duration(*waited)
            ),
            Stop::Deadline { after, key } => format!(
                "still running after {} ({key})",
                crate::units::show_duration(*after)
            ),
            Stop::Hopeless { line, .. } => format!("retrying cannot help: {line}"),
            Stop::Shutdown { waited } => format!(
                "resticpilot is shutting down and restic made no progress for {}",
                crate::units::show_duration(*waited)
            ),
        }
    }
}

pub struct ResticWatch {
    limits: Limits,
    started: Instant,
    state: Mutex<State>,
}

struct State {
    last_progress: Instant,
    /// Net i/o at the last progress (`None` until first read).
    io_mark: Option<u64>,
    /// Whether `/proc/<pid>/io` could be read at all.
    io_seen: bool,
    /// CPU time at the last poll.
    cpu: Option<Duration>,
    /// Bytes restic wrote to our pipes (its own i/o counts them; they are not progress).
    piped: u64,
    /// The last progress key of stdout (status counters, or a line without its timer).
    last_key: Option<String>,
    /// Whether stdout carries status lines that show progress by themselves.
    status_stream: bool,
    last_error: Option<String>,
    retries: u64,
    waiting_for_lock_until: Option<Instant>,
    consumer_busy: bool,
    stopped: Option<Stop>,
}

impl ResticWatch {
    pub fn new(limits: Limits) -> Self {
        let now = Instant::now();
        ResticWatch {
            limits,
            started: now,
            state: Mutex::new(State {
                last_progress: now,
                io_mark: None,
                io_seen: false,
                cpu: None,
                piped: 0,
                last_key: None,
                status_stream: false,
                last_error: None,
                retries: 0,
                waiting_for_lock_until: None,
                consumer_busy: false,
                stopped: None,
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// One line of restic's stdout, as the caller read it.
    pub fn on_stdout(&self, line: &str) {
        let mut s = self.state();
        s.piped += line.len() as u64 + 1;
        let key = match status_key(line) {
            Some(k) => {
                s.status_stream = true;
                k
            }
            None => strip_timer(line).to_string(),
        };
        if s.last_key.as_deref() != Some(key.as_str()) {
            s.last_key = Some(key);
            s.last_progress = Instant::now();
        }
    }

    /// Whether the consumer of restic's stdout is being written to (a piped dump): while it
    /// is, restic waiting on the pipe is not restic's stall.
    pub fn consumer_busy(&self, busy: bool) {
        let mut s = self.state();
        s.consumer_busy = busy;
        s.last_progress = Instant::now();
    }

    /// Why restic was stopped, if it was.
    pub fn stopped(&self) -> Option<Stop> {
        self.state().stopped.clone()
    }

    /// restic's retries so far and its last retry message.
    pub fn retries(&self) -> (u64, Option<String>) {
        let s = self.state();
        (s.retries, s.last_error.clone())
    }
}

impl Watch for ResticWatch {
    fn on_stderr(&self, line: &str) {
        let mut s = self.state();
        s.piped += line.len() as u64 + 1;
        if line.contains("waiting up to") && line.contains("for the lock") {
            // restic >= 0.16 waits for the lock itself (--retry-lock), polling quietly.
            s.waiting_for_lock_until =
                Some(Instant::now() + self.limits.lock_wait + Duration::from_secs(30));
            return;
        }
        if line.contains("retrying after") || line.contains("returned error") {
            s.retries += 1;
            s.last_error = Some(line.to_string());
        }
        if s.stopped.is_some() {
            return;
        }
        let hopeless = match exit::backend_refusal(line) {
            Some(outcome) => Some(outcome),
            None if exit::is_missing_bucket(line) => Some(Outcome::NoRepository),
            None => None,
        };
        if let Some(outcome) = hopeless {
            s.stopped = Some(Stop::Hopeless {
                outcome,
                line: line.trim().to_string(),
            });
        }
    }

    fn poll(&self, pid: u32) -> Option<String> {
        let now = Instant::now();
        let io = read_io(pid);
        let cpu = read_cpu(pid);
        let mut s = self.state();
        if let Some(stop) = &s.stopped {
            return Some(stop.describe());
        }
        if let Some(total) = io {
            s.io_seen = true;
            let net = total.saturating_sub(s.piped);
            match s.io_mark {
                None => s.io_mark = Some(net),
                Some(mark) if net >= mark + IO_PROGRESS_BYTES => {
                    s.io_mark = Some(net);
                    s.last_progress = now;
                }
                Some(_) => {}
            }
        }
        if let Some(cpu) = cpu {
            if s.cpu.is_some_and(|before| cpu >= before + CPU_PROGRESS) {
                s.last_progress = now;
            }
            s.cpu = Some(cpu);
        }
        if s.consumer_busy {
            s.last_progress = now;
        }
        if let Some(until) = s.waiting_for_lock_until {
            if now < until {
                s.last_progress = now;
            } else {
                s.waiting_for_lock_until = None;
            }
        }
        let idle = now.duration_since(s.last_progress);
        let stop = if let Some((deadline, key)) = self.limits.deadline
            && now.duration_since(self.started) >= deadline
        {
            Some(Stop::Deadline {
                after: deadline,
                key,
            })
        } else if (s.io_seen || s.status_stream) && idle >= self.limits.stall {
            Some(Stop::Stalled {
                waited: idle,
                last_error: s.last_error.clone(),
            })
        } else if crate::signals::requested() && idle >= SHUTDOWN_STALL {
            Some(Stop::Shutdown { waited: idle })
        } else {
            None
        };
        let reason = stop.as_ref().map(Stop::describe);
        s.stopped = stop;
        reason
    }
}

/// Bytes read and written by `pid` (rchar + wchar: files, sockets and pipes), or `None` when
/// `/proc/<pid>/io` cannot be read.
fn read_io(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/io")).ok()?;
    let mut total = 0u64;
    let mut found = 0;
    for line in text.lines() {
        if let Some(v) = line
            .strip_prefix("rchar: ")
            .or_else(|| line.strip_prefix("wchar: "))
        {
            total = total.saturating_add(v.trim().parse().ok()?);
            found += 1;
        }
    }
    (found == 2).then_some(total)
}

/// CPU time (user + system, all threads) of `pid`, from `/proc/<pid>/stat`.
fn read_cpu(pid: u32) -> Option<Duration> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the command name (which may hold spaces) in parentheses.
    let rest = &text[text.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // Linux reports them in USER_HZ, 100 per second on every architecture it runs on here.
    Some(Duration::from_millis(ticks * 10))
}

/// The counters of a `--json` status line that move only when restic gets work done.
fn status_key(line: &str) -> Option<String> {
    if !line.starts_with('{') || !line.contains("\"status\"") {
        return None;
    }
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    if v.get("message_type")?.as_str()? != "status" {
        return None;
    }
    let n = |k: &str| v.get(k).and_then(|x| x.as_u64()).unwrap_or(0);
    Some(format!(
        "{} {} {}",
        n("files_done"),
        n("bytes_done"),
        n("bytes_restored")
    ))
}

/// A text progress line without its leading elapsed time ("[0:05] 45.00%  9 / 20 packs").
fn strip_timer(line: &str) -> &str {
    let t = line.trim();
    if t.starts_with('[')
        && let Some(end) = t.find(']')
    {
        return t[end + 1..].trim();
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(stall: u64) -> Limits {
        Limits {
            stall: Duration::from_secs(stall),
            deadline: None,
            lock_wait: Duration::from_secs(60),
        }
    }

    #[test]
    fn status_lines_count_only_when_their_counters_move() {
        let w = ResticWatch::new(limits(1));
        let status = |b: u64, t: f64| {
            format!(
                r#"{{"message_type":"status","seconds_elapsed":{t},"percent_done":0.85,"files_done":3,"bytes_done":{b}}}"#
            )
        };
        w.on_stdout(&status(100, 1.0));
        let first = w.state().last_progress;
        std::thread::sleep(Duration::from_millis(20));
        // Only the clock moved: the "85 %" of a backup whose server died.
        w.on_stdout(&status(100, 2.0));
        assert_eq!(w.state().last_progress, first);
        w.on_stdout(&status(200, 3.0));
        assert!(w.state().last_progress > first);
        assert_eq!(
            strip_timer("[0:05] 45.00%  9 / 20 packs"),
            "45.00%  9 / 20 packs"
        );
    }

    #[test]
    fn refusals_and_missing_buckets_stop_at_once_and_other_retries_do_not() {
        let w = ResticWatch::new(limits(600));
        w.on_stderr("Load(<lock/1234>, 0, 0) returned error, retrying after 1.2s: dial tcp 127.0.0.1:9: connect: connection refused");
        assert_eq!(w.stopped(), None);
        assert_eq!(w.retries().0, 1);
        w.on_stderr("Stat(<config/>) returned error, retrying after 885ms: Stat: The specified bucket does not exist");
        assert!(matches!(
            w.stopped(),
            Some(Stop::Hopeless {
                outcome: Outcome::NoRepository,
                ..
            })
        ));
        let w = ResticWatch::new(limits(600));
        w.on_stderr("Stat(<config/>) returned error, retrying after 597ms: Stat: The request signature we calculated does not match the signature you provided.");
        assert!(matches!(
            w.stopped(),
            Some(Stop::Hopeless {
                outcome: Outcome::CredentialsRefused,
                ..
            })
        ));
        assert!(w.poll(u32::MAX).is_some());
    }

    #[test]
    fn own_io_and_cpu_are_readable() {
        assert!(read_io(std::process::id()).is_some());
        let before = read_cpu(std::process::id()).unwrap();
        let start = Instant::now();
        let mut x = 0u64;
        while start.elapsed() < Duration::from_millis(300) {
            x = x.wrapping_mul(31).wrapping_add(7);
        }
        std::hint::black_box(x);
        assert!(read_cpu(std::process::id()).unwrap() > before);
    }
}
