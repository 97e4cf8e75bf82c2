//! The time-range generator of `--partition-interval` (issue 15): with `--partition-by "RANGE
//! (<one date, timestamp or timestamptz column>)"` and no `--partition`, the partitions are
//! made over the span of that column's data on the source.
//!
//! What it makes (docs/operations.md, "Converting a table into a partitioned one"):
//! - one partition per interval from the one holding the smallest value to the one holding the
//!   largest, each `FOR VALUES FROM ('<start>') TO ('<next start>')`: months and years start on
//!   their first day, weeks on Monday (ISO), days at midnight;
//! - named `<table>_pYYYY` (year), `<table>_pYYYYMM` (month), `<table>_pYYYYMMDD` (week: its
//!   Monday; day), and a `<table>_default` DEFAULT partition for what falls outside (rows
//!   written later than the largest value, NULLs); the table's name is shortened so that each
//!   name fits 63 bytes;
//! - for an empty column (no rows, or only NULLs), the interval holding today.
//!
//! How the span is read: the smallest and the largest value of the column's source through the
//! mapping, each as the first row of `ORDER BY <source column>` (one index probe when a btree
//! index leads with that column, else a scan of the table, and the report says which). A
//! column the mapping computes (`USING`, `--map`) is read by `min()` and `max()` over its
//! expression, a scan. Bounds are calendar dates; a `timestamptz` column's bounds are midnight
//! in the session's `TimeZone`, which also turns its values into dates here.
//!
//! Invariant kept here: the ranges are contiguous, do not overlap, and cover the smallest and
//! the largest value read (unit tests below); they are computed once, in the shadow's
//! transaction, and recorded in the plan with the partitions PostgreSQL made of them.

use crate::db::ident::{fit_name, Ident};
use crate::error::{DbContext, Error, Result, RowExt};
pub use crate::rewrite::partition_report::{Generated, Interval};
use crate::rewrite::partitioning::{PartitionRequest, PartitionSpec};
use crate::rewrite::plan::{ColumnSource, Plan};
use crate::rewrite::preflight::Source;
use tokio_postgres::Transaction;

/// The most partitions the generator makes: beyond it, a coarser interval is asked for (each
/// partition is a table; thousands make planning and the swap slow).
pub const MAX_PARTITIONS: usize = 1000;

/// A calendar date (proleptic Gregorian).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Date {
    pub year: i32,
    pub month: u32,
    pub day: u32,
}

/// Days from 1970-01-01 to 2000-01-01, PostgreSQL's date epoch.
const PG_EPOCH_DAYS: i64 = 10_957;

impl Date {
    /// The date `days` after 2000-01-01 (what `d - date '2000-01-01'` gives).
    pub fn from_pg_days(days: i64) -> Date {
        // Howard Hinnant's civil_from_days, from 1970-01-01.
        let z = days + PG_EPOCH_DAYS + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        let year = (yoe + era * 400 + i64::from(month <= 2)) as i32;
        Date { year, month, day }
    }

    /// Days after 2000-01-01 (negative before).
    pub fn pg_days(self) -> i64 {
        let y = i64::from(self.year) - i64::from(self.month <= 2);
        let era = y.div_euclid(400);
        let yoe = y.rem_euclid(400);
        let m = i64::from(self.month);
        let mp = if m > 2 { m - 3 } else { m + 9 };
        let doy = (153 * mp + 2) / 5 + i64::from(self.day) - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        era * 146_097 + doe - 719_468 - PG_EPOCH_DAYS
    }

    /// 0 for Monday .. 6 for Sunday (2000-01-01 was a Saturday).
    fn weekday(self) -> i64 {
        (self.pg_days() + 5).rem_euclid(7)
    }

    fn plus_days(self, n: i64) -> Date {
        Date::from_pg_days(self.pg_days() + n)
    }

    /// `YYYY-MM-DD`, as a bound literal takes it.
    pub fn iso(self) -> String {
        format!("{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

/// The start of the interval holding `d`.
pub fn start_of(interval: Interval, d: Date) -> Date {
    match interval {
        Interval::Day => d,
        Interval::Week => d.plus_days(-d.weekday()),
        Interval::Month => Date { day: 1, ..d },
        Interval::Year => Date {
            month: 1,
            day: 1,
            ..d
        },
    }
}

/// The start of the interval after the one starting at `start`.
pub fn next_start(interval: Interval, start: Date) -> Date {
    match interval {
        Interval::Day => start.plus_days(1),
        Interval::Week => start.plus_days(7),
        Interval::Month if start.month == 12 => Date {
            year: start.year + 1,
            month: 1,
            day: 1,
        },
        Interval::Month => Date {
            month: start.month + 1,
            day: 1,
            ..start
        },
        Interval::Year => Date {
            year: start.year + 1,
            month: 1,
            day: 1,
        },
    }
}

/// The ranges `[from, to)` covering `min..=max`, one per interval; an error (the number it
/// would take) above [`MAX_PARTITIONS`].
pub fn ranges(
    interval: Interval,
    min: Date,
    max: Date,
) -> std::result::Result<Vec<(Date, Date)>, usize> {
    let (min, max) = if min <= max { (min, max) } else { (max, min) };
    let mut out = Vec::new();
    let mut s = start_of(interval, min);
    while s <= max {
        let n = next_start(interval, s);
        out.push((s, n));
        if out.len() > MAX_PARTITIONS {
            // Count the rest cheaply for the message.
            let per = (n.pg_days() - s.pg_days()).max(1);
            return Err(out.len() + ((max.pg_days() - n.pg_days()) / per).max(0) as usize);
        }
        s = n;
    }
    Ok(out)
}

/// The partition's name for the interval starting at `start`: `<table>_p` and the start's
/// digits (`YYYY`, `YYYYMM` or `YYYYMMDD`), the table's name shortened to fit 63 bytes.
pub fn partition_name(table: &str, interval: Interval, start: Date) -> String {
    let digits = match interval {
        Interval::Year => format!("{:04}", start.year),
        Interval::Month => format!("{:04}{:02}", start.year, start.month),
        Interval::Week | Interval::Day => {
            format!("{:04}{:02}{:02}", start.year, start.month, start.day)
        }
    };
    fit_name(table, &format!("_p{digits}"))
}

/// The default partition's name: `<table>_default`, shortened to fit.
pub fn default_name(table: &str) -> String {
    fit_name(table, "_default")
}

/// The generated partitions: the ranges, then the default one.
pub fn specs(table: &str, interval: Interval, ranges: &[(Date, Date)]) -> Vec<PartitionSpec> {
    let mut out: Vec<PartitionSpec> = ranges
        .iter()
        .map(|(from, to)| PartitionSpec {
            name: Ident::new(partition_name(table, interval, *from)),
            bound: format!("FOR VALUES FROM ('{}') TO ('{}')", from.iso(), to.iso()),
        })
        .collect();
    out.push(PartitionSpec {
        name: Ident::new(default_name(table)),
        bound: "DEFAULT".into(),
    });
    out
}

/// The single column of `RANGE (<column>)`, as SQL reads it (folded to lower case unless
/// double-quoted). None for another strategy, several columns or an expression.
pub fn range_column(by: &str) -> Option<String> {
    let t = by.trim();
    let rest = t
        .get(..5)
        .filter(|s| s.eq_ignore_ascii_case("RANGE"))
        .map(|_| &t[5..])?;
    let inner = rest.trim().strip_prefix('(')?.strip_suffix(')')?.trim();
    if let Some(q) = inner.strip_prefix('"') {
        let body = q.strip_suffix('"')?;
        // Inner quotes come doubled; a lone one ends the identifier early.
        if body.replace("\"\"", "").contains('"') || body.is_empty() {
            return None;
        }
        return Some(body.replace("\"\"", "\""));
    }
    let ok = !inner.is_empty()
        && !inner.starts_with(|c: char| c.is_ascii_digit() || c == '$')
        && inner
            .chars()
            .all(|c| c.is_alphanumeric() || c == '_' || c == '$');
    ok.then(|| inner.to_lowercase())
}

/// With `--partition-interval`, the request with its partitions generated over the data, and
/// what was done; None without it (the request is used as given). Runs in the shadow's
/// transaction, after the ALTER was planned (`plan.columns`) and before the shadow becomes a
/// partitioned table.
///
/// Errors (refused, nothing is created): the key is not one date/timestamp/timestamptz column,
/// the column is new (no source to read), its values are infinite, or the span needs more than
/// [`MAX_PARTITIONS`].
pub async fn expand(
    tx: &Transaction<'_>,
    src: &Source,
    plan: &Plan,
    req: &PartitionRequest,
) -> Result<Option<(PartitionRequest, Generated)>> {
    let Some(interval) = req.interval else {
        return Ok(None);
    };
    let table = &src.table.name;
    let refuse = |why: String| {
        Error::refused(format!(
            "--partition-interval {} on {}: {why}",
            interval.as_str(),
            table.human()
        ))
        .with_state(format!(
            "nothing was changed; {} is untouched",
            table.human()
        ))
    };
    let Some(column) = range_column(&req.by) else {
        return Err(refuse(format!(
            "--partition-by {:?} is not RANGE over one column",
            req.by
        ))
        .with_next("give --partition-by \"RANGE (<a date or timestamp column>)\", or list the partitions with --partition"));
    };
    let shadow_cols = crate::db::catalog::columns(tx, plan.shadow_oid).await?;
    let Some(col) = shadow_cols.iter().find(|c| c.name.as_str() == column) else {
        return Err(refuse(format!("the new table has no column {column:?}"))
            .with_next("name a column of the table as it is after --alter"));
    };
    // date, timestamp, timestamptz, or a domain over one.
    let dated = [1082, 1114, 1184].contains(&col.type_oid)
        || matches!(
            col.base_type.replace('"', "").as_str(),
            "pg_catalog.date" | "pg_catalog.timestamp" | "pg_catalog.timestamptz"
        );
    if !dated {
        return Err(refuse(format!(
            "column {} is {}, not a date, timestamp or timestamptz",
            col.name.as_str(),
            col.type_name
        ))
        .with_next("list the partitions with --partition instead"));
    }
    let mapped = plan.columns.iter().find(|c| c.column == col.name);
    let Some((expr, mapped)) = mapped.and_then(|m| m.expr.as_deref().map(|e| (e, m))) else {
        return Err(refuse(format!(
            "column {} is new (a default or a generated column): the source has no values to span",
            col.name.as_str()
        ))
        .with_next("list the partitions with --partition instead"));
    };
    // An ordered read of the source column gives the extremes of the mapped value when the
    // mapping keeps the order (the column itself or a cast between these types).
    let ordered_by = match (&mapped.source, &mapped.origin) {
        (ColumnSource::Same | ColumnSource::Cast { .. }, Some(o)) => src.column(o),
        _ => None,
    };
    let day = format!("(({expr})::pg_catalog.date)");
    let from = plan.source_from();
    let what = format!(
        "reading the span of {} for --partition-interval",
        col.name.as_str()
    );
    let (sql, read) = match ordered_by {
        Some(o) => {
            let index = leading_index(tx, src.table.oid, o.num).await?;
            let one = |dir: &str| {
                format!(
                    "(SELECT {day} FROM {from} WHERE {} IS NOT NULL ORDER BY {} {dir} LIMIT 1)",
                    o.name, o.name
                )
            };
            (
                format!("SELECT {}, {}", one("ASC"), one("DESC")),
                index
                    .map(|i| format!("index {i}"))
                    .unwrap_or_else(|| "scan".into()),
            )
        }
        None => (
            format!("SELECT min({day}), max({day}) FROM {from}"),
            "computed".into(),
        ),
    };
    let days = |d: &str| {
        format!(
            "CASE WHEN pg_catalog.isfinite({d}) THEN ({d} - DATE '2000-01-01')::int8 END, \
             {d} IS NOT NULL AND NOT pg_catalog.isfinite({d})"
        )
    };
    let sql = format!(
        "SELECT {}, {}, (CURRENT_DATE - DATE '2000-01-01')::int8 FROM ({sql}) s(lo, hi)",
        days("lo"),
        days("hi")
    );
    let row = tx.query_one(&sql, &[]).await.ctx(&what)?;
    let lo: Option<i64> = row.col(0, &what)?;
    let lo_inf: bool = row.col(1, &what)?;
    let hi: Option<i64> = row.col(2, &what)?;
    let hi_inf: bool = row.col(3, &what)?;
    let today: i64 = row.col(4, &what)?;
    if lo_inf || hi_inf {
        return Err(refuse(format!(
            "column {} holds infinite values, which no range of dates covers",
            col.name.as_str()
        ))
        .with_next("list the partitions with --partition (the DEFAULT one takes 'infinity')"));
    }
    let (min, max, read) = match (lo, hi) {
        (Some(a), Some(b)) => (Date::from_pg_days(a), Date::from_pg_days(b), read),
        _ => {
            let t = Date::from_pg_days(today);
            (t, t, "empty".to_string())
        }
    };
    let list = ranges(interval, min, max).map_err(|n| {
        refuse(format!(
            "{} .. {} takes {n} partitions by {}, more than {MAX_PARTITIONS}",
            min.iso(),
            max.iso(),
            interval.as_str()
        ))
        .with_next("choose a coarser --partition-interval, or list the partitions with --partition")
    })?;
    let generated = Generated {
        column: col.name.as_str().to_string(),
        interval,
        min: (read != "empty").then(|| min.iso()),
        max: (read != "empty").then(|| max.iso()),
        read,
        partitions: list.len(),
    };
    let expanded = PartitionRequest {
        by: req.by.clone(),
        partitions: specs(table.name.as_str(), interval, &list),
        interval: None,
    };
    Ok(Some((expanded, generated)))
}

/// A valid, non-partial btree index of `table` whose first column is attribute `attnum`.
async fn leading_index(tx: &Transaction<'_>, table: u32, attnum: i32) -> Result<Option<String>> {
    let what = "looking for an index that leads with the partition key";
    let attnum = i16::try_from(attnum).unwrap_or(i16::MAX);
    tx.query_opt(
        "SELECT c.relname::text FROM pg_catalog.pg_index i \
           JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid \
           JOIN pg_catalog.pg_am am ON am.oid = c.relam \
          WHERE i.indrelid = $1 AND i.indkey[0] = $2 AND am.amname = 'btree' \
            AND i.indpred IS NULL AND i.indisvalid \
          ORDER BY c.relname LIMIT 1",
        &[&table, &attnum],
    )
    .await
    .ctx(what)?
    .map(|r| r.col(0, &what))
    .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> Date {
        Date {
            year: y,
            month: m,
            day,
        }
    }

    #[test]
    fn dates_round_trip_pg_days() {
        assert_eq!(d(2000, 1, 1).pg_days(), 0);
        assert_eq!(Date::from_pg_days(0), d(2000, 1, 1));
        assert_eq!(d(1999, 12, 31).pg_days(), -1);
        assert_eq!(d(2000, 3, 1).pg_days(), 60, "2000 is a leap year");
        assert_eq!(d(2026, 1, 1).pg_days(), 9497);
        for n in (-800_000..800_000).step_by(997) {
            assert_eq!(Date::from_pg_days(n).pg_days(), n);
        }
        assert_eq!(
            Date::from_pg_days(d(2100, 3, 1).pg_days() - 1),
            d(2100, 2, 28)
        );
    }

    #[test]
    fn weeks_start_on_monday() {
        // 2026-01-01 is a Thursday; its ISO week starts on Monday 2025-12-29.
        assert_eq!(start_of(Interval::Week, d(2026, 1, 1)), d(2025, 12, 29));
        assert_eq!(start_of(Interval::Week, d(2025, 12, 29)), d(2025, 12, 29));
        assert_eq!(
            start_of(Interval::Week, d(2026, 1, 4)),
            d(2025, 12, 29),
            "a Sunday"
        );
        assert_eq!(start_of(Interval::Week, d(2026, 1, 5)), d(2026, 1, 5));
        assert_eq!(d(2000, 1, 1).weekday(), 5, "a Saturday");
    }

    #[test]
    fn months_and_years_roll_over() {
        assert_eq!(next_start(Interval::Month, d(2025, 12, 1)), d(2026, 1, 1));
        assert_eq!(next_start(Interval::Month, d(2024, 2, 1)), d(2024, 3, 1));
        assert_eq!(next_start(Interval::Year, d(2024, 1, 1)), d(2025, 1, 1));
        assert_eq!(next_start(Interval::Day, d(2024, 2, 28)), d(2024, 2, 29));
        assert_eq!(next_start(Interval::Day, d(2023, 2, 28)), d(2023, 3, 1));
        assert_eq!(start_of(Interval::Month, d(2024, 2, 29)), d(2024, 2, 1));
        assert_eq!(start_of(Interval::Year, d(2024, 7, 9)), d(2024, 1, 1));
    }

    #[test]
    fn ranges_are_contiguous_and_cover_the_span() {
        for interval in [
            Interval::Day,
            Interval::Week,
            Interval::Month,
            Interval::Year,
        ] {
            for (min, max) in [
                (d(2026, 1, 1), d(2026, 3, 31)),
                (d(2025, 12, 31), d(2026, 1, 1)),
                (d(2024, 2, 29), d(2024, 2, 29)),
                (d(2023, 6, 15), d(2025, 1, 2)),
            ] {
                let r = ranges(interval, min, max).unwrap();
                assert!(r[0].0 <= min, "{interval:?} {min:?}");
                assert!(r.last().unwrap().1 > max, "{interval:?} {max:?}");
                for w in r.windows(2) {
                    assert_eq!(w[0].1, w[1].0, "{interval:?}: contiguous");
                }
                for (a, b) in &r {
                    assert!(a < b);
                    assert!(
                        *a <= max && *b > min,
                        "{interval:?}: no empty range at the ends"
                    );
                }
            }
        }
        let r = ranges(Interval::Month, d(2026, 1, 1), d(2026, 3, 31)).unwrap();
        assert_eq!(
            r,
            vec![
                (d(2026, 1, 1), d(2026, 2, 1)),
                (d(2026, 2, 1), d(2026, 3, 1)),
                (d(2026, 3, 1), d(2026, 4, 1)),
            ]
        );
        assert_eq!(
            ranges(Interval::Month, d(2026, 3, 31), d(2026, 1, 1))
                .unwrap()
                .len(),
            3
        );
        assert_eq!(
            ranges(Interval::Week, d(2026, 1, 1), d(2026, 1, 4))
                .unwrap()
                .len(),
            1
        );
        assert_eq!(
            ranges(Interval::Week, d(2026, 1, 4), d(2026, 1, 5))
                .unwrap()
                .len(),
            2
        );
    }

    #[test]
    fn too_many_partitions_are_counted() {
        let n = ranges(Interval::Day, d(2000, 1, 1), d(2010, 1, 1)).unwrap_err();
        assert!((3650..3700).contains(&n), "{n}");
        assert_eq!(
            ranges(Interval::Year, d(1000, 1, 1), d(1999, 6, 1))
                .unwrap()
                .len(),
            1000
        );
    }

    #[test]
    fn names_fit_and_say_the_start() {
        assert_eq!(
            partition_name("event", Interval::Month, d(2026, 1, 1)),
            "event_p202601"
        );
        assert_eq!(
            partition_name("event", Interval::Year, d(2026, 1, 1)),
            "event_p2026"
        );
        assert_eq!(
            partition_name("event", Interval::Week, d(2025, 12, 29)),
            "event_p20251229"
        );
        assert_eq!(
            partition_name("event", Interval::Day, d(2026, 1, 2)),
            "event_p20260102"
        );
        assert_eq!(default_name("event"), "event_default");
        let long = "x".repeat(63);
        let n = partition_name(&long, Interval::Day, d(2026, 1, 2));
        assert_eq!(n.len(), 63);
        assert!(n.ends_with("_p20260102"));
        let s = specs("event", Interval::Month, &[(d(2026, 1, 1), d(2026, 2, 1))]);
        assert_eq!(
            s[0].bound,
            "FOR VALUES FROM ('2026-01-01') TO ('2026-02-01')"
        );
        assert_eq!(s[1].name.as_str(), "event_default");
        assert_eq!(s[1].bound, "DEFAULT");
    }

    #[test]
    fn the_key_is_one_column() {
        assert_eq!(
            range_column("RANGE (created_on)").as_deref(),
            Some("created_on")
        );
        assert_eq!(
            range_column("range ( Created_On )").as_deref(),
            Some("created_on")
        );
        assert_eq!(
            range_column("RANGE (\"At \"\"x\"\"\")").as_deref(),
            Some("At \"x\"")
        );
        assert_eq!(range_column("RANGE (a, b)"), None);
        assert_eq!(range_column("RANGE (date_trunc('day', a))"), None);
        assert_eq!(range_column("LIST (a)"), None);
        assert_eq!(range_column("RANGE (\"a\" \"b\")"), None);
    }

    #[test]
    fn intervals_parse() {
        assert_eq!(Interval::parse("Month").unwrap(), Interval::Month);
        assert_eq!(Interval::parse("weekly").unwrap(), Interval::Week);
        assert!(Interval::parse("quarter").is_err());
    }
}
