//! The maintenance window: containers stopped, in order, before a profile's dumps and started
//! again, in reverse order, after them, through the Docker Engine API on its unix socket.
//!
//! For databases that must not be copied while written (or rollback-journal SQLite files too
//! big to hold writers for the copy). The restart is guaranteed: [`Window`] is a guard whose
//! `Drop` starts what it stopped when the run leaves early (a failed dump, a signal that fails
//! the run, a panic). Only containers that were running are stopped and started again.
//!
//! bollard is asynchronous; the rest of resticpilot is not. Each phase runs on its own thread
//! with a fresh current-thread tokio runtime, so it works the same whether the caller is a
//! plain thread or one inside some other runtime (a daemon's).

use std::future::Future;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::errors::Error as DockerError;
use bollard::query_parameters::StopContainerOptionsBuilder;

use crate::config::Maintenance;

/// Where the Docker engine listens when `DOCKER_HOST` is unset.
pub const DEFAULT_SOCKET: &str = "/var/run/docker.sock";

/// Extra time an API call gets beyond the stop timeout before it is given up.
const REQUEST_SLACK: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum MaintenanceError {
    #[error(
        "the Docker socket {} does not exist: the maintenance window needs the Docker engine's socket mounted into this container (compose: volumes: [\"/var/run/docker.sock:/var/run/docker.sock\"]) or DOCKER_HOST=unix:///path/to/docker.sock",
        .0.display()
    )]
    SocketMissing(PathBuf),
    #[error(
        "no permission to use the Docker socket {}: run resticpilot with the socket's group (compose: group_add: [\"<gid>\"], the gid from `stat -c %g /var/run/docker.sock` on the host)",
        .0.display()
    )]
    SocketDenied(PathBuf),
    #[error("cannot connect to the Docker socket {}: {source}", .path.display())]
    Connect {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "DOCKER_HOST={0} is not a unix socket: the maintenance window talks to the local Docker engine through its socket (unix:///var/run/docker.sock)"
    )]
    UnsupportedHost(String),
    #[error("the Docker engine at {} did not answer: {message}", .path.display())]
    Engine { path: PathBuf, message: String },
    #[error("container {container}: cannot {action} it: {message}")]
    Container {
        container: String,
        action: &'static str,
        message: String,
    },
    #[error("container {0} is the one resticpilot runs in: it cannot stop itself and start again")]
    SelfStop(String),
    #[error("containers not started again after the dumps: {}", .0.join("; "))]
    Restart(Vec<String>),
}

/// The socket named by `docker_host` (the value of `DOCKER_HOST`), or the default one.
///
/// Fails when `docker_host` names anything but a unix socket.
pub fn socket_path(docker_host: Option<&str>) -> Result<PathBuf, MaintenanceError> {
    match docker_host.map(str::trim).filter(|h| !h.is_empty()) {
        None => Ok(PathBuf::from(DEFAULT_SOCKET)),
        Some(host) => match host.strip_prefix("unix://") {
            Some(path) if !path.is_empty() => Ok(PathBuf::from(path)),
            _ => Err(MaintenanceError::UnsupportedHost(host.to_string())),
        },
    }
}

/// Checks that `socket` exists and accepts a connection, so a missing mount or a missing group
/// is reported as such rather than as an HTTP client error.
///
/// Fails when the socket is missing, not accessible, or refuses the connection.
pub fn preflight(socket: &Path) -> Result<(), MaintenanceError> {
    match std::os::unix::net::UnixStream::connect(socket) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => {
            Err(MaintenanceError::SocketMissing(socket.to_path_buf()))
        }
        Err(e) if e.kind() == ErrorKind::PermissionDenied => {
            Err(MaintenanceError::SocketDenied(socket.to_path_buf()))
        }
        Err(source) => Err(MaintenanceError::Connect {
            path: socket.to_path_buf(),
            source,
        }),
    }
}

/// Containers stopped for a profile's dumps. Dropping it before [`Window::close`] starts them
/// again (and logs any that would not start).
#[must_use = "dropping the window at once restarts the containers"]
pub struct Window {
    profile: String,
    socket: PathBuf,
    request_timeout: Duration,
    /// Containers this window stopped, in stop order.
    stopped: Vec<String>,
    opened: Instant,
    closed: bool,
}

impl Window {
    /// Stops `m.stop` in order, on the engine `DOCKER_HOST` names (default
    /// `/var/run/docker.sock`). Containers that are not running are left alone, and left
    /// stopped afterwards. Every container is looked up before the first is stopped, so a wrong
    /// name stops nothing.
    ///
    /// Fails when the engine cannot be reached, a container does not exist or will not stop;
    /// any container already stopped is started again before the error is returned.
    pub fn open(profile: &str, m: &Maintenance) -> Result<Window, MaintenanceError> {
        let socket = socket_path(std::env::var("DOCKER_HOST").ok().as_deref())?;
        Window::open_on(&socket, profile, m)
    }

    /// [`Window::open`] on the engine at `socket`.
    ///
    /// Fails as [`Window::open`] does.
    pub fn open_on(
        socket: &Path,
        profile: &str,
        m: &Maintenance,
    ) -> Result<Window, MaintenanceError> {
        preflight(socket)?;
        let mut window = Window {
            profile: profile.to_string(),
            socket: socket.to_path_buf(),
            request_timeout: m.timeout + REQUEST_SLACK,
            stopped: Vec::new(),
            opened: Instant::now(),
            closed: false,
        };
        let own_id = own_container_id();
        let running = window.on_engine(|docker| async move {
            let mut running = Vec::new();
            for name in &m.stop {
                let info = docker
                    .inspect_container(name, None)
                    .await
                    .map_err(|e| container_error(name, "inspect", e))?;
                if let (Some(own), Some(id)) = (&own_id, &info.id)
                    && id.starts_with(own.as_str())
                {
                    return Err(MaintenanceError::SelfStop(name.clone()));
                }
                let is_running = info.state.and_then(|s| s.running).unwrap_or(false);
                running.push((name.clone(), is_running));
            }
            Ok(running)
        })?;
        tracing::info!(
            profile,
            "maintenance window: stopping {} (timeout {}s each)",
            m.stop.join(", "),
            m.timeout.as_secs()
        );
        window.opened = Instant::now();
        for (name, is_running) in running {
            if !is_running {
                tracing::info!(
                    profile,
                    container = %name,
                    "container {name} is not running: left as it is, and not started after the dumps"
                );
                continue;
            }
            let started = Instant::now();
            let seconds = i32::try_from(m.timeout.as_secs()).unwrap_or(i32::MAX);
            // On failure `window` drops here and starts what it already stopped.
            window.on_engine(|docker| {
                let name = name.clone();
                async move {
                    let options = StopContainerOptionsBuilder::new().t(seconds).build();
                    docker
                        .stop_container(&name, Some(options))
                        .await
                        .map_err(|e| container_error(&name, "stop", e))
                }
            })?;
            tracing::info!(
                profile,
                container = %name,
                "stopped container {name} in {:.1}s",
                started.elapsed().as_secs_f64()
            );
            window.stopped.push(name);
        }
        Ok(window)
    }

    /// The containers this window stopped, in stop order.
    #[cfg(test)]
    pub fn stopped(&self) -> &[String] {
        &self.stopped
    }

    /// Starts the stopped containers in reverse order, every one of them even when one fails.
    ///
    /// Fails when any would not start, naming each with the engine's reason.
    pub fn close(mut self) -> Result<(), MaintenanceError> {
        self.closed = true;
        self.start_all()
    }

    fn start_all(&mut self) -> Result<(), MaintenanceError> {
        if self.stopped.is_empty() {
            return Ok(());
        }
        let profile = self.profile.clone();
        let names: Vec<String> = self.stopped.iter().rev().cloned().collect();
        let failures = self
            .on_engine(|docker| async move {
                let mut failures = Vec::new();
                for name in names {
                    match docker.start_container(&name, None).await {
                        Ok(()) => tracing::info!(
                            profile = %profile,
                            container = %name,
                            "started container {name}"
                        ),
                        Err(e) => failures.push(container_error(&name, "start", e).to_string()),
                    }
                }
                Ok(failures)
            })
            .unwrap_or_else(|e| vec![e.to_string()]);
        let down = self.opened.elapsed().as_secs_f64();
        self.stopped.clear();
        if failures.is_empty() {
            tracing::info!(profile = %self.profile, "maintenance window closed: containers were down {down:.1}s");
            Ok(())
        } else {
            Err(MaintenanceError::Restart(failures))
        }
    }

    /// Runs `f` against the engine on a thread of its own with a fresh current-thread runtime.
    fn on_engine<T, F, Fut>(&self, f: F) -> Result<T, MaintenanceError>
    where
        T: Send,
        F: FnOnce(Docker) -> Fut + Send,
        Fut: Future<Output = Result<T, MaintenanceError>>,
    {
        let socket = &self.socket;
        let timeout = self.request_timeout.as_secs();
        std::thread::scope(|scope| {
            scope
                .spawn(move || {
                    let engine_error = |message: String| MaintenanceError::Engine {
                        path: socket.clone(),
                        message,
                    };
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .map_err(|e| engine_error(format!("cannot start an I/O runtime: {e}")))?;
                    runtime.block_on(async move {
                        let path = socket.to_str().ok_or_else(|| {
                            engine_error("the socket path is not UTF-8".to_string())
                        })?;
                        let docker =
                            Docker::connect_with_unix(path, timeout, bollard::API_DEFAULT_VERSION)
                                .map_err(|e| engine_error(e.to_string()))?
                                // Older engines refuse a client newer than they are.
                                .negotiate_version()
                                .await
                                .map_err(|e| engine_error(e.to_string()))?;
                        f(docker).await
                    })
                })
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }
}

impl Drop for Window {
    fn drop(&mut self) {
        if self.closed || self.stopped.is_empty() {
            return;
        }
        tracing::warn!(
            profile = %self.profile,
            "the run stopped early: starting {} again",
            self.stopped.join(", ")
        );
        if let Err(e) = self.start_all() {
            tracing::error!(profile = %self.profile, "{e}");
        }
    }
}

fn container_error(name: &str, action: &'static str, e: DockerError) -> MaintenanceError {
    let message = match e {
        DockerError::DockerResponseServerError {
            status_code,
            message,
        } => format!("{message} (HTTP {status_code})"),
        DockerError::RequestTimeoutError => "the Docker engine did not answer in time".to_string(),
        other => other.to_string(),
    };
    MaintenanceError::Container {
        container: name.to_string(),
        action,
        message,
    }
}

/// The id prefix of the container this process runs in, when it looks like it runs in one:
/// Docker sets the hostname to the first 12 hex digits of the container's id unless told
/// otherwise.
fn own_container_id() -> Option<String> {
    if !Path::new("/.dockerenv").exists() {
        return None;
    }
    let host = crate::config::local_hostname();
    (host.len() == 12 && host.chars().all(|c| c.is_ascii_hexdigit())).then_some(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_host_picks_the_socket() {
        assert_eq!(socket_path(None).unwrap(), Path::new(DEFAULT_SOCKET));
        assert_eq!(socket_path(Some("")).unwrap(), Path::new(DEFAULT_SOCKET));
        assert_eq!(
            socket_path(Some("unix:///run/user/1000/docker.sock")).unwrap(),
            Path::new("/run/user/1000/docker.sock")
        );
        let err = socket_path(Some("tcp://10.0.0.2:2375")).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("DOCKER_HOST=tcp://10.0.0.2:2375 is not a unix socket"),
            "{err}"
        );
    }

    #[test]
    fn a_missing_socket_says_to_mount_it() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("docker.sock");
        let err = preflight(&socket).unwrap_err();
        assert!(matches!(err, MaintenanceError::SocketMissing(_)), "{err:?}");
        let text = err.to_string();
        assert!(text.contains(&socket.display().to_string()), "{text}");
        assert!(
            text.contains("/var/run/docker.sock:/var/run/docker.sock"),
            "{text}"
        );
    }

    #[test]
    fn a_socket_nobody_listens_on_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("docker.sock");
        drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
        // A test running beside this one may fork between the bind and the drop: its child
        // holds the listening socket until its exec closes it (CLOEXEC), and a connect in that
        // moment is accepted by the backlog. Once every child has exec'd, nobody listens.
        let deadline = Instant::now() + Duration::from_secs(5);
        let err = loop {
            match preflight(&socket) {
                Err(e) => break e,
                Ok(()) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Ok(()) => panic!("a socket nobody listens on accepted the connection"),
            }
        };
        assert!(matches!(err, MaintenanceError::Connect { .. }), "{err:?}");
    }

    #[test]
    fn a_socket_that_is_not_docker_fails_before_anything_is_stopped() {
        // A listener that accepts and hangs up: the engine's version query fails, and the
        // error names the socket.
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("docker.sock");
        let listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
        let server = std::thread::spawn(move || {
            // The preflight connection, then the client's.
            for _ in 0..2 {
                if let Ok((conn, _)) = listener.accept() {
                    drop(conn);
                }
            }
        });
        let m = Maintenance {
            stop: vec!["app".into()],
            timeout: Duration::from_secs(1),
        };
        let err = match Window::open_on(&socket, "p", &m) {
            Err(e) => e,
            Ok(w) => panic!("opened a window on a fake engine: {:?}", w.stopped()),
        };
        server.join().unwrap();
        assert!(matches!(err, MaintenanceError::Engine { .. }), "{err:?}");
        assert!(
            err.to_string().contains(&socket.display().to_string()),
            "{err}"
        );
    }
}
