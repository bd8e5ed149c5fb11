//! Real repository servers for the off-site tests, started by the tests on free loopback ports
//! and stopped by a watchdog shell when the test process ends (however it ends):
//!
//! - REST: Debian's `rclone serve restic`, with and without basic auth;
//! - S3: moto (PyPI) with authentication on and an IAM user's keys (`tests/s3_server.py`);
//! - SFTP: a private `sshd` with its own config, host key, throwaway client key pair and
//!   authorized_keys, serving a plain directory.
//!
//! Around them: a [`Relay`] (a TCP relay in front of a server that can cut every connection and
//! close its port, then open it again: a server or network that goes away mid-backup and comes
//! back; moto keeps its buckets in memory and sshd's sessions outlive its listener, so the
//! outage is made between restic and the server), and a [`Silent`] server that accepts
//! connections and never answers.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::harness::{is_root, require, spawn_watchdog};

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A directory that outlives a single test (the servers are shared): removed by the watchdog.
fn server_dir(prefix: &str) -> PathBuf {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in("/tmp")
        .unwrap()
        .keep()
}

/// Runs `command` under a watchdog that stops it when this test process is gone, then
/// removes `dir`.
fn watched(command: &str, dir: &Path) -> std::process::Child {
    spawn_watchdog(&format!(
        "{command} & m=$!; while kill -0 {parent} 2>/dev/null && kill -0 $m 2>/dev/null; do sleep 0.5; done; \
         kill $m 2>/dev/null; wait $m; rm -rf {dir}",
        parent = std::process::id(),
        dir = dir.display()
    ))
}

#[track_caller]
fn wait_for_port(what: &str, port: u16, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            let log = std::fs::read_to_string(log).unwrap_or_default();
            panic!("{what} did not listen on 127.0.0.1:{port} within 60 s:\n{log}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `rclone serve restic` on a loopback port.
pub struct RestServer {
    pub port: u16,
    /// (user, password) of its basic auth, when it has one.
    pub auth: Option<(String, String)>,
    _watchdog: std::process::Child,
}

/// The REST server with basic auth (`auth`) or without, started on first use.
pub fn rest(auth: bool) -> &'static RestServer {
    static WITH: OnceLock<RestServer> = OnceLock::new();
    static WITHOUT: OnceLock<RestServer> = OnceLock::new();
    let cell = if auth { &WITH } else { &WITHOUT };
    cell.get_or_init(|| start_rest(auth))
}

fn start_rest(auth: bool) -> RestServer {
    let rclone = require("rclone");
    let dir = server_dir("rp-rest-");
    std::fs::create_dir(dir.join("data")).unwrap();
    let port = free_port();
    let auth = auth.then(|| ("backup".to_string(), "rest-Secret-7f3a9c".to_string()));
    let auth_args = match &auth {
        Some((u, p)) => format!("--user {u} --pass {p}"),
        None => String::new(),
    };
    let log = dir.join("rclone.log");
    let watchdog = watched(
        &format!(
            "{} serve restic --addr 127.0.0.1:{port} {auth_args} {}/data >{} 2>&1",
            rclone.display(),
            dir.display(),
            log.display()
        ),
        &dir,
    );
    wait_for_port("rclone serve restic", port, &log);
    RestServer {
        port,
        auth,
        _watchdog: watchdog,
    }
}

/// moto's S3 server with authentication, and the keys of its one user.
pub struct S3Server {
    pub port: u16,
    pub key_id: String,
    pub secret: String,
    _watchdog: std::process::Child,
}

pub fn s3() -> &'static S3Server {
    static SERVER: OnceLock<S3Server> = OnceLock::new();
    SERVER.get_or_init(start_s3)
}

fn start_s3() -> S3Server {
    let python = require("python3");
    let check = Command::new(&python)
        .args(["-c", "import moto.server, boto3, flask"])
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "moto's S3 server is not installed: the tests need it (scripts/install-deps.sh runs pip install 'moto[server]'):\n{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let dir = server_dir("rp-s3-");
    let port = free_port();
    let keys = dir.join("keys");
    let log = dir.join("moto.log");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/s3_server.py");
    let watchdog = watched(
        &format!(
            "{} {script} {port} {} >{} 2>&1",
            python.display(),
            keys.display(),
            log.display()
        ),
        &dir,
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    let text = loop {
        if let Ok(text) = std::fs::read_to_string(&keys) {
            break text;
        }
        if Instant::now() > deadline {
            let log = std::fs::read_to_string(&log).unwrap_or_default();
            panic!("moto did not start within 60 s:\n{log}");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let (key_id, secret) = text.trim().split_once(' ').unwrap();
    S3Server {
        port,
        key_id: key_id.to_string(),
        secret: secret.to_string(),
        _watchdog: watchdog,
    }
}

/// A private sshd serving sftp to one user with a throwaway key pair.
pub struct SftpServer {
    pub port: u16,
    pub user: String,
    pub dir: PathBuf,
    /// The key in authorized_keys.
    pub client_key: PathBuf,
    /// A key the server does not accept.
    pub other_key: PathBuf,
    /// The server's public host key ("ssh-ed25519 AAAA...").
    pub host_key: String,
    _watchdog: std::process::Child,
}

pub fn sftp() -> &'static SftpServer {
    static SERVER: OnceLock<SftpServer> = OnceLock::new();
    SERVER.get_or_init(start_sftp)
}

fn keygen(path: &Path) {
    let out = Command::new(require("ssh-keygen"))
        .args([
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            "resticpilot-test",
            "-f",
        ])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ssh-keygen: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn start_sftp() -> SftpServer {
    require("ssh");
    let sshd = which::which("sshd")
        .or_else(|_| which::which("/usr/sbin/sshd"))
        .unwrap_or_else(|_| {
            panic!("sshd is not installed: the tests need it (apt-get install openssh-server)")
        });
    let dir = server_dir("rp-sftp-");
    for key in ["host_key", "client_key", "other_key"] {
        keygen(&dir.join(key));
    }
    std::fs::copy(dir.join("client_key.pub"), dir.join("authorized_keys")).unwrap();
    std::fs::create_dir(dir.join("repos")).unwrap();
    let port = free_port();
    let config = dir.join("sshd_config");
    std::fs::write(
        &config,
        format!(
            "ListenAddress 127.0.0.1:{port}\nHostKey {d}/host_key\nAuthorizedKeysFile {d}/authorized_keys\n\
             PidFile none\nUsePAM no\nStrictModes no\nPasswordAuthentication no\n\
             KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\n\
             Subsystem sftp internal-sftp\nLogLevel VERBOSE\n",
            d = dir.display()
        ),
    )
    .unwrap();
    if is_root() {
        // sshd's privilege separation directory.
        std::fs::create_dir_all("/run/sshd").unwrap();
    }
    let log = dir.join("sshd.log");
    let watchdog = watched(
        &format!(
            "{} -D -e -f {} >{} 2>&1",
            sshd.display(),
            config.display(),
            log.display()
        ),
        &dir,
    );
    wait_for_port("sshd", port, &log);
    let user = String::from_utf8(Command::new("id").arg("-un").output().unwrap().stdout)
        .unwrap()
        .trim()
        .to_string();
    let host_key = std::fs::read_to_string(dir.join("host_key.pub")).unwrap();
    let host_key = host_key
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ");
    SftpServer {
        port,
        user,
        client_key: dir.join("client_key"),
        other_key: dir.join("other_key"),
        dir,
        host_key,
        _watchdog: watchdog,
    }
}

impl SftpServer {
    /// The known_hosts line for this server reached on `port` (its own, or a relay's).
    pub fn known_hosts_line(&self, port: u16) -> String {
        format!("[127.0.0.1]:{port} {}\n", self.host_key)
    }
}

/// A TCP relay to a server on `upstream`, which can go away (every connection cut, its port
/// closed) and come back on the same port.
pub struct Relay {
    pub port: u16,
    inner: Arc<RelayInner>,
}

struct RelayInner {
    upstream: u16,
    open: AtomicBool,
    /// Bytes sent towards the server since the start.
    forwarded: AtomicU64,
    conns: Mutex<Vec<TcpStream>>,
    listener: Mutex<Option<TcpListener>>,
}

impl Relay {
    pub fn start(upstream: u16) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let inner = Arc::new(RelayInner {
            upstream,
            open: AtomicBool::new(true),
            forwarded: AtomicU64::new(0),
            conns: Mutex::new(Vec::new()),
            listener: Mutex::new(Some(listener)),
        });
        let weak = Arc::downgrade(&inner);
        std::thread::spawn(move || {
            while let Some(inner) = weak.upgrade() {
                let accepted = inner.listener.lock().unwrap().as_ref().map(|l| l.accept());
                match accepted {
                    Some(Ok((client, _))) => inner.clone().connect(client),
                    _ => {
                        drop(inner);
                        std::thread::sleep(Duration::from_millis(10));
                    }
                }
            }
        });
        Relay { port, inner }
    }

    /// Bytes sent towards the server so far.
    pub fn forwarded(&self) -> u64 {
        self.inner.forwarded.load(Ordering::SeqCst)
    }

    /// The server goes away: every connection is cut and the port closed.
    pub fn cut(&self) {
        self.inner.open.store(false, Ordering::SeqCst);
        *self.inner.listener.lock().unwrap() = None;
        for c in self.inner.conns.lock().unwrap().drain(..) {
            let _ = c.shutdown(Shutdown::Both);
        }
    }

    /// The server is back, on the same port.
    pub fn restore(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let listener = loop {
            match TcpListener::bind(("127.0.0.1", self.port)) {
                Ok(l) => break l,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) => panic!("cannot listen on 127.0.0.1:{} again: {e}", self.port),
            }
        };
        listener.set_nonblocking(true).unwrap();
        *self.inner.listener.lock().unwrap() = Some(listener);
        self.inner.open.store(true, Ordering::SeqCst);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.cut();
    }
}

impl RelayInner {
    fn connect(self: Arc<Self>, client: TcpStream) {
        let _ = client.set_nonblocking(false);
        let Ok(server) = TcpStream::connect(("127.0.0.1", self.upstream)) else {
            let _ = client.shutdown(Shutdown::Both);
            return;
        };
        {
            let mut conns = self.conns.lock().unwrap();
            conns.push(client.try_clone().unwrap());
            conns.push(server.try_clone().unwrap());
        }
        let pipe = |mut from: TcpStream, mut to: TcpStream, count: Option<Arc<RelayInner>>| {
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    match from.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if to.write_all(&buf[..n]).is_err() {
                                break;
                            }
                            if let Some(c) = &count {
                                c.forwarded.fetch_add(n as u64, Ordering::SeqCst);
                            }
                        }
                    }
                }
                let _ = from.shutdown(Shutdown::Both);
                let _ = to.shutdown(Shutdown::Both);
            });
        };
        pipe(
            client.try_clone().unwrap(),
            server.try_clone().unwrap(),
            Some(self.clone()),
        );
        pipe(server, client, None);
    }
}

/// A server that accepts connections and never answers (nor reads).
pub struct Silent {
    pub port: u16,
}

pub fn silent() -> &'static Silent {
    static SERVER: OnceLock<Silent> = OnceLock::new();
    SERVER.get_or_init(|| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for conn in listener.incoming().flatten() {
                held.push(conn);
            }
        });
        Silent { port }
    })
}

/// A loopback port nothing listens on (bound, then released).
pub fn closed_port() -> u16 {
    free_port()
}

/// Debian's `prometheus-pushgateway` on a loopback port, with basic auth (its web config), no
/// persistence file.
pub struct Pushgateway {
    pub port: u16,
    pub user: &'static str,
    pub password: &'static str,
    _watchdog: std::process::Child,
}

/// The Pushgateway, started on first use.
pub fn pushgateway() -> &'static Pushgateway {
    static SERVER: OnceLock<Pushgateway> = OnceLock::new();
    SERVER.get_or_init(start_pushgateway)
}

fn start_pushgateway() -> Pushgateway {
    let binary = which::which("prometheus-pushgateway")
        .or_else(|_| which::which("pushgateway"))
        .unwrap_or_else(|_| {
            panic!("prometheus-pushgateway is not installed: the tests need it (scripts/install-deps.sh installs it)")
        });
    let dir = server_dir("rp-pushgateway-");
    // The bcrypt hash of the password below (cost 4: tests need no strength).
    let web = dir.join("web.yaml");
    std::fs::write(
        &web,
        "basic_auth_users:\n  pusher: $2b$04$jHsmlPtK0dup31WN6SULLuRdBD/CYN6rvkOgCY7xAbhjjH2YW1Loe\n",
    )
    .unwrap();
    let port = free_port();
    let log = dir.join("pushgateway.log");
    let watchdog = watched(
        &format!(
            "{} --web.listen-address=127.0.0.1:{port} --web.config.file={} --persistence.file= >{} 2>&1",
            binary.display(),
            web.display(),
            log.display()
        ),
        &dir,
    );
    wait_for_port("prometheus-pushgateway", port, &log);
    Pushgateway {
        port,
        user: "pusher",
        password: "push-Secret-4c1d",
        _watchdog: watchdog,
    }
}

/// A real SMTP server (aiosmtpd, `tests/smtp_server.py`) of one test: each accepted message
/// is a file in `maildir`.
pub struct SmtpServer {
    pub port: u16,
    pub maildir: PathBuf,
    _watchdog: std::process::Child,
}

impl SmtpServer {
    /// The messages received so far, whole (envelope lines first), in order.
    pub fn messages(&self) -> Vec<String> {
        let mut names: Vec<(u32, PathBuf)> = std::fs::read_dir(&self.maildir)
            .map(|rd| {
                rd.filter_map(|e| e.ok().map(|e| e.path()))
                    .filter_map(|p| {
                        let n = p
                            .file_name()?
                            .to_str()?
                            .strip_suffix(".eml")?
                            .parse()
                            .ok()?;
                        Some((n, p))
                    })
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
            .into_iter()
            .map(|(_, p)| std::fs::read_to_string(p).unwrap())
            .collect()
    }
}

/// Starts an SMTP server on a free port; with `auth`, AUTH with that user and password is
/// required.
pub fn smtp(auth: Option<(&str, &str)>) -> SmtpServer {
    let python = require("python3");
    let check = Command::new(&python)
        .args(["-c", "import aiosmtpd"])
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "aiosmtpd is not installed: the tests need it (scripts/install-deps.sh runs pip install aiosmtpd)"
    );
    let dir = server_dir("rp-smtp-");
    let port = free_port();
    let maildir = dir.join("mail");
    let log = dir.join("smtp.log");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/smtp_server.py");
    let auth = auth.map(|(u, p)| format!(" {u} {p}")).unwrap_or_default();
    let watchdog = watched(
        &format!(
            "{} {script} {port} {}{auth} >{} 2>&1",
            python.display(),
            maildir.display(),
            log.display()
        ),
        &dir,
    );
    wait_for_port("aiosmtpd", port, &log);
    SmtpServer {
        port,
        maildir,
        _watchdog: watchdog,
    }
}
