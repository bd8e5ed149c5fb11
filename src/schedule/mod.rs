//! When jobs run: cron expressions (parsed by croner) in a time zone, spread by jitter, caught
//! up after downtime, and queued so one profile never runs twice at once. Pure logic over an
//! injected clock: nothing here sleeps or starts work, so it is tested without waiting.

mod plan;

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Local, Utc};
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use serde::{Deserialize, Serialize};

pub use plan::{Decision, Planned, Queue, Scheduler};

/// The kinds of job the daemon runs for a profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobKind {
    Backup,
    Check,
    Prune,
    Verify,
}

impl JobKind {
    pub const ALL: [JobKind; 4] = [
        JobKind::Backup,
        JobKind::Check,
        JobKind::Prune,
        JobKind::Verify,
    ];

    pub fn name(self) -> &'static str {
        match self {
            JobKind::Backup => "backup",
            JobKind::Check => "check",
            JobKind::Prune => "prune",
            JobKind::Verify => "verify",
        }
    }

    /// The config key that schedules this job.
    pub fn schedule_key(self) -> &'static str {
        match self {
            JobKind::Backup => "schedule",
            JobKind::Check => "check_schedule",
            JobKind::Prune => "prune_schedule",
            JobKind::Verify => "verify_schedule",
        }
    }
}

impl fmt::Display for JobKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One job of one profile.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct JobKey {
    pub profile: String,
    pub kind: JobKind,
}

impl fmt::Display for JobKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.profile, self.kind)
    }
}

/// The current time. The daemon uses the system clock; tests pass fixed times.
pub trait Clock {
    fn now(&self) -> DateTime<Utc>;
}

pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// The time zone schedules are read in.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Zone {
    Named(chrono_tz::Tz),
    /// The process's zone: `TZ`, else /etc/localtime, else UTC.
    Local,
}

impl Zone {
    /// The IANA zone called `name` ("Europe/Berlin", "UTC").
    ///
    /// Fails with a message naming the zone when it is unknown.
    pub fn named(name: &str) -> Result<Zone, String> {
        name.parse::<chrono_tz::Tz>().map(Zone::Named).map_err(|_| {
            format!("timezone {name:?} is not an IANA time zone name such as Europe/Berlin or UTC")
        })
    }

    /// `timezone` when set, else the local zone.
    pub fn from_config(timezone: Option<&str>) -> Zone {
        timezone
            .and_then(|name| Zone::named(name).ok())
            .unwrap_or(Zone::Local)
    }
}

impl fmt::Display for Zone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Zone::Named(tz) => write!(f, "{}", tz.name()),
            Zone::Local => match std::env::var("TZ") {
                Ok(tz) if !tz.is_empty() => write!(f, "local time (TZ={tz})"),
                _ => f.write_str("local time"),
            },
        }
    }
}

/// A cron schedule in a time zone.
#[derive(Debug, Clone)]
pub struct Schedule {
    cron: Cron,
    zone: Zone,
}

fn parser() -> CronParser {
    CronParser::builder()
        .seconds(Seconds::Optional)
        .year(Year::Disallowed)
        .build()
}

/// Checks a cron expression: 5 fields, or 6 with seconds first; and it must ever match.
///
/// Fails with a message saying what is wrong.
pub fn check_expression(expression: &str) -> Result<(), String> {
    Schedule::parse(expression, Zone::Named(chrono_tz::UTC)).and_then(|s| {
        s.next_after(Utc::now())
            .map(|_| ())
            .ok_or_else(|| "this cron expression never matches a date".to_string())
    })
}

impl Schedule {
    /// Parses `expression` (5 fields, or 6 with seconds first; `@daily` and friends too).
    ///
    /// Fails with croner's reason, or the field count.
    pub fn parse(expression: &str, zone: Zone) -> Result<Schedule, String> {
        let fields = expression.split_whitespace().count();
        if !expression.trim_start().starts_with('@') && fields != 5 && fields != 6 {
            return Err(format!(
                "a cron expression has 5 fields (or 6 with seconds first), found {fields}"
            ));
        }
        let cron = parser()
            .parse(expression)
            .map_err(|e| explain(expression, &e.to_string()))?;
        Ok(Schedule { cron, zone })
    }

    /// The first time strictly after `t` that the schedule matches, or `None` if it never
    /// matches again.
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self.zone {
            Zone::Named(tz) => self
                .cron
                .find_next_occurrence(&t.with_timezone(&tz), false)
                .ok()
                .map(|d| d.with_timezone(&Utc)),
            Zone::Local => self
                .cron
                .find_next_occurrence(&t.with_timezone(&Local), false)
                .ok()
                .map(|d| d.with_timezone(&Utc)),
        }
    }

    /// The longest gap between two runs over the next few dozen runs after `from`: how long
    /// a healthy profile may go without a run ("0 3 * * 1-5" gives three days).
    pub fn period(&self, from: DateTime<Utc>) -> Option<Duration> {
        let mut longest = Duration::ZERO;
        let mut previous = self.next_after(from)?;
        for _ in 0..48 {
            let Some(next) = self.next_after(previous) else {
                break;
            };
            longest = longest.max((next - previous).to_std().unwrap_or_default());
            previous = next;
        }
        (longest > Duration::ZERO).then_some(longest)
    }
}

/// croner's message, with the field at fault named: croner says "Number out of bounds" but
/// not where, so each field is tried alone (replaced by `*`) to find the one that fails.
fn explain(expression: &str, message: &str) -> String {
    let message = message
        .strip_prefix("Component error: ")
        .or_else(|| message.strip_prefix("Invalid pattern: "))
        .unwrap_or(message)
        .trim_end_matches('.');
    let fields: Vec<&str> = expression.split_whitespace().collect();
    let names: &[(&str, &str)] = if fields.len() == 6 {
        &[
            ("second", "0-59"),
            ("minute", "0-59"),
            ("hour", "0-23"),
            ("day-of-month", "1-31"),
            ("month", "1-12 or JAN-DEC"),
            ("day-of-week", "0-7 or SUN-SAT"),
        ]
    } else {
        &[
            ("minute", "0-59"),
            ("hour", "0-23"),
            ("day-of-month", "1-31"),
            ("month", "1-12 or JAN-DEC"),
            ("day-of-week", "0-7 or SUN-SAT"),
        ]
    };
    if fields.len() == names.len() {
        for (i, (name, range)) in names.iter().enumerate() {
            let mut trial = fields.clone();
            trial[i] = "*";
            if parser().parse(&trial.join(" ")).is_ok() {
                return format!(
                    "{name} field {:?}: {} (allowed: {range})",
                    fields[i],
                    message.to_lowercase()
                );
            }
        }
    }
    message.to_string()
}

/// A random delay in `[0, max)`, from the standard library's per-process random keys (no
/// cryptographic quality needed to spread load).
pub fn random_jitter(max: Duration) -> Duration {
    use std::hash::{BuildHasher, Hasher};
    if max.is_zero() {
        return Duration::ZERO;
    }
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    let fraction = (h.finish() >> 11) as f64 / (1u64 << 53) as f64;
    max.mul_f64(fraction)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap()
    }

    #[test]
    fn five_and_six_fields_with_seconds_first() {
        let daily = Schedule::parse("0 3 * * *", Zone::named("UTC").unwrap()).unwrap();
        assert_eq!(
            daily.next_after(utc(2024, 5, 1, 3, 0, 0)),
            Some(utc(2024, 5, 2, 3, 0, 0)),
            "strictly after"
        );
        let every2s = Schedule::parse("*/2 * * * * *", Zone::named("UTC").unwrap()).unwrap();
        assert_eq!(
            every2s.next_after(utc(2024, 5, 1, 3, 0, 1)),
            Some(utc(2024, 5, 1, 3, 0, 2))
        );
        assert_eq!(
            every2s.period(utc(2024, 5, 1, 0, 0, 0)),
            Some(Duration::from_secs(2))
        );
    }

    #[test]
    fn bad_expressions_say_why() {
        let err = check_expression("0 3 * *").unwrap_err();
        assert!(err.contains("5 fields"), "{err}");
        let err = check_expression("0 3 * * * * *").unwrap_err();
        assert!(err.contains("found 7"), "{err}");
        let err = check_expression("0 25 * * *").unwrap_err();
        assert_eq!(
            err,
            "hour field \"25\": number out of bounds (allowed: 0-23)"
        );
        let err = check_expression("*/5 0 3 * * FOO").unwrap_err();
        assert!(err.starts_with("day-of-week field \"FOO\""), "{err}");
        let err = check_expression("0 0 30 2 *").unwrap_err();
        assert!(err.contains("never matches"), "{err}");
        check_expression("@daily").unwrap();
        check_expression("30 2 * * mon-fri").unwrap();
    }

    #[test]
    fn time_zone_moves_the_run_and_follows_daylight_saving() {
        let berlin = Zone::named("Europe/Berlin").unwrap();
        let s = Schedule::parse("0 3 * * *", berlin).unwrap();
        // Winter: UTC+1; summer: UTC+2.
        assert_eq!(
            s.next_after(utc(2024, 1, 10, 12, 0, 0)),
            Some(utc(2024, 1, 11, 2, 0, 0))
        );
        assert_eq!(
            s.next_after(utc(2024, 7, 10, 12, 0, 0)),
            Some(utc(2024, 7, 11, 1, 0, 0))
        );
        assert!(Zone::named("Mars/Olympus").is_err());
    }

    #[test]
    fn period_is_the_longest_gap() {
        let weekdays = Schedule::parse("0 3 * * 1-5", Zone::named("UTC").unwrap()).unwrap();
        assert_eq!(
            weekdays.period(utc(2024, 5, 1, 0, 0, 0)),
            Some(Duration::from_secs(3 * 86400))
        );
    }

    #[test]
    fn jitter_stays_in_range() {
        assert_eq!(random_jitter(Duration::ZERO), Duration::ZERO);
        for _ in 0..100 {
            assert!(random_jitter(Duration::from_secs(60)) < Duration::from_secs(60));
        }
    }
}
