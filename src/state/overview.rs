//! What `status` shows of the recorded runs: one read of `runs` with the copy progress from
//! `chunks`, the last 50 runs (of one table, or of all).
//!
//! Invariant kept here: reads only, in one statement (one snapshot), so the run and its chunk
//! counts agree with each other.

use super::State;
use crate::db::ident::QualifiedName;
use crate::error::{DbContext, Result, RowExt};
use tokio_postgres::types::Oid;
use tokio_postgres::GenericClient;

/// A recorded run as `status` reads it (times as text in the server's time zone).
#[derive(Clone, Debug)]
pub struct RunOverview {
    pub id: i64,
    pub table: String,
    pub table_oid: Oid,
    pub phase: String,
    pub status: String,
    pub alter: Option<String>,
    pub started_at: String,
    pub updated_at: String,
    pub finished_at: Option<String>,
    pub chunks_done: i64,
    pub chunks_total: i64,
    pub rows_copied: i64,
    /// The run's change log, as its plan names it.
    pub log: Option<QualifiedName>,
    pub lock_attempts: i32,
    pub longest_lock_ms: Option<f64>,
    pub old_name: Option<String>,
    pub reverse: Option<String>,
    pub error: Option<String>,
    /// Rows copied over the last minute, per second.
    pub rows_per_sec: Option<f64>,
    /// Rows left to copy, estimated from the chunks done so far.
    pub rows_left: Option<f64>,
    /// What holds the run, since and until when (as the governor recorded it).
    pub held_by: Option<String>,
    pub held_since: Option<String>,
    pub held_until: Option<String>,
    /// The operator's pending request.
    pub control: Option<String>,
    /// Replication lag last measured (seconds).
    pub lag_secs: Option<f64>,
}

impl State {
    /// The last 50 runs, newest first: all, or those of the table (or new table) `oid`.
    pub async fn runs_overview(
        &self,
        client: &impl GenericClient,
        oid: Option<Oid>,
    ) -> Result<Vec<RunOverview>> {
        let rows = client
            .query(
                &format!(
                    "SELECT r.id, r.table_name, r.phase, r.status, r.alter_text, \
                            to_char(r.started_at, 'YYYY-MM-DD HH24:MI:SS TZ'), \
                            to_char(r.updated_at, 'YYYY-MM-DD HH24:MI:SS TZ'), \
                            to_char(r.finished_at, 'YYYY-MM-DD HH24:MI:SS TZ'), \
                            (SELECT count(*) FILTER (WHERE done_at IS NOT NULL) FROM {chunks} c WHERE c.run_id = r.id), \
                            (SELECT count(*) FROM {chunks} c WHERE c.run_id = r.id), \
                            (SELECT COALESCE(sum(rows), 0)::int8 FROM {chunks} c WHERE c.run_id = r.id), \
                            r.plan #>> '{{capture,log,schema}}', r.plan #>> '{{capture,log,name}}', \
                            r.lock_attempts, r.max_lock_ms, r.table_oid, r.old_name, r.reverse, r.error, \
                            (SELECT sum(rows)::float8 / 60 FROM {chunks} c WHERE c.run_id = r.id AND c.done_at > clock_timestamp() - interval '60 s'), \
                            (SELECT CASE WHEN count(*) FILTER (WHERE done_at IS NOT NULL) > 0 \
                                         THEN (sum(rows) / count(*) FILTER (WHERE done_at IS NOT NULL)) * count(*) FILTER (WHERE done_at IS NULL) END::float8 \
                               FROM {chunks} c WHERE c.run_id = r.id), \
                            r.throttle, to_char(r.throttle_since, 'YYYY-MM-DD HH24:MI:SS TZ'), \
                            to_char(r.waiting_until, 'YYYY-MM-DD HH24:MI:SS TZ'), r.control, r.lag_s \
                       FROM {runs} r \
                      WHERE $1::oid IS NULL OR r.table_oid = $1 OR (r.plan->>'shadow_oid')::oid = $1 \
                      ORDER BY r.id DESC LIMIT 50",
                    chunks = self.table("chunks"),
                    runs = self.table("runs"),
                ),
                &[&oid],
            )
            .await
            .ctx("reading the runs")?;
        let what = "reading the runs";
        rows.iter()
            .map(|r| {
                Ok(RunOverview {
                    id: r.col(0, &what)?,
                    table: r.col(1, &what)?,
                    phase: r.col(2, &what)?,
                    status: r.col(3, &what)?,
                    alter: r.col(4, &what)?,
                    started_at: r.col(5, &what)?,
                    updated_at: r.col(6, &what)?,
                    finished_at: r.col(7, &what)?,
                    chunks_done: r.col(8, &what)?,
                    chunks_total: r.col(9, &what)?,
                    rows_copied: r.col(10, &what)?,
                    log: match (
                        r.col::<Option<String>>(11, &what)?,
                        r.col::<Option<String>>(12, &what)?,
                    ) {
                        (Some(s), Some(n)) => Some(QualifiedName::new(s, n)),
                        _ => None,
                    },
                    lock_attempts: r.col(13, &what)?,
                    longest_lock_ms: r.col(14, &what)?,
                    table_oid: r.col(15, &what)?,
                    old_name: r.col(16, &what)?,
                    reverse: r.col(17, &what)?,
                    error: r.col(18, &what)?,
                    rows_per_sec: r.col(19, &what)?,
                    rows_left: r.col(20, &what)?,
                    held_by: r.col(21, &what)?,
                    held_since: r.col(22, &what)?,
                    held_until: r.col(23, &what)?,
                    control: r.col(24, &what)?,
                    lag_secs: r.col(25, &what)?,
                })
            })
            .collect()
    }
}

/// The figures of one run that the governor reads every few seconds for `--metrics-file` and
/// the hooks' environment (issue 19).
#[derive(Clone, Debug, Default)]
pub struct RunFigures {
    pub table: String,
    pub phase: String,
    pub status: String,
    pub rows_copied: i64,
    pub bytes_copied: i64,
    pub chunks_done: i64,
    pub chunks_total: i64,
    pub lock_attempts: i32,
    pub longest_lock_ms: Option<f64>,
    pub lag_secs: Option<f64>,
}

impl State {
    /// The figures of run `run`, in one statement.
    pub async fn run_figures(&self, client: &impl GenericClient, run: i64) -> Result<RunFigures> {
        let what = "reading the run's figures";
        let r = client
            .query_one(
                &format!(
                    "SELECT r.table_name, r.phase, r.status, \
                            COALESCE(c.rows, 0)::int8, COALESCE(c.bytes, 0)::int8, \
                            COALESCE(c.done, 0)::int8, COALESCE(c.total, 0)::int8, \
                            r.lock_attempts, r.max_lock_ms, r.lag_s \
                       FROM {runs} r \
                       LEFT JOIN LATERAL (SELECT sum(rows) AS rows, sum(bytes) AS bytes, \
                                                 count(*) FILTER (WHERE done_at IS NOT NULL) AS done, \
                                                 count(*) AS total \
                                            FROM {chunks} WHERE run_id = r.id) c ON true \
                      WHERE r.id = $1",
                    runs = self.table("runs"),
                    chunks = self.table("chunks"),
                ),
                &[&run],
            )
            .await
            .ctx(what)?;
        Ok(RunFigures {
            table: r.col(0, &what)?,
            phase: r.col(1, &what)?,
            status: r.col(2, &what)?,
            rows_copied: r.col(3, &what)?,
            bytes_copied: r.col(4, &what)?,
            chunks_done: r.col(5, &what)?,
            chunks_total: r.col(6, &what)?,
            lock_attempts: r.col(7, &what)?,
            longest_lock_ms: r.col(8, &what)?,
            lag_secs: r.col(9, &what)?,
        })
    }
}
