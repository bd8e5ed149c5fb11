//! Writeback while a restore writes. restic does not sync what it restores, and a database
//! copy must be on disk before it replaces anything, so the final fsync used to write the
//! whole copy after restic had ended: 1.6-1.9 s per GiB on the bench's disk, about half of
//! restic's own time, with the disk idle while restic ran. A [`Flusher`] syncs the files
//! under a directory (or one file) every 100 ms while they are written, so the disk writes
//! while restic reads and the final fsync finds little left.
//!
//! It only ever opens regular files, read-only, without following symlinks and without
//! blocking (what restic puts in a scratch directory comes from an untrusted snapshot: a
//! FIFO or a device node there is skipped, never opened), and it is best effort: the caller's
//! own fsync afterwards is what makes the copy durable.

use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// How often the files are synced.
const EVERY: Duration = Duration::from_millis(100);

/// Directory levels walked below the root (restic recreates the snapshot's absolute path
/// inside its target) and entries looked at per pass: bounds on what a hostile snapshot can
/// make the walk do.
const MAX_DEPTH: usize = 64;
const MAX_ENTRIES: usize = 10_000;

/// Syncs the regular files under a path in the background until dropped.
pub struct Flusher {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

impl Flusher {
    /// Starts syncing `root` (a file, or the files anywhere below a directory). `root` need
    /// not exist yet.
    pub fn start(root: &Path) -> Flusher {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let root = root.to_path_buf();
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("flush".into())
            .spawn(move || run(&root, &flag))
            .map_err(|e| tracing::debug!("no writeback thread ({e}): the final fsync does it all"))
            .ok();
        Flusher { stop, thread }
    }
}

impl Drop for Flusher {
    fn drop(&mut self) {
        let (lock, wake) = &*self.stop;
        if let Ok(mut stopped) = lock.lock() {
            *stopped = true;
        }
        wake.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run(root: &Path, stop: &(Mutex<bool>, Condvar)) {
    let (lock, wake) = stop;
    let mut files = Vec::new();
    loop {
        files.clear();
        regular_files(root, 0, &mut 0, &mut files);
        for f in &files {
            sync(f);
        }
        let Ok(stopped) = lock.lock() else { return };
        let Ok((stopped, _)) = wake.wait_timeout_while(stopped, EVERY, |s| !*s) else {
            return;
        };
        if *stopped {
            return;
        }
    }
}

/// The regular files at or below `path`, symlinks not followed, within the bounds.
fn regular_files(path: &Path, depth: usize, seen: &mut usize, out: &mut Vec<PathBuf>) {
    *seen += 1;
    if *seen > MAX_ENTRIES {
        return;
    }
    let Ok(meta) = path.symlink_metadata() else {
        return;
    };
    if meta.is_file() {
        out.push(path.to_path_buf());
    } else if meta.is_dir() && depth < MAX_DEPTH {
        let Ok(entries) = std::fs::read_dir(path) else {
            return;
        };
        for entry in entries.flatten() {
            regular_files(&entry.path(), depth + 1, seen, out);
        }
    }
}

/// Starts the writeback of what is dirty in the regular file at `path` and waits for it.
fn sync(path: &Path) {
    let opened = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
        .open(path);
    let Ok(file) = opened else { return };
    if file.metadata().is_ok_and(|m| m.is_file()) {
        let _ = file.sync_data();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::File;
    use std::time::Instant;

    #[test]
    fn a_fifo_or_a_symlink_in_the_tree_is_skipped_and_the_flusher_stops_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("a/b/base-x");
        std::fs::create_dir_all(fifo.parent().unwrap()).unwrap();
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let outside = tempfile::NamedTempFile::new().unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("a/link")).unwrap();
        std::os::unix::fs::symlink("/", dir.path().join("a/root")).unwrap();
        let mut found = Vec::new();
        regular_files(dir.path(), 0, &mut 0, &mut found);
        assert!(found.is_empty(), "{found:?}");
        // A FIFO opened for reading without O_NONBLOCK waits for a writer forever.
        sync(&fifo);
        let started = Instant::now();
        let flusher = Flusher::start(dir.path());
        std::thread::sleep(Duration::from_millis(250));
        drop(flusher);
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn files_written_below_the_root_are_found_at_any_depth_within_the_bound() {
        let dir = tempfile::tempdir().unwrap();
        let deep = dir.path().join("tmp/rt/state/chains/bench/tracker");
        std::fs::create_dir_all(&deep).unwrap();
        File::create(deep.join("base-1.sqlite3")).unwrap();
        File::create(dir.path().join("top")).unwrap();
        let mut found = Vec::new();
        regular_files(dir.path(), 0, &mut 0, &mut found);
        found.sort();
        assert_eq!(
            found,
            vec![deep.join("base-1.sqlite3"), dir.path().join("top")]
        );
        // A single file as the root is itself.
        let mut one = Vec::new();
        regular_files(&deep.join("base-1.sqlite3"), 0, &mut 0, &mut one);
        assert_eq!(one, vec![deep.join("base-1.sqlite3")]);
    }
}
