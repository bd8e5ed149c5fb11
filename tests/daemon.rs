//! The daemon as a container runs it: real schedules on the real clock, real restic, real
//! SIGTERM. Every daemon a test starts is stopped by a guard, even when the test fails.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::harness::{Run, Sandbox, make_sqlite};

/// A running `resticpilot daemon`, its stderr collected line by line. Dropping it stops the
/// daemon (SIGTERM twice, then SIGKILL) so a failing test never leaves one behind.
pub struct Daemon {
    child: Option<Child>,
    lines: Arc<Mutex<Vec<String>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Daemon {
    pub fn start(sb: &Sandbox, args: &[&str]) -> Daemon {
        Daemon::start_with_env(sb, args, &[])
    }

    /// [`Daemon::start`] with these environment variables set.
    pub fn start_with_env(sb: &Sandbox, args: &[&str], env: &[(&str, &str)]) -> Daemon {
        let mut full = vec!["daemon"];
        full.extend_from_slice(args);
        let mut child = sb
            .command(&sb.path("config.yaml"), &full)
            .envs(env.iter().copied())
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the daemon");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        let stderr = child.stderr.take().unwrap();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(strip_ansi(&line));
            }
        });
        Daemon {
            child: Some(child),
            lines,
            reader: Some(reader),
        }
    }

    pub fn pid(&self) -> Pid {
        Pid::from_raw(self.child.as_ref().unwrap().id() as i32)
    }

    pub fn log(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    /// Waits for a log line containing `text`; returns it.
    #[track_caller]
    pub fn wait_for_line(&mut self, text: &str, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(l) = self.lines.lock().unwrap().iter().find(|l| l.contains(text)) {
                return l.clone();
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "the daemon exited ({status}) before logging {text:?}:\n{}",
                    self.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "no log line {text:?} within {limit:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The address the daemon serves on (from its log; start it with `--listen 127.0.0.1:0`).
    pub fn address(&mut self) -> String {
        let line = self.wait_for_line("serving /healthz and /metrics on http://", WAIT);
        line.rsplit("http://").next().unwrap().trim().to_string()
    }

    /// Sends SIGTERM and waits for the exit.
    #[track_caller]
    pub fn terminate(mut self) -> Run {
        kill(self.pid(), Signal::SIGTERM).unwrap();
        self.wait(WAIT)
    }

    #[track_caller]
    pub fn wait(&mut self, limit: Duration) -> Run {
        let deadline = Instant::now() + limit;
        let mut child = self.child.take().unwrap();
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("the daemon did not exit within {limit:?}:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        if let Some(r) = self.reader.take() {
            r.join().unwrap();
        }
        Run {
            code: status.code().unwrap_or(-1),
            stdout: String::new(),
            stderr: self.log(),
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pid = Pid::from_raw(child.id() as i32);
            let _ = kill(pid, Signal::SIGTERM);
            let _ = kill(pid, Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// How long a test waits for something that normally takes a few seconds before it fails
/// (a bound so a broken daemon fails the test instead of hanging it, not a timing claim).
pub const WAIT: Duration = Duration::from_secs(90);

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Polls `check` until it returns `Some`, failing the test after `limit`.
#[track_caller]
pub fn wait_until<T>(what: &str, limit: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The profile's status file, parsed (`null` before its first run).
pub fn status(sb: &Sandbox, profile: &str) -> serde_json::Value {
    match std::fs::read(sb.path(&format!("state/status/{profile}.json"))) {
        Ok(bytes) => serde_json::from_slice(&bytes).unwrap(),
        Err(_) => serde_json::Value::Null,
    }
}

/// `GET http://address/path`: status code and body.
pub fn get(address: &str, path: &str) -> (u16, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .proxy(None)
        .build()
        .into();
    let mut response = agent
        .get(&format!("http://{address}{path}"))
        .call()
        .unwrap();
    let code = response.status().as_u16();
    (code, response.body_mut().read_to_string().unwrap())
}

/// Processes whose command line mentions `dir` (restic, dump tools, hooks of a sandbox).
pub fn processes_mentioning(dir: &Path) -> Vec<String> {
    let needle = dir.display().to_string();
    let me = std::process::id().to_string();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.chars().all(|c| c.is_ascii_digit()) || name == me {
            continue;
        }
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(&needle) {
            found.push(format!("{name}: {cmdline}"));
        }
    }
    found
}

/// Whether process `pid` is alive (a zombie counts as gone).
pub fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit(')')
            .next()
            .unwrap_or_default()
            .trim_start()
            .starts_with('Z'),
        Err(_) => false,
    }
}

const APP: &str = "profiles:
  app:
    repository: local
    host: test-host
    databases:
      - { name: app, type: sqlite, path: '{dir}/data/app.db' }
";

#[test]
fn two_second_schedule_takes_several_snapshots_and_metrics_show_them() {
    let sb = Sandbox::new();
    drop(make_sqlite(&sb.path("data/app.db"), 100));
    sb.config(&format!(
        "metrics_file: '{{dir}}/metrics/rp.prom'\n{APP}    schedule: '*/2 * * * * *'\n    timezone: UTC\n"
    ));
    let mut daemon = Daemon::start(&sb, &["--listen", "127.0.0.1:0"]);
    let address = daemon.address();
    wait_until("three scheduled backups", WAIT, || {
        (status(&sb, "app")["jobs"]["backup"]["runs"].as_u64() >= Some(3)).then_some(())
    });
    let (code, metrics) = get(&address, "/metrics");
    let run = daemon.terminate();
    run.assert_code(0);
    assert!(run.stderr.contains("daemon stopped"), "{}", run.stderr);

    assert!(sb.snapshots().len() >= 3, "{}", run.stderr);
    assert!(sb.staging_files("app").is_empty());
    let s = status(&sb, "app");
    let backup = &s["jobs"]["backup"];
    assert_eq!(backup["last_result"], "success", "{s:#}");
    assert_eq!(backup["failures"], 0);
    assert_eq!(
        backup["backup"]["snapshot"]["id"].as_str().unwrap().len(),
        64
    );
    assert_eq!(backup["backup"]["databases"][0]["name"], "app");

    // /metrics is Prometheus text holding the profile's series.
    assert_eq!(code, 200);
    let scrape = parse_metrics(&metrics);
    let runs = scrape[&series("resticpilot_runs_total", &[("job", "backup")])];
    assert!(runs >= 3.0, "{metrics}");
    assert_eq!(
        scrape[&series("resticpilot_failures_total", &[("job", "backup")])],
        0.0
    );
    assert_eq!(
        scrape[&series("resticpilot_last_run_success", &[("job", "backup")])],
        1.0
    );
    let last = scrape[&series(
        "resticpilot_last_success_timestamp_seconds",
        &[("job", "backup")],
    )];
    assert!(last > 1.6e9, "{metrics}");
    assert!(scrape[&series("resticpilot_snapshots", &[])] >= 3.0);
    assert!(
        scrape[&series(
            "resticpilot_database_dump_size_bytes",
            &[("database", "app"), ("type", "sqlite")]
        )] > 0.0
    );
    assert!(scrape.contains_key(&series(
        "resticpilot_database_dump_duration_seconds",
        &[("database", "app"), ("type", "sqlite")]
    )));
    assert!(scrape.contains_key(&series("resticpilot_backup_added_bytes", &[])));
    // build_info names this build and the restic the runs used.
    let restic = std::process::Command::new("restic")
        .arg("version")
        .output()
        .unwrap();
    let restic = String::from_utf8_lossy(&restic.stdout);
    let restic_version = restic.split_whitespace().nth(1).unwrap();
    let info = scrape
        .iter()
        .find(|(k, _)| k.starts_with("resticpilot_build_info{"))
        .unwrap_or_else(|| panic!("no resticpilot_build_info in {metrics}"));
    assert_eq!(
        info.0,
        &format!(
            "resticpilot_build_info{{commit={},restic_version={restic_version},version={}}}",
            env!("RESTICPILOT_COMMIT"),
            env!("CARGO_PKG_VERSION")
        )
    );
    assert_eq!(*info.1, 1.0);
    // The textfile collector's file holds the same series, complete.
    let file = std::fs::read_to_string(sb.path("metrics/rp.prom")).unwrap();
    let from_file = parse_metrics(&file);
    assert!(
        from_file.contains_key(&series("resticpilot_runs_total", &[("job", "backup")])),
        "{file}"
    );
    assert!(!sb.dir.path().read_dir().unwrap().any(|e| {
        e.unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with(".tmp-")
    }));
}

/// `name{profile="app",k="v",...}`, labels sorted, as [`parse_metrics`] keys them.
fn series(name: &str, labels: &[(&str, &str)]) -> String {
    let mut all: Vec<(String, String)> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    all.push(("profile".into(), "app".into()));
    all.sort();
    let inner: Vec<String> = all.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("{name}{{{}}}", inner.join(","))
}

/// Every sample of a Prometheus text exposition, by name and sorted labels. Parsing with a
/// real parser proves the text is well-formed.
pub fn parse_metrics(text: &str) -> BTreeMap<String, f64> {
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
        .expect("valid Prometheus text");
    let mut out = BTreeMap::new();
    for s in scrape.samples {
        let mut labels: Vec<(String, String)> = s
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        labels.sort();
        let inner: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let value = match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            other => panic!("unexpected sample {other:?}"),
        };
        out.insert(format!("{}{{{}}}", s.metric, inner.join(",")), value);
    }
    out
}

#[test]
fn a_run_slower_than_the_schedule_never_overlaps_and_ticks_are_skipped() {
    let sb = Sandbox::new();
    drop(make_sqlite(&sb.path("data/app.db"), 100));
    // The hook takes a directory as a mutex: a second run entering while one is inside
    // would find it taken and say so.
    sb.config(&format!(
        "{APP}    schedule: '* * * * * *'
    hooks:
      before: ['mkdir {{dir}}/inside || echo OVERLAP >> {{dir}}/runs.log; echo start >> {{dir}}/runs.log; sleep 3; echo end >> {{dir}}/runs.log; rmdir {{dir}}/inside']
"
    ));
    let daemon = Daemon::start(&sb, &[]);
    wait_until("two runs and a skipped tick", WAIT, || {
        let s = status(&sb, "app");
        let b = &s["jobs"]["backup"];
        (b["runs"].as_u64() >= Some(2) && b["skipped"].as_u64() >= Some(1)).then_some(())
    });
    let run = daemon.terminate();
    run.assert_code(0);
    assert!(
        run.stderr
            .contains("app backup: skipped this scheduled run: the previous one is still running"),
        "{}",
        run.stderr
    );
    let log = std::fs::read_to_string(sb.path("runs.log")).unwrap();
    assert!(!log.contains("OVERLAP"), "{log}");
    let lines: Vec<&str> = log.lines().collect();
    for pair in lines.chunks(2) {
        assert_eq!(pair[0], "start", "{log}");
        if pair.len() == 2 {
            assert_eq!(pair[1], "end", "{log}");
        }
    }
}

#[test]
fn healthz_is_200_then_503_after_a_failing_run() {
    let sb = Sandbox::new();
    drop(make_sqlite(&sb.path("data/app.db"), 100));
    // A generous max_age: this test is about failures (the default is unit-tested).
    sb.config(&format!(
        "{APP}    schedule: '*/2 * * * * *'\n    max_age: 1h\n"
    ));
    let mut daemon = Daemon::start(&sb, &["--listen", "127.0.0.1:0"]);
    let address = daemon.address();
    wait_until("a successful backup", WAIT, || {
        (status(&sb, "app")["jobs"]["backup"]["last_result"] == "success").then_some(())
    });
    let (code, body) = get(&address, "/healthz");
    assert_eq!(code, 200, "{body}");
    assert!(body.starts_with("ok\napp: ok, last backup "), "{body}");
    let probe = sb.run(&["health", "--address", &address]);
    probe.assert_code(0);
    assert!(probe.stdout.starts_with("ok\n"), "{}", probe.stdout);

    // The database disappears: the next run fails, and health says so.
    std::fs::rename(sb.path("data/app.db"), sb.path("data/moved.db")).unwrap();
    wait_until("a failed backup", WAIT, || {
        (status(&sb, "app")["jobs"]["backup"]["last_result"] == "failed").then_some(())
    });
    let (code, body) = get(&address, "/healthz");
    assert_eq!(code, 503, "{body}");
    assert!(
        body.starts_with("unhealthy\napp: last backup failed: dump of database app failed"),
        "{body}"
    );
    let probe = sb.run(&["health", "--address", &address]);
    probe.assert_code(1);
    assert!(probe.stdout.starts_with("unhealthy\n"), "{}", probe.stdout);
    assert!(
        probe.stderr.contains("answered HTTP 503"),
        "{}",
        probe.stderr
    );
    let (code, _) = get(&address, "/nothing-here");
    assert_eq!(code, 404);
    daemon.terminate().assert_code(0);

    // Nobody listening: unhealthy too, without a config file.
    let probe = sb.run_with(
        &sb.path("no-such-config.yaml"),
        &["health", "--address", &address],
    );
    probe.assert_code(1);
    assert!(probe.stderr.contains("cannot reach"), "{}", probe.stderr);
}

#[test]
fn a_missed_run_is_caught_up_once_on_start_and_not_again() {
    let sb = Sandbox::new();
    drop(make_sqlite(&sb.path("data/app.db"), 100));
    // Once a year: only a catch-up can run it during the test.
    sb.config(&format!(
        "{APP}    schedule: '0 0 1 1 *'\n    timezone: UTC\n"
    ));
    let mut daemon = Daemon::start(&sb, &[]);
    daemon.wait_for_line(
        "app backup: no successful run recorded: running now (catch_up: once",
        WAIT,
    );
    wait_until("the first backup", WAIT, || {
        (status(&sb, "app")["jobs"]["backup"]["last_result"] == "success").then_some(())
    });
    daemon.terminate().assert_code(0);
    assert_eq!(sb.snapshots().len(), 1);

    // Started again: the last success is after the last scheduled time, nothing to catch up.
    let mut daemon = Daemon::start(&sb, &[]);
    daemon.wait_for_line("app backup: next run at", WAIT);
    let run = daemon.terminate();
    run.assert_code(0);
    assert!(!run.stderr.contains("running now"), "{}", run.stderr);
    assert_eq!(status(&sb, "app")["jobs"]["backup"]["runs"], 1);

    // As if the daemon had been down since mid-2020: the 2021-01-01 run was missed.
    let path = sb.path("state/status/app.json");
    let mut s: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    s["jobs"]["backup"]["last_success_start"] = "2020-06-01T00:00:00Z".into();
    std::fs::write(&path, serde_json::to_vec(&s).unwrap()).unwrap();
    let mut daemon = Daemon::start(&sb, &[]);
    daemon.wait_for_line(
        "app backup: missed the run due at 2021-01-01T00:00:00+00:00: running now (catch_up: once",
        WAIT,
    );
    wait_until("the catch-up backup", WAIT, || {
        (status(&sb, "app")["jobs"]["backup"]["runs"] == 2).then_some(())
    });
    daemon.terminate().assert_code(0);
    assert_eq!(sb.snapshots().len(), 2);

    // catch_up: skip on a profile that never ran: no run at start.
    let text = std::fs::read_to_string(sb.path("config.yaml"))
        .unwrap()
        .replace("timezone: UTC", "timezone: UTC\n    catch_up: skip")
        .replace("  app:", "  fresh:");
    std::fs::write(sb.path("config.yaml"), text).unwrap();
    let mut daemon = Daemon::start(&sb, &[]);
    daemon.wait_for_line(
        "fresh backup: no successful run recorded; catch_up: skip, next run at",
        WAIT,
    );
    daemon.terminate().assert_code(0);
    assert_eq!(status(&sb, "fresh"), serde_json::Value::Null);
    assert_eq!(sb.snapshots().len(), 2);
}

#[test]
fn sigterm_during_a_large_sqlite_dump_exits_promptly_with_no_process_left_and_empty_staging() {
    let sb = Sandbox::new();
    // About 200 MB: the copy and its check take long enough to be interrupted.
    drop(make_sqlite(&sb.path("data/app.db"), 900_000));
    sb.config(&format!(
        "grace_period: 0s\n{APP}    schedule: '0 0 1 1 *'\n    hooks:\n      on_failure: ['echo \"$RESTICPILOT_ERROR\" > {{dir}}/failure.txt']\n"
    ));
    let mut daemon = Daemon::start(&sb, &[]);
    daemon.wait_for_line("dumping sqlite database", WAIT);
    wait_until("the dump file", WAIT, || {
        (!sb.staging_files("app").is_empty()).then_some(())
    });
    let run = daemon.terminate();
    run.assert_code(0);
    assert!(run.stderr.contains("received SIGTERM"), "{}", run.stderr);
    assert!(
        sb.staging_files("app").is_empty(),
        "{:?}",
        sb.staging_files("app")
    );
    assert!(sb.snapshots().is_empty(), "no snapshot of a partial dump");
    assert!(
        processes_mentioning(sb.dir.path()).is_empty(),
        "{:?}",
        processes_mentioning(sb.dir.path())
    );
    let s = status(&sb, "app");
    assert_eq!(s["jobs"]["backup"]["last_result"], "interrupted", "{s:#}");
    assert!(s["jobs"]["backup"].get("running").is_none(), "{s:#}");
    assert_eq!(s["unlock_pending"], true);
    let failure = std::fs::read_to_string(sb.path("failure.txt")).unwrap();
    assert!(
        failure.contains("shutting down") || failure.contains("interrupt"),
        "{failure}"
    );
}

#[test]
fn sigterm_stops_a_running_hook_and_its_children_after_the_grace_period() {
    let sb = Sandbox::new();
    drop(make_sqlite(&sb.path("data/app.db"), 100));
    sb.config(&format!(
        "grace_period: 1s\n{APP}    schedule: '0 0 1 1 *'
    hooks:
      before: ['echo $$$$ > {{dir}}/hook.pid; sleep 600 & echo $! > {{dir}}/sleep.pid; wait']
      on_failure: ['echo ran > {{dir}}/on_failure.txt']
"
    ));
    let mut daemon = Daemon::start(&sb, &[]);
    daemon.wait_for_line("running hook", WAIT);
    let sleep_pid: i32 = wait_until("the hook's sleep", WAIT, || {
        std::fs::read_to_string(sb.path("sleep.pid"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
    });
    let hook_pid: i32 = std::fs::read_to_string(sb.path("hook.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(alive(sleep_pid) && alive(hook_pid));
    let run = daemon.terminate();
    run.assert_code(0);
    assert!(!alive(hook_pid), "the hook's shell is gone");
    assert!(!alive(sleep_pid), "the hook's own child is gone too");
    assert!(
        run.stderr.contains("the grace period is over: stopping sh"),
        "{}",
        run.stderr
    );
    assert_eq!(
        std::fs::read_to_string(sb.path("on_failure.txt")).unwrap(),
        "ran\n"
    );
    assert!(sb.staging_files("app").is_empty());
    assert_eq!(
        status(&sb, "app")["jobs"]["backup"]["last_result"],
        "interrupted"
    );
}

#[test]
fn daemon_without_any_schedule_is_a_usage_error() {
    let sb = Sandbox::new();
    sb.config(APP);
    let run = sb.run(&["daemon"]);
    run.assert_code(2);
    assert!(run.stderr.contains("nothing to schedule"), "{}", run.stderr);
    for key in [
        "schedule",
        "check_schedule",
        "prune_schedule",
        "verify_schedule",
    ] {
        assert!(run.stderr.contains(&format!("`{key}`")), "{}", run.stderr);
    }
}

#[test]
fn profiles_run_side_by_side_up_to_max_concurrent() {
    // Each profile's hook waits (up to `tries` tenths of a second) until both profiles are
    // inside their hooks: it succeeds only if the two runs overlap. Both share one repository,
    // created on first use (once: the init is serialised).
    let profiles = |max: u32, tries: u32| {
        let mut text = format!("max_concurrent: {max}\nprofiles:\n");
        for name in ["a", "b"] {
            text.push_str(&format!(
                "  {name}:
    repository: local
    paths: ['{{dir}}/data']
    schedule: '0 0 1 1 *'
    hooks:
      before: ['touch {{dir}}/in-{name}; for i in $(seq {tries}); do [ -e {{dir}}/in-a ] && [ -e {{dir}}/in-b ] && exit 0; sleep 0.1; done; echo alone; exit 1']
      after: ['rm {{dir}}/in-{name}']
      on_failure: ['rm -f {{dir}}/in-{name}']
"
            ));
        }
        text
    };
    let sb = Sandbox::new();
    sb.config(&profiles(2, 150));
    let daemon = Daemon::start(&sb, &[]);
    wait_until("both catch-up runs", WAIT, || {
        ["a", "b"]
            .iter()
            .all(|p| status(&sb, p)["jobs"]["backup"]["runs"] == 1)
            .then_some(())
    });
    daemon.terminate().assert_code(0);
    for p in ["a", "b"] {
        let s = status(&sb, p);
        assert_eq!(s["jobs"]["backup"]["last_result"], "success", "{s:#}");
    }

    // One at a time (the default): the first run waits for a partner that never comes.
    let sb = Sandbox::new();
    sb.config(&profiles(1, 30));
    let daemon = Daemon::start(&sb, &[]);
    wait_until("both catch-up runs", WAIT, || {
        ["a", "b"]
            .iter()
            .all(|p| status(&sb, p)["jobs"]["backup"]["runs"] == 1)
            .then_some(())
    });
    daemon.terminate().assert_code(0);
    let s = status(&sb, "a");
    assert_eq!(s["jobs"]["backup"]["last_result"], "failed", "{s:#}");
    assert!(
        s["jobs"]["backup"]["last_failure"]["error"]
            .as_str()
            .unwrap()
            .starts_with("before hook"),
        "{s:#}"
    );
}

#[test]
fn verify_schedule_runs_the_restore_drill_and_records_it() {
    let sb = Sandbox::new();
    drop(make_sqlite(&sb.path("data/app.db"), 500));
    // The backup runs once at start (catch-up); the drill every two seconds after it.
    sb.config(&format!(
        "{APP}    schedule: '0 0 1 1 *'\n    verify_schedule: '*/2 * * * * *'\n    timezone: UTC\n"
    ));
    let mut daemon = Daemon::start(&sb, &[]);
    wait_until("a successful scheduled restore drill", WAIT, || {
        (status(&sb, "app")["jobs"]["verify"]["last_result"] == "success").then_some(())
    });
    daemon.wait_for_line("restore drill of profile app", WAIT);
    let run = daemon.terminate();
    run.assert_code(0);
    assert_eq!(
        status(&sb, "app")["jobs"]["backup"]["last_result"],
        "success"
    );
    assert!(run.stderr.contains("result: PASS"), "{}", run.stderr);
}
