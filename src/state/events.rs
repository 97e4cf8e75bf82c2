//! The `events` table: phase changes, retries, pace changes, warnings and errors of a run, with
//! detail, in the order they happened (`at` is the clock time of the insert).
//!
//! Invariant kept here: an event is only ever added, never changed; one written inside a
//! caller's transaction (the swap's) is kept only if that transaction commits.

use super::{Phase, State};
use crate::error::{DbContext, Result};
use tokio_postgres::GenericClient;

impl State {
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

    /// The statements of a run that applies its ALTER in place and has begun to (its
    /// `in_place` event, and the `in_place_applying` event written just before the first
    /// statement runs); None for a run that copies, or that stopped before it began (waiting
    /// for its window or its cut-over: started over, it is as good as new).
    pub async fn in_place_statements(
        &self,
        client: &impl GenericClient,
        run: i64,
    ) -> Result<Option<Vec<String>>> {
        let sql = format!(
            "SELECT detail FROM {events} WHERE run_id = $1 AND kind = 'in_place' \
                AND EXISTS (SELECT 1 FROM {events} WHERE run_id = $1 AND kind = 'in_place_applying') \
              ORDER BY id LIMIT 1",
            events = self.table("events")
        );
        let what = "reading whether the run applies its ALTER in place";
        let row = client.query_opt(&sql, &[&run]).await.ctx(what)?;
        let Some(row) = row else { return Ok(None) };
        let detail: Option<serde_json::Value> = row.try_get(0).ctx(what)?;
        let statements = detail
            .as_ref()
            .and_then(|d| d.get("statements"))
            .and_then(|s| s.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        Ok(Some(statements))
    }
}
