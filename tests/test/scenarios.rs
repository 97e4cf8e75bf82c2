//! The scenario corpus (issues 13 and 21): every folder under `tests/scenarios/` is one online
//! rewrite under an application workload, checked by an oracle that is PostgreSQL itself.
//! gh-ost's `localtests` are the model.
//!
//! A folder holds:
//! - `setup.sql`: creates and fills the table(s) (any schema, any names).
//! - `table`: the table to rewrite, as `--table` takes it (`schema.name` or the quoted form).
//! - `alter` (optional): the ALTER TABLE actions given as `--alter`.
//! - `args` (optional): more CLI arguments, one per line. Unless they say otherwise the harness
//!   adds `--chunk-rows <rows / 25>` (so the copy has at least 20 chunks, as a big table does),
//!   `--chunk-time off` and `--nice 2` (so the copy lasts long enough for the writers to matter).
//! - `workload.sql` (optional): transaction templates, each introduced by a line `-- tx` with
//!   optional attributes (`weight=3`, `isolation=repeatable_read|serializable|read_committed`).
//!   A statement ends with `;` at the end of a line. A statement that mentions `{t}` runs twice in
//!   the same transaction, once on the table and once on its ledger, and both must report the same
//!   number of rows (a difference is a lost or extra write). Statements without `{t}` run once.
//!   Parameters (integer literals the harness substitutes, its own numbers, never user data):
//!   `$1`..`$8` random in `1..=keys`, `$9` a fresh unique number per transaction (from
//!   1,000,001 up, never reused across writers), `$10` random in `0..=999999`.
//! - `expect` (optional): `success` (default) or `refused <exit code> <substring of the output>`.
//! - `settings` (optional): `key=value` lines: `writers` (2), `rate` (transactions per second in
//!   all, 60), `keys` (100), `warmup_ms` (300), `compare_exclude=col1,col2` (columns the oracle
//!   cannot compare, e.g. a new column with a volatile default).
//! - `check.sql` (optional): queries run after the run, each must return one `true`.
//!
//! Writers whose drawn `$1`..`$8` share a value take turns (transaction advisory locks), so the
//! table and its ledger see the same interleaving; others run concurrently.
//!
//! The ledger is a plain copy of the table made right after `setup.sql`: `LIKE` with defaults,
//! generated columns, identity, indexes (so ON CONFLICT and unique keys behave the same) and
//! storage, the rows copied, then the table's CHECK constraints added as they are (NOT VALID stays
//! NOT VALID); no triggers, no foreign keys. Defaults that draw from a sequence do not give the
//! same values to both, so workloads give explicit keys.
//!
//! A partition rewritten on its own (issue 15): the writers write to the root of its tree, so
//! that they move rows in and out of it, and the ledger (`LIKE` the partition) mirrors the whole
//! tree; the oracle compares the partition with the ledger's rows that fall in its bound (its
//! `pg_get_partition_constraintdef`).
//!
//! The oracle, after the run ended and the writers' last transactions committed: the same ALTER
//! applied to the ledger by PostgreSQL's own `ALTER TABLE`; then both have the same columns with
//! the same types in the same order, and hold the same multiset of rows, compared by every
//! column's text form (so xml, json, point compare too). No application statement may have
//! failed (a REPEATABLE READ or SERIALIZABLE template may retry serialization failures; they are
//! counted and reported). A refusal must leave nothing behind and the table unchanged.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pg_hotswap::db::ident::{fit_name, Ident, QualifiedName};
use rand::Rng;
use tokio_postgres::Client;

use crate::harness::{all_output, describe, hotswap_async, leftovers, TestDb};

const STATE_SCHEMA: &str = "hotswap";

/// One test per scenario folder, and the list the completeness test checks.
macro_rules! scenarios {
    ($($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                run_scenario(stringify!($name)).await;
            }
        )*
        const LISTED: &[&str] = &[$(stringify!($name)),*];
    };
}

scenarios!(
    // issue 13
    i13_using_numeric_to_bigint,
    i13_enum_to_enum,
    i13_unique_value_moves,
    i13_deferrable_unique_shift,
    i13_fk_parent_deleted,
    i13_drop_column_used_by_view,
    // issue 15
    i15_pk_widened,
    i15_pk_widened_same_name_fk_moves,
    i15_convert_to_range_partitions,
    i15_partitioned_int_to_bigint,
    i15_convert_to_list_partitions,
    i15_convert_to_hash_partitions,
    i15_convert_generated_monthly,
    i15_convert_pk_lacks_partition_key_refused,
    i15_convert_unlogged_refused,
    i15_convert_rows_without_partition_refused,
    i15_pk_widened_fk_refused,
    i15_key_from_unique_index,
    i15_pk_new_name_cluster_on,
    i15_one_partition_rebuild,
    i15_convert_null_key_refused,
    i15_set_not_null_one_null_refused,
    // issue 21
    i21_varchar_to_char,
    i21_citext_key_to_text,
    i21_xml_declaration,
    i21_not_valid_constraints,
    // unique keys moving
    unique_upsert_changes_unique_column,
    unique_key_shift_by_1000,
    unique_multi_row_and_second_unique,
    // exclusion constraints
    exclusion_booking_overlap,
    exclusion_with_type_change,
    exclusion_circle_moves,
    // foreign keys
    fk_self_reference,
    fk_incoming_cascade,
    fk_outgoing_and_incoming,
    views_read_while_written,
    views_written_then_read,
    // deferrable constraints
    deferrable_initially_deferred_swap,
    deferrable_pk_shift,
    deferrable_unique_rotation,
    // USING over several types
    using_text_to_int,
    using_int_to_text_to_char,
    using_jsonb_to_text,
    using_timestamp_to_timestamptz,
    using_two_columns,
    // isolation
    repeatable_read_writer,
    // value type families
    values_arrays,
    values_composite,
    values_domains,
    values_ranges,
    values_multiranges,
    values_json,
    values_xml,
    values_money,
    values_bits,
    values_inet,
    values_interval,
    values_tsvector,
    values_numeric_special,
    values_float_special,
    values_toast,
    // names
    weird_names,
);

fn scenarios_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scenarios")
}

/// No scenario folder is silently skipped: every folder has its test, every test its folder.
#[test]
fn every_scenario_folder_is_listed() {
    let mut folders: Vec<String> = std::fs::read_dir(scenarios_dir())
        .expect("reading tests/scenarios")
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    folders.sort();
    let unlisted: Vec<&String> = folders
        .iter()
        .filter(|f| !LISTED.contains(&f.as_str()))
        .collect();
    assert!(
        unlisted.is_empty(),
        "scenario folders without a test (add them to scenarios!): {unlisted:?}"
    );
    let missing: Vec<&&str> = LISTED
        .iter()
        .filter(|n| !folders.iter().any(|f| f == *n))
        .collect();
    assert!(
        missing.is_empty(),
        "listed scenarios without a folder: {missing:?}"
    );
}

/// What a scenario expects of the run.
#[derive(Debug, PartialEq)]
enum Expect {
    Success,
    Refused { code: i32, message: String },
}

fn parse_expect(text: Option<&str>) -> Expect {
    let text = text.map(str::trim).unwrap_or("");
    if text.is_empty() || text == "success" {
        return Expect::Success;
    }
    let rest = text
        .strip_prefix("refused")
        .unwrap_or_else(|| {
            panic!("expect: {text:?} is neither success nor refused <code> <message>")
        })
        .trim_start();
    let (code, message) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
    Expect::Refused {
        code: code
            .parse()
            .unwrap_or_else(|_| panic!("expect: {code:?} is not an exit code")),
        message: message.trim().to_string(),
    }
}

#[derive(Debug)]
struct Settings {
    writers: usize,
    rate: u32,
    keys: i64,
    warmup: Duration,
    compare_exclude: Vec<String>,
}

fn parse_settings(text: Option<&str>) -> Settings {
    let mut s = Settings {
        writers: 2,
        rate: 60,
        keys: 100,
        warmup: Duration::from_millis(300),
        compare_exclude: Vec::new(),
    };
    for line in text.unwrap_or("").lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (k, v) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("settings: {line:?} is not key=value"));
        let (k, v) = (k.trim(), v.trim());
        let num = |v: &str| -> i64 {
            v.parse()
                .unwrap_or_else(|_| panic!("settings: {k}={v:?} is not a number"))
        };
        match k {
            "writers" => s.writers = num(v) as usize,
            "rate" => s.rate = num(v) as u32,
            "keys" => s.keys = num(v),
            "warmup_ms" => s.warmup = Duration::from_millis(num(v) as u64),
            "compare_exclude" => {
                s.compare_exclude = v.split(',').map(|c| c.trim().to_string()).collect()
            }
            _ => panic!("settings: unknown key {k:?}"),
        }
    }
    s
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Isolation {
    ReadCommitted,
    RepeatableRead,
    Serializable,
}

#[derive(Clone, Debug)]
struct Template {
    /// Line of its `-- tx` in workload.sql, for messages.
    line: usize,
    weight: u32,
    isolation: Isolation,
    statements: Vec<String>,
}

fn parse_workload(text: &str) -> Vec<Template> {
    let mut templates: Vec<Template> = Vec::new();
    let mut current = String::new();
    let flush = |templates: &mut Vec<Template>, current: &mut String| {
        if let Some(t) = templates.last_mut() {
            t.statements.extend(split_statements(current));
        } else {
            assert!(
                current.trim().is_empty()
                    || current
                        .lines()
                        .all(|l| l.trim().is_empty() || l.trim().starts_with("--")),
                "workload.sql: statements before the first `-- tx` line"
            );
        }
        current.clear();
    };
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if trimmed == "-- tx" || trimmed.starts_with("-- tx ") {
            flush(&mut templates, &mut current);
            let mut t = Template {
                line: i + 1,
                weight: 1,
                isolation: Isolation::ReadCommitted,
                statements: Vec::new(),
            };
            for attr in trimmed["-- tx".len()..].split_whitespace() {
                match attr.split_once('=') {
                    Some(("weight", w)) => {
                        t.weight = w
                            .parse()
                            .unwrap_or_else(|_| panic!("workload.sql line {}: weight {w:?}", i + 1))
                    }
                    Some(("isolation", "read_committed")) => t.isolation = Isolation::ReadCommitted,
                    Some(("isolation", "repeatable_read")) => {
                        t.isolation = Isolation::RepeatableRead
                    }
                    Some(("isolation", "serializable")) => t.isolation = Isolation::Serializable,
                    _ => panic!("workload.sql line {}: unknown attribute {attr:?}", i + 1),
                }
            }
            templates.push(t);
        } else {
            current.push_str(line);
            current.push('\n');
        }
    }
    flush(&mut templates, &mut current);
    for t in &templates {
        assert!(
            !t.statements.is_empty(),
            "workload.sql line {}: a template without statements",
            t.line
        );
    }
    templates
}

/// Statements end with `;` at the end of a line; comment lines are dropped.
fn split_statements(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut stmt = String::new();
    for line in text.lines() {
        if line.trim_start().starts_with("--") || line.trim().is_empty() {
            continue;
        }
        stmt.push_str(line);
        stmt.push('\n');
        if line.trim_end().ends_with(';') {
            out.push(stmt.trim().trim_end_matches(';').trim().to_string());
            stmt.clear();
        }
    }
    if !stmt.trim().is_empty() {
        out.push(stmt.trim().to_string());
    }
    out
}

/// Replaces `$10`, `$9`, ... `$1` (longest first) by the integer literals of `params`.
fn substitute(sql: &str, params: &[i64; 10]) -> String {
    let mut s = sql.to_string();
    for n in (1..=10).rev() {
        s = s.replace(&format!("${n}"), &params[n - 1].to_string());
    }
    s
}

/// Fresh unique numbers for `$9`, shared by the writers of one scenario.
const FRESH_BASE: i64 = 1_000_000;

#[derive(Debug, Default)]
struct WorkloadReport {
    transactions: u64,
    serialization_retries: u64,
    errors: Vec<String>,
}

/// Runs templates at random on `writers` connections at `rate` transactions per second in all,
/// until `stop`. Every statement error except a retried serialization failure is recorded.
#[allow(clippy::too_many_arguments)]
async fn writer(
    conninfo: String,
    table: QualifiedName,
    ledger: QualifiedName,
    templates: Arc<Vec<Template>>,
    keys: i64,
    per_writer_rate: f64,
    fresh: Arc<AtomicI64>,
    stop: Arc<AtomicBool>,
    committed: Arc<AtomicU64>,
) -> WorkloadReport {
    let client = crate::harness::connect(&conninfo).await;
    let mut report = WorkloadReport::default();
    if let Err(e) = client
        .batch_execute("SET statement_timeout = '30s'; SET lock_timeout = '30s'")
        .await
    {
        report.errors.push(format!("setting up the writer: {e}"));
        return report;
    }
    let total_weight: u32 = templates.iter().map(|t| t.weight).sum();
    let period = Duration::from_secs_f64(1.0 / per_writer_rate.max(0.1));
    let (t_sql, l_sql) = (table.to_string(), ledger.to_string());
    while !stop.load(Ordering::SeqCst) {
        let started = Instant::now();
        let (template, params) = {
            let mut rng = rand::thread_rng();
            let mut pick = rng.gen_range(0..total_weight.max(1));
            let template = templates
                .iter()
                .find(|t| {
                    if pick < t.weight {
                        true
                    } else {
                        pick -= t.weight;
                        false
                    }
                })
                .unwrap_or(&templates[0])
                .clone();
            let mut params = [0i64; 10];
            for p in params.iter_mut().take(8) {
                *p = rng.gen_range(1..=keys.max(1));
            }
            params[8] = fresh.fetch_add(1, Ordering::SeqCst);
            params[9] = rng.gen_range(0..=999_999);
            (template, params)
        };
        loop {
            match run_template(&client, &template, &params, &t_sql, &l_sql).await {
                Ok(()) => {
                    report.transactions += 1;
                    committed.fetch_add(1, Ordering::SeqCst);
                    break;
                }
                Err(TxError::Serialization(_))
                    if template.isolation != Isolation::ReadCommitted =>
                {
                    report.serialization_retries += 1;
                    let _ = client.batch_execute("ROLLBACK").await;
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                }
                Err(e) => {
                    let _ = client.batch_execute("ROLLBACK").await;
                    if report.errors.len() < 20 {
                        report.errors.push(format!(
                            "template at workload.sql line {} with {params:?}: {e}",
                            template.line
                        ));
                    }
                    break;
                }
            }
        }
        let spent = started.elapsed();
        if spent < period {
            tokio::time::sleep(period - spent).await;
        }
    }
    report
}

#[derive(Debug)]
enum TxError {
    Serialization(String),
    Other(String),
}

impl std::fmt::Display for TxError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TxError::Serialization(s) | TxError::Other(s) => f.write_str(s),
        }
    }
}

fn tx_error(sql: &str, e: tokio_postgres::Error) -> TxError {
    let text = match e.as_db_error() {
        Some(db) => format!(
            "{sql}: {} {}{}",
            db.code().code(),
            db.message(),
            db.detail().map(|d| format!(" ({d})")).unwrap_or_default()
        ),
        None => format!("{sql}: {e}"),
    };
    if e.code() == Some(&tokio_postgres::error::SqlState::T_R_SERIALIZATION_FAILURE) {
        TxError::Serialization(text)
    } else {
        TxError::Other(text)
    }
}

async fn run_template(
    client: &Client,
    template: &Template,
    params: &[i64; 10],
    table: &str,
    ledger: &str,
) -> Result<(), TxError> {
    let begin = match template.isolation {
        Isolation::ReadCommitted => "BEGIN ISOLATION LEVEL READ COMMITTED",
        Isolation::RepeatableRead => "BEGIN ISOLATION LEVEL REPEATABLE READ",
        Isolation::Serializable => "BEGIN ISOLATION LEVEL SERIALIZABLE",
    };
    client
        .batch_execute(begin)
        .await
        .map_err(|e| tx_error(begin, e))?;
    // Writers that touch the same keys take turns (advisory locks on the drawn values, in order:
    // no deadlock). Without it two writers could mirror differently: a DELETE that waited for a
    // concurrent delete-and-reinsert of the same unique value finds 0 rows on the table (the row
    // it waited for is gone, the new one is not in its snapshot) and then 1 on the ledger (a new
    // statement, a new snapshot) — an application race, not a lost write. Writers on different
    // keys still run concurrently, so log ids still commit out of order.
    let keys: Vec<i64> = params[..8].to_vec();
    let lock = "SELECT pg_advisory_xact_lock(k) FROM (SELECT DISTINCT unnest($1::int8[]) AS k ORDER BY 1) s";
    client
        .execute(lock, &[&keys])
        .await
        .map_err(|e| tx_error(lock, e))?;
    for stmt in &template.statements {
        let sql = substitute(stmt, params);
        if sql.contains("{t}") {
            let on_table = sql.replace("{t}", table);
            let on_ledger = sql.replace("{t}", ledger);
            let a = client
                .execute(on_table.as_str(), &[])
                .await
                .map_err(|e| tx_error(&on_table, e))?;
            let b = client
                .execute(on_ledger.as_str(), &[])
                .await
                .map_err(|e| tx_error(&on_ledger, e))?;
            if a != b {
                return Err(TxError::Other(format!(
                    "{sql}: {a} rows on the table, {b} on the ledger (a lost or extra write)"
                )));
            }
        } else {
            client
                .execute(sql.as_str(), &[])
                .await
                .map_err(|e| tx_error(&sql, e))?;
        }
    }
    client
        .batch_execute("COMMIT")
        .await
        .map_err(|e| tx_error("COMMIT", e))
}

/// The table named in the `table` file, resolved by the server (so quoted forms work).
async fn resolve_table(client: &Client, spelled: &str) -> QualifiedName {
    let row = client
        .query_one(
            "SELECT n.nspname::text, c.relname::text FROM pg_catalog.pg_class c \
             JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.oid = $1::text::regclass",
            &[&spelled],
        )
        .await
        .unwrap_or_else(|e| panic!("resolving the table {spelled:?}: {e}"));
    QualifiedName::new(row.get::<_, String>(0), row.get::<_, String>(1))
}

/// Where the writers write and which ledger rows the table must hold: for a partition rewritten
/// on its own (issue 15), the root of its tree (so writes move rows in and out of it) and its
/// partition constraint; for any other table, the table itself and all rows.
async fn partition_root(client: &Client, table: &QualifiedName) -> (QualifiedName, Option<String>) {
    let r = client
        .query_one(
            "SELECT c.relispartition, n.nspname::text, r.relname::text, \
                    pg_get_partition_constraintdef(c.oid) \
               FROM pg_class c, pg_class r JOIN pg_namespace n ON n.oid = r.relnamespace \
              WHERE c.oid = $1::text::regclass \
                AND r.oid = coalesce(pg_partition_root(c.oid), c.oid)",
            &[&table.to_string()],
        )
        .await
        .expect("reading whether the table is a partition");
    if r.get::<_, bool>(0) {
        (
            QualifiedName::new(r.get::<_, String>(1), r.get::<_, String>(2)),
            r.get(3),
        )
    } else {
        (table.clone(), None)
    }
}

/// Creates the ledger of `table` (see the module comment) and returns its name, with the names
/// of its indexes next to the table's twins (see [`ledger_alter`]).
async fn create_ledger(
    client: &Client,
    table: &QualifiedName,
    rows_from: &QualifiedName,
) -> (QualifiedName, Vec<(String, String)>) {
    let ledger = table.sibling(fit_name(table.name.as_str(), "_ledger"));
    let insert_cols: Vec<String> = client
        .query(
            "SELECT quote_ident(attname) FROM pg_catalog.pg_attribute \
             WHERE attrelid = $1::text::regclass AND attnum > 0 AND NOT attisdropped \
               AND attgenerated = '' ORDER BY attnum",
            &[&table.to_string()],
        )
        .await
        .expect("listing columns")
        .iter()
        .map(|r| r.get(0))
        .collect();
    let cols = insert_cols.join(", ");
    client
        .batch_execute(&format!(
            "CREATE TABLE {ledger} (LIKE {table} INCLUDING DEFAULTS INCLUDING GENERATED \
               INCLUDING IDENTITY INCLUDING INDEXES INCLUDING STORAGE INCLUDING COMPRESSION);
             INSERT INTO {ledger} ({cols}) OVERRIDING SYSTEM VALUE SELECT {cols} FROM {rows_from};"
        ))
        .await
        .unwrap_or_else(|e| panic!("creating the ledger {}: {e:?}", ledger.human()));
    // CHECK constraints as they are: a NOT VALID one stays NOT VALID (LIKE would validate it).
    let checks = client
        .query(
            "SELECT quote_ident(conname), pg_get_constraintdef(oid) FROM pg_catalog.pg_constraint \
             WHERE conrelid = $1::text::regclass AND contype = 'c' ORDER BY conname",
            &[&table.to_string()],
        )
        .await
        .expect("listing check constraints");
    for r in checks {
        let (name, def): (String, String) = (r.get(0), r.get(1));
        client
            .batch_execute(&format!("ALTER TABLE {ledger} ADD CONSTRAINT {name} {def}"))
            .await
            .unwrap_or_else(|e| panic!("adding {name} to the ledger: {e:?}"));
    }
    // Twins by definition (the text after " USING ", and unique / primary), read before the run
    // swaps the table's indexes.
    let twins = client
        .query(
            "SELECT t.relname::text, l.relname::text \
               FROM pg_catalog.pg_index ti JOIN pg_catalog.pg_class t ON t.oid = ti.indexrelid, \
                    pg_catalog.pg_index li JOIN pg_catalog.pg_class l ON l.oid = li.indexrelid \
              WHERE ti.indrelid = $1::text::regclass AND li.indrelid = $2::text::regclass \
                AND ti.indisprimary = li.indisprimary AND ti.indisunique = li.indisunique \
                AND split_part(pg_get_indexdef(ti.indexrelid), ' USING ', 2) \
                  = split_part(pg_get_indexdef(li.indexrelid), ' USING ', 2)",
            &[&table.to_string(), &ledger.to_string()],
        )
        .await
        .expect("pairing the ledger's indexes with the table's")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    (ledger, twins)
}

/// The scenario's ALTER as the ledger must read it (issue 15: `DROP CONSTRAINT account_pkey`):
/// a name of the table's index (or of the constraint it backs) becomes its ledger twin's, and the
/// name of `ADD CONSTRAINT name` gets `_lg` appended (the table, in the same schema, holds an index of
/// that name once swapped), as whole words. The harness's own plain replacement, not the tool's
/// translation, so the oracle does not share the code it checks; enough for the corpus's
/// lower-case names.
fn ledger_alter(alter: &str, twins: &[(String, String)]) -> String {
    let words = |text: &str| -> Vec<(bool, String)> {
        let mut out: Vec<(bool, String)> = Vec::new();
        for c in text.chars() {
            let is_word = c.is_alphanumeric() || c == '_' || c == '$';
            match out.last_mut() {
                Some((true, w)) if is_word => w.push(c),
                _ => out.push((is_word, c.to_string())),
            }
        }
        out
    };
    let parts = words(alter);
    let mut names: Vec<(String, String)> = twins.to_vec();
    // New names: the word after `ADD CONSTRAINT`.
    let lowered: Vec<String> = parts
        .iter()
        .filter(|(is_word, _)| *is_word)
        .map(|(_, w)| w.to_lowercase())
        .collect();
    for w in lowered.windows(3) {
        if w[0] == "add" && w[1] == "constraint" && !names.iter().any(|(t, _)| *t == w[2]) {
            names.push((w[2].clone(), format!("{}_lg", w[2])));
        }
    }
    parts
        .into_iter()
        .map(|(is_word, w)| {
            let lower = w.to_lowercase();
            match names.iter().find(|(t, _)| is_word && *t == lower) {
                Some((_, l)) => l.clone(),
                None => w,
            }
        })
        .collect()
}

/// (name, format_type) of the table's columns in order.
async fn columns(client: &Client, table: &QualifiedName) -> Vec<(String, String)> {
    client
        .query(
            "SELECT attname::text, format_type(atttypid, atttypmod) FROM pg_catalog.pg_attribute \
             WHERE attrelid = $1::text::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
            &[&table.to_string()],
        )
        .await
        .expect("listing columns")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

/// The oracle's comparison: same columns and types in order, same multiset of rows by every
/// column's text form. Returns a description of the differences (empty: equal).
async fn differences(
    client: &Client,
    table: &QualifiedName,
    ledger: &QualifiedName,
    exclude: &[String],
    ledger_filter: Option<&str>,
) -> String {
    let (tc, lc) = (columns(client, table).await, columns(client, ledger).await);
    if tc != lc {
        return format!("columns differ:\n  table  {tc:?}\n  ledger {lc:?}",);
    }
    let exprs: Vec<String> = tc
        .iter()
        .filter(|(name, _)| !exclude.contains(name))
        .map(|(name, _)| format!("CAST({} AS text)", Ident::new(name)))
        .collect();
    let row = format!("ROW({})::text", exprs.join(", "));
    let filter = ledger_filter
        .map(|f| format!(" WHERE {f}"))
        .unwrap_or_default();
    let sql = format!(
        "WITH a AS (SELECT {row} AS r FROM {table}), b AS (SELECT {row} AS r FROM ONLY {ledger}{filter}), \
              only_t AS (SELECT r FROM a EXCEPT ALL SELECT r FROM b), \
              only_l AS (SELECT r FROM b EXCEPT ALL SELECT r FROM a) \
         SELECT (SELECT count(*) FROM a), (SELECT count(*) FROM b), \
                (SELECT count(*) FROM only_t), (SELECT count(*) FROM only_l), \
                ARRAY(SELECT r FROM only_t ORDER BY r LIMIT 5), ARRAY(SELECT r FROM only_l ORDER BY r LIMIT 5)"
    );
    let r = client
        .query_one(sql.as_str(), &[])
        .await
        .unwrap_or_else(|e| panic!("comparing with the ledger: {e:?}\n{sql}"));
    let (na, nb, ot, ol): (i64, i64, i64, i64) = (r.get(0), r.get(1), r.get(2), r.get(3));
    if ot == 0 && ol == 0 {
        return String::new();
    }
    let (et, el): (Vec<String>, Vec<String>) = (r.get(4), r.get(5));
    format!(
        "{na} rows in the table, {nb} in the ledger; {ot} only in the table, e.g. {et:#?}; \
         {ol} only in the ledger, e.g. {el:#?}"
    )
}

fn read_opt(dir: &Path, file: &str) -> Option<String> {
    let path = dir.join(file);
    path.exists().then(|| {
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
    })
}

async fn run_scenario(name: &str) {
    let dir = scenarios_dir().join(name);
    let setup = read_opt(&dir, "setup.sql").expect("setup.sql is required");
    let table_spelled = read_opt(&dir, "table").expect("table is required");
    let table_spelled = table_spelled.trim();
    let alter = read_opt(&dir, "alter")
        .map(|a| a.trim().to_string())
        .filter(|a| !a.is_empty());
    let extra_args: Vec<String> = read_opt(&dir, "args")
        .unwrap_or_default()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(String::from)
        .collect();
    let templates = parse_workload(&read_opt(&dir, "workload.sql").unwrap_or_default());
    let expect = parse_expect(read_opt(&dir, "expect").as_deref());
    let settings = parse_settings(read_opt(&dir, "settings").as_deref());
    let checks = split_statements(&read_opt(&dir, "check.sql").unwrap_or_default());

    let db = TestDb::new(&format!("sc_{name}")).await;
    let client = db.client().await;
    client
        .batch_execute(&setup)
        .await
        .unwrap_or_else(|e| panic!("{name}: setup.sql failed: {e:?}"));
    let table = resolve_table(&client, table_spelled).await;
    let (writes_to, ledger_filter) = partition_root(&client, &table).await;
    let (ledger, twins) = create_ledger(&client, &table, &writes_to).await;
    // Statistics, as a real table has them: the chunk planner splits at the key histogram (without
    // it, min..max arithmetically, and the writers' fresh keys would make thousands of chunks).
    client
        .batch_execute(&format!("ANALYZE {table}; ANALYZE {ledger}"))
        .await
        .expect("ANALYZE");
    let rows: i64 = client
        .query_one(&format!("SELECT count(*) FROM {table}"), &[])
        .await
        .expect("counting rows")
        .get(0);

    let mut args: Vec<String> = vec![
        "run".into(),
        "--dsn".into(),
        db.conninfo.clone(),
        "--table".into(),
        table_spelled.to_string(),
        "--output".into(),
        "json".into(),
    ];
    if let Some(a) = &alter {
        args.extend(["--alter".into(), a.clone()]);
    }
    let has = |flag: &str| extra_args.iter().any(|a| a == flag);
    if !has("--chunk-rows") {
        args.extend(["--chunk-rows".into(), (rows / 25).max(1).to_string()]);
    }
    if !has("--chunk-time") {
        args.extend(["--chunk-time".into(), "off".into()]);
    }
    if !has("--nice") {
        args.extend(["--nice".into(), "2".into()]);
    }
    args.extend(extra_args.iter().cloned());

    // The writers start before the run and stop after it.
    let stop = Arc::new(AtomicBool::new(false));
    let committed = Arc::new(AtomicU64::new(0));
    let fresh = Arc::new(AtomicI64::new(FRESH_BASE + 1));
    let templates = Arc::new(templates);
    let mut handles = Vec::new();
    if !templates.is_empty() {
        for _ in 0..settings.writers.max(1) {
            handles.push(tokio::spawn(writer(
                db.conninfo.clone(),
                writes_to.clone(),
                ledger.clone(),
                templates.clone(),
                settings.keys,
                settings.rate as f64 / settings.writers.max(1) as f64,
                fresh.clone(),
                stop.clone(),
                committed.clone(),
            )));
        }
        tokio::time::sleep(settings.warmup).await;
    }
    let before = committed.load(Ordering::SeqCst);
    let started = Instant::now();
    let arg_refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = hotswap_async(&arg_refs).await;
    let run_time = started.elapsed();
    let during = committed.load(Ordering::SeqCst) - before;
    stop.store(true, Ordering::SeqCst);
    let mut report = WorkloadReport::default();
    for h in handles {
        let r = h.await.expect("a writer panicked");
        report.transactions += r.transactions;
        report.serialization_retries += r.serialization_retries;
        report.errors.extend(r.errors);
    }
    // How often the swap's lock was not granted: a measure of how the table's neighbours'
    // writers meet the swap (printed, not asserted: it depends on the machine's load).
    let swap_lock_timeouts: i64 = client
        .query_opt(
            &format!(
                "SELECT count(*) FROM {} WHERE phase = 'swap' AND kind = 'lock_timeout'",
                QualifiedName::new(STATE_SCHEMA, "events")
            ),
            &[],
        )
        .await
        .ok()
        .flatten()
        .map_or(-1, |r| r.get(0));
    eprintln!(
        "scenario {name}: {rows} rows, run took {run_time:?}; workload: {} transactions \
         ({during} during the run), {} serialization failures retried, {} errors; \
         swap lock not granted {swap_lock_timeouts} times\n{}",
        report.transactions,
        report.serialization_retries,
        report.errors.len(),
        describe(&out)
    );

    let mut failures: Vec<String> = Vec::new();
    if !report.errors.is_empty() {
        failures.push(format!(
            "application statements failed during the run: {:#?}",
            report.errors
        ));
    }
    match &expect {
        Expect::Success => {
            if out.status.code() != Some(0) {
                failures.push(format!(
                    "the run did not succeed (exit {:?}): {}",
                    out.status.code(),
                    last_lines(&all_output(&out), 12)
                ));
            } else {
                match serde_json::from_slice::<serde_json::Value>(&out.stdout) {
                    Ok(json) => {
                        let chunks = json["chunks"].as_u64().unwrap_or(0);
                        if !has("--chunk-rows") && chunks < 20 {
                            failures.push(format!("the copy had {chunks} chunks, fewer than 20"));
                        }
                    }
                    Err(e) => {
                        failures.push(format!("the --output json report does not parse: {e}"))
                    }
                }
                let status: Option<String> = client
                    .query_opt(
                        &format!(
                            "SELECT status FROM {} ORDER BY id DESC LIMIT 1",
                            QualifiedName::new(STATE_SCHEMA, "runs")
                        ),
                        &[],
                    )
                    .await
                    .ok()
                    .flatten()
                    .map(|r| r.get(0));
                if status.as_deref() != Some("succeeded") {
                    failures.push(format!("the run's recorded status is {status:?}"));
                }
            }
            // The oracle: PostgreSQL's own ALTER on the ledger.
            if let Some(a) = &alter {
                if let Err(e) = client
                    .batch_execute(&format!("ALTER TABLE {ledger} {}", ledger_alter(a, &twins)))
                    .await
                {
                    failures.push(format!(
                        "PostgreSQL's ALTER TABLE of the ledger failed: {e:?}"
                    ));
                }
            }
        }
        Expect::Refused { code, message } => {
            if out.status.code() != Some(*code) {
                failures.push(format!(
                    "expected exit {code} (refused), got {:?}: {}",
                    out.status.code(),
                    last_lines(&all_output(&out), 12)
                ));
            }
            if !all_output(&out).contains(message.as_str()) {
                failures.push(format!("the output does not say {message:?}"));
            }
        }
    }
    let left = leftovers(&client, &table, STATE_SCHEMA).await;
    if !left.is_empty() {
        failures.push(format!("left behind: {left:?}"));
    }
    let diff = differences(
        &client,
        &table,
        &ledger,
        &settings.compare_exclude,
        ledger_filter.as_deref(),
    )
    .await;
    if !diff.is_empty() {
        failures.push(format!("the table differs from the ledger: {diff}"));
    }
    for check in &checks {
        match client.query_one(check.as_str(), &[]).await {
            Ok(r) => {
                let ok: Option<bool> = r.try_get(0).ok();
                if ok != Some(true) {
                    failures.push(format!("check.sql: {check} returned {ok:?}"));
                }
            }
            Err(e) => failures.push(format!("check.sql: {check} failed: {e:?}")),
        }
    }
    assert!(
        failures.is_empty(),
        "scenario {name} failed:\n- {}",
        failures.join("\n- ")
    );
}

fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[test]
fn workload_templates_parse_with_attributes() {
    let t = parse_workload(
        "-- a comment\n-- tx weight=3 isolation=repeatable_read\nUPDATE {t} SET v = $10\n  WHERE id = $1;\n\
         -- tx\nDELETE FROM p WHERE id = $9;\nSELECT 1;\n",
    );
    assert_eq!(t.len(), 2);
    assert_eq!(t[0].weight, 3);
    assert_eq!(t[0].isolation, Isolation::RepeatableRead);
    assert_eq!(
        t[0].statements,
        vec!["UPDATE {t} SET v = $10\n  WHERE id = $1"]
    );
    assert_eq!(t[1].statements.len(), 2);
    let mut p = [0i64; 10];
    for (i, v) in p.iter_mut().enumerate() {
        *v = i as i64 + 100;
    }
    assert_eq!(substitute("$1 $10 $9", &p), "100 109 108");
}

#[test]
fn expect_and_settings_parse() {
    assert_eq!(parse_expect(None), Expect::Success);
    assert_eq!(
        parse_expect(Some("refused 3 view v uses\n")),
        Expect::Refused {
            code: 3,
            message: "view v uses".into()
        }
    );
    let s = parse_settings(Some("writers=3\nkeys=50\ncompare_exclude=a, b\n"));
    assert_eq!((s.writers, s.keys), (3, 50));
    assert_eq!(s.compare_exclude, vec!["a", "b"]);
}
