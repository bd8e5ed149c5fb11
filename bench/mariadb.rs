//! A MariaDB server for the benchmark, started the way the tests start theirs
//! (`mariadb-install-db` on a private datadir, `mariadbd` on a unix socket, a watchdog that
//! stops it when the bench ends), but kept in the work directory with its data so the ~1 GB
//! database is loaded once and reused by later runs.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Server {
    pub socket: PathBuf,
    stop_file: PathBuf,
    watchdog: Child,
}

impl Drop for Server {
    fn drop(&mut self) {
        // The watchdog stops the server (and waits for it) once the stop file appears, or
        // once this process is gone, however it ended.
        let _ = std::fs::write(&self.stop_file, "");
        let _ = self.watchdog.wait();
    }
}

fn tool(name: &str) -> PathBuf {
    which::which(name)
        .or_else(|_| which::which(format!("/usr/sbin/{name}")))
        .unwrap_or_else(|_| panic!("{name} is not installed (scripts/install-deps.sh installs it)"))
}

/// Starts (installing first, when `dir` has no datadir yet) a server in `dir`.
pub fn start(dir: &Path) -> Server {
    let datadir = dir.join("data");
    let socket = dir.join("s.sock");
    std::fs::create_dir_all(dir).unwrap();
    if !datadir.join("mysql").exists() {
        let out = Command::new(tool("mariadb-install-db"))
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
    }
    let _ = std::fs::remove_file(&socket);
    let user = if is_root() { "--user=root" } else { "" };
    // A small server's settings: a 512 MB buffer pool (half the database), no TCP.
    let server = format!(
        "{} --no-defaults --datadir={} --socket={} --skip-networking \
         --innodb-buffer-pool-size=512M --innodb-log-file-size=256M \
         --innodb-flush-log-at-trx-commit=2 --log-error={}/error.log --pid-file={}/mariadb.pid {user}",
        tool("mariadbd").display(),
        datadir.display(),
        socket.display(),
        dir.display(),
        dir.display()
    );
    let stop_file = dir.join("stop");
    let _ = std::fs::remove_file(&stop_file);
    let script = format!(
        "{server} & m=$!; \
         while kill -0 {parent} 2>/dev/null && kill -0 $m 2>/dev/null && [ ! -e {stop} ]; do sleep 0.5; done; \
         kill $m 2>/dev/null; wait $m",
        parent = std::process::id(),
        stop = stop_file.display()
    );
    let watchdog = Command::new("sh")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let server = Server {
        socket,
        stop_file,
        watchdog,
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    while !server.ping() {
        if Instant::now() > deadline {
            let log = std::fs::read_to_string(dir.join("error.log")).unwrap_or_default();
            panic!("MariaDB did not start within 120 s:\n{log}");
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    server
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

impl Server {
    fn ping(&self) -> bool {
        Command::new("mariadb-admin")
            .arg(format!("--socket={}", self.socket.display()))
            .args(["-uroot", "ping"])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    }

    /// Runs `sql` as root; returns the tab-separated output.
    pub fn sql(&self, sql: &str) -> String {
        let out = Command::new("mariadb")
            .arg(format!("--socket={}", self.socket.display()))
            .args(["-uroot", "--batch", "--skip-column-names", "-e", sql])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "SQL failed: {sql}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Bytes of data and indexes in database `db`, as InnoDB reports them.
    pub fn size(&self, db: &str) -> u64 {
        self.sql(&format!(
            "SELECT COALESCE(SUM(data_length + index_length), 0) FROM information_schema.tables WHERE table_schema = '{db}'"
        ))
        .parse()
        .unwrap_or(0)
    }

    /// Makes database `db` a Torrust-like tracker of at least `bytes`, unless it already is.
    pub fn ensure_tracker(&self, db: &str, bytes: u64) {
        if self.size(db) >= bytes {
            return;
        }
        self.sql(&format!(
            "DROP DATABASE IF EXISTS {db}; CREATE DATABASE {db}; USE {db};
             CREATE TABLE {db}.torrents (
                 id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
                 info_hash BINARY(20) NOT NULL UNIQUE,
                 completed INT NOT NULL DEFAULT 0,
                 seeders INT NOT NULL DEFAULT 0,
                 leechers INT NOT NULL DEFAULT 0,
                 updated_at BIGINT NOT NULL) ENGINE=InnoDB;
             CREATE TABLE {db}.torrust_keys (id INT NOT NULL AUTO_INCREMENT PRIMARY KEY, `key` CHAR(32) NOT NULL UNIQUE, valid_until BIGINT) ENGINE=InnoDB;
             CREATE TABLE {db}.whitelist (id INT NOT NULL AUTO_INCREMENT PRIMARY KEY, info_hash BINARY(20) NOT NULL UNIQUE) ENGINE=InnoDB;
             INSERT INTO {db}.torrust_keys (`key`, valid_until) SELECT MD5(seq), 1700000000 + seq FROM seq_1_to_1000;
             INSERT INTO {db}.whitelist (info_hash) SELECT UNHEX(SHA1(CONCAT('w', seq))) FROM seq_1_to_1000;"
        ));
        let batch: u64 = 1_000_000;
        let mut from: u64 = 1;
        while self.size(db) < bytes {
            self.sql(&format!(
                "USE {db}; INSERT INTO torrents (info_hash, completed, seeders, leechers, updated_at)
                 SELECT UNHEX(SHA1(seq)), seq % 5000, seq % 200, seq % 50, 1700000000 + seq
                 FROM seq_{from}_to_{}; ANALYZE TABLE {db}.torrents;",
                from + batch - 1
            ));
            from += batch;
        }
    }
}
