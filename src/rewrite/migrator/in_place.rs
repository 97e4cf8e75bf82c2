//! The run's fast path (issue 16): when the shadow's trial shows that PostgreSQL applies the
//! ALTER without rewriting the table (`fastpath::decide`), the run applies it to the live table
//! instead of copying, and is recorded in the state tables like any run (an event `in_place`
//! with the statements, then `succeeded`), so `status` shows what happened.
//!
//! It keeps the run's schedule: the governor's start permit (`--start-at`, a pause, throttling)
//! and the swap's hold (`--window`, `--cutover manual`, the `on-before-cutover` hook) are waited
//! for before the first statement, since changing the live table is what they guard.
//!
//! Invariant kept: a fast path that fails leaves no unfinished run behind (recorded as aborted,
//! with the error; `fastpath::apply` removed what a half-done ALTER would leave), so the same
//! command can simply be run again.

use super::{Ctx, RunReport};
use crate::error::Result;
use crate::output::ui::say;
use crate::pacing::governor::{Governor, PaceOptions};
use crate::rewrite::fastpath::{self, Ask, Decision, InPlace};
use crate::rewrite::preflight::Source;
use crate::rewrite::shadow::{self, ShadowRequest};
use crate::state::Phase;
use std::time::{Duration, Instant};
use tokio_postgres::Client;

impl super::RunOptions {
    /// What the options ask of the fast path's decision (`fastpath::decide`).
    pub fn ask(&self) -> Ask<'_> {
        Ask {
            alter: self.alter.as_deref(),
            force_rewrite: self.force_rewrite,
            order_by: self.order_by.is_some(),
            revertible: self.revertible,
            maps: !self.maps.is_empty(),
            partitioning: self.partitioning.is_some(),
        }
    }
}

impl Ctx<'_> {
    /// The in-place statements when no rewrite is needed (and none is asked for), else None.
    /// Tries the shadow in a rolled-back transaction to ask PostgreSQL.
    pub(super) async fn no_rewrite_needed(
        &self,
        ctl: &mut Client,
        src: &Source,
    ) -> Result<Option<InPlace>> {
        let opts = self.opts;
        let ask = opts.ask();
        if ask.rewrite_anyway().is_some() {
            return Ok(None);
        }
        let req = ShadowRequest {
            alter: opts.alter.as_deref(),
            maps: &opts.maps,
            shadow_name: opts.shadow_name.as_deref(),
            revertible: opts.revertible,
            partitioning: opts.partitioning.as_ref(),
            plain: false,
            show_unrouted: false,
        };
        let plan = shadow::dry_run(ctl, self.state, src, &req, &opts.lock).await?;
        let Some(probe) = &plan.rewrite_probe else {
            return Ok(None);
        };
        let decision = fastpath::decide(&ask, probe, src);
        say(&decision.describe());
        Ok(match decision {
            Decision::InPlace(p) => Some(p),
            Decision::Rewrite(_) => None,
        })
    }

    /// Applies the ALTER in place and records the run.
    pub(super) async fn alter_in_place(
        &self,
        ctl: &mut Client,
        src: &Source,
        p: InPlace,
        pace: &PaceOptions,
        mut report: RunReport,
        started: Instant,
    ) -> Result<RunReport> {
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
        let statements: Vec<String> = p.steps().map(|s| s.sql.clone()).collect();
        state
            .event(
                ctl,
                run,
                Phase::Preflight,
                "in_place",
                "no rewrite needed: the ALTER is applied to the table in place",
                Some(serde_json::json!({ "statements": statements })),
            )
            .await?;
        let applied = match self.wait_for_schedule(ctl, src, run, pace).await {
            Ok(gov) => {
                // From here on the table itself changes: such a run is not started over by
                // `resume`, and `abort` says what stays (`State::in_place_statements`).
                state
                    .event(
                        ctl,
                        run,
                        Phase::Preflight,
                        "in_place_applying",
                        "applying the ALTER to the table in place",
                        None,
                    )
                    .await?;
                crate::output::progress::phase("in place");
                // An abort is honoured between lock attempts (found by a fresh tester: it was
                // ignored while the statements waited for their locks).
                let stop = || {
                    gov.abort_requested()
                        .then(|| crate::pacing::governor::aborted_error(run))
                };
                fastpath::apply(ctl, &opts.lock, &p, &stop).await
            }
            Err(e) => Err(e),
        };
        match applied {
            Ok(done) => {
                state.finish(ctl, run, "succeeded", None).await?;
                report.run_id = run;
                report.lock_attempts = done.attempts;
                report.longest_lock_ms = done.longest_exclusive_ms;
                report.lock_held_ms = done.longest_exclusive_ms;
                report.total_secs = started.elapsed().as_secs_f64();
                report.phases = vec![("in place".to_string(), report.total_secs)];
                report.in_place = Some(statements);
                crate::output::progress::finish();
                Ok(report)
            }
            Err(e) => {
                crate::output::progress::finish();
                let _ = state.finish(ctl, run, "aborted", Some(e.message())).await;
                Err(e)
            }
        }
    }

    /// Waits for the start permit and for the swap's hold to lift (the window, a manual
    /// cut-over, the hooks), as the swap would; returns the governor, which watches for an
    /// abort while the statements run (it stops when dropped).
    async fn wait_for_schedule(
        &self,
        ctl: &Client,
        src: &Source,
        run: i64,
        pace: &PaceOptions,
    ) -> Result<Governor> {
        let gov = self.governor(ctl, &src.table.name, run, pace).await?;
        let mut waited = false;
        while let Some(why) = gov.swap_hold(run)? {
            if !waited {
                say(&format!("waiting before altering in place: {why}"));
            }
            gov.set_note(Some(why));
            waited = true;
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        if waited {
            gov.set_note(None);
            gov.cutover_taken(ctl, self.state, run).await?;
        }
        Ok(gov)
    }
}
