//! The server's version: reading it (`server_version_num`), the versions pg-hotswap runs on and
//! is tested with, the `--version` report, and the rewriting of catalog queries for older
//! servers ([`for_version`]). Invariant: every difference between catalog versions is listed in
//! [`VERSIONED_SQL`], nowhere else.

use crate::error::{DbContext, Result, RowExt};
use tokio_postgres::GenericClient;

/// `server_version_num` of the server (also noted for error messages, see
/// [`crate::error::RowExt`]).
pub async fn server_version(client: &impl GenericClient) -> Result<i32> {
    let row = client
        .query_one("SELECT current_setting('server_version_num')::int4", &[])
        .await
        .ctx("reading the server version")?;
    let version: i32 = row.col(0, &"reading the server version")?;
    crate::error::note_server_version(version);
    Ok(version)
}

/// The oldest PostgreSQL pg-hotswap runs on, and the versions the CI matrix tests (.ci/run).
pub const MIN_SERVER_VERSION: i32 = 150_000;
pub const TESTED_MAJORS: [i32; 4] = [15, 16, 17, 18];

/// `PostgreSQL 18.4 (tested)` / `(not tested: ...)` for `--version` and `plan`.
pub fn describe_server_version(version: i32) -> String {
    let major = version / 10_000;
    let tested = if version < MIN_SERVER_VERSION {
        "not supported: pg-hotswap needs PostgreSQL 15 or newer"
    } else if TESTED_MAJORS.contains(&major) {
        "tested"
    } else {
        "not tested: the CI tests 15, 16, 17 and 18"
    };
    format!("PostgreSQL {major}.{} ({tested})", version % 10_000)
}

/// What `pg-hotswap --version` prints: the client's version, the versions the CI tests, and the
/// server's version when a connection resolves (`--dsn`, `DATABASE_URL`, `PG*` variables).
/// Never prompts (no password prompt exists) and gives up on the server after 5 seconds.
pub async fn version_report(dsn: Option<&str>) -> String {
    let mut out = format!(
        "pg-hotswap {}
tested with PostgreSQL {}
",
        env!("CARGO_PKG_VERSION"),
        TESTED_MAJORS.map(|m| m.to_string()).join(", ")
    );
    let from_env = [
        "DATABASE_URL",
        "PGHOST",
        "PGPORT",
        "PGDATABASE",
        "PGUSER",
        "PGSERVICE",
    ]
    .iter()
    .any(|k| std::env::var_os(k).is_some_and(|v| !v.is_empty()));
    if dsn.is_none() && !from_env {
        out.push_str("server: no connection given (--dsn, DATABASE_URL or PG* variables)\n");
        return out;
    }
    let server = async {
        let spec = crate::db::conn::resolve_spec(dsn, std::time::Duration::from_secs(5))?;
        let client = crate::db::conn::connect(&spec, "version").await?;
        server_version(&client).await
    };
    match tokio::time::timeout(std::time::Duration::from_secs(5), server).await {
        Ok(Ok(v)) => out.push_str(&format!("server: {}\n", describe_server_version(v))),
        Ok(Err(e)) => out.push_str(&format!(
            "server: not reached: {}\n",
            e.message().lines().next().unwrap_or_default()
        )),
        Err(_) => out.push_str("server: not reached within 5 s\n"),
    }
    out
}

/// Catalog columns that exist only from some version on: `(since, the text in sql/*.sql, what
/// older servers get instead)`. The files are written for the newest catalog; [`for_version`]
/// rewrites them for older servers, so every difference between versions is listed here.
const VERSIONED_SQL: &[(i32, &str, &str)] = &[
    // PostgreSQL 18: temporal primary and unique keys (WITHOUT OVERLAPS).
    (180_000, "COALESCE(con.conperiod, false)", "false"),
    // PostgreSQL 18: NOT NULL constraints are pg_constraint rows (contype 'n').
    (180_000, "con.contype = 'n'", "false"),
];

/// `sql` for a server of `version` (see `VERSIONED_SQL`).
pub fn for_version(sql: &'static str, version: i32) -> std::borrow::Cow<'static, str> {
    let mut out = std::borrow::Cow::Borrowed(sql);
    for (since, new, old) in VERSIONED_SQL {
        if version < *since && out.contains(new) {
            out = std::borrow::Cow::Owned(out.replace(new, old));
        }
    }
    out
}
