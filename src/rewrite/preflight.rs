//! Preflight: read everything about the source table and refuse what is not supported.
//!
//! Nothing is changed in this phase. A refusal names the table and the reason and says what to
//! do; warnings are returned for the caller to print and record.

use crate::db::catalog::{
    self, Column, Constraint, IncomingForeignKey, Index, Table, Trigger, View,
};
use crate::db::ident::Ident;
use crate::error::{DbContext, Error, Result, RowExt};
use tokio_postgres::types::Oid;
use tokio_postgres::Client;

/// Everything the run needs to know about the source table, read at the start.
#[derive(Clone, Debug)]
pub struct Source {
    pub table: Table,
    pub columns: Vec<Column>,
    pub indexes: Vec<Index>,
    pub constraints: Vec<Constraint>,
    pub incoming: Vec<IncomingForeignKey>,
    pub triggers: Vec<Trigger>,
    pub views: Vec<View>,
    pub sequences: Vec<catalog::OwnedSequence>,
    pub grants: Vec<catalog::Grant>,
    pub policies: Vec<catalog::Policy>,
    pub publications: Vec<catalog::Publication>,
    pub statistics: Vec<catalog::Statistics>,
    /// Rules on the table: (name, CREATE RULE text).
    pub rules: Vec<(Ident, String)>,
    /// A partitioned table's partitions, at every depth, parents first (issue 15); empty for a
    /// plain table.
    pub partitions: Vec<catalog::Partition>,
    /// A partition rewritten on its own: its parent and bound (issue 15; `one_partition`).
    pub partition_of: Option<crate::rewrite::one_partition::PartitionOf>,
    /// The row identity: the primary key, or a unique index on NOT NULL columns.
    pub key_index: Ident,
    pub key: Vec<Ident>,
    pub fingerprint: String,
}

impl Source {
    /// The bounds of the table's identity sequences: what a revert gives back to them after the
    /// forward swap narrowed them (`swap::sequences`).
    pub fn identity_sequence_bounds(&self) -> Vec<catalog::SequenceBounds> {
        self.sequences
            .iter()
            .filter(|s| s.deptype == "i")
            .map(|s| s.bounds.clone())
            .collect()
    }

    pub fn column(&self, name: &Ident) -> Option<&Column> {
        self.columns.iter().find(|c| &c.name == name)
    }

    /// The source's own (not tool-made) triggers. A user trigger may well be called
    /// `hotswap_audit`: only the exact names the capture gives its triggers, calling a capture
    /// function, are the tool's (issue 9: such a trigger used to be dropped by the swap).
    pub fn user_triggers(&self) -> impl Iterator<Item = &Trigger> {
        self.triggers.iter().filter(|t| !is_capture_trigger(t))
    }
}

/// Whether `t` is one of the triggers `capture` installs: named `hotswap_capture_<run>_[iud]`,
/// `hotswap_truncate_<run>` (or `rcapture`/`rtruncate` for the reverse capture), and executing a
/// `capture_...` function.
pub fn is_capture_trigger(t: &Trigger) -> bool {
    let Some(rest) = t.name.as_str().strip_prefix("hotswap_") else {
        return false;
    };
    let named = ["capture_", "rcapture_", "truncate_", "rtruncate_"]
        .iter()
        .filter_map(|kind| rest.strip_prefix(kind))
        .any(|run| {
            let run = ["_i", "_u", "_d"]
                .iter()
                .find_map(|s| run.strip_suffix(s))
                .unwrap_or(run);
            !run.is_empty() && run.bytes().all(|b| b.is_ascii_digit())
        });
    named
        && t.def
            .split_once("EXECUTE FUNCTION ")
            .is_some_and(|(_, f)| f.contains("capture_"))
}

/// Reads the source table and checks that it can be rewritten. `Err` with `Kind::Refused` names
/// the table and the reason; the Vec holds warnings.
pub async fn inspect(client: &Client, oid: Oid) -> Result<(Source, Vec<String>)> {
    let version = catalog::server_version(client).await?;
    if version < catalog::MIN_SERVER_VERSION {
        return Err(Error::refused(format!(
            "this server runs PostgreSQL {}.{}; pg-hotswap needs PostgreSQL 15 or newer",
            version / 10_000,
            version % 10_000
        ))
        .with_state("nothing was changed"));
    }
    let table = catalog::table(client, oid).await?;
    let name = table.name.human();
    let refuse = |why: String| {
        Error::refused(format!("cannot rewrite table {name}: {why}"))
            .with_state("nothing was changed")
    };
    match table.relkind.as_str() {
        // A partitioned table is rewritten as a whole tree (issue 15; `partitioning`).
        "r" | "p" => {}
        "v" | "m" => return Err(refuse("it is a view, not a table".into())),
        "f" => return Err(refuse("it is a foreign table".into())),
        other => {
            return Err(refuse(format!(
                "it is not a plain table (relkind {other:?})"
            )))
        }
    }
    if table.persistence == "t" {
        return Err(refuse(
            "it is a temporary table, visible only to its own session".into(),
        ));
    }
    // A partition is rewritten on its own and attached back (issue 15; `one_partition`).
    let (partition_of, partition_warnings) = if table.is_partition {
        let (of, w) =
            crate::rewrite::one_partition::inspect(client, oid, &table.name, &table.relkind)
                .await?;
        (Some(of), w)
    } else {
        (None, Vec::new())
    };
    if table.has_inheritance && table.relkind != "p" && !table.is_partition {
        return Err(refuse(
            "it takes part in table inheritance (it has a parent or children)".into(),
        ));
    }
    if let Some(of) = &table.of_type {
        // The new table would not be of the type (a fresh tester, session 13: the link was
        // silently lost), and PostgreSQL's own ALTER TABLE refuses column changes on a typed
        // table ("cannot alter column type of typed table").
        return Err(refuse(format!(
            "it is a typed table (OF {of}): the new table would not be of that type, and \
             PostgreSQL's own ALTER TABLE refuses to change a typed table's columns"
        ))
        .with_next(format!(
            "if it need not be typed, run ALTER TABLE {} NOT OF first; else change the type \
             with ALTER TYPE {of} ... CASCADE",
            table.name
        )));
    }
    check_privileges(client, &table).await?;
    let partitions = if table.relkind == "p" {
        partition_tree_supported(client, &table).await?
    } else {
        Vec::new()
    };

    let columns = catalog::columns(client, oid).await?;
    // PostgreSQL 18: a NOT NULL constraint may be NOT VALID (rows with NULLs may remain). The
    // shadow (CREATE TABLE ... LIKE) would get it validated, so the copy would fail on those
    // rows, or the new table would be stricter than the old one (issue 14).
    if let Some(nn) = catalog::not_null_constraints(client, oid)
        .await?
        .into_iter()
        .find(|nn| !nn.validated)
    {
        return Err(refuse(format!(
            "its NOT NULL constraint {} on column {} is NOT VALID (PostgreSQL 18), which the \
             new table cannot be given as it is",
            nn.name.as_str(),
            nn.column.as_str()
        ))
        .with_next(format!(
            "validate it first (ALTER TABLE {} VALIDATE CONSTRAINT {}), or drop it, then run again",
            table.name, nn.name
        )));
    }
    let indexes = catalog::indexes(client, oid).await?;
    let (key_index, key) = row_identity(&indexes, &columns).ok_or_else(|| {
        refuse(
            "it has no primary key and no unique index on NOT NULL columns, so pg-hotswap \
             cannot tell its rows apart to replay changes"
                .into(),
        )
        .with_next("add a primary key (or a unique index on NOT NULL columns) first")
    })?;
    let views = views_over(client, &table)
        .await
        .map_err(|e| e.with_state("nothing was changed"))?;
    let rowtype = catalog::rowtype_dependents(client, oid).await?;
    if !rowtype.is_empty() {
        return Err(refuse(format!(
            "these objects use its row type and would keep the old table's type after the swap: {}",
            rowtype.join(", ")
        ))
        .with_next("change them to not use the table's row type, or drop and re-create them around the rewrite"));
    }
    let others = catalog::other_dependents(client, oid).await?;
    if !others.is_empty() {
        return Err(refuse(format!(
            "these objects depend on it and would keep pointing at the old table (or at its old \
             identity sequence, which the swap replaces by the new table's own): {}",
            others.join(", ")
        ))
        .with_next("drop them (or give such a default its own sequence) before the rewrite and create them again afterwards"));
    }

    let mut warnings = partition_warnings;
    let long = client
        .query(
            "SELECT pid, now() - xact_start, state FROM pg_catalog.pg_stat_activity \
              WHERE xact_start < now() - interval '1 minute' AND pid <> pg_backend_pid() \
                AND datname = current_database()",
            &[],
        )
        .await
        .ctx("looking for long-running transactions")?;
    for r in &long {
        let pid: i32 = r.col(0, &"looking for long-running transactions")?;
        let state: Option<String> = r.col(2, &"looking for long-running transactions")?;
        warnings.push(format!(
            "session pid {pid} has had a transaction open for over a minute (state {}); \
             if it holds a lock on {name}, installing the capture trigger and the swap will wait \
             for it (each attempt at most --lock-timeout)",
            state.unwrap_or_default()
        ));
    }
    for mv in views.iter().filter(|v| v.relkind == "m") {
        warnings.push(format!(
            "the materialized view {} ({}) depends on {name}: it is rebuilt over the new table inside the swap, \
             which holds the swap's lock for as long as its query takes",
            mv.name.human(),
            crate::output::ui::bytes(mv.bytes.max(0) as u64)
        ));
    }
    let mut triggers = catalog::triggers(client, oid).await?;
    if let Some(of) = &partition_of {
        // The parent's triggers, cloned onto the partition, are not its own (`one_partition`).
        triggers.retain(|t| !of.cloned_triggers.contains(&t.name));
    }
    let incoming = catalog::incoming_foreign_keys(client, oid).await?;
    if let Some(fk) = incoming.iter().find(|fk| fk.partitioned) {
        if version < 180_000 {
            return Err(refuse(format!(
                "the partitioned table {} references it (foreign key {}): the swap re-points such a \
                 key at the new table NOT VALID and validates it after the lock, and PostgreSQL \
                 before 18 cannot add a NOT VALID foreign key on a partitioned table (adding it \
                 validated would scan {} under the swap's lock)",
                fk.table.human(),
                fk.name.as_str(),
                fk.table.human()
            ))
            .with_next(format!(
                "drop foreign key {} before the run and add it again after it (NOT VALID, then \
                 VALIDATE CONSTRAINT), or run on PostgreSQL 18",
                fk.name.as_str()
            )));
        }
    }
    let source = Source {
        constraints: catalog::constraints(client, oid).await?,
        incoming,
        triggers,
        partition_of,
        sequences: catalog::sequences(client, oid).await?,
        grants: catalog::grants(client, oid).await?,
        policies: catalog::policies(client, oid).await?,
        publications: catalog::publications(client, oid).await?,
        statistics: catalog::statistics(client, oid).await?,
        rules: catalog::rules(client, oid).await?,
        fingerprint: catalog::fingerprint(client, oid).await?,
        views,
        partitions,
        key_index,
        key,
        table,
        columns,
        indexes,
    };
    Ok((source, warnings))
}

/// The views and materialized views over `table` (`catalog::dependent_views`), refusing a rule
/// of another relation that refers to it: it would keep pointing at the old table.
async fn views_over(
    client: &impl tokio_postgres::GenericClient,
    table: &Table,
) -> Result<Vec<catalog::View>> {
    let views = catalog::dependent_views(client, table.oid).await?;
    if let Some(r) = views.iter().find(|v| v.relkind != "v" && v.relkind != "m") {
        return Err(Error::refused(format!(
            "cannot rewrite table {}: a rule on {} refers to it, and would keep pointing at the old table",
            table.name.human(),
            r.name.human()
        ))
        .with_next("drop the rule before the rewrite and create it again afterwards"));
    }
    Ok(views)
}

/// The source as it is now, for the swap (`rewrite::carried`): its row, columns, indexes,
/// constraints, triggers, privileges, policies, publications, extended statistics and the views
/// over it read again;
/// the rest as `src` has it (what the definition's fingerprint guards, or what the swap reads
/// itself). Nothing is refused here: the swap compares fingerprints instead.
pub async fn refresh(client: &impl tokio_postgres::GenericClient, src: &Source) -> Result<Source> {
    let oid = src.table.oid;
    let mut triggers = catalog::triggers(client, oid).await?;
    if let Some(of) = &src.partition_of {
        triggers.retain(|t| !of.cloned_triggers.contains(&t.name));
    }
    Ok(Source {
        table: catalog::table(client, oid).await?,
        columns: catalog::columns(client, oid).await?,
        indexes: catalog::indexes(client, oid).await?,
        constraints: catalog::constraints(client, oid).await?,
        triggers,
        grants: catalog::grants(client, oid).await?,
        policies: catalog::policies(client, oid).await?,
        publications: catalog::publications(client, oid).await?,
        statistics: catalog::statistics(client, oid).await?,
        views: views_over(client, &src.table).await?,
        ..src.clone()
    })
}

/// The partitions of the partitioned table `table`, refusing a tree the rewrite cannot carry
/// over whole: foreign or unlogged partitions, and what partitions have of their own (triggers,
/// policies, rules, indexes or constraints their parent does not give them).
async fn partition_tree_supported(
    client: &Client,
    table: &Table,
) -> Result<Vec<catalog::Partition>> {
    let name = table.name.human();
    let refuse = |why: String| {
        Error::refused(format!("cannot rewrite partitioned table {name}: {why}"))
            .with_state("nothing was changed")
    };
    let parts = catalog::partition_tree(client, table.oid).await?;
    if let Some(p) = parts.iter().find(|p| p.relkind == "f") {
        return Err(refuse(format!(
            "its partition {} is a foreign table, whose rows live on another server",
            p.name.human()
        )));
    }
    if let Some(p) = parts.iter().find(|p| p.persistence != "p") {
        return Err(refuse(format!(
            "its partition {} is unlogged or temporary",
            p.name.human()
        )));
    }
    let own = catalog::own_objects(client, table.oid).await?;
    if !own.is_empty() {
        return Err(refuse(format!(
            "some partitions have objects of their own that the rewrite does not carry over yet: {}",
            own.join(", ")
        ))
        .with_next("drop them before the rewrite and create them again afterwards, or define them on the partitioned table"));
    }
    Ok(parts)
}

/// The primary key, else the unique index on NOT NULL plain columns with the fewest columns.
pub fn row_identity(indexes: &[Index], columns: &[Column]) -> Option<(Ident, Vec<Ident>)> {
    if let Some(pk) = indexes.iter().find(|i| i.primary && i.usable) {
        return Some((pk.name.clone(), pk.key_columns.clone()));
    }
    indexes
        .iter()
        .filter(|i| i.is_identity_candidate())
        .filter(|i| {
            i.key_columns.iter().all(|k| {
                columns
                    .iter()
                    .any(|c| &c.name == k && c.not_null && !c.is_generated())
            })
        })
        .min_by_key(|i| i.key_columns.len())
        .map(|i| (i.name.clone(), i.key_columns.clone()))
}

async fn check_privileges(client: &Client, table: &Table) -> Result<()> {
    let row = client
        .query_one(
            "SELECT r.rolsuper, pg_catalog.pg_has_role(current_user, c.relowner, 'MEMBER'), current_user::text, \
                    r.rolbypassrls \
               FROM pg_catalog.pg_roles r, pg_catalog.pg_class c \
              WHERE r.rolname = current_user AND c.oid = $1",
            &[&table.oid],
        )
        .await
        .ctx("checking privileges")?;
    let (superuser, member, me, bypassrls): (bool, bool, String, bool) = (
        row.col(0, &"checking privileges")?,
        row.col(1, &"checking privileges")?,
        row.col(2, &"checking privileges")?,
        row.col(3, &"checking privileges")?,
    );
    let rls_applies = table.row_security
        && (table.force_row_security || me != table.owner.as_str())
        && !superuser
        && !bypassrls;
    if rls_applies {
        // The tool's sessions run with row_security = off, so that policies can never silently
        // hide rows from the copy; with FORCE ROW LEVEL SECURITY they apply to the owner too,
        // and every read would fail. Say so now rather than in the middle of the copy.
        return Err(Error::refused(format!(
            "cannot rewrite table {}: its row level security policies apply to role {me:?} ({}), and pg-hotswap \
             must read every row; the role is neither a superuser nor has BYPASSRLS",
            table.name.human(),
            if table.force_row_security { "FORCE ROW LEVEL SECURITY applies them to the owner too" } else { "it is not the table's owner itself" }
        ))
        .with_state("nothing was changed")
        .with_next(format!(
            "connect as the owner {} (without FORCE), or as a role with BYPASSRLS (ALTER ROLE {} BYPASSRLS, by a superuser), or as a superuser",
            table.owner,
            crate::db::ident::Ident::new(me.clone())
        )));
    }
    if !superuser && !member {
        return Err(Error::refused(format!(
            "cannot rewrite table {}: role {me:?} is neither its owner ({}) nor a member of the owner role nor a superuser; \
             creating the capture trigger and swapping the table need the owner's privileges",
            table.name.human(),
            table.owner.as_str()
        ))
        .with_state("nothing was changed")
        .with_next(format!(
            "connect as {} (or GRANT {} TO {me})",
            table.owner.as_str(),
            table.owner
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(name: &str, not_null: bool) -> Column {
        Column {
            num: 1,
            name: Ident::new(name),
            type_name: "integer".into(),
            base_type: "integer".into(),
            type_oid: 23,
            not_null,
            generated: String::new(),
            identity: String::new(),
            default_expr: None,
            comment: None,
            stat_target: -1,
            options: Vec::new(),
        }
    }

    fn idx(name: &str, cols: &[&str], primary: bool, unique: bool) -> Index {
        Index {
            oid: 1,
            name: Ident::new(name),
            def: String::new(),
            prefix: String::new(),
            unique,
            primary,
            usable: true,
            immediate: true,
            partial: false,
            nkeys: cols.len() as i32,
            key_columns: cols.iter().map(|c| Ident::new(*c)).collect(),
            constraint_name: None,
            constraint_type: None,
            constraint_def: None,
            tablespace: None,
            deferrable: false,
            deferred: false,
            comment: None,
            constraint_comment: None,
            clustered: false,
            column_stats: Vec::new(),
            temporal: false,
        }
    }

    #[test]
    fn only_the_captures_own_triggers_are_the_tools() {
        let t = |name: &str, f: &str| Trigger {
            name: Ident::new(name),
            def: format!(
                "CREATE TRIGGER x AFTER INSERT ON t FOR EACH STATEMENT EXECUTE FUNCTION {f}()"
            ),
            enabled: "A".into(),
            comment: None,
        };
        assert!(is_capture_trigger(&t(
            "hotswap_capture_12_i",
            "hotswap.capture_12"
        )));
        assert!(is_capture_trigger(&t(
            "hotswap_truncate_3",
            "hotswap.capture_truncate_3"
        )));
        assert!(is_capture_trigger(&t(
            "hotswap_rcapture_3_d",
            "hs.rcapture_3"
        )));
        assert!(is_capture_trigger(&t(
            "hotswap_rtruncate_3",
            "hs.rcapture_truncate_3"
        )));
        assert!(!is_capture_trigger(&t("hotswap_audit", "public.audit")));
        assert!(!is_capture_trigger(&t(
            "hotswap_capture_x",
            "hotswap.capture_1"
        )));
        assert!(!is_capture_trigger(&t(
            "hotswap_capture_1_i",
            "public.my_audit"
        )));
        assert!(!is_capture_trigger(&t("audit", "hotswap.capture_1")));
    }

    #[test]
    fn primary_key_wins() {
        let cols = vec![col("a", true), col("b", true)];
        let ix = vec![idx("u", &["b"], false, true), idx("pk", &["a"], true, true)];
        let (name, key) = row_identity(&ix, &cols).unwrap();
        assert_eq!(name.as_str(), "pk");
        assert_eq!(key, vec![Ident::new("a")]);
    }

    #[test]
    fn unique_index_on_nullable_column_is_not_an_identity() {
        let cols = vec![col("a", false)];
        let ix = vec![idx("u", &["a"], false, true)];
        assert!(row_identity(&ix, &cols).is_none());
        let cols = vec![col("a", true)];
        assert!(row_identity(&ix, &cols).is_some());
    }

    #[test]
    fn non_unique_or_partial_indexes_are_not_identities() {
        let cols = vec![col("a", true)];
        let mut p = idx("p", &["a"], false, true);
        p.partial = true;
        let ix = vec![idx("n", &["a"], false, false), p];
        assert!(row_identity(&ix, &cols).is_none());
    }
}
