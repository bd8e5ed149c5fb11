//! Notifications: healthchecks.io pings (start, success, fail with the error as body) for
//! backups, and a JSON POST to a webhook on failure (and on success when asked) of any job.
//!
//! Sending happens on one background thread, in order (a start ping never overtakes its
//! success ping), each delivery tried a few times with short timeouts: a slow or dead receiver
//! never blocks or fails a run. Before the process exits, [`flush`] waits a bounded time for
//! what is still queued. URLs are logged without their path or credentials: a ping URL or
//! webhook path is itself a secret.

use std::sync::mpsc::{self, Sender};
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::status::RunResult;
use crate::config::{Profile, UrlSource};
use crate::schedule::JobKind;

/// Tries per delivery, and the pause before each retry.
const RETRY_PAUSES: [Duration; 2] = [Duration::from_secs(1), Duration::from_secs(3)];
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// healthchecks.io keeps the first 100 kB of a ping body; an error needs far less.
const MAX_BODY: usize = 10_000;

/// A finished run, as the notifications tell it.
pub struct Finished<'a> {
    pub profile: &'a Profile,
    pub job: JobKind,
    pub result: RunResult,
    pub error: Option<&'a str>,
    pub started: DateTime<Utc>,
    pub ended: DateTime<Utc>,
    pub duration: Duration,
    pub snapshot_id: Option<&'a str>,
    pub warnings: &'a [String],
}

/// The webhook's JSON body.
#[derive(Serialize)]
struct WebhookBody<'a> {
    profile: &'a str,
    host: &'a str,
    job: JobKind,
    status: RunResult,
    error: Option<&'a str>,
    started: String,
    ended: String,
    duration_seconds: f64,
    snapshot_id: Option<&'a str>,
    warnings: &'a [String],
}

/// Pings healthchecks' `/start` for a backup of `profile`.
pub fn started(profile: &Profile) {
    if let Some(base) = url(
        profile,
        profile.notify.healthchecks.as_ref(),
        "healthchecks",
    ) {
        send(Delivery {
            what: format!("healthchecks start ping for {}", profile.name),
            url: format!("{}/start", base.trim_end_matches('/')),
            content_type: "text/plain",
            body: String::new(),
        });
    }
}

/// Reports a finished run: healthchecks success or `/fail` (backups), and the webhook.
pub fn finished(run: &Finished) {
    let n = &run.profile.notify;
    let ok = run.result.is_ok();
    if run.job == JobKind::Backup
        && let Some(base) = url(run.profile, n.healthchecks.as_ref(), "healthchecks")
    {
        let base = base.trim_end_matches('/');
        let (url, body) = if ok {
            let mut body = format!(
                "backup of {} finished in {:.1}s",
                run.profile.name,
                run.duration.as_secs_f64()
            );
            if let Some(id) = run.snapshot_id {
                body.push_str(&format!(": snapshot {id}"));
            }
            for w in run.warnings {
                body.push_str(&format!("\nwarning: {w}"));
            }
            (base.to_string(), body)
        } else {
            (
                format!("{base}/fail"),
                run.error.unwrap_or("failed").to_string(),
            )
        };
        send(Delivery {
            what: format!(
                "healthchecks {} ping for {}",
                if ok { "success" } else { "fail" },
                run.profile.name
            ),
            url,
            content_type: "text/plain",
            body: truncate(body),
        });
    }
    if (!ok || n.webhook_on_success)
        && let Some(url) = url(run.profile, n.webhook.as_ref(), "webhook")
    {
        let body = WebhookBody {
            profile: &run.profile.name,
            host: &run.profile.host,
            job: run.job,
            status: run.result,
            error: run.error,
            started: run.started.to_rfc3339(),
            ended: run.ended.to_rfc3339(),
            duration_seconds: super::seconds(run.duration),
            snapshot_id: run.snapshot_id,
            warnings: run.warnings,
        };
        send(Delivery {
            what: format!("webhook for {} {}", run.profile.name, run.job),
            url,
            content_type: "application/json",
            body: serde_json::to_string(&body).expect("webhook body serialises"),
        });
    }
}

/// The URL of a channel, read from its `url_file` when it has one; a file that cannot be read
/// is logged (by path, never by content) and the notification skipped.
fn url(profile: &Profile, source: Option<&UrlSource>, channel: &str) -> Option<String> {
    match source?.read() {
        Ok(url) => Some(url),
        Err(why) => {
            tracing::warn!(
                "{channel} notification for {} not sent: {why}",
                profile.name
            );
            None
        }
    }
}

fn truncate(mut s: String) -> String {
    if s.len() > MAX_BODY {
        let mut cut = MAX_BODY;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push_str(" [...]");
    }
    s
}

/// `https://hc-ping.com/***`: scheme and host only, for logs.
pub fn mask_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "***".into();
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = authority.rsplit('@').next().unwrap_or_default();
    if rest.len() > authority.len() || authority.contains('@') {
        format!("{scheme}://{host}/***")
    } else {
        format!("{scheme}://{host}")
    }
}

struct Delivery {
    what: String,
    url: String,
    content_type: &'static str,
    body: String,
}

struct Outbox {
    tx: Mutex<Sender<Delivery>>,
    pending: Mutex<usize>,
    idle: Condvar,
}

static OUTBOX: OnceLock<Outbox> = OnceLock::new();

fn outbox() -> &'static Outbox {
    OUTBOX.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Delivery>();
        std::thread::Builder::new()
            .name("notify".into())
            .spawn(move || {
                let agent = agent();
                for delivery in rx {
                    deliver(&agent, &delivery);
                    let outbox = OUTBOX.get().expect("set before the first send");
                    let mut pending = outbox.pending.lock().unwrap_or_else(|p| p.into_inner());
                    *pending -= 1;
                    outbox.idle.notify_all();
                }
            })
            .expect("spawn the notification thread");
        Outbox {
            tx: Mutex::new(tx),
            pending: Mutex::new(0),
            idle: Condvar::new(),
        }
    })
}

fn send(delivery: Delivery) {
    let outbox = outbox();
    *outbox.pending.lock().unwrap_or_else(|p| p.into_inner()) += 1;
    let sent = outbox
        .tx
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .send(delivery);
    if sent.is_err() {
        *outbox.pending.lock().unwrap_or_else(|p| p.into_inner()) -= 1;
    }
}

/// Waits up to `limit` for queued notifications to go out; returns how many are left.
pub fn flush(limit: Duration) -> usize {
    let Some(outbox) = OUTBOX.get() else {
        return 0;
    };
    let deadline = Instant::now() + limit;
    let mut pending = outbox.pending.lock().unwrap_or_else(|p| p.into_inner());
    while *pending > 0 {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            tracing::warn!("{} notifications not sent: giving up at exit", *pending);
            break;
        }
        pending = outbox
            .idle
            .wait_timeout(pending, left)
            .unwrap_or_else(|p| p.into_inner())
            .0;
    }
    *pending
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_connect(Some(CONNECT_TIMEOUT))
        .timeout_global(Some(REQUEST_TIMEOUT))
        .http_status_as_error(false)
        .user_agent(format!("resticpilot/{}", env!("CARGO_PKG_VERSION")))
        .build()
        .into()
}

/// Sends one notification, retrying briefly on errors and 5xx/429 answers.
fn deliver(agent: &ureq::Agent, d: &Delivery) {
    let target = mask_url(&d.url);
    let mut attempt = 0;
    loop {
        let result = agent
            .post(&d.url)
            .header("Content-Type", d.content_type)
            .send(d.body.as_str());
        let (retry, problem) = match result {
            Ok(response) => {
                let code = response.status().as_u16();
                if (200..300).contains(&code) {
                    tracing::debug!("{} sent to {target}", d.what);
                    return;
                }
                (code >= 500 || code == 429, format!("answered HTTP {code}"))
            }
            Err(err) => (true, err.to_string()),
        };
        match RETRY_PAUSES.get(attempt) {
            Some(pause) if retry => {
                tracing::debug!("{} to {target} {problem}; retrying in {pause:?}", d.what);
                std::thread::sleep(*pause);
                attempt += 1;
            }
            _ => {
                tracing::warn!("{} to {target} failed: {problem}", d.what);
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_logged_without_path_or_credentials() {
        assert_eq!(
            mask_url("https://hc-ping.com/5f3c8d2e-uuid"),
            "https://hc-ping.com/***"
        );
        assert_eq!(
            mask_url("https://user:secret@hooks.example.org:8443/services/T0/B0/XYZ?token=abc"),
            "https://hooks.example.org:8443/***"
        );
        assert_eq!(mask_url("http://127.0.0.1:9"), "http://127.0.0.1:9");
        assert_eq!(mask_url("nonsense"), "***");
    }

    #[test]
    fn long_bodies_are_cut_on_a_character_boundary() {
        let s = truncate("é".repeat(MAX_BODY));
        assert!(s.len() <= MAX_BODY + 6);
        assert!(s.ends_with(" [...]"));
    }
}
