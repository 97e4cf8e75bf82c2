//! What the sample oracle compares, and how: which shadow columns are compared (not new columns
//! filled by `--map`, identity columns, volatile defaults), and the `::text` forms of those
//! columns on both sides, rows matched by the row number (exact, and defined for types without
//! equality).

use crate::db::catalog::Column;
use crate::db::ident::{Ident, QualifiedName};
use crate::error::{DbContext, Result};
use crate::rewrite::plan::{ColumnSource, Plan, SkippedColumn};
use tokio_postgres::Transaction;

/// One difference: the first row (in sample order) where `column` differs, and how many do.
#[derive(Debug)]
pub(super) struct Diff {
    pub(super) column: Ident,
    pub(super) rows: i64,
    pub(super) key: String,
    pub(super) postgres: Option<String>,
    pub(super) mapped: Option<String>,
}

/// The row identity's column names in the shadow.
pub(super) fn key_names(plan: &Plan) -> Vec<Ident> {
    plan.key.iter().map(|k| k.shadow_name.clone()).collect()
}

/// The shadow's columns sorted for the comparison (see the module header of `oracle`).
pub(super) struct Columns {
    pub compared: Vec<Ident>,
    /// Not compared, and why.
    pub skipped: Vec<SkippedColumn>,
    /// New columns whose default draws from a sequence: their defaults are dropped in the tables
    /// the mapping writes into (see `mapped::create_mapped`).
    pub sequence_defaults: Vec<Ident>,
}

/// Sorts `plan`'s columns into those compared and those not: new columns filled by `--map`,
/// identity columns and volatile defaults are not (`shadow_cols`: the shadow's columns).
pub(super) async fn columns(
    tx: &Transaction<'_>,
    plan: &Plan,
    shadow_cols: &[Column],
) -> Result<Columns> {
    let defaults = tx
        .query(
            include_str!("../../../sql/oracle_defaults.sql"),
            &[&plan.shadow_oid],
        )
        .await
        .ctx("sample check: reading the shadow's defaults")?;
    let mut compared: Vec<Ident> = Vec::new();
    let mut skipped: Vec<SkippedColumn> = Vec::new();
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
            Some(reason) => skipped.push(SkippedColumn {
                column: c.column.as_str().to_string(),
                reason,
            }),
            None => compared.push(c.column.clone()),
        }
    }
    Ok(Columns {
        compared,
        skipped,
        sequence_defaults,
    })
}

/// For each column of `cols` whose `::text` differs between `left` and `right` on some row
/// (rows matched by `row`): the first such row with its key (`key`, read from `right`, the
/// mapping's side: the source's key through its cast, even where a `USING` changes it), and how
/// many rows differ.
pub(super) async fn differences(
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
pub(super) fn shown(v: &Option<String>) -> String {
    match v {
        None => "NULL".to_string(),
        Some(s) if s.chars().count() > 100 => {
            format!("{}...", s.chars().take(100).collect::<String>())
        }
        Some(s) => s.clone(),
    }
}
