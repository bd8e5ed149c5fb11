//! The benchmark suite (`bench/run.sh`): resticpilot side by side with the bare tools, on
//! generated Torrust-like databases, with a writer committing at a fixed rate during every
//! SQLite measurement. Prints Markdown tables and writes them to the work directory.
//!
//! Not part of the test suite or CI (it takes minutes to hours); `cargo clippy --all-targets`
//! builds it. The same binary is also the writer process and the bare one-step copy
//! (`suite writer`, `suite copy`) and calls resticpilot's own dump code (`suite dump`) in a
//! process of its own, so no measured step shares a process with the writer.

mod incremental;
mod mariadb;
mod measure;
mod postgresql;
mod torrust;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use resticpilot::config::DatabaseSource;
use resticpilot::source::Source;
use resticpilot::source::mysql::{MysqlSelection, MysqlSource};
use resticpilot::source::postgresql::{PgSelection, PgSource};
use resticpilot::source::sqlite::{
    DEFAULT_WRITER_HOLD_LIMIT, RestoreCheck, SqliteMethod, SqliteSource, SqliteVerify,
};

use measure::{Timed, WriterStats, run, with_writer};

/// The resticpilot benchmark suite: one command, side by side with the bare tools.
///
/// Run it through bench/run.sh, which builds in release mode, installs what is missing and
/// passes its arguments here.
#[derive(Debug, Parser)]
#[command(name = "bench/run.sh", max_term_width = 100)]
struct Args {
    #[command(subcommand)]
    sub: Option<Sub>,
    /// SQLite database sizes to generate and measure, comma separated (64M, 1G, 4G, 17G).
    #[arg(long, value_delimiter = ',', default_value = "1G")]
    sizes: Vec<String>,
    /// One size (the same as --sizes with one value).
    #[arg(long, conflicts_with = "sizes")]
    size: Option<String>,
    /// Journal modes to measure each size in.
    #[arg(long, value_delimiter = ',', default_value = "wal,delete")]
    modes: Vec<String>,
    /// Commits per second of the writer that runs during every SQLite measurement.
    #[arg(long, default_value_t = 50)]
    write_rate: u32,
    /// Seconds after which the sqlite3 shell's `.backup` is killed.
    #[arg(long, default_value_t = 60)]
    shell_timeout: u64,
    /// Size of the MariaDB database (0 skips the MariaDB section).
    #[arg(long, default_value = "1G")]
    mysql_size: String,
    /// Size of the PostgreSQL database (0 skips the PostgreSQL section).
    #[arg(long, default_value = "1G")]
    pg_size: String,
    /// A day's worth of writes for the repository-growth section: counter updates...
    #[arg(long, default_value_t = 86_400)]
    day_updates: u64,
    /// ...and new torrents.
    #[arg(long, default_value_t = 1_440)]
    day_inserts: u64,
    /// Exponent of the Zipf-skewed day (the incremental section's second workload).
    #[arg(long, default_value_t = 1.0)]
    zipf: f64,
    /// Runs of each head-to-head comparison (resticpilot vs bare tools); the best is reported.
    #[arg(long, default_value_t = 3)]
    repeat: u32,
    /// Where databases, repositories and results go (needs ~6x the largest size free).
    #[arg(long, default_value = "target/bench")]
    workdir: PathBuf,
    /// A directory on a filesystem that clones (XFS with reflink=1, btrfs) for the reflink
    /// rows. bench/run.sh makes one (an XFS image, loop-mounted) where it can.
    #[arg(long)]
    reflink_dir: Option<PathBuf>,
    /// Why there is no reflink directory (printed in the results).
    #[arg(long, default_value = "no --reflink-dir given")]
    no_reflink_reason: String,
    /// Drop the page cache before every timed step (root), to time the disk, not memory.
    #[arg(long)]
    cold: bool,
    /// Sections to skip: shell, cp, vacuum, dump, reflink, backup, restore, mysql, postgres,
    /// growth, incremental; `sqlite` skips the per-journal-mode SQLite section (shell to
    /// restore), e.g. to measure only `incremental`; with growth and incremental skipped too no
    /// SQLite database is made; `incremental-growth` skips the incremental section's day of
    /// writes, `incremental-rollback` its rollback-journal hold times, `incremental-backup` its
    /// backup and restore pairs.
    #[arg(long, value_delimiter = ',')]
    skip: Vec<String>,
    /// cargo bench passes --bench; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

#[derive(Debug, Subcommand)]
enum Sub {
    /// (internal) Commit into DB at RATE per second until stdin closes; print stats.
    Writer {
        #[arg(long)]
        db: PathBuf,
        #[arg(long)]
        rate: u32,
    },
    /// (internal) The bare one-step online backup of DB into OUT.
    Copy { db: PathBuf, out: PathBuf },
    /// (internal) resticpilot's own dump code, as `backup` runs it, into DIR.
    Dump {
        #[arg(long)]
        sqlite: Option<PathBuf>,
        #[arg(long, default_value = "online")]
        method: String,
        #[arg(long)]
        mysql_socket: Option<PathBuf>,
        #[arg(long)]
        mysql_db: Option<String>,
        /// The socket directory of a PostgreSQL server (and --pg-port, --pg-db).
        #[arg(long)]
        pg_socket: Option<PathBuf>,
        #[arg(long)]
        pg_port: Option<u16>,
        #[arg(long)]
        pg_db: Option<String>,
        #[arg(long)]
        dir: PathBuf,
    },
}

fn main() {
    let args = Args::parse();
    match &args.sub {
        Some(Sub::Writer { db, rate }) => torrust::writer_main(db, *rate),
        Some(Sub::Copy { db, out }) => torrust::copy_main(db, out),
        Some(Sub::Dump {
            sqlite,
            method,
            mysql_socket,
            mysql_db,
            pg_socket,
            pg_port,
            pg_db,
            dir,
        }) => dump_main(
            sqlite.as_deref(),
            method,
            mysql_socket.as_deref(),
            mysql_db.as_deref(),
            pg_socket.as_deref().map(|s| {
                (
                    s,
                    pg_port.expect("--pg-port"),
                    pg_db.as_deref().expect("--pg-db"),
                )
            }),
            dir,
        ),
        None => Suite::new(args).run(),
    }
}

/// `suite dump`: one dump through `resticpilot::source::dump`; prints its report as JSON.
fn dump_main(
    sqlite: Option<&Path>,
    method: &str,
    socket: Option<&Path>,
    db: Option<&str>,
    pg: Option<(&Path, u16, &str)>,
    dir: &Path,
) {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
    let pg_source = pg.map(|(socket, port, db)| -> Arc<dyn Source> {
        Arc::new(PgSource {
            host: None,
            port: Some(port),
            socket: Some(socket.to_path_buf()),
            user: Some("postgres".into()),
            password_file: None,
            databases: PgSelection::Named(vec![db.to_string()]),
            options: Vec::new(),
            globals: false,
            connect_timeout: resticpilot::source::postgresql::DEFAULT_CONNECT_TIMEOUT,
            lock_wait_timeout: resticpilot::source::postgresql::DEFAULT_LOCK_WAIT_TIMEOUT,
            dump_timeout: resticpilot::source::postgresql::DEFAULT_DUMP_TIMEOUT,
            restore_timeout: resticpilot::source::postgresql::DEFAULT_RESTORE_TIMEOUT,
        })
    });
    let source: Arc<dyn Source> = match (pg_source, sqlite, socket) {
        (Some(pg), _, _) => pg,
        (None, Some(path), _) => Arc::new(SqliteSource {
            path: path.to_path_buf(),
            method: match method {
                "online" => SqliteMethod::Online,
                "vacuum" => SqliteMethod::Vacuum,
                "reflink" => SqliteMethod::Reflink,
                other => panic!("unknown method {other}"),
            },
            verify: SqliteVerify::Quick,
            restore_check: RestoreCheck::Quick,
            convert_to_wal: false,
            writer_hold_limit: DEFAULT_WRITER_HOLD_LIMIT,
            incremental: None,
        }),
        (None, None, Some(socket)) => Arc::new(MysqlSource {
            host: None,
            port: None,
            socket: Some(socket.to_path_buf()),
            user: Some("root".into()),
            password_file: None,
            databases: MysqlSelection::Named(vec![db.expect("--mysql-db").to_string()]),
            options: Vec::new(),
            binary: None,
            restore_user: None,
            restore_password_file: None,
            connect_timeout: resticpilot::source::mysql::DEFAULT_MYSQL_CONNECT_TIMEOUT,
            lock_wait_timeout: resticpilot::source::mysql::DEFAULT_MYSQL_LOCK_WAIT_TIMEOUT,
            dump_timeout: resticpilot::source::mysql::DEFAULT_MYSQL_DUMP_TIMEOUT,
            restore_timeout: resticpilot::source::mysql::DEFAULT_MYSQL_RESTORE_TIMEOUT,
        }),
        (None, None, None) => panic!("--sqlite, --mysql-socket or --pg-socket"),
    };
    let source = DatabaseSource {
        name: "tracker".into(),
        source,
    };
    std::fs::create_dir_all(dir).unwrap();
    match resticpilot::source::dump(&source, dir) {
        Ok(report) => println!("{}", serde_json::to_string(&report.entry).unwrap()),
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    }
}

/// "64M", "1G", "512K", "1000" -> bytes.
fn parse_size(s: &str) -> u64 {
    let s = s.trim();
    let (num, mult) = match s.chars().last() {
        Some('K' | 'k') => (&s[..s.len() - 1], 1u64 << 10),
        Some('M' | 'm') => (&s[..s.len() - 1], 1 << 20),
        Some('G' | 'g') => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    let n: f64 = num
        .parse()
        .unwrap_or_else(|_| panic!("size {s:?}: use a number with K, M or G"));
    (n * mult as f64) as u64
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1u64 << 20) as f64
}

fn file_size(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// Bytes under `path` on disk (du).
fn disk_usage(path: &Path) -> u64 {
    let out = Command::new("du").arg("-sb").arg(path).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn secs(s: f64) -> String {
    if s < 0.1 {
        format!("{:.0} ms", s * 1000.0)
    } else {
        format!("{s:.2} s")
    }
}

fn ms(v: f64) -> String {
    if v >= 1000.0 {
        format!("{:.2} s", v / 1000.0)
    } else {
        format!("{v:.0} ms")
    }
}

fn writer_cells(w: &WriterStats) -> (String, String) {
    let failed = if w.failed > 0 {
        format!(
            ", **{} failed** ({})",
            w.failed,
            w.first_error.as_deref().unwrap_or("")
        )
    } else {
        String::new()
    };
    (ms(w.worst_ms), format!("{}{failed}", w.commits))
}

/// Paired runs of resticpilot and the bare tools, taken back to back so that a change in the
/// (shared) machine's load hits both; reported as medians, and the median of the per-pair
/// ratios with their range.
#[derive(Default)]
struct Pairs {
    rp: Vec<f64>,
    bare: Vec<f64>,
    rss_kib: u64,
}

fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

impl Pairs {
    fn add(&mut self, rp: &Timed, bare: f64) {
        self.rp.push(rp.secs);
        self.bare.push(bare);
        self.rss_kib = self.rss_kib.max(rp.peak_rss_kib.unwrap_or(0));
    }

    fn rp(&self) -> String {
        secs(median(&self.rp))
    }

    fn bare(&self) -> String {
        secs(median(&self.bare))
    }

    /// "1.12x (1.05-1.20)": the median ratio and the range over the pairs.
    fn ratio(&self) -> String {
        let ratios: Vec<f64> = self.rp.iter().zip(&self.bare).map(|(r, b)| r / b).collect();
        let lo = ratios.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = ratios.iter().copied().fold(0.0, f64::max);
        if ratios.len() > 1 {
            format!("**{:.2}x** ({lo:.2}-{hi:.2})", median(&ratios))
        } else {
            format!("**{:.2}x**", median(&ratios))
        }
    }

    fn rss(&self) -> String {
        format!("{:.1} MiB", self.rss_kib as f64 / 1024.0)
    }
}

/// The bench run: its settings and where things go.
struct Suite {
    args: Args,
    exe: PathBuf,
    resticpilot: PathBuf,
    work: PathBuf,
    password: PathBuf,
    out: String,
}

impl Suite {
    fn new(args: Args) -> Suite {
        let work = std::path::absolute(&args.workdir).unwrap();
        std::fs::create_dir_all(&work).unwrap();
        let password = work.join("restic-password");
        std::fs::write(&password, "bench-password\n").unwrap();
        Suite {
            exe: std::env::current_exe().unwrap(),
            resticpilot: PathBuf::from(env!("CARGO_BIN_EXE_resticpilot")),
            work,
            password,
            args,
            out: String::new(),
        }
    }

    fn skip(&self, section: &str) -> bool {
        self.args.skip.iter().any(|s| s == section)
    }

    fn say(&mut self, text: &str) {
        println!("{text}");
        self.out.push_str(text);
        self.out.push('\n');
    }

    fn progress(&self, text: &str) {
        eprintln!("[bench] {text}");
    }

    /// Before every timed step: what the step before wrote goes to disk first (its writeback
    /// would otherwise land in this step's time and in the writer's commits, and be counted
    /// against the wrong tool), and with `--cold` the page cache is dropped.
    fn settle(&self) {
        let _ = Command::new("sync").status();
        if self.args.cold
            && let Err(e) = std::fs::write("/proc/sys/vm/drop_caches", "3")
        {
            panic!("--cold needs root to drop the page cache: {e}");
        }
    }

    fn restic(&self, repo: &Path) -> Command {
        let mut cmd = Command::new("restic");
        cmd.env("RESTIC_REPOSITORY", repo)
            .env("RESTIC_CACHE_DIR", self.work.join("restic-cache"))
            .env("RESTIC_PASSWORD_FILE", &self.password)
            .env_remove("RESTIC_PASSWORD")
            .env_remove("RESTIC_PASSWORD_COMMAND");
        cmd
    }

    /// `resticpilot -c config`, with restic's cache in the work directory as for bare restic.
    fn resticpilot(&self, config: &Path) -> Command {
        let mut cmd = Command::new(&self.resticpilot);
        cmd.env("RESTIC_CACHE_DIR", self.work.join("restic-cache"))
            .env_remove("RUST_LOG")
            .arg("-c")
            .arg(config);
        cmd
    }

    /// A fresh, empty repository at `repo`.
    fn fresh_repo(&self, repo: &Path) {
        let _ = std::fs::remove_dir_all(repo);
        let out = self.restic(repo).arg("init").output().unwrap();
        assert!(
            out.status.success(),
            "restic init: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn run(mut self) {
        let sizes: Vec<String> = match &self.args.size {
            Some(s) => vec![s.clone()],
            None => self.args.sizes.clone(),
        };
        self.header(&sizes);
        let sqlite_sizes = if self.skip("sqlite") && self.skip("growth") && self.skip("incremental")
        {
            &[][..]
        } else {
            &sizes[..]
        };
        for size in sqlite_sizes {
            let bytes = parse_size(size);
            let cache = self.cached_database(size, bytes);
            let actual = file_size(&cache);
            if !self.skip("sqlite") {
                for mode in self.args.modes.clone() {
                    self.sqlite_section(size, &cache, actual, &mode);
                }
            }
            if !self.skip("growth") {
                self.growth_section(size, &cache);
            }
            if !self.skip("incremental") {
                self.incremental_section(size, &cache, actual);
            }
        }
        let mysql = parse_size(&self.args.mysql_size);
        if mysql > 0 && !self.skip("mysql") {
            self.mysql_section(mysql);
        }
        let pg = parse_size(&self.args.pg_size);
        if pg > 0 && !self.skip("postgres") {
            self.postgres_section(pg);
        }
        let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
        let file = self.work.join(format!("results-{stamp}.md"));
        std::fs::write(&file, &self.out).unwrap();
        eprintln!("[bench] results written to {}", file.display());
    }

    fn header(&mut self, sizes: &[String]) {
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .map(|m| m.trim_start_matches([' ', '\t', ':']).to_string())
            .unwrap_or_default();
        let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
        let mem = std::fs::read_to_string("/proc/meminfo")
            .unwrap_or_default()
            .lines()
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .nth(1)
            .and_then(|k| k.parse::<u64>().ok())
            .map_or(0.0, |k| k as f64 / 1048576.0);
        let fs = Command::new("df")
            .args(["-h", "--output=fstype,size,source"])
            .arg(&self.work)
            .output()
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .nth(1)
                    .unwrap_or_default()
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default();
        let (read, write) = self.disk_speed();
        let version = |cmd: &str, arg: &str| {
            Command::new(cmd)
                .arg(arg)
                .output()
                .map(|o| {
                    String::from_utf8_lossy(&o.stdout)
                        .lines()
                        .next()
                        .unwrap_or_default()
                        .to_string()
                })
                .unwrap_or_else(|_| "missing".into())
        };
        let commit = Command::new("git")
            .args(["rev-parse", "--short", "HEAD"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default();
        let mut h = String::new();
        let _ = writeln!(
            h,
            "## resticpilot benchmarks ({})\n",
            chrono::Utc::now().format("%Y-%m-%d %H:%M UTC")
        );
        let _ = writeln!(h, "- machine: {cores} cores ({cpu}), {mem:.0} GiB RAM");
        let _ = writeln!(
            h,
            "- disk: {fs}; sequential read {read:.0} MB/s, write {write:.0} MB/s (dd, O_DIRECT, 1 GiB)"
        );
        let _ = writeln!(
            h,
            "- page cache: {}",
            if self.args.cold {
                "dropped before every timed step (--cold)"
            } else {
                "warm (the databases fit in RAM; a copy reads memory, writes the disk)"
            }
        );
        let _ = writeln!(
            h,
            "- before every timed step: `sync`, so the writeback of the step before is not timed (or felt by the writer) in this one"
        );
        let _ = writeln!(
            h,
            "- sizes {}, modes {}, writer {} commits/s, shell .backup timeout {} s, head-to-head rows: median of {} back-to-back pairs",
            sizes.join(", "),
            self.args.modes.join(", "),
            self.args.write_rate,
            self.args.shell_timeout,
            self.args.repeat
        );
        let _ = writeln!(
            h,
            "- {}; {}; {}; {}; resticpilot {commit}",
            version("restic", "version"),
            format_args!("sqlite3 {}", version("sqlite3", "--version")),
            version("mariadb-dump", "--version"),
            version("pg_dump", "--version"),
        );
        let reflink = match &self.args.reflink_dir {
            Some(d) => format!("reflink rows on {}", d.display()),
            None => format!("reflink rows skipped: {}", self.args.no_reflink_reason),
        };
        let _ = writeln!(h, "- {reflink}");
        self.say(&h);
    }

    /// Sequential O_DIRECT read and write speed of the work directory's disk, in MB/s.
    fn disk_speed(&self) -> (f64, f64) {
        let file = self.work.join("dd.tmp");
        let dd = |args: &[&str]| -> f64 {
            let out = Command::new("dd").args(args).output().unwrap();
            // dd's last stderr line: "... copied, 1.2 s, 850 MB/s"
            let text = String::from_utf8_lossy(&out.stderr);
            let last = text.lines().last().unwrap_or_default();
            let mut parts = last.rsplit(", ");
            let rate = parts.next().unwrap_or_default();
            let (n, unit) = rate.split_once(' ').unwrap_or(("0", "MB/s"));
            let n: f64 = n.replace(',', ".").parse().unwrap_or(0.0);
            match unit {
                "GB/s" => n * 1000.0,
                "kB/s" => n / 1000.0,
                _ => n,
            }
        };
        let of = format!("of={}", file.display());
        let write = dd(&[
            "if=/dev/zero",
            &of,
            "bs=4M",
            "count=256",
            "oflag=direct",
            "conv=fsync",
        ]);
        let iff = format!("if={}", file.display());
        let read = dd(&[&iff, "of=/dev/null", "bs=4M", "iflag=direct"]);
        let _ = std::fs::remove_file(file);
        (read, write)
    }

    /// The generated database of `size`, made once and kept in the work directory.
    fn cached_database(&self, size: &str, bytes: u64) -> PathBuf {
        let dir = self.work.join("cache");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("torrust-{size}.db"));
        if file_size(&path) < bytes {
            self.progress(&format!("generating a {size} Torrust-like database (once)"));
            let start = Instant::now();
            let partial = dir.join(format!("torrust-{size}.db.partial"));
            torrust::generate(&partial, bytes).unwrap();
            std::fs::rename(&partial, &path).unwrap();
            self.progress(&format!(
                "generated {} MiB in {:.0} s",
                mib(file_size(&path)) as u64,
                start.elapsed().as_secs_f64()
            ));
        }
        path
    }

    /// A working copy of `cache` at `dir/tracker.db`, in journal `mode`.
    fn live_copy(&self, cache: &Path, dir: &Path, mode: &str) -> PathBuf {
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir).unwrap();
        let live = dir.join("tracker.db");
        let status = Command::new("cp").arg(cache).arg(&live).status().unwrap();
        assert!(status.success());
        torrust::set_journal_mode(&live, mode).unwrap();
        // Flush the fresh copy now, or the writer's first fsync pays for the whole file.
        std::fs::File::open(&live).unwrap().sync_all().unwrap();
        live
    }

    /// Times `cmd` while the writer commits into `db`.
    fn under_writer(
        &self,
        db: &Path,
        cmd: &mut Command,
        timeout: Option<Duration>,
        rss: bool,
    ) -> (Timed, WriterStats) {
        self.settle();
        with_writer(&self.exe, db, self.args.write_rate, || {
            run(cmd, timeout, rss)
        })
    }

    fn sqlite_section(&mut self, size: &str, cache: &Path, bytes: u64, mode: &str) {
        let dir = self.work.join("sqlite");
        let live = self.live_copy(cache, &dir, mode);
        let out = dir.join("out.db");
        let mb = mib(bytes);
        self.say(&format!(
            "### SQLite {size} ({mb:.0} MiB), journal mode {mode}, writer at {} commits/s\n",
            self.args.write_rate
        ));
        self.say("| method | time | MiB/s | writer: worst commit | writer: commits | copy passes integrity_check | note |");
        self.say("| --- | --- | --- | --- | --- | --- | --- |");

        self.progress(&format!("{size} {mode}: writer alone (baseline)"));
        let (_, base) = with_writer(&self.exe, &live, self.args.write_rate, || {
            std::thread::sleep(Duration::from_secs(3))
        });
        let (worst, commits) = writer_cells(&base);
        self.say(&format!(
            "| writer alone, 4 s (baseline) | - | - | {worst} | {commits} | - | p99 {} |",
            ms(base.p99_ms)
        ));

        let row = |suite: &mut Suite,
                   name: &str,
                   cmd: &mut Command,
                   timeout: Option<Duration>,
                   db: &Path,
                   out: &Path,
                   note: &str| {
            suite.progress(&format!("{size} {mode}: {name}"));
            let _ = std::fs::remove_file(out);
            let (t, w) = suite.under_writer(db, cmd, timeout, false);
            let integrity = if t.ok {
                torrust::integrity(out)
            } else {
                "-".into()
            };
            let (time, rate) = if t.ok {
                (secs(t.secs), format!("{:.0}", mb / t.secs))
            } else {
                (
                    format!("**did not finish**: {}", t.short_error()),
                    "-".into(),
                )
            };
            let (worst, commits) = writer_cells(&w);
            suite.say(&format!(
                "| {name} | {time} | {rate} | {worst} | {commits} | {integrity} | {note} |"
            ));
            for suffix in ["", "-wal", "-shm"] {
                let mut name = out.as_os_str().to_owned();
                name.push(suffix);
                let _ = std::fs::remove_file(name);
            }
            t
        };

        let exe = self.exe.clone();
        let shell_timeout = Duration::from_secs(self.args.shell_timeout);
        if !self.skip("shell") {
            row(
                self,
                "`sqlite3 db \".backup out\"` (shell, 100-page steps)",
                Command::new("sqlite3")
                    .arg(&live)
                    .arg(".timeout 60000")
                    .arg(format!(".backup {}", out.display())),
                Some(shell_timeout),
                &live,
                &out,
                "the method the Torrust research used",
            );
        }
        if !self.skip("cp") {
            row(
                self,
                "`cp` (unsafe)",
                Command::new("cp").arg(&live).arg(&out),
                None,
                &live,
                &out,
                if mode == "wal" {
                    "main file only: misses what is still in the -wal; may be torn"
                } else {
                    "may be torn: no lock"
                },
            );
        }
        if !self.skip("vacuum") {
            row(
                self,
                "`VACUUM INTO` (sqlite3 shell)",
                Command::new("sqlite3")
                    .arg(&live)
                    .arg(".timeout 600000")
                    .arg(format!("VACUUM INTO '{}'", out.display())),
                None,
                &live,
                &out,
                "",
            );
        }
        if !self.skip("dump") {
            let staged = dir.join("staged");
            let t = row(
                self,
                "resticpilot dump (online, one step)",
                Command::new(&exe)
                    .args(["dump", "--method", "online", "--sqlite"])
                    .arg(&live)
                    .arg("--dir")
                    .arg(&staged),
                None,
                &live,
                &staged.join("tracker.sqlite3"),
                "includes quick_check of the copy",
            );
            if !t.ok {
                eprintln!("{}", t.stderr);
            }
            let _ = std::fs::remove_dir_all(&staged);
        }
        if !self.skip("reflink") {
            self.reflink_rows(cache, mode, mb);
        }
        self.say("");
        if !self.skip("backup") {
            self.backup_section(size, &live, mode, bytes);
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// resticpilot's dump on the reflink filesystem: online and reflink, side by side.
    fn reflink_rows(&mut self, cache: &Path, mode: &str, mb: f64) {
        let Some(fs) = self.args.reflink_dir.clone() else {
            self.say(&format!(
                "| resticpilot dump (reflink) | - | - | - | - | - | skipped: {} |",
                self.args.no_reflink_reason
            ));
            return;
        };
        let dir = fs.join("sqlite");
        let live = self.live_copy(cache, &dir, mode);
        for method in ["online", "reflink"] {
            self.progress(&format!(
                "{mode}: resticpilot dump ({method}) on the reflink filesystem"
            ));
            let staged = dir.join("staged");
            let (t, w) = self.under_writer(
                &live,
                Command::new(&self.exe)
                    .args(["dump", "--method", method, "--sqlite"])
                    .arg(&live)
                    .arg("--dir")
                    .arg(&staged),
                None,
                false,
            );
            let copy = staged.join("tracker.sqlite3");
            let integrity = if t.ok {
                torrust::integrity(&copy)
            } else {
                "-".into()
            };
            let reported: serde_json::Value =
                serde_json::from_str(t.stdout.trim()).unwrap_or_default();
            let how = reported["method"].as_str().unwrap_or("").to_string();
            let (time, rate) = if t.ok {
                (secs(t.secs), format!("{:.0}", mb / t.secs))
            } else {
                (format!("**failed**: {}", t.short_error()), "-".into())
            };
            let (worst, commits) = writer_cells(&w);
            self.say(&format!(
                "| resticpilot dump ({method}) on XFS (loop image) | {time} | {rate} | {worst} | {commits} | {integrity} | {how}; includes quick_check |"
            ));
            let _ = std::fs::remove_dir_all(&staged);
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A resticpilot config with one profile `bench` backing up `db` into `repo`.
    fn config(&self, name: &str, repo: &Path, database: &str) -> PathBuf {
        let path = self.work.join(format!("{name}.yaml"));
        let text = format!(
            "state_dir: {state}
repositories:
  bench:
    url: {repo}
    password_file: {password}
profiles:
  bench:
    repository: bench
    host: bench
    databases:
      - {database}
",
            state = self.work.join("rp-state").display(),
            repo = repo.display(),
            password = self.password.display(),
        );
        std::fs::write(&path, text).unwrap();
        path
    }

    /// The whole `backup` against the bare tools (one-step copy + `restic backup`), --repeat
    /// pairs; then the restore comparison when `restore` exists.
    fn backup_section(&mut self, size: &str, live: &Path, mode: &str, bytes: u64) {
        let repo = self.work.join("repo");
        let copy_dir = self.work.join("bare");
        let config = self.config(
            "bench",
            &repo,
            &format!(
                "{{ name: tracker, type: sqlite, path: {} }}",
                live.display()
            ),
        );
        let mut pairs = Pairs::default();
        let (mut copies, mut restics, mut dumps) = (Vec::new(), Vec::new(), Vec::new());
        let mut rp_writer = WriterStats::default();
        let mut bare_writer = WriterStats::default();
        for i in 0..self.args.repeat.max(1) {
            self.progress(&format!(
                "{size} {mode}: resticpilot backup vs bare tools, run {}",
                i + 1
            ));
            let rp_run = || {
                self.fresh_repo(&repo);
                self.under_writer(
                    live,
                    self.resticpilot(&config).args(["backup", "bench"]),
                    None,
                    true,
                )
            };
            let bare_run = || {
                self.fresh_repo(&repo);
                let _ = std::fs::remove_dir_all(&copy_dir);
                std::fs::create_dir_all(&copy_dir).unwrap();
                let out = copy_dir.join("tracker.sqlite3");
                self.settle();
                with_writer(&self.exe, live, self.args.write_rate, || {
                    let copy = run(
                        Command::new(&self.exe).arg("copy").arg(live).arg(&out),
                        None,
                        false,
                    );
                    let backup = run(
                        self.restic(&repo)
                            .args(["backup", "--json", "--host", "bench"])
                            .arg(&copy_dir),
                        None,
                        false,
                    );
                    (copy, backup)
                })
            };
            // Alternate which goes first, so neither always meets the same machine state.
            let ((t, rw), ((copy, backup), bw)) = if i % 2 == 0 {
                let r = rp_run();
                (r, bare_run())
            } else {
                let b = bare_run();
                (rp_run(), b)
            };
            assert!(t.ok, "resticpilot backup failed: {}", t.stderr);
            assert!(copy.ok && backup.ok, "{}{}", copy.stderr, backup.stderr);
            if let Some(d) = t
                .stderr
                .lines()
                .find(|l| l.contains("dumped tracker.sqlite3"))
                .and_then(|l| l.split(" in ").nth(1))
                .and_then(|s| s.split('s').next())
                .and_then(|s| s.parse::<f64>().ok())
            {
                dumps.push(d);
            }
            rp_writer.worst_ms = rp_writer.worst_ms.max(rw.worst_ms);
            rp_writer.commits += rw.commits;
            rp_writer.failed += rw.failed;
            bare_writer.worst_ms = bare_writer.worst_ms.max(bw.worst_ms);
            bare_writer.commits += bw.commits;
            bare_writer.failed += bw.failed;
            pairs.add(&t, copy.secs + backup.secs);
            copies.push(copy.secs);
            restics.push(backup.secs);
        }
        self.say(&format!(
            "#### Whole backup, SQLite {size} {mode}, writer running (median of {} pairs)\n",
            pairs.rp.len()
        ));
        self.say("| what | time | vs bare | writer: worst commit | resticpilot peak RSS | note |");
        self.say("| --- | --- | --- | --- | --- | --- |");
        self.say(&format!(
            "| bare: one-step copy + `restic backup` | {} | 1.00x | {} | - | copy {}, restic {} |",
            pairs.bare(),
            ms(bare_writer.worst_ms),
            secs(median(&copies)),
            secs(median(&restics))
        ));
        self.say(&format!(
            "| `resticpilot backup` | {} | {} | {} | {} | dump {} incl. quick_check |",
            pairs.rp(),
            pairs.ratio(),
            ms(rp_writer.worst_ms),
            pairs.rss(),
            secs(median(&dumps)),
        ));
        self.say("");
        let _ = std::fs::remove_dir_all(&copy_dir);
        if !self.skip("restore") {
            self.restore_rows(&repo, &config, size, bytes);
        }
        let _ = std::fs::remove_dir_all(&repo);
    }

    /// `resticpilot restore` of the database against `restic restore` + integrity_check,
    /// from the repository the last `resticpilot backup` wrote.
    fn restore_rows(&mut self, repo: &Path, backup_config: &Path, size: &str, bytes: u64) {
        let help = Command::new(&self.resticpilot)
            .args(["restore", "--help"])
            .output();
        if !help.is_ok_and(|o| o.status.success()) {
            self.say(&format!(
                "Restore comparison ({size}): **skipped**, this resticpilot has no `restore` command yet.\n"
            ));
            return;
        }
        // The pairs above alternate, so the repository may hold the bare run's snapshot last:
        // take one of the profile to restore from.
        self.fresh_repo(repo);
        let b = run(
            self.resticpilot(backup_config).args(["backup", "bench"]),
            None,
            false,
        );
        assert!(
            b.ok,
            "resticpilot backup for the restore rows: {}",
            b.stderr
        );
        let target = self.work.join("restored");
        let mut pairs = Pairs::default();
        let mut restics = Vec::new();
        for i in 0..self.args.repeat.max(1) {
            self.progress(&format!("{size}: restore comparison, run {}", i + 1));
            let _ = std::fs::remove_dir_all(&target);
            std::fs::create_dir_all(&target).unwrap();
            // The same profile, its database pointing at a scratch path to restore into.
            let into = target.join("tracker.db");
            let config = self.config(
                "restore",
                repo,
                &format!(
                    "{{ name: tracker, type: sqlite, path: {} }}",
                    into.display()
                ),
            );
            self.settle();
            let t = run(
                self.resticpilot(&config).args([
                    "restore",
                    "bench",
                    "--snapshot",
                    "latest",
                    "--database",
                    "tracker",
                    "--force",
                ]),
                None,
                true,
            );
            let ok = t.ok && torrust::integrity(&into) == "ok";
            if !ok {
                self.say(&format!(
                    "Restore comparison ({size}): `resticpilot restore` **failed**: {}\n",
                    t.short_error()
                ));
                return;
            }

            let _ = std::fs::remove_dir_all(&target);
            self.settle();
            let r = run(
                self.restic(repo)
                    .args(["restore", "latest", "--target"])
                    .arg(&target),
                None,
                false,
            );
            assert!(r.ok, "restic restore: {}", r.stderr);
            let file = walk_find(&target, "tracker.sqlite3").expect("restored dump");
            let check = run(
                Command::new("sqlite3")
                    .arg(&file)
                    .arg("PRAGMA integrity_check"),
                None,
                false,
            );
            assert!(check.stdout.trim() == "ok", "{}", check.stdout);
            pairs.add(&t, r.secs + check.secs);
            restics.push(r.secs);
        }
        self.say(&format!(
            "#### Restore, SQLite {size} ({:.0} MiB, median of {} pairs)\n",
            mib(bytes),
            pairs.rp.len()
        ));
        self.say("| what | time | vs bare | resticpilot peak RSS |");
        self.say("| --- | --- | --- | --- |");
        self.say(&format!(
            "| bare: `restic restore` + `PRAGMA integrity_check` | {} | 1.00x | - (restic {}) |",
            pairs.bare(),
            secs(median(&restics))
        ));
        self.say(&format!(
            "| `resticpilot restore` | {} | {} | {} |\n",
            pairs.rp(),
            pairs.ratio(),
            pairs.rss()
        ));
        let _ = std::fs::remove_dir_all(&target);
    }

    /// Repository growth after a day's worth of scattered updates: the raw page copy against
    /// a `.dump` text dump, each in its own repository.
    fn growth_section(&mut self, size: &str, cache: &Path) {
        self.progress(&format!("{size}: repository growth after a day of updates"));
        let dir = self.work.join("growth");
        let live = self.live_copy(cache, &dir, "wal");
        let pages = dir.join("pages");
        let text = dir.join("text");
        std::fs::create_dir_all(&text).unwrap();
        let repo_pages = dir.join("repo-pages");
        let repo_text = dir.join("repo-text");
        self.fresh_repo(&repo_pages);
        self.fresh_repo(&repo_text);
        let added = |suite: &Suite, repo: &Path, what: &Path| -> (u64, u64) {
            let before = disk_usage(repo);
            let t = run(
                suite
                    .restic(repo)
                    .args(["backup", "--json", "--host", "bench"])
                    .arg(what),
                None,
                false,
            );
            assert!(t.ok, "{}", t.stderr);
            let summary = t
                .stdout
                .lines()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .find(|v| v["message_type"] == "summary")
                .expect("restic summary");
            (
                summary["data_added"].as_u64().unwrap_or(0),
                disk_usage(repo) - before,
            )
        };
        let page_dump = |suite: &Suite| {
            let t = run(
                Command::new(&suite.exe)
                    .args(["dump", "--method", "online", "--sqlite"])
                    .arg(&live)
                    .arg("--dir")
                    .arg(&pages),
                None,
                false,
            );
            assert!(t.ok, "{}", t.stderr);
            t.secs
        };
        let text_dump = |_: &Suite| {
            let file = std::fs::File::create(text.join("tracker.sql")).unwrap();
            let start = Instant::now();
            let status = Command::new("sqlite3")
                .arg(&live)
                .arg(".dump")
                .stdout(file)
                .status()
                .unwrap();
            assert!(status.success());
            start.elapsed().as_secs_f64()
        };
        page_dump(self);
        text_dump(self);
        let page_size = file_size(&pages.join("tracker.sqlite3"));
        let text_size = file_size(&text.join("tracker.sql"));
        let p1 = added(self, &repo_pages, &pages);
        let t1 = added(self, &repo_text, &text);
        torrust::apply_day(&live, self.args.day_updates, self.args.day_inserts).unwrap();
        let page_secs = page_dump(self);
        let text_secs = text_dump(self);
        let p2 = added(self, &repo_pages, &pages);
        let t2 = added(self, &repo_text, &text);
        self.say(&format!(
            "#### Repository growth, SQLite {size}: one day of writes ({} scattered counter updates, {} new torrents)\n",
            self.args.day_updates, self.args.day_inserts
        ));
        self.say("| dump kind | file | dump time | first snapshot: data added / repo grew | after the day: data added / repo grew | after the day, repo grew by % of the file |");
        self.say("| --- | --- | --- | --- | --- | --- |");
        for (name, size, took, first, second) in [
            (
                "raw page copy (resticpilot's online dump; time incl. quick_check)",
                page_size,
                page_secs,
                p1,
                p2,
            ),
            ("`sqlite3 db .dump` SQL text", text_size, text_secs, t1, t2),
        ] {
            self.say(&format!(
                "| {name} | {:.0} MiB | {} | {:.0} / {:.0} MiB | {:.1} / {:.1} MiB | {:.1} % |",
                mib(size),
                secs(took),
                mib(first.0),
                mib(first.1),
                mib(second.0),
                mib(second.1),
                100.0 * second.1 as f64 / size.max(1) as f64
            ));
        }
        self.say("");
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn mysql_section(&mut self, bytes: u64) {
        self.progress("MariaDB: starting the server (and loading the database, once)");
        let server = mariadb::start(&self.work.join("mariadb"));
        let start = Instant::now();
        server.ensure_tracker("tracker", bytes);
        let loaded = start.elapsed().as_secs_f64();
        if loaded > 5.0 {
            self.progress(&format!("loaded the MariaDB database in {loaded:.0} s"));
        }
        let size = server.size("tracker");
        let dir = self.work.join("mysql-dump");
        let cnf = self.work.join("mysql-client.cnf");
        std::fs::write(
            &cnf,
            format!("[client]\nuser=root\nsocket={}\n", server.socket.display()),
        )
        .unwrap();
        let mut pairs = Pairs::default();
        let mut dump_size = 0;
        for i in 0..self.args.repeat.max(1) {
            self.progress(&format!("MariaDB: dumps, run {}", i + 1));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            let file = dir.join("bare.sql");
            let bare = || {
                self.settle();
                let t = run(
                    Command::new("sh").arg("-c").arg(format!(
                        "mariadb-dump --defaults-extra-file={} {} --databases tracker > {}",
                        cnf.display(),
                        resticpilot::source::mysql::dump::DUMP_FLAGS.join(" "),
                        file.display()
                    )),
                    None,
                    false,
                );
                assert!(t.ok, "{}", t.stderr);
                t
            };
            let rp = || {
                self.settle();
                let t = run(
                    Command::new(&self.exe)
                        .arg("dump")
                        .arg("--mysql-socket")
                        .arg(&server.socket)
                        .args(["--mysql-db", "tracker", "--dir"])
                        .arg(&dir),
                    None,
                    false,
                );
                assert!(t.ok, "{}", t.stderr);
                t
            };
            // Alternate which goes first, so neither always meets the warmer server.
            let (b, r) = if i % 2 == 0 {
                let b = bare();
                (b, rp())
            } else {
                let r = rp();
                (bare(), r)
            };
            dump_size = file_size(&file);
            pairs.add(&r, b.secs);
        }
        // The whole backup of the MariaDB profile, for resticpilot's own memory.
        self.progress("MariaDB: resticpilot backup (peak RSS)");
        let repo = self.work.join("repo-mysql");
        self.fresh_repo(&repo);
        let config = self.config(
            "bench-mysql",
            &repo,
            &format!(
                "{{ name: tracker, type: mysql, socket: {}, user: root, databases: [tracker] }}",
                server.socket.display()
            ),
        );
        let whole = run(
            self.resticpilot(&config).args(["backup", "bench"]),
            None,
            true,
        );
        assert!(whole.ok, "{}", whole.stderr);
        let _ = std::fs::remove_dir_all(&repo);
        let _ = std::fs::remove_dir_all(&dir);
        drop(server);

        let (rp, bare) = (median(&pairs.rp), median(&pairs.bare));
        self.say(&format!(
            "### MariaDB: a {:.0} MiB database (InnoDB data + indexes), {:.0} MiB dump (median of {} pairs)\n",
            mib(size),
            mib(dump_size),
            pairs.rp.len()
        ));
        self.say("| what | time | vs bare | MiB/s of dump | resticpilot peak RSS |");
        self.say("| --- | --- | --- | --- | --- |");
        self.say(&format!(
            "| bare: `mariadb-dump {} --databases tracker > file` | {} | 1.00x | {:.0} | - |",
            resticpilot::source::mysql::dump::DUMP_FLAGS.join(" "),
            secs(bare),
            mib(dump_size) / bare
        ));
        self.say(&format!(
            "| resticpilot dump (same flags, trailer check, table list) | {} | {} | {:.0} | - |",
            secs(rp),
            pairs.ratio(),
            mib(dump_size) / rp
        ));
        self.say(&format!(
            "| `resticpilot backup` of the MariaDB profile (dump + restic) | {} | - | - | {:.1} MiB |\n",
            secs(whole.secs),
            whole.peak_rss_kib.unwrap_or(0) as f64 / 1024.0
        ));
    }

    /// `sh -c script` with restic's settings for `repo` and the PostgreSQL server's.
    fn pg_shell(&self, server: &postgresql::Server, repo: &Path, script: &str) -> Command {
        let mut cmd = server.tool("sh");
        cmd.arg("-c")
            .arg(script)
            .env("RESTIC_REPOSITORY", repo)
            .env("RESTIC_CACHE_DIR", self.work.join("restic-cache"))
            .env("RESTIC_PASSWORD_FILE", &self.password)
            .env_remove("RESTIC_PASSWORD")
            .env_remove("RESTIC_PASSWORD_COMMAND");
        cmd
    }

    /// PostgreSQL: resticpilot's dump against bare `pg_dump` in the same format, its restore
    /// against bare `restic restore` + `createdb` + `pg_restore`, --repeat back-to-back pairs
    /// each (alternating which goes first), and one whole backup against the bare pair.
    fn postgres_section(&mut self, bytes: u64) {
        self.progress(
            "PostgreSQL: starting a server on a temporary directory and loading the database",
        );
        let server = postgresql::start();
        let start = Instant::now();
        server.ensure_items("bench", bytes);
        self.progress(&format!(
            "loaded the PostgreSQL database in {:.0} s",
            start.elapsed().as_secs_f64()
        ));
        let size = server.size("bench");
        let rows = server.sql_in("bench", "SELECT count(*) FROM items");
        let flags = resticpilot::source::postgresql::dump::DUMP_FLAGS.join(" ");
        let dir = self.work.join("pg-dump");
        let bare_dir = self.work.join("pg-bare");
        let mut dumps = Pairs::default();
        let mut dump_size = 0;
        for i in 0..self.args.repeat.max(1) {
            self.progress(&format!("PostgreSQL: dumps, run {}", i + 1));
            let _ = std::fs::remove_dir_all(&dir);
            let _ = std::fs::remove_dir_all(&bare_dir);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::create_dir_all(&bare_dir).unwrap();
            let file = bare_dir.join("bench.dump");
            let bare = || {
                self.settle();
                let t = run(
                    server
                        .tool("pg_dump")
                        .args(resticpilot::source::postgresql::dump::DUMP_FLAGS)
                        .arg("--file")
                        .arg(&file)
                        .arg("bench"),
                    None,
                    false,
                );
                assert!(t.ok, "{}", t.stderr);
                t
            };
            let rp = || {
                self.settle();
                let t = run(
                    Command::new(&self.exe)
                        .arg("dump")
                        .arg("--pg-socket")
                        .arg(&server.socket)
                        .arg("--pg-port")
                        .arg(server.port.to_string())
                        .args(["--pg-db", "bench", "--dir"])
                        .arg(&dir),
                    None,
                    true,
                );
                assert!(t.ok, "{}", t.stderr);
                t
            };
            let (b, r) = if i % 2 == 0 {
                let b = bare();
                (b, rp())
            } else {
                let r = rp();
                (bare(), r)
            };
            dump_size = file_size(&file);
            dumps.add(&r, b.secs);
        }
        let _ = std::fs::remove_dir_all(&dir);
        let _ = std::fs::remove_dir_all(&bare_dir);

        // One whole backup each: resticpilot's (which the restores below read) and the bare
        // tools' (pg_dump to a file, then restic backup of it).
        self.progress("PostgreSQL: resticpilot backup and the bare pg_dump + restic backup");
        let repo = self.work.join("repo-pg");
        let bare_repo = self.work.join("repo-pg-bare");
        self.fresh_repo(&repo);
        self.fresh_repo(&bare_repo);
        let config = self.config(
            "bench-pg",
            &repo,
            &format!(
                "{{ name: pg, type: postgresql, socket: {}, port: {}, user: postgres, databases: [bench] }}",
                server.socket.display(),
                server.port
            ),
        );
        self.settle();
        let whole = run(
            self.resticpilot(&config).args(["backup", "bench"]),
            None,
            true,
        );
        assert!(whole.ok, "{}", whole.stderr);
        std::fs::create_dir_all(&bare_dir).unwrap();
        self.settle();
        let bare_whole = run(
            &mut self.pg_shell(
                &server,
                &bare_repo,
                &format!(
                    "pg_dump {flags} --file {dir}/bench.dump bench && restic backup --quiet --host bench {dir}",
                    dir = bare_dir.display()
                ),
            ),
            None,
            false,
        );
        assert!(bare_whole.ok, "{}", bare_whole.stderr);
        let _ = std::fs::remove_dir_all(&bare_repo);
        let _ = std::fs::remove_dir_all(&bare_dir);

        let target = self.work.join("pg-restored");
        let mut restores = Pairs::default();
        for i in 0..self.args.repeat.max(1) {
            self.progress(&format!("PostgreSQL: restores, run {}", i + 1));
            for db in ["rp_restored", "bare_restored"] {
                server.sql_in("postgres", &format!("DROP DATABASE IF EXISTS {db}"));
            }
            let _ = std::fs::remove_dir_all(&target);
            let rp = || {
                self.settle();
                let t = run(
                    self.resticpilot(&config).args([
                        "restore",
                        "bench",
                        "--database",
                        "pg",
                        "--into",
                        "rp_restored",
                    ]),
                    None,
                    true,
                );
                assert!(t.ok, "{}", t.stderr);
                t
            };
            let bare = || {
                self.settle();
                let t = run(
                    &mut self.pg_shell(
                        &server,
                        &repo,
                        &format!(
                            "restic restore --quiet latest --target {t} && createdb bare_restored && \
                             pg_restore --single-transaction --exit-on-error -d bare_restored \"$(find {t} -name bench.dump)\"",
                            t = target.display()
                        ),
                    ),
                    None,
                    false,
                );
                assert!(t.ok, "{}", t.stderr);
                t
            };
            let (b, r) = if i % 2 == 0 {
                let b = bare();
                (b, rp())
            } else {
                let r = rp();
                (bare(), r)
            };
            for db in ["rp_restored", "bare_restored"] {
                let n = server.sql_in(db, "SELECT count(*) FROM items");
                assert_eq!(n, rows, "rows in {db}");
            }
            restores.add(&r, b.secs);
        }
        for db in ["rp_restored", "bare_restored"] {
            server.sql_in("postgres", &format!("DROP DATABASE IF EXISTS {db}"));
        }
        let _ = std::fs::remove_dir_all(&target);
        let _ = std::fs::remove_dir_all(&repo);
        drop(server);

        let (rp, bare) = (median(&dumps.rp), median(&dumps.bare));
        self.say(&format!(
            "### PostgreSQL: a {:.0} MiB database ({rows} rows, table + primary key), {:.0} MiB archive (median of {} pairs)\n",
            mib(size),
            mib(dump_size),
            dumps.rp.len()
        ));
        self.say("| what | time | vs bare | MiB/s of archive | resticpilot peak RSS |");
        self.say("| --- | --- | --- | --- | --- |");
        self.say(&format!(
            "| bare: `pg_dump {flags} --file FILE bench` | {} | 1.00x | {:.0} | - |",
            secs(bare),
            mib(dump_size) / bare
        ));
        self.say(&format!(
            "| resticpilot dump (same flags; pg_restore reads the whole stream as it comes; table list) | {} | {} | {:.0} | {} |",
            secs(rp),
            dumps.ratio(),
            mib(dump_size) / rp,
            dumps.rss()
        ));
        self.say(&format!(
            "| bare: `restic restore` + `createdb` + `pg_restore --single-transaction --exit-on-error` | {} | 1.00x | - | - |",
            restores.bare()
        ));
        self.say(&format!(
            "| `resticpilot restore --into` (read back whole, scratch database, tables compared, rename) | {} | {} | - | {} |",
            restores.rp(),
            restores.ratio(),
            restores.rss()
        ));
        self.say(&format!(
            "| bare: `pg_dump` to a file + `restic backup` (one run) | {} | 1.00x | - | - |",
            secs(bare_whole.secs)
        ));
        self.say(&format!(
            "| `resticpilot backup` of the profile (one run) | {} | {:.2}x | - | {:.1} MiB |\n",
            secs(whole.secs),
            whole.secs / bare_whole.secs,
            whole.peak_rss_kib.unwrap_or(0) as f64 / 1024.0
        ));
    }
}

/// The first file called `name` under `dir`.
fn walk_find(dir: &Path, name: &str) -> Option<PathBuf> {
    for entry in std::fs::read_dir(dir).ok()? {
        let path = entry.ok()?.path();
        if path.is_dir() {
            if let Some(found) = walk_find(&path, name) {
                return Some(found);
            }
        } else if path.file_name().is_some_and(|n| n == name) {
            return Some(path);
        }
    }
    None
}
