//! Objects around the table that a swap would leave behind or could not get past, refused
//! before anything is created (exit 3, nothing left), as DESIGN.md's "refuse before creating
//! anything" asks (a fresh tester, session 12, and this session's own look):
//!
//! - Objects that depend on a view over the table — a function taking the view's row type, a
//!   `BEGIN ATOMIC` function or another table's policy reading the view, another table's column
//!   of the view's row type — when the swap must drop and create the views again (a
//!   materialized view among them, or a column a view reads changes type). Before, the swap's
//!   `DROP VIEW` failed after the whole copy. Where the views are replaced in place, they are
//!   no obstacle and the run goes on.
//! - Another table's row-level security policy that reads the table: the swap left it reading
//!   the old table (its rows were checked against a frozen copy from then on, and `--drop-old`
//!   failed on it).
//! - A typed table (`OF type`): the new table lost the type.

use tokio_postgres::Client;

use crate::harness::{all_output, assert_exit, describe, hotswap_async, leftovers, TestDb};
use pg_hotswap::db::ident::QualifiedName;

async fn exec(client: &Client, sql: &str) {
    client
        .batch_execute(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

async fn run(db: &TestDb, alter: &[&str]) -> std::process::Output {
    let mut args = vec![
        "run",
        "--dsn",
        &db.conninfo,
        "--table",
        "public.t",
        "--chunk-rows",
        "100",
        "--drop-old",
    ];
    args.extend_from_slice(alter);
    hotswap_async(&args).await
}

/// Refused with exit 3 naming `object`, and nothing of the run is left.
async fn assert_refused_naming(
    db: &TestDb,
    client: &Client,
    out: &std::process::Output,
    object: &str,
) {
    assert_exit(out, 3);
    assert!(
        all_output(out).contains(object),
        "{object}: {}",
        describe(out)
    );
    let table = QualifiedName::new("public", "t");
    assert_eq!(
        leftovers(client, &table, "hotswap").await,
        Vec::<String>::new(),
        "{}",
        db.conninfo
    );
}

const TABLE: &str = "CREATE TABLE public.t (id int PRIMARY KEY, v int, note text);
     INSERT INTO public.t SELECT g, g, 'n' || g FROM generate_series(1, 500) g;
     CREATE VIEW public.tv AS SELECT id, v FROM public.t;
     CREATE TABLE public.other (id int PRIMARY KEY, owner int);";

/// Each kind of object that depends on a view, under a type change of a column the view reads
/// and under a materialized view: refused; with a type change no view sees, the run succeeds
/// and the object still works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_that_keep_the_views_from_being_created_again_are_refused_before_anything() {
    let blockers: &[(&str, &str)] = &[
        (
            "CREATE FUNCTION public.tv_id(x public.tv) RETURNS int LANGUAGE sql AS 'SELECT x.id'",
            "function tv_id(tv)",
        ),
        (
            "CREATE FUNCTION public.tv_count() RETURNS bigint LANGUAGE sql \
             BEGIN ATOMIC SELECT count(*) FROM public.tv; END",
            "function tv_count()",
        ),
        (
            "ALTER TABLE public.other ENABLE ROW LEVEL SECURITY; \
             CREATE POLICY seen ON public.other USING (EXISTS (SELECT 1 FROM public.tv WHERE tv.id = other.owner))",
            "policy seen on table other",
        ),
        (
            "CREATE TABLE public.snapshots (row public.tv)",
            "column row of table snapshots",
        ),
    ];
    for (i, (sql, object)) in blockers.iter().enumerate() {
        let db = TestDb::new(&format!("in_the_way_view_{i}")).await;
        let client = db.client().await;
        exec(&client, TABLE).await;
        exec(&client, sql).await;
        // A column the view reads changes type: CREATE OR REPLACE VIEW is refused, the views
        // must be dropped.
        let out = run(&db, &["--alter", "ALTER COLUMN v TYPE bigint"]).await;
        assert_refused_naming(&db, &client, &out, object).await;
        // A column no view reads: the view is replaced in place and the object is no obstacle.
        let out = run(&db, &["--alter", "ALTER COLUMN note TYPE varchar(20)"]).await;
        assert_exit(&out, 0);
        // A materialized view among the views: they are all dropped and created again.
        exec(
            &client,
            "CREATE MATERIALIZED VIEW public.tm AS SELECT count(*) AS n FROM public.t",
        )
        .await;
        let out = run(&db, &["--force-rewrite"]).await;
        assert_refused_naming(&db, &client, &out, object).await;
    }
}

/// Another table's policy that reads the table is refused (it would keep reading the old one);
/// the table's own policy that reads itself is carried as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_tables_policy_that_reads_the_table_is_refused_before_anything() {
    let db = TestDb::new("in_the_way_policy").await;
    let client = db.client().await;
    exec(&client, TABLE).await;
    exec(
        &client,
        "ALTER TABLE public.t ENABLE ROW LEVEL SECURITY;
         CREATE POLICY own ON public.t USING (EXISTS (SELECT 1 FROM public.t x WHERE x.id = t.id));",
    )
    .await;
    let out = run(&db, &["--alter", "ALTER COLUMN v TYPE bigint"]).await;
    assert_exit(&out, 0);
    exec(
        &client,
        "ALTER TABLE public.other ENABLE ROW LEVEL SECURITY;
         CREATE POLICY member ON public.other USING (EXISTS (SELECT 1 FROM public.t WHERE t.id = other.owner));",
    )
    .await;
    let out = run(&db, &["--alter", "ALTER COLUMN v TYPE int"]).await;
    assert_refused_naming(&db, &client, &out, "policy member on table other").await;
    let reads: String = client
        .query_one(
            "SELECT d.refobjid::regclass::text FROM pg_depend d JOIN pg_policy p ON p.oid = d.objid
              WHERE d.classid = 'pg_policy'::regclass AND p.polname = 'member'
                AND d.refobjid <> 'public.other'::regclass",
            &[],
        )
        .await
        .expect("reading what the policy reads")
        .get(0);
    assert_eq!(reads, "t");
}

/// A typed table (`CREATE TABLE ... OF type`) is refused: the new table would have lost its
/// type (a fresh tester, session 13: `run` exited 0 and `reloftype` was gone), and PostgreSQL's
/// own ALTER TABLE refuses to retype its columns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_typed_table_is_refused_before_anything() {
    let db = TestDb::new("in_the_way_typed").await;
    let client = db.client().await;
    exec(
        &client,
        "CREATE TYPE public.rowt AS (id int, v int, note text);
         CREATE TABLE public.t OF public.rowt (PRIMARY KEY (id));
         INSERT INTO public.t SELECT g, g, 'n' FROM generate_series(1, 100) g;",
    )
    .await;
    for alter in [
        &["--alter", "ALTER COLUMN v TYPE bigint"][..],
        &["--force-rewrite"][..],
    ] {
        let out = run(&db, alter).await;
        assert_refused_naming(&db, &client, &out, "typed table (OF rowt)").await;
    }
    let of: Option<String> = client
        .query_one(
            "SELECT NULLIF(reloftype, 0)::regtype::text FROM pg_class WHERE oid = 'public.t'::regclass",
            &[],
        )
        .await
        .expect("reading the table's type")
        .get(0);
    assert_eq!(of.as_deref(), Some("rowt"));
}
