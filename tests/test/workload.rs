//! The workload and its ledger (`pg_hotswap::demo::workload`) checked without the tool: the writers
//! keep table and ledger equal, survive a table swap with a type change done by hand, and
//! `compare` sees a divergence. So when an end-to-end test finds a lost write, the tool lost it.

use std::time::Duration;

use pg_hotswap::demo::workload::{self, compare, create_tables, OpKind, TableSpec, WorkloadConfig};

use crate::harness::{column_type, TestDb};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writers_keep_table_and_ledger_equal() {
    let db = TestDb::new("workload_equal").await;
    let client = db.client().await;
    let spec = TableSpec::simple("public", "items");
    create_tables(&client, &spec, 5_000).await.unwrap();
    let load = workload::start(WorkloadConfig {
        conninfo: db.conninfo.clone(),
        spec: spec.clone(),
        writers: 3,
        max_rate_per_sec: None,
        initial_rows: 5_000,
    });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let report = load.stop().await;
    eprintln!("workload: {report}");
    assert!(report.errors.is_empty(), "errors: {:#?}", report.errors);
    assert!(report.transactions > 100, "{report}");
    for kind in OpKind::ALL {
        assert!(
            report.by_kind.get(&kind).copied().unwrap_or(0) > 0,
            "no {kind} transaction: {report}"
        );
    }
    let cmp = compare(&client, &spec).await.unwrap();
    assert!(cmp.is_identical(), "{cmp}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_is_respected() {
    let db = TestDb::new("workload_rate").await;
    let client = db.client().await;
    let spec = TableSpec::simple("public", "items");
    create_tables(&client, &spec, 1_000).await.unwrap();
    let load = workload::start(WorkloadConfig {
        conninfo: db.conninfo.clone(),
        spec: spec.clone(),
        writers: 2,
        max_rate_per_sec: Some(100),
        initial_rows: 1_000,
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    let report = load.stop().await;
    assert!(report.errors.is_empty(), "errors: {:#?}", report.errors);
    // 100/s for ~1 s, plus the first tick of each writer.
    assert!(
        (20..=140).contains(&report.transactions),
        "rate 100/s ran {report}"
    );
}

/// Does by hand what the engine does at the swap (rename the table away, put a rewritten copy
/// with a bigint key under the same name) while the writers run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writers_survive_a_swap_with_type_change() {
    let db = TestDb::new("workload_swap").await;
    let client = db.client().await;
    let spec = TableSpec::simple("public", "items");
    create_tables(&client, &spec, 5_000).await.unwrap();
    let load = workload::start(WorkloadConfig {
        conninfo: db.conninfo.clone(),
        spec: spec.clone(),
        writers: 3,
        max_rate_per_sec: Some(600),
        initial_rows: 5_000,
    });
    tokio::time::sleep(Duration::from_millis(700)).await;
    client
        .batch_execute(
            "BEGIN;
             LOCK TABLE items IN ACCESS EXCLUSIVE MODE;
             CREATE TABLE items_new (LIKE items INCLUDING ALL);
             ALTER TABLE items_new ALTER COLUMN id TYPE bigint;
             INSERT INTO items_new SELECT * FROM items;
             ALTER TABLE items RENAME TO items_old;
             ALTER TABLE items_new RENAME TO items;
             COMMIT",
        )
        .await
        .unwrap();
    let at_swap = load.transactions();
    tokio::time::sleep(Duration::from_millis(700)).await;
    let after_swap = load.transactions() - at_swap;
    let report = load.stop().await;
    eprintln!("workload: {report}");
    assert!(report.errors.is_empty(), "errors: {:#?}", report.errors);
    assert!(after_swap > 10, "writers stalled after the swap: {report}");
    assert_eq!(
        column_type(&client, &spec.table, &spec.id_col).await,
        "bigint"
    );
    let cmp = compare(&client, &spec).await.unwrap();
    assert!(cmp.is_identical(), "{cmp}");
}

#[tokio::test]
async fn compare_reports_divergence_both_ways() {
    let db = TestDb::new("workload_compare").await;
    let client = db.client().await;
    let spec = TableSpec::simple("public", "items");
    create_tables(&client, &spec, 100).await.unwrap();
    let cmp = compare(&client, &spec).await.unwrap();
    assert!(cmp.is_identical(), "{cmp}");
    assert_eq!(cmp.table_rows, 100);
    client
        .batch_execute(
            "UPDATE items SET val = -1 WHERE id = 5;
             DELETE FROM items_ledger WHERE id = 7;",
        )
        .await
        .unwrap();
    let cmp = compare(&client, &spec).await.unwrap();
    assert!(!cmp.is_identical());
    assert_eq!((cmp.table_rows, cmp.ledger_rows), (100, 99));
    assert_eq!((cmp.only_in_table, cmp.only_in_ledger), (2, 1), "{cmp}");
    assert!(cmp.sample_only_in_table[0].starts_with("(5,-1,"), "{cmp}");
    assert!(cmp.sample_only_in_table[1].starts_with("(7,7,"), "{cmp}");
    assert!(cmp.sample_only_in_ledger[0].starts_with("(5,5,"), "{cmp}");
}
