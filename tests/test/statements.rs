//! Issue 17, "One source of SQL per phase": `plan` lists exactly the statements `run` executes.
//!
//! The DDL of the shadow, the capture triggers, the build, the swap, what follows the swap and
//! the finish is built once, as values, by the phases' own functions. `plan` marks those entries
//! `exact`; a debug build of the tool appends every such statement it executes to the file named
//! by `PGHOTSWAP_RECORD_SQL` (src/rewrite/step.rs). The two sets are compared, both ways, on a table with
//! something of everything the swap carries over: a quoted schema and name, an identity key, a
//! unique index built at the consistency point, a commented index, a NOT VALID check, foreign
//! keys both ways, a view, a trigger, extended statistics, privileges and comments.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::harness::{assert_exit, describe, hotswap_async, hotswap_env, TestDb};

/// `hotswap_1_i0` (the run's number) and `hotswap_0_i0` (plan's trial) read the same.
fn normalize(sql: &str) -> String {
    let mut out = String::new();
    let b = sql.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let rest = &sql[i..];
        let prefix = [
            "hotswap_rcapture_",
            "hotswap_rtruncate_",
            "hotswap_capture_",
            "hotswap_truncate_",
            "capture_truncate_",
            "hotswap_",
            "capture_",
            "log_",
        ]
        .iter()
        .find(|p| {
            rest.starts_with(*p) && rest[p.len()..].starts_with(|c: char| c.is_ascii_digit())
        });
        match prefix {
            Some(p) => {
                out.push_str(p);
                out.push('N');
                i += p.len();
                while i < b.len() && b[i].is_ascii_digit() {
                    i += 1;
                }
            }
            None => {
                let c = rest.chars().next().unwrap_or_default();
                out.push(c);
                i += c.len_utf8();
            }
        }
    }
    out
}

/// What `plan` listed and what `run` executed, for the same table and options.
struct Compared {
    /// `plan`'s statements marked exact, normalized.
    listed: BTreeSet<String>,
    /// `plan`'s statements not marked exact (what is decided at run time, and descriptions),
    /// normalized.
    conditional: BTreeSet<String>,
    /// The statements the run recorded, normalized.
    executed: BTreeSet<String>,
    /// `plan`'s JSON.
    plan: Value,
}

impl Compared {
    /// Plan's entries (all of them, exact or not) whose SQL contains `needle`.
    fn plan_entries(&self, needle: &str) -> Vec<Value> {
        self.plan["phases"]
            .as_array()
            .expect("phases")
            .iter()
            .flat_map(|p| p["statements"].as_array().cloned().unwrap_or_default())
            .filter(|s| s["sql"].as_str().is_some_and(|q| q.contains(needle)))
            .collect()
    }

    /// The run executed at least one statement containing each needle.
    fn assert_ran(&self, needles: &[&str]) {
        for needle in needles {
            assert!(
                self.executed.iter().any(|s| s.contains(needle)),
                "the run executed no {needle:?} statement: {:#?}",
                self.executed
            );
        }
    }

    /// The exact entries of `plan` are statements of the run, and every statement of the run is
    /// an exact entry, or one `plan` lists as decided at run time (not exact).
    fn assert_same(&self) {
        let only_listed: Vec<&String> = self.listed.difference(&self.executed).collect();
        let only_run: Vec<&String> = self
            .executed
            .difference(&self.listed)
            .filter(|s| !self.conditional.contains(*s))
            .collect();
        assert!(
            only_listed.is_empty() && only_run.is_empty(),
            "plan and run differ\n--- listed by plan, not executed by run ---\n{only_listed:#?}\n--- executed by run, not listed by plan ---\n{only_run:#?}"
        );
    }
}

/// Runs `plan --output json` and then `run` (recording its statements) on `table` with `alter`
/// and the `extra` options, both with the same arguments.
async fn plan_and_run(
    db: &TestDb,
    name: &str,
    table: &str,
    alter: &str,
    extra: &[&str],
) -> Compared {
    let mut common = vec![
        "--dsn",
        db.conninfo.as_str(),
        "--table",
        table,
        "--alter",
        alter,
        "--chunk-rows",
        "500",
        // The rewrite's statements are compared here; an ALTER that needs no rewrite would
        // otherwise be applied in place (issue 16, tests/test/fast_path.rs).
        "--force-rewrite",
    ];
    common.extend_from_slice(extra);

    let mut args = vec!["plan", "--output", "json", "--observe", "100ms"];
    args.extend_from_slice(&common);
    let out = hotswap_async(&args).await;
    assert_exit(&out, 0);
    let plan: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("plan's JSON does not parse: {e}\n{}", describe(&out)));
    let entries: Vec<Value> = plan["phases"]
        .as_array()
        .expect("phases")
        .iter()
        .flat_map(|p| p["statements"].as_array().cloned().unwrap_or_default())
        .collect();
    let (exact, other): (Vec<&Value>, Vec<&Value>) =
        entries.iter().partition(|s| s["exact"] == true);
    let sql = |v: Vec<&Value>| -> BTreeSet<String> {
        v.iter()
            .map(|s| normalize(s["sql"].as_str().expect("sql")))
            .collect()
    };
    let (listed, conditional) = (sql(exact), sql(other));

    let path = std::env::temp_dir()
        .join(format!(
            "pg-hotswap-statements-{}-{name}.jsonl",
            std::process::id()
        ))
        .to_str()
        .expect("a UTF-8 path")
        .to_string();
    let _ = std::fs::remove_file(&path);
    let mut args = vec!["run"];
    args.extend_from_slice(&common);
    let out = hotswap_env(&args, &[("PGHOTSWAP_RECORD_SQL", &path)]).await;
    assert_exit(&out, 0);
    let executed: BTreeSet<String> = std::fs::read_to_string(&path)
        .expect("reading the recorded statements")
        .lines()
        .map(|l| normalize(&serde_json::from_str::<String>(l).expect("a JSON string")))
        .collect();
    let _ = std::fs::remove_file(&path);
    Compared {
        listed,
        conditional,
        executed,
        plan,
    }
}

async fn setup(db: &TestDb, sql: &str) {
    db.client()
        .await
        .batch_execute(sql)
        .await
        .expect("creating the tables");
}

#[tokio::test]
async fn plan_lists_exactly_the_statements_run_executes() {
    let db = TestDb::new("plan_lists_run").await;
    setup(
        &db,
        r#"CREATE SCHEMA "App";
               CREATE TABLE "App".parent (id int PRIMARY KEY);
               INSERT INTO "App".parent SELECT g FROM generate_series(1, 10) g;
               CREATE TABLE "App"."Weird ""Name"" tbl" (
                   id int GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
                   code text NOT NULL,
                   parent_id int REFERENCES "App".parent (id),
                   qty int DEFAULT 1,
                   CONSTRAINT qty_positive CHECK (qty > 0));
               ALTER TABLE "App"."Weird ""Name"" tbl" ADD CONSTRAINT code_short CHECK (length(code) < 40) NOT VALID;
               CREATE UNIQUE INDEX weird_code_key ON "App"."Weird ""Name"" tbl" (code);
               CREATE INDEX weird_parent_idx ON "App"."Weird ""Name"" tbl" (parent_id);
               COMMENT ON INDEX "App".weird_parent_idx IS 'by parent';
               COMMENT ON TABLE "App"."Weird ""Name"" tbl" IS 'the table';
               COMMENT ON CONSTRAINT qty_positive ON "App"."Weird ""Name"" tbl" IS 'no zero';
               INSERT INTO "App"."Weird ""Name"" tbl" (code, parent_id, qty)
                   SELECT 'c' || g, 1 + g % 10, 1 + g % 5 FROM generate_series(1, 3000) g;
               CREATE TABLE "App".child (id int PRIMARY KEY, w int REFERENCES "App"."Weird ""Name"" tbl" (id));
               INSERT INTO "App".child VALUES (1, 1), (2, 2);
               CREATE VIEW "App".weird_view AS SELECT id, code FROM "App"."Weird ""Name"" tbl";
               CREATE FUNCTION "App".touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
               CREATE TRIGGER weird_touch BEFORE UPDATE ON "App"."Weird ""Name"" tbl" FOR EACH ROW EXECUTE FUNCTION "App".touch();
               CREATE STATISTICS "App".weird_stats (dependencies) ON code, qty FROM "App"."Weird ""Name"" tbl";
               GRANT SELECT ON "App"."Weird ""Name"" tbl" TO PUBLIC;
               ANALYZE "App"."Weird ""Name"" tbl";"#,
    )
    .await;
    let c = plan_and_run(
        &db,
        "basic",
        r#""App"."Weird ""Name"" tbl""#,
        "ALTER COLUMN qty TYPE bigint, ADD COLUMN flags int NOT NULL DEFAULT 0",
        &["--drop-old"],
    )
    .await;
    // Enough of each phase to mean something: the swap's renames, the build, the finish.
    c.assert_ran(&[
        "RENAME TO",
        "CREATE UNIQUE INDEX",
        "CREATE TRIGGER",
        "DROP TABLE IF EXISTS",
        "VALIDATE CONSTRAINT",
        "COMMENT ON CONSTRAINT",
    ]);
    c.assert_same();
}

/// `--revertible`: the reverse capture on the new table, the old table's triggers, policies,
/// rules and statistics dropped; row level security (forced) with policies; no `--drop-old`.
#[tokio::test]
async fn revertible_with_row_level_security_rules_and_statistics() {
    let db = TestDb::new("plan_lists_revertible").await;
    setup(
        &db,
        r#"CREATE TABLE acct (id bigint PRIMARY KEY, owner text NOT NULL, amount int NOT NULL);
           INSERT INTO acct SELECT g, 'u' || (g % 7), g FROM generate_series(1, 2000) g;
           ALTER TABLE acct ENABLE ROW LEVEL SECURITY;
           ALTER TABLE acct FORCE ROW LEVEL SECURITY;
           CREATE POLICY acct_own ON acct USING (owner = current_user);
           CREATE POLICY acct_all ON acct AS PERMISSIVE FOR SELECT TO PUBLIC USING (true);
           CREATE TABLE acct_audit (id bigint, at timestamptz DEFAULT now());
           CREATE RULE acct_log AS ON DELETE TO acct DO ALSO INSERT INTO acct_audit (id) VALUES (OLD.id);
           CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
           CREATE TRIGGER acct_touch BEFORE UPDATE ON acct FOR EACH ROW EXECUTE FUNCTION touch();
           CREATE STATISTICS acct_stats (ndistinct) ON owner, amount FROM acct;
           COMMENT ON STATISTICS acct_stats IS 'owner/amount';
           ANALYZE acct;"#,
    )
    .await;
    let c = plan_and_run(
        &db,
        "revertible",
        "acct",
        "ALTER COLUMN amount TYPE bigint",
        &["--revertible"],
    )
    .await;
    c.assert_ran(&[
        "DROP POLICY",
        "DROP TRIGGER",
        "DROP RULE",
        "DROP STATISTICS",
        "FORCE ROW LEVEL SECURITY",
        "CREATE POLICY",
        // The change logs, the run's and the reverse one.
        "CREATE TABLE \"hotswap\".\"log_N\"",
        "CREATE TABLE \"hotswap\".\"rlog_N\"",
    ]);
    c.assert_same();
}

/// A view over a column whose type changes: PostgreSQL refuses `CREATE OR REPLACE VIEW`, and the
/// swap drops and creates the view again; a view over it, grants and a comment follow.
#[tokio::test]
async fn a_view_over_a_column_whose_type_changes() {
    let db = TestDb::new("plan_lists_view_type").await;
    setup(
        &db,
        r#"CREATE TABLE item (id int PRIMARY KEY, price int NOT NULL, note text);
           INSERT INTO item SELECT g, g, 'n' FROM generate_series(1, 1500) g;
           CREATE VIEW item_price AS SELECT id, price FROM item;
           CREATE VIEW item_cheap AS SELECT id FROM item_price WHERE price < 10;
           GRANT SELECT ON item_price TO PUBLIC;
           COMMENT ON VIEW item_price IS 'prices';"#,
    )
    .await;
    let c = plan_and_run(
        &db,
        "viewtype",
        "item",
        "ALTER COLUMN price TYPE bigint",
        &["--drop-old"],
    )
    .await;
    c.assert_ran(&["DROP VIEW", "CREATE VIEW"]);
    // Whether PostgreSQL replaces the views in place is known only in the swap: plan lists
    // both ways, neither as exact.
    for needle in ["CREATE OR REPLACE VIEW", "DROP VIEW", "CREATE VIEW"] {
        let entries = c.plan_entries(needle);
        assert!(
            !entries.is_empty()
                && entries
                    .iter()
                    .all(|e| e["exact"] == false && e["note"].is_string()),
            "plan should list {needle:?} as decided at run time: {entries:#?}"
        );
    }
    c.assert_same();
}

/// A view over a column whose type does not change: replaced in place.
#[tokio::test]
async fn a_view_replaced_in_place() {
    let db = TestDb::new("plan_lists_view_same").await;
    setup(
        &db,
        r#"CREATE TABLE item (id int PRIMARY KEY, price int NOT NULL, note text);
           INSERT INTO item SELECT g, g, 'n' FROM generate_series(1, 1500) g;
           CREATE VIEW item_price AS SELECT id, price FROM item;"#,
    )
    .await;
    let c = plan_and_run(
        &db,
        "viewsame",
        "item",
        "ALTER COLUMN note TYPE varchar(20)",
        &[],
    )
    .await;
    c.assert_ran(&["CREATE OR REPLACE VIEW"]);
    // No column changes type: the replacement is certain, and listed as exact.
    assert!(c.plan_entries("DROP VIEW").is_empty());
    c.assert_same();
}

/// A materialized view (with an index and a comment) over the table: dropped and created again.
#[tokio::test]
async fn a_materialized_view_over_the_table() {
    let db = TestDb::new("plan_lists_matview").await;
    setup(
        &db,
        r#"CREATE TABLE item (id int PRIMARY KEY, price int NOT NULL);
           INSERT INTO item SELECT g, g FROM generate_series(1, 1500) g;
           CREATE MATERIALIZED VIEW item_mv AS SELECT id, price FROM item;
           CREATE UNIQUE INDEX item_mv_id ON item_mv (id);
           COMMENT ON MATERIALIZED VIEW item_mv IS 'snapshot';
           CREATE VIEW item_v AS SELECT id FROM item;"#,
    )
    .await;
    let c = plan_and_run(
        &db,
        "matview",
        "item",
        "ADD COLUMN extra int",
        &["--drop-old"],
    )
    .await;
    c.assert_ran(&["DROP MATERIALIZED VIEW", "CREATE MATERIALIZED VIEW"]);
    c.assert_same();
}

/// Serial and identity sequences with grants and comments; `--shadow-name` and `--old-name`.
#[tokio::test]
async fn sequences_with_grants_and_chosen_names() {
    let db = TestDb::new("plan_lists_sequences").await;
    setup(
        &db,
        r#"CREATE TABLE ticket (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, n serial, title text);
           INSERT INTO ticket (title) SELECT 't' || g FROM generate_series(1, 1200) g;
           GRANT USAGE, SELECT ON SEQUENCE ticket_id_seq TO PUBLIC;
           GRANT USAGE ON SEQUENCE ticket_n_seq TO PUBLIC;
           COMMENT ON SEQUENCE ticket_id_seq IS 'ids';
           COMMENT ON SEQUENCE ticket_n_seq IS 'numbers';
           COMMENT ON COLUMN ticket.title IS 'what';
           GRANT INSERT (title) ON ticket TO PUBLIC;"#,
    )
    .await;
    let c = plan_and_run(
        &db,
        "sequences",
        "ticket",
        "ALTER COLUMN title SET NOT NULL",
        &[
            "--shadow-name",
            "ticket_next",
            "--old-name",
            "ticket_before",
            "--drop-old",
        ],
    )
    .await;
    c.assert_ran(&["ticket_next", "ticket_before", "OWNED BY", "setval"]);
    c.assert_same();
}

/// Publications with a column list and a row filter.
#[tokio::test]
async fn publications_with_a_column_list_and_a_row_filter() {
    let db = TestDb::new("plan_lists_publications").await;
    setup(
        &db,
        r#"CREATE TABLE ev (id int PRIMARY KEY, kind text NOT NULL, body text);
           INSERT INTO ev SELECT g, 'k' || (g % 3), 'b' FROM generate_series(1, 1000) g;
           CREATE PUBLICATION ev_cols FOR TABLE ev (id, kind);
           CREATE PUBLICATION ev_rows FOR TABLE ev WHERE (kind <> 'k0');"#,
    )
    .await;
    let c = plan_and_run(&db, "publications", "ev", "ADD COLUMN at timestamptz", &[]).await;
    c.assert_ran(&["ALTER PUBLICATION"]);
    c.assert_same();
}

/// A partial and an expression index, an exclusion constraint, a deferrable unique constraint;
/// the ALTER adds a unique constraint and a foreign key.
#[tokio::test]
async fn indexes_and_constraints_of_every_kind() {
    let db = TestDb::new("plan_lists_indexes").await;
    setup(
        &db,
        r#"CREATE TABLE room (id int PRIMARY KEY);
           INSERT INTO room SELECT g FROM generate_series(1, 20) g;
           CREATE TABLE booking (
               id int PRIMARY KEY,
               room_id int NOT NULL,
               during int4range NOT NULL,
               code text NOT NULL,
               ref text,
               CONSTRAINT booking_ref_key UNIQUE (ref) DEFERRABLE INITIALLY DEFERRED,
               CONSTRAINT no_overlap EXCLUDE USING gist (during WITH &&));
           CREATE INDEX booking_open ON booking (room_id) WHERE ref IS NULL;
           CREATE INDEX booking_lower ON booking (lower(code));
           INSERT INTO booking SELECT g, 1 + g % 20, int4range(g * 10, g * 10 + 5), 'C' || g, 'r' || g
             FROM generate_series(1, 1500) g;"#,
    )
    .await;
    let c = plan_and_run(
        &db,
        "indexes",
        "booking",
        "ADD CONSTRAINT booking_code_key UNIQUE (code), ADD CONSTRAINT booking_room_fk FOREIGN KEY (room_id) REFERENCES room (id)",
        &["--drop-old"],
    )
    .await;
    c.assert_ran(&["EXCLUDE", "booking_room_fk", "booking_code_key"]);
    c.assert_same();
}

/// Quoted mixed-case schema, table and columns; no index but the key; no `--drop-old`.
#[tokio::test]
async fn mixed_case_names_and_only_a_key() {
    let db = TestDb::new("plan_lists_mixed_case").await;
    setup(
        &db,
        r#"CREATE SCHEMA "Sales Data";
           CREATE TABLE "Sales Data"."OrderLine" ("LineId" bigint PRIMARY KEY, "Qty" int, "Note Text" text);
           INSERT INTO "Sales Data"."OrderLine" SELECT g, g, 'x' FROM generate_series(1, 1100) g;"#,
    )
    .await;
    let c = plan_and_run(
        &db,
        "mixedcase",
        r#""Sales Data"."OrderLine""#,
        r#"ALTER COLUMN "Qty" TYPE numeric(12,2), ALTER COLUMN "Note Text" SET DEFAULT 'none'"#,
        &[],
    )
    .await;
    c.assert_ran(&["RENAME TO"]);
    c.assert_same();
}

/// Table attributes and what hangs off the table: another owner, storage options, a replica
/// identity index that is also the CLUSTER index with a statistics target, a self-reference, an
/// incoming NOT VALID foreign key with a comment, a disabled trigger with a comment, a rule on a
/// view, `--revertible` with views.
#[tokio::test]
async fn attributes_owner_self_reference_and_revertible_views() {
    let db = TestDb::new("plan_lists_attributes").await;
    setup(
        &db,
        r#"DO $$ BEGIN CREATE ROLE hotswap_stmt_owner; EXCEPTION WHEN duplicate_object THEN NULL; END $$;
           CREATE TABLE node (id int PRIMARY KEY, parent int REFERENCES node (id), code text NOT NULL,
                              size int NOT NULL DEFAULT 0) WITH (fillfactor = 80, autovacuum_vacuum_scale_factor = 0.05);
           CREATE UNIQUE INDEX node_code ON node (code);
           ALTER TABLE node REPLICA IDENTITY USING INDEX node_code;
           ALTER TABLE node CLUSTER ON node_code;
           CREATE INDEX node_lower ON node (lower(code));
           ALTER INDEX node_lower ALTER COLUMN 1 SET STATISTICS 500;
           INSERT INTO node SELECT g, NULLIF(g / 2, 0), 'c' || g, g FROM generate_series(1, 1500) g;
           CREATE TABLE leaf (id int PRIMARY KEY, node_id int);
           INSERT INTO leaf VALUES (1, 1), (2, 3);
           ALTER TABLE leaf ADD CONSTRAINT leaf_node_fk FOREIGN KEY (node_id) REFERENCES node (id) NOT VALID;
           COMMENT ON CONSTRAINT leaf_node_fk ON leaf IS 'to the node';
           CREATE FUNCTION stamp() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
           CREATE TRIGGER node_stamp BEFORE INSERT ON node FOR EACH ROW EXECUTE FUNCTION stamp();
           ALTER TABLE node DISABLE TRIGGER node_stamp;
           COMMENT ON TRIGGER node_stamp ON node IS 'off for now';
           CREATE VIEW node_small AS SELECT id, code, size FROM node WHERE size < 100;
           CREATE RULE node_small_del AS ON DELETE TO node_small DO INSTEAD DELETE FROM node WHERE id = OLD.id;
           ALTER TABLE node OWNER TO hotswap_stmt_owner;
           ALTER VIEW node_small OWNER TO hotswap_stmt_owner;"#,
    )
    .await;
    let c = plan_and_run(
        &db,
        "attributes",
        "node",
        "ALTER COLUMN size TYPE bigint",
        &["--revertible", "--old-name", "node_was"],
    )
    .await;
    c.assert_ran(&[
        "REPLICA IDENTITY USING INDEX",
        "CLUSTER ON",
        "SET STATISTICS 500",
        "OWNER TO",
        "DISABLE TRIGGER",
        "node_was",
    ]);
    c.assert_same();
}

/// `--order-by` (issue 19, the online CLUSTER): its statements are listed exactly too.
#[tokio::test]
async fn order_by_columns_is_listed() {
    let db = TestDb::new("plan_lists_order_by").await;
    setup(
        &db,
        r#"CREATE TABLE ev (id int PRIMARY KEY, k int NOT NULL, note text);
           INSERT INTO ev SELECT g, (g * 7919) % 3001, 'n' FROM generate_series(1, 3000) g;"#,
    )
    .await;
    let c = plan_and_run(
        &db,
        "orderby",
        "ev",
        "ALTER COLUMN k TYPE bigint",
        &["--order-by", "k"],
    )
    .await;
    c.assert_ran(&["CLUSTER", "_order"]);
    c.assert_same();
}

/// Issue 15: a changed primary key. The shadow's ALTER names the source's constraint through its
/// temporary twin, and the temporary unique index on the old key is built and dropped in the
/// swap; `plan` lists both.
#[tokio::test]
async fn a_changed_primary_key() {
    let db = TestDb::new("plan_lists_key_change").await;
    setup(
        &db,
        r#"CREATE TABLE acct (id int PRIMARY KEY, tenant int NOT NULL, v text);
           ALTER TABLE acct CLUSTER ON acct_pkey;
           INSERT INTO acct SELECT g, g % 9, 'v' FROM generate_series(1, 3000) g;"#,
    )
    .await;
    let c = plan_and_run(
        &db,
        "keychange",
        "acct",
        "DROP CONSTRAINT acct_pkey, ADD CONSTRAINT acct_pkey PRIMARY KEY (tenant, id)",
        &[],
    )
    .await;
    c.assert_ran(&["DROP INDEX", "CLUSTER ON"]);
    c.assert_same();
}
