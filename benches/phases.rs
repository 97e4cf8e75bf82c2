//! Benchmark of two decisions inside a run, through the run's own code on one throwaway cluster
//! (DESIGN.md, "Measuring, not guessing"):
//!
//! - replay throughput by `--replay-batch` (500, 5,000, 50,000 log rows per transaction), with
//!   every logged key distinct and with heavy key duplication (each key logged about 100 times,
//!   as under a hot-row update load): `replay::replay_batch` until the log is empty;
//! - the build phase (`build::build`: the shadow's indexes, then its constraints and ANALYZE) on
//!   one connection or on two, each with `max_parallel_maintenance_workers` 0 and 2.
//!
//! ```text
//! cargo bench --bench phases -- [--quick] [--rows N] [--log N] [--runs K] [--only replay|build]
//! ```
//!
//! The table is the one `compare` uses (`t (id int PRIMARY KEY, val int, note text)` plus an
//! index on `val`, ~100-byte notes), rewritten `ALTER COLUMN id TYPE bigint`; every measurement
//! starts from a fresh copy (shadow created by `shadow::create`, filled through the mapping), and
//! the cases of a run are interleaved. No write load runs: these are the phases' own speeds.
//! Figures go to stdout as markdown; progress to stderr.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use pg_hotswap::db::conn::{self, ConnSpec};
use pg_hotswap::db::locking::LockPolicy;
use pg_hotswap::demo::cluster::{Cluster, ClusterOptions};
use pg_hotswap::rewrite::build::{self, BuildOptions};
use pg_hotswap::rewrite::plan::Plan;
use pg_hotswap::rewrite::shadow::{self, ShadowRequest};
use pg_hotswap::state::State;
use pg_hotswap::{db::catalog, rewrite::capture, rewrite::preflight, rewrite::replay};
use tokio_postgres::{Client, NoTls};

type Error = Box<dyn std::error::Error + Send + Sync>;
type Result<T, E = Error> = std::result::Result<T, E>;

const SETTINGS: [(&str, &str); 7] = [
    ("shared_buffers", "1GB"),
    ("max_wal_size", "8GB"),
    ("min_wal_size", "1GB"),
    ("checkpoint_timeout", "30min"),
    ("jit", "off"),
    ("autovacuum", "off"),
    ("log_min_messages", "warning"),
];
const BATCHES: [i64; 3] = [500, 5_000, 50_000];
/// Distinct keys in the duplicated log: each logged about log / HOT_KEYS times.
const HOT_KEYS: i64 = 1_000;

struct Opts {
    rows: i64,
    log: i64,
    runs: usize,
    only: Option<String>,
}

fn parse_args(args: &[String]) -> Result<Opts> {
    let (mut rows, mut log, mut runs, mut only, mut quick) = (None, None, 2, None, false);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || -> Result<String> {
            Ok(it
                .next()
                .cloned()
                .ok_or_else(|| format!("{a} needs a value"))?)
        };
        match a.as_str() {
            "--bench" => {}
            "--quick" => quick = true,
            "--rows" => rows = Some(value()?.replace('_', "").parse()?),
            "--log" => log = Some(value()?.replace('_', "").parse()?),
            "--runs" => runs = value()?.parse()?,
            "--only" => only = Some(value()?),
            other => return Err(format!("unknown argument {other:?}").into()),
        }
    }
    Ok(Opts {
        rows: rows.unwrap_or(if quick { 200_000 } else { 2_000_000 }),
        log: log.unwrap_or(if quick { 20_000 } else { 100_000 }),
        runs: runs.max(1),
        only,
    })
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !args.iter().any(|a| a == "--bench") {
        eprintln!("phases: skipped (run it with `cargo bench --bench phases`)");
        return;
    }
    let result = parse_args(&args).and_then(|opts| {
        let cluster = Cluster::start(&ClusterOptions {
            settings: SETTINGS
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            quiet: true,
            durable: true,
            ..ClusterOptions::default()
        })?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        let r = rt.block_on(bench(&cluster, &opts));
        rt.shutdown_timeout(Duration::from_secs(2));
        r
    });
    if let Err(e) = result {
        let mut text = e.to_string();
        let mut cause = e.source();
        while let Some(c) = cause {
            text.push_str(&format!(": {c}"));
            cause = c.source();
        }
        eprintln!("error: {text}");
        std::process::exit(1);
    }
}

async fn connect(conninfo: &str) -> Result<Client> {
    let (client, conn) = tokio_postgres::connect(conninfo, NoTls).await?;
    tokio::spawn(conn);
    Ok(client)
}

struct Env {
    spec: ConnSpec,
    policy: LockPolicy,
    db: Client,
}

async fn bench(cluster: &Cluster, opts: &Opts) -> Result<()> {
    let admin = connect(&cluster.conninfo("postgres")).await?;
    admin.batch_execute("CREATE DATABASE bench").await?;
    let conninfo = cluster.conninfo("bench");
    let db = connect(&conninfo).await?;
    db.execute(
        "CREATE TABLE public.tmpl AS \
         SELECT g::int AS id, (g % 1000)::int AS val, repeat(md5(g::text), 3) AS note \
           FROM generate_series(1, $1::int8) g",
        &[&opts.rows],
    )
    .await?;
    let env = Env {
        spec: conn::resolve_spec(Some(&conninfo), Duration::from_millis(100))?,
        policy: LockPolicy {
            timeout: Duration::from_millis(100),
            attempts: 30,
            delay: Duration::from_millis(200),
        },
        db,
    };
    let do_replay = opts.only.as_deref() != Some("build");
    let do_build = opts.only.as_deref() != Some("replay");
    let mut replay_rates: BTreeMap<(bool, i64), Vec<f64>> = BTreeMap::new();
    let mut build_secs: BTreeMap<(usize, i32), Vec<f64>> = BTreeMap::new();
    for run in 0..opts.runs {
        if do_replay {
            for dup in [false, true] {
                for batch in BATCHES {
                    let rate = measure_replay(&env, opts, dup, batch).await?;
                    eprintln!(
                        "run {}/{} replay batch {batch:>6} {}: {rate:.0} log rows/s (load {:.1})",
                        run + 1,
                        opts.runs,
                        if dup {
                            "duplicated keys"
                        } else {
                            "spread keys    "
                        },
                        loadavg()
                    );
                    replay_rates.entry((dup, batch)).or_default().push(rate);
                }
            }
        }
        if do_build {
            for (jobs, mpmw) in [(1, 0), (1, 2), (2, 0), (2, 2)] {
                let secs = measure_build(&env, jobs, mpmw).await?;
                eprintln!(
                    "run {}/{} build on {jobs} connection(s), max_parallel_maintenance_workers {mpmw}: {secs:.2} s (load {:.1})",
                    run + 1,
                    opts.runs,
                    loadavg()
                );
                build_secs.entry((jobs, mpmw)).or_default().push(secs);
            }
        }
    }
    println!(
        "## {} rows, {} run(s), medians; 2 cores shared with whatever else runs\n",
        opts.rows, opts.runs
    );
    if do_replay {
        println!(
            "Replay of {} logged keys into the shadow (`replay::replay_batch` until the log is empty), log rows/s:\n",
            opts.log
        );
        println!(
            "| --replay-batch | keys at random | {HOT_KEYS} keys, each ~{}x |",
            opts.log / HOT_KEYS
        );
        println!("|---:|---:|---:|");
        for batch in BATCHES {
            let m = |dup| median(replay_rates.get(&(dup, batch)).cloned().unwrap_or_default());
            println!("| {batch} | {:.0} | {:.0} |", m(false), m(true));
        }
        println!();
    }
    if do_build {
        println!(
            "Build phase (`build::build`: two indexes, then constraints and ANALYZE), seconds:\n"
        );
        println!("| connections | max_parallel_maintenance_workers 0 | 2 |");
        println!("|---:|---:|---:|");
        for jobs in [1, 2] {
            let m = |w| median(build_secs.get(&(jobs, w)).cloned().unwrap_or_default());
            println!("| {jobs} | {:.2} | {:.2} |", m(0), m(2));
        }
    }
    Ok(())
}

/// A fresh `t` from the template, its run, shadow and change log (no triggers: the log is
/// filled by the bench), and the shadow filled through the mapping without its indexes.
async fn fresh_run(env: &Env) -> Result<(Plan, Client)> {
    env.db
        .batch_execute(
            "DROP SCHEMA IF EXISTS hotswap CASCADE;
             DROP TABLE IF EXISTS public.t, public.t_new;
             CREATE TABLE public.t (id int PRIMARY KEY, val int, note text);
             INSERT INTO public.t SELECT * FROM public.tmpl;
             CREATE INDEX ON public.t (val);",
        )
        .await?;
    env.db.batch_execute("VACUUM ANALYZE public.t").await?;
    let mut ctl = conn::connect(&env.spec, "bench").await?;
    let oid = catalog::resolve_table(&ctl, "public.t").await?;
    let (src, _) = preflight::inspect(&ctl, oid).await?;
    let state = State::new("hotswap");
    state.ensure_schema(&ctl).await?;
    let alter = "ALTER COLUMN id TYPE bigint";
    let run = state
        .create_run(
            &ctl,
            oid,
            &src.table.name,
            Some(alter),
            &serde_json::json!({}),
        )
        .await?;
    let req = ShadowRequest {
        alter: Some(alter),
        maps: &[],
        shadow_name: None,
        revertible: false,
        partitioning: None,
        plain: false,
        show_unrouted: false,
    };
    let plan = shadow::create(&mut ctl, &state, run, &src, &req, &env.policy).await?;
    capture::create_log(&mut ctl, &state, &plan, "").await?;
    ctl.batch_execute(&format!(
        "INSERT INTO {} ({}) SELECT {} FROM ONLY {}",
        plan.shadow,
        pg_hotswap::db::ident::join_idents(plan.copy_columns()),
        plan.select_list(),
        plan.source,
    ))
    .await?;
    ctl.batch_execute(&format!("VACUUM ANALYZE {}", plan.shadow))
        .await?;
    ctl.batch_execute("CHECKPOINT").await?;
    Ok((plan, ctl))
}

/// Log rows per second replaying `opts.log` logged keys in batches of `batch`.
async fn measure_replay(env: &Env, opts: &Opts, dup: bool, batch: i64) -> Result<f64> {
    let (plan, ctl) = fresh_run(env).await?;
    // Replay runs after the build in a run: the shadow has its indexes.
    build::build(
        &ctl,
        &env.spec,
        &plan,
        &BuildOptions {
            jobs: 1,
            maintenance_work_mem: "256MB".into(),
        },
        build::Stage::Bulk,
    )
    .await?;
    // Keys drawn at random over the table (a few repeat by chance); duplicated: HOT_KEYS keys
    // spread over the table, each logged many times.
    let distinct = if dup { HOT_KEYS } else { opts.rows };
    ctl.execute(
        &format!(
            "INSERT INTO {} (k1) SELECT (1 + (hashint8(g) & 2147483647)::int8 % $2::int8 * ($3::int8 / $2::int8))::int \
               FROM generate_series(1, $1::int8) g",
            plan.capture.log
        ),
        &[&opts.log, &distinct, &opts.rows],
    )
    .await?;
    ctl.batch_execute(&format!("VACUUM ANALYZE {}", plan.capture.log))
        .await?;
    ctl.batch_execute("CHECKPOINT").await?;
    let mut rc = conn::connect(&env.spec, "replay").await?;
    replay::prepare_session(&rc, &plan).await?;
    let started = Instant::now();
    let mut rows = 0u64;
    loop {
        let b = replay::replay_batch(
            &mut rc,
            &plan,
            replay::Batching::Bounded(batch),
            &env.policy,
        )
        .await?;
        rows += b.log_rows;
        if b.log_rows == 0 {
            break;
        }
    }
    let secs = started.elapsed().as_secs_f64();
    if rows != opts.log as u64 {
        return Err(format!("replayed {rows} log rows of {}", opts.log).into());
    }
    Ok(rows as f64 / secs.max(1e-9))
}

/// Seconds to build every index on `jobs` connections with `max_parallel_maintenance_workers`.
async fn measure_build(env: &Env, jobs: usize, mpmw: i32) -> Result<f64> {
    let (plan, ctl) = fresh_run(env).await?;
    // The build's sessions are new connections: they take the database's setting.
    env.db
        .batch_execute(&format!(
            "ALTER DATABASE bench SET max_parallel_maintenance_workers = {mpmw}"
        ))
        .await?;
    let ctl2 = conn::connect(&env.spec, "bench-build").await?;
    drop(ctl);
    let started = Instant::now();
    // Every index of the table: the bulk stage and the plain indexes a run builds beside
    // verification.
    for stage in [build::Stage::Bulk, build::Stage::Beside] {
        build::build(
            &ctl2,
            &env.spec,
            &plan,
            &BuildOptions {
                jobs,
                maintenance_work_mem: "256MB".into(),
            },
            stage,
        )
        .await?;
    }
    let secs = started.elapsed().as_secs_f64();
    env.db
        .batch_execute("ALTER DATABASE bench RESET max_parallel_maintenance_workers")
        .await?;
    Ok(secs)
}

fn loadavg() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0)
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}
