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
}
