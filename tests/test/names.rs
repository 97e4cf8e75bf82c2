//! The names the ALTER's unnamed constraints and indexes take on the table: PostgreSQL's own
//! choice there (`ChooseConstraintName`, `ChooseRelationName`), numbered past the names the
//! schema already holds, in place and through a copy alike. The oracle is PostgreSQL: the same
//! tables in a second schema, and the same ALTER run there by PostgreSQL itself.

use crate::fast_path::relfilenode;
use crate::harness::{assert_exit, hotswap_async, TestDb};
use tokio_postgres::Client;

/// The same objects in `public` and in the oracle's schema `l`: another table holding the names
/// PostgreSQL would try first for the ALTER's objects on `t` — a constraint `t_x_check`, a
/// foreign key `t_p_fkey`, an index `t_email_key` and a constraint `t_email_key1`.
const SETUP: &str = "
    CREATE TABLE parent (id int PRIMARY KEY);
    INSERT INTO parent SELECT generate_series(1, 10);
    CREATE TABLE other (a int CONSTRAINT t_x_check CHECK (a > 0),
                        b int CONSTRAINT t_p_fkey REFERENCES parent,
                        c int CONSTRAINT t_email_key1 CHECK (c <> 0));
    CREATE INDEX t_email_key ON other (a);
    CREATE TABLE t (id int PRIMARY KEY, x int, p int, email text);
    INSERT INTO t SELECT g, g, g % 10 + 1, 'u' || g FROM generate_series(1, 300) g;";

/// (name, kind, validated) of the constraints of `schema.t`, and the names of its indexes.
async fn names(client: &Client, schema: &str) -> (Vec<(String, String, bool)>, Vec<String>) {
    let cons = client
        .query(
            "SELECT conname::text, contype::text, convalidated FROM pg_constraint
              WHERE conrelid = format('%I.t', $1::text)::regclass ORDER BY 1",
            &[&schema],
        )
        .await
        .expect("reading the constraints")
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let ixs = client
        .query(
            "SELECT indexrelid::regclass::text FROM pg_index
              WHERE indrelid = format('%I.t', $1::text)::regclass ORDER BY 1",
            &[&schema],
        )
        .await
        .expect("reading the indexes")
        .iter()
        .map(|r| {
            let n: String = r.get(0);
            n.trim_start_matches("l.").to_string()
        })
        .collect();
    (cons, ixs)
}

/// Runs `alter` on `public.t` with `extra` options and by PostgreSQL on `l.t`, and compares the
/// names; returns the tool's output for more checks.
async fn named_as_postgres_names_them(test: &str, alter: &str, extra: &[&str]) -> String {
    let db = TestDb::new(test).await;
    let client = db.client().await;
    client
        .batch_execute(&format!(
            "{SETUP}
             CREATE SCHEMA l; SET search_path = l; {SETUP}
             ALTER TABLE l.t {alter}; RESET search_path;"
        ))
        .await
        .expect("setup");
    let before = relfilenode(&client, "public.t").await;
    let mut args = vec![
        "run",
        "--dsn",
        &db.conninfo,
        "--table",
        "public.t",
        "--alter",
        alter,
        "--chunk-rows",
        "50",
    ];
    args.extend_from_slice(extra);
    let out = hotswap_async(&args).await;
    assert_exit(&out, 0);
    let in_place = relfilenode(&client, "public.t").await == before;
    assert_eq!(
        in_place,
        !extra.contains(&"--force-rewrite"),
        "applied in place exactly when not forced"
    );
    let (got, want) = (names(&client, "public").await, names(&client, "l").await);
    assert_eq!(got, want, "constraint and index names against PostgreSQL's");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// In place (no rewrite): before, an unnamed CHECK took `t_x_check` although another table held
/// that name (PostgreSQL gives `t_x_check1`), and an unnamed UNIQUE whose name another relation
/// held was refused (PostgreSQL gives `t_email_key2` past the index and the constraint).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unnamed_constraints_added_in_place_skip_names_the_schema_holds() {
    named_as_postgres_names_them(
        "names_in_place",
        "ADD CHECK (x > 0), ADD FOREIGN KEY (p) REFERENCES parent (id), ADD UNIQUE (email), \
         ADD CHECK (x < 100000)",
        &[],
    )
    .await;
}

/// The same ALTER through a copy, and with NOT VALID constraints (added in the swap).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unnamed_constraints_added_by_a_copy_skip_names_the_schema_holds() {
    named_as_postgres_names_them(
        "names_rewrite",
        "ADD CHECK (x > 0), ADD FOREIGN KEY (p) REFERENCES parent (id) NOT VALID, \
         ADD UNIQUE (email), ADD CHECK (x < 100000) NOT VALID",
        &["--force-rewrite"],
    )
    .await;
}

/// Two unnamed unique constraints in one ALTER, in place: the first takes `t_email_key2` (past
/// the schema's index and constraint), the second `t_email_x_key`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_unnamed_unique_constraints_on_one_column_are_numbered_in_order() {
    named_as_postgres_names_them(
        "names_two_unique",
        "ADD UNIQUE (email), ADD UNIQUE (email, x)",
        &[],
    )
    .await;
}

/// In place, CHECK and FOREIGN KEY constraints alone (the report's input): before, they took
/// `t_x_check` and `t_p_fkey`, which another table of the schema held.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unnamed_checks_and_foreign_keys_added_in_place_skip_names_the_schema_holds() {
    named_as_postgres_names_them(
        "names_in_place_checks",
        "ADD CHECK (x > 0), ADD FOREIGN KEY (p) REFERENCES parent (id), ADD CHECK (x <> 0)",
        &[],
    )
    .await;
}

/// Names are chosen in the order the ALTER makes the constraints, valid or NOT VALID: a NOT
/// VALID check written first takes the first free name, through a copy and in place (before,
/// the valid ones were named first).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_not_valid_check_written_first_is_named_first() {
    let alter = "ADD CHECK (x < 100000) NOT VALID, ADD CHECK (x > 0)";
    named_as_postgres_names_them("names_order_rewrite", alter, &["--force-rewrite"]).await;
    named_as_postgres_names_them("names_order_in_place", alter, &[]).await;
}
