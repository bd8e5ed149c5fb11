//! Torrust-like SQLite databases: generating one of a given size, the writer that commits into
//! it at a fixed rate (as a tracker does), a day's worth of scattered updates, and the bare
//! one-step copy that the bare-tools comparison uses.

use std::io::BufRead;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rusqlite::Connection;
use rusqlite::backup::{Backup, StepResult};

use crate::measure::WriterStats;

/// The tracker's schema: torrents with 20-byte info hashes and counters, plus small tables.
const SCHEMA: &str = "
CREATE TABLE torrents (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    info_hash BLOB NOT NULL UNIQUE,
    completed INTEGER NOT NULL DEFAULT 0,
    seeders INTEGER NOT NULL DEFAULT 0,
    leechers INTEGER NOT NULL DEFAULT 0,
    updated_at INTEGER NOT NULL
);
CREATE TABLE keys (id INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT NOT NULL UNIQUE, valid_until INTEGER);
CREATE TABLE whitelist (id INTEGER PRIMARY KEY AUTOINCREMENT, info_hash BLOB NOT NULL UNIQUE);
CREATE TABLE users (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL UNIQUE, downloaded INTEGER NOT NULL DEFAULT 0);
";

/// A small, fast pseudo-random sequence (xorshift); the bench needs spread, not quality.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Creates a database at `path` of at least `bytes`, in rollback-journal mode.
pub fn generate(path: &Path, bytes: u64) -> rusqlite::Result<()> {
    let _ = std::fs::remove_file(path);
    let conn = Connection::open(path)?;
    // The info-hash index takes random inserts: a cache of about half the database (at most
    // 8 GiB) keeps generation from crawling at 4 GiB and beyond.
    let cache_kib = (bytes / 2048).clamp(256 << 10, 8 << 20);
    conn.execute_batch(&format!(
        "PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF; PRAGMA cache_size = -{cache_kib};"
    ))?;
    conn.execute_batch(SCHEMA)?;
    conn.execute_batch(
        "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 1000)
         INSERT INTO keys (key, valid_until) SELECT hex(randomblob(16)), 1700000000 + x FROM n;
         WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 1000)
         INSERT INTO whitelist (info_hash) SELECT randomblob(20) FROM n;
         WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 5000)
         INSERT INTO users (name, downloaded) SELECT 'user' || x, abs(random()) % 100000000 FROM n;",
    )?;
    let batch = 200_000;
    loop {
        let size: i64 = conn.query_row(
            "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()",
            [],
            |r| r.get(0),
        )?;
        if size as u64 >= bytes {
            break;
        }
        conn.execute(
            "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < ?1)
             INSERT INTO torrents (info_hash, completed, seeders, leechers, updated_at)
             SELECT randomblob(20), abs(random()) % 5000, abs(random()) % 200,
                    abs(random()) % 50, 1700000000 + abs(random()) % 30000000 FROM n",
            [batch],
        )?;
    }
    conn.execute_batch("PRAGMA journal_mode = DELETE;")?;
    Ok(())
}

/// Sets the journal mode of the database at `path` (`wal` or `delete`).
pub fn set_journal_mode(path: &Path, mode: &str) -> rusqlite::Result<()> {
    let conn = Connection::open(path)?;
    let got: String = conn.query_row(&format!("PRAGMA journal_mode = {mode}"), [], |r| r.get(0))?;
    assert_eq!(got, mode, "journal mode of {}", path.display());
    Ok(())
}

/// `PRAGMA integrity_check` on `path`: "ok" or the first problem.
pub fn integrity(path: &Path) -> String {
    // Read-write: a copy of a WAL-mode file needs its -shm created to be read at all.
    let conn = match Connection::open(path) {
        Ok(c) => c,
        Err(e) => return format!("cannot open: {e}"),
    };
    match conn.query_row("PRAGMA integrity_check", [], |r| r.get::<_, String>(0)) {
        Ok(s) => s.chars().take(80).collect(),
        Err(e) => format!("error: {e}"),
    }
}

/// `suite writer`: commits into `db` at `rate` per second until its stdin says stop or
/// closes, then prints its [`WriterStats`] as one JSON line. Each commit updates a random
/// torrent's counters; one in twenty adds a torrent. A commit waits for locks up to 10 min.
pub fn writer_main(db: &Path, rate: u32) {
    let conn = Connection::open(db).expect("open the database");
    conn.busy_timeout(Duration::from_secs(600)).unwrap();
    // Start from an empty -wal, so its size at the end tells how far it grew meanwhile (a
    // reader's snapshot keeps checkpoints from starting it over). No-op in rollback mode.
    let _ = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
    let max_id: i64 = conn
        .query_row("SELECT max(id) FROM torrents", [], |r| r.get(0))
        .expect("torrents");
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = std::io::stdin().lock().read_line(&mut line);
        flag.store(true, Ordering::SeqCst);
    });
    let mut rng = Rng::new(std::process::id() as u64 * 7919);
    let period = Duration::from_secs_f64(1.0 / f64::from(rate.max(1)));
    let mut times = Vec::new();
    let mut stats = WriterStats::default();
    let mut next = Instant::now();
    let mut announced = false;
    while !stop.load(Ordering::SeqCst) {
        let start = Instant::now();
        let result = if rng.next().is_multiple_of(20) {
            conn.execute(
                "INSERT INTO torrents (info_hash, seeders, updated_at) VALUES (randomblob(20), 1, ?1)",
                [now_secs()],
            )
        } else {
            let id = 1 + (rng.next() % max_id as u64) as i64;
            conn.execute(
                "UPDATE torrents SET completed = completed + 1, seeders = seeders + 1, updated_at = ?1 WHERE id = ?2",
                [now_secs(), id],
            )
        };
        let took = start.elapsed().as_secs_f64() * 1000.0;
        times.push(took);
        match result {
            Ok(_) => stats.commits += 1,
            Err(e) => {
                stats.failed += 1;
                stats.first_error.get_or_insert_with(|| e.to_string());
            }
        }
        if !announced {
            println!("ready");
            announced = true;
        }
        next += period;
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        } else {
            // Late (a commit waited): start the schedule again from now, don't burst.
            next = now;
        }
    }
    // Before the connection closes: the last one to close checkpoints and removes the -wal.
    let mut wal = db.as_os_str().to_owned();
    wal.push("-wal");
    stats.wal_peak_bytes = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
    times.sort_by(f64::total_cmp);
    stats.worst_ms = times.last().copied().unwrap_or(0.0);
    stats.p99_ms = times
        .get((times.len() * 99 / 100).min(times.len().saturating_sub(1)))
        .copied()
        .unwrap_or(0.0);
    println!("{}", serde_json::to_string(&stats).unwrap());
}

/// `suite copy`: the bare one-step online backup of `db` into `out`, as a short script with
/// any SQLite binding does it (Python's `src.backup(dst)` is this call): all pages in one
/// step, retried while the source is locked, and nothing else (no verification).
pub fn copy_main(db: &Path, out: &Path) {
    let _ = std::fs::remove_file(out);
    let src = Connection::open(db).expect("open the source");
    let mut dst = Connection::open(out).expect("create the copy");
    let backup = Backup::new(&src, &mut dst).expect("start the backup");
    loop {
        match backup.step(-1).expect("backup step") {
            StepResult::Done => break,
            StepResult::More => {}
            _ => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// How the day's counter updates pick their torrent.
#[derive(Debug, Clone, Copy)]
pub enum Workload {
    /// Every torrent equally likely: the worst case for page deltas.
    Uniform,
    /// Zipf-distributed popularity with this exponent (1.0: the k-th most popular torrent is
    /// picked 1/k as often as the first), as trackers see: a few torrents take most
    /// completions. Ranks are scattered over the table (a torrent's id says nothing of its
    /// popularity), so the popular ones do not share pages.
    Zipf(f64),
}

impl Workload {
    pub fn name(self) -> String {
        match self {
            Workload::Uniform => "uniform".into(),
            Workload::Zipf(s) => format!("Zipf s={s}"),
        }
    }

    /// A torrent id in 1..=max_id.
    fn pick(self, rng: &mut Rng, max_id: i64) -> i64 {
        let n = max_id as u64;
        match self {
            Workload::Uniform => 1 + (rng.next() % n) as i64,
            Workload::Zipf(s) => {
                // Inverse CDF of the continuous power law on [1, n + 1): rank 1 most popular.
                let u = (rng.next() >> 11) as f64 / (1u64 << 53) as f64;
                let top = (n + 1) as f64;
                let x = if (s - 1.0).abs() < 1e-9 {
                    top.powf(u)
                } else {
                    ((top.powf(1.0 - s) - 1.0) * u + 1.0).powf(1.0 / (1.0 - s))
                };
                let rank = (x as u64).clamp(1, n);
                // A fixed scramble of ranks to ids (multiplication by an odd constant is a
                // bijection mod 2^64; the modulo folds it onto the table).
                1 + (rank.wrapping_mul(0x9E37_79B9_7F4A_7C15) % n) as i64
            }
        }
    }
}

/// A day's worth of a tracker's writes, applied as fast as they go: `updates` counter
/// updates of torrents picked by `workload` and `inserts` new torrents, with a fixed seed so
/// every run and every copy get the same ones.
pub fn apply_day(db: &Path, updates: u64, inserts: u64) -> rusqlite::Result<()> {
    apply_day_with(db, updates, inserts, Workload::Uniform)
}

pub fn apply_day_with(
    db: &Path,
    updates: u64,
    inserts: u64,
    workload: Workload,
) -> rusqlite::Result<()> {
    let mut conn = Connection::open(db)?;
    let max_id: i64 = conn.query_row("SELECT max(id) FROM torrents", [], |r| r.get(0))?;
    let mut rng = Rng::new(20_240_601);
    let mut done = 0;
    while done < updates + inserts {
        let tx = conn.transaction()?;
        for _ in 0..1000 {
            if done >= updates + inserts {
                break;
            }
            if done < updates {
                let id = workload.pick(&mut rng, max_id);
                tx.execute(
                    "UPDATE torrents SET completed = completed + 1, updated_at = updated_at + 86400 WHERE id = ?1",
                    [id],
                )?;
            } else {
                let hash = rng.next().to_le_bytes().repeat(3)[..20].to_vec();
                tx.execute(
                    "INSERT OR IGNORE INTO torrents (info_hash, updated_at) VALUES (?1, 1800000000)",
                    [hash],
                )?;
            }
            done += 1;
        }
        tx.commit()?;
    }
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")?;
    Ok(())
}
