//! Lock discipline for statements that lock a live table: a short `lock_timeout`, and retries
//! with jittered exponential backoff on `LOCK_NOT_AVAILABLE` only, up to a bound.
//!
//! Why: a waiting ACCESS EXCLUSIVE (or SHARE ROW EXCLUSIVE, taken by CREATE TRIGGER) lock request
//! queues every later query on the table behind it. Waiting unbounded for a long transaction
//! would take the application down; waiting at most `lock_timeout` and trying again later costs
//! the application at most that much per attempt (DESIGN.md, "Every DDL on the live table").

use crate::conn::pg_millis;
use crate::error::{DbContext, Error, Kind, Result, RowExt};
use rand::Rng;
use std::time::Duration;
use tokio_postgres::types::Oid;
use tokio_postgres::Client;

#[derive(Clone, Debug)]
pub struct LockPolicy {
    /// The most any single lock request may wait.
    pub timeout: Duration,
    /// How many times to try before giving up.
    pub attempts: u32,
    /// Base delay between attempts; grows exponentially (capped) with jitter.
    pub delay: Duration,
}

impl LockPolicy {
    /// The pause after failed attempt `attempt` (1-based): base * 2^(attempt-1), capped at 32x
    /// and at 10 s, times a random factor in [0.5, 1.5) so that retries of several tools (or of
    /// the application) do not fall into step.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let exp = 1u32 << attempt.saturating_sub(1).min(5);
        let base = self.delay.saturating_mul(exp).min(Duration::from_secs(10));
        let jitter: f64 = rand::thread_rng().gen_range(0.5..1.5);
        base.mul_f64(jitter)
    }
}

/// Runs `statements` in one transaction with `SET LOCAL lock_timeout`, retrying on lock timeout.
/// `what` names the step for messages; `table` (if given) is used to name the sessions holding
/// locks on it when all attempts fail. Returns the number of attempts it took.
pub async fn run_ddl(
    client: &Client,
    policy: &LockPolicy,
    what: &str,
    table: Option<Oid>,
    statements: &[String],
) -> Result<u32> {
    let body = statements.join(";\n");
    let sql = format!(
        "BEGIN; SET LOCAL lock_timeout = '{}';\n{body};\nCOMMIT",
        pg_millis(policy.timeout)
    );
    let mut attempt = 0;
    loop {
        attempt += 1;
        match client.batch_execute(&sql).await {
            Ok(()) => return Ok(attempt),
            Err(e) => {
                let _ = client.batch_execute("ROLLBACK").await;
                let err = Error::db(what, e);
                if !err.is_lock_timeout() {
                    return Err(err);
                }
                tracing::info!(
                    step = what,
                    attempt,
                    "lock not available within lock_timeout, will retry"
                );
                if attempt >= policy.attempts {
                    let holders = match table {
                        Some(oid) => lock_holders(client, oid).await.unwrap_or_default(),
                        None => String::new(),
                    };
                    return Err(Error::new(
                        Kind::LockTimeout,
                        format!(
                            "{what}: could not get the lock within {} in {attempt} attempts{holders}",
                            pg_millis(policy.timeout)
                        ),
                    ));
                }
                tokio::time::sleep(policy.backoff(attempt)).await;
            }
        }
    }
}

/// Describes the sessions that hold locks on `table` (for error messages; every column is
/// non-NULL: an active session between transactions has no xact_start, a prepared transaction
/// no pid): the ones with a
/// transaction open for more than a second or idle in one first — those are the blockers; the
/// application's short transactions come and go and are only counted.
pub async fn lock_holders(client: &Client, table: Oid) -> Result<String> {
    let rows = client
        .query(
            "SELECT COALESCE(l.pid, 0), l.mode, COALESCE(a.state, '?'), \
                    COALESCE(round(extract(epoch FROM now() - a.xact_start))::text || ' s', '?'), \
                    left(regexp_replace(COALESCE(a.query, ''), '\\s+', ' ', 'g'), 80), \
                    COALESCE(a.state IS DISTINCT FROM 'active' OR a.xact_start < now() - interval '1 second', false) AS long \
               FROM pg_catalog.pg_locks l \
               LEFT JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid \
              WHERE l.relation = $1 AND l.granted AND l.pid <> pg_backend_pid() \
              ORDER BY 6 DESC, a.xact_start NULLS LAST LIMIT 20",
            &[&table],
        )
        .await
        .ctx("looking up the sessions holding locks")?;
    if rows.is_empty() {
        return Ok(String::new());
    }
    let what = "looking up the sessions holding locks";
    let mut long = Vec::new();
    for r in &rows {
        if long.len() < 3 && r.col::<bool>(5, &what)? {
            long.push(r);
        }
    }
    let short = rows.len() - long.len();
    let mut list = Vec::with_capacity(long.len() + 1);
    for r in long {
        list.push(format!(
            "pid {} holds {} ({}, transaction open {}, last query: {:?})",
            r.col::<i32>(0, &what)?,
            r.col::<String>(1, &what)?,
            r.col::<String>(2, &what)?,
            r.col::<String>(3, &what)?,
            r.col::<String>(4, &what)?,
        ));
    }
    if short > 0 {
        list.push(format!("{short} session(s) with short transactions"));
    }
    Ok(format!("; holding locks on the table: {}", list.join("; ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_with_jitter_and_is_capped() {
        let p = LockPolicy {
            timeout: Duration::from_millis(100),
            attempts: 10,
            delay: Duration::from_millis(100),
        };
        for _ in 0..50 {
            let d1 = p.backoff(1);
            assert!(d1 >= Duration::from_millis(50) && d1 < Duration::from_millis(150));
            let d3 = p.backoff(3);
            assert!(d3 >= Duration::from_millis(200) && d3 < Duration::from_millis(600));
            assert!(p.backoff(30) < Duration::from_millis(4800 + 1));
        }
    }
}
