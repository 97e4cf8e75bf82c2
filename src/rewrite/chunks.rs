//! Chunk planning: splitting the key space of the source into ranges the copy workers take one
//! at a time, each copied in its own short transaction.
//!
//! A single integer key is split at the bounds of the column's equi-depth histogram
//! (`pg_stats.histogram_bounds`, kept by ANALYZE: each bucket holds about as many rows), with
//! buckets subdivided evenly when more chunks are wanted — so ranges stay even when the keys are
//! sparse or skewed — and arithmetically between min and max when there are no statistics. Any
//! other key (composite, text, uuid...) is split by walking the key index once and taking every
//! n-th key as a boundary. The first chunk has no lower bound and the last no upper bound, so rows
//! inserted beyond the ends during the copy are still covered. Predicates are rendered with
//! literals because COPY takes no bind parameters.
//!
//! Each chunk also keeps its range as two conditions (lower, upper), so that a run of
//! consecutive chunks can be copied as one range in one statement (`--chunk-time`, see
//! `batching`): the chunks partition the key space in order, so chunks i..j together are exactly
//! "lower bound of i AND upper bound of j".

use crate::db::ident::literal;
use crate::error::{DbContext, Result, RowExt};
use crate::rewrite::plan::Plan;
use tokio_postgres::Client;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chunk {
    pub no: i32,
    /// SQL predicate over the source's key columns.
    pub predicate: String,
    /// The same range as its two ends; None when not known (a chunk recorded by an earlier
    /// version), and such a chunk is only ever copied on its own.
    pub bounds: Option<Bounds>,
}

/// A chunk's range as (lower, upper) conditions over the key columns; None is an open end.
/// The chunk's predicate is the two joined with AND (`true` when both ends are open).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bounds {
    pub lower: Option<String>,
    pub upper: Option<String>,
}

impl Bounds {
    pub fn predicate(&self) -> String {
        match (&self.lower, &self.upper) {
            (Some(l), Some(u)) => format!("{l} AND {u}"),
            (Some(c), None) | (None, Some(c)) => c.clone(),
            (None, None) => "true".into(),
        }
    }

    /// As stored in the state table (`chunks.bounds`, a two-element text array).
    pub fn to_array(&self) -> Vec<Option<String>> {
        vec![self.lower.clone(), self.upper.clone()]
    }

    pub fn from_array(a: Option<Vec<Option<String>>>) -> Option<Bounds> {
        match a {
            Some(v) if v.len() == 2 => {
                let mut it = v.into_iter();
                Some(Bounds {
                    lower: it.next().flatten(),
                    upper: it.next().flatten(),
                })
            }
            _ => None,
        }
    }
}

impl Chunk {
    fn from_bounds(no: i32, lower: Option<String>, upper: Option<String>) -> Chunk {
        let bounds = Bounds { lower, upper };
        Chunk {
            no,
            predicate: bounds.predicate(),
            bounds: Some(bounds),
        }
    }
}

/// The predicate of a run of consecutive chunks (consecutive numbers, all with bounds, in
/// order): the first one's lower bound and the last one's upper bound. None when `group` is not
/// such a run (then the chunks must be copied one by one).
pub fn covering_predicate(group: &[Chunk]) -> Option<String> {
    match group {
        [] => None,
        [one] => Some(one.predicate.clone()),
        [first, .., last] => {
            let consecutive = group.windows(2).all(|w| w[1].no == w[0].no + 1);
            let (Some(a), Some(b)) = (&first.bounds, &last.bounds) else {
                return None;
            };
            if !consecutive || group.iter().any(|c| c.bounds.is_none()) {
                return None;
            }
            Some(
                Bounds {
                    lower: a.lower.clone(),
                    upper: b.upper.clone(),
                }
                .predicate(),
            )
        }
    }
}

/// Plans the chunks for `plan` aiming at `chunk_rows` rows each.
pub async fn plan_chunks(
    client: &Client,
    plan: &Plan,
    estimated_rows: f64,
    chunk_rows: i64,
) -> Result<Vec<Chunk>> {
    let src = &plan.source;
    let chunk_rows = chunk_rows.max(1);
    if plan.has_integer_key() {
        let k = &plan.key[0].name;
        let row = client
            .query_one(
                &format!(
                    "SELECT min({k})::int8, max({k})::int8 FROM {}",
                    plan.source_from()
                ),
                &[],
            )
            .await
            .ctx(format_args!("reading the key range of {}", src.human()))?;
        let what = format_args!("reading the key range of {}", src.human());
        let (min, max): (Option<i64>, Option<i64>) = (row.col(0, &what)?, row.col(1, &what)?);
        let (Some(min), Some(max)) = (min, max) else {
            return Ok(vec![Chunk::from_bounds(0, None, None)]);
        };
        let rows = if estimated_rows > 0.0 {
            estimated_rows
        } else {
            (max - min + 1) as f64
        };
        let n = ((rows / chunk_rows as f64).ceil() as i64).max(1);
        let hist: Option<Vec<i64>> = client
            .query_opt(
                "SELECT histogram_bounds::text::int8[] FROM pg_catalog.pg_stats \
                  WHERE schemaname = $1 AND tablename = $2 AND attname = $3 AND NOT inherited",
                &[&src.schema.as_str(), &src.name.as_str(), &k.as_str()],
            )
            .await
            .ctx(format_args!("reading the key histogram of {}", src.human()))?
            .map(|r| {
                r.col::<Option<Vec<i64>>>(
                    0,
                    &format_args!("reading the key histogram of {}", src.human()),
                )
            })
            .transpose()?
            .flatten();
        let bounds = match hist {
            Some(h) if h.len() >= 3 => Some(histogram_bounds(&h, n)),
            _ if estimated_rows > 0.0 => Some(arithmetic_bounds(min, max, n)),
            // Never analyzed: neither a histogram nor a row count. Arithmetic ranges over
            // min..max would be one per `chunk_rows` *key values* — 83,337 chunks for a 600-row
            // table whose new ids start at 1,000,001 — so walk the key index instead (below).
            _ => None,
        };
        if let Some(bounds) = bounds {
            return Ok(render_integer(&k.to_string(), &bounds));
        }
    }
    // Any other key: every chunk_rows-th key in the key index's order is a boundary, when that
    // order can be trusted; otherwise block ranges.
    let order = key_order(client, plan).await?;
    if let Some(why) = order.iter().find_map(|c| c.why.as_deref()) {
        tracing::info!(table = %src.human(), reason = why, "chunking by block ranges");
        return tid_chunks(client, plan, &order, chunk_rows).await;
    }
    match walk_bounds(client, plan, &order, chunk_rows).await? {
        Some(bounds) => {
            let types = order.iter().map(KeyOrder::literal_type).collect::<Vec<_>>();
            let chunks = row_chunks(&plan.key_list(), &types, &bounds);
            if bounds_increase(client, &types, &bounds).await? {
                Ok(chunks)
            } else {
                tracing::warn!(table = %src.human(), "chunk bounds do not strictly increase; chunking by block ranges");
                tid_chunks(client, plan, &order, chunk_rows).await
            }
        }
        None => {
            tracing::warn!(table = %src.human(), "a key value does not survive its text form; chunking by block ranges");
            tid_chunks(client, plan, &order, chunk_rows).await
        }
    }
}

/// How one row-identity column is ordered by the key index (`sql/key_order.sql`).
#[derive(Clone, Debug)]
pub struct KeyOrder {
    /// The column (quoted).
    pub column: String,
    /// Its type with modifier (`format_type`), as bounds are cast to it.
    pub type_name: String,
    /// The key index's collation for the column (quoted, schema-qualified), if collatable.
    pub index_collation: Option<String>,
    /// The column's own collation, if collatable.
    pub column_collation: Option<String>,
    /// Why bounds over this column cannot be trusted (None: they can).
    pub why: Option<String>,
}

impl KeyOrder {
    /// How a bound for this column is written: `CAST('..' AS type) COLLATE coll`, as a type
    /// and an optional collation, for [`row_chunks`].
    fn literal_type(&self) -> BoundType {
        BoundType {
            type_name: self.type_name.clone(),
            collation: self.index_collation.clone(),
        }
    }
}

/// The type (and collation) a bound value is cast to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BoundType {
    pub type_name: String,
    pub collation: Option<String>,
}

impl BoundType {
    pub fn plain(type_name: &str) -> BoundType {
        BoundType {
            type_name: type_name.into(),
            collation: None,
        }
    }

    /// `CAST('value' AS type) COLLATE collation`.
    pub fn render(&self, value: &str) -> String {
        match &self.collation {
            Some(c) => format!("CAST({} AS {}) COLLATE {c}", literal(value), self.type_name),
            None => format!("CAST({} AS {})", literal(value), self.type_name),
        }
    }
}

/// Reads how the key columns are ordered by the key index (see `sql/key_order.sql`).
pub async fn key_order(client: &Client, plan: &Plan) -> Result<Vec<KeyOrder>> {
    let names: Vec<&str> = plan.key.iter().map(|k| k.name.as_str()).collect();
    let rows = client
        .query(
            include_str!("../../sql/key_order.sql"),
            &[&plan.source_oid, &names],
        )
        .await
        .ctx(format_args!(
            "reading the key order of {}",
            plan.source.human()
        ))?;
    let mut out = Vec::with_capacity(rows.len());
    for (r, k) in rows.iter().zip(&plan.key) {
        out.push(KeyOrder {
            column: k.name.to_string(),
            type_name: r.try_get(1).ctx("reading the key order")?,
            index_collation: r.try_get(2).ctx("reading the key order")?,
            column_collation: r.try_get(3).ctx("reading the key order")?,
            why: r.try_get(4).ctx("reading the key order")?,
        });
    }
    if out.len() != plan.key.len() {
        // A key column vanished: chunk by blocks rather than guess.
        return Ok(plan
            .key
            .iter()
            .map(|k| KeyOrder {
                column: k.name.to_string(),
                type_name: k.source_type.clone(),
                index_collation: None,
                column_collation: None,
                why: Some("the key columns were not found".into()),
            })
            .collect());
    }
    Ok(out)
}

/// Session settings under which bounds are rendered as text: every setting that changes the
/// text form of a value is pinned to a form that reads back the same under any setting of the
/// sessions that later evaluate the predicates (ISO dates with an explicit UTC offset, ISO 8601
/// intervals, shortest exact floats, hex bytea).
const RENDER_SETTINGS: &str =
    "SET LOCAL DateStyle = 'ISO, YMD'; SET LOCAL IntervalStyle = 'iso_8601'; \
     SET LOCAL extra_float_digits = 3; SET LOCAL TimeZone = 'UTC'; SET LOCAL bytea_output = 'hex'";

/// Every `chunk_rows`-th key in the key's order (the index's collation), as text; None when a
/// bound's text form does not read back as the same value.
async fn walk_bounds(
    client: &Client,
    plan: &Plan,
    order: &[KeyOrder],
    chunk_rows: i64,
) -> Result<Option<Vec<Vec<String>>>> {
    let src = &plan.source;
    let from = plan.source_from();
    let keys = plan.key_list();
    let order_by = order
        .iter()
        .map(|c| match &c.index_collation {
            Some(coll) => format!("{} COLLATE {coll}", c.column),
            None => c.column.clone(),
        })
        .collect::<Vec<_>>()
        .join(", ");
    let text_cols = order
        .iter()
        .map(|c| format!("CAST({} AS text)", c.column))
        .collect::<Vec<_>>()
        .join(", ");
    // The text form must read back as a value equal to the key (in the key's own equality).
    let round_trip = order
        .iter()
        .map(|c| {
            let back = format!(
                "CAST(CAST({col} AS text) AS {t})",
                col = c.column,
                t = c.type_name
            );
            match &c.index_collation {
                Some(coll) => format!("({back} COLLATE {coll} = {col})", col = c.column),
                None => format!("({back} = {col})", col = c.column),
            }
        })
        .collect::<Vec<_>>()
        .join(" AND ");
    client
        .batch_execute(&format!("BEGIN READ ONLY; {RENDER_SETTINGS}"))
        .await
        .ctx("pinning the settings that render chunk bounds")?;
    let rows = client
        .query(
            &format!(
                "SELECT {text_cols}, {round_trip} FROM \
                   (SELECT {keys}, row_number() OVER (ORDER BY {order_by}) AS hotswap_rn FROM {from}) s \
                  WHERE hotswap_rn % $1 = 0 ORDER BY hotswap_rn"
            ),
            &[&chunk_rows],
        )
        .await;
    let rows = match rows {
        Ok(r) => r,
        Err(e) => {
            let _ = client.batch_execute("ROLLBACK").await;
            return Err(e).ctx(format_args!(
                "walking the key index of {} to plan chunks",
                src.human()
            ));
        }
    };
    client
        .batch_execute("COMMIT")
        .await
        .ctx("ending the chunk planning transaction")?;
    let n = order.len();
    let mut bounds = Vec::with_capacity(rows.len());
    for r in &rows {
        let same: Option<bool> = r.try_get(n).ctx("reading chunk bounds")?;
        if same != Some(true) {
            return Ok(None);
        }
        let mut b = Vec::with_capacity(n);
        for i in 0..n {
            b.push(r.try_get::<_, String>(i).ctx("reading chunk bounds")?);
        }
        bounds.push(b);
    }
    Ok(Some(bounds))
}

/// Whether the bounds strictly increase under the same comparison the chunk predicates use
/// (the rendered literals, in this session's settings): then the chunks are disjoint, and since
/// each one starts where the previous one ends and the ends are open, they cover every key.
pub async fn bounds_increase(
    client: &Client,
    types: &[BoundType],
    bounds: &[Vec<String>],
) -> Result<bool> {
    let pairs: Vec<String> = bounds
        .windows(2)
        .map(|w| {
            format!(
                "({} < {})",
                render_row(types, &w[0]),
                render_row(types, &w[1])
            )
        })
        .collect();
    for batch in pairs.chunks(500) {
        let ok: Option<bool> = client
            .query_one(
                &format!(
                    "SELECT bool_and(ok) FROM (VALUES {}) v(ok)",
                    batch.join(", ")
                ),
                &[],
            )
            .await
            .ctx("checking that the chunk bounds strictly increase")?
            .try_get(0)
            .ctx("checking that the chunk bounds strictly increase")?;
        if ok != Some(true) {
            return Ok(false);
        }
    }
    Ok(true)
}

fn render_row(types: &[BoundType], vals: &[String]) -> String {
    let parts: Vec<String> = vals.iter().zip(types).map(|(v, t)| t.render(v)).collect();
    format!("ROW({})", parts.join(", "))
}

/// Whether a chunk predicate selects rows by their physical place (block ranges) rather than
/// by key: such a predicate means nothing on another table (the shadow).
pub fn is_tid_range(predicate: &str) -> bool {
    predicate.starts_with("ctid ")
}

/// Block-range chunks, for keys whose order cannot be trusted: `ctid >= '(b1,0)' AND ctid <
/// '(b2,0)'` (a TID range scan). The first chunk starts at block 0 and the last one is open, so
/// rows that land in new blocks during the copy are covered. Rows move between blocks when they
/// are updated, so a row could be seen by two chunks copied at different moments: each chunk
/// leaves out the keys that have a row in the change log (in the same snapshot), because replay
/// writes those from the source anyway. A row without a log row has not changed since the
/// capture began, so it has one place and is copied by exactly one chunk.
async fn tid_chunks(
    client: &Client,
    plan: &Plan,
    order: &[KeyOrder],
    chunk_rows: i64,
) -> Result<Vec<Chunk>> {
    let src = &plan.source;
    let row = client
        .query_one(
            "SELECT (pg_catalog.pg_relation_size($1::oid) / current_setting('block_size')::int8)::int8, \
                    c.reltuples::float8, c.relpages::int8 \
               FROM pg_catalog.pg_class c WHERE c.oid = $1::oid",
            &[&plan.source_oid],
        )
        .await
        .ctx(format_args!("reading the size of {}", src.human()))?;
    let blocks: i64 = row.try_get(0).ctx("reading the table size")?;
    let reltuples: f64 = row.try_get(1).ctx("reading the table size")?;
    let relpages: i64 = row.try_get(2).ctx("reading the table size")?;
    let per_block = if reltuples > 0.0 && relpages > 0 {
        reltuples / relpages as f64
    } else {
        // Never analyzed: assume narrow rows, the safe side (more, smaller chunks).
        100.0
    };
    let blocks_per_chunk = ((chunk_rows as f64 / per_block).floor() as i64).max(1);
    let log_keys = crate::rewrite::capture::log_key_columns(plan);
    let matches = order
        .iter()
        .zip(&log_keys)
        .map(|(c, l)| {
            let col = format!("{src}.{}", c.column);
            match &c.column_collation {
                Some(coll) => format!("hotswap_l.{l} = {col} COLLATE {coll}"),
                None => format!("hotswap_l.{l} = {col}"),
            }
        })
        .collect::<Vec<_>>()
        .join(" AND ");
    let unchanged = format!(
        "NOT EXISTS (SELECT 1 FROM {log} hotswap_l WHERE NOT hotswap_l.truncated AND {matches})",
        log = plan.capture.log
    );
    Ok(render_tid(blocks, blocks_per_chunk, &unchanged))
}

/// Block ranges of `per` blocks over a table of `blocks` blocks; `unchanged` is the condition
/// that leaves out changed keys, carried by every lower bound (so that any run of consecutive
/// chunks, lower bound of the first AND upper bound of the last, keeps it).
pub fn render_tid(blocks: i64, per: i64, unchanged: &str) -> Vec<Chunk> {
    let per = per.max(1);
    if blocks <= per {
        return vec![Chunk::from_bounds(0, None, None)];
    }
    let lower = |b: i64| Some(format!("ctid >= '({b},0)'::tid AND {unchanged}"));
    let upper = |b: i64| Some(format!("ctid < '({b},0)'::tid"));
    let mut chunks = Vec::new();
    let mut start = 0;
    let mut no = 0;
    while start + per < blocks {
        chunks.push(Chunk::from_bounds(no, lower(start), upper(start + per)));
        start += per;
        no += 1;
    }
    chunks.push(Chunk::from_bounds(no, lower(start), None));
    chunks
}

/// `n` ranges over [min, max]: `k < b1`, `k >= b1 AND k < b2`, ..., `k >= bn-1`.
pub fn integer_chunks(col: &str, min: i64, max: i64, n: i64) -> Vec<Chunk> {
    render_integer(col, &arithmetic_bounds(min, max, n))
}

/// Inner bounds splitting [min, max] into `n` equal ranges.
pub fn arithmetic_bounds(min: i64, max: i64, n: i64) -> Vec<i64> {
    let span = (max as i128) - (min as i128) + 1;
    let n = (n as i128).clamp(1, span.max(1));
    let step = (span + n - 1) / n;
    let mut bounds = Vec::new();
    let mut b = min as i128 + step;
    while b <= max as i128 {
        bounds.push(b as i64);
        b += step;
    }
    bounds
}

/// Inner bounds for about `n` ranges holding equal numbers of rows, from an equi-depth histogram
/// (each of its buckets holds about the same number of rows): every k-th bound when there are
/// more buckets than ranges, each bucket split evenly when there are fewer.
pub fn histogram_bounds(hist: &[i64], n: i64) -> Vec<i64> {
    let buckets = hist.len() as i64 - 1;
    if buckets < 1 || n <= 1 {
        return Vec::new();
    }
    let mut bounds = Vec::new();
    if n <= buckets {
        // Bucket i ends at hist[i]; take the bound closest to each multiple of buckets / n.
        for j in 1..n {
            let idx = ((j as f64) * buckets as f64 / n as f64).round() as usize;
            bounds.push(hist[idx.clamp(1, hist.len() - 1)]);
        }
    } else {
        let per = (n + buckets - 1) / buckets;
        for w in hist.windows(2) {
            let (lo, hi) = (w[0] as i128, w[1] as i128);
            for j in 1..per as i128 {
                bounds.push((lo + (hi - lo) * j / per as i128) as i64);
            }
            bounds.push(w[1]);
        }
        bounds.pop(); // the last histogram bound: the last range is open-ended anyway
    }
    bounds.sort_unstable();
    bounds.dedup();
    // The first bound must be above the lowest key the histogram saw, or the first range is empty.
    bounds.retain(|b| *b > hist[0]);
    bounds
}

/// Ranges between inner bounds: `k < b1`, `k >= b1 AND k < b2`, ..., `k >= bn`.
fn render_integer(col: &str, bounds: &[i64]) -> Vec<Chunk> {
    if bounds.is_empty() {
        return vec![Chunk::from_bounds(0, None, None)];
    }
    let lower = |b: i64| Some(format!("{col} >= {b}"));
    let upper = |b: i64| Some(format!("{col} < {b}"));
    let mut chunks = Vec::with_capacity(bounds.len() + 1);
    chunks.push(Chunk::from_bounds(0, None, upper(bounds[0])));
    for (i, w) in bounds.windows(2).enumerate() {
        chunks.push(Chunk::from_bounds(i as i32 + 1, lower(w[0]), upper(w[1])));
    }
    chunks.push(Chunk::from_bounds(
        bounds.len() as i32,
        lower(bounds[bounds.len() - 1]),
        None,
    ));
    chunks
}

/// Ranges between boundary keys (row comparison): `ROW(k) <= b1`, `ROW(k) > b1 AND ROW(k) <= b2`,
/// ... Each bound value is its exact text form cast to the column's type, with the key index's
/// collation, so it is compared in the key's own type and order, never as text.
pub fn row_chunks(keys: &str, types: &[BoundType], bounds: &[Vec<String>]) -> Vec<Chunk> {
    if bounds.is_empty() {
        return vec![Chunk::from_bounds(0, None, None)];
    }
    let lower = |b: &Vec<String>| Some(format!("ROW({keys}) > {}", render_row(types, b)));
    let upper = |b: &Vec<String>| Some(format!("ROW({keys}) <= {}", render_row(types, b)));
    let mut chunks = Vec::with_capacity(bounds.len() + 1);
    chunks.push(Chunk::from_bounds(0, None, upper(&bounds[0])));
    for (i, w) in bounds.windows(2).enumerate() {
        chunks.push(Chunk::from_bounds(i as i32 + 1, lower(&w[0]), upper(&w[1])));
    }
    chunks.push(Chunk::from_bounds(
        bounds.len() as i32,
        lower(&bounds[bounds.len() - 1]),
        None,
    ));
    chunks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_chunks_cover_everything_without_overlap() {
        let c = integer_chunks("\"id\"", 1, 100, 4);
        assert_eq!(c.len(), 4);
        assert_eq!(c[0].predicate, "\"id\" < 26");
        assert_eq!(c[1].predicate, "\"id\" >= 26 AND \"id\" < 51");
        assert_eq!(c[3].predicate, "\"id\" >= 76");
        // Numbering is dense from 0.
        assert!(c.iter().enumerate().all(|(i, ch)| ch.no == i as i32));
    }

    #[test]
    fn integer_chunks_handle_extremes() {
        let c = integer_chunks("k", i64::MIN, i64::MAX, 3);
        assert_eq!(c.len(), 3);
        let one = integer_chunks("k", 5, 5, 10);
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].predicate, "true");
    }

    #[test]
    fn histogram_bounds_follow_the_rows_not_the_key_space() {
        // 10 buckets of equal rows: 9 over keys 1..90,000 and one over 90,000..10^12.
        let mut hist: Vec<i64> = (0..10).map(|i| 1 + i * 10_000).collect();
        hist.push(1_000_000_000_000);
        // Fewer ranges than buckets: every other bound.
        let b = histogram_bounds(&hist, 5);
        assert_eq!(b, vec![20_001, 40_001, 60_001, 80_001]);
        // More ranges than buckets: each bucket split evenly, bounds strictly increasing.
        let b = histogram_bounds(&hist, 30);
        assert_eq!(b.len(), 29);
        assert!(b.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(b[0], 3_334);
        // The arithmetic split would put 90% of the rows into its first range.
        let a = arithmetic_bounds(1, 1_000_000_000_000, 10);
        assert!(a[0] > 90_000);
    }

    #[test]
    fn histogram_with_duplicates_or_one_bucket_degrades_gracefully() {
        assert!(histogram_bounds(&[5, 5, 5], 10).is_empty());
        assert!(histogram_bounds(&[1, 100], 1).is_empty());
        let b = histogram_bounds(&[1, 100], 4);
        assert_eq!(b, vec![25, 50, 75]);
    }

    #[test]
    fn row_chunks_quote_values_as_literals() {
        let c = row_chunks(
            "\"a\", \"b\"",
            &[
                BoundType {
                    type_name: "text".into(),
                    collation: Some("pg_catalog.\"en-x-icu\"".into()),
                },
                BoundType::plain("integer"),
            ],
            &[vec!["it's".into(), "3".into()]],
        );
        assert_eq!(c.len(), 2);
        assert_eq!(
            c[0].predicate,
            "ROW(\"a\", \"b\") <= ROW(CAST('it''s' AS text) COLLATE pg_catalog.\"en-x-icu\", CAST('3' AS integer))"
        );
        assert!(c[1].predicate.starts_with("ROW(\"a\", \"b\") > "));
    }

    #[test]
    fn consecutive_chunks_cover_one_range() {
        let c = integer_chunks("\"id\"", 1, 100, 4);
        assert_eq!(
            covering_predicate(&c[1..3]).unwrap(),
            "\"id\" >= 26 AND \"id\" < 76"
        );
        assert_eq!(covering_predicate(&c[..2]).unwrap(), "\"id\" < 51");
        assert_eq!(covering_predicate(&c[2..]).unwrap(), "\"id\" >= 51");
        assert_eq!(covering_predicate(&c).unwrap(), "true");
        assert_eq!(covering_predicate(&c[3..]).unwrap(), c[3].predicate);
        // A gap, or a chunk without bounds, is not one range.
        let gap = vec![c[0].clone(), c[2].clone()];
        assert_eq!(covering_predicate(&gap), None);
        let mut old = c[1].clone();
        old.bounds = None;
        assert_eq!(covering_predicate(&[c[0].clone(), old.clone()]), None);
        assert_eq!(covering_predicate(&[old.clone()]), Some(old.predicate));
        assert_eq!(covering_predicate(&[]), None);
        // Row comparisons likewise.
        let r = row_chunks(
            "k",
            &[BoundType::plain("text")],
            &[vec!["a".into()], vec!["m".into()]],
        );
        assert_eq!(
            covering_predicate(&r[1..]).unwrap(),
            "ROW(k) > ROW(CAST('a' AS text))"
        );
    }

    #[test]
    fn block_ranges_cover_every_block_once_and_keep_the_filter() {
        let c = render_tid(10, 3, "F");
        let p: Vec<&str> = c.iter().map(|c| c.predicate.as_str()).collect();
        assert_eq!(
            p,
            vec![
                "ctid >= '(0,0)'::tid AND F AND ctid < '(3,0)'::tid",
                "ctid >= '(3,0)'::tid AND F AND ctid < '(6,0)'::tid",
                "ctid >= '(6,0)'::tid AND F AND ctid < '(9,0)'::tid",
                "ctid >= '(9,0)'::tid AND F",
            ]
        );
        assert!(c.iter().all(|c| is_tid_range(&c.predicate)));
        // Any run of them keeps the filter and is one range.
        assert_eq!(
            covering_predicate(&c[1..]).unwrap(),
            "ctid >= '(3,0)'::tid AND F"
        );
        assert_eq!(
            covering_predicate(&c[..2]).unwrap(),
            "ctid >= '(0,0)'::tid AND F AND ctid < '(6,0)'::tid"
        );
        // A table of one chunk's blocks is one chunk.
        assert_eq!(render_tid(3, 3, "F")[0].predicate, "true");
        assert!(!is_tid_range("ROW(k) > ROW(CAST('1' AS integer))"));
    }

    #[test]
    fn bounds_survive_the_state_table() {
        for c in integer_chunks("k", 1, 100, 3) {
            let b = c.bounds.clone().unwrap();
            assert_eq!(Bounds::from_array(Some(b.to_array())), Some(b.clone()));
            assert_eq!(b.predicate(), c.predicate);
        }
        assert_eq!(Bounds::from_array(None), None);
    }
}
