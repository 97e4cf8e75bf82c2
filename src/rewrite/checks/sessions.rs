//! The `sessions` check: other sessions holding (or waiting for) locks on the table in long or
//! idle transactions. A warning naming their pids: while they hold their locks, the capture
//! trigger and the swap cannot take theirs.

use super::{Check, CheckInput, Verdict};
use crate::error::{DbContext, Result, RowExt};
use tokio_postgres::Client;

/// The check's name (docs/plan.md).
pub(super) const NAME: &str = "sessions";

/// Sessions holding (or waiting for) locks on the table: an idle-in-transaction session or a
/// long transaction makes every lock attempt of the capture trigger and the swap time out.
pub(super) async fn check(client: &Client, input: &CheckInput<'_>) -> Result<Check> {
    let rows = client
        .query(
            "SELECT l.pid, string_agg(DISTINCT l.mode, ', ' ORDER BY l.mode), bool_and(l.granted), \
                    a.state, COALESCE(extract(epoch FROM now() - a.xact_start), 0)::float8, \
                    COALESCE(extract(epoch FROM now() - a.state_change), 0)::float8, \
                    COALESCE(a.usename::text, '?'), COALESCE(a.application_name, ''), \
                    left(regexp_replace(COALESCE(a.query, ''), '\\s+', ' ', 'g'), 80) \
               FROM pg_catalog.pg_locks l \
               LEFT JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid \
              WHERE l.locktype = 'relation' AND l.relation = $1 \
                AND l.database = (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database()) \
                AND l.pid <> pg_catalog.pg_backend_pid() \
                AND a.backend_type IS DISTINCT FROM 'autovacuum worker' \
              GROUP BY l.pid, a.state, a.xact_start, a.state_change, a.usename, a.application_name, a.query \
              ORDER BY a.xact_start NULLS LAST",
            &[&input.table_oid],
        )
        .await
        .ctx("looking for sessions holding locks on the table")?;
    let mut check = Check::new(NAME, Verdict::Ok, "");
    let mut short = 0;
    for r in &rows {
        let pid: i32 = r.col(0, &"looking for sessions holding locks on the table")?;
        let modes: String = r.col(1, &"looking for sessions holding locks on the table")?;
        let granted: bool = r.col(2, &"looking for sessions holding locks on the table")?;
        let state: Option<String> = r.col(3, &"looking for sessions holding locks on the table")?;
        let xact_secs: f64 = r.col(4, &"looking for sessions holding locks on the table")?;
        let state_secs: f64 = r.col(5, &"looking for sessions holding locks on the table")?;
        let user: String = r.col(6, &"looking for sessions holding locks on the table")?;
        let app: String = r.col(7, &"looking for sessions holding locks on the table")?;
        let query: String = r.col(8, &"looking for sessions holding locks on the table")?;
        let idle_in_tx = state
            .as_deref()
            .is_some_and(|s| s.starts_with("idle in transaction"));
        // Application transactions come and go; a transaction open for seconds is a blocker.
        if idle_in_tx || xact_secs >= 5.0 || !granted {
            let what = if idle_in_tx {
                format!("idle in transaction for {state_secs:.0} s")
            } else if !granted {
                "waiting for a lock".to_string()
            } else {
                format!(
                    "{} in a transaction open for {xact_secs:.0} s",
                    state
                        .as_deref()
                        .unwrap_or("state unknown (needs pg_read_all_stats)")
                )
            };
            check.details.push(format!(
                "pid {pid} ({user}, {app:?}) holds {modes} on the table, {what}; last query: {query:?}"
            ));
            check.pids.push(pid);
        } else {
            short += 1;
        }
    }
    if check.pids.is_empty() {
        check.summary = if short == 0 {
            "no other session holds a lock on the table".into()
        } else {
            format!("{short} session(s) with short transactions on the table (normal traffic)")
        };
    } else {
        check.verdict = Verdict::Warning;
        check.summary = format!(
            "{} session(s) hold locks on the table in long or idle transactions (pid {})",
            check.pids.len(),
            check
                .pids
                .iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
        check.action = Some(
            "while they hold their locks, installing the capture trigger and the swap cannot get \
             theirs (each attempt waits at most --lock-timeout, then the run stops after \
             --max-lock-attempts); end them (COMMIT/ROLLBACK in the application, or \
             SELECT pg_terminate_backend(pid)) or run when they are gone"
                .into(),
        );
    }
    Ok(check)
}
