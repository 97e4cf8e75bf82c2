//! `pg-hotswap bloat`: the tables by estimated bloat (heap and indexes), largest first, with
//! how each was estimated; and the tables `run --bloated-over` rebuilds. The estimate itself is
//! `catalog::table_bloat`.
//!
//! Invariant kept here: reads only; the tool's own state schema is never listed.

use super::flags::{
    check_schema_name, parse_ratio, parse_size, resolve_conn, ConnArgs, OutputFormat,
};
use crate::db::catalog::{self, TableBloat};
use crate::db::conn::{self, ConnSpec};
use crate::error::Result;
use crate::output::ui;
use clap::Args;
use serde::Serialize;
use std::time::Duration;

#[derive(Args, Debug)]
pub struct BloatArgs {
    #[command(flatten)]
    pub conn: ConnArgs,
    /// Only tables whose estimated bloat is at least this share of their size (0.3 or 30%).
    #[arg(long, default_value = "0", value_parser = parse_ratio)]
    pub min_ratio: f64,
    /// Only tables of at least this size, heap and indexes (e.g. 1GB, 500MB).
    #[arg(long, default_value = "0", value_parser = parse_size)]
    pub min_size: i64,
    /// The tool's state schema (never listed).
    #[arg(long, default_value = "hotswap")]
    pub state_schema: String,
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

/// One line of the listing.
#[derive(Debug, Serialize)]
pub struct BloatRow {
    pub table: String,
    pub size_bytes: i64,
    pub heap_bytes: i64,
    pub index_bytes: i64,
    pub bloat_ratio: Option<f64>,
    pub bloat_bytes: Option<i64>,
    pub heap_bloat_bytes: Option<i64>,
    pub index_bloat_bytes: i64,
    /// statistics, pgstattuple_approx, or no_statistics.
    pub method: catalog::Method,
}

/// The command: the listing as text or JSON.
pub(super) async fn command(args: BloatArgs) -> Result<i32> {
    check_schema_name("--state-schema", &args.state_schema)?;
    let conn = resolve_conn(args.conn.dsn.as_deref(), Duration::from_millis(100))?;
    let mut tables = bloated(&conn, &args.state_schema, args.min_ratio, args.min_size).await?;
    tables.sort_by_key(|t| std::cmp::Reverse(t.bloat_bytes().unwrap_or(-1)));
    let rows: Vec<BloatRow> = tables.iter().map(row).collect();
    match args.output {
        OutputFormat::Json => super::print_json(&rows),
        OutputFormat::Text => crate::output::ui::out!("{}", render(&rows)),
    }
    Ok(0)
}

/// The tables of at least `min_size` bytes whose estimated bloat is at least `min_ratio` (with
/// `min_ratio` 0, also those without an estimate), in oid order.
pub(super) async fn bloated(
    conn: &ConnSpec,
    state_schema: &str,
    min_ratio: f64,
    min_size: i64,
) -> Result<Vec<TableBloat>> {
    let client = conn::connect(conn, "bloat").await?;
    let all = catalog::table_bloat(&client, state_schema, min_size).await?;
    Ok(all
        .into_iter()
        .filter(|t| match t.ratio() {
            Some(r) => r >= min_ratio,
            None => min_ratio <= 0.0,
        })
        .collect())
}

fn row(t: &TableBloat) -> BloatRow {
    BloatRow {
        table: t.name.to_string(),
        size_bytes: t.size(),
        heap_bytes: t.heap_bytes,
        index_bytes: t.index_bytes,
        bloat_ratio: t.ratio(),
        bloat_bytes: t.bloat_bytes(),
        heap_bloat_bytes: t.heap_bloat_bytes,
        index_bloat_bytes: t.index_bloat_bytes,
        method: t.method,
    }
}

fn render(rows: &[BloatRow]) -> String {
    if rows.is_empty() {
        return "pg-hotswap: no table matches\n".to_string();
    }
    let mut s = format!(
        "{:<40} {:>10} {:>6} {:>10}  {}\n",
        "table", "size", "bloat", "bytes", "estimated by"
    );
    for r in rows {
        let (ratio, bytes) = match (r.bloat_ratio, r.bloat_bytes) {
            (Some(x), Some(b)) => (format!("{:.0}%", x * 100.0), ui::bytes(b.max(0) as u64)),
            _ => ("-".to_string(), "-".to_string()),
        };
        let method = match r.method {
            catalog::Method::NoStatistics => r.method.label().to_string(),
            m => format!("{} (indexes: statistics)", m.label()),
        };
        s.push_str(&format!(
            "{:<40} {:>10} {:>6} {:>10}  {}\n",
            r.table,
            ui::bytes(r.size_bytes.max(0) as u64),
            ratio,
            bytes,
            method
        ));
    }
    s
}
