//! A sandbox per test: a temporary directory with a restic password, a repository path, a
//! state directory and a config; runs the real binary and the real restic against it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const RESTIC_PASSWORD: &str = "correct horse battery staple";

pub struct Sandbox {
    pub dir: tempfile::TempDir,
}

/// What one run of the binary did.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Everything the binary printed.
    pub fn all(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }

    #[track_caller]
    pub fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code, code,
            "expected exit {code}, got {}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        );
        self
    }

    /// Asserts that stderr holds every one of `needles`.
    #[track_caller]
    pub fn assert_stderr_has(&self, needles: &[&str]) -> &Self {
        for needle in needles {
            assert!(
                self.stderr.contains(needle),
                "stderr lacks {needle:?}:\n{}",
                self.stderr
            );
        }
        self
    }
}

/// Polls `probe` until it gives a value, for a test waiting on something another process
/// starts (a dump child, say); fails naming `what` when nothing came within 30 s.
#[track_caller]
pub fn wait_until<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        if let Some(found) = probe() {
            return found;
        }
        assert!(std::time::Instant::now() < deadline, "{what}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// The pids of running processes whose argument list `matches`.
pub fn processes(matches: impl Fn(&[&str]) -> bool) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline);
        let args: Vec<&str> = cmdline.split('\0').collect();
        if matches(&args) {
            found.push(pid);
        }
    }
    found
}

/// Fails loudly when a tool the tests need is missing: CI must install it, not skip.
#[track_caller]
pub fn require(tool: &str) -> PathBuf {
    let path = which::which(tool).unwrap_or_else(|_| {
        panic!("{tool} is not installed: the tests need it (scripts/test.sh installs it)")
    });
    if tool == "restic" {
        check_restic_version();
    }
    path
}

/// When scripts/test.sh picked a restic (`--restic`), every test runs that one: the restic on
/// PATH must say the version it announced.
fn check_restic_version() {
    static CHECKED: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    CHECKED.get_or_init(|| {
        let Ok(expected) = std::env::var("RESTICPILOT_TEST_RESTIC_VERSION") else {
            return;
        };
        let out = Command::new("restic").arg("version").output().unwrap();
        let found = String::from_utf8_lossy(&out.stdout);
        assert!(
            found.split_whitespace().nth(1) == Some(expected.as_str()),
            "the tests were to run restic {expected}, and restic on PATH says {found:?}"
        );
    });
}

impl Sandbox {
    pub fn new() -> Sandbox {
        require("restic");
        let dir = tempfile::Builder::new()
            .prefix("rp-test-")
            .tempdir()
            .expect("temp dir");
        std::fs::write(dir.path().join("restic-password"), RESTIC_PASSWORD).unwrap();
        std::fs::create_dir(dir.path().join("data")).unwrap();
        Sandbox { dir }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn repo(&self) -> PathBuf {
        self.path("repo")
    }

    /// Writes `config.yaml` with a local repository called `local` (created on first use) and
    /// the given `profiles:` section; `{dir}` in it stands for the sandbox directory.
    pub fn config(&self, profiles: &str) -> PathBuf {
        let text = format!(
            "state_dir: {dir}/state\nrepositories:\n  local:\n    url: {dir}/repo\n    password_file: {dir}/restic-password\n    init: true\n{profiles}",
            dir = self.dir.path().display(),
            profiles = profiles.replace("{dir}", &self.dir.path().display().to_string()),
        );
        self.write_config("config.yaml", &text)
    }

    pub fn write_config(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path(name);
        std::fs::write(
            &path,
            text.replace("{dir}", &self.dir.path().display().to_string()),
        )
        .unwrap();
        path
    }

    /// Runs resticpilot with `-c config.yaml` and `args`.
    pub fn run(&self, args: &[&str]) -> Run {
        self.run_with(&self.path("config.yaml"), args)
    }

    pub fn run_with(&self, config: &Path, args: &[&str]) -> Run {
        let out = self
            .command(config, args)
            .output()
            .expect("run resticpilot");
        to_run(out)
    }

    pub fn command(&self, config: &Path, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_resticpilot"));
        cmd.arg("-c").arg(config).args(args);
        cmd.env_remove("RESTICPILOT_CONFIG")
            .env_remove("RESTICPILOT_LISTEN")
            .env_remove("RUST_LOG");
        cmd
    }

    /// Starts resticpilot with `-c config.yaml` and `args` in the background, its stdout and
    /// stderr captured (for [`to_run`] of its `wait_with_output`).
    pub fn spawn(&self, args: &[&str]) -> std::process::Child {
        self.command(&self.path("config.yaml"), args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start resticpilot")
    }

    /// Runs the real restic against the sandbox repository.
    pub fn restic(&self, args: &[&str]) -> Output {
        Command::new("restic")
            .env("RESTIC_REPOSITORY", self.repo())
            .env("RESTIC_PASSWORD_FILE", self.path("restic-password"))
            .env_remove("RESTIC_PASSWORD")
            .args(args)
            .output()
            .expect("run restic")
    }

    /// The snapshots in the repository (all of them, any tag or host).
    pub fn snapshots(&self) -> Vec<serde_json::Value> {
        if !self.repo().join("config").exists() {
            return Vec::new();
        }
        let out = self.restic(&["snapshots", "--json"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// Restores the latest snapshot with plain restic into `target` under the sandbox.
    pub fn restic_restore_latest(&self, target: &str) -> PathBuf {
        let dest = self.path(target);
        let out = self.restic(&["restore", "latest", "--target", dest.to_str().unwrap()]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        dest
    }

    /// Where a staged dump of profile `profile` lands inside a restored tree.
    pub fn restored_dump(&self, restored: &Path, profile: &str, file: &str) -> PathBuf {
        let staging = self.path("state/staging").join(profile);
        restored.join(staging.strip_prefix("/").unwrap()).join(file)
    }

    /// The files left in a profile's staging directory (the marker aside).
    pub fn staging_files(&self, profile: &str) -> Vec<String> {
        match std::fs::read_dir(self.path("state/staging").join(profile)) {
            Ok(read) => read
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| n != ".resticpilot-staging")
                .collect(),
            Err(_) => Vec::new(),
        }
    }
}

pub fn to_run(out: Output) -> Run {
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Free bytes on the filesystem of `path` (as `df` reports them).
pub fn free_bytes(path: &Path) -> u64 {
    let out = std::process::Command::new("df")
        .args(["--output=avail", "-B1"])
        .arg(path)
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    text.lines().nth(1).unwrap().trim().parse().unwrap()
}

/// Makes a WAL-mode SQLite database with `rows` rows in table `t`.
pub fn make_sqlite(path: &Path, rows: i64) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.pragma_update(None, "journal_mode", "WAL").unwrap();
    conn.execute_batch(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, payload BLOB NOT NULL);
         CREATE TABLE meta (k TEXT PRIMARY KEY, v TEXT);
         INSERT INTO meta VALUES ('schema', '1');",
    )
    .unwrap();
    conn.execute(
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < ?1)
         INSERT INTO t (payload) SELECT randomblob(200) FROM c",
        [rows],
    )
    .unwrap();
    conn
}

/// The child processes of process `pid`, spawned from any of its threads (a process's
/// `/proc/PID/task/TID/children` lists only the children of thread TID).
pub fn children(pid: u32) -> Vec<i32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .filter_map(|t| t.ok())
        .filter_map(|t| std::fs::read_to_string(t.path().join("children")).ok())
        .flat_map(|c| {
            c.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect::<Vec<i32>>()
        })
        .collect()
}

pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Starts `script` under `sh -c`, detached from our stdio: the harness's watchdogs, which
/// outlive a test only until this process is gone (their scripts poll our pid) and then clean
/// up what the tests started (a server, a mount).
pub fn spawn_watchdog(script: &str) -> std::process::Child {
    Command::new("sh")
        .arg("-c")
        .arg(script)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start a watchdog shell")
}

/// Checks `value` against `kind` (`snapshots`, `status`, `verify`, `webhook`) of the published
/// outputs.schema.json, which forbids fields it does not list: a field added to an output
/// fails here until the schema (and the README's "JSON outputs") says what it is.
#[track_caller]
pub fn assert_output(kind: &str, value: &serde_json::Value) {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/outputs.schema.json"))
        .expect("outputs.schema.json is in the repository");
    let published: serde_json::Value = serde_json::from_str(&text).expect("the schema is JSON");
    let schema = serde_json::json!({
        "$schema": published["$schema"],
        "$defs": published["$defs"],
        "$ref": format!("#/$defs/{kind}"),
    });
    assert!(
        published["$defs"].get(kind).is_some(),
        "no output {kind} in the schema"
    );
    let validator = jsonschema::validator_for(&schema).expect("a valid JSON Schema");
    let errors: Vec<String> = validator
        .iter_errors(value)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{kind} output does not match outputs.schema.json:\n{}\n{value:#}",
        errors.join("\n")
    );
}

impl Sandbox {
    /// A snapshot of `dirs` made with restic directly, tagged as resticpilot tags profile
    /// `profile`'s snapshots on host `test-host`: how the tests write forged or damaged
    /// snapshot contents into the repository, as another holder of the key could.
    #[track_caller]
    pub fn snapshot_by_hand(&self, profile: &str, dirs: &[&Path]) {
        let tag = format!("profile:{profile}");
        let mut args = vec![
            "backup",
            "--host",
            "test-host",
            "--tag",
            "resticpilot",
            "--tag",
            &tag,
        ];
        args.extend(dirs.iter().map(|d| d.to_str().unwrap()));
        let out = self.restic(&args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
