//! The `incremental` section: SQLite `method: incremental` against the bare tools.
//!
//! - whole `backup`, second and later runs, WAL, writer running: against a one-step copy plus
//!   `restic backup` of it into a repository that already holds the first copy;
//! - restore against a bare `restic restore` of the file (the default check, hash +
//!   quick_check, and the hash alone);
//! - the page index's size per GiB;
//! - rollback mode: how long each run held writers out (the copy of the first two runs, the page
//!   pass of a later one), per GiB, and the worst commit;
//! - repository growth after the day of tracker writes, uniform and Zipf-skewed, against the
//!   raw page copy.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::measure::{WriterStats, run, with_writer};
use crate::torrust::{self, Workload};
use crate::{Pairs, Suite, disk_usage, file_size, median, mib, ms, secs};

impl Suite {
    pub(crate) fn incremental_section(&mut self, size: &str, cache: &Path, bytes: u64) {
        let dir = self.work.join("incremental");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        self.say(&format!(
            "### SQLite {size} ({:.0} MiB), method: incremental\n",
            mib(bytes)
        ));
        if !self.skip("incremental-backup") {
            self.incremental_backup_and_restore(size, cache, bytes, &dir);
        }
        if !self.skip("incremental-rollback") {
            self.incremental_rollback_hold(size, cache, bytes, &dir);
        }
        if !self.skip("incremental-growth") {
            self.incremental_growth(size, cache, &dir);
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A config for profile `bench` with the incremental tracker database at `db`.
    fn incremental_config(
        &self,
        name: &str,
        repo: &Path,
        state: &Path,
        db: &Path,
        extra: &str,
    ) -> PathBuf {
        let path = self.work.join(format!("{name}.yaml"));
        let text = format!(
            "state_dir: {state}
repositories:
  bench:
    url: {repo}
    password_file: {password}
profiles:
  bench:
    repository: bench
    host: bench
    databases:
      - {{ name: tracker, type: sqlite, path: {db}, method: incremental{extra} }}
",
            state = state.display(),
            repo = repo.display(),
            password = self.password.display(),
            db = db.display(),
        );
        std::fs::write(&path, text).unwrap();
        path
    }

    /// The last backup's record in `state`'s status file.
    fn last_backup(state: &Path) -> serde_json::Value {
        let text = std::fs::read_to_string(state.join("status/bench.json")).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        v["jobs"]["backup"]["backup"].clone()
    }

    /// One `resticpilot backup` (asserted to succeed) under the writer, or alone.
    fn rp_backup(
        &self,
        config: &Path,
        live: Option<&Path>,
    ) -> (crate::measure::Timed, WriterStats) {
        let mut cmd = self.resticpilot(config);
        cmd.args(["backup", "bench"]);
        let (t, w) = match live {
            Some(db) => self.under_writer(db, &mut cmd, None, true),
            None => (run(&mut cmd, None, true), WriterStats::default()),
        };
        // Exit 3 (finished with warnings) is what a rollback-mode copy past half of
        // writer_hold_limit gives: the run itself succeeded.
        assert!(
            t.ok || t.status == "exit 3",
            "resticpilot backup (incremental): {}",
            t.stderr
        );
        (t, w)
    }

    /// The bare tools' run: a one-step copy into `copy_dir` and `restic backup` of it.
    fn bare_backup(&self, live: &Path, repo: &Path, copy_dir: &Path) -> (f64, f64, WriterStats) {
        std::fs::create_dir_all(copy_dir).unwrap();
        let out = copy_dir.join("tracker.sqlite3");
        self.settle();
        let ((copy, backup), w) = with_writer(&self.exe, live, self.args.write_rate, || {
            let copy = run(
                Command::new(&self.exe).arg("copy").arg(live).arg(&out),
                None,
                false,
            );
            let backup = run(
                self.restic(repo)
                    .args(["backup", "--json", "--host", "bench"])
                    .arg(copy_dir),
                None,
                false,
            );
            (copy, backup)
        });
        assert!(copy.ok && backup.ok, "{}{}", copy.stderr, backup.stderr);
        (copy.secs, backup.secs, w)
    }

    fn incremental_backup_and_restore(&mut self, size: &str, cache: &Path, bytes: u64, dir: &Path) {
        let live = self.live_copy(cache, &dir.join("live"), "wal");
        let repo = dir.join("repo-rp");
        let state = dir.join("state");
        let bare_repo = dir.join("repo-bare");
        let copy_dir = dir.join("bare");
        self.fresh_repo(&repo);
        self.fresh_repo(&bare_repo);
        let config = self.incremental_config("incremental", &repo, &state, &live, "");
        self.progress(&format!(
            "{size} incremental: first runs (base, and the bare first copy)"
        ));
        let (first, _) = self.rp_backup(&config, Some(&live));
        let (bare_copy1, bare_restic1, _) = self.bare_backup(&live, &bare_repo, &copy_dir);
        // The run after a new base copies the database once more, to keep it as the previous
        // copy that later runs (read in place) bring up to date.
        self.progress(&format!(
            "{size} incremental: second run (copies once more)"
        ));
        let (second, second_writer) = self.rp_backup(&config, Some(&live));

        let mut pairs = Pairs::default();
        let (mut copies, mut restics, mut dumps, mut added) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut rp_writer = WriterStats::default();
        let mut bare_writer = WriterStats::default();
        for i in 0..self.args.repeat.max(1) {
            self.progress(&format!(
                "{size} incremental: later run {} (resticpilot vs bare tools)",
                i + 1
            ));
            let rp_run = |s: &Suite| s.rp_backup(&config, Some(&live));
            let bare_run = |s: &Suite| s.bare_backup(&live, &bare_repo, &copy_dir);
            let ((t, rw), (copy, backup, bw)) = if i % 2 == 0 {
                let r = rp_run(self);
                (r, bare_run(self))
            } else {
                let b = bare_run(self);
                (rp_run(self), b)
            };
            let (rss_kib, dump) = (t.peak_rss_kib.unwrap_or(0), dump_secs(&t.stderr));
            self.progress(&format!(
                "  resticpilot {} (peak RSS {:.1} MiB: {}; dump {}), bare {}",
                secs(t.secs),
                rss_kib as f64 / 1024.0,
                t.peak_rss_parts,
                dump.map_or("-".into(), secs),
                secs(copy + backup)
            ));
            if rss_kib > 64 * 1024 {
                // Keep what the run said, to find what took the memory.
                let _ = std::fs::write(self.work.join(format!("rss-run-{}.log", i + 1)), &t.stderr);
            }
            dumps.extend(dump);
            added.push(
                Self::last_backup(&state)["bytes_added"]
                    .as_u64()
                    .unwrap_or(0) as f64,
            );
            for (into, from) in [(&mut rp_writer, &rw), (&mut bare_writer, &bw)] {
                into.worst_ms = into.worst_ms.max(from.worst_ms);
                into.wal_peak_bytes = into.wal_peak_bytes.max(from.wal_peak_bytes);
                into.commits += from.commits;
                into.failed += from.failed;
            }
            pairs.add(&t, copy + backup);
            copies.push(copy);
            restics.push(backup);
        }
        self.say(&format!(
            "#### Whole backup, later runs (after the base and the second run), SQLite {size} wal, writer running (median of {} pairs)\n",
            pairs.rp.len()
        ));
        self.say("| what | time | vs bare | writer: worst commit | application's -wal peak | resticpilot peak RSS | note |");
        self.say("| --- | --- | --- | --- | --- | --- | --- |");
        self.say(&format!(
            "| bare: one-step copy + `restic backup` (repository holds the first copy) | {} | 1.00x | {} | {:.1} MiB | - | copy {}, restic {}; first run {} |",
            pairs.bare(),
            ms(bare_writer.worst_ms),
            mib(bare_writer.wal_peak_bytes),
            secs(median(&copies)),
            secs(median(&restics)),
            secs(bare_copy1 + bare_restic1)
        ));
        self.say(&format!(
            "| `resticpilot backup`, method: incremental | {} | {} | {} | {:.1} MiB | {} | dump {} incl. quick_check and the page pass; restic added {:.1} MiB per run; first run (new base) {}; second run (copies once more) {}, worst commit {} |",
            pairs.rp(),
            pairs.ratio(),
            ms(rp_writer.worst_ms),
            mib(rp_writer.wal_peak_bytes),
            pairs.rss(),
            secs(median(&dumps)),
            mib(median(&added) as u64),
            secs(first.secs),
            secs(second.secs),
            ms(second_writer.worst_ms)
        ));
        let index = file_size(&state.join("page-index/bench/tracker.pages"));
        let gib = bytes as f64 / (1u64 << 30) as f64;
        self.say(&format!(
            "\nPage index: {:.2} MiB for {:.0} MiB of database ({:.2} MiB per GiB; not backed up).\n",
            mib(index),
            mib(bytes),
            mib(index) / gib
        ));
        let _ = std::fs::remove_dir_all(&copy_dir);

        if !self.skip("restore") {
            self.incremental_restore(size, bytes, &repo, &bare_repo, &state);
        }
        // Room for the next parts (the work directory needs about 6x the size at once).
        for d in [live.parent().unwrap(), &repo, &bare_repo, &state] {
            let _ = std::fs::remove_dir_all(d);
        }
    }

    /// `resticpilot restore` from the incremental repository (base + deltas) against a bare
    /// `restic restore` of the single-file copy.
    fn incremental_restore(
        &mut self,
        size: &str,
        bytes: u64,
        repo: &Path,
        bare_repo: &Path,
        state: &Path,
    ) {
        let target = self.work.join("restored");
        let into = target.join("tracker.db");
        let mut quick = Pairs::default();
        let mut hash_only = Vec::new();
        let mut restics = Vec::new();
        let mut bare_synced = Vec::new();
        let mut chain = String::new();
        for i in 0..self.args.repeat.max(1) {
            self.progress(&format!(
                "{size} incremental: restore comparison, run {}",
                i + 1
            ));
            let mut rp = |check: &str| {
                let _ = std::fs::remove_dir_all(&target);
                std::fs::create_dir_all(&target).unwrap();
                let config = self.incremental_config(
                    "incremental-restore",
                    repo,
                    state,
                    &into,
                    &format!(", restore_check: {check}"),
                );
                self.settle();
                let t = run(
                    self.resticpilot(&config).args([
                        "restore",
                        "bench",
                        "--snapshot",
                        "latest",
                        "--database",
                        "tracker",
                        "--force",
                    ]),
                    None,
                    true,
                );
                assert!(t.ok, "resticpilot restore: {}", t.stderr);
                assert_eq!(torrust::integrity(&into), "ok");
                if let Some(c) = t
                    .stdout
                    .split("rebuilt from ")
                    .nth(1)
                    .and_then(|s| s.split(')').next())
                {
                    chain = c.to_string();
                }
                t
            };
            let t = rp("quick");
            let h = rp("hash");
            let _ = std::fs::remove_dir_all(&target);
            self.settle();
            let r = run(
                self.restic(bare_repo)
                    .args(["restore", "latest", "--target"])
                    .arg(&target),
                None,
                false,
            );
            assert!(r.ok, "restic restore: {}", r.stderr);
            // What a restore that replaces a live file must add: its data on disk first.
            let synced = std::time::Instant::now();
            sync_files(&target);
            bare_synced.push(r.secs + synced.elapsed().as_secs_f64());
            quick.add(&t, r.secs);
            hash_only.push(h.secs);
            restics.push(r.secs);
        }
        let bare = median(&restics);
        self.say(&format!(
            "#### Restore, SQLite {size} ({:.0} MiB), method: incremental ({chain}), median of {} runs\n",
            mib(bytes),
            quick.rp.len()
        ));
        self.say("| what | time | vs bare | resticpilot peak RSS |");
        self.say("| --- | --- | --- | --- |");
        self.say(&format!(
            "| bare: `restic restore` of the one-file copy (no check) | {} | 1.00x | - |",
            secs(bare)
        ));
        self.say(&format!(
            "| bare, then fsync of the restored file (a restore must be on disk before it replaces the live file; resticpilot's is) | {} | {:.2}x | - |",
            secs(median(&bare_synced)),
            median(&bare_synced) / bare.max(1e-9)
        ));
        self.say(&format!(
            "| `resticpilot restore`, restore_check: quick (default: hash + quick_check) | {} | {} | {} |",
            quick.rp(),
            quick.ratio(),
            quick.rss()
        ));
        self.say(&format!(
            "| `resticpilot restore`, restore_check: hash | {} | **{:.2}x** | - |\n",
            secs(median(&hash_only)),
            median(&hash_only) / bare.max(1e-9)
        ));
        let _ = std::fs::remove_dir_all(&target);
    }

    /// Rollback-journal mode: the copy's read lock holds writers out for the whole copy.
    fn incremental_rollback_hold(&mut self, size: &str, cache: &Path, bytes: u64, dir: &Path) {
        let live = self.live_copy(cache, &dir.join("live-delete"), "delete");
        let repo = dir.join("repo-delete");
        let state = dir.join("state-delete");
        self.fresh_repo(&repo);
        let config = self.incremental_config("incremental-delete", &repo, &state, &live, "");
        let gib = bytes as f64 / (1u64 << 30) as f64;
        self.say(&format!(
            "#### Writers held out, SQLite {size} journal mode delete (rollback), method: incremental, writer at {} commits/s\n",
            self.args.write_rate
        ));
        self.say("| run | writers held out (recorded) | per GiB | writer: worst commit | dump |");
        self.say("| --- | --- | --- | --- | --- |");
        for run_name in [
            "first (new base)",
            "second (delta, copied once more)",
            "later (delta, read in place under the read lock)",
        ] {
            self.progress(&format!(
                "{size} incremental, rollback mode: {run_name} run"
            ));
            let (t, w) = self.rp_backup(&config, Some(&live));
            let held = Self::last_backup(&state)["databases"][0]["writers_held_seconds"]
                .as_f64()
                .unwrap_or(f64::NAN);
            self.say(&format!(
                "| {run_name} | {} | {} | {} | {} |",
                secs(held),
                secs(held / gib),
                ms(w.worst_ms),
                dump_secs(&t.stderr).map_or("-".into(), secs)
            ));
        }
        self.say("");
        let _ = std::fs::remove_dir_all(live.parent().unwrap());
        let _ = std::fs::remove_dir_all(&repo);
        let _ = std::fs::remove_dir_all(&state);
    }

    /// Repository growth after one day of writes: the raw page copy against the chain, for
    /// the uniform and the Zipf workload, from the same database states.
    fn incremental_growth(&mut self, size: &str, cache: &Path, dir: &Path) {
        let zipf = Workload::Zipf(self.args.zipf);
        let mut rows = Vec::new();
        for workload in [Workload::Uniform, zipf] {
            self.progress(&format!(
                "{size} incremental: growth after a day, {}",
                workload.name()
            ));
            let g = dir.join("growth");
            let _ = std::fs::remove_dir_all(&g);
            let live = self.live_copy(cache, &g.join("live"), "wal");
            let pages = g.join("pages");
            let raw_repo = g.join("repo-raw");
            let repo = g.join("repo-rp");
            let state = g.join("state");
            self.fresh_repo(&raw_repo);
            self.fresh_repo(&repo);
            // Measure the day's delta itself, whatever max_delta_share would decide.
            let config = self.incremental_config(
                "incremental-growth",
                &repo,
                &state,
                &live,
                ", max_delta_share: 100",
            );
            let raw_run = |s: &Suite| -> u64 {
                let t = run(
                    Command::new(&s.exe)
                        .args(["dump", "--method", "online", "--sqlite"])
                        .arg(&live)
                        .arg("--dir")
                        .arg(&pages),
                    None,
                    false,
                );
                assert!(t.ok, "{}", t.stderr);
                let before = disk_usage(&raw_repo);
                let b = run(
                    s.restic(&raw_repo)
                        .args(["backup", "--json", "--host", "bench"])
                        .arg(&pages),
                    None,
                    false,
                );
                assert!(b.ok, "{}", b.stderr);
                // The next raw run dumps again: its disk is the repositories' room.
                let _ = std::fs::remove_dir_all(&pages);
                disk_usage(&raw_repo) - before
            };
            let rp_run = |s: &Suite| -> (u64, u64) {
                let before = disk_usage(&repo);
                s.rp_backup(&config, None);
                let added = Self::last_backup(&state)["bytes_added"]
                    .as_u64()
                    .unwrap_or(0);
                (disk_usage(&repo) - before, added)
            };
            raw_run(self);
            rp_run(self);
            torrust::apply_day_with(
                &live,
                self.args.day_updates,
                self.args.day_inserts,
                workload,
            )
            .unwrap();
            let raw_grew = raw_run(self);
            let (rp_grew, rp_added) = rp_run(self);
            let db = file_size(&live);
            let delta = std::fs::read_dir(state.join("chains/bench/tracker"))
                .unwrap()
                .filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().starts_with("delta-"))
                .map(|e| e.metadata().unwrap().len())
                .max()
                .unwrap_or(0);
            rows.push(format!(
                "| {} | {:.0} MiB | {:.1} MiB ({:.1} %) | {:.1} MiB ({:.2} % of the database) | {:.1} MiB / {:.1} MiB | **{:.2} %** |",
                workload.name(),
                mib(db),
                mib(raw_grew),
                100.0 * raw_grew as f64 / db.max(1) as f64,
                mib(delta),
                100.0 * delta as f64 / db.max(1) as f64,
                mib(rp_added),
                mib(rp_grew),
                100.0 * rp_grew as f64 / db.max(1) as f64
            ));
            let _ = std::fs::remove_dir_all(&g);
        }
        self.say(&format!(
            "#### Repository growth after one day ({} counter updates, {} new torrents), SQLite {size}: raw page copy vs incremental\n",
            self.args.day_updates, self.args.day_inserts
        ));
        self.say("| workload | database | raw page copy: repo grew | incremental: the day's delta | incremental: restic data added / repo grew | incremental: repo grew by % of the database |");
        self.say("| --- | --- | --- | --- | --- | --- |");
        for r in rows {
            self.say(&r);
        }
        self.say("");
    }
}

/// The dump time from resticpilot's "dumped tracker.sqlite3 (...) in 3.2s" log line.
/// fsync of every regular file below `dir` (the bare restore's output).
fn sync_files(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let Ok(meta) = entry.path().symlink_metadata() else {
            continue;
        };
        if meta.is_dir() {
            sync_files(&entry.path());
        } else if meta.is_file() {
            std::fs::File::open(entry.path())
                .and_then(|f| f.sync_all())
                .unwrap();
        }
    }
}

fn dump_secs(stderr: &str) -> Option<f64> {
    stderr
        .lines()
        .find(|l| l.contains("dumped tracker.sqlite3"))
        .and_then(|l| l.split(" in ").nth(1))
        .and_then(|s| s.split('s').next())
        .and_then(|s| s.parse::<f64>().ok())
}
