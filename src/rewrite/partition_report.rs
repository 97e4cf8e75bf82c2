//! What a partitioned shadow's sample and the time-range generator found (issue 15), as the
//! plan records it and `plan` and `run` show it: the partitions with their row counts, the rows
//! no partition takes, the generated ranges. Data and its wording only; the sampling lives in
//! `partition_sample`, the generator in `partition_ranges` (kept apart so that `plan`, which
//! records these, depends on neither).

use crate::db::ident::{fit_name, QualifiedName};
use crate::error::Error;
use serde::{Deserialize, Serialize};

/// What the sample found, recorded in the plan (`Plan::partition_sample`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PartitionSample {
    /// `whole table` or `TABLESAMPLE SYSTEM (<percent>)`.
    pub method: String,
    /// False when the sample could not be taken (the reason is in `notes`).
    pub done: bool,
    pub sampled_rows: i64,
    /// The rows the counts are scaled to (the table's estimate, or the sampled rows when the
    /// whole table was read).
    pub table_rows: i64,
    /// The partitions by name, the DEFAULT one last.
    pub partitions: Vec<PartitionCount>,
    /// Rows with no partition (None when every row has one).
    pub unrouted: Option<Unrouted>,
    /// What `--partition-interval` generated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generated: Option<Generated>,
    pub notes: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PartitionCount {
    pub name: String,
    pub bound: String,
    pub sampled_rows: i64,
    /// Scaled to the table.
    pub estimated_rows: i64,
}

/// The sampled rows no partition takes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Unrouted {
    /// Of the sample (None when PostgreSQL's error on a row is all that is known, HASH).
    pub sampled_rows: Option<i64>,
    pub estimated_rows: Option<i64>,
    /// Found among the smallest, largest or NULL partition key rows (not counted above).
    pub extremes: i64,
    /// The partition key (`created_on`, `(region, id)`).
    pub key: String,
    /// Up to five of the partition key's values on those rows, in order (`NULL` for null).
    pub values: Vec<String>,
    pub more_values: bool,
    /// The largest of those values when there are more than the ones shown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_value: Option<String>,
    /// The whole table was read: the count is exact.
    #[serde(default)]
    pub counted: bool,
    /// PostgreSQL's message or a description of what is missing (HASH remainders).
    pub detail: Option<String>,
}

impl Unrouted {
    /// "about 1,200 rows (40 of 1,000 sampled) with created_on 2025-11-02, ... have no partition".
    pub fn describe(&self) -> String {
        let count = match (self.sampled_rows, self.estimated_rows) {
            (Some(s), _) if s > 0 && self.counted => format!("{s} rows (counted)"),
            (Some(s), Some(e)) if s > 0 => format!("about {e} rows ({s} sampled)"),
            _ if self.extremes > 0 => format!("at least {} row(s)", self.extremes),
            _ => "some rows".to_string(),
        };
        let mut s = format!("{count} would have no partition");
        if !self.values.is_empty() {
            s.push_str(&format!(
                "; {} of those rows: {}{}",
                self.key,
                self.values.join(", "),
                match (&self.last_value, self.more_values) {
                    (Some(l), true) => format!(", ..., {l}"),
                    (None, true) => ", ...".into(),
                    _ => String::new(),
                }
            ));
        }
        if self.extremes > 0 && self.sampled_rows.unwrap_or(0) == 0 {
            s.push_str(" (found among the smallest, largest and NULL values of the key)");
        }
        if let Some(d) = &self.detail {
            s.push_str(&format!(" ({d})"));
        }
        s
    }
}

impl PartitionSample {
    /// One line for `run`'s log: the partitions, how many rows each would get.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "new table partitioned: {} partitions",
            self.partitions.len()
        );
        if let Some(g) = &self.generated {
            s = format!("new table partitioned: {}", g.describe());
        }
        if self.done {
            let shown: Vec<String> = self
                .partitions
                .iter()
                .take(12)
                .map(|p| {
                    if self.method == "whole table" {
                        format!("{} {}", p.name, p.sampled_rows)
                    } else {
                        format!("{} ~{}", p.name, p.estimated_rows)
                    }
                })
                .collect();
            s.push_str(&format!(
                "; rows by partition ({}): {}{}",
                if self.method == "whole table" {
                    "counted".to_string()
                } else {
                    format!("sampled, {}", self.method)
                },
                shown.join(", "),
                if self.partitions.len() > 12 {
                    ", ..."
                } else {
                    ""
                }
            ));
        }
        s
    }

    /// The refusal of rows without a partition, None when every sampled row has one.
    pub fn refusal(&self, table: &QualifiedName) -> Option<Error> {
        let u = self.unrouted.as_ref()?;
        Some(
            Error::refused(format!(
                "cannot rewrite table {} into a partitioned table: {}",
                table.human(),
                u.describe()
            ))
            .with_state(format!("nothing was changed; {} is untouched", table.human()))
            .with_next(format!(
                "add a partition for those values, or a default one (--partition \"{} DEFAULT\"); `pg-hotswap plan` shows the partitions with sampled row counts",
                fit_name(table.name.as_str(), "_default")
            )),
        )
    }
}

/// `--partition-interval`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Interval {
    Day,
    Week,
    Month,
    Year,
}

impl Interval {
    /// Parses `--partition-interval`: day, week, month or year.
    pub fn parse(s: &str) -> std::result::Result<Interval, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "day" | "daily" => Ok(Interval::Day),
            "week" | "weekly" => Ok(Interval::Week),
            "month" | "monthly" => Ok(Interval::Month),
            "year" | "yearly" => Ok(Interval::Year),
            _ => Err(format!(
                "--partition-interval {s:?}: expected day, week, month or year"
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Interval::Day => "day",
            Interval::Week => "week",
            Interval::Month => "month",
            Interval::Year => "year",
        }
    }
}

/// What the generator did, for the plan and `plan`'s report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Generated {
    pub column: String,
    pub interval: Interval,
    /// The smallest and largest value (as dates), None for an empty column.
    pub min: Option<String>,
    pub max: Option<String>,
    /// How they were read: `index <name>`, `scan` or `empty`.
    pub read: String,
    pub partitions: usize,
}

impl Generated {
    /// One line for people.
    pub fn describe(&self) -> String {
        let span = match (&self.min, &self.max) {
            (Some(a), Some(b)) => format!("{a} .. {b}"),
            _ => "no values; the interval holding today".into(),
        };
        let how = match self.read.as_str() {
            "scan" => "read by a scan of the table (no btree index leads with the column)".into(),
            "computed" => {
                "read by a scan of the table (the mapping computes the column)".to_string()
            }
            r => format!("read through {r}"),
        };
        format!(
            "{} partitions by {} over {} ({span}, {how}), and a DEFAULT one",
            self.partitions,
            self.interval.as_str(),
            self.column,
        )
    }
}
