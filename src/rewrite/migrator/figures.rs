//! What a run reports besides its phases: the WAL it wrote, and the column mapping it follows.

use crate::error::RowExt;
use crate::output::ui::say;
use crate::rewrite::plan::{ColumnSource, Plan};
use tokio_postgres::Client;

/// The server's current WAL insert position, as text; `None` on a standby (recovery is in
/// progress) or where the function is not allowed.
pub(super) async fn wal_position(ctl: &Client) -> Option<String> {
    match ctl
        .query_one("SELECT pg_current_wal_lsn()::text", &[])
        .await
    {
        Ok(row) => row.col(0, &"reading the WAL position").unwrap_or_else(|e| {
            tracing::debug!(error = %e, "unexpected WAL position; no WAL figure in the report");
            None
        }),
        Err(e) => {
            tracing::debug!(error = %e, "cannot read the WAL position; no WAL figure in the report");
            None
        }
    }
}

/// Bytes of WAL written since `start` (a position from [`wal_position`]).
pub(super) async fn wal_since(ctl: &Client, start: &str) -> Option<u64> {
    match ctl
        .query_one(
            "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1::text::pg_lsn)::int8",
            &[&start],
        )
        .await
    {
        Ok(row) => row
            .col::<Option<i64>>(0, &"reading the WAL written by the run")
            .unwrap_or_else(|e| {
                tracing::debug!(error = %e, "unexpected WAL figure; none in the report");
                None
            })
            .map(|b| b.max(0) as u64),
        Err(e) => {
            tracing::debug!(error = %e, "cannot read the WAL position at the end of the run");
            None
        }
    }
}

pub(super) fn print_mapping(plan: &Plan) {
    for c in &plan.columns {
        let how = match &c.source {
            ColumnSource::Same => continue,
            ColumnSource::Cast { from, to } => format!("cast from {from} to {to}"),
            ColumnSource::Renamed { from, cast_to } => match cast_to {
                Some(t) => format!("renamed from {from}, cast to {t}"),
                None => format!("renamed from {from}"),
            },
            ColumnSource::Using { from, expr, to } => {
                format!("from {from} as {to} USING {expr}")
            }
            ColumnSource::Mapped { expr } => format!("computed as {expr}"),
            ColumnSource::Default => "new column, takes its default".to_string(),
            ColumnSource::Generated => "generated, computed by the server".to_string(),
        };
        say(&format!("column {}: {how}", c.column.as_str()));
    }
    if let Some(s) = &plan.sample_check {
        say(&s.summary());
    }
    if let Some(p) = &plan.partition_sample {
        say(&p.summary());
    }
    for d in &plan.dropped {
        say(&format!(
            "column {}: DROPPED — its data is not carried into the new table",
            d.as_str()
        ));
    }
    for i in &plan.dropped_indexes {
        say(&format!("index {}: dropped by the ALTER", i.as_str()));
    }
}
