//! SQLite backups: consistent while the application writes, verified, in one snapshot with
//! the profile's files.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use crate::harness::{Sandbox, make_sqlite};

fn profile(method: &str) -> String {
    format!(
        "profiles:
  app:
    repository: local
    host: test-host
    databases:
      - {{ name: app, type: sqlite, path: {{dir}}/data/app.db, method: {method} }}
    paths: [{{dir}}/data/etc]
"
    )
}

/// A writer that commits one row at a time until stopped; returns the highest id committed.
fn start_writer(
    path: std::path::PathBuf,
) -> (Arc<AtomicBool>, Arc<AtomicI64>, std::thread::JoinHandle<()>) {
    let stop = Arc::new(AtomicBool::new(false));
    let last = Arc::new(AtomicI64::new(0));
    let (s, l) = (stop.clone(), last.clone());
    let handle = std::thread::spawn(move || {
        let conn = rusqlite::Connection::open(path).unwrap();
        conn.busy_timeout(Duration::from_secs(10)).unwrap();
        while !s.load(Ordering::SeqCst) {
            conn.execute("INSERT INTO t (payload) VALUES (randomblob(200))", [])
                .unwrap();
            l.store(conn.last_insert_rowid(), Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(2));
        }
    });
    (stop, last, handle)
}

fn backup_while_writing(method: &str) {
    let sb = Sandbox::new();
    let db = sb.path("data/app.db");
    drop(make_sqlite(&db, 200_000));
    std::fs::create_dir(sb.path("data/etc")).unwrap();
    std::fs::write(sb.path("data/etc/app.toml"), "answer = 42\n").unwrap();
    sb.config(&profile(method));

    let (stop, last, writer) = start_writer(db.clone());
    while last.load(Ordering::SeqCst) == 0 {
        std::thread::sleep(Duration::from_millis(5));
    }
    let committed_before = last.load(Ordering::SeqCst);
    let run = sb.run(&["backup", "app"]);
    let committed_after = last.load(Ordering::SeqCst);
    stop.store(true, Ordering::SeqCst);
    writer.join().unwrap();
    run.assert_code(0);
    assert!(
        committed_after > committed_before,
        "the writer kept committing during the backup ({committed_before} -> {committed_after})"
    );

    let snaps = sb.snapshots();
    assert_eq!(snaps.len(), 1);
    let tags: Vec<&str> = snaps[0]["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert_eq!(tags, ["resticpilot", "profile:app"]);
    assert_eq!(snaps[0]["hostname"], "test-host");

    let restored = sb.restic_restore_latest("restored");
    let copy = sb.restored_dump(&restored, "app", "app.sqlite3");
    let conn = rusqlite::Connection::open(&copy).unwrap();
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    let present: i64 = conn
        .query_row(
            "SELECT count(*) FROM t WHERE id <= ?1",
            [committed_before],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        present, committed_before,
        "every row committed before the run is in the copy"
    );
    let max: i64 = conn
        .query_row("SELECT max(id) FROM t", [], |r| r.get(0))
        .unwrap();
    assert!(max <= committed_after);

    // The profile's files are in the same snapshot.
    let etc = restored.join(sb.path("data/etc/app.toml").strip_prefix("/").unwrap());
    assert_eq!(std::fs::read_to_string(etc).unwrap(), "answer = 42\n");
    // Staging is emptied after a successful run.
    assert!(
        sb.staging_files("app").is_empty(),
        "{:?}",
        sb.staging_files("app")
    );
    // The manifest describes the dump.
    let manifest = sb.restored_dump(&restored, "app", "resticpilot-manifest.json");
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(manifest).unwrap()).unwrap();
    assert_eq!(manifest["databases"][0]["name"], "app");
    assert_eq!(manifest["databases"][0]["file"], "app.sqlite3");
}

#[test]
fn online_backup_of_a_wal_database_under_a_live_writer_is_consistent() {
    backup_while_writing("online");
}

#[test]
fn vacuum_into_backup_under_a_live_writer_is_consistent() {
    backup_while_writing("vacuum");
}

#[test]
fn second_backup_reports_a_new_snapshot_and_logs_the_summary() {
    let sb = Sandbox::new();
    drop(make_sqlite(&sb.path("data/app.db"), 1000));
    std::fs::create_dir(sb.path("data/etc")).unwrap();
    sb.config(&profile("online"));
    sb.run(&["backup"]).assert_code(0);
    let run = sb.run(&["backup"]);
    run.assert_code(0);
    let snaps = sb.snapshots();
    assert_eq!(snaps.len(), 2);
    let id = snaps[1]["short_id"].as_str().unwrap();
    assert!(
        run.stderr.contains(&format!("backup done: snapshot {id}")),
        "{}",
        run.stderr
    );

    let listed = sb.run(&["snapshots", "app", "--json"]);
    listed.assert_code(0);
    let listed: serde_json::Value = serde_json::from_str(&listed.stdout).unwrap();
    assert_eq!(listed["version"], 1, "{listed:#}");
    crate::harness::assert_output("snapshots", &listed);
    let listed = &listed["snapshots"];
    assert_eq!(listed.as_array().unwrap().len(), 2);
    assert_eq!(listed[0]["profile"], "app");
    // One spelling across the JSON outputs: the full id, the short one, the host.
    let id = listed[0]["id"].as_str().unwrap();
    assert_eq!(id.len(), 64, "{listed:#}");
    assert_eq!(listed[0]["short_id"], &id[..8]);
    assert_eq!(listed[0]["host"], "test-host");
}

#[test]
fn missing_path_finishes_with_warnings_exit_3() {
    let sb = Sandbox::new();
    drop(make_sqlite(&sb.path("data/app.db"), 10));
    sb.config(&profile("online"));
    let run = sb.run(&["backup"]);
    run.assert_code(3);
    assert!(
        run.stderr.contains("data/etc does not exist"),
        "{}",
        run.stderr
    );
    assert_eq!(sb.snapshots().len(), 1, "the databases are still backed up");
}

#[test]
fn dry_run_prints_the_plan_and_runs_nothing() {
    let sb = Sandbox::new();
    drop(make_sqlite(&sb.path("data/app.db"), 10));
    sb.config(&profile("online"));
    let run = sb.run(&["backup", "--dry-run"]);
    run.assert_code(0);
    assert!(run.stdout.contains("--tag profile:app"), "{}", run.stdout);
    assert!(run.stdout.contains("app.sqlite3"), "{}", run.stdout);
    assert!(
        !sb.repo().exists(),
        "dry run must not create the repository"
    );
    assert!(
        !sb.path("state/staging").exists(),
        "dry run must not stage anything"
    );
}
