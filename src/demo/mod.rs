//! `pg-hotswap demo`: the main job end to end on a throwaway database it starts itself.
//!
//! Starts a private PostgreSQL cluster (initdb + pg_ctl in a temporary directory), creates a
//! sample table with an `int` primary key, runs concurrent writers that record every change in a
//! ledger table in the same transaction, rewrites the table `int` -> `bigint` online, and then
//! compares the table with the ledger row by row. The cluster is removed at the end.
//!
//! The throwaway cluster (`cluster`) and the write load with its ledger (`workload`) live here
//! too: they serve the demo, the integration tests and the benchmarks, never the engine (nothing
//! outside this folder imports them).

pub mod cluster;
pub mod workload;

use crate::db::conn;
use crate::db::locking::LockPolicy;
use crate::error::{DbContext, Error, Result, RowExt};
use crate::output::ui::say;
use crate::rewrite::migrator::{self, RunOptions};
use crate::state::target::TargetSpec;
use cluster::{Cluster, ClusterOptions};
use std::time::{Duration, Instant};
use tokio_postgres::NoTls;
use workload::{TableSpec, WorkloadConfig};

/// `pg-hotswap demo`'s flags.
#[derive(Clone, Copy, Debug)]
pub struct DemoOptions {
    /// Rows in the sample table.
    pub rows: i64,
    /// Concurrent writers during the rewrite.
    pub writers: u32,
    /// Copy jobs.
    pub jobs: u32,
}

pub async fn run(args: &DemoOptions) -> Result<()> {
    say("starting a throwaway PostgreSQL cluster (initdb + pg_ctl in a temporary directory)");
    let cluster = tokio::task::spawn_blocking(|| Cluster::start(&ClusterOptions::default()))
        .await
        .map_err(|e| Error::failed(format!("starting the cluster: {e}")))?
        .map_err(|e| {
            Error::failed(format!("cannot start a throwaway PostgreSQL: {e}"))
                .with_next("install PostgreSQL's server binaries (Debian: apt-get install postgresql-15) or set PG_BINDIR")
        })?;
    say(&format!("cluster up on port {}", cluster.port()));
    let result = run_in(&cluster, args).await;
    let mut cluster = cluster;
    tokio::task::spawn_blocking(move || cluster.stop())
        .await
        .ok();
    say("cluster stopped and removed");
    result
}

async fn client(conninfo: &str) -> Result<tokio_postgres::Client> {
    let (c, conn) = tokio_postgres::connect(conninfo, NoTls)
        .await
        .ctx("connecting to the demo cluster")?;
    tokio::spawn(conn);
    Ok(c)
}

async fn run_in(cluster: &Cluster, args: &DemoOptions) -> Result<()> {
    let admin = client(&cluster.conninfo("postgres")).await?;
    admin
        .batch_execute("CREATE DATABASE hotswap_demo")
        .await
        .ctx("creating the demo database")?;
    let conninfo = cluster.conninfo("hotswap_demo");
    let db = client(&conninfo).await?;
    let spec = TableSpec::simple("public", "accounts");
    say(&format!(
        "creating public.accounts with {} rows (id int primary key) and its ledger",
        args.rows
    ));
    workload::create_tables(&db, &spec, args.rows)
        .await
        .ctx("creating the sample table")?;
    db.batch_execute("CREATE INDEX accounts_val_idx ON public.accounts (val)")
        .await
        .ctx("creating a secondary index")?;

    say(&format!(
        "starting {} writers (insert, update, delete, key changes; each also writes the ledger)",
        args.writers
    ));
    let load = workload::start(WorkloadConfig {
        conninfo: conninfo.clone(),
        spec: spec.clone(),
        writers: args.writers as usize,
        max_rate_per_sec: Some(1000),
        initial_rows: args.rows,
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = load.transactions();

    let target = TargetSpec {
        conn: conn::resolve_spec(Some(&conninfo), Duration::from_millis(100))?,
        table: "public.accounts".into(),
        state_schema: "hotswap".into(),
    };
    let opts = RunOptions {
        alter: Some("ALTER COLUMN id TYPE bigint".into()),
        maps: Vec::new(),
        jobs: args.jobs as usize,
        lock: LockPolicy {
            timeout: Duration::from_millis(100),
            attempts: 30,
            delay: Duration::from_millis(200),
        },
        drop_old: false,
        chunk_rows: 50_000,
        chunk_time: None,
        replay_batch: 5_000,
        shadow_name: None,
        old_name: None,
        maintenance_work_mem: "256MB".into(),
        order_by: None,
        verify: crate::rewrite::verify::Mode::Full,
        revertible: false,
        map_back: Vec::new(),
        pace: Default::default(),
        old_snapshots: Default::default(),
        terminate_blockers_after: None,
        df_on_server: false,
        fleet_id: None,
        force_rewrite: false,
        partitioning: None,
        resume_of: None,
    };
    say("pg-hotswap run --table public.accounts --alter \"ALTER COLUMN id TYPE bigint\"");
    let t0 = Instant::now();
    let report = match target.resolve("control").await {
        Ok(target) => migrator::run(target, &opts).await,
        Err(e) => Err(e),
    };
    let secs = t0.elapsed().as_secs_f64();
    let during = load.transactions() - before;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let w = load.stop().await;
    let report = report?;

    let ty: String = db
        .query_one(
            "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'public.accounts'::regclass AND attname = 'id'",
            &[],
        )
        .await
        .ctx("reading the new type")?
        .col(0, &"reading the new type")?;
    let cmp = workload::compare(&db, &spec)
        .await
        .ctx("comparing with the ledger")?;
    println!();
    println!("demo result");
    println!(
        "  rewrite:            public.accounts id int -> {ty} in {secs:.1} s (run {})",
        report.run_id
    );
    println!("  rows copied:        {}", report.rows_copied);
    println!("  changes replayed:   {}", report.replayed_log_rows);
    println!(
        "  swap lock held:     {:.1} ms (attempt {})",
        report.lock_held_ms, report.lock_attempts
    );
    println!(
        "  writes served:      {during} transactions during the rewrite, {} in all, {} errors",
        w.transactions, w.error_count
    );
    println!(
        "  write latency:      p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        w.p50_ms(),
        w.p99_ms(),
        w.max_ms()
    );
    println!(
        "  compared:           {} rows in the table, {} in the ledger: {}",
        cmp.table_rows,
        cmp.ledger_rows,
        if cmp.is_identical() {
            "identical, row for row".to_string()
        } else {
            format!("{} / {} rows differ", cmp.only_in_table, cmp.only_in_ledger)
        }
    );
    println!(
        "  old table:          kept as {}",
        report.old_table.unwrap_or_default()
    );
    if !cmp.is_identical() || w.error_count > 0 || ty != "bigint" {
        return Err(Error::failed("the demo found a difference; see above"));
    }
    Ok(())
}
