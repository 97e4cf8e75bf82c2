//! The `privileges` check (issue 9): every privilege a run uses, checked before anything is
//! created. Blocking when one is missing, naming exactly which privilege on which object, with the
//! GRANT (or ownership change) that fixes it and who may run it.

use super::{Check, CheckInput, Verdict};
use crate::db::ident::Ident;
use crate::error::{DbContext, Result, RowExt};
use crate::rewrite::preflight::Source;
use tokio_postgres::types::Oid;
use tokio_postgres::Client;

/// The check's name (docs/plan.md).
pub(super) const NAME: &str = "privileges";

/// A privilege the run needs and the role lacks: what is missing (naming the privilege and the
/// object) and the statement that grants it, with who may run it.
struct Missing {
    what: String,
    fix: String,
}

/// Every privilege a run uses, checked before anything is created (issue 9: say exactly which
/// privilege is missing): owning the table (CREATE TRIGGER, the renames of the swap); CREATE on
/// its schema (the shadow); CREATE on the database, or USAGE and CREATE on an existing state
/// schema and SELECT/INSERT/UPDATE/DELETE on its tables; TEMPORARY on the database (replay keeps
/// each batch of keys in a temporary table); CREATE on the tablespaces of the table and its
/// indexes; REFERENCES on the tables its foreign keys point at (they are created again on the
/// shadow); owning what the swap alters (dependent views, referencing tables, publications).
/// Each missing one is named with the GRANT that fixes it.
pub(super) async fn check(client: &Client, input: &CheckInput<'_>) -> Result<Check> {
    let r = client
        .query_one(
            "SELECT r.rolsuper, pg_catalog.pg_has_role(current_user, c.relowner, 'MEMBER'), current_user::text, \
                    pg_catalog.pg_get_userbyid(c.relowner)::text, \
                    pg_catalog.has_schema_privilege(c.relnamespace, 'CREATE'), \
                    pg_catalog.has_database_privilege(current_database(), 'CREATE'), \
                    (SELECT pg_catalog.has_schema_privilege(n.oid, 'CREATE') AND pg_catalog.has_schema_privilege(n.oid, 'USAGE') \
                       FROM pg_catalog.pg_namespace n WHERE n.nspname = $2), \
                    pg_catalog.pg_has_role(current_user, 'pg_read_all_stats', 'MEMBER'), \
                    pg_catalog.has_database_privilege(current_database(), 'TEMPORARY'), \
                    current_database()::text \
               FROM pg_catalog.pg_roles r, pg_catalog.pg_class c \
              WHERE r.rolname = current_user AND c.oid = $1",
            &[&input.table_oid, &input.state_schema],
        )
        .await
        .ctx("checking privileges")?;
    let (superuser, owner, me, table_owner): (bool, bool, String, String) = (
        r.col(0, &"checking privileges")?,
        r.col(1, &"checking privileges")?,
        r.col(2, &"checking privileges")?,
        r.col(3, &"checking privileges")?,
    );
    let (schema_create, db_create, state_ok, read_stats, temp): (
        bool,
        bool,
        Option<bool>,
        bool,
        bool,
    ) = (
        r.col(4, &"checking privileges")?,
        r.col(5, &"checking privileges")?,
        r.col(6, &"checking privileges")?,
        r.col(7, &"checking privileges")?,
        r.col(8, &"checking privileges")?,
    );
    let db = Ident::new(r.col::<String>(9, &"checking privileges")?);
    let me_q = Ident::new(me.clone());
    let state = Ident::new(input.state_schema);
    let table_schema = &input.table.schema;
    let mut check = Check::new(NAME, Verdict::Ok, "");
    let mut missing: Vec<Missing> = Vec::new();
    if superuser {
        check.details.push(format!("{me:?} is a superuser"));
    } else {
        if owner {
            check.details.push(format!(
                "{me:?} owns the table (or is a member of its owner {table_owner:?}): needed for \
                 CREATE TRIGGER and for renaming it in the swap"
            ));
        } else {
            missing.push(Missing {
                what: format!(
                    "{me:?} is neither the owner of table {} ({table_owner:?}), nor a member of the owner role, \
                     nor a superuser: the capture trigger and the swap need the owner's privileges",
                    input.table.human()
                ),
                fix: format!(
                    "connect as {table_owner:?}, or GRANT {} TO {me_q} (as {table_owner:?} or a superuser)",
                    Ident::new(table_owner.clone())
                ),
            });
        }
        if !schema_create {
            missing.push(Missing {
                what: format!(
                    "no CREATE on schema {:?}: needed to create the shadow table next to the table",
                    table_schema.as_str()
                ),
                fix: format!(
                    "GRANT CREATE ON SCHEMA {table_schema} TO {me_q} (as the schema's owner or a superuser)"
                ),
            });
        }
        match state_ok {
            Some(true) => {
                check.details.push(format!(
                    "the state schema {:?} exists and is usable",
                    input.state_schema
                ));
                missing.extend(state_tables(client, input.state_schema, &me_q).await?);
            }
            Some(false) => missing.push(Missing {
                what: format!(
                    "the state schema {:?} exists but {me:?} lacks USAGE or CREATE on it: the change log \
                     and its functions are created there",
                    input.state_schema
                ),
                fix: format!(
                    "GRANT USAGE, CREATE ON SCHEMA {state} TO {me_q} (as its owner or a superuser), \
                     or pass --state-schema naming another schema"
                ),
            }),
            None if db_create => check.details.push(format!(
                "CREATE on the database: the run can create its state schema {:?}",
                input.state_schema
            )),
            None => missing.push(Missing {
                what: format!(
                    "no CREATE on the database {:?}: the run needs it to create its state schema {:?}",
                    db.as_str(),
                    input.state_schema
                ),
                fix: format!(
                    "GRANT CREATE ON DATABASE {db} TO {me_q} (as a superuser or the database's owner), \
                     or have someone who may create it: CREATE SCHEMA {state} AUTHORIZATION {me_q}, \
                     or pass --state-schema naming a schema where you have USAGE and CREATE"
                ),
            }),
        }
        if !temp {
            missing.push(Missing {
                what: format!(
                    "no TEMPORARY on the database {:?}: replay keeps each batch of keys in a temporary table",
                    db.as_str()
                ),
                fix: format!(
                    "GRANT TEMPORARY ON DATABASE {db} TO {me_q} (as a superuser or the database's owner)"
                ),
            });
        }
        if let Some(src) = input.source {
            missing.extend(tablespaces(client, src, &me_q).await?);
            missing.extend(referenced_tables(client, src, &me_q).await?);
            missing.extend(dependent_owners(client, src, &me).await?);
        }
        if !read_stats {
            check.details.push(
                "not a member of pg_read_all_stats: other sessions' states and queries are hidden, \
                 so the session checks say less"
                    .into(),
            );
        }
    }
    if missing.is_empty() {
        check.summary = if superuser {
            "superuser: every step is allowed".into()
        } else {
            "owner of the table, with what the shadow and the state schema need".into()
        };
    } else {
        check.verdict = Verdict::Blocking;
        check.summary = missing
            .iter()
            .map(|m| m.what.as_str())
            .collect::<Vec<_>>()
            .join("; ");
        check.details.extend(missing.iter().map(|m| m.what.clone()));
        check.action = Some(format!(
            "{} (docs/privileges.md lists what a run needs)",
            missing
                .iter()
                .map(|m| m.fix.as_str())
                .collect::<Vec<_>>()
                .join("; ")
        ));
    }
    Ok(check)
}

/// The state tables that exist in a usable state schema and that `me` cannot read and write.
async fn state_tables(client: &Client, schema: &str, me: &Ident) -> Result<Vec<Missing>> {
    let rows = client
        .query(
            "SELECT pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(c.relname), \
                    pg_catalog.array_to_string(pg_catalog.array_remove(ARRAY[ \
                      CASE WHEN NOT pg_catalog.has_table_privilege(c.oid, 'SELECT') THEN 'SELECT' END, \
                      CASE WHEN NOT pg_catalog.has_table_privilege(c.oid, 'INSERT') THEN 'INSERT' END, \
                      CASE WHEN NOT pg_catalog.has_table_privilege(c.oid, 'UPDATE') THEN 'UPDATE' END, \
                      CASE WHEN NOT pg_catalog.has_table_privilege(c.oid, 'DELETE') THEN 'DELETE' END], NULL), ', ') \
               FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
              WHERE n.nspname = $1 AND c.relname IN ('runs', 'chunks', 'events', 'objects') \
              ORDER BY c.relname",
            &[&schema],
        )
        .await
        .ctx("checking privileges on the state tables")?;
    let mut out = Vec::new();
    let mut names = Vec::new();
    for r in rows {
        let (name, lacking): (String, String) = (
            r.col(0, &"checking privileges on the state tables")?,
            r.col(1, &"checking privileges on the state tables")?,
        );
        if !lacking.is_empty() {
            out.push(format!("{lacking} on {name}"));
            names.push(name);
        }
    }
    if out.is_empty() {
        return Ok(Vec::new());
    }
    Ok(vec![Missing {
        what: format!(
            "the state tables of schema {schema:?} are not writable for {:?}: no {}",
            me.as_str(),
            out.join(", no ")
        ),
        fix: format!(
            "GRANT SELECT, INSERT, UPDATE, DELETE ON {} TO {me} (as their owner or a superuser), \
             or pass --state-schema naming a schema of your own",
            names.join(", ")
        ),
    }])
}

/// Tablespaces the shadow and its indexes are created in, where `me` lacks CREATE.
async fn tablespaces(client: &Client, src: &Source, me: &Ident) -> Result<Vec<Missing>> {
    let mut names: Vec<String> = src
        .table
        .tablespace
        .iter()
        .chain(src.indexes.iter().filter_map(|i| i.tablespace.as_ref()))
        .map(|t| t.as_str().to_string())
        .collect();
    names.sort();
    names.dedup();
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let rows = client
        .query(
            "SELECT t.spcname::text FROM pg_catalog.pg_tablespace t \
              WHERE t.spcname = ANY($1) AND NOT pg_catalog.has_tablespace_privilege(t.oid, 'CREATE')",
            &[&names],
        )
        .await
        .ctx("checking privileges on tablespaces")?;
    rows
        .iter()
        .map(|r| {
            let ts = Ident::new(r.col::<String>(0, &"checking privileges on tablespaces")?);
            Ok(Missing {
                what: format!(
                    "no CREATE on tablespace {:?}, where the table or one of its indexes lives and the new one is created",
                    ts.as_str()
                ),
                fix: format!("GRANT CREATE ON TABLESPACE {ts} TO {me} (as its owner or a superuser)"),
            })
        })
        .collect()
}

/// Tables the source's foreign keys point at, where `me` lacks REFERENCES (the keys are created
/// again on the shadow).
async fn referenced_tables(client: &Client, src: &Source, me: &Ident) -> Result<Vec<Missing>> {
    let oids: Vec<Oid> = src
        .constraints
        .iter()
        .filter(|c| c.kind == "f")
        .map(|c| c.references)
        .collect();
    if oids.is_empty() {
        return Ok(Vec::new());
    }
    let rows = client
        .query(
            "SELECT pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(c.relname) \
               FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
              WHERE c.oid = ANY($1) AND NOT pg_catalog.has_table_privilege(c.oid, 'REFERENCES')",
            &[&oids],
        )
        .await
        .ctx("checking REFERENCES on the tables foreign keys point at")?;
    rows
        .iter()
        .map(|r| {
            let t: String = r.col(0, &"checking REFERENCES on the tables foreign keys point at")?;
            Ok(Missing {
                what: format!(
                    "no REFERENCES on {t}, which a foreign key of the table points at (it is created again on the new table)"
                ),
                fix: format!("GRANT REFERENCES ON {t} TO {me} (as its owner or a superuser)"),
            })
        })
        .collect()
}

/// Objects the swap alters that `me` must own: tables whose foreign keys point at the table,
/// dependent views (re-created), publications (membership moved).
async fn dependent_owners(client: &Client, src: &Source, me: &str) -> Result<Vec<Missing>> {
    let mut oids: Vec<Oid> = src.incoming.iter().map(|f| f.table_oid).collect();
    oids.extend(src.views.iter().map(|v| v.oid));
    let mut missing = Vec::new();
    if !oids.is_empty() {
        let rows = client
            .query(
                "SELECT c.oid::regclass::text FROM pg_catalog.pg_class c \
                  WHERE c.oid = ANY($1) AND NOT pg_catalog.pg_has_role(current_user, c.relowner, 'MEMBER')",
                &[&oids],
            )
            .await
            .ctx("checking ownership of dependent objects")?;
        for r in rows {
            let name: String = r.col(0, &"checking ownership of dependent objects")?;
            missing.push(Missing {
                what: format!(
                    "{me:?} does not own {name} (a view over the table or a table whose foreign key points at it), \
                     which the swap alters"
                ),
                fix: format!(
                    "connect as the owner of {name} if it is the table's owner too, or ALTER TABLE {name} OWNER TO {} \
                     (views: ALTER VIEW), as its owner or a superuser",
                    Ident::new(me)
                ),
            });
        }
    }
    let pubs: Vec<String> = src
        .publications
        .iter()
        .map(|p| p.name.as_str().to_string())
        .collect();
    if !pubs.is_empty() {
        let rows = client
            .query(
                "SELECT p.pubname::text FROM pg_catalog.pg_publication p \
                  WHERE p.pubname = ANY($1) AND NOT pg_catalog.pg_has_role(current_user, p.pubowner, 'MEMBER')",
                &[&pubs],
            )
            .await
            .ctx("checking ownership of publications")?;
        for r in rows {
            let publication =
                Ident::new(r.col::<String>(0, &"checking ownership of publications")?);
            missing.push(Missing {
                what: format!(
                    "{me:?} does not own publication {:?}, whose membership the swap moves to the new table",
                    publication.as_str()
                ),
                fix: format!(
                    "ALTER PUBLICATION {publication} OWNER TO {} (as its owner or a superuser)",
                    Ident::new(me)
                ),
            });
        }
    }
    Ok(missing)
}
