//! Progress of a long copy on a terminal: one line on stderr, rewritten a few times a second.
//! Nothing is drawn when stderr is not a terminal (logs, pipes, the daemon).

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use crate::units::human_bytes;

pub struct Progress {
    label: String,
    total: Option<u64>,
    done: u64,
    started: Instant,
    last_draw: Option<Instant>,
    enabled: bool,
}

impl Progress {
    /// Progress of `label`, out of `total` bytes when known.
    pub fn new(label: impl Into<String>, total: Option<u64>) -> Progress {
        Progress {
            label: label.into(),
            total: total.filter(|t| *t > 0),
            done: 0,
            started: Instant::now(),
            last_draw: None,
            enabled: std::io::stderr().is_terminal(),
        }
    }

    pub fn add(&mut self, bytes: u64) {
        self.done += bytes;
        if !self.enabled {
            return;
        }
        let due = self
            .last_draw
            .is_none_or(|t| t.elapsed() >= Duration::from_millis(250));
        if due {
            self.last_draw = Some(Instant::now());
            eprint!("\r\x1b[K{}", self.line());
            let _ = std::io::stderr().flush();
        }
    }

    pub fn done(&self) -> u64 {
        self.done
    }

    fn line(&self) -> String {
        let secs = self.started.elapsed().as_secs_f64().max(0.001);
        let rate = human_bytes((self.done as f64 / secs) as u64);
        match self.total {
            Some(total) => format!(
                "{}: {} of {} ({:.0}%), {rate}/s",
                self.label,
                human_bytes(self.done),
                human_bytes(total),
                (self.done as f64 * 100.0 / total as f64).min(100.0)
            ),
            None => format!("{}: {}, {rate}/s", self.label, human_bytes(self.done)),
        }
    }

    /// Clears the line (the caller prints its own summary).
    pub fn finish(&mut self) {
        if self.enabled && self.last_draw.is_some() {
            eprint!("\r\x1b[K");
            let _ = std::io::stderr().flush();
        }
        self.last_draw = None;
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}

/// A writer that counts what passes through it into a [`Progress`].
pub struct Counting<'a, W: Write> {
    pub inner: W,
    pub progress: &'a mut Progress,
}

impl<W: Write> Write for Counting<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.progress.add(n as u64);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}
