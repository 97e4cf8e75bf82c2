//! The flags of pace and schedule (throttling, windows, start time, cut-over; issue 7) and of
//! old snapshots before the swap (issue 21), shared by `run`, `plan` and `resume`. None of them
//! changes the result, so a resumed run may use others.

use super::flags::{parse_duration, parse_wait, LockArgs};
use crate::error::{Error, Result};
use clap::{Args, ValueEnum};
use std::time::Duration;

/// Pace and schedule: throttling, windows, start time, cut-over (issue 7). None of these change
/// the result, so a resumed run may use others.
#[derive(Args, Debug, Clone)]
pub struct PaceArgs {
    /// Hold copy and replay while replication lag (pg_stat_replication on this server, and each
    /// --replica-dsn) exceeds this, e.g. 10s.
    #[arg(long, value_parser = parse_duration)]
    pub max_lag: Option<Duration>,
    /// A standby whose replay lag counts for --max-lag (repeatable).
    #[arg(long = "replica-dsn", requires = "max_lag")]
    pub replica_dsns: Vec<String>,
    /// Hold copy and replay while more than this many other sessions of the database are active.
    #[arg(long, value_parser = clap::value_parser!(i64).range(1..))]
    pub max_active: Option<i64>,
    /// A read-only SELECT returning one boolean, checked every second; true holds copy and replay.
    #[arg(long)]
    pub throttle_query: Option<String>,
    /// After each chunk or replay batch, pause this many times its duration (0.5: work two
    /// thirds of the time).
    #[arg(long, default_value_t = 0.0, value_parser = parse_nice)]
    pub nice: f64,
    /// Only copy and swap inside this window: [DAYS ]HH:MM-HH:MM[ TIMEZONE], e.g.
    /// "Mon-Fri 01:00-05:00 Europe/Berlin" (repeatable; default time zone: the server's). Replay
    /// goes on outside it. A run may span several windows.
    #[arg(long = "window", value_parser = parse_window)]
    pub windows: Vec<crate::pacing::window::Window>,
    /// Do not start before this time: HH:MM (the next time the server's clock shows it) or a
    /// timestamp ('2026-11-22 01:00 Europe/Berlin').
    #[arg(long)]
    pub start_at: Option<String>,
    /// auto (the default): swap as soon as the shadow is ready; manual: keep replaying and wait
    /// for `pg-hotswap cutover`. A resumed run keeps the mode it was started with unless this
    /// is given again.
    #[arg(long, value_enum)]
    pub cutover: Option<CutoverArg>,
    /// Stop without swapping when the replay backlog has not shrunk for this long (the writes
    /// outpace replay).
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    pub converge_timeout: Duration,
    /// A directory of executables run at the run's events, named after them: on-start,
    /// on-copy-done, on-ready, on-before-cutover (a non-zero exit postpones the swap; it is
    /// asked again), on-success, on-failure, on-stop. The run's facts are in PGHOTSWAP_*
    /// environment variables (docs/operations.md, "Hooks").
    #[arg(long)]
    pub hooks_dir: Option<std::path::PathBuf>,
    /// A hook running longer than this is killed (and counts as a failure).
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub hook_timeout: Duration,
    /// Write the run's gauges and counters to this file every few seconds, in Prometheus text
    /// format (for node_exporter's textfile collector; replaced atomically).
    #[arg(long)]
    pub metrics_file: Option<std::path::PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum CutoverArg {
    Auto,
    Manual,
}

impl PaceArgs {
    pub(super) fn into_options(
        self,
        lock: &LockArgs,
    ) -> Result<crate::pacing::governor::PaceOptions> {
        if let Some(q) = &self.throttle_query {
            if q.trim().is_empty() || q.contains('\0') {
                return Err(Error::usage(
                    "--throttle-query is empty or contains a NUL byte",
                ));
            }
        }
        if let Some(s) = &self.start_at {
            if s.trim().is_empty() || s.len() > 100 || s.contains('\0') {
                return Err(Error::usage(format!("--start-at {s:?} is not a time")));
            }
        }
        if self.hooks_dir.is_some() && self.hook_timeout.is_zero() {
            return Err(Error::usage("--hook-timeout must be longer than 0"));
        }
        let hooks = match &self.hooks_dir {
            Some(dir) => Some(crate::pacing::hooks::Hooks::load(dir, self.hook_timeout)?),
            None => None,
        };
        if let Some(p) = &self.metrics_file {
            let dir = match p.parent() {
                Some(d) if !d.as_os_str().is_empty() => d,
                _ => std::path::Path::new("."),
            };
            if p.file_name().is_none() || !dir.is_dir() {
                return Err(Error::usage(format!(
                    "--metrics-file {}: its directory does not exist",
                    p.display()
                ))
                .with_state("nothing was changed"));
            }
        }
        let replicas = self
            .replica_dsns
            .iter()
            .map(|d| super::flags::resolve_conn(Some(d), lock.lock_timeout))
            .collect::<Result<Vec<_>>>()?;
        Ok(crate::pacing::governor::PaceOptions {
            max_lag: self.max_lag,
            replicas,
            max_active: self.max_active,
            throttle_query: self.throttle_query,
            nice: self.nice,
            windows: self.windows,
            start_at: self.start_at,
            cutover: match self.cutover {
                Some(CutoverArg::Manual) => crate::pacing::governor::Cutover::Manual,
                _ => crate::pacing::governor::Cutover::Auto,
            },
            cutover_given: self.cutover.is_some(),
            converge_timeout: self.converge_timeout,
            hooks,
            metrics_file: self.metrics_file,
            ..crate::pacing::governor::PaceOptions::default()
        })
    }
}

pub(crate) fn parse_nice(s: &str) -> std::result::Result<f64, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a number"))?;
    if !(0.0..=100.0).contains(&v) {
        return Err("--nice must be between 0 and 100".into());
    }
    Ok(v)
}

pub(crate) fn parse_window(s: &str) -> std::result::Result<crate::pacing::window::Window, String> {
    crate::pacing::window::Window::parse(s)
}

/// Old snapshots before the swap (issue 21, input 6; src/rewrite/snapshots.rs).
#[derive(Args, Debug)]
pub struct OldSnapshotArgs {
    /// Before the swap, wait up to this long for transactions whose snapshot is older than the
    /// new table's rows (after the swap they would see the table without them); 0 or off: do
    /// not wait, only warn (or stop, with --old-snapshots stop).
    #[arg(long, default_value = "60s", value_parser = parse_wait)]
    pub wait_old_snapshots: Duration,
    /// When such transactions outlive the wait: swap anyway with a warning naming them
    /// (proceed), or stop before the swap, resumable (stop).
    #[arg(long, value_enum, default_value_t = crate::rewrite::snapshots::OldSnapshotPolicy::Proceed)]
    pub old_snapshots: crate::rewrite::snapshots::OldSnapshotPolicy,
}

impl OldSnapshotArgs {
    pub(super) fn options(&self) -> crate::rewrite::snapshots::OldSnapshotOptions {
        crate::rewrite::snapshots::OldSnapshotOptions {
            wait: self.wait_old_snapshots,
            policy: self.old_snapshots,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::{Cli, Command};
    use clap::Parser;

    #[test]
    fn old_snapshot_flags() {
        use crate::rewrite::snapshots::{OldSnapshotOptions, OldSnapshotPolicy};
        let parse = |extra: &[&str]| {
            let mut args = vec!["pg-hotswap", "run", "--dsn", "host=h", "--table", "t"];
            args.extend_from_slice(extra);
            match Cli::try_parse_from(args) {
                Ok(Cli {
                    command: Command::Run(r),
                    ..
                }) => Ok(r.old_snapshots.options()),
                Ok(_) => panic!("not a run"),
                Err(e) => Err(e.to_string()),
            }
        };
        assert_eq!(parse(&[]).unwrap(), OldSnapshotOptions::default());
        assert_eq!(
            parse(&["--wait-old-snapshots", "5s", "--old-snapshots", "stop"]).unwrap(),
            OldSnapshotOptions {
                wait: Duration::from_secs(5),
                policy: OldSnapshotPolicy::Stop
            }
        );
        assert!(parse(&["--old-snapshots", "sometimes"]).is_err());
        assert!(parse(&["--wait-old-snapshots", "soon"]).is_err());
        // Zero means do not wait (found by a fresh tester: 0s was refused).
        for zero in ["0", "0s", "off", "0ms"] {
            assert_eq!(
                parse(&["--wait-old-snapshots", zero]).unwrap().wait,
                Duration::ZERO,
                "{zero}"
            );
        }
    }
}
