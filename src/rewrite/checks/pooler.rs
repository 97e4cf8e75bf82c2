//! The `pooler` check: is a pooler in transaction or statement mode between the tool and the
//! server? Blocking when sessions do not keep their backend: a run relies on session state
//! (lock_timeout, the per-table advisory lock, the replay batch table). The decision
//! ([`pooler_verdict`]) is kept apart from the probe so it is unit-tested.

use super::{Check, CheckInput, Verdict};
use crate::db::conn;
use crate::error::{DbContext, Result, RowExt};
use tokio_postgres::Client;

/// The check's name (docs/plan.md).
pub(super) const NAME: &str = "pooler";

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

/// Probes with a second session whether sessions keep their backend (see [`pooler_verdict`]).
pub(super) async fn check(client: &Client, input: &CheckInput<'_>) -> Result<Check> {
    let spec = input.conn;
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
    let mut check = Check::new(NAME, verdict, summary);
    if verdict == Verdict::Blocking {
        check = check.action(
            "connect pg-hotswap to the server directly (or through a session-mode pool): it relies \
             on session state (lock_timeout, the per-table advisory lock, the replay batch table)",
        );
    }
    Ok(check)
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
}
