//! The sample oracle (issue 13, "An oracle inside the tool"): before anything is copied, the
//! user's real `ALTER TABLE` is applied to a copy of sampled rows of the table, and the result is
//! compared, column by column and row by row, with what the column mapping gives the same rows
//! through the copier's binary COPY pipe. Verification through the mapping cannot catch a wrong
//! mapping (it reads both sides through it); this can.
//!
//! How: inside a savepoint of the shadow transaction (`shadow::build_in`, also what `plan` runs),
//! 1. a clone of the table (`LIKE` it, with defaults, generated and identity columns, indexes and
//!    check constraints, plus a row-number column) is filled with a bounded sample: up to 1,000
//!    rows read with `TABLESAMPLE SYSTEM` at a percentage derived from `reltuples`, so a 50 GB
//!    table reads a few dozen pages, plus the first and the last row in key order;
//! 2. a second clone holds "edge" rows: copies of sampled rows with a NULL put into each nullable
//!    column (each NULL in its own savepoint, so one a constraint refuses is only left out);
//! 3. each clone's rows go through the mapping exactly as the copy sends them
//!    (`copier::copy_statements`, binary COPY out into memory, binary COPY in) into a table
//!    `LIKE` the shadow, so type modifiers applied by receive functions count too — twice for the
//!    sample, to tell volatile expressions (which cannot be compared) from wrong ones;
//! 4. the user's ALTER runs on each clone (extended protocol, one statement, as on the shadow);
//! 5. the `::text` forms (exact, and defined for types without equality) of every shadow column
//!    are compared, rows matched by the row number.
//!
//! Which columns are compared: every column the copy writes and every generated column. Not
//! compared, and said so: new columns whose default is volatile or that are identity columns
//! (each row written gets its own value), and new columns filled by `--map` (the ALTER alone
//! gives them their default; the `--map` is the user's word on how to fill them). A `--map` on a
//! column that descends from an old column *is* compared: the ALTER says what that column holds
//! (its old value, cast or `USING`), and a `--map` that contradicts it is refused; a change of
//! values belongs in the ALTER's `USING`.
//!
//! Invariants kept here (DESIGN.md, "The ALTER means what PostgreSQL says it means"; "Refuse
//! before creating anything"): a difference on any sampled row, a mapping that fails where the
//! ALTER does not, or an ALTER that fails on the sampled rows refuses the run (exit 3) before
//! anything is created; and the check changes nothing: everything it creates lives in a
//! savepoint that is always rolled back (its only lasting trace: sequence values a volatile
//! default of the ALTER draws, as any rolled-back insert leaves gaps). What the check cannot do
//! on its clone (an ALTER naming a foreign key, which the clone does not carry, to take no lock
//! on other tables) it reports as not done, and the run goes on as before it existed.

use crate::catalog;
use crate::error::{DbContext, Error, Kind, Result};
use crate::ident::{fit_name, join_idents, Ident, QualifiedName};
use crate::plan::{ColumnSource, MappedColumn, Plan};
use crate::preflight::Source;
use bytes::Bytes;
use futures_util::{pin_mut, SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::time::Instant;
use tokio_postgres::Transaction;

/// The most rows sampled from the table.
pub const MAX_ROWS: i64 = 1000;
/// Roughly the most bytes of table the sample holds (each clone is read into memory once).
const MAX_SAMPLE_BYTES: f64 = 64.0 * 1024.0 * 1024.0;
/// Below this many heap pages the sample is the first rows of a plain scan.
const SMALL_TABLE_PAGES: i64 = 128;

/// What the sample check did, for `plan` (in full) and `run` (one line).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct SampleCheck {
    /// False when the check could not be carried out (the reason is in `notes`).
    pub done: bool,
    /// Rows of the table that went through both the ALTER and the mapping.
    pub rows: u64,
    /// Rows with NULLs put in that went through both.
    pub edge_rows: u64,
    /// Columns set to NULL in those rows.
    pub edge_nulls: u64,
    /// Shadow columns compared.
    pub compared: Vec<String>,
    /// Shadow columns not compared, and why.
    pub skipped: Vec<SkippedColumn>,
    pub notes: Vec<String>,
    pub millis: f64,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SkippedColumn {
    pub column: String,
    pub reason: String,
}

impl SampleCheck {
    /// One line for `run`.
    pub fn summary(&self) -> String {
        let ms = self.millis.round();
        if !self.done {
            return format!(
                "sample check NOT DONE ({ms} ms): {}; the mapping is not checked against PostgreSQL's own ALTER",
                self.notes.join("; ")
            );
        }
        if self.rows == 0 {
            return format!("sample check: the table has no rows, nothing to compare ({ms} ms)");
        }
        let mut s = format!(
            "sample check: PostgreSQL's own ALTER and the mapping agree on {} sampled row(s)",
            self.rows
        );
        if self.edge_rows > 0 {
            s.push_str(&format!(
                " and {} row(s) with {} NULL(s) put in",
                self.edge_rows, self.edge_nulls
            ));
        }
        s.push_str(&format!(
            ", {} column(s) compared ({ms} ms)",
            self.compared.len()
        ));
        if !self.skipped.is_empty() {
            // Grouped by reason, in the order the reasons first come.
            let mut groups: Vec<(&str, Vec<&str>)> = Vec::new();
            for c in &self.skipped {
                match groups.iter_mut().find(|(r, _)| *r == c.reason) {
                    Some((_, cols)) => cols.push(&c.column),
                    None => groups.push((&c.reason, vec![&c.column])),
                }
            }
            let list: Vec<String> = groups
                .iter()
                .map(|(reason, cols)| format!("{} ({reason})", cols.join(", ")))
                .collect();
            s.push_str(&format!("; not compared: {}", list.join("; ")));
        }
        for n in &self.notes {
            s.push_str(&format!("; {n}"));
        }
        s
    }
}

/// Applies `alter` to sampled rows of the table and compares the result with what `plan`'s
/// mapping gives them. Call it inside the transaction that created `plan.shadow` (the shadow
/// must exist, with the ALTER applied). `Err` with [`Kind::Refused`] when they differ or the
/// ALTER fails on the rows; lock timeouts and lost connections are returned as they are; any
/// other failure of the check itself gives a report with `done: false`.
pub async fn check_sample(
    tx: &Transaction<'_>,
    src: &Source,
    plan: &Plan,
    alter: Option<&str>,
) -> Result<SampleCheck> {
    let started = Instant::now();
    tx.batch_execute("SAVEPOINT hotswap_oracle")
        .await
        .ctx("starting the sample check")?;
    let result = check_in(tx, src, plan, alter).await;
    // Always rolled back: nothing the check created outlives it.
    let undone = tx
        .batch_execute("ROLLBACK TO SAVEPOINT hotswap_oracle; RELEASE SAVEPOINT hotswap_oracle")
        .await
        .ctx("rolling the sample check back");
    let mut report = match result {
        Ok(r) => r,
        Err(e) if e.kind() == Kind::Refused || class(&e) == Class::Transient => return Err(e),
        Err(e) => {
            tracing::warn!(error = %e, "the sample check could not be done");
            SampleCheck {
                done: false,
                notes: vec![format!("it failed: {}", e.message())],
                ..Default::default()
            }
        }
    };
    undone?;
    report.millis = started.elapsed().as_secs_f64() * 1000.0;
    tracing::debug!(
        rows = report.rows,
        edge_rows = report.edge_rows,
        columns = report.compared.len(),
        ms = report.millis,
        done = report.done,
        "sample check"
    );
    Ok(report)
}

/// How a failure inside the check is treated.
#[derive(Debug, PartialEq, Eq)]
enum Class {
    /// The rows themselves: a data exception, a constraint they break, an error raised by a
    /// function over them.
    Data,
    /// Not about the check: lock timeout, cancel, connection, serialization, resources.
    Transient,
    Other,
}

fn class(e: &Error) -> Class {
    // No SQLSTATE: the check's own error; a lost connection shows when the savepoint is
    // rolled back.
    let Some(code) = e.code().map(|c| c.code()) else {
        return Class::Other;
    };
    let starts = |ps: &[&str]| ps.iter().any(|p| code.starts_with(p));
    if starts(&["22", "23", "P0", "2F", "38", "39", "44"]) {
        Class::Data
    } else if code == "55P03" || starts(&["57", "08", "40", "53", "58", "XX"]) {
        Class::Transient
    } else {
        Class::Other
    }
}

/// Runs `f` inside a savepoint: kept when it succeeds, undone when it fails. The outer `Result`
/// fails only when the savepoint itself does.
async fn step<T>(tx: &Transaction<'_>, f: impl Future<Output = Result<T>>) -> Result<Result<T>> {
    tx.batch_execute("SAVEPOINT hotswap_oracle_step")
        .await
        .ctx("sample check: starting a step")?;
    let r = f.await;
    let end = if r.is_ok() {
        "RELEASE SAVEPOINT hotswap_oracle_step"
    } else {
        "ROLLBACK TO SAVEPOINT hotswap_oracle_step; RELEASE SAVEPOINT hotswap_oracle_step"
    };
    tx.batch_execute(end)
        .await
        .ctx("sample check: ending a step")?;
    Ok(r)
}

/// One difference: the first row (in sample order) where `column` differs, and how many do.
#[derive(Debug)]
struct Diff {
    column: Ident,
    rows: i64,
    key: String,
    postgres: Option<String>,
    mapped: Option<String>,
}

/// What happened to one clone.
enum Trial {
    /// PostgreSQL's ALTER failed on the rows (a data error).
    AlterFailed(Error),
    /// The ALTER could not be applied to the clone for a reason that is not the rows.
    NotApplicable(Error),
    /// The ALTER succeeded, the mapping failed on the rows.
    MappingFailed(Error),
    Compared(Vec<Diff>),
}

/// The relations of the check: the clones, and the tables the mapping writes into.
struct Names {
    sample: QualifiedName,
    edges: QualifiedName,
    mapped: QualifiedName,
    mapped_again: QualifiedName,
    mapped_edges: QualifiedName,
    /// The row-number column (in the clones and the mapped tables).
    row: Ident,
}

async fn check_in(
    tx: &Transaction<'_>,
    src: &Source,
    plan: &Plan,
    alter: Option<&str>,
) -> Result<SampleCheck> {
    let mut report = SampleCheck {
        done: true,
        ..Default::default()
    };
    let names = names(tx, src, plan).await?;

    // Which shadow columns can be compared.
    let shadow_cols = catalog::columns(tx, plan.shadow_oid).await?;
    let defaults = tx
        .query(
            include_str!("../sql/oracle_defaults.sql"),
            &[&plan.shadow_oid],
        )
        .await
        .ctx("sample check: reading the shadow's defaults")?;
    let mut compared: Vec<Ident> = Vec::new();
    // New columns whose default draws from a sequence: their defaults are dropped in the tables
    // the mapping writes into (see `create_mapped`).
    let mut sequence_defaults: Vec<Ident> = Vec::new();
    for c in &plan.columns {
        let reason = match &c.source {
            ColumnSource::Mapped { .. } if c.origin.is_none() => {
                Some("new column filled by --map: the ALTER alone gives it its default".to_string())
            }
            ColumnSource::Default => defaults
                .iter()
                .find(|r| r.try_get::<_, String>(0).ok().as_deref() == Some(c.column.as_str()))
                .and_then(|r| {
                    let identity: bool = r.try_get(1).unwrap_or(false);
                    let volatile: bool = r.try_get(2).unwrap_or(false);
                    if identity {
                        Some("identity column: numbered in the order rows are written".into())
                    } else if volatile {
                        let draws = shadow_cols.iter().any(|s| {
                            s.name == c.column
                                && s.default_expr
                                    .as_deref()
                                    .is_some_and(|d| d.contains("nextval("))
                        });
                        if draws {
                            sequence_defaults.push(c.column.clone());
                        }
                        Some("volatile default: every row written gets its own value".into())
                    } else {
                        None
                    }
                }),
            _ => None,
        };
        match reason {
            Some(reason) => report.skipped.push(SkippedColumn {
                column: c.column.as_str().to_string(),
                reason,
            }),
            None => compared.push(c.column.clone()),
        }
    }

    // The sample.
    create_clone(tx, src, &names.sample, &names.row).await?;
    let rows = fill_sample(tx, src, &names.sample, &names.row).await?;
    report.rows = rows;
    if rows == 0 {
        report.compared = compared.iter().map(|c| c.as_str().to_string()).collect();
        return Ok(report);
    }
    add_checks(tx, src, &names.sample).await?;

    // The edge rows: a NULL in each nullable column whose new column stays nullable (a NULL
    // where the ALTER makes the column NOT NULL only shows that the ALTER refuses NULLs).
    let edge_cols: Vec<&Ident> = src
        .columns
        .iter()
        .filter(|c| !c.not_null && !c.is_generated() && !src.key.contains(&c.name))
        .filter(|c| {
            plan.columns
                .iter()
                .find(|m| m.origin.as_ref() == Some(&c.name))
                .and_then(|m| shadow_cols.iter().find(|s| s.name == m.column))
                .map(|s| !s.not_null)
                .unwrap_or(true)
        })
        .map(|c| &c.name)
        .collect();
    if !edge_cols.is_empty() {
        let n = (edge_cols.len() as u64).min(rows) as i64;
        create_clone(tx, src, &names.edges, &names.row).await?;
        let cols = insert_columns(src);
        tx.execute(
            &format!(
                "INSERT INTO {e} ({cols}, {r}) OVERRIDING SYSTEM VALUE \
                 SELECT {cols}, {r} FROM {s} WHERE {r} <= $1",
                e = names.edges,
                s = names.sample,
                r = names.row
            ),
            &[&n],
        )
        .await
        .ctx("sample check: filling the edge rows")?;
        add_checks(tx, src, &names.edges).await?;
        let mut nulled_rows = std::collections::BTreeSet::new();
        for (i, c) in edge_cols.iter().enumerate() {
            let row = (i as i64 % n) + 1;
            let sql = format!(
                "UPDATE {} SET {c} = NULL WHERE {} = $1",
                names.edges, names.row
            );
            let r = step(tx, async {
                tx.execute(&sql, &[&row])
                    .await
                    .ctx("sample check: putting a NULL into an edge row")
            })
            .await?;
            match r {
                Ok(_) => {
                    report.edge_nulls += 1;
                    nulled_rows.insert(row);
                }
                // A constraint of the table refuses this NULL: the table cannot hold it either.
                Err(e) if class(&e) == Class::Data => {}
                Err(e) => return Err(e),
            }
        }
        if report.edge_nulls > 0 {
            // Only the rows that got a NULL; the others are copies of sampled rows.
            let keep: Vec<i64> = nulled_rows.into_iter().collect();
            tx.execute(
                &format!("DELETE FROM {} WHERE {} <> ALL($1)", names.edges, names.row),
                &[&keep],
            )
            .await
            .ctx("sample check: keeping the edge rows")?;
            report.edge_rows = keep.len() as u64;
        }
    }

    // The tables the mapping writes into, shaped like the shadow.
    let mut mapped_tables = vec![&names.mapped, &names.mapped_again];
    if report.edge_rows > 0 {
        mapped_tables.push(&names.mapped_edges);
    }
    for m in mapped_tables {
        create_mapped(tx, plan, m, &names.row, &sequence_defaults).await?;
    }

    // The sample: the mapping twice (to tell volatile expressions), then the ALTER.
    let mapped = step(tx, async {
        map_rows(tx, plan, &names.sample, &names.mapped, &names.row).await?;
        map_rows(tx, plan, &names.sample, &names.mapped_again, &names.row).await
    })
    .await?;
    if mapped.is_ok() {
        let unstable = differences(
            tx,
            &names.mapped,
            &names.mapped_again,
            &names.row,
            &compared,
            &key_names(plan),
        )
        .await?;
        for d in unstable {
            compared.retain(|c| c != &d.column);
            report.skipped.push(SkippedColumn {
                column: d.column.as_str().to_string(),
                reason: "its value differs between two evaluations over the same row (volatile)"
                    .into(),
            });
        }
    }
    report.compared = compared.iter().map(|c| c.as_str().to_string()).collect();
    let sample_trial = trial(
        tx,
        plan,
        alter,
        &names.sample,
        &names.mapped,
        &names.row,
        mapped,
        &compared,
    )
    .await?;
    match sample_trial {
        Trial::Compared(diffs) if diffs.is_empty() => {}
        Trial::Compared(diffs) => return Err(differ(plan, &diffs, rows, None)),
        Trial::AlterFailed(e) => return Err(alter_fails(plan, &names.sample, rows, &e)),
        Trial::MappingFailed(e) => return Err(mapping_fails(plan, rows, None, &e)),
        Trial::NotApplicable(e) => {
            report.done = false;
            report.notes.push(format!(
                "the ALTER cannot be applied to the sample's copy of the table: {}",
                e.message()
            ));
            return Ok(report);
        }
    }

    // The edge rows.
    if report.edge_rows > 0 {
        let mapped = step(
            tx,
            map_rows(tx, plan, &names.edges, &names.mapped_edges, &names.row),
        )
        .await?;
        let edges = trial(
            tx,
            plan,
            alter,
            &names.edges,
            &names.mapped_edges,
            &names.row,
            mapped,
            &compared,
        )
        .await?;
        let nulled = edge_cols
            .iter()
            .map(|c| c.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        match edges {
            Trial::Compared(diffs) if diffs.is_empty() => {}
            Trial::Compared(diffs) => {
                return Err(differ(plan, &diffs, report.edge_rows, Some(&nulled)))
            }
            Trial::MappingFailed(e) => {
                return Err(mapping_fails(plan, report.edge_rows, Some(&nulled), &e))
            }
            // PostgreSQL refuses these made-up rows (a CHECK that NULLs fail through a USING,
            // say): the table may hold none, so nothing is refused; said, and left out.
            Trial::AlterFailed(e) | Trial::NotApplicable(e) => {
                report.notes.push(format!(
                    "the rows with NULLs put in were left out: the ALTER fails on them ({})",
                    e.message()
                ));
                report.edge_rows = 0;
                report.edge_nulls = 0;
            }
        }
    }
    Ok(report)
}

/// Picks the check's relation names and its row-number column. Each name begins with
/// `hs<backend pid>_`, so concurrent checks (the sample sessions of `plan`) never pick the same
/// uncommitted name, nor do the index names PostgreSQL derives from them.
async fn names(tx: &Transaction<'_>, src: &Source, plan: &Plan) -> Result<Names> {
    let pid: i32 = tx
        .query_one("SELECT pg_catalog.pg_backend_pid()", &[])
        .await
        .ctx("sample check: reading the backend pid")?
        .try_get(0)
        .ctx("sample check: reading the backend pid")?;
    let table = &plan.source;
    let mut taken = Vec::new();
    let mut pick = |what: &str| {
        let base = format!("hs{pid}_{what}_{}", table.name.as_str());
        let name = fit_name(&base, "");
        taken.push(name.clone());
        name
    };
    let (sample, edges, mapped, mapped_again, mapped_edges) = (
        pick("sample"),
        pick("edges"),
        pick("mapped"),
        pick("mapped2"),
        pick("mapped_edges"),
    );
    for n in &taken {
        if catalog::relation_exists(tx, &table.schema, n).await? {
            return Err(Error::failed(format!(
                "a relation {}.{n} exists; the sample check uses that name",
                table.schema.as_str()
            )));
        }
    }
    let used = |name: &str| {
        src.columns.iter().any(|c| c.name.as_str() == name)
            || plan.columns.iter().any(|c| c.column.as_str() == name)
    };
    let row = (1..)
        .map(|n| {
            if n == 1 {
                "hotswap_sample_row".to_string()
            } else {
                format!("hotswap_sample_row{n}")
            }
        })
        .find(|n| !used(n))
        .unwrap_or_default();
    Ok(Names {
        sample: table.sibling(sample),
        edges: table.sibling(edges),
        mapped: table.sibling(mapped),
        mapped_again: table.sibling(mapped_again),
        mapped_edges: table.sibling(mapped_edges),
        row: Ident::new(row),
    })
}

/// A table like the source for the ALTER to act on, with the row number. Indexes come along
/// (the ALTER rebuilds them, and a unique one over rows it changes can fail, as on the table);
/// check constraints are added after the rows (see [`add_checks`]). Foreign keys are left out,
/// so the check takes no lock on other tables. A regular table, not a temporary one, so that an
/// ALTER adding a foreign key to a permanent table or changing the table's persistence applies.
async fn create_clone(
    tx: &Transaction<'_>,
    src: &Source,
    clone: &QualifiedName,
    row: &Ident,
) -> Result<()> {
    let unlogged = if src.table.persistence == "u" {
        "UNLOGGED "
    } else {
        ""
    };
    tx.batch_execute(&format!(
        "CREATE {unlogged}TABLE {clone} (LIKE {} INCLUDING DEFAULTS INCLUDING GENERATED \
         INCLUDING IDENTITY INCLUDING INDEXES, {row} int8 NOT NULL)",
        src.table.name
    ))
    .await
    .ctx(format_args!(
        "sample check: creating the sample table {}",
        clone.human()
    ))
}

/// The source's columns an INSERT writes (generated ones are computed).
fn insert_columns(src: &Source) -> String {
    join_idents(
        src.columns
            .iter()
            .filter(|c| !c.is_generated())
            .map(|c| &c.name),
    )
}

/// The sample's share of the table for `TABLESAMPLE SYSTEM`, in percent, or None to read the
/// first rows of a plain scan (small tables). Aims at twice `cap` rows (the LIMIT takes `cap`),
/// and at least 8 pages.
fn sample_percent(reltuples: f64, heap_bytes: i64, cap: i64) -> Option<f64> {
    let pages = heap_bytes / 8192;
    if pages <= SMALL_TABLE_PAGES {
        return None;
    }
    let by_rows = if reltuples > 0.0 {
        100.0 * 2.0 * cap as f64 / reltuples
    } else {
        0.0
    };
    let floor = 100.0 * 8.0 / pages as f64;
    let p = by_rows.max(floor);
    (p < 100.0).then_some(p)
}

/// How many rows to sample: [`MAX_ROWS`], fewer for wide rows.
fn sample_cap(reltuples: f64, total_bytes: i64) -> i64 {
    if reltuples <= 0.0 || total_bytes <= 0 {
        return MAX_ROWS;
    }
    let avg = total_bytes as f64 / reltuples;
    ((MAX_SAMPLE_BYTES / avg) as i64).clamp(10, MAX_ROWS)
}

/// Fills the sample's clone: sampled rows, the first and the last in key order, numbered in
/// key order. Returns the number of rows.
async fn fill_sample(
    tx: &Transaction<'_>,
    src: &Source,
    clone: &QualifiedName,
    row: &Ident,
) -> Result<u64> {
    let t = &src.table;
    let table = &t.name;
    let cap = sample_cap(t.reltuples, t.total_bytes);
    let pct = sample_percent(t.reltuples, t.heap_bytes, cap);
    let cols = insert_columns(src);
    let key = join_idents(&src.key);
    let key_desc = src
        .key
        .iter()
        .map(|k| format!("{k} DESC"))
        .collect::<Vec<_>>()
        .join(", ");
    let sample = match pct {
        Some(_) => format!("SELECT * FROM ONLY {table} TABLESAMPLE SYSTEM ($1) LIMIT {cap}"),
        None => format!("SELECT * FROM ONLY {table} LIMIT {cap}"),
    };
    // UNION ALL, not UNION: columns of types without equality (xml, point) cannot be compared;
    // the key can (it has a unique btree index).
    let sql = format!(
        "INSERT INTO {clone} ({cols}, {row}) OVERRIDING SYSTEM VALUE \
         SELECT {cols}, row_number() OVER (ORDER BY {key}) FROM ( \
           SELECT DISTINCT ON ({key}) * FROM ( \
             (SELECT * FROM ONLY {table} ORDER BY {key} LIMIT 1) \
             UNION ALL (SELECT * FROM ONLY {table} ORDER BY {key_desc} LIMIT 1) \
             UNION ALL ({sample}) \
           ) u ORDER BY {key} \
         ) s"
    );
    let what = format!("sample check: sampling the rows of {}", table.human());
    match pct {
        Some(p) => tx.execute(&sql, &[&(p as f32)]).await.ctx(what),
        None => tx.execute(&sql, &[]).await.ctx(what),
    }
}

/// Adds the source's check constraints to a clone, after its rows: as the table has them (a
/// valid one checks the rows now, and is checked again by an ALTER that rewrites them). One
/// that fails on the rows (its expression is not immutable, say) is added `NOT VALID`.
async fn add_checks(tx: &Transaction<'_>, src: &Source, clone: &QualifiedName) -> Result<()> {
    for c in src.constraints.iter().filter(|c| c.kind == "c") {
        let sql = format!("ALTER TABLE {clone} ADD CONSTRAINT {} {}", c.name, c.def);
        let what = || {
            format!(
                "sample check: adding check constraint {} to the sample",
                c.name.as_str()
            )
        };
        let r = step(tx, async { tx.batch_execute(&sql).await.ctx(what()) }).await?;
        match r {
            Ok(()) => {}
            Err(e) if class(&e) == Class::Data && !c.def.ends_with(" NOT VALID") => {
                tx.batch_execute(&format!("{sql} NOT VALID"))
                    .await
                    .ctx(what())?;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// A table like the shadow (as the copy finds it: no indexes, its check constraints) for the
/// mapping to write into, with the row number. The defaults of `no_default` (new columns not
/// compared, whose default calls `nextval`) are dropped, with their NOT NULL: they would draw
/// from the shadow's own sequence (`ADD COLUMN n serial`), and the copy would number from
/// 2,001 instead of 1.
async fn create_mapped(
    tx: &Transaction<'_>,
    plan: &Plan,
    mapped: &QualifiedName,
    row: &Ident,
    no_default: &[Ident],
) -> Result<()> {
    let mut sql = format!(
        "CREATE TABLE {mapped} (LIKE {} INCLUDING DEFAULTS INCLUDING GENERATED \
         INCLUDING IDENTITY INCLUDING CONSTRAINTS, {row} int8 NOT NULL)",
        plan.shadow
    );
    for c in no_default {
        sql.push_str(&format!(
            ";\nALTER TABLE {mapped} ALTER COLUMN {c} DROP DEFAULT, ALTER COLUMN {c} DROP NOT NULL"
        ));
    }
    tx.batch_execute(&sql).await.ctx(format_args!(
        "sample check: creating the table for the mapping's rows {}",
        mapped.human()
    ))
}

/// Sends the rows of `from` through the mapping into `into` with the copy's own statements in
/// the copy's own form (`copier::copy_form`), the row number riding along as one more column. One connection
/// cannot stream a COPY out into a COPY in, so the bytes are held in memory in between (the
/// sample is bounded).
async fn map_rows(
    tx: &Transaction<'_>,
    plan: &Plan,
    from: &QualifiedName,
    into: &QualifiedName,
    row: &Ident,
) -> Result<u64> {
    let mut p = plan.clone();
    p.source = from.clone();
    p.shadow = into.clone();
    p.columns.push(MappedColumn {
        column: row.clone(),
        origin: Some(row.clone()),
        source: ColumnSource::Same,
        expr: Some(row.to_string()),
    });
    let what = || {
        format!(
            "the mapping of {} over the sampled rows",
            plan.source.human()
        )
    };
    // The clone answers to the table's name, as the mapping's expressions expect.
    let alias = format!("AS {}", plan.source.name);
    // The very form the copy will use for this shadow (binary, text for xml, or INSERT ...
    // SELECT for a domain with a NOT VALID constraint), or the check tests another path.
    let form = crate::copier::copy_form(tx, plan).await?;
    if !form.insert_select.is_empty() {
        return tx
            .execute(&crate::copier::insert_select_statement(&p, &alias), &[])
            .await
            .ctx(what());
    }
    if form.text {
        // As the copy's workers pin them (copier.rs); undone with the check's savepoint.
        tx.batch_execute("SET LOCAL extra_float_digits = 3")
            .await
            .ctx(what())?;
    }
    let (out_sql, in_sql) = crate::copier::copy_statements_in(&p, &form, &alias);
    let stream = tx.copy_out(&out_sql).await.ctx(what())?;
    pin_mut!(stream);
    let mut data: Vec<Bytes> = Vec::new();
    while let Some(chunk) = stream.next().await {
        data.push(chunk.ctx(what())?);
    }
    let sink = tx.copy_in::<_, Bytes>(&in_sql).await.ctx(what())?;
    pin_mut!(sink);
    for chunk in data {
        sink.feed(chunk).await.ctx(what())?;
    }
    sink.finish().await.ctx(what())
}

/// The row identity's column names in the shadow.
fn key_names(plan: &Plan) -> Vec<Ident> {
    plan.key.iter().map(|k| k.shadow_name.clone()).collect()
}

/// Applies the ALTER to one clone whose rows went through the mapping (`mapped`: the outcome of
/// [`map_rows`]) and compares.
#[allow(clippy::too_many_arguments)]
async fn trial(
    tx: &Transaction<'_>,
    plan: &Plan,
    alter: Option<&str>,
    clone: &QualifiedName,
    mapped_table: &QualifiedName,
    row: &Ident,
    mapped: Result<u64>,
    compared: &[Ident],
) -> Result<Trial> {
    let oid: u32 = tx
        .query_one("SELECT $1::text::regclass::oid", &[&clone.to_string()])
        .await
        .ctx("sample check: looking up the sample table")?
        .try_get(0)
        .ctx("sample check: looking up the sample table")?;
    if let Some(alter) = alter {
        // The extended protocol, as on the shadow: one statement, whatever the text hides.
        let sql = format!("ALTER TABLE {clone} {alter}");
        let altered = step(tx, async {
            tx.execute(&sql, &[]).await.ctx("PostgreSQL says")
        })
        .await?;
        if let Err(e) = altered {
            return match class(&e) {
                Class::Data => Ok(Trial::AlterFailed(e)),
                Class::Transient => Err(e),
                Class::Other => Ok(Trial::NotApplicable(e)),
            };
        }
    }
    match mapped {
        Ok(_) => {}
        Err(e) if class(&e) == Class::Data => return Ok(Trial::MappingFailed(e)),
        Err(e) if class(&e) == Class::Transient => return Err(e),
        Err(e) => return Ok(Trial::NotApplicable(e)),
    }
    // The ALTER may have renamed the clone or moved it to another schema.
    let r = tx
        .query_one(
            "SELECT n.nspname::text, c.relname::text FROM pg_catalog.pg_class c \
             JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = $1",
            &[&oid],
        )
        .await
        .ctx("sample check: looking up the sample table")?;
    let altered = QualifiedName::new(
        r.try_get::<_, String>(0)
            .ctx("sample check: looking up the sample table")?,
        r.try_get::<_, String>(1)
            .ctx("sample check: looking up the sample table")?,
    );
    let diffs = differences(tx, &altered, mapped_table, row, compared, &key_names(plan)).await?;
    Ok(Trial::Compared(diffs))
}

/// For each column of `cols` whose `::text` differs between `left` and `right` on some row
/// (rows matched by `row`): the first such row with its key (`key`, read from `right`, the
/// mapping's side: the source's key through its cast, even where a `USING` changes it), and how
/// many rows differ.
async fn differences(
    tx: &Transaction<'_>,
    left: &QualifiedName,
    right: &QualifiedName,
    row: &Ident,
    cols: &[Ident],
    key: &[Ident],
) -> Result<Vec<Diff>> {
    if cols.is_empty() {
        return Ok(Vec::new());
    }
    let values = cols
        .iter()
        .enumerate()
        .map(|(i, c)| format!("({i}, l.{c}::text, r.{c}::text)"))
        .collect::<Vec<_>>()
        .join(", ");
    let key_array = key
        .iter()
        .map(|k| format!("r.{k}::text"))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        "SELECT DISTINCT ON (v.i) v.i, count(*) OVER (PARTITION BY v.i), ARRAY[{key_array}]::text[], v.a, v.b \
           FROM {left} l JOIN {right} r ON r.{row} = l.{row} \
          CROSS JOIN LATERAL (VALUES {values}) AS v(i, a, b) \
          WHERE v.a IS DISTINCT FROM v.b \
          ORDER BY v.i, l.{row}"
    );
    let rows = tx
        .query(&sql, &[])
        .await
        .ctx("sample check: comparing the ALTER's rows with the mapping's")?;
    let mut out = Vec::new();
    for r in rows {
        let what = "sample check: reading a difference";
        let i: i32 = r.try_get(0).ctx(what)?;
        let keys: Vec<Option<String>> = r.try_get(2).ctx(what)?;
        let key_text = key
            .iter()
            .zip(keys)
            .map(|(k, v)| format!("{}={}", k.as_str(), shown(&v)))
            .collect::<Vec<_>>()
            .join(", ");
        out.push(Diff {
            column: cols
                .get(i as usize)
                .cloned()
                .unwrap_or_else(|| Ident::new("?")),
            rows: r.try_get(1).ctx(what)?,
            key: key_text,
            postgres: r.try_get(3).ctx(what)?,
            mapped: r.try_get(4).ctx(what)?,
        });
    }
    Ok(out)
}

/// A value for a message: NULL, or its text cut to 100 characters.
fn shown(v: &Option<String>) -> String {
    match v {
        None => "NULL".to_string(),
        Some(s) if s.chars().count() > 100 => {
            format!("{}...", s.chars().take(100).collect::<String>())
        }
        Some(s) => s.clone(),
    }
}

fn nothing_changed(plan: &Plan) -> String {
    format!(
        "nothing was changed; {} is untouched (the check ran on copies of sampled rows, rolled back)",
        plan.source.human()
    )
}

/// "on 3 rows sampled from app.t" / "on 2 rows sampled from app.t with NULL put into a, b".
fn rows_phrase(plan: &Plan, rows: u64, nulled: Option<&str>) -> String {
    let mut s = format!("on {rows} row(s) sampled from {}", plan.source.human());
    if let Some(cols) = nulled {
        s.push_str(&format!(" with NULL put into {cols}"));
    }
    s
}

/// The refusal for rows where the mapping and PostgreSQL's ALTER disagree.
fn differ(plan: &Plan, diffs: &[Diff], rows: u64, nulled: Option<&str>) -> Error {
    let mut msg = format!(
        "the column mapping of {} does not give the values PostgreSQL's own ALTER TABLE gives, {}:",
        plan.source.human(),
        rows_phrase(plan, rows, nulled)
    );
    for d in diffs.iter().take(5) {
        msg.push_str(&format!(
            "\n    column {}, row {}: PostgreSQL gives {}, the mapping gives {} ({} of {rows} row(s) differ)",
            d.column.as_str(),
            d.key,
            shown(&d.postgres),
            shown(&d.mapped),
            d.rows
        ));
    }
    if diffs.len() > 5 {
        msg.push_str(&format!("\n    and {} more column(s)", diffs.len() - 5));
    }
    let user_mapped: Vec<&str> = diffs
        .iter()
        .filter(|d| {
            plan.columns
                .iter()
                .any(|c| c.column == d.column && matches!(c.source, ColumnSource::Mapped { .. }))
        })
        .map(|d| d.column.as_str())
        .collect();
    let next = if !user_mapped.is_empty() {
        format!(
            "the --map for {} contradicts the ALTER, which gives an existing column its old value \
             (cast, or its USING expression); leave the --map out, and to change the values say it \
             in the ALTER: ALTER COLUMN <col> TYPE <type> USING <expr>",
            user_mapped.join(", ")
        )
    } else {
        let first = diffs.first().map(|d| d.column.as_str()).unwrap_or("col");
        format!(
            "pg-hotswap computes the column differently from PostgreSQL: please report it (the \
             table's definition and the --alter); meanwhile --map {first}=<expr> says how the \
             column is computed, and this check confirms it before anything is copied"
        )
    };
    Error::refused(msg)
        .with_state(nothing_changed(plan))
        .with_next(next)
}

/// The refusal for an ALTER that fails on the sampled rows.
fn alter_fails(plan: &Plan, clone: &QualifiedName, rows: u64, e: &Error) -> Error {
    Error::refused(format!(
        "PostgreSQL's own ALTER TABLE fails {} (copied to the rolled-back table {}), so it would \
         fail on the table too: {}",
        rows_phrase(plan, rows, None),
        clone.name.as_str(),
        e.message()
    ))
    .with_state(nothing_changed(plan))
    .with_next(
        "fix the rows or the --alter (UPDATE the NULLs before SET NOT NULL, a USING that \
         handles every value, a CHECK the rows meet), then run again",
    )
}

/// The refusal for a mapping that fails on rows where the ALTER succeeds: the copy would stop
/// there.
fn mapping_fails(plan: &Plan, rows: u64, nulled: Option<&str>, e: &Error) -> Error {
    let maps: Vec<&str> = plan
        .columns
        .iter()
        .filter(|c| matches!(c.source, ColumnSource::Mapped { .. }))
        .map(|c| c.column.as_str())
        .collect();
    let next = if maps.is_empty() {
        "please report it (the table's definition and the --alter)".to_string()
    } else {
        format!(
            "fix the --map expression of {} (SQL over the old row; it must work on every row), \
             or report it if the --map is not the cause",
            maps.join(", ")
        )
    };
    Error::refused(format!(
        "the column mapping of {} fails {} where PostgreSQL's own ALTER TABLE succeeds, so the \
         copy would stop on such a row: {}",
        plan.source.human(),
        rows_phrase(plan, rows, nulled),
        e.message()
    ))
    .with_state(nothing_changed(plan))
    .with_next(next)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_tables_are_read_from_the_start_and_big_ones_sampled() {
        assert_eq!(sample_percent(1000.0, 8192 * 10, 1000), None);
        // 50 GB, 500 million rows: about 2,000 rows' worth, never fewer than 8 pages.
        let p = sample_percent(5e8, 50 << 30, 1000).unwrap();
        assert!(p > 0.0 && p < 0.001, "{p}");
        let pages = (50i64 << 30) / 8192;
        assert!(p / 100.0 * pages as f64 >= 8.0);
        // Never analyzed: pages only.
        let p = sample_percent(-1.0, 8192 * 1000, 1000).unwrap();
        assert!((p - 0.8).abs() < 1e-9, "{p}");
        // A sample as large as the table: no TABLESAMPLE.
        assert_eq!(sample_percent(1500.0, 8192 * 200, 1000), None);
    }

    #[test]
    fn wide_rows_sample_fewer() {
        assert_eq!(sample_cap(-1.0, 0), MAX_ROWS);
        assert_eq!(sample_cap(1e6, 100 << 20), MAX_ROWS);
        assert_eq!(sample_cap(1000.0, 1 << 30), 62);
        assert_eq!(sample_cap(10.0, 10 << 30), 10);
    }

    #[test]
    fn values_are_shown_cut() {
        assert_eq!(shown(&None), "NULL");
        assert_eq!(shown(&Some("125".into())), "125");
        let long = "ä".repeat(150);
        let s = shown(&Some(long));
        assert!(s.ends_with("...") && s.chars().count() == 103);
    }

    #[test]
    fn summary_says_what_was_compared_and_skipped() {
        let r = SampleCheck {
            done: true,
            rows: 3,
            edge_rows: 1,
            edge_nulls: 2,
            compared: vec!["id".into(), "amount".into()],
            skipped: vec![SkippedColumn {
                column: "r".into(),
                reason: "volatile default".into(),
            }],
            notes: Vec::new(),
            millis: 12.4,
        };
        let s = r.summary();
        assert!(s.contains("agree on 3 sampled row(s)"), "{s}");
        assert!(s.contains("1 row(s) with 2 NULL(s)"), "{s}");
        assert!(s.contains("2 column(s) compared (12 ms)"), "{s}");
        assert!(s.contains("not compared: r (volatile default)"), "{s}");
        let not = SampleCheck {
            notes: vec!["it failed: x".into()],
            ..Default::default()
        };
        assert!(not.summary().starts_with("sample check NOT DONE"));
    }

    #[test]
    fn failures_are_classified_by_sqlstate() {
        assert_eq!(class(&Error::failed("no code")), Class::Other);
    }
}
