//! The flow of a run: a straight sequence of phases (preflight, shadow, capture, copy, build,
//! replay, swap, finish), each recorded in the state tables so that a later `run` with the same
//! arguments continues an interrupted run, and `abort` removes what it created.
//!
//! Invariant kept here (DESIGN.md): any failure leaves the source fully usable and the run
//! either resumable or cleanly removable; the error says which, and what to do next.

mod cleanup;
mod figures;
mod in_place;
mod phases;
mod redo;

use cleanup::abandon;
pub use cleanup::{cancel_own_statements_on, cleanup, drop_capture_step, drop_old_step};
use figures::{print_mapping, wal_position, wal_since};
use phases::Flow;

use crate::db::catalog;
use crate::db::conn::ConnSpec;
use crate::db::faults::{FaultPolicy, FaultRetry};
use crate::db::ident::QualifiedName;
use crate::db::locking::LockPolicy;
use crate::error::{Error, Kind, Result};
use crate::output::ui::{self, say};
use crate::pacing::governor::{Cutover, Governor, PaceOptions};
use crate::rewrite::capture;
use crate::rewrite::mapping::MapArg;
use crate::rewrite::plan::Plan;
use crate::rewrite::preflight::{self, Source};
use crate::rewrite::shadow::{self, ShadowRequest};
use crate::rewrite::verify;
use crate::state::target::Target;
use crate::state::{Phase, State};
use serde::Serialize;
use std::time::{Duration, Instant};
use tokio_postgres::types::Oid;
use tokio_postgres::Client;

/// Everything `run` needs besides its target (`crate::state::target::Target`: the table, the
/// connection and the state schema), validated from the command line.
#[derive(Clone, Debug)]
pub struct RunOptions {
    pub alter: Option<String>,
    pub maps: Vec<MapArg>,
    pub jobs: usize,
    pub lock: LockPolicy,
    pub drop_old: bool,
    pub chunk_rows: i64,
    /// `--chunk-time`: about how long one copy transaction takes (None: one chunk each).
    pub chunk_time: Option<Duration>,
    pub replay_batch: i64,
    pub shadow_name: Option<String>,
    pub old_name: Option<String>,
    pub maintenance_work_mem: String,
    /// `--order-by`: an index of the table or columns the new table's rows are ordered by.
    pub order_by: Option<String>,
    pub verify: verify::Mode,
    /// Keep the old table revertible (reverse capture until `finish`).
    pub revertible: bool,
    /// `--map-back col=expr`: how an old column is computed from a new row on revert.
    pub map_back: Vec<MapArg>,
    /// Throttling, windows, start time, cut-over mode (not recorded: a resume may change them).
    pub pace: PaceOptions,
    /// `--wait-old-snapshots`, `--old-snapshots` (issue 21; not recorded either).
    pub old_snapshots: crate::rewrite::snapshots::OldSnapshotOptions,
    /// `--terminate-blockers-after` (issue 20; not recorded: a resume may change it).
    pub terminate_blockers_after: Option<Duration>,
    /// `run --df-on-server` (issue 20): read free disk with df on the server before creating
    /// anything, and refuse a copy that cannot fit.
    pub df_on_server: bool,
    /// The fleet run this run belongs to (issue 18; `run --fleet-id`, passed by `fleet run`),
    /// recorded on the run; not among the recorded arguments.
    pub fleet_id: Option<String>,
    /// `--force-rewrite`: copy even when PostgreSQL would apply the ALTER without a rewrite
    /// (issue 16; `fastpath`).
    pub force_rewrite: bool,
    /// `--partition-by` with its `--partition`s: the new table is partitioned (issue 15).
    pub partitioning: Option<crate::rewrite::partitioning::PartitionRequest>,
    /// `resume`: the id of the unfinished run it found. Checked again under the table's lock,
    /// so that a run aborted (or finished) meanwhile is not started anew by a resume.
    pub resume_of: Option<i64>,
}

impl RunOptions {
    /// The arguments that decide the result; a resumed run must have the same ones.
    fn recorded_args(&self) -> serde_json::Value {
        let mut args = serde_json::json!({
            "alter": self.alter,
            "maps": self.maps.iter().map(|m| format!("{}={}", m.column, m.expr)).collect::<Vec<_>>(),
            "shadow_name": self.shadow_name,
            "revertible": self.revertible,
            "map_back": self.map_back.iter().map(|m| format!("{}={}", m.column, m.expr)).collect::<Vec<_>>(),
            "partitioning": self.partitioning,
        });
        // Only when given, so that runs recorded before it was kept compare equal without it.
        if self.force_rewrite {
            args["force_rewrite"] = serde_json::Value::Bool(true);
        }
        args
    }
}

/// What happened, for the summary and `--output json`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RunReport {
    pub run_id: i64,
    pub table: String,
    pub old_table: Option<String>,
    pub old_table_dropped: bool,
    pub resumed: bool,
    pub rows_copied: u64,
    pub bytes_copied: u64,
    pub chunks: usize,
    pub replayed_log_rows: u64,
    /// The largest replay backlog measured (change-log rows), e.g. after the copy.
    pub replay_backlog_peak: i64,
    pub lock_attempts: u32,
    /// Units of work redone on a new session after theirs was lost (issue 20).
    pub fault_retries: u32,
    pub lock_held_ms: f64,
    pub longest_lock_ms: f64,
    pub phases: Vec<(String, f64)>,
    pub dropped_columns: Vec<String>,
    pub warnings: Vec<String>,
    pub total_secs: f64,
    pub verify: Option<verify::Report>,
    /// A trivial read of the table, timed every 100 ms through the run from another session.
    pub read_probe: Option<crate::pacing::probe::ProbeReport>,
    /// WAL the server wrote from the start of the run to its end (all sessions', the
    /// application's too); `None` where it cannot be read (a standby, no privilege).
    pub wal_bytes: Option<u64>,
    /// Issue 16: the ALTER needed no rewrite and was applied to the table in place; these are
    /// the statements run (None: the table was rewritten).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub in_place: Option<Vec<String>>,
}

struct Timer {
    phases: Vec<(String, f64)>,
    current: Option<(&'static str, Instant)>,
}

impl Timer {
    fn start(&mut self, p: Phase) {
        self.start_named(p.as_str());
    }
    /// A step that is not a recorded phase (waiting for the cut-over or a window).
    fn start_named(&mut self, name: &'static str) {
        self.stop();
        crate::output::progress::phase(name);
        self.current = Some((name, Instant::now()));
    }
    fn stop(&mut self) {
        if let Some((p, t)) = self.current.take() {
            self.phases.push((p.to_string(), t.elapsed().as_secs_f64()));
        }
    }
}

/// What the steps before the plan read: the run's options and its target's pieces (the
/// mutable control session is passed to each step on its own).
#[derive(Clone, Copy)]
struct Ctx<'a> {
    opts: &'a RunOptions,
    /// For the run's further sessions (copy workers, replay, the governor, the read probe).
    conn: &'a ConnSpec,
    /// `--table` as the user typed it, as one shell word: how the suggested next commands name
    /// it.
    typed: &'a str,
    state: &'a State,
    oid: Oid,
}

/// A run recorded earlier that this one continues: its id, its plan, the phase it stopped in.
type Recorded = (i64, Plan, Phase);

/// Runs (or continues) the rewrite of one table, on the target's control session.
pub async fn run(target: Target, opts: &RunOptions) -> Result<RunReport> {
    let started = Instant::now();
    crate::output::progress::phase("preflight");
    let Target {
        conn,
        table: typed,
        state,
        client: mut ctl,
        oid,
    } = target;
    let typed = crate::output::ui::shell_word(&typed);
    let cx = Ctx {
        opts,
        conn: &conn,
        typed: &typed,
        state: &state,
        oid,
    };
    let wal_start = wal_position(&ctl).await;
    let (src, pace, warnings) = cx.preflight(&mut ctl).await?;
    crate::failpoint::hold("before-claim").await;
    cx.claim_table(&mut ctl, &src).await?;
    let table = src.table.name.clone();
    let mut report = RunReport {
        table: table.human(),
        warnings,
        ..Default::default()
    };
    let mut timer = Timer {
        phases: Vec::new(),
        current: None,
    };
    let recorded = cx.take_over_unfinished(&ctl, &src, &mut report).await?;
    if recorded.is_none() {
        // Issue 16: no rewrite when PostgreSQL needs none (`in_place`).
        if let Some(p) = cx.no_rewrite_needed(&mut ctl, &src).await? {
            return cx
                .alter_in_place(&mut ctl, &src, p, &pace, report, started)
                .await;
        }
    }
    let (run, plan, from, gov) = match recorded {
        Some(r) => cx.continue_recorded(&ctl, &table, &pace, r).await?,
        None => cx.start_new(&mut ctl, &src, &pace, &mut timer).await?,
    };
    report.run_id = run;
    if let Some(f) = &opts.fleet_id {
        state.set_fleet_id(&ctl, run, f).await?;
    }
    report.dropped_columns = plan
        .dropped
        .iter()
        .map(|c| c.as_str().to_string())
        .collect();
    print_mapping(&plan);

    let probe = crate::pacing::probe::start(&conn, &plan.source).await.ok();
    let flow = Flow {
        opts,
        conn: &conn,
        typed: &typed,
        state: &state,
        src: &src,
        plan: &plan,
        gov: &gov,
    };
    // A lost session is ridden out: reconnect and go on from the recorded phase (redo.rs).
    let mut faults = FaultRetry::new(FaultPolicy::default());
    let mut from = from;
    let result = loop {
        let e = match flow.phases(&mut ctl, from, &mut report, &mut timer).await {
            Ok(()) => break Ok(()),
            Err(e) => e,
        };
        match cx.ride_out(&mut ctl, run, &mut faults, e).await {
            Ok(phase) => from = phase,
            Err(e) => break Err(e),
        }
    };
    report.fault_retries = faults.total();
    gov.final_metrics(&ctl, &state, run).await;
    drop(gov);
    if let Some(p) = probe {
        report.read_probe = Some(p.stop().await);
    }
    if let Some(start) = &wal_start {
        report.wal_bytes = wal_since(&ctl, start).await;
    }
    timer.stop();
    report.phases = timer.phases;
    report.total_secs = started.elapsed().as_secs_f64();
    crate::output::progress::finish();
    match result {
        Ok(()) => Ok(report),
        Err(e) => Err(cx.failed(&ctl, run, &table, e).await),
    }
}

impl Ctx<'_> {
    /// Preflight: inspects the table, makes the checks `plan` shows and validates the pace
    /// options against the server, and says what it found. Refuses on a blocking check (exit 3)
    /// or a bad pace option (exit 2). After it nothing is changed, and the source is known:
    /// returned with the checked pace options and the warnings.
    async fn preflight(&self, ctl: &mut Client) -> Result<(Source, PaceOptions, Vec<String>)> {
        let opts = self.opts;
        let (src, mut warnings) = preflight::inspect(ctl, self.oid).await?;
        // The checks `plan` shows (issue 6): refuses (exit 3, nothing created) on a blocking one.
        warnings.extend(
            crate::rewrite::checks::for_run(
                ctl,
                self.conn,
                &src,
                opts.jobs,
                self.state.schema.as_str(),
                opts.df_on_server,
            )
            .await?,
        );
        if let Some(o) = &opts.order_by {
            crate::rewrite::build::order_by(&src, o)?;
        }
        // Pace options are checked against the server before anything is created (exit 2).
        let mut pace = opts.pace.clone();
        warnings.extend(crate::pacing::governor::validate(ctl, &mut pace).await?);
        for w in &warnings {
            say(&format!("warning: {w}"));
        }
        say(&format!(
            "preflight ok: {} ({} rows estimated, {} heap, {} with indexes); row identity: {} ({})",
            src.table.name.human(),
            src.table.reltuples.max(0.0) as i64,
            ui::bytes(src.table.heap_bytes as u64),
            ui::bytes(src.table.total_bytes as u64),
            src.key_index.as_str(),
            src.key
                .iter()
                .map(|k| k.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
        Ok((src, pace, warnings))
    }

    /// Makes the state schema (on a first run, only after a trial of the shadow in a rolled-back
    /// transaction) and takes the table's advisory lock; refuses when another run holds it.
    /// After it this session owns the table's runs; none is recorded or changed yet.
    async fn claim_table(&self, ctl: &mut Client, src: &Source) -> Result<()> {
        let (opts, state) = (self.opts, self.state);
        if !state.exists(ctl).await? {
            // A first run on this database: what the shadow step would refuse is refused before
            // the state schema is created (later runs find it in place anyway).
            let req = ShadowRequest {
                alter: opts.alter.as_deref(),
                maps: &opts.maps,
                shadow_name: opts.shadow_name.as_deref(),
                revertible: opts.revertible,
                partitioning: opts.partitioning.as_ref(),
                plain: false,
                show_unrouted: false,
            };
            shadow::dry_run(ctl, state, src, &req, &opts.lock).await?;
        }
        state.ensure_schema(ctl).await?;
        if !state.try_lock_table(ctl, self.oid).await? {
            let pid = state.lock_holder(ctl, self.oid).await?;
            return Err(Error::failed(format!(
                "another pg-hotswap run is working on {} (session pid {})",
                src.table.name.human(),
                pid.map(|p| p.to_string()).unwrap_or_else(|| "?".into())
            ))
            .with_state("nothing was changed by this command")
            .with_next("wait for that run to finish, or stop it (Ctrl-C in its terminal)"));
        }
        Ok(())
    }

    /// The table's unfinished run, if any: continued when it got as far as the copy (with the
    /// same arguments and an unchanged table definition), otherwise its leftovers are removed.
    /// Refuses a run with different arguments. After it the run to continue is returned (and
    /// the report says it resumed), or no unfinished run is left.
    async fn take_over_unfinished(
        &self,
        ctl: &Client,
        src: &Source,
        report: &mut RunReport,
    ) -> Result<Option<Recorded>> {
        let (state, typed) = (self.state, self.typed);
        let table = &src.table.name;
        let args = self.opts.recorded_args();
        let u = state.unfinished_run(ctl, self.oid).await?;
        if let Some(id) = self.opts.resume_of {
            if u.as_ref().map(|u| u.id) != Some(id) {
                return Err(Error::usage(format!(
                    "run {id} of {} is no longer unfinished: it was aborted or finished while this resume started",
                    table.human()
                ))
                .with_state("nothing was changed by this command")
                .with_next(format!(
                    "see `pg-hotswap status --table {typed}`; start a new run with `pg-hotswap run` if you want one"
                )));
            }
        }
        let Some(u) = u else {
            return Ok(None);
        };
        if u.args != args {
            return Err(Error::usage(format!(
                "an unfinished run ({}) of {} was started with different arguments: {} (this command: {})",
                u.id,
                table.human(),
                u.args,
                args
            ))
            .with_state(format!("{} is unchanged; the unfinished run's objects are still in place", table.human()))
            .with_next(format!(
                "run the earlier command again to continue it, or `pg-hotswap abort --table {typed}` to discard it"
            )));
        }
        match (u.phase, u.plan.clone()) {
            (phase, Some(plan)) if phase >= Phase::Copy => {
                let plan: Plan = serde_json::from_value(plan).map_err(|e| {
                    Error::failed(format!("reading the recorded plan of run {}: {e}", u.id))
                })?;
                if phase < Phase::Finish && src.fingerprint != plan.fingerprint {
                    return Err(Error::failed(format!(
                        "the definition of {} changed since run {} started; its shadow no longer matches",
                        table.human(),
                        u.id
                    ))
                    .with_next(format!("run `pg-hotswap abort --table {typed}` and start again")));
                }
                // Before the swap the capture must still be whole: writes made while a trigger
                // was missing or disabled were not logged, and the swap would refuse only after
                // the whole copy again. A half-done `abort` removes the triggers first.
                if phase < Phase::Swap {
                    let mut problems = capture::trigger_problems(ctl, state, &plan).await?;
                    let log = &plan.capture.log;
                    let log_gone =
                        !catalog::relation_exists(ctl, &log.schema, log.name.as_str()).await?;
                    if log_gone {
                        problems.push(format!("the change log {} is gone", log.human()));
                    }
                    if !problems.is_empty() {
                        return Err(Error::failed(format!(
                            "run {} of {} cannot be continued: its capture changed while it was stopped ({}), so writes made since were not captured",
                            u.id,
                            table.human(),
                            problems.join("; ")
                        ))
                        .with_state(if log_gone {
                            format!(
                                "{} is unchanged, but writes to it fail while the run's capture triggers call the missing log",
                                table.human()
                            )
                        } else {
                            format!(
                                "{} is unchanged and usable; the run's shadow table and change log are still in place",
                                table.human()
                            )
                        })
                        .with_next(format!(
                            "run `pg-hotswap abort --table {typed}` to remove what is left of the run (an abort that stopped halfway removes the triggers first), then start again"
                        )));
                    }
                }
                say(&format!(
                    "continuing run {} of {} from phase {}",
                    u.id,
                    table.human(),
                    phase.as_str()
                ));
                report.resumed = true;
                Ok(Some((u.id, plan, phase)))
            }
            _ => {
                say(&format!(
                    "clearing the leftovers of unfinished run {} (it stopped in phase {})",
                    u.id,
                    u.phase.as_str()
                ));
                cleanup(ctl, state, &u, &self.opts.lock).await?;
                Ok(None)
            }
        }
    }

    /// Starts the run's governor and waits for its start permit (`--start-at`, a pause, a
    /// window). Refused or aborted meanwhile, the run is abandoned (what it created removed).
    async fn governor(
        &self,
        ctl: &Client,
        table: &QualifiedName,
        run: i64,
        pace: &PaceOptions,
    ) -> Result<Governor> {
        self.state
            .set_cutover(ctl, run, pace.cutover == Cutover::Manual)
            .await?;
        let gov = Governor::start(self.conn, self.state, run, pace).await?;
        if let Err(e) = gov.start_permit(run).await {
            return Err(abandon(ctl, self.state, self.oid, &self.opts.lock, table, e).await);
        }
        Ok(gov)
    }

    /// Continues a recorded run: a pause recorded for the process that stopped is cleared, the
    /// governor started. After it the run goes on from the phase it stopped in.
    async fn continue_recorded(
        &self,
        ctl: &Client,
        table: &QualifiedName,
        pace: &PaceOptions,
        (run, plan, phase): Recorded,
    ) -> Result<(i64, Plan, Phase, Governor)> {
        // A pause was meant for the process that stopped; continuing is the new intent.
        let cleared = self.state.clear_request(ctl, run, "pause").await?;
        if cleared {
            say(&format!(
                "run {run} was paused when it stopped; continuing unpaused"
            ));
        }
        // The cut-over mode it was started with, unless --cutover is given again: a run stopped
        // while it waited for the operator must not swap by itself (found by a fresh tester).
        let mut pace = pace.clone();
        if !pace.cutover_given && self.state.cutover_manual(ctl, run).await? == Some(true) {
            pace.cutover = Cutover::Manual;
            say(&format!(
                "run {run} was started with --cutover manual: it waits for `pg-hotswap cutover` again (give --cutover auto to swap as soon as it is ready)"
            ));
        }
        let gov = self.governor(ctl, table, run, &pace).await?;
        Ok((run, plan, phase, gov))
    }

    /// Starts a new run: records it, waits for its start (`--start-at`, a pause) before anything
    /// is created, then the shadow phase: creates the shadow with the ALTER applied and records
    /// the plan (with `--revertible`, also the way back). After it the run is in phase shadow
    /// with its shadow in place, and goes on with the capture; if the shadow could not be
    /// created, nothing was, and the run is recorded as aborted.
    async fn start_new(
        &self,
        ctl: &mut Client,
        src: &Source,
        pace: &PaceOptions,
        timer: &mut Timer,
    ) -> Result<(i64, Plan, Phase, Governor)> {
        let (opts, state) = (self.opts, self.state);
        let table = &src.table.name;
        let run = state
            .create_run(
                ctl,
                self.oid,
                table,
                opts.alter.as_deref(),
                &opts.recorded_args(),
            )
            .await?;
        // `--start-at` (or a pause) is waited for before anything is created.
        let gov = self.governor(ctl, table, run, pace).await?;
        timer.start(Phase::Shadow);
        state.set_phase(ctl, run, Phase::Shadow).await?;
        let req = ShadowRequest {
            alter: opts.alter.as_deref(),
            maps: &opts.maps,
            shadow_name: opts.shadow_name.as_deref(),
            revertible: opts.revertible,
            partitioning: opts.partitioning.as_ref(),
            plain: false,
            show_unrouted: false,
        };
        let plan = match shadow::create(ctl, state, run, src, &req, &opts.lock).await {
            Ok(mut p) if opts.revertible => {
                let new_cols = catalog::columns(ctl, p.shadow_oid).await?;
                let rev =
                    crate::rewrite::revert::reverse_plan(&p, src, &new_cols, &opts.map_back, state);
                for r in &rev.unsafe_reasons {
                    say(&format!("warning: revert will refuse: {r}"));
                }
                p.reverse = Some(Box::new(rev));
                let json = serde_json::to_value(&p)
                    .map_err(|e| Error::failed(format!("serializing the plan: {e}")))?;
                state.set_plan(ctl, run, &json).await?;
                p
            }
            Ok(p) => p,
            Err(e) => {
                // Nothing was created: the shadow transaction rolled back.
                let _ = state.finish(ctl, run, "aborted", Some(e.message())).await;
                return Err(e.or_state(
                    format!("nothing was changed; {} is untouched", table.human()),
                    "fix the cause and run again",
                ));
            }
        };
        Ok((run, plan, Phase::Capture, gov))
    }

    /// The error of a run that stopped: on the operator's abort everything it created is
    /// removed; otherwise the run is recorded as failed and the error says what is in place
    /// (before the swap: the source, unchanged; after it: the new table) and how to go on.
    async fn failed(&self, ctl: &Client, run: i64, table: &QualifiedName, e: Error) -> Error {
        let state = self.state;
        if e.kind() == Kind::Aborted {
            return abandon(ctl, state, self.oid, &self.opts.lock, table, e).await;
        }
        let _ = state.finish(ctl, run, "failed", Some(e.message())).await;
        let swapped = state
            .unfinished_run(ctl, self.oid)
            .await
            .ok()
            .flatten()
            .map(|u| u.phase >= Phase::Finish)
            .unwrap_or(false);
        let st = if swapped {
            format!("the swap is done: {} is the new table and the old one is kept; only clean-up is left (run {run})", table.human())
        } else {
            format!(
                "{} is unchanged and usable; run {run} is recorded in {}.runs and its capture trigger (if installed) keeps recording writes",
                table.human(),
                state.schema.as_str()
            )
        };
        e.or_state(
            st,
            format!(
                "run the same command again to continue, or `pg-hotswap abort --table {}` to remove everything this run created",
                self.typed
            ),
        )
    }
}

/// Maps errors that mean "the lock was not available" to the documented exit status.
pub fn is_lock_failure(e: &Error) -> bool {
    e.kind() == Kind::LockTimeout
}
