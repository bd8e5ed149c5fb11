//! `copy_to`: each new snapshot copied into a second local repository with the real restic
//! (created on first use with the first one's chunker parameters), retention applied there
//! too, a failed copy failing the run after the primary snapshot exists, recorded in status and
//! metrics, and caught up by the next run.

use std::process::Command;

use crate::harness::{Sandbox, make_sqlite};

fn config(sb: &Sandbox) {
    std::fs::write(sb.path("second-password"), "second-repo-password\n").unwrap();
    sb.write_config(
        "config.yaml",
        "state_dir: {dir}/state
metrics_file: {dir}/metrics.prom
repositories:
  local:
    url: {dir}/repo
    password_file: {dir}/restic-password
    init: true
  second:
    url: {dir}/second
    password_file: {dir}/second-password
    init: true
profiles:
  app:
    repository: local
    host: test-host
    databases:
      - { name: app, type: sqlite, path: '{dir}/data/app.db' }
    retention: { keep_last: 2 }
    copy_to: [second]
",
    );
}

/// restic on the second repository.
fn second(sb: &Sandbox, args: &[&str]) -> std::process::Output {
    Command::new("restic")
        .env("RESTIC_REPOSITORY", sb.path("second"))
        .env("RESTIC_PASSWORD_FILE", sb.path("second-password"))
        .env_remove("RESTIC_PASSWORD")
        .args(args)
        .output()
        .unwrap()
}

fn second_snapshots(sb: &Sandbox) -> Vec<serde_json::Value> {
    let out = second(
        sb,
        &[
            "snapshots",
            "--json",
            "--host",
            "test-host",
            "--tag",
            "resticpilot,profile:app",
        ],
    );
    assert!(out.status.success(), "{out:?}");
    serde_json::from_slice(&out.stdout).unwrap()
}

fn chunker_polynomial(out: std::process::Output) -> String {
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["chunker_polynomial"].as_str().unwrap().to_string()
}

#[test]
fn each_snapshot_is_copied_with_the_first_repositorys_chunker_and_thinned_there_too() {
    let sb = Sandbox::new();
    drop(make_sqlite(&sb.path("data/app.db"), 50));
    config(&sb);
    let plan = sb.run(&["backup", "--dry-run"]);
    plan.assert_code(0);
    assert!(
        plan.stdout.contains("/second copy --host test-host"),
        "{}",
        plan.stdout
    );
    for _ in 0..3 {
        let run = sb.run(&["backup"]);
        run.assert_code(0);
    }
    assert_eq!(sb.snapshots().len(), 2);
    let copied = second_snapshots(&sb);
    assert_eq!(
        copied.len(),
        2,
        "keep_last: 2 applies there too: {copied:#?}"
    );
    // The same snapshots: restic copy records the original's id.
    let mut originals: Vec<String> = copied
        .iter()
        .map(|s| s["original"].as_str().unwrap_or_default().to_string())
        .collect();
    let mut primary: Vec<String> = sb
        .snapshots()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect();
    originals.sort();
    primary.sort();
    assert_eq!(originals, primary);
    assert_eq!(
        chunker_polynomial(sb.restic(&["cat", "config"])),
        chunker_polynomial(second(&sb, &["cat", "config"])),
        "the second repository was created with the first one's chunker parameters"
    );
    let status = sb.run(&["status", "--json"]);
    let parsed: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    let parsed = &parsed["profiles"];
    assert_eq!(parsed[0]["copies"]["second"]["last_ok"], true, "{parsed:#}");
    let metrics = std::fs::read_to_string(sb.path("metrics.prom")).unwrap();
    assert!(
        metrics.contains("resticpilot_copy_success{profile=\"app\",repository=\"second\"} 1"),
        "{metrics}"
    );
}

#[test]
fn a_failed_copy_fails_the_run_keeps_the_primary_snapshot_and_is_caught_up_next_run() {
    let sb = Sandbox::new();
    drop(make_sqlite(&sb.path("data/app.db"), 50));
    config(&sb);
    sb.run(&["backup"]).assert_code(0);
    assert_eq!(second_snapshots(&sb).len(), 1);

    // The second repository's password file now holds the wrong password.
    std::fs::write(sb.path("second-password"), "not-the-password\n").unwrap();
    let run = sb.run(&["backup"]);
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(
        run.stderr
            .contains("is safe in repository local, but the copy is not")
            && run
                .stderr
                .contains("copy to repository second failed: wrong password"),
        "{}",
        run.stderr
    );
    assert_eq!(sb.snapshots().len(), 2, "the primary snapshot exists");
    let status = sb.run(&["status", "--json"]);
    let parsed: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    crate::harness::assert_output("status", &parsed);
    let copy = &parsed["profiles"][0]["copies"]["second"];
    assert_eq!(copy["last_ok"], false, "{parsed:#}");
    assert_eq!(copy["failures"], 1, "{parsed:#}");
    assert!(
        copy["last_error"]
            .as_str()
            .unwrap()
            .contains("wrong password")
    );
    let metrics = std::fs::read_to_string(sb.path("metrics.prom")).unwrap();
    assert!(
        metrics.contains("resticpilot_copy_success{profile=\"app\",repository=\"second\"} 0"),
        "{metrics}"
    );

    // Fixed: the next run copies the snapshot it missed and its own.
    std::fs::write(sb.path("second-password"), "second-repo-password\n").unwrap();
    sb.run(&["backup"]).assert_code(0);
    assert_eq!(second_snapshots(&sb).len(), 2, "keep_last: 2 of 3 copied");
    let status = sb.run(&["status", "--json"]);
    let parsed: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(parsed["profiles"][0]["copies"]["second"]["last_ok"], true);
}

#[test]
fn copy_to_names_another_defined_repository() {
    let sb = Sandbox::new();
    sb.config(
        "profiles:
  app:
    repository: local
    paths: [/etc/hostname]
    copy_to: [local, nowhere]
",
    );
    let out = sb.run(&["validate"]);
    assert_eq!(out.code, 2, "{}", out.all());
    assert!(
        out.stderr
            .contains("copy_to \"local\" is the profile's own repository")
            && out
                .stderr
                .contains("copy_to \"nowhere\" is not a repository (defined: local)"),
        "{}",
        out.stderr
    );
}
