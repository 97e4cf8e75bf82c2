//! Steering a running run from any client: `pause`, `resume`, `cutover` and `abort` write the
//! operator's request into `runs.control`; the run's governor reads it within a second. The same
//! can be done with one SQL statement (docs/operations.md):
//!
//! ```sql
//! UPDATE hotswap.runs SET control = 'pause' WHERE id = 42;   -- or 'cutover', 'abort'; NULL resumes
//! ```
//!
//! A request goes only to a run that a process is working on (the per-table advisory lock is
//! held); a stopped run is continued with `pg-hotswap resume` and removed with `abort`.

use super::flags::{target_spec, ConnArgs};
use crate::error::{Error, Result};
use crate::output::ui::say;
use crate::state::target::{Session, Target};
use crate::state::UnfinishedRun;
use clap::Args;
use std::time::{Duration, Instant};

/// `pause` and `cutover`: the table whose running run to steer.
#[derive(Args, Debug)]
pub struct ControlArgs {
    #[command(flatten)]
    pub conn: ConnArgs,
    /// The table whose running run to steer.
    #[arg(long)]
    pub table: String,
    #[arg(long, default_value = "hotswap")]
    pub state_schema: String,
}

/// `pause` and `cutover`: a request to the table's running run; a usage error (exit 2) when no
/// process is working on it.
pub(super) async fn command(args: ControlArgs, req: Request) -> Result<i32> {
    let spec = target_spec(
        &args.conn,
        &args.table,
        &args.state_schema,
        Duration::from_millis(100),
    )?;
    let session = Session::open(&spec.conn, &spec.state_schema, "control").await?;
    // Without a state schema no run was ever recorded: the table is not even looked up.
    let sent = if session.state_exists().await? {
        send(&session.resolve(&spec).await?, req).await?
    } else {
        None
    };
    match sent {
        Some(_) => Ok(0),
        None => Err(Error::usage(format!(
            "no pg-hotswap process is working on {} now",
            spec.table
        ))
        .with_state("nothing was changed")
        .with_next("see `pg-hotswap status`; a stopped run is continued with `pg-hotswap resume`")),
    }
}

/// What the operator asks of a running run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    Pause,
    Resume,
    Cutover,
    Abort,
}

impl Request {
    fn value(self) -> Option<&'static str> {
        match self {
            Request::Pause => Some("pause"),
            Request::Resume => None,
            Request::Cutover => Some("cutover"),
            Request::Abort => Some("abort"),
        }
    }
}

/// The table's unfinished run and whether a process is working on it (pid of its session).
async fn find(target: &Target) -> Result<Option<(UnfinishedRun, Option<i32>)>> {
    let (client, state) = (&target.client, &target.state);
    let Some(u) = state.unfinished_run(client, target.oid).await? else {
        return Ok(None);
    };
    let pid = state.lock_holder(client, target.oid).await?;
    Ok(Some((u, pid)))
}

/// Sends `req` to the table's running run. Returns the run id, or None when no process is
/// working on the table (the caller decides: `resume` then continues the stopped run itself,
/// `abort` removes it). The caller has checked that the state schema exists.
pub(super) async fn send(target: &Target, req: Request) -> Result<Option<i64>> {
    let (client, state) = (&target.client, &target.state);
    let Some((run, Some(pid))) = find(target).await? else {
        return Ok(None);
    };
    let recorded = state.request(client, run.id, req.value()).await?;
    if !recorded {
        return Err(Error::failed(format!(
            "run {} of {} is being aborted or is no longer running; the request was not recorded",
            run.id, target.table
        ))
        .with_next("see `pg-hotswap status`"));
    }
    let what = match req {
        Request::Pause => "pause: copying, replay and the swap stop within a second (writes are still captured; the backlog grows until resumed)",
        Request::Resume => "resume: the run goes on within a second",
        Request::Cutover => "cut-over: the run swaps as soon as the shadow is ready (also outside its windows)",
        Request::Abort => "abort: the run stops and removes everything it created",
    };
    say(&format!(
        "run {} of {} (process session {pid}): {what}",
        run.id, target.table
    ));
    Ok(Some(run.id))
}

/// After `resume` was sent: whether a process still works on the table's unfinished run after
/// `within` (true), or none does any more while the run is unfinished (false: the process was
/// exiting when asked, and the caller continues the run itself). A run that finished meanwhile
/// counts as attached: there is nothing to continue. Polls every 100 ms.
pub(super) async fn still_attached(target: &Target, within: Duration) -> Result<bool> {
    let started = Instant::now();
    loop {
        match find(target).await? {
            Some((_, None)) => return Ok(false),
            None => return Ok(true),
            Some((_, Some(_))) if started.elapsed() >= within => return Ok(true),
            Some(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// After `abort` was sent: waits until the running process has stopped and cleaned up
/// (true), or until no process holds the table any more while the run is still unfinished
/// (false: it ended without seeing the request, e.g. a process that had just exited when the
/// request was sent, whose session the server had not closed yet; the caller cleans up).
pub(super) async fn wait_aborted(target: &Target, run: i64, timeout: Duration) -> Result<bool> {
    let (client, state) = (&target.client, &target.state);
    let started = Instant::now();
    loop {
        let status = state.run_status(client, run).await?;
        if status != "running" {
            if status == "aborted" {
                match state.in_place_statements(client, run).await? {
                    // The process removed what it left half-done and said what stays.
                    Some(statements) => say(&crate::rewrite::fastpath::aborted_message(
                        run,
                        &target.table.to_string(),
                        &[],
                        &statements,
                    )),
                    None => say(&format!(
                        "run {run} aborted: everything it created is removed; {} is as it was",
                        target.table
                    )),
                }
                return Ok(true);
            }
            return Err(Error::failed(format!(
                "run {run} ended with status {status} instead of aborting (it may have swapped before it saw the request)"
            ))
            .with_next("see `pg-hotswap status`"));
        }
        if state.lock_holder(client, target.oid).await?.is_none()
            && state.run_status(client, run).await? == "running"
        {
            return Ok(false);
        }
        if started.elapsed() > timeout {
            return Err(Error::failed(format!(
                "run {run} has not stopped within {} s of the abort request",
                timeout.as_secs()
            ))
            .with_state("the request stays recorded; the process stops at its next chunk, replay batch or index build")
            .with_next("watch it with `pg-hotswap status`"));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
