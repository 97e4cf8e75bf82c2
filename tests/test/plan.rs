//! Issue 6, "Dry run: the full plan, its locks and an honest time estimate before anything
//! changes".
//!
//! `plan` (and `run --dry-run`) must leave the database exactly as it was: the same `pg_dump`
//! (schema and data), no state schema. Its JSON carries the mapping, the statements with their
//! locks, the disk and the per-phase estimates. A bad ALTER is refused (exit 3) with nothing
//! changed. Each preflight check is provoked once: an idle-in-transaction session on the table,
//! a replication slot, timeouts set on the database, too few connections for `--jobs`, a role
//! that does not own the table, something between the tool and the server, an anti-wraparound
//! vacuum. `run` shares the checks and refuses on a blocking one.

use std::time::{Duration, Instant};

use serde_json::Value;
use tokio_postgres::Client;

use crate::harness::{all_output, assert_exit, conninfo_for, describe, hotswap_async, TestDb};

/// A table of `rows` rows with an index, a view over it and a table referencing it.
async fn fixture(client: &Client, rows: i64) {
    client
        .batch_execute(&format!(
            "CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL, note text, qty int DEFAULT 1);
             CREATE INDEX items_name_idx ON items (name);
             INSERT INTO items SELECT g, 'item ' || g, 'note ' || g, g % 7 FROM generate_series(1, {rows}) g;
             CREATE VIEW items_view AS SELECT id, name FROM items;
             CREATE TABLE orders (id int PRIMARY KEY, item_id int REFERENCES items (id));
             INSERT INTO orders VALUES (1, 1), (2, 2);
             ANALYZE items;"
        ))
        .await
        .expect("creating the fixture");
}

/// `pg_dump` of the whole database (schema and data), without the random `\restrict` keys.
async fn dump(db: &TestDb) -> String {
    let bindir = tokio::task::spawn_blocking(pg_hotswap::demo::cluster::find_bindir)
        .await
        .expect("finding the PostgreSQL binaries")
        .expect("PostgreSQL binaries (for pg_dump)");
    let out = tokio::process::Command::new(bindir.join("pg_dump"))
        .arg("--dbname")
        .arg(&db.conninfo)
        .output()
        .await
        .expect("running pg_dump");
    assert!(
        out.status.success(),
        "pg_dump failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("UTF-8")
        .lines()
        .filter(|l| !l.starts_with("\\restrict") && !l.starts_with("\\unrestrict"))
        .collect::<Vec<_>>()
        .join("\n")
}

async fn no_state_schema(client: &Client) -> bool {
    client
        .query_one("SELECT to_regnamespace('hotswap') IS NULL", &[])
        .await
        .expect("looking for the state schema")
        .get(0)
}

fn json(out: &std::process::Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("plan's JSON does not parse: {e}\n{}", describe(out)))
}

fn check<'a>(plan: &'a Value, name: &str) -> &'a Value {
    plan["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name} in {plan:#}"))
}

/// `plan --output json` for `items` in `db`, as `conninfo` (the database's by default).
async fn plan_json(conninfo: &str, extra: &[&str]) -> (std::process::Output, Value) {
    let mut args = vec![
        "plan",
        "--dsn",
        conninfo,
        "--table",
        "public.items",
        "--output",
        "json",
        "--observe",
        "200ms",
    ];
    args.extend_from_slice(extra);
    let out = hotswap_async(&args).await;
    let v = json(&out);
    (out, v)
}

/// A connection string for the same database as another role.
fn as_user(conninfo: &str, user: &str) -> String {
    if conninfo.starts_with("postgres") {
        let sep = if conninfo.contains('?') { '&' } else { '?' };
        format!("{conninfo}{sep}user={user}")
    } else {
        format!("{conninfo} user={user}")
    }
}

async fn create_role(client: &Client, role: &str) {
    client
        .batch_execute(&format!(
            "DO $$ BEGIN CREATE ROLE {role} LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$"
        ))
        .await
        .expect("creating a role");
}

#[tokio::test]
async fn plan_changes_nothing_and_prints_the_whole_plan() {
    let db = TestDb::new("plan_changes_nothing").await;
    let client = db.client().await;
    fixture(&client, 30_000).await;
    let before = dump(&db).await;
    let alter =
        "ALTER COLUMN id TYPE bigint, DROP COLUMN note, ADD COLUMN flags int NOT NULL DEFAULT 0";
    let (out, plan) = plan_json(
        &db.conninfo,
        &[
            "--alter",
            alter,
            "--jobs",
            "2",
            "--chunk-rows",
            "5000",
            "--sample-rows",
            "8000",
        ],
    )
    .await;
    assert_exit(&out, 0);
    assert_eq!(dump(&db).await, before, "plan changed the database");
    assert!(
        no_state_schema(&client).await,
        "plan created the state schema"
    );

    // The mapping, with the dropped column flagged as data loss.
    let cols = plan["columns"].as_array().expect("columns");
    let col = |n: &str| {
        cols.iter()
            .find(|c| c["column"] == n)
            .unwrap_or_else(|| panic!("column {n}: {plan:#}"))
    };
    assert_eq!(col("id")["kind"], "cast");
    assert_eq!(col("id")["to"], "bigint");
    assert_eq!(col("name")["kind"], "kept");
    assert_eq!(col("flags")["kind"], "default");
    assert_eq!(col("note")["kind"], "dropped");
    assert_eq!(col("note")["data_loss"], true);
    // What is carried over.
    let carried = &plan["carried_over"];
    let names: Vec<&str> = carried["indexes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"items_pkey") && names.contains(&"items_name_idx"),
        "{carried:#}"
    );
    assert_eq!(carried["views"][0], "public.items_view");
    assert_eq!(
        carried["incoming_foreign_keys"].as_array().unwrap().len(),
        1
    );
    // Statements with their locks, by phase.
    let phases = plan["phases"].as_array().expect("phases");
    let phase_names: Vec<&str> = phases
        .iter()
        .map(|p| p["phase"].as_str().unwrap())
        .collect();
    for p in [
        "shadow", "capture", "copy", "build", "replay", "swap", "finish",
    ] {
        assert!(
            phase_names.contains(&p),
            "phase {p} missing: {phase_names:?}"
        );
    }
    let swap = phases.iter().find(|p| p["phase"] == "swap").unwrap();
    let lock = swap["statements"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["sql"].as_str().unwrap().contains("LOCK TABLE"))
        .expect("the swap's LOCK TABLE");
    assert_eq!(lock["locks"][0]["mode"], "ACCESS EXCLUSIVE");
    assert_eq!(lock["locks"][0]["on"], "public.items");
    assert_eq!(lock["max_wait_ms"], 100);
    assert_eq!(lock["attempts"], 30);
    let capture = phases.iter().find(|p| p["phase"] == "capture").unwrap();
    assert!(capture["statements"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["locks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["mode"] == "SHARE ROW EXCLUSIVE")));
    let copy = phases.iter().find(|p| p["phase"] == "copy").unwrap();
    assert!(
        copy["statements"][0]["sql"]
            .as_str()
            .unwrap()
            .contains("CAST"),
        "{copy:#}"
    );
    // Disk and estimates, per phase and in total.
    assert!(
        plan["disk"]["needed_bytes"].as_u64().unwrap() > 0,
        "{:#}",
        plan["disk"]
    );
    assert!(plan["disk"]["new_table_bytes"].as_u64().unwrap() > 0);
    for p in ["shadow", "copy", "build"] {
        let ph = phases.iter().find(|x| x["phase"] == p).unwrap();
        assert!(
            ph["estimate_secs"].as_f64().unwrap() > 0.0,
            "no estimate for {p}: {ph:#}"
        );
    }
    let est = &plan["estimate"];
    assert!(est["total_secs"].as_f64().unwrap() > 0.0);
    assert!(est["low_secs"].as_f64().unwrap() <= est["total_secs"].as_f64().unwrap());
    assert!(["high", "medium", "low"].contains(&est["confidence"].as_str().unwrap()));
    assert_eq!(est["sample"]["method"], "key ranges");
    assert!(est["sample"]["rows"].as_u64().unwrap() > 1000, "{est:#}");
    assert_eq!(est["sample"]["parallel_streams_measured"], 2);
    assert_eq!(est["indexes"].as_array().unwrap().len(), 2);
    assert!(est["replay_rows_per_sec"].as_f64().unwrap() > 0.0);

    // `run --dry-run` is the same, for people.
    let out = hotswap_async(&[
        "run",
        "--dry-run",
        "--dsn",
        &db.conninfo,
        "--table",
        "items",
        "--alter",
        alter,
        "--observe",
        "100ms",
    ])
    .await;
    assert_exit(&out, 0);
    let text = all_output(&out);
    for s in [
        "DATA LOSS",
        "LOCK TABLE",
        "ACCESS EXCLUSIVE",
        "Estimate",
        "confidence",
        "Checks",
    ] {
        assert!(
            text.contains(s),
            "{s:?} missing from the text plan:\n{text}"
        );
    }
    assert_eq!(
        dump(&db).await,
        before,
        "run --dry-run changed the database"
    );
    assert!(no_state_schema(&client).await);
}

#[tokio::test]
async fn a_bad_alter_is_refused_and_nothing_changes() {
    let db = TestDb::new("plan_bad_alter").await;
    let client = db.client().await;
    fixture(&client, 100).await;
    let before = dump(&db).await;
    let (out, plan) = plan_json(&db.conninfo, &["--alter", "ALTER COLUMN nope TYPE bigint"]).await;
    assert_exit(&out, 3);
    assert!(
        plan["refused"].as_str().unwrap().contains("ALTER failed"),
        "{plan:#}"
    );
    assert_eq!(plan["verdict"], "blocking");
    assert_eq!(dump(&db).await, before);
    assert!(no_state_schema(&client).await);
    // Data that does not fit the new type is found by the sample copy.
    client
        .batch_execute("UPDATE items SET name = 'x' WHERE id = 50")
        .await
        .unwrap();
    let before = dump(&db).await;
    let (out, plan) = plan_json(
        &db.conninfo,
        &["--alter", "ALTER COLUMN name TYPE int USING name::int"],
    )
    .await;
    assert_exit(&out, 3);
    assert!(
        plan["refused"].as_str().unwrap().contains("sample"),
        "{plan:#}"
    );
    assert_eq!(dump(&db).await, before);
}

#[tokio::test]
async fn an_idle_transaction_holding_a_lock_is_a_warning_with_its_pid() {
    let db = TestDb::new("plan_idle_in_tx").await;
    let client = db.client().await;
    fixture(&client, 100).await;
    let idle = db.client().await;
    idle.batch_execute("BEGIN; UPDATE items SET qty = qty WHERE id = 1")
        .await
        .unwrap();
    let pid: i32 = idle
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (out, plan) = plan_json(&db.conninfo, &[]).await;
    assert_exit(&out, 0);
    let c = check(&plan, "sessions");
    assert_eq!(c["verdict"], "warning", "{c:#}");
    assert!(
        c["pids"].as_array().unwrap().contains(&Value::from(pid)),
        "{c:#}"
    );
    assert!(c["summary"].as_str().unwrap().contains(&pid.to_string()));
    idle.batch_execute("ROLLBACK").await.unwrap();
}

#[tokio::test]
async fn a_replication_slot_keeping_wal_is_a_warning() {
    let db = TestDb::new("plan_slot").await;
    let client = db.client().await;
    fixture(&client, 100).await;
    let slot = "hs_plan_test_slot";
    client
        .execute(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1",
            &[&slot],
        )
        .await
        .unwrap();
    client
        .execute(
            "SELECT pg_create_physical_replication_slot($1, true)",
            &[&slot],
        )
        .await
        .expect("creating a physical replication slot");
    let (out, plan) = plan_json(&db.conninfo, &[]).await;
    client
        .execute("SELECT pg_drop_replication_slot($1)", &[&slot])
        .await
        .unwrap();
    assert_exit(&out, 0);
    let c = check(&plan, "replication_slots");
    assert_eq!(c["verdict"], "warning", "{c:#}");
    assert!(c["details"].to_string().contains(slot), "{c:#}");
    // WAL held by the slot is counted in full.
    let d = &plan["disk"];
    assert_eq!(d["wal_retained_bytes"], d["wal_generated_bytes"], "{d:#}");
}

#[tokio::test]
async fn timeouts_set_on_the_database_are_reported() {
    let db = TestDb::new("plan_timeouts").await;
    let client = db.client().await;
    fixture(&client, 100).await;
    client
        .batch_execute(&format!(
            "ALTER DATABASE {} SET statement_timeout = '1s'; ALTER DATABASE {} SET idle_session_timeout = '1h'",
            db.name, db.name
        ))
        .await
        .unwrap();
    let (out, plan) = plan_json(&db.conninfo, &[]).await;
    assert_exit(&out, 0);
    let c = check(&plan, "timeouts");
    let details = c["details"].to_string();
    assert!(
        details.contains("statement_timeout = 1s") && details.contains("set on the database"),
        "{c:#}"
    );
    assert!(details.contains("sets it to 0"), "{c:#}");
    // idle_session_timeout is not overridden by the tool: a warning.
    assert_eq!(c["verdict"], "warning", "{c:#}");
    assert!(
        c["summary"]
            .as_str()
            .unwrap()
            .contains("idle_session_timeout"),
        "{c:#}"
    );
}

#[tokio::test]
async fn too_few_connections_for_the_jobs_is_blocking_for_plan_and_run() {
    let db = TestDb::new("plan_connections").await;
    let client = db.client().await;
    let role = "hs_plan_conn_owner";
    create_role(&client, role).await;
    fixture(&client, 100).await;
    client
        .batch_execute(&format!(
            "ALTER TABLE items OWNER TO {role}; ALTER TABLE orders OWNER TO {role}; ALTER VIEW items_view OWNER TO {role};
             GRANT CREATE ON DATABASE {db} TO {role}; GRANT CREATE ON SCHEMA public TO {role};
             ALTER DATABASE {db} CONNECTION LIMIT 6",
            db = db.name
        ))
        .await
        .unwrap();
    let dsn = as_user(&db.conninfo, role);
    let (out, plan) = plan_json(&dsn, &["--jobs", "8"]).await;
    assert_exit(&out, 3);
    let c = check(&plan, "connections");
    assert_eq!(c["verdict"], "blocking", "{c:#}");
    assert!(
        c["summary"].as_str().unwrap().contains("database limit"),
        "{c:#}"
    );
    // The same jobs within the limit are fine.
    let (out, plan) = plan_json(&dsn, &["--jobs", "1"]).await;
    assert_exit(&out, 0);
    assert_eq!(check(&plan, "connections")["verdict"], "ok");
    // run refuses on the same check, before creating anything.
    let out = hotswap_async(&["run", "--dsn", &dsn, "--table", "items", "--jobs", "8"]).await;
    assert_exit(&out, 3);
    assert!(
        all_output(&out).contains("connections"),
        "{}",
        describe(&out)
    );
    assert!(no_state_schema(&client).await);
}

#[tokio::test]
async fn a_role_that_does_not_own_the_table_is_blocking() {
    let db = TestDb::new("plan_non_owner").await;
    let client = db.client().await;
    let role = "hs_plan_not_owner";
    create_role(&client, role).await;
    fixture(&client, 100).await;
    client
        .batch_execute(&format!("GRANT SELECT ON items TO {role}"))
        .await
        .unwrap();
    let before = dump(&db).await;
    let (out, plan) = plan_json(&as_user(&db.conninfo, role), &[]).await;
    assert_exit(&out, 3);
    let c = check(&plan, "privileges");
    assert_eq!(c["verdict"], "blocking", "{c:#}");
    assert!(c["summary"].as_str().unwrap().contains("owner"), "{c:#}");
    assert_eq!(dump(&db).await, before);
}

/// Forwards TCP connections from a local port to the server: something "in between".
async fn proxy(target: String) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((mut inbound, _)) = listener.accept().await else {
                return;
            };
            let target = target.clone();
            tokio::spawn(async move {
                if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    port
}

#[tokio::test]
async fn a_proxy_in_front_of_the_server_is_noticed() {
    let db = TestDb::new("plan_pooler").await;
    let client = db.client().await;
    fixture(&client, 100).await;
    let port: i32 = client
        .query_one("SELECT current_setting('port')::int", &[])
        .await
        .unwrap()
        .get(0);
    let addr: Option<String> = client
        .query_one("SELECT host(inet_server_addr())", &[])
        .await
        .unwrap()
        .get(0);
    let Some(addr) = addr else {
        eprintln!("the test server is reached over a Unix socket; no TCP proxy test");
        return;
    };
    let local = proxy(format!("{addr}:{port}")).await;
    // Repeated host/port keys would add a second host: replace the port instead.
    let from = format!("port={port}");
    if !db.conninfo.contains(&from) {
        eprintln!("the test server's conninfo names no port; no TCP proxy test");
        return;
    }
    let dsn = db.conninfo.replace(&from, &format!("port={local}"));
    let (out, plan) = plan_json(&dsn, &[]).await;
    assert_exit(&out, 0);
    let c = check(&plan, "pooler");
    assert_eq!(c["verdict"], "warning", "{c:#}");
    assert!(
        c["summary"]
            .as_str()
            .unwrap()
            .contains(&format!("port {local}")),
        "{c:#}"
    );
    // Directly, no warning.
    let (_, plan) = plan_json(&db.conninfo, &[]).await;
    assert_eq!(check(&plan, "pooler")["verdict"], "ok");
}

#[tokio::test]
async fn an_anti_wraparound_vacuum_on_the_table_is_blocking() {
    let db = TestDb::new("plan_wraparound").await;
    let client = db.client().await;
    fixture(&client, 100).await;
    // The lowest freeze age PostgreSQL accepts, so that burning 100,000 xids provokes it.
    client
        .batch_execute("ALTER TABLE items SET (autovacuum_freeze_max_age = 100000)")
        .await
        .unwrap();
    let admin = crate::harness::connect(&conninfo_for("postgres")).await;
    admin
        .batch_execute("ALTER SYSTEM SET autovacuum_naptime = '1s'")
        .await
        .unwrap();
    admin
        .batch_execute("SELECT pg_reload_conf()")
        .await
        .unwrap();
    // Hold the vacuum back: an anti-wraparound autovacuum waits for its lock (a regular one
    // would skip the table).
    let holder = db.client().await;
    holder
        .batch_execute("BEGIN; LOCK TABLE items IN SHARE UPDATE EXCLUSIVE MODE")
        .await
        .unwrap();
    client
        .batch_execute(
            "DO $$ BEGIN FOR i IN 1..101000 LOOP PERFORM pg_current_xact_id(); COMMIT; END LOOP; END $$",
        )
        .await
        .expect("burning transaction ids");
    // Up to two minutes: the launcher visits each of the run's many test databases in turn,
    // and its three workers may be busy with others (25 s was too short in one clean-clone run
    // of the whole suite, session 13).
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut seen = false;
    while Instant::now() < deadline {
        seen = client
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE backend_type = 'autovacuum worker' \
                   AND query LIKE '%items (to prevent wraparound)%')",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if seen {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let result = if seen {
        Some(plan_json(&db.conninfo, &[]).await)
    } else {
        None
    };
    holder.batch_execute("ROLLBACK").await.unwrap();
    admin
        .batch_execute("ALTER SYSTEM RESET autovacuum_naptime")
        .await
        .unwrap();
    admin
        .batch_execute("SELECT pg_reload_conf()")
        .await
        .unwrap();
    let (out, plan) = result.expect("no anti-wraparound autovacuum started within 120 s");
    assert_exit(&out, 3);
    let c = check(&plan, "wraparound_vacuum");
    assert_eq!(c["verdict"], "blocking", "{c:#}");
}

/// A key that is not one integer column is sampled by TABLESAMPLE windows, all copied into one
/// sample shadow: windows that shared blocks put rows in twice and the shadow's unique index
/// failed ("could not create unique index ... is duplicated"; found by a helper on `(id, day)`,
/// and by a fresh tester at 30,000 rows and up). A text key and a composite key whose first
/// column is an integer, each large enough to be sampled rather than read whole.
#[tokio::test]
async fn plan_samples_a_composite_or_text_key_without_reading_a_row_twice() {
    let db = TestDb::new("plan_composite_sample").await;
    let client = db.client().await;
    client
        .batch_execute(
            "CREATE TABLE items (id int NOT NULL, day int NOT NULL, name text, PRIMARY KEY (id, day));
             INSERT INTO items SELECT i / 3, i % 3, md5(i::text) FROM generate_series(0, 119999) i;
             CREATE TABLE items_text (code text PRIMARY KEY, qty int);
             INSERT INTO items_text SELECT md5(i::text), i FROM generate_series(1, 90000) i;
             ANALYZE items, items_text;",
        )
        .await
        .unwrap();
    let (out, plan) = plan_json(
        &db.conninfo,
        &[
            "--alter",
            "ALTER COLUMN name TYPE varchar(64)",
            "--jobs",
            "2",
        ],
    )
    .await;
    assert_exit(&out, 0);
    assert_eq!(
        plan["estimate"]["sample"]["method"], "tablesample",
        "{plan:#}"
    );
    let out = hotswap_async(&[
        "plan",
        "--dsn",
        &db.conninfo,
        "--table",
        "public.items_text",
        "--alter",
        "ALTER COLUMN qty TYPE bigint",
    ])
    .await;
    assert_exit(&out, 0);
}
