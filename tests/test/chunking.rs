//! Issue 4, `--chunk-time`: copy transactions that take several consecutive planned chunks.
//! Every chunk is still copied exactly once and marked done in the transaction that copied it
//! (proved by the `xmin` of its row in the state table: the id of the transaction that last
//! wrote it), the number of chunks per transaction grows when chunks are quick, and a crash in
//! the middle of the copy followed by a resume copies no chunk twice.

use std::collections::BTreeMap;
use std::time::Duration;

use pg_hotswap::demo::workload::{create_tables, TableSpec};
use tokio_postgres::Client;

use crate::harness::{
    all_output, assert_exit, assert_matches_ledger, column_type, describe, hotswap_failpoint,
    leftovers, start_load, table_arg, TestDb,
};

/// One row of `hotswap.chunks` of the newest run.
#[derive(Clone, Debug, PartialEq)]
struct ChunkRow {
    no: i32,
    unit: Option<i32>,
    /// The transaction that marked it done.
    xmin: String,
    done_at: Option<String>,
    rows: Option<i64>,
}

async fn chunk_rows(client: &Client) -> Vec<ChunkRow> {
    client
        .query(
            "SELECT chunk_no, unit, xmin::text, done_at::text, rows FROM hotswap.chunks \
              WHERE run_id = (SELECT max(id) FROM hotswap.runs) ORDER BY chunk_no",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| ChunkRow {
            no: r.get(0),
            unit: r.get(1),
            xmin: r.get(2),
            done_at: r.get(3),
            rows: r.get(4),
        })
        .collect()
}

/// The copy transactions, from the chunks table: first chunk -> its chunks. Checks on the way
/// that each unit is a run of consecutive chunks starting at its first chunk, committed by one
/// transaction (one xmin, one done_at) that no other unit shares, with the unit's rows recorded
/// on its first chunk only.
fn units(chunks: &[ChunkRow]) -> BTreeMap<i32, Vec<ChunkRow>> {
    let mut units: BTreeMap<i32, Vec<ChunkRow>> = BTreeMap::new();
    for c in chunks.iter().filter(|c| c.done_at.is_some()) {
        let u = c
            .unit
            .unwrap_or_else(|| panic!("chunk {} is done but has no unit", c.no));
        units.entry(u).or_default().push(c.clone());
    }
    let mut xmins = BTreeMap::new();
    for (first, cs) in &units {
        let nos: Vec<i32> = cs.iter().map(|c| c.no).collect();
        let expected: Vec<i32> = (*first..*first + cs.len() as i32).collect();
        assert_eq!(
            nos, expected,
            "unit {first} is not a run of consecutive chunks"
        );
        assert!(
            cs.iter()
                .all(|c| c.xmin == cs[0].xmin && c.done_at == cs[0].done_at),
            "the chunks of unit {first} were not marked done by one transaction: {cs:#?}"
        );
        assert!(cs[0].rows.is_some(), "unit {first} has no row count");
        assert!(
            cs[1..].iter().all(|c| c.rows.is_none()),
            "unit {first}: rows recorded on more than its first chunk"
        );
        if let Some(other) = xmins.insert(cs[0].xmin.clone(), *first) {
            panic!("units {other} and {first} were committed by one transaction");
        }
    }
    units
}

/// With one job and a chunk time no chunk of this table comes near, the number of chunks per
/// transaction grows fourfold from one, up to what is left: 1, 4, 16, 39 of 60 chunks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunks_per_transaction_grow_when_chunks_are_quick() {
    const ROWS: i64 = 30_000;
    let db = TestDb::new("chunks_per_transaction_grow").await;
    let client = db.client().await;
    let spec = TableSpec::simple("public", "grow");
    create_tables(&client, &spec, ROWS).await.unwrap();
    let out = hotswap_failpoint(
        &[
            "run",
            "--dsn",
            &db.conninfo,
            "--table",
            "public.grow",
            "--alter",
            "ALTER COLUMN id TYPE bigint",
            "--chunk-rows",
            "500",
            "--chunk-time",
            "60s",
        ],
        None,
    )
    .await;
    eprintln!("{}", describe(&out));
    assert_exit(&out, 0);
    let chunks = chunk_rows(&client).await;
    assert_eq!(chunks.len(), 60, "the plan was not 60 chunks of 500 rows");
    assert!(chunks.iter().all(|c| c.done_at.is_some()));
    let sizes: Vec<usize> = units(&chunks).values().map(Vec::len).collect();
    assert_eq!(sizes, vec![1, 4, 16, 39]);
    let copied: i64 = chunks.iter().filter_map(|c| c.rows).sum();
    assert_eq!(copied, ROWS);
    assert_matches_ledger(&client, &spec).await;

    // With --chunk-time off, one chunk per transaction, as before.
    let spec = TableSpec::simple("public", "fixed");
    create_tables(&client, &spec, ROWS).await.unwrap();
    let out = hotswap_failpoint(
        &[
            "run",
            "--dsn",
            &db.conninfo,
            "--table",
            "public.fixed",
            "--chunk-rows",
            "5000",
            "--chunk-time",
            "off",
        ],
        None,
    )
    .await;
    assert_exit(&out, 0);
    let chunks = chunk_rows(&client).await;
    let sizes: Vec<usize> = units(&chunks).values().map(Vec::len).collect();
    assert_eq!(sizes, vec![1; chunks.len()]);
    assert_matches_ledger(&client, &spec).await;
}

/// Two jobs sharing the queue, under a write load, on a table whose names need quoting: every
/// chunk is copied once by exactly one transaction, and the result equals the ledger.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grouped_chunks_copy_everything_exactly_once_under_writes() {
    const ROWS: i64 = 60_000;
    let db = TestDb::new("grouped_chunks_exactly_once").await;
    let client = db.client().await;
    let spec = TableSpec::simple("App", "Weird \"Name\" tbl");
    create_tables(&client, &spec, ROWS).await.unwrap();
    let load = start_load(&db.conninfo, &spec, ROWS, 2, 300);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let table = table_arg(&spec.table);
    let out = hotswap_failpoint(
        &[
            "run",
            "--dsn",
            &db.conninfo,
            "--table",
            &table,
            "--alter",
            "ALTER COLUMN id TYPE bigint",
            "--chunk-rows",
            "1000",
            "--jobs",
            "2",
            "--chunk-time",
            "1s",
        ],
        None,
    )
    .await;
    eprintln!("{}", describe(&out));
    assert_exit(&out, 0);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let report = load.stop().await;
    assert!(
        report.errors.is_empty(),
        "writer errors {:#?}",
        report.errors
    );
    let chunks = chunk_rows(&client).await;
    assert!(chunks.len() >= 50, "only {} chunks planned", chunks.len());
    assert!(
        chunks.iter().all(|c| c.done_at.is_some()),
        "chunks left undone"
    );
    let units = units(&chunks);
    assert!(
        units.len() < chunks.len(),
        "every chunk had its own transaction: {} units for {} chunks",
        units.len(),
        chunks.len()
    );
    assert_eq!(
        units[&0].len(),
        1,
        "the first transaction took more than one chunk"
    );
    assert_eq!(
        column_type(&client, &spec.table, &spec.id_col).await,
        "bigint"
    );
    assert_matches_ledger(&client, &spec).await;
    let left = leftovers(&client, &spec.table, "hotswap").await;
    assert!(left.is_empty(), "left {left:#?}");
}

/// The process dies right after its third copy transaction commits; `resume` copies the rest,
/// and every chunk committed before the crash keeps the transaction that copied it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_between_grouped_transactions_then_resume_copies_no_chunk_twice() {
    const ROWS: i64 = 60_000;
    let db = TestDb::new("crash_between_grouped").await;
    let client = db.client().await;
    let spec = TableSpec::simple("public", "crashgroup");
    create_tables(&client, &spec, ROWS).await.unwrap();
    let load = start_load(&db.conninfo, &spec, ROWS, 2, 300);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let args = [
        "run",
        "--dsn",
        &db.conninfo,
        "--table",
        "public.crashgroup",
        "--alter",
        "ALTER COLUMN id TYPE bigint",
        "--chunk-rows",
        "1000",
        "--jobs",
        "2",
        "--chunk-time",
        "60s",
    ];
    let out = hotswap_failpoint(&args, Some("copy-chunk@3")).await;
    assert_eq!(
        out.status.code(),
        Some(pg_hotswap::failpoint::EXIT),
        "the failpoint was not reached:\n{}",
        describe(&out)
    );
    let before = chunk_rows(&client).await;
    let done_before: Vec<ChunkRow> = before
        .iter()
        .filter(|c| c.done_at.is_some())
        .cloned()
        .collect();
    assert!(
        !done_before.is_empty() && done_before.len() < before.len(),
        "{} of {} chunks done at the crash",
        done_before.len(),
        before.len()
    );
    assert!(units(&before).len() >= 3);

    let out = hotswap_failpoint(
        &[
            "resume",
            "--dsn",
            &db.conninfo,
            "--table",
            "public.crashgroup",
            "--jobs",
            "2",
        ],
        None,
    )
    .await;
    eprintln!("{}", describe(&out));
    assert_exit(&out, 0);
    assert!(all_output(&out).contains("continuing run"));
    let after = chunk_rows(&client).await;
    assert!(after.iter().all(|c| c.done_at.is_some()));
    for c in &done_before {
        let now = after.iter().find(|a| a.no == c.no).unwrap();
        assert_eq!(now, c, "chunk {} was copied again after the resume", c.no);
    }
    // The resumed run's units never straddle a chunk done before the crash.
    let units_after = units(&after);
    let old: Vec<i32> = done_before.iter().map(|c| c.no).collect();
    for (first, cs) in &units_after {
        let mixed = cs.iter().any(|c| old.contains(&c.no)) && !old.contains(first);
        assert!(!mixed, "unit {first} mixes chunks of both runs");
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let report = load.stop().await;
    assert!(
        report.errors.is_empty(),
        "writer errors {:#?}",
        report.errors
    );
    assert_eq!(
        column_type(&client, &spec.table, &spec.id_col).await,
        "bigint"
    );
    assert_matches_ledger(&client, &spec).await;
}

/// A table never analyzed (no histogram, no row estimate) with sparse integer keys: the chunks
/// follow the rows, not the span of key values (the scenario corpus planned 83,337 chunks for
/// a 600-row table whose newest ids start at 1,000,001, and the run took minutes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sparse_keys_of_a_table_never_analyzed_make_few_chunks() {
    let db = TestDb::new("chunks_never_analyzed").await;
    let client = db.client().await;
    client
        .batch_execute(
            "CREATE TABLE t (id int PRIMARY KEY, v text) WITH (autovacuum_enabled = off);
             INSERT INTO t SELECT g, 'v' FROM generate_series(1, 600) g;
             INSERT INTO t SELECT g, 'w' FROM generate_series(1000001, 1000050) g;",
        )
        .await
        .unwrap();
    let out = crate::harness::hotswap_async(&[
        "run",
        "--dsn",
        &db.conninfo,
        "--table",
        "public.t",
        "--chunk-rows",
        "12",
        "--chunk-time",
        "off",
    ])
    .await;
    assert_exit(&out, 0);
    let (chunks, rows): (i64, i64) = client
        .query_one(
            "SELECT count(*), sum(rows)::int8 FROM hotswap.chunks WHERE run_id = (SELECT max(id) FROM hotswap.runs)",
            &[],
        )
        .await
        .map(|r| (r.get(0), r.get(1)))
        .unwrap();
    assert_eq!(rows, 650, "every row copied once");
    assert!(
        (50..=70).contains(&chunks),
        "{chunks} chunks for 650 rows of 12 per chunk\n{}",
        describe(&out)
    );
}
