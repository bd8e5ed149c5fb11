//! Profile inheritance: `extends:` and `defaults:` (maps merge key by key, lists replace),
//! errors with positions for a missing parent and a cycle, and `validate --resolved`.

use crate::harness::Sandbox;

const CONFIG: &str = "state_dir: {dir}/state
repositories:
  local:
    url: {dir}/repo
    password_file: {dir}/restic-password
    init: true
defaults:
  repository: local
  host: test-host
  retention: { keep_last: 3, prune: true }
profiles:
  base:
    paths: ['{dir}/data/base']
    tags: [base-tag]
    retention: { keep_daily: 7 }
    notify: { healthchecks: 'https://hc-ping.com/secret-uuid' }
  child:
    extends: base
    tags: [child-tag]
    retention: { keep_last: 1 }
";

#[test]
fn extends_and_defaults_merge_maps_key_by_key_and_replace_lists() {
    let sb = Sandbox::new();
    std::fs::create_dir_all(sb.path("data/base")).unwrap();
    std::fs::write(sb.path("data/base/file.txt"), "x\n").unwrap();
    sb.write_config("config.yaml", CONFIG);
    let out = sb.run(&["validate", "--resolved"]);
    out.assert_code(0);
    let child = out.stdout.split("child:\n").nth(1).expect(&out.stdout);
    for expected in [
        "repository: local",
        "host: test-host",
        "- child-tag",
        "keep_last: 1",
        "keep_daily: 7",
        "prune: true",
        "data/base",
    ] {
        assert!(child.contains(expected), "{expected}:\n{}", out.stdout);
    }
    assert!(
        !child.contains("base-tag"),
        "lists replace:\n{}",
        out.stdout
    );
    // The ping URL is a secret, also here.
    assert!(!out.stdout.contains("secret-uuid"), "{}", out.stdout);
    assert!(
        out.stdout.contains("https://hc-ping.com/***"),
        "{}",
        out.stdout
    );

    // The resolved profile is what runs.
    let run = sb.run(&["backup", "child"]);
    run.assert_code(0);
    let snaps = sb.snapshots();
    assert_eq!(snaps.len(), 1);
    assert_eq!(snaps[0]["hostname"], "test-host");
    let tags: Vec<&str> = snaps[0]["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert!(
        tags.contains(&"child-tag") && tags.contains(&"profile:child"),
        "{tags:?}"
    );
    assert!(!tags.contains(&"base-tag"), "{tags:?}");
}

#[test]
fn a_missing_parent_and_a_cycle_are_errors_at_the_extends_key() {
    let sb = Sandbox::new();
    sb.config(
        "profiles:
  a:
    extends: b
    paths: [/etc/hostname]
  b:
    extends: a
    paths: [/etc/hostname]
  c:
    extends: nowhere
    paths: [/etc/hostname]
",
    );
    let out = sb.run(&["validate"]);
    assert_eq!(out.code, 2, "{}", out.all());
    for expected in [
        ":9:14: profile a: extends comes back to itself (a -> b -> a)",
        ":12:14: profile b: extends comes back to itself (b -> a -> b)",
        ":15:14: profile c: c extends \"nowhere\", which is not a profile (profiles: a, b, c)",
    ] {
        assert!(out.stderr.contains(expected), "{expected}:\n{}", out.stderr);
    }
}

#[test]
fn an_error_in_an_inherited_key_points_at_the_line_it_was_written_on() {
    let sb = Sandbox::new();
    sb.config(
        "defaults:
  lock_wait: soon
profiles:
  a:
    repository: local
    paths: [/etc/hostname]
",
    );
    let out = sb.run(&["validate"]);
    assert_eq!(out.code, 2, "{}", out.all());
    assert!(
        out.stderr
            .contains(":8:14: lock_wait \"soon\" is not a duration"),
        "{}",
        out.stderr
    );
}
