//! `pg-hotswap revert` and `finish`: their flags, and both commands on the target resolved once
//! (the way back itself is `crate::rewrite::revert`).

use super::flags::{check_schema_name, check_table, conn_spec, ConnArgs, LockArgs};
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
    pub fn into_options(self) -> Result<RevertOptions> {
        check_table(&self.table)?;
        check_schema_name("--state-schema", &self.state_schema)?;
        Ok(RevertOptions {
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
    pub fn into_options(self) -> Result<FinishOptions> {
        check_table(&self.table)?;
        check_schema_name("--state-schema", &self.state_schema)?;
        Ok(FinishOptions {
            conn: conn_spec(&self.conn, &self.lock)?,
            lock: self.lock.policy(),
            table: self.table,
            state_schema: self.state_schema,
        })
    }
}

/// `revert`: the old table swapped back in.
pub(super) async fn revert_command(args: RevertArgs) -> Result<i32> {
    let opts = args.into_options()?;
    let target = TargetSpec::new(&opts.conn, &opts.table, &opts.state_schema)
        .resolve("revert")
        .await?;
    revert::revert(target, &opts).await?;
    Ok(0)
}

/// `finish`: the kept old table and the reverse capture dropped.
pub(super) async fn finish_command(args: FinishArgs) -> Result<i32> {
    let opts = args.into_options()?;
    let target = TargetSpec::new(&opts.conn, &opts.table, &opts.state_schema)
        .resolve("finish")
        .await?;
    revert::finish(target, &opts).await?;
    Ok(0)
}
