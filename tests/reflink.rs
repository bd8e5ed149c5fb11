//! `method: reflink`: a copy-on-write clone under a read lock on a filesystem that can clone
//! (a real XFS image, loop-mounted for the test run), and the fallback to the online backup,
//! with a warning, where it cannot (this machine's own filesystem, or another filesystem than
//! the staging directory's).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use crate::harness::{Run, Sandbox, make_sqlite, require, spawn_watchdog};

/// A directory on a filesystem that clones: `$RESTICPILOT_TEST_REFLINK_DIR` when set (for a
/// developer without root), else an XFS image made with reflink and loop-mounted for this test
/// run. A watchdog unmounts and removes it when the test process ends, however it ends.
fn reflink_fs() -> &'static Path {
    /// The directory, and the watchdog that unmounts it (`None` for a given directory).
    static FS: OnceLock<(PathBuf, Option<std::process::Child>)> = OnceLock::new();
    &FS.get_or_init(|| {
        if let Some(dir) = std::env::var_os("RESTICPILOT_TEST_REFLINK_DIR") {
            return (PathBuf::from(dir), None);
        }
        let mkfs = require("mkfs.xfs");
        let dir = tempfile::Builder::new()
            .prefix("rp-xfs-")
            .tempdir_in("/tmp")
            .unwrap()
            .keep();
        let image = dir.join("xfs.img");
        let mount_point = dir.join("mnt");
        std::fs::create_dir(&mount_point).unwrap();
        // Sparse: only what the tests write takes disk space.
        std::fs::File::create(&image)
            .unwrap()
            .set_len(512 << 20)
            .unwrap();
        let out = Command::new(mkfs)
            .args(["-q", "-m", "reflink=1"])
            .arg(&image)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "mkfs.xfs failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = Command::new("mount")
            .args(["-o", "loop"])
            .arg(&image)
            .arg(&mount_point)
            .output()
            .unwrap();
        if !out.status.success() {
            let _ = std::fs::remove_dir_all(&dir);
            panic!(
                "cannot loop-mount an XFS image ({}): the reflink tests need root and loop \
                 devices, or RESTICPILOT_TEST_REFLINK_DIR set to a directory on XFS (reflink=1) or btrfs",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        let script = format!(
            "while kill -0 {parent} 2>/dev/null; do sleep 0.5; done; umount {mnt} && rm -rf {dir}",
            parent = std::process::id(),
            mnt = mount_point.display(),
            dir = dir.display()
        );
        let watchdog = spawn_watchdog(&script);
        (mount_point, Some(watchdog))
    })
    .0
}

/// A fresh directory on the reflink filesystem for one test.
fn reflink_dir(sb: &Sandbox) -> PathBuf {
    let name = sb.dir.path().file_name().unwrap();
    let dir = reflink_fs().join(name);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn profile(db: &Path, staging: Option<&Path>) -> String {
    let staging = staging
        .map(|s| format!("    staging_dir: {}\n", s.display()))
        .unwrap_or_default();
    format!(
        "profiles:
  app:
    repository: local
    host: test-host
{staging}    databases:
      - {{ name: app, type: sqlite, path: {}, method: reflink }}
",
        db.display()
    )
}

/// A database with `rows` rows in `t`, in `mode` (`wal` or `delete`).
fn database(path: &Path, rows: i64, mode: &str) {
    let conn = make_sqlite(path, rows);
    conn.pragma_update(None, "journal_mode", mode).unwrap();
}

/// Commits one row at a time until stopped. The WAL is never checkpointed by the writer, so in
/// WAL mode every row it commits lives only in the `-wal` file.
struct Writer {
    stop: Arc<AtomicBool>,
    last: Arc<AtomicI64>,
    handle: std::thread::JoinHandle<()>,
}

impl Writer {
    fn start(path: &Path) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let last = Arc::new(AtomicI64::new(0));
        let (s, l, path) = (stop.clone(), last.clone(), path.to_path_buf());
        let handle = std::thread::spawn(move || {
            let conn = rusqlite::Connection::open(path).unwrap();
            conn.busy_timeout(Duration::from_secs(60)).unwrap();
            conn.pragma_update(None, "wal_autocheckpoint", 0).unwrap();
            while !s.load(Ordering::SeqCst) {
                conn.execute("INSERT INTO t (payload) VALUES (randomblob(200))", [])
                    .unwrap();
                l.store(conn.last_insert_rowid(), Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(2));
            }
        });
        let w = Writer { stop, last, handle };
        while w.last() == 0 {
            std::thread::sleep(Duration::from_millis(5));
        }
        w
    }

    fn last(&self) -> i64 {
        self.last.load(Ordering::SeqCst)
    }

    fn stop(self) -> i64 {
        self.stop.store(true, Ordering::SeqCst);
        let last = self.last.clone();
        self.handle.join().unwrap();
        last.load(Ordering::SeqCst)
    }
}

/// Restores the latest snapshot with plain restic and opens the staged copy and manifest.
fn restored(sb: &Sandbox, staging: &Path) -> (rusqlite::Connection, serde_json::Value) {
    let dir = sb.restic_restore_latest("restored");
    let at = |file: &str| dir.join(staging.strip_prefix("/").unwrap()).join(file);
    let manifest =
        serde_json::from_str(&std::fs::read_to_string(at("resticpilot-manifest.json")).unwrap())
            .unwrap();
    let conn = rusqlite::Connection::open(at("app.sqlite3")).unwrap();
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    (conn, manifest)
}

/// The files in a staging directory, its marker aside.
fn files_in(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != ".resticpilot-staging")
        .collect()
}

fn count_up_to(conn: &rusqlite::Connection, id: i64) -> i64 {
    conn.query_row("SELECT count(*) FROM t WHERE id <= ?1", [id], |r| r.get(0))
        .unwrap()
}

/// Backs up `mode`'s database on the reflink filesystem while a writer commits, and checks the
/// snapshot's copy: a clone (no fallback), whole, with every row committed before the run.
fn clone_under_a_live_writer(mode: &str) -> Run {
    let sb = Sandbox::new();
    let dir = reflink_dir(&sb);
    let db = dir.join("app.db");
    let staging = dir.join("staging");
    database(&db, 20_000, mode);
    sb.config(&profile(&db, Some(&staging)));

    let writer = Writer::start(&db);
    std::thread::sleep(Duration::from_millis(200));
    let before = writer.last();
    let run = sb.run(&["backup", "app"]);
    let after = writer.stop();
    run.assert_code(0);
    assert!(
        !run.stderr.contains("falling back"),
        "the clone was taken, not a copy: {}",
        run.stderr
    );
    assert!(run.stderr.contains("cloned "), "{}", run.stderr);

    let (copy, manifest) = restored(&sb, &staging);
    let method = manifest["databases"][0]["method"].as_str().unwrap();
    assert!(method.starts_with("reflink (read lock held "), "{method}");
    assert_eq!(
        count_up_to(&copy, before),
        before,
        "every row committed before the run is in the copy"
    );
    let max: i64 = copy
        .query_row("SELECT max(id) FROM t", [], |r| r.get(0))
        .unwrap();
    assert!(max <= after, "no row from after the run ({max} > {after})");
    assert!(
        files_in(&staging).is_empty(),
        "staging emptied, no -wal or -shm left: {:?}",
        files_in(&staging)
    );
    run
}

#[test]
fn reflink_clones_a_rollback_journal_database_under_a_live_writer() {
    clone_under_a_live_writer("delete");
}

#[test]
fn reflink_clones_a_wal_database_with_its_wal_under_a_live_writer() {
    // The writer never checkpoints: every row it committed is only in the -wal file, so the
    // rows found in the copy prove the WAL was cloned and folded in.
    let run = clone_under_a_live_writer("wal");
    assert!(run.stderr.contains("with its WAL"), "{}", run.stderr);
}

#[test]
fn reflink_falls_back_to_the_online_backup_where_the_filesystem_cannot_clone() {
    // The sandbox lives on this machine's own filesystem (ext4 here: no clones).
    let sb = Sandbox::new();
    let db = sb.path("data/app.db");
    database(&db, 5_000, "delete");
    sb.config(&profile(&db, None));
    let writer = Writer::start(&db);
    let before = writer.last();
    let run = sb.run(&["backup", "app"]);
    writer.stop();
    run.assert_code(0);
    assert!(
        run.stderr.contains("WARN")
            && run.stderr.contains("reflink is not possible")
            && run.stderr.contains("falling back to the online backup"),
        "{}",
        run.stderr
    );
    let (copy, manifest) = restored(&sb, &sb.path("state/staging/app"));
    let method = manifest["databases"][0]["method"].as_str().unwrap();
    assert!(
        method.starts_with("online backup (one step); reflink not possible: "),
        "{method}"
    );
    assert_eq!(count_up_to(&copy, before), before);
}

#[test]
fn reflink_with_staging_on_another_filesystem_says_so_and_falls_back() {
    let sb = Sandbox::new();
    let db = reflink_dir(&sb).join("app.db");
    database(&db, 1_000, "wal");
    // Staging stays under the sandbox's state dir: not the database's filesystem.
    sb.config(&profile(&db, None));
    let run = sb.run(&["backup", "app"]);
    run.assert_code(0);
    assert!(
        run.stderr
            .contains("is on another filesystem than the database")
            && run.stderr.contains("set staging_dir"),
        "{}",
        run.stderr
    );
    let (copy, _) = restored(&sb, &sb.path("state/staging/app"));
    assert_eq!(count_up_to(&copy, 1_000), 1_000);
}
