//! The swap: in one transaction under a short `lock_timeout`, lock the source and the shadow,
//! replay what is left, and put the shadow in the source's place with everything attached to it.
//!
//! On a lock timeout the transaction rolls back (the source is untouched), replay catches up,
//! and the swap is tried again after a jittered backoff, up to `--max-lock-attempts`; then the
//! run stops cleanly. Invariants kept here (DESIGN.md): the final replay runs under the lock,
//! when no writer can add more; the source's definition is fingerprinted again under the lock,
//! so a concurrent ALTER by someone else stops the run; sequences continue where they were;
//! incoming foreign keys are re-pointed NOT VALID and validated after commit.

mod after;
mod blocked;
mod ddl;
mod sequences;
mod views;

pub use after::{after_swap_steps, analyze_step, validate_foreign_keys, validate_step};
pub use ddl::{ddl_steps, read_facts, SwapDdl, SwapFacts};
pub use sequences::SEQUENCE_RESERVE;
pub use views::{view_recreate_steps, view_replace_steps};

use crate::db::catalog;
use crate::db::ident::{pg_millis, Ident, QualifiedName};
use crate::db::locking::{self, LockPolicy};
use crate::error::{DbContext, Error, Kind, Result, RowExt};
use crate::rewrite::capture;
use crate::rewrite::carried;
use crate::rewrite::plan::Plan;
use crate::rewrite::preflight::Source;
use crate::rewrite::replay;
use crate::rewrite::step::{self, Step};
use crate::state::{Phase, State};
use std::time::{Duration, Instant};
use tokio_postgres::{Client, Transaction};

pub struct SwapOutcome {
    pub attempts: u32,
    /// How long the ACCESS EXCLUSIVE lock was held by the successful attempt.
    pub held: Duration,
    /// The longest any attempt waited for, or held, the lock.
    pub longest_lock: Duration,
    pub old: QualifiedName,
    pub replayed_under_lock: u64,
    /// Foreign keys to validate after commit: (table, constraint).
    pub to_validate: Vec<(QualifiedName, Ident)>,
}

/// Names decided before the first attempt (so every attempt uses the same ones).
pub struct Names {
    pub old: QualifiedName,
    /// (current name of a source index, its name on the old table).
    old_indexes: Vec<(Ident, String)>,
    /// (identity sequence of the source, its name once it belongs to the old table).
    old_sequences: Vec<(QualifiedName, String)>,
    /// (extended statistics of the source, its name once it belongs to the old table).
    old_statistics: Vec<(QualifiedName, String)>,
    /// A rewritten partitioned table's partitions and their indexes (issue 15), in the order
    /// the swap renames them: (current name, new name in the same schema). The old tree's move
    /// out of the way first, then the new tree's take their names.
    partition_renames: Vec<(QualifiedName, String)>,
}

/// The first of `<base>_old`, `<base>_old2`... that no statistics object in the schema uses.
async fn free_statistics_name(client: &Client, name: &QualifiedName) -> Result<String> {
    for n in 0..1000 {
        let suffix = if n == 0 {
            "_old".to_string()
        } else {
            format!("_old{}", n + 1)
        };
        let candidate = crate::db::ident::fit_name(name.name.as_str(), &suffix);
        let taken: bool = client
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_statistic_ext s \
                   JOIN pg_catalog.pg_namespace n ON n.oid = s.stxnamespace \
                  WHERE n.nspname = $1 AND s.stxname = $2)",
                &[&name.schema.as_str(), &candidate],
            )
            .await
            .ctx("looking up a statistics name")?
            .col(0, &"looking up a statistics name")?;
        if !taken {
            return Ok(candidate);
        }
    }
    Err(Error::failed(format!(
        "no free name like {}_old",
        name.human()
    )))
}

/// `suffix` goes on the names the old table's indexes and partitions move to: `_old` for a
/// forward run, `_rewritten` for a revert (whose outgoing table is the rewritten one).
pub async fn decide_names(
    client: &Client,
    plan: &Plan,
    src: &Source,
    old_name: Option<&str>,
    suffix: &str,
) -> Result<Names> {
    let schema = &plan.source.schema;
    let old = match old_name {
        Some(n) => n.to_string(),
        None => catalog::free_name(client, schema, plan.source.name.as_str(), "_old", &[]).await?,
    };
    let mut taken = vec![old.clone()];
    // Final names of the new indexes are taken once the old ones move out of the way.
    for ix in plan.indexes.iter().filter(|i| !i.temporary) {
        taken.push(ix.final_name.as_str().to_string());
    }
    let mut old_indexes = Vec::new();
    for ix in &src.indexes {
        let n = catalog::free_name(client, schema, ix.name.as_str(), suffix, &taken).await?;
        taken.push(n.clone());
        old_indexes.push((ix.name.clone(), n));
    }
    let mut old_sequences = Vec::new();
    for s in src.sequences.iter().filter(|s| s.deptype == "i") {
        let n = catalog::free_name(client, &s.name.schema, s.name.name.as_str(), "_old", &taken)
            .await?;
        taken.push(n.clone());
        old_sequences.push((s.name.clone(), n));
    }
    let mut old_statistics = Vec::new();
    for st in &src.statistics {
        old_statistics.push((
            st.name.clone(),
            free_statistics_name(client, &st.name).await?,
        ));
    }
    let partition_renames = partition_renames(client, plan, &mut taken, suffix).await?;
    Ok(Names {
        old: plan.source.sibling(old),
        old_indexes,
        old_sequences,
        old_statistics,
        partition_renames,
    })
}

/// The renames that give a rewritten partitioned table's new partitions, and their indexes,
/// the old ones' names (issue 15). Indexes are paired within a pair of partitions by their
/// definition after `USING` (the same key columns, method and options); a new index with no old
/// twin (the ALTER changed it) gets its name with the partition's new name in it, when free.
/// Outside the swap (`plan`, where the shadow exists only in a rolled-back trial) the new
/// partitions' indexes are not known: only the partitions' renames are listed.
async fn partition_renames(
    client: &Client,
    plan: &Plan,
    taken: &mut Vec<String>,
    suffix: &str,
) -> Result<Vec<(QualifiedName, String)>> {
    let Some(parts) = &plan.partitioning else {
        return Ok(Vec::new());
    };
    let mut old_side = Vec::new();
    let mut new_side = Vec::new();
    for p in &parts.partitions {
        let Some((old_oid, old)) = &p.replaces else {
            continue;
        };
        let moved =
            catalog::free_name(client, &old.schema, old.name.as_str(), suffix, taken).await?;
        taken.push(moved.clone());
        old_side.push((old.clone(), moved));
        new_side.push((p.name.clone(), p.final_name.name.as_str().to_string()));
        let what = "pairing the indexes of a partition with the old one's";
        let rows = client
            .query(
                "WITH i AS (SELECT x.indrelid AS rel, c.relname::text AS name, \
                                   substr(pg_catalog.pg_get_indexdef(c.oid), \
                                          position(' USING ' IN pg_catalog.pg_get_indexdef(c.oid))) AS def \
                              FROM pg_catalog.pg_index x JOIN pg_catalog.pg_class c ON c.oid = x.indexrelid \
                             WHERE x.indrelid IN ($1, to_regclass($2::text))), \
                      n AS (SELECT name, def, row_number() OVER (PARTITION BY def ORDER BY name) AS k \
                              FROM i WHERE rel = to_regclass($2::text)), \
                      o AS (SELECT name, def, row_number() OVER (PARTITION BY def ORDER BY name) AS k \
                              FROM i WHERE rel = $1) \
                 SELECT n.name, o.name FROM n LEFT JOIN o USING (def, k) ORDER BY n.name",
                &[old_oid, &p.name.to_string()],
            )
            .await
            .ctx(what)?;
        for r in rows {
            let new_ix: String = r.col(0, &what)?;
            let old_ix: Option<String> = r.col(1, &what)?;
            let schema = &p.name.schema;
            match old_ix {
                Some(o) => {
                    let moved = catalog::free_name(client, schema, &o, suffix, taken).await?;
                    taken.push(moved.clone());
                    old_side.push((QualifiedName::new(schema.as_str(), o.clone()), moved));
                    new_side.push((QualifiedName::new(schema.as_str(), new_ix), o));
                }
                None => {
                    let Some(rest) = new_ix.strip_prefix(p.name.name.as_str()) else {
                        continue;
                    };
                    let wanted = format!("{}{rest}", p.final_name.name.as_str());
                    if wanted.len() <= crate::db::ident::MAX_IDENT_BYTES
                        && !taken.contains(&wanted)
                        && !catalog::relation_exists(client, schema, &wanted).await?
                    {
                        taken.push(wanted.clone());
                        new_side.push((QualifiedName::new(schema.as_str(), new_ix), wanted));
                    }
                }
            }
        }
    }
    old_side.extend(new_side);
    Ok(old_side)
}

pub struct SwapRequest<'a> {
    pub policy: &'a LockPolicy,
    /// Paces the replay between attempts (pause, throttles).
    pub gov: &'a crate::pacing::governor::Governor,
    pub replay_limit: i64,
    pub old_name: Option<&'a str>,
    /// Goes on the names the outgoing table's indexes and partitions move to (`decide_names`).
    pub kept_suffix: &'a str,
    /// `--terminate-blockers-after`: after a failed attempt, terminate the sessions that blocked
    /// it whose transaction is older than this (issue 20; `swap/blocked.rs`).
    pub terminate_blockers_after: Option<Duration>,
}

/// Swaps the shadow in. `client` does the swap; `ctl` records events.
pub async fn swap(
    client: &mut Client,
    ctl: &Client,
    state: &State,
    plan: &Plan,
    src: &Source,
    req: &SwapRequest<'_>,
) -> Result<SwapOutcome> {
    let names = decide_names(ctl, plan, src, req.old_name, req.kept_suffix).await?;
    replay::prepare_session(client, plan).await?;
    // The swap's own backend, whose lock waits `blocked::watch` samples.
    let waiter: i32 = client
        .query_one("SELECT pg_catalog.pg_backend_pid()", &[])
        .await
        .ctx("reading the swap session's pid")?
        .col(0, &"reading the swap session's pid")?;
    let relations = [plan.source_oid, plan.shadow_oid];
    let budget = first_message_budget(ctl, req.policy.timeout).await?;
    let mut longest = Duration::ZERO;
    let mut tries = locking::Retry::new(req.policy, "swap");
    // The source's privileges, comments and settings as they are now (`carried`): read here,
    // and again whenever their version moved before an attempt. Not compared under the lock:
    // every millisecond there before the foreign keys are moved lets writers of a referencing
    // table queue behind the lock while holding that table (measured: the FK-chain scenario's
    // swap then failed its 30 attempts in CI).
    let mut fresh = carried::read(&*client, plan, src).await?;
    // Set when an attempt found the source changed under its lock: read it again whatever the
    // version says.
    let mut reread = false;
    loop {
        let attempt = tries.start();
        replay::catch_up(
            client,
            plan,
            req.replay_limit,
            req.replay_limit,
            req.gov,
            req.policy,
        )
        .await?;
        crate::failpoint::hold("before-swap-lock").await;
        if std::mem::take(&mut reread)
            || catalog::carried_fingerprint(&*client, plan.source_oid).await? != fresh.fingerprint
        {
            fresh = carried::read(&*client, plan, src).await?;
        }
        crate::failpoint::hold("before-swap-transaction").await;
        let started = Instant::now();
        let tx = client
            .transaction()
            .await
            .ctx("starting the swap transaction")?;
        let (outcome, sampled) = blocked::watch(ctl, waiter, &relations, budget, async {
            locking::set_local_timeout(&tx, budget).await?;
            let first = lock_step(plan, &fresh.src, LockOrder::for_attempt(attempt));
            match take_locks(&tx, ctl, waiter, &first, budget).await {
                // A view or linked table the source was read with was dropped since.
                Err(e) if e.is_undefined_relation() => return Ok(Attempt::SourceChanged),
                other => other?,
            }
            attempt_swap(&tx, state, plan, &fresh, &names, req).await
        })
        .await;
        let outcome = match outcome {
            Err(e) if e.is_lock_not_granted() => Ok(Attempt::LockNotGranted(e)),
            // A GRANT or REVOKE, which locks nothing, wrote the table's catalog row meanwhile.
            Err(e) if e.is_concurrent_catalog_update() => Ok(Attempt::SourceChanged),
            other => other,
        };
        let swapped = match outcome {
            Ok(Attempt::Swapped(s)) => s,
            Err(e) => {
                drop(tx); // rolls back: the source is untouched
                return Err(e.or_state(
                    format!(
                        "the swap was rolled back; {} is unchanged and usable, and its capture trigger keeps recording writes for the run",
                        plan.source.human()
                    ),
                    format!(
                        "fix the cause and run the same command again (or `pg-hotswap resume`) to continue, or `pg-hotswap abort --table {}` to remove the run",
                        crate::output::ui::shell_word(&plan.source.to_string())
                    ),
                ));
            }
            // A GRANT, REVOKE or similar wrote the source's catalog row while the swap wrote it
            // (PostgreSQL's "tuple concurrently updated"): read them again, then retry at once.
            Ok(Attempt::SourceChanged) => {
                reread = true;
                longest = longest.max(waited(started, req.policy));
                drop(tx); // rolls back: the source is untouched
                let again = RetryAtOnce {
                    kind: "swap_source_changed",
                    why: "the table's privileges, comments or settings, or the views over it, changed while the swap was being made".into(),
                    then: "rolled back to carry them over",
                    every_time: "another session changed its privileges, comments, settings or views while the swap was being made",
                };
                again.record(ctl, state, plan, &tries, req).await?;
                continue;
            }
            // Too many changes to replay under the lock: catch up again, then retry at once.
            Ok(Attempt::BacklogTooBig { pending, most }) => {
                longest = longest.max(waited(started, req.policy));
                drop(tx); // rolls back: the source is untouched
                let again = RetryAtOnce {
                    kind: "swap_backlog",
                    why: format!(
                        "{pending} changes arrived between the catch-up and the lock (more than {most}); replaying them under the lock would hold it too long"
                    ),
                    then: "rolled back to catch up first",
                    every_time: "the writes left more changes than can be replayed under the lock",
                };
                again.record(ctl, state, plan, &tries, req).await?;
                continue;
            }
            Ok(Attempt::LockNotGranted(e)) => {
                let wait = waited(started, req.policy);
                longest = longest.max(wait);
                drop(tx); // rolls back: the source is untouched
                let failed = blocked::Failed {
                    ctl,
                    state,
                    plan,
                    attempt,
                    waiter,
                    waited: wait,
                    terminate_after: req.terminate_blockers_after,
                };
                let list = blocked::or_fallback(&failed, sampled).await;
                let holders = blocked::named(&list);
                state
                    .record_lock(ctl, plan.run_id, attempt as i32, None)
                    .await?;
                state
                    .event(
                        ctl,
                        plan.run_id,
                        Phase::Swap,
                        "lock_timeout",
                        &format!("swap attempt {attempt}: {}{holders}", e.message()),
                        Some(blocked::detail(attempt, &list)),
                    )
                    .await?;
                // One line per attempt (a warning; its figures as JSON fields), not also a
                // tracing event: the log in a file said each one twice (issue 19).
                let mut fields = serde_json::Map::new();
                fields.insert("attempt".into(), attempt.into());
                fields.insert("attempts".into(), req.policy.attempts.into());
                fields.insert(
                    "blockers".into(),
                    list.iter().map(|b| b.pid).collect::<Vec<_>>().into(),
                );
                let how = if e.is_deadlock() {
                    "before PostgreSQL ended its wait as a deadlock (a transaction that held what it waited for waited for what it held)".to_string()
                } else {
                    format!("within {}", pg_millis(budget))
                };
                crate::output::ui::say_with(
                    &format!(
                        "warning: swap attempt {attempt}/{} could not get the lock {how}{holders}",
                        req.policy.attempts,
                    ),
                    fields,
                );
                blocked::advise(&list);
                if !tries.may_retry() {
                    let mut err = Error::new(
                        Kind::LockTimeout,
                        format!(
                            "could not swap {}: the ACCESS EXCLUSIVE lock was not granted within {} in {attempt} attempts{holders}",
                            plan.source.human(),
                            pg_millis(req.policy.timeout)
                        ),
                    );
                    if req.terminate_blockers_after.is_none() && !list.is_empty() {
                        err = err.with_next(
                            "end the blocking transactions named above (or wait for them) and run the same command again (or `pg-hotswap resume`); with `--terminate-blockers-after DURATION`, run and resume end blockers older than DURATION by themselves",
                        );
                    }
                    return Err(err);
                }
                blocked::deal_with(&failed, &list).await?;
                tries.back_off().await;
                continue;
            }
        };
        crate::failpoint::hold("swap-before-commit").await;
        tx.commit().await.ctx("committing the swap")?;
        crate::failpoint::hit("swapped");
        let held = swapped.locked_at.elapsed();
        longest = longest.max(held);
        state
            .record_lock(
                ctl,
                plan.run_id,
                attempt as i32,
                Some(held.as_secs_f64() * 1000.0),
            )
            .await?;
        state
            .event(
                ctl,
                plan.run_id,
                Phase::Swap,
                "swap",
                &format!(
                    "swapped on attempt {attempt}; ACCESS EXCLUSIVE held {:.1} ms",
                    held.as_secs_f64() * 1000.0
                ),
                None,
            )
            .await?;
        return Ok(SwapOutcome {
            attempts: attempt,
            held,
            longest_lock: longest,
            old: names.old,
            replayed_under_lock: swapped.replayed,
            to_validate: swapped.to_validate,
        });
    }
}

/// How long a failed attempt counts as waiting for (or holding) the lock: its time, but at most
/// about one lock timeout.
fn waited(started: Instant, policy: &LockPolicy) -> Duration {
    started
        .elapsed()
        .min(policy.timeout + Duration::from_millis(50))
}

/// What one swap attempt came to (issue 17: the backlog case is an outcome, not an error).
enum Attempt {
    /// The shadow is in the source's place inside the attempt's transaction: commit it.
    Swapped(Swapped),
    /// A lock was not granted within `lock_timeout` (the SQLSTATE 55P03 error): roll back, back
    /// off, catch up and try again.
    LockNotGranted(Error),
    /// More changes arrived between the catch-up and the lock than may be replayed under it:
    /// roll back, catch up and try again at once.
    BacklogTooBig { pending: i64, most: i64 },
    /// A `GRANT` or similar wrote the source's catalog row while the swap wrote it
    /// (PostgreSQL's "tuple concurrently updated"): roll back, read the source's privileges,
    /// comments and settings again (`carried`) and try again at once.
    SourceChanged,
}

/// A swap attempt rolled back for a reason that calls for trying again at once, not after the
/// retry delay: recorded as event `kind`, printed with what was done (`then`).
struct RetryAtOnce {
    kind: &'static str,
    why: String,
    then: &'static str,
    /// The reason in the final error, when it happened at every attempt.
    every_time: &'static str,
}

impl RetryAtOnce {
    /// Records and prints the attempt. Errors: [`Kind::LockTimeout`] when it was the last one
    /// `--max-lock-attempts` allows; or the state's event could not be written.
    async fn record(
        &self,
        ctl: &Client,
        state: &State,
        plan: &Plan,
        tries: &locking::Retry<'_>,
        req: &SwapRequest<'_>,
    ) -> Result<()> {
        let attempt = tries.attempt();
        state
            .event(
                ctl,
                plan.run_id,
                Phase::Swap,
                self.kind,
                &format!("swap attempt {attempt}: {}", self.why),
                None,
            )
            .await?;
        crate::output::ui::say(&format!(
            "swap attempt {attempt}/{}: {}; {}",
            req.policy.attempts, self.why, self.then
        ));
        if tries.may_retry() {
            return Ok(());
        }
        Err(Error::new(
            Kind::LockTimeout,
            format!(
                "could not swap {}: at each of {attempt} attempts {}",
                plan.source.human(),
                self.every_time
            ),
        ))
    }
}

/// A successful attempt, not yet committed.
struct Swapped {
    locked_at: Instant,
    replayed: u64,
    to_validate: Vec<(QualifiedName, Ident)>,
}

async fn exec(tx: &Transaction<'_>, sql: &str, what: &str) -> Result<()> {
    tx.batch_execute(sql).await.ctx(what)
}

/// How long the swap's first message may wait in all: `--lock-timeout`, but at most half the
/// server's `deadlock_timeout`. While the message waits for one object it holds others; an
/// application transaction that holds the one and then waits for one of the others started
/// waiting before the swap did, so PostgreSQL's deadlock check (after `deadlock_timeout` of
/// waiting) ends the application's transaction, not the swap's (a fresh tester: "deadlock
/// detected" in pgbench with `--lock-timeout 2s`, and with 100 ms on a server whose
/// `deadlock_timeout` is 50 ms). Giving up well before `deadlock_timeout` leaves no cycle for
/// the check to find. Says so once when it shortens the wait. Errors: reading the setting.
async fn first_message_budget(ctl: &Client, timeout: Duration) -> Result<Duration> {
    let what = "reading deadlock_timeout";
    let ms: i64 = ctl
        .query_one(
            "SELECT setting::int8 FROM pg_catalog.pg_settings WHERE name = 'deadlock_timeout'",
            &[],
        )
        .await
        .ctx(what)?
        .col(0, &what)?;
    let deadlock = Duration::from_millis(ms.max(2) as u64);
    let budget = timeout.min(deadlock / 2);
    if budget < timeout {
        crate::output::ui::say(&format!(
            "warning: --lock-timeout {} is not below half the server's deadlock_timeout ({}): the swap's lock statement gives up after {} in all, so that an application transaction waiting for it is never the one PostgreSQL ends as a deadlock",
            pg_millis(timeout),
            pg_millis(deadlock),
            pg_millis(budget)
        ));
    }
    Ok(budget)
}

/// Runs the swap's first message, which takes every lock the swap will hold, within `budget`
/// (`--lock-timeout`) *in all*. Each of its statements waits at most the transaction's
/// `lock_timeout`, but while one waits the application queues behind the locks the earlier ones
/// took: a message that met several busy objects blocked the application for several timeouts
/// (a fresh tester: a reader of a view waited 551 ms with the default 100 ms). Past the budget
/// the statement is cancelled from the control session (`pg_cancel_backend` of the swap's own
/// backend, `waiter`; a cancel that arrives once the message is done finds the backend idle in
/// its transaction and is ignored by PostgreSQL), and the attempt ends as a lock not granted:
/// rolled back and retried like a `lock_timeout`.
async fn take_locks(
    tx: &Transaction<'_>,
    ctl: &tokio_postgres::Client,
    waiter: i32,
    first: &Step,
    budget: Duration,
) -> Result<()> {
    let mut run = std::pin::pin!(step::exec(tx, first));
    match tokio::time::timeout(budget, &mut run).await {
        Ok(done) => done,
        Err(_) => {
            ctl.execute("SELECT pg_catalog.pg_cancel_backend($1)", &[&waiter])
                .await
                .ctx("cancelling the swap's lock statement")?;
            // Cancelled, or granted just before: either way the attempt waited too long.
            let _ = run.await;
            Err(Error::lock_not_granted(format!(
                "its locks were not all granted within {} in all (cancelled)",
                pg_millis(budget)
            )))
        }
    }
}

/// The rest of an attempt once [`take_locks`] holds every lock.
async fn attempt_swap(
    tx: &Transaction<'_>,
    state: &State,
    plan: &Plan,
    fresh: &carried::Fresh,
    names: &Names,
    req: &SwapRequest<'_>,
) -> Result<Attempt> {
    let src = &fresh.src;
    let source = &plan.source;
    let locked_at = Instant::now();
    crate::failpoint::hit("swap-locked");
    crate::failpoint::hold("swap-locked").await;

    let now = catalog::fingerprint(tx, plan.source_oid).await?;
    if now != plan.fingerprint {
        return Err(Error::failed(format!(
            "the definition of {} changed while pg-hotswap was rewriting it (someone ran ALTER TABLE, CREATE INDEX or similar); \
             swapping would lose that change",
            source.human()
        ))
        .with_state(format!("the swap was rolled back; {} is unchanged and usable", source.human()))
        .with_next(format!(
            "run `pg-hotswap abort --table {}` and start the rewrite again",
            crate::output::ui::shell_word(&source.to_string())
        )));
    }

    // A view created or dropped after the source was read (another session's CREATE VIEW over
    // the table cannot commit now: it needs a lock the swap holds): read them again, retry.
    let mut known: Vec<u32> = src.views.iter().map(|v| v.oid).collect();
    known.sort_unstable();
    if catalog::dependent_relation_oids(tx, plan.source_oid).await? != known {
        return Ok(Attempt::SourceChanged);
    }
    // What preflight refuses, created during the run: an object that would keep pointing at the
    // old table, or drawing from its identity sequence, which this swap closes (a fresh tester:
    // a default nextval('t_id_seq') added during the run failed the application's INSERTs
    // after 1,000 rows).
    let others = catalog::other_dependents(tx, plan.source_oid).await?;
    if !others.is_empty() {
        return Err(Error::failed(format!(
            "these objects were made during the run and depend on {} (or on its identity sequence, which the swap replaces by the new table's own): {}",
            source.human(),
            others.join(", ")
        ))
        .with_next(
            "drop them (or give such a default its own sequence), run the same command again (or `pg-hotswap resume`) to swap, and create them again after the swap",
        ));
    }

    check_capture_untouched(tx, state, plan).await?;

    // The last replay must be short: it runs while every reader and writer of the table waits.
    // A burst of writes between the catch-up and the lock can leave more than one batch; then
    // roll back, catch up outside the lock and try again rather than hold the lock through it.
    let pending = capture::backlog_estimate(tx, plan).await?;
    let most = req.replay_limit.max(1_000);
    if pending > most {
        return Ok(Attempt::BacklogTooBig { pending, most });
    }

    // The last replay: no writer can add to the log while we hold the lock.
    let mut replayed = 0;
    loop {
        // Complete: every writer is stopped by the lock, so this one batch brings the shadow
        // to the source's final state (the pending check above keeps it short).
        let b = replay::apply_batch(tx, plan, replay::Batching::Complete).await?;
        replayed += b.log_rows;
        if b.log_rows == 0 {
            break;
        }
    }

    let facts = read_facts(tx, plan, src).await?;
    let ddl = ddl_steps(plan, src, names, &facts)?;
    // What changed on the source during the run, on the shadow's own names (before the renames).
    step::exec_all(tx, &fresh.steps).await?;
    step::exec_all(tx, &ddl.before_views).await?;
    views::recreate_views(tx, src).await?;
    step::exec_all(tx, &ddl.after_views).await?;
    step::exec_all(tx, &fresh.last).await?;
    let to_validate = ddl::to_validate(plan, src);
    if let Some(rev) = &plan.reverse {
        // The way back: every write to the new table from now on is recorded for `revert`
        // (its triggers are the last of the steps above).
        for t in capture::trigger_names(&rev.plan.capture) {
            let name = source.sibling(t.as_str());
            state
                .record_object(tx, plan.run_id, "rtrigger", &name, Some(plan.shadow_oid))
                .await?;
        }
    }
    let swap_names = serde_json::json!({
        "old": names.old.name.as_str(),
        "old_indexes": names.old_indexes.iter().map(|(orig, now)| [orig.as_str(), now.as_str()]).collect::<Vec<_>>(),
    });
    state
        .record_swap(
            tx,
            plan.run_id,
            &swap_names,
            plan.reverse.is_some(),
            names.old.name.as_str(),
        )
        .await?;
    Ok(Attempt::Swapped(Swapped {
        locked_at,
        replayed,
        to_validate,
    }))
}

/// Which objects the swap's first message locks first (see [`lock_step`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockOrder {
    /// The views over the table and the tables linked to it by a foreign key, then the table:
    /// right for what takes them in that order (a read of a view locks the view, then the
    /// table; a transaction deletes a child row, then its parent).
    OthersFirst,
    /// The table, then the others: right for a transaction that writes the table and then
    /// reads a view over it, or inserts a row whose foreign key checks its parent.
    TableFirst,
}

impl LockOrder {
    /// Attempt `n` (from 1): odd attempts lock the others first, even ones the table. No one
    /// order avoids a cycle with every application (each of the two kinds of transaction above
    /// makes every attempt in the other order wait out its lock timeout, measured), so the
    /// attempts alternate.
    pub fn for_attempt(n: u32) -> LockOrder {
        if n % 2 == 1 {
            LockOrder::OthersFirst
        } else {
            LockOrder::TableFirst
        }
    }
}

/// The swap's first message: every lock the swap transaction will hold, taken before it does
/// anything, each waiting at most the transaction's `lock_timeout`. A lock taken later, when
/// its object is re-created or its foreign key moved, let the application's statements that
/// held that object queue behind the swap's lock on the table, and the swap then waited for them
/// until its timeout (CI: 30 attempts in a row). The objects: the views and materialized views
/// over the table (outermost first, as a read takes them), the tables linked to it by a foreign
/// key (dropping a foreign key locks both its tables), the table and the shadow, in `order`;
/// then the table's owned sequences (an INSERT locks the table, then its sequence).
pub fn lock_step(plan: &Plan, src: &Source, order: LockOrder) -> Step {
    if let Some(of) = &plan.partition_of {
        return crate::rewrite::one_partition::lock_step(&plan.source, &plan.shadow, of);
    }
    let (source, shadow) = (&plan.source, &plan.shadow);
    // Views, materialized views and sequences: `LOCK TABLE` refuses the latter two and would
    // lock a view's base tables with it. `OWNER TO` the owner they have takes ACCESS EXCLUSIVE
    // on the object alone and writes nothing (PostgreSQL: "If the new owner is the same as the
    // existing owner, consider the command to have succeeded"). An owned sequence has its
    // table's owner.
    let views: Vec<String> = src
        .views
        .iter()
        .rev()
        .map(|v| {
            let kind = if v.relkind == "m" {
                "MATERIALIZED VIEW"
            } else {
                "VIEW"
            };
            format!("ALTER {kind} {} OWNER TO {}", v.name, v.owner)
        })
        .collect();
    let neighbours = foreign_key_neighbours(plan, src);
    let lock = |names: Vec<String>| {
        (!names.is_empty())
            .then(|| format!("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE", names.join(", ")))
    };
    let others = || {
        views
            .iter()
            .cloned()
            .chain(lock(neighbours.iter().map(ToString::to_string).collect()))
    };
    let table = lock(vec![source.to_string(), shadow.to_string()]);
    let mut sql: Vec<String> = match order {
        LockOrder::OthersFirst => others().chain(table).collect(),
        LockOrder::TableFirst => table.into_iter().chain(others()).collect(),
    };
    sql.extend(
        src.sequences
            .iter()
            .map(|q| format!("ALTER SEQUENCE {} OWNER TO {}", q.name, src.table.owner)),
    );
    let mut step = Step::new(sql.join("; "), format!("locking {}", source.human()))
        .locks("ACCESS EXCLUSIVE", source, true)
        .locks("ACCESS EXCLUSIVE", shadow, false);
    let alone = sql.len() == 1;
    for o in src
        .views
        .iter()
        .rev()
        .map(|v| &v.name)
        .chain(&neighbours)
        .chain(src.sequences.iter().map(|q| &q.name))
    {
        step = step.locks("ACCESS EXCLUSIVE", o, true);
    }
    step.note(if alone {
        "blocks every reader and writer of the table while it waits (at most --lock-timeout) and until COMMIT; typically held for milliseconds"
    } else {
        "blocks every reader and writer of the table while it waits (at most --lock-timeout in all) and until COMMIT; typically held for milliseconds. The views over the table, the tables linked to it by a foreign key and its sequences are locked in the same message (the swap changes them too); odd attempts lock the views and linked tables before the table, even attempts after it"
    })
}

/// The other tables whose foreign keys the swap moves, and so locks ACCESS EXCLUSIVE
/// (PostgreSQL's `DROP CONSTRAINT` of a foreign key locks both ends): those with a foreign key
/// to the source, and those the source's foreign keys reference. In catalog order, each once.
fn foreign_key_neighbours(plan: &Plan, src: &Source) -> Vec<QualifiedName> {
    let mut out: Vec<QualifiedName> = Vec::new();
    let incoming = src
        .incoming
        .iter()
        .filter(|fk| fk.table_oid != plan.source_oid)
        .map(|fk| &fk.table);
    let outgoing = src
        .constraints
        .iter()
        .filter(|c| c.kind == "f" && c.references != plan.source_oid)
        .filter_map(|c| c.referenced_table.as_ref());
    for t in incoming.chain(outgoing) {
        if !out.contains(t) && t != &plan.source && t != &plan.shadow {
            out.push(t.clone());
        }
    }
    out
}

/// Under the swap lock: the capture triggers are still the ones the run installed, untouched
/// ([`capture::trigger_problems`]); otherwise writes were not captured and swapping would lose
/// them.
async fn check_capture_untouched(tx: &Transaction<'_>, state: &State, plan: &Plan) -> Result<()> {
    let problems = capture::trigger_problems(tx, state, plan).await?;
    if problems.is_empty() {
        return Ok(());
    }
    Err(Error::failed(format!(
        "the capture triggers of {} were changed during the run: {}; writes made while they did \
         not fire were not captured, and swapping would lose them",
        plan.source.human(),
        problems.join("; ")
    ))
    .with_state(format!(
        "the swap was rolled back; {} is unchanged and usable",
        plan.source.human()
    ))
    .with_next(format!(
        "run `pg-hotswap abort --table {}` and start the rewrite again (and leave the hotswap_capture triggers alone while it runs)",
        crate::output::ui::shell_word(&plan.source.to_string())
    )))
}
