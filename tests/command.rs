//! `type: command` sources with a real program: the sqlite3 shell's `.dump` as the dump, the
//! sqlite3 shell reading SQL on its stdin as the restore, grep as the verify. And how a dump
//! command fails: non-zero exit, killed by a signal, empty output, a failed verify, each
//! before restic with no snapshot made.

use crate::harness::{Sandbox, make_sqlite, require};

/// A profile whose one source is a command source with `keys` (YAML flow-mapping entries).
fn profile(keys: &str) -> String {
    format!(
        "profiles:
  app:
    repository: local
    host: test-host
    databases:
      - {{ name: app, type: command, extension: sql, {keys} }}
"
    )
}

fn rows(path: &std::path::Path) -> i64 {
    rusqlite::Connection::open(path)
        .unwrap()
        .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
        .unwrap()
}

#[test]
fn a_command_dump_is_backed_up_verified_restored_and_drilled() {
    require("sqlite3");
    let sb = Sandbox::new();
    drop(make_sqlite(&sb.path("data/app.db"), 500));
    sb.config(&profile(
        r#"dump: "sqlite3 {dir}/data/app.db .dump", restore: "sqlite3 {dir}/data/restored.db", verify: "tail -n 1 \"$1\" | grep -qx 'COMMIT;'""#,
    ));
    sb.run(&["validate"]).assert_code(0);
    let run = sb.run(&["backup", "app"]);
    run.assert_code(0);
    assert_eq!(sb.snapshots().len(), 1, "{}", run.all());

    let drill = sb.run(&["verify", "app"]);
    drill.assert_code(0);
    assert!(
        drill.all().contains("the verify command passed"),
        "{}",
        drill.all()
    );

    let restore = sb.run(&["restore", "app", "--database", "app"]);
    restore.assert_code(0);
    assert!(restore.stdout.contains("(command)"), "{}", restore.all());
    assert_eq!(rows(&sb.path("data/restored.db")), 500);
}

/// A dump of another size than its manifest records (here padded with comment lines the verify
/// command and the restore would take) is not the one backed up: refused before the restore
/// command sees it.
#[test]
fn a_dump_of_another_size_than_its_manifest_records_is_not_restored() {
    require("sqlite3");
    let sb = Sandbox::new();
    drop(make_sqlite(&sb.path("data/app.db"), 50));
    sb.config(&profile(
        r#"dump: "sqlite3 {dir}/data/app.db .dump", restore: "sqlite3 {dir}/data/restored.db", verify: "tail -n 1 \"$1\" | grep -qx 'COMMIT;'""#,
    ));
    sb.run(&["backup", "app"]).assert_code(0);
    let restored = sb.restic_restore_latest("restored");
    let staging = sb.restored_dump(&restored, "app", "");
    let dump = staging.join("app.sql");
    let text = std::fs::read_to_string(&dump).unwrap();
    std::fs::write(&dump, format!("{}{text}", "-- padding\n".repeat(10_000))).unwrap();
    sb.snapshot_by_hand("app", &[&staging]);

    let run = sb.run(&["restore", "app", "--database", "app"]);
    run.assert_code(1);
    assert!(
        run.stderr.contains("bytes its manifest records"),
        "{}",
        run.all()
    );
    assert!(
        !sb.path("data/restored.db").exists(),
        "the restore command ran"
    );
    let drill = sb.run(&["verify", "app"]);
    drill.assert_code(1);
    assert!(
        drill.all().contains("bytes its manifest records"),
        "{}",
        drill.all()
    );
}

/// Runs a backup of a command source with `keys`; asserts it failed with exit 1, made no
/// snapshot, and said `expected`.
#[track_caller]
fn fails_before_restic(keys: &str, expected: &str) {
    let sb = Sandbox::new();
    sb.config(&profile(keys));
    let run = sb.run(&["backup", "app"]);
    run.assert_code(1);
    assert!(run.stderr.contains(expected), "{}", run.all());
    assert!(sb.snapshots().is_empty(), "no snapshot of a failed dump");
    assert!(
        sb.staging_files("app").is_empty(),
        "{:?}",
        sb.staging_files("app")
    );
}

#[test]
fn a_failing_dump_command_fails_the_run_with_its_stderr_tail() {
    fails_before_restic(
        r#"dump: "echo partial; echo 'cannot reach the server' >&2; exit 3", restore: "cat""#,
        "cannot reach the server",
    );
}

#[test]
fn a_dump_command_killed_by_a_signal_fails_the_run() {
    // `$$` is the config's escape of `$`: the shell gets `$$`, its own pid.
    fails_before_restic(
        r#"dump: "echo partial; kill -KILL $$$$", restore: "cat""#,
        "SIGKILL",
    );
}

#[test]
fn an_empty_dump_fails_the_run() {
    fails_before_restic(
        r#"dump: "true", restore: "cat""#,
        "the dump command wrote nothing",
    );
}

#[test]
fn a_failed_verify_fails_the_run() {
    fails_before_restic(
        r#"dump: "echo data", restore: "cat", verify: "echo 'not a dump' >&2; exit 1""#,
        "not a dump",
    );
}

#[test]
fn a_command_source_needs_its_commands() {
    let sb = Sandbox::new();
    sb.config(&profile(r#"dump: "echo x""#));
    let run = sb.run(&["validate"]);
    run.assert_code(2);
    assert!(
        run.stderr.contains("type command needs `restore`"),
        "{}",
        run.stderr
    );
}
