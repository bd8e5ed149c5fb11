//! `validate` and config errors as a user meets them, and the example profiles shipped in
//! the repository.

use crate::harness::Sandbox;

#[test]
fn validate_reports_every_error_with_line_and_column_and_exits_2() {
    let sb = Sandbox::new();
    let config = sb.write_config(
        "bad.yaml",
        "repositories:
  local:
    url: /tmp/x
    password_file: /tmp/pw
profiles:
  app:
    repository: offsite
    databses: []
",
    );
    let run = sb.run_with(&config, &["validate"]);
    run.assert_code(2);
    let path = config.display().to_string();
    assert!(
        run.stderr.contains(&format!("{path}:8:5: ")),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("databses"), "{}", run.stderr);
}

#[test]
fn semantic_errors_name_the_place_too() {
    let sb = Sandbox::new();
    let config = sb.write_config(
        "bad.yaml",
        "repositories:
  local:
    url: /tmp/x
    password_file: /tmp/pw
profiles:
  app:
    repository: offsite
    paths: ['${UNSET_VARIABLE_FOR_TEST}']
",
    );
    let run = sb.run_with(&config, &["validate"]);
    run.assert_code(2);
    let path = config.display().to_string();
    assert!(
        run.stderr.contains(&format!(
            "{path}:7:17: profile app: repository \"offsite\" is not defined (defined: local)"
        )),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains(&format!("{path}:8:")), "{}", run.stderr);
    assert!(
        run.stderr.contains("UNSET_VARIABLE_FOR_TEST is not set"),
        "{}",
        run.stderr
    );
}

#[test]
fn backup_with_a_bad_config_runs_nothing() {
    let sb = Sandbox::new();
    let config = sb.write_config(
        "bad.yaml",
        "repositories:\n  local: { url: '{dir}/repo', password_file: '{dir}/restic-password', init: true }\nprofiles:\n  app: { repository: local, paths: ['{dir}/data'], retention: { keep_daily: 0 } }\n",
    );
    let run = sb.run_with(&config, &["backup"]);
    run.assert_code(2);
    assert!(
        run.stderr.contains("retention keeps nothing"),
        "{}",
        run.stderr
    );
    assert!(!sb.repo().exists());
}

#[test]
fn missing_config_file_is_named() {
    let sb = Sandbox::new();
    let run = sb.run_with(&sb.path("nope.yaml"), &["validate"]);
    run.assert_code(2);
    assert!(
        run.stderr.contains("nope.yaml: cannot read config file"),
        "{}",
        run.stderr
    );
}

#[test]
fn bad_arguments_exit_2() {
    let sb = Sandbox::new();
    let run = sb.run(&["backup", "--no-such-flag"]);
    run.assert_code(2);
}

/// Every config file the repository ships as an example.
fn example_configs() -> Vec<std::path::PathBuf> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = vec![
        root.join("docker/e2e/maintenance.yaml"),
        root.join("docker/e2e/idle.yaml"),
    ];
    for dir in ["profiles", "docker/profiles"] {
        for entry in std::fs::read_dir(root.join(dir)).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// `resticpilot -c FILE validate`: its stdout, after asserting it succeeded.
#[track_caller]
fn validate_ok(path: &std::path::Path) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_resticpilot"))
        .arg("-c")
        .arg(path)
        .arg("validate")
        .env_remove("RESTICPILOT_CONFIG")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{} does not validate:\n{}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn every_example_config_validates_and_matches_the_published_json_schema() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("config.schema.json")).unwrap())
            .unwrap();
    let validator = jsonschema::validator_for(&schema).expect("the schema is a valid JSON Schema");
    // The schema rejects what the parser rejects.
    let bad = serde_json::json!({"profiles": {"p": {"repository": "r", "pahts": ["/x"]}}});
    assert!(
        !validator.is_valid(&bad),
        "an unknown key must not pass the schema"
    );
    let files = example_configs();
    assert!(files.len() >= 5, "expected the example configs: {files:?}");
    for path in files {
        validate_ok(&path);
        let doc: serde_json::Value =
            serde_saphyr::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let problems: Vec<String> = validator
            .iter_errors(&doc)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(problems.is_empty(), "{}: {problems:#?}", path.display());
    }
}

#[test]
fn the_docker_stack_profiles_show_their_maintenance_window() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    for file in ["docker/profiles/stack.yaml", "docker/e2e/maintenance.yaml"] {
        let stdout = validate_ok(&root.join(file));
        assert!(stdout.contains("maintenance: stop"), "{file}: {stdout}");
    }
}

/// The published schema, parsed.
fn published_schema() -> serde_json::Value {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(root.join("config.schema.json")).unwrap())
        .unwrap()
}

/// The database part of config.schema.json is built from the engines' own schema parts
/// (`source::schema_defs`). `RESTICPILOT_BLESS_SCHEMA=1 cargo test --test integration
/// config::` rewrites it after an engine changed its keys.
#[test]
fn the_published_schema_holds_one_branch_per_engine() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut schema = published_schema();
    let defs = schema["$defs"].as_object_mut().unwrap();
    let built = resticpilot::source::schema_defs();
    if std::env::var_os("RESTICPILOT_BLESS_SCHEMA").is_some() {
        defs.retain(|k, _| !k.starts_with("database"));
        defs.extend(built);
        let text = serde_json::to_string_pretty(&schema).unwrap() + "\n";
        std::fs::write(root.join("config.schema.json"), text).unwrap();
        return;
    }
    for (key, value) in &built {
        assert_eq!(
            defs.get(key),
            Some(value),
            "config.schema.json's $defs.{key} is not what the engines declare: run RESTICPILOT_BLESS_SCHEMA=1 cargo test --test integration config::the_published_schema"
        );
    }
    let stale: Vec<&String> = defs
        .keys()
        .filter(|k| k.starts_with("database") && !built.contains_key(*k))
        .collect();
    assert!(stale.is_empty(), "no engine declares {stale:?}");
}

/// A source of each type with every key it takes (durations as plain seconds), and sample
/// values of every key, for the both-ways checks below.
const FULL_SOURCES: [&str; 3] = [
    "{ name: a, type: sqlite, path: /data/a.db, method: incremental, verify: full, restore_check: hash, convert_to_wal: true, writer_hold_limit: 5, max_delta_share: 0.5, rebase_after: 86400 }",
    "{ name: b, type: mysql, host: db, port: 3306, user: backup, password_file: /run/pw, databases: [shop], options: [--no-tablespaces], binary: /usr/bin/mariadb-dump, restore_user: root, restore_password_file: /run/rootpw, connect_timeout: 30, lock_wait_timeout: 300, dump_timeout: 3600, restore_timeout: 3600 }",
    "{ name: c, type: command, dump: 'redis-cli --rdb -', restore: 'cat > /data/dump.rdb', extension: rdb, verify: 'test -s \"$1\"', dump_timeout: 600, restore_timeout: 600 }",
];
const MINIMAL_SOURCES: [(&str, &str); 3] = [
    ("sqlite", "{ name: a, type: sqlite, path: /data/a.db"),
    ("mysql", "{ name: b, type: mysql, databases: [shop]"),
    (
        "command",
        "{ name: c, type: command, dump: 'echo x', restore: cat, extension: txt",
    ),
];
const SAMPLE_VALUES: [(&str, &str); 25] = [
    ("path", "/data/x.db"),
    ("method", "online"),
    ("verify", "quick"),
    ("restore_check", "quick"),
    ("convert_to_wal", "true"),
    ("writer_hold_limit", "5s"),
    ("max_delta_share", "0.5"),
    ("rebase_after", "7d"),
    ("host", "db"),
    ("port", "3306"),
    ("socket", "/run/mysqld.sock"),
    ("user", "backup"),
    ("password_file", "/run/pw"),
    ("databases", "[shop]"),
    ("options", "[--no-tablespaces]"),
    ("binary", "/usr/bin/mariadb-dump"),
    ("restore_user", "root"),
    ("restore_password_file", "/run/rootpw"),
    ("connect_timeout", "30s"),
    ("lock_wait_timeout", "5m"),
    ("dump_timeout", "2h"),
    ("restore_timeout", "2h"),
    ("dump", "'echo x'"),
    ("restore", "cat"),
    ("extension", "txt"),
];

/// A config whose one profile has `source` and plain numbers of seconds for every duration
/// outside the sources too.
fn config_with(source: &str) -> String {
    format!(
        "grace_period: 30
repositories:
  r:
    url: /tmp/repo
    password_file: /tmp/pw
    stall_timeout: 120
    open_timeout: 300
profiles:
  p:
    repository: r
    lock_wait: 60
    backup_timeout: 3600
    retention_timeout: 3600
    check_timeout: 3600
    maintenance: {{ stop: [app], timeout: 30 }}
    databases:
      - {source}
"
    )
}

/// `validate` and the schema agree on `text`: both accept it, or both reject it.
#[track_caller]
fn both_agree(sb: &Sandbox, validator: &jsonschema::Validator, text: &str, accept: bool) {
    let config = sb.write_config("c.yaml", text);
    let run = sb.run_with(&config, &["validate"]);
    let doc: serde_json::Value = serde_saphyr::from_str(text).unwrap();
    let problems: Vec<String> = validator.iter_errors(&doc).map(|e| e.to_string()).collect();
    if accept {
        run.assert_code(0);
        assert!(problems.is_empty(), "{text}\n{problems:#?}");
    } else {
        run.assert_code(2);
        assert!(
            !problems.is_empty(),
            "the schema accepts what validate refuses:\n{text}\n{}",
            run.stderr
        );
    }
}

#[test]
fn schema_and_validate_agree_on_each_types_keys_both_ways() {
    let sb = Sandbox::new();
    let schema = published_schema();
    let validator = jsonschema::validator_for(&schema).unwrap();
    // Every key of a type, durations as plain seconds: both accept.
    for source in FULL_SOURCES {
        both_agree(&sb, &validator, &config_with(source), true);
    }
    // Every key of the other types on a source of this one: both refuse.
    for (kind, minimal) in MINIMAL_SOURCES {
        let engine = resticpilot::source::engine(kind).unwrap();
        for (key, value) in SAMPLE_VALUES {
            if engine.keys().contains(&key) {
                continue;
            }
            let text = config_with(&format!("{minimal}, {key}: {value} }}"));
            both_agree(&sb, &validator, &text, false);
            let config = sb.write_config("c.yaml", &text);
            let run = sb.run_with(&config, &["validate"]);
            assert!(
                run.stderr
                    .contains(&format!("key(s) {key} do not apply to type {kind}")),
                "{}",
                run.stderr
            );
        }
    }
    // An unknown type: both refuse.
    both_agree(
        &sb,
        &validator,
        &config_with("{ name: a, type: oracle, path: /x }"),
        false,
    );
}
