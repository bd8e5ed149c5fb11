//! SIGTERM and SIGINT, for every command: stop starting work, give running work a grace period,
//! then stop the children.
//!
//! The first signal sets [`requested`]: commands start nothing new (no next profile, no next
//! scheduled job) and the work in progress carries on. When the grace period is over, or at a
//! second signal, [`terminating`] is set: `process` stops every running child (restic with
//! SIGINT, which makes it remove its repository lock; everything else with SIGTERM, then
//! SIGKILL), refuses to start new ones except cleanup (on_failure hooks), and the run checks
//! [`check`] between its steps. The run then fails the ordinary way, so staging is cleared and
//! on_failure hooks run.
//!
//! The state is process-wide on purpose: a signal is delivered to the process, not to a run.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

static REQUESTED: AtomicBool = AtomicBool::new(false);
static TERMINATING: AtomicBool = AtomicBool::new(false);

/// Catches SIGTERM and SIGINT from now on; work gets `grace` after the first one.
///
/// Fails when the handlers cannot be installed.
pub fn install(grace: Duration) -> std::io::Result<()> {
    let mut signals = Signals::new([SIGTERM, SIGINT])?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for signal in signals.forever() {
                let name = if signal == SIGTERM {
                    "SIGTERM"
                } else {
                    "SIGINT"
                };
                if !REQUESTED.swap(true, Ordering::SeqCst) {
                    tracing::warn!(
                        "received {name}: starting nothing new; running work has {}s to finish before its processes are stopped (send the signal again to stop them now)",
                        grace.as_secs()
                    );
                    std::thread::spawn(move || {
                        std::thread::sleep(grace);
                        terminate("the grace period is over");
                    });
                } else {
                    terminate(&format!("received {name} again"));
                }
            }
        })?;
    Ok(())
}

/// A shutdown was asked for: start nothing new.
pub fn requested() -> bool {
    REQUESTED.load(Ordering::SeqCst)
}

/// The grace period is over: running work is being stopped.
pub fn terminating() -> bool {
    TERMINATING.load(Ordering::SeqCst)
}

/// The error a run reports when it stops for a shutdown.
#[derive(Debug, Clone, thiserror::Error)]
#[error("interrupted: resticpilot is shutting down ({0})")]
pub struct Interrupted(pub String);

/// Lets a run continue unless its work is being stopped; call it between steps.
///
/// Fails with [`Interrupted`] naming `next` (the step that will not start) once
/// [`terminating`] is set.
pub fn check(next: &str) -> Result<(), Interrupted> {
    if terminating() {
        Err(Interrupted(format!("{next} not started")))
    } else {
        Ok(())
    }
}

/// Ends the grace period: every running child is stopped from now on.
pub fn terminate(why: &str) {
    REQUESTED.store(true, Ordering::SeqCst);
    if TERMINATING.swap(true, Ordering::SeqCst) {
        return;
    }
    crate::process::stop_all();
    let running = crate::process::running_children();
    if running.is_empty() {
        tracing::warn!("{why}: stopping");
    } else {
        tracing::warn!("{why}: stopping {}", running.join(", "));
    }
    std::thread::Builder::new()
        .name("reaper".into())
        .spawn(|| {
            loop {
                crate::process::stop_children();
                std::thread::sleep(Duration::from_millis(200));
            }
        })
        .expect("spawn the thread that stops children");
}
