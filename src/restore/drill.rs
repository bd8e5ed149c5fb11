//! The restore drill (`verify`): restore a snapshot into scratch space and prove it usable.
//!
//! Every database of the snapshot is restored and checked (SQLite: extracted to a scratch
//! file, `integrity_check`, rows per table; MySQL: streamed into a scratch database on the
//! configured server, its tables compared with the dump's, the database dropped afterwards).
//! The profile's files are restored into scratch space with restic's `--verify`, and every
//! configured path must be there. Each item reports its size, how long its restore took (the
//! recovery time to expect) and its result. Nothing live is touched.

use std::path::Path;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::{Contents, ManifestDatabase, files, mysql, sqlite};
use crate::config::{Profile, SourceKind};
use crate::dirs::Fix;
use crate::dump::human_bytes;
use crate::error::Error;
use crate::restic::Restic;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Pass,
    Fail,
    /// Could not be checked here (for example the MySQL server is not reachable).
    Skipped,
}

impl Outcome {
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Fail => "FAIL",
            Outcome::Skipped => "skipped",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub profile: String,
    pub snapshot: SnapshotInfo,
    /// `fail` when anything failed, else `skipped` when something could not be checked.
    pub result: Outcome,
    /// Wall time of the whole drill.
    pub duration_seconds: f64,
    /// Sum of the restore times of the databases and files: the recovery time to expect.
    pub restore_seconds: f64,
    pub databases: Vec<DatabaseCheck>,
    pub files: FilesCheck,
}

#[derive(Debug, Clone, Serialize)]
pub struct SnapshotInfo {
    pub id: String,
    pub short_id: String,
    pub time: String,
    pub host: String,
    /// Tagged `incomplete`: its backup finished with warnings (see `restore::incomplete_note`).
    pub incomplete: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct DatabaseCheck {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub result: Outcome,
    pub bytes: u64,
    pub restore_seconds: f64,
    pub tables: usize,
    /// SQLite: rows per table of the restored copy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rows: Option<Vec<TableRows>>,
    /// SQLite `method: incremental`: files the copy is rebuilt from (base + deltas).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chain_length: Option<usize>,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct TableRows {
    pub table: String,
    pub rows: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct FilesCheck {
    pub result: Outcome,
    pub files: u64,
    pub bytes: u64,
    pub restore_seconds: f64,
    pub paths: Vec<PathCheck>,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct PathCheck {
    pub path: String,
    pub present: bool,
}

fn secs(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0).round() / 1000.0
}

/// Runs the drill of `profile` on `contents` in a new directory under `scratch`, removed
/// afterwards. Failures of the items are results in the report, not errors.
///
/// `scratch` under `state_dir` (the default) is resticpilot's own directory there. Any other
/// `scratch` is the operator's (`verify --scratch DIR`): created when missing, otherwise used
/// as it is (its mode is never changed; `/tmp` stays `/tmp`), but refused when another user
/// could replace what the drill creates in it. The drill's own space is always a fresh
/// directory (mode 0700) made inside it.
///
/// Fails only when the scratch directory cannot be created or is not safe to use.
pub fn run(
    restic: &Restic,
    profile: &Profile,
    contents: &Contents,
    scratch: &Path,
    state_dir: &Path,
) -> Result<Report, Error> {
    let start = Instant::now();
    if crate::dirs::lexical(scratch).starts_with(crate::dirs::lexical(state_dir)) {
        crate::dirs::private_dir(state_dir, scratch, &Fix::key("state_dir"))?;
    } else if scratch.exists() {
        crate::dirs::check_trusted(scratch, &Fix(" (or choose another --scratch DIR)".into()))?;
    } else {
        crate::dirs::private_dir(
            scratch.parent().unwrap_or(Path::new("/")),
            scratch,
            &Fix(" (or choose another --scratch DIR)".into()),
        )?;
    }
    let dir = tempfile::Builder::new()
        .prefix("verify-")
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .tempdir_in(scratch)
        .map_err(|e| {
            Error::io(
                format!("cannot create a scratch directory in {}", scratch.display()),
                e,
            )
        })?;
    let mut databases = Vec::new();
    for db in &contents.manifest.databases {
        tracing::info!(profile = %profile.name, database = %db.name, "restoring {} into scratch space", db.name);
        let check = match db.kind.as_str() {
            "sqlite" => check_sqlite(restic, profile, contents, db, dir.path()),
            "mysql" => check_mysql(restic, profile, contents, db),
            other => DatabaseCheck {
                result: Outcome::Skipped,
                detail: format!("this resticpilot cannot check {other} dumps"),
                ..DatabaseCheck::pending(db)
            },
        };
        tracing::info!(profile = %profile.name, database = %db.name, "{}: {}", check.result.label(), check.detail);
        databases.push(check);
    }
    for source in &profile.databases {
        if contents.database(&source.name).is_none() {
            databases.push(DatabaseCheck {
                name: source.name.clone(),
                kind: source.type_name().to_string(),
                result: Outcome::Fail,
                bytes: 0,
                restore_seconds: 0.0,
                tables: 0,
                rows: None,
                chain_length: None,
                detail: format!(
                    "configured in the profile but not in snapshot {}",
                    contents.short()
                ),
            });
        }
    }
    let files = check_files(restic, profile, contents, &dir.path().join("files"));
    let mut result = Outcome::Pass;
    for r in databases.iter().map(|d| d.result).chain([files.result]) {
        result = match (result, r) {
            (Outcome::Fail, _) | (_, Outcome::Fail) => Outcome::Fail,
            (Outcome::Skipped, _) | (_, Outcome::Skipped) => Outcome::Skipped,
            _ => Outcome::Pass,
        };
    }
    let restore_seconds =
        databases.iter().map(|d| d.restore_seconds).sum::<f64>() + files.restore_seconds;
    if let Err(e) = dir.close() {
        tracing::warn!("could not remove the scratch directory: {e}");
    }
    Ok(Report {
        profile: profile.name.clone(),
        snapshot: SnapshotInfo {
            id: contents.snapshot.id.clone(),
            short_id: contents.short().to_string(),
            time: contents.snapshot.time.clone(),
            host: contents.snapshot.hostname.clone(),
            incomplete: contents.snapshot.is_incomplete(),
        },
        result,
        duration_seconds: secs(start.elapsed()),
        restore_seconds: (restore_seconds * 1000.0).round() / 1000.0,
        databases,
        files,
    })
}

impl DatabaseCheck {
    /// The check of `db` before anything is known: failed until shown otherwise.
    fn pending(db: &ManifestDatabase) -> DatabaseCheck {
        DatabaseCheck {
            name: db.name.clone(),
            kind: db.kind.clone(),
            result: Outcome::Fail,
            bytes: db.bytes,
            restore_seconds: 0.0,
            tables: 0,
            rows: None,
            chain_length: None,
            detail: String::new(),
        }
    }
}

fn check_sqlite(
    restic: &Restic,
    profile: &Profile,
    contents: &Contents,
    db: &ManifestDatabase,
    dir: &Path,
) -> DatabaseCheck {
    let mut check = DatabaseCheck::pending(db);
    check.chain_length = db.incremental.as_ref().map(|c| 1 + c.deltas.len());
    let dest = match super::inside(dir, &db.file) {
        Ok(dest) => dest,
        Err(e) => {
            check.detail = e.to_string();
            return check;
        }
    };
    // The check the profile asks of a restore, so the drill's time is the restore's.
    let how = profile
        .databases
        .iter()
        .find_map(|s| match &s.kind {
            SourceKind::Sqlite(s2) if s.name == db.name => Some(s2.restore_check),
            _ => None,
        })
        .unwrap_or(crate::config::RestoreCheck::Quick);
    match sqlite::extract_checked(
        restic,
        contents,
        db,
        &dest,
        how,
        "free space there, or give verify --scratch DIR on a filesystem with room",
    ) {
        Ok(x) => {
            check.bytes = x.bytes;
            check.restore_seconds = secs(x.duration);
            check.tables = x.tables.len();
            let chain = match x.chain_length {
                Some(n) => format!(
                    "; rebuilt from base + {}",
                    super::count((n - 1) as u64, "delta")
                ),
                None => String::new(),
            };
            match sqlite::row_counts(&dest) {
                // A restore of it would bring back nothing: a drill must not call that a pass.
                Ok(_) if x.tables.is_empty() => {
                    check.detail = format!(
                        "integrity_check ok, but the copy has no tables: the database was empty when it was backed up (most often a wrong path or a volume that was not mounted); there is nothing to recover from snapshot {}",
                        contents.short()
                    );
                }
                Ok(rows) => {
                    let total: i64 = rows.iter().map(|(_, n)| n).sum();
                    check.result = Outcome::Pass;
                    check.detail = format!(
                        "{}{chain}; {}, {}",
                        x.check,
                        super::count(x.tables.len() as u64, "table"),
                        super::count(total.max(0) as u64, "row")
                    );
                    check.rows = Some(
                        rows.into_iter()
                            .map(|(table, rows)| TableRows { table, rows })
                            .collect(),
                    );
                }
                Err(e) => check.detail = format!("{} but {e}", x.check),
            }
        }
        Err(e) => check.detail = e.to_string(),
    }
    let _ = std::fs::remove_file(&dest);
    check
}

fn check_mysql(
    restic: &Restic,
    profile: &Profile,
    contents: &Contents,
    db: &ManifestDatabase,
) -> DatabaseCheck {
    let mut check = DatabaseCheck::pending(db);
    let source = profile.databases.iter().find_map(|s| match &s.kind {
        SourceKind::Mysql(m) if s.name == db.name => Some(m),
        _ => None,
    });
    let conn = match source.map(mysql::Conn::new) {
        Some(Ok(conn)) => conn,
        Some(Err(e)) => {
            check.detail = e;
            return check;
        }
        None => {
            return stream_only(
                restic,
                contents,
                db,
                check,
                "not loaded: the profile no longer configures this database, so there is no server to load it into",
            );
        }
    };
    if let Err(e) = conn.ping() {
        if e.unreachable {
            let note = format!("not loaded: the server is not reachable ({})", e.message);
            return stream_only(restic, contents, db, check, &note);
        }
        check.detail = format!("cannot use the server: {}", e.message);
        return check;
    }
    let map = match scratch_names(&conn, db) {
        Ok(map) => map,
        Err(e) => {
            check.detail = e;
            return check;
        }
    };
    let scratch: Vec<String> = map.iter().map(|(_, t)| t.clone()).collect();
    let loaded = mysql::load(restic, contents, db, &conn, map);
    let mut dropped = Vec::new();
    for name in &scratch {
        if let Err(e) = conn.drop_database(name) {
            dropped.push(format!("could not drop scratch database {name}: {e}"));
        }
    }
    match loaded {
        Ok(l) => {
            check.result = Outcome::Pass;
            check.bytes = l.bytes;
            check.restore_seconds = secs(l.duration);
            check.tables = l.tables.len();
            check.detail = format!(
                "loaded into scratch database {} (dropped), {} as in the dump",
                scratch.join(", "),
                super::count(l.tables.len() as u64, "table")
            );
        }
        Err(e) => check.detail = e.to_string(),
    }
    if !dropped.is_empty() {
        check.detail = format!("{}; {}", check.detail, dropped.join("; "));
    }
    check
}

/// Scratch database names for each database of the dump, none of which exists yet.
fn scratch_names(
    conn: &mysql::Conn,
    db: &ManifestDatabase,
) -> Result<Vec<(String, String)>, String> {
    let mut map = Vec::new();
    let mut n = 0;
    for original in mysql::target_map(db, None)?.into_iter().map(|(o, _)| o) {
        loop {
            let name = format!("resticpilot_verify_{}_{n}", std::process::id());
            n += 1;
            if conn.contents(&name)?.is_none() {
                map.push((original, name));
                break;
            }
        }
    }
    Ok(map)
}

/// Without a server: at least read the whole dump out of the repository and check it as a
/// restore would (complete, nothing outside its database). The result stays `skipped` when it
/// passes: the load was not tested.
fn stream_only(
    restic: &Restic,
    contents: &Contents,
    db: &ManifestDatabase,
    mut check: DatabaseCheck,
    note: &str,
) -> DatabaseCheck {
    let start = Instant::now();
    let map = match mysql::target_map(db, None) {
        Ok(map) => map,
        Err(e) => {
            check.detail = e;
            return check;
        }
    };
    match mysql::check(restic, contents, db, &map, &[]) {
        Ok(scanner) => {
            check.result = Outcome::Skipped;
            check.bytes = scanner.bytes;
            check.restore_seconds = secs(start.elapsed());
            check.detail = format!(
                "dump read back whole and checked ({}, with its completion trailer); {note}",
                human_bytes(scanner.bytes)
            );
        }
        Err(e) => check.detail = format!("{e}; {note}"),
    }
    check
}

fn check_files(restic: &Restic, profile: &Profile, contents: &Contents, dir: &Path) -> FilesCheck {
    let mut check = FilesCheck {
        result: Outcome::Pass,
        files: 0,
        bytes: 0,
        restore_seconds: 0.0,
        paths: Vec::new(),
        detail: String::new(),
    };
    if contents.files.is_empty() && profile.paths.is_empty() {
        check.detail = "the profile has no paths".into();
        return check;
    }
    match files::to_target(restic, contents, dir, true) {
        Ok(r) => {
            check.files = r.files;
            check.bytes = r.bytes;
            check.restore_seconds = secs(r.duration);
        }
        Err(e) => {
            check.result = Outcome::Fail;
            check.detail = format!("restoring the files failed: {e}");
            return check;
        }
    }
    let mut missing = Vec::new();
    for path in &profile.paths {
        let rel = path.strip_prefix("/").unwrap_or(path);
        let present = dir.join(rel).symlink_metadata().is_ok();
        if !present {
            missing.push(path.display().to_string());
        }
        check.paths.push(PathCheck {
            path: path.display().to_string(),
            present,
        });
    }
    if missing.is_empty() {
        check.detail = format!(
            "{} restored and verified; all {} present",
            super::count(check.files, "file"),
            super::count(profile.paths.len() as u64, "configured path")
        );
    } else {
        check.result = Outcome::Fail;
        check.detail = format!("configured but not in the snapshot: {}", missing.join(", "));
    }
    let _ = std::fs::remove_dir_all(dir);
    check
}

/// The report as a table for people.
pub fn render(report: &Report) -> String {
    let mut out = String::new();
    let time = super::show_time(&report.snapshot.time);
    out.push_str(&format!(
        "restore drill of profile {}: snapshot {} ({time}, host {}){}\n",
        report.profile,
        report.snapshot.short_id,
        report.snapshot.host,
        if report.snapshot.incomplete {
            ", INCOMPLETE: its backup finished with warnings"
        } else {
            ""
        }
    ));
    out.push_str(&format!(
        "  {:<16} {:<7} {:<8} {:>10} {:>9}  {}\n",
        "item", "type", "result", "size", "restore", "detail"
    ));
    for d in &report.databases {
        out.push_str(&format!(
            "  {:<16} {:<7} {:<8} {:>10} {:>8.1}s  {}\n",
            d.name,
            d.kind,
            d.result.label(),
            human_bytes(d.bytes),
            d.restore_seconds,
            d.detail
        ));
    }
    let f = &report.files;
    out.push_str(&format!(
        "  {:<16} {:<7} {:<8} {:>10} {:>8.1}s  {}\n",
        "(files)",
        "-",
        f.result.label(),
        human_bytes(f.bytes),
        f.restore_seconds,
        f.detail
    ));
    let verdict = match report.result {
        Outcome::Pass => "PASS",
        Outcome::Fail => "FAIL",
        Outcome::Skipped => "INCOMPLETE (something could not be checked)",
    };
    out.push_str(&format!(
        "result: {verdict}; restore time {:.1}s (drill {:.1}s)\n",
        report.restore_seconds, report.duration_seconds
    ));
    out
}
