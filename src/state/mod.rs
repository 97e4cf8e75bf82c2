//! State in the database: the `runs`, `chunks`, `events` and `objects` tables of the state
//! schema (default `hotswap`), and the advisory lock that allows one run per table.
//!
//! This module is the only place that writes SQL against those tables: the rest of the tool
//! calls its typed methods (one file per table, plus the change log it keeps in the schema), with
//! values as bind parameters and names through `Ident`/`QualifiedName`. A method that must run in
//! the caller's transaction (the copy's chunk marking, the swap's record) takes that transaction
//! as `&impl GenericClient`.
//!
//! Invariant kept here: every object the tool creates is recorded in `objects` in the same
//! transaction that creates it (DESIGN.md, "Nothing the tool creates is left behind unknown").

mod changelog;
mod chunks;
mod control;
mod events;
mod fleet;
mod objects;
mod overview;
mod runs;
pub mod target;

pub use changelog::backlog_estimate_of;
pub use chunks::{ChunkRecord, CopyTotals, UnitDone};
pub use fleet::{FleetLookup, FleetRun, READY_NOTE};
pub use objects::TriggerRecord;
pub use overview::{RunFigures, RunOverview};
pub use runs::{Swapped, SwappedRun, UnfinishedRun};

use crate::db::ident::{Ident, QualifiedName};
use crate::error::{DbContext, Error, Result, RowExt};
use tokio_postgres::types::Oid;
use tokio_postgres::Client;

/// Namespace for the tool's advisory locks (`pg_try_advisory_lock(int4, int4)`): "hswp".
pub const LOCK_CLASS: i32 = 0x6873_7770;

/// The state schema, with helpers that name its tables.
#[derive(Clone, Debug)]
pub struct State {
    pub schema: Ident,
}

/// Phases of a run, in order (stored as text in `runs.phase`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    Preflight,
    Shadow,
    Capture,
    Copy,
    Build,
    Replay,
    Verify,
    Swap,
    Finish,
    Done,
}

impl Phase {
    /// Every phase, in order.
    pub const ALL: [Phase; 10] = [
        Phase::Preflight,
        Phase::Shadow,
        Phase::Capture,
        Phase::Copy,
        Phase::Build,
        Phase::Replay,
        Phase::Verify,
        Phase::Swap,
        Phase::Finish,
        Phase::Done,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Preflight => "preflight",
            Phase::Shadow => "shadow",
            Phase::Capture => "capture",
            Phase::Copy => "copy",
            Phase::Build => "build",
            Phase::Replay => "replay",
            Phase::Verify => "verify",
            Phase::Swap => "swap",
            Phase::Finish => "finish",
            Phase::Done => "done",
        }
    }

    pub fn parse(s: &str) -> Option<Phase> {
        Some(match s {
            "preflight" => Phase::Preflight,
            "shadow" => Phase::Shadow,
            "capture" => Phase::Capture,
            "copy" => Phase::Copy,
            "build" => Phase::Build,
            "replay" => Phase::Replay,
            "verify" => Phase::Verify,
            "swap" => Phase::Swap,
            "finish" => Phase::Finish,
            "done" => Phase::Done,
            _ => return None,
        })
    }
}

impl State {
    pub fn new(schema: &str) -> State {
        State {
            schema: Ident::new(schema),
        }
    }

    /// Names an object in the state schema: one of the state tables (for this module and the
    /// statement listing of `plan`), or a run's change log and capture functions.
    pub fn table(&self, name: &str) -> QualifiedName {
        QualifiedName {
            schema: self.schema.clone(),
            name: Ident::new(name),
        }
    }

    /// Creates the state schema and tables if they do not exist.
    pub async fn ensure_schema(&self, client: &Client) -> Result<()> {
        let ddl = include_str!("../../sql/state_schema.sql")
            .replace("@schema@", &self.schema.to_string());
        client
            .batch_execute(&format!(
                "BEGIN; SELECT pg_advisory_xact_lock({LOCK_CLASS}, 0); {ddl}; COMMIT"
            ))
            .await
            .map_err(|e| {
                Error::db(
                    format_args!("creating the state schema {}", self.schema.as_str()),
                    e,
                )
                .with_state("nothing was changed")
                .with_next("the tool needs CREATE on the database to keep its state (or pass --state-schema naming a schema you own)")
            })?;
        let _ = client.batch_execute("ROLLBACK").await;
        Ok(())
    }

    /// Whether the state schema exists (without creating it).
    pub async fn exists(&self, client: &Client) -> Result<bool> {
        let row = client
            .query_one(
                "SELECT to_regclass(quote_ident($1) || '.runs') IS NOT NULL",
                &[&self.schema.as_str()],
            )
            .await
            .ctx("looking for the state schema")?;
        row.col(0, &"looking for the state schema")
    }

    /// Takes the per-table advisory lock on this session; false if another session holds it.
    /// A session that holds it only because its process just ended (the server has not noticed
    /// the closed connection yet) lets go within moments, so a busy lock is tried again for up
    /// to five seconds before giving up.
    pub async fn try_lock_table(&self, client: &Client, oid: Oid) -> Result<bool> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let row = client
                .query_one(
                    "SELECT pg_try_advisory_lock($1, ($2::oid)::int4)",
                    &[&LOCK_CLASS, &oid],
                )
                .await
                .ctx("taking the per-table advisory lock")?;
            if row.col::<bool>(0, &"taking the per-table advisory lock")? {
                return Ok(true);
            }
            if std::time::Instant::now() >= deadline {
                return Ok(false);
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }

    /// The pid of the session holding the per-table lock, if any.
    pub async fn lock_holder(&self, client: &Client, oid: Oid) -> Result<Option<i32>> {
        let row = client
            .query_opt(
                "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted \
                   AND classid::int4 = $1 AND objid::int4 = ($2::oid)::int4 AND objsubid = 2 LIMIT 1",
                &[&LOCK_CLASS, &oid],
            )
            .await
            .ctx("looking for the session that runs pg-hotswap on this table")?;
        row.map(|r| {
            r.col(
                0,
                &"looking for the session that runs pg-hotswap on this table",
            )
        })
        .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_round_trip_and_are_ordered() {
        for p in Phase::ALL {
            assert_eq!(Phase::parse(p.as_str()), Some(p));
        }
        assert!(Phase::Copy < Phase::Swap);
        assert_eq!(Phase::parse("bogus"), None);
    }

    #[test]
    fn state_tables_are_quoted() {
        let s = State::new("Hot Swap");
        assert_eq!(s.table("runs").to_string(), "\"Hot Swap\".\"runs\"");
    }
}
