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

use crate::catalog;
use crate::conn::{self, ConnSpec};
use crate::error::{Error, Result};
use crate::state::{State, UnfinishedRun};
use crate::ui::say;
use std::time::{Duration, Instant};
use tokio_postgres::Client;

/// The table whose running run a request goes to.
pub struct ControlOptions {
    pub conn: ConnSpec,
    pub table: String,
    pub state_schema: String,
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
async fn find(
    client: &Client,
    state: &State,
    table: &str,
) -> Result<Option<(UnfinishedRun, Option<i32>)>> {
    if !state.exists(client).await? {
        return Ok(None);
    }
    let oid = catalog::resolve_table(client, table).await?;
    let Some(u) = state.unfinished_run(client, oid).await? else {
        return Ok(None);
    };
    let pid = state.lock_holder(client, oid).await?;
    Ok(Some((u, pid)))
}

/// Sends `req` to the table's running run. Returns the run id, or None when no process is
/// working on the table (the caller decides: `resume` then continues the stopped run itself,
/// `abort` removes it).
pub async fn send(opts: &ControlOptions, req: Request) -> Result<Option<i64>> {
    let state = State::new(&opts.state_schema);
    let client = conn::connect(&opts.conn, "control").await?;
    let Some((run, Some(pid))) = find(&client, &state, &opts.table).await? else {
        return Ok(None);
    };
    let recorded = state.request(&client, run.id, req.value()).await?;
    if !recorded {
        return Err(Error::failed(format!(
            "run {} of {} is being aborted or is no longer running; the request was not recorded",
            run.id, opts.table
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
        run.id, opts.table
    ));
    Ok(Some(run.id))
}

/// After `abort` was sent: waits until the running process has stopped and cleaned up.
pub async fn wait_aborted(opts: &ControlOptions, run: i64, timeout: Duration) -> Result<()> {
    let state = State::new(&opts.state_schema);
    let client = conn::connect(&opts.conn, "control").await?;
    let started = Instant::now();
    loop {
        let status = state.run_status(&client, run).await?;
        if status != "running" {
            if status == "aborted" {
                say(&format!(
                    "run {run} aborted: everything it created is removed; {} is as it was",
                    opts.table
                ));
                return Ok(());
            }
            return Err(Error::failed(format!(
                "run {run} ended with status {status} instead of aborting (it may have swapped before it saw the request)"
            ))
            .with_next("see `pg-hotswap status`"));
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
