//! The trial's probe (issue 16): the relfilenodes of the shadow's empty clone and of its
//! indexes before and after the ALTER ([`Snapshot`], [`Probe`]), and what the ALTER added
//! (indexes, constraints, under the names PostgreSQL would give them on the table). Read inside
//! `shadow::build_in`'s transaction, by OID; it changes nothing.
//!
//! Invariant kept: the answer to "does this ALTER rewrite?" is PostgreSQL's own (a changed
//! relfilenode), never a list kept by hand.

use crate::db::catalog;
use crate::db::ident::Ident;
use crate::error::{DbContext, Result, RowExt};
use serde::{Deserialize, Serialize};
use tokio_postgres::GenericClient;

/// Relfilenodes of a relation and of its indexes at one moment of the trial.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    table: u32,
    /// The storage parameters of the table and of its TOAST table.
    options: (Option<Vec<String>>, Option<Vec<String>>),
    /// (index name, relfilenode).
    indexes: Vec<(String, u32)>,
    /// OIDs of the constraints (check, foreign key) and indexes before the ALTER.
    constraint_oids: Vec<u32>,
    index_oids: Vec<u32>,
}

impl Snapshot {
    /// Reads the relation `oid`'s relfilenode and its indexes' (pg_class by OID).
    pub async fn read(client: &impl GenericClient, oid: u32) -> Result<Snapshot> {
        let what = "reading the relfilenodes of the shadow's trial";
        let row = client
            .query_one(
                "SELECT c.relfilenode, c.reloptions::text[], t.reloptions::text[] \
                   FROM pg_catalog.pg_class c \
                   LEFT JOIN pg_catalog.pg_class t ON t.oid = c.reltoastrelid \
                  WHERE c.oid = $1",
                &[&oid],
            )
            .await
            .ctx(what)?;
        let table: u32 = row.col(0, &what)?;
        let options = (row.col(1, &what)?, row.col(2, &what)?);
        let rows = client
            .query(
                "SELECT i.indexrelid, c.relname::text, c.relfilenode \
                   FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid \
                  WHERE i.indrelid = $1 ORDER BY i.indexrelid",
                &[&oid],
            )
            .await
            .ctx(what)?;
        let mut indexes = Vec::with_capacity(rows.len());
        let mut index_oids = Vec::with_capacity(rows.len());
        for r in &rows {
            index_oids.push(r.col::<u32>(0, &what)?);
            indexes.push((r.col::<String>(1, &what)?, r.col::<u32>(2, &what)?));
        }
        let constraint_oids = catalog::constraints(client, oid)
            .await?
            .into_iter()
            .map(|c| c.oid)
            .collect();
        Ok(Snapshot {
            table,
            options,
            indexes,
            constraint_oids,
            index_oids,
        })
    }
}

/// An index the ALTER added to the clone, as it would be on the live table.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct NewIndex {
    /// The name PostgreSQL would give it on the table (derived from the clone's).
    pub name: Ident,
    /// `pg_get_indexdef` after " USING ": method, columns, INCLUDE, WITH, WHERE.
    pub body: String,
    pub unique: bool,
    /// `p`, `u` or `x` when a constraint owns it.
    pub constraint: Option<String>,
    pub deferrable: bool,
    pub deferred: bool,
    pub key_columns: Vec<Ident>,
    pub tablespace: Option<Ident>,
    /// Its name on the clone (`t_new_email_key` when the ALTER gave none).
    #[serde(default)]
    pub clone_name: String,
}

/// A check or foreign key constraint the ALTER added to the clone.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct NewConstraint {
    pub name: Ident,
    /// `c` or `f`.
    pub kind: String,
    /// Its name on the clone, where PostgreSQL chose it (`t_new_x_check`) when the ALTER gave
    /// none.
    #[serde(default)]
    pub clone_name: String,
}

/// What the ALTER did to the empty clone: PostgreSQL's own answer to "does it rewrite?".
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Probe {
    /// The table's relfilenode changed: PostgreSQL rewrote the table.
    pub table_rewritten: bool,
    /// The table's (or its TOAST table's) storage parameters changed (`SET (fillfactor = 70)`).
    #[serde(default)]
    pub storage_changed: bool,
    /// Indexes whose relfilenode is gone: PostgreSQL rebuilt them (their names on the clone).
    pub rebuilt_indexes: Vec<String>,
    /// Indexes the ALTER created, in creation (OID) order.
    pub new_indexes: Vec<NewIndex>,
    /// Check and foreign key constraints the ALTER created, in creation (OID) order.
    pub new_constraints: Vec<NewConstraint>,
}

impl Probe {
    /// Compares the clone `oid` after the ALTER with `before`. `live_name` turns a name
    /// PostgreSQL chose on the clone (`t_new_email_key`) into the one it would choose on the
    /// table (`t_email_key`).
    pub async fn compare(
        client: &impl GenericClient,
        before: &Snapshot,
        oid: u32,
        live_name: &(dyn Fn(&str) -> String + Sync),
    ) -> Result<Probe> {
        let after = Snapshot::read(client, oid).await?;
        // Rebuilt: the index is still there by name, on another relfilenode. An index that is
        // gone by name was dropped with its column (no build); one that kept its relfilenode
        // under a new OID was reused (a binary-compatible type change).
        let rebuilt_indexes = before
            .indexes
            .iter()
            .filter(|(name, node)| after.indexes.iter().any(|(n, f)| n == name && f != node))
            .map(|(name, _)| name.clone())
            .collect();
        let mut new_indexes = Vec::new();
        let mut ixs = catalog::indexes(client, oid).await?;
        ixs.sort_by_key(|i| i.oid);
        for ix in ixs.iter().filter(|i| !before.index_oids.contains(&i.oid)) {
            // A reused index (a binary-coercible type change) gets a new OID but keeps its
            // relfilenode: it is not new.
            let node = after
                .indexes
                .iter()
                .zip(&after.index_oids)
                .find(|(_, o)| **o == ix.oid)
                .map(|((_, n), _)| *n);
            if node.is_some_and(|n| before.indexes.iter().any(|(_, b)| *b == n)) {
                continue;
            }
            new_indexes.push(NewIndex {
                name: Ident::new(live_name(ix.name.as_str())),
                clone_name: ix.name.as_str().to_string(),
                body: ix.body()?.to_string(),
                unique: ix.unique,
                constraint: ix.constraint_type.clone(),
                deferrable: ix.deferrable,
                deferred: ix.deferred,
                key_columns: ix.key_columns.clone(),
                tablespace: ix.tablespace.clone(),
            });
        }
        let mut cons = catalog::constraints(client, oid).await?;
        cons.sort_by_key(|c| c.oid);
        let new_constraints = cons
            .iter()
            .filter(|c| !before.constraint_oids.contains(&c.oid))
            .filter(|c| c.kind == "c" || c.kind == "f")
            .map(|c| NewConstraint {
                name: Ident::new(live_name(c.name.as_str())),
                kind: c.kind.clone(),
                clone_name: c.name.as_str().to_string(),
            })
            .collect();
        Ok(Probe {
            table_rewritten: after.table != before.table,
            storage_changed: after.options != before.options,
            rebuilt_indexes,
            new_indexes,
            new_constraints,
        })
    }
}
