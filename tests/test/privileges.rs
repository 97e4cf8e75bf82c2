//! Least privilege (DESIGN.md, "Application roles keep writing"; issue 9): the table's owner
//! runs the tool without being a superuser, while an application role that has only DML grants,
//! under row level security, writes all through the run — through the capture trigger, without
//! any grant on the tool's objects. What the tool creates is not readable by that role.

use std::time::Duration;

use pg_hotswap::workload::{compare, create_tables, TableSpec};

use crate::harness::{
    all_output, assert_exit, column_type, connect, describe, hotswap_async, TestDb,
};

/// The throwaway cluster's conninfo is key=value: a later `user=` wins.
fn as_user(conninfo: &str, user: &str) -> String {
    format!("{conninfo} user={user}")
}

async fn ensure_role(client: &tokio_postgres::Client, role: &str) {
    client
        .batch_execute(&format!(
            "DO $$ BEGIN CREATE ROLE {role} LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$"
        ))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owner_without_superuser_and_a_dml_only_role_under_rls() {
    const ROWS: i64 = 30_000;
    let db = TestDb::new("owner_without_superuser").await;
    let admin = db.client().await;
    ensure_role(&admin, "hsp_owner").await;
    ensure_role(&admin, "hsp_app").await;
    admin
        .batch_execute(&format!(
            "GRANT CREATE ON DATABASE {} TO hsp_owner;
             CREATE SCHEMA app AUTHORIZATION hsp_owner;",
            pg_hotswap::ident::Ident::new(db.name.clone())
        ))
        .await
        .unwrap();
    let owner_dsn = as_user(&db.conninfo, "hsp_owner");
    let app_dsn = as_user(&db.conninfo, "hsp_app");
    let owner = connect(&owner_dsn).await;
    let spec = TableSpec::simple("app", "items");
    create_tables(&owner, &spec, ROWS).await.unwrap();
    owner
        .batch_execute(
            "ALTER TABLE app.items ENABLE ROW LEVEL SECURITY;
             CREATE POLICY app_rows ON app.items TO hsp_app USING (true) WITH CHECK (true);
             GRANT USAGE ON SCHEMA app TO hsp_app;
             GRANT SELECT, INSERT, UPDATE, DELETE ON app.items, app.items_ledger TO hsp_app;",
        )
        .await
        .unwrap();

    let load = crate::harness::start_load(&app_dsn, &spec, ROWS, 2, 300);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let out = hotswap_async(&[
        "run",
        "--dsn",
        &owner_dsn,
        "--table",
        "app.items",
        "--alter",
        "ALTER COLUMN id TYPE bigint",
    ])
    .await;
    eprintln!("{}", describe(&out));
    assert_exit(&out, 0);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let report = load.stop().await;
    assert!(
        report.errors.is_empty(),
        "the DML-only role saw errors: {:#?}",
        report.errors
    );
    assert!(
        report.transactions > 50,
        "the DML-only role barely wrote: {report}"
    );
    let cmp = compare(&admin, &spec).await.unwrap();
    assert!(cmp.is_identical(), "writes lost: {cmp}");
    assert_eq!(
        column_type(&admin, &spec.table, &spec.id_col).await,
        "bigint"
    );
    // RLS and the policy came along; the owner is unchanged.
    let r = admin
        .query_one(
            "SELECT c.relrowsecurity, pg_get_userbyid(c.relowner)::text, \
                    (SELECT count(*) FROM pg_policy p WHERE p.polrelid = c.oid AND p.polname = 'app_rows') \
               FROM pg_class c WHERE c.oid = 'app.items'::regclass",
            &[],
        )
        .await
        .unwrap();
    assert!(
        r.get::<_, bool>(0),
        "row level security is off on the new table"
    );
    assert_eq!(r.get::<_, String>(1), "hsp_owner");
    assert_eq!(r.get::<_, i64>(2), 1, "the policy is missing");
    // The application role can read nothing of the tool's.
    let app = connect(&app_dsn).await;
    let err = app
        .simple_query("SELECT * FROM hotswap.runs")
        .await
        .unwrap_err();
    assert!(
        err.as_db_error()
            .map(|d| d.message().contains("permission denied"))
            .unwrap_or(false),
        "the application role could query the state tables: {err:?}"
    );
}

/// FORCE ROW LEVEL SECURITY applies the policies to the owner too: a non-superuser owner without
/// BYPASSRLS is refused at preflight, with the privilege it needs, and nothing is created.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forced_row_security_without_bypassrls_is_refused() {
    let db = TestDb::new("forced_row_security_refused").await;
    let admin = db.client().await;
    ensure_role(&admin, "hsp_owner2").await;
    admin
        .batch_execute(&format!(
            "GRANT CREATE ON DATABASE {} TO hsp_owner2;
             CREATE SCHEMA app2 AUTHORIZATION hsp_owner2;",
            pg_hotswap::ident::Ident::new(db.name.clone())
        ))
        .await
        .unwrap();
    let owner_dsn = as_user(&db.conninfo, "hsp_owner2");
    let owner = connect(&owner_dsn).await;
    owner
        .batch_execute(
            "CREATE TABLE app2.secret (id int PRIMARY KEY, v text);
             INSERT INTO app2.secret SELECT g, 'x' FROM generate_series(1, 100) g;
             ALTER TABLE app2.secret ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
             CREATE POLICY own ON app2.secret USING (v = 'x');",
        )
        .await
        .unwrap();
    let out = hotswap_async(&["run", "--dsn", &owner_dsn, "--table", "app2.secret"]).await;
    eprintln!("{}", describe(&out));
    assert_exit(&out, 3);
    assert!(all_output(&out).contains("BYPASSRLS"), "{}", describe(&out));
    let n: i64 = admin
        .query_one("SELECT count(*) FROM pg_class WHERE relname IN ('secret_new') OR relnamespace = to_regnamespace('hotswap')", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 0, "something was created");
}
