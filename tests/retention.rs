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
    assert!(dry.stderr.contains("would remove 1"), "{}", dry.stderr);
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
