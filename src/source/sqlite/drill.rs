//! The drill (`verify`) of a SQLite copy.

use std::path::Path;

use super::{RestoreCheck, restore};
use crate::restic::Restic;
use crate::restore::drill::{DatabaseCheck, Outcome, TableRows, secs};
use crate::restore::{Contents, ManifestDatabase};

/// The drill of a SQLite copy: extracted into `dir` with the check a restore would make
/// (`how`), row counts read, removed.
pub fn check(
    restic: &Restic,
    contents: &Contents,
    db: &ManifestDatabase,
    dir: &Path,
    how: RestoreCheck,
) -> DatabaseCheck {
    let mut check = DatabaseCheck::pending(db);
    check.chain_length = db.incremental.as_ref().map(|c| 1 + c.deltas.len());
    let dest = match crate::restore::inside(dir, &db.file) {
        Ok(dest) => dest,
        Err(e) => {
            check.detail = e.to_string();
            return check;
        }
    };
    match restore::extract_checked(
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
                    crate::restore::count((n - 1) as u64, "delta")
                ),
                None => String::new(),
            };
            match restore::row_counts(&dest) {
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
                        crate::restore::count(x.tables.len() as u64, "table"),
                        crate::restore::count(total.max(0) as u64, "row")
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
