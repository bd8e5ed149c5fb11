//! `metrics.push_url`: after every run, its metrics go to a real Prometheus Pushgateway (Debian's
//! `prometheus-pushgateway`, with basic auth, on loopback), so a CronJob's last run is visible
//! after its pod is gone; a gateway that refuses or never answers costs a bounded wait and a
//! warning, never the run, and its password is never printed.

use std::collections::BTreeMap;

use crate::harness::{Sandbox, make_sqlite};
use crate::servers::{pushgateway, silent};

fn profiles(push: &str) -> String {
    format!(
        "metrics:
{push}
profiles:
  app:
    repository: local
    host: pod-app-0
    databases:
      - {{ name: app, type: sqlite, path: '{{dir}}/data/app.db' }}
"
    )
}

/// Every sample the Pushgateway serves whose name starts with `resticpilot_`, with its labels.
fn scrape() -> Vec<(String, BTreeMap<String, String>, f64)> {
    let gw = pushgateway();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(std::time::Duration::from_secs(10)))
        .build()
        .into();
    let auth = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", gw.user, gw.password))
    };
    let text = agent
        .get(format!("http://127.0.0.1:{}/metrics", gw.port))
        .header("Authorization", format!("Basic {auth}"))
        .call()
        .expect("scrape the Pushgateway")
        .body_mut()
        .read_to_string()
        .unwrap();
    let lines = text.lines().map(|l| Ok(l.to_string()));
    let scrape =
        prometheus_parse::Scrape::parse(lines).expect("the Pushgateway's exposition parses");
    scrape
        .samples
        .into_iter()
        .filter(|s| s.metric.starts_with("resticpilot_"))
        .map(|s| {
            let value = match s.value {
                prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Untyped(v) => v,
                other => panic!("unexpected sample {other:?}"),
            };
            let labels = s
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            (s.metric, labels, value)
        })
        .collect()
}

/// The value of `metric` in the group of `job`, host `pod-app-0`, profile `profile`.
fn value(
    samples: &[(String, BTreeMap<String, String>, f64)],
    metric: &str,
    job: &str,
    profile: &str,
) -> Option<f64> {
    samples
        .iter()
        .find(|(m, l, _)| {
            m == metric
                && l.get("job").map(String::as_str) == Some(job)
                && l.get("instance").map(String::as_str) == Some("pod-app-0")
                && l.get("profile").map(String::as_str) == Some(profile)
        })
        .map(|(_, _, v)| *v)
}

#[test]
fn each_run_replaces_its_jobs_group_on_the_pushgateway() {
    let gw = pushgateway();
    let sb = Sandbox::new();
    drop(make_sqlite(&sb.path("data/app.db"), 100));
    // A profile name no other test pushes: the gateway is shared by the tests.
    let text = profiles(&format!(
        "  push_url: http://{}:{}@127.0.0.1:{}/\n  push_timeout: 5s",
        gw.user, gw.password, gw.port
    ))
    .replace("  app:", "  pushed:");
    sb.config(&text);
    let run = sb.run(&["backup"]);
    run.assert_code(0);
    assert!(!run.all().contains(gw.password), "{}", run.all());

    let got = scrape();
    assert_eq!(
        value(&got, "resticpilot_last_run_success", "backup", "pushed"),
        Some(1.0),
        "{got:#?}"
    );
    let success = value(
        &got,
        "resticpilot_last_success_timestamp_seconds",
        "backup",
        "pushed",
    )
    .expect("last success pushed");
    assert!(success > 1.7e9, "{success}");
    assert_eq!(
        value(&got, "resticpilot_runs_total", "backup", "pushed"),
        Some(1.0)
    );
    assert!(
        value(
            &got,
            "resticpilot_backup_processed_bytes",
            "backup",
            "pushed"
        )
        .unwrap()
            > 0.0,
        "{got:#?}"
    );

    // The maintenance job pushes its own group: the backup's stays.
    sb.run(&["prune", "local"]).assert_code(0);
    let got = scrape();
    assert_eq!(
        value(&got, "resticpilot_last_run_success", "prune", "pushed"),
        Some(1.0),
        "{got:#?}"
    );
    assert_eq!(
        value(&got, "resticpilot_last_run_success", "backup", "pushed"),
        Some(1.0),
        "{got:#?}"
    );

    // A failed backup replaces the backup group: success 0, the last success kept.
    std::fs::remove_file(sb.path("data/app.db")).unwrap();
    sb.run(&["backup"]).assert_code(1);
    let got = scrape();
    assert_eq!(
        value(&got, "resticpilot_last_run_success", "backup", "pushed"),
        Some(0.0),
        "{got:#?}"
    );
    assert_eq!(
        value(
            &got,
            "resticpilot_last_success_timestamp_seconds",
            "backup",
            "pushed"
        ),
        Some(success)
    );
    assert_eq!(
        value(&got, "resticpilot_failures_total", "backup", "pushed"),
        Some(1.0)
    );
}

#[test]
fn a_refused_or_silent_pushgateway_costs_a_warning_never_the_run_nor_the_password() {
    let gw = pushgateway();
    let sb = Sandbox::new();
    drop(make_sqlite(&sb.path("data/app.db"), 100));
    // A wrong password: the gateway answers 401.
    sb.config(&profiles(&format!(
        "  push_url: http://{}:wrong-Secret-9e2b@127.0.0.1:{}",
        gw.user, gw.port
    )));
    let run = sb.run(&["backup"]);
    run.assert_code(0);
    assert!(
        run.stderr.contains(&format!(
            "cannot push metrics to the Pushgateway http://127.0.0.1:{}: it answered HTTP 401",
            gw.port
        )),
        "{}",
        run.stderr
    );
    assert!(!run.all().contains("wrong-Secret-9e2b"), "{}", run.all());

    // A gateway that accepts the connection and never answers: push_timeout bounds the wait.
    sb.config(&profiles(&format!(
        "  push_url: http://u:silent-Secret-1a@127.0.0.1:{}\n  push_timeout: 1s",
        silent().port
    )));
    let run = sb.run(&["backup"]);
    run.assert_code(0);
    assert!(
        run.stderr.contains(&format!(
            "cannot push metrics to the Pushgateway http://127.0.0.1:{} (push_timeout 1s)",
            silent().port
        )),
        "{}",
        run.stderr
    );
    assert!(!run.all().contains("silent-Secret-1a"), "{}", run.all());
    assert_eq!(sb.snapshots().len(), 2);
}

#[test]
fn a_push_url_that_is_not_http_is_a_config_error() {
    let sb = Sandbox::new();
    sb.config(&profiles("  push_url: pushgateway:9091"));
    let run = sb.run(&["validate"]);
    run.assert_code(2);
    assert!(
        run.stderr
            .contains("metrics.push_url \"pushgateway:9091\" must be an http:// or https:// URL"),
        "{}",
        run.stderr
    );
    sb.config(&profiles("  push_url: http://u:pw-Secret-77@gw:9091/?x=1"));
    let run = sb.run(&["validate"]);
    run.assert_code(2);
    assert!(
        run.stderr.contains("no query or fragment"),
        "{}",
        run.stderr
    );
    assert!(!run.all().contains("pw-Secret-77"), "{}", run.all());
    sb.config(&profiles("  push_timeout: 5s"));
    let run = sb.run(&["validate"]);
    run.assert_code(2);
    assert!(
        run.stderr
            .contains("metrics.push_timeout needs metrics.push_url"),
        "{}",
        run.stderr
    );
}
