//! A swap attempt that did not get its lock (issue 20, "Blockers"): who blocked it, named on
//! every attempt (printed, and recorded as a `lock_timeout` event with the list as JSON), what
//! to do about an anti-wraparound autovacuum, and `--terminate-blockers-after`.
//!
//! The blockers are those of the swap's own backend, sampled with `pg_blocking_pids()` from the
//! control session *while the attempt waits* ([`watch`]): the sessions that made it wait, not
//! whoever holds a lock on the table once it gave up (see `db/blockers.rs`). Only a wait too
//! short to be sampled falls back to the sessions whose transaction on the table was already
//! open when the attempt started.
//!
//! Invariant kept: a termination happens only after a failed attempt, only for a session seen
//! blocking it that `db::blockers::spared` does not protect (the tool's own sessions,
//! non-client backends, autovacuum, transactions younger than the threshold); each is logged
//! as a warning and a `blocker_terminated` event; a refusal for lack of privilege is reported
//! (`blocker_not_terminated`) and the run goes on with its attempts.

use crate::db::blockers::{self, Blocker, Terminated};
use crate::error::Result;
use crate::output::ui::say;
use crate::rewrite::plan::Plan;
use crate::state::{Phase, State};
use futures_util::future::{select, Either};
use std::future::Future;
use std::time::Duration;
use tokio_postgres::types::Oid;
use tokio_postgres::Client;

/// Runs `attempt` and, while it runs, samples the sessions that block backend `waiter` (the
/// swap's session) every quarter of `timeout` from the half on. Returns the attempt's result and
/// the last non-empty sample. Both run concurrently: sampling never delays the attempt (which
/// may hold the ACCESS EXCLUSIVE lock by then).
pub async fn watch<T>(
    ctl: &Client,
    waiter: i32,
    relations: &[Oid],
    timeout: Duration,
    attempt: impl Future<Output = T>,
) -> (T, Vec<Blocker>) {
    let mut seen = Vec::new();
    let first = (timeout / 2).max(Duration::from_millis(5));
    let every = (timeout / 4).clamp(Duration::from_millis(5), Duration::from_millis(250));
    let result = {
        let sampler = async {
            tokio::time::sleep(first).await;
            loop {
                if let Ok(b) = blockers::blocking(ctl, waiter, relations).await {
                    if !b.is_empty() {
                        seen = b;
                    }
                }
                tokio::time::sleep(every).await;
            }
        };
        let attempt = std::pin::pin!(attempt);
        let sampler = std::pin::pin!(sampler);
        match select(attempt, sampler).await {
            Either::Left((r, _)) => r,
            Either::Right(((), attempt)) => attempt.await,
        }
    };
    (result, seen)
}

/// What one failed attempt needs to say and do.
pub struct Failed<'a> {
    pub ctl: &'a Client,
    pub state: &'a State,
    pub plan: &'a Plan,
    pub attempt: u32,
    /// The swap's backend (left out of the fallback).
    pub waiter: i32,
    /// How long the attempt waited, for the fallback.
    pub waited: Duration,
    /// `--terminate-blockers-after`.
    pub terminate_after: Option<Duration>,
}

/// The blockers of a failed attempt: the sampled ones, or the fallback when there is none.
pub async fn or_fallback(f: &Failed<'_>, sampled: Vec<Blocker>) -> Vec<Blocker> {
    if !sampled.is_empty() {
        return sampled;
    }
    let relations = [f.plan.source_oid, f.plan.shadow_oid];
    blockers::holding_since(f.ctl, &relations, f.waiter, f.waited.as_secs_f64())
        .await
        .unwrap_or_default()
}

/// `; blocked by: <each blocker>` for the attempt's line, the event and the final error.
pub fn named(list: &[Blocker]) -> String {
    if list.is_empty() {
        return "; no blocking session was seen (the transactions in its way ended before they could be named)".into();
    }
    format!(
        "; blocked by: {}",
        list.iter()
            .map(Blocker::describe)
            .collect::<Vec<_>>()
            .join("; ")
    )
}

/// Says what to do about the blockers whose kind calls for more than ending a transaction
/// (autovacuum, the anti-wraparound one above all).
pub fn advise(list: &[Blocker]) {
    for b in list {
        if let Some(a) = b.advice() {
            say(&format!("warning: {a}"));
        }
    }
}

/// After a failed attempt with another to come: terminates the blockers
/// `--terminate-blockers-after` allows, each logged as a warning and an event. Returns how many
/// were terminated.
pub async fn deal_with(f: &Failed<'_>, list: &[Blocker]) -> Result<usize> {
    let Some(after) = f.terminate_after else {
        return Ok(0);
    };
    let tool = blockers::tool_name(f.ctl).await?;
    let mut terminated = 0;
    for b in list {
        if let Some(why) = blockers::spared(b, after, &tool) {
            if b.kind != blockers::Kind::PreparedTransaction {
                say(&format!(
                    "swap attempt {}: not terminating pid {}: {why}",
                    f.attempt, b.pid
                ));
            }
            continue;
        }
        let (kind, message) = match blockers::terminate(f.ctl, b, after, &tool).await? {
            Terminated::Yes => {
                terminated += 1;
                (
                    "blocker_terminated",
                    format!(
                        "terminated {} (--terminate-blockers-after {:.1} s)",
                        b.describe(),
                        after.as_secs_f64()
                    ),
                )
            }
            Terminated::NotAnyMore => continue,
            Terminated::NotAllowed(why) => (
                "blocker_not_terminated",
                format!(
                    "could not terminate pid {} ({why}): this role needs pg_signal_backend (or to be the session's role; only a superuser ends a superuser's session); end it by hand",
                    b.pid
                ),
            ),
        };
        say(&format!("warning: swap attempt {}: {message}", f.attempt));
        f.state
            .event(
                f.ctl,
                f.plan.run_id,
                Phase::Swap,
                kind,
                &format!("swap attempt {}: {message}", f.attempt),
                Some(serde_json::json!({ "attempt": f.attempt, "blocker": b })),
            )
            .await?;
    }
    Ok(terminated)
}

/// The JSON detail of a `lock_timeout` event: the attempt and its blockers.
pub fn detail(attempt: u32, list: &[Blocker]) -> serde_json::Value {
    serde_json::json!({ "attempt": attempt, "blockers": list })
}
