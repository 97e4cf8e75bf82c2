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

use std::ffi::OsString;
use std::fmt;
use std::fs;
use std::io::Write;
use std::net::TcpListener;
use std::os::unix::fs::DirBuilderExt;
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

/// Which OS user runs the server binaries, and how we switch to it.
#[derive(Clone, Debug, PartialEq, Eq)]
enum RunAs {
    /// This process's user (not root).
    Current,
    /// `runuser -u <user> -- ...` (util-linux; root only).
    Runuser { runuser: PathBuf, user: String },
    /// `su <user> -s /bin/sh -c '...'`, where runuser is missing.
    Su { user: String },
}

impl RunAs {
    fn detect() -> Result<RunAs, ClusterError> {
        if !running_as_root() {
            return Ok(RunAs::Current);
        }
        let user = "postgres".to_string();
        if os_user_id(&user, "-u").is_none() {
            return Err(ClusterError::NoUser(
                "running as root, but PostgreSQL refuses to run as root and there is no \
                 `postgres` OS user to run it as (installing postgresql-15 creates it)"
                    .into(),
            ));
        }
        match find_in_path("runuser") {
            Some(runuser) => Ok(RunAs::Runuser { runuser, user }),
            None => Ok(RunAs::Su { user }),
        }
    }

    /// A `Command` running `program args` as this user.
    fn command(&self, program: &Path, args: &[OsString]) -> Command {
        match self {
            RunAs::Current => {
                let mut c = Command::new(program);
                c.args(args);
                c
            }
            RunAs::Runuser { runuser, user } => {
                let mut c = Command::new(runuser);
                c.arg("-u").arg(user).arg("--").arg(program).args(args);
                c
            }
            RunAs::Su { user } => {
                let mut c = Command::new("su");
                c.arg(user)
                    .arg("-s")
                    .arg("/bin/sh")
                    .arg("-c")
                    .arg(shell_command(program, args));
                c
            }
        }
    }

    /// The same as [`RunAs::command`], as one line of `sh` (for the watchdog script).
    fn shell_line(&self, program: &Path, args: &[OsString]) -> String {
        match self {
            RunAs::Current => shell_command(program, args),
            RunAs::Runuser { runuser, user } => format!(
                "{} -u {} -- {}",
                shell_quote(&runuser.to_string_lossy()),
                shell_quote(user),
                shell_command(program, args)
            ),
            RunAs::Su { user } => format!(
                "su {} -s /bin/sh -c {}",
                shell_quote(user),
                shell_quote(&shell_command(program, args))
            ),
        }
    }

    fn user(&self) -> Option<&str> {
        match self {
            RunAs::Current => None,
            RunAs::Runuser { user, .. } | RunAs::Su { user } => Some(user),
        }
    }
}

/// Quotes one word for `sh`: `'...'` with embedded `'` as `'\''`.
fn shell_quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

fn shell_command(program: &Path, args: &[OsString]) -> String {
    let mut line = shell_quote(&program.to_string_lossy());
    for arg in args {
        line.push(' ');
        line.push_str(&shell_quote(&arg.to_string_lossy()));
    }
    line
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// `id -u user` / `id -g user`.
fn os_user_id(user: &str, flag: &str) -> Option<u32> {
    let out = Command::new("id").arg(flag).arg(user).output().ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// Finds the PostgreSQL server binaries: `$PG_BINDIR`, else `pg_config --bindir`, else the newest
/// `/usr/lib/postgresql/<version>/bin` (Debian's layout, which does not put them on `PATH`).
pub fn find_bindir() -> Result<PathBuf, ClusterError> {
    let has_server = |dir: &Path| dir.join("pg_ctl").is_file() && dir.join("initdb").is_file();
    if let Some(dir) = std::env::var_os("PG_BINDIR") {
        let dir = PathBuf::from(dir);
        if has_server(&dir) {
            return Ok(dir);
        }
        return Err(ClusterError::NoServer(format!(
            "PG_BINDIR={} holds no initdb/pg_ctl",
            dir.display()
        )));
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        if out.status.success() {
            let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
            if has_server(&dir) {
                return Ok(dir);
            }
        }
    }
    let mut candidates: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version: u32 = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            has_server(&bin).then_some((version, bin))
        })
        .collect();
    candidates.sort();
    candidates.pop().map(|(_, dir)| dir).ok_or_else(|| {
        ClusterError::NoServer(
            "no PostgreSQL server binaries found (tried $PG_BINDIR, `pg_config --bindir`, \
             /usr/lib/postgresql/*/bin): install postgresql-15 (`apt-get install postgresql-15`) \
             or set PG_BINDIR to the directory holding initdb and pg_ctl"
                .into(),
        )
    })
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

    fn initdb(&self) -> Result<(), ClusterError> {
        let initdb = self.bindir.join("initdb");
        match self.run("initdb", &initdb, &initdb_args(&self.data_dir, "C.UTF-8")) {
            Ok(_) => Ok(()),
            // Systems without the C.UTF-8 locale (older or minimal libcs) still have C.
            Err(ClusterError::Command { output, .. }) if output.contains("locale") => {
                let _ = fs::remove_dir_all(&self.data_dir);
                self.run("initdb", &initdb, &initdb_args(&self.data_dir, "C"))
                    .map(drop)
            }
            Err(e) => Err(e),
        }
    }

    fn write_config(&self, opts: &ClusterOptions) -> Result<(), ClusterError> {
        let path = self.data_dir.join("postgresql.conf");
        let mut file = fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(io_err(format!("opening {}", path.display())))?;
        file.write_all(config_lines(&self.root, opts).as_bytes())
            .map_err(io_err(format!("writing {}", path.display())))?;
        if opts.tls {
            self.set_up_tls()?;
        }
        if opts.password_auth {
            self.prepend_hba("host all all all scram-sha-256\n")?;
        }
        Ok(())
    }

    /// Puts `lines` first in `pg_hba.conf` (the first matching line decides).
    fn prepend_hba(&self, lines: &str) -> Result<(), ClusterError> {
        let hba = self.data_dir.join("pg_hba.conf");
        let old = fs::read_to_string(&hba).map_err(io_err(format!("reading {}", hba.display())))?;
        fs::write(&hba, format!("{lines}{old}"))
            .map_err(io_err(format!("writing {}", hba.display())))
    }

    /// A test CA and a server certificate it signs (for `localhost`) in the data directory,
    /// `ssl = on`, and TCP without TLS refused.
    fn set_up_tls(&self) -> Result<(), ClusterError> {
        fs::write(
            self.data_dir.join("server.ext"),
            "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\n",
        )
        .map_err(io_err("writing the certificate extensions"))?;
        let steps: [&[&str]; 3] = [
            &[
                "req",
                "-new",
                "-x509",
                "-days",
                "2",
                "-nodes",
                "-newkey",
                "rsa:2048",
                "-subj",
                "/CN=pg-hotswap test CA",
                "-keyout",
                "ca.key",
                "-out",
                "ca.crt",
            ],
            &[
                "req",
                "-new",
                "-nodes",
                "-newkey",
                "rsa:2048",
                "-subj",
                "/CN=localhost",
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
            ],
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                "server.ext",
                "-out",
                "server.crt",
            ],
        ];
        for step in steps {
            let args: Vec<OsString> = step.iter().map(OsString::from).collect();
            let out = self
                .command(Path::new("openssl"), &args)
                .current_dir(&self.data_dir)
                .output()
                .map_err(io_err("running openssl (install the openssl package)"))?;
            if !out.status.success() {
                return Err(ClusterError::Command {
                    what: format!("openssl {}", step.join(" ")),
                    status: out.status.to_string(),
                    output: String::from_utf8_lossy(&out.stderr).into_owned(),
                });
            }
        }
        let key = self.data_dir.join("server.key");
        fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .map_err(io_err("restricting the key's permissions"))?;
        let conf = self.data_dir.join("postgresql.conf");
        let mut file = fs::OpenOptions::new()
            .append(true)
            .open(&conf)
            .map_err(io_err(format!("opening {}", conf.display())))?;
        file.write_all(b"ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n")
            .map_err(io_err(format!("writing {}", conf.display())))?;
        self.prepend_hba("hostnossl all all all reject\n")
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

/// Creates a fresh directory under the temp dir, owned by the user that runs the server.
fn make_temp_dir(run_as: &RunAs) -> Result<PathBuf, ClusterError> {
    let base = std::env::temp_dir();
    for _ in 0..100 {
        let dir = base.join(format!(
            "pg-hotswap-cluster-{}-{:08x}",
            std::process::id(),
            rand::random::<u32>()
        ));
        match fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => {
                if let Some(user) = run_as.user() {
                    let (uid, gid) = (os_user_id(user, "-u"), os_user_id(user, "-g"));
                    let result = std::os::unix::fs::chown(&dir, uid, gid);
                    if let Err(e) = result {
                        let _ = fs::remove_dir_all(&dir);
                        return Err(io_err(format!("chown {} to {user}", dir.display()))(e));
                    }
                }
                return Ok(dir);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(io_err(format!("creating {}", dir.display()))(e)),
        }
    }
    Err(ClusterError::Io {
        context: format!("creating a temporary directory in {}", base.display()),
        source: std::io::Error::from(std::io::ErrorKind::AlreadyExists),
    })
}

/// A port that was free a moment ago (the OS picks it). Another process may take it before the
/// server binds it; [`Cluster::start_server`] then retries with another.
fn free_port() -> Result<u16, ClusterError> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(io_err("finding a free port"))?;
    let port = listener
        .local_addr()
        .map_err(io_err("finding a free port"))?
        .port();
    Ok(port)
}

fn port_was_taken(log: &str) -> bool {
    log.contains("could not bind") || log.contains("Address already in use")
}

fn initdb_args(data_dir: &Path, locale: &str) -> Vec<OsString> {
    vec![
        "-D".into(),
        data_dir.into(),
        "-U".into(),
        "postgres".into(),
        "--auth=trust".into(),
        "-E".into(),
        "UTF8".into(),
        format!("--locale={locale}").into(),
        "--no-sync".into(),
    ]
}

fn pg_ctl_start_args(data_dir: &Path, log_file: &Path, port: u16) -> Vec<OsString> {
    vec![
        "-D".into(),
        data_dir.into(),
        "-l".into(),
        log_file.into(),
        "-o".into(),
        format!("-p {port}").into(),
        "-w".into(),
        "-t".into(),
        "60".into(),
        "start".into(),
    ]
}

fn pg_ctl_stop_args(data_dir: &Path, mode: &str) -> Vec<OsString> {
    vec![
        "-D".into(),
        data_dir.into(),
        "-m".into(),
        mode.into(),
        "-w".into(),
        "-t".into(),
        "30".into(),
        "stop".into(),
    ]
}

/// The `postgresql.conf` lines appended after initdb: defaults for a throwaway test server, then
/// the caller's settings (later lines win).
fn config_lines(socket_dir: &Path, opts: &ClusterOptions) -> String {
    let mut settings: Vec<(String, String)> = vec![
        ("listen_addresses".into(), "127.0.0.1".into()),
        (
            "unix_socket_directories".into(),
            socket_dir.to_string_lossy().into_owned(),
        ),
        ("max_connections".into(), "200".into()),
    ];
    if !opts.durable {
        for name in ["fsync", "synchronous_commit", "full_page_writes"] {
            settings.push((name.into(), "off".into()));
        }
    }
    settings.extend(opts.settings.iter().cloned());
    let mut text = String::from("\n# pg-hotswap throwaway cluster\n");
    for (name, value) in settings {
        text.push_str(&format!("{name} = '{}'\n", value.replace('\'', "''")));
    }
    text
}

/// The watchdog: polls the owner's pid, then stops the server and removes the directory.
fn watchdog_script(owner_pid: u32, stop_line: &str, root: &Path) -> String {
    format!(
        "trap '' HUP INT\n\
         while kill -0 {owner_pid} 2>/dev/null; do sleep 1; done\n\
         {stop_line} >/dev/null 2>&1\n\
         rm -rf {}\n",
        shell_quote(&root.to_string_lossy())
    )
}

/// A libpq conninfo value: bare when it is a plain word, else single-quoted with `\` escapes.
fn conninfo_value(value: &str) -> String {
    let plain = !value.is_empty()
        && value
            .chars()
            .all(|c| !c.is_whitespace() && c != '\'' && c != '\\' && c != '=');
    if plain {
        value.to_string()
    } else {
        format!("'{}'", value.replace('\\', r"\\").replace('\'', r"\'"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: &[OsString]) -> Vec<String> {
        args.iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn initdb_uses_trust_utf8_and_no_sync() {
        let args = strings(&initdb_args(Path::new("/tmp/x/data"), "C.UTF-8"));
        assert_eq!(
            args,
            [
                "-D",
                "/tmp/x/data",
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
                "--no-sync"
            ]
        );
    }

    #[test]
    fn pg_ctl_start_waits_with_a_bound_and_logs_to_a_file() {
        let args = strings(&pg_ctl_start_args(
            Path::new("/d"),
            Path::new("/d.log"),
            5999,
        ));
        assert_eq!(
            args,
            ["-D", "/d", "-l", "/d.log", "-o", "-p 5999", "-w", "-t", "60", "start"]
        );
        let stop = strings(&pg_ctl_stop_args(Path::new("/d"), "immediate"));
        assert_eq!(
            stop,
            ["-D", "/d", "-m", "immediate", "-w", "-t", "30", "stop"]
        );
    }

    #[test]
    fn config_defaults_are_for_tests_and_caller_settings_come_last() {
        let opts = ClusterOptions {
            settings: vec![
                ("work_mem".into(), "64MB".into()),
                ("x".into(), "it's".into()),
            ],
            ..ClusterOptions::default()
        };
        let text = config_lines(Path::new("/tmp/c"), &opts);
        assert!(text.contains("listen_addresses = '127.0.0.1'\n"));
        assert!(text.contains("unix_socket_directories = '/tmp/c'\n"));
        assert!(text.contains("fsync = 'off'\n"));
        assert!(text.ends_with("work_mem = '64MB'\nx = 'it''s'\n"));

        let durable = ClusterOptions {
            durable: true,
            ..ClusterOptions::default()
        };
        assert!(!config_lines(Path::new("/tmp/c"), &durable).contains("fsync"));
    }

    #[test]
    fn commands_switch_user_when_root() {
        let prog = Path::new("/usr/lib/postgresql/15/bin/pg_ctl");
        let args: Vec<OsString> = vec!["-D".into(), "/tmp/a b".into()];
        let runuser = RunAs::Runuser {
            runuser: "/usr/sbin/runuser".into(),
            user: "postgres".into(),
        };
        let c = runuser.command(prog, &args);
        assert_eq!(c.get_program(), "/usr/sbin/runuser");
        let got: Vec<_> = c
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            got,
            [
                "-u",
                "postgres",
                "--",
                prog.to_str().unwrap(),
                "-D",
                "/tmp/a b"
            ]
        );
        assert_eq!(
            runuser.shell_line(prog, &args),
            "'/usr/sbin/runuser' -u 'postgres' -- \
             '/usr/lib/postgresql/15/bin/pg_ctl' '-D' '/tmp/a b'"
        );
        let su = RunAs::Su {
            user: "postgres".into(),
        };
        let line = su.shell_line(Path::new("/bin/x"), &["it's".into()]);
        let inner = line
            .strip_prefix("su 'postgres' -s /bin/sh -c ")
            .expect("su form");
        let out = Command::new("/bin/sh")
            .arg("-c")
            .arg(format!("printf %s {inner}"))
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), r"'/bin/x' 'it'\''s'");
        assert_eq!(
            RunAs::Current.shell_line(Path::new("/bin/x"), &[]),
            "'/bin/x'"
        );
    }

    #[test]
    fn shell_quote_survives_sh() {
        for word in ["plain", "a b", "it's", r"back\slash", "$HOME `x`", "''"] {
            let out = Command::new("/bin/sh")
                .arg("-c")
                .arg(format!("printf %s {}", shell_quote(word)))
                .output()
                .unwrap();
            assert_eq!(String::from_utf8_lossy(&out.stdout), word);
        }
    }

    #[test]
    fn watchdog_waits_for_owner_then_stops_and_removes() {
        let script = watchdog_script(42, "'pg_ctl' 'stop'", Path::new("/tmp/pg x"));
        assert!(script.contains("while kill -0 42 2>/dev/null; do sleep 1; done\n"));
        assert!(script.contains("'pg_ctl' 'stop' >/dev/null 2>&1\n"));
        assert!(script.ends_with("rm -rf '/tmp/pg x'\n"));
    }

    #[test]
    fn conninfo_values_are_quoted_when_needed() {
        assert_eq!(conninfo_value("hs_test_1"), "hs_test_1");
        assert_eq!(conninfo_value("a b"), "'a b'");
        assert_eq!(conninfo_value("it's"), r"'it\'s'");
        assert_eq!(conninfo_value(""), "''");
    }

    #[test]
    fn port_conflicts_are_recognised() {
        assert!(port_was_taken(
            "LOG:  could not bind IPv4 address \"127.0.0.1\": Address already in use"
        ));
        assert!(!port_was_taken(
            "FATAL:  data directory has wrong ownership"
        ));
    }
}
