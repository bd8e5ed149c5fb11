//! A full disk is named: which place filled (the staging directory, the live database's
//! directory on restore, the local repository), how much was needed when known, and what to
//! change. Each test mounts its own size-limited tmpfs (root needed: CI runs as root; without
//! it the tests fail loudly rather than skip) and unmounts it when it ends, however it ends.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::harness::{Sandbox, is_root, make_sqlite, spawn_watchdog};

/// A tmpfs of `size` mounted inside the sandbox, mode 0700; unmounted on drop, and by a
/// watchdog if the test process dies first.
struct SmallFs {
    dir: PathBuf,
    _watchdog: std::process::Child,
}

impl SmallFs {
    fn mount(sb: &Sandbox, name: &str, size: &str) -> SmallFs {
        assert!(
            is_root(),
            "the disk-full tests mount a size-limited tmpfs and need root (CI runs as root)"
        );
        let dir = sb.path(name);
        std::fs::create_dir(&dir).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0700")])
            .arg("tmpfs")
            .arg(&dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "cannot mount a tmpfs on {}: {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let watchdog = spawn_watchdog(&format!(
            "while kill -0 {} 2>/dev/null; do sleep 0.5; done; umount -l '{}'",
            std::process::id(),
            dir.display()
        ));
        SmallFs {
            dir,
            _watchdog: watchdog,
        }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

/// A database of about 2 MB of random (incompressible) rows, in one file; returns its size
/// as resticpilot prints sizes.
fn two_megabytes(path: &Path) -> String {
    let conn = make_sqlite(path, 8000);
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE); PRAGMA journal_mode = DELETE")
        .unwrap();
    drop(conn);
    resticpilot::units::human_bytes(std::fs::metadata(path).unwrap().len())
}

fn profile(db: &Path, staging: Option<&Path>) -> String {
    let staging = staging
        .map(|s| format!("    staging_dir: '{}'\n", s.display()))
        .unwrap_or_default();
    format!(
        "profiles:
  app:
    repository: local
    host: test-host
{staging}    databases:
      - {{ name: app, type: sqlite, path: '{}' }}
",
        db.display()
    )
}

#[test]
fn a_full_staging_disk_names_staging_the_size_needed_and_the_key() {
    let sb = Sandbox::new();
    let fs = SmallFs::mount(&sb, "small", "1m");
    let db = sb.path("data/app.db");
    let size = two_megabytes(&db);
    let staging = fs.path("staging");
    sb.config(&profile(&db, Some(&staging)));

    let run = sb.run(&["backup", "app"]);
    run.assert_code(1);
    let err = &run.stderr;
    assert!(
        err.contains(&format!(
            "the staging directory {} ran out of space",
            staging.display()
        )),
        "{err}"
    );
    assert!(err.contains("database or disk is full"), "{err}");
    assert!(
        err.contains(&format!(
            "the copy needs about {size} (the size of {}",
            db.display()
        )),
        "{err}"
    );
    assert!(err.contains("set staging_dir"), "{err}");
    assert!(sb.snapshots().is_empty());
    let left: Vec<_> = std::fs::read_dir(&staging)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n != ".resticpilot-staging")
        .collect();
    assert!(left.is_empty(), "partial dump removed: {left:?}");
}

#[test]
fn a_full_disk_under_the_live_database_on_restore_is_named_and_the_live_file_kept() {
    restore_onto_a_full_disk("");
}

/// The same with `method: incremental`, whose one-database restore fetches the chain with the
/// manifest into the live database's directory: restic's "There were N errors" is read for
/// what they were, and the full disk is named just the same.
#[test]
fn a_full_disk_under_an_incremental_database_on_restore_is_named_and_the_live_file_kept() {
    restore_onto_a_full_disk(", method: incremental");
}

/// A restore of a ~2 MB database (SQLite keys `extra`) onto a tmpfs with 1.3 MB free: the
/// error names the place, the size and the way out; the live file stays, and nothing is left
/// beside it.
fn restore_onto_a_full_disk(extra: &str) {
    let sb = Sandbox::new();
    let fs = SmallFs::mount(&sb, "small", "3m");
    // Made elsewhere (SQLite needs room for its WAL), then copied in: 1.3 MB stay free.
    let size = two_megabytes(&sb.path("data/made.db"));
    let db = fs.path("app.db");
    std::fs::copy(sb.path("data/made.db"), &db).unwrap();
    sb.config(&profile(&db, None).replace("' }", &format!("'{extra} }}")));
    sb.run(&["backup", "app"]).assert_code(0);
    let before = std::fs::read(&db).unwrap();

    let run = sb.run(&["restore", "app", "--database", "app"]);
    run.assert_code(1);
    let err = &run.stderr;
    assert!(
        err.contains(&format!(
            "no space left in {} for the restored copy",
            fs.dir.display()
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!("it needs {size} (its size at backup)")),
        "{err}"
    );
    assert!(err.contains("--target DIR"), "{err}");
    assert_eq!(std::fs::read(&db).unwrap(), before, "live file untouched");
    let names: Vec<String> = std::fs::read_dir(&fs.dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["app.db"], "no temporary copy left");
}

#[test]
fn a_full_local_repository_is_named_with_its_key() {
    let sb = Sandbox::new();
    let fs = SmallFs::mount(&sb, "small", "1m");
    let db = sb.path("data/app.db");
    let size = two_megabytes(&db);
    let repo = fs.path("repo");
    sb.write_config(
        "config.yaml",
        &format!(
            "state_dir: {{dir}}/state\nrepositories:\n  local:\n    url: {}\n    password_file: {{dir}}/restic-password\n    init: true\n{}",
            repo.display(),
            profile(&db, None)
        ),
    );

    let run = sb.run(&["backup", "app"]);
    run.assert_code(1);
    let err = &run.stderr;
    assert!(
        err.contains(&format!(
            "the disk of repository local ({}) is full",
            repo.display()
        )),
        "{err}"
    );
    assert!(err.contains("repositories.local.url"), "{err}");
    assert!(err.contains(&format!("this run had up to {size}")), "{err}");
}
