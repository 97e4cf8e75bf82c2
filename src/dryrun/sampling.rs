//! Measuring a rewrite on a sample of the real table, for `plan` (issue 6), changing nothing.
//!
//! A sample session opens a transaction, creates the shadow in it exactly as a run does
//! (`shadow::build_in`, the ALTER applied), streams sample windows of the source into it over the
//! same binary COPY pipe as the copy workers (a reading connection, the transaction's connection
//! writing), builds every planned index on what it copied (twice, at half and at the full sample,
//! to see how build time grows), runs `ANALYZE`, times a replay batch through
//! `replay::apply_batch` against a temporary log of sampled keys, and rolls everything back.
//!
//! Outgoing foreign keys are left off the sample's shadow: adding one takes SHARE ROW EXCLUSIVE
//! on the referenced table, which the session would hold for the whole measurement and block the
//! application's writes there. A session that still finds such a lock on an existing relation
//! (an ALTER that adds a foreign key) stops measuring at once and rolls back.

use crate::db::conn::{self, ConnSpec};
use crate::db::ident::{join_idents, literal, QualifiedName};
use crate::error::{DbContext, Error, Result, RowExt};
use crate::rewrite::capture::log_key_columns;
use crate::rewrite::mapping::MapArg;
use crate::rewrite::plan::Plan;
use crate::rewrite::preflight::Source;
use crate::rewrite::replay;
use crate::rewrite::shadow::{self, ShadowRequest};
use crate::state::State;
use bytes::Bytes;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::Barrier;
use tokio_postgres::{GenericClient, Transaction};

/// A part of the source to copy: what follows `FROM ONLY <source>` (a `WHERE` over the key,
/// or a `TABLESAMPLE` clause; empty for the whole table).
#[derive(Clone, Debug)]
pub struct Window {
    pub clause: String,
}

/// Extra measurements of the first session: index builds, ANALYZE, replay.
#[derive(Clone, Debug)]
pub struct Extras {
    pub maintenance_work_mem: String,
    /// Keys to put through one replay batch.
    pub replay_keys: i64,
}

/// One sample session's job (owned, so it can run on its own task).
#[derive(Clone)]
pub struct SessionJob {
    pub spec: ConnSpec,
    /// The source without outgoing foreign keys (see the module header).
    pub src: Source,
    pub alter: Option<String>,
    pub maps: Vec<MapArg>,
    pub shadow: QualifiedName,
    /// Names the shadow's temporary indexes (`hotswap_<run>_i<n>`): distinct per session.
    pub run: i64,
    pub windows: Vec<Window>,
    pub extras: Option<Extras>,
    /// Concurrent sessions start copying together.
    pub barrier: Option<Arc<Barrier>>,
}

#[derive(Clone, Copy, Debug)]
pub struct WindowResult {
    pub rows: u64,
    pub bytes: u64,
    pub secs: f64,
    pub started: Instant,
    pub ended: Instant,
}

/// Build time of one planned index at two sample sizes.
#[derive(Clone, Debug)]
pub struct IndexTiming {
    pub name: String,
    pub rows_half: u64,
    pub secs_half: f64,
    pub rows_full: u64,
    pub secs_full: f64,
    pub bytes_full: u64,
}

#[derive(Clone, Debug, Default)]
pub struct SessionResult {
    pub windows: Vec<WindowResult>,
    /// Relations other than the source this session's shadow transaction locked beyond
    /// ACCESS SHARE (when not empty, nothing was measured).
    pub foreign_locks: Vec<(String, String)>,
    /// `pg_table_size` of the sample's shadow after copying every window (heap + TOAST).
    pub table_bytes: u64,
    pub indexes: Vec<IndexTiming>,
    pub analyze_secs: Option<f64>,
    /// (log rows, seconds) of one replay batch.
    pub replay: Option<(u64, f64)>,
    /// Verification measured on the sample: (source rows hashed, seconds for both sides).
    pub verify: Option<(u64, f64)>,
}

impl SessionResult {
    /// Rows copied over all windows.
    pub fn rows(&self) -> u64 {
        self.windows.iter().map(|w| w.rows).sum()
    }
}

/// Locks this transaction holds on relations it did not create: (relation, mode), e.g.
/// `("public.t", "AccessShareLock")`.
pub async fn existing_locks(tx: &impl GenericClient) -> Result<Vec<(String, String)>> {
    let rows = tx
        .query(
            "SELECT l.relation::regclass::text, l.mode FROM pg_catalog.pg_locks l \
               JOIN pg_catalog.pg_class c ON c.oid = l.relation \
              WHERE l.pid = pg_catalog.pg_backend_pid() AND l.locktype = 'relation' AND l.granted \
                AND c.relnamespace <> 'pg_catalog'::regnamespace AND c.relkind <> 'i' \
                AND c.xmin::text <> (pg_catalog.txid_current() % 4294967296)::text \
              ORDER BY 1, 2",
            &[],
        )
        .await
        .ctx("reading the locks of the shadow transaction")?;
    let what = "reading the locks of the shadow transaction";
    rows.iter()
        .map(|r| Ok((r.col(0, &what)?, r.col(1, &what)?)))
        .collect()
}

/// Streams one window of the source into the shadow (inside `tx`) over binary COPY.
async fn pipe(
    reader: &tokio_postgres::Client,
    tx: &Transaction<'_>,
    plan: &Plan,
    w: &Window,
) -> Result<WindowResult> {
    let what = || format!("copying a sample of {} ({})", plan.source.human(), w.clause);
    let (out_sql, in_sql) = crate::rewrite::copier::copy_statements(plan, &w.clause);
    let started = Instant::now();
    let sink = tx.copy_in::<_, Bytes>(&in_sql).await.ctx(what())?;
    let stream = reader.copy_out(&out_sql).await.ctx(what())?;
    let (rows, bytes) = crate::rewrite::copier::forward(stream, sink)
        .await
        .ctx(what())?;
    let ended = Instant::now();
    Ok(WindowResult {
        rows,
        bytes,
        secs: (ended - started).as_secs_f64(),
        started,
        ended,
    })
}

/// Builds every planned index on the sample's shadow; returns (name, seconds, bytes).
async fn build_indexes(tx: &Transaction<'_>, plan: &Plan) -> Result<Vec<(String, f64, u64)>> {
    let mut out = Vec::new();
    for ix in &plan.indexes {
        let sql = if ix.built_by_constraint {
            ix.constraint_sql.clone().unwrap_or_default()
        } else {
            ix.create_sql.clone()
        };
        if sql.is_empty() {
            continue;
        }
        let t = Instant::now();
        tx.batch_execute(&sql).await.ctx(format_args!(
            "building index {} on the sample",
            ix.final_name.as_str()
        ))?;
        let secs = t.elapsed().as_secs_f64();
        let bytes: i64 = tx
            .query_one(
                "SELECT COALESCE(pg_catalog.pg_relation_size(pg_catalog.to_regclass($1::text)), 0)",
                &[&plan.shadow.sibling(ix.tmp_name.as_str()).to_string()],
            )
            .await
            .ctx("reading an index size")?
            .col(0, &"reading an index size")?;
        out.push((
            if ix.temporary {
                "(temporary, on the old row identity)".to_string()
            } else {
                ix.final_name.as_str().to_string()
            },
            secs,
            bytes.max(0) as u64,
        ));
    }
    Ok(out)
}

/// Drops the indexes (and index-backed constraints) `build_indexes` built, for the second build.
async fn drop_indexes(tx: &Transaction<'_>, plan: &Plan) -> Result<()> {
    for ix in &plan.indexes {
        let sql = if ix.built_by_constraint {
            format!(
                "ALTER TABLE {} DROP CONSTRAINT IF EXISTS {}",
                plan.shadow, ix.tmp_name
            )
        } else {
            format!(
                "DROP INDEX IF EXISTS {}",
                plan.shadow.sibling(ix.tmp_name.as_str())
            )
        };
        tx.batch_execute(&sql)
            .await
            .ctx("dropping a sample index")?;
    }
    Ok(())
}

/// One replay batch of `n` sampled keys, through the run's own replay code.
async fn time_replay(
    tx: &Transaction<'_>,
    plan: &Plan,
    w: &Window,
    n: i64,
) -> Result<Option<(u64, f64)>> {
    let kcols = log_key_columns(plan);
    let defs: Vec<String> = kcols
        .iter()
        .zip(&plan.key)
        .map(|(k, key)| format!("{k} {}", key.source_type))
        .collect();
    // The batch table exactly as replay::prepare_session makes it, and a log like capture's
    // (temporary: both vanish with the rollback).
    tx.batch_execute(&format!(
        "CREATE TEMP TABLE IF NOT EXISTS hotswap_replay_batch (id bigint, truncated boolean, {d}) ON COMMIT DELETE ROWS; \
         CREATE TEMP TABLE hotswap_plan_log (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, \
           truncated boolean NOT NULL DEFAULT false, {d}); \
         INSERT INTO pg_temp.hotswap_plan_log ({k}) SELECT {keys} FROM {src} {clause} LIMIT {n}",
        d = defs.join(", "),
        k = join_idents(&kcols),
        keys = plan.key_list(),
        src = plan.source_from(),
        clause = w.clause,
    ))
    .await
    .ctx("preparing the replay measurement")?;
    let mut p = plan.clone();
    p.capture.log = QualifiedName::new("pg_temp", "hotswap_plan_log");
    let t = Instant::now();
    let b = replay::apply_batch(tx, &p, replay::Batching::Bounded(n)).await?;
    let secs = t.elapsed().as_secs_f64();
    Ok((b.log_rows > 0).then_some((b.log_rows, secs)))
}

/// Runs one sample session and rolls it back. Returns the shadow's plan (for the sample's
/// statements) and the measurements.
pub async fn session(job: SessionJob) -> Result<SessionResult> {
    let mut writer = conn::connect(&job.spec, "plan-sample-write").await?;
    let reader = conn::connect(&job.spec, "plan-sample-read").await?;
    let state = State::new("hotswap");
    let req = ShadowRequest {
        alter: job.alter.as_deref(),
        maps: &job.maps,
        shadow_name: None,
        revertible: false,
        // The estimate's sessions copy into plain shadows (the partitions' names are fixed,
        // and concurrent sessions would collide on them).
        partitioning: None,
        plain: true,
        show_unrouted: false,
    };
    let tx = writer
        .transaction()
        .await
        .ctx("starting the sample transaction")?;
    let prepared = async {
        let (plan, _) = shadow::build_in(&tx, &state, job.run, &job.src, &req, &job.shadow).await?;
        let locks: Vec<(String, String)> = existing_locks(&tx)
            .await?
            .into_iter()
            .filter(|(_, mode)| mode != "AccessShareLock")
            .collect();
        Ok::<_, Error>((plan, locks))
    }
    .await;
    // Every session reaches the barrier, also one that failed, or the others would wait forever.
    if let Some(b) = &job.barrier {
        b.wait().await;
    }
    let (plan, locks) = prepared?;
    let mut result = SessionResult {
        foreign_locks: locks,
        ..Default::default()
    };
    if !result.foreign_locks.is_empty() {
        tx.rollback().await.ctx("rolling the sample back")?;
        return Ok(result);
    }
    // Warm-up, not counted: the first COPY of a session loads catalog caches.
    pipe(
        &reader,
        &tx,
        &plan,
        &Window {
            clause: "WHERE false".into(),
        },
    )
    .await?;
    let half = if job.extras.is_some() && job.windows.len() >= 2 {
        job.windows.len() / 2
    } else {
        job.windows.len()
    };
    for w in &job.windows[..half] {
        result.windows.push(pipe(&reader, &tx, &plan, w).await?);
    }
    if let Some(x) = &job.extras {
        measure_extras(&reader, &tx, &plan, &job.windows, half, x, &mut result).await?;
    } else {
        result.table_bytes = table_size(&tx, &plan).await?;
    }
    tx.rollback().await.ctx("rolling the sample back")?;
    Ok(result)
}

/// The rest of the measuring session (after the first `half` windows): the index builds on
/// both halves of the sample, the other windows, the table's size, ANALYZE, verification and
/// one replay batch.
async fn measure_extras(
    reader: &tokio_postgres::Client,
    tx: &Transaction<'_>,
    plan: &Plan,
    windows: &[Window],
    half: usize,
    x: &Extras,
    result: &mut SessionResult,
) -> Result<()> {
    tx.batch_execute(&format!(
        "SET LOCAL maintenance_work_mem = {}",
        literal(&x.maintenance_work_mem)
    ))
    .await
    .ctx("setting maintenance_work_mem")?;
    let rows_half = result.rows();
    let first = if half < windows.len() {
        let first = build_indexes(tx, plan).await?;
        drop_indexes(tx, plan).await?;
        Some(first)
    } else {
        None
    };
    for w in &windows[half..] {
        result.windows.push(pipe(reader, tx, plan, w).await?);
    }
    result.table_bytes = table_size(tx, plan).await?;
    let rows_full = result.rows();
    let second = build_indexes(tx, plan).await?;
    for (i, (name, secs, bytes)) in second.iter().enumerate() {
        let (rh, sh) = match &first {
            Some(f) => (rows_half, f.get(i).map(|x| x.1).unwrap_or(*secs)),
            None => (rows_full, *secs),
        };
        result.indexes.push(IndexTiming {
            name: name.clone(),
            rows_half: rh,
            secs_half: sh,
            rows_full,
            secs_full: *secs,
            bytes_full: *bytes,
        });
    }
    let t = Instant::now();
    tx.batch_execute(&format!("ANALYZE {}", plan.shadow))
        .await
        .ctx("analyzing the sample")?;
    result.analyze_secs = Some(t.elapsed().as_secs_f64());
    let clauses: Vec<String> = windows.iter().map(|w| w.clause.clone()).collect();
    result.verify = Some(crate::rewrite::verify::time_sample(tx, plan, &clauses).await?);
    let n = x.replay_keys.min(rows_full as i64).max(1);
    result.replay = time_replay(tx, plan, &windows[0], n).await?;
    Ok(())
}

/// The size of the sample's shadow table.
async fn table_size(tx: &Transaction<'_>, plan: &Plan) -> Result<u64> {
    let b: i64 = tx
        .query_one(
            "SELECT pg_catalog.pg_table_size($1::text::regclass)",
            &[&plan.shadow.to_string()],
        )
        .await
        .ctx("reading the sample's size")?
        .col(0, &"reading the sample's size")?;
    Ok(b.max(0) as u64)
}

/// Runs `jobs` sessions concurrently (each copying its windows), started together.
pub async fn concurrent(jobs: Vec<SessionJob>) -> Result<Vec<SessionResult>> {
    let mut set = tokio::task::JoinSet::new();
    for (i, j) in jobs.into_iter().enumerate() {
        set.spawn(async move { (i, session(j).await) });
    }
    let mut out: Vec<Option<SessionResult>> = Vec::new();
    let mut first_err = None;
    while let Some(r) = set.join_next().await {
        let (i, r) = r.map_err(|e| Error::failed(format!("a sample session panicked: {e}")))?;
        match r {
            Ok(s) => {
                if out.len() <= i {
                    out.resize(i + 1, None);
                }
                out[i] = Some(s);
            }
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    match first_err {
        Some(e) => Err(e),
        None => Ok(out.into_iter().flatten().collect()),
    }
}
