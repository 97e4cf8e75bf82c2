//! Who blocks a lock request, and ending them when asked (issue 20, "Blockers"): the typed
//! [`Blocker`] list of the sessions that hold, or queue before, a lock a waiting session asked
//! for, read with `pg_blocking_pids()` of the waiting backend *while it waits*; the anti-
//! wraparound autovacuum recognised ([`Kind::WraparoundAutovacuum`]); and
//! `--terminate-blockers-after` ([`terminate`]).
//!
//! Why `pg_blocking_pids()` and not "every lock on the table": the old diagnostics listed every
//! session holding any lock on the source once the wait was over — the application's short
//! transactions that happened to be running then (often the writers that had queued *behind*
//! the swap and got in the moment it gave up), while a blocker on the shadow or one still
//! queued before the swap was not named at all. `pg_blocking_pids()` is the server's own answer
//! for exactly one waiting backend: the holders of conflicting locks and the conflicting
//! requests ahead of it in the queue. [`holding_since`] is only the fallback for a wait too
//! short to be sampled.
//!
//! Invariants kept here: a session is terminated only if it blocked the lock request, is a
//! `client backend` (never a WAL sender, a replication or background worker, autovacuum), is not
//! one of the tool's own sessions (`application_name` is the tool's base name or starts with
//! it and `/`), and is still in the very transaction that was seen blocking (pid and
//! `xact_start`, re-checked in the statement that terminates it) and that transaction is older
//! than the threshold. A lack of privilege to terminate is an outcome, not an error. Nothing
//! here prints (the db layer returns what it found).

use crate::error::{DbContext, Result, RowExt};
use serde::Serialize;
use std::time::Duration;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::Oid;
use tokio_postgres::Client;

/// What kind of session a blocker is: decides what can be done about it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// An ordinary client session (the application, a person at psql, a report).
    Client,
    /// A regular autovacuum worker: it is cancelled by the server itself once a lock request
    /// has waited `deadlock_timeout` for it.
    Autovacuum,
    /// An autovacuum worker run to prevent transaction-ID wraparound: it does not give way to
    /// lock requests, and must never be terminated (it would be started again at once).
    WraparoundAutovacuum,
    /// A prepared transaction (two-phase commit): it has no session to terminate.
    PreparedTransaction,
    /// Another role's session whose details this role may not see (`pg_stat_activity` hides
    /// state, transaction start, backend type and query without `pg_read_all_stats`).
    Hidden,
    /// Any other backend (`backend_type` as the server names it).
    Other(String),
}

/// Classifies a blocking backend by its `backend_type` and its query (autovacuum reports
/// `autovacuum: VACUUM public.t (to prevent wraparound)` for an anti-wraparound run).
pub fn classify(pid: i32, backend_type: &str, query: &str) -> Kind {
    if pid == 0 {
        return Kind::PreparedTransaction;
    }
    match backend_type {
        "" => Kind::Hidden,
        "client backend" => Kind::Client,
        "autovacuum worker" if query.contains("(to prevent wraparound)") => {
            Kind::WraparoundAutovacuum
        }
        "autovacuum worker" => Kind::Autovacuum,
        other => Kind::Other(other.to_string()),
    }
}

/// A session that blocks a lock request.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Blocker {
    /// 0 for a prepared transaction.
    pub pid: i32,
    pub application_name: String,
    pub usename: String,
    /// `active`, `idle in transaction`...
    pub state: String,
    /// How long its transaction has been open (None: none open, or unknown).
    pub xact_age: Option<f64>,
    /// `xact_start` as seconds since the epoch: with the pid, it names the transaction.
    #[serde(skip)]
    pub xact_start: Option<f64>,
    /// Its current or last query, shortened.
    pub query: String,
    /// It is itself waiting for a lock (queued before the request, not holding).
    pub waiting: bool,
    /// The locks it holds or requests on the relations of interest, e.g.
    /// `AccessShareLock on public.t`; empty when the conflict is on another object.
    pub locks: String,
    pub backend_type: String,
    pub kind: Kind,
}

impl Blocker {
    /// One line naming it: pid, application, user, state, transaction age, lock, query.
    pub fn describe(&self) -> String {
        if self.kind == Kind::PreparedTransaction {
            return format!(
                "a prepared transaction{} (pg_prepared_xacts names it; COMMIT PREPARED or ROLLBACK PREPARED ends it)",
                self.lock_text()
            );
        }
        if self.kind == Kind::Hidden {
            return format!(
                "pid {} (application_name {:?}, user {}{}; its state, transaction and query are hidden from this role: grant it pg_read_all_stats to see them)",
                self.pid,
                self.application_name,
                if self.usename.is_empty() { "?" } else { &self.usename },
                self.lock_text(),
            );
        }
        let what = match &self.kind {
            Kind::Client | Kind::Hidden => String::new(),
            Kind::Autovacuum => ", autovacuum".to_string(),
            Kind::WraparoundAutovacuum => ", autovacuum to prevent wraparound".to_string(),
            Kind::PreparedTransaction => String::new(),
            Kind::Other(t) => format!(", {t}"),
        };
        format!(
            "pid {} (application_name {:?}, user {}{what}, {}, transaction open {}{}{}; query {:?})",
            self.pid,
            self.application_name,
            if self.usename.is_empty() { "?" } else { &self.usename },
            if self.state.is_empty() { "?" } else { &self.state },
            match self.xact_age {
                Some(a) => format!("{a:.1} s"),
                None => "?".to_string(),
            },
            if self.waiting { ", queued before us" } else { "" },
            self.lock_text(),
            self.query
        )
    }

    fn lock_text(&self) -> String {
        if self.locks.is_empty() {
            String::new()
        } else if self.waiting {
            format!(", requests {}", self.locks)
        } else {
            format!(", holds {}", self.locks)
        }
    }

    /// What to do about it, where the kind says more than "end that transaction".
    pub fn advice(&self) -> Option<String> {
        match self.kind {
            Kind::WraparoundAutovacuum => Some(format!(
                "pid {} is an autovacuum run to prevent transaction-ID wraparound: it does not give way to lock requests and is never terminated by pg-hotswap (the server would start it again at once); wait for it to finish (pg_stat_progress_vacuum shows how far it is) and run again, or next time run VACUUM (FREEZE) on the table before the rewrite, and give the swap a longer window (--lock-timeout, --max-lock-attempts, --retry-delay)",
                self.pid
            )),
            Kind::Autovacuum => Some(format!(
                "pid {} is a regular autovacuum: the server cancels it by itself once a lock request has waited deadlock_timeout for it (1 s by default); a --lock-timeout shorter than that gives up first, so a later attempt usually finds it gone, or raise --lock-timeout above deadlock_timeout",
                self.pid
            )),
            _ => None,
        }
    }
}

const BLOCKERS: &str = "\
WITH b AS (SELECT DISTINCT unnest(pg_catalog.pg_blocking_pids($1)) AS pid)
SELECT b.pid,
       COALESCE(a.application_name, ''), COALESCE(a.usename::text, ''), COALESCE(a.state, ''),
       extract(epoch FROM pg_catalog.now() - a.xact_start)::float8,
       extract(epoch FROM a.xact_start)::float8,
       left(regexp_replace(COALESCE(a.query, ''), '\\s+', ' ', 'g'), 200),
       COALESCE(a.backend_type, ''),
       EXISTS (SELECT 1 FROM pg_catalog.pg_locks w WHERE w.pid = b.pid AND NOT w.granted),
       COALESCE((SELECT string_agg(DISTINCT l.mode || ' on ' || l.relation::regclass::text, ', ')
                   FROM pg_catalog.pg_locks l
                  WHERE l.pid = b.pid AND l.relation = ANY($2)
                    AND l.database = (SELECT oid FROM pg_catalog.pg_database
                                       WHERE datname = pg_catalog.current_database())), '')
  FROM b LEFT JOIN pg_catalog.pg_stat_activity a ON a.pid = b.pid
 ORDER BY a.xact_start NULLS LAST, b.pid";

/// The sessions that block backend `waiter` now (`pg_blocking_pids`), with their locks on
/// `relations` named. Empty when it waits for nothing.
pub async fn blocking(client: &Client, waiter: i32, relations: &[Oid]) -> Result<Vec<Blocker>> {
    let rows = client
        .query(BLOCKERS, &[&waiter, &relations])
        .await
        .ctx("looking up the sessions that block the lock request")?;
    rows.iter().map(blocker_of).collect()
}

const HOLDING: &str = "\
SELECT a.pid,
       COALESCE(a.application_name, ''), COALESCE(a.usename::text, ''), COALESCE(a.state, ''),
       extract(epoch FROM pg_catalog.now() - a.xact_start)::float8,
       extract(epoch FROM a.xact_start)::float8,
       left(regexp_replace(COALESCE(a.query, ''), '\\s+', ' ', 'g'), 200),
       COALESCE(a.backend_type, ''),
       bool_or(NOT l.granted),
       string_agg(DISTINCT l.mode || ' on ' || l.relation::regclass::text, ', ')
  FROM pg_catalog.pg_locks l
  JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid
 WHERE l.relation = ANY($1)
   AND l.database = (SELECT oid FROM pg_catalog.pg_database WHERE datname = pg_catalog.current_database())
   AND l.pid <> pg_catalog.pg_backend_pid() AND l.pid <> $2
   AND a.xact_start < pg_catalog.now() - $3::float8 * interval '1 second'
 GROUP BY 1, 2, 3, 4, 5, 6, 7, 8
 ORDER BY a.xact_start, a.pid";

/// The fallback when a wait ended before it could be sampled: the sessions that lock
/// `relations` now in a transaction that was already open `secs` ago (so it was open during
/// the wait, and every lock on a table conflicts with ACCESS EXCLUSIVE). `waiter` is left out.
pub async fn holding_since(
    client: &Client,
    relations: &[Oid],
    waiter: i32,
    secs: f64,
) -> Result<Vec<Blocker>> {
    let rows = client
        .query(HOLDING, &[&relations, &waiter, &secs])
        .await
        .ctx("looking up the sessions holding locks")?;
    rows.iter().map(blocker_of).collect()
}

fn blocker_of(r: &tokio_postgres::Row) -> Result<Blocker> {
    let what = &"reading the blocking sessions";
    let pid: i32 = r.col(0, what)?;
    let backend_type: String = r.col(7, what)?;
    let query: String = r.col(6, what)?;
    Ok(Blocker {
        pid,
        application_name: r.col(1, what)?,
        usename: r.col(2, what)?,
        state: r.col(3, what)?,
        xact_age: r.col(4, what)?,
        xact_start: r.col(5, what)?,
        kind: classify(pid, &backend_type, &query),
        query,
        waiting: r.col::<Option<bool>>(8, what)?.unwrap_or(false),
        locks: r.col::<Option<String>>(9, what)?.unwrap_or_default(),
        backend_type,
    })
}

/// The base of the tool's `application_name` as `client` has it (`pg-hotswap/control` ->
/// `pg-hotswap`): every session of a run shares it.
pub async fn tool_name(client: &Client) -> Result<String> {
    let app: String = client
        .query_one("SELECT pg_catalog.current_setting('application_name')", &[])
        .await
        .ctx("reading application_name")?
        .col(0, &"reading application_name")?;
    Ok(app.split('/').next().unwrap_or_default().to_string())
}

/// Whether `application_name` is one of the tool's sessions (`tool` or `tool/<role>`).
pub fn is_tool_session(application_name: &str, tool: &str) -> bool {
    !tool.is_empty()
        && (application_name == tool
            || application_name
                .strip_prefix(tool)
                .is_some_and(|rest| rest.starts_with('/')))
}

/// Why `b` may not be terminated under `--terminate-blockers-after older_than`, or None when
/// it may. `tool` is the tool's application_name base ([`tool_name`]).
pub fn spared(b: &Blocker, older_than: Duration, tool: &str) -> Option<String> {
    match &b.kind {
        Kind::Client => {}
        Kind::WraparoundAutovacuum => {
            return Some("an anti-wraparound autovacuum is never terminated".into())
        }
        Kind::Autovacuum => {
            return Some("autovacuum gives way by itself after deadlock_timeout".into())
        }
        Kind::PreparedTransaction => {
            return Some("a prepared transaction has no session to terminate".into())
        }
        Kind::Hidden => {
            return Some(
                "this role cannot see how old its transaction is (grant it pg_read_all_stats)"
                    .into(),
            )
        }
        Kind::Other(t) => return Some(format!("only client backends are terminated, not a {t}")),
    }
    if is_tool_session(&b.application_name, tool) {
        return Some("it is one of pg-hotswap's own sessions".into());
    }
    match b.xact_age {
        Some(age) if age >= older_than.as_secs_f64() => None,
        Some(age) => Some(format!(
            "its transaction is {age:.1} s old, younger than --terminate-blockers-after {:.1} s",
            older_than.as_secs_f64()
        )),
        None => Some("it has no transaction open".into()),
    }
}

/// What [`terminate`] came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Terminated {
    /// The server signalled it and it exited (or was about to, after the wait).
    Yes,
    /// It was gone already, or in another transaction, or no longer qualified.
    NotAnyMore,
    /// This role may not signal it (needs pg_signal_backend, or to be the same role; a
    /// superuser's session only a superuser may end): the message says so.
    NotAllowed(String),
}

const TERMINATE: &str = "\
SELECT pg_catalog.pg_terminate_backend(a.pid, 1000)
  FROM pg_catalog.pg_stat_activity a
 WHERE a.pid = $1
   AND a.backend_type = 'client backend'
   AND extract(epoch FROM a.xact_start)::float8 = $2
   AND a.xact_start < pg_catalog.now() - $3::float8 * interval '1 second'
   AND COALESCE(a.application_name, '') <> $4
   AND left(COALESCE(a.application_name, ''), length($4) + 1) <> $4 || '/'";

/// Terminates `b` if it still qualifies (see the module header; the conditions are checked
/// again in the same statement that terminates it, so a pid reused or a new transaction is
/// never hit). Waits up to a second for it to exit. Only a `client backend` is ever passed
/// to `pg_terminate_backend`.
pub async fn terminate(
    client: &Client,
    b: &Blocker,
    older_than: Duration,
    tool: &str,
) -> Result<Terminated> {
    if spared(b, older_than, tool).is_some() {
        return Ok(Terminated::NotAnyMore);
    }
    let Some(start) = b.xact_start else {
        return Ok(Terminated::NotAnyMore);
    };
    let r = client
        .query(
            TERMINATE,
            &[&b.pid, &start, &older_than.as_secs_f64(), &tool],
        )
        .await;
    match r {
        Ok(rows) => {
            let mut done = false;
            for row in &rows {
                done |= row
                    .col::<Option<bool>>(0, &"terminating a blocker")?
                    .unwrap_or(false);
            }
            Ok(if done {
                Terminated::Yes
            } else {
                Terminated::NotAnyMore
            })
        }
        Err(e) if e.code() == Some(&SqlState::INSUFFICIENT_PRIVILEGE) => {
            let msg = e
                .as_db_error()
                .map(|d| d.message().to_string())
                .unwrap_or_else(|| e.to_string());
            Ok(Terminated::NotAllowed(msg))
        }
        Err(e) => Err(crate::error::Error::db("terminating a blocker", e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(pid: i32, app: &str, age: Option<f64>) -> Blocker {
        Blocker {
            pid,
            application_name: app.into(),
            usename: "app".into(),
            state: "idle in transaction".into(),
            xact_age: age,
            xact_start: age.map(|a| 1_000.0 - a),
            query: "SELECT 1".into(),
            waiting: false,
            locks: "AccessShareLock on t".into(),
            backend_type: "client backend".into(),
            kind: Kind::Client,
        }
    }

    #[test]
    fn kinds_are_told_apart() {
        assert_eq!(classify(7, "client backend", "SELECT 1"), Kind::Client);
        assert_eq!(
            classify(
                7,
                "autovacuum worker",
                "autovacuum: VACUUM public.t (to prevent wraparound)"
            ),
            Kind::WraparoundAutovacuum
        );
        assert_eq!(
            classify(
                7,
                "autovacuum worker",
                "autovacuum: VACUUM ANALYZE public.t"
            ),
            Kind::Autovacuum
        );
        assert_eq!(classify(0, "", ""), Kind::PreparedTransaction);
        assert_eq!(classify(7, "", "<insufficient privilege>"), Kind::Hidden);
        assert_eq!(
            classify(7, "walsender", "START_REPLICATION"),
            Kind::Other("walsender".into())
        );
    }

    #[test]
    fn the_tools_own_sessions_are_recognised() {
        assert!(is_tool_session("pg-hotswap", "pg-hotswap"));
        assert!(is_tool_session("pg-hotswap/copy-2", "pg-hotswap"));
        assert!(!is_tool_session("pg-hotswapper", "pg-hotswap"));
        assert!(!is_tool_session("psql", "pg-hotswap"));
        assert!(!is_tool_session("", ""));
    }

    #[test]
    fn only_old_client_transactions_of_others_may_be_terminated() {
        let two = Duration::from_secs(2);
        assert_eq!(
            spared(&client(5, "psql", Some(3.0)), two, "pg-hotswap"),
            None
        );
        assert!(spared(&client(5, "psql", Some(1.0)), two, "pg-hotswap")
            .unwrap()
            .contains("younger"));
        assert!(spared(&client(5, "psql", None), two, "pg-hotswap").is_some());
        assert!(spared(
            &client(5, "pg-hotswap/copy-1", Some(9.0)),
            two,
            "pg-hotswap"
        )
        .unwrap()
        .contains("own"));
        let mut av = client(5, "", Some(60.0));
        av.backend_type = "autovacuum worker".into();
        av.kind = Kind::WraparoundAutovacuum;
        assert!(spared(&av, two, "pg-hotswap").is_some());
        av.kind = Kind::Autovacuum;
        assert!(spared(&av, two, "pg-hotswap").is_some());
        let mut hidden = client(5, "psql", None);
        hidden.kind = Kind::Hidden;
        assert!(spared(&hidden, two, "pg-hotswap")
            .unwrap()
            .contains("pg_read_all_stats"));
        let mut ws = client(5, "walreceiver", Some(60.0));
        ws.kind = Kind::Other("walsender".into());
        assert!(spared(&ws, two, "pg-hotswap").is_some());
    }

    #[test]
    fn a_blocker_is_named_with_what_to_do() {
        let b = client(42, "report job", Some(12.34));
        let d = b.describe();
        assert!(d.contains("pid 42") && d.contains("\"report job\"") && d.contains("12.3 s"));
        assert!(d.contains("holds AccessShareLock on t"));
        assert!(b.advice().is_none());
        let mut av = b.clone();
        av.kind = Kind::WraparoundAutovacuum;
        assert!(av.describe().contains("to prevent wraparound"));
        assert!(av.advice().unwrap().contains("VACUUM (FREEZE)"));
    }
}
