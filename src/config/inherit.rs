//! Profile inheritance, applied to the raw config before it is resolved: a profile's
//! `extends: OTHER` and the `defaults:` block. Maps merge key by key (the nearer profile wins),
//! lists replace whole (a list left empty or unset is inherited), and the chain ends at
//! `defaults:`. A missing parent or a cycle is an error at the `extends` key.
//!
//! Positions survive: every inherited value keeps the place it was written, so an error in an
//! inherited key points at the parent's line.

use std::collections::BTreeMap;
use std::path::Path;

use serde_saphyr::Spanned;

use super::ConfigError;
use super::raw::{
    RawConfig, RawHooks, RawMaintenance, RawNotify, RawProfile, RawResticOptions, RawRetention,
};

/// Filling what `self` leaves unset from `parent`.
trait Merge {
    fn merge_from(&mut self, parent: &Self);
}

/// A plain value: the child's when set.
fn fill<T: Clone>(child: &mut Option<T>, parent: &Option<T>) {
    if child.is_none() {
        child.clone_from(parent);
    }
}

/// A list replaces whole: the parent's when the child's is empty.
fn list<T: Clone>(child: &mut Vec<T>, parent: &[T]) {
    if child.is_empty() {
        *child = parent.to_vec();
    }
}

/// A map merges key by key when both have it.
fn map<T: Merge + Clone>(child: &mut Option<Spanned<T>>, parent: &Option<Spanned<T>>) {
    match (child.as_mut(), parent) {
        (Some(c), Some(p)) => c.value.merge_from(&p.value),
        (None, Some(_)) => child.clone_from(parent),
        _ => {}
    }
}

impl Merge for RawProfile {
    fn merge_from(&mut self, p: &Self) {
        fill(&mut self.repository, &p.repository);
        fill(&mut self.host, &p.host);
        list(&mut self.tags, &p.tags);
        fill(&mut self.staging_dir, &p.staging_dir);
        list(&mut self.databases, &p.databases);
        list(&mut self.paths, &p.paths);
        list(&mut self.exclude, &p.exclude);
        list(&mut self.exclude_file, &p.exclude_file);
        fill(&mut self.exclude_caches, &p.exclude_caches);
        list(&mut self.exclude_if_present, &p.exclude_if_present);
        self.hooks.merge_from(&p.hooks);
        map(&mut self.retention, &p.retention);
        fill(&mut self.schedule, &p.schedule);
        fill(
            &mut self.keep_staging_on_failure,
            &p.keep_staging_on_failure,
        );
        fill(&mut self.lock_wait, &p.lock_wait);
        fill(&mut self.backup_timeout, &p.backup_timeout);
        fill(&mut self.retention_timeout, &p.retention_timeout);
        fill(&mut self.check_timeout, &p.check_timeout);
        map(&mut self.maintenance, &p.maintenance);
        fill(&mut self.check_schedule, &p.check_schedule);
        fill(&mut self.prune_schedule, &p.prune_schedule);
        fill(&mut self.verify_schedule, &p.verify_schedule);
        fill(&mut self.check_subset, &p.check_subset);
        fill(&mut self.timezone, &p.timezone);
        fill(&mut self.jitter, &p.jitter);
        fill(&mut self.catch_up, &p.catch_up);
        fill(&mut self.max_age, &p.max_age);
        map(&mut self.notify, &p.notify);
        map(&mut self.restic, &p.restic);
        list(&mut self.copy_to, &p.copy_to);
    }
}

impl Merge for RawHooks {
    fn merge_from(&mut self, p: &Self) {
        list(&mut self.before, &p.before);
        list(&mut self.after, &p.after);
        list(&mut self.on_failure, &p.on_failure);
    }
}

impl Merge for RawRetention {
    fn merge_from(&mut self, p: &Self) {
        fill(&mut self.keep_last, &p.keep_last);
        fill(&mut self.keep_hourly, &p.keep_hourly);
        fill(&mut self.keep_daily, &p.keep_daily);
        fill(&mut self.keep_weekly, &p.keep_weekly);
        fill(&mut self.keep_monthly, &p.keep_monthly);
        fill(&mut self.keep_yearly, &p.keep_yearly);
        fill(&mut self.keep_within, &p.keep_within);
        fill(&mut self.prune, &p.prune);
        list(&mut self.other_hosts, &p.other_hosts);
    }
}

impl Merge for RawMaintenance {
    fn merge_from(&mut self, p: &Self) {
        list(&mut self.stop, &p.stop);
        fill(&mut self.timeout, &p.timeout);
    }
}

impl Merge for RawNotify {
    /// `ntfy` and `email` are channels: a profile that sets one replaces it whole.
    fn merge_from(&mut self, p: &Self) {
        fill(&mut self.healthchecks, &p.healthchecks);
        fill(&mut self.webhook, &p.webhook);
        fill(&mut self.webhook_on_success, &p.webhook_on_success);
        fill(&mut self.ntfy, &p.ntfy);
        fill(&mut self.email, &p.email);
    }
}

impl Merge for RawResticOptions {
    fn merge_from(&mut self, p: &Self) {
        fill(&mut self.compression, &p.compression);
        fill(&mut self.limit_upload, &p.limit_upload);
        fill(&mut self.limit_download, &p.limit_download);
        fill(&mut self.pack_size, &p.pack_size);
        fill(&mut self.read_concurrency, &p.read_concurrency);
        fill(&mut self.extra_args, &p.extra_args);
    }
}

/// Replaces every profile of `raw` by its resolved form: its own keys, then those of the
/// profiles it extends, nearest first, then `defaults:`.
///
/// Returns an error (at the profile's own `extends` key) for each profile whose parent is
/// missing or whose chain comes back to itself; such a profile is left as written.
pub fn apply(raw: &mut RawConfig, file: &Path) -> Vec<ConfigError> {
    let mut errors = Vec::new();
    if let Some(d) = &raw.defaults
        && let Some(e) = &d.value.extends
    {
        errors.push(error(file, e, "defaults cannot extend a profile".into()));
    }
    let written: BTreeMap<String, Spanned<RawProfile>> = raw.profiles.clone();
    for (name, profile) in raw.profiles.iter_mut() {
        let mut chain = vec![name.clone()];
        let Some(own) = profile.value.extends.clone() else {
            if let Some(d) = &raw.defaults {
                profile.value.merge_from(&d.value);
            }
            continue;
        };
        let mut next = Some(own.clone());
        let mut broken = false;
        while let Some(parent) = next {
            if chain.contains(&parent.value) {
                chain.push(parent.value.clone());
                errors.push(error(
                    file,
                    &own,
                    format!(
                        "profile {name}: extends comes back to itself ({})",
                        chain.join(" -> ")
                    ),
                ));
                broken = true;
                break;
            }
            let Some(p) = written.get(&parent.value) else {
                let known: Vec<&str> = written.keys().map(String::as_str).collect();
                errors.push(error(
                    file,
                    &own,
                    format!(
                        "profile {name}: {} extends {:?}, which is not a profile (profiles: {})",
                        chain.last().expect("never empty"),
                        parent.value,
                        known.join(", ")
                    ),
                ));
                broken = true;
                break;
            };
            profile.value.merge_from(&p.value);
            chain.push(parent.value.clone());
            next = p.value.extends.clone();
        }
        if broken {
            continue;
        }
        if let Some(d) = &raw.defaults {
            profile.value.merge_from(&d.value);
        }
    }
    errors
}

fn error(file: &Path, at: &Spanned<String>, message: String) -> ConfigError {
    ConfigError {
        file: file.to_path_buf(),
        line: at.referenced.line(),
        column: at.referenced.column(),
        message,
    }
}

/// The resolved profile as YAML, for `validate --resolved`: only the keys that are set.
pub fn to_yaml(profile: &RawProfile) -> String {
    let mut value = serde_json::to_value(profile).expect("a raw profile serialises");
    prune(&mut value);
    serde_saphyr::to_string(&value).unwrap_or_else(|e| format!("# cannot print: {e}\n"))
}

/// Removes nulls, empty lists and empty maps, and masks the notification URLs (a ping URL is
/// a secret; `${VAR}` references are shown as written).
fn prune(v: &mut serde_json::Value) -> bool {
    if let serde_json::Value::Object(o) = v {
        for key in ["healthchecks", "webhook"] {
            if let Some(serde_json::Value::String(url)) = o.get_mut(key)
                && !url.starts_with("${")
            {
                *url = super::mask_url(url);
            }
        }
    }
    match v {
        serde_json::Value::Null => false,
        serde_json::Value::Array(a) => {
            a.retain_mut(prune);
            !a.is_empty()
        }
        serde_json::Value::Object(o) => {
            o.retain(|_, v| prune(v));
            !o.is_empty()
        }
        _ => true,
    }
}
