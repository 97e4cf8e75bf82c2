//! Issue 19, "Many tables": `pg-hotswap bloat` finds a table made bloated on purpose (rows
//! inserted, 70% deleted, a plain VACUUM and ANALYZE: the pages stay) and not a fresh, freshly
//! analyzed one; `run --bloated-over 0.3` rebuilds only the bloated one (its relfilenode
//! changes and its size goes down, the fresh one's stays); `run --table a --table b` rewrites
//! both with one report, and stops at the first failure saying which tables were done.

use serde_json::Value;
use tokio_postgres::Client;

use crate::harness::{all_output, assert_exit, describe, hotswap_async, TestDb};

const ROWS: i64 = 30_000;

/// `bloated`: ROWS rows, 70% deleted, vacuumed (not FULL) and analyzed; `fresh`: ROWS rows,
/// vacuumed and analyzed.
async fn fixture(client: &Client) {
    client
        .batch_execute(&format!(
            "CREATE TABLE bloated (id int PRIMARY KEY, payload text NOT NULL);
             INSERT INTO bloated SELECT g, repeat('x', 100) FROM generate_series(1, {ROWS}) g;
             DELETE FROM bloated WHERE id % 10 < 7;
             CREATE TABLE fresh (id int PRIMARY KEY, payload text NOT NULL);
             INSERT INTO fresh SELECT g, repeat('y', 100) FROM generate_series(1, {ROWS}) g;"
        ))
        .await
        .expect("creating the tables");
    // One statement each: a multi-statement batch runs as one transaction, where VACUUM cannot.
    for sql in [
        "VACUUM bloated",
        "ANALYZE bloated",
        "VACUUM fresh",
        "ANALYZE fresh",
    ] {
        client.batch_execute(sql).await.expect(sql);
    }
}

/// relfilenode and heap size of `table`.
async fn storage(client: &Client, table: &str) -> (u32, i64) {
    let r = client
        .query_one(
            "SELECT relfilenode, pg_relation_size(oid) FROM pg_class WHERE oid = $1::text::regclass",
            &[&table],
        )
        .await
        .expect("reading the storage");
    (r.get(0), r.get(1))
}

/// `bloat --output json` with `extra` flags: table name -> row.
async fn listing(db: &TestDb, extra: &[&str]) -> serde_json::Map<String, Value> {
    let mut args = vec!["bloat", "--dsn", &db.conninfo, "--output", "json"];
    args.extend_from_slice(extra);
    let out = hotswap_async(&args).await;
    assert_exit(&out, 0);
    let rows: Vec<Value> = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("bloat's JSON: {e}\n{}", describe(&out)));
    rows.into_iter()
        .map(|r| (r["table"].as_str().unwrap_or_default().to_string(), r))
        .collect()
}

#[tokio::test]
async fn bloat_finds_the_bloated_table_and_not_the_fresh_one() {
    let db = TestDb::new("bloat_finds").await;
    let client = db.client().await;
    fixture(&client).await;

    let all = listing(&db, &[]).await;
    let ratio = |t: &str| {
        all.get(t)
            .and_then(|r| r["bloat_ratio"].as_f64())
            .unwrap_or_else(|| panic!("no estimate for {t}: {all:?}"))
    };
    assert!(ratio("\"public\".\"bloated\"") > 0.5, "{all:?}");
    assert!(ratio("\"public\".\"fresh\"") < 0.15, "{all:?}");
    assert_eq!(
        all["\"public\".\"bloated\""]["method"], "statistics",
        "{all:?}"
    );
    let bytes = all["\"public\".\"bloated\""]["bloat_bytes"]
        .as_i64()
        .unwrap_or(0);
    let size = all["\"public\".\"bloated\""]["size_bytes"]
        .as_i64()
        .unwrap_or(0);
    assert!(bytes > size / 2, "{all:?}");

    let over = listing(&db, &["--min-ratio", "0.3"]).await;
    assert!(over.contains_key("\"public\".\"bloated\""), "{over:?}");
    assert!(!over.contains_key("\"public\".\"fresh\""), "{over:?}");
    // --min-size leaves out what is smaller.
    let big = listing(&db, &["--min-size", "1GB"]).await;
    assert!(big.is_empty(), "{big:?}");

    // The text listing: table, size, ratio, bytes, method.
    let out = hotswap_async(&["bloat", "--dsn", &db.conninfo, "--min-ratio", "30%"]).await;
    assert_exit(&out, 0);
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.starts_with("\"public\".\"bloated\""))
        .unwrap_or_else(|| panic!("no line for bloated:\n{text}"));
    assert!(line.contains('%') && line.contains("statistics"), "{line}");
    assert!(!text.contains("\"public\".\"fresh\""), "{text}");

    // With pgstattuple installed, the heap is measured by pgstattuple_approx.
    if client
        .batch_execute("CREATE EXTENSION pgstattuple")
        .await
        .is_ok()
    {
        let all = listing(&db, &[]).await;
        assert_eq!(
            all["\"public\".\"bloated\""]["method"], "pgstattuple_approx",
            "{all:?}"
        );
        let r = all["\"public\".\"bloated\""]["bloat_ratio"]
            .as_f64()
            .unwrap_or(0.0);
        assert!(r > 0.5, "{all:?}");
        let f = all["\"public\".\"fresh\""]["bloat_ratio"]
            .as_f64()
            .unwrap_or(1.0);
        assert!(f < 0.15, "{all:?}");
    }
}

#[tokio::test]
async fn run_bloated_over_rebuilds_only_the_bloated_table() {
    let db = TestDb::new("bloat_run_over").await;
    let client = db.client().await;
    fixture(&client).await;
    let (bloated_node, bloated_size) = storage(&client, "\"public\".\"bloated\"").await;
    let (fresh_node, fresh_size) = storage(&client, "\"public\".\"fresh\"").await;

    let out = hotswap_async(&[
        "run",
        "--dsn",
        &db.conninfo,
        "--bloated-over",
        "0.3",
        "--drop-old",
    ])
    .await;
    assert_exit(&out, 0);
    let (node, size) = storage(&client, "\"public\".\"bloated\"").await;
    assert_ne!(
        node,
        bloated_node,
        "bloated was not rebuilt\n{}",
        describe(&out)
    );
    assert!(
        size < bloated_size / 2,
        "bloated: {bloated_size} -> {size} bytes\n{}",
        describe(&out)
    );
    assert_eq!(
        storage(&client, "\"public\".\"fresh\"").await,
        (fresh_node, fresh_size),
        "fresh was touched\n{}",
        describe(&out)
    );
    let n: i64 = client
        .query_one("SELECT count(*) FROM bloated", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, ROWS * 3 / 10);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("rewrote 1 of 1 table(s): \"public\".\"bloated\""),
        "{}",
        describe(&out)
    );
}

#[tokio::test]
async fn run_rewrites_several_tables_one_after_another() {
    let db = TestDb::new("bloat_run_many").await;
    let client = db.client().await;
    fixture(&client).await;
    let (a0, _) = storage(&client, "\"public\".\"bloated\"").await;
    let (b0, _) = storage(&client, "\"public\".\"fresh\"").await;

    let out = hotswap_async(&[
        "run",
        "--dsn",
        &db.conninfo,
        "--table",
        "bloated",
        "--table",
        "fresh",
        "--output",
        "json",
    ])
    .await;
    assert_exit(&out, 0);
    assert_ne!(
        storage(&client, "\"public\".\"bloated\"").await.0,
        a0,
        "{}",
        describe(&out)
    );
    assert_ne!(
        storage(&client, "\"public\".\"fresh\"").await.0,
        b0,
        "{}",
        describe(&out)
    );
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("run's JSON: {e}\n{}", describe(&out)));
    assert_eq!(
        report["rewritten"],
        serde_json::json!(["bloated", "fresh"]),
        "{report}"
    );
    assert_eq!(
        report["reports"].as_array().map(Vec::len),
        Some(2),
        "{report}"
    );

    // A missing table in the middle: the first is done, the rest are not, and the run says so.
    let (a1, _) = storage(&client, "public.bloated_old").await;
    let (f1, _) = storage(&client, "\"public\".\"fresh\"").await;
    let out = hotswap_async(&[
        "run",
        "--dsn",
        &db.conninfo,
        "--table",
        "bloated_old",
        "--table",
        "no_such_table",
        "--table",
        "fresh",
        "--drop-old",
    ])
    .await;
    assert_ne!(out.status.code(), Some(0), "{}", describe(&out));
    assert_ne!(
        storage(&client, "public.bloated_old").await.0,
        a1,
        "{}",
        describe(&out)
    );
    assert_eq!(
        storage(&client, "\"public\".\"fresh\"").await.0,
        f1,
        "{}",
        describe(&out)
    );
    let text = all_output(&out);
    assert!(
        text.contains("rewritten: bloated_old; not rewritten: no_such_table (failed), fresh"),
        "{}",
        describe(&out)
    );
}
