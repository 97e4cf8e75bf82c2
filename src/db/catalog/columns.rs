//! The table's columns (`sql/columns.sql`) and, on PostgreSQL 18, its NOT NULL constraints as
//! pg_constraint rows. Read by OID; names come back as [`Ident`]s.

use super::version::{for_version, server_version};
use crate::db::ident::Ident;
use crate::error::{DbContext, Result, RowExt};
use tokio_postgres::types::Oid;
use tokio_postgres::GenericClient;

#[derive(Clone, Debug)]
pub struct Column {
    pub num: i32,
    pub name: Ident,
    /// Type with its modifier, e.g. `character varying(10)`.
    pub type_name: String,
    /// Type without modifier, e.g. `character varying`.
    pub base_type: String,
    pub type_oid: Oid,
    pub not_null: bool,
    /// `s` for a stored generated column, empty otherwise.
    pub generated: String,
    /// `a` (ALWAYS), `d` (BY DEFAULT) or empty.
    pub identity: String,
    pub default_expr: Option<String>,
    pub comment: Option<String>,
    /// `SET STATISTICS` target, -1 for the default.
    pub stat_target: i32,
    /// Per-column options (`n_distinct=100`).
    pub options: Vec<String>,
}

impl Column {
    pub fn is_generated(&self) -> bool {
        !self.generated.is_empty()
    }

    /// The per-column settings `CREATE TABLE ... LIKE` does not copy, as statements that give
    /// them to the column of the same name on `table`: its statistics target and its options
    /// (`n_distinct`...), with what each does. Errors: an option that is not `name=value`.
    pub fn settings_sql(
        &self,
        table: &crate::db::ident::QualifiedName,
    ) -> Result<Vec<(String, &'static str)>> {
        let mut out = Vec::new();
        if self.stat_target >= 0 {
            out.push((
                format!(
                    "ALTER TABLE {table} ALTER COLUMN {} SET STATISTICS {}",
                    self.name, self.stat_target
                ),
                "copying a column's statistics target",
            ));
        }
        if !self.options.is_empty() {
            let opts = self
                .options
                .iter()
                .map(|o| crate::db::ident::reloption_sql(o, ""))
                .collect::<Result<Vec<_>>>()?;
            out.push((
                format!(
                    "ALTER TABLE {table} ALTER COLUMN {} SET ({})",
                    self.name,
                    opts.join(", ")
                ),
                "copying a column's options",
            ));
        }
        Ok(out)
    }

    /// A row of sql/columns.sql; a row of another shape (a catalog that changed) is an error
    /// naming `what`, the column and the server version, not a panic (issue 14).
    pub fn from_row(r: &tokio_postgres::Row, what: &dyn std::fmt::Display) -> Result<Column> {
        Ok(Column {
            num: r.col(0, what)?,
            name: Ident::new(r.col::<String>(1, what)?),
            type_name: r.col(2, what)?,
            base_type: r.col(3, what)?,
            type_oid: r.col(4, what)?,
            not_null: r.col(5, what)?,
            generated: r.col(6, what)?,
            identity: r.col(7, what)?,
            default_expr: r.col(8, what)?,
            comment: r.col(9, what)?,
            stat_target: r.col(10, what)?,
            options: r.col::<Option<Vec<String>>>(11, what)?.unwrap_or_default(),
        })
    }
}

/// A NOT NULL constraint as a row of pg_constraint (PostgreSQL 18; none before).
#[derive(Clone, Debug)]
pub struct NotNull {
    pub name: Ident,
    pub column: Ident,
    pub validated: bool,
    pub no_inherit: bool,
}

/// The table's NOT NULL constraints (PostgreSQL 18 keeps them as named pg_constraint rows that
/// may be NOT VALID or NO INHERIT; older servers return none, their NOT NULLs are attnotnull).
pub async fn not_null_constraints(client: &impl GenericClient, oid: Oid) -> Result<Vec<NotNull>> {
    let version = server_version(client).await?;
    let sql = for_version(
        "SELECT con.conname::text, a.attname::text, con.convalidated, con.connoinherit \
           FROM pg_catalog.pg_constraint con \
           JOIN pg_catalog.pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = con.conkey[1] \
          WHERE con.conrelid = $1 AND con.contype = 'n' ORDER BY 1",
        version,
    );
    let rows = client.query(&*sql, &[&oid]).await.ctx(format_args!(
        "reading the NOT NULL constraints of table oid {oid}"
    ))?;
    let what = format!("reading the NOT NULL constraints of table oid {oid}");
    rows.iter()
        .map(|r| {
            Ok(NotNull {
                name: Ident::new(r.col::<String>(0, &what)?),
                column: Ident::new(r.col::<String>(1, &what)?),
                validated: r.col(2, &what)?,
                no_inherit: r.col(3, &what)?,
            })
        })
        .collect()
}

pub async fn columns(client: &impl GenericClient, oid: Oid) -> Result<Vec<Column>> {
    let rows = client
        .query(include_str!("../../../sql/columns.sql"), &[&oid])
        .await
        .ctx(format_args!("reading the columns of table oid {oid}"))?;
    let what = format!("reading the columns of table oid {oid}");
    rows.iter().map(|r| Column::from_row(r, &what)).collect()
}
