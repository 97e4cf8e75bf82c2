//! Option validation for the governor: checks the pace options against the server before
//! anything is created (`governor::validate`), and resolves `--start-at` to an absolute time —
//! the windows' time zones, the throttle query (runs once, returns a boolean), the replicas
//! (reachable standbys), and whether this role can see the lag and sessions it is to watch.
//!
//! Invariant kept here: an option the server cannot honour is refused with "nothing was
//! changed" before the run creates anything; what only weakens a limit is a warning.

use super::signals::{run_throttle_query, test_clock};
use super::PaceOptions;
use crate::db::conn;
use crate::error::{DbContext, Error, Result, RowExt};
use tokio_postgres::Client;

/// Checks the pace options against the server before anything is created, and resolves
/// `--start-at` to an absolute time: time zones of the windows, the throttle query (runs once
/// and returns a boolean), the replicas (reachable standbys), and the visibility of lag and
/// sessions to this role (a warning when it cannot see them).
pub async fn validate(client: &mut Client, opts: &mut PaceOptions) -> Result<Vec<String>> {
    let mut warnings = Vec::new();
    for w in &opts.windows {
        if let Some(tz) = &w.tz {
            client
                .query_one("SELECT now() AT TIME ZONE $1", &[tz])
                .await
                .map_err(|e| {
                    Error::usage(format!(
                        "--window {w}: the server does not know the time zone {tz:?}: {e}"
                    ))
                    .with_state("nothing was changed")
                    .with_next("use a name from pg_timezone_names, e.g. Europe/Berlin or UTC")
                })?;
        }
    }
    if let Some(at) = opts.start_at.clone() {
        let now = test_clock();
        let resolved: Option<String> = if is_clock_time(&at) {
            // "01:00": the next time the server's clock shows it.
            client
                .query_one(
                    "WITH n AS (SELECT COALESCE($2::text::timestamptz, now()) AS t), \
                          c AS (SELECT (date_trunc('day', n.t) + $1::time)::timestamptz AS c, n.t FROM n) \
                     SELECT (CASE WHEN c > t THEN c ELSE c + interval '1 day' END)::text FROM c",
                    &[&at, &now],
                )
                .await
                .ok()
                .map(|r| r.col(0, &"resolving --start-at"))
                .transpose()?
        } else {
            client
                .query_one("SELECT $1::text::timestamptz::text", &[&at])
                .await
                .ok()
                .map(|r| r.col(0, &"resolving --start-at"))
                .transpose()?
        };
        let resolved = resolved.ok_or_else(|| {
            Error::usage(format!("--start-at {at:?} is not a time the server understands"))
                .with_state("nothing was changed")
                .with_next("give HH:MM (the next time the server's clock shows it) or a timestamp such as '2026-11-22 01:00 Europe/Berlin'")
        })?;
        opts.start_at = Some(resolved);
    }
    if let Some(q) = &opts.throttle_query {
        run_throttle_query(client, q).await.map_err(|e| {
            Error::usage(format!("--throttle-query cannot be used: {}", e.message()))
                .with_state("nothing was changed")
                .with_next(
                    "give one read-only SELECT that returns a single boolean (true = back off)",
                )
        })?;
    }
    for spec in &opts.replicas {
        let c = conn::connect(spec, "replica-lag").await?;
        let standby: bool = c
            .query_one("SELECT pg_is_in_recovery()", &[])
            .await
            .ctx("checking --replica-dsn")?
            .col(0, &"checking --replica-dsn")?;
        if !standby {
            return Err(Error::usage(format!(
                "--replica-dsn {} is not a standby (pg_is_in_recovery() is false)",
                conn::describe(&spec.config)
            ))
            .with_state("nothing was changed")
            .with_next("name the replicas whose lag should slow the run"));
        }
    }
    if opts.max_lag.is_some() || opts.max_active.is_some() {
        let sees_all: bool = client
            .query_one(
                "SELECT rolsuper OR pg_has_role(current_user, 'pg_read_all_stats', 'MEMBER') FROM pg_roles WHERE rolname = current_user",
                &[],
            )
            .await
            .ctx("checking what this role sees of pg_stat_activity")?
            .col(0, &"checking what this role sees of pg_stat_activity")?;
        if !sees_all {
            warnings.push(
                "this role is not a member of pg_read_all_stats: --max-lag and --max-active see only its own sessions and walsenders; \
                 grant pg_read_all_stats, or use --replica-dsn for lag"
                    .into(),
            );
        }
    }
    Ok(warnings)
}

fn is_clock_time(s: &str) -> bool {
    let b = s.as_bytes();
    (b.len() == 5 && b[2] == b':' || b.len() == 8 && b[2] == b':' && b[5] == b':')
        && s.chars().filter(|c| *c != ':').all(|c| c.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_times_are_recognised() {
        assert!(is_clock_time("01:00"));
        assert!(is_clock_time("23:59:30"));
        assert!(!is_clock_time("2026-11-22 01:00"));
        assert!(!is_clock_time("1:00"));
    }
}
