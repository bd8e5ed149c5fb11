//! Native notification channels: ntfy (a minimal HTTP receiver standing in for an ntfy server,
//! named a fake: no ntfy server is packaged for Debian or PyPI) and email through a real SMTP
//! server (aiosmtpd) on loopback, each told of the events it asks for, in words a person reads.

use std::sync::{Arc, Mutex};

use crate::harness::{Sandbox, make_sqlite};
use crate::servers;

/// One request the fake ntfy server got: path, headers (lower-case names), body.
#[derive(Debug, Clone)]
struct Posted {
    path: String,
    headers: Vec<(String, String)>,
    body: String,
}

impl Posted {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A fake ntfy server: records each POST and answers 200 as ntfy does.
struct FakeNtfy {
    server: Arc<tiny_http::Server>,
    got: Arc<Mutex<Vec<Posted>>>,
}

impl FakeNtfy {
    fn start() -> FakeNtfy {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").unwrap());
        let got = Arc::new(Mutex::new(Vec::new()));
        let (s, g) = (server.clone(), got.clone());
        std::thread::spawn(move || {
            for mut request in s.incoming_requests() {
                let mut body = String::new();
                let _ = request.as_reader().read_to_string(&mut body);
                let headers = request
                    .headers()
                    .iter()
                    .map(|h| {
                        (
                            h.field.as_str().as_str().to_ascii_lowercase(),
                            h.value.to_string(),
                        )
                    })
                    .collect();
                g.lock().unwrap().push(Posted {
                    path: request.url().to_string(),
                    headers,
                    body,
                });
                let _ = request.respond(tiny_http::Response::from_string("{\"id\":\"x\"}"));
            }
        });
        FakeNtfy { server, got }
    }

    fn url(&self) -> String {
        format!("http://{}", self.server.server_addr().to_ip().unwrap())
    }

    fn posted(&self) -> Vec<Posted> {
        self.got.lock().unwrap().clone()
    }
}

impl Drop for FakeNtfy {
    fn drop(&mut self) {
        self.server.unblock();
    }
}

fn app(notify: &str) -> String {
    format!(
        "profiles:
  app:
    repository: local
    host: test-host
    databases:
      - {{ name: app, type: sqlite, path: '{{dir}}/data/app.db' }}
    notify:
{notify}"
    )
}

#[test]
fn ntfy_gets_each_event_with_its_priority_and_the_token_from_a_file() {
    let ntfy = FakeNtfy::start();
    let sb = Sandbox::new();
    drop(make_sqlite(&sb.path("data/app.db"), 10));
    std::fs::write(sb.path("ntfy-token"), "tk_secrettokenvalue123\n").unwrap();
    sb.config(&app(&format!(
        "      ntfy:
        server: {}
        topic: backups-test
        token_file: ntfy-token
        events: [start, success, warning, failure]
",
        ntfy.url()
    )));
    sb.run(&["validate"]).assert_code(0);
    let run = sb.run(&["-v", "backup"]);
    run.assert_code(0);
    assert!(
        !run.all().contains("tk_secrettokenvalue123"),
        "{}",
        run.all()
    );
    let got = ntfy.posted();
    assert_eq!(got.len(), 2, "{got:#?}");
    for p in &got {
        assert_eq!(p.path, "/backups-test");
        assert_eq!(
            p.header("authorization"),
            Some("Bearer tk_secrettokenvalue123")
        );
    }
    assert_eq!(got[0].header("priority"), Some("2"));
    assert_eq!(
        got[0].header("title"),
        Some("[resticpilot] backup of app on test-host: started")
    );
    assert_eq!(got[1].header("priority"), Some("3"));
    assert_eq!(
        got[1].header("title"),
        Some("[resticpilot] backup of app on test-host: success")
    );
    assert!(
        got[1]
            .body
            .starts_with("The backup of profile app on host test-host succeeded."),
        "{}",
        got[1].body
    );
    assert!(got[1].body.contains("Snapshot: "), "{}", got[1].body);

    std::fs::remove_file(sb.path("data/app.db")).unwrap();
    sb.run(&["backup"]).assert_code(1);
    let got = ntfy.posted();
    assert_eq!(got.len(), 4, "{got:#?}");
    assert_eq!(got[3].header("priority"), Some("5"));
    assert!(got[3].header("title").unwrap().ends_with(": FAILED"));
    assert!(
        got[3].body.contains("FAILED.")
            && got[3].body.contains("Error: dump of database app failed"),
        "{}",
        got[3].body
    );
}

#[test]
fn ntfy_by_default_tells_only_of_warnings_and_failures() {
    let ntfy = FakeNtfy::start();
    let sb = Sandbox::new();
    drop(make_sqlite(&sb.path("data/app.db"), 10));
    sb.config(&app(&format!(
        "      ntfy: {{ server: '{}', topic: t1 }}\n",
        ntfy.url()
    )));
    sb.run(&["backup"]).assert_code(0);
    assert!(ntfy.posted().is_empty(), "{:#?}", ntfy.posted());
    std::fs::remove_file(sb.path("data/app.db")).unwrap();
    sb.run(&["backup"]).assert_code(1);
    assert_eq!(ntfy.posted().len(), 1);
}

#[test]
fn email_goes_through_a_real_smtp_server_with_auth_from_a_file() {
    let smtp = servers::smtp(Some(("backup-user", "smtp-pass-secret")));
    let sb = Sandbox::new();
    drop(make_sqlite(&sb.path("data/app.db"), 10));
    std::fs::write(sb.path("smtp-password"), "smtp-pass-secret\n").unwrap();
    sb.config(&app(&format!(
        "      email:
        smtp_host: 127.0.0.1
        smtp_port: {}
        tls: none
        username: backup-user
        password_file: smtp-password
        from: 'Backups <backup@example.org>'
        to: [ops@example.org, oncall@example.org]
        events: [success, failure]
",
        smtp.port
    )));
    sb.run(&["validate"]).assert_code(0);
    let run = sb.run(&["-v", "backup"]);
    run.assert_code(0);
    assert!(!run.all().contains("smtp-pass-secret"), "{}", run.all());
    let mail = smtp.messages();
    assert_eq!(mail.len(), 1, "{mail:#?}");
    let m = &mail[0];
    assert!(m.contains("X-Envelope-From: backup@example.org"), "{m}");
    assert!(
        m.contains("X-Envelope-To: ops@example.org,oncall@example.org"),
        "{m}"
    );
    assert!(m.contains("X-Authenticated: True"), "{m}");
    assert!(
        m.contains("Subject: [resticpilot] backup of app on test-host: success"),
        "{m}"
    );
    assert!(
        m.contains("The backup of profile app on host test-host succeeded."),
        "{m}"
    );

    // The wrong password: the server refuses, the run is not failed by it, the log says so
    // without the password.
    std::fs::write(sb.path("smtp-password"), "not-the-password\n").unwrap();
    let run = sb.run(&["backup"]);
    run.assert_code(0);
    assert_eq!(smtp.messages().len(), 1);
    assert!(
        run.stderr.contains("email success message for app"),
        "{}",
        run.stderr
    );
    assert!(!run.all().contains("not-the-password"), "{}", run.all());
}

#[test]
fn email_to_a_server_that_never_answers_gives_up_within_its_timeout() {
    // A listener that accepts and never speaks: the SMTP greeting never comes.
    let silent = servers::silent();
    let sb = Sandbox::new();
    drop(make_sqlite(&sb.path("data/app.db"), 10));
    sb.config(&app(&format!(
        "      email:
        smtp_host: 127.0.0.1
        smtp_port: {}
        tls: none
        timeout: 1s
        from: backup@example.org
        to: [ops@example.org]
        events: [success]
",
        silent.port
    )));
    let run = sb.run(&["backup"]);
    run.assert_code(0);
    assert!(
        run.stderr
            .contains("email success message for app to smtp 127.0.0.1"),
        "{}",
        run.stderr
    );
}

#[test]
fn channel_settings_are_checked_with_their_position() {
    let sb = Sandbox::new();
    sb.config(&app(
        "      ntfy: { topic: 'bad topic', events: [start, sometimes] }
      email:
        smtp_host: mail.example.org
        tls: maybe
        username: u
        from: not-an-address
        to: []
",
    ));
    let out = sb.run(&["validate"]);
    assert_eq!(out.code, 2, "{}", out.all());
    for expected in [
        "ntfy.topic \"bad topic\" may use only letters",
        "ntfy.events \"sometimes\" is not one of start, success, warning, failure",
        "email.tls \"maybe\" is not one of starttls, tls, none",
        "email: username and password_file go together",
        "email.from \"not-an-address\" is not an email address",
        "email.to is empty",
    ] {
        assert!(out.stderr.contains(expected), "{expected}: {}", out.stderr);
    }
}
