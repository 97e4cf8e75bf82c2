//! The sample oracle (issue 13, "An oracle inside the tool"): before anything is copied, the
//! user's real `ALTER TABLE` is applied to a copy of sampled rows of the table, and the result is
//! compared, column by column and row by row, with what the column mapping gives the same rows
//! through the copier's binary COPY pipe. Verification through the mapping cannot catch a wrong
//! mapping (it reads both sides through it); this can.
//!
//! How: inside a savepoint of the shadow transaction (`shadow::build_in`, also what `plan` runs),
//! 1. a clone of the table (`LIKE` it, with defaults, generated and identity columns, indexes and
//!    check constraints, plus a row-number column) is filled with a bounded sample: up to 1,000
//!    rows read with `TABLESAMPLE SYSTEM` at a percentage derived from `reltuples`, so a 50 GB
//!    table reads a few dozen pages, plus the first and the last row in key order;
//! 2. a second clone holds "edge" rows: copies of sampled rows with a NULL put into each nullable
//!    column (each NULL in its own savepoint, so one a constraint refuses is only left out);
//! 3. each clone's rows go through the mapping exactly as the copy sends them
//!    (`copier::copy_statements`, binary COPY out into memory, binary COPY in) into a table
//!    `LIKE` the shadow, so type modifiers applied by receive functions count too — twice for the
//!    sample, to tell volatile expressions (which cannot be compared) from wrong ones;
//! 4. the user's ALTER runs on each clone (extended protocol, one statement, as on the shadow);
//! 5. the `::text` forms (exact, and defined for types without equality) of every shadow column
//!    are compared, rows matched by the row number.
//!
//! Which columns are compared: every column the copy writes and every generated column. Not
//! compared, and said so: new columns whose default is volatile or that are identity columns
//! (each row written gets its own value), and new columns filled by `--map` (the ALTER alone
//! gives them their default; the `--map` is the user's word on how to fill them). A `--map` on a
//! column that descends from an old column *is* compared: the ALTER says what that column holds
//! (its old value, cast or `USING`), and a `--map` that contradicts it is refused; a change of
//! values belongs in the ALTER's `USING`.
//!
//! Invariants kept here (DESIGN.md, "The ALTER means what PostgreSQL says it means"; "Refuse
//! before creating anything"): a difference on any sampled row, a mapping that fails where the
//! ALTER does not, or an ALTER that fails on the sampled rows refuses the run (exit 3) before
//! anything is created; and the check changes nothing: everything it creates lives in a
//! savepoint that is always rolled back (its only lasting trace: sequence values a volatile
//! default of the ALTER draws, as any rolled-back insert leaves gaps). What the check cannot do
//! on its clone (an ALTER naming a foreign key, which the clone does not carry, to take no lock
//! on other tables) it reports as not done, and the run goes on as before it existed.
//!
//! Rows the sample cannot see: `nulls` probes the whole table for NULLs in the columns the ALTER
//! makes NOT NULL.
//!
//! The parts: `sample` (the clones and their rows), `mapped` (the rows through the copy's own
//! statements), `alter` (the user's ALTER on a clone), `compare` (which columns, and where they
//! differ), `report` (the refusals). What the check found is a [`SampleCheck`], recorded in the
//! plan (`plan.rs`).

mod alter;
mod compare;
mod mapped;
pub mod nulls;
mod report;
mod sample;

pub use crate::rewrite::plan::{SampleCheck, SkippedColumn};
pub use sample::MAX_ROWS;

use crate::db::catalog;
use crate::error::{DbContext, Error, Kind, Result};
use crate::rewrite::plan::Plan;
use crate::rewrite::preflight::Source;
use alter::{trial, Trial};
use compare::{differences, key_names, Columns};
use mapped::{create_mapped, map_rows};
use report::{alter_fails, differ, mapping_fails};
use sample::{add_checks, create_clone, fill_sample, names};
use std::future::Future;
use std::time::Instant;
use tokio_postgres::Transaction;

/// Applies `alter` to sampled rows of the table and compares the result with what `plan`'s
/// mapping gives them. Call it inside the transaction that created `plan.shadow` (the shadow
/// must exist, with the ALTER applied). `Err` with [`Kind::Refused`] when they differ or the
/// ALTER fails on the rows; lock timeouts and lost connections are returned as they are; any
/// other failure of the check itself gives a report with `done: false`.
pub async fn check_sample(
    tx: &Transaction<'_>,
    src: &Source,
    plan: &Plan,
    alter: Option<&str>,
) -> Result<SampleCheck> {
    let started = Instant::now();
    tx.batch_execute("SAVEPOINT hotswap_oracle")
        .await
        .ctx("starting the sample check")?;
    let result = check_in(tx, src, plan, alter).await;
    // Always rolled back: nothing the check created outlives it.
    let undone = tx
        .batch_execute("ROLLBACK TO SAVEPOINT hotswap_oracle; RELEASE SAVEPOINT hotswap_oracle")
        .await
        .ctx("rolling the sample check back");
    let mut report = match result {
        Ok(r) => r,
        Err(e) if e.kind() == Kind::Refused || class(&e) == Class::Transient => return Err(e),
        Err(e) => {
            // The report's line says it ("sample check: not done (it failed: ...)"); a warning
            // here too would say it twice.
            tracing::debug!(error = %e, "the sample check could not be done");
            SampleCheck {
                done: false,
                notes: vec![format!("it failed: {}", e.message())],
                ..Default::default()
            }
        }
    };
    undone?;
    report.millis = started.elapsed().as_secs_f64() * 1000.0;
    tracing::debug!(
        rows = report.rows,
        edge_rows = report.edge_rows,
        columns = report.compared.len(),
        ms = report.millis,
        done = report.done,
        "sample check"
    );
    Ok(report)
}

/// How a failure inside the check is treated.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Class {
    /// The rows themselves: a data exception, a constraint they break, an error raised by a
    /// function over them.
    Data,
    /// Not about the check: lock timeout, cancel, connection, serialization, resources.
    Transient,
    Other,
}

pub(super) fn class(e: &Error) -> Class {
    // No SQLSTATE: the check's own error; a lost connection shows when the savepoint is
    // rolled back.
    let Some(code) = e.code().map(|c| c.code()) else {
        return Class::Other;
    };
    let starts = |ps: &[&str]| ps.iter().any(|p| code.starts_with(p));
    if starts(&["22", "23", "P0", "2F", "38", "39", "44"]) {
        Class::Data
    } else if code == "55P03" || starts(&["57", "08", "40", "53", "58", "XX"]) {
        Class::Transient
    } else {
        Class::Other
    }
}

/// Runs `f` inside a savepoint: kept when it succeeds, undone when it fails. The outer `Result`
/// fails only when the savepoint itself does.
pub(super) async fn step<T>(
    tx: &Transaction<'_>,
    f: impl Future<Output = Result<T>>,
) -> Result<Result<T>> {
    tx.batch_execute("SAVEPOINT hotswap_oracle_step")
        .await
        .ctx("sample check: starting a step")?;
    let r = f.await;
    let end = if r.is_ok() {
        "RELEASE SAVEPOINT hotswap_oracle_step"
    } else {
        "ROLLBACK TO SAVEPOINT hotswap_oracle_step; RELEASE SAVEPOINT hotswap_oracle_step"
    };
    tx.batch_execute(end)
        .await
        .ctx("sample check: ending a step")?;
    Ok(r)
}

/// The check itself, inside the savepoint [`check_sample`] rolls back.
async fn check_in(
    tx: &Transaction<'_>,
    src: &Source,
    plan: &Plan,
    alter: Option<&str>,
) -> Result<SampleCheck> {
    let mut report = SampleCheck {
        done: true,
        ..Default::default()
    };
    let names = names(tx, src, plan).await?;

    // Which shadow columns can be compared.
    let shadow_cols = catalog::columns(tx, plan.shadow_oid).await?;
    let Columns {
        mut compared,
        skipped,
        sequence_defaults,
    } = compare::columns(tx, plan, &shadow_cols).await?;
    report.skipped = skipped;

    // The sample.
    create_clone(tx, src, &names.sample, &names.row).await?;
    let rows = fill_sample(tx, src, &names.sample, &names.row).await?;
    report.rows = rows;
    if rows == 0 {
        report.compared = compared.iter().map(|c| c.as_str().to_string()).collect();
        return Ok(report);
    }
    add_checks(tx, src, &names.sample).await?;

    // The edge rows: a NULL in each nullable column whose new column stays nullable (a NULL
    // where the ALTER makes the column NOT NULL only shows that the ALTER refuses NULLs).
    let edge_cols = sample::edge_columns(src, plan, &shadow_cols);
    (report.edge_rows, report.edge_nulls) =
        sample::fill_edges(tx, src, &names, &edge_cols, rows).await?;

    // The tables the mapping writes into, shaped like the shadow.
    let mut mapped_tables = vec![&names.mapped, &names.mapped_again];
    if report.edge_rows > 0 {
        mapped_tables.push(&names.mapped_edges);
    }
    for m in mapped_tables {
        create_mapped(tx, plan, m, &names.row, &sequence_defaults).await?;
    }

    // The sample: the mapping twice (to tell volatile expressions), then the ALTER.
    let mapped = step(tx, async {
        map_rows(tx, plan, &names.sample, &names.mapped, &names.row).await?;
        map_rows(tx, plan, &names.sample, &names.mapped_again, &names.row).await
    })
    .await?;
    if mapped.is_ok() {
        let unstable = differences(
            tx,
            &names.mapped,
            &names.mapped_again,
            &names.row,
            &compared,
            &key_names(plan),
        )
        .await?;
        for d in unstable {
            compared.retain(|c| c != &d.column);
            report.skipped.push(SkippedColumn {
                column: d.column.as_str().to_string(),
                reason: "its value differs between two evaluations over the same row (volatile)"
                    .into(),
            });
        }
    }
    report.compared = compared.iter().map(|c| c.as_str().to_string()).collect();
    let sample_trial = trial(
        tx,
        src,
        plan,
        alter,
        &names.sample,
        &names.mapped,
        &names.row,
        mapped,
        &compared,
    )
    .await?;
    match sample_trial {
        Trial::Compared(diffs) if diffs.is_empty() => {}
        Trial::Compared(diffs) => return Err(differ(plan, &diffs, rows, None)),
        Trial::AlterFailed(e) => return Err(alter_fails(plan, &names.sample, rows, &e)),
        Trial::MappingFailed(e) => return Err(mapping_fails(plan, rows, None, &e)),
        Trial::NotApplicable(e) => {
            report.done = false;
            report.notes.push(format!(
                "the ALTER cannot be applied to the sample's copy of the table: {}",
                e.message()
            ));
            return Ok(report);
        }
    }

    // The edge rows.
    if report.edge_rows > 0 {
        let mapped = step(
            tx,
            map_rows(tx, plan, &names.edges, &names.mapped_edges, &names.row),
        )
        .await?;
        let edges = trial(
            tx,
            src,
            plan,
            alter,
            &names.edges,
            &names.mapped_edges,
            &names.row,
            mapped,
            &compared,
        )
        .await?;
        let nulled = edge_cols
            .iter()
            .map(|c| c.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        match edges {
            Trial::Compared(diffs) if diffs.is_empty() => {}
            Trial::Compared(diffs) => {
                return Err(differ(plan, &diffs, report.edge_rows, Some(&nulled)))
            }
            Trial::MappingFailed(e) => {
                return Err(mapping_fails(plan, report.edge_rows, Some(&nulled), &e))
            }
            // PostgreSQL refuses these made-up rows (a CHECK that NULLs fail through a USING,
            // say): the table may hold none, so nothing is refused; said, and left out.
            Trial::AlterFailed(e) | Trial::NotApplicable(e) => {
                report.notes.push(format!(
                    "the rows with NULLs put in were left out: the ALTER fails on them ({})",
                    e.message()
                ));
                report.edge_rows = 0;
                report.edge_nulls = 0;
            }
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_classified_by_sqlstate() {
        assert_eq!(class(&Error::failed("no code")), Class::Other);
    }
}
