//! The estimate of `plan`: measured on samples of the real table (the sample sessions of
//! `sampling`), extrapolated to the table's size and its write rate (docs/plan.md says how, and
//! what it cannot see).

use super::report::{Estimate, IndexEstimate, SampleReport};
use super::PlanOptions;
use crate::db::catalog;
use crate::db::ident::QualifiedName;
use crate::db::locking::LockPolicy;
use crate::dryrun::listing;
use crate::dryrun::sampling::{self, Extras, SessionJob, SessionResult, Window};
use crate::error::{DbContext, Error, Result, RowExt};
use crate::rewrite::migrator::RunOptions;
use crate::rewrite::plan::Plan;
use crate::rewrite::preflight::Source;
use std::sync::Arc;
use std::time::Duration;
use tokio_postgres::Client;

/// What the sample sessions measured.
pub(super) struct Measured {
    pub(super) method: &'static str,
    pub(super) fraction_planned: f64,
    pub(super) single: SessionResult,
    pub(super) parallel: Option<(usize, f64)>,
    pub(super) stat_rows: f64,
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
            // The windows of one session go into one sample shadow, so they must not share a
            // row: each takes the sampled blocks whose number leaves its own remainder (a
            // different seed per window sampled overlapping blocks, and the shadow's unique
            // index failed on the rows read twice). Each samples `count` times as many blocks
            // to keep its size after the filter.
            let count = positions.len().max(1);
            let pct = (100.0 * rows_each as f64 / rows.max(1) as f64).clamp(0.0001, 100.0);
            positions
                .iter()
                .enumerate()
                .map(|(i, _)| {
                    let size = if i % 2 == 0 { 0.5 } else { 1.5 };
                    Window {
                        clause: format!(
                            "TABLESAMPLE SYSTEM ({:.6}) REPEATABLE ({seed}) \
                             WHERE (ctid::text::point)[0]::int8 % {count} = {i}",
                            (pct * size * count as f64).min(100.0),
                        ),
                    }
                })
                .collect()
        }
    }
}

/// Measures the copy, the index builds, ANALYZE, replay and verification on samples of the
/// table: one session over a few windows, then `--jobs` sessions at once (up to 4).
pub(super) async fn measure(
    opts: &PlanOptions,
    conn: &crate::db::conn::ConnSpec,
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
    let range = if plan.has_integer_key() && !whole {
        key_range(ctl, plan).await?
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
    let jobs_measured = if o.jobs > 1 { o.jobs.min(4) } else { 0 };
    let names = sample_shadows(ctl, src, plan, jobs_measured + 1).await?;
    // Outgoing foreign keys are left off the sample's shadow (see `sampling`).
    let mut stripped = src.clone();
    stripped.constraints.retain(|c| c.kind != "f");
    let base = SessionJob {
        spec: conn.clone(),
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
    let single = single_session(base.clone()).await?;
    // Several streams at once, on other parts of the table (not the ones just read into cache).
    let parallel = if jobs_measured > 1 && !whole {
        let pos: Vec<f64> = (0..jobs_measured)
            .map(|i| (i as f64 + 0.2) / jobs_measured as f64)
            .collect();
        let each = windows(plan, range, rows, target / k as i64, &pos, 101);
        parallel_sessions(&base, &names[1..], each).await?
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

/// The smallest and largest value of the (integer) key; None for an empty table.
async fn key_range(ctl: &Client, plan: &Plan) -> Result<Option<(i64, i64)>> {
    let kname = &plan.key[0].name;
    let row = ctl
        .query_one(
            &format!(
                "SELECT min({kname})::int8, max({kname})::int8 FROM {}",
                plan.source_from()
            ),
            &[],
        )
        .await
        .ctx("reading the key range")?;
    Ok(
        match (
            row.col::<Option<i64>>(0, &"reading the key range")?,
            row.col::<Option<i64>>(1, &"reading the key range")?,
        ) {
            (Some(a), Some(b)) => Some((a, b)),
            _ => None,
        },
    )
}

/// The sample's shadows, one per session: free names, never the one the run would use.
async fn sample_shadows(
    ctl: &Client,
    src: &Source,
    plan: &Plan,
    count: usize,
) -> Result<Vec<QualifiedName>> {
    let mut taken = vec![plan.shadow.name.as_str().to_string()];
    let mut names = Vec::new();
    for _ in 0..count {
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
    Ok(names)
}

/// The sample session that measures everything (copy, builds, ANALYZE, replay, verify);
/// refused when it would hold a lock on another table for the whole measurement.
async fn single_session(job: SessionJob) -> Result<SessionResult> {
    // On a runtime worker, like the copy workers (not on the thread that drives `main`).
    let single = tokio::spawn(sampling::session(job))
        .await
        .map_err(|e| Error::failed(format!("the sample session panicked: {e}")))??;
    if !single.foreign_locks.is_empty() {
        return Err(Error::failed(format!(
            "measuring would hold {} for the whole measurement (the ALTER adds a foreign key?); not measured",
            single
                .foreign_locks
                .iter()
                .map(|(r, m)| format!("{} on {r}", listing::mode_name(m)))
                .collect::<Vec<_>>()
                .join(", ")
        ))
        .with_next("run plan without the foreign key in --alter to get an estimate"));
    }
    Ok(single)
}

/// Copy sessions started together (one window each, on the given shadows): their number and
/// the rows per second of all of them, wall clock.
async fn parallel_sessions(
    base: &SessionJob,
    shadows: &[QualifiedName],
    each: Vec<Window>,
) -> Result<Option<(usize, f64)>> {
    let n = shadows.len();
    let barrier = Arc::new(tokio::sync::Barrier::new(n));
    let jobs: Vec<SessionJob> = (0..n)
        .map(|i| SessionJob {
            shadow: shadows[i].clone(),
            run: -2 - i as i64,
            windows: vec![each[i].clone()],
            extras: None,
            barrier: Some(barrier.clone()),
            ..base.clone()
        })
        .collect();
    let results = sampling::concurrent(jobs).await?;
    let all: Vec<&sampling::WindowResult> = results.iter().flat_map(|r| r.windows.iter()).collect();
    let start = all.iter().map(|w| w.started).min();
    let end = all.iter().map(|w| w.ended).max();
    Ok(match (start, end) {
        (Some(s), Some(e)) if !all.is_empty() => {
            let wall = (e - s).as_secs_f64().max(1e-6);
            let rows: u64 = all.iter().map(|w| w.rows).sum();
            Some((n, rows as f64 / wall))
        }
        _ => None,
    })
}

/// The estimate, with what `plan` needs besides the report's part.
pub(super) struct Estimated {
    pub(super) estimate: Estimate,
    /// Copy transactions expected (several chunks each with --chunk-time).
    pub(super) copy_transactions: usize,
    /// (phase, seconds, basis).
    pub(super) phases: Vec<(String, Option<f64>, String)>,
    pub(super) new_table: u64,
    pub(super) new_indexes: u64,
    pub(super) log_bytes: u64,
    pub(super) wal_generated: u64,
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

/// The copy measured on the sample, extrapolated to the table.
struct CopyEstimate {
    /// Rows per second of the single session.
    rate: f64,
    /// Rows per second of each window that read rows.
    window_rates: Vec<f64>,
    /// Their coefficient of variation.
    cv: f64,
    /// Speed of `--jobs` streams relative to one.
    speedup: f64,
    /// Chunks of the run.
    chunks: f64,
    /// Copy transactions (several chunks each with --chunk-time).
    transactions: f64,
    secs: f64,
}

/// The copy: per chunk and per row costs fitted over the sample's windows, the parallel
/// speedup, the transactions `--chunk-time` makes of the chunks.
fn copy_estimate(o: &RunOptions, m: &Measured, n: f64) -> CopyEstimate {
    let s = &m.single;
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
    let transactions = crate::rewrite::batching::transactions(
        chunks as usize,
        secs_per_chunk_per_job,
        o.chunk_time,
        o.jobs,
    ) as f64;
    let secs = match fit {
        Some((fixed, per_row)) => (transactions * fixed + n * per_row) / speedup,
        None if rate > 0.0 => n / (rate * speedup),
        None => 0.0,
    };
    CopyEstimate {
        rate,
        window_rates,
        cv,
        speedup,
        chunks,
        transactions,
        secs,
    }
}

/// Each index's build scaled from its two sample builds, and the makespan of all of them on
/// `--jobs` connections.
fn index_estimates(s: &SessionResult, scale: f64, jobs: usize) -> (Vec<IndexEstimate>, f64) {
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
    let index_secs = makespan(&index_est.iter().map(|i| i.secs).collect::<Vec<_>>(), jobs);
    (index_est, index_secs)
}

/// How long replay takes to catch up with what was written before it (None: it would not,
/// with a warning, or replay was not measured).
fn replay_estimate(
    replay_rate: Option<f64>,
    write_rate: f64,
    before_replay: f64,
    warnings: &mut Vec<String>,
) -> Option<f64> {
    match replay_rate {
        _ if write_rate <= 0.0 => Some(0.0),
        Some(rr) if rr > write_rate * 1.05 => Some(write_rate * before_replay / (rr - write_rate)),
        Some(rr) => {
            warnings.push(format!(
                "the table takes {write_rate:.0} writes/s but replay was measured at {rr:.0} rows/s: replay would not catch up, and the swap would never come"
            ));
            None
        }
        None => None,
    }
}

/// Verification: both sides' row hashes measured on the sample, scaled to the table and to
/// the share of chunks the mode checks, on as many sessions as the copy. (share, seconds)
fn verify_estimate(o: &RunOptions, s: &SessionResult, n: f64, speedup: f64) -> (f64, f64) {
    let verify_share = match o.verify {
        crate::rewrite::verify::Mode::Full => 1.0,
        crate::rewrite::verify::Mode::Sample => 0.1,
        crate::rewrite::verify::Mode::Off => 0.0,
    };
    let verify_secs = match s.verify {
        Some((vrows, vsecs)) if vrows > 0 => vsecs * (n / vrows as f64) * verify_share / speedup,
        _ => 0.0,
    };
    (verify_share, verify_secs)
}

/// The figures each phase's estimate is made of, the inputs of [`phase_estimates`].
struct PhaseSecs {
    write_rate: f64,
    observed_secs: f64,
    shadow: f64,
    capture: f64,
    index: f64,
    /// Replay with ANALYZE (None: not estimated).
    replay: Option<f64>,
    analyze: f64,
    replay_rate: Option<f64>,
    verify: f64,
    verify_share: f64,
    swap: f64,
    finish: f64,
}

/// (phase, seconds, basis) for each phase of a run, in order.
fn phase_estimates(
    o: &RunOptions,
    plan: &Plan,
    m: &Measured,
    rows: i64,
    copy: &CopyEstimate,
    p: &PhaseSecs,
) -> Vec<(String, Option<f64>, String)> {
    let (write_rate, observed_secs, analyze_secs) = (p.write_rate, p.observed_secs, p.analyze);
    vec![
        ("preflight".to_string(), Some(0.0), "reads the catalog".to_string()),
        (
            "shadow".to_string(),
            Some(p.shadow),
            "measured: the shadow was created (and rolled back) on the real table".to_string(),
        ),
        (
            "capture".to_string(),
            Some(p.capture),
            if plan.has_integer_key() {
                "milliseconds when the lock is granted at the first attempt".to_string()
            } else {
                "milliseconds for the trigger; planning the chunks walks the key index once (not measured)".to_string()
            },
        ),
        ("copy".to_string(), Some(copy.secs), copy_basis(o, m, rows, copy)),
        (
            "build".to_string(),
            Some(p.index),
            format!(
                "measured: each index built on the sample at two sizes, scaled to the table, scheduled on {} connection(s){}{}",
                o.jobs,
                if o.order_by.is_some() { "" } else { "; the plain ones are built beside verification, so build plus verify is at most their sum" },
                if plan.foreign_keys.is_empty() { "" } else { "; foreign key validation not measured" }
            ),
        ),
        (
            "replay".to_string(),
            p.replay,
            match p.replay_rate {
                Some(rr) => format!(
                    "{write_rate:.1} writes/s observed over {observed_secs:.1} s, replay measured at {rr:.0} rows/s; includes ANALYZE ({analyze_secs:.1} s)"
                ),
                None => format!("{write_rate:.1} writes/s observed; replay not measured"),
            },
        ),
        (
            "verify".to_string(),
            Some(p.verify),
            match (o.verify, m.single.verify) {
                (crate::rewrite::verify::Mode::Off, _) => "--verify off".to_string(),
                (_, Some((vrows, vsecs))) => format!(
                    "measured: row hashes of {vrows} sampled source rows and their shadow rows in {vsecs:.2} s, scaled to the {} ({:?})",
                    if p.verify_share < 1.0 { "chunks checked" } else { "table" },
                    o.verify
                ),
                _ => "not measured".to_string(),
            },
        ),
        (
            "swap".to_string(),
            Some(p.swap),
            format!(
                "typically tens of milliseconds; each attempt waits at most {} ms for the lock",
                o.lock.timeout.as_millis()
            ),
        ),
        ("after swap".to_string(), Some(0.0), if plan.self_foreign_keys.is_empty() { "validates re-pointed foreign keys (not measured)".to_string() } else { "validates foreign keys (not measured)".to_string() }),
        ("finish".to_string(), Some(p.finish), "drops the log and functions".to_string()),
    ]
}

/// How the copy's estimate was made.
fn copy_basis(o: &RunOptions, m: &Measured, rows: i64, copy: &CopyEstimate) -> String {
    let CopyEstimate {
        rate,
        speedup,
        chunks,
        transactions,
        ..
    } = *copy;
    format!(
        "measured: {} rows copied at {:.0} rows/s through the binary COPY pipe{}, extrapolated to {} rows in about {transactions:.0} transaction{}{}",
        m.single.rows(),
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
    )
}

/// Half the width of the estimate's range: the copy's uncertainty from the spread between
/// windows, the others' from the model, added in quadrature.
fn uncertainty(m: &Measured, copy: &CopyEstimate, p: &PhaseSecs) -> f64 {
    let u_copy = if m.method == "whole table" {
        0.1
    } else {
        (2.0 * copy.cv / (copy.window_rates.len().max(1) as f64).sqrt()).max(0.1)
    };
    let parts = [
        copy.secs * u_copy,
        p.index * 0.25,
        p.verify * 0.25,
        p.replay.unwrap_or(0.0) * 0.5,
        (p.shadow + p.capture + p.swap + p.finish) * 0.5,
    ];
    parts.iter().map(|x| x * x).sum::<f64>().sqrt()
}

/// The confidence (from the relative uncertainty and what could not be estimated) and the
/// reasons behind it.
fn confidence(
    o: &RunOptions,
    m: &Measured,
    n: f64,
    rel: f64,
    cv: f64,
    replay_estimated: bool,
) -> (&'static str, Vec<String>) {
    let s = &m.single;
    let sample_rows = s.rows().max(1) as f64;
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
    if !replay_estimated {
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
    (confidence, reasons)
}

/// Extrapolates the measurements to the table and its write rate: each phase's time, the
/// total with its range and confidence, the disk and WAL the run writes.
#[allow(clippy::too_many_arguments)]
pub(super) async fn estimate(
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
    let scale = n / sample_rows;
    let copy = copy_estimate(o, m, n);
    let (index_est, index_secs) = index_estimates(s, scale, o.jobs);
    let analyze_secs = s.analyze_secs.unwrap_or(0.0)
        * (n.min(m.stat_rows) / sample_rows.min(m.stat_rows)).max(1.0);
    let replay_rate = s.replay.map(|(r, secs)| r as f64 / secs.max(1e-6));
    let capture_secs = 0.05;
    let before_replay = shadow_secs + capture_secs + copy.secs + index_secs;
    let mut warnings = Vec::new();
    let replay_secs = replay_estimate(replay_rate, write_rate, before_replay, &mut warnings);
    let (verify_share, verify_secs) = verify_estimate(o, s, n, copy.speedup);
    let secs = PhaseSecs {
        write_rate,
        observed_secs,
        shadow: shadow_secs,
        capture: capture_secs,
        index: index_secs,
        replay: replay_secs.map(|r| r + analyze_secs),
        analyze: analyze_secs,
        replay_rate,
        verify: verify_secs,
        verify_share,
        swap: 0.05 + replay_rate.map(|rr| write_rate * 0.2 / rr).unwrap_or(0.0),
        finish: 0.05,
    };
    let phases = phase_estimates(o, plan, m, rows, &copy, &secs);
    let total: f64 = phases.iter().filter_map(|p| p.1).sum();
    let half = uncertainty(m, &copy, &secs);
    let rel = if total > 0.0 { half / total } else { 0.0 };
    let (confidence, reasons) = confidence(o, m, n, rel, copy.cv, secs.replay.is_some());
    let new_table = (s.table_bytes as f64 * scale) as u64;
    let new_indexes: u64 = index_est.iter().map(|i| i.bytes).sum();
    let log_rows = write_rate * (before_replay + replay_secs.unwrap_or(0.0));
    // A log row: tuple header, id, flag and keys (~64 bytes), plus its primary key entry.
    let log_bytes = (log_rows * 100.0) as u64;
    let wal_generated = crate::rewrite::checks::DiskSizes {
        new_table,
        new_indexes,
        log_bytes,
    }
    .wal_generated();
    Ok(Estimated {
        copy_transactions: copy.transactions as usize,
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
                rows_per_sec: copy.rate,
                window_rows_per_sec: copy.window_rates,
                variation: copy.cv,
                parallel_speedup: copy.speedup,
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
