//! How bloated the tables are: an estimate per ordinary table, heap and btree indexes, from the
//! planner's statistics (`sql/bloat.sql`, the pgexperts / check_postgres estimate; no extension
//! needed), the heap measured instead by `pgstattuple_approx` when the `pgstattuple` extension
//! is installed in the database and the role may call it.
//!
//! Invariant kept here: reads only; tables are read by OID, the filters are bind parameters, and
//! the extension's schema reaches SQL only as an [`Ident`]. A table without statistics is listed
//! with no estimate rather than a guess.

use crate::db::ident::{Ident, QualifiedName};
use crate::error::{DbContext, Result, RowExt};
use serde::Serialize;
use tokio_postgres::types::Oid;
use tokio_postgres::GenericClient;

/// How a table's bloat was estimated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// From pg_class and pg_stats (heap and btree indexes).
    Statistics,
    /// The heap by `pgstattuple_approx` (free space and dead tuples), the indexes from the
    /// statistics.
    #[serde(rename = "pgstattuple_approx")]
    Pgstattuple,
    /// Not estimated: the table (or a column of it) has no statistics; ANALYZE it.
    NoStatistics,
}

impl Method {
    pub fn label(self) -> &'static str {
        match self {
            Method::Statistics => "statistics",
            Method::Pgstattuple => "pgstattuple_approx",
            Method::NoStatistics => "no statistics (ANALYZE it)",
        }
    }
}

/// One table's estimated bloat.
#[derive(Clone, Debug)]
pub struct TableBloat {
    pub oid: Oid,
    pub name: QualifiedName,
    pub heap_bytes: i64,
    pub index_bytes: i64,
    /// Space in the heap beyond what its rows need; None without statistics.
    pub heap_bloat_bytes: Option<i64>,
    /// The same over its btree indexes that have statistics.
    pub index_bloat_bytes: i64,
    pub indexes_estimated: i64,
    pub indexes: i64,
    pub method: Method,
}

impl TableBloat {
    /// Heap and indexes.
    pub fn size(&self) -> i64 {
        self.heap_bytes + self.index_bytes
    }

    pub fn bloat_bytes(&self) -> Option<i64> {
        self.heap_bloat_bytes.map(|h| h + self.index_bloat_bytes)
    }

    /// Bloat over size (0..1); None without an estimate.
    pub fn ratio(&self) -> Option<f64> {
        let b = self.bloat_bytes()?;
        match self.size() {
            0 => Some(0.0),
            s => Some((b as f64 / s as f64).clamp(0.0, 1.0)),
        }
    }
}

/// Every ordinary table of at least `min_size` bytes (heap and indexes) outside the system
/// schemas and `exclude_schema`, with its estimated bloat, in oid order.
pub async fn table_bloat(
    client: &impl GenericClient,
    exclude_schema: &str,
    min_size: i64,
) -> Result<Vec<TableBloat>> {
    let what = "estimating the tables' bloat";
    let rows = client
        .query(
            include_str!("../../../sql/bloat.sql"),
            &[&exclude_schema, &min_size],
        )
        .await
        .ctx(what)?;
    let mut out = rows
        .iter()
        .map(|r| {
            let heap_bloat_bytes: Option<i64> = r.col(5, &what)?;
            Ok(TableBloat {
                oid: r.col(0, &what)?,
                name: QualifiedName::new(r.col::<String>(1, &what)?, r.col::<String>(2, &what)?),
                heap_bytes: r.col(3, &what)?,
                index_bytes: r.col(4, &what)?,
                heap_bloat_bytes,
                index_bloat_bytes: r.col(6, &what)?,
                indexes_estimated: r.col(7, &what)?,
                indexes: r.col(8, &what)?,
                method: match heap_bloat_bytes {
                    Some(_) => Method::Statistics,
                    None => Method::NoStatistics,
                },
            })
        })
        .collect::<Result<Vec<_>>>()?;
    if let Some(schema) = pgstattuple_schema(client).await? {
        for t in &mut out {
            if let Some(b) = pgstattuple_heap_bloat(client, &schema, t.oid).await {
                t.heap_bloat_bytes = Some(b);
                t.method = Method::Pgstattuple;
            }
        }
    }
    Ok(out)
}

/// The schema of the `pgstattuple` extension, when it is installed in this database.
async fn pgstattuple_schema(client: &impl GenericClient) -> Result<Option<Ident>> {
    let what = "looking for the pgstattuple extension";
    let row = client
        .query_opt(
            "SELECT n.nspname::text FROM pg_catalog.pg_extension e \
               JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace \
              WHERE e.extname = $1::text",
            &[&"pgstattuple"],
        )
        .await
        .ctx(what)?;
    match row {
        Some(r) => Ok(Some(Ident::new(r.col::<String>(0, &what)?))),
        None => Ok(None),
    }
}

/// The heap's free space and dead tuples by `pgstattuple_approx` (reads the pages the
/// visibility map does not vouch for). None when the call fails (the role lacks
/// pg_stat_scan_tables, say): the statistics estimate stands.
async fn pgstattuple_heap_bloat(
    client: &impl GenericClient,
    schema: &Ident,
    oid: Oid,
) -> Option<i64> {
    let sql = format!(
        "SELECT (approx_free_space + dead_tuple_len)::int8 \
           FROM {schema}.pgstattuple_approx($1::oid::regclass)"
    );
    let row = client.query_one(&sql, &[&oid]).await.ok()?;
    row.try_get::<_, i64>(0).ok()
}
