//! One partition rewritten on its own (issue 15): `--table <a leaf partition>` rewrites that
//! partition online (no `--alter`: bloat removal; or an ALTER PostgreSQL allows on a partition:
//! storage options, statistics targets, a new check or key) and attaches the new table back with
//! the same bound in the swap, so the parent never lacks the partition and no write is lost.
//!
//! What this module owns, and why (measured on PostgreSQL 15 with `client_min_messages = debug1`
//! and `pg_stat_get_xact_numscans`, docs/operations.md "Rewriting one partition"):
//! - **The bound, as a CHECK on the shadow.** `ATTACH PARTITION` scans the new partition to
//!   prove its rows fit the bound, under the lock, unless a valid CHECK constraint implies the
//!   partition constraint. The shadow gets `CHECK (<pg_get_partition_constraintdef>)` while it is
//!   still empty, in the shadow's own transaction: validating it is free then, every copied or
//!   replayed row is checked as it arrives (a row of the partition always fits), and no scan
//!   ever runs under a lock. The swap drops it after the attach.
//! - **The swap's partition statements**: `DETACH PARTITION` of the old table (ACCESS EXCLUSIVE
//!   on the parent and on its default partition), the renames as for any table, then `ATTACH
//!   PARTITION` of the new one with the old bound. The swap's first statement locks the parent
//!   (`ONLY`), the default partition, then the partition and the shadow, in that order: the
//!   order in which the application's statements through the parent take them, so the swap
//!   cannot deadlock with them. With a default partition, ATTACH scans the default partition
//!   under that lock (to prove none of its rows belong to the bound): preflight warns with its
//!   size.
//! - **The refusals**, at preflight, before anything exists: a partition that is partitioned in
//!   turn; foreign keys that reference the parent or an ancestor (detaching a referenced
//!   partition checks, under the lock, that no row references it, and the new partition would
//!   need their triggers); foreign keys of the parent or an ancestor (ATTACH clones them onto
//!   the new partition and validates them over every row under the lock: PostgreSQL 15 does not
//!   adopt a NOT VALID one, and a valid one on the shadow would make the application's deletes
//!   in the referenced table fail on rows replay has not yet removed); `--partition-by`.
//!   After the shadow is built: an ALTER that changed a column (ATTACH needs the parent's
//!   columns exactly) or dropped an index the parent's partitioned index needs (ATTACH would
//!   build it under the lock).
//! - **The way back** (`--revertible`, `revert.rs`): the old partition, a plain table after the
//!   swap, gets the bound back as a CHECK (added NOT VALID, then validated) before a revert
//!   attaches it again with the same statements.
//! - **The capture on the ancestors.** A statement fires only the statement-level triggers of
//!   the table it names: writes through the parent (or any ancestor) would never reach a capture
//!   on the partition alone (the first scenario run lost them). The capture goes on every
//!   ancestor too (`Plan::source_partitions`, the relations the capture covers), and their
//!   transition tables log the keys of every row the statement touched in the tree; replay of a
//!   key of another partition finds it in neither table and does nothing. The log thus grows
//!   with the writes to the whole tree during the run, not only the partition's.
//! - **The parent's triggers** are cloned onto a partition (`tgparentid`): they are not the
//!   partition's own, so the swap does not create them again; ATTACH clones them onto the new
//!   partition, and DETACH removes them from the old one.

use crate::db::ident::{Ident, QualifiedName};
use crate::error::{DbContext, Error, Result, RowExt};
use crate::rewrite::step::Step;
use serde::{Deserialize, Serialize};
use tokio_postgres::types::Oid;
use tokio_postgres::GenericClient;

/// The parent a partition is rewritten under, read at preflight and kept in the plan.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PartitionOf {
    pub parent: QualifiedName,
    pub parent_oid: u32,
    /// `FOR VALUES ...` or `DEFAULT`, as PostgreSQL prints it (`pg_get_expr(relpartbound)`).
    pub bound: String,
    /// The partition constraint (`pg_get_partition_constraintdef`), ancestors' included. None
    /// for a default partition that is the parent's only partition (no constraint at all).
    pub constraint: Option<String>,
    /// The parent's default partition, when it has one and it is not this partition.
    pub default_partition: Option<QualifiedName>,
    /// Triggers cloned from an ancestor (`tgparentid <> 0`): not the partition's own.
    pub cloned_triggers: Vec<Ident>,
    /// The partitioned tables above it, the root first, the parent last: (oid, name).
    pub ancestors: Vec<(u32, QualifiedName)>,
}

/// Reads the parent of the partition `oid` and refuses what a single-partition rewrite cannot
/// do. `name` is for messages. Returns the warnings to show (a default partition scanned under
/// the swap's lock).
pub async fn inspect(
    client: &impl GenericClient,
    oid: Oid,
    name: &QualifiedName,
    relkind: &str,
) -> Result<(PartitionOf, Vec<String>)> {
    let human = name.human();
    let refuse = |why: String| {
        Error::refused(format!("cannot rewrite partition {human}: {why}"))
            .with_state("nothing was changed")
    };
    if relkind == "p" {
        return Err(refuse(
            "it is partitioned in turn; rewriting a sub-partitioned partition on its own is not supported"
                .into(),
        )
        .with_next("rewrite its leaf partitions one at a time, or the whole partitioned table from its root"));
    }
    let what = format!("reading the parent of partition {human}");
    let row = client
        .query_one(
            "SELECT p.oid, pn.nspname::text, p.relname::text, \
                    pg_catalog.pg_get_expr(c.relpartbound, c.oid), \
                    pg_catalog.pg_get_partition_constraintdef(c.oid), \
                    dn.nspname::text, d.relname::text, \
                    COALESCE(pg_catalog.pg_table_size(d.oid), 0) \
               FROM pg_catalog.pg_class c \
               JOIN pg_catalog.pg_inherits i ON i.inhrelid = c.oid \
               JOIN pg_catalog.pg_class p ON p.oid = i.inhparent \
               JOIN pg_catalog.pg_namespace pn ON pn.oid = p.relnamespace \
               JOIN pg_catalog.pg_partitioned_table pt ON pt.partrelid = p.oid \
               LEFT JOIN pg_catalog.pg_class d ON d.oid = pt.partdefid AND d.oid <> c.oid \
               LEFT JOIN pg_catalog.pg_namespace dn ON dn.oid = d.relnamespace \
              WHERE c.oid = $1",
            &[&oid],
        )
        .await
        .ctx(&what)?;
    let parent_oid: u32 = row.col(0, &what)?;
    let parent = QualifiedName::new(row.col::<String>(1, &what)?, row.col::<String>(2, &what)?);
    let default_partition = match (
        row.col::<Option<String>>(5, &what)?,
        row.col::<Option<String>>(6, &what)?,
    ) {
        (Some(s), Some(n)) => Some(QualifiedName::new(s, n)),
        _ => None,
    };
    let default_bytes: i64 = row.col(7, &what)?;
    let of = PartitionOf {
        parent_oid,
        bound: row.col(3, &what)?,
        constraint: row.col(4, &what)?,
        default_partition,
        cloned_triggers: cloned_triggers(client, oid).await?,
        ancestors: ancestors(client, oid).await?,
        parent,
    };
    let ancestors = "SELECT relid FROM pg_catalog.pg_partition_ancestors($1::oid::regclass) WHERE relid <> $1::oid";
    let what = format!("reading the foreign keys around partition {human}");
    let referencing = client
        .query(
            &format!(
                "SELECT c.conname::text, c.conrelid::regclass::text FROM pg_catalog.pg_constraint c \
                  WHERE c.contype = 'f' AND c.conparentid = 0 AND c.confrelid IN ({ancestors}) \
                  ORDER BY 2, 1"
            ),
            &[&oid],
        )
        .await
        .ctx(&what)?;
    if !referencing.is_empty() {
        let list = names(&referencing, &what)?;
        return Err(refuse(format!(
            "foreign keys reference its partitioned parent ({list}): detaching the partition would check, under the lock, that no row references it, and its rows would be unprotected while it is detached"
        ))
        .with_next("rewrite the whole partitioned table from its root instead, or drop those foreign keys for the rewrite"));
    }
    let outgoing = client
        .query(
            &format!(
                "SELECT c.conname::text, c.conrelid::regclass::text FROM pg_catalog.pg_constraint c \
                  WHERE c.contype = 'f' AND c.conparentid = 0 AND c.conrelid IN ({ancestors}) \
                  ORDER BY 2, 1"
            ),
            &[&oid],
        )
        .await
        .ctx(&what)?;
    if !outgoing.is_empty() {
        let list = names(&outgoing, &what)?;
        return Err(refuse(format!(
            "its partitioned parent has foreign keys ({list}): ATTACH PARTITION would add them to the new partition and validate them over all its rows while holding the lock on the whole partitioned table"
        ))
        .with_next("rewrite the whole partitioned table from its root instead"));
    }
    let mut warnings = Vec::new();
    if let Some(d) = &of.default_partition {
        warnings.push(format!(
            "{} has a default partition, {} ({}): attaching the new partition scans it to prove none of its rows belong to the bound, while the swap holds the lock on the whole partitioned table",
            of.parent.human(),
            d.human(),
            crate::output::ui::bytes(default_bytes.max(0) as u64)
        ));
    }
    Ok((of, warnings))
}

/// `constraint (table)` for each row, comma-separated.
fn names(rows: &[tokio_postgres::Row], what: &str) -> Result<String> {
    let mut out = Vec::new();
    for r in rows {
        let con: String = r.col(0, &what)?;
        let table: String = r.col(1, &what)?;
        out.push(format!("{con} on {table}"));
    }
    Ok(out.join(", "))
}

async fn ancestors(client: &impl GenericClient, oid: Oid) -> Result<Vec<(u32, QualifiedName)>> {
    let what = "reading the partitioned tables above a partition";
    client
        .query(
            "SELECT c.oid, n.nspname::text, c.relname::text \
               FROM pg_catalog.pg_partition_ancestors($1::oid::regclass) WITH ORDINALITY a(relid, ord) \
               JOIN pg_catalog.pg_class c ON c.oid = a.relid \
               JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
              WHERE a.relid <> $1::oid ORDER BY a.ord DESC",
            &[&oid],
        )
        .await
        .ctx(what)?
        .iter()
        .map(|r| {
            Ok((
                r.col::<u32>(0, &what)?,
                QualifiedName::new(r.col::<String>(1, &what)?, r.col::<String>(2, &what)?),
            ))
        })
        .collect()
}

async fn cloned_triggers(client: &impl GenericClient, oid: Oid) -> Result<Vec<Ident>> {
    let what = "reading the triggers a partition has from its parent";
    client
        .query(
            "SELECT t.tgname::text FROM pg_catalog.pg_trigger t \
              WHERE t.tgrelid = $1 AND t.tgparentid <> 0 ORDER BY 1",
            &[&oid],
        )
        .await
        .ctx(what)?
        .iter()
        .map(|r| Ok(Ident::new(r.col::<String>(0, &what)?)))
        .collect()
}

/// The name of the bound's CHECK constraint on the shadow.
pub fn bound_constraint(run: i64) -> Ident {
    Ident::new(format!("hotswap_{run}_bound"))
}

/// On the empty shadow: the partition constraint as a CHECK, so that ATTACH need not scan.
pub fn shadow_step(of: &PartitionOf, shadow: &QualifiedName, run: i64) -> Option<Step> {
    let c = of.constraint.as_ref()?;
    Some(
        Step::new(
            format!(
                "ALTER TABLE {shadow} ADD CONSTRAINT {} CHECK ({c})",
                bound_constraint(run)
            ),
            "giving the shadow the partition's bound as a check constraint",
        )
        .note("the shadow is empty: validating it costs nothing; ATTACH PARTITION then need not scan the new partition under the lock"),
    )
}

/// After the ALTER, on the shadow: ATTACH needs the parent's columns exactly (names, types,
/// NOT NULL, no others), and every index the parent's partitioned indexes need, or it fails or
/// builds the index under the lock. Refused here, before anything is copied.
/// `source` is the partition (oid, name, columns); `indexes`, the names the shadow's indexes
/// take in the swap. (Neither `preflight` nor `plan` is imported: both name this module.)
pub async fn check_shadow(
    client: &impl GenericClient,
    source: (Oid, &QualifiedName, &[crate::db::catalog::Column]),
    indexes: &[&Ident],
    shadow_oid: Oid,
) -> Result<()> {
    let (source_oid, source_name, source_columns) = source;
    let name = source_name.human();
    let refuse = |why: String| {
        Error::refused(format!("cannot rewrite partition {name}: {why}"))
            .with_state(format!("nothing was changed; {name} is untouched"))
            .with_next("on a partition, --alter may change only what PostgreSQL allows on a partition (storage options, statistics targets, a new check constraint or index); change columns on the partitioned table")
    };
    let cols = crate::db::catalog::columns(client, shadow_oid).await?;
    let same = |a: &crate::db::catalog::Column, b: &crate::db::catalog::Column| {
        a.name == b.name && a.type_name == b.type_name && a.not_null == b.not_null
    };
    if cols.len() != source_columns.len()
        || !source_columns
            .iter()
            .all(|c| cols.iter().any(|s| same(c, s)))
    {
        return Err(refuse(
            "the ALTER changes its columns, and ATTACH PARTITION needs exactly the partitioned table's columns".into(),
        ));
    }
    let what = format!("reading which indexes of {name} its parent's indexes need");
    let attached: Vec<String> = client
        .query(
            "SELECT c.relname::text FROM pg_catalog.pg_index i \
               JOIN pg_catalog.pg_inherits h ON h.inhrelid = i.indexrelid \
               JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid \
              WHERE i.indrelid = $1 ORDER BY 1",
            &[&source_oid],
        )
        .await
        .ctx(&what)?
        .iter()
        .map(|r| r.col::<String>(0, &what))
        .collect::<Result<_>>()?;
    if let Some(missing) = attached
        .iter()
        .find(|a| !indexes.iter().any(|i| i.as_str() == a.as_str()))
    {
        return Err(refuse(format!(
            "the ALTER drops or changes its index {missing}, which an index of the partitioned table needs: ATTACH PARTITION would build it again while holding the lock"
        )));
    }
    Ok(())
}

/// The swap's first lock: the parent (`ONLY`: not its other partitions), its default
/// partition, then the partition and the shadow, in the order statements through the parent
/// take them.
pub fn lock_step(source: &QualifiedName, shadow: &QualifiedName, of: &PartitionOf) -> Step {
    let parent = &of.parent;
    let mut first: Vec<String> = of
        .ancestors
        .iter()
        .map(|(_, a)| format!("ONLY {a}"))
        .collect();
    if first.is_empty() {
        first.push(format!("ONLY {parent}"));
    }
    if let Some(d) = &of.default_partition {
        first.push(format!("ONLY {d}"));
    }
    let mut s = Step::new(
        format!(
            "LOCK TABLE {}, {source}, {shadow} IN ACCESS EXCLUSIVE MODE",
            first.join(", ")
        ),
        format!(
            "locking {} and its partition {}",
            parent.human(),
            source.human()
        ),
    );
    for (_, a) in &of.ancestors {
        s = s.locks("ACCESS EXCLUSIVE", a, true);
    }
    if let Some(d) = &of.default_partition {
        s = s.locks("ACCESS EXCLUSIVE", d, true);
    }
    s.locks("ACCESS EXCLUSIVE", source, true)
        .locks("ACCESS EXCLUSIVE", shadow, false)
        .note("blocks every reader and writer of the whole partitioned table (statements through the parent) while it waits (at most --lock-timeout) and until COMMIT; DETACH PARTITION needs this lock on the parent anyway")
}

/// Before the renames: the old partition leaves the parent (it becomes a plain table, the
/// parent's triggers leave it).
pub fn detach_step(source: &QualifiedName, of: &PartitionOf) -> Step {
    Step::new(
        format!("ALTER TABLE {} DETACH PARTITION {source}", of.parent),
        "detaching the old partition",
    )
    .locks("ACCESS EXCLUSIVE", &of.parent, true)
}

/// After the renames (the shadow has the partition's name): the new table becomes the
/// partition, with the old bound; its indexes attach to the parent's; the bound's CHECK goes.
pub fn attach_steps(source: &QualifiedName, run: i64, of: &PartitionOf) -> Vec<Step> {
    let mut s = Step::new(
        format!("ALTER TABLE {} ATTACH PARTITION {source} {}", of.parent, of.bound),
        "attaching the new table as the partition",
    )
    .locks("ACCESS EXCLUSIVE", &of.parent, true)
    .note("the bound's check constraint spares the scan of the new partition; its indexes attach to the parent's without a build");
    if let Some(d) = &of.default_partition {
        s = s.locks("ACCESS EXCLUSIVE", d, true);
        s.note = Some(format!(
            "{}; the default partition {} is scanned under the lock",
            s.note.unwrap_or_default(),
            d.human()
        ));
    }
    let mut out = vec![s];
    if of.constraint.is_some() {
        out.push(Step::new(
            format!(
                "ALTER TABLE {source} DROP CONSTRAINT {}",
                bound_constraint(run)
            ),
            "dropping the bound's check constraint from the new partition",
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bound_constraint_is_named_after_the_run() {
        assert_eq!(bound_constraint(12).as_str(), "hotswap_12_bound");
        let of = PartitionOf {
            parent: QualifiedName::new("public", "Ev"),
            parent_oid: 1,
            bound: "DEFAULT".into(),
            constraint: None,
            default_partition: None,
            cloned_triggers: Vec::new(),
            ancestors: Vec::new(),
        };
        assert!(shadow_step(&of, &QualifiedName::new("public", "x"), 1).is_none());
        let of = PartitionOf {
            constraint: Some("(a > 1)".into()),
            ..of
        };
        let s = shadow_step(&of, &QualifiedName::new("public", "x_new"), 3).unwrap();
        assert_eq!(
            s.sql,
            "ALTER TABLE \"public\".\"x_new\" ADD CONSTRAINT \"hotswap_3_bound\" CHECK ((a > 1))"
        );
    }
}
