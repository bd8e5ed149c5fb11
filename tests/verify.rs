//! `verify`, the restore drill: restores a snapshot into scratch space, checks every database
//! and the files, reports size, restore time and result per item, touches nothing live.

use crate::harness::{Run, Sandbox, make_sqlite};
use crate::mariadb::{MariaDb, server};
use crate::restore::{restore_user, snapshot_with_a_corrupt_copy};

fn stack_profile(db: &MariaDb, database: &str, port: u16) -> String {
    format!(
        "profiles:
  app:
    repository: local
    host: test-host
    databases:
      - {{ name: app, type: sqlite, path: '{{dir}}/data/app.db' }}
      - name: main
        type: mysql
        host: 127.0.0.1
        port: {port}
        user: backup
        password_file: '{{dir}}/db-password'
        restore_user: restorer
        restore_password_file: '{{dir}}/restore-password'
        databases: [{database}]
    paths: ['{{dir}}/data/etc']
",
        port = if port == 0 { db.port } else { port }
    )
}

/// A profile with a SQLite database, a MariaDB database and files, backed up once.
fn stack(db: &MariaDb, prefix: &str) -> (Sandbox, String) {
    let name = db.fresh_database(prefix);
    db.sql(&format!(
        "USE `{name}`;
         CREATE TABLE torrents (id INT PRIMARY KEY AUTO_INCREMENT, info_hash BINARY(20)) ENGINE=InnoDB;
         CREATE TABLE users (id INT PRIMARY KEY AUTO_INCREMENT, name VARCHAR(50)) ENGINE=InnoDB;
         CREATE TABLE log (id INT PRIMARY KEY AUTO_INCREMENT, what VARCHAR(50)) ENGINE=InnoDB;
         CREATE TRIGGER users_log AFTER INSERT ON users FOR EACH ROW INSERT INTO log (what) VALUES ('user');
         INSERT INTO torrents (info_hash) VALUES (UNHEX(SHA1('a'))), (UNHEX(SHA1('b')));
         INSERT INTO users (name) VALUES ('ann');"
    ));
    db.backup_user("backup", "dump-pass-1");
    restore_user(db);
    let sb = Sandbox::new();
    drop(make_sqlite(&sb.path("data/app.db"), 2500));
    std::fs::create_dir(sb.path("data/etc")).unwrap();
    std::fs::write(sb.path("data/etc/tracker.toml"), "port = 6969\n").unwrap();
    std::fs::write(sb.path("db-password"), "dump-pass-1\n").unwrap();
    std::fs::write(sb.path("restore-password"), "Restore-Pass-9\n").unwrap();
    sb.config(&stack_profile(db, &name, 0));
    sb.run(&["backup", "app"]).assert_code(0);
    (sb, name)
}

fn report(run: &Run) -> serde_json::Value {
    let report = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}\n{}", run.stdout, run.stderr));
    crate::harness::assert_output("verify", &report);
    report
}

fn item<'a>(report: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    report["databases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in {report}"))
}

/// Which of the scratch databases a drill item's detail names ("loaded into scratch database
/// A, B (dropped)") are still on the server. Only this drill's own: tests beside it make theirs.
fn scratch_left(db: &MariaDb, detail: &str) -> String {
    let names = detail
        .split_once("scratch database ")
        .and_then(|(_, rest)| rest.split_once(" (dropped)"))
        .map(|(names, _)| names)
        .unwrap_or_else(|| panic!("no scratch database named in {detail:?}"));
    let quoted: Vec<String> = names.split(", ").map(|n| format!("'{n}'")).collect();
    db.sql(&format!(
        "SELECT schema_name FROM information_schema.schemata WHERE schema_name IN ({})",
        quoted.join(", ")
    ))
}

#[test]
fn drill_passes_on_a_good_snapshot_and_reports_every_item() {
    let db = server();
    let (sb, name) = stack(db, "drill_ok");
    let live = std::fs::read(sb.path("data/app.db")).unwrap();
    let tables_before = db.sql(&format!("SHOW TABLES FROM `{name}`"));

    let run = sb.run(&["verify", "app", "--json"]);
    run.assert_code(0);
    let r = report(&run);
    assert_eq!(r["result"], "success", "{r}");
    assert_eq!(r["profile"], "app");
    assert_eq!(r["snapshot"]["host"], "test-host");

    let app = item(&r, "app");
    assert_eq!(app["result"], "success", "{app}");
    assert_eq!(app["type"], "sqlite");
    assert_eq!(app["tables"], 2);
    let rows: Vec<(String, i64)> = app["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["table"].as_str().unwrap().into(),
                t["rows"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(rows, [("meta".to_string(), 1), ("t".to_string(), 2500)]);
    assert!(app["bytes"].as_u64().unwrap() > 2500 * 200);
    assert!(app["restore_seconds"].as_f64().unwrap() > 0.0);

    let main = item(&r, "main");
    assert_eq!(main["result"], "success", "{main}");
    assert_eq!(main["tables"], 3);
    assert!(
        main["detail"].as_str().unwrap().contains("dropped"),
        "{main}"
    );
    assert!(main["bytes"].as_u64().unwrap() > 0);

    assert_eq!(r["files"]["result"], "success", "{r}");
    assert_eq!(r["files"]["files"], 1);
    assert_eq!(r["files"]["paths"][0]["present"], true);
    assert!(r["restore_seconds"].as_f64().unwrap() > 0.0);

    // Nothing left behind, nothing live touched.
    assert_eq!(
        scratch_left(db, main["detail"].as_str().unwrap()).trim(),
        "",
        "scratch databases dropped"
    );
    let scratch: Vec<_> = std::fs::read_dir(sb.path("state/scratch"))
        .unwrap()
        .collect();
    assert!(scratch.is_empty(), "scratch space cleared: {scratch:?}");
    assert_eq!(std::fs::read(sb.path("data/app.db")).unwrap(), live);
    assert_eq!(db.sql(&format!("SHOW TABLES FROM `{name}`")), tables_before);

    // The table for people says the same.
    let run = sb.run(&["verify", "app"]);
    run.assert_code(0);
    assert!(run.stdout.contains("result: PASS"), "{}", run.stdout);
    assert!(run.stdout.contains("2 tables, 2501 rows"), "{}", run.stdout);
}

#[test]
fn drill_fails_on_a_snapshot_with_a_corrupt_copy() {
    let sb = Sandbox::new();
    drop(make_sqlite(&sb.path("data/app.db"), 100));
    std::fs::create_dir(sb.path("data/etc")).unwrap();
    sb.config(
        "profiles:
  app:
    repository: local
    host: test-host
    databases:
      - { name: app, type: sqlite, path: '{dir}/data/app.db' }
    paths: ['{dir}/data/etc']
",
    );
    sb.run(&["backup", "app"]).assert_code(0);
    let good = sb.snapshots()[0]["short_id"].as_str().unwrap().to_string();
    snapshot_with_a_corrupt_copy(&sb);
    let live = std::fs::read(sb.path("data/app.db")).unwrap();

    let run = sb.run(&["verify", "app", "--json"]);
    run.assert_code(1);
    let r = report(&run);
    assert_eq!(r["result"], "failed");
    let app = item(&r, "app");
    assert_eq!(app["result"], "failed");
    assert!(app["detail"].as_str().unwrap().contains("damaged"), "{app}");
    assert!(
        run.stderr
            .contains("restore drill of profile app failed: app"),
        "{}",
        run.stderr
    );
    assert_eq!(
        std::fs::read(sb.path("data/app.db")).unwrap(),
        live,
        "live untouched"
    );

    // The older, good snapshot passes.
    sb.run(&["verify", "app", "--snapshot", &good])
        .assert_code(0);
}

#[test]
fn unreachable_server_is_skipped_with_a_note_and_the_dump_still_read() {
    let db = server();
    let (sb, name) = stack(db, "drill_down");
    // The server is "gone": point the profile at a port where nothing listens.
    sb.config(&stack_profile(db, &name, 1));

    let run = sb.run(&["verify", "app", "--json"]);
    run.assert_code(3);
    let r = report(&run);
    assert_eq!(r["result"], "skipped");
    let main = item(&r, "main");
    assert_eq!(main["result"], "skipped", "{main}");
    let detail = main["detail"].as_str().unwrap();
    assert!(detail.contains("server is not reachable"), "{detail}");
    assert!(detail.contains("completion trailer"), "{detail}");
    assert_eq!(item(&r, "app")["result"], "success");
}

#[test]
fn configured_path_missing_from_the_snapshot_fails_the_drill() {
    let sb = Sandbox::new();
    drop(make_sqlite(&sb.path("data/app.db"), 10));
    std::fs::create_dir(sb.path("data/etc")).unwrap();
    let profile = "profiles:
  app:
    repository: local
    host: test-host
    databases:
      - { name: app, type: sqlite, path: '{dir}/data/app.db' }
    paths: ['{dir}/data/etc'PATHS]
";
    sb.config(&profile.replace("PATHS", ""));
    sb.run(&["backup", "app"]).assert_code(0);
    sb.config(&profile.replace("PATHS", ", '{dir}/data/.env'"));

    let run = sb.run(&["verify", "app", "--json"]);
    run.assert_code(1);
    let r = report(&run);
    assert_eq!(r["files"]["result"], "failed");
    assert!(
        r["files"]["detail"].as_str().unwrap().contains("data/.env"),
        "{r}"
    );
    assert_eq!(r["files"]["paths"][1]["present"], false);
}

/// Paths relative to the config file (`../data/etc` in `profiles/app.yaml`, as the demo's
/// profile has them) are checked where restic put them: the drill once looked for
/// `profiles/../data/etc` inside the restored tree, which has no `profiles` directory, and
/// failed every drill of such a profile.
#[test]
fn paths_relative_to_the_config_file_are_found_in_the_restored_tree() {
    let sb = Sandbox::new();
    drop(make_sqlite(&sb.path("data/app.db"), 10));
    std::fs::create_dir_all(sb.path("data/etc")).unwrap();
    std::fs::write(sb.path("data/etc/app.toml"), "x = 1\n").unwrap();
    std::fs::create_dir(sb.path("profiles")).unwrap();
    let config = sb.write_config(
        "profiles/app.yaml",
        "state_dir: ../state
repositories:
  local:
    url: ../repo
    password_file: ../restic-password
    init: true
profiles:
  app:
    repository: local
    host: test-host
    databases:
      - { name: app, type: sqlite, path: ../data/app.db }
    paths: ['../data/etc']
",
    );
    sb.run_with(&config, &["backup", "app"]).assert_code(0);
    let run = sb.run_with(&config, &["verify", "app", "--json"]);
    run.assert_code(0);
    let r = report(&run);
    assert_eq!(r["files"]["paths"][0]["present"], true, "{r}");
    assert_eq!(r["files"]["files"], 1, "{r}");
}

/// A drill run by hand counts like the daemon's: it waits for no backup (it takes the
/// profile's lock, so a running backup refuses it) and it is recorded in the status file.
#[test]
fn a_manual_drill_takes_the_lock_and_is_recorded() {
    let sb = Sandbox::new();
    drop(crate::harness::make_sqlite(&sb.path("data/app.db"), 10));
    sb.config(
        "profiles:
  app:
    repository: local
    databases:
      - { name: app, type: sqlite, path: '{dir}/data/app.db' }
    hooks:
      before: ['if [ -f {dir}/slow ]; then touch {dir}/started; sleep 4; fi']
",
    );
    sb.run(&["backup"]).assert_code(0);
    sb.run(&["verify", "app"]).assert_code(0);
    let status = crate::daemon::status(&sb, "app");
    let verify = &status["jobs"]["verify"];
    assert_eq!(verify["runs"], 1, "{status:#}");
    assert_eq!(verify["last_result"], "success", "{status:#}");

    std::fs::write(sb.path("slow"), "").unwrap();
    let backup = sb
        .command(&sb.path("config.yaml"), &["backup"])
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !sb.path("started").exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the backup never reached its hook"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let drill = sb.run(&["verify", "app"]);
    drill.assert_code(1);
    assert!(
        drill.stderr.contains("profile app is already running"),
        "{}",
        drill.stderr
    );
    assert!(backup.wait_with_output().unwrap().status.success());
}
