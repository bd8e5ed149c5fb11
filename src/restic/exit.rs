//! restic's exit codes and the failures they (and, on restic < 0.17, its messages) stand for.

use std::process::ExitStatus;

/// What a restic exit means. Codes 10, 11 and 12 exist from restic 0.17 on; older versions exit
/// 1 for those cases, so [`classify`] also reads the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    /// Exit 3: the snapshot was made but some source files could not be read.
    Incomplete,
    NoRepository,
    Unreachable,
    /// The server answered, and refused the credentials (HTTP 401/403, S3 InvalidAccessKeyId,
    /// SignatureDoesNotMatch or AccessDenied, ssh "Permission denied").
    CredentialsRefused,
    /// ssh does not know the server's host key.
    HostKeyUnknown,
    /// ssh knows another host key for the server.
    HostKeyChanged,
    Locked,
    WrongPassword,
    Interrupted,
    /// Exit 1 or any code restic does not document: a failure.
    Failed,
}

/// Classifies a finished restic command from its status and stderr.
pub fn classify(status: ExitStatus, stderr: &str) -> Outcome {
    match status.code() {
        Some(0) => Outcome::Success,
        Some(3) => Outcome::Incomplete,
        Some(10) => Outcome::NoRepository,
        Some(11) => Outcome::Locked,
        Some(12) => Outcome::WrongPassword,
        Some(130) | None => Outcome::Interrupted,
        Some(_) => classify_message(stderr),
    }
}

fn classify_message(stderr: &str) -> Outcome {
    if stderr.contains("wrong password or no key found") {
        Outcome::WrongPassword
    } else if stderr.contains("repository is already locked") {
        Outcome::Locked
    } else if let Some(o) = backend_refusal(stderr) {
        o
    } else if stderr.contains("Is there a repository at the following location?") {
        if is_missing(stderr) {
            Outcome::NoRepository
        } else {
            Outcome::Unreachable
        }
    } else if UNREACHABLE.iter().any(|m| stderr.contains(m)) {
        Outcome::Unreachable
    } else {
        Outcome::Failed
    }
}

/// Messages of a server that could not be reached (or stopped answering).
const UNREACHABLE: &[&str] = &[
    "connection refused",
    "no such host",
    "network is unreachable",
    "i/o timeout",
    "connection reset by peer",
    "unable to start the sftp session",
    "Connection timed out",
    "Connection refused",
    // sftp: the ssh connection went away.
    "connection lost",
    "closed by remote host",
    "ssh command exited",
];

/// Whether `text` (a retry message) says the server could not be reached at all.
pub fn is_unreachable(text: &str) -> bool {
    UNREACHABLE.iter().any(|m| text.contains(m))
}

/// Messages with which a server refuses the credentials it was given.
const REFUSED: &[&str] = &[
    // REST server and other HTTP backends.
    "(401)",
    "(403)",
    "401 Unauthorized",
    "403 Forbidden",
    // S3.
    "InvalidAccessKeyId",
    "The AWS Access Key Id you provided does not exist",
    "SignatureDoesNotMatch",
    "The request signature we calculated does not match",
    "AccessDenied",
    "Access Denied",
    // ssh (sftp).
    "Permission denied (",
];

/// A refusal by the server, or by ssh of the server's host key, in `text` (restic's stderr or
/// one of its retry messages).
pub fn backend_refusal(text: &str) -> Option<Outcome> {
    if text.contains("REMOTE HOST IDENTIFICATION HAS CHANGED") {
        Some(Outcome::HostKeyChanged)
    } else if text.contains("Host key verification failed")
        // ssh's first line; its second ("Host key verification failed") is lost when the
        // session closes before restic reads it.
        || (text.contains("host key is known for") && text.contains("requested strict checking"))
    {
        Some(Outcome::HostKeyUnknown)
    } else if REFUSED.iter().any(|m| text.contains(m)) {
        Some(Outcome::CredentialsRefused)
    } else {
        None
    }
}

/// Whether `text` says the repository (or its S3 bucket) does not exist, as each backend of
/// restic < 0.17 words it: a local path "no such file or directory", the REST server
/// "<config/> does not exist", sftp "file does not exist", S3 "The specified key/bucket does
/// not exist".
pub fn is_missing(text: &str) -> bool {
    text.contains("no such file or directory")
        || text.contains("does not exist")
        || text.contains("NoSuchBucket")
        || text.contains("NoSuchKey")
}

/// Whether a retry message of restic says the S3 bucket is missing: restic >= 0.17 retries
/// that for up to 15 minutes, though no retry can create it.
pub fn is_missing_bucket(text: &str) -> bool {
    text.contains("The specified bucket does not exist") || text.contains("NoSuchBucket")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    fn exit(code: i32) -> ExitStatus {
        ExitStatus::from_raw(code << 8)
    }

    #[test]
    fn documented_codes() {
        assert_eq!(classify(exit(0), ""), Outcome::Success);
        assert_eq!(classify(exit(3), ""), Outcome::Incomplete);
        assert_eq!(classify(exit(10), ""), Outcome::NoRepository);
        assert_eq!(classify(exit(11), ""), Outcome::Locked);
        assert_eq!(classify(exit(12), ""), Outcome::WrongPassword);
        assert_eq!(classify(exit(130), ""), Outcome::Interrupted);
        assert_eq!(classify(exit(42), "boom"), Outcome::Failed);
    }

    #[test]
    fn restic_0_14_messages_with_exit_1() {
        assert_eq!(
            classify(exit(1), "Fatal: wrong password or no key found\n"),
            Outcome::WrongPassword
        );
        assert_eq!(
            classify(
                exit(1),
                "Fatal: unable to open config file: stat /x/config: no such file or directory\nIs there a repository at the following location?\n/x"
            ),
            Outcome::NoRepository
        );
        assert_eq!(
            classify(
                exit(1),
                "Fatal: unable to open config file: dial tcp 127.0.0.1:1: connect: connection refused\nIs there a repository at the following location?"
            ),
            Outcome::Unreachable
        );
        assert_eq!(
            classify(
                exit(1),
                "unable to create lock in backend: repository is already locked exclusively by PID 7"
            ),
            Outcome::Locked
        );
    }

    #[test]
    fn restic_0_14_messages_of_remote_backends() {
        let missing = [
            "Fatal: unable to open config file: <config/> does not exist\nIs there a repository at the following location?\nrest:http://u:***@127.0.0.1:41983/r/",
            "Fatal: unable to open config file: Lstat: file does not exist\nIs there a repository at the following location?\nsftp:root@127.0.0.1:/r",
            "Fatal: unable to open config file: Stat: The specified bucket does not exist\nIs there a repository at the following location?\ns3:http://127.0.0.1:45017/b/r",
            "Fatal: unable to open config file: Stat: The specified key does not exist.\nIs there a repository at the following location?\ns3:http://127.0.0.1:45017/b/r",
        ];
        for m in missing {
            assert_eq!(classify(exit(1), m), Outcome::NoRepository, "{m}");
        }
        let refused = [
            "Fatal: unable to open config file: unexpected HTTP response (401): 401 Unauthorized\nIs there a repository at the following location?",
            "Fatal: unable to open config file: Stat: The request signature we calculated does not match the signature you provided. Check your key and signing method.\nIs there a repository at the following location?",
            "Fatal: unable to open config file: Stat: The AWS Access Key Id you provided does not exist in our records.\nIs there a repository at the following location?",
            "subprocess ssh: root@127.0.0.1: Permission denied (publickey).\nFatal: unable to open repository at sftp:root@127.0.0.1:/r: unable to start the sftp session, error: EOF",
        ];
        for m in refused {
            assert_eq!(classify(exit(1), m), Outcome::CredentialsRefused, "{m}");
        }
        assert_eq!(
            classify(
                exit(1),
                "subprocess ssh: No ED25519 host key is known for [127.0.0.1]:37797 and you have requested strict checking.\nsubprocess ssh: Host key verification failed.\nFatal: unable to open repository"
            ),
            Outcome::HostKeyUnknown
        );
        // ssh's second line can be lost when the session ends first (seen in CI): its first
        // line alone names an unknown host key.
        assert_eq!(
            classify(
                exit(1),
                "ssh: No ED25519 host key is known for [127.0.0.1]:46157 and you have requested strict checking.; unable to open repository at sftp:root@127.0.0.1:/r: unable to start the sftp session, error: read |0: file already closed"
            ),
            Outcome::HostKeyUnknown
        );
        assert_eq!(
            classify(
                exit(1),
                "subprocess ssh: ssh: connect to host 127.0.0.1 port 1: Connection refused\nFatal: unable to open repository at sftp:x:/r: unable to start the sftp session, error: EOF"
            ),
            Outcome::Unreachable
        );
    }

    #[test]
    fn killed_by_signal_is_interrupted() {
        assert_eq!(classify(ExitStatus::from_raw(9), ""), Outcome::Interrupted);
    }
}
