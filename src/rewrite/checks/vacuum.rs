//! The `wraparound_vacuum` check: an anti-wraparound autovacuum on the table does not give way to
//! lock requests, so the capture trigger and the swap would time out until it finishes
//! (blocking); another vacuum, or a transaction id age near autovacuum_freeze_max_age, is a
//! warning.

use super::{Check, CheckInput, Verdict};
use crate::error::{DbContext, Result, RowExt};
use tokio_postgres::Client;

/// The check's name (docs/plan.md).
pub(super) const NAME: &str = "wraparound_vacuum";

/// An anti-wraparound autovacuum on the table does not give way to lock requests (a normal one
/// cancels itself): the capture trigger would time out on every attempt until it finishes.
pub(super) async fn check(client: &Client, input: &CheckInput<'_>) -> Result<Check> {
    let rows = client
        .query(
            "SELECT a.pid, a.backend_type, COALESCE(a.query, ''), bool_and(l.granted), \
                    p.phase, p.heap_blks_total, p.heap_blks_scanned \
               FROM pg_catalog.pg_locks l \
               JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid \
               LEFT JOIN pg_catalog.pg_stat_progress_vacuum p ON p.pid = a.pid \
              WHERE l.locktype = 'relation' AND l.relation = $1 \
                AND (a.backend_type = 'autovacuum worker' OR p.relid = $1) \
              GROUP BY 1, 2, 3, 5, 6, 7",
            &[&input.table_oid],
        )
        .await
        .ctx("looking for vacuums on the table")?;
    let mut check = Check::new(NAME, Verdict::Ok, "");
    for r in &rows {
        let pid: i32 = r.col(0, &"looking for vacuums on the table")?;
        let kind: String = r.col(1, &"looking for vacuums on the table")?;
        let query: String = r.col(2, &"looking for vacuums on the table")?;
        let granted: bool = r.col(3, &"looking for vacuums on the table")?;
        let phase: Option<String> = r.col(4, &"looking for vacuums on the table")?;
        let progress = match (
            r.col::<Option<i64>>(5, &"looking for vacuums on the table")?,
            r.col::<Option<i64>>(6, &"looking for vacuums on the table")?,
        ) {
            (Some(t), Some(s)) if t > 0 => format!(", {:.0}% scanned", 100.0 * s as f64 / t as f64),
            _ => String::new(),
        };
        let state = if granted {
            format!(
                "running ({}{progress})",
                phase.as_deref().unwrap_or("starting")
            )
        } else {
            "waiting for its lock".to_string()
        };
        check.pids.push(pid);
        if query.contains("to prevent wraparound") {
            check.verdict = Verdict::Blocking;
            check
                .details
                .push(format!("pid {pid}: anti-wraparound autovacuum, {state}"));
        } else if kind == "autovacuum worker" {
            if query.is_empty() || query.starts_with("<insufficient") {
                check.verdict = check.verdict.max(Verdict::Warning);
                check.details.push(format!(
                    "pid {pid}: an autovacuum worker, {state}; whether it is an anti-wraparound one is hidden (needs pg_read_all_stats)"
                ));
            } else {
                check.details.push(format!(
                    "pid {pid}: a regular autovacuum, {state}; it gives way to the tool's locks"
                ));
            }
        } else {
            check.verdict = check.verdict.max(Verdict::Warning);
            check
                .details
                .push(format!("pid {pid}: a manual VACUUM, {state}"));
        }
    }
    let age = client
        .query_one(
            // A partitioned table has no rows of its own (relfrozenxid 0): its oldest partition's.
            "SELECT CASE WHEN c.relkind = 'p' \
                         THEN (SELECT coalesce(max(pg_catalog.age(p.relfrozenxid)), 0)::int8 \
                                 FROM pg_catalog.pg_partition_tree(c.oid) t \
                                 JOIN pg_catalog.pg_class p ON p.oid = t.relid WHERE t.isleaf) \
                         ELSE pg_catalog.age(c.relfrozenxid)::int8 END, \
                    LEAST(pg_catalog.current_setting('autovacuum_freeze_max_age')::int8, \
                          COALESCE((SELECT split_part(o, '=', 2)::int8 FROM unnest(c.reloptions) o \
                                     WHERE o LIKE 'autovacuum_freeze_max_age=%'), 2000000000)) \
               FROM pg_catalog.pg_class c WHERE c.oid = $1",
            &[&input.table_oid],
        )
        .await
        .ctx("reading the table's transaction id age")?;
    let (xid_age, max_age): (i64, i64) = (
        age.col(0, &"reading the table's transaction id age")?,
        age.col(1, &"reading the table's transaction id age")?,
    );
    let near = xid_age as f64 > 0.9 * max_age as f64;
    check.summary = match check.verdict {
        Verdict::Blocking => {
            "an anti-wraparound autovacuum is working on the table: it does not give way to locks, so the capture trigger and the swap would time out until it finishes".into()
        }
        Verdict::Warning => "a vacuum is working on the table (SHARE UPDATE EXCLUSIVE): installing the capture trigger waits for it".into(),
        Verdict::Ok if near => {
            check.verdict = Verdict::Warning;
            format!(
                "no vacuum on the table now, but its transaction id age {xid_age} is near autovacuum_freeze_max_age {max_age}: an anti-wraparound autovacuum may start during the run"
            )
        }
        Verdict::Ok => format!(
            "no vacuum on the table; transaction id age {xid_age} of {max_age} before an anti-wraparound vacuum"
        ),
    };
    if check.verdict != Verdict::Ok {
        check.action = Some(
            "wait for the vacuum to finish (pg_stat_progress_vacuum shows its progress), or VACUUM (FREEZE) the table first at a quiet time".into(),
        );
    }
    Ok(check)
}
