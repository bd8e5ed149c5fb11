//! A throwaway MariaDB server for the whole test run: `mariadb-install-db` on a temporary
//! datadir, `mariadbd` on a unix socket and a free loopback port. A watchdog shell stops the
//! server and removes its datadir when the test process ends, however it ends.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::harness::{is_root, require, spawn_watchdog};

pub struct MariaDb {
    pub dir: PathBuf,
    pub socket: PathBuf,
    pub port: u16,
    /// The watchdog shell that owns the server process.
    _watchdog: std::process::Child,
}

static SERVER: OnceLock<MariaDb> = OnceLock::new();

/// The shared server, started on first use.
pub fn server() -> &'static MariaDb {
    SERVER.get_or_init(start)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start() -> MariaDb {
    let install = require("mariadb-install-db");
    let mariadbd = which::which("mariadbd")
        .or_else(|_| which::which("/usr/sbin/mariadbd"))
        .unwrap_or_else(|_| panic!("mariadbd is not installed (apt-get install mariadb-server)"));
    require("mariadb");
    require("mariadb-dump");
    // Short path: unix socket paths are limited to 108 bytes.
    let dir = tempfile::Builder::new()
        .prefix("rp-mdb-")
        .tempdir_in("/tmp")
        .unwrap()
        .keep();
    let datadir = dir.join("data");
    let socket = dir.join("s.sock");
    let out = Command::new(install)
        .arg("--no-defaults")
        .arg(format!("--datadir={}", datadir.display()))
        .arg("--auth-root-authentication-method=normal")
        .arg("--skip-test-db")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "mariadb-install-db failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let port = free_port();
    let user = if is_root() { "--user=root" } else { "" };
    let server_cmd = format!(
        "{} --no-defaults --datadir={} --socket={} --port={port} --bind-address=127.0.0.1 \
         --skip-name-resolve --innodb-buffer-pool-size=64M --log-error={}/error.log \
         --pid-file={}/mariadb.pid {user}",
        mariadbd.display(),
        datadir.display(),
        socket.display(),
        dir.display(),
        dir.display()
    );
    // The watchdog: runs the server, and when this test process is gone stops it and cleans up.
    let script = format!(
        "{server_cmd} & m=$!; while kill -0 {parent} 2>/dev/null && kill -0 $m 2>/dev/null; do sleep 0.5; done; \
         kill $m 2>/dev/null; wait $m; rm -rf {dir}",
        parent = std::process::id(),
        dir = dir.display()
    );
    let watchdog = spawn_watchdog(&script);
    let server = MariaDb {
        dir,
        socket,
        port,
        _watchdog: watchdog,
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ok = Command::new("mariadb-admin")
            .arg(format!("--socket={}", server.socket.display()))
            .args(["-uroot", "ping"])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        if ok {
            break;
        }
        if Instant::now() > deadline {
            let log = std::fs::read_to_string(server.dir.join("error.log")).unwrap_or_default();
            panic!("MariaDB did not start within 60 s:\n{log}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    server
}

impl MariaDb {
    /// Runs `sql` as root through the socket; returns the tab-separated output.
    #[track_caller]
    pub fn sql(&self, sql: &str) -> String {
        let out = self.client().args(["-e", sql]).output().unwrap();
        assert!(
            out.status.success(),
            "SQL failed: {sql}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A root client command line (batch mode, no column names).
    pub fn client(&self) -> Command {
        let mut cmd = Command::new("mariadb");
        cmd.arg(format!("--socket={}", self.socket.display()))
            .args(["-uroot", "--batch", "--skip-column-names"]);
        cmd
    }

    /// A fresh, uniquely named database.
    pub fn fresh_database(&self, prefix: &str) -> String {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!("{prefix}_{}", N.fetch_add(1, Ordering::SeqCst));
        self.sql(&format!(
            "DROP DATABASE IF EXISTS `{name}`; CREATE DATABASE `{name}`"
        ));
        name
    }

    /// A user that can dump everything, with `password`, reachable over TCP.
    pub fn backup_user(&self, user: &str, password: &str) {
        self.sql(&format!(
            "CREATE USER IF NOT EXISTS '{user}'@'127.0.0.1' IDENTIFIED BY '{password}';
             GRANT SELECT, SHOW VIEW, TRIGGER, LOCK TABLES, EVENT, PROCESS ON *.* TO '{user}'@'127.0.0.1';"
        ));
    }
}
