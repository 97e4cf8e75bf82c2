//! Riding out lost sessions (issue 20): when the phases stop because a session was lost (a
//! terminated backend, a dropped connection, a server restart), the run reconnects its control
//! session where that one is gone (taking the table's advisory lock again), reads from its state
//! tables where it stands, and goes on from there — the same continuation as `resume`, inside the
//! running process. The bound and backoff are the db layer's one fault rule
//! (`db::faults::FaultRetry`); each redo is said as a warning, recorded as an event
//! (`fault_retry`) and counted in the report (`fault_retries`).
//!
//! Invariant kept: the unit of work that lost its session is redone without doing anything
//! twice, because every phase from the copy on continues from recorded state: a copy unit's rows
//! commit with its chunks' done marks (a redo copies only chunks not marked done, so a unit
//! whose COMMIT reached the server before the connection died is not copied again); index builds
//! skip what exists; a replay batch deletes exactly the log rows it read in its own transaction;
//! verification is read-only but for repairs from the source; the swap records phase `finish` in
//! its own transaction, so a redo knows whether it committed. A run that lost its session before
//! the copy (capture) is not redone here: as before, it stops and the next run starts it again.

use super::Ctx;
use crate::db::conn;
use crate::db::faults::{FaultRetry, Verdict};
use crate::error::{Error, Result};
use crate::output::ui::say;
use crate::state::Phase;
use tokio_postgres::Client;

impl Ctx<'_> {
    /// After the phases of run `run` failed with `e`: the phase to go on from once the run has
    /// a working control session again (a redo, counted in `faults`); the error that stops the
    /// run otherwise (not a lost session, lost too often in a row, a run not yet past its
    /// capture, or one no longer recorded as unfinished).
    pub(super) async fn ride_out(
        &self,
        ctl: &mut Client,
        run: i64,
        faults: &mut FaultRetry,
        e: Error,
    ) -> Result<Phase> {
        let mut err = e;
        loop {
            let n = match faults.judge(&err) {
                Verdict::NotAFault => return Err(err),
                Verdict::GiveUp => {
                    let note = format!(
                        "a session of the run was lost {} times in a row; gave up after {} \
                         reconnects",
                        faults.streak() + 1,
                        faults.streak()
                    );
                    // The run's own state and next step are said by the caller (`failed`).
                    return Err(err.without_advice().with_note(note));
                }
                Verdict::Redo(n) => n,
            };
            let most = faults.policy().attempts;
            say(&format!(
                "warning: lost a session of run {run} ({}); reconnecting and redoing the work \
                 it was doing (redo {n} of at most {most} in a row)",
                err.message()
            ));
            faults.back_off().await;
            match self.reconnect_at(ctl, run, n, &err).await {
                Ok(Some(phase)) => return Ok(phase),
                Ok(None) => return Err(err),
                // Lost again while reconnecting (the server restarting, the fault persisting):
                // counted like any other loss.
                Err(again) if again.is_connection_lost() => err = again,
                Err(other) => return Err(other),
            }
        }
    }

    /// Reconnects for redo `n` of run `run` after `err`, and reads where the run stands: the
    /// phase to go on from (the redo recorded as an event), or None when the run is not to be
    /// continued here (no longer unfinished, or not yet past its capture: before the copy a run
    /// is not continued, see take_over_unfinished; the next run clears and starts it again).
    async fn reconnect_at(
        &self,
        ctl: &mut Client,
        run: i64,
        n: u32,
        err: &Error,
    ) -> Result<Option<Phase>> {
        self.reconnect(ctl).await?;
        let u = self.state.unfinished_run(ctl, self.oid).await?;
        let Some(u) = u.filter(|u| u.id == run && u.phase >= Phase::Copy) else {
            return Ok(None);
        };
        let detail = serde_json::json!({
            "redo": n,
            "sqlstate": err.code().map(|c| c.code().to_string()),
            "error": err.message(),
        });
        self.state
            .event(
                &*ctl,
                run,
                u.phase,
                "fault_retry",
                &format!(
                    "lost a session in phase {}; reconnected, redo {n}",
                    u.phase.as_str()
                ),
                Some(detail),
            )
            .await?;
        say(&format!(
            "reconnected; run {run} goes on from phase {}",
            u.phase.as_str()
        ));
        Ok(Some(u.phase))
    }

    /// Makes `ctl` a working control session again: kept when it still answers (it holds the
    /// table's advisory lock), else replaced by a new one that takes the lock again. Another
    /// process that took the lock meanwhile stops this one.
    async fn reconnect(&self, ctl: &mut Client) -> Result<()> {
        if !ctl.is_closed() && ctl.simple_query("SELECT 1").await.is_ok() {
            return Ok(());
        }
        let fresh = conn::connect(self.conn, "control").await?;
        if !self.state.try_lock_table(&fresh, self.oid).await? {
            let pid = self.state.lock_holder(&fresh, self.oid).await?;
            return Err(Error::failed(format!(
                "after reconnecting, another pg-hotswap process is working on this table \
                 (session pid {})",
                pid.map(|p| p.to_string()).unwrap_or_else(|| "?".into())
            ))
            .with_state("this process stopped; the other one has the run")
            .with_next("let that process finish (`pg-hotswap status`)"));
        }
        *ctl = fresh;
        Ok(())
    }
}
