//! Connections: resolving the connection string and opening tool sessions.
//!
//! `--dsn` takes a libpq URI or key=value string; missing parts fall back to `DATABASE_URL`
//! (when no `--dsn` is given) and the usual `PG*` variables, like libpq. Every session the tool
//! opens is configured the same way: `application_name` so DBAs see the tool in
//! `pg_stat_activity`, JIT off (its compile time hurt COPY of large queries, DESIGN.md), no
//! statement or idle timeouts that would kill long copies, and a short `lock_timeout` so that no
//! statement of ours ever queues behind, or in front of, the application's locks for long.

use crate::error::{DbContext, Error, Result};
use std::str::FromStr;
use std::time::Duration;
use tokio_postgres::{Client, Config, NoTls};

pub const APPLICATION_NAME: &str = "pg-hotswap";

/// How to reach the server, resolved once from flags and environment.
#[derive(Clone, Debug)]
pub struct ConnSpec {
    pub config: Config,
    /// `lock_timeout` for every session of the tool.
    pub lock_timeout: Duration,
    /// `sslmode` / `sslrootcert`, with libpq's meaning (see `tls.rs`).
    pub tls: crate::tls::TlsSettings,
}

/// Resolves the connection (string, environment, TLS options) into a [`ConnSpec`].
pub fn resolve_spec(dsn: Option<&str>, lock_timeout: Duration) -> Result<ConnSpec> {
    let (config, tls) = resolve_with_tls(dsn)?;
    Ok(ConnSpec {
        config,
        lock_timeout,
        tls,
    })
}

/// Resolves the connection configuration like libpq: explicit string first, then the environment.
pub fn resolve(dsn: Option<&str>) -> Result<Config> {
    resolve_with_tls(dsn).map(|(c, _)| c)
}

fn resolve_with_tls(dsn: Option<&str>) -> Result<(Config, crate::tls::TlsSettings)> {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let text = match dsn {
        Some(d) => Some(d.to_string()),
        None => env("DATABASE_URL"),
    };
    // The TLS options go to our TLS set-up (tokio-postgres knows only part of them).
    let (text, tls) = crate::tls::split(text.as_deref().unwrap_or(""))?;
    let text = if text.trim().is_empty() {
        None
    } else {
        Some(text)
    };
    let mut config = match &text {
        Some(t) => Config::from_str(t).map_err(|e| {
            Error::usage(format!(
                "the connection string is not valid: {e} (expected a URI like \
                 postgresql://user@host:5432/db or key=value pairs like \"host=h dbname=db\")"
            ))
        })?,
        None => Config::new(),
    };
    if config.get_hosts().is_empty() {
        match env("PGHOST") {
            Some(h) => {
                for part in h.split(',') {
                    config.host(part);
                }
            }
            None => {
                // libpq's default: the Unix socket directory, else localhost.
                if std::path::Path::new("/var/run/postgresql").is_dir() {
                    config.host("/var/run/postgresql");
                } else {
                    config.host("localhost");
                }
            }
        }
    }
    if config.get_ports().is_empty() {
        if let Some(p) = env("PGPORT") {
            let port = p
                .parse::<u16>()
                .map_err(|_| Error::usage(format!("PGPORT={p} is not a port number")))?;
            config.port(port);
        }
    }
    if config.get_user().is_none() {
        let user = env("PGUSER")
            .or_else(|| env("USER"))
            .unwrap_or_else(|| "postgres".to_string());
        config.user(&user);
    }
    if config.get_dbname().is_none() {
        let db = env("PGDATABASE").unwrap_or_else(|| config.get_user().unwrap_or("").to_string());
        config.dbname(&db);
    }
    if config.get_password().is_none() {
        if let Some(p) = env("PGPASSWORD") {
            config.password(p);
        }
    }
    if config.get_application_name().is_none() {
        config.application_name(env("PGAPPNAME").as_deref().unwrap_or(APPLICATION_NAME));
    }
    if config.get_connect_timeout().is_none() {
        let secs = env("PGCONNECT_TIMEOUT")
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or(10);
        config.connect_timeout(Duration::from_secs(secs.max(2)));
    }
    config.ssl_mode(tls.mode.for_driver());
    Ok((config, tls))
}

/// A human description of where we connect, without the password.
pub fn describe(config: &Config) -> String {
    let host = config
        .get_hosts()
        .first()
        .map(|h| match h {
            tokio_postgres::config::Host::Tcp(s) => s.clone(),
            tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
        })
        .unwrap_or_default();
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!(
        "database {:?} on {}:{} as {:?}",
        config.get_dbname().unwrap_or(""),
        host,
        port,
        config.get_user().unwrap_or("")
    )
}

/// Renders a duration for `SET lock_timeout` and friends (milliseconds).
pub fn pg_millis(d: Duration) -> String {
    format!("{}ms", d.as_millis().max(1))
}

/// Opens a tool session configured as described in the module header. `role` names the session
/// in `application_name` (`pg-hotswap/copy-2`).
pub async fn connect(spec: &ConnSpec, role: &str) -> Result<Client> {
    let mut config = spec.config.clone();
    let base = config
        .get_application_name()
        .unwrap_or(APPLICATION_NAME)
        .to_string();
    config.application_name(format!("{base}/{role}"));
    let failed = |e: tokio_postgres::Error| {
        Error::db(
            format_args!("cannot connect to {}", describe(&spec.config)),
            e,
        )
        .with_state("nothing was changed")
        .with_next(
            "check --dsn (or DATABASE_URL / PG* variables), sslmode, and that the server is up",
        )
    };
    let role_owned = role.to_string();
    let client = match crate::tls::client_config(&spec.tls)? {
        None => {
            let (client, connection) = config.connect(NoTls).await.map_err(failed)?;
            tokio::spawn(async move {
                if let Err(e) = connection.await {
                    tracing::debug!(session = %role_owned, error = %e, "connection closed with error");
                }
            });
            client
        }
        Some(tls) => {
            let (client, connection) = config
                .connect(tokio_postgres_rustls::MakeRustlsConnect::new(tls))
                .await
                .map_err(failed)?;
            tokio::spawn(async move {
                if let Err(e) = connection.await {
                    tracing::debug!(session = %role_owned, error = %e, "connection closed with error");
                }
            });
            client
        }
    };
    client
        .batch_execute(&format!(
            "SET jit = off; SET statement_timeout = 0; \
             SET idle_in_transaction_session_timeout = 0; SET row_security = off; \
             SET lock_timeout = '{}'",
            pg_millis(spec.lock_timeout)
        ))
        .await
        .ctx("configuring the session")?;
    Ok(client)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_value_and_uri_both_parse() {
        let c = resolve(Some("host=db1 port=6543 user=alice dbname=app")).unwrap();
        assert_eq!(c.get_user(), Some("alice"));
        assert_eq!(c.get_ports(), &[6543]);
        let c = resolve(Some("postgresql://bob@db2:5433/shop")).unwrap();
        assert_eq!(c.get_user(), Some("bob"));
        assert_eq!(c.get_dbname(), Some("shop"));
    }

    #[test]
    fn invalid_dsn_is_a_usage_error() {
        let e = resolve(Some("port=notanumber")).unwrap_err();
        assert_eq!(e.kind(), crate::error::Kind::Usage);
        let e = resolve(Some("postgresql://host:99999999/db")).unwrap_err();
        assert_eq!(e.kind(), crate::error::Kind::Usage);
        let e = resolve(Some("nonsense_key=1")).unwrap_err();
        assert_eq!(e.kind(), crate::error::Kind::Usage);
    }

    #[test]
    fn millis_rendering() {
        assert_eq!(pg_millis(Duration::from_millis(100)), "100ms");
        assert_eq!(pg_millis(Duration::from_micros(10)), "1ms");
    }
}
