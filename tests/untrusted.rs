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
        sb.snapshot_by_hand("app", &[&sb.path("data/etc")]);
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

/// A valid SQLite copy (what a dump looks like) at `path`.
fn sqlite_copy(path: &std::path::Path) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let conn = make_sqlite(path, 10);
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE); PRAGMA journal_mode = DELETE")
        .unwrap();
}

/// Backs up, as profile `app` on `test-host` (what anyone with the repository key can do), a
/// staging-like directory `fake/staging/app` whose manifest lists `databases`, plus `extra`
/// paths.
fn hostile_snapshot(sb: &Sandbox, databases: serde_json::Value, extra: &[&std::path::Path]) {
    let staging = sb.path("fake/staging/app");
    std::fs::create_dir_all(&staging).unwrap();
    let manifest = serde_json::json!({
        "resticpilot": "0.1.0", "profile": "app", "host": "test-host",
        "created": "2026-11-22T23:00:00Z", "staging_dir": "/", "databases": databases,
    });
    std::fs::write(
        staging.join("resticpilot-manifest.json"),
        manifest.to_string(),
    )
    .unwrap();
    let mut args = vec![
        "backup".to_string(),
        "--host".into(),
        "test-host".into(),
        "--tag".into(),
        "resticpilot".into(),
        "--tag".into(),
        "profile:app".into(),
        staging.display().to_string(),
    ];
    args.extend(extra.iter().map(|p| p.display().to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = sb.restic(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn entry(file: &str) -> serde_json::Value {
    serde_json::json!([{"name": "app", "type": "sqlite", "file": file, "bytes": 1,
                        "duration": 0.1, "source": "x", "method": "online", "tables": ["t"]}])
}

/// A dump file in the snapshot larger than its manifest records (restic keeps a sparse giant
/// in a few bytes) is cut off at the recorded size, and a recorded size past the free space is
/// refused before anything is written: the live database's disk is never filled by a snapshot.
#[test]
fn a_dump_larger_than_its_manifest_or_the_free_space_is_stopped_before_it_fills_the_disk() {
    let sb = sandbox();
    sb.run(&["backup", "app"]).assert_code(0);
    let copy = sb.path("fake/staging/app/app.sqlite3");
    sqlite_copy(&copy);
    let real = std::fs::metadata(&copy).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&copy)
        .unwrap()
        .set_len(real + (64 << 20))
        .unwrap();
    let mut db = entry("app.sqlite3");
    db[0]["bytes"] = real.into();
    hostile_snapshot(&sb, db.clone(), &[]);
    let live = std::fs::read(sb.path("data/app.db")).unwrap();
    let left_behind = || -> Vec<String> {
        std::fs::read_dir(sb.path("data"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n != "app.db" && n != "etc" && !n.starts_with("app.db-"))
            .collect()
    };

    let run = sb.run(&["restore", "app", "--database", "app", "--force"]);
    run.assert_code(1);
    assert!(
        run.stderr.contains(&format!(
            "is larger than the {real} bytes its manifest records"
        )),
        "{}",
        run.stderr
    );
    assert_eq!(std::fs::read(sb.path("data/app.db")).unwrap(), live);
    assert!(left_behind().is_empty(), "{:?}", left_behind());

    // A recorded size past the free space: refused before a byte is written.
    db[0]["bytes"] = (crate::harness::free_bytes(&sb.path("data")) + (2 << 30)).into();
    hostile_snapshot(&sb, db, &[]);
    let run = sb.run(&["restore", "app", "--database", "app", "--force"]);
    run.assert_code(1);
    assert!(
        run.stderr.contains("no space left in") && run.stderr.contains("found before writing it"),
        "{}",
        run.stderr
    );
    assert_eq!(std::fs::read(sb.path("data/app.db")).unwrap(), live);
    assert!(left_behind().is_empty(), "{:?}", left_behind());
}

#[test]
fn a_manifest_file_name_with_dot_dot_cannot_make_restore_write_outside_the_target() {
    let sb = sandbox();
    sb.run(&["backup", "app"]).assert_code(0);
    // The snapshot holds a good copy one level above its staging directory, so that
    // `restic dump <staging>/../escaped.sqlite3` finds it.
    let beside = sb.path("fake/staging/escaped.sqlite3");
    sqlite_copy(&beside);
    hostile_snapshot(&sb, entry("../escaped.sqlite3"), &[&beside]);
    let target = sb.path("restored");
    std::fs::create_dir(&target).unwrap();

    let run = sb.run(&[
        "restore",
        "app",
        "--target",
        target.to_str().unwrap(),
        "--database",
        "app",
    ]);
    run.assert_code(1);
    assert!(
        run.stderr.contains("\"../escaped.sqlite3\"") && run.stderr.contains("untrusted"),
        "names the entry: {}",
        run.stderr
    );
    assert!(
        !sb.path("escaped.sqlite3").exists(),
        "written outside --target"
    );
    assert!(
        std::fs::read_dir(&target).unwrap().next().is_none(),
        "nothing restored from it"
    );
}

#[test]
fn a_manifest_with_an_absolute_file_name_cannot_make_verify_touch_that_file() {
    let sb = sandbox();
    sb.run(&["backup", "app"]).assert_code(0);
    let victim = sb.path("data/victim.txt");
    std::fs::write(&victim, "precious").unwrap();
    // And a copy where `<staging>/<absolute path>` leads inside the snapshot.
    let nested = sb
        .path("fake/staging/app")
        .join(victim.strip_prefix("/").unwrap());
    sqlite_copy(&nested);
    hostile_snapshot(&sb, entry(victim.to_str().unwrap()), &[]);

    let run = sb.run(&["verify", "app", "--json"]);
    assert_eq!(
        std::fs::read_to_string(&victim).ok().as_deref(),
        Some("precious"),
        "the drill must not touch a file a manifest names: {}",
        run.stderr
    );
    run.assert_code(1);
    let report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap_or_default();
    assert!(
        run.stderr
            .contains(&format!("{:?}", victim.display().to_string()))
            && run.stderr.contains("not a plain file name"),
        "names the entry: {}\n{report}",
        run.stderr
    );
}

#[test]
fn in_place_restore_writes_only_to_the_profiles_paths() {
    let sb = sandbox();
    sb.run(&["backup", "app"]).assert_code(0);
    // A snapshot that also holds a directory the profile does not configure.
    let planted = sb.path("elsewhere/cron.d");
    std::fs::create_dir_all(&planted).unwrap();
    std::fs::write(planted.join("job"), "* * * * * root evil\n").unwrap();
    let copy = sb.path("fake/staging/app/app.sqlite3");
    sqlite_copy(&copy);
    hostile_snapshot(&sb, entry("app.sqlite3"), &[&sb.path("data/etc"), &planted]);
    std::fs::remove_dir_all(sb.path("elsewhere")).unwrap();

    let run = sb.run(&["restore", "app", "--in-place", "--force"]);
    run.assert_code(1);
    assert!(
        run.stderr.contains(&planted.display().to_string())
            && run.stderr.contains("does not configure"),
        "{}",
        run.stderr
    );
    assert!(!planted.exists(), "nothing written where the snapshot said");
}
