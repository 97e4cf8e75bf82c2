//! The governor's signals: each measurement it reads to decide what the run may do — the time
//! (for `--start-at` and the windows, on the test clock in debug builds), replication lag on the
//! primary and on `--replica-dsn`s, active sessions, the user's `--throttle-query`, and the size
//! of the run's change log. The operator's request is read from the state module
//! (`State::request_and_phase`).
//!
//! Invariant kept here: a measurement only reads; it never changes the run or the server (the
//! throttle query runs in a read-only transaction that is rolled back, with a 10 s statement
//! timeout), and a broken replica session is dropped so the next measurement connects again.

use crate::db::conn::{self, ConnSpec};
use crate::error::{DbContext, Error, Result, RowExt};
use crate::pacing::window::Window;
use tokio_postgres::Client;

/// Seconds until `--start-at` (`at`, an absolute time) from `now` (the test clock) or the
/// server's clock; zero or less once it has passed.
pub(super) async fn start_wait(client: &Client, at: &str, now: &Option<String>) -> Result<f64> {
    client
        .query_one(
            "SELECT extract(epoch FROM $1::text::timestamptz - COALESCE($2::text::timestamptz, now()))::float8",
            &[&at, now],
        )
        .await
        .ctx("checking --start-at")?
        .col(0, &"checking --start-at")
}

/// The local time of each window, as seconds since the epoch in the window's time zone (or the
/// server's), at `now` (the test clock) or the server's clock.
pub(super) async fn window_times(
    client: &Client,
    windows: &[Window],
    now: &Option<String>,
) -> Result<Vec<i64>> {
    let mut local = Vec::with_capacity(windows.len());
    for w in windows {
        let s: i64 = client
            .query_one(
                "SELECT extract(epoch FROM COALESCE($1::text::timestamptz, now()) \
                        AT TIME ZONE COALESCE($2, current_setting('TimeZone')))::int8",
                &[now, &w.tz],
            )
            .await
            .ctx("reading the time for --window")?
            .col(0, &"reading the time for --window")?;
        local.push(s);
    }
    Ok(local)
}

/// The worst replay lag the primary sees of its standbys (`pg_stat_replication`), in seconds.
pub(super) async fn primary_lag(client: &Client) -> Result<f64> {
    client
        .query_one(
            "SELECT COALESCE(max(extract(epoch FROM replay_lag)), 0)::float8 FROM pg_catalog.pg_stat_replication",
            &[],
        )
        .await
        .ctx("reading replication lag from pg_stat_replication")?
        .col(0, &"reading replication lag from pg_stat_replication")
}

/// The replay lag of the standby `spec` in seconds (zero when it has replayed all it received),
/// over the session kept in `slot` (connected on first use, dropped when it fails).
pub(super) async fn replica_lag(slot: &mut Option<Client>, spec: &ConnSpec) -> Result<f64> {
    if slot.is_none() {
        *slot = Some(conn::connect(spec, "replica-lag").await?);
    }
    let c = slot.as_ref().expect("connected above");
    let r = c
        .query_one(
            "SELECT CASE WHEN pg_last_wal_receive_lsn() IS NOT DISTINCT FROM pg_last_wal_replay_lsn() THEN 0 \
                    ELSE COALESCE(extract(epoch FROM clock_timestamp() - pg_last_xact_replay_timestamp()), 0) END::float8",
            &[],
        )
        .await;
    match r {
        Ok(row) => row.col(0, &"reading replica lag"),
        Err(e) => {
            *slot = None;
            Err(Error::db("reading replica lag", e))
        }
    }
}

/// Active client sessions of this database, other than this tool's own (application names
/// `<base>/...`).
pub(super) async fn active_sessions(client: &Client, base: &str) -> Result<i64> {
    client
        .query_one(
            "SELECT count(*) FROM pg_catalog.pg_stat_activity \
              WHERE state = 'active' AND backend_type = 'client backend' \
                AND pid <> pg_backend_pid() AND application_name NOT LIKE $1 || '/%' \
                AND datname = current_database()",
            &[&base],
        )
        .await
        .ctx("counting active sessions")?
        .col(0, &"counting active sessions")
}

/// Runs the user's throttle query in a read-only transaction with a 10 s statement timeout; it
/// must return one boolean.
pub(super) async fn run_throttle_query(client: &mut Client, q: &str) -> Result<bool> {
    let tx = client
        .build_transaction()
        .read_only(true)
        .start()
        .await
        .ctx("starting the throttle query's transaction")?;
    tx.batch_execute("SET LOCAL statement_timeout = '10s'")
        .await
        .ctx("limiting the throttle query to 10 s")?;
    let row = tx.query_opt(q, &[]).await.ctx("running --throttle-query")?;
    let v = match row {
        None => false,
        Some(r) if r.is_empty() => {
            return Err(Error::usage("--throttle-query returned no column"));
        }
        Some(r) => r
            .try_get::<_, Option<bool>>(0)
            .map_err(|_| Error::usage("--throttle-query must return a boolean"))?
            .unwrap_or(false),
    };
    tx.rollback().await.ctx("ending the throttle query")?;
    Ok(v)
}

/// In debug builds, `PGHOTSWAP_TEST_CLOCK=<file>` names a file holding the time (a timestamptz
/// literal) the windows and `--start-at` are judged by; tests move it to open and close windows.
#[cfg(debug_assertions)]
pub(super) fn test_clock() -> Option<String> {
    let path = std::env::var_os("PGHOTSWAP_TEST_CLOCK")?;
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

#[cfg(not(debug_assertions))]
pub(super) fn test_clock() -> Option<String> {
    None
}
