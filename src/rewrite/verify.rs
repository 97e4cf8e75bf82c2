//! Verification before the swap: the shadow must equal the source through the mapping.
//!
//! Chunk by chunk (the copy's key ranges), one statement per chunk compares the rows of both
//! sides on the server by their count and the XOR of a 64-bit hash per row (the columns' own hash
//! functions chained, `row_hash`); only for a range that differs do the differing keys come
//! back (`diff_chunk`). Both sides and the change log are read in that one statement's
//! snapshot, so a key that differs because a write to it has not been replayed yet is recognised
//! by its log row and left out of both sides (replay, and the final replay under the swap lock,
//! take care of it).
//! Any other difference is a real divergence: its key is queued for replay through the log (the
//! repair re-reads the source) and checked again; if it still differs, the table is not swapped.
//!
//! New columns that take their default and generated columns are not compared: they are not
//! derived from the source row.

use crate::db::catalog;
use crate::db::ident::{join_idents, literal, Ident};
use crate::error::{DbContext, Error, Result, RowExt};
use crate::rewrite::capture::log_key_columns;
use crate::rewrite::plan::Plan;
use tokio_postgres::Client;

/// How much to verify.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum Mode {
    /// Every chunk.
    Full,
    /// About one chunk in ten, spread through the key space (at least one).
    Sample,
    Off,
}

impl std::str::FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Mode, String> {
        match s {
            "full" => Ok(Mode::Full),
            "sample" => Ok(Mode::Sample),
            "off" => Ok(Mode::Off),
            _ => Err(format!("--verify {s:?}: expected full, sample or off")),
        }
    }
}

#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Report {
    pub mode: String,
    pub chunks_verified: usize,
    pub chunks_total: usize,
    pub rows_verified: u64,
    /// Keys that differed and had no pending change: repaired through the log.
    pub repaired: u64,
    /// Keys that differed because a write to them was not replayed yet (skipped, not errors).
    pub pending: u64,
}

/// The SQL pieces for comparing rows of both tables.
#[derive(Clone)]
struct Sides {
    /// Source: `CAST(key AS shadow type)` per key column, aliased k1..kn.
    src_keys: String,
    /// Shadow: key columns aliased k1..kn.
    dst_keys: String,
    src_hash: String,
    dst_hash: String,
    /// Whether the chunk predicates (written over the source's key columns) select the same
    /// rows when applied to the shadow: every key column keeps its name, collation and values
    /// (same type, or one integer type to another), and the chunks are key ranges. Otherwise
    /// the shadow's rows are matched through the mapped keys (see [`compare_chunk`]).
    transparent: bool,
    /// Per key column, the shadow column's collation (quoted), so that mapped source keys and
    /// log keys compare with the shadow's keys in one collation.
    dst_collations: Vec<Option<String>>,
}

fn is_integer_type(t: &str) -> bool {
    matches!(
        t.trim_start_matches("pg_catalog."),
        "smallint" | "integer" | "bigint" | "int2" | "int4" | "int8"
    )
}

/// The collations (quoted, schema-qualified) of columns `names` of table `oid`, in that order.
pub async fn collations(
    client: &impl tokio_postgres::GenericClient,
    oid: u32,
    names: &[&str],
) -> Result<Vec<Option<String>>> {
    let rows = client
        .query(
            "SELECT pg_catalog.quote_ident(cn.nspname) || '.' || pg_catalog.quote_ident(c.collname) \
               FROM unnest($2::text[]) WITH ORDINALITY AS n(name, ord) \
               JOIN pg_catalog.pg_attribute a ON a.attrelid = $1 AND a.attname = n.name AND NOT a.attisdropped \
               LEFT JOIN pg_catalog.pg_collation c ON c.oid = a.attcollation AND a.attcollation <> 0 \
               LEFT JOIN pg_catalog.pg_namespace cn ON cn.oid = c.collnamespace \
              ORDER BY n.ord",
            &[&oid, &names],
        )
        .await
        .ctx("reading the collations of the key columns")?;
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        out.push(
            r.try_get(0)
                .ctx("reading the collations of the key columns")?,
        );
    }
    if out.len() != names.len() {
        return Err(Error::failed("a key column vanished while verifying"));
    }
    Ok(out)
}

/// Whether values of the type can be hashed by `hash_record_extended`: after looking through
/// domains and arrays, every type must have a default hash operator class with an extended hash
/// function. Others (json, point, enums...) are hashed through their text form.
async fn hashable(client: &impl tokio_postgres::GenericClient, type_oid: u32) -> Result<bool> {
    client
        .query_one(
            "WITH RECURSIVE b(t) AS ( \
                 SELECT $1::oid \
                 UNION ALL \
                 SELECT CASE WHEN ty.typtype = 'd' THEN ty.typbasetype ELSE ty.typelem END \
                   FROM b JOIN pg_catalog.pg_type ty ON ty.oid = b.t \
                  WHERE ty.typtype = 'd' OR ty.typcategory = 'A') \
             SELECT COALESCE(bool_and(EXISTS ( \
                        SELECT 1 FROM pg_catalog.pg_opclass oc \
                          JOIN pg_catalog.pg_am am ON am.oid = oc.opcmethod AND am.amname = 'hash' \
                          JOIN pg_catalog.pg_amproc ap ON ap.amprocfamily = oc.opcfamily AND ap.amprocnum = 2 \
                         WHERE oc.opcdefault AND oc.opcintype = b.t)), false) \
               FROM b JOIN pg_catalog.pg_type ty ON ty.oid = b.t \
              WHERE NOT (ty.typtype = 'd' OR ty.typcategory = 'A')",
            &[&type_oid],
        )
        .await
        .ctx("checking how to hash a column type")?
        .col(0, &"checking how to hash a column type")
}

/// How one column's values are hashed (see [`row_hash`]).
#[derive(Clone, Debug, PartialEq, Eq)]
enum ColumnHash {
    /// The extended hash function (schema-qualified, quoted) of the default hash operator class
    /// of the column's type (or its domain's base type), when it is declared over that type:
    /// `hashint8extended`, `hashtextextended`... (not `timestamptz`'s, declared over timestamp,
    /// nor `bytea`'s, over internal: those go by [`ColumnHash::Record`]).
    Direct(String),
    /// `hash_record_extended` over a one-column row (arrays, enums, ranges: polymorphic operator
    /// classes; PostgreSQL 14 and later).
    Record,
    /// The text form (json, point...: no hash operator class).
    Text,
}

/// The value written into a row's hash for a NULL column (a constant no hash needs to avoid:
/// a column hash equal to it is a 64-bit collision).
const NULL_HASH: &str = "(-6493163826339425911)::pg_catalog.int8";

/// The extended hash function of the default hash operator class of `type_oid`, looking
/// through domains; None when the class is polymorphic (arrays...), its function is declared
/// over another type, or there is none.
async fn direct_hash_function(
    client: &impl tokio_postgres::GenericClient,
    type_oid: u32,
) -> Result<Option<String>> {
    let row = client
        .query_opt(
            "WITH RECURSIVE d(t) AS ( \
                 SELECT $1::oid \
                 UNION ALL \
                 SELECT ty.typbasetype FROM d JOIN pg_catalog.pg_type ty ON ty.oid = d.t \
                  WHERE ty.typtype = 'd') \
             SELECT pg_catalog.quote_ident(pn.nspname) || '.' || pg_catalog.quote_ident(pp.proname) \
               FROM d JOIN pg_catalog.pg_type ty ON ty.oid = d.t AND ty.typtype <> 'd' \
               JOIN pg_catalog.pg_opclass oc ON oc.opcintype = d.t AND oc.opcdefault \
               JOIN pg_catalog.pg_am am ON am.oid = oc.opcmethod AND am.amname = 'hash' \
               JOIN pg_catalog.pg_amproc ap ON ap.amprocfamily = oc.opcfamily AND ap.amprocnum = 2 \
                    AND ap.amproclefttype = d.t AND ap.amprocrighttype = d.t \
               JOIN pg_catalog.pg_proc pp ON pp.oid = ap.amproc \
                    AND pp.proargtypes[0] = d.t AND pp.proargtypes[1] = 'pg_catalog.int8'::pg_catalog.regtype \
               JOIN pg_catalog.pg_namespace pn ON pn.oid = pp.pronamespace \
              LIMIT 1",
            &[&type_oid],
        )
        .await
        .ctx("checking how to hash a column type")?;
    match row {
        Some(r) => Ok(Some(r.col(0, &"checking how to hash a column type")?)),
        None => Ok(None),
    }
}

/// One row's 64-bit hash from its column values (SQL expressions, in the shadow's column
/// order): each column hashed on its own by its type's hash function (`hashes`), NULL as
/// [`NULL_HASH`], and the column hashes chained, each one hashed with the chain so far as the
/// seed. The chain makes the row hash depend on every column and on its place, so values moved
/// between rows or between columns change it; the set of rows is then compared by the count and
/// the XOR of these hashes. About half the server's work of `hash_record_extended(ROW(...))`,
/// which builds a record per row (measured: docs/benchmarks.md, session 6).
fn row_hash(values: &[String], hashes: &[ColumnHash]) -> String {
    let mut acc = "0::pg_catalog.int8".to_string();
    for (v, h) in values.iter().zip(hashes) {
        let col = match h {
            ColumnHash::Direct(f) => format!("{f}({v}, 0::pg_catalog.int8)"),
            ColumnHash::Record => format!("pg_catalog.hash_record_extended(ROW({v}), 0)"),
            ColumnHash::Text => format!("pg_catalog.hashtextextended(CAST({v} AS text), 0)"),
        };
        acc = format!("pg_catalog.hashint8extended(COALESCE({col}, {NULL_HASH}), {acc})");
    }
    acc
}

async fn sides(client: &impl tokio_postgres::GenericClient, plan: &Plan) -> Result<Sides> {
    let shadow_cols = catalog::columns(client, plan.shadow_oid).await?;
    // hash_record_extended is in PostgreSQL 14 and later; before that, polymorphic types go as
    // text.
    let record_hash: bool = client
        .query_one(
            "SELECT current_setting('server_version_num')::int >= 140000",
            &[],
        )
        .await
        .ctx("reading the server version")?
        .col(0, &"reading the server version")?;
    let mut src_exprs = Vec::new();
    let mut dst_exprs = Vec::new();
    let mut hashes = Vec::new();
    let mut names = Vec::new();
    for c in plan.columns.iter() {
        let Some(expr) = &c.expr else { continue };
        let col = shadow_cols
            .iter()
            .find(|s| s.name == c.column)
            .ok_or_else(|| {
                Error::failed(format!(
                    "column {} vanished from the shadow",
                    c.column.as_str()
                ))
            })?;
        names.push(c.column.as_str());
        // The full type (with its modifier) so both sides hold the same values.
        src_exprs.push(format!("CAST({expr} AS {})", col.type_name));
        dst_exprs.push(c.column.to_string());
        hashes.push(match direct_hash_function(client, col.type_oid).await? {
            Some(f) => ColumnHash::Direct(f),
            None if record_hash && hashable(client, col.type_oid).await? => ColumnHash::Record,
            None => ColumnHash::Text,
        });
    }
    // Both sides hash in the shadow column's collation (a hash under a nondeterministic
    // collation is not the hash of the bytes).
    let value_collations = collations(client, plan.shadow_oid, &names).await?;
    for (e, c) in src_exprs.iter_mut().zip(&value_collations) {
        if let Some(c) = c {
            *e = format!("({e} COLLATE {c})");
        }
    }
    let kcols = log_key_columns(plan);
    let src_names: Vec<&str> = plan.key.iter().map(|k| k.name.as_str()).collect();
    let dst_names: Vec<&str> = plan.key.iter().map(|k| k.shadow_name.as_str()).collect();
    let src_collations = collations(client, plan.source_oid, &src_names).await?;
    let dst_collations = collations(client, plan.shadow_oid, &dst_names).await?;
    let transparent = plan
        .key
        .iter()
        .zip(src_collations.iter().zip(&dst_collations))
        .all(|(k, (sc, dc))| {
            k.name == k.shadow_name
                && sc == dc
                && match &k.shadow_cast {
                    None => true,
                    Some(t) => is_integer_type(&k.source_type) && is_integer_type(t),
                }
        });
    let src_keys = plan
        .key
        .iter()
        .zip(&kcols)
        .zip(&dst_collations)
        .map(|((k, a), dc)| match (&k.shadow_cast, dc) {
            (Some(t), Some(c)) if !transparent => {
                format!("CAST({} AS {t}) COLLATE {c} AS {a}", k.name)
            }
            (Some(t), _) => format!("CAST({} AS {t}) AS {a}", k.name),
            (None, Some(c)) if !transparent => format!("{} COLLATE {c} AS {a}", k.name),
            (None, _) => format!("{} AS {a}", k.name),
        })
        .collect::<Vec<_>>()
        .join(", ");
    let dst_keys = plan
        .key
        .iter()
        .zip(&kcols)
        .map(|(k, a)| format!("{} AS {a}", k.shadow_name))
        .collect::<Vec<_>>()
        .join(", ");
    Ok(Sides {
        src_keys,
        dst_keys,
        src_hash: row_hash(&src_exprs, &hashes),
        dst_hash: row_hash(&dst_exprs, &hashes),
        transparent,
        dst_collations,
    })
}

/// Times what verification costs on a sample (for `plan`): the row hashes of the source rows in
/// the sample windows (`WHERE ...` clauses) and of every row of the sample shadow. Returns (source
/// rows hashed, seconds for both sides).
pub async fn time_sample(
    tx: &impl tokio_postgres::GenericClient,
    plan: &Plan,
    windows: &[String],
) -> Result<(u64, f64)> {
    let s = sides(tx, plan).await?;
    // Each window as the sample read it: a WHERE clause, TABLESAMPLE, or nothing (whole table).
    let started = std::time::Instant::now();
    let mut rows = 0i64;
    for w in windows {
        rows += tx
            .query_one(
                &format!(
                    "SELECT count(*), bit_xor({}) FROM {} {w}",
                    s.src_hash,
                    plan.source_from()
                ),
                &[],
            )
            .await
            .ctx("timing verification on the sample")?
            .col::<i64>(0, &"timing verification on the sample")?;
    }
    tx.query_one(
        &format!(
            "SELECT count(*), bit_xor({}) FROM {}",
            s.dst_hash,
            plan.shadow_from()
        ),
        &[],
    )
    .await
    .ctx("timing verification on the sample")?;
    Ok((rows as u64, started.elapsed().as_secs_f64()))
}

/// The change log's keys (table alias `l`) in the shadow's types and collations, one
/// expression per key column.
fn log_key_exprs(plan: &Plan, s: &Sides) -> Vec<String> {
    log_key_columns(plan)
        .iter()
        .zip(&plan.key)
        .zip(&s.dst_collations)
        .map(|((a, k), coll)| {
            let e = match &k.shadow_cast {
                Some(t) => format!("CAST(l.{a} AS {t})"),
                None => format!("l.{a}"),
            };
            // The log's columns have their type's default collation; compare in the shadow's.
            match coll {
                Some(c) => format!("{e} COLLATE {c}"),
                None => e,
            }
        })
        .collect()
}

/// The change log's keys (table alias `l`) in the shadow's types, to compare with either side;
/// `aliased` names them k1..kn.
fn log_keys_as_shadow(plan: &Plan, s: &Sides, aliased: bool) -> String {
    log_key_exprs(plan, s)
        .into_iter()
        .zip(log_key_columns(plan))
        .map(|(e, a)| if aliased { format!("{e} AS {a}") } else { e })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The name of the pending keys of a range in [`compare_chunk`]'s statement: one that neither
/// table is called, so that inside the lateral lookups `<alias>.<key>` means the pending key,
/// never a column of the table looked in.
fn pending_alias(plan: &Plan) -> Ident {
    let mut name = String::from("hotswap_pending");
    while [&plan.source, &plan.shadow]
        .iter()
        .any(|t| t.name.as_str() == name)
    {
        name.push('_');
    }
    Ident::new(name)
}

/// Compares one key range by aggregates, on the server: the count and the XOR of the row hashes
/// of each side, leaving out the keys that have a pending write (a left join against the
/// change log, in the same snapshot). Returns (rows in the source range, equal).
async fn compare_chunk(
    client: &Client,
    plan: &Plan,
    s: &Sides,
    predicate: &str,
) -> Result<(u64, bool)> {
    let kcols = log_key_columns(plan);
    let klist = join_idents(&kcols);
    let log_keys = log_keys_as_shadow(plan, s, true);
    let first = &kcols[0];
    if !s.transparent {
        // The source's predicate means nothing on the shadow: take the chunk's source rows and
        // look each one up in the shadow by its mapped key (the shadow's key index).
        let sql = format!(
            "WITH p AS (SELECT DISTINCT {log_keys} FROM {log} l WHERE NOT l.truncated), \
                  q AS (SELECT {sk}, {sh} AS h FROM {src} WHERE {predicate}) \
             SELECT count(*), count(*) FILTER (WHERE p.{first} IS NULL AND d.h IS DISTINCT FROM q.h) = 0 \
               FROM q LEFT JOIN (SELECT {dk}, {dh} AS h FROM {shadow}) d USING ({klist}) \
                      LEFT JOIN p USING ({klist})",
            log = plan.capture.log,
            sk = s.src_keys,
            sh = s.src_hash,
            src = plan.source_from(),
            dk = s.dst_keys,
            dh = s.dst_hash,
            shadow = plan.shadow_from(),
        );
        let row = client.query_one(&sql, &[]).await.ctx(format_args!(
            "verifying {} against {}",
            plan.shadow.human(),
            plan.source.human()
        ))?;
        return Ok((
            row.try_get::<_, i64>(0)
                .ctx("reading a verification result")? as u64,
            row.try_get(1).ctx("reading a verification result")?,
        ));
    }
    // Transparent: the predicate selects the same keys on the shadow and on the log's keys
    // (cast to the shadow's types and named like the key columns), so each side is aggregated
    // over the whole range without a join, and the rows of the range's pending keys (few, looked
    // up by key) are taken out again: XOR is its own inverse, and every key is in the range once.
    let pending = pending_alias(plan);
    let named_log_keys = log_key_exprs(plan, s)
        .into_iter()
        .zip(&plan.key)
        .map(|(e, k)| format!("{e} AS {}", k.shadow_name))
        .collect::<Vec<_>>()
        .join(", ");
    let matches = plan
        .key
        .iter()
        .map(|k| format!("{n} = {pending}.{n}", n = k.shadow_name))
        .collect::<Vec<_>>()
        .join(" AND ");
    let sql = format!(
        "WITH {pending} AS (SELECT * FROM (SELECT DISTINCT {named_log_keys} FROM {log} l WHERE NOT l.truncated) p \
                            WHERE {predicate}), \
              s AS (SELECT count(*) AS n, bit_xor({sh}) AS x FROM {src} WHERE {predicate}), \
              sp AS (SELECT count(*) AS n, bit_xor(q.h) AS x FROM {pending} CROSS JOIN LATERAL \
                       (SELECT {sh} AS h FROM {src} WHERE {matches} OFFSET 0) q), \
              d AS (SELECT count(*) AS n, bit_xor({dh}) AS x FROM {shadow} WHERE {predicate}), \
              dp AS (SELECT count(*) AS n, bit_xor(q.h) AS x FROM {pending} CROSS JOIN LATERAL \
                       (SELECT {dh} AS h FROM {shadow} WHERE {matches} OFFSET 0) q) \
         SELECT s.n, s.n - sp.n = d.n - dp.n \
                AND (COALESCE(s.x, 0) # COALESCE(sp.x, 0)) = (COALESCE(d.x, 0) # COALESCE(dp.x, 0)) \
           FROM s, sp, d, dp",
        log = plan.capture.log,
        sh = s.src_hash,
        src = plan.source_from(),
        dh = s.dst_hash,
        shadow = plan.shadow_from(),
    );
    let row = client.query_one(&sql, &[]).await.ctx(format_args!(
        "verifying {} against {}",
        plan.shadow.human(),
        plan.source.human()
    ))?;
    let what = format_args!(
        "verifying {} against {}",
        plan.shadow.human(),
        plan.source.human()
    );
    Ok((row.col::<i64>(0, &what)? as u64, row.col(1, &what)?))
}

/// Differences in one key range: (keys as text, whether a change to the key is pending).
async fn diff_chunk(
    client: &Client,
    plan: &Plan,
    s: &Sides,
    predicate: &str,
) -> Result<(u64, Vec<(Vec<Option<String>>, bool)>)> {
    let kcols = log_key_columns(plan);
    let klist = join_idents(&kcols);
    let log = &plan.capture.log;
    // Log keys in the shadow's types, to compare with either side.
    let log_keys = log_keys_as_shadow(plan, s, false);
    let text_keys = kcols
        .iter()
        .map(|k| format!("COALESCE(s.{k}, d.{k})::text"))
        .collect::<Vec<_>>()
        .join(", ");
    let coalesced = kcols
        .iter()
        .map(|k| format!("COALESCE(s.{k}, d.{k})"))
        .collect::<Vec<_>>()
        .join(", ");
    // Transparent: both sides by the predicate, so rows the shadow has and the source lacks
    // show up too. Otherwise the shadow's rows of the source's mapped keys (extra shadow rows
    // are found by `extra_shadow_rows`).
    let d = if s.transparent {
        format!(
            "SELECT {dk}, {dh} AS h FROM {shadow} WHERE {predicate}",
            dk = s.dst_keys,
            dh = s.dst_hash,
            shadow = plan.shadow_from()
        )
    } else {
        format!(
            "SELECT {dk}, {dh} AS h FROM {shadow} WHERE ({dcols}) IN (SELECT {klist} FROM s)",
            dk = s.dst_keys,
            dh = s.dst_hash,
            shadow = plan.shadow_from(),
            dcols = plan.shadow_key_list(),
        )
    };
    let sql = format!(
        "WITH s AS (SELECT {sk}, {sh} AS h FROM {src} WHERE {predicate}), \
              d AS ({d}), \
              x AS (SELECT {text_keys}, ({coalesced}) IN (SELECT {log_keys} FROM {log} l WHERE NOT l.truncated) AS pending \
                      FROM s FULL JOIN d USING ({klist}) WHERE s.h IS DISTINCT FROM d.h) \
         SELECT (SELECT count(*) FROM s), x.* FROM x \
         UNION ALL SELECT (SELECT count(*) FROM s), {nulls}, NULL WHERE NOT EXISTS (SELECT 1 FROM x)",
        sk = s.src_keys,
        sh = s.src_hash,
        src = plan.source_from(),
        nulls = vec!["NULL::text"; kcols.len()].join(", "),
    );
    let rows = client.query(&sql, &[]).await.ctx(format_args!(
        "verifying {} against {}",
        plan.shadow.human(),
        plan.source.human()
    ))?;
    let what = format_args!(
        "verifying {} against {}",
        plan.shadow.human(),
        plan.source.human()
    );
    let mut count = 0u64;
    let mut diffs = Vec::new();
    for r in &rows {
        count = r.col::<i64>(0, &what)? as u64;
        let pending: Option<bool> = r.col(kcols.len() + 1, &what)?;
        if let Some(p) = pending {
            let keys = (0..kcols.len())
                .map(|i| r.col::<Option<String>>(i + 1, &what))
                .collect::<Result<_>>()?;
            diffs.push((keys, p));
        }
    }
    Ok((count, diffs))
}

/// Keys of shadow rows that no source row maps to and that have no pending change (as text):
/// with key columns that the ALTER changes, the chunks select source rows only, so rows that
/// only the shadow has are looked for here, in one statement over both tables' keys (one
/// snapshot). At most `MAX_REPAIR + 1` keys.
async fn extra_shadow_rows(
    client: &Client,
    plan: &Plan,
    s: &Sides,
) -> Result<Vec<Vec<Option<String>>>> {
    let kcols = log_key_columns(plan);
    let same = |a: &str, b: &str| {
        kcols
            .iter()
            .map(|k| format!("{a}.{k} = {b}.{k}"))
            .collect::<Vec<_>>()
            .join(" AND ")
    };
    let text_keys = kcols
        .iter()
        .map(|k| format!("CAST(d.{k} AS text)"))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        "WITH p AS (SELECT DISTINCT {log_keys} FROM {log} l WHERE NOT l.truncated), \
              s AS (SELECT {sk} FROM {src}) \
         SELECT {text_keys} FROM (SELECT {dk} FROM {shadow}) d \
          WHERE NOT EXISTS (SELECT 1 FROM s WHERE {sd}) AND NOT EXISTS (SELECT 1 FROM p WHERE {pd}) \
          LIMIT {limit}",
        log_keys = log_keys_as_shadow(plan, s, true),
        log = plan.capture.log,
        sk = s.src_keys,
        src = plan.source_from(),
        dk = s.dst_keys,
        shadow = plan.shadow_from(),
        sd = same("s", "d"),
        pd = same("p", "d"),
        limit = MAX_REPAIR + 1,
    );
    let rows = client.query(&sql, &[]).await.ctx(format_args!(
        "looking for rows of {} that {} lacks",
        plan.shadow.human(),
        plan.source.human()
    ))?;
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        let mut k = Vec::with_capacity(kcols.len());
        for i in 0..kcols.len() {
            k.push(r.try_get(i).ctx("reading a verification result")?);
        }
        out.push(k);
    }
    Ok(out)
}

/// Queues keys for replay by writing them into the change log (1,000 keys a statement).
async fn queue_for_replay(
    client: &Client,
    plan: &Plan,
    keys: &[Vec<Option<String>>],
) -> Result<()> {
    let kcols = log_key_columns(plan);
    for batch in keys.chunks(1000) {
        let rows: Vec<String> = batch
            .iter()
            .map(|k| {
                let vals: Vec<String> = k
                    .iter()
                    .zip(&plan.key)
                    .map(|(v, key)| match v {
                        Some(v) => format!("CAST({} AS {})", literal(v), key.source_type),
                        None => "NULL".to_string(),
                    })
                    .collect();
                format!("({})", vals.join(", "))
            })
            .collect();
        client
            .batch_execute(&format!(
                "INSERT INTO {} ({}) VALUES {}",
                plan.capture.log,
                join_idents(&kcols),
                rows.join(", ")
            ))
            .await
            .ctx("queueing differing keys for repair")?;
    }
    Ok(())
}

/// More differing rows than this is not a stray corruption to repair quietly: stop and say so.
const MAX_REPAIR: usize = 10_000;

/// What [`compare`] found: the counts so far, and the keys that differ with no pending change.
pub struct Compared {
    report: Report,
    /// Differing keys, with the chunk predicate they were found by (None: by the check for rows
    /// only the shadow has).
    to_repair: Vec<(Option<String>, Vec<Option<String>>)>,
    /// None with `--verify off`.
    sides: Option<Sides>,
}

/// Compares the shadow with the source (see the module header), range by range on `jobs`
/// sessions, and looks for rows only the shadow has; writes nothing. `chunks` are the copy's
/// key ranges. Differences go to [`repair`].
pub async fn compare(
    client: &Client,
    spec: &crate::db::conn::ConnSpec,
    jobs: usize,
    plan: &Plan,
    chunks: &[String],
    mode: Mode,
    gov: &crate::pacing::governor::Governor,
) -> Result<Compared> {
    let mut report = Report {
        mode: format!("{mode:?}").to_lowercase(),
        chunks_total: chunks.len(),
        ..Default::default()
    };
    if mode == Mode::Off {
        return Ok(Compared {
            report,
            to_repair: Vec::new(),
            sides: None,
        });
    }
    let mut s = sides(client, plan).await?;
    // Block-range chunks select rows by their place in the source: never apply them to the
    // shadow.
    if chunks
        .iter()
        .any(|p| crate::rewrite::chunks::is_tid_range(p))
    {
        s.transparent = false;
    }
    let picked: Vec<&String> = match mode {
        Mode::Sample => chunks.iter().step_by(10).collect(),
        _ => chunks.iter().collect(),
    };
    // The ranges are checked on `jobs` sessions at once; each takes the next range from a
    // shared queue without blocking the runtime.
    let (tx, rx) = crossbeam_channel::unbounded::<String>();
    for p in &picked {
        tx.send((*p).clone()).expect("channel open");
    }
    drop(tx);
    let s = std::sync::Arc::new(s);
    let mut set = tokio::task::JoinSet::new();
    for w in 0..jobs.max(1).min(picked.len().max(1)) {
        let (rx, s, spec, plan) = (rx.clone(), s.clone(), spec.clone(), plan.clone());
        let gov = gov.clone();
        set.spawn(async move {
            let c = crate::db::conn::connect(&spec, &format!("verify-{w}")).await?;
            let mut out = (0u64, 0usize, 0u64, Vec::new());
            while let Ok(pred) = rx.try_recv() {
                // Verification reads the whole table twice: it keeps to the pace and windows
                // of the copy (pause, throttles, --nice).
                gov.copy_permit(plan.run_id).await?;
                let started = std::time::Instant::now();
                crate::failpoint::hold("verify-range").await;
                let (rows, equal) = compare_chunk(&c, &plan, &s, &pred).await?;
                gov.nice(started.elapsed()).await;
                out.0 += rows;
                out.1 += 1;
                if equal {
                    continue;
                }
                // Which rows? (Only for a range that differs: the expensive comparison.)
                let (_, diffs) = diff_chunk(&c, &plan, &s, &pred).await?;
                for (keys, pending) in diffs {
                    if pending {
                        out.2 += 1;
                    } else {
                        out.3.push((Some(pred.clone()), keys));
                    }
                }
            }
            Ok::<_, Error>(out)
        });
    }
    let mut to_repair: Vec<(Option<String>, Vec<Option<String>>)> = Vec::new();
    while let Some(j) = set.join_next().await {
        let (rows, chunks_done, pending, diffs) =
            j.map_err(|e| Error::failed(format!("a verification worker panicked: {e}")))??;
        report.rows_verified += rows;
        report.chunks_verified += chunks_done;
        report.pending += pending;
        to_repair.extend(diffs);
    }
    if !s.transparent {
        for k in extra_shadow_rows(client, plan, &s).await? {
            to_repair.push((None, k));
        }
    }
    Ok(Compared {
        report,
        to_repair,
        sides: Some(std::sync::Arc::try_unwrap(s).unwrap_or_else(|s| (*s).clone())),
    })
}

/// Repairs what [`compare`] found: the differing keys are queued for replay through the change
/// log (the repair re-reads the source), replayed, and their ranges compared again. Returns the
/// report; an error when more than `MAX_REPAIR` rows differ or a repaired row still differs.
/// Replay writes the shadow: nothing may hold a lock on it that conflicts with ROW EXCLUSIVE
/// (an index build) while this runs.
pub async fn repair(
    client: &mut Client,
    plan: &Plan,
    found: Compared,
    replay_batch: i64,
    gov: &crate::pacing::governor::Governor,
    policy: &crate::db::locking::LockPolicy,
) -> Result<Report> {
    let Compared {
        mut report,
        to_repair,
        sides,
    } = found;
    // Without sides (`--verify off`) nothing was compared, so nothing differs.
    let Some(s) = sides.filter(|_| !to_repair.is_empty()) else {
        return Ok(report);
    };
    if to_repair.len() > MAX_REPAIR {
        return Err(Error::failed(format!(
            "verification failed: {} rows of {} differ from {} (more than {MAX_REPAIR}, so they are not repaired automatically); \
             a --map expression that is not deterministic (now(), random()) would do this",
            to_repair.len(),
            plan.shadow.human(),
            plan.source.human()
        ))
        .with_state(format!("nothing was swapped; {} is unchanged and usable", plan.source.human()))
        .with_next(format!("investigate, then run `pg-hotswap abort --table {}`", crate::output::ui::shell_word(&plan.source.to_string()))));
    }
    crate::output::ui::say(&format!(
        "verify: {} row{} of the shadow differ from the source; repairing them from the source",
        to_repair.len(),
        if to_repair.len() == 1 { "" } else { "s" }
    ));
    let keys: Vec<Vec<Option<String>>> = to_repair.iter().map(|(_, k)| k.clone()).collect();
    queue_for_replay(client, plan, &keys).await?;
    crate::rewrite::replay::prepare_session(client, plan).await?;
    crate::rewrite::replay::catch_up(client, plan, replay_batch, replay_batch, gov, policy).await?;
    // Check the repaired ranges again.
    let mut preds: Vec<&Option<String>> = to_repair.iter().map(|(p, _)| p).collect();
    preds.dedup();
    let mut still = Vec::new();
    for pred in preds {
        let diffs = match pred {
            Some(pred) => diff_chunk(client, plan, &s, pred).await?.1,
            None => extra_shadow_rows(client, plan, &s)
                .await?
                .into_iter()
                .map(|k| (k, false))
                .collect(),
        };
        for (k, pending) in diffs {
            if !pending && keys.contains(&k) && !still.contains(&k) {
                still.push(k);
            }
        }
    }
    if !still.is_empty() {
        let sample: Vec<String> = still
            .iter()
            .take(5)
            .map(|k| {
                k.iter()
                    .map(|v| v.clone().unwrap_or_else(|| "NULL".into()))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .collect();
        return Err(Error::failed(format!(
            "verification failed: {} row{} of {} still differ from {} after repair (keys: {}); a --map expression that is not deterministic (now(), random()) would do this",
            still.len(),
            if still.len() == 1 { "" } else { "s" },
            plan.shadow.human(),
            plan.source.human(),
            sample.join("; ")
        ))
        .with_state(format!("nothing was swapped; {} is unchanged and usable", plan.source.human()))
        .with_next(format!(
            "investigate, then run `pg-hotswap abort --table {}`; use --verify off only if the difference is expected",
            crate::output::ui::shell_word(&plan.source.to_string())
        )));
    }
    report.repaired = keys.len() as u64;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse() {
        assert_eq!("full".parse::<Mode>().unwrap(), Mode::Full);
        assert_eq!("sample".parse::<Mode>().unwrap(), Mode::Sample);
        assert_eq!("off".parse::<Mode>().unwrap(), Mode::Off);
        assert!("most".parse::<Mode>().is_err());
    }
}
