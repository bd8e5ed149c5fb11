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
