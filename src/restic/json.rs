//! restic's `--json` output, parsed leniently: messages may gain fields in any release, so
//! unknown fields are ignored and everything not essential is optional.

use serde::{Deserialize, Serialize};

/// One line of `restic backup --json`.
#[derive(Debug, Deserialize)]
#[serde(tag = "message_type", rename_all = "snake_case")]
pub enum BackupMessage {
    Status(BackupStatus),
    Error(BackupError),
    Summary(BackupSummary),
    #[serde(other)]
    Other,
}

#[derive(Debug, Default, Deserialize)]
pub struct BackupStatus {
    #[serde(default)]
    pub percent_done: f64,
    #[serde(default)]
    pub total_bytes: u64,
    #[serde(default)]
    pub bytes_done: u64,
    #[serde(default)]
    pub seconds_remaining: Option<u64>,
}

#[derive(Debug, Deserialize)]
pub struct BackupError {
    #[serde(default)]
    pub error: Option<ErrorDetail>,
    #[serde(default)]
    pub item: String,
}

/// restic >= 0.15 sends `{"message": ...}`; 0.14 serialises Go's error value as is, for a
/// failed open `{"Op": "open", "Path": ..., "Err": 13}`.
#[derive(Debug, Deserialize)]
pub struct ErrorDetail {
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default, rename = "Op")]
    pub op: Option<String>,
    #[serde(default, rename = "Err")]
    pub err: Option<serde_json::Value>,
}

impl ErrorDetail {
    fn describe(&self) -> String {
        if let Some(message) = &self.message {
            return message.clone();
        }
        let cause = match &self.err {
            Some(serde_json::Value::Number(n)) => n
                .as_i64()
                .and_then(|n| i32::try_from(n).ok())
                .map(|errno| std::io::Error::from_raw_os_error(errno).to_string())
                .unwrap_or_else(|| n.to_string()),
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
            None => "unknown error".to_string(),
        };
        match &self.op {
            Some(op) => format!("{op}: {cause}"),
            None => cause,
        }
    }
}

impl BackupError {
    pub fn describe(&self) -> String {
        let msg = self
            .error
            .as_ref()
            .map(ErrorDetail::describe)
            .unwrap_or_else(|| "unknown error".to_string());
        if self.item.is_empty() {
            msg
        } else {
            format!("{}: {msg}", self.item)
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
pub struct BackupSummary {
    #[serde(default)]
    pub snapshot_id: String,
    #[serde(default)]
    pub files_new: u64,
    #[serde(default)]
    pub files_changed: u64,
    #[serde(default)]
    pub files_unmodified: u64,
    #[serde(default)]
    pub data_added: u64,
    #[serde(default)]
    pub total_files_processed: u64,
    #[serde(default)]
    pub total_bytes_processed: u64,
    #[serde(default)]
    pub total_duration: f64,
}

/// The short form of a snapshot id (its first 8 hex digits), as restic shows it.
pub fn short_id(id: &str) -> &str {
    &id[..id.len().min(8)]
}

/// A snapshot as every JSON output names it: the full id (64 hex digits) and the short one
/// restic prints (its first 8).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotRef {
    pub id: String,
    pub short_id: String,
}

impl SnapshotRef {
    pub fn new(id: &str) -> Self {
        SnapshotRef {
            id: id.to_string(),
            short_id: short_id(id).to_string(),
        }
    }
}

/// One entry of `restic snapshots --json`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct Snapshot {
    pub id: String,
    #[serde(default)]
    pub short_id: String,
    pub time: String,
    #[serde(default)]
    pub hostname: String,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub paths: Vec<String>,
    /// The id this snapshot had before `restic tag` rewrote it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original: Option<String>,
}

impl Snapshot {
    /// Tagged `incomplete` by resticpilot (see [`super::args::INCOMPLETE_TAG`]).
    pub fn is_incomplete(&self) -> bool {
        self.tags.iter().any(|t| t == super::args::INCOMPLETE_TAG)
    }

    pub fn short(&self) -> &str {
        if self.short_id.is_empty() {
            short_id(&self.id)
        } else {
            &self.short_id
        }
    }
}

/// One line of `restic ls --json`: the snapshot first, then one node per file or directory.
#[derive(Debug, Clone, Deserialize)]
pub struct LsLine {
    #[serde(default)]
    pub struct_type: String,
    #[serde(default)]
    pub name: String,
    #[serde(default, rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub path: String,
    #[serde(default)]
    pub size: Option<u64>,
}

impl LsLine {
    pub fn is_node(&self) -> bool {
        self.struct_type == "node"
    }

    pub fn is_file(&self) -> bool {
        self.is_node() && self.kind == "file"
    }
}

/// One group of `restic forget --json`.
#[derive(Debug, Clone, Deserialize)]
pub struct ForgetGroup {
    #[serde(default)]
    pub host: String,
    #[serde(default)]
    pub tags: Option<Vec<String>>,
    #[serde(default)]
    pub keep: Option<Vec<Snapshot>>,
    #[serde(default)]
    pub remove: Option<Vec<Snapshot>>,
    /// Why each kept snapshot is kept.
    #[serde(default)]
    pub reasons: Option<Vec<KeepReason>>,
}

impl ForgetGroup {
    /// The rules that keep `snapshot` ("last snapshot", "daily snapshot"...). restic 0.14 names
    /// the snapshot of a reason by its time and tree only, so those are compared.
    pub fn reasons_for(&self, snapshot: &Snapshot) -> Vec<String> {
        self.reasons
            .iter()
            .flatten()
            .find(|r| match &r.snapshot.id {
                Some(id) => *id == snapshot.id,
                None => r.snapshot.time == snapshot.time,
            })
            .map(|r| r.matches.clone())
            .unwrap_or_default()
    }
}

/// One entry of a forget group's `reasons`.
#[derive(Debug, Clone, Deserialize)]
pub struct KeepReason {
    pub snapshot: ReasonSnapshot,
    #[serde(default)]
    pub matches: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ReasonSnapshot {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub time: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_from_restic_0_14_with_unknown_fields() {
        let line = r#"{"message_type":"summary","files_new":1,"files_changed":0,"files_unmodified":0,"dirs_new":0,"dirs_changed":0,"dirs_unmodified":0,"data_blobs":1,"tree_blobs":1,"data_added":353,"total_files_processed":1,"total_bytes_processed":2,"total_duration":0.22,"snapshot_id":"b5eb941c","future_field":[1]}"#;
        match serde_json::from_str::<BackupMessage>(line).unwrap() {
            BackupMessage::Summary(s) => {
                assert_eq!(s.snapshot_id, "b5eb941c");
                assert_eq!(s.data_added, 353);
                assert_eq!(s.files_new, 1);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn unknown_message_types_are_tolerated() {
        let line = r#"{"message_type":"verbose_status","action":"new","item":"/x"}"#;
        assert!(matches!(
            serde_json::from_str::<BackupMessage>(line).unwrap(),
            BackupMessage::Other
        ));
    }

    #[test]
    fn ls_lines_from_restic_0_14() {
        let snap = r#"{"time":"2026-11-22T23:27:30Z","paths":["/s"],"hostname":"h","id":"46","short_id":"4","struct_type":"snapshot"}"#;
        let node = r#"{"name":"app.sqlite3","type":"file","path":"/s/app.sqlite3","uid":0,"gid":0,"size":2,"mode":420,"struct_type":"node"}"#;
        let dir = r#"{"name":"s","type":"dir","path":"/s","uid":0,"mode":2147484141,"struct_type":"node"}"#;
        assert!(!serde_json::from_str::<LsLine>(snap).unwrap().is_node());
        let n: LsLine = serde_json::from_str(node).unwrap();
        assert!(n.is_file());
        assert_eq!((n.path.as_str(), n.size), ("/s/app.sqlite3", Some(2)));
        let d: LsLine = serde_json::from_str(dir).unwrap();
        assert!(d.is_node() && !d.is_file());
    }

    #[test]
    fn error_message_names_the_item() {
        let line = r#"{"message_type":"error","error":{"message":"permission denied"},"during":"archival","item":"/data/secret"}"#;
        match serde_json::from_str::<BackupMessage>(line).unwrap() {
            BackupMessage::Error(e) => assert_eq!(e.describe(), "/data/secret: permission denied"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn restic_0_14_error_values_are_described() {
        let line = r#"{"message_type":"error","error":{"Op":"open","Path":"/d/secret","Err":13},"during":"archival","item":"/d/secret"}"#;
        match serde_json::from_str::<BackupMessage>(line).unwrap() {
            BackupMessage::Error(e) => assert_eq!(
                e.describe(),
                "/d/secret: open: Permission denied (os error 13)"
            ),
            other => panic!("{other:?}"),
        }
    }
}
