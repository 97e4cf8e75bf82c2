//! The size of a run's change log (`log_<run>` in the state schema, written by the capture
//! triggers, drained by replay): the one cheap measure the governor, replay and the swap read.
//!
//! Invariant kept here: the measure never scans the log (it reads the two ends of its key), so
//! it can be taken every few seconds and under the swap's lock; ids lost to rolled-back writes
//! make it an over-estimate, never an under-estimate.

use super::State;
use crate::db::ident::QualifiedName;
use crate::error::{DbContext, Result, RowExt};
use tokio_postgres::GenericClient;

/// About how many rows of the change log `log` wait to be replayed, from the ends of its key.
pub async fn backlog_estimate_of(client: &impl GenericClient, log: &QualifiedName) -> Result<i64> {
    client
        .query_one(
            &format!("SELECT COALESCE(max(id) - min(id) + 1, 0)::int8 FROM {log}"),
            &[],
        )
        .await
        .ctx("measuring the change log")?
        .col(0, &"measuring the change log")
}

impl State {
    /// The change log named by the run's recorded plan (None before the plan names one, or
    /// when the plan has another shape).
    pub async fn change_log_of(
        &self,
        client: &impl GenericClient,
        run: i64,
    ) -> Result<Option<QualifiedName>> {
        let row = client
            .query_opt(
                &format!(
                    "SELECT plan #>> '{{capture,log,schema}}', plan #>> '{{capture,log,name}}' FROM {} WHERE id = $1",
                    self.table("runs")
                ),
                &[&run],
            )
            .await
            .ctx("reading the run's change log")?;
        let Some(row) = row else { return Ok(None) };
        let what = "reading the run's change log";
        let schema: Option<String> = row.col(0, &what)?;
        let name: Option<String> = row.col(1, &what)?;
        Ok(match (schema, name) {
            (Some(schema), Some(name)) => Some(QualifiedName::new(schema, name)),
            _ => None,
        })
    }
}
