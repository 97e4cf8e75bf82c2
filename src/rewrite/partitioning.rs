//! Partitioned shadows (issue 15): a partitioned table rewritten as a whole tree, and
//! `--partition-by` / `--partition` turning a plain table into a partitioned one.
//!
//! How: the shadow is first made exactly as for a plain table (`shadow::build_in`: the source's
//! definition, the ALTER applied, the plan read back and its indexes dropped for the copy). Then,
//! in the same transaction, that plain shadow becomes the *template* of the partitioned one:
//! renamed aside, a partitioned table of the shadow's name created `LIKE` it (columns, defaults,
//! identity with its sequence options, generated columns, storage, compression, comments, check
//! constraints), its foreign keys, extended statistics, column settings and owner carried, the
//! template dropped, and the partitions created: the ones asked for (`--partition`, under their
//! own names), or a mirror of the source's tree at every depth under `<partition>_new` names,
//! each with its bound, sub-partition key, storage options, owner, tablespace and comment (the
//! swap gives them the old names, `swap::partition_renames`). The ALTER thus means on the
//! partitioned table what it meant on the plain one, and everything downstream (capture, copy,
//! replay, verification, swap, revert) works through the parent, where PostgreSQL routes rows to
//! partitions ([`from_rel`]: no `ONLY` on a partitioned table).
//!
//! What PostgreSQL cannot do on a partitioned table is asked of PostgreSQL itself, in a
//! savepoint on the empty shadow, so `plan` and `run` refuse it before anything exists: every
//! index and constraint the build will create (a unique key without the partition key fails
//! here, with PostgreSQL's own message), and every foreign key the swap will add `NOT VALID`
//! (PostgreSQL before 18 cannot). A unique index on the old row identity that only replay needs
//! (a key widened by the ALTER, issue 15) is built without `UNIQUE` when PostgreSQL refuses it
//! there: replay only looks rows up by it, and the source keeps the identity unique.
//!
//! Storage options (`fillfactor`, autovacuum settings) live on the partitions: PostgreSQL has
//! none on a partitioned table. `CLUSTER ON` cannot be marked on a partitioned table either
//! ("cannot mark index clustered in partitioned table"): a conversion drops the mark.

use crate::db::catalog;
use crate::db::ident::{Ident, QualifiedName};
use crate::error::{DbContext, Error, Result, RowExt};
use crate::rewrite::plan::Plan;
pub use crate::rewrite::plan::{from_rel, ShadowPartition, ShadowPartitioning};
use crate::rewrite::preflight::Source;
use crate::rewrite::step::Step;
use serde::{Deserialize, Serialize};
use tokio_postgres::Transaction;

/// `--partition-by` and its `--partition`s, as given.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PartitionRequest {
    /// The partition key: `RANGE (created_at)`, `LIST (region)`, `HASH (id)`.
    pub by: String,
    pub partitions: Vec<PartitionSpec>,
    /// `--partition-interval`: the partitions are generated over the data's span
    /// (`partition_ranges`), and `partitions` is empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<crate::rewrite::partition_report::Interval>,
}

/// One `--partition "<name> <FOR VALUES ... | DEFAULT>"`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PartitionSpec {
    /// In the table's schema.
    pub name: Ident,
    /// `FOR VALUES ...` or `DEFAULT`, as given.
    pub bound: String,
}

/// One partition to create on the shadow.
struct NewPartition {
    name: QualifiedName,
    final_name: QualifiedName,
    parent: QualifiedName,
    bound: String,
    /// Its own partition key (sub-partitioned).
    partition_key: Option<String>,
    reloptions: Vec<String>,
    toast_options: Vec<String>,
    owner: Ident,
    tablespace: Option<Ident>,
    comment: Option<String>,
    replaces: Option<(u32, QualifiedName)>,
    /// The bound is the user's text (`--partition`): sent as a single statement.
    given: bool,
}

/// The partitions the user asked for (`--partition`), in the table's schema, with the table's
/// storage options, owner and tablespace.
fn requested(src: &Source, shadow: &QualifiedName, req: &PartitionRequest) -> Vec<NewPartition> {
    let t = &src.table;
    req.partitions
        .iter()
        .map(|p| {
            let name = t.name.sibling(p.name.as_str());
            NewPartition {
                final_name: name.clone(),
                name,
                parent: shadow.clone(),
                bound: p.bound.clone(),
                partition_key: None,
                reloptions: t.reloptions.clone(),
                toast_options: t.toast_options.clone(),
                owner: t.owner.clone(),
                tablespace: t.tablespace.clone(),
                comment: None,
                replaces: None,
                given: true,
            }
        })
        .collect()
}

/// The source's own partitions, at every depth, each under a free `<name>_new` until the swap.
async fn mirrored(
    tx: &Transaction<'_>,
    src: &Source,
    shadow: &QualifiedName,
) -> Result<Vec<NewPartition>> {
    let mut out: Vec<NewPartition> = Vec::new();
    let mut taken = Vec::new();
    for p in &src.partitions {
        let parent = if p.parent == src.table.oid {
            shadow.clone()
        } else {
            match src
                .partitions
                .iter()
                .position(|q| q.oid == p.parent)
                .and_then(|i| out.get(i))
            {
                Some(n) => n.name.clone(),
                None => {
                    return Err(Error::failed(format!(
                        "partition {} comes before its parent in the catalog's list",
                        p.name.human()
                    )))
                }
            }
        };
        let new =
            catalog::free_name(tx, &p.name.schema, p.name.name.as_str(), "_new", &taken).await?;
        taken.push(new.clone());
        out.push(NewPartition {
            name: p.name.sibling(new),
            final_name: p.name.clone(),
            parent,
            bound: p.bound.clone(),
            partition_key: p.partition_key.clone(),
            reloptions: p.reloptions.clone(),
            toast_options: p.toast_options.clone(),
            owner: p.owner.clone(),
            tablespace: p.tablespace.clone(),
            comment: p.comment.clone(),
            replaces: Some((p.oid, p.name.clone())),
            given: false,
        });
    }
    Ok(out)
}

/// Parses `--partition-by`: `RANGE|LIST|HASH (...)`, one clause, nothing after its parentheses.
///
/// Errors (usage): another strategy, no parenthesised key, or text after it.
pub fn parse_partition_by(s: &str) -> std::result::Result<String, String> {
    let t = s.trim();
    let upper = t.to_ascii_uppercase();
    let strategy = ["RANGE", "LIST", "HASH"]
        .into_iter()
        .find(|k| upper.starts_with(k))
        .ok_or_else(|| {
            format!("--partition-by {s:?}: expected RANGE (...), LIST (...) or HASH (...)")
        })?;
    let rest = t[strategy.len()..].trim_start();
    if !rest.starts_with('(') || !rest.ends_with(')') || rest.contains('\0') {
        return Err(format!(
            "--partition-by {s:?}: expected the key in parentheses, e.g. \"RANGE (created_at)\""
        ));
    }
    if crate::rewrite::alter_text::has_top_level_semicolon(rest) {
        return Err(format!("--partition-by {s:?}: must not contain ';'"));
    }
    Ok(format!("{strategy} {rest}"))
}

/// Parses one `--partition "<name> FOR VALUES ..."` or `"<name> DEFAULT"`. The name is an SQL
/// identifier as in SQL: folded to lower case unless double-quoted.
///
/// Errors (usage): no name, or neither `FOR VALUES` nor `DEFAULT` after it.
pub fn parse_partition(s: &str) -> std::result::Result<PartitionSpec, String> {
    let t = s.trim();
    let (name, rest) = split_identifier(t).ok_or_else(|| {
        format!("--partition {s:?}: expected a name, then FOR VALUES ... or DEFAULT")
    })?;
    if rest.starts_with('.') {
        return Err(format!(
            "--partition {s:?}: give the partition's name without a schema; partitions are created in the table's schema"
        ));
    }
    let rest = rest.trim();
    let upper = rest.to_ascii_uppercase();
    let ok = upper == "DEFAULT"
        || upper
            .strip_prefix("FOR")
            .is_some_and(|r| r.trim_start().starts_with("VALUES"));
    if !ok || rest.contains('\0') || crate::rewrite::alter_text::has_top_level_semicolon(rest) {
        return Err(format!(
            "--partition {s:?}: after the name comes FOR VALUES ... or DEFAULT, e.g. \"account_2024 FOR VALUES FROM ('2024-01-01') TO ('2025-01-01')\""
        ));
    }
    if name.len() > crate::db::ident::MAX_IDENT_BYTES {
        return Err(format!(
            "--partition {s:?}: the name is longer than 63 bytes; PostgreSQL would truncate it"
        ));
    }
    Ok(PartitionSpec {
        name: Ident::new(name),
        bound: rest.to_string(),
    })
}

/// The leading SQL identifier of `s` (unquoted: folded to lower case) and what follows it.
fn split_identifier(s: &str) -> Option<(String, &str)> {
    if let Some(q) = s.strip_prefix('"') {
        let mut name = String::new();
        let mut chars = q.char_indices();
        while let Some((i, c)) = chars.next() {
            if c == '"' {
                if q[i + 1..].starts_with('"') {
                    name.push('"');
                    chars.next();
                } else {
                    return (!name.is_empty()).then(|| (name, &q[i + 1..]));
                }
            } else {
                name.push(c);
            }
        }
        return None;
    }
    let end = s
        .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '$'))
        .unwrap_or(s.len());
    let name = &s[..end];
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit() || c == '$') {
        return None;
    }
    Some((name.to_lowercase(), &s[end..]))
}

/// Turns the plain shadow `plan.shadow` (made and planned by `shadow::build_in`, its indexes
/// dropped) into a partitioned table of the same name with the requested partitions, and
/// records it in `plan`. Runs inside the shadow's transaction; `done` receives the steps.
///
/// Errors: refused (nothing is created, the transaction is the caller's) when PostgreSQL
/// refuses the partition key, a bound, or an index, constraint or foreign key of the plan on a
/// partitioned table.
pub async fn convert(
    tx: &Transaction<'_>,
    src: &Source,
    plan: &mut Plan,
    req: Option<&PartitionRequest>,
    done: &mut Vec<Step>,
) -> Result<()> {
    let table = &src.table.name;
    let refuse = |e: Error, what: &str| {
        let msg = e.message().to_string();
        Error::refused(format!(
            "cannot rewrite table {} into a partitioned table: {what}: {msg}",
            table.human()
        ))
        .with_state(format!(
            "nothing was changed; {} is untouched",
            table.human()
        ))
    };
    if src.table.persistence == "u" {
        return Err(Error::refused(format!(
            "cannot rewrite table {} into a partitioned table: it is UNLOGGED, and PostgreSQL has no unlogged partitioned tables",
            table.human()
        ))
        .with_state("nothing was changed")
        .with_next("make it LOGGED first (ALTER TABLE ... SET LOGGED), or run without --partition-by"));
    }
    if req.is_some() && src.table.relkind == "p" {
        // The old partitions would keep their names on the old tree, and writes that name
        // them would go there after the swap (found by a fresh tester).
        return Err(Error::refused(format!(
            "cannot give partitioned table {} another partitioning: re-partitioning a partitioned table is not supported yet",
            table.human()
        ))
        .with_state(format!("nothing was changed; {} is untouched", table.human()))
        .with_next("rewrite it without --partition-by (its own partitioning is kept), or convert a plain copy"));
    }
    let shadow = plan.shadow.clone();
    let (key, parts) = match req {
        Some(r) => (r.by.clone(), requested(src, &shadow, r)),
        None => {
            let what = "reading the source's partition key";
            let key: String = tx
                .query_one("SELECT pg_catalog.pg_get_partkeydef($1)", &[&src.table.oid])
                .await
                .ctx(what)?
                .col(0, &what)?;
            (key, mirrored(tx, src, &shadow).await?)
        }
    };
    if parts.is_empty() {
        return Err(Error::usage(
            "--partition-by needs at least one --partition \"<name> FOR VALUES ... | DEFAULT\"",
        ));
    }
    let template_oid = plan.shadow_oid;
    let template = shadow.sibling(format!("hotswap_{}_template", plan.run_id));
    let columns = catalog::columns(tx, template_oid).await?;
    let fks: Vec<catalog::Constraint> = catalog::constraints(tx, template_oid)
        .await?
        .into_iter()
        .filter(|c| c.kind == "f")
        .collect();
    let statistics = catalog::statistics(tx, template_oid).await?;
    let tablespace = src
        .table
        .tablespace
        .as_ref()
        .map(|ts| format!(" TABLESPACE {ts}"))
        .unwrap_or_default();

    let mut steps = vec![
        Step::new(
            format!("ALTER TABLE {shadow} RENAME TO {}", template.name),
            "setting the planned shadow aside as the partitioned one's template",
        ),
        Step::new(
            format!(
                "CREATE TABLE {shadow} (LIKE {template} INCLUDING DEFAULTS INCLUDING GENERATED \
                 INCLUDING IDENTITY INCLUDING STORAGE INCLUDING COMPRESSION INCLUDING COMMENTS \
                 INCLUDING CONSTRAINTS) PARTITION BY {key}{tablespace}"
            ),
            format!("creating the partitioned shadow {}", shadow.human()),
        )
        .single(),
    ];
    for c in &fks {
        steps.push(Step::new(
            format!("ALTER TABLE {shadow} ADD CONSTRAINT {} {}", c.name, c.def),
            format!(
                "adding foreign key {} to the partitioned shadow",
                c.name.as_str()
            ),
        ));
    }
    steps.push(Step::new(
        format!("DROP TABLE {template}"),
        "dropping the template of the partitioned shadow",
    ));
    for st in &statistics {
        let what = format!(
            "creating statistics {} on the partitioned shadow",
            st.name.human()
        );
        steps.push(Step::new(st.create_sql(&st.name, &shadow), what.clone()));
        if st.target >= 0 {
            steps.push(Step::new(
                format!("ALTER STATISTICS {} SET STATISTICS {}", st.name, st.target),
                what.clone(),
            ));
        }
        steps.push(Step::new(
            format!("ALTER STATISTICS {} OWNER TO {}", st.name, st.owner),
            what.clone(),
        ));
        if let Some(c) = &st.comment {
            steps.push(Step::new(
                format!(
                    "COMMENT ON STATISTICS {} IS {}",
                    st.name,
                    crate::db::ident::literal(c)
                ),
                what,
            ));
        }
    }
    for c in &columns {
        for (sql, what) in c.settings_sql(&shadow)? {
            steps.push(Step::new(sql, what));
        }
    }
    steps.push(Step::new(
        format!("ALTER TABLE {shadow} OWNER TO {}", src.table.owner),
        format!(
            "giving the partitioned shadow to the table's owner {}",
            src.table.owner.as_str()
        ),
    ));
    for s in steps {
        crate::rewrite::step::exec(tx, &s).await.map_err(|e| {
            if s.single {
                refuse(e, "PostgreSQL refused the partition key")
                    .with_next("fix --partition-by (it takes what CREATE TABLE ... PARTITION BY takes, e.g. \"RANGE (created_at)\")")
            } else {
                e
            }
        })?;
        done.push(s);
    }

    let mut recorded = Vec::new();
    for p in &parts {
        let part = &p.name;
        let parent = &p.parent;
        let sub = p
            .partition_key
            .as_ref()
            .map(|k| format!(" PARTITION BY {k}"))
            .unwrap_or_default();
        let tablespace = p
            .tablespace
            .as_ref()
            .map(|ts| format!(" TABLESPACE {ts}"))
            .unwrap_or_default();
        let mut create = Step::new(
            format!(
                "CREATE TABLE {part} PARTITION OF {parent} {}{sub}{tablespace}",
                p.bound
            ),
            format!("creating partition {} of the shadow", part.human()),
        );
        if p.given {
            create = create.single();
        }
        crate::rewrite::step::exec(tx, &create).await.map_err(|e| {
            if p.given {
                refuse(e, &format!("partition {}", part.name.as_str())).with_next(
                    "fix that --partition (a free name in the table's schema, then FOR VALUES ... or DEFAULT)",
                )
            } else {
                e
            }
        })?;
        done.push(create);
        let mut steps = Vec::new();
        if p.partition_key.is_none() {
            // The table's own autovacuum_enabled gives way to the load's (the swap sets the
            // stored options again): named twice, PostgreSQL refuses the statement (a fresh
            // tester: a table created WITH (autovacuum_enabled = false) could not be converted).
            let own = |o: &&String| !o.starts_with("autovacuum_enabled=");
            let mut options = Vec::new();
            for o in p.reloptions.iter().filter(own) {
                options.push(crate::db::ident::reloption_sql(o, "")?);
            }
            for o in p.toast_options.iter().filter(own) {
                options.push(crate::db::ident::reloption_sql(o, "toast.")?);
            }
            options.push("autovacuum_enabled = false".into());
            options.push("toast.autovacuum_enabled = false".into());
            steps.push(Step::new(
                format!("ALTER TABLE {part} SET ({})", options.join(", ")),
                "copying storage options to a partition; autovacuum off until the swap",
            ));
        }
        steps.push(Step::new(
            format!("ALTER TABLE {part} OWNER TO {}", p.owner),
            "giving a partition to its owner",
        ));
        if let Some(c) = &p.comment {
            steps.push(Step::new(
                format!(
                    "COMMENT ON TABLE {part} IS {}",
                    crate::db::ident::literal(c)
                ),
                "copying a partition's comment",
            ));
        }
        for s in steps {
            crate::rewrite::step::exec(tx, &s).await?;
            done.push(s);
        }
        recorded.push(ShadowPartition {
            oid: 0,
            name: part.clone(),
            final_name: p.final_name.clone(),
            bound: p.bound.clone(),
            partitioned: p.partition_key.is_some(),
            reloptions: p.reloptions.clone(),
            toast_options: p.toast_options.clone(),
            replaces: p.replaces.clone(),
        });
    }
    // Default privileges may have granted the partitions to other roles: nobody writes into them
    // during the run; the swap grants what the old table (or partition) had.
    let objects: Vec<crate::db::acl::Object> = recorded
        .iter()
        .map(|p| crate::db::acl::Object::Table(&p.name))
        .collect();
    crate::db::acl::keep_to_owner(tx, &objects).await?;

    let what = "reading the partitioned shadow";
    let row = tx
        .query_one(
            "SELECT c.oid, pg_catalog.pg_get_partkeydef(c.oid) FROM pg_catalog.pg_class c \
              WHERE c.oid = $1::text::regclass",
            &[&shadow.to_string()],
        )
        .await
        .ctx(what)?;
    plan.shadow_oid = row.col(0, &what)?;
    let key: String = row.col(1, &what)?;
    // The bounds as PostgreSQL prints them (`plan` shows them so).
    for p in &mut recorded {
        let what = "reading a partition's bound";
        let row = tx
            .query_one(
                "SELECT oid, pg_catalog.pg_get_expr(relpartbound, oid) FROM pg_catalog.pg_class \
                  WHERE oid = $1::text::regclass",
                &[&p.name.to_string()],
            )
            .await
            .ctx(what)?;
        p.oid = row.col(0, &what)?;
        p.bound = row.col(1, &what)?;
    }
    let partitions = recorded;
    plan.partitioning = Some(ShadowPartitioning { key, partitions });
    for ix in &mut plan.indexes {
        // PostgreSQL: "cannot mark index clustered in partitioned table".
        ix.clustered = Some(false);
    }
    ask_postgres(tx, plan).await.map_err(|e| {
        refuse(e, "PostgreSQL cannot build this on a partitioned table").with_next(
            "a unique key or primary key must include the partition key's columns (widen it in --alter, e.g. \"DROP CONSTRAINT t_pkey, ADD PRIMARY KEY (id, created_at)\"); on PostgreSQL before 18, outgoing foreign keys must be added after the run",
        )
    })?;
    Ok(())
}

/// Creates every index and constraint of the plan on the empty partitioned shadow in a
/// savepoint that is rolled back, so PostgreSQL says now what it would refuse in the build or
/// the swap. The replay-only unique index on the old row identity becomes a plain one when
/// PostgreSQL refuses it as unique (its columns lack the partition key).
async fn ask_postgres(tx: &Transaction<'_>, plan: &mut Plan) -> Result<()> {
    let shadow = plan.shadow.clone();
    for i in 0..plan.indexes.len() {
        let ix = &plan.indexes[i];
        let mut sql = Vec::new();
        if !ix.create_sql.is_empty() {
            sql.push(ix.create_sql.clone());
        }
        if let Some(c) = &ix.constraint_sql {
            sql.push(c.clone());
        }
        let result = in_savepoint(
            tx,
            &sql,
            &format!(
                "building index {} on the partitioned shadow",
                ix.final_name.as_str()
            ),
        )
        .await;
        match result {
            Err(e)
                if plan.indexes[i].temporary
                    && e.code()
                        == Some(&tokio_postgres::error::SqlState::FEATURE_NOT_SUPPORTED) =>
            {
                let ix = &mut plan.indexes[i];
                ix.create_sql = ix
                    .create_sql
                    .replacen("CREATE UNIQUE INDEX", "CREATE INDEX", 1);
                let sql = vec![ix.create_sql.clone()];
                in_savepoint(
                    tx,
                    &sql,
                    "building the replay index on the partitioned shadow",
                )
                .await?;
            }
            r => r?,
        }
    }
    for fk in plan.foreign_keys.iter().chain(&plan.self_foreign_keys) {
        let sql = vec![format!(
            "ALTER TABLE {shadow} ADD CONSTRAINT {} {} NOT VALID",
            fk.name, fk.def
        )];
        in_savepoint(
            tx,
            &sql,
            &format!(
                "adding foreign key {} NOT VALID to the partitioned shadow",
                fk.name.as_str()
            ),
        )
        .await?;
    }
    Ok(())
}

async fn in_savepoint(tx: &Transaction<'_>, sql: &[String], what: &str) -> Result<()> {
    tx.batch_execute("SAVEPOINT hotswap_partitioning")
        .await
        .ctx("starting a savepoint")?;
    let mut result = Ok(());
    for s in sql {
        if let Err(e) = tx.batch_execute(s).await.ctx(what) {
            result = Err(e);
            break;
        }
    }
    tx.batch_execute(
        "ROLLBACK TO SAVEPOINT hotswap_partitioning; RELEASE SAVEPOINT hotswap_partitioning",
    )
    .await
    .ctx("rolling a savepoint back")?;
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_by_takes_one_clause() {
        assert_eq!(
            parse_partition_by(" range (created_at) ").unwrap(),
            "RANGE (created_at)"
        );
        assert_eq!(parse_partition_by("HASH (id)").unwrap(), "HASH (id)");
        assert!(parse_partition_by("RANGE created_at").is_err());
        assert!(parse_partition_by("TREE (a)").is_err());
        assert!(parse_partition_by("RANGE (a); DROP TABLE t; SELECT (1)").is_err());
    }

    #[test]
    fn partitions_parse_names_as_sql_does() {
        let p = parse_partition("Acc_2024 FOR VALUES FROM (1) TO (10)").unwrap();
        assert_eq!(p.name.as_str(), "acc_2024");
        assert_eq!(p.bound, "FOR VALUES FROM (1) TO (10)");
        let p = parse_partition("\"Weird \"\"P\"\"\" default").unwrap();
        assert_eq!(p.name.as_str(), "Weird \"P\"");
        assert_eq!(p.bound, "default");
        assert!(parse_partition("p").is_err());
        assert!(parse_partition("p VALUES (1)").is_err());
        assert!(parse_partition("1p DEFAULT").is_err());
        assert!(parse_partition("p DEFAULT; DROP TABLE x").is_err());
        // A schema-qualified name gets its own message (a fresh tester got the generic one).
        let e = parse_partition("app.p1 DEFAULT").unwrap_err();
        assert!(e.contains("without a schema"), "{e}");
        let e = parse_partition("\"App\".\"P1\" FOR VALUES IN (1)").unwrap_err();
        assert!(e.contains("without a schema"), "{e}");
    }
}
