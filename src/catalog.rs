//! Catalog inspection: everything pg-hotswap needs to know about a table, read by OID.
//!
//! Nothing here changes the database. The queries live in `sql/*.sql`; each row becomes a plain
//! struct so the rest of the crate never touches catalog rows. Names come back raw (unquoted)
//! and are wrapped in [`Ident`]s, so they are quoted wherever they reach SQL.

use crate::error::{DbContext, Error, Result, RowExt};
use crate::ident::{Ident, QualifiedName};
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
}

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

#[derive(Clone, Debug)]
pub struct Index {
    pub oid: Oid,
    pub name: Ident,
    pub def: String,
    /// The text `def` starts with, up to and including " USING ".
    pub prefix: String,
    pub unique: bool,
    pub primary: bool,
    pub usable: bool,
    pub immediate: bool,
    pub partial: bool,
    pub nkeys: i32,
    /// Key columns that are plain columns (expression columns are left out).
    pub key_columns: Vec<Ident>,
    pub constraint_name: Option<Ident>,
    /// `p`, `u` or `x` for an index that backs a constraint.
    pub constraint_type: Option<String>,
    pub constraint_def: Option<String>,
    pub tablespace: Option<Ident>,
    pub deferrable: bool,
    pub deferred: bool,
    pub comment: Option<String>,
    pub constraint_comment: Option<String>,
    pub clustered: bool,
    /// Per-column statistics targets of the index: (column number, target).
    pub column_stats: Vec<(i32, i32)>,
    /// A temporal key (PostgreSQL 18, `WITHOUT OVERLAPS`): a GiST index that only its
    /// constraint can create (`CREATE UNIQUE INDEX ... USING gist` is refused).
    pub temporal: bool,
}

impl Index {
    /// The definition after " USING ": method, columns, INCLUDE, WITH, WHERE.
    pub fn body(&self) -> Result<&str> {
        self.def.strip_prefix(self.prefix.as_str()).ok_or_else(|| {
            Error::failed(format!(
                "cannot read the definition of index {}: unexpected text {:?}",
                self.name.as_str(),
                self.def
            ))
        })
    }

    /// Whether the index is created by adding its constraint (`ADD CONSTRAINT <def>`): exclusion
    /// constraints and temporal keys, whose indexes `CREATE INDEX` cannot make.
    pub fn built_by_constraint(&self) -> bool {
        self.constraint_type.as_deref() == Some("x") || self.temporal
    }

    /// True when the index can serve as the row identity: unique, valid, immediate, not partial,
    /// on plain columns only.
    pub fn is_identity_candidate(&self) -> bool {
        self.unique
            && self.usable
            && self.immediate
            && !self.partial
            && self.key_columns.len() == self.nkeys as usize
    }
}

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
}

#[derive(Clone, Debug)]
pub struct IncomingForeignKey {
    pub name: Ident,
    pub table_oid: Oid,
    pub table: QualifiedName,
    pub def: String,
    pub validated: bool,
    pub comment: Option<String>,
}

#[derive(Clone, Debug)]
pub struct Trigger {
    pub name: Ident,
    pub def: String,
    /// `O` (origin, default), `D` (disabled), `R` (replica), `A` (always).
    pub enabled: String,
    pub comment: Option<String>,
}

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

#[derive(Clone, Debug)]
pub struct Grant {
    pub privilege: String,
    pub column: Option<Ident>,
    /// Already quoted, or `PUBLIC`.
    pub grantee: String,
    pub grantable: bool,
}

impl Grant {
    /// `GRANT ... ON <target> TO ...`.
    pub fn sql(&self, target: &QualifiedName) -> String {
        let cols = self
            .column
            .as_ref()
            .map(|c| format!(" ({c})"))
            .unwrap_or_default();
        format!(
            "GRANT {}{cols} ON {target} TO {}{}",
            self.privilege,
            self.grantee,
            if self.grantable {
                " WITH GRANT OPTION"
            } else {
                ""
            }
        )
    }
}

#[derive(Clone, Debug)]
pub struct Policy {
    pub name: Ident,
    pub kind: String,
    pub command: String,
    pub roles: String,
    pub using_expr: Option<String>,
    pub check_expr: Option<String>,
}

impl Policy {
    pub fn sql(&self, target: &QualifiedName) -> String {
        let mut s = format!(
            "CREATE POLICY {} ON {target} AS {} FOR {} TO {}",
            self.name, self.kind, self.command, self.roles
        );
        if let Some(u) = &self.using_expr {
            s.push_str(&format!(" USING ({u})"));
        }
        if let Some(c) = &self.check_expr {
            s.push_str(&format!(" WITH CHECK ({c})"));
        }
        s
    }
}

#[derive(Clone, Debug)]
pub struct OwnedSequence {
    pub oid: Oid,
    pub name: QualifiedName,
    pub column: Ident,
    /// `a` for a serial (owned) sequence, `i` for an identity sequence.
    pub deptype: String,
}

/// `server_version_num` of the server (also noted for error messages, see
/// [`crate::error::RowExt`]).
pub async fn server_version(client: &impl GenericClient) -> Result<i32> {
    let row = client
        .query_one("SELECT current_setting('server_version_num')::int4", &[])
        .await
        .ctx("reading the server version")?;
    let version: i32 = row.col(0, &"reading the server version")?;
    crate::error::note_server_version(version);
    Ok(version)
}

/// The oldest PostgreSQL pg-hotswap runs on, and the versions the CI matrix tests (.ci/run).
pub const MIN_SERVER_VERSION: i32 = 150_000;
pub const TESTED_MAJORS: [i32; 4] = [15, 16, 17, 18];

/// `PostgreSQL 18.4 (tested)` / `(not tested: ...)` for `--version` and `plan`.
pub fn describe_server_version(version: i32) -> String {
    let major = version / 10_000;
    let tested = if version < MIN_SERVER_VERSION {
        "not supported: pg-hotswap needs PostgreSQL 15 or newer"
    } else if TESTED_MAJORS.contains(&major) {
        "tested"
    } else {
        "not tested: the CI tests 15, 16, 17 and 18"
    };
    format!("PostgreSQL {major}.{} ({tested})", version % 10_000)
}

/// What `pg-hotswap --version` prints: the client's version, the versions the CI tests, and the
/// server's version when a connection resolves (`--dsn`, `DATABASE_URL`, `PG*` variables).
/// Never prompts (no password prompt exists) and gives up on the server after 5 seconds.
pub async fn version_report(dsn: Option<&str>) -> String {
    let mut out = format!(
        "pg-hotswap {}
tested with PostgreSQL {}
",
        env!("CARGO_PKG_VERSION"),
        TESTED_MAJORS.map(|m| m.to_string()).join(", ")
    );
    let from_env = [
        "DATABASE_URL",
        "PGHOST",
        "PGPORT",
        "PGDATABASE",
        "PGUSER",
        "PGSERVICE",
    ]
    .iter()
    .any(|k| std::env::var_os(k).is_some_and(|v| !v.is_empty()));
    if dsn.is_none() && !from_env {
        out.push_str("server: no connection given (--dsn, DATABASE_URL or PG* variables)\n");
        return out;
    }
    let server = async {
        let spec = crate::conn::resolve_spec(dsn, std::time::Duration::from_secs(5))?;
        let client = crate::conn::connect(&spec, "version").await?;
        server_version(&client).await
    };
    match tokio::time::timeout(std::time::Duration::from_secs(5), server).await {
        Ok(Ok(v)) => out.push_str(&format!("server: {}\n", describe_server_version(v))),
        Ok(Err(e)) => out.push_str(&format!(
            "server: not reached: {}\n",
            e.message().lines().next().unwrap_or_default()
        )),
        Err(_) => out.push_str("server: not reached within 5 s\n"),
    }
    out
}

/// Catalog columns that exist only from some version on: `(since, the text in sql/*.sql, what
/// older servers get instead)`. The files are written for the newest catalog; [`for_version`]
/// rewrites them for older servers, so every difference between versions is listed here.
const VERSIONED_SQL: &[(i32, &str, &str)] = &[
    // PostgreSQL 18: temporal primary and unique keys (WITHOUT OVERLAPS).
    (180_000, "COALESCE(con.conperiod, false)", "false"),
    // PostgreSQL 18: NOT NULL constraints are pg_constraint rows (contype 'n').
    (180_000, "con.contype = 'n'", "false"),
];

/// `sql` for a server of `version` (see [`VERSIONED_SQL`]).
pub fn for_version(sql: &'static str, version: i32) -> std::borrow::Cow<'static, str> {
    let mut out = std::borrow::Cow::Borrowed(sql);
    for (since, new, old) in VERSIONED_SQL {
        if version < *since && out.contains(new) {
            out = std::borrow::Cow::Owned(out.replace(new, old));
        }
    }
    out
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
        .query_one(include_str!("../sql/table.sql"), &[&oid])
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
    })
}

pub async fn columns(client: &impl GenericClient, oid: Oid) -> Result<Vec<Column>> {
    let rows = client
        .query(include_str!("../sql/columns.sql"), &[&oid])
        .await
        .ctx(format_args!("reading the columns of table oid {oid}"))?;
    let what = format!("reading the columns of table oid {oid}");
    rows.iter().map(|r| Column::from_row(r, &what)).collect()
}

pub async fn indexes(client: &impl GenericClient, oid: Oid) -> Result<Vec<Index>> {
    let version = server_version(client).await?;
    let rows = client
        .query(
            &*for_version(include_str!("../sql/indexes.sql"), version),
            &[&oid],
        )
        .await
        .ctx(format_args!("reading the indexes of table oid {oid}"))?;
    let what = format!("reading the indexes of table oid {oid}");
    rows.iter()
        .map(|r| {
            Ok(Index {
                oid: r.col(0, &what)?,
                name: Ident::new(r.col::<String>(1, &what)?),
                def: r.col(2, &what)?,
                prefix: r.col(3, &what)?,
                unique: r.col(4, &what)?,
                primary: r.col(5, &what)?,
                usable: r.col(6, &what)?,
                immediate: r.col(7, &what)?,
                partial: r.col(8, &what)?,
                nkeys: r.col(9, &what)?,
                key_columns: r
                    .col::<Vec<String>>(10, &what)?
                    .into_iter()
                    .map(Ident::new)
                    .collect(),
                constraint_name: r.col::<Option<String>>(11, &what)?.map(Ident::new),
                constraint_type: r.col(12, &what)?,
                constraint_def: r.col(13, &what)?,
                tablespace: r.col::<Option<String>>(14, &what)?.map(Ident::new),
                deferrable: r.col(15, &what)?,
                deferred: r.col(16, &what)?,
                comment: r.col(17, &what)?,
                constraint_comment: r.col(18, &what)?,
                clustered: r.col(19, &what)?,
                column_stats: r
                    .col::<Vec<String>>(20, &what)?
                    .iter()
                    .filter_map(|x| {
                        let (a, b) = x.split_once(':')?;
                        Some((a.parse().ok()?, b.parse().ok()?))
                    })
                    .collect(),
                temporal: r.col(21, &what)?,
            })
        })
        .collect()
}

pub async fn constraints(client: &impl GenericClient, oid: Oid) -> Result<Vec<Constraint>> {
    let rows = client
        .query(include_str!("../sql/constraints.sql"), &[&oid])
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
            })
        })
        .collect()
}

pub async fn incoming_foreign_keys(
    client: &impl GenericClient,
    oid: Oid,
) -> Result<Vec<IncomingForeignKey>> {
    let rows = client
        .query(include_str!("../sql/incoming_fks.sql"), &[&oid])
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
            })
        })
        .collect()
}

/// User triggers (internal ones, like those behind foreign keys, are left out).
pub async fn triggers(client: &impl GenericClient, oid: Oid) -> Result<Vec<Trigger>> {
    let rows = client
        .query(
            "SELECT t.tgname::text, pg_catalog.pg_get_triggerdef(t.oid), t.tgenabled::text, \
                    pg_catalog.obj_description(t.oid, 'pg_trigger') \
               FROM pg_catalog.pg_trigger t WHERE t.tgrelid = $1 AND NOT t.tgisinternal \
              ORDER BY t.tgname",
            &[&oid],
        )
        .await
        .ctx(format_args!("reading the triggers of table oid {oid}"))?;
    let what = format!("reading the triggers of table oid {oid}");
    rows.iter()
        .map(|r| {
            Ok(Trigger {
                name: Ident::new(r.col::<String>(0, &what)?),
                def: r.col(1, &what)?,
                enabled: r.col(2, &what)?,
                comment: r.col(3, &what)?,
            })
        })
        .collect()
}

pub async fn grants(client: &impl GenericClient, oid: Oid) -> Result<Vec<Grant>> {
    let rows = client
        .query(include_str!("../sql/grants.sql"), &[&oid])
        .await
        .ctx(format_args!("reading the privileges on relation oid {oid}"))?;
    let what = format!("reading the privileges on relation oid {oid}");
    rows.iter()
        .map(|r| {
            Ok(Grant {
                privilege: r.col(0, &what)?,
                column: r.col::<Option<String>>(1, &what)?.map(Ident::new),
                grantee: r.col(2, &what)?,
                grantable: r.col(3, &what)?,
            })
        })
        .collect()
}

pub async fn policies(client: &impl GenericClient, oid: Oid) -> Result<Vec<Policy>> {
    let rows = client
        .query(include_str!("../sql/policies.sql"), &[&oid])
        .await
        .ctx(format_args!("reading the policies of table oid {oid}"))?;
    let what = format!("reading the policies of table oid {oid}");
    rows.iter()
        .map(|r| {
            Ok(Policy {
                name: Ident::new(r.col::<String>(0, &what)?),
                kind: r.col(1, &what)?,
                command: r.col(2, &what)?,
                roles: r.col(3, &what)?,
                using_expr: r.col(4, &what)?,
                check_expr: r.col(5, &what)?,
            })
        })
        .collect()
}

pub async fn sequences(client: &impl GenericClient, oid: Oid) -> Result<Vec<OwnedSequence>> {
    let rows = client
        .query(include_str!("../sql/sequences.sql"), &[&oid])
        .await
        .ctx(format_args!(
            "reading the sequences owned by table oid {oid}"
        ))?;
    let what = format!("reading the sequences owned by table oid {oid}");
    rows.iter()
        .map(|r| {
            Ok(OwnedSequence {
                oid: r.col(0, &what)?,
                name: QualifiedName::new(r.col::<String>(1, &what)?, r.col::<String>(2, &what)?),
                column: Ident::new(r.col::<String>(3, &what)?),
                deptype: r.col(4, &what)?,
            })
        })
        .collect()
}

pub async fn dependent_views(client: &impl GenericClient, oid: Oid) -> Result<Vec<View>> {
    let rows = client
        .query(include_str!("../sql/views.sql"), &[&oid])
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

/// Membership of the table in a publication, with its column list and row filter (PG 15).
#[derive(Clone, Debug)]
pub struct Publication {
    pub name: Ident,
    /// `(a, b)` or empty.
    pub columns: String,
    /// ` WHERE (...)` or empty.
    pub filter: String,
}

/// Publications the table is a member of (explicitly; FOR ALL TABLES ones follow by themselves).
pub async fn publications(client: &impl GenericClient, oid: Oid) -> Result<Vec<Publication>> {
    let rows = client
        .query(
            "SELECT p.pubname::text, \
                    COALESCE((SELECT ' (' || string_agg(pg_catalog.quote_ident(a.attname), ', ' ORDER BY k.ord) || ')' \
                                FROM unnest(pr.prattrs::int2[]) WITH ORDINALITY AS k(attnum, ord) \
                                JOIN pg_catalog.pg_attribute a ON a.attrelid = pr.prrelid AND a.attnum = k.attnum), ''), \
                    COALESCE(' WHERE (' || pg_catalog.pg_get_expr(pr.prqual, pr.prrelid) || ')', '') \
               FROM pg_catalog.pg_publication_rel pr \
               JOIN pg_catalog.pg_publication p ON p.oid = pr.prpubid \
              WHERE pr.prrelid = $1 ORDER BY 1",
            &[&oid],
        )
        .await
        .ctx(format_args!("reading the publications of table oid {oid}"))?;
    let what = format!("reading the publications of table oid {oid}");
    rows.iter()
        .map(|r| {
            Ok(Publication {
                name: Ident::new(r.col::<String>(0, &what)?),
                columns: r.col(1, &what)?,
                filter: r.col(2, &what)?,
            })
        })
        .collect()
}

/// An extended statistics object on the table.
#[derive(Clone, Debug)]
pub struct Statistics {
    pub name: QualifiedName,
    pub def: String,
    pub target: i32,
    pub owner: Ident,
    pub comment: Option<String>,
}

pub async fn statistics(client: &impl GenericClient, oid: Oid) -> Result<Vec<Statistics>> {
    let rows = client
        .query(include_str!("../sql/statistics.sql"), &[&oid])
        .await
        .ctx(format_args!(
            "reading the extended statistics of table oid {oid}"
        ))?;
    let what = format!("reading the extended statistics of table oid {oid}");
    rows.iter()
        .map(|r| {
            Ok(Statistics {
                name: QualifiedName::new(r.col::<String>(1, &what)?, r.col::<String>(2, &what)?),
                def: r.col(3, &what)?,
                target: r.col(4, &what)?,
                owner: Ident::new(r.col::<String>(5, &what)?),
                comment: r.col(6, &what)?,
            })
        })
        .collect()
}

/// Rules on the table: (name, CREATE RULE text).
pub async fn rules(client: &impl GenericClient, oid: Oid) -> Result<Vec<(Ident, String)>> {
    let rows = client
        .query(
            "SELECT rulename::text, pg_catalog.pg_get_ruledef(oid) FROM pg_catalog.pg_rewrite \
              WHERE ev_class = $1 AND rulename <> '_RETURN' ORDER BY rulename",
            &[&oid],
        )
        .await
        .ctx(format_args!("reading the rules of table oid {oid}"))?;
    let what = format!("reading the rules of table oid {oid}");
    rows.iter()
        .map(|r| Ok((Ident::new(r.col::<String>(0, &what)?), r.col(1, &what)?)))
        .collect()
}

/// Objects that use the table's row type (see sql/rowtype_dependents.sql).
pub async fn rowtype_dependents(client: &impl GenericClient, oid: Oid) -> Result<Vec<String>> {
    let rows = client
        .query(include_str!("../sql/rowtype_dependents.sql"), &[&oid])
        .await
        .ctx(format_args!(
            "reading the objects that use the row type of table oid {oid}"
        ))?;
    let what = format!("reading the objects that use the row type of table oid {oid}");
    rows.iter().map(|r| r.col(0, &what)).collect()
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

/// Objects that depend on the table that a swap cannot carry over (see sql/other_dependents.sql).
pub async fn other_dependents(client: &impl GenericClient, oid: Oid) -> Result<Vec<String>> {
    let rows = client
        .query(include_str!("../sql/other_dependents.sql"), &[&oid])
        .await
        .ctx(format_args!(
            "reading the objects that depend on table oid {oid}"
        ))?;
    let what = format!("reading the objects that depend on table oid {oid}");
    rows.iter().map(|r| r.col(0, &what)).collect()
}

/// A fingerprint of the table's definition (columns, indexes, constraints, triggers, foreign keys
/// that reference it, views over it), taken at the
/// start and compared under the swap lock, so that a concurrent ALTER by someone else stops the
/// run instead of silently diverging (DESIGN.md, "What the capture cannot see").
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
               (SELECT string_agg(DISTINCT r.ev_class::text, ',') FROM pg_catalog.pg_depend d \
                  JOIN pg_catalog.pg_rewrite r ON r.oid = d.objid \
                 WHERE d.classid = 'pg_catalog.pg_rewrite'::regclass AND d.refobjid = $1 \
                   AND r.ev_class <> $1)))",
            &[&oid],
        )
        .await
        .ctx(format_args!("fingerprinting the definition of table oid {oid}"))?;
    let what = format!("fingerprinting the definition of table oid {oid}");
    row.col(0, &what)
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
        let candidate = crate::ident::fit_name(base, &suffix_n);
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
