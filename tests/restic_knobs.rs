//! restic's own knobs per repository, overridden per profile: compression measured in the
//! repository's size, bandwidth limits and pack size on the command lines `-v` shows,
//! `extra_args` with their guard, and what restic 0.14 cannot do (`read_concurrency`).

use std::path::Path;
use std::process::Command;

use crate::harness::Sandbox;

/// The version of the restic on PATH (the one the tests run), as (major, minor).
fn restic_version() -> (u32, u32) {
    let out = Command::new("restic").arg("version").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let v = text.split_whitespace().nth(1).unwrap().to_string();
    let mut parts = v.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    (parts.next().unwrap(), parts.next().unwrap())
}

fn dir_size(dir: &Path) -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let meta = entry.metadata().unwrap();
        total += if meta.is_dir() {
            dir_size(&entry.path())
        } else {
            meta.len()
        };
    }
    total
}

/// A sandbox whose repository has `repo_knobs` and profile `app` (4 MiB of very compressible
/// text) has `profile_knobs`.
fn sandbox(repo_knobs: &str, profile_knobs: &str) -> Sandbox {
    let sb = Sandbox::new();
    let line = "the same line of text again and again, compressible as a SQL dump is\n";
    std::fs::write(
        sb.path("data/text.sql"),
        line.repeat(4 * 1024 * 1024 / line.len()),
    )
    .unwrap();
    sb.write_config(
        "config.yaml",
        &format!(
            "state_dir: {{dir}}/state
repositories:
  local:
    url: {{dir}}/repo
    password_file: {{dir}}/restic-password
    init: true
{repo_knobs}profiles:
  app:
    repository: local
    host: test-host
    paths: ['{{dir}}/data']
{profile_knobs}"
        ),
    );
    sb
}

#[test]
fn compression_off_and_max_show_in_the_repository_size_and_the_profile_overrides() {
    let off = sandbox("    restic: { compression: off }\n", "");
    off.run(&["backup"]).assert_code(0);
    // The profile's max overrides the repository's off.
    let max = sandbox(
        "    restic: { compression: off }\n",
        "    restic: { compression: max }\n",
    );
    let run = max.run(&["-v", "backup"]);
    run.assert_code(0);
    assert!(
        run.stderr.contains("--compression max --json"),
        "{}",
        run.stderr
    );
    let (off_data, max_data) = (
        dir_size(&off.repo().join("data")),
        dir_size(&max.repo().join("data")),
    );
    assert!(
        off_data > 3 * 1024 * 1024 && max_data < off_data / 10,
        "off: {off_data} bytes, max: {max_data} bytes"
    );
}

#[test]
fn compression_on_a_format_1_repository_is_a_warning_not_silence() {
    let sb = sandbox("    restic: { compression: max }\n", "");
    let init = sb.restic(&["init", "--repository-version", "1"]);
    assert!(init.status.success(), "{init:?}");
    let run = sb.run(&["backup"]);
    run.assert_code(3);
    assert!(
        run.stderr.contains(
            "restic.compression max has no effect: repository local has format version 1"
        ),
        "{}",
        run.stderr
    );
    assert_eq!(sb.snapshots().len(), 1);
}

#[test]
fn limits_pack_size_and_extra_args_reach_restic_and_v_shows_them() {
    let sb = sandbox(
        "    restic: { limit_upload: 100000, limit_download: 200000, pack_size: 8, extra_args: [--exclude-larger-than, 1M] }\n",
        "",
    );
    std::fs::write(sb.path("data/small.txt"), "small\n").unwrap();
    let run = sb.run(&["-v", "backup"]);
    run.assert_code(0);
    assert!(!run.stderr.contains("--compression"), "{}", run.stderr);
    assert!(
        run.stderr
            .contains("--pack-size 8 --limit-upload 100000 --limit-download 200000 --json"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("--exclude-larger-than 1M --"),
        "{}",
        run.stderr
    );
    // Read-only commands get the limits, not the pack size.
    assert!(
        run.stderr
            .contains("--limit-upload 100000 --limit-download 200000 config"),
        "{}",
        run.stderr
    );
    // extra_args had their effect: the 4 MiB file is not in the snapshot, the small one is.
    let ls = sb.restic(&["ls", "latest"]);
    let listing = String::from_utf8_lossy(&ls.stdout);
    assert!(listing.contains("small.txt"), "{listing}");
    assert!(!listing.contains("text.sql"), "{listing}");
    // backup --dry-run prints the same command line.
    let plan = sb.run(&["backup", "--dry-run"]);
    plan.assert_code(0);
    assert!(
        plan.stdout
            .contains("--pack-size 8 --limit-upload 100000 --limit-download 200000 --json")
            && plan.stdout.contains("--exclude-larger-than 1M --"),
        "{}",
        plan.stdout
    );
}

#[test]
fn extra_args_that_touch_what_resticpilot_owns_are_config_errors_naming_the_option() {
    let sb = sandbox(
        "    restic: { extra_args: [--one-file-system, --host=other] }\n",
        "    restic:\n      extra_args: ['--password-file=/x', --tag, t, --compression=max]\n      pack_size: 1\n      compression: fast\n",
    );
    let out = sb.run(&["validate"]);
    assert_eq!(out.code, 2, "{}", out.all());
    for expected in [
        ":7:47: restic.extra_args: --host is set by resticpilot; use profile host instead",
        "restic.extra_args: --password* is set by resticpilot",
        "restic.extra_args: --tag is set by resticpilot; use profile tags instead",
        "restic.extra_args: --compression is set by resticpilot; use restic.compression instead",
        "restic.pack_size 1 must be 4 to 128 MiB",
        "restic.compression \"fast\" is not one of auto, off, max",
    ] {
        assert!(out.stderr.contains(expected), "{expected}:\n{}", out.stderr);
    }
}

#[test]
fn read_concurrency_needs_restic_0_15() {
    let sb = sandbox("    restic: { read_concurrency: 4 }\n", "");
    let run = sb.run(&["-v", "backup"]);
    if restic_version() < (0, 15) {
        assert_eq!(run.code, 1, "{}", run.all());
        assert!(
            run.stderr.contains(
                "restic.read_concurrency needs restic 0.15 or newer, and this is restic 0.14"
            ),
            "{}",
            run.stderr
        );
        // Refused before restic backup ran.
        assert!(sb.snapshots().is_empty());
    } else {
        run.assert_code(0);
        assert!(
            run.stderr.contains("--read-concurrency 4 --"),
            "{}",
            run.stderr
        );
    }
}
