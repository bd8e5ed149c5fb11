//! Pure builders of restic command lines. Nothing here runs restic, so every flag resticpilot
//! passes is visible and tested in one place.

use std::path::{Path, PathBuf};

pub use super::syntax::{INCOMPLETE_TAG, is_read_data_subset};
use crate::config::{ResticOptions, Retention};

/// What one `restic backup` should do.
#[derive(Debug, Clone, Default)]
pub struct BackupArgs {
    pub host: String,
    pub tags: Vec<String>,
    pub excludes: Vec<String>,
    /// `--exclude-file` per file.
    pub exclude_files: Vec<PathBuf>,
    pub exclude_caches: bool,
    /// `--exclude-if-present` per name.
    pub exclude_if_present: Vec<String>,
    pub sources: Vec<PathBuf>,
}

pub fn backup(req: &BackupArgs) -> Vec<String> {
    let mut args = vec!["backup".to_string(), "--json".to_string()];
    args.push("--host".into());
    args.push(req.host.clone());
    for tag in &req.tags {
        args.push("--tag".into());
        args.push(tag.clone());
    }
    for exclude in &req.excludes {
        args.push("--exclude".into());
        args.push(exclude.clone());
    }
    for file in &req.exclude_files {
        args.push("--exclude-file".into());
        args.push(file.display().to_string());
    }
    if req.exclude_caches {
        args.push("--exclude-caches".into());
    }
    for name in &req.exclude_if_present {
        args.push("--exclude-if-present".into());
        args.push(name.clone());
    }
    // "--" so a source path starting with '-' can never be read as a flag.
    args.push("--".into());
    args.extend(req.sources.iter().map(|p| p.display().to_string()));
    args
}

/// `restic backup` with the profile's backup-only knobs (`--read-concurrency`, `extra_args`)
/// before the `--` that ends the options.
pub fn backup_with(req: &BackupArgs, options: &ResticOptions) -> Vec<String> {
    let mut args = backup(req);
    let at = args.iter().position(|a| a == "--").unwrap_or(args.len());
    let mut extra = Vec::new();
    if let Some(n) = options.read_concurrency {
        extra.push("--read-concurrency".to_string());
        extra.push(n.to_string());
    }
    extra.extend(options.extra_args.iter().flatten().cloned());
    args.splice(at..at, extra);
    args
}

/// The global knobs restic takes after `verb`: bandwidth limits on every command that talks to
/// the repository, compression and pack size on the ones that write packs.
pub fn global_options(options: &ResticOptions, verb: &str) -> Vec<String> {
    let mut out = Vec::new();
    if matches!(verb, "backup" | "prune" | "copy") {
        if let Some(c) = &options.compression {
            out.push("--compression".to_string());
            out.push(c.clone());
        }
        if let Some(p) = options.pack_size {
            out.push("--pack-size".to_string());
            out.push(p.to_string());
        }
    }
    if verb != "version" {
        if let Some(l) = options.limit_upload {
            out.push("--limit-upload".to_string());
            out.push(l.to_string());
        }
        if let Some(l) = options.limit_download {
            out.push("--limit-download".to_string());
            out.push(l.to_string());
        }
    }
    out
}

/// The filter that selects exactly one profile's snapshots on one host: both tags must be
/// present (restic's comma means AND within one `--tag`).
pub fn profile_filter(host: &str, profile_tag: &str) -> Vec<String> {
    vec![
        "--host".into(),
        host.into(),
        "--tag".into(),
        format!("resticpilot,{profile_tag}"),
    ]
}

pub fn snapshots(host: &str, profile_tag: &str) -> Vec<String> {
    let mut args = vec!["snapshots".to_string(), "--json".to_string()];
    args.extend(profile_filter(host, profile_tag));
    args
}

/// One profile's snapshots on every host: for telling a user which host to set.
pub fn snapshots_any_host(profile_tag: &str) -> Vec<String> {
    vec![
        "snapshots".into(),
        "--json".into(),
        "--tag".into(),
        format!("resticpilot,{profile_tag}"),
    ]
}

/// `restic forget` for one profile, grouped by host and tags, never by paths (paths drift when
/// a profile's list changes; retention must not treat that as a new series).
pub fn forget(host: &str, profile_tag: &str, retention: &Retention, dry_run: bool) -> Vec<String> {
    let mut args = vec!["forget".to_string(), "--json".to_string()];
    args.extend(profile_filter(host, profile_tag));
    args.push("--group-by".into());
    args.push("host,tags".into());
    let counts = [
        ("--keep-last", retention.keep_last),
        ("--keep-hourly", retention.keep_hourly),
        ("--keep-daily", retention.keep_daily),
        ("--keep-weekly", retention.keep_weekly),
        ("--keep-monthly", retention.keep_monthly),
        ("--keep-yearly", retention.keep_yearly),
    ];
    for (flag, value) in counts {
        if let Some(n) = value.filter(|n| *n > 0) {
            args.push(flag.into());
            args.push(n.to_string());
        }
    }
    if let Some(within) = &retention.keep_within {
        args.push("--keep-within".into());
        args.push(within.clone());
    }
    if dry_run {
        args.push("--dry-run".into());
    }
    args
}

/// `restic restore` of `snapshot` under `target`, limited to `includes` (absolute paths as they
/// are in the snapshot; each brings its whole subtree). `verify` re-reads every restored file
/// and compares it with the repository.
pub fn restore(snapshot: &str, target: &Path, includes: &[String], verify: bool) -> Vec<String> {
    let mut args = vec![
        "restore".to_string(),
        snapshot.to_string(),
        "--target".to_string(),
        target.display().to_string(),
    ];
    for include in includes {
        args.push("--include".into());
        args.push(include.clone());
    }
    if verify {
        args.push("--verify".into());
    }
    args
}

/// `restic tag --add TAG SNAPSHOT`.
pub fn tag_add(snapshot: &str, tag: &str) -> Vec<String> {
    vec![
        "tag".into(),
        "--add".into(),
        tag.into(),
        "--".into(),
        snapshot.into(),
    ]
}

/// `restic unlock`: stale locks only, or with `remove_all` every lock (only ever after
/// resticpilot proved each of them stale).
pub fn unlock(remove_all: bool) -> Vec<String> {
    let mut args = vec!["unlock".to_string()];
    if remove_all {
        args.push("--remove-all".into());
    }
    args
}

/// The ids of the repository's locks, without taking one.
pub fn list_locks() -> Vec<String> {
    vec!["list".into(), "locks".into(), "--no-lock".into()]
}

/// One lock's content (JSON: time, exclusive, hostname, username, pid), without taking one.
pub fn cat_lock(id: &str) -> Vec<String> {
    vec!["cat".into(), "lock".into(), id.into(), "--no-lock".into()]
}

/// `restic check`, reading `subset` of the data packs when given ("5%", "1/10", "500M").
pub fn check(subset: Option<&str>) -> Vec<String> {
    let mut args = vec!["check".to_string()];
    if let Some(subset) = subset {
        args.push(format!("--read-data-subset={subset}"));
    }
    args
}

/// `restic dump`: one file of `snapshot`, written raw to stdout.
pub fn dump(snapshot: &str, path: &str) -> Vec<String> {
    vec!["dump".into(), snapshot.into(), path.into()]
}

/// `restic ls --json` of `snapshot`: the given directories and their direct children, or with
/// `recursive` everything beneath them.
pub fn ls(snapshot: &str, dirs: &[String], recursive: bool) -> Vec<String> {
    let mut args = vec!["ls".to_string(), "--json".to_string()];
    if recursive {
        args.push("--recursive".into());
    }
    args.push(snapshot.into());
    args.extend(dirs.iter().cloned());
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restore_names_the_snapshot_target_and_includes() {
        let args = restore(
            "4676941d",
            Path::new("/srv/restore"),
            &["/data/etc".into(), "/data/.env".into()],
            true,
        );
        assert_eq!(
            args.join(" "),
            "restore 4676941d --target /srv/restore --include /data/etc --include /data/.env --verify"
        );
        let plain = restore("abc", Path::new("/"), &[], false);
        assert_eq!(plain.join(" "), "restore abc --target /");
    }

    #[test]
    fn tag_add_names_one_snapshot() {
        assert_eq!(
            tag_add("4676941d", INCOMPLETE_TAG).join(" "),
            "tag --add incomplete -- 4676941d"
        );
    }

    #[test]
    fn snapshots_on_any_host_keep_both_tags() {
        assert_eq!(
            snapshots_any_host("profile:p").join(" "),
            "snapshots --json --tag resticpilot,profile:p"
        );
    }

    #[test]
    fn dump_and_ls_address_one_snapshot() {
        assert_eq!(
            dump("abc", "/var/lib/resticpilot/staging/p/app.sqlite3").join(" "),
            "dump abc /var/lib/resticpilot/staging/p/app.sqlite3"
        );
        assert_eq!(
            ls("abc", &["/s".into(), "/d".into()], false).join(" "),
            "ls --json abc /s /d"
        );
        assert_eq!(
            ls("abc", &["/d".into()], true).join(" "),
            "ls --json --recursive abc /d"
        );
    }

    #[test]
    fn backup_has_host_tags_and_guarded_paths() {
        let args = backup(&BackupArgs {
            host: "tracker-prod".into(),
            tags: vec!["resticpilot".into(), "profile:tracker".into()],
            excludes: vec!["*.tmp".into()],
            exclude_files: vec!["/etc/rp/excludes".into()],
            exclude_caches: true,
            exclude_if_present: vec![".nobackup".into()],
            sources: vec!["/staging".into(), "-odd".into()],
        });
        assert_eq!(
            args.join(" "),
            "backup --json --host tracker-prod --tag resticpilot --tag profile:tracker --exclude *.tmp --exclude-file /etc/rp/excludes --exclude-caches --exclude-if-present .nobackup -- /staging -odd"
        );
    }

    #[test]
    fn forget_is_scoped_by_host_and_both_tags_and_groups_without_paths() {
        let r = Retention {
            keep_daily: Some(7),
            keep_weekly: Some(0),
            keep_within: Some("2d".into()),
            prune: true,
            ..Default::default()
        };
        let args = forget("h", "profile:p", &r, true).join(" ");
        assert_eq!(
            args,
            "forget --json --host h --tag resticpilot,profile:p --group-by host,tags --keep-daily 7 --keep-within 2d --dry-run"
        );
        assert!(!args.contains("paths"));
    }

    #[test]
    fn check_reads_the_configured_subset() {
        assert_eq!(check(None), ["check"]);
        assert_eq!(check(Some("5%")), ["check", "--read-data-subset=5%"]);
        for good in ["1/10", "10/10", "5%", "2.5%", "100%", "500M", "2G", "1t"] {
            assert!(is_read_data_subset(good), "{good}");
        }
        for bad in [
            "0/10", "11/10", "0%", "101%", "%", "5", "M", "-1G", "five%", "1/x",
        ] {
            assert!(!is_read_data_subset(bad), "{bad}");
        }
    }

    #[test]
    fn backup_knobs_go_before_the_paths_and_global_ones_only_where_they_apply() {
        let options = ResticOptions {
            compression: Some("max".into()),
            limit_upload: Some(1024),
            limit_download: None,
            pack_size: Some(64),
            read_concurrency: Some(4),
            extra_args: Some(vec!["--exclude-larger-than".into(), "1G".into()]),
        };
        let req = BackupArgs {
            host: "h".into(),
            sources: vec!["/staging".into()],
            ..Default::default()
        };
        assert_eq!(
            backup_with(&req, &options).join(" "),
            "backup --json --host h --read-concurrency 4 --exclude-larger-than 1G -- /staging"
        );
        assert_eq!(
            global_options(&options, "backup").join(" "),
            "--compression max --pack-size 64 --limit-upload 1024"
        );
        assert_eq!(
            global_options(&options, "snapshots").join(" "),
            "--limit-upload 1024"
        );
        assert!(global_options(&ResticOptions::default(), "prune").is_empty());
    }
}
