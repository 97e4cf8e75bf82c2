//! Issue 18, `pg-hotswap fleet`: one rewrite across six databases on three throwaway clusters,
//! under writes, each table equal to its ledger afterwards: all swap together (the spread
//! reported); a target with a row the ALTER cannot take keeps every target from swapping, and
//! after the fix the others are reused, not copied again; a cluster stopped (SIGSTOP) mid-copy
//! holds the gate while the others wait ready; the fleet process killed between two swaps is
//! finished by `fleet run` again, which reports the split; `fleet status` in text and JSON.
//!
//! Three clusters are shared by the tests (each test has its own databases); the SIGSTOP test
//! stops a cluster of its own.

use std::path::PathBuf;
use std::process::Output;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use pg_hotswap::db::ident::Ident;
use pg_hotswap::demo::cluster::{Cluster, ClusterOptions};
use pg_hotswap::demo::workload::{create_tables, TableSpec, Workload};
use serde_json::Value;
use tokio_postgres::Client;

use crate::harness::{
    all_output, assert_exit, assert_matches_ledger, column_type, connect, describe, hotswap_async,
    hotswap_command, hotswap_env, start_load,
};

const ROWS: i64 = 3_000;
const ALTER: &str = "ALTER COLUMN id TYPE bigint, ALTER COLUMN note TYPE varchar(100)";

static CLUSTERS: OnceLock<Vec<Cluster>> = OnceLock::new();

/// The three shared clusters (started once, never dropped: their watchdogs stop them when the
/// test process exits).
async fn clusters() -> &'static [Cluster] {
    tokio::task::spawn_blocking(|| {
        CLUSTERS
            .get_or_init(|| {
                (0..3)
                    .map(|_| Cluster::start(&ClusterOptions::default()).expect("a cluster"))
                    .collect()
            })
            .as_slice()
    })
    .await
    .unwrap()
}

/// One database of the fleet: its connection, the table and its ledger, the write load.
struct Db {
    conninfo: String,
    client: Client,
    load: Option<Workload>,
}

/// The fleet of a test: six databases, two per cluster, and the targets file.
struct Fleet {
    dbs: Vec<Db>,
    spec: TableSpec,
    targets: PathBuf,
    dir: PathBuf,
}

impl Fleet {
    /// Two databases `fl_<test>_<i>` on each cluster, each with the table (ROWS rows), its ledger
    /// and one writer, and the targets file listing them in order.
    async fn new(test: &str, clusters: &[&Cluster]) -> Fleet {
        let spec = TableSpec::simple("public", "items");
        let mut dbs = Vec::new();
        let mut lines = String::from("# fleet test targets\n");
        for (c, cluster) in clusters.iter().enumerate() {
            let admin = connect(&cluster.conninfo("postgres")).await;
            for j in 0..2 {
                let name = format!("fl_{test}_{}", c * 2 + j);
                let ident = Ident::new(&name);
                for sql in [
                    format!("DROP DATABASE IF EXISTS {ident} WITH (FORCE)"),
                    format!("CREATE DATABASE {ident}"),
                ] {
                    admin.batch_execute(&sql).await.unwrap();
                }
                let conninfo = cluster.conninfo(&name);
                let client = connect(&conninfo).await;
                create_tables(&client, &spec, ROWS).await.unwrap();
                lines.push_str(&conninfo);
                lines.push('\n');
                dbs.push(Db {
                    load: Some(start_load(&conninfo, &spec, ROWS, 1, 30)),
                    conninfo,
                    client,
                });
            }
        }
        let dir = std::env::temp_dir().join(format!(
            "pg-hotswap-fleet-test-{test}-{}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let targets = dir.join("targets");
        std::fs::write(&targets, lines).unwrap();
        Fleet {
            dbs,
            spec,
            targets,
            dir,
        }
    }

    /// `fleet run` arguments: the targets, the ALTER, small chunks, the log directory.
    fn run_args(&self, extra: &[&str], chunk_rows: &str, run_extra: &[&str]) -> Vec<String> {
        let mut a: Vec<String> = vec![
            "fleet".into(),
            "run".into(),
            "--targets".into(),
            self.targets.display().to_string(),
            "--table".into(),
            "public.items".into(),
            "--alter".into(),
            ALTER.into(),
            "--log-dir".into(),
            self.dir.join("logs").display().to_string(),
        ];
        a.extend(extra.iter().map(|s| s.to_string()));
        a.extend(
            ["--", "--chunk-rows", chunk_rows, "--chunk-time", "off"]
                .iter()
                .chain(run_extra)
                .map(|s| s.to_string()),
        );
        a
    }

    async fn run(&self, extra: &[&str]) -> Output {
        let a = self.run_args(extra, "500", &[]);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        let out = hotswap_async(&a).await;
        // Shown with --nocapture (and when the test fails).
        eprintln!("{}", describe(&out));
        out
    }

    async fn status(&self, json: bool) -> Output {
        let t = self.targets.display().to_string();
        let mut a = vec![
            "fleet",
            "status",
            "--targets",
            &t,
            "--table",
            "public.items",
        ];
        if json {
            a.extend(["--output", "json"]);
        }
        let out = hotswap_async(&a).await;
        assert_exit(&out, 0);
        out
    }

    async fn status_json(&self) -> Value {
        serde_json::from_slice(&self.status(true).await.stdout).expect("fleet status JSON")
    }

    /// Which databases have the new table (id is bigint).
    async fn swapped(&self) -> Vec<bool> {
        let mut out = Vec::new();
        for d in &self.dbs {
            let t = column_type(&d.client, &self.spec.table, &self.spec.id_col).await;
            out.push(t == "bigint");
        }
        out
    }

    /// Stops the writers (no writer error) and checks every table against its ledger.
    async fn stop_and_check(&mut self) {
        for d in &mut self.dbs {
            if let Some(load) = d.load.take() {
                let report = load.stop().await;
                assert!(
                    report.errors.is_empty(),
                    "writer errors on {}: {:#?}",
                    d.conninfo,
                    report.errors
                );
            }
            assert_matches_ledger(&d.client, &self.spec).await;
        }
    }
}

impl Drop for Fleet {
    /// The targets file and the runs' logs are kept only when a test fails.
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// The number of runs and the chunks' commit times of a database (what "copied again" changes).
async fn copy_record(client: &Client) -> (i64, Vec<String>) {
    let runs: i64 = client
        .query_one("SELECT count(*) FROM hotswap.runs", &[])
        .await
        .unwrap()
        .get(0);
    let chunks = client
        .query(
            "SELECT chunk_no::text || '@' || COALESCE(done_at::text, '-') FROM hotswap.chunks ORDER BY run_id, chunk_no",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    (runs, chunks)
}

/// The fleet id each run recorded.
async fn fleet_ids(client: &Client) -> Vec<Option<String>> {
    client
        .query("SELECT fleet_id FROM hotswap.runs ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// Waits (up to `within`) until `fleet status --output json` satisfies `pred`.
async fn wait_status(f: &Fleet, within: Duration, pred: impl Fn(&Value) -> bool) -> Value {
    let started = Instant::now();
    loop {
        let v = f.status_json().await;
        if pred(&v) {
            return v;
        }
        assert!(
            started.elapsed() < within,
            "fleet status never got there: {v:#}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

fn total(v: &Value, what: &str) -> i64 {
    v["total"][what].as_i64().unwrap_or(-1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_swap_together_with_the_spread_reported() {
    let cl = clusters().await;
    let mut f = Fleet::new("together", &[&cl[0], &cl[1], &cl[2]]).await;
    let out = f.run(&["--parallel", "6", "--per-host", "2"]).await;
    assert_exit(&out, 0);
    let text = all_output(&out);
    assert!(
        text.contains("spread: 6 target(s) swapped within"),
        "{text}"
    );
    assert_eq!(f.swapped().await, vec![true; 6], "{}", describe(&out));
    for d in &f.dbs {
        let ids = fleet_ids(&d.client).await;
        assert_eq!(ids.len(), 1);
        assert!(
            ids[0].as_deref().is_some_and(|i| i.starts_with("fleet-")),
            "{ids:?}"
        );
    }
    f.stop_and_check().await;
    // Status after the fact: every target swapped.
    let v = f.status_json().await;
    assert_eq!(total(&v, "swapped"), 6, "{v:#}");
    // The same command again does nothing: every target is swapped by this fleet already.
    let again = f.run(&["--parallel", "6", "--per-host", "2"]).await;
    assert_exit(&again, 0);
    assert!(
        all_output(&again).contains("swapped already by this fleet: skipped"),
        "{}",
        describe(&again)
    );
    for d in &f.dbs {
        assert_eq!(
            fleet_ids(&d.client).await.len(),
            1,
            "a target was rewritten again"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_the_alter_cannot_take_keeps_every_target_from_swapping() {
    let cl = clusters().await;
    let mut f = Fleet::new("badrow", &[&cl[0], &cl[1], &cl[2]]).await;
    // Target 4 holds a row that does not fit varchar(100), in the table and its ledger (no
    // writer owns key -7).
    let bad = &f.dbs[3];
    bad.client
        .batch_execute(
            "INSERT INTO public.items VALUES (-7, 1, repeat('x', 150)); \
             INSERT INTO public.items_ledger VALUES (-7, 1, repeat('x', 150))",
        )
        .await
        .unwrap();
    let bad_label = {
        let port = bad
            .conninfo
            .split("port=")
            .nth(1)
            .unwrap()
            .split(' ')
            .next()
            .unwrap();
        format!("127.0.0.1:{port}/fl_badrow_3")
    };
    let out = f.run(&["--parallel", "6", "--per-host", "2"]).await;
    assert_exit(&out, 1);
    let text = all_output(&out);
    assert!(
        text.contains(&bad_label),
        "the error does not name the target: {text}"
    );
    assert!(
        text.contains("too long"),
        "the error does not say why: {text}"
    );
    assert_eq!(f.swapped().await, vec![false; 6], "{text}");
    // The others get ready and wait, replaying (their processes outlive the fleet).
    let v = wait_status(&f, Duration::from_secs(90), |v| total(v, "ready") == 5).await;
    assert_eq!(total(&v, "swapped"), 0, "{v:#}");
    assert_eq!(f.swapped().await, vec![false; 6]);
    let mut before = Vec::new();
    for (i, d) in f.dbs.iter().enumerate() {
        if i != 3 {
            before.push((i, copy_record(&d.client).await));
        }
    }
    // The fix, on the table and its ledger alike; the same command again.
    f.dbs[3]
        .client
        .batch_execute(
            "UPDATE public.items SET note = 'short' WHERE id = -7; \
             UPDATE public.items_ledger SET note = 'short' WHERE id = -7",
        )
        .await
        .unwrap();
    let out = f.run(&["--parallel", "6", "--per-host", "2"]).await;
    assert_exit(&out, 0);
    let text = all_output(&out);
    assert_eq!(
        text.matches("ready already (its run goes on): reused")
            .count(),
        5,
        "{text}"
    );
    assert!(
        text.contains("spread: 6 target(s) swapped within"),
        "{text}"
    );
    assert_eq!(f.swapped().await, vec![true; 6], "{text}");
    // Not copied again: one run each, the same chunks committed at the same times.
    for (i, (runs, chunks)) in before {
        let (runs_after, chunks_after) = copy_record(&f.dbs[i].client).await;
        assert_eq!(runs, 1);
        assert_eq!(runs_after, 1, "target {i} got a second run");
        assert_eq!(chunks_after, chunks, "target {i} was copied again");
    }
    f.stop_and_check().await;
}

/// Pids of a cluster's postmaster (first line of postmaster.pid) and of its children (/proc).
fn cluster_pids(cluster: &Cluster) -> Vec<i32> {
    let pidfile = std::fs::read_to_string(cluster.data_dir().join("postmaster.pid")).unwrap();
    let master: i32 = pidfile.lines().next().unwrap().trim().parse().unwrap();
    let mut pids = vec![master];
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // pid (comm) state ppid ...: the command may hold spaces, so read after the last ')'.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        let ppid = rest
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse::<i32>().ok());
        if ppid == Some(master) {
            pids.push(pid);
        }
    }
    pids
}

/// Continues the stopped processes when dropped, so a failing test leaves no stopped server.
struct Continue(Vec<i32>);

impl Drop for Continue {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .arg("-CONT")
            .args(self.0.iter().map(|p| p.to_string()))
            .status();
    }
}

fn signal(pids: &[i32], sig: &str) {
    let status = std::process::Command::new("kill")
        .arg(format!("-{sig}"))
        .args(pids.iter().map(|p| p.to_string()))
        .status()
        .unwrap();
    assert!(status.success(), "kill -{sig} {pids:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_cluster_holds_the_gate_and_all_swap_after_it_continues() {
    let cl = clusters().await;
    let own = tokio::task::spawn_blocking(|| Cluster::start(&ClusterOptions::default()).unwrap())
        .await
        .unwrap();
    let mut f = Fleet::new("sigstop", &[&cl[0], &cl[1], &own]).await;
    // Small chunks, one at a time per server, so the copy on the cluster to stop takes a while.
    let t0 = Instant::now();
    let a = f.run_args(&["--parallel", "6", "--per-host", "2"], "100", &[]);
    let fleet = tokio::process::Command::from(hotswap_command(
        &a.iter().map(String::as_str).collect::<Vec<_>>(),
    ))
    .kill_on_drop(true)
    .spawn()
    .unwrap();
    // Mid-copy on the own cluster's first database: some chunks done, not all.
    let victim = &f.dbs[4].client;
    let started = Instant::now();
    let (done, all) = loop {
        let row = victim
            .query_one(
                "SELECT CASE WHEN to_regclass('hotswap.chunks') IS NULL THEN 0 ELSE \
                   (xpath('/row/c/text()', query_to_xml('SELECT count(*) FILTER (WHERE done_at IS NOT NULL) AS c FROM hotswap.chunks', false, true, '')))[1]::text::int8 END",
                &[],
            )
            .await
            .unwrap();
        let done: i64 = row.get(0);
        if done >= 1 {
            let all: i64 = victim
                .query_one("SELECT count(*) FROM hotswap.chunks", &[])
                .await
                .unwrap()
                .get(0);
            break (done, all);
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "the copy never started"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let pids = cluster_pids(&own);
    signal(&pids, "STOP");
    let stopped = Continue(pids.clone());
    eprintln!("stopped at {:?}: {done}/{all} chunks", t0.elapsed());
    assert!(
        done < all,
        "the copy was over before the stop ({done}/{all} chunks)"
    );
    // The four others get ready and wait; the stopped two are unreachable.
    let v = wait_status(&f, Duration::from_secs(120), |v| total(v, "ready") == 4).await;
    assert_eq!(total(&v, "unreachable"), 2, "{v:#}");
    eprintln!("four ready at {:?}", t0.elapsed());
    assert_eq!(total(&v, "swapped"), 0, "{v:#}");
    let text = String::from_utf8_lossy(&f.status(false).await.stdout).to_string();
    assert!(
        text.contains("unreachable") && text.contains("ready"),
        "{text}"
    );
    assert!(text.contains("total: 6 target(s)"), "{text}");
    // Nothing swaps while the cluster is stopped.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut swapped = Vec::new();
    for d in &f.dbs[..4] {
        swapped.push(column_type(&d.client, &f.spec.table, &f.spec.id_col).await == "bigint");
    }
    assert_eq!(swapped, vec![false; 4]);
    drop(stopped);
    eprintln!("continued at {:?}", t0.elapsed());
    let out = tokio::time::timeout(Duration::from_secs(240), fleet.wait_with_output())
        .await
        .expect("the fleet did not finish after SIGCONT")
        .unwrap();
    eprintln!("fleet done at {:?}\n{}", t0.elapsed(), describe(&out));
    assert_exit(&out, 0);
    assert!(
        all_output(&out).contains("spread: 6 target(s) swapped within"),
        "{}",
        describe(&out)
    );
    assert_eq!(f.swapped().await, vec![true; 6]);
    f.stop_and_check().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fleet_killed_between_two_swaps_is_finished_by_running_it_again() {
    let cl = clusters().await;
    let mut f = Fleet::new("killed", &[&cl[0], &cl[1], &cl[2]]).await;
    let a = f.run_args(&["--parallel", "6", "--per-host", "2"], "500", &[]);
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    // The fleet exits abruptly right after its second cut-over request.
    let out = hotswap_env(&a, &[("PGHOTSWAP_FAILPOINT", "fleet-cutover-sent@2")]).await;
    assert_exit(&out, 86);
    // The two told swap on their own; the other four wait ready.
    let v = wait_status(&f, Duration::from_secs(60), |v| total(v, "swapped") == 2).await;
    assert_eq!(total(&v, "ready"), 4, "{v:#}");
    let lines = v["targets"].as_array().unwrap();
    assert_eq!(lines[0]["standing"], "swapped", "{v:#}");
    assert_eq!(lines[1]["standing"], "swapped", "{v:#}");
    assert_eq!(lines[2]["standing"], "ready", "{v:#}");
    assert_eq!(lines[2]["ready"], true, "{v:#}");
    let text = String::from_utf8_lossy(&f.status(false).await.stdout).to_string();
    assert!(
        text.contains("total: 6 target(s): 2 swapped, 0 reverted, 4 ready"),
        "{text}"
    );
    assert_eq!(
        f.swapped().await,
        vec![true, true, false, false, false, false]
    );
    // Again: the rest swap, and the split is reported.
    let out = f.run(&["--parallel", "6", "--per-host", "2"]).await;
    assert_exit(&out, 0);
    let text = all_output(&out);
    assert!(
        text.contains("split: 2 target(s) swapped by an earlier fleet process, 4 now"),
        "{text}"
    );
    assert_eq!(
        text.matches("by an earlier fleet process").count(),
        3,
        "{text}"
    );
    assert_eq!(f.swapped().await, vec![true; 6]);
    for d in &f.dbs {
        assert_eq!(fleet_ids(&d.client).await.len(), 1);
    }
    f.stop_and_check().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canary_swaps_k_first_and_fleet_cutover_the_rest() {
    let cl = clusters().await;
    let mut f = Fleet::new("canary", &[&cl[0], &cl[1], &cl[2]]).await;
    let a = f.run_args(
        &["--parallel", "6", "--per-host", "2", "--canary", "2"],
        "500",
        &["--revertible"],
    );
    let out = hotswap_async(&a.iter().map(String::as_str).collect::<Vec<_>>()).await;
    assert_exit(&out, 0);
    assert!(
        all_output(&out).contains("canary swapped"),
        "{}",
        describe(&out)
    );
    assert_eq!(
        f.swapped().await,
        vec![true, true, false, false, false, false]
    );
    let v = f.status_json().await;
    assert_eq!((total(&v, "swapped"), total(&v, "ready")), (2, 4), "{v:#}");
    let t = f.targets.display().to_string();
    let logs = f.dir.join("logs").display().to_string();
    let out = hotswap_async(&[
        "fleet",
        "cutover",
        "--targets",
        &t,
        "--table",
        "public.items",
        "--log-dir",
        &logs,
    ])
    .await;
    assert_exit(&out, 0);
    let text = all_output(&out);
    assert!(
        text.contains("split: 2 target(s) swapped by an earlier fleet process, 4 now"),
        "{text}"
    );
    assert_eq!(f.swapped().await, vec![true; 6]);
    // --revertible: `fleet revert` swaps every target back, with the writes made since.
    let out = hotswap_async(&[
        "fleet",
        "revert",
        "--targets",
        &t,
        "--table",
        "public.items",
        "--log-dir",
        &logs,
    ])
    .await;
    assert_exit(&out, 0);
    assert!(
        all_output(&out).contains("reverted 6 target(s)"),
        "{}",
        describe(&out)
    );
    assert_eq!(f.swapped().await, vec![false; 6]);
    // A fresh tester found `fleet status` still said "swapped" and the same `fleet run` skipped
    // every target as "swapped already", exit 0, with nothing on the new schema.
    let v = f.status_json().await;
    assert_eq!(
        (total(&v, "reverted"), total(&v, "swapped")),
        (6, 0),
        "{v:#}"
    );
    let again = hotswap_async(&a.iter().map(String::as_str).collect::<Vec<_>>()).await;
    assert_exit(&again, 2);
    assert!(
        all_output(&again).contains("reverted by `fleet revert`"),
        "{}",
        describe(&again)
    );
    assert_eq!(f.swapped().await, vec![false; 6]);
    f.stop_and_check().await;
}

/// `--cutover per-target`: each target swaps as soon as it is ready; one that cannot take the
/// ALTER holds back nobody, and the command names it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_target_cutover_swaps_each_when_ready() {
    let cl = clusters().await;
    let mut f = Fleet::new("pertarget", &[&cl[0], &cl[1]]).await;
    f.dbs[1]
        .client
        .batch_execute(
            "INSERT INTO public.items VALUES (-7, 1, repeat('x', 150)); \
             INSERT INTO public.items_ledger VALUES (-7, 1, repeat('x', 150))",
        )
        .await
        .unwrap();
    let out = f
        .run(&[
            "--parallel",
            "2",
            "--per-host",
            "1",
            "--cutover",
            "per-target",
        ])
        .await;
    assert_exit(&out, 1);
    let text = all_output(&out);
    assert!(
        text.contains("fl_pertarget_1") && text.contains("too long"),
        "{text}"
    );
    assert_eq!(f.swapped().await, vec![true, false, true, true]);
    f.stop_and_check().await;
}

/// `--on-failure abort`: a target that cannot take the ALTER, and every other run is aborted
/// (nothing of the tool's left but its state tables), no table changed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_failure_abort_removes_the_other_runs() {
    let cl = clusters().await;
    let mut f = Fleet::new("onfail", &[&cl[0], &cl[1]]).await;
    f.dbs[3]
        .client
        .batch_execute(
            "INSERT INTO public.items VALUES (-7, 1, repeat('x', 150)); \
             INSERT INTO public.items_ledger VALUES (-7, 1, repeat('x', 150))",
        )
        .await
        .unwrap();
    let out = f
        .run(&[
            "--parallel",
            "6",
            "--per-host",
            "2",
            "--on-failure",
            "abort",
        ])
        .await;
    assert_exit(&out, 1);
    let text = all_output(&out);
    assert!(
        text.contains("fl_onfail_3") && text.contains("too long"),
        "{text}"
    );
    assert!(text.contains("aborted"), "{text}");
    assert_eq!(f.swapped().await, vec![false; 4]);
    for (i, d) in f.dbs.iter().enumerate().filter(|(i, _)| *i != 3) {
        let rows = d
            .client
            .query(
                "SELECT status FROM hotswap.runs UNION ALL SELECT 'object ' || name FROM hotswap.objects WHERE dropped_at IS NULL",
                &[],
            )
            .await
            .unwrap();
        let got: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
        assert_eq!(got, vec!["aborted".to_string()], "target {i}: {got:?}");
    }
    f.stop_and_check().await;
}

/// A state schema made before the fleet (no `runs.fleet_id`) gets the column on the next run,
/// and `run --fleet-id` (what the fleet passes its runs) records it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_state_schema_gets_the_fleet_column() {
    let db = crate::harness::TestDb::new("fleet_upgrade").await;
    let client = db.client().await;
    let spec = TableSpec::simple("public", "items");
    create_tables(&client, &spec, 1_000).await.unwrap();
    pg_hotswap::state::State::new("hotswap")
        .ensure_schema(&client)
        .await
        .unwrap();
    client
        .batch_execute("ALTER TABLE hotswap.runs DROP COLUMN fleet_id")
        .await
        .unwrap();
    let out = hotswap_async(&[
        "run",
        "--dsn",
        &db.conninfo,
        "--table",
        "public.items",
        "--alter",
        "ALTER COLUMN id TYPE bigint",
        "--fleet-id",
        "fleet-upgrade-1",
    ])
    .await;
    assert_exit(&out, 0);
    assert_eq!(
        fleet_ids(&client).await,
        vec![Some("fleet-upgrade-1".to_string())]
    );
}

/// A swap that cannot get its lock after others have swapped: the fleet keeps trying that
/// target (continuing its run) until it swaps, and the split while it lasted is in the spread.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_swap_that_fails_after_others_is_tried_again() {
    let cl = clusters().await;
    let mut f = Fleet::new("lockheld", &[&cl[0], &cl[1]]).await;
    let a = f.run_args(
        &["--parallel", "4", "--per-host", "2"],
        "500",
        &["--max-lock-attempts", "2", "--lock-timeout", "50ms"],
    );
    let fleet = tokio::process::Command::from(hotswap_command(
        &a.iter().map(String::as_str).collect::<Vec<_>>(),
    ))
    .kill_on_drop(true)
    .spawn()
    .unwrap();
    // Once the last target is ready, a transaction holds a lock on its table that the swap
    // cannot get.
    let holder = connect(&f.dbs[3].conninfo).await;
    let started = Instant::now();
    loop {
        let v = f.status_json().await;
        if v["targets"][3]["ready"] == true {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(90), "{v:#}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    holder
        .batch_execute("BEGIN; LOCK TABLE public.items IN ACCESS SHARE MODE")
        .await
        .unwrap();
    // The swap gives up after its 2 attempts (its run stops) while the others have swapped;
    // the fleet continues the run, which tries again; then the lock goes.
    let started = Instant::now();
    loop {
        let timeouts: i64 = f.dbs[3]
            .client
            .query_one(
                "SELECT count(*) FROM hotswap.events WHERE kind = 'lock_timeout'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if timeouts >= 3 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the swap was not tried again"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(f.swapped().await, vec![true, true, true, false]);
    holder.batch_execute("ROLLBACK").await.unwrap();
    let out = tokio::time::timeout(Duration::from_secs(120), fleet.wait_with_output())
        .await
        .expect("the fleet did not finish")
        .unwrap();
    eprintln!("{}", describe(&out));
    assert_exit(&out, 0);
    let text = all_output(&out);
    assert!(
        text.contains("continuing its run (attempt 1 of 3)"),
        "{text}"
    );
    assert!(
        text.contains("fl_lockheld_3: swapped (run 1) at +")
            && text.contains("after its swap failed and its run was continued 1 time(s)"),
        "{text}"
    );
    assert!(
        text.contains("spread: 4 target(s) swapped within"),
        "{text}"
    );
    assert_eq!(f.swapped().await, vec![true; 4]);
    f.stop_and_check().await;
}
