//! Full disks, said plainly. "database or disk is full" or "No space left on device" alone
//! does not say which disk: these helpers recognise such errors and name the place that
//! filled, how much was needed when it is known, how much is free there now, and what to
//! change.

use std::path::{Path, PathBuf};

use crate::units::human_bytes;

/// Whether an error's text says a disk is full (SQLite's SQLITE_FULL, the OS's ENOSPC).
pub fn is_full_text(text: &str) -> bool {
    let t = text.to_ascii_lowercase();
    t.contains("database or disk is full")
        || t.contains("no space left on device")
        || t.contains("os error 28")
}

/// Free bytes (for an unprivileged user) on the filesystem of `path`, or of its nearest
/// existing parent.
pub fn free_bytes(path: &Path) -> Option<u64> {
    let existing = path.ancestors().find(|p| p.exists())?;
    let st = rustix::fs::statvfs(existing).ok()?;
    Some(st.f_bavail.saturating_mul(st.f_frsize))
}

/// "(12.0 KiB free there now)", or nothing when it cannot be told.
pub fn free_note(path: &Path) -> String {
    free_bytes(path)
        .map(|b| format!(" ({} free there now)", human_bytes(b)))
        .unwrap_or_default()
}

/// The path an error message names as the one that could not be written: the absolute path
/// just before ": no space left on device" (restic: "write /repo/data/22/...: no space left
/// on device").
pub fn path_in(text: &str) -> Option<PathBuf> {
    let lower = text.to_ascii_lowercase();
    let end = lower.find(": no space left on device")?;
    let head = &text[..end];
    let start = head.rfind(|c: char| c.is_whitespace()).map_or(0, |i| i + 1);
    let path = &head[start..];
    path.starts_with('/').then(|| PathBuf::from(path))
}

/// Where restic keeps its cache, as restic 0.14 finds it: `RESTIC_CACHE_DIR`, else
/// `$XDG_CACHE_HOME/restic`, else `$HOME/.cache/restic`.
pub fn restic_cache_dir(env: &dyn Fn(&str) -> Option<String>) -> Option<PathBuf> {
    if let Some(dir) = env("RESTIC_CACHE_DIR").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir));
    }
    if let Some(dir) = env("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        return Some(Path::new(&dir).join("restic"));
    }
    env("HOME").map(|h| Path::new(&h).join(".cache/restic"))
}

/// The message for `restic backup` failing on a full disk: which of the local repository,
/// restic's cache or its temporary directory filled (from the path restic names), what this
/// run needed to add at most, and what to change.
pub fn restic_backup_full(
    detail: &str,
    repository: &str,
    repo_url: &str,
    repo_env: &dyn Fn(&str) -> Option<String>,
    adding: u64,
) -> String {
    let local = repo_url.strip_prefix("local:").unwrap_or(repo_url);
    let local = local.starts_with('/').then(|| PathBuf::from(local));
    let cache = restic_cache_dir(repo_env);
    let tmp = repo_env("TMPDIR")
        .filter(|t| !t.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let path = path_in(detail);
    let needed = format!(
        "this run had up to {} of dumps and files to add",
        human_bytes(adding)
    );
    let (place, fix) = match &path {
        Some(p) if local.as_ref().is_some_and(|l| p.starts_with(l)) => (
            format!(
                "the disk of repository {repository} ({}) is full{}",
                local.as_ref().expect("checked").display(),
                free_note(p)
            ),
            format!(
                "free space there (`restic forget --prune` of old snapshots, or a larger disk), or move the repository and change repositories.{repository}.url"
            ),
        ),
        Some(p) if cache.as_ref().is_some_and(|c| p.starts_with(c)) => (
            format!(
                "restic's cache {} is full{}",
                cache.as_ref().expect("checked").display(),
                free_note(p)
            ),
            format!(
                "free space there, or set RESTIC_CACHE_DIR in repositories.{repository}.env to a directory with room"
            ),
        ),
        Some(p) if p.starts_with(&tmp) => (
            format!(
                "restic's temporary directory {} is full{}",
                tmp.display(),
                free_note(p)
            ),
            format!(
                "free space there, or set TMPDIR in repositories.{repository}.env to a directory with room"
            ),
        ),
        Some(p) => (
            format!("the disk holding {} is full{}", p.display(), free_note(p)),
            "free space there".to_string(),
        ),
        None => (
            "a disk restic writes to is full (the repository, restic's cache or its temporary directory)".to_string(),
            format!(
                "free space, or set RESTIC_CACHE_DIR / TMPDIR in repositories.{repository}.env"
            ),
        ),
    };
    format!("restic backup ran out of disk space: {place}; {needed}; {fix}. restic said: {detail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_path_restic_names_is_found() {
        let text = "unable to save snapshot: write /srv/repo/data/22/2260dd-tmp-39: no space left on device";
        assert!(is_full_text(text));
        assert_eq!(
            path_in(text).unwrap(),
            Path::new("/srv/repo/data/22/2260dd-tmp-39")
        );
        assert_eq!(path_in("no space left on device"), None);
        assert!(is_full_text("backup failed: database or disk is full"));
        assert!(!is_full_text("wrong password"));
    }

    #[test]
    fn a_full_repository_is_named_with_its_key() {
        let env = |k: &str| match k {
            "HOME" => Some("/home/u".to_string()),
            _ => None,
        };
        let m = restic_backup_full(
            "write /srv/repo/data/22/x: no space left on device",
            "offsite",
            "/srv/repo",
            &env,
            3 << 20,
        );
        assert!(
            m.contains("the disk of repository offsite (/srv/repo) is full"),
            "{m}"
        );
        assert!(m.contains("repositories.offsite.url"), "{m}");
        assert!(m.contains("3.0 MiB"), "{m}");
        let m = restic_backup_full(
            "open /home/u/.cache/restic/abc/index/1: no space left on device",
            "offsite",
            "sftp:h:/r",
            &env,
            1,
        );
        assert!(
            m.contains("restic's cache /home/u/.cache/restic is full"),
            "{m}"
        );
        assert!(m.contains("RESTIC_CACHE_DIR"), "{m}");
    }
}
