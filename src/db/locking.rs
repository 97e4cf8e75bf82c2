//! The one lock rule (issue 17): every lock wait of the tool is bounded, and a statement that
//! could not get its lock in time is rolled back and tried again, after a jittered backoff, up
//! to a bound. This module owns both halves: the `lock_timeout` settings ([`session_timeout_sql`],
//! [`set_local_timeout`], [`SHADOW_WAIT`], [`unbounded`]) and the retry on `LOCK_NOT_AVAILABLE`
//! (SQLSTATE 55P03) under a [`LockPolicy`] (`--lock-timeout`, `--max-lock-attempts`,
//! `--retry-delay`): [`Retry`] for a loop of one's own, [`retry`] for a step given as a closure,
//! [`run_ddl`] for statements run as one transaction. No other module writes `SET lock_timeout`
//! or a retry loop.
//!
//! Why: a waiting ACCESS EXCLUSIVE (or SHARE ROW EXCLUSIVE, taken by CREATE TRIGGER) lock request
//! queues every later query on the table behind it. Waiting unbounded for a long transaction
//! would take the application down; waiting at most `lock_timeout` and trying again later costs
//! the application at most that much per attempt (DESIGN.md, "Every DDL on the live table").
//!
//! Invariant kept: only a lock timeout is retried (matched by SQLSTATE, never by message); any
//! other error ends the step at once; a lock timeout after the last attempt ends it with
//! [`Kind::LockTimeout`] (exit 4).

use crate::db::ident::pg_millis;
use crate::error::{DbContext, Error, Kind, Result, RowExt};
use rand::Rng;
use std::future::Future;
use std::time::Duration;
use tokio_postgres::types::Oid;
use tokio_postgres::{Client, GenericClient};

/// How long a statement that locks only the shadow may wait for its lock. Nobody else uses the
/// shadow, so waiting queues no application query; the one other session that takes its locks is
/// autovacuum, which a freshly loaded shadow attracts, and which gives way to a waiting lock
/// after `deadlock_timeout` (1 s by default). With the live table's short lock_timeout, these
/// statements failed the run instead (found by the soak test, issue 9).
pub const SHADOW_WAIT: Duration = Duration::from_secs(30);

/// `SET lock_timeout` for a whole session: every tool session waits at most `wait` for any lock
/// (`conn::connect` with `--lock-timeout`; index builds with [`SHADOW_WAIT`]).
pub fn session_timeout_sql(wait: Duration) -> String {
    format!("SET lock_timeout = '{}'", pg_millis(wait))
}

/// `SET LOCAL lock_timeout`: the same bound for the current transaction only.
pub fn local_timeout_sql(wait: Duration) -> String {
    format!("SET LOCAL lock_timeout = '{}'", pg_millis(wait))
}

/// Bounds the lock waits of the transaction `tx` is in by `wait`.
pub async fn set_local_timeout(tx: &impl GenericClient, wait: Duration) -> Result<()> {
    tx.batch_execute(&local_timeout_sql(wait))
        .await
        .ctx("setting lock_timeout")
}

/// Lets a session wait for its locks as long as the application would (the read probe, which
/// measures what the application's reads cost; it takes no lock anyone else waits for).
pub async fn unbounded(client: &Client) -> Result<()> {
    client
        .batch_execute("SET lock_timeout = 0")
        .await
        .ctx("setting lock_timeout")
}

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

/// Counts the attempts of one step under a [`LockPolicy`] and decides after each one. For a loop
/// of one's own (a step that needs `&mut Client`, which a closure cannot lend to its future):
///
/// ```ignore
/// let mut tries = Retry::new(policy, "creating the shadow");
/// let plan = loop {
///     tries.start();
///     if let Some(plan) = tries.settle(create_once(client).await).await? {
///         break plan;
///     }
/// };
/// ```
pub struct Retry<'a> {
    policy: &'a LockPolicy,
    what: &'a str,
    attempt: u32,
}

impl<'a> Retry<'a> {
    /// `what` names the step in the log line of each retry.
    pub fn new(policy: &'a LockPolicy, what: &'a str) -> Retry<'a> {
        Retry {
            policy,
            what,
            attempt: 0,
        }
    }

    /// Starts the next attempt and returns its number (from 1).
    pub fn start(&mut self) -> u32 {
        self.attempt += 1;
        self.attempt
    }

    /// The number of the attempt under way (1 for the first).
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// Whether the policy allows another attempt after the current one.
    pub fn may_retry(&self) -> bool {
        self.attempt < self.policy.attempts
    }

    /// After the current attempt did not get its lock: says so in the log (the same line for
    /// every step) and waits the jittered backoff.
    pub async fn back_off(&self) {
        tracing::info!(
            step = self.what,
            attempt = self.attempt,
            "lock not available within lock_timeout, will retry"
        );
        tokio::time::sleep(self.policy.backoff(self.attempt)).await;
    }

    /// Ends the current attempt with its result: `Some(value)` on success; `None` after a lock
    /// timeout with attempts left, once the backoff has passed (start the next attempt); the
    /// error otherwise — a lock timeout after the last attempt as [`Kind::LockTimeout`].
    pub async fn settle<T>(&self, result: Result<T>) -> Result<Option<T>> {
        match result {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.is_lock_not_granted() && self.may_retry() => {
                self.back_off().await;
                Ok(None)
            }
            Err(e) if e.is_lock_not_granted() => Err(e.with_kind(Kind::LockTimeout)),
            Err(e) => Err(e),
        }
    }
}

/// Runs `op` (given the attempt number, from 1) until it succeeds, fails with anything but a lock
/// timeout, or has used `policy.attempts` attempts ([`Retry::settle`]); returns its value.
pub async fn retry<T, F, Fut>(policy: &LockPolicy, what: &str, mut op: F) -> Result<T>
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let mut tries = Retry::new(policy, what);
    loop {
        let attempt = tries.start();
        if let Some(v) = tries.settle(op(attempt).await).await? {
            return Ok(v);
        }
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
        "BEGIN; {};\n{body};\nCOMMIT",
        local_timeout_sql(policy.timeout)
    );
    let sql = &sql;
    let r = retry(policy, what, |attempt| async move {
        match client.batch_execute(sql).await {
            Ok(()) => Ok(attempt),
            Err(e) => {
                let _ = client.batch_execute("ROLLBACK").await;
                Err(Error::db(what, e))
            }
        }
    })
    .await;
    match r {
        Err(e) if e.is_lock_not_granted() => {
            let holders = match table {
                Some(oid) => lock_holders(client, oid).await.unwrap_or_default(),
                None => String::new(),
            };
            Err(Error::new(
                Kind::LockTimeout,
                format!(
                    "{what}: could not get the lock within {} in {} attempts{holders}",
                    pg_millis(policy.timeout),
                    policy.attempts.max(1)
                ),
            ))
        }
        other => other,
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

    fn quick(attempts: u32) -> LockPolicy {
        LockPolicy {
            timeout: Duration::from_millis(100),
            attempts,
            delay: Duration::from_millis(1),
        }
    }

    /// Runs `retry` with an op that fails with `fail(attempt)` until `ok_at`; returns the result
    /// and how many times the op ran.
    async fn count(attempts: u32, ok_at: u32, fail: fn() -> Error) -> (Result<u32>, u32) {
        let mut ran = 0;
        let r = retry(&quick(attempts), "testing", |attempt| {
            ran += 1;
            async move {
                if attempt >= ok_at {
                    Ok(attempt)
                } else {
                    Err(fail())
                }
            }
        })
        .await;
        (r, ran)
    }

    #[tokio::test]
    async fn a_lock_timeout_is_retried_up_to_the_attempts_then_is_exit_4() {
        let (r, ran) = count(3, 2, Error::lock_timeout_for_tests).await;
        assert_eq!(r.unwrap(), 2);
        assert_eq!(ran, 2);
        let (r, ran) = count(3, 99, Error::lock_timeout_for_tests).await;
        assert_eq!(ran, 3);
        let e = r.unwrap_err();
        assert!(e.is_lock_not_granted());
        assert_eq!(e.kind(), Kind::LockTimeout);
        assert_eq!(e.kind().exit_code(), 4);
    }

    #[tokio::test]
    async fn any_other_error_ends_the_step_at_once() {
        let (r, ran) = count(5, 99, || Error::failed("boom")).await;
        assert_eq!(ran, 1);
        assert_eq!(r.unwrap_err().kind(), Kind::Failed);
    }

    #[test]
    fn timeouts_render_in_milliseconds() {
        assert_eq!(
            session_timeout_sql(Duration::from_millis(100)),
            "SET lock_timeout = '100ms'"
        );
        assert_eq!(
            local_timeout_sql(SHADOW_WAIT),
            "SET LOCAL lock_timeout = '30000ms'"
        );
    }
}
