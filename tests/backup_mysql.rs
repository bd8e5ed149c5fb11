//! MariaDB backups through mariadb-dump against a real server: complete (tables, triggers,
//! routines), loadable, and never leaking the password.

use crate::harness::Sandbox;
use crate::mariadb::{MariaDb, server};

fn profile(db: &MariaDb, database: &str, password_file: &str) -> String {
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
        password_file: {password_file}
        databases: [{database}]
",
        port = db.port
    )
}

fn make_shop(db: &MariaDb, name: &str) {
    db.sql(&format!(
        "USE `{name}`;
         CREATE TABLE customers (id INT PRIMARY KEY AUTO_INCREMENT, name VARCHAR(100), photo BLOB) ENGINE=InnoDB;
         CREATE TABLE orders (id INT PRIMARY KEY AUTO_INCREMENT, customer INT, total DECIMAL(10,2)) ENGINE=InnoDB;
         CREATE TABLE audit (id INT PRIMARY KEY AUTO_INCREMENT, note VARCHAR(200)) ENGINE=InnoDB;
         CREATE TRIGGER orders_audit AFTER INSERT ON orders FOR EACH ROW
           INSERT INTO audit (note) VALUES (CONCAT('order ', NEW.id));
         CREATE PROCEDURE order_count(OUT n INT) SELECT COUNT(*) INTO n FROM orders;
         INSERT INTO customers (name, photo) VALUES ('ann', UNHEX('00FF10')), ('bob', NULL), ('Zoë', UNHEX('DEADBEEF'));
         INSERT INTO orders (customer, total) VALUES (1, 9.99), (2, 100.00), (1, 0.01);"
    ));
}

fn checksums(db: &MariaDb, name: &str) -> String {
    db.sql(&format!(
        "CHECKSUM TABLE `{name}`.customers, `{name}`.orders, `{name}`.audit EXTENDED"
    ))
}

#[test]
fn dump_with_trigger_and_routine_loads_back_identical() {
    let db = server();
    let name = db.fresh_database("shop");
    make_shop(db, &name);
    db.backup_user("backup", "dump-pass-1");
    let sb = Sandbox::new();
    std::fs::write(sb.path("db-password"), "dump-pass-1\n").unwrap();
    sb.config(&profile(db, &name, "{dir}/db-password"));

    let run = sb.run(&["backup", "shop"]);
    run.assert_code(0);
    assert!(
        !run.all().contains("dump-pass-1"),
        "password leaked:\n{}",
        run.all()
    );
    assert_eq!(sb.snapshots().len(), 1);

    let before = checksums(db, &name);
    let restored = sb.restic_restore_latest("restored");
    let dump = sb.restored_dump(&restored, "shop", "main.sql");
    let text = std::fs::read_to_string(&dump).unwrap();
    assert!(
        text.trim_end()
            .lines()
            .last()
            .unwrap()
            .starts_with("-- Dump completed")
    );

    // Into a fresh database: drop it, load the dump, compare.
    db.sql(&format!("DROP DATABASE `{name}`"));
    let load = db
        .client()
        .stdin(std::fs::File::open(&dump).unwrap())
        .output()
        .unwrap();
    assert!(
        load.status.success(),
        "{}",
        String::from_utf8_lossy(&load.stderr)
    );
    assert_eq!(checksums(db, &name), before);
    let triggers = db.sql(&format!(
        "SELECT trigger_name FROM information_schema.triggers WHERE trigger_schema = '{name}'"
    ));
    assert_eq!(triggers.trim(), "orders_audit");
    let routines = db.sql(&format!(
        "SELECT routine_name FROM information_schema.routines WHERE routine_schema = '{name}'"
    ));
    assert_eq!(routines.trim(), "order_count");
    // The trigger works in the restored database.
    db.sql(&format!(
        "INSERT INTO `{name}`.orders (customer, total) VALUES (3, 1.00)"
    ));
    let audit = db.sql(&format!("SELECT COUNT(*) FROM `{name}`.audit"));
    assert_eq!(audit.trim(), "4");
}

#[test]
fn wrong_database_password_fails_before_restic_without_leaking_it() {
    let db = server();
    let name = db.fresh_database("wrongpw");
    make_shop(db, &name);
    db.backup_user("backup", "dump-pass-1");
    let sb = Sandbox::new();
    std::fs::write(sb.path("db-password"), "Not-The-Password-77\n").unwrap();
    std::fs::write(sb.path("failed"), "").unwrap();
    sb.config(&format!(
        "{}    hooks:\n      on_failure: ['printf %s \"$RESTICPILOT_ERROR\" > {{dir}}/failed']\n",
        profile(db, &name, "{dir}/db-password")
    ));
    let run = sb.run(&["backup"]);
    run.assert_code(1);
    assert!(
        run.stderr.contains("dump of database main failed"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("Access denied"),
        "the tool's own message: {}",
        run.stderr
    );
    assert!(
        !run.all().contains("Not-The-Password-77"),
        "password leaked:\n{}",
        run.all()
    );
    assert!(sb.snapshots().is_empty(), "no snapshot after a failed dump");
    assert!(
        sb.staging_files("shop").is_empty(),
        "staging cleared: {:?}",
        sb.staging_files("shop")
    );
    let hook_saw = std::fs::read_to_string(sb.path("failed")).unwrap();
    assert!(
        hook_saw.contains("dump of database main failed"),
        "on_failure got: {hook_saw:?}"
    );
    assert!(!hook_saw.contains("Not-The-Password-77"));
}

#[test]
fn dump_killed_midway_makes_no_snapshot() {
    let db = server();
    let name = db.fresh_database("killed");
    make_shop(db, &name);
    db.backup_user("backup", "dump-pass-1");
    let sb = Sandbox::new();
    std::fs::write(sb.path("db-password"), "dump-pass-1").unwrap();
    sb.config(&profile(db, &name, "{dir}/db-password"));

    // Hold a write lock on a table so the dump blocks part-way through, then kill it there.
    let mut locker = db
        .client()
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    writeln!(
        locker.stdin.as_mut().unwrap(),
        "LOCK TABLES `{name}`.orders WRITE; SELECT SLEEP(60);"
    )
    .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));

    let child = sb
        .command(&sb.path("config.yaml"), &["backup"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = crate::harness::wait_until("mariadb-dump never started", || find_dump_process(&sb));
    // Let it write the tables before the locked one.
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert!(
        std::process::Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status()
            .unwrap()
            .success()
    );
    let run = crate::harness::to_run(child.wait_with_output().unwrap());
    let _ = locker.kill();
    let _ = locker.wait();

    run.assert_code(1);
    assert!(
        run.stderr.contains("was killed by signal 9"),
        "{}",
        run.stderr
    );
    assert!(sb.snapshots().is_empty(), "no snapshot of a killed dump");
    assert!(
        sb.staging_files("shop").is_empty(),
        "no partial dump left: {:?}",
        sb.staging_files("shop")
    );
}

/// The pid of a mariadb-dump started for this sandbox (its options file is in a private temp
/// dir, so match on the database argument list instead: our sandbox's process is the child of
/// a resticpilot whose config path is unique).
pub fn find_dump_process(sb: &Sandbox) -> Option<u32> {
    let config = sb.path("config.yaml").display().to_string();
    for entry in std::fs::read_dir("/proc").ok()? {
        let entry = entry.ok()?;
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        if !String::from_utf8_lossy(&cmdline).contains("mariadb-dump") {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let ppid: u32 = stat
            .rsplit(") ")
            .next()?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()?;
        let parent = std::fs::read(format!("/proc/{ppid}/cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&parent).contains(&config) {
            return Some(pid);
        }
    }
    None
}

#[test]
fn all_databases_over_the_socket_skips_the_system_schemas() {
    let db = server();
    let a = db.fresh_database("all_a");
    let b = db.fresh_database("all_b");
    db.sql(&format!(
        "CREATE TABLE `{a}`.t (id INT PRIMARY KEY); INSERT INTO `{a}`.t VALUES (1), (2);
         CREATE TABLE `{b}`.u (id INT PRIMARY KEY); INSERT INTO `{b}`.u VALUES (3);
         CREATE USER IF NOT EXISTS 'alltest'@'localhost' IDENTIFIED BY 'all-pass-9';
         GRANT SELECT, SHOW VIEW, TRIGGER, LOCK TABLES, EVENT ON `{a}`.* TO 'alltest'@'localhost';
         GRANT SELECT, SHOW VIEW, TRIGGER, LOCK TABLES, EVENT ON `{b}`.* TO 'alltest'@'localhost';
         CREATE DATABASE IF NOT EXISTS resticpilot_verify_4242_0;
         CREATE TABLE IF NOT EXISTS resticpilot_verify_4242_0.half (id INT);
         GRANT SELECT, SHOW VIEW, TRIGGER, LOCK TABLES, EVENT ON `resticpilot\\_verify\\_4242\\_0`.* TO 'alltest'@'localhost';"
    ));
    let sb = Sandbox::new();
    std::fs::write(sb.path("db-password"), "all-pass-9").unwrap();
    sb.config(&format!(
        "profiles:
  everything:
    repository: local
    databases:
      - name: server
        type: mariadb
        socket: {socket}
        user: alltest
        password_file: '{{dir}}/db-password'
        databases: all
",
        socket = db.socket.display()
    ));
    sb.run(&["backup"]).assert_code(0);
    let restored = sb.restic_restore_latest("restored");
    let dump =
        std::fs::read_to_string(sb.restored_dump(&restored, "everything", "server.sql")).unwrap();
    assert!(dump.contains(&format!("USE `{a}`;")), "database {a} dumped");
    assert!(dump.contains(&format!("USE `{b}`;")), "database {b} dumped");
    assert!(!dump.contains("USE `mysql`;"), "system schema skipped");
    // A verify's half-loaded scratch database beside this backup is not one of the user's.
    assert!(
        !dump.contains("USE `resticpilot_verify_4242_0`;"),
        "scratch database skipped"
    );
    assert!(!dump.contains("USE `information_schema`;"));
    let manifest = std::fs::read_to_string(sb.restored_dump(
        &restored,
        "everything",
        "resticpilot-manifest.json",
    ))
    .unwrap();
    let manifest: serde_json::Value = serde_json::from_str(&manifest).unwrap();
    let tables: Vec<&str> = manifest["databases"][0]["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert_eq!(tables, [format!("{a}.t"), format!("{b}.u")]);
}

#[test]
fn missing_dump_tool_is_named_and_nothing_is_snapshotted() {
    let db = server();
    let name = db.fresh_database("notool");
    let sb = Sandbox::new();
    std::fs::write(sb.path("db-password"), "some-password").unwrap();
    sb.config(&format!(
        "{}        binary: /nonexistent/mariadb-dump\n",
        profile(db, &name, "{dir}/db-password")
    ));
    let run = sb.run(&["backup"]);
    run.assert_code(1);
    assert!(
        run.stderr
            .contains("dump of database main failed: could not start /nonexistent/mariadb-dump"),
        "{}",
        run.stderr
    );
    assert!(sb.snapshots().is_empty());
}
