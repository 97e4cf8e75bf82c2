//! What the swap gives the new table from the source *as it is at the swap*, not as it was when
//! the run started: a `GRANT`, `CREATE POLICY`, `COMMENT ON`, `ALTER TABLE ... SET (...)`,
//! `ALTER COLUMN ... SET STATISTICS | STORAGE | COMPRESSION | (n_distinct ...)`, `ALTER TABLE ...
//! OWNER TO`, `DISABLE TRIGGER` or `ALTER PUBLICATION ... ADD TABLE` made during a run of hours
//! must not be lost by the swap (a lost GRANT makes the application's statements fail after it,
//! a lost policy exposes rows). None of these changes the table's definition, so the
//! definition's fingerprint (`catalog::fingerprint`) does not see them.
//!
//! When the swap starts, [`read`] reads the source again (`preflight::refresh`) and fingerprints
//! these attributes (`sql/carried_fingerprint.sql`); before each attempt the fingerprint is
//! taken again and the source re-read when it moved ([`Fresh::fingerprint`], `swap.rs`). The
//! swap's statements then grant, comment and set from the fresh source. Not compared under the
//! lock (time there lets writers of referencing tables pile up, `swap.rs`): a `GRANT` committed
//! in the milliseconds between the last check and the swap's commit is not seen.
//!
//! Per-column settings and index statistics targets are also things the ALTER itself may set
//! (`ALTER COLUMN c SET STATISTICS 500`, a type change that resets a column's storage and an
//! index's targets). For them the swap does what PostgreSQL does when the change comes first and
//! the ALTER after it: a setting the source changed during the run goes to the new table unless
//! the ALTER had changed that setting (the shadow's value differs from the source's when the
//! run started, [`SettingsBase`] in the plan), in which case the ALTER's value stands. Storage
//! and compression follow a column whose type the ALTER changes (PostgreSQL resets both to the
//! new type's defaults). Runs recorded before this was kept have no base: only their table-level
//! attributes, comments and privileges follow the source then.

use crate::db::catalog;
use crate::db::ident::{literal, Ident};
use crate::error::{DbContext, Result, RowExt};
use crate::rewrite::plan::{ColumnSettings, ColumnSource, Plan, SettingsBase};
use crate::rewrite::preflight::{self, Source};
use crate::rewrite::step::Step;
use tokio_postgres::types::Oid;
use tokio_postgres::GenericClient;

/// The replica identity of relation `oid`: `relreplident` (d, n, f, i) and, for `i`, the name
/// of its index.
async fn replica_identity(
    client: &impl GenericClient,
    oid: Oid,
) -> Result<(String, Option<Ident>)> {
    let what = format!("reading the replica identity of relation oid {oid}");
    let row = client
        .query_one(
            "SELECT c.relreplident::text, \
                    (SELECT ic.relname::text FROM pg_catalog.pg_index i \
                       JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid \
                      WHERE i.indrelid = c.oid AND i.indisreplident AND c.relreplident = 'i') \
               FROM pg_catalog.pg_class c WHERE c.oid = $1",
            &[&oid],
        )
        .await
        .ctx(&what)?;
    let index: Option<String> = row.col(1, &what)?;
    Ok((row.col(0, &what)?, index.map(Ident::new)))
}

/// The per-column settings of relation `oid`, in column order.
pub async fn column_settings(client: &impl GenericClient, oid: Oid) -> Result<Vec<ColumnSettings>> {
    let what = format!("reading the column settings of relation oid {oid}");
    let rows = client
        .query(include_str!("../../sql/column_settings.sql"), &[&oid])
        .await
        .ctx(&what)?;
    rows.iter()
        .map(|r| {
            Ok(ColumnSettings {
                name: Ident::new(r.col::<String>(0, &what)?),
                stat_target: r.col(1, &what)?,
                storage: r.col(2, &what)?,
                compression: r.col(3, &what)?,
                options: r.col(4, &what)?,
                comment: r.col(5, &what)?,
            })
        })
        .collect()
}

/// The base recorded in a new plan: the source's settings now (`src` read at the start).
pub async fn base(client: &impl GenericClient, src: &Source) -> Result<SettingsBase> {
    Ok(SettingsBase {
        columns: column_settings(client, src.table.oid).await?,
        index_stats: src
            .indexes
            .iter()
            .map(|i| (i.name.clone(), i.column_stats.clone()))
            .collect(),
        replica_identity: Some(replica_identity(client, src.table.oid).await?),
        owner: Some(src.table.owner.clone()),
    })
}

/// The source as it is before a swap attempt.
pub struct Fresh {
    /// `sql/carried_fingerprint.sql` of the source, taken before `src` was read: the swap takes
    /// it again before each attempt and reads the source again when it differs.
    pub fingerprint: String,
    pub src: Source,
    /// What brings the shadow's owner, comments and settings up to the source's (shadow names,
    /// before the swap renames anything); empty when nothing changed.
    pub steps: Vec<Step>,
    /// What comes after every other swap statement (the new table under its final name): the
    /// owner the ALTER gives it.
    pub last: Vec<Step>,
}

/// Reads the source again for a swap attempt (outside the lock).
pub async fn read(client: &impl GenericClient, plan: &Plan, src: &Source) -> Result<Fresh> {
    let fingerprint = catalog::carried_fingerprint(client, plan.source_oid).await?;
    let src = preflight::refresh(client, src).await?;
    refuse_new_dependents(client, plan, &src).await?;
    let (steps, last) = steps(client, plan, &src).await?;
    Ok(Fresh {
        fingerprint,
        src,
        steps,
        last,
    })
}

/// The value for the new table of a setting the ALTER may also set: the source's now (`now`)
/// when it changed since the run started (`base`) and the shadow (`shadow`) still has the
/// starting value; otherwise None (nothing to do).
fn follow<'a, T: PartialEq>(base: &T, shadow: &T, now: &'a T) -> Option<&'a T> {
    (now != base && shadow == base).then_some(now)
}

fn storage_word(s: &str) -> &'static str {
    match s {
        "p" => "PLAIN",
        "e" => "EXTERNAL",
        "m" => "MAIN",
        _ => "EXTENDED",
    }
}

fn compression_word(c: &str) -> &'static str {
    match c {
        "p" => "pglz",
        "l" => "lz4",
        _ => "DEFAULT",
    }
}

/// The statements that give the shadow what changed on the source since the run started.
async fn steps(
    client: &impl GenericClient,
    plan: &Plan,
    now: &Source,
) -> Result<(Vec<Step>, Vec<Step>)> {
    let shadow = &plan.shadow;
    let what = "reading the shadow's owner and comment";
    let row = client
        .query_one(
            "SELECT pg_catalog.pg_get_userbyid(c.relowner)::text, \
                    pg_catalog.obj_description(c.oid, 'pg_class') \
               FROM pg_catalog.pg_class c WHERE c.oid = $1",
            &[&plan.shadow_oid],
        )
        .await
        .ctx(what)?;
    let owner = Ident::new(row.col::<String>(0, &what)?);
    let comment: Option<String> = row.col(1, &what)?;
    let mut out = Vec::new();
    // The owner: the swap grants the source's privileges with the new table owned by the
    // source's owner now; when the ALTER gives the table to another owner (`OWNER TO`, the
    // shadow's owner differs from the source's when the run started), that comes last, so that
    // PostgreSQL moves the old owner's privileges to the new one as its ALTER does.
    if owner != now.table.owner {
        out.push(Step::new(
            format!("ALTER TABLE {shadow} OWNER TO {}", now.table.owner),
            "giving the new table the owner the table has now",
        ));
    }
    let mut last = Vec::new();
    if let Some(base) = plan.settings_base.as_ref().and_then(|b| b.owner.as_ref()) {
        if &owner != base && owner != now.table.owner {
            last.push(Step::new(
                format!("ALTER TABLE {} OWNER TO {owner}", plan.source),
                "giving the new table the owner the ALTER gives it",
            ));
        }
    }
    if comment != now.table.comment {
        out.push(Step::new(
            match &now.table.comment {
                Some(c) => format!("COMMENT ON TABLE {shadow} IS {}", literal(c)),
                None => format!("COMMENT ON TABLE {shadow} IS NULL"),
            },
            "giving the new table the comment the table has now",
        ));
    }
    // The source columns whose type the ALTER changes: PostgreSQL resets their storage and
    // compression, and re-creates every index over them (with default statistics targets).
    let retyped: Vec<&Ident> = plan
        .columns
        .iter()
        .filter(|m| {
            !matches!(
                m.source,
                ColumnSource::Same | ColumnSource::Renamed { cast_to: None, .. }
            )
        })
        .filter_map(|m| m.origin.as_ref())
        .collect();
    let shadow_indexes = catalog::indexes(client, plan.shadow_oid).await?;
    for ix in &plan.indexes {
        let Some(src_ix) = now.indexes.iter().find(|i| i.name == ix.final_name) else {
            continue;
        };
        let Some(shadow_ix) = shadow_indexes.iter().find(|i| i.name == ix.tmp_name) else {
            continue;
        };
        let target = shadow.sibling(ix.tmp_name.as_str());
        // A re-created index keeps its comment under PostgreSQL's ALTER too.
        if shadow_ix.comment != src_ix.comment {
            out.push(Step::new(
                match &src_ix.comment {
                    Some(c) => format!("COMMENT ON INDEX {target} IS {}", literal(c)),
                    None => format!("COMMENT ON INDEX {target} IS NULL"),
                },
                "giving an index the comment it has now",
            ));
        }
        let Some(base) = plan
            .settings_base
            .as_ref()
            .and_then(|b| b.index_stats.iter().find(|(n, _)| n == &ix.final_name))
        else {
            continue;
        };
        let target_of = |stats: &[(i32, i32)], col: i32| {
            stats
                .iter()
                .find(|(c, _)| *c == col)
                .map_or(-1, |(_, t)| *t)
        };
        let mut cols: Vec<i32> = base
            .1
            .iter()
            .chain(&src_ix.column_stats)
            .map(|(c, _)| *c)
            .collect();
        cols.sort_unstable();
        cols.dedup();
        if !cols.is_empty() && rebuilt_by_alter(client, plan, src_ix.oid, &retyped).await? {
            continue;
        }
        for col in cols {
            let (b, s, n) = (
                target_of(&base.1, col),
                target_of(&shadow_ix.column_stats, col),
                target_of(&src_ix.column_stats, col),
            );
            if let Some(n) = follow(&b, &s, &n) {
                out.push(Step::new(
                    format!("ALTER INDEX {target} ALTER COLUMN {col} SET STATISTICS {n}"),
                    "giving an index column the statistics target it has now",
                ));
            }
        }
    }
    // The replica identity, in the source's index names: the ALTER may set it too.
    if let Some(base) = plan
        .settings_base
        .as_ref()
        .and_then(|b| b.replica_identity.as_ref())
    {
        let (kind, index) = replica_identity(client, plan.shadow_oid).await?;
        let final_of = |tmp: Ident| {
            plan.indexes
                .iter()
                .find(|ix| ix.tmp_name == tmp)
                .map(|ix| ix.final_name.clone())
        };
        let ours = (kind, index.and_then(final_of));
        let theirs = replica_identity(client, plan.source_oid).await?;
        if let Some((kind, index)) = follow(base, &ours, &theirs) {
            let how = match (kind.as_str(), index) {
                ("f", _) => Some("FULL".to_string()),
                ("n", _) => Some("NOTHING".to_string()),
                ("i", Some(name)) => plan
                    .indexes
                    .iter()
                    .find(|ix| &ix.final_name == name)
                    .map(|ix| format!("USING INDEX {}", ix.tmp_name)),
                _ => Some("DEFAULT".to_string()),
            };
            if let Some(how) = how {
                out.push(Step::new(
                    format!("ALTER TABLE {shadow} REPLICA IDENTITY {how}"),
                    "giving the new table the replica identity the table has now",
                ));
            }
        }
    }
    let ours = column_settings(client, plan.shadow_oid).await?;
    for theirs in column_settings(client, plan.source_oid).await? {
        let Some(col) = plan.shadow_column_of(&theirs.name) else {
            continue; // dropped by the ALTER
        };
        let Some(o) = ours.iter().find(|o| &o.name == col) else {
            continue;
        };
        // The ALTER keeps a column's comment through a type change or a rename.
        if o.comment != theirs.comment {
            out.push(Step::new(
                match &theirs.comment {
                    Some(c) => format!("COMMENT ON COLUMN {shadow}.{col} IS {}", literal(c)),
                    None => format!("COMMENT ON COLUMN {shadow}.{col} IS NULL"),
                },
                "giving a column the comment it has now",
            ));
        }
        let Some(b) = plan
            .settings_base
            .as_ref()
            .and_then(|base| base.columns.iter().find(|b| b.name == theirs.name))
        else {
            continue;
        };
        let retyped = retyped.contains(&&theirs.name);
        let alter = |action: String| format!("ALTER TABLE {shadow} ALTER COLUMN {col} {action}");
        if let Some(n) = follow(&b.stat_target, &o.stat_target, &theirs.stat_target) {
            out.push(Step::new(
                alter(format!("SET STATISTICS {n}")),
                "giving a column the statistics target it has now",
            ));
        }
        if !retyped {
            if let Some(s) = follow(&b.storage, &o.storage, &theirs.storage) {
                out.push(Step::new(
                    alter(format!("SET STORAGE {}", storage_word(s))),
                    "giving a column the storage it has now",
                ));
            }
            if let Some(c) = follow(&b.compression, &o.compression, &theirs.compression) {
                out.push(Step::new(
                    alter(format!("SET COMPRESSION {}", compression_word(c))),
                    "giving a column the compression it has now",
                ));
            }
        }
        if let Some(opts) = follow(&b.options, &o.options, &theirs.options) {
            if !o.options.is_empty() {
                let keys: Vec<&str> = o
                    .options
                    .iter()
                    .map(|x| x.split_once('=').map_or(x.as_str(), |(k, _)| k))
                    .collect();
                out.push(Step::new(
                    alter(format!("RESET ({})", keys.join(", "))),
                    "giving a column the options it has now",
                ));
            }
            if !opts.is_empty() {
                let set = opts
                    .iter()
                    .map(|x| crate::db::ident::reloption_sql(x, ""))
                    .collect::<Result<Vec<_>>>()?;
                out.push(Step::new(
                    alter(format!("SET ({})", set.join(", "))),
                    "giving a column the options it has now",
                ));
            }
        }
    }
    Ok((out, last))
}

/// What PostgreSQL's ALTER refuses because of an object on a dropped or retyped column (a
/// policy, a trigger's WHEN, a publication's row filter...) is refused when the shadow is made
/// (`dependents`); one created during the run is refused here, before the swap, with the same
/// words, as PostgreSQL would refuse its ALTER after it. Retyped means the same as there: the
/// shadow column's type differs from its source column's.
async fn refuse_new_dependents(
    client: &impl GenericClient,
    plan: &Plan,
    now: &Source,
) -> Result<()> {
    let shadow_cols = catalog::columns(client, plan.shadow_oid).await?;
    let retyped: Vec<Ident> = now
        .columns
        .iter()
        .filter(|s| {
            plan.shadow_column_of(&s.name)
                .and_then(|c| shadow_cols.iter().find(|d| &d.name == c))
                .is_some_and(|d| d.type_oid != s.type_oid)
        })
        .map(|s| s.name.clone())
        .collect();
    crate::rewrite::dependents::refuse_dependents(
        client,
        plan.source_oid,
        &plan.dropped,
        &retyped,
        &plan.source.human(),
    )
    .await
    .map_err(|e| {
        e.with_state(format!(
            "nothing was swapped: {} is unchanged and usable, and the run's shadow and capture are still in place",
            plan.source.human()
        ))
        .with_next(format!(
            "the object above was created during the run; drop it and run the same command again (or `pg-hotswap resume`), \
             then create it again, or `pg-hotswap abort --table {}` to give up the run",
            crate::output::ui::shell_word(&plan.source.to_string())
        ))
    })
}

/// Whether PostgreSQL's ALTER re-creates the source's index `index`: it depends on a column the
/// ALTER changes the type of (a key column, or one in an expression or the predicate).
async fn rebuilt_by_alter(
    client: &impl GenericClient,
    plan: &Plan,
    index: Oid,
    retyped: &[&Ident],
) -> Result<bool> {
    if retyped.is_empty() {
        return Ok(false);
    }
    let names: Vec<&str> = retyped.iter().map(|c| c.as_str()).collect();
    let what = "reading the columns an index depends on";
    client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d \
               JOIN pg_catalog.pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid \
              WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.objid = $1 \
                AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass \
                AND d.refobjid = $2 AND a.attname = ANY ($3::text[]))",
            &[&index, &plan.source_oid, &names],
        )
        .await
        .ctx(what)?
        .col(0, &what)
}

#[cfg(test)]
mod tests {
    use super::follow;

    #[test]
    fn a_setting_follows_the_source_only_where_the_alter_left_it() {
        // Changed on the source, untouched by the ALTER: the source's.
        assert_eq!(follow(&-1, &-1, &200), Some(&200));
        // Set by the ALTER: the ALTER's stands, as when PostgreSQL runs it after the change.
        assert_eq!(follow(&-1, &500, &200), None);
        // Unchanged on the source: nothing to do.
        assert_eq!(follow(&100, &500, &100), None);
        assert_eq!(follow(&100, &100, &100), None);
    }
}
