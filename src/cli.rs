//! The command line: flags parsed into plain, validated option structs; the core never sees
//! clap. Each flag's parsing has a unit test below.

use crate::conn::{self, ConnSpec};
use crate::error::{Error, Result};
use crate::locking::LockPolicy;
use crate::mapping::{self, MapArg};
use crate::migrator::{AbortOptions, RunOptions};
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(
    name = "pg-hotswap",
    version,
    about = "Rewrite large, hot PostgreSQL tables into a new shape without downtime",
    long_about = "Rewrite large, hot PostgreSQL tables into a new shape without downtime: a shadow \
                  table, triggers that capture every write, a parallel binary COPY, replay of the \
                  captured changes, and a name swap under a short lock timeout."
)]
pub struct Cli {
    /// More diagnostics on stderr (-v: debug, -vv: trace). RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Only errors and the final result.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Format of the log on stderr: text lines (a live progress bar on a terminal), or one JSON
    /// object per line (timestamp, level, message, fields) for log collectors.
    #[arg(long, value_enum, global = true, default_value_t = LogFormat::Text, env = "PGHOTSWAP_LOG_FORMAT")]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Rewrite a table online (continues an interrupted run of the same table and arguments).
    Run(RunArgs),
    /// Continue a paused run, or continue the table's stopped run with the arguments it was
    /// started with (after Ctrl-C, a crash, lock attempts exhausted...; the same as repeating the
    /// original `run` command).
    Resume(ResumeArgs),
    /// Show what a run would do, the locks it takes, the disk it needs and how long it takes
    /// (measured on a sample), changing nothing. Same options as run.
    Plan(RunArgs),
    /// Remove everything a run created; the table is left as it was. A running run is asked to
    /// stop (from any terminal) and removes its objects itself.
    Abort(AbortArgs),
    /// Pause a running run from any terminal: copying, replay and the swap stop within a second
    /// (writes are still captured). `pg-hotswap resume` continues it.
    Pause(ControlArgs),
    /// Tell a running run to swap as soon as the shadow is ready (for `--cutover manual`; also
    /// overrides a closed `--window` for the swap).
    Cutover(ControlArgs),
    /// Show every recorded run: phase, status, progress, replay backlog, whether a process is
    /// working on it, and the error of a run that stopped.
    Status(StatusArgs),
    /// Start a throwaway PostgreSQL, load a sample table, and rewrite it int -> bigint online
    /// under a write load.
    Demo(DemoArgs),
    /// Swap the old table of a `--revertible` run back in, with every write made since the swap.
    Revert(RevertArgs),
    /// Drop the old table kept by the table's last rewrite, and its reverse capture.
    Finish(FinishArgs),
    /// Print a shell completion script to stdout, e.g.
    /// `pg-hotswap completions bash > /etc/bash_completion.d/pg-hotswap`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff) to stdout, e.g. `pg-hotswap man | man -l -`; with a
    /// subcommand, its own page (`pg-hotswap man run > pg-hotswap-run.1`).
    Man {
        /// A subcommand (run, plan, status...): print its page instead.
        subcommand: Option<String>,
    },
}

/// `--log-format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// The completion script for `shell`, generated from the flags' definitions.
pub fn completions(shell: clap_complete::Shell) -> Vec<u8> {
    use clap::CommandFactory;
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "pg-hotswap", &mut out);
    out
}

/// The manual page (roff), generated from the flags' definitions: the main page (which lists
/// every subcommand), or with `subcommand` that subcommand's page (`pg-hotswap-run(1)`).
pub fn man_page(subcommand: Option<&str>) -> Result<Vec<u8>> {
    use clap::CommandFactory;
    let cmd = Cli::command();
    let page = match subcommand {
        None => cmd,
        Some(name) => {
            let sub = cmd
                .find_subcommand(name)
                .filter(|s| s.get_name() != "help")
                .ok_or_else(|| Error::usage(format!("no subcommand {name:?}")))?;
            let full = format!("pg-hotswap-{}", sub.get_name());
            sub.clone()
                .name(full)
                .bin_name(format!("pg-hotswap {}", sub.get_name()))
                .version(env!("CARGO_PKG_VERSION"))
        }
    };
    let mut out = Vec::new();
    clap_mangen::Man::new(page)
        .render(&mut out)
        .map_err(|e| Error::failed(format!("rendering the manual page: {e}")))?;
    Ok(out)
}

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
    fn policy(&self) -> LockPolicy {
        LockPolicy {
            timeout: self.lock_timeout,
            attempts: self.max_lock_attempts,
            delay: self.retry_delay,
        }
    }
}

/// Pace and schedule: throttling, windows, start time, cut-over (issue 7). None of these change
/// the result, so a resumed run may use others.
#[derive(Args, Debug, Clone)]
pub struct PaceArgs {
    /// Hold copy and replay while replication lag (pg_stat_replication on this server, and each
    /// --replica-dsn) exceeds this, e.g. 10s.
    #[arg(long, value_parser = parse_duration)]
    pub max_lag: Option<Duration>,
    /// A standby whose replay lag counts for --max-lag (repeatable).
    #[arg(long = "replica-dsn", requires = "max_lag")]
    pub replica_dsns: Vec<String>,
    /// Hold copy and replay while more than this many other sessions of the database are active.
    #[arg(long, value_parser = clap::value_parser!(i64).range(1..))]
    pub max_active: Option<i64>,
    /// A read-only SELECT returning one boolean, checked every second; true holds copy and replay.
    #[arg(long)]
    pub throttle_query: Option<String>,
    /// After each chunk or replay batch, pause this many times its duration (0.5: work two
    /// thirds of the time).
    #[arg(long, default_value_t = 0.0, value_parser = parse_nice)]
    pub nice: f64,
    /// Only copy and swap inside this window: [DAYS ]HH:MM-HH:MM[ TIMEZONE], e.g.
    /// "Mon-Fri 01:00-05:00 Europe/Berlin" (repeatable; default time zone: the server's). Replay
    /// goes on outside it. A run may span several windows.
    #[arg(long = "window", value_parser = parse_window)]
    pub windows: Vec<crate::window::Window>,
    /// Do not start before this time: HH:MM (the next time the server's clock shows it) or a
    /// timestamp ('2026-11-22 01:00 Europe/Berlin').
    #[arg(long)]
    pub start_at: Option<String>,
    /// auto: swap as soon as the shadow is ready; manual: keep replaying and wait for
    /// `pg-hotswap cutover`.
    #[arg(long, value_enum, default_value_t = CutoverArg::Auto)]
    pub cutover: CutoverArg,
    /// Stop without swapping when the replay backlog has not shrunk for this long (the writes
    /// outpace replay).
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    pub converge_timeout: Duration,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum CutoverArg {
    Auto,
    Manual,
}

impl PaceArgs {
    fn into_options(self, lock: &LockArgs) -> Result<crate::governor::PaceOptions> {
        if let Some(q) = &self.throttle_query {
            if q.trim().is_empty() || q.contains('\0') {
                return Err(Error::usage(
                    "--throttle-query is empty or contains a NUL byte",
                ));
            }
        }
        if let Some(s) = &self.start_at {
            if s.trim().is_empty() || s.len() > 100 || s.contains('\0') {
                return Err(Error::usage(format!("--start-at {s:?} is not a time")));
            }
        }
        let replicas = self
            .replica_dsns
            .iter()
            .map(|d| resolve_conn(Some(d), lock.lock_timeout))
            .collect::<Result<Vec<_>>>()?;
        Ok(crate::governor::PaceOptions {
            max_lag: self.max_lag,
            replicas,
            max_active: self.max_active,
            throttle_query: self.throttle_query,
            nice: self.nice,
            windows: self.windows,
            start_at: self.start_at,
            cutover: match self.cutover {
                CutoverArg::Auto => crate::governor::Cutover::Auto,
                CutoverArg::Manual => crate::governor::Cutover::Manual,
            },
            converge_timeout: self.converge_timeout,
            ..crate::governor::PaceOptions::default()
        })
    }
}

fn parse_nice(s: &str) -> std::result::Result<f64, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a number"))?;
    if !(0.0..=100.0).contains(&v) {
        return Err("--nice must be between 0 and 100".into());
    }
    Ok(v)
}

fn parse_window(s: &str) -> std::result::Result<crate::window::Window, String> {
    crate::window::Window::parse(s)
}

#[derive(Args, Debug)]
pub struct ControlArgs {
    #[command(flatten)]
    pub conn: ConnArgs,
    /// The table whose running run to steer.
    #[arg(long)]
    pub table: String,
    #[arg(long, default_value = "hotswap")]
    pub state_schema: String,
}

impl ControlArgs {
    pub fn into_options(self) -> Result<crate::control::ControlOptions> {
        check_table(&self.table)?;
        check_schema_name("--state-schema", &self.state_schema)?;
        Ok(crate::control::ControlOptions {
            conn: resolve_conn(self.conn.dsn.as_deref(), Duration::from_millis(100))?,
            table: self.table,
            state_schema: self.state_schema,
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    pub conn: ConnArgs,
    /// The table: schema.table (quote mixed-case names: '"App"."My Table"'); without a schema,
    /// resolved through search_path.
    #[arg(long)]
    pub table: String,
    /// ALTER TABLE actions applied to the new table, without the ALTER TABLE prefix, e.g.
    /// "ALTER COLUMN id TYPE bigint, ADD COLUMN flags int NOT NULL DEFAULT 0". Without it the
    /// table is rebuilt as it is (an online VACUUM FULL).
    #[arg(long)]
    pub alter: Option<String>,
    /// col=<SQL expression over the old row> for a renamed or computed column (repeatable).
    #[arg(long = "map", value_parser = parse_map_arg)]
    pub maps: Vec<MapArg>,
    /// Parallel copy workers (each uses two connections) and index builds.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub jobs: u32,
    #[command(flatten)]
    pub lock: LockArgs,
    #[command(flatten)]
    pub pace: PaceArgs,
    #[command(flatten)]
    pub old_snapshots: OldSnapshotArgs,
    /// Drop the old table after the swap instead of keeping it as <table>_old.
    #[arg(long)]
    pub drop_old: bool,
    /// Schema for the tool's state tables and change logs.
    #[arg(long, default_value = "hotswap")]
    pub state_schema: String,
    /// Target rows per planned copy chunk: the unit of resume and of verification. With
    /// --chunk-time off also the rows of one copy transaction.
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(i64).range(1..))]
    pub chunk_rows: i64,
    /// About how long one copy transaction takes: each copies as many consecutive chunks as fill
    /// it, by the rate measured so far (first one chunk). "off" (or 0): one chunk each.
    #[arg(long, default_value = "2s", value_parser = parse_chunk_time)]
    pub chunk_time: Duration,
    /// Change-log rows replayed per transaction.
    #[arg(long, default_value_t = 5_000, value_parser = clap::value_parser!(i64).range(1..))]
    pub replay_batch: i64,
    /// Name of the shadow table (default <table>_new, or the first free <table>_newN).
    #[arg(long)]
    pub shadow_name: Option<String>,
    /// Name for the old table after the swap (default <table>_old, or the first free one).
    #[arg(long)]
    pub old_name: Option<String>,
    /// maintenance_work_mem for the index builds.
    #[arg(long, default_value = "256MB")]
    pub maintenance_work_mem: String,
    /// Verify the shadow against the source before the swap: every chunk (full), about one
    /// chunk in ten (sample), or not at all (off).
    #[arg(long, default_value = "full", value_parser = clap::value_parser!(crate::verify::Mode))]
    pub verify: crate::verify::Mode,
    /// Keep the old table in sync after the swap (a reverse capture on the new table), so that
    /// `pg-hotswap revert` can swap back without losing writes, until `pg-hotswap finish`.
    #[arg(long, conflicts_with = "drop_old")]
    pub revertible: bool,
    /// col=<SQL expression over the new row>: how an old column is computed on revert where it
    /// cannot be derived (a dropped or reshaped column). Repeatable.
    #[arg(long = "map-back", value_parser = parse_map_arg, requires = "revertible")]
    pub map_back: Vec<MapArg>,
    /// Format of the final report on stdout.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
    /// Do not rewrite: print the plan instead (the same as `pg-hotswap plan`).
    #[arg(long)]
    pub dry_run: bool,
    /// Plan only: how long to watch the table's write rate (for the replay estimate).
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub observe: Duration,
    /// Plan only: rows to copy as a sample (default 2% of the table, 20,000 to 200,000).
    #[arg(long, value_parser = clap::value_parser!(i64).range(1..))]
    pub sample_rows: Option<i64>,
    /// Plan only, superuser only: read free disk by running `df` on the database server
    /// (COPY ... FROM PROGRAM, in a rolled-back transaction). Off unless asked.
    #[arg(long)]
    pub df_on_server: bool,
}

/// Old snapshots before the swap (issue 21, input 6; src/snapshots.rs).
#[derive(Args, Debug)]
pub struct OldSnapshotArgs {
    /// Before the swap, wait up to this long for transactions whose snapshot is older than the
    /// new table's rows (after the swap they would see the table without them); 0 or off: do
    /// not wait, only warn (or stop, with --old-snapshots stop).
    #[arg(long, default_value = "60s", value_parser = parse_wait)]
    pub wait_old_snapshots: Duration,
    /// When such transactions outlive the wait: swap anyway with a warning naming them
    /// (proceed), or stop before the swap, resumable (stop).
    #[arg(long, value_enum, default_value_t = crate::snapshots::OldSnapshotPolicy::Proceed)]
    pub old_snapshots: crate::snapshots::OldSnapshotPolicy,
}

impl OldSnapshotArgs {
    fn options(&self) -> crate::snapshots::OldSnapshotOptions {
        crate::snapshots::OldSnapshotOptions {
            wait: self.wait_old_snapshots,
            policy: self.old_snapshots,
        }
    }
}

#[derive(Args, Debug)]
pub struct AbortArgs {
    #[command(flatten)]
    pub conn: ConnArgs,
    /// The table whose unfinished run to remove.
    #[arg(long)]
    pub table: String,
    #[arg(long, default_value = "hotswap")]
    pub state_schema: String,
    #[command(flatten)]
    pub lock: LockArgs,
    /// How long to wait for a running run to stop and clean up after the request.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub wait: Duration,
}

#[derive(Args, Debug)]
pub struct StatusArgs {
    #[command(flatten)]
    pub conn: ConnArgs,
    /// Only the runs of this table.
    #[arg(long)]
    pub table: Option<String>,
    #[arg(long, default_value = "hotswap")]
    pub state_schema: String,
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

impl StatusArgs {
    pub fn into_options(self) -> Result<crate::status::StatusOptions> {
        check_schema_name("--state-schema", &self.state_schema)?;
        if let Some(t) = &self.table {
            check_table(t)?;
        }
        Ok(crate::status::StatusOptions {
            conn: resolve_conn(
                self.conn.dsn.as_deref(),
                std::time::Duration::from_millis(100),
            )?,
            state_schema: self.state_schema,
            table: self.table,
        })
    }
}

#[derive(Args, Debug)]
pub struct ResumeArgs {
    #[command(flatten)]
    pub conn: ConnArgs,
    /// The table whose unfinished run to continue.
    #[arg(long)]
    pub table: String,
    #[arg(long, default_value = "hotswap")]
    pub state_schema: String,
    /// Parallel copy workers and index builds.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub jobs: u32,
    #[command(flatten)]
    pub lock: LockArgs,
    #[command(flatten)]
    pub pace: PaceArgs,
    #[command(flatten)]
    pub old_snapshots: OldSnapshotArgs,
    /// Drop the old table after the swap instead of keeping it.
    #[arg(long)]
    pub drop_old: bool,
    /// Verify the shadow against the source before the swap (full, sample, off).
    #[arg(long, default_value = "full", value_parser = clap::value_parser!(crate::verify::Mode))]
    pub verify: crate::verify::Mode,
    /// About how long one copy transaction takes ("off": one chunk each).
    #[arg(long, default_value = "2s", value_parser = parse_chunk_time)]
    pub chunk_time: Duration,
    /// Format of the final report on stdout.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

impl ResumeArgs {
    /// The options of the resumed run, except the ones that decide its result, which
    /// `migrator::recorded_options` takes from the recorded run.
    pub fn into_options(self) -> Result<RunOptions> {
        check_table(&self.table)?;
        check_schema_name("--state-schema", &self.state_schema)?;
        Ok(RunOptions {
            conn: conn_spec(&self.conn, &self.lock)?,
            lock: self.lock.policy(),
            table: self.table,
            alter: None,
            maps: Vec::new(),
            jobs: self.jobs as usize,
            drop_old: self.drop_old,
            state_schema: self.state_schema,
            chunk_rows: 100_000,
            chunk_time: chunk_time_option(self.chunk_time),
            replay_batch: 5_000,
            shadow_name: None,
            old_name: None,
            maintenance_work_mem: "256MB".into(),
            verify: self.verify,
            revertible: false,
            map_back: Vec::new(),
            old_snapshots: self.old_snapshots.options(),
            pace: self.pace.into_options(&self.lock)?,
        })
    }
}

#[derive(Args, Debug)]
pub struct RevertArgs {
    #[command(flatten)]
    pub conn: ConnArgs,
    /// The table (the new one, as it is named now).
    #[arg(long)]
    pub table: String,
    #[arg(long, default_value = "hotswap")]
    pub state_schema: String,
    #[command(flatten)]
    pub lock: LockArgs,
    /// Change-log rows replayed per transaction.
    #[arg(long, default_value_t = 5_000, value_parser = clap::value_parser!(i64).range(1..))]
    pub replay_batch: i64,
}

impl RevertArgs {
    pub fn into_options(self) -> Result<crate::revert::RevertOptions> {
        check_table(&self.table)?;
        check_schema_name("--state-schema", &self.state_schema)?;
        Ok(crate::revert::RevertOptions {
            conn: conn_spec(&self.conn, &self.lock)?,
            lock: self.lock.policy(),
            table: self.table,
            state_schema: self.state_schema,
            replay_batch: self.replay_batch,
        })
    }
}

#[derive(Args, Debug)]
pub struct FinishArgs {
    #[command(flatten)]
    pub conn: ConnArgs,
    /// The table (as it is named now).
    #[arg(long)]
    pub table: String,
    #[arg(long, default_value = "hotswap")]
    pub state_schema: String,
    #[command(flatten)]
    pub lock: LockArgs,
}

impl FinishArgs {
    pub fn into_options(self) -> Result<crate::revert::FinishOptions> {
        check_table(&self.table)?;
        check_schema_name("--state-schema", &self.state_schema)?;
        Ok(crate::revert::FinishOptions {
            conn: conn_spec(&self.conn, &self.lock)?,
            lock: self.lock.policy(),
            table: self.table,
            state_schema: self.state_schema,
        })
    }
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
fn parse_wait(s: &str) -> std::result::Result<Duration, String> {
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

/// `--chunk-time`: a duration, or "off" / "0" (zero: one chunk per transaction).
pub fn parse_chunk_time(s: &str) -> std::result::Result<Duration, String> {
    match s.trim() {
        "off" | "0" => Ok(Duration::ZERO),
        other => parse_duration(other),
    }
}

fn chunk_time_option(d: Duration) -> Option<Duration> {
    (!d.is_zero()).then_some(d)
}

/// True when `sql` has a `;` outside quotes and comments: more than one statement. `--alter` is
/// applied as `ALTER TABLE <shadow> <actions>` and must stay exactly that one statement (the
/// server refuses a second one too: the ALTER goes over the extended protocol).
pub fn has_top_level_semicolon(sql: &str) -> bool {
    crate::alter_text::has_top_level_semicolon(sql)
}

fn parse_map_arg(s: &str) -> std::result::Result<MapArg, String> {
    mapping::parse_map(s)
}

/// `--state-schema`: a name PostgreSQL lets a user create (not `pg_...`, reserved for system
/// schemas), checked here rather than failing later.
fn check_schema_name(what: &str, v: &str) -> Result<()> {
    check_name(what, v)?;
    if v.starts_with("pg_") {
        return Err(Error::usage(format!(
            "{what} {v:?}: names starting with pg_ are reserved for system schemas"
        )));
    }
    Ok(())
}

fn check_name(what: &str, v: &str) -> Result<()> {
    if v.is_empty() {
        return Err(Error::usage(format!("{what} is empty")));
    }
    if v.len() > crate::ident::MAX_IDENT_BYTES {
        return Err(Error::usage(format!(
            "{what} {v:?} is longer than 63 bytes"
        )));
    }
    if v.contains('\0') {
        return Err(Error::usage(format!("{what} contains a NUL byte")));
    }
    Ok(())
}

/// Resolves the connection and says what resolving noticed (a password file ignored): `conn`
/// returns its warnings instead of printing them (issue 17).
fn resolve_conn(dsn: Option<&str>, lock_timeout: Duration) -> Result<ConnSpec> {
    let spec = conn::resolve_spec(dsn, lock_timeout)?;
    for w in &spec.warnings {
        crate::ui::say(w);
    }
    Ok(spec)
}

fn conn_spec(c: &ConnArgs, lock: &LockArgs) -> Result<ConnSpec> {
    resolve_conn(c.dsn.as_deref(), lock.lock_timeout)
}

fn check_table(t: &str) -> Result<()> {
    if t.trim().is_empty() {
        return Err(Error::usage("--table is empty"));
    }
    if t.contains('\0') {
        return Err(Error::usage("--table contains a NUL byte"));
    }
    Ok(())
}

impl RunArgs {
    pub fn into_options(self) -> Result<RunOptions> {
        check_table(&self.table)?;
        check_schema_name("--state-schema", &self.state_schema)?;
        if let Some(n) = &self.shadow_name {
            check_name("--shadow-name", n)?;
        }
        if let Some(n) = &self.old_name {
            check_name("--old-name", n)?;
        }
        if let Some(a) = &self.alter {
            if a.trim().is_empty() {
                return Err(Error::usage(
                    "--alter is empty; leave it out to rebuild the table as it is",
                ));
            }
            if a.contains('\0') {
                return Err(Error::usage("--alter contains a NUL byte"));
            }
            if has_top_level_semicolon(a) {
                return Err(Error::usage(
                    "--alter must be the actions of one ALTER TABLE (comma-separated), without ';' \
                     (a RENAME COLUMN has to be its own run, as in PostgreSQL)",
                ));
            }
        }
        let mwm = self.maintenance_work_mem.trim();
        if mwm.is_empty() || !mwm.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(Error::usage(format!(
                "--maintenance-work-mem {mwm:?} is not a memory size (e.g. 256MB, 1GB)"
            )));
        }
        Ok(RunOptions {
            conn: conn_spec(&self.conn, &self.lock)?,
            lock: self.lock.policy(),
            table: self.table,
            alter: self.alter,
            maps: self.maps,
            jobs: self.jobs as usize,
            drop_old: self.drop_old,
            state_schema: self.state_schema,
            chunk_rows: self.chunk_rows,
            chunk_time: chunk_time_option(self.chunk_time),
            replay_batch: self.replay_batch,
            shadow_name: self.shadow_name,
            old_name: self.old_name,
            maintenance_work_mem: mwm.to_string(),
            verify: self.verify,
            revertible: self.revertible,
            map_back: self.map_back,
            old_snapshots: self.old_snapshots.options(),
            pace: self.pace.into_options(&self.lock)?,
        })
    }
}

impl RunArgs {
    /// The options of `plan` (and `run --dry-run`).
    pub fn into_plan_options(self) -> Result<crate::planner::PlanOptions> {
        let (observe, sample_rows, df_on_server) =
            (self.observe, self.sample_rows, self.df_on_server);
        Ok(crate::planner::PlanOptions {
            run: self.into_options()?,
            observe,
            sample_rows,
            df_on_server,
        })
    }
}

impl AbortArgs {
    pub fn into_options(self) -> Result<AbortOptions> {
        check_table(&self.table)?;
        check_schema_name("--state-schema", &self.state_schema)?;
        Ok(AbortOptions {
            conn: conn_spec(&self.conn, &self.lock)?,
            lock: self.lock.policy(),
            table: self.table,
            state_schema: self.state_schema,
            wait: self.wait,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

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
    fn old_snapshot_flags() {
        use crate::snapshots::{OldSnapshotOptions, OldSnapshotPolicy};
        let parse = |extra: &[&str]| {
            let mut args = vec!["pg-hotswap", "run", "--dsn", "host=h", "--table", "t"];
            args.extend_from_slice(extra);
            match Cli::try_parse_from(args) {
                Ok(Cli {
                    command: Command::Run(r),
                    ..
                }) => Ok(r.old_snapshots.options()),
                Ok(_) => panic!("not a run"),
                Err(e) => Err(e.to_string()),
            }
        };
        assert_eq!(parse(&[]).unwrap(), OldSnapshotOptions::default());
        assert_eq!(
            parse(&["--wait-old-snapshots", "5s", "--old-snapshots", "stop"]).unwrap(),
            OldSnapshotOptions {
                wait: Duration::from_secs(5),
                policy: OldSnapshotPolicy::Stop
            }
        );
        assert!(parse(&["--old-snapshots", "sometimes"]).is_err());
        assert!(parse(&["--wait-old-snapshots", "soon"]).is_err());
        // Zero means do not wait (found by a fresh tester: 0s was refused).
        for zero in ["0", "0s", "off", "0ms"] {
            assert_eq!(
                parse(&["--wait-old-snapshots", zero]).unwrap().wait,
                Duration::ZERO,
                "{zero}"
            );
        }
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
    fn chunk_time_is_a_duration_or_off() {
        let opts = |extra: &[&str]| {
            let mut a = vec!["pg-hotswap", "run", "--dsn", "host=h", "--table", "t"];
            a.extend_from_slice(extra);
            let Command::Run(args) = Cli::try_parse_from(a).unwrap().command else {
                panic!("not run")
            };
            args.into_options().unwrap().chunk_time
        };
        assert_eq!(opts(&[]), Some(Duration::from_secs(2)));
        assert_eq!(
            opts(&["--chunk-time", "500ms"]),
            Some(Duration::from_millis(500))
        );
        assert_eq!(opts(&["--chunk-time", "off"]), None);
        assert_eq!(opts(&["--chunk-time", "0"]), None);
        assert!(parse_chunk_time("soon").is_err());
        let Command::Resume(r) = Cli::try_parse_from([
            "pg-hotswap",
            "resume",
            "--dsn",
            "host=h",
            "--table",
            "t",
            "--chunk-time",
            "off",
        ])
        .unwrap()
        .command
        else {
            panic!("not resume")
        };
        assert_eq!(r.into_options().unwrap().chunk_time, None);
    }

    #[test]
    fn run_flags_parse_into_options() {
        let cli = Cli::try_parse_from([
            "pg-hotswap",
            "run",
            "--dsn",
            "host=h dbname=d user=u",
            "--table",
            "app.t",
            "--alter",
            "ALTER COLUMN id TYPE bigint",
            "--map",
            "b=a+1",
            "--jobs",
            "3",
            "--lock-timeout",
            "50ms",
            "--max-lock-attempts",
            "5",
        ])
        .unwrap();
        let Command::Run(args) = cli.command else {
            panic!("not run")
        };
        let o = args.into_options().unwrap();
        assert_eq!(o.jobs, 3);
        assert_eq!(o.lock.timeout, Duration::from_millis(50));
        assert_eq!(o.lock.attempts, 5);
        assert_eq!(o.maps[0].column.as_str(), "b");
        assert_eq!(o.conn.config.get_user(), Some("u"));
    }

    #[test]
    fn plan_and_dry_run_take_the_run_options() {
        for args in [
            vec![
                "pg-hotswap",
                "plan",
                "--dsn",
                "host=h",
                "--table",
                "t",
                "--jobs",
                "2",
            ],
            vec![
                "pg-hotswap",
                "run",
                "--dry-run",
                "--dsn",
                "host=h",
                "--table",
                "t",
                "--jobs",
                "2",
            ],
        ] {
            let cli = Cli::try_parse_from(args).unwrap();
            let a = match cli.command {
                Command::Plan(a) => a,
                Command::Run(a) => {
                    assert!(a.dry_run);
                    a
                }
                _ => panic!("not plan"),
            };
            let o = a.into_plan_options().unwrap();
            assert_eq!(o.run.jobs, 2);
            assert_eq!(o.observe, Duration::from_secs(2));
        }
        let cli = Cli::try_parse_from([
            "pg-hotswap",
            "plan",
            "--dsn",
            "host=h",
            "--table",
            "t",
            "--observe",
            "500ms",
            "--sample-rows",
            "1000",
        ])
        .unwrap();
        let Command::Plan(a) = cli.command else {
            panic!()
        };
        let o = a.into_plan_options().unwrap();
        assert_eq!(o.observe, Duration::from_millis(500));
        assert_eq!(o.sample_rows, Some(1000));
    }

    #[test]
    fn alter_is_one_statement() {
        assert!(!has_top_level_semicolon(
            "ALTER COLUMN id TYPE bigint, ADD COLUMN n text DEFAULT ';'"
        ));
        assert!(!has_top_level_semicolon("ADD COLUMN \"a;b\" int"));
        assert!(!has_top_level_semicolon(
            "ADD COLUMN s text DEFAULT 'it''s;'"
        ));
        assert!(has_top_level_semicolon(
            "ADD COLUMN a int; DROP TABLE users"
        ));
        assert!(has_top_level_semicolon(
            "ADD COLUMN a int -- x\n; DROP TABLE users"
        ));
        let cli = Cli::try_parse_from([
            "pg-hotswap",
            "run",
            "--dsn",
            "host=h",
            "--table",
            "t",
            "--alter",
            "ADD COLUMN a int; DROP TABLE t",
        ])
        .unwrap();
        let Command::Run(a) = cli.command else {
            panic!()
        };
        assert_eq!(
            a.into_options().unwrap_err().kind(),
            crate::error::Kind::Usage
        );
    }

    #[test]
    fn bad_flags_are_rejected() {
        assert!(Cli::try_parse_from(["pg-hotswap", "run", "--table", "t", "--jobs", "0"]).is_err());
        assert!(
            Cli::try_parse_from(["pg-hotswap", "run", "--table", "t", "--map", "nonsense"])
                .is_err()
        );
        assert!(Cli::try_parse_from(["pg-hotswap", "run"]).is_err());
        let cli = Cli::try_parse_from([
            "pg-hotswap",
            "run",
            "--dsn",
            "host=h",
            "--table",
            "t",
            "--alter",
            "  ",
        ])
        .unwrap();
        let Command::Run(a) = cli.command else {
            panic!()
        };
        assert!(a.into_options().is_err());
        let cli = Cli::try_parse_from([
            "pg-hotswap",
            "run",
            "--dsn",
            "host=h",
            "--table",
            "t",
            "--maintenance-work-mem",
            "1GB'; DROP TABLE x; --",
        ])
        .unwrap();
        let Command::Run(a) = cli.command else {
            panic!()
        };
        assert!(a.into_options().is_err());
    }
}
