//! Issue 15, converting a plain table into a partitioned one: what `plan` shows (the partitions
//! with sampled row counts, the rows no partition takes), what `run` refuses before creating
//! anything, and the time-range generator `--partition-interval`. The conversions under
//! writes are in the scenario corpus (`tests/scenarios/i15_convert_*`).

use serde_json::Value;
use tokio_postgres::Client;

use crate::harness::{all_output, assert_exit, describe, hotswap_async, TestDb};

/// `event`: `rows` rows spread evenly over January..March 2026 (`created_on`), an index on
/// `created_on`, analyzed.
async fn events(client: &Client, rows: i64) {
    client
        .batch_execute(&format!(
            "CREATE TABLE event (id int PRIMARY KEY, created_on date NOT NULL, kind text NOT NULL);
             CREATE INDEX event_created_idx ON event (created_on);
             INSERT INTO event SELECT i, date '2026-01-01' + (i % 90), 'k' || (i % 4)
               FROM generate_series(1, {rows}) i;
             ANALYZE event;"
        ))
        .await
        .expect("creating event");
}

const WIDEN: &str = "DROP CONSTRAINT event_pkey, ADD PRIMARY KEY (id, created_on)";

fn args<'a>(db: &'a TestDb, cmd: &'a str, more: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec![cmd, "--dsn", &db.conninfo, "--table", "public.event"];
    if cmd == "plan" {
        a.extend(["--observe", "100ms", "--sample-rows", "2000"]);
    }
    a.extend_from_slice(more);
    a
}

fn json(out: &std::process::Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("plan's JSON does not parse: {e}\n{}", describe(out)))
}

/// The partitions of the report as (name, sampled rows, estimated rows).
fn counts(plan: &Value) -> Vec<(String, i64, i64)> {
    plan["partitions"]["partitions"]
        .as_array()
        .unwrap_or_else(|| panic!("no partitions in {plan:#}"))
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_string(),
                p["sampled_rows"].as_i64().unwrap(),
                p["estimated_rows"].as_i64().unwrap(),
            )
        })
        .collect()
}

async fn nothing_created(client: &Client) {
    let left: Vec<String> = client
        .query(
            "SELECT relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
              WHERE n.nspname = 'public' AND relname <> ALL ('{event,event_pkey,event_created_idx}') \
             UNION ALL SELECT nspname::text FROM pg_namespace WHERE nspname = 'hotswap'",
            &[],
        )
        .await
        .expect("listing relations")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    let kind: i8 = client
        .query_one(
            "SELECT relkind::\"char\" FROM pg_class WHERE oid = 'event'::regclass",
            &[],
        )
        .await
        .expect("reading event")
        .get(0);
    assert_eq!(kind as u8, b'r', "event is still a plain table");
}

/// `plan` lists the partitions with their row counts: exact on a small table (read whole), and
/// says so.
#[tokio::test]
async fn plan_shows_partitions_with_counts() {
    let db = TestDb::new("partitions_plan_counts").await;
    let client = db.client().await;
    events(&client, 3000).await;
    let more = [
        "--alter",
        WIDEN,
        "--partition-by",
        "RANGE (created_on)",
        "--partition",
        "event_2026_01 FOR VALUES FROM ('2026-01-01') TO ('2026-02-01')",
        "--partition",
        "event_2026_02 FOR VALUES FROM ('2026-02-01') TO ('2026-03-01')",
        "--partition",
        "event_rest DEFAULT",
    ];
    let mut a = args(&db, "plan", &more);
    a.extend(["--output", "json"]);
    let out = hotswap_async(&a).await;
    assert_exit(&out, 0);
    let plan = json(&out);
    assert_eq!(plan["partitions"]["method"], "whole table", "{plan:#}");
    assert_eq!(plan["partitions"]["sampled_rows"], 3000);
    assert!(plan["partitions"]["unrouted"].is_null(), "{plan:#}");
    let exact: Vec<(String, i64)> = client
        .query(
            "SELECT CASE WHEN created_on < '2026-02-01' THEN 'public.event_2026_01' \
                         WHEN created_on < '2026-03-01' THEN 'public.event_2026_02' \
                         ELSE 'public.event_rest' END, count(*) FROM event GROUP BY 1 ORDER BY 1",
            &[],
        )
        .await
        .expect("counting by hand")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let got: Vec<(String, i64)> = counts(&plan).into_iter().map(|(n, s, _)| (n, s)).collect();
    assert_eq!(got, exact, "the DEFAULT partition last, counts exact");

    let text = hotswap_async(&args(&db, "plan", &more)).await;
    assert_exit(&text, 0);
    let t = all_output(&text);
    assert!(t.contains("Partitions of the new table"), "{t}");
    assert!(t.contains("rows: counted"), "{t}");
    for (name, n) in &exact {
        let line = t
            .lines()
            .find(|l| l.trim_start().starts_with(name.as_str()))
            .unwrap_or_else(|| panic!("no line for {name} in\n{t}"));
        assert!(line.ends_with(&format!("{n} rows")), "{line}");
    }
    nothing_created(&client).await;
}

/// On a table too big to read whole, the counts come from `TABLESAMPLE`, scaled to the table,
/// and `plan` says they are estimated.
#[tokio::test]
async fn plan_estimates_partition_rows_from_a_sample() {
    let db = TestDb::new("partitions_plan_sampled").await;
    let client = db.client().await;
    // Two thirds of the rows in January..February, one third in March.
    events(&client, 90_000).await;
    let mut a = args(
        &db,
        "plan",
        &[
            "--alter",
            WIDEN,
            "--partition-by",
            "RANGE (created_on)",
            "--partition",
            "event_early FOR VALUES FROM ('2026-01-01') TO ('2026-03-01')",
            "--partition",
            "event_rest DEFAULT",
        ],
    );
    a.extend(["--output", "json"]);
    let out = hotswap_async(&a).await;
    assert_exit(&out, 0);
    let plan = json(&out);
    let p = &plan["partitions"];
    assert!(
        p["method"]
            .as_str()
            .unwrap()
            .starts_with("TABLESAMPLE SYSTEM"),
        "{p:#}"
    );
    let sampled = p["sampled_rows"].as_i64().unwrap();
    assert!((1000..90_000).contains(&sampled), "{p:#}");
    let c = counts(&plan);
    let total: i64 = c.iter().map(|x| x.2).sum();
    assert!(
        (80_000..=100_000).contains(&total),
        "scaled to the table: {c:?}"
    );
    let early = c.iter().find(|x| x.0 == "public.event_early").unwrap().2 as f64;
    // Exactly 59/90 of the rows; a sample of whole pages is lumpy, allow 15 points.
    let share = early / total as f64;
    assert!((share - 59.0 / 90.0).abs() < 0.15, "{share} of {c:?}");
    nothing_created(&client).await;
}

/// Rows no partition takes: `plan` shows them with their key values as a blocking check (exit
/// 3), and `run` refuses before creating anything, saying what to add.
#[tokio::test]
async fn rows_without_a_partition_are_shown_then_refused() {
    let db = TestDb::new("partitions_unrouted").await;
    let client = db.client().await;
    events(&client, 3000).await;
    let more = [
        "--alter",
        WIDEN,
        "--partition-by",
        "RANGE (created_on)",
        "--partition",
        "event_2026_01 FOR VALUES FROM ('2026-01-01') TO ('2026-02-01')",
        "--partition",
        "event_2026_02 FOR VALUES FROM ('2026-02-01') TO ('2026-03-01')",
    ];
    let mut a = args(&db, "plan", &more);
    a.extend(["--output", "json"]);
    let out = hotswap_async(&a).await;
    assert_exit(&out, 3);
    let plan = json(&out);
    let u = &plan["partitions"]["unrouted"];
    let march: i64 = client
        .query_one(
            "SELECT count(*) FROM event WHERE created_on >= '2026-03-01'",
            &[],
        )
        .await
        .expect("counting March")
        .get(0);
    assert_eq!(u["sampled_rows"], march, "{u:#}");
    assert_eq!(u["values"][0], "2026-03-01", "{u:#}");
    assert_eq!(u["last_value"], "2026-03-31", "{u:#}");
    let check = plan["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "partitions")
        .unwrap_or_else(|| panic!("no partitions check: {plan:#}"));
    assert_eq!(check["verdict"], "blocking");
    assert!(check["action"]
        .as_str()
        .unwrap()
        .contains("--partition \"event_default DEFAULT\""));
    // The rest of the plan is there too.
    assert!(!plan["phases"].as_array().unwrap().is_empty());

    let out = hotswap_async(&args(&db, "run", &more)).await;
    assert_exit(&out, 3);
    let t = all_output(&out);
    assert!(
        t.contains("would have no partition; created_on of those rows: 2026-03-01"),
        "{t}"
    );
    assert!(t.contains("nothing was changed"), "{t}");
    nothing_created(&client).await;

    // A later run (the state schema in place) refuses as well, before the shadow exists.
    client
        .batch_execute("CREATE TABLE other (id int PRIMARY KEY); INSERT INTO other VALUES (1)")
        .await
        .expect("creating other");
    let out = hotswap_async(&[
        "run",
        "--dsn",
        &db.conninfo,
        "--table",
        "public.other",
        "--alter",
        "ALTER COLUMN id TYPE bigint",
    ])
    .await;
    assert_exit(&out, 0);
    let out = hotswap_async(&args(&db, "run", &more)).await;
    assert_exit(&out, 3);
    let shadow: bool = client
        .query_one("SELECT to_regclass('public.event_new') IS NULL AND to_regclass('public.event_2026_01') IS NULL", &[])
        .await
        .expect("looking for the shadow")
        .get(0);
    assert!(
        shadow,
        "nothing of the conversion exists: {}",
        describe(&out)
    );
}

/// A row outside every bound that a sample of a big table would likely miss is found through
/// the index on the partition key (the smallest and largest values are tried).
#[tokio::test]
async fn an_outlier_the_sample_misses_is_found_through_the_index() {
    let db = TestDb::new("partitions_outlier").await;
    let client = db.client().await;
    events(&client, 90_000).await;
    client
        .batch_execute(
            "INSERT INTO event VALUES (0, '1999-12-31', 'old'), (-1, '2031-01-01', 'future'); ANALYZE event",
        )
        .await
        .expect("adding outliers");
    let mut a = args(
        &db,
        "plan",
        &[
            "--alter",
            WIDEN,
            "--partition-by",
            "RANGE (created_on)",
            "--partition",
            "event_2026 FOR VALUES FROM ('2026-01-01') TO ('2027-01-01')",
        ],
    );
    a.extend(["--output", "json"]);
    let out = hotswap_async(&a).await;
    assert_exit(&out, 3);
    let plan = json(&out);
    let u = &plan["partitions"]["unrouted"];
    assert!(u["extremes"].as_i64().unwrap() >= 2, "{u:#}");
    let values: Vec<&str> = u["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(values, ["1999-12-31", "2031-01-01"], "{u:#}");
    nothing_created(&client).await;
}

/// HASH partitions that leave a remainder uncovered: the sampled rows that hash there have no
/// partition; `run` refuses, naming the missing remainder.
#[tokio::test]
async fn hash_partitions_missing_a_remainder_are_refused() {
    let db = TestDb::new("partitions_hash_gap").await;
    let client = db.client().await;
    events(&client, 2000).await;
    let out = hotswap_async(&args(
        &db,
        "run",
        &[
            "--partition-by",
            "HASH (id)",
            "--partition",
            "event_h0 FOR VALUES WITH (MODULUS 4, REMAINDER 0)",
            "--partition",
            "event_h1 FOR VALUES WITH (MODULUS 4, REMAINDER 1)",
            "--partition",
            "event_h2 FOR VALUES WITH (MODULUS 4, REMAINDER 2)",
        ],
    ))
    .await;
    assert_exit(&out, 3);
    let t = all_output(&out);
    assert!(
        t.contains("no partition takes remainder 3 of modulus 4"),
        "{t}"
    );
    nothing_created(&client).await;
}

/// PostgreSQL before 18 cannot add a `NOT VALID` foreign key to a partitioned table, which is
/// how the swap adds outgoing ones: refused before anything is created, with its reason.
#[tokio::test]
async fn an_outgoing_foreign_key_is_refused_before_postgresql_18() {
    let db = TestDb::new("partitions_outgoing_fk").await;
    let client = db.client().await;
    let v: i32 = client
        .query_one("SELECT current_setting('server_version_num')::int4", &[])
        .await
        .expect("server version")
        .get(0);
    client
        .batch_execute(
            "CREATE TABLE kind (name text PRIMARY KEY);
             INSERT INTO kind VALUES ('k0'), ('k1'), ('k2'), ('k3');",
        )
        .await
        .expect("creating kind");
    events(&client, 1000).await;
    client
        .batch_execute("ALTER TABLE event ADD FOREIGN KEY (kind) REFERENCES kind")
        .await
        .expect("adding the foreign key");
    let out = hotswap_async(&args(
        &db,
        "run",
        &[
            "--alter",
            WIDEN,
            "--partition-by",
            "RANGE (created_on)",
            "--partition-interval",
            "month",
        ],
    ))
    .await;
    if v >= 180000 {
        eprintln!("PostgreSQL {v} adds NOT VALID foreign keys to partitioned tables");
        assert_exit(&out, 0);
        return;
    }
    assert_exit(&out, 3);
    let t = all_output(&out);
    assert!(
        t.contains("cannot add NOT VALID foreign key on partitioned table"),
        "{t}"
    );
    assert!(t.contains("event_kind_fkey"), "{t}");
    let left: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_class WHERE relname ~ '^event_p[0-9]+$' OR relname = 'event_new'",
            &[],
        )
        .await
        .expect("looking for leftovers")
        .get(0);
    assert_eq!(left, 0, "nothing was created");
}

/// `--partition-interval`: monthly partitions over the data's span, named `<table>_pYYYYMM`,
/// and a default; read through the index when there is one, and the plan says it scans when
/// there is none.
#[tokio::test]
async fn the_generator_spans_the_data_and_says_how_it_read_it() {
    let db = TestDb::new("partitions_generator").await;
    let client = db.client().await;
    events(&client, 3000).await;
    let more = [
        "--alter",
        WIDEN,
        "--partition-by",
        "RANGE (created_on)",
        "--partition-interval",
        "month",
    ];
    let mut a = args(&db, "plan", &more);
    a.extend(["--output", "json"]);
    let out = hotswap_async(&a).await;
    assert_exit(&out, 0);
    let plan = json(&out);
    let g = &plan["partitions"]["generated"];
    assert_eq!(g["read"], "index event_created_idx", "{g:#}");
    assert_eq!(g["min"], "2026-01-01");
    assert_eq!(g["max"], "2026-03-31");
    let c = counts(&plan);
    let names: Vec<&str> = c.iter().map(|x| x.0.as_str()).collect();
    assert_eq!(
        names,
        [
            "public.event_p202601",
            "public.event_p202602",
            "public.event_p202603",
            "public.event_default"
        ]
    );
    assert_eq!(c.iter().map(|x| x.1).sum::<i64>(), 3000);
    assert_eq!(c[3].1, 0, "nothing in the default partition");

    client
        .batch_execute("DROP INDEX event_created_idx")
        .await
        .expect("dropping the index");
    let text = hotswap_async(&args(&db, "plan", &more)).await;
    assert_exit(&text, 0);
    let t = all_output(&text);
    assert!(
        t.contains("generated: 3 partitions by month over created_on (2026-01-01 .. 2026-03-31, read by a scan of the table"),
        "{t}"
    );

    // The run makes them.
    let out = hotswap_async(&args(&db, "run", &more)).await;
    assert_exit(&out, 0);
    let parts: Vec<String> = client
        .query(
            "SELECT c.relname::text || ' ' || pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i \
               JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'event'::regclass ORDER BY 1",
            &[],
        )
        .await
        .expect("listing partitions")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        parts,
        [
            "event_default DEFAULT",
            "event_p202601 FOR VALUES FROM ('2026-01-01') TO ('2026-02-01')",
            "event_p202602 FOR VALUES FROM ('2026-02-01') TO ('2026-03-01')",
            "event_p202603 FOR VALUES FROM ('2026-03-01') TO ('2026-04-01')",
        ]
    );
}

/// The generator's refusals: a key that is not one date column, and its usage errors.
#[tokio::test]
async fn the_generator_refuses_what_it_cannot_span() {
    let db = TestDb::new("partitions_generator_refusals").await;
    let client = db.client().await;
    events(&client, 500).await;
    let out = hotswap_async(&args(
        &db,
        "run",
        &[
            "--partition-by",
            "RANGE (id)",
            "--partition-interval",
            "week",
        ],
    ))
    .await;
    assert_exit(&out, 3);
    assert!(
        all_output(&out).contains("column id is integer, not a date, timestamp or timestamptz"),
        "{}",
        describe(&out)
    );
    let out = hotswap_async(&args(
        &db,
        "run",
        &[
            "--partition-by",
            "LIST (kind)",
            "--partition-interval",
            "week",
        ],
    ))
    .await;
    assert_exit(&out, 3);
    assert!(all_output(&out).contains("is not RANGE over one column"));
    let out = hotswap_async(&args(
        &db,
        "run",
        &[
            "--partition-by",
            "RANGE (created_on)",
            "--partition-interval",
            "day",
            "--partition",
            "event_x DEFAULT",
        ],
    ))
    .await;
    assert_exit(&out, 2);
    let out = hotswap_async(&args(&db, "run", &["--partition-interval", "day"])).await;
    assert_exit(&out, 2);
    let out = hotswap_async(&args(
        &db,
        "run",
        &[
            "--partition-by",
            "RANGE (created_on)",
            "--partition-interval",
            "quarter",
        ],
    ))
    .await;
    assert_exit(&out, 2);
    nothing_created(&client).await;
}
