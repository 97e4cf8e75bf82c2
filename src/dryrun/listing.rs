//! The statements a run would execute, phase by phase, with the lock each takes on which table
//! and the most it waits for it — for `plan` (issue 6).
//!
//! The DDL of the shadow, the capture triggers, the build, the swap, what follows the swap and
//! the finish is not written here: it comes as [`Step`] values from the functions the phases
//! execute (`shadow::build_in` run in `plan`'s trial transaction, `capture::trigger_steps`,
//! `build::index_steps`..., `swap::ddl_steps`...), so the list cannot drift from what `run` does
//! (issue 17); those entries are marked `exact`, and a test compares them with what a run
//! executes. The rest is described: the tool's own bookkeeping, and the statements repeated per
//! chunk or per replay batch, shown once with how often they repeat. Every tool session runs with
//! `lock_timeout` = `--lock-timeout` (`conn::connect`), so no statement waits longer than that
//! for a lock; statements run under the lock discipline (`locking`: `run_ddl`, `retry`; the shadow and
//! the swap) are tried again up to `--max-lock-attempts` times with backoff.

use crate::db::ident::QualifiedName;
use crate::db::locking::LockPolicy;
use crate::rewrite::build::{self, Stage};
use crate::rewrite::capture;
use crate::rewrite::chunks::Chunk;
use crate::rewrite::plan::Plan;
use crate::rewrite::preflight::Source;
pub use crate::rewrite::step::LockTaken;
use crate::rewrite::step::Step;
use crate::rewrite::swap::{self, Names, SwapFacts};
use crate::state::State;
use serde::Serialize;

#[derive(Clone, Debug, Serialize)]
pub struct Statement {
    pub sql: String,
    pub locks: Vec<LockTaken>,
    /// The most it waits for each lock, per attempt (the tool sessions' lock_timeout).
    pub max_wait_ms: u64,
    /// Attempts before the run stops (1: a lock timeout fails the step).
    pub attempts: u32,
    /// How often it runs, when not once ("per chunk (12)").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repeat: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// The statement exactly as `run` sends it (built by the phase's own code); otherwise a
    /// description of the tool's bookkeeping or of a statement repeated with other values.
    pub exact: bool,
}

/// The statements of one phase.
#[derive(Clone, Debug, Serialize)]
pub struct PhaseStatements {
    pub phase: String,
    /// One transaction for the whole phase (true for the shadow and the swap).
    pub single_transaction: bool,
    pub statements: Vec<Statement>,
}

/// What the listing needs besides the plan.
pub struct ListInput<'a> {
    pub plan: &'a Plan,
    pub src: &'a Source,
    pub state: &'a State,
    pub policy: &'a LockPolicy,
    pub state_exists: bool,
    pub chunks: usize,
    pub first_chunk: Option<&'a Chunk>,
    pub jobs: usize,
    pub replay_batch: i64,
    pub chunk_rows: i64,
    /// `--chunk-time`: several consecutive chunks per copy transaction.
    pub chunk_time: Option<std::time::Duration>,
    /// Copy transactions the estimate expects (the chunks, with --chunk-time off).
    pub copy_transactions: usize,
    pub drop_old: bool,
    pub maintenance_work_mem: &'a str,
    /// `--order-by`, resolved against the source.
    pub order_by: Option<&'a build::OrderBy>,
    /// Locks the shadow transaction took on existing relations, as measured in `plan`.
    pub shadow_locks: &'a [(String, String)],
    /// The statements `shadow::build_in` executed in `plan`'s trial transaction.
    pub shadow_steps: &'a [Step],
    /// What the swap reads from the catalog, as read in the trial transaction.
    pub swap_facts: &'a SwapFacts,
    /// The names the swap would give the old table, its indexes, sequences and statistics.
    pub swap_names: &'a Names,
    /// The source's replica identity index, if any.
    pub replica_identity_index: Option<&'a str>,
}

/// A lock the listing describes (not one a step reports).
fn lock(mode: &str, on: &QualifiedName, live: bool) -> LockTaken {
    LockTaken::new(mode, on, live)
}

/// `AccessShareLock` -> `ACCESS SHARE`.
pub fn mode_name(pg: &str) -> String {
    let base = pg.strip_suffix("Lock").unwrap_or(pg);
    let mut out = String::new();
    for (i, c) in base.chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            out.push(' ');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

/// Collects the statements of one phase, with the wait and the attempts of the lock policy.
struct Builder {
    wait: u64,
    attempts: u32,
    out: Vec<Statement>,
}

impl Builder {
    /// Adds a statement (a description unless marked exact); retried ones get the policy's
    /// attempts.
    fn add(
        &mut self,
        sql: impl Into<String>,
        locks: Vec<LockTaken>,
        retried: bool,
    ) -> &mut Statement {
        self.out.push(Statement {
            sql: sql.into(),
            locks,
            max_wait_ms: self.wait,
            attempts: if retried { self.attempts } else { 1 },
            repeat: None,
            note: None,
            exact: false,
        });
        let i = self.out.len() - 1;
        &mut self.out[i]
    }

    /// Adds a statement that takes no lock on an existing relation (the tool's bookkeeping, its
    /// own objects).
    fn own(&mut self, sql: impl Into<String>, retried: bool) -> &mut Statement {
        self.add(sql, vec![], retried)
    }

    /// Adds a step as the phase's code builds it (an exact statement).
    fn step(&mut self, s: &Step, retried: bool) -> &mut Statement {
        let e = self.add(s.sql.clone(), s.locks.clone(), retried);
        e.note = s.note.clone();
        e.exact = true;
        e
    }

    /// Adds each step, as [`Builder::step`].
    fn steps(&mut self, steps: &[Step], retried: bool) {
        for s in steps {
            self.step(s, retried);
        }
    }

    /// The opening of a transaction run under the lock discipline (the shadow, the swap): its
    /// local lock timeout, retried with the rest.
    fn begin_under_lock_rule(&mut self, i: &ListInput<'_>) {
        self.own(
            format!(
                "BEGIN; {}",
                crate::db::locking::local_timeout_sql(i.policy.timeout)
            ),
            true,
        );
    }
}

/// Adds the statements of one phase to a [`Builder`].
type PhaseFn = fn(&mut Builder, &ListInput<'_>);

/// The phases in the order a run goes through them: name, one transaction, the statements.
const PHASES: [(&str, bool, PhaseFn); 10] = [
    ("preflight", false, preflight_phase),
    ("shadow", true, shadow_phase),
    ("capture", false, capture_phase),
    ("copy", false, copy_phase),
    ("build", false, build_phase),
    ("replay", false, replay_phase),
    ("verify", false, verify_phase),
    ("swap", true, swap_phase),
    ("after swap", false, after_swap_phase),
    ("finish", false, finish_phase),
];

/// The statements of a run, phase by phase, in order.
pub fn list(i: &ListInput<'_>) -> Vec<PhaseStatements> {
    PHASES
        .iter()
        .map(|(name, single, phase)| {
            let mut b = Builder {
                wait: i.policy.timeout.as_millis() as u64,
                attempts: i.policy.attempts,
                out: Vec::new(),
            };
            phase(&mut b, i);
            PhaseStatements {
                phase: name.to_string(),
                single_transaction: *single,
                statements: b.out,
            }
        })
        .collect()
}

/// Preflight: the state schema when missing, the run's advisory lock, its row in `runs`.
fn preflight_phase(b: &mut Builder, i: &ListInput<'_>) {
    if !i.state_exists {
        b.own(
            format!(
                "CREATE SCHEMA IF NOT EXISTS {} (and its tables runs, chunks, events, objects)",
                i.state.schema
            ),
            false,
        )
        .note = Some("the state schema does not exist yet".into());
    }
    b.own("SELECT pg_try_advisory_lock(<hswp>, <table oid>)", false)
        .note = Some("one run per table; held by the control session for the whole run".into());
    let runs = i.state.table("runs");
    b.own(
        format!("INSERT INTO {runs} (...) VALUES (...) RETURNING id"),
        false,
    );
}

/// The shadow: the statements `shadow::build_in` executed in the trial transaction, between
/// the bookkeeping, with the locks the trial measured.
fn shadow_phase(b: &mut Builder, i: &ListInput<'_>) {
    b.begin_under_lock_rule(i);
    b.own(
        format!(
            "INSERT INTO {} (run_id, kind, ...) VALUES (.., 'table', ..)",
            i.state.table("objects")
        ),
        true,
    );
    b.steps(i.shadow_steps, true);
    let held: Vec<String> = i
        .shadow_locks
        .iter()
        .map(|(rel, mode)| format!("{} on {rel}", mode_name(mode)))
        .collect();
    b.own(
        format!(
            "UPDATE {} SET plan = $2 WHERE id = $1; COMMIT",
            i.state.table("runs")
        ),
        true,
    )
    .note = Some(if held.is_empty() {
        "measured in a rolled-back transaction: no lock on an existing relation".into()
    } else {
        format!(
            "measured in a rolled-back transaction: until this COMMIT it holds {}",
            held.join(", ")
        )
    });
}

/// Capture: the change log and its functions, the triggers (`capture::trigger_steps`), and the
/// planning of the chunks.
fn capture_phase(b: &mut Builder, i: &ListInput<'_>) {
    let plan = i.plan;
    b.step(&capture::log_step(plan), false).note = Some(
        "no lock on the table; then REVOKE of what default privileges granted others, if any"
            .into(),
    );
    // On every relation the capture covers: a partitioned source's partitions, a partition's
    // ancestors (issue 15), as `capture::install_triggers` does.
    let trig: Vec<_> = capture::tree(plan)
        .into_iter()
        .flat_map(|t| capture::trigger_steps(plan, t))
        .collect();
    let n = trig.len();
    for (k, s) in trig.iter().enumerate() {
        let entry = b.step(s, true);
        if k == 0 {
            entry.note = Some("waits for the application's writing transactions to end, and blocks new writes while it waits (at most --lock-timeout per attempt)".into());
        }
        if k + 1 == n {
            entry.note = Some(format!("the {n} trigger statements are one transaction"));
        }
    }
    chunk_planning(b, i);
}

/// How the chunks are planned (arithmetically for an integer key, else by walking the key
/// index), and their rows in `chunks`.
fn chunk_planning(b: &mut Builder, i: &ListInput<'_>) {
    let plan = i.plan;
    let source = &plan.source;
    let from = plan.source_from();
    if plan.has_integer_key() {
        b.add(
            format!(
                "SELECT min({k})::int8, max({k})::int8 FROM {from}",
                k = plan.key[0].name
            ),
            vec![lock("ACCESS SHARE", source, true)],
            false,
        )
        .note = Some("plans the chunks arithmetically".into());
    } else {
        b.add(
            format!(
                "SELECT ... FROM (SELECT {keys}, row_number() OVER (ORDER BY {keys}) ... FROM {from}) WHERE rn % {n} = 0",
                keys = plan.key_list(),
                n = i.chunk_rows
            ),
            vec![lock("ACCESS SHARE", source, true)],
            false,
        )
        .note = Some("walks the key index once to plan the chunks".into());
    }
    let chunks = i.state.table("chunks");
    b.own(
        format!("INSERT INTO {chunks} (run_id, chunk_no, predicate, bounds) VALUES ..."),
        false,
    )
    .repeat = Some(format!("per chunk ({})", i.chunks));
}

/// The copy: the reading COPY and the writing transaction, shown for the first chunk (or copy
/// transaction) with how often they repeat.
fn copy_phase(b: &mut Builder, i: &ListInput<'_>) {
    let plan = i.plan;
    let (source, shadow) = (&plan.source, &plan.shadow);
    let pred = i
        .first_chunk
        .map(|c| c.predicate.clone())
        .unwrap_or_else(|| "<chunk i of N>".into());
    // With --chunk-time a transaction copies a run of consecutive chunks as one key range
    // (the first transaction of each worker is one chunk, as shown).
    let (per, shown, marks) = match i.chunk_time {
        Some(t) => (
            format!(
                "per transaction (about {} for {} chunks: consecutive chunks read as one key range, as many as fill --chunk-time {:.1} s by the speed measured so far)",
                i.copy_transactions,
                i.chunks,
                t.as_secs_f64()
            ),
            "shown for the first transaction (one chunk)",
            "chunk_no = ANY(..)",
        ),
        None => (
            format!("per chunk ({})", i.chunks),
            "shown for the first chunk",
            "chunk_no = ..",
        ),
    };
    b.add(
        format!(
            "COPY (SELECT {} FROM {} WHERE {pred}) TO STDOUT (FORMAT binary)",
            plan.select_list(),
            plan.source_from()
        ),
        vec![lock("ACCESS SHARE", source, true)],
        false,
    )
    .repeat = Some(format!(
        "{per}, on {} reading connection(s); {shown}",
        i.jobs
    ));
    b.add(
        format!(
            "BEGIN; COPY {shadow} ({}) FROM STDIN (FORMAT binary); UPDATE {} SET rows = .., unit = .., done_at = .. WHERE run_id = .. AND {marks} AND done_at IS NULL; COMMIT",
            crate::db::ident::join_idents(plan.copy_columns()),
            i.state.table("chunks")
        ),
        vec![lock("ROW EXCLUSIVE", shadow, false)],
        false,
    )
    .repeat = Some(format!("{per}, on {} writing connection(s)", i.jobs));
}

/// The build: each index connection's session settings, the bulk stage (with `--order-by`, the
/// plain indexes too, then CLUSTER).
fn build_phase(b: &mut Builder, i: &ListInput<'_>) {
    b.step(&build::session_step(i.maintenance_work_mem), false)
        .repeat = Some(format!("per index connection ({})", i.jobs));
    build_stage(b, i.plan, Stage::Bulk, None);
    if let Some(order) = i.order_by {
        build_stage(b, i.plan, Stage::Beside, None);
        match build::cluster_steps(i.plan, order, i.maintenance_work_mem) {
            Ok(steps) => b.steps(&steps, false),
            Err(e) => {
                b.own(format!("<--order-by cannot be done: {e}>"), false);
            }
        }
    }
}

/// Verification (its range comparisons only read) and, beside it on other connections, the
/// plain indexes, the attributes whose locks allow its reads and `ANALYZE`; then the replica
/// identity (ACCESS EXCLUSIVE on the shadow), as `migrator::phases` runs them.
fn verify_phase(b: &mut Builder, i: &ListInput<'_>) {
    if i.order_by.is_none() {
        build_stage(
            b,
            i.plan,
            Stage::Beside,
            Some("plain index: built beside verification"),
        );
    }
    let steps = build::attribute_steps(i.plan, i.src, i.replica_identity_index);
    for (part, note) in [
        (build::Attributes::BesideReads, "beside verification"),
        (build::Attributes::AfterReads, "after verification's reads"),
    ] {
        for s in steps.iter().filter(|s| build::Attributes::of(s) == part) {
            b.step(s, false).note = Some(note.into());
        }
    }
}

/// Replay: the batch repeated until the log is nearly empty, and the consistency point with
/// what is built there (when an index compares rows).
fn replay_phase(b: &mut Builder, i: &ListInput<'_>) {
    let plan = i.plan;
    let (source, shadow) = (&plan.source, &plan.shadow);
    let log = &plan.capture.log;
    b.own(
        format!(
            "BEGIN; WITH d AS (DELETE FROM {log} WHERE id IN (SELECT id FROM {log} ORDER BY id LIMIT {}) RETURNING ...) INSERT INTO pg_temp.hotswap_replay_batch SELECT * FROM d",
            i.replay_batch
        ),
        false,
    )
    .repeat = Some("per batch, until a batch comes back less than full".into());
    b.add(
        format!(
            "DELETE FROM {shadow} WHERE ({}) IN (SELECT ... FROM pg_temp.hotswap_replay_batch)",
            plan.shadow_key_list()
        ),
        vec![lock("ROW EXCLUSIVE", shadow, false)],
        false,
    )
    .repeat = Some("per batch".into());
    b.add(
        format!(
            "INSERT INTO {shadow} (...) SELECT {} FROM {} WHERE ({}) IN (SELECT ... FROM pg_temp.hotswap_replay_batch); COMMIT",
            plan.select_list(),
            plan.source_from(),
            plan.key_list()
        ),
        vec![lock("ACCESS SHARE", source, true), lock("ROW EXCLUSIVE", shadow, false)],
        false,
    )
    .repeat = Some("per batch".into());
    if plan.indexes.iter().any(|x| x.after_catch_up) {
        b.add(
            format!(
                "BEGIN ISOLATION LEVEL REPEATABLE READ; SET CONSTRAINTS ALL DEFERRED; WITH d AS (DELETE FROM {log} RETURNING ...) ...; (then as above); SET CONSTRAINTS ALL IMMEDIATE; COMMIT"
            ),
            vec![lock("ACCESS SHARE", source, true), lock("ROW EXCLUSIVE", shadow, false)],
            false,
        )
        .note = Some("the consistency point: a complete batch (every change its snapshot sees); every later batch is complete too".into());
        build_stage(
            b,
            plan,
            Stage::Consistent,
            Some("compares rows: built at the consistency point"),
        );
    }
}

/// The swap, one transaction: the lock, the checks, the last replay, the DDL of
/// `swap::ddl_steps` and the views, the bookkeeping.
fn swap_phase(b: &mut Builder, i: &ListInput<'_>) {
    if let Some(rev) = &i.plan.reverse {
        b.step(&capture::log_step(&rev.plan), false).note = Some(
            "--revertible: the reverse change log, before the swap transaction (no lock on the table)"
                .into(),
        );
    }
    b.begin_under_lock_rule(i);
    b.step(
        &swap::lock_step(i.plan, i.src, swap::LockOrder::for_attempt(1)),
        true,
    );
    b.own(
        "SELECT ... (fingerprint of the source's definition, compared with the one taken at the start; the capture triggers checked untouched)",
        true,
    );
    b.own("<replay batches until the log is empty>", true);
    swap_ddl(b, i);
    b.own(
        format!("UPDATE {} SET swap = .., phase = 'finish', old_name = .. WHERE id = ..; COMMIT", i.state.table("runs")),
        true,
    )
    .note = Some("on a lock timeout the transaction rolls back, replay catches up, and it is tried again after a jittered backoff".into());
}

/// The swap's DDL as `swap::attempt_swap` executes it, the views in between.
fn swap_ddl(b: &mut Builder, i: &ListInput<'_>) {
    let src = i.src;
    match swap::ddl_steps(i.plan, src, i.swap_names, i.swap_facts) {
        Ok(ddl) => {
            b.steps(&ddl.before_views, true);
            view_steps(b, src, i.swap_facts.view_replace_may_fail);
            b.steps(&ddl.after_views, true);
        }
        Err(e) => {
            b.own(
                format!("<the swap's statements cannot be listed: {e}>"),
                true,
            );
        }
    }
}

/// The dependent views, as `swap::recreate_views` handles them: replaced in place; dropped and
/// created again when a materialized view is among them. When a column a view reads changes type
/// or collation, PostgreSQL may refuse the replacement (a column a view shows changes) and only
/// the swap finds out: both ways are listed, neither as exact.
fn view_steps(b: &mut Builder, src: &Source, may_fail: bool) {
    match swap::view_replace_steps(src) {
        Some(v) if may_fail => {
            for s in &v {
                let e = b.step(s, true);
                e.exact = false;
                e.note = Some("tried first; decided in the swap: a column a view reads changes type or collation, and PostgreSQL refuses the replacement if a view shows that column".into());
            }
            for s in &swap::view_recreate_steps(src) {
                let e = b.step(s, true);
                e.exact = false;
                e.note = Some("instead, if PostgreSQL refused to replace the views in place: they are dropped and created again with their owner, grants, comments, defaults, rules and triggers".into());
            }
        }
        Some(v) => b.steps(&v, true),
        None => b.steps(&swap::view_recreate_steps(src), true),
    }
}

/// After the swap: `swap::after_swap_steps` (validating re-pointed foreign keys...).
fn after_swap_phase(b: &mut Builder, i: &ListInput<'_>) {
    b.steps(&swap::after_swap_steps(i.plan, i.src), true);
}

/// The finish: the capture dropped, the old table with `--drop-old`, the run marked done.
fn finish_phase(b: &mut Builder, i: &ListInput<'_>) {
    b.step(&crate::rewrite::migrator::drop_capture_step(i.plan), false);
    if i.drop_old {
        b.step(
            &crate::rewrite::migrator::drop_old_step(&i.swap_names.old),
            true,
        );
    }
    b.own(
        format!(
            "UPDATE {} SET status = 'succeeded' ...",
            i.state.table("runs")
        ),
        false,
    );
}

/// The index builds and constraints of one build stage, as `build::build` runs them.
fn build_stage(b: &mut Builder, plan: &Plan, stage: Stage, note: Option<&str>) {
    for (_, s) in build::index_steps(plan, stage) {
        let e = b.step(&s, false);
        if let Some(n) = note {
            e.note = Some(format!("{n}; {}", s.note.as_deref().unwrap_or_default()));
        }
    }
    for (_, s) in build::constraint_steps(plan, stage) {
        b.step(&s, false);
    }
}

/// Issue 16: the statements of a run that needs no rewrite (`fastpath::InPlace`), as one phase
/// "in place": each transaction's opening under the lock rule, then its steps exactly as `run`
/// sends them; `CREATE INDEX CONCURRENTLY` on its own, outside a transaction.
pub fn in_place(p: &crate::rewrite::fastpath::InPlace, policy: &LockPolicy) -> PhaseStatements {
    let mut b = Builder {
        wait: policy.timeout.as_millis() as u64,
        attempts: policy.attempts,
        out: Vec::new(),
    };
    for u in &p.units {
        if u.in_transaction() {
            b.own(
                format!(
                    "BEGIN; {}",
                    crate::db::locking::local_timeout_sql(policy.timeout)
                ),
                true,
            );
            b.steps(u.steps(), true);
            b.own("COMMIT", true);
        } else {
            b.steps(u.steps(), true);
        }
    }
    PhaseStatements {
        phase: "in place".to_string(),
        single_transaction: false,
        statements: b.out,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_mode_names() {
        assert_eq!(mode_name("AccessShareLock"), "ACCESS SHARE");
        assert_eq!(mode_name("ShareRowExclusiveLock"), "SHARE ROW EXCLUSIVE");
        assert_eq!(mode_name("ShareLock"), "SHARE");
    }
}
