//! `plan`'s report as text for people.

use super::report::PlanReport;
use crate::output::ui;
use crate::rewrite::checks::Verdict;

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

/// The report as text.
pub fn render_text(r: &PlanReport) -> String {
    let mut o = String::new();
    let mut line = |s: String| {
        o.push_str(&s);
        o.push('\n');
    };
    let verdict = match r.verdict {
        Verdict::Ok => "OK: a run would start",
        Verdict::Warning => "WARNING: a run would start; read the warnings",
        Verdict::Blocking => "BLOCKING: a run would refuse (exit 3)",
    };
    line(format!("pg-hotswap plan for {} — {verdict}", r.table));
    line("nothing was changed: everything was tried in transactions that were rolled back".into());
    if let Some(server) = &r.server {
        line(format!("server: {server}"));
    }
    if let Some(why) = &r.refused {
        line(String::new());
        line(format!("REFUSED: {why}"));
    }
    if let Some(s) = &r.source {
        line(String::new());
        line(format!(
            "source: {} rows ({}), {} heap, {} indexes, {} in all; row identity {} ({})",
            s.rows,
            s.rows_basis,
            ui::bytes(s.heap_bytes),
            ui::bytes(s.index_bytes),
            ui::bytes(s.total_bytes),
            s.row_identity_index,
            s.row_identity.join(", ")
        ));
        line(format!(
            "shadow table: {}; the old table will be kept as {}",
            s.shadow, s.old_name
        ));
    }
    if !r.columns.is_empty() {
        line(String::new());
        line("Columns of the new table".into());
        for c in &r.columns {
            let how = match c.kind {
                "kept" => "kept".to_string(),
                "cast" => format!(
                    "cast from {} to {}",
                    c.from.as_deref().unwrap_or("?"),
                    c.to.as_deref().unwrap_or("?")
                ),
                "renamed" => match &c.to {
                    Some(t) => format!(
                        "renamed from {}, cast to {t}",
                        c.from.as_deref().unwrap_or("?")
                    ),
                    None => format!("renamed from {}", c.from.as_deref().unwrap_or("?")),
                },
                "mapped" => format!("computed as {}", c.expr.as_deref().unwrap_or("?")),
                "default" => "new column, takes its default".into(),
                "generated" => "generated, computed by the server".into(),
                "dropped" => {
                    "DROPPED — DATA LOSS: its values are not carried into the new table".into()
                }
                other => other.to_string(),
            };
            line(format!("  {:<24} {how}", c.column));
        }
    }
    if let Some(s) = &r.sample_check {
        line(String::new());
        line(s.summary());
    }
    if let Some(c) = &r.carried_over {
        line(String::new());
        line("Carried over".into());
        let list = |v: &[String]| {
            if v.is_empty() {
                "none".to_string()
            } else {
                v.join(", ")
            }
        };
        line(format!(
            "  indexes ({}): {}",
            c.indexes.len(),
            list(&c.indexes.iter().map(|i| i.name.clone()).collect::<Vec<_>>())
        ));
        if !c.dropped_indexes.is_empty() {
            line(format!(
                "  dropped by the ALTER: {}",
                c.dropped_indexes.join(", ")
            ));
        }
        line(format!(
            "  constraints ({}): {}",
            c.constraints.len(),
            list(
                &c.constraints
                    .iter()
                    .map(|i| i.name.clone())
                    .collect::<Vec<_>>()
            )
        ));
        line(format!(
            "  incoming foreign keys ({}): {}{}",
            c.incoming_foreign_keys.len(),
            list(
                &c.incoming_foreign_keys
                    .iter()
                    .map(|i| i.name.clone())
                    .collect::<Vec<_>>()
            ),
            if c.incoming_foreign_keys.is_empty() {
                ""
            } else {
                " (re-pointed NOT VALID in the swap, validated after it)"
            }
        ));
        line(format!("  views ({}): {}", c.views.len(), list(&c.views)));
        line(format!(
            "  triggers ({}): {}",
            c.triggers.len(),
            list(&c.triggers)
        ));
        line(format!(
            "  sequences ({}): {}",
            c.sequences.len(),
            list(
                &c.sequences
                    .iter()
                    .map(|s| format!("{} ({})", s.name, s.definition))
                    .collect::<Vec<_>>()
            )
        ));
        line(format!("  grants: {}", c.grants.len()));
        line(format!(
            "  policies ({}): {}",
            c.policies.len(),
            list(&c.policies)
        ));
        line(format!(
            "  publications ({}): {}",
            c.publications.len(),
            list(&c.publications)
        ));
        if !c.statistics.is_empty() {
            line(format!("  statistics: {}", c.statistics.join(", ")));
        }
        line(format!(
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
    if !r.warnings.is_empty() {
        line(String::new());
        for w in &r.warnings {
            line(format!("warning: {w}"));
        }
    }
    if !r.checks.is_empty() {
        line(String::new());
        line("Checks (shared with run: a blocking one makes it refuse)".into());
        for c in &r.checks {
            line(format!(
                "  [{:<8}] {}: {}",
                c.verdict.as_str(),
                c.name,
                c.summary
            ));
            if c.verdict != Verdict::Ok || c.name == "timeouts" {
                for d in &c.details {
                    line(format!("             - {d}"));
                }
            }
            if let Some(a) = &c.action {
                line(format!("             what to do: {a}"));
            }
        }
    }
    if !r.phases.is_empty() {
        line(String::new());
        line("Statements, in order, by phase (every tool session waits at most --lock-timeout for any lock)".into());
        for p in &r.phases {
            let est = p
                .estimate_secs
                .map(secs)
                .unwrap_or_else(|| "not estimated".into());
            line(format!(
                "  phase {}{} — estimated {est}",
                p.phase,
                if p.single_transaction {
                    " (one transaction)"
                } else {
                    ""
                }
            ));
            for (n, s) in p.statements.iter().enumerate() {
                line(format!("    {:>2}. {}", n + 1, s.sql));
                for l in &s.locks {
                    line(format!(
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
                    line(format!("        runs {x}"));
                }
                if let Some(x) = &s.note {
                    line(format!("        {x}"));
                }
            }
        }
    }
    if let Some(d) = &r.disk {
        line(String::new());
        line("Disk".into());
        line(format!(
            "  new table ~{}, its indexes ~{}, change log ~{}, WAL written ~{} (kept on disk at the peak ~{})",
            ui::bytes(d.new_table_bytes),
            ui::bytes(d.new_indexes_bytes),
            ui::bytes(d.log_bytes),
            ui::bytes(d.wal_generated_bytes),
            ui::bytes(d.wal_retained_bytes)
        ));
        line(format!("  needed: ~{}", ui::bytes(d.needed_bytes)));
        for f in &d.free {
            line(format!(
                "  free: {} on {} ({}, for {})",
                ui::bytes(f.available_bytes),
                f.mount,
                f.filesystem,
                f.path
            ));
        }
        line(format!("  {}", d.note));
    }
    if let Some(e) = &r.estimate {
        line(String::new());
        line(format!("Estimate (--jobs {})", e.jobs));
        for p in &r.phases {
            line(format!(
                "  {:<11} {:>10}  {}",
                p.phase,
                p.estimate_secs.map(secs).unwrap_or_else(|| "?".into()),
                p.basis
            ));
        }
        for i in &e.indexes {
            line(format!(
                "              index {}: {} (~{}, time grows as rows^{:.2})",
                i.name,
                secs(i.secs),
                ui::bytes(i.bytes),
                i.exponent
            ));
        }
        line(format!(
            "  total       {:>10}  (between {} and {}), confidence {}",
            secs(e.total_secs),
            secs(e.low_secs),
            secs(e.high_secs),
            e.confidence
        ));
        for x in &e.reasons {
            line(format!("    - {x}"));
        }
        line(format!(
            "  lock waits: the capture trigger and the swap each try up to --max-lock-attempts times; at worst about {} each",
            secs(e.worst_case_lock_secs)
        ));
        for w in &e.warnings {
            line(format!("  warning: {w}"));
        }
    }
    o
}
