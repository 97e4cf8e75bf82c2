//! Issue 20, what already worked and is kept as a test: a database-level `statement_timeout`
//! and `idle_in_transaction_session_timeout` (which every session of the tool inherits) do not
//! disturb a run — the tool sets both to 0 in its own sessions (`src/db/conn.rs`), and its
//! statements (one copy transaction of the whole table, the index build, verification) take
//! far longer than the timeouts here.

use pg_hotswap::db::ident::Ident;
use pg_hotswap::demo::workload::{create_tables, TableSpec};

use crate::harness::{
    assert_exit, assert_matches_ledger, column_type, describe, hotswap_async, table_arg, TestDb,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_level_timeouts_do_not_disturb_a_run() {
    const ROWS: i64 = 200_000;
    let db = TestDb::new("timeouts_db_level").await;
    let client = db.client().await;
    let spec = TableSpec::simple("public", "timed");
    create_tables(&client, &spec, ROWS).await.unwrap();
    client
        .batch_execute(&format!(
            "ALTER DATABASE {0} SET statement_timeout = '50ms'; \
             ALTER DATABASE {0} SET idle_in_transaction_session_timeout = '50ms'",
            Ident::new(&db.name)
        ))
        .await
        .unwrap();
    // The settings bite: a new session's 0.2 s statement is cancelled.
    let plain = db.client().await;
    let e = plain
        .batch_execute("SELECT pg_sleep(0.2)")
        .await
        .expect_err("statement_timeout is not in effect");
    assert_eq!(
        e.code(),
        Some(&tokio_postgres::error::SqlState::QUERY_CANCELED),
        "{e}"
    );
    let t = table_arg(&spec.table);
    let out = hotswap_async(&[
        "run",
        "--dsn",
        &db.conninfo,
        "--table",
        &t,
        "--alter",
        "ALTER COLUMN id TYPE bigint",
        "--chunk-rows",
        "200000",
        "--chunk-time",
        "off",
    ])
    .await;
    assert_exit(&out, 0);
    assert_eq!(
        column_type(&client, &spec.table, &Ident::new("id")).await,
        "bigint",
        "{}",
        describe(&out)
    );
    assert_matches_ledger(&client, &spec).await;
}
