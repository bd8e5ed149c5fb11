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
use std::time::Duration;

use crate::restic::Restic;
use crate::restore::{Contents, ManifestDatabase, RestoreError, restic_pattern};
use crate::source::sqlite::incremental::{
    Chain, ChainFile, DELTA_HEADER, DELTA_MAGIC, DELTA_VERSION, DELTA_VERSION_PAGES, RECORD_HEADER,
    hash_text, id_bytes,
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
    /// How long fetching them took before this rebuild began, when `restore::open` fetched
    /// them with the manifest (zero otherwise: the fetch is part of the rebuild's own time).
    pub fetched_before: Duration,
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
    let files: Vec<&ChainFile> = std::iter::once(&chain.base).chain(&chain.deltas).collect();
    // Fetched with the manifest into a scratch directory beside `dest` (restore::Prefetch),
    // or now.
    let fetched = contents.take_chain(&chain.dir).filter(|(s, _)| {
        let real = |p: &Path| p.canonicalize().ok();
        let beside = s
            .path()
            .parent()
            .and_then(real)
            .is_some_and(|p| Some(p) == real(dir));
        if !beside {
            tracing::debug!(
                "the chain fetched with the manifest is not beside {}: fetched again",
                dest.display()
            );
        }
        beside
    });
    let (scratch, fetched_before) = match fetched {
        Some(prefetched) => prefetched,
        None => {
            // Base, deltas, and what the deltas add to the base, before restic writes any.
            let growth = chain.bytes().saturating_sub(chain.base.bytes);
            crate::restore::bound::room(dir, chain.base.bytes + chain.delta_bytes() + growth)
                .map_err(|e| RestoreError::failed(&what, e))?;
            let scratch = crate::restore::private_scratch(Some(dir), ".resticpilot-chain-")
                .map_err(|e| {
                    RestoreError::failed(
                        &what,
                        format!(
                            "cannot create a scratch directory in {}: {e}",
                            dir.display()
                        ),
                    )
                })?;
            let includes: Vec<String> = files
                .iter()
                .map(|f| restic_pattern(&format!("{}/{}", chain.dir, f.name)))
                .collect();
            let flush = crate::restore::flush::Flusher::start(scratch.path());
            restic.restore(contents.id(), scratch.path(), &includes, false)?;
            drop(flush);
            (scratch, Duration::ZERO)
        }
    };
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
    // The deltas' pages past the base's end must fit now: a chain that claims a giant (a
    // header's page count costs nothing) would otherwise become a sparse file that takes
    // hours to hash, or fill the disk halfway through.
    crate::restore::bound::room(dir, chain.bytes().saturating_sub(size))
        .map_err(|e| RestoreError::failed(&what, e))?;
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
    let mut pages = size / u64::from(chain.page_size);
    for (i, delta) in chain.deltas.iter().enumerate() {
        let path = local(delta)?;
        read += apply(&path, delta, chain, i as u32 + 1, &mut pages, &out).map_err(|reason| {
            damaged(format!(
                "delta {} of {} ({}): {reason}",
                i + 1,
                chain.deltas.len(),
                delta.name
            ))
        })?;
        let _ = std::fs::remove_file(&path);
    }
    if pages != chain.page_count {
        return Err(damaged(format!(
            "its files give a database of {pages} pages, the manifest says {}",
            chain.page_count
        )));
    }
    // Made durable by the check that follows, beside its hash (`restore::check_with_hash`).
    out.set_len(chain.bytes()).map_err(|e| {
        RestoreError::failed(&what, format!("cannot write {}: {e}", dest.display()))
    })?;
    drop(out);
    Ok(Rebuilt {
        chain_length: files.len(),
        read,
        fetched_before,
    })
}

/// Writes the pages of the delta at `path` into `out`, checking it against `meta` and the
/// chain; `pages` is the database's page count before it, and becomes the count after it.
/// Returns the delta's size.
///
/// The delta's hash is checked before anything is read from it; then every field is checked
/// before it is used (version 1: whole pages; version 2: changed byte ranges of a page, or the
/// whole page), since the manifest that vouches for it is untrusted too.
///
/// Fails with what is wrong with it.
fn apply(
    path: &Path,
    meta: &ChainFile,
    chain: &Chain,
    seq: u32,
    pages: &mut u64,
    out: &File,
) -> Result<u64, String> {
    let open = || {
        std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(nix::libc::O_NOFOLLOW)
            .open(path)
            .map_err(|e| format!("cannot open it: {e}"))
    };
    let file = open()?;
    let len = file.metadata().map_err(|e| e.to_string())?.len();
    if len != meta.bytes {
        return Err(format!(
            "it has {len} bytes, the manifest says {}",
            meta.bytes
        ));
    }
    let mut hasher = blake3::Hasher::new();
    hasher
        .update_reader(BufReader::with_capacity(1 << 20, file))
        .map_err(|e| format!("cannot read it: {e}"))?;
    let got = hash_text(&hasher.finalize());
    if got != meta.hash {
        return Err(format!(
            "its hash {got} differs from the manifest's {}: it was damaged or altered",
            meta.hash
        ));
    }
    let mut r = BufReader::with_capacity(1 << 20, open()?).take(len);
    let mut h = [0u8; DELTA_HEADER];
    r.read_exact(&mut h)
        .map_err(|e| format!("no header ({e})"))?;
    let u32_at = |o: usize| u32::from_le_bytes(h[o..o + 4].try_into().expect("4 bytes"));
    let u64_at = |o: usize| u64::from_le_bytes(h[o..o + 8].try_into().expect("8 bytes"));
    let version = u32_at(8);
    if h[..8] != DELTA_MAGIC || (version != DELTA_VERSION && version != DELTA_VERSION_PAGES) {
        return Err(format!(
            "it is not a resticpilot delta (version {DELTA_VERSION_PAGES} or {DELTA_VERSION})"
        ));
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
    if page_count > chain.page_count || page_count < *pages || records != meta.pages {
        return Err(format!(
            "its header ({records} pages, database of {page_count}) disagrees with the manifest and the chain before it ({} pages)",
            *pages
        ));
    }
    let ps = u64::from(page_size);
    let body = len - DELTA_HEADER as u64;
    let fits = if version == DELTA_VERSION_PAGES {
        records.checked_mul(4 + ps) == Some(body)
    } else {
        records <= page_count
            && records
                .checked_mul(RECORD_HEADER)
                .is_some_and(|m| m <= body)
    };
    if !fits {
        return Err(format!("its size {len} does not match its {records} pages"));
    }
    let cut = |e: std::io::Error| format!("cut short ({e})");
    let mut page = vec![0u8; page_size as usize];
    let mut last = 0u32;
    for _ in 0..records {
        let mut n = [0u8; 4];
        r.read_exact(&mut n).map_err(cut)?;
        let number = u32::from_le_bytes(n);
        if number <= last || u64::from(number) > page_count {
            return Err(format!(
                "page number {number} is out of order or beyond the database"
            ));
        }
        last = number;
        let at = (u64::from(number) - 1) * ps;
        let ranges = if version == DELTA_VERSION_PAGES {
            0
        } else {
            let mut c = [0u8; 2];
            r.read_exact(&mut c).map_err(cut)?;
            u16::from_le_bytes(c)
        };
        if ranges == 0 {
            r.read_exact(&mut page).map_err(cut)?;
            out.write_all_at(&page, at)
                .map_err(|e| format!("cannot write page {number}: {e}"))?;
            continue;
        }
        // Ranges change a page that exists already, each inside it, in order, apart.
        if u64::from(number) > *pages || u32::from(ranges) > page_size / 2 {
            return Err(format!(
                "page {number} has {ranges} changed ranges, but it is new or cannot hold that many"
            ));
        }
        let mut end = 0u32;
        for _ in 0..ranges {
            let mut rh = [0u8; 4];
            r.read_exact(&mut rh).map_err(cut)?;
            let offset = u32::from(u16::from_le_bytes([rh[0], rh[1]]));
            let length = u32::from(u16::from_le_bytes([rh[2], rh[3]]));
            if length == 0 || offset < end || offset + length > page_size {
                return Err(format!(
                    "page {number} has a changed range of {length} bytes at {offset} that is empty, overlaps the one before or leaves the page"
                ));
            }
            end = offset + length;
            let bytes = &mut page[..length as usize];
            r.read_exact(bytes).map_err(cut)?;
            out.write_all_at(bytes, at + u64::from(offset))
                .map_err(|e| format!("cannot write page {number}: {e}"))?;
        }
    }
    if r.limit() != 0 {
        return Err(format!("{} bytes follow its last record", r.limit()));
    }
    *pages = page_count;
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
        assert_eq!(restic_pattern("/s/a*b[c]/d"), "/s/a\\*b\\[c]/d");
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
            read_live: false,
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
        let mut pages = chain.base.pages;
        for (i, d) in chain.deltas.iter().enumerate() {
            apply(
                &f.inc.chain_dir.join(&d.name),
                d,
                chain,
                i as u32 + 1,
                &mut pages,
                &out,
            )?;
        }
        if pages != chain.page_count {
            return Err("page count".into());
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
        let original = std::fs::read(&path).unwrap();
        let mut bytes = original.clone();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        let err = apply_chain(&f, &chain).unwrap_err();
        assert!(err.contains("damaged or altered"), "{err}");
        // A whole delta whose header names another position is refused before any page is
        // written.
        std::fs::write(&path, &original).unwrap();
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

/// Deltas as a hostile snapshot could hold them: every field of a version 2 delta is checked
/// before it is used, the hash before anything is read, and version 1 deltas still apply.
#[cfg(test)]
mod hostile_tests {
    use super::*;
    use crate::source::sqlite::incremental::RANGE_HEADER;

    const PS: usize = 4096;
    const ID: &str = "0123456789abcdef";

    /// A base of `pages` pages (page n filled with byte n) and a chain naming it.
    fn base(dir: &Path, pages: u64) -> Chain {
        let bytes: Vec<u8> = (0..pages).flat_map(|n| vec![n as u8 + 1; PS]).collect();
        std::fs::write(dir.join("base.sqlite3"), &bytes).unwrap();
        Chain {
            dir: dir.display().to_string(),
            id: ID.into(),
            page_size: PS as u32,
            page_count: pages,
            hash: String::new(),
            base: ChainFile {
                name: "base.sqlite3".into(),
                bytes: bytes.len() as u64,
                hash: hash_text(&blake3::hash(&bytes)),
                pages,
            },
            deltas: Vec::new(),
            new_base: None,
        }
    }

    /// Writes a delta (header + `body`) as the chain's first and returns the chain naming it
    /// with its true hash.
    fn delta(
        dir: &Path,
        chain: &Chain,
        version: u32,
        pages: u64,
        records: u64,
        body: &[u8],
    ) -> Chain {
        let mut h = vec![0u8; DELTA_HEADER];
        h[..8].copy_from_slice(&DELTA_MAGIC);
        h[8..12].copy_from_slice(&version.to_le_bytes());
        h[12..16].copy_from_slice(&(PS as u32).to_le_bytes());
        h[16..24].copy_from_slice(&pages.to_le_bytes());
        h[24..32].copy_from_slice(&records.to_le_bytes());
        h[32..36].copy_from_slice(&1u32.to_le_bytes());
        h[40..48].copy_from_slice(&id_bytes(ID));
        h.extend_from_slice(body);
        std::fs::write(dir.join("delta-1.rpdelta"), &h).unwrap();
        let mut c = chain.clone();
        c.page_count = pages;
        c.deltas = vec![ChainFile {
            name: "delta-1.rpdelta".into(),
            bytes: h.len() as u64,
            hash: hash_text(&blake3::hash(&h)),
            pages: records,
        }];
        c
    }

    /// Base + the chain's delta into a new file; its bytes, or why the delta was refused
    /// (with the file as it was left).
    fn apply_it(dir: &Path, chain: &Chain) -> (Result<(), String>, Vec<u8>) {
        let out_path = dir.join("out.db");
        std::fs::copy(dir.join("base.sqlite3"), &out_path).unwrap();
        let out = std::fs::OpenOptions::new()
            .write(true)
            .open(&out_path)
            .unwrap();
        let mut pages = chain.base.pages;
        let r = apply(
            &dir.join(&chain.deltas[0].name),
            &chain.deltas[0],
            chain,
            1,
            &mut pages,
            &out,
        )
        .map(|_| ());
        if r.is_ok() {
            out.set_len(chain.bytes()).unwrap();
        }
        (r, std::fs::read(&out_path).unwrap())
    }

    fn record(number: u32, ranges: &[(u16, &[u8])]) -> Vec<u8> {
        let mut v = number.to_le_bytes().to_vec();
        v.extend_from_slice(&(ranges.len() as u16).to_le_bytes());
        for (offset, bytes) in ranges {
            v.extend_from_slice(&offset.to_le_bytes());
            v.extend_from_slice(&(bytes.len() as u16).to_le_bytes());
            v.extend_from_slice(bytes);
        }
        v
    }

    fn whole(number: u32, fill: u8) -> Vec<u8> {
        let mut v = number.to_le_bytes().to_vec();
        v.extend_from_slice(&0u16.to_le_bytes());
        v.extend_from_slice(&[fill; PS]);
        v
    }

    #[test]
    fn a_version_2_delta_writes_its_ranges_and_its_whole_pages() {
        let dir = tempfile::tempdir().unwrap();
        let chain = base(dir.path(), 3);
        let mut body = record(2, &[(10, b"abc"), (4000, b"z")]);
        body.extend(whole(4, 9));
        let c = delta(dir.path(), &chain, DELTA_VERSION, 4, 2, &body);
        let (r, got) = apply_it(dir.path(), &c);
        r.unwrap();
        let mut want: Vec<u8> = (0..3u8).flat_map(|n| vec![n + 1; PS]).collect();
        want[PS + 10..PS + 13].copy_from_slice(b"abc");
        want[PS + 4000] = b'z';
        want.extend([9u8; PS]);
        assert_eq!(got, want);
        assert_eq!(RANGE_HEADER, 4);
    }

    #[test]
    fn a_version_1_delta_of_whole_pages_still_applies() {
        let dir = tempfile::tempdir().unwrap();
        let chain = base(dir.path(), 2);
        let mut body = 2u32.to_le_bytes().to_vec();
        body.extend([7u8; PS]);
        body.extend(3u32.to_le_bytes());
        body.extend([8u8; PS]);
        let c = delta(dir.path(), &chain, DELTA_VERSION_PAGES, 3, 2, &body);
        let (r, got) = apply_it(dir.path(), &c);
        r.unwrap();
        let want: Vec<u8> = [1u8, 7, 8].iter().flat_map(|&b| vec![b; PS]).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn a_delta_that_does_not_hash_to_the_manifest_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let chain = base(dir.path(), 2);
        let c = delta(dir.path(), &chain, DELTA_VERSION, 2, 1, &whole(1, 0xee));
        let path = dir.path().join(&c.deltas[0].name);
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        let (r, got) = apply_it(dir.path(), &c);
        assert!(r.unwrap_err().contains("damaged or altered"));
        assert_eq!(got, std::fs::read(dir.path().join("base.sqlite3")).unwrap());
    }

    #[test]
    fn hostile_version_2_fields_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let chain = base(dir.path(), 3);
        let many: Vec<(u16, &[u8])> = (0..2100u16).map(|i| (i * 2, &b"x"[..])).collect();
        let mut trailing = record(1, &[(0, b"a")]);
        trailing.push(0);
        let cases: Vec<(&str, u64, u64, Vec<u8>, &str)> = vec![
            (
                "a range past the page",
                3,
                1,
                record(2, &[(4090, b"0123456789")]),
                "leaves the page",
            ),
            (
                "overlapping ranges",
                3,
                1,
                record(2, &[(10, b"abcde"), (12, b"x")]),
                "overlaps",
            ),
            (
                "ranges out of order",
                3,
                1,
                record(2, &[(100, b"a"), (10, b"b")]),
                "overlaps",
            ),
            ("an empty range", 3, 1, record(2, &[(10, b"")]), "empty"),
            (
                "page number 0",
                3,
                1,
                record(0, &[(1, b"a")]),
                "out of order",
            ),
            (
                "pages out of order",
                3,
                2,
                [record(3, &[(1, b"a")]), record(2, &[(1, b"a")])].concat(),
                "out of order",
            ),
            (
                "a page twice",
                3,
                2,
                [record(2, &[(1, b"a")]), record(2, &[(9, b"a")])].concat(),
                "out of order",
            ),
            (
                "a page beyond the database",
                3,
                1,
                whole(4, 1),
                "beyond the database",
            ),
            (
                "ranges of a new page",
                4,
                1,
                record(4, &[(1, b"a")]),
                "it is new",
            ),
            (
                "more ranges than a page holds",
                3,
                1,
                record(1, &many),
                "cannot hold",
            ),
            (
                "bytes after the last record",
                3,
                1,
                trailing,
                "follow its last record",
            ),
            (
                "fewer records than its header says",
                3,
                2,
                record(1, &[(0, b"abc")]),
                "cut short",
            ),
            (
                "a record count past the file",
                3,
                u64::MAX,
                record(1, &[(0, b"a")]),
                "does not match",
            ),
            (
                "a range cut short",
                3,
                1,
                record(1, &[(0, b"abc")])[..12].to_vec(),
                "cut short",
            ),
            (
                "a shrinking database",
                2,
                1,
                record(1, &[(0, b"a")]),
                "disagrees",
            ),
            (
                "a database past the chain",
                9,
                1,
                record(1, &[(0, b"a")]),
                "disagrees",
            ),
        ];
        for (what, pages, records, body, expect) in cases {
            let mut c = delta(dir.path(), &chain, DELTA_VERSION, pages, records, &body);
            if what == "a database past the chain" {
                c.page_count = 3;
            }
            let (r, _) = apply_it(dir.path(), &c);
            let err = r.expect_err(what);
            assert!(err.contains(expect), "{what}: {err}");
        }
        // An unknown version.
        let c = delta(dir.path(), &chain, 3, 3, 1, &whole(1, 1));
        assert!(
            apply_it(dir.path(), &c)
                .0
                .unwrap_err()
                .contains("not a resticpilot delta")
        );
    }
}
