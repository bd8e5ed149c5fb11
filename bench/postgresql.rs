//! A PostgreSQL server for the benchmark, started the way the tests start theirs (`initdb` on
//! a temporary directory under /tmp, `postgres` on a private socket directory with no TCP, run
//! as the `postgres` user when the bench runs as root), stopped and removed by a watchdog shell
//! when the bench ends, however it ends. The database is generated at each run.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Server {
    /// The socket directory (`--host` of the client tools).
    pub socket: PathBuf,
    /// The port (it names the socket file; there is no TCP).
    pub port: u16,
    stop_file: PathBuf,
    watchdog: Child,
}

impl Drop for Server {
    fn drop(&mut self) {
        // The watchdog stops the server, waits for it and removes the directory once the stop
        // file appears, or once this process is gone.
        let _ = std::fs::write(&self.stop_file, "");
        let _ = self.watchdog.wait();
    }
}

/// A server binary: Debian keeps them out of PATH, under /usr/lib/postgresql/N/bin.
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
        panic!("{tool} is not installed: the PostgreSQL section needs the server (apt-get install postgresql; scripts/install-deps.sh does it)")
    })
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// A port nobody listens on, for the socket's name.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap()
}

/// Starts a server in a new temporary directory under /tmp (short: socket paths are limited
/// to 108 bytes).
pub fn start() -> Server {
    let dir = std::env::temp_dir().join(format!("rp-bench-pg-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let root = is_root();
    if root {
        let ok = Command::new("chown")
            .arg("postgres:postgres")
            .arg(&dir)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "chown postgres {}", dir.display());
    }
    let as_owner = |program: &Path| {
        if root {
            let mut cmd = Command::new("runuser");
            cmd.args(["-u", "postgres", "--"]).arg(program);
            cmd
        } else {
            Command::new(program)
        }
    };
    let data = dir.join("data");
    let out = as_owner(&server_bin("initdb"))
        .arg("-D")
        .arg(&data)
        .args(["-U", "postgres", "--auth-local=trust", "--no-sync"])
        .args(["-E", "UTF8", "--locale=C"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "initdb failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let port = free_port();
    // A small server's settings: 256 MB of shared buffers, no fsync (a scratch server: the
    // same for resticpilot and the bare tools), checkpoints far apart for the load.
    let mut server = format!(
        "{} -D {} -k {} -p {port} -c listen_addresses= -c fsync=off -c shared_buffers=256MB -c max_wal_size=4GB",
        server_bin("postgres").display(),
        data.display(),
        dir.display()
    );
    if root {
        server = format!("runuser -u postgres -- {server}");
    }
    let stop_file = std::env::temp_dir().join(format!("rp-bench-pg-{}.stop", std::process::id()));
    let _ = std::fs::remove_file(&stop_file);
    let script = format!(
        "{server} >{log} 2>&1 & m=$!; \
         while kill -0 {parent} 2>/dev/null && kill -0 $m 2>/dev/null && [ ! -e {stop} ]; do sleep 0.5; done; \
         p=$(head -1 {pid} 2>/dev/null); [ -n \"$p\" ] && kill -INT $p 2>/dev/null; kill -INT $m 2>/dev/null; \
         wait $m; sleep 1; rm -rf {dir} {stop}",
        log = dir.join("server.log").display(),
        parent = std::process::id(),
        stop = stop_file.display(),
        pid = data.join("postmaster.pid").display(),
        dir = dir.display()
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
        socket: dir.clone(),
        port,
        stop_file,
        watchdog,
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    while !server.ping() {
        if Instant::now() > deadline {
            let log = std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
            panic!("PostgreSQL did not start within 120 s:\n{log}");
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    server
}

impl Server {
    fn ping(&self) -> bool {
        self.client()
            .args(["-d", "postgres", "-c", "SELECT 1"])
            .output()
            .is_ok_and(|o| o.status.success())
    }

    /// `tool` (pg_dump, pg_restore, psql, createdb) with this server's socket, port and
    /// superuser in its environment.
    pub fn tool(&self, tool: &str) -> Command {
        let mut cmd = Command::new(tool);
        cmd.env("PGHOST", &self.socket)
            .env("PGPORT", self.port.to_string())
            .env("PGUSER", "postgres")
            .env_remove("PGPASSWORD")
            .env_remove("PGPASSFILE")
            .env_remove("PGSERVICE")
            .env_remove("PGDATABASE");
        cmd
    }

    fn client(&self) -> Command {
        let mut cmd = self.tool("psql");
        cmd.args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"]);
        cmd
    }

    /// Runs `sql` in database `db` as the superuser; returns the output.
    pub fn sql_in(&self, db: &str, sql: &str) -> String {
        let out = self.client().args(["-d", db, "-c", sql]).output().unwrap();
        assert!(
            out.status.success(),
            "SQL failed: {sql}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Bytes of database `db` on disk (tables, indexes, TOAST), 0 when it does not exist.
    pub fn size(&self, db: &str) -> u64 {
        self.sql_in(
            "postgres",
            &format!("SELECT COALESCE((SELECT pg_database_size(datname) FROM pg_database WHERE datname = '{db}'), 0)"),
        )
        .parse()
        .unwrap_or(0)
    }

    /// Makes database `db` an orders-like table of at least `bytes` on disk: a bigint key,
    /// a few columns and a 160-byte text payload per row (the table of
    /// bench/postgres-format.sh), loaded 250,000 rows at a time.
    pub fn ensure_items(&self, db: &str, bytes: u64) {
        if self.size(db) >= bytes {
            return;
        }
        self.sql_in("postgres", &format!("DROP DATABASE IF EXISTS {db}"));
        self.sql_in("postgres", &format!("CREATE DATABASE {db}"));
        self.sql_in(
            db,
            "CREATE TABLE items (id bigint PRIMARY KEY, n int, name text, payload text)",
        );
        // About 60 MB per batch, so that a small size asked is not overshot by much.
        let batch: u64 = 250_000;
        let mut from: u64 = 1;
        while self.size(db) < bytes {
            self.sql_in(
                db,
                &format!(
                    "INSERT INTO items SELECT g, g % 1000, 'item ' || g, repeat(md5(g::text), 5) FROM generate_series({from}, {}) g",
                    from + batch - 1
                ),
            );
            from += batch;
        }
        self.sql_in(db, "VACUUM ANALYZE items");
    }
}
