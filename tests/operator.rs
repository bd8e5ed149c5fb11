//! What an operator reads: the version, completions, the man page, log formats, the demo.

use std::process::Command;

fn resticpilot(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_resticpilot"))
        .args(args)
        .env_remove("RESTICPILOT_CONFIG")
        .env_remove("RESTICPILOT_LOG_FORMAT")
        .env_remove("RUST_LOG")
        .output()
        .expect("run resticpilot")
}

#[test]
fn version_names_the_commit_it_was_built_from() {
    let out = resticpilot(&["--version"]);
    assert!(out.status.success());
    let version = String::from_utf8_lossy(&out.stdout);
    let head = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("git: the tests run in a clone of the repository");
    assert!(head.status.success(), "not a git checkout");
    let head = String::from_utf8_lossy(&head.stdout).trim().to_string();
    assert_eq!(
        version.trim(),
        format!("resticpilot {} (commit {head})", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn completions_and_the_manual_page_need_no_config() {
    // -c names a file that does not exist: neither reads it.
    for shell in ["bash", "zsh", "fish"] {
        let out = resticpilot(&["-c", "/nonexistent/config.yaml", "completions", shell]);
        assert!(out.status.success(), "completions {shell}: {out:?}");
        let script = String::from_utf8_lossy(&out.stdout);
        for word in ["resticpilot", "backup", "restore", "verify", "snapshot"] {
            assert!(script.contains(word), "completions {shell} lack {word}");
        }
    }
    let out = resticpilot(&["completions", "tcsh"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "an unknown shell is a usage error"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("bash"));

    let out = resticpilot(&["-c", "/nonexistent/config.yaml", "man"]);
    assert!(out.status.success(), "{out:?}");
    let page = String::from_utf8_lossy(&out.stdout);
    assert!(page.contains(".TH resticpilot 1"), "not a roff page");
    for command in [
        "backup",
        "restore",
        "verify",
        "daemon",
        "prune",
        "completions",
    ] {
        assert!(page.contains(command), "the manual page lacks {command}");
    }
}

/// Every line of stderr, parsed as JSON: a line that is not JSON fails the test.
fn json_lines(stderr: &str) -> Vec<serde_json::Value> {
    stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l:?}")))
        .collect()
}

#[test]
fn json_logs_are_json_from_the_first_line_to_the_final_error() {
    use crate::harness::{Sandbox, make_sqlite};
    let sb = Sandbox::new();
    drop(make_sqlite(&sb.path("data/app.db"), 10));
    sb.config(
        "profiles:\n  app:\n    repository: local\n    databases:\n      - { name: app, type: sqlite, path: '{dir}/data/app.db' }\n      - { name: gone, type: sqlite, path: '{dir}/data/gone.db' }\n",
    );
    // The environment variable selects the format, as the image's default command would.
    let out = sb
        .command(&sb.path("config.yaml"), &["backup"])
        .env("RESTICPILOT_LOG_FORMAT", "json")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let events = json_lines(&stderr);
    assert!(events.len() >= 3, "{stderr}");
    // Fields beside the message, not nested.
    assert!(
        events
            .iter()
            .any(|e| e["profile"] == "app" && e["message"].is_string()),
        "{stderr}"
    );
    // The error is printed once: the final event, not also a log line before it.
    let errors = events.iter().filter(|e| e["level"] == "ERROR").count();
    assert_eq!(errors, 1, "{stderr}");
    let last = events.last().unwrap();
    assert_eq!(last["level"], "ERROR", "{stderr}");
    assert_eq!(last["exit_code"], 1, "{stderr}");
    assert!(
        last["message"].as_str().unwrap().contains("gone"),
        "{stderr}"
    );

    // A run that succeeds: its summary's numbers are JSON numbers.
    let good = sb.write_config(
        "good.yaml",
        &std::fs::read_to_string(sb.path("config.yaml"))
            .unwrap()
            .lines()
            .filter(|l| !l.contains("gone"))
            .map(|l| format!("{l}\n"))
            .collect::<String>(),
    );
    let run = sb.run_with(&good, &["--log-format", "json", "backup"]);
    run.assert_code(0);
    let events = json_lines(&run.stderr);
    let done = events
        .iter()
        .find(|e| e["message"].as_str().unwrap().starts_with("backup done"))
        .unwrap_or_else(|| panic!("no summary in {}", run.stderr));
    for field in ["duration_s", "files", "bytes_added"] {
        assert!(done[field].is_number(), "{field} in {done}");
    }

    // Config errors: one event each, positions as numbers.
    let bad = sb.write_config(
        "bad.yaml",
        "repositories:\n  local: { url: '{dir}/repo', password_file: '{dir}/restic-password' }\nprofiles:\n  a: { repository: nowhere, paths: ['{dir}/data'] }\n  b: { repository: elsewhere, paths: ['{dir}/data'] }\n",
    );
    let run = sb.run_with(&bad, &["--log-format", "json", "validate"]);
    run.assert_code(2);
    let events = json_lines(&run.stderr);
    assert!(events.len() >= 2, "{}", run.stderr);
    for e in &events {
        assert_eq!(e["level"], "ERROR");
        assert!(e["line"].as_u64().unwrap() >= 4, "{e}");
        assert!(e["column"].is_u64(), "{e}");
        assert_eq!(e["exit_code"], 2);
    }

    // clap's own refusals too.
    let run = sb.run(&["--log-format=json", "restore"]);
    run.assert_code(2);
    let events = json_lines(&run.stderr);
    assert_eq!(events.len(), 1, "{}", run.stderr);
    assert!(events[0]["message"].as_str().unwrap().contains("<PROFILE>"));
}

#[test]
fn a_missing_config_says_where_the_path_came_from() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.yaml");
    let missing = missing.to_str().unwrap();
    let out = resticpilot(&["-c", missing, "status"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr.contains(missing) && stderr.contains("comes from -c"),
        "{stderr}"
    );
    assert!(stderr.contains("RESTICPILOT_CONFIG=FILE"), "{stderr}");
    let out = Command::new(env!("CARGO_BIN_EXE_resticpilot"))
        .arg("status")
        .env("RESTICPILOT_CONFIG", missing)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("comes from RESTICPILOT_CONFIG"), "{stderr}");
}

/// Colours on a terminal (a pseudo-terminal from util-linux's `script`), none with NO_COLOR.
#[test]
fn no_color_turns_colours_off_on_a_terminal() {
    crate::harness::require("script");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(dir.path().join("pw"), "a password").unwrap();
    std::fs::create_dir(dir.path().join("data")).unwrap();
    std::fs::write(
        &config,
        format!(
            "state_dir: {0}/state\nrepositories:\n  r: {{ url: '{0}/repo', password_file: '{0}/pw', init: true }}\nprofiles:\n  p: {{ repository: r, paths: ['{0}/data'] }}\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let run = |no_color: Option<&str>| {
        let line = format!(
            "{} -c {} backup",
            env!("CARGO_BIN_EXE_resticpilot"),
            config.display()
        );
        let mut cmd = Command::new("script");
        cmd.args(["-qec", &line, "/dev/null"])
            .env_remove("RUST_LOG")
            .env_remove("RESTICPILOT_LOG_FORMAT")
            .env_remove("NO_COLOR");
        if let Some(v) = no_color {
            cmd.env("NO_COLOR", v);
        }
        let out = cmd.output().unwrap();
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    // A colour is an SGR sequence, ESC [ digits;... m (the progress line's ESC [2K is not one).
    let has_colour = |text: &str| {
        text.split('\u{1b}').skip(1).any(|seq| {
            seq.strip_prefix('[').is_some_and(|rest| {
                let end = rest.find(|c: char| !(c.is_ascii_digit() || c == ';'));
                end.is_some_and(|i| rest[i..].starts_with('m'))
            })
        })
    };
    let coloured = run(None);
    assert!(
        has_colour(&coloured),
        "no colour on a terminal: {coloured:?}"
    );
    let plain = run(Some("1"));
    assert!(!has_colour(&plain), "colour despite NO_COLOR: {plain:?}");
    assert!(
        plain.contains("INFO") || plain.contains("WARN"),
        "{plain:?}"
    );
}

/// `resticpilot ... | head`: the reader goes away, resticpilot ends quietly (141, as if killed
/// by SIGPIPE), no panic on stderr.
#[test]
fn a_closed_stdout_ends_the_process_quietly() {
    use std::process::Stdio;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        "repositories:\n  r: { url: /srv/repo, password_file: /srv/pw }\nprofiles:\n  p: { repository: r, paths: [/srv/data] }\n",
    )
    .unwrap();
    // A generated script, and the printed lines of `validate`.
    for args in [
        vec!["completions", "bash"],
        vec!["-c", config.to_str().unwrap(), "validate"],
    ] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_resticpilot"))
            .args(&args)
            .env_remove("RUST_BACKTRACE")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert_eq!(out.status.code(), Some(141), "{args:?}: {stderr}");
    }
}

/// The demo's config finds the demo's directory (./demo beside profiles/) from anywhere, so the
/// commands scripts/demo.sh prints at its end work as printed.
#[test]
fn the_demo_config_points_at_the_demo_directory() {
    let root = env!("CARGO_MANIFEST_DIR");
    let out = Command::new(env!("CARGO_BIN_EXE_resticpilot"))
        .args(["-c", &format!("{root}/profiles/demo.yaml"), "validate"])
        .current_dir("/")
        .env_remove("RESTICPILOT_DEMO_DIR")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("OK (1 repository, 1 profile)"), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "repository local ({root}/profiles/../demo/repository)"
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("sqlite {root}/profiles/../demo/data/app.db")),
        "{stdout}"
    );
    let script = std::fs::read_to_string(format!("{root}/scripts/demo.sh")).unwrap();
    assert!(script.contains("-c profiles/demo.yaml verify demo"));
}

/// Text logs too: a failed run's error is printed once, as the last line.
#[test]
fn a_failed_run_prints_its_error_once() {
    use crate::harness::Sandbox;
    let sb = Sandbox::new();
    sb.config(
        "profiles:\n  app:\n    repository: local\n    databases:\n      - { name: gone, type: sqlite, path: '{dir}/data/gone.db' }\n",
    );
    let run = sb.run(&["backup"]);
    run.assert_code(1);
    assert_eq!(run.stderr.matches("gone.db").count(), 1, "{}", run.stderr);
    assert!(
        run.stderr
            .trim_end()
            .lines()
            .last()
            .unwrap()
            .starts_with("error: "),
        "{}",
        run.stderr
    );
    // A job the daemon also runs (check): its error once too.
    std::fs::write(sb.path("restic-password"), "not the password").unwrap();
    let run = sb.run(&["check", "app"]);
    run.assert_code(1);
    assert_eq!(
        run.stderr.matches("wrong password").count(),
        1,
        "{}",
        run.stderr
    );
}

/// Without a terminal (a container's log), long work logs a heartbeat with its progress; `-q`
/// hides it with the other INFO lines, and in JSON logs it is JSON.
#[test]
fn long_work_logs_a_heartbeat_without_a_terminal() {
    use crate::harness::Sandbox;
    let sb = Sandbox::new();
    sb.config(
        "profiles:\n  app:\n    repository: local\n    databases:\n      - { name: slow, type: command, extension: txt, dump: 'sleep 3; echo done', restore: 'cat >/dev/null' }\n",
    );
    let run = |args: &[&str]| {
        let out = sb
            .command(&sb.path("config.yaml"), args)
            .env("RESTICPILOT_HEARTBEAT", "1s")
            .output()
            .unwrap();
        crate::harness::to_run(out)
    };
    let text = run(&["backup"]);
    text.assert_code(0);
    let beats: Vec<&str> = text
        .stderr
        .lines()
        .filter(|l| l.contains("INFO") && l.contains("dumping slow:") && l.contains("written"))
        .collect();
    assert!(
        !beats.is_empty(),
        "no heartbeat during a 3 s dump:\n{}",
        text.stderr
    );
    assert!(beats.len() <= 4, "more than one a second:\n{}", text.stderr);

    let quiet = run(&["-q", "backup"]);
    quiet.assert_code(0);
    assert!(!quiet.stderr.contains("dumping slow:"), "{}", quiet.stderr);

    let json = run(&["--log-format", "json", "backup"]);
    json.assert_code(0);
    let events = json_lines(&json.stderr);
    assert!(
        events.iter().any(|e| e["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("dumping slow:"))),
        "{}",
        json.stderr
    );
}
