//! The maintenance window as far as it can be seen without a Docker engine: a profile that
//! needs one, run where the socket is missing, fails before any dump with an error that says
//! to mount the socket, and leaves no snapshot. (docker/e2e.sh runs the window against a real
//! engine: containers stopped for the dumps and started again, also when a dump fails.)

use crate::harness::{Sandbox, make_sqlite};

const WINDOW: &str = "profiles:
  app:
    repository: local
    databases:
      - { name: app, type: sqlite, path: '{dir}/data/app.db' }
    maintenance:
      stop: [app-writer, app-worker]
      timeout: 5s
    hooks:
      on_failure: ['echo \"$RESTICPILOT_ERROR\" > {dir}/on-failure.txt']
";

#[test]
fn a_missing_docker_socket_fails_the_run_before_the_dumps() {
    let sb = Sandbox::new();
    drop(make_sqlite(&sb.path("data/app.db"), 10));
    let config = sb.config(WINDOW);
    let socket = sb.path("no-docker.sock");
    let out = sb
        .command(&config, &["backup"])
        .env("DOCKER_HOST", format!("unix://{}", socket.display()))
        .output()
        .unwrap();
    let run = crate::harness::to_run(out);
    run.assert_code(1);
    assert!(
        run.stderr.contains(&format!(
            "maintenance window: the Docker socket {} does not exist",
            socket.display()
        )),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("/var/run/docker.sock:/var/run/docker.sock"),
        "the error says how to mount it:\n{}",
        run.stderr
    );
    assert!(!run.stderr.contains("dumping"), "{}", run.stderr);
    assert!(sb.snapshots().is_empty());
    assert!(
        sb.staging_files("app").is_empty(),
        "{:?}",
        sb.staging_files("app")
    );
    let hook = std::fs::read_to_string(sb.path("on-failure.txt")).unwrap();
    assert!(hook.contains("Docker socket"), "{hook}");
}

#[test]
fn a_docker_host_that_is_not_a_unix_socket_is_refused() {
    let sb = Sandbox::new();
    drop(make_sqlite(&sb.path("data/app.db"), 10));
    let config = sb.config(WINDOW);
    let out = sb
        .command(&config, &["backup"])
        .env("DOCKER_HOST", "tcp://127.0.0.1:1")
        .output()
        .unwrap();
    let run = crate::harness::to_run(out);
    run.assert_code(1);
    assert!(
        run.stderr
            .contains("DOCKER_HOST=tcp://127.0.0.1:1 is not a unix socket"),
        "{}",
        run.stderr
    );
    assert!(sb.snapshots().is_empty());
}

#[test]
fn dry_run_and_validate_show_the_window() {
    let sb = Sandbox::new();
    sb.config(WINDOW);
    let plan = sb.run(&["backup", "--dry-run"]);
    plan.assert_code(0);
    assert!(
        plan.stdout.contains(
            "stop      app-writer, app-worker (Docker engine; 5s each before it kills), started again after the dumps: app-worker, app-writer"
        ),
        "{}",
        plan.stdout
    );
    let validate = sb.run(&["validate"]);
    validate.assert_code(0);
    assert!(
        validate.stdout.contains(
            "maintenance: stop app-writer, app-worker around the dumps (timeout 5s each)"
        ),
        "{}",
        validate.stdout
    );
}
