//! `restore`: databases back in place (checked first, the previous kept), under another name,
//! files under a target or in place; refusals that leave the live data untouched.

use std::path::Path;

use crate::harness::{Sandbox, make_sqlite};
use crate::mariadb::{MariaDb, server};

const SQLITE_PROFILE: &str = "profiles:
  app:
    repository: local
    host: test-host
    databases:
      - { name: app, type: sqlite, path: '{dir}/data/app.db' }
    paths: ['{dir}/data/etc']
";

fn sqlite_sandbox(rows: i64) -> Sandbox {
    let sb = Sandbox::new();
    drop(make_sqlite(&sb.path("data/app.db"), rows));
    std::fs::create_dir(sb.path("data/etc")).unwrap();
    std::fs::write(sb.path("data/etc/app.toml"), "answer = 42\n").unwrap();
    std::fs::write(sb.path("data/etc/keys.toml"), "key = 'k1'\n").unwrap();
    sb.config(SQLITE_PROFILE);
    sb.run(&["backup", "app"]).assert_code(0);
    sb
}

fn count(db: &Path, sql: &str) -> i64 {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.query_row(sql, [], |r| r.get(0)).unwrap()
}

fn integrity(db: &Path) -> String {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap()
}

fn pre_restore_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".pre-restore-"))
        .collect();
    names.sort();
    names
}

#[test]
fn deleted_sqlite_database_comes_back_intact_with_all_rows() {
    let sb = sqlite_sandbox(5000);
    let db = sb.path("data/app.db");
    std::fs::remove_file(&db).unwrap();

    let run = sb.run(&["restore", "app", "--database", "app"]);
    run.assert_code(0);
    assert_eq!(integrity(&db), "ok");
    assert_eq!(count(&db, "SELECT count(*) FROM t"), 5000);
    assert_eq!(
        count(&db, "SELECT count(*) FROM meta WHERE k = 'schema'"),
        1
    );
    assert!(
        run.stdout.contains("database app (sqlite)") && run.stdout.contains("restore done"),
        "{}",
        run.stdout
    );
    // Nothing left behind: no temporary file, no pre-restore copy of a file that wasn't there.
    let names: Vec<String> = std::fs::read_dir(sb.path("data"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.iter().all(|n| n == "app.db" || n == "etc"),
        "{names:?}"
    );
}

#[test]
fn restore_over_an_idle_database_keeps_the_previous_one_with_its_wal() {
    let sb = sqlite_sandbox(100);
    let db = sb.path("data/app.db");
    // Changes since the backup, left in the WAL (no checkpoint): they belong to the old file.
    {
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.pragma_update(None, "wal_autocheckpoint", 0).unwrap();
        conn.execute("DELETE FROM t WHERE id > 10", []).unwrap();
        // Closing checkpoints and deletes the WAL; put it back, as a crashed application
        // would have left it.
        let wal = std::fs::read(sb.path("data/app.db-wal")).unwrap();
        drop(conn);
        std::fs::write(sb.path("data/app.db-wal"), wal).unwrap();
    }
    assert!(sb.path("data/app.db-wal").exists());

    sb.run(&["restore", "app", "--database", "app"])
        .assert_code(0);
    assert_eq!(count(&db, "SELECT count(*) FROM t"), 100);
    assert!(
        !sb.path("data/app.db-wal").exists(),
        "the old WAL must not sit beside the restored file"
    );
    let kept = pre_restore_files(&sb.path("data"));
    assert_eq!(kept.len(), 2, "{kept:?}");
    assert!(kept[0].starts_with("app.db.pre-restore-") && kept[1].ends_with("-wal"));
    // The previous database, opened with its WAL, is the state from just before the restore.
    let previous = sb.path("data").join(&kept[0]);
    assert_eq!(count(&previous, "SELECT count(*) FROM t"), 10);
}

#[test]
fn live_database_with_a_writer_attached_is_refused_and_untouched() {
    let sb = sqlite_sandbox(100);
    let db = sb.path("data/app.db");
    let writer = rusqlite::Connection::open(&db).unwrap();
    writer
        .execute("INSERT INTO t (payload) VALUES (x'01')", [])
        .unwrap();
    let rows_before = count(&db, "SELECT count(*) FROM t");
    let inode_before = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&db).unwrap());

    let run = sb.run(&["restore", "app", "--database", "app"]);
    run.assert_code(1);
    assert!(run.stderr.contains("in use"), "{}", run.stderr);
    assert!(
        run.stderr.contains(&format!("pid {} ", std::process::id())),
        "names the process: {}",
        run.stderr
    );
    assert!(run.stderr.contains("--force"), "{}", run.stderr);
    // The writer still works on the same, untouched file.
    writer
        .execute("INSERT INTO t (payload) VALUES (x'02')", [])
        .unwrap();
    assert_eq!(count(&db, "SELECT count(*) FROM t"), rows_before + 1);
    assert_eq!(
        std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&db).unwrap()),
        inode_before
    );
    assert!(pre_restore_files(&sb.path("data")).is_empty());
    assert!(
        std::fs::read_dir(sb.path("data")).unwrap().all(|e| !e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .contains(".restore-")),
        "no temporary file left"
    );

    // --force replaces it and says who was using it; the old file keeps the writer's rows.
    let run = sb.run(&["restore", "app", "--database", "app", "--force"]);
    run.assert_code(3);
    assert!(run.stdout.contains("was in use"), "{}", run.stdout);
    drop(writer);
    assert_eq!(count(&db, "SELECT count(*) FROM t"), 100);
    let kept = pre_restore_files(&sb.path("data"));
    let previous = sb.path("data").join(&kept[0]);
    assert_eq!(count(&previous, "SELECT count(*) FROM t"), rows_before + 1);
}

/// Backs up, as profile `app` on `test-host`, a staging-like directory whose SQLite copy is
/// damaged: what a backup of a corrupted copy would leave in the repository.
pub fn snapshot_with_a_corrupt_copy(sb: &Sandbox) {
    let staging = sb.path("fake-staging/app");
    std::fs::create_dir_all(&staging).unwrap();
    let good = sb.path("good-copy.db");
    let conn = make_sqlite(&good, 3000);
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE); PRAGMA journal_mode = DELETE")
        .unwrap();
    drop(conn);
    let mut bytes = std::fs::read(&good).unwrap();
    // Scribble over the middle of a b-tree page of table t.
    let page = 4096;
    for b in &mut bytes[5 * page + 64..5 * page + 900] {
        *b = 0xA5;
    }
    std::fs::write(staging.join("app.sqlite3"), &bytes).unwrap();
    let manifest = serde_json::json!({
        "resticpilot": "test",
        "profile": "app",
        "host": "test-host",
        "created": "2026-11-22T23:00:00Z",
        "staging_dir": staging,
        "databases": [{"name": "app", "type": "sqlite", "file": "app.sqlite3",
                       "bytes": bytes.len(), "duration": 0.1, "source": "x",
                       "method": "online backup", "tables": ["meta", "t"]}]
    });
    std::fs::write(
        staging.join("resticpilot-manifest.json"),
        manifest.to_string(),
    )
    .unwrap();
    sb.snapshot_by_hand("app", &[&staging, &sb.path("data/etc")]);
}

#[test]
fn corrupt_copy_in_the_snapshot_fails_restore_and_leaves_the_live_file_untouched() {
    let sb = sqlite_sandbox(100);
    snapshot_with_a_corrupt_copy(&sb);
    let db = sb.path("data/app.db");
    let before = std::fs::read(&db).unwrap();

    let run = sb.run(&["restore", "app", "--database", "app"]);
    run.assert_code(1);
    assert!(run.stderr.contains("is damaged"), "{}", run.stderr);
    assert!(
        run.stderr.contains("integrity_check") || run.stderr.contains("malformed"),
        "{}",
        run.stderr
    );
    assert_eq!(std::fs::read(&db).unwrap(), before, "live file untouched");
    assert!(pre_restore_files(&sb.path("data")).is_empty());
    let leftovers: Vec<String> = std::fs::read_dir(sb.path("data"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");

    // The good, older snapshot still restores when named.
    let first = sb.snapshots()[0]["short_id"].as_str().unwrap().to_string();
    std::fs::remove_file(&db).unwrap();
    sb.run(&["restore", "app", "--database", "app", "--snapshot", &first])
        .assert_code(0);
    assert_eq!(count(&db, "SELECT count(*) FROM t"), 100);
}

#[test]
fn files_go_under_the_target_with_restics_layout() {
    let sb = sqlite_sandbox(10);
    let target = sb.path("restored");
    let run = sb.run(&["restore", "app", "--target", target.to_str().unwrap()]);
    run.assert_code(0);
    let etc = target.join(sb.path("data/etc").strip_prefix("/").unwrap());
    assert_eq!(
        std::fs::read_to_string(etc.join("app.toml")).unwrap(),
        "answer = 42\n"
    );
    assert!(etc.join("keys.toml").exists());
    assert!(run.stdout.contains("2 files"), "{}", run.stdout);
    // Only the profile's files: the dumps are restored with --database.
    let staging = target.join(sb.path("state/staging").strip_prefix("/").unwrap());
    assert!(!staging.exists());

    // With --database too, the checked database copy goes into the target, nothing live moves.
    let live = std::fs::read(sb.path("data/app.db")).unwrap();
    let target2 = sb.path("restored2");
    sb.run(&[
        "restore",
        "app",
        "--target",
        target2.to_str().unwrap(),
        "--database",
        "app",
    ])
    .assert_code(0);
    assert_eq!(integrity(&target2.join("app.sqlite3")), "ok");
    assert_eq!(
        count(&target2.join("app.sqlite3"), "SELECT count(*) FROM t"),
        10
    );
    assert_eq!(std::fs::read(sb.path("data/app.db")).unwrap(), live);
}

#[test]
fn files_in_place_need_force_and_say_what_they_overwrote() {
    let sb = sqlite_sandbox(10);
    std::fs::write(sb.path("data/etc/app.toml"), "answer = 0\n").unwrap();
    std::fs::remove_file(sb.path("data/etc/keys.toml")).unwrap();
    std::fs::write(sb.path("data/etc/new.toml"), "mine\n").unwrap();

    let run = sb.run(&["restore", "app", "--in-place"]);
    run.assert_code(2);
    assert!(run.stderr.contains("--force"), "{}", run.stderr);
    assert_eq!(
        std::fs::read_to_string(sb.path("data/etc/app.toml")).unwrap(),
        "answer = 0\n"
    );

    let dry = sb.run(&["restore", "app", "--in-place", "--dry-run"]);
    dry.assert_code(0);
    assert!(
        dry.stdout
            .contains(&sb.path("data/etc/app.toml").display().to_string()),
        "{}",
        dry.stdout
    );
    assert_eq!(
        std::fs::read_to_string(sb.path("data/etc/app.toml")).unwrap(),
        "answer = 0\n"
    );

    let run = sb.run(&["restore", "app", "--in-place", "--force"]);
    run.assert_code(0);
    assert!(
        run.stdout.contains(&format!(
            "overwrote {}",
            sb.path("data/etc/app.toml").display()
        )),
        "{}",
        run.stdout
    );
    assert!(
        !run.stdout.contains(&format!(
            "overwrote {}",
            sb.path("data/etc/keys.toml").display()
        )),
        "a file that was not there is not reported as overwritten: {}",
        run.stdout
    );
    assert!(
        run.stdout.contains("1 existing file overwritten"),
        "{}",
        run.stdout
    );
    assert_eq!(
        std::fs::read_to_string(sb.path("data/etc/app.toml")).unwrap(),
        "answer = 42\n"
    );
    assert!(
        sb.path("data/etc/keys.toml").exists(),
        "missing file restored"
    );
    assert_eq!(
        std::fs::read_to_string(sb.path("data/etc/new.toml")).unwrap(),
        "mine\n",
        "files the snapshot doesn't have are left alone"
    );
}

#[test]
fn unknown_database_name_exits_2_listing_the_known_ones() {
    let sb = Sandbox::new();
    drop(make_sqlite(&sb.path("data/app.db"), 10));
    sb.config(
        "profiles:
  app:
    repository: local
    databases:
      - { name: app, type: sqlite, path: '{dir}/data/app.db' }
      - { name: cache, type: sqlite, path: '{dir}/data/cache.db' }
",
    );
    let run = sb.run(&["restore", "app", "--database", "tracker"]);
    run.assert_code(2);
    assert!(
        run.stderr
            .contains("profile app has no database named \"tracker\" (known: app, cache)"),
        "{}",
        run.stderr
    );
    assert!(!sb.repo().exists(), "nothing ran");
    let run = sb.run(&["restore", "app"]);
    run.assert_code(2);
    assert!(run.stderr.contains("say what to restore"), "{}", run.stderr);
}

#[test]
fn unknown_snapshot_is_a_usage_error_and_dry_run_changes_nothing() {
    let sb = sqlite_sandbox(10);
    let run = sb.run(&[
        "restore",
        "app",
        "--database",
        "app",
        "--snapshot",
        "deadbeef",
    ]);
    run.assert_code(2);
    assert!(
        run.stderr.contains("no snapshot \"deadbeef\""),
        "{}",
        run.stderr
    );

    std::fs::remove_file(sb.path("data/app.db")).unwrap();
    let run = sb.run(&["restore", "app", "--database", "all", "--dry-run"]);
    run.assert_code(0);
    assert!(run.stdout.contains("dry run"), "{}", run.stdout);
    assert!(
        run.stdout
            .contains(&format!("-> {}", sb.path("data/app.db").display())),
        "{}",
        run.stdout
    );
    assert!(!sb.path("data/app.db").exists());
}

#[test]
fn on_a_new_host_the_error_says_where_the_snapshots_are() {
    let sb = sqlite_sandbox(10);
    sb.config(&SQLITE_PROFILE.replace("host: test-host", "host: new-box"));
    let run = sb.run(&["restore", "app", "--database", "app"]);
    run.assert_code(1);
    assert!(
        run.stderr.contains("no snapshots on host new-box")
            && run.stderr.contains("1 snapshot on host test-host")
            && run.stderr.contains("set `host:`"),
        "{}",
        run.stderr
    );
}

// --- MariaDB ---

fn mysql_profile(db: &MariaDb, database: &str) -> String {
    format!(
        "profiles:
  shop:
    repository: local
    host: test-host
    databases:
      - name: main
        type: mysql
        host: 127.0.0.1
        port: {port}
        user: backup
        password_file: '{{dir}}/db-password'
        restore_user: restorer
        restore_password_file: '{{dir}}/restore-password'
        databases: [{database}]
",
        port = db.port
    )
}

/// A MariaDB database with tables, a trigger and data, backed up by profile `shop`.
pub fn mysql_sandbox(db: &MariaDb, prefix: &str) -> (Sandbox, String) {
    let name = db.fresh_database(prefix);
    db.sql(&format!(
        "USE `{name}`;
         CREATE TABLE customers (id INT PRIMARY KEY AUTO_INCREMENT, name VARCHAR(100)) ENGINE=InnoDB;
         CREATE TABLE orders (id INT PRIMARY KEY AUTO_INCREMENT, customer INT, total DECIMAL(10,2)) ENGINE=InnoDB;
         CREATE TABLE audit (id INT PRIMARY KEY AUTO_INCREMENT, note VARCHAR(200)) ENGINE=InnoDB;
         CREATE TRIGGER orders_audit AFTER INSERT ON orders FOR EACH ROW
           INSERT INTO audit (note) VALUES (CONCAT('order ', NEW.id));
         INSERT INTO customers (name) VALUES ('ann'), ('bob'), ('Zoë');
         INSERT INTO orders (customer, total) VALUES (1, 9.99), (2, 100.00), (1, 0.01);"
    ));
    db.backup_user("backup", "dump-pass-1");
    restore_user(db);
    let sb = Sandbox::new();
    std::fs::write(sb.path("db-password"), "dump-pass-1\n").unwrap();
    std::fs::write(sb.path("restore-password"), "Restore-Pass-9\n").unwrap();
    sb.config(&mysql_profile(db, &name));
    sb.run(&["backup", "shop"]).assert_code(0);
    (sb, name)
}

/// An account that can load dumps (the backup account cannot).
pub fn restore_user(db: &MariaDb) {
    db.sql(
        "CREATE USER IF NOT EXISTS 'restorer'@'127.0.0.1' IDENTIFIED BY 'Restore-Pass-9';
         GRANT ALL PRIVILEGES ON *.* TO 'restorer'@'127.0.0.1';",
    );
}

fn checksums(db: &MariaDb, name: &str) -> String {
    db.sql(&format!(
        "CHECKSUM TABLE `{name}`.customers, `{name}`.orders, `{name}`.audit EXTENDED"
    ))
    .replace(name, "DB")
}

fn triggers(db: &MariaDb, name: &str) -> String {
    db.sql(&format!(
        "SELECT trigger_name FROM information_schema.triggers WHERE trigger_schema = '{name}'"
    ))
    .trim()
    .to_string()
}

#[test]
fn dropped_mariadb_table_comes_back_with_its_trigger() {
    let db = server();
    let (sb, name) = mysql_sandbox(db, "rs_drop");
    let before = checksums(db, &name);
    db.sql(&format!("DROP TABLE `{name}`.orders"));
    assert_eq!(triggers(db, &name), "", "the trigger went with its table");

    // The database still has tables: restoring over it needs --force.
    let run = sb.run(&["restore", "shop", "--database", "main"]);
    run.assert_code(1);
    assert!(run.stderr.contains("not empty"), "{}", run.stderr);
    assert!(run.stderr.contains("--force"), "{}", run.stderr);

    let run = sb.run(&["restore", "shop", "--database", "main", "--force"]);
    run.assert_code(0);
    assert!(
        !run.all().contains("Restore-Pass-9") && !run.all().contains("dump-pass-1"),
        "password leaked: {}",
        run.all()
    );
    assert!(
        run.stdout.contains("3 tables, as in the dump"),
        "{}",
        run.stdout
    );
    assert_eq!(checksums(db, &name), before);
    assert_eq!(triggers(db, &name), "orders_audit");
    db.sql(&format!(
        "INSERT INTO `{name}`.orders (customer, total) VALUES (3, 1.00)"
    ));
    assert_eq!(
        db.sql(&format!("SELECT COUNT(*) FROM `{name}`.audit"))
            .trim(),
        "4",
        "the restored trigger fires"
    );
    // What was there before was dumped first.
    let kept: Vec<_> = std::fs::read_dir(sb.path("state/pre-restore/shop"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    let text = std::fs::read_to_string(&kept[0]).unwrap();
    assert!(text.contains("CREATE TABLE `customers`"));
    assert!(
        !text.contains("CREATE TABLE `orders`"),
        "orders was dropped then"
    );
    assert!(
        run.stdout.contains(&kept[0].display().to_string()),
        "{}",
        run.stdout
    );
}

#[test]
fn restore_into_another_database_name_leaves_the_original_alone() {
    let db = server();
    let (sb, name) = mysql_sandbox(db, "rs_into");
    let before = checksums(db, &name);
    db.sql(&format!(
        "DELETE FROM `{name}`.customers WHERE name = 'bob'"
    ));
    let copy = format!("{name}_copy");

    let run = sb.run(&["restore", "shop", "--database", "main", "--into", &copy]);
    run.assert_code(0);
    assert!(
        run.stdout.contains(&format!("{copy} (from {name})")),
        "{}",
        run.stdout
    );
    assert_eq!(checksums(db, &copy), before);
    assert_eq!(triggers(db, &copy), "orders_audit");
    assert_eq!(
        db.sql(&format!("SELECT COUNT(*) FROM `{name}`.customers"))
            .trim(),
        "2",
        "the original keeps its current rows"
    );
    // Again into the same name: now it's not empty.
    sb.run(&["restore", "shop", "--database", "main", "--into", &copy])
        .assert_code(1);
    // --into is for one MySQL database.
    let run = sb.run(&[
        "restore",
        "shop",
        "--database",
        "main",
        "--into",
        "bad name",
    ]);
    run.assert_code(2);
    db.sql(&format!("DROP DATABASE `{copy}`"));
}

/// The compose example mounts the application's data read-only into the backup service: a
/// SQLite restore there says to use the restore override file, before it fetches anything,
/// and the live file stays as it was.
#[test]
fn sqlite_restore_into_a_read_only_mount_names_the_override_file_first() {
    use std::process::Command;
    assert!(
        crate::harness::is_root(),
        "this test bind-mounts a directory read-only and needs root (CI runs as root)"
    );
    let sb = sqlite_sandbox(100);
    let data = sb.path("data");
    let mount = |args: &[&str]| {
        let out = Command::new("mount")
            .args(args)
            .arg(&data)
            .arg(&data)
            .output()
            .unwrap();
        assert!(out.status.success(), "mount {args:?}: {out:?}");
    };
    mount(&["--bind"]);
    // Unmounted when the test ends, and by a watchdog if the test process dies first.
    struct Unmount(std::path::PathBuf, #[allow(dead_code)] std::process::Child);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(
        data.clone(),
        crate::harness::spawn_watchdog(&format!(
            "while kill -0 {} 2>/dev/null; do sleep 0.5; done; umount -l '{}'",
            std::process::id(),
            data.display()
        )),
    );
    mount(&["-o", "remount,ro,bind"]);
    let before = std::fs::read(data.join("app.db")).unwrap();

    let run = sb.run(&["-v", "restore", "app", "--database", "app"]);
    run.assert_code(1);
    assert!(
        run.stderr.contains("is on a read-only filesystem")
            && run.stderr.contains("compose.restore.yaml")
            && run.stderr.contains("--target DIR"),
        "{}",
        run.stderr
    );
    // Refused before any data was fetched: restic read the manifest, never the copy (a
    // `restic restore` may fetch the manifest alone).
    let restic_lines: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.contains("restic command="))
        .collect();
    let manifest_only = |l: &str| {
        l.split(" --include ").skip(1).all(|i| {
            i.split(' ')
                .next()
                .unwrap()
                .ends_with("/resticpilot-manifest.json")
        }) && l.contains(" --include ")
    };
    assert!(
        restic_lines
            .iter()
            .all(|l| (!l.contains(" restore ") || manifest_only(l)) && !l.contains("app.sqlite3")),
        "{}",
        run.stderr
    );
    assert_eq!(std::fs::read(data.join("app.db")).unwrap(), before);
}

/// `--target DIR --database NAME` restores that database only; the files come with `--files`
/// (or with `--target` alone).
#[test]
fn target_with_a_database_restores_the_database_only_unless_files_are_asked_for() {
    let sb = sqlite_sandbox(50);
    let only = sb.path("only-db");
    sb.run(&[
        "restore",
        "app",
        "--target",
        only.to_str().unwrap(),
        "--database",
        "app",
    ])
    .assert_code(0);
    let names: Vec<String> = std::fs::read_dir(&only)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        ["app.sqlite3"],
        "the database's copy and nothing else"
    );
    assert_eq!(
        count(&only.join("app.sqlite3"), "SELECT count(*) FROM t"),
        50
    );

    let both = sb.path("both");
    let run = sb.run(&[
        "restore",
        "app",
        "--target",
        both.to_str().unwrap(),
        "--database",
        "app",
        "--files",
    ]);
    run.assert_code(0);
    assert!(both.join("app.sqlite3").exists());
    let restored_etc = both.join(sb.path("data/etc").strip_prefix("/").unwrap());
    assert_eq!(
        std::fs::read_to_string(restored_etc.join("app.toml")).unwrap(),
        "answer = 42\n"
    );
    // --files means something only with --target.
    sb.run(&["restore", "app", "--database", "app", "--files"])
        .assert_code(2);
}
