//! Preflight checks shared by `plan` and `run` (issue 6): each looks at one way the server's
//! current state can hurt a rewrite, and gives a verdict (ok / warning / blocking) with what to do.
//!
//! This module owns the verdict, the registry of checks and the gate: [`CHECKS`] lists every
//! check (one file each, a name and a function, in the order they are shown); [`run_all`] makes
//! them all, `plan` prints every one, and `run` calls [`for_run`] right after
//! `preflight::inspect` and refuses (exit 3, nothing created) on a blocking verdict; warnings
//! are printed and recorded. The checks only read. Free disk space is not knowable from SQL;
//! only `--df-on-server` (`plan`, `run`), for a superuser, runs `df` on the server (see
//! `disk.rs`); without it `run` says what it needs.
//!
//! Invariant kept here: a check that cannot be made (a catalog view this role may not read, an
//! old server) yields a warning saying so, under the check's own name; it never fails the command.

mod connections;
mod disk;
mod pooler;
mod privileges;
mod publications;
mod replication_slots;
mod sessions;
mod timeouts;
mod vacuum;

pub use connections::{connections_verdict, sessions_needed, ConnLimits};
pub use disk::{disk_check, parse_df, wal_retained, DiskSizes};
pub use pooler::{pooler_verdict, PoolerProbe};
pub use timeouts::setting_text;

use crate::db::conn::ConnSpec;
use crate::db::ident::QualifiedName;
use crate::error::{Error, Result};
use crate::rewrite::preflight::Source;
use futures_util::future::BoxFuture;
use serde::Serialize;
use tokio_postgres::types::Oid;
use tokio_postgres::Client;

/// How bad a finding is. Ordered: the worst verdict of a list is its `max`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Ok,
    Warning,
    Blocking,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::Warning => "warning",
            Verdict::Blocking => "blocking",
        }
    }
}

/// One check's result. `name` is a stable identifier (documented in docs/plan.md).
#[derive(Clone, Debug, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub verdict: Verdict,
    pub summary: String,
    /// One line per finding (a session, a slot, a setting...).
    pub details: Vec<String>,
    /// What to do about it (None when there is nothing to do).
    pub action: Option<String>,
    /// Session pids the check is about (sessions, vacuum).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pids: Vec<i32>,
}

impl Check {
    fn new(name: &'static str, verdict: Verdict, summary: impl Into<String>) -> Check {
        Check {
            name,
            verdict,
            summary: summary.into(),
            details: Vec::new(),
            action: None,
            pids: Vec::new(),
        }
    }

    fn action(mut self, a: impl Into<String>) -> Check {
        self.action = Some(a.into());
        self
    }

    /// A check that could not be made: a warning that says why.
    fn unknown(name: &'static str, e: &Error) -> Check {
        Check::new(
            name,
            Verdict::Warning,
            format!("could not be checked: {}", e.message()),
        )
    }

    /// `name: summary` and the action, for messages.
    pub fn line(&self) -> String {
        let mut s = format!("{}: {}", self.name, self.summary);
        if let Some(a) = &self.action {
            s.push_str(&format!(" — {a}"));
        }
        s
    }
}

/// Disk the run needs, as estimated by the caller.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct DiskNeed {
    /// The new table, its indexes and the change log, in the table's tablespace.
    pub data_bytes: u64,
    /// WAL the run keeps on disk at its peak, in `pg_wal`.
    pub wal_bytes: u64,
}

/// Free space the server's filesystems report (only knowable for superusers; see the header).
#[derive(Clone, Debug, Serialize)]
pub struct FreeSpace {
    pub path: String,
    pub filesystem: String,
    pub mount: String,
    pub available_bytes: u64,
}

/// What the checks look at.
pub struct CheckInput<'a> {
    pub table_oid: Oid,
    pub table: &'a QualifiedName,
    /// The inspected source, when preflight got that far (privileges on dependent objects).
    pub source: Option<&'a Source>,
    pub jobs: usize,
    pub state_schema: &'a str,
    pub disk: DiskNeed,
    /// For the pooler check (the port we connect to, and a second session).
    pub conn: &'a ConnSpec,
}

/// One check of the registry: its stable name (documented in docs/plan.md; the name of its
/// [`Check`]) and the function that makes it.
pub(crate) struct Entry {
    pub name: &'static str,
    pub run: for<'a> fn(&'a Client, &'a CheckInput<'a>) -> BoxFuture<'a, Result<Check>>,
}

/// An [`Entry`] for the check of module `$m`: its `NAME` and its `check` function.
macro_rules! entry {
    ($m:ident) => {
        Entry {
            name: $m::NAME,
            run: |client, input| Box::pin($m::check(client, input)),
        }
    };
}

/// Every check [`run_all`] makes, in the order they are shown. The disk check comes last, apart:
/// `plan` makes it again once the sizes are measured ([`disk_check`]).
pub(crate) const CHECKS: &[Entry] = &[
    entry!(sessions),
    entry!(replication_slots),
    entry!(publications),
    entry!(pooler),
    entry!(privileges),
    entry!(connections),
    entry!(timeouts),
    entry!(vacuum),
];

/// Runs every check. Never fails: a check that cannot be made is a warning.
pub async fn run_all(client: &Client, input: &CheckInput<'_>) -> (Vec<Check>, Vec<FreeSpace>) {
    let mut out = Vec::with_capacity(CHECKS.len() + 1);
    for check in CHECKS {
        out.push(
            (check.run)(client, input)
                .await
                .unwrap_or_else(|e| Check::unknown(check.name, &e)),
        );
    }
    let (disk, free) = disk_check(client, input.table_oid, input.disk, false).await;
    out.push(disk);
    (out, free)
}

/// The worst verdict of `checks`.
pub fn worst(checks: &[Check]) -> Verdict {
    checks
        .iter()
        .map(|c| c.verdict)
        .max()
        .unwrap_or(Verdict::Ok)
}

/// The refusal for blocking checks (exit 3), or the warnings to print.
pub fn gate(checks: &[Check], table: &QualifiedName) -> Result<Vec<String>> {
    let blocking: Vec<String> = checks
        .iter()
        .filter(|c| c.verdict == Verdict::Blocking)
        .map(|c| c.line())
        .collect();
    if !blocking.is_empty() {
        return Err(Error::refused(format!(
            "cannot rewrite table {} now: {}",
            table.human(),
            blocking.join("; ")
        ))
        .with_state("nothing was changed")
        .with_next(
            "fix what the checks name and run again (`pg-hotswap plan` shows every check)",
        ));
    }
    Ok(checks
        .iter()
        .filter(|c| c.verdict == Verdict::Warning)
        .map(|c| c.line())
        .collect())
}

/// The checks as `run` uses them: the disk need is computed as `plan` computes it
/// ([`DiskSizes::need`]) from the source's sizes (the new table about as big as the heap and
/// TOAST, its indexes as the source's; the change log, which grows with the writes, is not
/// known before the run); with `df_on_server` the free space is read and a copy that cannot fit
/// is refused (exit 3, nothing created); without it the need is said once. Returns the warnings.
pub async fn for_run(
    client: &Client,
    spec: &ConnSpec,
    src: &Source,
    jobs: usize,
    state_schema: &str,
    df_on_server: bool,
) -> Result<Vec<String>> {
    let t = &src.table;
    let heap = t.heap_bytes.max(0) as u64;
    let total = t.total_bytes.max(0) as u64;
    let sizes = DiskSizes {
        new_table: heap,
        new_indexes: total.saturating_sub(heap),
        log_bytes: 0,
    };
    let need = match sizes.need(client).await {
        Ok(n) => n,
        Err(_) => DiskNeed {
            data_bytes: total,
            wal_bytes: total,
        },
    };
    let input = CheckInput {
        table_oid: t.oid,
        table: &t.name,
        source: Some(src),
        jobs,
        state_schema,
        disk: need,
        conn: spec,
    };
    let (mut checks, _) = run_all(client, &input).await;
    if df_on_server {
        let (asked, _) = disk_check(client, t.oid, need, true).await;
        if let Some(c) = checks.iter_mut().find(|c| c.name == disk::NAME) {
            *c = asked;
        }
    }
    // Not knowing the free disk is the normal case, not news on every run: say it once as
    // information (with the need), and keep the warnings for what was found.
    checks.retain(|c| {
        let unknown_disk = !df_on_server
            && c.name == disk::NAME
            && c.verdict == Verdict::Warning
            && c.summary.starts_with("free disk is not knowable");
        if unknown_disk {
            crate::output::ui::say(&format!(
                "disk: {} (plus the change log, which grows with the writes during the run)",
                c.summary
            ));
        }
        !unknown_disk
    });
    gate(&checks, &t.name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worst_and_gate() {
        let t = QualifiedName::new("public", "t");
        let ok = Check::new("a", Verdict::Ok, "fine");
        let warn = Check::new("b", Verdict::Warning, "hmm");
        assert_eq!(worst(&[ok.clone(), warn.clone()]), Verdict::Warning);
        assert_eq!(gate(&[ok.clone(), warn.clone()], &t).unwrap().len(), 1);
        let block = Check::new("c", Verdict::Blocking, "no");
        let e = gate(&[ok, warn, block], &t).unwrap_err();
        assert_eq!(e.kind(), crate::error::Kind::Refused);
    }

    #[test]
    fn registered_names_are_unique() {
        let mut names: Vec<&str> = CHECKS.iter().map(|c| c.name).collect();
        names.push(disk::NAME);
        let n = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), n);
    }
}
