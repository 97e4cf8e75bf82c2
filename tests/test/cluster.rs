//! The throwaway cluster (`pg_hotswap::demo::cluster`): it starts, it stops and cleans up, and it never
//! outlives the process that started it, even one killed with SIGKILL.

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pg_hotswap::demo::cluster::{Cluster, ClusterOptions};

/// Set in the environment of the child process that [`cluster_dies_with_its_owner`] starts.
const CHILD_ENV: &str = "PGHOTSWAP_CLUSTER_OWNER_CHILD";

fn port_open(port: u16) -> bool {
    TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(500)).is_ok()
}

/// Waits until the server is gone: no directory, nobody listening on the port.
fn wait_gone(dir: &Path, port: u16, within: Duration) {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if !dir.exists() && !port_open(port) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!(
        "cluster still there after {within:?}: dir {} exists: {}, port {port} open: {}",
        dir.display(),
        dir.exists(),
        port_open(port)
    );
}

#[test]
fn stop_removes_the_cluster_and_is_idempotent() {
    let mut cluster = Cluster::start(&ClusterOptions {
        settings: vec![("work_mem".into(), "8MB".into())],
        ..ClusterOptions::default()
    })
    .expect("starting a cluster");
    let port = cluster.port();
    let data = cluster.data_dir().to_path_buf();
    assert!(data.join("PG_VERSION").exists());
    assert!(port_open(port));
    assert!(cluster.conninfo("x").contains(&format!("port={port}")));
    assert!(cluster.bindir().join("pg_ctl").exists());
    cluster.stop();
    cluster.stop();
    wait_gone(&data, port, Duration::from_secs(5));
}

/// Runs in a child process (see [`cluster_dies_with_its_owner`]): starts a cluster, reports where
/// it is and waits to be killed. Without the environment variable it does nothing.
#[test]
fn cluster_owner_child() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    let cluster = Cluster::start(&ClusterOptions::default()).expect("starting a cluster");
    println!(
        "CLUSTER {} {}",
        cluster.port(),
        cluster.data_dir().parent().unwrap().display()
    );
    std::thread::sleep(Duration::from_secs(120));
    drop(cluster);
}

#[test]
fn cluster_dies_with_its_owner() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return;
    }
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "cluster::cluster_owner_child",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawning the owner process");
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let mut found = None;
    for line in stdout.lines() {
        let line = line.unwrap();
        // libtest prints the test's name on the same line first.
        if let Some((_, rest)) = line.split_once("CLUSTER ") {
            let (port, dir) = rest.split_once(' ').unwrap();
            found = Some((port.parse::<u16>().unwrap(), PathBuf::from(dir)));
            break;
        }
    }
    let (port, dir) = found.expect("the owner process did not report its cluster");
    assert!(port_open(port), "the owner's cluster is not listening");
    // SIGKILL: no destructor runs; only the watchdog can clean up.
    child.kill().unwrap();
    child.wait().unwrap();
    wait_gone(&dir, port, Duration::from_secs(20));
}
