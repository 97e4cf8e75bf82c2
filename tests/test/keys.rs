//! Issue 21, "Every row exactly once": chunks partition the key space exactly for every key
//! type, and verification works when the ALTER changes a key column's type.
//!
//! Each test fills a table keyed by one key type (values chosen so that text order and the
//! key's order differ: '10' < '2', -0, NaN, infinity, BC dates, ICU collations...), runs with
//! many small chunks and one chunk per transaction, and checks that every row was copied
//! exactly once (the chunks' recorded row counts add up to the table's row count) and that the
//! new table equals the old one row for row (multisets of `row_to_json`). The database's
//! sessions run with unusual DateStyle, TimeZone, IntervalStyle, extra_float_digits and
//! bytea_output, so that bounds rendered as text must not depend on them. The tests under
//! writes run a writer that changes rows by key (updates, inserts, deletes, key changes) and
//! mirrors each change into a ledger table in the same transaction; afterwards the table must
//! equal its ledger.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio_postgres::Client;

use crate::harness::{assert_exit, describe, hotswap_async, TestDb};

/// A fresh database whose sessions default to settings that change how values print.
async fn odd_db(name: &str) -> (TestDb, Client) {
    let db = TestDb::new(name).await;
    let c = db.client().await;
    c.batch_execute(&format!(
        "ALTER DATABASE \"{0}\" SET DateStyle = 'SQL, DMY'; \
         ALTER DATABASE \"{0}\" SET TimeZone = 'Asia/Kathmandu'; \
         ALTER DATABASE \"{0}\" SET IntervalStyle = 'sql_standard'; \
         ALTER DATABASE \"{0}\" SET extra_float_digits = -15; \
         ALTER DATABASE \"{0}\" SET bytea_output = 'escape'",
        db.name
    ))
    .await
    .unwrap();
    drop(c);
    let c = db.client().await;
    (db, c)
}

/// The rows of `table` as a sorted multiset of `row_to_json` texts.
async fn rows_of(c: &Client, table: &str) -> Vec<String> {
    let mut v: Vec<String> = c
        .query(&format!("SELECT row_to_json(x)::text FROM {table} x"), &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    v.sort();
    v
}

/// (chunks, their recorded rows added up) of the newest run.
async fn chunk_totals(c: &Client) -> (i64, i64) {
    let r = c
        .query_one(
            "SELECT count(*), COALESCE(sum(rows), 0)::int8 FROM hotswap.chunks \
              WHERE run_id = (SELECT max(id) FROM hotswap.runs)",
            &[],
        )
        .await
        .unwrap();
    (r.get(0), r.get(1))
}

/// The predicate of the newest run's second chunk (to see how the chunks were bounded).
async fn second_predicate(c: &Client) -> String {
    c.query_one(
        "SELECT predicate FROM hotswap.chunks \
          WHERE run_id = (SELECT max(id) FROM hotswap.runs) AND chunk_no = 1",
        &[],
    )
    .await
    .unwrap()
    .get(0)
}

async fn count(c: &Client, table: &str) -> i64 {
    c.query_one(&format!("SELECT count(*) FROM {table}"), &[])
        .await
        .unwrap()
        .get(0)
}

fn run_args<'a>(db: &'a TestDb, chunk_rows: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "run",
        "--dsn",
        &db.conninfo,
        "--table",
        "public.t",
        "--chunk-rows",
        chunk_rows,
        "--chunk-time",
        "off",
    ];
    args.extend_from_slice(extra);
    args
}

/// Creates `public.t` with `ddl` (which also fills it), runs a no-op rewrite with chunks of
/// `chunk_rows` rows, and checks: at least `min_chunks` chunks, every row copied exactly once,
/// the new table equal to the old one. Returns the database for further checks.
async fn exactly_once(
    name: &str,
    ddl: &str,
    chunk_rows: &str,
    min_chunks: i64,
) -> (TestDb, Client) {
    let (db, c) = odd_db(name).await;
    c.batch_execute(ddl).await.unwrap();
    c.batch_execute("ANALYZE public.t").await.unwrap();
    let before = rows_of(&c, "public.t").await;
    let n = before.len() as i64;
    let out = hotswap_async(&run_args(&db, chunk_rows, &[])).await;
    assert_exit(&out, 0);
    let (chunks, copied) = chunk_totals(&c).await;
    assert!(
        chunks >= min_chunks,
        "only {chunks} chunks (wanted at least {min_chunks})\n{}",
        describe(&out)
    );
    assert_eq!(
        copied,
        n,
        "the chunks copied {copied} rows of a table of {n} (chunk 1: {})",
        second_predicate(&c).await
    );
    let after = rows_of(&c, "public.t").await;
    assert!(before == after, "the new table differs from the old one");
    (db, c)
}

// ------------------------------------------------------------------------------------------
// The failures of the issue

/// Issue 21, input 2: a composite integer key, 50,000 rows over 50 tenants, chunks of 2,000:
/// the bounds were sorted by their text form ('10' < '2'), the chunks overlapped, 144,000 rows
/// were copied and the key's build failed on a duplicate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn composite_integer_key_is_copied_once() {
    exactly_once(
        "keys_composite_issue",
        "CREATE TABLE public.t (tenant_id int, id int, v int, PRIMARY KEY (tenant_id, id)); \
         INSERT INTO public.t SELECT g % 50 + 1, g, g FROM generate_series(1, 50000) g",
        "2000",
        20,
    )
    .await;
}

/// Issue 21, input 7: an int key changed to text, several chunks: verification applied the
/// source's chunk predicates to the shadow ("operator does not exist: text < integer").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn int_key_changed_to_text_is_verified() {
    let (db, c) = odd_db("keys_int_to_text").await;
    c.batch_execute(
        "CREATE TABLE public.t (id int PRIMARY KEY, v text); \
         INSERT INTO public.t SELECT g, 'v' || g FROM generate_series(1, 5000) g; \
         CREATE TABLE public.oracle AS SELECT * FROM public.t; \
         ALTER TABLE public.oracle ALTER COLUMN id TYPE text; \
         ANALYZE public.t",
    )
    .await
    .unwrap();
    let out = hotswap_async(&run_args(
        &db,
        "400",
        &["--alter", "ALTER COLUMN id TYPE text", "--verify", "full"],
    ))
    .await;
    assert_exit(&out, 0);
    let (chunks, copied) = chunk_totals(&c).await;
    assert!(chunks >= 10, "{chunks} chunks");
    assert_eq!(copied, 5000);
    assert!(rows_of(&c, "public.t").await == rows_of(&c, "public.oracle").await);
}

/// Verification with a changed key type still finds a row the shadow has and the source
/// lacks, and one that differs: both are repaired from the source before the swap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changed_key_type_verification_sees_extra_and_wrong_rows() {
    let (db, c) = odd_db("keys_changed_verify").await;
    c.batch_execute(
        "CREATE TABLE public.t (id int PRIMARY KEY, v text); \
         INSERT INTO public.t SELECT g, 'v' || g FROM generate_series(1, 3000) g; \
         ANALYZE public.t",
    )
    .await
    .unwrap();
    // Stop the run right after the build (before replay and verification), damage the
    // shadow, and resume.
    let out = crate::harness::hotswap_failpoint(
        &run_args(&db, "300", &["--alter", "ALTER COLUMN id TYPE text"]),
        Some("phase-replay"),
    )
    .await;
    assert_eq!(
        out.status.code(),
        Some(pg_hotswap::failpoint::EXIT),
        "{}",
        describe(&out)
    );
    c.batch_execute(
        "INSERT INTO public.t_new (id, v) VALUES ('99999', 'extra'); \
         UPDATE public.t_new SET v = 'wrong' WHERE id = '17'",
    )
    .await
    .unwrap();
    let out = hotswap_async(&["resume", "--dsn", &db.conninfo, "--table", "public.t"]).await;
    assert_exit(&out, 0);
    assert!(
        crate::harness::all_output(&out).contains("2 rows of the shadow differ"),
        "{}",
        describe(&out)
    );
    assert_eq!(count(&c, "public.t").await, 3000);
    let v: String = c
        .query_one("SELECT v FROM public.t WHERE id = '17'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(v, "v17");
}

// ------------------------------------------------------------------------------------------
// One test per key type, no writes

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn integer_key() {
    exactly_once(
        "keys_integer",
        "CREATE TABLE public.t (id int PRIMARY KEY, v int); \
         INSERT INTO public.t SELECT g * 7 - 20000, g FROM generate_series(1, 6000) g; \
         INSERT INTO public.t VALUES (-2147483648, 0), (2147483647, 0)",
        "200",
        20,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bigint_key() {
    exactly_once(
        "keys_bigint",
        "CREATE TABLE public.t (id bigint PRIMARY KEY, v int); \
         INSERT INTO public.t SELECT g::int8 * 1000000007, g FROM generate_series(-3000, 3000) g; \
         INSERT INTO public.t VALUES (-9223372036854775808, 0), (9223372036854775807, 0)",
        "200",
        20,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn composite_key_with_desc_column() {
    let (_db, c) = exactly_once(
        "keys_composite_desc",
        "CREATE TABLE public.t (a int NOT NULL, b text NOT NULL, v int); \
         CREATE UNIQUE INDEX t_ab ON public.t (a, b DESC); \
         INSERT INTO public.t SELECT g % 13, 'b' || g, g FROM generate_series(1, 5000) g",
        "150",
        20,
    )
    .await;
    let _ = c;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_key_default_collation() {
    exactly_once(
        "keys_text_default",
        "CREATE TABLE public.t (k text PRIMARY KEY, v int); \
         INSERT INTO public.t SELECT (ARRAY['', 'a', 'B', 'Ä', ' z', 'it''s', 'x y'])[g % 7 + 1] || g, g \
           FROM generate_series(1, 5000) g",
        "150",
        20,
    )
    .await;
}

async fn has_icu(c: &Client) -> bool {
    c.query_one(
        "SELECT EXISTS (SELECT 1 FROM pg_collation WHERE collname = 'en-x-icu')",
        &[],
    )
    .await
    .unwrap()
    .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_key_icu_collation() {
    let db = TestDb::new("keys_icu_probe").await;
    if !has_icu(&db.client().await).await {
        eprintln!("the server has no ICU collations: skipped");
        return;
    }
    let (_db, c) = exactly_once(
        "keys_text_icu",
        "CREATE TABLE public.t (k text COLLATE \"en-x-icu\" PRIMARY KEY, v int); \
         INSERT INTO public.t SELECT (ARRAY['a', 'B', 'b', 'Ä', 'ä', 'Z', '_', '1'])[g % 8 + 1] || g, g \
           FROM generate_series(1, 5000) g",
        "150",
        20,
    )
    .await;
    // Bounded in the key's own collation.
    assert!(second_predicate(&c)
        .await
        .contains("COLLATE pg_catalog.\"en-x-icu\""));
}

/// A non-deterministic collation: chunked by block ranges, not by key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_key_nondeterministic_collation_by_blocks() {
    let db = TestDb::new("keys_ci_probe").await;
    if !has_icu(&db.client().await).await {
        eprintln!("the server has no ICU collations: skipped");
        return;
    }
    let (_db, c) = exactly_once(
        "keys_text_ci",
        "CREATE COLLATION public.ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false); \
         CREATE TABLE public.t (k text COLLATE public.ci PRIMARY KEY, v int); \
         INSERT INTO public.t SELECT (ARRAY['a', 'B', 'Ä'])[g % 3 + 1] || g, g FROM generate_series(1, 5000) g",
        "150",
        10,
    )
    .await;
    assert!(second_predicate(&c).await.starts_with("ctid >= "));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn citext_key() {
    exactly_once(
        "keys_citext",
        "CREATE EXTENSION citext; \
         CREATE TABLE public.t (email citext PRIMARY KEY, v int); \
         INSERT INTO public.t SELECT (ARRAY['User', 'admin', 'Zed', 'bob'])[g % 4 + 1] || g || '@Example.org', g \
           FROM generate_series(1, 5000) g",
        "150",
        20,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uuid_key() {
    exactly_once(
        "keys_uuid",
        "CREATE TABLE public.t (id uuid PRIMARY KEY, v int); \
         INSERT INTO public.t SELECT md5(g::text)::uuid, g FROM generate_series(1, 5000) g",
        "150",
        20,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn numeric_key() {
    exactly_once(
        "keys_numeric",
        "CREATE TABLE public.t (n numeric PRIMARY KEY, v int); \
         INSERT INTO public.t SELECT g / 7.0, g FROM generate_series(-2500, 2500) g; \
         INSERT INTO public.t VALUES (10.00001, 0), (9.50001, 0), (100.00001, 0), (1e30, 0), (-1e-30, 0), \
           ('NaN', 0), ('Infinity', 0), ('-Infinity', 0), (123456789012345678901234567890.123456789, 0)",
        "150",
        20,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn float8_key() {
    exactly_once(
        "keys_float8",
        "CREATE TABLE public.t (f float8 PRIMARY KEY, v int); \
         INSERT INTO public.t SELECT g / 3.0::float8, g FROM generate_series(1, 5000) g; \
         INSERT INTO public.t VALUES ('-0', 0), ('NaN', 0), ('Infinity', 0), ('-Infinity', 0), \
           (1e-300, 0), (5e-324, 0), (-1.7976931348623157e308, 0), (10.125, 0), (2.5e15, 0), \
           (0.1::float8 + 0.2::float8, 0), (-2, 0), (-10, 0)",
        "150",
        20,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timestamptz_key() {
    exactly_once(
        "keys_timestamptz",
        "CREATE TABLE public.t (ts timestamptz PRIMARY KEY, v int); \
         INSERT INTO public.t SELECT timestamptz '2020-03-29 01:59:59.123456+00' + g * interval '37 minutes 0.000001 s', g \
           FROM generate_series(-2500, 2500) g; \
         INSERT INTO public.t VALUES ('infinity', 0), ('-infinity', 0), ('0044-03-15 12:00:00+00 BC', 0), \
           ('4713-01-01 00:00:00+00 BC', 0), ('0001-01-01 00:00:00+00', 0), ('0001-12-31 23:59:59.999999+00 BC', 0), \
           ('1883-11-18 12:00:00 America/New_York', 0)",
        "150",
        20,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytea_key() {
    exactly_once(
        "keys_bytea",
        "CREATE TABLE public.t (b bytea PRIMARY KEY, v int); \
         INSERT INTO public.t SELECT decode(md5(g::text), 'hex'), g FROM generate_series(1, 5000) g; \
         INSERT INTO public.t VALUES ('\\x', 0), ('\\x00', 0), ('\\xff', 0), ('\\x5c27', 0)",
        "150",
        20,
    )
    .await;
}

// ------------------------------------------------------------------------------------------
// Under writes

/// A writer of `public.t` that mirrors every change into `public.ledger` in the same
/// transaction: updates, inserts, deletes and key changes of random rows. `new_row` is a
/// SELECT list (over `g`, an int) producing a new row's columns in table order; `keys` the key
/// columns.
struct Writer {
    stop: Arc<AtomicBool>,
    done: Arc<AtomicU64>,
    handle: tokio::task::JoinHandle<()>,
}

async fn prepare_writer(c: &Client, keys: &[&str], new_row: &str) {
    let on = |a: &str| {
        keys.iter()
            .map(|k| format!("{a}.\"{k}\" = r.\"{k}\""))
            .collect::<Vec<_>>()
            .join(" AND ")
    };
    let set_keys = keys
        .iter()
        .map(|k| format!("\"{k}\" = n.\"{k}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let body = format!(
        "DECLARE r record; BEGIN \
           SELECT * INTO r FROM public.ledger ORDER BY random() LIMIT 1; \
           IF op = 1 OR r IS NULL THEN \
             INSERT INTO public.t SELECT {new_row}; \
             INSERT INTO public.ledger SELECT {new_row}; \
           ELSIF op = 2 THEN \
             DELETE FROM public.t x WHERE {tx}; \
             DELETE FROM public.ledger x WHERE {tx}; \
           ELSIF op = 3 THEN \
             UPDATE public.t x SET {set_keys} FROM (SELECT {new_row}) n WHERE {tx}; \
             UPDATE public.ledger x SET {set_keys} FROM (SELECT {new_row}) n WHERE {tx}; \
           ELSE \
             UPDATE public.t x SET v = x.v + 1 WHERE {tx}; \
             UPDATE public.ledger x SET v = x.v + 1 WHERE {tx}; \
           END IF; END",
        tx = on("x"),
    );
    c.batch_execute(&format!(
        "CREATE TABLE public.ledger AS SELECT * FROM public.t; \
         CREATE FUNCTION public.hs_write(op int, g int) RETURNS void LANGUAGE plpgsql AS $w${body}$w$"
    ))
    .await
    .unwrap();
}

fn start_writer(conninfo: String) -> Writer {
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let (s, d) = (stop.clone(), done.clone());
    let handle = tokio::spawn(async move {
        let c = crate::harness::connect(&conninfo).await;
        let mut g: i32 = 1_000_000;
        while !s.load(Ordering::Relaxed) {
            g += 1;
            let op = g % 5;
            if c.execute("SELECT public.hs_write($1, $2)", &[&op, &g])
                .await
                .is_ok()
            {
                d.fetch_add(1, Ordering::Relaxed);
            }
            tokio::time::sleep(Duration::from_millis(3)).await;
        }
    });
    Writer { stop, done, handle }
}

impl Writer {
    async fn stop(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.handle.await;
        self.done.load(Ordering::Relaxed)
    }
}

async fn under_writes(name: &str, ddl: &str, keys: &[&str], new_row: &str, alter: &[&str]) {
    let (db, c) = odd_db(name).await;
    c.batch_execute(ddl).await.unwrap();
    c.batch_execute("ANALYZE public.t").await.unwrap();
    prepare_writer(&c, keys, new_row).await;
    let w = start_writer(db.conninfo.clone());
    tokio::time::sleep(Duration::from_millis(300)).await;
    // --nice 5 keeps the writes going through a copy of many chunks; it also paces
    // verification, whose ranges over a nondeterministic key cost tens of milliseconds each, so
    // 20 (as before) made one run last 90-160 s on an idle machine and risked the timeout on CI.
    let mut extra = vec!["--nice", "5"];
    extra.extend_from_slice(alter);
    let out = hotswap_async(&run_args(&db, "300", &extra)).await;
    let writes = w.stop().await;
    assert_exit(&out, 0);
    assert!(writes > 50, "only {writes} writes");
    let (chunks, _) = chunk_totals(&c).await;
    assert!(chunks >= 20, "{chunks} chunks");
    // The ledger had the same changes applied; with an ALTER, apply it to the ledger too.
    if let [_, a] = alter {
        c.batch_execute(&format!("ALTER TABLE public.ledger {a}"))
            .await
            .unwrap();
    }
    let (t, l) = (
        rows_of(&c, "public.t").await,
        rows_of(&c, "public.ledger").await,
    );
    assert_eq!(
        t.len(),
        l.len(),
        "{} rows in the table, {} in its ledger",
        t.len(),
        l.len()
    );
    assert!(t == l, "the table differs from its ledger");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn composite_key_under_writes() {
    under_writes(
        "keys_w_composite",
        "CREATE TABLE public.t (tenant_id int, id int, v int, PRIMARY KEY (tenant_id, id)); \
         INSERT INTO public.t SELECT g % 50 + 1, g, g FROM generate_series(1, 12000) g",
        &["tenant_id", "id"],
        "g % 50 + 1, g, 0",
        &[],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn float8_key_under_writes() {
    under_writes(
        "keys_w_float8",
        "CREATE TABLE public.t (f float8 PRIMARY KEY, v int); \
         INSERT INTO public.t SELECT g / 3.0::float8, g FROM generate_series(1, 12000) g; \
         INSERT INTO public.t VALUES ('-0', 0), ('NaN', 0), ('Infinity', 0), ('-Infinity', 0)",
        &["f"],
        "g / 7.0::float8, 0",
        &[],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_icu_key_changed_to_c_under_writes() {
    let db = TestDb::new("keys_icu_probe2").await;
    if !has_icu(&db.client().await).await {
        eprintln!("the server has no ICU collations: skipped");
        return;
    }
    under_writes(
        "keys_w_text_icu",
        "CREATE TABLE public.t (k text COLLATE \"en-x-icu\" PRIMARY KEY, v int); \
         INSERT INTO public.t SELECT (ARRAY['a', 'B', 'b', 'Ä'])[g % 4 + 1] || g, g FROM generate_series(1, 12000) g",
        &["k"],
        "'n' || g, 0",
        &[],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nondeterministic_key_under_writes() {
    let db = TestDb::new("keys_ci_probe2").await;
    if !has_icu(&db.client().await).await {
        eprintln!("the server has no ICU collations: skipped");
        return;
    }
    under_writes(
        "keys_w_text_ci",
        "CREATE COLLATION public.ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false); \
         CREATE TABLE public.t (k text COLLATE public.ci PRIMARY KEY, v int); \
         INSERT INTO public.t SELECT (ARRAY['a', 'B', 'Ä'])[g % 3 + 1] || g, g FROM generate_series(1, 12000) g",
        &["k"],
        "'n' || g, 0",
        &[],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn int_key_to_text_under_writes() {
    under_writes(
        "keys_w_int_text",
        "CREATE TABLE public.t (id int PRIMARY KEY, v int); \
         INSERT INTO public.t SELECT g, g FROM generate_series(1, 12000) g",
        &["id"],
        "g, 0",
        &["--alter", "ALTER COLUMN id TYPE text"],
    )
    .await;
}
