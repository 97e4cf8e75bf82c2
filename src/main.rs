//! The `pg-hotswap` binary: parses flags, runs the command, prints the error once with what
//! state the database is in and what to do next, and maps it to the documented exit status
//! (0 success, 1 failed, 2 usage, 3 refused at preflight, 4 lock not granted, 5 aborted on
//! request, 130 interrupted).

use clap::Parser;
use pg_hotswap::cli::{Cli, Command, LogFormat, OutputFormat};
use pg_hotswap::error::{Error, Kind};
use pg_hotswap::{demo, migrator, progress, ui};
use std::io::{IsTerminal, Write};

fn main() {
    // `--version` / `-V` [--dsn <conninfo>]: the client's version and, when a connection
    // resolves, the server's and whether it is tested (issue 14). Before clap, whose own
    // version flag cannot reach a server.
    let args: Vec<String> = std::env::args().skip(1).collect();
    if matches!(args.first().map(String::as_str), Some("--version" | "-V")) {
        let dsn = match args.get(1..).unwrap_or_default() {
            [] => None,
            [flag, dsn] if flag == "--dsn" => Some(dsn.clone()),
            [one] if one.starts_with("--dsn=") => Some(one["--dsn=".len()..].to_string()),
            _ => {
                eprintln!("usage: pg-hotswap --version [--dsn <conninfo>]");
                std::process::exit(2);
            }
        };
        let report = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map(|rt| rt.block_on(pg_hotswap::catalog::version_report(dsn.as_deref())));
        std::process::exit(match report {
            Ok(text) => print_out(text.as_bytes()),
            Err(e) => {
                eprintln!("error: cannot start the async runtime: {e}");
                1
            }
        });
    }
    let cli = Cli::parse();
    let json = cli.log_format == LogFormat::Json;
    let tty = std::io::stderr().is_terminal();
    ui::set_json(json);
    ui::set_terminal(tty);
    ui::set_quiet(cli.quiet);
    progress::init(tty && !cli.quiet && !json);
    init_tracing(cli.verbose, json);
    // The utility commands print and leave, without a runtime.
    match &cli.command {
        Command::Completions { shell } => {
            std::process::exit(print_out(&pg_hotswap::cli::completions(*shell)))
        }
        Command::Man { subcommand } => {
            std::process::exit(match pg_hotswap::cli::man_page(subcommand.as_deref()) {
                Ok(page) => print_out(&page),
                Err(e) => fail(&e),
            })
        }
        _ => {}
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
    let code = runtime.block_on(dispatch(cli.command));
    // Do not wait for background tasks (connections) at shutdown.
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    std::process::exit(code);
}

/// Diagnostics: `-v`/`-vv`, or `RUST_LOG`; text or JSON lines on stderr, written above the
/// progress bar (ui::StderrWriter).
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
        .with_writer(ui::StderrWriter);
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

fn fail(e: &Error) -> i32 {
    progress::finish();
    let code = e.kind().exit_code();
    ui::error(e.message(), e.state(), e.next(), code);
    code
}

async fn dispatch(command: Command) -> i32 {
    match command {
        Command::Plan(args) => plan(args).await,
        Command::Run(args) if args.dry_run => plan(args).await,
        Command::Run(args) => {
            let output = args.output;
            match args.into_options() {
                Ok(opts) => run(opts, output).await,
                Err(e) => fail(&e),
            }
        }
        Command::Resume(args) => {
            let output = args.output;
            let base = match args.into_options() {
                Ok(o) => o,
                Err(e) => return fail(&e),
            };
            // A paused run with its process still attached is told to go on; a stopped run is
            // continued here.
            let ctl = pg_hotswap::control::ControlOptions {
                conn: base.conn.clone(),
                table: base.table.clone(),
                state_schema: base.state_schema.clone(),
            };
            match pg_hotswap::control::send(&ctl, pg_hotswap::control::Request::Resume).await {
                Ok(Some(_)) => return 0,
                Ok(None) => {}
                Err(e) => return fail(&e),
            }
            match migrator::recorded_options(base).await {
                Ok(opts) => run(opts, output).await,
                Err(e) => fail(&e),
            }
        }
        Command::Status(args) => {
            let output = args.output;
            let opts = match args.into_options() {
                Ok(o) => o,
                Err(e) => return fail(&e),
            };
            match pg_hotswap::status::status(&opts).await {
                Ok(runs) => {
                    match output {
                        OutputFormat::Json => println!(
                            "{}",
                            serde_json::to_string_pretty(&runs).unwrap_or_default()
                        ),
                        OutputFormat::Text => print!("{}", pg_hotswap::status::render(&runs)),
                    }
                    0
                }
                Err(e) => fail(&e),
            }
        }
        Command::Abort(args) => {
            let opts = match args.into_options() {
                Ok(o) => o,
                Err(e) => return fail(&e),
            };
            match migrator::abort(&opts).await {
                Ok(_) => 0,
                Err(e) => fail(&e),
            }
        }
        Command::Pause(args) => control(args, pg_hotswap::control::Request::Pause).await,
        Command::Cutover(args) => control(args, pg_hotswap::control::Request::Cutover).await,
        Command::Demo(args) => match demo::run(&args).await {
            Ok(()) => 0,
            Err(e) => fail(&e),
        },
        Command::Revert(args) => {
            let opts = match args.into_options() {
                Ok(o) => o,
                Err(e) => return fail(&e),
            };
            match pg_hotswap::revert::revert(&opts).await {
                Ok(()) => 0,
                Err(e) => fail(&e),
            }
        }
        Command::Finish(args) => {
            let opts = match args.into_options() {
                Ok(o) => o,
                Err(e) => return fail(&e),
            };
            match pg_hotswap::revert::finish(&opts).await {
                Ok(_) => 0,
                Err(e) => fail(&e),
            }
        }
        // Handled in main, before the runtime.
        Command::Completions { .. } | Command::Man { .. } => 0,
    }
}

/// `pause` and `cutover`: a request to the table's running run.
async fn control(args: pg_hotswap::cli::ControlArgs, req: pg_hotswap::control::Request) -> i32 {
    let opts = match args.into_options() {
        Ok(o) => o,
        Err(e) => return fail(&e),
    };
    match pg_hotswap::control::send(&opts, req).await {
        Ok(Some(_)) => 0,
        Ok(None) => fail(
            &Error::usage(format!(
                "no pg-hotswap process is working on {} now",
                opts.table
            ))
            .with_state("nothing was changed")
            .with_next(
                "see `pg-hotswap status`; a stopped run is continued with `pg-hotswap resume`",
            ),
        ),
        Err(e) => fail(&e),
    }
}

/// `plan` and `run --dry-run`: prints the plan; exits 3 when a run would refuse.
async fn plan(args: pg_hotswap::cli::RunArgs) -> i32 {
    let output = args.output;
    let opts = match args.into_plan_options() {
        Ok(o) => o,
        Err(e) => return fail(&e),
    };
    tokio::select! {
        r = pg_hotswap::planner::plan(&opts) => match r {
            Ok(report) => {
                match output {
                    OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&report).unwrap_or_default()),
                    OutputFormat::Text => print!("{}", pg_hotswap::planner::render_text(&report)),
                }
                if let Some(why) = &report.refused {
                    ui::error(why, Some("nothing was changed"), None, report.exit_code);
                }
                report.exit_code
            }
            Err(e) => fail(&e.or_state("nothing was changed", "fix the cause and plan again")),
        },
        sig = shutdown_signal() => fail(
            &Error::new(Kind::Interrupted, format!("interrupted by {sig}"))
                .with_state("nothing was changed: the plan's transactions were rolled back"),
        ),
    }
}

/// `run` and `resume`: the rewrite, interruptible by Ctrl-C / SIGTERM.
async fn run(opts: migrator::RunOptions, output: OutputFormat) -> i32 {
    tokio::select! {
        r = migrator::run(&opts) => match r {
            Ok(report) => {
                progress::finish();
                match output {
                    OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&report).unwrap_or_default()),
                    OutputFormat::Text => print_report(&report),
                }
                0
            }
            Err(e) => fail(&advise(e, &opts)),
        },
        sig = shutdown_signal() => {
            let phase = migrator::mark_interrupted(&opts.conn, &opts.state_schema, &opts.table).await;
            let state = match phase {
                Ok(Some(p)) if p >= pg_hotswap::state::Phase::Finish =>
                    "the swap had already committed; the new table is in place and only clean-up is left".to_string(),
                Ok(_) => format!("{} is unchanged and usable; the open transactions of the run were rolled back, and its capture trigger (if installed) keeps recording writes", opts.table),
                Err(e) => format!("could not record the interruption ({e})"),
            };
            let e = Error::new(Kind::Interrupted, format!("interrupted by {sig}"))
                .with_state(state)
                .with_next(format!("`pg-hotswap resume --table {}` (or the same command again) continues, `pg-hotswap abort --table {}` removes everything the run created", opts.table, opts.table));
            fail(&e)
        }
    }
}

/// A run that failed on the data itself (a cast, `USING` or `--map` expression that fails for
/// some row, a constraint the new rows break) fails the same way when run again: say so, and
/// point at what the user wrote — a USING or a --map only when there is one (issue 13).
fn advise(e: Error, opts: &migrator::RunOptions) -> Error {
    if !e.is_data_error() {
        return e;
    }
    let table = &opts.table;
    let has_using = opts
        .alter
        .as_deref()
        .and_then(|a| pg_hotswap::alter_text::type_changes(a).ok())
        .is_some_and(|t| t.iter().any(|c| c.using.is_some()));
    let what = match (has_using, !opts.maps.is_empty()) {
        (true, true) => {
            "the --alter's USING expressions or the --map expressions so that they work"
        }
        (true, false) => "the --alter's USING expressions so that they work",
        (false, true) => "the --map expressions so that they work",
        (false, false) => "the rows (or the --alter) so that the new shape holds",
    };
    e.with_next(format!(
        "the rows do not fit the new shape, and PostgreSQL's own ALTER TABLE would fail on them too: \
         `pg-hotswap abort --table {table}` removes what the run created; then change {what} \
         for every row, and run again"
    ))
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

fn print_report(r: &migrator::RunReport) {
    println!("pg-hotswap: rewrote {} (run {})", r.table, r.run_id);
    println!("  rows copied:        {}", r.rows_copied);
    println!("  bytes copied:       {}", ui::bytes(r.bytes_copied));
    println!(
        "  changes replayed:   {} (largest backlog measured: {})",
        r.replayed_log_rows, r.replay_backlog_peak
    );
    println!(
        "  swap lock:          held {:.1} ms (attempt {}; longest wait or hold {:.1} ms)",
        r.lock_held_ms, r.lock_attempts, r.longest_lock_ms
    );
    match (&r.old_table, r.old_table_dropped) {
        (Some(o), false) => println!(
            "  old table:          kept as {o} (drop it when you no longer need a way back)"
        ),
        (Some(o), true) => println!("  old table:          {o} dropped"),
        _ => {}
    }
    if !r.dropped_columns.is_empty() {
        println!("  dropped columns:    {}", r.dropped_columns.join(", "));
    }
    let phases: Vec<String> = r
        .phases
        .iter()
        .map(|(p, s)| format!("{p} {s:.1}s"))
        .collect();
    println!("  phases:             {}", phases.join(", "));
    if let Some(v) = &r.verify {
        if v.chunks_verified > 0 {
            println!(
                "  verified:           {} rows in {} of {} chunks ({}), {} repaired",
                v.rows_verified, v.chunks_verified, v.chunks_total, v.mode, v.repaired
            );
        } else {
            println!("  verified:           no (--verify off)");
        }
    }
    if let Some(w) = r.wal_bytes {
        println!(
            "  WAL written:        {} (by the whole server during the run)",
            ui::bytes(w)
        );
    }
    if let Some(p) = &r.read_probe {
        println!(
            "  reads of the table: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms over {} reads every 100 ms{}",
            p.p50_ms,
            p.p99_ms,
            p.max_ms,
            p.reads,
            if p.errors > 0 { format!(" ({} failed)", p.errors) } else { String::new() }
        );
    }
    println!("  total:              {:.1} s", r.total_secs);
    for w in &r.warnings {
        println!("  warning: {w}");
    }
}
