//! Issue 17, "One lock rule": replay's batches wait for their locks under the run's own lock
//! policy, `--lock-timeout`, `--max-lock-attempts` and `--retry-delay`, like every other
//! statement of the tool (`src/db/locking.rs`). Replay used to build its own policy (30 attempts,
//! 100 ms apart), so the flags did not bound it.
//!
//! How the tests make replay wait: the run is held before its swap (`--cutover manual`), where
//! it replays the change log every half second; another session then takes a SHARE lock on the
//! change log, which every replay batch's `DELETE FROM <log>` (ROW EXCLUSIVE) conflicts with and
//! nothing else of the waiting run touches. Retries are counted in the tool's own log lines
//! (`RUST_LOG=pg_hotswap=info`, "... will retry").

use std::process::Output;
use std::time::{Duration, Instant};

use pg_hotswap::demo::workload::{create_tables, TableSpec};
use serde_json::Value;
use tokio_postgres::Client;

use crate::harness::{
    all_output, assert_exit, assert_matches_ledger, column_type, describe, hotswap_async,
    hotswap_command, table_arg, TestDb,
};

const ROWS: i64 = 5_000;

/// A table and a run of `pg-hotswap run --cutover manual` on it with `lock_flags`, started in
/// the background and waiting for the cut-over.
struct HeldRun {
    db: TestDb,
    client: Client,
    spec: TableSpec,
    table: String,
    run: tokio::task::JoinHandle<Output>,
}

impl HeldRun {
    async fn start(name: &str, lock_flags: &[&str]) -> HeldRun {
        let db = TestDb::new(name).await;
        let client = db.client().await;
        let spec = TableSpec::simple("public", name);
        create_tables(&client, &spec, ROWS).await.unwrap();
        let table = table_arg(&spec.table);
        let mut args = vec![
            "run",
            "--dsn",
            &db.conninfo,
            "--table",
            &table,
            "--alter",
            "ALTER COLUMN id TYPE bigint",
            "--cutover",
            "manual",
        ];
        args.extend_from_slice(lock_flags);
        let mut cmd = hotswap_command(&args);
        cmd.env("RUST_LOG", "pg_hotswap=info");
        let child = tokio::process::Command::from(cmd)
            .kill_on_drop(true)
            .spawn()
            .expect("spawning pg-hotswap");
        let run = tokio::spawn(async move {
            tokio::time::timeout(Duration::from_secs(180), child.wait_with_output())
                .await
                .expect("pg-hotswap did not finish within 180 s")
                .expect("waiting for pg-hotswap")
        });
        let held = HeldRun {
            db,
            client,
            spec,
            table,
            run,
        };
        held.wait_for_cutover().await;
        held
    }

    /// Waits until `status` says the run waits for the cut-over (replaying meanwhile).
    async fn wait_for_cutover(&self) {
        let started = Instant::now();
        loop {
            let out = hotswap_async(&[
                "status",
                "--dsn",
                &self.db.conninfo,
                "--table",
                &self.table,
                "--output",
                "json",
            ])
            .await;
            assert_exit(&out, 0);
            let runs: Value = serde_json::from_slice(&out.stdout)
                .unwrap_or_else(|e| panic!("status JSON: {e}\n{}", describe(&out)));
            let held_by = runs[0]["held_by"].as_str().unwrap_or_default().to_string();
            if held_by.contains("cut-over") {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(90),
                "the run never waited for the cut-over; last status: {runs:#}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// A session holding a SHARE lock on the run's change log (see the module header).
    async fn lock_the_change_log(&self) -> Client {
        let log: String = self
            .client
            .query_one(
                "SELECT format('%I.%I', schema_name, name) FROM hotswap.objects WHERE kind = 'log'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        let blocker = self.db.client().await;
        blocker
            .batch_execute(&format!("BEGIN; LOCK TABLE {log} IN SHARE MODE"))
            .await
            .unwrap();
        blocker
    }
}

/// The retries the run logged.
fn retries(out: &Output) -> usize {
    all_output(out)
        .lines()
        .filter(|l| l.contains("will retry"))
        .count()
}

/// `--max-lock-attempts 2 --retry-delay 200ms`: a replay batch that cannot get its lock is tried
/// exactly twice (one retry, after 100-300 ms), then the run stops with the lock-timeout exit
/// status, leaving the table untouched. The old fixed policy tried 30 times (about 45 s) and
/// exited 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_stops_after_max_lock_attempts() {
    let t = HeldRun::start(
        "replay_max_lock_attempts",
        &[
            "--lock-timeout",
            "100ms",
            "--max-lock-attempts",
            "2",
            "--retry-delay",
            "200ms",
        ],
    )
    .await;
    let blocker = t.lock_the_change_log().await;
    let locked = Instant::now();
    let out = t.run.await.unwrap();
    let took = locked.elapsed();
    eprintln!(
        "stopped {took:?} after the log was locked\n{}",
        describe(&out)
    );
    assert_exit(&out, 4);
    assert_eq!(
        retries(&out),
        1,
        "two attempts are one retry:\n{}",
        describe(&out)
    );
    // Two lock waits of 100 ms, one backoff of at most 300 ms, and up to half a second before
    // the next catch-up starts: far below the old policy's 30 attempts.
    assert!(took < Duration::from_secs(10), "took {took:?}");
    blocker.batch_execute("COMMIT").await.unwrap();
    assert_eq!(
        column_type(&t.client, &t.spec.table, &t.spec.id_col).await,
        "integer"
    );
    assert_matches_ledger(&t.client, &t.spec).await;
}

/// `--max-lock-attempts 5 --retry-delay 1s`: a lock held for 3 s is waited out. The backoff
/// grows from the given delay (0.5-1.5 s, 1-3 s, 2-6 s...), so at most three retries fit into
/// the 3 s (the old policy, 100 ms apart, retried at least five times); the run then swaps on
/// command.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_waits_out_a_lock_within_max_lock_attempts() {
    let t = HeldRun::start(
        "replay_waits_out_a_lock",
        &[
            "--lock-timeout",
            "100ms",
            "--max-lock-attempts",
            "5",
            "--retry-delay",
            "1s",
        ],
    )
    .await;
    let blocker = t.lock_the_change_log().await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    blocker.batch_execute("COMMIT").await.unwrap();
    let out = hotswap_async(&["cutover", "--dsn", &t.db.conninfo, "--table", &t.table]).await;
    assert_exit(&out, 0);
    let out = t.run.await.unwrap();
    eprintln!("{}", describe(&out));
    assert_exit(&out, 0);
    let n = retries(&out);
    assert!(
        (1..=3).contains(&n),
        "{n} retries in 3 s with --retry-delay 1s:\n{}",
        describe(&out)
    );
    assert_eq!(
        column_type(&t.client, &t.spec.table, &t.spec.id_col).await,
        "bigint"
    );
    assert_matches_ledger(&t.client, &t.spec).await;
}
