//! The command line: flags parsed into plain, validated values (`flags`, and each command's own
//! flags next to it), the table resolved once per command into a [`crate::state::target::Target`], and
//! the commands themselves: `run`, `plan`, `resume`, `abort`, `pause` / `cutover`, `status`,
//! `revert` / `finish`, `bloat`, `demo`, `fleet`. The engine never sees clap (ripgrep's low-level flags ->
//! high-level values, `crates/core/flags/hiargs.rs`).
//!
//! Invariant kept here: a command returns its exit status or one [`crate::error::Error`];
//! `main` prints that error once and maps it to the documented exit status. Commands print only
//! their result (stdout) and progress (stderr), never their own error.

mod abort;
mod bloat;
mod cli;
mod control;
pub mod flags;
mod fleet;
mod pace;
mod plan;
mod report;
mod resume;
mod revert;
mod run;
mod status;

pub use cli::{completions, man_page, Cli, Command, LogFormat};
pub use flags::{version_flag, OutputFormat};

use crate::error::Result;
use control::Request;

/// The utility commands (`completions`, `man`), which need no runtime: their output, or None
/// for every other command.
pub fn utility(command: &Command) -> Option<Result<Vec<u8>>> {
    match command {
        Command::Completions { shell } => Some(Ok(completions(*shell))),
        Command::Man { subcommand } => Some(man_page(subcommand.as_deref())),
        _ => None,
    }
}

/// Runs a command (on a tokio runtime); its exit status, or the error to print.
pub async fn dispatch(command: Command) -> Result<i32> {
    match command {
        Command::Plan(args) => plan::command(args).await,
        Command::Run(args) if args.dry_run => plan::command(args).await,
        Command::Run(args) => run::command(args).await,
        Command::Resume(args) => resume::command(args).await,
        Command::Status(args) => status::command(args).await,
        Command::Bloat(args) => bloat::command(args).await,
        Command::Abort(args) => abort::command(args).await,
        Command::Pause(args) => control::command(args, Request::Pause).await,
        Command::Cutover(args) => control::command(args, Request::Cutover).await,
        Command::Demo(args) => crate::demo::run(&args.options()).await.map(|()| 0),
        Command::Revert(args) => revert::revert_command(args).await,
        Command::Finish(args) => revert::finish_command(args).await,
        Command::Fleet(args) => fleet::command(args).await,
        // See `utility`: handled before the runtime starts.
        Command::Completions { .. } | Command::Man { .. } => Ok(0),
    }
}

/// A report as pretty JSON on stdout (`--output json`).
fn print_json(value: &impl serde::Serialize) {
    crate::output::ui::outln!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_default()
    );
}

/// Resolves on Ctrl-C or SIGTERM, naming the signal.
async fn shutdown_signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return "Ctrl-C";
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => "Ctrl-C",
            _ = term.recv() => "SIGTERM",
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "Ctrl-C"
    }
}
