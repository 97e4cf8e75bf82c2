//! Objects that depend on the columns the ALTER drops or retypes: refused before anything is
//! copied (issue 13, input 6).
//!
//! Invariant kept here (DESIGN.md, "Refuse before creating anything"): what PostgreSQL's own
//! `ALTER TABLE` refuses because of a dependent object is refused while the shadow is built, not
//! at the swap after the whole copy. The shadow has the table's columns, checks, indexes and
//! generated columns, so the ALTER on the shadow already fails where those are in the way; what
//! it does not have are the objects *around* the table: views and rules (`pg_rewrite`),
//! policies, triggers, publication column lists and row filters, functions with SQL-standard
//! bodies, and other tables' foreign keys. Those are read from `pg_depend` by OID
//! (sql/column_dependents.sql) with PostgreSQL's rules:
//!
//! - `DROP COLUMN` is refused by any normal (`'n'`) dependency on the column: PostgreSQL says
//!   "cannot drop column ... because other objects depend on it" unless `CASCADE`, and the tool
//!   never cascades.
//! - `ALTER COLUMN ... TYPE` is refused by a rule on the table, a trigger (`WHEN`, `UPDATE OF`),
//!   a policy, a publication's column list or row filter, a function body: PostgreSQL refuses
//!   those too. Foreign keys of other tables are rebuilt by PostgreSQL, and by the swap.
//! - Views (and materialized views) over a retyped column are the one place where the tool does
//!   more than PostgreSQL: the swap re-creates them from their definition against the new table
//!   (README, "Views"; swap.rs `recreate_views`). So they are not refused; instead
//!   [`probe_views`] creates each such definition against a temporary twin of the new shape
//!   inside a savepoint, and refuses only when that would fail at the swap (a function or
//!   operator that does not exist for the new type, a renamed column the old text still names).

use crate::db::ident::{Ident, QualifiedName};
use crate::error::{Error, Result};
use tokio_postgres::GenericClient;

/// One object depending on a column (a row of sql/column_dependents.sql).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dependent {
    pub column: Ident,
    /// The catalog of the dependent object (`pg_rewrite`, `pg_policy`, `pg_trigger`...).
    pub catalog: String,
    /// For a view's or materialized view's rewrite rule: the view's oid and relkind.
    pub view: Option<(u32, String)>,
    /// `view public.v`, `policy p on table t`, `trigger tr on table t`...
    pub object: String,
}

/// What the ALTER does to the column a dependent object uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    Drop,
    Type,
}

/// A dependent object PostgreSQL's ALTER would refuse.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub dependent: Dependent,
    pub change: Change,
}

impl Refusal {
    /// What PostgreSQL says for it (its own words, PostgreSQL 15).
    pub fn postgres_says(&self, table: &str) -> String {
        let col = self.dependent.column.as_str();
        match self.change {
            Change::Drop => format!(
                "cannot drop column {col} of table {table} because other objects depend on it"
            ),
            Change::Type => {
                let what = match self.dependent.catalog.as_str() {
                    "pg_rewrite" => "by a view or rule",
                    "pg_trigger" => "in a trigger definition",
                    "pg_policy" => "in a policy definition",
                    "pg_publication_rel" => "by a publication WHERE clause",
                    "pg_proc" => "by a function or procedure",
                    _ => "by another object",
                };
                format!("cannot alter type of a column used {what}")
            }
        }
    }

    /// How to get the object out of the way (the tool never drops it for you).
    pub fn remedy(&self) -> &'static str {
        match (self.dependent.catalog.as_str(), &self.dependent.view) {
            ("pg_rewrite", Some(_)) => {
                "drop the view before the run and create it again (without the column) after it"
            }
            ("pg_rewrite", None) => "DROP RULE before the run, CREATE RULE again after it",
            ("pg_trigger", _) => "DROP TRIGGER before the run, CREATE TRIGGER again after it",
            ("pg_policy", _) => {
                "DROP POLICY (or ALTER POLICY so that it does not use the column) before the run, \
                 CREATE POLICY again after it"
            }
            ("pg_publication_rel", _) => {
                "ALTER PUBLICATION ... SET TABLE with a column list and row filter that leave the \
                 column out before the run, and set them again after it"
            }
            ("pg_constraint", _) => {
                "ALTER TABLE ... DROP CONSTRAINT on the referencing table before the run"
            }
            ("pg_proc", _) => {
                "CREATE OR REPLACE the function without the column (or drop it) before the run"
            }
            _ => "drop the object before the run and create it again after it",
        }
    }
}

/// The objects with a normal dependency on any of `columns` of table `oid`.
pub async fn column_dependents(
    client: &impl GenericClient,
    oid: u32,
    columns: &[Ident],
) -> Result<Vec<Dependent>> {
    if columns.is_empty() {
        return Ok(Vec::new());
    }
    let names: Vec<&str> = columns.iter().map(|c| c.as_str()).collect();
    let rows = client
        .query(
            include_str!("../../sql/column_dependents.sql"),
            &[&oid, &names],
        )
        .await
        .map_err(|e| {
            Error::db(
                format_args!("reading the objects that depend on columns of table oid {oid}"),
                e,
            )
        })?;
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        let get = |e: tokio_postgres::Error| Error::db("reading a column dependency", e);
        let column: String = r.try_get("column_name").map_err(get)?;
        let view_oid: Option<u32> = r.try_get("view_oid").map_err(get)?;
        let view_kind: Option<String> = r.try_get("view_kind").map_err(get)?;
        out.push(Dependent {
            column: Ident::new(column),
            catalog: r.try_get("catalog").map_err(get)?,
            view: view_oid.zip(view_kind),
            object: r.try_get("object").map_err(get)?,
        });
    }
    Ok(out)
}

/// Which of `deps` PostgreSQL's ALTER would refuse, given the columns it drops and retypes
/// (see the header). Views over retyped columns are left to [`probe_views`].
pub fn refusals(deps: &[Dependent], dropped: &[Ident], retyped: &[Ident]) -> Vec<Refusal> {
    let mut out = Vec::new();
    for d in deps {
        let change = if dropped.contains(&d.column) {
            Change::Drop
        } else if retyped.contains(&d.column) {
            // PostgreSQL rebuilds other tables' foreign keys; the swap re-creates views.
            if d.catalog == "pg_constraint" || d.view.is_some() {
                continue;
            }
            Change::Type
        } else {
            continue;
        };
        out.push(Refusal {
            dependent: d.clone(),
            change,
        });
    }
    out
}

/// Refuses (exit 3) when an object depending on a dropped or retyped column would make
/// PostgreSQL's `ALTER TABLE` fail, naming each object, the column, what PostgreSQL would say
/// and what to do. `table` names the table in messages (`public.person`).
pub async fn refuse_dependents(
    client: &impl GenericClient,
    source_oid: u32,
    dropped: &[Ident],
    retyped: &[Ident],
    table: &str,
) -> Result<()> {
    let mut columns: Vec<Ident> = dropped.to_vec();
    columns.extend(retyped.iter().cloned());
    let deps = column_dependents(client, source_oid, &columns).await?;
    let found = refusals(&deps, dropped, retyped);
    if found.is_empty() {
        return Ok(());
    }
    Err(refusal_error(&found, table))
}

fn refusal_error(found: &[Refusal], table: &str) -> Error {
    let bare = table.rsplit_once('.').map(|(_, t)| t).unwrap_or(table);
    let lines: Vec<String> = found
        .iter()
        .map(|r| {
            format!(
                "{} uses column {:?} (PostgreSQL: \"{}\"); {}",
                r.dependent.object,
                r.dependent.column.as_str(),
                r.postgres_says(bare),
                r.remedy()
            )
        })
        .collect();
    Error::refused(format!(
        "cannot rewrite table {table}: the ALTER {} a column other objects depend on, which \
         PostgreSQL's own ALTER TABLE refuses:\n    {}",
        if found.iter().any(|r| r.change == Change::Drop) {
            "drops or retypes"
        } else {
            "retypes"
        },
        lines.join("\n    ")
    ))
    .with_state(format!("nothing was changed; {table} is untouched"))
    .with_next(
        "take the objects named above out of the way as said, run again, and create them again \
         after the run (pg-hotswap never drops dependent objects: there is no CASCADE)",
    )
}

/// Views (and materialized views) over columns the ALTER retypes or renames, re-created from
/// their definitions against a temporary twin of the new shape, each in its own savepoint:
/// refuses (exit 3) the ones the swap could not re-create. `changed` are source column names,
/// `shadow` the shadow table (already altered), `source` the table.
pub async fn probe_views(
    client: &impl GenericClient,
    source_oid: u32,
    changed: &[Ident],
    shadow: &QualifiedName,
    source: &QualifiedName,
) -> Result<()> {
    let deps = column_dependents(client, source_oid, changed).await?;
    let mut views: Vec<(u32, String, Vec<Ident>)> = Vec::new();
    for d in deps {
        let Some((oid, _)) = d.view else { continue };
        match views.iter_mut().find(|(o, _, _)| *o == oid) {
            Some((_, _, cols)) => cols.push(d.column),
            None => views.push((oid, d.object, vec![d.column])),
        }
    }
    let mut failures = Vec::new();
    for (oid, object, cols) in &views {
        if let Some(msg) = probe_one(client, *oid, shadow, source).await? {
            failures.push(format!(
                "{object} uses column{} {}: {msg}",
                if cols.len() == 1 { "" } else { "s" },
                cols.iter()
                    .map(|c| format!("{:?}", c.as_str()))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }
    if failures.is_empty() {
        return Ok(());
    }
    Err(Error::refused(format!(
        "cannot rewrite table {}: the swap re-creates the views over it from their definitions, \
         and against the new shape these definitions fail (PostgreSQL's own ALTER TABLE refuses \
         with \"cannot alter type of a column used by a view or rule\"):\n    {}",
        source.human(),
        failures.join("\n    ")
    ))
    .with_state(format!(
        "nothing was changed; {} is untouched",
        source.human()
    ))
    .with_next(
        "drop these views before the run and create them again, adapted to the new columns, \
         after it (pg-hotswap never drops dependent objects: there is no CASCADE)",
    ))
}

/// Objects that would keep the swap from dropping and creating the views over the table again
/// (a function taking a view's row type, a `BEGIN ATOMIC` function or another table's policy
/// reading a view): refused here (exit 3), before anything is created, where the swap found them
/// only after the whole copy (a fresh tester, session 12). The swap drops and creates the views
/// when a materialized view is among them, or when a column a view reads changes type, typmod
/// or collation (`catalog::view_column_changes`, as the swap decides); `columns` are the
/// (source, shadow) names of the columns the shadow keeps.
pub async fn refuse_view_blockers(
    client: &impl GenericClient,
    src: &crate::rewrite::preflight::Source,
    shadow_oid: u32,
    columns: &[(&str, &str)],
) -> Result<()> {
    if src.views.is_empty() {
        return Ok(());
    }
    let (from, to): (Vec<&str>, Vec<&str>) = columns.iter().copied().unzip();
    let recreated = src.views.iter().any(|v| v.relkind == "m")
        || crate::db::catalog::view_column_changes(client, src.table.oid, shadow_oid, &from, &to)
            .await?;
    if !recreated {
        return Ok(());
    }
    let oids: Vec<u32> = src.views.iter().map(|v| v.oid).collect();
    let blockers = crate::db::catalog::view_dependents(client, &oids).await?;
    if blockers.is_empty() {
        return Ok(());
    }
    let table = src.table.name.human();
    Err(Error::refused(format!(
        "cannot rewrite table {table}: the swap must drop and create again the views over it \
         ({}), and these objects depend on them, so PostgreSQL would refuse the DROP VIEW:\n    {}",
        if src.views.iter().any(|v| v.relkind == "m") {
            "a materialized view is among them"
        } else {
            "a column they read changes type"
        },
        blockers
            .iter()
            .map(|(what, view)| format!("{what} uses {view}"))
            .collect::<Vec<_>>()
            .join("\n    ")
    ))
    .with_state(format!("nothing was changed; {table} is untouched"))
    .with_next(
        "drop these objects before the run and create them again after it (pg-hotswap never \
         drops dependent objects: there is no CASCADE)",
    ))
}

/// Creates view `oid`'s definition as a temporary view over a temporary table named like the
/// source with the shadow's columns, in a savepoint that is always rolled back. `Some(message)`
/// when the server refuses the definition; `None` when it compiles, or when the probe cannot be
/// made (no TEMPORARY privilege: then the swap is the judge, as before).
async fn probe_one(
    client: &impl GenericClient,
    oid: u32,
    shadow: &QualifiedName,
    source: &QualifiedName,
) -> Result<Option<String>> {
    let exec = |sql: String| async move { client.batch_execute(&sql).await };
    exec("SAVEPOINT hotswap_view_probe".into())
        .await
        .map_err(|e| Error::db("starting the view probe", e))?;
    // With only the table's schema on the search_path, the definition names the table
    // unqualified; the temporary table of the same name then comes first (pg_temp is searched
    // before everything for relations).
    let result = async {
        exec(format!("SET LOCAL search_path = {}", source.schema)).await?;
        let def: String = client
            .query_one("SELECT pg_catalog.pg_get_viewdef($1::oid)", &[&oid])
            .await?
            .try_get(0)?;
        exec(format!(
            "CREATE TEMPORARY TABLE {} (LIKE {shadow})",
            source.name
        ))
        .await?;
        exec(format!(
            "CREATE TEMPORARY VIEW hotswap_view_probe AS {}",
            def.trim().trim_end_matches(';')
        ))
        .await
    }
    .await;
    exec("ROLLBACK TO SAVEPOINT hotswap_view_probe".into())
        .await
        .map_err(|e| Error::db("ending the view probe", e))?;
    exec("RELEASE SAVEPOINT hotswap_view_probe".into())
        .await
        .map_err(|e| Error::db("ending the view probe", e))?;
    match result {
        Ok(()) => Ok(None),
        Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE) => {
            tracing::info!(error = %e, "the view probe could not be made");
            Ok(None)
        }
        Err(e) => Ok(Some(match e.as_db_error() {
            Some(db) => db.message().to_string(),
            None => e.to_string(),
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dep(col: &str, catalog: &str, view: bool) -> Dependent {
        Dependent {
            column: Ident::new(col),
            catalog: catalog.into(),
            view: view.then(|| (1, "v".to_string())),
            object: format!("{catalog} object"),
        }
    }

    #[test]
    fn drops_refuse_every_normal_dependency_and_type_changes_only_some() {
        let deps = vec![
            dep("a", "pg_rewrite", true),
            dep("a", "pg_constraint", false),
            dep("b", "pg_rewrite", true),
            dep("b", "pg_constraint", false),
            dep("b", "pg_policy", false),
            dep("b", "pg_rewrite", false),
            dep("c", "pg_trigger", false),
        ];
        let r = refusals(&deps, &[Ident::new("a")], &[Ident::new("b")]);
        let got: Vec<(&str, &str, Change)> = r
            .iter()
            .map(|r| {
                (
                    r.dependent.column.as_str(),
                    r.dependent.catalog.as_str(),
                    r.change,
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("a", "pg_rewrite", Change::Drop),
                ("a", "pg_constraint", Change::Drop),
                ("b", "pg_policy", Change::Type),
                ("b", "pg_rewrite", Change::Type),
            ]
        );
    }

    #[test]
    fn messages_use_postgres_words() {
        let r = Refusal {
            dependent: dep("nickname", "pg_rewrite", true),
            change: Change::Drop,
        };
        assert_eq!(
            r.postgres_says("person"),
            "cannot drop column nickname of table person because other objects depend on it"
        );
        let r = Refusal {
            dependent: dep("x", "pg_trigger", false),
            change: Change::Type,
        };
        assert_eq!(
            r.postgres_says("t"),
            "cannot alter type of a column used in a trigger definition"
        );
        let e = refusal_error(&[r], "public.t");
        assert_eq!(e.kind(), crate::error::Kind::Refused);
        assert!(e.to_string().contains("DROP TRIGGER"));
        assert!(e.to_string().contains("nothing was changed"));
    }
}
