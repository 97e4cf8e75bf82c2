//! The ALTER means what PostgreSQL says it means (issues 13 and 21): for each input, the same
//! table is rewritten by pg-hotswap and, in a twin, by PostgreSQL's own `ALTER TABLE`, and
//! every value must come out the same (`::text`, so char padding and numeric scale count).
//! Small tables, several chunks; the scenario corpus (`scenarios.rs`) repeats them under writes.

use tokio_postgres::Client;

use crate::harness::{
    all_output, assert_exit, describe, hotswap_async, hotswap_async_env, spawn_held, HoldPoint,
    TestDb,
};

/// Creates `t` and its twin `t_twin` from `setup` (which creates `t`), runs pg-hotswap with
/// `alter` on `t`, the real ALTER on `t_twin`, and asserts both hold the same rows as text.
async fn rewrite_like_postgres(test: &str, setup: &str, alter: &str, extra: &[&str]) -> Client {
    let db = TestDb::new(test).await;
    let client = db.client().await;
    client.batch_execute(setup).await.expect("setup");
    client
        .batch_execute(
            "CREATE TABLE t_twin (LIKE t INCLUDING ALL); INSERT INTO t_twin SELECT * FROM t",
        )
        .await
        .expect("twin");
    let mut args = vec![
        "run",
        "--dsn",
        &db.conninfo,
        "--table",
        "public.t",
        "--alter",
        alter,
        "--chunk-rows",
        "2",
        "--chunk-time",
        "off",
    ];
    args.extend_from_slice(extra);
    let out = hotswap_async(&args).await;
    assert_exit(&out, 0);
    client
        .batch_execute(&format!("ALTER TABLE t_twin {alter}"))
        .await
        .expect("PostgreSQL's own ALTER on the twin");
    let diff: Vec<String> = client
        .query(
            "SELECT format('%s: pg-hotswap %s, ALTER TABLE %s', coalesce(a.k, b.k), a.r, b.r) \
               FROM (SELECT (row_to_json(t)->>'id') AS k, row_to_json(t)::text AS r FROM t) a \
               FULL JOIN (SELECT (row_to_json(t_twin)->>'id') AS k, row_to_json(t_twin)::text AS r FROM t_twin) b \
                 ON a.k = b.k WHERE a.r IS DISTINCT FROM b.r",
            &[],
        )
        .await
        .expect("comparing")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(
        diff.is_empty(),
        "rows differ from PostgreSQL's ALTER:\n{}\n{}",
        diff.join("\n"),
        describe(&out)
    );
    let types: Vec<(String, String)> = client
        .query(
            "SELECT format_type(a.atttypid, a.atttypmod), format_type(b.atttypid, b.atttypmod) \
               FROM pg_attribute a JOIN pg_attribute b ON b.attrelid = 't_twin'::regclass AND b.attnum = a.attnum \
              WHERE a.attrelid = 't'::regclass AND a.attnum > 0 AND NOT a.attisdropped",
            &[],
        )
        .await
        .expect("types")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    for (a, b) in types {
        assert_eq!(a, b, "column types differ");
    }
    client
}

/// Issue 13, input 1: `USING` was ignored; 1.25 became 1 instead of 125, and verification
/// passed because it verified through the same wrong mapping.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn using_is_followed_numeric_to_bigint() {
    let c = rewrite_like_postgres(
        "sem_using_numeric",
        "CREATE TABLE t (id int PRIMARY KEY, amount numeric(12,2));
         INSERT INTO t VALUES (1, 1.25), (2, 0.01), (3, NULL), (4, -7.5), (5, 99.99), (6, 0);",
        "ALTER COLUMN amount TYPE bigint USING (amount * 100)::bigint",
        &[],
    )
    .await;
    let v: i64 = c
        .query_one("SELECT amount FROM t WHERE id = 1", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(v, 125);
}

/// USING over several columns and types in one ALTER, and a USING that keeps the type.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn using_over_several_types_and_columns() {
    rewrite_like_postgres(
        "sem_using_several",
        "CREATE TABLE t (id int PRIMARY KEY, code text, n int, doc jsonb, at timestamp, a int, b int, name text);
         INSERT INTO t SELECT g, (g * 7)::text, g, jsonb_build_object('k', g), timestamp '2020-01-01' + g * interval '1 hour', g, g * 2, 'Name ' || g
           FROM generate_series(1, 9) g;",
        "ALTER COLUMN code TYPE int USING code::int + 1, \
         ALTER COLUMN n TYPE text USING to_char(n, 'FM0000'), \
         ALTER COLUMN doc TYPE text USING doc->>'k', \
         ALTER COLUMN at TYPE timestamptz USING at AT TIME ZONE 'UTC', \
         ALTER COLUMN a TYPE bigint USING a + b, \
         ALTER COLUMN name TYPE text USING upper(name)",
        &[],
    )
    .await;
}

/// Issue 13, input 2: enum -> enum with `USING state::text::v2` was refused (exit 3, "cannot
/// cast type order_state to order_state_v2") with a hint about a --map never given.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enum_to_enum_with_using() {
    rewrite_like_postgres(
        "sem_enum_enum",
        "CREATE TYPE order_state AS ENUM ('new', 'paid', 'shipped');
         CREATE TYPE order_state_v2 AS ENUM ('new', 'paid', 'packed', 'shipped');
         CREATE TABLE t (id int PRIMARY KEY, state order_state NOT NULL);
         INSERT INTO t SELECT g, (ARRAY['new','paid','shipped']::order_state[])[1 + g % 3] FROM generate_series(1, 9) g;",
        "ALTER COLUMN state TYPE order_state_v2 USING state::text::order_state_v2",
        &[],
    )
    .await;
}

/// Issue 21, input 1: the cast to `character` meant char(1): 'C000123' became 'C', 42 became
/// '4', and verification passed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn char_n_keeps_its_length() {
    let c = rewrite_like_postgres(
        "sem_char_n",
        "CREATE TABLE t (id int PRIMARY KEY, code varchar(8), n int);
         INSERT INTO t VALUES (1, 'C000123', 42), (2, 'A', 7), (3, NULL, NULL), (4, 'ABCDEFGH', -12345);",
        "ALTER COLUMN code TYPE char(8), ALTER COLUMN n TYPE char(10)",
        &[],
    )
    .await;
    let (code, n): (String, String) = c
        .query_one(
            "SELECT code::text || '|', n || '|' FROM t WHERE id = 1",
            &[],
        )
        .await
        .map(|r| (r.get(0), r.get(1)))
        .unwrap();
    assert_eq!((code.as_str(), n.as_str()), ("C000123|", "42|"));
    let padded: i32 = c
        .query_one("SELECT octet_length(code) FROM t WHERE id = 1", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(padded, 8, "char(8) is stored padded");
}

/// Type modifiers of the neighbours of char(n): bit(n), varchar(n), numeric(p,s),
/// timestamp(p), interval fields, arrays of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn type_modifiers_are_kept() {
    rewrite_like_postgres(
        "sem_typmods",
        "CREATE TABLE t (id int PRIMARY KEY, b text, v text, n numeric, ts timestamp, iv interval, arr text[]);
         INSERT INTO t VALUES
           (1, '101', 'abc', 3.14159, '2020-01-01 12:34:56.789123', '1 day 2 hours 3 minutes 4.5 seconds', '{ab,cd}'),
           (2, '1', 'a', -0.005, '1999-12-31 23:59:59.5', '3 years 2 mons', '{x}'),
           (3, NULL, NULL, NULL, NULL, NULL, NULL);",
        "ALTER COLUMN b TYPE bit(3) USING lpad(b, 3, '0')::bit(3), ALTER COLUMN v TYPE varchar(3), \
         ALTER COLUMN n TYPE numeric(6,2), ALTER COLUMN ts TYPE timestamp(0), \
         ALTER COLUMN iv TYPE interval day to minute, ALTER COLUMN arr TYPE char(3)[]",
        &[],
    )
    .await;
}

/// A value that does not fit the new type fails the run as PostgreSQL's ALTER fails (it is
/// never truncated), and the source is left as it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_too_long_fails_instead_of_being_truncated() {
    let db = TestDb::new("sem_too_long").await;
    let client = db.client().await;
    client
        .batch_execute(
            "CREATE TABLE t (id int PRIMARY KEY, code text);
             INSERT INTO t SELECT g, 'abc' FROM generate_series(1, 20) g;
             UPDATE t SET code = 'abcdef' WHERE id = 17;",
        )
        .await
        .unwrap();
    let out = hotswap_async(&[
        "run",
        "--dsn",
        &db.conninfo,
        "--table",
        "public.t",
        "--alter",
        "ALTER COLUMN code TYPE varchar(3)",
        "--chunk-rows",
        "2",
    ])
    .await;
    assert_ne!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(
        all_output(&out).contains("too long"),
        "names the cause: {}",
        describe(&out)
    );
    let n: i64 = client
        .query_one("SELECT count(*) FROM t WHERE code = 'abcdef'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1, "the source keeps its value");
}

/// Found by a new user: a type change to a domain over varchar(5) / char(3) / bit(4) (or an
/// array of one) cut longer values short, exit 0, where PostgreSQL's ALTER fails. The row is
/// outside the sample check's rows, so only the copy meets it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_too_long_for_a_domain_fails_instead_of_being_cut() {
    let db = TestDb::new("sem_domain_too_long").await;
    let client = db.client().await;
    client
        .batch_execute(
            "CREATE DOMAIN dom5 AS varchar(5); CREATE DOMAIN bit4 AS bit(4);
             CREATE TABLE t (id int PRIMARY KEY, c text, b varbit, arr text[]);
             INSERT INTO t SELECT g, 'v' || (g % 100), B'1011', ARRAY['ab'] FROM generate_series(1, 3000) g;",
        )
        .await
        .unwrap();
    for (col, alter, bad) in [
        ("c", "ALTER COLUMN c TYPE dom5", "'abcdefgh'"),
        ("b", "ALTER COLUMN b TYPE bit4", "B'10110111'"),
        ("arr", "ALTER COLUMN arr TYPE dom5[]", "ARRAY['abcdefgh']"),
    ] {
        client
            .batch_execute(&format!("UPDATE t SET {col} = {bad} WHERE id = 2500"))
            .await
            .unwrap();
        let out = hotswap_async(&[
            "run",
            "--dsn",
            &db.conninfo,
            "--table",
            "public.t",
            "--alter",
            alter,
        ])
        .await;
        assert_ne!(out.status.code(), Some(0), "{alter}: {}", describe(&out));
        let text = all_output(&out);
        assert!(
            text.contains("too long") || text.contains("does not match type"),
            "{alter}: names the cause\n{text}"
        );
        let abort = hotswap_async(&["abort", "--dsn", &db.conninfo, "--table", "public.t"]).await;
        assert_exit(&abort, 0);
        client
            .batch_execute(&format!(
                "UPDATE t SET {col} = (SELECT {col} FROM t WHERE id = 1) WHERE id = 2500"
            ))
            .await
            .unwrap();
    }
}

/// The same domains where every value fits: equal to PostgreSQL's ALTER.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn domains_over_length_limited_types() {
    rewrite_like_postgres(
        "sem_domains",
        "CREATE DOMAIN dom5 AS varchar(5) CHECK (VALUE <> 'zzz'); CREATE DOMAIN bpc3 AS char(3);
         CREATE TABLE t (id int PRIMARY KEY, c text, b text, arr text[]);
         INSERT INTO t SELECT g, 'v' || (g % 100), 'ab', ARRAY['x' || g % 10] FROM generate_series(1, 9) g;",
        "ALTER COLUMN c TYPE dom5, ALTER COLUMN b TYPE bpc3, ALTER COLUMN arr TYPE dom5[]",
        &[],
    )
    .await;
}

/// Found by a fresh tester: a table with an xml column is copied in the text format, whose
/// sessions pinned DateStyle and IntervalStyle, so `d TYPE text` printed dates otherwise than
/// PostgreSQL's ALTER does under the database's settings (and the run failed verification).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn casts_to_text_follow_the_database_settings_in_a_text_format_copy() {
    rewrite_like_postgres(
        "sem_text_copy_settings",
        "DO $$ BEGIN
           EXECUTE format('ALTER DATABASE %I SET DateStyle = %L', current_database(), 'SQL, DMY');
           EXECUTE format('ALTER DATABASE %I SET IntervalStyle = %L', current_database(), 'sql_standard');
         END $$;
         SET DateStyle = 'SQL, DMY'; SET IntervalStyle = 'sql_standard';
         CREATE TABLE t (id int PRIMARY KEY, d date, iv interval, x xml, ts timestamp);
         INSERT INTO t SELECT g, date '2024-01-02' + g, g * interval '1 hour 3 seconds',
                              ('<?xml version=\"1.0\" encoding=\"UTF-8\"?><a>' || g || '</a>')::xml,
                              timestamp '2024-01-02 03:04:05' + g * interval '1 day'
           FROM generate_series(1, 9) g;",
        "ALTER COLUMN d TYPE text, ALTER COLUMN iv TYPE text, ALTER COLUMN ts TYPE text",
        // The copy alone (verification would repair a few rows through replay).
        &["--verify", "off"],
    )
    .await;
}

/// Found by a fresh tester: `ADD COLUMN loaded_at timestamptz NOT NULL DEFAULT now()` gave the
/// existing rows one value per copy transaction (12 values); PostgreSQL's ADD COLUMN evaluates a
/// non-volatile default once for all of them. A volatile default stays per row, and the column
/// keeps its default for new rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stable_default_of_a_new_column_is_one_value() {
    let db = TestDb::new("sem_stable_default").await;
    let client = db.client().await;
    client
        .batch_execute(
            "CREATE TABLE t (id int PRIMARY KEY, v int);
             INSERT INTO t SELECT g, g FROM generate_series(1, 400) g;",
        )
        .await
        .unwrap();
    let out = hotswap_async(&[
        "run",
        "--dsn",
        &db.conninfo,
        "--table",
        "public.t",
        "--alter",
        "ADD COLUMN loaded_at timestamptz NOT NULL DEFAULT now(), ADD COLUMN day date DEFAULT current_date, \
         ADD COLUMN r float8 DEFAULT random()",
        "--chunk-rows",
        "10",
        "--chunk-time",
        "off",
        "--nice",
        "3",
    ])
    .await;
    assert_exit(&out, 0);
    let (loaded, days, randoms): (i64, i64, i64) = client
        .query_one(
            "SELECT count(DISTINCT loaded_at), count(DISTINCT day), count(DISTINCT r) FROM t",
            &[],
        )
        .await
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .unwrap();
    assert_eq!((loaded, days), (1, 1), "{}", describe(&out));
    assert!(randoms > 300, "random() stays per row: {randoms} values");
    let default: String = client
        .query_one(
            "SELECT pg_get_expr(adbin, adrelid) FROM pg_attrdef WHERE adrelid = 't'::regclass \
              AND adnum = (SELECT attnum FROM pg_attribute WHERE attrelid = 't'::regclass AND attname = 'loaded_at')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(default, "now()", "new rows still take now()");
}

/// Found by a fresh tester: an ALTER refused at the shadow step (exit 3, "nothing was
/// changed") left the `hotswap` state schema behind on a database that had none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_on_a_fresh_database_creates_no_state_schema() {
    let db = TestDb::new("sem_refusal_no_schema").await;
    let client = db.client().await;
    client
        .batch_execute(
            "CREATE TABLE t (id int PRIMARY KEY, q int, g int GENERATED ALWAYS AS (q * 2) STORED);
             INSERT INTO t (id, q) SELECT g, g FROM generate_series(1, 10) g;",
        )
        .await
        .unwrap();
    let out = hotswap_async(&[
        "run",
        "--dsn",
        &db.conninfo,
        "--table",
        "public.t",
        "--alter",
        "ALTER COLUMN q TYPE bigint",
    ])
    .await;
    assert_exit(&out, 3);
    let schema: bool = client
        .query_one("SELECT to_regnamespace('hotswap') IS NULL", &[])
        .await
        .unwrap()
        .get(0);
    assert!(
        schema,
        "a refused run created the state schema\n{}",
        describe(&out)
    );
}

/// Found by a fresh tester: `USING coalesce(created, now())` copied the whole table, then failed
/// verification blaming a --map that was never given. PostgreSQL evaluates now() once for every
/// row; an online copy cannot, so it is refused before anything is created, saying what to do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_using_that_depends_on_the_time_is_refused_early() {
    let db = TestDb::new("sem_using_now").await;
    let client = db.client().await;
    client
        .batch_execute(
            "CREATE TABLE ev (id int PRIMARY KEY, created timestamp);
             INSERT INTO ev SELECT g, CASE WHEN g % 3 = 0 THEN NULL ELSE timestamp '2020-01-01' + g * interval '1 min' END
               FROM generate_series(1, 100) g;",
        )
        .await
        .unwrap();
    let out = hotswap_async(&[
        "run",
        "--dsn",
        &db.conninfo,
        "--table",
        "public.ev",
        "--alter",
        "ALTER COLUMN created TYPE timestamptz USING coalesce(created, now())",
    ])
    .await;
    assert_exit(&out, 3);
    let text = all_output(&out);
    assert!(
        text.contains("now") && text.contains("literal") && !text.contains("--map"),
        "{text}"
    );
    let clean: bool = client
        .query_one(
            "SELECT to_regclass('ev_new') IS NULL AND to_regnamespace('hotswap') IS NULL",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(clean, "a refused run created something\n{text}");
}

/// Found by a fresh tester: `ADD CONSTRAINT ... FOREIGN KEY` over a row that references nothing
/// was swapped in NOT VALID with exit 0 (a warning after the swap); PostgreSQL's ALTER fails.
/// Now the run stops before the swap naming the key; without such a row the key is validated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_key_the_alter_adds_must_hold_before_the_swap() {
    let db = TestDb::new("sem_new_fk").await;
    let client = db.client().await;
    client
        .batch_execute(
            "CREATE TABLE parent (pid int PRIMARY KEY);
             INSERT INTO parent SELECT generate_series(1, 100);
             CREATE TABLE t (id int PRIMARY KEY, pid int);
             INSERT INTO t SELECT g, 1 + g % 100 FROM generate_series(1, 3000) g;
             UPDATE t SET pid = 777 WHERE id = 2500;",
        )
        .await
        .unwrap();
    let alter = "ADD CONSTRAINT fk_p FOREIGN KEY (pid) REFERENCES parent";
    let run = |db: TestDb| async move {
        hotswap_async(&[
            "run",
            "--dsn",
            &db.conninfo,
            "--table",
            "public.t",
            "--alter",
            alter,
        ])
        .await
    };
    let out = run(db.clone()).await;
    assert_exit(&out, 1);
    let text = all_output(&out);
    assert!(text.contains("fk_p") && text.contains("777"), "{text}");
    let swapped: bool = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = 't'::regclass AND conname = 'fk_p')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(!swapped, "swapped with a violated key\n{text}");
    assert_exit(
        &hotswap_async(&["abort", "--dsn", &db.conninfo, "--table", "public.t"]).await,
        0,
    );
    client
        .batch_execute("UPDATE t SET pid = 7 WHERE id = 2500")
        .await
        .unwrap();
    let out = run(db.clone()).await;
    assert_exit(&out, 0);
    let valid: bool = client
        .query_one(
            "SELECT convalidated FROM pg_constraint WHERE conrelid = 't'::regclass AND conname = 'fk_p'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(valid, "{}", describe(&out));
}

/// (columns, kinds) of every extended statistics object on `table`, sorted.
async fn statistics_of(client: &Client, table: &str) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = client
        .query(
            "SELECT pg_get_statisticsobjdef_columns(oid), stxkind::text FROM pg_statistic_ext WHERE stxrelid = $1::text::regclass",
            &[&table],
        )
        .await
        .expect("reading extended statistics")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    v.sort();
    v
}

/// A table `{t}` with extended statistics of every shape, one with a target and a comment.
fn statistics_setup(t: &str) -> String {
    format!(
        "CREATE TABLE {t} (id int PRIMARY KEY, a int, b text, c int, d int);
         INSERT INTO {t} SELECT g, g % 10, 'b' || (g % 5), g % 3, g % 7 FROM generate_series(1, 40) g;
         CREATE STATISTICS {t}_ab (dependencies) ON a, b FROM {t};
         CREATE STATISTICS {t}_cd ON c, d FROM {t};
         CREATE STATISTICS {t}_expr ON (a + d) FROM {t};
         CREATE STATISTICS {t}_bd (ndistinct, mcv) ON b, d FROM {t};
         ALTER STATISTICS {t}_bd SET STATISTICS 500;
         COMMENT ON STATISTICS {t}_bd IS 'b and d';"
    )
}

/// The statistics target and comment of the statistics object `name`.
async fn target_and_comment(client: &Client, name: &str) -> (i32, Option<String>) {
    let row = client
        .query_one(
            "SELECT COALESCE(stxstattarget::int4, -1), obj_description(oid, 'pg_statistic_ext') FROM pg_statistic_ext WHERE stxname = $1",
            &[&name],
        )
        .await
        .expect("a statistics object");
    (row.get(0), row.get(1))
}

/// Rewrites the table of [`statistics_setup`] with `alter` and checks its extended statistics
/// against the twin's (PostgreSQL's own ALTER), their names, and, against a third table `u`
/// altered by PostgreSQL (the twin's objects are copies by LIKE), t_bd's target and comment.
async fn statistics_follow(test: &str, alter: &str, names: &[&str]) {
    let setup = format!("{}\n{}", statistics_setup("t"), statistics_setup("u"));
    let client = rewrite_like_postgres(test, &setup, alter, &[]).await;
    client
        .batch_execute(&format!("ALTER TABLE u {alter}"))
        .await
        .expect("PostgreSQL's ALTER on u");
    assert_eq!(
        statistics_of(&client, "t").await,
        statistics_of(&client, "t_twin").await
    );
    let got: Vec<String> = client
        .query(
            "SELECT stxname::text FROM pg_statistic_ext WHERE stxrelid = 't'::regclass ORDER BY 1",
            &[],
        )
        .await
        .expect("names")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(got, names);
    assert_eq!(
        target_and_comment(&client, "t_bd").await,
        target_and_comment(&client, "u_bd").await
    );
}

/// Extended statistics follow the ALTER as PostgreSQL's does: one on a dropped column goes with
/// it (re-creating it from the old definition failed the swap: "column ... does not exist",
/// found by a helper), one on a retyped column stays; the others keep their names, targets and
/// comments.
#[tokio::test]
async fn extended_statistics_follow_a_dropped_and_a_retyped_column() {
    statistics_follow(
        "stats_drop_retype",
        "DROP COLUMN c, ALTER COLUMN d TYPE bigint",
        &["t_ab", "t_bd", "t_expr"],
    )
    .await;
}

/// A renamed column: the statistics on it follow the new name (the old definition named the old
/// column and failed the swap).
#[tokio::test]
async fn extended_statistics_follow_a_renamed_column() {
    statistics_follow(
        "stats_rename",
        "RENAME COLUMN b TO bee",
        &["t_ab", "t_bd", "t_cd", "t_expr"],
    )
    .await;
}

/// (index name without the table's, column, statistics target) of every index column of
/// `table`, sorted; -1 is the default (NULL from PostgreSQL 17 on).
async fn index_targets(client: &Client, table: &str) -> Vec<(String, i16, i32)> {
    client
        .query(
            "SELECT substr(c.relname, length($1) + 1), a.attnum, COALESCE(a.attstattarget::int4, -1) \
               FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid \
               JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 \
              WHERE i.indrelid = $1::text::regclass ORDER BY 1, 2",
            &[&table],
        )
        .await
        .expect("reading index statistics targets")
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}

/// Noticed in session 8: the per-column statistics target of an expression index survived a
/// type change of its column, where PostgreSQL's own ALTER re-creates the index and resets it.
/// Each ALTER here is applied by pg-hotswap to `t` and by PostgreSQL to `u` (made by the same
/// statements: `LIKE` does not copy index targets); every index column must end with the same
/// target. Neighbours: a column retyped to its own type (PostgreSQL still re-creates the
/// indexes on it), a binary-coercible widening beside a rewrite (the index is reused under a new
/// OID), and an index over two columns of which one changes.
#[tokio::test]
async fn index_statistics_targets_follow_postgresql() {
    let setup = |t: &str| {
        format!(
            "CREATE TABLE {t} (id int PRIMARY KEY, a int, b varchar(20), c int);
             INSERT INTO {t} SELECT g, g % 10, 'b' || (g % 5), g % 3 FROM generate_series(1, 40) g;
             CREATE INDEX {t}_ax ON {t} ((a + 1));
             CREATE INDEX {t}_bx ON {t} ((b || 'x'));
             CREATE INDEX {t}_cx ON {t} ((c * 2), (a - 1));
             ALTER INDEX {t}_ax ALTER COLUMN 1 SET STATISTICS 300;
             ALTER INDEX {t}_bx ALTER COLUMN 1 SET STATISTICS 400;
             ALTER INDEX {t}_cx ALTER COLUMN 1 SET STATISTICS 500;
             ALTER INDEX {t}_cx ALTER COLUMN 2 SET STATISTICS 600;"
        )
    };
    for (test, alter) in [
        ("ix_targets_retype", "ALTER COLUMN a TYPE bigint"),
        (
            "ix_targets_same_type",
            "ALTER COLUMN a TYPE int, ALTER COLUMN id TYPE bigint",
        ),
        (
            "ix_targets_widened",
            "ALTER COLUMN b TYPE varchar(50), ALTER COLUMN id TYPE bigint",
        ),
        ("ix_targets_untouched", "ALTER COLUMN id TYPE bigint"),
    ] {
        let client =
            rewrite_like_postgres(test, &format!("{}\n{}", setup("t"), setup("u")), alter, &[])
                .await;
        client
            .batch_execute(&format!("ALTER TABLE u {alter}"))
            .await
            .expect("PostgreSQL's ALTER on u");
        let (ours, theirs) = (
            index_targets(&client, "t").await,
            index_targets(&client, "u").await,
        );
        assert_eq!(
            ours, theirs,
            "{alter}: pg-hotswap (left) against PostgreSQL"
        );
        assert!(
            theirs.iter().any(|(_, _, s)| *s > 0),
            "{alter}: no target left to compare"
        );
    }
}

/// `PGTZ` reaches the tool's sessions as libpq sends it, so `timestamp` to `timestamptz`
/// converts in that zone, as `psql` in the same shell does (a fresh tester, session 13: with
/// `PGTZ=Asia/Tokyo` all 300 rows differed from the ledger, converted in the server's zone).
/// In place and with a rewrite.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pgtz_is_the_zone_a_timestamp_to_timestamptz_alter_converts_in() {
    for (i, extra) in [None, Some("--force-rewrite")].into_iter().enumerate() {
        let db = TestDb::new(&format!("semantics_pgtz_{i}")).await;
        let client = db.client().await;
        client
            .batch_execute(
                "SET timezone = 'UTC';
                 CREATE TABLE t (id int PRIMARY KEY, ts timestamp);
                 INSERT INTO t SELECT g, '2026-03-08 01:30'::timestamp + g * interval '7 minutes'
                   FROM generate_series(1, 300) g;
                 CREATE TABLE t_twin (LIKE t INCLUDING ALL); INSERT INTO t_twin SELECT * FROM t;
                 SET timezone = 'Asia/Tokyo';
                 ALTER TABLE t_twin ALTER COLUMN ts TYPE timestamptz;",
            )
            .await
            .expect("setup");
        let mut args = vec![
            "run",
            "--dsn",
            &db.conninfo,
            "--table",
            "public.t",
            "--alter",
            "ALTER COLUMN ts TYPE timestamptz",
            "--chunk-rows",
            "50",
        ];
        args.extend(extra);
        let out = hotswap_async_env(&args, &[("PGTZ", "Asia/Tokyo")]).await;
        assert_exit(&out, 0);
        let differ: i64 = client
            .query_one(
                "SELECT count(*) FROM ((SELECT id, ts FROM t EXCEPT SELECT id, ts FROM t_twin)
                   UNION ALL (SELECT id, ts FROM t_twin EXCEPT SELECT id, ts FROM t)) d",
                &[],
            )
            .await
            .expect("comparing")
            .get(0);
        assert_eq!(differ, 0, "{extra:?}: {}", describe(&out));
    }
}

/// `DROP COLUMN` of a column the table's own CHECK constraints use: PostgreSQL drops those
/// constraints with the column (they depend on it automatically as well as normally); the tool
/// refused it as though PostgreSQL would (a fresh tester, session 13). A one-column and a
/// two-column check go, the others stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_column_drops_the_tables_own_checks_on_it_as_postgres_does() {
    let client = rewrite_like_postgres(
        "semantics_drop_checked_column",
        "CREATE TABLE t (id int PRIMARY KEY, x int, y int, q int,
             CONSTRAINT yck CHECK (y >= 0), CONSTRAINT qid CHECK (q > 0 AND id > 0),
             CONSTRAINT xck CHECK (x >= 0));
         INSERT INTO t SELECT g, g, g % 10, g FROM generate_series(1, 20) g;",
        "DROP COLUMN y, DROP COLUMN q",
        &[],
    )
    .await;
    let checks = |table: &'static str| {
        let client = &client;
        async move {
            client
                .query(
                    "SELECT conname::text, pg_get_constraintdef(oid) FROM pg_constraint
                      WHERE conrelid = $1::text::regclass AND contype = 'c' ORDER BY 1",
                    &[&table],
                )
                .await
                .expect("reading the checks")
                .iter()
                .map(|r| (r.get::<_, String>(0), r.get::<_, String>(1)))
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(checks("t").await, checks("t_twin").await);
    assert_eq!(checks("t").await.len(), 1);
}

/// Runs `alter` on `public.t`, held just before the swap takes its lock (after the checks
/// before the swap), while the application runs `app_sql`; returns the run's output.
async fn run_with_a_write_before_the_swap(
    db: &TestDb,
    alter: &str,
    app_sql: &str,
) -> std::process::Output {
    let hold = HoldPoint::new(&db.name, "before-swap-lock");
    let run = spawn_held(
        &[
            "run",
            "--dsn",
            &db.conninfo,
            "--table",
            "public.t",
            "--alter",
            alter,
            "--chunk-rows",
            "50",
        ],
        &[&hold],
    );
    hold.wait_reached().await;
    db.client()
        .await
        .batch_execute(app_sql)
        .await
        .expect("the application's writes");
    hold.release();
    run.await.expect("the run's task")
}

/// A check the ALTER adds NOT VALID holds only for rows written after the ALTER: a row the
/// application makes violate it during the run was written before the ALTER's moment (the
/// swap), so the run goes on, the row stays, and the check is enforced from the swap on. Before,
/// the check was on the shadow during replay and the run failed with "PostgreSQL's own ALTER
/// TABLE would fail on them too" (a fresh tester, session 13).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_not_valid_check_holds_from_the_swap_on_not_for_rows_written_during_the_run() {
    let db = TestDb::new("semantics_not_valid_check_run").await;
    let client = db.client().await;
    client
        .batch_execute(
            "CREATE TABLE t (id int PRIMARY KEY, x int, u int);
             INSERT INTO t SELECT g, g, g FROM generate_series(1, 400) g;",
        )
        .await
        .expect("setup");
    let out = run_with_a_write_before_the_swap(
        &db,
        "ADD CONSTRAINT pos CHECK (x > 0) NOT VALID, ALTER COLUMN u TYPE bigint",
        "UPDATE t SET x = -1 WHERE id = 7; INSERT INTO t VALUES (401, -5, 1)",
    )
    .await;
    assert_exit(&out, 0);
    let (valid, negative): (bool, i64) = {
        let r = client
            .query_one(
                "SELECT (SELECT convalidated FROM pg_constraint
                          WHERE conrelid = 't'::regclass AND conname = 'pos'),
                        (SELECT count(*) FROM t WHERE x < 0)",
                &[],
            )
            .await
            .expect("reading the result");
        (r.get(0), r.get(1))
    };
    assert!(!valid, "the check should stay NOT VALID");
    assert_eq!(negative, 2, "the rows written during the run are kept");
    let err = client
        .batch_execute("INSERT INTO t VALUES (402, -1, 1)")
        .await
        .expect_err("the check is enforced after the swap");
    assert_eq!(
        err.code(),
        Some(&tokio_postgres::error::SqlState::CHECK_VIOLATION),
        "{err:?}"
    );
}

/// A foreign key the ALTER adds, broken by a row the application writes after the check
/// before the swap: the swap is done (the application's write stands), but the run ends with
/// exit 1 naming the row, not exit 0 with a warning (a fresh tester, session 13).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_foreign_key_broken_during_the_run_is_an_error_not_a_warning() {
    let db = TestDb::new("semantics_fk_broken_run").await;
    let client = db.client().await;
    client
        .batch_execute(
            "CREATE TABLE parent (id int PRIMARY KEY);
             INSERT INTO parent SELECT generate_series(1, 100);
             CREATE TABLE t (id int PRIMARY KEY, p int, v text);
             INSERT INTO t SELECT g, g % 100 + 1, 'v' FROM generate_series(1, 400) g;",
        )
        .await
        .expect("setup");
    let out = run_with_a_write_before_the_swap(
        &db,
        "ADD CONSTRAINT t_p_fk FOREIGN KEY (p) REFERENCES parent (id), ALTER COLUMN v TYPE varchar(10)",
        "INSERT INTO t VALUES (401, 5000, 'v')",
    )
    .await;
    assert_exit(&out, 1);
    let said = all_output(&out);
    assert!(
        said.contains("t_p_fk") && said.contains("5000") && said.contains("NOT VALID"),
        "{}",
        describe(&out)
    );
    let (valid, ty, kept): (bool, String, i64) = {
        let r = client
            .query_one(
                "SELECT (SELECT convalidated FROM pg_constraint WHERE conname = 't_p_fk'),
                        (SELECT format_type(atttypid, atttypmod) FROM pg_attribute
                          WHERE attrelid = 't'::regclass AND attname = 'v'),
                        (SELECT count(*) FROM t WHERE id = 401)",
                &[],
            )
            .await
            .expect("reading the result");
        (r.get(0), r.get(1), r.get(2))
    };
    assert!(!valid);
    assert_eq!(ty, "character varying(10)", "the swap is done");
    assert_eq!(kept, 1);
}

/// Unnamed CHECK and FOREIGN KEY constraints the ALTER adds take the names PostgreSQL's ALTER
/// gives them on the table (`t_x_check1` beside the table's own `t_x_check`, `t_p_fkey`), valid
/// and NOT VALID ones alike; before, they kept the shadow's (`t_new_x_check`; a fresh tester,
/// session 13).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unnamed_constraints_the_alter_adds_are_named_as_postgres_names_them() {
    let db = TestDb::new("semantics_constraint_names").await;
    let client = db.client().await;
    let alter = "ADD CHECK (x > 0), ADD CHECK (x < 1000000) NOT VALID, \
                 ADD FOREIGN KEY (p) REFERENCES parent (id), ALTER COLUMN x TYPE bigint";
    client
        .batch_execute(&format!(
            "CREATE TABLE parent (id int PRIMARY KEY);
             INSERT INTO parent SELECT generate_series(1, 10);
             CREATE TABLE t (id int PRIMARY KEY, x int CHECK (x <> 5000), p int);
             CREATE TABLE ledger (id int PRIMARY KEY, x int CHECK (x <> 5000), p int);
             INSERT INTO t SELECT g, g, g % 10 + 1 FROM generate_series(1, 200) g;
             INSERT INTO ledger SELECT * FROM t;
             ALTER TABLE ledger {alter};"
        ))
        .await
        .expect("setup");
    let out = hotswap_async(&[
        "run",
        "--dsn",
        &db.conninfo,
        "--table",
        "public.t",
        "--alter",
        alter,
        "--chunk-rows",
        "50",
    ])
    .await;
    assert_exit(&out, 0);
    let constraints =
        |table: &'static str| {
            let client = &client;
            async move {
                client
                .query(
                    "SELECT regexp_replace(conname, '^ledger_', 't_'), contype::text, convalidated
                       FROM pg_constraint WHERE conrelid = $1::text::regclass ORDER BY 1",
                    &[&table],
                )
                .await
                .expect("reading the constraints")
                .iter()
                .map(|r| (r.get::<_, String>(0), r.get::<_, String>(1), r.get::<_, bool>(2)))
                .collect::<Vec<_>>()
            }
        };
    assert_eq!(constraints("t").await, constraints("ledger").await);
}
