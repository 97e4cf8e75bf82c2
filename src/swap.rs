//! The swap: in one transaction under a short `lock_timeout`, lock the source and the shadow,
//! replay what is left, and put the shadow in the source's place with everything attached to it.
//!
//! On a lock timeout the transaction rolls back (the source is untouched), replay catches up,
//! and the swap is tried again after a jittered backoff, up to `--max-lock-attempts`; then the
//! run stops cleanly. Invariants kept here (DESIGN.md): the final replay runs under the lock,
//! when no writer can add more; the source's definition is fingerprinted again under the lock,
//! so a concurrent ALTER by someone else stops the run; sequences continue where they were;
//! incoming foreign keys are re-pointed NOT VALID and validated after commit.

use crate::build;
use crate::capture;
use crate::catalog;
use crate::error::{DbContext, Error, Kind, Result, RowExt};
use crate::ident::{literal, pg_millis, Ident, QualifiedName};
use crate::locking::{self, LockPolicy};
use crate::plan::Plan;
use crate::preflight::Source;
use crate::replay;
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
struct Names {
    old: QualifiedName,
    /// (current name of a source index, its name on the old table).
    old_indexes: Vec<(Ident, String)>,
    /// (identity sequence of the source, its name once it belongs to the old table).
    old_sequences: Vec<(QualifiedName, String)>,
    /// (extended statistics of the source, its name once it belongs to the old table).
    old_statistics: Vec<(QualifiedName, String)>,
}

/// The first of `<base>_old`, `<base>_old2`... that no statistics object in the schema uses.
async fn free_statistics_name(client: &Client, name: &QualifiedName) -> Result<String> {
    for n in 0..1000 {
        let suffix = if n == 0 {
            "_old".to_string()
        } else {
            format!("_old{}", n + 1)
        };
        let candidate = crate::ident::fit_name(name.name.as_str(), &suffix);
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

async fn decide_names(
    client: &Client,
    plan: &Plan,
    src: &Source,
    old_name: Option<&str>,
) -> Result<Names> {
    let schema = &plan.source.schema;
    let old = match old_name {
        Some(n) => n.to_string(),
        None => catalog::free_name(client, schema, plan.source.name.as_str(), "_old", &[]).await?,
    };
    let mut taken = vec![old.clone()];
    // Final names of the new indexes are taken once the old ones move out of the way.
    for ix in &plan.indexes {
        taken.push(ix.final_name.as_str().to_string());
    }
    let mut old_indexes = Vec::new();
    for ix in &src.indexes {
        let n = catalog::free_name(client, schema, ix.name.as_str(), "_old", &taken).await?;
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
    Ok(Names {
        old: plan.source.sibling(old),
        old_indexes,
        old_sequences,
        old_statistics,
    })
}

pub struct SwapRequest<'a> {
    pub policy: &'a LockPolicy,
    /// Paces the replay between attempts (pause, throttles).
    pub gov: &'a crate::governor::Governor,
    pub replay_limit: i64,
    pub old_name: Option<&'a str>,
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
    let names = decide_names(ctl, plan, src, req.old_name).await?;
    replay::prepare_session(client, plan).await?;
    let mut longest = Duration::ZERO;
    let mut tries = locking::Retry::new(req.policy, "swap");
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
        let started = Instant::now();
        let tx = client
            .transaction()
            .await
            .ctx("starting the swap transaction")?;
        let outcome = match attempt_swap(&tx, state, plan, src, &names, req).await {
            Err(e) if e.is_lock_timeout() => Ok(Attempt::LockNotGranted(e)),
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
                        plan.source
                    ),
                ));
            }
            // Too many changes to replay under the lock: catch up again, then retry at once.
            Ok(Attempt::BacklogTooBig { pending, most }) => {
                longest = longest.max(waited(started, req.policy));
                drop(tx); // rolls back: the source is untouched
                let why = format!(
                    "{pending} changes arrived between the catch-up and the lock (more than {most}); replaying them under the lock would hold it too long"
                );
                state
                    .event(
                        ctl,
                        plan.run_id,
                        Phase::Swap,
                        "swap_backlog",
                        &format!("swap attempt {attempt}: {why}"),
                        None,
                    )
                    .await?;
                crate::ui::say(&format!(
                    "swap attempt {attempt}/{}: {why}; rolled back to catch up first",
                    req.policy.attempts,
                ));
                if !tries.may_retry() {
                    return Err(Error::new(
                        Kind::LockTimeout,
                        format!(
                            "could not swap {}: at each of {attempt} attempts the writes left more changes than can be replayed under the lock",
                            plan.source.human()
                        ),
                    ));
                }
                continue;
            }
            Ok(Attempt::LockNotGranted(e)) => {
                longest = longest.max(waited(started, req.policy));
                drop(tx); // rolls back: the source is untouched
                let holders = locking::lock_holders(ctl, plan.source_oid)
                    .await
                    .unwrap_or_default();
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
                        None,
                    )
                    .await?;
                tracing::warn!(
                    attempt,
                    "swap: lock not available within lock_timeout{holders}"
                );
                crate::ui::say(&format!(
                    "swap attempt {attempt}/{} could not get the lock within {}{holders}",
                    req.policy.attempts,
                    pg_millis(req.policy.timeout)
                ));
                if !tries.may_retry() {
                    return Err(Error::new(
                        Kind::LockTimeout,
                        format!(
                            "could not swap {}: the ACCESS EXCLUSIVE lock was not granted within {} in {attempt} attempts{holders}",
                            plan.source.human(),
                            pg_millis(req.policy.timeout)
                        ),
                    ));
                }
                tries.back_off().await;
                continue;
            }
        };
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
}

/// A successful attempt, not yet committed.
struct Swapped {
    locked_at: Instant,
    replayed: u64,
    to_validate: Vec<(QualifiedName, Ident)>,
}

/// The statements that give the shadow back the source's storage options after
/// `autovacuum_enabled` was turned off on it while it was loaded: reset that, then set the
/// source's options again in their order (a SET moves the options it names to the end, and
/// `pg_dump` shows them in stored order).
fn autovacuum_restore(
    shadow: &QualifiedName,
    reloptions: &[String],
    toast: &[String],
) -> Result<String> {
    let mut sql = vec![format!(
        "ALTER TABLE {shadow} RESET (autovacuum_enabled, toast.autovacuum_enabled)"
    )];
    let mut set = Vec::new();
    for o in reloptions {
        set.push(crate::shadow::reloption_sql(o, "")?);
    }
    for o in toast {
        set.push(crate::shadow::reloption_sql(o, "toast.")?);
    }
    if !set.is_empty() {
        sql.push(format!("ALTER TABLE {shadow} SET ({})", set.join(", ")));
    }
    Ok(sql.join("; "))
}

async fn exec(tx: &Transaction<'_>, sql: &str, what: &str) -> Result<()> {
    tx.batch_execute(sql).await.ctx(what)
}

async fn attempt_swap(
    tx: &Transaction<'_>,
    state: &State,
    plan: &Plan,
    src: &Source,
    names: &Names,
    req: &SwapRequest<'_>,
) -> Result<Attempt> {
    let source = &plan.source;
    let shadow = &plan.shadow;
    let revertible = plan.reverse.is_some();
    locking::set_local_timeout(tx, req.policy.timeout).await?;
    exec(
        tx,
        &format!("LOCK TABLE {source}, {shadow} IN ACCESS EXCLUSIVE MODE"),
        &format!("locking {}", source.human()),
    )
    .await?;
    let locked_at = Instant::now();
    crate::failpoint::hit("swap-locked");

    let now = catalog::fingerprint(tx, plan.source_oid).await?;
    if now != plan.fingerprint {
        return Err(Error::failed(format!(
            "the definition of {} changed while pg-hotswap was rewriting it (someone ran ALTER TABLE, CREATE INDEX or similar); \
             swapping would lose that change",
            source.human()
        ))
        .with_state(format!("the swap was rolled back; {} is unchanged and usable", source.human()))
        .with_next(format!("run `pg-hotswap abort --table {source}` and start the rewrite again")));
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

    exec(
        tx,
        &autovacuum_restore(shadow, &src.table.reloptions, &src.table.toast_options)?,
        "giving the new table the autovacuum settings of the old one",
    )
    .await?;

    let schema = &source.schema;
    for s in capture::drop_trigger_statements(
        &plan.capture.trigger,
        &plan.capture.truncate_trigger,
        source,
    ) {
        exec(tx, &s, "removing the capture trigger").await?;
    }

    // Identity sequences: the new table's sequence continues from the old one's position and
    // takes its name.
    for s in src.sequences.iter().filter(|s| s.deptype == "i") {
        let new_seq: Option<String> = tx
            .query_one(
                "SELECT pg_catalog.pg_get_serial_sequence($1, $2)",
                &[&shadow.to_string(), &s.column.as_str()],
            )
            .await
            .ctx("looking up the new identity sequence")?
            .col(0, &"looking up the new identity sequence")?;
        let Some(new_seq) = new_seq else { continue };
        exec(
            tx,
            &format!(
                "SELECT pg_catalog.setval({}::regclass, last_value, is_called) FROM {}",
                literal(&new_seq),
                s.name
            ),
            "carrying the identity sequence position over",
        )
        .await?;
        let old_name = &names
            .old_sequences
            .iter()
            .find(|(q, _)| q == &s.name)
            .expect("named")
            .1;
        exec(
            tx,
            &format!(
                "ALTER SEQUENCE {} RENAME TO {}",
                s.name,
                Ident::new(old_name.clone())
            ),
            "renaming the old identity sequence",
        )
        .await?;
        exec(
            tx,
            &format!("ALTER SEQUENCE {new_seq} RENAME TO {}", s.name.name),
            "renaming the new identity sequence",
        )
        .await?;
        // Its privileges and comment follow.
        for g in catalog::grants(tx, s.oid).await? {
            exec(
                tx,
                &format!(
                    "GRANT {} ON SEQUENCE {} TO {}{}",
                    g.privilege,
                    s.name,
                    g.grantee,
                    if g.grantable {
                        " WITH GRANT OPTION"
                    } else {
                        ""
                    }
                ),
                "carrying an identity sequence's privileges over",
            )
            .await?;
        }
        if let Some(c) = catalog::relation_comment(tx, s.oid).await? {
            exec(
                tx,
                &format!("COMMENT ON SEQUENCE {} IS {}", s.name, literal(&c)),
                "carrying an identity sequence's comment over",
            )
            .await?;
        }
    }
    // Serial sequences: hand them to the new table's column, so dropping the old table later
    // does not drop the sequence the new table's default uses.
    for s in src.sequences.iter().filter(|s| s.deptype == "a") {
        if let Some(col) = plan.shadow_column_of(&s.column) {
            exec(
                tx,
                &format!("ALTER SEQUENCE {} OWNED BY {}.{}", s.name, shadow, col),
                "handing the serial sequence to the new table",
            )
            .await?;
        }
    }

    // Outgoing foreign keys leave the old table: it must not block deletes in the tables it
    // references (nor cascade into them) while it is kept.
    for c in src
        .constraints
        .iter()
        .filter(|c| c.kind == "f" && c.references != plan.source_oid)
    {
        exec(
            tx,
            &format!("ALTER TABLE {source} DROP CONSTRAINT {}", c.name),
            "removing a foreign key from the old table",
        )
        .await?;
    }
    // Incoming foreign keys: dropped now, re-added after the rename (their text names the table).
    for fk in &src.incoming {
        exec(
            tx,
            &format!("ALTER TABLE {} DROP CONSTRAINT {}", fk.table, fk.name),
            "detaching a foreign key that references the table",
        )
        .await?;
    }

    exec(
        tx,
        &format!("ALTER TABLE {source} RENAME TO {}", names.old.name),
        "renaming the source table",
    )
    .await?;
    exec(
        tx,
        &format!("ALTER TABLE {shadow} RENAME TO {}", source.name),
        "renaming the shadow table",
    )
    .await?;
    for (cur, old) in &names.old_indexes {
        exec(
            tx,
            &format!(
                "ALTER INDEX {}.{cur} RENAME TO {}",
                schema,
                Ident::new(old.clone())
            ),
            "renaming an index of the old table",
        )
        .await?;
    }
    for ix in &plan.indexes {
        exec(
            tx,
            &format!(
                "ALTER INDEX {}.{} RENAME TO {}",
                schema, ix.tmp_name, ix.final_name
            ),
            "giving an index its original name",
        )
        .await?;
    }

    let mut to_validate = Vec::new();
    // Outgoing foreign keys join the new table only now, NOT VALID, validated after the commit
    // (issue 13): on the shadow, while the application wrote the tables they reference, their
    // checks saw child rows replay had not yet removed, and the application's own DELETE of a
    // parent failed. A run started by an older version may have them on the shadow already.
    let on_shadow: Vec<String> = tx
        .query(
            "SELECT conname::text FROM pg_catalog.pg_constraint WHERE conrelid = $1 AND contype = 'f'",
            &[&plan.shadow_oid],
        )
        .await
        .ctx("reading the foreign keys of the new table")?
        .iter()
        .map(|r| r.col(0, &"reading the foreign keys of the new table"))
        .collect::<Result<_>>()?;
    for fk in &plan.foreign_keys {
        if !on_shadow.iter().any(|n| n == fk.name.as_str()) {
            exec(
                tx,
                &format!(
                    "ALTER TABLE {source} ADD CONSTRAINT {} {} NOT VALID",
                    fk.name, fk.def
                ),
                "adding a foreign key to the new table",
            )
            .await?;
        }
        if fk.validate {
            to_validate.push((source.clone(), fk.name.clone()));
        }
    }
    for fk in &plan.self_foreign_keys {
        exec(
            tx,
            &format!(
                "ALTER TABLE {source} ADD CONSTRAINT {} {} NOT VALID",
                fk.name, fk.def
            ),
            "re-adding a self-referencing foreign key",
        )
        .await?;
        if fk.validate {
            to_validate.push((source.clone(), fk.name.clone()));
        }
    }
    for fk in &src.incoming {
        let def = fk.def.strip_suffix(" NOT VALID").unwrap_or(&fk.def);
        exec(
            tx,
            &format!(
                "ALTER TABLE {} ADD CONSTRAINT {} {def} NOT VALID",
                fk.table, fk.name
            ),
            "re-pointing a foreign key at the new table",
        )
        .await?;
        if fk.validated {
            to_validate.push((fk.table.clone(), fk.name.clone()));
        }
    }
    recreate_views(tx, src).await?;
    for stmt in build::security_statements(src, source) {
        exec(tx, &stmt, "carrying row level security over").await?;
    }
    if revertible {
        // Replay into the old table must not fire its triggers or be filtered by its policies;
        // a revert creates them again from the new table's.
        for t in src.user_triggers() {
            exec(
                tx,
                &format!("DROP TRIGGER {} ON {}", t.name, names.old),
                "removing a trigger from the old table",
            )
            .await?;
        }
        for p in &src.policies {
            exec(
                tx,
                &format!("DROP POLICY {} ON {}", p.name, names.old),
                "removing a policy from the old table",
            )
            .await?;
        }
    }
    for t in src.user_triggers() {
        exec(
            tx,
            &t.def,
            &format!("re-creating trigger {}", t.name.as_str()),
        )
        .await?;
        let mode = match t.enabled.as_str() {
            "D" => Some("DISABLE TRIGGER"),
            "R" => Some("ENABLE REPLICA TRIGGER"),
            "A" => Some("ENABLE ALWAYS TRIGGER"),
            _ => None,
        };
        if let Some(c) = &t.comment {
            exec(
                tx,
                &format!(
                    "COMMENT ON TRIGGER {} ON {source} IS {}",
                    t.name,
                    literal(c)
                ),
                "carrying a trigger comment over",
            )
            .await?;
        }
        if let Some(m) = mode {
            exec(
                tx,
                &format!("ALTER TABLE {source} {m} {}", t.name),
                "restoring a trigger's enabled state",
            )
            .await?;
        }
    }
    for p in &src.publications {
        let what = "moving publication membership";
        exec(
            tx,
            &format!("ALTER PUBLICATION {} DROP TABLE {}", p.name, names.old),
            what,
        )
        .await?;
        exec(
            tx,
            &format!(
                "ALTER PUBLICATION {} ADD TABLE ONLY {source}{}{}",
                p.name, p.columns, p.filter
            ),
            what,
        )
        .await?;
    }
    for (name, def) in &src.rules {
        if revertible {
            // The old table is kept in sync by replay, which must not fire its rules.
            exec(
                tx,
                &format!("DROP RULE {name} ON {}", names.old),
                "removing a rule from the old table",
            )
            .await?;
        }
        exec(tx, def, "re-creating a rule on the table").await?;
    }
    // Extended statistics: the old table's move out of the way, the new table's take the names.
    for (st, (_, old_name)) in src.statistics.iter().zip(&names.old_statistics) {
        let what = format!("re-creating statistics {}", st.name.human());
        let move_away = if revertible {
            // A revert creates them again from the new table's definitions.
            format!("DROP STATISTICS {}", st.name)
        } else {
            format!(
                "ALTER STATISTICS {} RENAME TO {}",
                st.name,
                Ident::new(old_name.clone())
            )
        };
        exec(tx, &move_away, &what).await?;
        exec(tx, &st.def, &what).await?;
        if st.target >= 0 {
            exec(
                tx,
                &format!("ALTER STATISTICS {} SET STATISTICS {}", st.name, st.target),
                &what,
            )
            .await?;
        }
        exec(
            tx,
            &format!("ALTER STATISTICS {} OWNER TO {}", st.name, st.owner),
            &what,
        )
        .await?;
        if let Some(c) = &st.comment {
            exec(
                tx,
                &format!("COMMENT ON STATISTICS {} IS {}", st.name, literal(c)),
                &what,
            )
            .await?;
        }
    }
    // Constraint comments (constraints keep their names on the new table).
    let new_constraints: Vec<String> = tx
        .query(
            "SELECT conname::text FROM pg_catalog.pg_constraint WHERE conrelid = $1",
            &[&plan.shadow_oid],
        )
        .await
        .ctx("reading the new table's constraints")?
        .iter()
        .map(|r| r.col(0, &"reading the new table's constraints"))
        .collect::<Result<_>>()?;
    let comments = src
        .indexes
        .iter()
        .filter_map(|i| Some((i.constraint_name.as_ref()?, i.constraint_comment.as_ref()?)))
        .chain(
            src.constraints
                .iter()
                .filter_map(|c| Some((&c.name, c.comment.as_ref()?))),
        );
    for (name, comment) in comments {
        if new_constraints.iter().any(|n| n == name.as_str()) {
            exec(
                tx,
                &format!(
                    "COMMENT ON CONSTRAINT {name} ON {source} IS {}",
                    literal(comment)
                ),
                "carrying a constraint comment over",
            )
            .await?;
        }
    }
    for fk in src.incoming.iter().filter(|f| f.comment.is_some()) {
        exec(
            tx,
            &format!(
                "COMMENT ON CONSTRAINT {} ON {} IS {}",
                fk.name,
                fk.table,
                literal(fk.comment.as_deref().unwrap_or_default())
            ),
            "carrying a foreign key comment over",
        )
        .await?;
    }
    for stmt in build::grant_statements(plan, src, source) {
        exec(tx, &stmt, "carrying privileges over").await?;
    }
    if let Some(rev) = &plan.reverse {
        // The way back: every write to the new table from now on is recorded for `revert`.
        let objects = state.table("objects");
        for t in capture::trigger_names(&rev.plan.capture) {
            tx.execute(
                &format!(
                    "INSERT INTO {objects} (run_id, kind, schema_name, name, on_table) VALUES ($1, 'rtrigger', $2, $3, $4) ON CONFLICT DO NOTHING"
                ),
                &[&plan.run_id, &source.schema.as_str(), &t.as_str(), &plan.shadow_oid],
            )
            .await
            .ctx("recording the reverse capture")?;
        }
        for stmt in capture::trigger_statements(&rev.plan, source) {
            exec(tx, &stmt, "installing the reverse capture on the new table").await?;
        }
    }
    let swap_names = serde_json::json!({
        "old": names.old.name.as_str(),
        "old_indexes": names.old_indexes.iter().map(|(orig, now)| [orig.as_str(), now.as_str()]).collect::<Vec<_>>(),
    });
    tx.execute(
        &format!(
            "UPDATE {} SET swap = $2, reverse = CASE WHEN $3 THEN 'active' END WHERE id = $1",
            state.table("runs")
        ),
        &[&plan.run_id, &swap_names, &revertible],
    )
    .await
    .ctx("recording the swap")?;
    state
        .set_old_name(tx, plan.run_id, names.old.name.as_str())
        .await?;
    tx.execute(
        &format!(
            "UPDATE {} SET phase = 'finish', updated_at = now() WHERE id = $1",
            state.table("runs")
        ),
        &[&plan.run_id],
    )
    .await
    .ctx("recording the swap")?;
    Ok(Attempt::Swapped(Swapped {
        locked_at,
        replayed,
        to_validate,
    }))
}

fn view_sql(v: &catalog::View, replace: bool) -> String {
    let opts: Vec<String> = v
        .reloptions
        .iter()
        .filter_map(|o| o.split_once('='))
        .map(|(k, val)| format!("{k} = {}", literal(val)))
        .collect();
    let with = if opts.is_empty() {
        String::new()
    } else {
        format!(" WITH ({})", opts.join(", "))
    };
    let def = v.def.trim().trim_end_matches(';');
    if v.relkind == "m" {
        let ts = v
            .tablespace
            .as_ref()
            .map(|t| format!(" TABLESPACE {t}"))
            .unwrap_or_default();
        let data = if v.populated {
            "WITH DATA"
        } else {
            "WITH NO DATA"
        };
        return format!(
            "CREATE MATERIALIZED VIEW {}{with}{ts} AS {def} {data}",
            v.name
        );
    }
    let verb = if replace {
        "CREATE OR REPLACE VIEW"
    } else {
        "CREATE VIEW"
    };
    format!("{verb} {}{with} AS {def}", v.name)
}

/// Points the dependent views at the new table (run after the renames, so the name in their
/// definition means the new table). `CREATE OR REPLACE VIEW` keeps everything attached to a view
/// (grants, defaults, triggers, rules, views over it); when a column type changed and replacing
/// is not allowed, the views are dropped and created again with all of that restored.
async fn recreate_views(tx: &Transaction<'_>, src: &Source) -> Result<()> {
    if src.views.is_empty() {
        return Ok(());
    }
    exec(
        tx,
        "SAVEPOINT hotswap_views",
        "starting the view replacement",
    )
    .await?;
    // Materialized views cannot be replaced in place: with one among them, everything is
    // dropped and created again (the materialized view with its data, built here).
    let has_matview = src.views.iter().any(|v| v.relkind == "m");
    let mut replaced = if has_matview {
        Err(Error::failed("a materialized view depends on the table"))
    } else {
        Ok(())
    };
    for v in src.views.iter().filter(|_| !has_matview) {
        replaced = exec(
            tx,
            &view_sql(v, true),
            &format!("replacing view {}", v.name.human()),
        )
        .await;
        if replaced.is_err() {
            break;
        }
    }
    match replaced {
        Ok(()) => return exec(tx, "RELEASE SAVEPOINT hotswap_views", "replacing views").await,
        Err(e) if e.is_lock_timeout() => return Err(e),
        Err(e) => {
            tracing::debug!(error = %e, "views cannot be replaced in place; dropping and re-creating them");
            exec(tx, "ROLLBACK TO SAVEPOINT hotswap_views", "replacing views").await?;
        }
    }
    for v in src.views.iter().rev() {
        exec(
            tx,
            &format!(
                "DROP {}VIEW {}",
                if v.relkind == "m" {
                    "MATERIALIZED "
                } else {
                    ""
                },
                v.name
            ),
            &format!("dropping dependent view {}", v.name.human()),
        )
        .await?;
    }
    for v in &src.views {
        let what = format!("re-creating view {}", v.name.human());
        exec(tx, &view_sql(v, false), &what).await?;
        // A materialized view's indexes (their names are free again: the old one is dropped).
        for ix in &v.indexes {
            exec(tx, &ix.def, &what).await?;
            if let Some(c) = &ix.comment {
                exec(
                    tx,
                    &format!(
                        "COMMENT ON INDEX {} IS {}",
                        v.name.sibling(ix.name.as_str()),
                        literal(c)
                    ),
                    &what,
                )
                .await?;
            }
        }
        exec(
            tx,
            &format!(
                "ALTER {}VIEW {} OWNER TO {}",
                if v.relkind == "m" {
                    "MATERIALIZED "
                } else {
                    ""
                },
                v.name,
                v.owner
            ),
            &what,
        )
        .await?;
        for g in &v.grants {
            exec(tx, &g.sql(&v.name), &what).await?;
        }
        if let Some(c) = &v.comment {
            exec(
                tx,
                &format!(
                    "COMMENT ON {}VIEW {} IS {}",
                    if v.relkind == "m" {
                        "MATERIALIZED "
                    } else {
                        ""
                    },
                    v.name,
                    literal(c)
                ),
                &what,
            )
            .await?;
        }
        for (col, c) in &v.column_comments {
            exec(
                tx,
                &format!("COMMENT ON COLUMN {}.{col} IS {}", v.name, literal(c)),
                &what,
            )
            .await?;
        }
        for (col, d) in &v.column_defaults {
            exec(
                tx,
                &format!("ALTER VIEW {} ALTER COLUMN {col} SET DEFAULT {d}", v.name),
                &what,
            )
            .await?;
        }
        for r in &v.rules {
            exec(tx, r, &what).await?;
        }
        for t in &v.triggers {
            exec(tx, &t.def, &what).await?;
            if t.enabled == "D" {
                exec(
                    tx,
                    &format!("ALTER TABLE {} DISABLE TRIGGER {}", v.name, t.name),
                    &what,
                )
                .await?;
            }
        }
    }
    Ok(())
}

/// After the swap: validates re-pointed foreign keys without blocking writes (SHARE UPDATE
/// EXCLUSIVE), each under the lock discipline. A failure is a warning: the constraint stays
/// NOT VALID and still checks every new write.
/// Under the swap lock: the capture triggers are still the ones the run installed, untouched —
/// every one exists, fires ALWAYS, and its `pg_trigger` row was last written by the transaction
/// that installed it (the one that recorded it in `objects` as kind `trigger`; the reverse
/// capture of a revert, recorded otherwise, is checked for presence and mode only; so is a row
/// that vacuum has frozen, whose xmin then reads as 2, after some 50 million transactions).
/// `ALTER TABLE ... DISABLE TRIGGER`
/// then `ENABLE [ALWAYS] TRIGGER` leaves the trigger looking as before but writes its row again;
/// the writes made in between (or under `session_replication_role = replica` while it fired
/// only on origin) were never logged, and swapping would lose them (found by a fresh tester).
async fn check_capture_untouched(tx: &Transaction<'_>, state: &State, plan: &Plan) -> Result<()> {
    let names: Vec<String> = capture::trigger_names(&plan.capture)
        .iter()
        .map(|n| n.as_str().to_string())
        .collect();
    let what = "checking the capture triggers under the swap lock";
    let rows = tx
        .query(
            &format!(
                "SELECT n.name, t.tgenabled::text, \
                        o.xmin IS NULL OR t.xmin::text = o.xmin::text OR '2' IN (t.xmin::text, o.xmin::text) \
                   FROM unnest($3::text[]) AS n(name) \
                   LEFT JOIN pg_catalog.pg_trigger t ON t.tgrelid = $2 AND t.tgname = n.name \
                   LEFT JOIN {} o ON o.run_id = $1 AND o.kind = 'trigger' AND o.name = n.name",
                state.table("objects")
            ),
            &[&plan.run_id, &plan.source_oid, &names],
        )
        .await
        .ctx(what)?;
    let mut problems = Vec::new();
    for r in &rows {
        let name: String = r.col(0, &what)?;
        let enabled: Option<String> = r.col(1, &what)?;
        let same: Option<bool> = r.col(2, &what)?;
        match (enabled.as_deref(), same) {
            (None, _) => problems.push(format!("{name} is gone")),
            (Some(e), _) if e != "A" => problems.push(format!(
                "{name} fires {} instead of always",
                match e {
                    "D" => "never (disabled)",
                    "O" => "only on origin",
                    "R" => "only on replica",
                    _ => "otherwise",
                }
            )),
            (Some(_), Some(true)) => {}
            (Some(_), _) => problems.push(format!(
                "{name} was altered after it was installed (disabled and enabled again?)"
            )),
        }
    }
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
        plan.source
    )))
}

pub async fn validate_foreign_keys(
    client: &Client,
    to_validate: &[(QualifiedName, Ident)],
    policy: &LockPolicy,
) -> Vec<String> {
    let mut warnings = Vec::new();
    for (table, name) in to_validate {
        let r = locking::run_ddl(
            client,
            policy,
            &format!(
                "validating foreign key {} on {}",
                name.as_str(),
                table.human()
            ),
            None,
            &[format!("ALTER TABLE {table} VALIDATE CONSTRAINT {name}")],
        )
        .await;
        if let Err(e) = r {
            warnings.push(format!(
                "{e}; the constraint stays NOT VALID (it still checks new writes); validate it later with ALTER TABLE {table} VALIDATE CONSTRAINT {name}"
            ));
        }
    }
    warnings
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn autovacuum_comes_back_as_the_source_had_it() {
        let t = QualifiedName::new("app", "t_new");
        assert_eq!(
            autovacuum_restore(&t, &[], &[]).unwrap(),
            r#"ALTER TABLE "app"."t_new" RESET (autovacuum_enabled, toast.autovacuum_enabled)"#
        );
        assert_eq!(
            autovacuum_restore(
                &t,
                &["fillfactor=70".into(), "autovacuum_enabled=off".into()],
                &["autovacuum_enabled=false".into()]
            )
            .unwrap(),
            r#"ALTER TABLE "app"."t_new" RESET (autovacuum_enabled, toast.autovacuum_enabled); ALTER TABLE "app"."t_new" SET (fillfactor = '70', autovacuum_enabled = 'off', toast.autovacuum_enabled = 'false')"#
        );
    }
}
