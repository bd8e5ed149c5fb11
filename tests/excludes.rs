//! Exclude files and markers with a real restic: `exclude_file` (checked by `validate`),
//! `exclude_caches` (CACHEDIR.TAG) and `exclude_if_present`.

use crate::harness::Sandbox;

fn tree(sb: &Sandbox) {
    for (path, text) in [
        ("data/app/config.toml", "kept\n"),
        ("data/app/debug.log", "excluded by the exclude file\n"),
        (
            "data/app/cache/CACHEDIR.TAG",
            "Signature: 8a477f597d28d172789f06886806bc55\n# a cache\n",
        ),
        ("data/app/cache/blob.bin", "excluded: cache directory\n"),
        ("data/app/scratch/.nobackup", ""),
        ("data/app/scratch/big.tmp", "excluded: marked directory\n"),
        ("data/app/notes/readme.txt", "kept\n"),
    ] {
        let p = sb.path(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    std::fs::write(sb.path("excludes.txt"), "# one pattern a line\n*.log\n").unwrap();
}

#[test]
fn exclude_file_caches_and_markers_keep_those_files_out_of_the_snapshot() {
    let sb = Sandbox::new();
    tree(&sb);
    sb.config(
        "profiles:
  app:
    repository: local
    host: test-host
    paths: ['{dir}/data/app']
    exclude_file: [excludes.txt]
    exclude_caches: true
    exclude_if_present: [.nobackup]
",
    );
    sb.run(&["validate"]).assert_code(0);
    let run = sb.run(&["-v", "backup"]);
    run.assert_code(0);
    assert!(
        run.stderr
            .contains("--exclude-caches --exclude-if-present .nobackup --"),
        "{}",
        run.stderr
    );
    let ls = sb.restic(&["ls", "latest"]);
    let listing = String::from_utf8_lossy(&ls.stdout);
    for kept in ["config.toml", "readme.txt"] {
        assert!(listing.contains(kept), "{kept} missing:\n{listing}");
    }
    for gone in ["debug.log", "blob.bin", "big.tmp"] {
        assert!(!listing.contains(gone), "{gone} backed up:\n{listing}");
    }
}

#[test]
fn a_missing_exclude_file_is_named_by_validate_with_its_position() {
    let sb = Sandbox::new();
    tree(&sb);
    sb.config(
        "profiles:
  app:
    repository: local
    paths: ['{dir}/data/app']
    exclude_file: [excludes.txt, '{dir}/no-such-excludes']
",
    );
    let out = sb.run(&["validate"]);
    assert_eq!(out.code, 2, "{}", out.all());
    assert!(
        out.stderr.contains(":11:34: exclude_file ")
            && out.stderr.contains("no-such-excludes cannot be read"),
        "{}",
        out.stderr
    );
    sb.config(
        "profiles:
  app:
    repository: local
    paths: ['{dir}/data/app']
    exclude_if_present: [sub/.nobackup]
",
    );
    let out = sb.run(&["validate"]);
    assert_eq!(out.code, 2, "{}", out.all());
    assert!(
        out.stderr
            .contains(":11:26: exclude_if_present \"sub/.nobackup\" is a file name"),
        "{}",
        out.stderr
    );
}
