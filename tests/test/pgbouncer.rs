//! Issue 19: `run` through a real pgbouncer (Debian package `pgbouncer`) in both pool modes. In
//! session mode a session keeps its backend, so the run works (here under writes, and the table
//! is rewritten); in transaction mode it does not, and the `pooler` preflight check
//! (`src/rewrite/checks/pooler.rs`) refuses the run with the reason before anything is created.
//!
//! Each test starts its own pgbouncer (its ini, userlist and log in a temporary directory, on a
//! free port, `auth_type = trust`) in front of the test server. A missing `pgbouncer` binary
//! fails the test with what to install: CI installs it (`.ci/run`), so a silent skip would hide
//! that the pooler is no longer tested.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::str::FromStr;
use std::time::{Duration, Instant};

use pg_hotswap::db::ident::Ident;
use pg_hotswap::demo::workload::{create_tables, TableSpec};

use crate::harness::{
    all_output, assert_exit, column_type, describe, hotswap_async, relation_exists, start_load,
    table_arg, with_dbname, TestDb,
};

/// The environment variable naming the pgbouncer executable (default: `pgbouncer` on the PATH,
/// or Debian's `/usr/sbin/pgbouncer`).
const BIN_ENV: &str = "PGHOTSWAP_PGBOUNCER";

fn pgbouncer_binary() -> PathBuf {
    if let Some(bin) = std::env::var_os(BIN_ENV).filter(|b| !b.is_empty()) {
        let bin = PathBuf::from(bin);
        assert!(
            bin.is_file(),
            "{BIN_ENV} names {}, which is not a file: the pooler tests need pgbouncer",
            bin.display()
        );
        return bin;
    }
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    on_path
        .into_iter()
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/bin")])
        .map(|dir| dir.join("pgbouncer"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "pgbouncer is not installed: the pooler tests need it (Debian: `apt-get install \
                 pgbouncer`, which .ci/run does; or name the executable in {BIN_ENV})"
            )
        })
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("finding a free port for pgbouncer")
}

/// A pgbouncer started for one test; stopped (by its pid) when dropped.
struct Bouncer {
    dir: PathBuf,
    port: u16,
    child: Child,
}

impl Bouncer {
    /// Starts pgbouncer in `pool_mode` in front of the server `db` lives on, and waits until it
    /// accepts connections.
    fn start(name: &str, pool_mode: &str, db: &TestDb) -> Bouncer {
        let bin = pgbouncer_binary();
        let config = tokio_postgres::Config::from_str(&db.conninfo).expect("the test conninfo");
        let host = match config.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
            #[cfg(unix)]
            Some(tokio_postgres::config::Host::Unix(p)) => p.to_string_lossy().into_owned(),
            None => "127.0.0.1".into(),
        };
        let server_port = config.get_ports().first().copied().unwrap_or(5432);
        let user = config.get_user().unwrap_or("postgres").to_string();

        let dir = std::env::temp_dir().join(format!("hs-pgbouncer-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let port = free_port();
        let path = |f: &str| dir.join(f).to_string_lossy().into_owned();
        std::fs::write(dir.join("userlist.txt"), format!("\"{user}\" \"\"\n")).unwrap();
        let ini = format!(
            "[databases]\n\
             * = host={host} port={server_port}\n\
             [pgbouncer]\n\
             listen_addr = 127.0.0.1\n\
             listen_port = {port}\n\
             unix_socket_dir =\n\
             auth_type = trust\n\
             auth_file = {}\n\
             pool_mode = {pool_mode}\n\
             max_client_conn = 200\n\
             default_pool_size = 40\n\
             ignore_startup_parameters = extra_float_digits,options\n\
             logfile = {}\n\
             pidfile = {}\n",
            path("userlist.txt"),
            path("pgbouncer.log"),
            path("pgbouncer.pid"),
        );
        std::fs::write(dir.join("pgbouncer.ini"), ini).unwrap();

        // pgbouncer refuses to run as root, like PostgreSQL: run it as `postgres` then.
        let mut cmd = if running_as_root() {
            let owned = Command::new("chown")
                .arg("-R")
                .arg("postgres")
                .arg(&dir)
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            assert!(owned, "chown -R postgres {}", dir.display());
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&bin);
            c
        } else {
            Command::new(&bin)
        };
        let child = cmd
            .arg(dir.join("pgbouncer.ini"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", bin.display()));
        let mut bouncer = Bouncer { dir, port, child };
        bouncer.wait_ready();
        bouncer
    }

    fn wait_ready(&mut self) {
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "pgbouncer exited ({status}) before it listened; its log:\n{}",
                    self.log()
                );
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "pgbouncer did not listen on port {} within 20 s; its log:\n{}",
                self.port,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("pgbouncer.log")).unwrap_or_default()
    }

    /// The test database's connection string through this pgbouncer.
    fn conninfo(&self, db: &TestDb) -> String {
        let config = tokio_postgres::Config::from_str(&db.conninfo).expect("the test conninfo");
        let user = config.get_user().unwrap_or("postgres");
        with_dbname(
            &format!("host=127.0.0.1 port={} user={user}", self.port),
            &db.name,
        )
    }
}

impl Drop for Bouncer {
    fn drop(&mut self) {
        // The pgbouncer process itself (its pid file), then `runuser` if it ran under it.
        if let Ok(pid) = std::fs::read_to_string(self.dir.join("pgbouncer.pid")) {
            let _ = Command::new("kill").arg(pid.trim()).status();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn files_of(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
                .collect()
        })
        .unwrap_or_default()
}

/// Session mode: the run goes through, under a write load, and the table is rewritten.
#[tokio::test]
async fn session_mode_runs_under_writes() {
    let name = "pgbouncer_session";
    let db = TestDb::new(name).await;
    let client = db.client().await;
    let spec = TableSpec::simple("public", name);
    create_tables(&client, &spec, 5_000).await.unwrap();
    let before: u32 = client
        .query_one(
            "SELECT pg_relation_filenode($1::text::regclass)::oid",
            &[&spec.table.to_string()],
        )
        .await
        .unwrap()
        .get(0);
    let bouncer = {
        let db = db.clone();
        tokio::task::spawn_blocking(move || Bouncer::start(name, "session", &db))
            .await
            .unwrap()
    };
    let load = start_load(&db.conninfo, &spec, 5_000, 2, 200);
    let dsn = bouncer.conninfo(&db);
    let table = table_arg(&spec.table);
    let out = hotswap_async(&[
        "run",
        "--dsn",
        &dsn,
        "--table",
        &table,
        "--alter",
        "ALTER COLUMN id TYPE bigint",
    ])
    .await;
    let report = load.stop().await;
    eprintln!("{}", describe(&out));
    assert!(
        out.status.code() == Some(0),
        "run through pgbouncer (session mode) failed: {}\npgbouncer log:\n{}\nfiles: {:?}",
        describe(&out),
        bouncer.log(),
        files_of(&bouncer.dir)
    );
    assert!(report.transactions > 0, "the write load committed nothing");
    assert!(
        report.errors.is_empty(),
        "writes failed: {:#?}",
        report.errors
    );
    assert_eq!(
        column_type(&client, &spec.table, &Ident::new("id")).await,
        "bigint"
    );
    let after: u32 = client
        .query_one(
            "SELECT pg_relation_filenode($1::text::regclass)::oid",
            &[&spec.table.to_string()],
        )
        .await
        .unwrap()
        .get(0);
    assert_ne!(before, after, "the table was not rewritten");
    // The pooler check saw something in between but sessions keeping their backend.
    let text = all_output(&out);
    assert!(
        text.contains("pooler") || text.contains("something is in between"),
        "the pooler check did not report the pooler:\n{text}"
    );
}

/// Transaction mode: refused at preflight (exit 3) with the pooler check's reason; nothing
/// changed.
#[tokio::test]
async fn transaction_mode_is_refused_with_the_reason() {
    let name = "pgbouncer_transaction";
    let db = TestDb::new(name).await;
    let client = db.client().await;
    let spec = TableSpec::simple("public", name);
    create_tables(&client, &spec, 1_000).await.unwrap();
    let bouncer = {
        let db = db.clone();
        tokio::task::spawn_blocking(move || Bouncer::start(name, "transaction", &db))
            .await
            .unwrap()
    };
    let dsn = bouncer.conninfo(&db);
    let table = table_arg(&spec.table);
    let out = hotswap_async(&[
        "run",
        "--dsn",
        &dsn,
        "--table",
        &table,
        "--alter",
        "ALTER COLUMN id TYPE bigint",
    ])
    .await;
    eprintln!("{}", describe(&out));
    assert_exit(&out, 3);
    let text = all_output(&out);
    assert!(
        text.contains("pooler") && text.contains("transaction mode"),
        "the refusal does not give the pooler check's reason:\n{text}\npgbouncer log:\n{}",
        bouncer.log()
    );
    assert_eq!(
        column_type(&client, &spec.table, &Ident::new("id")).await,
        "integer"
    );
    let shadow = spec.table.sibling(format!("{name}_new"));
    assert!(
        !relation_exists(&client, &shadow).await,
        "a shadow was left"
    );
}
