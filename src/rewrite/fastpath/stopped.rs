//! What an in-place run that stopped part-way (killed, or ended by a crash) leaves on the table,
//! and its removal by `abort`: the helper checks `hotswap_not_null_N`, the constraints it added
//! NOT VALID and had not validated yet, and the unique indexes it built for a constraint and had
//! not attached. Statements of the ALTER that had committed stay: PostgreSQL has no undo for
//! them, and `abort` says so instead of "the table is as it was" (a fresh tester, session 14:
//! after a kill during a VALIDATE, `abort` said so while a helper check kept failing the
//! application's inserts of NULLs).
//!
//! Invariant kept: every statement runs under the lock rule (`--lock-timeout` per attempt,
//! `--max-lock-attempts`).

use crate::db::ident::{Ident, QualifiedName};
use crate::db::locking::{self, LockPolicy};
use crate::error::{DbContext, Result, RowExt};
use crate::rewrite::step::Step;
use tokio_postgres::Client;

/// Removes what the in-place `statements` of a stopped run left on `table` (oid `oid`); returns
/// what was removed, for the message.
pub async fn remove_leftovers(
    client: &Client,
    policy: &LockPolicy,
    oid: u32,
    table: &QualifiedName,
    statements: &[String],
) -> Result<Vec<String>> {
    let what = "finding what the stopped in-place run left";
    client
        .batch_execute(&format!(
            "SET lock_timeout = '{}'",
            crate::db::ident::pg_millis(policy.timeout)
        ))
        .await
        .ctx(what)?;
    let validations: Vec<String> = statements
        .iter()
        .filter_map(|s| after(s, &format!("ALTER TABLE {table} VALIDATE CONSTRAINT ")))
        .collect();
    // Only constraints the run itself adds and validates, its helpers among them (a user's
    // constraint of a similar name, or one the ALTER only validates, is not the run's: a fresh
    // tester, session 14): those still NOT VALID, and the helpers even validated, since the
    // step that sets NOT NULL and drops them did not commit.
    let added: Vec<String> = statements
        .iter()
        .flat_map(|s| s.split("ADD CONSTRAINT ").skip(1))
        .filter_map(|part| after(part, ""))
        .collect();
    let validations: Vec<String> = validations
        .into_iter()
        .filter(|v| added.contains(v))
        .collect();
    let helpers: Vec<String> = added
        .iter()
        .filter(|n| n.starts_with("hotswap_not_null_"))
        .cloned()
        .collect();
    let drop: Vec<String> = client
        .query(
            "SELECT conname::text FROM pg_catalog.pg_constraint \
              WHERE conrelid = $1 AND conname = ANY($2) \
                AND (NOT convalidated OR conname = ANY($3))",
            &[&oid, &validations, &helpers],
        )
        .await
        .ctx(what)?
        .iter()
        .map(|r| r.col(0, &what))
        .collect::<Result<_>>()?;
    let mut removed = Vec::new();
    if !drop.is_empty() {
        let parts: Vec<String> = drop
            .iter()
            .map(|c| format!("DROP CONSTRAINT IF EXISTS {}", Ident::new(c.as_str())))
            .collect();
        let sql = format!("ALTER TABLE {table} {}", parts.join(", "));
        let what = format!(
            "removing the stopped run's constraints from {}",
            table.human()
        );
        locking::retry(policy, &what, |_| async {
            client.batch_execute(&sql).await.ctx(&what)
        })
        .await?;
        removed.extend(drop.iter().map(|c| format!("constraint {c}")));
    }
    // Unique indexes built for a constraint and not attached to it.
    let built: Vec<String> = statements
        .iter()
        .filter_map(|s| after(s, "CREATE UNIQUE INDEX CONCURRENTLY "))
        .collect();
    for name in built {
        let unattached: bool = client
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_index i \
                   JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid \
                  WHERE i.indrelid = $1 AND c.relname = $2 \
                    AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint k \
                                     WHERE k.conindid = i.indexrelid AND k.conrelid = $1))",
                &[&oid, &name],
            )
            .await
            .ctx(what)?
            .col(0, &what)?;
        if !unattached {
            continue;
        }
        let drop = Step::new(
            format!(
                "DROP INDEX CONCURRENTLY IF EXISTS {}",
                table.sibling(name.as_str())
            ),
            format!("removing the stopped run's index {name}"),
        );
        super::apply::drop_index(client, policy, &drop).await?;
        removed.push(format!("index {name}"));
    }
    Ok(removed)
}

/// The message for an aborted run that applied its ALTER in place.
pub fn aborted_message(run: i64, table: &str, removed: &[String], statements: &[String]) -> String {
    let removed = if removed.is_empty() {
        String::new()
    } else {
        format!("removed what it left half-done: {}; ", removed.join(", "))
    };
    format!(
        "aborted run {run}, which was applying its ALTER to {table} in place (no rewrite): \
         {removed}of the statements it was running, those that had committed stay applied, \
         since PostgreSQL has no undo for them; compare {table} with them: {}",
        statements.join("; ")
    )
}

/// The identifier that follows `prefix` at the start of `sql` (quoted as `Ident` prints it),
/// unquoted.
fn after(sql: &str, prefix: &str) -> Option<String> {
    let rest = sql.strip_prefix(prefix)?;
    let rest = rest.strip_prefix('"')?;
    let mut name = String::new();
    let mut chars = rest.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '"' {
            if chars.peek() == Some(&'"') {
                chars.next();
                name.push('"');
            } else {
                return Some(name);
            }
        } else {
            name.push(c);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::after;

    #[test]
    fn names_are_read_back_as_quoted() {
        assert_eq!(
            after(
                r#"CREATE UNIQUE INDEX CONCURRENTLY "a ""b"" c" ON "s"."t" USING btree (x)"#,
                "CREATE UNIQUE INDEX CONCURRENTLY "
            )
            .as_deref(),
            Some(r#"a "b" c"#)
        );
        assert_eq!(
            after("DROP TABLE x", "CREATE UNIQUE INDEX CONCURRENTLY "),
            None
        );
    }
}
