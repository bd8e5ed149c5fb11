//! The scheduler's two pieces of state: when each job is next due ([`Scheduler`]) and which
//! due jobs wait or run ([`Queue`]). Both take the time as an argument.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{JobKey, Schedule};
use crate::config::CatchUp;

/// One scheduled job as the daemon starts.
#[derive(Debug, Clone)]
pub struct Planned {
    pub key: JobKey,
    pub schedule: Schedule,
    pub jitter: Duration,
    pub catch_up: CatchUp,
    /// When the last successful run of this job started, from the status file.
    pub last_success_start: Option<DateTime<Utc>>,
}

/// What the scheduler decided for a job when the daemon started.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// A run was missed while the daemon was down (`None`: the job never succeeded): run now.
    CatchUp {
        key: JobKey,
        missed: Option<DateTime<Utc>>,
    },
    /// A run was missed (or never happened), and `catch_up: skip` says to wait for the next.
    Skipped {
        key: JobKey,
        missed: Option<DateTime<Utc>>,
        next: DateTime<Utc>,
    },
    Next {
        key: JobKey,
        next: DateTime<Utc>,
    },
    /// The schedule never matches again.
    Never {
        key: JobKey,
    },
}

struct Entry {
    key: JobKey,
    schedule: Schedule,
    jitter: Duration,
    /// When it is due next, jitter included.
    next: Option<DateTime<Utc>>,
}

/// When each job is due.
pub struct Scheduler {
    entries: Vec<Entry>,
}

impl Scheduler {
    /// Plans every job from `now`. Jobs to catch up are in the decisions; the caller queues
    /// them. `jitter` picks a delay below its argument.
    pub fn new(
        planned: Vec<Planned>,
        now: DateTime<Utc>,
        jitter: &mut dyn FnMut(Duration) -> Duration,
    ) -> (Scheduler, Vec<Decision>) {
        let mut entries = Vec::new();
        let mut decisions = Vec::new();
        for p in planned {
            let next = p.schedule.next_after(now).map(|t| t + jitter(p.jitter));
            // The first run that should have happened after the last success: `Some(None)`
            // when there never was one.
            let missed = match p.last_success_start {
                Some(last) => p.schedule.next_after(last).filter(|t| *t <= now).map(Some),
                None => Some(None),
            };
            let decision = match (missed, next) {
                (Some(missed), _) if p.catch_up == CatchUp::Once => Decision::CatchUp {
                    key: p.key.clone(),
                    missed,
                },
                (Some(missed), Some(next)) => Decision::Skipped {
                    key: p.key.clone(),
                    missed,
                    next,
                },
                (_, Some(next)) => Decision::Next {
                    key: p.key.clone(),
                    next,
                },
                (_, None) => Decision::Never { key: p.key.clone() },
            };
            decisions.push(decision);
            entries.push(Entry {
                key: p.key,
                schedule: p.schedule,
                jitter: p.jitter,
                next,
            });
        }
        (Scheduler { entries }, decisions)
    }

    /// The earliest time a job is due.
    pub fn next_due(&self) -> Option<DateTime<Utc>> {
        self.entries.iter().filter_map(|e| e.next).min()
    }

    /// When `key` is due next.
    pub fn next_of(&self, key: &JobKey) -> Option<DateTime<Utc>> {
        self.entries.iter().find(|e| &e.key == key)?.next
    }

    /// The jobs due at `now`, each planned again for its first time after `now`: a daemon that
    /// woke late (a suspended machine) runs a job once, not once per missed time.
    pub fn take_due(
        &mut self,
        now: DateTime<Utc>,
        jitter: &mut dyn FnMut(Duration) -> Duration,
    ) -> Vec<JobKey> {
        let mut due = Vec::new();
        for e in &mut self.entries {
            if e.next.is_some_and(|t| t <= now) {
                due.push(e.key.clone());
                e.next = e.schedule.next_after(now).map(|t| t + jitter(e.jitter));
            }
        }
        due
    }
}

/// Due jobs waiting for a slot, and the running ones: never two jobs of one profile at once,
/// at most `max` at once overall.
pub struct Queue {
    max: usize,
    running: BTreeMap<String, JobKey>,
    waiting: VecDeque<JobKey>,
}

impl Queue {
    pub fn new(max: usize) -> Queue {
        Queue {
            max: max.max(1),
            running: BTreeMap::new(),
            waiting: VecDeque::new(),
        }
    }

    /// Queues `key`. Returns false, and queues nothing, when the same job is already running
    /// or waiting: that tick is skipped (another job of the same profile waits its turn).
    pub fn submit(&mut self, key: JobKey) -> bool {
        if self.running.get(&key.profile) == Some(&key) || self.waiting.contains(&key) {
            return false;
        }
        self.waiting.push_back(key);
        true
    }

    /// The next job that may start now (oldest first, its profile idle, a slot free); it
    /// counts as running until [`Queue::finish`].
    pub fn start_next(&mut self) -> Option<JobKey> {
        if self.running.len() >= self.max {
            return None;
        }
        let index = self
            .waiting
            .iter()
            .position(|k| !self.running.contains_key(&k.profile))?;
        let key = self.waiting.remove(index)?;
        self.running.insert(key.profile.clone(), key.clone());
        Some(key)
    }

    pub fn finish(&mut self, key: &JobKey) {
        if self.running.get(&key.profile) == Some(key) {
            self.running.remove(&key.profile);
        }
    }

    pub fn running(&self) -> usize {
        self.running.len()
    }

    #[cfg(test)]
    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }

    /// Forgets the waiting jobs (at shutdown: nothing new starts); returns them.
    pub fn drain_waiting(&mut self) -> Vec<JobKey> {
        self.waiting.drain(..).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::{JobKind, Zone};
    use chrono::TimeZone;

    fn at(h: u32, m: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 5, 1, h, m, s).unwrap()
    }

    fn key(profile: &str, kind: JobKind) -> JobKey {
        JobKey {
            profile: profile.into(),
            kind,
        }
    }

    fn planned(expr: &str, last: Option<DateTime<Utc>>, catch_up: CatchUp) -> Planned {
        Planned {
            key: key("app", JobKind::Backup),
            schedule: Schedule::parse(expr, Zone::named("UTC").unwrap()).unwrap(),
            jitter: Duration::ZERO,
            catch_up,
            last_success_start: last,
        }
    }

    fn no_jitter(_: Duration) -> Duration {
        Duration::ZERO
    }

    #[test]
    fn due_jobs_fire_once_and_are_planned_again() {
        let (mut s, decisions) = Scheduler::new(
            vec![planned("*/10 * * * *", Some(at(2, 55, 0)), CatchUp::Once)],
            at(2, 58, 0),
            &mut no_jitter,
        );
        assert_eq!(
            decisions,
            [Decision::Next {
                key: key("app", JobKind::Backup),
                next: at(3, 0, 0)
            }]
        );
        assert!(s.take_due(at(2, 59, 59), &mut no_jitter).is_empty());
        assert_eq!(s.take_due(at(3, 0, 0), &mut no_jitter).len(), 1);
        assert_eq!(s.next_due(), Some(at(3, 10, 0)));
        // Woken late, after three missed times: one run, then the next future time.
        assert_eq!(s.take_due(at(3, 41, 0), &mut no_jitter).len(), 1);
        assert_eq!(s.next_due(), Some(at(3, 50, 0)));
    }

    #[test]
    fn a_missed_run_is_caught_up_once_or_skipped_by_config() {
        // Daily at 03:00; the last success started yesterday at 03:00; the daemon comes back
        // at 04:00 today, so today's 03:00 was missed.
        let yesterday = at(3, 0, 0) - chrono::Duration::days(1);
        let (_, d) = Scheduler::new(
            vec![planned("0 3 * * *", Some(yesterday), CatchUp::Once)],
            at(4, 0, 0),
            &mut no_jitter,
        );
        assert_eq!(
            d,
            [Decision::CatchUp {
                key: key("app", JobKind::Backup),
                missed: Some(at(3, 0, 0))
            }]
        );
        let (_, d) = Scheduler::new(
            vec![planned("0 3 * * *", Some(yesterday), CatchUp::Skip)],
            at(4, 0, 0),
            &mut no_jitter,
        );
        assert!(matches!(d[0], Decision::Skipped { .. }), "{d:?}");
        // Back at 02:00 instead: nothing was missed.
        let (_, d) = Scheduler::new(
            vec![planned("0 3 * * *", Some(yesterday), CatchUp::Once)],
            at(2, 0, 0),
            &mut no_jitter,
        );
        assert!(matches!(d[0], Decision::Next { .. }), "{d:?}");
        // Never succeeded: run now.
        let (_, d) = Scheduler::new(
            vec![planned("0 3 * * *", None, CatchUp::Once)],
            at(2, 0, 0),
            &mut no_jitter,
        );
        assert!(
            matches!(d[0], Decision::CatchUp { missed: None, .. }),
            "{d:?}"
        );
    }

    #[test]
    fn jitter_delays_each_run() {
        let mut p = planned("0 * * * *", Some(at(1, 0, 0)), CatchUp::Once);
        p.jitter = Duration::from_secs(300);
        let mut jitter = |max: Duration| max / 2;
        let (mut s, _) = Scheduler::new(vec![p], at(1, 30, 0), &mut jitter);
        assert_eq!(s.next_due(), Some(at(2, 2, 30)));
        assert!(s.take_due(at(2, 0, 0), &mut jitter).is_empty());
        assert_eq!(s.take_due(at(2, 2, 30), &mut jitter).len(), 1);
        assert_eq!(s.next_due(), Some(at(3, 2, 30)));
    }

    #[test]
    fn queue_never_runs_a_profile_twice_and_bounds_concurrency() {
        let mut q = Queue::new(1);
        assert!(q.submit(key("a", JobKind::Backup)));
        assert!(q.submit(key("b", JobKind::Backup)));
        assert_eq!(q.start_next(), Some(key("a", JobKind::Backup)));
        // max_concurrent 1: b waits.
        assert_eq!(q.start_next(), None);
        // A tick of the running job is skipped; another job of the same profile waits.
        assert!(!q.submit(key("a", JobKind::Backup)));
        assert!(q.submit(key("a", JobKind::Check)));
        assert!(!q.submit(key("a", JobKind::Check)));
        q.finish(&key("a", JobKind::Backup));
        assert_eq!(q.start_next(), Some(key("b", JobKind::Backup)));
        q.finish(&key("b", JobKind::Backup));
        assert_eq!(q.start_next(), Some(key("a", JobKind::Check)));

        let mut q = Queue::new(2);
        q.submit(key("a", JobKind::Backup));
        q.submit(key("a", JobKind::Prune));
        q.submit(key("b", JobKind::Backup));
        assert_eq!(q.start_next(), Some(key("a", JobKind::Backup)));
        // a is busy: its prune waits and b starts beside it.
        assert_eq!(q.start_next(), Some(key("b", JobKind::Backup)));
        assert_eq!(q.running(), 2);
        assert_eq!(q.waiting(), 1);
        assert_eq!(q.drain_waiting(), [key("a", JobKind::Prune)]);
    }
}
