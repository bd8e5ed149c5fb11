//! What a snapshot says and which one a user names are untrusted input: an empty or ambiguous
//! `--snapshot` is a usage error listing the candidates; a manifest whose file names or
//! database names would lead a restore outside its directory is refused, naming them, with
//! nothing written outside (hand-made hostile manifests, backed up with the real restic under
//! the profile's tags and host, as someone with the repository key could).

use crate::harness::{Sandbox, make_sqlite};

const PROFILE: &str = "profiles:
  app:
    repository: local
    host: test-host
    databases:
      - { name: app, type: sqlite, path: '{dir}/data/app.db' }
    paths: ['{dir}/data/etc']
";

fn sandbox() -> Sandbox {
    let sb = Sandbox::new();
    drop(make_sqlite(&sb.path("data/app.db"), 20));
    std::fs::create_dir(sb.path("data/etc")).unwrap();
    std::fs::write(sb.path("data/etc/app.toml"), "x = 1\n").unwrap();
    sb.config(PROFILE);
    sb
}

/// Short ids of the profile's snapshots, oldest first.
fn short_ids(sb: &Sandbox) -> Vec<String> {
    sb.snapshots()
        .iter()
        .map(|s| s["short_id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn an_empty_snapshot_id_is_a_usage_error_listing_the_snapshots() {
    let sb = sandbox();
    sb.run(&["backup", "app"]).assert_code(0);
    let id = short_ids(&sb).remove(0);
    std::fs::remove_file(sb.path("data/app.db")).unwrap();

    for args in [
        &["restore", "app", "--database", "app", "--snapshot", ""][..],
        &["verify", "app", "--snapshot", ""][..],
    ] {
        let run = sb.run(args);
        run.assert_code(2);
        assert!(
            run.stderr.contains("--snapshot is empty") && run.stderr.contains(&id),
            "{args:?}: {}",
            run.stderr
        );
    }
    assert!(
        !sb.path("data/app.db").exists(),
        "nothing was restored for an empty id"
    );
}

#[test]
fn an_ambiguous_snapshot_id_lists_the_snapshots_it_could_mean() {
    let sb = sandbox();
    sb.run(&["backup", "app"]).assert_code(0);
    // More snapshots of the profile (plain restic, same tags and host) until two ids share
    // their first character: at most 17 are needed for 16 hex digits.
    let shared = loop {
        let ids = short_ids(&sb);
        let first = ids.iter().find(|a| {
            ids.iter()
                .filter(|b| b.as_bytes()[0] == a.as_bytes()[0])
                .count()
                > 1
        });
        if let Some(a) = first {
            break a[..1].to_string();
        }
        assert!(ids.len() <= 17, "{ids:?}");
        std::fs::write(sb.path("data/etc/app.toml"), format!("x = {}\n", ids.len())).unwrap();
        // A restic snapshot without a manifest is enough to be a candidate.
        let out = sb.restic(&[
            "backup",
            "--host",
            "test-host",
            "--tag",
            "resticpilot",
            "--tag",
            "profile:app",
            sb.path("data/etc").to_str().unwrap(),
        ]);
        assert!(out.status.success());
    };
    let matching: Vec<String> = short_ids(&sb)
        .into_iter()
        .filter(|s| s.starts_with(&shared))
        .collect();
    let run = sb.run(&["restore", "app", "--database", "app", "--snapshot", &shared]);
    run.assert_code(2);
    assert!(run.stderr.contains("is ambiguous"), "{}", run.stderr);
    for id in &matching {
        assert!(
            run.stderr.contains(id.as_str()),
            "lists {id}: {}",
            run.stderr
        );
    }
}
