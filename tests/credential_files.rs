//! Credentials from files, the Docker-secrets way: a repository's `env_files` (read at run
//! time, never printed, checked by `validate`) against a real S3 server (moto) that refuses
//! wrong keys, and notification URLs from `url_file`.

use crate::harness::{Sandbox, make_sqlite};
use crate::report::Receiver;
use crate::servers;

fn s3_config(sb: &Sandbox, bucket: &str, key_file: &str, secret_file: &str) {
    let s3 = servers::s3();
    sb.write_config(
        "config.yaml",
        &format!(
            "state_dir: {{dir}}/state
repositories:
  s3:
    url: 's3:http://127.0.0.1:{port}/{bucket}/repo'
    password_file: {{dir}}/restic-password
    init: true
    open_timeout: 60s
    env_files:
      AWS_ACCESS_KEY_ID: {key_file}
      AWS_SECRET_ACCESS_KEY: {secret_file}
profiles:
  app:
    repository: s3
    host: test-host
    databases:
      - {{ name: app, type: sqlite, path: '{{dir}}/data/app.db' }}
",
            port = s3.port
        ),
    );
}

#[test]
fn env_files_give_restic_the_s3_keys_and_never_show_them() {
    let s3 = servers::s3();
    let sb = Sandbox::new();
    drop(make_sqlite(&sb.path("data/app.db"), 100));
    // As Docker writes secrets from `echo`: with a trailing newline.
    std::fs::write(sb.path("key-id"), format!("{}\n", s3.key_id)).unwrap();
    std::fs::write(sb.path("secret-key"), format!("{}\n", s3.secret)).unwrap();
    let bucket = format!("rp-envfiles-{}", std::process::id());
    s3_config(&sb, &bucket, "{dir}/key-id", "secret-key");
    let check = sb.run(&["validate"]);
    check.assert_code(0);
    let run = sb.run(&["-v", "backup"]);
    run.assert_code(0);
    for secret in [&s3.key_id, &s3.secret] {
        assert!(
            !run.all().contains(secret.as_str()),
            "secret leaked: {}",
            run.all()
        );
    }

    // A wrong key in the file: the server refuses it, so the value really reached restic.
    std::fs::write(sb.path("secret-key"), "wrong-secret-key-0000000000000000\n").unwrap();
    let refused = sb.run(&["backup"]);
    assert_eq!(refused.code, 1, "{}", refused.all());
    assert!(
        !refused.all().contains("wrong-secret-key-0000"),
        "{}",
        refused.all()
    );
}

#[test]
fn an_unreadable_env_file_is_named_by_validate_and_by_backup() {
    let sb = Sandbox::new();
    drop(make_sqlite(&sb.path("data/app.db"), 10));
    std::fs::write(sb.path("key-id"), "AKIAEXAMPLE\n").unwrap();
    s3_config(&sb, "unused", "{dir}/key-id", "{dir}/missing-secret");
    let out = sb.run(&["validate"]);
    assert_eq!(out.code, 2, "{}", out.all());
    assert!(
        out.stderr
            .contains("config.yaml:10:30: repositories.s3.env_files.AWS_SECRET_ACCESS_KEY")
            && out.stderr.contains("missing-secret cannot be read"),
        "{}",
        out.stderr
    );
    // backup checks before restic starts, and says which variable the file was for.
    let out = sb.run(&["backup"]);
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(
        out.stderr.contains("env_files.AWS_SECRET_ACCESS_KEY")
            && out
                .stderr
                .contains("missing-secret of repository s3 is not readable"),
        "{}",
        out.stderr
    );
}

#[test]
fn env_files_refuse_what_resticpilot_manages_and_duplicates_of_env() {
    let sb = Sandbox::new();
    sb.write_config(
        "config.yaml",
        "repositories:
  r:
    url: /tmp/x
    password_file: /p
    env: { AWS_ACCESS_KEY_ID: a }
    env_files: { RESTIC_PASSWORD: /s, AWS_ACCESS_KEY_ID: /k }
profiles:
  p: { repository: r, paths: [/etc/hostname] }
",
    );
    let out = sb.run(&["validate"]);
    assert_eq!(out.code, 2, "{}", out.all());
    assert!(
        out.stderr
            .contains("env_files RESTIC_PASSWORD is managed by resticpilot"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("AWS_ACCESS_KEY_ID is set in both env and env_files"),
        "{}",
        out.stderr
    );
}

#[test]
fn healthchecks_and_webhook_urls_come_from_files_read_at_run_time() {
    let receiver = Receiver::start();
    let sb = Sandbox::new();
    drop(make_sqlite(&sb.path("data/app.db"), 10));
    std::fs::write(
        sb.path("hc-url"),
        format!("{}/ping/file-secret-uuid\n", receiver.url()),
    )
    .unwrap();
    std::fs::write(
        sb.path("hook-url"),
        format!("{}/hooks/file-token", receiver.url()),
    )
    .unwrap();
    sb.config(
        "profiles:
  app:
    repository: local
    host: test-host
    databases:
      - { name: app, type: sqlite, path: '{dir}/data/app.db' }
    notify:
      healthchecks: { url_file: '{dir}/hc-url' }
      webhook: { url_file: hook-url }
      webhook_on_success: true
",
    );
    sb.run(&["validate"]).assert_code(0);
    let run = sb.run(&["-v", "backup"]);
    run.assert_code(0);
    let paths: Vec<String> = receiver.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(
        paths,
        [
            "/ping/file-secret-uuid/start",
            "/ping/file-secret-uuid",
            "/hooks/file-token"
        ]
    );
    assert!(!run.all().contains("file-secret-uuid"), "{}", run.all());

    // A url_file gone at run time: validate names it; the backup still succeeds (a
    // notification never fails a run) and the log names the file.
    std::fs::remove_file(sb.path("hc-url")).unwrap();
    let out = sb.run(&["validate"]);
    assert_eq!(out.code, 2, "{}", out.all());
    assert!(
        out.stderr.contains("notify.healthchecks.url_file")
            && out.stderr.contains("hc-url cannot be read"),
        "{}",
        out.stderr
    );
    let run = sb.run(&["backup"]);
    run.assert_code(0);
    assert!(
        run.stderr.contains("hc-url cannot be read"),
        "{}",
        run.stderr
    );
}
