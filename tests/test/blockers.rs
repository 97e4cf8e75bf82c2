//! Issue 20, "Blockers": when the swap cannot get its lock, every attempt names who blocked it
//! (pid, application, user, state, transaction age, query), from `pg_blocking_pids()` of the
//! swap's own backend while it waits (`src/db/blockers.rs`, `src/rewrite/swap/blocked.rs`);
//! `--terminate-blockers-after DURATION` ends only the blockers whose transaction is older than
//! DURATION and never the tool's own sessions; without it the run stops with exit 4, resumable,
//! nothing lost.
//!
//! The blocker is what production has: a session that read the table in a transaction and went
//! idle (`BEGIN; SELECT ... LIMIT 1;`), holding ACCESS SHARE until it ends. It conflicts with
//! nothing but the swap's ACCESS EXCLUSIVE, so the run gets as far as the swap.

use std::time::Duration;

use pg_hotswap::db::ident::Ident;
use pg_hotswap::demo::workload::{create_tables, TableSpec};
use serde_json::Value;
use tokio_postgres::Client;

use crate::harness::{
    all_output, assert_exit, assert_matches_ledger, column_type, connect, describe, hotswap_async,
    hotswap_env, start_load, table_arg, TestDb,
};

const ROWS: i64 = 5_000;

/// A session named `application_name` holding ACCESS SHARE on `table` in an idle transaction;
/// returns it and its pid.
async fn blocker(db: &TestDb, table: &str, application_name: &str) -> (Client, i32) {
    let c = connect(&db.conninfo).await;
    c.batch_execute(&format!(
        "SET application_name = '{application_name}'; BEGIN; SELECT * FROM {table} LIMIT 1"
    ))
    .await
    .unwrap();
    let pid: i32 = c
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    (c, pid)
}

/// Whether the session `pid` still exists.
async fn alive(client: &Client, pid: i32) -> bool {
    client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $1)",
            &[&pid],
        )
        .await
        .unwrap()
        .get(0)
}

/// The `detail` of the newest run's events of `kind`, oldest first.
async fn events(client: &Client, kind: &str) -> Vec<Value> {
    client
        .query(
            "SELECT detail FROM hotswap.events \
              WHERE kind = $1 AND run_id = (SELECT max(id) FROM hotswap.runs) ORDER BY id",
            &[&kind],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<_, Option<Value>>(0).unwrap_or(Value::Null))
        .collect()
}

/// The pids an event's detail names as blockers.
fn blocker_pids(detail: &Value) -> Vec<i64> {
    detail["blockers"]
        .as_array()
        .map(|a| a.iter().filter_map(|b| b["pid"].as_i64()).collect())
        .unwrap_or_default()
}

/// `run` of `table` (ALTER COLUMN id TYPE bigint) with short lock settings and `extra`.
fn run_args<'a>(db: &'a TestDb, table: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec![
        "run",
        "--dsn",
        &db.conninfo,
        "--table",
        table,
        "--alter",
        "ALTER COLUMN id TYPE bigint",
        "--lock-timeout",
        "300ms",
        "--retry-delay",
        "50ms",
        "--wait-old-snapshots",
        "off",
    ];
    a.extend_from_slice(extra);
    a
}

/// Without --terminate-blockers-after: each of the three attempts names the blocker (its pid and
/// application_name) in its line and in its event — and only it, not the writers, which queue
/// behind the swap — then the run stops with exit 4; the table is intact and takes writes, the
/// blocker is untouched; `resume --terminate-blockers-after 1s` ends it and finishes under the
/// writes with the table equal to its ledger.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocker_is_named_on_every_attempt_and_the_run_stops_with_exit_4() {
    let db = TestDb::new("blockers_named").await;
    let client = db.client().await;
    let spec = TableSpec::simple("public", "held");
    create_tables(&client, &spec, ROWS).await.unwrap();
    let table = table_arg(&spec.table);
    let load = start_load(&db.conninfo, &spec, ROWS, 2, 200);
    let (held, pid) = blocker(&db, &table, "nightly-report").await;
    let out = hotswap_async(&run_args(&db, &table, &["--max-lock-attempts", "3"])).await;
    assert_exit(&out, 4);
    let text = all_output(&out);
    for attempt in 1..=3 {
        let line = text
            .lines()
            .find(|l| l.contains(&format!("swap attempt {attempt}/3 could not get the lock")))
            .unwrap_or_else(|| panic!("no line for attempt {attempt}:\n{}", describe(&out)));
        assert!(
            line.contains(&format!("pid {pid} ")) && line.contains("\"nightly-report\""),
            "attempt {attempt} does not name the blocker (pid {pid}, nightly-report): {line}"
        );
        assert!(line.contains("idle in transaction"), "{line}");
    }
    let timeouts = events(&client, "lock_timeout").await;
    assert_eq!(timeouts.len(), 3, "{timeouts:#?}");
    for e in &timeouts {
        assert_eq!(
            blocker_pids(e),
            vec![i64::from(pid)],
            "the event must name the blocker and nobody else: {e}"
        );
        assert_eq!(e["blockers"][0]["application_name"], "nightly-report");
    }
    assert!(
        text.contains("--terminate-blockers-after"),
        "the error says what to do: {text}"
    );
    // Nothing touched: the blocker still holds its transaction, the table takes writes.
    assert!(alive(&client, pid).await);
    client
        .batch_execute("SET statement_timeout = '10s'; UPDATE held SET val = val WHERE id = 1")
        .await
        .unwrap();
    // Resumable, under the same writes: `resume` carries --terminate-blockers-after, ends the
    // blocker (still open, by now older than 1 s) and finishes with every write.
    let out = hotswap_async(&[
        "resume",
        "--dsn",
        &db.conninfo,
        "--table",
        &table,
        "--terminate-blockers-after",
        "1s",
        // The idle transaction also counts as an old snapshot, which the swap would otherwise
        // wait a minute for before its first attempt.
        "--wait-old-snapshots",
        "off",
    ])
    .await;
    assert_exit(&out, 0);
    assert!(!alive(&client, pid).await, "resume did not end the blocker");
    assert!(held.batch_execute("SELECT 1").await.is_err());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let report = load.stop().await;
    assert!(
        report.errors.is_empty(),
        "writer errors {:#?}",
        report.errors
    );
    assert_eq!(
        column_type(&client, &spec.table, &Ident::new("id")).await,
        "bigint"
    );
    assert_matches_ledger(&client, &spec).await;
}

/// With --terminate-blockers-after 2s, a blocker whose transaction is older is terminated
/// (logged as a warning and an event), and the swap goes through under writes with the table
/// equal to its ledger.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_blocker_is_terminated_and_the_swap_goes_through() {
    let db = TestDb::new("blockers_terminated").await;
    let client = db.client().await;
    let spec = TableSpec::simple("public", "stuck");
    create_tables(&client, &spec, ROWS).await.unwrap();
    let table = table_arg(&spec.table);
    let load = start_load(&db.conninfo, &spec, ROWS, 2, 200);
    let (_held, pid) = blocker(&db, &table, "forgotten psql").await;
    // Older than the threshold by the first attempt.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let out = hotswap_async(&run_args(
        &db,
        &table,
        &[
            "--max-lock-attempts",
            "10",
            "--terminate-blockers-after",
            "2s",
        ],
    ))
    .await;
    assert_exit(&out, 0);
    let text = all_output(&out);
    assert!(
        text.lines()
            .any(|l| l.contains("warning:") && l.contains(&format!("terminated pid {pid} "))),
        "no warning for the termination:\n{text}"
    );
    assert!(!alive(&client, pid).await, "the blocker is still there");
    let terminated = events(&client, "blocker_terminated").await;
    assert_eq!(terminated.len(), 1, "{terminated:#?}");
    assert_eq!(terminated[0]["blocker"]["pid"], i64::from(pid));
    assert_eq!(
        terminated[0]["blocker"]["application_name"],
        "forgotten psql"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let report = load.stop().await;
    assert!(
        report.errors.is_empty(),
        "writer errors {:#?}",
        report.errors
    );
    assert_eq!(
        column_type(&client, &spec.table, &Ident::new("id")).await,
        "bigint"
    );
    assert_matches_ledger(&client, &spec).await;
}

/// A blocker younger than --terminate-blockers-after is named but not terminated: exit 4.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocker_younger_than_the_threshold_is_not_terminated() {
    let db = TestDb::new("blockers_young").await;
    let client = db.client().await;
    let spec = TableSpec::simple("public", "young");
    create_tables(&client, &spec, ROWS).await.unwrap();
    let table = table_arg(&spec.table);
    let (held, pid) = blocker(&db, &table, "busy report").await;
    let out = hotswap_async(&run_args(
        &db,
        &table,
        &[
            "--max-lock-attempts",
            "2",
            "--terminate-blockers-after",
            "1h",
        ],
    ))
    .await;
    assert_exit(&out, 4);
    let text = all_output(&out);
    assert!(
        text.contains(&format!("not terminating pid {pid}: its transaction is")),
        "{text}"
    );
    assert!(alive(&client, pid).await, "a young blocker was terminated");
    assert!(events(&client, "blocker_terminated").await.is_empty());
    held.batch_execute("ROLLBACK").await.unwrap();
}

/// A blocker named like one of the tool's own sessions (`pg-hotswap/...`) is never terminated,
/// however old its transaction.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tools_own_sessions_are_never_terminated() {
    let db = TestDb::new("blockers_own").await;
    let client = db.client().await;
    let spec = TableSpec::simple("public", "own");
    create_tables(&client, &spec, ROWS).await.unwrap();
    let table = table_arg(&spec.table);
    let (held, pid) = blocker(&db, &table, "pg-hotswap/copy-9").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let out = hotswap_async(&run_args(
        &db,
        &table,
        &[
            "--max-lock-attempts",
            "2",
            "--terminate-blockers-after",
            "100ms",
        ],
    ))
    .await;
    assert_exit(&out, 4);
    let text = all_output(&out);
    assert!(
        text.contains(&format!(
            "not terminating pid {pid}: it is one of pg-hotswap's own"
        )),
        "{text}"
    );
    assert!(
        alive(&client, pid).await,
        "one of the tool's sessions was terminated"
    );
    held.batch_execute("ROLLBACK").await.unwrap();
}

/// "Lock-timeout diagnostics may blame wrong sessions": a session holding the *shadow* blocks
/// the swap too (it locks both tables). The old report looked only at locks on the source once
/// the attempt was over, so it named the writers' short transactions and never this session.
/// The swap is held before its lock (`PGHOTSWAP_HOLD=before-swap-lock:<file>`) while the
/// blocker opens its transaction on the shadow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocker_on_the_shadow_is_named_and_the_writers_are_not() {
    let db = TestDb::new("blockers_shadow").await;
    let client = db.client().await;
    let spec = TableSpec::simple("public", "shadowed");
    create_tables(&client, &spec, ROWS).await.unwrap();
    let table = table_arg(&spec.table);
    let load = start_load(&db.conninfo, &spec, ROWS, 2, 200);
    let hold = std::env::temp_dir().join(format!("pg-hotswap-blockers-{}", std::process::id()));
    std::fs::write(&hold, "").unwrap();
    let env = format!("before-swap-lock:{}", hold.display());
    let args = run_args(&db, &table, &["--max-lock-attempts", "2"]);
    let owned: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let run = tokio::spawn(async move {
        let a: Vec<&str> = owned.iter().map(String::as_str).collect();
        hotswap_env(&a, &[("PGHOTSWAP_HOLD", &env)]).await
    });
    // Wait for the swap phase (the run is held before its lock).
    let started = std::time::Instant::now();
    loop {
        // Until the run creates its state schema the query fails; that reads as no phase yet.
        let phase: Option<String> = client
            .query_opt(
                "SELECT phase FROM hotswap.runs ORDER BY id DESC LIMIT 1",
                &[],
            )
            .await
            .ok()
            .flatten()
            .map(|r| r.get(0));
        if phase.as_deref() == Some("swap") {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "the run never reached the swap"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (held, pid) = blocker(&db, "public.shadowed_new", "shadow peeker").await;
    std::fs::remove_file(&hold).unwrap();
    let out = run.await.unwrap();
    assert_exit(&out, 4);
    let text = all_output(&out);
    for attempt in 1..=2 {
        let line = text
            .lines()
            .find(|l| l.contains(&format!("swap attempt {attempt}/2 could not get the lock")))
            .unwrap_or_else(|| panic!("no line for attempt {attempt}:\n{}", describe(&out)));
        assert!(
            line.contains(&format!("pid {pid} ")) && line.contains("\"shadow peeker\""),
            "attempt {attempt} does not name the shadow's holder (pid {pid}): {line}"
        );
    }
    let timeouts = events(&client, "lock_timeout").await;
    assert_eq!(timeouts.len(), 2, "{}", describe(&out));
    for e in &timeouts {
        assert_eq!(
            blocker_pids(e),
            vec![i64::from(pid)],
            "the shadow's holder, and only it, blocked the swap: {e}"
        );
        let locks = e["blockers"][0]["locks"].as_str().unwrap_or_default();
        assert!(locks.contains("shadowed_new"), "{e}");
    }
    held.batch_execute("ROLLBACK").await.unwrap();
    let report = load.stop().await;
    assert!(
        report.errors.is_empty(),
        "writer errors {:#?}",
        report.errors
    );
    let out = hotswap_async(&["resume", "--dsn", &db.conninfo, "--table", &table]).await;
    assert_exit(&out, 0);
    assert_matches_ledger(&client, &spec).await;
}

/// A blocker this role may not terminate (a superuser's session, the tool running as the table's
/// owner without superuser or pg_signal_backend) is reported, not fatal: the attempts go on and
/// the run ends with exit 4 as without the option. (The owner has pg_read_all_stats, as
/// docs/privileges.md advises: without it the blocker's transaction is hidden from it, and the
/// blocker is spared for that reason, said as such.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocker_the_role_may_not_terminate_is_reported_not_fatal() {
    let db = TestDb::new("blockers_not_allowed").await;
    let admin = db.client().await;
    admin
        .batch_execute(&format!(
            "DO $$ BEGIN CREATE ROLE hsb_owner LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$;
             GRANT CREATE ON DATABASE {} TO hsb_owner;
             CREATE SCHEMA app AUTHORIZATION hsb_owner;
             GRANT pg_read_all_stats TO hsb_owner;",
            Ident::new(db.name.clone())
        ))
        .await
        .unwrap();
    // The throwaway cluster's conninfo is key=value: a later `user=` wins.
    let owner_dsn = format!("{} user=hsb_owner", db.conninfo);
    let owner = connect(&owner_dsn).await;
    let spec = TableSpec::simple("app", "guarded");
    create_tables(&owner, &spec, ROWS).await.unwrap();
    // The blocker is the superuser of the test cluster.
    let (held, pid) = blocker(&db, "app.guarded", "dba console").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let out = hotswap_async(&[
        "run",
        "--dsn",
        &owner_dsn,
        "--table",
        "app.guarded",
        "--alter",
        "ALTER COLUMN id TYPE bigint",
        "--lock-timeout",
        "300ms",
        "--retry-delay",
        "50ms",
        "--wait-old-snapshots",
        "off",
        "--max-lock-attempts",
        "2",
        "--terminate-blockers-after",
        "100ms",
    ])
    .await;
    assert_exit(&out, 4);
    let text = all_output(&out);
    assert!(
        text.contains(&format!("could not terminate pid {pid}")),
        "{}",
        describe(&out)
    );
    assert!(alive(&admin, pid).await);
    let refused = events(&admin, "blocker_not_terminated").await;
    assert_eq!(refused.len(), 1, "{refused:#?}");
    assert_eq!(refused[0]["blocker"]["pid"], i64::from(pid));
    held.batch_execute("ROLLBACK").await.unwrap();
}
