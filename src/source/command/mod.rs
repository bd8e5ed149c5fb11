//! Custom-command sources (`type: command`), for engines that are not built in (Redis,
//! MongoDB, an application's own export): `dump` is a shell command whose stdout is streamed
//! to the staged file; a non-zero exit, a signal or an empty output fails the run before
//! restic, with the stderr tail in the error. `verify`, when set, checks the file (its path is
//! `$1` and `RESTICPILOT_DUMP_FILE`). `restore` reads the dump on its stdin.

use std::any::Any;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Done, Drill, Engine, Extra, Restore, Restored, Source, SourceAt};
use crate::config::Resolver;
use crate::error::{Error, RestoreError};
use crate::process::{Cmd, ProcessError};
use crate::restic::Restic;
use crate::restore::bound;
use crate::restore::drill::{DatabaseCheck, Outcome, secs};
use crate::restore::{Contents, ManifestDatabase};
use crate::units::human_bytes;

/// Default `dump_timeout` and `restore_timeout`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(12 * 3600);

/// The engine of `type: command`.
pub struct Command;

/// Registered in [`super::REGISTRY`].
pub static ENGINE: Command = Command;

/// A resolved `type: command` source.
#[derive(Debug, Clone)]
pub struct CommandSource {
    pub dump: String,
    pub restore: String,
    pub extension: String,
    pub verify: Option<String>,
    pub dump_timeout: Duration,
    pub restore_timeout: Duration,
}

impl Engine for Command {
    fn names(&self) -> &'static [&'static str] {
        &["command"]
    }

    /// Every source sets its own (`extension`); this one only sizes the name check.
    fn extension(&self) -> &'static str {
        "dump"
    }

    fn keys(&self) -> &'static [&'static str] {
        &[
            "dump",
            "restore",
            "extension",
            "verify",
            "dump_timeout",
            "restore_timeout",
        ]
    }

    fn schema(&self) -> &'static str {
        include_str!("schema.json")
    }

    fn resolve(&self, r: &mut Resolver, at: &SourceAt<'_>) -> Option<Arc<dyn Source>> {
        let (profile, name, d) = (at.profile, at.name, at.raw);
        let key = |k: &str| format!("profiles.{profile}.databases.{name}.{k}");
        let mut required = |value: &Option<crate::config::raw::S>, k: &str, what: &str| match value
        {
            Some(s) => r.nonempty(s, &key(k)),
            None => {
                r.error(
                    at.at,
                    format!("database {name}: type command needs `{k}`: {what}"),
                );
                None
            }
        };
        let dump = required(&d.dump, "dump", "a shell command whose stdout is the dump");
        let restore = required(
            &d.restore,
            "restore",
            "a shell command that reads the dump on its stdin",
        );
        let extension = required(
            &d.extension,
            "extension",
            "the dump file's extension, such as rdb or json",
        );
        if let (Some(ext), Some(s)) = (&extension, &d.extension)
            && (ext.len() > 16 || !ext.chars().all(|c| c.is_ascii_alphanumeric()))
        {
            r.error(
                &s.referenced,
                format!(
                    "database {name}: extension {ext:?} may use only letters and digits, at most 16"
                ),
            );
            return None;
        }
        let verify = d
            .verify
            .as_ref()
            .and_then(|s| r.nonempty(s, &key("verify")));
        let dump_timeout = match &d.dump_timeout {
            None => DEFAULT_TIMEOUT,
            s => r.timeout(s.as_ref(), &key("dump_timeout"))?,
        };
        let restore_timeout = match &d.restore_timeout {
            None => DEFAULT_TIMEOUT,
            s => r.timeout(s.as_ref(), &key("restore_timeout"))?,
        };
        Some(Arc::new(CommandSource {
            dump: dump?,
            restore: restore?,
            extension: extension?,
            verify,
            dump_timeout,
            restore_timeout,
        }))
    }

    fn drill(
        &self,
        run: &Drill<'_>,
        db: &ManifestDatabase,
        source: Option<&dyn Source>,
    ) -> DatabaseCheck {
        let mut check = DatabaseCheck::pending(db);
        let source = source.and_then(|s| s.as_any().downcast_ref::<CommandSource>());
        let dest = match crate::restore::inside(run.dir, &db.file) {
            Ok(dest) => dest,
            Err(e) => {
                check.detail = e.to_string();
                return check;
            }
        };
        let start = Instant::now();
        let result = extract(run.restic, run.contents, db, &dest).and_then(|bytes| match source {
            Some(s) => s.check_file(&dest).map(|how| (bytes, how)),
            None => Ok((bytes, None)),
        });
        let _ = std::fs::remove_file(&dest);
        match result {
            Ok((bytes, how)) => {
                check.bytes = bytes;
                check.restore_seconds = secs(start.elapsed());
                match how {
                    Some(how) => {
                        check.result = Outcome::Pass;
                        check.detail = format!("read back whole ({}), {how}", human_bytes(bytes));
                    }
                    None => {
                        check.result = Outcome::Skipped;
                        check.detail = format!(
                            "read back whole ({}); not checked: the source has no `verify` command",
                            human_bytes(bytes)
                        );
                    }
                }
            }
            Err(e) => check.detail = e,
        }
        check
    }
}

/// `sh -c COMMAND`, with `args` as `$1...`.
fn shell(command: &str, args: &[&Path]) -> Cmd {
    Cmd::new("/bin/sh")
        .arg("-c")
        .arg(command)
        .arg("sh")
        .args(args.iter().map(|p| p.as_os_str()))
}

/// Writes dump `db` of the snapshot to `dest` (a new private file); its size.
fn extract(
    restic: &Restic,
    contents: &Contents,
    db: &ManifestDatabase,
    dest: &Path,
) -> Result<u64, String> {
    // The manifest's size bounds what is written, and must be what was read.
    let limit = bound::recorded(db.bytes);
    if let Some(need) = limit {
        let dir = dest.parent().unwrap_or(Path::new("/"));
        bound::room(dir, need).map_err(|e| {
            format!(
                "no space left in {}: {e}{}",
                dir.display(),
                crate::space::free_note(dir)
            )
        })?;
    }
    let file = crate::process::create_private(dest)
        .map_err(|e| format!("cannot create {}: {e}", dest.display()))?;
    let sink = bound::dump(
        restic,
        contents,
        &contents.dump_path(db),
        db.bytes,
        std::io::BufWriter::new(file),
    )
    .map_err(|e| match e {
        bound::Stop::Larger(reason) => reason,
        bound::Stop::Restic(e) => e.to_string(),
    })?;
    let file = sink
        .into_inner()
        .map_err(|e| format!("cannot write {}: {}", dest.display(), e.error()))?;
    file.sync_all()
        .map_err(|e| format!("cannot write {}: {e}", dest.display()))?;
    let bytes = std::fs::metadata(dest).map(|m| m.len()).unwrap_or(0);
    if bytes == 0 {
        return Err("the dump in the snapshot is empty".into());
    }
    if let Some(limit) = limit.filter(|l| *l != bytes) {
        return Err(format!(
            "the dump in snapshot {} has {bytes} bytes, its manifest records {limit}: it is not the dump that was backed up",
            contents.short()
        ));
    }
    Ok(bytes)
}

impl CommandSource {
    /// Runs `verify` on `file`: `Ok(Some(how))` when it passed, `Ok(None)` without one.
    fn check_file(&self, file: &Path) -> Result<Option<String>, String> {
        let Some(verify) = &self.verify else {
            return Ok(None);
        };
        shell(verify, &[file])
            .env("RESTICPILOT_DUMP_FILE", file)
            .time_limit(self.dump_timeout, "dump_timeout")
            .output()
            .and_then(|o| o.ensure_success("the verify command"))
            .map_err(|e| format!("the verify command failed: {}", failure(e)))?;
        Ok(Some("the verify command passed".into()))
    }
}

/// A child's failure, its stderr tail included.
fn failure(e: ProcessError) -> String {
    e.to_string()
}

impl Source for CommandSource {
    fn engine(&self) -> &'static dyn Engine {
        &ENGINE
    }

    fn extension(&self) -> String {
        self.extension.clone()
    }

    fn describe(&self) -> String {
        format!("command `{}` (.{})", self.dump, self.extension)
    }

    fn dump_plan(&self) -> String {
        match &self.verify {
            Some(v) => format!("sh -c {:?}, then sh -c {v:?} on the file", self.dump),
            None => format!("sh -c {:?}", self.dump),
        }
    }

    fn location_noun(&self) -> &'static str {
        "command"
    }

    fn lists_tables(&self) -> bool {
        false
    }

    fn dump(&self, out: &Path) -> Result<(Done, Extra), String> {
        let output = shell(&self.dump, &[])
            .time_limit(self.dump_timeout, "dump_timeout")
            .output_to_file(out)
            .and_then(|o| o.ensure_success("the dump command"))
            .map_err(|e| format!("the dump command failed: {}", failure(e)))?;
        let bytes = std::fs::metadata(out)
            .map_err(|e| format!("cannot read {}: {e}", out.display()))?
            .len();
        if bytes == 0 {
            return Err(format!(
                "the dump command wrote nothing on its stdout{}",
                if output.stderr.trim().is_empty() {
                    String::new()
                } else {
                    format!(": {}", output.stderr.trim())
                }
            ));
        }
        self.check_file(out)?;
        Ok((
            Done {
                source: self.dump.clone(),
                method: "command".into(),
                tables: Vec::new(),
                databases: Vec::new(),
            },
            Extra::default(),
        ))
    }

    fn space_needed(&self) -> String {
        "the dump command's output is written whole before restic runs".into()
    }

    fn named_paths(&self) -> Vec<(PathBuf, &'static str)> {
        Vec::new()
    }

    fn restore(&self, run: &Restore<'_>, db: &ManifestDatabase) -> Result<Restored, Error> {
        let what = format!("database {}", db.name);
        let scratch = tempfile::Builder::new()
            .prefix("resticpilot-restore-")
            .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .tempdir()
            .map_err(|e| Error::io("cannot create a scratch directory", e))?;
        let file = crate::restore::inside(scratch.path(), &db.file)?;
        let start = Instant::now();
        let bytes = extract(run.restic, run.contents, db, &file)
            .map_err(|e| RestoreError::failed(&what, e))?;
        // Checked whole before anything reaches the live system.
        self.check_file(&file)
            .map_err(|e| RestoreError::failed(&what, e))?;
        shell(&self.restore, &[])
            .stdin_file(&file)
            .time_limit(self.restore_timeout, "restore_timeout")
            .output()
            .and_then(|o| o.ensure_success("the restore command"))
            .map_err(|e| {
                RestoreError::failed(&what, format!("the restore command failed: {}", failure(e)))
            })?;
        Ok(Restored {
            lines: vec![format!(
                "database {} (command): {} fed to `{}` in {:.1}s",
                db.name,
                human_bytes(bytes),
                self.restore,
                start.elapsed().as_secs_f64()
            )],
            warnings: Vec::new(),
        })
    }

    fn restore_plan(&self, _run: &Restore<'_>, db: &ManifestDatabase, from: &str) -> Vec<String> {
        vec![format!(
            "database  {} (command): {from} -> stdin of sh -c {:?}{}",
            db.name,
            self.restore,
            match &self.verify {
                Some(v) => format!(", checked with sh -c {v:?} first"),
                None => String::new(),
            }
        )]
    }

    fn restore_to_file(
        &self,
        restic: &Restic,
        contents: &Contents,
        db: &ManifestDatabase,
        dest: &Path,
    ) -> Result<String, Error> {
        let what = format!("database {}", db.name);
        let checked = extract(restic, contents, db, dest).and_then(|_| self.check_file(dest));
        match checked {
            Ok(Some(how)) => Ok(how),
            Ok(None) => Ok("not checked: no verify command".into()),
            Err(e) => {
                let _ = std::fs::remove_file(dest);
                Err(RestoreError::failed(what, e).into())
            }
        }
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
