//! Issue 15, partitioned tables: a conversion into a partitioned table reverted with every
//! write (made through the table and straight into a partition), and what a rewrite of a
//! partition tree refuses. The corpus (tests/scenarios/i15_*) checks the rewrites themselves
//! against PostgreSQL's own ALTER.

use std::time::Duration;

use pg_hotswap::db::ident::QualifiedName;
use pg_hotswap::demo::workload::{create_tables, TableSpec};

use crate::harness::{
    all_output, assert_exit, assert_matches_ledger, describe, hotswap_async, leftovers,
    relation_exists, TestDb,
};

async fn relkind(client: &tokio_postgres::Client, table: &str) -> String {
    client
        .query_one(
            "SELECT relkind::text FROM pg_class WHERE oid = $1::text::regclass",
            &[&table],
        )
        .await
        .unwrap()
        .get(0)
}

/// The workload's plain table `public.<name>` made a range-partitioned table with the same rows:
/// `<name>_lo` (ids below 10,000), `<name>_hi` (10,000 to 20,000) and `<name>_rest` (default:
/// the workload's inserts above the initial ids).
async fn partition_workload_table(client: &tokio_postgres::Client, name: &str) {
    client
        .batch_execute(&format!(
            "ALTER TABLE {name} RENAME TO {name}_plain;
             CREATE TABLE {name} (id int PRIMARY KEY, val int, note text) PARTITION BY RANGE (id);
             CREATE TABLE {name}_lo PARTITION OF {name} FOR VALUES FROM (MINVALUE) TO (10000);
             CREATE TABLE {name}_hi PARTITION OF {name} FOR VALUES FROM (10000) TO (20001)
                 WITH (fillfactor = 90);
             CREATE TABLE {name}_rest PARTITION OF {name} DEFAULT;
             INSERT INTO {name} SELECT * FROM {name}_plain;
             DROP TABLE {name}_plain;
             ANALYZE {name};"
        ))
        .await
        .unwrap();
}

async fn oid_of(client: &tokio_postgres::Client, table: &str) -> u32 {
    client
        .query_one("SELECT $1::text::regclass::oid", &[&table])
        .await
        .unwrap()
        .get(0)
}

async fn column_type(client: &tokio_postgres::Client, table: &str, column: &str) -> String {
    client
        .query_one(
            "SELECT format_type(atttypid, atttypmod) FROM pg_attribute \
              WHERE attrelid = $1::text::regclass AND attname = $2",
            &[&table, &column],
        )
        .await
        .unwrap()
        .get(0)
}

/// The capture triggers (forward and reverse) left on any table of the database.
async fn capture_triggers(client: &tokio_postgres::Client) -> i64 {
    client
        .query_one(
            "SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'hotswap%'",
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

/// `pg-hotswap <verb> --dsn ... --table <table> <extra...>`, its output shown.
async fn command(db: &TestDb, verb: &str, table: &str, extra: &[&str]) -> std::process::Output {
    let mut args = vec![verb, "--dsn", &db.conninfo, "--table", table];
    args.extend_from_slice(extra);
    let out = hotswap_async(&args).await;
    eprintln!("{}", describe(&out));
    out
}

/// A write straight into a partition, mirrored on the ledger in the same transaction: a
/// statement naming a partition fires only that partition's statement-level triggers, so the
/// reverse capture must be on every partition.
async fn write_into_partition(client: &tokio_postgres::Client, partition: &str, id: i64) {
    let ledger = format!("{}_ledger", partition.split('_').next().unwrap());
    client
        .batch_execute(&format!(
            "BEGIN; UPDATE {partition} SET val = val + 7 WHERE id = {id}; \
             UPDATE {ledger} SET val = val + 7 WHERE id = {id}; COMMIT"
        ))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conversion_into_a_partitioned_table_reverts_with_every_write() {
    const ROWS: i64 = 20_000;
    let db = TestDb::new("conversion_reverts").await;
    let client = db.client().await;
    let spec = TableSpec::simple("public", "conv");
    create_tables(&client, &spec, ROWS).await.unwrap();
    let load = crate::harness::start_load(&db.conninfo, &spec, ROWS, 2, 200);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let out = hotswap_async(&[
        "run",
        "--dsn",
        &db.conninfo,
        "--table",
        "public.conv",
        "--partition-by",
        "RANGE (id)",
        "--partition",
        "conv_lo FOR VALUES FROM (MINVALUE) TO (10000)",
        "--partition",
        "conv_hi FOR VALUES FROM (10000) TO (20001)",
        "--partition",
        "conv_rest DEFAULT",
        "--chunk-rows",
        "800",
        "--revertible",
    ])
    .await;
    eprintln!("{}", describe(&out));
    assert_exit(&out, 0);
    assert_eq!(relkind(&client, "public.conv").await, "p");
    // Writes after the swap: through the table (the load), and straight into partitions.
    write_into_partition(&client, "conv_lo", 17).await;
    write_into_partition(&client, "conv_hi", 15_003).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let out = hotswap_async(&["revert", "--dsn", &db.conninfo, "--table", "public.conv"]).await;
    eprintln!("{}", describe(&out));
    assert_exit(&out, 0);
    assert_eq!(relkind(&client, "public.conv").await, "r", "not reverted");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let report = load.stop().await;
    assert!(
        report.errors.is_empty(),
        "writer errors {:#?}",
        report.errors
    );
    assert_matches_ledger(&client, &spec).await;
    let out = hotswap_async(&["finish", "--dsn", &db.conninfo, "--table", "public.conv"]).await;
    eprintln!("{}", describe(&out));
    assert_exit(&out, 0);
    for gone in ["conv_lo", "conv_hi", "conv_rest", "conv_rewritten"] {
        assert!(
            !relation_exists(&client, &QualifiedName::new("public", gone)).await,
            "{gone} is left after finish"
        );
    }
    let left = leftovers(&client, &spec.table, "hotswap").await;
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_tree_rewrite_refuses_partitions_of_their_own() {
    let db = TestDb::new("tree_refusals").await;
    let client = db.client().await;
    client
        .batch_execute(
            "CREATE TABLE tr (id int, day int, PRIMARY KEY (id, day)) PARTITION BY RANGE (day);
             CREATE TABLE tr_a PARTITION OF tr FOR VALUES FROM (0) TO (10);
             CREATE TABLE tr_b PARTITION OF tr FOR VALUES FROM (10) TO (20);
             INSERT INTO tr SELECT i, i % 20 FROM generate_series(1, 100) i;",
        )
        .await
        .unwrap();
    let run = |extra: &'static [&'static str]| {
        let mut args = vec![
            "run".to_string(),
            "--dsn".into(),
            db.conninfo.clone(),
            "--table".into(),
            "public.tr".into(),
            "--alter".into(),
            "ALTER COLUMN id TYPE bigint".into(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        async move {
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            hotswap_async(&refs).await
        }
    };
    // Another partitioning for a partitioned table: refused (the old partitions would keep
    // their names on the old tree, and writes naming them would go there).
    let out = run(&[
        "--partition-by",
        "HASH (id)",
        "--partition",
        "trh FOR VALUES WITH (MODULUS 1, REMAINDER 0)",
    ])
    .await;
    assert_exit(&out, 3);
    assert!(
        all_output(&out).contains("re-partitioning"),
        "{}",
        describe(&out)
    );
    // A view reading one partition, and a foreign key referencing one, would stay on the old
    // partition: refused, named (found by a fresh tester).
    client
        .batch_execute("CREATE VIEW tr_a_view AS SELECT id FROM tr_a")
        .await
        .unwrap();
    let out = run(&[]).await;
    assert_exit(&out, 3);
    assert!(all_output(&out).contains("tr_a_view"), "{}", describe(&out));
    client
        .batch_execute(
            "DROP VIEW tr_a_view;
             CREATE TABLE tr_ref (id int, day int, FOREIGN KEY (id, day) REFERENCES tr_a (id, day));",
        )
        .await
        .unwrap();
    let out = run(&[]).await;
    assert_exit(&out, 3);
    assert!(all_output(&out).contains("tr_ref"), "{}", describe(&out));
    client.batch_execute("DROP TABLE tr_ref").await.unwrap();
    // An index only on one partition is not carried over yet: refused, named.
    client
        .batch_execute("CREATE INDEX tr_b_only ON tr_b (id)")
        .await
        .unwrap();
    let out = run(&[]).await;
    assert_exit(&out, 3);
    assert!(all_output(&out).contains("tr_b_only"), "{}", describe(&out));
    let kind: String = client
        .query_one(
            "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'tr_a'::regclass AND attname = 'id'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(kind, "integer", "the refused runs changed the table");
    let left = leftovers(&client, &QualifiedName::new("public", "tr"), "hotswap").await;
    assert!(left.is_empty(), "left behind: {left:?}");
    for n in ["tr_new", "tr_a_new", "tr_b_new"] {
        assert!(!relation_exists(&client, &QualifiedName::new("public", n)).await);
    }
}

/// A partition attached while the run works would be lost by the swap (the new tree does not
/// have it): the swap sees the tree changed, rolls back and says so, and the table keeps it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_attached_during_the_run_stops_the_swap() {
    let db = TestDb::new("tree_attach_during").await;
    let client = db.client().await;
    client
        .batch_execute(
            "CREATE TABLE ta (id int, day int, v text, PRIMARY KEY (id, day)) PARTITION BY RANGE (day);
             CREATE TABLE ta_a PARTITION OF ta FOR VALUES FROM (0) TO (10);
             CREATE TABLE ta_b PARTITION OF ta FOR VALUES FROM (10) TO (20);
             INSERT INTO ta SELECT i, i % 20, 'v' FROM generate_series(1, 500) i;",
        )
        .await
        .unwrap();
    let (run, hold) = held_run(&db, "public.ta", "attach").await;
    client
        .batch_execute(
            "CREATE TABLE ta_c PARTITION OF ta FOR VALUES FROM (20) TO (30);
             INSERT INTO ta VALUES (1000, 25, 'in the new partition');",
        )
        .await
        .unwrap();
    std::fs::remove_file(&hold).unwrap();
    let out = run.await.unwrap();
    eprintln!("{}", describe(&out));
    assert_ne!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(
        all_output(&out).contains("changed while pg-hotswap was rewriting it"),
        "{}",
        describe(&out)
    );
    let n: i64 = client
        .query_one("SELECT count(*) FROM ta WHERE id = 1000", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1, "the row in the attached partition is gone");
    let out = hotswap_async(&["abort", "--dsn", &db.conninfo, "--table", "public.ta"]).await;
    assert_exit(&out, 0);
    let left = leftovers(&client, &QualifiedName::new("public", "ta"), "hotswap").await;
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// A run of `table` held before the swap's lock (`PGHOTSWAP_HOLD=before-swap-lock:<file>`),
/// returned once it waits there; removing the file lets it go on.
async fn held_run(
    db: &TestDb,
    table: &str,
    tag: &str,
) -> (
    tokio::task::JoinHandle<std::process::Output>,
    std::path::PathBuf,
) {
    let hold = std::env::temp_dir().join(format!("pg-hotswap-tree-{tag}-{}", std::process::id()));
    std::fs::write(&hold, "").unwrap();
    let env = format!("before-swap-lock:{}", hold.display());
    let (conninfo, table) = (db.conninfo.clone(), table.to_string());
    let run = tokio::spawn(async move {
        crate::harness::hotswap_env(
            &[
                "run",
                "--dsn",
                &conninfo,
                "--table",
                &table,
                "--alter",
                "ALTER COLUMN v TYPE varchar(20)",
            ],
            &[("PGHOTSWAP_HOLD", &env)],
        )
        .await
    });
    let held = std::path::PathBuf::from(format!("{}.held", hold.display()));
    let started = std::time::Instant::now();
    while !held.exists() {
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "the run never reached the swap"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (run, hold)
}

/// The capture triggers are on every partition; one disabled for a while on a partition (the
/// writes made meanwhile were not captured) stops the swap as it does on the table itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_capture_trigger_disabled_on_a_partition_stops_the_swap() {
    let db = TestDb::new("tree_trigger_disabled").await;
    let client = db.client().await;
    client
        .batch_execute(
            "CREATE TABLE td (id int, day int, v text, PRIMARY KEY (id, day)) PARTITION BY RANGE (day);
             CREATE TABLE td_a PARTITION OF td FOR VALUES FROM (0) TO (10);
             CREATE TABLE td_b PARTITION OF td FOR VALUES FROM (10) TO (20);
             INSERT INTO td SELECT i, i % 20, 'v' FROM generate_series(1, 500) i;",
        )
        .await
        .unwrap();
    let (run, hold) = held_run(&db, "public.td", "disabled").await;
    let trigger: String = client
        .query_one(
            "SELECT tgname::text FROM pg_trigger WHERE tgrelid = 'td_b'::regclass AND tgname LIKE 'hotswap_capture_%_u'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    client
        .batch_execute(&format!(
            "ALTER TABLE td_b DISABLE TRIGGER {trigger};
             UPDATE td_b SET v = 'not captured' WHERE id = 11;
             ALTER TABLE td_b ENABLE ALWAYS TRIGGER {trigger};"
        ))
        .await
        .unwrap();
    std::fs::remove_file(&hold).unwrap();
    let out = run.await.unwrap();
    eprintln!("{}", describe(&out));
    assert_ne!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(
        all_output(&out).contains("td_b"),
        "the refusal does not name the partition\n{}",
        describe(&out)
    );
    let v: String = client
        .query_one("SELECT v FROM td WHERE id = 11", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(v, "not captured");
    let out = hotswap_async(&["abort", "--dsn", &db.conninfo, "--table", "public.td"]).await;
    assert_exit(&out, 0);
}

/// Issue 15, one partition rewritten on its own: the capture is on the partition and on every
/// partitioned table above it (a statement through the parent fires only the parent's statement
/// triggers). A run that dies under the swap's lock, then `abort`, leaves no capture trigger on
/// any of them (the state's `objects` keeps one trigger row per schema and name: abort used to
/// leave the ancestors' behind), the partition attached and its rows as they were; a new run
/// then succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_run_aborted_leaves_no_trigger_on_its_ancestors() {
    let db = TestDb::new("one_part_abort").await;
    let client = db.client().await;
    client
        .batch_execute(
            "CREATE TABLE public.sales (id int NOT NULL, day int NOT NULL, region text NOT NULL,
                 amount numeric, PRIMARY KEY (id, day, region)) PARTITION BY RANGE (day);
             CREATE TABLE public.sales_q1 PARTITION OF public.sales FOR VALUES FROM (0) TO (90)
                 PARTITION BY LIST (region);
             CREATE TABLE public.sales_q1_north PARTITION OF public.sales_q1 FOR VALUES IN ('n');
             CREATE TABLE public.sales_q1_rest PARTITION OF public.sales_q1 DEFAULT;
             CREATE TABLE public.sales_other PARTITION OF public.sales DEFAULT;
             INSERT INTO public.sales SELECT i, i % 200, CASE WHEN i % 2 = 0 THEN 'n' ELSE 's' END,
                 i / 3.0 FROM generate_series(1, 4000) i;",
        )
        .await
        .unwrap();
    let digest = "SELECT count(*)::text || '/' || sum(hashtext(s::text))::text FROM public.sales s";
    let before: String = client.query_one(digest, &[]).await.unwrap().get(0);
    let run = [
        "run",
        "--dsn",
        &db.conninfo,
        "--table",
        "public.sales_q1_north",
    ];
    let out = crate::harness::hotswap_failpoint(&run, Some("swap-locked")).await;
    assert_ne!(out.status.code(), Some(0), "{}", describe(&out));
    let on: Vec<String> = client
        .query(
            "SELECT DISTINCT tgrelid::regclass::text FROM pg_trigger WHERE tgname LIKE 'hotswap%' ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        on,
        ["sales", "sales_q1", "sales_q1_north"],
        "the capture is on the partition and every ancestor"
    );
    let out = hotswap_async(&[
        "abort",
        "--dsn",
        &db.conninfo,
        "--table",
        "public.sales_q1_north",
    ])
    .await;
    assert_exit(&out, 0);
    let left: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'hotswap%'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 0, "abort left capture triggers behind");
    let table = QualifiedName::new("public", "sales_q1_north");
    let rest = leftovers(&client, &table, "hotswap").await;
    assert!(rest.is_empty(), "left behind: {rest:?}");
    let attached: bool = client
        .query_one(
            "SELECT relispartition FROM pg_class WHERE oid = 'public.sales_q1_north'::regclass",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(attached);
    let after: String = client.query_one(digest, &[]).await.unwrap().get(0);
    assert_eq!(before, after);
    let out = crate::harness::hotswap_failpoint(&run, None).await;
    assert_exit(&out, 0);
    let after: String = client.query_one(digest, &[]).await.unwrap().get(0);
    assert_eq!(before, after, "the rewrite changed the rows");
    assert!(relation_exists(&client, &QualifiedName::new("public", "sales_q1_north_old")).await);
}

/// Issue 15, `--revertible` for a rewritten partition tree: the revert replays every write made
/// since the swap (through the table and straight into partitions) into the old tree and swaps
/// the whole old tree back: the same relations (by oid) under their names again, with their
/// indexes' names and storage options, equal to the ledger, no writer error. `finish` then
/// drops the rewritten tree.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_tree_rewrite_reverts_with_every_write() {
    const ROWS: i64 = 20_000;
    let db = TestDb::new("tree_reverts").await;
    let client = db.client().await;
    let spec = TableSpec::simple("public", "trv");
    create_tables(&client, &spec, ROWS).await.unwrap();
    partition_workload_table(&client, "trv").await;
    let before: Vec<u32> = {
        let mut v = Vec::new();
        for t in ["trv", "trv_lo", "trv_hi", "trv_rest", "trv_hi_pkey"] {
            v.push(oid_of(&client, t).await);
        }
        v
    };
    let load = crate::harness::start_load(&db.conninfo, &spec, ROWS, 2, 200);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let out = hotswap_async(&[
        "run",
        "--dsn",
        &db.conninfo,
        "--table",
        "public.trv",
        "--alter",
        "ALTER COLUMN val TYPE bigint",
        "--chunk-rows",
        "800",
        "--revertible",
    ])
    .await;
    eprintln!("{}", describe(&out));
    assert_exit(&out, 0);
    assert_eq!(column_type(&client, "trv_hi", "val").await, "bigint");
    assert_ne!(oid_of(&client, "trv_hi").await, before[2], "not rewritten");
    write_into_partition(&client, "trv_lo", 17).await;
    write_into_partition(&client, "trv_hi", 15_003).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let out = hotswap_async(&["revert", "--dsn", &db.conninfo, "--table", "public.trv"]).await;
    eprintln!("{}", describe(&out));
    assert_exit(&out, 0);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let report = load.stop().await;
    assert!(
        report.errors.is_empty(),
        "writer errors {:#?}",
        report.errors
    );
    let mut after = Vec::new();
    for t in ["trv", "trv_lo", "trv_hi", "trv_rest", "trv_hi_pkey"] {
        after.push(oid_of(&client, t).await);
    }
    assert_eq!(before, after, "the old tree is not back under its names");
    assert_eq!(relkind(&client, "public.trv").await, "p");
    assert_eq!(column_type(&client, "trv_hi", "val").await, "integer");
    let options: Option<Vec<String>> = client
        .query_one(
            "SELECT reloptions FROM pg_class WHERE oid = 'trv_hi'::regclass",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(options, Some(vec!["fillfactor=90".to_string()]));
    assert_matches_ledger(&client, &spec).await;
    // Writes after the revert reach the old tree and nothing else.
    write_into_partition(&client, "trv_hi", 15_004).await;
    assert_matches_ledger(&client, &spec).await;
    let out = hotswap_async(&["finish", "--dsn", &db.conninfo, "--table", "public.trv"]).await;
    eprintln!("{}", describe(&out));
    assert_exit(&out, 0);
    for gone in [
        "trv_rewritten",
        "trv_lo_rewritten",
        "trv_hi_rewritten",
        "trv_rest_rewritten",
    ] {
        assert!(
            !relation_exists(&client, &QualifiedName::new("public", gone)).await,
            "{gone} is left after finish"
        );
    }
    let left = leftovers(&client, &spec.table, "hotswap").await;
    assert!(left.is_empty(), "left behind: {left:?}");
    let triggers = capture_triggers(&client).await;
    assert_eq!(triggers, 0, "capture triggers left behind");
}

/// Issue 15, `--revertible` for one partition rewritten on its own: after the swap the old
/// partition is a detached table kept in sync; `revert` gives it its bound back as a validated
/// CHECK (so ATTACH does not scan under the lock), replays the writes made since (through the
/// parent and straight into the partition) and attaches it again in place of the new one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_rewritten_on_its_own_reverts_with_every_write() {
    const ROWS: i64 = 20_000;
    let db = TestDb::new("one_part_reverts").await;
    let client = db.client().await;
    let spec = TableSpec::simple("public", "opr");
    create_tables(&client, &spec, ROWS).await.unwrap();
    partition_workload_table(&client, "opr").await;
    let original = oid_of(&client, "opr_hi").await;
    let load = crate::harness::start_load(&db.conninfo, &spec, ROWS, 2, 200);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let out = hotswap_async(&[
        "run",
        "--dsn",
        &db.conninfo,
        "--table",
        "public.opr_hi",
        "--alter",
        "SET (fillfactor = 70)",
        "--chunk-rows",
        "800",
        "--revertible",
    ])
    .await;
    eprintln!("{}", describe(&out));
    assert_exit(&out, 0);
    assert_ne!(oid_of(&client, "opr_hi").await, original, "not rewritten");
    write_into_partition(&client, "opr_hi", 15_003).await;
    write_into_partition(&client, "opr_lo", 17).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let out = hotswap_async(&["revert", "--dsn", &db.conninfo, "--table", "public.opr_hi"]).await;
    eprintln!("{}", describe(&out));
    assert_exit(&out, 0);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let report = load.stop().await;
    assert!(
        report.errors.is_empty(),
        "writer errors {:#?}",
        report.errors
    );
    assert_eq!(
        oid_of(&client, "opr_hi").await,
        original,
        "the old partition is not back"
    );
    let row = client
        .query_one(
            "SELECT c.relispartition, pg_get_expr(c.relpartbound, c.oid), c.reloptions, \
                    (SELECT count(*) FROM pg_constraint WHERE conrelid = c.oid AND contype = 'c') \
               FROM pg_class c WHERE c.oid = 'opr_hi'::regclass",
            &[],
        )
        .await
        .unwrap();
    assert!(row.get::<_, bool>(0), "the old partition is not attached");
    assert_eq!(
        row.get::<_, String>(1),
        "FOR VALUES FROM (10000) TO (20001)"
    );
    assert_eq!(
        row.get::<_, Option<Vec<String>>>(2),
        Some(vec!["fillfactor=90".to_string()])
    );
    assert_eq!(
        row.get::<_, i64>(3),
        0,
        "the bound's check constraint is left"
    );
    assert_matches_ledger(&client, &spec).await;
    let out = hotswap_async(&["finish", "--dsn", &db.conninfo, "--table", "public.opr_hi"]).await;
    eprintln!("{}", describe(&out));
    assert_exit(&out, 0);
    assert!(!relation_exists(&client, &QualifiedName::new("public", "opr_hi_rewritten")).await);
    let left = leftovers(&client, &spec.table, "hotswap").await;
    assert!(left.is_empty(), "left behind: {left:?}");
    let triggers = capture_triggers(&client).await;
    assert_eq!(triggers, 0, "capture triggers left behind");
}

/// Neighbours of the two reverts above: a tree with a sub-partitioned partition and a default
/// partition at each level, reverted with a leaf attached since the swap refused (its rows
/// have no reverse capture) and accepted once it is detached again; then a leaf two levels
/// down, and the default partition, each rewritten on its own and reverted. The rows are
/// compared by digest with what they were (no writes: the reverts' swaps and ATTACH are what
/// these check).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sub_partitions_and_default_partitions_revert() {
    let db = TestDb::new("tree_reverts_deep").await;
    let client = db.client().await;
    client
        .batch_execute(
            "CREATE TABLE public.sales (id int NOT NULL, day int NOT NULL, region text NOT NULL,
                 amount numeric, PRIMARY KEY (id, day, region)) PARTITION BY RANGE (day);
             CREATE TABLE public.sales_q1 PARTITION OF public.sales FOR VALUES FROM (0) TO (90)
                 PARTITION BY LIST (region);
             CREATE TABLE public.sales_q1_north PARTITION OF public.sales_q1 FOR VALUES IN ('n');
             CREATE TABLE public.sales_q1_rest PARTITION OF public.sales_q1 DEFAULT;
             CREATE TABLE public.sales_other PARTITION OF public.sales DEFAULT;
             INSERT INTO public.sales SELECT i, i % 200, CASE WHEN i % 2 = 0 THEN 'n' ELSE 's' END,
                 i / 3.0 FROM generate_series(1, 4000) i;",
        )
        .await
        .unwrap();
    let digest = "SELECT count(*)::text || '/' || sum(hashtext(s::text))::text FROM public.sales s";
    let before: String = client.query_one(digest, &[]).await.unwrap().get(0);
    let names = [
        "sales",
        "sales_q1",
        "sales_q1_north",
        "sales_q1_rest",
        "sales_other",
    ];
    let mut oids = Vec::new();
    for n in names {
        oids.push(oid_of(&client, n).await);
    }
    let cmd = |verb, table, extra| command(&db, verb, table, extra);
    let out = cmd(
        "run",
        "public.sales",
        &[
            "--alter",
            "ALTER COLUMN amount TYPE numeric(12,2)",
            "--revertible",
        ],
    )
    .await;
    assert_exit(&out, 0);
    assert_eq!(
        column_type(&client, "sales_q1_north", "amount").await,
        "numeric(12,2)"
    );
    // A leaf attached since the swap has no reverse capture: refused, named the reason.
    client
        .batch_execute(
            "CREATE TABLE public.sales_late (LIKE public.sales);
             ALTER TABLE public.sales ATTACH PARTITION public.sales_late FOR VALUES FROM (500) TO (600);",
        )
        .await
        .unwrap();
    let out = cmd("revert", "public.sales", &[]).await;
    assert_exit(&out, 3);
    assert!(
        all_output(&out).contains("partitions changed since the swap"),
        "{}",
        describe(&out)
    );
    client
        .batch_execute("ALTER TABLE public.sales DETACH PARTITION public.sales_late; DROP TABLE public.sales_late")
        .await
        .unwrap();
    let out = cmd("revert", "public.sales", &[]).await;
    assert_exit(&out, 0);
    let mut now = Vec::new();
    for n in names {
        now.push(oid_of(&client, n).await);
    }
    assert_eq!(oids, now, "the old tree is not back under its names");
    assert_eq!(
        column_type(&client, "sales_q1_north", "amount").await,
        "numeric"
    );
    let after: String = client.query_one(digest, &[]).await.unwrap().get(0);
    assert_eq!(before, after);
    let out = cmd("finish", "public.sales", &[]).await;
    assert_exit(&out, 0);
    // One leaf two levels down, then the default partition, each on its own.
    for leaf in ["public.sales_q1_north", "public.sales_other"] {
        let original = oid_of(&client, leaf).await;
        let out = cmd("run", leaf, &["--revertible"]).await;
        assert_exit(&out, 0);
        assert_ne!(
            oid_of(&client, leaf).await,
            original,
            "{leaf} not rewritten"
        );
        client
            .batch_execute(
                "UPDATE public.sales SET amount = amount + 1 WHERE id % 7 = 0;
                 INSERT INTO public.sales VALUES (90001, 10, 'n', 1), (90002, 300, 's', 2);
                 DELETE FROM public.sales WHERE id IN (90001, 90002);
                 UPDATE public.sales SET amount = amount - 1 WHERE id % 7 = 0;",
            )
            .await
            .unwrap();
        let out = cmd("revert", leaf, &[]).await;
        assert_exit(&out, 0);
        assert_eq!(oid_of(&client, leaf).await, original, "{leaf} is not back");
        let attached: bool = client
            .query_one(
                "SELECT relispartition FROM pg_class WHERE oid = $1::text::regclass",
                &[&leaf],
            )
            .await
            .unwrap()
            .get(0);
        assert!(attached, "{leaf} is not attached");
        let after: String = client.query_one(digest, &[]).await.unwrap().get(0);
        assert_eq!(before, after, "{leaf}: the rows changed");
        let out = cmd("finish", leaf, &[]).await;
        assert_exit(&out, 0);
    }
    let left: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_class WHERE relname ~ '_(old|rewritten|new)$' \
                 AND relnamespace = 'public'::regnamespace",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 0, "relations left behind");
}

/// `resume` (and running the same command again) after a crash, for a rewrite of a partition
/// tree and for a conversion into a partitioned table, under writes: at a copy chunk, during
/// replay, under the swap's lock and right after the swap's commit. Each finishes equal to the
/// ledger with no writer error and nothing left behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tree_rewrites_and_conversions_resume_after_a_crash() {
    const ROWS: i64 = 20_000;
    let db = TestDb::new("tree_resume").await;
    let client = db.client().await;
    let points = ["copy-chunk@2", "replay-batch", "swap-locked", "swapped"];
    for (i, point) in points.iter().enumerate() {
        for convert in [false, true] {
            let name = format!("rs{i}{}", if convert { "c" } else { "t" });
            let spec = TableSpec::simple("public", &name);
            create_tables(&client, &spec, ROWS).await.unwrap();
            if !convert {
                partition_workload_table(&client, &name).await;
            }
            let table = format!("public.{name}");
            let lo = format!("{name}_a FOR VALUES FROM (MINVALUE) TO (10000)");
            let rest = format!("{name}_b DEFAULT");
            let mut args = vec![
                "run",
                "--dsn",
                &db.conninfo,
                "--table",
                &table,
                "--alter",
                "ALTER COLUMN val TYPE bigint",
                "--chunk-rows",
                "2000",
                "--replay-batch",
                "50",
            ];
            if convert {
                args.extend([
                    "--partition-by",
                    "RANGE (id)",
                    "--partition",
                    &lo,
                    "--partition",
                    &rest,
                ]);
            }
            let load = crate::harness::start_load(&db.conninfo, &spec, ROWS, 2, 200);
            tokio::time::sleep(Duration::from_millis(200)).await;
            let out = crate::harness::hotswap_failpoint(&args, Some(point)).await;
            assert_eq!(
                out.status.code(),
                Some(pg_hotswap::failpoint::EXIT),
                "{name}: failpoint {point} was not reached:\n{}",
                describe(&out)
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
            let resume = ["resume", "--dsn", &db.conninfo, "--table", &table];
            let again: &[&str] = if i % 2 == 0 { &resume } else { &args };
            let out = crate::harness::hotswap_failpoint(again, None).await;
            assert_exit(&out, 0);
            tokio::time::sleep(Duration::from_millis(200)).await;
            let report = load.stop().await;
            assert!(
                report.errors.is_empty(),
                "{name} after {point}: writer errors {:#?}",
                report.errors
            );
            assert_eq!(relkind(&client, &table).await, "p", "{name} after {point}");
            assert_eq!(
                column_type(&client, &table, "val").await,
                "bigint",
                "{name} after {point}"
            );
            assert_matches_ledger(&client, &spec).await;
            let left = leftovers(&client, &spec.table, "hotswap").await;
            assert!(left.is_empty(), "{name} after {point} left {left:?}");
            let triggers = capture_triggers(&client).await;
            assert_eq!(triggers, 0, "{name} after {point}: capture triggers left");
        }
    }
}

/// What a revert cannot bring back is refused before anything changes, with a true message (a
/// fresh tester's findings): a TRUNCATE since the swap (it got the forward run's message, which
/// advised `abort`), and a partition rewritten on its own that was detached since (the swap
/// failed midway on PostgreSQL's error). `finish` is the way out of the first; attaching it
/// back, of the second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revert_refuses_a_truncate_and_a_detached_partition() {
    let db = TestDb::new("revert_refusals").await;
    let client = db.client().await;
    client
        .batch_execute(
            "CREATE TABLE pt (id int PRIMARY KEY, v text);
             INSERT INTO pt SELECT g, 'v' FROM generate_series(1, 1000) g;
             CREATE TABLE m (id int, day int, PRIMARY KEY (id, day)) PARTITION BY RANGE (day);
             CREATE TABLE m1 PARTITION OF m FOR VALUES FROM (0) TO (10);
             CREATE TABLE m2 PARTITION OF m FOR VALUES FROM (10) TO (20);
             INSERT INTO m SELECT g, g % 20 FROM generate_series(1, 1000) g;",
        )
        .await
        .unwrap();
    let cmd = |verb, table, extra| command(&db, verb, table, extra);
    let out = cmd(
        "run",
        "public.pt",
        &["--alter", "ALTER COLUMN v TYPE varchar(10)", "--revertible"],
    )
    .await;
    assert_exit(&out, 0);
    client
        .batch_execute("TRUNCATE pt; INSERT INTO pt VALUES (1, 'a')")
        .await
        .unwrap();
    let out = cmd("revert", "public.pt", &[]).await;
    assert_exit(&out, 3);
    let text = all_output(&out);
    assert!(text.contains("truncated since the swap"), "{text}");
    assert!(!text.contains("abort"), "{text}");
    let out = cmd("finish", "public.pt", &[]).await;
    assert_exit(&out, 0);
    let n: i64 = client
        .query_one("SELECT count(*) FROM pt", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1);

    let out = cmd("run", "public.m2", &["--revertible"]).await;
    assert_exit(&out, 0);
    client
        .batch_execute("ALTER TABLE m DETACH PARTITION m2")
        .await
        .unwrap();
    let out = cmd("revert", "public.m2", &[]).await;
    assert_exit(&out, 3);
    let text = all_output(&out);
    assert!(text.contains("no longer a partition of public.m"), "{text}");
    client
        .batch_execute("ALTER TABLE m ATTACH PARTITION m2 FOR VALUES FROM (10) TO (20)")
        .await
        .unwrap();
    let out = cmd("revert", "public.m2", &[]).await;
    assert_exit(&out, 0);
    let out = cmd("finish", "public.m2", &[]).await;
    assert_exit(&out, 0);
    let n: i64 = client
        .query_one("SELECT count(*) FROM m", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1000);
}

/// Found by a fresh tester: a table created `WITH (autovacuum_enabled = false)` could not be
/// converted (`parameter "autovacuum_enabled" specified more than once`, and advice about rows
/// that do not fit). The partitions now get the table's options, autovacuum off among them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_with_autovacuum_off_converts_with_its_options() {
    let db = TestDb::new("convert_autovacuum_off").await;
    let client = db.client().await;
    client
        .batch_execute(
            "CREATE TABLE acct (id int, k int NOT NULL, v text, PRIMARY KEY (id, k))
                 WITH (fillfactor = 50, autovacuum_enabled = false);
             INSERT INTO acct SELECT i, i % 7, 'v' || i FROM generate_series(1, 3000) i;",
        )
        .await
        .unwrap();
    let out = hotswap_async(&[
        "run",
        "--dsn",
        &db.conninfo,
        "--table",
        "public.acct",
        "--partition-by",
        "HASH (k)",
        "--partition",
        "acct_h0 FOR VALUES WITH (MODULUS 2, REMAINDER 0)",
        "--partition",
        "acct_h1 FOR VALUES WITH (MODULUS 2, REMAINDER 1)",
    ])
    .await;
    assert_exit(&out, 0);
    for part in ["acct_h0", "acct_h1"] {
        let opts: Vec<String> = client
            .query_one(
                "SELECT COALESCE(reloptions, '{}')::text[] FROM pg_class WHERE oid = $1::text::regclass",
                &[&format!("public.{part}")],
            )
            .await
            .unwrap()
            .get(0);
        assert!(
            opts.contains(&"fillfactor=50".to_string())
                && opts.contains(&"autovacuum_enabled=false".to_string()),
            "{part}: {opts:?}\n{}",
            describe(&out)
        );
    }
}

/// Found by a fresh tester: a table referenced by a partitioned table's foreign key could never
/// be swapped ("constraint orders_t_id_fkey of relation orders_2025 does not exist"): the swap
/// dropped the partition's copy of the key after dropping the parent's, which takes the copies
/// with it. Now only the parent's key is moved, and PostgreSQL gives the partitions theirs. Before
/// PostgreSQL 18 the key cannot be added NOT VALID on a partitioned table, so the run is refused
/// before anything is created, saying what to do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_referenced_by_a_partitioned_table_is_swapped_or_refused_before_anything() {
    let db = TestDb::new("referenced_by_tree").await;
    let client = db.client().await;
    client
        .batch_execute(
            "CREATE TABLE t (id int PRIMARY KEY, v int NOT NULL DEFAULT 0);
             CREATE TABLE orders (id int, t_id int NOT NULL REFERENCES t (id), at date NOT NULL)
                 PARTITION BY RANGE (at);
             CREATE TABLE orders_2025 PARTITION OF orders FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
             CREATE TABLE orders_2026 PARTITION OF orders FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
             INSERT INTO t SELECT generate_series(1, 500);
             INSERT INTO orders SELECT i, i, date '2025-01-01' + i FROM generate_series(1, 500) i;",
        )
        .await
        .expect("creating the tables");
    let out = command(
        &db,
        "run",
        "public.t",
        &["--alter", "ALTER COLUMN v TYPE bigint"],
    )
    .await;
    let version: i32 = client
        .query_one("SELECT current_setting('server_version_num')::int4", &[])
        .await
        .expect("reading the server's version")
        .get(0);
    if version < 180_000 {
        assert_exit(&out, 3);
        assert!(
            all_output(&out).contains("PostgreSQL before 18 cannot add a NOT VALID foreign key"),
            "{}",
            describe(&out)
        );
        let table = QualifiedName::new("public", "t");
        assert!(leftovers(&client, &table, "hotswap").await.is_empty());
        assert_eq!(column_type(&client, "public.t", "v").await, "integer");
        return;
    }
    assert_exit(&out, 0);
    assert_eq!(column_type(&client, "public.t", "v").await, "bigint");
    // Every level's key points at the new table, validated, and still refuses an orphan.
    let keys: Vec<(String, bool)> = client
        .query(
            "SELECT conrelid::regclass::text, convalidated FROM pg_constraint
              WHERE contype = 'f' AND confrelid = 'public.t'::regclass ORDER BY 1",
            &[],
        )
        .await
        .expect("reading the foreign keys")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        keys,
        vec![
            ("orders".to_string(), true),
            ("orders_2025".to_string(), true),
            ("orders_2026".to_string(), true),
        ],
        "{}",
        describe(&out)
    );
    let orphan = client
        .batch_execute("INSERT INTO orders VALUES (9999, 9999, '2026-02-01')")
        .await;
    assert!(orphan.is_err(), "an orphan order was accepted");
}
