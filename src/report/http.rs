//! The daemon's HTTP server: `GET /healthz` and `GET /metrics`, both computed from the status
//! files on each request. It binds exactly the configured address.
//!
//! Its clients are a container's health check and a Prometheus scraper, but anyone who can
//! reach the port can send anything, so every connection is bounded and none can hold the
//! others up. It is hyper's HTTP/1 server (already in the dependency tree through the Docker
//! client) on a single-threaded tokio runtime in a thread of its own: a connection is a task
//! of a few kilobytes, waiting on a slow client costs no thread, and hyper stops reading a
//! connection's pipelined requests while it cannot send their answers. On top of hyper's
//! header bound and header timeout, this module bounds the time a client may leave an answer
//! unread, the requests per connection and the connections open at once (see the constants).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use http_body_util::Full;
use hyper::header::{CONNECTION, CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;

use super::status::StatusStore;
use super::{health, metrics};
use crate::config::Config;
use crate::error::Error;

/// The largest request head (request line and headers) read; a larger one is answered
/// 431 Request Header Fields Too Large and the connection closed.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;
/// How long a client has to send a complete request head, counted from the connection's
/// start or the previous answer: closes idle keep-alive connections and slowloris clients
/// (a byte now and then does not extend it).
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an answer may wait for a client that reads nothing before the connection is
/// closed (a client pipelining requests without reading their answers).
pub const WRITE_STALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Requests answered on one connection; the last answer says `Connection: close`.
pub const MAX_REQUESTS_PER_CONNECTION: u32 = 100;
/// Connections open at once; a new one closes the oldest, so clients that hold connections
/// open cannot lock a health check out.
pub const MAX_CONNECTIONS: usize = 256;

/// What the handlers read.
pub struct Served {
    pub config: Config,
    pub store: StatusStore,
    /// When the daemon started: the reference for profiles that never succeeded.
    pub started: DateTime<Utc>,
}

pub struct Server {
    accept: AbortHandle,
    thread: Option<JoinHandle<()>>,
    addr: SocketAddr,
}

impl Server {
    /// Binds `addr` and serves from a thread.
    ///
    /// Fails when the address cannot be bound (in use, not local, no permission) or the
    /// thread cannot be started.
    pub fn start(addr: SocketAddr, served: Arc<Served>) -> Result<Server, Error> {
        let listen_error = |e| Error::io(format!("cannot listen on {addr}"), e);
        let listener = std::net::TcpListener::bind(addr).map_err(listen_error)?;
        listener.set_nonblocking(true).map_err(listen_error)?;
        let bound = listener.local_addr().map_err(listen_error)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map_err(|e| Error::io("cannot start the HTTP server's runtime", e))?;
        let listener = {
            let _context = runtime.enter();
            TcpListener::from_std(listener).map_err(listen_error)?
        };
        let accept = runtime.spawn(accept_loop(listener, served));
        let abort = accept.abort_handle();
        let thread = std::thread::Builder::new()
            .name("http".into())
            .spawn(move || {
                // Returns when stop() aborts the accept loop; dropping the runtime then
                // closes every open connection.
                let _ = runtime.block_on(accept);
            })
            .map_err(|e| Error::io("cannot start the HTTP thread", e))?;
        Ok(Server {
            accept: abort,
            thread: Some(thread),
            addr: bound,
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops serving, closes the open connections and waits for the thread.
    pub fn stop(mut self) {
        self.accept.abort();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The open connections by age (ids increase), to close the oldest when full.
type Open = Arc<Mutex<BTreeMap<u64, AbortHandle>>>;

async fn accept_loop(listener: TcpListener, served: Arc<Served>) {
    let open: Open = Arc::default();
    let mut next_id = 0u64;
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(err) => {
                // Out of file descriptors, most likely: wait for some to be freed.
                tracing::warn!("http: cannot accept a connection: {err}");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        {
            let mut open = open.lock().unwrap_or_else(|e| e.into_inner());
            while open.len() >= MAX_CONNECTIONS {
                if let Some((_, oldest)) = open.pop_first() {
                    oldest.abort();
                }
            }
        }
        next_id += 1;
        let registered = Registered {
            open: open.clone(),
            id: next_id,
        };
        let task = tokio::spawn(connection(stream, peer, served.clone(), registered));
        // The runtime has one thread: the task cannot run (and deregister) before this.
        open.lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(next_id, task.abort_handle());
    }
}

/// A connection's entry in [`Open`], removed when its task ends or is aborted.
struct Registered {
    open: Open,
    id: u64,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.id);
    }
}

async fn connection(stream: TcpStream, peer: SocketAddr, served: Arc<Served>, _r: Registered) {
    let answered = AtomicU32::new(0);
    let service = hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
        let n = answered.fetch_add(1, Ordering::Relaxed) + 1;
        let served = served.clone();
        async move {
            // Other connections' turn first: hyper would otherwise answer a pipelining
            // client's buffered requests back to back while everyone else waits.
            tokio::task::yield_now().await;
            let mut response = respond(&request, &served);
            if n >= MAX_REQUESTS_PER_CONNECTION {
                response
                    .headers_mut()
                    .insert(CONNECTION, HeaderValue::from_static("close"));
            }
            Ok::<_, Infallible>(response)
        }
    });
    let io = WriteStallTimeout::new(TokioIo::new(stream), WRITE_STALL_TIMEOUT);
    let served = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_header_size(MAX_HEADER_BYTES)
        // Reads and queued answers; at least 8 KiB (hyper's minimum).
        .max_buf_size(2 * MAX_HEADER_BYTES)
        .serve_connection(io, service)
        .await;
    if let Err(err) = served {
        tracing::debug!("http: connection from {peer} closed: {err}");
    }
}

fn respond(request: &Request<hyper::body::Incoming>, served: &Served) -> Response<Full<Bytes>> {
    let path = request.uri().path();
    let method = request.method();
    let (code, content_type, body) = match (method, path) {
        (&Method::GET | &Method::HEAD, "/healthz") => {
            let statuses = served
                .store
                .load_all(served.config.profiles.keys().map(String::as_str));
            let h = health::evaluate(&served.config, &statuses, Utc::now(), served.started);
            let code = if h.healthy {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            (code, "text/plain; charset=utf-8", h.text)
        }
        (&Method::GET | &Method::HEAD, "/metrics") => {
            let statuses = served
                .store
                .load_all(served.config.profiles.keys().map(String::as_str));
            (
                StatusCode::OK,
                "text/plain; version=0.0.4; charset=utf-8",
                metrics::render(&served.config, &statuses, Utc::now()),
            )
        }
        (&Method::GET | &Method::HEAD, _) => (
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "not found: try /healthz or /metrics\n".to_string(),
        ),
        _ => (
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain; charset=utf-8",
            "method not allowed\n".to_string(),
        ),
    };
    tracing::debug!("http {method} {path} -> {}", code.as_u16());
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = code;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// The connection's socket, failing a write that makes no progress for `limit`: hyper has no
/// write timeout, and a client that never reads would otherwise hold its connection forever.
struct WriteStallTimeout<T> {
    inner: T,
    limit: Duration,
    stalled: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<T> WriteStallTimeout<T> {
    fn new(inner: T, limit: Duration) -> Self {
        WriteStallTimeout {
            inner,
            limit,
            stalled: None,
        }
    }

    /// After the socket said Pending: Pending until `limit` has passed since the first
    /// Pending without progress, then an error.
    fn stall<R>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<R>> {
        let limit = self.limit;
        let sleep = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("the client read nothing for {}s", limit.as_secs()),
            ))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn track<R>(&mut self, cx: &mut Context<'_>, poll: Poll<io::Result<R>>) -> Poll<io::Result<R>> {
        match poll {
            Poll::Pending => self.stall(cx),
            ready => {
                self.stalled = None;
                ready
            }
        }
    }
}

impl<T: hyper::rt::Read + Unpin> hyper::rt::Read for WriteStallTimeout<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<T: hyper::rt::Write + Unpin> hyper::rt::Write for WriteStallTimeout<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.track(cx, poll)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.track(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_flush(cx);
        this.track(cx, poll)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_shutdown(cx);
        this.track(cx, poll)
    }
}
