//! Benchmark: pg-hotswap against a blocking `ALTER TABLE`, pg_repack and a batched
//! `INSERT ... SELECT` copier, on one throwaway cluster (DESIGN.md, "Measuring, not guessing").
//!
//! ```text
//! cargo bench --bench compare -- [--quick] [--rows N] [--runs K] [--load RATE | --no-load]
//!                                [--writers W] [--only NAME,NAME] [--verify | --no-verify]
//!                                [--chunk-rows N]
//! ```
//!
//! `--only` also takes `hotswap-j1-fixed` and `hotswap-j2-fixed` (not run by default): pg-hotswap
//! with `--chunk-time off`, one planned chunk per copy transaction, to compare with the adaptive
//! default. `--chunk-rows N` is passed to every pg-hotswap run (and its plan).
//!
//! Issue 16, the fast path: `alter-add-column` is the blocking `ALTER TABLE ... ADD COLUMN flags
//! int` (no rewrite), `hotswap-fast` pg-hotswap with the same ALTER, applied in place, and
//! `hotswap-fast-forced` (with `--only`) the same with `--force-rewrite`: the full copy it made
//! before. `--rows` takes any count (`--rows 20_000_000`): nothing in the bench has a time limit
//! per contender, and the client's RSS is reported per size.
//!
//! Every contender rewrites a freshly made, identical table `public.t (id int PRIMARY KEY, val
//! int, note text)` plus an index on `val` (copied from one template table, then `VACUUM
//! ANALYZE` and `CHECKPOINT`, so no contender inherits another's dirty buffers or unset hint
//! bits). The order of the contenders rotates from run to run, so caching favours none of them.
//! For each rewrite it measures the wall time, the longest ACCESS EXCLUSIVE hold, the longest
//! stall of a probe that reads the table every 10 ms, the WAL written, the peak RSS and CPU time
//! of the client process (pg-hotswap, pg_repack), and, under a concurrent write load
//! ([`pg_hotswap::demo::workload`]), the writers' latency. Medians over the runs and ratios to the
//! blocking `ALTER TABLE` are printed as markdown on stdout; progress goes to stderr. The bench
//! writes nothing into the repository.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use pg_hotswap::demo::cluster::{Cluster, ClusterOptions};
use pg_hotswap::demo::workload::{self, TableSpec, WorkloadConfig};
use tokio::io::AsyncReadExt;
use tokio_postgres::{Client, NoTls};

/// Errors of the bench: a message with its causes (no error crate among the dependencies).
type Error = Box<dyn std::error::Error + Send + Sync>;
type Result<T, E = Error> = std::result::Result<T, E>;

macro_rules! bail {
    ($($arg:tt)*) => {
        return Err(format!($($arg)*).into())
    };
}

/// `anyhow`-style context for results and options.
trait Context<T> {
    fn context(self, what: impl std::fmt::Display) -> Result<T>;
    fn with_context<M: std::fmt::Display>(self, what: impl FnOnce() -> M) -> Result<T>;
}

impl<T, E: std::error::Error> Context<T> for Result<T, E> {
    fn context(self, what: impl std::fmt::Display) -> Result<T> {
        self.map_err(|e| format!("{what}: {}", chain(&e)).into())
    }
    fn with_context<M: std::fmt::Display>(self, what: impl FnOnce() -> M) -> Result<T> {
        self.map_err(|e| format!("{}: {}", what(), chain(&e)).into())
    }
}

/// An error with its causes (a `tokio_postgres::Error` shows the server's message only there).
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let c_text = c.to_string();
        if !text.contains(&c_text) {
            text.push_str(": ");
            text.push_str(&c_text);
        }
        cause = c.source();
    }
    text
}

impl<T> Context<T> for Option<T> {
    fn context(self, what: impl std::fmt::Display) -> Result<T> {
        self.ok_or_else(|| what.to_string().into())
    }
    fn with_context<M: std::fmt::Display>(self, what: impl FnOnce() -> M) -> Result<T> {
        self.ok_or_else(|| what().to_string().into())
    }
}

/// The pg-hotswap binary, built by `cargo bench` with the bench (release) profile; the
/// environment variable `PGHOTSWAP_BIN` points the bench at another build (a copy that a
/// concurrent `cargo build` cannot replace halfway through a long run).
const HOTSWAP_BIN: &str = env!("CARGO_BIN_EXE_pg-hotswap");
/// The one schema change every type-changing contender makes.
const ALTER_ACTION: &str = "ALTER COLUMN id TYPE bigint";
/// The ALTER of the fast-path contenders (issue 16): one PostgreSQL applies without a rewrite.
const FAST_ACTION: &str = "ADD COLUMN flags int";
/// Rows per batch of the `INSERT ... SELECT` copier (pg-osc's default is 1,000; 10,000 is kinder
/// to it).
const COPIER_BATCH: i64 = 10_000;
/// How often the read probe queries the table.
const PROBE_EVERY: Duration = Duration::from_millis(10);
/// How often a client process's /proc entry is read for its peak RSS and CPU time.
const PROC_POLL: Duration = Duration::from_millis(20);
/// The writers run this long before the contender starts (connections are up, latency settled).
const LOAD_LEAD: Duration = Duration::from_millis(500);
/// How long the `idle` contender lets the write load run without a tool.
const IDLE_SECS: u64 = 10;

/// Settings of the benchmark cluster; the same for every contender.
const SETTINGS: [(&str, &str); 8] = [
    ("shared_buffers", "1GB"),
    ("max_wal_size", "8GB"),
    ("min_wal_size", "1GB"),
    ("checkpoint_timeout", "30min"),
    ("maintenance_work_mem", "256MB"),
    // pg-hotswap turns JIT off for its sessions; the same for everyone.
    ("jit", "off"),
    // No autovacuum of a freshly loaded table in the middle of one contender's run but not
    // another's: the bench vacuums every table itself before each run.
    ("autovacuum", "off"),
    ("log_min_messages", "warning"),
];

#[derive(Clone, Debug)]
struct Opts {
    rows: i64,
    runs: usize,
    /// Total transactions per second of the write load; `None`: no load.
    load: Option<u32>,
    writers: usize,
    verify: bool,
    only: Option<Vec<String>>,
    /// `--chunk-rows` for pg-hotswap (its default when `None`).
    chunk_rows: Option<i64>,
}

const USAGE: &str = "usage: cargo bench --bench compare -- [--quick] [--rows N] [--runs K] \
                     [--load RATE | --no-load] [--writers W] [--only NAME,NAME] [--verify | --no-verify] [--chunk-rows N]\n\
                     contenders: alter, repack, batched, hotswap-j1, hotswap-j2, hotswap-j4, hotswap-noop-j1,\n\
                     alter-add-column, hotswap-fast\n\
                     (with --only also: hotswap-j1-fixed, hotswap-j2-fixed: --chunk-time off; hotswap-fast-forced)";

fn parse_args(args: &[String]) -> Result<Opts> {
    let mut quick = false;
    let mut rows = None;
    let mut runs = None;
    let mut load = Some(1000u32);
    let mut writers = 4usize;
    let mut verify = None;
    let mut only = None;
    let mut chunk_rows = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .cloned()
                .with_context(|| format!("{name} needs a value\n{USAGE}"))
        };
        match a.as_str() {
            "--bench" => {}
            "--quick" => quick = true,
            "--rows" => rows = Some(value("--rows")?.replace('_', "").parse::<i64>()?),
            "--runs" => runs = Some(value("--runs")?.parse::<usize>()?),
            "--load" => load = Some(value("--load")?.parse::<u32>()?),
            "--no-load" => load = None,
            "--writers" => writers = value("--writers")?.parse::<usize>()?,
            "--verify" => verify = Some(true),
            "--no-verify" => verify = Some(false),
            "--chunk-rows" => {
                chunk_rows = Some(value("--chunk-rows")?.replace('_', "").parse::<i64>()?)
            }
            "--only" => {
                only = Some(
                    value("--only")?
                        .split(',')
                        .map(|s| s.trim().to_string())
                        .collect(),
                )
            }
            other => bail!("unknown argument {other:?}\n{USAGE}"),
        }
    }
    let rows = rows.unwrap_or(if quick { 200_000 } else { 5_000_000 });
    if rows < 1 {
        bail!("--rows must be at least 1");
    }
    Ok(Opts {
        rows,
        runs: runs.unwrap_or(3).max(1),
        load: load.filter(|r| *r > 0),
        writers: writers.max(1),
        // Comparing table and ledger row by row takes a while on big tables.
        verify: verify.unwrap_or(rows <= 1_000_000),
        only,
        chunk_rows,
    })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Contender {
    /// No tool: the write load alone for [`IDLE_SECS`] — the writers' latency without a rewrite.
    Idle,
    /// pg-hotswap `--jobs 1 --nice 1`: the throttled run whose write p99 is compared with idle.
    Polite,
    Alter,
    Repack,
    Batched,
    /// `fixed`: `--chunk-time off`.
    Hotswap {
        jobs: u32,
        noop: bool,
        fixed: bool,
    },
    /// The blocking `ALTER TABLE ... ADD COLUMN` ([`FAST_ACTION`]): what the fast path is
    /// compared with.
    AlterAdd,
    /// pg-hotswap with [`FAST_ACTION`] (issue 16): applied in place, no copy; `forced`:
    /// `--force-rewrite`, the full copy it used to make.
    Fast {
        forced: bool,
    },
}

impl Contender {
    fn all() -> Vec<Contender> {
        vec![
            Contender::Idle,
            Contender::Polite,
            Contender::Alter,
            Contender::Repack,
            Contender::Batched,
            Contender::Hotswap {
                jobs: 1,
                noop: false,
                fixed: false,
            },
            Contender::Hotswap {
                jobs: 2,
                noop: false,
                fixed: false,
            },
            Contender::Hotswap {
                jobs: 4,
                noop: false,
                fixed: false,
            },
            Contender::Hotswap {
                jobs: 1,
                noop: true,
                fixed: false,
            },
            Contender::AlterAdd,
            Contender::Fast { forced: false },
        ]
    }

    /// Contenders run only when `--only` names them.
    fn extra() -> Vec<Contender> {
        [1, 2]
            .into_iter()
            .map(|jobs| Contender::Hotswap {
                jobs,
                noop: false,
                fixed: true,
            })
            .chain([Contender::Fast { forced: true }])
            .collect()
    }

    fn name(self) -> String {
        match self {
            Contender::Idle => "idle".into(),
            Contender::Polite => "hotswap-j1-nice1".into(),
            Contender::Alter => "alter".into(),
            Contender::Repack => "repack".into(),
            Contender::Batched => "batched".into(),
            Contender::Hotswap {
                jobs,
                noop: false,
                fixed,
            } => format!("hotswap-j{jobs}{}", if fixed { "-fixed" } else { "" }),
            Contender::Hotswap {
                jobs,
                noop: true,
                fixed,
            } => format!("hotswap-noop-j{jobs}{}", if fixed { "-fixed" } else { "" }),
            Contender::AlterAdd => "alter-add-column".into(),
            Contender::Fast { forced: false } => "hotswap-fast".into(),
            Contender::Fast { forced: true } => "hotswap-fast-forced".into(),
        }
    }

    fn describe(self) -> String {
        match self {
            Contender::Idle => format!("no tool: the write load alone for {IDLE_SECS} s"),
            Contender::Polite => "pg-hotswap bigint --jobs 1 --nice 1 (throttled)".into(),
            Contender::Alter => "ALTER TABLE ... TYPE bigint (blocking)".into(),
            Contender::Repack => "pg_repack --no-order (no-op rebuild)".into(),
            Contender::Batched => format!("INSERT ... SELECT by {COPIER_BATCH} + rename, bigint"),
            Contender::Hotswap {
                jobs,
                noop: false,
                fixed,
            } => format!(
                "pg-hotswap bigint --jobs {jobs}{}",
                if fixed { " --chunk-time off" } else { "" }
            ),
            Contender::Hotswap {
                jobs,
                noop: true,
                fixed,
            } => format!(
                "pg-hotswap no-op rebuild --jobs {jobs}{}",
                if fixed { " --chunk-time off" } else { "" }
            ),
            Contender::AlterAdd => format!("ALTER TABLE ... {FAST_ACTION} (blocking, no rewrite)"),
            Contender::Fast { forced: false } => {
                format!("pg-hotswap {FAST_ACTION}: in place, no rewrite (issue 16)")
            }
            Contender::Fast { forced: true } => {
                format!("pg-hotswap {FAST_ACTION} --force-rewrite: a full copy")
            }
        }
    }

    /// Whether the writers' changes must all be in the table afterwards.
    fn keeps_every_write(self) -> bool {
        matches!(
            self,
            Contender::Repack
                | Contender::Hotswap { .. }
                | Contender::Polite
                | Contender::Fast { .. }
        )
    }
}

/// One contender's run on one fresh table.
#[derive(Clone, Debug, Default)]
struct Sample {
    wall_s: f64,
    rows: i64,
    heap_bytes: i64,
    /// Peak RSS of the client process, kB (pg-hotswap, pg_repack).
    rss_kb: Option<f64>,
    /// User + system CPU of the client process.
    client_cpu_s: Option<f64>,
    /// The longest ACCESS EXCLUSIVE hold as the contender itself knows it (pg-hotswap's report,
    /// the ALTER statement, the copier's swap transaction); pg_repack: `None` (see the probe).
    lock_ms: Option<f64>,
    /// pg-hotswap only: how long the successful swap attempt held its lock.
    lock_held_ms: Option<f64>,
    /// The longest and 99th percentile latency of the read probe.
    probe_max_ms: f64,
    probe_p99_ms: f64,
    probe_errors: u64,
    wal_bytes: f64,
    write_p50_ms: Option<f64>,
    write_p99_ms: Option<f64>,
    write_max_ms: Option<f64>,
    write_tx: Option<f64>,
    write_errors: Option<f64>,
    /// pg-hotswap: seconds per phase.
    phases: Vec<(String, f64)>,
    /// pg-hotswap: `pg-hotswap plan`'s estimate of the total, made just before the run under the
    /// same load (issue 6: within 30% of the actual run).
    plan_estimate_s: Option<f64>,
    /// Table equal to the ledger afterwards (with load and `--verify`).
    verified: Option<bool>,
    /// The machine's 1-minute load average when the contender started (other work on the
    /// machine makes the figures noisy; this shows when).
    loadavg: f64,
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // `cargo test --benches` runs bench targets without `--bench`: nothing to measure there.
    if !args.iter().any(|a| a == "--bench") {
        eprintln!("compare: skipped (run it with `cargo bench --bench compare`)");
        return;
    }
    let opts = match parse_args(&args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = main_with(opts) {
        eprintln!("error: {}", chain(&*e));
        std::process::exit(1);
    }
}

fn main_with(opts: Opts) -> Result<()> {
    let bin = std::env::var_os("PGHOTSWAP_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(HOTSWAP_BIN));
    eprintln!("compare: pg-hotswap binary {}", bin.display());
    if !bin.is_file() {
        bail!(
            "the pg-hotswap binary is missing at {} (run `cargo build --release` or use `cargo bench`)",
            bin.display()
        );
    }
    let settings: Vec<(String, String)> = SETTINGS
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    eprintln!("compare: starting a throwaway cluster (durable, {settings:?})");
    let cluster = Cluster::start(&ClusterOptions {
        settings,
        quiet: true,
        durable: true,
        tls: false,
        password_auth: false,
    })
    .context("starting the benchmark cluster")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let result = runtime.block_on(bench(&cluster, &bin, &opts));
    runtime.shutdown_timeout(Duration::from_secs(2));
    drop(cluster);
    result
}

async fn connect(conninfo: &str) -> Result<Client> {
    let (client, conn) = tokio_postgres::connect(conninfo, NoTls)
        .await
        .with_context(|| format!("connecting to {conninfo}"))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(client)
}

struct Env<'a> {
    opts: &'a Opts,
    conninfo: String,
    port: u16,
    bin: &'a Path,
    repack: Option<PathBuf>,
    db: Client,
}

async fn bench(cluster: &Cluster, bin: &Path, opts: &Opts) -> Result<()> {
    let admin = connect(&cluster.conninfo("postgres")).await?;
    admin.batch_execute("CREATE DATABASE bench").await?;
    let conninfo = cluster.conninfo("bench");
    let db = connect(&conninfo).await?;
    let server_version: String = db.query_one("SHOW server_version", &[]).await?.get(0);
    let repack = find_repack(cluster, &db).await;

    let mut contenders: Vec<Contender> = Contender::all();
    if repack.is_none() {
        contenders.retain(|c| *c != Contender::Repack);
    }
    if let Some(only) = &opts.only {
        let known: Vec<Contender> = Contender::all()
            .into_iter()
            .chain(Contender::extra())
            .collect();
        for name in only {
            if !known.iter().any(|c| &c.name() == name) {
                bail!("--only: no contender named {name:?}\n{USAGE}");
            }
        }
        contenders.extend(Contender::extra());
        contenders.retain(|c| only.contains(&c.name()));
    }
    if contenders.is_empty() {
        bail!("no contender left to run");
    }

    eprintln!(
        "compare: PostgreSQL {server_version}, {} rows, {} run(s), load {}, contenders {}",
        opts.rows,
        opts.runs,
        match opts.load {
            Some(r) => format!("{r} tx/s over {} writers", opts.writers),
            None => "off".into(),
        },
        contenders
            .iter()
            .map(|c| c.name())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let t0 = Instant::now();
    // The template: exactly the rows `workload::create_tables` makes.
    db.execute(
        "CREATE TABLE public.tmpl AS \
         SELECT g::int AS id, (g % 1000)::int AS val, repeat(md5(g::text), 3) AS note \
           FROM generate_series(1, $1::int8) g",
        &[&opts.rows],
    )
    .await
    .context("creating the template table")?;
    db.batch_execute("VACUUM ANALYZE public.tmpl").await?;
    eprintln!(
        "compare: template of {} rows made in {:.1} s",
        opts.rows,
        t0.elapsed().as_secs_f64()
    );

    let env = Env {
        opts,
        conninfo,
        port: cluster.port(),
        bin,
        repack,
        db,
    };
    let mut samples: BTreeMap<String, Vec<Sample>> = BTreeMap::new();
    let mut failures: Vec<String> = Vec::new();
    for run in 0..opts.runs {
        // Rotate the order every run: no contender always goes first (or last).
        let n = contenders.len();
        for i in 0..n {
            let c = contenders[(i + run) % n];
            let setup = Instant::now();
            prepare_table(&env)
                .await
                .map_err(|e| format!("preparing the table: {}", chain(&*e)))?;
            let setup_s = setup.elapsed().as_secs_f64();
            match measure(&env, c).await {
                Ok(s) => {
                    eprintln!(
                        "run {}/{} {:<16} {:>7.2} s  load {:.1}  lock {}  probe max {:.1} ms  writes p99/max {}/{} ms  rss {}  wal {:.0} MB  (setup {:.1} s){}",
                        run + 1,
                        opts.runs,
                        c.name(),
                        s.wall_s,
                        s.loadavg,
                        opt(s.lock_ms, 1),
                        s.probe_max_ms,
                        opt(s.write_p99_ms, 1),
                        opt(s.write_max_ms, 1),
                        s.rss_kb
                            .map(|k| format!("{:.1} MB", k / 1024.0))
                            .unwrap_or_else(|| "-".into()),
                        s.wal_bytes / 1e6,
                        setup_s,
                        if s.phases.is_empty() {
                            String::new()
                        } else {
                            format!(
                                "  phases {}",
                                s.phases
                                    .iter()
                                    .map(|(p, t)| format!("{p} {t:.2}"))
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            )
                        }
                    );
                    samples.entry(c.name()).or_default().push(s);
                }
                Err(e) => {
                    let msg = format!("run {} {}: {}", run + 1, c.name(), chain(&*e));
                    eprintln!("FAILED {msg}");
                    failures.push(msg);
                }
            }
        }
    }
    eprintln!("compare: finished in {:.0} s", t0.elapsed().as_secs_f64());
    print_report(&env, &server_version, &contenders, &samples, &failures);
    Ok(())
}

/// Finds the pg_repack client and creates its extension; `None` (with a message) when either
/// is missing.
async fn find_repack(cluster: &Cluster, db: &Client) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let bin = std::env::split_paths(&path)
        .map(|d| d.join("pg_repack"))
        .chain([cluster.bindir().join("pg_repack")])
        .find(|p| p.is_file());
    let Some(bin) = bin else {
        eprintln!(
            "compare: pg_repack not found (PATH, {}): skipping it (Debian: apt-get install postgresql-15-repack)",
            cluster.bindir().display()
        );
        return None;
    };
    if let Err(e) = db.batch_execute("CREATE EXTENSION pg_repack").await {
        eprintln!(
            "compare: CREATE EXTENSION pg_repack failed ({}): skipping pg_repack",
            e.as_db_error()
                .map(|d| d.message().to_string())
                .unwrap_or_else(|| e.to_string())
        );
        return None;
    }
    Some(bin)
}

/// A fresh copy of the template as `public.t` (key + one index), its ledger when there is a
/// load, vacuumed, analyzed and checkpointed.
async fn prepare_table(env: &Env<'_>) -> Result<()> {
    let db = &env.db;
    db.batch_execute(
        "DROP TABLE IF EXISTS public.t, public.t_ledger, public.t_old, public.t_new CASCADE; \
         DROP SCHEMA IF EXISTS hotswap CASCADE; \
         CREATE TABLE public.t AS SELECT id, val, note FROM public.tmpl ORDER BY id; \
         ALTER TABLE public.t ADD PRIMARY KEY (id); \
         CREATE INDEX t_val_idx ON public.t (val)",
    )
    .await?;
    if env.opts.load.is_some() {
        // The ledger as `workload::create_tables` makes it: bigint, same rows.
        db.batch_execute(
            "CREATE TABLE public.t_ledger AS \
               SELECT id::bigint AS id, val::bigint AS val, note FROM public.tmpl ORDER BY id; \
             ALTER TABLE public.t_ledger ADD PRIMARY KEY (id)",
        )
        .await?;
        db.batch_execute("VACUUM ANALYZE public.t_ledger").await?;
    }
    // One statement per message: VACUUM cannot run in the implicit transaction of a
    // multi-statement message.
    db.batch_execute("VACUUM ANALYZE public.t").await?;
    db.batch_execute("CHECKPOINT").await?;
    Ok(())
}

/// Runs one contender on the prepared table with the probe and the load around it.
async fn measure(env: &Env<'_>, c: Contender) -> Result<Sample> {
    let db = &env.db;
    let heap_bytes: i64 = db
        .query_one("SELECT pg_relation_size('public.t')", &[])
        .await?
        .get(0);
    let lsn0: String = db
        .query_one("SELECT pg_current_wal_insert_lsn()::text", &[])
        .await?
        .get(0);
    let spec = TableSpec::simple("public", "t");
    let probe = Probe::start(&env.conninfo).await?;
    let load = env.opts.load.map(|rate| {
        workload::start(WorkloadConfig {
            conninfo: env.conninfo.clone(),
            spec: spec.clone(),
            writers: env.opts.writers,
            max_rate_per_sec: Some(rate),
            initial_rows: env.opts.rows,
        })
    });
    if load.is_some() {
        tokio::time::sleep(LOAD_LEAD).await;
    }

    // pg-hotswap: first its own estimate, with the same arguments and under the same load (not
    // part of the timed run).
    let estimate = match c {
        Contender::Hotswap { jobs, noop, fixed } => plan_estimate(env, jobs, noop, fixed).await,
        _ => None,
    };
    let loadavg = loadavg();
    let started = Instant::now();
    let outcome = match c {
        Contender::Idle => {
            tokio::time::sleep(Duration::from_secs(IDLE_SECS)).await;
            Ok(Sample::default())
        }
        Contender::Polite => run_hotswap_with(env, 1, false, false, &["--nice", "1"]).await,
        Contender::Alter => run_alter(env).await,
        Contender::Repack => run_repack(env).await,
        Contender::Batched => run_batched(env).await,
        Contender::Hotswap { jobs, noop, fixed } => run_hotswap(env, jobs, noop, fixed).await,
        Contender::AlterAdd => run_alter_action(env, FAST_ACTION).await,
        Contender::Fast { forced } => {
            let extra: &[&str] = if forced { &["--force-rewrite"] } else { &[] };
            run_hotswap_alter(env, 1, Some(FAST_ACTION), false, extra).await
        }
    };
    let wall_s = started.elapsed().as_secs_f64();

    let load_report = match load {
        Some(l) => Some(l.stop().await),
        None => None,
    };
    let probe_report = probe.stop().await;
    let mut s = outcome?;
    s.wall_s = wall_s;
    s.plan_estimate_s = estimate;
    s.loadavg = loadavg;
    s.rows = env.opts.rows;
    s.heap_bytes = heap_bytes;
    s.probe_max_ms = probe_report.latency.max() as f64 / 1000.0;
    s.probe_p99_ms = probe_report.latency.value_at_quantile(0.99) as f64 / 1000.0;
    s.probe_errors = probe_report.errors;
    let wal: i64 = db
        .query_one(
            "SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), $1::text::pg_lsn)::int8",
            &[&lsn0],
        )
        .await?
        .get(0);
    s.wal_bytes = wal as f64;
    if let Some(r) = &load_report {
        s.write_p50_ms = Some(r.p50_ms());
        s.write_p99_ms = Some(r.p99_ms());
        s.write_max_ms = Some(r.max_ms());
        s.write_tx = Some(r.transactions as f64);
        s.write_errors = Some(r.error_count as f64);
        if r.error_count > 0 && c.keeps_every_write() {
            eprintln!(
                "compare: {} under load: {} writer errors, e.g. {:?}",
                c.name(),
                r.error_count,
                r.errors.first()
            );
        }
        if env.opts.verify && c.keeps_every_write() {
            let cmp = workload::compare(db, &spec).await?;
            if !cmp.is_identical() {
                eprintln!("compare: {}: table and ledger differ: {cmp}", c.name());
            }
            s.verified = Some(cmp.is_identical());
        }
    }
    Ok(s)
}

async fn run_alter(env: &Env<'_>) -> Result<Sample> {
    run_alter_action(env, ALTER_ACTION).await
}

async fn run_alter_action(env: &Env<'_>, action: &str) -> Result<Sample> {
    let c = connect(&env.conninfo).await?;
    let t = Instant::now();
    c.batch_execute(&format!("ALTER TABLE public.t {action}"))
        .await
        .context("ALTER TABLE")?;
    Ok(Sample {
        // The statement holds ACCESS EXCLUSIVE from its start to its commit.
        lock_ms: Some(t.elapsed().as_secs_f64() * 1000.0),
        ..Sample::default()
    })
}

async fn run_repack(env: &Env<'_>) -> Result<Sample> {
    let bin = env.repack.as_ref().context("pg_repack is not available")?;
    let mut cmd = tokio::process::Command::new(bin);
    cmd.args(["-h", "127.0.0.1", "-p"])
        .arg(env.port.to_string())
        .args([
            "-U",
            "postgres",
            "-d",
            "bench",
            "-t",
            "public.t",
            // Keep the physical order, like pg-hotswap (no ORDER BY the key).
            "--no-order",
        ]);
    let out = run_process(cmd).await?;
    if !out.success {
        bail!("pg_repack failed: {}", out.stderr.trim());
    }
    Ok(Sample {
        rss_kb: out.peak_rss_kb,
        client_cpu_s: out.cpu_s,
        // Only the probe can see how long its lock stalled readers.
        lock_ms: None,
        ..Sample::default()
    })
}

/// A pg-osc style copier: the new table with its indexes, batches of `INSERT ... SELECT` in key
/// order, `ANALYZE`, and a rename under ACCESS EXCLUSIVE. No capture triggers: only the time
/// counts here, and writes made during the copy are lost (the writers see them missing).
async fn run_batched(env: &Env<'_>) -> Result<Sample> {
    let c = connect(&env.conninfo).await?;
    c.batch_execute(&format!(
        "CREATE TABLE public.t_new (LIKE public.t INCLUDING ALL); \
         ALTER TABLE public.t_new {ALTER_ACTION}"
    ))
    .await
    .context("creating the copier's new table")?;
    let batch = c
        .prepare(
            "WITH b AS MATERIALIZED (SELECT * FROM public.t WHERE id > $1::int8 ORDER BY id LIMIT $2::int8), \
                  i AS (INSERT INTO public.t_new SELECT * FROM b) \
             SELECT max(id)::int8, count(*)::int8 FROM b",
        )
        .await?;
    let mut last = i64::MIN;
    loop {
        let row = c.query_one(&batch, &[&last, &COPIER_BATCH]).await?;
        let (max, n): (Option<i64>, i64) = (row.get(0), row.get(1));
        match max {
            Some(m) if n > 0 => last = m,
            _ => break,
        }
        if n < COPIER_BATCH {
            break;
        }
    }
    c.batch_execute("ANALYZE public.t_new").await?;
    let mut c = c;
    let tx = c.transaction().await?;
    tx.batch_execute("LOCK TABLE public.t IN ACCESS EXCLUSIVE MODE")
        .await?;
    let locked = Instant::now();
    tx.batch_execute("ALTER TABLE public.t RENAME TO t_old; ALTER TABLE public.t_new RENAME TO t")
        .await?;
    tx.commit().await?;
    let held = locked.elapsed();
    c.batch_execute("DROP TABLE public.t_old").await?;
    Ok(Sample {
        lock_ms: Some(held.as_secs_f64() * 1000.0),
        ..Sample::default()
    })
}

/// `pg-hotswap plan` with the run's arguments: its estimate of the total, seconds. A failure
/// is reported and leaves the estimate out.
async fn plan_estimate(env: &Env<'_>, jobs: u32, noop: bool, fixed: bool) -> Option<f64> {
    let mut cmd = tokio::process::Command::new(env.bin);
    cmd.args(["--quiet", "plan", "--dsn"])
        .arg(&env.conninfo)
        .args(["--table", "public.t", "--jobs"])
        .arg(jobs.to_string())
        .args(["--output", "json", "--drop-old"]);
    chunk_args(&mut cmd, env, fixed);
    if !noop {
        cmd.args(["--alter", ALTER_ACTION]);
    }
    let out = match run_process(cmd).await {
        Ok(o) => o,
        Err(e) => {
            eprintln!("compare: pg-hotswap plan failed to start: {e}");
            return None;
        }
    };
    let report: Option<serde_json::Value> = serde_json::from_str(&out.stdout).ok();
    let est = report
        .as_ref()
        .and_then(|r| r.get("estimate")?.get("total_secs")?.as_f64());
    if est.is_none() {
        eprintln!(
            "compare: pg-hotswap plan gave no estimate: {}",
            out.stderr.trim()
        );
    }
    est
}

/// `--chunk-rows` (when the bench was given one) and `--chunk-time off` (fixed contenders).
fn chunk_args(cmd: &mut tokio::process::Command, env: &Env<'_>, fixed: bool) {
    if let Some(n) = env.opts.chunk_rows {
        cmd.arg("--chunk-rows").arg(n.to_string());
    }
    if fixed {
        cmd.args(["--chunk-time", "off"]);
    }
}

async fn run_hotswap(env: &Env<'_>, jobs: u32, noop: bool, fixed: bool) -> Result<Sample> {
    run_hotswap_with(env, jobs, noop, fixed, &[]).await
}

async fn run_hotswap_with(
    env: &Env<'_>,
    jobs: u32,
    noop: bool,
    fixed: bool,
    extra: &[&str],
) -> Result<Sample> {
    let alter = if noop { None } else { Some(ALTER_ACTION) };
    run_hotswap_alter(env, jobs, alter, fixed, extra).await
}

/// pg-hotswap `run` with `--alter alter` (none: a no-op rebuild).
async fn run_hotswap_alter(
    env: &Env<'_>,
    jobs: u32,
    alter: Option<&str>,
    fixed: bool,
    extra: &[&str],
) -> Result<Sample> {
    let mut cmd = tokio::process::Command::new(env.bin);
    cmd.args(["--quiet", "run", "--dsn"])
        .arg(&env.conninfo)
        .args(["--table", "public.t", "--jobs"])
        .arg(jobs.to_string())
        .args(["--output", "json", "--drop-old"])
        .args(extra);
    chunk_args(&mut cmd, env, fixed);
    if let Some(a) = alter {
        cmd.args(["--alter", a]);
    }
    let out = run_process(cmd).await?;
    if !out.success {
        bail!("pg-hotswap failed: {}", out.stderr.trim());
    }
    let report: serde_json::Value = serde_json::from_str(&out.stdout)
        .with_context(|| format!("pg-hotswap printed no JSON report: {:?}", out.stdout))?;
    let num = |k: &str| report.get(k).and_then(|v| v.as_f64());
    let phases = report
        .get("phases")
        .and_then(|p| p.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|p| Some((p.get(0)?.as_str()?.to_string(), p.get(1)?.as_f64()?)))
                .collect()
        })
        .unwrap_or_default();
    let copied = num("rows_copied").unwrap_or(0.0);
    // The fast path copies nothing (issue 16): its report lists the statements instead.
    let in_place = report.get("in_place").is_some_and(|v| v.is_array());
    if copied < env.opts.rows as f64 && !in_place {
        eprintln!(
            "compare: pg-hotswap copied {copied} rows of {} (report: {})",
            env.opts.rows,
            out.stdout.trim()
        );
    }
    Ok(Sample {
        rss_kb: out.peak_rss_kb,
        client_cpu_s: out.cpu_s,
        lock_ms: num("longest_lock_ms"),
        lock_held_ms: num("lock_held_ms"),
        phases,
        ..Sample::default()
    })
}

struct ProcOutcome {
    success: bool,
    stdout: String,
    stderr: String,
    peak_rss_kb: Option<f64>,
    cpu_s: Option<f64>,
}

/// Runs a client process to its end, reading its peak RSS (`VmHWM`) and CPU time from /proc
/// every [`PROC_POLL`] (the last reading before it exits).
async fn run_process(mut cmd: tokio::process::Command) -> Result<ProcOutcome> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().context("starting the client process")?;
    let pid = child.id().context("the client process has no pid")?;
    let mut stdout = child.stdout.take().context("no stdout pipe")?;
    let mut stderr = child.stderr.take().context("no stderr pipe")?;
    let out_task = tokio::spawn(async move {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s).await;
        s
    });
    let err_task = tokio::spawn(async move {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s).await;
        s
    });
    let ticks = clock_ticks();
    let mut peak_rss_kb: Option<f64> = None;
    let mut cpu_s: Option<f64> = None;
    let mut poll = tokio::time::interval(PROC_POLL);
    let status = loop {
        tokio::select! {
            status = child.wait() => break status?,
            _ = poll.tick() => {
                if let Some(kb) = proc_hwm_kb(pid) {
                    peak_rss_kb = Some(peak_rss_kb.unwrap_or(0.0).max(kb));
                }
                if let Some(t) = proc_cpu_ticks(pid) {
                    cpu_s = Some(t / ticks);
                }
            }
        }
    };
    Ok(ProcOutcome {
        success: status.success(),
        stdout: out_task.await.unwrap_or_default(),
        stderr: err_task.await.unwrap_or_default(),
        peak_rss_kb,
        cpu_s,
    })
}

fn proc_hwm_kb(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// utime + stime of a process, in clock ticks.
fn proc_cpu_ticks(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start at field 3 (state).
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    Some(utime + stime)
}

fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// A connection reading the table every [`PROBE_EVERY`]: the longest read stall approximates
/// the longest time anyone held (or queued for) an ACCESS EXCLUSIVE lock on it.
struct Probe {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<ProbeReport>,
}

struct ProbeReport {
    latency: Histogram<u64>,
    errors: u64,
}

impl Probe {
    async fn start(conninfo: &str) -> Result<Probe> {
        let client = connect(conninfo).await?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let task = tokio::spawn(async move {
            let mut report = ProbeReport {
                latency: Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("bounds"),
                errors: 0,
            };
            let mut tick = tokio::time::interval(PROBE_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            while !flag.load(Ordering::Relaxed) {
                tick.tick().await;
                let t = Instant::now();
                match client.simple_query("SELECT 1 FROM public.t LIMIT 1").await {
                    Ok(_) => report
                        .latency
                        .saturating_record(t.elapsed().as_micros().max(1) as u64),
                    Err(_) => report.errors += 1,
                }
            }
            report
        });
        Ok(Probe { stop, task })
    }

    async fn stop(self) -> ProbeReport {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap_or_else(|_| ProbeReport {
            latency: Histogram::new(3).expect("histogram"),
            errors: 1,
        })
    }
}

/// The 1-minute load average of the machine.
fn loadavg() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN)
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    v.retain(|x| x.is_finite());
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

fn med(samples: &[Sample], f: impl Fn(&Sample) -> Option<f64>) -> Option<f64> {
    median(samples.iter().filter_map(f).collect())
}

fn opt(v: Option<f64>, decimals: usize) -> String {
    match v {
        Some(x) => format!("{x:.decimals$}"),
        None => "-".into(),
    }
}

fn print_report(
    env: &Env<'_>,
    server_version: &str,
    contenders: &[Contender],
    samples: &BTreeMap<String, Vec<Sample>>,
    failures: &[String],
) {
    let opts = env.opts;
    let heap = samples
        .values()
        .flatten()
        .map(|s| s.heap_bytes)
        .next()
        .unwrap_or(0);
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    println!(
        "## {} rows ({:.0} MB heap), {} run(s), load {}\n",
        opts.rows,
        heap as f64 / 1048576.0,
        opts.runs,
        match opts.load {
            Some(r) => format!("{r} tx/s over {} writers", opts.writers),
            None => "off".into(),
        }
    );
    println!(
        "PostgreSQL {server_version}, {cores} cores; settings: {}. Medians over runs.\n",
        SETTINGS
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let alter_wall = samples
        .get("alter")
        .and_then(|s| med(s, |x| Some(x.wall_s)));
    println!(
        "| contender | runs | wall s | vs ALTER | rows/s | MB/s | client peak RSS MB | client CPU s | longest AEL ms | probe max ms | WAL MB | writes p50 / p99 / max ms | write errors | verified | machine load |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---|---:|");
    for c in contenders {
        let Some(s) = samples.get(&c.name()) else {
            println!("| {} | 0 | failed | | | | | | | | | | | | |", c.describe());
            continue;
        };
        let wall = med(s, |x| Some(x.wall_s));
        let ratio = match (wall, alter_wall) {
            (Some(w), Some(a)) if a > 0.0 => format!("{:.2}x", w / a),
            _ => "-".into(),
        };
        let lock = match c {
            Contender::Repack => "(probe)".to_string(),
            Contender::Hotswap { .. } => format!(
                "{} (held {})",
                opt(med(s, |x| x.lock_ms), 1),
                opt(med(s, |x| x.lock_held_ms), 1)
            ),
            _ => opt(med(s, |x| x.lock_ms), 1),
        };
        let writes = if opts.load.is_some() {
            format!(
                "{} / {} / {}",
                opt(med(s, |x| x.write_p50_ms), 1),
                opt(med(s, |x| x.write_p99_ms), 1),
                opt(med(s, |x| x.write_max_ms), 1)
            )
        } else {
            "no load".into()
        };
        let verified = {
            let v: Vec<bool> = s.iter().filter_map(|x| x.verified).collect();
            if v.is_empty() {
                "-".to_string()
            } else {
                format!("{}/{}", v.iter().filter(|ok| **ok).count(), v.len())
            }
        };
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            c.describe(),
            s.len(),
            opt(wall, 2),
            ratio,
            opt(med(s, |x| Some(x.rows as f64 / x.wall_s)), 0),
            opt(
                med(s, |x| Some(x.heap_bytes as f64 / 1048576.0 / x.wall_s)),
                1
            ),
            opt(med(s, |x| x.rss_kb.map(|k| k / 1024.0)), 1),
            opt(med(s, |x| x.client_cpu_s), 2),
            lock,
            opt(med(s, |x| Some(x.probe_max_ms)), 1),
            opt(med(s, |x| Some(x.wal_bytes / 1048576.0)), 0),
            writes,
            opt(med(s, |x| x.write_errors), 0),
            verified,
            opt(med(s, |x| Some(x.loadavg)), 1)
        );
    }

    // Where pg-hotswap's time goes.
    let mut phase_names: Vec<String> = Vec::new();
    for c in contenders {
        for s in samples.get(&c.name()).into_iter().flatten() {
            for (p, _) in &s.phases {
                if !phase_names.contains(p) {
                    phase_names.push(p.clone());
                }
            }
        }
    }
    if !phase_names.is_empty() {
        println!("\npg-hotswap phases, seconds (median; a phase that ran twice is summed):\n");
        println!("| contender | {} |", phase_names.join(" | "));
        println!("|---|{}", "---:|".repeat(phase_names.len()));
        for c in contenders {
            let Some(s) = samples.get(&c.name()) else {
                continue;
            };
            if s.iter().all(|x| x.phases.is_empty()) {
                continue;
            }
            let cells: Vec<String> = phase_names
                .iter()
                .map(|p| {
                    opt(
                        med(s, |x| {
                            Some(
                                x.phases
                                    .iter()
                                    .filter(|(n, _)| n == p)
                                    .map(|(_, t)| t)
                                    .sum(),
                            )
                        }),
                        2,
                    )
                })
                .collect();
            println!("| {} | {} |", c.describe(), cells.join(" | "));
        }
    }

    // pg-hotswap plan's estimate against the actual run (issue 6: within 30%).
    let mut shown = false;
    for c in contenders {
        let Some(sm) = samples.get(&c.name()) else {
            continue;
        };
        let (Some(e), Some(w)) = (med(sm, |x| x.plan_estimate_s), med(sm, |x| Some(x.wall_s)))
        else {
            continue;
        };
        if !shown {
            println!("\n`pg-hotswap plan` estimate against the run (medians):\n");
            println!("| contender | estimate s | actual s | estimate / actual |");
            println!("|---|---:|---:|---:|");
            shown = true;
        }
        println!("| {} | {e:.2} | {w:.2} | {:.2} |", c.describe(), e / w);
    }

    // The targets of the project, checked on the medians of this run.
    let wall_of = |name: &str| samples.get(name).and_then(|s| med(s, |x| Some(x.wall_s)));
    let hot = ["hotswap-j1", "hotswap-j2", "hotswap-j4"]
        .iter()
        .filter_map(|n| wall_of(n).map(|w| (*n, w)))
        .min_by(|a, b| a.1.total_cmp(&b.1));
    println!("\nTargets (medians of this run):\n");
    let verdict = |ok: bool| if ok { "met" } else { "NOT met" };
    if let (Some((n, h)), Some(a)) = (hot, alter_wall) {
        println!(
            "- wall time <= 1.0x blocking ALTER TABLE: best {n} {:.2}x -> {}",
            h / a,
            verdict(h <= a)
        );
    }
    if let (Some(h), Some(r)) = (wall_of("hotswap-noop-j1"), wall_of("repack")) {
        println!(
            "- no-op rebuild <= 1.0x pg_repack: {:.2}x -> {}",
            h / r,
            verdict(h <= r)
        );
    }
    if let (Some((n, h)), Some(b)) = (hot, wall_of("batched")) {
        println!(
            "- >= 2x faster than the batched INSERT ... SELECT copier: best {n} {:.2}x faster -> {}",
            b / h,
            verdict(b / h >= 2.0)
        );
    }
    let p99_of = |name: &str| samples.get(name).and_then(|s| med(s, |x| x.write_p99_ms));
    if let (Some(p), Some(i)) = (p99_of("hotswap-j1-nice1"), p99_of("idle")) {
        println!(
            "- write p99 with --jobs 1 --nice 1 <= 2x without the tool: {p:.1} ms vs {i:.1} ms, {:.2}x -> {}",
            p / i,
            verdict(p <= 2.0 * i)
        );
    }
    for c in contenders {
        if let Contender::Hotswap { .. } = c {
            if let Some(l) = samples.get(&c.name()).and_then(|s| med(s, |x| x.lock_ms)) {
                println!(
                    "- longest ACCESS EXCLUSIVE hold <= 50 ms{}: {} {l:.1} ms -> {}",
                    if opts.load.is_some() {
                        " with writers"
                    } else {
                        " (no load)"
                    },
                    c.name(),
                    verdict(l <= 50.0)
                );
            }
        }
    }
    if opts.load.is_some() {
        if let Some(r) = samples
            .get("repack")
            .and_then(|s| med(s, |x| x.write_max_ms))
        {
            for c in contenders {
                if let Contender::Hotswap { .. } = c {
                    if let Some(m) = samples
                        .get(&c.name())
                        .and_then(|s| med(s, |x| x.write_max_ms))
                    {
                        println!(
                            "- write latency max <= pg_repack's ({r:.1} ms): {} {m:.1} ms -> {}",
                            c.name(),
                            verdict(m <= r)
                        );
                    }
                }
            }
        }
    }
    for c in contenders {
        if let Contender::Hotswap { .. } = c {
            if let Some(kb) = samples.get(&c.name()).and_then(|s| med(s, |x| x.rss_kb)) {
                println!(
                    "- peak RSS at {} rows: {} {:.1} MB (compare with the other size)",
                    opts.rows,
                    c.name(),
                    kb / 1024.0
                );
            }
        }
    }
    if !failures.is_empty() {
        println!("\nFailed runs:\n");
        for f in failures {
            println!("- {f}");
        }
    }
}
