//! Issue 20: riding out transient faults. The run's sessions are terminated (as an
//! administrator's `pg_terminate_backend`, a pooler restart or a network blip would end them)
//! once in each phase — copy, build, replay, verify, the swap's transaction — under a write
//! load; the run reconnects, redoes the unit it lost, finishes by itself (exit 0), and the table
//! equals the ledger. A fault that persists stops the run (exit 1, resumable) and `resume`
//! finishes it. The moment is made deterministic by a hold point (`PGHOTSWAP_HOLD`, see
//! src/failpoint.rs): the run waits inside the unit of work, the test cuts its sessions off,
//! then lets it go on. The same hold points show what runs beside verification (issue 16).

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use pg_hotswap::demo::workload::{create_tables, TableSpec};
use tokio_postgres::Client;

use crate::harness::{
    all_output, assert_exit, assert_matches_ledger, column_type, describe, hotswap_async,
    hotswap_async_timeout, hotswap_command, leftovers, start_load, TestDb,
};

const ROWS: i64 = 30_000;

/// Terminates every session of the tool in the current database (found by the
/// `application_name` the tool sets, `pg-hotswap/<role>`, see src/db/conn.rs); returns how many.
async fn terminate_tool_sessions(client: &Client) -> i64 {
    client
        .query_one(
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity \
              WHERE application_name LIKE 'pg-hotswap/%' AND datname = current_database() \
                AND pid <> pg_backend_pid()",
            &[],
        )
        .await
        .expect("terminating the tool's sessions")
        .get(0)
}

/// The phase of the newest run.
async fn phase(client: &Client) -> String {
    client
        .query_one(
            "SELECT phase::text FROM hotswap.runs ORDER BY id DESC LIMIT 1",
            &[],
        )
        .await
        .expect("reading the phase")
        .get(0)
}

/// The `fault_retry` events of the newest run, by phase.
async fn fault_events(client: &Client) -> Vec<String> {
    client
        .query(
            "SELECT phase::text FROM hotswap.events \
              WHERE kind = 'fault_retry' AND run_id = (SELECT max(id) FROM hotswap.runs) \
              ORDER BY at",
            &[],
        )
        .await
        .expect("reading the events")
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// A hold file for `point`, created (the run waits at the point while it exists).
fn hold_file(test: &str, point: &str) -> PathBuf {
    let f = std::env::temp_dir().join(format!("hs-faults-{}-{test}-{point}", std::process::id()));
    let _ = std::fs::remove_file(marker(&f));
    std::fs::write(&f, b"").expect("creating the hold file");
    f
}

fn marker(file: &Path) -> PathBuf {
    PathBuf::from(format!("{}.held", file.display()))
}

/// Waits until the run waits at its hold point (it created `<file>.held`).
async fn wait_held(file: &Path, child: &mut tokio::process::Child) {
    let started = Instant::now();
    while !marker(file).exists() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the run ended ({status}) before it reached its hold point");
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the run never reached its hold point {}",
            file.display()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Starts `run` on `table` with the hold `point` armed.
fn start_held_run(db: &TestDb, table: &str, point: &str, file: &Path) -> tokio::process::Child {
    let mut cmd = hotswap_command(&[
        "run",
        "--dsn",
        &db.conninfo,
        "--table",
        table,
        "--alter",
        "ALTER COLUMN id TYPE bigint",
        "--chunk-rows",
        "5000",
        "--replay-batch",
        "200",
    ]);
    cmd.env("PGHOTSWAP_HOLD", format!("{point}:{}", file.display()));
    cmd.env_remove("PGHOTSWAP_FAILPOINT");
    tokio::process::Command::from(cmd)
        .kill_on_drop(true)
        .spawn()
        .expect("spawning pg-hotswap")
}

async fn wait_output(child: tokio::process::Child) -> Output {
    tokio::time::timeout(Duration::from_secs(240), child.wait_with_output())
        .await
        .expect("the run did not end in time")
        .expect("waiting for pg-hotswap")
}

/// The table of the run and its ledger, with a secondary index (built in the build phase; the
/// key waits for the consistency point) and a write load on it.
async fn table_under_load(
    db: &TestDb,
    client: &Client,
    name: &str,
) -> (TableSpec, pg_hotswap::demo::workload::Workload) {
    let spec = TableSpec::simple("public", name);
    create_tables(client, &spec, ROWS).await.unwrap();
    client
        .batch_execute(&format!(
            "CREATE INDEX ON {} ({})",
            spec.table, spec.val_col
        ))
        .await
        .unwrap();
    let w = start_load(&db.conninfo, &spec, ROWS, 2, 300);
    tokio::time::sleep(Duration::from_millis(200)).await;
    (spec, w)
}

/// After the run finished: the load had no errors, the new table has the new type, equals its
/// ledger, and nothing of the tool is left.
async fn check_result(
    client: &Client,
    spec: &TableSpec,
    w: pg_hotswap::demo::workload::Workload,
    what: &str,
) {
    tokio::time::sleep(Duration::from_millis(200)).await;
    let report = w.stop().await;
    assert!(
        report.errors.is_empty(),
        "{what}: writer errors {:#?}",
        report.errors
    );
    assert_eq!(
        column_type(client, &spec.table, &spec.id_col).await,
        "bigint",
        "{what}"
    );
    assert_matches_ledger(client, spec).await;
    let left = leftovers(client, &spec.table, "hotswap").await;
    assert!(left.is_empty(), "{what} left {left:#?}");
}

/// One phase's unit of work loses its session once: every session of the run is terminated
/// while the unit waits at hold `point` (in phase `in_phase`); the run reconnects, redoes the
/// unit, finishes by itself, says and records the redo, and the table equals the ledger.
async fn terminated_once_at(test: &str, point: &str, in_phase: &str) {
    let db = TestDb::new(test).await;
    let client = db.client().await;
    let (spec, w) = table_under_load(&db, &client, "t").await;
    let file = hold_file(test, point);
    let mut child = start_held_run(&db, "public.t", point, &file);
    wait_held(&file, &mut child).await;
    assert_eq!(
        phase(&client).await,
        in_phase,
        "hold point {point} is not in phase {in_phase}"
    );
    let ended = terminate_tool_sessions(&client).await;
    assert!(
        ended >= 2,
        "{point}: only {ended} session(s) of the tool found"
    );
    std::fs::remove_file(&file).unwrap();
    let out = wait_output(child).await;
    let _ = std::fs::remove_file(marker(&file));
    assert_exit(&out, 0);
    let text = all_output(&out);
    assert!(
        text.contains("lost a session") && text.contains(&format!("goes on from phase {in_phase}")),
        "{point}: the redo was not said:\n{}",
        describe(&out)
    );
    assert!(
        text.contains("lost sessions:      1"),
        "{point}: the report does not count the redo:\n{}",
        describe(&out)
    );
    assert_eq!(
        fault_events(&client).await,
        vec![in_phase.to_string()],
        "{point}: the fault_retry event\n{}",
        describe(&out)
    );
    check_result(&client, &spec, w, point).await;
}

/// A copy unit whose sessions die before its COMMIT is copied again (its chunks were not marked
/// done); no chunk is copied twice (the ledger comparison would show duplicates as a key error).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminated_in_the_copy_is_ridden_out() {
    terminated_once_at("faults_copy", "copy-unit", "copy").await;
}

/// The sessions die right after a copy unit committed (as when the connection drops after
/// COMMIT reached the server): the redo reads that the unit's chunks are done and copies only
/// the others — every chunk done before the fault keeps its completion time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminated_after_a_copy_commit_copies_no_chunk_twice() {
    let test = "faults_copy_committed";
    let point = "copy-unit-committed";
    let db = TestDb::new(test).await;
    let client = db.client().await;
    let (spec, w) = table_under_load(&db, &client, "t").await;
    let file = hold_file(test, point);
    let mut child = start_held_run(&db, "public.t", point, &file);
    wait_held(&file, &mut child).await;
    let done_before = done_chunks(&client).await;
    assert!(
        !done_before.is_empty(),
        "no chunk was committed at the hold"
    );
    assert!(terminate_tool_sessions(&client).await >= 2);
    std::fs::remove_file(&file).unwrap();
    let out = wait_output(child).await;
    let _ = std::fs::remove_file(marker(&file));
    assert_exit(&out, 0);
    assert!(
        all_output(&out).contains("goes on from phase copy"),
        "{}",
        describe(&out)
    );
    let done_after = done_chunks(&client).await;
    for (chunk, at) in &done_before {
        assert_eq!(
            done_after.iter().find(|(c, _)| c == chunk).map(|(_, a)| a),
            Some(at),
            "chunk {chunk} was copied again after the redo"
        );
    }
    check_result(&client, &spec, w, point).await;
}

/// (chunk number, when it was marked done) of the newest run's committed chunks.
async fn done_chunks(client: &Client) -> Vec<(i32, String)> {
    client
        .query(
            "SELECT chunk_no, done_at::text FROM hotswap.chunks \
              WHERE done_at IS NOT NULL AND run_id = (SELECT max(id) FROM hotswap.runs)",
            &[],
        )
        .await
        .expect("reading the chunks")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

/// Issue 16: the plain index and ANALYZE run beside verification. With verification held at its
/// first range, the shadow gets its plain index and is analyzed (before, ANALYZE came only after
/// the whole verification, so it never happened while held); the run is in phase verify
/// meanwhile, and finishes with the table equal to its ledger.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_indexes_and_analyze_run_beside_verification() {
    let test = "beside_verification";
    let db = TestDb::new(test).await;
    let client = db.client().await;
    let (spec, w) = table_under_load(&db, &client, "t").await;
    let file = hold_file(test, "verify-range");
    let mut child = start_held_run(&db, "public.t", "verify-range", &file);
    wait_held(&file, &mut child).await;
    let started = Instant::now();
    let (indexes, analyzed) = loop {
        let r = client
            .query_one(
                "SELECT (SELECT count(*) FROM pg_index WHERE indrelid = 'public.t_new'::regclass), \
                        (SELECT analyze_count FROM pg_stat_user_tables WHERE relid = 'public.t_new'::regclass)",
                &[],
            )
            .await
            .expect("reading the shadow");
        let (indexes, analyzed): (i64, i64) = (r.get(0), r.get(1));
        if (indexes == 2 && analyzed > 0) || started.elapsed() > Duration::from_secs(60) {
            break (indexes, analyzed);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let held_in = phase(&client).await;
    std::fs::remove_file(&file).unwrap();
    let out = wait_output(child).await;
    let _ = std::fs::remove_file(marker(&file));
    assert_eq!(
        (indexes, analyzed),
        (2, 1),
        "with verification held, the shadow has {indexes} of 2 indexes and was analyzed {analyzed} time(s)\n{}",
        describe(&out)
    );
    assert_eq!(held_in, "verify", "{}", describe(&out));
    assert_exit(&out, 0);
    assert!(
        all_output(&out).contains("1 plain index ready beside verification"),
        "{}",
        describe(&out)
    );
    check_result(&client, &spec, w, test).await;
}

/// The tool's sessions running a statement on the shadow, by their `application_name`.
async fn tool_statements_on_shadow(client: &Client) -> i64 {
    client
        .query_one(
            "SELECT count(*) FROM pg_stat_activity \
              WHERE application_name LIKE 'pg-hotswap/%' AND datname = current_database() \
                AND state = 'active' AND query LIKE 'SET default_tablespace%CREATE INDEX%'",
            &[],
        )
        .await
        .expect("reading pg_stat_activity")
        .get(0)
}

/// Found by a fresh tester (issue 16's plain indexes built beside verification): an abort, or a
/// SIGTERM, while an index build runs left that CREATE INDEX running on the server (the session
/// was closed, but the server finishes the statement first), and the removal of the shadow
/// failed on its lock: the run exited 5 saying the removal failed, and `abort` after SIGTERM
/// failed too. Now the run's own statements on the shadow are cancelled, and the removal waits
/// for their locks. A plain index on a slow (IMMUTABLE, sleeping) function makes the build last.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abort_or_a_sigterm_stops_the_index_build_in_flight() {
    let db = TestDb::new("stop_in_index_build").await;
    let client = db.client().await;
    for how in ["abort", "SIGTERM"] {
        client
            .batch_execute(
                "DROP TABLE IF EXISTS public.t; DROP FUNCTION IF EXISTS public.slow(int); \
                 CREATE FUNCTION public.slow(v int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS $$ BEGIN RETURN v; END $$; \
                 CREATE TABLE public.t (id int PRIMARY KEY, val int); \
                 INSERT INTO public.t SELECT g, g FROM generate_series(1, 3000) g; \
                 CREATE INDEX t_slow ON public.t (public.slow(val)); \
                 CREATE OR REPLACE FUNCTION public.slow(v int) RETURNS int LANGUAGE plpgsql IMMUTABLE \
                   AS $$ BEGIN IF current_setting('application_name') LIKE 'pg-hotswap/index%' THEN PERFORM pg_sleep(0.02); END IF; RETURN v; END $$;",
            )
            .await
            .unwrap();
        let child = tokio::process::Command::from(hotswap_command(&[
            "run",
            "--dsn",
            &db.conninfo,
            "--table",
            "public.t",
            "--alter",
            "ALTER COLUMN id TYPE bigint",
            "--chunk-rows",
            "1000",
        ]))
        .kill_on_drop(true)
        .spawn()
        .expect("spawning pg-hotswap");
        let started = Instant::now();
        while tool_statements_on_shadow(&client).await == 0 {
            assert!(
                started.elapsed() < Duration::from_secs(90),
                "{how}: the index build never started"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let pid = child.id().expect("the run's pid").to_string();
        let run_out = match how {
            "abort" => {
                let out = hotswap_async_timeout(
                    &["abort", "--dsn", &db.conninfo, "--table", "public.t"],
                    Duration::from_secs(60),
                )
                .await;
                assert_exit(&out, 0);
                let run_out = wait_output(child).await;
                assert_exit(&run_out, 5);
                assert!(
                    all_output(&run_out).contains("everything the run created is removed"),
                    "{}",
                    describe(&run_out)
                );
                run_out
            }
            _ => {
                let kill = std::process::Command::new("kill")
                    .args(["-TERM", &pid])
                    .status()
                    .expect("running kill");
                assert!(kill.success());
                let run_out = wait_output(child).await;
                assert_exit(&run_out, 130);
                // The build in flight is cancelled, not left to run for the ~60 s it takes.
                let gone = Instant::now();
                while tool_statements_on_shadow(&client).await > 0 {
                    assert!(
                        gone.elapsed() < Duration::from_secs(10),
                        "SIGTERM: the index build still runs on the server 10 s after the run exited\n{}",
                        describe(&run_out)
                    );
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                let out = hotswap_async_timeout(
                    &["abort", "--dsn", &db.conninfo, "--table", "public.t"],
                    Duration::from_secs(60),
                )
                .await;
                assert_exit(&out, 0);
                run_out
            }
        };
        let spec = TableSpec::simple("public", "t");
        let left = leftovers(&client, &spec.table, "hotswap").await;
        assert!(
            left.is_empty(),
            "{how} left {left:#?}\n{}",
            describe(&run_out)
        );
        assert_eq!(
            column_type(&client, &spec.table, &spec.id_col).await,
            "integer",
            "{how}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminated_in_the_build_is_ridden_out() {
    terminated_once_at("faults_build", "build-index", "build").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminated_in_the_replay_is_ridden_out() {
    terminated_once_at("faults_replay", "replay-batch", "replay").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminated_in_the_verification_is_ridden_out() {
    terminated_once_at("faults_verify", "verify-range", "verify").await;
}

/// The swap's transaction loses its session while it holds the ACCESS EXCLUSIVE lock: the
/// server rolls it back (the source is untouched), and the redo swaps.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminated_in_the_swap_transaction_is_ridden_out() {
    terminated_once_at("faults_swap", "swap-locked", "swap").await;
}

/// A fault that persists (the run's sessions terminated again and again, also the new ones it
/// opens) stops the run after its bounded redos with exit 1, the table unchanged and usable; once
/// the fault is gone, `resume` finishes it with no write lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_persistent_fault_stops_the_run_and_resume_finishes_it() {
    let db = TestDb::new("faults_persistent").await;
    let client = db.client().await;
    let (spec, w) = table_under_load(&db, &client, "persist").await;
    let file = hold_file("persistent", "copy-unit");
    let mut child = start_held_run(&db, "public.persist", "copy-unit", &file);
    wait_held(&file, &mut child).await;
    let started = Instant::now();
    let mut first = true;
    let status = loop {
        terminate_tool_sessions(&client).await;
        if first {
            std::fs::remove_file(&file).unwrap();
            first = false;
        }
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(180),
            "the run did not give up under a persistent fault"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let out = wait_output(child).await;
    let _ = std::fs::remove_file(marker(&file));
    assert_eq!(status.code(), Some(1), "{}", describe(&out));
    let text = all_output(&out);
    assert!(
        text.contains("gave up after 5 reconnects"),
        "the error does not say it gave up:\n{}",
        describe(&out)
    );
    assert!(
        text.contains("run the same command again"),
        "the error does not say how to go on:\n{}",
        describe(&out)
    );
    // The table is unchanged and takes writes (the load kept going).
    assert_eq!(
        column_type(&client, &spec.table, &spec.id_col).await,
        "integer"
    );
    let out = hotswap_async(&["resume", "--dsn", &db.conninfo, "--table", "public.persist"]).await;
    assert_exit(&out, 0);
    check_result(&client, &spec, w, "resume after a persistent fault").await;
}

/// Failover (issue 20): the primary fails during the copy and its streaming standby is
/// promoted; the writers move to the new primary by themselves (a multi-host connection string
/// with `target_session_attrs=read-write`, as an application would have); the stopped run is
/// continued there with `resume --dsn <new primary>` from the replicated state (the change log,
/// the chunks and the runs are ordinary logged tables), and the table equals the ledger on the
/// new primary: no write lost on either side of the promotion.
///
/// Why the writes the ledger confirmed on the old primary are on the new one: the primary runs
/// with synchronous replication (`synchronous_standby_names = '*'`, `synchronous_commit = on`),
/// so a commit is confirmed to a writer only once the standby has flushed its WAL, and a
/// promotion replays all flushed WAL before the standby takes writes. (The table and its ledger
/// are written in one transaction, so an unconfirmed write is either in both or in neither.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_during_the_copy_then_resume_on_the_new_primary() {
    use pg_hotswap::demo::cluster::{Cluster, ClusterOptions};
    let (primary, standby) = tokio::task::spawn_blocking(|| {
        let primary = Cluster::start(&ClusterOptions::default()).expect("starting a primary");
        let standby = primary.start_standby().expect("starting a standby");
        (primary, standby)
    })
    .await
    .unwrap();
    let old = crate::harness::connect(&primary.conninfo("postgres")).await;
    for sql in [
        "ALTER SYSTEM SET synchronous_standby_names = '*'",
        "ALTER SYSTEM SET synchronous_commit = on",
        "SELECT pg_reload_conf()",
    ] {
        old.batch_execute(sql).await.unwrap();
    }
    // Synchronous from here on: wait until the standby is the synchronous one.
    let started = Instant::now();
    loop {
        let sync: i64 = old
            .query_one(
                "SELECT count(*) FROM pg_stat_replication WHERE sync_state = 'sync'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if sync == 1 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the standby never became synchronous"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let spec = TableSpec::simple("public", "fo");
    create_tables(&old, &spec, ROWS).await.unwrap();
    // The writers reach whichever server takes writes, like an application after a failover.
    let both = format!(
        "host=127.0.0.1,127.0.0.1 port={},{} user=postgres dbname=postgres \
         target_session_attrs=read-write connect_timeout=2",
        primary.port(),
        standby.port()
    );
    let w = start_load(&both, &spec, ROWS, 2, 300);
    tokio::time::sleep(Duration::from_millis(300)).await;

    let old_dsn = primary.conninfo("postgres");
    let new_dsn = standby.conninfo("postgres");
    let db = TestDb {
        name: "postgres".into(),
        conninfo: old_dsn.clone(),
    };
    let file = hold_file("failover", "copy-unit");
    let mut child = start_held_run(&db, "public.fo", "copy-unit", &file);
    wait_held(&file, &mut child).await;
    assert_eq!(phase(&old).await, "copy");
    let before_failover = w.transactions();
    assert!(before_failover > 0, "no write before the failover");

    // The primary fails (a fast shutdown ends every session with 57P01, then refuses
    // connections); the standby is promoted.
    let mut primary = primary;
    let primary = tokio::task::spawn_blocking(move || {
        primary.stop();
        primary
    })
    .await
    .unwrap();
    std::fs::remove_file(&file).unwrap();
    let new = crate::harness::connect(&new_dsn).await;
    let promoted: bool = new
        .query_one("SELECT pg_promote(true, 60)", &[])
        .await
        .unwrap()
        .get(0);
    assert!(promoted, "the standby was not promoted");

    // The run on the old primary cannot reconnect: after its bounded redos it stops, resumable.
    let out = wait_output(child).await;
    let _ = std::fs::remove_file(marker(&file));
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let text = all_output(&out);
    assert!(
        text.contains("gave up after") && text.contains("run the same command again"),
        "the run on the failed primary did not stop resumably after its redos:\n{}",
        describe(&out)
    );
    // The writers moved to the new primary.
    let at_resume = w.transactions();
    let moved = Instant::now();
    while w.transactions() < at_resume + 100 {
        assert!(
            moved.elapsed() < Duration::from_secs(60),
            "the writers did not move to the new primary"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    eprintln!("--- the run on the failed primary\n{}", describe(&out));
    let out = hotswap_async(&["resume", "--dsn", &new_dsn, "--table", "public.fo"]).await;
    eprintln!("--- resume on the new primary\n{}", describe(&out));
    assert_exit(&out, 0);
    assert!(
        all_output(&out).contains("continuing run"),
        "resume did not continue the replicated run:\n{}",
        describe(&out)
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let report = w.stop().await;
    // Writers saw the failover as connection errors (their transaction in flight then is
    // settled from the ledger on reconnect); none may be a wrong row count.
    for e in &report.errors {
        assert!(
            !e.contains("changed"),
            "a writer saw a wrong row count: {e}"
        );
    }
    assert_eq!(column_type(&new, &spec.table, &spec.id_col).await, "bigint");
    assert_matches_ledger(&new, &spec).await;
    let left = leftovers(&new, &spec.table, "hotswap").await;
    assert!(left.is_empty(), "the failover run left {left:#?}");
    drop(primary);
    drop(standby);
}

/// A fresh tester found that a lost session in the swap made a run with `--cutover manual` forget
/// the operator's request: after the redo it waited for a cut-over again, and a gated fleet
/// stayed split. The request now holds until the swap commits: cut-over requested, the swap
/// blocked by a session in a transaction on the table, the run's sessions terminated, the blocker
/// gone — the run swaps by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_requested_cutover_survives_a_lost_session_in_the_swap() {
    let db = TestDb::new("fault_cutover_kept").await;
    let client = db.client().await;
    let (spec, w) = table_under_load(&db, &client, "cutkept").await;
    let table = spec.table.to_string();
    let cmd = hotswap_command(&[
        "run",
        "--dsn",
        &db.conninfo,
        "--table",
        &table,
        "--alter",
        "ALTER COLUMN id TYPE bigint",
        "--chunk-rows",
        "5000",
        "--cutover",
        "manual",
        "--lock-timeout",
        "200ms",
        "--retry-delay",
        "100ms",
        "--max-lock-attempts",
        "200",
        "--wait-old-snapshots",
        "off",
    ]);
    let child = tokio::process::Command::from(cmd)
        .kill_on_drop(true)
        .spawn()
        .expect("spawning pg-hotswap");
    // Ready and waiting for the cut-over.
    let started = Instant::now();
    loop {
        let note: Option<String> = client
            .query_opt(
                "SELECT throttle FROM hotswap.runs ORDER BY id DESC LIMIT 1",
                &[],
            )
            .await
            .ok()
            .flatten()
            .and_then(|r| r.get(0));
        if note.is_some_and(|n| n.starts_with("ready to swap")) {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(120), "never ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A blocker, then the cut-over: the swap's attempts time out on it.
    let blocker = db.client().await;
    blocker
        .batch_execute(&format!("BEGIN; SELECT 1 FROM {table} LIMIT 1"))
        .await
        .unwrap();
    let out =
        crate::harness::hotswap_async(&["cutover", "--dsn", &db.conninfo, "--table", &table]).await;
    crate::harness::assert_exit(&out, 0);
    let started = Instant::now();
    loop {
        let attempts: i64 = client
            .query_one(
                "SELECT count(*) FROM hotswap.events WHERE kind = 'lock_timeout'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if attempts >= 2 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the swap never tried"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(terminate_tool_sessions(&client).await > 0);
    tokio::time::sleep(Duration::from_secs(2)).await;
    blocker.batch_execute("COMMIT").await.unwrap();
    let out = tokio::time::timeout(Duration::from_secs(90), child.wait_with_output())
        .await
        .expect("the run did not swap by itself after the redo (it waits for a cut-over again?)")
        .expect("waiting for pg-hotswap");
    crate::harness::assert_exit(&out, 0);
    check_result(&client, &spec, w, "cut-over kept").await;
}
