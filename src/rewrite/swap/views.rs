//! The views over the table, pointed at the new table in the swap (after the renames, so the
//! name in their definition means the new table). `CREATE OR REPLACE VIEW` keeps everything
//! attached to a view (grants, defaults, triggers, rules, views over it); when a column type
//! changed and replacing is not allowed, or a materialized view is among them, the views are
//! dropped and created again with all of that restored.

use super::exec;
use crate::db::catalog;
use crate::db::ident::literal;
use crate::error::{Error, Result};
use crate::rewrite::preflight::Source;
use crate::rewrite::step::{self, Step};
use tokio_postgres::Transaction;

fn view_sql(v: &catalog::View, replace: bool) -> String {
    let opts: Vec<String> = v
        .reloptions
        .iter()
        .filter_map(|o| o.split_once('='))
        .map(|(k, val)| format!("{k} = {}", literal(val)))
        .collect();
    let with = if opts.is_empty() {
        String::new()
    } else {
        format!(" WITH ({})", opts.join(", "))
    };
    let def = v.def.trim().trim_end_matches(';');
    if v.relkind == "m" {
        let ts = v
            .tablespace
            .as_ref()
            .map(|t| format!(" TABLESPACE {t}"))
            .unwrap_or_default();
        let data = if v.populated {
            "WITH DATA"
        } else {
            "WITH NO DATA"
        };
        return format!(
            "CREATE MATERIALIZED VIEW {}{with}{ts} AS {def} {data}",
            v.name
        );
    }
    let verb = if replace {
        "CREATE OR REPLACE VIEW"
    } else {
        "CREATE VIEW"
    };
    format!("{verb} {}{with} AS {def}", v.name)
}

/// Points the dependent views at the new table (run after the renames, so the name in their
/// definition means the new table). `CREATE OR REPLACE VIEW` keeps everything attached to a view
/// (grants, defaults, triggers, rules, views over it); when a column type changed and replacing
/// is not allowed, the views are dropped and created again with all of that restored.
pub(super) async fn recreate_views(tx: &Transaction<'_>, src: &Source) -> Result<()> {
    if src.views.is_empty() {
        return Ok(());
    }
    exec(
        tx,
        "SAVEPOINT hotswap_views",
        "starting the view replacement",
    )
    .await?;
    // Materialized views cannot be replaced in place: with one among them, everything is
    // dropped and created again (the materialized view with its data, built here).
    let replaced = match view_replace_steps(src) {
        Some(steps) => step::exec_all(tx, &steps).await,
        None => Err(Error::failed("a materialized view depends on the table")),
    };
    match replaced {
        Ok(()) => return exec(tx, "RELEASE SAVEPOINT hotswap_views", "replacing views").await,
        Err(e) if e.is_lock_not_granted() => return Err(e),
        Err(e) => {
            tracing::debug!(error = %e, "views cannot be replaced in place; dropping and re-creating them");
            exec(tx, "ROLLBACK TO SAVEPOINT hotswap_views", "replacing views").await?;
        }
    }
    step::exec_all(tx, &view_recreate_steps(src)).await
}

/// The dependent views replaced in place (`CREATE OR REPLACE VIEW`, which keeps everything
/// attached to a view); `None` when a materialized view is among them.
pub fn view_replace_steps(src: &Source) -> Option<Vec<Step>> {
    if src.views.iter().any(|v| v.relkind == "m") {
        return None;
    }
    Some(
        src.views
            .iter()
            .map(|v| {
                Step::new(
                    view_sql(v, true),
                    format!("replacing view {}", v.name.human()),
                )
                .locks("ACCESS EXCLUSIVE", &v.name, true)
            })
            .collect(),
    )
}

/// The dependent views dropped and created again, with their owner, privileges, comments,
/// defaults, rules and triggers (when replacing in place is refused).
pub fn view_recreate_steps(src: &Source) -> Vec<Step> {
    let mut out = Vec::new();
    let mat = |v: &catalog::View| {
        if v.relkind == "m" {
            "MATERIALIZED "
        } else {
            ""
        }
    };
    for v in src.views.iter().rev() {
        out.push(
            Step::new(
                format!("DROP {}VIEW {}", mat(v), v.name),
                format!("dropping dependent view {}", v.name.human()),
            )
            .locks("ACCESS EXCLUSIVE", &v.name, true),
        );
    }
    for v in &src.views {
        let what = format!("re-creating view {}", v.name.human());
        let mut add = |sql: String| out.push(Step::new(sql, what.clone()));
        add(view_sql(v, false));
        // A materialized view's indexes (their names are free again: the old one is dropped).
        for ix in &v.indexes {
            add(ix.def.clone());
            if let Some(c) = &ix.comment {
                add(format!(
                    "COMMENT ON INDEX {} IS {}",
                    v.name.sibling(ix.name.as_str()),
                    literal(c)
                ));
            }
        }
        add(format!(
            "ALTER {}VIEW {} OWNER TO {}",
            mat(v),
            v.name,
            v.owner
        ));
        for g in &v.grants {
            add(g.sql(&v.name));
        }
        if let Some(c) = &v.comment {
            add(format!(
                "COMMENT ON {}VIEW {} IS {}",
                mat(v),
                v.name,
                literal(c)
            ));
        }
        for (col, c) in &v.column_comments {
            add(format!(
                "COMMENT ON COLUMN {}.{col} IS {}",
                v.name,
                literal(c)
            ));
        }
        for (col, d) in &v.column_defaults {
            add(format!(
                "ALTER VIEW {} ALTER COLUMN {col} SET DEFAULT {d}",
                v.name
            ));
        }
        for r in &v.rules {
            add(r.clone());
        }
        for t in &v.triggers {
            add(t.def.clone());
            if t.enabled == "D" {
                add(format!("ALTER TABLE {} DISABLE TRIGGER {}", v.name, t.name));
            }
        }
    }
    out
}
