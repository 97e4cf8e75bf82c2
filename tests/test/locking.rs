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
    hotswap_command, table_arg, wait_until, TestDb,
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

/// The swap takes the locks of the tables linked to the table by a foreign key in its first
/// statement, not when it moves the keys. An application transaction that writes the
/// referencing table and then the table (deleting a sale, then its store) used to get the
/// referencing table while the swap held only the table, queue behind the swap, and so make
/// the swap's `DROP CONSTRAINT` on the referencing table wait for it: a lock timeout, an
/// attempt lost, the application held for the whole timeout (CI: 30 attempts in a row in the
/// FK-chain scenario). Now that transaction waits for the swap's short lock instead, and the
/// first attempt succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_of_a_referencing_table_does_not_cost_the_swap_an_attempt() {
    neighbour_writer_meets_the_swap(
        "fk_neighbour_child",
        "DELETE FROM sale WHERE store_id = 7; DELETE FROM store WHERE id = 7;",
        (0, 0),
    )
    .await;
}

/// The same from the other end: the table's own foreign key references `region`, and the
/// application adds a region and then a store in it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_of_a_referenced_table_does_not_cost_the_swap_an_attempt() {
    neighbour_writer_meets_the_swap(
        "fk_neighbour_parent",
        "INSERT INTO region VALUES (9); INSERT INTO store VALUES (7000, 9);",
        (1, 10),
    )
    .await;
}

/// And a reader of a view over the table: PostgreSQL locks the view before the table it
/// reads, so every read of the view that arrived while the swap held the table kept the view
/// the swap re-creates.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_of_a_view_over_the_table_does_not_cost_the_swap_an_attempt() {
    neighbour_writer_meets_the_swap(
        "fk_neighbour_view",
        "SELECT count(*) FROM store_v;",
        (0, 10),
    )
    .await;
}

/// Holds the swap of `store` (region <- store <- sale, a view `store_v` over it) just after its lock, runs `app` in one
/// transaction from another session, lets the swap go on once that transaction waits for a
/// lock, and checks: the swap's first attempt succeeded, the application's transaction
/// committed, and `expect` = (rows of store 7000, sales of store 7) afterwards.
async fn neighbour_writer_meets_the_swap(name: &str, app_sql: &str, expect: (i64, i64)) {
    let db = TestDb::new(name).await;
    let client = db.client().await;
    client
        .batch_execute(
            "CREATE TABLE region (id int PRIMARY KEY);
             CREATE TABLE store (id int PRIMARY KEY, region_id int NOT NULL REFERENCES region);
             CREATE TABLE sale (id int PRIMARY KEY, store_id int NOT NULL REFERENCES store);
             CREATE VIEW store_v AS SELECT id, region_id FROM store;
             INSERT INTO region SELECT generate_series(1, 5);
             INSERT INTO store SELECT i, 1 + i % 5 FROM generate_series(1, 50) i;
             INSERT INTO sale SELECT i, 1 + i % 50 FROM generate_series(1, 500) i;",
        )
        .await
        .expect("creating the tables");
    let hold = crate::harness::HoldPoint::new(name, "swap-locked");
    let run = crate::harness::spawn_held(
        &[
            "run",
            "--dsn",
            &db.conninfo,
            "--table",
            "public.store",
            "--alter",
            "ALTER COLUMN id TYPE bigint",
            "--lock-timeout",
            "300ms",
            "--max-lock-attempts",
            "5",
        ],
        &[&hold],
    );
    hold.wait_reached().await;
    // The application's transaction, started while the swap holds its lock.
    let app = db.client().await;
    let app_pid: i32 = app
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .expect("reading the application's pid")
        .get(0);
    let app_sql = format!("BEGIN; {app_sql} COMMIT;");
    let writer = tokio::spawn(async move { app.batch_execute(&app_sql).await });
    // Let the run go on once the application waits for a lock.
    crate::harness::wait_for_lock_wait(
        &client,
        app_pid,
        "the application's transaction waits for a lock",
    )
    .await;
    hold.release();
    let out = run.await.expect("the run's task");
    assert_exit(&out, 0);
    writer
        .await
        .expect("the application's task")
        .expect("the application's transaction failed");
    let not_granted: i64 = client
        .query_one(
            "SELECT count(*) FROM hotswap.events WHERE phase = 'swap' AND kind = 'lock_timeout'",
            &[],
        )
        .await
        .expect("counting the swap's lock timeouts")
        .get(0);
    assert_eq!(
        not_granted,
        0,
        "the swap lost an attempt to the application's transaction:\n{}",
        describe(&out)
    );
    let store = pg_hotswap::db::ident::QualifiedName::new("public", "store");
    let ty = column_type(&client, &store, &pg_hotswap::db::ident::Ident::new("id")).await;
    assert_eq!(ty, "bigint", "{}", describe(&out));
    let check: (i64, i64, bool) = client
        .query_one(
            "SELECT (SELECT count(*) FROM store WHERE id = 7000),
                    (SELECT count(*) FROM sale WHERE store_id = 7),
                    (SELECT bool_and(confrelid = 'public.store'::regclass)
                       FROM pg_constraint WHERE conrelid = 'public.sale'::regclass AND contype = 'f')",
            &[],
        )
        .await
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .expect("reading the result");
    assert_eq!(
        check,
        (expect.0, expect.1, true),
        "(rows of store 7000, sales of store 7, sale's key points at the new store): {}",
        describe(&out)
    );
}

/// The whole kind of the above: every lock the swap transaction holds when it commits that
/// would make an application's statement wait (SHARE or stronger, on a table, view, materialized
/// view or sequence the application can see) was taken by its first statement. A lock taken
/// later lets the application's transactions that hold that relation queue behind the swap's
/// lock on the table, and make the swap wait for them until its timeout. The table has every
/// kind of neighbour the swap touches: foreign keys both ways, views (one over another), a
/// materialized view, owned sequences, a trigger that writes another table, a policy that reads
/// one, a publication, extended statistics; the ALTER retypes the key, so the views are
/// re-created.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_swaps_first_statement_takes_every_lock_it_will_hold() {
    first_statement_takes_every_lock(
        "swap_first_locks",
        "CREATE TABLE region (id int PRIMARY KEY);
             CREATE TABLE store (id int PRIMARY KEY, region_id int REFERENCES region, name text,
                                 n serial, g int GENERATED ALWAYS AS IDENTITY);
             CREATE TABLE sale (id int PRIMARY KEY, store_id int REFERENCES store);
             CREATE TABLE audit (id int);
             CREATE VIEW store_v AS SELECT id, name FROM store;
             CREATE VIEW store_vv AS SELECT id FROM store_v;
             CREATE MATERIALIZED VIEW store_m AS SELECT id, region_id FROM store;
             CREATE FUNCTION audit_f() RETURNS trigger LANGUAGE plpgsql
                 AS 'BEGIN INSERT INTO audit VALUES (NEW.id); RETURN NEW; END';
             CREATE TRIGGER store_audit AFTER INSERT ON store FOR EACH ROW EXECUTE FUNCTION audit_f();
             ALTER TABLE store ENABLE ROW LEVEL SECURITY;
             CREATE POLICY store_p ON store USING (EXISTS (SELECT FROM region r WHERE r.id = region_id));
             CREATE PUBLICATION store_pub FOR TABLE store;
             CREATE STATISTICS store_st ON id, region_id FROM store;
             CREATE VIEW sale_v AS SELECT s.id, t.name FROM sale s JOIN store_v t ON t.id = s.store_id;
             INSERT INTO region SELECT generate_series(1, 5);
             INSERT INTO store (id, region_id, name) SELECT i, 1 + i % 5, 's' || i FROM generate_series(1, 50) i;
             INSERT INTO sale SELECT i, 1 + i % 50 FROM generate_series(1, 200) i;",
        ("store", "ALTER COLUMN id TYPE bigint"),
        &[
            "public.store",
            "public.sale",
            "public.region",
            "public.store_v",
            "public.store_vv",
            "public.sale_v",
            "public.store_m",
            "public.store_n_seq",
        ],
    )
    .await;
}

/// The same for a partitioned table (its partitions are locked with it by `LOCK TABLE`), a
/// foreign key to it from a plain table, and a view over it. (An outgoing foreign key is refused
/// on a partitioned table before PostgreSQL 18.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_swap_of_a_partitioned_table_takes_every_lock_in_its_first_statement() {
    first_statement_takes_every_lock(
        "swap_first_locks_tree",
        "CREATE TABLE ev (id int, at date, region_id int, note text,
                          PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
         CREATE TABLE ev_2024 PARTITION OF ev FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
         CREATE TABLE ev_2025 PARTITION OF ev FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
         CREATE TABLE ev_ref (id int PRIMARY KEY, ev_id int, ev_at date,
                              FOREIGN KEY (ev_id, ev_at) REFERENCES ev);
         CREATE VIEW ev_v AS SELECT id, at, note FROM ev;
         INSERT INTO ev SELECT i, date '2024-06-01' + i, 1 + i % 5, 'n' || i FROM generate_series(1, 300) i;
         INSERT INTO ev_ref SELECT i, i, date '2024-06-01' + i FROM generate_series(1, 100) i;",
        ("ev", "ALTER COLUMN region_id TYPE bigint"),
        &["public.ev", "public.ev_2024", "public.ev_ref", "public.ev_v"],
    )
    .await;
}

/// Runs `pg-hotswap run` on `public.<table>` with `alter` after `setup`, holding the swap after
/// its first statement and before its commit, and checks that every lock it holds at the commit
/// was taken by the first statement, among them those on `must_lock` (so that the test can
/// fail).
async fn first_statement_takes_every_lock(
    name: &str,
    setup: &str,
    (table, alter): (&str, &str),
    must_lock: &[&str],
) {
    let db = TestDb::new(name).await;
    let client = db.client().await;
    client
        .batch_execute(setup)
        .await
        .expect("creating the tables");
    let locked = crate::harness::HoldPoint::new(name, "swap-locked");
    let before_commit = crate::harness::HoldPoint::new(name, "swap-before-commit");
    let table_arg = format!("public.{table}");
    let shadow = format!("public.{table}_new");
    let run = crate::harness::spawn_held(
        &[
            "run",
            "--dsn",
            &db.conninfo,
            "--table",
            &table_arg,
            "--alter",
            alter,
        ],
        &[&locked, &before_commit],
    );
    // The relations the swap's backend holds, in modes that make the application wait, as the
    // test's session sees them (an object the swap created is invisible to it and left out).
    let held = |pid: i32| {
        let (client, shadow) = (&client, &shadow);
        async move {
            client
                .query(
                    "SELECT c.oid, n.nspname || '.' || c.relname, l.mode
                       FROM pg_locks l
                       JOIN pg_class c ON c.oid = l.relation
                       JOIN pg_namespace n ON n.oid = c.relnamespace
                      WHERE l.pid = $1 AND l.locktype = 'relation' AND l.granted
                        AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
                        AND n.nspname NOT IN ('hotswap', 'pg_catalog')
                        -- the shadow's own sequences: no application knows them
                        AND NOT EXISTS (SELECT FROM pg_depend d
                                         WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                                           AND d.refobjid = $2::text::regclass)
                        AND l.mode IN ('ShareLock', 'ShareRowExclusiveLock', 'ExclusiveLock',
                                       'AccessExclusiveLock')",
                    &[&pid, &shadow],
                )
                .await
                .expect("reading the swap's locks")
                .iter()
                .map(|r| {
                    (
                        r.get::<_, u32>(0),
                        r.get::<_, String>(1),
                        r.get::<_, String>(2),
                    )
                })
                .collect::<Vec<_>>()
        }
    };
    locked.wait_reached().await;
    let pid: i32 = client
        .query_one(
            "SELECT pid FROM pg_stat_activity
              WHERE datname = current_database() AND state = 'idle in transaction'
                AND query LIKE '%LOCK TABLE %'",
            &[],
        )
        .await
        .expect("finding the swap's session")
        .get(0);
    let first = held(pid).await;
    locked.release();
    before_commit.wait_reached().await;
    let last = held(pid).await;
    before_commit.release();
    let out = run.await.expect("the run's task");
    assert_exit(&out, 0);
    let late: Vec<String> = last
        .iter()
        .filter(|(oid, _, mode)| {
            !first
                .iter()
                .any(|(o, _, m)| o == oid && (m == mode || m == "AccessExclusiveLock"))
        })
        .map(|(_, name, mode)| format!("{name} {mode}"))
        .collect();
    assert!(
        late.is_empty(),
        "locks the swap took after its first statement: {late:?}\n(first statement: {first:?})\n{}",
        describe(&out)
    );
    // The test can fail: the first statement locked the table and its neighbours.
    let names: Vec<&str> = first.iter().map(|(_, n, _)| n.as_str()).collect();
    for t in must_lock {
        assert!(names.contains(t), "{t} not locked at first: {first:?}");
    }
}

/// With a `--lock-timeout` longer than PostgreSQL's `deadlock_timeout` (1 s), a wait of the
/// swap's that is part of a cycle with an application transaction was ended by PostgreSQL as a
/// deadlock (40P01) in whichever session waited first, and the deadlock error failed the run.
/// Here the swap, holding the view, waits for the table an application transaction has
/// written; that transaction then reads the view. The swap's lock statement now gives up after
/// half of `deadlock_timeout` (`swap::first_message_budget`), before PostgreSQL's check; a 40P01
/// in the swap's session (a server whose sessions have different settings) still costs one
/// attempt (`Error::is_lock_not_granted`). Either way that attempt is lost, the next one
/// succeeds, and the application's statements all succeed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deadlock_ended_by_postgresql_costs_the_swap_one_attempt_not_the_run() {
    let db = TestDb::new("swap_deadlock").await;
    let client = db.client().await;
    client
        .batch_execute(
            "CREATE TABLE store (id int PRIMARY KEY, n int);
             CREATE VIEW store_v AS SELECT id, n FROM store;
             INSERT INTO store SELECT i, i FROM generate_series(1, 100) i;",
        )
        .await
        .expect("creating the table");
    let hold = crate::harness::HoldPoint::new("swap_deadlock", "before-swap-lock");
    let run = crate::harness::spawn_held(
        &[
            "run",
            "--dsn",
            &db.conninfo,
            "--table",
            "public.store",
            "--alter",
            "ALTER COLUMN n TYPE bigint",
            "--lock-timeout",
            "3s",
        ],
        &[&hold],
    );
    hold.wait_reached().await;
    let app = db.client().await;
    app.batch_execute("BEGIN; UPDATE store SET n = n + 1 WHERE id = 1")
        .await
        .expect("the application's update");
    hold.release();
    // The swap holds the view and waits for the table.
    crate::harness::wait_until(
        &client,
        "SELECT EXISTS (SELECT FROM pg_stat_activity
                         WHERE datname = current_database() AND wait_event_type = 'Lock'
                           AND query LIKE '%LOCK TABLE %')",
        &[],
        "the swap waits for the table",
    )
    .await;
    let read = app
        .query_one("SELECT count(*) FROM store_v", &[])
        .await
        .map(|r| r.get::<_, i64>(0));
    let commit = app.batch_execute("COMMIT").await;
    let out = run.await.expect("the run's task");
    assert!(
        matches!(read, Ok(100)) && commit.is_ok(),
        "the application's read {read:?} or commit {commit:?} failed\n{}",
        describe(&out)
    );
    assert_exit(&out, 0);
    let lost: i64 = client
        .query_one(
            "SELECT count(*) FROM hotswap.events WHERE phase = 'swap' AND kind = 'lock_timeout'",
            &[],
        )
        .await
        .expect("counting the swap's lost attempts")
        .get(0);
    assert_eq!(lost, 1, "{}", describe(&out));
    let n = pg_hotswap::db::ident::Ident::new("n");
    let store = pg_hotswap::db::ident::QualifiedName::new("public", "store");
    assert_eq!(column_type(&client, &store, &n).await, "bigint");
    let bumped: i64 = client
        .query_one("SELECT n FROM store WHERE id = 1", &[])
        .await
        .expect("reading the application's write")
        .get(0);
    assert_eq!(bumped, 2, "the application's update was lost");
}

/// The swap's first message takes several locks, each waiting at most `--lock-timeout`; while
/// one waits, the application queues behind those already taken. Here the table and then its
/// sequence are each held by an application transaction for 1.5 s, under a 2 s lock timeout:
/// neither wait alone reaches it, but a reader of a view over the table, which the message
/// locked first, waited for both (3 s and more). The message now gets the lock timeout in all:
/// the attempt is cancelled at 2 s, the reader goes on, and a later attempt swaps.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_swaps_locks_block_the_application_for_one_lock_timeout_in_all() {
    let name = "swap_lock_budget";
    let db = TestDb::new(name).await;
    let client = db.client().await;
    client
        .batch_execute(
            "CREATE TABLE public.t (id int PRIMARY KEY, n serial, v int);
             CREATE VIEW public.t_v AS SELECT id, v FROM public.t;
             INSERT INTO public.t (id, v) SELECT i, i FROM generate_series(1, 100) i;",
        )
        .await
        .expect("creating the table");
    let hold = crate::harness::HoldPoint::new(name, "before-swap-lock");
    let run = crate::harness::spawn_held(
        &[
            "run",
            "--dsn",
            &db.conninfo,
            "--table",
            "public.t",
            "--alter",
            "ALTER COLUMN v TYPE bigint",
            "--lock-timeout",
            "2s",
            "--retry-delay",
            "10ms",
            "--max-lock-attempts",
            "10",
        ],
        &[&hold],
    );
    hold.wait_reached().await;
    // One transaction holds the table, another the sequence; each lets go 1.5 s after the last.
    let writer = db.client().await;
    writer
        .batch_execute("BEGIN; UPDATE public.t SET v = v WHERE id = 1")
        .await
        .expect("the application's update");
    let drawer = db.client().await;
    drawer
        .batch_execute("BEGIN; SELECT nextval('public.t_n_seq')")
        .await
        .expect("the application's nextval");
    hold.release();
    let ends = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        writer.batch_execute("COMMIT").await.expect("commit");
        tokio::time::sleep(Duration::from_millis(1500)).await;
        drawer.batch_execute("COMMIT").await.expect("commit");
    });
    // Once the swap holds the view, a reader of the view queues behind it.
    wait_until(
        &client,
        "SELECT EXISTS (SELECT FROM pg_locks l JOIN pg_stat_activity a USING (pid)
                         WHERE l.relation = 'public.t_v'::regclass AND l.granted
                           AND l.mode = 'AccessExclusiveLock' AND a.query LIKE '%LOCK TABLE %')",
        &[],
        "the swap holds the view",
    )
    .await;
    let reader = db.client().await;
    let started = Instant::now();
    let read = reader
        .query_one("SELECT count(*) FROM public.t_v", &[])
        .await
        .map(|r| r.get::<_, i64>(0));
    let waited = started.elapsed();
    eprintln!("a reader of the view waited {waited:?}");
    ends.await.expect("the application's transactions");
    let out = run.await.expect("the run's task");
    assert_exit(&out, 0);
    assert!(matches!(read, Ok(100)), "the reader's query: {read:?}");
    assert!(
        waited < Duration::from_millis(2600),
        "a reader of the view waited {waited:?} behind the swap's locks, more than the 2 s lock timeout\n{}",
        describe(&out)
    );
}

/// An application transaction that holds the table and then reads a view over it, while the
/// swap, holding the view, waits for a table linked by a foreign key: the application starts
/// waiting first, so with `--lock-timeout` above PostgreSQL's `deadlock_timeout` (1 s) its
/// deadlock check came first and PostgreSQL ended the *application's* transaction ("deadlock
/// detected"; a fresh tester's pgbench). The swap's lock statement now gives up after half of
/// `deadlock_timeout`, and says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_application_waiting_for_the_swap_is_never_ended_as_a_deadlock() {
    let name = "swap_app_deadlock";
    let db = TestDb::new(name).await;
    let client = db.client().await;
    client
        .batch_execute(
            "CREATE TABLE public.t (id int PRIMARY KEY, v int);
             CREATE TABLE public.ch (id int PRIMARY KEY, t_id int REFERENCES public.t, n int);
             CREATE VIEW public.t_v AS SELECT id, v FROM public.t;
             INSERT INTO public.t SELECT i, i FROM generate_series(1, 100) i;
             INSERT INTO public.ch SELECT i, i, 0 FROM generate_series(1, 100) i;",
        )
        .await
        .expect("creating the tables");
    let hold = crate::harness::HoldPoint::new(name, "before-swap-lock");
    let run = crate::harness::spawn_held(
        &[
            "run",
            "--dsn",
            &db.conninfo,
            "--table",
            "public.t",
            "--alter",
            "ALTER COLUMN v TYPE bigint",
            "--lock-timeout",
            "3s",
        ],
        &[&hold],
    );
    hold.wait_reached().await;
    // A holds the linked table, B the table itself.
    let a = db.client().await;
    a.batch_execute("BEGIN; UPDATE public.ch SET n = n + 1 WHERE id = 1")
        .await
        .expect("A's update");
    let b = db.client().await;
    let b_pid: i32 = b
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .expect("B's pid")
        .get(0);
    b.batch_execute("BEGIN; UPDATE public.t SET v = v + 1 WHERE id = 1")
        .await
        .expect("B's update");
    hold.release();
    // The swap holds the view and waits for ch; B then reads the view and waits for the swap.
    crate::harness::wait_until(
        &client,
        "SELECT EXISTS (SELECT FROM pg_stat_activity
                         WHERE datname = current_database() AND wait_event_type = 'Lock'
                           AND query LIKE '%LOCK TABLE %')",
        &[],
        "the swap waits for the linked table",
    )
    .await;
    let reader = tokio::spawn(async move {
        let read = b.query_one("SELECT count(*) FROM public.t_v", &[]).await;
        let commit = b.batch_execute("COMMIT").await;
        (read.map(|r| r.get::<_, i64>(0)), commit)
    });
    crate::harness::wait_for_lock_wait(&client, b_pid, "B waits for the view").await;
    // A lets go: the swap now waits for the table, which B holds.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    a.batch_execute("COMMIT").await.expect("A's commit");
    let (read, commit) = reader.await.expect("B's task");
    let out = run.await.expect("the run's task");
    assert!(
        matches!(read, Ok(100)) && commit.is_ok(),
        "the application's read {read:?} or commit {commit:?} failed\n{}",
        describe(&out)
    );
    assert_exit(&out, 0);
    assert!(
        all_output(&out).contains("deadlock_timeout"),
        "no word of the shortened wait\n{}",
        describe(&out)
    );
}
