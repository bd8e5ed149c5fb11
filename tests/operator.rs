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
