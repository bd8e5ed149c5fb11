//! The staging directory and scratch space are resticpilot's own: a symlink where they should
//! be is refused (never followed), a directory of another user is refused and never chmodded,
//! and `verify --scratch DIR` works in a fresh directory inside DIR, leaving DIR's mode alone.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use crate::harness::{Sandbox, is_root, make_sqlite};

fn profile(staging: Option<&str>) -> String {
    let staging = staging
        .map(|s| format!("    staging_dir: {s}\n"))
        .unwrap_or_default();
    format!(
        "profiles:
  app:
    repository: local
    host: test-host
{staging}    databases:
      - {{ name: app, type: sqlite, path: '{{dir}}/data/app.db' }}
"
    )
}

fn sandbox(staging: Option<&str>) -> Sandbox {
    let sb = Sandbox::new();
    drop(make_sqlite(&sb.path("data/app.db"), 50));
    sb.config(&profile(staging));
    sb
}

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// A private, empty directory to point links at.
fn empty_private_dir(sb: &Sandbox, rel: &str) -> std::path::PathBuf {
    let dir = sb.path(rel);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    dir
}

#[test]
fn a_staging_dir_that_is_a_symlink_is_refused_and_no_snapshot_is_made() {
    let sb = sandbox(Some("'{dir}/staging-link'"));
    let elsewhere = empty_private_dir(&sb, "elsewhere");
    std::os::unix::fs::symlink(&elsewhere, sb.path("staging-link")).unwrap();

    let run = sb.run(&["backup", "app"]);
    run.assert_code(1);
    let link = sb.path("staging-link").display().to_string();
    assert!(
        run.stderr.contains(&format!("{link} is a symbolic link")),
        "names the link: {}",
        run.stderr
    );
    assert!(run.stderr.contains("staging_dir"), "{}", run.stderr);
    assert!(sb.snapshots().is_empty(), "no snapshot of a symlink");
    assert!(names(&elsewhere).is_empty(), "nothing written through it");
}

#[test]
fn a_symlink_at_the_default_staging_path_or_above_it_is_refused() {
    // The profile's own directory under <state_dir>/staging is a link.
    let sb = sandbox(None);
    let elsewhere = empty_private_dir(&sb, "elsewhere");
    std::fs::create_dir_all(sb.path("state/staging")).unwrap();
    std::os::unix::fs::symlink(&elsewhere, sb.path("state/staging/app")).unwrap();
    let run = sb.run(&["backup", "app"]);
    run.assert_code(1);
    assert!(
        run.stderr.contains(&format!(
            "{} is a symbolic link",
            sb.path("state/staging/app").display()
        )),
        "{}",
        run.stderr
    );
    assert!(names(&elsewhere).is_empty());
    assert!(sb.snapshots().is_empty());

    // <state_dir>/staging itself is a link: the profile's directory would be made through it.
    let sb = sandbox(None);
    let elsewhere = empty_private_dir(&sb, "elsewhere");
    std::fs::create_dir_all(sb.path("state")).unwrap();
    std::os::unix::fs::symlink(&elsewhere, sb.path("state/staging")).unwrap();
    let run = sb.run(&["backup", "app"]);
    run.assert_code(1);
    assert!(
        run.stderr.contains(&format!(
            "{} is a symbolic link",
            sb.path("state/staging").display()
        )),
        "{}",
        run.stderr
    );
    assert!(
        names(&elsewhere).is_empty(),
        "nothing made through the link"
    );
}

#[test]
fn emptying_staging_never_follows_a_symlink_planted_inside_it() {
    let sb = sandbox(None);
    sb.run(&["backup", "app"]).assert_code(0);
    let staging = sb.path("state/staging/app");
    let victim = sb.path("victim");
    std::fs::create_dir_all(victim.join("sub")).unwrap();
    std::fs::write(victim.join("precious"), "keep me").unwrap();
    std::fs::write(victim.join("sub/precious"), "keep me too").unwrap();
    std::os::unix::fs::symlink(&victim, staging.join("link")).unwrap();
    std::fs::create_dir(staging.join("dir")).unwrap();
    std::os::unix::fs::symlink(victim.join("sub"), staging.join("dir/link")).unwrap();

    sb.run(&["backup", "app"]).assert_code(0);
    assert_eq!(names(&staging), [".resticpilot-staging"]);
    assert_eq!(
        std::fs::read_to_string(victim.join("precious")).unwrap(),
        "keep me"
    );
    assert!(victim.join("sub/precious").exists());
}

#[test]
fn another_users_staging_dir_is_refused_and_its_mode_is_left_alone() {
    assert!(
        is_root(),
        "this test needs root, to make a directory owned by another user"
    );
    let sb = sandbox(Some("'{dir}/theirs'"));
    let theirs = sb.path("theirs");
    std::fs::create_dir(&theirs).unwrap();
    std::fs::write(theirs.join("their-file"), "not yours").unwrap();
    std::os::unix::fs::chown(&theirs, Some(65534), Some(65534)).unwrap();
    std::fs::set_permissions(&theirs, std::fs::Permissions::from_mode(0o755)).unwrap();

    let run = sb.run(&["backup", "app"]);
    run.assert_code(1);
    assert!(
        run.stderr.contains(&theirs.display().to_string())
            && run.stderr.contains("belongs to uid 65534"),
        "{}",
        run.stderr
    );
    assert_eq!(mode(&theirs), 0o755, "never chmodded");
    assert_eq!(std::fs::metadata(&theirs).unwrap().uid(), 65534);
    assert!(theirs.join("their-file").exists());

    // Empty, and ours, but open to everyone: refused as well, not "fixed".
    let sb = sandbox(Some("'{dir}/open'"));
    std::fs::create_dir(sb.path("open")).unwrap();
    std::fs::set_permissions(sb.path("open"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let run = sb.run(&["backup", "app"]);
    run.assert_code(1);
    assert!(
        run.stderr
            .contains("can be opened by other users (mode 0755)"),
        "{}",
        run.stderr
    );
    assert_eq!(mode(&sb.path("open")), 0o755);
    // Once its owner makes it private, it is adopted (a mount point, say).
    std::fs::set_permissions(sb.path("open"), std::fs::Permissions::from_mode(0o700)).unwrap();
    sb.run(&["backup", "app"]).assert_code(0);
}

#[test]
fn verify_scratch_in_a_shared_sticky_directory_keeps_its_mode() {
    let sb = sandbox(None);
    sb.run(&["backup", "app"]).assert_code(0);
    let shared = sb.path("shared-tmp");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).unwrap();
    std::fs::write(shared.join("someone-elses"), "x").unwrap();

    let run = sb.run(&["verify", "app", "--scratch", shared.to_str().unwrap()]);
    run.assert_code(0);
    assert_eq!(mode(&shared), 0o1777, "a shared directory stays shared");
    assert_eq!(
        names(&shared),
        ["someone-elses"],
        "the drill's own dir is gone"
    );

    // A directory other users can write to without the sticky bit could have the drill's
    // files swapped under it: refused.
    let open = sb.path("world-writable");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    let run = sb.run(&["verify", "app", "--scratch", open.to_str().unwrap()]);
    run.assert_code(1);
    assert!(
        run.stderr.contains(&open.display().to_string())
            && run.stderr.contains("can be changed by other users"),
        "{}",
        run.stderr
    );
    assert_eq!(mode(&open), 0o777);
}

#[test]
fn validate_refuses_staging_dirs_that_are_dangerous_to_empty() {
    let sb = Sandbox::new();
    drop(make_sqlite(&sb.path("data/app.db"), 5));
    std::fs::create_dir(sb.path("data/etc")).unwrap();
    let one = |name: &str, staging: &str| {
        format!(
            "  {name}:
    repository: local
    staging_dir: '{staging}'
    databases:
      - {{ name: app, type: sqlite, path: '{{dir}}/data/app.db' }}
    paths: ['{{dir}}/data/etc']
"
        )
    };
    let profiles = [
        ("root", "/"),
        ("etc", "/etc"),
        ("state", "{dir}/state"),
        ("status", "{dir}/state/status"),
        ("data", "{dir}/data"),
        ("etcdir", "{dir}/data/etc"),
        ("sandbox", "{dir}"),
        ("twin1", "{dir}/shared-staging"),
        ("twin2", "{dir}/shared-staging/inner"),
    ];
    let text: String = profiles.iter().map(|(n, s)| one(n, s)).collect();
    sb.config(&format!("profiles:\n{text}"));
    let run = sb.run(&["validate"]);
    run.assert_code(2);
    let d = sb.dir.path().display().to_string();
    let line = |profile: &str| -> String {
        run.stderr
            .lines()
            .find(|l| l.contains(&format!("profile {profile}: staging_dir")))
            .unwrap_or_else(|| panic!("no error for profile {profile}:\n{}", run.stderr))
            .to_string()
    };
    let expect = |profile: &str, parts: &[String]| {
        let l = line(profile);
        for part in parts {
            assert!(l.contains(part.as_str()), "{part}\n{l}");
        }
        assert!(
            l.contains("is emptied before and after every run")
                && l.contains(&format!(
                    "such as {d}/state/staging/{profile} (the default)"
                )),
            "{l}"
        );
    };
    expect(
        "root",
        &["staging_dir / ".into(), "is a system directory".into()],
    );
    expect(
        "etc",
        &["staging_dir /etc ".into(), "is a system directory".into()],
    );
    expect("state", &[format!("holds the state directory {d}/state")]);
    expect(
        "status",
        &["is inside the state directory but not under".into()],
    );
    expect(
        "data",
        &[format!(
            "holds the file of database app (profile data) {d}/data/app.db"
        )],
    );
    expect(
        "etcdir",
        &[format!("is profile etcdir's path {d}/data/etc")],
    );
    expect(
        "sandbox",
        &[
            format!("holds the state directory {d}/state"),
            format!("holds the config file {d}/config.yaml"),
        ],
    );
    expect(
        "twin1",
        &[format!(
            "overlaps profile twin2's staging directory {d}/shared-staging/inner"
        )],
    );
    expect(
        "twin2",
        &[format!(
            "overlaps profile twin1's staging directory {d}/shared-staging"
        )],
    );
    // A backup with such a config runs nothing.
    let run = sb.run(&["backup", "root"]);
    run.assert_code(2);
    assert!(!sb.repo().exists());
}
