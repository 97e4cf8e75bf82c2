//! The `objects` table: every object a run creates (shadow table, change log, capture functions
//! and triggers, the reverse capture), so `abort` can always remove exactly what the tool made
//! and nothing else, and the swap can tell whether a capture trigger was touched since.
//!
//! Invariant kept here: every object the tool creates is recorded in the same transaction that
//! creates it (DESIGN.md, "Nothing the tool creates is left behind unknown"); a row is never
//! deleted, only marked dropped.

use super::State;
use crate::db::ident::{literal, QualifiedName};
use crate::error::{DbContext, Result, RowExt};
use tokio_postgres::types::Oid;
use tokio_postgres::{Client, GenericClient};

/// A capture trigger as the catalog shows it under the swap's lock, against its `objects` row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TriggerRecord {
    pub name: String,
    /// `pg_trigger.tgenabled` (`A` always, `O` origin, `R` replica, `D` disabled); None: gone.
    pub enabled: Option<String>,
    /// Whether the trigger's catalog row is the one written when it was recorded (its xmin is
    /// the objects row's, or either was frozen by vacuum, or it was never recorded); None: gone.
    pub same_row: Option<bool>,
}

impl State {
    /// The head of an insert into `objects`, up to its VALUES.
    fn objects_insert(&self) -> String {
        format!(
            "INSERT INTO {} (run_id, kind, schema_name, name, on_table) VALUES",
            self.table("objects")
        )
    }

    /// Records an object the run creates. Call it in the transaction that creates the object.
    pub async fn record_object(
        &self,
        client: &impl GenericClient,
        run: i64,
        kind: &str,
        name: &QualifiedName,
        on_table: Option<Oid>,
    ) -> Result<()> {
        let sql = format!(
            "{} ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
            self.objects_insert()
        );
        client
            .execute(
                &sql,
                &[
                    &run,
                    &kind,
                    &name.schema.as_str(),
                    &name.name.as_str(),
                    &on_table,
                ],
            )
            .await
            .ctx(format_args!("recording the {kind} {}", name.human()))?;
        Ok(())
    }

    /// [`State::record_object`] as one statement with its values as literals, for a batch of
    /// DDL run under the lock discipline (which takes no bind parameters): the record commits
    /// with the DDL that creates the object, or neither does.
    pub fn record_object_statement(
        &self,
        run: i64,
        kind: &str,
        name: &QualifiedName,
        on_table: Option<Oid>,
    ) -> String {
        format!(
            "{} ({run}, {}, {}, {}, {}) ON CONFLICT DO NOTHING",
            self.objects_insert(),
            literal(kind),
            literal(name.schema.as_str()),
            literal(name.name.as_str()),
            on_table.map_or_else(|| "NULL".to_string(), |o| o.to_string()),
        )
    }

    /// [`State::mark_dropped`] for every kind that starts with `prefix`.
    pub async fn mark_dropped_prefix(
        &self,
        client: &impl GenericClient,
        run: i64,
        prefix: &str,
    ) -> Result<()> {
        let sql = format!(
            "UPDATE {} SET dropped_at = now() WHERE run_id = $1 AND starts_with(kind, $2) AND dropped_at IS NULL",
            self.table("objects")
        );
        client
            .execute(&sql, &[&run, &prefix])
            .await
            .ctx("recording dropped objects")?;
        Ok(())
    }

    pub async fn mark_dropped(
        &self,
        client: &impl GenericClient,
        run: i64,
        kind: &str,
    ) -> Result<()> {
        let sql = format!(
            "UPDATE {} SET dropped_at = now() WHERE run_id = $1 AND kind = $2 AND dropped_at IS NULL",
            self.table("objects")
        );
        client
            .execute(&sql, &[&run, &kind])
            .await
            .ctx("recording dropped objects")?;
        Ok(())
    }

    /// Objects of the run not yet dropped: (kind, name, on_table).
    pub async fn live_objects(
        &self,
        client: &Client,
        run: i64,
    ) -> Result<Vec<(String, QualifiedName, Option<Oid>)>> {
        let sql = format!(
            "SELECT kind, schema_name, name, on_table FROM {} WHERE run_id = $1 AND dropped_at IS NULL ORDER BY created_at",
            self.table("objects")
        );
        let rows = client
            .query(&sql, &[&run])
            .await
            .ctx("reading the objects of the run")?;
        let what = format_args!("reading the objects of run {run}");
        rows.iter()
            .map(|r| {
                Ok((
                    r.col::<String>(0, &what)?,
                    QualifiedName::new(r.col::<String>(1, &what)?, r.col::<String>(2, &what)?),
                    r.col::<Option<Oid>>(3, &what)?,
                ))
            })
            .collect()
    }

    /// The capture triggers `names` of the run on `table`, as the catalog shows them now against
    /// their `objects` rows of `kind` (in the swap's transaction, under its lock). A catalog or
    /// objects row frozen by vacuum (xmin reads 2) is judged by presence and mode only.
    pub async fn recorded_triggers(
        &self,
        tx: &impl GenericClient,
        run: i64,
        tables: &[(Oid, String)],
        names: &[String],
    ) -> Result<Vec<(Oid, TriggerRecord)>> {
        let what = "checking the capture triggers";
        let (oids, kinds): (Vec<Oid>, Vec<&str>) =
            tables.iter().map(|(o, k)| (*o, k.as_str())).unzip();
        // One statement for the table and every partition: it runs under the swap's lock.
        let rows = tx
            .query(
                &format!(
                    "SELECT m.rel, n.name, t.tgenabled::text, \
                            o.xmin IS NULL OR t.xmin::text = o.xmin::text OR '2' IN (t.xmin::text, o.xmin::text) \
                       FROM unnest($2::oid[], $4::text[]) WITH ORDINALITY AS m(rel, kind, i) \
                      CROSS JOIN unnest($3::text[]) AS n(name) \
                       LEFT JOIN pg_catalog.pg_trigger t ON t.tgrelid = m.rel AND t.tgname = n.name \
                       LEFT JOIN {} o ON o.run_id = $1 AND o.kind = m.kind AND o.name = n.name \
                      ORDER BY m.i",
                    self.table("objects")
                ),
                &[&run, &oids, &names, &kinds],
            )
            .await
            .ctx(what)?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.col(0, &what)?,
                    TriggerRecord {
                        name: r.col(1, &what)?,
                        enabled: r.col(2, &what)?,
                        same_row: r.col(3, &what)?,
                    },
                ))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_record_statement_quotes_its_values() {
        let s = State::new("hot swap");
        let name = QualifiedName::new("o'brien", "hotswap_capture_7");
        assert_eq!(
            s.record_object_statement(7, "trigger", &name, Some(16390)),
            "INSERT INTO \"hot swap\".\"objects\" (run_id, kind, schema_name, name, on_table) VALUES \
             (7, 'trigger', 'o''brien', 'hotswap_capture_7', 16390) ON CONFLICT DO NOTHING"
        );
        assert!(s
            .record_object_statement(7, "rlog", &name, None)
            .ends_with(", NULL) ON CONFLICT DO NOTHING"));
    }
}
