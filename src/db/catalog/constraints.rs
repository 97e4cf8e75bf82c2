//! The table's constraints (`sql/constraints.sql`) and the foreign keys of other tables that
//! reference it (`sql/incoming_fks.sql`). Read by OID.

use crate::db::ident::{Ident, QualifiedName};
use crate::error::{DbContext, Result, RowExt};
use tokio_postgres::types::Oid;
use tokio_postgres::GenericClient;

#[derive(Clone, Debug)]
pub struct Constraint {
    pub oid: Oid,
    pub name: Ident,
    /// `c` (check) or `f` (foreign key).
    pub kind: String,
    pub def: String,
    pub validated: bool,
    pub references: Oid,
    pub columns: Vec<Ident>,
    pub comment: Option<String>,
    /// For a foreign key: the referenced table's columns, in order (empty for a check).
    pub referenced_columns: Vec<Ident>,
    /// For a foreign key: the referenced table (read by oid, not from `def`, whose name depends
    /// on the search_path).
    pub referenced_table: Option<QualifiedName>,
}

#[derive(Clone, Debug)]
pub struct IncomingForeignKey {
    pub name: Ident,
    pub table_oid: Oid,
    pub table: QualifiedName,
    pub def: String,
    pub validated: bool,
    pub comment: Option<String>,
    /// The columns of the referenced table (this one) it points at, in order.
    pub referenced_columns: Vec<Ident>,
    /// Whether the referencing table is partitioned.
    pub partitioned: bool,
}

pub async fn constraints(client: &impl GenericClient, oid: Oid) -> Result<Vec<Constraint>> {
    let rows = client
        .query(include_str!("../../../sql/constraints.sql"), &[&oid])
        .await
        .ctx(format_args!("reading the constraints of table oid {oid}"))?;
    let what = format!("reading the constraints of table oid {oid}");
    rows.iter()
        .map(|r| {
            Ok(Constraint {
                oid: r.col(0, &what)?,
                name: Ident::new(r.col::<String>(1, &what)?),
                kind: r.col(2, &what)?,
                def: r.col(3, &what)?,
                validated: r.col(4, &what)?,
                references: r.col(5, &what)?,
                columns: r
                    .col::<Vec<String>>(6, &what)?
                    .into_iter()
                    .map(Ident::new)
                    .collect(),
                comment: r.col(7, &what)?,
                referenced_columns: r
                    .col::<Vec<String>>(8, &what)?
                    .into_iter()
                    .map(Ident::new)
                    .collect(),
                referenced_table: match (
                    r.col::<Option<String>>(9, &what)?,
                    r.col::<Option<String>>(10, &what)?,
                ) {
                    (Some(schema), Some(name)) => Some(QualifiedName::new(schema, name)),
                    _ => None,
                },
            })
        })
        .collect()
}

pub async fn incoming_foreign_keys(
    client: &impl GenericClient,
    oid: Oid,
) -> Result<Vec<IncomingForeignKey>> {
    let rows = client
        .query(include_str!("../../../sql/incoming_fks.sql"), &[&oid])
        .await
        .ctx(format_args!(
            "reading foreign keys that reference table oid {oid}"
        ))?;
    let what = format!("reading foreign keys that reference table oid {oid}");
    rows.iter()
        .map(|r| {
            Ok(IncomingForeignKey {
                name: Ident::new(r.col::<String>(0, &what)?),
                table_oid: r.col(1, &what)?,
                table: QualifiedName::new(r.col::<String>(2, &what)?, r.col::<String>(3, &what)?),
                def: r.col(4, &what)?,
                validated: r.col(5, &what)?,
                comment: r.col(6, &what)?,
                referenced_columns: r
                    .col::<Vec<String>>(7, &what)?
                    .into_iter()
                    .map(Ident::new)
                    .collect(),
                partitioned: r.col(8, &what)?,
            })
        })
        .collect()
}
