//! Who may do what with the table: its privileges (`sql/grants.sql`, rendered back as GRANT
//! statements) and its row-security policies (`sql/policies.sql`). Read by OID.

use crate::db::ident::{Ident, QualifiedName};
use crate::error::{DbContext, Result, RowExt};
use tokio_postgres::types::Oid;
use tokio_postgres::GenericClient;

#[derive(Clone, Debug)]
pub struct Grant {
    pub privilege: String,
    pub column: Option<Ident>,
    /// Already quoted, or `PUBLIC`.
    pub grantee: String,
    pub grantable: bool,
}

impl Grant {
    /// `GRANT ... ON <target> TO ...`.
    pub fn sql(&self, target: &QualifiedName) -> String {
        let cols = self
            .column
            .as_ref()
            .map(|c| format!(" ({c})"))
            .unwrap_or_default();
        format!(
            "GRANT {}{cols} ON {target} TO {}{}",
            self.privilege,
            self.grantee,
            if self.grantable {
                " WITH GRANT OPTION"
            } else {
                ""
            }
        )
    }
}

#[derive(Clone, Debug)]
pub struct Policy {
    pub name: Ident,
    pub kind: String,
    pub command: String,
    pub roles: String,
    pub using_expr: Option<String>,
    pub check_expr: Option<String>,
}

impl Policy {
    pub fn sql(&self, target: &QualifiedName) -> String {
        let mut s = format!(
            "CREATE POLICY {} ON {target} AS {} FOR {} TO {}",
            self.name, self.kind, self.command, self.roles
        );
        if let Some(u) = &self.using_expr {
            s.push_str(&format!(" USING ({u})"));
        }
        if let Some(c) = &self.check_expr {
            s.push_str(&format!(" WITH CHECK ({c})"));
        }
        s
    }
}

pub async fn grants(client: &impl GenericClient, oid: Oid) -> Result<Vec<Grant>> {
    Ok(grants_of(client, &[oid])
        .await?
        .into_iter()
        .next()
        .unwrap_or_default())
}

/// The privileges of each relation in `oids`, in the same order, read in one statement.
pub async fn grants_of(client: &impl GenericClient, oids: &[Oid]) -> Result<Vec<Vec<Grant>>> {
    let what = if let [one] = oids {
        format!("reading the privileges on relation oid {one}")
    } else {
        format!("reading the privileges on {} relations", oids.len())
    };
    let rows = client
        .query(include_str!("../../../sql/grants.sql"), &[&oids])
        .await
        .ctx(&what)?;
    let mut out: Vec<Vec<Grant>> = vec![Vec::new(); oids.len()];
    for r in &rows {
        let rel: Oid = r.col(4, &what)?;
        let grant = Grant {
            privilege: r.col(0, &what)?,
            column: r.col::<Option<String>>(1, &what)?.map(Ident::new),
            grantee: r.col(2, &what)?,
            grantable: r.col(3, &what)?,
        };
        for (i, _) in oids.iter().enumerate().filter(|(_, o)| **o == rel) {
            out[i].push(grant.clone());
        }
    }
    Ok(out)
}

pub async fn policies(client: &impl GenericClient, oid: Oid) -> Result<Vec<Policy>> {
    let rows = client
        .query(include_str!("../../../sql/policies.sql"), &[&oid])
        .await
        .ctx(format_args!("reading the policies of table oid {oid}"))?;
    let what = format!("reading the policies of table oid {oid}");
    rows.iter()
        .map(|r| {
            Ok(Policy {
                name: Ident::new(r.col::<String>(0, &what)?),
                kind: r.col(1, &what)?,
                command: r.col(2, &what)?,
                roles: r.col(3, &what)?,
                using_expr: r.col(4, &what)?,
                check_expr: r.col(5, &what)?,
            })
        })
        .collect()
}
