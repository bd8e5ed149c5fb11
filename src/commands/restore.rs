//! `restore`: a profile's snapshot back. Files under a target directory or over their
//! originals, databases back where the profile says they live (or, with `--target`, as
//! checked files in that directory). Every argument is checked before anything runs.

use std::path::{Path, PathBuf};
use std::time::Instant;

use super::{Context, Status};
use crate::cli::RestoreArgs;
use crate::config::{DatabaseSource, Profile};
use crate::error::Error;
use crate::lock::ProfileLock;
use crate::restic::Restic;
use crate::restore::{self, Contents, ManifestDatabase, RestoreError, files};
use crate::units::human_bytes;

/// The command line of `restore`, as plain data.
#[derive(Debug, Clone, Default)]
pub struct Args {
    pub profile: String,
    pub snapshot: String,
    pub target: Option<PathBuf>,
    pub databases: Vec<String>,
    pub into: Option<String>,
    pub in_place: bool,
    pub force: bool,
    pub dry_run: bool,
    /// With `target` and `databases`: the files too.
    pub files: bool,
}

impl Args {
    /// Whether the profile's files are restored under `target`: `--target` alone, or with
    /// `--database` only when `--files` asks for them too.
    fn files_to_target(&self) -> Option<&Path> {
        self.target
            .as_deref()
            .filter(|_| self.databases.is_empty() || self.files)
    }
}

impl From<RestoreArgs> for Args {
    fn from(a: RestoreArgs) -> Self {
        Args {
            profile: a.profile,
            snapshot: a.snapshot,
            target: a.target,
            databases: a.databases,
            into: a.into,
            in_place: a.in_place,
            force: a.force,
            dry_run: a.dry_run,
            files: a.files,
        }
    }
}

/// Fails with a usage error (exit 2, nothing run) for arguments that don't fit the profile,
/// and otherwise when restic fails, the snapshot lacks what was asked for, or a restore is
/// refused or fails (exit 1).
pub fn run(ctx: &Context, args: &Args) -> Result<Status, Error> {
    let profile = ctx.profile(&args.profile)?;
    let selected = check_args(profile, args)?;
    let restic = ctx.restic(profile)?;
    // The whole restore's time, as the operator waits for it (the snapshot's selection too).
    let start = Instant::now();
    // Held from before anything is fetched (the chain may come with the manifest) to the end.
    let _lock = if args.dry_run {
        None
    } else {
        Some(ProfileLock::acquire(&ctx.config.state_dir, &profile.name)?)
    };
    let snapshot = restore::select(&restic, profile, &args.snapshot)?;
    // One database (the common case after a disk died): its chain may come in the same
    // restic call as the manifest. Not for a plan, nor for a --target file that is refused.
    let prefetch = match selected.as_slice() {
        [one] if !args.dry_run => one
            .source
            .restore_prefetch(args.target.as_deref(), args.force)
            .filter(|_| {
                args.target
                    .as_ref()
                    .is_none_or(|t| !t.join(one.dump_file_name()).exists())
            }),
        _ => None,
    };
    let contents = restore::open(&restic, snapshot, prefetch.as_ref())?;
    let mut pairs = Vec::new();
    for source in &selected {
        let db = contents
            .database(&source.name)
            .ok_or_else(|| RestoreError::Snapshot {
                snapshot: contents.short().to_string(),
                reason: format!(
                    "it has no dump of database {} (it holds: {})",
                    source.name,
                    contents.database_names()
                ),
            })?;
        if db.kind != source.type_name() {
            return Err(RestoreError::Snapshot {
                snapshot: contents.short().to_string(),
                reason: format!(
                    "its dump of {} is {}, the profile now says {}",
                    db.name,
                    db.kind,
                    source.type_name()
                ),
            }
            .into());
        }
        pairs.push((*source, db.clone()));
    }
    if args.in_place {
        let outside = files::outside(&contents, &profile.paths);
        if !outside.is_empty() {
            return Err(RestoreError::refused(
                format!("the files of snapshot {} in place", contents.short()),
                format!(
                    "the snapshot holds {}, which the profile does not configure as a path: an in-place restore writes only to the profile's paths. Restore under --target DIR and copy what you need by hand",
                    outside.join(", ")
                ),
            )
            .into());
        }
    }
    if args.dry_run {
        print_plan(ctx, &restic, profile, &contents, &pairs, args)?;
        return Ok(Status::Success);
    }
    println!(
        "restoring from snapshot {} of profile {} ({}, host {})",
        contents.short(),
        profile.name,
        restore::show_time(&contents.snapshot.time),
        contents.snapshot.hostname
    );
    let mut warnings = Vec::new();
    if let Some(note) = restore::incomplete_note(&restic, profile, &contents.snapshot) {
        println!("warning: {note}");
        warnings.push(note);
    }
    let mut done = Vec::new();

    if let Some(target) = args.files_to_target() {
        let r = files::to_target(&restic, &contents, target, false)?;
        if r.paths.is_empty() {
            println!("files: the snapshot holds no files besides the database dumps");
        } else {
            println!(
                "files: {} ({}) of {} restored under {} in {:.1}s",
                restore::count(r.files, "file"),
                human_bytes(r.bytes),
                r.paths.join(", "),
                target.display(),
                r.duration.as_secs_f64()
            );
            done.push(restore::count(r.files, "file"));
        }
    } else if args.in_place {
        let r = files::in_place(&restic, &contents)?;
        for path in &r.overwritten {
            println!("overwrote {path}");
        }
        println!(
            "files: {} ({}) of {} restored in place in {:.1}s; {} overwritten",
            restore::count(r.files, "file"),
            human_bytes(r.bytes),
            r.paths.join(", "),
            r.duration.as_secs_f64(),
            restore::count(r.overwritten.len() as u64, "existing file")
        );
        done.push(restore::count(r.files, "file"));
    }

    let run = restore_run(ctx, &restic, profile, &contents, args);
    for (source, db) in &pairs {
        if let Some(dir) = &args.target {
            let (path, checked) = database_to_dir(&restic, &contents, db, source, dir)?;
            println!(
                "database {}: copy written to {} ({checked})",
                db.name,
                path.display()
            );
        } else {
            let r = source.source.restore(&run, db)?;
            for line in &r.lines {
                println!("{line}");
            }
            for w in r.warnings {
                println!("warning: {w}");
                warnings.push(w);
            }
        }
        done.push(format!("database {}", db.name));
    }
    println!(
        "restore done: {} from snapshot {} of profile {} in {:.1}s{}",
        if done.is_empty() {
            "nothing".to_string()
        } else {
            done.join(", ")
        },
        contents.short(),
        profile.name,
        start.elapsed().as_secs_f64(),
        if warnings.is_empty() {
            String::new()
        } else {
            format!(
                ", {}",
                crate::units::count(warnings.len() as u64, "warning", "warnings")
            )
        }
    );
    Ok(if warnings.is_empty() {
        Status::Success
    } else {
        Status::Warnings
    })
}

/// The profile's database sources `args` asks for, after checking every argument.
fn check_args<'p>(profile: &'p Profile, args: &Args) -> Result<Vec<&'p DatabaseSource>, Error> {
    let usage = |m: String| Err(Error::Usage(m));
    if args.target.is_none() && !args.in_place && args.databases.is_empty() {
        return usage(
            "say what to restore: --target DIR (the files, under DIR), --database NAME|all (databases back in place), or --in-place --force (the files over their originals)".into(),
        );
    }
    if args.in_place && !args.force && !args.dry_run {
        return usage(
            "--in-place overwrites the files at their original locations: add --force to do it, or --dry-run to see what it would overwrite".into(),
        );
    }
    let known = || {
        let names: Vec<&str> = profile.databases.iter().map(|d| d.name.as_str()).collect();
        if names.is_empty() {
            "it has none".to_string()
        } else {
            format!("known: {}", names.join(", "))
        }
    };
    let mut selected: Vec<&DatabaseSource> = Vec::new();
    for name in &args.databases {
        if name == "all" {
            if profile.databases.is_empty() {
                return usage(format!(
                    "--database all: profile {} has no databases",
                    profile.name
                ));
            }
            for d in &profile.databases {
                if !selected.iter().any(|s| s.name == d.name) {
                    selected.push(d);
                }
            }
            continue;
        }
        match profile.databases.iter().find(|d| d.name == *name) {
            Some(d) if !selected.iter().any(|s| s.name == d.name) => selected.push(d),
            Some(_) => {}
            None => {
                return usage(format!(
                    "profile {} has no database named {name:?} ({})",
                    profile.name,
                    known()
                ));
            }
        }
    }
    if let Some(into) = &args.into {
        match selected.as_slice() {
            [one] => match one.source.check_into(into) {
                Some(Ok(())) => {}
                Some(Err(e)) => return usage(format!("--into: {e}")),
                None => return usage(into_usage()),
            },
            _ => return usage(into_usage()),
        }
        if args.target.is_some() {
            return usage("--into and --target don't go together: --target writes the dump file into a directory".into());
        }
    }
    Ok(selected)
}

/// The usage error of an `--into` that does not fit: which sources take it.
fn into_usage() -> String {
    "--into restores one MySQL database under another name: give exactly one --database NAME of type mysql".into()
}

/// What each database's restore has at hand.
fn restore_run<'a>(
    ctx: &Context,
    restic: &'a Restic,
    profile: &Profile,
    contents: &'a Contents,
    args: &'a Args,
) -> crate::source::Restore<'a> {
    crate::source::Restore {
        restic,
        contents,
        force: args.force,
        into: args.into.as_deref(),
        keep_dir: ctx.config.state_dir.join("pre-restore").join(&profile.name),
    }
}

/// Writes a checked copy of `db` into `dir`: SQLite as a file that passed its check (the hash
/// recorded at backup and `restore_check`, or integrity_check for copies without a hash),
/// MySQL as its SQL dump with its completion trailer.
fn database_to_dir(
    restic: &Restic,
    contents: &Contents,
    db: &ManifestDatabase,
    source: &DatabaseSource,
    dir: &Path,
) -> Result<(PathBuf, String), Error> {
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::io(format!("cannot create {}", dir.display()), e))?;
    let dest = restore::inside(dir, &db.file)?;
    if dest.symlink_metadata().is_ok() {
        return Err(RestoreError::refused(
            format!("database {}", db.name),
            format!(
                "{} already exists; remove it or choose another --target",
                dest.display()
            ),
        )
        .into());
    }
    let checked = source.source.restore_to_file(restic, contents, db, &dest)?;
    Ok((dest, checked))
}

fn print_plan(
    ctx: &Context,
    restic: &Restic,
    profile: &Profile,
    contents: &Contents,
    pairs: &[(&DatabaseSource, ManifestDatabase)],
    args: &Args,
) -> Result<(), Error> {
    println!(
        "restore of profile {} (dry run: nothing is changed)",
        profile.name
    );
    println!(
        "  snapshot  {}  {}  host {}  ({})",
        contents.short(),
        restore::show_time(&contents.snapshot.time),
        contents.snapshot.hostname,
        if args.snapshot == "latest" {
            "the latest of the profile".to_string()
        } else {
            format!("--snapshot {}", args.snapshot)
        }
    );
    if let Some(note) = restore::incomplete_note(restic, profile, &contents.snapshot) {
        println!("  warning   {note}");
    }
    if args.files_to_target().is_some() || args.in_place {
        let entries = files::listing(restic, contents)?;
        let bytes: u64 = entries.iter().map(|e| e.size).sum();
        if contents.files.is_empty() {
            println!("  files     none in the snapshot besides the database dumps");
        } else if let Some(target) = args.files_to_target() {
            println!(
                "  files     {} ({}) of {} -> under {}",
                restore::count(entries.len() as u64, "file"),
                human_bytes(bytes),
                contents.files.join(", "),
                target.display()
            );
        } else {
            let overwrite = files::existing(&entries);
            println!(
                "  files     {} ({}) of {} -> in place; {} would be overwritten{}",
                restore::count(entries.len() as u64, "file"),
                human_bytes(bytes),
                contents.files.join(", "),
                restore::count(overwrite.len() as u64, "existing file"),
                if overwrite.is_empty() { "" } else { ":" }
            );
            for p in overwrite {
                println!("              {p}");
            }
        }
    }
    let run = restore_run(ctx, restic, profile, contents, args);
    for (source, db) in pairs {
        let from = match &db.incremental {
            Some(c) => format!(
                "{} (base + {}, {})",
                c.dir,
                restore::count(c.deltas.len() as u64, "delta"),
                human_bytes(db.bytes)
            ),
            None => format!("{} ({})", contents.dump_path(db), human_bytes(db.bytes)),
        };
        match &args.target {
            Some(dir) => println!(
                "  database  {} ({}): {from} -> {} (checked)",
                db.name,
                db.kind,
                dir.join(&db.file).display()
            ),
            None => {
                for line in source.source.restore_plan(&run, db, &from) {
                    println!("  {line}");
                }
            }
        }
    }
    Ok(())
}
