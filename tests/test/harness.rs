//! Test harness: the server the tests talk to, a fresh database per test, running the
//! `pg-hotswap` binary with a timeout, and catalog checks shared by the tests.
//!
//! The server is one throwaway cluster per test run, kept in a `static` (never dropped: the
//! cluster's watchdog stops it when the test process exits, see `pg_hotswap::demo::cluster`), or, when
//! `PGHOTSWAP_TEST_DSN` holds a superuser connection string, that server.

use std::io::Read;
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use pg_hotswap::db::ident::{Ident, QualifiedName};
use pg_hotswap::demo::cluster::{Cluster, ClusterOptions};
use tokio_postgres::{Client, NoTls};

/// How long one `pg-hotswap` invocation may take before the test kills it and fails.
pub const HOTSWAP_TIMEOUT: Duration = Duration::from_secs(300);

/// The environment variable naming an existing server to test against instead of a throwaway
/// cluster (a superuser conninfo, key=value or URL).
pub const DSN_ENV: &str = "PGHOTSWAP_TEST_DSN";

enum Server {
    Throwaway(Cluster),
    External(String),
}

static SERVER: OnceLock<Server> = OnceLock::new();

fn server() -> &'static Server {
    SERVER.get_or_init(|| match std::env::var(DSN_ENV) {
        Ok(dsn) if !dsn.trim().is_empty() => Server::External(dsn),
        _ => {
            let cluster = Cluster::start(&ClusterOptions::default())
                .unwrap_or_else(|e| panic!("starting the throwaway test cluster: {e}"));
            Server::Throwaway(cluster)
        }
    })
}

/// A connection string for database `dbname` on the test server.
pub fn conninfo_for(dbname: &str) -> String {
    match server() {
        Server::Throwaway(cluster) => cluster.conninfo(dbname),
        Server::External(dsn) => with_dbname(dsn, dbname),
    }
}

/// Replaces the database of a connection string (key=value: a later key wins; URL: the path).
pub fn with_dbname(dsn: &str, dbname: &str) -> String {
    let dsn = dsn.trim();
    for scheme in ["postgresql://", "postgres://"] {
        if let Some(rest) = dsn.strip_prefix(scheme) {
            let (before_query, query) = match rest.find('?') {
                Some(i) => (&rest[..i], &rest[i..]),
                None => (rest, ""),
            };
            let authority = before_query.split('/').next().unwrap_or("");
            let encoded: String = dbname
                .bytes()
                .map(|b| match b {
                    b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'-' | b'.' => {
                        (b as char).to_string()
                    }
                    _ => format!("%{b:02X}"),
                })
                .collect();
            return format!("{scheme}{authority}/{encoded}{query}");
        }
    }
    format!(
        "{dsn} dbname='{}'",
        dbname.replace('\\', r"\\").replace('\'', r"\'")
    )
}

/// `hs_<test name>`: lower case, `[a-z0-9_]` only, at most 63 bytes.
pub fn database_name(test_name: &str) -> String {
    let mut name: String = format!("hs_{test_name}")
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_alphanumeric() {
                c
            } else {
                '_'
            }
        })
        .collect();
    name.truncate(63);
    name
}

/// Connects and drives the connection on the current runtime. Retries briefly: a server that
/// was just started may still refuse connections.
pub async fn connect(conninfo: &str) -> Client {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match tokio_postgres::connect(conninfo, NoTls).await {
            Ok((client, connection)) => {
                tokio::spawn(async move {
                    let _ = connection.await;
                });
                return client;
            }
            Err(e) if Instant::now() < deadline => {
                eprintln!("connect to {conninfo} failed, retrying: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("connect to {conninfo}: {e}"),
        }
    }
}

/// A fresh database for one test.
#[derive(Clone, Debug)]
pub struct TestDb {
    pub name: String,
    pub conninfo: String,
}

impl TestDb {
    /// Drops (with `FORCE`) and creates the database `hs_<test_name>`.
    pub async fn new(test_name: &str) -> TestDb {
        let name = database_name(test_name);
        // Starting the cluster blocks; keep it off the async worker threads.
        let admin_conninfo = tokio::task::spawn_blocking(|| conninfo_for("postgres"))
            .await
            .expect("starting the test server");
        let admin = connect(&admin_conninfo).await;
        let ident = Ident::new(&name);
        admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {ident} WITH (FORCE)"))
            .await
            .unwrap_or_else(|e| panic!("dropping database {name}: {e}"));
        admin
            .batch_execute(&format!("CREATE DATABASE {ident}"))
            .await
            .unwrap_or_else(|e| panic!("creating database {name}: {e}"));
        TestDb {
            conninfo: conninfo_for(&name),
            name,
        }
    }

    pub async fn client(&self) -> Client {
        connect(&self.conninfo).await
    }
}

/// The `--table` argument for a table: `schema.name` when both parts are plain lower-case
/// identifiers, else the SQL-quoted form (`"App"."Weird ""Name"" tbl"`), which is the only
/// unambiguous spelling of names with capitals, dots, spaces or quotes.
pub fn table_arg(table: &QualifiedName) -> String {
    let plain = |s: &str| {
        !s.is_empty()
            && !s.starts_with(|c: char| c.is_ascii_digit())
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    };
    if plain(table.schema.as_str()) && plain(table.name.as_str()) {
        table.human()
    } else {
        table.to_string()
    }
}

/// The environment variable naming another `pg-hotswap` executable to test (a release build,
/// say); by default the tests run the binary cargo built with them.
pub const BIN_ENV: &str = "PGHOTSWAP_TEST_BIN";

pub fn hotswap_command(args: &[&str]) -> Command {
    let bin = std::env::var_os(BIN_ENV)
        .filter(|b| !b.is_empty())
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_pg-hotswap").into());
    let mut command = Command::new(bin);
    // RUST_LOG and the rest of the environment are inherited.
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// Runs `pg-hotswap args...` (stdin null), killing it and failing the test after
/// [`HOTSWAP_TIMEOUT`]. Blocking: from async tests use [`hotswap_async`].
pub fn hotswap(args: &[&str]) -> Output {
    let mut child = hotswap_command(args).spawn().expect("spawning pg-hotswap");
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = pipe.read_to_end(&mut buf);
            buf
        })
    };
    let stdout = drain(Box::new(child.stdout.take().expect("piped stdout")));
    let stderr = drain(Box::new(child.stderr.take().expect("piped stderr")));
    let deadline = Instant::now() + HOTSWAP_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for pg-hotswap") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "pg-hotswap {args:?} did not finish within {HOTSWAP_TIMEOUT:?}\n\
                 --- stdout ---\n{}\n--- stderr ---\n{}",
                String::from_utf8_lossy(&stdout.join().unwrap_or_default()),
                String::from_utf8_lossy(&stderr.join().unwrap_or_default())
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    }
}

/// [`hotswap`] for async tests, with the default timeout.
pub async fn hotswap_async(args: &[&str]) -> Output {
    hotswap_async_timeout(args, HOTSWAP_TIMEOUT).await
}

/// [`hotswap`] for async tests: the child is killed (and the test fails) after `timeout`.
pub async fn hotswap_async_timeout(args: &[&str], timeout: Duration) -> Output {
    wait_async(hotswap_command(args), args, timeout).await
}

/// [`hotswap_async`] with these environment variables set for the tool.
pub async fn hotswap_async_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = hotswap_command(args);
    cmd.envs(env.iter().copied());
    wait_async(cmd, args, HOTSWAP_TIMEOUT).await
}

/// [`hotswap_async`] with the failpoint `failpoint` armed (`PGHOTSWAP_FAILPOINT=<name>[@n]`, see
/// `src/failpoint.rs`), or with none even if the environment names one.
pub async fn hotswap_failpoint(args: &[&str], failpoint: Option<&str>) -> Output {
    let mut cmd = hotswap_command(args);
    match failpoint {
        Some(fp) => cmd.env("PGHOTSWAP_FAILPOINT", fp),
        None => cmd.env_remove("PGHOTSWAP_FAILPOINT"),
    };
    wait_async(cmd, args, HOTSWAP_TIMEOUT).await
}

/// [`hotswap_async`] with extra environment variables.
pub async fn hotswap_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = hotswap_command(args);
    cmd.envs(env.iter().copied());
    wait_async(cmd, args, HOTSWAP_TIMEOUT).await
}

async fn wait_async(cmd: Command, args: &[&str], timeout: Duration) -> Output {
    let child = tokio::process::Command::from(cmd)
        .kill_on_drop(true)
        .spawn()
        .expect("spawning pg-hotswap");
    match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Ok(output) => output.expect("waiting for pg-hotswap"),
        // Dropping the future dropped the child, which kills it.
        Err(_) => panic!("pg-hotswap {args:?} did not finish within {timeout:?}"),
    }
}

/// Fails the test unless the table of `spec` equals its ledger row for row.
pub async fn assert_matches_ledger(client: &Client, spec: &pg_hotswap::demo::workload::TableSpec) {
    let cmp = pg_hotswap::demo::workload::compare(client, spec)
        .await
        .expect("comparing with the ledger");
    assert!(
        cmp.is_identical(),
        "{} and its ledger differ: {cmp}",
        spec.table.human()
    );
}

/// Exit code, stdout and stderr of a run, for assertion messages.
pub fn describe(output: &Output) -> String {
    format!(
        "exit status: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Fails the test, printing everything the tool said, unless it exited with `code`.
pub fn assert_exit(output: &Output, code: i32) {
    assert_eq!(
        output.status.code(),
        Some(code),
        "pg-hotswap should have exited with {code}\n{}",
        describe(output)
    );
}

/// stdout and stderr together, for searching messages.
pub fn all_output(output: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// `format_type` of a column, e.g. `integer`, `bigint`.
pub async fn column_type(client: &Client, table: &QualifiedName, column: &Ident) -> String {
    client
        .query_one(
            "SELECT format_type(a.atttypid, a.atttypmod) FROM pg_catalog.pg_attribute a \
             WHERE a.attrelid = $1::text::regclass AND a.attname = $2 AND NOT a.attisdropped",
            &[&table.to_string(), &column.as_str()],
        )
        .await
        .unwrap_or_else(|e| panic!("type of {}.{}: {e}", table.human(), column.as_str()))
        .get(0)
}

/// Whether `schema.name` exists (any relation kind).
/// Starts the ledger-checked write load on `spec` (ids 1..=rows exist): `writers` sessions,
/// `rate` transactions per second in all.
pub fn start_load(
    conninfo: &str,
    spec: &pg_hotswap::demo::workload::TableSpec,
    rows: i64,
    writers: usize,
    rate: u32,
) -> pg_hotswap::demo::workload::Workload {
    pg_hotswap::demo::workload::start(pg_hotswap::demo::workload::WorkloadConfig {
        conninfo: conninfo.to_string(),
        spec: spec.clone(),
        writers,
        max_rate_per_sec: Some(rate),
        initial_rows: rows,
    })
}

/// Waits until at least `n` chunks of the copy are committed (the state table may not exist
/// yet), failing the test after a minute.
pub async fn wait_for_done_chunks(client: &Client, n: i64) {
    let waited = std::time::Instant::now();
    loop {
        let done: i64 = client
            .query_one(
                "SELECT CASE WHEN to_regclass('hotswap.chunks') IS NULL THEN 0 ELSE \
                   (xpath('/row/c/text()', query_to_xml('SELECT count(*) AS c FROM hotswap.chunks WHERE done_at IS NOT NULL', false, true, '')))[1]::text::int8 END",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if done >= n {
            return;
        }
        assert!(
            waited.elapsed() < Duration::from_secs(60),
            "the copy never got to {n} chunks"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A hold point armed for one run (`PGHOTSWAP_HOLD=<point>:<file>`, debug builds only; see
/// `src/failpoint.rs`): the run waits at `point` while the file exists and says so by creating
/// `<file>.held`. It lets a test act at an exact moment of the run on a machine of any speed.
pub struct HoldPoint {
    point: String,
    file: std::path::PathBuf,
}

impl HoldPoint {
    /// Creates the hold file for `point`, named after the test (`test`) and this process.
    pub fn new(test: &str, point: &str) -> HoldPoint {
        let file =
            std::env::temp_dir().join(format!("hs-hold-{}-{test}-{point}", std::process::id()));
        let hold = HoldPoint {
            point: point.to_string(),
            file,
        };
        let _ = std::fs::remove_file(hold.marker());
        std::fs::write(&hold.file, b"").expect("creating the hold file");
        hold
    }

    /// The environment variable that arms the hold in a `pg-hotswap` process.
    pub fn env(&self) -> (&'static str, String) {
        (
            "PGHOTSWAP_HOLD",
            format!("{}:{}", self.point, self.file.display()),
        )
    }

    fn marker(&self) -> std::path::PathBuf {
        std::path::PathBuf::from(format!("{}.held", self.file.display()))
    }

    /// Waits until the run waits at the point, failing the test after two minutes.
    pub async fn wait_reached(&self) {
        let started = Instant::now();
        while !self.marker().exists() {
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "the run never reached its hold point {}",
                self.point
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Lets the run go on (it no longer waits at the point, however often it reaches it).
    pub fn release(&self) {
        let _ = std::fs::remove_file(&self.file);
    }
}

/// Starts `pg-hotswap <args>` in the background, waiting at each of `holds` (debug builds).
pub fn spawn_held(args: &[&str], holds: &[&HoldPoint]) -> tokio::task::JoinHandle<Output> {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let spec = holds
        .iter()
        .map(|h| h.env().1)
        .collect::<Vec<_>>()
        .join(",");
    tokio::spawn(async move {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        hotswap_env(&args, &[("PGHOTSWAP_HOLD", &spec)]).await
    })
}

impl Drop for HoldPoint {
    fn drop(&mut self) {
        self.release();
        let _ = std::fs::remove_file(self.marker());
    }
}

/// Polls `sql` (one boolean column) every 20 ms until it is true, failing the test with `what`
/// after a minute: how a test waits until a session waits for a lock, say.
pub async fn wait_until(
    client: &Client,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    what: &str,
) {
    let started = Instant::now();
    loop {
        let done: bool = client
            .query_one(sql, params)
            .await
            .unwrap_or_else(|e| panic!("polling until {what}: {e:?}"))
            .get(0);
        if done {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "waited a minute, and still not: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until backend `pid` waits for a lock (see [`wait_until`]).
pub async fn wait_for_lock_wait(client: &Client, pid: i32, what: &str) {
    wait_until(
        client,
        "SELECT coalesce(wait_event_type = 'Lock', false) FROM pg_stat_activity WHERE pid = $1",
        &[&pid],
        what,
    )
    .await;
}

pub async fn relation_exists(client: &Client, table: &QualifiedName) -> bool {
    client
        .query_one(
            "SELECT to_regclass($1::text) IS NOT NULL",
            &[&table.to_string()],
        )
        .await
        .expect("to_regclass")
        .get(0)
}

/// Everything the tool may create for `table` that must not remain once a run has finished or
/// been aborted: the shadow `<table>_new`, any trigger in the table's schema (the test tables
/// have none of their own), any trigger named `hotswap%` anywhere, and capture functions in the
/// state schema. Returns one line per leftover.
pub async fn leftovers(client: &Client, table: &QualifiedName, state_schema: &str) -> Vec<String> {
    let shadow = table.sibling(pg_hotswap::db::ident::fit_name(table.name.as_str(), "_new"));
    let mut found = Vec::new();
    if relation_exists(client, &shadow).await {
        found.push(format!("shadow table {} exists", shadow.human()));
    }
    let triggers = client
        .query(
            "SELECT t.tgrelid::regclass::text, t.tgname::text FROM pg_catalog.pg_trigger t \
             JOIN pg_catalog.pg_class c ON c.oid = t.tgrelid \
             JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
             WHERE NOT t.tgisinternal AND (n.nspname = $1 OR t.tgname LIKE 'hotswap%')",
            &[&table.schema.as_str()],
        )
        .await
        .expect("listing triggers");
    for row in triggers {
        found.push(format!(
            "trigger {} on {}",
            row.get::<_, String>(1),
            row.get::<_, String>(0)
        ));
    }
    let functions = client
        .query(
            "SELECT p.oid::regprocedure::text FROM pg_catalog.pg_proc p \
             JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace \
             WHERE n.nspname = $1 AND p.proname LIKE 'capture%'",
            &[&state_schema],
        )
        .await
        .expect("listing functions");
    for row in functions {
        found.push(format!("capture function {}", row.get::<_, String>(0)));
    }
    found
}

/// Smoke test of the harness itself: two databases, each usable and separate.
#[tokio::test]
async fn two_test_databases_are_separate_and_usable() {
    let a = TestDb::new("harness_smoke_a").await;
    let b = TestDb::new("harness_smoke_b").await;
    assert_ne!(a.conninfo, b.conninfo);
    let (ca, cb) = (a.client().await, b.client().await);
    ca.batch_execute("CREATE TABLE only_in_a (x int)")
        .await
        .unwrap();
    let db: String = cb
        .query_one("SELECT current_database()", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(db, b.name);
    let in_b: bool = cb
        .query_one("SELECT to_regclass('only_in_a') IS NULL", &[])
        .await
        .unwrap()
        .get(0);
    assert!(
        in_b,
        "a table created in {} is visible in {}",
        a.name, b.name
    );
    let one: i32 = ca.query_one("SELECT 1", &[]).await.unwrap().get(0);
    assert_eq!(one, 1);
}

#[test]
fn database_names_are_sanitized_and_bounded() {
    assert_eq!(database_name("End::To-End"), "hs_end__to_end");
    assert_eq!(database_name(&"x".repeat(100)).len(), 63);
}

#[test]
fn dbname_is_replaced_in_both_conninfo_forms() {
    assert_eq!(
        with_dbname("host=h user=u dbname=postgres", "hs_a"),
        "host=h user=u dbname=postgres dbname='hs_a'"
    );
    assert_eq!(
        with_dbname("postgres://u@h:5/postgres?sslmode=disable", "hs a"),
        "postgres://u@h:5/hs%20a?sslmode=disable"
    );
    assert_eq!(with_dbname("postgresql://h", "x"), "postgresql://h/x");
}

#[test]
fn table_args_are_quoted_only_when_needed() {
    assert_eq!(
        table_arg(&QualifiedName::new("public", "accounts")),
        "public.accounts"
    );
    assert_eq!(
        table_arg(&QualifiedName::new("App", "Weird \"Name\" tbl")),
        "\"App\".\"Weird \"\"Name\"\" tbl\""
    );
}

#[test]
fn hotswap_binary_answers_help() {
    let out = hotswap(&["--help"]);
    assert_exit(&out, 0);
}
