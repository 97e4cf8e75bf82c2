//! The sample oracle (issue 13, "An oracle inside the tool", `src/rewrite/oracle/`): PostgreSQL's own
//! ALTER on sampled rows against the mapping, before anything is created. Each test runs the
//! real binary on a fresh database and checks the exit code, what it said (both values of a
//! difference), and that a refusal left the table and the schema as they were.

use std::process::Output;

use tokio_postgres::Client;

use crate::harness::{all_output, assert_exit, describe, hotswap_async, TestDb};

/// `app.t (id int PRIMARY KEY, amount numeric(12,2))` with `rows`.
async fn setup(test: &str, rows: &str) -> (TestDb, Client) {
    let db = TestDb::new(test).await;
    let client = db.client().await;
    client
        .batch_execute(&format!(
            "CREATE SCHEMA app;
             CREATE TABLE app.t (id int PRIMARY KEY, amount numeric(12,2));
             INSERT INTO app.t VALUES {rows};"
        ))
        .await
        .unwrap();
    (db, client)
}

/// The rows and column definitions of app.t, and every relation in schema app: compared
/// before and after a refusal.
async fn snapshot(client: &Client) -> String {
    client
        .query_one(
            "SELECT (SELECT string_agg(t::text, ',' ORDER BY id) FROM app.t t) || ' | ' || \
             (SELECT string_agg(attname || ':' || format_type(atttypid, atttypmod), ',' ORDER BY attnum) \
                FROM pg_attribute WHERE attrelid = 'app.t'::regclass AND attnum > 0 AND NOT attisdropped) || ' | ' || \
             (SELECT string_agg(c.relname, ',' ORDER BY c.relname) FROM pg_class c \
                JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'app')",
            &[],
        )
        .await
        .expect("snapshot of app.t")
        .get(0)
}

async fn run(db: &TestDb, extra: &[&str]) -> Output {
    let mut args = vec!["run", "--dsn", &db.conninfo, "--table", "app.t"];
    args.extend_from_slice(extra);
    hotswap_async(&args).await
}

/// Exit 3, the error names every part, and nothing changed.
async fn assert_refused(client: &Client, before: &str, out: &Output, parts: &[&str]) {
    assert_exit(out, 3);
    let stderr = String::from_utf8_lossy(&out.stderr);
    for p in parts {
        assert!(
            stderr.contains(p),
            "the error does not say {p:?}\n{}",
            describe(out)
        );
    }
    assert!(
        stderr.contains("nothing was changed"),
        "no state\n{}",
        describe(out)
    );
    assert_eq!(snapshot(client).await, before, "{}", describe(out));
}

async fn amounts(client: &Client) -> Vec<(i32, String)> {
    client
        .query("SELECT id, amount::text FROM app.t ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

/// Issue 13, "Must show": a mapping forced wrong through `--map` (it contradicts the ALTER's
/// USING) is refused before anything is created, showing PostgreSQL's value and the mapping's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_map_that_contradicts_the_alter_is_refused_with_both_values() {
    let (db, client) = setup("oracle_wrong_map", "(1, 1.25), (2, 3.50)").await;
    let before = snapshot(&client).await;
    let out = run(
        &db,
        &[
            "--alter",
            "ALTER COLUMN amount TYPE bigint USING (amount * 100)::bigint",
            "--map",
            "amount=amount::bigint",
        ],
    )
    .await;
    assert_refused(
        &client,
        &before,
        &out,
        &[
            "column amount, row id=1: PostgreSQL gives 125, the mapping gives 1",
            "--map for amount contradicts the ALTER",
        ],
    )
    .await;

    // The same with no ALTER on the column: the ALTER keeps it, the --map changes it.
    let out = run(
        &db,
        &[
            "--alter",
            "ADD COLUMN note text",
            "--map",
            "amount=amount + 1",
        ],
    )
    .await;
    assert_refused(
        &client,
        &before,
        &out,
        &["PostgreSQL gives 1.25, the mapping gives 2.25"],
    )
    .await;
}

/// A `--map` that agrees with the ALTER passes, and one that fills a new column is the user's
/// word (not compared, and said so).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_map_that_agrees_or_fills_a_new_column_passes() {
    let (db, client) = setup("oracle_good_map", "(1, 1.25), (2, NULL)").await;
    let out = run(
        &db,
        &[
            "--alter",
            "ALTER COLUMN amount TYPE bigint USING (amount * 100)::bigint, ADD COLUMN doubled numeric",
            "--map",
            "amount=(amount * 100)::bigint",
            "--map",
            "doubled=amount * 2",
        ],
    )
    .await;
    assert_exit(&out, 0);
    let said = all_output(&out);
    assert!(
        said.contains(
            "sample check: PostgreSQL's own ALTER and the mapping agree on 2 sampled row(s)"
        ),
        "{}",
        describe(&out)
    );
    assert!(
        said.contains("doubled (new column filled by --map"),
        "{}",
        describe(&out)
    );
    let rows: Vec<(i32, Option<i64>, Option<String>)> = client
        .query(
            "SELECT id, amount, doubled::text FROM app.t ORDER BY id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(
        rows,
        vec![(1, Some(125), Some("2.50".into())), (2, None, None)]
    );
}

/// Issue 13, input 1: `USING` must give PostgreSQL's 125, never 1. Before the mapping followed
/// USING, the oracle refused, naming 125; now the run succeeds with 125 (pinned to that).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn using_never_stores_a_value_postgresql_would_not() {
    let (db, client) = setup("oracle_using", "(1, 1.25)").await;
    let out = run(
        &db,
        &[
            "--alter",
            "ALTER COLUMN amount TYPE bigint USING (amount * 100)::bigint",
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_eq!(amounts(&client).await, vec![(1, "125".to_string())]);
}

/// The edge rows: the table holds no NULL, but a NULL may come; the ALTER's USING turns it into
/// -1 where the mapping keeps NULL. Only the row with a NULL put in shows it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_difference_only_on_null_is_found_by_the_edge_rows() {
    let (db, client) = setup("oracle_edge_null", "(1, 1.25), (2, 2.00)").await;
    let before = snapshot(&client).await;
    let out = run(
        &db,
        &[
            "--alter",
            "ALTER COLUMN amount TYPE bigint USING coalesce((amount * 100)::bigint, -1)",
            "--map",
            "amount=(amount * 100)::bigint",
        ],
    )
    .await;
    assert_refused(
        &client,
        &before,
        &out,
        &[
            "with NULL put into amount",
            "PostgreSQL gives -1, the mapping gives NULL",
        ],
    )
    .await;
}

/// What PostgreSQL's ALTER refuses on the rows (SET NOT NULL over a NULL, a USING that fails)
/// is refused before anything is created, naming the cause.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alter_that_fails_on_the_rows_is_refused_early() {
    let (db, client) = setup("oracle_alter_fails", "(1, 1.25), (2, NULL), (3, 0)").await;
    let before = snapshot(&client).await;
    let out = run(&db, &["--alter", "ALTER COLUMN amount SET NOT NULL"]).await;
    assert_refused(
        &client,
        &before,
        &out,
        // The whole table is probed for NULLs before the sample check (`oracle::nulls`).
        &[
            "column \"amount\" has NULL in at least one row (key (id) = (2))",
            "PostgreSQL's own ALTER TABLE would fail on that row too",
        ],
    )
    .await;
    let out = run(
        &db,
        &[
            "--alter",
            "ALTER COLUMN amount TYPE int USING (100 / amount)::int",
        ],
    )
    .await;
    assert_refused(
        &client,
        &before,
        &out,
        &["PostgreSQL's own ALTER TABLE fails", "division by zero"],
    )
    .await;
}

/// A `--map` that fails on a sampled row (here the last by key) is refused before anything is
/// created, instead of stopping the copy halfway.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_map_that_fails_on_a_sampled_row_is_refused_early() {
    let (db, client) = setup("oracle_map_fails", "(1, 1.25), (2, 2), (3, 7)").await;
    let before = snapshot(&client).await;
    let out = run(
        &db,
        &["--alter", "ADD COLUMN n int", "--map", "n = 1 / (id - 3)"],
    )
    .await;
    assert_refused(
        &client,
        &before,
        &out,
        &["division by zero", "fix the --map expression of n"],
    )
    .await;
}

/// `plan` shows the check's outcome: agreement with the rows and columns compared, and a
/// refusal with both values (exit 3).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_shows_the_sample_check() {
    let (db, client) = setup("oracle_plan", "(1, 1.25), (2, NULL)").await;
    let before = snapshot(&client).await;
    let plan = |extra: Vec<&'static str>| {
        let conninfo = db.conninfo.clone();
        async move {
            let mut args = vec![
                "plan",
                "--dsn",
                &conninfo,
                "--table",
                "app.t",
                "--observe",
                "10ms",
            ];
            args.extend(extra);
            hotswap_async(&args).await
        }
    };
    // A wider numeric needs no rewrite: forced, so that the copy's sample check is shown.
    let out = plan(vec![
        "--alter",
        "ALTER COLUMN amount TYPE numeric(14,2)",
        "--force-rewrite",
    ])
    .await;
    assert_exit(&out, 0);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(
            "sample check: PostgreSQL's own ALTER and the mapping agree on 2 sampled row(s) and 1 row(s) with 1 NULL(s) put in, 2 column(s) compared"
        ),
        "{}",
        describe(&out)
    );

    let out = plan(vec![
        "--alter",
        "ALTER COLUMN amount TYPE bigint USING (amount * 100)::bigint",
        "--map",
        "amount=amount::bigint",
        "--output",
        "json",
    ])
    .await;
    assert_exit(&out, 3);
    let json: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}\n{}", describe(&out)));
    let refused = json["refused"].as_str().unwrap_or_default();
    assert!(
        refused.contains("PostgreSQL gives 125, the mapping gives 1"),
        "{}",
        describe(&out)
    );

    let out = plan(vec!["--output", "json"]).await;
    assert_exit(&out, 0);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["sample_check"]["done"], true, "{}", describe(&out));
    assert_eq!(json["sample_check"]["rows"], 2, "{}", describe(&out));
    assert_eq!(snapshot(&client).await, before);
}

/// A table of many column types: a rebuild without ALTER and a no-op ALTER pass the check (the
/// binary COPY and the ALTER agree on every type, NULLs included), and every column is compared.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_column_types_pass_a_no_op_rewrite() {
    let db = TestDb::new("oracle_types").await;
    let client = db.client().await;
    client
        .batch_execute(
            "CREATE SCHEMA app;
             CREATE TYPE app.mood AS ENUM ('sad', 'ok', 'happy');
             CREATE DOMAIN app.posint AS int CHECK (VALUE > 0);
             CREATE TYPE app.pair AS (a int, b text);
             CREATE TABLE app.t (
                id int PRIMARY KEY,
                ints int[],
                texts text[],
                d app.posint,
                m app.mood,
                n numeric(10,3),
                c char(5),
                vc varchar(7),
                ts timestamp(2),
                tz timestamptz(0),
                b bit(4),
                vb varbit(8),
                iv interval,
                j jsonb,
                js json,
                x xml,
                p point,
                pr app.pair,
                f float8,
                r real,
                by bytea,
                u uuid,
                g int GENERATED ALWAYS AS (id * 2) STORED,
                amount numeric(12,2) CHECK (amount >= 0)
             );
             INSERT INTO app.t (id, ints, texts, d, m, n, c, vc, ts, tz, b, vb, iv, j, js, x, p, pr, f, r, by, u, amount)
             SELECT g, ARRAY[g, NULL, -g], ARRAY['a b', NULL, 'quo\"te'], g, (ARRAY['sad','ok','happy'])[1 + g % 3]::app.mood,
                    g / 7.0, 'ab', 'x' || g, '2024-02-29 12:34:56.78'::timestamp + g * interval '1 day',
                    '2024-01-01 00:00:00+00'::timestamptz + g * interval '1 hour',
                    (g % 16)::bit(4), (g % 200)::bit(8)::varbit, g * interval '1 minute 3.5 seconds',
                    jsonb_build_object('k', g, 'arr', jsonb_build_array(1.50, 'x', null)),
                    '{\"b\": 1,  \"a\": [1.0]}', xmlelement(name e, xmlattributes(g AS n), 'v<'),
                    point(g, -g), ROW(g, 'p')::app.pair, 1.0 / 3 + g, 0.1::real * g,
                    decode('00ff' || lpad(to_hex(g), 4, '0'), 'hex'), md5(g::text)::uuid, g * 1.5
               FROM generate_series(1, 50) g;
             INSERT INTO app.t (id) VALUES (1000);",
        )
        .await
        .unwrap();
    let columns = 24; // every column of the table, the generated one included
    for alter in [None, Some("SET (fillfactor = 90)")] {
        let mut args = vec!["run", "--dsn", &db.conninfo, "--table", "app.t"];
        if let Some(a) = alter {
            args.extend(["--alter", a]);
        }
        let out = hotswap_async(&args).await;
        assert_exit(&out, 0);
        let said = all_output(&out);
        assert!(
            said.contains(
                "sample check: PostgreSQL's own ALTER and the mapping agree on 51 sampled row(s)"
            ) && said.contains(&format!("{columns} column(s) compared")),
            "{}",
            describe(&out)
        );
        assert!(!said.contains("not compared"), "{}", describe(&out));
    }
}

/// The check changes nothing that outlives it: a new serial column is numbered from 1 by the
/// copy, although the check ran the ALTER and the mapping over the rows first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_check_draws_no_sequence_values_of_the_new_table() {
    let (db, client) = setup("oracle_serial", "(1, 1.25), (2, 2.5), (3, 7)").await;
    let out = run(
        &db,
        &[
            "--alter",
            "ADD COLUMN n serial, ADD COLUMN r float8 DEFAULT random(), ADD COLUMN five int DEFAULT 5",
        ],
    )
    .await;
    assert_exit(&out, 0);
    let said = all_output(&out);
    assert!(
        said.contains("n, r (volatile default"),
        "{}",
        describe(&out)
    );
    let ns: Vec<(i32, i32, i32)> = client
        .query("SELECT id, n, five FROM app.t ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(ns, vec![(1, 1, 5), (2, 2, 5), (3, 3, 5)]);
}
