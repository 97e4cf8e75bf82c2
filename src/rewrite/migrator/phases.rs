//! The phases of a run once its shadow and plan exist, as named steps of a [`Flow`]: capture,
//! copy, build, catch-up (replay to the consistency point), verify, the hold for the cut-over,
//! swap, after the swap, finish. `Flow::phases` runs them in that order from the phase a run
//! is in, so a run that stopped continues where it was.
//!
//! Invariant kept here (DESIGN.md): each phase is recorded in `runs.phase` before its work
//! starts, and until the swap commits the source is unchanged and usable; after the swap only
//! clean-up is left.

use super::cleanup::{drop_capture_objects, drop_old_step};
use super::{RunOptions, RunReport, Timer};
use crate::db::conn::{self, ConnSpec};
use crate::error::{DbContext, Error, Result, RowExt};
use crate::output::progress::CopyCounters;
use crate::output::ui::{self, say};
use crate::pacing::governor::Governor;
use crate::rewrite::build::{self, BuildOptions};
use crate::rewrite::capture;
use crate::rewrite::chunks;
use crate::rewrite::copier;
use crate::rewrite::plan::Plan;
use crate::rewrite::preflight::Source;
use crate::rewrite::replay;
use crate::rewrite::step;
use crate::rewrite::swap::{self, SwapOutcome, SwapRequest};
use crate::rewrite::verify;
use crate::state::{Phase, State};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_postgres::Client;

/// What every phase reads: the run's options, its target's pieces, the inspected source, the
/// plan and the governor. What the phases change (the control session, the report, the timer)
/// is passed to each on its own.
pub(super) struct Flow<'a> {
    pub(super) opts: &'a RunOptions,
    /// For the phases' own sessions (copy workers, replay, verification, index builds).
    pub(super) conn: &'a ConnSpec,
    /// `--table` as the user typed it, as one shell word: how the suggested next commands name
    /// it.
    pub(super) typed: &'a str,
    pub(super) state: &'a State,
    pub(super) src: &'a Source,
    pub(super) plan: &'a Plan,
    pub(super) gov: &'a Governor,
}

impl Flow<'_> {
    /// Runs the phases from `from` on (a continued run skips those it finished). After it the
    /// run is recorded as succeeded: the new table is in place and the tool's objects are gone.
    pub(super) async fn phases(
        &self,
        ctl: &mut Client,
        from: Phase,
        report: &mut RunReport,
        timer: &mut Timer,
    ) -> Result<()> {
        if from <= Phase::Capture {
            self.capture_phase(ctl, timer).await?;
        }
        if from <= Phase::Copy {
            self.copy_phase(ctl, report, timer).await?;
        }
        if from <= Phase::Build {
            self.build_phase(ctl, timer).await?;
        }
        if from <= Phase::Swap {
            let mut rc = self.catch_up_phase(ctl, report, timer).await?;
            self.verify_phase(&mut rc, ctl, report, timer).await?;
            self.hold_for_cutover(&mut rc, report, timer).await?;
            let out = self.swap_phase(&mut rc, ctl, report, timer).await?;
            let broken = self.after_swap(ctl, &out, report).await?;
            self.finish_phase(ctl, report, timer).await?;
            return match broken {
                Some(e) => Err(e),
                None => Ok(()),
            };
        }
        self.finish_phase(ctl, report, timer).await
    }

    /// Capture: the change log and the capture triggers (every write to the source from now
    /// on records its key), and the copy's chunks planned and recorded. After it the run is in
    /// phase capture with every chunk pending.
    async fn capture_phase(&self, ctl: &mut Client, timer: &mut Timer) -> Result<()> {
        let (state, plan) = (self.state, self.plan);
        let run = plan.run_id;
        timer.start(Phase::Capture);
        state.set_phase(ctl, run, Phase::Capture).await?;
        capture::create_log(ctl, state, plan, "").await?;
        let attempts = capture::install_triggers(ctl, state, plan, &self.opts.lock).await?;
        say(&format!(
            "capture trigger installed on {} ({} attempt{})",
            plan.source.human(),
            attempts,
            if attempts == 1 { "" } else { "s" }
        ));
        let chunks =
            chunks::plan_chunks(ctl, plan, self.src.table.reltuples, self.opts.chunk_rows).await?;
        copier::record_chunks(ctl, state, run, &chunks).await?;
        Ok(())
    }

    /// Copy: the pending chunks copied into the shadow by `--jobs` workers, each chunk recorded
    /// as done with its commit. After it the run is in phase copy with every chunk done.
    async fn copy_phase(
        &self,
        ctl: &mut Client,
        report: &mut RunReport,
        timer: &mut Timer,
    ) -> Result<()> {
        let (opts, state, plan) = (self.opts, self.state, self.plan);
        let run = plan.run_id;
        timer.start(Phase::Copy);
        state.set_phase(ctl, run, Phase::Copy).await?;
        let pending = copier::pending_chunks(ctl, state, run).await?;
        report.chunks = pending.len();
        let all_chunks = state.chunk_count(&*ctl, run).await?;
        // Rows still to copy, estimated: the table's share of the chunks not done yet.
        let total_est = (self.src.table.reltuples.max(0.0) * pending.len() as f64
            / all_chunks.max(1) as f64) as u64;
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
            self.conn,
            &opts.lock,
            state,
            plan,
            pending,
            opts.jobs,
            opts.chunk_time,
            progress.clone(),
            self.gov,
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
        Ok(())
    }

    /// Build: the shadow's indexes and constraints, except those that compare rows (unique,
    /// exclusion), which wait for the consistency point. After it the run is in phase build
    /// with the bulk stage built.
    async fn build_phase(&self, ctl: &mut Client, timer: &mut Timer) -> Result<()> {
        timer.start(Phase::Build);
        self.state
            .set_phase(ctl, self.plan.run_id, Phase::Build)
            .await?;
        let t0 = Instant::now();
        self.build_stage(ctl, build::Stage::Bulk).await?;
        let mut n = build::stage_size(self.plan, build::Stage::Bulk);
        if self.opts.order_by.is_some() {
            // CLUSTER may order the table by a plain index: all of them now.
            self.build_stage(ctl, build::Stage::Beside).await?;
            n += build::stage_size(self.plan, build::Stage::Beside);
        }
        say(&format!(
            "built {n} index{} and constraints in {:.1} s",
            if n == 1 { "" } else { "es" },
            t0.elapsed().as_secs_f64()
        ));
        if let Some(text) = &self.opts.order_by {
            let order = build::order_by(self.src, text)?;
            let t0 = Instant::now();
            self.gov.copy_permit(self.plan.run_id).await?;
            build::cluster(ctl, self.plan, &order, &self.opts.maintenance_work_mem).await?;
            say(&format!(
                "wrote the rows of the new table in the order of --order-by {text} in {:.1} s",
                t0.elapsed().as_secs_f64()
            ));
        }
        Ok(())
    }

    /// Replay up to the consistency point: the changes captured during the copy and the build
    /// applied to the shadow on a replay session (returned, for the phases up to the swap); then,
    /// when the shadow has constraints that compare rows, one complete catch-up and those
    /// constraints built. After it the run is in phase replay, the shadow equal to the source
    /// as of one snapshot (where it has such constraints), every later batch complete.
    async fn catch_up_phase(
        &self,
        ctl: &mut Client,
        report: &mut RunReport,
        timer: &mut Timer,
    ) -> Result<Client> {
        let (opts, plan, gov) = (self.opts, self.plan, self.gov);
        timer.start(Phase::Replay);
        self.state
            .set_phase(ctl, plan.run_id, Phase::Replay)
            .await?;
        let mut rc = conn::connect(self.conn, "replay").await?;
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
            self.build_stage(ctl, build::Stage::Consistent).await?;
            let n = plan.indexes.iter().filter(|i| i.after_catch_up).count();
            say(&format!(
                "consistent: built {n} constraint{} that compare rows{} in {:.1} s",
                if n == 1 { "" } else { "s" },
                " (unique, exclusion)",
                t0.elapsed().as_secs_f64()
            ));
        }
        Ok(rc)
    }

    /// Verify: the shadow compared with the source through the mapping (`--verify`), the
    /// foreign keys the ALTER adds checked on the new rows, and the shadow prepared for the
    /// swap. After it the run is in phase verify, ready to swap.
    async fn verify_phase(
        &self,
        rc: &mut Client,
        ctl: &mut Client,
        report: &mut RunReport,
        timer: &mut Timer,
    ) -> Result<()> {
        let (opts, state, plan, gov) = (self.opts, self.state, self.plan, self.gov);
        let run = plan.run_id;
        timer.start(Phase::Verify);
        state.set_phase(ctl, run, Phase::Verify).await?;
        let predicates = state.chunk_predicates(&*ctl, run).await?;
        // The comparison reads both tables; beside it, on other sessions, the plain indexes are
        // built, then the table attributes whose locks allow the comparison's reads set, and the
        // shadow analyzed (issue 16: each leaves the server's cores partly idle on its own).
        // Repairs replay into the shadow, which an index build's SHARE lock would block, and
        // the replica identity takes ACCESS EXCLUSIVE: both come after.
        let ctl_ro: &Client = ctl;
        let beside = gov.abortable(run, async {
            let t0 = Instant::now();
            self.build_stage(ctl_ro, build::Stage::Beside).await?;
            let n = build::stage_size(plan, build::Stage::Beside);
            if n > 0 && self.opts.order_by.is_none() {
                say(&format!(
                    "{n} plain index{} ready beside verification after {:.1} s",
                    if n == 1 { "" } else { "es" },
                    t0.elapsed().as_secs_f64()
                ));
            }
            build::prepare(ctl_ro, plan, self.src, build::Attributes::BesideReads).await
        });
        let compare = gov.abortable(
            run,
            verify::compare(
                rc,
                self.conn,
                opts.jobs,
                plan,
                &predicates,
                opts.verify,
                gov,
            ),
        );
        let (found, ()) = tokio::try_join!(compare, beside)?;
        let v = gov
            .abortable(
                run,
                verify::repair(rc, plan, found, opts.replay_batch, gov, &opts.lock),
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
        build::prepare(ctl, plan, self.src, build::Attributes::AfterReads).await?;
        check_new_foreign_keys(ctl, plan).await?;
        self.say_order_correlation(ctl).await
    }

    /// With `--order-by`: how well the analyzed shadow is ordered by its first column
    /// (`pg_stats.correlation`; the swap keeps the statistics).
    async fn say_order_correlation(&self, ctl: &Client) -> Result<()> {
        let Some(text) = &self.opts.order_by else {
            return Ok(());
        };
        let first = match build::order_by(self.src, text)? {
            build::OrderBy::Columns(c) => c.first().cloned(),
            build::OrderBy::Index(name) => self
                .src
                .indexes
                .iter()
                .find(|i| i.name == name)
                .and_then(|i| i.key_columns.first().cloned()),
        };
        let Some(col) = first.and_then(|c| self.plan.shadow_column_of(&c).cloned()) else {
            return Ok(());
        };
        if let Some(c) = build::order_correlation(ctl, &self.plan.shadow, &col).await? {
            say(&format!(
                "--order-by: correlation of {} with the row order is {c:.3} (1: fully ordered)",
                col.as_str()
            ));
        }
        Ok(())
    }

    /// Holds the ready run before the swap while the governor says so (manual cut-over not yet
    /// requested, outside the windows, paused), replaying the captured changes meanwhile so the
    /// swap finds a short backlog whenever it comes. After it the swap may go ahead.
    async fn hold_for_cutover(
        &self,
        rc: &mut Client,
        report: &mut RunReport,
        timer: &mut Timer,
    ) -> Result<()> {
        let (opts, gov) = (self.opts, self.gov);
        let run = self.plan.run_id;
        if gov.swap_hold(run)?.is_none() {
            return Ok(());
        }
        timer.start_named("wait");
        let mut shown = false;
        while let Some(why) = gov.swap_hold(run)? {
            // The reason may change while waiting (a window closes, then the cut-over is awaited).
            gov.set_note(Some(why));
            shown = true;
            let b = replay::catch_up(
                rc,
                self.plan,
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
            // The request is cleared only once the swap committed (swap_phase): a redo after a
            // lost session goes on to the swap instead of waiting for it again (issue 20).
            say("cut-over: going ahead with the swap");
        }
        Ok(())
    }

    /// Swap: the reverse log made (with `--revertible`), old snapshots waited for
    /// (`--wait-old-snapshots`), then the names swapped under a short lock with the last
    /// changes replayed under it. After it the new table has the source's name and the old
    /// one is kept; the run is in phase finish.
    async fn swap_phase(
        &self,
        rc: &mut Client,
        ctl: &mut Client,
        report: &mut RunReport,
        timer: &mut Timer,
    ) -> Result<SwapOutcome> {
        let (opts, state, plan) = (self.opts, self.state, self.plan);
        timer.start(Phase::Swap);
        state.set_phase(ctl, plan.run_id, Phase::Swap).await?;
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
            gov: self.gov,
            replay_limit: opts.replay_batch,
            old_name: opts.old_name.as_deref(),
            kept_suffix: "_old",
            terminate_blockers_after: opts.terminate_blockers_after,
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
        let out = swap::swap(rc, ctl, state, plan, self.src, &req).await?;
        // The operator's (or the fleet's) cut-over request is done with.
        self.gov.cutover_taken(ctl, state, plan.run_id).await?;
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
                self.typed,
                self.typed
            ));
        }
        Ok(out)
    }

    /// After the swap: the extended statistics created in the swap filled (ANALYZE), and the
    /// foreign keys added NOT VALID validated. A failure is a warning, except for a foreign key
    /// the ALTER adds: PostgreSQL's ALTER would have failed on the row, so the run ends with
    /// that error (returned, after the finish phase) instead of exit 0. The rows were checked
    /// before the swap (`check_new_foreign_keys`); a row written between that check and the
    /// swap's lock, or a referenced row deleted then, is found only here (a fresh tester,
    /// session 13: exit 0 and a warning). After it the new table is complete; the run is still
    /// in phase finish.
    async fn after_swap(
        &self,
        ctl: &mut Client,
        out: &SwapOutcome,
        report: &mut RunReport,
    ) -> Result<Option<Error>> {
        let lock = &self.opts.lock;
        if let Some(s) = swap::analyze_step(self.plan, self.src) {
            // The extended statistics objects were created in the swap; fill them now.
            step::exec_locked(ctl, lock, &s.what, None, std::slice::from_ref(&s)).await?;
        }
        let failed = swap::validate_foreign_keys(ctl, &out.to_validate, lock).await;
        let mut broken = Vec::new();
        for (name, x) in failed {
            let added = self
                .plan
                .foreign_keys
                .iter()
                .any(|fk| fk.name == name && fk.orphan_check.is_some());
            if added {
                broken.push(x);
            } else {
                say(&format!("warning: {x}"));
                report.warnings.push(x);
            }
        }
        if broken.is_empty() {
            return Ok(None);
        }
        let table = self.plan.source.human();
        Ok(Some(
            Error::failed(format!(
                "a foreign key the ALTER adds does not hold on rows written during the run, \
                 after its check before the swap: {}",
                broken.join("; ")
            ))
            .with_state(format!(
                "the swap is done and the run finished: {table} is the new table, and the key \
                 is NOT VALID (it checks every new write); PostgreSQL's own ALTER TABLE would \
                 have failed on these rows"
            ))
            .with_next(format!(
                "fix the rows named above in {table}, then run the VALIDATE CONSTRAINT named above"
            )),
        ))
    }

    /// Finish: the tool's objects go (the capture triggers and the change log); the old table
    /// stays unless `--drop-old`. After it the run is recorded as succeeded, and the report has
    /// the totals of the whole run (also what a stopped process did before).
    async fn finish_phase(
        &self,
        ctl: &mut Client,
        report: &mut RunReport,
        timer: &mut Timer,
    ) -> Result<()> {
        let (state, plan) = (self.state, self.plan);
        let run = plan.run_id;
        timer.start(Phase::Finish);
        drop_capture_objects(ctl, state, plan).await?;
        let old_name = state.old_name(&*ctl, run).await?;
        if let Some(old) = &old_name {
            let old_q = plan.source.sibling(old.clone());
            report.old_table = Some(old_q.human());
            if self.opts.drop_old {
                let s = drop_old_step(&old_q);
                step::exec_locked(
                    ctl,
                    &self.opts.lock,
                    &s.what,
                    None,
                    std::slice::from_ref(&s),
                )
                .await?;
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
    async fn build_stage(&self, ctl: &Client, stage: build::Stage) -> Result<()> {
        let bo = BuildOptions {
            jobs: self.opts.jobs,
            maintenance_work_mem: self.opts.maintenance_work_mem.clone(),
        };
        let (plan, gov) = (self.plan, self.gov);
        gov.copy_permit(plan.run_id).await?;
        gov.abortable(plan.run_id, build::build(ctl, self.conn, plan, &bo, stage))
            .await
    }
}

/// Foreign keys the ALTER adds must hold on the rows before the swap: PostgreSQL's ALTER would
/// refuse a row they reject, while the key added `NOT VALID` in the swap would keep it and only
/// warn (found by a fresh tester). The shadow is consistent here (after the catch-up); a row
/// that breaks the key later, between this check and the swap, leaves the key NOT VALID with
/// a warning after the swap.
async fn check_new_foreign_keys(ctl: &Client, plan: &Plan) -> Result<()> {
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
                crate::output::ui::shell_word(&plan.source.to_string())
            )));
        }
    }
    Ok(())
}
