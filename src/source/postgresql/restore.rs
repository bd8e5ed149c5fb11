//! Restoring a PostgreSQL dump: in place, under another name (`--into`), into a directory
//! (`--target`), and the drill (`verify`). Each archive is read out of the snapshot into a
//! private file and read back whole by `pg_restore` before anything reaches the server; it is
//! then loaded into a new scratch database in one transaction, as an unprivileged account
//! (a temporary role when the configured one is privileged: `load_role`, because the
//! archive's SQL is untrusted), its tables are compared with
//! the archive's, and only then does the scratch database take the target's name (renames in
//! one transaction). A failed restore leaves the target as it was; a replaced target is kept
//! under another name, never dropped.

use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::client::{Conn, QueryError, database_exists, ident, literal, tool};
use super::dump::read_back;
use super::load_role::LoadRole;
use super::{GLOBALS_FILE, PgSource, archive_name};
use crate::error::Error;
use crate::restic::Restic;
use crate::restore::bound;
use crate::restore::drill::{DatabaseCheck, Outcome, TableRows, secs};
use crate::restore::{Contents, ManifestDatabase, RestoreError, count};
use crate::source::{Drill, Restore, Restored};
use crate::units::human_bytes;

/// The databases in dump `db`, from its manifest entry (checked by `check_manifest`).
fn databases(db: &ManifestDatabase) -> Vec<String> {
    db.databases.clone().unwrap_or_default()
}

/// Where each database of dump `db` goes: its own name, or `into` (one database only).
fn target_map(db: &ManifestDatabase, into: Option<&str>) -> Result<Vec<(String, String)>, String> {
    let list = databases(db);
    match into {
        None => Ok(list.into_iter().map(|d| (d.clone(), d)).collect()),
        Some(to) if list.len() == 1 => Ok(vec![(list[0].clone(), to.to_string())]),
        Some(_) => Err(format!(
            "the dump holds {} databases ({}): --into takes a dump of one",
            list.len(),
            list.join(", ")
        )),
    }
}

/// The archive of database `name` out of the snapshot into `dir`, read back whole. Returns
/// its path, size and tables.
fn fetch(
    restic: &Restic,
    contents: &Contents,
    db: &ManifestDatabase,
    name: &str,
    dir: &Path,
) -> Result<(PathBuf, u64, Vec<String>), Error> {
    let what = format!("database {}", db.name);
    let file = dir.join(archive_name(name));
    let path = format!("{}/{}", contents.dump_path(db), archive_name(name));
    // The manifest's size (of all the dump's archives) bounds what this one may write.
    if let Some(need) = bound::recorded(db.bytes) {
        bound::room(dir, need).map_err(|e| {
            RestoreError::failed(
                &what,
                format!(
                    "no space left in {} for the archive of {name}: {e}{}",
                    dir.display(),
                    crate::space::free_note(dir)
                ),
            )
        })?;
    }
    let sink = crate::process::create_private(&file)
        .map_err(|e| Error::io(format!("cannot create {}", file.display()), e))?;
    let sink = bound::dump(
        restic,
        contents,
        &path,
        db.bytes,
        std::io::BufWriter::new(sink),
    )
    .map_err(|e| match e {
        bound::Stop::Larger(reason) => Error::from(RestoreError::failed(&what, reason)),
        bound::Stop::Restic(e) => e.into(),
    })?;
    let sink = sink
        .into_inner()
        .map_err(|e| Error::io(format!("cannot write {}", file.display()), e.into_error()))?;
    sink.sync_all()
        .map_err(|e| Error::io(format!("cannot write {}", file.display()), e))?;
    let pg_restore = tool("pg_restore").map_err(|e| RestoreError::failed(&what, e))?;
    let tables = read_back(&pg_restore, &file).map_err(|e| {
        RestoreError::failed(
            &what,
            format!("the archive of {name} in the snapshot is damaged, nothing was restored: {e}"),
        )
    })?;
    let bytes = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
    Ok((file, bytes, tables))
}

/// A private directory for fetched archives under `parent` (created when missing).
fn work_dir(parent: &Path) -> Result<tempfile::TempDir, Error> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(parent)
        .map_err(|e| Error::io(format!("cannot create {}", parent.display()), e))?;
    tempfile::Builder::new()
        .prefix("postgresql-")
        .tempdir_in(parent)
        .map_err(|e| {
            Error::io(
                format!("cannot create a directory in {}", parent.display()),
                e,
            )
        })
}

/// The tables of database `db` on the server, as `schema.table`, sorted.
fn server_tables(conn: &Conn, db: &str) -> Result<Vec<String>, QueryError> {
    conn.query(
        db,
        "SELECT schemaname || '.' || tablename FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1",
    )
}

/// Whether database `name` exists, and how many relations (tables, views, sequences...) of
/// its own it holds.
fn state(conn: &Conn, name: &str) -> Result<Option<u64>, QueryError> {
    if !database_exists(conn, name)? {
        return Ok(None);
    }
    let rows = conn.query(
        name,
        "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%' AND c.relkind IN ('r', 'v', 'm', 'S', 'f', 'p')",
    )?;
    Ok(Some(
        rows.first()
            .and_then(|r| r.trim().parse().ok())
            .unwrap_or(0),
    ))
}

/// A database name `base` + `tag` that does not exist yet, at most 63 bytes.
fn unused_name(conn: &Conn, base: &str, tag: &str) -> Result<String, QueryError> {
    first_free(conn, &format!("{base}_{tag}N"), |n| {
        let suffix = format!("_{tag}{n}");
        let mut keep = base.len().min(63 - suffix.len());
        while !base.is_char_boundary(keep) {
            keep -= 1;
        }
        format!("{}{suffix}", &base[..keep])
    })
}

/// The first of `name(0)`, `name(1)`, ... (up to 100) that names no database on the server;
/// `like` describes them for the error.
fn first_free(conn: &Conn, like: &str, name: impl Fn(u32) -> String) -> Result<String, QueryError> {
    for n in 0..100 {
        let candidate = name(n);
        if !database_exists(conn, &candidate)? {
            return Ok(candidate);
        }
    }
    Err(QueryError {
        message: format!("no free database name like {like}"),
        unreachable: false,
    })
}

/// Loads `archive` into the new database `scratch` in one transaction and compares its
/// tables with the archive's (and counts their rows, with `count`). Drops `scratch` when
/// anything fails.
///
/// The load runs as an unprivileged account (see [`LoadRole`]): a temporary role when the
/// configured account is a superuser or has CREATEROLE, owning only `scratch`; objects are
/// loaded without their owners (`--no-owner`), then handed to the configured account, and
/// (when it is a superuser) tables and views whose archive owner is an unprivileged role of
/// the server go back to that role.
fn load(
    conn: &Conn,
    archive: &Path,
    tables: &[String],
    scratch: &str,
    timeout: Duration,
    count: bool,
) -> Result<(Duration, Vec<(String, i64)>), String> {
    let start = Instant::now();
    let mut role = LoadRole::choose(conn)?;
    let owner = match &role.temp {
        Some(t) => format!(" OWNER {}", ident(&t.name)),
        None => String::new(),
    };
    if let Err(e) = conn.query(
        "postgres",
        &format!(
            "CREATE DATABASE {} TEMPLATE template0{owner}",
            ident(scratch)
        ),
    ) {
        let _ = role.drop_role(conn);
        return Err(format!("cannot create the scratch database {scratch}: {e}"));
    }
    let result = (|| {
        role.check_login(scratch)?;
        let pg_restore = tool("pg_restore")?;
        let list = toc(&pg_restore, archive)?;
        let mut cmd = role
            .conn(conn)
            .command(&pg_restore)
            .arg(format!(
                "--dbname={}",
                super::client::conninfo_dbname(scratch)
            ))
            .args(["--single-transaction", "--exit-on-error", "--no-owner"]);
        let mut use_list = None;
        if role.temp.is_some() {
            let (file, names) = prepare_extensions(conn, &list, scratch, archive)?;
            if !names.is_empty() {
                tracing::info!(
                    "created extensions {} in {scratch} from the server's own scripts",
                    names.join(", ")
                );
            }
            if let Some(file) = file {
                cmd = cmd.arg(format!("--use-list={}", file.display()));
                use_list = Some(file);
            }
        }
        let out = cmd
            .arg(archive)
            .time_limit(timeout, "restore_timeout")
            .output();
        if let Some(file) = &use_list {
            let _ = std::fs::remove_file(file);
        }
        let out = out.map_err(|e| conn.redact(&e.to_string()))?;
        if !out.status.success() {
            return Err(format!(
                "pg_restore {}: {}",
                crate::process::describe_status(out.status),
                conn.redact(out.stderr.trim())
            ));
        }
        // Queried as the account that loaded: the loaded SQL can define functions and
        // operators that a query in the scratch database might call.
        let loader = role.conn(conn);
        let loaded = server_tables(loader, scratch).map_err(|e| e.message)?;
        if loaded != tables {
            return Err(format!(
                "the loaded tables ({}) differ from the archive's ({})",
                loaded.join(", "),
                tables.join(", ")
            ));
        }
        let rows = if count {
            count_rows(loader, scratch, tables).map_err(|e| e.message)?
        } else {
            Vec::new()
        };
        // Only a superuser may give objects to roles it is not a member of.
        let relations = if role.temp.is_some() && role.superuser {
            relations(loader, scratch).map_err(|e| e.message)?
        } else {
            Vec::new()
        };
        role.hand_over(conn, scratch)?;
        if !relations.is_empty() {
            give_back_owners(conn, scratch, &list, &relations)?;
        }
        Ok((start.elapsed(), rows))
    })();
    if result.is_err() {
        let _ = drop_database(conn, scratch);
    }
    if let Err(e) = role.drop_role(conn) {
        let name = role
            .temp
            .as_ref()
            .map(|t| t.name.clone())
            .unwrap_or_default();
        let e = format!("cannot drop the temporary load role {name}: {e}");
        return Err(match result {
            Err(first) => format!("{first}; {e}"),
            Ok(_) => e,
        });
    }
    result
}

/// The table of contents of `archive` (`pg_restore --list`).
fn toc(pg_restore: &Path, archive: &Path) -> Result<String, String> {
    let out = crate::process::Cmd::new(pg_restore)
        .arg("--list")
        .arg(archive)
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!(
            "pg_restore --list {}: {}",
            crate::process::describe_status(out.status),
            out.stderr.trim()
        ));
    }
    Ok(out.stdout_string())
}

/// The name of each extension in the table of contents `list` (`EXTENSION - name`).
fn toc_extensions(list: &str) -> Vec<String> {
    list.lines()
        .filter(|l| !l.starts_with(';'))
        .filter_map(|l| l.split_once(" EXTENSION - "))
        .filter(|(head, _)| head.split_whitespace().count() == 3)
        .map(|(_, rest)| rest.trim().split(' ').next().unwrap_or("").to_string())
        .filter(|n| !n.is_empty())
        .collect()
}

/// Creates, as the configured account, the extensions the archive lists that the server
/// offers (by name only, so each comes from the server's own script), and writes a list
/// for `pg_restore --use-list` without the comments on extensions (only an extension's
/// owner may set them) when there are any. Returns the list file and the extensions made.
fn prepare_extensions(
    conn: &Conn,
    list: &str,
    scratch: &str,
    archive: &Path,
) -> Result<(Option<PathBuf>, Vec<String>), String> {
    let mut made = Vec::new();
    for name in toc_extensions(list) {
        let available = conn
            .query(
                "postgres",
                &format!(
                    "SELECT 1 FROM pg_available_extensions WHERE name = {}",
                    literal(&name)
                ),
            )
            .map_err(|e| e.message)?;
        if available.is_empty() {
            // The load fails on it, naming it.
            continue;
        }
        conn.query(
            scratch,
            &format!("CREATE EXTENSION IF NOT EXISTS {}", ident(&name)),
        )
        .map_err(|e| format!("cannot create extension {name} in {scratch}: {e}"))?;
        made.push(name);
    }
    let comments = |l: &&str| l.contains(" COMMENT - EXTENSION ");
    if !list.lines().any(|l| comments(&l)) {
        return Ok((None, made));
    }
    let kept: String = list
        .lines()
        .filter(|l| !comments(l))
        .map(|l| format!("{l}\n"))
        .collect();
    let file = archive.with_extension("list");
    let mut f = crate::process::create_private(&file)
        .map_err(|e| format!("cannot create {}: {e}", file.display()))?;
    std::io::Write::write_all(&mut f, kept.as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", file.display()))?;
    Ok((Some(file), made))
}

/// The tables, views and foreign tables of `db`: (TOC kind, schema, name).
fn relations(conn: &Conn, db: &str) -> Result<Vec<(String, String, String)>, QueryError> {
    let rows = conn.query(
        db,
        "SELECT CASE c.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW' WHEN 'f' THEN 'FOREIGN TABLE' ELSE 'TABLE' END, n.nspname, c.relname FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace WHERE c.relkind OPERATOR(pg_catalog.=) ANY (ARRAY['r', 'p', 'v', 'm', 'f']::pg_catalog.\"char\"[]) AND n.nspname OPERATOR(pg_catalog.<>) ALL (ARRAY['pg_catalog', 'information_schema']::pg_catalog.name[])",
    )?;
    Ok(rows
        .iter()
        .filter_map(|r| {
            let mut cols = r.split('\t');
            Some((
                cols.next()?.to_string(),
                cols.next()?.to_string(),
                cols.next()?.to_string(),
            ))
        })
        .collect())
}

/// Gives each relation of `db` whose owner in the table of contents `list` is an
/// unprivileged role of the server (no attribute, member of no role, not predefined) back
/// to that role. Any other owner named by the archive is not trusted with its objects: they
/// stay with the configured account.
fn give_back_owners(
    conn: &Conn,
    db: &str,
    list: &str,
    relations: &[(String, String, String)],
) -> Result<(), String> {
    let safe = conn
        .query(
            "postgres",
            &format!(
                "SELECT rolname FROM pg_roles r WHERE NOT rolsuper AND NOT rolcreaterole AND NOT rolcreatedb AND NOT rolreplication AND NOT rolbypassrls AND NOT starts_with(rolname, 'pg_') AND NOT starts_with(rolname, {}) AND NOT EXISTS (SELECT 1 FROM pg_auth_members m WHERE m.member = r.oid)",
                literal(super::load_role::PREFIX)
            ),
        )
        .map_err(|e| e.message)?;
    let mut sql = Vec::new();
    for (kind, schema, name) in relations {
        let needle = format!(" {kind} {schema} {name} ");
        let owner = list
            .lines()
            .filter(|l| !l.starts_with(';'))
            .filter_map(|l| l.split_once(&needle))
            .filter(|(head, _)| head.split_whitespace().count() == 3)
            .map(|(_, owner)| owner.trim())
            .find(|owner| safe.iter().any(|s| s == owner));
        if let Some(owner) = owner {
            sql.push(format!(
                "ALTER {kind} {}.{} OWNER TO {}",
                ident(schema),
                ident(name),
                ident(owner)
            ));
        }
    }
    if sql.is_empty() {
        return Ok(());
    }
    conn.query(db, &sql.join("; "))
        .map(|_| ())
        .map_err(|e| format!("cannot give the loaded tables back to their owners: {e}"))
}

fn drop_database(conn: &Conn, name: &str) -> Result<(), QueryError> {
    conn.cleanup_query(
        "postgres",
        &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", ident(name)),
    )
    .map(|_| ())
}

/// `restore` in place or `--into`.
pub fn restore(
    src: &PgSource,
    run: &Restore<'_>,
    db: &ManifestDatabase,
) -> Result<Restored, Error> {
    let what = format!("database {}", db.name);
    let map = target_map(db, run.into).map_err(|e| RestoreError::refused(&what, e))?;
    let conn = Conn::new(src).map_err(|e| RestoreError::failed(&what, e))?;
    conn.server_version()
        .map_err(|e| RestoreError::failed(&what, e.message))?;
    // Refuse before fetching anything when a target is not empty.
    let mut states = Vec::new();
    for (_, to) in &map {
        let state = state(&conn, to).map_err(|e| RestoreError::failed(&what, e.message))?;
        if let Some(n) = state
            && n > 0
            && !run.force
        {
            return Err(RestoreError::refused(
                &what,
                format!(
                    "database {to} on {} is not empty ({n} tables, views and sequences): restore with --force to replace it (its content is kept as another database), or --into another name",
                    src.server()
                ),
            )
            .into());
        }
        states.push(state);
    }
    let work = work_dir(run.keep_dir.parent().unwrap_or(&run.keep_dir))?;
    let mut out = Restored::default();
    for ((from, to), state) in map.iter().zip(states) {
        let (archive, bytes, tables) = fetch(run.restic, run.contents, db, from, work.path())?;
        let scratch = unused_name(&conn, to, crate::source::RESTORE_SCRATCH_TAG)
            .map_err(|e| RestoreError::failed(&what, e.message))?;
        let (took, _) = load(
            &conn,
            &archive,
            &tables,
            &scratch,
            src.restore_timeout,
            false,
        )
        .map_err(|e| {
            RestoreError::failed(&what, format!("{e}; database {to} was left as it was"))
        })?;
        let _ = std::fs::remove_file(&archive);
        let kept = swap(&conn, to, &scratch, state, run.force).map_err(|e| {
            let _ = drop_database(&conn, &scratch);
            RestoreError::failed(&what, format!("{e}; database {to} was left as it was"))
        })?;
        out.lines.push(format!(
            "database {} (postgresql): {} loaded into {to}{} in {:.1}s; {}, as in the dump",
            db.name,
            human_bytes(bytes),
            if from == to {
                String::new()
            } else {
                format!(" (from {from})")
            },
            took.as_secs_f64(),
            count(tables.len() as u64, "table")
        ));
        if let Some(kept) = kept {
            out.lines.push(format!(
                "  previous content kept as database {kept} (drop it when satisfied)"
            ));
        }
    }
    {
        out.lines.push(format!(
            "  roles are not restored: when the dump holds them, `restore --target DIR` writes {GLOBALS_FILE} to load with psql"
        ));
    }
    Ok(out)
}

/// Gives the loaded `scratch` the name `to`. An existing `to` is renamed away in the same
/// transaction (kept, and returned, unless it held nothing); with `force` its sessions are
/// ended first. Fails when the renames fail (sessions still connected, rights).
fn swap(
    conn: &Conn,
    to: &str,
    scratch: &str,
    state: Option<u64>,
    force: bool,
) -> Result<Option<String>, String> {
    let Some(relations) = state else {
        conn.query(
            "postgres",
            &format!("ALTER DATABASE {} RENAME TO {}", ident(scratch), ident(to)),
        )
        .map_err(|e| format!("cannot rename {scratch} to {to}: {e}"))?;
        return Ok(None);
    };
    let old = unused_name(conn, to, "rp_old").map_err(|e| e.message)?;
    if force {
        conn.query(
            "postgres",
            &format!(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = {} AND pid <> pg_backend_pid()",
                literal(to)
            ),
        )
        .map_err(|e| e.message)?;
    }
    conn.query(
        "postgres",
        &format!(
            "BEGIN; ALTER DATABASE {} RENAME TO {}; ALTER DATABASE {} RENAME TO {}; COMMIT",
            ident(to),
            ident(&old),
            ident(scratch),
            ident(to)
        ),
    )
    .map_err(|e| format!("cannot put the restored database in place of {to}: {e}"))?;
    if relations == 0 {
        let _ = drop_database(conn, &old);
        return Ok(None);
    }
    Ok(Some(old))
}

/// `restore --dry-run`.
pub fn plan(src: &PgSource, run: &Restore<'_>, db: &ManifestDatabase, from: &str) -> Vec<String> {
    let map = match target_map(db, run.into) {
        Ok(map) => map,
        Err(e) => {
            return vec![format!(
                "database  {} (postgresql): cannot restore: {e}",
                db.name
            )];
        }
    };
    let conn = Conn::new(src);
    map.into_iter()
        .map(|(from_db, to)| {
            let state = match conn.as_ref().map_err(Clone::clone).and_then(|c| state(c, &to).map_err(|e| e.message)) {
                Ok(None) => "does not exist: created".to_string(),
                Ok(Some(0)) => "exists, empty: replaced".to_string(),
                Ok(Some(n)) => format!("exists with {n} tables, views and sequences: needs --force, and is kept under another name"),
                Err(e) => format!("cannot inspect it now: {e}"),
            };
            format!(
                "database  {} (postgresql): {from} -> {} database {to}{} ({state})",
                db.name,
                src.server(),
                if from_db == to { String::new() } else { format!(" (renamed from {from_db})") }
            )
        })
        .collect()
}

/// `restore --target DIR`: the archives (and the globals, when the dump holds them) into the
/// new directory `dest`, each read back whole.
pub fn to_dir(
    restic: &Restic,
    contents: &Contents,
    db: &ManifestDatabase,
    dest: &Path,
) -> Result<String, Error> {
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(dest)
        .map_err(|e| Error::io(format!("cannot create {}", dest.display()), e))?;
    let result = (|| {
        for name in databases(db) {
            fetch(restic, contents, db, &name, dest)?;
        }
        // The globals are there only when the source dumped them.
        let globals = dest.join(GLOBALS_FILE);
        let path = format!("{}/{GLOBALS_FILE}", contents.dump_path(db));
        let mut sink = Vec::new();
        if restic.dump(contents.id(), &path, &mut sink).is_ok() {
            let mut file = crate::process::create_private(&globals)
                .map_err(|e| Error::io(format!("cannot create {}", globals.display()), e))?;
            std::io::Write::write_all(&mut file, &sink)
                .map_err(|e| Error::io(format!("cannot write {}", globals.display()), e))?;
        }
        Ok::<_, Error>(())
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_dir_all(dest);
        return Err(e);
    }
    Ok("each archive read back whole by pg_restore".to_string())
}

/// The drill: each archive loaded into a scratch database, its tables compared with the
/// archive's and their rows counted, then dropped. Without a server (unreachable, or the
/// database no longer configured) the archives are read back whole and the check is
/// `skipped`.
pub fn drill(run: &Drill<'_>, db: &ManifestDatabase, source: Option<&PgSource>) -> DatabaseCheck {
    let mut check = DatabaseCheck::pending(db);
    let start = Instant::now();
    let mut rows = Vec::new();
    let mut tables = 0;
    let mut bytes = 0;
    let conn = match source.map(Conn::new) {
        Some(Ok(conn)) => Some(conn),
        Some(Err(e)) => {
            check.detail = e;
            return check;
        }
        None => None,
    };
    let skip = match &conn {
        None => Some("not loaded: the profile no longer configures this database, so there is no server to load it into".to_string()),
        Some(c) => match c.server_version() {
            Ok(_) => None,
            Err(e) if e.unreachable => Some(format!("not loaded: {}", e.message)),
            Err(e) => {
                check.detail = format!("cannot use the server: {}", e.message);
                return check;
            }
        },
    };
    let mut scratch_names = Vec::new();
    for name in databases(db) {
        let (archive, size, toc) = match fetch(run.restic, run.contents, db, &name, run.dir) {
            Ok(x) => x,
            Err(e) => {
                check.detail = e.to_string();
                return check;
            }
        };
        bytes += size;
        tables += toc.len();
        if let (None, Some(conn)) = (&skip, &conn) {
            // The name `databases: all` knows to leave out (`source::is_scratch_database`).
            let scratch = match first_free(
                conn,
                "resticpilot_verify_PID_N",
                crate::source::verify_scratch_name,
            ) {
                Ok(s) => s,
                Err(e) => {
                    check.detail = e.message;
                    return check;
                }
            };
            let loaded = load(
                conn,
                &archive,
                &toc,
                &scratch,
                conn.source.restore_timeout,
                true,
            )
            .map(|(_, counted)| counted);
            let _ = drop_database(conn, &scratch);
            match loaded {
                Ok(counted) => rows.extend(counted.into_iter().map(|(t, n)| TableRows {
                    table: format!("{name}.{t}"),
                    rows: n,
                })),
                Err(e) => {
                    check.detail = format!("database {name}: {e}");
                    return check;
                }
            }
            scratch_names.push(scratch);
        }
        let _ = std::fs::remove_file(&archive);
    }
    check.bytes = bytes;
    check.tables = tables;
    check.restore_seconds = secs(start.elapsed());
    match skip {
        Some(note) => {
            check.result = Outcome::Skipped;
            check.detail = format!("archives read back whole ({}); {note}", human_bytes(bytes));
        }
        None => {
            check.result = Outcome::Pass;
            check.detail = format!(
                "loaded into scratch database {} (dropped), {} as in the dump",
                scratch_names.join(", "),
                count(tables as u64, "table")
            );
            check.rows = Some(rows);
        }
    }
    check
}

/// Rows of each table of `db`.
fn count_rows(conn: &Conn, db: &str, tables: &[String]) -> Result<Vec<(String, i64)>, QueryError> {
    if tables.is_empty() {
        return Ok(Vec::new());
    }
    let parts: Vec<String> = tables
        .iter()
        .map(|t| {
            let (schema, table) = t.split_once('.').unwrap_or(("public", t));
            format!(
                "SELECT {}, count(*) FROM {}.{}",
                literal(t),
                ident(schema),
                ident(table)
            )
        })
        .collect();
    let rows = conn.query(db, &parts.join(" UNION ALL "))?;
    Ok(rows
        .iter()
        .filter_map(|r| r.split_once('\t'))
        .map(|(t, n)| (t.to_string(), n.trim().parse().unwrap_or(-1)))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::toc_extensions;

    #[test]
    fn postgresql_extensions_are_read_from_the_table_of_contents_by_name() {
        let list = ";\n; Archive created at 2026-11-30\n;     EXTENSION - fake\n2; 3079 16385 EXTENSION - bloom \n3; 0 0 COMMENT - EXTENSION bloom \n215; 1259 16390 TABLE public t rp\n";
        assert_eq!(toc_extensions(list), vec!["bloom".to_string()]);
    }
}
