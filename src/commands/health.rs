//! `health`: asks a running daemon's `/healthz` and exits 0 when it answers 200, 1 otherwise
//! (unhealthy, not answering, not listening). Built for the image's HEALTHCHECK: no curl
//! needed. It finds the daemon where the daemon itself decides to listen (`--listen`, else the
//! config's `listen:`, else `RESTICPILOT_LISTEN`), so a changed port changes both.

use std::path::Path;
use std::time::Duration;

use super::Status;
use crate::error::Error;
use crate::report::health::{DEFAULT_ADDRESS, daemon_address, probe_address};

/// Prints the body of `http://ADDRESS/healthz`; `address` is `--address`, else the daemon's
/// own choice for the config at `config_path` (see [`daemon_address`]).
///
/// Fails when the daemon answers anything but 200, or cannot be reached within a few seconds;
/// with a usage error when `RESTICPILOT_LISTEN` is not an address.
pub fn run(address: Option<&str>, config_path: &Path) -> Result<Status, Error> {
    let address = match address {
        Some(a) => a.to_string(),
        None => {
            let configured = match crate::config::load(config_path) {
                Ok(config) => config.daemon.listen,
                Err(_) if !config_path.exists() => None,
                Err(err) => {
                    // Not fatal: the daemon may listen where RESTICPILOT_LISTEN says.
                    eprintln!(
                        "note: not reading `listen:` from the config: {}",
                        err.to_string().lines().next().unwrap_or_default()
                    );
                    None
                }
            };
            match daemon_address(configured)? {
                Some(addr) => probe_address(addr).to_string(),
                None => DEFAULT_ADDRESS.to_string(),
            }
        }
    };
    let url = format!("http://{address}/healthz");
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(5)))
        .http_status_as_error(false)
        .proxy(None)
        .build()
        .into();
    match agent.get(&url).call() {
        Ok(mut response) => {
            let code = response.status().as_u16();
            let body = response.body_mut().read_to_string().unwrap_or_default();
            print!("{body}");
            if code == 200 {
                Ok(Status::Success)
            } else {
                Err(Error::Failed(format!("{url} answered HTTP {code}")))
            }
        }
        Err(err) => Err(Error::Failed(format!("cannot reach {url}: {err}"))),
    }
}
