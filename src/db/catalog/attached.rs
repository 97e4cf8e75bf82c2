//! What hangs on the table and must move with it: user triggers, owned and identity sequences,
//! rules, and publication membership. Read by OID.

use crate::db::ident::{Ident, QualifiedName};
use crate::error::{DbContext, Result, RowExt};
use tokio_postgres::types::Oid;
use tokio_postgres::GenericClient;

#[derive(Clone, Debug)]
pub struct Trigger {
    pub name: Ident,
    pub def: String,
    /// `O` (origin, default), `D` (disabled), `R` (replica), `A` (always).
    pub enabled: String,
    pub comment: Option<String>,
}

#[derive(Clone, Debug)]
pub struct OwnedSequence {
    pub oid: Oid,
    pub name: QualifiedName,
    pub column: Ident,
    /// The column's `attnum`.
    pub attnum: i16,
    /// `a` for a serial (owned) sequence, `i` for an identity sequence.
    pub deptype: String,
    /// The sequence's MINVALUE, MAXVALUE and CYCLE (`pg_sequence`).
    pub bounds: SequenceBounds,
}

/// A sequence's MINVALUE, MAXVALUE and CYCLE, and which sequence (by oid): what the swap narrows
/// on the old identity sequence and a revert gives back (`swap::sequences`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SequenceBounds {
    pub oid: Oid,
    pub min: i64,
    pub max: i64,
    pub cycle: bool,
}

/// User triggers (internal ones, like those behind foreign keys, are left out).
pub async fn triggers(client: &impl GenericClient, oid: Oid) -> Result<Vec<Trigger>> {
    let rows = client
        .query(
            "SELECT t.tgname::text, pg_catalog.pg_get_triggerdef(t.oid), t.tgenabled::text, \
                    pg_catalog.obj_description(t.oid, 'pg_trigger') \
               FROM pg_catalog.pg_trigger t WHERE t.tgrelid = $1 AND NOT t.tgisinternal \
              ORDER BY t.tgname",
            &[&oid],
        )
        .await
        .ctx(format_args!("reading the triggers of table oid {oid}"))?;
    let what = format!("reading the triggers of table oid {oid}");
    rows.iter()
        .map(|r| {
            Ok(Trigger {
                name: Ident::new(r.col::<String>(0, &what)?),
                def: r.col(1, &what)?,
                enabled: r.col(2, &what)?,
                comment: r.col(3, &what)?,
            })
        })
        .collect()
}

pub async fn sequences(client: &impl GenericClient, oid: Oid) -> Result<Vec<OwnedSequence>> {
    let rows = client
        .query(include_str!("../../../sql/sequences.sql"), &[&oid])
        .await
        .ctx(format_args!(
            "reading the sequences owned by table oid {oid}"
        ))?;
    let what = format!("reading the sequences owned by table oid {oid}");
    rows.iter()
        .map(|r| {
            Ok(OwnedSequence {
                oid: r.col(0, &what)?,
                name: QualifiedName::new(r.col::<String>(1, &what)?, r.col::<String>(2, &what)?),
                column: Ident::new(r.col::<String>(3, &what)?),
                attnum: r.col(8, &what)?,
                deptype: r.col(4, &what)?,
                bounds: SequenceBounds {
                    oid: r.col(0, &what)?,
                    min: r.col(5, &what)?,
                    max: r.col(6, &what)?,
                    cycle: r.col(7, &what)?,
                },
            })
        })
        .collect()
}

/// Membership of the table in a publication, with its column list and row filter (PG 15).
#[derive(Clone, Debug)]
pub struct Publication {
    pub name: Ident,
    /// The column list's names, in order (empty without a list).
    pub column_names: Vec<Ident>,
    /// ` WHERE (...)` or empty.
    pub filter: String,
}

/// Publications the table is a member of (explicitly; FOR ALL TABLES ones follow by themselves).
pub async fn publications(client: &impl GenericClient, oid: Oid) -> Result<Vec<Publication>> {
    let rows = client
        .query(
            "SELECT p.pubname::text, \
                    COALESCE(' WHERE (' || pg_catalog.pg_get_expr(pr.prqual, pr.prrelid) || ')', ''), \
                    ARRAY(SELECT a.attname::text \
                            FROM unnest(pr.prattrs::int2[]) WITH ORDINALITY AS k(attnum, ord) \
                            JOIN pg_catalog.pg_attribute a ON a.attrelid = pr.prrelid AND a.attnum = k.attnum \
                           ORDER BY k.ord) \
               FROM pg_catalog.pg_publication_rel pr \
               JOIN pg_catalog.pg_publication p ON p.oid = pr.prpubid \
              WHERE pr.prrelid = $1 ORDER BY 1",
            &[&oid],
        )
        .await
        .ctx(format_args!("reading the publications of table oid {oid}"))?;
    let what = format!("reading the publications of table oid {oid}");
    rows.iter()
        .map(|r| {
            Ok(Publication {
                name: Ident::new(r.col::<String>(0, &what)?),
                filter: r.col(1, &what)?,
                column_names: r
                    .col::<Vec<String>>(2, &what)?
                    .into_iter()
                    .map(Ident::new)
                    .collect(),
            })
        })
        .collect()
}

/// Rules on the table: (name, CREATE RULE text).
pub async fn rules(client: &impl GenericClient, oid: Oid) -> Result<Vec<(Ident, String)>> {
    let rows = client
        .query(
            "SELECT rulename::text, pg_catalog.pg_get_ruledef(oid) FROM pg_catalog.pg_rewrite \
              WHERE ev_class = $1 AND rulename <> '_RETURN' ORDER BY rulename",
            &[&oid],
        )
        .await
        .ctx(format_args!("reading the rules of table oid {oid}"))?;
    let what = format!("reading the rules of table oid {oid}");
    rows.iter()
        .map(|r| Ok((Ident::new(r.col::<String>(0, &what)?), r.col(1, &what)?)))
        .collect()
}
