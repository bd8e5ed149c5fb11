//! Progress of a long copy (a dump extracted from restic, checked or loaded): the shared
//! status line of [`crate::report::progress`] (a terminal line, else a heartbeat in the log).

use std::io::Write;
use std::time::Instant;

use crate::report::progress::Line;
use crate::units::human_bytes;

pub struct Progress {
    label: String,
    total: Option<u64>,
    done: u64,
    started: Instant,
    line: Option<Line>,
}

impl Progress {
    /// Progress of `label`, out of `total` bytes when known.
    pub fn new(label: impl Into<String>, total: Option<u64>) -> Progress {
        Progress {
            label: label.into(),
            total: total.filter(|t| *t > 0),
            done: 0,
            started: Instant::now(),
            line: Some(Line::new()),
        }
    }

    pub fn add(&mut self, bytes: u64) {
        self.done += bytes;
        let text = self.line();
        if let Some(line) = &mut self.line {
            line.set(&text);
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
        self.line = None;
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
