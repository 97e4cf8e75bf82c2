//! Issue 14, "Every supported PostgreSQL: 15, 16, 17 and 18": what differs between the versions.
//!
//! - The catalog reader turns a row of an unexpected shape into an error naming the server
//!   version and the object, never a panic (`Row::get` panicked: exit 101 on 17 and 18).
//! - Each version's new catalog features are carried over exactly under writes, or refused at
//!   preflight with the reason (exit 3, nothing created). A test that needs a newer server than
//!   the one under test says so on stderr (`SKIPPED: ...`) and passes; the CI version matrix
//!   (.ci/run) runs this module on 15, 16, 17 and 18, so each feature is exercised somewhere.

use std::time::Duration;

use pg_hotswap::db::catalog::Column;
use pg_hotswap::db::ident::QualifiedName;
use pg_hotswap::demo::workload::{create_tables, TableSpec};
use tokio_postgres::Client;

use crate::harness::{
    all_output, assert_exit, assert_matches_ledger, describe, hotswap_async, leftovers, start_load,
    table_arg, TestDb,
};

/// `server_version_num` of the test server.
async fn server_version(client: &Client) -> i32 {
    client
        .query_one("SELECT current_setting('server_version_num')::int4", &[])
        .await
        .expect("reading server_version_num")
        .get(0)
}

/// True when the server is at least `min` (a `server_version_num`); otherwise prints why the
/// test does not apply, so a skip is never a silent pass.
async fn needs(client: &Client, min: i32, feature: &str) -> bool {
    let v = server_version(client).await;
    if v >= min {
        return true;
    }
    eprintln!(
        "SKIPPED: {feature} needs PostgreSQL {}, the test server runs {}.{}",
        min / 10_000,
        v / 10_000,
        v % 10_000
    );
    false
}

/// One text line per catalog fact the swap must keep, for comparing before and after.
async fn catalog_facts(client: &Client, table: &QualifiedName) -> Vec<String> {
    let t = table.to_string();
    let mut facts: Vec<String> = client
        .query(
            "SELECT format('constraint %s %s: %s%s', contype, conname, \
                           pg_catalog.pg_get_constraintdef(oid), \
                           CASE WHEN convalidated THEN '' ELSE ' (not validated)' END) \
               FROM pg_catalog.pg_constraint WHERE conrelid = $1::text::regclass \
             UNION ALL \
             SELECT format('column %s %s not null %s generated %L default %s', attname, \
                           pg_catalog.format_type(atttypid, atttypmod), attnotnull, \
                           attgenerated, pg_catalog.pg_get_expr(d.adbin, d.adrelid)) \
               FROM pg_catalog.pg_attribute a \
               LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum \
              WHERE a.attrelid = $1::text::regclass AND a.attnum > 0 AND NOT a.attisdropped \
             UNION ALL \
             SELECT 'index ' || pg_catalog.pg_get_indexdef(indexrelid) \
               FROM pg_catalog.pg_index WHERE indrelid = $1::text::regclass",
            &[&t],
        )
        .await
        .expect("reading the catalog facts")
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect();
    facts.sort();
    facts
}

/// A row of `sql/columns.sql`'s shape as PostgreSQL 17 and 18 return `attstattarget` untreated
/// (a nullable `int2`, where the reader expects an `int4`): the reader must say so, naming the
/// column, instead of panicking. Fails before issue 14 (`Row::get` panicked).
#[tokio::test]
async fn an_unexpected_catalog_shape_is_an_error_not_a_panic() {
    let db = TestDb::new("an_unexpected_catalog_shape_is_an_error_not_a_panic").await;
    let client = db.client().await;
    let row = client
        .query_one(
            "SELECT 1::int4, 'id'::text, 'integer'::text, 'pg_catalog.int4'::text, 23::oid, \
                    true, ''::text, ''::text, NULL::text, NULL::text, \
                    NULL::int2 AS attstattarget, NULL::text[]",
            &[],
        )
        .await
        .expect("building the row");
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        Column::from_row(&row, &"reading the columns of table oid 1234")
    }));
    let err = match result {
        Ok(Ok(c)) => panic!("a row with an int2 stat target was read as {c:?}"),
        Ok(Err(e)) => e,
        Err(_) => panic!("the catalog reader panicked on an unexpected row shape"),
    };
    let msg = err.to_string();
    for part in [
        "unexpected catalog shape",
        "table oid 1234",
        "attstattarget",
        "int2",
    ] {
        assert!(msg.contains(part), "the error does not say {part:?}: {msg}");
    }

    // The same reader on the real catalog works on every version, and an extra column is not
    // read past: a short row is an error too, not an index panic.
    let short = client
        .query_one("SELECT 1::int4, 'id'::text", &[])
        .await
        .expect("building the short row");
    let err = Column::from_row(&short, &"a short row").expect_err("a two-column row");
    assert!(err.to_string().contains("absent"), "{err}");
}

/// The run names the server's version in its errors: a run on a table of a newer shape never
/// exits 101. (On every version: a plain `plan` reads the whole catalog of a table with the
/// statistics targets and extended statistics whose columns changed type in 17.)
#[tokio::test]
async fn plan_reads_changed_catalog_columns_on_every_version() {
    let db = TestDb::new("plan_reads_changed_catalog_columns_on_every_version").await;
    let client = db.client().await;
    client
        .batch_execute(
            "CREATE TABLE st (id int PRIMARY KEY, a int, b int); \
             ALTER TABLE st ALTER COLUMN a SET STATISTICS 500; \
             CREATE STATISTICS st_ab ON a, b FROM st; \
             CREATE STATISTICS st_ba (ndistinct) ON b, a FROM st; \
             ALTER STATISTICS st_ba SET STATISTICS 300; \
             CREATE INDEX st_expr ON st ((a + b)); \
             ALTER INDEX st_expr ALTER COLUMN 1 SET STATISTICS 200; \
             INSERT INTO st SELECT g, g, g FROM generate_series(1, 100) g;",
        )
        .await
        .expect("creating the table");
    let before = catalog_facts(&client, &QualifiedName::new("public", "st")).await;
    let out = hotswap_async(&["run", "--dsn", &db.conninfo, "--table", "public.st"]).await;
    assert_exit(&out, 0);
    let after = catalog_facts(&client, &QualifiedName::new("public", "st")).await;
    assert_eq!(before, after, "{}", describe(&out));
    let targets: Vec<String> = client
        .query(
            "SELECT s.stxname || '=' || COALESCE(s.stxstattarget::int4, -1) \
               FROM pg_catalog.pg_statistic_ext s WHERE s.stxrelid = 'st'::regclass ORDER BY 1",
            &[],
        )
        .await
        .expect("reading the statistics targets")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(targets, ["st_ab=-1", "st_ba=300"]);
}

/// PostgreSQL 18: a named NOT NULL constraint (a row of pg_constraint), a VIRTUAL generated
/// column and a temporal unique key (`WITHOUT OVERLAPS`, btree_gist) on a table rewritten
/// (`id` int -> bigint) while writers run: no write is lost, and every one of them comes out
/// exactly as it was.
#[tokio::test]
async fn pg18_named_not_null_virtual_column_and_temporal_key_under_writes() {
    const ROWS: i64 = 20_000;
    let db = TestDb::new("pg18_named_not_null_virtual_column_and_temporal_key").await;
    let client = db.client().await;
    if !needs(
        &client,
        180_000,
        "named NOT NULL, VIRTUAL and WITHOUT OVERLAPS",
    )
    .await
    {
        return;
    }
    let spec = TableSpec::simple("public", "feat18");
    create_tables(&client, &spec, ROWS).await.unwrap();
    client
        .batch_execute(
            "CREATE EXTENSION btree_gist; \
             ALTER TABLE feat18 ADD CONSTRAINT val_is_known NOT NULL val; \
             ALTER TABLE feat18 ADD COLUMN twice int GENERATED ALWAYS AS (val * 2) VIRTUAL; \
             ALTER TABLE feat18 ADD COLUMN during tstzrange NOT NULL \
                   DEFAULT tstzrange('2025-01-01', NULL); \
             ALTER TABLE feat18 ADD CONSTRAINT feat18_during_key \
                   UNIQUE (id, during WITHOUT OVERLAPS);",
        )
        .await
        .expect("adding the PostgreSQL 18 features");
    let table = spec.table.clone();
    let before = catalog_facts(&client, &table).await;
    for fact in ["val_is_known", "generated 'v'", "WITHOUT OVERLAPS"] {
        assert!(
            before.iter().any(|f| f.contains(fact)),
            "fixture: no {fact:?} in {before:#?}"
        );
    }

    let load = start_load(&db.conninfo, &spec, ROWS, 2, 300);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let out = hotswap_async(&[
        "run",
        "--dsn",
        &db.conninfo,
        "--table",
        &table_arg(&table),
        "--alter",
        "ALTER COLUMN id TYPE bigint",
    ])
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let report = load.stop().await;
    assert_exit(&out, 0);
    assert!(
        report.errors.is_empty(),
        "writer errors: {:#?}",
        report.errors
    );
    assert_matches_ledger(&client, &spec).await;

    // Exactly as before, but for the ALTER: `id` is a bigint now.
    let expected: Vec<String> = {
        let mut v: Vec<String> = before
            .iter()
            .map(|f| f.replace("column id integer", "column id bigint"))
            .collect();
        v.sort();
        v
    };
    let after = catalog_facts(&client, &table).await;
    assert_eq!(after, expected, "{}", describe(&out));
    // The virtual column is computed, not stored: it follows `val` on the new table.
    let bad: i64 = client
        .query_one(
            "SELECT count(*) FROM feat18 WHERE twice IS DISTINCT FROM val * 2",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(bad, 0);
    // The temporal key still refuses an overlapping period for the same id.
    let overlap = client
        .execute(
            "INSERT INTO feat18 (id, val, note, during) \
             SELECT id, val, note, tstzrange('2030-01-01', '2031-01-01') FROM feat18 LIMIT 1",
            &[],
        )
        .await;
    assert!(overlap.is_err(), "an overlapping period was accepted");
    assert!(leftovers(&client, &table, "hotswap").await.is_empty());
}

/// PostgreSQL 18: a NOT NULL constraint that is NOT VALID (rows with NULLs remain). The shadow
/// (`CREATE TABLE ... LIKE`) would get it validated: the copy would fail on the NULL rows (it did,
/// exit 1, after creating the shadow and the capture), or the new table would be stricter than
/// the old. Refused at preflight with the reason, nothing created.
#[tokio::test]
async fn pg18_not_valid_not_null_is_refused_at_preflight() {
    let db = TestDb::new("pg18_not_valid_not_null_is_refused_at_preflight").await;
    let client = db.client().await;
    if !needs(&client, 180_000, "NOT NULL ... NOT VALID").await {
        return;
    }
    client
        .batch_execute(
            "CREATE TABLE nn (id int PRIMARY KEY, a int, b int); \
             INSERT INTO nn SELECT g, CASE WHEN g % 10 = 0 THEN NULL ELSE g END, g \
               FROM generate_series(1, 1000) g; \
             ALTER TABLE nn ADD CONSTRAINT a_later NOT NULL a NOT VALID;",
        )
        .await
        .expect("creating the table");
    let table = QualifiedName::new("public", "nn");
    let before = catalog_facts(&client, &table).await;
    assert!(
        before.iter().any(|f| f.contains("(not validated)")),
        "fixture: {before:#?}"
    );
    let out = hotswap_async(&["run", "--dsn", &db.conninfo, "--table", "public.nn"]).await;
    assert_exit(&out, 3);
    let text = all_output(&out);
    for part in ["a_later", "NOT VALID", "VALIDATE CONSTRAINT"] {
        assert!(
            text.contains(part),
            "the refusal does not say {part:?}:\n{text}"
        );
    }
    assert!(leftovers(&client, &table, "hotswap").await.is_empty());
    assert_eq!(catalog_facts(&client, &table).await, before);
    let schema: Option<String> = client
        .query_one("SELECT to_regclass('hotswap.runs')::text", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(schema, None, "the refusal created the state tables");
}

/// PostgreSQL 18: NOT NULL constraints with names of their own, one of them NO INHERIT, come out
/// of a rewrite exactly as they were (name, NO INHERIT, validated).
#[tokio::test]
async fn pg18_named_and_no_inherit_not_null_are_carried_over() {
    let db = TestDb::new("pg18_named_and_no_inherit_not_null_are_carried_over").await;
    let client = db.client().await;
    if !needs(&client, 180_000, "named NOT NULL ... NO INHERIT").await {
        return;
    }
    client
        .batch_execute(
            "CREATE TABLE nn2 (id int PRIMARY KEY, a int CONSTRAINT a_present NOT NULL, b int); \
             ALTER TABLE nn2 ADD CONSTRAINT b_here NOT NULL b NO INHERIT; \
             INSERT INTO nn2 SELECT g, g, g FROM generate_series(1, 1000) g;",
        )
        .await
        .expect("creating the table");
    let table = QualifiedName::new("public", "nn2");
    let before = catalog_facts(&client, &table).await;
    for fact in ["a_present", "b_here", "NO INHERIT"] {
        assert!(
            before.iter().any(|f| f.contains(fact)),
            "fixture: no {fact:?} in {before:#?}"
        );
    }
    let out = hotswap_async(&["run", "--dsn", &db.conninfo, "--table", "public.nn2"]).await;
    assert_exit(&out, 0);
    assert_eq!(
        catalog_facts(&client, &table).await,
        before,
        "{}",
        describe(&out)
    );
}

/// PostgreSQL 18: a temporal primary key (`WITHOUT OVERLAPS`) as the row identity, and a foreign
/// key with `PERIOD` referencing it from another table. Carried over exactly: the key is built
/// by its constraint (`ADD CONSTRAINT ... WITHOUT OVERLAPS`), the incoming foreign key is
/// re-pointed at the new table.
#[tokio::test]
async fn pg18_temporal_primary_key_and_period_foreign_key() {
    let db = TestDb::new("pg18_temporal_primary_key_and_period_foreign_key").await;
    let client = db.client().await;
    if !needs(&client, 180_000, "temporal keys and PERIOD foreign keys").await {
        return;
    }
    client
        .batch_execute(
            "CREATE EXTENSION btree_gist; \
             CREATE TABLE rooms (id int, valid tstzrange, name text, \
                PRIMARY KEY (id, valid WITHOUT OVERLAPS)); \
             INSERT INTO rooms SELECT g, tstzrange('2025-01-01', '2026-01-01'), 'r' || g \
               FROM generate_series(1, 500) g; \
             CREATE TABLE bookings (id int PRIMARY KEY, room int, valid tstzrange, \
                FOREIGN KEY (room, PERIOD valid) REFERENCES rooms (id, PERIOD valid)); \
             INSERT INTO bookings SELECT g, g, tstzrange('2025-02-01', '2025-03-01') \
               FROM generate_series(1, 100) g;",
        )
        .await
        .expect("creating the tables");
    let rooms = QualifiedName::new("public", "rooms");
    let bookings = QualifiedName::new("public", "bookings");
    let before = (
        catalog_facts(&client, &rooms).await,
        catalog_facts(&client, &bookings).await,
    );
    let out = hotswap_async(&["run", "--dsn", &db.conninfo, "--table", "public.rooms"]).await;
    match out.status.code() {
        // Carried over (before issue 14 it failed: `CREATE UNIQUE INDEX ... USING gist`).
        Some(0) => {
            let after = (
                catalog_facts(&client, &rooms).await,
                catalog_facts(&client, &bookings).await,
            );
            assert_eq!(after, before, "{}", describe(&out));
            let n: i64 = client
                .query_one("SELECT count(*) FROM rooms", &[])
                .await
                .unwrap()
                .get(0);
            assert_eq!(n, 500);
            // The foreign key now guards the new table.
            let orphan = client
                .execute(
                    "INSERT INTO bookings VALUES (1000, 1, tstzrange('2027-01-01', '2027-02-01'))",
                    &[],
                )
                .await;
            assert!(orphan.is_err(), "the PERIOD foreign key no longer checks");
        }
        _ => panic!("not carried over:\n{}", describe(&out)),
    }
}

/// `--version` prints the client's version and, given a connection, the server's and whether
/// the CI tests it; without one it says so and does not wait for anything.
#[tokio::test]
async fn version_names_the_server_and_whether_it_is_tested() {
    let db = TestDb::new("version_names_the_server_and_whether_it_is_tested").await;
    let client = db.client().await;
    let v = server_version(&client).await;
    let expected = format!("server: PostgreSQL {}.{} (tested)", v / 10_000, v % 10_000);

    let out = hotswap_async(&["--version", "--dsn", &db.conninfo]).await;
    assert_exit(&out, 0);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        text.starts_with(&format!("pg-hotswap {}", env!("CARGO_PKG_VERSION"))),
        "{text}"
    );
    assert!(text.contains(&expected), "no {expected:?} in:\n{text}");

    let mut cmd = crate::harness::hotswap_command(&["--version"]);
    for k in [
        "DATABASE_URL",
        "PGHOST",
        "PGPORT",
        "PGDATABASE",
        "PGUSER",
        "PGSERVICE",
    ] {
        cmd.env_remove(k);
    }
    let out = cmd.output().expect("running pg-hotswap --version");
    assert_exit(&out, 0);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(text.contains("server: no connection given"), "{text}");

    // `plan` says it too.
    client
        .batch_execute("CREATE TABLE pv (id int PRIMARY KEY)")
        .await
        .unwrap();
    let out = hotswap_async(&["plan", "--dsn", &db.conninfo, "--table", "public.pv"]).await;
    assert_exit(&out, 0);
    assert!(
        all_output(&out).contains(&expected),
        "plan does not say {expected:?}:\n{}",
        describe(&out)
    );
}

/// PostgreSQL 18 names NOT NULL constraints: one the ALTER makes (`SET NOT NULL`, also after
/// `DROP NOT NULL` of the same column) gets PostgreSQL's name for the table (`t_y_not_null`,
/// `t_x_not_null`), not the shadow's (`t_new_y_not_null`), compared with the ledger's.
#[tokio::test]
async fn pg18_not_null_constraints_the_alter_makes_get_the_tables_names() {
    let db = TestDb::new("pg18_not_null_names").await;
    let client = db.client().await;
    if !needs(&client, 180_000, "named NOT NULL constraints").await {
        return;
    }
    let alter = "ALTER COLUMN y SET NOT NULL, ALTER COLUMN x DROP NOT NULL, \
                 ALTER COLUMN x TYPE bigint, ALTER COLUMN x SET NOT NULL";
    client
        .batch_execute(&format!(
            "CREATE TABLE t (id int PRIMARY KEY, x int NOT NULL, y int);
             CREATE TABLE ledger (id int PRIMARY KEY, x int NOT NULL, y int);
             INSERT INTO t SELECT g, g, g FROM generate_series(1, 100) g;
             INSERT INTO ledger SELECT * FROM t;
             ALTER TABLE ledger {alter};"
        ))
        .await
        .expect("creating the tables");
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
    assert_exit(&out, 0);
    let mut names = Vec::new();
    for table in ["t", "ledger"] {
        let rows = client
            .query(
                "SELECT regexp_replace(conname, '^ledger_', 't_') FROM pg_constraint
                  WHERE conrelid = $1::text::regclass ORDER BY 1",
                &[&table],
            )
            .await
            .expect("reading the constraints");
        names.push(
            rows.iter()
                .map(|r| r.get::<_, String>(0))
                .collect::<Vec<_>>(),
        );
    }
    assert_eq!(names[0], names[1]);
}
