//! Change capture: the change log table, the trigger functions and the triggers on the source.
//!
//! The log records keys, not rows: for every INSERT/UPDATE/DELETE the row identity of the
//! affected row (for an UPDATE that changes the key, both old and new keys). A TRUNCATE is
//! recorded as a marker row that stops the run (replay cannot reconstruct it). The log is a
//! logged table: an unlogged one is emptied by a server crash, which would lose writes on resume.
//!
//! Invariants kept here (DESIGN.md): application roles keep writing — the log is written by a
//! SECURITY DEFINER function with a pinned `search_path`, and nothing is granted to PUBLIC;
//! the triggers are `ENABLE ALWAYS`, so writes applied by logical replication
//! (`session_replication_role = replica`) are captured too; CREATE TRIGGER takes SHARE ROW
//! EXCLUSIVE on the live table, so it runs under the lock discipline of `locking`.

use crate::error::{DbContext, Result};
use crate::ident::{dollar_quote, Ident};
use crate::locking::{self, LockPolicy};
use crate::plan::Plan;
use crate::state::State;
use tokio_postgres::Client;

/// Log column names: k1, k2... (never the source's names, which could clash with `id`).
pub fn log_key_columns(plan: &Plan) -> Vec<Ident> {
    (1..=plan.key.len())
        .map(|i| Ident::new(format!("k{i}")))
        .collect()
}

/// Creates the log table and the trigger functions (no lock on the source). `kind` prefixes
/// the object kinds recorded in `objects` ("" for the run's capture, "r" for the reverse
/// capture of a revertible run), so each set is cleaned up on its own.
pub async fn create_log(client: &mut Client, state: &State, plan: &Plan, kind: &str) -> Result<()> {
    let c = &plan.capture;
    let run = plan.run_id;
    let kcols = log_key_columns(plan);
    let col_defs: Vec<String> = kcols
        .iter()
        .zip(&plan.key)
        .map(|(k, key)| format!("{k} {}", key.source_type))
        .collect();
    let klist = crate::ident::join_idents(&kcols);
    let new_vals: Vec<String> = plan.key.iter().map(|k| format!("NEW.{}", k.name)).collect();
    let old_vals: Vec<String> = plan.key.iter().map(|k| format!("OLD.{}", k.name)).collect();
    let body = format!(
        "
BEGIN
  IF TG_OP = 'DELETE' THEN
    INSERT INTO {log} ({klist}) VALUES ({old});
  ELSE
    INSERT INTO {log} ({klist}) VALUES ({new});
    IF TG_OP = 'UPDATE' AND ({old}) IS DISTINCT FROM ({new}) THEN
      INSERT INTO {log} ({klist}) VALUES ({old});
    END IF;
  END IF;
  RETURN NULL;
END
",
        log = c.log,
        old = old_vals.join(", "),
        new = new_vals.join(", "),
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
    tx.batch_execute(&format!(
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
    ))
    .await
    .ctx(format_args!("creating the change log {}", c.log.human()))?;
    tx.commit().await.ctx("committing the change log")?;
    Ok(())
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
    let objects = state.table("objects");
    let rec = |name: &Ident| {
        format!(
            "INSERT INTO {objects} (run_id, kind, schema_name, name, on_table) VALUES ({}, 'trigger', {}, {}, {}) ON CONFLICT DO NOTHING",
            plan.run_id,
            crate::ident::literal(src.schema.as_str()),
            crate::ident::literal(name.as_str()),
            plan.source_oid
        )
    };
    let mut stmts = vec![rec(&c.trigger), rec(&c.truncate_trigger)];
    stmts.extend(trigger_statements(plan, src));
    locking::run_ddl(
        client,
        policy,
        &format!("installing the capture trigger on {}", src.human()),
        Some(plan.source_oid),
        &stmts,
    )
    .await
}

/// Statements that install `plan`'s capture triggers on `table` (for the reverse capture,
/// inside the swap, where the lock is already held).
pub fn trigger_statements(plan: &Plan, table: &crate::ident::QualifiedName) -> Vec<String> {
    let c = &plan.capture;
    vec![
        format!(
            "CREATE TRIGGER {} AFTER INSERT OR UPDATE OR DELETE ON {table} FOR EACH ROW EXECUTE FUNCTION {}()",
            c.trigger, c.function
        ),
        format!(
            "CREATE TRIGGER {} AFTER TRUNCATE ON {table} FOR EACH STATEMENT EXECUTE FUNCTION {}()",
            c.truncate_trigger, c.truncate_function
        ),
        format!("ALTER TABLE {table} ENABLE ALWAYS TRIGGER {}", c.trigger),
        format!("ALTER TABLE {table} ENABLE ALWAYS TRIGGER {}", c.truncate_trigger),
    ]
}

/// Statements that remove the triggers from the source (run inside the swap, or by abort).
pub fn drop_trigger_statements(
    plan_trigger: &Ident,
    truncate_trigger: &Ident,
    table: &crate::ident::QualifiedName,
) -> Vec<String> {
    vec![
        format!("DROP TRIGGER IF EXISTS {plan_trigger} ON {table}"),
        format!("DROP TRIGGER IF EXISTS {truncate_trigger} ON {table}"),
    ]
}

/// Number of log rows waiting to be replayed.
pub async fn backlog(client: &Client, plan: &Plan) -> Result<i64> {
    Ok(client
        .query_one(&format!("SELECT count(*) FROM {}", plan.capture.log), &[])
        .await
        .ctx("counting the change log")?
        .get(0))
}
