//! Early refusals and the hazards around the swap (issue 13 inputs 6 and 7, issue 21 input 6).
//!
//! - Dependent objects: an ALTER that PostgreSQL refuses because a view, rule, policy, trigger,
//!   publication or function uses the column is refused by `run` before the copy (no chunk
//!   copied, nothing left) and by `plan`; a type change under a view the swap can re-create is
//!   not refused, one it cannot re-create is.
//! - Publications: a publication that would publish the tool's objects, with a subscriber
//!   consuming it, is refused before anything is created; without a consumer, or with a
//!   publication of a table list, a run succeeds and the subscription keeps replicating.
//! - Old snapshots: a REPEATABLE READ transaction whose snapshot predates the shadow's rows is
//!   waited for before the swap, and named when it outlives the wait.

use tokio_postgres::Client;

use crate::harness::{all_output, assert_exit, describe, hotswap_async, leftovers, TestDb};
use pg_hotswap::ident::QualifiedName;

async fn exec(client: &Client, sql: &str) {
    client
        .batch_execute(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

async fn one_i64(client: &Client, sql: &str) -> i64 {
    client
        .query_one(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .get(0)
}

async fn run_alter(
    conninfo: &str,
    table: &str,
    alter: &str,
    extra: &[&str],
) -> std::process::Output {
    let mut args = vec!["run", "--dsn", conninfo, "--table", table, "--alter", alter];
    args.extend_from_slice(extra);
    hotswap_async(&args).await
}

/// Rows the run copied into the shadow (0 when the state tables do not exist).
async fn chunks_done(client: &Client) -> i64 {
    one_i64(
        client,
        "SELECT CASE WHEN to_regclass('hotswap.chunks') IS NULL THEN 0 ELSE \
           (xpath('/row/c/text()', query_to_xml('SELECT count(*) AS c FROM hotswap.chunks \
              WHERE done_at IS NOT NULL', false, true, '')))[1]::text::int8 END",
    )
    .await
}

const PERSON: &str = "CREATE TABLE person (id int PRIMARY KEY, full_name text, nickname text);
     INSERT INTO person SELECT g, 'name ' || g, 'nick ' || g FROM generate_series(1, 2000) g;
     CREATE VIEW v AS SELECT id, full_name, nickname FROM person;";

/// Issue 13, input 6: `DROP COLUMN` of a column a view uses is refused at once, as PostgreSQL
/// refuses it, not in the swap after the whole copy.
#[tokio::test]
async fn drop_column_used_by_a_view_is_refused_before_the_copy() {
    let db = TestDb::new("refuse_drop_view_column").await;
    let client = db.client().await;
    exec(&client, PERSON).await;
    let out = run_alter(
        &db.conninfo,
        "public.person",
        "DROP COLUMN nickname",
        &["--chunk-rows", "100"],
    )
    .await;
    assert_exit(&out, 3);
    let said = all_output(&out);
    for needle in [
        "view public.v",
        "\"nickname\"",
        "cannot drop column nickname of table person because other objects depend on it",
        "nothing was changed",
        "no CASCADE",
    ] {
        assert!(
            said.contains(needle),
            "no {needle:?} in:\n{}",
            describe(&out)
        );
    }
    assert_eq!(
        chunks_done(&client).await,
        0,
        "rows were copied before the refusal"
    );
    let person = QualifiedName::new("public", "person");
    assert_eq!(
        leftovers(&client, &person, "hotswap").await,
        Vec::<String>::new()
    );
    // The table and the view are as they were.
    assert_eq!(
        one_i64(&client, "SELECT count(nickname) FROM v").await,
        2000
    );
}

/// `plan` builds the shadow as `run` does, so it shows the same refusal.
#[tokio::test]
async fn plan_shows_the_dependent_object_refusal() {
    let db = TestDb::new("refuse_drop_view_plan").await;
    let client = db.client().await;
    exec(&client, PERSON).await;
    let out = hotswap_async(&[
        "plan",
        "--dsn",
        &db.conninfo,
        "--table",
        "public.person",
        "--alter",
        "DROP COLUMN nickname",
        "--output",
        "json",
        "--observe",
        "200ms",
    ])
    .await;
    assert_exit(&out, 3);
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("plan JSON: {e}\n{}", describe(&out)));
    let refused = plan["refused"].as_str().unwrap_or_default();
    assert!(
        refused.contains("view public.v") && refused.contains("cannot drop column nickname"),
        "{plan:#}"
    );
    let no_schema: bool = client
        .query_one("SELECT to_regnamespace('hotswap') IS NULL", &[])
        .await
        .unwrap()
        .get(0);
    assert!(no_schema, "plan created the state schema");
}

/// Every kind of dependent object PostgreSQL's ALTER refuses, each on its own table: the run
/// is refused (exit 3) naming the object and PostgreSQL's words, with nothing copied.
#[tokio::test]
async fn each_dependent_object_kind_is_refused_as_postgres_refuses_it() {
    let db = TestDb::new("refuse_dependent_kinds").await;
    let client = db.client().await;
    exec(
        &client,
        "CREATE FUNCTION noop() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NEW; END$$;
         CREATE TABLE t_rule (id int PRIMARY KEY, c int);
         CREATE TABLE t_rule_log (c int);
         CREATE RULE t_rule_audit AS ON UPDATE TO t_rule DO ALSO INSERT INTO t_rule_log VALUES (NEW.c);
         CREATE TABLE t_policy (id int PRIMARY KEY, c int);
         CREATE POLICY t_policy_pos ON t_policy USING (c > 0);
         CREATE TABLE t_trigger (id int PRIMARY KEY, c int);
         CREATE TRIGGER t_trigger_c BEFORE UPDATE OF c ON t_trigger
             FOR EACH ROW EXECUTE FUNCTION noop();
         CREATE TABLE t_pub (id int PRIMARY KEY, c int);
         CREATE PUBLICATION t_pub_filtered FOR TABLE t_pub WHERE (c > 0);
         CREATE TABLE t_fk (id int PRIMARY KEY, c int UNIQUE);
         CREATE TABLE t_fk_child (c int REFERENCES t_fk (c));
         INSERT INTO t_rule SELECT g, g FROM generate_series(1, 50) g;
         INSERT INTO t_policy SELECT g, g FROM generate_series(1, 50) g;
         INSERT INTO t_trigger SELECT g, g FROM generate_series(1, 50) g;
         INSERT INTO t_pub SELECT g, g FROM generate_series(1, 50) g;
         INSERT INTO t_fk SELECT g, g FROM generate_series(1, 50) g;",
    )
    .await;
    let cases = [
        (
            "t_rule",
            "ALTER COLUMN c TYPE bigint",
            "rule t_rule_audit on table t_rule",
            "cannot alter type of a column used by a view or rule",
        ),
        (
            "t_policy",
            "ALTER COLUMN c TYPE bigint",
            "policy t_policy_pos on table t_policy",
            "cannot alter type of a column used in a policy definition",
        ),
        (
            "t_policy",
            "DROP COLUMN c",
            "policy t_policy_pos on table t_policy",
            "cannot drop column c of table t_policy because other objects depend on it",
        ),
        (
            "t_trigger",
            "ALTER COLUMN c TYPE bigint",
            "trigger t_trigger_c on table t_trigger",
            "cannot alter type of a column used in a trigger definition",
        ),
        (
            "t_pub",
            "ALTER COLUMN c TYPE bigint",
            "publication t_pub_filtered",
            "cannot alter type of a column used by a publication WHERE clause",
        ),
        (
            "t_fk",
            "DROP COLUMN c",
            "constraint t_fk_child_c_fkey on table t_fk_child",
            "cannot drop column c of table t_fk because other objects depend on it",
        ),
    ];
    let mut failures = Vec::new();
    for (table, alter, object, words) in cases {
        // PostgreSQL's own ALTER refuses it: the oracle for the case.
        let pg = client
            .batch_execute(&format!("BEGIN; ALTER TABLE {table} {alter}; ROLLBACK"))
            .await;
        let _ = client.batch_execute("ROLLBACK").await;
        match pg {
            Err(e) if e.as_db_error().map(|d| d.message()) == Some(words) => {}
            other => failures.push(format!(
                "{table} {alter}: PostgreSQL's ALTER did not say {words:?}: {other:?}"
            )),
        }
        let out = run_alter(&db.conninfo, &format!("public.{table}"), alter, &[]).await;
        let said = all_output(&out);
        if out.status.code() != Some(3) || !said.contains(object) || !said.contains(words) {
            failures.push(format!(
                "{table} {alter}: expected exit 3 naming {object:?} and {words:?}\n{}",
                describe(&out)
            ));
        }
    }
    assert_eq!(
        chunks_done(&client).await,
        0,
        "rows were copied before a refusal"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// A type change under a view is not refused: the swap re-creates the view (README), and the
/// view then reads the new type. Only a view whose definition fails on the new shape is
/// refused, before the copy, with the server's reason.
#[tokio::test]
async fn views_over_retyped_columns_are_probed_not_refused() {
    let db = TestDb::new("refuse_view_probe").await;
    let client = db.client().await;
    exec(
        &client,
        "CREATE TABLE acct (id int PRIMARY KEY, code text, n int);
         INSERT INTO acct SELECT g, g::text, g FROM generate_series(1, 500) g;
         CREATE VIEW acct_codes AS SELECT id, lower(code) AS code FROM acct;
         CREATE VIEW acct_n AS SELECT id, n FROM acct;",
    )
    .await;
    // `lower(integer)` does not exist: the swap could not re-create acct_codes.
    let out = run_alter(
        &db.conninfo,
        "public.acct",
        "ALTER COLUMN code TYPE int USING code::int",
        &[],
    )
    .await;
    assert_exit(&out, 3);
    let said = all_output(&out);
    assert!(
        said.contains("view public.acct_codes") && said.contains("lower(integer) does not exist"),
        "{}",
        describe(&out)
    );
    assert_eq!(chunks_done(&client).await, 0);
    // int -> bigint under acct_n: PostgreSQL's ALTER refuses, the tool re-creates the view.
    let out = run_alter(
        &db.conninfo,
        "public.acct",
        "ALTER COLUMN n TYPE bigint",
        &[],
    )
    .await;
    assert_exit(&out, 0);
    let ty: String = client
        .query_one(
            "SELECT format_type(atttypid, atttypmod) FROM pg_attribute \
             WHERE attrelid = 'acct_n'::regclass AND attname = 'n'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(ty, "bigint");
}
