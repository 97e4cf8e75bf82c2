//! `pg-hotswap run`: its flags, and the rewrite as a command (shared with `resume`): the target
//! resolved once, the run interruptible by Ctrl-C / SIGTERM (the interruption recorded from a
//! fresh session), the report printed, and a data error explained (issue 13).

use super::flags::{
    check_name, check_schema_name, check_table, chunk_time_option, conn_spec,
    has_top_level_semicolon, parse_chunk_time, parse_duration, parse_map_arg, BlockerArgs,
    ConnArgs, LockArgs, OutputFormat,
};
use super::pace::{OldSnapshotArgs, PaceArgs};
use crate::error::{Error, Kind, Result};
use crate::pacing::hooks::{Event, Hooks};
use crate::rewrite::mapping::MapArg;
use crate::rewrite::migrator::{self, RunOptions};
use crate::state::target::{Target, TargetSpec};
use crate::state::Phase;
use clap::Args;
use std::time::Duration;

#[derive(Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    pub conn: ConnArgs,
    /// The table: schema.table (quote mixed-case names: '"App"."My Table"'); without a schema,
    /// resolved through search_path. `run` takes it more than once: the tables are rewritten
    /// one after another, with one report, stopping at the first failure.
    #[arg(long, required_unless_present = "bloated_over")]
    pub table: Vec<String>,
    /// Instead of --table: rebuild every table whose estimated bloat (`pg-hotswap bloat`) is at
    /// least this share of its size (0.3 or 30%), smallest first.
    #[arg(long, conflicts_with = "table", value_parser = super::flags::parse_ratio)]
    pub bloated_over: Option<f64>,
    /// With --bloated-over: only tables of at least this size, heap and indexes (e.g. 1GB).
    #[arg(long, requires = "bloated_over", value_parser = super::flags::parse_size)]
    pub min_size: Option<i64>,
    /// ALTER TABLE actions applied to the new table, without the ALTER TABLE prefix, e.g.
    /// "ALTER COLUMN id TYPE bigint, ADD COLUMN flags int NOT NULL DEFAULT 0". Without it the
    /// table is rebuilt as it is (an online VACUUM FULL).
    #[arg(long)]
    pub alter: Option<String>,
    /// col=<SQL expression over the old row> for a renamed or computed column (repeatable).
    #[arg(long = "map", value_parser = parse_map_arg)]
    pub maps: Vec<MapArg>,
    /// Parallel copy workers (each uses two connections) and index builds. Default 1: on a
    /// 2-core server one stream already keeps both cores busy; 2 was 20% faster under writes
    /// and raised their p99 latency, and slower idle (docs/benchmarks.md, "The default --jobs").
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub jobs: u32,
    #[command(flatten)]
    pub lock: LockArgs,
    #[command(flatten)]
    pub pace: PaceArgs,
    #[command(flatten)]
    pub old_snapshots: OldSnapshotArgs,
    #[command(flatten)]
    pub blockers: BlockerArgs,
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
    /// Write the new table's rows in this order (an online CLUSTER, as pg_repack --order-by):
    /// an index of the table ("accounts_created_idx"), or columns ("tenant_id, created_at").
    /// The shadow is clustered after the copy, before the catch-up.
    #[arg(long)]
    pub order_by: Option<String>,
    /// Verify the shadow against the source before the swap: every chunk (full), about one
    /// chunk in ten (sample), or not at all (off).
    #[arg(long, default_value = "full", value_parser = clap::value_parser!(crate::rewrite::verify::Mode))]
    pub verify: crate::rewrite::verify::Mode,
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
    /// Copy the table even when PostgreSQL would apply the ALTER without rewriting it (a new
    /// nullable column, a wider varchar, a new default...). Without it such an ALTER is applied
    /// to the table in place, under the short lock timeout, with long checks done without
    /// blocking writes (issue 16, docs/operations.md).
    #[arg(long)]
    pub force_rewrite: bool,
    /// Make the new table a partitioned one with this partition key: "RANGE (created_at)",
    /// "LIST (region)" or "HASH (id)" (issue 15). Give its partitions with --partition. Unique
    /// keys must include the partition key's columns (widen them in --alter).
    #[arg(long, value_parser = crate::rewrite::partitioning::parse_partition_by)]
    pub partition_by: Option<String>,
    /// A partition of the new table (with --partition-by; repeatable): "<name> FOR VALUES FROM
    /// ('2024-01-01') TO ('2025-01-01')", "<name> FOR VALUES IN ('eu')", "<name> FOR VALUES
    /// WITH (MODULUS 4, REMAINDER 0)" or "<name> DEFAULT". Created in the table's schema.
    #[arg(long = "partition", value_parser = crate::rewrite::partitioning::parse_partition)]
    pub partition: Vec<crate::rewrite::partitioning::PartitionSpec>,
    /// Instead of --partition: one partition per day, week, month or year over the span of the
    /// data of the --partition-by "RANGE (<column>)" column (a date, timestamp or timestamptz),
    /// named <table>_pYYYYMM (month; _pYYYY, _pYYYYMMDD for year, week and day), and a
    /// <table>_default partition (docs/operations.md).
    #[arg(long, value_parser = crate::rewrite::partition_ranges::Interval::parse)]
    pub partition_interval: Option<crate::rewrite::partition_ranges::Interval>,
    /// Do not rewrite: print the plan instead (the same as `pg-hotswap plan`).
    #[arg(long)]
    pub dry_run: bool,
    /// Plan only: how long to watch the table's write rate (for the replay estimate).
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub observe: Duration,
    /// Plan only: rows to copy as a sample (default 2% of the table, 20,000 to 200,000).
    #[arg(long, value_parser = clap::value_parser!(i64).range(1..))]
    pub sample_rows: Option<i64>,
    /// Superuser only: read free disk by running `df` on the database server (COPY ... FROM
    /// PROGRAM, in a rolled-back transaction); `run` refuses, before creating anything, a copy
    /// that cannot fit. Off unless asked.
    #[arg(long)]
    pub df_on_server: bool,
    /// The fleet run this run belongs to (issue 18): `fleet run` passes it to the run of every
    /// target; recorded in `runs.fleet_id`.
    #[arg(long, hide = true)]
    pub fleet_id: Option<String>,
}

impl RunArgs {
    /// The command's target (`--dsn`, `--table`, `--state-schema`) and the run's options.
    pub fn into_options(mut self) -> Result<(TargetSpec, RunOptions)> {
        if self.min_size.is_some() && self.bloated_over.is_none() {
            // clap drops `requires` when the required flag conflicts with one given (--table).
            return Err(Error::usage("--min-size goes with --bloated-over"));
        }
        let table = match (self.table.len(), self.bloated_over) {
            (1, None) => self.table.remove(0),
            _ => {
                return Err(Error::usage(
                    "this command takes exactly one --table (only `run` takes several, or --bloated-over)",
                ))
            }
        };
        check_table(&table)?;
        let (conn, state_schema, opts) = self.into_shared_options()?;
        let target = TargetSpec {
            conn,
            table,
            state_schema,
        };
        Ok((target, opts))
    }

    /// What every table of a run shares: the connection, the state schema, the run's options.
    fn into_shared_options(self) -> Result<(crate::db::conn::ConnSpec, String, RunOptions)> {
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
        let partitioning = match (
            self.partition_by,
            self.partition.is_empty(),
            self.partition_interval,
        ) {
            (Some(by), false, None) => Some(crate::rewrite::partitioning::PartitionRequest {
                by,
                partitions: self.partition,
                interval: None,
            }),
            (Some(by), true, Some(interval)) => {
                Some(crate::rewrite::partitioning::PartitionRequest {
                    by,
                    partitions: Vec::new(),
                    interval: Some(interval),
                })
            }
            (Some(_), false, Some(_)) => {
                return Err(Error::usage(
                    "--partition-interval generates the partitions: give it or --partition, not both",
                ))
            }
            (Some(_), true, None) => {
                return Err(Error::usage(
                    "--partition-by needs at least one --partition \"<name> FOR VALUES ... | DEFAULT\", or --partition-interval day|week|month|year",
                ))
            }
            (None, false, _) => return Err(Error::usage("--partition goes with --partition-by")),
            (None, true, Some(_)) => {
                return Err(Error::usage(
                    "--partition-interval goes with --partition-by \"RANGE (<column>)\"",
                ))
            }
            (None, true, None) => None,
        };
        let conn = conn_spec(&self.conn, &self.lock)?;
        let opts = RunOptions {
            lock: self.lock.policy(),
            alter: self.alter,
            maps: self.maps,
            jobs: self.jobs as usize,
            drop_old: self.drop_old,
            chunk_rows: self.chunk_rows,
            chunk_time: chunk_time_option(self.chunk_time),
            replay_batch: self.replay_batch,
            shadow_name: self.shadow_name,
            old_name: self.old_name,
            maintenance_work_mem: mwm.to_string(),
            order_by: self.order_by,
            verify: self.verify,
            revertible: self.revertible,
            map_back: self.map_back,
            old_snapshots: self.old_snapshots.options(),
            pace: self.pace.into_options(&self.lock)?,
            terminate_blockers_after: self.blockers.terminate_blockers_after,
            df_on_server: self.df_on_server,
            fleet_id: self.fleet_id,
            force_rewrite: self.force_rewrite,
            partitioning,
            resume_of: None,
        };
        Ok((conn, self.state_schema, opts))
    }
}

/// The command (`run` without `--dry-run`).
pub(super) async fn command(args: RunArgs) -> Result<i32> {
    if args.table.len() > 1 || args.bloated_over.is_some() {
        return many(args).await;
    }
    let output = args.output;
    let (spec, opts) = args.into_options()?;
    rewrite(None, &spec, opts, output).await
}

/// `run` and `resume`: the rewrite on `target` (resolved here when `None`), interruptible by
/// Ctrl-C / SIGTERM; the report printed on success.
pub(super) async fn rewrite(
    target: Option<Target>,
    spec: &TargetSpec,
    opts: RunOptions,
    output: OutputFormat,
) -> Result<i32> {
    rewrite_one(target, spec, opts, Some(output))
        .await
        .map(|_| 0)
}

/// [`rewrite`], its report printed in `output` (None: returned only, for [`many`]).
async fn rewrite_one(
    target: Option<Target>,
    spec: &TargetSpec,
    opts: RunOptions,
    output: Option<OutputFormat>,
) -> Result<migrator::RunReport> {
    if let Some(h) = &opts.pace.hooks {
        // The hooks name the table as it was given (`--table`), so they can hand it back.
        h.update(|f| {
            if f.table.is_empty() {
                f.table = spec.table.clone();
            }
        });
    }
    let work = async {
        let target = match target {
            Some(t) => t,
            None => spec.resolve("control").await?,
        };
        migrator::run(target, &opts).await
    };
    let result = tokio::select! {
        r = work => match r {
            Ok(report) => {
                crate::output::progress::finish();
                match output {
                    Some(OutputFormat::Json) => super::print_json(&report),
                    Some(OutputFormat::Text) => super::report::print(&report),
                    None => {}
                }
                Ok(report)
            }
            Err(e) => Err(advise(e, &spec.table, &opts)),
        },
        sig = super::shutdown_signal() => Err(interrupted(spec, sig).await),
    };
    if let Some(h) = &opts.pace.hooks {
        tell_hooks(h, spec, result.as_ref().map(|_| 0)).await;
    }
    result
}

/// What one `run` over several tables did (`--output json`): the tables rewritten, in order,
/// with their reports, and the tables not rewritten (the failed one first).
#[derive(serde::Serialize)]
struct ManyReport<'a> {
    rewritten: &'a [String],
    not_rewritten: &'a [String],
    reports: &'a [migrator::RunReport],
}

/// `run` with several `--table`s, or `--bloated-over` (issue 19): each table through the
/// single-table path ([`rewrite_one`], one after another), one report at the end; the first
/// failure stops it, and its error says which tables were rewritten and which not.
async fn many(mut args: RunArgs) -> Result<i32> {
    if args.shadow_name.is_some() || args.old_name.is_some() {
        return Err(Error::usage(
            "--shadow-name and --old-name name one table's objects: give them with a single --table",
        ));
    }
    if args.min_size.is_some() && args.bloated_over.is_none() {
        return Err(Error::usage("--min-size goes with --bloated-over"));
    }
    let output = args.output;
    let named = std::mem::take(&mut args.table);
    for t in &named {
        check_table(t)?;
    }
    let (bloated_over, min_size) = (args.bloated_over, args.min_size.unwrap_or(0));
    let (conn, state_schema, opts) = args.into_shared_options()?;
    let tables: Vec<String> = match bloated_over {
        None => named,
        Some(ratio) => {
            let mut found = super::bloat::bloated(&conn, &state_schema, ratio, min_size).await?;
            found.retain(|t| t.ratio().is_some());
            found.sort_by_key(|t| t.size());
            let names: Vec<String> = found.iter().map(|t| t.name.to_string()).collect();
            crate::output::ui::say(&format!(
                "pg-hotswap: {} table(s) with estimated bloat of at least {:.0}%, smallest first: {}",
                names.len(),
                ratio * 100.0,
                if names.is_empty() { "none".to_string() } else { names.join(", ") }
            ));
            names
        }
    };
    let mut reports = Vec::with_capacity(tables.len());
    for (i, table) in tables.iter().enumerate() {
        let spec = TargetSpec::new(&conn, table, &state_schema);
        if let Some(h) = &opts.pace.hooks {
            // The hooks of this table name this table and its run, not the one before.
            h.update(|f| {
                f.table = table.clone();
                f.run_id = None;
                f.phase = String::new();
            });
        }
        match rewrite_one(None, &spec, opts.clone(), None).await {
            Ok(r) => reports.push(r),
            Err(e) => {
                print_many(&tables[..i], &tables[i..], &reports, output);
                let done = match i {
                    0 => "no table was rewritten".to_string(),
                    _ => format!("rewritten: {}", tables[..i].join(", ")),
                };
                let summary = format!(
                    "{done}; not rewritten: {} (failed), {}",
                    tables[i],
                    match &tables[i + 1..] {
                        [] => "no other".to_string(),
                        rest => rest.join(", "),
                    }
                );
                let state = match e.state() {
                    Some(s) => format!("{s}. {summary}"),
                    None => summary,
                };
                return Err(e.with_state(state));
            }
        }
    }
    print_many(&tables, &[], &reports, output);
    Ok(0)
}

/// The one report of [`many`]: each rewritten table's summary, then which tables were done.
fn print_many(
    done: &[String],
    not_done: &[String],
    reports: &[migrator::RunReport],
    output: OutputFormat,
) {
    match output {
        OutputFormat::Json => super::print_json(&ManyReport {
            rewritten: done,
            not_rewritten: not_done,
            reports,
        }),
        OutputFormat::Text => {
            for r in reports {
                super::report::print(r);
            }
            crate::output::ui::outln!(
                "pg-hotswap: rewrote {} of {} table(s){}{}",
                done.len(),
                done.len() + not_done.len(),
                if done.is_empty() {
                    String::new()
                } else {
                    format!(": {}", done.join(", "))
                },
                if not_done.is_empty() {
                    String::new()
                } else {
                    format!("; not rewritten: {}", not_done.join(", "))
                },
            );
        }
    }
}

/// `--hooks-dir` (issue 19): `on-success` or `on-failure` with the error and the exit status,
/// after the hooks queued before (each bounded by `--hook-timeout`); they change nothing of
/// the result.
async fn tell_hooks(h: &Hooks, spec: &TargetSpec, result: std::result::Result<i32, &Error>) {
    h.update(|f| {
        if f.table.is_empty() {
            f.table = spec.table.clone();
        }
    });
    match result {
        Ok(code) => {
            // The governor's last figures were read before the swap.
            h.update(|f| f.phase = Phase::Done.as_str().to_string());
            h.fire(Event::Success, &[("PGHOTSWAP_EXIT_CODE", code.to_string())])
                .await
        }
        Err(e) => {
            h.fire(
                Event::Failure,
                &[
                    ("PGHOTSWAP_ERROR", e.message().to_string()),
                    ("PGHOTSWAP_EXIT_CODE", e.kind().exit_code().to_string()),
                ],
            )
            .await
        }
    };
}

/// After Ctrl-C / SIGTERM: the interruption recorded, and the error that says what is left.
async fn interrupted(spec: &TargetSpec, sig: &str) -> Error {
    let table = &spec.table;
    let state = match mark_interrupted(spec).await {
        Ok(Some(p)) if p >= Phase::Finish =>
            "the swap had already committed; the new table is in place and only clean-up is left".to_string(),
        Ok(_) => format!("{table} is unchanged and usable; the open transactions of the run were rolled back, and its capture trigger (if installed) keeps recording writes"),
        Err(e) => format!("could not record the interruption ({e})"),
    };
    let table = crate::output::ui::shell_word(table);
    Error::new(Kind::Interrupted, format!("interrupted by {sig}"))
        .with_state(state)
        .with_next(format!("`pg-hotswap resume --table {table}` (or the same command again) continues, `pg-hotswap abort --table {table}` removes everything the run created"))
}

/// Records the interruption of the table's running run, from a fresh session (the run's own
/// sessions are gone and their transactions rolled back); the table is resolved again there.
async fn mark_interrupted(spec: &TargetSpec) -> Result<Option<Phase>> {
    let target = spec.resolve("interrupt").await?;
    if !target.state_exists().await? {
        return Ok(None);
    }
    let (ctl, state) = (&target.client, &target.state);
    if let Some(u) = state.unfinished_run(ctl, target.oid).await? {
        state
            .finish(
                ctl,
                u.id,
                "interrupted",
                Some("interrupted by the operator"),
            )
            .await?;
        // The run's sessions are closed, but a statement in flight on the shadow (an index
        // build) would run on to its end, holding the shadow.
        if let Some(plan) = u
            .plan
            .clone()
            .and_then(|p| serde_json::from_value::<crate::rewrite::plan::Plan>(p).ok())
            .filter(|p| p.shadow_oid != 0)
        {
            migrator::cancel_own_statements_on(ctl, plan.shadow_oid).await?;
        }
        state
            .event(
                ctl,
                u.id,
                u.phase,
                "interrupted",
                "interrupted by the operator",
                None,
            )
            .await?;
        return Ok(Some(u.phase));
    }
    Ok(None)
}

/// A run that failed on the data itself (a cast, `USING` or `--map` expression that fails for
/// some row, a constraint the new rows break) fails the same way when run again: say so, and
/// point at what the user wrote — a USING or a --map only when there is one (issue 13).
fn advise(e: Error, table: &str, opts: &RunOptions) -> Error {
    if !e.is_data_error() {
        return e;
    }
    let has_using = opts
        .alter
        .as_deref()
        .and_then(|a| crate::rewrite::alter_text::type_changes(a).ok())
        .is_some_and(|t| t.iter().any(|c| c.using.is_some()));
    let what = match (has_using, !opts.maps.is_empty()) {
        (true, true) => {
            "the --alter's USING expressions or the --map expressions so that they work"
        }
        (true, false) => "the --alter's USING expressions so that they work",
        (false, true) => "the --map expressions so that they work",
        (false, false) => "the rows (or the --alter) so that the new shape holds",
    };
    let table = crate::output::ui::shell_word(table);
    e.with_next(format!(
        "the rows do not fit the new shape, and PostgreSQL's own ALTER TABLE would fail on them too: \
         `pg-hotswap abort --table {table}` removes what the run created; then change {what} \
         for every row, and run again"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::{Cli, Command};
    use clap::Parser;

    #[test]
    fn chunk_time_is_a_duration_or_off() {
        let opts = |extra: &[&str]| {
            let mut a = vec!["pg-hotswap", "run", "--dsn", "host=h", "--table", "t"];
            a.extend_from_slice(extra);
            let Command::Run(args) = Cli::try_parse_from(a).unwrap().command else {
                panic!("not run")
            };
            args.into_options().unwrap().1.chunk_time
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
        assert_eq!(r.into_options().unwrap().1.chunk_time, None);
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
        let (t, o) = args.into_options().unwrap();
        assert_eq!(t.table, "app.t");
        assert_eq!(o.jobs, 3);
        assert_eq!(o.lock.timeout, Duration::from_millis(50));
        assert_eq!(o.lock.attempts, 5);
        assert_eq!(o.maps[0].column.as_str(), "b");
        assert_eq!(t.conn.config.get_user(), Some("u"));
    }

    #[test]
    fn several_tables_or_bloated_over() {
        let parse = |extra: &[&str]| {
            let mut a = vec!["pg-hotswap", "run", "--dsn", "host=h"];
            a.extend_from_slice(extra);
            Cli::try_parse_from(a)
        };
        let Command::Run(args) = parse(&["--table", "a", "--table", "b"]).unwrap().command else {
            panic!("not run")
        };
        assert_eq!(args.table, ["a", "b"]);
        // `plan` and the single-table path take exactly one table.
        assert_eq!(args.into_options().unwrap_err().kind(), Kind::Usage);
        let Command::Run(args) = parse(&["--bloated-over", "30%", "--min-size", "1GB"])
            .unwrap()
            .command
        else {
            panic!("not run")
        };
        assert_eq!(args.bloated_over, Some(0.3));
        assert_eq!(args.min_size, Some(1 << 30));
        assert!(parse(&["--bloated-over", "0.3", "--table", "a"]).is_err());
        let Command::Run(args) = parse(&["--table", "a", "--min-size", "1GB"])
            .unwrap()
            .command
        else {
            panic!("not run")
        };
        assert_eq!(args.into_options().unwrap_err().kind(), Kind::Usage);
        assert!(parse(&["--bloated-over", "2"]).is_err());
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
