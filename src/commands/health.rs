//! `health`: asks a running daemon's `/healthz` and exits 0 when it answers 200, 1 otherwise
//! (unhealthy, not answering, not listening). Built for the image's HEALTHCHECK: no curl
//! needed. It finds the daemon where the daemon itself decides to listen (`--listen`, else the
//! config's `listen:`, else `RESTICPILOT_LISTEN`), so a changed port changes both.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use super::Status;
use crate::error::Error;

/// The address `health` asks when nothing says where the daemon listens.
pub const DEFAULT_ADDRESS: &str = "127.0.0.1:9898";
/// Where the daemon listens when neither `--listen` nor the config's `listen:` says (the
/// image sets it to 0.0.0.0:9898); `health` reads it too.
pub const LISTEN_ENV: &str = "RESTICPILOT_LISTEN";

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

/// Where the daemon listens without `--listen`: the config's `listen:`, else
/// `RESTICPILOT_LISTEN` (unset or empty: nowhere).
///
/// Fails with a usage error naming the variable when it is set to something that is not an
/// address.
pub fn daemon_address(configured: Option<SocketAddr>) -> Result<Option<SocketAddr>, Error> {
    if configured.is_some() {
        return Ok(configured);
    }
    match std::env::var(LISTEN_ENV) {
        Ok(v) if v.trim().is_empty() => Ok(None),
        Ok(v) => v.trim().parse().map(Some).map_err(|_| {
            Error::Usage(format!(
                "{LISTEN_ENV}={v:?} is not an address to listen on: use IP:PORT such as \
                 0.0.0.0:9898, or unset it"
            ))
        }),
        Err(_) => Ok(None),
    }
}

/// The address to ask a daemon listening on `listen`: the loopback address of the same family
/// when it listens on all of them (0.0.0.0, ::).
pub fn probe_address(listen: SocketAddr) -> SocketAddr {
    let ip = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, listen.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_daemon_on_every_address_is_asked_on_loopback() {
        let probe = |s: &str| probe_address(s.parse().unwrap()).to_string();
        assert_eq!(probe("0.0.0.0:9898"), "127.0.0.1:9898");
        assert_eq!(probe("[::]:9999"), "[::1]:9999");
        assert_eq!(probe("10.0.0.5:9898"), "10.0.0.5:9898");
        assert_eq!(probe("127.0.0.2:80"), "127.0.0.2:80");
    }
}
