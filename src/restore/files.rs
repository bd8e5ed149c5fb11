//! The profile's files from a snapshot (its paths other than the staging directory): under a
//! target directory with restic's layout (the target plus each original absolute path), or
//! over their original locations, saying which existing files that overwrote.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::{Contents, RestoreError};
use crate::restic::Restic;

/// One file of the snapshot.
#[derive(Debug, Clone)]
pub struct Entry {
    pub path: String,
    pub size: u64,
}

/// What a files restore did (or, for a dry run, would do).
#[derive(Debug, Clone)]
pub struct FilesRestored {
    /// The snapshot paths restored.
    pub paths: Vec<String>,
    pub files: u64,
    pub bytes: u64,
    pub duration: Duration,
    /// In place: the files that existed and were replaced.
    pub overwritten: Vec<String>,
}

/// The snapshot's file paths that are not among `configured` (the profile's paths) or under
/// one of them: an in-place restore writes only where the profile says its files live, never
/// where a snapshot (untrusted: anyone with the repository key can write one) says.
pub fn outside(contents: &Contents, configured: &[PathBuf]) -> Vec<String> {
    contents
        .files
        .iter()
        .filter(|p| {
            let p = Path::new(p.as_str());
            let clean = p.is_absolute()
                && p.components().all(|c| {
                    matches!(
                        c,
                        std::path::Component::RootDir | std::path::Component::Normal(_)
                    )
                });
            !clean
                || !configured
                    .iter()
                    .any(|c| p.starts_with(crate::dirs::lexical(c)))
        })
        .cloned()
        .collect()
}

/// Every file under the snapshot's file paths.
///
/// Fails when restic fails.
pub fn listing(restic: &Restic, contents: &Contents) -> Result<Vec<Entry>, RestoreError> {
    let mut out = Vec::new();
    if contents.files.is_empty() {
        return Ok(out);
    }
    restic.ls(contents.id(), &contents.files, true, |node| {
        if node.is_file() {
            out.push(Entry {
                path: node.path,
                size: node.size.unwrap_or(0),
            });
        }
    })?;
    Ok(out)
}

/// The files of the snapshot that exist on disk now: what an in-place restore overwrites.
pub fn existing(entries: &[Entry]) -> Vec<String> {
    entries
        .iter()
        .filter(|e| Path::new(&e.path).symlink_metadata().is_ok())
        .map(|e| e.path.clone())
        .collect()
}

/// Restores the snapshot's files under `target` (`target` + original path). `verify` has
/// restic read every restored file back and compare it with the repository.
///
/// Fails when restic fails.
pub fn to_target(
    restic: &Restic,
    contents: &Contents,
    target: &Path,
    verify: bool,
) -> Result<FilesRestored, RestoreError> {
    let start = Instant::now();
    let entries = listing(restic, contents)?;
    if !contents.files.is_empty() {
        restic.restore(contents.id(), target, &contents.files, verify)?;
    }
    Ok(FilesRestored {
        paths: contents.files.clone(),
        files: entries.len() as u64,
        bytes: entries.iter().map(|e| e.size).sum(),
        duration: start.elapsed(),
        overwritten: Vec::new(),
    })
}

/// Restores the snapshot's files over their original locations. Files on disk that the
/// snapshot does not have are left alone.
///
/// Fails when restic fails.
pub fn in_place(restic: &Restic, contents: &Contents) -> Result<FilesRestored, RestoreError> {
    let start = Instant::now();
    let entries = listing(restic, contents)?;
    let overwritten = existing(&entries);
    if !contents.files.is_empty() {
        restic.restore(contents.id(), Path::new("/"), &contents.files, false)?;
    }
    Ok(FilesRestored {
        paths: contents.files.clone(),
        files: entries.len() as u64,
        bytes: entries.iter().map(|e| e.size).sum(),
        duration: start.elapsed(),
        overwritten,
    })
}
