//! Notifications: healthchecks.io pings (start, success, fail with the error as body) for
//! backups, a JSON POST to a webhook on failure (and on success when asked) of any job, and
//! messages a person reads (ntfy, email over SMTP) on the events each channel asks for.
//!
//! Sending happens on one background thread, in order (a start ping never overtakes its
//! success ping), each delivery tried a few times with short timeouts: a slow or dead receiver
//! never blocks or fails a run. Before the process exits, [`flush`] waits a bounded time for
//! what is still queued. URLs are logged without their path or credentials: a ping URL or
//! webhook path is itself a secret.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Sender};
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::status::RunResult;
use crate::config::{Email, Event, Profile, SmtpTls, UrlSource};
use crate::restic::SnapshotRef;
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
    pub snapshot: Option<&'a SnapshotRef>,
    pub warnings: &'a [String],
}

/// The webhook's JSON body (see the README's "JSON outputs").
#[derive(Serialize)]
struct WebhookBody<'a> {
    version: u32,
    profile: &'a str,
    host: &'a str,
    job: JobKind,
    result: RunResult,
    error: Option<&'a str>,
    started: String,
    ended: String,
    duration_seconds: f64,
    snapshot: Option<&'a SnapshotRef>,
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
            target: Target::http(
                format!("{}/start", base.trim_end_matches('/')),
                "text/plain",
            ),
            body: String::new(),
        });
    }
    let message = Message {
        event: Event::Start,
        subject: format!(
            "[resticpilot] backup of {} on {}: started",
            profile.name, profile.host
        ),
        body: format!(
            "The backup of profile {} on host {} started at {}.\n",
            profile.name,
            profile.host,
            Utc::now().format("%Y-%m-%d %H:%M:%S UTC")
        ),
    };
    personal(profile, &message);
}

/// A message for a person: ntfy's title and body, an email's subject and body.
struct Message {
    event: Event,
    subject: String,
    body: String,
}

/// Sends `message` to the ntfy and email channels of `profile` that asked for its event.
fn personal(profile: &Profile, message: &Message) {
    let n = &profile.notify;
    if let Some(ntfy) = n
        .ntfy
        .as_ref()
        .filter(|x| x.events.contains(&message.event))
    {
        let (priority, tags) = match message.event {
            Event::Start => ("2", "hourglass_flowing_sand"),
            Event::Success => ("3", "white_check_mark"),
            Event::Warning => ("4", "warning"),
            Event::Failure => ("5", "rotating_light"),
        };
        let headers = vec![
            ("Title", header_value(&message.subject)),
            ("Priority", priority.to_string()),
            ("Tags", tags.to_string()),
        ];
        send(Delivery {
            what: format!("ntfy {} message for {}", message.event.name(), profile.name),
            target: Target::Http {
                url: format!("{}/{}", ntfy.server, ntfy.topic),
                content_type: "text/plain; charset=utf-8",
                headers,
                token_file: ntfy.token_file.clone(),
            },
            body: truncate(message.body.clone()),
        });
    }
    if let Some(email) = n
        .email
        .as_ref()
        .filter(|x| x.events.contains(&message.event))
    {
        send(Delivery {
            what: format!(
                "email {} message for {}",
                message.event.name(),
                profile.name
            ),
            target: Target::Email {
                email: Box::new(email.clone()),
                subject: message.subject.clone(),
            },
            body: truncate(message.body.clone()),
        });
    }
}

/// `text` as one line of printable ASCII: an HTTP header value.
fn header_value(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect()
}

/// The readable message of a finished run.
fn finished_message(run: &Finished) -> Message {
    let event = match run.result {
        RunResult::Success => Event::Success,
        RunResult::Warnings => Event::Warning,
        RunResult::Failed | RunResult::Interrupted => Event::Failure,
    };
    let what = format!(
        "{} of {} on {}",
        run.job, run.profile.name, run.profile.host
    );
    let outcome = match run.result {
        RunResult::Success => "succeeded",
        RunResult::Warnings => "finished with warnings",
        RunResult::Failed => "FAILED",
        RunResult::Interrupted => "was interrupted",
    };
    let mut body = format!(
        "The {} of profile {} on host {} {outcome}.\n\n",
        run.job, run.profile.name, run.profile.host
    );
    if let Some(error) = run.error {
        body.push_str(&format!("Error: {error}\n\n"));
    }
    if !run.warnings.is_empty() {
        body.push_str("Warnings:\n");
        for w in run.warnings {
            body.push_str(&format!("  - {w}\n"));
        }
        body.push('\n');
    }
    if let Some(s) = run.snapshot {
        body.push_str(&format!("Snapshot: {} ({})\n", s.short_id, s.id));
    }
    body.push_str(&format!(
        "Started:  {}\nEnded:    {}\nDuration: {:.1}s\n",
        run.started.format("%Y-%m-%d %H:%M:%S UTC"),
        run.ended.format("%Y-%m-%d %H:%M:%S UTC"),
        run.duration.as_secs_f64()
    ));
    Message {
        event,
        subject: format!(
            "[resticpilot] {what}: {}",
            match run.result {
                RunResult::Success => "success",
                RunResult::Warnings => "warnings",
                RunResult::Failed => "FAILED",
                RunResult::Interrupted => "interrupted",
            }
        ),
        body,
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
            if let Some(s) = run.snapshot {
                body.push_str(&format!(": snapshot {}", s.short_id));
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
            target: Target::http(url, "text/plain"),
            body: truncate(body),
        });
    }
    if (!ok || n.webhook_on_success)
        && let Some(url) = url(run.profile, n.webhook.as_ref(), "webhook")
    {
        let body = WebhookBody {
            version: crate::report::JSON_VERSION,
            profile: &run.profile.name,
            host: &run.profile.host,
            job: run.job,
            result: run.result,
            error: run.error,
            started: run.started.to_rfc3339(),
            ended: run.ended.to_rfc3339(),
            duration_seconds: super::seconds(run.duration),
            snapshot: run.snapshot,
            warnings: run.warnings,
        };
        send(Delivery {
            what: format!("webhook for {} {}", run.profile.name, run.job),
            target: Target::http(url, "application/json"),
            body: serde_json::to_string(&body).expect("webhook body serialises"),
        });
    }
    personal(run.profile, &finished_message(run));
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

pub use crate::config::mask_url;

struct Delivery {
    what: String,
    target: Target,
    body: String,
}

enum Target {
    Http {
        url: String,
        content_type: &'static str,
        headers: Vec<(&'static str, String)>,
        /// Sent as `Authorization: Bearer <token>`, read when the request is made.
        token_file: Option<PathBuf>,
    },
    Email {
        email: Box<Email>,
        subject: String,
    },
}

impl Target {
    fn http(url: String, content_type: &'static str) -> Target {
        Target::Http {
            url,
            content_type,
            headers: Vec::new(),
            token_file: None,
        }
    }
}

/// The first line of a secret file, or why it cannot be had (naming the file, never its
/// contents).
fn read_secret(path: &Path, key: &str) -> Result<String, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|err| format!("{key} {} cannot be read: {err}", path.display()))?;
    let line = text.lines().next().unwrap_or_default().trim().to_string();
    if line.is_empty() {
        return Err(format!("{key} {} is empty", path.display()));
    }
    Ok(line)
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

/// Sends one notification, retrying briefly on errors, 5xx/429 answers and transient SMTP
/// errors.
fn deliver(agent: &ureq::Agent, d: &Delivery) {
    let target = match &d.target {
        Target::Http { url, .. } => mask_url(url),
        Target::Email { email, .. } => format!("smtp {}:{}", email.smtp_host, email.smtp_port),
    };
    let mut attempt = 0;
    loop {
        let (retry, problem) = match attempt_once(agent, d) {
            Ok(()) => {
                tracing::debug!("{} sent to {target}", d.what);
                return;
            }
            Err(failure) => failure,
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

/// One try; on failure, whether to retry and what went wrong.
fn attempt_once(agent: &ureq::Agent, d: &Delivery) -> Result<(), (bool, String)> {
    match &d.target {
        Target::Http {
            url,
            content_type,
            headers,
            token_file,
        } => {
            let mut request = agent.post(url).header("Content-Type", *content_type);
            for (name, value) in headers {
                request = request.header(*name, value);
            }
            if let Some(path) = token_file {
                let token = read_secret(path, "token_file").map_err(|why| (false, why))?;
                request = request.header("Authorization", format!("Bearer {token}"));
            }
            match request.send(d.body.as_str()) {
                Ok(response) => {
                    let code = response.status().as_u16();
                    if (200..300).contains(&code) {
                        Ok(())
                    } else {
                        Err((code >= 500 || code == 429, format!("answered HTTP {code}")))
                    }
                }
                Err(err) => Err((true, err.to_string())),
            }
        }
        Target::Email { email, subject } => send_email(email, subject, &d.body),
    }
}

/// Sends one email through the configured SMTP server, every wait bounded by its timeout.
fn send_email(email: &Email, subject: &str, body: &str) -> Result<(), (bool, String)> {
    use lettre::Transport;
    use lettre::transport::smtp::authentication::Credentials;
    use lettre::transport::smtp::client::{Tls, TlsParameters};

    let bad = |why: String| (false, why);
    let mut builder = lettre::Message::builder()
        .from(email.from.parse().map_err(|e| bad(format!("from: {e}")))?)
        .subject(subject)
        .header(lettre::message::header::ContentType::TEXT_PLAIN);
    for to in &email.to {
        builder = builder.to(to.parse().map_err(|e| bad(format!("to {to}: {e}")))?);
    }
    let message = builder
        .body(body.to_string())
        .map_err(|e| bad(format!("cannot build the message: {e}")))?;
    let tls = || {
        TlsParameters::new(email.smtp_host.clone())
            .map_err(|e| bad(format!("TLS set-up for {}: {e}", email.smtp_host)))
    };
    let mut transport = lettre::SmtpTransport::builder_dangerous(&email.smtp_host)
        .port(email.smtp_port)
        .timeout(Some(email.timeout))
        .tls(match email.tls {
            SmtpTls::Starttls => Tls::Required(tls()?),
            SmtpTls::Tls => Tls::Wrapper(tls()?),
            SmtpTls::None => Tls::None,
        });
    if let (Some(user), Some(path)) = (&email.username, &email.password_file) {
        let password = read_secret(path, "password_file").map_err(bad)?;
        transport = transport.credentials(Credentials::new(user.clone(), password));
    }
    match transport.build().send(&message) {
        Ok(_) => Ok(()),
        // 4xx and connection trouble may pass; 5xx (bad credentials, refused recipient) won't.
        Err(err) => Err((!err.is_permanent(), err.to_string())),
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
