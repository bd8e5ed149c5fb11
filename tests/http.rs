//! The daemon's HTTP listener under clients that misbehave: one client pipelining thousands of
//! requests without reading, a header of 64 MiB, a slowloris holding hundreds of connections.
//! Each test runs the real daemon and asks `/healthz` with a well-behaved client while the
//! other one misbehaves; it must keep answering, and the daemon's memory and threads stay
//! bounded (read from /proc: resource bounds, not timings).

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::daemon::{Daemon, WAIT, get};
use crate::harness::{Sandbox, make_sqlite, to_run};

/// `profiles` profiles scheduled once a year: the daemon serves and runs nothing during the
/// test. Each profile adds its series to /metrics (about 60 bytes before its first run);
/// `max_age` is set so that /healthz does not compute it from the schedule.
fn idle_daemon(sb: &Sandbox, profiles: usize) -> (Daemon, String) {
    drop(make_sqlite(&sb.path("data/app.db"), 10));
    let mut config = String::from("profiles:\n");
    for i in 0..profiles {
        config.push_str(&format!(
            "  app{i}:
    repository: local
    host: test-host
    databases:
      - {{ name: app, type: sqlite, path: '{{dir}}/data/app.db' }}
    schedule: '0 0 1 1 *'
    catch_up: skip
    max_age: 400d
"
        ));
    }
    sb.config(&config);
    let mut daemon = Daemon::start(sb, &["--listen", "127.0.0.1:0"]);
    let address = daemon.address();
    (daemon, address)
}

/// A field of /proc/PID/status in kB (VmHWM, VmRSS) or as a count (Threads).
fn proc_status(daemon: &Daemon, field: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{}/status", daemon.pid())).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/PID/status:\n{text}"))
}

/// How many files (sockets included) the daemon has open.
fn open_files(daemon: &Daemon) -> usize {
    std::fs::read_dir(format!("/proc/{}/fd", daemon.pid()))
        .unwrap()
        .count()
}

/// `/healthz` answers (200 while the never-run profile is within its max_age). The 10 s
/// timeout of `get` is the guard: a blocked listener fails the test instead of hanging it.
#[track_caller]
fn assert_healthz_answers(address: &str, while_what: &str) {
    let (code, body) = get(address, "/healthz");
    assert_eq!(code, 200, "/healthz {while_what}: {body}");
}

/// Reads until the server closes the connection (EOF or reset); returns what was read.
/// Fails the test when it stays open past `limit`.
#[track_caller]
fn read_until_closed(stream: &mut TcpStream, limit: Duration, what: &str) -> Vec<u8> {
    read_until(stream, limit, what, |_| false)
}

/// Reads until the server closes the connection or `enough` says so; returns what was read.
/// Fails the test when neither happens within `limit`.
#[track_caller]
fn read_until(
    stream: &mut TcpStream,
    limit: Duration,
    what: &str,
    enough: impl Fn(&[u8]) -> bool,
) -> Vec<u8> {
    let deadline = Instant::now() + limit;
    let mut got = Vec::new();
    let mut buf = [0u8; 64 * 1024];
    stream
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return got,
            Ok(n) => {
                got.extend_from_slice(&buf[..n]);
                if enough(&got) {
                    return got;
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return got, // reset: closed too
        }
        assert!(
            Instant::now() < deadline,
            "the daemon kept {what} open for {limit:?}"
        );
    }
}

#[test]
fn a_pipelining_client_that_never_reads_does_not_block_healthz_and_is_cut_off() {
    let sb = Sandbox::new();
    // 2000 profiles: each answer of /metrics is over 100 KiB, so the socket buffers fill
    // with fewer answers than a connection may have.
    let (daemon, address) = idle_daemon(&sb, 2000);
    let (code, metrics) = get(&address, "/metrics");
    assert!(
        code == 200 && metrics.len() > 100 * 1024,
        "{code}: {} bytes",
        metrics.len()
    );
    let hwm_before = proc_status(&daemon, "VmHWM");

    // 20 000 requests for /metrics in one write stream, never reading the answers: far more
    // than the socket buffers hold, so the server's writes stall.
    let mut pipeliner = TcpStream::connect(&address).unwrap();
    pipeliner
        .set_write_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let batch = b"GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n".repeat(500);
    for _ in 0..40 {
        if pipeliner.write_all(&batch).is_err() {
            break; // the server stopped reading (or closed): what a bounded server does
        }
    }

    assert_healthz_answers(&address, "while a client pipelines without reading");
    assert_healthz_answers(&address, "a second time");

    // The server gives up on a client that reads nothing and closes the connection.
    read_until_closed(&mut pipeliner, WAIT, "the pipelining connection");
    let hwm_after = proc_status(&daemon, "VmHWM");
    assert!(
        hwm_after < hwm_before + 16 * 1024,
        "the daemon's peak memory grew from {hwm_before} kB to {hwm_after} kB"
    );
    assert_healthz_answers(&address, "after the pipelining client");
    daemon.terminate().assert_code(0);
}

#[test]
fn one_connection_is_answered_100_times_then_closed() {
    let sb = Sandbox::new();
    let (daemon, address) = idle_daemon(&sb, 1);
    let mut client = TcpStream::connect(&address).unwrap();
    let mut closing = Vec::new();
    for n in 1..=100 {
        client
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n")
            .unwrap();
        // The whole answer: its head, then content-length bytes of body.
        let answer = read_until(&mut client, WAIT, "a keep-alive connection", |got| {
            let text = String::from_utf8_lossy(got);
            let Some((head, body)) = text.split_once("\r\n\r\n") else {
                return false;
            };
            let length = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length: ")?
                        .parse()
                        .ok()
                })
                .unwrap_or(0usize);
            body.len() >= length
        });
        let answer = String::from_utf8_lossy(&answer).to_ascii_lowercase();
        assert!(answer.starts_with("http/1.1 200"), "answer {n}: {answer}");
        if answer.contains("\r\nconnection: close\r\n") {
            closing.push(n);
        }
    }
    assert_eq!(closing, [100], "answers that said `Connection: close`");
    // The 101st request finds the connection closed.
    let _ = client.write_all(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n");
    let after = read_until_closed(&mut client, WAIT, "a connection after 100 answers");
    assert!(after.is_empty(), "{}", String::from_utf8_lossy(&after));
    daemon.terminate().assert_code(0);
}

#[test]
fn a_64_mib_header_is_refused_with_431_and_memory_stays_bounded() {
    let sb = Sandbox::new();
    let (daemon, address) = idle_daemon(&sb, 1);
    let hwm_before = proc_status(&daemon, "VmHWM");

    let mut client = TcpStream::connect(&address).unwrap();
    client
        .set_write_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    client
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: test\r\nX-Padding: ")
        .unwrap();
    let chunk = vec![b'a'; 64 * 1024];
    let mut written = 0usize;
    while written < 64 << 20 {
        if client.write_all(&chunk).is_err() {
            break; // the server answered and closed: expected
        }
        written += chunk.len();
    }
    if written >= 64 << 20 {
        let _ = client.write_all(b"\r\n\r\n");
    }
    // Whatever the server sent before it closed: a 431, or nothing when the reset came first.
    let answer = read_until(&mut client, WAIT, "a 64 MiB header", |got| {
        got.windows(4).any(|w| w == b"\r\n\r\n")
    });
    let hwm_after = proc_status(&daemon, "VmHWM");
    assert!(
        hwm_after < hwm_before + 16 * 1024,
        "the daemon's peak memory grew from {hwm_before} kB to {hwm_after} kB reading a \
         header ({written} bytes of it sent)"
    );
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 431"),
        "answer to a 64 MiB header: {:?}",
        answer.chars().take(200).collect::<String>()
    );
    read_until_closed(&mut client, WAIT, "the connection with a 64 MiB header");

    // A header just over the bound gets the 431 itself (no reset race: it is all sent).
    let mut client = TcpStream::connect(&address).unwrap();
    let mut request = b"GET /healthz HTTP/1.1\r\nHost: test\r\nX-Padding: ".to_vec();
    request.extend(std::iter::repeat_n(b'a', 40 * 1024));
    request.extend_from_slice(b"\r\n\r\n");
    let _ = client.write_all(&request);
    let answer = read_until_closed(&mut client, WAIT, "the connection with a 40 KiB header");
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.starts_with("HTTP/1.1 431"),
        "answer to a 40 KiB header: {answer:?}"
    );
    assert_healthz_answers(&address, "after a huge header");
    daemon.terminate().assert_code(0);
}

#[test]
fn a_slowloris_holding_many_connections_does_not_block_healthz_and_is_cut_off() {
    let sb = Sandbox::new();
    let (daemon, address) = idle_daemon(&sb, 1);
    let threads_before = proc_status(&daemon, "Threads");
    let fds_before = open_files(&daemon);

    // 400 connections, each sending its request line and then one header byte a second,
    // never finishing the header.
    let mut slow: Vec<Option<TcpStream>> = (0..400)
        .map(|_| {
            let mut s = TcpStream::connect(&address).unwrap();
            s.set_write_timeout(Some(Duration::from_secs(1))).unwrap();
            s.write_all(b"GET /metrics HTTP/1.1\r\nHost: test\r\nX-Slow: ")
                .unwrap();
            Some(s)
        })
        .collect();
    let trickle = |slow: &mut Vec<Option<TcpStream>>| {
        for s in slow.iter_mut() {
            if let Some(stream) = s
                && stream.write_all(b"a").is_err()
            {
                *s = None; // closed by the server
            }
        }
    };
    trickle(&mut slow);
    // Accepted after the 400 (one queue): once it is answered, all of them were accepted.
    assert_healthz_answers(&address, "while a slowloris holds 400 connections");
    let threads = proc_status(&daemon, "Threads");
    assert!(
        threads < threads_before + 16,
        "the daemon went from {threads_before} to {threads} threads for 400 connections"
    );
    // It holds at most 256 connections: the oldest were closed to make room.
    let fds = open_files(&daemon);
    assert!(
        fds < fds_before + 256 + 16,
        "the daemon went from {fds_before} to {fds} open files for 400 connections"
    );

    // The daemon gives up on headers that do not finish: every slow connection is closed.
    let deadline = Instant::now() + WAIT;
    while slow.iter().any(Option::is_some) {
        assert!(
            Instant::now() < deadline,
            "{} of 400 slowloris connections still open after {WAIT:?}",
            slow.iter().filter(|s| s.is_some()).count()
        );
        std::thread::sleep(Duration::from_secs(1));
        trickle(&mut slow);
        assert_healthz_answers(&address, "while the slowloris trickles");
    }
    daemon.terminate().assert_code(0);
}

/// A port nothing listens on at the moment (bound and released).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn health_without_address_asks_where_the_config_or_the_environment_says() {
    let sb = Sandbox::new();
    drop(make_sqlite(&sb.path("data/app.db"), 10));
    let profile = "profiles:
  app:
    repository: local
    host: test-host
    databases:
      - { name: app, type: sqlite, path: '{dir}/data/app.db' }
    schedule: '0 0 1 1 *'
    catch_up: skip
    max_age: 400d
";
    // The config's `listen:`: the daemon and `health` (no --address) both follow it.
    let port = free_port();
    sb.config(&format!("listen: 127.0.0.1:{port}\n{profile}"));
    let mut daemon = Daemon::start(&sb, &[]);
    assert_eq!(daemon.address(), format!("127.0.0.1:{port}"));
    let probe = sb.run(&["health"]);
    probe.assert_code(0);
    assert!(probe.stdout.starts_with("ok\n"), "{}", probe.all());
    daemon.terminate().assert_code(0);

    // No `listen:`: RESTICPILOT_LISTEN (what the image sets) for both.
    sb.config(profile);
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut daemon = Daemon::start_with_env(&sb, &[], &[("RESTICPILOT_LISTEN", &listen)]);
    assert_eq!(daemon.address(), listen);
    let probe = to_run(
        sb.command(&sb.path("config.yaml"), &["health"])
            .env("RESTICPILOT_LISTEN", &listen)
            .output()
            .unwrap(),
    );
    probe.assert_code(0);
    assert!(probe.stdout.starts_with("ok\n"), "{}", probe.all());

    // A `--listen` that health cannot know of is pointed out in the log.
    let port = free_port();
    let other = format!("127.0.0.1:{port}");
    let mut second = Daemon::start_with_env(
        &sb,
        &["--listen", &other],
        &[("RESTICPILOT_LISTEN", &listen)],
    );
    assert_eq!(second.address(), other);
    let warning = second.wait_for_line("--listen", WAIT);
    assert!(
        warning.contains(&format!("asks {listen} instead"))
            && warning.contains("RESTICPILOT_LISTEN="),
        "{warning}"
    );
    second.terminate().assert_code(0);
    daemon.terminate().assert_code(0);

    // A RESTICPILOT_LISTEN that is not an address: a usage error naming it, from both.
    for args in [&["daemon"][..], &["health"][..]] {
        let run = to_run(
            sb.command(&sb.path("config.yaml"), args)
                .env("RESTICPILOT_LISTEN", "localhost")
                .output()
                .unwrap(),
        );
        run.assert_code(2);
        assert!(
            run.stderr
                .contains("RESTICPILOT_LISTEN=\"localhost\" is not an address to listen on"),
            "{}",
            run.stderr
        );
    }
}
