//! The `publications` check: publications that would publish the tool's own objects (issue 13,
//! input 7), a preflight check shared by `run` and `plan` (listed in the registry, `checks::CHECKS`).
//!
//! Invariant kept here (DESIGN.md): the tool's objects are never published to a subscriber that
//! lacks them. A run creates tables a subscriber does not have: the state tables and the change
//! log in the state schema, and the shadow `<table>_new` in the table's schema. A publication
//! `FOR ALL TABLES`, or `FOR TABLES IN SCHEMA` naming one of those two schemas, publishes their
//! rows as soon as they are written; the subscriber's apply worker then fails over and over
//! ("logical replication target relation hotswap.runs does not exist") and the subscription
//! stops replicating the whole database. A publication of a table list is safe: the tool's
//! objects are not in it, and the swap moves the table's membership to the new table.
//!
//! PostgreSQL 15 to 18 cannot exclude a table from `FOR ALL TABLES`, and a schema publication
//! covers every table created in the schema, so where such a publication covers the tool's
//! objects they cannot be kept out. What matters is whether anybody consumes it: a publication
//! is read only through a logical replication slot using `pgoutput` in this database (a
//! subscription, or a pgoutput client such as Debezium). The publisher cannot tell which
//! publication a slot's consumer asks for, so every such slot counts.
//!
//! - covering publication and a pgoutput slot: blocking (exit 3 before anything is created),
//!   naming the publications and the slots (active or not, their pid and the subscriber's
//!   application_name), pointing to docs/operations.md ("Logical replication"); when only the
//!   state schema is covered, `--state-schema` elsewhere keeps the tool's tables out;
//! - covering publication without a consumer: a warning (a subscription created during the run
//!   would break);
//! - otherwise ok.
//!
//! pg_repack (since 2026) refuses whenever a `FOR ALL TABLES` publication exists; this refuses
//! only when the tool's objects would really reach a consumer, and also sees schema publications.

use super::{Check, CheckInput, Verdict};
use crate::error::{DbContext, Result};
use tokio_postgres::Client;

/// The check's name (docs/plan.md).
pub(super) const NAME: &str = "publications";

/// A publication whose tables include objects the run creates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Covering {
    pub name: String,
    pub all_tables: bool,
    /// Of the state schema and the table's schema, the ones it publishes `FOR TABLES IN SCHEMA`.
    pub schemas: Vec<String>,
}

impl Covering {
    fn describe(&self) -> String {
        if self.all_tables {
            format!("publication {:?} (FOR ALL TABLES)", self.name)
        } else {
            format!(
                "publication {:?} (FOR TABLES IN SCHEMA {})",
                self.name,
                self.schemas.join(", ")
            )
        }
    }
}

/// A logical replication slot that decodes with pgoutput (reads publications).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Consumer {
    pub slot: String,
    pub active: bool,
    pub pid: Option<i32>,
    /// The walsender's application_name (a subscription's name, by default).
    pub application_name: Option<String>,
}

impl Consumer {
    fn describe(&self) -> String {
        match (self.active, self.pid) {
            (true, Some(pid)) => format!(
                "slot {:?} (pgoutput, active, walsender pid {pid}{})",
                self.slot,
                self.application_name
                    .as_deref()
                    .map(|a| format!(", subscriber {a:?}"))
                    .unwrap_or_default()
            ),
            _ => format!(
                "slot {:?} (pgoutput, inactive: its subscriber resumes from it)",
                self.slot
            ),
        }
    }
}

/// Publications covering `state_schema` or `table_schema` (or all tables).
pub async fn covering(
    client: &Client,
    state_schema: &str,
    table_schema: &str,
) -> Result<Vec<Covering>> {
    let rows = client
        .query(
            "SELECT p.pubname::text, p.puballtables, \
                    COALESCE(array_agg(DISTINCT n.nspname::text) FILTER (WHERE n.nspname IS NOT NULL), \
                             '{}'::text[]) \
               FROM pg_catalog.pg_publication p \
               LEFT JOIN pg_catalog.pg_publication_namespace pn ON pn.pnpubid = p.oid \
               LEFT JOIN pg_catalog.pg_namespace n \
                      ON n.oid = pn.pnnspid AND n.nspname::text IN ($1, $2) \
              GROUP BY p.oid, p.pubname, p.puballtables \
             HAVING p.puballtables OR count(n.oid) > 0 \
              ORDER BY p.pubname",
            &[&state_schema, &table_schema],
        )
        .await
        .ctx("reading the publications")?;
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        out.push(Covering {
            name: r.try_get(0).ctx("reading a publication")?,
            all_tables: r.try_get(1).ctx("reading a publication")?,
            schemas: r.try_get(2).ctx("reading a publication")?,
        });
    }
    Ok(out)
}

/// The pgoutput slots of this database.
pub async fn consumers(client: &Client) -> Result<Vec<Consumer>> {
    let rows = client
        .query(
            "SELECT s.slot_name::text, s.active, s.active_pid, r.application_name::text \
               FROM pg_catalog.pg_replication_slots s \
               LEFT JOIN pg_catalog.pg_stat_replication r ON r.pid = s.active_pid \
              WHERE s.slot_type = 'logical' AND s.plugin = 'pgoutput' \
                AND s.database = pg_catalog.current_database() \
              ORDER BY s.slot_name",
            &[],
        )
        .await
        .ctx("reading the logical replication slots")?;
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        out.push(Consumer {
            slot: r.try_get(0).ctx("reading a slot")?,
            active: r.try_get(1).ctx("reading a slot")?,
            pid: r.try_get(2).ctx("reading a slot")?,
            application_name: r.try_get(3).ctx("reading a slot")?,
        });
    }
    Ok(out)
}

/// The verdict for what was found (pure: see the header for the rules).
pub fn verdict(
    pubs: &[Covering],
    slots: &[Consumer],
    state_schema: &str,
    table_schema: &str,
) -> Check {
    let mut check = Check::new(
        NAME,
        Verdict::Ok,
        "no publication would publish the tool's own tables",
    );
    if pubs.is_empty() {
        return check;
    }
    let names = pubs
        .iter()
        .map(|p| p.describe())
        .collect::<Vec<_>>()
        .join(", ");
    let what = format!(
        "{names} would publish pg-hotswap's own tables (the state tables and the change log in \
         schema {state_schema:?}, the shadow in schema {table_schema:?})"
    );
    check.details = pubs.iter().map(|p| p.describe()).collect();
    if slots.is_empty() {
        check.verdict = Verdict::Warning;
        check.summary = format!(
            "{what}, but nothing consumes them now (no pgoutput replication slot in this database)"
        );
        check.action = Some(
            "do not create a subscription to them until the run has finished (see \
             docs/operations.md, \"Logical replication\")"
                .into(),
        );
        return check;
    }
    check.verdict = Verdict::Blocking;
    check.details.extend(slots.iter().map(|s| s.describe()));
    check.pids = slots.iter().filter_map(|s| s.pid).collect();
    check.summary = format!(
        "{what} to their consumers ({}), which lack them: their apply workers would fail \
         (\"logical replication target relation ... does not exist\") and stop replicating",
        slots
            .iter()
            .map(|s| s.describe())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let only_state_schema = pubs
        .iter()
        .all(|p| !p.all_tables && !p.schemas.iter().any(|s| s == table_schema));
    check.action = Some(if only_state_schema {
        format!(
            "run with --state-schema naming a schema no publication covers (not {state_schema:?}); \
             the shadow's schema is not published"
        )
    } else {
        "move the subscribers to a publication of a table list for the run, as docs/operations.md \
         (\"Logical replication\") describes step by step, then run again"
            .into()
    });
    check
}

/// The `publications` check: the covering publications, then (only if there are any) their
/// consumers.
pub(super) async fn check(client: &Client, input: &CheckInput<'_>) -> Result<Check> {
    let (state_schema, table_schema) = (input.state_schema, input.table.schema.as_str());
    let pubs = covering(client, state_schema, table_schema).await?;
    if pubs.is_empty() {
        return Ok(verdict(&pubs, &[], state_schema, table_schema));
    }
    let slots = consumers(client).await?;
    Ok(verdict(&pubs, &slots, state_schema, table_schema))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(name: &str) -> Covering {
        Covering {
            name: name.into(),
            all_tables: true,
            schemas: Vec::new(),
        }
    }

    fn slot(name: &str) -> Consumer {
        Consumer {
            slot: name.into(),
            active: true,
            pid: Some(7),
            application_name: Some(name.into()),
        }
    }

    #[test]
    fn only_a_consumed_covering_publication_blocks() {
        assert_eq!(
            verdict(&[], &[slot("s")], "hotswap", "public").verdict,
            Verdict::Ok
        );
        let w = verdict(&[all("p")], &[], "hotswap", "public");
        assert_eq!(w.verdict, Verdict::Warning);
        let b = verdict(&[all("p")], &[slot("s")], "hotswap", "public");
        assert_eq!(b.verdict, Verdict::Blocking);
        let line = b.line();
        assert!(line.contains("\"p\"") && line.contains("\"s\"") && line.contains("operations.md"));
        assert_eq!(b.pids, vec![7]);
    }

    #[test]
    fn a_published_state_schema_alone_is_avoided_with_another_state_schema() {
        let p = Covering {
            name: "p".into(),
            all_tables: false,
            schemas: vec!["hotswap".into()],
        };
        let b = verdict(&[p], &[slot("s")], "hotswap", "public");
        assert_eq!(b.verdict, Verdict::Blocking);
        assert!(b.action.unwrap().contains("--state-schema"));
    }
}
