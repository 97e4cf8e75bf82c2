//! Catalog inspection: everything pg-hotswap needs to know about a table, read by OID.
//!
//! Nothing here changes the database. The queries live in `sql/*.sql`; each row becomes a plain
//! struct so the rest of the crate never touches catalog rows. Names come back raw (unquoted)
//! and are wrapped in [`Ident`]s, so they are quoted wherever they reach SQL.
//!
//! The parts, re-exported here so callers keep writing `catalog::...`: `version.rs` (server
//! version, `--version`, per-version SQL), `columns.rs`, `indexes.rs` (and extended
//! statistics), `constraints.rs` (and incoming foreign keys), `access.rs` (grants, policies),
//! `attached.rs` (triggers, sequences, rules, publications), `views.rs` (and other dependents),
//! `bloat.rs` (estimated bloat of every table, for `bloat` and `run --bloated-over`).
//! This file keeps the table itself: resolving `--table`, its row, its fingerprint, and
//! relation names.

mod access;
mod attached;
mod bloat;
mod columns;
mod constraints;
mod indexes;
mod partitions;
mod version;
mod views;

pub use access::*;
pub use attached::*;
pub use bloat::*;
pub use columns::*;
pub use constraints::*;
pub use indexes::*;
pub use partitions::*;
pub use version::*;
pub use views::*;

use crate::db::ident::{Ident, QualifiedName};
use crate::error::{DbContext, Error, Result, RowExt};
use tokio_postgres::types::Oid;
use tokio_postgres::GenericClient;

/// The table being rewritten, as found at the start of the run.
#[derive(Clone, Debug)]
pub struct Table {
    pub oid: Oid,
    pub name: QualifiedName,
    pub relkind: String,
    pub persistence: String,
    pub is_partition: bool,
    pub has_inheritance: bool,
    pub owner: Ident,
    pub replica_identity: String,
    pub reloptions: Vec<String>,
    pub toast_options: Vec<String>,
    pub tablespace: Option<Ident>,
    pub row_security: bool,
    pub force_row_security: bool,
    pub comment: Option<String>,
    pub reltuples: f64,
    pub heap_bytes: i64,
    pub total_bytes: i64,
    /// Whether the table has explicit privileges (relacl not NULL).
    pub has_acl: bool,
    /// A typed table's composite type (`CREATE TABLE ... OF type`; `pg_class.reloftype`).
    pub of_type: Option<String>,
}

/// Resolves `--table` like PostgreSQL does (quoted parts kept, unquoted folded to lower case,
/// no schema: search_path). Returns the oid, or a refusal naming the table.
pub async fn resolve_table(client: &impl GenericClient, spec: &str) -> Result<Oid> {
    let row = match client
        .query_one("SELECT pg_catalog.to_regclass($1::text)::oid", &[&spec])
        .await
    {
        Ok(row) => row,
        Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE) => {
            // No USAGE on the named schema: name the schema, the role and the grant.
            let who = client
                .query_one(
                    "SELECT pg_catalog.quote_ident((pg_catalog.parse_ident($1))[1]), \
                            pg_catalog.quote_ident(current_user)",
                    &[&spec],
                )
                .await
                .ok();
            let (schema, me): (String, String) = who
                .and_then(|r| Some((r.try_get(0).ok()?, r.try_get(1).ok()?)))
                .unwrap_or_else(|| ("<schema>".into(), "<role>".into()));
            return Err(Error::db(
                format_args!(
                    "cannot look up table {spec:?}: role {me} has no USAGE on schema {schema}"
                ),
                e,
            )
            .with_kind(crate::error::Kind::Refused)
            .with_state("nothing was changed")
            .with_next(format!(
                "connect as the table's owner, or GRANT USAGE ON SCHEMA {schema} TO {me} (as the schema's owner or a superuser)"
            )));
        }
        Err(e) => {
            return Err(Error::db(format_args!("cannot read the table name {spec:?}"), e)
                .with_kind(crate::error::Kind::Refused)
                .with_next("write --table as schema.table; quote names with capitals or spaces like \"App\".\"My Table\""))
        }
    };
    let oid: Option<Oid> = row.col(0, &format_args!("looking up table {spec:?}"))?;
    if let Some(oid) = oid {
        return Ok(oid);
    }
    // Say which part is wrong: a schema that does not exist, or the table in it.
    let missing_schema: Option<String> = client
        .query_one(
            "SELECT CASE WHEN cardinality(p) >= 2 AND NOT EXISTS \
               (SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = p[cardinality(p) - 1]) \
             THEN p[cardinality(p) - 1] END FROM (SELECT pg_catalog.parse_ident($1::text) AS p) s",
            &[&spec],
        )
        .await
        .ok()
        .and_then(|r| r.try_get(0).ok().flatten());
    let message = match missing_schema {
        Some(schema) => format!(
            "table {spec:?}: schema \"{}\" does not exist",
            schema.replace('"', "\"\"")
        ),
        None => format!("table {spec:?} does not exist (or is not visible on the search_path)"),
    };
    Err(Error::refused(message)
        .with_state("nothing was changed")
        .with_next("check the name and schema; quote mixed-case names like \"App\".\"Table\""))
}

pub async fn table(client: &impl GenericClient, oid: Oid) -> Result<Table> {
    let r = client
        .query_one(include_str!("../../../sql/table.sql"), &[&oid])
        .await
        .ctx(format_args!("reading the catalog entry of table oid {oid}"))?;
    let what = format!("reading the catalog entry of table oid {oid}");
    Ok(Table {
        oid,
        name: QualifiedName::new(r.col::<String>(0, &what)?, r.col::<String>(1, &what)?),
        relkind: r.col(2, &what)?,
        persistence: r.col(3, &what)?,
        is_partition: r.col(4, &what)?,
        has_inheritance: r.col(5, &what)?,
        owner: Ident::new(r.col::<String>(6, &what)?),
        replica_identity: r.col(7, &what)?,
        reloptions: r.col::<Option<Vec<String>>>(8, &what)?.unwrap_or_default(),
        toast_options: r.col::<Option<Vec<String>>>(9, &what)?.unwrap_or_default(),
        tablespace: r.col::<Option<String>>(10, &what)?.map(Ident::new),
        row_security: r.col(11, &what)?,
        force_row_security: r.col(12, &what)?,
        comment: r.col(13, &what)?,
        reltuples: r.col(14, &what)?,
        heap_bytes: r.col(15, &what)?,
        total_bytes: r.col(16, &what)?,
        has_acl: r.col(17, &what)?,
        of_type: r.col(18, &what)?,
    })
}

/// Comment of a relation (sequence, index...), if any.
pub async fn relation_comment(client: &impl GenericClient, oid: Oid) -> Result<Option<String>> {
    client
        .query_one("SELECT pg_catalog.obj_description($1, 'pg_class')", &[&oid])
        .await
        .ctx("reading a comment")?
        .col(
            0,
            &format_args!("reading the comment of relation oid {oid}"),
        )
}

/// A fingerprint of the table's definition (columns, indexes, constraints, triggers, foreign keys
/// that reference it), taken at the
/// start and compared under the swap lock, so that a concurrent ALTER by someone else stops the
/// run instead of silently diverging (DESIGN.md, "What the capture cannot see"). Not the views
/// over it: the swap reads them again and carries them as they are (a view created or dropped
/// during the run used to stop the swap here; see [`dependent_relation_oids`]).
/// Partitioned tables (issue 15) add their partitions (oid, bound, how many indexes and user
/// triggers each has): one attached, detached or given an index of its own during the run
/// would be lost by the swap. NULL for a plain table, which `concat_ws` skips, so a plain
/// table's fingerprint is what it always was.
pub async fn fingerprint(client: &impl GenericClient, oid: Oid) -> Result<String> {
    let row = client
        .query_one(
            "SELECT md5(concat_ws('|', \
               (SELECT string_agg(attname || ':' || format_type(atttypid, atttypmod) || ':' || attnotnull || ':' || attisdropped, ',' ORDER BY attnum) \
                  FROM pg_catalog.pg_attribute WHERE attrelid = $1 AND attnum > 0), \
               (SELECT string_agg(pg_catalog.pg_get_indexdef(indexrelid), ',' ORDER BY indexrelid) \
                  FROM pg_catalog.pg_index WHERE indrelid = $1), \
               (SELECT string_agg(conname || pg_catalog.pg_get_constraintdef(oid), ',' ORDER BY oid) \
                  FROM pg_catalog.pg_constraint WHERE conrelid = $1), \
               (SELECT string_agg(tgname, ',' ORDER BY tgname) FROM pg_catalog.pg_trigger \
                  WHERE tgrelid = $1 AND tgname NOT LIKE 'hotswap%'), \
               (SELECT string_agg(conname || conrelid::text, ',' ORDER BY oid) \
                  FROM pg_catalog.pg_constraint WHERE confrelid = $1 AND conrelid <> $1), \
               (SELECT string_agg(t.relid::text || ':' || coalesce(pg_catalog.pg_get_expr(c.relpartbound, c.oid), '') \
                                  || ':' || (SELECT count(*) FROM pg_catalog.pg_index x WHERE x.indrelid = t.relid) \
                                  || ':' || (SELECT count(*) FROM pg_catalog.pg_trigger g \
                                              WHERE g.tgrelid = t.relid AND g.tgname NOT LIKE 'hotswap%'), \
                                  ',' ORDER BY t.relid) \
                  FROM pg_catalog.pg_partition_tree($1::oid::regclass) t \
                  JOIN pg_catalog.pg_class c ON c.oid = t.relid WHERE t.level > 0)))",
            &[&oid],
        )
        .await
        .ctx(format_args!("fingerprinting the definition of table oid {oid}"))?;
    let what = format!("fingerprinting the definition of table oid {oid}");
    row.col(0, &what)
}

/// The relations whose rules read the table, directly or through one another (views,
/// materialized views, or another relation's rule: `sql/views.sql`), sorted: the swap compares
/// them under its lock with those it read, so that a view created or dropped just before the
/// lock makes it read them again instead of leaving the new view on the old table.
pub async fn dependent_relation_oids(client: &impl GenericClient, oid: Oid) -> Result<Vec<Oid>> {
    let what = format!("listing the views over table oid {oid}");
    let rows = client
        .query(
            &format!(
                "SELECT v.oid FROM ({}) v ORDER BY v.oid",
                include_str!("../../../sql/views.sql")
            ),
            &[&oid],
        )
        .await
        .ctx(&what)?;
    rows.iter().map(|r| r.col(0, &what)).collect()
}

/// A fingerprint of what the swap carries from the source as it is at the swap rather than as it
/// was at the start (privileges, policies, comments, settings...: `sql/carried_fingerprint.sql`,
/// `rewrite::carried`). Errors: the query failed.
pub async fn carried_fingerprint(client: &impl GenericClient, oid: Oid) -> Result<String> {
    let what = format!("fingerprinting the privileges, comments and settings of table oid {oid}");
    client
        .query_one(
            include_str!("../../../sql/carried_fingerprint.sql"),
            &[&oid],
        )
        .await
        .ctx(&what)?
        .col(0, &what)
}

/// Whether `name` still names the relation `oid` (false when it is gone or another relation took
/// the name): the tool drops or trusts only the very relation it recorded.
pub async fn names_relation(
    client: &impl GenericClient,
    name: &QualifiedName,
    oid: Oid,
) -> Result<bool> {
    client
        .query_one(
            "SELECT to_regclass($1::text)::oid IS NOT DISTINCT FROM $2::oid",
            &[&name.to_string(), &oid],
        )
        .await
        .ctx(format_args!("looking up {}", name.human()))?
        .col(0, &format_args!("looking up {}", name.human()))
}

/// The schema-qualified name of the relation `oid` now; None when there is none.
pub async fn relation_name(client: &impl GenericClient, oid: Oid) -> Result<Option<QualifiedName>> {
    let what = format!("looking up the relation of oid {oid}");
    let row = client
        .query_opt(
            "SELECT n.nspname::text, c.relname::text FROM pg_catalog.pg_class c \
               JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = $1",
            &[&oid],
        )
        .await
        .ctx(&what)?;
    match row {
        Some(r) => Ok(Some(QualifiedName::new(
            r.col::<String>(0, &what)?,
            r.col::<String>(1, &what)?,
        ))),
        None => Ok(None),
    }
}

/// Whether a relation with this name exists in the schema (any kind: tables, indexes, views...).
pub async fn relation_exists(
    client: &impl GenericClient,
    schema: &Ident,
    name: &str,
) -> Result<bool> {
    let row = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_class c \
               JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
              WHERE n.nspname = $1 AND c.relname = $2)",
            &[&schema.as_str(), &name],
        )
        .await
        .ctx("looking up a relation name")?;
    row.col(0, &"looking up a relation name")
}

/// The first of `base`, `base2`, `base3`... (each fitted to 63 bytes) that no relation in the
/// schema uses and that is not in `taken`.
pub async fn free_name(
    client: &impl GenericClient,
    schema: &Ident,
    base: &str,
    suffix: &str,
    taken: &[String],
) -> Result<String> {
    for n in 0..1000 {
        let suffix_n = if n == 0 {
            suffix.to_string()
        } else {
            format!("{suffix}{}", n + 1)
        };
        let candidate = crate::db::ident::fit_name(base, &suffix_n);
        if taken.contains(&candidate) {
            continue;
        }
        if !relation_exists(client, schema, &candidate).await? {
            return Ok(candidate);
        }
    }
    Err(Error::failed(format!(
        "no free name like {base}{suffix} in schema {}",
        schema.as_str()
    )))
}
