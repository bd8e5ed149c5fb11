//! `prune`: one host's maintenance of a shared repository. Each profile's retention applies to
//! its own host, other hosts' series only when `retention.other_hosts` names them; then one
//! `restic prune` reclaims the space of what was forgotten, and `--check` checks.

use crate::harness::{Sandbox, make_sqlite};

fn profiles(other_hosts: &str) -> String {
    format!(
        "profiles:
  a:
    repository: local
    host: web-1
    databases:
      - {{ name: a, type: sqlite, path: '{{dir}}/data/a.db' }}
    retention: {{ keep_last: 1{other_hosts} }}
  b:
    repository: local
    host: web-1
    databases:
      - {{ name: b, type: sqlite, path: '{{dir}}/data/b.db' }}
    retention: {{ keep_last: 1 }}
"
    )
}

/// A snapshot of profile `a` from another host, with 2 MiB of its own data.
fn other_host_snapshot(sb: &Sandbox, n: u32) {
    use std::io::Read;
    let file = sb.path(&format!("data/web2-{n}.bin"));
    let mut data = vec![0u8; 2 << 20];
    std::fs::File::open("/dev/urandom")
        .unwrap()
        .read_exact(&mut data)
        .unwrap();
    std::fs::write(&file, data).unwrap();
    let out = sb.restic(&[
        "backup",
        "-q",
        "--host",
        "web-2",
        "--tag",
        "resticpilot,profile:a",
        file.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn count(sb: &Sandbox, host: &str) -> usize {
    sb.snapshots()
        .iter()
        .filter(|s| s["hostname"] == host)
        .count()
}

fn packs(sb: &Sandbox) -> usize {
    walk(&sb.repo().join("data"))
}

fn walk(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| if p.is_dir() { walk(&p) } else { 1 })
        .sum()
}

#[test]
fn prune_applies_each_profiles_retention_and_reclaims_space_once() {
    let sb = Sandbox::new();
    drop(make_sqlite(&sb.path("data/a.db"), 10));
    drop(make_sqlite(&sb.path("data/b.db"), 10));
    sb.config(&profiles(""));
    sb.run(&["backup"]).assert_code(0);
    sb.run(&["backup"]).assert_code(0);
    other_host_snapshot(&sb, 1);
    other_host_snapshot(&sb, 2);
    assert_eq!(count(&sb, "web-2"), 2);

    // Without other_hosts, another host's series is its own business.
    let run = sb.run(&["prune", "local"]);
    run.assert_code(0);
    assert!(
        run.stderr.contains("pruning unreferenced data"),
        "{}",
        run.stderr
    );
    assert_eq!(count(&sb, "web-2"), 2, "web-2's snapshots were touched");
    assert_eq!(count(&sb, "web-1"), 2, "one per profile on web-1");

    // Named in other_hosts, its series is thinned by the profile's rules, and prune reclaims
    // the forgotten snapshot's data.
    sb.config(&profiles(", other_hosts: [web-2]"));
    let dry = sb.run(&["prune", "--profile", "a", "--dry-run"]);
    dry.assert_code(0);
    assert!(
        dry.stderr
            .contains("retention of host web-2 (other_hosts): kept 1 snapshot, would remove 1"),
        "{}",
        dry.stderr
    );
    assert_eq!(count(&sb, "web-2"), 2, "a dry run removes nothing");
    let before = packs(&sb);
    let run = sb.run(&["prune", "--profile", "a", "--check"]);
    run.assert_code(0);
    assert!(
        run.stderr
            .contains("retention of host web-2 (other_hosts): kept 1 snapshot, removed 1"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("no errors found"), "{}", run.stderr);
    assert_eq!(count(&sb, "web-2"), 1);
    assert_eq!(count(&sb, "web-1"), 2);
    assert!(
        packs(&sb) < before,
        "prune reclaimed nothing: {before} packs before, {} after",
        packs(&sb)
    );
    // Recorded as each profile's prune job.
    let status = sb.run(&["status", "--json"]);
    let s: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    for p in s["profiles"].as_array().unwrap() {
        assert_eq!(p["jobs"]["prune"]["last_result"], "success", "{p}");
    }
}

#[test]
fn prune_needs_a_known_repository() {
    let sb = Sandbox::new();
    sb.config(&profiles(""));
    let run = sb.run(&["prune"]);
    run.assert_code(2);
    let run = sb.run(&["prune", "offsite"]);
    run.assert_code(2);
    assert!(
        run.stderr.contains("no repository named \"offsite\"")
            && run.stderr.contains("(repositories: local)"),
        "{}",
        run.stderr
    );
}
