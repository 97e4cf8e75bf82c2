//! State in the database: the `runs`, `chunks`, `events` and `objects` tables of the state
//! schema (default `hotswap`), and the advisory lock that allows one run per table.
//!
//! Invariant kept here: every object the tool creates is recorded in `objects` in the same
//! transaction that creates it (DESIGN.md, "Nothing the tool creates is left behind unknown").

use crate::error::{DbContext, Error, Result, RowExt};
use crate::ident::{Ident, QualifiedName};
use tokio_postgres::types::Oid;
use tokio_postgres::{Client, GenericClient};

/// Namespace for the tool's advisory locks (`pg_try_advisory_lock(int4, int4)`): "hswp".
const LOCK_CLASS: i32 = 0x6873_7770;

/// The state schema, with helpers that name its tables.
#[derive(Clone, Debug)]
pub struct State {
    pub schema: Ident,
}

/// Phases of a run, in order (stored as text in `runs.phase`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    Preflight,
    Shadow,
    Capture,
    Copy,
    Build,
    Replay,
    Verify,
    Swap,
    Finish,
    Done,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Preflight => "preflight",
            Phase::Shadow => "shadow",
            Phase::Capture => "capture",
            Phase::Copy => "copy",
            Phase::Build => "build",
            Phase::Replay => "replay",
            Phase::Verify => "verify",
            Phase::Swap => "swap",
            Phase::Finish => "finish",
            Phase::Done => "done",
        }
    }

    pub fn parse(s: &str) -> Option<Phase> {
        Some(match s {
            "preflight" => Phase::Preflight,
            "shadow" => Phase::Shadow,
            "capture" => Phase::Capture,
            "copy" => Phase::Copy,
            "build" => Phase::Build,
            "replay" => Phase::Replay,
            "verify" => Phase::Verify,
            "swap" => Phase::Swap,
            "finish" => Phase::Finish,
            "done" => Phase::Done,
            _ => return None,
        })
    }
}

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

impl State {
    pub fn new(schema: &str) -> State {
        State {
            schema: Ident::new(schema),
        }
    }

    pub fn table(&self, name: &str) -> QualifiedName {
        QualifiedName {
            schema: self.schema.clone(),
            name: Ident::new(name),
        }
    }

    /// Creates the state schema and tables if they do not exist.
    pub async fn ensure_schema(&self, client: &Client) -> Result<()> {
        let ddl =
            include_str!("../sql/state_schema.sql").replace("@schema@", &self.schema.to_string());
        client
            .batch_execute(&format!(
                "BEGIN; SELECT pg_advisory_xact_lock({LOCK_CLASS}, 0); {ddl}; COMMIT"
            ))
            .await
            .map_err(|e| {
                Error::db(
                    format_args!("creating the state schema {}", self.schema.as_str()),
                    e,
                )
                .with_state("nothing was changed")
                .with_next("the tool needs CREATE on the database to keep its state (or pass --state-schema naming a schema you own)")
            })?;
        let _ = client.batch_execute("ROLLBACK").await;
        Ok(())
    }

    /// Whether the state schema exists (without creating it).
    pub async fn exists(&self, client: &Client) -> Result<bool> {
        let row = client
            .query_one(
                "SELECT to_regclass(quote_ident($1) || '.runs') IS NOT NULL",
                &[&self.schema.as_str()],
            )
            .await
            .ctx("looking for the state schema")?;
        row.col(0, &"looking for the state schema")
    }

    /// Takes the per-table advisory lock on this session; false if another session holds it.
    /// A session that holds it only because its process just ended (the server has not noticed
    /// the closed connection yet) lets go within moments, so a busy lock is tried again for up
    /// to five seconds before giving up.
    pub async fn try_lock_table(&self, client: &Client, oid: Oid) -> Result<bool> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let row = client
                .query_one(
                    "SELECT pg_try_advisory_lock($1, ($2::oid)::int4)",
                    &[&LOCK_CLASS, &oid],
                )
                .await
                .ctx("taking the per-table advisory lock")?;
            if row.col::<bool>(0, &"taking the per-table advisory lock")? {
                return Ok(true);
            }
            if std::time::Instant::now() >= deadline {
                return Ok(false);
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }

    /// The pid of the session holding the per-table lock, if any.
    pub async fn lock_holder(&self, client: &Client, oid: Oid) -> Result<Option<i32>> {
        let row = client
            .query_opt(
                "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted \
                   AND classid::int4 = $1 AND objid::int4 = ($2::oid)::int4 AND objsubid = 2 LIMIT 1",
                &[&LOCK_CLASS, &oid],
            )
            .await
            .ctx("looking for the session that runs pg-hotswap on this table")?;
        row.map(|r| {
            r.col(
                0,
                &"looking for the session that runs pg-hotswap on this table",
            )
        })
        .transpose()
    }

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

    pub async fn set_old_name(
        &self,
        client: &impl GenericClient,
        run: i64,
        old: &str,
    ) -> Result<()> {
        let sql = format!(
            "UPDATE {} SET old_name = $2 WHERE id = $1",
            self.table("runs")
        );
        client
            .execute(&sql, &[&run, &old])
            .await
            .ctx("recording the old table's name")?;
        Ok(())
    }

    pub async fn event(
        &self,
        client: &impl GenericClient,
        run: i64,
        phase: Phase,
        kind: &str,
        message: &str,
        detail: Option<serde_json::Value>,
    ) -> Result<()> {
        let sql = format!(
            "INSERT INTO {} (run_id, phase, kind, message, detail) VALUES ($1, $2, $3, $4, $5)",
            self.table("events")
        );
        client
            .execute(&sql, &[&run, &phase.as_str(), &kind, &message, &detail])
            .await
            .ctx("recording an event")?;
        Ok(())
    }

    /// Records an object the run creates. Call it in the transaction that creates the object.
    pub async fn record_object(
        &self,
        client: &impl GenericClient,
        run: i64,
        kind: &str,
        name: &QualifiedName,
        on_table: Option<Oid>,
    ) -> Result<()> {
        let sql = format!(
            "INSERT INTO {} (run_id, kind, schema_name, name, on_table) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT DO NOTHING",
            self.table("objects")
        );
        client
            .execute(
                &sql,
                &[
                    &run,
                    &kind,
                    &name.schema.as_str(),
                    &name.name.as_str(),
                    &on_table,
                ],
            )
            .await
            .ctx(format_args!("recording the {kind} {}", name.human()))?;
        Ok(())
    }

    pub async fn mark_dropped(
        &self,
        client: &impl GenericClient,
        run: i64,
        kind: &str,
    ) -> Result<()> {
        let sql = format!(
            "UPDATE {} SET dropped_at = now() WHERE run_id = $1 AND kind = $2 AND dropped_at IS NULL",
            self.table("objects")
        );
        client
            .execute(&sql, &[&run, &kind])
            .await
            .ctx("recording dropped objects")?;
        Ok(())
    }

    /// Objects of the run not yet dropped: (kind, name, on_table).
    pub async fn live_objects(
        &self,
        client: &Client,
        run: i64,
    ) -> Result<Vec<(String, QualifiedName, Option<Oid>)>> {
        let sql = format!(
            "SELECT kind, schema_name, name, on_table FROM {} WHERE run_id = $1 AND dropped_at IS NULL ORDER BY created_at",
            self.table("objects")
        );
        let rows = client
            .query(&sql, &[&run])
            .await
            .ctx("reading the objects of the run")?;
        let what = format_args!("reading the objects of run {run}");
        rows.iter()
            .map(|r| {
                Ok((
                    r.col::<String>(0, &what)?,
                    QualifiedName::new(r.col::<String>(1, &what)?, r.col::<String>(2, &what)?),
                    r.col::<Option<Oid>>(3, &what)?,
                ))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_round_trip_and_are_ordered() {
        for p in [
            Phase::Preflight,
            Phase::Shadow,
            Phase::Capture,
            Phase::Copy,
            Phase::Build,
            Phase::Replay,
            Phase::Verify,
            Phase::Swap,
            Phase::Finish,
            Phase::Done,
        ] {
            assert_eq!(Phase::parse(p.as_str()), Some(p));
        }
        assert!(Phase::Copy < Phase::Swap);
        assert_eq!(Phase::parse("bogus"), None);
    }

    #[test]
    fn state_tables_are_quoted() {
        let s = State::new("Hot Swap");
        assert_eq!(s.table("runs").to_string(), "\"Hot Swap\".\"runs\"");
    }
}
