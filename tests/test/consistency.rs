//! The shadow is consistent only after catch-up (issue 13, inputs 3-5): constraints that compare
//! rows are built at the consistency point and kept by complete replay batches, and nothing on
//! the shadow makes an application statement fail. Each test drives the application traffic
//! that broke a run (a unique value moving to another row, a deferrable unique shifted by one
//! statement, parents deleted the ordinary way) while the tool copies and replays, then checks
//! that no application statement failed, the run succeeded, and the new table equals the old
//! one (kept by the run, frozen at the swap) row for row.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio_postgres::Client;

use crate::harness::{assert_exit, describe, hotswap_async, wait_for_done_chunks, TestDb};

/// Runs `txn` in a loop on its own connection until stopped or `max_txns` committed, each time
/// in one transaction:
/// `{n}` is replaced by a counter; every statement (`;`-separated) that names `{t}` runs twice,
/// on the table and on its ledger, and both must affect the same number of rows. Returns the
/// errors met and how many transactions committed.
fn writer(
    conninfo: String,
    table: &'static str,
    txn: &'static str,
    stop: Arc<AtomicBool>,
    pause: Duration,
    max_txns: u64,
) -> tokio::task::JoinHandle<(Vec<String>, u64)> {
    tokio::spawn(async move {
        let mut c = crate::harness::connect(&conninfo).await;
        // "-- fresh session": each transaction on a new connection, as from a pool that does
        // not keep them (plans are not cached across transactions then).
        let fresh = txn.starts_with("-- fresh session");
        let n = AtomicU64::new(1000);
        let mut errors = Vec::new();
        let mut done = 0;
        while !stop.load(Ordering::Relaxed) && done < max_txns {
            let i = n.fetch_add(1, Ordering::Relaxed).to_string();
            if fresh && done > 0 {
                c = crate::harness::connect(&conninfo).await;
            }
            let result = async {
                c.batch_execute("BEGIN").await?;
                for stmt in txn
                    .lines()
                    .filter(|l| !l.trim_start().starts_with("--"))
                    .collect::<Vec<_>>()
                    .join("\n")
                    .split(';')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                {
                    let stmt = stmt.replace("{n}", &i);
                    if stmt.contains("{t}") {
                        let a = c.execute(&stmt.replace("{t}", table), &[]).await?;
                        let b = c
                            .execute(&stmt.replace("{t}", &format!("{table}_ledger")), &[])
                            .await?;
                        if a != b {
                            return Ok::<_, tokio_postgres::Error>(Some(format!(
                                "{stmt}: {a} rows in the table, {b} in the ledger"
                            )));
                        }
                    } else {
                        c.execute(&stmt, &[]).await?;
                    }
                }
                c.batch_execute("COMMIT").await?;
                Ok(None)
            }
            .await;
            match result {
                Ok(None) => done += 1,
                Ok(Some(mismatch)) => {
                    let _ = c.batch_execute("ROLLBACK").await;
                    errors.push(mismatch);
                }
                Err(e) => {
                    let _ = c.batch_execute("ROLLBACK").await;
                    errors.push(format!("{e:?}"));
                }
            }
            tokio::time::sleep(pause).await;
        }
        (errors, done)
    })
}

/// After the run: the ledger gets PostgreSQL's own ALTER, and the new table must equal it row
/// for row.
async fn assert_matches_ledger(client: &Client, table: &str, alter: Option<&str>) {
    if let Some(a) = alter {
        client
            .batch_execute(&format!("ALTER TABLE {table}_ledger {a}"))
            .await
            .expect("the ALTER on the ledger");
    }
    let diff: i64 = client
        .query_one(
            &format!(
                "SELECT count(*) FROM ((SELECT row_to_json(a)::text FROM {table} a EXCEPT ALL SELECT row_to_json(b)::text FROM {table}_ledger b) \
                 UNION ALL (SELECT row_to_json(b)::text FROM {table}_ledger b EXCEPT ALL SELECT row_to_json(a)::text FROM {table} a)) d"
            ),
            &[],
        )
        .await
        .expect("comparing the new table with its ledger")
        .get(0);
    let counts: (i64, i64) = client
        .query_one(
            &format!(
                "SELECT (SELECT count(*) FROM {table}), (SELECT count(*) FROM {table}_ledger)"
            ),
            &[],
        )
        .await
        .map(|r| (r.get(0), r.get(1)))
        .expect("counting");
    assert_eq!(
        diff, 0,
        "{table} differs from its ledger in {diff} rows (rows: {counts:?})"
    );
}

/// Creates `<table>_ledger` as a plain copy of `table` with its unique indexes (the workload's
/// upserts need them), without triggers or foreign keys.
async fn create_ledger(client: &Client, table: &str) {
    client
        .batch_execute(&format!(
            "CREATE TABLE {table}_ledger (LIKE {table} INCLUDING INDEXES); INSERT INTO {table}_ledger SELECT * FROM {table}"
        ))
        .await
        .expect("creating the ledger");
}

/// Runs pg-hotswap on `table` while `txns` run (one writer each, from the first copied chunk
/// to the end of the run); asserts that no application statement failed, the run succeeded,
/// and the new table equals its ledger after PostgreSQL's own ALTER.
async fn run_under(
    db: &TestDb,
    table: &'static str,
    alter: Option<&str>,
    extra: &[&str],
    max_txns: u64,
    txns: &[&'static str],
) {
    let client = db.client().await;
    create_ledger(&client, table).await;
    let stop = Arc::new(AtomicBool::new(false));
    let mut args = vec![
        "run".to_string(),
        "--dsn".into(),
        db.conninfo.clone(),
        "--table".into(),
        format!("public.{table}"),
        "--chunk-rows".into(),
        "2".into(),
        "--chunk-time".into(),
        "off".into(),
    ];
    // Slow enough that the writers change rows whose chunks are already copied.
    if !extra.contains(&"--nice") {
        args.extend(["--nice".to_string(), "5".to_string()]);
    }
    if let Some(a) = alter {
        args.extend(["--alter".to_string(), a.to_string()]);
    }
    args.extend(extra.iter().map(|a| a.to_string()));
    let run = tokio::spawn(async move {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        hotswap_async(&a).await
    });
    wait_for_done_chunks(&client, 1).await;
    let writers: Vec<_> = txns
        .iter()
        .map(|t| {
            writer(
                db.conninfo.clone(),
                table,
                t,
                stop.clone(),
                Duration::from_millis(50),
                max_txns,
            )
        })
        .collect();
    let out = run.await.expect("the run's task");
    stop.store(true, Ordering::Relaxed);
    eprintln!("{}", describe(&out));
    let mut total = 0;
    for w in writers {
        let (errors, done) = w.await.expect("a writer");
        assert!(
            errors.is_empty(),
            "{} application statements failed, the first: {:#?}\n{}",
            errors.len(),
            &errors[..errors.len().min(3)],
            describe(&out)
        );
        total += done;
    }
    assert!(total >= 10, "the writers ran {total} transactions only");
    assert_exit(&out, 0);
    assert_matches_ledger(&client, table, alter).await;
}
/// Issue 13, input 3: a unique value deleted and inserted again under another key during the
/// copy made the unique index build fail ("Key (tok)=(t1) is duplicated").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unique_value_moving_to_another_row() {
    let db = TestDb::new("cons_unique_moves").await;
    let client = db.client().await;
    client
        .batch_execute(
            "CREATE TABLE t (id serial PRIMARY KEY, tok text NOT NULL UNIQUE, n int);
             INSERT INTO t (tok, n) SELECT 't' || g, g FROM generate_series(1, 40) g;",
        )
        .await
        .unwrap();
    run_under(
        &db,
        "t",
        Some("ALTER COLUMN n TYPE bigint"),
        &["--replay-batch", "10"],
        // Bounded (about 15 s of writes, through the copy and the replay): under --nice 5 on a
        // loaded 2-core machine, replay in batches of 10 could not keep up with an endless stream
        // (CI, session 7: the same with the binary before the session's changes).
        300,
        &[
            // Delete and re-insert: the value moves to a new key; an upsert that moves a value
            // between rows; a key change.
            "DELETE FROM {t} WHERE tok = 't' || ({n} % 40 + 1); \
             INSERT INTO {t} (id, tok, n) VALUES ({n}, 't' || ({n} % 40 + 1), {n}); \
             UPDATE {t} SET tok = 'x' || {n} WHERE id = (SELECT min(id) FROM {t} WHERE tok LIKE 't%'); \
             INSERT INTO {t} (id, tok, n) VALUES ({n} + 500000, 't1', {n}) ON CONFLICT (tok) DO UPDATE SET n = EXCLUDED.n; \
             UPDATE {t} SET id = id + 100000 WHERE id = (SELECT min(id) FROM {t})",
        ],
    )
    .await;
}

/// Issue 13, input 4: `UPDATE li SET pos = pos + 1` on a deferrable unique made replay fail
/// with a duplicate key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deferrable_unique_shifted_by_one_statement() {
    let db = TestDb::new("cons_deferrable").await;
    let client = db.client().await;
    client
        .batch_execute(
            "CREATE TABLE li (id int PRIMARY KEY, pos int, UNIQUE (pos) DEFERRABLE);
             CREATE TABLE lj (id int PRIMARY KEY, pos int, CONSTRAINT lj_pos UNIQUE (pos) DEFERRABLE INITIALLY DEFERRED);
             INSERT INTO li SELECT g, g FROM generate_series(1, 20) g;
             INSERT INTO lj SELECT g, g FROM generate_series(1, 40) g;",
        )
        .await
        .unwrap();
    run_under(
        &db,
        "li",
        None,
        // Batches that split one UPDATE's keys (as 5,000 split updates of a few hundred rows).
        &["--replay-batch", "7"],
        // A bounded number: a catch-up in batches of 7 could not keep up with these for long.
        60,
        &["UPDATE {t} SET pos = pos + 1"],
    )
    .await;
    // Initially deferred: a swap of two values in two statements.
    run_under(
        &db,
        "lj",
        None,
        &["--replay-batch", "10"],
        // Bounded (about 15 s of writes, through the copy and the replay): under --nice 5 on a
        // loaded 2-core machine, replay in batches of 10 could not keep up with an endless stream
        // (CI, session 7: the same with the binary before the session's changes).
        300,
        &[
            "UPDATE {t} SET pos = 1 WHERE id = 2; UPDATE {t} SET pos = 2 WHERE id = 1; \
           UPDATE {t} SET pos = 1 WHERE id = 1; UPDATE {t} SET pos = 2 WHERE id = 2",
        ],
    )
    .await;
    let deferrable: (bool, bool) = client
        .query_one(
            "SELECT condeferrable, condeferred FROM pg_constraint WHERE conrelid = 'lj'::regclass AND conname = 'lj_pos'",
            &[],
        )
        .await
        .map(|r| (r.get(0), r.get(1)))
        .unwrap();
    assert_eq!(deferrable, (true, true), "the constraint stays as it was");
}

/// Issue 13, input 5: with the foreign key on the shadow, the application's own
/// `DELETE FROM parent` failed ("violates foreign key constraint ... on table child_new") and the
/// run failed validating it. Also a self-reference and ON DELETE CASCADE.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parents_deleted_the_ordinary_way_during_the_run() {
    let db = TestDb::new("cons_fk_parents").await;
    let client = db.client().await;
    client
        .batch_execute(
            "CREATE TABLE parent (id int PRIMARY KEY);
             CREATE TABLE child (id int PRIMARY KEY, parent_id int NOT NULL REFERENCES parent,
                                 up int REFERENCES child ON DELETE CASCADE, note text);
             CREATE TABLE other (id int PRIMARY KEY, parent_id int REFERENCES parent ON DELETE CASCADE);
             INSERT INTO parent SELECT g FROM generate_series(1, 50) g;
             INSERT INTO child SELECT g, 1 + g % 50, NULL, 'c' FROM generate_series(1, 200) g;",
        )
        .await
        .unwrap();
    run_under(
        &db,
        "child",
        Some("ALTER COLUMN note TYPE varchar(20)"),
        &[],
        u64::MAX,
        &[
            // A new parent with children, then the oldest parent goes: children first.
            "INSERT INTO parent VALUES ({n}); \
             INSERT INTO {t} VALUES ({n} * 10, {n}, NULL, 'n'), ({n} * 10 + 1, {n}, {n} * 10, 'n'); \
             DELETE FROM {t} WHERE parent_id = (SELECT min(id) FROM parent); \
             DELETE FROM parent WHERE id = (SELECT min(id) FROM parent)",
        ],
    )
    .await;
    let fks: Vec<(String, bool)> = client
        .query(
            "SELECT conname::text, convalidated FROM pg_constraint WHERE conrelid = 'child'::regclass AND contype = 'f' ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        fks,
        vec![
            ("child_parent_id_fkey".to_string(), true),
            ("child_up_fkey".to_string(), true)
        ],
        "the new table has both foreign keys, validated"
    );
    // They hold: deleting a referenced parent is refused, a cascade still cascades.
    assert!(client
        .batch_execute("DELETE FROM parent WHERE id = (SELECT parent_id FROM child LIMIT 1)")
        .await
        .is_err());
}

/// Issue 21, input 3: a citext key changed to text while the application lowercases addresses
/// (the same key for citext) kept both spellings in the new table: the capture logged one of
/// the two, replay removed that spelling only. Also a key whose collation the ALTER changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_whose_equality_the_alter_changes() {
    let db = TestDb::new("cons_citext_key").await;
    let client = db.client().await;
    client
        .batch_execute(
            "CREATE EXTENSION IF NOT EXISTS citext;
             CREATE TABLE t (email citext PRIMARY KEY, n int);
             INSERT INTO t SELECT 'User' || g || '@Example.org', g FROM generate_series(1, 60) g;",
        )
        .await
        .unwrap();
    run_under(
        &db,
        "t",
        Some("ALTER COLUMN email TYPE text"),
        // Replay alone must get it right (verification would repair it, and can be off).
        &["--verify", "off", "--nice", "30"],
        u64::MAX,
        &[
            // Spread over the key space, so rows change after their chunk was copied.
            "-- fresh session\n\
             UPDATE {t} SET email = lower(email), n = n + 1 WHERE lower(email) = 'user' || ({n} * 7 % 60 + 1) || '@example.org'; \
             UPDATE {t} SET email = upper(email) WHERE lower(email) = 'user' || ({n} * 11 % 60 + 1) || '@example.org'; \
             INSERT INTO {t} VALUES ('New' || {n} || '@X.org', {n})",
        ],
    )
    .await;
}
