//! Setting up a throwaway cluster's directory and server: the temporary directory, `initdb`,
//! `postgresql.conf` and `pg_hba.conf` lines, the test TLS certificates, `pg_ctl` arguments, a
//! free port, and the watchdog script that removes the cluster once its process is gone.
//! Part of the throwaway cluster (`super`); argument builders are pure and unit-tested below.

use super::binaries::{os_user_id, shell_quote, RunAs};
use super::{io_err, Cluster, ClusterError, ClusterOptions};
use std::ffi::OsString;
use std::fs;
use std::io::Write;
use std::net::TcpListener;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

impl Cluster {
    pub(super) fn initdb(&self) -> Result<(), ClusterError> {
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

    pub(super) fn write_config(&self, opts: &ClusterOptions) -> Result<(), ClusterError> {
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
    pub(super) fn prepend_hba(&self, lines: &str) -> Result<(), ClusterError> {
        let hba = self.data_dir.join("pg_hba.conf");
        let old = fs::read_to_string(&hba).map_err(io_err(format!("reading {}", hba.display())))?;
        fs::write(&hba, format!("{lines}{old}"))
            .map_err(io_err(format!("writing {}", hba.display())))
    }

    /// A test CA and a server certificate it signs (for `localhost`) in the data directory,
    /// `ssl = on`, and TCP without TLS refused.
    pub(super) fn set_up_tls(&self) -> Result<(), ClusterError> {
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
}

/// Creates a fresh directory under the temp dir, owned by the user that runs the server.
pub(super) fn make_temp_dir(run_as: &RunAs) -> Result<PathBuf, ClusterError> {
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
pub(super) fn free_port() -> Result<u16, ClusterError> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(io_err("finding a free port"))?;
    let port = listener
        .local_addr()
        .map_err(io_err("finding a free port"))?
        .port();
    Ok(port)
}

pub(super) fn port_was_taken(log: &str) -> bool {
    log.contains("could not bind") || log.contains("Address already in use")
}

pub(super) fn initdb_args(data_dir: &Path, locale: &str) -> Vec<OsString> {
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

pub(super) fn pg_ctl_start_args(data_dir: &Path, log_file: &Path, port: u16) -> Vec<OsString> {
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

pub(super) fn pg_ctl_stop_args(data_dir: &Path, mode: &str) -> Vec<OsString> {
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
pub(super) fn config_lines(socket_dir: &Path, opts: &ClusterOptions) -> String {
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
pub(super) fn watchdog_script(owner_pid: u32, stop_line: &str, root: &Path) -> String {
    format!(
        "trap '' HUP INT\n\
         while kill -0 {owner_pid} 2>/dev/null; do sleep 1; done\n\
         {stop_line} >/dev/null 2>&1\n\
         rm -rf {}\n",
        shell_quote(&root.to_string_lossy())
    )
}

/// A libpq conninfo value: bare when it is a plain word, else single-quoted with `\` escapes.
pub(super) fn conninfo_value(value: &str) -> String {
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
