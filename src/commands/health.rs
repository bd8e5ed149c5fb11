//! `health`: asks a running daemon's `/healthz` and exits 0 when it answers 200, 1 otherwise
//! (unhealthy, not answering, not listening). Built for the image's HEALTHCHECK: no curl
//! needed, and no config read.

use std::time::Duration;

use super::Status;
use crate::error::Error;

/// The address `health` asks when none is given.
pub const DEFAULT_ADDRESS: &str = "127.0.0.1:9898";

/// Prints the body of `http://ADDRESS/healthz`.
///
/// Fails when the daemon answers anything but 200, or cannot be reached within a few seconds.
pub fn run(address: &str) -> Result<Status, Error> {
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

/// Checks a `HOST:PORT` argument.
///
/// Fails with a message naming what is missing.
pub fn parse_address(s: &str) -> Result<String, String> {
    match s.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => Ok(s.to_string()),
        _ => Err(format!(
            "{s:?} is not HOST:PORT (for example 127.0.0.1:9898)"
        )),
    }
}
