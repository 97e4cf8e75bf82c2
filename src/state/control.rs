//! The operator's side of the `runs` table: the request column `control` (`pause`, `cutover`,
//! `abort`, written by `pg-hotswap pause|cutover|abort` or by one SQL statement from any client
//! and polled by the running process's governor), and what the governor records for `status`
//! (what holds the run, since and until when, the replication lag last measured).
//!
//! Invariant kept here: a request is recorded only for a run that is running and not already
//! being aborted (an abort is never overwritten), and a request is cleared only if it is still
//! the one that was taken.

use super::{Phase, State};
use crate::error::{DbContext, Result, RowExt};
use tokio_postgres::GenericClient;

impl State {
    /// Records the operator's `request` (pause, cutover, abort, or None to resume) for the
    /// running run. Returns false when the run is no longer running or is being aborted.
    pub async fn request(
        &self,
        client: &impl GenericClient,
        run: i64,
        request: Option<&str>,
    ) -> Result<bool> {
        let n = client
            .execute(
                &format!(
                    "UPDATE {} SET control = $2 WHERE id = $1 AND status = 'running' \
                       AND control IS DISTINCT FROM 'abort'",
                    self.table("runs")
                ),
                &[&run, &request],
            )
            .await
            .ctx("recording the request for the running process")?;
        Ok(n > 0)
    }

    /// Clears the operator's request if it is still `request` (a cut-over that was taken, a
    /// pause left by a process that stopped). Returns whether it was there.
    pub async fn clear_request(
        &self,
        client: &impl GenericClient,
        run: i64,
        request: &str,
    ) -> Result<bool> {
        let n = client
            .execute(
                &format!(
                    "UPDATE {} SET control = NULL WHERE id = $1 AND control = $2",
                    self.table("runs")
                ),
                &[&run, &request],
            )
            .await
            .ctx(format_args!("clearing the {request} request"))?;
        Ok(n > 0)
    }

    /// The operator's request for the run and the run's phase.
    pub async fn request_and_phase(
        &self,
        client: &impl GenericClient,
        run: i64,
    ) -> Result<(Option<String>, Phase)> {
        let what = "reading the operator's request";
        let row = client
            .query_one(
                &format!(
                    "SELECT control, phase FROM {} WHERE id = $1",
                    self.table("runs")
                ),
                &[&run],
            )
            .await
            .ctx(what)?;
        let control: Option<String> = row.col(0, &what)?;
        let phase = Phase::parse(row.col(1, &what)?).unwrap_or(Phase::Preflight);
        Ok((control, phase))
    }

    /// The run's status (running, succeeded, failed, interrupted, aborted).
    pub async fn run_status(&self, client: &impl GenericClient, run: i64) -> Result<String> {
        client
            .query_one(
                &format!("SELECT status FROM {} WHERE id = $1", self.table("runs")),
                &[&run],
            )
            .await
            .ctx("watching the run stop")?
            .col(0, &"watching the run stop")
    }

    /// Records what holds the run now (None: nothing), since now, and until `waiting_secs` from
    /// `clock` (the time the wait was measured on: the test clock when one is set, else now).
    pub async fn record_hold(
        &self,
        client: &impl GenericClient,
        run: i64,
        reason: Option<&str>,
        waiting_secs: Option<f64>,
        clock: Option<&str>,
    ) -> Result<()> {
        client
            .execute(
                &format!(
                    "UPDATE {} SET throttle = $2, throttle_since = CASE WHEN $2::text IS NULL THEN NULL ELSE clock_timestamp() END, \
                            waiting_until = COALESCE($4::text::timestamptz, clock_timestamp()) + make_interval(secs => $3::float8) \
                      WHERE id = $1",
                    self.table("runs")
                ),
                &[&run, &reason, &waiting_secs, &clock],
            )
            .await
            .ctx("recording what holds the run")?;
        Ok(())
    }

    /// Records the replication lag last measured (seconds).
    pub async fn record_lag(&self, client: &impl GenericClient, run: i64, lag: f64) -> Result<()> {
        client
            .execute(
                &format!("UPDATE {} SET lag_s = $2 WHERE id = $1", self.table("runs")),
                &[&run, &lag],
            )
            .await
            .ctx("recording the replication lag")?;
        Ok(())
    }
}
