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
    } else if stderr.contains("Is there a repository at the following location?") {
        if stderr.contains("no such file or directory") {
            Outcome::NoRepository
        } else {
            Outcome::Unreachable
        }
    } else {
        Outcome::Failed
    }
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
    fn killed_by_signal_is_interrupted() {
        assert_eq!(classify(ExitStatus::from_raw(9), ""), Outcome::Interrupted);
    }
}
