//! The daemon's HTTP server (tiny_http, one thread): `GET /healthz` and `GET /metrics`, both
//! computed from the status files on each request. It binds exactly the configured address.

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;

use chrono::{DateTime, Utc};
use tiny_http::{Header, Method, Response};

use super::status::StatusStore;
use super::{health, metrics};
use crate::config::Config;
use crate::error::Error;

/// What the handlers read.
pub struct Served {
    pub config: Config,
    pub store: StatusStore,
    /// When the daemon started: the reference for profiles that never succeeded.
    pub started: DateTime<Utc>,
}

pub struct Server {
    inner: Arc<tiny_http::Server>,
    thread: Option<JoinHandle<()>>,
    addr: SocketAddr,
}

impl Server {
    /// Binds `addr` and serves from a thread.
    ///
    /// Fails when the address cannot be bound (in use, not local, no permission).
    pub fn start(addr: SocketAddr, served: Arc<Served>) -> Result<Server, Error> {
        let inner = tiny_http::Server::http(addr).map_err(|e| {
            Error::io(
                format!("cannot listen on {addr}"),
                std::io::Error::other(e.to_string()),
            )
        })?;
        let bound = inner
            .server_addr()
            .to_ip()
            .expect("an http server listens on an IP address");
        let inner = Arc::new(inner);
        let server = inner.clone();
        let thread = std::thread::Builder::new()
            .name("http".into())
            .spawn(move || {
                for request in server.incoming_requests() {
                    handle(request, &served);
                }
            })
            .map_err(|e| Error::io("cannot start the HTTP thread", e))?;
        Ok(Server {
            inner,
            thread: Some(thread),
            addr: bound,
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops serving and waits for the thread.
    pub fn stop(mut self) {
        self.inner.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn handle(request: tiny_http::Request, served: &Served) {
    let path = request
        .url()
        .split('?')
        .next()
        .unwrap_or_default()
        .to_string();
    let method = request.method().clone();
    let (code, content_type, body) = match (&method, path.as_str()) {
        (Method::Get | Method::Head, "/healthz") => {
            let statuses = served
                .store
                .load_all(served.config.profiles.keys().map(String::as_str));
            let h = health::evaluate(&served.config, &statuses, Utc::now(), served.started);
            let code = if h.healthy { 200 } else { 503 };
            (code, "text/plain; charset=utf-8", h.text)
        }
        (Method::Get | Method::Head, "/metrics") => {
            let statuses = served
                .store
                .load_all(served.config.profiles.keys().map(String::as_str));
            (
                200,
                "text/plain; version=0.0.4; charset=utf-8",
                metrics::render(&served.config, &statuses, Utc::now()),
            )
        }
        (Method::Get | Method::Head, _) => (
            404,
            "text/plain; charset=utf-8",
            "not found: try /healthz or /metrics\n".to_string(),
        ),
        _ => (
            405,
            "text/plain; charset=utf-8",
            "method not allowed\n".to_string(),
        ),
    };
    tracing::debug!("http {method} {path} -> {code}");
    let header = Header::from_bytes("Content-Type", content_type).expect("a valid static header");
    let response = Response::from_string(body)
        .with_status_code(code)
        .with_header(header);
    if let Err(err) = request.respond(response) {
        tracing::debug!("http: could not answer {path}: {err}");
    }
}
