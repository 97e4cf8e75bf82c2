//! Views created or dropped while a run goes on. The swap re-creates the views over the table
//! as they are when it runs (`preflight::refresh`), but the definition's fingerprint, compared
//! under the swap's lock, also covered the set of views: a view created or dropped during a run
//! of hours stopped the swap with "the definition ... changed (someone ran ALTER TABLE, CREATE
//! INDEX or similar)" and the advice to abort (a fresh tester, session 11). Now the views are
//! read again before each attempt, and compared under the lock with those read, so that a view
//! created between the two makes the attempt roll back and read them again.

use tokio_postgres::Client;

use crate::harness::{all_output, assert_exit, HoldPoint, TestDb};

/// Whether `view`'s rule reads the relation now named `public.t` (the new table after a swap).
async fn reads_the_table(client: &Client, view: &str) -> bool {
    client
        .query_one(
            "SELECT EXISTS (SELECT FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid
                             WHERE d.classid = 'pg_rewrite'::regclass
                               AND r.ev_class = $1::text::regclass
                               AND d.refobjid = 'public.t'::regclass)",
            &[&view],
        )
        .await
        .expect("reading the view's dependencies")
        .get(0)
}

/// Holds a run at `point`, creates a view (and one over it) and drops another, lets the run go
/// on, and checks the swap carried exactly that.
async fn views_changed_at(name: &str, point: &str) {
    let db = TestDb::new(name).await;
    let client = db.client().await;
    client
        .batch_execute(
            "CREATE TABLE public.t (id int PRIMARY KEY, v int);
             CREATE VIEW public.gone_v AS SELECT id FROM public.t;
             CREATE VIEW public.kept_v AS SELECT id, v FROM public.t;
             INSERT INTO public.t SELECT i, i FROM generate_series(1, 1000) i;",
        )
        .await
        .expect("creating the table");
    let hold = HoldPoint::new(name, point);
    let run = crate::harness::spawn_held(
        &[
            "run",
            "--dsn",
            &db.conninfo,
            "--table",
            "public.t",
            "--alter",
            "ALTER COLUMN v TYPE bigint",
            "--chunk-rows",
            "100",
        ],
        &[&hold],
    );
    hold.wait_reached().await;
    client
        .batch_execute(
            "CREATE VIEW public.new_v AS SELECT id, v FROM public.t WHERE v > 10;
             CREATE VIEW public.new_over_v AS SELECT count(*) AS n FROM public.new_v;
             DROP VIEW public.gone_v;",
        )
        .await
        .expect("changing the views during the run");
    hold.release();
    let out = run.await.expect("the run's task");
    assert_exit(&out, 0);
    for view in ["public.new_v", "public.kept_v"] {
        assert!(
            reads_the_table(&client, view).await,
            "{view} does not read the new table after the swap\n{}",
            all_output(&out)
        );
    }
    let exists: bool = client
        .query_one("SELECT to_regclass('public.gone_v') IS NOT NULL", &[])
        .await
        .expect("looking for the dropped view")
        .get(0);
    assert!(!exists, "the view dropped during the run is back");
    client
        .execute("INSERT INTO public.t VALUES (5000, 5000)", &[])
        .await
        .expect("inserting after the swap");
    let n: i64 = client
        .query_one("SELECT n FROM public.new_over_v", &[])
        .await
        .expect("reading the view over the new view")
        .get(0);
    assert_eq!(
        n, 991,
        "the view over the new view does not see the new table's rows"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn views_created_or_dropped_during_the_run_are_carried_by_the_swap() {
    views_changed_at("views_during_run", "before-swap-lock").await;
}

/// After the swap's last look at what it carries and before its lock: the check under the lock
/// finds the views changed, and the attempt rolls back and reads them again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_view_created_just_before_the_swaps_lock_is_carried_by_the_swap() {
    views_changed_at("views_before_lock", "before-swap-transaction").await;
}
