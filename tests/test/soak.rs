//! Soak test (issue 9), off by default: rewrite one table again and again for at least ten
//! minutes while an application role with only DML grants, under row level security, writes to
//! it without pause. After every run the table is compared with the ledger (one statement, one
//! snapshot, so the writers need not stop); at the end every figure is printed as Markdown for
//! docs/benchmarks.md ("Soak test").
//!
//! ```sh
//! cargo build --release --bin pg-hotswap
//! PGHOTSWAP_TEST_BIN=target/release/pg-hotswap \
//!   cargo test --test test soak:: -- --ignored --nocapture
//! ```
//!
//! Knobs (environment): `PGHOTSWAP_SOAK_SECS` (600), `PGHOTSWAP_SOAK_ROWS` (1,000,000),
//! `PGHOTSWAP_SOAK_WRITERS` (4), `PGHOTSWAP_SOAK_RATE` (transactions per second in all, 400).
//! Each run is a real type change, alternating `val` between `bigint` and `integer`, with
//! `--drop-old` so the disk does not fill.

use std::time::{Duration, Instant};

use pg_hotswap::db::ident::Ident;
use pg_hotswap::demo::workload::{compare, create_tables, TableSpec};

use crate::harness::{connect, describe, hotswap_async, start_load, TestDb};

fn knob<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

/// One run's figures, from its `--output json` report and the load around it.
struct RunFigures {
    secs: f64,
    rows: u64,
    replayed: u64,
    lock_held_ms: f64,
    longest_lock_ms: f64,
    lock_attempts: u64,
    writes: u64,
    errors: u64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "soak test: at least ten minutes; see the module header for the command"]
async fn soak_repeated_rewrites_under_continuous_writes() {
    let secs: u64 = knob("PGHOTSWAP_SOAK_SECS", 600);
    let rows: i64 = knob("PGHOTSWAP_SOAK_ROWS", 1_000_000);
    let writers: usize = knob("PGHOTSWAP_SOAK_WRITERS", 4);
    let rate: u32 = knob("PGHOTSWAP_SOAK_RATE", 400);

    let db = TestDb::new("soak").await;
    let admin = db.client().await;
    admin
        .batch_execute(&format!(
            "DO $$ BEGIN CREATE ROLE hsp_soak_owner LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$;
             DO $$ BEGIN CREATE ROLE hsp_soak_app LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$;
             GRANT CREATE ON DATABASE {} TO hsp_soak_owner;
             CREATE SCHEMA soak AUTHORIZATION hsp_soak_owner;",
            Ident::new(db.name.clone())
        ))
        .await
        .unwrap();
    let owner_dsn = format!("{} user=hsp_soak_owner", db.conninfo);
    let app_dsn = format!("{} user=hsp_soak_app", db.conninfo);
    let owner = connect(&owner_dsn).await;
    let spec = TableSpec::simple("soak", "items");
    create_tables(&owner, &spec, rows).await.unwrap();
    owner
        .batch_execute(
            "ALTER TABLE soak.items ENABLE ROW LEVEL SECURITY;
             CREATE POLICY app_rows ON soak.items TO hsp_soak_app USING (true) WITH CHECK (true);
             GRANT USAGE ON SCHEMA soak TO hsp_soak_app;
             GRANT SELECT, INSERT, UPDATE, DELETE ON soak.items, soak.items_ledger TO hsp_soak_app;",
        )
        .await
        .unwrap();

    let load = start_load(&app_dsn, &spec, rows, writers, rate);
    let started = Instant::now();
    let mut runs: Vec<RunFigures> = Vec::new();
    while started.elapsed() < Duration::from_secs(secs) {
        let ty = if runs.len() % 2 == 0 {
            "bigint"
        } else {
            "integer"
        };
        let alter = format!("ALTER COLUMN val TYPE {ty}");
        let (writes_before, errors_before) = (load.transactions(), load.error_count());
        let t = Instant::now();
        let out = hotswap_async(&[
            "run",
            "--dsn",
            &owner_dsn,
            "--table",
            "soak.items",
            "--alter",
            &alter,
            "--drop-old",
            "--output",
            "json",
        ])
        .await;
        let run_secs = t.elapsed().as_secs_f64();
        let (writes_after, errors_after) = (load.transactions(), load.error_count());
        assert_eq!(
            out.status.code(),
            Some(0),
            "run {} failed\n{}",
            runs.len() + 1,
            describe(&out)
        );
        let report: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("the JSON report: {e}\n{}", describe(&out)));
        let cmp = compare(&admin, &spec).await.unwrap();
        assert!(
            cmp.is_identical(),
            "run {}: writes lost: {cmp}",
            runs.len() + 1
        );
        let num = |k: &str| report[k].as_f64().unwrap_or(0.0);
        let f = RunFigures {
            secs: run_secs,
            rows: num("rows_copied") as u64,
            replayed: num("replayed_log_rows") as u64,
            lock_held_ms: num("lock_held_ms"),
            longest_lock_ms: num("longest_lock_ms"),
            lock_attempts: num("lock_attempts") as u64,
            writes: writes_after - writes_before,
            errors: errors_after - errors_before,
        };
        eprintln!(
            "soak run {}: {ty}, {:.1} s, {} rows, {} replayed, lock held {:.1} ms ({} attempts, longest {:.1} ms), {} writes, {} errors; ledger identical ({} rows)",
            runs.len() + 1,
            f.secs,
            f.rows,
            f.replayed,
            f.lock_held_ms,
            f.lock_attempts,
            f.longest_lock_ms,
            f.writes,
            f.errors,
            cmp.table_rows
        );
        runs.push(f);
    }
    let total = started.elapsed();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let report = load.stop().await;
    let cmp = compare(&admin, &spec).await.unwrap();
    assert!(cmp.is_identical(), "after the soak: {cmp}");

    let n = runs.len();
    let sum = |f: &dyn Fn(&RunFigures) -> f64| runs.iter().map(f).sum::<f64>();
    let max = |f: &dyn Fn(&RunFigures) -> f64| runs.iter().map(f).fold(0.0, f64::max);
    let mut held: Vec<f64> = runs.iter().map(|r| r.lock_held_ms).collect();
    held.sort_by(|a, b| a.total_cmp(b));
    println!("\n| run | seconds | rows copied | log rows replayed | writes during the run | lock held (ms) | lock attempts | errors |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (i, r) in runs.iter().enumerate() {
        println!(
            "| {} | {:.1} | {} | {} | {} | {:.1} | {} | {} |",
            i + 1,
            r.secs,
            r.rows,
            r.replayed,
            r.writes,
            r.lock_held_ms,
            r.lock_attempts,
            r.errors
        );
    }
    println!(
        "\nsoak: {:.0} s, {n} runs ({:.0} s of runs), {} rows copied, {} log rows replayed; \
         writes served {} ({:.0}/s), write latency p50 {:.2} ms, p99 {:.2} ms, max {:.1} ms; \
         lock held median {:.1} ms, max {:.1} ms (longest wait or hold {:.1} ms); \
         write errors {}; ledger identical after every run ({} rows at the end)",
        total.as_secs_f64(),
        sum(&|r| r.secs),
        sum(&|r| r.rows as f64) as u64,
        sum(&|r| r.replayed as f64) as u64,
        report.transactions,
        report.transactions as f64 / report.elapsed.as_secs_f64(),
        report.p50_ms(),
        report.p99_ms(),
        report.max_ms(),
        held.get(n / 2).copied().unwrap_or(0.0),
        max(&|r| r.lock_held_ms),
        max(&|r| r.longest_lock_ms),
        report.error_count,
        cmp.table_rows
    );
    assert!(n >= 2, "the soak ran only {n} runs");
    assert!(
        report.errors.is_empty(),
        "the application role saw errors: {:#?}",
        report.errors
    );
}
