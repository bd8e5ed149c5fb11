//! How restic reaches an `sftp:` repository: the ssh command resticpilot hands restic as its
//! `sftp.command` option (restic 0.14 and newer), built from the repository's `sftp:` keys, so
//! the port, key and known_hosts file need neither the URL nor the running user's ~/.ssh/config.
//! The command never carries a secret: the key is a file path.

use std::path::Path;
use std::time::Duration;

pub use super::syntax::Target;
use crate::config::{Sftp, SftpKeys};

impl Target {
    /// The port ssh connects to: the configured one, the URL's, else 22.
    pub fn port_with(&self, keys: Option<&SftpKeys>) -> u16 {
        keys.and_then(|k| k.port).or(self.port).unwrap_or(22)
    }
}

/// restic's `sftp.command` for `sftp` on the repository `url`, or `None` when restic's own
/// ssh call will do (no `sftp:` keys). `connect_timeout` bounds ssh's connection and banner
/// exchange.
pub fn command(sftp: &Sftp, url: &str, connect_timeout: Duration) -> Option<String> {
    let keys = match sftp {
        Sftp::Command(c) => return Some(c.clone()),
        Sftp::Keys(k) => k,
    };
    let target = Target::parse(url)?;
    let mut parts: Vec<String> = vec!["ssh".into()];
    // ssh keeps the first value given for an option: the user's come first.
    for o in &keys.options {
        parts.push("-o".into());
        parts.push(o.clone());
    }
    parts.push("-p".into());
    parts.push(target.port_with(Some(keys)).to_string());
    if let Some(user) = keys.user.as_ref().or(target.user.as_ref()) {
        parts.push("-l".into());
        parts.push(quote(user));
    }
    if let Some(identity) = &keys.identity_file {
        parts.push("-i".into());
        parts.push(quote_path(identity));
        parts.push("-o".into());
        parts.push("IdentitiesOnly=yes".into());
    }
    if let Some(known) = &keys.known_hosts_file {
        parts.push("-o".into());
        parts.push(format!("UserKnownHostsFile={}", quote_path(known)));
    }
    for fixed in [
        // Never a prompt: a missing key or unknown host fails at once, with ssh's message.
        "BatchMode=yes".to_string(),
        "StrictHostKeyChecking=yes".to_string(),
        format!("ConnectTimeout={}", connect_timeout.as_secs().max(1)),
        // A server that stops answering drops the connection after about a minute.
        "ServerAliveInterval=15".to_string(),
        "ServerAliveCountMax=4".to_string(),
    ] {
        parts.push("-o".into());
        parts.push(fixed);
    }
    parts.push(quote(&target.host));
    parts.push("-s".into());
    parts.push("sftp".into());
    Some(parts.join(" "))
}

/// An ssh command that asks the server for the sftp subsystem with stdin closed, to learn why
/// restic could not start its session (restic 0.14 may exit before it prints ssh's complaint):
/// ssh says "Permission denied" or "Host key verification failed", or connects and ends at
/// once. `None` for a whole `command:` of the user's.
pub fn probe(sftp: Option<&Sftp>, url: &str, connect_timeout: Duration) -> Option<Vec<String>> {
    let line = match sftp {
        Some(Sftp::Command(_)) => return None,
        Some(s) => command(s, url, connect_timeout)?,
        None => command(&Sftp::Keys(SftpKeys::default()), url, connect_timeout)?,
    };
    // Our own command has no quoted words with spaces inside unless a path has them.
    let mut words = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for c in line.chars() {
        match c {
            '"' => quoted = !quoted,
            ' ' if !quoted => {
                if !current.is_empty() {
                    words.push(std::mem::take(&mut current));
                }
            }
            c => current.push(c),
        }
    }
    if !current.is_empty() {
        words.push(current);
    }
    Some(words)
}

/// The command that adds the server's host key to `known_hosts` (for error messages).
pub fn keyscan_hint(url: &str, sftp: Option<&Sftp>) -> Option<String> {
    let target = Target::parse(url)?;
    let keys = match sftp {
        Some(Sftp::Keys(k)) => Some(k),
        _ => None,
    };
    let file = keys
        .and_then(|k| k.known_hosts_file.as_ref())
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "~/.ssh/known_hosts".to_string());
    Some(format!(
        "ssh-keyscan -p {} {} >> {file}",
        target.port_with(keys),
        target.host
    ))
}

/// Quotes a word for restic's shell-like split of `sftp.command` when it needs it (config
/// validation rejects quotes inside values).
fn quote(word: &str) -> String {
    if word.chars().any(|c| c.is_whitespace()) {
        format!("\"{word}\"")
    } else {
        word.to_string()
    }
}

fn quote_path(p: &Path) -> String {
    quote(&p.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_of_both_url_forms() {
        assert_eq!(
            Target::parse("sftp:backup@example.org:/srv/restic"),
            Some(Target {
                user: Some("backup".into()),
                host: "example.org".into(),
                port: None
            })
        );
        assert_eq!(
            Target::parse("sftp://backup@example.org:2222//srv/restic"),
            Some(Target {
                user: Some("backup".into()),
                host: "example.org".into(),
                port: Some(2222)
            })
        );
        assert_eq!(
            Target::parse("sftp:host:relative/repo").map(|t| (t.user, t.host)),
            Some((None, "host".to_string()))
        );
        assert_eq!(Target::parse("rest:http://x/"), None);
    }

    #[test]
    fn command_from_keys_passes_port_user_key_and_known_hosts() {
        let keys = SftpKeys {
            port: Some(2222),
            user: None,
            identity_file: Some("/run/secrets/ssh key".into()),
            known_hosts_file: Some("/run/secrets/known_hosts".into()),
            options: vec!["ServerAliveInterval=5".into()],
        };
        let cmd = command(
            &Sftp::Keys(keys),
            "sftp:backup@example.org:/srv/restic",
            Duration::from_secs(30),
        )
        .unwrap();
        assert_eq!(
            cmd,
            "ssh -o ServerAliveInterval=5 -p 2222 -l backup -i \"/run/secrets/ssh key\" -o IdentitiesOnly=yes \
             -o UserKnownHostsFile=/run/secrets/known_hosts -o BatchMode=yes -o StrictHostKeyChecking=yes \
             -o ConnectTimeout=30 -o ServerAliveInterval=15 -o ServerAliveCountMax=4 example.org -s sftp"
        );
        assert_eq!(
            keyscan_hint(
                "sftp:backup@example.org:/srv/restic",
                Some(&Sftp::Keys(SftpKeys {
                    port: Some(2222),
                    known_hosts_file: Some("/k".into()),
                    ..Default::default()
                }))
            )
            .unwrap(),
            "ssh-keyscan -p 2222 example.org >> /k"
        );
    }

    #[test]
    fn probe_words_keep_quoted_paths_whole() {
        let keys = SftpKeys {
            identity_file: Some("/run/my keys/k".into()),
            ..Default::default()
        };
        let words = probe(
            Some(&Sftp::Keys(keys)),
            "sftp:u@h:/r",
            Duration::from_secs(5),
        )
        .unwrap();
        assert_eq!(words[0], "ssh");
        assert!(words.contains(&"/run/my keys/k".to_string()), "{words:?}");
        assert_eq!(&words[words.len() - 3..], ["h", "-s", "sftp"]);
        assert_eq!(
            probe(
                Some(&Sftp::Command("ssh x".into())),
                "sftp:h:/r",
                Duration::from_secs(5)
            ),
            None
        );
    }
}
