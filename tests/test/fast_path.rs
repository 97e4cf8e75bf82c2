//! Issue 16, "no rewrite when none is needed": an ALTER that PostgreSQL applies without
//! rewriting the table is applied to it in place (`src/rewrite/fastpath.rs`): the table keeps its
//! relfilenode, the result equals PostgreSQL's own ALTER on a twin, every statement waits at most
//! `--lock-timeout` and is retried (so a lock held elsewhere makes it retry, not queue), and
//! writers never fail. A mixed ALTER and `--force-rewrite` still rewrite; `plan` says which.

use std::time::{Duration, Instant};

use pg_hotswap::demo::workload::{create_tables, TableSpec};
use serde_json::Value;
use tokio_postgres::Client;

use crate::harness::{
    all_output, assert_exit, assert_matches_ledger, describe, hotswap_async, hotswap_command,
    start_load, table_arg, TestDb,
};

const SETUP: &str =
    "CREATE TABLE t (id int PRIMARY KEY, v varchar(10), n int, email text, gone int);
     CREATE INDEX t_v_idx ON t (v);
     INSERT INTO t SELECT g, 'v' || (g % 100), CASE WHEN g % 7 = 0 THEN NULL ELSE g END,
                          'user' || g || '@example.com', g FROM generate_series(1, 3000) g;
     UPDATE t SET n = 0 WHERE n IS NULL AND id > 2990;";

/// The relfilenode of `table` (changed when PostgreSQL rewrote it).
pub(crate) async fn relfilenode(client: &Client, table: &str) -> u32 {
    client
        .query_one(
            "SELECT relfilenode FROM pg_class WHERE oid = $1::text::regclass",
            &[&table],
        )
        .await
        .expect("relfilenode")
        .get(0)
}

/// The table as PostgreSQL describes it: rows as JSON text, columns (type, NOT NULL, default),
/// constraints and indexes (without the schema), for comparing with a twin in another schema.
async fn shape(client: &Client, table: &str) -> Vec<String> {
    let mut out: Vec<String> = client
        .query(
            &format!("SELECT row_to_json(x)::text FROM {table} x ORDER BY id"),
            &[],
        )
        .await
        .expect("rows")
        .iter()
        .map(|r| r.get(0))
        .collect();
    let meta = client
        .query(
            "SELECT format('column %s %s notnull=%s default=%s', a.attname, format_type(a.atttypid, a.atttypmod), \
                           a.attnotnull, pg_get_expr(d.adbin, d.adrelid)) \
               FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum \
              WHERE a.attrelid = $1::text::regclass AND a.attnum > 0 AND NOT a.attisdropped \
             UNION ALL \
             SELECT format('constraint %s %s valid=%s', conname, pg_get_constraintdef(oid), convalidated) \
               FROM pg_constraint WHERE conrelid = $1::text::regclass \
             UNION ALL \
             SELECT format('index %s valid=%s', pg_get_indexdef(indexrelid), indisvalid) \
               FROM pg_index WHERE indrelid = $1::text::regclass \
             ORDER BY 1",
            &[&table],
        )
        .await
        .expect("catalog");
    for r in meta {
        let line: String = r.get(0);
        out.push(line.replace("twin.", "").replace("public.", ""));
    }
    out.sort();
    out
}

/// Runs `pg-hotswap run --alter alter` on `t` (made by [`SETUP`]) and PostgreSQL's ALTER on a
/// twin; asserts the run took the fast path (relfilenode unchanged, said so) and both tables
/// are the same. Returns the statements the run executed.
async fn in_place_like_postgres(test: &str, alter: &str) -> Vec<String> {
    in_place_like_postgres_with(test, SETUP, alter).await
}

/// [`in_place_like_postgres`] on the table `t` that `setup` makes.
async fn in_place_like_postgres_with(test: &str, setup: &str, alter: &str) -> Vec<String> {
    let db = TestDb::new(test).await;
    let client = db.client().await;
    client.batch_execute(setup).await.expect("setup");
    client
        .batch_execute(
            "CREATE SCHEMA twin; CREATE TABLE twin.t (LIKE public.t INCLUDING ALL); \
             INSERT INTO twin.t SELECT * FROM public.t",
        )
        .await
        .expect("twin");
    let before = relfilenode(&client, "t").await;
    let out = hotswap_async(&[
        "run",
        "--dsn",
        &db.conninfo,
        "--table",
        "public.t",
        "--alter",
        alter,
        "--output",
        "json",
    ])
    .await;
    assert_exit(&out, 0);
    assert!(
        all_output(&out).contains("no rewrite needed"),
        "{}",
        describe(&out)
    );
    let json: Value = serde_json::from_slice(&out.stdout).expect("json report");
    assert!(json["in_place"].is_array(), "{json}");
    let held = json["longest_lock_ms"].as_f64().unwrap_or(0.0);
    assert!(
        held > 0.0 && held < 5_000.0,
        "ACCESS EXCLUSIVE held {held} ms: {json}"
    );
    assert_eq!(
        relfilenode(&client, "t").await,
        before,
        "the table was rewritten\n{}",
        describe(&out)
    );
    client
        .batch_execute(&format!("ALTER TABLE twin.t {alter}"))
        .await
        .expect("PostgreSQL's own ALTER on the twin");
    let (ours, theirs) = (
        shape(&client, "public.t").await,
        shape(&client, "twin.t").await,
    );
    let only_ours: Vec<_> = ours.iter().filter(|l| !theirs.contains(l)).collect();
    let only_theirs: Vec<_> = theirs.iter().filter(|l| !ours.contains(l)).collect();
    assert!(
        only_ours.is_empty() && only_theirs.is_empty(),
        "differs from PostgreSQL's ALTER:\nonly after pg-hotswap: {only_ours:#?}\nonly after ALTER TABLE: {only_theirs:#?}\n{}",
        describe(&out)
    );
    // The run is recorded, and succeeded.
    let status: String = client
        .query_one(
            "SELECT status FROM hotswap.runs ORDER BY id DESC LIMIT 1",
            &[],
        )
        .await
        .expect("run recorded")
        .get(0);
    assert_eq!(status, "succeeded");
    json["in_place"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn varchar_widening_is_applied_in_place() {
    in_place_like_postgres("fast_varchar", "ALTER COLUMN v TYPE varchar(40)").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_columns_nullable_and_with_a_constant_default_are_applied_in_place() {
    in_place_like_postgres(
        "fast_add_column",
        "ADD COLUMN note text, ADD COLUMN flags int NOT NULL DEFAULT 7",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_default_and_drop_column_are_applied_in_place() {
    in_place_like_postgres(
        "fast_default_drop",
        "ALTER COLUMN n SET DEFAULT 42, DROP COLUMN gone",
    )
    .await;
}

/// Dropping an indexed column drops its index: no index is rebuilt, so no rewrite.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_an_indexed_column_is_applied_in_place() {
    in_place_like_postgres("fast_drop_indexed", "DROP COLUMN v").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_check_is_added_not_valid_then_validated() {
    let ran = in_place_like_postgres(
        "fast_check",
        "ADD CHECK (id > 0), ADD CONSTRAINT email_has_at CHECK (email LIKE '%@%')",
    )
    .await;
    assert_eq!(
        ran.iter()
            .filter(|s| s.contains("VALIDATE CONSTRAINT"))
            .count(),
        2,
        "{ran:?}"
    );
}

/// NOT VALID checks and foreign keys change only the catalog in PostgreSQL: applied in place as
/// written, with no validation. Before, they took the full copy, with the reason "PostgreSQL
/// would check under ACCESS EXCLUSIVE" (a fresh tester, session 14).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_valid_constraints_are_applied_in_place_unvalidated() {
    let ran = in_place_like_postgres(
        "fast_not_valid",
        "ADD CONSTRAINT n_small CHECK (n < 5000) NOT VALID, ADD CHECK (id > 0) NOT VALID, \
         ADD FOREIGN KEY (n) REFERENCES t (id) NOT VALID, ADD CHECK (id < 100000)",
    )
    .await;
    assert_eq!(
        ran.iter()
            .filter(|s| s.contains("VALIDATE CONSTRAINT"))
            .count(),
        1,
        "only the CHECK without NOT VALID is validated: {ran:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_not_null_follows_a_validated_check() {
    let ran = in_place_like_postgres("fast_not_null", "ALTER COLUMN email SET NOT NULL").await;
    assert!(
        ran.iter().any(|s| s.contains("VALIDATE CONSTRAINT")),
        "SET NOT NULL was not preceded by a validated check: {ran:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_unique_builds_its_index_concurrently() {
    let ran = in_place_like_postgres(
        "fast_unique",
        "ADD UNIQUE (email), ADD CONSTRAINT v_n_unique UNIQUE (v, n)",
    )
    .await;
    assert_eq!(
        ran.iter()
            .filter(|s| s.starts_with("CREATE UNIQUE INDEX CONCURRENTLY"))
            .count(),
        2,
        "{ran:?}"
    );
}

/// A CHECK or SET NOT NULL the rows break fails like PostgreSQL's ALTER (refused by the
/// trial's sample check before anything is created), and the table is unchanged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_check_the_rows_break_fails_and_leaves_nothing() {
    let db = TestDb::new("fast_check_fails").await;
    let client = db.client().await;
    client.batch_execute(SETUP).await.expect("setup");
    for alter in [
        "ADD CONSTRAINT n_big CHECK (n > 5)",
        "ADD COLUMN note text, ALTER COLUMN n SET NOT NULL",
    ] {
        let out = hotswap_async(&[
            "run",
            "--dsn",
            &db.conninfo,
            "--table",
            "public.t",
            "--alter",
            alter,
        ])
        .await;
        assert_ne!(out.status.code(), Some(0), "{}", describe(&out));
        let left: i64 = client
            .query_one(
                "SELECT count(*) FROM pg_constraint WHERE conrelid = 'public.t'::regclass AND contype = 'c'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(left, 0, "constraints left behind\n{}", describe(&out));
        let note: i64 = client
            .query_one(
                "SELECT count(*) FROM pg_attribute WHERE attrelid = 'public.t'::regclass AND attname = 'note'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(note, 0, "{}", describe(&out));
    }
}

/// Runs `run --alter alter extra...` on a fresh `t` and returns (output, relfilenode changed).
async fn run_and_see(test: &str, alter: &str, extra: &[&str]) -> (std::process::Output, bool) {
    let db = TestDb::new(test).await;
    let client = db.client().await;
    client.batch_execute(SETUP).await.expect("setup");
    let before = relfilenode(&client, "t").await;
    let mut args = vec![
        "run",
        "--dsn",
        &db.conninfo,
        "--table",
        "public.t",
        "--alter",
        alter,
    ];
    args.extend_from_slice(extra);
    let out = hotswap_async(&args).await;
    assert_exit(&out, 0);
    let after = relfilenode(&client, "t").await;
    (out, after != before)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mixed_alter_still_rewrites() {
    let (out, rewritten) = run_and_see(
        "fast_mixed",
        "ADD COLUMN note text, ALTER COLUMN n TYPE bigint",
        &[],
    )
    .await;
    assert!(rewritten, "{}", describe(&out));
    assert!(
        all_output(&out).contains("rewrite: PostgreSQL rewrites the table"),
        "{}",
        describe(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn force_rewrite_copies_anyway() {
    let (out, rewritten) =
        run_and_see("fast_forced", "ADD COLUMN note text", &["--force-rewrite"]).await;
    assert!(rewritten, "{}", describe(&out));
    assert!(!all_output(&out).contains("no rewrite needed"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_says_no_rewrite_needed_and_lists_the_statements() {
    let db = TestDb::new("fast_plan").await;
    let client = db.client().await;
    client.batch_execute(SETUP).await.expect("setup");
    let alter = "ADD COLUMN note text, ALTER COLUMN email SET NOT NULL, ADD UNIQUE (email)";
    let base = [
        "plan",
        "--dsn",
        &db.conninfo,
        "--table",
        "public.t",
        "--alter",
        alter,
        "--observe",
        "1ms",
    ];
    let out = hotswap_async(&base).await;
    assert_exit(&out, 0);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("no rewrite needed"), "{}", describe(&out));
    assert!(
        text.contains(r#"CREATE UNIQUE INDEX CONCURRENTLY "t_email_key" ON "public"."t""#),
        "{}",
        describe(&out)
    );

    let mut args = base.to_vec();
    args.extend(["--output", "json"]);
    let out = hotswap_async(&args).await;
    assert_exit(&out, 0);
    let json: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(json["rewrite"]["needed"], false, "{json}");
    let phases = json["phases"].as_array().expect("phases");
    assert_eq!(phases.len(), 1, "{json}");
    assert_eq!(phases[0]["phase"], "in place");
    let exact: Vec<&str> = phases[0]["statements"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["exact"] == true)
        .map(|s| s["sql"].as_str().unwrap())
        .collect();
    assert_eq!(
        exact,
        [
            r#"ALTER TABLE "public"."t" ADD COLUMN note text, ADD CONSTRAINT "hotswap_not_null_0" CHECK ("email" IS NOT NULL) NOT VALID"#,
            r#"ALTER TABLE "public"."t" VALIDATE CONSTRAINT "hotswap_not_null_0""#,
            r#"CREATE UNIQUE INDEX CONCURRENTLY "t_email_key" ON "public"."t" USING btree (email)"#,
            r#"ALTER TABLE "public"."t" ALTER COLUMN "email" SET NOT NULL"#,
            r#"ALTER TABLE "public"."t" ADD CONSTRAINT "t_email_key" UNIQUE USING INDEX "t_email_key""#,
            r#"ALTER TABLE "public"."t" DROP CONSTRAINT "hotswap_not_null_0""#,
        ],
        "{json}"
    );

    // `run` executes exactly what `plan` listed.
    let out = hotswap_async(&[
        "run",
        "--dsn",
        &db.conninfo,
        "--table",
        "public.t",
        "--alter",
        alter,
        "--output",
        "json",
    ])
    .await;
    assert_exit(&out, 0);
    let report: Value = serde_json::from_slice(&out.stdout).expect("json report");
    let ran: Vec<&str> = report["in_place"]
        .as_array()
        .expect("in_place")
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert_eq!(ran, exact, "run executed other statements than plan listed");
    client
        .batch_execute("ALTER TABLE t DROP COLUMN note, DROP CONSTRAINT t_email_key, ALTER COLUMN email DROP NOT NULL")
        .await
        .expect("undoing the run");

    // --force-rewrite: the plan of a copy, and says why.
    let mut args = base.to_vec();
    args.extend(["--output", "json", "--force-rewrite"]);
    let out = hotswap_async(&args).await;
    assert_exit(&out, 0);
    let json: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(json["rewrite"]["needed"], true, "{json}");
    assert!(json["rewrite"]["reason"]
        .as_str()
        .unwrap()
        .contains("--force-rewrite"));
    // And nothing was changed by any of it.
    assert!(client
        .query_opt(
            "SELECT 1 FROM pg_attribute WHERE attrelid = 't'::regclass AND attname = 'note'",
            &[]
        )
        .await
        .unwrap()
        .is_none());
}

/// A session holds ACCESS SHARE on the table in an open transaction: the in-place ALTER (ACCESS
/// EXCLUSIVE) cannot get its lock. It must give up within --lock-timeout each time and retry,
/// so that other sessions' reads are never queued behind it for longer than that; it succeeds
/// once the holder commits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_held_elsewhere_makes_it_retry_not_queue() {
    let db = TestDb::new("fast_lock_retry").await;
    let client = db.client().await;
    client.batch_execute(SETUP).await.expect("setup");
    let holder = db.client().await;
    holder
        .batch_execute("BEGIN; LOCK TABLE t IN ACCESS SHARE MODE")
        .await
        .unwrap();
    let before = relfilenode(&client, "t").await;
    let args = [
        "run",
        "--dsn",
        &db.conninfo,
        "--table",
        "public.t",
        "--alter",
        "ADD COLUMN note text",
        "--lock-timeout",
        "100ms",
        "--max-lock-attempts",
        "40",
        "--retry-delay",
        "50ms",
    ];
    let mut cmd = hotswap_command(&args);
    cmd.env("RUST_LOG", "pg_hotswap=info");
    let child = tokio::process::Command::from(cmd)
        .kill_on_drop(true)
        .spawn()
        .expect("spawning");
    let run = tokio::spawn(async move { child.wait_with_output().await.expect("waiting") });

    // Reads by a third session while the tool tries: none waits much longer than 100 ms.
    let reader = db.client().await;
    let started = Instant::now();
    let mut worst = Duration::ZERO;
    while started.elapsed() < Duration::from_secs(3) {
        let t = Instant::now();
        reader
            .query_one("SELECT count(*) FROM t", &[])
            .await
            .unwrap();
        worst = worst.max(t.elapsed());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    holder.batch_execute("COMMIT").await.unwrap();
    let out = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("finished")
        .unwrap();
    assert_exit(&out, 0);
    assert!(
        all_output(&out).contains("will retry"),
        "no retry was logged\n{}",
        describe(&out)
    );
    assert!(
        worst < Duration::from_millis(600),
        "a read waited {worst:?} behind the tool's lock request\n{}",
        describe(&out)
    );
    assert_eq!(relfilenode(&client, "t").await, before);
    assert!(client
        .query_opt(
            "SELECT 1 FROM pg_attribute WHERE attrelid = 't'::regclass AND attname = 'note'",
            &[]
        )
        .await
        .unwrap()
        .is_some());
}

/// Found by a fresh tester: while the in-place statements waited for a lock held elsewhere,
/// `abort` was ignored (the run went on and altered the table once the lock was free, and
/// `abort` failed), and the retries said nothing without `-v`. Now each retry is said, and an
/// abort stops the run before its next attempt: nothing is applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abort_stops_the_in_place_alter_between_its_lock_attempts() {
    let db = TestDb::new("fast_abort_retrying").await;
    let client = db.client().await;
    client.batch_execute(SETUP).await.expect("setup");
    let holder = db.client().await;
    holder
        .batch_execute("BEGIN; LOCK TABLE t IN ACCESS SHARE MODE")
        .await
        .unwrap();
    let child = tokio::process::Command::from(hotswap_command(&[
        "run",
        "--dsn",
        &db.conninfo,
        "--table",
        "public.t",
        "--alter",
        "ADD COLUMN note text",
        "--lock-timeout",
        "100ms",
        "--max-lock-attempts",
        "200",
        "--retry-delay",
        "50ms",
    ]))
    .kill_on_drop(true)
    .spawn()
    .expect("spawning");
    let run = tokio::spawn(async move { child.wait_with_output().await.expect("waiting") });
    tokio::time::sleep(Duration::from_secs(2)).await;
    let conninfo = db.conninfo.clone();
    let abort = tokio::spawn(async move {
        hotswap_async(&["abort", "--dsn", &conninfo, "--table", "public.t"]).await
    });
    // The run sees the request within a second or so; the lock is free only after that.
    tokio::time::sleep(Duration::from_secs(3)).await;
    holder.batch_execute("COMMIT").await.unwrap();
    let out = abort.await.unwrap();
    assert_exit(&out, 0);
    let out = tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("the run ended")
        .unwrap();
    assert_exit(&out, 5);
    assert!(
        all_output(&out).contains("trying again"),
        "the retries were not said\n{}",
        describe(&out)
    );
    assert!(
        !has_note(&client).await,
        "altered after the abort\n{}",
        describe(&out)
    );
}

/// The same lock, never released: the run stops after its attempts with exit 4, nothing changed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_never_released_exits_4_after_its_attempts() {
    let db = TestDb::new("fast_lock_exit4").await;
    let client = db.client().await;
    client.batch_execute(SETUP).await.expect("setup");
    let holder = db.client().await;
    holder
        .batch_execute("BEGIN; LOCK TABLE t IN ACCESS SHARE MODE")
        .await
        .unwrap();
    let out = hotswap_async(&[
        "run",
        "--dsn",
        &db.conninfo,
        "--table",
        "public.t",
        "--alter",
        "ADD COLUMN note text",
        "--lock-timeout",
        "100ms",
        "--max-lock-attempts",
        "3",
        "--retry-delay",
        "50ms",
    ])
    .await;
    assert_exit(&out, 4);
    holder.batch_execute("COMMIT").await.unwrap();
    assert!(client
        .query_opt(
            "SELECT 1 FROM pg_attribute WHERE attrelid = 't'::regclass AND attname = 'note'",
            &[]
        )
        .await
        .unwrap()
        .is_none());
}

/// Under a write load, the in-place path with a validation, a SET NOT NULL and a concurrent
/// unique index: no application statement fails, the table keeps its relfilenode, and it equals
/// PostgreSQL's ALTER applied to a copy of the ledger.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_writes_no_statement_fails_and_the_result_is_postgres_alter() {
    const ROWS: i64 = 20_000;
    let db = TestDb::new("fast_under_writes").await;
    let client = db.client().await;
    let spec = TableSpec::simple("public", "accounts");
    create_tables(&client, &spec, ROWS).await.unwrap();
    client
        .batch_execute("CREATE TABLE accounts_twin (LIKE accounts INCLUDING ALL)")
        .await
        .unwrap();
    let before = relfilenode(&client, "accounts").await;
    let alter = "ADD COLUMN flags int NOT NULL DEFAULT 0, ALTER COLUMN note SET DEFAULT 'n', \
                 ADD CONSTRAINT id_positive CHECK (id > 0), ALTER COLUMN val SET NOT NULL, \
                 ADD UNIQUE (id, val)";
    let load = start_load(&db.conninfo, &spec, ROWS, 2, 300);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let table = table_arg(&spec.table);
    let out = hotswap_async(&[
        "run",
        "--dsn",
        &db.conninfo,
        "--table",
        &table,
        "--alter",
        alter,
    ])
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let report = load.stop().await;
    assert_exit(&out, 0);
    assert!(
        all_output(&out).contains("no rewrite needed"),
        "{}",
        describe(&out)
    );
    assert_eq!(
        report.error_count, 0,
        "application statements failed: {report}"
    );
    assert!(report.transactions > 0);
    assert_eq!(relfilenode(&client, "accounts").await, before);
    assert_matches_ledger(&client, &spec).await;
    client
        .batch_execute(&format!(
            "INSERT INTO accounts_twin SELECT id, val, note FROM {}; ALTER TABLE accounts_twin {alter}",
            spec.ledger
        ))
        .await
        .expect("PostgreSQL's ALTER on the ledger copy");
    let diff: i64 = client
        .query_one(
            "SELECT count(*) FROM ((SELECT * FROM accounts EXCEPT ALL SELECT * FROM accounts_twin) \
               UNION ALL (SELECT * FROM accounts_twin EXCEPT ALL SELECT * FROM accounts)) d",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(diff, 0, "rows differ from PostgreSQL's ALTER on the ledger");
    let valid: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_constraint WHERE conrelid = 'accounts'::regclass AND convalidated \
               AND conname IN ('id_positive', 'accounts_id_val_key')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(valid, 2, "{}", describe(&out));
}

/// A change of storage parameters alone needs no rewrite in PostgreSQL, but only pages written
/// later follow it: repacking the rows under it is what the rewrite is for (DESIGN.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_fillfactor_rewrites() {
    let (out, rewritten) = run_and_see("fast_fillfactor", "SET (fillfactor = 70)", &[]).await;
    assert!(rewritten, "{}", describe(&out));
    assert!(
        all_output(&out).contains("rewrite: the ALTER changes storage parameters"),
        "{}",
        describe(&out)
    );
}

/// A new collation of an indexed column: PostgreSQL keeps the table's heap but rebuilds the
/// index under ACCESS EXCLUSIVE. The clone's index relfilenode tells; the copy builds it instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_index_rebuild_takes_the_rewrite_path() {
    let (out, rewritten) = run_and_see(
        "fast_index_rebuild",
        "ALTER COLUMN v TYPE varchar(10) COLLATE \"C\"",
        &[],
    )
    .await;
    assert!(rewritten, "{}", describe(&out));
    assert!(
        all_output(&out).contains("rewrite: PostgreSQL rebuilds index t_v_idx"),
        "{}",
        describe(&out)
    );
}

/// A FOREIGN KEY is added NOT VALID and validated; a PRIMARY KEY on a nullable column gets its
/// NOT NULL from a validated check, its index concurrently, then `USING INDEX`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_key_and_a_primary_key_are_added_without_long_locks() {
    let ran = in_place_like_postgres_with(
        "fast_fk_pk",
        "CREATE TABLE p (id int PRIMARY KEY); INSERT INTO p SELECT generate_series(1, 100);
         CREATE TABLE t (id int NOT NULL UNIQUE, code int, ref int);
         INSERT INTO t SELECT g, g * 10, g % 100 + 1 FROM generate_series(1, 2000) g;",
        "ADD FOREIGN KEY (ref) REFERENCES p (id), ADD PRIMARY KEY (code)",
    )
    .await;
    let joined = ran.join("\n");
    for expect in [
        "FOREIGN KEY (ref) REFERENCES p (id) NOT VALID",
        "VALIDATE CONSTRAINT \"t_ref_fkey\"",
        "CHECK (\"code\" IS NOT NULL) NOT VALID",
        "CREATE UNIQUE INDEX CONCURRENTLY \"t_pkey\"",
        "ADD CONSTRAINT \"t_pkey\" PRIMARY KEY USING INDEX \"t_pkey\"",
    ] {
        assert!(joined.contains(expect), "{expect:?} not in\n{joined}");
    }
}

/// The schedule holds the fast path too: with `--cutover manual` the ALTER waits for
/// `pg-hotswap cutover` before touching the table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manual_cutover_holds_the_in_place_alter() {
    let db = TestDb::new("fast_manual_cutover").await;
    let client = db.client().await;
    client.batch_execute(SETUP).await.expect("setup");
    let args = [
        "run",
        "--dsn",
        &db.conninfo,
        "--table",
        "public.t",
        "--alter",
        "ADD COLUMN note text",
        "--cutover",
        "manual",
    ];
    let child = tokio::process::Command::from(hotswap_command(&args))
        .kill_on_drop(true)
        .spawn()
        .expect("spawning");
    let run = tokio::spawn(async move { child.wait_with_output().await.expect("waiting") });
    // Wait until the run is recorded, then a while more: the column must not appear.
    let started = Instant::now();
    loop {
        let recorded = client
            .query_opt("SELECT 1 FROM hotswap.runs WHERE status = 'running'", &[])
            .await
            .is_ok_and(|r| r.is_some());
        if recorded {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no run recorded"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(!has_note(&client).await, "altered before the cut-over");
    let out = hotswap_async(&["cutover", "--dsn", &db.conninfo, "--table", "public.t"]).await;
    assert_exit(&out, 0);
    let out = tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("finished after the cut-over")
        .unwrap();
    assert_exit(&out, 0);
    assert!(has_note(&client).await, "{}", describe(&out));
}

/// Found by a fresh tester: an in-place ALTER stopped while it waited for its manual cut-over
/// was continued by `resume` as a full rewrite (resume forced one), and without `--cutover` it
/// would not have waited for the operator. Now `resume` starts it over the way `run` would: in
/// place (the relfilenode kept), still waiting for `pg-hotswap cutover`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumed_in_place_alter_stays_in_place_and_waits_for_the_cut_over() {
    let db = TestDb::new("fast_resume_in_place").await;
    let client = db.client().await;
    client.batch_execute(SETUP).await.expect("setup");
    let before = relfilenode(&client, "t").await;
    let mut child = tokio::process::Command::from(hotswap_command(&[
        "run",
        "--dsn",
        &db.conninfo,
        "--table",
        "public.t",
        "--alter",
        "ADD COLUMN note text",
        "--cutover",
        "manual",
    ]))
    .kill_on_drop(true)
    .spawn()
    .expect("spawning");
    let first = waiting_for_cut_over(&client, 0).await;
    child.kill().await.expect("killing the run");
    let child = tokio::process::Command::from(hotswap_command(&[
        "resume",
        "--dsn",
        &db.conninfo,
        "--table",
        "public.t",
    ]))
    .kill_on_drop(true)
    .spawn()
    .expect("spawning");
    let resumed = tokio::spawn(async move { child.wait_with_output().await.expect("waiting") });
    waiting_for_cut_over(&client, first).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(!has_note(&client).await, "altered before the cut-over");
    let out = hotswap_async(&["cutover", "--dsn", &db.conninfo, "--table", "public.t"]).await;
    assert_exit(&out, 0);
    let out = tokio::time::timeout(Duration::from_secs(60), resumed)
        .await
        .expect("finished after the cut-over")
        .unwrap();
    assert_exit(&out, 0);
    assert!(has_note(&client).await, "{}", describe(&out));
    assert_eq!(
        relfilenode(&client, "t").await,
        before,
        "the resumed run rewrote the table\n{}",
        describe(&out)
    );
}

/// Waits (a minute at most) until a run of the database newer than run `after` waits for its
/// manual cut-over; returns its id.
async fn waiting_for_cut_over(client: &Client, after: i64) -> i64 {
    let started = Instant::now();
    loop {
        if let Ok(Some(r)) = client
            .query_opt(
                "SELECT id FROM hotswap.runs WHERE status = 'running' AND throttle LIKE '%cut-over%' AND id > $1",
                &[&after],
            )
            .await
        {
            return r.get(0);
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no run waiting for its cut-over"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn has_note(c: &Client) -> bool {
    c.query_opt(
        "SELECT 1 FROM pg_attribute WHERE attrelid = 'public.t'::regclass AND attname = 'note'",
        &[],
    )
    .await
    .unwrap()
    .is_some()
}

/// The in-place statements never get their lock (a session keeps the table locked through every
/// attempt): exit 4, and the message names that session, as the swap names its blockers (a
/// fresh tester, session 13: it said only "canceling statement due to lock timeout").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_never_granted_names_the_session_that_holds_it() {
    let db = TestDb::new("fast_lock_names_holder").await;
    let client = db.client().await;
    client.batch_execute(SETUP).await.expect("setup");
    let holder = db.client().await;
    holder
        .batch_execute("BEGIN; LOCK TABLE t IN ACCESS SHARE MODE")
        .await
        .expect("locking the table");
    let pid: i32 = holder
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .expect("reading the pid")
        .get(0);
    let out = hotswap_async(&[
        "run",
        "--dsn",
        &db.conninfo,
        "--table",
        "public.t",
        "--alter",
        "ADD COLUMN note text",
        "--lock-timeout",
        "50ms",
        "--max-lock-attempts",
        "2",
        "--retry-delay",
        "10ms",
    ])
    .await;
    assert_exit(&out, 4);
    assert!(
        all_output(&out).contains(&format!("pid {pid} holds")),
        "the holder {pid} is not named\n{}",
        describe(&out)
    );
    holder.batch_execute("COMMIT").await.expect("committing");
}

/// SET NOT NULL in place reads the table no more often than the CHECK (col IS NOT NULL) it
/// relies on: the helper check is dropped by a statement of its own. Dropped in the same ALTER
/// TABLE, it proved nothing any more and PostgreSQL scanned the whole table under ACCESS
/// EXCLUSIVE (a fresh tester, session 14: 85 ms for 1,000,000 rows). Counted by the tables'
/// `seq_scan` in `pg_stat_user_tables`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_not_null_in_place_does_not_scan_the_table_under_its_lock() {
    let db = TestDb::new("fast_not_null_no_scan").await;
    let client = db.client().await;
    client
        .batch_execute(
            "CREATE TABLE a (id int PRIMARY KEY, flag bool);
             INSERT INTO a SELECT g, true FROM generate_series(1, 2000) g;
             CREATE TABLE b (LIKE a INCLUDING ALL); INSERT INTO b SELECT * FROM a;",
        )
        .await
        .expect("setup");
    let before = seq_scans(&client).await;
    for (table, alter) in [
        ("public.a", "ADD CONSTRAINT a_flag CHECK (flag IS NOT NULL)"),
        ("public.b", "ALTER COLUMN flag SET NOT NULL"),
    ] {
        let out = hotswap_async(&[
            "run",
            "--dsn",
            &db.conninfo,
            "--table",
            table,
            "--alter",
            alter,
        ])
        .await;
        assert_exit(&out, 0);
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("no rewrite needed"),
            "{}",
            describe(&out)
        );
    }
    let after = seq_scans(&client).await;
    assert_eq!(
        after.1 - before.1,
        after.0 - before.0,
        "sequential scans of b (SET NOT NULL) against a (the CHECK alone)"
    );
}

/// `seq_scan` of tables `a` and `b`, once the tool's backends have reported their counts (as
/// they exit).
async fn seq_scans(c: &Client) -> (i64, i64) {
    tokio::time::sleep(Duration::from_millis(1500)).await;
    c.batch_execute("SELECT pg_stat_clear_snapshot()")
        .await
        .expect("clearing the statistics snapshot");
    let r = c
        .query_one(
            "SELECT (SELECT seq_scan FROM pg_stat_user_tables WHERE relid = 'a'::regclass),
                    (SELECT seq_scan FROM pg_stat_user_tables WHERE relid = 'b'::regclass)",
            &[],
        )
        .await
        .expect("reading seq_scan");
    (r.get(0), r.get(1))
}

/// `ADD UNIQUE` in place while an application transaction that wrote the table stays open
/// longer than `--lock-timeout`: `CREATE INDEX CONCURRENTLY` waits for it and is cancelled, and
/// the invalid index it leaves must be dropped before the next attempt. Before, the drop was
/// cancelled the same way, the next attempt failed on "relation t_email_key already exists",
/// and the run ended saying nothing was changed with the invalid index left behind (a fresh
/// tester, session 14). PostgreSQL's own ALTER would have waited and succeeded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unique_index_build_outwaits_a_long_write_transaction_and_leaves_no_invalid_index() {
    let db = TestDb::new("fast_unique_long_writer").await;
    let client = db.client().await;
    client.batch_execute(SETUP).await.expect("setup");
    let writer = db.client().await;
    writer
        .batch_execute("BEGIN; UPDATE t SET n = n WHERE id = 1")
        .await
        .expect("the application's write");
    let commit = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(2500)).await;
        writer.batch_execute("COMMIT").await.expect("committing");
    });
    let out = hotswap_async(&[
        "run",
        "--dsn",
        &db.conninfo,
        "--table",
        "public.t",
        "--alter",
        "ADD UNIQUE (email)",
        "--lock-timeout",
        "100ms",
        "--max-lock-attempts",
        "100",
        "--retry-delay",
        "20ms",
    ])
    .await;
    commit.await.expect("the writer");
    assert_exit(&out, 0);
    let (valid, invalid): (i64, i64) = {
        let r = client
            .query_one(
                "SELECT count(*) FILTER (WHERE i.indisvalid AND c.conname = 't_email_key'),
                        count(*) FILTER (WHERE NOT i.indisvalid)
                   FROM pg_index i LEFT JOIN pg_constraint c ON c.conindid = i.indexrelid
                  WHERE i.indrelid = 't'::regclass",
                &[],
            )
            .await
            .expect("reading the indexes");
        (r.get(0), r.get(1))
    };
    assert_eq!((valid, invalid), (1, 0), "{}", describe(&out));
}

/// The same with a transaction that never ends within the run: the run gives up with the lock
/// status, and an index it could not remove is named as left behind, never "nothing was
/// changed".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unique_index_build_that_gives_up_says_what_it_left() {
    let db = TestDb::new("fast_unique_gives_up").await;
    let client = db.client().await;
    client.batch_execute(SETUP).await.expect("setup");
    let writer = db.client().await;
    writer
        .batch_execute("BEGIN; UPDATE t SET n = n WHERE id = 1")
        .await
        .expect("the application's write");
    let out = hotswap_async(&[
        "run",
        "--dsn",
        &db.conninfo,
        "--table",
        "public.t",
        "--alter",
        "ADD UNIQUE (email)",
        "--lock-timeout",
        "50ms",
        "--max-lock-attempts",
        "3",
        "--retry-delay",
        "10ms",
    ])
    .await;
    assert_exit(&out, 4);
    let left: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_index WHERE indrelid = 't'::regclass
                AND indexrelid = 'public.t_email_key'::regclass",
            &[],
        )
        .await
        .map(|r| r.get(0))
        .unwrap_or(0);
    let text = all_output(&out);
    assert_eq!(
        left > 0,
        text.contains("drop them by hand): index t_email_key"),
        "what is left must be said\n{}",
        describe(&out)
    );
    assert!(
        left == 0 || !text.contains("nothing was changed"),
        "{}",
        describe(&out)
    );
    writer.batch_execute("COMMIT").await.expect("committing");
}

/// A run applying its ALTER in place that dies after the first transaction (a kill, a crash):
/// `abort` removes what it left half-done — the helper check, which would fail the
/// application's inserts of NULLs, and the constraint it had still to validate — and says that
/// what had committed stays, never "the table is as it was" (a fresh tester, session 14).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_after_an_in_place_run_died_removes_its_helpers_and_says_what_stays() {
    let db = TestDb::new("fast_abort_after_death").await;
    let client = db.client().await;
    client.batch_execute(SETUP).await.expect("setup");
    // The user's own constraint of a name like the helpers' is not the run's (a second fresh
    // tester: abort dropped it).
    client
        .batch_execute("ALTER TABLE t ADD CONSTRAINT hotswap_not_null_5 CHECK (id > -5)")
        .await
        .expect("the user's constraint");
    let args = [
        "run",
        "--dsn",
        &db.conninfo,
        "--table",
        "public.t",
        "--alter",
        "ADD COLUMN note text, ADD CONSTRAINT id_positive CHECK (id > 0), \
         ALTER COLUMN email SET NOT NULL",
    ];
    let out =
        crate::harness::hotswap_async_env(&args, &[("PGHOTSWAP_FAILPOINT", "in-place-unit@2")])
            .await;
    assert_eq!(
        out.status.code(),
        Some(pg_hotswap::failpoint::EXIT),
        "{}",
        describe(&out)
    );
    assert_eq!(
        check_constraints(&client).await,
        ["hotswap_not_null_0", "hotswap_not_null_5", "id_positive"],
        "the first transaction committed"
    );
    // It cannot be resumed: started over, the ALTER would meet its own first half.
    let out = hotswap_async(&["resume", "--dsn", &db.conninfo, "--table", "public.t"]).await;
    assert_exit(&out, 3);
    assert!(
        all_output(&out).contains("cannot be resumed"),
        "{}",
        describe(&out)
    );
    let out = hotswap_async(&["abort", "--dsn", &db.conninfo, "--table", "public.t"]).await;
    assert_exit(&out, 0);
    let text = all_output(&out);
    assert!(
        text.contains("stay applied") && !text.contains("is as it was"),
        "{}",
        describe(&out)
    );
    assert_eq!(
        check_constraints(&client).await,
        ["hotswap_not_null_5"],
        "{}",
        describe(&out)
    );
    client
        .execute("INSERT INTO t (id, email) VALUES (100001, NULL)", &[])
        .await
        .expect("the application inserts a NULL again");
}

/// The names of the CHECK constraints of `t`.
async fn check_constraints(c: &Client) -> Vec<String> {
    c.query(
        "SELECT conname::text FROM pg_constraint WHERE conrelid = 't'::regclass
            AND contype = 'c' ORDER BY 1",
        &[],
    )
    .await
    .expect("reading the constraints")
    .iter()
    .map(|r| r.get(0))
    .collect()
}

/// An ALTER that drops something and adds a check fails as a whole, as PostgreSQL's does: in
/// place, the DROP COLUMN committed before the check's validation failed, and the column's
/// values were lost (a fresh tester, session 14). Such an ALTER takes the copy, which applies it
/// at the swap or not at all. One row in 20,000 breaks the check, so the sample check before the
/// copy is unlikely to see it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drop_with_a_check_that_fails_loses_nothing() {
    let db = TestDb::new("fast_not_atomic").await;
    let client = db.client().await;
    client
        .batch_execute(
            "CREATE TABLE t (id int PRIMARY KEY, x int, legacy text);
             INSERT INTO t SELECT g, CASE WHEN g = 12345 THEN 7 ELSE g + 10 END, 'precious ' || g
               FROM generate_series(1, 20000) g;
             ANALYZE t;",
        )
        .await
        .expect("setup");
    let alter = "DROP COLUMN legacy, ADD CONSTRAINT x_big CHECK (x > 10)";
    let out = hotswap_async(&[
        "plan",
        "--dsn",
        &db.conninfo,
        "--table",
        "public.t",
        "--alter",
        alter,
    ])
    .await;
    assert!(
        all_output(&out).contains("in place a failed check would leave the first done"),
        "{}",
        describe(&out)
    );
    let out = hotswap_async(&[
        "run",
        "--dsn",
        &db.conninfo,
        "--table",
        "public.t",
        "--alter",
        alter,
        "--chunk-rows",
        "5000",
    ])
    .await;
    assert_ne!(out.status.code(), Some(0), "{}", describe(&out));
    let kept: i64 = client
        .query_one("SELECT count(*) FROM t WHERE legacy LIKE 'precious %'", &[])
        .await
        .expect("the column is still there")
        .get(0);
    assert_eq!(kept, 20000, "{}", describe(&out));
}

/// Additions with checks stay in place: nothing of them needs giving back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn additions_with_checks_stay_in_place() {
    in_place_like_postgres(
        "fast_additions_with_checks",
        "ADD COLUMN note text, ALTER COLUMN n SET DEFAULT 3, ADD CHECK (id > 0)",
    )
    .await;
}

/// `VALIDATE CONSTRAINT` in the ALTER runs on its own, under SHARE UPDATE EXCLUSIVE: in the
/// first transaction it scanned the table under ACCESS EXCLUSIVE (a fresh tester, session 14:
/// held 3.2 s with a slow check), while `plan` said validations do not block writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_constraint_in_the_alter_does_not_scan_under_access_exclusive() {
    let db = TestDb::new("fast_revalidate").await;
    let client = db.client().await;
    client.batch_execute(SETUP).await.expect("setup");
    client
        .batch_execute("ALTER TABLE t ADD CONSTRAINT old_nv CHECK (id >= 0) NOT VALID")
        .await
        .expect("a NOT VALID constraint");
    let out = hotswap_async(&[
        "run",
        "--dsn",
        &db.conninfo,
        "--table",
        "public.t",
        "--alter",
        "ADD COLUMN note text, VALIDATE CONSTRAINT old_nv",
        "--output",
        "json",
    ])
    .await;
    assert_exit(&out, 0);
    let json: Value = serde_json::from_slice(&out.stdout).expect("json report");
    let ran: Vec<&str> = json["in_place"]
        .as_array()
        .expect("in place")
        .iter()
        .filter_map(|s| s.as_str())
        .collect();
    assert_eq!(
        ran,
        [
            r#"ALTER TABLE "public"."t" ADD COLUMN note text"#,
            r#"ALTER TABLE "public"."t" VALIDATE CONSTRAINT "old_nv""#,
        ],
        "{}",
        describe(&out)
    );
    let valid: bool = client
        .query_one(
            "SELECT convalidated FROM pg_constraint WHERE conname = 'old_nv'",
            &[],
        )
        .await
        .expect("reading the constraint")
        .get(0);
    assert!(valid);
}
