//! Old snapshots before the swap (issue 21, input 6): transactions whose snapshot is older than
//! the new table's rows are waited for, within a bound, and named when they outlive it.
//!
//! Why: the shadow's rows were written by the copy and replay transactions. A transaction whose
//! snapshot was taken before they committed (a `REPEATABLE READ` or `SERIALIZABLE` transaction,
//! or a long statement) cannot see those rows. After the swap the table's name means the new
//! table (catalog lookups always use the latest catalog), so such a transaction that first
//! touches the table after the swap sees it empty or partly filled: a read returns too few rows,
//! and `UPDATE ... WHERE id = 5` reports `UPDATE 0` and commits — a write lost without an error.
//! PostgreSQL's own rewriting `ALTER TABLE` has the same hole (its docs call the rewrite "not
//! MVCC-safe"); `CREATE INDEX CONCURRENTLY` closes it for indexes by waiting for every
//! transaction that might hold an older snapshot (`WaitForOlderSnapshots`). This does the same
//! before the swap.
//!
//! Which transactions count (invariant kept: no transaction that can miss the new table's rows
//! is let through silently):
//! - the horizon is `pg_snapshot_xmax(pg_current_snapshot())` when the wait starts: every copy
//!   and replay transaction so far has committed below it, so a snapshot with `xmin` at or past
//!   it sees every row of the new table; a session whose `backend_xmin` precedes it may not;
//! - like `CREATE INDEX CONCURRENTLY`, the list is taken once and each *transaction* (pid and
//!   `xact_start`) is waited for until it ends; a session that starts a new transaction is
//!   done, since its new snapshot sees the rows (re-reading `backend_xmin` would wait for ever
//!   behind one long transaction that holds every other snapshot's xmin back);
//! - only sessions of this database: a snapshot in another database cannot read this table;
//! - `backend_xid` alone does not count: a transaction that wrote but holds no snapshot (READ
//!   COMMITTED between statements) takes a fresh snapshot for its next statement; and one that
//!   wrote the table itself holds a lock the swap waits for anyway;
//! - not the tool's own sessions (application_name `pg-hotswap` or `pg-hotswap/<role>`, or
//!   whatever base name the connection was given), autovacuum workers and WAL senders (they do
//!   not read user tables through snapshots).
//!
//! What remains (documented in docs/how-it-works.md): a transaction that takes its snapshot
//! after the wait but before the swap commits misses only the keys replayed inside the swap
//! transaction; its update of such a row fails with a serialization error instead of being lost.

use crate::db::ident::QualifiedName;
use crate::error::{DbContext, Error, Result};
use crate::output::ui::say;
use std::time::{Duration, Instant};
use tokio_postgres::Client;

/// What to do when old snapshots outlive the wait (`--old-snapshots`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
pub enum OldSnapshotPolicy {
    /// Swap anyway, with a warning naming the sessions (what PostgreSQL's ALTER TABLE does,
    /// without the warning).
    Proceed,
    /// Stop before the swap; the run stays resumable (run the same command again).
    Stop,
}

/// `--wait-old-snapshots` and `--old-snapshots`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OldSnapshotOptions {
    pub wait: Duration,
    pub policy: OldSnapshotPolicy,
}

/// The default wait. Waiting holds no lock (writes go on; the swap catches up with what they
/// log before it locks), so the only cost is time, while letting a transaction through can lose
/// its write. Application transactions last milliseconds to seconds; a minute outlasts nearly
/// all of them and is short next to the copy; what is still open after a minute is a report, a
/// batch job or a forgotten session, which a longer wait would not see end either.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(60);

impl Default for OldSnapshotOptions {
    fn default() -> Self {
        OldSnapshotOptions {
            wait: DEFAULT_WAIT,
            policy: OldSnapshotPolicy::Proceed,
        }
    }
}

/// A transaction whose snapshot may predate the new table's rows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OldSession {
    pub pid: i32,
    pub application_name: String,
    pub user: String,
    /// `xact_start` as text: with the pid, it identifies the transaction.
    pub xact_start: String,
    pub state: String,
    pub query: String,
}

impl OldSession {
    pub fn describe(&self) -> String {
        format!(
            "pid {} (application_name {:?}, user {}, transaction started {}, {}; query {:?})",
            self.pid, self.application_name, self.user, self.xact_start, self.state, self.query
        )
    }
}

const OLD_SESSIONS: &str = "\
WITH h AS (SELECT pg_catalog.pg_snapshot_xmax(pg_catalog.pg_current_snapshot()) AS horizon)
SELECT a.pid, COALESCE(a.application_name, ''), COALESCE(a.usename::text, '?'),
       COALESCE(a.xact_start::text, ''), COALESCE(a.state, ''),
       left(regexp_replace(COALESCE(a.query, ''), '\\s+', ' ', 'g'), 120)
  FROM pg_catalog.pg_stat_activity a, h
 WHERE a.datid = (SELECT oid FROM pg_catalog.pg_database WHERE datname = pg_catalog.current_database())
   AND a.pid <> pg_catalog.pg_backend_pid()
   AND a.backend_xmin IS NOT NULL
   AND pg_catalog.age(a.backend_xmin) > pg_catalog.age(pg_catalog.xid(h.horizon))
   AND a.backend_type NOT IN ('autovacuum worker', 'walsender')
   AND COALESCE(a.application_name, '') <> $1
   AND left(COALESCE(a.application_name, ''), length($1) + 1) <> $1 || '/'
 ORDER BY a.xact_start NULLS LAST, a.pid";

/// The transactions in this database whose snapshot may predate every row the tool has
/// committed so far (see the header), other than the tool's own.
pub async fn old_sessions(client: &Client) -> Result<Vec<OldSession>> {
    let app: String = client
        .query_one("SELECT pg_catalog.current_setting('application_name')", &[])
        .await
        .ctx("reading application_name")?
        .try_get(0)
        .ctx("reading application_name")?;
    // `pg-hotswap/control` -> `pg-hotswap`: every session of the run shares the base name.
    let base = app.split('/').next().unwrap_or_default().to_string();
    let rows = client
        .query(OLD_SESSIONS, &[&base])
        .await
        .ctx("looking for transactions with snapshots older than the new table's rows")?;
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        let get = |i: usize| -> Result<String> { r.try_get(i).ctx("reading pg_stat_activity") };
        out.push(OldSession {
            pid: r.try_get(0).ctx("reading pg_stat_activity")?,
            application_name: get(1)?,
            user: get(2)?,
            xact_start: get(3)?,
            state: get(4)?,
            query: get(5)?,
        });
    }
    Ok(out)
}

/// Which of `sessions` are still in the same transaction.
async fn still_open(client: &Client, sessions: &[OldSession]) -> Result<Vec<OldSession>> {
    let pids: Vec<i32> = sessions.iter().map(|s| s.pid).collect();
    let rows = client
        .query(
            "SELECT pid, COALESCE(xact_start::text, '') FROM pg_catalog.pg_stat_activity \
              WHERE pid = ANY($1)",
            &[&pids],
        )
        .await
        .ctx("watching transactions with old snapshots")?;
    let mut open = Vec::new();
    for r in &rows {
        let pid: i32 = r.try_get(0).ctx("reading pg_stat_activity")?;
        let start: String = r.try_get(1).ctx("reading pg_stat_activity")?;
        if let Some(s) = sessions
            .iter()
            .find(|s| s.pid == pid && s.xact_start == start)
        {
            open.push(s.clone());
        }
    }
    Ok(open)
}

/// Waits, up to `opts.wait`, for the transactions whose snapshots predate the new table's rows
/// to end. Returns the warnings to report (the sessions still open, with `Proceed`); with
/// `Stop`, an error naming them (the run stays resumable). `table` names the table in messages.
pub async fn wait_for_old_snapshots(
    client: &Client,
    opts: &OldSnapshotOptions,
    table: &QualifiedName,
) -> Result<Vec<String>> {
    let mut open = old_sessions(client).await?;
    if open.is_empty() {
        return Ok(Vec::new());
    }
    say(&format!(
        "waiting up to {:.0} s for {} transaction{} whose snapshot is older than the new table's rows \
         (after the swap they would not see them): {}",
        opts.wait.as_secs_f64(),
        open.len(),
        if open.len() == 1 { "" } else { "s" },
        open.iter()
            .map(|s| s.describe())
            .collect::<Vec<_>>()
            .join("; ")
    ));
    let started = Instant::now();
    while started.elapsed() < opts.wait {
        tokio::time::sleep(Duration::from_millis(200).min(opts.wait)).await;
        open = still_open(client, &open).await?;
        if open.is_empty() {
            say(&format!(
                "the transactions with old snapshots ended after {:.1} s",
                started.elapsed().as_secs_f64()
            ));
            return Ok(Vec::new());
        }
    }
    let names = open
        .iter()
        .map(|s| s.describe())
        .collect::<Vec<_>>()
        .join("; ");
    match opts.policy {
        OldSnapshotPolicy::Proceed => {
            Ok(vec![format!(
            "swapping {} while {} transaction{} with a snapshot older than the new table's rows \
             {} still open after {:.0} s: if {} the table now, {} it without those rows (an UPDATE \
             or DELETE there reports 0 rows and changes nothing): {names}",
            table.human(),
            open.len(),
            if open.len() == 1 { "" } else { "s" },
            if open.len() == 1 { "is" } else { "are" },
            opts.wait.as_secs_f64(),
            if open.len() == 1 { "it reads" } else { "they read" },
            if open.len() == 1 { "it sees" } else { "they see" },
        )])
        }
        OldSnapshotPolicy::Stop => Err(Error::failed(format!(
            "not swapping {}: {} transaction{} with a snapshot older than the new table's rows \
             {} still open after {:.0} s (--old-snapshots stop): {names}",
            table.human(),
            open.len(),
            if open.len() == 1 { "" } else { "s" },
            if open.len() == 1 { "is" } else { "are" },
            opts.wait.as_secs_f64(),
        ))
        .with_next(format!(
            "end those transactions (or SELECT pg_terminate_backend(pid)) and run the same command \
             again to continue from here, or allow the swap with --old-snapshots proceed \
             (pid{}: {})",
            if open.len() == 1 { "" } else { "s" },
            open.iter()
                .map(|s| s.pid.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_waits_a_minute_then_proceeds() {
        let d = OldSnapshotOptions::default();
        assert_eq!(d.wait, Duration::from_secs(60));
        assert_eq!(d.policy, OldSnapshotPolicy::Proceed);
    }

    #[test]
    fn a_session_is_described_by_pid_application_and_start() {
        let s = OldSession {
            pid: 42,
            application_name: "reporter".into(),
            user: "app".into(),
            xact_start: "2026-01-01 00:00:00+00".into(),
            state: "idle in transaction".into(),
            query: "SELECT 1".into(),
        };
        let d = s.describe();
        assert!(d.contains("pid 42") && d.contains("\"reporter\"") && d.contains("2026-01-01"));
    }
}
