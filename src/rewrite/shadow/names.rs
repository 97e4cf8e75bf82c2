//! The names the ALTER's unnamed objects take on the table, chosen as PostgreSQL's own ALTER
//! chooses them there: PostgreSQL named them after the shadow (`t_new_email_key`,
//! `t_new_x_check`); on the table they are `t_email_key`, `t_x_check`, or numbered past the
//! names the schema already holds (`ChooseRelationName`, `ChooseConstraintName`;
//! `db::ident::first_free`). The copy and the in-place path (`fastpath`) use the same names.
//! Identity and serial sequences are named in the swap (`swap::sequences`).

use crate::db::catalog;
use crate::db::ident::{fit_name, Ident, QualifiedName};
use crate::error::{DbContext, Error, Result, RowExt};
use crate::rewrite::plan::{LateConstraint, ShadowIndex};
use crate::rewrite::preflight::Source;
use crate::rewrite::step::Step;

/// A name PostgreSQL chose for an index the ALTER added on the shadow (`t_new_email_key`),
/// turned into the name it would have chosen on the table (`t_email_key`). When the shadow's
/// name is long, PostgreSQL shortened it to make room for the rest (`makeObjectName`: the name
/// is then 63 bytes and starts with a prefix of the shadow's name): the rest is what follows
/// that prefix. A fresh tester's 57-byte table got `<table>__pkey` for its new primary key,
/// which the shadow's own index held, and the run was refused as a name clash.
pub(super) fn derive_name(name: &str, shadow: &str, table: &str) -> String {
    if let Some(rest) = name.strip_prefix(shadow).filter(|r| r.starts_with('_')) {
        return fit_name(table, rest);
    }
    if name.len() == crate::db::ident::MAX_IDENT_BYTES {
        let cut = name.char_indices().rev().map(|(i, _)| i).find(|&i| {
            i > 0
                && i < shadow.len()
                && name[i..].starts_with('_')
                && shadow.is_char_boundary(i)
                && shadow[..i] == name[..i]
        });
        if let Some(i) = cut {
            // Cut this short, the shadow's name for the new key can be the table's current
            // one (`<table cut>_pkey`), so PostgreSQL numbered it (`_pkey1`); on the table,
            // where the ALTER drops the old key first, it gets the plain name. A real clash is
            // left to `choose_index_names`.
            let rest = name[i..].trim_end_matches(|c: char| c.is_ascii_digit());
            return fit_name(table, rest);
        }
    }
    name.to_string()
}

/// Every index the swap names must get a name of its own: not another planned index's, and not
/// one a relation of the schema holds other than the table's own indexes (the swap moves those
/// to `_old` names first).
///
/// An index whose name PostgreSQL chose on the shadow (an unnamed `ADD UNIQUE (email)`,
/// `t_new_email_key`; `chosen_by_postgres`: (position in `indexes`, the part after the shadow's
/// name)) gets the name its ALTER would choose on the table, `ChooseRelationName` with
/// constraint names counted: the first of `t_email_key`, `t_email_key1`, ... that no relation
/// and no constraint of the schema has. Before, a taken `t_email_key` was refused (a fresh
/// tester, session 14). Returns (position in `indexes`, chosen name) of each one renamed.
///
/// Errors (refused, nothing created): a name the ALTER gave that is taken. PostgreSQL's ALTER
/// would say "relation ... already exists" at once; the swap would say it only after the copy
/// (issue 15: `ADD CONSTRAINT <an existing index's name> PRIMARY KEY`).
pub(super) async fn choose_index_names(
    tx: &tokio_postgres::Transaction<'_>,
    src: &Source,
    shadow_oid: u32,
    indexes: &mut [ShadowIndex],
    chosen_by_postgres: &[(usize, String)],
) -> Result<Vec<(usize, Ident)>> {
    let schema = &src.table.name.schema;
    let what = "reading the relation and constraint names of the table's schema";
    // Relations other than the shadow's and the source's indexes (the swap names the surviving
    // source indexes itself; the ones the ALTER drops give their names back), and constraints
    // other than the source's and the shadow's index-backed ones (those carry temporary names).
    // (name, is a relation)
    let taken_elsewhere: Vec<(String, bool)> = tx
        .query(
            "SELECT c.relname::text, true FROM pg_catalog.pg_class c \
               JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
              WHERE n.nspname = $1 \
                AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_index i \
                                 WHERE i.indexrelid = c.oid AND i.indrelid IN ($2, $3)) \
             UNION ALL \
             SELECT k.conname::text, false FROM pg_catalog.pg_constraint k \
               JOIN pg_catalog.pg_namespace n ON n.oid = k.connamespace \
              WHERE n.nspname = $1 AND k.conrelid <> $3 \
                AND NOT (k.conrelid = $2 AND k.contype IN ('p', 'u', 'x'))",
            &[&schema.as_str(), &shadow_oid, &src.table.oid],
        )
        .await
        .ctx(what)?
        .iter()
        .map(|r| Ok((r.col(0, &what)?, r.col(1, &what)?)))
        .collect::<Result<_>>()?;
    let relation = |name: &str| taken_elsewhere.iter().any(|(t, rel)| *rel && t == name);
    let table = src.table.name.name.as_str();
    let mut renamed = Vec::new();
    for &(n, ref rest) in chosen_by_postgres {
        let rest = rest.trim_end_matches(|c: char| c.is_ascii_digit());
        let planned = |name: &str| {
            indexes
                .iter()
                .enumerate()
                .any(|(m, i)| m != n && !i.temporary && i.final_name.as_str() == name)
        };
        let chosen = crate::db::ident::first_free(
            |k| crate::db::ident::numbered(table, rest, k),
            |name| planned(name) || taken_elsewhere.iter().any(|(t, _)| t == name),
        );
        if let Some(name) = chosen.filter(|c| c != indexes[n].final_name.as_str()) {
            let name = Ident::new(name);
            renamed.push((n, name.clone()));
            indexes[n].final_name = name;
        }
    }
    let names: Vec<&Ident> = indexes
        .iter()
        .filter(|i| !i.temporary)
        .map(|i| &i.final_name)
        .collect();
    for (n, name) in names.iter().enumerate() {
        let twice = names[..n].contains(name);
        // The shadow's own indexes do not count: they take temporary names before the build
        // (with a long table name the one the ALTER made can already have the final name).
        // Constraint names of other relations do not clash with a name the ALTER gave.
        let taken = !src.indexes.iter().any(|s| &s.name == *name) && relation(name.as_str());
        if twice || taken {
            return Err(Error::refused(format!(
                "cannot rewrite table {}: after the ALTER two indexes of the table, or an index and another relation of schema {}, would be named {name}",
                src.table.name.human(),
                schema.as_str()
            ))
            .with_state("nothing was changed")
            .with_next("give the new constraint a name of its own in the --alter"));
        }
    }
    Ok(renamed)
}

/// Unnamed CHECK and FOREIGN KEY constraints the ALTER adds: PostgreSQL named them after the
/// shadow (`t_new_x_check`, `t_new_p_fkey`); they take the name its ALTER gives on the table
/// (`ChooseConstraintName`: the first of `t_x_check`, `t_x_check1`, ... that no constraint in
/// the schema has), as the indexes do (`derive_name`). Before, they kept the shadow's names (a
/// fresh tester, session 13). Late ones (`late`: NOT VALID checks, foreign keys) are renamed in
/// the plan, since the swap adds them by name; the returned steps rename the valid checks and
/// (PostgreSQL 18) NOT NULL constraints the shadow keeps. The source's own constraints are on
/// the shadow under their names already.
///
/// Returns the rename steps, and every (shadow's name, chosen name) pair: the in-place path
/// (`fastpath`) adds the same constraints to the table under the same names.
pub(super) async fn table_constraint_names(
    tx: &tokio_postgres::Transaction<'_>,
    src: &Source,
    shadow: &QualifiedName,
    shadow_cons: &[catalog::Constraint],
    late: &mut [&mut Vec<LateConstraint>],
) -> Result<(Vec<Step>, Vec<(String, Ident)>)> {
    use crate::error::{DbContext, RowExt};
    let what = "reading the constraint names in the table's schema";
    // The schema's constraint names as they would be after PostgreSQL's ALTER on the table: the
    // other tables' (the shadow's among them, with the source's surviving names), not the ones
    // of the source the ALTER drops (`DROP NOT NULL, ... SET NOT NULL` gives the name back);
    // index-backed ones carry temporary names on the shadow, so the source's count as taken.
    let mut taken: Vec<String> = tx
        .query(
            "SELECT conname::text FROM pg_catalog.pg_constraint c \
               JOIN pg_catalog.pg_namespace n ON n.oid = c.connamespace \
              WHERE n.nspname = $1 AND (c.conrelid <> $2 OR c.contype IN ('p', 'u', 'x'))",
            &[&src.table.name.schema.as_str(), &src.table.oid],
        )
        .await
        .ctx(what)?
        .iter()
        .map(|r| r.col(0, &what))
        .collect::<Result<_>>()?;
    let (shadow_name, table) = (shadow.name.as_str(), src.table.name.name.as_str());
    let mut choose = |name: &str| -> Option<Ident> {
        if src.constraints.iter().any(|c| c.name.as_str() == name) {
            return None;
        }
        let rest = name
            .strip_prefix(shadow_name)
            .filter(|r| r.starts_with('_'))?
            .trim_end_matches(|c: char| c.is_ascii_digit());
        let chosen = crate::db::ident::first_free(
            |k| crate::db::ident::numbered(table, rest, k),
            |n| taken.iter().any(|t| t == n),
        )?;
        taken.push(chosen.clone());
        Some(Ident::new(chosen))
    };
    // PostgreSQL 18 names NOT NULL constraints too (`t_new_y_not_null` for `SET NOT NULL`).
    let what = "reading the shadow's NOT NULL constraints";
    let not_null: Vec<(u32, String)> = tx
        .query(
            "SELECT oid, conname::text FROM pg_catalog.pg_constraint \
              WHERE conrelid = pg_catalog.to_regclass($1) AND contype::text = 'n'",
            &[&shadow.to_string()],
        )
        .await
        .ctx(what)?
        .iter()
        .map(|r| Ok((r.col(0, &what)?, r.col(1, &what)?)))
        .collect::<Result<_>>()?;
    // Chosen in the order PostgreSQL made them on the shadow (their OIDs), as its ALTER on the
    // table would choose: valid and NOT VALID ones alike (a fresh tester, session 14: a NOT
    // VALID check written first took `t_id_check1` behind a valid one written after it).
    let mut made: Vec<(u32, String)> = shadow_cons
        .iter()
        .filter(|c| c.kind == "c" || c.kind == "f")
        .map(|c| (c.oid, c.name.as_str().to_string()))
        .chain(not_null.iter().cloned())
        .collect();
    made.sort();
    let mut chosen: Vec<(String, Ident)> = Vec::new();
    for (_, name) in made {
        if let Some(n) = choose(&name) {
            chosen.push((name, n));
        }
    }
    let named = |old: &str| {
        chosen
            .iter()
            .find(|(o, _)| o == old)
            .map(|(_, n)| n.clone())
    };
    // The valid checks and NOT NULL constraints stay on the shadow: renamed there.
    let kept = shadow_cons
        .iter()
        .filter(|c| c.kind == "c" && c.validated)
        .map(|c| c.name.as_str().to_string())
        .chain(not_null.into_iter().map(|(_, n)| n));
    let mut steps = Vec::new();
    for name in kept {
        if let Some(n) = named(&name) {
            steps.push(Step::new(
                format!(
                    "ALTER TABLE {shadow} RENAME CONSTRAINT {} TO {n}",
                    Ident::new(name.as_str())
                ),
                "naming a constraint the ALTER adds as PostgreSQL would",
            ));
        }
    }
    for c in late.iter_mut().flat_map(|l| l.iter_mut()) {
        if let Some(n) = named(c.name.as_str()) {
            c.name = n;
        }
    }
    Ok((steps, chosen))
}
