//! Retention: keeps what the rules say of this profile on this host, and never touches
//! another profile's or another host's snapshots.

use crate::harness::Sandbox;

#[test]
fn forget_keeps_n_of_this_profile_and_nothing_else_is_touched() {
    let sb = Sandbox::new();
    std::fs::write(sb.path("data/a.txt"), "a").unwrap();
    sb.config(
        "profiles:
  alpha:
    repository: local
    host: host-one
    paths: ['{dir}/data/a.txt']
    retention: { keep_last: 2 }
  beta:
    repository: local
    host: host-one
    paths: ['{dir}/data/a.txt']
",
    );
    // The same profile name on another host (another machine sharing the repository).
    let other = sb.write_config(
        "other.yaml",
        &std::fs::read_to_string(sb.path("config.yaml"))
            .unwrap()
            .replace("host-one", "host-two"),
    );
    // Retention (keep_last 2) runs after each backup of alpha, on either host, scoped to it.
    for _ in 0..2 {
        sb.run(&["backup", "beta"]).assert_code(0);
        sb.run_with(&other, &["backup", "alpha"]).assert_code(0);
    }
    // Four runs of alpha on host-one: retention thins them to 2 and leaves the others alone.
    for _ in 0..4 {
        sb.run(&["backup", "alpha"]).assert_code(0);
    }
    let count = |host: &str, tag: &str| {
        sb.snapshots()
            .iter()
            .filter(|s| {
                s["hostname"] == host && s["tags"].as_array().unwrap().iter().any(|t| t == tag)
            })
            .count()
    };
    assert_eq!(count("host-one", "profile:alpha"), 2);
    assert_eq!(count("host-one", "profile:beta"), 2);
    assert_eq!(count("host-two", "profile:alpha"), 2);
    // The status file counts what retention left of this profile on this host.
    let status: serde_json::Value =
        serde_json::from_slice(&std::fs::read(sb.path("state/status/alpha.json")).unwrap())
            .unwrap();
    assert_eq!(status["jobs"]["backup"]["backup"]["snapshot_count"], 2);

    // The forget command alone, dry run first: nothing changes.
    let text = std::fs::read_to_string(sb.path("config.yaml"))
        .unwrap()
        .replace("keep_last: 2", "keep_last: 1");
    std::fs::write(sb.path("config.yaml"), text).unwrap();
    let dry = sb.run(&["forget", "alpha", "--dry-run"]);
    dry.assert_code(0);
    // The answer is on stdout: each snapshot, kept (and by which rule) or removed.
    let mine: Vec<serde_json::Value> = {
        let mut v: Vec<_> = sb
            .snapshots()
            .into_iter()
            .filter(|s| {
                s["hostname"] == "host-one"
                    && s["tags"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|t| t == "profile:alpha")
            })
            .collect();
        v.sort_by_key(|s| s["time"].as_str().unwrap().to_string());
        v
    };
    let short = |s: &serde_json::Value| s["short_id"].as_str().unwrap().to_string();
    let lines: Vec<&str> = dry.stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{}", dry.stdout);
    assert!(lines[0].contains("dry run"), "{}", dry.stdout);
    assert!(
        lines[1].starts_with(&format!("  keep    {}", short(&mine[1])))
            && lines[1].ends_with("last snapshot"),
        "{}",
        dry.stdout
    );
    assert!(
        lines[2].starts_with(&format!("  remove  {}", short(&mine[0]))),
        "{}",
        dry.stdout
    );
    assert_eq!(lines[3], "would keep 1 snapshot, remove 1 snapshot");
    assert_eq!(count("host-one", "profile:alpha"), 2);
    sb.run(&["forget", "alpha", "--prune"]).assert_code(0);
    assert_eq!(count("host-one", "profile:alpha"), 1);
    assert_eq!(count("host-one", "profile:beta"), 2);
    assert_eq!(count("host-two", "profile:alpha"), 2);
}

#[test]
fn forget_without_retention_is_a_usage_error() {
    let sb = Sandbox::new();
    std::fs::write(sb.path("data/a.txt"), "a").unwrap();
    sb.config("profiles:\n  beta:\n    repository: local\n    paths: ['{dir}/data/a.txt']\n");
    let run = sb.run(&["forget", "beta"]);
    run.assert_code(2);
    assert!(
        run.stderr.contains("profile beta has no retention"),
        "{}",
        run.stderr
    );
}
