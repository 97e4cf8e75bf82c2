//! NULLs the sample missed (issue 15, from a fresh tester's report): a column that may hold
//! NULL in the table but is NOT NULL in the new definition (`SET NOT NULL`, or a primary key
//! widened to it, as when a table becomes partitioned by that column) makes PostgreSQL's own
//! ALTER fail on the first NULL row. The sample oracle sees a few hundred rows; one NULL among
//! millions then failed the copy halfway. Here every such column is probed over the whole
//! table, one statement for all of them, before anything is created.
//!
//! Cost: the probe stops at the first NULL; when there is none it reads the table once (an
//! index on the column lets PostgreSQL answer from it). PostgreSQL's own `SET NOT NULL` reads
//! the table the same way. Columns whose value the mapping computes (`USING`, `--map`, a
//! default) are left to the sample oracle: an expression may turn a NULL into a value.

use crate::db::ident::Ident;
use crate::error::{DbContext, Error, Result, RowExt};
use crate::rewrite::plan::{ColumnSource, Plan};
use crate::rewrite::preflight::Source;
use tokio_postgres::GenericClient;

/// The source columns a NULL passes through to a NOT NULL column of the new table: (source
/// column, new column). `shadow_not_null` says whether a new column is NOT NULL.
pub fn columns_made_not_null<'a>(
    src: &'a Source,
    plan: &'a Plan,
    shadow_not_null: impl Fn(&Ident) -> bool,
) -> Vec<(&'a Ident, &'a Ident)> {
    plan.columns
        .iter()
        .filter(|m| {
            matches!(
                m.source,
                ColumnSource::Same | ColumnSource::Cast { .. } | ColumnSource::Renamed { .. }
            )
        })
        .filter_map(|m| {
            let o = src.column(m.origin.as_ref()?)?;
            (!o.not_null && !o.is_generated() && shadow_not_null(&m.column))
                .then_some((&o.name, &m.column))
        })
        .collect()
}

/// Refuses (exit 3, nothing created) when a row of the table has NULL in a column the new
/// definition makes NOT NULL, naming the column and the first such row's key.
pub async fn refuse_nulls(tx: &impl GenericClient, src: &Source, plan: &Plan) -> Result<()> {
    let shadow_cols = crate::db::catalog::columns(tx, plan.shadow_oid).await?;
    let cols = columns_made_not_null(src, plan, |n| {
        shadow_cols.iter().any(|c| &c.name == n && c.not_null)
    });
    if cols.is_empty() {
        return Ok(());
    }
    let flags: Vec<String> = cols.iter().map(|(o, _)| format!("{o} IS NULL")).collect();
    let sql = format!(
        "SELECT ROW({})::text, {} FROM {} WHERE {} LIMIT 1",
        plan.key_list(),
        flags.join(", "),
        plan.source_from(),
        flags.join(" OR ")
    );
    let what = "looking for NULLs in columns the ALTER makes NOT NULL";
    let Some(row) = tx.query_opt(&sql, &[]).await.ctx(what)? else {
        return Ok(());
    };
    let key: String = row.col(0, &what)?;
    let mut named = Vec::new();
    for (i, (o, n)) in cols.iter().enumerate() {
        if row.col::<bool>(i + 1, &what)? {
            named.push(if o == n {
                format!("{:?}", o.as_str())
            } else {
                format!("{:?} (new name {:?})", o.as_str(), n.as_str())
            });
        }
    }
    let table = src.table.name.human();
    Err(Error::refused(format!(
        "cannot rewrite {table}: column {} has NULL in at least one row (key ({}) = {key}), and the new definition makes it NOT NULL; PostgreSQL's own ALTER TABLE would fail on that row too",
        named.join(", "),
        plan.key.iter().map(|k| k.name.as_str()).collect::<Vec<_>>().join(", ")
    ))
    .with_state(format!("nothing was changed; {table} is untouched"))
    .with_next("give those rows a value first (UPDATE ... WHERE col IS NULL), or keep the column nullable"))
}
