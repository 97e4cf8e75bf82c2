//! Starting the fleet's per-target processes (issue 18): `pg-hotswap run`, `resume` and
//! `revert` for one target, as child processes of this executable, each one's output appended
//! to the target's log file, and the error a target's process left there.
//!
//! Invariant kept here: a target's connection string reaches its process only through the
//! environment (`DATABASE_URL`), never its command line (the process list) or a log line; and
//! the processes are not tied to the fleet's: they outlive it (no kill on drop, no pipe to it
//! that could break).

use super::targets::{self, FleetTarget};
use super::FleetTargetArgs;
use crate::error::{Error, Result};
use std::path::PathBuf;

/// Starts the targets' runs and their continuations: this executable as a child process, its
/// output appended to the target's log file, the connection string in its environment
/// (`DATABASE_URL`, so no password shows in the process list).
pub struct ChildLauncher {
    exe: PathBuf,
    table: String,
    state_schema: String,
    log_dir: PathBuf,
}

impl ChildLauncher {
    pub(super) fn new(t: &FleetTargetArgs, log_dir: PathBuf) -> Result<ChildLauncher> {
        let exe = std::env::current_exe()
            .map_err(|e| Error::failed(format!("cannot find this executable: {e}")))?;
        std::fs::create_dir_all(&log_dir).map_err(|e| {
            Error::usage(format!(
                "cannot create the log directory {}: {e}",
                log_dir.display()
            ))
        })?;
        Ok(ChildLauncher {
            exe,
            table: t.table.clone(),
            state_schema: t.state_schema.clone(),
            log_dir,
        })
    }

    pub(super) fn log_path(&self, t: &FleetTarget) -> PathBuf {
        self.log_dir.join(targets::log_name(t))
    }

    /// Spawns `pg-hotswap <args>` for target `t`.
    pub(super) fn spawn(&self, t: &FleetTarget, args: &[String]) -> Result<tokio::process::Child> {
        use std::io::Write;
        let path = self.log_path(t);
        let open = || {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
        };
        let io_err = |e: std::io::Error| {
            Error::failed(format!("cannot write the log file {}: {e}", path.display()))
        };
        let mut log = open().map_err(io_err)?;
        let _ = writeln!(
            log,
            "=== pg-hotswap {} (target {})",
            args.join(" "),
            t.label
        );
        let err = open().map_err(io_err)?;
        let mut cmd = tokio::process::Command::new(&self.exe);
        cmd.args(args)
            .env("DATABASE_URL", &t.dsn)
            .env_remove("PGHOTSWAP_FAILPOINT")
            .stdin(std::process::Stdio::null())
            .stdout(log)
            .stderr(err)
            .kill_on_drop(false);
        cmd.spawn()
            .map_err(|e| Error::failed(format!("cannot start the run of {}: {e}", t.label)))
    }

    /// `--table`, `--state-schema` for a child.
    pub(super) fn base(&self, verb: &str) -> Vec<String> {
        vec![
            verb.to_string(),
            "--table".into(),
            self.table.clone(),
            "--state-schema".into(),
            self.state_schema.clone(),
        ]
    }

    /// Continues the target's stopped run (`pg-hotswap resume`: its recorded arguments, swap
    /// at once) and waits for it; its exit status.
    pub async fn resume(&self, t: &FleetTarget) -> Result<i32> {
        let mut child = self.spawn(t, &self.base("resume"))?;
        let status = child
            .wait()
            .await
            .map_err(|e| Error::failed(format!("waiting for the run of {}: {e}", t.label)))?;
        Ok(status.code().unwrap_or(1))
    }

    /// The last lines of the target's log from its last `error` line on (at most 6).
    pub(super) fn error_tail(&self, t: &FleetTarget) -> Option<String> {
        let text = std::fs::read_to_string(self.log_path(t)).ok()?;
        let lines: Vec<&str> = text.lines().collect();
        let start = lines
            .iter()
            .rposition(|l| l.trim_start().starts_with("error"))?;
        let text = lines[start..lines.len().min(start + 6)]
            .iter()
            .map(|l| l.trim())
            .collect::<Vec<_>>()
            .join(" ");
        Some(
            text.strip_prefix("error:")
                .unwrap_or(&text)
                .trim()
                .to_string(),
        )
    }
}
