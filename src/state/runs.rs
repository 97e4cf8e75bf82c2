//! The `runs` table: one row per run, from its creation through its phases to its outcome, and
//! what the swap and `revert`/`finish` record on it.
//!
//! Invariant kept here: a run's phase only moves forward through [`State::set_phase`] (which also
//! records the change in `events`), except inside the swap's transaction, where
//! [`State::record_swap`] moves it to `finish` together with the names the swap chose, so a
//! crash leaves either the old names and phase or the new ones.

use super::{Phase, State};
use crate::db::ident::QualifiedName;
use crate::error::{DbContext, Result, RowExt};
use tokio_postgres::types::Oid;
use tokio_postgres::{Client, GenericClient};

/// A run that has not finished (status other than succeeded/aborted).
#[derive(Clone, Debug)]
pub struct UnfinishedRun {
    pub id: i64,
    pub phase: Phase,
    pub status: String,
    pub args: serde_json::Value,
    pub plan: Option<serde_json::Value>,
    pub error: Option<String>,
}

/// A succeeded run whose swap is done: what `revert` and `finish` read of it.
#[derive(Clone, Debug)]
pub struct SwappedRun {
    pub id: i64,
    pub plan: serde_json::Value,
    /// The old table's name after the swap.
    pub old_name: Option<String>,
    /// The names the swap chose (old table, its indexes).
    pub swap: Option<serde_json::Value>,
    /// The state of the reverse capture: active, reverted, finished.
    pub reverse: Option<String>,
}

/// Which swapped run [`State::swapped_run`] looks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Swapped {
    /// The last one whose reverse capture is active (`revert`).
    Revertible,
    /// The last one not yet finished (`finish`).
    Unfinished,
}

impl State {
    pub async fn unfinished_run(&self, client: &Client, oid: Oid) -> Result<Option<UnfinishedRun>> {
        let sql = format!(
            "SELECT id, phase, status, args, plan, error FROM {} \
              WHERE (table_oid = $1 OR (plan->>'shadow_oid')::oid = $1) \
                AND status NOT IN ('succeeded', 'aborted') \
              ORDER BY id DESC LIMIT 1",
            self.table("runs")
        );
        let row = client
            .query_opt(&sql, &[&oid])
            .await
            .ctx("looking for an unfinished run")?;
        let what = "reading an unfinished run";
        row.map(|r| {
            Ok(UnfinishedRun {
                id: r.col(0, &what)?,
                phase: Phase::parse(r.col::<&str>(1, &what)?).unwrap_or(Phase::Preflight),
                status: r.col(2, &what)?,
                args: r.col(3, &what)?,
                plan: r.col(4, &what)?,
                error: r.col(5, &what)?,
            })
        })
        .transpose()
    }

    pub async fn create_run(
        &self,
        client: &Client,
        oid: Oid,
        table: &QualifiedName,
        alter: Option<&str>,
        args: &serde_json::Value,
    ) -> Result<i64> {
        let sql = format!(
            "INSERT INTO {} (table_oid, table_name, alter_text, args) VALUES ($1, $2, $3, $4) RETURNING id",
            self.table("runs")
        );
        let row = client
            .query_one(&sql, &[&oid, &table.human(), &alter, args])
            .await
            .ctx("recording the run")?;
        row.col(0, &"recording the run")
    }

    pub async fn set_phase(&self, client: &Client, run: i64, phase: Phase) -> Result<()> {
        let sql = format!(
            "UPDATE {} SET phase = $2, status = 'running', updated_at = now() WHERE id = $1",
            self.table("runs")
        );
        client
            .execute(&sql, &[&run, &phase.as_str()])
            .await
            .ctx("recording the phase")?;
        self.event(
            client,
            run,
            phase,
            "phase",
            &format!("phase {}", phase.as_str()),
            None,
        )
        .await?;
        crate::failpoint::hit(&format!("phase-{}", phase.as_str()));
        Ok(())
    }

    pub async fn set_plan(
        &self,
        client: &impl GenericClient,
        run: i64,
        plan: &serde_json::Value,
    ) -> Result<()> {
        let sql = format!(
            "UPDATE {} SET plan = $2, updated_at = now() WHERE id = $1",
            self.table("runs")
        );
        client
            .execute(&sql, &[&run, plan])
            .await
            .ctx("recording the plan")?;
        Ok(())
    }

    /// Marks the run finished or failed. `status`: succeeded, failed, interrupted, aborted.
    pub async fn finish(
        &self,
        client: &Client,
        run: i64,
        status: &str,
        error: Option<&str>,
    ) -> Result<()> {
        let sql = format!(
            "UPDATE {} SET status = $2, error = $3, updated_at = now(), \
                    phase = CASE WHEN $2 = 'succeeded' THEN 'done' ELSE phase END, \
                    finished_at = CASE WHEN $2 IN ('succeeded', 'aborted') THEN now() END \
              WHERE id = $1",
            self.table("runs")
        );
        client
            .execute(&sql, &[&run, &status, &error])
            .await
            .ctx("recording the outcome of the run")?;
        Ok(())
    }

    pub async fn record_lock(
        &self,
        client: &Client,
        run: i64,
        attempts: i32,
        held_ms: Option<f64>,
    ) -> Result<()> {
        let sql = format!(
            "UPDATE {} SET lock_attempts = $2, max_lock_ms = GREATEST(max_lock_ms, $3), updated_at = now() WHERE id = $1",
            self.table("runs")
        );
        client
            .execute(&sql, &[&run, &attempts, &held_ms])
            .await
            .ctx("recording lock attempts")?;
        Ok(())
    }

    /// Records the swap in its own transaction `tx`: the names it chose (`swap`: the old table and
    /// its indexes), whether the reverse capture is now active, the old table's name, and the
    /// phase `finish`.
    pub async fn record_swap(
        &self,
        tx: &impl GenericClient,
        run: i64,
        swap: &serde_json::Value,
        revertible: bool,
        old_name: &str,
    ) -> Result<()> {
        let sql = format!(
            "UPDATE {} SET swap = $2, reverse = CASE WHEN $3 THEN 'active' END, old_name = $4, \
                    phase = 'finish', updated_at = now() \
              WHERE id = $1",
            self.table("runs")
        );
        tx.execute(&sql, &[&run, swap, &revertible, &old_name])
            .await
            .ctx("recording the swap")?;
        Ok(())
    }

    /// Records the cut-over mode the run is (re)started with: `manual` or `auto`.
    pub async fn set_cutover(
        &self,
        client: &impl GenericClient,
        run: i64,
        manual: bool,
    ) -> Result<()> {
        let sql = format!(
            "UPDATE {} SET cutover = $2 WHERE id = $1",
            self.table("runs")
        );
        let mode = if manual { "manual" } else { "auto" };
        client
            .execute(&sql, &[&run, &mode])
            .await
            .ctx("recording the cut-over mode")?;
        Ok(())
    }

    /// Whether the run was last started with `--cutover manual` (None: not recorded, by a
    /// version before this was kept).
    pub async fn cutover_manual(
        &self,
        client: &impl GenericClient,
        run: i64,
    ) -> Result<Option<bool>> {
        let what = "reading the recorded cut-over mode";
        let mode: Option<String> = client
            .query_one(
                &format!("SELECT cutover FROM {} WHERE id = $1", self.table("runs")),
                &[&run],
            )
            .await
            .ctx(what)?
            .col(0, &what)?;
        Ok(mode.map(|m| m == "manual"))
    }

    /// The old table's name recorded by the swap (None before it).
    pub async fn old_name(&self, client: &impl GenericClient, run: i64) -> Result<Option<String>> {
        client
            .query_one(
                &format!("SELECT old_name FROM {} WHERE id = $1", self.table("runs")),
                &[&run],
            )
            .await
            .ctx("reading the old table's name")?
            .col(0, &"reading the old table's name")
    }

    /// The last succeeded run whose new table is `oid`, of the kind `which`.
    pub async fn swapped_run(
        &self,
        client: &impl GenericClient,
        oid: Oid,
        which: Swapped,
    ) -> Result<Option<SwappedRun>> {
        let (reverse, looking, what) = match which {
            Swapped::Revertible => (
                "reverse = 'active'",
                "looking for the revertible run",
                "reading the revertible run",
            ),
            Swapped::Unfinished => (
                "COALESCE(reverse, '') <> 'finished'",
                "looking for the table's last rewrite",
                "reading the table's last rewrite",
            ),
        };
        let row = client
            .query_opt(
                &format!(
                    "SELECT id, plan, old_name, swap, reverse FROM {} WHERE (plan->>'shadow_oid')::oid = $1 \
                       AND status = 'succeeded' AND {reverse} ORDER BY id DESC LIMIT 1",
                    self.table("runs")
                ),
                &[&oid],
            )
            .await
            .ctx(looking)?;
        row.map(|r| {
            Ok(SwappedRun {
                id: r.col(0, &what)?,
                plan: r.col(1, &what)?,
                old_name: r.col(2, &what)?,
                swap: r.col(3, &what)?,
                reverse: r.col(4, &what)?,
            })
        })
        .transpose()
    }

    /// Records the state of the run's reverse capture: `reverted` or `finished`.
    pub async fn set_reverse(
        &self,
        client: &impl GenericClient,
        run: i64,
        reverse: &str,
    ) -> Result<()> {
        client
            .execute(
                &format!(
                    "UPDATE {} SET reverse = $2 WHERE id = $1",
                    self.table("runs")
                ),
                &[&run, &reverse],
            )
            .await
            .ctx(match reverse {
                "reverted" => "recording the revert",
                "finished" => "recording the finish",
                _ => "recording the reverse capture",
            })?;
        Ok(())
    }
}
