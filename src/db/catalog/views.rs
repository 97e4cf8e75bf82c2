//! What depends on the table: views over it (`sql/views.sql`), objects that use its row type,
//! and other dependents a swap cannot carry over. Read by OID.

use super::access::{grants, Grant};
use super::attached::{triggers, Trigger};
use super::indexes::{indexes, Index};
use crate::db::ident::{Ident, QualifiedName};
use crate::error::{DbContext, Result, RowExt};
use tokio_postgres::types::Oid;
use tokio_postgres::GenericClient;

#[derive(Clone, Debug)]
pub struct View {
    pub oid: Oid,
    pub name: QualifiedName,
    pub relkind: String,
    pub def: String,
    pub reloptions: Vec<String>,
    pub owner: Ident,
    pub comment: Option<String>,
    pub grants: Vec<Grant>,
    pub column_comments: Vec<(Ident, String)>,
    pub column_defaults: Vec<(Ident, String)>,
    /// INSTEAD OF (and other) triggers on the view.
    pub triggers: Vec<Trigger>,
    /// Rules other than the view's own `_RETURN`, as CREATE RULE text.
    pub rules: Vec<String>,
    /// Materialized views: their indexes, whether they hold data, their tablespace and size.
    pub indexes: Vec<Index>,
    pub populated: bool,
    pub tablespace: Option<Ident>,
    pub bytes: i64,
}

pub async fn dependent_views(client: &impl GenericClient, oid: Oid) -> Result<Vec<View>> {
    let rows = client
        .query(include_str!("../../../sql/views.sql"), &[&oid])
        .await
        .ctx(format_args!(
            "reading the views that depend on table oid {oid}"
        ))?;
    let what = format!("reading the views that depend on table oid {oid}");
    let mut views = Vec::with_capacity(rows.len());
    for r in &rows {
        let voids: Oid = r.col(0, &what)?;
        let column_comments = client
            .query(
                "SELECT a.attname::text, d.description FROM pg_catalog.pg_attribute a \
                   JOIN pg_catalog.pg_description d ON d.objoid = a.attrelid \
                    AND d.classoid = 'pg_catalog.pg_class'::regclass AND d.objsubid = a.attnum \
                  WHERE a.attrelid = $1 AND a.attnum > 0 ORDER BY a.attnum",
                &[&voids],
            )
            .await
            .ctx("reading view column comments")?
            .iter()
            .map(|c| {
                let what = format_args!("reading the column comments of view oid {voids}");
                Ok((
                    Ident::new(c.col::<String>(0, &what)?),
                    c.col::<String>(1, &what)?,
                ))
            })
            .collect::<Result<_>>()?;
        let column_defaults = client
            .query(
                "SELECT a.attname::text, pg_catalog.pg_get_expr(d.adbin, d.adrelid) \
                   FROM pg_catalog.pg_attrdef d JOIN pg_catalog.pg_attribute a \
                     ON a.attrelid = d.adrelid AND a.attnum = d.adnum \
                  WHERE d.adrelid = $1 ORDER BY a.attnum",
                &[&voids],
            )
            .await
            .ctx("reading view column defaults")?
            .iter()
            .map(|c| {
                let what = format_args!("reading the column defaults of view oid {voids}");
                Ok((
                    Ident::new(c.col::<String>(0, &what)?),
                    c.col::<String>(1, &what)?,
                ))
            })
            .collect::<Result<_>>()?;
        let rules = client
            .query(
                "SELECT pg_catalog.pg_get_ruledef(oid) FROM pg_catalog.pg_rewrite \
                  WHERE ev_class = $1 AND rulename <> '_RETURN' ORDER BY rulename",
                &[&voids],
            )
            .await
            .ctx("reading view rules")?
            .iter()
            .map(|r| r.col::<String>(0, &format_args!("reading the rules of view oid {voids}")))
            .collect::<Result<_>>()?;
        let extra = client
            .query_one(
                "SELECT c.relispopulated, ts.spcname::text, pg_catalog.pg_total_relation_size(c.oid) \
                   FROM pg_catalog.pg_class c LEFT JOIN pg_catalog.pg_tablespace ts ON ts.oid = c.reltablespace \
                  WHERE c.oid = $1",
                &[&voids],
            )
            .await
            .ctx("reading a dependent view")?;
        let relkind: String = r.col(3, &what)?;
        views.push(View {
            indexes: if relkind == "m" {
                indexes(client, voids).await?
            } else {
                Vec::new()
            },
            populated: extra.col(0, &what)?,
            tablespace: extra.col::<Option<String>>(1, &what)?.map(Ident::new),
            bytes: extra.col(2, &what)?,
            column_defaults,
            rules,
            triggers: triggers(client, voids).await?,
            oid: voids,
            name: QualifiedName::new(r.col::<String>(1, &what)?, r.col::<String>(2, &what)?),
            relkind: r.col(3, &what)?,
            def: r.col(5, &what)?,
            reloptions: r.col::<Option<Vec<String>>>(6, &what)?.unwrap_or_default(),
            owner: Ident::new(r.col::<String>(7, &what)?),
            comment: r.col(8, &what)?,
            grants: grants(client, voids).await?,
            column_comments,
        });
    }
    Ok(views)
}

/// Objects that use the table's row type (see sql/rowtype_dependents.sql).
pub async fn rowtype_dependents(client: &impl GenericClient, oid: Oid) -> Result<Vec<String>> {
    let rows = client
        .query(include_str!("../../../sql/rowtype_dependents.sql"), &[&oid])
        .await
        .ctx(format_args!(
            "reading the objects that use the row type of table oid {oid}"
        ))?;
    let what = format!("reading the objects that use the row type of table oid {oid}");
    rows.iter().map(|r| r.col(0, &what)).collect()
}

/// Objects that depend on the table that a swap cannot carry over (see sql/other_dependents.sql).
pub async fn other_dependents(client: &impl GenericClient, oid: Oid) -> Result<Vec<String>> {
    let rows = client
        .query(include_str!("../../../sql/other_dependents.sql"), &[&oid])
        .await
        .ctx(format_args!(
            "reading the objects that depend on table oid {oid}"
        ))?;
    let what = format!("reading the objects that depend on table oid {oid}");
    rows.iter().map(|r| r.col(0, &what)).collect()
}

/// Objects besides the views themselves that keep views `oids` from being dropped: (object,
/// view) descriptions (see sql/view_dependents.sql).
pub async fn view_dependents(
    client: &impl GenericClient,
    oids: &[Oid],
) -> Result<Vec<(String, String)>> {
    let what = "reading the objects that depend on the views over the table";
    let rows = client
        .query(include_str!("../../../sql/view_dependents.sql"), &[&oids])
        .await
        .ctx(what)?;
    rows.iter()
        .map(|r| Ok((r.col(0, &what)?, r.col(1, &what)?)))
        .collect()
}

/// Whether a column some view reads changes its type, typmod or collation from the table
/// `source` to `shadow`, through the column pairs `(from, to)` (source name, shadow name): then
/// PostgreSQL refuses `CREATE OR REPLACE VIEW` ("cannot change data type of view column"), and
/// the swap drops and creates the views again (`swap::views`).
pub async fn view_column_changes(
    client: &impl GenericClient,
    source: Oid,
    shadow: Oid,
    from: &[&str],
    to: &[&str],
) -> Result<bool> {
    let what = "comparing the column types of the old and the new table";
    client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM unnest($3::text[], $4::text[]) AS m(src, dst) \
               JOIN pg_catalog.pg_attribute a ON a.attrelid = $1 AND a.attname = m.src \
               JOIN pg_catalog.pg_attribute b ON b.attrelid = $2 AND b.attname = m.dst \
              WHERE (a.atttypid, a.atttypmod, a.attcollation) \
                    IS DISTINCT FROM (b.atttypid, b.atttypmod, b.attcollation) \
                AND EXISTS (SELECT 1 FROM pg_catalog.pg_depend d \
                             WHERE d.classid = 'pg_catalog.pg_rewrite'::regclass \
                               AND d.refclassid = 'pg_catalog.pg_class'::regclass \
                               AND d.refobjid = $1 AND d.refobjsubid = a.attnum))",
            &[&source, &shadow, &from, &to],
        )
        .await
        .ctx(what)?
        .col(0, &what)
}
