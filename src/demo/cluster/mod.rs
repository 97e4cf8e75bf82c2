//! A throwaway PostgreSQL cluster (initdb + pg_ctl in a temporary directory on a free port), used
//! by the test harness, by `pg-hotswap demo` and by the benchmarks (STYLE.md, "Distilled" 7).
//!
//! Invariant: a cluster never outlives the process that started it. [`Cluster::stop`] (also run on
//! drop) stops it and removes its directory; and because the test harness keeps its cluster in a
//! `static` that is never dropped, and a process can be killed before any destructor runs, every
//! cluster also gets a detached watchdog shell that waits for the owning process to exit and then
//! stops the server (`-m immediate`) and removes the directory.
//!
//! The API is synchronous (`std::process`): starting a cluster is a one-time, blocking step that
//! happens before any async work.
//!
//! PostgreSQL refuses to run as root, so when this process is root the server binaries run as the
//! `postgres` OS user (`runuser`, or `su` where `runuser` is missing) and the temporary directory
//! is handed to that user.
//!
//! Parts: `binaries` (finding the server binaries and the OS user that runs them), `setup`
//! (directory, initdb, configuration, TLS, pg_ctl arguments, the watchdog script); this file
//! holds the options and the cluster's life (start, stop, restart).

mod binaries;
mod setup;

pub use binaries::find_bindir;
use binaries::RunAs;
use setup::{
    conninfo_value, free_port, make_temp_dir, pg_ctl_start_args, pg_ctl_stop_args, port_was_taken,
    watchdog_script,
};

use std::ffi::OsString;
use std::fmt;
use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

/// How many times a start is retried with a new port when the port was taken in between.
const PORT_ATTEMPTS: usize = 5;
/// Lines of the server log quoted in a start error.
const LOG_TAIL_LINES: usize = 40;

/// Why a throwaway cluster could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// No PostgreSQL server binaries were found.
    #[error("{0}")]
    NoServer(String),
    /// The process runs as root and there is no OS user to run the server as.
    #[error("{0}")]
    NoUser(String),
    /// A filesystem step failed.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// A server binary (initdb, pg_ctl) failed.
    #[error("{what} failed ({status}):\n{output}")]
    Command {
        what: String,
        status: String,
        output: String,
    },
    /// The server did not start; `log_tail` is the end of its log.
    #[error("PostgreSQL did not start: {message}\n--- end of server log ---\n{log_tail}")]
    Start { message: String, log_tail: String },
}

fn io_err(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> ClusterError {
    let context = context.into();
    move |source| ClusterError::Io { context, source }
}

/// How to set up a throwaway cluster.
#[derive(Clone, Debug)]
pub struct ClusterOptions {
    /// Extra `postgresql.conf` settings (name, value), written after the defaults, so they win.
    /// Values are written as quoted configuration strings, which PostgreSQL accepts for every
    /// parameter type (`("work_mem", "64MB")`, `("fsync", "on")`).
    pub settings: Vec<(String, String)>,
    /// Print nothing on stderr (progress and the log location are printed otherwise).
    pub quiet: bool,
    /// Keep PostgreSQL's durability defaults (`fsync`, `synchronous_commit`, `full_page_writes`
    /// on), for benchmarks whose numbers must mean something. When `false` (the default, for
    /// tests) all three are turned off: a throwaway cluster does not need to survive a crash.
    pub durable: bool,
    /// Serve TLS with a self-signed certificate (made with `openssl`, for `localhost` and
    /// 127.0.0.1) and reject TCP connections without it; the Unix socket stays open without TLS
    /// (see [`Cluster::socket_conninfo`]). For tests of the tool's TLS.
    pub tls: bool,
    /// Require a password (SCRAM) for every TCP connection; the Unix socket stays `trust`, so
    /// the caller sets the passwords over [`Cluster::socket_conninfo`]. For tests of `.pgpass`
    /// and of the error when no password is given.
    pub password_auth: bool,
}

impl Default for ClusterOptions {
    fn default() -> ClusterOptions {
        ClusterOptions {
            tls: false,
            password_auth: false,
            settings: Vec::new(),
            quiet: true,
            durable: false,
        }
    }
}

/// A running throwaway cluster. Stopped and removed by [`Cluster::stop`] or on drop, and in any
/// case by its watchdog once this process has exited.
pub struct Cluster {
    bindir: PathBuf,
    /// The temporary directory: holds `data/`, the server log and the unix socket.
    root: PathBuf,
    data_dir: PathBuf,
    log_file: PathBuf,
    port: u16,
    run_as: RunAs,
    watchdog: Option<Child>,
    stopped: bool,
    quiet: bool,
}

impl fmt::Debug for Cluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cluster")
            .field("data_dir", &self.data_dir)
            .field("port", &self.port)
            .field("stopped", &self.stopped)
            .finish()
    }
}

impl Cluster {
    /// Creates (initdb) and starts a fresh cluster in a new directory under the system temp dir,
    /// listening on 127.0.0.1 on a free port, superuser `postgres`, trust authentication.
    pub fn start(opts: &ClusterOptions) -> Result<Cluster, ClusterError> {
        let bindir = find_bindir()?;
        let run_as = RunAs::detect()?;
        let root = make_temp_dir(&run_as)?;
        let mut cluster = Cluster {
            bindir,
            data_dir: root.join("data"),
            log_file: root.join("server.log"),
            root,
            port: 0,
            run_as,
            watchdog: None,
            stopped: false,
            quiet: opts.quiet,
        };
        // From here on, `cluster` going out of scope on an error removes the directory.
        cluster.spawn_watchdog()?;
        cluster.initdb()?;
        cluster.write_config(opts)?;
        cluster.start_server()?;
        if !cluster.quiet {
            eprintln!(
                "pg-hotswap: PostgreSQL running on 127.0.0.1:{} (data {}, log {})",
                cluster.port,
                cluster.data_dir.display(),
                cluster.log_file.display()
            );
        }
        Ok(cluster)
    }

    /// Creates and starts a streaming-replication standby of this cluster (`pg_basebackup -R`)
    /// in a new directory, on its own free port; stopped and removed like any cluster. For tests
    /// of `--max-lag` (pause its replay with `pg_wal_replay_pause()` to make it lag).
    pub fn start_standby(&self) -> Result<Cluster, ClusterError> {
        let root = make_temp_dir(&self.run_as)?;
        let mut standby = Cluster {
            bindir: self.bindir.clone(),
            data_dir: root.join("data"),
            log_file: root.join("server.log"),
            root,
            port: 0,
            run_as: self.run_as.clone(),
            watchdog: None,
            stopped: false,
            quiet: self.quiet,
        };
        standby.spawn_watchdog()?;
        let basebackup = self.bindir.join("pg_basebackup");
        let args: Vec<OsString> = vec![
            "-h".into(),
            "127.0.0.1".into(),
            "-p".into(),
            self.port.to_string().into(),
            "-U".into(),
            "postgres".into(),
            "-D".into(),
            standby.data_dir.clone().into(),
            "-R".into(),
            "-X".into(),
            "stream".into(),
            "--no-sync".into(),
        ];
        standby.run("pg_basebackup", &basebackup, &args)?;
        // Its own socket directory (the copied configuration names the primary's).
        standby.write_config(&ClusterOptions::default())?;
        standby.start_server()?;
        Ok(standby)
    }

    /// A libpq key=value connection string for `dbname` as the superuser `postgres`.
    pub fn conninfo(&self, dbname: &str) -> String {
        format!(
            "host=127.0.0.1 port={} user=postgres dbname={}",
            self.port,
            conninfo_value(dbname)
        )
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn bindir(&self) -> &Path {
        &self.bindir
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The server log (useful to print when a test fails).
    pub fn log_file(&self) -> &Path {
        &self.log_file
    }

    /// Stops the server (`-m fast`, then `-m immediate`) and removes the temporary directory.
    /// Idempotent.
    pub fn stop(&mut self) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        if self.data_dir.join("postmaster.pid").exists() {
            let fast = self.pg_ctl_stop("fast");
            if !matches!(&fast, Ok(o) if o.status.success()) {
                let _ = self.pg_ctl_stop("immediate");
            }
        }
        let _ = fs::remove_dir_all(&self.root);
        if let Some(mut watchdog) = self.watchdog.take() {
            let _ = watchdog.kill();
            let _ = watchdog.wait();
        }
    }

    /// Stops the server with `pg_ctl stop -m <mode>` (`fast`, or `immediate` for a crash) and
    /// starts it again on the same port, for tests of what survives a server restart.
    pub fn restart(&self, mode: &str) -> Result<(), ClusterError> {
        let out = self
            .pg_ctl_stop(mode)
            .map_err(io_err("running pg_ctl stop"))?;
        if !out.status.success() {
            return Err(ClusterError::Command {
                what: format!("pg_ctl stop -m {mode}"),
                status: out.status.to_string(),
                output: String::from_utf8_lossy(&out.stderr).into_owned(),
            });
        }
        let args = pg_ctl_start_args(&self.data_dir, &self.log_file, self.port);
        let out = self
            .command(&self.bindir.join("pg_ctl"), &args)
            .output()
            .map_err(io_err("running pg_ctl start"))?;
        if !out.status.success() {
            return Err(ClusterError::Command {
                what: "pg_ctl start".into(),
                status: out.status.to_string(),
                output: String::from_utf8_lossy(&out.stderr).into_owned(),
            });
        }
        Ok(())
    }

    fn pg_ctl_stop(&self, mode: &str) -> std::io::Result<Output> {
        let args = pg_ctl_stop_args(&self.data_dir, mode);
        self.command(&self.bindir.join("pg_ctl"), &args).output()
    }

    fn command(&self, program: &Path, args: &[OsString]) -> Command {
        let mut c = self.run_as.command(program, args);
        // The caller's working directory may not be readable by the `postgres` user.
        c.current_dir(&self.root).stdin(Stdio::null());
        for var in [
            "PGDATA",
            "PGPORT",
            "PGHOST",
            "PGUSER",
            "PGDATABASE",
            "PGOPTIONS",
        ] {
            c.env_remove(var);
        }
        c
    }

    fn run(&self, what: &str, program: &Path, args: &[OsString]) -> Result<Output, ClusterError> {
        let out = self
            .command(program, args)
            .output()
            .map_err(io_err(format!("running {}", program.display())))?;
        if out.status.success() {
            Ok(out)
        } else {
            Err(ClusterError::Command {
                what: what.to_string(),
                status: out.status.to_string(),
                output: format!(
                    "{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                ),
            })
        }
    }

    /// The test CA's certificate (with [`ClusterOptions::tls`]): the root to verify the server with.
    pub fn tls_root_cert(&self) -> PathBuf {
        self.data_dir.join("ca.crt")
    }

    /// A connection string over the Unix socket (no TLS needed there).
    pub fn socket_conninfo(&self, dbname: &str) -> String {
        format!(
            "host={} port={} user=postgres dbname={}",
            conninfo_value(&self.root.display().to_string()),
            self.port,
            conninfo_value(dbname)
        )
    }

    fn start_server(&mut self) -> Result<(), ClusterError> {
        let pg_ctl = self.bindir.join("pg_ctl");
        let mut last_error = None;
        for _ in 0..PORT_ATTEMPTS {
            self.port = free_port()?;
            let args = pg_ctl_start_args(&self.data_dir, &self.log_file, self.port);
            let out = self
                .command(&pg_ctl, &args)
                // Not in our process group: a Ctrl-C meant for a test run reaches the tests and
                // they clean up; the server must not die under them first.
                .process_group(0)
                .output()
                .map_err(io_err(format!("running {}", pg_ctl.display())))?;
            if out.status.success() {
                return Ok(());
            }
            let log_tail = self.log_tail();
            // A failed `-w` start may leave a postmaster behind (timeout); never leak it.
            let _ = self.pg_ctl_stop("immediate");
            let error = ClusterError::Start {
                message: format!(
                    "pg_ctl start on port {} ({}): {}{}",
                    self.port,
                    out.status,
                    String::from_utf8_lossy(&out.stdout).trim(),
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
                log_tail: log_tail.clone(),
            };
            if !port_was_taken(&log_tail) {
                return Err(error);
            }
            last_error = Some(error);
        }
        Err(last_error.expect("at least one start attempt"))
    }

    fn log_tail(&self) -> String {
        let log = fs::read_to_string(&self.log_file).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
    }

    /// Spawns the detached shell that stops the cluster and removes its directory once this
    /// process is gone, however it ends (the harness's cluster lives in a never-dropped static).
    fn spawn_watchdog(&mut self) -> Result<(), ClusterError> {
        let stop_line = self.run_as.shell_line(
            &self.bindir.join("pg_ctl"),
            &pg_ctl_stop_args(&self.data_dir, "immediate"),
        );
        let script = watchdog_script(std::process::id(), &stop_line, &self.root);
        let child = Command::new("/bin/sh")
            .arg("-c")
            .arg(script)
            .current_dir("/")
            .stdin(Stdio::null())
            // Never hold the caller's stdout/stderr open (a `cargo test | tee` would wait).
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own process group: a terminal's Ctrl-C must not kill the watchdog with us.
            .process_group(0)
            .spawn()
            .map_err(io_err("spawning the cluster watchdog"))?;
        self.watchdog = Some(child);
        Ok(())
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop();
    }
}
