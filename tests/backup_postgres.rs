//! PostgreSQL sources against a real server the harness starts: a round trip of every kind of
//! schema object, restores in place and under another name, the drill, and the failures that
//! must leave no snapshot (a wrong password, the server stopped mid-dump).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{Run, Sandbox};
use crate::postgres::{Postgres, private_server, server};

const PASSWORD: &str = "pg-Secret:pass\\word 7";

fn profile(pg: &Postgres, databases: &str, password_file: &str, extra: &str) -> String {
    format!(
        "profiles:
  shop:
    repository: local
    host: test-host
    databases:
      - name: main
        type: postgresql
        host: 127.0.0.1
        port: {port}
        user: rp_admin
        password_file: {password_file}
        databases: {databases}
{extra}",
        port = pg.port
    )
}

fn sandbox(pg: &Postgres, databases: &str, extra: &str) -> Sandbox {
    pg.admin_role("rp_admin", &PASSWORD.replace('\'', "''"));
    let sb = Sandbox::new();
    std::fs::write(sb.path("pg-password"), format!("{PASSWORD}\n")).unwrap();
    sb.config(&profile(pg, databases, "{dir}/pg-password", extra));
    sb
}

/// `backup shop` with a wrapper named pg_dump first on PATH: a shell script whose body
/// `body(real pg_dump)` gives (what no real pg_dump does on purpose).
fn backup_with_pg_dump(sb: &Sandbox, body: impl Fn(&std::path::Path) -> String) -> Run {
    let bin = sb.path("fake-bin");
    std::fs::create_dir_all(&bin).unwrap();
    let real = crate::harness::require("pg_dump");
    let fake = bin.join("pg_dump");
    std::fs::write(&fake, format!("#!/bin/sh\n{}", body(&real))).unwrap();
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let out = sb
        .command(&sb.path("config.yaml"), &["backup", "shop"])
        .env("PATH", path)
        .output()
        .unwrap();
    crate::harness::to_run(out)
}

/// A table with an index, a sequence, a view, a function, a trigger, and a role owning a table.
fn make_shop(pg: &Postgres, db: &str) {
    // Tests run in parallel on one server: another may create the role at the same moment.
    pg.sql("DO $$ BEGIN CREATE ROLE shop_clerk NOLOGIN; EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$");
    pg.sql_in(
        db,
        "CREATE SEQUENCE invoice_no START 1000;
         CREATE TABLE customers (id serial PRIMARY KEY, name text NOT NULL, photo bytea);
         CREATE INDEX customers_name ON customers (name);
         CREATE TABLE orders (id serial PRIMARY KEY, customer int REFERENCES customers, total numeric(10,2), invoice int DEFAULT nextval('invoice_no'));
         CREATE TABLE audit (id serial PRIMARY KEY, note text);
         CREATE TABLE clerk_notes (note text);
         ALTER TABLE clerk_notes OWNER TO shop_clerk;
         CREATE FUNCTION order_total(c int) RETURNS numeric LANGUAGE sql AS 'SELECT coalesce(sum(total), 0) FROM orders WHERE customer = c';
         CREATE FUNCTION audit_order() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN INSERT INTO audit (note) VALUES ('order ' || NEW.id); RETURN NEW; END $$;
         CREATE TRIGGER orders_audit AFTER INSERT ON orders FOR EACH ROW EXECUTE FUNCTION audit_order();
         CREATE VIEW big_orders AS SELECT * FROM orders WHERE total > 50;
         INSERT INTO customers (name, photo) VALUES ('ann', '\\x00ff10'), ('bob', NULL), ('Zoë', '\\xdeadbeef');
         INSERT INTO orders (customer, total) VALUES (1, 9.99), (2, 100.00), (1, 0.01);
         INSERT INTO clerk_notes VALUES ('hello');",
    );
}

/// What a restore must bring back, as one comparable text.
fn fingerprint(pg: &Postgres, db: &str) -> String {
    pg.sql_in(
        db,
        "SELECT string_agg(x, ' | ' ORDER BY x) FROM (
           SELECT 'c:' || id || name || coalesce(encode(photo, 'hex'), '-') AS x FROM customers
           UNION ALL SELECT 'o:' || id || ',' || customer || ',' || total || ',' || invoice FROM orders
           UNION ALL SELECT 'a:' || id || note FROM audit
           UNION ALL SELECT 'v:' || count(*) FROM big_orders
           UNION ALL SELECT 'f:' || order_total(1)
           UNION ALL SELECT 's:' || last_value FROM invoice_no
           UNION ALL SELECT 'i:' || indexname FROM pg_indexes WHERE tablename = 'customers'
           UNION ALL SELECT 't:' || tgname FROM pg_trigger WHERE NOT tgisinternal
           UNION ALL SELECT 'owner:' || tableowner FROM pg_tables WHERE tablename = 'clerk_notes'
         ) parts",
    )
}

fn assert_no_password(run: &Run) {
    for needle in [PASSWORD, "pg-Secret"] {
        assert!(
            !run.all().contains(needle),
            "password leaked:\n{}",
            run.all()
        );
    }
}

#[test]
fn round_trip_brings_back_tables_index_sequence_view_function_trigger_and_owner() {
    let pg = server();
    let db = pg.fresh_database("shop");
    make_shop(pg, &db);
    let before = fingerprint(pg, &db);
    let sb = sandbox(pg, &format!("[{db}]"), "");

    let run = sb.run(&["backup", "shop"]);
    run.assert_code(0);
    assert_no_password(&run);
    assert_eq!(sb.snapshots().len(), 1);

    // The dump in the snapshot is an uncompressed custom-format archive that pg_restore lists.
    let restored = sb.restic_restore_latest("restored");
    let archive = sb
        .restored_dump(&restored, "shop", "main.pgdump")
        .join(format!("{db}.dump"));
    // The manifest records the archive's size, not the directory's.
    let manifest = sb.restored_dump(&restored, "shop", "resticpilot-manifest.json");
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(manifest).unwrap()).unwrap();
    assert_eq!(
        m["databases"][0]["bytes"].as_u64().unwrap(),
        std::fs::metadata(&archive).unwrap().len(),
        "{m}"
    );
    let list = Command::new("pg_restore")
        .arg("--list")
        .arg(&archive)
        .output()
        .unwrap();
    assert!(list.status.success());
    let list = String::from_utf8_lossy(&list.stdout);
    assert!(
        list.contains("Compression: 0") || list.contains("Compression: none"),
        "{list}"
    );
    for object in [
        "TABLE public customers",
        "INDEX public customers_name",
        "SEQUENCE public invoice_no",
        "VIEW public big_orders",
        "FUNCTION public order_total",
        "TRIGGER public orders orders_audit",
    ] {
        assert!(list.contains(object), "{object} missing:\n{list}");
    }

    // In place: the live database is not empty, so --force is needed.
    pg.sql_in(
        &db,
        "DELETE FROM audit; INSERT INTO customers (name) VALUES ('after backup')",
    );
    let run = sb.run(&["restore", "shop", "--database", "main"]);
    run.assert_code(1);
    assert!(
        run.stderr.contains("not empty") && run.stderr.contains("--force"),
        "{}",
        run.stderr
    );
    assert_ne!(
        fingerprint(pg, &db),
        before,
        "refused restore changed nothing"
    );

    let run = sb.run(&["restore", "shop", "--database", "main", "--force"]);
    run.assert_code(0);
    assert_no_password(&run);
    assert_eq!(fingerprint(pg, &db), before);
    assert!(
        run.stdout.contains("previous content kept as database"),
        "{}",
        run.stdout
    );
    // The previous content is kept, under the name the output gives.
    let kept = run
        .stdout
        .split("kept as database ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .unwrap()
        .to_string();
    assert!(
        pg.sql_in(&kept, "SELECT name FROM customers")
            .contains("after backup")
    );

    // A dropped database comes back, created.
    pg.sql(&format!("DROP DATABASE \"{db}\""));
    sb.run(&["restore", "shop", "--database", "main"])
        .assert_code(0);
    assert_eq!(fingerprint(pg, &db), before);
}

#[test]
fn restore_into_another_name_creates_it_and_leaves_the_original() {
    let pg = server();
    let db = pg.fresh_database("into");
    make_shop(pg, &db);
    let before = fingerprint(pg, &db);
    let sb = sandbox(pg, &format!("[{db}]"), "");
    sb.run(&["backup", "shop"]).assert_code(0);
    pg.sql_in(&db, "INSERT INTO customers (name) VALUES ('live change')");
    let live = fingerprint(pg, &db);

    let copy = format!("{db}_copy");
    let run = sb.run(&[
        "restore",
        "shop",
        "--database",
        "main",
        "--into",
        &copy,
        "--dry-run",
    ]);
    run.assert_code(0);
    assert!(
        run.stdout.contains(&format!(
            "database {copy} (renamed from {db}) (does not exist: created)"
        )),
        "{}",
        run.stdout
    );
    let run = sb.run(&["restore", "shop", "--database", "main", "--dry-run"]);
    assert!(run.stdout.contains("needs --force"), "{}", run.all());
    assert_eq!(
        pg.sql(&format!(
            "SELECT count(*) FROM pg_database WHERE datname = '{copy}'"
        ))
        .trim(),
        "0",
        "a dry run creates nothing"
    );
    let run = sb.run(&["restore", "shop", "--database", "main", "--into", &copy]);
    run.assert_code(0);
    assert_eq!(fingerprint(pg, &copy), before);
    assert_eq!(fingerprint(pg, &db), live, "the original is untouched");

    // Again: the copy now exists and is not empty.
    let run = sb.run(&["restore", "shop", "--database", "main", "--into", &copy]);
    run.assert_code(1);
    assert!(run.stderr.contains("--force"), "{}", run.stderr);
}

#[test]
fn wrong_password_fails_the_run_without_a_snapshot_or_a_leak() {
    let pg = server();
    let db = pg.fresh_database("wrongpw");
    make_shop(pg, &db);
    let sb = sandbox(pg, &format!("[{db}]"), "");
    std::fs::write(sb.path("pg-password"), "not-the-Secret-pw\n").unwrap();
    let run = sb.run(&["backup", "shop"]);
    run.assert_code(1);
    assert!(
        run.all().contains("password authentication failed"),
        "{}",
        run.all()
    );
    assert!(!run.all().contains("not-the-Secret-pw"), "{}", run.all());
    assert!(sb.snapshots().is_empty());
}

/// A session holding an exclusive lock on `table` until killed: pg_dump waits on it.
fn hold_lock(pg: &Postgres, db: &str, table: &str) -> Child {
    let child = pg
        .client()
        .args(["-d", db, "-c"])
        .arg(format!(
            "BEGIN; LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(60);"
        ))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !pg
        .sql_in(db, "SELECT count(*) FROM pg_locks WHERE mode = 'AccessExclusiveLock' AND granted AND relation IS NOT NULL")
        .trim()
        .starts_with(|c: char| c != '0')
    {
        assert!(Instant::now() < deadline, "lock not taken");
        std::thread::sleep(Duration::from_millis(100));
    }
    child
}

/// The pids of running pg_dump processes given `--port=<port>`.
fn pg_dumps(port: u16) -> Vec<u32> {
    // Debian's pg_dump is a perl wrapper that execs the real one: either will do.
    crate::harness::processes(|args| {
        args.iter().any(|a| a.ends_with("/pg_dump"))
            && args.contains(&format!("--port={port}").as_str())
    })
}

fn wait_for_dump(port: u16) -> u32 {
    crate::harness::wait_until("pg_dump never started", || pg_dumps(port).first().copied())
}

#[test]
fn password_is_in_neither_the_dump_childs_cmdline_nor_its_environment() {
    let pg = private_server();
    let db = pg.fresh_database("proc");
    make_shop(&pg, &db);
    let sb = sandbox(&pg, &format!("[{db}]"), "");
    let mut lock = hold_lock(&pg, &db, "orders");
    let backup = sb.spawn(&["backup", "shop"]);
    let pid = wait_for_dump(pg.port);
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    // End the locking session on the server (killing the client alone leaves its backend
    // sleeping with the lock).
    pg.sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(60)%' AND pid <> pg_backend_pid()");
    let _ = lock.kill();
    let _ = lock.wait();
    let out = crate::harness::to_run(backup.wait_with_output().unwrap());
    out.assert_code(0);
    for bytes in [&cmdline, &environ] {
        let text = String::from_utf8_lossy(bytes);
        assert!(
            !text.contains("pg-Secret"),
            "password visible in /proc/{pid}: {text:?}"
        );
    }
    assert!(String::from_utf8_lossy(&environ).contains("PGPASSFILE=/dev/fd/"));
    assert_no_password(&out);
}

#[test]
fn server_stopped_mid_dump_fails_the_run_without_a_snapshot() {
    let pg = private_server();
    let db = pg.fresh_database("midway");
    make_shop(&pg, &db);
    let sb = sandbox(&pg, &format!("[{db}]"), "");
    let mut lock = hold_lock(&pg, &db, "orders");
    let backup = sb.spawn(&["backup", "shop"]);
    wait_for_dump(pg.port);
    pg.stop_now();
    let run = crate::harness::to_run(backup.wait_with_output().unwrap());
    let _ = lock.kill();
    let _ = lock.wait();
    run.assert_code(1);
    assert!(run.stderr.contains("pg_dump of database"), "{}", run.stderr);
    assert!(sb.snapshots().is_empty(), "no snapshot of a partial dump");
    assert!(
        sb.staging_files("shop")
            .iter()
            .all(|f| !f.contains("main.pgdump")),
        "{:?}",
        sb.staging_files("shop")
    );
}

#[test]
fn verify_passes_on_a_good_snapshot_and_fails_on_a_truncated_archive() {
    let pg = server();
    let db = pg.fresh_database("drill");
    make_shop(pg, &db);
    let sb = sandbox(pg, &format!("[{db}]"), "");
    sb.run(&["backup", "shop"]).assert_code(0);
    let run = sb.run(&["verify", "shop", "--json"]);
    run.assert_code(0);
    let report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    crate::harness::assert_output("verify", &report);
    let main = &report["databases"][0];
    assert_eq!(main["result"], "success", "{main}");
    let rows = main["rows"].as_array().unwrap();
    let customers = rows
        .iter()
        .find(|r| r["table"] == format!("{db}.public.customers"))
        .unwrap();
    assert_eq!(customers["rows"], 3);
    // The scratch database is gone (named, since other tests' drills run beside this one).
    let detail = main["detail"].as_str().unwrap();
    let at = detail
        .find("resticpilot_verify_")
        .expect("the scratch database's name");
    let scratch: String = detail[at..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    assert_eq!(
        pg.sql(&format!(
            "SELECT count(*) FROM pg_database WHERE datname = '{scratch}'"
        ))
        .trim(),
        "0"
    );

    // A snapshot written by hand whose archive lost its second half.
    let restored = sb.restic_restore_latest("restored");
    let staging = sb.restored_dump(&restored, "shop", "");
    let archive = staging.join("main.pgdump").join(format!("{db}.dump"));
    let bytes = std::fs::read(&archive).unwrap();
    std::fs::write(&archive, &bytes[..bytes.len() / 2]).unwrap();
    sb.snapshot_by_hand("shop", &[&staging]);
    let live = fingerprint(pg, &db);
    let run = sb.run(&["verify", "shop", "--json"]);
    run.assert_code(1);
    let report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    crate::harness::assert_output("verify", &report);
    let main = &report["databases"][0];
    assert_eq!(main["result"], "failed", "{main}");
    assert!(
        main["detail"].as_str().unwrap().contains("damaged"),
        "{main}"
    );
    assert_eq!(fingerprint(pg, &db), live);
    // A restore of it is refused before the server is touched.
    let run = sb.run(&["restore", "shop", "--database", "main", "--force"]);
    run.assert_code(1);
    assert!(run.stderr.contains("damaged"), "{}", run.stderr);
    assert_eq!(fingerprint(pg, &db), live);

    // One whose archive is 64 MiB longer than the manifest records (zeros restic stores in a
    // few bytes; pg_restore ignores what follows the archive): not fetched past that size.
    let mut longer = bytes.clone();
    longer.resize(bytes.len() + (64 << 20), 0);
    std::fs::write(&archive, &longer).unwrap();
    sb.snapshot_by_hand("shop", &[&staging]);
    for args in [
        &["verify", "shop"][..],
        &["restore", "shop", "--database", "main", "--force"],
    ] {
        let run = sb.run(args);
        run.assert_code(1);
        assert!(
            run.stderr.contains("bytes its manifest records"),
            "{args:?}: {}",
            run.stderr
        );
    }
    assert_eq!(fingerprint(pg, &db), live);
}

#[test]
fn verify_says_when_the_server_is_unreachable() {
    let pg = server();
    let db = pg.fresh_database("gone");
    make_shop(pg, &db);
    let sb = sandbox(pg, &format!("[{db}]"), "");
    sb.run(&["backup", "shop"]).assert_code(0);
    // Point the profile at a port where nothing listens.
    let mut gone = profile(
        pg,
        &format!("[{db}]"),
        "{dir}/pg-password",
        "        connect_timeout: 5s\n",
    );
    gone = gone.replace(
        &format!("port: {}", pg.port),
        &format!("port: {}", crate::servers::closed_port()),
    );
    sb.config(&gone);
    let run = sb.run(&["verify", "shop", "--json"]);
    run.assert_code(3);
    let report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    crate::harness::assert_output("verify", &report);
    let main = &report["databases"][0];
    assert_eq!(main["result"], "skipped", "{main}");
    assert!(
        main["detail"].as_str().unwrap().contains("not reachable"),
        "{main}"
    );
}

#[test]
fn all_databases_with_globals_and_validate_describes_it() {
    // A server of its own: `all` would also dump what the tests beside it create and drop.
    let pg = &private_server();
    let db = pg.fresh_database("every");
    make_shop(pg, &db);
    let sb = sandbox(pg, "all", "");
    let run = sb.run(&["validate"]);
    run.assert_code(0);
    assert!(
        run.stdout.contains("postgresql all databases + globals"),
        "{}",
        run.stdout
    );
    sb.run(&["backup", "shop"]).assert_code(0);
    let restored = sb.restic_restore_latest("restored");
    let dir = sb.restored_dump(&restored, "shop", "main.pgdump");
    assert!(dir.join(format!("{db}.dump")).is_file());
    let globals = std::fs::read_to_string(dir.join("globals.sql")).unwrap();
    assert!(globals.contains("CREATE ROLE shop_clerk"), "{globals}");
    assert!(!dir.join("postgres.dump").exists());

    // --target writes the archives and the globals into a directory, checked.
    let run = sb.run(&[
        "restore",
        "shop",
        "--database",
        "main",
        "--target",
        sb.path("out").to_str().unwrap(),
    ]);
    run.assert_code(0);
    let out = sb.path("out/main.pgdump");
    assert!(out.join(format!("{db}.dump")).is_file(), "{}", run.all());
    assert!(
        std::fs::read_to_string(out.join("globals.sql"))
            .unwrap()
            .contains("CREATE ROLE shop_clerk")
    );
}

#[test]
fn all_leaves_out_the_scratch_databases_of_a_drill_or_restore_in_progress() {
    let pg = &private_server();
    let db = pg.fresh_database("kept");
    make_shop(pg, &db);
    // What a verify and a restore --into beside this backup have half loaded on the server:
    // partial copies, dropped or renamed under a backup that would dump them.
    let scratch = ["resticpilot_verify_4242_0", "kept_0_rp_new0"];
    for name in scratch {
        pg.sql(&format!("CREATE DATABASE {name}"));
        pg.sql_in(name, "CREATE TABLE half (x int)");
    }
    // A user's database whose name only looks alike is dumped.
    pg.sql("CREATE DATABASE kept_rp_newest");
    let sb = sandbox(pg, "all", "");
    let run = sb.run(&["backup", "shop"]);
    run.assert_code(0);
    for name in scratch {
        assert!(
            run.stderr
                .contains(&format!("not dumping {name}: the scratch database")),
            "{}",
            run.stderr
        );
    }
    let restored = sb.restic_restore_latest("restored");
    let dir = sb.restored_dump(&restored, "shop", "main.pgdump");
    let mut archives: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    archives.sort();
    let mut expected = [
        format!("{db}.dump"),
        "globals.sql".into(),
        "kept_rp_newest.dump".into(),
    ];
    expected.sort();
    assert_eq!(archives, expected);
}

#[test]
fn a_database_dropped_while_all_is_dumped_is_a_warning_and_the_rest_is_kept() {
    let pg = &private_server();
    let stays = pg.fresh_database("stays");
    make_shop(pg, &stays);
    pg.sql("CREATE DATABASE going");
    let sb = sandbox(pg, "all", "");
    // The real pg_dump, but the application drops database `going` just before it is dumped
    // (after resticpilot listed it): as a DROP DATABASE between the two would.
    let run = backup_with_pg_dump(&sb, |real| {
        format!(
            "case \"$*\" in *going*) psql -h '{sock}' -p {port} -U postgres -X -q -d postgres -c 'DROP DATABASE going' >&2 ;; esac\nexec '{real}' \"$@\"\n",
            sock = pg.socket_dir.display(),
            port = pg.port,
            real = real.display()
        )
    });
    run.assert_code(3);
    run.assert_stderr_has(&["database going was dropped while the backup ran"]);
    assert_eq!(sb.snapshots().len(), 1, "{}", run.all());
    let restored = sb.restic_restore_latest("restored");
    let dir = sb.restored_dump(&restored, "shop", "main.pgdump");
    assert!(dir.join(format!("{stays}.dump")).is_file());
    assert!(!dir.join("going.dump").exists());
    // A database named in the profile is never skipped: gone is a failed run.
    pg.sql("CREATE DATABASE going");
    pg.sql_in("going", "CREATE TABLE t (x int)");
    let named = sandbox(pg, "[going]", "");
    named.run(&["backup", "shop"]).assert_code(0);
    pg.sql("DROP DATABASE going");
    let run = named.run(&["backup", "shop"]);
    run.assert_code(1);
    run.assert_stderr_has(&["going"]);
    assert_eq!(named.snapshots().len(), 1);
}

#[test]
fn options_that_would_change_the_format_or_leak_are_config_errors() {
    let pg = server();
    let sb = sandbox(pg, "[x]", "        options: [--compress=9, -W]\n");
    let run = sb.run(&["validate"]);
    run.assert_code(2);
    assert!(run.stderr.contains("--compress"), "{}", run.stderr);
}

#[test]
fn a_truncated_dump_stream_is_refused_before_restic() {
    let pg = server();
    let db = pg.fresh_database("cut");
    make_shop(pg, &db);
    // About 2 MB of rows: the cut below falls in the data, after the table of contents, so
    // only a check that reads the whole stream can see it.
    pg.sql_in(
        &db,
        "CREATE TABLE filler AS SELECT g AS id, repeat(md5(g::text), 4) AS payload FROM generate_series(1, 15000) g",
    );
    let sb = sandbox(pg, &format!("[{db}]"), "");
    // A fake pg_dump: what no real one does on purpose, the real pg_dump's stream cut to its
    // first half and exit status 0.
    let run = backup_with_pg_dump(&sb, |real| {
        format!(
            "set -e\nout=$(mktemp)\n'{}' \"$@\" > \"$out\"\nhead -c $(( $(stat -c %s \"$out\") / 2 )) \"$out\"\nrm -f \"$out\"\n",
            real.display()
        )
    });
    run.assert_code(1);
    assert!(
        run.stderr.contains("does not read back whole"),
        "{}",
        run.stderr
    );
    assert!(sb.snapshots().is_empty(), "no snapshot of a truncated dump");
    assert!(
        sb.staging_files("shop")
            .iter()
            .all(|f| !f.contains("main.pgdump")),
        "{:?}",
        sb.staging_files("shop")
    );
    assert_no_password(&run);
}

/// A database whose CHECK constraint calls a function that, once loaded anywhere but in its
/// own database, tries to run a program on the server, to make the existing role
/// `<evil_role>_victim` a superuser with a known password, and to create a superuser.
fn make_forged_source(pg: &Postgres, evil_role: &str, marker: &std::path::Path) -> String {
    pg.sql(&format!("CREATE ROLE {evil_role}_victim NOLOGIN"));
    let db = pg.fresh_database("forged_src");
    pg.sql_in(
        &db,
        &format!(
            "CREATE FUNCTION grab(x int) RETURNS int LANGUAGE plpgsql AS $f$
             BEGIN
               IF current_database() <> '{db}' THEN
                 BEGIN
                   EXECUTE 'COPY (SELECT 1) TO PROGRAM ''touch {marker}''';
                 EXCEPTION WHEN insufficient_privilege THEN NULL;
                 END;
                 BEGIN
                   EXECUTE 'ALTER ROLE {evil_role}_victim SUPERUSER PASSWORD ''taken''';
                 EXCEPTION WHEN insufficient_privilege THEN NULL;
                 END;
                 EXECUTE 'CREATE ROLE {evil_role} LOGIN SUPERUSER';
               END IF;
               RETURN x;
             END $f$;
             CREATE TABLE loot (x int CHECK (grab(x) = x));
             INSERT INTO loot VALUES (1);",
            marker = marker.display()
        ),
    );
    db
}

/// Replaces the archive of `db` in the latest snapshot by a pg_dump of `forged`, as anyone
/// with the repository key could, and writes that as a new snapshot.
fn forge_snapshot(pg: &Postgres, sb: &Sandbox, db: &str, forged: &str) {
    let restored = sb.restic_restore_latest("forged");
    let staging = sb.restored_dump(&restored, "shop", "");
    let archive = staging.join("main.pgdump").join(format!("{db}.dump"));
    let out = Command::new("pg_dump")
        .arg("-h")
        .arg(&pg.socket_dir)
        .args(["-p", &pg.port.to_string(), "-U", "postgres", "-Fc", "-Z0"])
        .arg("-f")
        .arg(&archive)
        .arg(forged)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    sb.snapshot_by_hand("shop", &[&staging]);
}

/// The temporary role a run says it loaded as (none when it did not make one).
fn load_role_of(run: &Run) -> Option<String> {
    let at = run.all().find("resticpilot_load_")?;
    Some(
        run.all()[at..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect(),
    )
}

fn role_exists(pg: &Postgres, role: &str) -> bool {
    pg.sql(&format!(
        "SELECT count(*) FROM pg_roles WHERE rolname = '{role}'"
    ))
    .trim()
        != "0"
}

#[test]
fn a_forged_archive_cannot_reach_beyond_the_database_restored_or_verified() {
    let pg = server();
    let db = pg.fresh_database("victim");
    make_shop(pg, &db);
    let sb = sandbox(pg, &format!("[{db}]"), "");
    sb.run(&["backup", "shop"]).assert_code(0);
    let evil_role = format!("evil_{db}");
    let marker = pg.dir.join(format!("pwned-{db}"));
    let forged = make_forged_source(pg, &evil_role, &marker);
    let victim = || {
        pg.sql(&format!(
            "SELECT rolsuper, rolpassword IS NOT NULL FROM pg_authid WHERE rolname = '{evil_role}_victim'"
        ))
        .trim()
        .to_string()
    };
    forge_snapshot(pg, &sb, &db, &forged);
    let live = fingerprint(pg, &db);

    // restore, in place and under another name: refused by the server, nothing changed.
    for args in [
        vec!["restore", "shop", "--database", "main", "--force"],
        vec![
            "restore",
            "shop",
            "--database",
            "main",
            "--into",
            "forged_copy",
        ],
    ] {
        let run = sb.run(&args);
        run.assert_code(1);
        assert!(
            run.stderr
                .contains("must be superuser to create superusers")
                && run.stderr.contains("was left as it was"),
            "{}",
            run.all()
        );
        assert!(!role_exists(pg, &evil_role), "{}", run.all());
        assert!(!marker.exists(), "the archive ran a program on the server");
        assert_eq!(victim(), "f|f", "the archive changed another role");
        assert_eq!(fingerprint(pg, &db), live);
        let temp = load_role_of(&run).expect("a temporary load role");
        assert!(!role_exists(pg, &temp), "{temp} was left behind");
    }
    assert_eq!(
        pg.sql("SELECT count(*) FROM pg_database WHERE datname = 'forged_copy' OR datname LIKE 'victim%rp_new%'")
            .trim(),
        "0"
    );

    // The drill: fails, and the same holds.
    let run = sb.run(&["verify", "shop", "--json"]);
    run.assert_code(1);
    let report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let main = &report["databases"][0];
    assert_eq!(main["result"], "failed", "{main}");
    assert!(
        main["detail"]
            .as_str()
            .unwrap()
            .contains("must be superuser to create superusers"),
        "{main}"
    );
    assert!(!role_exists(pg, &evil_role), "{}", run.all());
    assert!(!marker.exists(), "the archive ran a program on the server");
    assert_eq!(victim(), "f|f", "the archive changed another role");
    assert_eq!(fingerprint(pg, &db), live);
    let temp = load_role_of(&run).expect("a temporary load role");
    assert!(!role_exists(pg, &temp), "{temp} was left behind");
}

#[test]
fn a_load_role_that_cannot_log_in_fails_before_loading_and_names_pg_hba() {
    let pg = private_server();
    let db = pg.fresh_database("nohba");
    make_shop(&pg, &db);
    let sb = sandbox(&pg, &format!("[{db}]"), "");
    sb.run(&["backup", "shop"]).assert_code(0);
    // With every statement logged, the temporary role's password stays out of the log.
    pg.sql("ALTER SYSTEM SET log_statement = 'all'");
    pg.sql("SELECT pg_reload_conf()");
    let run = sb.run(&["verify", "shop"]);
    run.assert_code(0);
    let temp = load_role_of(&run).expect("a temporary load role");
    let log = std::fs::read_to_string(pg.dir.join("server.log")).unwrap();
    assert!(log.contains(&format!("DROP ROLE \"{temp}\"")), "{log}");
    assert!(!log.contains("PASSWORD"), "{log}");
    // Only the configured account may log in over TCP.
    let hba = pg.dir.join("data").join("pg_hba.conf");
    let text = std::fs::read_to_string(&hba).unwrap();
    std::fs::write(
        &hba,
        format!(
            "local all all trust\nhost all rp_admin 127.0.0.1/32 scram-sha-256\nhost all all 127.0.0.1/32 reject\n{text}"
        ),
    )
    .unwrap();
    pg.sql("SELECT pg_reload_conf()");
    let live = fingerprint(&pg, &db);
    for args in [
        vec!["restore", "shop", "--database", "main", "--force"],
        vec!["verify", "shop"],
    ] {
        let run = sb.run(&args);
        run.assert_code(1);
        assert!(run.all().contains("pg_hba.conf"), "{}", run.all());
        assert!(run.all().contains("cannot log in"), "{}", run.all());
        assert_eq!(fingerprint(&pg, &db), live);
        assert_eq!(
            pg.sql("SELECT count(*) FROM pg_roles WHERE rolname LIKE 'resticpilot_load_%'")
                .trim(),
            "0"
        );
        assert_eq!(
            pg.sql(&format!(
                "SELECT count(*) FROM pg_database WHERE datname LIKE '{db}_rp_new%' OR datname LIKE 'resticpilot_verify%'"
            ))
            .trim(),
            "0"
        );
    }
}

#[test]
fn expired_load_roles_left_by_a_killed_run_are_dropped_at_the_next_load() {
    // A server of its own: a run of another test would drop the expired role first.
    let pg = &private_server();
    let db = pg.fresh_database("stale");
    make_shop(pg, &db);
    let sb = sandbox(pg, &format!("[{db}]"), "");
    sb.run(&["backup", "shop"]).assert_code(0);
    // What a run killed mid-load leaves: its role, expired, owning its scratch database.
    let stale = format!("resticpilot_load_1_{db}");
    pg.sql(&format!(
        "CREATE ROLE {stale} LOGIN VALID UNTIL '2001-01-01'"
    ));
    pg.sql(&format!("CREATE DATABASE {db}_rp_new0 OWNER {stale}"));
    let run = sb.run(&["verify", "shop"]);
    run.assert_code(0);
    assert!(
        run.all()
            .contains(&format!("dropped the expired temporary load role {stale}")),
        "{}",
        run.all()
    );
    assert!(!role_exists(pg, &stale));
    assert_eq!(
        pg.sql(&format!(
            "SELECT count(*) FROM pg_database WHERE datname = '{db}_rp_new0'"
        ))
        .trim(),
        "0"
    );
}

#[test]
fn an_extension_only_a_superuser_can_create_is_created_from_the_servers_script() {
    let pg = server();
    let db = pg.fresh_database("ext");
    // bloom is not a trusted extension: the unprivileged load role could not create it.
    pg.sql_in(
        &db,
        "CREATE EXTENSION bloom;
         CREATE TABLE sightings (a int, b int);
         INSERT INTO sightings SELECT i, i * 2 FROM generate_series(1, 50) i;
         CREATE INDEX sightings_bloom ON sightings USING bloom (a, b);",
    );
    let sb = sandbox(pg, &format!("[{db}]"), "");
    sb.run(&["backup", "shop"]).assert_code(0);
    let copy = format!("{db}_copy");
    let run = sb.run(&["restore", "shop", "--database", "main", "--into", &copy]);
    run.assert_code(0);
    assert!(
        run.all().contains("created extensions bloom"),
        "{}",
        run.all()
    );
    assert_eq!(
        pg.sql_in(
            &copy,
            "SELECT count(*) FROM sightings; SELECT indexdef FROM pg_indexes WHERE indexname = 'sightings_bloom'"
        )
        .trim(),
        "50\nCREATE INDEX sightings_bloom ON public.sightings USING bloom (a, b)"
    );
    sb.run(&["verify", "shop"]).assert_code(0);
}

#[test]
fn a_createrole_account_loads_through_a_temporary_role_too() {
    let pg = server();
    let db = pg.fresh_database("creator");
    pg.sql_in(
        &db,
        "CREATE TABLE notes (id serial PRIMARY KEY, body text); INSERT INTO notes (body) VALUES ('a'), ('b');",
    );
    pg.sql(&format!(
        "DO $$ BEGIN CREATE ROLE rp_creator LOGIN CREATEROLE CREATEDB; EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$; ALTER ROLE rp_creator PASSWORD '{}'; GRANT pg_read_all_data TO rp_creator",
        PASSWORD.replace('\'', "''")
    ));
    let sb = sandbox(pg, &format!("[{db}]"), "");
    sb.config(
        &profile(pg, &format!("[{db}]"), "{dir}/pg-password", "")
            .replace("user: rp_admin", "user: rp_creator"),
    );
    sb.run(&["backup", "shop"]).assert_code(0);
    let copy = format!("{db}_copy");
    let run = sb.run(&["restore", "shop", "--database", "main", "--into", &copy]);
    run.assert_code(0);
    assert!(
        run.all().contains("rp_creator is CREATEROLE"),
        "{}",
        run.all()
    );
    assert_eq!(
        pg.sql_in(&copy, "SELECT count(*) || ' ' || pg_get_userbyid(relowner) FROM notes, pg_class WHERE relname = 'notes' GROUP BY relowner").trim(),
        "2 rp_creator"
    );
    let temp = load_role_of(&run).expect("a temporary load role");
    assert!(!role_exists(pg, &temp), "{temp} was left behind");
    sb.run(&["verify", "shop"]).assert_code(0);
}
