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
    pub during: String,
    #[serde(default)]
    pub item: String,
}

#[derive(Debug, Deserialize)]
pub struct ErrorDetail {
    #[serde(default)]
    pub message: String,
}

impl BackupError {
    pub fn describe(&self) -> String {
        let msg = self
            .error
            .as_ref()
            .map(|e| e.message.as_str())
            .unwrap_or("unknown error");
        if self.item.is_empty() {
            msg.to_string()
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
}

impl Snapshot {
    pub fn short(&self) -> &str {
        if self.short_id.is_empty() {
            &self.id[..self.id.len().min(8)]
        } else {
            &self.short_id
        }
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
    fn error_message_names_the_item() {
        let line = r#"{"message_type":"error","error":{"message":"permission denied"},"during":"archival","item":"/data/secret"}"#;
        match serde_json::from_str::<BackupMessage>(line).unwrap() {
            BackupMessage::Error(e) => assert_eq!(e.describe(), "/data/secret: permission denied"),
            other => panic!("{other:?}"),
        }
    }
}
