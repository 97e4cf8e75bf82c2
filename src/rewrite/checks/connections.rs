//! The `connections` check: do the sessions a run opens (two per copy job) fit under the server's,
//! the database's and the role's connection limits? Blocking when they do not, a warning when
//! they leave the application too few. The arithmetic ([`connections_verdict`]) is unit-tested.

use super::{Check, CheckInput, Verdict};
use crate::error::{DbContext, Result, RowExt};
use tokio_postgres::Client;

/// The check's name (docs/plan.md).
pub(super) const NAME: &str = "connections";

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

/// Reads the limits and applies [`connections_verdict`].
pub(super) async fn check(client: &Client, input: &CheckInput<'_>) -> Result<Check> {
    let jobs = input.jobs;
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
    let mut check = Check::new(NAME, verdict, summary);
    if verdict != Verdict::Ok {
        check.action = Some(
            "lower --jobs, or raise the limit (max_connections, ALTER DATABASE/ROLE ... CONNECTION LIMIT)"
                .into(),
        );
    }
    Ok(check)
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
