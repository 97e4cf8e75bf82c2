//! The user's real `ALTER TABLE` on a clone of sampled rows (extended protocol, one statement,
//! as on the shadow), in its own savepoint, then the comparison with the mapping's rows. A
//! failure is sorted by SQLSTATE: the rows (the ALTER or the mapping fails on them), the
//! server (returned as it is), or the clone (the check is not done).

use super::compare::{differences, key_names, Diff};
use super::{class, step, Class};
use crate::db::catalog;
use crate::db::ident::{fit_name, Ident, QualifiedName};
use crate::error::{DbContext, Error, Result};
use crate::rewrite::plan::Plan;
use crate::rewrite::preflight::Source;
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
    src: &Source,
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
        let alter = clone_names(tx, src, clone, oid, alter).await?;
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
    let altered = catalog::relation_name(tx, oid)
        .await?
        .ok_or_else(|| Error::failed("sample check: the sample table vanished"))?;
    let diffs = differences(tx, &altered, mapped_table, row, compared, &key_names(plan)).await?;
    Ok(Trial::Compared(diffs))
}

/// The ALTER with the source's index and constraint names as the clone has them (issue 15:
/// `DROP CONSTRAINT account_pkey` names the clone's `<clone>_pkey`), and fresh names for new
/// index-backed constraints. `CREATE TABLE ... (LIKE ... INCLUDING INDEXES)` copies the source's
/// indexes in the order of their OIDs, so the n-th index of each (by OID) are twins; when the
/// key columns do not pair up, the text is left as written (the check may then not be done).
async fn clone_names(
    tx: &Transaction<'_>,
    src: &Source,
    clone: &QualifiedName,
    clone_oid: u32,
    alter: &str,
) -> Result<String> {
    let mut theirs = catalog::indexes(tx, clone_oid).await?;
    theirs.sort_by_key(|i| i.oid);
    let mut ours: Vec<&catalog::Index> = src.indexes.iter().collect();
    ours.sort_by_key(|i| i.oid);
    let twins = ours.len() == theirs.len()
        && ours
            .iter()
            .zip(&theirs)
            .all(|(a, b)| a.key_columns == b.key_columns && a.constraint_type == b.constraint_type);
    let existing: Vec<(Ident, Ident)> = if twins {
        ours.iter()
            .zip(&theirs)
            .map(|(a, b)| (a.name.clone(), b.name.clone()))
            .collect()
    } else {
        Vec::new()
    };
    let (text, _) = crate::rewrite::alter_text::translate_names(alter, &existing, |n| {
        Ident::new(fit_name(clone.name.as_str(), &format!("_k{n}")))
    });
    Ok(text)
}
