//! The report of `plan`: what it found (source, columns, what is carried over), the checks, the
//! phases with their statements and estimates, the disk it needs — the JSON of
//! `plan --output json` (versioned by [`FORMAT`]) and the input of the text rendering.

use crate::db::catalog;
use crate::db::ident::QualifiedName;
use crate::dryrun::listing::Statement;
use crate::error::Kind;
use crate::rewrite::checks::{self, Check, FreeSpace, Verdict};
use crate::rewrite::plan::{ColumnSource, Plan};
use crate::rewrite::preflight::Source;
use serde::Serialize;

/// Version of the JSON shape (docs/plan.md); bumped on incompatible changes.
pub const FORMAT: u32 = 1;

/// The whole plan, as printed (`--output json` serializes exactly this).
#[derive(Clone, Debug, Serialize)]
pub struct PlanReport {
    pub format: u32,
    pub table: String,
    /// The server's version and whether the CI tests it (`PostgreSQL 18.4 (tested)`).
    pub server: Option<String>,
    /// The worst verdict: `blocking` means `run` would refuse (and `plan` exits with 3).
    pub verdict: Verdict,
    pub exit_code: i32,
    /// Why the table or the ALTER cannot be rewritten (then most sections below are empty).
    pub refused: Option<String>,
    /// Issue 16: whether the ALTER needs a rewrite, and why (None when the plan stopped before
    /// the shadow's trial). Without one, `phases` holds the single phase "in place".
    pub rewrite: Option<RewriteDecision>,
    pub source: Option<SourceSummary>,
    pub columns: Vec<ColumnLine>,
    /// PostgreSQL's own ALTER on sampled rows against the mapping (issue 13, `rewrite::oracle`).
    pub sample_check: Option<crate::rewrite::oracle::SampleCheck>,
    pub carried_over: Option<CarriedOver>,
    /// `--partition-by` (issue 15): the partitions of the new table with sampled row counts,
    /// and the rows no partition would take (`rewrite::partition_sample`).
    pub partitions: Option<crate::rewrite::partition_sample::PartitionSample>,
    /// Preflight warnings (as `run` prints them).
    pub warnings: Vec<String>,
    pub checks: Vec<Check>,
    pub phases: Vec<PhaseReport>,
    pub disk: Option<DiskReport>,
    pub estimate: Option<Estimate>,
}

/// Whether a run rewrites the table (issue 16, `fastpath::decide`).
#[derive(Clone, Debug, Serialize)]
pub struct RewriteDecision {
    pub needed: bool,
    /// "no rewrite needed: ..." or "rewrite: <why>".
    pub reason: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct SourceSummary {
    pub rows: i64,
    /// `estimated` (pg_class.reltuples) or `counted`.
    pub rows_basis: &'static str,
    pub heap_bytes: u64,
    pub index_bytes: u64,
    pub total_bytes: u64,
    pub row_identity_index: String,
    pub row_identity: Vec<String>,
    pub shadow: String,
    pub old_name: String,
}

/// One column of the new table (or a dropped one of the old).
#[derive(Clone, Debug, Serialize)]
pub struct ColumnLine {
    pub column: String,
    /// kept, cast, renamed, mapped, default, generated, dropped.
    pub kind: &'static str,
    pub from: Option<String>,
    pub to: Option<String>,
    /// The SQL expression over the old row that produces it.
    pub expr: Option<String>,
    pub data_loss: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct Named {
    pub name: String,
    pub definition: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct CarriedOver {
    /// Indexes of the new table under their final names.
    pub indexes: Vec<Named>,
    /// Indexes of the old table the ALTER dropped.
    pub dropped_indexes: Vec<String>,
    pub constraints: Vec<Named>,
    pub incoming_foreign_keys: Vec<Named>,
    pub views: Vec<String>,
    pub triggers: Vec<String>,
    pub sequences: Vec<Named>,
    pub grants: Vec<String>,
    pub policies: Vec<String>,
    pub publications: Vec<String>,
    pub statistics: Vec<String>,
    pub rules: usize,
    pub comment: bool,
    pub row_level_security: bool,
    pub replica_identity: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct PhaseReport {
    pub phase: String,
    pub estimate_secs: Option<f64>,
    /// How the estimate was made.
    pub basis: String,
    pub single_transaction: bool,
    pub statements: Vec<Statement>,
}

#[derive(Clone, Debug, Serialize)]
pub struct DiskReport {
    pub new_table_bytes: u64,
    pub new_indexes_bytes: u64,
    pub log_bytes: u64,
    pub wal_generated_bytes: u64,
    /// WAL on disk at the peak (all of it when archived or held by a replication slot).
    pub wal_retained_bytes: u64,
    pub needed_bytes: u64,
    /// Free space per filesystem, where knowable (superuser only).
    pub free: Vec<FreeSpace>,
    pub note: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct SampleReport {
    /// `key ranges`, `tablesample` or `whole table`.
    pub method: &'static str,
    pub windows: usize,
    pub rows: u64,
    pub bytes: u64,
    /// Share of the table's rows.
    pub fraction: f64,
    pub rows_per_sec: f64,
    /// Rows per second of each window.
    pub window_rows_per_sec: Vec<f64>,
    /// Coefficient of variation of the windows' speeds.
    pub variation: f64,
    /// Copy speed of `--jobs` streams relative to one, measured (1 without jobs).
    pub parallel_speedup: f64,
    pub parallel_streams_measured: usize,
}

#[derive(Clone, Debug, Serialize)]
pub struct IndexEstimate {
    pub name: String,
    pub secs: f64,
    pub bytes: u64,
    /// Growth exponent of build time with rows, fitted from the two sample builds.
    pub exponent: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Estimate {
    pub total_secs: f64,
    pub low_secs: f64,
    pub high_secs: f64,
    /// high, medium or low.
    pub confidence: &'static str,
    pub reasons: Vec<String>,
    pub jobs: usize,
    pub sample: SampleReport,
    pub indexes: Vec<IndexEstimate>,
    pub write_rate_per_sec: f64,
    pub observed_secs: f64,
    pub replay_rows_per_sec: Option<f64>,
    /// The longest the capture trigger or the swap can keep trying for its lock, in total.
    pub worst_case_lock_secs: f64,
    pub warnings: Vec<String>,
}

/// An empty report for the table: ok until checks or a refusal say otherwise.
pub(super) fn new(table: String) -> PlanReport {
    PlanReport {
        format: FORMAT,
        table,
        server: crate::error::noted_server_version().map(catalog::describe_server_version),
        verdict: Verdict::Ok,
        exit_code: 0,
        refused: None,
        rewrite: None,
        source: None,
        columns: Vec::new(),
        sample_check: None,
        carried_over: None,
        partitions: None,
        warnings: Vec::new(),
        checks: Vec::new(),
        phases: Vec::new(),
        disk: None,
        estimate: None,
    }
}

impl PlanReport {
    /// The verdict (the worst check; blocking when refused) and the exit code it gives.
    pub(super) fn finish(mut self) -> PlanReport {
        self.verdict = checks::worst(&self.checks);
        if self.refused.is_some() {
            self.verdict = Verdict::Blocking;
        }
        self.exit_code = if self.verdict == Verdict::Blocking {
            Kind::Refused.exit_code()
        } else {
            0
        };
        self
    }
}

/// The columns of the new table, where each comes from, then the dropped ones.
pub(super) fn columns(plan: &Plan) -> Vec<ColumnLine> {
    let mut out = Vec::new();
    for c in &plan.columns {
        let line = |kind, from: Option<String>, to: Option<String>| ColumnLine {
            column: c.column.as_str().to_string(),
            kind,
            from,
            to,
            expr: c.expr.clone(),
            data_loss: false,
        };
        out.push(match &c.source {
            ColumnSource::Same => line("kept", None, None),
            ColumnSource::Cast { from, to } => line("cast", Some(from.clone()), Some(to.clone())),
            ColumnSource::Renamed { from, cast_to } => {
                line("renamed", Some(from.clone()), cast_to.clone())
            }
            ColumnSource::Using { from, to, .. } => {
                line("using", Some(from.clone()), Some(to.clone()))
            }
            ColumnSource::Mapped { .. } => line("mapped", None, None),
            ColumnSource::Default => line("default", None, None),
            ColumnSource::Generated => line("generated", None, None),
        });
    }
    for d in &plan.dropped {
        out.push(ColumnLine {
            column: d.as_str().to_string(),
            kind: "dropped",
            from: None,
            to: None,
            expr: None,
            data_loss: true,
        });
    }
    out
}

/// What the swap carries over to the new table, from the plan and the inspected source.
pub(super) fn carried_over(plan: &Plan, src: &Source, table: &QualifiedName) -> CarriedOver {
    CarriedOver {
        indexes: plan
            .indexes
            .iter()
            .filter(|i| !i.temporary)
            .map(|i| Named {
                name: i.final_name.as_str().to_string(),
                definition: if i.built_by_constraint {
                    i.constraint_sql.clone().unwrap_or_default()
                } else {
                    i.create_sql.clone()
                },
            })
            .collect(),
        dropped_indexes: plan
            .dropped_indexes
            .iter()
            .map(|i| i.as_str().to_string())
            .collect(),
        constraints: src
            .constraints
            .iter()
            .map(|c| Named {
                name: c.name.as_str().to_string(),
                definition: c.def.clone(),
            })
            .collect(),
        incoming_foreign_keys: src
            .incoming
            .iter()
            .map(|f| Named {
                name: format!("{} on {}", f.name.as_str(), f.table.human()),
                definition: f.def.clone(),
            })
            .collect(),
        views: src.views.iter().map(|v| v.name.human()).collect(),
        triggers: src
            .user_triggers()
            .map(|t| t.name.as_str().to_string())
            .collect(),
        sequences: src
            .sequences
            .iter()
            .map(|s| Named {
                name: s.name.human(),
                definition: if s.deptype == "i" {
                    format!(
                        "identity of column {}: continues from its position",
                        s.column.as_str()
                    )
                } else {
                    format!(
                        "serial of column {}: handed to the new table",
                        s.column.as_str()
                    )
                },
            })
            .collect(),
        grants: src.grants.iter().map(|g| g.sql(table)).collect(),
        policies: src
            .policies
            .iter()
            .map(|p| p.name.as_str().to_string())
            .collect(),
        publications: src
            .publications
            .iter()
            .map(|p| p.name.as_str().to_string())
            .collect(),
        statistics: src.statistics.iter().map(|s| s.name.human()).collect(),
        rules: src.rules.len(),
        comment: src.table.comment.is_some(),
        row_level_security: src.table.row_security,
        replica_identity: match src.table.replica_identity.as_str() {
            "f" => "full",
            "n" => "nothing",
            "i" => "index",
            _ => "default",
        }
        .to_string(),
    }
}

/// The blocking check of rows no partition would take (`run` refuses them before creating
/// anything), None when every sampled row has a partition.
pub(super) fn partitions_check(
    sample: &crate::rewrite::partition_sample::PartitionSample,
    table: &QualifiedName,
) -> Option<Check> {
    let e = sample.refusal(table)?;
    Some(Check {
        name: "partitions",
        verdict: Verdict::Blocking,
        summary: e.message().to_string(),
        details: sample
            .unrouted
            .iter()
            .filter_map(|u| u.detail.clone())
            .collect(),
        action: e.next().map(str::to_string),
        pids: Vec::new(),
    })
}
