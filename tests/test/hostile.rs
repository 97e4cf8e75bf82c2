//! Hostile input (issue 9): names crafted to break out of quoting, and option values with SQL
//! where only a name or a value is expected. Every attempt is either refused with a clear error
//! (usage, exit 2, or refused at preflight, exit 3) and changes nothing, or treated exactly as a
//! plain name: the run succeeds, the data is intact, and nothing else changed — a canary table
//! that several attempts try to drop must survive every one of them.

use pg_hotswap::db::ident::{Ident, QualifiedName};
use tokio_postgres::Client;

use crate::harness::{all_output, column_type, describe, hotswap_async, leftovers, TestDb};

/// Names that try to end the quoting they are put in, or that PostgreSQL handles specially.
const HOSTILE: &[&str] = &[
    "a\"b",
    "it's",
    "x\"; DROP TABLE public.canary; --",
    "x'); DROP TABLE public.canary; --",
    "back\\slash\\",
    "$$",
    "$x$ tag $x$",
    "/* c */ -- d",
    "new\nline\ttab",
    "ünïcødé 字 🦀",
    "Mixed Case",
    "select",
    "%I %L %s",
];

/// A 63-byte name (NAMEDATALEN - 1) of multibyte characters: `fit_name` must cut it on a character
/// boundary when it derives `<name>_new`.
fn long_name() -> String {
    let mut s = "ä".repeat(31); // 62 bytes
    s.push('z');
    assert_eq!(s.len(), 63);
    s
}

async fn make_canary(client: &Client) {
    client
        .batch_execute(
            "CREATE TABLE public.canary (id int PRIMARY KEY, v text);
             INSERT INTO public.canary VALUES (1, 'one'), (2, 'two'), (3, 'three');",
        )
        .await
        .unwrap();
}

/// Every relation, column and trigger of the database outside the system and the state schemas,
/// with the canary's content: what an attempt must leave exactly as it was.
async fn fingerprint(client: &Client) -> String {
    client
        .query_one(
            "SELECT coalesce(string_agg(x, chr(30) ORDER BY x), '') || chr(30) || 'canary: ' || \
                    coalesce((SELECT string_agg(id || '=' || v, ',' ORDER BY id) FROM public.canary), 'GONE') \
               FROM (SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) || ':' || c.relkind::text || '(' || \
                            coalesce((SELECT string_agg(quote_ident(a.attname) || ' ' || format_type(a.atttypid, a.atttypmod), ', ' ORDER BY a.attnum) \
                                        FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped \
                                         AND c.relkind = 'r'), '') || ')' AS x \
                       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                      WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') \
                        AND n.nspname NOT LIKE 'pg_temp%' AND n.nspname NOT LIKE 'pg_toast_temp%' \
                        AND NOT EXISTS (SELECT 1 FROM pg_class r WHERE r.relnamespace = n.oid AND r.relname = 'runs') \
                     UNION ALL \
                     SELECT 'trigger ' || quote_ident(t.tgname) || ' on ' || t.tgrelid::regclass::text \
                       FROM pg_trigger t WHERE NOT t.tgisinternal \
                     UNION ALL \
                     SELECT 'schema ' || quote_ident(n.nspname) FROM pg_namespace n \
                      WHERE n.nspname NOT LIKE 'pg\\_%' AND n.nspname <> 'information_schema' \
                        AND NOT EXISTS (SELECT 1 FROM pg_class r WHERE r.relnamespace = n.oid AND r.relname = 'runs')) s",
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

fn code(out: &std::process::Output) -> Option<i32> {
    out.status.code()
}

/// A table whose schema, name, columns, index, constraint and trigger carry hostile names, with
/// data; rewritten `id int -> bigint`; every name, every row, the canary and the rest of the
/// database must come out as they went in.
async fn roundtrip(db: &TestDb, client: &Client, table: &QualifiedName, names: &[&str; 6]) {
    let [id, val, extra, index, check, trigger] = names.map(Ident::new);
    let expected = QualifiedName::new("public", format!("expected_{}", table.name.byte_len()));
    client
        .batch_execute(&format!(
            "CREATE SCHEMA IF NOT EXISTS {schema};
             CREATE TABLE {table} ({id} int PRIMARY KEY, {val} text NOT NULL, {extra} int CONSTRAINT {check} CHECK ({extra} >= 0));
             CREATE INDEX {index} ON {table} ({val});
             INSERT INTO {table} SELECT g, 'v' || g || $q$ it's \"quoted\" $$ ; -- $q$, g % 7 FROM generate_series(1, 2000) g;
             CREATE FUNCTION {schema}.{trigger}() RETURNS trigger LANGUAGE plpgsql AS $f$ BEGIN RETURN NEW; END $f$;
             CREATE TRIGGER {trigger} BEFORE UPDATE ON {table} FOR EACH ROW EXECUTE FUNCTION {schema}.{trigger}();
             DROP TABLE IF EXISTS {expected};
             CREATE TABLE {expected} AS SELECT * FROM {table};",
            schema = table.schema,
        ))
        .await
        .unwrap_or_else(|e| panic!("creating {table}: {e}"));
    let before = fingerprint(client).await;
    let left_before = leftovers(client, table, "hotswap").await;
    let table_arg = table.to_string();
    let alter = format!("ALTER COLUMN {id} TYPE bigint");
    let out = hotswap_async(&[
        "run",
        "--dsn",
        &db.conninfo,
        "--table",
        &table_arg,
        "--alter",
        &alter,
        "--drop-old",
    ])
    .await;
    assert_eq!(code(&out), Some(0), "{table_arg}\n{}", describe(&out));
    assert_eq!(
        column_type(client, table, &id).await,
        "bigint",
        "{table_arg}"
    );
    let diff: i64 = client
        .query_one(
            &format!(
                "SELECT count(*) FROM ((SELECT {id}::int8, {val}, {extra} FROM {table} EXCEPT ALL SELECT {id}::int8, {val}, {extra} FROM {expected}) \
                  UNION ALL (SELECT {id}::int8, {val}, {extra} FROM {expected} EXCEPT ALL SELECT {id}::int8, {val}, {extra} FROM {table})) d"
            ),
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(diff, 0, "{table_arg}: the rows changed");
    // Exactly the same objects, names and columns, but for the key's new type.
    let after = fingerprint(client).await;
    let r = client
        .query_one(
            "SELECT quote_ident($1) || '.' || quote_ident($2) || ':r(', quote_ident($3)",
            &[&table.schema.as_str(), &table.name.as_str(), &id.as_str()],
        )
        .await
        .unwrap();
    let (prefix, id_q): (String, String) = (r.get(0), r.get(1));
    let expected_after = before
        .split('\u{1e}')
        .map(|line| {
            if line.starts_with(&prefix) {
                line.replacen(&format!("{id_q} integer"), &format!("{id_q} bigint"), 1)
            } else {
                line.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\u{1e}");
    assert_eq!(after, expected_after, "{table_arg}: the database changed");
    let r = client
        .query_one(
            "SELECT (SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid \
                      WHERE i.indrelid = $1::text::regclass AND c.relname = $2), \
                    (SELECT count(*) FROM pg_constraint WHERE conrelid = $1::text::regclass AND conname = $3), \
                    (SELECT count(*) FROM pg_trigger WHERE tgrelid = $1::text::regclass AND tgname = $4)",
            &[&table_arg, &index.as_str(), &check.as_str(), &trigger.as_str()],
        )
        .await
        .unwrap();
    assert_eq!(
        (r.get::<_, i64>(0), r.get::<_, i64>(1), r.get::<_, i64>(2)),
        (1, 1, 1),
        "{table_arg}: the index, constraint or trigger lost its name"
    );
    let left: Vec<String> = leftovers(client, table, "hotswap")
        .await
        .into_iter()
        .filter(|l| !left_before.contains(l))
        .collect();
    assert!(left.is_empty(), "{table_arg}: leftovers {left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_identifiers_are_plain_names() {
    let db = TestDb::new("hostile_identifiers").await;
    let client = db.client().await;
    make_canary(&client).await;
    let long = long_name();
    // Each hostile name in each role: schema, table, key, column, index, constraint, trigger.
    for (i, name) in HOSTILE.iter().enumerate() {
        let other = HOSTILE[(i + 1) % HOSTILE.len()];
        let third = HOSTILE[(i + 2) % HOSTILE.len()];
        let table = QualifiedName::new(format!("s {name}"), name.to_string());
        let names = [
            other,
            third,
            name,
            &format!("ix {name}")[..],
            &format!("ck {other}")[..],
            &format!("tg {third}")[..],
        ];
        roundtrip(&db, &client, &table, &names).await;
    }
    // 63-byte names, and names the tool derives its own from.
    let table = QualifiedName::new(long.clone(), long.clone());
    roundtrip(
        &db,
        &client,
        &table,
        &[&long, "v", "e", &format!("{}ix", &long[..60]), "ck", "tg"],
    )
    .await;
}

/// Names that collide with what the tool creates: the `_new` and `_old` names are taken, a
/// user trigger is called like the tool's capture triggers, a user table like its log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_that_collide_with_the_tools_names() {
    let db = TestDb::new("hostile_collisions").await;
    let client = db.client().await;
    make_canary(&client).await;
    client
        .batch_execute(
            "CREATE TABLE public.t_new (x int); CREATE TABLE public.t_old (x int);
             CREATE TABLE public.t_new1 (x int); CREATE TABLE public.log_1 (x int);
             CREATE TABLE public.hotswap_capture_1 (x int);",
        )
        .await
        .unwrap();
    let table = QualifiedName::new("public", "t");
    roundtrip(
        &db,
        &client,
        &table,
        &[
            "id",
            "hotswap_new",
            "hotswap_old",
            "t_new_idx",
            "hotswap_truncate_1",
            "hotswap_audit",
        ],
    )
    .await;
}

/// One attempt with a hostile option value: it must be refused with `want` (2: usage, 3:
/// preflight), say `says`, and leave the database exactly as it was.
async fn refused(db: &TestDb, client: &Client, args: &[&str], want: i32, says: &str) {
    let before = fingerprint(client).await;
    let mut full = vec!["run", "--dsn", &db.conninfo];
    full.extend_from_slice(args);
    let out = hotswap_async(&full).await;
    assert_eq!(code(&out), Some(want), "{args:?}\n{}", describe(&out));
    assert!(
        all_output(&out).contains(says),
        "{args:?} does not say {says:?}\n{}",
        describe(&out)
    );
    assert_eq!(
        fingerprint(client).await,
        before,
        "{args:?} changed the database"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn option_values_with_sql_are_refused_or_plain_names() {
    let db = TestDb::new("hostile_options").await;
    let client = db.client().await;
    make_canary(&client).await;
    client
        .batch_execute(
            "CREATE TABLE public.t (id int PRIMARY KEY, v text);
             INSERT INTO public.t SELECT g, 'v' || g FROM generate_series(1, 500) g;",
        )
        .await
        .unwrap();
    let huge = "x".repeat(100_000);
    let with = |extra: &[&'static str]| -> Vec<&'static str> {
        let mut v = vec!["--table", "public.t"];
        v.extend_from_slice(extra);
        v
    };

    // --table: only ever a name, looked up with a bind parameter.
    for table in [
        "a; DROP TABLE public.canary",
        "public.t; DROP TABLE public.canary",
        "public.t'); DROP TABLE public.canary; --",
        "\"public\".\"t\"; DROP TABLE public.canary",
    ] {
        refused(&db, &client, &["--table", table], 3, "").await;
    }
    refused(&db, &client, &["--table", ""], 2, "--table is empty").await;
    refused(&db, &client, &["--table", "   "], 2, "--table is empty").await;
    refused(&db, &client, &["--table", &huge], 3, "").await;

    // Names that must fit and be names.
    refused(&db, &client, &with(&["--state-schema", ""]), 2, "empty").await;
    refused(
        &db,
        &client,
        &with(&["--shadow-name", ""]),
        2,
        "--shadow-name is empty",
    )
    .await;
    let long64 = "y".repeat(64);
    let mut args = with(&[]);
    args.extend_from_slice(&["--old-name", &long64]);
    refused(&db, &client, &args, 2, "longer than 63 bytes").await;
    let mut args = with(&[]);
    args.extend_from_slice(&["--state-schema", &huge]);
    refused(&db, &client, &args, 2, "longer than 63 bytes").await;
    refused(
        &db,
        &client,
        &with(&["--state-schema", "pg_evil"]),
        2,
        "pg_",
    )
    .await;
    refused(
        &db,
        &client,
        &with(&["--shadow-name", "canary"]),
        2,
        "already exists",
    )
    .await;

    // --alter: the actions of one ALTER TABLE, never a second statement, however the `;` is
    // hidden from the client's check.
    refused(
        &db,
        &client,
        &with(&[
            "--alter",
            "ALTER COLUMN v TYPE text; DROP TABLE public.canary",
        ]),
        2,
        "without ';'",
    )
    .await;
    for alter in [
        "ADD COLUMN z text DEFAULT E'\\''; DROP TABLE public.canary; --'",
        "ADD COLUMN z text DEFAULT $$'$$; DROP TABLE public.canary; --'",
        "ADD COLUMN z text /* ' */; DROP TABLE public.canary; --'",
        "ADD COLUMN \"z\"\"\" text DEFAULT $x$ ' $x$; DROP TABLE public.canary; --'",
    ] {
        // Each hides its `;` from a naive scan; the lexer of alter_text sees it (exit 2), and
        // the server would refuse a second statement anyway (the ALTER goes over the extended
        // protocol).
        refused(&db, &client, &with(&["--alter", alter]), 2, "without ';'").await;
    }
    refused(
        &db,
        &client,
        &with(&["--alter", "   "]),
        2,
        "--alter is empty",
    )
    .await;

    // --map: the column is a name, the expression one expression.
    refused(
        &db,
        &client,
        &with(&["--map", "\"v; DROP TABLE public.canary\"=1"]),
        2,
        "",
    )
    .await;
    for map in [
        "v=1; DROP TABLE public.canary",
        "v=1) AS text) FROM public.t; DROP TABLE public.canary; SELECT CAST((1",
        "v=$$x$$) AS text) FROM public.t; DROP TABLE public.canary; SELECT CAST(($$x",
    ] {
        refused(&db, &client, &with(&["--map", map]), 3, "").await;
    }
    refused(&db, &client, &with(&["--map", "v="]), 2, "").await;
    refused(&db, &client, &with(&["--map", "=1"]), 2, "").await;

    // Values: durations and sizes are parsed, never passed through.
    for timeout in [
        "1; DROP TABLE public.canary",
        "",
        "100ms'",
        "-5s",
        "1e400s",
        "99999999999h",
    ] {
        refused(&db, &client, &with(&["--lock-timeout", timeout]), 2, "").await;
    }
    refused(
        &db,
        &client,
        &with(&[
            "--maintenance-work-mem",
            "1GB'; DROP TABLE public.canary; --",
        ]),
        2,
        "not a memory size",
    )
    .await;
    refused(&db, &client, &with(&["--jobs", "1; DROP"]), 2, "").await;

    // Handled exactly as plain names: the run succeeds with objects of exactly those names.
    // A newline ends a `--` comment: a name pasted into one would run its second line.
    let state = "st\nDROP TABLE public.canary; --";
    let shadow = "sh\"; DROP TABLE public.canary; --";
    let old = "old'); DROP TABLE public.canary; --";
    let out = hotswap_async(&[
        "run",
        "--dsn",
        &db.conninfo,
        "--table",
        "public.t",
        "--state-schema",
        state,
        "--shadow-name",
        shadow,
        "--old-name",
        old,
        "--alter",
        "ALTER COLUMN id TYPE bigint",
    ])
    .await;
    assert_eq!(code(&out), Some(0), "{}", describe(&out));
    let r = client
        .query_one(
            "SELECT to_regnamespace(quote_ident($1)) IS NOT NULL, \
                    to_regclass('public.' || quote_ident($2)) IS NOT NULL, \
                    (SELECT count(*) FROM public.canary), \
                    (SELECT count(*) FROM public.t), \
                    to_regclass('public.' || quote_ident($3)) IS NULL",
            &[&state, &old, &shadow],
        )
        .await
        .unwrap();
    assert!(r.get::<_, bool>(0), "the state schema {state:?} is missing");
    assert!(r.get::<_, bool>(1), "the old table {old:?} is missing");
    assert_eq!(r.get::<_, i64>(2), 3, "the canary changed");
    assert_eq!(r.get::<_, i64>(3), 500);
    assert!(r.get::<_, bool>(4), "the shadow name is still taken");
    assert_eq!(
        column_type(
            &client,
            &QualifiedName::new("public", "t"),
            &Ident::new("id")
        )
        .await,
        "bigint"
    );
}
