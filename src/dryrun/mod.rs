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

mod estimate;
pub mod listing;
mod render;
mod report;
pub mod sampling;

pub use render::render_text;
pub use report::*;

use crate::db::catalog;
use crate::db::conn::ConnSpec;
use crate::db::ident::QualifiedName;
use crate::dryrun::listing::{ListInput, PhaseStatements};
use crate::error::{DbContext, Error, Kind, Result, RowExt};
use crate::rewrite::checks::{self, CheckInput, DiskNeed, Verdict};
use crate::rewrite::chunks::{self, Chunk};
use crate::rewrite::migrator::RunOptions;
use crate::rewrite::plan::Plan;
use crate::rewrite::preflight::{self, Source};
use crate::rewrite::shadow::{self, ShadowRequest};
use crate::state::target::Target;
use crate::state::State;
use std::ops::ControlFlow;
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

/// Makes the plan. `Err` only for failures to plan at all (connection, an unknown table); a
/// table or ALTER that cannot be rewritten gives a report with `refused` and exit code 3.
///
/// The steps: inspect the table and run the checks; validate the shadow in the trial
/// transaction; describe the source; measure on a sample while the write rate is observed;
/// estimate, with the disk; list the statements phase by phase.
pub async fn plan(target: Target, opts: &PlanOptions) -> Result<PlanReport> {
    let o = &opts.run;
    let Target {
        conn,
        state,
        client: mut ctl,
        oid,
        ..
    } = target;
    let observe_from = Instant::now();
    let writes_before = write_counter(&ctl, oid).await?;

    let (src, mut r) = match inspect_and_check(&ctl, o, &conn, &state, oid).await? {
        ControlFlow::Continue(x) => x,
        ControlFlow::Break(refused) => return Ok(refused.finish()),
    };
    let Some((trial, shadow)) = shadow_trial(&mut ctl, &state, &src, o, &mut r).await? else {
        return Ok(r.finish());
    };
    let plan = &trial.plan;
    // Issue 16: no rewrite when PostgreSQL needs none; then the statements are all there is.
    let ask = o.ask();
    let decision = match (ask.rewrite_anyway(), &plan.rewrite_probe) {
        (Some(w), _) => crate::rewrite::fastpath::Decision::Rewrite(w),
        (None, Some(p)) => crate::rewrite::fastpath::decide(&ask, p, &src),
        (None, None) => {
            crate::rewrite::fastpath::Decision::Rewrite(crate::rewrite::fastpath::Why::NoAlter)
        }
    };
    r.rewrite = Some(report::RewriteDecision {
        needed: !matches!(decision, crate::rewrite::fastpath::Decision::InPlace(_)),
        reason: decision.describe(),
    });
    if let crate::rewrite::fastpath::Decision::InPlace(p) = &decision {
        let phase = listing::in_place(p, &o.lock);
        r.phases = merge(vec![phase], &[]);
        return Ok(r.finish());
    }
    r.columns = report::columns(plan);
    r.sample_check = plan.sample_check.clone();
    r.carried_over = Some(report::carried_over(plan, &src, &src.table.name));
    if let Some(p) = &plan.partition_sample {
        r.checks
            .extend(report::partitions_check(p, &src.table.name));
        r.partitions = Some(p.clone());
    }
    let swap_names =
        crate::rewrite::swap::decide_names(&ctl, plan, &src, o.old_name.as_deref(), "_old").await?;
    let summary = source_summary(&ctl, &src, oid, &shadow, &swap_names.old).await?;
    let rows = summary.rows;
    r.source = Some(summary);

    let Some(measured) = measure(opts, &conn, &ctl, &src, plan, rows, &mut r).await? else {
        return Ok(r.finish());
    };
    // The write rate, over at least --observe.
    let left = opts.observe.saturating_sub(observe_from.elapsed());
    tokio::time::sleep(left).await;
    let writes_after = write_counter(&ctl, oid).await?;
    let observed_secs = observe_from.elapsed().as_secs_f64();
    let write_rate = (writes_after - writes_before).max(0) as f64 / observed_secs.max(0.001);

    let est = estimate::estimate(
        opts,
        &ctl,
        plan,
        rows,
        trial.secs,
        &measured,
        write_rate,
        observed_secs,
    )
    .await?;
    r.disk = Some(disk(&ctl, oid, opts, &est, &mut r.checks).await?);

    // Statements, phase by phase, with the estimate of each.
    let chunk_list = plan_chunk_list(&ctl, plan, &src, o.chunk_rows).await?;
    let state_exists = state.exists(&ctl).await?;
    let order_by = o
        .order_by
        .as_deref()
        .map(|t| crate::rewrite::build::order_by(&src, t))
        .transpose()?;
    let listing = listing::list(&ListInput {
        plan,
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
        maintenance_work_mem: &o.maintenance_work_mem,
        order_by: order_by.as_ref(),
        shadow_locks: &trial.locks,
        shadow_steps: &trial.steps,
        swap_facts: &trial.swap_facts,
        swap_names: &swap_names,
        replica_identity_index: crate::rewrite::build::replica_identity_index(&ctl, oid)
            .await?
            .as_deref(),
    });
    r.phases = merge(listing, &est.phases);
    r.estimate = Some(est.estimate);
    Ok(r.finish())
}

/// Inspects the table and runs the checks (with the disk provisionally at the table's size).
/// Breaks with the report when the table cannot be rewritten, or when the privileges check
/// blocks (the shadow cannot be created with these rights: nothing to measure).
async fn inspect_and_check(
    ctl: &Client,
    o: &RunOptions,
    conn: &ConnSpec,
    state: &State,
    oid: u32,
) -> Result<ControlFlow<PlanReport, (Source, PlanReport)>> {
    let (src, warnings) = match preflight::inspect(ctl, oid).await {
        Ok(x) => x,
        Err(e) if e.kind() == Kind::Refused => {
            let t = catalog::table(ctl, oid).await?;
            let mut r = report::new(t.name.human());
            r.refused = Some(e.message().to_string());
            let input = check_input(o, conn, state, oid, &t.name, None, DiskNeed::default());
            r.checks = checks::run_all(ctl, &input).await.0;
            return Ok(ControlFlow::Break(r));
        }
        Err(e) => return Err(e),
    };
    let table = src.table.name.clone();
    let mut r = report::new(table.human());
    r.warnings = warnings;
    let provisional = DiskNeed {
        data_bytes: src.table.total_bytes.max(0) as u64,
        wal_bytes: src.table.total_bytes.max(0) as u64,
    };
    r.checks = checks::run_all(
        ctl,
        &check_input(o, conn, state, oid, &table, Some(&src), provisional),
    )
    .await
    .0;
    if r.checks
        .iter()
        .any(|c| c.name == "privileges" && c.verdict == Verdict::Blocking)
    {
        return Ok(ControlFlow::Break(r));
    }
    Ok(ControlFlow::Continue((src, r)))
}

/// The shadow, validated in a transaction that is rolled back: the trial and the shadow's
/// name. None, with `refused` set on the report, when the ALTER cannot be applied.
async fn shadow_trial(
    ctl: &mut Client,
    state: &State,
    src: &Source,
    o: &RunOptions,
    r: &mut PlanReport,
) -> Result<Option<(Trial, QualifiedName)>> {
    let table = &src.table.name;
    let shadow = shadow::shadow_name(ctl, table, o.shadow_name.as_deref()).await?;
    let req = ShadowRequest {
        alter: o.alter.as_deref(),
        maps: &o.maps,
        shadow_name: o.shadow_name.as_deref(),
        revertible: o.revertible,
        partitioning: o.partitioning.as_ref(),
        plain: false,
        show_unrouted: true,
    };
    match validate(ctl, state, src, &req, &shadow, o).await {
        Ok(x) => Ok(Some((x, shadow))),
        Err(e) if e.kind() == Kind::Refused => {
            r.refused = Some(e.message().to_string());
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// The source as the report shows it: rows (the catalog's estimate, or a count when the table
/// was never analyzed), sizes, row identity, the shadow's and the old table's names.
async fn source_summary(
    ctl: &Client,
    src: &Source,
    oid: u32,
    shadow: &QualifiedName,
    old: &QualifiedName,
) -> Result<SourceSummary> {
    let table = &src.table.name;
    let (rows, rows_basis) = if src.table.reltuples > 0.0 {
        (src.table.reltuples as i64, "estimated")
    } else {
        let n: i64 = ctl
            .query_one(
                &format!(
                    "SELECT count(*) FROM {}",
                    crate::rewrite::partitioning::from_rel(table, src.table.relkind == "p")
                ),
                &[],
            )
            .await
            .ctx(format_args!("counting the rows of {}", table.human()))?
            .col(0, &format_args!("counting the rows of {}", table.human()))?;
        (n, "counted")
    };
    let index_bytes: i64 = ctl
        .query_one(
            // A partitioned table's indexes are its partitions' (issue 15).
            // (pg_partition_tree is empty for a table outside any tree.)
            "SELECT coalesce((SELECT sum(pg_catalog.pg_indexes_size(relid))::int8 \
                                FROM pg_catalog.pg_partition_tree($1::oid::regclass)), \
                             pg_catalog.pg_indexes_size($1::oid::regclass))",
            &[&oid],
        )
        .await
        .ctx("reading the size of the indexes")?
        .col(0, &"reading the size of the indexes")?;
    Ok(SourceSummary {
        rows,
        rows_basis,
        heap_bytes: src.table.heap_bytes.max(0) as u64,
        index_bytes: index_bytes.max(0) as u64,
        total_bytes: src.table.total_bytes.max(0) as u64,
        row_identity_index: src.key_index.as_str().to_string(),
        row_identity: src.key.iter().map(|k| k.as_str().to_string()).collect(),
        shadow: shadow.human(),
        old_name: old.human(),
    })
}

/// Measures on a sample (`estimate::measure`). None, with `refused` set on the report, when
/// the sample's rows do not fit the mapping: the run would fail during the copy.
async fn measure(
    opts: &PlanOptions,
    conn: &ConnSpec,
    ctl: &Client,
    src: &Source,
    plan: &Plan,
    rows: i64,
    r: &mut PlanReport,
) -> Result<Option<estimate::Measured>> {
    match estimate::measure(opts, conn, ctl, src, plan, rows).await {
        Ok(m) => Ok(Some(m)),
        Err(e) if e.code().is_some() && e.kind() != Kind::LockTimeout && is_data_error(&e) => {
            r.refused = Some(format!(
                "copying a sample of the table through the mapping failed, so the run would fail during the copy: {}",
                e.message()
            ));
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// The disk the run needs, by the estimate, with the WAL retained at the peak; the disk check
/// is run again with these sizes and replaces the provisional one.
async fn disk(
    ctl: &Client,
    oid: u32,
    opts: &PlanOptions,
    est: &estimate::Estimated,
    found: &mut [checks::Check],
) -> Result<DiskReport> {
    let need = checks::DiskSizes {
        new_table: est.new_table,
        new_indexes: est.new_indexes,
        log_bytes: est.log_bytes,
    }
    .need(ctl)
    .await?;
    let wal_retained = need.wal_bytes;
    let (disk_check, free) = checks::disk_check(ctl, oid, need, opts.df_on_server).await;
    if let Some(c) = found.iter_mut().find(|c| c.name == "disk") {
        *c = disk_check;
    }
    Ok(DiskReport {
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
    })
}

/// The checks' input for the table (the source when inspected, and the disk expected).
fn check_input<'a>(
    o: &'a RunOptions,
    conn: &'a ConnSpec,
    state: &'a State,
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
        state_schema: state.schema.as_str(),
        disk,
        conn,
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

/// What `plan`'s trial transaction found: the plan, the statements the shadow step executed,
/// the locks it held, what the swap would read from the catalog, and how long it took.
struct Trial {
    plan: Plan,
    steps: Vec<crate::rewrite::step::Step>,
    locks: Vec<(String, String)>,
    swap_facts: crate::rewrite::swap::SwapFacts,
    secs: f64,
}

/// Creates the shadow in a transaction, reads the plan and the locks it took, rolls back.
async fn validate(
    client: &mut Client,
    state: &State,
    src: &Source,
    req: &ShadowRequest<'_>,
    shadow: &QualifiedName,
    o: &RunOptions,
) -> Result<Trial> {
    let mut tries = crate::db::locking::Retry::new(&o.lock, "creating the shadow for the plan");
    loop {
        tries.start();
        let started = Instant::now();
        let tx = client
            .transaction()
            .await
            .ctx("starting the plan's shadow transaction")?;
        let result = async {
            let (mut plan, steps) = shadow::build_in(&tx, state, 0, src, req, shadow).await?;
            let locks = sampling::existing_locks(&tx).await?;
            if o.revertible {
                // As `run --revertible` decides it when the shadow is created.
                let new_cols = catalog::columns(&tx, plan.shadow_oid).await?;
                let rev =
                    crate::rewrite::revert::reverse_plan(&plan, src, &new_cols, &o.map_back, state);
                plan.reverse = Some(Box::new(rev));
            }
            let swap_facts = crate::rewrite::swap::read_facts(&tx, &plan, src).await?;
            Ok::<_, Error>((plan, steps, locks, swap_facts))
        }
        .await;
        let secs = started.elapsed().as_secs_f64();
        tx.rollback()
            .await
            .ctx("rolling the plan's shadow transaction back")?;
        if let Some((plan, steps, locks, swap_facts)) = tries.settle(result).await? {
            return Ok(Trial {
                plan,
                steps,
                locks,
                swap_facts,
                secs,
            });
        }
    }
}

/// The run's chunks for an integer key (cheap: min and max); for other keys only their number
/// (planning them walks the whole key index).
async fn plan_chunk_list(
    client: &Client,
    plan: &Plan,
    src: &Source,
    chunk_rows: i64,
) -> Result<(Option<Chunk>, usize)> {
    if plan.has_integer_key() {
        let c = chunks::plan_chunks(client, plan, src.table.reltuples, chunk_rows).await?;
        Ok((c.first().cloned(), c.len()))
    } else {
        let n = (src.table.reltuples.max(1.0) / chunk_rows.max(1) as f64).ceil() as usize + 1;
        Ok((None, n))
    }
}

/// The listing's phases with their estimates.
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
