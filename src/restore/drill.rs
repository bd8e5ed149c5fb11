//! The restore drill (`verify`): restore a snapshot into scratch space and prove it usable.
//!
//! Every database of the snapshot is restored and checked by its engine's drill
//! (`source::Engine::drill`: SQLite extracts a scratch file and counts rows, MySQL loads a
//! scratch database and drops it).
//! The profile's files are restored into scratch space with restic's `--verify`, and every
//! configured path must be there. Each item reports its size, how long its restore took (the
//! recovery time to expect) and its result. Nothing live is touched.

use std::path::Path;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::{Contents, ManifestDatabase, files};
use crate::config::Profile;
use crate::dirs::Fix;
use crate::error::Error;
use crate::restic::Restic;
use crate::units::human_bytes;

/// A check's result; in JSON the values a run's result takes (`success`, `failed`), plus
/// `skipped`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Outcome {
    #[serde(rename = "success")]
    Pass,
    #[serde(rename = "failed")]
    Fail,
    #[serde(rename = "skipped")]
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
    /// `failed` when anything failed, else `skipped` when something could not be checked.
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

/// Seconds, to the millisecond, for the report.
pub fn secs(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0).round() / 1000.0
}

/// The drill's own space: a fresh directory (mode 0700) made inside `scratch`, removed when
/// dropped.
///
/// `scratch` under `state_dir` (the default) is resticpilot's own directory there. Any other
/// `scratch` is the operator's (`verify --scratch DIR`): created when missing, otherwise used
/// as it is (its mode is never changed; `/tmp` stays `/tmp`), but refused when another user
/// could replace what the drill creates in it.
///
/// Fails when the scratch directory cannot be created or is not safe to use.
pub fn space(scratch: &Path, state_dir: &Path) -> Result<tempfile::TempDir, Error> {
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
    tempfile::Builder::new()
        .prefix("verify-")
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .tempdir_in(scratch)
        .map_err(|e| {
            Error::io(
                format!("cannot create a scratch directory in {}", scratch.display()),
                e,
            )
        })
}

/// Runs the drill of `profile` on `contents` in `dir` (from [`space`]), removed afterwards.
/// Failures of the items are results in the report, not errors.
pub fn run(
    restic: &Restic,
    profile: &Profile,
    contents: &Contents,
    dir: tempfile::TempDir,
) -> Result<Report, Error> {
    let start = Instant::now();
    let mut databases = Vec::new();
    for db in &contents.manifest.databases {
        tracing::info!(profile = %profile.name, database = %db.name, "restoring {} into scratch space", db.name);
        let drill = crate::source::Drill {
            restic,
            contents,
            dir: dir.path(),
        };
        let check = match crate::source::engine(&db.kind) {
            Some(engine) => {
                let source = profile
                    .databases
                    .iter()
                    .find(|s| s.name == db.name && s.type_name() == engine.name());
                engine.drill(&drill, db, source.map(|s| s.source.as_ref()))
            }
            None => DatabaseCheck {
                result: Outcome::Skipped,
                detail: format!("this resticpilot cannot check {} dumps", db.kind),
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
    pub fn pending(db: &ManifestDatabase) -> DatabaseCheck {
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
        // As restic records it: `..` and `.` resolved in the text (`profiles/../demo/data`, a
        // path relative to the config file, is `demo/data` in the snapshot; joined as it is,
        // it would need a `profiles` directory in the restored tree).
        let clean = crate::dirs::lexical(path);
        let rel = clean.strip_prefix("/").unwrap_or(&clean);
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
