//! Least privilege (DESIGN.md, "Application roles keep writing"; issue 9): the table's owner
//! runs the tool without being a superuser, while an application role that has only DML grants,
//! under row level security, writes all through the run — through the capture trigger, without
//! any grant on the tool's objects. What the tool creates is not readable by that role.

use std::time::Duration;

use pg_hotswap::demo::workload::{compare, create_tables, TableSpec};

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
            pg_hotswap::db::ident::Ident::new(db.name.clone())
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
            pg_hotswap::db::ident::Ident::new(db.name.clone())
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

/// `Err` with a "permission denied" (or "must be owner") message, as the role sees it.
async fn assert_denied(client: &tokio_postgres::Client, role: &str, sql: &str) {
    match client.batch_execute(sql).await {
        Ok(()) => panic!("role {role} was allowed to run: {sql}"),
        Err(e) => {
            let msg = e
                .as_db_error()
                .map(|d| d.message().to_string())
                .unwrap_or_else(|| e.to_string());
            assert!(
                msg.contains("permission denied") || msg.contains("must be owner"),
                "role {role} running {sql}: expected a privilege error, got {msg:?}"
            );
        }
    }
}

/// ACL entries of the state schema, everything in it, and every object the run recorded that
/// name anyone other than the object's owner (PUBLIC included): one line each.
async fn foreign_grants(admin: &tokio_postgres::Client) -> Vec<String> {
    let rows = admin
        .query(
            "SELECT 'schema ' || n.nspname, a.grantee, a.privilege_type \
               FROM pg_namespace n, aclexplode(n.nspacl) a \
              WHERE n.nspname = 'hotswap' AND a.grantee <> n.nspowner \
             UNION ALL \
             SELECT 'relation ' || c.oid::regclass::text, a.grantee, a.privilege_type \
               FROM pg_class c, aclexplode(c.relacl) a \
              WHERE (c.relnamespace = 'hotswap'::regnamespace \
                     OR c.oid IN (SELECT to_regclass(quote_ident(o.schema_name) || '.' || quote_ident(o.name)) \
                                    FROM hotswap.objects o WHERE o.kind IN ('table', 'log')) \
                     OR c.oid IN (SELECT d.objid FROM pg_depend d JOIN hotswap.objects o \
                                    ON d.refobjid = to_regclass(quote_ident(o.schema_name) || '.' || quote_ident(o.name)) \
                                   WHERE d.classid = 'pg_class'::regclass AND o.kind IN ('table', 'log'))) \
                AND a.grantee <> c.relowner \
             UNION ALL \
             SELECT 'function ' || p.oid::regprocedure::text, a.grantee, a.privilege_type \
               FROM pg_proc p, aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a \
              WHERE p.pronamespace = 'hotswap'::regnamespace AND a.grantee <> p.proowner",
            &[],
        )
        .await
        .unwrap();
    rows.iter()
        .map(|r| {
            let grantee: u32 = r.get(1);
            format!(
                "{} grants {} to {}",
                r.get::<_, String>(0),
                r.get::<_, String>(2),
                if grantee == 0 {
                    "PUBLIC".to_string()
                } else {
                    grantee.to_string()
                }
            )
        })
        .collect()
}

/// Issue 9, "nobody gets in through it": in the middle of a run (stopped abruptly after the
/// copy began, so the shadow, the change log, the trigger functions and the triggers are all in
/// place), neither a role without any grant nor the DML-only application role can read or write
/// the change log or the state tables, use the state schema, call the capture function, attach it
/// to a table of its own, or touch the shadow; and nothing the tool created carries a grant to
/// anyone but its owner — even though the owner's default privileges would grant everything it
/// creates to the application role (as managed services set up for their API roles).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_of_a_run_is_open_to_other_roles() {
    const ROWS: i64 = 5_000;
    let db = TestDb::new("nothing_of_a_run_is_open").await;
    let admin = db.client().await;
    for role in ["hsp_owner3", "hsp_app3", "hsp_nobody3"] {
        ensure_role(&admin, role).await;
    }
    admin
        .batch_execute(&format!(
            "GRANT CREATE ON DATABASE {} TO hsp_owner3;
             CREATE SCHEMA app3 AUTHORIZATION hsp_owner3;
             CREATE SCHEMA own_app3 AUTHORIZATION hsp_app3;
             CREATE SCHEMA own_nobody3 AUTHORIZATION hsp_nobody3;",
            pg_hotswap::db::ident::Ident::new(db.name.clone())
        ))
        .await
        .unwrap();
    let owner_dsn = as_user(&db.conninfo, "hsp_owner3");
    let owner = connect(&owner_dsn).await;
    let spec = TableSpec::simple("app3", "items");
    create_tables(&owner, &spec, ROWS).await.unwrap();
    owner
        .batch_execute(
            "GRANT USAGE ON SCHEMA app3 TO hsp_app3;
             GRANT SELECT, INSERT, UPDATE, DELETE ON app3.items, app3.items_ledger TO hsp_app3;
             ALTER DEFAULT PRIVILEGES GRANT ALL ON TABLES TO hsp_app3;
             ALTER DEFAULT PRIVILEGES GRANT ALL ON SEQUENCES TO hsp_app3;
             ALTER DEFAULT PRIVILEGES GRANT EXECUTE ON FUNCTIONS TO hsp_app3;
             ALTER DEFAULT PRIVILEGES GRANT USAGE, CREATE ON SCHEMAS TO hsp_app3;
             ALTER DEFAULT PRIVILEGES IN SCHEMA app3 GRANT ALL ON TABLES TO hsp_app3;",
        )
        .await
        .unwrap();

    // The tool exits abruptly at the failpoint: the run's objects stay in place.
    let out = crate::harness::hotswap_failpoint(
        &[
            "run",
            "--dsn",
            &owner_dsn,
            "--table",
            "app3.items",
            "--alter",
            "ALTER COLUMN id TYPE bigint",
        ],
        Some("phase-replay"),
    )
    .await;
    assert_eq!(
        out.status.code(),
        Some(pg_hotswap::failpoint::EXIT),
        "{}",
        describe(&out)
    );
    let objects = admin
        .query(
            "SELECT kind, quote_ident(schema_name) || '.' || quote_ident(name) FROM hotswap.objects",
            &[],
        )
        .await
        .unwrap();
    let named = |kind: &str| -> Vec<String> {
        objects
            .iter()
            .filter(|r| r.get::<_, String>(0) == kind)
            .map(|r| r.get(1))
            .collect()
    };
    let (logs, functions, shadows) = (named("log"), named("function"), named("table"));
    assert_eq!(logs.len(), 1, "{objects:?}");
    assert_eq!(functions.len(), 2, "{objects:?}");
    assert_eq!(shadows.len(), 1, "{objects:?}");
    let (log, shadow) = (&logs[0], &shadows[0]);

    for role in ["hsp_nobody3", "hsp_app3"] {
        let c = connect(&as_user(&db.conninfo, role)).await;
        let own = format!("own_{}", role.trim_start_matches("hsp_"));
        let mut attempts = vec![
            format!("SELECT * FROM {log}"),
            format!("INSERT INTO {log} (k1) VALUES (1)"),
            format!("DELETE FROM {log}"),
            format!("TRUNCATE {log}"),
            "CREATE TABLE hotswap.mine (x int)".to_string(),
            format!("SELECT * FROM {shadow}"),
            format!("INSERT INTO {shadow} (id) VALUES (-1)"),
            format!("DELETE FROM {shadow}"),
        ];
        for t in ["runs", "chunks", "events", "objects"] {
            attempts.push(format!("SELECT * FROM hotswap.{t}"));
            attempts.push(format!("DELETE FROM hotswap.{t}"));
        }
        attempts.push("UPDATE hotswap.runs SET control = 'abort'".into());
        attempts.push(
            "INSERT INTO hotswap.events (run_id, phase, kind, message) VALUES (1, 'x', 'x', 'x')"
                .into(),
        );
        c.batch_execute(&format!(
            "CREATE TABLE {own}.t (id int PRIMARY KEY, v text)"
        ))
        .await
        .unwrap();
        for f in &functions {
            attempts.push(format!("SELECT {f}()"));
            attempts.push(format!(
                "CREATE TRIGGER steal AFTER INSERT ON {own}.t REFERENCING NEW TABLE AS hotswap_new \
                 FOR EACH STATEMENT EXECUTE FUNCTION {f}()"
            ));
            attempts.push(format!(
                "CREATE OR REPLACE FUNCTION {f}() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NULL; END$$"
            ));
            attempts.push(format!("ALTER FUNCTION {f}() SECURITY INVOKER"));
        }
        for sql in &attempts {
            assert_denied(&c, role, sql).await;
        }
    }
    let grants = foreign_grants(&admin).await;
    assert!(
        grants.is_empty(),
        "objects of the tool carry grants to other roles:\n{}",
        grants.join("\n")
    );

    // The run can still finish, and the application role ends up with exactly the grants it had.
    let out = hotswap_async(&[
        "run",
        "--dsn",
        &owner_dsn,
        "--table",
        "app3.items",
        "--alter",
        "ALTER COLUMN id TYPE bigint",
    ])
    .await;
    assert_exit(&out, 0);
    let privs: Vec<String> = admin
        .query(
            "SELECT a.privilege_type FROM pg_class c, aclexplode(c.relacl) a \
              WHERE c.oid = 'app3.items'::regclass AND a.grantee = 'hsp_app3'::regrole ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(privs, ["DELETE", "INSERT", "SELECT", "UPDATE"]);
}

/// What a refusal case starts from: `role` owns schema `schema` (with CREATE on the database),
/// and a 100-row table `schema.t` in it.
async fn owner_with_table(db: &TestDb, role: &str, schema: &str) -> tokio_postgres::Client {
    let admin = db.client().await;
    ensure_role(&admin, role).await;
    admin
        .batch_execute(&format!(
            "GRANT CREATE ON DATABASE {} TO {role};
             CREATE SCHEMA {schema} AUTHORIZATION {role};",
            pg_hotswap::db::ident::Ident::new(db.name.clone())
        ))
        .await
        .unwrap();
    let owner = connect(&as_user(&db.conninfo, role)).await;
    owner
        .batch_execute(&format!(
            "CREATE TABLE {schema}.t (id int PRIMARY KEY, v text);
             INSERT INTO {schema}.t SELECT g, 'x' FROM generate_series(1, 100) g;"
        ))
        .await
        .unwrap();
    admin
}

/// Runs the tool on `schema.t` as `role` and asserts it was refused at preflight (exit 3) with a
/// message that holds every one of `expect`, and that it created nothing: no shadow, no trigger,
/// no run recorded (the state schema exists only if it existed before).
async fn assert_refused_creating_nothing(
    db: &TestDb,
    admin: &tokio_postgres::Client,
    role: &str,
    schema: &str,
    expect: &[&str],
) {
    let state_before: bool = admin
        .query_one("SELECT to_regnamespace('hotswap') IS NOT NULL", &[])
        .await
        .unwrap()
        .get(0);
    let table = format!("{schema}.t");
    let out = hotswap_async(&[
        "run",
        "--dsn",
        &as_user(&db.conninfo, role),
        "--table",
        &table,
        "--alter",
        "ALTER COLUMN id TYPE bigint",
    ])
    .await;
    eprintln!("{}", describe(&out));
    assert_exit(&out, 3);
    let text = all_output(&out);
    for e in expect {
        assert!(text.contains(e), "the refusal does not say {e:?}:\n{text}");
    }
    let r = admin
        .query_one(
            "SELECT to_regclass($1) IS NOT NULL, \
                    (SELECT count(*) FROM pg_trigger WHERE tgrelid = $2::text::regclass), \
                    to_regnamespace('hotswap') IS NOT NULL",
            &[&format!("{schema}.t_new"), &table],
        )
        .await
        .unwrap();
    assert!(!r.get::<_, bool>(0), "the shadow was created");
    assert_eq!(r.get::<_, i64>(1), 0, "a trigger was created");
    let state_after: bool = r.get(2);
    assert_eq!(state_before, state_after, "the state schema was created");
    if state_after {
        let runs: i64 = admin
            .query_one(
                "SELECT CASE WHEN to_regclass('hotswap.runs') IS NULL THEN 0 ELSE \
                   (xpath('/row/c/text()', query_to_xml(format('SELECT count(*) AS c FROM hotswap.runs WHERE table_oid = %s', $1::text::regclass::oid), false, true, '')))[1]::text::int8 END",
                &[&table],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(runs, 0, "a run was recorded");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_when_not_the_owner() {
    let db = TestDb::new("refused_not_owner").await;
    let admin = owner_with_table(&db, "hsp_own_a", "pa").await;
    ensure_role(&admin, "hsp_other_a").await;
    admin
        .batch_execute(
            "GRANT USAGE ON SCHEMA pa TO hsp_other_a; GRANT SELECT, INSERT ON pa.t TO hsp_other_a",
        )
        .await
        .unwrap();
    assert_refused_creating_nothing(
        &db,
        &admin,
        "hsp_other_a",
        "pa",
        &["owner", "hsp_own_a", "GRANT"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_without_usage_on_the_tables_schema() {
    let db = TestDb::new("refused_no_usage").await;
    let admin = owner_with_table(&db, "hsp_own_b", "pb").await;
    ensure_role(&admin, "hsp_other_b").await;
    assert_refused_creating_nothing(
        &db,
        &admin,
        "hsp_other_b",
        "pb",
        &["USAGE", "schema pb", "GRANT USAGE ON SCHEMA"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_without_create_on_the_tables_schema() {
    let db = TestDb::new("refused_no_schema_create").await;
    let admin = owner_with_table(&db, "hsp_own_c", "pc").await;
    admin
        .batch_execute(
            "ALTER SCHEMA pc OWNER TO CURRENT_USER; GRANT USAGE ON SCHEMA pc TO hsp_own_c",
        )
        .await
        .unwrap();
    assert_refused_creating_nothing(
        &db,
        &admin,
        "hsp_own_c",
        "pc",
        &["CREATE on schema", "pc", "GRANT CREATE ON SCHEMA"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_without_create_on_the_database() {
    let db = TestDb::new("refused_no_db_create").await;
    let admin = owner_with_table(&db, "hsp_own_d", "pd").await;
    admin
        .batch_execute(&format!(
            "REVOKE CREATE ON DATABASE {} FROM hsp_own_d",
            pg_hotswap::db::ident::Ident::new(db.name.clone())
        ))
        .await
        .unwrap();
    assert_refused_creating_nothing(
        &db,
        &admin,
        "hsp_own_d",
        "pd",
        &[
            "CREATE on the database",
            "hotswap",
            "GRANT CREATE ON DATABASE",
            "--state-schema",
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_without_temporary_on_the_database() {
    let db = TestDb::new("refused_no_temp").await;
    let admin = owner_with_table(&db, "hsp_own_e", "pe").await;
    admin
        .batch_execute(&format!(
            "REVOKE TEMPORARY ON DATABASE {} FROM PUBLIC",
            pg_hotswap::db::ident::Ident::new(db.name.clone())
        ))
        .await
        .unwrap();
    assert_refused_creating_nothing(
        &db,
        &admin,
        "hsp_own_e",
        "pe",
        &["TEMPORARY", "GRANT TEMPORARY ON DATABASE"],
    )
    .await;
}

/// The state schema exists (another role made it) and this role may not use it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_when_the_state_schema_is_not_usable() {
    let db = TestDb::new("refused_state_schema").await;
    let admin = owner_with_table(&db, "hsp_own_f", "pf").await;
    admin.batch_execute("CREATE SCHEMA hotswap").await.unwrap();
    assert_refused_creating_nothing(
        &db,
        &admin,
        "hsp_own_f",
        "pf",
        &[
            "USAGE",
            "CREATE",
            "hotswap",
            "GRANT USAGE, CREATE ON SCHEMA",
        ],
    )
    .await;
}

/// The state schema and its tables exist (a superuser ran the tool before); this role may use
/// the schema but not write the state tables.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_when_the_state_tables_are_not_writable() {
    let db = TestDb::new("refused_state_tables").await;
    let admin = owner_with_table(&db, "hsp_own_g", "pgo").await;
    admin
        .batch_execute("CREATE TABLE public.first (id int PRIMARY KEY)")
        .await
        .unwrap();
    let out = hotswap_async(&["run", "--dsn", &db.conninfo, "--table", "public.first"]).await;
    assert_exit(&out, 0);
    admin
        .batch_execute("GRANT USAGE, CREATE ON SCHEMA hotswap TO hsp_own_g")
        .await
        .unwrap();
    assert_refused_creating_nothing(
        &db,
        &admin,
        "hsp_own_g",
        "pgo",
        &[
            "hotswap.runs",
            "INSERT",
            "GRANT SELECT, INSERT, UPDATE, DELETE ON",
        ],
    )
    .await;
}
