//! The table's indexes (`sql/indexes.sql`, rewritten per server version) and its extended
//! statistics objects. Read by OID; names come back as [`Ident`]s.

use super::version::{for_version, server_version};
use crate::db::ident::{Ident, QualifiedName};
use crate::error::{DbContext, Error, Result, RowExt};
use tokio_postgres::types::Oid;
use tokio_postgres::GenericClient;

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

pub async fn indexes(client: &impl GenericClient, oid: Oid) -> Result<Vec<Index>> {
    let version = server_version(client).await?;
    let rows = client
        .query(
            &*for_version(include_str!("../../../sql/indexes.sql"), version),
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

/// An extended statistics object on the table.
#[derive(Clone, Debug)]
pub struct Statistics {
    pub name: QualifiedName,
    pub def: String,
    pub target: i32,
    pub owner: Ident,
    pub comment: Option<String>,
    /// The columns and expressions, as `CREATE STATISTICS ... ON` takes them.
    pub columns: String,
    /// `stxkind`: `d` (ndistinct), `f` (dependencies), `m` (mcv), `e` (expressions).
    pub kinds: Vec<String>,
}

impl Statistics {
    /// `CREATE STATISTICS <name> [(<kinds>)] ON <columns> FROM <table>`: the same object on
    /// another table with the same columns (the kinds are named only when there are any; a
    /// statistics object on one expression has none).
    pub fn create_sql(&self, name: &QualifiedName, table: &QualifiedName) -> String {
        let kinds: Vec<&str> = self
            .kinds
            .iter()
            .filter_map(|k| match k.as_str() {
                "d" => Some("ndistinct"),
                "f" => Some("dependencies"),
                "m" => Some("mcv"),
                _ => None,
            })
            .collect();
        let kinds = if kinds.is_empty() {
            String::new()
        } else {
            format!(" ({})", kinds.join(", "))
        };
        format!(
            "CREATE STATISTICS {name}{kinds} ON {} FROM {table}",
            self.columns
        )
    }
}

pub async fn statistics(client: &impl GenericClient, oid: Oid) -> Result<Vec<Statistics>> {
    let rows = client
        .query(include_str!("../../../sql/statistics.sql"), &[&oid])
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
                columns: r.col(7, &what)?,
                kinds: r.col(8, &what)?,
            })
        })
        .collect()
}
