//! Where the rows go in a partitioned shadow (issue 15): sampled row counts per partition, and
//! the rows that would have no partition.
//!
//! How: in a savepoint of the shadow's transaction (always rolled back), after `partitioning`
//! made the partitioned shadow, a sample of the source's rows goes through the copy's own
//! mapping (`copier::insert_select_statement`) into the shadow, where PostgreSQL routes each
//! row to its partition; the rows are counted by partition and scaled to the table's row
//! estimate. The sample is the whole table when it is small (the counts are then exact), else
//! `TABLESAMPLE SYSTEM` at a share aimed at [`TARGET_ROWS`] rows (whole pages at random: a
//! table written in time order gives each month its share of pages).
//!
//! Rows with no partition: without a DEFAULT partition, a temporary one catches them in the
//! savepoint (HASH partitioning has none: there a set of remainders that does not cover every
//! hash is read from the bounds, and PostgreSQL's own error on a sampled row says it). A sample
//! can miss a few outliers, so when the partition key is one column that a btree index leads
//! with on the source, the rows with its smallest and largest value are tried too (two index
//! probes), and a row where it is NULL whenever the column may hold one (by the index, or by a
//! scan that stops at the first NULL: a whole-table scan when there is none). `run` refuses
//! such rows before anything is created (DESIGN.md, "refuse before creating anything"); the
//! copy would otherwise fail on them; `plan` shows them, with the partition key's values, as a
//! blocking check.
//!
//! Invariant kept here: nothing outlives the savepoint. New columns whose default draws from a
//! sequence (or identity columns the mapping does not write) have the default dropped inside
//! the savepoint first, so the sample draws no value the copy would then skip.

use crate::db::ident::{fit_name, Ident, QualifiedName};
use crate::error::{DbContext, Error, Kind, Result, RowExt};
use crate::rewrite::partition_ranges::Generated;
pub use crate::rewrite::partition_report::{PartitionCount, PartitionSample, Unrouted};
use crate::rewrite::plan::{ColumnSource, Plan};
use crate::rewrite::preflight::Source;
use tokio_postgres::Transaction;

/// Rows the sample aims at on a large table.
pub const TARGET_ROWS: f64 = 10_000.0;
/// Up to this many rows (and [`WHOLE_TABLE_PAGES`] pages) the whole table is the sample.
const WHOLE_TABLE_ROWS: f64 = 20_000.0;
const WHOLE_TABLE_PAGES: i64 = 1280;
/// Pages read at least by `TABLESAMPLE SYSTEM`, for lumpy tables.
const MIN_SAMPLE_PAGES: f64 = 64.0;
/// Distinct partition key values shown for the rows without a partition.
const SHOWN_KEYS: i64 = 5;

/// Samples the source into the partitioned shadow `plan.shadow` (in a savepoint, rolled back)
/// and counts the rows per partition. Lock timeouts and lost connections are returned; any
/// other failure gives a sample with `done: false` and the reason.
pub async fn sample(
    tx: &Transaction<'_>,
    src: &Source,
    plan: &Plan,
    generated: Option<Generated>,
) -> Result<PartitionSample> {
    tx.batch_execute("SAVEPOINT hotswap_partition_sample")
        .await
        .ctx("starting the partition sample")?;
    let result = sample_in(tx, src, plan).await;
    tx.batch_execute(
        "ROLLBACK TO SAVEPOINT hotswap_partition_sample; RELEASE SAVEPOINT hotswap_partition_sample",
    )
    .await
    .ctx("rolling the partition sample back")?;
    let mut s = match result {
        Ok(s) => s,
        Err(e) if e.kind() == Kind::LockTimeout || e.is_connection_lost() => return Err(e),
        Err(e)
            if e.code()
                .map(|c| c.code().starts_with("57"))
                .unwrap_or(false) =>
        {
            return Err(e)
        }
        Err(e) => PartitionSample {
            done: false,
            notes: vec![format!("the sample could not be taken: {}", e.message())],
            ..Default::default()
        },
    };
    s.generated = generated;
    Ok(s)
}

async fn sample_in(tx: &Transaction<'_>, src: &Source, plan: &Plan) -> Result<PartitionSample> {
    let Some(parts) = &plan.partitioning else {
        return Err(Error::failed("the shadow is not partitioned"));
    };
    let shadow = &plan.shadow;
    let what = format!("sampling rows into the partitions of {}", shadow.human());
    let hash = parts.key.to_ascii_uppercase().starts_with("HASH");
    let has_default = parts.partitions.iter().any(|p| p.bound == "DEFAULT");
    let mut notes = Vec::new();

    keep_sequences(tx, plan).await?;
    let catch = if has_default || hash {
        None
    } else {
        let name = shadow.sibling(fit_name(
            &format!("hotswap_{}_no_partition", plan.run_id),
            "",
        ));
        tx.batch_execute(&format!(
            "CREATE TABLE {name} PARTITION OF {shadow} DEFAULT"
        ))
        .await
        .ctx(format_args!("{what}: a partition for rows that have none"))?;
        Some(name)
    };

    // The partitions by OID, in the order given, and the catcher's.
    let mut oids = Vec::new();
    for p in &parts.partitions {
        let oid: u32 = tx
            .query_one("SELECT $1::text::regclass::oid", &[&p.name.to_string()])
            .await
            .ctx(&what)?
            .col(0, &what)?;
        oids.push(oid);
    }
    let catch_oid: Option<u32> = match &catch {
        Some(c) => Some(
            tx.query_one("SELECT $1::text::regclass::oid", &[&c.to_string()])
                .await
                .ctx(&what)?
                .col(0, &what)?,
        ),
        None => None,
    };

    let bounds: Vec<&str> = parts.partitions.iter().map(|p| p.bound.as_str()).collect();
    let how = How::of(src.table.reltuples, src.table.heap_bytes);
    let method = how.method();
    let insert = crate::rewrite::copier::insert_select_statement(plan, &how.filter());
    let sampled = match insert_rows(tx, &insert).await? {
        Ok(n) => n as i64,
        // A HASH set that leaves remainders uncovered: a sampled row hashed there (a failed
        // CHECK constraint is another matter, and the copy's or the oracle's to report).
        Err(e)
            if hash
                && e.code() == Some(&tokio_postgres::error::SqlState::CHECK_VIOLATION)
                && hash_gaps(&bounds).is_some() =>
        {
            let detail = format!(
                "{}; PostgreSQL: {}",
                hash_gaps(&bounds).unwrap_or_default(),
                e.message()
            );
            return Ok(PartitionSample {
                method,
                done: true,
                partitions: parts
                    .partitions
                    .iter()
                    .map(|p| PartitionCount {
                        name: p.final_name.human(),
                        bound: p.bound.clone(),
                        sampled_rows: 0,
                        estimated_rows: 0,
                    })
                    .collect(),
                unrouted: Some(Unrouted {
                    sampled_rows: None,
                    estimated_rows: None,
                    extremes: 0,
                    key: key_text(&parts.key),
                    values: Vec::new(),
                    more_values: false,
                    last_value: None,
                    counted: false,
                    detail: Some(detail),
                }),
                notes: vec!["the counts are not known: a sampled row has no partition".into()],
                ..Default::default()
            });
        }
        Err(e) => return Err(e),
    };
    let counts = count_by_partition(tx, plan).await?;
    let table_rows = how.table_rows(sampled, src.table.reltuples);
    let scale = |n: i64| {
        if sampled > 0 {
            (n as f64 * table_rows as f64 / sampled as f64).round() as i64
        } else {
            0
        }
    };
    let mut partitions: Vec<PartitionCount> = parts
        .partitions
        .iter()
        .zip(&oids)
        .map(|(p, oid)| {
            let n = counts
                .iter()
                .find(|c| c.0 == *oid)
                .map(|c| c.1)
                .unwrap_or(0);
            PartitionCount {
                name: p.final_name.human(),
                bound: p.bound.clone(),
                sampled_rows: n,
                estimated_rows: scale(n),
            }
        })
        .collect();

    partitions.sort_by_key(|p| p.bound == "DEFAULT");
    let mut unrouted = None;
    if let (Some(catch), Some(catch_oid)) = (&catch, catch_oid) {
        let n = counts
            .iter()
            .find(|c| c.0 == catch_oid)
            .map(|c| c.1)
            .unwrap_or(0);
        let probes = extremes_filters(tx, src, plan).await?;
        if !probes.as_ref().is_some_and(|p| p.extremes) {
            notes.push(
                "the smallest and largest partition key values were not checked (the key is not one column a btree index of the table leads with); a row outside every bound that the sample missed fails the copy".into(),
            );
        }
        let extremes = match probes {
            Some(Probes { filters, .. }) => {
                let mut found = 0;
                for f in filters {
                    let before = rows_in(tx, catch).await?;
                    if let Ok(1..) = insert_rows(
                        tx,
                        &crate::rewrite::copier::insert_select_statement(plan, &f),
                    )
                    .await?
                    {
                        found += rows_in(tx, catch).await? - before;
                    }
                }
                found
            }
            None => 0,
        };
        if n + extremes > 0 {
            let (key, values, more, last) = key_values(tx, plan, catch).await?;
            unrouted = Some(Unrouted {
                sampled_rows: Some(n),
                estimated_rows: Some(scale(n)),
                extremes,
                key,
                values,
                more_values: more,
                last_value: last,
                counted: how == How::Whole,
                detail: None,
            });
        }
    } else if hash {
        if let Some(gaps) = hash_gaps(
            &parts
                .partitions
                .iter()
                .map(|p| p.bound.as_str())
                .collect::<Vec<_>>(),
        ) {
            notes.push(format!(
                "no sampled row fell into a missing remainder, but {gaps}"
            ));
        }
    }
    Ok(PartitionSample {
        method,
        done: true,
        sampled_rows: sampled,
        table_rows,
        partitions,
        unrouted,
        generated: None,
        notes,
    })
}

/// How the sample is read: the whole table, or `TABLESAMPLE SYSTEM` at this percentage.
#[derive(Clone, Copy, Debug, PartialEq)]
enum How {
    Whole,
    Share(f64),
}

impl How {
    /// The whole table when small; else a share aimed at [`TARGET_ROWS`] rows and at least
    /// [`MIN_SAMPLE_PAGES`] pages (a never-analyzed table: by pages alone).
    fn of(reltuples: f64, heap_bytes: i64) -> How {
        let pages = (heap_bytes / 8192).max(1);
        let percent = if reltuples > 0.0 {
            (reltuples > WHOLE_TABLE_ROWS || pages > WHOLE_TABLE_PAGES).then(|| {
                (100.0 * TARGET_ROWS / reltuples).max(100.0 * MIN_SAMPLE_PAGES / pages as f64)
            })
        } else {
            (pages > WHOLE_TABLE_PAGES).then(|| 100.0 * 4.0 * MIN_SAMPLE_PAGES / pages as f64)
        };
        match percent.filter(|p| *p < 100.0) {
            Some(p) => How::Share(p),
            None => How::Whole,
        }
    }

    fn method(self) -> String {
        match self {
            How::Whole => "whole table".into(),
            How::Share(p) => format!("TABLESAMPLE SYSTEM ({p:.4})"),
        }
    }

    /// The `FROM` clause's addition.
    fn filter(self) -> String {
        match self {
            How::Whole => String::new(),
            How::Share(p) => format!("TABLESAMPLE SYSTEM ({p:.4})"),
        }
    }

    /// The rows the sampled ones stand for: all of them when the whole table was read, else
    /// the table's estimate (or, never analyzed, the sampled rows over the share).
    fn table_rows(self, sampled: i64, reltuples: f64) -> i64 {
        match self {
            How::Whole => sampled,
            How::Share(_) if reltuples > 0.0 => reltuples as i64,
            How::Share(p) => (sampled as f64 * 100.0 / p).round() as i64,
        }
    }
}

/// Runs an `INSERT ... SELECT`; `Ok(Err)` for a failure of the statement (in its own
/// savepoint), `Err` only when the savepoint fails.
async fn insert_rows(tx: &Transaction<'_>, sql: &str) -> Result<Result<u64>> {
    tx.batch_execute("SAVEPOINT hotswap_partition_rows")
        .await
        .ctx("sampling rows into the partitions")?;
    let r = tx
        .execute(sql, &[])
        .await
        .ctx("sampling rows into the partitions");
    let end = if r.is_ok() {
        "RELEASE SAVEPOINT hotswap_partition_rows"
    } else {
        "ROLLBACK TO SAVEPOINT hotswap_partition_rows; RELEASE SAVEPOINT hotswap_partition_rows"
    };
    tx.batch_execute(end)
        .await
        .ctx("sampling rows into the partitions")?;
    Ok(r)
}

/// Rows per partition of the shadow (by the OID of the shadow's own partition, sub-partitions
/// counted in theirs).
async fn count_by_partition(tx: &Transaction<'_>, plan: &Plan) -> Result<Vec<(u32, i64)>> {
    let what = "counting the sampled rows by partition";
    let rows = tx
        .query(
            &format!(
                // Grouped by leaf first: the ancestors are looked up once per partition, not
                // once per row (0.2 ms a row with 354 partitions).
                "SELECT part, sum(n)::int8 FROM ( \
                   SELECT (SELECT a.relid::oid FROM pg_catalog.pg_partition_ancestors(g.leaf) a \
                             JOIN pg_catalog.pg_inherits i ON i.inhrelid = a.relid AND i.inhparent = $1) AS part, \
                          g.n \
                     FROM (SELECT s.tableoid AS leaf, count(*) AS n FROM {} s GROUP BY 1) g) p \
                  GROUP BY 1",
                plan.shadow
            ),
            &[&plan.shadow_oid],
        )
        .await
        .ctx(what)?;
    rows.iter()
        .map(|r| {
            Ok((
                r.col::<Option<u32>>(0, &what)?.unwrap_or(0),
                r.col(1, &what)?,
            ))
        })
        .collect()
}

async fn rows_in(tx: &Transaction<'_>, rel: &QualifiedName) -> Result<i64> {
    let what = "counting the rows without a partition";
    tx.query_one(&format!("SELECT count(*) FROM {rel}"), &[])
        .await
        .ctx(what)?
        .col(0, &what)
}

/// The filters that pick the source rows with the smallest and largest partition key value,
/// and one where it is NULL: only for a one-column key that the mapping keeps (or casts) from
/// a source column that a btree index leads with, so each is one index probe.
async fn extremes_filters(
    tx: &Transaction<'_>,
    src: &Source,
    plan: &Plan,
) -> Result<Option<Probes>> {
    let what = "reading the partition key";
    let cols: Vec<i16> = tx
        .query_one(
            "SELECT partattrs::int2[] FROM pg_catalog.pg_partitioned_table WHERE partrelid = $1",
            &[&plan.shadow_oid],
        )
        .await
        .ctx(what)?
        .col(0, &what)?;
    let [attnum] = cols[..] else { return Ok(None) };
    if attnum <= 0 {
        return Ok(None);
    }
    let row = tx
        .query_one(
            "SELECT attname::text, attnotnull FROM pg_catalog.pg_attribute WHERE attrelid = $1 AND attnum = $2",
            &[&plan.shadow_oid, &attnum],
        )
        .await
        .ctx(what)?;
    let name: String = row.col(0, &what)?;
    // NOT NULL in the new table: a NULL is refused before this (`oracle::nulls`).
    let new_not_null: bool = row.col(1, &what)?;
    let Some(m) = plan.columns.iter().find(|c| c.column.as_str() == name) else {
        return Ok(None);
    };
    let origin = match (&m.source, &m.origin) {
        (ColumnSource::Same | ColumnSource::Cast { .. }, Some(o)) => src.column(o),
        _ => None,
    };
    let Some(o) = origin else { return Ok(None) };
    let indexed: bool = tx
        .query_one(
            "SELECT EXISTS (SELECT FROM pg_catalog.pg_index i \
                 JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid \
                 JOIN pg_catalog.pg_am am ON am.oid = c.relam \
                WHERE i.indrelid = $1 AND i.indkey[0] = $2 AND am.amname = 'btree' \
                  AND i.indpred IS NULL AND i.indisvalid)",
            &[&src.table.oid, &(i16::try_from(o.num).unwrap_or(i16::MAX))],
        )
        .await
        .ctx(what)?
        .col(0, &what)?;
    let c = &o.name;
    let mut filters = Vec::new();
    if indexed {
        filters.push(format!("WHERE {c} IS NOT NULL ORDER BY {c} ASC LIMIT 1"));
        filters.push(format!("WHERE {c} IS NOT NULL ORDER BY {c} DESC LIMIT 1"));
    }
    // A NULL key has a partition only in a LIST partition that names NULL or a default one
    // (here there is no default): one NULL row among millions is what a sample misses and the
    // copy then fails on. Probed with or without an index: without one, a scan that stops at
    // the first NULL (the whole table when there is none; declare the column NOT NULL to spare
    // it).
    if !o.not_null && !new_not_null {
        filters.push(format!("WHERE {c} IS NULL LIMIT 1"));
    }
    Ok(Some(Probes {
        filters,
        extremes: indexed,
    }))
}

/// The probes for rows a sample misses: the smallest and largest key value (`extremes`, when
/// an index gives them cheaply) and a NULL key.
struct Probes {
    filters: Vec<String>,
    extremes: bool,
}

/// The partition key's text and up to [`SHOWN_KEYS`] of its distinct values among the rows in
/// `rel` (the catcher), in order.
async fn key_values(
    tx: &Transaction<'_>,
    plan: &Plan,
    rel: &QualifiedName,
) -> Result<(String, Vec<String>, bool, Option<String>)> {
    let what = "reading the partition key of the rows without a partition";
    let names: Vec<Option<String>> = tx
        .query_one(
            "SELECT array_agg(a.attname::text ORDER BY k.n) \
               FROM pg_catalog.pg_partitioned_table p \
               CROSS JOIN LATERAL unnest(p.partattrs::int2[]) WITH ORDINALITY k(attnum, n) \
               LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = p.partrelid AND a.attnum = k.attnum \
              WHERE p.partrelid = $1",
            &[&plan.shadow_oid],
        )
        .await
        .ctx(what)?
        .col::<Option<Vec<Option<String>>>>(0, &what)?
        .unwrap_or_default();
    let Some(cols) = names.into_iter().collect::<Option<Vec<String>>>() else {
        // An expression in the key: only the key's text.
        let key = plan
            .partitioning
            .as_ref()
            .map(|p| p.key.clone())
            .unwrap_or_default();
        return Ok((key_text(&key), Vec::new(), false, None));
    };
    let idents: Vec<Ident> = cols.iter().map(|c| Ident::new(c.clone())).collect();
    let list = crate::db::ident::join_idents(&idents);
    let key = if idents.len() == 1 {
        cols[0].clone()
    } else {
        format!("({})", cols.join(", "))
    };
    let k = if idents.len() == 1 {
        list.clone()
    } else {
        format!("ROW({list})")
    };
    let rows = tx
        .query(
            &format!(
                "SELECT coalesce(k::text, 'NULL') FROM (SELECT DISTINCT {k} AS k FROM {rel}) s \
                  ORDER BY s.k NULLS LAST LIMIT {}",
                SHOWN_KEYS + 1
            ),
            &[],
        )
        .await
        .ctx(what)?;
    let mut values = rows
        .iter()
        .map(|r| r.col::<String>(0, &what))
        .collect::<Result<Vec<_>>>()?;
    let more = values.len() as i64 > SHOWN_KEYS;
    values.truncate(SHOWN_KEYS as usize);
    let last = if more {
        tx.query_opt(
            &format!(
                "SELECT coalesce(k::text, 'NULL') FROM (SELECT DISTINCT {k} AS k FROM {rel}) s \
                  ORDER BY s.k DESC NULLS FIRST LIMIT 1"
            ),
            &[],
        )
        .await
        .ctx(what)?
        .map(|r| r.col::<String>(0, &what))
        .transpose()?
    } else {
        None
    };
    Ok((key, values, more, last))
}

/// `created_on` of `RANGE (created_on)`.
fn key_text(partkeydef: &str) -> String {
    match (partkeydef.find('('), partkeydef.rfind(')')) {
        (Some(a), Some(b)) if a < b => partkeydef[a + 1..b].to_string(),
        _ => partkeydef.to_string(),
    }
}

/// Drops, inside the sample's savepoint, the defaults that would draw from a sequence on the
/// columns the mapping does not write (new serial or identity columns): a value drawn by the
/// sample is not given back by the rollback, and the copy would skip it.
async fn keep_sequences(tx: &Transaction<'_>, plan: &Plan) -> Result<()> {
    let written = plan.copy_columns();
    let cols = crate::db::catalog::columns(tx, plan.shadow_oid).await?;
    for c in cols {
        if written.contains(&&c.name) || c.is_generated() {
            continue;
        }
        let sql = if !c.identity.is_empty() {
            format!(
                "ALTER TABLE {} ALTER COLUMN {} DROP IDENTITY, ALTER COLUMN {} DROP NOT NULL",
                plan.shadow, c.name, c.name
            )
        } else if c
            .default_expr
            .as_deref()
            .is_some_and(|d| d.contains("nextval("))
        {
            format!(
                "ALTER TABLE {} ALTER COLUMN {} DROP DEFAULT, ALTER COLUMN {} DROP NOT NULL",
                plan.shadow, c.name, c.name
            )
        } else {
            continue;
        };
        tx.batch_execute(&sql).await.ctx(format_args!(
            "sampling rows into the partitions: leaving the sequence of column {} alone",
            c.name.as_str()
        ))?;
    }
    Ok(())
}

/// For HASH bounds (`FOR VALUES WITH (modulus 4, remainder 0)`), the remainders of the largest
/// modulus that no partition takes, said in words; None when every hash has a partition (or a
/// bound is not a hash bound).
pub fn hash_gaps(bounds: &[&str]) -> Option<String> {
    let mut parts = Vec::new();
    for b in bounds {
        let l = b.to_ascii_lowercase();
        let num = |key: &str| -> Option<u64> {
            let i = l.find(key)? + key.len();
            let digits: String = l[i..]
                .trim_start()
                .chars()
                .take_while(|c| c.is_ascii_digit())
                .collect();
            digits.parse().ok()
        };
        parts.push((num("modulus")?, num("remainder")?));
    }
    let max = parts.iter().map(|p| p.0).max()?;
    if max == 0 || max > 1_000_000 {
        return None;
    }
    let missing: Vec<u64> = (0..max)
        .filter(|r| !parts.iter().any(|(m, rem)| *m > 0 && r % m == *rem))
        .collect();
    if missing.is_empty() {
        return None;
    }
    let shown: Vec<String> = missing.iter().take(8).map(|r| r.to_string()).collect();
    Some(format!(
        "no partition takes remainder{} {}{} of modulus {max}",
        if missing.len() == 1 { "" } else { "s" },
        shown.join(", "),
        if missing.len() > 8 { ", ..." } else { "" }
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_coverage_is_read_from_the_bounds() {
        let all = [
            "FOR VALUES WITH (modulus 4, remainder 0)",
            "FOR VALUES WITH (modulus 4, remainder 1)",
            "FOR VALUES WITH (modulus 4, remainder 2)",
            "FOR VALUES WITH (modulus 4, remainder 3)",
        ];
        assert_eq!(hash_gaps(&all), None);
        assert_eq!(
            hash_gaps(&all[..3]).as_deref(),
            Some("no partition takes remainder 3 of modulus 4")
        );
        // Mixed moduli: 2/0 covers 0 and 2 of 4.
        let mixed = [
            "FOR VALUES WITH (modulus 2, remainder 0)",
            "FOR VALUES WITH (modulus 4, remainder 1)",
        ];
        assert_eq!(
            hash_gaps(&mixed).as_deref(),
            Some("no partition takes remainder 3 of modulus 4")
        );
        assert_eq!(
            hash_gaps(&["FOR VALUES WITH (modulus 3, remainder 1)"]).as_deref(),
            Some("no partition takes remainders 0, 2 of modulus 3")
        );
        assert_eq!(hash_gaps(&["DEFAULT"]), None);
    }

    #[test]
    fn unrouted_rows_are_described_with_their_keys() {
        let u = Unrouted {
            sampled_rows: Some(40),
            estimated_rows: Some(1200),
            extremes: 0,
            key: "created_on".into(),
            values: vec!["2025-11-02".into(), "2025-11-03".into()],
            more_values: true,
            last_value: Some("2025-12-30".into()),
            counted: false,
            detail: None,
        };
        assert_eq!(
            u.describe(),
            "about 1200 rows (40 sampled) would have no partition; created_on of those rows: 2025-11-02, 2025-11-03, ..., 2025-12-30"
        );
        let s = PartitionSample {
            unrouted: Some(u),
            ..Default::default()
        };
        let e = s
            .refusal(&QualifiedName::new("public", "event"))
            .expect("a refusal");
        assert_eq!(e.kind(), Kind::Refused);
        assert!(e
            .next()
            .unwrap()
            .contains("--partition \"event_default DEFAULT\""));
        assert!(PartitionSample::default()
            .refusal(&QualifiedName::new("public", "event"))
            .is_none());
    }

    #[test]
    fn small_tables_are_read_whole_and_large_ones_sampled() {
        assert_eq!(How::of(3000.0, 300 * 8192), How::Whole);
        assert_eq!(How::of(-1.0, 100 * 8192), How::Whole);
        let How::Share(p) = How::of(10_000_000.0, 100_000 * 8192) else {
            panic!("a share")
        };
        assert!((p - 0.1).abs() < 1e-9, "{p}");
        // Many rows to a page: at least 64 pages.
        let How::Share(p) = How::of(20_000_000.0, 2_000 * 8192) else {
            panic!("a share")
        };
        assert!((p - 3.2).abs() < 1e-9, "{p}");
        assert_eq!(How::Share(10.0).table_rows(500, 100_000.0), 100_000);
        assert_eq!(How::Share(10.0).table_rows(500, -1.0), 5000);
        assert_eq!(How::Whole.table_rows(500, 480.0), 500);
    }

    #[test]
    fn the_key_text_is_inside_the_parentheses() {
        assert_eq!(key_text("RANGE (created_on)"), "created_on");
        assert_eq!(key_text("LIST (region, id)"), "region, id");
    }
}
