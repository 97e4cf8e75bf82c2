//! Preflight checks shared by `plan` and `run` (issue 6): each looks at one way the server's
//! current state can hurt a rewrite, and gives a verdict (ok / warning / blocking) with what to do.
//!
//! `run` calls [`for_run`] right after `preflight::inspect` and refuses (exit 3, nothing created)
//! on a blocking verdict; warnings are printed and recorded. `plan` prints every check. The checks
//! only read. Free disk space is not knowable from SQL; only `plan --df-on-server`, for a
//! superuser, runs `df` on the server through `COPY ... FROM PROGRAM` into a temporary table in a
//! transaction that is rolled back. It is opt-in because running a program on a production
//! server is not something a schema tool should do unasked; `run` never does it.
//!
//! A check that cannot be made (a catalog view this role may not read, an old server) yields a
//! warning saying so; it never fails the command.

use crate::conn::{self, ConnSpec};
use crate::error::{DbContext, Error, Result, RowExt};
use crate::ident::{literal, Ident, QualifiedName};
use crate::preflight::Source;
use crate::ui;
use serde::Serialize;
use tokio_postgres::types::Oid;
use tokio_postgres::Client;

/// How bad a finding is. Ordered: the worst verdict of a list is its `max`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Ok,
    Warning,
    Blocking,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::Warning => "warning",
            Verdict::Blocking => "blocking",
        }
    }
}

/// One check's result. `name` is a stable identifier (documented in docs/plan.md).
#[derive(Clone, Debug, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub verdict: Verdict,
    pub summary: String,
    /// One line per finding (a session, a slot, a setting...).
    pub details: Vec<String>,
    /// What to do about it (None when there is nothing to do).
    pub action: Option<String>,
    /// Session pids the check is about (sessions, vacuum).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pids: Vec<i32>,
}

impl Check {
    fn new(name: &'static str, verdict: Verdict, summary: impl Into<String>) -> Check {
        Check {
            name,
            verdict,
            summary: summary.into(),
            details: Vec::new(),
            action: None,
            pids: Vec::new(),
        }
    }

    fn action(mut self, a: impl Into<String>) -> Check {
        self.action = Some(a.into());
        self
    }

    /// A check that could not be made: a warning that says why.
    fn unknown(name: &'static str, e: &Error) -> Check {
        Check::new(
            name,
            Verdict::Warning,
            format!("could not be checked: {}", e.message()),
        )
    }

    /// `name: summary` and the action, for messages.
    pub fn line(&self) -> String {
        let mut s = format!("{}: {}", self.name, self.summary);
        if let Some(a) = &self.action {
            s.push_str(&format!(" — {a}"));
        }
        s
    }
}

/// Disk the run needs, as estimated by the caller.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct DiskNeed {
    /// The new table, its indexes and the change log, in the table's tablespace.
    pub data_bytes: u64,
    /// WAL the run keeps on disk at its peak, in `pg_wal`.
    pub wal_bytes: u64,
}

/// Free space the server's filesystems report (only knowable for superusers; see the header).
#[derive(Clone, Debug, Serialize)]
pub struct FreeSpace {
    pub path: String,
    pub filesystem: String,
    pub mount: String,
    pub available_bytes: u64,
}

/// What the checks look at.
pub struct CheckInput<'a> {
    pub table_oid: Oid,
    pub table: &'a QualifiedName,
    /// The inspected source, when preflight got that far (privileges on dependent objects).
    pub source: Option<&'a Source>,
    pub jobs: usize,
    pub state_schema: &'a str,
    pub disk: DiskNeed,
    /// For the pooler check (the port we connect to, and a second session).
    pub conn: &'a ConnSpec,
}

/// Runs every check. Never fails: a check that cannot be made is a warning.
pub async fn run_all(client: &Client, input: &CheckInput<'_>) -> (Vec<Check>, Vec<FreeSpace>) {
    let mut out = Vec::new();
    out.push(
        sessions(client, input.table_oid)
            .await
            .unwrap_or_else(|e| Check::unknown("sessions", &e)),
    );
    out.push(
        replication_slots(client)
            .await
            .unwrap_or_else(|e| Check::unknown("replication_slots", &e)),
    );
    // --- publications (issue 13, input 7): src/publications.rs
    out.push(
        crate::publications::check(client, input.state_schema, input.table.schema.as_str())
            .await
            .unwrap_or_else(|e| Check::unknown("publications", &e)),
    );
    // --- end publications
    out.push(
        pooler(client, input.conn)
            .await
            .unwrap_or_else(|e| Check::unknown("pooler", &e)),
    );
    out.push(
        privileges(client, input)
            .await
            .unwrap_or_else(|e| Check::unknown("privileges", &e)),
    );
    out.push(
        connections(client, input.jobs)
            .await
            .unwrap_or_else(|e| Check::unknown("connections", &e)),
    );
    out.push(
        timeouts(client)
            .await
            .unwrap_or_else(|e| Check::unknown("timeouts", &e)),
    );
    out.push(
        vacuum(client, input.table_oid)
            .await
            .unwrap_or_else(|e| Check::unknown("wraparound_vacuum", &e)),
    );
    let (disk, free) = disk_check(client, input.table_oid, input.disk, false).await;
    out.push(disk);
    (out, free)
}

/// The disk check alone (`plan` makes it again once the sizes are measured).
pub async fn disk_check(
    client: &Client,
    table: Oid,
    need: DiskNeed,
    df_on_server: bool,
) -> (Check, Vec<FreeSpace>) {
    match disk(client, table, need, df_on_server).await {
        Ok(x) => x,
        Err(e) => (Check::unknown("disk", &e), Vec::new()),
    }
}

/// The worst verdict of `checks`.
pub fn worst(checks: &[Check]) -> Verdict {
    checks
        .iter()
        .map(|c| c.verdict)
        .max()
        .unwrap_or(Verdict::Ok)
}

/// The refusal for blocking checks (exit 3), or the warnings to print.
pub fn gate(checks: &[Check], table: &QualifiedName) -> Result<Vec<String>> {
    let blocking: Vec<String> = checks
        .iter()
        .filter(|c| c.verdict == Verdict::Blocking)
        .map(|c| c.line())
        .collect();
    if !blocking.is_empty() {
        return Err(Error::refused(format!(
            "cannot rewrite table {} now: {}",
            table.human(),
            blocking.join("; ")
        ))
        .with_state("nothing was changed")
        .with_next(
            "fix what the checks name and run again (`pg-hotswap plan` shows every check)",
        ));
    }
    Ok(checks
        .iter()
        .filter(|c| c.verdict == Verdict::Warning)
        .map(|c| c.line())
        .collect())
}

/// The checks as `run` uses them: the disk need is the source's size (the new table is about as
/// big) plus its WAL; refuses on a blocking verdict, returns the warnings.
pub async fn for_run(
    client: &Client,
    spec: &ConnSpec,
    src: &Source,
    jobs: usize,
    state_schema: &str,
) -> Result<Vec<String>> {
    let total = src.table.total_bytes.max(0) as u64;
    let wal = wal_retained(client, total).await.unwrap_or(total);
    let input = CheckInput {
        table_oid: src.table.oid,
        table: &src.table.name,
        source: Some(src),
        jobs,
        state_schema,
        disk: DiskNeed {
            data_bytes: total,
            wal_bytes: wal,
        },
        conn: spec,
    };
    let (mut checks, _) = run_all(client, &input).await;
    // Not knowing the free disk is the normal case, not news on every run: say it once as
    // information (with the need), and keep the warnings for what was found.
    checks.retain(|c| {
        let unknown_disk = c.name == "disk"
            && c.verdict == Verdict::Warning
            && c.summary.starts_with("free disk is not knowable");
        if unknown_disk {
            crate::ui::say(&format!("disk: {}", c.summary));
        }
        !unknown_disk
    });
    gate(&checks, &src.table.name)
}

/// WAL the run keeps on disk at its peak, given `generated` bytes of WAL: all of it when WAL
/// is archived or a replication slot holds it back, else at most about `max_wal_size` (checkpoints
/// recycle the rest).
pub async fn wal_retained(client: &Client, generated: u64) -> Result<u64> {
    let r = client
        .query_one(
            "SELECT pg_catalog.pg_size_bytes(pg_catalog.current_setting('max_wal_size'))::int8, \
                    pg_catalog.current_setting('archive_mode') <> 'off', \
                    EXISTS (SELECT 1 FROM pg_catalog.pg_replication_slots)",
            &[],
        )
        .await
        .ctx("reading max_wal_size")?;
    let (max_wal, archiving, slots): (i64, bool, bool) = (
        r.col(0, &"reading max_wal_size")?,
        r.col(1, &"reading max_wal_size")?,
        r.col(2, &"reading max_wal_size")?,
    );
    Ok(if archiving || slots {
        generated
    } else {
        generated.min(max_wal.max(0) as u64)
    })
}

// ---------------------------------------------------------------------------------------------

/// Sessions holding (or waiting for) locks on the table: an idle-in-transaction session or a
/// long transaction makes every lock attempt of the capture trigger and the swap time out.
async fn sessions(client: &Client, table: Oid) -> Result<Check> {
    let rows = client
        .query(
            "SELECT l.pid, string_agg(DISTINCT l.mode, ', ' ORDER BY l.mode), bool_and(l.granted), \
                    a.state, COALESCE(extract(epoch FROM now() - a.xact_start), 0)::float8, \
                    COALESCE(extract(epoch FROM now() - a.state_change), 0)::float8, \
                    COALESCE(a.usename::text, '?'), COALESCE(a.application_name, ''), \
                    left(regexp_replace(COALESCE(a.query, ''), '\\s+', ' ', 'g'), 80) \
               FROM pg_catalog.pg_locks l \
               LEFT JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid \
              WHERE l.locktype = 'relation' AND l.relation = $1 \
                AND l.database = (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database()) \
                AND l.pid <> pg_catalog.pg_backend_pid() \
                AND a.backend_type IS DISTINCT FROM 'autovacuum worker' \
              GROUP BY l.pid, a.state, a.xact_start, a.state_change, a.usename, a.application_name, a.query \
              ORDER BY a.xact_start NULLS LAST",
            &[&table],
        )
        .await
        .ctx("looking for sessions holding locks on the table")?;
    let mut check = Check::new("sessions", Verdict::Ok, "");
    let mut short = 0;
    for r in &rows {
        let pid: i32 = r.col(0, &"looking for sessions holding locks on the table")?;
        let modes: String = r.col(1, &"looking for sessions holding locks on the table")?;
        let granted: bool = r.col(2, &"looking for sessions holding locks on the table")?;
        let state: Option<String> = r.col(3, &"looking for sessions holding locks on the table")?;
        let xact_secs: f64 = r.col(4, &"looking for sessions holding locks on the table")?;
        let state_secs: f64 = r.col(5, &"looking for sessions holding locks on the table")?;
        let user: String = r.col(6, &"looking for sessions holding locks on the table")?;
        let app: String = r.col(7, &"looking for sessions holding locks on the table")?;
        let query: String = r.col(8, &"looking for sessions holding locks on the table")?;
        let idle_in_tx = state
            .as_deref()
            .is_some_and(|s| s.starts_with("idle in transaction"));
        // Application transactions come and go; a transaction open for seconds is a blocker.
        if idle_in_tx || xact_secs >= 5.0 || !granted {
            let what = if idle_in_tx {
                format!("idle in transaction for {state_secs:.0} s")
            } else if !granted {
                "waiting for a lock".to_string()
            } else {
                format!(
                    "{} in a transaction open for {xact_secs:.0} s",
                    state
                        .as_deref()
                        .unwrap_or("state unknown (needs pg_read_all_stats)")
                )
            };
            check.details.push(format!(
                "pid {pid} ({user}, {app:?}) holds {modes} on the table, {what}; last query: {query:?}"
            ));
            check.pids.push(pid);
        } else {
            short += 1;
        }
    }
    if check.pids.is_empty() {
        check.summary = if short == 0 {
            "no other session holds a lock on the table".into()
        } else {
            format!("{short} session(s) with short transactions on the table (normal traffic)")
        };
    } else {
        check.verdict = Verdict::Warning;
        check.summary = format!(
            "{} session(s) hold locks on the table in long or idle transactions (pid {})",
            check.pids.len(),
            check
                .pids
                .iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
        check.action = Some(
            "while they hold their locks, installing the capture trigger and the swap cannot get \
             theirs (each attempt waits at most --lock-timeout, then the run stops after \
             --max-lock-attempts); end them (COMMIT/ROLLBACK in the application, or \
             SELECT pg_terminate_backend(pid)) or run when they are gone"
                .into(),
        );
    }
    Ok(check)
}

/// Replication slots keep WAL from their restart point: an inactive or lagging slot makes the
/// WAL of the copy stay on disk.
async fn replication_slots(client: &Client) -> Result<Check> {
    let rows = client
        .query(
            "SELECT s.slot_name::text, s.slot_type, s.active, to_jsonb(s) ->> 'wal_status', \
                    CASE WHEN pg_catalog.pg_is_in_recovery() OR s.restart_lsn IS NULL THEN NULL \
                         ELSE pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_lsn(), s.restart_lsn)::float8 END \
               FROM pg_catalog.pg_replication_slots s ORDER BY 1",
            &[],
        )
        .await
        .ctx("reading pg_replication_slots")?;
    let mut check = Check::new("replication_slots", Verdict::Ok, "");
    let far = 1e9; // 1 GB behind
    let mut bad = 0;
    for r in &rows {
        let name: String = r.col(0, &"reading pg_replication_slots")?;
        let kind: String = r.col(1, &"reading pg_replication_slots")?;
        let active: bool = r.col(2, &"reading pg_replication_slots")?;
        let status: Option<String> = r.col(3, &"reading pg_replication_slots")?;
        let behind: Option<f64> = r.col(4, &"reading pg_replication_slots")?;
        let behind_s = behind
            .map(|b| ui::bytes(b.max(0.0) as u64))
            .unwrap_or_else(|| "?".into());
        let problem = if status.as_deref() == Some("lost") {
            Some("has lost required WAL already")
        } else if !active {
            Some("is inactive")
        } else if behind.is_some_and(|b| b > far) {
            Some("is far behind")
        } else {
            None
        };
        match problem {
            Some(p) => {
                bad += 1;
                check.details.push(format!(
                    "{kind} slot {name:?} {p}: it keeps {behind_s} of WAL, and will keep all WAL the rewrite writes"
                ));
            }
            None => check
                .details
                .push(format!("{kind} slot {name:?} is active, {behind_s} behind")),
        }
    }
    if rows.is_empty() {
        check.summary = "no replication slots".into();
    } else if bad == 0 {
        check.summary = format!("{} active replication slot(s), none far behind", rows.len());
    } else {
        check.verdict = Verdict::Warning;
        check.summary = format!(
            "{bad} replication slot(s) inactive or far behind: they keep every byte of WAL the \
             rewrite writes (about the size of the new table and its indexes) on the server's disk"
        );
        check.action = Some(
            "make sure the consumer catches up during the run, or drop a slot nobody uses \
             (SELECT pg_drop_replication_slot(name)); check the disk for pg_wal"
                .into(),
        );
    }
    Ok(check)
}

/// What the pooler probe saw (kept apart from the database so the decision is unit-tested).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolerProbe {
    pub connected_port: u16,
    pub server_port: i32,
    /// This session's backend pid before and after another client began a transaction.
    pub pid_before: i32,
    pub pid_after: i32,
    /// The backend pid the other client's transaction ran on (None: it could not begin one).
    pub other_pid: Option<i32>,
}

/// The heuristic (docs/plan.md): a direct connection keeps one backend for the whole session.
/// A pooler in transaction (or statement) mode hands the backend back after each transaction:
/// then our pid changes between two statements, or a second client that begins a transaction
/// gets the backend we just used (pgbouncer reuses the most recently released server connection
/// first). A port other than the server's own says something sits in between (a pooler in any
/// mode, a proxy, or port forwarding), which alone is only a warning.
pub fn pooler_verdict(p: &PoolerProbe) -> (Verdict, String) {
    let shared = p.pid_before != p.pid_after || p.other_pid == Some(p.pid_before);
    if p.other_pid.is_none() {
        return (
            Verdict::Blocking,
            "a second client could not begin a transaction: a pooler in statement mode is in front of the server".into(),
        );
    }
    if shared {
        return (
            Verdict::Blocking,
            format!(
                "sessions do not keep their backend between transactions (backend pid {} then {}, another client got {}): \
                 a pooler in transaction mode is in front of the server",
                p.pid_before,
                p.pid_after,
                p.other_pid.unwrap_or_default()
            ),
        );
    }
    if i32::from(p.connected_port) != p.server_port {
        return (
            Verdict::Warning,
            format!(
                "connected to port {}, but the server listens on {}: something is in between \
                 (a pooler, a proxy or port forwarding); sessions kept their backend, so it is not \
                 in transaction mode",
                p.connected_port, p.server_port
            ),
        );
    }
    (
        Verdict::Ok,
        format!(
            "direct connection to the server (port {}); sessions keep their backend",
            p.server_port
        ),
    )
}

async fn pooler(client: &Client, spec: &ConnSpec) -> Result<Check> {
    let connected_port = spec.config.get_ports().first().copied().unwrap_or(5432);
    let r = client
        .query_one(
            "SELECT pg_catalog.pg_backend_pid(), pg_catalog.current_setting('port')::int",
            &[],
        )
        .await
        .ctx("reading the server's port")?;
    let (pid_before, server_port): (i32, i32) = (
        r.col(0, &"reading the server's port")?,
        r.col(1, &"reading the server's port")?,
    );
    let other = conn::connect(spec, "preflight-pooler").await?;
    let other_pid = match other
        .batch_execute("BEGIN; SELECT pg_catalog.pg_backend_pid()")
        .await
    {
        Ok(()) => Some(
            other
                .query_one("SELECT pg_catalog.pg_backend_pid()", &[])
                .await
                .ctx("probing for a pooler")?
                .col::<i32>(0, &"probing for a pooler")?,
        ),
        Err(_) => None,
    };
    let pid_after: i32 = client
        .query_one("SELECT pg_catalog.pg_backend_pid()", &[])
        .await
        .ctx("probing for a pooler")?
        .col(0, &"probing for a pooler")?;
    let _ = other.batch_execute("ROLLBACK").await;
    drop(other);
    let (verdict, summary) = pooler_verdict(&PoolerProbe {
        connected_port,
        server_port,
        pid_before,
        pid_after,
        other_pid,
    });
    let mut check = Check::new("pooler", verdict, summary);
    if verdict == Verdict::Blocking {
        check = check.action(
            "connect pg-hotswap to the server directly (or through a session-mode pool): it relies \
             on session state (lock_timeout, the per-table advisory lock, the replay batch table)",
        );
    }
    Ok(check)
}

/// A privilege the run needs and the role lacks: what is missing (naming the privilege and the
/// object) and the statement that grants it, with who may run it.
struct Missing {
    what: String,
    fix: String,
}

/// Every privilege a run uses, checked before anything is created (issue 9: say exactly which
/// privilege is missing): owning the table (CREATE TRIGGER, the renames of the swap); CREATE on
/// its schema (the shadow); CREATE on the database, or USAGE and CREATE on an existing state
/// schema and SELECT/INSERT/UPDATE/DELETE on its tables; TEMPORARY on the database (replay keeps
/// each batch of keys in a temporary table); CREATE on the tablespaces of the table and its
/// indexes; REFERENCES on the tables its foreign keys point at (they are created again on the
/// shadow); owning what the swap alters (dependent views, referencing tables, publications).
/// Each missing one is named with the GRANT that fixes it.
async fn privileges(client: &Client, input: &CheckInput<'_>) -> Result<Check> {
    let r = client
        .query_one(
            "SELECT r.rolsuper, pg_catalog.pg_has_role(current_user, c.relowner, 'MEMBER'), current_user::text, \
                    pg_catalog.pg_get_userbyid(c.relowner)::text, \
                    pg_catalog.has_schema_privilege(c.relnamespace, 'CREATE'), \
                    pg_catalog.has_database_privilege(current_database(), 'CREATE'), \
                    (SELECT pg_catalog.has_schema_privilege(n.oid, 'CREATE') AND pg_catalog.has_schema_privilege(n.oid, 'USAGE') \
                       FROM pg_catalog.pg_namespace n WHERE n.nspname = $2), \
                    pg_catalog.pg_has_role(current_user, 'pg_read_all_stats', 'MEMBER'), \
                    pg_catalog.has_database_privilege(current_database(), 'TEMPORARY'), \
                    current_database()::text \
               FROM pg_catalog.pg_roles r, pg_catalog.pg_class c \
              WHERE r.rolname = current_user AND c.oid = $1",
            &[&input.table_oid, &input.state_schema],
        )
        .await
        .ctx("checking privileges")?;
    let (superuser, owner, me, table_owner): (bool, bool, String, String) = (
        r.col(0, &"checking privileges")?,
        r.col(1, &"checking privileges")?,
        r.col(2, &"checking privileges")?,
        r.col(3, &"checking privileges")?,
    );
    let (schema_create, db_create, state_ok, read_stats, temp): (
        bool,
        bool,
        Option<bool>,
        bool,
        bool,
    ) = (
        r.col(4, &"checking privileges")?,
        r.col(5, &"checking privileges")?,
        r.col(6, &"checking privileges")?,
        r.col(7, &"checking privileges")?,
        r.col(8, &"checking privileges")?,
    );
    let db = Ident::new(r.col::<String>(9, &"checking privileges")?);
    let me_q = Ident::new(me.clone());
    let state = Ident::new(input.state_schema);
    let table_schema = &input.table.schema;
    let mut check = Check::new("privileges", Verdict::Ok, "");
    let mut missing: Vec<Missing> = Vec::new();
    if superuser {
        check.details.push(format!("{me:?} is a superuser"));
    } else {
        if owner {
            check.details.push(format!(
                "{me:?} owns the table (or is a member of its owner {table_owner:?}): needed for \
                 CREATE TRIGGER and for renaming it in the swap"
            ));
        } else {
            missing.push(Missing {
                what: format!(
                    "{me:?} is neither the owner of table {} ({table_owner:?}), nor a member of the owner role, \
                     nor a superuser: the capture trigger and the swap need the owner's privileges",
                    input.table.human()
                ),
                fix: format!(
                    "connect as {table_owner:?}, or GRANT {} TO {me_q} (as {table_owner:?} or a superuser)",
                    Ident::new(table_owner.clone())
                ),
            });
        }
        if !schema_create {
            missing.push(Missing {
                what: format!(
                    "no CREATE on schema {:?}: needed to create the shadow table next to the table",
                    table_schema.as_str()
                ),
                fix: format!(
                    "GRANT CREATE ON SCHEMA {table_schema} TO {me_q} (as the schema's owner or a superuser)"
                ),
            });
        }
        match state_ok {
            Some(true) => {
                check.details.push(format!(
                    "the state schema {:?} exists and is usable",
                    input.state_schema
                ));
                missing.extend(state_tables(client, input.state_schema, &me_q).await?);
            }
            Some(false) => missing.push(Missing {
                what: format!(
                    "the state schema {:?} exists but {me:?} lacks USAGE or CREATE on it: the change log \
                     and its functions are created there",
                    input.state_schema
                ),
                fix: format!(
                    "GRANT USAGE, CREATE ON SCHEMA {state} TO {me_q} (as its owner or a superuser), \
                     or pass --state-schema naming another schema"
                ),
            }),
            None if db_create => check.details.push(format!(
                "CREATE on the database: the run can create its state schema {:?}",
                input.state_schema
            )),
            None => missing.push(Missing {
                what: format!(
                    "no CREATE on the database {:?}: the run needs it to create its state schema {:?}",
                    db.as_str(),
                    input.state_schema
                ),
                fix: format!(
                    "GRANT CREATE ON DATABASE {db} TO {me_q} (as a superuser or the database's owner), \
                     or have someone who may create it: CREATE SCHEMA {state} AUTHORIZATION {me_q}, \
                     or pass --state-schema naming a schema where you have USAGE and CREATE"
                ),
            }),
        }
        if !temp {
            missing.push(Missing {
                what: format!(
                    "no TEMPORARY on the database {:?}: replay keeps each batch of keys in a temporary table",
                    db.as_str()
                ),
                fix: format!(
                    "GRANT TEMPORARY ON DATABASE {db} TO {me_q} (as a superuser or the database's owner)"
                ),
            });
        }
        if let Some(src) = input.source {
            missing.extend(tablespaces(client, src, &me_q).await?);
            missing.extend(referenced_tables(client, src, &me_q).await?);
            missing.extend(dependent_owners(client, src, &me).await?);
        }
        if !read_stats {
            check.details.push(
                "not a member of pg_read_all_stats: other sessions' states and queries are hidden, \
                 so the session checks say less"
                    .into(),
            );
        }
    }
    if missing.is_empty() {
        check.summary = if superuser {
            "superuser: every step is allowed".into()
        } else {
            "owner of the table, with what the shadow and the state schema need".into()
        };
    } else {
        check.verdict = Verdict::Blocking;
        check.summary = missing
            .iter()
            .map(|m| m.what.as_str())
            .collect::<Vec<_>>()
            .join("; ");
        check.details.extend(missing.iter().map(|m| m.what.clone()));
        check.action = Some(format!(
            "{} (docs/privileges.md lists what a run needs)",
            missing
                .iter()
                .map(|m| m.fix.as_str())
                .collect::<Vec<_>>()
                .join("; ")
        ));
    }
    Ok(check)
}

/// The state tables that exist in a usable state schema and that `me` cannot read and write.
async fn state_tables(client: &Client, schema: &str, me: &Ident) -> Result<Vec<Missing>> {
    let rows = client
        .query(
            "SELECT pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(c.relname), \
                    pg_catalog.array_to_string(pg_catalog.array_remove(ARRAY[ \
                      CASE WHEN NOT pg_catalog.has_table_privilege(c.oid, 'SELECT') THEN 'SELECT' END, \
                      CASE WHEN NOT pg_catalog.has_table_privilege(c.oid, 'INSERT') THEN 'INSERT' END, \
                      CASE WHEN NOT pg_catalog.has_table_privilege(c.oid, 'UPDATE') THEN 'UPDATE' END, \
                      CASE WHEN NOT pg_catalog.has_table_privilege(c.oid, 'DELETE') THEN 'DELETE' END], NULL), ', ') \
               FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
              WHERE n.nspname = $1 AND c.relname IN ('runs', 'chunks', 'events', 'objects') \
              ORDER BY c.relname",
            &[&schema],
        )
        .await
        .ctx("checking privileges on the state tables")?;
    let mut out = Vec::new();
    let mut names = Vec::new();
    for r in rows {
        let (name, lacking): (String, String) = (
            r.col(0, &"checking privileges on the state tables")?,
            r.col(1, &"checking privileges on the state tables")?,
        );
        if !lacking.is_empty() {
            out.push(format!("{lacking} on {name}"));
            names.push(name);
        }
    }
    if out.is_empty() {
        return Ok(Vec::new());
    }
    Ok(vec![Missing {
        what: format!(
            "the state tables of schema {schema:?} are not writable for {:?}: no {}",
            me.as_str(),
            out.join(", no ")
        ),
        fix: format!(
            "GRANT SELECT, INSERT, UPDATE, DELETE ON {} TO {me} (as their owner or a superuser), \
             or pass --state-schema naming a schema of your own",
            names.join(", ")
        ),
    }])
}

/// Tablespaces the shadow and its indexes are created in, where `me` lacks CREATE.
async fn tablespaces(client: &Client, src: &Source, me: &Ident) -> Result<Vec<Missing>> {
    let mut names: Vec<String> = src
        .table
        .tablespace
        .iter()
        .chain(src.indexes.iter().filter_map(|i| i.tablespace.as_ref()))
        .map(|t| t.as_str().to_string())
        .collect();
    names.sort();
    names.dedup();
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let rows = client
        .query(
            "SELECT t.spcname::text FROM pg_catalog.pg_tablespace t \
              WHERE t.spcname = ANY($1) AND NOT pg_catalog.has_tablespace_privilege(t.oid, 'CREATE')",
            &[&names],
        )
        .await
        .ctx("checking privileges on tablespaces")?;
    rows
        .iter()
        .map(|r| {
            let ts = Ident::new(r.col::<String>(0, &"checking privileges on tablespaces")?);
            Ok(Missing {
                what: format!(
                    "no CREATE on tablespace {:?}, where the table or one of its indexes lives and the new one is created",
                    ts.as_str()
                ),
                fix: format!("GRANT CREATE ON TABLESPACE {ts} TO {me} (as its owner or a superuser)"),
            })
        })
        .collect()
}

/// Tables the source's foreign keys point at, where `me` lacks REFERENCES (the keys are created
/// again on the shadow).
async fn referenced_tables(client: &Client, src: &Source, me: &Ident) -> Result<Vec<Missing>> {
    let oids: Vec<Oid> = src
        .constraints
        .iter()
        .filter(|c| c.kind == "f")
        .map(|c| c.references)
        .collect();
    if oids.is_empty() {
        return Ok(Vec::new());
    }
    let rows = client
        .query(
            "SELECT pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(c.relname) \
               FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
              WHERE c.oid = ANY($1) AND NOT pg_catalog.has_table_privilege(c.oid, 'REFERENCES')",
            &[&oids],
        )
        .await
        .ctx("checking REFERENCES on the tables foreign keys point at")?;
    rows
        .iter()
        .map(|r| {
            let t: String = r.col(0, &"checking REFERENCES on the tables foreign keys point at")?;
            Ok(Missing {
                what: format!(
                    "no REFERENCES on {t}, which a foreign key of the table points at (it is created again on the new table)"
                ),
                fix: format!("GRANT REFERENCES ON {t} TO {me} (as its owner or a superuser)"),
            })
        })
        .collect()
}

/// Objects the swap alters that `me` must own: tables whose foreign keys point at the table,
/// dependent views (re-created), publications (membership moved).
async fn dependent_owners(client: &Client, src: &Source, me: &str) -> Result<Vec<Missing>> {
    let mut oids: Vec<Oid> = src.incoming.iter().map(|f| f.table_oid).collect();
    oids.extend(src.views.iter().map(|v| v.oid));
    let mut missing = Vec::new();
    if !oids.is_empty() {
        let rows = client
            .query(
                "SELECT c.oid::regclass::text FROM pg_catalog.pg_class c \
                  WHERE c.oid = ANY($1) AND NOT pg_catalog.pg_has_role(current_user, c.relowner, 'MEMBER')",
                &[&oids],
            )
            .await
            .ctx("checking ownership of dependent objects")?;
        for r in rows {
            let name: String = r.col(0, &"checking ownership of dependent objects")?;
            missing.push(Missing {
                what: format!(
                    "{me:?} does not own {name} (a view over the table or a table whose foreign key points at it), \
                     which the swap alters"
                ),
                fix: format!(
                    "connect as the owner of {name} if it is the table's owner too, or ALTER TABLE {name} OWNER TO {} \
                     (views: ALTER VIEW), as its owner or a superuser",
                    Ident::new(me)
                ),
            });
        }
    }
    let pubs: Vec<String> = src
        .publications
        .iter()
        .map(|p| p.name.as_str().to_string())
        .collect();
    if !pubs.is_empty() {
        let rows = client
            .query(
                "SELECT p.pubname::text FROM pg_catalog.pg_publication p \
                  WHERE p.pubname = ANY($1) AND NOT pg_catalog.pg_has_role(current_user, p.pubowner, 'MEMBER')",
                &[&pubs],
            )
            .await
            .ctx("checking ownership of publications")?;
        for r in rows {
            let publication =
                Ident::new(r.col::<String>(0, &"checking ownership of publications")?);
            missing.push(Missing {
                what: format!(
                    "{me:?} does not own publication {:?}, whose membership the swap moves to the new table",
                    publication.as_str()
                ),
                fix: format!(
                    "ALTER PUBLICATION {publication} OWNER TO {} (as its owner or a superuser)",
                    Ident::new(me)
                ),
            });
        }
    }
    Ok(missing)
}

/// Connection limits as read from the server (kept apart so the arithmetic is unit-tested).
#[derive(Clone, Copy, Debug)]
pub struct ConnLimits {
    pub max_connections: i64,
    /// superuser_reserved_connections (+ reserved_connections on 16+), unusable by non-superusers.
    pub reserved: i64,
    pub in_use: i64,
    pub superuser: bool,
    /// `CONNECTION LIMIT` of the database and its sessions (-1: none). Not applied to superusers.
    pub db_limit: i64,
    pub db_in_use: i64,
    pub role_limit: i64,
    pub role_in_use: i64,
}

/// New sessions a run opens at its peak: two per copy job (the control session already exists).
pub fn sessions_needed(jobs: usize) -> i64 {
    2 * jobs as i64 + 1
}

/// (verdict, free, summary): blocking when the run's sessions do not fit, warning when they fit
/// but leave the application fewer than `headroom` connections.
pub fn connections_verdict(l: &ConnLimits, jobs: usize) -> (Verdict, i64, String) {
    let need = sessions_needed(jobs);
    let mut free = vec![(
        "server",
        l.max_connections - l.in_use - if l.superuser { 0 } else { l.reserved },
    )];
    if !l.superuser && l.db_limit >= 0 {
        free.push(("database", l.db_limit - l.db_in_use));
    }
    if !l.superuser && l.role_limit >= 0 {
        free.push(("role", l.role_limit - l.role_in_use));
    }
    let (which, least) = free
        .iter()
        .copied()
        .min_by_key(|(_, f)| *f)
        .expect("server limit");
    let headroom = (l.max_connections / 20).max(3);
    let text = format!(
        "--jobs {jobs} opens up to {need} more sessions; {least} left under the {which} limit \
         (max_connections {}, {} in use, {} reserved for superusers)",
        l.max_connections, l.in_use, l.reserved
    );
    if least < need {
        (Verdict::Blocking, least, text)
    } else if least - need < headroom && which == "server" {
        (
            Verdict::Warning,
            least,
            format!("{text}; that leaves the application fewer than {headroom}"),
        )
    } else {
        (Verdict::Ok, least, text)
    }
}

async fn connections(client: &Client, jobs: usize) -> Result<Check> {
    let r = client
        .query_one(
            "SELECT pg_catalog.current_setting('max_connections')::int8, \
                    pg_catalog.current_setting('superuser_reserved_connections')::int8 \
                      + COALESCE(pg_catalog.current_setting('reserved_connections', true)::int8, 0), \
                    (SELECT count(*) FROM pg_catalog.pg_stat_activity WHERE backend_type = 'client backend'), \
                    r.rolsuper, d.datconnlimit::int8, \
                    (SELECT count(*) FROM pg_catalog.pg_stat_activity WHERE datid = d.oid AND backend_type = 'client backend'), \
                    r.rolconnlimit::int8, \
                    (SELECT count(*) FROM pg_catalog.pg_stat_activity WHERE usesysid = r.oid AND backend_type = 'client backend') \
               FROM pg_catalog.pg_database d, pg_catalog.pg_roles r \
              WHERE d.datname = current_database() AND r.rolname = current_user",
            &[],
        )
        .await
        .ctx("reading connection limits")?;
    let l = ConnLimits {
        max_connections: r.col(0, &"reading connection limits")?,
        reserved: r.col(1, &"reading connection limits")?,
        in_use: r.col(2, &"reading connection limits")?,
        superuser: r.col(3, &"reading connection limits")?,
        db_limit: r.col(4, &"reading connection limits")?,
        db_in_use: r.col(5, &"reading connection limits")?,
        role_limit: r.col(6, &"reading connection limits")?,
        role_in_use: r.col(7, &"reading connection limits")?,
    };
    let (verdict, _, summary) = connections_verdict(&l, jobs);
    let mut check = Check::new("connections", verdict, summary);
    if verdict != Verdict::Ok {
        check.action = Some(
            "lower --jobs, or raise the limit (max_connections, ALTER DATABASE/ROLE ... CONNECTION LIMIT)"
                .into(),
        );
    }
    Ok(check)
}

/// Timeouts set for new sessions of this role in this database (`reset_val`: the value a new
/// session starts with, after role and database settings).
async fn timeouts(client: &Client) -> Result<Check> {
    let rows = client
        .query(
            "SELECT s.name::text, s.reset_val, COALESCE(s.unit, ''), \
                    (SELECT string_agg(CASE WHEN d.setdatabase <> 0 AND d.setrole <> 0 THEN 'role in database' \
                                            WHEN d.setdatabase <> 0 THEN 'database' ELSE 'role' END, ', ') \
                       FROM pg_catalog.pg_db_role_setting d, unnest(d.setconfig) AS c(cfg) \
                      WHERE d.setdatabase IN (0, (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database())) \
                        AND d.setrole IN (0, (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = current_user)) \
                        AND split_part(c.cfg, '=', 1) = s.name) \
               FROM pg_catalog.pg_settings s \
              WHERE s.name IN ('statement_timeout', 'idle_in_transaction_session_timeout', \
                               'idle_session_timeout', 'transaction_timeout') \
              ORDER BY 1",
            &[],
        )
        .await
        .ctx("reading timeout settings")?;
    let mut check = Check::new("timeouts", Verdict::Ok, "");
    let mut overridden = Vec::new();
    let mut not_overridden = Vec::new();
    for r in &rows {
        let name: String = r.col(0, &"reading timeout settings")?;
        let val: String = r.col(1, &"reading timeout settings")?;
        let unit: String = r.col(2, &"reading timeout settings")?;
        let from: Option<String> = r.col(3, &"reading timeout settings")?;
        if val == "0" {
            continue;
        }
        let from = from
            .map(|f| format!("set on the {f}"))
            .unwrap_or_else(|| "set in the server configuration".into());
        let line = format!("{name} = {} ({from})", setting_text(&val, &unit));
        // conn::connect sets these two to 0 in every tool session.
        if name == "statement_timeout" || name == "idle_in_transaction_session_timeout" {
            overridden.push(line);
        } else {
            not_overridden.push(line);
        }
    }
    for l in &overridden {
        check.details.push(format!(
            "{l}: pg-hotswap sets it to 0 in its own sessions, so it does not kill them"
        ));
    }
    for l in &not_overridden {
        check.details.push(format!(
            "{l}: pg-hotswap does not override it; its control session is idle during the copy and \
             its index builds are long transactions"
        ));
    }
    if !not_overridden.is_empty() {
        check.verdict = Verdict::Warning;
        check.summary = format!(
            "{} would close the tool's sessions",
            not_overridden.join(", ")
        );
        check.action = Some(
            "ALTER ROLE <the tool's role> SET idle_session_timeout = 0 (and transaction_timeout = 0)"
                .into(),
        );
    } else if !overridden.is_empty() {
        check.summary = format!(
            "{}; overridden in the tool's sessions",
            overridden.join(", ")
        );
    } else {
        check.summary = "no statement or idle timeouts are set".into();
    }
    Ok(check)
}

/// A time setting as people write it: `1s`, `1h`, `1500ms`.
pub fn setting_text(val: &str, unit: &str) -> String {
    let Ok(n) = val.parse::<i64>() else {
        return format!("{val}{unit}");
    };
    let ms = match unit {
        "ms" => n,
        "s" => n * 1000,
        "min" => n * 60_000,
        _ => return format!("{val}{unit}"),
    };
    for (div, u) in [(3_600_000, "h"), (60_000, "min"), (1000, "s")] {
        if ms % div == 0 {
            return format!("{}{u}", ms / div);
        }
    }
    format!("{ms}ms")
}

/// An anti-wraparound autovacuum on the table does not give way to lock requests (a normal one
/// cancels itself): the capture trigger would time out on every attempt until it finishes.
async fn vacuum(client: &Client, table: Oid) -> Result<Check> {
    let rows = client
        .query(
            "SELECT a.pid, a.backend_type, COALESCE(a.query, ''), bool_and(l.granted), \
                    p.phase, p.heap_blks_total, p.heap_blks_scanned \
               FROM pg_catalog.pg_locks l \
               JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid \
               LEFT JOIN pg_catalog.pg_stat_progress_vacuum p ON p.pid = a.pid \
              WHERE l.locktype = 'relation' AND l.relation = $1 \
                AND (a.backend_type = 'autovacuum worker' OR p.relid = $1) \
              GROUP BY 1, 2, 3, 5, 6, 7",
            &[&table],
        )
        .await
        .ctx("looking for vacuums on the table")?;
    let mut check = Check::new("wraparound_vacuum", Verdict::Ok, "");
    for r in &rows {
        let pid: i32 = r.col(0, &"looking for vacuums on the table")?;
        let kind: String = r.col(1, &"looking for vacuums on the table")?;
        let query: String = r.col(2, &"looking for vacuums on the table")?;
        let granted: bool = r.col(3, &"looking for vacuums on the table")?;
        let phase: Option<String> = r.col(4, &"looking for vacuums on the table")?;
        let progress = match (
            r.col::<Option<i64>>(5, &"looking for vacuums on the table")?,
            r.col::<Option<i64>>(6, &"looking for vacuums on the table")?,
        ) {
            (Some(t), Some(s)) if t > 0 => format!(", {:.0}% scanned", 100.0 * s as f64 / t as f64),
            _ => String::new(),
        };
        let state = if granted {
            format!(
                "running ({}{progress})",
                phase.as_deref().unwrap_or("starting")
            )
        } else {
            "waiting for its lock".to_string()
        };
        check.pids.push(pid);
        if query.contains("to prevent wraparound") {
            check.verdict = Verdict::Blocking;
            check
                .details
                .push(format!("pid {pid}: anti-wraparound autovacuum, {state}"));
        } else if kind == "autovacuum worker" {
            if query.is_empty() || query.starts_with("<insufficient") {
                check.verdict = check.verdict.max(Verdict::Warning);
                check.details.push(format!(
                    "pid {pid}: an autovacuum worker, {state}; whether it is an anti-wraparound one is hidden (needs pg_read_all_stats)"
                ));
            } else {
                check.details.push(format!(
                    "pid {pid}: a regular autovacuum, {state}; it gives way to the tool's locks"
                ));
            }
        } else {
            check.verdict = check.verdict.max(Verdict::Warning);
            check
                .details
                .push(format!("pid {pid}: a manual VACUUM, {state}"));
        }
    }
    let age = client
        .query_one(
            "SELECT pg_catalog.age(c.relfrozenxid)::int8, \
                    LEAST(pg_catalog.current_setting('autovacuum_freeze_max_age')::int8, \
                          COALESCE((SELECT split_part(o, '=', 2)::int8 FROM unnest(c.reloptions) o \
                                     WHERE o LIKE 'autovacuum_freeze_max_age=%'), 2000000000)) \
               FROM pg_catalog.pg_class c WHERE c.oid = $1",
            &[&table],
        )
        .await
        .ctx("reading the table's transaction id age")?;
    let (xid_age, max_age): (i64, i64) = (
        age.col(0, &"reading the table's transaction id age")?,
        age.col(1, &"reading the table's transaction id age")?,
    );
    let near = xid_age as f64 > 0.9 * max_age as f64;
    check.summary = match check.verdict {
        Verdict::Blocking => {
            "an anti-wraparound autovacuum is working on the table: it does not give way to locks, so the capture trigger and the swap would time out until it finishes".into()
        }
        Verdict::Warning => "a vacuum is working on the table (SHARE UPDATE EXCLUSIVE): installing the capture trigger waits for it".into(),
        Verdict::Ok if near => {
            check.verdict = Verdict::Warning;
            format!(
                "no vacuum on the table now, but its transaction id age {xid_age} is near autovacuum_freeze_max_age {max_age}: an anti-wraparound autovacuum may start during the run"
            )
        }
        Verdict::Ok => format!(
            "no vacuum on the table; transaction id age {xid_age} of {max_age} before an anti-wraparound vacuum"
        ),
    };
    if check.verdict != Verdict::Ok {
        check.action = Some(
            "wait for the vacuum to finish (pg_stat_progress_vacuum shows its progress), or VACUUM (FREEZE) the table first at a quiet time".into(),
        );
    }
    Ok(check)
}

/// Quotes a path for `sh` (single quotes, embedded ones closed and escaped).
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Parses `df -Pk` output: (filesystem, available bytes, mount) per line after the header.
pub fn parse_df(lines: &[String]) -> Vec<(String, u64, String)> {
    lines
        .iter()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() < 6 {
                return None;
            }
            let avail: u64 = f[3].parse().ok()?;
            Some((f[0].to_string(), avail * 1024, f[5..].join(" ")))
        })
        .collect()
}

/// Free disk: only knowable with superuser rights (see the module header), else said to be unknown.
async fn disk(
    client: &Client,
    table: Oid,
    need: DiskNeed,
    df_on_server: bool,
) -> Result<(Check, Vec<FreeSpace>)> {
    let r = client
        .query_one(
            "SELECT r.rolsuper, \
                    CASE WHEN r.rolsuper THEN pg_catalog.current_setting('data_directory') END, \
                    CASE WHEN r.rolsuper AND c.reltablespace <> 0 THEN pg_catalog.pg_tablespace_location(c.reltablespace) END \
               FROM pg_catalog.pg_roles r, pg_catalog.pg_class c \
              WHERE r.rolname = current_user AND c.oid = $1",
            &[&table],
        )
        .await
        .ctx("reading the data directory")?;
    let superuser: bool = r.col(0, &"reading the data directory")?;
    let need_total = need.data_bytes + need.wal_bytes;
    let need_text = format!(
        "needs about {} ({} for the new table, its indexes and the log, {} of WAL)",
        ui::bytes(need_total),
        ui::bytes(need.data_bytes),
        ui::bytes(need.wal_bytes)
    );
    if !superuser || !df_on_server {
        let check = Check::new(
            "disk",
            Verdict::Warning,
            format!(
                "free disk is not knowable from SQL{}; the run {need_text}",
                if superuser {
                    " (`plan --df-on-server` asks df on the server)"
                } else {
                    ""
                }
            ),
        )
        .action(
            "check free space on the server (df, or the provider's storage metric) before running",
        );
        return Ok((check, Vec::new()));
    }
    let data_dir: String = r.col(1, &"reading the data directory")?;
    let data_path = r
        .col::<Option<String>>(2, &"reading the data directory")?
        .unwrap_or_else(|| data_dir.clone());
    let wal_path = format!("{data_dir}/pg_wal");
    let lines = match df(client, &[&data_path, &wal_path]).await {
        Ok(l) => l,
        Err(e) => {
            let check = Check::new(
                "disk",
                Verdict::Warning,
                format!(
                    "could not run df on the server ({}); the run {need_text}",
                    e.message()
                ),
            )
            .action("check free space on the server before running");
            return Ok((check, Vec::new()));
        }
    };
    let parsed = parse_df(&lines);
    if parsed.len() < 2 {
        let check = Check::new(
            "disk",
            Verdict::Warning,
            format!("could not read df's output on the server; the run {need_text}"),
        );
        return Ok((check, Vec::new()));
    }
    let free: Vec<FreeSpace> = [&data_path, &wal_path]
        .iter()
        .zip(&parsed)
        .map(|(p, (fs, avail, mount))| FreeSpace {
            path: p.to_string(),
            filesystem: fs.clone(),
            mount: mount.clone(),
            available_bytes: *avail,
        })
        .collect();
    let same_fs = free[0].filesystem == free[1].filesystem && free[0].mount == free[1].mount;
    let short = |avail: u64, needed: u64| -> Verdict {
        if avail < needed {
            Verdict::Blocking
        } else if (avail as f64) < needed as f64 * 1.25 + 1e9 {
            Verdict::Warning
        } else {
            Verdict::Ok
        }
    };
    let (verdict, summary) = if same_fs {
        (
            short(free[0].available_bytes, need_total),
            format!(
                "{} free on {} (data and WAL); the run {need_text}",
                ui::bytes(free[0].available_bytes),
                free[0].mount
            ),
        )
    } else {
        (
            short(free[0].available_bytes, need.data_bytes)
                .max(short(free[1].available_bytes, need.wal_bytes)),
            format!(
                "{} free for data on {}, {} for WAL on {}; the run {need_text}",
                ui::bytes(free[0].available_bytes),
                free[0].mount,
                ui::bytes(free[1].available_bytes),
                free[1].mount
            ),
        )
    };
    let mut check = Check::new("disk", verdict, summary);
    check.details.push(
        "free space read with df on the server (COPY FROM PROGRAM, superuser only, in a rolled-back transaction)".into(),
    );
    if verdict != Verdict::Ok {
        check.action =
            Some("free disk space first (or keep less WAL: see replication_slots)".into());
    }
    Ok((check, free))
}

/// Runs `df -Pk <paths>` on the server, in a transaction that is rolled back.
async fn df(client: &Client, paths: &[&str]) -> Result<Vec<String>> {
    let cmd = format!(
        "df -Pk {}",
        paths
            .iter()
            .map(|p| shell_quote(p))
            .collect::<Vec<_>>()
            .join(" ")
    );
    let result = async {
        client
            .batch_execute(&format!(
                "BEGIN; CREATE TEMP TABLE hotswap_df (line text) ON COMMIT DROP; \
                 COPY hotswap_df FROM PROGRAM {} WITH (FORMAT text, DELIMITER E'\\x01')",
                literal(&cmd)
            ))
            .await
            .ctx("running df on the server")?;
        let rows = client
            .query("SELECT line FROM hotswap_df", &[])
            .await
            .ctx("reading df's output")?;
        rows.iter()
            .map(|r| r.col::<String>(0, &"reading df's output"))
            .collect::<Result<Vec<_>>>()
    }
    .await;
    let _ = client.batch_execute("ROLLBACK").await;
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe() -> PoolerProbe {
        PoolerProbe {
            connected_port: 5432,
            server_port: 5432,
            pid_before: 10,
            pid_after: 10,
            other_pid: Some(11),
        }
    }

    #[test]
    fn pooler_heuristic() {
        assert_eq!(pooler_verdict(&probe()).0, Verdict::Ok);
        let p = PoolerProbe {
            connected_port: 6432,
            ..probe()
        };
        assert_eq!(pooler_verdict(&p).0, Verdict::Warning);
        // pgbouncer in transaction mode: the other client got our backend.
        let p = PoolerProbe {
            connected_port: 6432,
            other_pid: Some(10),
            pid_after: 12,
            ..probe()
        };
        assert_eq!(pooler_verdict(&p).0, Verdict::Blocking);
        let p = PoolerProbe {
            pid_after: 12,
            ..probe()
        };
        assert_eq!(pooler_verdict(&p).0, Verdict::Blocking);
        let p = PoolerProbe {
            other_pid: None,
            ..probe()
        };
        assert_eq!(pooler_verdict(&p).0, Verdict::Blocking);
    }

    fn limits() -> ConnLimits {
        ConnLimits {
            max_connections: 200,
            reserved: 3,
            in_use: 20,
            superuser: false,
            db_limit: -1,
            db_in_use: 5,
            role_limit: -1,
            role_in_use: 5,
        }
    }

    #[test]
    fn connections_arithmetic() {
        assert_eq!(connections_verdict(&limits(), 4).0, Verdict::Ok);
        // 64 jobs need 129 sessions: 177 free.
        assert_eq!(connections_verdict(&limits(), 64).0, Verdict::Ok);
        let busy = ConnLimits {
            in_use: 100,
            ..limits()
        };
        let (v, free, _) = connections_verdict(&busy, 64);
        assert_eq!((v, free), (Verdict::Blocking, 97));
        let tight = ConnLimits {
            in_use: 60,
            ..limits()
        };
        assert_eq!(connections_verdict(&tight, 64).0, Verdict::Warning);
        let db = ConnLimits {
            db_limit: 10,
            ..limits()
        };
        assert_eq!(connections_verdict(&db, 8).0, Verdict::Blocking);
        // Database and role limits do not apply to superusers; the reserved slots do not either.
        let su = ConnLimits {
            superuser: true,
            ..db
        };
        assert_eq!(connections_verdict(&su, 8).0, Verdict::Ok);
    }

    #[test]
    fn df_output_is_parsed() {
        let lines = vec![
            "Filesystem     1024-blocks      Used Available Capacity Mounted on".to_string(),
            "/dev/sda1        100000000  50000000  50000000      50% /".to_string(),
            "/dev/sdb1 10 5 5 50% /mnt/wal disk".to_string(),
        ];
        let p = parse_df(&lines);
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].1, 50_000_000 * 1024);
        assert_eq!(p[1].2, "/mnt/wal disk");
    }

    #[test]
    fn settings_are_shown_as_people_write_them() {
        assert_eq!(setting_text("1000", "ms"), "1s");
        assert_eq!(setting_text("3600000", "ms"), "1h");
        assert_eq!(setting_text("1500", "ms"), "1500ms");
        assert_eq!(setting_text("2", "min"), "2min");
    }

    #[test]
    fn shell_quoting() {
        assert_eq!(shell_quote("/var/lib/pg"), "'/var/lib/pg'");
        assert_eq!(shell_quote("a'b"), r"'a'\''b'");
    }

    #[test]
    fn worst_and_gate() {
        let t = QualifiedName::new("public", "t");
        let ok = Check::new("a", Verdict::Ok, "fine");
        let warn = Check::new("b", Verdict::Warning, "hmm");
        assert_eq!(worst(&[ok.clone(), warn.clone()]), Verdict::Warning);
        assert_eq!(gate(&[ok.clone(), warn.clone()], &t).unwrap().len(), 1);
        let block = Check::new("c", Verdict::Blocking, "no");
        let e = gate(&[ok, warn, block], &t).unwrap_err();
        assert_eq!(e.kind(), crate::error::Kind::Refused);
    }
}
