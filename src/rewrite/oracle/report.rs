//! What the sample oracle says: the one-line summary of a [`SampleCheck`] for `run` and `plan`,
//! and the refusals (exit 3, nothing created) for rows where the mapping and PostgreSQL's ALTER
//! disagree, an ALTER that fails on the rows, and a mapping that fails where the ALTER does not.
//! Each says what was changed (nothing) and what to do next.

use super::compare::{shown, Diff};
use crate::db::ident::QualifiedName;
use crate::error::Error;
use crate::rewrite::plan::{ColumnSource, Plan, SampleCheck};

impl SampleCheck {
    /// One line for `run`.
    pub fn summary(&self) -> String {
        let ms = self.millis.round();
        if !self.done {
            return format!(
                "sample check NOT DONE ({ms} ms): {}; the mapping is not checked against PostgreSQL's own ALTER",
                self.notes.join("; ")
            );
        }
        if self.rows == 0 {
            return format!("sample check: the table has no rows, nothing to compare ({ms} ms)");
        }
        let mut s = format!(
            "sample check: PostgreSQL's own ALTER and the mapping agree on {} sampled row(s)",
            self.rows
        );
        if self.edge_rows > 0 {
            s.push_str(&format!(
                " and {} row(s) with {} NULL(s) put in",
                self.edge_rows, self.edge_nulls
            ));
        }
        s.push_str(&format!(
            ", {} column(s) compared ({ms} ms)",
            self.compared.len()
        ));
        if !self.skipped.is_empty() {
            // Grouped by reason, in the order the reasons first come.
            let mut groups: Vec<(&str, Vec<&str>)> = Vec::new();
            for c in &self.skipped {
                match groups.iter_mut().find(|(r, _)| *r == c.reason) {
                    Some((_, cols)) => cols.push(&c.column),
                    None => groups.push((&c.reason, vec![&c.column])),
                }
            }
            let list: Vec<String> = groups
                .iter()
                .map(|(reason, cols)| format!("{} ({reason})", cols.join(", ")))
                .collect();
            s.push_str(&format!("; not compared: {}", list.join("; ")));
        }
        for n in &self.notes {
            s.push_str(&format!("; {n}"));
        }
        s
    }
}

fn nothing_changed(plan: &Plan) -> String {
    format!(
        "nothing was changed; {} is untouched (the check ran on copies of sampled rows, rolled back)",
        plan.source.human()
    )
}

/// "on 3 rows sampled from app.t" / "on 2 rows sampled from app.t with NULL put into a, b".
fn rows_phrase(plan: &Plan, rows: u64, nulled: Option<&str>) -> String {
    let mut s = format!("on {rows} row(s) sampled from {}", plan.source.human());
    if let Some(cols) = nulled {
        s.push_str(&format!(" with NULL put into {cols}"));
    }
    s
}

/// The refusal for rows where the mapping and PostgreSQL's ALTER disagree.
pub(super) fn differ(plan: &Plan, diffs: &[Diff], rows: u64, nulled: Option<&str>) -> Error {
    let mut msg = format!(
        "the column mapping of {} does not give the values PostgreSQL's own ALTER TABLE gives, {}:",
        plan.source.human(),
        rows_phrase(plan, rows, nulled)
    );
    for d in diffs.iter().take(5) {
        msg.push_str(&format!(
            "\n    column {}, row {}: PostgreSQL gives {}, the mapping gives {} ({} of {rows} row(s) differ)",
            d.column.as_str(),
            d.key,
            shown(&d.postgres),
            shown(&d.mapped),
            d.rows
        ));
    }
    if diffs.len() > 5 {
        msg.push_str(&format!("\n    and {} more column(s)", diffs.len() - 5));
    }
    let user_mapped: Vec<&str> = diffs
        .iter()
        .filter(|d| {
            plan.columns
                .iter()
                .any(|c| c.column == d.column && matches!(c.source, ColumnSource::Mapped { .. }))
        })
        .map(|d| d.column.as_str())
        .collect();
    let next = if !user_mapped.is_empty() {
        format!(
            "the --map for {} contradicts the ALTER, which gives an existing column its old value \
             (cast, or its USING expression); leave the --map out, and to change the values say it \
             in the ALTER: ALTER COLUMN <col> TYPE <type> USING <expr>",
            user_mapped.join(", ")
        )
    } else {
        let first = diffs.first().map(|d| d.column.as_str()).unwrap_or("col");
        format!(
            "pg-hotswap computes the column differently from PostgreSQL: please report it (the \
             table's definition and the --alter); meanwhile --map {first}=<expr> says how the \
             column is computed, and this check confirms it before anything is copied"
        )
    };
    Error::refused(msg)
        .with_state(nothing_changed(plan))
        .with_next(next)
}

/// The refusal for an ALTER that fails on the sampled rows.
pub(super) fn alter_fails(plan: &Plan, clone: &QualifiedName, rows: u64, e: &Error) -> Error {
    Error::refused(format!(
        "PostgreSQL's own ALTER TABLE fails {} (copied to the rolled-back table {}), so it would \
         fail on the table too: {}",
        rows_phrase(plan, rows, None),
        clone.name.as_str(),
        e.message()
    ))
    .with_state(nothing_changed(plan))
    .with_next(
        "fix the rows or the --alter (UPDATE the NULLs before SET NOT NULL, a USING that \
         handles every value, a CHECK the rows meet), then run again",
    )
}

/// The refusal for a mapping that fails on rows where the ALTER succeeds: the copy would stop
/// there.
pub(super) fn mapping_fails(plan: &Plan, rows: u64, nulled: Option<&str>, e: &Error) -> Error {
    let maps: Vec<&str> = plan
        .columns
        .iter()
        .filter(|c| matches!(c.source, ColumnSource::Mapped { .. }))
        .map(|c| c.column.as_str())
        .collect();
    let next = if maps.is_empty() {
        "please report it (the table's definition and the --alter)".to_string()
    } else {
        format!(
            "fix the --map expression of {} (SQL over the old row; it must work on every row), \
             or report it if the --map is not the cause",
            maps.join(", ")
        )
    };
    Error::refused(format!(
        "the column mapping of {} fails {} where PostgreSQL's own ALTER TABLE succeeds, so the \
         copy would stop on such a row: {}",
        plan.source.human(),
        rows_phrase(plan, rows, nulled),
        e.message()
    ))
    .with_state(nothing_changed(plan))
    .with_next(next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rewrite::plan::SkippedColumn;

    #[test]
    fn values_are_shown_cut() {
        assert_eq!(shown(&None), "NULL");
        assert_eq!(shown(&Some("125".into())), "125");
        let long = "ä".repeat(150);
        let s = shown(&Some(long));
        assert!(s.ends_with("...") && s.chars().count() == 103);
    }

    #[test]
    fn summary_says_what_was_compared_and_skipped() {
        let r = SampleCheck {
            done: true,
            rows: 3,
            edge_rows: 1,
            edge_nulls: 2,
            compared: vec!["id".into(), "amount".into()],
            skipped: vec![SkippedColumn {
                column: "r".into(),
                reason: "volatile default".into(),
            }],
            notes: Vec::new(),
            millis: 12.4,
        };
        let s = r.summary();
        assert!(s.contains("agree on 3 sampled row(s)"), "{s}");
        assert!(s.contains("1 row(s) with 2 NULL(s)"), "{s}");
        assert!(s.contains("2 column(s) compared (12 ms)"), "{s}");
        assert!(s.contains("not compared: r (volatile default)"), "{s}");
        let not = SampleCheck {
            notes: vec!["it failed: x".into()],
            ..Default::default()
        };
        assert!(not.summary().starts_with("sample check NOT DONE"));
    }
}
