//! Statements as values: every DDL statement a phase runs (the shadow, the capture triggers, the
//! index builds, the swap, what follows the swap, the finish) is first built as a [`Step`] — its
//! SQL, what it is for, the locks it takes — and then executed through this module. `plan`
//! lists the same values, built by the same functions, so it cannot drift from what `run` does
//! (issue 17; models: pgroll's actions as values, gh-ost's single statement builder).
//!
//! Test hook: with `PGHOTSWAP_RECORD_SQL=<file>` in the environment (debug builds only, like
//! `failpoint`), every step that succeeds is appended to `<file>` as one JSON string per line;
//! the integration test `plan_lists_what_run_executes` compares that file with `plan`'s list.

use crate::db::ident::QualifiedName;
use crate::error::{DbContext, Result};
use serde::Serialize;
use tokio_postgres::GenericClient;

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

impl LockTaken {
    pub fn new(mode: &str, on: &QualifiedName, live: bool) -> LockTaken {
        LockTaken {
            mode: mode.to_string(),
            on: on.human(),
            live,
        }
    }
}

/// One statement of a phase.
#[derive(Clone, Debug)]
pub struct Step {
    /// The statement, exactly as it is sent.
    pub sql: String,
    /// What it does, for messages: "creating the shadow table app.t_new".
    pub what: String,
    /// The locks it takes on existing relations.
    pub locks: Vec<LockTaken>,
    /// Why it matters, for `plan` (how long it may block, what it waits for).
    pub note: Option<String>,
    /// Sent over the extended protocol, so the server itself refuses a second statement hidden
    /// in it (user text: `--alter`).
    pub single: bool,
}

impl Step {
    pub fn new(sql: impl Into<String>, what: impl Into<String>) -> Step {
        Step {
            sql: sql.into(),
            what: what.into(),
            locks: Vec::new(),
            note: None,
            single: false,
        }
    }

    /// Adds a lock the statement takes.
    pub fn locks(mut self, mode: &str, on: &QualifiedName, live: bool) -> Step {
        self.locks.push(LockTaken::new(mode, on, live));
        self
    }

    pub fn note(mut self, note: impl Into<String>) -> Step {
        self.note = Some(note.into());
        self
    }

    pub fn single(mut self) -> Step {
        self.single = true;
        self
    }
}

/// Runs one step on `client` (a session or a transaction). Errors carry the step's `what`.
pub async fn exec(client: &impl GenericClient, step: &Step) -> Result<()> {
    if step.single {
        client
            .execute(step.sql.as_str(), &[])
            .await
            .ctx(&step.what)?;
    } else {
        client.batch_execute(&step.sql).await.ctx(&step.what)?;
    }
    record(std::slice::from_ref(step));
    Ok(())
}

/// Runs `steps` in order on `client`, stopping at the first error. Consecutive steps that
/// take the simple protocol go to the server as one message: inside a transaction this runs the
/// same statements in the same order, and a swap of a partition tree (hundreds of renames,
/// trigger drops and storage options under ACCESS EXCLUSIVE) pays one round trip instead of one
/// per statement. An error names the statements of its batch; PostgreSQL's message names the
/// object.
pub async fn exec_all(client: &impl GenericClient, steps: &[Step]) -> Result<()> {
    let mut rest = steps;
    while let Some(first) = rest.first() {
        if first.single {
            exec(client, first).await?;
            rest = &rest[1..];
            continue;
        }
        let n = rest.iter().take_while(|s| !s.single).count();
        let (batch, after) = rest.split_at(n);
        if let [only] = batch {
            exec(client, only).await?;
        } else {
            let sql = batch
                .iter()
                .map(|s| s.sql.as_str())
                .collect::<Vec<_>>()
                .join(";\n");
            client.batch_execute(&sql).await.ctx(batch_what(batch))?;
            record(batch);
        }
        rest = after;
    }
    Ok(())
}

/// What a batch of steps is for, for an error: its first and last step.
fn batch_what(batch: &[Step]) -> String {
    match batch {
        [] => String::new(),
        [one] => one.what.clone(),
        [first, .., last] => format!(
            "one of {} statements sent together, from \"{}\" to \"{}\"",
            batch.len(),
            first.what,
            last.what
        ),
    }
}

/// Runs `steps` as one transaction under the lock discipline (`locking::run_ddl`): a short
/// `lock_timeout`, retried with backoff. Returns the attempts it took.
pub async fn exec_locked(
    client: &tokio_postgres::Client,
    policy: &crate::db::locking::LockPolicy,
    what: &str,
    table: Option<u32>,
    steps: &[Step],
) -> Result<u32> {
    let sql: Vec<String> = steps.iter().map(|s| s.sql.clone()).collect();
    let attempts = crate::db::locking::run_ddl(client, policy, what, table, &sql).await?;
    record(steps);
    Ok(attempts)
}

/// Appends executed steps to `PGHOTSWAP_RECORD_SQL` (debug builds only; see the module header).
#[cfg(debug_assertions)]
pub(crate) fn record(steps: &[Step]) {
    use std::io::Write;
    let Some(path) = std::env::var_os("PGHOTSWAP_RECORD_SQL") else {
        return;
    };
    let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    else {
        return;
    };
    for s in steps {
        if let Ok(line) = serde_json::to_string(&s.sql) {
            let _ = writeln!(f, "{line}");
        }
    }
}

#[cfg(not(debug_assertions))]
#[inline(always)]
pub(crate) fn record(_steps: &[Step]) {}
