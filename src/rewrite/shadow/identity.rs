//! The shadow's identity sequences before and after the ALTER: made the source's twins, then
//! marked, so that afterwards the plan knows which ones the ALTER itself positioned (`RESTART`,
//! or a new identity after `DROP IDENTITY`). The swap carries the old position into every other
//! one (`swap::sequences`), as PostgreSQL's ALTER TABLE keeps the sequence where it was.

use crate::db::ident::{Ident, QualifiedName};
use crate::error::{DbContext, Result, RowExt};
use crate::rewrite::preflight::Source;
use crate::rewrite::step::Step;

/// Identity sequences: LIKE gives the new one the right options but not always the right type;
/// make it the old one's twin before the ALTER, so a type change then does to it exactly what
/// ALTER TABLE would. Reads the new sequence's name (it exists once the shadow does).
pub(crate) async fn identity_sequence_steps(
    tx: &tokio_postgres::Transaction<'_>,
    src: &Source,
    shadow: &QualifiedName,
) -> Result<Vec<Step>> {
    let mut steps = Vec::new();
    for s in src.sequences.iter().filter(|s| s.deptype == "i") {
        let what = "reading an identity sequence";
        let row = tx
            .query_one(
                "SELECT pg_catalog.pg_get_serial_sequence($1, $2), \
                        pg_catalog.format_type(seqtypid, NULL), seqstart, seqincrement, seqmin, seqmax, seqcache, seqcycle \
                   FROM pg_catalog.pg_sequence WHERE seqrelid = $3",
                &[&shadow.to_string(), &s.column.as_str(), &s.oid],
            )
            .await
            .ctx(what)?;
        let new_seq: Option<String> = row.col(0, &what)?;
        let Some(new_seq) = new_seq else { continue };
        let (ty, start, inc, min, max, cache, cycle): (String, i64, i64, i64, i64, i64, bool) = (
            row.col(1, &what)?,
            row.col(2, &what)?,
            row.col(3, &what)?,
            row.col(4, &what)?,
            row.col(5, &what)?,
            row.col(6, &what)?,
            row.col(7, &what)?,
        );
        steps.push(Step::new(
            format!(
                "ALTER SEQUENCE {new_seq} AS {ty} INCREMENT BY {inc} MINVALUE {min} MAXVALUE {max} \
                 START WITH {start} CACHE {cache} {}",
                if cycle { "CYCLE" } else { "NO CYCLE" }
            ),
            "copying an identity sequence's options",
        ));
    }
    Ok(steps)
}

/// A shadow identity sequence as the ALTER found it: its column's attnum and the sequence's oid.
pub(super) struct Marked {
    attnum: i16,
    oid: u32,
}

/// Before the ALTER: every identity sequence of the shadow is set to its START value, already
/// used (`setval(seq, start, true)`). Of the ALTER's actions only `RESTART` (with or without a
/// value) leaves a sequence not called, and `DROP IDENTITY` then `ADD GENERATED` makes another
/// sequence: [`positioned_by_alter`] tells them apart from all the others afterwards (checked
/// against PostgreSQL 15: `SET INCREMENT`, `SET MAXVALUE`, `SET START`, `SET GENERATED`,
/// `SET CYCLE` and `TYPE` keep `is_called`).
pub(super) async fn mark(
    tx: &tokio_postgres::Transaction<'_>,
    shadow_oid: u32,
) -> Result<Vec<Marked>> {
    let what = "marking the shadow's identity sequences before the ALTER";
    let marked: Vec<Marked> = identity_sequences(tx, shadow_oid)
        .await?
        .into_iter()
        .map(|s| Marked {
            attnum: s.attnum,
            oid: s.oid,
        })
        .collect();
    let oids: Vec<u32> = marked.iter().map(|m| m.oid).collect();
    tx.execute(
        "SELECT pg_catalog.setval(s.seqrelid::regclass, s.seqstart, true) \
           FROM pg_catalog.pg_sequence s WHERE s.seqrelid = ANY($1)",
        &[&oids],
    )
    .await
    .ctx(what)?;
    Ok(marked)
}

/// The identity sequences of `oid` (`catalog::sequences`, the one definition).
async fn identity_sequences(
    tx: &tokio_postgres::Transaction<'_>,
    oid: u32,
) -> Result<Vec<crate::db::catalog::OwnedSequence>> {
    Ok(crate::db::catalog::sequences(tx, oid)
        .await?
        .into_iter()
        .filter(|s| s.deptype == "i")
        .collect())
}

/// After the ALTER: the shadow's identity columns whose sequence position the ALTER decided —
/// a sequence it restarted (no longer called), or one it made anew (not a marked one). An
/// identity column the ALTER added to a column that had none is left out: the source has no
/// sequence to carry from, so nothing overrides it anyway.
pub(super) async fn positioned_by_alter(
    tx: &tokio_postgres::Transaction<'_>,
    shadow_oid: u32,
    marked: &[Marked],
) -> Result<Vec<Ident>> {
    let what = "reading the shadow's identity sequences after the ALTER";
    let sequences = identity_sequences(tx, shadow_oid).await?;
    let oids: Vec<u32> = sequences.iter().map(|s| s.oid).collect();
    // Which are called (`last_value` not NULL), in one read.
    let called: Vec<u32> = tx
        .query(
            "SELECT s FROM unnest($1::pg_catalog.oid[]) s \
              WHERE pg_catalog.pg_sequence_last_value(s::pg_catalog.regclass) IS NOT NULL",
            &[&oids],
        )
        .await
        .ctx(what)?
        .iter()
        .map(|r| r.col(0, &what))
        .collect::<Result<_>>()?;
    let mut out = Vec::new();
    for s in sequences {
        let called = called.contains(&s.oid);
        let was = marked.iter().find(|m| m.attnum == s.attnum);
        if was.is_some_and(|m| m.oid != s.oid || !called) {
            out.push(s.column);
        }
    }
    Ok(out)
}
