//! SQLite `method: incremental`: a base plus page deltas, every snapshot restorable alone and
//! bit-identical to what was backed up; the repository grows by the delta; new bases when the
//! index is lost, the database shrank or changed page size, or the deltas grew; tampering
//! found; writers' hold time recorded; `convert_to_wal`; the restore check's modes.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use rusqlite::Connection;

use crate::harness::Sandbox;

fn profile(extra: &str) -> String {
    format!(
        "profiles:
  app:
    repository: local
    host: test-host
    databases:
      - {{ name: app, type: sqlite, path: '{{dir}}/data/app.db', method: incremental{extra} }}
"
    )
}

/// A WAL database of `rows` rows of 200 random bytes, a log and a counter that every writer
/// transaction keeps equal (the consistency check of a copy taken under writes).
fn make_db(path: &Path, rows: i64) {
    let conn = Connection::open(path).unwrap();
    conn.pragma_update(None, "journal_mode", "WAL").unwrap();
    conn.execute_batch(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB NOT NULL);
         CREATE TABLE log (id INTEGER PRIMARY KEY, at INTEGER NOT NULL);
         CREATE TABLE counter (n INTEGER NOT NULL); INSERT INTO counter VALUES (0);",
    )
    .unwrap();
    conn.execute(
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < ?1)
         INSERT INTO t (v) SELECT randomblob(200) FROM c",
        [rows],
    )
    .unwrap();
}

/// Rewrites every `every`-th row of t: scattered page changes.
fn touch(path: &Path, every: i64, offset: i64) {
    let conn = Connection::open(path).unwrap();
    conn.execute(
        "UPDATE t SET v = randomblob(200) WHERE id % ?1 = ?2",
        [every, offset],
    )
    .unwrap();
}

/// Row count and a hash of every row of every table: equal content.
fn fingerprint(path: &Path) -> (i64, u64) {
    let conn = Connection::open(path).unwrap();
    let mut h = DefaultHasher::new();
    let mut n = 0;
    for table in ["t", "log", "counter"] {
        let mut stmt = conn
            .prepare(&format!("SELECT * FROM {table} ORDER BY rowid"))
            .unwrap();
        let cols = stmt.column_count();
        let mut rows = stmt.query([]).unwrap();
        while let Some(r) = rows.next().unwrap() {
            n += 1;
            for c in 0..cols {
                match r.get_ref(c).unwrap() {
                    rusqlite::types::ValueRef::Integer(i) => i.hash(&mut h),
                    rusqlite::types::ValueRef::Blob(b) => b.hash(&mut h),
                    other => format!("{other:?}").hash(&mut h),
                }
            }
        }
    }
    (n, h.finish())
}

fn integrity(path: &Path) -> String {
    let conn = Connection::open(path).unwrap();
    conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap()
}

/// The log and the counter agree: the copy is one consistent state of the database.
fn consistent(path: &Path) -> i64 {
    let conn = Connection::open(path).unwrap();
    let logged: i64 = conn
        .query_row("SELECT count(*) FROM log", [], |r| r.get(0))
        .unwrap();
    let counted: i64 = conn
        .query_row("SELECT n FROM counter", [], |r| r.get(0))
        .unwrap();
    assert_eq!(logged, counted, "{} is not consistent", path.display());
    counted
}

/// A writer committing a scattered update, a log row and the counter in one transaction
/// until stopped.
struct Writer {
    stop: Arc<AtomicBool>,
    commits: Arc<AtomicU64>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Writer {
    fn start(path: PathBuf, rows: i64, pause: Duration) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let commits = Arc::new(AtomicU64::new(0));
        let (s, c) = (stop.clone(), commits.clone());
        let handle = std::thread::spawn(move || {
            let conn = Connection::open(path).unwrap();
            conn.busy_timeout(Duration::from_secs(30)).unwrap();
            while !s.load(Ordering::SeqCst) {
                conn.execute_batch(&format!(
                    "BEGIN IMMEDIATE;
                     UPDATE t SET v = randomblob(200) WHERE id = abs(random()) % {rows} + 1;
                     INSERT INTO log (at) VALUES (unixepoch());
                     UPDATE counter SET n = n + 1;
                     COMMIT;"
                ))
                .unwrap();
                c.fetch_add(1, Ordering::SeqCst);
                std::thread::sleep(pause);
            }
        });
        Writer {
            stop,
            commits,
            handle: Some(handle),
        }
    }

    fn stop(mut self) -> u64 {
        self.stop.store(true, Ordering::SeqCst);
        self.handle.take().unwrap().join().unwrap();
        self.commits.load(Ordering::SeqCst)
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn snapshot_ids(sb: &Sandbox) -> Vec<String> {
    sb.snapshots()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect()
}

fn status(sb: &Sandbox) -> serde_json::Value {
    let text = std::fs::read_to_string(sb.path("state/status/app.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn chain_dir(sb: &Sandbox) -> PathBuf {
    sb.path("state/chains/app/app")
}

/// The chain's files (bases and deltas), sorted, with their sizes.
fn chain_files(sb: &Sandbox) -> Vec<(String, u64)> {
    let Ok(read) = std::fs::read_dir(chain_dir(sb)) else {
        return Vec::new();
    };
    let mut files: Vec<(String, u64)> = read
        .map(|e| e.unwrap())
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                e.metadata().unwrap().len(),
            )
        })
        .filter(|(n, _)| !n.starts_with('.'))
        .collect();
    files.sort();
    files
}

/// `restore --target` of one snapshot's database; returns the restored file.
fn restore_to(sb: &Sandbox, snapshot: &str, dir: &str) -> (PathBuf, String) {
    let target = sb.path(dir);
    let run = sb.run(&[
        "restore",
        "app",
        "--snapshot",
        snapshot,
        "--database",
        "app",
        "--target",
        target.to_str().unwrap(),
    ]);
    run.assert_code(0);
    (target.join("app.sqlite3"), run.stdout)
}

/// `restore --target` of the newest snapshot's database; returns the restored file.
fn restore_newest(sb: &Sandbox, dir: &str) -> (PathBuf, String) {
    let id = snapshot_ids(sb).pop().unwrap();
    restore_to(sb, &id, dir)
}

/// One `backup`, which must succeed and have copied the database (`copied`) or read it in
/// place.
fn backup_that(sb: &Sandbox, copied: bool) -> crate::harness::Run {
    let run = sb.run(&["backup", "app"]);
    run.assert_code(0);
    let (did, not) = if copied {
        ("online backup", "read in place")
    } else {
        (
            "read in place (one read transaction, no copy)",
            "online backup",
        )
    };
    assert!(
        run.stderr.contains(did) && !run.stderr.contains(not),
        "{}",
        run.stderr
    );
    run
}

#[test]
fn many_incremental_runs_under_a_writer_restore_bit_identical_and_grow_by_the_delta() {
    let sb = Sandbox::new();
    let db = sb.path("data/app.db");
    let rows = 30_000;
    make_db(&db, rows);
    // A long chain: no new base by share in this test.
    sb.config(&profile(", max_delta_share: 50"));
    let db_bytes = std::fs::metadata(&db).unwrap().len();

    let writer = Writer::start(db.clone(), rows, Duration::from_millis(50));
    let mut runs = 0;
    let mut deltas_seen = 0;
    for i in 0..6 {
        let before = chain_files(&sb).len();
        let run = sb.run(&["backup", "app"]);
        run.assert_code(0);
        runs += 1;
        let files = chain_files(&sb);
        if i == 0 {
            assert!(run.stderr.contains("new base"), "{}", run.stderr);
            continue;
        }
        // Each later run added one delta, restic reused the base and older deltas without
        // reading them, and the repository grew by about the delta.
        let deltas: Vec<&(String, u64)> = files
            .iter()
            .filter(|(n, _)| n.starts_with("delta-"))
            .collect();
        assert_eq!(files.len(), before + 1, "one new file per run: {files:?}");
        assert_eq!(deltas.len(), i, "{files:?}");
        deltas_seen = deltas.len();
        let newest = deltas.last().unwrap().1;
        let s = status(&sb);
        let backup = &s["jobs"]["backup"]["backup"];
        let added = backup["bytes_added"].as_u64().unwrap();
        let unmodified = backup["files_unmodified"].as_u64().unwrap();
        assert!(
            unmodified >= before as u64,
            "restic read an unchanged chain file again: {unmodified} unmodified, chain had {before}"
        );
        assert!(
            added <= newest + 64 * 1024,
            "run {i}: repository grew by {added} bytes for a delta of {newest}"
        );
        assert!(
            newest < db_bytes / 2,
            "delta {newest} of a {db_bytes}-byte database"
        );
        assert_eq!(
            backup["databases"][0]["chain_length"].as_u64(),
            Some(i as u64 + 1)
        );
    }
    let commits = writer.stop();
    assert!(commits > 0);
    assert_eq!(deltas_seen, 5);

    // Every snapshot restores alone: the hash proves it is the copy the backup checked, and
    // the copy is one consistent state of the database.
    let ids = snapshot_ids(&sb);
    assert_eq!(ids.len(), runs);
    let mut last_count = -1;
    for (i, id) in ids.iter().enumerate() {
        let (file, out) = restore_to(&sb, id, &format!("r{i}"));
        assert!(
            out.contains("hash ok (bit-identical to the backup), quick_check ok"),
            "{out}"
        );
        if i > 0 {
            assert!(out.contains(&format!("base + {i} delta")), "{out}");
        }
        assert_eq!(integrity(&file), "ok");
        let n = consistent(&file);
        assert!(
            n >= last_count,
            "snapshot {i} is older than the one before it"
        );
        last_count = n;
    }

    // Quiescent: the newest snapshot holds exactly what the live database holds.
    sb.run(&["backup", "app"]).assert_code(0);
    let (file, _) = restore_newest(&sb, "quiet");
    assert_eq!(fingerprint(&file), fingerprint(&db));
    // In place too: the live file replaced, the previous kept.
    std::fs::remove_file(&db).unwrap();
    let run = sb.run(&["restore", "app", "--database", "app"]);
    run.assert_code(0);
    assert_eq!(fingerprint(&sb.path("data/app.db")), fingerprint(&file));
}

#[test]
fn oldest_and_newest_snapshots_restore_after_the_ones_between_are_forgotten() {
    let sb = Sandbox::new();
    let db = sb.path("data/app.db");
    make_db(&db, 20_000);
    sb.config(&profile(", max_delta_share: 50"));
    let mut prints = Vec::new();
    for i in 0..5 {
        if i > 0 {
            touch(&db, 370, i);
        }
        prints.push(fingerprint(&db));
        sb.run(&["backup", "app"]).assert_code(0);
    }
    let ids = snapshot_ids(&sb);
    assert_eq!(ids.len(), 5);
    let out = sb.restic(&["forget", &ids[1], &ids[2], &ids[3], "--prune"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let (oldest, _) = restore_to(&sb, &ids[0], "oldest");
    assert_eq!(fingerprint(&oldest), prints[0]);
    let (newest, out) = restore_to(&sb, &ids[4], "newest");
    assert!(out.contains("base + 4 deltas"), "{out}");
    assert_eq!(fingerprint(&newest), prints[4]);
    sb.run(&["verify", "app", "--snapshot", &ids[0]])
        .assert_code(0);

    // The chain goes on after the prune, and forgetting the snapshot that brought the base
    // breaks nothing either.
    touch(&db, 410, 3);
    let after = fingerprint(&db);
    sb.run(&["backup", "app"]).assert_code(0);
    let out = sb.restic(&["forget", &ids[0], "--prune"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ids = snapshot_ids(&sb);
    assert_eq!(ids.len(), 2);
    let (n1, _) = restore_to(&sb, &ids[0], "n1");
    assert_eq!(fingerprint(&n1), prints[4]);
    let (n2, _) = restore_to(&sb, &ids[1], "n2");
    assert_eq!(fingerprint(&n2), after);
    let check = sb.restic(&["check", "--read-data"]);
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
}

#[test]
fn a_lost_or_mismatched_state_dir_takes_a_new_base_and_says_why() {
    let sb = Sandbox::new();
    let db = sb.path("data/app.db");
    make_db(&db, 10_000);
    sb.config(&profile(""));
    sb.run(&["backup", "app"]).assert_code(0);
    touch(&db, 400, 1);
    let run = sb.run(&["backup", "app"]);
    run.assert_code(0);
    assert!(run.stderr.contains("delta 1"), "{}", run.stderr);
    let mut prints = vec![fingerprint(&db)];

    // The page index lost, the chain still there.
    std::fs::remove_dir_all(sb.path("state/page-index")).unwrap();
    touch(&db, 400, 2);
    let run = sb.run(&["backup", "app"]);
    run.assert_code(0);
    assert!(run.stderr.contains("WARN"), "{}", run.stderr);
    assert!(
        run.stderr.contains("new base")
            && run
                .stderr
                .contains("is missing (the state directory was lost"),
        "{}",
        run.stderr
    );
    prints.push(fingerprint(&db));
    assert_eq!(
        chain_files(&sb)
            .iter()
            .filter(|(n, _)| n.starts_with("base-"))
            .count(),
        1,
        "the old chain is removed locally: {:?}",
        chain_files(&sb)
    );

    // A chain file changed behind resticpilot's back.
    touch(&db, 400, 3);
    sb.run(&["backup", "app"]).assert_code(0);
    let delta = chain_files(&sb)
        .into_iter()
        .find(|(n, _)| n.starts_with("delta-"))
        .unwrap()
        .0;
    let f = std::fs::OpenOptions::new()
        .append(true)
        .open(chain_dir(&sb).join(&delta))
        .unwrap();
    f.set_len(f.metadata().unwrap().len() + 1).unwrap();
    drop(f);
    sb.run(&["backup", "app"])
        .assert_code(0)
        .assert_stderr_has(&["new base", "changed since it was written"]);
    prints.push(fingerprint(&db));

    // The whole state directory lost (a new container): a new base, logged.
    std::fs::remove_dir_all(sb.path("state")).unwrap();
    touch(&db, 400, 4);
    sb.run(&["backup", "app"])
        .assert_code(0)
        .assert_stderr_has(&["new base", "new state directory"]);
    prints.push(fingerprint(&db));

    // Every snapshot still restores to what it held.
    let ids = snapshot_ids(&sb);
    assert_eq!(ids.len(), 6);
    for (id, print, dir) in [
        (&ids[1], prints[0], "a"),
        (&ids[2], prints[1], "b"),
        (&ids[4], prints[2], "c"),
        (&ids[5], prints[3], "d"),
    ] {
        let (file, _) = restore_to(&sb, id, dir);
        assert_eq!(fingerprint(&file), print, "snapshot {id}");
    }
}

#[test]
fn shrinking_a_new_page_size_an_old_base_or_big_deltas_take_a_new_base() {
    let sb = Sandbox::new();
    let db = sb.path("data/app.db");
    make_db(&db, 20_000);
    sb.config(&profile(""));
    sb.run(&["backup", "app"]).assert_code(0);
    let mut expect = Vec::new();

    // VACUUM after deleting half the rows: the file shrinks.
    let conn = Connection::open(&db).unwrap();
    conn.execute_batch("DELETE FROM t WHERE id % 2 = 0; VACUUM;")
        .unwrap();
    drop(conn);
    sb.run(&["backup", "app"])
        .assert_code(0)
        .assert_stderr_has(&["new base", "the database shrank from"]);
    expect.push(fingerprint(&db));

    // Another page size (only possible out of WAL mode).
    let conn = Connection::open(&db).unwrap();
    conn.execute_batch("PRAGMA journal_mode = DELETE; PRAGMA page_size = 8192; VACUUM;")
        .unwrap();
    drop(conn);
    sb.run(&["backup", "app"])
        .assert_code(0)
        .assert_stderr_has(&["the page size changed from 4096 to 8192 bytes"]);
    expect.push(fingerprint(&db));

    // Deltas past max_delta_share.
    sb.config(&profile(", max_delta_share: 0.05"));
    touch(&db, 3, 0);
    sb.run(&["backup", "app"])
        .assert_code(0)
        .assert_stderr_has(&["new base", "max_delta_share 0.05"]);
    expect.push(fingerprint(&db));

    // A base older than rebase_after (0: every run).
    sb.config(&profile(", rebase_after: 0"));
    touch(&db, 101, 0);
    sb.run(&["backup", "app"])
        .assert_code(0)
        .assert_stderr_has(&["new base", "rebase_after"]);
    expect.push(fingerprint(&db));

    let ids = snapshot_ids(&sb);
    for (i, print) in expect.iter().enumerate() {
        let (file, out) = restore_to(&sb, &ids[i + 1], &format!("s{i}"));
        assert!(
            out.contains("base + 0 deltas"),
            "a fresh base each time: {out}"
        );
        assert_eq!(fingerprint(&file), *print);
    }
}

/// How many `restic restore` calls a run's debug log shows.
fn restic_restores(stderr: &str) -> usize {
    stderr
        .lines()
        .filter(|l| l.contains("restic command=") && l.contains(" restore "))
        .count()
}

/// A one-database restore (and the drill of a profile with one incremental database) fetches
/// the chain in the same restic call as the manifest, into the destination's directory, and
/// leaves nothing there but the database; when the profile's
/// state directory moved since the backup (the chain is not where the profile predicts), the
/// chain is fetched by itself, as before, and the restore is just as exact.
#[test]
fn the_chain_comes_with_the_manifest_and_a_moved_state_dir_still_restores() {
    let sb = Sandbox::new();
    let db = sb.path("data/app.db");
    make_db(&db, 10_000);
    sb.config(&profile(""));
    sb.run(&["backup", "app"]).assert_code(0);
    touch(&db, 300, 2);
    let print = fingerprint(&db);
    sb.run(&["backup", "app"]).assert_code(0);

    // In place: one restic restore for the manifest and the chain.
    touch(&db, 7, 1);
    let run = sb.run(&["-v", "restore", "app", "--database", "app", "--force"]);
    run.assert_code(0);
    assert_eq!(restic_restores(&run.stderr), 1, "{}", run.stderr);
    assert!(run.stdout.contains("base + 1 delta"), "{}", run.stdout);
    assert_eq!(fingerprint(&db), print);
    let names = |dir: &Path| -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    let data = names(&sb.path("data"));
    assert!(
        data.iter()
            .all(|n| n.starts_with("app.db") && !n.contains("resticpilot")),
        "left in data/: {data:?}"
    );

    // Into an existing --target directory: the same, and only the copy is left there.
    std::fs::create_dir(sb.path("out")).unwrap();
    let out = sb.path("out");
    let run = sb.run(&[
        "-v",
        "restore",
        "app",
        "--database",
        "app",
        "--target",
        out.to_str().unwrap(),
    ]);
    run.assert_code(0);
    assert_eq!(restic_restores(&run.stderr), 1, "{}", run.stderr);
    assert_eq!(fingerprint(&out.join("app.sqlite3")), print);
    assert_eq!(names(&out), vec!["app.sqlite3".to_string()]);

    // The restore drill: the same one call, into its scratch space.
    let run = sb.run(&["-v", "verify", "app"]);
    run.assert_code(0);
    assert_eq!(restic_restores(&run.stderr), 1, "{}", run.stderr);
    assert!(run.stdout.contains("base + 1 delta"), "{}", run.stdout);

    // The state directory moved: the manifest is read first, then the chain fetched.
    let config = std::fs::read_to_string(sb.path("config.yaml"))
        .unwrap()
        .replace("/state\n", "/state-moved\n");
    assert!(config.contains("/state-moved\n"), "{config}");
    let moved = sb.write_config("moved.yaml", &config);
    std::fs::remove_file(&db).unwrap();
    let run = sb.run_with(&moved, &["-v", "restore", "app", "--database", "app"]);
    run.assert_code(0);
    assert_eq!(restic_restores(&run.stderr), 2, "{}", run.stderr);
    assert_eq!(fingerprint(&db), print);
}

/// A base and one delta of a 10,000-row database, then the newest snapshot's manifest put back
/// in staging (where a hand-made snapshot takes it from). Returns the sandbox, the live file,
/// the good snapshot and the manifest's path.
fn base_delta_and_manifest() -> (Sandbox, PathBuf, String, PathBuf) {
    let sb = Sandbox::new();
    let db = sb.path("data/app.db");
    make_db(&db, 10_000);
    sb.config(&profile(""));
    sb.run(&["backup", "app"]).assert_code(0);
    touch(&db, 400, 1);
    sb.run(&["backup", "app"]).assert_code(0);
    let good = snapshot_ids(&sb).pop().unwrap();
    let manifest = sb.path("state/staging/app/resticpilot-manifest.json");
    let out = sb.restic(&[
        "restore",
        &good,
        "--target",
        "/",
        "--include",
        manifest.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (sb, db, good, manifest)
}

/// A forced restore of the latest snapshot that must be refused: exit 1, stderr naming each of
/// `why`, the live file `db` as it was, and nothing left beside it.
fn forced_restore_refused(sb: &Sandbox, db: &Path, why: &[&str]) {
    let before = std::fs::read(db).unwrap();
    let run = sb.run(&["restore", "app", "--database", "app", "--force"]);
    run.assert_code(1);
    assert!(why.iter().all(|w| run.stderr.contains(w)), "{}", run.stderr);
    assert_eq!(std::fs::read(db).unwrap(), before, "live file untouched");
    assert!(
        left_beside_live(sb).is_empty(),
        "left behind: {:?}",
        left_beside_live(sb)
    );
}

/// What a failed restore left in the live file's directory besides the live file.
fn left_beside_live(sb: &Sandbox) -> Vec<String> {
    std::fs::read_dir(sb.path("data"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "app.db" && !n.starts_with("app.db-"))
        .collect()
}

#[test]
fn a_tampered_delta_fails_restore_and_verify_and_leaves_the_live_file_untouched() {
    let (sb, db, good, _) = base_delta_and_manifest();
    // A snapshot of the same chain whose delta differs in one byte of page data: its manifest
    // (from the good snapshot) and everything else as resticpilot wrote them.
    let staging = sb.path("state/staging/app");
    let delta = chain_dir(&sb).join(
        chain_files(&sb)
            .into_iter()
            .find(|(n, _)| n.starts_with("delta-"))
            .unwrap()
            .0,
    );
    let mut bytes = std::fs::read(&delta).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    std::fs::write(&delta, &bytes).unwrap();
    sb.snapshot_by_hand("app", &[&staging, &sb.path("state/chains/app")]);

    forced_restore_refused(&sb, &db, &["delta 1 of 1", "damaged or altered"]);

    let run = sb.run(&["verify", "app", "--json"]);
    run.assert_code(1);
    let report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    crate::harness::assert_output("verify", &report);
    assert_eq!(report["databases"][0]["result"], "failed");
    assert!(
        report["databases"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("damaged or altered"),
        "{report}"
    );
    // The good snapshot is still good.
    sb.run(&["verify", "app", "--snapshot", &good])
        .assert_code(0);
}

/// A snapshot whose chain holds a FIFO where the base should be (restic restores named pipes):
/// the restore writes the chain back while restic writes it, and must neither open the pipe
/// (reading one waits for a writer forever) nor use it; it fails naming the file, and the live
/// file stays as it was.
#[test]
fn a_fifo_in_place_of_the_base_fails_the_restore_without_hanging_it() {
    let (sb, db, _, _) = base_delta_and_manifest();
    let staging = sb.path("state/staging/app");
    let (base, _) = chain_files(&sb)
        .into_iter()
        .find(|(n, _)| n.starts_with("base-"))
        .unwrap();
    let base = chain_dir(&sb).join(base);
    std::fs::remove_file(&base).unwrap();
    nix::unistd::mkfifo(&base, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    sb.snapshot_by_hand("app", &[&staging, &sb.path("state/chains/app")]);

    forced_restore_refused(&sb, &db, &["is not a regular file"]);
}

/// A snapshot whose manifest and delta (hashes and all, as only a holder of the repository key
/// can write them) claim a database larger than the free space: a 48-byte delta with no page
/// could otherwise grow the restored file into a sparse giant that takes hours to hash. It is
/// refused before anything is written beside the live file, naming the size and the space.
#[test]
fn a_chain_claiming_more_than_the_free_space_is_refused_before_it_is_written() {
    let (sb, db, _, manifest_path) = base_delta_and_manifest();
    let staging = sb.path("state/staging/app");
    let mut manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&manifest_path).unwrap()).unwrap();
    let chain = &mut manifest["databases"][0]["incremental"];
    let page_size = chain["page_size"].as_u64().unwrap();
    // Past the free space by 2 GiB, in whole pages.
    let claimed = (crate::harness::free_bytes(&sb.path("data")) + (2 << 30)) / page_size + 1;
    let id = chain["id"].as_str().unwrap().to_string();
    let mut delta = Vec::new();
    delta.extend_from_slice(b"RPDELTA1");
    delta.extend_from_slice(&2u32.to_le_bytes());
    delta.extend_from_slice(&(page_size as u32).to_le_bytes());
    delta.extend_from_slice(&claimed.to_le_bytes());
    delta.extend_from_slice(&0u64.to_le_bytes());
    delta.extend_from_slice(&1u32.to_le_bytes());
    delta.extend_from_slice(&[0u8; 4]);
    for i in 0..8 {
        delta.push(u8::from_str_radix(&id[i * 2..i * 2 + 2], 16).unwrap());
    }
    let name = chain["deltas"][0]["name"].as_str().unwrap().to_string();
    std::fs::write(chain_dir(&sb).join(&name), &delta).unwrap();
    chain["page_count"] = claimed.into();
    chain["deltas"][0]["bytes"] = (delta.len() as u64).into();
    chain["deltas"][0]["pages"] = 0.into();
    chain["deltas"][0]["hash"] = format!("blake3:{}", blake3::hash(&delta).to_hex()).into();

    // The manifest's size of the database disagrees with its chain's.
    std::fs::write(&manifest_path, manifest.to_string()).unwrap();
    sb.snapshot_by_hand("app", &[&staging, &sb.path("state/chains/app")]);
    forced_restore_refused(&sb, &db, &["two different sizes"]);

    // Both agree on the giant.
    manifest["databases"][0]["bytes"] = (claimed * page_size).into();
    std::fs::write(&manifest_path, manifest.to_string()).unwrap();
    sb.snapshot_by_hand("app", &[&staging, &sb.path("state/chains/app")]);
    forced_restore_refused(
        &sb,
        &db,
        &["no space left in", "free there now", "its size at backup"],
    );
    // The drill refuses it the same way.
    let run = sb.run(&["verify", "app"]);
    run.assert_code(1);
    assert!(
        run.stdout.contains("no space left in") || run.stderr.contains("no space left in"),
        "{}{}",
        run.stdout,
        run.stderr
    );
}

#[test]
fn the_drill_reports_the_chain_length_and_restore_time() {
    let sb = Sandbox::new();
    let db = sb.path("data/app.db");
    make_db(&db, 5_000);
    sb.config(&profile(""));
    for i in 0..3 {
        touch(&db, 400, i);
        sb.run(&["backup", "app"]).assert_code(0);
    }
    let run = sb.run(&["verify", "app", "--json"]);
    run.assert_code(0);
    let report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    crate::harness::assert_output("verify", &report);
    let app = &report["databases"][0];
    assert_eq!(app["result"], "success");
    assert_eq!(app["chain_length"], 3);
    assert!(app["restore_seconds"].as_f64().unwrap() > 0.0, "{app}");
    assert!(report["restore_seconds"].as_f64().unwrap() > 0.0);
    let text = sb.run(&["verify", "app"]);
    text.assert_code(0);
    assert!(
        text.stdout.contains(
            "hash ok (bit-identical to the backup), quick_check ok; rebuilt from base + 2 deltas"
        ),
        "{}",
        text.stdout
    );
}

#[test]
fn writers_hold_time_is_logged_recorded_exported_and_warned_in_rollback_mode() {
    let sb = Sandbox::new();
    let rollback = sb.path("data/rollback.db");
    make_db(&rollback, 20_000);
    Connection::open(&rollback)
        .unwrap()
        .pragma_update(None, "journal_mode", "DELETE")
        .unwrap();
    make_db(&sb.path("data/wal.db"), 1_000);
    sb.config(
        "metrics_file: '{dir}/metrics.prom'
profiles:
  app:
    repository: local
    host: test-host
    databases:
      - { name: rollback, type: sqlite, path: '{dir}/data/rollback.db', writer_hold_limit: 0 }
      - { name: wal, type: sqlite, path: '{dir}/data/wal.db', method: incremental, writer_hold_limit: 0 }
",
    );
    let run = sb.run(&["backup", "app"]);
    run.assert_code(3);
    assert!(
        run.stderr
            .contains("journal mode delete: writers were held out"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("held its writers out for")
            && run.stderr.contains("convert_to_wal: true"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("journal mode wal: writers were not held out"),
        "{}",
        run.stderr
    );
    let s = status(&sb);
    let dbs = &s["jobs"]["backup"]["backup"]["databases"];
    assert!(
        dbs[0]["writers_held_seconds"].as_f64().unwrap() > 0.0,
        "{dbs}"
    );
    assert_eq!(dbs[1]["writers_held_seconds"].as_f64(), Some(0.0), "{dbs}");
    let warnings = s["jobs"]["backup"]["last_warnings"].as_array().unwrap();
    assert_eq!(
        warnings.len(),
        1,
        "only the rollback database warns: {warnings:?}"
    );
    let metrics = std::fs::read_to_string(sb.path("metrics.prom")).unwrap();
    assert!(
        metrics.contains(
            r#"resticpilot_database_writers_held_seconds{profile="app",database="wal",type="sqlite"} 0"#
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"resticpilot_database_writers_held_seconds{profile="app",database="rollback",type="sqlite"}"#),
        "{metrics}"
    );
}

#[test]
fn convert_to_wal_switches_a_rollback_database_once_and_its_application_keeps_writing() {
    let sb = Sandbox::new();
    let db = sb.path("data/app.db");
    make_db(&db, 2_000);
    Connection::open(&db)
        .unwrap()
        .pragma_update(None, "journal_mode", "DELETE")
        .unwrap();
    // The application: another process with the database open, idle between writes.
    let mut app = std::process::Command::new("sqlite3")
        .arg(&db)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("sqlite3 is installed by scripts/install-deps.sh");
    let mut stdin = app.stdin.take().unwrap();
    use std::io::Write;
    writeln!(stdin, ".timeout 10000\nINSERT INTO log (at) VALUES (1);").unwrap();
    stdin.flush().unwrap();
    sb.config(&profile(", convert_to_wal: true"));
    let run = sb.run(&["backup", "app"]);
    run.assert_code(0)
        .assert_stderr_has(&["switched", "to WAL"]);
    assert!(run.stderr.contains("journal mode wal"), "{}", run.stderr);
    let mode: String = Connection::open(&db)
        .unwrap()
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal", "the switch persists in the file");
    // The application's open connection writes on.
    writeln!(
        stdin,
        "INSERT INTO log (at) VALUES (2);\nSELECT 'n=' || count(*) FROM log;\n.quit"
    )
    .unwrap();
    drop(stdin);
    let out = app.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("n=2"), "{text}");
    // Once switched, nothing more to do.
    let run = sb.run(&["backup", "app"]);
    run.assert_code(0);
    assert!(!run.stderr.contains("switched"), "{}", run.stderr);
}

#[test]
fn restore_check_modes_and_a_sound_database_that_is_not_the_one_backed_up() {
    let sb = Sandbox::new();
    let db = sb.path("data/app.db");
    make_db(&db, 3_000);
    let online = |check: &str| {
        format!(
            "profiles:
  app:
    repository: local
    host: test-host
    databases:
      - {{ name: app, type: sqlite, path: '{{dir}}/data/app.db', restore_check: {check} }}
"
        )
    };
    sb.config(&online("quick"));
    sb.run(&["backup", "app"]).assert_code(0);
    let id = snapshot_ids(&sb).pop().unwrap();
    for (check, says) in [
        (
            "quick",
            "hash ok (bit-identical to the backup), quick_check ok, 3 tables",
        ),
        (
            "full",
            "hash ok (bit-identical to the backup), integrity_check ok, 3 tables",
        ),
        (
            "hash",
            "checked: hash ok (bit-identical to the backup), 3 tables",
        ),
    ] {
        sb.config(&online(check));
        let (file, out) = restore_to(&sb, &id, check);
        assert!(out.contains(says), "{check}: {out}");
        assert_eq!(fingerprint(&file), fingerprint(&db));
    }

    // Another sound database under the good manifest: integrity_check would pass it, the hash
    // does not.
    let staging = sb.path("state/staging/app");
    let out = sb.restic(&[
        "restore",
        &id,
        "--target",
        "/",
        "--include",
        staging.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let other = sb.path("other.db");
    make_db(&other, 3_000);
    let conn = Connection::open(&other).unwrap();
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
        .unwrap();
    drop(conn);
    std::fs::copy(&other, staging.join("app.sqlite3")).unwrap();
    sb.snapshot_by_hand("app", &[&staging]);
    let before = std::fs::read(&db).unwrap();
    let run = sb.run(&["restore", "app", "--database", "app", "--force"]);
    run.assert_code(1);
    assert!(
        run.stderr
            .contains("differs from the one recorded at backup"),
        "{}",
        run.stderr
    );
    assert_eq!(std::fs::read(&db).unwrap(), before);
}

/// A tracker's table: a counter per torrent, bumped by completions.
fn add_torrents(path: &Path, rows: i64) {
    let conn = Connection::open(path).unwrap();
    conn.execute_batch(&format!(
        "CREATE TABLE torrents (id INTEGER PRIMARY KEY, info_hash BLOB NOT NULL, completed INTEGER NOT NULL);
         WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < {rows})
         INSERT INTO torrents (info_hash, completed) SELECT randomblob(20), 100000 + abs(random() % 100000) FROM c;"
    ))
    .unwrap();
}

/// One completion on every `every`-th torrent: a few bytes of most pages change.
fn complete(path: &Path, every: i64, offset: i64) {
    Connection::open(path)
        .unwrap()
        .execute(
            "UPDATE torrents SET completed = completed + 1 WHERE id % ?1 = ?2",
            [every, offset],
        )
        .unwrap();
}

/// The newest delta's size.
fn newest_delta(sb: &Sandbox) -> u64 {
    chain_files(sb)
        .into_iter()
        .filter(|(n, _)| n.starts_with("delta-"))
        .max()
        .map(|(_, b)| b)
        .unwrap()
}

#[test]
fn scattered_counter_updates_store_the_changed_bytes_not_whole_pages() {
    let sb = Sandbox::new();
    let db = sb.path("data/app.db");
    make_db(&db, 100);
    add_torrents(&db, 60_000);
    sb.config(&profile(""));
    sb.run(&["backup", "app"]).assert_code(0);
    let db_bytes = std::fs::metadata(&db).unwrap().len();

    // Every 5th torrent completes once: nearly every page of the table changes by a few bytes.
    complete(&db, 5, 1);
    let run = sb.run(&["backup", "app"]);
    run.assert_code(0);
    assert!(run.stderr.contains("delta 1"), "{}", run.stderr);
    let delta = newest_delta(&sb);
    let added = status(&sb)["jobs"]["backup"]["backup"]["bytes_added"]
        .as_u64()
        .unwrap();
    assert!(
        delta * 20 < db_bytes,
        "a delta of {delta} bytes for a few changed bytes per page of a {db_bytes}-byte database"
    );
    assert!(
        added * 10 < db_bytes,
        "the repository grew by {added} bytes ({db_bytes}-byte database)"
    );
    assert!(
        sb.path("state/page-index/app/app.previous").is_file(),
        "the copy is kept to diff the next one against"
    );
    // Bit-identical after a second delta too.
    complete(&db, 7, 3);
    sb.run(&["backup", "app"]).assert_code(0);
    let (file, out) = restore_newest(&sb, "r");
    assert!(
        out.contains("hash ok (bit-identical to the backup)"),
        "{out}"
    );
    assert!(out.contains("base + 2 deltas"), "{out}");
    assert_eq!(fingerprint(&file), fingerprint(&db));
}

#[test]
fn a_lost_or_altered_previous_copy_stores_whole_pages_says_so_and_restores_bit_identical() {
    let sb = Sandbox::new();
    let db = sb.path("data/app.db");
    make_db(&db, 100);
    add_torrents(&db, 40_000);
    sb.config(&profile(", max_delta_share: 50"));
    sb.run(&["backup", "app"]).assert_code(0);
    complete(&db, 5, 1);
    sb.run(&["backup", "app"]).assert_code(0);
    let small = newest_delta(&sb);
    let previous = sb.path("state/page-index/app/app.previous");

    // Lost: this delta holds whole pages, logged; the next one is small again.
    std::fs::remove_file(&previous).unwrap();
    complete(&db, 5, 2);
    let run = sb.run(&["backup", "app"]);
    run.assert_code(0);
    assert!(
        run.stderr.contains("WARN")
            && run.stderr.contains("previous copy")
            && run.stderr.contains("is missing")
            && run.stderr.contains("stores its changed pages whole"),
        "{}",
        run.stderr
    );
    let whole = newest_delta(&sb);
    assert!(whole > small * 5, "whole pages {whole} vs ranges {small}");
    complete(&db, 5, 3);
    sb.run(&["backup", "app"]).assert_code(0);
    assert!(newest_delta(&sb) < whole / 5);

    // Changed behind resticpilot's back (its time or size differ): not used, logged.
    std::fs::OpenOptions::new()
        .append(true)
        .open(&previous)
        .unwrap()
        .set_len(std::fs::metadata(&previous).unwrap().len() + 4096)
        .unwrap();
    complete(&db, 5, 4);
    let run = sb.run(&["backup", "app"]);
    run.assert_code(0);
    assert!(
        run.stderr.contains("does not match the page index"),
        "{}",
        run.stderr
    );

    // Altered with its size and time kept: the pages that no longer hash to the index are
    // stored whole, logged.
    complete(&db, 5, 0);
    sb.run(&["backup", "app"]).assert_code(0);
    let meta = std::fs::metadata(&previous).unwrap();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&previous)
        .unwrap();
    use std::os::unix::fs::FileExt;
    for page in 2..40u64 {
        f.write_all_at(&[0xA5; 512], page * 4096 + 1000).unwrap();
    }
    f.set_modified(meta.modified().unwrap()).unwrap();
    drop(f);
    complete(&db, 3, 1);
    let run = sb.run(&["backup", "app"]);
    run.assert_code(0);
    assert!(
        run.stderr
            .contains("differ in the previous copy from the page index"),
        "{}",
        run.stderr
    );

    // Every snapshot restores to the database it held.
    complete(&db, 3, 2);
    sb.run(&["backup", "app"]).assert_code(0);
    let ids = snapshot_ids(&sb);
    for (i, id) in ids.iter().enumerate() {
        let (_, out) = restore_to(&sb, id, &format!("s{i}"));
        assert!(
            out.contains("hash ok (bit-identical to the backup)"),
            "{out}"
        );
    }
    let (file, _) = restore_to(&sb, ids.last().unwrap(), "last");
    assert_eq!(fingerprint(&file), fingerprint(&db));
}

fn inode(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).unwrap().ino()
}

/// Every one of the `count` snapshots restores with its hash and `quick_check`, passes
/// `integrity_check` and is one consistent state, each no older than the one before; the
/// newest is the live database `db` (the writer stopped) and, byte for byte, its `previous`
/// copy.
fn restore_all_in_order(sb: &Sandbox, count: usize, db: &Path, previous: &Path) {
    let ids = snapshot_ids(sb);
    assert_eq!(ids.len(), count);
    let mut last_count = -1;
    let mut last = PathBuf::new();
    for (i, id) in ids.iter().enumerate() {
        let (file, out) = restore_to(sb, id, &format!("r{i}"));
        assert!(
            out.contains("hash ok (bit-identical to the backup), quick_check ok"),
            "{out}"
        );
        assert_eq!(integrity(&file), "ok");
        let n = consistent(&file);
        assert!(n >= last_count, "snapshot {i} is older than the one before");
        last_count = n;
        last = file;
    }
    assert_eq!(fingerprint(&last), fingerprint(db));
    assert!(
        std::fs::read(previous).unwrap() == std::fs::read(&last).unwrap(),
        "the previous copy is not the database the last run stored"
    );
}

/// Breaks the cell count of the first table leaf page of `bytes` (pages of 4096 bytes, from
/// the second) for which `keep` holds: the schema still reads, `quick_check` does not pass.
fn break_a_leaf(bytes: &mut [u8], keep: impl Fn(usize) -> bool) {
    let page = 4096;
    let leaf = (2..bytes.len() / page)
        .find(|&p| bytes[p * page] == 0x0D && keep(p))
        .expect("a table leaf page");
    bytes[leaf * page + 3] = 0xFF;
    bytes[leaf * page + 4] = 0xFF;
}

/// Runs after the first two of a WAL database read it in place, inside one read transaction
/// of the live file: no copy as large as the database is written (the previous copy kept to
/// diff against is brought up to date where it lies, same inode), a writer keeps committing,
/// and every snapshot restores bit-identical to one consistent state of the database.
/// `read_live: false` copies every run.
#[test]
fn later_runs_read_a_wal_database_in_place_and_write_no_copy_of_it() {
    let sb = Sandbox::new();
    let db = sb.path("data/app.db");
    let rows = 30_000;
    make_db(&db, rows);
    sb.config(&profile(", max_delta_share: 50"));
    let previous = sb.path("state/page-index/app/app.previous");
    // The base, then a delta whose copy is kept as the previous copy.
    for every in [7, 11] {
        backup_that(&sb, true);
        touch(&db, every, 1);
    }
    let kept = inode(&previous);

    let writer = Writer::start(db.clone(), rows, Duration::from_millis(5));
    for _ in 0..3 {
        backup_that(&sb, false);
        assert_eq!(
            inode(&previous),
            kept,
            "the previous copy was replaced by a new copy of the database"
        );
        assert!(!chain_dir(&sb).join(".copy.partial").exists());
    }
    assert!(writer.stop() > 0);
    sb.run(&["backup", "app"]).assert_code(0);

    restore_all_in_order(&sb, 6, &db, &previous);

    // read_live: false copies every run.
    sb.config(&profile(", max_delta_share: 50, read_live: false"));
    touch(&db, 13, 2);
    backup_that(&sb, true);
    assert_ne!(inode(&previous), kept);
}

/// What a run of a rollback-journal database says it did: "under the read lock" for a pass
/// read in place, "online backup" for a copy.
fn rollback_run(sb: &Sandbox, copied: bool) -> crate::harness::Run {
    let run = sb.run(&["backup", "app"]);
    run.assert_code(0);
    let (did, not) = if copied {
        ("online backup", "under the read lock")
    } else {
        ("read in place under the read lock", "online backup")
    };
    assert!(
        run.stderr.contains(did) && !run.stderr.contains(not),
        "{}",
        run.stderr
    );
    run
}

/// A rollback-journal database with its first two runs (the base, then a delta whose copy is
/// kept as the previous copy) done; the previous copy's path.
fn rollback_chain(sb: &Sandbox, db: &Path) -> PathBuf {
    make_db(db, 30_000);
    Connection::open(db)
        .unwrap()
        .pragma_update(None, "journal_mode", "DELETE")
        .unwrap();
    sb.config(&profile(", max_delta_share: 50"));
    for every in [7, 11] {
        rollback_run(sb, true);
        touch(db, every, 1);
    }
    sb.path("state/page-index/app/app.previous")
}

/// In rollback-journal mode, where writers wait for whatever holds the read lock, the runs
/// after the first two read the pages in place under the lock instead of copying the database
/// under it (the lock is held for the page pass, which writes only the changed pages into the
/// previous copy), and the check runs after the lock is released, on that previous copy. A
/// writer keeps committing; every snapshot restores bit-identical to one consistent state; the
/// hold is recorded; `read_live: false` copies.
#[test]
fn rollback_mode_later_runs_read_in_place_under_the_read_lock_and_check_after_it() {
    let sb = Sandbox::new();
    let db = sb.path("data/app.db");
    let previous = rollback_chain(&sb, &db);
    let kept = inode(&previous);

    let writer = Writer::start(db.clone(), 30_000, Duration::from_millis(5));
    for _ in 0..3 {
        let run = rollback_run(&sb, false);
        assert!(
            run.stderr
                .contains("journal mode delete: writers were held out"),
            "{}",
            run.stderr
        );
        assert_eq!(
            inode(&previous),
            kept,
            "the previous copy was replaced by a new copy of the database"
        );
        assert!(!chain_dir(&sb).join(".copy.partial").exists());
        let held = status(&sb)["jobs"]["backup"]["backup"]["databases"][0]["writers_held_seconds"]
            .as_f64();
        assert!(held.is_some_and(|h| h > 0.0), "hold not recorded: {held:?}");
    }
    assert!(writer.stop() > 0);
    touch(&db, 13, 2);
    rollback_run(&sb, false);

    restore_all_in_order(&sb, 6, &db, &previous);

    sb.config(&profile(", max_delta_share: 50, read_live: false"));
    touch(&db, 17, 3);
    rollback_run(&sb, true);
    assert_ne!(inode(&previous), kept);
    let (file, _) = restore_newest(&sb, "copied");
    assert_eq!(fingerprint(&file), fingerprint(&db));
}

/// The check after the lock runs on the previous copy, so that copy must be exactly what the
/// pass read: one whose bytes changed where the page index says nothing did (its size, time
/// and inode kept, as silent damage leaves them) is caught by its hash, and the run copies the
/// database instead, saying why; the snapshot is the live database's. A damaged live database
/// fails the run, naming the check and the live database, and stores nothing.
#[test]
fn rollback_mode_a_previous_copy_that_differs_is_not_checked_in_place_of_the_live_database() {
    let sb = Sandbox::new();
    let db = sb.path("data/app.db");
    let previous = rollback_chain(&sb, &db);
    touch(&db, 13, 2);

    // Damage a page of the previous copy that the live database did not change: its leaf's
    // cell count, restoring the file's modification time.
    let mut bytes = std::fs::read(&previous).unwrap();
    let live = std::fs::read(&db).unwrap();
    let same = bytes.clone();
    break_a_leaf(&mut bytes, |p| {
        same[p * 4096..(p + 1) * 4096] == live[p * 4096..(p + 1) * 4096]
    });
    let mtime = std::fs::metadata(&previous).unwrap().modified().unwrap();
    std::fs::write(&previous, &bytes).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&previous)
        .unwrap()
        .set_modified(mtime)
        .unwrap();

    let run = rollback_run(&sb, true);
    run.assert_stderr_has(&["hashes to", "not to the pages read", "copying the database"]);
    let (file, out) = restore_newest(&sb, "after");
    assert!(out.contains("quick_check ok"), "{out}");
    assert_eq!(fingerprint(&file), fingerprint(&db));

    // The next run reads in place again (the copy was kept as the previous copy); a damaged
    // live database then fails it.
    touch(&db, 17, 3);
    rollback_run(&sb, false);
    a_broken_leaf_fails_the_run_and_stores_nothing(&sb, &db);
}

/// Breaks a table leaf of the live database `db` (its file holding every page: no WAL), then
/// the backup must fail naming `quick_check` on the live database, with no new snapshot and
/// the chain and its index as they were.
fn a_broken_leaf_fails_the_run_and_stores_nothing(sb: &Sandbox, db: &Path) {
    let before = chain_files(sb);
    let index = std::fs::read(sb.path("state/page-index/app/app.json")).unwrap();
    let snapshots = snapshot_ids(sb).len();
    let mut bytes = std::fs::read(db).unwrap();
    break_a_leaf(&mut bytes, |_| true);
    std::fs::write(db, &bytes).unwrap();
    let run = sb.run(&["backup", "app"]);
    run.assert_code(1);
    assert!(
        run.stderr.contains("quick_check") && run.stderr.contains("on the live database"),
        "{}",
        run.stderr
    );
    assert_eq!(snapshot_ids(sb).len(), snapshots);
    assert_eq!(chain_files(sb), before);
    assert_eq!(
        std::fs::read(sb.path("state/page-index/app/app.json")).unwrap(),
        index
    );
}

/// A live database that fails its check when read in place fails the run: no snapshot, the
/// chain and its index as they were, the error naming the check and the live database.
#[test]
fn a_damaged_live_database_read_in_place_fails_the_run_and_stores_nothing() {
    let sb = Sandbox::new();
    let db = sb.path("data/app.db");
    make_db(&db, 20_000);
    sb.config(&profile(""));
    sb.run(&["backup", "app"]).assert_code(0);
    touch(&db, 7, 1);
    sb.run(&["backup", "app"]).assert_code(0);

    // Fold the WAL into the file, then break a table leaf page's cell count: the schema
    // still reads, quick_check does not pass.
    Connection::open(&db)
        .unwrap()
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    a_broken_leaf_fails_the_run_and_stores_nothing(&sb, &db);
}

/// A run read in place that finds a new base due (the deltas would pass `max_delta_share`)
/// copies the database for the base in the same run, without a word about the previous copy
/// it has just brought up to date; the snapshot restores bit-identical, and the runs after it
/// go back to reading in place.
#[test]
fn a_new_base_found_due_while_reading_in_place_is_copied_in_the_same_run() {
    let sb = Sandbox::new();
    let db = sb.path("data/app.db");
    make_db(&db, 20_000);
    sb.config(&profile(", max_delta_share: 50"));
    for every in [7, 11, 13] {
        sb.run(&["backup", "app"]).assert_code(0);
        touch(&db, every, 1);
    }
    sb.config(&profile(", max_delta_share: 0.05"));
    touch(&db, 2, 0);
    let run = sb.run(&["backup", "app"]);
    run.assert_code(0);
    run.assert_stderr_has(&[
        "a new base is due (the deltas would add up to",
        "copying the database for it",
        "instead of a delta",
        "max_delta_share 0.05",
    ]);
    assert!(
        !run.stderr.contains("previous copy")
            && !run.stderr.contains("stores its changed pages whole"),
        "{}",
        run.stderr
    );
    let (file, out) = restore_newest(&sb, "rebased");
    assert!(out.contains("base + 0 deltas"), "{out}");
    assert_eq!(fingerprint(&file), fingerprint(&db));

    sb.config(&profile(", max_delta_share: 50"));
    for (every, copied) in [(17, true), (19, false)] {
        touch(&db, every, 1);
        let run = backup_that(&sb, copied);
        assert!(!run.stderr.contains("WARN"), "{}", run.stderr);
    }
    let (file, _) = restore_newest(&sb, "after");
    assert_eq!(fingerprint(&file), fingerprint(&db));
}

/// In rollback-journal mode a page pass under the read lock that gives way to a copy (here a
/// new base falls due once the pass has measured the delta) held writers out for both: the
/// warning names both, and the hold is recorded.
#[test]
fn rollback_mode_a_pass_that_gives_way_to_a_copy_warns_of_both_holds() {
    let sb = Sandbox::new();
    let db = sb.path("data/app.db");
    rollback_chain(&sb, &db);
    touch(&db, 13, 2);
    sb.config(&profile(", max_delta_share: 0.0001, writer_hold_limit: 0"));
    let run = sb.run(&["backup", "app"]);
    run.assert_code(3);
    run.assert_stderr_has(&[
        "a new base is due",
        "held its writers out for",
        "during the page pass and the copy after it",
    ]);
    assert!(!run.stderr.contains("during the copy,"), "{}", run.stderr);
    let s = status(&sb);
    let held = s["jobs"]["backup"]["backup"]["databases"][0]["writers_held_seconds"]
        .as_f64()
        .unwrap();
    assert!(held > 0.0, "{s}");
}

/// In rollback-journal mode a run whose previous copy is unusable (here a run killed during
/// its page pass left it changed) copies without a page pass: its hold warning names the copy
/// alone.
#[test]
fn rollback_mode_a_copy_without_a_pass_warns_of_the_copy_alone() {
    let sb = Sandbox::new();
    let db = sb.path("data/app.db");
    let previous = rollback_chain(&sb, &db);
    touch(&db, 13, 2);
    // What a killed pass leaves: some changed pages written into the previous copy.
    let mut bytes = std::fs::read(&previous).unwrap();
    bytes[4096 * 3 + 200] ^= 0xff;
    std::fs::write(&previous, &bytes).unwrap();
    sb.config(&profile(", max_delta_share: 50, writer_hold_limit: 0"));
    let run = sb.run(&["backup", "app"]);
    run.assert_code(3);
    run.assert_stderr_has(&["does not match the page index", "held its writers out for"]);
    assert!(run.stderr.contains("during the copy,"), "{}", run.stderr);
    assert!(
        !run.stderr.contains("page pass and the copy"),
        "{}",
        run.stderr
    );
    let (file, _) = restore_newest(&sb, "after");
    assert_eq!(fingerprint(&file), fingerprint(&db));
}
