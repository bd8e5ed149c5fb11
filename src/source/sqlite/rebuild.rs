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

use crate::restic::Restic;
use crate::restore::{Contents, ManifestDatabase, RestoreError};
use crate::source::sqlite::incremental::{
    Chain, ChainFile, DELTA_HEADER, DELTA_MAGIC, DELTA_VERSION, hash_text, id_bytes,
};

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

/// The writer (`dump::incremental`) and this reader on real SQLite files, without restic: a
/// chain applied by hand is the last copy, byte for byte.
#[cfg(test)]
mod chain_tests {
    use super::*;
    use crate::source::sqlite::Incremental;
    use crate::source::sqlite::incremental::Session;
    use rusqlite::Connection;
    use std::time::Duration;

    struct Fixture {
        _dir: tempfile::TempDir,
        db: PathBuf,
        inc: Incremental,
    }

    fn fixture(share: f64) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("app.db");
        let conn = Connection::open(&db).unwrap();
        conn.execute_batch(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB);
             WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 4000)
             INSERT INTO t (v) SELECT randomblob(200) FROM c;",
        )
        .unwrap();
        let inc = Incremental {
            chain_dir: dir.path().join("state/chains/p/app"),
            index_dir: dir.path().join("state/page-index/p"),
            max_delta_share: share,
            rebase_after: Duration::from_secs(3600),
        };
        Fixture { _dir: dir, db, inc }
    }

    /// One run: the database file copied (it is idle) in place of the online copy.
    fn run(f: &Fixture) -> (Chain, Vec<u8>) {
        let s = Session::start(&f.inc, &f.db).unwrap();
        std::fs::copy(&f.db, s.copy_path()).unwrap();
        let copy = std::fs::read(s.copy_path()).unwrap();
        let pass = s.pass().unwrap();
        (s.commit(pass).unwrap().chain, copy)
    }

    fn sql(f: &Fixture, sql: &str) {
        Connection::open(&f.db).unwrap().execute_batch(sql).unwrap();
    }

    /// The chain applied by hand from the files on disk.
    fn apply_chain(f: &Fixture, chain: &Chain) -> Result<Vec<u8>, String> {
        let dir = tempfile::tempdir().unwrap();
        let out_path = dir.path().join("out.db");
        std::fs::copy(f.inc.chain_dir.join(&chain.base.name), &out_path).unwrap();
        let out = std::fs::OpenOptions::new()
            .write(true)
            .open(&out_path)
            .unwrap();
        for (i, d) in chain.deltas.iter().enumerate() {
            apply(&f.inc.chain_dir.join(&d.name), d, chain, i as u32 + 1, &out)?;
        }
        out.set_len(chain.bytes()).unwrap();
        Ok(std::fs::read(&out_path).unwrap())
    }

    #[test]
    fn deltas_applied_to_the_base_give_back_each_copy_byte_for_byte() {
        let f = fixture(10.0);
        let (first, _) = run(&f);
        assert!(
            first
                .new_base
                .as_deref()
                .unwrap()
                .starts_with("no page index")
        );
        sql(&f, "UPDATE t SET v = randomblob(200) WHERE id % 97 = 0;");
        let (one, _) = run(&f);
        assert_eq!(one.deltas.len(), 1);
        assert!(one.deltas[0].pages < one.page_count / 2, "{one:?}");
        // Growth: new pages at the end.
        sql(
            &f,
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 500)
             INSERT INTO t (v) SELECT randomblob(300) FROM c;",
        );
        let (two, copy) = run(&f);
        assert_eq!(two.deltas.len(), 2);
        assert!(two.page_count > one.page_count);
        let rebuilt = apply_chain(&f, &two).unwrap();
        assert_eq!(rebuilt, copy);
        assert_eq!(hash_text(&blake3::hash(&rebuilt)), two.hash);
        // Nothing changed: no new file, the same chain.
        let (same, _) = run(&f);
        assert_eq!(same.deltas, two.deltas);
        assert_eq!(same.hash, two.hash);
    }

    #[test]
    fn an_altered_delta_is_refused_by_its_hash() {
        let f = fixture(10.0);
        run(&f);
        sql(&f, "UPDATE t SET v = randomblob(200) WHERE id % 50 = 0;");
        let (chain, _) = run(&f);
        let path = f.inc.chain_dir.join(&chain.deltas[0].name);
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        let err = apply_chain(&f, &chain).unwrap_err();
        assert!(err.contains("damaged or altered"), "{err}");
        // A header that names another position is refused before any page is written.
        let mut meta = chain.clone();
        meta.id = "0000000000000000".into();
        let err = apply_chain(&f, &meta).unwrap_err();
        assert!(err.contains("another chain or position"), "{err}");
    }

    #[test]
    fn deltas_past_the_share_a_damaged_index_and_an_interrupted_run_take_a_new_base() {
        let f = fixture(0.02);
        let (base, _) = run(&f);
        sql(&f, "UPDATE t SET v = randomblob(200) WHERE id % 3 = 0;");
        let (next, _) = run(&f);
        assert!(next.deltas.is_empty());
        assert_ne!(next.id, base.id);
        assert!(
            next.new_base
                .as_deref()
                .unwrap()
                .contains("max_delta_share 0.02"),
            "{next:?}"
        );
        // The old base is gone from disk (it stays in the snapshots that hold it).
        assert!(!f.inc.chain_dir.join(&base.base.name).exists());

        // An interrupted run leaves nothing behind and the chain as it was.
        let s = Session::start(&f.inc, &f.db).unwrap();
        std::fs::copy(&f.db, s.copy_path()).unwrap();
        let _ = s.pass().unwrap();
        drop(s);
        let names: Vec<String> = std::fs::read_dir(&f.inc.chain_dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains("partial"))
            .collect();
        assert!(names.is_empty(), "{names:?}");

        // A page index that does not hash to its record.
        let pages = f.inc.index_dir.join("app.pages");
        let mut bytes = std::fs::read(&pages).unwrap();
        bytes[40] ^= 1;
        std::fs::write(&pages, &bytes).unwrap();
        sql(&f, "UPDATE t SET v = randomblob(200) WHERE id = 1;");
        let (after, copy) = run(&f);
        assert!(
            after.new_base.as_deref().unwrap().contains("damaged"),
            "{after:?}"
        );
        assert_eq!(apply_chain(&f, &after).unwrap(), copy);
    }
}
