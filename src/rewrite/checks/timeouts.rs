//! The `timeouts` check: timeouts new sessions of this role start with. The tool sets
//! statement_timeout and idle_in_transaction_session_timeout to 0 in its own sessions
//! (`conn::connect`); idle_session_timeout and transaction_timeout would close them: a warning.

use super::{Check, CheckInput, Verdict};
use crate::error::{DbContext, Result, RowExt};
use tokio_postgres::Client;

/// The check's name (docs/plan.md).
pub(super) const NAME: &str = "timeouts";

/// Timeouts set for new sessions of this role in this database (`reset_val`: the value a new
/// session starts with, after role and database settings).
pub(super) async fn check(client: &Client, _input: &CheckInput<'_>) -> Result<Check> {
    let rows = client
        .query(
            "SELECT s.name::text, s.reset_val, COALESCE(s.unit, ''), \
                    (SELECT string_agg(CASE WHEN d.setdatabase <> 0 AND d.setrole <> 0 THEN 'role in database' \
                                            WHEN d.setdatabase <> 0 THEN 'database' ELSE 'role' END, ', ') \
                       FROM pg_catalog.pg_db_role_setting d, unnest(d.setconfig) AS c(cfg) \
                      WHERE d.setdatabase IN (0, (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database())) \
                        AND d.setrole IN (0, (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = current_user)) \
                        AND split_part(c.cfg, '=', 1) = s.name) \
               FROM pg_catalog.pg_settings s \
              WHERE s.name IN ('statement_timeout', 'idle_in_transaction_session_timeout', \
                               'idle_session_timeout', 'transaction_timeout') \
              ORDER BY 1",
            &[],
        )
        .await
        .ctx("reading timeout settings")?;
    let mut check = Check::new(NAME, Verdict::Ok, "");
    let mut overridden = Vec::new();
    let mut not_overridden = Vec::new();
    for r in &rows {
        let name: String = r.col(0, &"reading timeout settings")?;
        let val: String = r.col(1, &"reading timeout settings")?;
        let unit: String = r.col(2, &"reading timeout settings")?;
        let from: Option<String> = r.col(3, &"reading timeout settings")?;
        if val == "0" {
            continue;
        }
        let from = from
            .map(|f| format!("set on the {f}"))
            .unwrap_or_else(|| "set in the server configuration".into());
        let line = format!("{name} = {} ({from})", setting_text(&val, &unit));
        // conn::connect sets these two to 0 in every tool session.
        if name == "statement_timeout" || name == "idle_in_transaction_session_timeout" {
            overridden.push(line);
        } else {
            not_overridden.push(line);
        }
    }
    for l in &overridden {
        check.details.push(format!(
            "{l}: pg-hotswap sets it to 0 in its own sessions, so it does not kill them"
        ));
    }
    for l in &not_overridden {
        check.details.push(format!(
            "{l}: pg-hotswap does not override it; its control session is idle during the copy and \
             its index builds are long transactions"
        ));
    }
    if !not_overridden.is_empty() {
        check.verdict = Verdict::Warning;
        check.summary = format!(
            "{} would close the tool's sessions",
            not_overridden.join(", ")
        );
        check.action = Some(
            "ALTER ROLE <the tool's role> SET idle_session_timeout = 0 (and transaction_timeout = 0)"
                .into(),
        );
    } else if !overridden.is_empty() {
        check.summary = format!(
            "{}; overridden in the tool's sessions",
            overridden.join(", ")
        );
    } else {
        check.summary = "no statement or idle timeouts are set".into();
    }
    Ok(check)
}

/// A time setting as people write it: `1s`, `1h`, `1500ms`.
pub fn setting_text(val: &str, unit: &str) -> String {
    let Ok(n) = val.parse::<i64>() else {
        return format!("{val}{unit}");
    };
    let ms = match unit {
        "ms" => n,
        "s" => n * 1000,
        "min" => n * 60_000,
        _ => return format!("{val}{unit}"),
    };
    for (div, u) in [(3_600_000, "h"), (60_000, "min"), (1000, "s")] {
        if ms % div == 0 {
            return format!("{}{u}", ms / div);
        }
    }
    format!("{ms}ms")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_shown_as_people_write_them() {
        assert_eq!(setting_text("1000", "ms"), "1s");
        assert_eq!(setting_text("3600000", "ms"), "1h");
        assert_eq!(setting_text("1500", "ms"), "1500ms");
        assert_eq!(setting_text("2", "min"), "2min");
    }
}
