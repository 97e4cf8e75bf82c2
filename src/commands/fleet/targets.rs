//! The fleet's targets (issue 18): the targets file (one libpq connection string per line, `#`
//! comments, blank lines ignored) parsed into connections with a label and a server key, and
//! the fleet id derived from what decides the rewrite.
//!
//! Invariant kept here: a target is named in messages by its label (host:port/dbname, from the
//! parsed connection), never by its connection string, so no password reaches a log or a report.

use crate::db::conn::{self, ConnSpec};
use crate::error::{Error, Result};
use std::path::Path;
use std::time::Duration;

/// One database of the fleet.
#[derive(Clone, Debug)]
pub struct FleetTarget {
    /// 1-based line order in the targets file.
    pub index: usize,
    /// The connection string as written (passed to the target's run; never printed).
    pub dsn: String,
    pub conn: ConnSpec,
    /// `host:port/dbname`, for messages.
    pub label: String,
    /// `host:port`: targets with the same key share a server (`--per-host`).
    pub host: String,
}

/// Reads the targets file. Usage errors (exit 2) name the line.
pub fn load(path: &Path) -> Result<Vec<FleetTarget>> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Error::usage(format!(
            "cannot read the targets file {}: {e}",
            path.display()
        ))
    })?;
    parse(&text, &path.display().to_string())
}

/// The targets of a file's `text` (`name` for messages).
pub fn parse(text: &str, name: &str) -> Result<Vec<FleetTarget>> {
    let mut out: Vec<FleetTarget> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let spec = conn::resolve_spec(Some(line), Duration::from_millis(100))
            .map_err(|e| Error::usage(format!("{name}, line {}: {}", n + 1, e.message())))?;
        let (host, label) = names(&spec);
        if let Some(o) = out.iter().find(|t| t.label == label) {
            return Err(Error::usage(format!(
                "{name}, line {}: {label} is listed twice (also target {})",
                n + 1,
                o.index
            )));
        }
        out.push(FleetTarget {
            index: out.len() + 1,
            dsn: line.to_string(),
            conn: spec,
            label,
            host,
        });
    }
    if out.is_empty() {
        return Err(Error::usage(format!(
            "{name} lists no target (one connection string per line)"
        )));
    }
    Ok(out)
}

/// `host:port` and `host:port/dbname` of a connection (first host; a socket directory as is).
fn names(spec: &ConnSpec) -> (String, String) {
    let c = &spec.config;
    let host = match c.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => "localhost".to_string(),
    };
    let port = c.get_ports().first().copied().unwrap_or(5432);
    let db = c
        .get_dbname()
        .or_else(|| c.get_user())
        .unwrap_or("")
        .to_string();
    let key = format!("{host}:{port}");
    let label = format!("{key}/{db}");
    (key, label)
}

/// The fleet id when `--fleet-id` is not given: `fleet-` and 12 hex digits of a hash (FNV-1a,
/// stable across builds) of the table, the ALTER and the run's other arguments, so the same
/// command run again names the same fleet and finds its runs.
pub fn derived_id(table: &str, alter: Option<&str>, run_args: &[String]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |s: &str| {
        for b in s.bytes().chain(std::iter::once(0u8)) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    eat(table);
    eat(alter.unwrap_or("\u{1}none"));
    for a in run_args {
        eat(a);
    }
    format!("fleet-{:012x}", h & 0xffff_ffff_ffff)
}

/// A fleet id given on the command line: short, printable, no spaces.
pub fn check_id(id: &str) -> Result<()> {
    if id.is_empty()
        || id.len() > 63
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c))
    {
        return Err(Error::usage(format!(
            "--fleet-id {id:?}: use 1 to 63 letters, digits, '-', '_', '.', ':'"
        )));
    }
    Ok(())
}

/// The name of a target's log file: its index and label with every other character as `_`.
pub fn log_name(t: &FleetTarget) -> String {
    let clean: String = t
        .label
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("{:03}-{clean}.log", t.index)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_file_lines_comments_and_labels() {
        let t = parse(
            "# shard map\n\nhost=10.0.0.1 port=5433 dbname=a user=u password=secret\n  postgresql://u:pw@db2:6000/b  \nhost=10.0.0.1 port=5433 dbname=c # not a comment inside\n",
            "f",
        );
        // A '#' after a connection string is not a comment: libpq refuses that line.
        assert!(t.is_err());
        let t = parse(
            "# shard map\n\nhost=10.0.0.1 port=5433 dbname=a user=u password=secret\n  postgresql://u:pw@db2:6000/b  \n",
            "f",
        )
        .unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].label, "10.0.0.1:5433/a");
        assert_eq!(t[0].host, "10.0.0.1:5433");
        assert_eq!(t[1].label, "db2:6000/b");
        assert_eq!(t[1].index, 2);
        assert!(!t[0].label.contains("secret"));
        assert_eq!(log_name(&t[1]), "002-db2_6000_b.log");
    }

    #[test]
    fn empty_or_repeated_targets_are_refused() {
        assert!(parse("# nothing\n\n", "f").is_err());
        let e = parse("host=h dbname=a\nhost=h dbname=a\n", "f").unwrap_err();
        assert!(e.message().contains("line 2"), "{}", e.message());
    }

    #[test]
    fn fleet_id_is_stable_and_depends_on_the_rewrite() {
        let a = derived_id("t", Some("ALTER COLUMN id TYPE bigint"), &[]);
        assert_eq!(a, derived_id("t", Some("ALTER COLUMN id TYPE bigint"), &[]));
        assert_ne!(a, derived_id("t", None, &[]));
        assert_ne!(a, derived_id("u", Some("ALTER COLUMN id TYPE bigint"), &[]));
        assert_ne!(
            a,
            derived_id(
                "t",
                Some("ALTER COLUMN id TYPE bigint"),
                &["--jobs".into(), "2".into()]
            )
        );
        assert!(a.starts_with("fleet-") && a.len() == 18);
        assert!(check_id(&a).is_ok());
        assert!(check_id("has space").is_err());
        assert!(check_id("").is_err());
    }
}
