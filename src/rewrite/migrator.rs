//! The flow of a run: a straight sequence of phases (preflight, shadow, capture, copy, build,
//! replay, swap, finish), each recorded in the state tables so that a later `run` with the same
//! arguments continues an interrupted run, and `abort` removes what it created.
//!
//! Invariant kept here (DESIGN.md): any failure leaves the source fully usable and the run
//! either resumable or cleanly removable; the error says which, and what to do next.

mod cleanup;
mod figures;

use cleanup::{abandon, drop_capture_objects};
pub use cleanup::{cleanup, drop_capture_step, drop_old_step};
use figures::{print_mapping, wal_position, wal_since};

use crate::db::catalog;
use crate::db::conn::{self, ConnSpec};
use crate::db::locking::LockPolicy;
use crate::error::{DbContext, Error, Kind, Result, RowExt};
use crate::output::progress::CopyCounters;
use crate::output::ui::{self, say};
use crate::pacing::governor::{Governor, PaceOptions};
use crate::rewrite::build::{self, BuildOptions};
use crate::rewrite::capture;
use crate::rewrite::chunks;
use crate::rewrite::copier;
use crate::rewrite::mapping::MapArg;
use crate::rewrite::plan::Plan;
use crate::rewrite::preflight::{self, Source};
use crate::rewrite::replay;
use crate::rewrite::shadow::{self, ShadowRequest};
use crate::rewrite::step::{self};
use crate::rewrite::swap::{self, SwapRequest};
use crate::rewrite::verify;
use crate::state::target::Target;
use crate::state::{Phase, State};
use serde::Serialize;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_postgres::Client;

/// Everything `run` needs, validated from the command line.
#[derive(Clone, Debug)]
pub struct RunOptions {
    pub conn: ConnSpec,
    pub table: String,
    pub alter: Option<String>,
    pub maps: Vec<MapArg>,
    pub jobs: usize,
    pub lock: LockPolicy,
    pub drop_old: bool,
    pub state_schema: String,
    pub chunk_rows: i64,
    /// `--chunk-time`: about how long one copy transaction takes (None: one chunk each).
    pub chunk_time: Option<Duration>,
    pub replay_batch: i64,
    pub shadow_name: Option<String>,
    pub old_name: Option<String>,
    pub maintenance_work_mem: String,
    pub verify: verify::Mode,
    /// Keep the old table revertible (reverse capture until `finish`).
    pub revertible: bool,
    /// `--map-back col=expr`: how an old column is computed from a new row on revert.
    pub map_back: Vec<MapArg>,
    /// Throttling, windows, start time, cut-over mode (not recorded: a resume may change them).
    pub pace: PaceOptions,
    /// `--wait-old-snapshots`, `--old-snapshots` (issue 21; not recorded either).
    pub old_snapshots: crate::rewrite::snapshots::OldSnapshotOptions,
}

impl RunOptions {
    /// The arguments that decide the result; a resumed run must have the same ones.
    fn recorded_args(&self) -> serde_json::Value {
        serde_json::json!({
            "alter": self.alter,
            "maps": self.maps.iter().map(|m| format!("{}={}", m.column, m.expr)).collect::<Vec<_>>(),
            "shadow_name": self.shadow_name,
            "revertible": self.revertible,
            "map_back": self.map_back.iter().map(|m| format!("{}={}", m.column, m.expr)).collect::<Vec<_>>(),
        })
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

/// Runs (or continues) the rewrite of one table, on the target's control session.
pub async fn run(target: Target, opts: &RunOptions) -> Result<RunReport> {
    let started = Instant::now();
    crate::output::progress::phase("preflight");
    let Target {
        state,
        client: mut ctl,
        oid,
        ..
    } = target;
    let wal_start = wal_position(&ctl).await;
    let (src, mut warnings) = preflight::inspect(&ctl, oid).await?;
    // The checks `plan` shows (issue 6): refuses (exit 3, nothing created) on a blocking one.
    warnings.extend(
        crate::rewrite::checks::for_run(&ctl, &opts.conn, &src, opts.jobs, &opts.state_schema)
            .await?,
    );
    // Pace options are checked against the server before anything is created (exit 2).
    let mut pace = opts.pace.clone();
    warnings.extend(crate::pacing::governor::validate(&mut ctl, &mut pace).await?);
    for w in &warnings {
        say(&format!("warning: {w}"));
    }
    let table = src.table.name.clone();
    say(&format!(
        "preflight ok: {} ({} rows estimated, {} heap, {} with indexes); row identity: {} ({})",
        table.human(),
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
    if !state.exists(&ctl).await? {
        // A first run on this database: what the shadow step would refuse is refused before
        // the state schema is created (later runs find it in place anyway).
        let req = ShadowRequest {
            alter: opts.alter.as_deref(),
            maps: &opts.maps,
            shadow_name: opts.shadow_name.as_deref(),
        };
        shadow::dry_run(&mut ctl, &state, &src, &req, &opts.lock).await?;
    }
    state.ensure_schema(&ctl).await?;
    if !state.try_lock_table(&ctl, oid).await? {
        let pid = state.lock_holder(&ctl, oid).await?;
        return Err(Error::failed(format!(
            "another pg-hotswap run is working on {} (session pid {})",
            table.human(),
            pid.map(|p| p.to_string()).unwrap_or_else(|| "?".into())
        ))
        .with_state("nothing was changed by this command")
        .with_next("wait for that run to finish, or stop it (Ctrl-C in its terminal)"));
    }

    let mut report = RunReport {
        table: table.human(),
        warnings: warnings.clone(),
        ..Default::default()
    };
    let mut timer = Timer {
        phases: Vec::new(),
        current: None,
    };
    let args = opts.recorded_args();

    // Continue an unfinished run, or clear what it left before starting anew.
    let mut resume: Option<(i64, Plan, Phase)> = None;
    if let Some(u) = state.unfinished_run(&ctl, oid).await? {
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
                "run the earlier command again to continue it, or `pg-hotswap abort --table {}` to discard it",
                opts.table
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
                    .with_next(format!("run `pg-hotswap abort --table {}` and start again", opts.table)));
                }
                say(&format!(
                    "continuing run {} of {} from phase {}",
                    u.id,
                    table.human(),
                    phase.as_str()
                ));
                report.resumed = true;
                resume = Some((u.id, plan, phase));
            }
            _ => {
                say(&format!(
                    "clearing the leftovers of unfinished run {} (it stopped in phase {})",
                    u.id,
                    u.phase.as_str()
                ));
                cleanup(&ctl, &state, &u, &opts.lock).await?;
            }
        }
    }

    let (run, plan, from, gov) = match resume {
        Some((run, plan, phase)) => {
            // A pause was meant for the process that stopped; continuing is the new intent.
            let cleared = state.clear_request(&ctl, run, "pause").await?;
            if cleared {
                say(&format!(
                    "run {run} was paused when it stopped; continuing unpaused"
                ));
            }
            let gov = Governor::start(&opts.conn, &state, run, &pace).await?;
            if let Err(e) = gov.start_permit(run).await {
                return Err(abandon(&ctl, &state, oid, &opts.lock, &table, e).await);
            }
            (run, plan, phase, gov)
        }
        None => {
            let run = state
                .create_run(&ctl, oid, &table, opts.alter.as_deref(), &args)
                .await?;
            // `--start-at` (or a pause) is waited for before anything is created.
            let gov = Governor::start(&opts.conn, &state, run, &pace).await?;
            if let Err(e) = gov.start_permit(run).await {
                return Err(abandon(&ctl, &state, oid, &opts.lock, &table, e).await);
            }
            timer.start(Phase::Shadow);
            state.set_phase(&ctl, run, Phase::Shadow).await?;
            let req = ShadowRequest {
                alter: opts.alter.as_deref(),
                maps: &opts.maps,
                shadow_name: opts.shadow_name.as_deref(),
            };
            let plan = match shadow::create(&mut ctl, &state, run, &src, &req, &opts.lock).await {
                Ok(mut p) if opts.revertible => {
                    let new_cols = catalog::columns(&ctl, p.shadow_oid).await?;
                    let rev = crate::rewrite::revert::reverse_plan(
                        &p,
                        &src,
                        &new_cols,
                        &opts.map_back,
                        &state,
                    );
                    for r in &rev.unsafe_reasons {
                        say(&format!("warning: revert will refuse: {r}"));
                    }
                    p.reverse = Some(Box::new(rev));
                    let json = serde_json::to_value(&p)
                        .map_err(|e| Error::failed(format!("serializing the plan: {e}")))?;
                    state.set_plan(&ctl, run, &json).await?;
                    p
                }
                Ok(p) => p,
                Err(e) => {
                    // Nothing was created: the shadow transaction rolled back.
                    let _ = state.finish(&ctl, run, "aborted", Some(e.message())).await;
                    return Err(e.or_state(
                        format!("nothing was changed; {} is untouched", table.human()),
                        "fix the cause and run again",
                    ));
                }
            };
            (run, plan, Phase::Capture, gov)
        }
    };
    report.run_id = run;
    report.dropped_columns = plan
        .dropped
        .iter()
        .map(|c| c.as_str().to_string())
        .collect();
    print_mapping(&plan);

    let probe = crate::pacing::probe::start(&opts.conn, &plan.source)
        .await
        .ok();
    let result = continue_run(
        opts,
        &state,
        &mut ctl,
        &src,
        &plan,
        from,
        &gov,
        &mut report,
        &mut timer,
    )
    .await;
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
        Err(e) if e.kind() == Kind::Aborted => {
            Err(abandon(&ctl, &state, oid, &opts.lock, &table, e).await)
        }
        Err(e) => {
            let _ = state.finish(&ctl, run, "failed", Some(e.message())).await;
            let swapped = state
                .unfinished_run(&ctl, oid)
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
            Err(e.or_state(
                st,
                format!(
                    "run the same command again to continue, or `pg-hotswap abort --table {}` to remove everything this run created",
                    opts.table
                ),
            ))
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn continue_run(
    opts: &RunOptions,
    state: &State,
    ctl: &mut Client,
    src: &Source,
    plan: &Plan,
    from: Phase,
    gov: &Governor,
    report: &mut RunReport,
    timer: &mut Timer,
) -> Result<()> {
    let run = plan.run_id;
    if from <= Phase::Capture {
        timer.start(Phase::Capture);
        state.set_phase(ctl, run, Phase::Capture).await?;
        capture::create_log(ctl, state, plan, "").await?;
        let attempts = capture::install_triggers(ctl, state, plan, &opts.lock).await?;
        say(&format!(
            "capture trigger installed on {} ({} attempt{})",
            plan.source.human(),
            attempts,
            if attempts == 1 { "" } else { "s" }
        ));
        let chunks = chunks::plan_chunks(ctl, plan, src.table.reltuples, opts.chunk_rows).await?;
        copier::record_chunks(ctl, state, run, &chunks).await?;
    }
    if from <= Phase::Copy {
        timer.start(Phase::Copy);
        state.set_phase(ctl, run, Phase::Copy).await?;
        let pending = copier::pending_chunks(ctl, state, run).await?;
        report.chunks = pending.len();
        let all_chunks = state.chunk_count(&*ctl, run).await?;
        // Rows still to copy, estimated: the table's share of the chunks not done yet.
        let total_est =
            (src.table.reltuples.max(0.0) * pending.len() as f64 / all_chunks.max(1) as f64) as u64;
        say(&format!(
            "copying {} chunk{} with {} job{} ({} rows estimated)",
            pending.len(),
            if pending.len() == 1 { "" } else { "s" },
            opts.jobs,
            if opts.jobs == 1 { "" } else { "s" },
            total_est
        ));
        let progress = Arc::new(CopyCounters::default());
        let watch =
            crate::output::progress::watch_copy(progress.clone(), pending.len() as u64, total_est);
        let t0 = Instant::now();
        let r = copier::copy_all(
            &opts.conn,
            &opts.lock,
            state,
            plan,
            pending,
            opts.jobs,
            opts.chunk_time,
            progress.clone(),
            gov,
        )
        .await;
        drop(watch);
        r?;
        report.rows_copied = progress.rows.load(Ordering::Relaxed);
        report.bytes_copied = progress.bytes.load(Ordering::Relaxed);
        let secs = t0.elapsed().as_secs_f64().max(0.001);
        say(&format!(
            "copied {} rows ({}) in {:.1} s ({:.0} rows/s)",
            report.rows_copied,
            ui::bytes(report.bytes_copied),
            secs,
            report.rows_copied as f64 / secs
        ));
    }
    if from <= Phase::Build {
        timer.start(Phase::Build);
        state.set_phase(ctl, run, Phase::Build).await?;
        let t0 = Instant::now();
        build_stage(ctl, opts, plan, gov, build::Stage::Bulk).await?;
        let n = plan.indexes.iter().filter(|i| !i.after_catch_up).count();
        say(&format!(
            "built {n} index{} and constraints in {:.1} s",
            if n == 1 { "" } else { "es" },
            t0.elapsed().as_secs_f64()
        ));
    }
    if from <= Phase::Swap {
        timer.start(Phase::Replay);
        state.set_phase(ctl, run, Phase::Replay).await?;
        let mut rc = conn::connect(&opts.conn, "replay").await?;
        replay::prepare_session(&rc, plan).await?;
        let backlog = capture::backlog(&rc, plan).await?;
        say(&format!(
            "replaying {backlog} captured change{}",
            if backlog == 1 { "" } else { "s" }
        ));
        report.replay_backlog_peak = report.replay_backlog_peak.max(backlog);
        // Bounded batches until the consistency point; complete ones once the shadow has
        // constraints that compare rows (already built, when a stopped run continues).
        let consistent_stage = build::has_consistent_stage(plan);
        let first = if consistent_stage && build::consistent_stage_built(ctl, plan).await? {
            replay::batching_for(plan, opts.replay_batch)
        } else {
            replay::Batching::Bounded(opts.replay_batch)
        };
        let b =
            replay::catch_up_with(&mut rc, plan, first, opts.replay_batch, gov, &opts.lock).await?;
        report.replayed_log_rows += b.log_rows;
        report.replay_backlog_peak = report.replay_backlog_peak.max(b.peak);
        if consistent_stage {
            // The consistency point (issue 13): a complete catch-up leaves the shadow equal to
            // the source as of one snapshot; only now are the constraints that compare rows
            // built, and from here on every replay batch is complete, which keeps them true.
            let b = replay::catch_up_with(
                &mut rc,
                plan,
                replay::Batching::Complete,
                opts.replay_batch,
                gov,
                &opts.lock,
            )
            .await?;
            report.replayed_log_rows += b.log_rows;
            let t0 = Instant::now();
            build_stage(ctl, opts, plan, gov, build::Stage::Consistent).await?;
            let n = plan.indexes.iter().filter(|i| i.after_catch_up).count();
            say(&format!(
                "consistent: built {n} constraint{} that compare rows{} in {:.1} s",
                if n == 1 { "" } else { "s" },
                " (unique, exclusion)",
                t0.elapsed().as_secs_f64()
            ));
        }

        timer.start(Phase::Verify);
        state.set_phase(ctl, run, Phase::Verify).await?;
        let predicates = state.chunk_predicates(&*ctl, run).await?;
        let v = gov
            .abortable(
                run,
                verify::verify(
                    &mut rc,
                    &opts.conn,
                    opts.jobs,
                    plan,
                    &predicates,
                    opts.verify,
                    opts.replay_batch,
                    gov,
                    &opts.lock,
                ),
            )
            .await?;
        if opts.verify != verify::Mode::Off {
            say(&format!(
                "verified {} rows in {} of {} chunks: the shadow equals the source through the mapping{}",
                v.rows_verified,
                v.chunks_verified,
                v.chunks_total,
                if v.repaired > 0 {
                    format!(" ({} differing rows repaired from the source)", v.repaired)
                } else {
                    String::new()
                }
            ));
        }
        report.verify = Some(v);
        check_new_foreign_keys(ctl, plan).await?;
        build::prepare(ctl, plan, src).await?;
        // Ready. A manual cut-over, a closed window or a pause keeps the run here, replaying.
        if gov.swap_hold(run)?.is_some() {
            timer.start_named("wait");
            wait_for_cutover(&mut rc, ctl, state, plan, opts, gov, report).await?;
        }

        timer.start(Phase::Swap);
        state.set_phase(ctl, run, Phase::Swap).await?;
        if let Some(rev) = &plan.reverse {
            let exists: bool = ctl
                .query_one(
                    "SELECT to_regclass($1::text) IS NOT NULL",
                    &[&rev.plan.capture.log.to_string()],
                )
                .await
                .ctx("looking for the reverse log")?
                .col(0, &"looking for the reverse log")?;
            if !exists {
                capture::create_log(ctl, state, &rev.plan, "r").await?;
            }
        }
        let req = SwapRequest {
            policy: &opts.lock,
            gov,
            replay_limit: opts.replay_batch,
            old_name: opts.old_name.as_deref(),
        };
        // --- old snapshots (issue 21, input 6): wait for transactions that could not see the
        // new table's rows, within --wait-old-snapshots; proceed with a warning or stop.
        let w = crate::rewrite::snapshots::wait_for_old_snapshots(
            ctl,
            &opts.old_snapshots,
            &plan.source,
        )
        .await?;
        for x in &w {
            say(&format!("warning: {x}"));
        }
        report.warnings.extend(w);
        // --- end old snapshots
        let out = swap::swap(&mut rc, ctl, state, plan, src, &req).await?;
        report.lock_attempts = out.attempts;
        report.lock_held_ms = out.held.as_secs_f64() * 1000.0;
        report.longest_lock_ms = out.longest_lock.as_secs_f64() * 1000.0;
        report.replayed_log_rows += out.replayed_under_lock;
        report.old_table = Some(out.old.human());
        say(&format!(
            "swapped: {} is the new table (ACCESS EXCLUSIVE held {:.1} ms, attempt {}); the old one is {}",
            plan.source.human(),
            report.lock_held_ms,
            out.attempts,
            out.old.human()
        ));
        if plan.reverse.is_some() {
            say(&format!(
                "{} is kept in sync for a way back: `pg-hotswap revert --table {}` swaps it back with every write made since; \
                 `pg-hotswap finish --table {}` drops it (until then every write also records its key)",
                out.old.human(),
                opts.table,
                opts.table
            ));
        }
        if let Some(s) = swap::analyze_step(plan, src) {
            // The extended statistics objects were created in the swap; fill them now.
            step::exec_locked(ctl, &opts.lock, &s.what, None, std::slice::from_ref(&s)).await?;
        }
        let w = swap::validate_foreign_keys(ctl, &out.to_validate, &opts.lock).await;
        for x in &w {
            say(&format!("warning: {x}"));
        }
        report.warnings.extend(w);
    }
    // Finish: the tool's objects go; the old table stays unless asked to drop it.
    timer.start(Phase::Finish);
    drop_capture_objects(ctl, state, plan).await?;
    let old_name = state.old_name(&*ctl, run).await?;
    if let Some(old) = &old_name {
        let old_q = plan.source.sibling(old.clone());
        report.old_table = Some(old_q.human());
        if opts.drop_old {
            let s = drop_old_step(&old_q);
            step::exec_locked(ctl, &opts.lock, &s.what, None, std::slice::from_ref(&s)).await?;
            report.old_table_dropped = true;
            say(&format!("dropped the old table {}", old_q.human()));
        }
    }
    state.mark_dropped(&*ctl, run, "table").await?;
    state.finish(ctl, run, "succeeded", None).await?;
    // Totals over the whole run, also the parts a previous process did before it stopped.
    let totals = state.copy_totals(&*ctl, run).await?;
    report.chunks = totals.chunks as usize;
    report.rows_copied = totals.rows as u64;
    report.bytes_copied = totals.bytes as u64;
    Ok(())
}

/// Builds one stage of the shadow's indexes and constraints. Index builds are not paused
/// midway; an abort drops them (their sessions close).
async fn build_stage(
    ctl: &Client,
    opts: &RunOptions,
    plan: &Plan,
    gov: &Governor,
    stage: build::Stage,
) -> Result<()> {
    let bo = BuildOptions {
        jobs: opts.jobs,
        maintenance_work_mem: opts.maintenance_work_mem.clone(),
    };
    gov.copy_permit(plan.run_id).await?;
    gov.abortable(plan.run_id, build::build(ctl, &opts.conn, plan, &bo, stage))
        .await
}

/// Foreign keys the ALTER adds must hold on the rows before the swap: PostgreSQL's ALTER would
/// refuse a row they reject, while the key added `NOT VALID` in the swap would keep it and only
/// warn (found by a fresh tester). The shadow is consistent here (after the catch-up); a row
/// that breaks the key later, between this check and the swap, leaves the key NOT VALID with
/// a warning after the swap.
async fn check_new_foreign_keys(ctl: &Client, plan: &Plan) -> Result<()> {
    use crate::error::RowExt;
    for fk in &plan.foreign_keys {
        let Some(sql) = &fk.orphan_check else {
            continue;
        };
        let what = format!("checking foreign key {} on the new rows", fk.name.as_str());
        let row = ctl.query_opt(sql.as_str(), &[]).await.ctx(&what)?;
        if let Some(r) = row {
            let key: Option<String> = r.col(0, &what)?;
            return Err(Error::failed(format!(
                "the foreign key {} that the ALTER adds ({}) is violated: the row with ({}) \
                 references no row; PostgreSQL's ALTER TABLE would fail on it",
                fk.name.as_str(),
                fk.def,
                key.unwrap_or_default()
            ))
            .with_state(format!(
                "nothing was swapped; {} is unchanged and usable; the run is recorded",
                plan.source.human()
            ))
            .with_next(format!(
                "`pg-hotswap abort --table {}` removes what the run created; fix the rows \
                 (or add the key NOT VALID) and run again",
                plan.source
            )));
        }
    }
    Ok(())
}

/// Holds the ready run before the swap while the governor says so (manual cut-over not yet
/// requested, outside the windows, paused), replaying the captured changes meanwhile so the
/// swap finds a short backlog whenever it comes.
async fn wait_for_cutover(
    rc: &mut Client,
    ctl: &Client,
    state: &State,
    plan: &Plan,
    opts: &RunOptions,
    gov: &Governor,
    report: &mut RunReport,
) -> Result<()> {
    let run = plan.run_id;
    let mut shown = false;
    while let Some(why) = gov.swap_hold(run)? {
        // The reason may change while waiting (a window closes, then the cut-over is awaited).
        gov.set_note(Some(why));
        shown = true;
        let b = replay::catch_up(
            rc,
            plan,
            opts.replay_batch,
            opts.replay_batch,
            gov,
            &opts.lock,
        )
        .await?;
        report.replayed_log_rows += b.log_rows;
        if b.log_rows < opts.replay_batch as u64 {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    if shown {
        gov.set_note(None);
        gov.cutover_taken(ctl, state, run).await?;
        say("cut-over: going ahead with the swap");
    }
    Ok(())
}

/// Maps errors that mean "the lock was not available" to the documented exit status.
pub fn is_lock_failure(e: &Error) -> bool {
    e.kind() == Kind::LockTimeout
}
