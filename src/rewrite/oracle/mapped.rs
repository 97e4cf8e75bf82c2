//! The mapping's side of the sample oracle: tables shaped like the shadow, and the sampled rows
//! sent through the column mapping exactly as the copy sends them (`copier::copy_form`, the
//! copy's own statements), so the check tests the path the copy takes. Invariant: the form and
//! the statements come from the copier, never a second copy of them.

use crate::db::ident::{Ident, QualifiedName};
use crate::error::{DbContext, Result};
use crate::rewrite::plan::{ColumnSource, MappedColumn, Plan};
use bytes::Bytes;
use futures_util::{pin_mut, SinkExt, StreamExt};
use tokio_postgres::Transaction;

/// A table like the shadow (as the copy finds it: no indexes, its check constraints) for the
/// mapping to write into, with the row number. The defaults of `no_default` (new columns not
/// compared, whose default calls `nextval`) are dropped, with their NOT NULL: they would draw
/// from the shadow's own sequence (`ADD COLUMN n serial`), and the copy would number from
/// 2,001 instead of 1.
pub(super) async fn create_mapped(
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
pub(super) async fn map_rows(
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
    let form = crate::rewrite::copier::copy_form(tx, plan).await?;
    if !form.insert_select.is_empty() {
        return tx
            .execute(
                &crate::rewrite::copier::insert_select_statement(&p, &alias),
                &[],
            )
            .await
            .ctx(what());
    }
    if form.text {
        // As the copy's workers pin them (copier.rs); undone with the check's savepoint.
        tx.batch_execute("SET LOCAL extra_float_digits = 3")
            .await
            .ctx(what())?;
    }
    let (out_sql, in_sql) = crate::rewrite::copier::copy_statements_in(&p, &form, &alias);
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
