//! Connections: resolving the connection string and opening tool sessions.
//!
//! `--dsn` takes a libpq URI or key=value string; missing parts fall back to `DATABASE_URL`
//! (when no `--dsn` is given) and the usual `PG*` variables, like libpq. Every session the tool
//! opens is configured the same way: `application_name` so DBAs see the tool in
//! `pg_stat_activity`, JIT off (its compile time hurt COPY of large queries, DESIGN.md), no
//! statement or idle timeouts that would kill long copies, and a short `lock_timeout` so that no
//! statement of ours ever queues behind, or in front of, the application's locks for long.
//!
//! Passwords come, like libpq's, from the connection string, else `PGPASSWORD`, else the
//! password file (`PGPASSFILE`, default `~/.pgpass`; see [`pgpass`]).

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
    pub tls: crate::db::tls::TlsSettings,
    /// What resolving noticed and the operator should be told (a password file that was
    /// ignored, or could not be read), each a line starting `warning: `. This layer prints
    /// nothing (issue 17: no import of the output layer here); the command that resolved the
    /// spec says them.
    pub warnings: Vec<String>,
}

/// Resolves the connection (string, environment, TLS options) into a [`ConnSpec`].
pub fn resolve_spec(dsn: Option<&str>, lock_timeout: Duration) -> Result<ConnSpec> {
    let mut warnings = Vec::new();
    let (config, tls) = resolve_with_tls(dsn, &mut warnings)?;
    Ok(ConnSpec {
        config,
        lock_timeout,
        tls,
        warnings,
    })
}

/// Resolves the connection configuration like libpq: explicit string first, then the environment.
pub fn resolve(dsn: Option<&str>) -> Result<Config> {
    resolve_with_tls(dsn, &mut Vec::new()).map(|(c, _)| c)
}

fn resolve_with_tls(
    dsn: Option<&str>,
    warnings: &mut Vec<String>,
) -> Result<(Config, crate::db::tls::TlsSettings)> {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let text = match dsn {
        Some(d) => Some(d.to_string()),
        None => env("DATABASE_URL"),
    };
    // The TLS options go to our TLS set-up (tokio-postgres knows only part of them).
    let (text, tls) = crate::db::tls::split(text.as_deref().unwrap_or(""))?;
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
        } else if let Some(p) = pgpass::lookup(&config, env("PGPASSFILE"), warnings) {
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
    if let Some(options) = startup_options(config.get_options(), env) {
        config.options(&options);
    }
    config.ssl_mode(tls.mode.for_driver());
    Ok((config, tls))
}

/// The `options` startup parameter as libpq would make it: `PGOPTIONS` when the string gives
/// none, and `PGDATESTYLE`, `PGTZ` and `PGGEQO`, which libpq sends as the startup parameters
/// `datestyle`, `timezone` and `geqo` (not when set to `default`; libpq's `EnvironmentOptions`).
/// tokio-postgres sends no startup parameters but `options`, so these become `-c` switches
/// placed first, where the string's own switches override them. Without this, `PGTZ=Asia/Tokyo`
/// made the tool convert `timestamp` to `timestamptz` in the server's zone while `psql` in the
/// same shell used Tokyo's (a fresh tester, session 13). None when there is nothing to send.
fn startup_options(own: Option<&str>, env: impl Fn(&str) -> Option<String>) -> Option<String> {
    // In `options`, a backslash escapes the next character (the server's `pg_split_opts`).
    let escape = |v: &str| {
        v.chars()
            .flat_map(|c| match c {
                ' ' | '\\' => vec!['\\', c],
                c => vec![c],
            })
            .collect::<String>()
    };
    let mut parts: Vec<String> = [
        ("PGDATESTYLE", "datestyle"),
        ("PGTZ", "timezone"),
        ("PGGEQO", "geqo"),
    ]
    .iter()
    .filter_map(|(var, param)| {
        let v = env(var).filter(|v| !v.eq_ignore_ascii_case("default"))?;
        Some(format!("-c {param}={}", escape(&v)))
    })
    .collect();
    parts.extend(own.map(str::to_string).or_else(|| env("PGOPTIONS")));
    (!parts.is_empty()).then(|| parts.join(" "))
}

pub mod pgpass {
    //! The password file, with libpq's rules (`PGPASSFILE`, default `~/.pgpass`): lines of
    //! `hostname:port:database:username:password`, `#` starts a comment line, a field of `*`
    //! matches anything, `\:` and `\\` escape a colon and a backslash; the first matching line
    //! wins. On Unix a file that its group or others can read or write is ignored, with a
    //! warning, as libpq does. The host `localhost` also matches a Unix socket in the default
    //! directory.

    use std::path::{Path, PathBuf};
    use tokio_postgres::config::Host;
    use tokio_postgres::Config;

    /// Socket directories libpq treats as "localhost" for the password file: the default one
    /// of Debian's and of upstream builds.
    const DEFAULT_SOCKET_DIRS: &[&str] = &["/var/run/postgresql", "/run/postgresql", "/tmp"];

    /// One field of a line: `*` or a literal (unescaped).
    #[derive(Clone, Debug, PartialEq, Eq)]
    enum Field {
        Any,
        Exact(String),
    }

    impl Field {
        fn matches(&self, value: &str) -> bool {
            match self {
                Field::Any => true,
                Field::Exact(s) => s == value,
            }
        }
    }

    /// A parsed line.
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub struct Entry {
        host: Field,
        port: Field,
        database: Field,
        user: Field,
        pub password: String,
    }

    /// What a connection is matched on.
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub struct Target<'a> {
        pub host: &'a str,
        pub port: u16,
        pub database: &'a str,
        pub user: &'a str,
    }

    impl Entry {
        pub fn matches(&self, t: &Target<'_>) -> bool {
            self.host.matches(t.host)
                && self.port.matches(&t.port.to_string())
                && self.database.matches(t.database)
                && self.user.matches(t.user)
        }
    }

    /// Parses one line; `None` for comments, blank lines and lines with fewer than five fields.
    pub fn parse_line(line: &str) -> Option<Entry> {
        let line = line.trim_end_matches(['\r', '\n']);
        if line.starts_with('#') || line.trim().is_empty() {
            return None;
        }
        let mut fields: Vec<(String, bool)> = Vec::new();
        let (mut cur, mut escaped_any) = (String::new(), false);
        let mut chars = line.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some(n) => {
                        cur.push(n);
                        escaped_any = true;
                    }
                    None => cur.push('\\'),
                },
                // The password is the fifth field; libpq ends it at the next unescaped ':'.
                ':' => {
                    fields.push((std::mem::take(&mut cur), escaped_any));
                    escaped_any = false;
                    if fields.len() == 5 {
                        break;
                    }
                }
                c => cur.push(c),
            }
        }
        if fields.len() < 5 {
            fields.push((cur, escaped_any));
        }
        if fields.len() < 5 {
            return None;
        }
        // Only a bare `*` is a wildcard; `\*` is a literal star.
        let field = |(s, escaped): &(String, bool)| {
            if s == "*" && !escaped {
                Field::Any
            } else {
                Field::Exact(s.clone())
            }
        };
        Some(Entry {
            host: field(&fields[0]),
            port: field(&fields[1]),
            database: field(&fields[2]),
            user: field(&fields[3]),
            password: fields[4].0.clone(),
        })
    }

    /// The password of the first line that matches `target`.
    pub fn find(text: &str, target: &Target<'_>) -> Option<String> {
        text.lines()
            .filter_map(parse_line)
            .find(|e| e.matches(target))
            .map(|e| e.password)
    }

    /// The host name a connection is matched on: a TCP host as given; a socket in a default
    /// directory as `localhost` (libpq), another socket directory as its path.
    pub fn host_key(host: &Host) -> String {
        match host {
            Host::Tcp(h) => h.clone(),
            Host::Unix(p) => {
                let p = p.display().to_string();
                let trimmed = p.trim_end_matches('/');
                if DEFAULT_SOCKET_DIRS.contains(&trimmed) {
                    "localhost".to_string()
                } else {
                    p
                }
            }
        }
    }

    /// The file to read: `PGPASSFILE`, else `~/.pgpass`.
    pub fn path(pgpassfile: Option<String>) -> Option<PathBuf> {
        match pgpassfile {
            Some(p) => Some(PathBuf::from(p)),
            None => std::env::var_os("HOME")
                .filter(|h| !h.is_empty())
                .map(|h| Path::new(&h).join(".pgpass")),
        }
    }

    /// Why the file must be ignored, if it must (Unix permissions).
    pub fn unsafe_permissions(path: &Path) -> Option<String> {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let meta = std::fs::metadata(path).ok()?;
            if !meta.is_file() {
                return Some(format!(
                    "password file {} is not a plain file",
                    path.display()
                ));
            }
            let mode = meta.permissions().mode();
            if mode & 0o077 != 0 {
                return Some(format!(
                    "password file {} has group or world access (mode {:o}); it is ignored: \
                     permissions should be u=rw (0600) or less (`chmod 0600 {}`)",
                    path.display(),
                    mode & 0o777,
                    path.display()
                ));
            }
        }
        #[cfg(not(unix))]
        let _ = path;
        None
    }

    /// The password for `config` from the password file, if the file exists, may be used and
    /// has a matching line. Tries the hosts in order (one password serves all of them). Why a
    /// file that exists is not used goes to `warnings`.
    pub fn lookup(
        config: &Config,
        pgpassfile: Option<String>,
        warnings: &mut Vec<String>,
    ) -> Option<String> {
        let path = path(pgpassfile)?;
        if !path.exists() {
            return None;
        }
        if let Some(why) = unsafe_permissions(&path) {
            warnings.push(format!("warning: {why}"));
            return None;
        }
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) => {
                warnings.push(format!(
                    "warning: cannot read password file {}: {e}",
                    path.display()
                ));
                return None;
            }
        };
        let user = config.get_user().unwrap_or("");
        let database = config.get_dbname().unwrap_or(user);
        let ports = config.get_ports();
        config.get_hosts().iter().enumerate().find_map(|(i, h)| {
            // One port for all hosts, or one per host, as tokio-postgres takes them.
            let port = ports
                .get(i)
                .or_else(|| ports.first())
                .copied()
                .unwrap_or(5432);
            find(
                &text,
                &Target {
                    host: &host_key(h),
                    port,
                    database,
                    user,
                },
            )
        })
    }
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

/// Whether every host of `config` is a Unix-domain socket directory.
fn only_unix_sockets(config: &Config) -> bool {
    let hosts = config.get_hosts();
    !hosts.is_empty()
        && hosts
            .iter()
            .all(|h| matches!(h, tokio_postgres::config::Host::Unix(_)))
}

/// What to do about a failed connection attempt. Password problems get their own advice; the
/// driver reports a password the server asked for and nobody gave as a configuration error
/// without a code, so that one is recognised by its text.
fn connect_next_step(config: &Config, e: &tokio_postgres::Error) -> &'static str {
    let code = e.code();
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(&format!(": {s}"));
        source = s.source();
    }
    if code == Some(&tokio_postgres::error::SqlState::INVALID_PASSWORD) {
        "check the password (in --dsn, PGPASSWORD, or the matching line of the password file \
         PGPASSFILE / ~/.pgpass)"
    } else if config.get_password().is_none() && text.contains("password missing") {
        "the server asks for a password: give it in --dsn (password=...), in PGPASSWORD, or in \
         a line of the password file ~/.pgpass (or PGPASSFILE), host:port:database:user:password, \
         readable only by you (chmod 0600)"
    } else if text.contains("server does not support TLS") {
        "the server does not offer TLS, and sslmode (require, verify-ca, verify-full) forbids \
         a plain connection: enable ssl on the server, or lower sslmode only if an unencrypted \
         connection is acceptable on this network"
    } else {
        "check --dsn (or DATABASE_URL / PG* variables), sslmode, and that the server is up"
    }
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
        let next = connect_next_step(&spec.config, &e);
        Error::db(
            format_args!("cannot connect to {}", describe(&spec.config)),
            e,
        )
        .with_state("nothing was changed")
        .with_next(next)
    };
    let role_owned = role.to_string();
    // As libpq: TLS is never used over Unix-domain sockets, whatever sslmode says (psql with
    // host=/run/postgresql sslmode=verify-full connects in the clear).
    let tls = if only_unix_sockets(&config) {
        config.ssl_mode(tokio_postgres::config::SslMode::Disable);
        None
    } else {
        crate::db::tls::client_config(&spec.tls)?
    };
    let client = match tls {
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
             SET idle_in_transaction_session_timeout = 0; SET row_security = off; {}",
            crate::db::locking::session_timeout_sql(spec.lock_timeout)
        ))
        .await
        .ctx("configuring the session")?;
    Ok(client)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pgtz_pgdatestyle_and_pgoptions_become_startup_options_as_libpq_sends_them() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                vars.iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert_eq!(startup_options(None, env(&[])), None);
        assert_eq!(
            startup_options(
                None,
                env(&[("PGTZ", "Asia/Tokyo"), ("PGOPTIONS", "-c work_mem=64MB")])
            ),
            Some("-c timezone=Asia/Tokyo -c work_mem=64MB".into())
        );
        // The string's own options win over PGOPTIONS; a space is escaped; "default" is not sent.
        assert_eq!(
            startup_options(
                Some("-c search_path=app"),
                env(&[
                    ("PGDATESTYLE", "ISO, DMY"),
                    ("PGOPTIONS", "-c x=1"),
                    ("PGGEQO", "default")
                ])
            ),
            Some("-c datestyle=ISO,\\ DMY -c search_path=app".into())
        );
    }

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
    fn pgpass_lines_parse_with_libpq_escapes() {
        use pgpass::{find, parse_line, Target};
        assert_eq!(parse_line("# comment"), None);
        assert_eq!(parse_line(""), None);
        assert_eq!(parse_line("host:5432:db:user"), None);
        let e = parse_line(r"db\:1:5432:*:al\\ice:pa\:ss:word\r").unwrap();
        assert_eq!(e.password, "pa:ss");
        let t = Target {
            host: "db:1",
            port: 5432,
            database: "anything",
            user: r"al\ice",
        };
        assert!(e.matches(&t));
        assert!(!e.matches(&Target {
            port: 5433,
            ..t.clone()
        }));
        // `*` only as a whole field; an escaped star is a literal.
        let star = parse_line(r"\*:*:*:*:s").unwrap();
        assert!(!star.matches(&Target {
            host: "h",
            port: 1,
            database: "d",
            user: "u"
        }));
        assert!(star.matches(&Target {
            host: "*",
            port: 1,
            database: "d",
            user: "u"
        }));
        let file = "# first match wins\n\
                    other:*:*:*:nope\n\
                    localhost:5432:app:alice:first\n\
                    *:*:*:alice:second\n";
        let t = |host, port, database| Target {
            host,
            port,
            database,
            user: "alice",
        };
        assert_eq!(
            find(file, &t("localhost", 5432, "app")),
            Some("first".into())
        );
        assert_eq!(
            find(file, &t("localhost", 5433, "app")),
            Some("second".into())
        );
        assert_eq!(
            find(
                file,
                &Target {
                    user: "bob",
                    ..t("localhost", 5432, "app")
                }
            ),
            None
        );
    }

    #[test]
    fn pgpass_localhost_matches_the_default_socket_directory() {
        use tokio_postgres::config::Host;
        let sock = |p: &str| Host::Unix(std::path::PathBuf::from(p));
        assert_eq!(pgpass::host_key(&sock("/var/run/postgresql")), "localhost");
        assert_eq!(pgpass::host_key(&sock("/tmp/")), "localhost");
        assert_eq!(pgpass::host_key(&sock("/srv/pg")), "/srv/pg");
        assert_eq!(pgpass::host_key(&Host::Tcp("db1".into())), "db1");
    }

    #[cfg(unix)]
    #[test]
    fn pgpass_is_used_only_when_private_and_no_password_is_given() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("pgpass-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("pgpass");
        std::fs::write(&file, "db1:6543:app:alice:s3cret\n").unwrap();
        let f = Some(file.display().to_string());
        let config = |dsn: &str| Config::from_str(dsn).unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let c = config("host=db1 port=6543 dbname=app user=alice");
        assert_eq!(
            pgpass::lookup(&c, f.clone(), &mut Vec::new()),
            Some("s3cret".into())
        );
        assert_eq!(
            pgpass::lookup(
                &config("host=db1 port=6543 dbname=other user=alice"),
                f.clone(),
                &mut Vec::new()
            ),
            None
        );
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(pgpass::unsafe_permissions(&file).is_some());
        let mut warnings = Vec::new();
        assert_eq!(
            pgpass::lookup(&c, f.clone(), &mut warnings),
            None,
            "a readable file is ignored"
        );
        assert!(
            warnings.len() == 1 && warnings[0].contains("group or world access"),
            "the reason is returned: {warnings:?}"
        );
        assert_eq!(
            pgpass::lookup(
                &c,
                Some(dir.join("missing").display().to_string()),
                &mut Vec::new()
            ),
            None
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
