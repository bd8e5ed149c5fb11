//! Progress of long work (a dump written, restic's upload, a copy extracted or loaded), one
//! implementation for all of them: on a terminal with text logs, one status line redrawn in
//! place; otherwise (a container's log, JSON logs, a pipe) the same text as an INFO log line
//! every heartbeat (30 s, `RESTICPILOT_HEARTBEAT` seconds), so a daemon's log shows life
//! during an hour-long dump. `-q` hides the heartbeat with the other INFO lines. Log lines go
//! through [`StderrWriter`], which clears a shown status line first, so the two never mix.
//!
//! (Not indicatif: it draws its own bars and would need a bridge to the log writer so log lines
//! and the bar don't mix; one line redrawn with a clear sequence is all this needs.)

use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::units::human_bytes;

static ENABLED: AtomicBool = AtomicBool::new(false);
/// Whether a status line is on the screen now.
static SHOWN: Mutex<bool> = Mutex::new(false);

const CLEAR: &str = "\r\x1b[2K";

/// Turns terminal progress on (when stderr is a terminal and logs are text).
pub fn enable(on: bool) {
    ENABLED.store(on, Ordering::SeqCst);
}

pub fn enabled() -> bool {
    ENABLED.load(Ordering::SeqCst)
}

fn shown() -> std::sync::MutexGuard<'static, bool> {
    SHOWN.lock().unwrap_or_else(|p| p.into_inner())
}

fn draw(text: &str) {
    let mut shown = shown();
    let mut err = io::stderr().lock();
    let _ = write!(err, "{CLEAR}{text}");
    let _ = err.flush();
    *shown = true;
}

fn clear() {
    let mut shown = shown();
    if *shown {
        let mut err = io::stderr().lock();
        let _ = write!(err, "{CLEAR}");
        let _ = err.flush();
        *shown = false;
    }
}

/// How often long work logs its progress when there is no terminal to draw on.
pub fn heartbeat() -> Duration {
    static EVERY: std::sync::OnceLock<Duration> = std::sync::OnceLock::new();
    *EVERY.get_or_init(|| {
        std::env::var("RESTICPILOT_HEARTBEAT")
            .ok()
            .and_then(|v| crate::config::parse_duration(&v))
            .filter(|d| !d.is_zero())
            .unwrap_or(Duration::from_secs(30))
    })
}

/// The progress of one piece of work: a status line redrawn at most ten times a second on a
/// terminal (cleared when dropped), else a log line every [`heartbeat`].
pub struct Line {
    last: Option<Instant>,
    started: Instant,
    terminal: bool,
}

impl Line {
    pub fn new() -> Line {
        Line {
            last: None,
            started: Instant::now(),
            terminal: enabled(),
        }
    }

    pub fn set(&mut self, text: &str) {
        if self.terminal {
            if self
                .last
                .is_some_and(|t| t.elapsed() < Duration::from_millis(100))
            {
                return;
            }
            self.last = Some(Instant::now());
            draw(text);
        } else if self.last.unwrap_or(self.started).elapsed() >= heartbeat() {
            self.last = Some(Instant::now());
            tracing::info!("{text}");
        }
    }
}

impl Default for Line {
    fn default() -> Self {
        Line::new()
    }
}

impl Drop for Line {
    fn drop(&mut self) {
        if self.terminal {
            clear();
        }
    }
}

/// Shows "`label`: 1.2 GiB written" while the file at `path` grows; stops when dropped.
pub struct FileWatch {
    stop: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Watches `path` (a dump being written): a status line, or a heartbeat in the log.
pub fn watch_file(label: String, path: PathBuf) -> Option<FileWatch> {
    let (stop, stopped) = std::sync::mpsc::channel::<()>();
    let thread = std::thread::spawn(move || {
        let started = Instant::now();
        let mut line = Line::new();
        loop {
            let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            line.set(&format!(
                "{label}: {} written, {:.0}s",
                human_bytes(size),
                started.elapsed().as_secs_f64()
            ));
            // Woken at once when the watch is dropped (the sender goes), not at the next tick.
            if !matches!(
                stopped.recv_timeout(Duration::from_millis(250)),
                Err(std::sync::mpsc::RecvTimeoutError::Timeout)
            ) {
                break;
            }
        }
    });
    Some(FileWatch {
        stop: Some(stop),
        thread: Some(thread),
    })
}

impl Drop for FileWatch {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// "restic backup 42% (1.2 GiB of 2.9 GiB), 1m20s left".
pub fn restic_line(verb: &str, percent: f64, done: u64, total: u64, eta: Option<u64>) -> String {
    let mut s = format!(
        "restic {verb} {:.0}% ({} of {})",
        percent * 100.0,
        human_bytes(done),
        human_bytes(total)
    );
    if let Some(secs) = eta.filter(|s| *s > 0) {
        if secs >= 60 {
            s.push_str(&format!(", {}m{:02}s left", secs / 60, secs % 60));
        } else {
            s.push_str(&format!(", {secs}s left"));
        }
    }
    s
}

/// The log writer: stderr, with a shown status line cleared before each log line.
#[derive(Clone, Copy, Default)]
pub struct StderrWriter;

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for StderrWriter {
    type Writer = ClearingStderr;

    fn make_writer(&'a self) -> Self::Writer {
        ClearingStderr
    }
}

pub struct ClearingStderr;

impl Write for ClearingStderr {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        clear();
        io::stderr().write(buf)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        clear();
        io::stderr().lock().write_all(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restic_progress_reads_naturally() {
        assert_eq!(
            restic_line("backup", 0.42, 1 << 30, 3 << 30, Some(80)),
            "restic backup 42% (1.0 GiB of 3.0 GiB), 1m20s left"
        );
        assert_eq!(
            restic_line("backup", 1.0, 10, 10, None),
            "restic backup 100% (10 B of 10 B)"
        );
    }
}
