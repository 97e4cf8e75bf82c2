//! The `pg-hotswap` binary, a thin edge: parses flags, runs the command (`pg_hotswap::commands`),
//! prints the error once with what state the database is in and what to do next, and maps it to
//! the documented exit status (0 success, 1 failed, 2 usage, 3 refused at preflight, 4 lock not
//! granted, 5 aborted on request, 130 interrupted).

use clap::Parser;
use pg_hotswap::commands::{self, Cli, LogFormat};
use pg_hotswap::error::Error;
use pg_hotswap::{output::progress, output::ui};
use std::io::{IsTerminal, Write};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(request) = commands::version_flag(&args) {
        std::process::exit(match request {
            Ok(dsn) => version(dsn),
            Err(()) => {
                eprintln!("usage: pg-hotswap --version [--dsn <conninfo>]");
                2
            }
        });
    }
    let cli = Cli::parse();
    let json = cli.log_format == LogFormat::Json;
    let tty = std::io::stderr().is_terminal();
    ui::set_json(json);
    ui::set_terminal(tty);
    ui::set_colour(ui::colour_wanted(
        tty,
        std::env::var_os("NO_COLOR").as_deref(),
    ));
    ui::set_quiet(cli.quiet);
    progress::init(tty && !cli.quiet && !json);
    init_tracing(cli.verbose, json);
    // The utility commands print and leave, without a runtime.
    if let Some(output) = commands::utility(&cli.command) {
        std::process::exit(match output {
            Ok(bytes) => print_out(&bytes),
            Err(e) => fail(&e),
        });
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            std::process::exit(1);
        }
    };
    let code = match runtime.block_on(commands::dispatch(cli.command)) {
        Ok(code) => code,
        Err(e) => fail(&e),
    };
    // Do not wait for background tasks (connections) at shutdown.
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    std::process::exit(code);
}

/// The client's version and, when a connection resolves, the server's and whether it is tested
/// (issue 14).
fn version(dsn: Option<String>) -> i32 {
    let report = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map(|rt| rt.block_on(pg_hotswap::db::catalog::version_report(dsn.as_deref())));
    match report {
        Ok(text) => print_out(text.as_bytes()),
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            1
        }
    }
}

/// Diagnostics: `-v`/`-vv`, or `RUST_LOG`; text or JSON lines on stderr, written above the
/// progress bar (ui::StderrWriter). Colour only where `ui::colour` allows it (a terminal, no
/// `NO_COLOR`): a log in a file carries no escape codes.
fn init_tracing(verbose: u8, json: bool) {
    let default = match verbose {
        0 => "warn",
        1 => "pg_hotswap=debug,info",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(ui::StderrWriter)
        .with_ansi(ui::colour() && !json);
    if json {
        builder.json().flatten_event(true).init();
    } else {
        builder.init();
    }
}

/// Writes a utility command's output to stdout; 1 when that fails (a closed pipe).
fn print_out(bytes: &[u8]) -> i32 {
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|_| out.flush()) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: writing to stdout: {e}");
            1
        }
    }
}

/// The one place an error is printed: with its state and next step, as text or a JSON line.
fn fail(e: &Error) -> i32 {
    progress::finish();
    let code = e.kind().exit_code();
    ui::error(e.message(), e.state(), e.next(), code);
    code
}
