//! Issue 15, changing the row identity: the names in `--alter` resolve as the user sees them on
//! the source (on the shadow and on the sample check's clone), `--revertible` is refused when
//! the new table would not keep the old key unique, and a key change that keeps it reverts with
//! every write made after the swap. The corpus (tests/scenarios/i15_*) checks the rewrites
//! themselves under writes.

use pg_hotswap::db::ident::QualifiedName;
use serde_json::Value;

use crate::harness::{all_output, assert_exit, describe, hotswap_async, leftovers, TestDb};

const WIDEN: &str = "DROP CONSTRAINT acct_pkey, ADD PRIMARY KEY (tenant, id)";

async fn acct(db: &TestDb) {
    db.client()
        .await
        .batch_execute(
            "CREATE TABLE acct (id int PRIMARY KEY, tenant int NOT NULL, v text);
             INSERT INTO acct SELECT g, g % 9, 'v' || g FROM generate_series(1, 2000) g;",
        )
        .await
        .expect("creating the table");
}

#[tokio::test]
async fn revertible_is_refused_when_the_old_key_would_not_stay_unique() {
    let db = TestDb::new("rowid_revertible_refused").await;
    acct(&db).await;
    let out = hotswap_async(&[
        "run",
        "--dsn",
        &db.conninfo,
        "--table",
        "acct",
        "--alter",
        WIDEN,
        "--revertible",
    ])
    .await;
    assert_exit(&out, 3);
    let text = all_output(&out);
    assert!(
        text.contains("--revertible") && text.contains("ADD UNIQUE"),
        "{}",
        describe(&out)
    );
    let client = db.client().await;
    let table = QualifiedName::new("public", "acct");
    assert!(leftovers(&client, &table, "hotswap").await.is_empty());
}

#[tokio::test]
async fn the_sample_check_reads_the_source_names_on_its_clone() {
    let db = TestDb::new("rowid_sample_check").await;
    acct(&db).await;
    let out = hotswap_async(&[
        "plan",
        "--output",
        "json",
        "--dsn",
        &db.conninfo,
        "--table",
        "acct",
        "--alter",
        "DROP CONSTRAINT acct_pkey, ADD CONSTRAINT acct_pkey PRIMARY KEY (tenant, id)",
    ])
    .await;
    assert_exit(&out, 0);
    let plan: Value = serde_json::from_slice(&out.stdout).expect("plan's JSON");
    let check = &plan["sample_check"];
    assert_eq!(check["done"], true, "{check:#}");
    assert!(check["rows"].as_u64().unwrap_or(0) > 0, "{check:#}");
}

#[tokio::test]
async fn a_key_change_that_keeps_the_old_key_unique_reverts() {
    let db = TestDb::new("rowid_revert").await;
    acct(&db).await;
    let client = db.client().await;
    client
        .batch_execute(
            "CREATE TABLE acct_ledger AS SELECT * FROM acct;
             CREATE TABLE charge (id int PRIMARY KEY, acct_id int REFERENCES acct ON DELETE CASCADE);
             INSERT INTO charge SELECT g, g FROM generate_series(1, 2000) g;",
        )
        .await
        .unwrap();
    let out = hotswap_async(&[
        "run", "--dsn", &db.conninfo, "--table", "acct", "--chunk-rows", "300", "--revertible",
        "--alter", "DROP CONSTRAINT acct_pkey, ADD CONSTRAINT acct_pkey PRIMARY KEY (tenant, id), ADD UNIQUE (id)",
    ])
    .await;
    assert_exit(&out, 0);
    // Writes on the new table, the same on the ledger.
    for sql in [
        "UPDATE {t} SET tenant = 42, v = 'moved' WHERE id BETWEEN 10 AND 20",
        "DELETE FROM {t} WHERE id BETWEEN 30 AND 35",
        "INSERT INTO {t} VALUES (5001, 1, 'new'), (5002, 2, 'new')",
    ] {
        for t in ["acct", "acct_ledger"] {
            client.batch_execute(&sql.replace("{t}", t)).await.unwrap();
        }
    }
    let out = hotswap_async(&["revert", "--dsn", &db.conninfo, "--table", "acct"]).await;
    assert_exit(&out, 0);
    let pk: String = client
        .query_one(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint \
             WHERE conrelid = 'acct'::regclass AND contype = 'p'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(pk, "PRIMARY KEY (id)");
    let differ: i64 = client
        .query_one(
            "SELECT count(*) FROM ((TABLE acct EXCEPT ALL TABLE acct_ledger) \
               UNION ALL (TABLE acct_ledger EXCEPT ALL TABLE acct)) d",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(differ, 0, "the reverted table differs from the ledger");
    let fk: bool = client
        .query_one(
            "SELECT EXISTS (SELECT FROM pg_constraint WHERE conrelid = 'charge'::regclass \
               AND confrelid = 'acct'::regclass AND contype = 'f')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(fk, "the foreign key does not reference the reverted table");
}

/// Runs `run` on `table` of a fresh database made by `setup`; returns the output and a client.
async fn run_on(
    name: &str,
    setup: &str,
    table: &str,
    alter: &str,
) -> (std::process::Output, TestDb) {
    let db = TestDb::new(name).await;
    db.client()
        .await
        .batch_execute(setup)
        .await
        .expect("creating the tables");
    let out = hotswap_async(&[
        "run",
        "--dsn",
        &db.conninfo,
        "--table",
        table,
        "--alter",
        alter,
        "--chunk-rows",
        "400",
    ])
    .await;
    (out, db)
}

async fn one_bool(db: &TestDb, sql: &str) -> bool {
    db.client().await.query_one(sql, &[]).await.unwrap().get(0)
}

/// Refused with exit 3 before anything was created, saying `needle`.
async fn assert_refused_early(out: &std::process::Output, db: &TestDb, table: &str, needle: &str) {
    assert_exit(out, 3);
    assert!(all_output(out).contains(needle), "{}", describe(out));
    let client = db.client().await;
    let t = QualifiedName::new("public", table);
    assert!(leftovers(&client, &t, "hotswap").await.is_empty());
    let state: bool = client
        .query_one("SELECT to_regclass('hotswap.runs') IS NOT NULL", &[])
        .await
        .unwrap()
        .get(0);
    let runs: bool = !state
        || client
            .query_one("SELECT NOT EXISTS (SELECT FROM hotswap.runs)", &[])
            .await
            .unwrap()
            .get::<_, bool>(0);
    assert!(runs, "a run was recorded: {}", describe(out));
}

const EV: &str = "CREATE TABLE ev (id int PRIMARY KEY, code text NOT NULL, v text);
     CREATE UNIQUE INDEX ev_code_uq ON ev (code);
     ALTER TABLE ev REPLICA IDENTITY USING INDEX ev_code_uq;
     INSERT INTO ev SELECT g, 'c' || g, NULL FROM generate_series(1, 1500) g;";

/// A fresh tester found the ALTER's own REPLICA IDENTITY replaced by the source's.
#[tokio::test]
async fn the_alters_replica_identity_wins() {
    let (out, db) = run_on("rowid_ri_full", EV, "ev", "REPLICA IDENTITY FULL").await;
    assert_exit(&out, 0);
    assert!(
        one_bool(
            &db,
            "SELECT relreplident = 'f' FROM pg_class WHERE oid = 'ev'::regclass"
        )
        .await
    );

    let (out, db) = run_on(
        "rowid_ri_newkey",
        EV,
        "ev",
        "DROP CONSTRAINT ev_pkey, ADD CONSTRAINT ev_pk2 PRIMARY KEY (id, code), REPLICA IDENTITY USING INDEX ev_pk2",
    )
    .await;
    assert_exit(&out, 0);
    assert!(
        one_bool(
            &db,
            "SELECT EXISTS (SELECT FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid \
              WHERE i.indrelid = 'ev'::regclass AND i.indisreplident AND c.relname = 'ev_pk2')"
        )
        .await
    );
}

/// The replica identity's index dropped and a unique key of that name re-added over a nullable
/// column (which cannot be a replica identity): PostgreSQL accepts it; the run used to fail after
/// the copy. The replica identity follows the primary key.
#[tokio::test]
async fn a_dropped_replica_identity_index_follows_the_primary_key() {
    let (out, db) = run_on(
        "rowid_ri_dropped",
        "CREATE TABLE ev (id int PRIMARY KEY, code text NOT NULL, v text, CONSTRAINT ev_code_key UNIQUE (code));
         ALTER TABLE ev REPLICA IDENTITY USING INDEX ev_code_key;
         INSERT INTO ev SELECT g, 'c' || g, NULL FROM generate_series(1, 1500) g;",
        "ev",
        "DROP CONSTRAINT ev_code_key, ADD CONSTRAINT ev_code_key UNIQUE (code, v)",
    )
    .await;
    assert_exit(&out, 0);
    assert!(
        one_bool(
            &db,
            "SELECT relreplident = 'd' FROM pg_class WHERE oid = 'ev'::regclass"
        )
        .await
    );
}

#[tokio::test]
async fn drop_cascade_is_refused_before_anything_is_created() {
    let (out, db) = run_on(
        "rowid_cascade",
        "CREATE TABLE par (id int PRIMARY KEY, tenant int NOT NULL);
         CREATE TABLE ch (id int PRIMARY KEY, pid int REFERENCES par (id));
         INSERT INTO par SELECT g, g % 3 FROM generate_series(1, 500) g;",
        "par",
        "DROP CONSTRAINT par_pkey CASCADE, ADD PRIMARY KEY (tenant, id), ADD UNIQUE (id)",
    )
    .await;
    assert_refused_early(&out, &db, "par", "CASCADE").await;
    assert!(
        one_bool(
            &db,
            "SELECT EXISTS (SELECT FROM pg_constraint WHERE conname = 'ch_pid_fkey')"
        )
        .await
    );
}

/// A self-referencing foreign key whose key the ALTER takes away: refused at the start (it used
/// to fail in the swap, after the copy).
#[tokio::test]
async fn a_self_reference_that_loses_its_key_is_refused_early() {
    let (out, db) = run_on(
        "rowid_self_fk",
        "CREATE TABLE emp (id int PRIMARY KEY, tenant int NOT NULL, mgr int REFERENCES emp (id));
         INSERT INTO emp SELECT g, g % 3, NULLIF(g - 1, 0) FROM generate_series(1, 500) g;",
        "emp",
        "DROP CONSTRAINT emp_pkey, ADD PRIMARY KEY (tenant, id)",
    )
    .await;
    assert_refused_early(&out, &db, "emp", "emp_mgr_fkey").await;
}

/// A new key named like an index the table keeps: PostgreSQL says the relation exists at once;
/// the run used to find out in the swap.
#[tokio::test]
async fn a_new_key_named_like_a_kept_index_is_refused_early() {
    let (out, db) = run_on(
        "rowid_name_taken",
        EV,
        "ev",
        "DROP CONSTRAINT ev_pkey, ADD CONSTRAINT ev_code_uq PRIMARY KEY (id, code)",
    )
    .await;
    assert_refused_early(&out, &db, "ev", "ev_code_uq").await;
}

/// `DROP CONSTRAINT k, ADD CONSTRAINT k ..., CLUSTER ON k`: the last `k` is the new key.
#[tokio::test]
async fn a_name_rebound_in_the_same_alter_means_the_new_key() {
    let (out, db) = run_on(
        "rowid_rebound",
        "CREATE TABLE t (id int PRIMARY KEY, k int NOT NULL, v text);
         INSERT INTO t SELECT g, g % 11, 'v' FROM generate_series(1, 1500) g;",
        "t",
        "DROP CONSTRAINT t_pkey, ADD CONSTRAINT t_pkey PRIMARY KEY (k, id), CLUSTER ON t_pkey",
    )
    .await;
    assert_exit(&out, 0);
    assert!(
        one_bool(
            &db,
            "SELECT i.indisclustered AND i.indnatts = 2 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid \
              WHERE i.indrelid = 't'::regclass AND c.relname = 't_pkey'"
        )
        .await
    );
}

/// The old key's type changes as its unique key goes (numeric 1 and 1.2 are both 1 as int):
/// refused at the start (the temporary index used to fail after the copy).
#[tokio::test]
async fn a_key_whose_equality_changes_is_refused_early() {
    let (out, db) = run_on(
        "rowid_equality",
        "CREATE TABLE nn (id numeric PRIMARY KEY, k int NOT NULL UNIQUE);
         INSERT INTO nn SELECT g, g FROM generate_series(1, 500) g;
         INSERT INTO nn VALUES (1.2, 100000);",
        "nn",
        "DROP CONSTRAINT nn_pkey, ALTER COLUMN id TYPE int, ADD PRIMARY KEY (k)",
    )
    .await;
    assert_refused_early(&out, &db, "nn", "two runs").await;
}

/// `VALIDATE CONSTRAINT` of a NOT VALID foreign key was dropped silently.
#[tokio::test]
async fn validate_constraint_of_a_foreign_key_is_kept() {
    let (out, db) = run_on(
        "rowid_validate_fk",
        "CREATE TABLE dept (id int PRIMARY KEY);
         INSERT INTO dept SELECT generate_series(1, 10);
         CREATE TABLE emp (id int PRIMARY KEY, dept int);
         INSERT INTO emp SELECT g, 1 + g % 10 FROM generate_series(1, 800) g;
         ALTER TABLE emp ADD CONSTRAINT emp_dept_fkey FOREIGN KEY (dept) REFERENCES dept NOT VALID;",
        "emp",
        "VALIDATE CONSTRAINT emp_dept_fkey",
    )
    .await;
    assert_exit(&out, 0);
    assert!(
        one_bool(
            &db,
            "SELECT convalidated FROM pg_constraint WHERE conname = 'emp_dept_fkey'"
        )
        .await
    );
}

/// A key from a unique index on NOT NULL columns needs no copy: PostgreSQL only marks the index
/// (issue 16's fast path); the table keeps its relfilenode.
#[tokio::test]
async fn a_key_from_a_unique_index_is_added_in_place() {
    let setup = "CREATE TABLE device (serial text NOT NULL, model text);
         CREATE UNIQUE INDEX device_serial_idx ON device (serial);
         INSERT INTO device SELECT 's' || g, 'm' FROM generate_series(1, 1000) g;";
    let db = TestDb::new("rowid_key_in_place").await;
    let client = db.client().await;
    client.batch_execute(setup).await.unwrap();
    let before: u32 = client
        .query_one(
            "SELECT relfilenode FROM pg_class WHERE oid = 'device'::regclass",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let out = hotswap_async(&[
        "run",
        "--dsn",
        &db.conninfo,
        "--table",
        "device",
        "--alter",
        "ADD PRIMARY KEY USING INDEX device_serial_idx",
    ])
    .await;
    assert_exit(&out, 0);
    assert!(
        all_output(&out).contains("no rewrite needed"),
        "{}",
        describe(&out)
    );
    let (after, pk): (u32, bool) = {
        let r = client
            .query_one(
                "SELECT relfilenode, EXISTS (SELECT FROM pg_constraint WHERE conrelid = c.oid \
                   AND contype = 'p' AND conname = 'device_serial_idx') \
                   FROM pg_class c WHERE c.oid = 'device'::regclass",
                &[],
            )
            .await
            .unwrap();
        (r.get(0), r.get(1))
    };
    assert_eq!(before, after, "the table was rewritten");
    assert!(pk, "no primary key from the index");
}

/// A key change is never done in place, though PostgreSQL rewrites nothing for it: in place the
/// table would be without a key until the new index is built.
#[tokio::test]
async fn a_key_change_takes_the_copy() {
    let db = TestDb::new("rowid_key_copy").await;
    acct(&db).await;
    let out = hotswap_async(&[
        "run",
        "--dsn",
        &db.conninfo,
        "--table",
        "acct",
        "--alter",
        WIDEN,
    ])
    .await;
    assert_exit(&out, 0);
    assert!(
        all_output(&out).contains("drops the key acct_pkey"),
        "{}",
        describe(&out)
    );
}

/// Long table names (a fresh tester's report: 55 bytes and up): PostgreSQL shortens the
/// shadow's name to name the new key, and the run took that shortened name for the table's and
/// refused a clash with the shadow's own index. The new key must get the name PostgreSQL's own
/// ALTER gives it on a twin table of the same name in another schema, for names of 55 to 63
/// bytes and for an unnamed primary key and unique constraint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_table_names_get_the_key_names_postgresql_gives() {
    let db = TestDb::new("long_names_keys").await;
    let client = db.client().await;
    client.batch_execute("CREATE SCHEMA twin").await.unwrap();
    for len in [55usize, 57, 60, 63] {
        let name: String = format!("t{len}_")
            .chars()
            .chain(std::iter::repeat('x'))
            .take(len)
            .collect();
        let alter = format!(
            "DROP CONSTRAINT {}, ADD PRIMARY KEY (k, id), ADD UNIQUE (v, id)",
            pg_hotswap::db::ident::fit_name(&name, "_pkey")
        );
        for schema in ["public", "twin"] {
            client
                .batch_execute(&format!(
                    "CREATE TABLE {schema}.{name} (id int PRIMARY KEY, k int NOT NULL, v text);
                     INSERT INTO {schema}.{name} SELECT g, g % 7, 'v' || g FROM generate_series(1, 500) g;"
                ))
                .await
                .unwrap();
        }
        client
            .batch_execute(&format!("ALTER TABLE twin.{name} {alter}"))
            .await
            .unwrap();
        let table = format!("public.{name}");
        let out = hotswap_async(&[
            "run",
            "--dsn",
            &db.conninfo,
            "--table",
            &table,
            "--alter",
            &alter,
            "--drop-old",
        ])
        .await;
        eprintln!("{}", describe(&out));
        assert_exit(&out, 0);
        let names = |schema: &'static str| {
            let client = &client;
            let name = name.clone();
            async move {
                client
                    .query(
                        "SELECT c.relname::text FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid \
                          WHERE i.indrelid = ($1 || '.' || $2)::regclass ORDER BY 1",
                        &[&schema, &name],
                    )
                    .await
                    .unwrap()
                    .iter()
                    .map(|r| r.get::<_, String>(0))
                    .collect::<Vec<_>>()
            }
        };
        assert_eq!(names("public").await, names("twin").await, "{len} bytes");
    }
}
