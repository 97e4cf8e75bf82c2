//! Privileges on the tool's own objects: nobody but their owner may use them.
//!
//! `REVOKE ... FROM PUBLIC` is not enough. Default privileges (`ALTER DEFAULT PRIVILEGES ...
//! GRANT ALL ON TABLES TO app`, as managed services set up for their API roles, globally or in
//! the table's schema) grant every new table, sequence and function of the creating role to other
//! roles. Left alone, the application role could read and write the change log, call the capture
//! function, or write into the shadow during the run, and would keep on the new table privileges
//! it never had on the old one. So right after creating them, in the same transaction, every
//! privilege that anyone but the owner holds on the shadow (and the sequences it owns), on the
//! change log and on the trigger functions is revoked (DESIGN.md, "Application roles keep
//! writing": grant nothing on the tool's objects; issue 9). The swap then grants exactly the old
//! table's privileges. The state schema does the same for its own tables when it is created
//! (sql/state_schema.sql).

use crate::db::ident::QualifiedName;
use crate::error::{DbContext, Result, RowExt};
use tokio_postgres::GenericClient;

/// One of the tool's objects whose privileges are kept to its owner.
#[derive(Clone, Copy, Debug)]
pub enum Object<'a> {
    /// A table, with the sequences it owns (identity and serial columns).
    Table(&'a QualifiedName),
    /// A function without arguments (the capture trigger functions).
    Function(&'a QualifiedName),
}

/// Revokes every privilege anyone but the owner (PUBLIC included) holds on `objects`. Returns the
/// statements it ran, for tests and messages; none when nobody else holds anything.
pub async fn keep_to_owner(
    client: &impl GenericClient,
    objects: &[Object<'_>],
) -> Result<Vec<String>> {
    let mut stmts = Vec::new();
    for object in objects {
        let what = match object {
            Object::Table(t) => format!("reading the privileges on {}", t.human()),
            Object::Function(f) => format!("reading the privileges on {}()", f.human()),
        };
        let rows = match object {
            Object::Table(t) => client
                .query(
                    include_str!("../../sql/foreign_grants_relation.sql"),
                    &[&t.to_string()],
                )
                .await
                .ctx(&what)?,
            Object::Function(f) => client
                .query(
                    include_str!("../../sql/foreign_grants_function.sql"),
                    &[&format!("{f}()")],
                )
                .await
                .ctx(&what)?,
        };
        for r in rows {
            let (kind, name, grantees): (String, String, String) =
                (r.col(0, &what)?, r.col(1, &what)?, r.col(2, &what)?);
            stmts.push(format!("REVOKE ALL ON {kind} {name} FROM {grantees}"));
        }
    }
    for s in &stmts {
        client.batch_execute(s).await.ctx(format_args!(
            "revoking what default privileges granted: {s}"
        ))?;
    }
    Ok(stmts)
}

#[cfg(test)]
mod tests {
    /// The state schema's name is pasted into sql/state_schema.sql, quoted. A quoted name may
    /// hold a newline: in a `--` comment it would end the comment and the rest of the name would
    /// run as SQL. So the placeholder appears only in code, never after `--`.
    #[test]
    fn the_state_schema_placeholder_is_never_in_a_comment() {
        for (n, line) in include_str!("../../sql/state_schema.sql")
            .lines()
            .enumerate()
        {
            if let Some(at) = line.find("--") {
                assert!(
                    !line[at..].contains("@schema@"),
                    "sql/state_schema.sql line {}: the placeholder in a comment",
                    n + 1
                );
            }
        }
    }
}
