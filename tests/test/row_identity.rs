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
