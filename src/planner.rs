//! `pg-hotswap plan` and `run --dry-run` (issue 6): everything a run would do to a table, the
//! locks it would take, the disk it needs and how long it would take — changing nothing.
//!
//! Invariant kept here: after `plan` the database is exactly as before (schema, data, no state
//! schema or rows). Every object it creates lives in a transaction that is rolled back: the
//! shadow with the ALTER applied (`shadow::build_in`, which validates the ALTER and the mapping
//! and yields the run's plan), and the sample sessions of `sampling`, which measure the copy,
//! the index builds, ANALYZE and replay on a sample of the real table. The estimate is
//! extrapolated from those measurements and the table's write rate observed over `--observe`
//! (docs/plan.md says how, and what it cannot see). The checks of `checks` are shared with `run`.

use crate::catalog;
use crate::checks::{self, Check, CheckInput, DiskNeed, FreeSpace, Verdict};
use crate::chunks::{self, Chunk};
use crate::conn;
use crate::error::{DbContext, Error, Kind, Result, RowExt};
use crate::ident::QualifiedName;
use crate::locking::LockPolicy;
use crate::migrator::RunOptions;
use crate::plan::{ColumnSource, Plan};
use crate::preflight::{self, Source};
use crate::sampling::{self, Extras, SessionJob, SessionResult, Window};
use crate::shadow::{self, ShadowRequest};
use crate::state::State;
use crate::statements::{self, ListInput, PhaseStatements, Statement};
use crate::ui;
use serde::Serialize;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_postgres::Client;

/// Options of `plan`: those of `run`, and how to measure.
#[derive(Clone, Debug)]
pub struct PlanOptions {
    pub run: RunOptions,
    /// How long to watch the table's write counters (at least).
    pub observe: Duration,
    /// Rows to copy as a sample (default: 2% of the table, between 20,000 and 200,000).
    pub sample_rows: Option<i64>,
    /// Superuser only: ask `df` on the server for free disk (COPY ... FROM PROGRAM).
    pub df_on_server: bool,
}

/// Version of the JSON shape (docs/plan.md); bumped on incompatible changes.
pub const FORMAT: u32 = 1;

/// The whole plan, as printed (`--output json` serializes exactly this).
#[derive(Clone, Debug, Serialize)]
pub struct PlanReport {
    pub format: u32,
    pub table: String,
    /// The server's version and whether the CI tests it (`PostgreSQL 18.4 (tested)`).
    pub server: Option<String>,
    /// The worst verdict: `blocking` means `run` would refuse (and `plan` exits with 3).
    pub verdict: Verdict,
    pub exit_code: i32,
    /// Why the table or the ALTER cannot be rewritten (then most sections below are empty).
    pub refused: Option<String>,
    pub source: Option<SourceSummary>,
    pub columns: Vec<ColumnLine>,
    /// PostgreSQL's own ALTER on sampled rows against the mapping (issue 13, `oracle.rs`).
    pub sample_check: Option<crate::oracle::SampleCheck>,
    pub carried_over: Option<CarriedOver>,
    /// Preflight warnings (as `run` prints them).
    pub warnings: Vec<String>,
    pub checks: Vec<Check>,
    pub phases: Vec<PhaseReport>,
    pub disk: Option<DiskReport>,
    pub estimate: Option<Estimate>,
}

#[derive(Clone, Debug, Serialize)]
pub struct SourceSummary {
    pub rows: i64,
    /// `estimated` (pg_class.reltuples) or `counted`.
    pub rows_basis: &'static str,
    pub heap_bytes: u64,
    pub index_bytes: u64,
    pub total_bytes: u64,
    pub row_identity_index: String,
    pub row_identity: Vec<String>,
    pub shadow: String,
    pub old_name: String,
}

/// One column of the new table (or a dropped one of the old).
#[derive(Clone, Debug, Serialize)]
pub struct ColumnLine {
    pub column: String,
    /// kept, cast, renamed, mapped, default, generated, dropped.
    pub kind: &'static str,
    pub from: Option<String>,
    pub to: Option<String>,
    /// The SQL expression over the old row that produces it.
    pub expr: Option<String>,
    pub data_loss: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct Named {
    pub name: String,
    pub definition: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct CarriedOver {
    /// Indexes of the new table under their final names.
    pub indexes: Vec<Named>,
    /// Indexes of the old table the ALTER dropped.
    pub dropped_indexes: Vec<String>,
    pub constraints: Vec<Named>,
    pub incoming_foreign_keys: Vec<Named>,
    pub views: Vec<String>,
    pub triggers: Vec<String>,
    pub sequences: Vec<Named>,
    pub grants: Vec<String>,
    pub policies: Vec<String>,
    pub publications: Vec<String>,
    pub statistics: Vec<String>,
    pub rules: usize,
    pub comment: bool,
    pub row_level_security: bool,
    pub replica_identity: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct PhaseReport {
    pub phase: String,
    pub estimate_secs: Option<f64>,
    /// How the estimate was made.
    pub basis: String,
    pub single_transaction: bool,
    pub statements: Vec<Statement>,
}

#[derive(Clone, Debug, Serialize)]
pub struct DiskReport {
    pub new_table_bytes: u64,
    pub new_indexes_bytes: u64,
    pub log_bytes: u64,
    pub wal_generated_bytes: u64,
    /// WAL on disk at the peak (all of it when archived or held by a replication slot).
    pub wal_retained_bytes: u64,
    pub needed_bytes: u64,
    /// Free space per filesystem, where knowable (superuser only).
    pub free: Vec<FreeSpace>,
    pub note: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct SampleReport {
    /// `key ranges`, `tablesample` or `whole table`.
    pub method: &'static str,
    pub windows: usize,
    pub rows: u64,
    pub bytes: u64,
    /// Share of the table's rows.
    pub fraction: f64,
    pub rows_per_sec: f64,
    /// Rows per second of each window.
    pub window_rows_per_sec: Vec<f64>,
    /// Coefficient of variation of the windows' speeds.
    pub variation: f64,
    /// Copy speed of `--jobs` streams relative to one, measured (1 without jobs).
    pub parallel_speedup: f64,
    pub parallel_streams_measured: usize,
}

#[derive(Clone, Debug, Serialize)]
pub struct IndexEstimate {
    pub name: String,
    pub secs: f64,
    pub bytes: u64,
    /// Growth exponent of build time with rows, fitted from the two sample builds.
    pub exponent: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Estimate {
    pub total_secs: f64,
    pub low_secs: f64,
    pub high_secs: f64,
    /// high, medium or low.
    pub confidence: &'static str,
    pub reasons: Vec<String>,
    pub jobs: usize,
    pub sample: SampleReport,
    pub indexes: Vec<IndexEstimate>,
    pub write_rate_per_sec: f64,
    pub observed_secs: f64,
    pub replay_rows_per_sec: Option<f64>,
    /// The longest the capture trigger or the swap can keep trying for its lock, in total.
    pub worst_case_lock_secs: f64,
    pub warnings: Vec<String>,
}

fn report(table: String) -> PlanReport {
    PlanReport {
        format: FORMAT,
        table,
        server: crate::error::noted_server_version().map(catalog::describe_server_version),
        verdict: Verdict::Ok,
        exit_code: 0,
        refused: None,
        source: None,
        columns: Vec::new(),
        sample_check: None,
        carried_over: None,
        warnings: Vec::new(),
        checks: Vec::new(),
        phases: Vec::new(),
        disk: None,
        estimate: None,
    }
}

impl PlanReport {
    fn finish(mut self) -> PlanReport {
        self.verdict = checks::worst(&self.checks);
        if self.refused.is_some() {
            self.verdict = Verdict::Blocking;
        }
        self.exit_code = if self.verdict == Verdict::Blocking {
            Kind::Refused.exit_code()
        } else {
            0
        };
        self
    }
}

/// Makes the plan. `Err` only for failures to plan at all (connection, an unknown table); a
/// table or ALTER that cannot be rewritten gives a report with `refused` and exit code 3.
pub async fn plan(opts: &PlanOptions) -> Result<PlanReport> {
    let o = &opts.run;
    let state = State::new(&o.state_schema);
    let mut ctl = conn::connect(&o.conn, "plan").await?;
    let oid = catalog::resolve_table(&ctl, &o.table).await?;
    let observe_from = Instant::now();
    let writes_before = write_counter(&ctl, oid).await?;

    let (src, warnings) = match preflight::inspect(&ctl, oid).await {
        Ok(x) => x,
        Err(e) if e.kind() == Kind::Refused => {
            let t = catalog::table(&ctl, oid).await?;
            let mut r = report(t.name.human());
            r.refused = Some(e.message().to_string());
            let input = check_input(o, oid, &t.name, None, DiskNeed::default());
            r.checks = checks::run_all(&ctl, &input).await.0;
            return Ok(r.finish());
        }
        Err(e) => return Err(e),
    };
    let table = src.table.name.clone();
    let mut r = report(table.human());
    r.warnings = warnings;
    let provisional = DiskNeed {
        data_bytes: src.table.total_bytes.max(0) as u64,
        wal_bytes: src.table.total_bytes.max(0) as u64,
    };
    r.checks = checks::run_all(&ctl, &check_input(o, oid, &table, Some(&src), provisional))
        .await
        .0;
    if r.checks
        .iter()
        .any(|c| c.name == "privileges" && c.verdict == Verdict::Blocking)
    {
        // The shadow cannot be created with these rights: nothing to measure.
        return Ok(r.finish());
    }

    // The shadow, validated in a transaction that is rolled back.
    let shadow_name = match &o.shadow_name {
        Some(n) => {
            if catalog::relation_exists(&ctl, &table.schema, n).await? {
                return Err(Error::usage(format!(
                    "--shadow-name {n:?}: a relation of that name already exists in schema {}",
                    table.schema.as_str()
                )));
            }
            n.clone()
        }
        None => catalog::free_name(&ctl, &table.schema, table.name.as_str(), "_new", &[]).await?,
    };
    let shadow = table.sibling(shadow_name.clone());
    let req = ShadowRequest {
        alter: o.alter.as_deref(),
        maps: &o.maps,
        shadow_name: o.shadow_name.as_deref(),
    };
    let (plan, shadow_locks, shadow_secs) =
        match validate(&mut ctl, &state, &src, &req, &shadow, &o.lock).await {
            Ok(x) => x,
            Err(e) if e.kind() == Kind::Refused => {
                r.refused = Some(e.message().to_string());
                return Ok(r.finish());
            }
            Err(e) => return Err(e),
        };
    r.columns = columns(&plan);
    r.sample_check = plan.sample_check.clone();
    r.carried_over = Some(carried_over(&plan, &src, &table));

    // Rows: the catalog's estimate, or a count when the table was never analyzed.
    let (rows, rows_basis) = if src.table.reltuples > 0.0 {
        (src.table.reltuples as i64, "estimated")
    } else {
        let n: i64 = ctl
            .query_one(&format!("SELECT count(*) FROM ONLY {table}"), &[])
            .await
            .ctx(format_args!("counting the rows of {}", table.human()))?
            .col(0, &format_args!("counting the rows of {}", table.human()))?;
        (n, "counted")
    };
    let index_bytes: i64 = ctl
        .query_one(
            "SELECT pg_catalog.pg_indexes_size($1::oid::regclass)",
            &[&oid],
        )
        .await
        .ctx("reading the size of the indexes")?
        .col(0, &"reading the size of the indexes")?;
    let old_name = match &o.old_name {
        Some(n) => n.clone(),
        None => catalog::free_name(&ctl, &table.schema, table.name.as_str(), "_old", &[]).await?,
    };
    r.source = Some(SourceSummary {
        rows,
        rows_basis,
        heap_bytes: src.table.heap_bytes.max(0) as u64,
        index_bytes: index_bytes.max(0) as u64,
        total_bytes: src.table.total_bytes.max(0) as u64,
        row_identity_index: src.key_index.as_str().to_string(),
        row_identity: src.key.iter().map(|k| k.as_str().to_string()).collect(),
        shadow: shadow.human(),
        old_name: table.sibling(old_name.clone()).human(),
    });

    // Measure on a sample.
    let measured = match measure(opts, &ctl, &src, &plan, rows).await {
        Ok(m) => m,
        Err(e) if e.code().is_some() && e.kind() != Kind::LockTimeout && is_data_error(&e) => {
            r.refused = Some(format!(
                "copying a sample of the table through the mapping failed, so the run would fail during the copy: {}",
                e.message()
            ));
            return Ok(r.finish());
        }
        Err(e) => return Err(e),
    };
    // The write rate, over at least --observe.
    let left = opts.observe.saturating_sub(observe_from.elapsed());
    tokio::time::sleep(left).await;
    let writes_after = write_counter(&ctl, oid).await?;
    let observed_secs = observe_from.elapsed().as_secs_f64();
    let write_rate = (writes_after - writes_before).max(0) as f64 / observed_secs.max(0.001);

    let est = estimate(
        opts,
        &ctl,
        &plan,
        rows,
        shadow_secs,
        &measured,
        write_rate,
        observed_secs,
    )
    .await?;
    let wal_retained = checks::wal_retained(&ctl, est.wal_generated).await?;
    let need = DiskNeed {
        data_bytes: est.new_table + est.new_indexes + est.log_bytes,
        wal_bytes: wal_retained,
    };
    // The disk check again, with the measured sizes.
    let (disk_check, free) = checks::disk_check(&ctl, oid, need, opts.df_on_server).await;
    if let Some(c) = r.checks.iter_mut().find(|c| c.name == "disk") {
        *c = disk_check;
    }
    r.disk = Some(DiskReport {
        new_table_bytes: est.new_table,
        new_indexes_bytes: est.new_indexes,
        log_bytes: est.log_bytes,
        wal_generated_bytes: est.wal_generated,
        wal_retained_bytes: wal_retained,
        needed_bytes: need.data_bytes + need.wal_bytes,
        note: if free.is_empty() {
            "free disk is not knowable from SQL without superuser rights (pg_tablespace_size is \
             what is used, not what is free); check the server"
                .into()
        } else {
            "free space as df reports it on the server".into()
        },
        free,
    });

    // Statements, phase by phase, with the estimate of each.
    let chunk_list = plan_chunk_list(&ctl, &plan, &src, o.chunk_rows).await?;
    let state_exists = state.exists(&ctl).await?;
    let listing = statements::list(&ListInput {
        plan: &plan,
        src: &src,
        state: &state,
        policy: &o.lock,
        state_exists,
        chunks: chunk_list.1,
        first_chunk: chunk_list.0.as_ref(),
        jobs: o.jobs,
        replay_batch: o.replay_batch,
        chunk_rows: o.chunk_rows,
        chunk_time: o.chunk_time,
        copy_transactions: est.copy_transactions,
        drop_old: o.drop_old,
        old_name: &old_name,
        maintenance_work_mem: &o.maintenance_work_mem,
        shadow_locks: &shadow_locks,
    });
    r.phases = merge(listing, &est.phases);
    r.estimate = Some(est.estimate);
    Ok(r.finish())
}

fn check_input<'a>(
    o: &'a RunOptions,
    oid: u32,
    table: &'a QualifiedName,
    src: Option<&'a Source>,
    disk: DiskNeed,
) -> CheckInput<'a> {
    CheckInput {
        table_oid: oid,
        table,
        source: src,
        jobs: o.jobs,
        state_schema: &o.state_schema,
        disk,
        conn: &o.conn,
    }
}

/// SQLSTATE classes that mean the data does not fit the mapping (22: data exception, 23:
/// integrity constraint violation), as opposed to a failure of the tool or the server.
fn is_data_error(e: &Error) -> bool {
    e.code()
        .map(|c| c.code().starts_with("22") || c.code().starts_with("23"))
        .unwrap_or(false)
}

/// Inserts, updates and deletes of the table so far (fresh statistics snapshot).
async fn write_counter(client: &Client, oid: u32) -> Result<i64> {
    client
        .batch_execute("SELECT pg_catalog.pg_stat_clear_snapshot()")
        .await
        .ctx("reading the table's write counters")?;
    Ok(client
        .query_opt(
            "SELECT (n_tup_ins + n_tup_upd + n_tup_del)::int8 FROM pg_catalog.pg_stat_user_tables WHERE relid = $1",
            &[&oid],
        )
        .await
        .ctx("reading the table's write counters")?
        .map(|r| r.col(0, &"reading the table's write counters"))
        .transpose()?
        .unwrap_or(0))
}

/// Creates the shadow in a transaction, reads the plan and the locks it took, rolls back.
async fn validate(
    client: &mut Client,
    state: &State,
    src: &Source,
    req: &ShadowRequest<'_>,
    shadow: &QualifiedName,
    policy: &LockPolicy,
) -> Result<(Plan, Vec<(String, String)>, f64)> {
    let mut tries = crate::locking::Retry::new(policy, "creating the shadow for the plan");
    loop {
        tries.start();
        let started = Instant::now();
        let tx = client
            .transaction()
            .await
            .ctx("starting the plan's shadow transaction")?;
        let result = async {
            let plan = shadow::build_in(&tx, state, 0, src, req, shadow).await?;
            let locks = sampling::existing_locks(&tx).await?;
            Ok::<_, Error>((plan, locks))
        }
        .await;
        let secs = started.elapsed().as_secs_f64();
        tx.rollback()
            .await
            .ctx("rolling the plan's shadow transaction back")?;
        if let Some((p, l)) = tries.settle(result).await? {
            return Ok((p, l, secs));
        }
    }
}

fn columns(plan: &Plan) -> Vec<ColumnLine> {
    let mut out = Vec::new();
    for c in &plan.columns {
        let line = |kind, from: Option<String>, to: Option<String>| ColumnLine {
            column: c.column.as_str().to_string(),
            kind,
            from,
            to,
            expr: c.expr.clone(),
            data_loss: false,
        };
        out.push(match &c.source {
            ColumnSource::Same => line("kept", None, None),
            ColumnSource::Cast { from, to } => line("cast", Some(from.clone()), Some(to.clone())),
            ColumnSource::Renamed { from, cast_to } => {
                line("renamed", Some(from.clone()), cast_to.clone())
            }
            ColumnSource::Using { from, to, .. } => {
                line("using", Some(from.clone()), Some(to.clone()))
            }
            ColumnSource::Mapped { .. } => line("mapped", None, None),
            ColumnSource::Default => line("default", None, None),
            ColumnSource::Generated => line("generated", None, None),
        });
    }
    for d in &plan.dropped {
        out.push(ColumnLine {
            column: d.as_str().to_string(),
            kind: "dropped",
            from: None,
            to: None,
            expr: None,
            data_loss: true,
        });
    }
    out
}

fn carried_over(plan: &Plan, src: &Source, table: &QualifiedName) -> CarriedOver {
    CarriedOver {
        indexes: plan
            .indexes
            .iter()
            .map(|i| Named {
                name: i.final_name.as_str().to_string(),
                definition: if i.built_by_constraint {
                    i.constraint_sql.clone().unwrap_or_default()
                } else {
                    i.create_sql.clone()
                },
            })
            .collect(),
        dropped_indexes: plan
            .dropped_indexes
            .iter()
            .map(|i| i.as_str().to_string())
            .collect(),
        constraints: src
            .constraints
            .iter()
            .map(|c| Named {
                name: c.name.as_str().to_string(),
                definition: c.def.clone(),
            })
            .collect(),
        incoming_foreign_keys: src
            .incoming
            .iter()
            .map(|f| Named {
                name: format!("{} on {}", f.name.as_str(), f.table.human()),
                definition: f.def.clone(),
            })
            .collect(),
        views: src.views.iter().map(|v| v.name.human()).collect(),
        triggers: src
            .user_triggers()
            .map(|t| t.name.as_str().to_string())
            .collect(),
        sequences: src
            .sequences
            .iter()
            .map(|s| Named {
                name: s.name.human(),
                definition: if s.deptype == "i" {
                    format!(
                        "identity of column {}: continues from its position",
                        s.column.as_str()
                    )
                } else {
                    format!(
                        "serial of column {}: handed to the new table",
                        s.column.as_str()
                    )
                },
            })
            .collect(),
        grants: src.grants.iter().map(|g| g.sql(table)).collect(),
        policies: src
            .policies
            .iter()
            .map(|p| p.name.as_str().to_string())
            .collect(),
        publications: src
            .publications
            .iter()
            .map(|p| p.name.as_str().to_string())
            .collect(),
        statistics: src.statistics.iter().map(|s| s.name.human()).collect(),
        rules: src.rules.len(),
        comment: src.table.comment.is_some(),
        row_level_security: src.table.row_security,
        replica_identity: match src.table.replica_identity.as_str() {
            "f" => "full",
            "n" => "nothing",
            "i" => "index",
            _ => "default",
        }
        .to_string(),
    }
}

fn is_integer_key(plan: &Plan) -> bool {
    plan.key.len() == 1
        && ["smallint", "integer", "bigint"].contains(&plan.key[0].source_type.as_str())
}

/// The run's chunks for an integer key (cheap: min and max); for other keys only their number
/// (planning them walks the whole key index).
async fn plan_chunk_list(
    client: &Client,
    plan: &Plan,
    src: &Source,
    chunk_rows: i64,
) -> Result<(Option<Chunk>, usize)> {
    if is_integer_key(plan) {
        let c = chunks::plan_chunks(client, plan, src.table.reltuples, chunk_rows).await?;
        Ok((c.first().cloned(), c.len()))
    } else {
        let n = (src.table.reltuples.max(1.0) / chunk_rows.max(1) as f64).ceil() as usize + 1;
        Ok((None, n))
    }
}

// ---------------------------------------------------------------------------------------------
// Measuring

struct Measured {
    method: &'static str,
    fraction_planned: f64,
    single: SessionResult,
    parallel: Option<(usize, f64)>,
    stat_rows: f64,
}

/// Windows over the source: `count` windows of about `rows_each` rows, placed at the given
/// fractions of the key space (integer key) or as block samples.
fn windows(
    plan: &Plan,
    range: Option<(i64, i64)>,
    rows: i64,
    rows_each: i64,
    positions: &[f64],
    seed: i32,
) -> Vec<Window> {
    match range {
        Some((min, max)) => {
            let span = (max as f64 - min as f64 + 1.0).max(1.0);
            let density = rows.max(1) as f64 / span;
            let k = &plan.key[0].name;
            positions
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    // Alternating sizes (0.5x, 1.5x) separate the per-chunk cost from the per-row one.
                    let size = if i % 2 == 0 { 0.5 } else { 1.5 };
                    let width = ((size * rows_each as f64 / density).ceil() as i64).max(1);
                    let start = (min as f64 + p * span) as i64 - width / 2;
                    let start = start.clamp(min, max);
                    Window {
                        clause: format!(
                            "WHERE {k} >= {start} AND {k} < {}",
                            start.saturating_add(width)
                        ),
                    }
                })
                .collect()
        }
        None => {
            let pct = (100.0 * rows_each as f64 / rows.max(1) as f64).clamp(0.0001, 100.0);
            positions
                .iter()
                .enumerate()
                .map(|(i, _)| {
                    let size = if i % 2 == 0 { 0.5 } else { 1.5 };
                    Window {
                        clause: format!(
                            "TABLESAMPLE SYSTEM ({:.6}) REPEATABLE ({})",
                            (pct * size).min(100.0),
                            seed + i as i32
                        ),
                    }
                })
                .collect()
        }
    }
}

async fn measure(
    opts: &PlanOptions,
    ctl: &Client,
    src: &Source,
    plan: &Plan,
    rows: i64,
) -> Result<Measured> {
    let o = &opts.run;
    let target = opts
        .sample_rows
        .unwrap_or_else(|| ((rows as f64 * 0.02) as i64).clamp(20_000, 200_000))
        .max(1);
    let k = 4usize;
    let whole = rows <= target + target / 5;
    let range = if is_integer_key(plan) && !whole {
        let kname = &plan.key[0].name;
        let row = ctl
            .query_one(
                &format!(
                    "SELECT min({kname})::int8, max({kname})::int8 FROM ONLY {}",
                    plan.source
                ),
                &[],
            )
            .await
            .ctx("reading the key range")?;
        match (
            row.col::<Option<i64>>(0, &"reading the key range")?,
            row.col::<Option<i64>>(1, &"reading the key range")?,
        ) {
            (Some(a), Some(b)) => Some((a, b)),
            _ => None,
        }
    } else {
        None
    };
    let method = if whole {
        "whole table"
    } else if range.is_some() {
        "key ranges"
    } else {
        "tablesample"
    };
    let positions: Vec<f64> = (0..k).map(|i| (i as f64 + 0.5) / k as f64).collect();
    let first_windows = if whole {
        vec![Window {
            clause: String::new(),
        }]
    } else {
        windows(plan, range, rows, target / k as i64, &positions, 1)
    };
    // The sample's shadows: never the name the run would use, one per session.
    let mut taken = vec![plan.shadow.name.as_str().to_string()];
    let jobs_measured = if o.jobs > 1 { o.jobs.min(4) } else { 0 };
    let mut names = Vec::new();
    for _ in 0..=jobs_measured {
        let n = catalog::free_name(
            ctl,
            &src.table.name.schema,
            src.table.name.name.as_str(),
            "_plan",
            &taken,
        )
        .await?;
        taken.push(n.clone());
        names.push(src.table.name.sibling(n));
    }
    // Outgoing foreign keys are left off the sample's shadow (see `sampling`).
    let mut stripped = src.clone();
    stripped.constraints.retain(|c| c.kind != "f");
    let base = SessionJob {
        spec: o.conn.clone(),
        src: stripped,
        alter: o.alter.clone(),
        maps: o.maps.clone(),
        shadow: names[0].clone(),
        run: -1,
        windows: first_windows,
        extras: Some(Extras {
            maintenance_work_mem: o.maintenance_work_mem.clone(),
            replay_keys: o.replay_batch,
        }),
        barrier: None,
    };
    // On a runtime worker, like the copy workers (not on the thread that drives `main`).
    let single = tokio::spawn(sampling::session(base.clone()))
        .await
        .map_err(|e| Error::failed(format!("the sample session panicked: {e}")))??;
    if !single.foreign_locks.is_empty() {
        return Err(Error::failed(format!(
            "measuring would hold {} for the whole measurement (the ALTER adds a foreign key?); not measured",
            single
                .foreign_locks
                .iter()
                .map(|(r, m)| format!("{} on {r}", statements::mode_name(m)))
                .collect::<Vec<_>>()
                .join(", ")
        ))
        .with_next("run plan without the foreign key in --alter to get an estimate"));
    }
    // Several streams at once, on other parts of the table (not the ones just read into cache).
    let parallel = if jobs_measured > 1 && !whole {
        let barrier = Arc::new(tokio::sync::Barrier::new(jobs_measured));
        let pos: Vec<f64> = (0..jobs_measured)
            .map(|i| (i as f64 + 0.2) / jobs_measured as f64)
            .collect();
        let each = windows(plan, range, rows, target / k as i64, &pos, 101);
        let jobs: Vec<SessionJob> = (0..jobs_measured)
            .map(|i| SessionJob {
                shadow: names[i + 1].clone(),
                run: -2 - i as i64,
                windows: vec![each[i].clone()],
                extras: None,
                barrier: Some(barrier.clone()),
                ..base.clone()
            })
            .collect();
        let results = sampling::concurrent(jobs).await?;
        let all: Vec<&sampling::WindowResult> =
            results.iter().flat_map(|r| r.windows.iter()).collect();
        let start = all.iter().map(|w| w.started).min();
        let end = all.iter().map(|w| w.ended).max();
        match (start, end) {
            (Some(s), Some(e)) if !all.is_empty() => {
                let wall = (e - s).as_secs_f64().max(1e-6);
                let rows: u64 = all.iter().map(|w| w.rows).sum();
                Some((jobs_measured, rows as f64 / wall))
            }
            _ => None,
        }
    } else {
        None
    };
    let stat_target: f64 = ctl
        .query_one(
            "SELECT pg_catalog.current_setting('default_statistics_target')::float8",
            &[],
        )
        .await
        .ctx("reading default_statistics_target")?
        .col(0, &"reading default_statistics_target")?;
    Ok(Measured {
        method,
        fraction_planned: if whole {
            1.0
        } else {
            target as f64 / rows.max(1) as f64
        },
        single,
        parallel,
        stat_rows: 300.0 * stat_target,
    })
}

// ---------------------------------------------------------------------------------------------
// Estimating

struct Estimated {
    estimate: Estimate,
    /// Copy transactions expected (several chunks each with --chunk-time).
    copy_transactions: usize,
    /// (phase, seconds, basis).
    phases: Vec<(String, Option<f64>, String)>,
    new_table: u64,
    new_indexes: u64,
    log_bytes: u64,
    wal_generated: u64,
}

/// Longest-processing-time-first schedule of `times` on `workers`: the makespan.
pub fn makespan(times: &[f64], workers: usize) -> f64 {
    let mut t: Vec<f64> = times.to_vec();
    t.sort_by(|a, b| b.partial_cmp(a).unwrap_or(std::cmp::Ordering::Equal));
    let mut load = vec![0.0f64; workers.max(1)];
    for x in t {
        let (i, _) = load
            .iter()
            .enumerate()
            .min_by(|a, b| a.1.partial_cmp(b.1).unwrap_or(std::cmp::Ordering::Equal))
            .expect("a worker");
        load[i] += x;
    }
    load.into_iter().fold(0.0, f64::max)
}

/// The growth exponent of a build's time with rows, from two sample builds: between 1 (linear)
/// and 1.25; 1.1 when the timings are too small to tell.
pub fn growth_exponent(rows_half: u64, secs_half: f64, rows_full: u64, secs_full: f64) -> f64 {
    if rows_full <= rows_half || secs_half < 0.005 || secs_full < 0.005 {
        return 1.1;
    }
    let a = (secs_full / secs_half).ln() / (rows_full as f64 / rows_half as f64).ln();
    if a.is_finite() {
        a.clamp(1.0, 1.25)
    } else {
        1.1
    }
}

/// Least squares `secs = fixed + per_row * rows` over (rows, secs); None when the sizes do not
/// differ enough or the fit is not physical (negative cost).
pub fn fit_line(points: &[(f64, f64)]) -> Option<(f64, f64)> {
    if points.len() < 2 {
        return None;
    }
    let n = points.len() as f64;
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    if sxx <= (0.1 * mx).powi(2) * n {
        return None;
    }
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let b = sxy / sxx;
    let a = my - b * mx;
    if b <= 0.0 {
        return None;
    }
    // A negative intercept is noise: no per-chunk cost then.
    Some((a.max(0.0), if a < 0.0 { my / mx } else { b }))
}

/// Mean and coefficient of variation.
pub fn mean_cv(xs: &[f64]) -> (f64, f64) {
    if xs.is_empty() {
        return (0.0, 0.0);
    }
    let m = xs.iter().sum::<f64>() / xs.len() as f64;
    if xs.len() < 2 || m <= 0.0 {
        return (m, 0.0);
    }
    let var = xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (xs.len() - 1) as f64;
    (m, var.sqrt() / m)
}

/// Total seconds the lock discipline may spend on one step: every attempt waits at most the
/// timeout, with the (capped, jittered up to 1.5x) backoff between attempts.
pub fn worst_case_lock_secs(p: &LockPolicy) -> f64 {
    let mut total = p.timeout.as_secs_f64() * p.attempts as f64;
    for a in 1..p.attempts {
        let exp = 1u32 << a.saturating_sub(1).min(5);
        let base = p
            .delay
            .saturating_mul(exp)
            .min(Duration::from_secs(10))
            .as_secs_f64();
        total += base * 1.5;
    }
    total
}

#[allow(clippy::too_many_arguments)]
async fn estimate(
    opts: &PlanOptions,
    _ctl: &Client,
    plan: &Plan,
    rows: i64,
    shadow_secs: f64,
    m: &Measured,
    write_rate: f64,
    observed_secs: f64,
) -> Result<Estimated> {
    let o = &opts.run;
    let n = rows.max(0) as f64;
    let s = &m.single;
    let sample_rows = s.rows().max(1) as f64;
    let sample_secs: f64 = s.windows.iter().map(|w| w.secs).sum::<f64>().max(1e-6);
    let rate = s.rows() as f64 / sample_secs;
    let window_rates: Vec<f64> = s
        .windows
        .iter()
        .filter(|w| w.rows > 0)
        .map(|w| w.rows as f64 / w.secs.max(1e-6))
        .collect();
    let (_, cv) = mean_cv(&window_rates);
    let speedup = match m.parallel {
        Some((_, prate)) if rate > 0.0 => (prate / rate).clamp(0.25, o.jobs as f64),
        _ => 1.0,
    };
    let scale = n / sample_rows;
    // Per chunk and per row costs, fitted over the windows (of different sizes); a chunk of the
    // run pays the per-chunk cost once.
    let points: Vec<(f64, f64)> = s.windows.iter().map(|w| (w.rows as f64, w.secs)).collect();
    // With --chunk-time a transaction copies several chunks: the per-transaction cost is paid
    // as often as the sizer, played out at the measured speed of one of the jobs, starts one.
    let chunks = (n / o.chunk_rows.max(1) as f64).ceil().max(1.0);
    let fit = fit_line(&points);
    let per_row = match fit {
        Some((_, per_row)) => per_row,
        None if rate > 0.0 => 1.0 / rate,
        None => 0.0,
    };
    let jobs = o.jobs.max(1) as f64;
    let secs_per_chunk_per_job = o.chunk_rows.max(1) as f64 * per_row * jobs / speedup;
    let transactions = crate::batching::transactions(
        chunks as usize,
        secs_per_chunk_per_job,
        o.chunk_time,
        o.jobs,
    ) as f64;
    let copy_secs = match fit {
        Some((fixed, per_row)) => (transactions * fixed + n * per_row) / speedup,
        None if rate > 0.0 => n / (rate * speedup),
        None => 0.0,
    };

    let mut index_est = Vec::new();
    for ix in &s.indexes {
        let a = growth_exponent(ix.rows_half, ix.secs_half, ix.rows_full, ix.secs_full);
        index_est.push(IndexEstimate {
            name: ix.name.clone(),
            secs: ix.secs_full * scale.max(1.0).powf(a),
            bytes: (ix.bytes_full as f64 * scale) as u64,
            exponent: a,
        });
    }
    let index_secs = makespan(
        &index_est.iter().map(|i| i.secs).collect::<Vec<_>>(),
        o.jobs,
    );
    let analyze_secs = s.analyze_secs.unwrap_or(0.0)
        * (n.min(m.stat_rows) / sample_rows.min(m.stat_rows)).max(1.0);
    let replay_rate = s.replay.map(|(r, secs)| r as f64 / secs.max(1e-6));
    let capture_secs = 0.05;
    let before_replay = shadow_secs + capture_secs + copy_secs + index_secs;
    let mut warnings = Vec::new();
    let replay_secs = match replay_rate {
        _ if write_rate <= 0.0 => Some(0.0),
        Some(rr) if rr > write_rate * 1.05 => Some(write_rate * before_replay / (rr - write_rate)),
        Some(rr) => {
            warnings.push(format!(
                "the table takes {write_rate:.0} writes/s but replay was measured at {rr:.0} rows/s: replay would not catch up, and the swap would never come"
            ));
            None
        }
        None => None,
    };
    // Verification: both sides' row hashes measured on the sample, scaled to the table and to
    // the share of chunks the mode checks, on as many sessions as the copy.
    let verify_share = match o.verify {
        crate::verify::Mode::Full => 1.0,
        crate::verify::Mode::Sample => 0.1,
        crate::verify::Mode::Off => 0.0,
    };
    let verify_secs = match s.verify {
        Some((vrows, vsecs)) if vrows > 0 => vsecs * (n / vrows as f64) * verify_share / speedup,
        _ => 0.0,
    };
    let swap_secs = 0.05 + replay_rate.map(|rr| write_rate * 0.2 / rr).unwrap_or(0.0);
    let finish_secs = 0.05;
    let replay_phase = replay_secs.map(|r| r + analyze_secs);

    let phases = vec![
        ("preflight".to_string(), Some(0.0), "reads the catalog".to_string()),
        (
            "shadow".to_string(),
            Some(shadow_secs),
            "measured: the shadow was created (and rolled back) on the real table".to_string(),
        ),
        (
            "capture".to_string(),
            Some(capture_secs),
            if is_integer_key(plan) {
                "milliseconds when the lock is granted at the first attempt".to_string()
            } else {
                "milliseconds for the trigger; planning the chunks walks the key index once (not measured)".to_string()
            },
        ),
        (
            "copy".to_string(),
            Some(copy_secs),
            format!(
                "measured: {} rows copied at {:.0} rows/s through the binary COPY pipe{}, extrapolated to {} rows in about {transactions:.0} transaction{}{}",
                s.rows(),
                rate,
                if o.jobs > 1 {
                    format!(", {speedup:.2}x with {} streams", m.parallel.map(|p| p.0).unwrap_or(1))
                } else {
                    String::new()
                },
                rows,
                if transactions == 1.0 { "" } else { "s" },
                match o.chunk_time {
                    Some(t) => format!(
                        " of up to {:.1} s (--chunk-time; {chunks:.0} chunks of {} rows)",
                        t.as_secs_f64(),
                        o.chunk_rows
                    ),
                    None => format!(" (one per chunk of {} rows)", o.chunk_rows),
                }
            ),
        ),
        (
            "build".to_string(),
            Some(index_secs),
            format!(
                "measured: each index built on the sample at two sizes, scaled to the table, scheduled on {} connection(s){}",
                o.jobs,
                if plan.foreign_keys.is_empty() { "" } else { "; foreign key validation not measured" }
            ),
        ),
        (
            "replay".to_string(),
            replay_phase,
            match replay_rate {
                Some(rr) => format!(
                    "{write_rate:.1} writes/s observed over {observed_secs:.1} s, replay measured at {rr:.0} rows/s; includes ANALYZE ({analyze_secs:.1} s)"
                ),
                None => format!("{write_rate:.1} writes/s observed; replay not measured"),
            },
        ),
        (
            "verify".to_string(),
            Some(verify_secs),
            match (o.verify, s.verify) {
                (crate::verify::Mode::Off, _) => "--verify off".to_string(),
                (_, Some((vrows, vsecs))) => format!(
                    "measured: row hashes of {vrows} sampled source rows and their shadow rows in {vsecs:.2} s, scaled to the {} ({:?})",
                    if verify_share < 1.0 { "chunks checked" } else { "table" },
                    o.verify
                ),
                _ => "not measured".to_string(),
            },
        ),
        (
            "swap".to_string(),
            Some(swap_secs),
            format!(
                "typically tens of milliseconds; each attempt waits at most {} ms for the lock",
                o.lock.timeout.as_millis()
            ),
        ),
        ("after swap".to_string(), Some(0.0), if plan.self_foreign_keys.is_empty() { "validates re-pointed foreign keys (not measured)".to_string() } else { "validates foreign keys (not measured)".to_string() }),
        ("finish".to_string(), Some(finish_secs), "drops the log and functions".to_string()),
    ];
    let total: f64 = phases.iter().filter_map(|p| p.1).sum();
    // Uncertainty: the copy's from the spread between windows, the others' from the model.
    let u_copy = if m.method == "whole table" {
        0.1
    } else {
        (2.0 * cv / (window_rates.len().max(1) as f64).sqrt()).max(0.1)
    };
    let parts = [
        copy_secs * u_copy,
        index_secs * 0.25,
        verify_secs * 0.25,
        replay_phase.unwrap_or(0.0) * 0.5,
        (shadow_secs + capture_secs + swap_secs + finish_secs) * 0.5,
    ];
    let half = parts.iter().map(|x| x * x).sum::<f64>().sqrt();
    let rel = if total > 0.0 { half / total } else { 0.0 };
    let mut reasons = vec![format!(
        "sample: {} rows in {} window(s) ({:.1}% of the table, {}), speed varied {:.0}% between windows",
        s.rows(),
        s.windows.len(),
        100.0 * (sample_rows / n.max(1.0)).min(1.0),
        m.method,
        cv * 100.0
    )];
    let mut confidence = if rel < 0.15 {
        "high"
    } else if rel < 0.35 {
        "medium"
    } else {
        "low"
    };
    if replay_phase.is_none() {
        confidence = "low";
        reasons.push("replay could not be estimated".into());
    }
    if m.method != "whole table" && sample_rows < 0.5 * m.fraction_planned * n {
        reasons.push(
            "the windows held fewer rows than planned (sparse keys): the sample is smaller".into(),
        );
    }
    if o.jobs > 1 && o.jobs > m.parallel.map(|p| p.0).unwrap_or(o.jobs) {
        reasons.push(format!(
            "{} parallel streams were measured; more jobs are assumed to gain nothing more",
            m.parallel.map(|p| p.0).unwrap_or(0)
        ));
    }
    reasons.push(
        "not measured: caching (the sample may be read from memory while the whole table is not), \
         the capture trigger's cost to the application, lock waits"
            .into(),
    );
    let new_table = (s.table_bytes as f64 * scale) as u64;
    let new_indexes: u64 = index_est.iter().map(|i| i.bytes).sum();
    let log_rows = write_rate * (before_replay + replay_secs.unwrap_or(0.0));
    // A log row: tuple header, id, flag and keys (~64 bytes), plus its primary key entry.
    let log_bytes = (log_rows * 100.0) as u64;
    let wal_generated = new_table + new_indexes + 2 * log_bytes;
    Ok(Estimated {
        copy_transactions: transactions as usize,
        estimate: Estimate {
            total_secs: total,
            low_secs: (total - half).max(0.0),
            high_secs: total + half,
            confidence,
            reasons,
            jobs: o.jobs,
            sample: SampleReport {
                method: m.method,
                windows: s.windows.len(),
                rows: s.rows(),
                bytes: s.windows.iter().map(|w| w.bytes).sum(),
                fraction: (sample_rows / n.max(1.0)).min(1.0),
                rows_per_sec: rate,
                window_rows_per_sec: window_rates,
                variation: cv,
                parallel_speedup: speedup,
                parallel_streams_measured: m.parallel.map(|p| p.0).unwrap_or(1),
            },
            indexes: index_est,
            write_rate_per_sec: write_rate,
            observed_secs,
            replay_rows_per_sec: replay_rate,
            worst_case_lock_secs: worst_case_lock_secs(&o.lock),
            warnings,
        },
        phases,
        new_table,
        new_indexes,
        log_bytes,
        wal_generated,
    })
}

fn merge(listing: Vec<PhaseStatements>, est: &[(String, Option<f64>, String)]) -> Vec<PhaseReport> {
    listing
        .into_iter()
        .map(|p| {
            let e = est.iter().find(|e| e.0 == p.phase);
            PhaseReport {
                estimate_secs: e.and_then(|e| e.1),
                basis: e.map(|e| e.2.clone()).unwrap_or_default(),
                phase: p.phase,
                single_transaction: p.single_transaction,
                statements: p.statements,
            }
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Text for people

fn secs(s: f64) -> String {
    if s < 1.0 {
        format!("{:.0} ms", s * 1000.0)
    } else if s < 120.0 {
        format!("{s:.1} s")
    } else if s < 7200.0 {
        format!("{:.1} min", s / 60.0)
    } else {
        format!("{:.1} h", s / 3600.0)
    }
}

/// The report as text.
pub fn render_text(r: &PlanReport) -> String {
    let mut o = String::new();
    let mut line = |s: String| {
        o.push_str(&s);
        o.push('\n');
    };
    let verdict = match r.verdict {
        Verdict::Ok => "OK: a run would start",
        Verdict::Warning => "WARNING: a run would start; read the warnings",
        Verdict::Blocking => "BLOCKING: a run would refuse (exit 3)",
    };
    line(format!("pg-hotswap plan for {} — {verdict}", r.table));
    line("nothing was changed: everything was tried in transactions that were rolled back".into());
    if let Some(server) = &r.server {
        line(format!("server: {server}"));
    }
    if let Some(why) = &r.refused {
        line(String::new());
        line(format!("REFUSED: {why}"));
    }
    if let Some(s) = &r.source {
        line(String::new());
        line(format!(
            "source: {} rows ({}), {} heap, {} indexes, {} in all; row identity {} ({})",
            s.rows,
            s.rows_basis,
            ui::bytes(s.heap_bytes),
            ui::bytes(s.index_bytes),
            ui::bytes(s.total_bytes),
            s.row_identity_index,
            s.row_identity.join(", ")
        ));
        line(format!(
            "shadow table: {}; the old table will be kept as {}",
            s.shadow, s.old_name
        ));
    }
    if !r.columns.is_empty() {
        line(String::new());
        line("Columns of the new table".into());
        for c in &r.columns {
            let how = match c.kind {
                "kept" => "kept".to_string(),
                "cast" => format!(
                    "cast from {} to {}",
                    c.from.as_deref().unwrap_or("?"),
                    c.to.as_deref().unwrap_or("?")
                ),
                "renamed" => match &c.to {
                    Some(t) => format!(
                        "renamed from {}, cast to {t}",
                        c.from.as_deref().unwrap_or("?")
                    ),
                    None => format!("renamed from {}", c.from.as_deref().unwrap_or("?")),
                },
                "mapped" => format!("computed as {}", c.expr.as_deref().unwrap_or("?")),
                "default" => "new column, takes its default".into(),
                "generated" => "generated, computed by the server".into(),
                "dropped" => {
                    "DROPPED — DATA LOSS: its values are not carried into the new table".into()
                }
                other => other.to_string(),
            };
            line(format!("  {:<24} {how}", c.column));
        }
    }
    if let Some(s) = &r.sample_check {
        line(String::new());
        line(s.summary());
    }
    if let Some(c) = &r.carried_over {
        line(String::new());
        line("Carried over".into());
        let list = |v: &[String]| {
            if v.is_empty() {
                "none".to_string()
            } else {
                v.join(", ")
            }
        };
        line(format!(
            "  indexes ({}): {}",
            c.indexes.len(),
            list(&c.indexes.iter().map(|i| i.name.clone()).collect::<Vec<_>>())
        ));
        if !c.dropped_indexes.is_empty() {
            line(format!(
                "  dropped by the ALTER: {}",
                c.dropped_indexes.join(", ")
            ));
        }
        line(format!(
            "  constraints ({}): {}",
            c.constraints.len(),
            list(
                &c.constraints
                    .iter()
                    .map(|i| i.name.clone())
                    .collect::<Vec<_>>()
            )
        ));
        line(format!(
            "  incoming foreign keys ({}): {}{}",
            c.incoming_foreign_keys.len(),
            list(
                &c.incoming_foreign_keys
                    .iter()
                    .map(|i| i.name.clone())
                    .collect::<Vec<_>>()
            ),
            if c.incoming_foreign_keys.is_empty() {
                ""
            } else {
                " (re-pointed NOT VALID in the swap, validated after it)"
            }
        ));
        line(format!("  views ({}): {}", c.views.len(), list(&c.views)));
        line(format!(
            "  triggers ({}): {}",
            c.triggers.len(),
            list(&c.triggers)
        ));
        line(format!(
            "  sequences ({}): {}",
            c.sequences.len(),
            list(
                &c.sequences
                    .iter()
                    .map(|s| format!("{} ({})", s.name, s.definition))
                    .collect::<Vec<_>>()
            )
        ));
        line(format!("  grants: {}", c.grants.len()));
        line(format!(
            "  policies ({}): {}",
            c.policies.len(),
            list(&c.policies)
        ));
        line(format!(
            "  publications ({}): {}",
            c.publications.len(),
            list(&c.publications)
        ));
        if !c.statistics.is_empty() {
            line(format!("  statistics: {}", c.statistics.join(", ")));
        }
        line(format!(
            "  also: replica identity {}, {}row level security, {} rule(s), {}",
            c.replica_identity,
            if c.row_level_security { "" } else { "no " },
            c.rules,
            if c.comment {
                "the table's comment"
            } else {
                "no comment"
            }
        ));
    }
    if !r.warnings.is_empty() {
        line(String::new());
        for w in &r.warnings {
            line(format!("warning: {w}"));
        }
    }
    if !r.checks.is_empty() {
        line(String::new());
        line("Checks (shared with run: a blocking one makes it refuse)".into());
        for c in &r.checks {
            line(format!(
                "  [{:<8}] {}: {}",
                c.verdict.as_str(),
                c.name,
                c.summary
            ));
            if c.verdict != Verdict::Ok || c.name == "timeouts" {
                for d in &c.details {
                    line(format!("             - {d}"));
                }
            }
            if let Some(a) = &c.action {
                line(format!("             what to do: {a}"));
            }
        }
    }
    if !r.phases.is_empty() {
        line(String::new());
        line("Statements, in order, by phase (every tool session waits at most --lock-timeout for any lock)".into());
        for p in &r.phases {
            let est = p
                .estimate_secs
                .map(secs)
                .unwrap_or_else(|| "not estimated".into());
            line(format!(
                "  phase {}{} — estimated {est}",
                p.phase,
                if p.single_transaction {
                    " (one transaction)"
                } else {
                    ""
                }
            ));
            for (n, s) in p.statements.iter().enumerate() {
                line(format!("    {:>2}. {}", n + 1, s.sql));
                for l in &s.locks {
                    line(format!(
                        "        lock {} on {}{}; waits at most {} ms{}",
                        l.mode,
                        l.on,
                        if l.live {
                            " (used by the application)"
                        } else {
                            ""
                        },
                        s.max_wait_ms,
                        if s.attempts > 1 {
                            format!(" per attempt, up to {} attempts", s.attempts)
                        } else {
                            String::new()
                        }
                    ));
                }
                if let Some(x) = &s.repeat {
                    line(format!("        runs {x}"));
                }
                if let Some(x) = &s.note {
                    line(format!("        {x}"));
                }
            }
        }
    }
    if let Some(d) = &r.disk {
        line(String::new());
        line("Disk".into());
        line(format!(
            "  new table ~{}, its indexes ~{}, change log ~{}, WAL written ~{} (kept on disk at the peak ~{})",
            ui::bytes(d.new_table_bytes),
            ui::bytes(d.new_indexes_bytes),
            ui::bytes(d.log_bytes),
            ui::bytes(d.wal_generated_bytes),
            ui::bytes(d.wal_retained_bytes)
        ));
        line(format!("  needed: ~{}", ui::bytes(d.needed_bytes)));
        for f in &d.free {
            line(format!(
                "  free: {} on {} ({}, for {})",
                ui::bytes(f.available_bytes),
                f.mount,
                f.filesystem,
                f.path
            ));
        }
        line(format!("  {}", d.note));
    }
    if let Some(e) = &r.estimate {
        line(String::new());
        line(format!("Estimate (--jobs {})", e.jobs));
        for p in &r.phases {
            line(format!(
                "  {:<11} {:>10}  {}",
                p.phase,
                p.estimate_secs.map(secs).unwrap_or_else(|| "?".into()),
                p.basis
            ));
        }
        for i in &e.indexes {
            line(format!(
                "              index {}: {} (~{}, time grows as rows^{:.2})",
                i.name,
                secs(i.secs),
                ui::bytes(i.bytes),
                i.exponent
            ));
        }
        line(format!(
            "  total       {:>10}  (between {} and {}), confidence {}",
            secs(e.total_secs),
            secs(e.low_secs),
            secs(e.high_secs),
            e.confidence
        ));
        for x in &e.reasons {
            line(format!("    - {x}"));
        }
        line(format!(
            "  lock waits: the capture trigger and the swap each try up to --max-lock-attempts times; at worst about {} each",
            secs(e.worst_case_lock_secs)
        ));
        for w in &e.warnings {
            line(format!("  warning: {w}"));
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn makespan_schedules_longest_first() {
        assert_eq!(makespan(&[3.0, 1.0, 1.0, 1.0], 1), 6.0);
        assert_eq!(makespan(&[3.0, 1.0, 1.0, 1.0], 2), 3.0);
        assert_eq!(makespan(&[], 4), 0.0);
    }

    #[test]
    fn growth_exponent_is_bounded() {
        assert_eq!(growth_exponent(100, 1.0, 200, 2.0), 1.0);
        assert!((growth_exponent(100, 1.0, 200, 2.2) - 1.1375).abs() < 0.01);
        assert_eq!(growth_exponent(100, 1.0, 200, 9.0), 1.25);
        assert_eq!(growth_exponent(100, 0.001, 200, 0.002), 1.1);
    }

    #[test]
    fn line_fit_separates_fixed_and_per_row_costs() {
        let (a, b) = fit_line(&[(100.0, 0.2), (300.0, 0.4), (100.0, 0.2), (300.0, 0.4)]).unwrap();
        assert!((a - 0.1).abs() < 1e-9 && (b - 0.001).abs() < 1e-9);
        assert!(fit_line(&[(100.0, 0.2)]).is_none());
        assert!(fit_line(&[(100.0, 0.2), (100.0, 0.3)]).is_none());
    }

    #[test]
    fn mean_and_variation() {
        let (m, cv) = mean_cv(&[10.0, 10.0, 10.0]);
        assert_eq!((m, cv), (10.0, 0.0));
        let (_, cv) = mean_cv(&[8.0, 12.0]);
        assert!((cv - 0.2828).abs() < 0.001);
    }

    #[test]
    fn worst_case_lock_time_adds_waits_and_backoff() {
        let p = LockPolicy {
            timeout: Duration::from_millis(100),
            attempts: 2,
            delay: Duration::from_millis(200),
        };
        assert!((worst_case_lock_secs(&p) - 0.5).abs() < 1e-9);
    }
}
