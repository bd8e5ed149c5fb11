//! Which staging directories `validate` accepts. Staging is emptied before and after every
//! run; the runtime only empties a directory that carries resticpilot's marker, and these
//! checks keep a config from even pointing it at a place where emptying would hurt: the root
//! or a system directory, the state directory, or any directory holding something the config
//! names (backed-up paths, database files, secrets, the repository, the config itself, another
//! profile's staging). Lexical only: `validate` never looks at the filesystem.

use std::path::{Path, PathBuf};

use super::{Config, RepositoryPassword, Resolver, raw::RawConfig};
/// `path` made absolute (from the working directory, as the commands will see it) and
/// normalised without looking at the filesystem.
fn lexical(path: &Path) -> PathBuf {
    if path.is_absolute() {
        crate::dirs::lexical(path)
    } else {
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
        crate::dirs::lexical(&cwd.join(path))
    }
}

/// Directories that are never anyone's staging directory.
const SYSTEM_DIRS: &[&str] = &[
    "/",
    "/bin",
    "/boot",
    "/dev",
    "/etc",
    "/home",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/media",
    "/mnt",
    "/opt",
    "/proc",
    "/root",
    "/run",
    "/run/secrets",
    "/sbin",
    "/srv",
    "/sys",
    "/tmp",
    "/usr",
    "/usr/bin",
    "/usr/lib",
    "/usr/local",
    "/usr/sbin",
    "/usr/share",
    "/var",
    "/var/cache",
    "/var/lib",
    "/var/lib/docker",
    "/var/log",
    "/var/mail",
    "/var/run",
    "/var/spool",
    "/var/tmp",
];

impl Resolver<'_> {
    /// Records an error for every profile whose staging directory would be dangerous to empty.
    pub(super) fn check_staging_dirs(&mut self, raw: &RawConfig, config: &Config) {
        let protected = protected_places(config);
        let state_dir = lexical(&config.state_dir);
        let staging_root = state_dir.join("staging");
        let home = (self.env)("HOME")
            .filter(|h| h.starts_with('/'))
            .map(|h| lexical(Path::new(&h)));
        for (name, profile) in &config.profiles {
            let Some(raw_profile) = raw.profiles.get(name) else {
                continue;
            };
            let at = raw_profile
                .value
                .staging_dir
                .as_ref()
                .map(|s| s.referenced)
                .unwrap_or(raw_profile.referenced);
            let staging = lexical(&profile.staging_dir);
            let mut problems = Vec::new();
            if SYSTEM_DIRS.iter().any(|d| Path::new(d) == staging) {
                problems.push("is a system directory".to_string());
            } else if home.as_deref() == Some(staging.as_path()) {
                problems.push("is the home directory".to_string());
            }
            if state_dir.starts_with(&staging) {
                problems.push(format!("holds the state directory {}", state_dir.display()));
            } else if staging.starts_with(&state_dir) && !is_strictly_under(&staging, &staging_root)
            {
                problems.push(format!(
                    "is inside the state directory but not under {} (it would mix with the locks and status files)",
                    staging_root.display()
                ));
            }
            for (place, what) in &protected {
                if place.starts_with(&staging) {
                    let how = if *place == staging { "is" } else { "holds" };
                    problems.push(format!("{how} {what} {}", place.display()));
                }
            }
            for (other, p) in &config.profiles {
                if other == name {
                    continue;
                }
                let theirs = lexical(&p.staging_dir);
                if theirs.starts_with(&staging) || staging.starts_with(&theirs) {
                    problems.push(format!(
                        "overlaps profile {other}'s staging directory {}",
                        theirs.display()
                    ));
                }
            }
            if problems.is_empty() {
                continue;
            }
            const SHOWN: usize = 4;
            let more = problems.len().saturating_sub(SHOWN);
            problems.truncate(SHOWN);
            if more > 0 {
                problems.push(format!("and {more} more"));
            }
            self.error(
                &at,
                format!(
                    "profile {name}: staging_dir {} is emptied before and after every run, but it {}; give the profile a directory of its own, such as {} (the default)",
                    staging.display(),
                    problems.join(", "),
                    staging_root.join(name).display()
                ),
            );
        }
    }
}

/// `path` is below `dir` (not `dir` itself).
fn is_strictly_under(path: &Path, dir: &Path) -> bool {
    path != dir && path.starts_with(dir)
}

/// Everything the config names that emptying a directory must never reach, described.
fn protected_places(config: &Config) -> Vec<(PathBuf, String)> {
    let mut out: Vec<(PathBuf, String)> = Vec::new();
    let mut add = |p: &Path, what: String| out.push((lexical(p), what));
    add(&config.file, "the config file".into());
    if let Some(b) = &config.restic_binary {
        add(b, "restic_binary".into());
    }
    if let Some(m) = &config.daemon.metrics_file {
        add(m, "metrics_file".into());
    }
    for (name, repo) in &config.repositories {
        if let RepositoryPassword::File(f) = &repo.password {
            add(f, format!("the password file of repository {name}"));
        }
        let local = repo.url.strip_prefix("local:").unwrap_or(&repo.url);
        if local.starts_with('/') {
            add(Path::new(local), format!("repository {name}"));
        }
    }
    for (name, profile) in &config.profiles {
        for path in &profile.paths {
            add(path, format!("profile {name}'s path"));
        }
        for db in &profile.databases {
            for (file, what) in db.source.named_paths() {
                add(
                    &file,
                    format!("the {what} of database {} (profile {name})", db.name),
                );
            }
        }
    }
    out
}
