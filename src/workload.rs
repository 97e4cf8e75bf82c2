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
//! [`crate::ident::literal`]), which take whatever type the column has at that moment. Values are
//! numbers and hex strings this module generates, never outside input. Each transaction is one
//! simple-protocol message holding both statements: one round trip, and PostgreSQL runs a
//! multi-statement message as one implicit transaction (all or nothing).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::task::JoinHandle;
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

use crate::ident::{literal, Ident, QualifiedName};

/// Errors kept per writer; later ones are only counted ([`WorkloadReport::error_count`]).
const MAX_KEPT_ERRORS: usize = 50;
/// Pause between reconnection attempts after a writer lost its connection.
const RECONNECT_DELAY: Duration = Duration::from_millis(200);

/// The table under test, shaped `(id int PRIMARY KEY, val int, note text)`, and its ledger (the
/// same with `bigint`), with caller-chosen (possibly awkward) names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableSpec {
    pub table: QualifiedName,
    pub ledger: QualifiedName,
    pub id_col: Ident,
    pub val_col: Ident,
    pub note_col: Ident,
}

impl TableSpec {
    /// `schema.table` with columns `id`, `val`, `note` and the ledger `schema.<table>_ledger`.
    pub fn simple(schema: &str, table: &str) -> TableSpec {
        TableSpec {
            table: QualifiedName::new(schema, table),
            ledger: QualifiedName::new(schema, crate::ident::fit_name(table, "_ledger")),
            id_col: Ident::new("id"),
            val_col: Ident::new("val"),
            note_col: Ident::new("note"),
        }
    }

    /// `"id", "val", "note"` quoted, in table order.
    fn columns(&self) -> String {
        format!("{}, {}, {}", self.id_col, self.val_col, self.note_col)
    }
}

/// Creates the table and the ledger (and their schemas when missing) and fills both with ids
/// `1..=rows` (`val = id % 1000`, a ~100 byte `note`), then `ANALYZE`s them.
pub async fn create_tables(
    client: &Client,
    spec: &TableSpec,
    rows: i64,
) -> Result<(), tokio_postgres::Error> {
    for schema in [&spec.table.schema, &spec.ledger.schema] {
        let exists = client
            .query_opt(
                "SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = $1",
                &[&schema.as_str()],
            )
            .await?
            .is_some();
        if !exists {
            client
                .batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {schema}"))
                .await?;
        }
    }
    // The ledger is never rewritten, so it is created as wide as the widest shape a test
    // rewrites the table to: keys beyond 2^31 can be recorded after an `int` -> `bigint` swap.
    for (table, int) in [(&spec.table, "int"), (&spec.ledger, "bigint")] {
        client
            .batch_execute(&format!(
                "CREATE TABLE {table} ({} {int} PRIMARY KEY, {} {int}, {} text)",
                spec.id_col, spec.val_col, spec.note_col
            ))
            .await?;
    }
    let cols = spec.columns();
    client
        .execute(
            &format!(
                "INSERT INTO {} ({cols}) \
                 SELECT g, g % 1000, repeat(md5(g::text), 3) FROM generate_series(1, $1::int8) g",
                spec.table
            ),
            &[&rows],
        )
        .await?;
    client
        .batch_execute(&format!(
            "INSERT INTO {} ({cols}) SELECT {cols} FROM {}; ANALYZE {}, {}",
            spec.ledger, spec.table, spec.table, spec.ledger
        ))
        .await
}

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

/// What the writers did.
#[derive(Debug)]
pub struct WorkloadReport {
    /// Committed transactions.
    pub transactions: u64,
    /// Error messages (each names the writer, the kind of transaction and the key); at most
    /// [`MAX_KEPT_ERRORS`] per writer are kept.
    pub errors: Vec<String>,
    /// All errors, including those not kept in `errors`.
    pub error_count: u64,
    /// Latency of committed transactions as seen by the client, in microseconds.
    pub latency: Histogram<u64>,
    /// Committed transactions per kind.
    pub by_kind: BTreeMap<OpKind, u64>,
    /// From [`start`] to the end of [`Workload::stop`].
    pub elapsed: Duration,
}

impl WorkloadReport {
    fn empty() -> WorkloadReport {
        WorkloadReport {
            transactions: 0,
            errors: Vec::new(),
            error_count: 0,
            latency: new_histogram(),
            by_kind: BTreeMap::new(),
            elapsed: Duration::ZERO,
        }
    }

    fn merge(&mut self, w: WriterReport) {
        self.transactions += w.transactions;
        self.errors.extend(w.errors);
        self.error_count += w.error_count;
        // Same bounds on both sides: `add` cannot fail.
        let _ = self.latency.add(&w.latency);
        for (kind, n) in w.by_kind {
            *self.by_kind.entry(kind).or_default() += n;
        }
    }

    pub fn p50_ms(&self) -> f64 {
        self.latency.value_at_quantile(0.50) as f64 / 1000.0
    }

    pub fn p99_ms(&self) -> f64 {
        self.latency.value_at_quantile(0.99) as f64 / 1000.0
    }

    pub fn max_ms(&self) -> f64 {
        self.latency.max() as f64 / 1000.0
    }
}

impl fmt::Display for WorkloadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} transactions in {:.1}s, {} errors, latency p50 {:.2} ms p99 {:.2} ms max {:.2} ms",
            self.transactions,
            self.elapsed.as_secs_f64(),
            self.error_count,
            self.p50_ms(),
            self.p99_ms(),
            self.max_ms()
        )?;
        let kinds: Vec<String> = self
            .by_kind
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        if !kinds.is_empty() {
            write!(f, " ({})", kinds.join(", "))?;
        }
        Ok(())
    }
}

fn new_histogram() -> Histogram<u64> {
    // 1 us .. 1 h, 3 significant digits.
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")
}

struct WriterReport {
    transactions: u64,
    errors: Vec<String>,
    error_count: u64,
    latency: Histogram<u64>,
    by_kind: BTreeMap<OpKind, u64>,
}

/// The quoted names, rendered once per writer.
struct Sql {
    table: String,
    ledger: String,
    id: String,
    val: String,
    note: String,
    cols: String,
}

impl Sql {
    fn new(spec: &TableSpec) -> Sql {
        Sql {
            table: spec.table.to_string(),
            ledger: spec.ledger.to_string(),
            id: spec.id_col.to_string(),
            val: spec.val_col.to_string(),
            note: spec.note_col.to_string(),
            cols: spec.columns(),
        }
    }

    /// One statement for `target` (the table or the ledger).
    fn statement(&self, target: &str, op: &Op) -> String {
        let (id, val, note) = (&self.id, &self.val, &self.note);
        match op {
            Op::Insert {
                key,
                val: v,
                note: n,
            } => format!(
                "INSERT INTO {target} ({}) VALUES ({}, {}, {})",
                self.cols,
                lit(key),
                lit(v),
                literal(n)
            ),
            Op::UpdateVal { key, val: v } => {
                format!(
                    "UPDATE {target} SET {val} = {} WHERE {id} = {}",
                    lit(v),
                    lit(key)
                )
            }
            Op::NoteNull { key } => {
                format!(
                    "UPDATE {target} SET {note} = NULL WHERE {id} = {}",
                    lit(key)
                )
            }
            Op::NoteSet { key, note: n } => format!(
                "UPDATE {target} SET {note} = {} WHERE {id} = {}",
                literal(n),
                lit(key)
            ),
            Op::Delete { key } => format!("DELETE FROM {target} WHERE {id} = {}", lit(key)),
            Op::UpdateKey { key, new_key } => format!(
                "UPDATE {target} SET {id} = {} WHERE {id} = {}",
                lit(new_key),
                lit(key)
            ),
        }
    }

    /// The whole transaction: one simple-protocol message, run by the server as one implicit
    /// transaction.
    fn transaction(&self, op: &Op) -> String {
        format!(
            "{}; {}",
            self.statement(&self.table, op),
            self.statement(&self.ledger, op)
        )
    }
}

/// An untyped literal (`'42'`): it takes the column's current type (int, bigint, numeric...).
fn lit(n: impl ToString) -> String {
    literal(&n.to_string())
}

/// One planned transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Op {
    Insert { key: i64, val: i32, note: String },
    UpdateVal { key: i64, val: i32 },
    NoteNull { key: i64 },
    NoteSet { key: i64, note: String },
    Delete { key: i64 },
    UpdateKey { key: i64, new_key: i64 },
}

impl Op {
    fn kind(&self) -> OpKind {
        match self {
            Op::Insert { .. } => OpKind::Insert,
            Op::UpdateVal { .. } => OpKind::UpdateVal,
            Op::NoteNull { .. } => OpKind::NoteNull,
            Op::NoteSet { .. } => OpKind::NoteSet,
            Op::Delete { .. } => OpKind::Delete,
            Op::UpdateKey { .. } => OpKind::UpdateKey,
        }
    }

    fn key(&self) -> i64 {
        match self {
            Op::Insert { key, .. }
            | Op::UpdateVal { key, .. }
            | Op::NoteNull { key }
            | Op::NoteSet { key, .. }
            | Op::Delete { key }
            | Op::UpdateKey { key, .. } => *key,
        }
    }
}

/// The keys one writer owns and believes live, with O(1) random pick and removal.
struct Keys {
    live: Vec<i64>,
    /// Fresh keys handed out so far.
    counter: i64,
}

struct Writer {
    index: usize,
    writers: usize,
    conninfo: String,
    spec: TableSpec,
    sql: Sql,
    initial_rows: i64,
    interval: Option<Duration>,
    stop: Arc<AtomicBool>,
    transactions: Arc<AtomicU64>,
    errors: Arc<AtomicU64>,
}

impl Writer {
    async fn run(self) -> WriterReport {
        let mut report = WriterReport {
            transactions: 0,
            errors: Vec::new(),
            error_count: 0,
            latency: new_histogram(),
            by_kind: BTreeMap::new(),
        };
        let mut rng = StdRng::from_entropy();
        let mut keys = Keys {
            live: (1..=self.initial_rows)
                .filter(|k| owner_of(*k, self.initial_rows, self.writers) == self.index)
                .collect(),
            counter: 0,
        };
        let mut client: Option<Client> = None;
        let mut reconnected = false;
        let mut next = tokio::time::Instant::now();
        while !self.stop.load(Ordering::Relaxed) {
            if let Some(interval) = self.interval {
                let now = tokio::time::Instant::now();
                // Do not burst to catch up after a stall (e.g. writers blocked by a lock).
                next = (next + interval).max(now - interval);
                tokio::time::sleep_until(next).await;
            }
            let c = match &client {
                Some(c) if !c.is_closed() => c,
                _ => match self.connect(&mut report).await {
                    Some(c) => {
                        if reconnected {
                            // The last transaction's outcome is unknown; ask the ledger.
                            if let Err(e) = self.reload_keys(&c, &mut keys).await {
                                self.error(&mut report, format!("reloading keys: {e:#}"));
                            }
                        }
                        reconnected = true;
                        client.insert(c)
                    }
                    None => break,
                },
            };
            let op = self.plan(&mut rng, &mut keys);
            let sql = self.sql.transaction(&op);
            let started = Instant::now();
            let result = c.simple_query(&sql).await;
            let micros = started.elapsed().as_micros() as u64;
            match result {
                Ok(messages) => {
                    let counts: Vec<u64> = messages
                        .iter()
                        .filter_map(|m| match m {
                            SimpleQueryMessage::CommandComplete(n) => Some(*n),
                            _ => None,
                        })
                        .collect();
                    // The ledger is the truth about our own keys (nobody else writes it).
                    if counts.get(1) == Some(&1) {
                        keys.apply(&op);
                    }
                    if counts != [1, 1] {
                        self.error(
                            &mut report,
                            format!(
                                "writer {}: {} of key {} changed {:?} rows (table, ledger), \
                                 expected [1, 1]",
                                self.index,
                                op.kind(),
                                op.key(),
                                counts
                            ),
                        );
                    }
                    report.latency.saturating_record(micros.max(1));
                    report.transactions += 1;
                    *report.by_kind.entry(op.kind()).or_default() += 1;
                    self.transactions.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    self.error(
                        &mut report,
                        format!(
                            "writer {}: {} of key {} failed: {}",
                            self.index,
                            op.kind(),
                            op.key(),
                            describe_error(&e)
                        ),
                    );
                    if c.is_closed() {
                        client = None;
                    }
                }
            }
        }
        report
    }

    fn plan(&self, rng: &mut StdRng, keys: &mut Keys) -> Op {
        let total: u32 = OpKind::ALL.iter().map(|k| k.weight()).sum();
        let mut pick = rng.gen_range(0..total);
        let mut kind = OpKind::Insert;
        for k in OpKind::ALL {
            if pick < k.weight() {
                kind = k;
                break;
            }
            pick -= k.weight();
        }
        if keys.live.is_empty() {
            kind = OpKind::Insert;
        }
        let existing = |rng: &mut StdRng, keys: &Keys| keys.live[rng.gen_range(0..keys.live.len())];
        let note =
            |rng: &mut StdRng| format!("{:032x}{:032x}", rng.gen::<u128>(), rng.gen::<u128>());
        match kind {
            OpKind::Insert => {
                let key = self.fresh(keys);
                Op::Insert {
                    key,
                    val: rng.gen_range(0..1_000_000),
                    note: note(rng),
                }
            }
            OpKind::UpdateVal => {
                let key = existing(rng, keys);
                Op::UpdateVal {
                    key,
                    val: rng.gen_range(0..1_000_000),
                }
            }
            OpKind::NoteNull => Op::NoteNull {
                key: existing(rng, keys),
            },
            OpKind::NoteSet => {
                let key = existing(rng, keys);
                Op::NoteSet {
                    key,
                    note: note(rng),
                }
            }
            OpKind::Delete => Op::Delete {
                key: existing(rng, keys),
            },
            OpKind::UpdateKey => {
                let key = existing(rng, keys);
                Op::UpdateKey {
                    key,
                    new_key: self.fresh(keys),
                }
            }
        }
    }

    fn fresh(&self, keys: &mut Keys) -> i64 {
        let key = fresh_key(self.initial_rows, self.writers, self.index, keys.counter);
        keys.counter += 1;
        key
    }

    fn error(&self, report: &mut WriterReport, message: String) {
        report.error_count += 1;
        self.errors.fetch_add(1, Ordering::Relaxed);
        if report.errors.len() < MAX_KEPT_ERRORS {
            report.errors.push(message);
        }
    }

    /// Connects, retrying until it works or the workload is stopped; every failure is recorded.
    async fn connect(&self, report: &mut WriterReport) -> Option<Client> {
        while !self.stop.load(Ordering::Relaxed) {
            match tokio_postgres::connect(&self.conninfo, NoTls).await {
                Ok((client, connection)) => {
                    tokio::spawn(connection);
                    return Some(client);
                }
                Err(e) => {
                    self.error(
                        report,
                        format!(
                            "writer {}: connect failed: {}",
                            self.index,
                            describe_error(&e)
                        ),
                    );
                    tokio::time::sleep(RECONNECT_DELAY).await;
                }
            }
        }
        None
    }

    /// Reads this writer's live keys back from the ledger (after a reconnect, the outcome of
    /// the transaction in flight is unknown).
    async fn reload_keys(
        &self,
        client: &Client,
        keys: &mut Keys,
    ) -> Result<(), tokio_postgres::Error> {
        let rows = client
            .query(
                &format!(
                    "SELECT {}::int8 FROM {}",
                    self.spec.id_col, self.spec.ledger
                ),
                &[],
            )
            .await?;
        let mut live = Vec::with_capacity(rows.len());
        for r in &rows {
            let k = r.try_get::<_, i64>(0)?;
            if owner_of(k, self.initial_rows, self.writers) == self.index {
                live.push(k);
            }
        }
        keys.live = live;
        Ok(())
    }
}

impl Keys {
    fn remove(&mut self, key: i64) {
        if let Some(pos) = self.live.iter().position(|k| *k == key) {
            self.live.swap_remove(pos);
        }
    }

    fn apply(&mut self, op: &Op) {
        match op {
            Op::Insert { key, .. } => self.live.push(*key),
            Op::Delete { key } => self.remove(*key),
            Op::UpdateKey { key, new_key } => {
                self.remove(*key);
                self.live.push(*new_key);
            }
            Op::UpdateVal { .. } | Op::NoteNull { .. } | Op::NoteSet { .. } => {}
        }
    }
}

/// An error with its SQLSTATE and server detail when there is one.
fn describe_error(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!(
            "{} ({}){}",
            db.message(),
            db.code().code(),
            db.detail()
                .map(|d| format!(" detail: {d}"))
                .unwrap_or_default()
        ),
        None => format!("{e:#}"),
    }
}

/// How the table and the ledger differ.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompareResult {
    pub table_rows: i64,
    pub ledger_rows: i64,
    /// Rows of the table that the ledger does not have (`EXCEPT ALL`).
    pub only_in_table: i64,
    /// Rows of the ledger that the table does not have.
    pub only_in_ledger: i64,
    /// Up to 10 of each, as row text.
    pub sample_only_in_table: Vec<String>,
    pub sample_only_in_ledger: Vec<String>,
}

impl CompareResult {
    pub fn is_identical(&self) -> bool {
        self.only_in_table == 0 && self.only_in_ledger == 0 && self.table_rows == self.ledger_rows
    }
}

impl fmt::Display for CompareResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "table {} rows, ledger {} rows; {} only in table {:?}; {} only in ledger {:?}",
            self.table_rows,
            self.ledger_rows,
            self.only_in_table,
            self.sample_only_in_table,
            self.only_in_ledger,
            self.sample_only_in_ledger
        )
    }
}

/// Compares the table with the ledger row by row (`EXCEPT ALL` both ways). Columns are compared
/// as text, so a rewrite that changed a column's type (`int` -> `bigint`) but kept its values
/// compares equal.
pub async fn compare(
    client: &Client,
    spec: &TableSpec,
) -> Result<CompareResult, tokio_postgres::Error> {
    let select = |table: &QualifiedName| {
        format!(
            "SELECT {id}::text AS id, {val}::text AS val, {note}::text AS note FROM {table}",
            id = spec.id_col,
            val = spec.val_col,
            note = spec.note_col
        )
    };
    let sql = format!(
        "WITH t AS MATERIALIZED ({}), l AS MATERIALIZED ({}), \
              tl AS MATERIALIZED (SELECT * FROM t EXCEPT ALL SELECT * FROM l), \
              lt AS MATERIALIZED (SELECT * FROM l EXCEPT ALL SELECT * FROM t) \
         SELECT (SELECT count(*) FROM t), (SELECT count(*) FROM l), \
                (SELECT count(*) FROM tl), (SELECT count(*) FROM lt), \
                ARRAY(SELECT row(tl.*)::text FROM tl ORDER BY 1 LIMIT 10), \
                ARRAY(SELECT row(lt.*)::text FROM lt ORDER BY 1 LIMIT 10)",
        select(&spec.table),
        select(&spec.ledger)
    );
    let row = client.query_one(&sql, &[]).await?;
    Ok(CompareResult {
        table_rows: row.try_get(0)?,
        ledger_rows: row.try_get(1)?,
        only_in_table: row.try_get(2)?,
        only_in_ledger: row.try_get(3)?,
        sample_only_in_table: row.try_get(4)?,
        sample_only_in_ledger: row.try_get(5)?,
    })
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

    #[test]
    fn statements_quote_names_and_render_values_as_untyped_literals() {
        let spec = TableSpec {
            table: QualifiedName::new("App", "Weird \"Name\" tbl"),
            ledger: QualifiedName::new("App", "ledger"),
            id_col: Ident::new("Id Col"),
            val_col: Ident::new("select"),
            note_col: Ident::new("größe"),
        };
        let sql = Sql::new(&spec);
        assert_eq!(
            sql.transaction(&Op::UpdateKey { key: 7, new_key: 9 }),
            "UPDATE \"App\".\"Weird \"\"Name\"\" tbl\" SET \"Id Col\" = '9' WHERE \"Id Col\" = '7'; \
             UPDATE \"App\".\"ledger\" SET \"Id Col\" = '9' WHERE \"Id Col\" = '7'"
        );
        assert_eq!(
            sql.statement(
                "t",
                &Op::Insert {
                    key: 1,
                    val: 2,
                    note: "it's".into()
                }
            ),
            "INSERT INTO t (\"Id Col\", \"select\", \"größe\") VALUES ('1', '2', 'it''s')"
        );
        assert_eq!(
            sql.statement("t", &Op::NoteNull { key: 3 }),
            "UPDATE t SET \"größe\" = NULL WHERE \"Id Col\" = '3'"
        );
        assert_eq!(
            sql.statement("t", &Op::Delete { key: 3 }),
            "DELETE FROM t WHERE \"Id Col\" = '3'"
        );
    }

    #[test]
    fn keys_follow_committed_operations() {
        let mut keys = Keys {
            live: vec![1, 2, 3],
            counter: 0,
        };
        keys.apply(&Op::Delete { key: 2 });
        keys.apply(&Op::UpdateKey {
            key: 1,
            new_key: 10,
        });
        keys.apply(&Op::Insert {
            key: 11,
            val: 0,
            note: String::new(),
        });
        let mut live = keys.live.clone();
        live.sort();
        assert_eq!(live, [3, 10, 11]);
    }

    #[test]
    fn simple_spec_names_the_ledger_after_the_table() {
        let spec = TableSpec::simple("public", "accounts");
        assert_eq!(spec.ledger.human(), "public.accounts_ledger");
        assert_eq!(spec.id_col.as_str(), "id");
    }
}
