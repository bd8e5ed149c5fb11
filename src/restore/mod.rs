//! Getting a snapshot back: which snapshot of a profile, where its dumps are inside it, and
//! what its manifest says about them. The engines (`source::`) put databases back, `files`
//! the files; `drill` is the restore drill (`verify`).
//!
//! Dumps are found through the snapshot itself (the directory holding `resticpilot-manifest.json`
//! among the snapshot's paths), never through the profile's current `staging_dir`, which may
//! have changed since the backup.

pub mod bound;
pub mod drill;
pub mod files;
pub mod flush;
pub mod progress;

use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::config::Profile;
use crate::error::Error;
pub use crate::error::RestoreError;
pub use crate::manifest::{MANIFEST, Manifest, ManifestDatabase};
use crate::restic::{Restic, Snapshot};

/// One snapshot of a profile, opened: where its dumps are and what else it holds.
#[derive(Debug, Clone)]
pub struct Contents {
    pub snapshot: Snapshot,
    /// The staging directory as recorded in the snapshot (absolute).
    pub staging: String,
    pub manifest: Manifest,
    /// The snapshot's other paths: the profile's files at backup time.
    pub files: Vec<String>,
    /// An incremental chain fetched with the manifest (see [`Prefetch`]), until a rebuild takes it.
    prefetched: Option<Arc<Prefetched>>,
}

/// What [`open`] may fetch in the same `restic restore` as the manifest: the chain directory a
/// restore of one incremental SQLite database will need, predicted from the profile
/// (`<state_dir>/chains/<profile>/<database>`), into a scratch directory made in `dir`, the
/// destination's directory (the base is renamed from there into place). Each restic call pays
/// restic's key derivation and index load: this saves one. A prediction the manifest does not
/// confirm is thrown away, and the chain is fetched by itself as before.
#[derive(Debug, Clone)]
pub struct Prefetch {
    pub dir: PathBuf,
    pub chain: String,
}

/// A chain fetched by [`open`]: the scratch directory holding it (removed when dropped).
#[derive(Debug)]
pub struct Prefetched {
    /// The chain directory's path in the snapshot.
    pub chain: String,
    scratch: Mutex<Option<tempfile::TempDir>>,
    /// How long the restic call took (it fetched the manifest too, a small part of it).
    pub fetch_time: Duration,
}

impl Contents {
    pub fn id(&self) -> &str {
        &self.snapshot.id
    }

    pub fn short(&self) -> &str {
        self.snapshot.short()
    }

    /// The path of a dump file inside the snapshot.
    pub fn dump_path(&self, db: &ManifestDatabase) -> String {
        format!("{}/{}", self.staging.trim_end_matches('/'), db.file)
    }

    /// The scratch directory holding the chain directory `chain` (under the chain's own path,
    /// relative to the root), when [`open`] fetched it; once only: the rebuild consumes it.
    pub fn take_chain(&self, chain: &str) -> Option<(tempfile::TempDir, Duration)> {
        let p = self.prefetched.as_ref().filter(|p| p.chain == chain)?;
        let scratch = p.scratch.lock().ok()?.take()?;
        Some((scratch, p.fetch_time))
    }

    pub fn database(&self, name: &str) -> Option<&ManifestDatabase> {
        self.manifest.databases.iter().find(|d| d.name == name)
    }

    /// "a, b" or "none".
    pub fn database_names(&self) -> String {
        let names: Vec<&str> = self
            .manifest
            .databases
            .iter()
            .map(|d| d.name.as_str())
            .collect();
        if names.is_empty() {
            "none".into()
        } else {
            names.join(", ")
        }
    }
}

/// The snapshot `spec` ("latest" or an id or id prefix) among `profile`'s snapshots (its tags
/// on its host).
///
/// Fails when restic fails, when the profile has no snapshot, and with a usage error when no
/// snapshot of the profile matches `spec` (or more than one does).
pub fn select(restic: &Restic, profile: &Profile, spec: &str) -> Result<Snapshot, Error> {
    let mut list = restic.snapshots(&profile.host, &profile.profile_tag())?;
    if list.is_empty() {
        // A new server has a new name: say where the profile's snapshots are.
        let mut elsewhere: Vec<(String, usize)> = Vec::new();
        for s in restic.snapshots_any_host(&profile.profile_tag())? {
            match elsewhere.iter_mut().find(|(h, _)| *h == s.hostname) {
                Some((_, n)) => *n += 1,
                None => elsewhere.push((s.hostname.clone(), 1)),
            }
        }
        let hint = match elsewhere.as_slice() {
            [] => String::new(),
            hosts => format!(
                "; it has {}: set `host:` in the profile to the old machine's name to restore them",
                hosts
                    .iter()
                    .map(|(h, n)| format!("{} on host {h}", count(*n as u64, "snapshot")))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        return Err(Error::Failed(format!(
            "profile {} has no snapshots on host {} in repository {} ({}){hint}",
            profile.name,
            profile.host,
            profile.repository,
            restic.url()
        )));
    }
    if spec == "latest" {
        // RFC 3339 times from one restic sort as text once normalised to one zone; restic
        // already lists oldest first, so the last is the newest.
        list.sort_by(|a, b| {
            let ta = chrono::DateTime::parse_from_rfc3339(&a.time).ok();
            let tb = chrono::DateTime::parse_from_rfc3339(&b.time).ok();
            ta.cmp(&tb)
        });
        return Ok(list.pop().expect("not empty"));
    }
    // An empty id is a prefix of every id: it names nothing.
    if spec.trim().is_empty() {
        let newest: Vec<&Snapshot> = list.iter().rev().collect();
        return Err(Error::Usage(format!(
            "--snapshot is empty: give `latest` or a snapshot id (or a unique prefix of one); profile {}'s snapshots on host {}: {}",
            profile.name,
            profile.host,
            candidates(&newest)
        )));
    }
    let matches: Vec<&Snapshot> = list.iter().filter(|s| s.id.starts_with(spec)).collect();
    match matches.as_slice() {
        [one] => Ok((*one).clone()),
        [] => {
            let newest: Vec<&Snapshot> = list.iter().rev().collect();
            Err(Error::Usage(format!(
                "no snapshot {spec:?} among profile {}'s snapshots on host {}: {}",
                profile.name,
                profile.host,
                candidates(&newest)
            )))
        }
        many => Err(Error::Usage(format!(
            "snapshot id {spec:?} is ambiguous: it starts {} snapshots of profile {}: {}; give more characters",
            many.len(),
            profile.name,
            candidates(many)
        ))),
    }
}

/// "1f0c9a2e (2026-11-22 23:40:20 +00:00), ..." for the first few of `list`.
fn candidates(list: &[&Snapshot]) -> String {
    const SHOWN: usize = 10;
    let mut out: Vec<String> = list
        .iter()
        .take(SHOWN)
        .map(|s| format!("{} ({})", s.short(), show_time(&s.time)))
        .collect();
    if list.len() > SHOWN {
        out.push(format!("and {} more", list.len() - SHOWN));
    }
    out.join(", ")
}

/// When `snapshot` is tagged `incomplete`, what a restore from it should say: that its run
/// finished with warnings, and which snapshot of the profile is the latest complete one.
/// `latest` stays the newest snapshot even then: its database dumps are as whole as any (a
/// dump that fails fails the run before restic runs) and newer than the others; only files
/// (a missing path, unreadable files) or a database that had no tables may be missing.
pub fn incomplete_note(restic: &Restic, profile: &Profile, snapshot: &Snapshot) -> Option<String> {
    if !snapshot.is_incomplete() {
        return None;
    }
    let complete = restic
        .snapshots(&profile.host, &profile.profile_tag())
        .ok()
        .and_then(|list| {
            list.into_iter()
                .filter(|s| !s.is_incomplete())
                .max_by_key(|s| chrono::DateTime::parse_from_rfc3339(&s.time).ok())
        });
    let other = match complete {
        Some(c) => format!(
            "the latest complete snapshot is {} ({}): add --snapshot {} to use it",
            c.short(),
            show_time(&c.time),
            c.short()
        ),
        None => "the profile has no complete snapshot".to_string(),
    };
    Some(format!(
        "snapshot {} is INCOMPLETE: its backup finished with warnings (a configured path missing, files restic could not read, or a database with no tables), so some files or data may be missing from it; {other}",
        snapshot.short()
    ))
}

/// Largest manifest read (a bound on untrusted input; a real one is a few KiB).
const MAX_MANIFEST: u64 = 16 << 20;

/// Finds the staging directory in `snapshot` and reads its manifest: one `restic restore` of
/// `<path>/resticpilot-manifest.json` for each of the snapshot's paths into a private scratch
/// directory (each restic call pays restic's key derivation and index load, so the listing
/// and the dump this used to take are one call now). With `prefetch`, the same call fetches
/// that chain too, when the snapshot has its parent directory among its paths.
///
/// Fails when restic fails, or the snapshot holds no resticpilot manifest or an unreadable one.
pub fn open(
    restic: &Restic,
    snapshot: Snapshot,
    prefetch: Option<&Prefetch>,
) -> Result<Contents, RestoreError> {
    let prefetch = prefetch.filter(|p| {
        clean_absolute(&p.chain)
            && Path::new(&p.chain)
                .parent()
                .is_some_and(|root| snapshot.paths.iter().any(|sp| Path::new(sp) == root))
    });
    if let Some(p) = prefetch {
        match private_scratch(Some(&p.dir), ".resticpilot-chain-") {
            Ok(scratch) => match open_into(restic, &snapshot, scratch, Some(&p.chain)) {
                // The destination's disk filled up with the chain: the manifest alone, and
                // the chain's own fetch then says how much room it needs. Any other failure
                // would only come again.
                Err(e) if crate::space::is_full_text(&e.to_string()) => tracing::debug!(
                    "fetching the manifest with the chain {} filled the disk ({e}): the manifest alone",
                    p.chain
                ),
                other => return other,
            },
            Err(e) => tracing::debug!(
                "no scratch directory in {} for the chain ({e}): the manifest alone",
                p.dir.display()
            ),
        }
    }
    match private_scratch(None, ".resticpilot-manifest-") {
        Ok(scratch) => open_into(restic, &snapshot, scratch, None),
        Err(e) => {
            tracing::debug!("no scratch directory for the manifest ({e}): listing the snapshot");
            open_by_listing(restic, snapshot)
        }
    }
}

/// A new directory of mode 0700 in `dir` (the system's temporary directory without one),
/// removed when dropped.
pub fn private_scratch(dir: Option<&Path>, prefix: &str) -> std::io::Result<tempfile::TempDir> {
    use std::os::unix::fs::PermissionsExt;
    let mut b = tempfile::Builder::new();
    b.prefix(prefix);
    let scratch = match dir {
        Some(d) => b.tempdir_in(d)?,
        None => b.tempdir()?,
    };
    std::fs::set_permissions(scratch.path(), std::fs::Permissions::from_mode(0o700))?;
    Ok(scratch)
}

/// [`open`]'s restic call into `scratch`: the manifest of each of the snapshot's paths, and
/// with `chain` that chain's base and deltas (kept in `scratch` for the rebuild).
fn open_into(
    restic: &Restic,
    snapshot: &Snapshot,
    scratch: tempfile::TempDir,
    chain: Option<&str>,
) -> Result<Contents, RestoreError> {
    let bad = |reason: String| RestoreError::Snapshot {
        snapshot: snapshot.short().to_string(),
        reason,
    };
    let mut includes: Vec<String> = snapshot
        .paths
        .iter()
        .filter(|p| clean_absolute(p))
        .map(|p| restic_pattern(&format!("{}/{MANIFEST}", p.trim_end_matches('/'))))
        .collect();
    if let Some(c) = chain {
        // The chain's files only (`base-*`, `delta-*`): what a backup writes there.
        for kind in ["base-", "delta-"] {
            includes.push(format!("{}/{kind}*", restic_pattern(c)));
        }
    }
    let started = Instant::now();
    if !includes.is_empty() {
        // A chain's base is the database's size: written back while restic writes it.
        let _flush = chain.map(|_| flush::Flusher::start(scratch.path()));
        restic.restore(&snapshot.id, scratch.path(), &includes, false)?;
    }
    let fetch_time = started.elapsed();
    let root = scratch
        .path()
        .canonicalize()
        .map_err(|e| bad(format!("cannot read its manifest: {e}")))?;
    // The first of the snapshot's paths holding a manifest that is a regular file (no
    // symlink anywhere on its path), as `restic ls` would list it.
    let found = snapshot
        .paths
        .iter()
        .filter(|p| clean_absolute(p))
        .find_map(|p| {
            let rel = p.trim_end_matches('/').trim_start_matches('/');
            let local = root.join(rel).join(MANIFEST);
            match (local.canonicalize(), std::fs::symlink_metadata(&local)) {
                (Ok(real), Ok(m)) if real == local && m.is_file() => {
                    Some((p.clone(), local, m.len()))
                }
                _ => None,
            }
        });
    let Some((staging_path, local, size)) = found else {
        return Err(bad(format!(
            "none of its paths ({}) holds a {MANIFEST}: it was not made by resticpilot, or its staging directory is missing",
            snapshot.paths.join(", ")
        )));
    };
    let staging = staging_path.trim_end_matches('/').to_string();
    let manifest_path = format!("{staging}/{MANIFEST}");
    if size > MAX_MANIFEST {
        return Err(bad(format!(
            "its {manifest_path} has {size} bytes, more than a manifest can have ({MAX_MANIFEST})"
        )));
    }
    let text =
        std::fs::read(&local).map_err(|e| bad(format!("cannot read its {manifest_path}: {e}")))?;
    let _ = std::fs::remove_file(&local);
    let mut contents = contents(snapshot.clone(), staging, &manifest_path, &text)?;
    // The chain stays for the rebuild only when the manifest names it (otherwise the scratch
    // directory and whatever it holds go now).
    if let Some(c) = chain {
        let named = contents
            .manifest
            .databases
            .iter()
            .filter_map(|d| d.incremental.as_ref())
            .any(|inc| inc.dir == c);
        if named {
            contents.prefetched = Some(Arc::new(Prefetched {
                chain: c.to_string(),
                scratch: Mutex::new(Some(scratch)),
                fetch_time,
            }));
        } else {
            tracing::debug!(
                "the manifest does not name the chain {c}: it is fetched again if needed"
            );
        }
    }
    Ok(contents)
}

/// [`open`] without a scratch directory: `restic ls` finds the manifest, `restic dump` reads
/// it (two restic calls).
fn open_by_listing(restic: &Restic, snapshot: Snapshot) -> Result<Contents, RestoreError> {
    let mut candidates = Vec::new();
    restic.ls(&snapshot.id, &snapshot.paths, false, |node| {
        if node.is_file() && node.name == MANIFEST && node.size.unwrap_or(0) <= MAX_MANIFEST {
            candidates.push(node.path);
        }
    })?;
    let manifest_path = candidates
        .into_iter()
        .find(|p| {
            Path::new(p)
                .parent()
                .is_some_and(|dir| snapshot.paths.iter().any(|sp| Path::new(sp) == dir))
        })
        .ok_or_else(|| RestoreError::Snapshot {
            snapshot: snapshot.short().to_string(),
            reason: format!(
                "none of its paths ({}) holds a {MANIFEST}: it was not made by resticpilot, or its staging directory is missing",
                snapshot.paths.join(", ")
            ),
        })?;
    let staging = Path::new(&manifest_path)
        .parent()
        .expect("checked above")
        .display()
        .to_string();
    let mut text = Vec::new();
    restic.dump(&snapshot.id, &manifest_path, &mut text)?;
    contents(snapshot, staging, &manifest_path, &text)
}

/// The snapshot's contents from its manifest's `text`, found at `manifest_path` in `staging`.
fn contents(
    snapshot: Snapshot,
    staging: String,
    manifest_path: &str,
    text: &[u8],
) -> Result<Contents, RestoreError> {
    let manifest: Manifest = serde_json::from_slice(text).map_err(|e| RestoreError::Snapshot {
        snapshot: snapshot.short().to_string(),
        reason: format!("its {manifest_path} is not a readable manifest: {e}"),
    })?;
    check_manifest(&manifest, &staging).map_err(|reason| RestoreError::Snapshot {
        snapshot: snapshot.short().to_string(),
        reason: format!(
            "refusing to restore from it: {reason}. Snapshot contents are untrusted (anyone with the repository key can write one); this one was not written by resticpilot as it is"
        ),
    })?;
    // Incremental chains are backed up beside staging: they are not the profile's files.
    let chain_roots: Vec<String> = manifest
        .databases
        .iter()
        .filter_map(|d| d.incremental.as_ref())
        .filter_map(|c| Path::new(&c.dir).parent().map(|p| p.display().to_string()))
        .collect();
    let files = snapshot
        .paths
        .iter()
        .filter(|p| **p != staging && !chain_roots.contains(p))
        .cloned()
        .collect();
    Ok(Contents {
        snapshot,
        staging,
        manifest,
        files,
        prefetched: None,
    })
}

/// An absolute path without `.` or `..`.
fn clean_absolute(path: &str) -> bool {
    Path::new(path).is_absolute()
        && Path::new(path)
            .components()
            .all(|c| matches!(c, Component::RootDir | Component::Normal(_)))
}

/// `path` as a restic `--include` pattern that matches only itself: restic reads `*?[\`
/// as pattern characters, so they are escaped.
pub fn restic_pattern(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        if "*?[\\".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Every name in a manifest that a restore turns into a path must stay a plain name inside
/// its directory: dump file names (joined to `--target`, verify's scratch space and the
/// staging directory in the snapshot), database names, the MySQL databases a dump holds (the
/// pre-restore copies are named after them). `staging` (where the manifest was found) must be
/// an absolute path without `.` or `..`.
///
/// Fails with the first entry that is not, named.
pub fn check_manifest(manifest: &Manifest, staging: &str) -> Result<(), String> {
    let clean = Path::new(staging).is_absolute()
        && Path::new(staging)
            .components()
            .all(|c| matches!(c, Component::RootDir | Component::Normal(_)));
    if !clean {
        return Err(format!(
            "its staging directory {staging:?} is not a plain absolute path"
        ));
    }
    for db in &manifest.databases {
        if !is_plain_name(&db.name) {
            return Err(format!(
                "its manifest names a database {:?}, which is not a plain name",
                db.name
            ));
        }
        if !is_plain_name(&db.file) {
            return Err(format!(
                "its manifest says the dump of database {} is the file {:?}, which is not a plain file name inside the staging directory",
                db.name, db.file
            ));
        }
        if let Some(engine) = crate::source::engine(&db.kind) {
            engine.check_manifest(db)?;
        }
    }
    Ok(())
}

/// A name that is one path component and nothing else: not empty, not `.` or `..`, no `/`,
/// no NUL or other control character, at most 255 bytes.
pub fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && name != "."
        && name != ".."
        && !name.contains('/')
        && !name.chars().any(char::is_control)
}

/// `dir` joined with the plain name `name` (a manifest's file name): never an absolute path
/// or one that climbs out of `dir`.
///
/// Fails when `name` is not a plain name.
pub fn inside(dir: &Path, name: &str) -> Result<PathBuf, RestoreError> {
    if !is_plain_name(name) {
        return Err(RestoreError::refused(
            format!("{name:?}"),
            format!(
                "it is not a plain file name, so it would not stay inside {}",
                dir.display()
            ),
        ));
    }
    Ok(dir.join(name))
}

/// "1 file", "2 files".
pub fn count(n: impl Into<u64>, what: &str) -> String {
    crate::units::count(n, what, &format!("{what}s"))
}

/// An RFC 3339 time from restic as "2026-11-22 23:34:12 +00:00".
pub fn show_time(rfc3339: &str) -> String {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S %:z").to_string())
        .unwrap_or_else(|_| rfc3339.to_string())
}

/// A file name suffix for "now": `20261122T232730Z`.
pub fn timestamp() -> String {
    chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string()
}

/// `base` + `suffix`, or with `-1`, `-2`... appended when that name is taken.
pub fn unused_name(base: &Path, suffix: &str) -> PathBuf {
    let first = PathBuf::from(format!("{}{suffix}", base.display()));
    if first.symlink_metadata().is_err() {
        return first;
    }
    (1..)
        .map(|n| PathBuf::from(format!("{}{suffix}-{n}", base.display())))
        .find(|p| p.symlink_metadata().is_err())
        .expect("some number is free")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_from_a_backup_is_read() {
        let text = r#"{"resticpilot":"0.1.0","profile":"shop","host":"h","created":"2026-11-22T23:00:00Z",
            "staging_dir":"/var/lib/resticpilot/staging/shop","databases":[
            {"name":"main","type":"mysql","file":"main.sql","bytes":10,"duration":0.5,
             "source":"shop, billing","method":"mariadb-dump","tables":["shop.t"]}]}"#;
        let m: Manifest = serde_json::from_str(text).unwrap();
        assert_eq!(m.databases[0].mysql_databases(), ["shop", "billing"]);
        assert_eq!(m.databases[0].tables, ["shop.t"]);
    }

    #[test]
    fn manifest_names_must_stay_inside_their_directory() {
        let manifest = |file: &str, source: &str| -> Manifest {
            serde_json::from_value(serde_json::json!({"databases": [
                {"name": "main", "type": "mysql", "file": file, "source": source}]}))
            .unwrap()
        };
        assert!(check_manifest(&manifest("main.sql", "shop"), "/s/p").is_ok());
        for bad in ["../x.sql", "/etc/x", "a/b.sql", "..", ".", "", "x\n.sql"] {
            let err = check_manifest(&manifest(bad, "shop"), "/s/p").unwrap_err();
            assert!(err.contains("not a plain file name"), "{bad:?}: {err}");
        }
        let err = check_manifest(&manifest("main.sql", "shop, ../../etc"), "/s/p").unwrap_err();
        assert!(err.contains("\"../../etc\""), "{err}");
        assert!(check_manifest(&manifest("main.sql", "shop"), "/s/../p").is_err());
        assert!(check_manifest(&manifest("main.sql", "shop"), "s/p").is_err());
        assert!(inside(Path::new("/t"), "../x").is_err());
        assert_eq!(
            inside(Path::new("/t"), "x.sql").unwrap(),
            Path::new("/t/x.sql")
        );
    }

    #[test]
    fn the_database_list_wins_over_the_joined_source() {
        let text = r#"{"databases":[{"name":"main","type":"mysql","file":"main.sql",
             "source":"we, ird","databases":["we, ird"]}]}"#;
        let m: Manifest = serde_json::from_str(text).unwrap();
        assert_eq!(m.databases[0].mysql_databases(), ["we, ird"]);
    }

    #[test]
    fn unused_name_counts_up() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("app.db");
        let a = unused_name(&base, ".pre-restore-X");
        assert!(a.ends_with("app.db.pre-restore-X"));
        std::fs::write(&a, "").unwrap();
        let b = unused_name(&base, ".pre-restore-X");
        assert!(b.ends_with("app.db.pre-restore-X-1"));
    }
}
