//! Reconstructing a database from an incremental chain (`dump::incremental` writes it): the
//! base and the snapshot's deltas come out of the repository with `restic restore` (parallel,
//! about three times as fast as `restic dump` for a large file) into a private directory
//! beside the destination; the base is renamed into place and each delta's pages are written
//! over it in order; the result must hash to the manifest's BLAKE3.
//!
//! The manifest and the files are untrusted: the chain directory must be a plain name inside
//! one of the snapshot's paths, every file name a plain name, every file a regular file (no
//! symlink anywhere on its path), every header field consistent with the manifest, every page
//! number inside the database, and every delta must hash to its recorded value before the
//! result counts.

use std::fs::File;
use std::io::{BufReader, Read};
use std::os::unix::fs::{FileExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use super::{Contents, ManifestDatabase, RestoreError};
use crate::dump::incremental::{
    Chain, ChainFile, DELTA_HEADER, DELTA_MAGIC, DELTA_VERSION, hash_text, id_bytes,
};
use crate::restic::Restic;

/// Largest database a chain may describe (a sanity bound on an untrusted manifest): 64 TiB.
const MAX_BYTES: u64 = 64 << 40;

/// What was put together.
#[derive(Debug, Clone)]
pub struct Rebuilt {
    /// 1 + the number of deltas.
    pub chain_length: usize,
    /// Bytes read out of the repository (base and deltas).
    pub read: u64,
}

/// Checks `chain` (from an untrusted manifest) against the snapshot `contents`.
///
/// Fails naming the first thing that is not as a resticpilot backup writes it.
pub fn validate(contents: &Contents, chain: &Chain) -> Result<(), String> {
    let dir = Path::new(&chain.dir);
    let parent = dir.parent().map(|p| p.display().to_string());
    let normal = dir.is_absolute()
        && dir
            .components()
            .all(|c| matches!(c, Component::RootDir | Component::Normal(_)));
    let root_ok = parent.as_ref().is_some_and(|p| {
        *p != contents.staging && contents.snapshot.paths.iter().any(|sp| sp == p)
    });
    let leaf_ok = dir.file_name().is_some_and(|n| plain(&n.to_string_lossy()));
    if !normal || !root_ok || !leaf_ok || chain.dir.ends_with('/') {
        return Err(format!(
            "its chain directory {:?} is not a plain directory inside one of the snapshot's paths",
            chain.dir
        ));
    }
    if !chain.page_size.is_power_of_two() || !(512..=65536).contains(&chain.page_size) {
        return Err(format!("its page size {} is not valid", chain.page_size));
    }
    if chain.page_count == 0 || chain.bytes() > MAX_BYTES {
        return Err(format!("its page count {} is not valid", chain.page_count));
    }
    if chain.id.len() != 16 || !chain.id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!("its chain id {:?} is not valid", chain.id));
    }
    let mut names: Vec<&str> = Vec::new();
    for f in std::iter::once(&chain.base).chain(&chain.deltas) {
        if !plain(&f.name) || names.contains(&f.name.as_str()) {
            return Err(format!(
                "its chain names {:?}, which is not a plain, distinct file name",
                f.name
            ));
        }
        names.push(&f.name);
    }
    let ps = u64::from(chain.page_size);
    if !chain.base.bytes.is_multiple_of(ps) || chain.base.bytes > chain.bytes() {
        return Err(format!(
            "its base {} has {} bytes, which does not fit the chain's {} pages of {ps} bytes",
            chain.base.name, chain.base.bytes, chain.page_count
        ));
    }
    Ok(())
}

/// A plain file name: no separator, not `.` or `..`, no glob characters restic would read as
/// a pattern, no control characters.
fn plain(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && name != "."
        && name != ".."
        && !name
            .chars()
            .any(|c| c == '/' || c.is_control() || "*?[]\\".contains(c))
}

/// restic's `--include` treats `*?[\` as pattern characters: escape them (the chain
/// directory comes from the operator's state_dir, which may hold them).
fn include_pattern(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        if "*?[\\".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Puts the database of `db`'s chain together at `dest` (a new file) and checks its hash.
///
/// Fails when the chain is not valid, restic fails, a file is not what the manifest says, or
/// the result's hash differs; `dest` may then hold a partial file (the caller removes it).
pub fn rebuild(
    restic: &Restic,
    contents: &Contents,
    db: &ManifestDatabase,
    chain: &Chain,
    dest: &Path,
) -> Result<Rebuilt, RestoreError> {
    let what = format!("database {}", db.name);
    let damaged = |reason: String| {
        RestoreError::failed(
            &what,
            format!(
                "the chain in snapshot {} cannot be used: {reason}",
                contents.short()
            ),
        )
    };
    validate(contents, chain).map_err(damaged)?;
    let dir = dest.parent().unwrap_or(Path::new("."));
    let scratch = tempfile::Builder::new()
        .prefix(".resticpilot-chain-")
        .tempdir_in(dir)
        .map_err(|e| {
            RestoreError::failed(
                &what,
                format!(
                    "cannot create a scratch directory in {}: {e}",
                    dir.display()
                ),
            )
        })?;
    std::fs::set_permissions(scratch.path(), std::fs::Permissions::from_mode(0o700))
        .map_err(|e| RestoreError::failed(&what, e.to_string()))?;
    let files: Vec<&ChainFile> = std::iter::once(&chain.base).chain(&chain.deltas).collect();
    let includes: Vec<String> = files
        .iter()
        .map(|f| include_pattern(&format!("{}/{}", chain.dir, f.name)))
        .collect();
    restic.restore(contents.id(), scratch.path(), &includes, false)?;
    let root = scratch
        .path()
        .canonicalize()
        .map_err(|e| RestoreError::failed(&what, e.to_string()))?;
    let local = |f: &ChainFile| -> Result<PathBuf, RestoreError> {
        let rel = Path::new(&chain.dir)
            .strip_prefix("/")
            .unwrap_or(Path::new(""));
        let p = root.join(rel).join(&f.name);
        // No symlink anywhere: the real path is the expected one, and it is a regular file.
        match (p.canonicalize(), std::fs::symlink_metadata(&p)) {
            (Ok(real), Ok(m)) if real == p && m.is_file() => Ok(p),
            (Err(e), _) | (_, Err(e)) => {
                Err(damaged(format!("{} is not in the snapshot ({e})", f.name)))
            }
            _ => Err(damaged(format!("{} is not a regular file", f.name))),
        }
    };
    let base = local(&chain.base)?;
    let size = std::fs::metadata(&base)
        .map_err(|e| RestoreError::failed(&what, e.to_string()))?
        .len();
    if size != chain.base.bytes {
        return Err(damaged(format!(
            "its base {} has {size} bytes, the manifest says {}",
            chain.base.name, chain.base.bytes
        )));
    }
    std::fs::rename(&base, dest).map_err(|e| {
        RestoreError::failed(
            &what,
            format!("cannot move the base to {}: {e}", dest.display()),
        )
    })?;
    std::fs::set_permissions(dest, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| RestoreError::failed(&what, e.to_string()))?;
    let out = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(dest)
        .map_err(|e| RestoreError::failed(&what, format!("cannot open {}: {e}", dest.display())))?;
    let mut read = size;
    for (i, delta) in chain.deltas.iter().enumerate() {
        let path = local(delta)?;
        read += apply(&path, delta, chain, i as u32 + 1, &out).map_err(|reason| {
            damaged(format!(
                "delta {} of {} ({}): {reason}",
                i + 1,
                chain.deltas.len(),
                delta.name
            ))
        })?;
        let _ = std::fs::remove_file(&path);
    }
    out.set_len(chain.bytes())
        .and_then(|()| out.sync_all())
        .map_err(|e| {
            RestoreError::failed(&what, format!("cannot write {}: {e}", dest.display()))
        })?;
    drop(out);
    Ok(Rebuilt {
        chain_length: files.len(),
        read,
    })
}

/// Writes the pages of the delta at `path` into `out`, checking it against `meta` and the
/// chain; returns its size.
///
/// Fails with what is wrong with it.
fn apply(
    path: &Path,
    meta: &ChainFile,
    chain: &Chain,
    seq: u32,
    out: &File,
) -> Result<u64, String> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| format!("cannot open it: {e}"))?;
    let len = file.metadata().map_err(|e| e.to_string())?.len();
    if len != meta.bytes {
        return Err(format!(
            "it has {len} bytes, the manifest says {}",
            meta.bytes
        ));
    }
    let mut hasher = blake3::Hasher::new();
    let mut r = BufReader::with_capacity(1 << 20, file);
    let mut h = [0u8; DELTA_HEADER];
    r.read_exact(&mut h)
        .map_err(|e| format!("no header ({e})"))?;
    hasher.update(&h);
    let u32_at = |o: usize| u32::from_le_bytes(h[o..o + 4].try_into().expect("4 bytes"));
    let u64_at = |o: usize| u64::from_le_bytes(h[o..o + 8].try_into().expect("8 bytes"));
    if h[..8] != DELTA_MAGIC || u32_at(8) != DELTA_VERSION {
        return Err("it is not a resticpilot delta (version 1)".into());
    }
    let (page_size, page_count, records) = (u32_at(12), u64_at(16), u64_at(24));
    if page_size != chain.page_size {
        return Err(format!(
            "its page size {page_size} differs from the chain's {}",
            chain.page_size
        ));
    }
    if u32_at(32) != seq || h[40..48] != id_bytes(&chain.id) {
        return Err("it belongs to another chain or position".into());
    }
    if page_count > chain.page_count || records != meta.pages {
        return Err(format!(
            "its header ({records} pages, database of {page_count}) disagrees with the manifest"
        ));
    }
    let ps = u64::from(page_size);
    if len != DELTA_HEADER as u64 + records * (4 + ps) {
        return Err(format!("its size {len} does not match its {records} pages"));
    }
    let mut page = vec![0u8; page_size as usize];
    let mut last = 0u32;
    for _ in 0..records {
        let mut n = [0u8; 4];
        r.read_exact(&mut n)
            .map_err(|e| format!("cut short ({e})"))?;
        r.read_exact(&mut page)
            .map_err(|e| format!("cut short ({e})"))?;
        hasher.update(&n);
        hasher.update(&page);
        let number = u32::from_le_bytes(n);
        if number <= last || u64::from(number) > page_count {
            return Err(format!(
                "page number {number} is out of order or beyond the database"
            ));
        }
        last = number;
        out.write_all_at(&page, (u64::from(number) - 1) * ps)
            .map_err(|e| format!("cannot write page {number}: {e}"))?;
    }
    let got = hash_text(&hasher.finalize());
    if got != meta.hash {
        return Err(format!(
            "its hash {got} differs from the manifest's {}: it was damaged or altered",
            meta.hash
        ));
    }
    Ok(len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_from_a_manifest_must_be_plain() {
        for bad in [
            "", ".", "..", "a/b", "../x", "a*", "b?", "c[1]", "d\\e", "nl\n",
        ] {
            assert!(!plain(bad), "{bad:?} accepted");
        }
        assert!(plain("delta-0123456789abcdef-000001.rpdelta"));
        assert_eq!(include_pattern("/s/a*b[c]/d"), "/s/a\\*b\\[c]/d");
    }
}
