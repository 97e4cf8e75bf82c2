//! The flags the commands share (connection, lock policy, output), and the value parsers every
//! flag goes through (durations, names, `--table`). Flags become plain, validated values here;
//! each command's own flags sit next to the command (`run.rs`, `abort.rs`...), the subcommands in
//! `cli.rs`. Each flag's parsing has a unit test next to it.

use crate::db::conn::{self, ConnSpec};
use crate::db::locking::LockPolicy;
use crate::error::{Error, Result};
use crate::rewrite::mapping::{self, MapArg};
use crate::state::target::TargetSpec;
use clap::{Args, ValueEnum};
use std::time::Duration;

#[derive(Args, Debug, Clone)]
pub struct ConnArgs {
    /// libpq URI or key=value connection string. Falls back to DATABASE_URL and PG* variables.
    #[arg(long)]
    pub dsn: Option<String>,
}

#[derive(Args, Debug, Clone)]
pub struct LockArgs {
    /// The most any statement that locks the live table may wait for its lock.
    #[arg(long, default_value = "100ms", value_parser = parse_duration)]
    pub lock_timeout: Duration,
    /// How many times to try taking a lock (for the swap, the capture trigger...) before stopping.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub max_lock_attempts: u32,
    /// Base pause between lock attempts (grows exponentially, with jitter).
    #[arg(long, default_value = "200ms", value_parser = parse_duration)]
    pub retry_delay: Duration,
}

impl LockArgs {
    pub(super) fn policy(&self) -> LockPolicy {
        LockPolicy {
            timeout: self.lock_timeout,
            attempts: self.max_lock_attempts,
            delay: self.retry_delay,
        }
    }
}

/// What to do about the sessions that block the swap (issue 20; `run` and `resume`).
#[derive(Args, Debug)]
pub struct BlockerArgs {
    /// After a swap attempt fails for its lock, terminate (pg_terminate_backend) the sessions
    /// that blocked it and whose transaction is older than this (e.g. 30s). Never the tool's own
    /// sessions, replication or autovacuum. Off unless given; needs pg_signal_backend.
    #[arg(long, value_parser = parse_duration)]
    pub terminate_blockers_after: Option<Duration>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
}

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Rows in the sample table.
    #[arg(long, default_value_t = 300_000, value_parser = clap::value_parser!(i64).range(1..))]
    pub rows: i64,
    /// Concurrent writers during the rewrite.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub writers: u32,
    /// Copy jobs.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub jobs: u32,
}

impl DemoArgs {
    pub fn options(&self) -> crate::demo::DemoOptions {
        crate::demo::DemoOptions {
            rows: self.rows,
            writers: self.writers,
            jobs: self.jobs,
        }
    }
}

/// `--version` / `-V` [--dsn <conninfo>], read before clap, whose own version flag cannot reach
/// a server (issue 14): None when the arguments are not a version request, `Some(Err(()))` for a
/// version request with other arguments (usage), else the `--dsn` given, if any.
#[allow(clippy::result_unit_err)]
pub fn version_flag(args: &[String]) -> Option<std::result::Result<Option<String>, ()>> {
    if !matches!(args.first().map(String::as_str), Some("--version" | "-V")) {
        return None;
    }
    Some(match args.get(1..).unwrap_or_default() {
        [] => Ok(None),
        [flag, dsn] if flag == "--dsn" => Ok(Some(dsn.clone())),
        [one] if one.starts_with("--dsn=") => Ok(Some(one["--dsn=".len()..].to_string())),
        _ => Err(()),
    })
}

/// Durations: `100ms`, `2s`, `1m`, `1.5s`; a bare number is milliseconds.
pub fn parse_duration(s: &str) -> std::result::Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, "ms"),
    };
    let n: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (examples: 100ms, 2s, 1m)"))?;
    if !n.is_finite() || n < 0.0 {
        return Err(format!("{s:?} is not a duration"));
    }
    let ms = match unit {
        "ms" => n,
        "s" => n * 1000.0,
        "m" | "min" => n * 60_000.0,
        "h" => n * 3_600_000.0,
        _ => return Err(format!("{s:?}: unknown unit {unit:?} (use ms, s, m or h)")),
    };
    if ms < 1.0 {
        return Err(format!("{s:?} is shorter than 1 ms"));
    }
    // PostgreSQL's timeouts take at most INT_MAX milliseconds (about 24.8 days); nothing the tool
    // waits for needs longer.
    if ms > f64::from(i32::MAX) {
        return Err(format!("{s:?} is longer than PostgreSQL accepts (24 days)"));
    }
    Ok(Duration::from_micros((ms * 1000.0) as u64))
}

/// A wait that may be zero: "0", "0s" or "off" mean do not wait; otherwise a duration.
pub(crate) fn parse_wait(s: &str) -> std::result::Result<Duration, String> {
    match s.trim() {
        "0" | "off" => Ok(Duration::ZERO),
        t if t
            .trim_end_matches(|c: char| c.is_ascii_alphabetic())
            .parse::<f64>()
            == Ok(0.0) =>
        {
            Ok(Duration::ZERO)
        }
        t => parse_duration(t),
    }
}

/// Sizes (`--min-size`): `0`, `500MB`, `1GB`, `10kB`, `2TB`, a bare number of bytes; units
/// are PostgreSQL's (powers of 1024), case-insensitive.
pub fn parse_size(s: &str) -> std::result::Result<i64, String> {
    let t = s.trim();
    let (num, unit) = match t.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => (t[..i].trim(), t[i..].to_ascii_lowercase()),
        None => (t, "b".to_string()),
    };
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a size (examples: 500MB, 1GB)"))?;
    let mult: f64 = match unit.as_str() {
        "b" => 1.0,
        "kb" => 1024.0,
        "mb" => 1024.0 * 1024.0,
        "gb" => 1024.0 * 1024.0 * 1024.0,
        "tb" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => {
            return Err(format!(
                "{s:?}: unknown unit {unit:?} (use B, kB, MB, GB or TB)"
            ))
        }
    };
    let bytes = n * mult;
    if !bytes.is_finite() || bytes < 0.0 || bytes > i64::MAX as f64 {
        return Err(format!("{s:?} is not a size"));
    }
    Ok(bytes as i64)
}

/// Ratios (`--min-ratio`, `--bloated-over`): a number from 0 to 1 (`0.3`), or a percentage
/// (`30%`).
pub fn parse_ratio(s: &str) -> std::result::Result<f64, String> {
    let t = s.trim();
    let r = match t.strip_suffix('%') {
        Some(p) => p.trim().parse::<f64>().map(|p| p / 100.0),
        None => t.parse::<f64>(),
    }
    .map_err(|_| format!("{s:?} is not a ratio (examples: 0.3, 30%)"))?;
    if !(0.0..=1.0).contains(&r) {
        return Err(format!("{s:?} is not between 0 and 1 (0% and 100%)"));
    }
    Ok(r)
}

/// `--chunk-time`: a duration, or "off" / "0" (zero: one chunk per transaction).
pub fn parse_chunk_time(s: &str) -> std::result::Result<Duration, String> {
    match s.trim() {
        "off" | "0" => Ok(Duration::ZERO),
        other => parse_duration(other),
    }
}

pub(crate) fn chunk_time_option(d: Duration) -> Option<Duration> {
    (!d.is_zero()).then_some(d)
}

/// True when `sql` has a `;` outside quotes and comments: more than one statement. `--alter` is
/// applied as `ALTER TABLE <shadow> <actions>` and must stay exactly that one statement (the
/// server refuses a second one too: the ALTER goes over the extended protocol).
pub fn has_top_level_semicolon(sql: &str) -> bool {
    crate::rewrite::alter_text::has_top_level_semicolon(sql)
}

pub(crate) fn parse_map_arg(s: &str) -> std::result::Result<MapArg, String> {
    mapping::parse_map(s)
}

/// `--state-schema`: a name PostgreSQL lets a user create (not `pg_...`, reserved for system
/// schemas), checked here rather than failing later.
pub(crate) fn check_schema_name(what: &str, v: &str) -> Result<()> {
    check_name(what, v)?;
    if v.starts_with("pg_") {
        return Err(Error::usage(format!(
            "{what} {v:?}: names starting with pg_ are reserved for system schemas"
        )));
    }
    Ok(())
}

pub(crate) fn check_name(what: &str, v: &str) -> Result<()> {
    if v.is_empty() {
        return Err(Error::usage(format!("{what} is empty")));
    }
    if v.len() > crate::db::ident::MAX_IDENT_BYTES {
        return Err(Error::usage(format!(
            "{what} {v:?} is longer than 63 bytes"
        )));
    }
    if v.contains('\0') {
        return Err(Error::usage(format!("{what} contains a NUL byte")));
    }
    Ok(())
}

pub(crate) fn conn_spec(c: &ConnArgs, lock: &LockArgs) -> Result<ConnSpec> {
    resolve_conn(c.dsn.as_deref(), lock.lock_timeout)
}

/// Resolves a connection string and says what resolving noticed (a password file ignored):
/// `conn` returns its warnings instead of printing them (issue 17: the db layer prints nothing).
pub(crate) fn resolve_conn(dsn: Option<&str>, lock_timeout: Duration) -> Result<ConnSpec> {
    let spec = conn::resolve_spec(dsn, lock_timeout)?;
    for w in &spec.warnings {
        crate::output::ui::say(w);
    }
    Ok(spec)
}

pub(crate) fn check_table(t: &str) -> Result<()> {
    if t.trim().is_empty() {
        return Err(Error::usage("--table is empty"));
    }
    if t.contains('\0') {
        return Err(Error::usage("--table contains a NUL byte"));
    }
    Ok(())
}

/// `--dsn`, `--table` and `--state-schema` checked and made into the command's target
/// (`lock_timeout` bounds the connection's statements, as `--lock-timeout` does).
pub(crate) fn target_spec(
    c: &ConnArgs,
    table: &str,
    state_schema: &str,
    lock_timeout: Duration,
) -> Result<TargetSpec> {
    check_table(table)?;
    check_schema_name("--state-schema", state_schema)?;
    let conn = resolve_conn(c.dsn.as_deref(), lock_timeout)?;
    Ok(TargetSpec::new(&conn, table, state_schema))
}

#[cfg(test)]
mod tests {
    use super::super::cli::*;
    use super::*;
    use clap::CommandFactory;
    use clap::Parser;

    #[test]
    fn terminate_blockers_after_is_off_unless_given_for_run_and_resume() {
        let parse = |cmd: &str, extra: &[&str]| {
            let mut args = vec!["pg-hotswap", cmd, "--dsn", "host=h", "--table", "t"];
            args.extend_from_slice(extra);
            match Cli::try_parse_from(args).map(|c| c.command) {
                Ok(Command::Run(r)) => Ok(r.blockers.terminate_blockers_after),
                Ok(Command::Resume(r)) => Ok(r.blockers.terminate_blockers_after),
                Ok(_) => panic!("neither run nor resume"),
                Err(e) => Err(e.kind()),
            }
        };
        for cmd in ["run", "resume"] {
            assert_eq!(parse(cmd, &[]), Ok(None));
            assert_eq!(
                parse(cmd, &["--terminate-blockers-after", "2s"]),
                Ok(Some(Duration::from_secs(2)))
            );
            assert!(parse(cmd, &["--terminate-blockers-after", "soon"]).is_err());
        }
    }

    #[test]
    fn sizes_and_ratios_parse() {
        assert_eq!(parse_size("0"), Ok(0));
        assert_eq!(parse_size("1GB"), Ok(1 << 30));
        assert_eq!(parse_size("500 MB"), Ok(500 << 20));
        assert_eq!(parse_size("10kb"), Ok(10 << 10));
        assert_eq!(parse_size("8192"), Ok(8192));
        assert!(parse_size("1XB").is_err());
        assert!(parse_size("-1GB").is_err());
        assert!(parse_size("big").is_err());
        assert_eq!(parse_ratio("0.3"), Ok(0.3));
        assert_eq!(parse_ratio("30%"), Ok(0.3));
        assert!(parse_ratio("1.5").is_err());
        assert!(parse_ratio("-0.1").is_err());
        assert!(parse_ratio("lots").is_err());
    }

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn completions_and_man_pages_name_the_subcommands() {
        for shell in [
            clap_complete::Shell::Bash,
            clap_complete::Shell::Zsh,
            clap_complete::Shell::Fish,
        ] {
            let script = String::from_utf8(completions(shell)).unwrap();
            for sub in [
                "run", "plan", "resume", "abort", "status", "revert", "finish",
            ] {
                assert!(script.contains(sub), "{shell:?} completions lack {sub}");
            }
            assert!(script.contains("lock-timeout"), "{shell:?}");
        }
        let man = String::from_utf8(man_page(None).unwrap()).unwrap();
        assert!(man.contains(".TH pg-hotswap 1"), "{man}");
        assert!(man.contains(".SH SUBCOMMANDS"), "{man}");
        for sub in [
            "run", "plan", "resume", "abort", "status", "revert", "finish",
        ] {
            // roff escapes the dashes: pg\-hotswap\-run(1)
            let entry = format!("pg\\-hotswap\\-{sub}(1)");
            assert!(man.contains(&entry), "the man page lacks {entry}");
        }
        let run = String::from_utf8(man_page(Some("run")).unwrap()).unwrap();
        assert!(run.contains("lock\\-timeout"), "{run}");
        assert!(man_page(Some("nonsense")).is_err());
    }

    #[test]
    fn log_format_is_global() {
        let cli = Cli::try_parse_from([
            "pg-hotswap",
            "status",
            "--dsn",
            "host=h",
            "--log-format",
            "json",
        ])
        .unwrap();
        assert_eq!(cli.log_format, LogFormat::Json);
        let cli = Cli::try_parse_from(["pg-hotswap", "-q", "man"]).unwrap();
        assert_eq!(cli.log_format, LogFormat::Text);
        assert!(cli.quiet);
        assert!(Cli::try_parse_from(["pg-hotswap", "--log-format", "xml", "man"]).is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("100ms").unwrap(), Duration::from_millis(100));
        assert_eq!(parse_duration("2s").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("1m").unwrap(), Duration::from_secs(60));
        assert_eq!(parse_duration("250").unwrap(), Duration::from_millis(250));
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("10parsecs").is_err());
        assert!(parse_duration("-5ms").is_err());
        assert!(parse_duration("0ms").is_err());
        assert!(parse_duration("1; DROP TABLE t").is_err());
        assert!(parse_duration("1e400s").is_err());
        assert!(parse_duration("99999999999h").is_err());
        assert!(parse_duration("596h").is_ok());
    }

    #[test]
    fn state_schema_names_are_checked() {
        assert!(check_schema_name("--state-schema", "hotswap").is_ok());
        assert!(check_schema_name("--state-schema", "x; DROP TABLE t").is_ok());
        assert!(check_schema_name("--state-schema", "").is_err());
        assert!(check_schema_name("--state-schema", "pg_evil").is_err());
        assert!(check_schema_name("--state-schema", &"s".repeat(64)).is_err());
    }

    #[test]
    fn version_flag_takes_an_optional_dsn() {
        let v = |a: &[&str]| version_flag(&a.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(v(&["run", "--version"]), None);
        assert_eq!(v(&[]), None);
        assert_eq!(v(&["--version"]), Some(Ok(None)));
        assert_eq!(
            v(&["-V", "--dsn", "host=h"]),
            Some(Ok(Some("host=h".into())))
        );
        assert_eq!(v(&["-V", "--dsn=host=h"]), Some(Ok(Some("host=h".into()))));
        assert_eq!(v(&["--version", "--dsn"]), Some(Err(())));
        assert_eq!(v(&["--version", "extra", "x"]), Some(Err(())));
    }
}
