//! What every run reports, manual or scheduled: the status file and `status`, notifications to
//! a real local HTTP receiver, `check`, and how an interrupted run is cleaned up after
//! (SIGTERM, stale restic locks).

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::daemon::{WAIT, alive, status, wait_until};
use crate::harness::{Sandbox, make_sqlite, to_run};

const APP: &str = "profiles:
  app:
    repository: local
    host: test-host
    databases:
      - { name: app, type: sqlite, path: '{dir}/data/app.db' }
";

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub path: String,
    pub content_type: String,
    pub body: String,
}

/// A real HTTP server on 127.0.0.1 that records every request and answers 200; it stands in
/// for healthchecks.io and a webhook endpoint, which are not reachable from here.
pub struct Receiver {
    server: Arc<tiny_http::Server>,
    got: Arc<Mutex<Vec<Received>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Receiver {
    pub fn start() -> Receiver {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").unwrap());
        let got = Arc::new(Mutex::new(Vec::new()));
        let (s, g) = (server.clone(), got.clone());
        let thread = std::thread::spawn(move || {
            for mut request in s.incoming_requests() {
                let mut body = String::new();
                let _ = request.as_reader().read_to_string(&mut body);
                let content_type = request
                    .headers()
                    .iter()
                    .find(|h| h.field.equiv("Content-Type"))
                    .map(|h| h.value.to_string())
                    .unwrap_or_default();
                g.lock().unwrap().push(Received {
                    method: request.method().to_string(),
                    path: request.url().to_string(),
                    content_type,
                    body,
                });
                let _ = request.respond(tiny_http::Response::from_string("OK"));
            }
        });
        Receiver {
            server,
            got,
            thread: Some(thread),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.server.server_addr().to_ip().unwrap())
    }

    pub fn requests(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[test]
fn healthchecks_and_webhook_are_told_of_success_and_failure() {
    let receiver = Receiver::start();
    let base = receiver.url();
    let sb = Sandbox::new();
    drop(make_sqlite(&sb.path("data/app.db"), 100));
    sb.config(&format!(
        "{APP}    notify:
      healthchecks: {base}/ping/0d1e2f-secret-uuid
      webhook: {base}/hooks/secret-token
      webhook_on_success: true
"
    ));
    let ok = sb.run(&["backup"]);
    ok.assert_code(0);
    // The process waits (bounded) for its notifications before exiting.
    let got = receiver.requests();
    let paths: Vec<&str> = got.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/ping/0d1e2f-secret-uuid/start",
            "/ping/0d1e2f-secret-uuid",
            "/hooks/secret-token"
        ],
        "{got:#?}"
    );
    let snapshot = sb.snapshots()[0]["short_id"].as_str().unwrap().to_string();
    assert!(got[1].body.contains(&snapshot), "{got:#?}");
    assert_eq!(got[2].method, "POST");
    assert_eq!(got[2].content_type, "application/json");
    let hook: serde_json::Value = serde_json::from_str(&got[2].body).unwrap();
    assert_eq!(hook["profile"], "app");
    assert_eq!(hook["job"], "backup");
    assert_eq!(hook["version"], 1);
    crate::harness::assert_output("webhook", &hook);
    assert_eq!(hook["result"], "success");
    assert_eq!(hook["host"], "test-host");
    assert_eq!(hook["snapshot"]["short_id"], snapshot.as_str());
    assert_eq!(hook["snapshot"]["id"], sb.snapshots()[0]["id"]);
    assert!(hook["duration_seconds"].as_f64().unwrap() > 0.0);

    // A failing run: healthchecks /fail with the error as body, the webhook with the error.
    std::fs::remove_file(sb.path("data/app.db")).unwrap();
    sb.run(&["backup"]).assert_code(1);
    let got = receiver.requests();
    assert_eq!(got.len(), 6, "{got:#?}");
    assert_eq!(got[3].path, "/ping/0d1e2f-secret-uuid/start");
    assert_eq!(got[4].path, "/ping/0d1e2f-secret-uuid/fail");
    assert!(
        got[4].body.starts_with("dump of database app failed"),
        "{got:#?}"
    );
    let hook: serde_json::Value = serde_json::from_str(&got[5].body).unwrap();
    assert_eq!(hook["result"], "failed");
    crate::harness::assert_output("webhook", &hook);
    assert!(
        hook["error"]
            .as_str()
            .unwrap()
            .contains("dump of database app failed")
    );
    assert_eq!(hook["snapshot"], serde_json::Value::Null);
}

#[test]
fn an_unreachable_receiver_never_fails_the_backup_and_its_url_stays_secret() {
    let sb = Sandbox::new();
    drop(make_sqlite(&sb.path("data/app.db"), 100));
    // Port 1 on loopback: connection refused at once.
    sb.config(&format!(
        "{APP}    notify:
      healthchecks: http://127.0.0.1:1/ping/secret-uuid
      webhook: http://user:hunter2@127.0.0.1:1/hook/secret-path
      webhook_on_success: true
"
    ));
    let run = sb.run(&["backup"]);
    run.assert_code(0);
    assert_eq!(sb.snapshots().len(), 1);
    assert!(
        run.stderr
            .contains("healthchecks start ping for app to http://127.0.0.1:1/*** failed"),
        "{}",
        run.stderr
    );
    for secret in ["secret-uuid", "hunter2", "secret-path"] {
        assert!(!run.stderr.contains(secret), "{}", run.stderr);
    }
}

#[test]
fn manual_runs_update_the_status_file_and_status_prints_it() {
    let sb = Sandbox::new();
    drop(make_sqlite(&sb.path("data/app.db"), 1000));
    sb.config(&format!(
        "{APP}    retention: {{ keep_last: 5 }}\n    schedule: '0 3 * * *'\n    timezone: Europe/Berlin\n"
    ));
    let never = sb.run(&["status"]);
    never.assert_code(0);
    assert!(
        never.stdout.contains("backup  never run"),
        "{}",
        never.stdout
    );

    sb.run(&["backup"]).assert_code(0);
    sb.run(&["backup"]).assert_code(0);
    let s = status(&sb, "app");
    let b = &s["jobs"]["backup"];
    assert_eq!(b["runs"], 2);
    assert_eq!(b["last_result"], "success");
    assert_eq!(b["backup"]["snapshot_count"], 2);
    let snapshot = sb.snapshots()[1]["short_id"].as_str().unwrap().to_string();
    // The full id, whichever restic made it (0.14 reports only the short one).
    let full = sb.snapshots()[1]["id"].as_str().unwrap().to_string();
    assert_eq!(
        b["backup"]["snapshot"]["short_id"],
        snapshot.as_str(),
        "{s:#}"
    );
    assert_eq!(b["backup"]["snapshot"]["id"], full.as_str(), "{s:#}");
    for phase in ["dumps", "snapshot", "retention"] {
        assert!(b["backup"]["phases"][phase].as_f64().is_some(), "{s:#}");
    }
    assert!(b["backup"]["databases"][0]["bytes"].as_u64().unwrap() > 0);
    assert!(b["last_success"].as_str().is_some());

    let shown = sb.run(&["status"]);
    shown.assert_code(0);
    assert!(
        shown.stdout.contains("profile app (host test-host"),
        "{}",
        shown.stdout
    );
    assert!(
        shown.stdout.contains(&format!("snapshot {snapshot}")),
        "{}",
        shown.stdout
    );
    assert!(shown.stdout.contains("2 snapshots"), "{}", shown.stdout);
    assert!(
        shown
            .stdout
            .contains("schedule \"0 3 * * *\" (Europe/Berlin), next "),
        "{}",
        shown.stdout
    );
    let json = sb.run(&["status", "--json"]);
    json.assert_code(0);
    let parsed: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(parsed["version"], 1, "{parsed:#}");
    crate::harness::assert_output("status", &parsed);
    let parsed = &parsed["profiles"];
    assert_eq!(parsed[0]["profile"], "app");
    assert_eq!(parsed[0]["jobs"]["backup"]["runs"], 2);

    // A failure keeps the last success and records the error.
    std::fs::remove_file(sb.path("data/app.db")).unwrap();
    sb.run(&["backup"]).assert_code(1);
    let s = status(&sb, "app");
    let b = &s["jobs"]["backup"];
    assert_eq!(b["last_result"], "failed");
    assert_eq!(b["failures"], 1);
    assert!(
        b["last_failure"]["error"]
            .as_str()
            .unwrap()
            .starts_with("dump of database app failed")
    );
    assert_eq!(b["backup"]["snapshot"]["id"], full.as_str());
    let shown = sb.run(&["status", "app"]);
    assert!(shown.stdout.contains("failed at"), "{}", shown.stdout);
    assert!(shown.stdout.contains("last failure"), "{}", shown.stdout);
}

#[test]
fn check_reads_a_subset_and_finds_a_damaged_repository() {
    let sb = Sandbox::new();
    drop(make_sqlite(&sb.path("data/app.db"), 5000));
    sb.config(&format!("{APP}    check_subset: 100%\n"));
    sb.run(&["backup"]).assert_code(0);
    let run = sb.run(&["check", "app"]);
    run.assert_code(0);
    assert!(
        run.stderr
            .contains("check done: repository local has no errors (read 100% of the data)"),
        "{}",
        run.stderr
    );
    assert_eq!(
        status(&sb, "app")["jobs"]["check"]["last_result"],
        "success"
    );
    sb.run(&["check", "app", "--read-data-subset", "1/5"])
        .assert_code(0);
    let bad = sb.run(&["check", "app", "--read-data-subset", "150%"]);
    bad.assert_code(2);
    assert!(bad.stderr.contains("\"150%\""), "{}", bad.stderr);

    // Damage every data pack: reading the data finds it.
    for entry in walk(&sb.repo().join("data")) {
        let mut bytes = std::fs::read(&entry).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0xff;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&entry, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::write(&entry, bytes).unwrap();
    }
    let run = sb.run(&["check", "app"]);
    run.assert_code(1);
    assert!(
        run.stderr
            .contains("restic check on repository local failed"),
        "{}",
        run.stderr
    );
    let s = status(&sb, "app");
    assert_eq!(s["jobs"]["check"]["last_result"], "failed");
    assert_eq!(s["jobs"]["check"]["runs"], 3);
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[test]
fn sigterm_stops_a_manual_backup_with_exit_1_and_leaves_no_child() {
    let sb = Sandbox::new();
    drop(make_sqlite(&sb.path("data/app.db"), 100));
    sb.config(&format!(
        "grace_period: 0s\n{APP}    hooks:\n      before: ['echo $$$$ > {{dir}}/hook.pid; exec sleep 600']\n"
    ));
    let mut guard = KillOnDrop(Some(
        sb.command(&sb.path("config.yaml"), &["backup"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    ));
    let hook_pid: i32 = wait_until("the hook", WAIT, || {
        std::fs::read_to_string(sb.path("hook.pid"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
    });
    let child = guard.0.take().unwrap();
    kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).unwrap();
    let run = to_run(child.wait_with_output().unwrap());
    run.assert_code(1);
    assert!(!alive(hook_pid), "the hook's process is gone");
    assert!(run.stderr.contains("received SIGTERM"), "{}", run.stderr);
    assert!(
        run.stderr.contains("before hook `echo"),
        "the run fails naming the step: {}",
        run.stderr
    );
    assert!(sb.snapshots().is_empty());
    assert_eq!(
        status(&sb, "app")["jobs"]["backup"]["last_result"],
        "interrupted"
    );
}

/// Kills a child left running when a test fails before it waits for it, with its hook.
struct KillOnDrop(Option<std::process::Child>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
            let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
            let _ = child.wait();
        }
    }
}

#[test]
fn stale_restic_locks_of_an_interrupted_run_are_removed_and_live_ones_kept() {
    let sb = Sandbox::new();
    drop(make_sqlite(&sb.path("data/app.db"), 100));
    sb.config(APP);
    sb.run(&["backup"]).assert_code(0);

    // A restic killed hard leaves its lock: same host, process gone.
    let mut dead = stdin_backup(&sb);
    wait_until("the killed restic's lock", WAIT, || {
        (locks(&sb).len() == 1).then_some(())
    });
    dead.kill().unwrap();
    dead.wait().unwrap();
    let stale = locks(&sb);
    // A live restic holds another lock.
    let mut live = stdin_backup(&sb);
    wait_until("the live restic's lock", WAIT, || {
        (locks(&sb).len() == 2).then_some(())
    });

    // The previous run was not interrupted: nothing is unlocked.
    let run = sb.run(&["backup"]);
    run.assert_code(0);
    assert!(
        !run.stderr.contains("removing stale restic locks"),
        "{}",
        run.stderr
    );
    assert_eq!(locks(&sb).len(), 2);

    // The status file says a run died mid-way (as a killed container leaves it).
    let path = sb.path("state/status/app.json");
    let mut s: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    s["jobs"]["backup"]["running"] =
        serde_json::json!({ "pid": 999_999_999u32, "started": "2024-05-01T03:00:00Z" });
    std::fs::write(&path, serde_json::to_vec(&s).unwrap()).unwrap();
    let run = sb.run(&["backup"]);
    run.assert_code(0);
    assert!(run.stderr.contains("never finished"), "{}", run.stderr);
    assert!(
        run.stderr.contains("removing stale restic locks"),
        "{}",
        run.stderr
    );
    let left = locks(&sb);
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(
        !stale.contains(&left[0]),
        "the stale lock went, the live one stayed"
    );
    assert_eq!(status(&sb, "app")["unlock_pending"], false);

    // The live restic finishes its backup: its lock was never touched.
    use std::io::Write;
    live.stdin
        .take()
        .unwrap()
        .write_all(b"held data\n")
        .unwrap();
    assert!(live.wait().unwrap().success());
}

/// `restic backup --stdin` with stdin left open: holds a repository lock until stdin closes.
fn stdin_backup(sb: &Sandbox) -> std::process::Child {
    std::process::Command::new("restic")
        .env("RESTIC_REPOSITORY", sb.repo())
        .env("RESTIC_PASSWORD_FILE", sb.path("restic-password"))
        .args([
            "backup",
            "--stdin",
            "--stdin-filename",
            "held",
            "--host",
            "other",
            "-q",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn locks(sb: &Sandbox) -> Vec<String> {
    let out = sb.restic(&["list", "locks", "--no-lock"]);
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn a_receiver_that_never_answers_does_not_hold_up_the_backup() {
    // A receiver that accepts connections but never answers: the backup still finishes, and
    // the process exits after a bounded wait for its notifications.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let hold = std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().take(6) {
            held.push(stream);
        }
        std::thread::sleep(Duration::from_secs(60));
    });
    let sb = Sandbox::new();
    drop(make_sqlite(&sb.path("data/app.db"), 100));
    sb.config(&format!(
        "{APP}    notify:\n      healthchecks: http://{addr}/ping\n"
    ));
    let run = sb.run(&["backup"]);
    run.assert_code(0);
    assert_eq!(sb.snapshots().len(), 1);
    assert!(
        run.stderr
            .contains("notifications not sent: giving up at exit"),
        "{}",
        run.stderr
    );
    drop(hold);
}
