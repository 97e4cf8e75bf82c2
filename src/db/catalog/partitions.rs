//! Partition trees (issue 15): the partitions below a partitioned table, with what each carries
//! of its own (bound, sub-partition key, storage options, owner, tablespace, comment), and the
//! objects a partition may have that its parent does not give it.

use crate::db::ident::{Ident, QualifiedName};
use crate::error::{DbContext, Result, RowExt};
use serde::{Deserialize, Serialize};
use tokio_postgres::types::Oid;
use tokio_postgres::GenericClient;

/// One partition of a tree (at any depth).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Partition {
    pub oid: Oid,
    pub name: QualifiedName,
    /// The partitioned table it is a partition of.
    pub parent: Oid,
    /// `FOR VALUES ...` or `DEFAULT`, as `pg_get_expr` prints it.
    pub bound: String,
    /// Its own partition key when it is partitioned in turn (`pg_get_partkeydef`).
    pub partition_key: Option<String>,
    /// `relkind`: `r` (a table), `p` (partitioned), `f` (foreign).
    pub relkind: String,
    pub reloptions: Vec<String>,
    pub toast_options: Vec<String>,
    pub owner: Ident,
    pub tablespace: Option<Ident>,
    pub comment: Option<String>,
    /// 1 for the root's partitions, 2 below them...
    pub level: i32,
    pub persistence: String,
}

/// Every partition below `root`, parents before their partitions (by level, then name). Empty
/// for a table that is not partitioned.
pub async fn partition_tree(client: &impl GenericClient, root: Oid) -> Result<Vec<Partition>> {
    let what = format!("reading the partitions of table oid {root}");
    let rows = client
        .query(include_str!("../../../sql/partitions.sql"), &[&root])
        .await
        .ctx(&what)?;
    rows.iter()
        .map(|r| {
            Ok(Partition {
                oid: r.col(0, &what)?,
                name: QualifiedName::new(r.col::<String>(1, &what)?, r.col::<String>(2, &what)?),
                parent: r.col(3, &what)?,
                bound: r.col(4, &what)?,
                partition_key: r.col(5, &what)?,
                relkind: r.col(6, &what)?,
                reloptions: r.col(7, &what)?,
                toast_options: r.col(8, &what)?,
                owner: Ident::new(r.col::<String>(9, &what)?),
                tablespace: r.col::<Option<String>>(10, &what)?.map(Ident::new),
                comment: r.col(11, &what)?,
                level: r.col(12, &what)?,
                persistence: r.col(13, &what)?,
            })
        })
        .collect()
}

/// What partitions of the tree carry that their parent does not give them and a rewrite does
/// not carry over: their own triggers, row security policies, rules, and indexes or constraints
/// that no parent's index or constraint stands for; and what names a partition from outside
/// (views reading it, foreign keys referencing it), which would stay on the old partition. One
/// line each (`"trigger t on p1"`).
pub async fn own_objects(client: &impl GenericClient, root: Oid) -> Result<Vec<String>> {
    let what = format!("reading what the partitions of table oid {root} have of their own");
    let rows = client
        .query(
            "WITH p AS (SELECT relid FROM pg_catalog.pg_partition_tree($1::oid::regclass) WHERE level > 0) \
             SELECT 'trigger ' || quote_ident(t.tgname) || ' on ' || t.tgrelid::regclass::text \
               FROM pg_catalog.pg_trigger t JOIN p ON p.relid = t.tgrelid \
              WHERE NOT t.tgisinternal AND t.tgparentid = 0 AND t.tgname !~ '^hotswap_' \
             UNION ALL \
             SELECT 'policy ' || quote_ident(pol.polname) || ' on ' || pol.polrelid::regclass::text \
               FROM pg_catalog.pg_policy pol JOIN p ON p.relid = pol.polrelid \
             UNION ALL \
             SELECT 'rule ' || quote_ident(r.rulename) || ' on ' || r.ev_class::regclass::text \
               FROM pg_catalog.pg_rewrite r JOIN p ON p.relid = r.ev_class \
             UNION ALL \
             SELECT 'index ' || x.indexrelid::regclass::text || ' (only on ' || x.indrelid::regclass::text || ')' \
               FROM pg_catalog.pg_index x JOIN p ON p.relid = x.indrelid \
              WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_inherits i WHERE i.inhrelid = x.indexrelid) \
             UNION ALL \
             SELECT 'constraint ' || quote_ident(c.conname) || ' (only on ' || c.conrelid::regclass::text || ')' \
               FROM pg_catalog.pg_constraint c JOIN p ON p.relid = c.conrelid \
              WHERE c.conislocal AND c.coninhcount = 0 AND c.conparentid = 0 AND c.contype IN ('c', 'f', 'x', 'u', 'p') \
             UNION ALL \
             SELECT 'view ' || r.ev_class::regclass::text || ' (reads ' || d.refobjid::regclass::text || ')' \
               FROM pg_catalog.pg_depend d JOIN pg_catalog.pg_rewrite r ON r.oid = d.objid \
               JOIN p ON p.relid = d.refobjid \
              WHERE d.classid = 'pg_catalog.pg_rewrite'::regclass AND r.ev_class <> d.refobjid \
             UNION ALL \
             SELECT 'foreign key ' || quote_ident(c.conname) || ' of ' || c.conrelid::regclass::text \
                    || ' (references ' || c.confrelid::regclass::text || ')' \
               FROM pg_catalog.pg_constraint c JOIN p ON p.relid = c.confrelid \
              WHERE c.contype = 'f' AND c.conparentid = 0 \
             ORDER BY 1",
            &[&root],
        )
        .await
        .ctx(&what)?;
    rows.iter().map(|r| r.col(0, &what)).collect()
}
