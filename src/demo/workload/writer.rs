//! One writer of the workload: the statements it sends (table and ledger in one simple-protocol
//! message), the keys it owns, reconnects, and how it records errors. Part of the workload
//! (`super`).

use super::report::{new_histogram, WriterReport};
use super::*;

/// The quoted names, rendered once per writer.
pub(super) struct Sql {
    table: String,
    ledger: String,
    id: String,
    val: String,
    note: String,
    cols: String,
}

impl Sql {
    pub(super) fn new(spec: &TableSpec) -> Sql {
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
    pub(super) fn statement(&self, target: &str, op: &Op) -> String {
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
    pub(super) fn transaction(&self, op: &Op) -> String {
        format!(
            "{}; {}",
            self.statement(&self.table, op),
            self.statement(&self.ledger, op)
        )
    }
}

/// An untyped literal (`'42'`): it takes the column's current type (int, bigint, numeric...).
pub(super) fn lit(n: impl ToString) -> String {
    literal(&n.to_string())
}

/// One planned transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Op {
    Insert { key: i64, val: i32, note: String },
    UpdateVal { key: i64, val: i32 },
    NoteNull { key: i64 },
    NoteSet { key: i64, note: String },
    Delete { key: i64 },
    UpdateKey { key: i64, new_key: i64 },
}

impl Op {
    pub(super) fn kind(&self) -> OpKind {
        match self {
            Op::Insert { .. } => OpKind::Insert,
            Op::UpdateVal { .. } => OpKind::UpdateVal,
            Op::NoteNull { .. } => OpKind::NoteNull,
            Op::NoteSet { .. } => OpKind::NoteSet,
            Op::Delete { .. } => OpKind::Delete,
            Op::UpdateKey { .. } => OpKind::UpdateKey,
        }
    }

    pub(super) fn key(&self) -> i64 {
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
pub(super) struct Keys {
    live: Vec<i64>,
    /// Fresh keys handed out so far.
    counter: i64,
}

pub(super) struct Writer {
    pub(super) index: usize,
    pub(super) writers: usize,
    pub(super) conninfo: String,
    pub(super) spec: TableSpec,
    pub(super) sql: Sql,
    pub(super) initial_rows: i64,
    pub(super) interval: Option<Duration>,
    pub(super) stop: Arc<AtomicBool>,
    pub(super) transactions: Arc<AtomicU64>,
    pub(super) errors: Arc<AtomicU64>,
}

impl Writer {
    pub(super) async fn run(self) -> WriterReport {
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

    pub(super) fn plan(&self, rng: &mut StdRng, keys: &mut Keys) -> Op {
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

    pub(super) fn fresh(&self, keys: &mut Keys) -> i64 {
        let key = fresh_key(self.initial_rows, self.writers, self.index, keys.counter);
        keys.counter += 1;
        key
    }

    pub(super) fn error(&self, report: &mut WriterReport, message: String) {
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
    pub(super) fn remove(&mut self, key: i64) {
        if let Some(pos) = self.live.iter().position(|k| *k == key) {
            self.live.swap_remove(pos);
        }
    }

    pub(super) fn apply(&mut self, op: &Op) {
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
pub(super) fn describe_error(e: &tokio_postgres::Error) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::ident::{Ident, QualifiedName};

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
}
