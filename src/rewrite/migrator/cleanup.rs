//! Removing what a run created: the capture objects after a successful swap (finish), everything
//! after an abort (the source left exactly as it was), and what a run that could not start left.
//! Only objects recorded in the state's `objects` table are touched, and a table only by its oid.

use crate::db::catalog;
use crate::db::locking::{self, LockPolicy};
use crate::error::{DbContext, Error, Kind, Result, RowExt};
use crate::output::ui::say;
use crate::rewrite::capture;
use crate::rewrite::plan::Plan;
use crate::rewrite::step::{self, Step};
use crate::state::{Phase, State, UnfinishedRun};
use tokio_postgres::Client;

/// The run stopped before its swap on the operator's abort (or could not start): removes what
/// it created, and returns the error to report.
pub(super) async fn abandon(
    ctl: &Client,
    state: &State,
    oid: tokio_postgres::types::Oid,
    policy: &LockPolicy,
    table: &crate::db::ident::QualifiedName,
    e: Error,
) -> Error {
    if e.kind() != Kind::Aborted {
        return e;
    }
    let cleaned = match state.unfinished_run(ctl, oid).await {
        Ok(Some(u)) if u.phase < Phase::Finish => cleanup(ctl, state, &u, policy).await,
        Ok(_) => Ok(()),
        Err(e) => Err(e),
    };
    match cleaned {
        Ok(()) => e
            .with_state(format!(
                "everything the run created is removed; {} is as it was",
                table.human()
            ))
            .with_next("start again with `pg-hotswap run` when you want to"),
        Err(c) => e
            .with_state(format!(
                "{} is unchanged and usable, but removing the run's objects failed: {}",
                table.human(),
                c.message()
            ))
            .with_next(format!(
                "run `pg-hotswap abort --table {}` again",
                crate::output::ui::shell_word(&table.to_string())
            )),
    }
}

/// `DROP TABLE` of the old table after the swap (`--drop-old`).
pub fn drop_old_step(old: &crate::db::ident::QualifiedName) -> Step {
    Step::new(
        format!("DROP TABLE IF EXISTS {old}"),
        format!("dropping the old table {}", old.human()),
    )
    .locks("ACCESS EXCLUSIVE", old, false)
}

/// Dropping the change log and the trigger functions (the triggers are gone with the swap).
pub fn drop_capture_step(plan: &Plan) -> Step {
    Step::new(
        capture::drop_log_statement(&plan.capture),
        "removing the change log and trigger functions",
    )
}

/// Drops the log and the trigger functions (the triggers are gone with the swap).
pub(super) async fn drop_capture_objects(ctl: &Client, state: &State, plan: &Plan) -> Result<()> {
    step::exec(ctl, &drop_capture_step(plan)).await?;
    for k in ["log", "function", "trigger"] {
        state.mark_dropped(ctl, plan.run_id, k).await?;
    }
    state
        .mark_dropped_prefix(ctl, plan.run_id, capture::PARTITION_TRIGGER)
        .await?;
    Ok(())
}

/// Removes everything an unfinished run created and marks it aborted. The source is left
/// exactly as it was. If the run had already swapped, only the clean-up is completed.
pub async fn cleanup(
    ctl: &Client,
    state: &State,
    u: &UnfinishedRun,
    policy: &LockPolicy,
) -> Result<()> {
    let plan: Option<Plan> = u.plan.clone().and_then(|p| serde_json::from_value(p).ok());
    if u.phase >= Phase::Finish {
        if let Some(plan) = &plan {
            drop_capture_objects(ctl, state, plan).await?;
        }
        state.mark_dropped(ctl, u.id, "table").await?;
        state.finish(ctl, u.id, "succeeded", None).await?;
        say(&format!(
            "run {} had already swapped; completed its clean-up",
            u.id
        ));
        return Ok(());
    }
    let objects = state.live_objects(ctl, u.id).await?;
    // Triggers first, so the application stops writing the log. `objects` keys a trigger by
    // schema and name, so of a capture on several tables of one schema (a partition's
    // ancestors, a tree's partitions: issue 15) it keeps one row: the recorded plan names the
    // others, and the triggers there carry the run's own names.
    let mut triggers: Vec<(crate::db::ident::Ident, tokio_postgres::types::Oid)> = objects
        .iter()
        .filter(|(kind, _, _)| capture::is_trigger_kind(kind))
        .filter_map(|(_, name, on)| Some((name.name.clone(), (*on)?)))
        .collect();
    if let Some(plan) = &plan {
        let members = std::iter::once(plan.source_oid)
            .chain(plan.source_partitions.iter().map(|(oid, _)| *oid))
            .filter(|oid| *oid != 0);
        for oid in members {
            for t in capture::trigger_names(&plan.capture) {
                if !triggers.iter().any(|(n, o)| n == &t && *o == oid) {
                    triggers.push((t, oid));
                }
            }
        }
    }
    for (name, table_oid) in &triggers {
        let table: Option<String> = ctl
            .query_one("SELECT (SELECT $1::oid::regclass::text WHERE EXISTS (SELECT 1 FROM pg_class WHERE oid = $1))", &[table_oid])
            .await
            .ctx("looking up the table of a capture trigger")?
            .col(0, &"looking up the table of a capture trigger")?;
        if let Some(t) = table {
            locking::run_ddl(
                ctl,
                policy,
                &format!("removing capture trigger {} from {t}", name.as_str()),
                Some(*table_oid),
                &[format!("DROP TRIGGER IF EXISTS {name} ON {t}")],
            )
            .await?;
        }
    }
    // A capture trigger renamed by hand still calls the run's function: every trigger that
    // does, on any table, goes too. (Found by a fresh tester: otherwise dropping the function
    // failed after the log was gone, and every write to the table failed.)
    let functions: Vec<String> = objects
        .iter()
        .filter(|(kind, _, _)| kind == "function")
        .map(|(_, name, _)| format!("{name}()"))
        .collect();
    for (name, table_oid, table) in triggers_calling(ctl, &functions).await? {
        locking::run_ddl(
            ctl,
            policy,
            &format!("removing capture trigger {} from {table}", name.as_str()),
            Some(table_oid),
            &[format!("DROP TRIGGER IF EXISTS {name} ON {table}")],
        )
        .await?;
    }
    // Then the functions, and only then the log: while a trigger still calls a function, the
    // function stays, and so does the log it writes to.
    for kind in ["function", "log", "table"] {
        for (_, name, _) in objects.iter().filter(|(k, _, _)| k == kind) {
            match kind {
                "function" => ctl
                    .batch_execute(&format!("DROP FUNCTION IF EXISTS {name}()"))
                    .await
                    .ctx(format_args!("dropping function {}", name.human()))
                    .map_err(|e| {
                        e.with_state(format!(
                            "run {} is not removed completely: its change log {} and shadow table are left, and the table is usable",
                            u.id,
                            plan.as_ref().map(|p| p.capture.log.human()).unwrap_or_default()
                        ))
                        .with_next("run the same `pg-hotswap abort` again; if it fails the same way, drop the trigger named in the error yourself and abort again")
                    })?,
                "log" => ctl
                    .batch_execute(&format!("DROP TABLE IF EXISTS {name}"))
                    .await
                    .ctx(format_args!("dropping the change log {}", name.human()))?,
                _ => {
                    // Only the very table this run created, by oid, under whatever name it has
                    // now (renamed by hand, it is still the run's shadow); never one that only
                    // took its name, and never the table the run rewrites.
                    let Some(plan) = &plan else { continue };
                    let Some(now) = catalog::relation_name(ctl, plan.shadow_oid).await? else {
                        continue;
                    };
                    if now == plan.source {
                        continue;
                    }
                    if &now != name {
                        say(&format!(
                            "the shadow table {} was renamed to {}; dropping it by its oid",
                            name.human(),
                            now.human()
                        ));
                    }
                    drop_shadow(ctl, &now, plan.shadow_oid, u.id).await?;
                }
            }
        }
    }
    for k in ["trigger", "function", "log", "table"] {
        state.mark_dropped(ctl, u.id, k).await?;
    }
    state
        .mark_dropped_prefix(ctl, u.id, capture::PARTITION_TRIGGER)
        .await?;
    state
        .finish(ctl, u.id, "aborted", u.error.as_deref())
        .await?;
    Ok(())
}

/// Every trigger (not internal) whose function is one of `functions` (`schema.name()`, quoted;
/// a name that no longer exists is skipped): (trigger name, table oid, table as SQL).
async fn triggers_calling(
    ctl: &Client,
    functions: &[String],
) -> Result<Vec<(crate::db::ident::Ident, tokio_postgres::types::Oid, String)>> {
    let what = "looking for triggers that call the run's capture functions";
    let rows = ctl
        .query(
            "SELECT t.tgname::text, t.tgrelid, t.tgrelid::regclass::text FROM pg_catalog.pg_trigger t \
              WHERE NOT t.tgisinternal \
                AND t.tgfoid = ANY (SELECT to_regprocedure(f)::oid FROM unnest($1::text[]) f)",
            &[&functions],
        )
        .await
        .ctx(what)?;
    rows.iter()
        .map(|r| {
            Ok((
                crate::db::ident::Ident::new(r.col::<String>(0, &what)?),
                r.col(1, &what)?,
                r.col::<String>(2, &what)?,
            ))
        })
        .collect()
}

/// Drops the run's shadow `name` (oid `oid`). A statement of the run's own that still holds it
/// is cancelled first ([`cancel_own_statements_on`]): after an abort or Ctrl-C its session is
/// closed, but the server finishes a statement (an index build, a verification range) before it
/// notices, holding its lock meanwhile. The drop then waits up to [`locking::SHADOW_WAIT`] for
/// the locks: nothing of the application uses the shadow.
async fn drop_shadow(
    ctl: &Client,
    name: &crate::db::ident::QualifiedName,
    oid: tokio_postgres::types::Oid,
    run: i64,
) -> Result<()> {
    let what = format!("dropping the shadow table {}", name.human());
    cancel_own_statements_on(ctl, oid).await?;
    let r = ctl
        .batch_execute(&format!(
            "BEGIN; {}; DROP TABLE {name}; COMMIT",
            locking::local_timeout_sql(locking::SHADOW_WAIT)
        ))
        .await;
    if r.is_err() {
        let _ = ctl.batch_execute("ROLLBACK").await;
    }
    r.ctx(&what).map_err(|e| {
        e.with_state(format!(
            "run {run} is not removed completely: its capture triggers are gone, its shadow table {} and change log are left",
            name.human()
        ))
        .with_next("run the same `pg-hotswap abort` again; if it fails the same way, look in pg_stat_activity for what holds a lock on the shadow table")
    })
}

/// Cancels (`pg_cancel_backend`, not terminate) the statements still running in this tool's own
/// sessions — named `<application_name>/<role>` like the session calling this (src/db/conn.rs)
/// — that hold a lock on the relation `oid` or one of its partitions (`pg_partition_tree` lists
/// nothing for a table that is neither partitioned nor a partition): a run's shadow, which only
/// that run uses. Returns how many were cancelled. Used when the run is abandoned (abort,
/// Ctrl-C): no other session's statement is touched.
pub async fn cancel_own_statements_on(
    ctl: &Client,
    oid: tokio_postgres::types::Oid,
) -> Result<i64> {
    ctl.query_one(
        "WITH me AS (SELECT pg_catalog.split_part(pg_catalog.current_setting('application_name'), '/', 1) || '/' AS prefix) \
         SELECT count(*) FILTER (WHERE pg_catalog.pg_cancel_backend(a.pid)) \
           FROM pg_catalog.pg_stat_activity a, me \
          WHERE a.datname = pg_catalog.current_database() AND a.pid <> pg_catalog.pg_backend_pid() \
            AND a.state = 'active' \
            AND pg_catalog.left(a.application_name, pg_catalog.length(me.prefix)) = me.prefix \
            AND EXISTS (SELECT 1 FROM pg_catalog.pg_locks l \
                         WHERE l.pid = a.pid AND l.locktype = 'relation' \
                           AND (l.relation = $1 \
                                OR l.relation IN (SELECT relid FROM pg_catalog.pg_partition_tree($1::pg_catalog.oid::pg_catalog.regclass))))",
        &[&oid],
    )
    .await
    .ctx("cancelling the run's own statements on its shadow table")?
    .col(0, &"cancelling the run's own statements on its shadow table")
}
