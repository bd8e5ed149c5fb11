//! `validate` and config errors as a user meets them, and the example profiles shipped in
//! the repository.

use crate::harness::Sandbox;

#[test]
fn validate_reports_every_error_with_line_and_column_and_exits_2() {
    let sb = Sandbox::new();
    let config = sb.write_config(
        "bad.yaml",
        "repositories:
  local:
    url: /tmp/x
    password_file: /tmp/pw
profiles:
  app:
    repository: offsite
    databses: []
",
    );
    let run = sb.run_with(&config, &["validate"]);
    run.assert_code(2);
    let path = config.display().to_string();
    assert!(
        run.stderr.contains(&format!("{path}:8:5: ")),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("databses"), "{}", run.stderr);
}

#[test]
fn semantic_errors_name_the_place_too() {
    let sb = Sandbox::new();
    let config = sb.write_config(
        "bad.yaml",
        "repositories:
  local:
    url: /tmp/x
    password_file: /tmp/pw
profiles:
  app:
    repository: offsite
    paths: ['${UNSET_VARIABLE_FOR_TEST}']
",
    );
    let run = sb.run_with(&config, &["validate"]);
    run.assert_code(2);
    let path = config.display().to_string();
    assert!(
        run.stderr.contains(&format!(
            "{path}:7:17: profile app: repository \"offsite\" is not defined (defined: local)"
        )),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains(&format!("{path}:8:")), "{}", run.stderr);
    assert!(
        run.stderr.contains("UNSET_VARIABLE_FOR_TEST is not set"),
        "{}",
        run.stderr
    );
}

#[test]
fn backup_with_a_bad_config_runs_nothing() {
    let sb = Sandbox::new();
    let config = sb.write_config(
        "bad.yaml",
        "repositories:\n  local: { url: '{dir}/repo', password_file: '{dir}/restic-password', init: true }\nprofiles:\n  app: { repository: local, paths: ['{dir}/data'], retention: { keep_daily: 0 } }\n",
    );
    let run = sb.run_with(&config, &["backup"]);
    run.assert_code(2);
    assert!(
        run.stderr.contains("retention keeps nothing"),
        "{}",
        run.stderr
    );
    assert!(!sb.repo().exists());
}

#[test]
fn missing_config_file_is_named() {
    let sb = Sandbox::new();
    let run = sb.run_with(&sb.path("nope.yaml"), &["validate"]);
    run.assert_code(2);
    assert!(
        run.stderr.contains("nope.yaml: cannot read config file"),
        "{}",
        run.stderr
    );
}

#[test]
fn bad_arguments_exit_2() {
    let sb = Sandbox::new();
    let run = sb.run(&["backup", "--no-such-flag"]);
    run.assert_code(2);
}

#[test]
fn every_example_profile_validates() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("profiles");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            let out = std::process::Command::new(env!("CARGO_BIN_EXE_resticpilot"))
                .arg("-c")
                .arg(&path)
                .arg("validate")
                .env_remove("RESTICPILOT_CONFIG")
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{} does not validate:\n{}",
                path.display(),
                String::from_utf8_lossy(&out.stderr)
            );
            checked += 1;
        }
    }
    assert!(
        checked >= 3,
        "expected the example profiles in {}",
        dir.display()
    );
}

#[test]
fn the_docker_stack_profiles_validate() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    for file in ["docker/profiles/stack.yaml", "docker/e2e/maintenance.yaml"] {
        let path = root.join(file);
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_resticpilot"))
            .arg("-c")
            .arg(&path)
            .arg("validate")
            .env_remove("RESTICPILOT_CONFIG")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{file} does not validate:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains("maintenance: stop"), "{file}: {stdout}");
    }
}
