//! `pg-hotswap fleet`: one rewrite across many databases with a gated cut-over (issue 18).
//!
//! The fleet is an orchestrator over per-target runs. Each target's run is an ordinary
//! `pg-hotswap run --cutover manual` child process (this executable, its output in a log file
//! per target), with its state in its own database, so every single-target command (`status`,
//! `pause`, `abort`, `resume`, `cutover`) works on it too, and the runs outlive the fleet
//! process: when it dies, they go on, reach ready and wait; `fleet run` again picks them up. A
//! child process (not a task in this process) because a run owns process-wide things (its
//! progress display, its Ctrl-C handling, its exit status) and because a crash of one must not
//! take the others along. The fleet id, written into each run (`runs.fleet_id`), is how the
//! fleet finds its runs again.
//!
//! Concurrency: at most `--parallel` targets work at once, at most `--per-host` of them on one
//! server (host:port). A target's slot is freed when it is ready (waiting costs only replay),
//! so a fleet larger than `--parallel` still reaches its gate.
//!
//! Invariant kept here: with the gated cut-over (the default), no target is told to swap until
//! every target is ready; a target that failed or was refused keeps every other one from
//! swapping, and the command names it. Parts: `targets` (the targets file, the fleet id),
//! `launch` (the per-target processes), `status` (reading a target's run, `fleet status`),
//! `gate` (the cut-over and its report), `outcome` (how `fleet run` ends).

mod gate;
mod launch;
mod outcome;
mod status;
mod targets;

use super::flags::{check_schema_name, check_table, OutputFormat};
use crate::error::{Error, Kind, Result};
use crate::output::ui::say;
use clap::{Args, Subcommand, ValueEnum};
use futures_util::future::join_all;
use gate::CutoverReport;
pub use launch::ChildLauncher;
use outcome::{cutover_result, fail_before_gate, finish_report, report_of};
use serde::Serialize;
use status::{Probe, Standing, TargetStatus};
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(Args, Debug)]
pub struct FleetArgs {
    #[command(subcommand)]
    pub command: FleetCommand,
}

#[derive(Subcommand, Debug)]
pub enum FleetCommand {
    /// Rewrite the table in every database of the targets file: each target copied, built,
    /// caught up and verified, then (by default) all swapped together once all are ready.
    /// Run options go after `--`, e.g. `-- --jobs 2 --chunk-rows 50000`.
    Run(FleetRunArgs),
    /// One line per target (phase, progress, backlog, ETA, ready or not) and a total.
    Status(FleetStatusArgs),
    /// Swap every ready target of the fleet (after `fleet run --canary K`), one after another.
    Cutover(FleetCutoverArgs),
    /// Swap the old table back on every swapped target of a `--revertible` fleet run.
    Revert(FleetCutoverArgs),
}

/// What names the fleet's targets and table.
#[derive(Args, Debug, Clone)]
pub struct FleetTargetArgs {
    /// A file with one libpq connection string per line (`#` comments, blank lines ignored).
    #[arg(long)]
    pub targets: PathBuf,
    /// The table, the same in every database.
    #[arg(long)]
    pub table: String,
    #[arg(long, default_value = "hotswap")]
    pub state_schema: String,
    /// The fleet's id, recorded in each target's run. `fleet run` derives it from the table,
    /// the ALTER and the run options when not given (the same command finds its runs again);
    /// the other fleet commands take each table's last fleet run when not given.
    #[arg(long)]
    pub fleet_id: Option<String>,
}

#[derive(Args, Debug)]
pub struct FleetRunArgs {
    #[command(flatten)]
    pub t: FleetTargetArgs,
    /// ALTER TABLE actions, as for `run`.
    #[arg(long)]
    pub alter: Option<String>,
    /// Targets working at once (copy, build, catch-up), overall.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub parallel: u32,
    /// Targets working at once on one server (host:port).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub per_host: u32,
    /// gated: swap only when every target is ready, one after another; per-target: each swaps
    /// as soon as it is ready.
    #[arg(long, value_enum, default_value_t = FleetCutover::Gated)]
    pub cutover: FleetCutover,
    /// Once all are ready, swap only the first K targets; `fleet cutover` swaps the rest.
    #[arg(long, conflicts_with = "cutover")]
    pub canary: Option<usize>,
    /// When a target fails before the gate: wait (the others stay ready, replaying) or abort
    /// (the others are aborted: everything they created is removed).
    #[arg(long, value_enum, default_value_t = OnFailure::Wait)]
    pub on_failure: OnFailure,
    /// Where each target's run writes its output (default: a directory named after the fleet
    /// id in the system's temporary directory).
    #[arg(long)]
    pub log_dir: Option<PathBuf>,
    /// How many times a target whose swap failed is continued again.
    #[arg(long, default_value_t = 3)]
    pub swap_retries: u32,
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
    /// Options for each target's `run` (after `--`): --jobs, --chunk-rows, --lock-timeout...
    #[arg(last = true)]
    pub run_args: Vec<String>,
}

#[derive(Args, Debug)]
pub struct FleetStatusArgs {
    #[command(flatten)]
    pub t: FleetTargetArgs,
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

#[derive(Args, Debug)]
pub struct FleetCutoverArgs {
    #[command(flatten)]
    pub t: FleetTargetArgs,
    /// How many times a target whose swap failed is continued again.
    #[arg(long, default_value_t = 3)]
    pub swap_retries: u32,
    /// Where the processes this starts (a continued run, a revert) write their output (default:
    /// the directory `fleet run` uses by default).
    #[arg(long)]
    pub log_dir: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

/// The default log directory of fleet `id`.
fn default_log_dir(id: &str) -> PathBuf {
    std::env::temp_dir().join(format!("pg-hotswap-{id}"))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum FleetCutover {
    Gated,
    PerTarget,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OnFailure {
    Wait,
    Abort,
}

/// Run options the fleet sets itself, refused after `--`.
const OWN_FLAGS: [&str; 10] = [
    "--dsn",
    "--table",
    "--alter",
    "--state-schema",
    "--cutover",
    "--output",
    "--dry-run",
    "--fleet-id",
    "--bloated-over",
    "--force-rewrite",
];

pub(super) async fn command(args: FleetArgs) -> Result<i32> {
    match args.command {
        FleetCommand::Run(a) => run(a).await,
        FleetCommand::Status(a) => status_command(a).await,
        FleetCommand::Cutover(a) => cutover_command(a).await,
        FleetCommand::Revert(a) => revert_command(a).await,
    }
}

/// The targets and their probes, checked.
fn load(t: &FleetTargetArgs) -> Result<Vec<Probe>> {
    check_table(&t.table)?;
    check_schema_name("--state-schema", &t.state_schema)?;
    if let Some(id) = &t.fleet_id {
        targets::check_id(id)?;
    }
    Ok(targets::load(&t.targets)?
        .into_iter()
        .map(|x| Probe::new(x, &t.state_schema, &t.table))
        .collect())
}

async fn read_all(probes: &mut [Probe], id: Option<&str>) -> Vec<TargetStatus> {
    join_all(probes.iter_mut().map(|p| p.read(id))).await
}

/// `fleet run --output json`.
#[derive(Serialize)]
struct RunReport<'a> {
    fleet_id: &'a str,
    outcome: &'a str,
    targets: &'a [TargetStatus],
    cutover: Option<&'a CutoverReport>,
}

/// What the fleet does with a target in this invocation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Duty {
    /// Its run is to be started (or continued) here.
    Queued,
    /// A child of this process works on it.
    Started,
    /// A process works on it already (a child of an earlier fleet process): watched only.
    Watched,
    /// Swapped (before or by this invocation).
    Done,
}

/// The run options after `--`: none the fleet sets itself, and they parse as `run`'s.
fn check_run_args(table: &str, run_args: &[String]) -> Result<()> {
    for a in run_args {
        let name = a.split('=').next().unwrap_or("");
        if OWN_FLAGS.contains(&name) {
            return Err(Error::usage(format!(
                "{name} after `--`: the fleet sets it itself (give --table, --alter, --state-schema and --fleet-id to `fleet run`)"
            )));
        }
    }
    let mut probe = vec!["pg-hotswap", "run", "--table", table];
    probe.extend(run_args.iter().map(String::as_str));
    <super::Cli as clap::Parser>::try_parse_from(&probe)
        .map_err(|e| Error::usage(format!("the run options after `--`: {e}")))?;
    Ok(())
}

/// `fleet run`.
async fn run(args: FleetRunArgs) -> Result<i32> {
    check_run_args(&args.t.table, &args.run_args)?;
    let mut probes = load(&args.t)?;
    let fleet_id = match &args.t.fleet_id {
        Some(id) => id.clone(),
        None => targets::derived_id(&args.t.table, args.alter.as_deref(), &args.run_args),
    };
    let log_dir = args
        .log_dir
        .clone()
        .unwrap_or_else(|| default_log_dir(&fleet_id));
    let launch = ChildLauncher::new(&args.t, log_dir.clone())?;
    let mut child_args = launch.base("run");
    // Every target copies and swaps (issue 16's in-place path has no swap to gate, and its run
    // is never "ready"): the gate is what a fleet is for.
    child_args.extend([
        "--force-rewrite".to_string(),
        "--fleet-id".to_string(),
        fleet_id.clone(),
        "--cutover".into(),
        match args.cutover {
            FleetCutover::Gated => "manual".into(),
            FleetCutover::PerTarget => "auto".into(),
        },
    ]);
    if let Some(a) = &args.alter {
        child_args.extend(["--alter".to_string(), a.clone()]);
    }
    child_args.extend(args.run_args.iter().cloned());
    say(&format!(
        "fleet {fleet_id}: {} target(s), {} at once ({} per server); the runs' output is in {}",
        probes.len(),
        args.parallel,
        args.per_host,
        log_dir.display()
    ));

    let n = probes.len();
    let mut duty = vec![Duty::Queued; n];
    let mut children: Vec<Option<tokio::process::Child>> = (0..n).map(|_| None).collect();
    // Exit status of a child that ended, with the error it left.
    let mut failed: Vec<Option<String>> = vec![None; n];
    let first = read_all(&mut probes, Some(&fleet_id)).await;
    // A reverted target is not "swapped already": this fleet id's change was taken back there.
    let reverted: Vec<&str> = first
        .iter()
        .filter(|s| s.standing == Standing::Reverted)
        .map(|s| s.target.as_str())
        .collect();
    if !reverted.is_empty() {
        return Err(Error::usage(format!(
            "fleet {fleet_id}: {} reverted by `fleet revert`: {}",
            if reverted.len() == 1 {
                "a target was"
            } else {
                "targets were"
            },
            reverted.join(", ")
        ))
        .with_state("nothing was started; each reverted target has its original table")
        .with_next("to apply the change again, run with a new --fleet-id"));
    }
    for (i, s) in first.iter().enumerate() {
        duty[i] = match s.standing {
            Standing::Swapped => Duty::Done,
            Standing::Ready | Standing::Working => Duty::Watched,
            _ => Duty::Queued,
        };
        let what = match duty[i] {
            Duty::Done => Some("swapped already by this fleet: skipped"),
            Duty::Watched if s.ready => Some("ready already (its run goes on): reused"),
            Duty::Watched => Some("its run is already working: watched"),
            _ => None,
        };
        if let Some(w) = what {
            say(&format!("fleet: {}: {w}", s.target));
        }
    }
    let started_at = Instant::now();
    let mut last_line = Instant::now();
    let outcome = loop {
        let statuses = read_all(&mut probes, Some(&fleet_id)).await;
        // Children that ended.
        for i in 0..n {
            let Some(c) = children[i].as_mut() else {
                continue;
            };
            if let Ok(Some(st)) = c.try_wait() {
                children[i] = None;
                let s = &statuses[i];
                if st.success() || s.standing == Standing::Swapped {
                    duty[i] = Duty::Done;
                    continue;
                }
                let why = s
                    .error
                    .clone()
                    .filter(|_| s.standing == Standing::Stopped)
                    .or_else(|| launch.error_tail(&probes[i].target))
                    .unwrap_or_else(|| format!("its run exited with status {st}"));
                failed[i] = Some(why);
            }
        }
        // Watched runs (an earlier fleet process's) that stopped.
        for i in 0..n {
            if duty[i] == Duty::Watched && statuses[i].standing == Standing::Stopped {
                failed[i] = Some(
                    statuses[i]
                        .error
                        .clone()
                        .unwrap_or_else(|| "its run stopped".into()),
                );
            }
            if statuses[i].standing == Standing::Swapped {
                duty[i] = Duty::Done;
            }
        }
        let failures: Vec<(String, String)> = (0..n)
            .filter_map(|i| {
                failed[i]
                    .clone()
                    .map(|e| (probes[i].target.label.clone(), e))
            })
            .collect();
        if !failures.is_empty() && args.cutover == FleetCutover::Gated {
            break Outcome::Failed(failures);
        }
        // Start queued targets within the limits: a target holds a slot until it is ready.
        let busy = |i: usize| {
            duty[i] == Duty::Started
                && failed[i].is_none()
                && !matches!(statuses[i].standing, Standing::Ready | Standing::Swapped)
        };
        let mut running = (0..n).filter(|&i| busy(i)).count();
        let mut per_host: HashMap<String, u32> = HashMap::new();
        for i in (0..n).filter(|&i| busy(i)) {
            *per_host.entry(probes[i].target.host.clone()).or_default() += 1;
        }
        for i in 0..n {
            if duty[i] != Duty::Queued || failed[i].is_some() || running >= args.parallel as usize {
                continue;
            }
            let host = probes[i].target.host.clone();
            let on_host = per_host.entry(host).or_default();
            if *on_host >= args.per_host {
                continue;
            }
            say(&format!(
                "fleet: starting the run of {}",
                probes[i].target.label
            ));
            children[i] = Some(launch.spawn(&probes[i].target, &child_args)?);
            duty[i] = Duty::Started;
            *on_host += 1;
            running += 1;
        }
        if !failures.is_empty() {
            // per-target: the others go on; the fleet ends once nothing else is left to do.
            let settled = (0..n).all(|i| duty[i] == Duty::Done || failed[i].is_some());
            if settled {
                break Outcome::Failed(failures);
            }
        }
        let all_done = duty.iter().all(|d| *d == Duty::Done);
        if all_done {
            break Outcome::Swapped;
        }
        let gate_open = args.cutover == FleetCutover::Gated
            && (0..n).all(|i| {
                duty[i] == Duty::Done
                    || (duty[i] != Duty::Queued && statuses[i].standing == Standing::Ready)
            });
        if gate_open {
            break Outcome::Gate;
        }
        if last_line.elapsed() > Duration::from_secs(10) {
            last_line = Instant::now();
            let t = status::total(&statuses);
            say(&format!(
                "fleet: {} ready, {} swapped, {} working, {} unreachable, {} waiting to start ({} s)",
                t.ready,
                t.swapped,
                t.working,
                t.unreachable,
                duty.iter().filter(|d| **d == Duty::Queued).count(),
                started_at.elapsed().as_secs()
            ));
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(300)) => {}
            sig = super::shutdown_signal() => {
                return Err(Error::new(Kind::Interrupted, format!("fleet {fleet_id} interrupted by {sig}"))
                    .with_state("no target was told to swap by this command; the targets' runs go on in their own processes (a Ctrl-C in this terminal interrupted them too)")
                    .with_next("`pg-hotswap fleet status` shows where each stands; the same `fleet run` again continues"));
            }
        }
    };
    match outcome {
        Outcome::Failed(failures) => {
            fail_before_gate(&mut probes, &mut children, &fleet_id, &args, failures).await
        }
        Outcome::Swapped => {
            let statuses = read_all(&mut probes, Some(&fleet_id)).await;
            let report = report_of(&statuses);
            finish_report(&fleet_id, &statuses, &report, args.output, "swapped");
            Ok(0)
        }
        Outcome::Gate => {
            let order: Vec<usize> = (0..n).collect();
            let which: Vec<usize> = match args.canary {
                Some(k) => order.into_iter().take(k).collect(),
                None => order,
            };
            say(&format!(
                "fleet {fleet_id}: all {n} target(s) ready; swapping {} one after another",
                if which.len() == n {
                    "them".to_string()
                } else {
                    format!("the first {} (canary)", which.len())
                }
            ));
            let report =
                gate::cutover(&mut probes, &which, &fleet_id, &launch, args.swap_retries).await?;
            let statuses = read_all(&mut probes, Some(&fleet_id)).await;
            let canary_left = which.len() < n;
            let outcome = if !report.failed.is_empty() {
                "split"
            } else if canary_left {
                "canary"
            } else {
                "swapped"
            };
            finish_report(&fleet_id, &statuses, &report, args.output, outcome);
            cutover_result(&report, &args.t, &fleet_id, canary_left)
        }
    }
}

enum Outcome {
    /// Every target swapped (per-target cut-over, or all swapped before).
    Swapped,
    /// Every target is ready (or swapped before): the gate opens.
    Gate,
    /// Targets failed: (label, error).
    Failed(Vec<(String, String)>),
}

/// The fleet id for the commands other than `run`: given, or the one the targets' last fleet
/// runs of the table agree on.
async fn resolve_id(probes: &mut [Probe], t: &FleetTargetArgs) -> Result<Option<String>> {
    if let Some(id) = &t.fleet_id {
        return Ok(Some(id.clone()));
    }
    let statuses = read_all(probes, None).await;
    let mut ids: Vec<String> = statuses.iter().filter_map(|s| s.fleet_id.clone()).collect();
    ids.sort();
    ids.dedup();
    match ids.len() {
        0 => Ok(None),
        1 => Ok(ids.pop()),
        _ => Err(Error::usage(format!(
            "the targets' last runs of {} belong to different fleets ({}): name one with --fleet-id",
            t.table,
            ids.join(", ")
        ))),
    }
}

/// `fleet status`.
async fn status_command(args: FleetStatusArgs) -> Result<i32> {
    let mut probes = load(&args.t)?;
    let id = resolve_id(&mut probes, &args.t).await?;
    let statuses = read_all(&mut probes, id.as_deref()).await;
    match args.output {
        OutputFormat::Json => super::print_json(&status::FleetStatus {
            fleet_id: id.as_deref(),
            total: status::total(&statuses),
            targets: &statuses,
        }),
        OutputFormat::Text => {
            if let Some(id) = &id {
                crate::output::ui::outln!("fleet {id}, table {}", args.t.table);
            }
            crate::output::ui::out!("{}", status::render(&statuses));
        }
    }
    Ok(0)
}

/// `fleet cutover`: every ready target swapped, one after another.
async fn cutover_command(args: FleetCutoverArgs) -> Result<i32> {
    let mut probes = load(&args.t)?;
    let Some(id) = resolve_id(&mut probes, &args.t).await? else {
        return Err(Error::usage(format!(
            "no fleet run of {} is recorded on these targets",
            args.t.table
        )));
    };
    let log_dir = args.log_dir.clone().unwrap_or_else(|| default_log_dir(&id));
    let launch = ChildLauncher::new(&args.t, log_dir)?;
    let which: Vec<usize> = (0..probes.len()).collect();
    let report = gate::cutover(&mut probes, &which, &id, &launch, args.swap_retries).await?;
    let statuses = read_all(&mut probes, Some(&id)).await;
    let outcome = if report.failed.is_empty() && report.not_ready.is_empty() {
        "swapped"
    } else {
        "split"
    };
    finish_report(&id, &statuses, &report, args.output, outcome);
    cutover_result(&report, &args.t, &id, false)
}

/// `fleet revert`: `pg-hotswap revert` on every swapped target whose old table is kept in sync,
/// one after another.
async fn revert_command(args: FleetCutoverArgs) -> Result<i32> {
    let mut probes = load(&args.t)?;
    let id = resolve_id(&mut probes, &args.t).await?;
    let log_dir = args
        .log_dir
        .clone()
        .unwrap_or_else(|| default_log_dir(id.as_deref().unwrap_or("fleet")));
    let launch = ChildLauncher::new(&args.t, log_dir)?;
    let statuses = read_all(&mut probes, id.as_deref()).await;
    let (mut reverted, mut failed) = (Vec::new(), Vec::new());
    for (p, s) in probes.iter().zip(&statuses) {
        if s.standing != Standing::Swapped || s.reverse.as_deref() != Some("active") {
            continue;
        }
        let mut child = launch.spawn(&p.target, &launch.base("revert"))?;
        let code = child
            .wait()
            .await
            .map_err(|e| Error::failed(format!("waiting for the revert of {}: {e}", s.target)))?;
        if code.success() {
            say(&format!("fleet: {} reverted", s.target));
            reverted.push(s.target.clone());
        } else {
            failed.push(format!(
                "{}: {}",
                s.target,
                launch
                    .error_tail(&p.target)
                    .unwrap_or_else(|| format!("exit status {code}"))
            ));
        }
    }
    crate::output::ui::outln!(
        "fleet {}: reverted {} target(s){}",
        id.as_deref().unwrap_or("?"),
        reverted.len(),
        if reverted.is_empty() {
            String::new()
        } else {
            format!(": {}", reverted.join(", "))
        }
    );
    if failed.is_empty() {
        Ok(0)
    } else {
        Err(
            Error::failed(format!("not reverted: {}", failed.join("; "))).with_next(
                "see `pg-hotswap fleet status`; `pg-hotswap revert` on one target tries it again",
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::{Cli, Command};
    use clap::Parser;

    fn parse(extra: &[&str]) -> std::result::Result<FleetRunArgs, clap::Error> {
        let mut a = vec![
            "pg-hotswap",
            "fleet",
            "run",
            "--targets",
            "f",
            "--table",
            "t",
        ];
        a.extend_from_slice(extra);
        match Cli::try_parse_from(a)?.command {
            Command::Fleet(FleetArgs {
                command: FleetCommand::Run(r),
            }) => Ok(r),
            _ => panic!("not fleet run"),
        }
    }

    #[test]
    fn fleet_run_flags_and_the_run_options_after_the_separator() {
        let r = parse(&[]).unwrap();
        assert_eq!((r.parallel, r.per_host), (4, 1));
        assert_eq!(r.cutover, FleetCutover::Gated);
        assert_eq!(r.on_failure, OnFailure::Wait);
        assert!(r.run_args.is_empty());
        let r = parse(&[
            "--alter",
            "ALTER COLUMN id TYPE bigint",
            "--cutover",
            "per-target",
            "--per-host",
            "2",
            "--",
            "--jobs",
            "2",
            "--chunk-rows=500",
        ])
        .unwrap();
        assert_eq!(r.cutover, FleetCutover::PerTarget);
        assert_eq!(r.run_args, ["--jobs", "2", "--chunk-rows=500"]);
        assert!(check_run_args("t", &r.run_args).is_ok());
        // --canary goes with the gate; --parallel at least 1.
        assert!(parse(&["--canary", "2", "--cutover", "per-target"]).is_err());
        assert_eq!(parse(&["--canary", "2"]).unwrap().canary, Some(2));
        assert!(parse(&["--parallel", "0"]).is_err());
        // What the fleet sets itself, or what `run` does not take, is refused after `--`.
        for bad in [
            &["--dsn", "host=x"][..],
            &["--cutover=auto"],
            &["--alter", "x"],
            &["--no-such-flag"],
            &["--jobs", "0"],
        ] {
            let args: Vec<String> = bad.iter().map(|s| s.to_string()).collect();
            let e = check_run_args("t", &args).unwrap_err();
            assert_eq!(e.kind(), Kind::Usage, "{bad:?}");
        }
    }
}
