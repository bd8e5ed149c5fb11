//! `method: incremental` for SQLite: the consistent one-step copy, stored as a **base** copy
//! plus **page deltas**, so the repository grows by the changed pages and restic reads only
//! them, while every snapshot stays self-contained.
//!
//! Layout (all under the state directory, which is persistent):
//!
//! - `chains/<profile>/<database>/`: the chain, backed up by restic beside staging.
//!   `base-<id>.sqlite3` (a whole copy) and `delta-<id>-<seq>.rpdelta` files. A file is
//!   written once and never touched again (same size, mtime, ctime, inode), so restic takes it
//!   from the parent snapshot without reading it. Each snapshot holds the base and every delta
//!   since it: forgetting any snapshot leaves the others whole (their blobs are shared, not
//!   chained across snapshots).
//! - `page-index/<profile>/<database>.pages` and `.json`: the page index (a 128-bit XXH3 hash
//!   per page, 16 bytes per page: 4 MiB per GiB of 4 KiB pages) and the chain's record
//!   (files with their identity, page size and count, the page index's own hash). Not backed
//!   up: it only steers the next run. Read and written as streams, so memory stays flat.
//! - `page-index/<profile>/<database>.previous`: the copy the last delta was made from (while
//!   the chain has no delta, the base is that copy), kept to diff the next copy against. It
//!   costs disk (1x the database) and no repository space: it is not backed up.
//!
//! A run whose chain goes on and whose `.previous` matches the index reads in place
//! ([`Session::pass_live`]): the pages read from `sqlite_dbpage` inside one read transaction
//! of the live database, each changed page also written into `.previous`, which so becomes
//! this run's database without a copy. In WAL mode the check runs in the same transaction; in
//! rollback-journal mode (where the transaction holds writers out) only the pass does, and
//! the check runs after it on `.previous`, once that hashes to what the pass read
//! ([`Session::check_mirror`]). Otherwise (the first run, the run after a new base, or a
//! pass read in place that finds a new base due) the run copies:
//! the online copy goes to `<chain>/.copy.partial`; one sequential pass (beside the
//! copy's `quick_check`, on the other core) hashes every page, compares it with the index, and
//! writes the changed pages to `.delta.partial` and the new index; the copy's BLAKE3 hash (of
//! the whole file, computed in 1 MiB blocks on a thread of its own beside every pass) goes
//! into the manifest. For a changed page only its changed byte ranges are
//! written, found against the previous copy (read only for changed pages, and used only where
//! its page still hashes to the index's); a new page, or one whose previous copy is missing,
//! is written whole. Then either the delta is renamed into the chain and the copy kept as
//! `.previous`, or the copy becomes a new base. Files are fsynced before the index names
//! them (at the commit, after any read lock is released); the index is replaced last, so a
//! crash leaves either the old chain (plus an orphan removed by the next run) or the new one; a `.previous` that does not match the index
//! (size, time, inode) is not used.
//!
//! A new base is taken, with the reason logged and recorded in the manifest, when there is no
//! usable index (first run, a lost or new state directory, an index that does not match the
//! chain's files), when the page size changed or the database shrank (VACUUM), when the base
//! is older than `rebase_after`, and when the deltas would pass `max_delta_share` of the
//! database.
//!
//! Delta format (little-endian): a 48-byte header, `RPDELTA1`, version u32 (2; 1 is still
//! read), page size u32, page count u64 of the database after it, number of records u64,
//! sequence number u32 (1 for the first delta of a chain), reserved u32, the chain id's 8
//! bytes; then one record per changed page, page numbers (1-based) strictly increasing.
//! Version 2 record: page number u32, number of ranges u16; 0 ranges: the whole page follows;
//! else per range offset u16, length u16 (at least 1, inside the page, ranges in order and
//! apart) and its bytes. Version 1 record: page number u32 and the whole page. Applying a
//! chain: take the base, write each delta's pages or ranges at `(number - 1) * page size` (+
//! offset) in order, and cut the file to `page count * page size` (`rebuild` does it, checking
//! each delta's hash first and then every field).

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use super::Incremental;

pub const DELTA_MAGIC: [u8; 8] = *b"RPDELTA1";
/// Version 2 (written): per changed page, its changed byte ranges (or the whole page).
pub const DELTA_VERSION: u32 = 2;
/// Version 1 (still read): per changed page, the whole page.
pub const DELTA_VERSION_PAGES: u32 = 1;
/// A version 2 record's header: page number u32, number of ranges u16 (0: the whole page).
pub const RECORD_HEADER: u64 = 6;
/// A range's header: offset u16, length u16.
pub const RANGE_HEADER: u64 = 4;
/// Equal bytes between two changed ranges that are stored rather than starting a new range
/// (a range's header costs 4 bytes).
const MERGE_GAP: usize = RANGE_HEADER as usize;
pub const DELTA_HEADER: usize = 48;
const PAGES_MAGIC: [u8; 8] = *b"RPPAGES1";
const PAGES_HEADER: usize = 32;
const STATE_VERSION: u32 = 1;
/// In each chain directory: proof that resticpilot made it (it deletes only its own files).
const MARKER: &str = ".resticpilot-chain";
const COPY: &str = ".copy.partial";
const DELTA_PARTIAL: &str = ".delta.partial";

/// What the manifest records about an incremental dump: everything a restore needs. One type,
/// written by `backup` and read by `restore` and `verify` (which treat it as untrusted).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chain {
    /// The chain directory as backed up (absolute). Its parent is one of the snapshot's paths.
    pub dir: String,
    /// 16 hex digits; every file of the chain carries it.
    pub id: String,
    pub page_size: u32,
    /// Pages of the database this snapshot holds.
    pub page_count: u64,
    /// `blake3:<hex>` of the whole database this snapshot holds (base + deltas applied).
    pub hash: String,
    pub base: ChainFile,
    /// In the order they are applied.
    #[serde(default)]
    pub deltas: Vec<ChainFile>,
    /// Set when this run started the chain: why it took a new base.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_base: Option<String>,
}

/// One file of a chain: a plain name inside the chain directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainFile {
    pub name: String,
    pub bytes: u64,
    /// `blake3:<hex>` of the file.
    pub hash: String,
    /// Pages it holds.
    pub pages: u64,
}

impl Chain {
    /// Size of the database the chain reconstructs.
    pub fn bytes(&self) -> u64 {
        self.page_count * u64::from(self.page_size)
    }

    /// Bytes of all deltas.
    pub fn delta_bytes(&self) -> u64 {
        self.deltas.iter().map(|d| d.bytes).sum()
    }
}

/// The chain's record in the page index directory: the manifest's view plus what proves the
/// files on disk are the ones it describes.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct State {
    version: u32,
    /// The live database it follows.
    source: String,
    chain: Chain,
    /// When the base was taken (Unix seconds).
    base_time: u64,
    /// Identity of the base and each delta, in chain order.
    files: Vec<FileId>,
    /// `blake3:<hex>` of the `.pages` file.
    pages_hash: String,
    /// Identity of `<database>.previous`, the copy this chain's last delta was made from,
    /// kept to diff the next copy against (not backed up). None while the chain has no
    /// delta (the base is that copy), or when it was not kept.
    #[serde(default)]
    previous: Option<FileId>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct FileId {
    name: String,
    bytes: u64,
    mtime_ns: i128,
    ino: u64,
}

impl FileId {
    fn of(path: &Path) -> std::io::Result<FileId> {
        let m = std::fs::symlink_metadata(path)?;
        Ok(FileId {
            name: plain_name(path),
            bytes: m.len(),
            mtime_ns: i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
            ino: m.ino(),
        })
    }
}

fn plain_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The byte ranges where `new` differs from `old` (same length), as (start, end); ranges
/// closer than [`MERGE_GAP`] are merged.
fn changed_ranges(old: &[u8], new: &[u8], out: &mut Vec<(usize, usize)>) {
    out.clear();
    let n = new.len();
    let mut i = 0;
    while i < n {
        // Equal 8-byte words are skipped whole.
        if i + 8 <= n && old[i..i + 8] == new[i..i + 8] {
            i += 8;
            continue;
        }
        if old[i] == new[i] {
            i += 1;
            continue;
        }
        let start = i;
        let mut end = i + 1;
        let mut j = i + 1;
        while j < n && j - end < MERGE_GAP {
            if old[j] != new[j] {
                end = j + 1;
            }
            j += 1;
        }
        out.push((start, end));
        i = end;
    }
}

/// Writes one version 2 record for page `number` (`page` is its new content, `before` its
/// content in the previous copy when known) and returns its size: the changed ranges, or the
/// whole page when that is not larger or the page is new.
fn write_record(
    w: &mut impl Write,
    number: u32,
    page: &[u8],
    before: Option<&[u8]>,
    runs: &mut Vec<(usize, usize)>,
) -> std::io::Result<u64> {
    let whole = RECORD_HEADER + page.len() as u64;
    let ranged = match before {
        Some(old) => {
            changed_ranges(old, page, runs);
            let size = RECORD_HEADER
                + runs
                    .iter()
                    .map(|(a, b)| RANGE_HEADER + (b - a) as u64)
                    .sum::<u64>();
            (size < whole && runs.len() <= usize::from(u16::MAX)).then_some(size)
        }
        None => None,
    };
    w.write_all(&number.to_le_bytes())?;
    match ranged {
        Some(size) => {
            w.write_all(&(runs.len() as u16).to_le_bytes())?;
            for &(a, b) in runs.iter() {
                w.write_all(&(a as u16).to_le_bytes())?;
                w.write_all(&((b - a) as u16).to_le_bytes())?;
                w.write_all(&page[a..b])?;
            }
            Ok(size)
        }
        None => {
            w.write_all(&0u16.to_le_bytes())?;
            w.write_all(page)?;
            Ok(whole)
        }
    }
}

/// `blake3:<hex>`.
pub fn hash_text(h: &blake3::Hash) -> String {
    format!("blake3:{}", h.to_hex())
}

/// What the pass over the copy found.
struct Pass {
    page_size: u32,
    page_count: u64,
    hash: blake3::Hash,
    /// Pages written to the delta (0 when there was nothing to compare with).
    changed: u64,
    delta_bytes: u64,
    pages_hash: blake3::Hash,
    /// The previous index did not hash to its record: its comparison cannot be trusted.
    index_damaged: bool,
    /// The changed pages were written into the previous copy (read in place: no copy).
    mirrored: bool,
    /// Files the pass wrote and did not fsync (the page index, the previous copy when
    /// mirrored), with what errors call them: [`Session::commit`] syncs them, so a pass under
    /// a rollback database's read lock does not hold writers out for the disk.
    unsynced: Vec<(File, &'static str)>,
}

/// One incremental dump in progress: what the previous run left, and the files this run
/// writes. Dropped before [`Session::commit`], it removes what it wrote.
pub struct Session {
    inc: Incremental,
    source: PathBuf,
    name: String,
    previous: Result<State, String>,
    committed: bool,
    /// A pass read in place wrote into `<database>.previous`: it no longer matches the index,
    /// and the copy that follows in this run (for a new base) does not diff against it.
    previous_spent: std::sync::atomic::AtomicBool,
}

/// What a committed run stored.
pub struct Committed {
    pub chain: Chain,
    /// How the run stored the copy, for the manifest's `method` and the log.
    pub description: String,
    /// Bytes written into the chain by this run (a base, a delta, or nothing).
    pub added: u64,
}

impl Session {
    /// Prepares the chain directory of `inc` and reads the previous run's index.
    ///
    /// Fails when the directories cannot be created, or the chain directory holds files
    /// resticpilot did not make.
    pub fn start(inc: &Incremental, source: &Path) -> Result<Session, String> {
        let dir = &inc.chain_dir;
        let root = dir.parent().unwrap_or(dir);
        for d in [root, dir.as_path(), inc.index_dir.as_path()] {
            private_dir(d)?;
        }
        let marker = dir.join(MARKER);
        if !marker.exists() {
            let foreign: Vec<String> = std::fs::read_dir(dir)
                .map_err(|e| format!("cannot read {}: {e}", dir.display()))?
                .filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            if !foreign.is_empty() {
                return Err(format!(
                    "the chain directory {} holds files resticpilot did not make ({}); move them away",
                    dir.display(),
                    foreign.join(", ")
                ));
            }
            std::fs::write(
                &marker,
                "resticpilot: base and page deltas of one SQLite database (method: incremental); backed up, never edited\n",
            )
            .map_err(|e| format!("cannot write {}: {e}", marker.display()))?;
        }
        let name = plain_name(dir);
        let mut session = Session {
            inc: inc.clone(),
            source: source.to_path_buf(),
            name,
            previous: Err(String::new()),
            committed: false,
            previous_spent: std::sync::atomic::AtomicBool::new(false),
        };
        session.previous = session.load();
        // Leftovers of an interrupted run, and files of chains the index no longer names.
        let keep: Vec<String> = match &session.previous {
            Ok(s) => s.files.iter().map(|f| f.name.clone()).collect(),
            Err(_) => Vec::new(),
        };
        session.remove_unlisted(&keep);
        session.sweep_discarded();
        Ok(session)
    }

    /// Where the online copy goes.
    pub fn copy_path(&self) -> PathBuf {
        self.inc.chain_dir.join(COPY)
    }

    fn delta_partial(&self) -> PathBuf {
        self.inc.chain_dir.join(DELTA_PARTIAL)
    }

    fn state_path(&self) -> PathBuf {
        self.inc.index_dir.join(format!("{}.json", self.name))
    }

    fn pages_path(&self) -> PathBuf {
        self.inc.index_dir.join(format!("{}.pages", self.name))
    }

    /// The previous run's copy (1x the database on disk; not backed up).
    fn previous_path(&self) -> PathBuf {
        self.inc.index_dir.join(format!("{}.previous", self.name))
    }

    /// The copy the chain's last state was made from, opened, when it is still the one the
    /// index names: `<database>.previous`, or the base while the chain has no delta. None
    /// (logged) when it is missing or changed: changed pages are then stored whole.
    fn previous_copy(&self) -> Option<File> {
        if self
            .previous_spent
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            return None;
        }
        match self.open_previous(false) {
            Ok(f) => Some(f),
            Err(why) => {
                tracing::warn!(
                    database = %self.source.display(),
                    "incremental: {why}: this delta stores its changed pages whole"
                );
                None
            }
        }
    }

    /// [`Session::previous_copy`] without the log: the file, or why it cannot be used. With
    /// `write`, only `<database>.previous` (a base is never written), opened for writing.
    fn open_previous(&self, write: bool) -> Result<File, String> {
        let s = self
            .previous
            .as_ref()
            .map_err(|_| "there is no previous chain".to_string())?;
        let (path, expected) = match (&s.previous, s.files.first()) {
            (Some(fid), _) => (self.previous_path(), fid.clone()),
            (None, Some(base)) if !write && s.chain.deltas.is_empty() => {
                (self.inc.chain_dir.join(&s.chain.base.name), base.clone())
            }
            (None, _) => {
                return Err(format!(
                    "no previous copy was kept at {} (the run after a new base, an older resticpilot, or it could not be kept)",
                    self.previous_path().display()
                ));
            }
        };
        let fid = FileId::of(&path)
            .map_err(|e| format!("the previous copy {} is missing ({e})", path.display()))?;
        if fid != expected || fid.bytes != s.chain.bytes() {
            return Err(format!(
                "the previous copy {} does not match the page index (size, time or inode changed)",
                path.display()
            ));
        }
        std::fs::OpenOptions::new()
            .read(true)
            .write(write)
            .custom_flags(nix::libc::O_NOFOLLOW)
            .open(&path)
            .map_err(|e| format!("cannot open the previous copy {} ({e})", path.display()))
    }

    fn pages_partial(&self) -> PathBuf {
        self.inc
            .index_dir
            .join(format!("{}.pages.partial", self.name))
    }

    /// The previous run's record, checked against the files on disk; or why there is none
    /// that can be used (the reason a new base is taken).
    fn load(&self) -> Result<State, String> {
        let path = self.state_path();
        let text = match std::fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let has_chain = std::fs::read_dir(&self.inc.chain_dir)
                    .map(|r| {
                        r.filter_map(Result::ok)
                            .any(|e| e.file_name().to_string_lossy().starts_with("base-"))
                    })
                    .unwrap_or(false);
                return Err(if has_chain {
                    format!(
                        "the page index {} is missing (the state directory was lost or replaced)",
                        path.display()
                    )
                } else {
                    format!(
                        "no page index at {} (the first incremental backup of this database, or a new state directory)",
                        path.display()
                    )
                });
            }
            Err(e) => {
                return Err(format!(
                    "the page index {} cannot be read: {e}",
                    path.display()
                ));
            }
        };
        let state: State = serde_json::from_slice(&text)
            .map_err(|e| format!("the page index {} is not readable: {e}", path.display()))?;
        if state.version != STATE_VERSION {
            return Err(format!(
                "the page index {} has version {}, this resticpilot writes {STATE_VERSION}",
                path.display(),
                state.version
            ));
        }
        if state.source != self.source.display().to_string() {
            return Err(format!(
                "the page index followed {}, the profile now names {}",
                state.source,
                self.source.display()
            ));
        }
        if state.chain.dir != self.inc.chain_dir.display().to_string() {
            return Err(format!(
                "the page index describes a chain in {}, not {}",
                state.chain.dir,
                self.inc.chain_dir.display()
            ));
        }
        let names: Vec<&str> = std::iter::once(&state.chain.base)
            .chain(&state.chain.deltas)
            .map(|f| f.name.as_str())
            .collect();
        let recorded: Vec<&str> = state.files.iter().map(|f| f.name.as_str()).collect();
        if names != recorded {
            return Err(format!("the page index {} is inconsistent", path.display()));
        }
        for f in &state.files {
            let on_disk = self.inc.chain_dir.join(&f.name);
            match FileId::of(&on_disk) {
                Ok(id) if id == *f => {}
                Ok(_) => {
                    return Err(format!(
                        "{} changed since it was written (size, time or inode differ from the page index)",
                        on_disk.display()
                    ));
                }
                Err(e) => {
                    return Err(format!(
                        "{} is missing from the chain ({e})",
                        on_disk.display()
                    ));
                }
            }
        }
        let expected = PAGES_HEADER as u64 + state.chain.page_count * 16;
        match std::fs::metadata(self.pages_path()) {
            Ok(m) if m.len() == expected => Ok(state),
            Ok(m) => Err(format!(
                "the page index {} has {} bytes, its record says {expected}",
                self.pages_path().display(),
                m.len()
            )),
            Err(e) => Err(format!(
                "the page index {} is missing ({e})",
                self.pages_path().display()
            )),
        }
    }

    /// Removes the files of this chain directory that `keep` does not name and that
    /// resticpilot writes (bases, deltas, partial files); anything else is left and reported.
    fn remove_unlisted(&self, keep: &[String]) {
        let Ok(read) = std::fs::read_dir(&self.inc.chain_dir) else {
            return;
        };
        for entry in read.filter_map(Result::ok) {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name == MARKER || keep.contains(&name) {
                continue;
            }
            let ours = name.starts_with(COPY)
                || name == DELTA_PARTIAL
                || (name.starts_with("base-") && name.ends_with(".sqlite3"))
                || (name.starts_with("delta-") && name.ends_with(".rpdelta"));
            let is_file = entry.file_type().map(|t| t.is_file()).unwrap_or(false);
            if ours && is_file {
                if let Err(e) = std::fs::remove_file(entry.path()) {
                    tracing::warn!("cannot remove {}: {e}", entry.path().display());
                }
            } else {
                tracing::warn!(
                    "{} is not part of the chain and not resticpilot's: it is backed up with it; remove it",
                    entry.path().display()
                );
            }
        }
    }

    /// The one pass over the checked copy: page hashes against the previous index, changed
    /// pages into the partial delta, the new index, the whole-file hash.
    ///
    /// Fails when a file cannot be read or written, or the copy is not a whole SQLite file.
    pub fn pass(&self) -> Result<PassResult, String> {
        self.pass_inner().map(PassResult)
    }

    fn pass_inner(&self) -> Result<Pass, String> {
        let copy_path = self.copy_path();
        let copy = File::open(&copy_path)
            .map_err(|e| format!("cannot read the copy {}: {e}", copy_path.display()))?;
        let len = copy
            .metadata()
            .map_err(|e| format!("cannot read the copy {}: {e}", copy_path.display()))?
            .len();
        let mut reader = BufReader::with_capacity(1 << 20, copy);
        let mut header = [0u8; 100];
        reader
            .read_exact(&mut header)
            .map_err(|e| format!("the copy is not a SQLite file ({e})"))?;
        let page_size = match u16::from_be_bytes([header[16], header[17]]) {
            1 => 65536u32,
            n => u32::from(n),
        };
        if !page_size.is_power_of_two() || !(512..=65536).contains(&page_size) {
            return Err(format!("the copy has an invalid page size {page_size}"));
        }
        if !len.is_multiple_of(u64::from(page_size)) {
            return Err(format!(
                "the copy's size {len} is not a multiple of its page size {page_size}"
            ));
        }
        let page_count = len / u64::from(page_size);
        self.pages_pass(page_size, page_count, None, |number, page| {
            let start = if number == 1 {
                page[..100].copy_from_slice(&header);
                100
            } else {
                0
            };
            reader
                .read_exact(&mut page[start..])
                .map_err(|e| format!("cannot read the copy: {e}"))
        })
    }

    /// The pass over `page_count` pages of `page_size` bytes that `next` fills in order (page
    /// numbers from 1). With `mirror` (the previous copy, open for writing), every changed
    /// page is also written into it, so it ends as a copy of this run's database.
    fn pages_pass(
        &self,
        page_size: u32,
        page_count: u64,
        mirror: Option<File>,
        mut next: impl FnMut(u64, &mut [u8]) -> Result<(), String>,
    ) -> Result<Pass, String> {
        // Compare with the previous index only where pages line up.
        let mut old = match &self.previous {
            Ok(s) if s.chain.page_size == page_size && s.chain.page_count <= page_count => {
                let f = File::open(self.pages_path())
                    .map_err(|e| format!("cannot read the page index: {e}"))?;
                let mut r = BufReader::with_capacity(1 << 16, f);
                let mut h = [0u8; PAGES_HEADER];
                r.read_exact(&mut h)
                    .map_err(|e| format!("cannot read the page index: {e}"))?;
                let mut hasher = blake3::Hasher::new();
                hasher.update(&h);
                Some((
                    r,
                    hasher,
                    s.chain.page_count,
                    s.pages_hash.clone(),
                    s.chain.id.clone(),
                    s.chain.deltas.len(),
                ))
            }
            _ => None,
        };
        let mut pages_out = BufWriter::with_capacity(1 << 16, create_new(&self.pages_partial())?);
        let mut pages_hasher = blake3::Hasher::new();
        let mut ph = [0u8; PAGES_HEADER];
        ph[..8].copy_from_slice(&PAGES_MAGIC);
        ph[8..12].copy_from_slice(&1u32.to_le_bytes());
        ph[12..16].copy_from_slice(&page_size.to_le_bytes());
        ph[16..24].copy_from_slice(&page_count.to_le_bytes());
        write_all(&mut pages_out, &mut pages_hasher, &ph, "the page index")?;

        let mut delta = match &old {
            Some((_, _, _, _, id, n)) => {
                let f = create_new(&self.delta_partial())?;
                let mut w = BufWriter::with_capacity(1 << 20, f);
                // The header is written again once the record count is known.
                w.write_all(&[0u8; DELTA_HEADER])
                    .map_err(|e| format!("cannot write the delta: {e}"))?;
                Some((w, id.clone(), (*n as u32) + 1))
            }
            None => None,
        };
        let mut page = vec![0u8; page_size as usize];
        let mut changed = 0u64;
        let mut delta_bytes = if delta.is_some() {
            DELTA_HEADER as u64
        } else {
            0
        };
        let mirrored = mirror.is_some();
        let previous_copy = match mirror {
            Some(f) => Some(f),
            None if delta.is_some() => self.previous_copy(),
            None => None,
        };
        let mut old_page = vec![0u8; page_size as usize];
        let mut runs = Vec::new();
        let mut stale = 0u64;
        // The whole-file hash runs on a thread of its own: the pass (under a rollback
        // database's read lock) waits for the pages, not for BLAKE3.
        let (looped, whole) = hash_beside(|whole| -> Result<(), String> {
            for number in 1..=page_count {
                next(number, &mut page)?;
                whole.update(&page);
                let h = xxhash_rust::xxh3::xxh3_128(&page).to_le_bytes();
                write_all(&mut pages_out, &mut pages_hasher, &h, "the page index")?;
                let prev = match &mut old {
                    Some((r, hasher, count, ..)) if number <= *count => {
                        let mut prev = [0u8; 16];
                        r.read_exact(&mut prev)
                            .map_err(|e| format!("cannot read the page index: {e}"))?;
                        hasher.update(&prev);
                        Some(prev)
                    }
                    _ => None,
                };
                if prev != Some(h)
                    && let Some((w, ..)) = &mut delta
                {
                    // The page as the previous run stored it, when its copy is at hand and still
                    // holds it (its hash is the index's): then only the changed bytes are written.
                    let before = match (&previous_copy, prev) {
                        (Some(f), Some(prev)) => {
                            f.read_exact_at(&mut old_page, (number - 1) * u64::from(page_size))
                                .map_err(|e| format!("cannot read the previous copy: {e}"))?;
                            if xxhash_rust::xxh3::xxh3_128(&old_page).to_le_bytes() == prev {
                                Some(old_page.as_slice())
                            } else {
                                stale += 1;
                                None
                            }
                        }
                        _ => None,
                    };
                    delta_bytes += write_record(w, number as u32, &page, before, &mut runs)
                        .map_err(|e| format!("cannot write the delta: {e}"))?;
                    changed += 1;
                    if let (true, Some(f)) = (mirrored, &previous_copy) {
                        f.write_all_at(&page, (number - 1) * u64::from(page_size))
                            .map_err(|e| format!("cannot update the previous copy: {e}"))?;
                    }
                }
                if number.is_multiple_of(16384) && crate::signals::terminating() {
                    return Err("interrupted: resticpilot is shutting down".into());
                }
            }
            Ok(())
        })?;
        looped?;
        let mut unsynced = Vec::new();
        if let (true, Some(f)) = (mirrored, previous_copy) {
            let len = page_count * u64::from(page_size);
            let grown = f.metadata().map(|m| m.len() != len).unwrap_or(true);
            if grown {
                f.set_len(len)
                    .map_err(|e| format!("cannot update the previous copy: {e}"))?;
            }
            unsynced.push((f, "the previous copy"));
        }
        let pages_file = pages_out
            .into_inner()
            .map_err(|e| format!("cannot write the page index: {}", e.error()))?;
        unsynced.push((pages_file, "the page index"));
        let index_damaged = match old {
            Some((_, hasher, _, recorded, ..)) => hash_text(&hasher.finalize()) != recorded,
            None => false,
        };
        if stale > 0 {
            tracing::warn!(
                database = %self.source.display(),
                "incremental: {stale} changed pages differ in the previous copy from the page index; they are stored whole"
            );
        }
        if let Some((w, id, seq)) = delta {
            let mut file = w
                .into_inner()
                .map_err(|e| format!("cannot write the delta: {}", e.error()))?;
            let mut h = [0u8; DELTA_HEADER];
            h[..8].copy_from_slice(&DELTA_MAGIC);
            h[8..12].copy_from_slice(&DELTA_VERSION.to_le_bytes());
            h[12..16].copy_from_slice(&page_size.to_le_bytes());
            h[16..24].copy_from_slice(&page_count.to_le_bytes());
            h[24..32].copy_from_slice(&changed.to_le_bytes());
            h[32..36].copy_from_slice(&seq.to_le_bytes());
            h[40..48].copy_from_slice(&id_bytes(&id));
            use std::io::{Seek, SeekFrom};
            file.seek(SeekFrom::Start(0))
                .and_then(|_| file.write_all(&h))
                .map_err(|e| format!("cannot write the delta: {e}"))?;
        }
        Ok(Pass {
            page_size,
            page_count,
            hash: whole,
            changed,
            delta_bytes,
            pages_hash: pages_hasher.finalize(),
            index_damaged,
            mirrored,
            unsynced,
        })
    }

    /// Why this pass's result must become a new base rather than a delta, or None.
    fn rebase_reason(&self, pass: &Pass) -> Option<String> {
        let db_bytes = pass.page_count * u64::from(pass.page_size);
        match &self.previous {
            Err(why) => Some(why.clone()),
            Ok(s) if s.chain.page_size != pass.page_size => Some(format!(
                "the page size changed from {} to {} bytes",
                s.chain.page_size, pass.page_size
            )),
            Ok(s) if pass.page_count < s.chain.page_count => Some(format!(
                "the database shrank from {} to {} pages (VACUUM or auto_vacuum)",
                s.chain.page_count, pass.page_count
            )),
            Ok(_) if pass.index_damaged => {
                Some("the page index does not match its record (damaged)".to_string())
            }
            Ok(s) if age(s.base_time) >= self.inc.rebase_after => Some(format!(
                "the base is {} old (rebase_after {})",
                human_age(age(s.base_time)),
                human_age(self.inc.rebase_after)
            )),
            Ok(s) => {
                let total = s.chain.delta_bytes() + pass.delta_bytes;
                let share = total as f64 / db_bytes.max(1) as f64;
                (pass.changed > 0 && share > self.inc.max_delta_share).then(|| {
                    format!(
                        "the deltas would add up to {:.0} % of the database (max_delta_share {})",
                        share * 100.0,
                        self.inc.max_delta_share
                    )
                })
            }
        }
    }

    /// Whether this run starts a new chain whatever its pass finds (there is no usable page
    /// index), so its copy becomes the base.
    pub fn needs_new_base(&self) -> bool {
        self.previous.is_err()
    }

    /// Whether a pass's result would start a new chain, and why (a pass read in place then
    /// gives way to the copy, which becomes the base).
    pub fn needs_base(&self, pass: &PassResult) -> Option<String> {
        self.rebase_reason(&pass.0)
    }

    /// The previous copy to bring up to date when this run can read the database in place,
    /// or why it cannot: the chain must go on (no new base due by the page index, the page
    /// size, the size or the base's age) and a previous copy be kept that matches the index
    /// (the run after a new base copies).
    pub fn live_mirror(&self, page_size: u32, page_count: u64) -> Result<LiveMirror, String> {
        let s = self
            .previous
            .as_ref()
            .map_err(|why| format!("a new base is due: {why}"))?;
        if s.chain.page_size != page_size {
            return Err("a new base is due: the page size changed".into());
        }
        if page_count < s.chain.page_count {
            return Err("a new base is due: the database shrank".into());
        }
        if age(s.base_time) >= self.inc.rebase_after {
            return Err("a new base is due: the base is older than rebase_after".into());
        }
        self.open_previous(true).map(LiveMirror)
    }

    /// The pass over the live database's pages, read from `sqlite_dbpage` on `conn` inside
    /// the read transaction the caller holds (the same one its check ran in), with `mirror`
    /// (from [`Session::live_mirror`] in that transaction) brought up to date instead of a
    /// copy written. `Ok(Err(why))` when this build's SQLite lacks `sqlite_dbpage` and the
    /// copy must be taken instead.
    ///
    /// Fails when a file cannot be read or written, or the pages are not the ones expected.
    pub fn pass_live(
        &self,
        conn: &rusqlite::Connection,
        page_size: u32,
        page_count: u64,
        mirror: LiveMirror,
    ) -> Result<Result<PassResult, String>, String> {
        let mut stmt = match conn.prepare("SELECT pgno, data FROM sqlite_dbpage") {
            Ok(s) => s,
            Err(e) => {
                return Ok(Err(format!(
                    "this build's SQLite cannot read pages in place ({e}; it is built with SQLITE_ENABLE_DBPAGE_VTAB, see .cargo/config.toml)"
                )));
            }
        };
        let mut rows = stmt
            .query([])
            .map_err(|e| format!("cannot read the database's pages: {e}"))?;
        self.previous_spent
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let pass = self.pages_pass(page_size, page_count, Some(mirror.0), |number, page| {
            let row = rows
                .next()
                .map_err(|e| format!("cannot read the database's pages: {e}"))?
                .ok_or_else(|| {
                    format!("the database ended at page {number} of {page_count}")
                })?;
            let pgno: i64 = row
                .get(0)
                .map_err(|e| format!("cannot read the database's pages: {e}"))?;
            let data = row
                .get_ref(1)
                .and_then(|v| v.as_blob().map_err(Into::into))
                .map_err(|e| format!("cannot read page {number}: {e}"))?;
            if u64::try_from(pgno) != Ok(number) || data.len() != page.len() {
                return Err(format!(
                    "the database's page {pgno} ({} bytes) came where page {number} ({} bytes) was expected",
                    data.len(),
                    page.len()
                ));
            }
            page.copy_from_slice(data);
            Ok(())
        })?;
        if rows
            .next()
            .map_err(|e| format!("cannot read the database's pages: {e}"))?
            .is_some()
        {
            return Err(format!(
                "the database holds more than the {page_count} pages it reported"
            ));
        }
        Ok(Ok(PassResult(pass)))
    }

    /// After a pass read in place (`pass_live`), the previous copy it brought up to date
    /// must be the database it read: `check` (SQLite's check of that file, opened read-only)
    /// runs beside its BLAKE3 hash. `Ok(Err(why))` when the hash differs from the pass's (the
    /// previous copy held something else where the index said it did not change): the run
    /// must copy instead, and the next run, finding the file changed, copies too.
    ///
    /// Fails with the check's error when the hash matches: the database read is damaged.
    pub fn check_mirror(
        &self,
        pass: &PassResult,
        check: impl FnOnce(&Path) -> Result<Vec<String>, String>,
    ) -> Result<Result<Vec<String>, String>, String> {
        let copy = self.previous_path();
        let (hashed, checked) = std::thread::scope(|scope| {
            let hasher = scope.spawn(|| hash_file(&copy));
            let checked = check(&copy);
            let hashed = hasher
                .join()
                .unwrap_or_else(|_| Err("the hash panicked".into()));
            (hashed, checked)
        });
        let got = hashed?;
        if got != pass.0.hash {
            return Ok(Err(format!(
                "the previous copy {} brought up to date hashes to {}, not to the pages read ({}): it held other bytes where the page index said nothing changed",
                copy.display(),
                hash_text(&got),
                hash_text(&pass.0.hash)
            )));
        }
        checked.map(Ok)
    }

    /// Stores the checked copy: as the next delta of the chain, or as a new base (with the
    /// reason logged), then replaces the page index.
    ///
    /// Fails when a file cannot be written, synced or renamed; the previous chain and index
    /// are then still whole.
    pub fn commit(mut self, pass: PassResult) -> Result<Committed, String> {
        let mut pass = pass.0;
        for (file, what) in pass.unsynced.drain(..) {
            file.sync_all()
                .map_err(|e| format!("cannot write {what} to disk: {e}"))?;
        }
        // The check of the copy is over: what its connection left beside it goes.
        self.remove_side_files();
        let db_bytes = pass.page_count * u64::from(pass.page_size);
        let reason = self.rebase_reason(&pass);
        if let (true, Some(reason)) = (pass.mirrored, &reason) {
            // Read in place there is no copy to make a base of: the caller asks needs_base
            // first and copies.
            return Err(format!(
                "a new base is due ({reason}) but this run read the database in place"
            ));
        }
        let dir = self.inc.chain_dir.clone();
        let whole = hash_text(&pass.hash);
        let (state, description, added) = match (reason, &self.previous) {
            (Some(reason), _) => {
                let id = new_id(&pass.hash);
                let base_path = dir.join(format!("base-{id}.sqlite3"));
                let copy = self.copy_path();
                let base_hash = whole.clone();
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o600))
                    .map_err(|e| format!("cannot set the mode of {}: {e}", copy.display()))?;
                sync(&copy)?;
                std::fs::rename(&copy, &base_path)
                    .map_err(|e| format!("cannot move the copy to {}: {e}", base_path.display()))?;
                sync_dir(&dir);
                let _ = std::fs::remove_file(self.delta_partial());
                let base = ChainFile {
                    name: plain_name(&base_path),
                    bytes: db_bytes,
                    hash: base_hash,
                    pages: pass.page_count,
                };
                let fid = FileId::of(&base_path)
                    .map_err(|e| format!("cannot read {}: {e}", base_path.display()))?;
                let first = matches!(self.previous, Err(ref r) if r.starts_with("no page index"));
                if first {
                    tracing::info!(
                        database = %self.source.display(),
                        "incremental: new base {} ({}): {reason}",
                        base.name,
                        crate::units::human_bytes(db_bytes)
                    );
                } else {
                    tracing::warn!(
                        database = %self.source.display(),
                        "incremental: new base {} ({}) instead of a delta: {reason}",
                        base.name,
                        crate::units::human_bytes(db_bytes)
                    );
                }
                let state = State {
                    version: STATE_VERSION,
                    source: self.source.display().to_string(),
                    chain: Chain {
                        dir: dir.display().to_string(),
                        id,
                        page_size: pass.page_size,
                        page_count: pass.page_count,
                        hash: whole.clone(),
                        base,
                        deltas: Vec::new(),
                        new_base: Some(reason.clone()),
                    },
                    base_time: now_secs(),
                    files: vec![fid],
                    pages_hash: hash_text(&pass.pages_hash),
                    previous: None,
                };
                // The base is now the copy the next delta is made against.
                self.discard(&self.previous_path());
                (state, "incremental: new base".to_string(), db_bytes)
            }
            (None, Ok(prev)) if pass.changed == 0 && pass.page_count == prev.chain.page_count => {
                // Nothing changed: the snapshot holds the same chain again.
                let _ = std::fs::remove_file(self.delta_partial());
                let _ = std::fs::remove_file(self.copy_path());
                let _ = std::fs::remove_file(self.pages_partial());
                let mut chain = prev.chain.clone();
                chain.new_base = None;
                self.committed = true;
                let n = chain.deltas.len();
                return Ok(Committed {
                    chain,
                    description: format!(
                        "incremental: no page changed; chain of base + {n} delta{}",
                        if n == 1 { "" } else { "s" }
                    ),
                    added: 0,
                });
            }
            (None, Ok(prev)) => {
                let seq = prev.chain.deltas.len() + 1;
                let path = dir.join(format!("delta-{}-{seq:06}.rpdelta", prev.chain.id));
                let partial = self.delta_partial();
                let delta_hash = hash_file(&partial)?;
                sync(&partial)?;
                std::fs::rename(&partial, &path)
                    .map_err(|e| format!("cannot move the delta to {}: {e}", path.display()))?;
                sync_dir(&dir);
                let mut state = prev.clone();
                state.previous = if pass.mirrored {
                    FileId::of(&self.previous_path()).ok()
                } else {
                    self.keep_copy()
                };
                state.chain.deltas.push(ChainFile {
                    name: plain_name(&path),
                    bytes: pass.delta_bytes,
                    hash: hash_text(&delta_hash),
                    pages: pass.changed,
                });
                state.chain.page_count = pass.page_count;
                state.chain.hash = whole.clone();
                state.chain.new_base = None;
                state.files.push(
                    FileId::of(&path)
                        .map_err(|e| format!("cannot read {}: {e}", path.display()))?,
                );
                state.pages_hash = hash_text(&pass.pages_hash);
                let description = format!(
                    "incremental: delta {seq} ({} changed of {} pages, {})",
                    pass.changed,
                    pass.page_count,
                    crate::units::human_bytes(pass.delta_bytes)
                );
                (state, description, pass.delta_bytes)
            }
            (None, Err(_)) => unreachable!("no previous chain always gives a reason"),
        };
        // The index last: until its rename the previous one still describes a whole chain.
        std::fs::rename(self.pages_partial(), self.pages_path())
            .map_err(|e| format!("cannot replace the page index: {e}"))?;
        let state_tmp = self
            .inc
            .index_dir
            .join(format!("{}.json.partial", self.name));
        let text = serde_json::to_vec_pretty(&state).expect("state serialises");
        {
            let mut f = create_new(&state_tmp)?;
            f.write_all(&text)
                .and_then(|()| f.sync_all())
                .map_err(|e| format!("cannot write {}: {e}", state_tmp.display()))?;
        }
        std::fs::rename(&state_tmp, self.state_path())
            .map_err(|e| format!("cannot replace the page index record: {e}"))?;
        sync_dir(&self.inc.index_dir);
        self.committed = true;
        let keep: Vec<String> = state.files.iter().map(|f| f.name.clone()).collect();
        self.remove_unlisted(&keep);
        Ok(Committed {
            chain: state.chain,
            description,
            added,
        })
    }
}

impl Session {
    /// Keeps this run's copy as `<database>.previous` for the next run to diff against, and
    /// returns its identity; None (logged, the copy removed) when it cannot be kept.
    fn keep_copy(&self) -> Option<FileId> {
        use std::os::unix::fs::PermissionsExt;
        let copy = self.copy_path();
        let kept = self.previous_path();
        // The copy it replaces goes first, away from the run (see `discard`).
        self.discard(&kept);
        let result = std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o600))
            .and_then(|()| std::fs::rename(&copy, &kept))
            .and_then(|()| FileId::of(&kept));
        match result {
            Ok(fid) => {
                sync_dir(&self.inc.index_dir);
                Some(fid)
            }
            Err(e) => {
                tracing::warn!(
                    database = %self.source.display(),
                    "incremental: cannot keep the copy as {} ({e}): the next delta stores its changed pages whole",
                    kept.display()
                );
                let _ = std::fs::remove_file(&copy);
                let _ = std::fs::remove_file(&kept);
                None
            }
        }
    }
}

impl Session {
    /// Removes the file at `path` (a previous copy, as large as the database) on a thread of
    /// its own: freeing a GiB of blocks and cached pages takes ~0.3 s, which the run need not
    /// wait for. The file is first renamed to a name of this process's own (`.discarded-PID-N`,
    /// swept at the next start should the process end first), so a later run's file of the
    /// same name is never the one removed.
    fn discard(&self, path: &Path) {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let trash = self.inc.index_dir.join(format!(
            "{}.discarded-{}-{n}",
            self.name,
            std::process::id()
        ));
        if std::fs::rename(path, &trash).is_ok() {
            std::thread::spawn(move || {
                let _ = std::fs::remove_file(trash);
            });
        }
    }

    /// Removes what `discard` left when a process ended before its thread did.
    fn sweep_discarded(&self) {
        let prefix = format!("{}.discarded-", self.name);
        let own = format!("{prefix}{}-", std::process::id());
        let Ok(entries) = std::fs::read_dir(&self.inc.index_dir) else {
            return;
        };
        for e in entries.filter_map(Result::ok) {
            let name = e.file_name().to_string_lossy().into_owned();
            // This process's own are being removed by their threads.
            if name.starts_with(&prefix) && !name.starts_with(&own) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}

/// The pass's result, opaque outside this module.
pub struct PassResult(Pass);

/// `<database>.previous`, checked against the index and open for writing: what a pass read in
/// place brings up to date ([`Session::live_mirror`]).
pub struct LiveMirror(File);

impl Session {
    fn remove_side_files(&self) {
        for side in ["-wal", "-shm", "-journal"] {
            let mut p = self.copy_path().into_os_string();
            p.push(side);
            let _ = std::fs::remove_file(p);
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if !self.committed {
            for p in [self.copy_path(), self.delta_partial(), self.pages_partial()] {
                let _ = std::fs::remove_file(p);
            }
            self.remove_side_files();
        }
    }
}

fn private_dir(dir: &Path) -> Result<(), String> {
    crate::lock::create_private_dir(dir).map_err(|e| e.to_string())
}

fn create_new(path: &Path) -> Result<File, String> {
    let _ = std::fs::remove_file(path);
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))
}

fn write_all(
    w: &mut impl Write,
    hasher: &mut blake3::Hasher,
    bytes: &[u8],
    what: &str,
) -> Result<(), String> {
    hasher.update(bytes);
    w.write_all(bytes)
        .map_err(|e| format!("cannot write {what}: {e}"))
}

/// How many bytes [`hash_beside`] hands its thread at a time: BLAKE3 hashes a 1 MiB block
/// about twice as fast as the same bytes a 4 KiB page at a time (its SIMD lanes take many
/// 1 KiB chunks at once).
const HASH_BLOCK: usize = 1 << 20;

/// Feeds a BLAKE3 hash computed on a thread of its own: [`BlockHasher::update`] only copies
/// the bytes into a block, which the thread hashes while the caller goes on.
struct BlockHasher {
    block: Vec<u8>,
    full: std::sync::mpsc::SyncSender<Vec<u8>>,
    back: std::sync::mpsc::Receiver<Vec<u8>>,
    blocks: usize,
}

impl BlockHasher {
    fn update(&mut self, bytes: &[u8]) {
        self.block.extend_from_slice(bytes);
        if self.block.len() >= HASH_BLOCK {
            // At most three blocks: one filling, one queued, one being hashed.
            let next = match self.back.try_recv() {
                Ok(b) => b,
                Err(_) if self.blocks < 3 => {
                    self.blocks += 1;
                    Vec::with_capacity(HASH_BLOCK)
                }
                Err(_) => self
                    .back
                    .recv()
                    .unwrap_or_else(|_| Vec::with_capacity(HASH_BLOCK)),
            };
            let full = std::mem::replace(&mut self.block, next);
            // A thread that is gone shows at the join.
            let _ = self.full.send(full);
        }
    }
}

/// Runs `f` with a [`BlockHasher`]; returns what `f` returned and the BLAKE3 hash of every
/// byte it fed, in order.
///
/// Fails only when the hashing thread panicked.
fn hash_beside<R>(f: impl FnOnce(&mut BlockHasher) -> R) -> Result<(R, blake3::Hash), String> {
    std::thread::scope(|scope| {
        let (full, blocks) = std::sync::mpsc::sync_channel::<Vec<u8>>(1);
        let (give_back, back) = std::sync::mpsc::channel();
        let worker = scope.spawn(move || {
            let mut hasher = blake3::Hasher::new();
            for mut block in blocks {
                hasher.update(&block);
                block.clear();
                let _ = give_back.send(block);
            }
            hasher.finalize()
        });
        let mut feed = BlockHasher {
            block: Vec::with_capacity(HASH_BLOCK),
            full,
            back,
            blocks: 1,
        };
        let result = f(&mut feed);
        let BlockHasher { block, full, .. } = feed;
        if !block.is_empty() {
            let _ = full.send(block);
        }
        drop(full);
        let hash = worker
            .join()
            .map_err(|_| "the hash of the pages failed (its thread panicked)".to_string())?;
        Ok((result, hash))
    })
}

fn sync(path: &Path) -> Result<(), String> {
    File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(|e| format!("cannot sync {}: {e}", path.display()))
}

fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Subtrees up to this size are hashed by one thread.
const HASH_SPLIT: u64 = 64 << 20;
/// Splits below the root: at most 2^(1 + this) threads, each with a 1 MiB buffer, so memory
/// stays flat whatever the size (a split per 64 MiB took 80 MiB at 4 GiB).
const HASH_DEPTH: u32 = 1;

/// BLAKE3 of the file at `path`: large files are split along BLAKE3's own tree into subtrees
/// hashed on threads (the same result as hashing the file in one stream, on all cores).
pub fn hash_file(path: &Path) -> Result<blake3::Hash, String> {
    use blake3::hazmat::{Mode, merge_subtrees_root};
    let f = File::open(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let len = f
        .metadata()
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?
        .len();
    let read_err = |e: std::io::Error| format!("cannot read {}: {e}", path.display());
    if len <= HASH_SPLIT {
        let mut hasher = blake3::Hasher::new();
        hasher
            .update_reader(BufReader::with_capacity(1 << 20, f))
            .map_err(read_err)?;
        return Ok(hasher.finalize());
    }
    let left = blake3::hazmat::left_subtree_len(len);
    let (l, r) = std::thread::scope(|s| {
        let l = s.spawn(|| subtree(&f, 0, left, HASH_DEPTH));
        let r = subtree(&f, left, len, HASH_DEPTH);
        (l.join().unwrap_or_else(|_| panic!("hash thread")), r)
    });
    Ok(merge_subtrees_root(
        &l.map_err(read_err)?,
        &r.map_err(read_err)?,
        Mode::Hash,
    ))
}

/// The chaining value of the BLAKE3 subtree of `f` from `start` to `end` (a subtree of the
/// file's tree: `start` aligned to its size), split over threads while larger than
/// [`HASH_SPLIT`], `depth` more times at most.
fn subtree(
    f: &File,
    start: u64,
    end: u64,
    depth: u32,
) -> std::io::Result<blake3::hazmat::ChainingValue> {
    use blake3::hazmat::{HasherExt, Mode, merge_subtrees_non_root};
    let len = end - start;
    if depth > 0 && len > HASH_SPLIT {
        let mid = start + blake3::hazmat::left_subtree_len(len);
        let (l, r) = std::thread::scope(|s| {
            let l = s.spawn(|| subtree(f, start, mid, depth - 1));
            let r = subtree(f, mid, end, depth - 1);
            (l.join().unwrap_or_else(|_| panic!("hash thread")), r)
        });
        return Ok(merge_subtrees_non_root(&l?, &r?, Mode::Hash));
    }
    let mut hasher = blake3::Hasher::new();
    hasher.set_input_offset(start);
    let mut buf = vec![0u8; 1 << 20];
    let mut at = start;
    while at < end {
        let n = ((end - at) as usize).min(buf.len());
        f.read_exact_at(&mut buf[..n], at)?;
        hasher.update(&buf[..n]);
        at += n as u64;
    }
    Ok(hasher.finalize_non_root())
}

/// A new chain id: 16 hex digits from the time, the process and the copy's hash.
fn new_id(copy: &blake3::Hash) -> String {
    let mut h = blake3::Hasher::new();
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    h.update(&now.as_nanos().to_le_bytes());
    h.update(&std::process::id().to_le_bytes());
    h.update(copy.as_bytes());
    h.finalize().to_hex()[..16].to_string()
}

/// The 8 bytes of a 16-hex-digit chain id (zeros where it is not hex).
pub fn id_bytes(id: &str) -> [u8; 8] {
    let mut out = [0u8; 8];
    for (i, b) in out.iter_mut().enumerate() {
        *b = id
            .get(i * 2..i * 2 + 2)
            .and_then(|s| u8::from_str_radix(s, 16).ok())
            .unwrap_or(0);
    }
    out
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn age(since: u64) -> Duration {
    Duration::from_secs(now_secs().saturating_sub(since))
}

fn human_age(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 86400 && s.is_multiple_of(86400) || s >= 4 * 86400 {
        format!("{}d", s / 86400)
    } else if s >= 3600 {
        format!("{}h", s / 3600)
    } else if s >= 60 {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pass_hash_fed_in_pieces_on_its_own_thread_is_blake3_of_the_bytes_in_order() {
        // Pieces of odd sizes over several blocks (the blocks are recycled), ending mid-block.
        let bytes: Vec<u8> = (0..(5 * HASH_BLOCK + 12_345))
            .map(|i| (i * 7 + i / 4096) as u8)
            .collect();
        let ((), hash) = hash_beside(|h| {
            let mut rest = &bytes[..];
            let mut size = 1;
            while !rest.is_empty() {
                let n = size.min(rest.len());
                h.update(&rest[..n]);
                rest = &rest[n..];
                size = size * 3 % 70_001 + 1;
            }
        })
        .unwrap();
        assert_eq!(hash, blake3::hash(&bytes));
        let ((), empty) = hash_beside(|_| {}).unwrap();
        assert_eq!(empty, blake3::hash(b""));
    }

    #[test]
    fn the_file_hash_split_over_threads_is_blake3_of_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let mut data = vec![0u8; (HASH_SPLIT * 3 + 12345) as usize];
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for b in data.iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
        for len in [
            0,
            1,
            1024,
            1025,
            HASH_SPLIT,
            HASH_SPLIT + 1,
            HASH_SPLIT * 2,
            HASH_SPLIT * 3 + 12345,
        ] {
            let part = &data[..len as usize];
            std::fs::write(&path, part).unwrap();
            assert_eq!(hash_file(&path).unwrap(), blake3::hash(part), "{len} bytes");
        }
    }

    #[test]
    fn the_bundled_sqlite_reads_pages_in_place() {
        // .cargo/config.toml compiles it with sqlite_dbpage; without it every run copies.
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (1);")
            .unwrap();
        let pages: i64 = conn
            .query_row("SELECT count(*) FROM sqlite_dbpage", [], |r| r.get(0))
            .expect("sqlite_dbpage: build with .cargo/config.toml's LIBSQLITE3_FLAGS");
        assert_eq!(pages, 2);
    }

    #[test]
    fn chain_ids_round_trip_through_the_delta_header() {
        let id = new_id(&blake3::hash(b"x"));
        assert_eq!(id.len(), 16);
        let bytes = id_bytes(&id);
        let back: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(back, id);
    }
}
