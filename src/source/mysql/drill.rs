//! The drill (`verify`) of a MySQL dump.

use std::time::Instant;

use super::{MysqlSource, restore};
use crate::restic::Restic;
use crate::restore::drill::{DatabaseCheck, Outcome, secs};
use crate::restore::{Contents, ManifestDatabase};
use crate::units::human_bytes;

/// The drill of a MySQL dump: loaded into scratch databases on the source's server, checked,
/// dropped; without a server (unreachable, or no longer configured), read back whole and
/// checked as a restore would, and reported `skipped`.
pub fn check(
    restic: &Restic,
    contents: &Contents,
    db: &ManifestDatabase,
    source: Option<&MysqlSource>,
) -> DatabaseCheck {
    let mut check = DatabaseCheck::pending(db);
    let conn = match source.map(restore::Conn::new) {
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
    let loaded = restore::load(restic, contents, db, &conn, map);
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
                crate::restore::count(l.tables.len() as u64, "table")
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
    conn: &restore::Conn,
    db: &ManifestDatabase,
) -> Result<Vec<(String, String)>, String> {
    let mut map = Vec::new();
    let mut n = 0;
    for original in restore::target_map(db, None)?.into_iter().map(|(o, _)| o) {
        loop {
            let name = crate::source::verify_scratch_name(n);
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
    let map = match restore::target_map(db, None) {
        Ok(map) => map,
        Err(e) => {
            check.detail = e;
            return check;
        }
    };
    match restore::check(restic, contents, db, &map, &[]) {
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
