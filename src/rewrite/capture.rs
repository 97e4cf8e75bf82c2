//! Change capture: the change log table, the trigger functions and the triggers on the source.
//!
//! The log records keys, not rows: for every INSERT/UPDATE/DELETE the row identity of the
//! affected rows (for an UPDATE, the old and the new keys, so a key change is seen from both
//! sides). Statement-level triggers with transition tables write a statement's keys with one
//! INSERT ... SELECT: measured on 4 clients of single-row UPDATEs they cost the same as a row-level
//! trigger (0.585 against 0.589 ms a statement, 0.47-0.49 ms without a trigger), and for a
//! 100,000-row UPDATE they add 0.15-0.2 s where a row-level trigger adds 0.5-0.8 s
//! (docs/benchmarks.md, "The capture trigger's cost"). A TRUNCATE is
//! recorded as a marker row that stops the run (replay cannot reconstruct it). The log is a
//! logged table: an unlogged one is emptied by a server crash, which would lose writes on resume.
//!
//! Invariants kept here (DESIGN.md): application roles keep writing — the log is written by a
//! SECURITY DEFINER function with a pinned `search_path`, and nobody but the owner holds any
//! privilege on the log or the functions (not PUBLIC, not a role default privileges name: `acl`);
//! the triggers are `ENABLE ALWAYS`, so writes applied by logical replication
//! (`session_replication_role = replica`) are captured too; CREATE TRIGGER takes SHARE ROW
//! EXCLUSIVE on the live table, so it runs under the lock discipline of `locking`.

use crate::db::acl::Object;
use crate::db::ident::{dollar_quote, Ident};
use crate::db::locking::{self, LockPolicy};
use crate::error::{DbContext, Result, RowExt};
use crate::rewrite::plan::Plan;
use crate::rewrite::step::Step;
use crate::state::State;
use tokio_postgres::Client;

/// Log column names: k1, k2... (never the source's names, which could clash with `id`).
pub fn log_key_columns(plan: &Plan) -> Vec<Ident> {
    (1..=plan.key.len())
        .map(|i| Ident::new(format!("k{i}")))
        .collect()
}

/// The change log and its two capture functions (the run's capture, or the reverse capture of
/// a revertible run), as one step: `create_log` executes it, `plan` lists it.
pub fn log_step(plan: &Plan) -> Step {
    let c = &plan.capture;
    let kcols = log_key_columns(plan);
    let col_defs: Vec<String> = kcols
        .iter()
        .zip(&plan.key)
        .map(|(k, key)| format!("{k} {}", key.source_type))
        .collect();
    let klist = crate::db::ident::join_idents(&kcols);
    let keys = plan.key_list();
    // An UPDATE logs its old and its new keys. UNION folds the two when the source holds them
    // equal; where the shadow compares keys otherwise (citext -> text: 'A@x' and 'a@x' are one
    // key in the source, two in the shadow), both spellings must reach replay (issue 21).
    let union = if plan.key.iter().any(|k| k.equality_changes()) {
        "UNION ALL"
    } else {
        "UNION"
    };
    let body = format!(
        "
BEGIN
  IF TG_OP = 'INSERT' THEN
    INSERT INTO {log} ({klist}) SELECT {keys} FROM hotswap_new;
  ELSIF TG_OP = 'UPDATE' THEN
    INSERT INTO {log} ({klist}) SELECT {keys} FROM hotswap_new {union} SELECT {keys} FROM hotswap_old;
  ELSE
    INSERT INTO {log} ({klist}) SELECT {keys} FROM hotswap_old;
  END IF;
  RETURN NULL;
END
",
        log = c.log,
    );
    let truncate_body = format!(
        "
BEGIN
  INSERT INTO {log} (truncated) VALUES (true);
  RETURN NULL;
END
",
        log = c.log
    );
    Step::new(
        format!(
            "CREATE TABLE {log} (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, \
           truncated boolean NOT NULL DEFAULT false, {cols});
         REVOKE ALL ON {log} FROM PUBLIC;
         CREATE FUNCTION {f}() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER \
           SET search_path = pg_catalog, pg_temp AS {body};
         REVOKE ALL ON FUNCTION {f}() FROM PUBLIC;
         CREATE FUNCTION {tf}() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER \
           SET search_path = pg_catalog, pg_temp AS {tbody};
         REVOKE ALL ON FUNCTION {tf}() FROM PUBLIC",
            log = c.log,
            cols = col_defs.join(", "),
            f = c.function,
            tf = c.truncate_function,
            body = dollar_quote(&body),
            tbody = dollar_quote(&truncate_body),
        ),
        format!("creating the change log {}", c.log.human()),
    )
}

/// Creates the log table and the trigger functions (no lock on the source). `kind` prefixes
/// the object kinds recorded in `objects` ("" for the run's capture, "r" for the reverse
/// capture of a revertible run), so each set is cleaned up on its own.
pub async fn create_log(client: &mut Client, state: &State, plan: &Plan, kind: &str) -> Result<()> {
    let c = &plan.capture;
    let run = plan.run_id;
    let tx = client
        .transaction()
        .await
        .ctx("starting the capture transaction")?;
    let (log_kind, fn_kind) = (format!("{kind}log"), format!("{kind}function"));
    state
        .record_object(&tx, run, &log_kind, &c.log, None)
        .await?;
    state
        .record_object(&tx, run, &fn_kind, &c.function, None)
        .await?;
    state
        .record_object(&tx, run, &fn_kind, &c.truncate_function, None)
        .await?;
    crate::rewrite::step::exec(&tx, &log_step(plan)).await?;
    // Default privileges may have granted them to others (acl.rs).
    crate::db::acl::keep_to_owner(
        &tx,
        &[
            Object::Table(&c.log),
            Object::Function(&c.function),
            Object::Function(&c.truncate_function),
        ],
    )
    .await?;
    tx.commit().await.ctx("committing the change log")?;
    Ok(())
}

/// The `objects` kind of a capture trigger on a partition of a partitioned source (issue 15),
/// followed by the partition's oid: the objects table keys on (run, kind, schema, name), and the
/// trigger has the same name on every partition.
pub const PARTITION_TRIGGER: &str = "partition trigger";

/// Whether `kind` (of the `objects` table) is a capture trigger's, on the source or a partition.
pub fn is_trigger_kind(kind: &str) -> bool {
    kind == "trigger" || kind.starts_with(PARTITION_TRIGGER)
}

/// Installs the triggers on the source, under the lock discipline. Returns the attempts used.
pub async fn install_triggers(
    client: &Client,
    state: &State,
    plan: &Plan,
    policy: &LockPolicy,
) -> Result<u32> {
    let c = &plan.capture;
    let src = &plan.source;
    let mut members: Vec<(u32, &crate::db::ident::QualifiedName)> =
        std::iter::once((plan.source_oid, src))
            .chain(plan.source_partitions.iter().map(|(oid, n)| (*oid, n)))
            .collect();
    // Locks in the order the application takes them, the root first: a statement through a
    // parent locks it before its partitions, and the other order deadlocks with it (found by a
    // fresh tester). A partition rewritten on its own lists its ancestors, root first, in
    // `source_partitions`: they go before it.
    if plan.partition_of.is_some() {
        members.rotate_left(1);
    }
    let mut stmts = Vec::new();
    let mut triggers = Vec::new();
    for (oid, table) in members {
        // The objects table keys on (run, kind, schema, name): the same trigger names on each
        // partition are recorded as another kind.
        let kind = if oid == plan.source_oid {
            "trigger".to_string()
        } else {
            format!("{PARTITION_TRIGGER} {oid}")
        };
        for name in trigger_names(c) {
            stmts.push(state.record_object_statement(
                plan.run_id,
                &kind,
                &table.sibling(name.as_str()),
                Some(oid),
            ));
        }
        triggers.extend(trigger_steps(plan, table));
    }
    stmts.extend(triggers.iter().map(|s| s.sql.clone()));
    let attempts = locking::run_ddl(
        client,
        policy,
        &format!("installing the capture trigger on {}", src.human()),
        Some(plan.source_oid),
        &stmts,
    )
    .await?;
    crate::rewrite::step::record(&triggers);
    Ok(attempts)
}

/// The relations a capture on `plan`'s source goes on: the source, and every partition of a
/// partitioned one (a statement naming a partition fires only that partition's statement-level
/// triggers; one naming the parent, only the parent's, whose transition tables hold the rows of
/// every partition it touched — so no write is logged twice).
pub fn tree(plan: &Plan) -> Vec<&crate::db::ident::QualifiedName> {
    std::iter::once(&plan.source)
        .chain(plan.source_partitions.iter().map(|(_, n)| n))
        .collect()
}

/// [`trigger_statements`] as steps, with the lock they take on the live table.
pub fn trigger_steps(
    plan: &Plan,
    table: &crate::db::ident::QualifiedName,
) -> Vec<crate::rewrite::step::Step> {
    trigger_statements(plan, table)
        .into_iter()
        .map(|s| {
            crate::rewrite::step::Step::new(
                s,
                format!("installing the capture trigger on {}", table.human()),
            )
            .locks("SHARE ROW EXCLUSIVE", table, true)
        })
        .collect()
}

/// Statements that install `plan`'s capture triggers on `table` (for the reverse capture,
/// inside the swap, where the lock is already held).
pub fn trigger_statements(plan: &Plan, table: &crate::db::ident::QualifiedName) -> Vec<String> {
    let c = &plan.capture;
    let mut stmts = Vec::new();
    for (name, event, referencing) in statement_triggers(&c.trigger) {
        stmts.push(format!(
            "CREATE TRIGGER {name} AFTER {event} ON {table} REFERENCING {referencing} FOR EACH STATEMENT EXECUTE FUNCTION {}()",
            c.function
        ));
    }
    stmts.push(format!(
        "CREATE TRIGGER {} AFTER TRUNCATE ON {table} FOR EACH STATEMENT EXECUTE FUNCTION {}()",
        c.truncate_trigger, c.truncate_function
    ));
    for name in trigger_names(c) {
        stmts.push(format!("ALTER TABLE {table} ENABLE ALWAYS TRIGGER {name}"));
    }
    stmts
}

/// The three statement-level capture triggers derived from the plan's trigger name: (name,
/// event, REFERENCING clause).
fn statement_triggers(base: &Ident) -> [(Ident, &'static str, &'static str); 3] {
    let named = |suffix: &str| Ident::new(crate::db::ident::fit_name(base.as_str(), suffix));
    [
        (named("_i"), "INSERT", "NEW TABLE AS hotswap_new"),
        (
            named("_u"),
            "UPDATE",
            "OLD TABLE AS hotswap_old NEW TABLE AS hotswap_new",
        ),
        (named("_d"), "DELETE", "OLD TABLE AS hotswap_old"),
    ]
}

/// Every trigger a capture puts on the table.
pub fn trigger_names(c: &crate::rewrite::plan::CapturePlan) -> Vec<Ident> {
    let mut names: Vec<Ident> = statement_triggers(&c.trigger)
        .into_iter()
        .map(|t| t.0)
        .collect();
    names.push(c.truncate_trigger.clone());
    names
}

/// Statements that remove the triggers from the source (run inside the swap, or by abort).
pub fn drop_trigger_statements(
    plan_trigger: &Ident,
    truncate_trigger: &Ident,
    table: &crate::db::ident::QualifiedName,
) -> Vec<String> {
    let mut names: Vec<Ident> = statement_triggers(plan_trigger)
        .into_iter()
        .map(|t| t.0)
        .collect();
    names.push(truncate_trigger.clone());
    names
        .iter()
        .map(|n| format!("DROP TRIGGER IF EXISTS {n} ON {table}"))
        .collect()
}

/// The statement that drops a capture's log table and trigger functions (once its triggers are
/// gone).
pub fn drop_log_statement(c: &crate::rewrite::plan::CapturePlan) -> String {
    format!(
        "DROP TABLE IF EXISTS {}; DROP FUNCTION IF EXISTS {}(); DROP FUNCTION IF EXISTS {}()",
        c.log, c.function, c.truncate_function
    )
}

/// About how many log rows wait to be replayed, cheaply (from the ends of the log's key; ids
/// lost to rolled-back writes make it an over-estimate).
pub async fn backlog_estimate(
    client: &impl tokio_postgres::GenericClient,
    plan: &Plan,
) -> Result<i64> {
    crate::state::backlog_estimate_of(client, &plan.capture.log).await
}

/// Number of log rows waiting to be replayed.
pub async fn backlog(client: &Client, plan: &Plan) -> Result<i64> {
    client
        .query_one(&format!("SELECT count(*) FROM {}", plan.capture.log), &[])
        .await
        .ctx("counting the change log")?
        .col(0, &"counting the change log")
}

/// What is wrong with the run's capture triggers, one line per trigger; empty when they are
/// still the ones the run installed, untouched: every one exists, fires ALWAYS, and its `pg_trigger` row was last written by the transaction
/// that installed it (the one that recorded it in `objects` as kind `trigger`; the reverse
/// capture of a revert, recorded otherwise, is checked for presence and mode only; so is a row
/// that vacuum has frozen, whose xmin then reads as 2, after some 50 million transactions).
/// `ALTER TABLE ... DISABLE TRIGGER`
/// then `ENABLE [ALWAYS] TRIGGER` leaves the trigger looking as before but writes its row again;
/// the writes made in between (or under `session_replication_role = replica` while it fired
/// only on origin) were never logged, and swapping would lose them (found by a fresh tester).
/// Checked under the swap lock, and before an unfinished run is continued (a half-done `abort`
/// removes the triggers first).
pub async fn trigger_problems(
    tx: &impl tokio_postgres::GenericClient,
    state: &State,
    plan: &Plan,
) -> Result<Vec<String>> {
    let names: Vec<String> = trigger_names(&plan.capture)
        .iter()
        .map(|n| n.as_str().to_string())
        .collect();
    // On the source and, when it is partitioned, on each partition (issue 15).
    let mut rows = Vec::new();
    let members = std::iter::once((plan.source_oid, "trigger".to_string(), &plan.source)).chain(
        plan.source_partitions
            .iter()
            .map(|(oid, n)| (*oid, format!("{} {oid}", PARTITION_TRIGGER), n)),
    );
    // A member without its oid (0: recorded by an earlier version) cannot be looked up.
    let members: Vec<_> = members.filter(|(oid, _, _)| *oid != 0).collect();
    let tables: Vec<(u32, String)> = members.iter().map(|(o, k, _)| (*o, k.clone())).collect();
    for (oid, r) in state
        .recorded_triggers(tx, plan.run_id, &tables, &names)
        .await?
    {
        let on = match members.iter().find(|(o, _, _)| *o == oid) {
            Some((_, _, table)) if oid != plan.source_oid => format!(" on {}", table.human()),
            _ => String::new(),
        };
        rows.push((format!("{}{on}", r.name), r));
    }
    let mut problems = Vec::new();
    for (name, r) in &rows {
        match (r.enabled.as_deref(), r.same_row) {
            (None, _) => problems.push(format!("{name} is gone")),
            (Some(e), _) if e != "A" => problems.push(format!(
                "{name} fires {} instead of always",
                match e {
                    "D" => "never (disabled)",
                    "O" => "only on origin",
                    "R" => "only on replica",
                    _ => "otherwise",
                }
            )),
            (Some(_), Some(true)) => {}
            (Some(_), _) => problems.push(format!(
                "{name} was altered after it was installed (disabled and enabled again?)"
            )),
        }
    }
    Ok(problems)
}
