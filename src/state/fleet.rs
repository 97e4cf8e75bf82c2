//! The fleet's side of the `runs` table (issue 18): the fleet id a run records, and one read of
//! a target database's run of a fleet (phase, status, progress, readiness, swap time) for
//! `pg-hotswap fleet run | status | cutover`.
//!
//! Invariant kept here: a run's fleet id is only ever set (never cleared or changed to another
//! fleet's), and the fleet's view of a run is read in one statement, so its phase, its hold and
//! its chunk counts agree with each other.

use super::State;
use crate::db::ident::QualifiedName;
use crate::error::{DbContext, Result, RowExt};
use tokio_postgres::types::Oid;
use tokio_postgres::{Client, GenericClient};

/// The note the governor records in `runs.throttle` while a run is ready and waits for its swap
/// (`Governor::swap_hold`: "ready to swap: waiting for the operator's cut-over ..."). Our own
/// state text, written by this crate, not a server message.
pub const READY_NOTE: &str = "ready to swap";

/// Which run of a target database the fleet looks at.
#[derive(Clone, Copy, Debug)]
pub enum FleetLookup<'a> {
    /// The last run recorded with this fleet id.
    Id(&'a str),
    /// The last run of this table (its oid now: the source before the swap, the new table after
    /// it) that belongs to some fleet.
    Table(Oid),
}

/// One target's run as the fleet sees it.
#[derive(Clone, Debug)]
pub struct FleetRun {
    pub id: i64,
    pub fleet_id: Option<String>,
    pub table_oid: Oid,
    pub phase: String,
    pub status: String,
    pub error: Option<String>,
    /// What holds the run (`runs.throttle`).
    pub held_by: Option<String>,
    pub control: Option<String>,
    pub chunks_done: i64,
    pub chunks_total: i64,
    pub rows_copied: i64,
    pub rows_per_sec: Option<f64>,
    pub rows_left: Option<f64>,
    pub log: Option<QualifiedName>,
    /// When the swap committed (the `swap` event), seconds since the epoch on the server's clock.
    pub swapped_at: Option<f64>,
    pub reverse: Option<String>,
}

impl FleetRun {
    /// The swap has committed: the new table is in place (phase finish or done).
    pub fn swapped(&self) -> bool {
        self.swapped_at.is_some() || self.phase == "finish" || self.phase == "done"
    }

    /// Running and waiting for its cut-over, replaying meanwhile.
    pub fn waits_ready(&self) -> bool {
        self.status == "running"
            && !self.swapped()
            && self
                .held_by
                .as_deref()
                .is_some_and(|h| h.starts_with(READY_NOTE))
    }
}

impl State {
    /// Records the fleet id on the run (set once; a run keeps the fleet it was started by).
    pub async fn set_fleet_id(
        &self,
        client: &impl GenericClient,
        run: i64,
        id: &str,
    ) -> Result<()> {
        client
            .execute(
                &format!(
                    "UPDATE {} SET fleet_id = $2 WHERE id = $1 AND fleet_id IS NULL",
                    self.table("runs")
                ),
                &[&run, &id],
            )
            .await
            .ctx("recording the fleet id")?;
        Ok(())
    }

    /// The run the fleet looks at (see [`FleetLookup`]), or None.
    pub async fn fleet_run(
        &self,
        client: &Client,
        lookup: FleetLookup<'_>,
    ) -> Result<Option<FleetRun>> {
        let (id, oid): (Option<&str>, Option<Oid>) = match lookup {
            FleetLookup::Id(id) => (Some(id), None),
            FleetLookup::Table(oid) => (None, Some(oid)),
        };
        let what = "reading the fleet's run";
        let row = client
            .query_opt(
                &format!(
                    "SELECT r.id, r.fleet_id, r.table_oid, r.phase, r.status, r.error, r.throttle, r.control, \
                            (SELECT count(*) FILTER (WHERE done_at IS NOT NULL) FROM {chunks} c WHERE c.run_id = r.id), \
                            (SELECT count(*) FROM {chunks} c WHERE c.run_id = r.id), \
                            (SELECT COALESCE(sum(rows), 0)::int8 FROM {chunks} c WHERE c.run_id = r.id), \
                            (SELECT sum(rows)::float8 / 60 FROM {chunks} c WHERE c.run_id = r.id AND c.done_at > clock_timestamp() - interval '60 s'), \
                            (SELECT CASE WHEN count(*) FILTER (WHERE done_at IS NOT NULL) > 0 \
                                         THEN (sum(rows) / count(*) FILTER (WHERE done_at IS NOT NULL)) * count(*) FILTER (WHERE done_at IS NULL) END::float8 \
                               FROM {chunks} c WHERE c.run_id = r.id), \
                            r.plan #>> '{{capture,log,schema}}', r.plan #>> '{{capture,log,name}}', \
                            (SELECT extract(epoch FROM max(e.at))::float8 FROM {events} e WHERE e.run_id = r.id AND e.kind = 'swap'), \
                            r.reverse \
                       FROM {runs} r \
                      WHERE ($1::text IS NOT NULL AND r.fleet_id = $1) \
                         OR ($2::oid IS NOT NULL AND r.fleet_id IS NOT NULL \
                             AND (r.table_oid = $2 OR (r.plan->>'shadow_oid')::oid = $2)) \
                      ORDER BY r.id DESC LIMIT 1",
                    chunks = self.table("chunks"),
                    events = self.table("events"),
                    runs = self.table("runs"),
                ),
                &[&id, &oid],
            )
            .await
            .ctx(what)?;
        row.map(|r| {
            Ok(FleetRun {
                id: r.col(0, &what)?,
                fleet_id: r.col(1, &what)?,
                table_oid: r.col(2, &what)?,
                phase: r.col(3, &what)?,
                status: r.col(4, &what)?,
                error: r.col(5, &what)?,
                held_by: r.col(6, &what)?,
                control: r.col(7, &what)?,
                chunks_done: r.col(8, &what)?,
                chunks_total: r.col(9, &what)?,
                rows_copied: r.col(10, &what)?,
                rows_per_sec: r.col(11, &what)?,
                rows_left: r.col(12, &what)?,
                log: match (
                    r.col::<Option<String>>(13, &what)?,
                    r.col::<Option<String>>(14, &what)?,
                ) {
                    (Some(s), Some(n)) => Some(QualifiedName::new(s, n)),
                    _ => None,
                },
                swapped_at: r.col(15, &what)?,
                reverse: r.col(16, &what)?,
            })
        })
        .transpose()
    }

    /// Change-log rows waiting to be replayed, when the run's log exists.
    pub async fn log_backlog(&self, client: &Client, log: &QualifiedName) -> Result<Option<i64>> {
        let what = "counting a change log";
        let exists: bool = client
            .query_one(
                "SELECT to_regclass($1::text) IS NOT NULL",
                &[&log.to_string()],
            )
            .await
            .ctx(what)?
            .col(0, &what)?;
        if !exists {
            return Ok(None);
        }
        let n: i64 = client
            .query_one(&format!("SELECT count(*) FROM {log}"), &[])
            .await
            .ctx(what)?
            .col(0, &what)?;
        Ok(Some(n))
    }
}
