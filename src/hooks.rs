//! User hooks: shell commands run before the dumps, after a successful run, and after a
//! failed one. Each gets RESTICPILOT_PROFILE and RESTICPILOT_HOOK, and on failure
//! RESTICPILOT_ERROR, in its environment.

use crate::process::{Cmd, ProcessError};

#[derive(Debug, Clone, Copy)]
pub enum HookKind {
    Before,
    After,
    OnFailure,
}

impl HookKind {
    pub fn name(self) -> &'static str {
        match self {
            HookKind::Before => "before",
            HookKind::After => "after",
            HookKind::OnFailure => "on_failure",
        }
    }
}

/// Runs `commands` in order with `sh -c`, stopping at the first that fails.
///
/// Fails with that command's status and stderr tail.
pub fn run(
    kind: HookKind,
    commands: &[String],
    profile: &str,
    error: Option<&str>,
) -> Result<(), ProcessError> {
    for command in commands {
        tracing::info!(profile, hook = kind.name(), "running hook: {command}");
        let mut cmd = Cmd::new("sh")
            .arg("-c")
            .arg(command)
            .env("RESTICPILOT_PROFILE", profile)
            .env("RESTICPILOT_HOOK", kind.name());
        if let Some(error) = error {
            cmd = cmd.env("RESTICPILOT_ERROR", error);
        }
        if let HookKind::OnFailure = kind {
            // A run stopped by a shutdown still reports its failure.
            cmd = cmd.cleanup();
        }
        let out = cmd.output()?;
        for line in out.stdout_string().lines() {
            tracing::info!(profile, hook = kind.name(), "{line}");
        }
        out.ensure_success(&format!("{} hook `{command}`", kind.name()))?;
    }
    Ok(())
}
