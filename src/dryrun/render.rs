//! `plan`'s report as text for people.

use super::listing::Statement;
use super::report::{ColumnLine, Named, PlanReport};
use crate::output::ui;
use crate::rewrite::checks::Verdict;

/// Seconds for people: ms, s, min or h.
fn secs(s: f64) -> String {
    if s < 1.0 {
        format!("{:.0} ms", s * 1000.0)
    } else if s < 120.0 {
        format!("{s:.1} s")
    } else if s < 7200.0 {
        format!("{:.1} min", s / 60.0)
    } else {
        format!("{:.1} h", s / 3600.0)
    }
}

/// The text being written, a line at a time.
#[derive(Default)]
struct Text(String);

impl Text {
    /// Starts a section: a blank line, and the title if any.
    fn section(&mut self, title: Option<&str>) {
        self.line("");
        if let Some(title) = title {
            self.line(title);
        }
    }

    /// Adds a line.
    fn line(&mut self, s: impl AsRef<str>) {
        self.0.push_str(s.as_ref());
        self.0.push('\n');
    }
}

/// Opens a section over `items` (a blank line, and the title if any); false, writing nothing,
/// when there are none.
fn open<T>(t: &mut Text, items: &[T], title: Option<&str>) -> bool {
    if items.is_empty() {
        return false;
    }
    t.section(title);
    true
}

/// Writes one section of the report (nothing when the report has none).
type Section = fn(&mut Text, &PlanReport);

/// The sections in the order they are printed.
const SECTIONS: [Section; 11] = [
    heading,
    source,
    columns,
    sample_check,
    partitions,
    carried_over,
    warnings,
    checks,
    statements,
    disk,
    estimate,
];

/// The report as text.
pub fn render_text(r: &PlanReport) -> String {
    let mut t = Text::default();
    for section in SECTIONS {
        section(&mut t, r);
    }
    t.0
}

/// The verdict, the promise that nothing changed, the server, and why a run would refuse.
fn heading(t: &mut Text, r: &PlanReport) {
    let verdict = match r.verdict {
        Verdict::Ok => "OK: a run would start",
        Verdict::Warning => "WARNING: a run would start; read the warnings",
        Verdict::Blocking => "BLOCKING: a run would refuse (exit 3)",
    };
    t.line(format!("pg-hotswap plan for {} — {verdict}", r.table));
    t.line("nothing was changed: everything was tried in transactions that were rolled back");
    if let Some(server) = &r.server {
        t.line(format!("server: {server}"));
    }
    if let Some(why) = &r.refused {
        t.section(None);
        t.line(format!("REFUSED: {why}"));
    }
    if let Some(d) = &r.rewrite {
        t.section(None);
        t.line(&d.reason);
        if !d.needed {
            t.line(
                "the ALTER is applied to the table in place (--force-rewrite copies it instead)",
            );
        }
    }
}

/// The source table: rows, sizes, row identity, the shadow's and the old table's names.
fn source(t: &mut Text, r: &PlanReport) {
    let Some(s) = &r.source else { return };
    t.section(None);
    t.line(format!(
        "source: {} rows ({}), {} heap, {} indexes, {} in all; row identity {} ({})",
        s.rows,
        s.rows_basis,
        ui::bytes(s.heap_bytes),
        ui::bytes(s.index_bytes),
        ui::bytes(s.total_bytes),
        s.row_identity_index,
        s.row_identity.join(", ")
    ));
    t.line(format!(
        "shadow table: {}; the old table will be kept as {}",
        s.shadow, s.old_name
    ));
}

/// Each column of the new table and where its values come from.
fn columns(t: &mut Text, r: &PlanReport) {
    if !open(t, &r.columns, Some("Columns of the new table")) {
        return;
    }
    for c in &r.columns {
        t.line(format!("  {:<24} {}", c.column, column_origin(c)));
    }
}

/// Where a column's values come from, for people.
fn column_origin(c: &ColumnLine) -> String {
    let from = || c.from.as_deref().unwrap_or("?");
    match c.kind {
        "kept" => "kept".to_string(),
        "cast" => format!("cast from {} to {}", from(), c.to.as_deref().unwrap_or("?")),
        "renamed" => match &c.to {
            Some(t) => format!("renamed from {}, cast to {t}", from()),
            None => format!("renamed from {}", from()),
        },
        "mapped" => format!("computed as {}", c.expr.as_deref().unwrap_or("?")),
        "default" => "new column, takes its default".into(),
        "generated" => "generated, computed by the server".into(),
        "dropped" => "DROPPED — DATA LOSS: its values are not carried into the new table".into(),
        other => other.to_string(),
    }
}

/// PostgreSQL's own ALTER against the mapping on sampled rows.
fn sample_check(t: &mut Text, r: &PlanReport) {
    if let Some(s) = &r.sample_check {
        t.section(None);
        t.line(s.summary());
    }
}

/// The partitions of a partitioned new table (issue 15): bound, sampled and estimated rows;
/// the rows no partition would take.
fn partitions(t: &mut Text, r: &PlanReport) {
    let Some(p) = &r.partitions else { return };
    t.section(Some("Partitions of the new table"));
    if let Some(g) = &p.generated {
        t.line(format!("  generated: {}", g.describe()));
    }
    let counted = p.method == "whole table";
    if p.done {
        t.line(format!(
            "  rows: {} (sampled: {} rows of the table through the mapping, {})",
            if counted {
                "counted".to_string()
            } else {
                format!("estimated from a sample, scaled to {} rows", p.table_rows)
            },
            p.sampled_rows,
            p.method
        ));
    }
    let width = p.partitions.iter().map(|x| x.name.len()).max().unwrap_or(0);
    for x in &p.partitions {
        let rows = if !p.done {
            String::new()
        } else if counted {
            format!("{} rows", x.sampled_rows)
        } else {
            format!("~{} rows ({} sampled)", x.estimated_rows, x.sampled_rows)
        };
        t.line(format!("  {:<width$}  {:<48}  {rows}", x.name, x.bound));
    }
    if let Some(u) = &p.unrouted {
        t.line(format!("  NO PARTITION: {}", u.describe()));
    }
    for n in &p.notes {
        t.line(format!("  note: {n}"));
    }
}

/// `none`, or the names separated by commas.
fn list(v: &[String]) -> String {
    if v.is_empty() {
        "none".to_string()
    } else {
        v.join(", ")
    }
}

/// [`list`] of the names of named objects.
fn list_names(v: &[Named]) -> String {
    list(&v.iter().map(|i| i.name.clone()).collect::<Vec<_>>())
}

/// What the swap carries over to the new table.
fn carried_over(t: &mut Text, r: &PlanReport) {
    let Some(c) = &r.carried_over else { return };
    t.section(Some("Carried over"));
    t.line(format!(
        "  indexes ({}): {}",
        c.indexes.len(),
        list_names(&c.indexes)
    ));
    if !c.dropped_indexes.is_empty() {
        t.line(format!(
            "  dropped by the ALTER: {}",
            c.dropped_indexes.join(", ")
        ));
    }
    t.line(format!(
        "  constraints ({}): {}",
        c.constraints.len(),
        list_names(&c.constraints)
    ));
    t.line(format!(
        "  incoming foreign keys ({}): {}{}",
        c.incoming_foreign_keys.len(),
        list_names(&c.incoming_foreign_keys),
        if c.incoming_foreign_keys.is_empty() {
            ""
        } else {
            " (re-pointed NOT VALID in the swap, validated after it)"
        }
    ));
    let counted = |t: &mut Text, what: &str, v: &[String]| {
        t.line(format!("  {what} ({}): {}", v.len(), list(v)));
    };
    counted(t, "views", &c.views);
    counted(t, "triggers", &c.triggers);
    t.line(format!(
        "  sequences ({}): {}",
        c.sequences.len(),
        list(
            &c.sequences
                .iter()
                .map(|s| format!("{} ({})", s.name, s.definition))
                .collect::<Vec<_>>()
        )
    ));
    t.line(format!("  grants: {}", c.grants.len()));
    counted(t, "policies", &c.policies);
    counted(t, "publications", &c.publications);
    if !c.statistics.is_empty() {
        t.line(format!("  statistics: {}", c.statistics.join(", ")));
    }
    t.line(format!(
        "  also: replica identity {}, {}row level security, {} rule(s), {}",
        c.replica_identity,
        if c.row_level_security { "" } else { "no " },
        c.rules,
        if c.comment {
            "the table's comment"
        } else {
            "no comment"
        }
    ));
}

/// The preflight warnings, as `run` prints them.
fn warnings(t: &mut Text, r: &PlanReport) {
    if !open(t, &r.warnings, None) {
        return;
    }
    for w in &r.warnings {
        t.line(format!("warning: {w}"));
    }
}

/// The checks shared with `run`, with the details of those not ok (and of the timeouts).
fn checks(t: &mut Text, r: &PlanReport) {
    if !open(
        t,
        &r.checks,
        Some("Checks (shared with run: a blocking one makes it refuse)"),
    ) {
        return;
    }
    for c in &r.checks {
        t.line(format!(
            "  [{:<8}] {}: {}",
            c.verdict.as_str(),
            c.name,
            c.summary
        ));
        if c.verdict != Verdict::Ok || c.name == "timeouts" {
            for d in &c.details {
                t.line(format!("             - {d}"));
            }
        }
        if let Some(a) = &c.action {
            t.line(format!("             what to do: {a}"));
        }
    }
}

/// The statements phase by phase, each with its locks, repetition and note.
fn statements(t: &mut Text, r: &PlanReport) {
    if !open(t, &r.phases, Some("Statements, in order, by phase (every tool session waits at most --lock-timeout for any lock)")) {
        return;
    }
    for p in &r.phases {
        let est = p
            .estimate_secs
            .map(secs)
            .unwrap_or_else(|| "not estimated".into());
        t.line(format!(
            "  phase {}{} — estimated {est}",
            p.phase,
            if p.single_transaction {
                " (one transaction)"
            } else {
                ""
            }
        ));
        for (n, s) in p.statements.iter().enumerate() {
            statement(t, n + 1, s);
        }
    }
}

/// One numbered statement of a phase.
fn statement(t: &mut Text, n: usize, s: &Statement) {
    t.line(format!("    {n:>2}. {}", s.sql));
    for l in &s.locks {
        t.line(format!(
            "        lock {} on {}{}; waits at most {} ms{}",
            l.mode,
            l.on,
            if l.live {
                " (used by the application)"
            } else {
                ""
            },
            s.max_wait_ms,
            if s.attempts > 1 {
                format!(" per attempt, up to {} attempts", s.attempts)
            } else {
                String::new()
            }
        ));
    }
    if let Some(x) = &s.repeat {
        t.line(format!("        runs {x}"));
    }
    if let Some(x) = &s.note {
        t.line(format!("        {x}"));
    }
}

/// The disk the run needs, and the free space where knowable.
fn disk(t: &mut Text, r: &PlanReport) {
    let Some(d) = &r.disk else { return };
    t.section(Some("Disk"));
    t.line(format!(
        "  new table ~{}, its indexes ~{}, change log ~{}, WAL written ~{} (kept on disk at the peak ~{})",
        ui::bytes(d.new_table_bytes),
        ui::bytes(d.new_indexes_bytes),
        ui::bytes(d.log_bytes),
        ui::bytes(d.wal_generated_bytes),
        ui::bytes(d.wal_retained_bytes)
    ));
    t.line(format!("  needed: ~{}", ui::bytes(d.needed_bytes)));
    for f in &d.free {
        t.line(format!(
            "  free: {} on {} ({}, for {})",
            ui::bytes(f.available_bytes),
            f.mount,
            f.filesystem,
            f.path
        ));
    }
    t.line(format!("  {}", d.note));
}

/// The estimate: per phase with its basis, per index, the total with its range and
/// confidence, the worst lock waits.
fn estimate(t: &mut Text, r: &PlanReport) {
    let Some(e) = &r.estimate else { return };
    t.section(None);
    t.line(format!("Estimate (--jobs {})", e.jobs));
    for p in &r.phases {
        t.line(format!(
            "  {:<11} {:>10}  {}",
            p.phase,
            p.estimate_secs.map(secs).unwrap_or_else(|| "?".into()),
            p.basis
        ));
    }
    for i in &e.indexes {
        t.line(format!(
            "              index {}: {} (~{}, time grows as rows^{:.2})",
            i.name,
            secs(i.secs),
            ui::bytes(i.bytes),
            i.exponent
        ));
    }
    t.line(format!(
        "  total       {:>10}  (between {} and {}), confidence {}",
        secs(e.total_secs),
        secs(e.low_secs),
        secs(e.high_secs),
        e.confidence
    ));
    for x in &e.reasons {
        t.line(format!("    - {x}"));
    }
    t.line(format!(
        "  lock waits: the capture trigger and the swap each try up to --max-lock-attempts times; at worst about {} each",
        secs(e.worst_case_lock_secs)
    ));
    for w in &e.warnings {
        t.line(format!("  warning: {w}"));
    }
}
