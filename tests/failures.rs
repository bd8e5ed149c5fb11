//! Bad input and broken surroundings: each gets a clear error naming the bad thing, a
//! non-zero exit, and loses nothing.

use crate::harness::{Sandbox, make_sqlite};

const APP: &str = "profiles:
  app:
    repository: local
    databases:
      - { name: app, type: sqlite, path: '{dir}/data/app.db' }
";

/// A backup after the repository's password file changed to a wrong one: exit 1, the error
/// names the password. The file stays wrong.
fn backup_with_a_wrong_password(sb: &Sandbox) -> crate::harness::Run {
    std::fs::write(sb.path("restic-password"), "not it").unwrap();
    let run = sb.run(&["backup"]);
    run.assert_code(1);
    assert!(
        run.stderr.contains("wrong password for repository local"),
        "{}",
        run.stderr
    );
    run
}

#[test]
fn wrong_restic_password_is_named_and_makes_no_snapshot() {
    let sb = Sandbox::new();
    drop(make_sqlite(&sb.path("data/app.db"), 10));
    sb.config(APP);
    sb.run(&["backup"]).assert_code(0);
    backup_with_a_wrong_password(&sb);
    std::fs::write(sb.path("restic-password"), crate::harness::RESTIC_PASSWORD).unwrap();
    assert_eq!(sb.snapshots().len(), 1);
}

/// The repository check runs beside the dumps: when a dump fails too, the repository's error is
/// the one the run ends with (the cause to fix first), and there is still no snapshot.
#[test]
fn a_wrong_password_is_the_error_even_when_a_dump_fails_beside_it() {
    let sb = Sandbox::new();
    drop(make_sqlite(&sb.path("data/app.db"), 10));
    sb.config(APP);
    sb.run(&["backup"]).assert_code(0);
    std::fs::write(sb.path("data/app.db"), vec![b'x'; 64 << 10]).unwrap();
    let run = backup_with_a_wrong_password(&sb);
    let error = run.stderr.lines().last().unwrap_or_default();
    assert!(error.contains("wrong password"), "{}", run.stderr);
    std::fs::write(sb.path("restic-password"), crate::harness::RESTIC_PASSWORD).unwrap();
    assert_eq!(sb.snapshots().len(), 1);
    // The dump's own failure, with the repository fine, is the error again.
    let run = sb.run(&["backup"]);
    run.assert_code(1);
    assert!(!run.stderr.contains("wrong password"), "{}", run.stderr);
    assert!(run.stderr.contains("app"), "{}", run.stderr);
    assert_eq!(sb.snapshots().len(), 1);
}

/// With a before hook the repository is checked first: a hook never runs (an application
/// never stopped, say) for a run that cannot make a snapshot.
#[test]
fn a_before_hook_does_not_run_when_the_repository_cannot_be_opened() {
    let sb = Sandbox::new();
    drop(make_sqlite(&sb.path("data/app.db"), 10));
    sb.config(&format!(
        "{APP}    hooks:\n      before: ['touch {{dir}}/hook-ran']\n"
    ));
    sb.run(&["backup"]).assert_code(0);
    std::fs::remove_file(sb.path("hook-ran")).unwrap();
    let run = backup_with_a_wrong_password(&sb);
    assert!(!sb.path("hook-ran").exists(), "{}", run.stderr);
    assert!(!run.stderr.contains("dumping"), "{}", run.stderr);
}

#[test]
fn unreachable_repository_is_named() {
    let sb = Sandbox::new();
    drop(make_sqlite(&sb.path("data/app.db"), 10));
    sb.config(APP);
    // Port 1 on loopback: nothing listens there, the connection is refused at once.
    let text = std::fs::read_to_string(sb.path("config.yaml"))
        .unwrap()
        .replace(
            &format!("url: {}/repo", sb.dir.path().display()),
            "url: rest:http://127.0.0.1:1/repo",
        );
    std::fs::write(sb.path("config.yaml"), text).unwrap();
    let run = sb.run(&["backup"]);
    run.assert_code(1);
    assert!(
        run.stderr
            .contains("repository local (rest:http://127.0.0.1:1/repo) is unreachable"),
        "{}",
        run.stderr
    );
}

#[test]
fn missing_repository_without_init_says_how_to_create_it() {
    let sb = Sandbox::new();
    drop(make_sqlite(&sb.path("data/app.db"), 10));
    sb.config(APP);
    let text = std::fs::read_to_string(sb.path("config.yaml"))
        .unwrap()
        .replace("init: true", "init: false");
    std::fs::write(sb.path("config.yaml"), text).unwrap();
    let run = sb.run(&["backup"]);
    run.assert_code(1);
    assert!(run.stderr.contains("does not exist"), "{}", run.stderr);
    assert!(run.stderr.contains("init: true"), "{}", run.stderr);
    assert!(!sb.repo().exists());
}

#[test]
fn missing_restic_binary_is_named() {
    let sb = Sandbox::new();
    drop(make_sqlite(&sb.path("data/app.db"), 10));
    sb.config(APP);
    let text = format!(
        "restic_binary: /nonexistent/restic\n{}",
        std::fs::read_to_string(sb.path("config.yaml")).unwrap()
    );
    std::fs::write(sb.path("config.yaml"), text).unwrap();
    let run = sb.run(&["backup"]);
    run.assert_code(1);
    assert!(
        run.stderr.contains("could not start /nonexistent/restic"),
        "{}",
        run.stderr
    );
}

#[test]
fn restic_older_than_0_14_is_refused_with_its_version() {
    let sb = Sandbox::new();
    drop(make_sqlite(&sb.path("data/app.db"), 10));
    // A fake restic: only `restic version` can be answered by something that isn't restic.
    let fake = sb.path("old-restic");
    std::fs::write(
        &fake,
        "#!/bin/sh\necho 'restic 0.9.6 compiled with go1.13 on linux/amd64'\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    sb.config(APP);
    let text = format!(
        "restic_binary: {}\n{}",
        fake.display(),
        std::fs::read_to_string(sb.path("config.yaml")).unwrap()
    );
    std::fs::write(sb.path("config.yaml"), text).unwrap();
    let run = sb.run(&["backup"]);
    run.assert_code(1);
    assert!(
        run.stderr
            .contains("is restic 0.9.6; resticpilot needs restic 0.14.0 or newer"),
        "{}",
        run.stderr
    );
}

#[test]
fn missing_sqlite_file_fails_the_run_and_is_not_created() {
    let sb = Sandbox::new();
    sb.config(APP);
    let run = sb.run(&["backup"]);
    run.assert_code(1);
    assert!(
        run.stderr.contains("dump of database app failed"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("data/app.db"), "{}", run.stderr);
    assert!(
        !sb.path("data/app.db").exists(),
        "a missing database must not be created"
    );
    assert!(sb.snapshots().is_empty());
}

#[test]
fn corrupt_sqlite_file_fails_the_run_before_restic() {
    let sb = Sandbox::new();
    std::fs::write(sb.path("data/app.db"), vec![7u8; 8192]).unwrap();
    sb.config(APP);
    let run = sb.run(&["backup"]);
    run.assert_code(1);
    assert!(
        run.stderr.contains("not a readable SQLite database"),
        "{}",
        run.stderr
    );
    assert!(sb.snapshots().is_empty());
}

#[test]
fn failing_before_hook_aborts_and_on_failure_runs() {
    let sb = Sandbox::new();
    drop(make_sqlite(&sb.path("data/app.db"), 10));
    sb.config(&format!(
        "{APP}    hooks:
      before: ['echo stopping; exit 5']
      on_failure: ['echo \"$RESTICPILOT_PROFILE: $RESTICPILOT_ERROR\" > {{dir}}/failure.txt']
"
    ));
    let run = sb.run(&["backup"]);
    run.assert_code(1);
    assert!(
        run.stderr
            .contains("before hook `echo stopping; exit 5` exited with status 5"),
        "{}",
        run.stderr
    );
    let note = std::fs::read_to_string(sb.path("failure.txt")).unwrap();
    assert!(note.starts_with("app: before hook"), "{note}");
    assert!(sb.snapshots().is_empty());
}

#[test]
fn concurrent_run_of_the_same_profile_is_refused() {
    let sb = Sandbox::new();
    drop(make_sqlite(&sb.path("data/app.db"), 10));
    sb.config(&format!(
        "{APP}    hooks:
      before: ['touch {{dir}}/started; sleep 3']
"
    ));
    let first = sb
        .command(&sb.path("config.yaml"), &["backup"])
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !sb.path("started").exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "first run never reached its hook"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let second = sb.run(&["backup"]);
    second.assert_code(1);
    assert!(
        second.stderr.contains("profile app is already running"),
        "{}",
        second.stderr
    );
    let first = first.wait_with_output().unwrap();
    assert!(first.status.success());
    assert_eq!(
        sb.snapshots().len(),
        1,
        "only the first run made a snapshot"
    );
}

#[test]
fn staging_dir_that_is_not_ours_is_never_emptied() {
    let sb = Sandbox::new();
    drop(make_sqlite(&sb.path("data/app.db"), 10));
    std::fs::write(sb.path("data/precious.txt"), "keep me").unwrap();
    // Pointed at the directory of the database: validate refuses it (nothing runs).
    sb.config(&format!("{APP}    staging_dir: '{{dir}}/data'\n"));
    let run = sb.run(&["backup"]);
    run.assert_code(2);
    assert!(
        run.stderr.contains("holds the file of database app"),
        "{}",
        run.stderr
    );
    // Pointed at someone's directory validate cannot know about: refused at run time.
    std::fs::create_dir(sb.path("other")).unwrap();
    std::fs::write(sb.path("other/precious.txt"), "keep me").unwrap();
    sb.config(&format!("{APP}    staging_dir: '{{dir}}/other'\n"));
    let run = sb.run(&["backup"]);
    run.assert_code(1);
    assert!(
        run.stderr.contains("refusing to empty it"),
        "{}",
        run.stderr
    );
    assert_eq!(
        std::fs::read_to_string(sb.path("other/precious.txt")).unwrap(),
        "keep me"
    );
    assert_eq!(
        std::fs::read_to_string(sb.path("data/precious.txt")).unwrap(),
        "keep me"
    );
    assert!(sb.path("data/app.db").exists());
}

#[test]
fn unknown_profile_is_a_usage_error_listing_the_known_ones() {
    let sb = Sandbox::new();
    sb.config(APP);
    let run = sb.run(&["backup", "nope"]);
    run.assert_code(2);
    assert!(
        run.stderr.contains("no profile named \"nope\""),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("profiles: app"), "{}", run.stderr);
}

#[test]
fn unreadable_file_finishes_with_exit_3_naming_it() {
    let sb = Sandbox::new();
    drop(make_sqlite(&sb.path("data/app.db"), 10));
    std::fs::create_dir(sb.path("data/etc")).unwrap();
    std::fs::write(sb.path("data/etc/ok.conf"), "ok").unwrap();
    std::fs::write(sb.path("data/etc/secret.key"), "no").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        sb.path("data/etc/secret.key"),
        std::fs::Permissions::from_mode(0o000),
    )
    .unwrap();
    sb.config(&format!("{APP}    paths: ['{{dir}}/data/etc']\n"));
    // root reads any file: run as nobody then, over a sandbox nobody owns.
    let as_root = crate::harness::is_root();
    if as_root {
        let ok = std::process::Command::new("chown")
            .args(["-R", "65534:65534"])
            .arg(sb.dir.path())
            .status()
            .unwrap()
            .success();
        assert!(ok);
    }
    let mut cmd = if as_root {
        let mut c = std::process::Command::new(crate::harness::require("setpriv"));
        c.args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            env!("CARGO_BIN_EXE_resticpilot"),
        ]);
        c
    } else {
        std::process::Command::new(env!("CARGO_BIN_EXE_resticpilot"))
    };
    cmd.arg("-c").arg(sb.path("config.yaml")).arg("backup");
    cmd.env("XDG_CACHE_HOME", sb.path("cache"))
        .env("HOME", sb.path("data"));
    let run = crate::harness::to_run(cmd.output().unwrap());
    run.assert_code(3);
    assert!(
        run.stderr.contains("restic could not read")
            || run.stderr.contains("missing files restic could not read"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("secret.key"), "{}", run.stderr);
    assert_eq!(
        sb.snapshots().len(),
        1,
        "the snapshot exists without the unreadable file"
    );
}

#[test]
fn a_locked_repository_is_waited_for_then_named_when_it_stays_locked() {
    let sb = Sandbox::new();
    drop(make_sqlite(&sb.path("data/app.db"), 10));
    sb.config(&format!("{APP}    lock_wait: 3s\n"));
    sb.run(&["backup"]).assert_code(0);
    let mut holder = hold_exclusive_lock(&sb);
    let run = sb.run(&["backup"]);
    // Let the holder finish: it removes its lock as it exits.
    let _ = std::process::Command::new("kill")
        .args(["-CONT", &holder.id().to_string()])
        .status();
    assert!(holder.wait().unwrap().success());
    run.assert_code(1);
    assert!(
        run.stderr.contains("repository local stayed locked"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("retrying"),
        "it waited before giving up: {}",
        run.stderr
    );
    assert_eq!(sb.snapshots().len(), 1);

    // A lock released while the run waits: the run goes on and succeeds.
    let text = std::fs::read_to_string(sb.path("config.yaml"))
        .unwrap()
        .replace("lock_wait: 3s", "lock_wait: 60s");
    std::fs::write(sb.path("config.yaml"), text).unwrap();
    let mut holder = hold_exclusive_lock(&sb);
    let mut waiting = sb
        .command(&sb.path("config.yaml"), &["backup"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The holder lets go once the run says it waits for the lock (not after a guessed time:
    // the run may still be clearing stale locks then).
    let (said, heard) = std::sync::mpsc::channel();
    let stderr = waiting.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in std::io::BufRead::lines(std::io::BufReader::new(stderr)) {
            let line = line.unwrap_or_default();
            if line.contains("retrying") || line.contains("the repository is locked") {
                let _ = said.send(());
            }
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    let waited = heard
        .recv_timeout(std::time::Duration::from_secs(60))
        .is_ok();
    let _ = std::process::Command::new("kill")
        .args(["-CONT", &holder.id().to_string()])
        .status();
    assert!(holder.wait().unwrap().success());
    let status = waiting.wait().unwrap();
    let stderr = reader.join().unwrap();
    assert!(waited, "the run never said it waits for the lock: {stderr}");
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert_eq!(sb.snapshots().len(), 2);
}

/// A real restic process holding the repository's exclusive lock: `restic prune`, stopped
/// (SIGSTOP) as soon as its lock file appears. Its pid stays alive, so the lock is not stale.
fn hold_exclusive_lock(sb: &Sandbox) -> std::process::Child {
    let locks = sb.repo().join("locks");
    // The local backend writes a lock as `<id>-tmp-<n>` and renames it: only a renamed one counts.
    let held = || {
        std::fs::read_dir(&locks)
            .unwrap()
            .filter(|e| {
                !e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .contains("-tmp-")
            })
            .count()
            > 0
    };
    for _attempt in 0..20 {
        let mut prune = std::process::Command::new("restic")
            .env("RESTIC_REPOSITORY", sb.repo())
            .env("RESTIC_PASSWORD_FILE", sb.path("restic-password"))
            .arg("prune")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        loop {
            if held() {
                let _ = std::process::Command::new("kill")
                    .args(["-STOP", &prune.id().to_string()])
                    .status();
                // Still holding it once stopped? Then it's ours to keep.
                if held() {
                    return prune;
                }
                let _ = std::process::Command::new("kill")
                    .args(["-CONT", &prune.id().to_string()])
                    .status();
            }
            if prune.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }
    panic!("could not catch restic prune holding its lock");
}
