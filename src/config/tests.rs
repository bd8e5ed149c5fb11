use super::*;
use crate::source::mysql::MysqlSource;
use crate::source::sqlite::{RestoreCheck, SqliteMethod, SqliteSource, SqliteVerify};
use std::collections::BTreeSet;

/// The SQLite settings behind `db`.
fn sqlite_of(db: &DatabaseSource) -> &SqliteSource {
    db.source
        .as_any()
        .downcast_ref()
        .unwrap_or_else(|| panic!("not sqlite: {db:?}"))
}

/// The MySQL settings behind `db`.
fn mysql_of(db: &DatabaseSource) -> &MysqlSource {
    db.source
        .as_any()
        .downcast_ref()
        .unwrap_or_else(|| panic!("not mysql: {db:?}"))
}

fn env(name: &str) -> Option<String> {
    match name {
        "DATA" => Some("/data".into()),
        _ => None,
    }
}

fn parse_text(text: &str) -> Result<Config, ConfigErrors> {
    parse(Path::new("/etc/rp/config.yaml"), text, &env, &|| {
        "box".into()
    })
}

fn errors(text: &str) -> Vec<String> {
    parse_text(text)
        .unwrap_err()
        .0
        .iter()
        .map(ToString::to_string)
        .collect()
}

const GOOD: &str = r#"
repositories:
  local:
    url: /srv/restic
    password_file: secrets/restic
    init: true
profiles:
  tracker:
    repository: local
    databases:
      - { name: tracker, type: sqlite, path: "${DATA}/tracker.db" }
      - name: main
        type: mysql
        host: mysql
        user: backup
        password_file: /run/secrets/db
        databases: [torrust]
    paths: [/data/etc]
    retention: { keep_daily: 7, prune: true }
    schedule: "0 3 * * *"
"#;

#[test]
fn resolves_defaults_env_and_relative_paths() {
    let c = parse_text(GOOD).unwrap();
    let p = &c.profiles["tracker"];
    assert_eq!(p.host, "box");
    assert_eq!(
        p.staging_dir,
        Path::new("/var/lib/resticpilot/staging/tracker")
    );
    assert_eq!(p.all_tags(), ["resticpilot", "profile:tracker"]);
    let s = sqlite_of(&p.databases[0]);
    assert_eq!(s.path, Path::new("/data/tracker.db"));
    assert_eq!(s.method, SqliteMethod::Online);
    assert_eq!(s.verify, SqliteVerify::Quick);
    match &c.repositories["local"].password {
        RepositoryPassword::File(f) => assert_eq!(f, Path::new("/etc/rp/secrets/restic")),
        other => panic!("{other:?}"),
    }
    assert_eq!(p.retention.as_ref().unwrap().keep_daily, Some(7));
    assert_eq!(p.lock_wait, DEFAULT_LOCK_WAIT);
}

#[test]
fn unknown_key_names_file_line_and_key() {
    let text = GOOD.replace(
        "    paths: [/data/etc]",
        "    paths: [/data/etc]\n    pahts: [/x]",
    );
    let errs = errors(&text);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].starts_with("/etc/rp/config.yaml:19:5: "),
        "{errs:?}"
    );
    assert!(errs[0].contains("pahts"), "{errs:?}");
}

#[test]
fn undefined_repository_lists_the_defined_ones() {
    let errs = errors(&GOOD.replace("repository: local", "repository: offsite"));
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].starts_with("/etc/rp/config.yaml:9:17: "),
        "{errs:?}"
    );
    assert!(
        errs[0].contains("\"offsite\" is not defined (defined: local)"),
        "{errs:?}"
    );
}

#[test]
fn the_repository_of_a_profile_may_come_from_the_environment() {
    let text = GOOD.replace(
        "repository: local",
        "repository: ${STACK_REPOSITORY:-local}",
    );
    assert_eq!(
        parse_text(&text).unwrap().profiles["tracker"].repository,
        "local"
    );
    let errs = errors(&GOOD.replace("repository: local", "repository: ${DATA}"));
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].contains("repository \"/data\" is not defined"),
        "{errs:?}"
    );
    let errs = errors(&GOOD.replace("repository: local", "repository: ${NOT_SET_ANYWHERE}"));
    assert_eq!(errs.len(), 1, "one error, about the variable: {errs:?}");
    assert!(errs[0].contains("NOT_SET_ANYWHERE"), "{errs:?}");
}

#[test]
fn unset_variable_is_reported_at_its_value() {
    let errs = errors(&GOOD.replace("${DATA}", "${NOT_SET_ANYWHERE}"));
    assert!(errs[0].contains(":11:"), "{errs:?}");
    assert!(errs[0].contains("NOT_SET_ANYWHERE is not set"), "{errs:?}");
}

#[test]
fn every_error_is_reported_not_just_the_first() {
    let text = GOOD
        .replace("keep_daily: 7", "keep_daily: 0")
        .replace("type: sqlite", "type: oracle")
        .replace("\"0 3 * * *\"", "\"0 3 * *\"");
    let errs = errors(&text);
    assert_eq!(errs.len(), 3, "{errs:?}");
    assert!(errs.iter().any(|e| e.contains("unknown type \"oracle\"")));
    assert!(errs.iter().any(|e| e.contains("retention keeps nothing")));
    assert!(errs.iter().any(|e| e.contains("5 fields")));
}

#[test]
fn keys_of_another_type_are_rejected() {
    let errs = errors(&GOOD.replace(
        "{ name: tracker, type: sqlite, path: \"${DATA}/tracker.db\" }",
        "{ name: tracker, type: sqlite, path: /x, user: root }",
    ));
    assert!(
        errs[0].contains("key(s) user do not apply to type sqlite"),
        "{errs:?}"
    );
}

#[test]
fn password_options_are_refused() {
    let errs = errors(&GOOD.replace(
        "databases: [torrust]",
        "databases: [torrust]\n        options: [--password=hunter2, --skip-comments]",
    ));
    assert_eq!(errs.len(), 2, "{errs:?}");
    assert!(errs.iter().all(|e| !e.contains("hunter2")), "{errs:?}");
}

#[test]
fn repository_needs_exactly_one_password_source() {
    let errs = errors(&GOOD.replace("    password_file: secrets/restic\n", ""));
    assert!(
        errs[0].contains("needs password_file or password_command"),
        "{errs:?}"
    );
}

#[test]
fn duplicate_database_names_are_an_error() {
    let errs = errors(&GOOD.replace("name: main", "name: tracker"));
    assert!(
        errs[0].contains("two databases are named \"tracker\""),
        "{errs:?}"
    );
}

#[test]
fn syntax_errors_have_positions() {
    let errs = errors("profiles:\n  a:\n    repository: [x\n");
    assert!(errs[0].starts_with("/etc/rp/config.yaml:3:"), "{errs:?}");
}

#[test]
fn urls_with_credentials_are_masked() {
    assert_eq!(
        redact_url("rest:https://user:pa55@host:8000/repo"),
        "rest:https://user:***@host:8000/repo"
    );
    assert_eq!(
        redact_url("s3:s3.amazonaws.com/bucket"),
        "s3:s3.amazonaws.com/bucket"
    );
    assert_eq!(redact_url("/srv/restic"), "/srv/restic");
}

#[test]
fn durations() {
    assert_eq!(parse_duration("90s"), Some(Duration::from_secs(90)));
    assert_eq!(parse_duration("5m"), Some(Duration::from_secs(300)));
    assert_eq!(parse_duration("2h"), Some(Duration::from_secs(7200)));
    assert_eq!(parse_duration("12"), Some(Duration::from_secs(12)));
    assert_eq!(parse_duration("soon"), None);
    assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5400)));
    assert_eq!(parse_duration("1d 12h"), Some(Duration::from_secs(129_600)));
    assert_eq!(parse_duration("2m30s"), Some(Duration::from_secs(150)));
    assert_eq!(parse_duration(" 45 "), Some(Duration::from_secs(45)));
    for bad in ["", "h", "1h30", "30m1h", "1h1h", "1.5h", "-5s", "5 s", "1w"] {
        assert_eq!(parse_duration(bad), None, "{bad:?}");
    }
    assert!(is_restic_duration("1y6m"));
    assert!(!is_restic_duration("7 days"));
}

#[test]
fn restore_account_of_a_mysql_source() {
    let c = parse_text(&GOOD.replace(
        "databases: [torrust]",
        "databases: [torrust]\n        restore_user: root\n        restore_password_file: secrets/root",
    ))
    .unwrap();
    let m = mysql_of(&c.profiles["tracker"].databases[1]);
    assert_eq!(m.user.as_deref(), Some("backup"));
    assert_eq!(m.restore_user.as_deref(), Some("root"));
    assert_eq!(
        m.restore_password_file.as_deref(),
        Some(Path::new("/etc/rp/secrets/root"))
    );
    let errs = errors(&GOOD.replace(
        "{ name: tracker, type: sqlite, path: \"${DATA}/tracker.db\" }",
        "{ name: tracker, type: sqlite, path: /x, restore_user: root }",
    ));
    assert!(
        errs[0].contains("key(s) restore_user do not apply to type sqlite"),
        "{errs:?}"
    );
}

#[test]
fn daemon_keys_resolve_with_defaults() {
    let c = parse_text(GOOD).unwrap();
    assert_eq!(c.daemon.max_concurrent, 1);
    assert_eq!(c.daemon.grace_period, Duration::from_secs(60));
    assert!(c.daemon.listen.is_none() && c.daemon.metrics_file.is_none());
    let p = &c.profiles["tracker"];
    assert_eq!(p.catch_up, CatchUp::Once);
    assert_eq!(p.jitter, Duration::ZERO);
    assert!(p.max_age.is_none() && p.notify.healthchecks.is_none());

    let text = format!(
        "listen: 0.0.0.0:9898\nmax_concurrent: 2\ngrace_period: 90s\nmetrics_file: metrics/rp.prom\n{}",
        GOOD.replace(
            "    schedule: \"0 3 * * *\"",
            "    schedule: \"0 3 * * *\"
    check_schedule: \"0 4 * * 0\"
    prune_schedule: \"30 4 1 * *\"
    verify_schedule: \"0 5 * * 0\"
    check_subset: 5%
    timezone: Europe/Berlin
    jitter: 10m
    catch_up: skip
    max_age: 2d
    notify:
      healthchecks: https://hc-ping.com/uuid
      webhook: https://hooks.example.org/x
      webhook_on_success: true",
        )
    );
    let c = parse_text(&text).unwrap();
    assert_eq!(c.daemon.listen, Some("0.0.0.0:9898".parse().unwrap()));
    assert_eq!(c.daemon.max_concurrent, 2);
    assert_eq!(c.daemon.grace_period, Duration::from_secs(90));
    assert_eq!(
        c.daemon.metrics_file.as_deref(),
        Some(Path::new("/etc/rp/metrics/rp.prom"))
    );
    let p = &c.profiles["tracker"];
    assert_eq!(p.check_schedule.as_deref(), Some("0 4 * * 0"));
    assert_eq!(p.prune_schedule.as_deref(), Some("30 4 1 * *"));
    assert_eq!(p.verify_schedule.as_deref(), Some("0 5 * * 0"));
    assert_eq!(p.check_subset.as_deref(), Some("5%"));
    assert_eq!(p.timezone.as_deref(), Some("Europe/Berlin"));
    assert_eq!(p.jitter, Duration::from_secs(600));
    assert_eq!(p.catch_up, CatchUp::Skip);
    assert_eq!(p.max_age, Some(Duration::from_secs(2 * 86400)));
    assert!(p.notify.webhook_on_success);
}

#[test]
fn bad_daemon_keys_are_named_at_their_place() {
    let text = format!(
        "listen: localhost\nmax_concurrent: 0\ngrace_period: soon\n{}",
        GOOD.replace(
            "    schedule: \"0 3 * * *\"",
            "    schedule: \"0 27 * * *\"
    check_schedule: \"0 0 30 2 *\"
    check_subset: 150%
    timezone: Mars/Olympus
    jitter: a bit
    catch_up: twice
    notify:
      healthchecks: hc-ping.com/uuid
      webhook_on_success: true",
        )
    );
    let errs = errors(&text);
    let expect = [
        (
            "config.yaml:1:9: ",
            "listen \"localhost\" is not an address",
        ),
        ("config.yaml:2:17: ", "max_concurrent must be at least 1"),
        (
            "config.yaml:3:15: ",
            "grace_period \"soon\" is not a duration",
        ),
        (":23:15: ", "schedule \"0 27 * * *\": "),
        (
            ":24:21: ",
            "check_schedule \"0 0 30 2 *\": this cron expression never matches",
        ),
        (
            ":25:19: ",
            "check_subset \"150%\" is not a restic --read-data-subset",
        ),
        (
            ":26:15: ",
            "timezone \"Mars/Olympus\" is not an IANA time zone",
        ),
        (":27:13: ", "jitter \"a bit\" is not a duration"),
        (":28:15: ", "catch_up \"twice\" is not one of once, skip"),
        (
            ":30:21: ",
            "notify.healthchecks \"hc-ping.com/uuid\" must be an http:// or https:// URL",
        ),
        (":30:7: ", "notify.webhook_on_success needs notify.webhook"),
    ];
    for (at, what) in expect {
        assert!(
            errs.iter().any(|e| e.contains(at) && e.contains(what)),
            "{at} {what} not in {errs:#?}"
        );
    }
    assert_eq!(errs.len(), expect.len(), "{errs:#?}");
}

#[test]
fn schedule_keys_without_a_schedule_are_refused() {
    let errs = errors(&GOOD.replace("    schedule: \"0 3 * * *\"", "    jitter: 5m"));
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].contains("jitter applies to schedules, and this profile has none"),
        "{errs:?}"
    );
}

#[test]
fn maintenance_window_resolves_in_order_with_default_timeout() {
    let c = parse_text(&GOOD.replace(
        "    schedule:",
        "    maintenance:\n      stop: [tracker, stack-worker-1]\n    schedule:",
    ))
    .unwrap();
    let m = c.profiles["tracker"].maintenance.as_ref().unwrap();
    assert_eq!(m.stop, ["tracker", "stack-worker-1"]);
    assert_eq!(m.timeout, DEFAULT_STOP_TIMEOUT);
    assert_eq!(
        parse_text(GOOD).unwrap().profiles["tracker"].maintenance,
        None
    );
}

#[test]
fn maintenance_window_takes_a_timeout() {
    let c = parse_text(&GOOD.replace(
        "    schedule:",
        "    maintenance: { stop: [tracker], timeout: 2m }\n    schedule:",
    ))
    .unwrap();
    let m = c.profiles["tracker"].maintenance.as_ref().unwrap();
    assert_eq!(m.timeout, Duration::from_secs(120));
}

#[test]
fn maintenance_window_errors_name_the_bad_value() {
    let errs = errors(&GOOD.replace(
        "    schedule:",
        "    maintenance: { stop: [tracker, '/bad name', tracker], timeout: soon, stpo: [] }\n    schedule:",
    ));
    assert_eq!(errs.len(), 1, "unknown key first: {errs:?}");
    assert!(errs[0].contains("stpo"), "{errs:?}");

    let errs = errors(&GOOD.replace(
        "    schedule:",
        "    maintenance: { stop: [tracker, '/bad name', tracker], timeout: soon }\n    schedule:",
    ));
    assert_eq!(errs.len(), 3, "{errs:?}");
    assert!(
        errs[0].contains("\"/bad name\" is not a Docker container name"),
        "{errs:?}"
    );
    assert!(errs[1].contains("\"tracker\" is listed twice"), "{errs:?}");
    assert!(
        errs[2].contains("timeout \"soon\" is not a duration"),
        "{errs:?}"
    );
    assert!(
        errs.iter()
            .all(|e| e.starts_with("/etc/rp/config.yaml:20:")),
        "{errs:?}"
    );
}

#[test]
fn maintenance_window_needs_containers_and_databases() {
    let errs = errors(&GOOD.replace(
        "    schedule:",
        "    maintenance: { stop: [] }\n    schedule:",
    ));
    assert!(errs[0].contains("maintenance.stop is empty"), "{errs:?}");

    let text = "repositories:\n  r: { url: /srv/r, password_file: /pw }\nprofiles:\n  files:\n    repository: r\n    paths: [/etc]\n    maintenance: { stop: [app] }\n";
    let errs = errors(text);
    assert!(errs[0].contains("the profile has no databases"), "{errs:?}");
}

/// The keys a level of the config accepts, read from the parser's own "unknown field" error.
fn accepted_keys(text_with_bogus_key: &str) -> BTreeSet<String> {
    let errs = errors(text_with_bogus_key);
    let list = errs[0]
        .split("known here: ")
        .nth(1)
        .unwrap_or_else(|| panic!("no key list in {errs:?}"));
    let list = list.split(" at line ").next().unwrap();
    list.split(',')
        .map(|k| k.trim().trim_matches('`').to_string())
        .collect()
}

#[test]
fn the_published_json_schema_knows_exactly_the_keys_the_parser_accepts() {
    let schema: serde_json::Value =
        serde_json::from_str(include_str!("../../config.schema.json")).unwrap();
    let keys_at = |pointer: &str| -> BTreeSet<String> {
        schema
            .pointer(pointer)
            .and_then(|v| v.as_object())
            .unwrap_or_else(|| panic!("schema has no {pointer}"))
            .keys()
            .cloned()
            .collect()
    };
    // A database's keys are those of its type's branch: the parser takes their union.
    let props = |pointer: &str| -> BTreeSet<String> {
        if pointer != "/$defs/database/properties" {
            return keys_at(pointer);
        }
        crate::source::REGISTRY
            .iter()
            .flat_map(|e| keys_at(&format!("/$defs/database_{}/properties", e.name())))
            .collect()
    };
    let profile = "profiles:\n  p:\n    repository: r\n    paths: [/x]\n";
    let cases = [
        ("/properties", format!("bogus_key: 1\n{profile}")),
        (
            "/$defs/repository/properties",
            format!("repositories:\n  r:\n    url: /r\n    bogus_key: 1\n{profile}"),
        ),
        (
            "/$defs/profile/properties",
            format!("{profile}    bogus_key: 1\n"),
        ),
        (
            "/$defs/sftp/properties",
            format!(
                "repositories:\n  r:\n    url: sftp:h:/r\n    sftp: {{ bogus_key: 1 }}\n{profile}"
            ),
        ),
        (
            "/$defs/database/properties",
            // An unknown type: the suggestion is then made from every type's keys.
            format!("{profile}    databases:\n      - {{ name: d, type: nosuch, bogus_key: 1 }}\n"),
        ),
        (
            "/$defs/hooks/properties",
            format!("{profile}    hooks: {{ bogus_key: [] }}\n"),
        ),
        (
            "/$defs/retention/properties",
            format!("{profile}    retention: {{ bogus_key: 1 }}\n"),
        ),
        (
            "/$defs/notify/properties",
            format!("{profile}    notify: {{ bogus_key: 1 }}\n"),
        ),
        (
            "/$defs/maintenance/properties",
            format!("{profile}    maintenance: {{ stop: [a], bogus_key: 1 }}\n"),
        ),
    ];
    for (pointer, text) in cases {
        assert_eq!(props(pointer), accepted_keys(&text), "schema {pointer}");
    }
}

#[test]
fn sqlite_method_reflink_is_accepted_and_unknown_methods_list_it() {
    let text = GOOD.replace(
        r#"path: "${DATA}/tracker.db" }"#,
        r#"path: "${DATA}/tracker.db", method: reflink }"#,
    );
    let c = parse_text(&text).unwrap();
    assert_eq!(
        sqlite_of(&c.profiles["tracker"].databases[0]).method,
        SqliteMethod::Reflink
    );
    let errs = errors(&text.replace("method: reflink", "method: clone"));
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].ends_with(r#"method "clone" is not one of online, vacuum, reflink, incremental"#),
        "{errs:?}"
    );
}

#[test]
fn sqlite_incremental_keys_resolve_with_defaults_and_checks() {
    let sqlite = |extra: &str| {
        GOOD.replace(
            r#"path: "${DATA}/tracker.db" }"#,
            &format!(r#"path: "${{DATA}}/tracker.db", {extra} }}"#),
        )
    };
    let source =
        |text: &str| sqlite_of(&parse_text(text).unwrap().profiles["tracker"].databases[0]).clone();
    // The defaults.
    let s = source(&sqlite("method: incremental"));
    assert_eq!(s.method, SqliteMethod::Incremental);
    assert_eq!(s.restore_check, RestoreCheck::Quick);
    assert_eq!(s.writer_hold_limit, Duration::from_secs(5));
    assert!(!s.convert_to_wal);
    let inc = s.incremental.unwrap();
    assert_eq!(
        inc.chain_dir,
        Path::new("/var/lib/resticpilot/chains/tracker/tracker")
    );
    assert_eq!(
        inc.index_dir,
        Path::new("/var/lib/resticpilot/page-index/tracker")
    );
    assert_eq!(inc.max_delta_share, 0.5);
    assert_eq!(inc.rebase_after, Duration::from_secs(7 * 86400));
    // Every key set; durations as text or plain seconds.
    let s = source(&sqlite(
        "method: incremental, max_delta_share: 1.5, rebase_after: 2d, writer_hold_limit: 3, convert_to_wal: true, restore_check: full",
    ));
    assert_eq!(s.restore_check, RestoreCheck::Full);
    assert_eq!(s.writer_hold_limit, Duration::from_secs(3));
    assert!(s.convert_to_wal);
    let inc = s.incremental.unwrap();
    assert_eq!(inc.max_delta_share, 1.5);
    assert_eq!(inc.rebase_after, Duration::from_secs(2 * 86400));
    // Other methods have no chain, and reject the chain's keys.
    assert!(source(&sqlite("method: online")).incremental.is_none());
    let errs = errors(&sqlite("method: online, max_delta_share: 0.3"));
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].ends_with("max_delta_share applies only to method: incremental"),
        "{errs:?}"
    );
    for (bad, says) in [
        (
            "method: incremental, max_delta_share: 0",
            "must be a number above 0",
        ),
        (
            "method: incremental, rebase_after: soon",
            "is not a duration",
        ),
        (
            "restore_check: maybe",
            r#"restore_check "maybe" is not one of quick, hash, full"#,
        ),
        ("writer_hold_limit: 5x", "is not a duration"),
    ] {
        let errs = errors(&sqlite(bad));
        assert_eq!(errs.len(), 1, "{bad}: {errs:?}");
        assert!(errs[0].contains(says), "{bad}: {errs:?}");
    }
    // A mysql source cannot take them.
    let errs = errors(&GOOD.replace(
        "databases: [torrust]",
        "databases: [torrust]\n        convert_to_wal: true",
    ));
    assert!(
        errs[0].contains("convert_to_wal do not apply to type mysql"),
        "{errs:?}"
    );
}

#[test]
fn timeouts_and_sftp_keys_resolve_with_defaults_and_reject_bad_values() {
    let text = GOOD.replace(
        "    init: true\n",
        "    init: true\n    stall_timeout: 90\n    open_timeout: 2m\n",
    );
    let c = parse_text(&text).unwrap();
    let repo = c.repositories.values().next().unwrap();
    assert_eq!(repo.stall_timeout, std::time::Duration::from_secs(90));
    assert_eq!(repo.open_timeout, std::time::Duration::from_secs(120));
    let p = c.profiles.values().next().unwrap();
    assert_eq!(p.backup_timeout, crate::config::DEFAULT_PHASE_TIMEOUT);
    let errs = errors(&GOOD.replace(
        "    init: true\n",
        "    init: true\n    stall_timeout: soon\n",
    ));
    assert!(
        errs.iter()
            .any(|e| e
                .ends_with(r#"stall_timeout "soon" is not a duration such as 30s, 5m, 1h30m, 2d or a number of seconds"#)),
        "{errs:?}"
    );
    let errs = errors(&GOOD.replace(
        "    init: true\n",
        "    init: true\n    sftp: { port: 2222 }\n",
    ));
    assert!(
        errs.iter()
            .any(|e| e.contains("`sftp` applies to sftp: repositories")),
        "{errs:?}"
    );
}

#[test]
fn local_repository_paths_are_taken_from_the_config_directory() {
    let base = Path::new("/etc/rp");
    assert_eq!(super::local_url(base, "repo".into()), "/etc/rp/repo");
    assert_eq!(
        super::local_url(base, "../demo/repo".into()),
        "/etc/rp/../demo/repo"
    );
    assert_eq!(
        super::local_url(base, "local:repo".into()),
        "local:/etc/rp/repo"
    );
    for kept in [
        "/srv/repo",
        "local:/srv/repo",
        "sftp:u@h:/r",
        "rest:http://h/",
        "s3:h/b",
    ] {
        assert_eq!(super::local_url(base, kept.into()), kept);
    }
}

#[test]
fn extra_args_refuse_the_options_resticpilot_owns() {
    for (arg, named) in [
        ("--host=x", "--host"),
        ("--tag", "--tag"),
        ("--password-file", "--password*"),
        ("--password-whatever", "--password*"),
        ("-r", "-r"),
        ("-rsftp:x", "-r"),
        ("--repo", "--repo"),
        ("--json", "--json"),
        ("--compression=max", "--compression"),
    ] {
        assert_eq!(
            crate::config::owned_option(arg).map(|o| o.0),
            Some(named),
            "{arg}"
        );
    }
    for arg in [
        "--exclude-larger-than",
        "1G",
        "--one-file-system",
        "-x",
        "--ignore-inode",
    ] {
        assert_eq!(crate::config::owned_option(arg), None, "{arg}");
    }
}

#[test]
fn an_unknown_key_of_a_source_is_matched_against_its_own_type() {
    let errs = errors(
        &GOOD
            .replace(
                "{ name: tracker, type: sqlite, path: \"${DATA}/tracker.db\" }",
                "{ name: tracker, type: sqlite, path: /x, pasword_file: /p }",
            )
            .replace(
                "        host: mysql\n",
                "        host: mysql\n        pth: /x\n        usr: backup\n",
            ),
    );
    assert_eq!(errs.len(), 3, "{errs:?}");
    // A sqlite source has no password_file, a mysql one no path: not suggested.
    assert!(
        errs[0].contains("unknown key `pasword_file`; known here: name, type, path"),
        "{errs:?}"
    );
    assert!(
        errs[1].contains("unknown key `pth`; known here: name, type, host"),
        "{errs:?}"
    );
    assert!(
        errs[2].contains("unknown key `usr`: did you mean `user`?"),
        "{errs:?}"
    );
}
