//! A concurrent write load with a ledger: the proof that no write is lost (DESIGN.md,
//! "Invariants"). Used by the integration tests, `pg-hotswap demo` and the benchmarks.
//!
//! Every transaction makes the SAME change to the table under test and to a ledger table that the
//! tool never touches; after a run, the table and the ledger must hold the same rows
//! ([`compare`]). Writers own disjoint keys (see [`owner_of`]), so they never wait on each other,
//! never deadlock and never hit a unique violation: any error is a failure of the thing under
//! test and is recorded, never retried away.
//!
//! The table may be rewritten and swapped under the writers (renamed away, replaced by a new table
//! of the same name, its columns' types changed). So writers address it by name in plain SQL, keep
//! no prepared statements (a cached plan fails with "cached plan must not change result type"
//! after `int` -> `bigint`) and send values as untyped string literals (rendered by
//! [`crate::db::ident::literal`]), which take whatever type the column has at that moment. Values are
//! numbers and hex strings this module generates, never outside input. Each transaction is one
//! simple-protocol message holding both statements: one round trip, and PostgreSQL runs a
//! multi-statement message as one implicit transaction (all or nothing).

//!
//! Parts: `ledger` (the table under test, its ledger, and comparing the two), `writer` (one
//! writer: its statements, keys and reconnects), `report` (what the writers did); this file
//! starts and stops the writers.

mod ledger;
mod report;
mod writer;

pub use ledger::{compare, create_tables, CompareResult, TableSpec};
pub use report::WorkloadReport;
use report::WriterReport;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use writer::{Sql, Writer};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::task::JoinHandle;
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

use crate::db::ident::literal;

/// Errors kept per writer; later ones are only counted ([`WorkloadReport::error_count`]).
const MAX_KEPT_ERRORS: usize = 50;
/// Pause between reconnection attempts after a writer lost its connection.
const RECONNECT_DELAY: Duration = Duration::from_millis(200);

/// What to run.
#[derive(Clone, Debug)]
pub struct WorkloadConfig {
    /// libpq key=value (or URL) connection string; every writer opens its own connection.
    pub conninfo: String,
    pub spec: TableSpec,
    /// Number of concurrent writers (at least 1).
    pub writers: usize,
    /// Upper bound on transactions per second, summed over all writers; `None`: as fast as
    /// they go.
    pub max_rate_per_sec: Option<u32>,
    /// The `rows` given to [`create_tables`]: ids `1..=initial_rows` exist at the start.
    pub initial_rows: i64,
}

/// The kinds of transaction a writer makes, each applied to table and ledger alike.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum OpKind {
    Insert,
    UpdateVal,
    NoteNull,
    NoteSet,
    Delete,
    /// `UPDATE ... SET id = <fresh own key> WHERE id = <own key>`.
    UpdateKey,
}

impl OpKind {
    pub const ALL: [OpKind; 6] = [
        OpKind::Insert,
        OpKind::UpdateVal,
        OpKind::NoteNull,
        OpKind::NoteSet,
        OpKind::Delete,
        OpKind::UpdateKey,
    ];

    /// Relative frequency; inserts slightly outnumber deletes so the table grows a little.
    fn weight(self) -> u32 {
        match self {
            OpKind::Insert => 20,
            OpKind::UpdateVal => 25,
            OpKind::NoteNull => 10,
            OpKind::NoteSet => 15,
            OpKind::Delete => 15,
            OpKind::UpdateKey => 15,
        }
    }

    fn name(self) -> &'static str {
        match self {
            OpKind::Insert => "insert",
            OpKind::UpdateVal => "update_val",
            OpKind::NoteNull => "note_null",
            OpKind::NoteSet => "note_set",
            OpKind::Delete => "delete",
            OpKind::UpdateKey => "update_key",
        }
    }
}

impl fmt::Display for OpKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Which writer owns key `id`: initial keys `1..=initial_rows` by `id % writers`, keys created
/// later (`initial_rows + 1 + counter * writers + index`) by their offset. Ownership follows from
/// the key alone, so a writer can find its keys again after a reconnect.
pub fn owner_of(id: i64, initial_rows: i64, writers: usize) -> usize {
    let w = writers.max(1) as i64;
    let slot = if id <= initial_rows {
        id
    } else {
        id - initial_rows - 1
    };
    slot.rem_euclid(w) as usize
}

/// The `counter`-th fresh key of writer `index` (never used before by anyone).
fn fresh_key(initial_rows: i64, writers: usize, index: usize, counter: i64) -> i64 {
    initial_rows + 1 + counter * writers as i64 + index as i64
}

/// A running workload: the writers' tasks and their stop flag.
pub struct Workload {
    stop: Arc<AtomicBool>,
    transactions: Arc<AtomicU64>,
    errors: Arc<AtomicU64>,
    started: Instant,
    writers: Vec<JoinHandle<WriterReport>>,
}

/// Starts `cfg.writers` writer tasks on the current tokio runtime (must be called inside one).
pub fn start(cfg: WorkloadConfig) -> Workload {
    let writers = cfg.writers.max(1);
    let stop = Arc::new(AtomicBool::new(false));
    let transactions = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let interval = cfg
        .max_rate_per_sec
        .filter(|r| *r > 0)
        .map(|rate| Duration::from_secs_f64(writers as f64 / f64::from(rate)));
    let handles = (0..writers)
        .map(|index| {
            let writer = Writer {
                index,
                writers,
                conninfo: cfg.conninfo.clone(),
                sql: Sql::new(&cfg.spec),
                spec: cfg.spec.clone(),
                initial_rows: cfg.initial_rows,
                interval,
                stop: stop.clone(),
                transactions: transactions.clone(),
                errors: errors.clone(),
            };
            tokio::spawn(writer.run())
        })
        .collect();
    Workload {
        stop,
        transactions,
        errors,
        started: Instant::now(),
        writers: handles,
    }
}

impl Workload {
    /// Transactions committed so far, over all writers.
    pub fn transactions(&self) -> u64 {
        self.transactions.load(Ordering::Relaxed)
    }

    /// Errors seen so far, over all writers.
    pub fn error_count(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    /// Stops the writers (each finishes its current transaction) and merges their reports.
    pub async fn stop(self) -> WorkloadReport {
        self.stop.store(true, Ordering::Relaxed);
        let mut report = WorkloadReport::empty();
        for handle in self.writers {
            match handle.await {
                Ok(w) => report.merge(w),
                Err(e) => {
                    report.error_count += 1;
                    report.errors.push(format!("writer task failed: {e}"));
                }
            }
        }
        report.elapsed = self.started.elapsed();
        report
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_of_different_writers_never_collide() {
        let (initial, writers) = (103, 4);
        let mut seen = std::collections::HashSet::new();
        for k in 1..=initial {
            assert!(seen.insert(k));
        }
        for index in 0..writers {
            for counter in 0..50 {
                let k = fresh_key(initial, writers, index, counter);
                assert!(k > initial);
                assert!(seen.insert(k), "key {k} handed out twice");
                assert_eq!(owner_of(k, initial, writers), index);
            }
        }
        for k in 1..=initial {
            assert_eq!(owner_of(k, initial, writers), (k % 4) as usize);
        }
    }
}
