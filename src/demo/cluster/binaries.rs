//! Finding the PostgreSQL server binaries, and the OS user that runs them: this process's
//! user, or `postgres` (through `runuser` or `su`) when this process is root, because
//! PostgreSQL refuses to run as root. Part of the throwaway cluster (`super`).

use super::ClusterError;
use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Which OS user runs the server binaries, and how we switch to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum RunAs {
    /// This process's user (not root).
    Current,
    /// `runuser -u <user> -- ...` (util-linux; root only).
    Runuser { runuser: PathBuf, user: String },
    /// `su <user> -s /bin/sh -c '...'`, where runuser is missing.
    Su { user: String },
}

impl RunAs {
    pub(super) fn detect() -> Result<RunAs, ClusterError> {
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
    pub(super) fn command(&self, program: &Path, args: &[OsString]) -> Command {
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
    pub(super) fn shell_line(&self, program: &Path, args: &[OsString]) -> String {
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

    pub(super) fn user(&self) -> Option<&str> {
        match self {
            RunAs::Current => None,
            RunAs::Runuser { user, .. } | RunAs::Su { user } => Some(user),
        }
    }
}

/// Quotes one word for `sh`: `'...'` with embedded `'` as `'\''`.
pub(super) fn shell_quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

pub(super) fn shell_command(program: &Path, args: &[OsString]) -> String {
    let mut line = shell_quote(&program.to_string_lossy());
    for arg in args {
        line.push(' ');
        line.push_str(&shell_quote(&arg.to_string_lossy()));
    }
    line
}

pub(super) fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// `id -u user` / `id -g user`.
pub(super) fn os_user_id(user: &str, flag: &str) -> Option<u32> {
    let out = Command::new("id").arg(flag).arg(user).output().ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

pub(super) fn find_in_path(name: &str) -> Option<PathBuf> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
