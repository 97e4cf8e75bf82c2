//! What the fleet knows of each target (issue 18): one read of the target's run (phase,
//! progress, backlog, ETA, readiness, swap time, error) over a session kept per target and
//! bounded by a timeout, and `pg-hotswap fleet status`: one line per target and a total, as text
//! or JSON.
//!
//! Invariant kept here: a target that does not answer within the timeout (a stopped server, a
//! lost network) is shown as unreachable, never as failed or ready: the fleet waits for it and
//! decides nothing on its behalf.

use super::targets::FleetTarget;
use crate::db::conn;
use crate::error::Result;
use crate::state::{FleetLookup, FleetRun, State};
use serde::Serialize;
use std::time::Duration;
use tokio_postgres::Client;

/// How long one read of a target may take before it counts as unreachable.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// Where a target stands, as the fleet decides on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Standing {
    /// No run of this fleet is recorded there yet.
    NotStarted,
    /// A run is working (preflight, copy, build, catch-up, verification) or swapping.
    Working,
    /// Ready: caught up and replaying, waiting for its cut-over.
    Ready,
    /// The swap committed: the new table is in place.
    Swapped,
    /// Swapped, then swapped back by `fleet revert` (or `revert`): the old table is in place.
    Reverted,
    /// The run stopped (failed, interrupted, aborted) and no process works on it.
    Stopped,
    /// The target did not answer within [`PROBE_TIMEOUT`] (or refused the connection).
    Unreachable,
}

impl Standing {
    pub fn as_str(self) -> &'static str {
        match self {
            Standing::NotStarted => "not started",
            Standing::Working => "working",
            Standing::Ready => "ready",
            Standing::Swapped => "swapped",
            Standing::Reverted => "reverted",
            Standing::Stopped => "stopped",
            Standing::Unreachable => "unreachable",
        }
    }
}

/// One target's line of `fleet status` (and what `fleet run` decides on).
#[derive(Clone, Debug, Serialize)]
pub struct TargetStatus {
    pub target: String,
    pub standing: Standing,
    pub run_id: Option<i64>,
    pub fleet_id: Option<String>,
    pub phase: Option<String>,
    pub status: Option<String>,
    /// Whether a pg-hotswap process works on the run now.
    pub attached: bool,
    pub chunks_done: i64,
    pub chunks_total: i64,
    pub rows_copied: i64,
    pub backlog: Option<i64>,
    pub copy_eta_secs: Option<f64>,
    pub ready: bool,
    /// Server clock, seconds since the epoch.
    pub swapped_at: Option<f64>,
    pub reverse: Option<String>,
    pub error: Option<String>,
}

impl TargetStatus {
    fn empty(t: &FleetTarget, standing: Standing, error: Option<String>) -> TargetStatus {
        TargetStatus {
            target: t.label.clone(),
            standing,
            run_id: None,
            fleet_id: None,
            phase: None,
            status: None,
            attached: false,
            chunks_done: 0,
            chunks_total: 0,
            rows_copied: 0,
            backlog: None,
            copy_eta_secs: None,
            ready: false,
            swapped_at: None,
            reverse: None,
            error,
        }
    }
}

/// A session to one target, opened on first use and again after an error or a timeout.
pub struct Probe {
    pub target: FleetTarget,
    state: State,
    table: String,
    client: Option<Client>,
}

impl Probe {
    pub fn new(target: FleetTarget, state_schema: &str, table: &str) -> Probe {
        Probe {
            target,
            state: State::new(state_schema),
            table: table.to_string(),
            client: None,
        }
    }

    /// The target's run of fleet `id` (or, without one, the table's last run of any fleet),
    /// within [`PROBE_TIMEOUT`].
    pub async fn read(&mut self, id: Option<&str>) -> TargetStatus {
        match tokio::time::timeout(PROBE_TIMEOUT, self.read_inner(id)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                self.client = None;
                TargetStatus::empty(
                    &self.target,
                    Standing::Unreachable,
                    Some(e.message().to_string()),
                )
            }
            Err(_) => {
                self.client = None;
                TargetStatus::empty(
                    &self.target,
                    Standing::Unreachable,
                    Some(format!("no answer within {} s", PROBE_TIMEOUT.as_secs())),
                )
            }
        }
    }

    /// The session, opened when there is none.
    pub async fn client(&mut self) -> Result<&Client> {
        let client = match self.client.take() {
            Some(c) if !c.is_closed() => c,
            _ => conn::connect(&self.target.conn, "fleet").await?,
        };
        Ok(self.client.insert(client))
    }

    pub fn state(&self) -> &State {
        &self.state
    }

    async fn read_inner(&mut self, id: Option<&str>) -> Result<TargetStatus> {
        let state = self.state.clone();
        let table = self.table.clone();
        let target = self.target.clone();
        let client = self.client().await?;
        if !state.exists(client).await? {
            return Ok(TargetStatus::empty(&target, Standing::NotStarted, None));
        }
        let lookup = match id {
            Some(id) => FleetLookup::Id(id),
            None => FleetLookup::Table(crate::db::catalog::resolve_table(client, &table).await?),
        };
        let Some(run) = state.fleet_run(client, lookup).await? else {
            return Ok(TargetStatus::empty(&target, Standing::NotStarted, None));
        };
        let attached =
            run.status == "running" && state.lock_holder(client, run.table_oid).await?.is_some();
        let backlog = match (&run.log, run.status.as_str()) {
            (Some(log), "running" | "failed" | "interrupted") => {
                state.log_backlog(client, log).await?
            }
            _ => None,
        };
        Ok(view(&target, &run, attached, backlog))
    }
}

/// A target's status from its run.
fn view(t: &FleetTarget, run: &FleetRun, attached: bool, backlog: Option<i64>) -> TargetStatus {
    let ready = attached && run.waits_ready();
    let standing = if run.swapped() && run.reverse.as_deref() == Some("reverted") {
        Standing::Reverted
    } else if run.swapped() {
        Standing::Swapped
    } else if ready {
        Standing::Ready
    } else if run.status == "running" && attached {
        Standing::Working
    } else {
        Standing::Stopped
    };
    let eta = match (run.rows_per_sec, run.rows_left) {
        (Some(rate), Some(left)) if rate > 0.0 && run.phase == "copy" => Some(left / rate),
        _ => None,
    };
    TargetStatus {
        target: t.label.clone(),
        standing,
        run_id: Some(run.id),
        fleet_id: run.fleet_id.clone(),
        phase: Some(run.phase.clone()),
        status: Some(run.status.clone()),
        attached,
        chunks_done: run.chunks_done,
        chunks_total: run.chunks_total,
        rows_copied: run.rows_copied,
        backlog,
        copy_eta_secs: eta,
        ready,
        swapped_at: run.swapped_at,
        reverse: run.reverse.clone(),
        error: run.error.clone(),
    }
}

/// The fleet's total: how many targets stand where.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Total {
    pub targets: usize,
    pub not_started: usize,
    pub working: usize,
    pub ready: usize,
    pub swapped: usize,
    pub reverted: usize,
    pub stopped: usize,
    pub unreachable: usize,
}

pub fn total(lines: &[TargetStatus]) -> Total {
    let mut t = Total {
        targets: lines.len(),
        ..Total::default()
    };
    for l in lines {
        match l.standing {
            Standing::NotStarted => t.not_started += 1,
            Standing::Working => t.working += 1,
            Standing::Ready => t.ready += 1,
            Standing::Swapped => t.swapped += 1,
            Standing::Reverted => t.reverted += 1,
            Standing::Stopped => t.stopped += 1,
            Standing::Unreachable => t.unreachable += 1,
        }
    }
    t
}

/// `fleet status --output json`.
#[derive(Serialize)]
pub struct FleetStatus<'a> {
    pub fleet_id: Option<&'a str>,
    pub targets: &'a [TargetStatus],
    pub total: Total,
}

/// One line per target and the total, for people.
pub fn render(lines: &[TargetStatus]) -> String {
    let mut s = String::new();
    for l in lines {
        let mut parts = vec![match (l.standing, &l.status) {
            (Standing::Stopped, Some(st)) => format!("stopped ({st})"),
            (s, _) => s.as_str().to_string(),
        }];
        if let Some(id) = l.run_id {
            parts.push(format!("run {id}"));
        }
        if let Some(p) = &l.phase {
            parts.push(format!("phase {p}"));
        }
        if l.chunks_total > 0 {
            parts.push(format!(
                "copy {}/{} chunks, {} rows",
                l.chunks_done, l.chunks_total, l.rows_copied
            ));
        }
        if let Some(b) = l.backlog {
            parts.push(format!("backlog {b}"));
        }
        if let Some(e) = l.copy_eta_secs {
            parts.push(format!(
                "about {} left",
                crate::pacing::window::human_secs(e as i64)
            ));
        }
        parts.push(if l.ready { "ready" } else { "not ready" }.to_string());
        if let Some(e) = &l.error {
            parts.push(format!("error: {e}"));
        }
        s.push_str(&format!("{}: {}\n", l.target, parts.join(", ")));
    }
    let t = total(lines);
    s.push_str(&format!(
        "total: {} target(s): {} swapped, {} reverted, {} ready, {} working, {} stopped, {} not started, {} unreachable\n",
        t.targets, t.swapped, t.reverted, t.ready, t.working, t.stopped, t.not_started, t.unreachable
    ));
    s
}
