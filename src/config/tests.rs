use super::*;

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
    match &p.databases[0].kind {
        SourceKind::Sqlite(s) => {
            assert_eq!(s.path, Path::new("/data/tracker.db"));
            assert_eq!(s.method, SqliteMethod::Online);
            assert_eq!(s.verify, SqliteVerify::Quick);
        }
        other => panic!("{other:?}"),
    }
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
    assert!(is_restic_duration("1y6m"));
    assert!(!is_restic_duration("7 days"));
}

#[test]
fn sqlite_method_reflink_is_accepted_and_unknown_methods_list_it() {
    let text = GOOD.replace(
        r#"path: "${DATA}/tracker.db" }"#,
        r#"path: "${DATA}/tracker.db", method: reflink }"#,
    );
    let c = parse_text(&text).unwrap();
    match &c.profiles["tracker"].databases[0].kind {
        SourceKind::Sqlite(s) => assert_eq!(s.method, SqliteMethod::Reflink),
        other => panic!("{other:?}"),
    }
    let errs = errors(&text.replace("method: reflink", "method: clone"));
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].ends_with(r#"method "clone" is not one of online, vacuum, reflink"#),
        "{errs:?}"
    );
}
