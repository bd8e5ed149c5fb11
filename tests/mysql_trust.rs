//! MySQL / MariaDB under hostile input and faults, on the real server: dumps from a snapshot
//! are checked whole before the first byte reaches it and can reach no other database; a
//! failed load puts the database back; the password is never in argv, the environment, a
//! file or a message; every wait is bounded; names that cannot be names are refused.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{Run, Sandbox, spawn_watchdog};
use crate::mariadb::{MariaDb, server};
use crate::restore::restore_user;

const DUMP_PASSWORD: &str = "dump-pass-1";

fn profile(db: &MariaDb, databases: &str, extra: &str) -> String {
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
        databases: {databases}
{extra}",
        port = db.port
    )
}

/// A database `prefix_N` with two tables and a trigger, and a sandbox whose profile `shop`
/// dumps it (nothing backed up yet).
fn setup(db: &MariaDb, prefix: &str, extra: &str) -> (Sandbox, String) {
    let name = db.fresh_database(prefix);
    db.sql(&format!(
        "USE `{name}`;
         CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(50)) ENGINE=InnoDB;
         CREATE TABLE audit (id INT PRIMARY KEY AUTO_INCREMENT, note VARCHAR(50)) ENGINE=InnoDB;
         CREATE TRIGGER t_audit AFTER INSERT ON t FOR EACH ROW INSERT INTO audit (note) VALUES ('t');
         INSERT INTO t VALUES (1, 'one'), (2, 'two'), (3, 'three');"
    ));
    db.backup_user("backup", DUMP_PASSWORD);
    restore_user(db);
    let sb = Sandbox::new();
    std::fs::write(sb.path("db-password"), format!("{DUMP_PASSWORD}\n")).unwrap();
    std::fs::write(sb.path("restore-password"), "Restore-Pass-9\n").unwrap();
    sb.config(&profile(db, &format!("['{name}']"), extra));
    (sb, name)
}

/// Everything about a database that a restore could change: its tables, the rows of each,
/// and its triggers.
fn fingerprint(db: &MariaDb, name: &str) -> String {
    let lit = name.replace('\'', "''");
    let tables = db.sql(&format!(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = '{lit}' ORDER BY 1"
    ));
    let mut out = format!("tables:\n{tables}");
    for t in tables.lines() {
        out.push_str(&db.sql(&format!(
            "SELECT * FROM `{}`.`{t}` ORDER BY 1",
            name.replace('`', "``")
        )));
    }
    out.push_str(&db.sql(&format!(
        "SELECT trigger_name, action_statement FROM information_schema.triggers WHERE trigger_schema = '{lit}' ORDER BY 1"
    )));
    out
}

fn exists(db: &MariaDb, name: &str) -> bool {
    !db.sql(&format!(
        "SELECT schema_name FROM information_schema.schemata WHERE schema_name = '{}'",
        name.replace('\'', "''")
    ))
    .trim()
    .is_empty()
}

/// The dump of the latest snapshot of profile `shop` (as restic restores it).
fn dump_of_latest(sb: &Sandbox) -> String {
    let restored = sb.restic_restore_latest(&format!("restored-{}", sb.snapshots().len()));
    std::fs::read_to_string(sb.restored_dump(&restored, "shop", "main.sql")).unwrap()
}

/// Puts `dump` into the repository as a new snapshot of profile `shop` on `test-host`, with a
/// manifest saying it holds `databases`: what anyone with the repository key could do.
fn plant(sb: &Sandbox, dump: &str, databases: &[&str]) {
    plant_recorded(sb, dump, databases, dump.len());
}

/// [`plant`] with a manifest recording `bytes` as the dump's size.
fn plant_recorded(sb: &Sandbox, dump: &str, databases: &[&str], bytes: usize) {
    let staging = sb.path(&format!("planted-{}/shop", sb.snapshots().len()));
    std::fs::create_dir_all(&staging).unwrap();
    std::fs::write(staging.join("main.sql"), dump).unwrap();
    let manifest = serde_json::json!({
        "resticpilot": "test",
        "profile": "shop",
        "host": "test-host",
        "created": "2026-11-22T23:00:00Z",
        "staging_dir": staging,
        "databases": [{"name": "main", "type": "mysql", "file": "main.sql",
                       "bytes": bytes, "duration": 0.1, "source": databases.join(", "),
                       "databases": databases, "method": "mariadb-dump", "tables": []}]
    });
    std::fs::write(
        staging.join("resticpilot-manifest.json"),
        manifest.to_string(),
    )
    .unwrap();
    sb.snapshot_by_hand("shop", &[&staging]);
}

/// `dump` with `sql` inserted right after its `USE` line.
fn with_after_use(dump: &str, name: &str, sql: &str) -> String {
    let use_line = format!("USE `{name}`;\n");
    assert!(dump.contains(&use_line));
    dump.replacen(&use_line, &format!("{use_line}{sql}"), 1)
}

#[test]
fn a_dump_without_its_trailer_never_reaches_the_live_database() {
    let db = server();
    let (sb, name) = setup(db, "trunc", "");
    sb.run(&["backup", "shop"]).assert_code(0);
    let dump = dump_of_latest(&sb);
    // Cut after the DROP/CREATE of the first table: loaded as it streams, this empties it.
    let cut = dump.find("INSERT INTO `t`").expect("rows of t in the dump");
    plant(&sb, &dump[..cut], &[&name]);
    db.sql(&format!("INSERT INTO `{name}`.t VALUES (4, 'four')"));
    let before = fingerprint(db, &name);

    let run = sb.run(&["restore", "shop", "--database", "main", "--force"]);
    assert_eq!(
        fingerprint(db, &name),
        before,
        "the live database was touched"
    );
    run.assert_code(1);
    assert!(
        run.stderr.contains("refused before anything was loaded")
            && run.stderr.contains("incomplete"),
        "{}",
        run.stderr
    );
}

/// A dump of another size than its manifest records is not the one backed up: refused before
/// anything is loaded, and a longer one is not read past that size (restic keeps a padded
/// giant in a few bytes).
#[test]
fn a_dump_of_another_size_than_its_manifest_records_never_reaches_the_live_database() {
    let db = server();
    let (sb, name) = setup(db, "size", "");
    sb.run(&["backup", "shop"]).assert_code(0);
    let dump = dump_of_latest(&sb);
    db.sql(&format!("INSERT INTO `{name}`.t VALUES (4, 'four')"));
    let before = fingerprint(db, &name);
    // Comments after USE pass every rule of the check: only the size gives them away.
    let padded = with_after_use(&dump, &name, &"-- padding\n".repeat(100_000));
    plant_recorded(&sb, &padded, &[&name], dump.len());
    let run = sb.run(&["restore", "shop", "--database", "main", "--force"]);
    assert_eq!(
        fingerprint(db, &name),
        before,
        "the live database was touched"
    );
    run.assert_code(1);
    assert!(
        run.stderr.contains(&format!(
            "larger than the {} bytes its manifest records",
            dump.len()
        )),
        "{}",
        run.stderr
    );
    // Shorter than recorded (one blank line removed): refused the same way.
    let shorter = dump.replacen("\n\n", "\n", 1);
    assert!(shorter.len() < dump.len());
    plant_recorded(&sb, &shorter, &[&name], dump.len());
    let run = sb.run(&["verify", "shop"]);
    run.assert_code(1);
    assert!(
        run.stdout.contains("its manifest records") || run.stderr.contains("its manifest records"),
        "{}{}",
        run.stdout,
        run.stderr
    );
    assert_eq!(fingerprint(db, &name), before);
}

#[test]
fn a_load_that_fails_midway_puts_the_database_back_as_it_was() {
    let db = server();
    let (sb, name) = setup(db, "rollback", "");
    sb.run(&["backup", "shop"]).assert_code(0);
    let dump = dump_of_latest(&sb);
    // A dump that passes every check but that the server rejects once the tables are
    // dropped and recreated: a duplicate key in the rows of the last table.
    let rows = "INSERT INTO `t` VALUES\n";
    assert!(dump.contains(rows), "{dump}");
    let bad = dump.replace(rows, "INSERT INTO `t` VALUES\n(1,'again'),\n");
    plant(&sb, &bad, &[&name]);
    db.sql(&format!(
        "INSERT INTO `{name}`.t VALUES (4, 'four'); CREATE TABLE `{name}`.extra (x INT); INSERT INTO `{name}`.extra VALUES (7)"
    ));
    let before = fingerprint(db, &name);

    let run = sb.run(&["restore", "shop", "--database", "main", "--force"]);
    run.assert_code(1);
    assert!(
        run.stderr.contains("the client exited with status 1") && run.stderr.contains("ERROR"),
        "the server's own error: {}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("was put back as it was before the restore, from"),
        "{}",
        run.stderr
    );
    assert_eq!(fingerprint(db, &name), before, "not put back as it was");
}

#[test]
fn tampered_dumps_cannot_reach_another_database() {
    let db = server();
    let (sb, name) = setup(db, "orig", "");
    sb.run(&["backup", "shop"]).assert_code(0);
    let dump = dump_of_latest(&sb);
    let victim = db.fresh_database("victim");
    db.sql(&format!(
        "CREATE TABLE `{victim}`.t (id INT PRIMARY KEY); INSERT INTO `{victim}`.t VALUES (1)"
    ));
    let before = fingerprint(db, &name);
    let victim_before = fingerprint(db, &victim);
    // What a refused load (`who`) must leave as it was: the original and the victim.
    let untouched = |who: &str| {
        assert_eq!(fingerprint(db, &name), before, "{who} touched the original");
        assert_eq!(
            fingerprint(db, &victim),
            victim_before,
            "{who} reached {victim}"
        );
    };
    let stray = format!("{name}_stray");
    let cases = [
        format!("use {victim};\nDROP TABLE IF EXISTS t;\n"),
        format!("USE\t{victim};\nDROP TABLE IF EXISTS t;\n"),
        format!("Use `{victim}` ;\nDROP TABLE IF EXISTS t;\n"),
        format!("INSERT INTO `{victim}`.`t` VALUES (99);\n"),
        format!("INSERT INTO {victim} . t VALUES (99);\n"),
        format!("INSERT INTO {victim}/* x */.t VALUES (99);\n"),
        format!("/*!40000 USE {victim}*/;\nDROP TABLE IF EXISTS t;\n"),
        format!("/*!40000 DROP TABLE `{victim}`.t*/;\n"),
        format!("CREATE DATABASE `{stray}`;\n"),
        format!(
            "DELIMITER ;;\n/*!50003 CREATE*/ /*!50017 DEFINER=`root`@`localhost`*/ /*!50003 TRIGGER planted AFTER INSERT ON t FOR EACH ROW DELETE FROM `{victim}`.t */;;\nDELIMITER ;\n"
        ),
        "DELIMITER ;;\nCREATE DEFINER=`root`@`localhost` PROCEDURE planted() BEGIN PREPARE s FROM 'DROP DATABASE x'; EXECUTE s; END;;\nDELIMITER ;\n".to_string(),
        "GRANT ALL ON *.* TO 'backup'@'127.0.0.1';\n".to_string(),
        "DROP TABLE IF EXISTS t; \\! touch /tmp/resticpilot-pwned\n".to_string(),
        "SET sql_mode = 'ANSI_QUOTES';\n".to_string(),
    ];
    for (i, sql) in cases.iter().enumerate() {
        plant(&sb, &with_after_use(&dump, &name, sql), &[&name]);
        let copy = format!("{name}_copy{i}");
        for args in [
            vec!["restore", "shop", "--database", "main", "--into", &copy],
            vec!["restore", "shop", "--database", "main", "--force"],
        ] {
            let run = sb.run(&args);
            untouched(&format!("{sql:?}"));
            assert!(!exists(db, &copy), "{sql:?}: the copy was created");
            assert!(!exists(db, &stray), "{sql:?}: another database was created");
            run.assert_code(1);
            assert!(
                run.stderr.contains("refused before anything was loaded"),
                "{sql:?}: {}",
                run.stderr
            );
        }
    }
    assert!(!Path::new("/tmp/resticpilot-pwned").exists());

    // The drill, which loads into a scratch database, refuses them too.
    plant(
        &sb,
        &with_after_use(
            &dump,
            &name,
            &format!("use {victim};\nDROP TABLE IF EXISTS t;\n"),
        ),
        &[&name],
    );
    let run = sb.run(&["verify", "shop", "--json"]);
    run.assert_code(1);
    assert!(run.stdout.contains("refused"), "{}", run.stdout);
    untouched("the drill");
}

#[test]
fn a_renamed_restore_or_the_drill_sends_the_dumps_own_name_to_the_copy() {
    let db = server();
    let (sb, name) = setup(db, "redirect", "");
    sb.run(&["backup", "shop"]).assert_code(0);
    let dump = dump_of_latest(&sb);
    // Statements that name the dump's own database, as a tampered dump would to write into
    // the original during a restore under another name: they go to the copy.
    let tampered = dump.replace(
        "UNLOCK TABLES;\n",
        &format!(
            "UNLOCK TABLES;\nuse {name};\nINSERT INTO `{name}`.`audit` (note) VALUES ('planted');\n/*!40000 USE {name}*/;\n"
        ),
    );
    plant(&sb, &tampered, &[&name]);
    let before = fingerprint(db, &name);
    let copy = format!("{name}_copy");
    sb.run(&["restore", "shop", "--database", "main", "--into", &copy])
        .assert_code(0);
    assert_eq!(
        fingerprint(db, &name),
        before,
        "the original was written to"
    );
    assert!(
        fingerprint(db, &copy).contains("planted"),
        "the statements went to the copy"
    );
    let run = sb.run(&["verify", "shop", "--json"]);
    run.assert_code(0);
    assert_eq!(
        fingerprint(db, &name),
        before,
        "the drill wrote to the original"
    );
    db.sql(&format!("DROP DATABASE `{copy}`"));
}

#[test]
fn a_database_named_with_a_comma_backs_up_and_restores() {
    let db = server();
    let name = "we, ird";
    db.sql(&format!(
        "DROP DATABASE IF EXISTS `{name}`; CREATE DATABASE `{name}`;
         CREATE TABLE `{name}`.t (id INT PRIMARY KEY); INSERT INTO `{name}`.t VALUES (1), (2);"
    ));
    db.backup_user("backup", DUMP_PASSWORD);
    restore_user(db);
    let sb = Sandbox::new();
    std::fs::write(sb.path("db-password"), DUMP_PASSWORD).unwrap();
    std::fs::write(sb.path("restore-password"), "Restore-Pass-9").unwrap();
    sb.config(&profile(db, &format!("['{name}']"), ""));
    sb.run(&["backup", "shop"]).assert_code(0);
    db.sql(&format!("DELETE FROM `{name}`.t WHERE id = 2"));

    let run = sb.run(&["restore", "shop", "--database", "main", "--force"]);
    run.assert_code(0);
    assert_eq!(
        db.sql(&format!("SELECT id FROM `{name}`.t ORDER BY id")),
        "1\n2\n"
    );
    db.sql(&format!("DROP DATABASE `{name}`"));
}

#[test]
fn a_password_file_with_a_second_line_is_refused_and_never_shown() {
    let db = server();
    let (sb, _) = setup(db, "twolines", "");
    std::fs::write(
        sb.path("db-password"),
        format!("{DUMP_PASSWORD}\nSecond-Line-Secret\n"),
    )
    .unwrap();
    let run = sb.run(&["backup", "shop"]);
    run.assert_code(1);
    let file = sb.path("db-password").display().to_string();
    assert!(
        run.stderr.contains(&file) && run.stderr.contains("more than one line"),
        "{}",
        run.stderr
    );
    let status = std::fs::read_to_string(sb.path("state/status/shop.json")).unwrap();
    for text in [&run.all(), &status] {
        assert!(!text.contains("Second-Line-Secret"), "{text}");
        assert!(!text.contains(DUMP_PASSWORD), "{text}");
    }
    assert!(sb.snapshots().is_empty());
}

/// The pid of the mariadb-dump that a resticpilot run of `sb` started.
fn dump_child(sb: &Sandbox) -> u32 {
    crate::harness::wait_until("mariadb-dump never started", || {
        crate::backup_mysql::find_dump_process(sb)
    })
}

/// A session holding `LOCK TABLES t WRITE` on `name` until dropped.
struct TableLock(std::process::Child);

impl TableLock {
    fn hold(db: &MariaDb, name: &str) -> TableLock {
        let mut child = db.client().stdin(Stdio::piped()).spawn().unwrap();
        use std::io::Write;
        writeln!(
            child.stdin.as_mut().unwrap(),
            "LOCK TABLES `{name}`.t WRITE; SELECT SLEEP(120);"
        )
        .unwrap();
        std::thread::sleep(Duration::from_millis(500));
        TableLock(child)
    }
}

impl Drop for TableLock {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[test]
fn the_running_dump_has_no_password_in_its_argv_or_environment() {
    let db = server();
    let (sb, name) = setup(db, "procfs", "");
    let _lock = TableLock::hold(db, &name);
    let child = sb
        .command(&sb.path("config.yaml"), &["backup"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = dump_child(&sb);
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    kill(child);
    let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
    assert!(contains(&cmdline, "mariadb-dump"), "the right process");
    assert!(!contains(&cmdline, DUMP_PASSWORD), "password in argv");
    assert!(!contains(&environ, DUMP_PASSWORD), "password in environ");
}

fn kill(child: std::process::Child) {
    let _ = Command::new("kill")
        .args(["-9", &child.id().to_string()])
        .status();
    let _ = child.wait_with_output();
}

/// Every file under `dir` whose content holds `secret`.
fn files_holding(dir: &Path, secret: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(read) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in read.flatten() {
        let path = entry.path();
        let Ok(meta) = path.symlink_metadata() else {
            continue;
        };
        if meta.is_dir() {
            found.extend(files_holding(&path, secret));
        } else if meta.is_file() && std::fs::read(&path).is_ok_and(|bytes| contains(&bytes, secret))
        {
            found.push(path);
        }
    }
    found
}

#[test]
fn sigkill_mid_dump_leaves_no_password_on_disk() {
    let db = server();
    let (sb, name) = setup(db, "sigkill", "");
    let tmp = sb.path("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let _lock = TableLock::hold(db, &name);
    let child = sb
        .command(&sb.path("config.yaml"), &["backup"])
        .env("TMPDIR", &tmp)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = dump_child(&sb);
    kill(child);
    // The orphaned dump is stopped too (it would end with the lock anyway).
    let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
    let left: Vec<PathBuf> = [tmp.as_path(), &sb.path("state")]
        .iter()
        .flat_map(|d| files_holding(d, DUMP_PASSWORD))
        .collect();
    assert!(left.is_empty(), "password left on disk in {left:?}");
}

#[test]
fn a_server_that_never_greets_is_given_up_on_after_connect_timeout() {
    // Accepts connections and never writes a byte.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let holder = std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming().take(8) {
            held.push(conn);
        }
        std::thread::sleep(Duration::from_secs(60));
    });
    let db = server();
    let (sb, _) = setup(db, "silent", "        connect_timeout: 2s\n");
    let text = std::fs::read_to_string(sb.path("config.yaml"))
        .unwrap()
        .replace(&format!("port: {}", db.port), &format!("port: {port}"));
    std::fs::write(sb.path("config.yaml"), text).unwrap();
    let run = run_bounded(&sb, &["backup", "shop"]);
    run.assert_code(1);
    assert!(
        run.stderr.contains("connect_timeout") && run.stderr.contains("2s"),
        "{}",
        run.stderr
    );
    assert!(sb.snapshots().is_empty());
    drop(holder);
}

/// Runs resticpilot, killing it if it runs past 120 s (a guard: the bounds under test are a
/// few seconds).
fn run_bounded(sb: &Sandbox, args: &[&str]) -> Run {
    let child = sb
        .command(&sb.path("config.yaml"), args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let guard = spawn_watchdog(&format!("sleep 120; kill -9 {pid} 2>/dev/null"));
    let run = crate::harness::to_run(child.wait_with_output().unwrap());
    let mut guard = guard;
    let _ = guard.kill();
    let _ = guard.wait();
    run
}

#[test]
fn a_table_locked_by_another_session_stops_the_dump_after_lock_wait_timeout() {
    let db = server();
    let (sb, name) = setup(db, "locked", "        lock_wait_timeout: 2\n");
    let lock = TableLock::hold(db, &name);
    let run = run_bounded(&sb, &["backup", "shop"]);
    drop(lock);
    run.assert_code(1);
    assert!(
        run.stderr.contains("made no progress for 2s")
            && run.stderr.contains("lock_wait_timeout")
            && run.stderr.contains("a lock another session holds"),
        "{}",
        run.stderr
    );
    assert!(sb.snapshots().is_empty());
    assert!(sb.staging_files("shop").is_empty());
}

#[test]
fn restore_gives_up_on_a_server_that_never_greets() {
    let db = server();
    let (sb, _) = setup(db, "silentrs", "        connect_timeout: 2\n");
    sb.run(&["backup", "shop"]).assert_code(0);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let holder = std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming().take(8) {
            held.push(conn);
        }
        std::thread::sleep(Duration::from_secs(60));
    });
    let text = std::fs::read_to_string(sb.path("config.yaml"))
        .unwrap()
        .replace(&format!("port: {}", db.port), &format!("port: {port}"));
    std::fs::write(sb.path("config.yaml"), text).unwrap();
    let run = run_bounded(&sb, &["restore", "shop", "--database", "main", "--force"]);
    run.assert_code(1);
    assert!(
        run.stderr
            .contains("did not answer within 2s (connect_timeout)"),
        "{}",
        run.stderr
    );
    drop(holder);
}

/// A stand-in for mariadb-dump (a FAKE: a shell script) that writes a dump without its
/// `-- Dump completed` trailer and exits 0, as a dump tool cut short by a bug could.
#[test]
fn a_fake_dump_tool_that_exits_0_without_the_trailer_fails_the_run() {
    let db = server();
    let (sb, _) = setup(db, "fake", "");
    let fake = sb.path("fake-mariadb-dump");
    std::fs::write(
        &fake,
        "#!/bin/sh\n# FAKE mariadb-dump: a dump cut short, exit status 0.\nprintf 'CREATE TABLE `t` (id int);\\nINSERT INTO `t` VALUES (1);\\n'\nexit 0\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let text = std::fs::read_to_string(sb.path("config.yaml")).unwrap();
    std::fs::write(
        sb.path("config.yaml"),
        format!("{text}        binary: {}\n", fake.display()),
    )
    .unwrap();
    let run = sb.run(&["backup", "shop"]);
    run.assert_code(1);
    assert!(
        run.stderr.contains("lacks its `-- Dump completed` trailer"),
        "{}",
        run.stderr
    );
    assert!(
        sb.snapshots().is_empty(),
        "no snapshot of an incomplete dump"
    );
}

#[test]
fn a_full_staging_disk_names_the_directory_and_the_key() {
    let db = server();
    let (sb, name) = setup(db, "diskfull", "");
    // About 3 MiB of rows for a 1 MiB filesystem.
    db.sql(&format!(
        "USE `{name}`; INSERT INTO t SELECT seq + 10, REPEAT('x', 50) FROM seq_1_to_60000"
    ));
    let mnt = sb.path("small");
    std::fs::create_dir(&mnt).unwrap();
    let out = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
        .arg(&mnt)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "mounting a tmpfs needs root: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Unmounted when this test process ends, however it ends.
    let mut watchdog = spawn_watchdog(&format!(
        "while kill -0 {} 2>/dev/null; do sleep 0.5; done; umount -l {}",
        std::process::id(),
        mnt.display()
    ));
    let staging = mnt.join("staging");
    let text = std::fs::read_to_string(sb.path("config.yaml")).unwrap();
    std::fs::write(
        sb.path("config.yaml"),
        text.replace(
            "    host: test-host\n",
            &format!(
                "    host: test-host\n    staging_dir: {}\n",
                staging.display()
            ),
        ),
    )
    .unwrap();
    let run = sb.run(&["backup", "shop"]);
    let _ = Command::new("umount").arg(&mnt).status();
    let _ = watchdog.kill();
    let _ = watchdog.wait();
    run.assert_code(1);
    assert!(
        run.stderr.contains(&format!(
            "staging directory {} ran out of space",
            staging.display()
        )) && run.stderr.contains("staging_dir")
            && run.stderr.contains("had written"),
        "{}",
        run.stderr
    );
    assert!(sb.snapshots().is_empty());
}

#[test]
fn names_that_cannot_be_names_are_refused_by_validate() {
    let sb = Sandbox::new();
    let long = "a".repeat(300);
    let long_db = "d".repeat(65);
    let config = sb.config(&format!(
        "profiles:
  shop:
    repository: local
    databases:
      - name: main
        type: mysql
        databases: ['-x', '--all-databases', '{long_db}']
      - {{ name: {long}, type: sqlite, path: /data/app.db }}
      - {{ name: -opt, type: sqlite, path: /data/b.db }}
"
    ));
    let run = sb.run(&["validate"]);
    run.assert_code(2);
    let file = config.display().to_string();
    for (line, what) in [
        (13, "databases entry \"-x\" starts with '-'"),
        (13, "databases entry \"--all-databases\" starts with '-'"),
        (
            13,
            "is 65 characters long: MySQL database names have at most 64",
        ),
        (14, "is 300 bytes long"),
        (15, "may not start with '.' or '-'"),
    ] {
        assert!(
            run.stderr
                .lines()
                .any(|l| l.starts_with(&format!("{file}:{line}:")) && l.contains(what)),
            "no {what:?} at line {line}:\n{}",
            run.stderr
        );
    }
}

/// A second MariaDB server whose data directory is a small tmpfs (root mounts it): a server
/// whose disk fills. The watchdog stops it and unmounts when the test process ends.
struct SmallServer {
    dir: tempfile::TempDir,
    port: u16,
    socket: PathBuf,
    watchdog: std::process::Child,
}

impl SmallServer {
    fn start(megabytes: u32) -> SmallServer {
        let dir = tempfile::Builder::new()
            .prefix("rp-small-")
            .tempdir_in("/tmp")
            .unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={megabytes}m"), "tmpfs"])
            .arg(&data)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "mounting a tmpfs needs root: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = Command::new("mariadb-install-db")
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .args([
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
                "--innodb-log-file-size=4M",
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let socket = dir.path().join("s.sock");
        let mariadbd = which::which("mariadbd").unwrap_or_else(|_| "/usr/sbin/mariadbd".into());
        let script = format!(
            "{} --no-defaults --datadir={data} --socket={sock} --port={port} --bind-address=127.0.0.1 \
             --skip-name-resolve --innodb-buffer-pool-size=16M --innodb-log-file-size=4M \
             --log-error={dir}/error.log --pid-file={dir}/pid --user=root & m=$!; \
             while kill -0 {parent} 2>/dev/null && kill -0 $m 2>/dev/null; do sleep 0.5; done; \
             kill $m 2>/dev/null; wait $m; umount -l {data}",
            mariadbd.display(),
            data = data.display(),
            sock = socket.display(),
            dir = dir.path().display(),
            parent = std::process::id(),
        );
        let watchdog = spawn_watchdog(&script);
        let server = SmallServer {
            dir,
            port,
            socket,
            watchdog,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !server
            .client()
            .arg("-e")
            .arg("SELECT 1")
            .output()
            .unwrap()
            .status
            .success()
        {
            assert!(Instant::now() < deadline, "the small server did not start");
            std::thread::sleep(Duration::from_millis(200));
        }
        server
    }

    fn client(&self) -> Command {
        let mut cmd = Command::new("mariadb");
        cmd.arg(format!("--socket={}", self.socket.display()))
            .args(["-uroot", "--batch", "--skip-column-names"]);
        cmd
    }

    #[track_caller]
    fn sql(&self, sql: &str) -> String {
        let out = self.client().args(["-e", sql]).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for SmallServer {
    fn drop(&mut self) {
        let pid = std::fs::read_to_string(self.dir.path().join("pid")).unwrap_or_default();
        let _ = Command::new("kill").arg(pid.trim()).status();
        let _ = self.watchdog.wait();
    }
}

#[test]
fn a_full_server_disk_during_restore_is_named_and_the_database_put_back() {
    let small = SmallServer::start(48);
    small.sql(
        "CREATE DATABASE shop; CREATE TABLE shop.t (id INT PRIMARY KEY, v VARCHAR(50));
         INSERT INTO shop.t VALUES (1, 'one'), (2, 'two');
         CREATE USER 'backup'@'127.0.0.1' IDENTIFIED BY 'dump-pass-1';
         GRANT SELECT, SHOW VIEW, TRIGGER, LOCK TABLES, EVENT, PROCESS ON *.* TO 'backup'@'127.0.0.1';
         CREATE USER 'restorer'@'127.0.0.1' IDENTIFIED BY 'Restore-Pass-9';
         GRANT ALL PRIVILEGES ON *.* TO 'restorer'@'127.0.0.1';",
    );
    let sb = Sandbox::new();
    std::fs::write(sb.path("db-password"), DUMP_PASSWORD).unwrap();
    std::fs::write(sb.path("restore-password"), "Restore-Pass-9").unwrap();
    let text = profile(server(), "[shop]", "").replace(
        &format!("port: {}", server().port),
        &format!("port: {}", small.port),
    );
    sb.config(&text);
    sb.run(&["backup", "shop"]).assert_code(0);
    // The snapshot's dump, grown by a table bigger than the server's free space.
    let dump = dump_of_latest(&sb);
    let mut big = String::from(
        "DROP TABLE IF EXISTS `big`;\nCREATE TABLE `big` (`id` int NOT NULL, `v` varchar(250), PRIMARY KEY (`id`)) ENGINE=InnoDB;\n",
    );
    let row = "x".repeat(240);
    for chunk in 0..400 {
        big.push_str("INSERT INTO `big` VALUES ");
        let rows: Vec<String> = (0..400)
            .map(|i| format!("({},'{row}')", chunk * 400 + i))
            .collect();
        big.push_str(&rows.join(","));
        big.push_str(";\n");
    }
    plant(&sb, &with_after_use(&dump, "shop", &big), &["shop"]);
    small.sql("INSERT INTO shop.t VALUES (3, 'three')");
    let before = small.sql("SELECT * FROM shop.t ORDER BY id");

    let run = sb.run(&["restore", "shop", "--database", "main", "--force"]);
    run.assert_code(1);
    assert!(
        run.stderr
            .contains("the MySQL server ran out of disk space")
            && run.stderr.contains("is full")
            && run
                .stderr
                .contains("was put back as it was before the restore"),
        "{}",
        run.stderr
    );
    assert_eq!(small.sql("SELECT * FROM shop.t ORDER BY id"), before);
    assert_eq!(small.sql("SHOW TABLES FROM shop"), "t\n");
}
