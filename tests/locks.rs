//! Repository locks held by others: `lock_wait` is waited in full and the error names whose
//! lock is in the way; a lock of this host whose pid now belongs to another program (a
//! recreated container keeps its host name, its pids start again from 1) does not block.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::daemon::wait_until;
use crate::harness::{Sandbox, is_root, make_sqlite};

const APP: &str = "profiles:
  app:
    repository: local
    host: test-host
    lock_wait: 10s
    databases:
      - { name: app, type: sqlite, path: '{dir}/data/app.db' }
    retention: { keep_last: 1 }
";

/// A real restic holding a shared lock on the sandbox repository until it is killed
/// (`restic backup --stdin` waiting for input), run through `prefix` (e.g. `unshare`).
fn lock_holder(sb: &Sandbox, prefix: &[&str]) -> std::process::Child {
    let (program, rest) = match prefix.split_first() {
        Some((p, rest)) => (p.to_string(), rest.to_vec()),
        None => ("restic".to_string(), Vec::new()),
    };
    let mut cmd = Command::new(program);
    cmd.args(rest);
    if !prefix.is_empty() {
        cmd.arg("restic");
    }
    cmd.env("RESTIC_REPOSITORY", sb.repo())
        .env("RESTIC_PASSWORD_FILE", sb.path("restic-password"))
        .args(["backup", "--stdin", "--stdin-filename", "held", "-q"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn locks(sb: &Sandbox) -> Vec<String> {
    let out = sb.restic(&["list", "locks", "--no-lock"]);
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn lock_wait_is_waited_in_full_and_the_error_names_the_holder() {
    let sb = Sandbox::new();
    drop(make_sqlite(&sb.path("data/app.db"), 10));
    sb.config(APP);
    sb.run(&["backup"]).assert_code(0);
    let mut holder = lock_holder(&sb, &[]);
    wait_until("the holder's lock", Duration::from_secs(30), || {
        (!locks(&sb).is_empty()).then_some(())
    });
    let start = Instant::now();
    let run = sb.run(&["forget", "app"]);
    let waited = start.elapsed();
    let _ = holder.kill();
    let _ = holder.wait();
    eprintln!("forget with lock_wait 10s gave up after {waited:?}");
    run.assert_code(1);
    assert!(
        run.stderr
            .contains("repository local stayed locked for 10s (lock_wait)"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains(&format!(
            "of host {} (pid {}, user",
            local_hostname(),
            holder.id()
        )),
        "{}",
        run.stderr
    );
    // restic's lock wait must not end before lock_wait: the defect was giving up at 21 of 30 s.
    assert!(
        waited >= Duration::from_secs(10),
        "gave up after {waited:?}, before lock_wait (10s)"
    );
}

fn local_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_string()
}

#[test]
fn a_lock_of_this_host_whose_pid_is_another_program_is_stale() {
    if !is_root() {
        assert!(
            std::env::var("CI").is_err(),
            "this test needs root (unshare --pid) and CI runs as root"
        );
        eprintln!("skipped: needs root for unshare --pid");
        return;
    }
    let sb = Sandbox::new();
    drop(make_sqlite(&sb.path("data/app.db"), 10));
    sb.config(APP);
    sb.run(&["backup"]).assert_code(0);
    // restic as pid 1 of a new pid namespace, as in a container: its lock says pid 1, host
    // this machine's name. Killed, it leaves the lock; here pid 1 is alive and is not restic,
    // so restic's own rule (host name equal, process exists) keeps the lock for 30 minutes.
    let mut holder = lock_holder(&sb, &["unshare", "--pid", "--fork", "--kill-child"]);
    wait_until("the holder's lock", Duration::from_secs(30), || {
        (!locks(&sb).is_empty()).then_some(())
    });
    // SIGKILL restic itself (the namespace's pid 1 takes it only from outside), then unshare.
    let children =
        std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", holder.id())).unwrap();
    let restic: i32 = children.split_whitespace().next().unwrap().parse().unwrap();
    kill(Pid::from_raw(restic), Signal::SIGKILL).unwrap();
    wait_until("restic to die", Duration::from_secs(30), || {
        (!std::path::Path::new(&format!("/proc/{restic}")).exists()
            || std::fs::read_to_string(format!("/proc/{restic}/stat"))
                .is_ok_and(|s| s.contains(") Z ")))
        .then_some(())
    });
    let _ = kill(Pid::from_raw(holder.id() as i32), Signal::SIGKILL);
    let _ = holder.wait();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        locks(&sb).len(),
        1,
        "the killed holder's lock stays: {:?}",
        locks(&sb)
    );
    let unlock = sb.restic(&["unlock"]);
    assert!(unlock.status.success());
    assert_eq!(
        locks(&sb).len(),
        1,
        "restic's own unlock keeps a lock whose pid exists"
    );

    let run = sb.run(&["backup"]);
    run.assert_code(0);
    assert!(
        run.stderr.contains("removing a stale shared lock"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("(pid 1, user"),
        "the log names the lock's pid: {}",
        run.stderr
    );
    assert!(
        run.stderr.contains("retention: kept 1 snapshot, removed 1"),
        "{}",
        run.stderr
    );
    assert!(locks(&sb).is_empty());
}
