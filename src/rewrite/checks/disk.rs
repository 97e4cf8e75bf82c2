//! The `disk` check and the estimate it uses: the disk a run needs ([`DiskSizes::need`]: the new
//! table, its indexes and the change log, plus the WAL it keeps — one computation for `plan`,
//! which measures the sizes on a sample, and `run`, which takes them from the source) against
//! the free space, where that is knowable. Free disk space is not knowable from SQL; only
//! `--df-on-server` (`plan`, and `run` since issue 20), for a superuser, runs `df` on the server
//! through `COPY ... FROM PROGRAM` into a temporary table in a transaction that is rolled back.
//! It is opt-in because running a program on a production server is not something a schema
//! tool should do unasked; `run` does it only when given the option, and then refuses (exit 3,
//! before creating anything) a copy that cannot fit.
//!
//! Tests replace the free space df reported with `PGHOTSWAP_DF_AVAILABLE=<bytes>` (debug builds
//! only, `failpoint::number`): df itself still runs, but the test cluster's disk cannot be made
//! small enough to refuse a run without root rights (a loop-mounted or tmpfs tablespace), and
//! filling the disk of a machine others share is not an option.
//!
//! Not in the registry's list: it also returns the free space it read, and `plan` makes it again
//! once the sizes are measured ([`disk_check`]).

use super::{Check, DiskNeed, FreeSpace, Verdict};
use crate::db::ident::literal;
use crate::error::{DbContext, Result, RowExt};
use crate::output::ui;
use tokio_postgres::types::Oid;
use tokio_postgres::Client;

/// The check's name (docs/plan.md).
pub const NAME: &str = "disk";

/// WAL the run keeps on disk at its peak, given `generated` bytes of WAL: all of it when WAL
/// is archived or a replication slot holds it back, else at most about `max_wal_size` (checkpoints
/// recycle the rest).
pub async fn wal_retained(client: &Client, generated: u64) -> Result<u64> {
    let r = client
        .query_one(
            "SELECT pg_catalog.pg_size_bytes(pg_catalog.current_setting('max_wal_size'))::int8, \
                    pg_catalog.current_setting('archive_mode') <> 'off', \
                    EXISTS (SELECT 1 FROM pg_catalog.pg_replication_slots)",
            &[],
        )
        .await
        .ctx("reading max_wal_size")?;
    let (max_wal, archiving, slots): (i64, bool, bool) = (
        r.col(0, &"reading max_wal_size")?,
        r.col(1, &"reading max_wal_size")?,
        r.col(2, &"reading max_wal_size")?,
    );
    Ok(if archiving || slots {
        generated
    } else {
        generated.min(max_wal.max(0) as u64)
    })
}

/// The sizes a run writes, as estimated by its caller (`plan`: measured on a sample; `run`:
/// the source's own sizes).
#[derive(Clone, Copy, Debug, Default)]
pub struct DiskSizes {
    pub new_table: u64,
    pub new_indexes: u64,
    pub log_bytes: u64,
}

impl DiskSizes {
    /// WAL the run generates: the new table and its indexes once, each change-log row twice
    /// (written by the trigger, deleted by replay).
    pub fn wal_generated(&self) -> u64 {
        self.new_table + self.new_indexes + 2 * self.log_bytes
    }

    /// The disk the run needs: the data it writes in the table's tablespace, and the WAL kept
    /// at the peak ([`wal_retained`]).
    pub async fn need(&self, client: &Client) -> Result<DiskNeed> {
        Ok(DiskNeed {
            data_bytes: self.new_table + self.new_indexes + self.log_bytes,
            wal_bytes: wal_retained(client, self.wal_generated()).await?,
        })
    }
}

/// The disk check alone (`plan` makes it again once the sizes are measured).
pub async fn disk_check(
    client: &Client,
    table: Oid,
    need: DiskNeed,
    df_on_server: bool,
) -> (Check, Vec<FreeSpace>) {
    match disk(client, table, need, df_on_server).await {
        Ok(x) => x,
        Err(e) => (Check::unknown(NAME, &e), Vec::new()),
    }
}

/// Quotes a path for `sh` (single quotes, embedded ones closed and escaped).
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Parses `df -Pk` output: (filesystem, available bytes, mount) per line after the header.
pub fn parse_df(lines: &[String]) -> Vec<(String, u64, String)> {
    lines
        .iter()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() < 6 {
                return None;
            }
            let avail: u64 = f[3].parse().ok()?;
            Some((f[0].to_string(), avail * 1024, f[5..].join(" ")))
        })
        .collect()
}

/// Free disk: only knowable with superuser rights (see the module header), else said to be unknown.
async fn disk(
    client: &Client,
    table: Oid,
    need: DiskNeed,
    df_on_server: bool,
) -> Result<(Check, Vec<FreeSpace>)> {
    let r = client
        .query_one(
            "SELECT r.rolsuper, \
                    CASE WHEN r.rolsuper THEN pg_catalog.current_setting('data_directory') END, \
                    CASE WHEN r.rolsuper AND c.reltablespace <> 0 THEN pg_catalog.pg_tablespace_location(c.reltablespace) END \
               FROM pg_catalog.pg_roles r, pg_catalog.pg_class c \
              WHERE r.rolname = current_user AND c.oid = $1",
            &[&table],
        )
        .await
        .ctx("reading the data directory")?;
    let superuser: bool = r.col(0, &"reading the data directory")?;
    let need_total = need.data_bytes + need.wal_bytes;
    let need_text = format!(
        "needs about {} ({} for the new table, its indexes and the log, {} of WAL)",
        ui::bytes(need_total),
        ui::bytes(need.data_bytes),
        ui::bytes(need.wal_bytes)
    );
    if !superuser || !df_on_server {
        let check = Check::new(
            NAME,
            Verdict::Warning,
            format!(
                "free disk is not knowable from SQL{}; the run {need_text}",
                match (superuser, df_on_server) {
                    (true, _) => " (`--df-on-server` asks df on the server)",
                    (false, true) =>
                        " (--df-on-server needs a superuser: it runs df on the server)",
                    (false, false) => "",
                }
            ),
        )
        .action(
            "check free space on the server (df, or the provider's storage metric) before running",
        );
        return Ok((check, Vec::new()));
    }
    let data_dir: String = r.col(1, &"reading the data directory")?;
    let data_path = r
        .col::<Option<String>>(2, &"reading the data directory")?
        .unwrap_or_else(|| data_dir.clone());
    let wal_path = format!("{data_dir}/pg_wal");
    let lines = match df(client, &[&data_path, &wal_path]).await {
        Ok(l) => l,
        Err(e) => {
            let check = Check::new(
                NAME,
                Verdict::Warning,
                format!(
                    "could not run df on the server ({}); the run {need_text}",
                    e.message()
                ),
            )
            .action("check free space on the server before running");
            return Ok((check, Vec::new()));
        }
    };
    let parsed = parse_df(&lines);
    if parsed.len() < 2 {
        let check = Check::new(
            NAME,
            Verdict::Warning,
            format!("could not read df's output on the server; the run {need_text}"),
        );
        return Ok((check, Vec::new()));
    }
    // Tests only (see the header): the free space as if df had said so.
    let fake = crate::failpoint::number("PGHOTSWAP_DF_AVAILABLE");
    let free: Vec<FreeSpace> = [&data_path, &wal_path]
        .iter()
        .zip(&parsed)
        .map(|(p, (fs, avail, mount))| FreeSpace {
            path: p.to_string(),
            filesystem: fs.clone(),
            mount: mount.clone(),
            available_bytes: fake.unwrap_or(*avail),
        })
        .collect();
    let same_fs = free[0].filesystem == free[1].filesystem && free[0].mount == free[1].mount;
    let short = |avail: u64, needed: u64| -> Verdict {
        if avail < needed {
            Verdict::Blocking
        } else if (avail as f64) < needed as f64 * 1.25 + 1e9 {
            Verdict::Warning
        } else {
            Verdict::Ok
        }
    };
    let (verdict, summary) = if same_fs {
        (
            short(free[0].available_bytes, need_total),
            format!(
                "{} free on {} (data and WAL); the run {need_text}",
                ui::bytes(free[0].available_bytes),
                free[0].mount
            ),
        )
    } else {
        (
            short(free[0].available_bytes, need.data_bytes)
                .max(short(free[1].available_bytes, need.wal_bytes)),
            format!(
                "{} free for data on {}, {} for WAL on {}; the run {need_text}",
                ui::bytes(free[0].available_bytes),
                free[0].mount,
                ui::bytes(free[1].available_bytes),
                free[1].mount
            ),
        )
    };
    let mut check = Check::new(NAME, verdict, summary);
    check.details.push(
        "free space read with df on the server (COPY FROM PROGRAM, superuser only, in a rolled-back transaction)".into(),
    );
    if verdict != Verdict::Ok {
        check.action =
            Some("free disk space first (or keep less WAL: see replication_slots)".into());
    }
    Ok((check, free))
}

/// Runs `df -Pk <paths>` on the server, in a transaction that is rolled back.
async fn df(client: &Client, paths: &[&str]) -> Result<Vec<String>> {
    let cmd = format!(
        "df -Pk {}",
        paths
            .iter()
            .map(|p| shell_quote(p))
            .collect::<Vec<_>>()
            .join(" ")
    );
    let result = async {
        client
            .batch_execute(&format!(
                "BEGIN; CREATE TEMP TABLE hotswap_df (line text) ON COMMIT DROP; \
                 COPY hotswap_df FROM PROGRAM {} WITH (FORMAT text, DELIMITER E'\\x01')",
                literal(&cmd)
            ))
            .await
            .ctx("running df on the server")?;
        let rows = client
            .query("SELECT line FROM hotswap_df", &[])
            .await
            .ctx("reading df's output")?;
        rows.iter()
            .map(|r| r.col::<String>(0, &"reading df's output"))
            .collect::<Result<Vec<_>>>()
    }
    .await;
    let _ = client.batch_execute("ROLLBACK").await;
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn df_output_is_parsed() {
        let lines = vec![
            "Filesystem     1024-blocks      Used Available Capacity Mounted on".to_string(),
            "/dev/sda1        100000000  50000000  50000000      50% /".to_string(),
            "/dev/sdb1 10 5 5 50% /mnt/wal disk".to_string(),
        ];
        let p = parse_df(&lines);
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].1, 50_000_000 * 1024);
        assert_eq!(p[1].2, "/mnt/wal disk");
    }

    #[test]
    fn wal_counts_the_log_twice() {
        let s = DiskSizes {
            new_table: 100,
            new_indexes: 20,
            log_bytes: 5,
        };
        assert_eq!(s.wal_generated(), 130);
    }

    #[test]
    fn shell_quoting() {
        assert_eq!(shell_quote("/var/lib/pg"), "'/var/lib/pg'");
        assert_eq!(shell_quote("a'b"), r"'a'\''b'");
    }
}
