//! The user's real `ALTER TABLE` on a clone of sampled rows (extended protocol, one statement,
//! as on the shadow), in its own savepoint, then the comparison with the mapping's rows. A
//! failure is sorted by SQLSTATE: the rows (the ALTER or the mapping fails on them), the
//! server (returned as it is), or the clone (the check is not done).

use super::compare::{differences, key_names, Diff};
use super::{class, step, Class};
use crate::db::ident::{Ident, QualifiedName};
use crate::error::{DbContext, Error, Result};
use crate::rewrite::plan::Plan;
use tokio_postgres::Transaction;

/// What happened to one clone.
pub(super) enum Trial {
    /// PostgreSQL's ALTER failed on the rows (a data error).
    AlterFailed(Error),
    /// The ALTER could not be applied to the clone for a reason that is not the rows.
    NotApplicable(Error),
    /// The ALTER succeeded, the mapping failed on the rows.
    MappingFailed(Error),
    Compared(Vec<Diff>),
}

/// Applies the ALTER to one clone whose rows went through the mapping (`mapped`: the outcome of
/// [`map_rows`]) and compares.
#[allow(clippy::too_many_arguments)]
pub(super) async fn trial(
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
