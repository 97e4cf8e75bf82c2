//! Issue 3, "Everything attached to the table survives the swap, exactly".
//!
//! A corpus of tricky tables. For each, a rewrite without `--alter` must leave the database as it
//! was, once the kept old table (`<t>_old`) and the tool's own schema are set aside:
//! - `pg_dump --schema-only` prints the same objects (compared entry by entry, as a multiset:
//!   pg_dump's order depends on dependencies and OIDs, which a swap legitimately changes);
//! - every table, view and materialized view holds the same rows (count and md5 of the sorted
//!   row texts);
//! - every sequence is at the same position (`last_value`, `is_called`) with the same
//!   definition (type, start, increment, bounds, cache, cycle), except that a rewritten table's
//!   identity sequence hands out its next value `SEQUENCE_RESERVE` increments later (the swap's
//!   reserve for sessions that waited on the old sequence; `swap::sequences`);
//! - no capture trigger, no function in the state schema and no shadow table is left.
//!
//! With an `--alter`, the dump differs by exactly what the ALTER says. Tables the tool does not
//! support must be refused at preflight (exit 3) with the reason, leaving nothing behind.
//!
//! Each test collects every failed property in [`Findings`] and reports them all at the end, so
//! one run shows everything that does not survive the swap.

use std::collections::BTreeMap;
use std::process::Output;
use std::time::Instant;

use pg_hotswap::db::ident::{fit_name, Ident, QualifiedName};
use tokio_postgres::Client;

use crate::harness::{all_output, describe, hotswap_async, relation_exists, table_arg, TestDb};

const STATE_SCHEMA: &str = "hotswap";

/// Failed properties of one test, reported together when the test ends.
#[derive(Default)]
struct Findings {
    failed: Vec<String>,
}

impl Findings {
    fn fail(&mut self, what: impl Into<String>) {
        self.failed.push(what.into());
    }

    fn check(&mut self, ok: bool, what: impl FnOnce() -> String) {
        if !ok {
            self.failed.push(what());
        }
    }

    fn finish(self) {
        let n = self.failed.len();
        assert!(
            n == 0,
            "{n} propert{} did not survive:\n\n{}",
            if n == 1 { "y" } else { "ies" },
            self.failed
                .iter()
                .enumerate()
                .map(|(i, f)| format!("[{}] {f}", i + 1))
                .collect::<Vec<_>>()
                .join("\n\n")
        );
    }
}

// ---------------------------------------------------------------------------------------------
// pg_dump, parsed into entries

/// One pg_dump TOC entry: its `-- Name: ...; Type: ...; Schema: ...; Owner: ...` header and its
/// SQL lines (blank lines and `--` separators dropped).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Entry {
    header: String,
    lines: Vec<String>,
}

/// Splits a plain-format dump into its entries, sorted. Dropped as noise: `\restrict` keys
/// (random per dump), the start/end banners, and the `SET default_tablespace` /
/// `SET default_table_access_method` lines pg_dump emits in-stream whenever the value changes
/// from the previous entry (they follow the dump order, not the object).
fn parse_dump(text: &str) -> Vec<Entry> {
    let mut entries = vec![Entry {
        header: "(preamble)".into(),
        lines: Vec::new(),
    }];
    for line in text.lines() {
        let noise = line.is_empty()
            || line == "--"
            || line.starts_with("\\restrict")
            || line.starts_with("\\unrestrict")
            || line == "-- PostgreSQL database dump"
            || line == "-- PostgreSQL database dump complete"
            || line.starts_with("SET default_tablespace")
            || line.starts_with("SET default_table_access_method");
        if noise {
            continue;
        }
        if line.starts_with("-- Name: ") {
            entries.push(Entry {
                header: line.to_string(),
                lines: Vec::new(),
            });
        } else if let Some(last) = entries.last_mut() {
            last.lines.push(line.to_string());
        }
    }
    entries.sort();
    entries
}

/// Multiset difference `a - b` (both sorted).
fn minus<T: Ord + Clone>(a: &[T], b: &[T]) -> Vec<T> {
    let mut counts: BTreeMap<&T, usize> = BTreeMap::new();
    for x in b {
        *counts.entry(x).or_default() += 1;
    }
    let mut out = Vec::new();
    for x in a {
        match counts.get_mut(x) {
            Some(n) if *n > 0 => *n -= 1,
            _ => out.push(x.clone()),
        }
    }
    out
}

/// The entries only in the dump before (`removed`) and only in the dump after (`added`).
struct DumpDiff {
    removed: Vec<Entry>,
    added: Vec<Entry>,
}

impl DumpDiff {
    fn new(before: &[Entry], after: &[Entry]) -> DumpDiff {
        DumpDiff {
            removed: minus(before, after),
            added: minus(after, before),
        }
    }

    fn is_empty(&self) -> bool {
        self.removed.is_empty() && self.added.is_empty()
    }

    /// Per header: the lines only before (`-`) and only after (`+`), trailing commas trimmed (so
    /// a column appended to a CREATE TABLE is one added line). An entry with no counterpart
    /// under the same header contributes its header and all its lines.
    fn line_changes(&self) -> Vec<(String, Vec<String>, Vec<String>)> {
        let norm = |lines: &[String]| -> Vec<String> {
            let mut v: Vec<String> = lines
                .iter()
                .map(|l| l.trim_end().trim_end_matches(',').to_string())
                .collect();
            v.sort();
            v
        };
        let mut by_header: BTreeMap<&str, (Vec<String>, Vec<String>)> = BTreeMap::new();
        for e in &self.removed {
            by_header
                .entry(&e.header)
                .or_default()
                .0
                .extend(e.lines.clone());
        }
        for e in &self.added {
            by_header
                .entry(&e.header)
                .or_default()
                .1
                .extend(e.lines.clone());
        }
        by_header
            .into_iter()
            .map(|(header, (before, after))| {
                let (before, after) = (norm(&before), norm(&after));
                let mut gone = minus(&before, &after);
                let mut new = minus(&after, &before);
                if before.is_empty() {
                    new.insert(0, header.to_string());
                }
                if after.is_empty() {
                    gone.insert(0, header.to_string());
                }
                (header.to_string(), gone, new)
            })
            .collect()
    }

    /// All `-` lines and all `+` lines.
    fn flat_changes(&self) -> (Vec<String>, Vec<String>) {
        let (mut gone, mut new) = (Vec::new(), Vec::new());
        for (_, g, n) in self.line_changes() {
            gone.extend(g);
            new.extend(n);
        }
        (gone, new)
    }

    fn render(&self) -> String {
        let mut out = String::new();
        for (header, gone, new) in self.line_changes() {
            // An entry only on one side starts with its header already.
            if gone.first() != Some(&header) && new.first() != Some(&header) {
                out.push_str(&format!("  @ {header}\n"));
            }
            for l in gone {
                out.push_str(&format!("  - {l}\n"));
            }
            for l in new {
                out.push_str(&format!("  + {l}\n"));
            }
        }
        out
    }
}

async fn pg_dump(db: &TestDb, set_aside: &[QualifiedName]) -> String {
    let bindir = tokio::task::spawn_blocking(pg_hotswap::demo::cluster::find_bindir)
        .await
        .expect("finding the PostgreSQL binaries")
        .expect("PostgreSQL binaries (for pg_dump)");
    let mut cmd = tokio::process::Command::new(bindir.join("pg_dump"));
    cmd.arg("--schema-only")
        .arg(format!("--exclude-schema={}", Ident::new(STATE_SCHEMA)));
    for table in set_aside {
        // Both parts quoted: pg_dump patterns then match the names literally.
        cmd.arg(format!("--exclude-table={table}"));
    }
    cmd.arg("--dbname").arg(&db.conninfo);
    let out = cmd.output().await.expect("running pg_dump");
    assert!(
        out.status.success(),
        "pg_dump failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("pg_dump printed UTF-8")
}

// ---------------------------------------------------------------------------------------------
// Snapshots of the database

/// What must not change across a rewrite without `--alter`.
struct Snapshot {
    dump: Vec<Entry>,
    /// `schema.relation` -> `<n> rows, md5 <hash>` for every table, view and materialized view.
    data: BTreeMap<String, String>,
    /// `schema.sequence` -> `<last_value> called|not called (as <type> start .. max ..)`; for an
    /// identity sequence only the definition (its position is in `identity_next`).
    sequences: BTreeMap<String, String>,
    /// Identity sequences: `schema.sequence` -> (the next value it hands out, its increment).
    identity_next: BTreeMap<String, (i64, i64)>,
}

const USER_RELATIONS: &str = "\
    FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
    WHERE n.nspname <> ALL (ARRAY['pg_catalog', 'information_schema', $1::text]) \
      AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%' \
      AND c.oid <> ALL (SELECT r::oid FROM unnest($2::text[]) s, to_regclass(s) r \
                         WHERE r IS NOT NULL)";

/// Snapshot of the database with the tables in `set_aside` (old tables kept by earlier runs),
/// their identity sequences and the state schema left out.
async fn snapshot(db: &TestDb, client: &Client, set_aside: &[QualifiedName]) -> Snapshot {
    let aside: Vec<String> = set_aside.iter().map(|t| t.to_string()).collect();
    let relations = client
        .query(
            &format!(
                "SELECT format('%I.%I', n.nspname, c.relname), c.relkind::text {USER_RELATIONS} \
                   AND c.relkind IN ('r', 'p', 'v', 'm') ORDER BY 1"
            ),
            &[&STATE_SCHEMA, &aside],
        )
        .await
        .expect("listing relations");
    let mut data = BTreeMap::new();
    for row in relations {
        let (name, kind): (String, String) = (row.get(0), row.get(1));
        let only = if kind == "r" { "ONLY " } else { "" };
        let sql = format!(
            "SELECT count(*)::text || ' rows, md5 ' || \
                    md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) \
               FROM {only}{name} t"
        );
        let summary: String = client
            .query_one(&sql, &[])
            .await
            .unwrap_or_else(|e| panic!("reading {name}: {e:?}"))
            .get(0);
        data.insert(name, summary);
    }
    let seqs = client
        .query(
            &format!(
                "SELECT format('%I.%I', n.nspname, c.relname) {USER_RELATIONS} \
                   AND c.relkind = 'S' \
                   AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d \
                        WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.objid = c.oid \
                          AND d.deptype = 'i' \
                          AND d.refobjid IN (SELECT r::oid FROM unnest($2::text[]) s, \
                                             to_regclass(s) r WHERE r IS NOT NULL)) \
                 ORDER BY 1"
            ),
            &[&STATE_SCHEMA, &aside],
        )
        .await
        .expect("listing sequences");
    let mut sequences = BTreeMap::new();
    let mut identity_next = BTreeMap::new();
    for row in seqs {
        let name: String = row.get(0);
        let lit = pg_hotswap::db::ident::literal(&name);
        let sql = format!(
            "SELECT last_value::text || CASE WHEN is_called THEN ' called' \
                    ELSE ' not called' END, \
                    (SELECT format(' (as %s start %s increment %s min %s max %s cache %s%s)', \
                                   format_type(seqtypid, NULL), seqstart, seqincrement, seqmin, \
                                   seqmax, seqcache, CASE WHEN seqcycle THEN ' cycle' END) \
                       FROM pg_catalog.pg_sequence WHERE seqrelid = {lit}::regclass), \
                    CASE WHEN is_called THEN last_value + (SELECT seqincrement \
                         FROM pg_catalog.pg_sequence WHERE seqrelid = {lit}::regclass) \
                         ELSE last_value END, \
                    (SELECT seqincrement FROM pg_catalog.pg_sequence \
                      WHERE seqrelid = {lit}::regclass), \
                    EXISTS (SELECT 1 FROM pg_catalog.pg_depend d \
                             WHERE d.classid = 'pg_catalog.pg_class'::regclass \
                               AND d.objid = {lit}::regclass AND d.deptype = 'i') \
               FROM {name}"
        );
        let row = client
            .query_one(&sql, &[])
            .await
            .unwrap_or_else(|e| panic!("reading sequence {name}: {e:?}"));
        let (position, definition): (String, String) = (row.get(0), row.get(1));
        if row.get::<_, bool>(4) {
            identity_next.insert(name.clone(), (row.get(2), row.get(3)));
            sequences.insert(name, definition);
        } else {
            sequences.insert(name, position + &definition);
        }
    }
    Snapshot {
        dump: parse_dump(&pg_dump(db, set_aside).await),
        data,
        sequences,
        identity_next,
    }
}

/// Fixture check: the dump and the data snapshot hold `table` (so their comparison means
/// something).
async fn assert_dumped(client: &Client, snapshot: &Snapshot, table: &QualifiedName) {
    let header = format!(
        "-- Name: {}; Type: TABLE; Schema: {};",
        table.name.as_str(),
        table.schema.as_str()
    );
    assert!(
        snapshot.dump.iter().any(|e| e.header.starts_with(&header)),
        "fixture: the dump has no `{header}` entry"
    );
    // The snapshots key relations by `format('%I.%I')`.
    let key: String = client
        .query_one(
            "SELECT format('%I.%I', $1::text, $2::text)",
            &[&table.schema.as_str(), &table.name.as_str()],
        )
        .await
        .expect("format")
        .get(0);
    assert!(
        snapshot.data.contains_key(&key),
        "fixture: the data snapshot has no {key}: {:?}",
        snapshot.data.keys()
    );
}

/// Lines `name: before -> after` for every key whose value differs (or is missing on one side).
fn map_diff(before: &BTreeMap<String, String>, after: &BTreeMap<String, String>) -> Vec<String> {
    let mut keys: Vec<&String> = before.keys().chain(after.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| before.get(*k) != after.get(*k))
        .map(|k| {
            let show = |v: Option<&String>| v.map_or("(absent)".to_string(), |v| v.clone());
            format!("  {k}: {} -> {}", show(before.get(k)), show(after.get(k)))
        })
        .collect()
}

/// Records every difference between two snapshots; `what` says which run they bracket.
fn compare_snapshots(before: &Snapshot, after: &Snapshot, what: &str, findings: &mut Findings) {
    let diff = DumpDiff::new(&before.dump, &after.dump);
    findings.check(diff.is_empty(), || {
        format!(
            "{what}: pg_dump --schema-only differs (- before, + after):\n{}",
            diff.render()
        )
    });
    compare_data(before, after, what, findings);
}

/// Rows and sequence positions only.
fn compare_data(before: &Snapshot, after: &Snapshot, what: &str, findings: &mut Findings) {
    let data = map_diff(&before.data, &after.data);
    findings.check(data.is_empty(), || {
        format!("{what}: rows differ:\n{}", data.join("\n"))
    });
    let seqs = map_diff(&before.sequences, &after.sequences);
    findings.check(seqs.is_empty(), || {
        format!(
            "{what}: sequences (position or definition) differ:\n{}",
            seqs.join("\n")
        )
    });
    // An identity sequence continues SEQUENCE_RESERVE increments on (or where it was, when the
    // run did not swap its table).
    let reserve = pg_hotswap::rewrite::swap::SEQUENCE_RESERVE;
    let expected: BTreeMap<String, (i64, i64)> = before
        .identity_next
        .iter()
        .map(|(name, &(next, inc))| {
            let moved = after
                .identity_next
                .get(name)
                .is_some_and(|&(n, _)| n != next);
            let next = if moved { next + reserve * inc } else { next };
            (name.clone(), (next, inc))
        })
        .collect();
    let ids = map_diff(
        &expected
            .iter()
            .map(|(k, v)| (k.clone(), format!("{v:?}")))
            .collect(),
        &after
            .identity_next
            .iter()
            .map(|(k, v)| (k.clone(), format!("{v:?}")))
            .collect(),
    );
    findings.check(ids.is_empty(), || {
        format!(
            "{what}: identity sequences do not continue {reserve} increments on \
             (next value, increment; expected -> found):\n{}",
            ids.join("\n")
        )
    });
}

/// What the tool may create and must not leave once a run is over: the shadow `<t>_new`, any
/// trigger named `hotswap%` or running a function of the state schema, any function in the state
/// schema.
async fn leftovers(client: &Client, table: &QualifiedName) -> Vec<String> {
    let mut found = Vec::new();
    let shadow = table.sibling(fit_name(table.name.as_str(), "_new"));
    if relation_exists(client, &shadow).await {
        found.push(format!("shadow table {shadow}"));
    }
    let triggers = client
        .query(
            "SELECT t.tgrelid::regclass::text, t.tgname::text \
               FROM pg_catalog.pg_trigger t \
               JOIN pg_catalog.pg_proc p ON p.oid = t.tgfoid \
               JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace \
              WHERE NOT t.tgisinternal AND (t.tgname LIKE 'hotswap%' OR n.nspname = $1)",
            &[&STATE_SCHEMA],
        )
        .await
        .expect("listing triggers");
    for row in triggers {
        found.push(format!(
            "trigger {} on {}",
            row.get::<_, String>(1),
            row.get::<_, String>(0)
        ));
    }
    let functions = client
        .query(
            "SELECT p.oid::regprocedure::text FROM pg_catalog.pg_proc p \
               JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = $1",
            &[&STATE_SCHEMA],
        )
        .await
        .expect("listing functions");
    for row in functions {
        found.push(format!("function {}", row.get::<_, String>(0)));
    }
    found
}

/// Runs recorded in the state schema (0 when it does not exist).
async fn recorded_runs(client: &Client) -> i64 {
    let runs = QualifiedName::new(STATE_SCHEMA, "runs");
    if !relation_exists(client, &runs).await {
        return 0;
    }
    client
        .query_one(&format!("SELECT count(*) FROM {runs}"), &[])
        .await
        .expect("counting runs")
        .get(0)
}

fn old_table(table: &QualifiedName) -> QualifiedName {
    table.sibling(fit_name(table.name.as_str(), "_old"))
}

async fn run_tool(db: &TestDb, table: &QualifiedName, alter: Option<&str>) -> Output {
    let table = table_arg(table);
    // What survives the swap is tested here: always the rewrite, also for an ALTER PostgreSQL
    // would apply in place (issue 16).
    let mut args = vec![
        "run",
        "--dsn",
        &db.conninfo,
        "--table",
        &table,
        "--force-rewrite",
    ];
    if let Some(alter) = alter {
        args.extend(["--alter", alter]);
    }
    let started = Instant::now();
    let out = hotswap_async(&args).await;
    eprintln!(
        "pg-hotswap run --table {table} {alter:?} took {:?}\n{}",
        started.elapsed(),
        describe(&out)
    );
    out
}

/// Rewrites `table` without `--alter` and records every property that does not survive. The old
/// table is added to `set_aside` (later snapshots leave it out). Returns whether the run
/// succeeded.
async fn rewrite_unchanged(
    db: &TestDb,
    client: &Client,
    table: &QualifiedName,
    set_aside: &mut Vec<QualifiedName>,
    findings: &mut Findings,
) -> bool {
    let what = format!("rewrite of {}", table.human());
    let before = snapshot(db, client, set_aside).await;
    assert_dumped(client, &before, table).await;
    let out = run_tool(db, table, None).await;
    if out.status.code() != Some(0) {
        findings.fail(format!("{what}: the run failed\n{}", describe(&out)));
        return false;
    }
    let old = old_table(table);
    findings.check(relation_exists(client, &old).await, || {
        format!("{what}: the old table is not kept as {}", old.human())
    });
    set_aside.push(old);
    let after = snapshot(db, client, set_aside).await;
    compare_snapshots(&before, &after, &what, findings);
    let left = leftovers(client, table).await;
    findings.check(left.is_empty(), || {
        format!("{what}: left behind: {left:#?}")
    });
    true
}

/// A run that must be refused at preflight (exit 3) with a reason containing one of `reasons`,
/// naming the table, and changing nothing.
async fn assert_refused(
    db: &TestDb,
    client: &Client,
    table: &QualifiedName,
    reasons: &[&str],
    findings: &mut Findings,
) {
    let what = format!("run on {}", table.human());
    let before = snapshot(db, client, &[]).await;
    let runs_before = recorded_runs(client).await;
    let out = run_tool(db, table, None).await;
    let said = all_output(&out).to_lowercase();
    findings.check(out.status.code() == Some(3), || {
        format!(
            "{what}: expected a refusal at preflight (exit 3)\n{}",
            describe(&out)
        )
    });
    findings.check(said.contains(&table.name.as_str().to_lowercase()), || {
        format!(
            "{what}: the refusal does not name the table\n{}",
            describe(&out)
        )
    });
    findings.check(reasons.iter().any(|r| said.contains(r)), || {
        format!(
            "{what}: the refusal gives no reason mentioning any of {reasons:?}\n{}",
            describe(&out)
        )
    });
    let after = snapshot(db, client, &[]).await;
    compare_snapshots(&before, &after, &what, findings);
    let left = leftovers(client, table).await;
    findings.check(left.is_empty(), || {
        format!("{what}: left behind: {left:#?}")
    });
    findings.check(!relation_exists(client, &old_table(table)).await, || {
        format!("{what}: a refused run renamed the table away")
    });
    let runs_after = recorded_runs(client).await;
    findings.check(runs_after == runs_before, || {
        format!("{what}: a refused run was recorded in {STATE_SCHEMA}.runs")
    });
}

// ---------------------------------------------------------------------------------------------
// Fixtures

/// A 2,560-byte value of hex digits that pglz cannot shrink much: stored out of line (TOAST).
/// `seed` is a SQL expression.
fn big(seed: &str) -> String {
    format!(
        "(SELECT string_agg(md5(({seed})::text || '/' || i), '') FROM generate_series(1, 80) i)"
    )
}

async fn exec(client: &Client, sql: &str) {
    if let Err(e) = client.batch_execute(sql).await {
        panic!("fixture failed: {e:?}\n{sql}");
    }
}

/// Fixture check: some of the table's values are out of line.
async fn assert_toasted(client: &Client, table: &QualifiedName) {
    let toasted: bool = client
        .query_one(
            "SELECT reltoastrelid <> 0 AND pg_relation_size(reltoastrelid) > 0 \
               FROM pg_catalog.pg_class WHERE oid = $1::text::regclass",
            &[&table.to_string()],
        )
        .await
        .expect("toast size")
        .get(0);
    assert!(toasted, "fixture: {} has no TOASTed values", table.human());
}

/// Creates NOLOGIN roles (cluster-wide, so tolerant of existing ones and of a parallel test).
async fn ensure_roles(client: &Client, roles: &[&str]) {
    for role in roles {
        exec(
            client,
            &format!(
                "DO $$ BEGIN CREATE ROLE {} NOLOGIN; \
                 EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$",
                Ident::new(*role)
            ),
        )
        .await;
    }
}

/// Runs `sql` and returns the error text, if any (rolling back a transaction it left open).
async fn try_sql(client: &Client, sql: &str) -> Option<String> {
    let err = client.batch_execute(sql).await.err()?;
    client.batch_execute("ROLLBACK").await.expect("ROLLBACK");
    Some(match err.as_db_error() {
        Some(db) => db.message().to_string(),
        None => err.to_string(),
    })
}

/// `sql` (one text column, one row) run as `role`.
async fn query_as(client: &Client, role: &str, sql: &str) -> Result<String, String> {
    client
        .batch_execute(&format!("SET ROLE {}", Ident::new(role)))
        .await
        .expect("SET ROLE");
    let result = client
        .query_one(sql, &[])
        .await
        .map(|r| r.get::<_, String>(0))
        .map_err(|e| format!("{e:?}"));
    client
        .batch_execute("RESET ROLE")
        .await
        .expect("RESET ROLE");
    result
}

async fn query_text(client: &Client, sql: &str) -> String {
    client
        .query_one(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e:?}"))
        .get(0)
}

// ---------------------------------------------------------------------------------------------
// The corpus

/// The comparison itself: it sees a renamed index, a changed row and a moved sequence, and
/// ignores a change of pg_dump's order (recreating an object gives it a later OID).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn comparison_sees_changes_and_ignores_dump_order() {
    let db = TestDb::new("carry_comparison").await;
    let client = db.client().await;
    exec(
        &client,
        "CREATE TABLE public.a (id int PRIMARY KEY, v text);
         CREATE TABLE public.b (id int PRIMARY KEY, v text);
         INSERT INTO public.a SELECT g, 'v' || g FROM generate_series(1, 100) g;
         CREATE INDEX a_v_idx ON public.a (v);
         CREATE INDEX b_v_idx ON public.b (v);
         CREATE SEQUENCE public.s;
         CREATE VIEW public.va AS SELECT id FROM public.a;
         CREATE VIEW public.vb AS SELECT id FROM public.b;",
    )
    .await;
    let before = snapshot(&db, &client, &[]).await;
    assert_dumped(&client, &before, &QualifiedName::new("public", "a")).await;
    // Same definitions, new OIDs.
    exec(
        &client,
        "DROP VIEW public.va; CREATE VIEW public.va AS SELECT id FROM public.a;
         DROP INDEX public.a_v_idx; CREATE INDEX a_v_idx ON public.a (v);",
    )
    .await;
    let same = snapshot(&db, &client, &[]).await;
    let mut findings = Findings::default();
    compare_snapshots(&before, &same, "recreated objects", &mut findings);
    assert!(findings.failed.is_empty(), "{:#?}", findings.failed);

    exec(
        &client,
        "ALTER INDEX public.b_v_idx RENAME TO b_v_idx2;
         UPDATE public.a SET v = 'changed' WHERE id = 7;
         SELECT nextval('public.s');",
    )
    .await;
    let changed = snapshot(&db, &client, &[]).await;
    let diff = DumpDiff::new(&before.dump, &changed.dump);
    let (gone, new) = diff.flat_changes();
    assert!(
        gone.iter().any(|l| l.contains("b_v_idx ON public.b"))
            && new.iter().any(|l| l.contains("b_v_idx2 ON public.b")),
        "the renamed index is not in the diff:\n{}",
        diff.render()
    );
    compare_data(&before, &changed, "changed", &mut findings);
    let said = findings.failed.join("\n");
    assert!(
        findings.failed.len() == 2 && said.contains("public.a:") && said.contains("public.s:"),
        "expected a row and a sequence difference, got {said}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odd_identifiers_and_key_types() {
    let db = TestDb::new("carry_odd_identifiers").await;
    let client = db.client().await;
    let weird = QualifiedName::new("App", "Weird \"Name\" tbl");
    let text_keyed = QualifiedName::new("public", "text_keyed");
    let uuid_keyed = QualifiedName::new("public", "uuid_keyed");
    exec(
        &client,
        &format!(
            r#"
            CREATE SCHEMA "App";
            CREATE TABLE "App"."Weird ""Name"" tbl" (
                "Région" text NOT NULL,
                "select" int NOT NULL,
                "größe" numeric(10,2),
                "Mixed Case" text DEFAULT 'x',
                "naïve ""quoted"" col" jsonb,
                PRIMARY KEY ("Région", "select")
            );
            CREATE INDEX "idx größe ""q""" ON "App"."Weird ""Name"" tbl" ("größe");
            COMMENT ON COLUMN "App"."Weird ""Name"" tbl"."select" IS 'a reserved word';
            INSERT INTO "App"."Weird ""Name"" tbl"
            SELECT 'région ' || (g % 7), g, g * 1.5,
                   CASE WHEN g % 100 = 0 THEN {big} ELSE 'm' || g END,
                   jsonb_build_object('k', g, 'ü', repeat('ß', g % 5))
              FROM generate_series(1, 3000) g;

            CREATE TABLE public.text_keyed (code text PRIMARY KEY, body text);
            INSERT INTO public.text_keyed
            SELECT CASE g % 5 WHEN 0 THEN 'Key ' || g WHEN 1 THEN 'ключ-' || g
                              WHEN 2 THEN e'quote''s\\back ' || g WHEN 3 THEN ' ' || g
                              ELSE 'ä' || g END,
                   CASE WHEN g % 100 = 0 THEN {big} ELSE 'b' || g END
              FROM generate_series(1, 3000) g;
            INSERT INTO public.text_keyed VALUES ('', 'empty key');

            CREATE TABLE public.uuid_keyed (
                id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
                n int NOT NULL,
                payload text
            );
            INSERT INTO public.uuid_keyed
            SELECT md5(g::text)::uuid, g, CASE WHEN g % 100 = 0 THEN {big} END
              FROM generate_series(1, 3000) g;
            "#,
            big = big("g")
        ),
    )
    .await;
    for t in [&weird, &text_keyed, &uuid_keyed] {
        assert_toasted(&client, t).await;
    }
    let mut findings = Findings::default();
    let mut set_aside = Vec::new();
    for t in [&weird, &text_keyed, &uuid_keyed] {
        rewrite_unchanged(&db, &client, t, &mut set_aside, &mut findings).await;
    }
    findings.finish();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_and_fast_default_columns() {
    let db = TestDb::new("carry_dropped_columns").await;
    let client = db.client().await;
    let table = QualifiedName::new("public", "dropped");
    exec(
        &client,
        &format!(
            "CREATE TABLE public.dropped (
                 id int PRIMARY KEY, a text, gone1 int, b bigint, gone2 text, c text,
                 d int DEFAULT 7);
             INSERT INTO public.dropped
             SELECT g, 'a' || g, g, g * 10, {big}, CASE WHEN g % 50 = 0 THEN {big} END, g % 3
               FROM generate_series(1, 4000) g;
             CREATE INDEX dropped_c_idx ON public.dropped (c);
             ALTER TABLE public.dropped DROP COLUMN gone1, DROP COLUMN gone2;
             -- A column added later with a default: old rows take it from attmissingval.
             ALTER TABLE public.dropped ADD COLUMN e text NOT NULL DEFAULT 'added later';
             INSERT INTO public.dropped (id, a, b, c, d, e) VALUES (4001, 'new', 1, 'x', 1, 'own');",
            big = big("g")
        ),
    )
    .await;
    assert_toasted(&client, &table).await;
    let mut findings = Findings::default();
    rewrite_unchanged(&db, &client, &table, &mut Vec::new(), &mut findings).await;
    findings.finish();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn indexes_of_every_kind_keep_names_and_definitions() {
    let db = TestDb::new("carry_indexes").await;
    let client = db.client().await;
    let table = QualifiedName::new("public", "indexed");
    let btree_gist: bool = client
        .query_one(
            "SELECT count(*) > 0 FROM pg_catalog.pg_available_extensions \
              WHERE name = 'btree_gist'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    if btree_gist {
        exec(&client, "CREATE EXTENSION IF NOT EXISTS btree_gist").await;
    }
    exec(
        &client,
        &format!(
            r#"
            CREATE TABLE public.indexed (
                id int PRIMARY KEY,
                email text NOT NULL,
                name text,
                score int,
                created timestamp NOT NULL,
                doc jsonb,
                tags text[],
                body text,
                during int4range
            );
            INSERT INTO public.indexed
            SELECT g, 'User' || g || '@Example.com',
                   CASE WHEN g = 10 THEN NULL ELSE 'name ' || g END,
                   CASE WHEN g % 17 = 0 THEN NULL ELSE g % 300 END,
                   timestamp '2024-01-01' + g * interval '1 minute',
                   jsonb_build_object('g', g, 'even', g % 2 = 0),
                   ARRAY['t' || (g % 5), 't' || (g % 11)],
                   CASE WHEN g % 100 = 0 THEN {big} ELSE 'the quick brown fox ' || g END,
                   int4range(g, g + 10)
              FROM generate_series(1, 4000) g;
            CREATE UNIQUE INDEX indexed_email_lower_key ON public.indexed (lower(email));
            CREATE UNIQUE INDEX indexed_name_score_nnd_key ON public.indexed (name, score)
                NULLS NOT DISTINCT;
            CREATE INDEX indexed_high_score_idx ON public.indexed (score) WHERE score > 100;
            CREATE INDEX indexed_expr_idx ON public.indexed ((coalesce(name, '') || '/' || email));
            ALTER INDEX public.indexed_expr_idx ALTER COLUMN 1 SET STATISTICS 300;
            CREATE INDEX indexed_score_incl_idx ON public.indexed (score) INCLUDE (name, email);
            CREATE INDEX indexed_created_desc_idx ON public.indexed
                (created DESC NULLS LAST, score NULLS FIRST);
            CREATE INDEX indexed_name_pattern_idx ON public.indexed (name text_pattern_ops);
            CREATE INDEX indexed_name_c_idx ON public.indexed (name COLLATE "C");
            CREATE INDEX indexed_doc_gin_idx ON public.indexed USING gin (doc jsonb_path_ops);
            CREATE INDEX indexed_tags_gin_idx ON public.indexed USING gin (tags)
                WITH (fastupdate = off);
            CREATE INDEX indexed_body_fts_idx ON public.indexed
                USING gin (to_tsvector('simple', body));
            CREATE INDEX indexed_during_gist_idx ON public.indexed USING gist (during);
            CREATE INDEX indexed_created_brin_idx ON public.indexed USING brin (created)
                WITH (pages_per_range = 16);
            CREATE INDEX indexed_email_hash_idx ON public.indexed USING hash (email);
            CREATE INDEX indexed_name_ff_idx ON public.indexed (name) WITH (fillfactor = 70);
            -- Two indexes with the same definition: each must keep its own name.
            CREATE INDEX indexed_score_idx ON public.indexed (score);
            CREATE INDEX indexed_score_idx_dup ON public.indexed (score);
            CREATE INDEX "Indexed Mixed ""Case"" idx" ON public.indexed (score, id);
            COMMENT ON INDEX public.indexed_email_lower_key IS 'one account per address';
            COMMENT ON INDEX public.indexed_pkey IS 'the key';
            COMMENT ON INDEX public."Indexed Mixed ""Case"" idx" IS 'quoted';
            ALTER TABLE public.indexed CLUSTER ON indexed_score_incl_idx;
            "#,
            big = big("g")
        ),
    )
    .await;
    if btree_gist {
        exec(
            &client,
            "CREATE INDEX indexed_score_during_gist_idx ON public.indexed \
             USING gist (score, during)",
        )
        .await;
    }
    assert_toasted(&client, &table).await;
    let mut findings = Findings::default();
    rewrite_unchanged(&db, &client, &table, &mut Vec::new(), &mut findings).await;
    findings.finish();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn constraints_and_foreign_keys_both_ways() {
    let db = TestDb::new("carry_constraints").await;
    let client = db.client().await;
    let table = QualifiedName::new("public", "orders");
    exec(
        &client,
        &format!(
            "
            CREATE TABLE public.products (code text PRIMARY KEY);
            INSERT INTO public.products SELECT 'p' || g FROM generate_series(0, 49) g;
            CREATE TABLE public.orders (
                id int CONSTRAINT orders_pk_custom PRIMARY KEY,
                code text NOT NULL CONSTRAINT orders_code_fk REFERENCES public.products (code)
                    ON UPDATE CASCADE ON DELETE RESTRICT,
                ext_ref text CONSTRAINT orders_ext_ref_key UNIQUE,
                seq_no int,
                qty int NOT NULL CONSTRAINT orders_qty_positive CHECK (qty > 0),
                price numeric(10,2),
                during tstzrange,
                parent_id int CONSTRAINT orders_parent_fk REFERENCES public.orders (id)
                    ON DELETE SET NULL,
                legacy int,
                memo text,
                CONSTRAINT orders_seq_no_deferred UNIQUE (seq_no) DEFERRABLE INITIALLY DEFERRED,
                CONSTRAINT orders_price_check CHECK (price >= 0) NO INHERIT,
                CONSTRAINT orders_no_overlap EXCLUDE USING gist (during WITH &&)
            );
            INSERT INTO public.orders
            SELECT g, 'p' || (g % 50), 'ext-' || g, g, 1 + g % 9, (g % 100) * 1.25,
                   tstzrange(timestamptz '2024-01-01 00:00+00' + g * interval '1 hour',
                             timestamptz '2024-01-01 00:00+00' + (g + 1) * interval '1 hour'),
                   CASE WHEN g > 10 THEN g / 10 END,
                   CASE WHEN g % 500 = 0 THEN -1 ELSE g END,
                   CASE WHEN g % 100 = 0 THEN {big} END
              FROM generate_series(1, 3000) g;
            -- Rows violate it: it must stay NOT VALID (and not be validated by the tool).
            ALTER TABLE public.orders ADD CONSTRAINT orders_legacy_check
                CHECK (legacy IS NULL OR legacy > 0) NOT VALID;
            -- An outgoing foreign key that is NOT VALID stays so.
            CREATE TABLE public.regions (name text PRIMARY KEY);
            INSERT INTO public.regions VALUES ('north');
            ALTER TABLE public.orders ADD COLUMN region text;
            UPDATE public.orders SET region = CASE WHEN id % 2 = 0 THEN 'north' ELSE 'south' END
             WHERE id <= 20;
            ALTER TABLE public.orders ADD CONSTRAINT orders_region_fk FOREIGN KEY (region)
                REFERENCES public.regions (name) NOT VALID;
            COMMENT ON CONSTRAINT orders_qty_positive ON public.orders IS 'no empty orders';
            COMMENT ON CONSTRAINT orders_pk_custom ON public.orders IS 'the key';
            COMMENT ON CONSTRAINT orders_no_overlap ON public.orders IS 'one at a time';

            -- Incoming foreign keys: to the key, to a unique constraint, NOT VALID ones.
            CREATE TABLE public.order_lines (
                id int PRIMARY KEY,
                order_id int NOT NULL CONSTRAINT order_lines_order_fk
                    REFERENCES public.orders (id) ON DELETE CASCADE,
                n int);
            INSERT INTO public.order_lines SELECT g, 1 + g % 3000, g FROM generate_series(1, 5000) g;
            CREATE TABLE public.order_notes (
                id int PRIMARY KEY,
                order_ext text CONSTRAINT order_notes_ext_fk REFERENCES public.orders (ext_ref)
                    ON UPDATE CASCADE DEFERRABLE INITIALLY DEFERRED,
                note text);
            INSERT INTO public.order_notes SELECT g, 'ext-' || g, 'note' FROM generate_series(1, 500) g;
            CREATE TABLE public.order_archive (order_id int);
            INSERT INTO public.order_archive VALUES (1), (2), (999999);
            ALTER TABLE public.order_archive ADD CONSTRAINT order_archive_fk
                FOREIGN KEY (order_id) REFERENCES public.orders (id) MATCH FULL NOT VALID;
            COMMENT ON CONSTRAINT order_lines_order_fk ON public.order_lines IS 'lines of an order';
            ",
            big = big("g")
        ),
    )
    .await;
    assert_toasted(&client, &table).await;
    let mut findings = Findings::default();
    if !rewrite_unchanged(&db, &client, &table, &mut Vec::new(), &mut findings).await {
        findings.finish();
        return;
    }
    let old = old_table(&table);

    // Foreign keys of other tables point at the new table only.
    let to_old: Vec<String> = client
        .query(
            "SELECT conrelid::regclass::text || '.' || conname FROM pg_catalog.pg_constraint \
              WHERE contype = 'f' AND confrelid = $1::text::regclass \
                AND conrelid <> $1::text::regclass",
            &[&old.to_string()],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    findings.check(to_old.is_empty(), || {
        format!("foreign keys still reference the old table: {to_old:?}")
    });
    let incoming: Vec<String> = client
        .query(
            "SELECT conname || CASE WHEN convalidated THEN ' valid' ELSE ' NOT VALID' END \
               FROM pg_catalog.pg_constraint \
              WHERE contype = 'f' AND confrelid = 'public.orders'::regclass ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    findings.check(
        incoming
            == [
                "order_archive_fk NOT VALID",
                "order_lines_order_fk valid",
                "order_notes_ext_fk valid",
                "orders_parent_fk valid",
            ],
        || format!("foreign keys referencing public.orders after the swap: {incoming:?}"),
    );

    // The constraints act on the new table.
    let checks: [(&str, &str); 7] = [
        (
            "INSERT INTO public.order_lines VALUES (900001, 999999, 1)",
            "incoming foreign key order_lines_order_fk",
        ),
        (
            "INSERT INTO public.orders (id, code, qty) VALUES (900001, 'nope', 1)",
            "outgoing foreign key orders_code_fk",
        ),
        (
            "INSERT INTO public.orders (id, code, qty, parent_id) VALUES (900002, 'p1', 1, 999999)",
            "self-referencing foreign key orders_parent_fk",
        ),
        (
            "INSERT INTO public.orders (id, code, qty) VALUES (900003, 'p1', 0)",
            "check orders_qty_positive",
        ),
        (
            "INSERT INTO public.orders (id, code, qty, during) VALUES (900004, 'p1', 1, \
             tstzrange('2024-01-01 05:30+00', '2024-01-01 06:30+00'))",
            "exclusion orders_no_overlap",
        ),
        (
            "INSERT INTO public.orders (id, code, qty, ext_ref) VALUES (900005, 'p1', 1, 'ext-1')",
            "unique orders_ext_ref_key",
        ),
        (
            "INSERT INTO public.orders (id, code, qty, legacy) VALUES (900006, 'p1', 1, -5)",
            "NOT VALID check orders_legacy_check (still enforced for new rows)",
        ),
    ];
    for (sql, what) in checks {
        findings.check(try_sql(&client, sql).await.is_some(), || {
            format!("after the swap, {what} is not enforced: `{sql}` succeeded")
        });
    }
    // Deferrable unique: swapping two seq_no values statement by statement passes only when
    // checked at commit.
    let swapped = try_sql(
        &client,
        "BEGIN; UPDATE public.orders SET seq_no = 2 WHERE id = 1; \
         UPDATE public.orders SET seq_no = 1 WHERE id = 2; COMMIT;",
    )
    .await;
    findings.check(swapped.is_none(), || {
        format!("after the swap, orders_seq_no_deferred is not deferred: {swapped:?}")
    });
    // ON DELETE CASCADE from the new table reaches the lines (order 2900 has lines, no notes);
    // ON UPDATE CASCADE the notes.
    let deleted = try_sql(&client, "DELETE FROM public.orders WHERE id = 2900").await;
    findings.check(deleted.is_none(), || {
        format!("after the swap, deleting a referenced order failed: {deleted:?}")
    });
    let updated = try_sql(
        &client,
        "UPDATE public.orders SET ext_ref = 'ext-renamed' WHERE id = 8",
    )
    .await;
    findings.check(updated.is_none(), || {
        format!("after the swap, updating a referenced ext_ref failed: {updated:?}")
    });
    let lines_left = query_text(
        &client,
        "SELECT count(*)::text FROM public.order_lines WHERE order_id = 2900",
    )
    .await;
    findings.check(deleted.is_some() || lines_left == "0", || {
        format!("ON DELETE CASCADE from the new table left {lines_left} order_lines")
    });
    let note = query_text(
        &client,
        "SELECT coalesce(string_agg(order_ext, ','), '') FROM public.order_notes WHERE id = 8",
    )
    .await;
    findings.check(note == "ext-renamed", || {
        format!("ON UPDATE CASCADE from the new table: order_notes 8 holds {note:?}")
    });
    findings.finish();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn column_properties_and_sequences() {
    let db = TestDb::new("carry_columns").await;
    let client = db.client().await;
    let table = QualifiedName::new("public", "cols");
    let lz4: bool = client
        .query_one(
            "SELECT 'lz4' = ANY (enumvals) FROM pg_catalog.pg_settings \
              WHERE name = 'default_toast_compression'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let compression = if lz4 { "lz4" } else { "pglz" };
    exec(
        &client,
        &format!(
            r#"
            CREATE TYPE public.mood AS ENUM ('sad', 'ok', 'happy');
            CREATE DOMAIN public.posint AS int CONSTRAINT posint_check CHECK (VALUE > 0);
            CREATE TYPE public.pair AS (a int, b text);
            CREATE SEQUENCE public.shared_seq START 1000 INCREMENT 3;
            CREATE TABLE public.cols (
                id int GENERATED ALWAYS AS IDENTITY (START WITH 100 INCREMENT BY 5) PRIMARY KEY,
                alt_id bigint GENERATED BY DEFAULT AS IDENTITY
                    (START WITH 7 INCREMENT BY 2 MINVALUE 7 MAXVALUE 100000000 CACHE 1),
                ser serial,
                big bigserial,
                shared bigint NOT NULL DEFAULT nextval('public.shared_seq'),
                created timestamptz NOT NULL DEFAULT now(),
                label text COLLATE "C" NOT NULL DEFAULT 'none',
                blob text,
                packed text COMPRESSION {compression},
                stat_col int,
                nopt int,
                qty int NOT NULL DEFAULT 1,
                unit_price numeric(10,2) NOT NULL DEFAULT 0,
                total numeric(12,2) GENERATED ALWAYS AS (qty * unit_price) STORED,
                mood public.mood DEFAULT 'ok',
                pos public.posint,
                arr int[] DEFAULT '{{}}',
                grid text[] DEFAULT '{{{{a,b}},{{c,d}}}}',
                pr public.pair,
                prs public.pair[]
            );
            ALTER SEQUENCE public.shared_seq OWNED BY public.cols.shared;
            ALTER TABLE public.cols ALTER COLUMN blob SET STORAGE EXTERNAL;
            ALTER TABLE public.cols ALTER COLUMN stat_col SET STATISTICS 500;
            ALTER TABLE public.cols ALTER COLUMN nopt SET (n_distinct = 100);
            COMMENT ON COLUMN public.cols.total IS 'generated';
            CREATE TABLE public.cols_peer (
                id int PRIMARY KEY,
                shared bigint NOT NULL DEFAULT nextval('public.shared_seq')
            );
            INSERT INTO public.cols (created, label, blob, packed, stat_col, nopt, qty,
                                     unit_price, mood, pos, arr, pr, prs)
            SELECT timestamptz '2024-01-01 00:00+00' + g * interval '1 second',
                   'label ' || g,
                   CASE WHEN g % 100 = 0 THEN {big} ELSE 'blob' || g END,
                   CASE WHEN g % 100 = 0 THEN repeat('compressible ', 500) END,
                   g % 7, g % 100, 1 + g % 4, g % 10 + 0.5,
                   (ARRAY['sad', 'ok', 'happy'])[1 + g % 3]::public.mood,
                   1 + g % 50, ARRAY[g, g + 1],
                   ROW(g, 'pair ' || g)::public.pair,
                   ARRAY[ROW(g, 'x')::public.pair, ROW(-g, NULL)::public.pair]
              FROM generate_series(1, 3000) g;
            -- Some identity BY DEFAULT values set by hand.
            UPDATE public.cols SET alt_id = 1000000 + ser WHERE ser % 3 = 0;
            INSERT INTO public.cols_peer (id) SELECT g FROM generate_series(1, 100) g;
            INSERT INTO public.cols (label) VALUES ('defaults only');
            -- Positions that a restart or a fresh sequence would not reproduce.
            SELECT setval('public.cols_ser_seq', 5000, false);
            SELECT setval('public.cols_big_seq', 77777, true);
            "#,
            big = big("g")
        ),
    )
    .await;
    assert_toasted(&client, &table).await;
    let mut findings = Findings::default();
    let mut set_aside = Vec::new();
    if !rewrite_unchanged(&db, &client, &table, &mut set_aside, &mut findings).await {
        findings.finish();
        return;
    }

    // The next rows continue every sequence where the old table left it.
    let last_id = query_text(&client, "SELECT max(id)::text FROM public.cols").await;
    let shared_before = query_text(&client, "SELECT last_value::text FROM public.shared_seq").await;
    match client
        .query_one(
            "INSERT INTO public.cols (label) VALUES ('after swap') \
             RETURNING id::text, alt_id::text, ser::text, big::text, shared::text, total::text",
            &[],
        )
        .await
    {
        Err(e) => findings.fail(format!("inserting into the new table failed: {e:?}")),
        Ok(row) => {
            let got: Vec<String> = (0..6).map(|i| row.get(i)).collect();
            let last_id: i64 = last_id.parse().unwrap();
            let shared_before: i64 = shared_before.parse().unwrap();
            // Identity sequences continue SEQUENCE_RESERVE increments on (`swap::sequences`).
            let reserve = pg_hotswap::rewrite::swap::SEQUENCE_RESERVE;
            let expected = vec![
                (last_id + 5 + 5 * reserve).to_string(),
                // alt_id: 3001 defaults so far, from 7 by 2.
                (7 + 2 * 3001 + 2 * reserve).to_string(),
                "5000".to_string(),
                "77778".to_string(),
                (shared_before + 3).to_string(),
                "0.00".to_string(),
            ];
            findings.check(got == expected, || {
                format!(
                    "a row inserted after the swap got (id, alt_id, ser, big, shared, total) \
                     {got:?}, expected {expected:?}"
                )
            });
        }
    }
    let always = try_sql(
        &client,
        "INSERT INTO public.cols (id, label) VALUES (1, 'explicit id')",
    )
    .await;
    findings.check(always.is_some(), || {
        "id is no longer GENERATED ALWAYS: an explicit id was accepted".to_string()
    });

    // Sequences outlive the old table: dropping it keeps every sequence the new tables use.
    let old = old_table(&table);
    let dropped = try_sql(&client, &format!("DROP TABLE {old}")).await;
    findings.check(dropped.is_none(), || {
        format!(
            "DROP TABLE {} (the kept old table) failed: {dropped:?}",
            old.human()
        )
    });
    for seq in [
        "cols_ser_seq",
        "cols_big_seq",
        "shared_seq",
        "cols_id_seq",
        "cols_alt_id_seq",
    ] {
        let seq = QualifiedName::new("public", seq);
        findings.check(relation_exists(&client, &seq).await, || {
            format!(
                "sequence {} is gone after dropping the old table",
                seq.human()
            )
        });
    }
    let writes = try_sql(
        &client,
        "INSERT INTO public.cols (label) VALUES ('after drop'); \
         INSERT INTO public.cols_peer (id) VALUES (101);",
    )
    .await;
    findings.check(writes.is_none(), || {
        format!("inserting after dropping the old table failed: {writes:?}")
    });
    findings.finish();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owner_grants_rls_options_publications_statistics() {
    let db = TestDb::new("carry_table_props").await;
    let client = db.client().await;
    let (owner, reader, writer) = ("hs_carry_owner", "hs_carry_reader", "hs_carry_writer");
    ensure_roles(&client, &[owner, reader, writer]).await;
    let props = QualifiedName::new("public", "props");
    let props_ri = QualifiedName::new("public", "props_ri");
    let props_unlogged = QualifiedName::new("public", "props_unlogged");
    exec(
        &client,
        &format!(
            "
            CREATE TABLE public.props (
                id int PRIMARY KEY,
                tenant text NOT NULL DEFAULT current_user,
                secret text,
                val int NOT NULL
            ) WITH (fillfactor = 80, autovacuum_enabled = false,
                    autovacuum_vacuum_scale_factor = 0.01,
                    toast.autovacuum_enabled = false);
            INSERT INTO public.props
            SELECT g, CASE WHEN g % 2 = 0 THEN '{reader}' ELSE 'other' END,
                   CASE WHEN g % 100 = 0 THEN {big} ELSE 's' || g END, g % 40 - 5
              FROM generate_series(1, 3000) g;
            ALTER TABLE public.props OWNER TO {owner};
            GRANT SELECT, INSERT ON public.props TO {reader};
            GRANT SELECT (id, val), UPDATE (val) ON public.props TO {writer};
            GRANT DELETE ON public.props TO {writer} WITH GRANT OPTION;
            REVOKE TRUNCATE ON public.props FROM {owner};
            ALTER TABLE public.props ENABLE ROW LEVEL SECURITY;
            ALTER TABLE public.props FORCE ROW LEVEL SECURITY;
            CREATE POLICY props_tenant ON public.props
                USING (tenant = current_user) WITH CHECK (tenant = current_user);
            CREATE POLICY props_nonnegative ON public.props AS RESTRICTIVE FOR SELECT
                TO {reader} USING (val >= 0);
            COMMENT ON TABLE public.props IS 'props: a table comment';
            COMMENT ON COLUMN public.props.secret IS 'a column comment';
            ALTER TABLE public.props REPLICA IDENTITY FULL;
            CREATE STATISTICS public.props_stats (ndistinct, dependencies)
                ON tenant, val FROM public.props;
            ALTER STATISTICS public.props_stats SET STATISTICS 200;
            COMMENT ON STATISTICS public.props_stats IS 'correlated';
            CREATE STATISTICS public.props_expr_stats ON (val % 10), tenant FROM public.props;
            CREATE PUBLICATION hs_pub FOR TABLE public.props;
            CREATE PUBLICATION hs_pub_filtered FOR TABLE public.props (id, val) WHERE (val > 10)
                WITH (publish = 'insert');

            CREATE TABLE public.props_ri (id int PRIMARY KEY, code text NOT NULL, val int);
            INSERT INTO public.props_ri SELECT g, 'c' || g, g FROM generate_series(1, 2000) g;
            CREATE UNIQUE INDEX props_ri_code_key ON public.props_ri (code);
            ALTER TABLE public.props_ri REPLICA IDENTITY USING INDEX props_ri_code_key;
            CREATE PUBLICATION hs_pub_ri FOR TABLE public.props_ri, public.props;

            CREATE UNLOGGED TABLE public.props_unlogged (id int PRIMARY KEY, val text)
                WITH (autovacuum_enabled = false);
            INSERT INTO public.props_unlogged SELECT g, 'v' || g FROM generate_series(1, 2000) g;
            ",
            big = big("g")
        ),
    )
    .await;
    assert_toasted(&client, &props).await;
    // What the reader sees through RLS (superusers bypass it).
    let count_sql = "SELECT count(*)::text FROM public.props";
    let as_reader_before = query_as(&client, reader, count_sql).await;
    let mut findings = Findings::default();
    let mut set_aside = Vec::new();
    for t in [&props, &props_ri, &props_unlogged] {
        rewrite_unchanged(&db, &client, t, &mut set_aside, &mut findings).await;
    }
    let as_reader_after = query_as(&client, reader, count_sql).await;
    findings.check(as_reader_before == as_reader_after, || {
        format!(
            "{reader} sees different rows of public.props through RLS: \
             {as_reader_before:?} before, {as_reader_after:?} after"
        )
    });
    findings.finish();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dependent_views_are_recreated_exactly() {
    let db = TestDb::new("carry_views").await;
    let client = db.client().await;
    let (view_owner, view_reader) = ("hs_carry_view_owner", "hs_carry_view_reader");
    ensure_roles(&client, &[view_owner, view_reader]).await;
    let table = QualifiedName::new("public", "accounts");
    exec(
        &client,
        &format!(
            "
            CREATE TABLE public.accounts (
                id int PRIMARY KEY,
                owner text NOT NULL,
                balance numeric(12,2) NOT NULL DEFAULT 0,
                active bool NOT NULL DEFAULT true,
                note text);
            INSERT INTO public.accounts
            SELECT g, 'owner ' || (g % 37), (g % 300) * 10.5, g % 7 <> 0,
                   CASE WHEN g % 100 = 0 THEN {big} END
              FROM generate_series(1, 3000) g;
            CREATE TABLE public.branches (owner text PRIMARY KEY, city text);
            INSERT INTO public.branches SELECT 'owner ' || g, 'city ' || g FROM generate_series(0, 36) g;

            CREATE VIEW public.active_accounts AS
                SELECT id, owner, balance FROM public.accounts WHERE active;
            COMMENT ON VIEW public.active_accounts IS 'accounts in use';
            COMMENT ON COLUMN public.active_accounts.balance IS 'in cents';
            ALTER VIEW public.active_accounts ALTER COLUMN balance SET DEFAULT 0;
            GRANT SELECT ON public.active_accounts TO {view_reader};
            -- A view over a view.
            CREATE VIEW public.rich_accounts AS
                SELECT id, owner FROM public.active_accounts WHERE balance > 1000;
            GRANT SELECT (id) ON public.rich_accounts TO {view_reader};
            CREATE VIEW public.accounts_invoker WITH (security_invoker = true, security_barrier)
                AS SELECT * FROM public.accounts;
            CREATE VIEW public.accounts_checked AS
                SELECT id, owner, balance, active FROM public.accounts WHERE balance >= 0
                WITH CASCADED CHECK OPTION;
            GRANT INSERT, UPDATE ON public.accounts_checked TO {view_reader};
            CREATE VIEW public.account_totals AS
                SELECT a.owner, b.city, count(*) AS n, sum(a.balance) AS total
                  FROM public.accounts a LEFT JOIN public.branches b USING (owner)
                 GROUP BY a.owner, b.city;
            GRANT SELECT ON public.accounts, public.branches TO {view_owner};
            ALTER VIEW public.account_totals OWNER TO {view_owner};
            -- An INSTEAD OF trigger lives on the view.
            CREATE FUNCTION public.rich_accounts_insert() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                INSERT INTO public.accounts (id, owner, balance) VALUES (NEW.id, NEW.owner, 5000);
                RETURN NEW;
            END $$;
            CREATE TRIGGER rich_accounts_insert INSTEAD OF INSERT ON public.rich_accounts
                FOR EACH ROW EXECUTE FUNCTION public.rich_accounts_insert();
            ",
            big = big("g")
        ),
    )
    .await;
    assert_toasted(&client, &table).await;
    let mut findings = Findings::default();
    if !rewrite_unchanged(&db, &client, &table, &mut Vec::new(), &mut findings).await {
        findings.finish();
        return;
    }
    // The views read and write the new table.
    let via_trigger = try_sql(
        &client,
        "INSERT INTO public.rich_accounts (id, owner) VALUES (100001, 'via view')",
    )
    .await;
    findings.check(via_trigger.is_none(), || {
        format!("after the swap, the INSTEAD OF trigger on rich_accounts is gone: {via_trigger:?}")
    });
    let seen = query_text(
        &client,
        "SELECT (SELECT count(*) FROM public.accounts WHERE id = 100001)::text || ',' || \
                (SELECT count(*) FROM public.rich_accounts WHERE id = 100001)::text || ',' || \
                (SELECT count(*) FROM public.accounts_invoker WHERE id = 100001)::text",
    )
    .await;
    findings.check(seen == "1,1,1", || {
        format!(
            "a row written after the swap is seen by accounts / rich_accounts / \
             accounts_invoker as {seen} (expected 1,1,1)"
        )
    });
    let check_option = try_sql(
        &client,
        "INSERT INTO public.accounts_checked (id, owner, balance) VALUES (100002, 'x', -1)",
    )
    .await;
    findings.check(check_option.is_some(), || {
        "after the swap, accounts_checked no longer enforces its CHECK OPTION".to_string()
    });
    let as_reader = query_as(
        &client,
        view_reader,
        "SELECT count(*)::text FROM public.active_accounts",
    )
    .await;
    findings.check(as_reader.is_ok(), || {
        format!("after the swap, {view_reader} cannot read active_accounts: {as_reader:?}")
    });
    findings.finish();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn materialized_view_is_refused_cleanly_or_carried_over() {
    let db = TestDb::new("carry_matview").await;
    let client = db.client().await;
    let table = QualifiedName::new("public", "metrics");
    exec(
        &client,
        "CREATE TABLE public.metrics (id int PRIMARY KEY, k text NOT NULL, v int NOT NULL);
         INSERT INTO public.metrics SELECT g, 'k' || (g % 10), g FROM generate_series(1, 3000) g;
         CREATE MATERIALIZED VIEW public.metrics_by_k AS
             SELECT k, sum(v) AS total, count(*) AS n FROM public.metrics GROUP BY k;
         CREATE UNIQUE INDEX metrics_by_k_key ON public.metrics_by_k (k);
         COMMENT ON MATERIALIZED VIEW public.metrics_by_k IS 'per key';",
    )
    .await;
    let mut findings = Findings::default();
    let before = snapshot(&db, &client, &[]).await;
    let out = run_tool(&db, &table, None).await;
    match out.status.code() {
        Some(3) => {
            let said = all_output(&out).to_lowercase();
            findings.check(
                said.contains("materialized view") && said.contains("metrics_by_k"),
                || {
                    format!(
                        "the refusal does not name the materialized view metrics_by_k\n{}",
                        describe(&out)
                    )
                },
            );
            let after = snapshot(&db, &client, &[]).await;
            compare_snapshots(
                &before,
                &after,
                "refused run on public.metrics",
                &mut findings,
            );
            let left = leftovers(&client, &table).await;
            findings.check(left.is_empty(), || format!("left behind: {left:#?}"));
            let runs = recorded_runs(&client).await;
            findings.check(runs == 0, || {
                format!("a refused run was recorded in {STATE_SCHEMA}.runs ({runs} runs)")
            });
        }
        Some(0) => {
            let old = old_table(&table);
            findings.check(relation_exists(&client, &old).await, || {
                format!("the old table is not kept as {}", old.human())
            });
            let after = snapshot(&db, &client, std::slice::from_ref(&old)).await;
            compare_snapshots(&before, &after, "rewrite of public.metrics", &mut findings);
            let left = leftovers(&client, &table).await;
            findings.check(left.is_empty(), || format!("left behind: {left:#?}"));
            // The materialized view now reads the new table.
            let refreshed = try_sql(
                &client,
                "INSERT INTO public.metrics VALUES (100001, 'k-new', 1); \
                 REFRESH MATERIALIZED VIEW CONCURRENTLY public.metrics_by_k;",
            )
            .await;
            let n = query_text(
                &client,
                "SELECT count(*)::text FROM public.metrics_by_k WHERE k = 'k-new'",
            )
            .await;
            findings.check(refreshed.is_none() && n == "1", || {
                format!(
                    "after the swap, the materialized view does not see a new row \
                     (refresh: {refreshed:?}, rows: {n})"
                )
            });
        }
        _ => findings.fail(format!(
            "expected a clean refusal (exit 3) or success (exit 0)\n{}",
            describe(&out)
        )),
    }
    findings.finish();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_triggers_do_not_fire_for_copied_rows_and_fire_after_the_swap() {
    let db = TestDb::new("carry_triggers").await;
    let client = db.client().await;
    let table = QualifiedName::new("public", "audited");
    exec(
        &client,
        &format!(
            "
            CREATE TABLE public.audited (
                id int PRIMARY KEY, val int NOT NULL, body text, updated_at timestamptz);
            CREATE TABLE public.audit_log (
                n bigserial PRIMARY KEY, trigger_name text NOT NULL, op text NOT NULL,
                row_id int);
            CREATE FUNCTION public.audit_row() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                INSERT INTO public.audit_log (trigger_name, op, row_id)
                VALUES (TG_NAME, TG_OP, CASE WHEN TG_OP = 'DELETE' THEN OLD.id ELSE NEW.id END);
                RETURN NULL;
            END $$;
            CREATE FUNCTION public.audit_statement() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                INSERT INTO public.audit_log (trigger_name, op, row_id)
                SELECT TG_NAME, TG_OP, count(*) FROM gone;
                RETURN NULL;
            END $$;
            CREATE FUNCTION public.touch() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN NEW.updated_at := clock_timestamp(); RETURN NEW; END $$;
            CREATE FUNCTION public.refuse_write() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN RAISE EXCEPTION 'trigger % fired', TG_NAME; END $$;

            CREATE TRIGGER audited_audit AFTER INSERT ON public.audited
                FOR EACH ROW EXECUTE FUNCTION public.audit_row('with', 'it''s args');
            CREATE TRIGGER audited_touch BEFORE INSERT OR UPDATE ON public.audited
                FOR EACH ROW EXECUTE FUNCTION public.touch();
            CREATE TRIGGER audited_val_changed AFTER UPDATE OF val ON public.audited
                FOR EACH ROW WHEN (OLD.val IS DISTINCT FROM NEW.val)
                EXECUTE FUNCTION public.audit_row();
            CREATE TRIGGER audited_deleted AFTER DELETE ON public.audited
                REFERENCING OLD TABLE AS gone
                FOR EACH STATEMENT EXECUTE FUNCTION public.audit_statement();
            CREATE CONSTRAINT TRIGGER audited_deferred AFTER INSERT ON public.audited
                DEFERRABLE INITIALLY DEFERRED
                FOR EACH ROW EXECUTE FUNCTION public.audit_row();
            CREATE TRIGGER audited_always AFTER INSERT ON public.audited
                FOR EACH ROW EXECUTE FUNCTION public.audit_row();
            ALTER TABLE public.audited ENABLE ALWAYS TRIGGER audited_always;
            CREATE TRIGGER audited_disabled BEFORE INSERT OR UPDATE OR DELETE ON public.audited
                FOR EACH ROW EXECUTE FUNCTION public.refuse_write();
            ALTER TABLE public.audited DISABLE TRIGGER audited_disabled;
            CREATE TRIGGER audited_replica BEFORE INSERT OR UPDATE OR DELETE ON public.audited
                FOR EACH ROW EXECUTE FUNCTION public.refuse_write();
            ALTER TABLE public.audited ENABLE REPLICA TRIGGER audited_replica;
            COMMENT ON TRIGGER audited_audit ON public.audited IS 'who wrote what';

            INSERT INTO public.audited (id, val, body)
            SELECT g, g % 100, CASE WHEN g % 100 = 0 THEN {big} ELSE 'b' || g END
              FROM generate_series(1, 3000) g;
            UPDATE public.audited SET val = val + 1 WHERE id <= 10;
            DELETE FROM public.audited WHERE id = 3000;
            ",
            big = big("g")
        ),
    )
    .await;
    assert_toasted(&client, &table).await;
    let audit_rows = "SELECT count(*)::text FROM public.audit_log";
    let logged_before = query_text(&client, audit_rows).await;
    let max_before = query_text(&client, "SELECT max(n)::text FROM public.audit_log").await;
    assert_eq!(
        logged_before, "9011",
        "fixture: 3 x 3000 inserts, 10 updates, 1 delete"
    );

    let mut findings = Findings::default();
    // The data comparison covers the audit table too (and `updated_at`, which `audited_touch`
    // would overwrite if it fired for copied rows); say it plainly here as well.
    let ok = rewrite_unchanged(&db, &client, &table, &mut Vec::new(), &mut findings).await;
    let logged_after = query_text(&client, audit_rows).await;
    findings.check(logged_after == logged_before, || {
        format!(
            "the audit table got rows during the run: {logged_before} rows before, \
             {logged_after} after"
        )
    });
    let during = client
        .query(
            "SELECT trigger_name || ' ' || op || ' x' || count(*) FROM public.audit_log \
              WHERE n > $1::text::bigint GROUP BY trigger_name, op ORDER BY 1",
            &[&max_before],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect::<Vec<_>>();
    findings.check(during.is_empty(), || {
        format!("audit rows written during the run, by trigger: {during:?}")
    });
    if !ok {
        findings.finish();
        return;
    }

    // After the swap every enabled trigger fires once per write, the disabled and the replica
    // one never (they would raise).
    let max_mid = query_text(
        &client,
        "SELECT coalesce(max(n), 0)::text FROM public.audit_log",
    )
    .await;
    let writes = try_sql(
        &client,
        "INSERT INTO public.audited (id, val) VALUES (100001, 1); \
         UPDATE public.audited SET val = 2 WHERE id = 100001; \
         UPDATE public.audited SET body = 'same val' WHERE id = 100001; \
         DELETE FROM public.audited WHERE id = 100001;",
    )
    .await;
    findings.check(writes.is_none(), || {
        format!("writes after the swap failed: {writes:?}")
    });
    let fired: Vec<String> = client
        .query(
            "SELECT trigger_name || ' ' || op FROM public.audit_log \
              WHERE n > $1::text::bigint ORDER BY 1",
            &[&max_mid],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let expected = [
        "audited_always INSERT",
        "audited_audit INSERT",
        "audited_deferred INSERT",
        "audited_deleted DELETE",
        "audited_val_changed UPDATE",
    ];
    findings.check(fired == expected, || {
        format!("triggers fired for writes after the swap: {fired:?}, expected {expected:?}")
    });
    let touched = try_sql(
        &client,
        "INSERT INTO public.audited (id, val) VALUES (100002, 1); \
         DO $$ BEGIN IF (SELECT updated_at FROM public.audited WHERE id = 100002) IS NULL \
         THEN RAISE EXCEPTION 'updated_at not set'; END IF; END $$;",
    )
    .await;
    findings.check(touched.is_none(), || {
        format!("the BEFORE trigger audited_touch does not fire after the swap: {touched:?}")
    });
    findings.finish();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitions_and_inheritance_tables_are_refused_cleanly() {
    let db = TestDb::new("carry_partitioned").await;
    let client = db.client().await;
    exec(
        &client,
        "CREATE TABLE public.events (id int NOT NULL, at date NOT NULL, what text,
             PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
         CREATE TABLE public.events_2024 PARTITION OF public.events
             FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
         CREATE TABLE public.events_2025 PARTITION OF public.events
             FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
         INSERT INTO public.events
         SELECT g, date '2024-01-01' + (g % 700), 'e' || g FROM generate_series(1, 3000) g;
         CREATE TABLE public.base (id int PRIMARY KEY, v int);
         CREATE TABLE public.derived (extra text) INHERITS (public.base);
         ALTER TABLE public.derived ADD PRIMARY KEY (id);
         INSERT INTO public.base SELECT g, g FROM generate_series(1, 1000) g;
         INSERT INTO public.derived SELECT g, g, 'x' FROM generate_series(1001, 2000) g;",
    )
    .await;
    let mut findings = Findings::default();
    // A partitioned table is rewritten as a whole tree (issue 15,
    // `a_partition_tree_keeps_everything_attached`), a partition on its own and attached back
    // (`one_partition_keeps_everything_attached`); what it refuses:
    // `one_partition_refusals_leave_nothing_behind`.
    for (name, reasons) in [("base", &["inherit"][..]), ("derived", &["inherit"][..])] {
        let table = QualifiedName::new("public", name);
        assert_refused(&db, &client, &table, reasons, &mut findings).await;
    }
    findings.finish();
}

/// Issue 15: a partitioned table rewritten as a whole tree keeps everything attached to the tree
/// and to each partition: sub-partitions and the default partition with their bounds, owners,
/// privileges (the table's and a partition's own), row security and its policies, comments,
/// per-partition storage options, indexes by name, a trigger, extended statistics, a view, an
/// incoming foreign key and a publication.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_tree_keeps_everything_attached() {
    let db = TestDb::new("carry_tree").await;
    let client = db.client().await;
    let (owner, reader) = ("hs_tree_owner", "hs_tree_reader");
    ensure_roles(&client, &[owner, reader]).await;
    exec(
        &client,
        &format!(
            "
            CREATE TABLE public.events (id int NOT NULL, at date NOT NULL, kind text NOT NULL,
                what text, PRIMARY KEY (id, at, kind)) PARTITION BY RANGE (at);
            CREATE TABLE public.events_2024 PARTITION OF public.events
                FOR VALUES FROM ('2024-01-01') TO ('2025-01-01') WITH (fillfactor = 70);
            CREATE TABLE public.events_2025 PARTITION OF public.events
                FOR VALUES FROM ('2025-01-01') TO ('2026-01-01') PARTITION BY LIST (kind);
            CREATE TABLE public.events_2025_a PARTITION OF public.events_2025 FOR VALUES IN ('a');
            CREATE TABLE public.events_2025_rest PARTITION OF public.events_2025 DEFAULT
                WITH (autovacuum_vacuum_scale_factor = 0.02);
            CREATE TABLE public.events_other PARTITION OF public.events DEFAULT;
            CREATE INDEX events_kind_idx ON public.events (kind, at);
            CREATE UNIQUE INDEX events_id_at_kind_key ON public.events (at, id, kind);
            INSERT INTO public.events
            SELECT g, date '2024-01-01' + (g % 900), CASE WHEN g % 3 = 0 THEN 'a' ELSE 'b' END,
                   'e' || g FROM generate_series(1, 3000) g;
            ALTER TABLE public.events OWNER TO {owner};
            ALTER TABLE public.events_2024 OWNER TO {owner};
            GRANT SELECT ON public.events TO {reader};
            GRANT SELECT, UPDATE (what) ON public.events_2024 TO {reader};
            ALTER TABLE public.events ENABLE ROW LEVEL SECURITY;
            CREATE POLICY events_kind ON public.events USING (kind = 'a');
            COMMENT ON TABLE public.events IS 'all events';
            COMMENT ON TABLE public.events_2025_a IS 'kind a of 2025';
            COMMENT ON COLUMN public.events.what IS 'what happened';
            CREATE FUNCTION public.events_touch() RETURNS trigger LANGUAGE plpgsql
                AS $$BEGIN NEW.what := coalesce(NEW.what, 'none'); RETURN NEW; END$$;
            CREATE TRIGGER events_touch BEFORE INSERT ON public.events
                FOR EACH ROW EXECUTE FUNCTION public.events_touch();
            CREATE STATISTICS public.events_stats (dependencies) ON kind, at FROM public.events;
            CREATE VIEW public.events_a AS SELECT id, at FROM public.events WHERE kind = 'a';
            CREATE TABLE public.event_notes (id int PRIMARY KEY, event_id int, event_at date,
                event_kind text, FOREIGN KEY (event_id, event_at, event_kind)
                REFERENCES public.events (id, at, kind));
            INSERT INTO public.event_notes
            SELECT g, g, date '2024-01-01' + (g % 900), CASE WHEN g % 3 = 0 THEN 'a' ELSE 'b' END
              FROM generate_series(1, 500) g;
            CREATE PUBLICATION hs_tree_pub FOR TABLE public.events;
            "
        ),
    )
    .await;
    let table = QualifiedName::new("public", "events");
    let mut findings = Findings::default();
    // The old tree: its partitions are renamed out of the way with it.
    let mut set_aside: Vec<QualifiedName> = [
        "events_2024_old",
        "events_2025_old",
        "events_2025_a_old",
        "events_2025_rest_old",
        "events_other_old",
    ]
    .iter()
    .map(|n| QualifiedName::new("public", *n))
    .collect();
    rewrite_unchanged(&db, &client, &table, &mut set_aside, &mut findings).await;
    findings.finish();
}

/// Issue 15: one partition rewritten on its own is attached back and keeps everything: its
/// bound, owner, privileges, comment, storage options, own index, check constraint, trigger,
/// row security policy, publication membership and an incoming foreign key of its own; the
/// parent's indexes stay attached to its indexes and the parent's trigger is cloned onto it
/// once. A leaf two levels down (under a sub-partitioned partition) and the default partition
/// too, one after the other: `pg_dump` is identical after each, but for the old partition,
/// kept as a plain table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_partition_keeps_everything_attached() {
    let db = TestDb::new("carry_one_part").await;
    let client = db.client().await;
    let (owner, reader) = ("hs_part_owner", "hs_part_reader");
    ensure_roles(&client, &[owner, reader]).await;
    exec(
        &client,
        &format!(
            "
            CREATE TABLE public.events (id int NOT NULL, at date NOT NULL, kind text NOT NULL,
                what text, CHECK (id > 0), PRIMARY KEY (id, at, kind)) PARTITION BY RANGE (at);
            CREATE TABLE public.events_2024 PARTITION OF public.events
                FOR VALUES FROM ('2024-01-01') TO ('2025-01-01') WITH (fillfactor = 70);
            CREATE TABLE public.events_2025 PARTITION OF public.events
                FOR VALUES FROM ('2025-01-01') TO ('2026-01-01') PARTITION BY LIST (kind);
            CREATE TABLE public.events_2025_a PARTITION OF public.events_2025 FOR VALUES IN ('a');
            CREATE TABLE public.events_2025_rest PARTITION OF public.events_2025 DEFAULT;
            CREATE TABLE public.events_other PARTITION OF public.events DEFAULT
                WITH (autovacuum_vacuum_scale_factor = 0.02);
            CREATE INDEX events_kind_idx ON public.events (kind, at);
            INSERT INTO public.events
            SELECT g, date '2024-01-01' + (g % 900), CASE WHEN g % 3 = 0 THEN 'a' ELSE 'b' END,
                   'e' || g FROM generate_series(1, 3000) g;
            ALTER TABLE public.events OWNER TO {owner};
            ALTER TABLE public.events_2024 OWNER TO {owner};
            GRANT SELECT ON public.events TO {reader};
            GRANT SELECT, UPDATE (what) ON public.events_2024 TO {reader};
            CREATE INDEX events_2024_what_idx ON public.events_2024 (what);
            ALTER TABLE public.events_2024 ADD CONSTRAINT events_2024_what_check
                CHECK (what <> '');
            ALTER TABLE public.events_2024 ENABLE ROW LEVEL SECURITY;
            CREATE POLICY events_2024_a ON public.events_2024 USING (kind = 'a');
            COMMENT ON TABLE public.events_2024 IS 'the year 2024';
            COMMENT ON TABLE public.events_2025_a IS 'kind a of 2025';
            COMMENT ON COLUMN public.events.what IS 'what happened';
            CREATE FUNCTION public.events_touch() RETURNS trigger LANGUAGE plpgsql
                AS $$BEGIN NEW.what := coalesce(NEW.what, 'none'); RETURN NEW; END$$;
            CREATE TRIGGER events_touch BEFORE INSERT ON public.events
                FOR EACH ROW EXECUTE FUNCTION public.events_touch();
            CREATE TRIGGER events_2024_touch BEFORE UPDATE ON public.events_2024
                FOR EACH ROW EXECUTE FUNCTION public.events_touch();
            CREATE TABLE public.notes_2024 (id int PRIMARY KEY, event_id int, event_at date,
                event_kind text, FOREIGN KEY (event_id, event_at, event_kind)
                REFERENCES public.events_2024 (id, at, kind));
            INSERT INTO public.notes_2024
            SELECT g, g, date '2024-01-01' + (g % 900), CASE WHEN g % 3 = 0 THEN 'a' ELSE 'b' END
              FROM generate_series(1, 900) g WHERE g % 900 < 366;
            CREATE PUBLICATION hs_part_pub FOR TABLE public.events_2024;
            "
        ),
    )
    .await;
    let mut findings = Findings::default();
    let mut set_aside = Vec::new();
    for name in ["events_2024", "events_2025_a", "events_other"] {
        let table = QualifiedName::new("public", name);
        if !rewrite_unchanged(&db, &client, &table, &mut set_aside, &mut findings).await {
            continue;
        }
        let old = old_table(&table);
        let attached: bool = client
            .query_one(
                "SELECT NOT o.relispartition AND n.relispartition \
                   FROM pg_class o, pg_class n WHERE o.oid = $1::text::regclass \
                    AND n.oid = $2::text::regclass",
                &[&old.to_string(), &table.to_string()],
            )
            .await
            .expect("reading relispartition")
            .get(0);
        findings.check(attached, || {
            format!("{name}: the new table is not the partition, or the old one still is")
        });
    }
    let rows: i64 = client
        .query_one("SELECT count(*) FROM public.events", &[])
        .await
        .expect("counting rows")
        .get(0);
    findings.check(rows == 3000, || {
        format!("the partitioned table holds {rows} rows, not 3000")
    });
    findings.finish();
}

/// Issue 15: what a single-partition rewrite refuses, at preflight, changing nothing: a
/// partition partitioned in turn, a partition of a table that foreign keys reference (detaching
/// it checks every referencing row under the lock), a partition of a table with foreign keys of
/// its own (ATTACH validates them over the whole new partition under the lock), and
/// `--partition-by`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_partition_refusals_leave_nothing_behind() {
    let db = TestDb::new("carry_one_part_refused").await;
    let client = db.client().await;
    exec(
        &client,
        "CREATE TABLE public.events (id int NOT NULL, at date NOT NULL, kind text NOT NULL,
             PRIMARY KEY (id, at, kind)) PARTITION BY RANGE (at);
         CREATE TABLE public.events_2024 PARTITION OF public.events
             FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
         CREATE TABLE public.events_2025 PARTITION OF public.events
             FOR VALUES FROM ('2025-01-01') TO ('2026-01-01') PARTITION BY LIST (kind);
         CREATE TABLE public.events_2025_a PARTITION OF public.events_2025 FOR VALUES IN ('a');
         INSERT INTO public.events SELECT g, date '2024-01-01' + (g % 500), 'a'
           FROM generate_series(1, 1000) g;
         CREATE TABLE public.event_refs (id int PRIMARY KEY, e int, at date, kind text,
             FOREIGN KEY (e, at, kind) REFERENCES public.events (id, at, kind));
         CREATE TABLE public.kinds (kind text PRIMARY KEY);
         INSERT INTO public.kinds VALUES ('a');
         CREATE TABLE public.orders (id int NOT NULL, at date NOT NULL, kind text NOT NULL
             REFERENCES public.kinds, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
         CREATE TABLE public.orders_2024 PARTITION OF public.orders
             FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
         INSERT INTO public.orders SELECT g, date '2024-01-01' + (g % 300), 'a'
           FROM generate_series(1, 1000) g;
         CREATE TABLE public.plain_parts (id int PRIMARY KEY) PARTITION BY RANGE (id);
         CREATE TABLE public.plain_parts_1 PARTITION OF public.plain_parts
             FOR VALUES FROM (0) TO (1000000);
         INSERT INTO public.plain_parts SELECT generate_series(1, 1000);",
    )
    .await;
    let mut findings = Findings::default();
    for (name, reasons) in [
        ("events_2025", &["partitioned in turn"][..]),
        (
            "events_2024",
            &["foreign keys reference its partitioned parent"][..],
        ),
        (
            "events_2025_a",
            &["foreign keys reference its partitioned parent"][..],
        ),
        (
            "orders_2024",
            &["its partitioned parent has foreign keys"][..],
        ),
    ] {
        let table = QualifiedName::new("public", name);
        assert_refused(&db, &client, &table, reasons, &mut findings).await;
    }
    // --partition-by: refused when the shadow is tried, before anything is created.
    // (`--revertible` works on a partition since session 7: partition_trees.rs.)
    let before = snapshot(&db, &client, &[]).await;
    let out = hotswap_async(&[
        "run",
        "--dsn",
        &db.conninfo,
        "--table",
        "public.plain_parts_1",
        "--partition-by",
        "HASH (id)",
        "--partition",
        "pp0 FOR VALUES WITH (MODULUS 1, REMAINDER 0)",
    ])
    .await;
    let said = all_output(&out);
    findings.check(
        out.status.code() == Some(3) && said.contains("--partition-by"),
        || {
            format!(
                "--partition-by on a partition: expected a refusal (exit 3)\n{}",
                describe(&out)
            )
        },
    );
    let after = snapshot(&db, &client, &[]).await;
    compare_snapshots(
        &before,
        &after,
        "run --partition-by on plain_parts_1",
        &mut findings,
    );
    let table = QualifiedName::new("public", "plain_parts_1");
    let left = leftovers(&client, &table).await;
    findings.check(left.is_empty(), || {
        format!("--partition-by: left behind: {left:#?}")
    });
    findings.finish();
}

/// The table an `--alter` test rewrites, with an index, an incoming foreign key and a view.
async fn alter_fixture(client: &Client) {
    exec(
        client,
        &format!(
            "CREATE TABLE public.widgets (id int PRIMARY KEY, val int NOT NULL, note text);
             INSERT INTO public.widgets
             SELECT g, g % 10, CASE WHEN g % 100 = 0 THEN {big} ELSE 'n' || g END
               FROM generate_series(1, 3000) g;
             CREATE INDEX widgets_val_idx ON public.widgets (val);
             COMMENT ON TABLE public.widgets IS 'widgets';
             CREATE TABLE public.widget_parts (
                 id int PRIMARY KEY,
                 widget_id int NOT NULL REFERENCES public.widgets (id));
             INSERT INTO public.widget_parts SELECT g, g FROM generate_series(1, 1000) g;
             CREATE VIEW public.widget_view AS SELECT id, val FROM public.widgets WHERE val > 2;",
            big = big("g")
        ),
    )
    .await;
}

/// Runs `--alter alter` on `public.widgets` and checks the dump differs by exactly the `-`
/// lines `gone` and the `+` lines `new` (trailing commas ignored), and that nothing else moved.
async fn alter_changes_only(
    test: &str,
    alter: &str,
    gone: &[&str],
    new: &[&str],
    widgets_rows: &str,
) -> (TestDb, Client, Findings) {
    let db = TestDb::new(test).await;
    let client = db.client().await;
    alter_fixture(&client).await;
    let table = QualifiedName::new("public", "widgets");
    let mut findings = Findings::default();
    let before = snapshot(&db, &client, &[]).await;
    let rows_before = query_text(&client, widgets_rows).await;
    let out = run_tool(&db, &table, Some(alter)).await;
    if out.status.code() != Some(0) {
        findings.fail(format!(
            "--alter {alter:?}: the run failed\n{}",
            describe(&out)
        ));
        return (db, client, findings);
    }
    let old = old_table(&table);
    findings.check(relation_exists(&client, &old).await, || {
        format!("the old table is not kept as {}", old.human())
    });
    let mut after = snapshot(&db, &client, std::slice::from_ref(&old)).await;
    let diff = DumpDiff::new(&before.dump, &after.dump);
    let (got_gone, got_new) = diff.flat_changes();
    findings.check(got_gone == gone && got_new == new, || {
        format!(
            "--alter {alter:?}: pg_dump differs by more or less than the ALTER says \
             (expected - {gone:?} + {new:?}):\n{}",
            diff.render()
        )
    });
    let rows_after = query_text(&client, widgets_rows).await;
    findings.check(rows_after == rows_before, || {
        format!("--alter {alter:?}: public.widgets rows differ: {rows_before} -> {rows_after}")
    });
    // Every other relation is unchanged; widgets itself is compared through `widgets_rows`.
    let mut before_rest = Snapshot {
        dump: Vec::new(),
        data: before.data.clone(),
        sequences: before.sequences.clone(),
        identity_next: before.identity_next.clone(),
    };
    before_rest.data.remove("public.widgets");
    after.data.remove("public.widgets");
    compare_data(
        &before_rest,
        &after,
        &format!("--alter {alter:?}"),
        &mut findings,
    );
    let left = leftovers(&client, &table).await;
    findings.check(left.is_empty(), || format!("left behind: {left:#?}"));
    (db, client, findings)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alter_column_type_changes_only_that_column() {
    let (_db, client, mut findings) = alter_changes_only(
        "carry_alter_type",
        "ALTER COLUMN id TYPE bigint",
        &["    id integer NOT NULL"],
        &["    id bigint NOT NULL"],
        "SELECT count(*)::text || ' ' || \
                md5(string_agg((id, val, note)::text, '|' ORDER BY id)) FROM public.widgets",
    )
    .await;
    let fk = try_sql(
        &client,
        "INSERT INTO public.widget_parts VALUES (5001, 999999)",
    )
    .await;
    findings.check(fk.is_some(), || {
        "after the swap, widget_parts' foreign key is not enforced".to_string()
    });
    findings.finish();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alter_add_column_changes_only_that_column() {
    let (_db, client, mut findings) = alter_changes_only(
        "carry_alter_add_column",
        "ADD COLUMN extra int DEFAULT 0",
        &[],
        &["    extra integer DEFAULT 0"],
        "SELECT count(*)::text || ' ' || \
                md5(string_agg((id, val, note)::text, '|' ORDER BY id)) FROM public.widgets",
    )
    .await;
    if relation_exists(&client, &QualifiedName::new("public", "widgets_old")).await {
        let extra = try_sql(
            &client,
            "DO $$ BEGIN IF EXISTS (SELECT FROM public.widgets WHERE extra IS DISTINCT FROM 0) \
             THEN RAISE EXCEPTION 'extra is not 0 everywhere'; END IF; END $$",
        )
        .await;
        findings.check(extra.is_none(), || format!("the new column: {extra:?}"));
    }
    findings.finish();
}

/// Objects bound to the table in ways a rename does not follow: a column of the table's row type
/// elsewhere, a rule on the table, a function whose SQL-standard body names the table. Each must
/// be refused at preflight (exit 3) with nothing changed, or carried over exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_bound_to_the_table_are_refused_or_carried_over() {
    let cases: [(&str, &str); 3] = [
        (
            "carry_bound_rowtype",
            "CREATE TABLE public.snapshots (id int PRIMARY KEY, item public.items);
             INSERT INTO public.snapshots SELECT i.id, i FROM public.items i WHERE i.id <= 10;",
        ),
        (
            "carry_bound_rule",
            "CREATE TABLE public.items_deleted (id int);
             CREATE RULE items_keep_deleted AS ON DELETE TO public.items
                 DO ALSO INSERT INTO public.items_deleted VALUES (OLD.id);",
        ),
        (
            "carry_bound_function",
            "CREATE FUNCTION public.items_total() RETURNS bigint LANGUAGE sql STABLE
             BEGIN ATOMIC SELECT sum(val) FROM public.items; END;",
        ),
    ];
    let mut findings = Findings::default();
    for (name, extra) in cases {
        let db = TestDb::new(name).await;
        let client = db.client().await;
        let table = QualifiedName::new("public", "items");
        exec(
            &client,
            "CREATE TABLE public.items (id int PRIMARY KEY, val int NOT NULL);
             INSERT INTO public.items SELECT g, g FROM generate_series(1, 2000) g;",
        )
        .await;
        exec(&client, extra).await;
        let before = snapshot(&db, &client, &[]).await;
        let out = run_tool(&db, &table, None).await;
        let what = format!("{name}: run on public.items");
        match out.status.code() {
            Some(3) => {
                let after = snapshot(&db, &client, &[]).await;
                compare_snapshots(&before, &after, &what, &mut findings);
                let left = leftovers(&client, &table).await;
                findings.check(left.is_empty(), || {
                    format!("{what}: left behind: {left:#?}")
                });
            }
            Some(0) => {
                let old = old_table(&table);
                let after = snapshot(&db, &client, std::slice::from_ref(&old)).await;
                compare_snapshots(&before, &after, &what, &mut findings);
                let left = leftovers(&client, &table).await;
                findings.check(left.is_empty(), || {
                    format!("{what}: left behind: {left:#?}")
                });
            }
            _ => findings.fail(format!(
                "{what}: expected a clean refusal (exit 3) or success (exit 0)\n{}",
                describe(&out)
            )),
        }
    }
    findings.finish();
}

// ---------------------------------------------------------------------------------------------
// Changes made to the table while a run is under way

/// `public.<name>` with an owner, privileges, an expression index, a trigger and extended
/// statistics: the table a run rewrites and its twin, which PostgreSQL's own ALTER changes.
fn during_fixture(name: &str) -> String {
    format!(
        "CREATE TABLE public.{name} (id int PRIMARY KEY, v text, n int, w text);
         CREATE INDEX {name}_expr ON public.{name} ((n + 1));
         CREATE TRIGGER {name}_trg BEFORE INSERT ON public.{name}
             FOR EACH ROW EXECUTE FUNCTION public.hs_during_trg();
         CREATE STATISTICS public.{name}_stats ON v, n FROM public.{name};
         ALTER TABLE public.{name} OWNER TO hs_during_owner;
         INSERT INTO public.{name} SELECT g, 'v' || g, g, 'w' || g FROM generate_series(1, 2000) g;
         CREATE VIEW public.{name}_v AS SELECT id FROM public.{name};
         ALTER VIEW public.{name}_v OWNER TO hs_during_owner;
         ANALYZE public.{name};"
    )
}

/// What a DBA may do to the table (and a view over it) during a run of hours without changing
/// the table's definition.
fn during_changes(name: &str) -> String {
    format!(
        "GRANT SELECT ON public.{name} TO hs_during_reader;
         GRANT UPDATE (v) ON public.{name} TO hs_during_reader;
         ALTER TABLE public.{name} ENABLE ROW LEVEL SECURITY;
         CREATE POLICY {name}_pol ON public.{name} USING (id > 0);
         COMMENT ON TABLE public.{name} IS 'table comment';
         COMMENT ON COLUMN public.{name}.v IS 'column comment';
         COMMENT ON INDEX public.{name}_expr IS 'index comment';
         COMMENT ON CONSTRAINT {name}_pkey ON public.{name} IS 'constraint comment';
         COMMENT ON TRIGGER {name}_trg ON public.{name} IS 'trigger comment';
         ALTER TABLE public.{name} SET (fillfactor = 70, autovacuum_vacuum_scale_factor = 0.05);
         ALTER TABLE public.{name} ALTER COLUMN v SET STATISTICS 77,
             ALTER COLUMN n SET STATISTICS 33,
             ALTER COLUMN v SET STORAGE EXTERNAL,
             ALTER COLUMN w SET COMPRESSION pglz,
             ALTER COLUMN v SET (n_distinct = 5);
         ALTER INDEX public.{name}_expr ALTER COLUMN 1 SET STATISTICS 44;
         ALTER STATISTICS public.{name}_stats SET STATISTICS 300;
         ALTER TABLE public.{name} DISABLE TRIGGER {name}_trg;
         ALTER PUBLICATION hs_during_pub ADD TABLE public.{name} (id, v);
         ALTER TABLE public.{name} REPLICA IDENTITY USING INDEX {name}_pkey;
         ALTER TABLE public.{name} OWNER TO hs_during_reader;
         CREATE OR REPLACE VIEW public.{name}_v AS SELECT id, id * 2 AS twice FROM public.{name};
         ALTER VIEW public.{name}_v OWNER TO hs_during_reader;
         GRANT SELECT ON public.{name}_v TO hs_during_owner;
         COMMENT ON VIEW public.{name}_v IS 'view comment';"
    )
}

/// Runs the tool on `public.hs_carried` with `alter`, making [`during_changes`] while it waits
/// just before its swap lock, and compares `pg_dump` of the result with that of
/// `public.hs_twin`, given the same changes and then PostgreSQL's own `ALTER TABLE`.
async fn carried_like_postgresql(test: &str, alter: &str) {
    let db = TestDb::new(test).await;
    let client = db.client().await;
    ensure_roles(
        &client,
        &["hs_during_owner", "hs_during_reader", "hs_during_third"],
    )
    .await;
    exec(
        &client,
        &format!(
            "CREATE FUNCTION public.hs_during_trg() RETURNS trigger LANGUAGE plpgsql
                 AS 'BEGIN RETURN NEW; END';
             CREATE PUBLICATION hs_during_pub;
             {} {}",
            during_fixture("hs_carried"),
            during_fixture("hs_twin")
        ),
    )
    .await;
    let hold = crate::harness::HoldPoint::new(test, "before-swap-lock");
    let mut args = vec![
        "run",
        "--dsn",
        &db.conninfo,
        "--table",
        "public.hs_carried",
        "--force-rewrite",
        "--drop-old",
    ];
    if !alter.is_empty() {
        args.extend(["--alter", alter]);
    }
    let run = crate::harness::spawn_held(&args, &[&hold]);
    hold.wait_reached().await;
    exec(&client, &during_changes("hs_carried")).await;
    hold.release();
    let out = run.await.expect("the run's task");
    assert!(out.status.success(), "{}", describe(&out));
    let mut twin = during_changes("hs_twin");
    if !alter.is_empty() {
        twin.push_str(&format!("\nALTER TABLE public.hs_twin {alter};"));
    }
    exec(&client, &twin).await;
    let dump_of = |t: &'static str| {
        let db = &db;
        async move {
            let bindir = tokio::task::spawn_blocking(pg_hotswap::demo::cluster::find_bindir)
                .await
                .expect("finding the PostgreSQL binaries")
                .expect("PostgreSQL binaries (for pg_dump)");
            let out = tokio::process::Command::new(bindir.join("pg_dump"))
                // The table and its view (`<table>_v`).
                .args([
                    "--schema-only",
                    "--table",
                    &format!("{t}*"),
                    "--dbname",
                    &db.conninfo,
                ])
                .output()
                .await
                .expect("running pg_dump");
            assert!(out.status.success(), "pg_dump failed");
            String::from_utf8(out.stdout).expect("pg_dump printed UTF-8")
        }
    };
    let carried = parse_dump(&dump_of("public.hs_carried").await);
    let twin = parse_dump(
        &dump_of("public.hs_twin")
            .await
            .replace("hs_twin", "hs_carried"),
    );
    let diff = DumpDiff::new(&twin, &carried);
    let (gone, new) = diff.flat_changes();
    assert!(
        gone.is_empty() && new.is_empty(),
        "--alter {alter:?}: what was changed during the run differs from PostgreSQL's \
         (- the twin, + the rewritten table):\n{}",
        diff.render()
    );
}

/// A GRANT, a policy, comments, storage options, per-column settings, an index statistics
/// target, a disabled trigger, a publication, a replica identity and a new owner, all given to the table while the
/// run waits just before its swap: the swap carries every one (before, every one was lost, and
/// the reader lost its access).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_made_during_the_run_are_carried_by_the_swap() {
    carried_like_postgresql("carry_during", "").await;
}

/// The same changes under an ALTER that changes a column's type and sets a statistics target
/// itself: the result is what PostgreSQL gives when the changes come first and its ALTER after
/// them (the retyped column's index is re-created with default targets, the ALTER's target
/// wins over the one set during the run).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_made_during_the_run_meet_the_alter_as_in_postgresql() {
    carried_like_postgresql(
        "carry_during_alter",
        "ALTER COLUMN n TYPE bigint, ALTER COLUMN v SET STATISTICS 500",
    )
    .await;
    carried_like_postgresql("carry_during_alter_w", "ALTER COLUMN w TYPE varchar(50)").await;
}

/// The same changes under ALTERs that set what the changes set too, found by a fresh tester:
/// the ALTER's own storage options and owner used to lose to the old table's, and a publication's
/// column list kept a renamed column's old name, so the swap failed at every attempt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_alters_own_options_owner_and_renames_win_as_in_postgresql() {
    carried_like_postgresql(
        "carry_during_options",
        "SET (fillfactor = 40, toast.autovacuum_vacuum_cost_delay = 5), \
         RESET (autovacuum_vacuum_scale_factor), OWNER TO hs_during_third",
    )
    .await;
    carried_like_postgresql("carry_during_rename", "RENAME COLUMN v TO v2").await;
}

/// A policy on a column the ALTER retypes, created while the run waits before its swap:
/// PostgreSQL's own ALTER would refuse it ("cannot alter type of a column used in a policy
/// definition"), and so does the swap, leaving the table as it is; once the policy is dropped,
/// `resume` finishes the run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_made_during_the_run_on_a_retyped_column_is_refused_like_postgresql() {
    let db = TestDb::new("carry_during_policy").await;
    let client = db.client().await;
    ensure_roles(&client, &["hs_during_owner"]).await;
    exec(
        &client,
        &format!(
            "CREATE FUNCTION public.hs_during_trg() RETURNS trigger LANGUAGE plpgsql
                 AS 'BEGIN RETURN NEW; END';
             {}",
            during_fixture("hs_carried")
        ),
    )
    .await;
    let hold = crate::harness::HoldPoint::new("carry_during_policy", "before-swap-lock");
    let run = crate::harness::spawn_held(
        &[
            "run",
            "--dsn",
            &db.conninfo,
            "--table",
            "public.hs_carried",
            "--alter",
            "ALTER COLUMN n TYPE bigint",
        ],
        &[&hold],
    );
    hold.wait_reached().await;
    exec(
        &client,
        "CREATE POLICY hs_carried_n ON public.hs_carried USING (n > 10)",
    )
    .await;
    hold.release();
    let out = run.await.expect("the run's task");
    assert!(!out.status.success(), "{}", describe(&out));
    let text = all_output(&out);
    assert!(
        text.contains("cannot alter type of a column used in a policy definition")
            && text.contains("hs_carried_n"),
        "{}",
        describe(&out)
    );
    let table = QualifiedName::new("public", "hs_carried");
    let ty = crate::harness::column_type(&client, &table, &Ident::new("n")).await;
    assert_eq!(ty, "integer", "the table was changed: {}", describe(&out));
    exec(&client, "DROP POLICY hs_carried_n ON public.hs_carried").await;
    let out = crate::harness::hotswap_async(&[
        "resume",
        "--dsn",
        &db.conninfo,
        "--table",
        "public.hs_carried",
    ])
    .await;
    assert!(out.status.success(), "{}", describe(&out));
    let ty = crate::harness::column_type(&client, &table, &Ident::new("n")).await;
    assert_eq!(ty, "bigint", "{}", describe(&out));
}
