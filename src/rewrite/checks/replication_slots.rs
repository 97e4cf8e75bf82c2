//! The `replication_slots` check: a slot that is inactive, far behind or has lost WAL keeps every
//! byte of WAL the rewrite writes on the server's disk. A warning, never a refusal.

use super::{Check, CheckInput, Verdict};
use crate::error::{DbContext, Result, RowExt};
use crate::output::ui;
use tokio_postgres::Client;

/// The check's name (docs/plan.md).
pub(super) const NAME: &str = "replication_slots";

/// Replication slots keep WAL from their restart point: an inactive or lagging slot makes the
/// WAL of the copy stay on disk.
pub(super) async fn check(client: &Client, _input: &CheckInput<'_>) -> Result<Check> {
    let rows = client
        .query(
            "SELECT s.slot_name::text, s.slot_type, s.active, to_jsonb(s) ->> 'wal_status', \
                    CASE WHEN pg_catalog.pg_is_in_recovery() OR s.restart_lsn IS NULL THEN NULL \
                         ELSE pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_lsn(), s.restart_lsn)::float8 END \
               FROM pg_catalog.pg_replication_slots s ORDER BY 1",
            &[],
        )
        .await
        .ctx("reading pg_replication_slots")?;
    let mut check = Check::new(NAME, Verdict::Ok, "");
    let far = 1e9; // 1 GB behind
    let mut bad = 0;
    for r in &rows {
        let name: String = r.col(0, &"reading pg_replication_slots")?;
        let kind: String = r.col(1, &"reading pg_replication_slots")?;
        let active: bool = r.col(2, &"reading pg_replication_slots")?;
        let status: Option<String> = r.col(3, &"reading pg_replication_slots")?;
        let behind: Option<f64> = r.col(4, &"reading pg_replication_slots")?;
        let behind_s = behind
            .map(|b| ui::bytes(b.max(0.0) as u64))
            .unwrap_or_else(|| "?".into());
        let problem = if status.as_deref() == Some("lost") {
            Some("has lost required WAL already")
        } else if !active {
            Some("is inactive")
        } else if behind.is_some_and(|b| b > far) {
            Some("is far behind")
        } else {
            None
        };
        match problem {
            Some(p) => {
                bad += 1;
                check.details.push(format!(
                    "{kind} slot {name:?} {p}: it keeps {behind_s} of WAL, and will keep all WAL the rewrite writes"
                ));
            }
            None => check
                .details
                .push(format!("{kind} slot {name:?} is active, {behind_s} behind")),
        }
    }
    if rows.is_empty() {
        check.summary = "no replication slots".into();
    } else if bad == 0 {
        check.summary = format!("{} active replication slot(s), none far behind", rows.len());
    } else {
        check.verdict = Verdict::Warning;
        check.summary = format!(
            "{bad} replication slot(s) inactive or far behind: they keep every byte of WAL the \
             rewrite writes (about the size of the new table and its indexes) on the server's disk"
        );
        check.action = Some(
            "make sure the consumer catches up during the run, or drop a slot nobody uses \
             (SELECT pg_drop_replication_slot(name)); check the disk for pg_wal"
                .into(),
        );
    }
    Ok(check)
}
