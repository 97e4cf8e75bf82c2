//! The swap's statements after the last replay, built as values (issue 17): the shadow takes the
//! source's name and everything attached to it — sequences, foreign keys both ways, indexes'
//! names, triggers, publications, rules, statistics, comments, privileges. The one place these
//! statements are written; the swap executes them and `plan` lists them.
//!
//! What they depend on besides the plan and the source ([`SwapFacts`]) is read from the catalog
//! in the swap transaction, and by `plan` in its trial transaction, where the shadow exists too.

use super::sequences;
use super::Names;
use crate::db::catalog;
use crate::db::ident::{literal, Ident, QualifiedName};
use crate::error::{DbContext, Result, RowExt};
use crate::rewrite::build;
use crate::rewrite::capture;
use crate::rewrite::plan::Plan;
use crate::rewrite::preflight::Source;
use crate::rewrite::step::Step;
use tokio_postgres::GenericClient;

/// The statements that give the shadow back the source's storage options after
/// `autovacuum_enabled` was turned off on it while it was loaded: reset that, then set the
/// source's options again in their order (a SET moves the options it names to the end, and
/// `pg_dump` shows them in stored order).
fn autovacuum_restore(
    shadow: &QualifiedName,
    reloptions: &[String],
    toast: &[String],
) -> Result<String> {
    let mut sql = vec![format!(
        "ALTER TABLE {shadow} RESET (autovacuum_enabled, toast.autovacuum_enabled)"
    )];
    let mut set = Vec::new();
    for o in reloptions {
        set.push(crate::rewrite::shadow::reloption_sql(o, "")?);
    }
    for o in toast {
        set.push(crate::rewrite::shadow::reloption_sql(o, "toast.")?);
    }
    if !set.is_empty() {
        sql.push(format!("ALTER TABLE {shadow} SET ({})", set.join(", ")));
    }
    Ok(sql.join("; "))
}

/// The storage options the ALTER itself sets or resets ([`Plan::alter_options`]), as statements
/// on the shadow. Errors: an option name that is not a plain word (never from the catalog).
fn alter_option_steps(plan: &Plan) -> Result<Vec<Step>> {
    let (mut set, mut reset) = (Vec::new(), Vec::new());
    for c in &plan.alter_options {
        let prefix = if c.toast { "toast." } else { "" };
        let value = c.value.as_deref().unwrap_or("");
        let sql = crate::rewrite::shadow::reloption_sql(&format!("{}={value}", c.name), prefix)?;
        match c.value {
            Some(_) => set.push(sql),
            // reloption_sql checked the name: `<prefix><name> = ...`.
            None => reset.push(format!("{prefix}{}", c.name)),
        }
    }
    let shadow = &plan.shadow;
    let mut out = Vec::new();
    if !reset.is_empty() {
        out.push(Step::new(
            format!("ALTER TABLE {shadow} RESET ({})", reset.join(", ")),
            "resetting the storage options the ALTER resets",
        ));
    }
    if !set.is_empty() {
        out.push(Step::new(
            format!("ALTER TABLE {shadow} SET ({})", set.join(", ")),
            "setting the storage options the ALTER sets",
        ));
    }
    Ok(out)
}

/// What the swap's statements depend on besides the plan, the source and the names: read from
/// the catalog in the swap transaction (and by `plan` in its trial transaction, where the shadow
/// exists too).
pub struct SwapFacts {
    /// Per identity sequence of the source: the shadow's sequence for the same column, and the
    /// old sequence's privileges and comment, which follow its name.
    sequences: sequences::Sequences,
    /// Foreign keys and check constraints already on the shadow (a run started by an older
    /// version added them there).
    late_on_shadow: Vec<String>,
    /// The new table's constraints once the swap has renamed them.
    constraints: Vec<String>,
    /// A column a view reads changes type, typmod or collation: PostgreSQL may then refuse
    /// to replace a dependent view in place, and the swap drops and creates the views again
    /// instead — decided only when the swap tries (`views::recreate_views`).
    pub view_replace_may_fail: bool,
    /// Per partition of a partitioned new table (by its name after the swap): the privileges it
    /// takes — those of the partition it replaces, or the table's for a partition the run made
    /// (issue 15; default privileges were taken away from the shadow's partitions).
    partition_grants: Vec<(QualifiedName, Vec<catalog::Grant>)>,
}

/// Reads [`SwapFacts`].
pub async fn read_facts(tx: &impl GenericClient, plan: &Plan, src: &Source) -> Result<SwapFacts> {
    // One statement for every partition: this runs under the swap's lock (issue 15).
    let parts: Vec<_> = plan
        .partitioning
        .iter()
        .flat_map(|p| &p.partitions)
        .collect();
    let replaced: Vec<u32> = parts
        .iter()
        .filter_map(|p| Some(p.replaces.as_ref()?.0))
        .collect();
    let mut read = catalog::grants_of(tx, &replaced).await?.into_iter();
    let mut partition_grants = Vec::new();
    for p in parts {
        let grants = match &p.replaces {
            Some(_) => read.next().unwrap_or_default(),
            None => src.grants.clone(),
        };
        partition_grants.push((p.final_name.clone(), grants));
    }
    let sequences = sequences::read(tx, plan, src).await?;
    let what = "reading the constraints of the new table";
    let on_shadow: Vec<(String, String)> = tx
        .query(
            "SELECT conname::text, contype::text FROM pg_catalog.pg_constraint WHERE conrelid = $1",
            &[&plan.shadow_oid],
        )
        .await
        .ctx(what)?
        .iter()
        .map(|r| Ok((r.col(0, &what)?, r.col(1, &what)?)))
        .collect::<Result<_>>()?;
    let late_on_shadow: Vec<String> = on_shadow
        .iter()
        .filter(|(_, k)| k == "f" || k == "c")
        .map(|(n, _)| n.clone())
        .collect();
    // Constraints that come with an index carry its temporary name until the swap renames the
    // index; the build and the swap add the others the plan names (present already, or not yet
    // when `plan` reads its trial shadow).
    let mut constraints: Vec<String> = on_shadow
        .into_iter()
        .map(|(n, _)| n)
        .filter(|n| !plan.indexes.iter().any(|i| i.tmp_name.as_str() == n))
        .collect();
    let planned = plan
        .indexes
        .iter()
        .filter(|i| i.constraint_sql.is_some())
        .map(|i| &i.final_name)
        .chain(plan.late_checks.iter().map(|c| &c.name))
        .chain(plan.foreign_keys.iter().map(|c| &c.name))
        .chain(plan.self_foreign_keys.iter().map(|c| &c.name));
    for n in planned {
        if !constraints.iter().any(|c| c == n.as_str()) {
            constraints.push(n.as_str().to_string());
        }
    }
    let view_replace_may_fail = if src.views.is_empty() {
        false
    } else {
        let (from, to): (Vec<&str>, Vec<&str>) = plan
            .columns
            .iter()
            .filter_map(|c| Some((c.origin.as_ref()?.as_str(), c.column.as_str())))
            .unzip();
        catalog::view_column_changes(tx, plan.source_oid, plan.shadow_oid, &from, &to).await?
    };
    Ok(SwapFacts {
        partition_grants,
        sequences,
        late_on_shadow,
        constraints,
        view_replace_may_fail,
    })
}

/// The swap's DDL after the last replay, in order: around the views, which are replaced in place
/// or, when that is refused, dropped and created again ([`view_steps`]).
pub struct SwapDdl {
    pub before_views: Vec<Step>,
    pub after_views: Vec<Step>,
}

/// Every statement the swap runs after the last replay: the shadow takes the source's name and
/// everything attached to it. The one place these statements are written; `plan` lists them.
pub fn ddl_steps(plan: &Plan, src: &Source, names: &Names, facts: &SwapFacts) -> Result<SwapDdl> {
    let mut before = Vec::new();
    // A partitioned table has no storage options: its partitions have them (issue 15).
    match &plan.partitioning {
        Some(parts) => {
            for p in parts.stored() {
                before.push(Step::new(
                    autovacuum_restore(&p.name, &p.reloptions, &p.toast_options)?,
                    "giving a partition of the new table its storage options",
                ));
            }
        }
        None => {
            before.push(Step::new(
                autovacuum_restore(
                    &plan.shadow,
                    &src.table.reloptions,
                    &src.table.toast_options,
                )?,
                "giving the new table the autovacuum settings of the old one",
            ));
            // Then what the ALTER itself sets or resets, over the source's options as they are
            // now (a fresh tester: `SET (fillfactor = 40)` ended with the old table's 70).
            before.extend(alter_option_steps(plan)?);
        }
    }
    for table in capture::tree(plan) {
        for s in capture::drop_trigger_statements(
            &plan.capture.trigger,
            &plan.capture.truncate_trigger,
            table,
        ) {
            before.push(Step::new(s, "removing the capture trigger"));
        }
    }
    sequences::steps(plan, src, names, &facts.sequences, &mut before)?;
    if let Some(of) = &plan.partition_of {
        before.push(crate::rewrite::one_partition::detach_step(&plan.source, of));
    }
    detach_steps(plan, src, &mut before);
    rename_steps(plan, names, &mut before);
    if let Some(of) = &plan.partition_of {
        before.extend(crate::rewrite::one_partition::attach_steps(
            &plan.source,
            plan.run_id,
            of,
        ));
    }
    attach_check_steps(plan, facts, &mut before);
    attach_foreign_key_steps(plan, src, facts, &mut before);
    let mut after = Vec::new();
    carry_over_steps(plan, src, names, facts, &mut after);
    if let Some(rev) = &plan.reverse {
        for table in capture::tree(&rev.plan) {
            for stmt in capture::trigger_statements(&rev.plan, table) {
                after.push(Step::new(
                    stmt,
                    "installing the reverse capture on the new table",
                ));
            }
        }
    }
    Ok(SwapDdl {
        before_views: before,
        after_views: after,
    })
}

/// Outgoing foreign keys leave the old table: it must not block deletes in the tables it
/// references (nor cascade into them) while it is kept. Incoming foreign keys are dropped now
/// and re-added after the rename (their text names the table). A revertible run's old table
/// also lets go of its self-references: replay into it deletes and re-inserts a changed row,
/// which such a key refused (the referenced row of an UPDATE) or, `ON DELETE CASCADE`, answered
/// by deleting the row's children from the old table; the revert's swap adds them back
/// (`revert::reverse_plan`).
fn detach_steps(plan: &Plan, src: &Source, out: &mut Vec<Step>) {
    let source = &plan.source;
    let revertible = plan.reverse.is_some();
    for c in src
        .constraints
        .iter()
        .filter(|c| c.kind == "f" && (c.references != plan.source_oid || revertible))
    {
        let mut s = Step::new(
            format!("ALTER TABLE {source} DROP CONSTRAINT {}", c.name),
            "removing a foreign key from the old table",
        )
        .note("the old table lets go of its outgoing foreign keys");
        if let Some(r) = &c.referenced_table {
            s = s.locks("ACCESS EXCLUSIVE", r, true);
        }
        out.push(s);
    }
    for fk in &src.incoming {
        out.push(
            Step::new(
                format!("ALTER TABLE {} DROP CONSTRAINT {}", fk.table, fk.name),
                "detaching a foreign key that references the table",
            )
            .locks("ACCESS EXCLUSIVE", &fk.table, true),
        );
    }
}

/// The names: the source becomes the old table, the shadow takes the source's name, and the
/// indexes follow.
fn rename_steps(plan: &Plan, names: &Names, out: &mut Vec<Step>) {
    let (source, shadow) = (&plan.source, &plan.shadow);
    let schema = &source.schema;
    out.push(Step::new(
        format!("ALTER TABLE {source} RENAME TO {}", names.old.name),
        "renaming the source table",
    ));
    out.push(Step::new(
        format!("ALTER TABLE {shadow} RENAME TO {}", source.name),
        "renaming the shadow table",
    ));
    for (cur, old) in &names.old_indexes {
        out.push(Step::new(
            format!(
                "ALTER INDEX {schema}.{cur} RENAME TO {}",
                Ident::new(old.clone())
            ),
            "renaming an index of the old table",
        ));
    }
    for (from, to) in &names.partition_renames {
        let kind = if plan
            .partitioning
            .iter()
            .flat_map(|p| &p.partitions)
            .any(|p| &p.name == from || p.replaces.as_ref().is_some_and(|r| &r.1 == from))
        {
            "TABLE"
        } else {
            "INDEX"
        };
        out.push(Step::new(
            format!("ALTER {kind} {from} RENAME TO {}", Ident::new(to.clone())),
            "renaming a partition or a partition's index",
        ));
    }
    for ix in &plan.indexes {
        out.push(if ix.temporary {
            Step::new(
                format!("DROP INDEX {schema}.{}", ix.tmp_name),
                "dropping the temporary index on the old row identity",
            )
            .note("replay needed it to find rows by the old key; the new key replaces it")
        } else {
            Step::new(
                format!(
                    "ALTER INDEX {schema}.{} RENAME TO {}",
                    ix.tmp_name, ix.final_name
                ),
                "giving an index its original name",
            )
        });
    }
}

/// The NOT VALID check constraints (the source's, and those the ALTER adds NOT VALID) join the
/// new table only now: PostgreSQL's ALTER checks them on rows written after it, and for the
/// tool every row the application wrote during the run was written before the ALTER's moment,
/// the swap. On the shadow before replay, a row the application updated during the run to
/// violate a new NOT VALID check failed the run, with the false "PostgreSQL's own ALTER TABLE
/// would fail on them too" (a fresh tester, session 13).
fn attach_check_steps(plan: &Plan, facts: &SwapFacts, out: &mut Vec<Step>) {
    let source = &plan.source;
    for c in &plan.late_checks {
        if facts.late_on_shadow.iter().any(|n| n == c.name.as_str()) {
            continue;
        }
        out.push(Step::new(
            format!(
                "ALTER TABLE {source} ADD CONSTRAINT {} {} NOT VALID",
                c.name, c.def
            ),
            "adding a NOT VALID check constraint to the new table",
        ));
    }
}

/// Outgoing foreign keys join the new table only now, NOT VALID, validated after the commit
/// (issue 13): on the shadow, while the application wrote the tables they reference, their
/// checks saw child rows replay had not yet removed, and the application's own DELETE of a
/// parent failed. Then self-references, and the incoming foreign keys, re-pointed.
fn attach_foreign_key_steps(plan: &Plan, src: &Source, facts: &SwapFacts, out: &mut Vec<Step>) {
    let source = &plan.source;
    for fk in &plan.foreign_keys {
        if facts.late_on_shadow.iter().any(|n| n == fk.name.as_str()) {
            continue;
        }
        let mut s = Step::new(
            format!(
                "ALTER TABLE {source} ADD CONSTRAINT {} {} NOT VALID",
                fk.name, fk.def
            ),
            "adding a foreign key to the new table",
        )
        .note("a foreign key of the new table; never on the shadow while the application writes");
        if let Some(r) = src
            .constraints
            .iter()
            .find(|c| c.name == fk.name)
            .and_then(|c| c.referenced_table.as_ref())
        {
            s = s.locks("SHARE ROW EXCLUSIVE", r, true);
        }
        out.push(s);
    }
    for fk in &plan.self_foreign_keys {
        out.push(Step::new(
            format!(
                "ALTER TABLE {source} ADD CONSTRAINT {} {} NOT VALID",
                fk.name, fk.def
            ),
            "re-adding a self-referencing foreign key",
        ));
    }
    for fk in &src.incoming {
        let def = fk.def.strip_suffix(" NOT VALID").unwrap_or(&fk.def);
        out.push(
            Step::new(
                format!(
                    "ALTER TABLE {} ADD CONSTRAINT {} {def} NOT VALID",
                    fk.table, fk.name
                ),
                "re-pointing a foreign key at the new table",
            )
            .locks("SHARE ROW EXCLUSIVE", &fk.table, true),
        );
    }
}

/// Extended statistics: the old table's move out of the way (or go, with `--revertible`: a revert
/// creates them again from the new table's), then the new table's take the names. The new
/// table's were made on the shadow before the ALTER (`plan.statistics`; shadow.rs); a plan
/// without them (a revert's, or one made by an older version) creates them from the source's
/// definitions.
fn statistics_steps(plan: &Plan, src: &Source, names: &Names, out: &mut Vec<Step>) {
    for (st, (_, old_name)) in src.statistics.iter().zip(&names.old_statistics) {
        let what = format!("re-creating statistics {}", st.name.human());
        out.push(Step::new(
            if plan.reverse.is_some() {
                format!("DROP STATISTICS {}", st.name)
            } else {
                format!(
                    "ALTER STATISTICS {} RENAME TO {}",
                    st.name,
                    Ident::new(old_name.clone())
                )
            },
            what.clone(),
        ));
        if plan.statistics.is_some() {
            continue;
        }
        out.push(Step::new(st.def.clone(), what.clone()));
        if st.target >= 0 {
            out.push(Step::new(
                format!("ALTER STATISTICS {} SET STATISTICS {}", st.name, st.target),
                what.clone(),
            ));
        }
        out.push(Step::new(
            format!("ALTER STATISTICS {} OWNER TO {}", st.name, st.owner),
            what.clone(),
        ));
        if let Some(c) = &st.comment {
            out.push(Step::new(
                format!("COMMENT ON STATISTICS {} IS {}", st.name, literal(c)),
                what,
            ));
        }
    }
    for s in plan.statistics.iter().flatten() {
        out.push(Step::new(
            format!(
                "ALTER STATISTICS {} RENAME TO {}",
                s.tmp_name, s.final_name.name
            ),
            format!("giving statistics {} its name", s.final_name.human()),
        ));
    }
}

/// Foreign keys to validate after the commit: (table, constraint).
pub(super) fn to_validate(plan: &Plan, src: &Source) -> Vec<(QualifiedName, Ident)> {
    let source = &plan.source;
    plan.foreign_keys
        .iter()
        .chain(&plan.self_foreign_keys)
        .filter(|fk| fk.validate)
        .map(|fk| (source.clone(), fk.name.clone()))
        .chain(
            src.incoming
                .iter()
                .filter(|fk| fk.validated)
                .map(|fk| (fk.table.clone(), fk.name.clone())),
        )
        .collect()
}

/// What the old table had besides its definition, on the new one (after the views): row level
/// security, triggers, publications, rules, extended statistics, comments, privileges.
fn carry_over_steps(
    plan: &Plan,
    src: &Source,
    names: &Names,
    facts: &SwapFacts,
    out: &mut Vec<Step>,
) {
    let source = &plan.source;
    let revertible = plan.reverse.is_some();
    for stmt in build::security_statements(src, source) {
        out.push(Step::new(stmt, "carrying row level security over"));
    }
    for (part, grants) in &facts.partition_grants {
        for g in grants {
            out.push(Step::new(
                g.sql(part),
                "carrying a partition's privileges over",
            ));
        }
    }
    if revertible {
        // Replay into the old table must not fire its triggers or be filtered by its policies;
        // a revert creates them again from the new table's.
        for t in src.user_triggers() {
            out.push(Step::new(
                format!("DROP TRIGGER {} ON {}", t.name, names.old),
                "removing a trigger from the old table",
            ));
        }
        for p in &src.policies {
            out.push(Step::new(
                format!("DROP POLICY {} ON {}", p.name, names.old),
                "removing a policy from the old table",
            ));
        }
    }
    for t in src.user_triggers() {
        out.push(Step::new(
            t.def.clone(),
            format!("re-creating trigger {}", t.name.as_str()),
        ));
        if let Some(c) = &t.comment {
            out.push(Step::new(
                format!(
                    "COMMENT ON TRIGGER {} ON {source} IS {}",
                    t.name,
                    literal(c)
                ),
                "carrying a trigger comment over",
            ));
        }
        let mode = match t.enabled.as_str() {
            "D" => Some("DISABLE TRIGGER"),
            "R" => Some("ENABLE REPLICA TRIGGER"),
            "A" => Some("ENABLE ALWAYS TRIGGER"),
            _ => None,
        };
        if let Some(m) = mode {
            out.push(Step::new(
                format!("ALTER TABLE {source} {m} {}", t.name),
                "restoring a trigger's enabled state",
            ));
        }
    }
    for p in &src.publications {
        let what = "moving publication membership";
        out.push(Step::new(
            format!("ALTER PUBLICATION {} DROP TABLE {}", p.name, names.old),
            what,
        ));
        // The column list in the new table's names: a RENAME COLUMN renames it in the list, as
        // PostgreSQL's does (the list and the row filter on a dropped or retyped column were
        // refused before anything was created).
        let columns = if p.column_names.is_empty() {
            String::new()
        } else {
            let mapped: Vec<String> = p
                .column_names
                .iter()
                .map(|c| plan.shadow_column_of(c).unwrap_or(c).to_string())
                .collect();
            format!(" ({})", mapped.join(", "))
        };
        out.push(Step::new(
            format!(
                "ALTER PUBLICATION {} ADD TABLE ONLY {source}{columns}{}",
                p.name, p.filter
            ),
            what,
        ));
    }
    for (name, def) in &src.rules {
        if revertible {
            // The old table is kept in sync by replay, which must not fire its rules.
            out.push(Step::new(
                format!("DROP RULE {name} ON {}", names.old),
                "removing a rule from the old table",
            ));
        }
        out.push(Step::new(def.clone(), "re-creating a rule on the table"));
    }
    statistics_steps(plan, src, names, out);
    // Constraint comments (constraints keep their names on the new table).
    let comments = src
        .indexes
        .iter()
        .filter_map(|i| Some((i.constraint_name.as_ref()?, i.constraint_comment.as_ref()?)))
        .chain(
            src.constraints
                .iter()
                .filter_map(|c| Some((&c.name, c.comment.as_ref()?))),
        );
    for (name, comment) in comments {
        if facts.constraints.iter().any(|n| n == name.as_str()) {
            out.push(Step::new(
                format!(
                    "COMMENT ON CONSTRAINT {name} ON {source} IS {}",
                    literal(comment)
                ),
                "carrying a constraint comment over",
            ));
        }
    }
    for fk in src.incoming.iter().filter(|f| f.comment.is_some()) {
        out.push(Step::new(
            format!(
                "COMMENT ON CONSTRAINT {} ON {} IS {}",
                fk.name,
                fk.table,
                literal(fk.comment.as_deref().unwrap_or_default())
            ),
            "carrying a foreign key comment over",
        ));
    }
    for stmt in build::grant_statements(plan, src, source) {
        out.push(Step::new(stmt, "carrying privileges over"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn autovacuum_comes_back_as_the_source_had_it() {
        let t = QualifiedName::new("app", "t_new");
        assert_eq!(
            autovacuum_restore(&t, &[], &[]).unwrap(),
            r#"ALTER TABLE "app"."t_new" RESET (autovacuum_enabled, toast.autovacuum_enabled)"#
        );
        assert_eq!(
            autovacuum_restore(
                &t,
                &["fillfactor=70".into(), "autovacuum_enabled=off".into()],
                &["autovacuum_enabled=false".into()]
            )
            .unwrap(),
            r#"ALTER TABLE "app"."t_new" RESET (autovacuum_enabled, toast.autovacuum_enabled); ALTER TABLE "app"."t_new" SET (fillfactor = '70', autovacuum_enabled = 'off', toast.autovacuum_enabled = 'false')"#
        );
    }
}
