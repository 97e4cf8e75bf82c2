//! The command line's definition: the subcommands (each command's own flags sit next to the
//! command, `run.rs`, `abort.rs`...; the flags they share in `flags.rs`), the log format, and
//! what is generated from them (shell completions, manual pages).

use super::abort::AbortArgs;
use super::bloat::BloatArgs;
use super::control::ControlArgs;
use super::flags::DemoArgs;
use super::fleet::FleetArgs;
use super::resume::ResumeArgs;
use super::revert::{FinishArgs, RevertArgs};
use super::run::RunArgs;
use super::status::StatusArgs;
use crate::error::{Error, Result};
use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser, Debug)]
#[command(
    name = "pg-hotswap",
    version,
    about = "Rewrite large, hot PostgreSQL tables into a new shape without downtime",
    long_about = "Rewrite large, hot PostgreSQL tables into a new shape without downtime: a shadow \
                  table, triggers that capture every write, a parallel binary COPY, replay of the \
                  captured changes, and a name swap under a short lock timeout."
)]
pub struct Cli {
    /// More diagnostics on stderr (-v: debug, -vv: trace). RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Only errors and the final result.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Format of the log on stderr: text lines (a live progress bar on a terminal), or one JSON
    /// object per line (timestamp, level, message, fields) for log collectors.
    #[arg(long, value_enum, global = true, default_value_t = LogFormat::Text, env = "PGHOTSWAP_LOG_FORMAT")]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Rewrite a table online (continues an interrupted run of the same table and arguments).
    Run(RunArgs),
    /// Continue a paused run, or continue the table's stopped run with the arguments it was
    /// started with (after Ctrl-C, a crash, lock attempts exhausted...; the same as repeating the
    /// original `run` command).
    Resume(ResumeArgs),
    /// Show what a run would do, the locks it takes, the disk it needs and how long it takes
    /// (measured on a sample), changing nothing. Same options as run.
    Plan(RunArgs),
    /// Remove everything a run created; the table is left as it was. A running run is asked to
    /// stop (from any terminal) and removes its objects itself. For an ALTER applied in place
    /// (no rewrite), what had committed stays; only what was left half-done is removed.
    Abort(AbortArgs),
    /// Pause a running run from any terminal: copying, replay and the swap stop within a second
    /// (writes are still captured). `pg-hotswap resume` continues it.
    Pause(ControlArgs),
    /// Tell a running run to swap as soon as the shadow is ready (for `--cutover manual`; also
    /// overrides a closed `--window` for the swap).
    Cutover(ControlArgs),
    /// Show every recorded run: phase, status, progress, replay backlog, whether a process is
    /// working on it, and the error of a run that stopped.
    Status(StatusArgs),
    /// List the tables by estimated bloat (heap and indexes, from the statistics; the heap by
    /// pgstattuple_approx when the pgstattuple extension is installed), largest first.
    /// `run --bloated-over` rebuilds them.
    Bloat(BloatArgs),
    /// Start a throwaway PostgreSQL, load a sample table, and rewrite it int -> bigint online
    /// under a write load.
    Demo(DemoArgs),
    /// Swap the old table of a `--revertible` run back in, with every write made since the swap.
    Revert(RevertArgs),
    /// Drop the old table kept by the table's last rewrite, and its reverse capture.
    Finish(FinishArgs),
    /// One rewrite across many databases (a targets file of connection strings), with the
    /// cut-over gated until every target is ready: `fleet run`, `status`, `cutover`, `revert`.
    Fleet(FleetArgs),
    /// Print a shell completion script to stdout, e.g.
    /// `pg-hotswap completions bash > /etc/bash_completion.d/pg-hotswap`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff) to stdout, e.g. `pg-hotswap man | man -l -`; with a
    /// subcommand, its own page (`pg-hotswap man run > pg-hotswap-run.1`).
    Man {
        /// A subcommand (run, plan, status...): print its page instead.
        subcommand: Option<String>,
    },
}

/// `--log-format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// The completion script for `shell`, generated from the flags' definitions.
pub fn completions(shell: clap_complete::Shell) -> Vec<u8> {
    use clap::CommandFactory;
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "pg-hotswap", &mut out);
    out
}

/// The manual page (roff), generated from the flags' definitions: the main page (which lists
/// every subcommand), or with `subcommand` that subcommand's page (`pg-hotswap-run(1)`).
pub fn man_page(subcommand: Option<&str>) -> Result<Vec<u8>> {
    use clap::CommandFactory;
    let cmd = Cli::command();
    let page = match subcommand {
        None => cmd,
        Some(name) => {
            let sub = cmd
                .find_subcommand(name)
                .filter(|s| s.get_name() != "help")
                .ok_or_else(|| Error::usage(format!("no subcommand {name:?}")))?;
            let full = format!("pg-hotswap-{}", sub.get_name());
            sub.clone()
                .name(full)
                .bin_name(format!("pg-hotswap {}", sub.get_name()))
                .version(env!("CARGO_PKG_VERSION"))
        }
    };
    let mut out = Vec::new();
    clap_mangen::Man::new(page)
        .render(&mut out)
        .map_err(|e| Error::failed(format!("rendering the manual page: {e}")))?;
    Ok(out)
}
