//! Replay: bringing every logged key of the shadow back in sync with the source.
//!
//! For a batch of log rows, in one transaction: delete exactly those log rows (by id, returning
//! them), delete their keys from the shadow, insert them again from the source through the
//! mapping. Invariants kept here (DESIGN.md): replay never trusts log order or id ranges — it
//! deletes exactly the rows it read, so a transaction that commits late is replayed in a later
//! batch; and it runs only after the whole copy, so it never races a chunk's copy. A TRUNCATE
//! marker stops the run.
//!
//! Replay keeps whatever uniqueness the source keeps (issue 13, docs/how-it-works.md, "The
//! consistency point"). Until the shadow has a constraint that compares rows (a unique index
//! besides the row identity's, an exclusion constraint), batches are bounded
//! ([`Batching::Bounded`]). From the consistency point on, every batch is *complete*
//! ([`Batching::Complete`]): it runs in REPEATABLE READ and takes every log row its snapshot
//! sees, so at its commit every key that changed since its last sync is re-read as of that one
//! snapshot, and every other shadow row already equals the source as of it (a later change
//! would have left a log row the snapshot sees). The shadow then equals the source as of one
//! moment, which satisfies the source's constraints; and since the batch first deletes its keys
//! and then inserts, every state in between is a subset of that one, so even an immediate
//! unique index never sees a duplicate. A batch that took only some of the visible log rows
//! could re-read one key at a newer moment than a neighbour it collides with — which is how a
//! unique value moving between rows broke the build and replay before.

use crate::db::ident::join_idents;
use crate::db::locking::{LockPolicy, Retry};
use crate::error::{DbContext, Error, Result, RowExt};
use crate::pacing::governor::Governor;
use crate::rewrite::capture::log_key_columns;
use crate::rewrite::plan::Plan;
use std::time::{Duration, Instant};
use tokio_postgres::{Client, GenericClient};

/// The temporary table that holds a batch (per session; emptied at commit).
const BATCH: &str = "hotswap_replay_batch";

/// Creates the session's batch table. Call once per session before [`apply_batch`].
pub async fn prepare_session(client: &Client, plan: &Plan) -> Result<()> {
    let cols: Vec<String> = log_key_columns(plan)
        .iter()
        .zip(&plan.key)
        .map(|(k, key)| format!("{k} {}", key.source_type))
        .collect();
    client
        .batch_execute(&format!(
            "CREATE TEMP TABLE IF NOT EXISTS {BATCH} (id bigint, truncated boolean, {}) ON COMMIT DELETE ROWS",
            cols.join(", ")
        ))
        .await
        .ctx("creating the replay batch table")?;
    Ok(())
}

/// Result of one batch.
#[derive(Clone, Copy, Debug, Default)]
pub struct Batch {
    /// Log rows consumed.
    pub log_rows: u64,
    /// Distinct keys re-synced.
    pub keys: u64,
    /// The largest backlog measured while catching up (0 when not measured).
    pub peak: i64,
}

/// How much of the change log one replay transaction takes (see the module header).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Batching {
    /// At most this many log rows, in log order: only while the shadow has no constraint that
    /// compares rows (before the consistency point).
    Bounded(i64),
    /// Every log row the transaction's snapshot sees, in REPEATABLE READ.
    Complete,
}

impl Batching {
    fn takes_all_of(self, n: u64) -> bool {
        match self {
            Batching::Bounded(limit) => (n as i64) < limit,
            Batching::Complete => true,
        }
    }
}

/// The batching replay must use for `plan` once its consistency point has passed: complete
/// batches when the shadow has (or will have) constraints that compare rows, bounded ones
/// (`limit` rows) otherwise.
pub fn batching_for(plan: &Plan, limit: i64) -> Batching {
    if plan.indexes.iter().any(|i| i.after_catch_up) {
        Batching::Complete
    } else {
        Batching::Bounded(limit)
    }
}

/// Applies one batch inside the caller's transaction. With [`Batching::Complete`] the caller's
/// transaction must be REPEATABLE READ (or hold the swap lock, which stops every writer).
pub async fn apply_batch(
    tx: &impl GenericClient,
    plan: &Plan,
    batching: Batching,
) -> Result<Batch> {
    let log = &plan.capture.log;
    let kcols = log_key_columns(plan);
    let klist = join_idents(&kcols);
    // Batches within one transaction (the swap's final replay) must not see the previous ones.
    tx.execute(&format!("DELETE FROM pg_temp.{BATCH}"), &[])
        .await
        .ctx("clearing the replay batch")?;
    // Bounded: the first `limit` log rows; complete: every row the snapshot sees.
    let (which, limit) = match batching {
        Batching::Bounded(limit) => (
            format!("WHERE id IN (SELECT id FROM {log} ORDER BY id LIMIT $1)"),
            Some(limit),
        ),
        Batching::Complete => ("WHERE $1::int8 IS NULL".to_string(), None),
    };
    let taken = tx
        .execute(
            &format!(
                "WITH d AS (DELETE FROM {log} {which} RETURNING id, truncated, {klist}) \
                 INSERT INTO pg_temp.{BATCH} SELECT * FROM d"
            ),
            &[&limit],
        )
        .await
        .ctx("reading a batch of the change log")?;
    if taken == 0 {
        return Ok(Batch::default());
    }
    let truncated: bool = tx
        .query_one(
            &format!("SELECT COALESCE(bool_or(truncated), false) FROM pg_temp.{BATCH}"),
            &[],
        )
        .await
        .ctx("reading a batch of the change log")?
        .col(0, &"reading a batch of the change log")?;
    if truncated {
        return Err(Error::failed(format!(
            "{} was truncated while pg-hotswap was rewriting it; the copy no longer matches it",
            plan.source.human()
        ))
        .with_next(format!(
            "run `pg-hotswap abort --table {}` and start the rewrite again",
            crate::output::ui::shell_word(&plan.source.to_string())
        )));
    }
    // Keys as the shadow stores them (cast when the ALTER changed a key column's type).
    let shadow_keys: Vec<String> = kcols
        .iter()
        .zip(&plan.key)
        .map(|(k, key)| {
            let e = match &key.shadow_cast {
                Some(t) => format!("CAST({k} AS {t})"),
                None => k.to_string(),
            };
            match &key.shadow_collation {
                Some(c) => format!("{e} COLLATE {c}"),
                None => e,
            }
        })
        .collect();
    let keys = plan.key_list();
    // Deferrable constraints of the shadow are checked at the end of the batch, as the source's
    // were at the end of its transactions (and set back to immediate there).
    tx.batch_execute("SET CONSTRAINTS ALL DEFERRED")
        .await
        .ctx("deferring the shadow's deferrable constraints")?;
    let deleted_keys = tx
        .execute(
            &format!(
                "DELETE FROM {shadow} WHERE ({skeys}) IN (SELECT {sk} FROM pg_temp.{BATCH} WHERE NOT truncated)",
                skeys = plan.shadow_key_list(),
                shadow = plan.shadow,
                sk = shadow_keys.join(", ")
            ),
            &[],
        )
        .await
        .ctx(format_args!("replaying changes into {}", plan.shadow.human()))?;
    let cols = join_idents(plan.copy_columns());
    let overriding = if plan.overriding {
        " OVERRIDING SYSTEM VALUE"
    } else {
        ""
    };
    let inserted = tx
        .execute(
            &format!(
                "INSERT INTO {shadow} ({cols}){overriding} SELECT {sel} FROM {src} \
                  WHERE ({keys}) IN (SELECT {klist} FROM pg_temp.{BATCH} WHERE NOT truncated)",
                shadow = plan.shadow,
                sel = plan.select_list(),
                src = plan.source_from(),
            ),
            &[],
        )
        .await
        .ctx(format_args!(
            "replaying changes into {}",
            plan.shadow.human()
        ))?;
    // Checked here, at the end of the batch, where the shadow is consistent again; the swap
    // transaction continues with DDL, which pending checks would refuse.
    tx.batch_execute("SET CONSTRAINTS ALL IMMEDIATE")
        .await
        .ctx(format_args!(
            "checking the deferred constraints of {} after a replay batch",
            plan.shadow.human()
        ))?;
    Ok(Batch {
        log_rows: taken,
        keys: deleted_keys.max(inserted),
        peak: 0,
    })
}

/// Applies one batch in its own transaction. Its statements wait at most lock_timeout for their
/// locks (someone else's DDL may be queued on the table); on a timeout the batch rolled back, so
/// it is tried again under the run's lock policy (`--max-lock-attempts`, `--retry-delay`:
/// `locking::Retry`), like every other statement of the tool.
pub async fn replay_batch(
    client: &mut Client,
    plan: &Plan,
    limit: Batching,
    policy: &LockPolicy,
) -> Result<Batch> {
    let mut tries = Retry::new(policy, "a replay batch");
    loop {
        tries.start();
        let r = replay_batch_once(client, plan, limit).await;
        if let Some(b) = tries.settle(r).await? {
            return Ok(b);
        }
    }
}

async fn replay_batch_once(client: &mut Client, plan: &Plan, batching: Batching) -> Result<Batch> {
    // Complete batches read the log and the source in one snapshot (see the module header).
    let isolation = match batching {
        Batching::Bounded(_) => tokio_postgres::IsolationLevel::ReadCommitted,
        Batching::Complete => tokio_postgres::IsolationLevel::RepeatableRead,
    };
    let tx = client
        .build_transaction()
        .isolation_level(isolation)
        .start()
        .await
        .ctx("starting a replay transaction")?;
    let b = apply_batch(&tx, plan, batching).await?;
    crate::failpoint::hold("replay-batch").await;
    tx.commit().await.ctx("committing a replay batch")?;
    crate::failpoint::hit("replay-batch");
    Ok(b)
}

/// Replays until a batch comes back less than full (the backlog is then about what arrives
/// during one batch), asking `gov` before each batch (pause, throttles, `--nice`). Says every few
/// seconds how the backlog develops, so a load that outpaces replay is visible rather than
/// silent; and when the backlog has not shrunk for `--converge-timeout` (time held by a pause or
/// a throttle not counted), stops with the figures instead of chasing the writes forever: the
/// swap is then never attempted, so no lock is held while a long backlog is replayed.
pub async fn catch_up(
    client: &mut Client,
    plan: &Plan,
    limit: i64,
    target: i64,
    gov: &Governor,
    policy: &LockPolicy,
) -> Result<Batch> {
    catch_up_with(client, plan, batching_for(plan, limit), target, gov, policy).await
}

/// [`catch_up`] with explicit batching: the run's first catch-up after the copy, before the
/// consistency point, takes bounded batches whatever the plan.
pub async fn catch_up_with(
    client: &mut Client,
    plan: &Plan,
    batching: Batching,
    target: i64,
    gov: &Governor,
    policy: &LockPolicy,
) -> Result<Batch> {
    let mut total = Batch::default();
    let started = Instant::now();
    let mut last_report = started;
    // The lowest backlog seen and when; replay converges while this keeps falling.
    let mut best: Option<(i64, Instant, u64)> = None;
    let timeout = gov.options().converge_timeout;
    loop {
        let waited = Instant::now();
        gov.replay_permit(plan.run_id).await?;
        if waited.elapsed() > Duration::from_secs(1) {
            best = None; // held: the backlog grew for a reason of our own
        }
        let t = Instant::now();
        let b = replay_batch(client, plan, batching, policy).await?;
        total.log_rows += b.log_rows;
        total.keys += b.keys;
        if (b.log_rows as i64) < target.max(1) && batching.takes_all_of(b.log_rows)
            || b.log_rows == 0
        {
            return Ok(total);
        }
        gov.nice(t.elapsed()).await;
        if last_report.elapsed() >= Duration::from_secs(5) {
            last_report = Instant::now();
            let backlog = crate::rewrite::capture::backlog_estimate(client, plan).await?;
            total.peak = total.peak.max(backlog);
            tracing::debug!(
                backlog,
                replayed_per_sec = total.log_rows as f64 / started.elapsed().as_secs_f64(),
                "replay progress"
            );
            crate::output::progress::backlog(backlog.max(0) as u64);
            match best {
                Some((low, _, _)) if backlog < low => {
                    best = Some((backlog, Instant::now(), total.log_rows))
                }
                None => best = Some((backlog, Instant::now(), total.log_rows)),
                Some((low, since, replayed_then)) if since.elapsed() >= timeout => {
                    let secs = since.elapsed().as_secs_f64();
                    let replayed = (total.log_rows - replayed_then) as f64 / secs;
                    let arriving = replayed + (backlog - low) as f64 / secs;
                    return Err(Error::failed(format!(
                        "replay does not keep up with the writes to {}: the backlog has not shrunk below {low} changes for {:.0} s \
                         (now {backlog}; about {arriving:.0} changes/s arrive, {replayed:.0}/s are replayed); not swapping",
                        plan.source.human(),
                        secs
                    ))
                    .with_state(format!(
                        "{} is unchanged and usable; the capture trigger keeps recording writes into {} until the run continues or is aborted",
                        plan.source.human(),
                        plan.capture.log.human()
                    ))
                    .with_next(
                        "continue with `pg-hotswap resume` when the write load is lower (or with a --window in quiet hours), \
                         with a larger --replay-batch; or `pg-hotswap abort` to remove the capture",
                    ));
                }
                Some(_) => {}
            }
        }
    }
}
