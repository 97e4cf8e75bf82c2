//! `pg-hotswap abort`: removes everything an unfinished run of the table created. A running run
//! is asked to stop (from any terminal) and removes its objects itself; a stopped one is cleaned
//! up here, under the table's advisory lock.

use super::control::{self, Request};
use super::flags::{parse_duration, target_spec, ConnArgs, LockArgs};
use crate::db::locking::LockPolicy;
use crate::error::{Error, Result};
use crate::output::ui::say;
use crate::rewrite::migrator::cleanup;
use crate::state::target::{Target, TargetSpec};
use clap::Args;
use std::time::Duration;

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

/// Options of `abort`.
pub struct AbortOptions {
    pub target: TargetSpec,
    pub lock: LockPolicy,
    /// How long to wait for a running run to stop after the request.
    pub wait: Duration,
}

impl AbortArgs {
    pub fn into_options(self) -> Result<AbortOptions> {
        Ok(AbortOptions {
            target: target_spec(
                &self.conn,
                &self.table,
                &self.state_schema,
                self.lock.lock_timeout,
            )?,
            lock: self.lock.policy(),
            wait: self.wait,
        })
    }
}

/// The command: exit 0 when nothing is left to abort.
pub(super) async fn command(args: AbortArgs) -> Result<i32> {
    let opts = args.into_options()?;
    let target = opts.target.resolve("abort").await?;
    abort(&target, &opts).await?;
    Ok(0)
}

/// Removes what an unfinished run of the table created; returns its id.
async fn abort(target: &Target, opts: &AbortOptions) -> Result<Option<i64>> {
    let (ctl, state, oid, table) = (&target.client, &target.state, target.oid, &target.table);
    if !target.state_exists().await? {
        say(&format!(
            "no state schema {}: nothing to abort",
            state.schema.as_str()
        ));
        return Ok(None);
    }
    // A process is working on it: ask it to stop and clean up itself (from any terminal).
    if let Some(run) = control::send(target, Request::Abort).await? {
        if control::wait_aborted(target, run, opts.wait).await? {
            return Ok(Some(run));
        }
        say(&format!(
            "run {run}'s process ended without seeing the request; removing what it created here"
        ));
    }
    if !state.try_lock_table(ctl, oid).await? {
        let pid = state.lock_holder(ctl, oid).await?;
        return Err(Error::failed(format!(
            "a pg-hotswap process (session pid {}) holds {} but no running run of it is recorded",
            pid.map(|p| p.to_string()).unwrap_or_else(|| "?".into()),
            table
        ))
        .with_state("nothing was changed")
        .with_next("stop that process (Ctrl-C), then run abort again"));
    }
    let Some(u) = state.unfinished_run(ctl, oid).await? else {
        say(&format!("no unfinished run for {table}: nothing to abort"));
        return Ok(None);
    };
    if let Some(statements) = state.in_place_statements(ctl, u.id).await? {
        // It altered the table itself (no rewrite needed): what of the ALTER had committed
        // stays; only what it left half-done is removed.
        let name = crate::db::catalog::relation_name(ctl, oid)
            .await?
            .ok_or_else(|| Error::failed(format!("table {table} is gone")))?;
        let removed =
            crate::rewrite::fastpath::remove_leftovers(ctl, &opts.lock, oid, &name, &statements)
                .await?;
        cleanup(ctl, state, &u, &opts.lock).await?;
        say(&crate::rewrite::fastpath::aborted_message(
            u.id,
            table,
            &removed,
            &statements,
        ));
        return Ok(Some(u.id));
    }
    cleanup(ctl, state, &u, &opts.lock).await?;
    say(&format!(
        "aborted run {}: everything it created is removed; {table} is as it was",
        u.id
    ));
    Ok(Some(u.id))
}
