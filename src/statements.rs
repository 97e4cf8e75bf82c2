//! The statements a run would execute, phase by phase, with the lock each takes on which table
//! and the most it waits for it — for `plan` (issue 6).
//!
//! The list mirrors the code of each phase (`shadow`, `capture`, `chunks`/`copier`, `build`,
//! `replay`, `swap`, `migrator`'s finish); statements repeated per chunk, per batch or per
//! object are shown once with how often they repeat. Every tool session runs with
//! `lock_timeout` = `--lock-timeout` (`conn::connect`), so no statement waits longer than that
//! for a lock; statements run under the lock discipline (`locking::run_ddl`, the shadow and the
//! swap) are tried again up to `--max-lock-attempts` times with backoff. Keep this file in step
//! with those modules when they change.

use crate::capture;
use crate::chunks::Chunk;
use crate::ident::{literal, QualifiedName};
use crate::locking::LockPolicy;
use crate::plan::Plan;
use crate::preflight::Source;
use crate::state::State;
use serde::Serialize;

/// A lock a statement takes.
#[derive(Clone, Debug, Serialize)]
pub struct LockTaken {
    /// PostgreSQL's name of the mode: `ACCESS EXCLUSIVE`, `SHARE ROW EXCLUSIVE`...
    pub mode: String,
    /// `schema.name` (unquoted, for people).
    pub on: String,
    /// Whether the application uses the object (the live table, a referenced table...), so
    /// waiting for or holding the lock affects it.
    pub live: bool,
}

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
    pub old_name: &'a str,
    pub maintenance_work_mem: &'a str,
    /// Locks the shadow transaction took on existing relations, as measured in `plan`.
    pub shadow_locks: &'a [(String, String)],
}

fn lock(mode: &str, on: &QualifiedName, live: bool) -> LockTaken {
    LockTaken {
        mode: mode.to_string(),
        on: on.human(),
        live,
    }
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

struct Builder<'a> {
    wait: u64,
    attempts: u32,
    out: &'a mut Vec<Statement>,
}

impl Builder<'_> {
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
        });
        self.out.last_mut().expect("just pushed")
    }
}

pub fn list(i: &ListInput<'_>) -> Vec<PhaseStatements> {
    let plan = i.plan;
    let src = i.src;
    let source = &plan.source;
    let shadow = &plan.shadow;
    let wait = i.policy.timeout.as_millis() as u64;
    let mut phases = Vec::new();
    let mut phase = |name: &str, single: bool, f: &dyn Fn(&mut Builder)| {
        let mut out = Vec::new();
        let mut b = Builder {
            wait,
            attempts: i.policy.attempts,
            out: &mut out,
        };
        f(&mut b);
        phases.push(PhaseStatements {
            phase: name.to_string(),
            single_transaction: single,
            statements: out,
        });
    };

    phase("preflight", false, &|b| {
        if !i.state_exists {
            b.add(
                format!(
                    "CREATE SCHEMA IF NOT EXISTS {} (and its tables runs, chunks, events, objects)",
                    i.state.schema
                ),
                vec![],
                false,
            )
            .note = Some("the state schema does not exist yet".into());
        }
        b.add(
            "SELECT pg_try_advisory_lock(<hswp>, <table oid>)",
            vec![],
            false,
        )
        .note = Some("one run per table; held by the control session for the whole run".into());
        b.add(
            format!(
                "INSERT INTO {} (...) VALUES (...) RETURNING id",
                i.state.table("runs")
            ),
            vec![],
            false,
        );
    });

    phase("shadow", true, &|b| {
        b.add(
            format!(
                "CREATE TABLE {shadow} (LIKE {source} INCLUDING DEFAULTS INCLUDING GENERATED INCLUDING IDENTITY \
                 INCLUDING STORAGE INCLUDING COMPRESSION INCLUDING COMMENTS)"
            ),
            vec![lock("ACCESS SHARE", source, true)],
            true,
        );
        if !src.table.reloptions.is_empty() || !src.table.toast_options.is_empty() {
            b.add(
                format!("ALTER TABLE {shadow} SET (<storage options>)"),
                vec![],
                true,
            );
        }
        for c in src.constraints.iter().filter(|c| c.kind == "c") {
            b.add(
                format!("ALTER TABLE {shadow} ADD CONSTRAINT {} {}", c.name, c.def),
                vec![],
                true,
            );
        }
        for c in src
            .constraints
            .iter()
            .filter(|c| c.kind == "f" && c.references != src.table.oid)
        {
            let l = referenced(src, c.name.as_str())
                .map(|r| {
                    vec![LockTaken {
                        mode: "SHARE ROW EXCLUSIVE".into(),
                        on: r,
                        live: true,
                    }]
                })
                .unwrap_or_default();
            b.add(
                format!("ALTER TABLE {shadow} ADD CONSTRAINT {} {}", c.name, c.def),
                l,
                true,
            )
            .note = Some("locks the referenced table SHARE ROW EXCLUSIVE (blocking its writes) until the shadow transaction commits, in milliseconds".into());
        }
        if !src.indexes.is_empty() {
            b.add(
                format!("CREATE [UNIQUE] INDEX hotswap_<run>_i<n> ON {shadow} USING ... (every index of the source)"),
                vec![],
                true,
            )
            .repeat = Some(format!("per index ({})", src.indexes.len()));
        }
        b.add(
            "ALTER TABLE <shadow> <your --alter>".to_string(),
            vec![],
            true,
        )
        .note = Some("run against the empty shadow only".into());
        b.add(
            format!("DROP INDEX / ALTER TABLE {shadow} DROP CONSTRAINT (indexes and foreign keys again, for a bare bulk load)"),
            vec![],
            true,
        );
        b.add(
            format!("SELECT {} FROM ONLY {source} LIMIT 0", plan.select_list()),
            vec![lock("ACCESS SHARE", source, true)],
            true,
        )
        .note = Some("compiles the column mapping".into());
        let held: Vec<String> = i
            .shadow_locks
            .iter()
            .map(|(rel, mode)| format!("{} on {rel}", mode_name(mode)))
            .collect();
        b.add(
            format!(
                "UPDATE {} SET plan = $2 WHERE id = $1; COMMIT",
                i.state.table("runs")
            ),
            vec![],
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
    });

    phase("capture", false, &|b| {
        let c = &plan.capture;
        b.add(
            format!(
                "CREATE TABLE {} (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, truncated boolean, {})",
                c.log,
                capture::log_key_columns(plan)
                    .iter()
                    .zip(&plan.key)
                    .map(|(k, key)| format!("{k} {}", key.source_type))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            vec![],
            false,
        );
        b.add(
            format!(
                "CREATE FUNCTION {}() ... SECURITY DEFINER SET search_path = pg_catalog, pg_temp; CREATE FUNCTION {}() ...; REVOKE ALL ... FROM PUBLIC",
                c.function, c.truncate_function
            ),
            vec![],
            false,
        );
        let trig = vec![lock("SHARE ROW EXCLUSIVE", source, true)];
        let stmts = crate::capture::trigger_statements(plan, source);
        let n = stmts.len();
        for (i, stmt) in stmts.into_iter().enumerate() {
            let entry = b.add(stmt, trig.clone(), true);
            if i == 0 {
                entry.note = Some("waits for the application's writing transactions to end, and blocks new writes while it waits (at most --lock-timeout per attempt)".into());
            }
            if i + 1 == n {
                entry.note = Some(format!("the {n} trigger statements are one transaction"));
            }
        }
        if plan.key.len() == 1
            && ["smallint", "integer", "bigint"].contains(&plan.key[0].source_type.as_str())
        {
            b.add(
                format!(
                    "SELECT min({k})::int8, max({k})::int8 FROM ONLY {source}",
                    k = plan.key[0].name
                ),
                vec![lock("ACCESS SHARE", source, true)],
                false,
            )
            .note = Some("plans the chunks arithmetically".into());
        } else {
            b.add(
                format!(
                    "SELECT ... FROM (SELECT {keys}, row_number() OVER (ORDER BY {keys}) ... FROM ONLY {source}) WHERE rn % {n} = 0",
                    keys = plan.key_list(),
                    n = i.chunk_rows
                ),
                vec![lock("ACCESS SHARE", source, true)],
                false,
            )
            .note = Some("walks the key index once to plan the chunks".into());
        }
        b.add(
            format!(
                "INSERT INTO {} (run_id, chunk_no, predicate, bounds) VALUES ...",
                i.state.table("chunks")
            ),
            vec![],
            false,
        )
        .repeat = Some(format!("per chunk ({})", i.chunks));
    });

    phase("copy", false, &|b| {
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
                "COPY (SELECT {} FROM ONLY {source} WHERE {pred}) TO STDOUT (FORMAT binary)",
                plan.select_list()
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
                crate::ident::join_idents(plan.copy_columns()),
                i.state.table("chunks")
            ),
            vec![lock("ROW EXCLUSIVE", shadow, false)],
            false,
        )
        .repeat = Some(format!("{per}, on {} writing connection(s)", i.jobs));
    });

    phase("build", false, &|b| {
        b.add(
            format!(
                "SET maintenance_work_mem = {}",
                literal(i.maintenance_work_mem)
            ),
            vec![],
            false,
        )
        .repeat = Some(format!("per index connection ({})", i.jobs));
        for ix in plan
            .indexes
            .iter()
            .filter(|x| !x.built_by_constraint && !x.after_catch_up)
        {
            b.add(
                ix.create_sql.clone(),
                vec![lock("SHARE", shadow, false)],
                false,
            )
            .note = Some(format!("becomes {}", ix.final_name.as_str()));
        }
        for ix in plan.indexes.iter().filter(|x| !x.after_catch_up) {
            if let Some(c) = &ix.constraint_sql {
                b.add(
                    c.clone(),
                    vec![lock("ACCESS EXCLUSIVE", shadow, false)],
                    false,
                )
                .note = Some(format!("becomes {}", ix.final_name.as_str()));
            }
        }
        for c in &plan.late_checks {
            b.add(
                format!(
                    "ALTER TABLE {shadow} ADD CONSTRAINT {} {} NOT VALID",
                    c.name, c.def
                ),
                vec![lock("ACCESS EXCLUSIVE", shadow, false)],
                false,
            );
        }
        b.add(
            format!("COMMENT ON TABLE {shadow} IS ...; ALTER TABLE {shadow} REPLICA IDENTITY ... (table attributes)"),
            vec![lock("ACCESS EXCLUSIVE", shadow, false)],
            false,
        );
        b.add(
            format!("ANALYZE {shadow}"),
            vec![lock("SHARE UPDATE EXCLUSIVE", shadow, false)],
            false,
        );
    });

    phase("replay", false, &|b| {
        let log = &plan.capture.log;
        b.add(
            format!(
                "BEGIN; WITH d AS (DELETE FROM {log} WHERE id IN (SELECT id FROM {log} ORDER BY id LIMIT {}) RETURNING ...) INSERT INTO pg_temp.hotswap_replay_batch SELECT * FROM d",
                i.replay_batch
            ),
            vec![],
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
                "INSERT INTO {shadow} (...) SELECT {} FROM ONLY {source} WHERE ({}) IN (SELECT ... FROM pg_temp.hotswap_replay_batch); COMMIT",
                plan.select_list(),
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
            for ix in plan
                .indexes
                .iter()
                .filter(|x| x.after_catch_up && !x.built_by_constraint)
            {
                b.add(
                    ix.create_sql.clone(),
                    vec![lock("SHARE", shadow, false)],
                    false,
                )
                .note = Some(format!(
                    "compares rows: built at the consistency point; becomes {}",
                    ix.final_name.as_str()
                ));
            }
            for ix in plan.indexes.iter().filter(|x| x.after_catch_up) {
                if let Some(c) = &ix.constraint_sql {
                    b.add(
                        c.clone(),
                        vec![lock("ACCESS EXCLUSIVE", shadow, false)],
                        false,
                    )
                    .note = Some(format!("becomes {}", ix.final_name.as_str()));
                }
            }
        }
    });

    phase("swap", true, &|b| {
        b.add(
            format!("BEGIN; SET LOCAL lock_timeout = '{}ms'", wait),
            vec![],
            true,
        );
        b.add(
            format!("LOCK TABLE {source}, {shadow} IN ACCESS EXCLUSIVE MODE"),
            vec![lock("ACCESS EXCLUSIVE", source, true), lock("ACCESS EXCLUSIVE", shadow, false)],
            true,
        )
        .note = Some("blocks every reader and writer of the table while it waits (at most --lock-timeout) and until COMMIT; typically held for milliseconds".into());
        b.add(
            "SELECT ... (fingerprint of the source's definition, compared with the one taken at the start)",
            vec![],
            true,
        );
        b.add("<replay batches until the log is empty>", vec![], true);
        b.add(
            crate::capture::drop_trigger_statements(
                &plan.capture.trigger,
                &plan.capture.truncate_trigger,
                source,
            )
            .join("; "),
            vec![],
            true,
        );
        for s in &src.sequences {
            if s.deptype == "i" {
                b.add(
                    format!(
                        "SELECT setval(<new identity sequence>, last_value, is_called) FROM {}; ALTER SEQUENCE ... RENAME (old to _old, new to {})",
                        s.name,
                        s.name.name
                    ),
                    vec![lock("ACCESS EXCLUSIVE", &s.name, true)],
                    true,
                );
            } else {
                b.add(
                    format!("ALTER SEQUENCE {} OWNED BY {shadow}.<column>", s.name),
                    vec![lock("ACCESS EXCLUSIVE", &s.name, true)],
                    true,
                );
            }
        }
        for c in src
            .constraints
            .iter()
            .filter(|c| c.kind == "f" && c.references != plan.source_oid)
        {
            b.add(
                format!("ALTER TABLE {source} DROP CONSTRAINT {}", c.name),
                referenced(src, c.name.as_str())
                    .map(|r| {
                        vec![LockTaken {
                            mode: "ACCESS EXCLUSIVE".into(),
                            on: r,
                            live: true,
                        }]
                    })
                    .unwrap_or_default(),
                true,
            )
            .note = Some("the old table lets go of its outgoing foreign keys".into());
        }
        for fk in &src.incoming {
            b.add(
                format!("ALTER TABLE {} DROP CONSTRAINT {}", fk.table, fk.name),
                vec![lock("ACCESS EXCLUSIVE", &fk.table, true)],
                true,
            );
        }
        b.add(
            format!(
                "ALTER TABLE {source} RENAME TO {}",
                crate::ident::Ident::new(i.old_name)
            ),
            vec![],
            true,
        );
        b.add(
            format!("ALTER TABLE {shadow} RENAME TO {}", source.name),
            vec![],
            true,
        );
        if !src.indexes.is_empty() || !plan.indexes.is_empty() {
            b.add(
                "ALTER INDEX <old index> RENAME TO <name>_old; ALTER INDEX hotswap_<run>_i<n> RENAME TO <original name>",
                vec![],
                true,
            )
            .repeat = Some(format!("per index ({} old, {} new)", src.indexes.len(), plan.indexes.len()));
        }
        for fk in &plan.foreign_keys {
            let mut l = Vec::new();
            if let Some(r) = referenced(src, fk.name.as_str()) {
                l.push(LockTaken {
                    mode: "SHARE ROW EXCLUSIVE".into(),
                    on: r,
                    live: true,
                });
            }
            b.add(
                format!(
                    "ALTER TABLE {source} ADD CONSTRAINT {} {} NOT VALID",
                    fk.name, fk.def
                ),
                l,
                true,
            )
            .note = Some(
                "a foreign key of the new table; never on the shadow while the application writes"
                    .into(),
            );
        }
        for fk in &plan.self_foreign_keys {
            b.add(
                format!(
                    "ALTER TABLE {source} ADD CONSTRAINT {} {} NOT VALID",
                    fk.name, fk.def
                ),
                vec![],
                true,
            );
        }
        for fk in &src.incoming {
            let def = fk.def.strip_suffix(" NOT VALID").unwrap_or(&fk.def);
            b.add(
                format!(
                    "ALTER TABLE {} ADD CONSTRAINT {} {def} NOT VALID",
                    fk.table, fk.name
                ),
                vec![lock("SHARE ROW EXCLUSIVE", &fk.table, true)],
                true,
            );
        }
        for v in &src.views {
            b.add(
                format!("CREATE OR REPLACE VIEW {} AS ... (or DROP VIEW and CREATE VIEW, with owner, grants, comments)", v.name),
                vec![lock("ACCESS EXCLUSIVE", &v.name, true)],
                true,
            );
        }
        if src.table.row_security || !src.policies.is_empty() {
            b.add(
                format!(
                    "ALTER TABLE {source} ENABLE ROW LEVEL SECURITY; CREATE POLICY ... ON {source}"
                ),
                vec![],
                true,
            )
            .repeat = Some(format!("policies ({})", src.policies.len()));
        }
        for t in src.user_triggers() {
            b.add(t.def.clone(), vec![], true);
        }
        for p in &src.publications {
            b.add(
                format!(
                    "ALTER PUBLICATION {} DROP TABLE <old>; ALTER PUBLICATION {} ADD TABLE ONLY {source}{}{}",
                    p.name, p.name, p.columns, p.filter
                ),
                vec![],
                true,
            );
        }
        for (_, r) in &src.rules {
            b.add(r.clone(), vec![], true);
        }
        for st in &src.statistics {
            b.add(
                format!(
                    "ALTER STATISTICS {} RENAME TO <name>_old; {}",
                    st.name, st.def
                ),
                vec![],
                true,
            );
        }
        b.add(
            format!("COMMENT ON CONSTRAINT ...; REVOKE/GRANT ... ON {source} (privileges as on the old table)"),
            vec![],
            true,
        )
        .repeat = Some(format!("grants ({})", src.grants.len()));
        b.add(
            format!("UPDATE {} SET phase = 'finish', old_name = .. WHERE id = ..; COMMIT", i.state.table("runs")),
            vec![],
            true,
        )
        .note = Some("on a lock timeout the transaction rolls back, replay catches up, and it is tried again after a jittered backoff".into());
    });

    phase("after swap", false, &|b| {
        if !src.statistics.is_empty() {
            b.add(
                format!("ANALYZE {source}"),
                vec![lock("SHARE UPDATE EXCLUSIVE", source, true)],
                true,
            );
        }
        for fk in &src.incoming {
            if fk.validated {
                b.add(
                    format!("ALTER TABLE {} VALIDATE CONSTRAINT {}", fk.table, fk.name),
                    vec![
                        lock("SHARE UPDATE EXCLUSIVE", &fk.table, true),
                        lock("ROW SHARE", source, true),
                    ],
                    true,
                )
                .note = Some("scans the referencing table; writes go on".into());
            }
        }
        for fk in plan
            .foreign_keys
            .iter()
            .chain(&plan.self_foreign_keys)
            .filter(|f| f.validate)
        {
            b.add(
                format!("ALTER TABLE {source} VALIDATE CONSTRAINT {}", fk.name),
                vec![lock("SHARE UPDATE EXCLUSIVE", source, true)],
                true,
            );
        }
    });

    phase("finish", false, &|b| {
        let c = &plan.capture;
        b.add(crate::capture::drop_log_statement(c), vec![], false);
        if i.drop_old {
            let old = source.sibling(i.old_name);
            b.add(
                format!("DROP TABLE IF EXISTS {old}"),
                vec![lock("ACCESS EXCLUSIVE", &old, false)],
                true,
            );
        }
        b.add(
            format!(
                "UPDATE {} SET status = 'succeeded' ...",
                i.state.table("runs")
            ),
            vec![],
            false,
        );
    });
    phases
}

/// The table an outgoing foreign key of the source references (from its definition's text).
fn referenced(src: &Source, name: &str) -> Option<String> {
    let c = src.constraints.iter().find(|c| c.name.as_str() == name)?;
    let rest = c.def.split(" REFERENCES ").nth(1)?;
    Some(rest.split('(').next()?.trim().to_string())
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
