//! `pg-hotswap status`: every run recorded in the state tables, from any client — table, phase,
//! status, copy progress, replay backlog, lock attempts, whether a process is working on it, and
//! the error of a run that stopped. Reads only.

use super::flags::{check_schema_name, check_table, ConnArgs, OutputFormat};
use crate::db::conn::ConnSpec;
use crate::error::{DbContext, Result, RowExt};
use crate::state::target::Session;
use clap::Args;
use serde::Serialize;
use std::time::Duration;

#[derive(Args, Debug)]
pub struct StatusArgs {
    #[command(flatten)]
    pub conn: ConnArgs,
    /// Only the runs of this table.
    #[arg(long)]
    pub table: Option<String>,
    #[arg(long, default_value = "hotswap")]
    pub state_schema: String,
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

pub struct StatusOptions {
    pub conn: ConnSpec,
    pub state_schema: String,
    /// Only this table's runs (as the user writes it: resolved like `--table`).
    pub table: Option<String>,
}

impl StatusArgs {
    pub fn into_options(self) -> Result<StatusOptions> {
        check_schema_name("--state-schema", &self.state_schema)?;
        if let Some(t) = &self.table {
            check_table(t)?;
        }
        Ok(StatusOptions {
            conn: super::flags::resolve_conn(self.conn.dsn.as_deref(), Duration::from_millis(100))?,
            state_schema: self.state_schema,
            table: self.table,
        })
    }
}

/// The command: the runs printed as text or JSON.
pub(super) async fn command(args: StatusArgs) -> Result<i32> {
    let output = args.output;
    let runs = status(&args.into_options()?).await?;
    match output {
        OutputFormat::Json => super::print_json(&runs),
        OutputFormat::Text => crate::output::ui::out!("{}", render(&runs)),
    }
    Ok(0)
}

#[derive(Debug, Serialize)]
pub struct RunStatus {
    pub id: i64,
    pub table: String,
    pub phase: String,
    pub status: String,
    pub alter: Option<String>,
    pub started_at: String,
    pub updated_at: String,
    pub finished_at: Option<String>,
    pub chunks_done: i64,
    pub chunks_total: i64,
    pub rows_copied: i64,
    /// Change-log rows waiting to be replayed (unfinished runs whose log exists).
    pub backlog: Option<i64>,
    pub lock_attempts: i32,
    pub longest_lock_ms: Option<f64>,
    /// The session of the pg-hotswap process working on it, if one is.
    pub active_pid: Option<i32>,
    pub old_table: Option<String>,
    pub reverse: Option<String>,
    pub error: Option<String>,
    /// Copy rate over the last minute (rows/s), while copying.
    pub rows_per_sec: Option<f64>,
    /// Seconds until the copy is done at that rate.
    pub copy_eta_secs: Option<f64>,
    /// What holds the run now (pause, start time, window, throttle, cut-over), since when and
    /// until when (when known).
    pub held_by: Option<String>,
    pub held_since: Option<String>,
    pub held_until: Option<String>,
    /// The operator's pending request (pause, cutover, abort).
    pub control: Option<String>,
    /// Replication lag last measured for --max-lag (seconds).
    pub lag_secs: Option<f64>,
}

pub async fn status(opts: &StatusOptions) -> Result<Vec<RunStatus>> {
    let session = Session::open(&opts.conn, &opts.state_schema, "status").await?;
    if !session.state_exists().await? {
        return Ok(Vec::new());
    }
    let oid = match &opts.table {
        Some(t) => Some(session.oid_of(t).await?),
        None => None,
    };
    let (client, state) = (&session.client, &session.state);
    let runs = state.runs_overview(client, oid).await?;
    let mut out = Vec::with_capacity(runs.len());
    for r in runs {
        let finished = r.status == "succeeded" || r.status == "aborted";
        let mut backlog = None;
        if let (false, Some(log)) = (finished, &r.log) {
            let exists: bool = client
                .query_one(
                    "SELECT to_regclass($1::text) IS NOT NULL",
                    &[&log.to_string()],
                )
                .await
                .ctx("looking for a change log")?
                .col(0, &"looking for a change log")?;
            if exists {
                backlog = Some(
                    client
                        .query_one(&format!("SELECT count(*) FROM {log}"), &[])
                        .await
                        .ctx("counting a change log")?
                        .col(0, &"counting a change log")?,
                );
            }
        }
        let rate = if finished { None } else { r.rows_per_sec };
        let active_pid = if finished {
            None
        } else {
            state.lock_holder(client, r.table_oid).await?
        };
        // What holds the run and the operator's request mean nothing once it is over.
        let live = |v: Option<String>| if finished { None } else { v };
        out.push(RunStatus {
            id: r.id,
            table: r.table,
            status: r.status,
            alter: r.alter,
            started_at: r.started_at,
            updated_at: r.updated_at,
            finished_at: r.finished_at,
            chunks_done: r.chunks_done,
            chunks_total: r.chunks_total,
            rows_copied: r.rows_copied,
            backlog,
            lock_attempts: r.lock_attempts,
            longest_lock_ms: r.longest_lock_ms,
            active_pid,
            old_table: r.old_name,
            reverse: r.reverse,
            error: r.error,
            rows_per_sec: rate,
            copy_eta_secs: match (rate, r.rows_left) {
                (Some(rate), Some(left)) if rate > 0.0 && r.phase == "copy" => Some(left / rate),
                _ => None,
            },
            phase: r.phase,
            held_by: live(r.held_by),
            held_since: live(r.held_since),
            held_until: live(r.held_until),
            control: live(r.control),
            lag_secs: r.lag_secs,
        });
    }
    Ok(out)
}

/// The runs as text for people.
pub fn render(runs: &[RunStatus]) -> String {
    if runs.is_empty() {
        return "no pg-hotswap runs recorded\n".to_string();
    }
    let mut s = String::new();
    for r in runs {
        s.push_str(&format!(
            "run {} of {}: {} ({}), phase {}{}\n",
            r.id,
            r.table,
            r.status,
            match r.active_pid {
                Some(p) => format!("process attached, session pid {p}"),
                None if r.status == "running" =>
                    "no process attached: it stopped; `pg-hotswap resume` continues it".into(),
                None => "no process attached".into(),
            },
            r.phase,
            r.alter
                .as_ref()
                .map(|a| format!(", --alter {a:?}"))
                .unwrap_or_default()
        ));
        s.push_str(&format!(
            "  started {}, updated {}{}\n",
            r.started_at,
            r.updated_at,
            r.finished_at
                .as_ref()
                .map(|f| format!(", finished {f}"))
                .unwrap_or_default()
        ));
        if r.chunks_total > 0 {
            s.push_str(&format!(
                "  copy: {}/{} chunks, {} rows{}{}\n",
                r.chunks_done,
                r.chunks_total,
                r.rows_copied,
                r.rows_per_sec
                    .map(|x| format!(", {x:.0} rows/s over the last minute"))
                    .unwrap_or_default(),
                r.copy_eta_secs
                    .map(|x| format!(
                        ", about {} left",
                        crate::pacing::window::human_secs(x as i64)
                    ))
                    .unwrap_or_default()
            ));
        }
        if let Some(h) = &r.held_by {
            s.push_str(&format!(
                "  held: {h}{}{}\n",
                r.held_since
                    .as_ref()
                    .map(|x| format!(" (since {x})"))
                    .unwrap_or_default(),
                r.held_until
                    .as_ref()
                    .map(|x| format!(", expected until {x}"))
                    .unwrap_or_default()
            ));
        }
        if let Some(c) = &r.control {
            s.push_str(&format!("  request pending: {c}\n"));
        }
        if let Some(l) = r.lag_secs {
            s.push_str(&format!("  replication lag: {l:.1} s\n"));
        }
        if let Some(b) = r.backlog {
            s.push_str(&format!("  replay backlog: {b} change(s)\n"));
        }
        if r.lock_attempts > 0 {
            s.push_str(&format!(
                "  swap: {} lock attempt(s){}\n",
                r.lock_attempts,
                r.longest_lock_ms
                    .map(|m| format!(", lock held {m:.1} ms"))
                    .unwrap_or_default()
            ));
        }
        if let Some(o) = &r.old_table {
            s.push_str(&format!(
                "  old table: {o}{}\n",
                match r.reverse.as_deref() {
                    Some("active") => " (kept in sync for `revert` until `finish`)",
                    Some("reverted") => " (reverted)",
                    _ => "",
                }
            ));
        }
        if let Some(e) = &r.error {
            s.push_str(&format!("  error: {e}\n"));
        }
    }
    s
}
