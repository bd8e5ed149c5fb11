//! A throwaway PostgreSQL server for the whole test run: `initdb` on a temporary data
//! directory, `postgres` on a private socket directory and a free loopback port, with
//! scram-sha-256 over TCP (the tests' roles have passwords) and trust on the socket (the
//! harness's own superuser). A watchdog shell stops the server and removes its directory when
//! the test process ends, however it ends. As root the server runs as the `postgres` user
//! (PostgreSQL refuses to run as root).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::harness::{is_root, require, spawn_watchdog};
use crate::servers::free_port;

pub struct Postgres {
    pub dir: PathBuf,
    /// The socket directory (`host` for a socket connection).
    pub socket_dir: PathBuf,
    pub port: u16,
    /// The server's pid, for tests that stop it.
    pub pid_file: PathBuf,
    _watchdog: std::process::Child,
}

static SERVER: OnceLock<Postgres> = OnceLock::new();

/// The shared server, started on first use.
pub fn server() -> &'static Postgres {
    SERVER.get_or_init(|| start("rp-pg-"))
}

/// A server of one's own (for tests that stop it); stopped when the test process ends.
#[allow(dead_code)] // used by the engine tests
pub fn private_server() -> Postgres {
    start("rp-pgx-")
}

/// The server binaries: Debian keeps them out of PATH, under /usr/lib/postgresql/N/bin.
fn server_bin(tool: &str) -> PathBuf {
    if let Ok(path) = which::which(tool) {
        return path;
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin").join(tool))
        .filter(|p| p.is_file())
        .collect();
    found.sort();
    found.pop().unwrap_or_else(|| {
        panic!("{tool} is not installed: the tests need the PostgreSQL server (apt-get install postgresql; scripts/install-deps.sh does it)")
    })
}

/// `cmd` run as the server's owner: `postgres` when we are root.
fn as_owner(program: &Path) -> Command {
    if is_root() {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--"]).arg(program);
        cmd
    } else {
        Command::new(program)
    }
}

fn start(prefix: &str) -> Postgres {
    let initdb = server_bin("initdb");
    let postgres = server_bin("postgres");
    require("psql");
    require("pg_dump");
    require("pg_restore");
    // Short path: unix socket paths are limited to 108 bytes.
    let dir = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in("/tmp")
        .unwrap()
        .keep();
    if is_root() {
        let ok = Command::new("chown")
            .args(["postgres:postgres"])
            .arg(&dir)
            .status()
            .unwrap()
            .success();
        assert!(ok, "chown postgres {}", dir.display());
    }
    let data = dir.join("data");
    let out = as_owner(&initdb)
        .arg("-D")
        .arg(&data)
        .args([
            "-U",
            "postgres",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "--no-sync",
            "-E",
            "UTF8",
            "--locale=C",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "initdb failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let port = free_port();
    let pid_file = data.join("postmaster.pid");
    let mut server_cmd = format!(
        "{} -D {} -k {} -p {port} -c listen_addresses=127.0.0.1 -c fsync=off -c shared_buffers=32MB -c max_connections=40",
        postgres.display(),
        data.display(),
        dir.display()
    );
    if is_root() {
        server_cmd = format!("runuser -u postgres -- {server_cmd}");
    }
    let script = format!(
        "{server_cmd} >{log} 2>&1 & m=$!; while kill -0 {parent} 2>/dev/null && kill -0 $m 2>/dev/null; do sleep 0.5; done; \
         kill -INT $m 2>/dev/null; p=$(head -1 {pid} 2>/dev/null); [ -n \"$p\" ] && kill -INT $p 2>/dev/null; wait $m; sleep 1; rm -rf {dir}",
        log = dir.join("server.log").display(),
        pid = pid_file.display(),
        parent = std::process::id(),
        dir = dir.display()
    );
    let watchdog = spawn_watchdog(&script);
    let server = Postgres {
        socket_dir: dir.clone(),
        dir,
        port,
        pid_file,
        _watchdog: watchdog,
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ok = server
            .client()
            .args(["-c", "SELECT 1"])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        if ok {
            break;
        }
        if Instant::now() > deadline {
            let log = std::fs::read_to_string(server.dir.join("server.log")).unwrap_or_default();
            panic!("PostgreSQL did not start within 60 s:\n{log}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    server
}

impl Postgres {
    /// Runs `sql` as the superuser through the socket in database `db`; returns the output
    /// (unaligned, tuples only).
    #[track_caller]
    pub fn sql_in(&self, db: &str, sql: &str) -> String {
        let out = self
            .client()
            .args(["-d", db, "-v", "ON_ERROR_STOP=1", "-c", sql])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "SQL failed: {sql}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    #[track_caller]
    pub fn sql(&self, sql: &str) -> String {
        self.sql_in("postgres", sql)
    }

    /// A superuser client on the socket (unaligned, tuples only, no psqlrc).
    pub fn client(&self) -> Command {
        let mut cmd = Command::new("psql");
        cmd.arg("-h")
            .arg(&self.socket_dir)
            .args(["-p", &self.port.to_string(), "-U", "postgres"])
            .args(["-X", "-q", "-A", "-t"])
            .env_remove("PGPASSWORD")
            .env_remove("PGPASSFILE")
            .env_remove("PGSERVICE");
        cmd
    }

    /// A fresh, uniquely named database.
    pub fn fresh_database(&self, prefix: &str) -> String {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!("{prefix}_{}", N.fetch_add(1, Ordering::SeqCst));
        self.sql(&format!("DROP DATABASE IF EXISTS \"{name}\""));
        self.sql(&format!("CREATE DATABASE \"{name}\""));
        name
    }

    /// A login role with `password` over TCP (created once, whichever test asks first; tests
    /// run in parallel) that can dump and restore (a superuser: the
    /// globals dump reads roles, a restore creates databases).
    pub fn admin_role(&self, role: &str, password: &str) {
        self.sql(&format!(
            "DO $$ BEGIN CREATE ROLE \"{role}\" LOGIN SUPERUSER; EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$; ALTER ROLE \"{role}\" PASSWORD '{password}'"
        ));
    }

    /// Stops the server at once (SIGQUIT-free: immediate shutdown), for tests of a server gone.
    #[allow(dead_code)] // used by the engine tests
    pub fn stop_now(&self) {
        let pid = std::fs::read_to_string(&self.pid_file).unwrap_or_default();
        if let Some(pid) = pid.lines().next() {
            let _ = Command::new("kill").args(["-KILL", pid.trim()]).status();
        }
    }
}

#[test]
fn harness_server_answers_and_refuses_a_wrong_password_over_tcp() {
    let pg = server();
    pg.admin_role("rp_harness", "right-pass");
    let db = pg.fresh_database("harness");
    pg.sql_in(&db, "CREATE TABLE t (x int); INSERT INTO t VALUES (1), (2)");
    assert_eq!(pg.sql_in(&db, "SELECT count(*) FROM t").trim(), "2");
    let out = Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &pg.port.to_string(),
            "-U",
            "rp_harness",
        ])
        .args(["-d", &db, "-X", "-w", "-c", "SELECT 1"])
        .env("PGPASSWORD", "wrong")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("password authentication failed"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
