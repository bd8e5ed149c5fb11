//! Off-site repositories as operators run them, on real servers the harness starts on loopback
//! (`servers`): REST (rclone, with and without basic auth), S3 (moto, with credentials) and
//! SFTP (a private sshd). For each: the repository is created on first use, backed up,
//! restored, drilled and thinned; wrong credentials, a server down from the start, a server
//! that goes away mid-backup and comes back, and a server that never answers each fail
//! bounded, with an error that says what happened; and no credential shows anywhere.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::harness::{Run, Sandbox, make_sqlite, to_run};
use crate::report::Receiver;
use crate::servers::{self, Relay};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Rest,
    RestOpen,
    S3,
    Sftp,
}

/// A sandbox whose profile backs up to a remote repository.
struct Remote {
    kind: Kind,
    sb: Sandbox,
    /// Unique per test: the REST path, the S3 bucket, the SFTP directory.
    name: String,
    /// Strings that must never appear in any output.
    secrets: Vec<String>,
}

/// How long a run may take before the test calls it unbounded.
const GUARD: Duration = Duration::from_secs(180);

fn unique(kind: Kind) -> String {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    format!(
        "rp-{}-{}-{}",
        format!("{kind:?}").to_lowercase(),
        std::process::id(),
        N.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
    )
}

impl Remote {
    fn new(kind: Kind) -> Remote {
        let sb = Sandbox::new();
        drop(make_sqlite(&sb.path("data/app.db"), 200));
        std::fs::create_dir_all(sb.path("data/files")).unwrap();
        std::fs::write(sb.path("data/files/app.conf"), "setting = 1\n").unwrap();
        let mut secrets = vec![crate::harness::RESTIC_PASSWORD.to_string()];
        match kind {
            Kind::Rest => secrets.push(servers::rest(true).auth.clone().unwrap().1),
            Kind::RestOpen => drop(servers::rest(false)),
            Kind::S3 => {
                let s3 = servers::s3();
                secrets.push(s3.secret.clone());
                secrets.push(s3.key_id.clone());
            }
            Kind::Sftp => {
                let key = std::fs::read_to_string(&servers::sftp().client_key).unwrap();
                // The private key's base64 body, line by line.
                secrets.extend(
                    key.lines()
                        .filter(|l| !l.starts_with("-----") && l.len() > 20)
                        .map(str::to_string),
                );
            }
        }
        Remote {
            kind,
            sb,
            name: unique(kind),
            secrets,
        }
    }

    /// The server's own port.
    fn server_port(&self) -> u16 {
        match self.kind {
            Kind::Rest => servers::rest(true).port,
            Kind::RestOpen => servers::rest(false).port,
            Kind::S3 => servers::s3().port,
            Kind::Sftp => servers::sftp().port,
        }
    }

    /// The repository URL restic uses to reach the server on `port`.
    fn url(&self, port: u16, wrong: bool) -> String {
        match self.kind {
            Kind::Rest => {
                let (user, pass) = servers::rest(true).auth.clone().unwrap();
                let pass = if wrong {
                    "not-the-password".into()
                } else {
                    pass
                };
                format!("rest:http://{user}:{pass}@127.0.0.1:{port}/{}/", self.name)
            }
            Kind::RestOpen => format!("rest:http://127.0.0.1:{port}/{}/", self.name),
            Kind::S3 => format!("s3:http://127.0.0.1:{port}/{}/repo", self.name),
            Kind::Sftp => {
                let s = servers::sftp();
                format!(
                    "sftp:{}@127.0.0.1:{}/repos/{}",
                    s.user,
                    s.dir.display(),
                    self.name
                )
            }
        }
    }

    /// Writes the config: the repository reached on `port`, the profile `app` (a SQLite
    /// database and a directory, `keep_last: 1`), reports to `webhook`.
    fn config(&self, port: u16, wrong: bool, webhook: Option<&str>) {
        // A short stall bound where a test waits for it (the silent server, the relay it cuts);
        // against the healthy server a long one, so restic starved of CPU by the tests running
        // beside it (key derivation at init) is never taken for a server that stopped answering.
        let stall = if port == self.server_port() {
            "60s"
        } else {
            "5s"
        };
        let mut repo = format!(
            "    url: '{}'\n    password_file: {{dir}}/restic-password\n    init: true\n    stall_timeout: {stall}\n    open_timeout: 60s\n",
            self.url(port, wrong)
        );
        match self.kind {
            Kind::S3 => {
                let s3 = servers::s3();
                let secret = if wrong {
                    "wrong-secret-key-0000000000000000"
                } else {
                    s3.secret.as_str()
                };
                repo.push_str(&format!(
                    "    env:\n      AWS_ACCESS_KEY_ID: '{}'\n      AWS_SECRET_ACCESS_KEY: '{secret}'\n",
                    s3.key_id
                ));
            }
            Kind::Sftp => {
                let s = servers::sftp();
                std::fs::write(self.sb.path("known_hosts"), s.known_hosts_line(port)).unwrap();
                let key = if wrong { &s.other_key } else { &s.client_key };
                repo.push_str(&format!(
                    "    sftp:\n      port: {port}\n      identity_file: {}\n      known_hosts_file: '{{dir}}/known_hosts'\n",
                    key.display()
                ));
            }
            Kind::Rest | Kind::RestOpen => {}
        }
        let notify = webhook
            .map(|w| format!("    notify: {{ webhook: '{w}/hook', webhook_on_success: true }}\n"))
            .unwrap_or_default();
        self.sb.write_config(
            "config.yaml",
            &format!(
                "state_dir: {{dir}}/state\nmetrics_file: {{dir}}/state/metrics.prom\nrepositories:\n  offsite:\n{repo}\
                 profiles:\n  app:\n    repository: offsite\n    host: test-host\n    lock_wait: 10s\n\
                 \x20   databases:\n      - {{ name: app, type: sqlite, path: '{{dir}}/data/app.db' }}\n\
                 \x20   paths: ['{{dir}}/data/files']\n    retention: {{ keep_last: 1 }}\n{notify}"
            ),
        );
    }

    /// Plain restic against the repository on the server's own port.
    fn restic(&self, args: &[&str]) -> std::process::Output {
        let mut cmd = std::process::Command::new("restic");
        cmd.env("RESTIC_REPOSITORY", self.url(self.server_port(), false))
            .env("RESTIC_PASSWORD_FILE", self.sb.path("restic-password"))
            .env_remove("RESTIC_PASSWORD");
        match self.kind {
            Kind::S3 => {
                let s3 = servers::s3();
                cmd.env("AWS_ACCESS_KEY_ID", &s3.key_id)
                    .env("AWS_SECRET_ACCESS_KEY", &s3.secret);
            }
            Kind::Sftp => {
                let s = servers::sftp();
                let kh = self.sb.path("known_hosts.direct");
                std::fs::write(&kh, s.known_hosts_line(s.port)).unwrap();
                cmd.arg("-o").arg(format!(
                    "sftp.command=ssh -p {} -i {} -o IdentitiesOnly=yes -o UserKnownHostsFile={} -o BatchMode=yes 127.0.0.1 -l {} -s sftp",
                    s.port,
                    s.client_key.display(),
                    kh.display(),
                    s.user
                ));
            }
            Kind::Rest | Kind::RestOpen => {}
        }
        cmd.args(args).output().expect("run restic")
    }

    fn snapshot_count(&self) -> usize {
        let out = self.restic(&["snapshots", "--json"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<Vec<serde_json::Value>>(&out.stdout)
            .unwrap()
            .len()
    }

    fn locks(&self) -> Vec<String> {
        let out = self.restic(&["list", "locks", "--no-lock"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(str::to_string)
            .collect()
    }

    /// Runs resticpilot, failing the test if it has not ended within [`GUARD`].
    fn run(&self, args: &[&str]) -> (Run, Duration) {
        let start = Instant::now();
        let mut child = self
            .sb
            .command(&self.sb.path("config.yaml"), args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let out_pipe = child.stdout.take().unwrap();
        let err_pipe = child.stderr.take().unwrap();
        let read = |mut p: Box<dyn std::io::Read + Send>| {
            std::thread::spawn(move || {
                let mut s = Vec::new();
                let _ = p.read_to_end(&mut s);
                s
            })
        };
        let (o, e) = (read(Box::new(out_pipe)), read(Box::new(err_pipe)));
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                let run = to_run(std::process::Output {
                    status,
                    stdout: o.join().unwrap(),
                    stderr: e.join().unwrap(),
                });
                return (run, start.elapsed());
            }
            if start.elapsed() > GUARD {
                let _ = child.kill();
                panic!(
                    "resticpilot {args:?} ({:?}) still running after {GUARD:?}: not bounded",
                    self.kind
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Asserts no secret is in `text` (named `what`).
    #[track_caller]
    fn assert_no_secret(&self, what: &str, text: &str) {
        for secret in &self.secrets {
            assert!(
                !text.contains(secret.as_str()),
                "{:?}: a credential appears in {what}:\n{text}",
                self.kind
            );
        }
    }

    /// Every file under the state directory, as text.
    fn state_files(&self) -> Vec<(PathBuf, String)> {
        fn walk(dir: &std::path::Path, out: &mut Vec<(PathBuf, String)>) {
            for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let p = entry.path();
                if p.is_dir() {
                    walk(&p, out);
                } else {
                    let bytes = std::fs::read(&p).unwrap_or_default();
                    out.push((p, String::from_utf8_lossy(&bytes).into_owned()));
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.sb.path("state"), &mut out);
        out
    }
}

/// Init on first use, backup, retention, verify, restore; no credential in any output, in the
/// status file, the metrics or the notifications.
fn full_cycle(kind: Kind) {
    let r = Remote::new(kind);
    let receiver = Receiver::start();
    r.config(r.server_port(), false, Some(&receiver.url()));
    let mut outputs = Vec::new();

    let (first, _) = r.run(&["-v", "backup"]);
    first.assert_code(0);
    assert!(
        first
            .stderr
            .contains("creating the repository (init: true)"),
        "{:?}: {}",
        kind,
        first.stderr
    );
    outputs.push(first.all());
    let (second, _) = r.run(&["-v", "backup"]);
    second.assert_code(0);
    assert!(
        second
            .stderr
            .contains("retention: kept 1 snapshot, removed 1"),
        "{:?}: {}",
        kind,
        second.stderr
    );
    outputs.push(second.all());
    assert_eq!(r.snapshot_count(), 1, "{kind:?}: keep_last 1");

    let (verify, _) = r.run(&["verify", "app"]);
    verify.assert_code(0);
    assert!(verify.stdout.contains("result: PASS"), "{}", verify.stdout);
    outputs.push(verify.all());

    let target = r.sb.path("restored");
    let (restore, _) = r.run(&[
        "restore",
        "app",
        "--database",
        "app",
        "--target",
        target.to_str().unwrap(),
    ]);
    restore.assert_code(0);
    outputs.push(restore.all());
    let restored = rusqlite::Connection::open(target.join("app.sqlite3")).unwrap();
    let rows: i64 = restored
        .query_row("SELECT count(*) FROM t", [], |row| row.get(0))
        .unwrap();
    assert_eq!(rows, 200);

    let (status, _) = r.run(&["status", "--json"]);
    status.assert_code(0);
    outputs.push(status.all());
    let (snapshots, _) = r.run(&["-v", "snapshots", "app"]);
    snapshots.assert_code(0);
    outputs.push(snapshots.all());

    for (i, out) in outputs.iter().enumerate() {
        r.assert_no_secret(&format!("the output of run {i}"), out);
    }
    let files = r.state_files();
    assert!(
        files.iter().any(|(p, _)| p.ends_with("metrics.prom")),
        "no metrics file in {files:?}"
    );
    for (path, text) in &files {
        r.assert_no_secret(&path.display().to_string(), text);
    }
    // Notifications are sent from a thread; a manual run waits for them at exit.
    let requests = receiver.requests();
    assert!(!requests.is_empty(), "{kind:?}: no notification arrived");
    for req in requests {
        r.assert_no_secret("a notification", &format!("{} {}", req.path, req.body));
    }
}

/// Wrong credentials: refused, named as such, quickly, and never shown.
fn wrong_credentials(kind: Kind) {
    let mut r = Remote::new(kind);
    r.secrets.push(match kind {
        Kind::Rest => "not-the-password".into(),
        Kind::S3 => "wrong-secret-key-0000000000000000".into(),
        _ => String::new(),
    });
    r.secrets.retain(|s| !s.is_empty());
    r.config(r.server_port(), true, None);
    let (run, took) = r.run(&["backup"]);
    eprintln!("{kind:?}: wrong credentials reported after {took:?}");
    run.assert_code(1);
    assert!(
        run.stderr.contains("refused the credentials"),
        "{kind:?}: {}",
        run.stderr
    );
    assert!(!run.stderr.contains("unreachable"), "{}", run.stderr);
    r.assert_no_secret("stderr", &run.all());
    for (path, text) in r.state_files() {
        r.assert_no_secret(&path.display().to_string(), &text);
    }
}

/// A server that is down before the run: unreachable, bounded.
fn down_from_the_start(kind: Kind) {
    let r = Remote::new(kind);
    r.config(servers::closed_port(), false, None);
    let (run, took) = r.run(&["backup"]);
    eprintln!("{kind:?}: a server down from the start reported after {took:?}");
    run.assert_code(1);
    assert!(
        run.stderr.contains("is unreachable"),
        "{kind:?}: {}",
        run.stderr
    );
    r.assert_no_secret("stderr", &run.all());
}

/// A server that accepts connections and never answers: stopped after the stall timeout,
/// saying so.
fn never_answers(kind: Kind) {
    let r = Remote::new(kind);
    r.config(servers::silent().port, false, None);
    let (run, took) = r.run(&["backup"]);
    eprintln!("{kind:?}: a server that never answers reported after {took:?}");
    run.assert_code(1);
    assert!(
        run.stderr.contains("the server stopped answering"),
        "{kind:?}: {}",
        run.stderr
    );
    r.assert_no_secret("stderr", &run.all());
}

/// The server goes away in the middle of a backup and comes back: that run fails, bounded;
/// the next one succeeds, its retention runs, and no lock is left in the repository.
fn outage_mid_backup(kind: Kind) {
    let r = Remote::new(kind);
    let relay = Relay::start(r.server_port());
    r.config(relay.port, false, None);
    let big = r.sb.path("data/files/big.bin");
    let random = |path: &std::path::Path| {
        use std::io::Read;
        let mut data = vec![0u8; 24 << 20];
        std::fs::File::open("/dev/urandom")
            .unwrap()
            .read_exact(&mut data)
            .unwrap();
        std::fs::write(path, data).unwrap();
    };
    random(&big);
    r.run(&["backup"]).0.assert_code(0);
    random(&big);
    let before = relay.forwarded();
    let start = Instant::now();
    let mut child =
        r.sb.command(&r.sb.path("config.yaml"), &["backup"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
    // Cut once the new data is on its way.
    while relay.forwarded() < before + (2 << 20) {
        assert!(
            child.try_wait().unwrap().is_none(),
            "{kind:?}: the backup ended before 2 MiB went to the server"
        );
        assert!(start.elapsed() < GUARD, "{kind:?}: no upload started");
        std::thread::sleep(Duration::from_millis(5));
    }
    relay.cut();
    let cut_at = Instant::now();
    let out = loop {
        if child.try_wait().unwrap().is_some() {
            break to_run(child.wait_with_output().unwrap());
        }
        assert!(
            cut_at.elapsed() < GUARD,
            "{kind:?}: the backup was not bounded after its server went away"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    eprintln!(
        "{kind:?}: a server gone mid-backup reported {:?} after it went",
        cut_at.elapsed()
    );
    out.assert_code(1);
    // A relay that cuts the connections and closes its port: restic retries, and is stopped
    // when nothing moves; over ssh the cut connection ends restic's session at once.
    assert!(
        out.stderr.contains("stopped answering")
            || (kind == Kind::Sftp && out.stderr.contains("is unreachable")),
        "{kind:?}: {}",
        out.stderr
    );
    assert!(
        out.stderr.len() < 8192,
        "{kind:?}: {} bytes of stderr",
        out.stderr.len()
    );
    r.assert_no_secret("stderr", &out.all());
    relay.restore();

    let (next, _) = r.run(&["backup"]);
    next.assert_code(0);
    assert!(
        next.stderr.contains("removing stale restic locks"),
        "{kind:?}: {}",
        next.stderr
    );
    assert!(
        next.stderr
            .contains("retention: kept 1 snapshot, removed 1"),
        "{kind:?}: {}",
        next.stderr
    );
    assert_eq!(r.snapshot_count(), 1, "{kind:?}");
    assert_eq!(r.locks(), Vec::<String>::new(), "{kind:?}: a lock was left");
    let status = std::fs::read_to_string(r.sb.path("state/status/app.json")).unwrap();
    assert!(
        status.len() < 8192,
        "{kind:?}: status file of {} bytes",
        status.len()
    );
}

#[test]
fn rest_with_basic_auth_full_cycle() {
    full_cycle(Kind::Rest);
}

#[test]
fn rest_without_auth_full_cycle() {
    full_cycle(Kind::RestOpen);
}

#[test]
fn s3_full_cycle() {
    full_cycle(Kind::S3);
}

#[test]
fn sftp_full_cycle() {
    full_cycle(Kind::Sftp);
}

#[test]
fn rest_wrong_credentials() {
    wrong_credentials(Kind::Rest);
}

#[test]
fn s3_wrong_credentials() {
    wrong_credentials(Kind::S3);
}

#[test]
fn sftp_wrong_key() {
    wrong_credentials(Kind::Sftp);
}

#[test]
fn rest_down_from_the_start() {
    down_from_the_start(Kind::Rest);
}

#[test]
fn s3_down_from_the_start() {
    down_from_the_start(Kind::S3);
}

#[test]
fn sftp_down_from_the_start() {
    down_from_the_start(Kind::Sftp);
}

#[test]
fn rest_never_answers() {
    never_answers(Kind::Rest);
}

#[test]
fn s3_never_answers() {
    never_answers(Kind::S3);
}

#[test]
fn sftp_never_answers() {
    never_answers(Kind::Sftp);
}

#[test]
fn rest_outage_mid_backup() {
    outage_mid_backup(Kind::Rest);
}

#[test]
fn s3_outage_mid_backup() {
    outage_mid_backup(Kind::S3);
}

#[test]
fn sftp_outage_mid_backup() {
    outage_mid_backup(Kind::Sftp);
}

/// An unknown SSH host key: refused by ssh, and the error says how to add it.
#[test]
fn sftp_unknown_host_key_says_how_to_add_it() {
    let r = Remote::new(Kind::Sftp);
    r.config(r.server_port(), false, None);
    std::fs::write(r.sb.path("known_hosts"), "").unwrap();
    let (run, _) = r.run(&["backup"]);
    run.assert_code(1);
    let expected = format!(
        "ssh-keyscan -p {} 127.0.0.1 >> {}",
        r.server_port(),
        r.sb.path("known_hosts").display()
    );
    assert!(
        run.stderr.contains("SSH host key") && run.stderr.contains(&expected),
        "{}",
        run.stderr
    );
}

/// A backup against a server that never answers, with `grace_period: <grace>`, sent SIGTERM
/// once restic waits on it; returns the run and how long it took to end after the signal.
fn sigterm_while_restic_hangs(grace: &str) -> (Run, Duration) {
    let r = Remote::new(Kind::Rest);
    r.config(servers::silent().port, false, None);
    // A stall timeout far longer than the guard below.
    let text = std::fs::read_to_string(r.sb.path("config.yaml"))
        .unwrap()
        .replace("stall_timeout: 5s", "stall_timeout: 10m")
        .replace("open_timeout: 60s", "open_timeout: 10m");
    std::fs::write(
        r.sb.path("config.yaml"),
        format!("grace_period: {grace}\n{text}"),
    )
    .unwrap();
    let mut child =
        r.sb.command(&r.sb.path("config.yaml"), &["backup"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
    // restic is waiting on the silent server once it has a child (the repository check runs
    // on a thread of its own beside the dumps).
    crate::daemon::wait_until("restic to start", Duration::from_secs(60), || {
        Some(crate::harness::children(child.id())).filter(|c| !c.is_empty())
    });
    std::thread::sleep(Duration::from_secs(1));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let sent = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return (to_run(child.wait_with_output().unwrap()), sent.elapsed());
        }
        assert!(
            sent.elapsed() < Duration::from_secs(90),
            "resticpilot still waits on a hung restic 90 s after SIGTERM (grace period {grace})"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// SIGTERM while restic waits on a server that never answers: the grace period is for work
/// that gets on, so the hung restic is stopped without waiting it out.
#[test]
fn sigterm_does_not_wait_the_grace_period_for_a_hung_restic() {
    let (out, took) = sigterm_while_restic_hangs("10m");
    eprintln!("SIGTERM with a hung restic: exited {took:?} after the signal");
    out.assert_code(1);
    assert!(out.stderr.contains("made no progress"), "{}", out.stderr);
}

/// SIGTERM with no grace period while restic opens a repository whose server never answers:
/// restic is stopped at once, and the run's error says it was interrupted at shutdown, not
/// that the repository is unreachable (what restic's own "context canceled" would suggest to
/// an operator reading the on_failure message).
#[test]
fn a_restic_stopped_at_shutdown_is_reported_interrupted_not_unreachable() {
    let (out, _) = sigterm_while_restic_hangs("0s");
    out.assert_code(1);
    let error = out
        .stderr
        .lines()
        .find(|l| l.starts_with("error:"))
        .unwrap_or_else(|| panic!("no error line: {}", out.stderr));
    assert!(
        error.contains("interrupted") && !error.contains("unreachable"),
        "{}",
        out.stderr
    );
}
