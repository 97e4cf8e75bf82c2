//! Partitioned shadows (issue 15): `--partition-by` and `--partition` turn a plain table into a
//! partitioned one during the rewrite.
//!
//! How: the shadow is first made exactly as for a plain table (`shadow::build_in`: the source's
//! definition, the ALTER applied, the plan read back and its indexes dropped for the copy). Then,
//! in the same transaction, that plain shadow becomes the *template* of the partitioned one:
//! renamed aside, a partitioned table of the shadow's name created `LIKE` it (columns, defaults,
//! identity with its sequence options, generated columns, storage, compression, comments, check
//! constraints), its foreign keys, extended statistics, column settings and owner carried, the
//! template dropped, and the partitions created with the user's bounds. The ALTER thus means on
//! the partitioned table exactly what it meant on the plain one, and everything downstream
//! (capture, copy, replay, verification, swap, revert) works on the partitioned shadow through
//! its parent, where PostgreSQL routes rows to partitions.
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
//! none on a partitioned table. `CLUSTER ON` cannot be marked on a partitioned table either:
//! the mark is dropped, and said so.

use crate::db::catalog;
use crate::db::ident::{Ident, QualifiedName};
use crate::error::{DbContext, Error, Result, RowExt};
use crate::rewrite::plan::Plan;
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
}

/// One `--partition "<name> <FOR VALUES ... | DEFAULT>"`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PartitionSpec {
    /// In the table's schema.
    pub name: Ident,
    /// `FOR VALUES ...` or `DEFAULT`, as given.
    pub bound: String,
}

/// The partitioned shadow, as recorded in the plan.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ShadowPartitioning {
    /// The partition key as PostgreSQL prints it (`pg_get_partkeydef`).
    pub key: String,
    /// The partitions, each by its final (and current) name, with its bound as PostgreSQL
    /// prints it.
    pub partitions: Vec<ShadowPartition>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ShadowPartition {
    pub name: QualifiedName,
    pub bound: String,
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
        .ok_or_else(|| format!("--partition-by {s:?}: expected RANGE (...), LIST (...) or HASH (...)"))?;
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
    let (name, rest) = split_identifier(t)
        .ok_or_else(|| format!("--partition {s:?}: expected a name, then FOR VALUES ... or DEFAULT"))?;
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
    req: &PartitionRequest,
    done: &mut Vec<Step>,
) -> Result<()> {
    let table = &src.table.name;
    let refuse = |e: Error, what: &str| {
        let msg = e.message().to_string();
        Error::refused(format!(
            "cannot rewrite table {} into a partitioned table: {what}: {msg}",
            table.human()
        ))
        .with_state(format!("nothing was changed; {} is untouched", table.human()))
    };
    if src.table.persistence == "u" {
        return Err(Error::refused(format!(
            "cannot rewrite table {} into a partitioned table: it is UNLOGGED, and PostgreSQL has no unlogged partitioned tables",
            table.human()
        ))
        .with_state("nothing was changed")
        .with_next("make it LOGGED first (ALTER TABLE ... SET LOGGED), or run without --partition-by"));
    }
    if req.partitions.is_empty() {
        return Err(Error::usage(
            "--partition-by needs at least one --partition \"<name> FOR VALUES ... | DEFAULT\"",
        ));
    }
    let shadow = plan.shadow.clone();
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
                 INCLUDING CONSTRAINTS) PARTITION BY {}{tablespace}",
                req.by
            ),
            format!("creating the partitioned shadow {}", shadow.human()),
        )
        .single(),
    ];
    for c in &fks {
        steps.push(Step::new(
            format!("ALTER TABLE {shadow} ADD CONSTRAINT {} {}", c.name, c.def),
            format!("adding foreign key {} to the partitioned shadow", c.name.as_str()),
        ));
    }
    steps.push(Step::new(
        format!("DROP TABLE {template}"),
        "dropping the template of the partitioned shadow",
    ));
    for st in &statistics {
        let what = format!("creating statistics {} on the partitioned shadow", st.name.human());
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
        if c.stat_target >= 0 {
            steps.push(Step::new(
                format!(
                    "ALTER TABLE {shadow} ALTER COLUMN {} SET STATISTICS {}",
                    c.name, c.stat_target
                ),
                "copying a column's statistics target",
            ));
        }
        if !c.options.is_empty() {
            let opts = c
                .options
                .iter()
                .map(|o| crate::rewrite::shadow::reloption_sql(o, ""))
                .collect::<Result<Vec<_>>>()?;
            steps.push(Step::new(
                format!("ALTER TABLE {shadow} ALTER COLUMN {} SET ({})", c.name, opts.join(", ")),
                "copying a column's options",
            ));
        }
    }
    steps.push(Step::new(
        format!("ALTER TABLE {shadow} OWNER TO {}", src.table.owner),
        format!("giving the partitioned shadow to the table's owner {}", src.table.owner.as_str()),
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

    let mut options = Vec::new();
    for o in &src.table.reloptions {
        options.push(crate::rewrite::shadow::reloption_sql(o, "")?);
    }
    for o in &src.table.toast_options {
        options.push(crate::rewrite::shadow::reloption_sql(o, "toast.")?);
    }
    options.push("autovacuum_enabled = false".into());
    options.push("toast.autovacuum_enabled = false".into());
    for p in &req.partitions {
        let part = table.sibling(p.name.as_str());
        let s = Step::new(
            format!("CREATE TABLE {part} PARTITION OF {shadow} {}{tablespace}", p.bound),
            format!("creating partition {} of the shadow", part.human()),
        )
        .single();
        crate::rewrite::step::exec(tx, &s).await.map_err(|e| {
            refuse(e, &format!("partition {}", p.name.as_str()))
                .with_next("fix that --partition (a free name in the table's schema, then FOR VALUES ... or DEFAULT)")
        })?;
        done.push(s);
        for s in [
            Step::new(
                format!("ALTER TABLE {part} SET ({})", options.join(", ")),
                "copying the table's storage options to a partition; autovacuum off until the swap",
            ),
            Step::new(
                format!("ALTER TABLE {part} OWNER TO {}", src.table.owner),
                "giving a partition to the table's owner",
            ),
        ] {
            crate::rewrite::step::exec(tx, &s).await?;
            done.push(s);
        }
    }

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
    let mut partitions = Vec::new();
    for r in tx
        .query(
            "SELECT n.nspname::text, c.relname::text, pg_catalog.pg_get_expr(c.relpartbound, c.oid) \
               FROM pg_catalog.pg_inherits i JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid \
               JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
              WHERE i.inhparent = $1 ORDER BY c.relname",
            &[&plan.shadow_oid],
        )
        .await
        .ctx(what)?
    {
        let schema: String = r.col(0, &what)?;
        let name: String = r.col(1, &what)?;
        partitions.push(ShadowPartition {
            name: QualifiedName::new(schema, name),
            bound: r.col(2, &what)?,
        });
    }
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
        let result = in_savepoint(tx, &sql, &format!("building index {} on the partitioned shadow", ix.final_name.as_str())).await;
        match result {
            Err(e)
                if plan.indexes[i].temporary
                    && e.code() == Some(&tokio_postgres::error::SqlState::FEATURE_NOT_SUPPORTED) =>
            {
                let ix = &mut plan.indexes[i];
                ix.create_sql = ix.create_sql.replacen("CREATE UNIQUE INDEX", "CREATE INDEX", 1);
                let sql = vec![ix.create_sql.clone()];
                in_savepoint(tx, &sql, "building the replay index on the partitioned shadow").await?;
            }
            r => r?,
        }
    }
    for fk in plan.foreign_keys.iter().chain(&plan.self_foreign_keys) {
        let sql = vec![format!(
            "ALTER TABLE {shadow} ADD CONSTRAINT {} {} NOT VALID",
            fk.name, fk.def
        )];
        in_savepoint(tx, &sql, &format!("adding foreign key {} NOT VALID to the partitioned shadow", fk.name.as_str())).await?;
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
    tx.batch_execute("ROLLBACK TO SAVEPOINT hotswap_partitioning; RELEASE SAVEPOINT hotswap_partitioning")
        .await
        .ctx("rolling a savepoint back")?;
    result
}

/// `FROM` target for reading a relation's rows: `ONLY x` for a plain table (no inheritance
/// children), `x` for a partitioned one (whose rows are all in its partitions).
pub fn from_rel(rel: &QualifiedName, partitioned: bool) -> String {
    if partitioned {
        rel.to_string()
    } else {
        format!("ONLY {rel}")
    }
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
    }
}
