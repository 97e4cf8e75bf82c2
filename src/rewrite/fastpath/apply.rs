//! Executing the in-place statements (issue 16): each unit of an [`InPlace`] under the lock
//! rule (`db::locking::Retry`: `--lock-timeout` per attempt, jittered backoff, at most
//! `--max-lock-attempts`), `CREATE INDEX CONCURRENTLY` outside a transaction (an invalid index
//! left by a failed attempt is dropped before the next), and on a failure the removal of what a
//! half-done ALTER leaves (helper and unvalidated constraints, unattached indexes).
//!
//! Invariant kept: no statement waits for a lock longer than `--lock-timeout`, and a failure
//! names what was already applied.

use super::{InPlace, Unit};
use crate::db::locking::{self, LockPolicy};
use crate::error::{DbContext, Error, Result};
use crate::rewrite::step::{self, Step};
use tokio_postgres::Client;

/// What [`apply`] did.
#[derive(Clone, Debug, Default)]
pub struct Applied {
    /// Statements executed.
    pub statements: usize,
    /// Attempts over all units (more than the units: lock timeouts were retried).
    pub attempts: u32,
    /// The longest successful transaction that took ACCESS EXCLUSIVE on the table, from its
    /// first statement to its commit, ms (the lock is held for at most that long).
    pub longest_exclusive_ms: f64,
}

/// Executes the in-place statements on the live table, each unit under the lock rule. `stop`
/// is asked before every attempt: an error from it (the operator's abort) ends the work there.
/// On an error, removes what a half-done ALTER would leave behind (helper and unvalidated
/// constraints, unattached indexes) and says what was applied.
pub async fn apply(
    client: &mut Client,
    policy: &LockPolicy,
    p: &InPlace,
    stop: &(dyn Fn() -> Option<Error> + Sync),
) -> Result<Applied> {
    let mut done = Applied::default();
    for (u, unit) in p.units.iter().enumerate() {
        crate::failpoint::hit("in-place-unit");
        match run_unit(client, policy, unit, stop).await {
            Ok((attempts, ms)) => {
                done.attempts += attempts;
                let exclusive = unit
                    .steps()
                    .iter()
                    .any(|s| s.locks.iter().any(|l| l.mode == "ACCESS EXCLUSIVE"));
                if exclusive {
                    done.longest_exclusive_ms = done.longest_exclusive_ms.max(ms);
                }
                done.statements += unit.steps().len();
            }
            Err(e) => {
                let e = if e.kind() == crate::error::Kind::LockTimeout {
                    with_lock_holders(client, &p.table, e).await
                } else {
                    e
                };
                let (removed, left) = undo(client, policy, p, u).await;
                let applied: Vec<&str> = p.units[..u]
                    .iter()
                    .flat_map(|x| x.steps())
                    .map(|s| s.sql.as_str())
                    .collect();
                let state = if applied.is_empty() && !left {
                    format!("nothing was changed; {} is untouched", p.table.human())
                } else if applied.is_empty() {
                    format!("{} is usable{removed}", p.table.human())
                } else {
                    format!(
                        "{} is usable; already applied: {}{removed}",
                        p.table.human(),
                        applied.join("; "),
                    )
                };
                let next = if left {
                    "once the sessions holding the table have ended, drop what is listed by hand \
                     (DROP INDEX CONCURRENTLY, ALTER TABLE ... DROP CONSTRAINT), then run again"
                } else {
                    "fix the cause and run again"
                };
                return Err(e.or_state(state, next));
            }
        }
    }
    Ok(done)
}

/// A lock not granted in any attempt: the message names the sessions holding locks on the
/// table (`locking::lock_holders`), as the swap names its blockers; it named none (a fresh
/// tester, session 13).
async fn with_lock_holders(
    client: &Client,
    table: &crate::db::ident::QualifiedName,
    e: Error,
) -> Error {
    let oid: Option<u32> = match client
        .query_one(
            "SELECT pg_catalog.to_regclass($1)::oid",
            &[&table.to_string()],
        )
        .await
    {
        Ok(row) => row.try_get(0).ok().flatten(),
        Err(_) => None,
    };
    let holders = match oid {
        Some(oid) => locking::lock_holders(client, oid).await.unwrap_or_default(),
        None => String::new(),
    };
    e.map_message(|m| format!("{m}{holders}"))
}

/// Runs one unit, retried on lock timeouts (each retry said on stderr); returns the attempts it
/// took and how long the successful attempt took, ms. `stop` is asked before each attempt.
async fn run_unit(
    client: &mut Client,
    policy: &LockPolicy,
    unit: &Unit,
    stop: &(dyn Fn() -> Option<Error> + Sync),
) -> Result<(u32, f64)> {
    let retrying = |what: &str, attempt: u32| {
        crate::output::ui::say(&format!(
            "{what}: the lock was not granted within {} (attempt {attempt} of {}); trying again",
            crate::db::ident::pg_millis(policy.timeout),
            policy.attempts
        ))
    };
    match unit {
        Unit::Transaction { what, steps } => {
            let mut tries = locking::Retry::new(policy, what);
            loop {
                if let Some(e) = stop() {
                    return Err(e);
                }
                let attempt = tries.start();
                let started = std::time::Instant::now();
                let result = async {
                    let tx = client.transaction().await.ctx(what)?;
                    locking::set_local_timeout(&tx, policy.timeout).await?;
                    for s in steps {
                        step::exec(&tx, s).await?;
                    }
                    tx.commit().await.ctx(what)
                }
                .await;
                let ms = started.elapsed().as_secs_f64() * 1000.0;
                if tries.settle(result).await?.is_some() {
                    return Ok((attempt, ms));
                }
                retrying(what, attempt);
            }
        }
        Unit::Concurrently {
            what, step, undo, ..
        } => {
            let mut tries = locking::Retry::new(policy, what);
            loop {
                if let Some(e) = stop() {
                    return Err(e);
                }
                let attempt = tries.start();
                let started = std::time::Instant::now();
                let result = match step::exec(&*client, step).await {
                    Ok(()) => Ok(()),
                    // A failed CREATE INDEX CONCURRENTLY leaves an invalid index behind, which
                    // must go before another attempt can build it.
                    Err(e) => match drop_index(client, policy, undo).await {
                        Ok(()) => Err(e),
                        // Still there: another attempt would only find it in its way
                        // ([`undo`] tries once more).
                        Err(_) if e.is_lock_not_granted() => {
                            return Err(e.with_kind(crate::error::Kind::LockTimeout))
                        }
                        Err(_) => return Err(e),
                    },
                };
                if tries.settle(result).await?.is_some() {
                    return Ok((attempt, started.elapsed().as_secs_f64() * 1000.0));
                }
                retrying(what, attempt);
            }
        }
    }
}

/// `DROP INDEX CONCURRENTLY IF EXISTS` under the lock rule. It waits for the same transactions
/// a failed build waited for, so one lock timeout is not the end of it: run once, the drop
/// after a build that timed out timed out too, the next attempt found the invalid index in its
/// way ("relation ... already exists"), and the run ended saying nothing was changed with the
/// index left behind (a fresh tester, session 14).
pub(super) async fn drop_index(client: &Client, policy: &LockPolicy, s: &Step) -> Result<()> {
    locking::retry(policy, &s.what, |_| step::exec(client, s)).await
}

/// Removes what unit `u` failing leaves behind; returns a note for the error's state, and
/// whether something could not be removed.
async fn undo(client: &mut Client, policy: &LockPolicy, p: &InPlace, u: usize) -> (String, bool) {
    let table = &p.table;
    let mut removed = Vec::new();
    let mut failed = Vec::new();
    if let Some(Unit::Concurrently { undo, index, .. }) = p.units.get(u) {
        // The unit's own index, should its build have stopped half-way.
        if drop_index(client, policy, undo).await.is_err() {
            failed.push(format!("index {}", index.as_str()));
        }
    }
    let cons = p.pending_constraints.get(u).cloned().unwrap_or_default();
    if !cons.is_empty() {
        let parts: Vec<String> = cons
            .iter()
            .map(|c| format!("DROP CONSTRAINT IF EXISTS {c}"))
            .collect();
        let s = Step::new(
            format!("ALTER TABLE {table} {}", parts.join(", ")),
            format!(
                "removing the unvalidated constraints from {}",
                table.human()
            ),
        );
        let unit = Unit::Transaction {
            what: s.what.clone(),
            steps: vec![s],
        };
        match run_unit(client, policy, &unit, &|| None).await {
            Ok(_) => removed.extend(cons.iter().map(|c| format!("constraint {}", c.as_str()))),
            Err(_) => failed.extend(cons.iter().map(|c| format!("constraint {}", c.as_str()))),
        }
    }
    for ix in p.pending_indexes.get(u).cloned().unwrap_or_default() {
        let s = Step::new(
            format!(
                "DROP INDEX CONCURRENTLY IF EXISTS {}",
                table.sibling(ix.as_str())
            ),
            format!("removing index {}", ix.as_str()),
        );
        match drop_index(client, policy, &s).await {
            Ok(()) => removed.push(format!("index {}", ix.as_str())),
            Err(_) => failed.push(format!("index {}", ix.as_str())),
        }
    }
    let mut note = String::new();
    if !removed.is_empty() {
        note.push_str(&format!("; removed again: {}", removed.join(", ")));
    }
    if !failed.is_empty() {
        note.push_str(&format!(
            "; could not remove (drop them by hand): {}",
            failed.join(", ")
        ));
    }
    (note, !failed.is_empty())
}
