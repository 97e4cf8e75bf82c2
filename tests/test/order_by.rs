//! Issue 19, "Online CLUSTER": `--order-by` writes the new table's rows in the order of an
//! index or of columns, and the report says how well ordered the result is. Checked with
//! PostgreSQL's own measure, `pg_stats.correlation` of the column after ANALYZE.

use tokio_postgres::Client;

use crate::harness::{all_output, assert_exit, hotswap_async, TestDb};

/// `correlation` of `t.k` after a fresh ANALYZE.
async fn correlation(client: &Client) -> f32 {
    client.batch_execute("ANALYZE t").await.expect("analyze");
    client
        .query_one(
            "SELECT correlation FROM pg_stats WHERE schemaname = 'public' AND tablename = 't' AND attname = 'k'",
            &[],
        )
        .await
        .expect("pg_stats of t.k")
        .get(0)
}

/// A table whose `k` has no relation to where its rows are (20,000 rows, k a permutation).
async fn scattered(name: &str) -> (TestDb, Client) {
    let db = TestDb::new(name).await;
    let client = db.client().await;
    client
        .batch_execute(
            "CREATE TABLE t (id int PRIMARY KEY, k int NOT NULL, pad text);
             INSERT INTO t SELECT g, (g * 7919) % 20011, repeat('x', 40) FROM generate_series(1, 20000) g;
             CREATE INDEX t_k_idx ON t (k);",
        )
        .await
        .expect("setup");
    (db, client)
}

async fn run(db: &TestDb, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "run",
        "--dsn",
        &db.conninfo,
        "--table",
        "public.t",
        "--chunk-rows",
        "1000",
        "--jobs",
        "2",
    ];
    args.extend_from_slice(extra);
    hotswap_async(&args).await
}

#[tokio::test]
async fn order_by_columns_orders_the_new_table() {
    let (db, client) = scattered("order_by_columns").await;
    let before = correlation(&client).await;
    assert!(before.abs() < 0.2, "k should start unordered: {before}");
    let out = run(
        &db,
        &[
            "--order-by",
            "k",
            "--alter",
            "ALTER COLUMN pad TYPE varchar(50)",
        ],
    )
    .await;
    assert_exit(&out, 0);
    let after = correlation(&client).await;
    assert!(after > 0.99, "correlation after --order-by k: {after}");
    assert!(
        all_output(&out).contains("--order-by: correlation of k"),
        "{}",
        all_output(&out)
    );
    // The temporary index is gone; the table's own indexes are there.
    let n: i64 = client
        .query_one("SELECT count(*) FROM pg_indexes WHERE tablename = 't'", &[])
        .await
        .expect("indexes")
        .get(0);
    assert_eq!(n, 2);
}

#[tokio::test]
async fn order_by_an_index_orders_the_new_table() {
    let (db, client) = scattered("order_by_index").await;
    let out = run(&db, &["--order-by", "t_k_idx"]).await;
    assert_exit(&out, 0);
    let after = correlation(&client).await;
    assert!(
        after > 0.99,
        "correlation after --order-by t_k_idx: {after}"
    );
}

#[tokio::test]
async fn order_by_nothing_known_is_refused_before_anything_is_created() {
    let (db, client) = scattered("order_by_unknown").await;
    let out = run(&db, &["--order-by", "nope"]).await;
    assert_exit(&out, 2);
    assert!(
        all_output(&out).contains("no index or column named"),
        "{}",
        all_output(&out)
    );
    let schema: Option<String> = client
        .query_one("SELECT to_regnamespace('hotswap')::text", &[])
        .await
        .expect("schema")
        .get(0);
    assert_eq!(schema, None);
}
