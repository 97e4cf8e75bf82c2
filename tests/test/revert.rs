//! Issue 5, the way back: `run --revertible` keeps the old table revertible, `revert` swaps it
//! back with every write made before, during and after the swap, `finish` drops it. What cannot
//! be reverted safely is refused before anything changes.

use std::time::Duration;

use pg_hotswap::db::ident::{Ident, QualifiedName};
use pg_hotswap::demo::workload::{create_tables, TableSpec};

use crate::harness::{
    all_output, assert_exit, assert_matches_ledger, column_type, describe, hotswap_async,
    leftovers, relation_exists, TestDb,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revert_keeps_writes_made_before_during_and_after_the_swap() {
    const ROWS: i64 = 30_000;
    let db = TestDb::new("revert_keeps_writes").await;
    let client = db.client().await;
    let spec = TableSpec::simple("public", "rev");
    create_tables(&client, &spec, ROWS).await.unwrap();
    client
        .batch_execute(
            "CREATE TABLE rev_child (id int PRIMARY KEY, rev_id int REFERENCES rev (id) ON DELETE CASCADE);
             CREATE VIEW rev_view AS SELECT id, val FROM rev;
             CREATE INDEX rev_val_idx ON rev (val);",
        )
        .await
        .unwrap();
    let load = crate::harness::start_load(&db.conninfo, &spec, ROWS, 2, 300);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let out = hotswap_async(&[
        "run",
        "--dsn",
        &db.conninfo,
        "--table",
        "public.rev",
        "--alter",
        "ALTER COLUMN id TYPE bigint",
        "--revertible",
    ])
    .await;
    eprintln!("{}", describe(&out));
    assert_exit(&out, 0);
    assert!(
        all_output(&out).contains("kept in sync"),
        "{}",
        describe(&out)
    );
    assert_eq!(
        column_type(&client, &spec.table, &spec.id_col).await,
        "bigint"
    );
    // Writes after the swap.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let out = hotswap_async(&["revert", "--dsn", &db.conninfo, "--table", "public.rev"]).await;
    eprintln!("{}", describe(&out));
    assert_exit(&out, 0);
    assert_eq!(
        column_type(&client, &spec.table, &spec.id_col).await,
        "integer",
        "not reverted"
    );
    // Writes after the revert too.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let report = load.stop().await;
    assert!(
        report.errors.is_empty(),
        "writer errors {:#?}",
        report.errors
    );
    // After revert the table holds every write (made before, during and after the swap).
    assert_matches_ledger(&client, &spec).await;
    // Everything attached came back with it: the index by name, the view, the foreign key.
    let idx: bool = client
        .query_one("SELECT EXISTS (SELECT 1 FROM pg_index WHERE indrelid = 'rev'::regclass AND indexrelid = 'rev_val_idx'::regclass)", &[])
        .await
        .unwrap()
        .get(0);
    assert!(idx, "rev_val_idx is not on the reverted table");
    let view_type = column_type(
        &client,
        &QualifiedName::new("public", "rev_view"),
        &Ident::new("id"),
    )
    .await;
    assert_eq!(view_type, "integer");
    let fk: bool = client
        .query_one("SELECT EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = 'rev_child'::regclass AND confrelid = 'rev'::regclass AND convalidated)", &[])
        .await
        .unwrap()
        .get(0);
    assert!(
        fk,
        "the foreign key from rev_child does not point at the reverted table"
    );
    let left = leftovers(&client, &spec.table, "hotswap").await;
    assert!(left.is_empty(), "left behind: {left:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revert_refuses_what_no_longer_fits_and_finish_cleans_up() {
    let db = TestDb::new("revert_refuses").await;
    let client = db.client().await;
    let spec = TableSpec::simple("public", "grown");
    create_tables(&client, &spec, 2_000).await.unwrap();
    let out = hotswap_async(&[
        "run",
        "--dsn",
        &db.conninfo,
        "--table",
        "public.grown",
        "--alter",
        "ALTER COLUMN id TYPE bigint",
        "--revertible",
    ])
    .await;
    assert_exit(&out, 0);
    // A key that only fits the new type.
    client
        .batch_execute("INSERT INTO public.grown VALUES (3000000000, 1, 'big')")
        .await
        .unwrap();
    let out = hotswap_async(&["revert", "--dsn", &db.conninfo, "--table", "public.grown"]).await;
    eprintln!("{}", describe(&out));
    assert_exit(&out, 3);
    assert!(
        all_output(&out).contains("does not fit"),
        "{}",
        describe(&out)
    );
    assert_eq!(
        column_type(&client, &spec.table, &spec.id_col).await,
        "bigint",
        "changed anyway"
    );
    // finish: the old table and the reverse capture go.
    let out = hotswap_async(&["finish", "--dsn", &db.conninfo, "--table", "public.grown"]).await;
    eprintln!("{}", describe(&out));
    assert_exit(&out, 0);
    assert!(
        !relation_exists(&client, &QualifiedName::new("public", "grown_old")).await,
        "old table kept"
    );
    let left = leftovers(&client, &spec.table, "hotswap").await;
    assert!(left.is_empty(), "left behind: {left:#?}");
    let n: i64 = client
        .query_one("SELECT count(*) FROM public.grown", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 2_001);

    // A dropped column cannot come back by itself: refused before anything happens.
    let spec2 = TableSpec::simple("public", "slim");
    create_tables(&client, &spec2, 500).await.unwrap();
    client
        .batch_execute("ALTER TABLE public.slim ADD COLUMN extra text DEFAULT 'x'")
        .await
        .unwrap();
    let out = hotswap_async(&[
        "run",
        "--dsn",
        &db.conninfo,
        "--table",
        "public.slim",
        "--alter",
        "DROP COLUMN extra",
        "--revertible",
    ])
    .await;
    assert_exit(&out, 0);
    assert!(
        all_output(&out).contains("revert will refuse"),
        "{}",
        describe(&out)
    );
    let out = hotswap_async(&["revert", "--dsn", &db.conninfo, "--table", "public.slim"]).await;
    assert_exit(&out, 3);
    assert!(
        all_output(&out).contains("was dropped"),
        "{}",
        describe(&out)
    );
    assert!(relation_exists(&client, &QualifiedName::new("public", "slim_old")).await);
}

/// A revert killed under its swap's lock leaves its run unfinished; the next revert starts over
/// and succeeds, and the stopped run is closed (it was shown by `status` as resumable, which
/// `resume` refused; a fresh tester's finding).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revert_killed_under_the_lock_is_closed_by_the_next_one() {
    let db = TestDb::new("revert_killed").await;
    let client = db.client().await;
    client
        .batch_execute(
            "CREATE TABLE rk (id int PRIMARY KEY, v text);
             INSERT INTO rk SELECT g, 'v' || g FROM generate_series(1, 2000) g;",
        )
        .await
        .unwrap();
    let run = [
        "run",
        "--dsn",
        &db.conninfo,
        "--table",
        "public.rk",
        "--alter",
        "ALTER COLUMN v TYPE varchar(20)",
        "--revertible",
    ];
    assert_exit(&hotswap_async(&run).await, 0);
    client
        .batch_execute("UPDATE rk SET v = 'w' WHERE id < 10")
        .await
        .unwrap();
    let revert = ["revert", "--dsn", &db.conninfo, "--table", "public.rk"];
    let out = crate::harness::hotswap_failpoint(&revert, Some("swap-locked")).await;
    assert_eq!(
        out.status.code(),
        Some(pg_hotswap::failpoint::EXIT),
        "{}",
        describe(&out)
    );
    let open = open_runs(&client).await;
    assert_eq!(open, 1, "the killed revert's run is not left open");
    let out = hotswap_async(&revert).await;
    eprintln!("{}", describe(&out));
    assert_exit(&out, 0);
    let open = open_runs(&client).await;
    assert_eq!(open, 0, "the killed revert's run is still open");
    assert_eq!(
        column_type(
            &client,
            &QualifiedName::new("public", "rk"),
            &Ident::new("v")
        )
        .await,
        "text"
    );
    let w: i64 = client
        .query_one("SELECT count(*) FROM rk WHERE v = 'w'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(w, 9, "a write made after the swap is lost");
    assert_exit(
        &hotswap_async(&["finish", "--dsn", &db.conninfo, "--table", "public.rk"]).await,
        0,
    );
}

/// Runs of the state schema neither succeeded nor aborted.
async fn open_runs(client: &tokio_postgres::Client) -> i64 {
    client
        .query_one(
            "SELECT count(*) FROM hotswap.runs WHERE status NOT IN ('succeeded', 'aborted')",
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

/// A self-referencing foreign key: replay into the kept old table deletes and re-inserts each
/// changed row, which the old table's own key refused when the row is referenced (`revert`
/// failed once such a row was updated; a fresh tester, session 11) or, with `ON DELETE
/// CASCADE`, answered by deleting the row's children from the old table (lost on revert). The
/// forward swap now takes the self-references off the old table, and the revert's swap adds
/// them back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revert_with_a_self_referencing_foreign_key_keeps_every_row() {
    for (i, action) in ["NO ACTION", "CASCADE"].iter().enumerate() {
        let db = TestDb::new(&format!("revert_self_fk_{i}")).await;
        let client = db.client().await;
        client
            .batch_execute(&format!(
                "CREATE TABLE public.node (id int PRIMARY KEY, parent_id int
                     CONSTRAINT node_parent_fk REFERENCES public.node (id) ON DELETE {action},
                     v int);
                 INSERT INTO public.node SELECT i, NULL, i FROM generate_series(1, 10) i;
                 INSERT INTO public.node SELECT i, 1 + i % 10, i FROM generate_series(11, 200) i;"
            ))
            .await
            .expect("creating the table");
        let out = hotswap_async(&[
            "run",
            "--dsn",
            &db.conninfo,
            "--table",
            "public.node",
            "--alter",
            "ALTER COLUMN v TYPE bigint",
            "--revertible",
        ])
        .await;
        assert_exit(&out, 0);
        // After the swap: referenced rows updated, a child added, a leaf deleted.
        client
            .batch_execute(
                "UPDATE public.node SET v = v + 1000 WHERE id <= 5;
                 INSERT INTO public.node VALUES (500, 3, 500);
                 DELETE FROM public.node WHERE id = 200;",
            )
            .await
            .expect("writing after the swap");
        let rows = "SELECT string_agg(format('%s:%s:%s', id, parent_id, v), ',' ORDER BY id) \
                    FROM public.node";
        let expected: String = client.query_one(rows, &[]).await.unwrap().get(0);
        let out = hotswap_async(&["revert", "--dsn", &db.conninfo, "--table", "public.node"]).await;
        assert_exit(&out, 0);
        let got: String = client.query_one(rows, &[]).await.unwrap().get(0);
        assert_eq!(
            got, expected,
            "ON DELETE {action}: the reverted table's rows"
        );
        let fk: Option<String> = client
            .query_one(
                "SELECT pg_get_constraintdef(oid) FROM pg_constraint
                  WHERE conrelid = 'public.node'::regclass AND conname = 'node_parent_fk'
                    AND confrelid = 'public.node'::regclass AND convalidated",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        let want = match *action {
            "CASCADE" => "REFERENCES node(id) ON DELETE CASCADE",
            _ => "REFERENCES node(id)",
        };
        assert!(
            fk.as_deref().is_some_and(|d| d.ends_with(want)),
            "ON DELETE {action}: the reverted table's validated self-reference is {fk:?}"
        );
    }
}
