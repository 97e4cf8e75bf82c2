//! `pg-hotswap resume`: a paused run with its process still attached is told to go on; a
//! stopped run is continued here with the arguments it was started with (those that decide the
//! result are read from its record), the others from this command's flags.

use super::control::{self, Request};
use super::flags::{
    chunk_time_option, parse_chunk_time, target_spec, BlockerArgs, ConnArgs, LockArgs, OutputFormat,
};
use super::pace::{OldSnapshotArgs, PaceArgs};
use super::run::rewrite;
use crate::error::{Error, Result};
use crate::output::ui::say;
use crate::rewrite::mapping::MapArg;
use crate::rewrite::migrator::RunOptions;
use crate::state::target::{Target, TargetSpec};
use clap::Args;
use std::time::Duration;

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
    #[command(flatten)]
    pub blockers: BlockerArgs,
    /// Drop the old table after the swap instead of keeping it.
    #[arg(long)]
    pub drop_old: bool,
    /// Verify the shadow against the source before the swap (full, sample, off).
    #[arg(long, default_value = "full", value_parser = clap::value_parser!(crate::rewrite::verify::Mode))]
    pub verify: crate::rewrite::verify::Mode,
    /// About how long one copy transaction takes ("off": one chunk each).
    #[arg(long, default_value = "2s", value_parser = parse_chunk_time)]
    pub chunk_time: Duration,
    /// Format of the final report on stdout.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

impl ResumeArgs {
    /// The command's target, and the options of the resumed run except the ones that decide its
    /// result, which [`recorded_options`] takes from the recorded run.
    pub fn into_options(self) -> Result<(TargetSpec, RunOptions)> {
        let target = target_spec(
            &self.conn,
            &self.table,
            &self.state_schema,
            self.lock.lock_timeout,
        )?;
        let opts = RunOptions {
            lock: self.lock.policy(),
            alter: None,
            maps: Vec::new(),
            jobs: self.jobs as usize,
            drop_old: self.drop_old,
            chunk_rows: 100_000,
            chunk_time: chunk_time_option(self.chunk_time),
            replay_batch: 5_000,
            shadow_name: None,
            old_name: None,
            maintenance_work_mem: "256MB".into(),
            order_by: None,
            verify: self.verify,
            revertible: false,
            map_back: Vec::new(),
            old_snapshots: self.old_snapshots.options(),
            pace: self.pace.into_options(&self.lock)?,
            terminate_blockers_after: self.blockers.terminate_blockers_after,
            df_on_server: false,
            fleet_id: None,
            // From the record ([`recorded_options`]): a run stopped before it copied (an
            // in-place ALTER still waiting for its lock, say) starts again the way `run` would.
            force_rewrite: false,
            partitioning: None,
            resume_of: None,
        };
        Ok((target, opts))
    }
}

/// How long `resume` watches the process it asked (polling the table's advisory lock): one that
/// was exiting when asked lets go of the lock within milliseconds once its session closes.
const PROCESS_GONE_WITHIN: std::time::Duration = std::time::Duration::from_secs(1);

/// The command: tells a paused run to go on, or continues the stopped run here.
pub(super) async fn command(args: ResumeArgs) -> Result<i32> {
    let output = args.output;
    let (spec, base) = args.into_options()?;
    let target = spec.resolve("control").await?;
    let has_state = target.state_exists().await?;
    // A paused run with its process still attached is told to go on; a stopped run is
    // continued here, and so is one whose process was exiting when the request was sent (its
    // session still held the table a moment longer).
    if has_state {
        if let Some(run) = control::send(&target, Request::Resume).await? {
            if control::still_attached(&target, PROCESS_GONE_WITHIN).await? {
                return Ok(0);
            }
            crate::output::ui::say(&format!(
                "the process working on run {run} of {} has exited; continuing the run here",
                target.table
            ));
        }
    }
    let opts = recorded_options(&target, has_state, base).await?;
    rewrite(Some(target), &spec, opts, output).await
}

/// Fills in the arguments that decide the result (ALTER, maps, shadow name, revertible,
/// map-back, partitioning, --force-rewrite) from the table's unfinished run.
async fn recorded_options(
    target: &Target,
    has_state: bool,
    mut base: RunOptions,
) -> Result<RunOptions> {
    let nothing = || {
        Error::usage(format!("{} has no unfinished run to resume", target.table))
            .with_state("nothing was changed")
            .with_next("start one with `pg-hotswap run`")
    };
    if !has_state {
        return Err(nothing());
    }
    let u = target
        .state
        .unfinished_run(&target.client, target.oid)
        .await?
        .ok_or_else(nothing)?;
    if let Some(statements) = target
        .state
        .in_place_statements(&target.client, u.id)
        .await?
    {
        // Part of its ALTER may have committed on the table itself: started over, the ALTER
        // would meet its own first half ("column ... already exists"; a fresh tester, session 14).
        return Err(Error::refused(format!(
            "run {} was applying its ALTER to {} in place (no rewrite) and stopped part-way; such a run cannot be resumed",
            u.id, target.table
        ))
        .with_state(format!(
            "the statements that had committed stay applied: {}",
            statements.join("; ")
        ))
        .with_next(format!(
            "`pg-hotswap abort --table {}` removes what it left half-done; then compare the table with the ALTER and run what remains of it",
            target.table
        )));
    }
    let a = &u.args;
    let text = |k: &str| a.get(k).and_then(|v| v.as_str()).map(str::to_string);
    let maps = |k: &str| -> Result<Vec<MapArg>> {
        a.get(k)
            .and_then(|v| v.as_array())
            .map(|arr| {
                arr.iter()
                    .filter_map(|m| m.as_str())
                    .map(|m| crate::rewrite::mapping::parse_map(m).map_err(Error::failed))
                    .collect()
            })
            .unwrap_or_else(|| Ok(Vec::new()))
    };
    base.alter = text("alter");
    base.maps = maps("maps")?;
    base.shadow_name = text("shadow_name");
    base.revertible = a
        .get("revertible")
        .and_then(|v| v.as_bool())
        .unwrap_or(false);
    base.map_back = maps("map_back")?;
    base.resume_of = Some(u.id);
    base.force_rewrite = a
        .get("force_rewrite")
        .and_then(|v| v.as_bool())
        .unwrap_or(false);
    base.partitioning = match a.get("partitioning") {
        None | Some(serde_json::Value::Null) => None,
        Some(v) => Some(serde_json::from_value(v.clone()).map_err(|e| {
            Error::failed(format!("reading the run's recorded --partition-by: {e}"))
        })?),
    };
    // The cut-over mode it was started with, unless --cutover is given again; also for a run
    // that starts over (one stopped before its copy, such as an in-place ALTER).
    if !base.pace.cutover_given
        && target.state.cutover_manual(&target.client, u.id).await? == Some(true)
    {
        base.pace.cutover = crate::pacing::governor::Cutover::Manual;
        base.pace.cutover_given = true;
        say(&format!(
            "run {} was started with --cutover manual: it waits for `pg-hotswap cutover` again (give --cutover auto to let it go on by itself)",
            u.id
        ));
    }
    say(&format!(
        "resuming run {} of {} (stopped in phase {}, {})",
        u.id,
        target.table,
        u.phase.as_str(),
        u.status
    ));
    Ok(base)
}
