//! `pg-hotswap revert` and `finish`: their flags, and both commands on the target resolved once
//! (the way back itself is `crate::rewrite::revert`).

use super::flags::{target_spec, ConnArgs, LockArgs};
use crate::error::Result;
use crate::rewrite::revert::{self, FinishOptions, RevertOptions};
use crate::state::target::TargetSpec;
use clap::Args;

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
    /// The command's target and the options of the way back.
    pub fn into_options(self) -> Result<(TargetSpec, RevertOptions)> {
        let target = target_spec(
            &self.conn,
            &self.table,
            &self.state_schema,
            self.lock.lock_timeout,
        )?;
        Ok((
            target,
            RevertOptions {
                lock: self.lock.policy(),
                replay_batch: self.replay_batch,
            },
        ))
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
    /// The command's target and the options of `finish`.
    pub fn into_options(self) -> Result<(TargetSpec, FinishOptions)> {
        let target = target_spec(
            &self.conn,
            &self.table,
            &self.state_schema,
            self.lock.lock_timeout,
        )?;
        Ok((
            target,
            FinishOptions {
                lock: self.lock.policy(),
            },
        ))
    }
}

/// `revert`: the old table swapped back in.
pub(super) async fn revert_command(args: RevertArgs) -> Result<i32> {
    let (spec, opts) = args.into_options()?;
    let target = spec.resolve("revert").await?;
    revert::revert(target, &opts).await?;
    Ok(0)
}

/// `finish`: the kept old table and the reverse capture dropped.
pub(super) async fn finish_command(args: FinishArgs) -> Result<i32> {
    let (spec, opts) = args.into_options()?;
    let target = spec.resolve("finish").await?;
    revert::finish(target, &opts).await?;
    Ok(0)
}
