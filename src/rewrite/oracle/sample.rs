//! The sample oracle's rows: the names of its relations, the clone of the table filled with a
//! bounded sample (up to [`MAX_ROWS`] rows read with `TABLESAMPLE SYSTEM`, plus the first and the
//! last in key order), the edge rows (sampled rows with a NULL put in), and the source's check
//! constraints added to a clone. Everything here is created inside the check's savepoint, which
//! is always rolled back.

use super::{class, step, Class};
use crate::db::catalog::{self, Column};
use crate::db::ident::{fit_name, join_idents, Ident, QualifiedName};
use crate::error::{DbContext, Error, Result};
use crate::rewrite::plan::Plan;
use crate::rewrite::preflight::Source;
use tokio_postgres::Transaction;

/// The most rows sampled from the table.
pub const MAX_ROWS: i64 = 1000;
/// Roughly the most bytes of table the sample holds (each clone is read into memory once).
const MAX_SAMPLE_BYTES: f64 = 64.0 * 1024.0 * 1024.0;
/// Below this many heap pages the sample is the first rows of a plain scan.
const SMALL_TABLE_PAGES: i64 = 128;

/// The relations of the check: the clones, and the tables the mapping writes into.
pub(super) struct Names {
    pub(super) sample: QualifiedName,
    pub(super) edges: QualifiedName,
    pub(super) mapped: QualifiedName,
    pub(super) mapped_again: QualifiedName,
    pub(super) mapped_edges: QualifiedName,
    /// The row-number column (in the clones and the mapped tables).
    pub(super) row: Ident,
}

/// Picks the check's relation names and its row-number column. Each name begins with
/// `hs<backend pid>_`, so concurrent checks (the sample sessions of `plan`) never pick the same
/// uncommitted name, nor do the index names PostgreSQL derives from them.
pub(super) async fn names(tx: &Transaction<'_>, src: &Source, plan: &Plan) -> Result<Names> {
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
pub(super) async fn create_clone(
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
    ))?;
    // LIKE gives an identity sequence the source's bounds but the default type (bigint): made
    // the source's twin, as the shadow's is, so that the ALTER does to it what it does to the
    // table's (`TYPE bigint, RESTART WITH 3000000000` was refused here with "RESTART value
    // cannot be greater than MAXVALUE", which PostgreSQL's ALTER on the table accepts; a fresh
    // tester, session 13).
    for s in crate::rewrite::shadow::identity_sequence_steps(tx, src, clone).await? {
        tx.batch_execute(&s.sql).await.ctx(format_args!(
            "sample check: {} of {}",
            s.what,
            clone.human()
        ))?;
    }
    Ok(())
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
pub(super) async fn fill_sample(
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
    // A partitioned table's rows are in its partitions (issue 15).
    let from = crate::rewrite::partitioning::from_rel(table, t.relkind == "p");
    let sample = match pct {
        Some(_) => format!("SELECT * FROM {from} TABLESAMPLE SYSTEM ($1) LIMIT {cap}"),
        None => format!("SELECT * FROM {from} LIMIT {cap}"),
    };
    // UNION ALL, not UNION: columns of types without equality (xml, point) cannot be compared;
    // the key can (it has a unique btree index).
    let sql = format!(
        "INSERT INTO {clone} ({cols}, {row}) OVERRIDING SYSTEM VALUE \
         SELECT {cols}, row_number() OVER (ORDER BY {key}) FROM ( \
           SELECT DISTINCT ON ({key}) * FROM ( \
             (SELECT * FROM {from} ORDER BY {key} LIMIT 1) \
             UNION ALL (SELECT * FROM {from} ORDER BY {key_desc} LIMIT 1) \
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
pub(super) async fn add_checks(
    tx: &Transaction<'_>,
    src: &Source,
    clone: &QualifiedName,
) -> Result<()> {
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

/// The edge rows' columns: each nullable column of the source (not generated, not in the key)
/// whose new column stays nullable (a NULL where the ALTER makes the column NOT NULL only shows
/// that the ALTER refuses NULLs). `shadow_cols`: the shadow's columns.
pub(super) fn edge_columns<'a>(
    src: &'a Source,
    plan: &Plan,
    shadow_cols: &[Column],
) -> Vec<&'a Ident> {
    src.columns
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
        .collect()
}

/// Fills the edge rows' clone: copies of the first sampled rows (`rows` of them were sampled),
/// with a NULL put into each of `edge_cols` in turn, each in its own savepoint (one a constraint
/// refuses is only left out); only the rows that got a NULL are kept. Returns (rows kept, NULLs
/// put in); (0, 0) when there is nothing to put a NULL into.
pub(super) async fn fill_edges(
    tx: &Transaction<'_>,
    src: &Source,
    names: &Names,
    edge_cols: &[&Ident],
    rows: u64,
) -> Result<(u64, u64)> {
    if edge_cols.is_empty() {
        return Ok((0, 0));
    }
    let (mut kept, mut nulls) = (0, 0);
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
                nulls += 1;
                nulled_rows.insert(row);
            }
            // A constraint of the table refuses this NULL: the table cannot hold it either.
            Err(e) if class(&e) == Class::Data => {}
            Err(e) => return Err(e),
        }
    }
    if nulls > 0 {
        // Only the rows that got a NULL; the others are copies of sampled rows.
        let keep: Vec<i64> = nulled_rows.into_iter().collect();
        tx.execute(
            &format!("DELETE FROM {} WHERE {} <> ALL($1)", names.edges, names.row),
            &[&keep],
        )
        .await
        .ctx("sample check: keeping the edge rows")?;
        kept = keep.len() as u64;
    }
    Ok((kept, nulls))
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
}
