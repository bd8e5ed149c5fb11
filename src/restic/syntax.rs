//! restic's syntax for values a user writes in the config or on the command line: the tag
//! resticpilot reserves, `--read-data-subset` values, sftp repository strings. A leaf: it
//! depends on nothing else in the crate, so `config` checks these values without depending on
//! the rest of `restic/` (which depends on `config`).

/// The tag on a snapshot whose run finished with warnings: a configured path was missing,
/// restic could not read some files, or a database was empty. Retention groups by tags, so
/// such snapshots form their own group and never count against complete ones.
pub const INCOMPLETE_TAG: &str = "incomplete";

/// Whether `s` is a `--read-data-subset` value restic accepts: "n/t" (1 <= n <= t), a
/// percentage ("5%", "2.5%") above 0 and at most 100, or a size with a unit ("500M", "2G").
pub fn is_read_data_subset(s: &str) -> bool {
    if let Some((n, t)) = s.split_once('/') {
        return matches!((n.parse::<u32>(), t.parse::<u32>()), (Ok(n), Ok(t)) if n >= 1 && n <= t);
    }
    if let Some(p) = s.strip_suffix('%') {
        let digits_ok = !p.is_empty() && p.chars().all(|c| c.is_ascii_digit() || c == '.');
        return digits_ok && matches!(p.parse::<f64>(), Ok(v) if v > 0.0 && v <= 100.0);
    }
    match s.char_indices().last() {
        Some((i, unit)) if "kKmMgGtT".contains(unit) => {
            let n = &s[..i];
            !n.is_empty()
                && n.chars().all(|c| c.is_ascii_digit())
                && n.parse::<u64>().is_ok_and(|v| v > 0)
        }
        _ => false,
    }
}

/// User, host and port of an sftp repository string (`sftp:user@host:/path` or
/// `sftp://user@host:port//path`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub user: Option<String>,
    pub host: String,
    pub port: Option<u16>,
}

impl Target {
    /// `None` when `url` is not an sftp repository string with a host.
    pub fn parse(url: &str) -> Option<Target> {
        let (authority, with_port) = if let Some(rest) = url.strip_prefix("sftp://") {
            (rest.split('/').next()?, true)
        } else {
            let rest = url.strip_prefix("sftp:")?;
            // sftp:[user@]host:path; an IPv6 host is written in brackets.
            let end = if rest.starts_with('[') || rest.contains("@[") {
                rest.find("]:").map(|i| i + 1)?
            } else {
                rest.find(':')?
            };
            (&rest[..end], false)
        };
        let (user, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u.to_string()).filter(|u| !u.is_empty()), h),
            None => (None, authority),
        };
        let (host, port) = if with_port {
            match hostport.rsplit_once(':') {
                Some((h, p)) if !h.ends_with(':') && p.chars().all(|c| c.is_ascii_digit()) => {
                    (h, p.parse().ok())
                }
                _ => (hostport, None),
            }
        } else {
            (hostport, None)
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return None;
        }
        Some(Target {
            user,
            host: host.to_string(),
            port,
        })
    }
}
