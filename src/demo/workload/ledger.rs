//! The table under test and its ledger: creating both with the same rows, and comparing them
//! row for row after a run (the proof that no write was lost). Part of the workload (`super`).

use crate::db::ident::{Ident, QualifiedName};
use std::fmt;
use tokio_postgres::Client;

/// The table under test, shaped `(id int PRIMARY KEY, val int, note text)`, and its ledger (the
/// same with `bigint`), with caller-chosen (possibly awkward) names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableSpec {
    pub table: QualifiedName,
    pub ledger: QualifiedName,
    pub id_col: Ident,
    pub val_col: Ident,
    pub note_col: Ident,
}

impl TableSpec {
    /// `schema.table` with columns `id`, `val`, `note` and the ledger `schema.<table>_ledger`.
    pub fn simple(schema: &str, table: &str) -> TableSpec {
        TableSpec {
            table: QualifiedName::new(schema, table),
            ledger: QualifiedName::new(schema, crate::db::ident::fit_name(table, "_ledger")),
            id_col: Ident::new("id"),
            val_col: Ident::new("val"),
            note_col: Ident::new("note"),
        }
    }

    /// `"id", "val", "note"` quoted, in table order.
    pub(super) fn columns(&self) -> String {
        format!("{}, {}, {}", self.id_col, self.val_col, self.note_col)
    }
}

/// Creates the table and the ledger (and their schemas when missing) and fills both with ids
/// `1..=rows` (`val = id % 1000`, a ~100 byte `note`), then `ANALYZE`s them.
pub async fn create_tables(
    client: &Client,
    spec: &TableSpec,
    rows: i64,
) -> Result<(), tokio_postgres::Error> {
    for schema in [&spec.table.schema, &spec.ledger.schema] {
        let exists = client
            .query_opt(
                "SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = $1",
                &[&schema.as_str()],
            )
            .await?
            .is_some();
        if !exists {
            client
                .batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {schema}"))
                .await?;
        }
    }
    // The ledger is never rewritten, so it is created as wide as the widest shape a test
    // rewrites the table to: keys beyond 2^31 can be recorded after an `int` -> `bigint` swap.
    for (table, int) in [(&spec.table, "int"), (&spec.ledger, "bigint")] {
        client
            .batch_execute(&format!(
                "CREATE TABLE {table} ({} {int} PRIMARY KEY, {} {int}, {} text)",
                spec.id_col, spec.val_col, spec.note_col
            ))
            .await?;
    }
    let cols = spec.columns();
    client
        .execute(
            &format!(
                "INSERT INTO {} ({cols}) \
                 SELECT g, g % 1000, repeat(md5(g::text), 3) FROM generate_series(1, $1::int8) g",
                spec.table
            ),
            &[&rows],
        )
        .await?;
    client
        .batch_execute(&format!(
            "INSERT INTO {} ({cols}) SELECT {cols} FROM {}; ANALYZE {}, {}",
            spec.ledger, spec.table, spec.table, spec.ledger
        ))
        .await
}

/// How the table and the ledger differ.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompareResult {
    pub table_rows: i64,
    pub ledger_rows: i64,
    /// Rows of the table that the ledger does not have (`EXCEPT ALL`).
    pub only_in_table: i64,
    /// Rows of the ledger that the table does not have.
    pub only_in_ledger: i64,
    /// Up to 10 of each, as row text.
    pub sample_only_in_table: Vec<String>,
    pub sample_only_in_ledger: Vec<String>,
}

impl CompareResult {
    pub fn is_identical(&self) -> bool {
        self.only_in_table == 0 && self.only_in_ledger == 0 && self.table_rows == self.ledger_rows
    }
}

impl fmt::Display for CompareResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "table {} rows, ledger {} rows; {} only in table {:?}; {} only in ledger {:?}",
            self.table_rows,
            self.ledger_rows,
            self.only_in_table,
            self.sample_only_in_table,
            self.only_in_ledger,
            self.sample_only_in_ledger
        )
    }
}

/// Compares the table with the ledger row by row (`EXCEPT ALL` both ways). Columns are compared
/// as text, so a rewrite that changed a column's type (`int` -> `bigint`) but kept its values
/// compares equal.
pub async fn compare(
    client: &Client,
    spec: &TableSpec,
) -> Result<CompareResult, tokio_postgres::Error> {
    let select = |table: &QualifiedName| {
        format!(
            "SELECT {id}::text AS id, {val}::text AS val, {note}::text AS note FROM {table}",
            id = spec.id_col,
            val = spec.val_col,
            note = spec.note_col
        )
    };
    let sql = format!(
        "WITH t AS MATERIALIZED ({}), l AS MATERIALIZED ({}), \
              tl AS MATERIALIZED (SELECT * FROM t EXCEPT ALL SELECT * FROM l), \
              lt AS MATERIALIZED (SELECT * FROM l EXCEPT ALL SELECT * FROM t) \
         SELECT (SELECT count(*) FROM t), (SELECT count(*) FROM l), \
                (SELECT count(*) FROM tl), (SELECT count(*) FROM lt), \
                ARRAY(SELECT row(tl.*)::text FROM tl ORDER BY 1 LIMIT 10), \
                ARRAY(SELECT row(lt.*)::text FROM lt ORDER BY 1 LIMIT 10)",
        select(&spec.table),
        select(&spec.ledger)
    );
    let row = client.query_one(&sql, &[]).await?;
    Ok(CompareResult {
        table_rows: row.try_get(0)?,
        ledger_rows: row.try_get(1)?,
        only_in_table: row.try_get(2)?,
        only_in_ledger: row.try_get(3)?,
        sample_only_in_table: row.try_get(4)?,
        sample_only_in_ledger: row.try_get(5)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simple_spec_names_the_ledger_after_the_table() {
        let spec = TableSpec::simple("public", "accounts");
        assert_eq!(spec.ledger.human(), "public.accounts_ledger");
        assert_eq!(spec.id_col.as_str(), "id");
    }
}
