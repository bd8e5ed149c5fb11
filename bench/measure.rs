//! Measuring one step: a child process's wall time (bounded by an optional timeout), its own
//! peak resident memory, and the writer process that commits at a fixed rate meanwhile.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// How one child ran.
#[derive(Debug, Clone)]
pub struct Timed {
    pub secs: f64,
    /// Exited 0 within its time.
    pub ok: bool,
    /// "exit 0", "exit 1", "killed at 60 s (timeout)".
    pub status: String,
    pub stdout: String,
    /// The last 4 KiB of stderr.
    pub stderr: String,
    /// The child's own peak RSS (VmHWM) in KiB, when tracked.
    pub peak_rss_kib: Option<u64>,
    /// What the largest resident set sampled was made of (`RssAnon`, `RssFile`, `RssShmem`),
    /// to tell the child's own memory from files it maps.
    pub peak_rss_parts: String,
}

impl Timed {
    /// The end of stderr in one line, for a table cell.
    pub fn short_error(&self) -> String {
        let line = self
            .stderr
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("")
            .trim();
        let line: String = line.chars().take(120).collect();
        if line.is_empty() {
            self.status.clone()
        } else {
            format!("{}: {line}", self.status)
        }
    }
}

/// Runs `cmd` to its end or to `timeout` (then SIGKILL), measuring the wall time and, with
/// `track_rss`, the child's own high-water resident set.
///
/// Why VmHWM polled from /proc, and not wait4 or GNU time: the rusage that wait4 returns for a
/// child holds the maximum of its own peak and its waited-for children's (restic's), so it
/// would report restic's memory. VmHWM is the process's own high-water mark and only grows;
/// polled every 5 ms, it misses at most what the child allocates in its last 5 ms.
pub fn run(cmd: &mut Command, timeout: Option<Duration>, track_rss: bool) -> Timed {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let start = Instant::now();
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            return Timed {
                secs: 0.0,
                ok: false,
                status: format!("could not start {:?}: {e}", cmd.get_program()),
                stdout: String::new(),
                stderr: String::new(),
                peak_rss_kib: None,
                peak_rss_parts: String::new(),
            };
        }
    };
    let out = drain(child.stdout.take(), usize::MAX);
    let err = drain(child.stderr.take(), 4096);
    let pid = child.id();
    let mut peak = None;
    let mut largest = (0u64, String::new());
    let mut killed = false;
    let status = loop {
        if track_rss
            && let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status"))
            && let Some(hwm) = status_kib(&status, "VmHWM:")
        {
            peak = Some(peak.map_or(hwm, |p: u64| p.max(hwm)));
            // What the resident set is made of, described only when it is the largest yet.
            let rss = status_kib(&status, "VmRSS:").unwrap_or(0);
            if rss > largest.0 {
                largest = (rss, rss_parts(&status, pid, rss));
            }
        }
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) => {}
            Err(e) => panic!("waiting for {:?}: {e}", cmd.get_program()),
        }
        if let Some(limit) = timeout
            && !killed
            && start.elapsed() >= limit
        {
            let _ = child.kill();
            killed = true;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let secs = start.elapsed().as_secs_f64();
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    let status_text = if killed {
        format!(
            "killed at {:.0} s (timeout)",
            timeout.unwrap_or_default().as_secs_f64()
        )
    } else {
        match status.code() {
            Some(c) => format!("exit {c}"),
            None => format!("{status}"),
        }
    };
    Timed {
        secs,
        ok: status.success() && !killed,
        status: status_text,
        stdout,
        stderr,
        peak_rss_kib: peak,
        peak_rss_parts: largest.1,
    }
}

/// Reads a pipe to its end on a thread, keeping the last `keep` bytes.
fn drain(pipe: Option<impl Read + Send + 'static>, keep: usize) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut kept = Vec::new();
        if let Some(mut pipe) = pipe {
            let mut buf = [0u8; 8192];
            while let Ok(n) = pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                kept.extend_from_slice(&buf[..n]);
                if kept.len() > keep {
                    kept.drain(..kept.len() - keep);
                }
            }
        }
        String::from_utf8_lossy(&kept).into_owned()
    })
}

/// A `kB` value of /proc (`"  1234 kB"`), in KiB.
fn kib(value: &str) -> Option<u64> {
    value.trim().trim_end_matches("kB").trim().parse().ok()
}

/// The value of `key` (`"VmHWM:"`) in the text of /proc/PID/status, in KiB.
fn status_kib(status: &str, key: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(kib)
}

/// What a resident set of `rss` KiB (from `status`, of `pid`) is made of: anonymous,
/// file-backed and shared memory, and past 100 MiB the three mappings holding the most.
fn rss_parts(status: &str, pid: u32, rss: u64) -> String {
    let mut parts = ["RssAnon:", "RssFile:", "RssShmem:"]
        .iter()
        .map(|k| {
            format!(
                "{} {:.1} MiB",
                k.trim_end_matches(':'),
                status_kib(status, k).unwrap_or(0) as f64 / 1024.0
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    if rss > 100 << 10 {
        parts.push_str(&biggest_mappings(pid));
    }
    parts
}

/// The three mappings of `pid` with the most resident memory, for a report.
fn biggest_mappings(pid: u32) -> String {
    let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/smaps")) else {
        return String::new();
    };
    let mut maps: Vec<(u64, String)> = Vec::new();
    let mut name = String::new();
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("Rss:") {
            maps.push((kib(v).unwrap_or(0), name.clone()));
        } else if line
            .split_whitespace()
            .next()
            .is_some_and(|f| f.contains('-') && !f.ends_with(':'))
        {
            name = line
                .split_whitespace()
                .skip(5)
                .collect::<Vec<_>>()
                .join(" ");
            if name.is_empty() {
                name = "[anon]".into();
            }
        }
    }
    maps.sort_by_key(|m| std::cmp::Reverse(m.0));
    let top: Vec<String> = maps
        .iter()
        .take(3)
        .map(|(k, n)| format!("{n} {:.1} MiB", *k as f64 / 1024.0))
        .collect();
    format!(" [largest: {}]", top.join(", "))
}

/// What the writer saw: how many commits, how many failed, and the slowest.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct WriterStats {
    pub commits: u64,
    pub failed: u64,
    pub worst_ms: f64,
    /// The 99th percentile commit time.
    pub p99_ms: f64,
    /// How large the application's `-wal` grew while the writer ran (a WAL database; it was
    /// truncated when the writer started, and a file never shrinks by itself, so its size at
    /// the end is the peak). Zero in rollback-journal mode.
    #[serde(default)]
    pub wal_peak_bytes: u64,
    pub first_error: Option<String>,
}

/// The writer child: `suite writer` committing at a fixed rate into one database.
pub struct Writer {
    child: Child,
    stdout: BufReader<ChildStdout>,
}

impl Writer {
    /// Starts the writer on `db` and waits for its first commit.
    pub fn start(exe: &Path, db: &Path, rate: u32) -> Writer {
        let mut child = Command::new(exe)
            .arg("writer")
            .arg("--db")
            .arg(db)
            .arg("--rate")
            .arg(rate.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the writer");
        let mut stdout = BufReader::new(child.stdout.take().expect("piped"));
        let mut line = String::new();
        stdout.read_line(&mut line).expect("writer output");
        assert_eq!(line.trim(), "ready", "the writer did not start: {line}");
        Writer { child, stdout }
    }

    /// Stops the writer (closing its stdin) and returns what it saw.
    pub fn stop(mut self) -> WriterStats {
        if let Some(mut stdin) = self.child.stdin.take() {
            let _ = stdin.write_all(b"stop\n");
        }
        let mut line = String::new();
        self.stdout.read_line(&mut line).expect("writer stats");
        let _ = self.child.wait();
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("writer stats {line:?}: {e}"))
    }
}

/// Runs `step` while a writer commits into `db`, with half a second of writing on each side.
pub fn with_writer<T>(
    exe: &Path,
    db: &Path,
    rate: u32,
    step: impl FnOnce() -> T,
) -> (T, WriterStats) {
    let writer = Writer::start(exe, db, rate);
    std::thread::sleep(Duration::from_millis(500));
    let out = step();
    std::thread::sleep(Duration::from_millis(500));
    (out, writer.stop())
}
