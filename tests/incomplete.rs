//! A backup that finished with warnings (a configured path missing, files restic could not
//! read, a database with no tables) makes a snapshot tagged `incomplete`: retention keeps it
//! apart from complete snapshots (restic groups by host and tags), so it never pushes a
//! complete one out; `snapshots`, `status`, `restore` and `verify` say so.

use std::path::Path;

use crate::harness::{Run, Sandbox, is_root, make_sqlite, require, to_run};

fn profile(extra_path: &str) -> String {
    format!(
        "profiles:
  app:
    repository: local
    host: test-host
    databases:
      - {{ name: app, type: sqlite, path: '{{dir}}/data/app.db' }}
    paths: ['{{dir}}/data/etc'{extra_path}]
    retention: {{ keep_last: 1 }}
"
    )
}

fn sandbox(extra_path: &str) -> Sandbox {
    let sb = Sandbox::new();
    drop(make_sqlite(&sb.path("data/app.db"), 30));
    std::fs::create_dir(sb.path("data/etc")).unwrap();
    std::fs::write(sb.path("data/etc/app.toml"), "x = 1\n").unwrap();
    sb.config(&profile(extra_path));
    sb
}

/// (short id, incomplete) of every snapshot, oldest first, from `snapshots --json`.
fn listed(sb: &Sandbox) -> Vec<(String, bool)> {
    let run = sb.run(&["snapshots", "app", "--json"]);
    run.assert_code(0);
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    crate::harness::assert_output("snapshots", &v);
    v["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["short_id"].as_str().unwrap().to_string(),
                s["incomplete"].as_bool().unwrap_or(false),
            )
        })
        .collect()
}

fn tags(sb: &Sandbox) -> Vec<Vec<String>> {
    sb.snapshots()
        .iter()
        .map(|s| {
            s["tags"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t.as_str().unwrap().to_string())
                .collect()
        })
        .collect()
}

#[test]
fn a_missing_path_makes_an_incomplete_snapshot_that_never_pushes_a_complete_one_out() {
    let sb = sandbox(", '{dir}/data/.env'");
    std::fs::write(sb.path("data/.env"), "SECRET=1\n").unwrap();
    sb.run(&["backup", "app"]).assert_code(0);
    let complete = listed(&sb);
    assert_eq!(complete.len(), 1);
    assert!(!complete[0].1);

    // The .env goes missing (a volume not mounted, say): two runs finish with warnings.
    std::fs::remove_file(sb.path("data/.env")).unwrap();
    for _ in 0..2 {
        let run = sb.run(&["backup", "app"]);
        run.assert_code(3);
        assert!(run.stderr.contains("does not exist"), "{}", run.stderr);
    }
    let now = listed(&sb);
    assert!(
        now.contains(&complete[0]),
        "keep_last: 1 must keep the last complete snapshot: {now:?}"
    );
    // The incomplete ones are a group of their own: keep_last 1 applies to them too.
    assert_eq!(now.len(), 2, "{now:?}");
    let incomplete = now.iter().find(|s| s.1).expect("one incomplete").0.clone();
    assert!(
        tags(&sb)
            .iter()
            .any(|t| t.contains(&"incomplete".to_string()))
    );

    // Shown as such by snapshots and status.
    let run = sb.run(&["snapshots", "app"]);
    run.assert_code(0);
    let line = run
        .stdout
        .lines()
        .find(|l| l.contains(&incomplete))
        .unwrap()
        .to_string();
    assert!(line.ends_with("INCOMPLETE"), "{}", run.stdout);
    let status = sb.run(&["status", "app", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    crate::harness::assert_output("status", &v);
    let v = &v["profiles"];
    assert_eq!(v[0]["jobs"]["backup"]["last_result"], "warnings");
    assert_eq!(v[0]["jobs"]["backup"]["backup"]["incomplete"], true);
    let status = sb.run(&["status", "app"]);
    assert!(status.stdout.contains("INCOMPLETE"), "{}", status.stdout);

    // restore of `latest` takes the newest (its database dump is whole), says it is incomplete
    // and which complete snapshot to use instead, and exits 3.
    std::fs::remove_file(sb.path("data/app.db")).unwrap();
    let run = sb.run(&["restore", "app", "--database", "app"]);
    run.assert_code(3);
    assert!(
        run.stdout
            .contains(&format!("snapshot {incomplete} is INCOMPLETE"))
            && run
                .stdout
                .contains(&format!("--snapshot {}", complete[0].0)),
        "{}",
        run.stdout
    );
    assert!(sb.path("data/app.db").exists());

    // Once the path is back, a complete run replaces the old complete snapshot.
    std::fs::write(sb.path("data/.env"), "SECRET=1\n").unwrap();
    sb.run(&["backup", "app"]).assert_code(0);
    let after = listed(&sb);
    assert_eq!(after.len(), 2, "{after:?}");
    assert!(!after.contains(&complete[0]));
    assert!(after.iter().any(|s| s.0 == incomplete));
}

/// Runs resticpilot as user nobody (root reads every file, so unreadable files need another
/// user), over a sandbox nobody owns.
fn run_as_nobody(sb: &Sandbox, args: &[&str]) -> Run {
    let mut cmd = std::process::Command::new(require("setpriv"));
    cmd.args([
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        env!("CARGO_BIN_EXE_resticpilot"),
    ]);
    cmd.arg("-c").arg(sb.path("config.yaml")).args(args);
    cmd.env("XDG_CACHE_HOME", sb.path("cache"))
        .env("HOME", sb.path("data"))
        .env_remove("RESTICPILOT_CONFIG");
    to_run(cmd.output().unwrap())
}

#[test]
fn unreadable_files_are_tagged_after_the_snapshot_and_retention_keeps_the_complete_one() {
    assert!(
        is_root(),
        "this test needs root, to run resticpilot as another user who cannot read a file"
    );
    let sb = sandbox("");
    let ok = std::process::Command::new("chown")
        .args(["-R", "65534:65534"])
        .arg(sb.dir.path())
        .status()
        .unwrap()
        .success();
    assert!(ok);
    run_as_nobody(&sb, &["backup", "app"]).assert_code(0);
    let complete = listed(&sb);
    assert_eq!(complete.len(), 1);

    let secret = sb.path("data/etc/secret.key");
    std::fs::write(&secret, "no").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o000)).unwrap();
    std::os::unix::fs::chown(&secret, Some(0), Some(0)).unwrap();
    let run = run_as_nobody(&sb, &["backup", "app"]);
    run.assert_code(3);
    assert!(run.stderr.contains("secret.key"), "{}", run.stderr);
    let now = listed(&sb);
    assert!(
        now.contains(&complete[0]),
        "the complete snapshot survives keep_last: 1: {now:?}"
    );
    assert!(run.stderr.contains("tagged `incomplete`"), "{}", run.stderr);
    assert_eq!(now.iter().filter(|s| s.1).count(), 1, "{now:?}");
    // The status file records the id restic gave the snapshot when it was tagged.
    let status: serde_json::Value =
        serde_json::from_slice(&std::fs::read(sb.path("state/status/app.json")).unwrap()).unwrap();
    let recorded = status["jobs"]["backup"]["backup"]["snapshot"]["short_id"]
        .as_str()
        .unwrap()
        .to_string();
    let tagged = now.iter().find(|s| s.1).unwrap().0.clone();
    assert!(
        recorded.starts_with(&tagged) || tagged.starts_with(&recorded),
        "{recorded} vs {tagged}"
    );
    assert_eq!(status["jobs"]["backup"]["backup"]["incomplete"], true);
}

/// A SQLite file with no tables at all: created, given a table, the table dropped.
fn schemaless(path: &Path) {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch("CREATE TABLE t (x); DROP TABLE t;")
        .unwrap();
}

#[test]
fn an_empty_or_schemaless_sqlite_database_is_a_warning_and_fails_the_drill() {
    let sb = Sandbox::new();
    std::fs::write(sb.path("data/empty.db"), b"").unwrap();
    schemaless(&sb.path("data/noschema.db"));
    drop(make_sqlite(&sb.path("data/good.db"), 10));
    sb.config(
        "profiles:
  app:
    repository: local
    host: test-host
    databases:
      - { name: empty, type: sqlite, path: '{dir}/data/empty.db' }
      - { name: noschema, type: sqlite, path: '{dir}/data/noschema.db' }
      - { name: good, type: sqlite, path: '{dir}/data/good.db' }
",
    );
    let run = sb.run(&["backup", "app"]);
    run.assert_code(3);
    for name in ["empty", "noschema"] {
        let path = sb.path(&format!("data/{name}.db")).display().to_string();
        assert!(
            run.stderr.contains(&format!(
                "database {name} (sqlite) has no tables: is `{path}`"
            )),
            "{}",
            run.stderr
        );
    }
    assert!(!run.stderr.contains("database good"), "{}", run.stderr);
    assert!(listed(&sb)[0].1, "the snapshot is tagged incomplete");

    // The drill of it does not pass: there is nothing to recover from those copies.
    let run = sb.run(&["verify", "app", "--json"]);
    run.assert_code(1);
    let r: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    crate::harness::assert_output("verify", &r);
    assert_eq!(r["snapshot"]["incomplete"], true);
    for db in r["databases"].as_array().unwrap() {
        let expected = if db["name"] == "good" {
            "success"
        } else {
            "failed"
        };
        assert_eq!(db["result"], expected, "{db}");
        if expected == "failed" {
            assert!(
                db["detail"].as_str().unwrap().contains("has no tables"),
                "{db}"
            );
        }
    }
}
