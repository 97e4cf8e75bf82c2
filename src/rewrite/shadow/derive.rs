//! What the shadow's catalog says after the ALTER, turned into the plan: the column mapping
//! (with the ALTER's USING expressions and stable defaults evaluated once), the indexes to build
//! after the copy and at the consistency point, the constraints added later (NOT VALID checks,
//! foreign keys in the swap), and the refusals that must come before anything is copied
//! (dependent objects, a lost row identity, a mapping that does not compile).

use super::names::derive_name;
use super::{deferrable_clause, strip_not_valid, tmp_index_name, ShadowRequest};
use crate::db::catalog;
use crate::db::ident::{literal, Ident, QualifiedName};
use crate::error::{DbContext, Error, Kind, Result};
use crate::rewrite::mapping;
use crate::rewrite::plan::{LateConstraint, ShadowIndex};
use crate::rewrite::preflight::Source;
use crate::rewrite::step::Step;

/// (temporary name on the shadow, original name on the source) of an index.
pub(super) type NamePair = (Ident, Ident);

/// The column mapping of the ALTER (with its USING expressions, issue 13), stable defaults
/// evaluated once, and the key columns whose collation the ALTER changes (issue 21).
pub(super) async fn map_columns(
    tx: &tokio_postgres::Transaction<'_>,
    src: &Source,
    req: &ShadowRequest<'_>,
    origins: &[(i32, Ident)],
    shadow_oid: u32,
    shadow_cols: &[catalog::Column],
) -> Result<mapping::Built> {
    let table = &src.table.name;
    // The USING expressions of the ALTER: the empty shadow kept no trace of them (issue 13).
    let type_changes = match req.alter {
        Some(alter) => crate::rewrite::alter_text::type_changes(alter).map_err(|e| {
            Error::usage(format!("reading the --alter text: {e}")).with_state(format!(
                "nothing was changed; {} is untouched",
                table.human()
            ))
        })?,
        None => Vec::new(),
    };
    let mut built = mapping::build(
        &table.human(),
        &src.columns,
        shadow_cols,
        Some(origins),
        &src.key,
        req.maps,
        &type_changes,
    )?;
    fix_stable_defaults(tx, shadow_oid, shadow_cols, &mut built.columns).await?;
    // Key columns whose collation the ALTER changes are compared in the shadow's (issue 21).
    let src_names: Vec<&str> = built.key.iter().map(|k| k.name.as_str()).collect();
    let dst_names: Vec<&str> = built.key.iter().map(|k| k.shadow_name.as_str()).collect();
    let src_coll = crate::rewrite::verify::collations(tx, src.table.oid, &src_names).await?;
    let dst_coll = crate::rewrite::verify::collations(tx, shadow_oid, &dst_names).await?;
    for ((k, sc), dc) in built.key.iter_mut().zip(src_coll).zip(dst_coll) {
        if sc != dc {
            k.shadow_collation = dc;
        }
    }
    Ok(built)
}

/// Issue 13, input 6: refuses what PostgreSQL's ALTER refuses because of a view, rule, policy,
/// trigger... on a dropped or retyped column, before anything is copied; and probes the views
/// the swap re-creates over retyped or renamed columns.
pub(super) async fn refuse_dependents(
    tx: &tokio_postgres::Transaction<'_>,
    src: &Source,
    shadow: &QualifiedName,
    shadow_oid: u32,
    origins: &[(i32, Ident)],
    shadow_cols: &[catalog::Column],
    dropped: &[Ident],
) -> Result<()> {
    let table = &src.table.name;
    let mut retyped = Vec::new();
    let mut renamed = Vec::new();
    for c in shadow_cols {
        let Some((_, origin)) = origins.iter().find(|(n, _)| *n == c.num) else {
            continue;
        };
        let Some(s) = src.columns.iter().find(|s| &s.name == origin) else {
            continue;
        };
        if s.type_oid != c.type_oid {
            retyped.push(s.name.clone());
        } else if s.name != c.name {
            renamed.push(s.name.clone());
        }
    }
    crate::rewrite::dependents::refuse_dependents(
        tx,
        src.table.oid,
        dropped,
        &retyped,
        &table.human(),
    )
    .await?;
    retyped.extend(renamed);
    crate::rewrite::dependents::probe_views(tx, src.table.oid, &retyped, shadow, table).await?;
    let columns: Vec<(&str, &str)> = shadow_cols
        .iter()
        .filter_map(|c| {
            let (_, origin) = origins.iter().find(|(n, _)| *n == c.num)?;
            Some((origin.as_str(), c.name.as_str()))
        })
        .collect();
    crate::rewrite::dependents::refuse_view_blockers(tx, src, shadow_oid, &columns).await
}

/// The indexes the ALTER left on the shadow, planned for the build (issue 13: the row
/// identity's own index is built with the bulk indexes — replay finds rows by it, and the copy
/// cannot duplicate a key; every other unique index and every exclusion constraint compares
/// rows, so it waits for the consistency point), and the steps that drop them for the copy.
pub(super) fn plan_indexes(
    src: &Source,
    run: i64,
    shadow: &QualifiedName,
    shadow_ix: &[catalog::Index],
    shadow_key: &[Ident],
    original_names: &[NamePair],
    partitioned: bool,
) -> Result<PlannedIndexes> {
    let table = &src.table.name;
    let identity_index = shadow_ix
        .iter()
        .position(|ix| is_identity_index(ix, shadow_key));
    let mut indexes = Vec::new();
    let mut drops = Vec::new();
    let mut chosen_by_postgres = Vec::new();
    for (n, ix) in shadow_ix.iter().enumerate() {
        let final_name = match original_names.iter().find(|(tmp, _)| tmp == &ix.name) {
            Some((_, orig)) => orig.clone(),
            None => Ident::new(derive_name(
                ix.name.as_str(),
                shadow.name.as_str(),
                table.name.as_str(),
            )),
        };
        if !original_names.iter().any(|(tmp, _)| tmp == &ix.name) {
            if let Some(rest) = ix
                .name
                .as_str()
                .strip_prefix(shadow.name.as_str())
                .filter(|r| r.starts_with('_'))
            {
                chosen_by_postgres.push((n, rest.to_string()));
            }
        }
        let tmp = Ident::new(tmp_index_name(run, n));
        let (create_sql, constraint_sql, by_constraint) = match ix.constraint_type.as_deref() {
            // Exclusion constraints and temporal keys (issue 14): only their constraint makes
            // their index.
            // A partitioned table has no `ADD CONSTRAINT ... USING INDEX` (issue 15): its
            // keys are made by the constraint too.
            _ if ix.built_by_constraint() || (partitioned && ix.constraint_def.is_some()) => (
                String::new(),
                Some(format!(
                    "ALTER TABLE {shadow} ADD CONSTRAINT {tmp} {}",
                    ix.constraint_def.as_deref().unwrap_or_default()
                )),
                true,
            ),
            kind => {
                let unique = if ix.unique { "UNIQUE " } else { "" };
                let create = format!(
                    "CREATE {unique}INDEX {tmp} ON {shadow} USING {}",
                    ix.body()?
                );
                let cons = kind.map(|k| {
                    format!(
                        "ALTER TABLE {shadow} ADD CONSTRAINT {tmp} {} USING INDEX {tmp}{}",
                        if k == "p" { "PRIMARY KEY" } else { "UNIQUE" },
                        deferrable_clause(ix.deferrable, ix.deferred)
                    )
                });
                (create, cons, false)
            }
        };
        drops.push(Step::new(
            match &ix.constraint_name {
                Some(c) => format!("ALTER TABLE {shadow} DROP CONSTRAINT {c}"),
                None => format!("DROP INDEX {}", shadow.sibling(ix.name.as_str())),
            },
            "removing indexes from the shadow for the bulk copy",
        ));
        let comment = src
            .indexes
            .iter()
            .find(|s| s.name == final_name)
            .and_then(|s| s.comment.clone());
        let compares_rows = ix.unique || ix.constraint_type.as_deref() == Some("x");
        indexes.push(ShadowIndex {
            tmp_name: tmp,
            final_name,
            create_sql,
            tablespace: ix.tablespace.clone(),
            constraint_sql,
            built_by_constraint: by_constraint,
            comment,
            after_catch_up: compares_rows && identity_index != Some(n),
            temporary: false,
            clustered: Some(ix.clustered),
            column_stats: Some(ix.column_stats.clone()),
        });
    }
    Ok(PlannedIndexes {
        indexes,
        drops,
        chosen_by_postgres,
    })
}

/// What [`plan_indexes`] plans.
pub(super) struct PlannedIndexes {
    pub indexes: Vec<ShadowIndex>,
    /// The steps that remove the shadow's indexes for the bulk copy.
    pub drops: Vec<Step>,
    /// Indexes whose name PostgreSQL chose on the shadow (the ALTER gave none): (position in
    /// `indexes`, the part after the shadow's name), for [`choose_index_names`].
    pub chosen_by_postgres: Vec<(usize, String)>,
}

/// Constraints the shadow gets only later: NOT VALID checks (after the copy), foreign keys and
/// self-referencing foreign keys (in the swap); with the steps that remove them for the copy.
pub(super) struct LatePlan {
    pub checks: Vec<LateConstraint>,
    pub foreign_keys: Vec<LateConstraint>,
    pub self_foreign_keys: Vec<LateConstraint>,
    pub drops: Vec<Step>,
}

pub(super) async fn plan_constraints(
    tx: &tokio_postgres::Transaction<'_>,
    src: &Source,
    shadow: &QualifiedName,
    shadow_cons: &[catalog::Constraint],
    shadow_cols: &[catalog::Column],
) -> Result<LatePlan> {
    let mut late = LatePlan {
        checks: Vec::new(),
        foreign_keys: Vec::new(),
        self_foreign_keys: Vec::new(),
        drops: Vec::new(),
    };
    let drop = |c: &catalog::Constraint| {
        Step::new(
            format!("ALTER TABLE {shadow} DROP CONSTRAINT {}", c.name),
            "removing indexes from the shadow for the bulk copy",
        )
    };
    for c in shadow_cons {
        match c.kind.as_str() {
            "c" if !c.validated => {
                late.checks.push(LateConstraint {
                    orphan_check: None,
                    name: c.name.clone(),
                    def: strip_not_valid(&c.def),
                    validate: false,
                });
                late.drops.push(drop(c));
            }
            "f" => {
                let on_source = src.constraints.iter().find(|s| s.name == c.name);
                // Valid as the ALTER leaves it: `VALIDATE CONSTRAINT` of a NOT VALID key counts.
                let was_valid = c.validated;
                // A foreign key the ALTER adds or validates must hold on the rows before the
                // swap, as PostgreSQL's ALTER would refuse them.
                let orphan_check = if c.validated && !on_source.is_some_and(|s| s.validated) {
                    Some(orphan_check(tx, c.oid, shadow).await?)
                } else {
                    None
                };
                late.foreign_keys.push(LateConstraint {
                    orphan_check,
                    name: c.name.clone(),
                    def: strip_not_valid(&c.def),
                    validate: was_valid,
                });
                late.drops.push(drop(c));
            }
            _ => {}
        }
    }
    for c in src
        .constraints
        .iter()
        .filter(|c| c.kind == "f" && c.references == src.table.oid)
    {
        if c.columns
            .iter()
            .all(|col| shadow_cols.iter().any(|s| &s.name == col))
        {
            late.self_foreign_keys.push(LateConstraint {
                orphan_check: None,
                name: c.name.clone(),
                def: strip_not_valid(&c.def),
                validate: c.validated,
            });
        }
    }
    Ok(late)
}

/// The mapping must compile against the source before anything is copied. Prepared, not
/// executed, and over the extended protocol: a `--map` expression that closes the CAST around
/// it and appends `; DROP ...` is refused by the server as a second statement.
pub(super) async fn compile_mapping(
    tx: &tokio_postgres::Transaction<'_>,
    table: &QualifiedName,
    columns: &[crate::rewrite::plan::MappedColumn],
) -> Result<()> {
    let select_list = columns
        .iter()
        .filter_map(|c| c.expr.as_deref())
        .collect::<Vec<_>>()
        .join(", ");
    if select_list.is_empty() {
        return Ok(());
    }
    tx.prepare(&format!("SELECT {select_list} FROM ONLY {table} LIMIT 0"))
        .await
        .map_err(|e| {
            Error::db(
                format_args!(
                    "the column mapping of {} does not work on its rows (check the --map expressions)",
                    table.human()
                ),
                e,
            )
            .with_kind(Kind::Refused)
            .with_state(format!(
                "nothing was changed; {} is untouched",
                table.human()
            ))
            .with_next("fix the --map expression; it is SQL over the old row's columns")
        })?;
    Ok(())
}

/// A new column whose default is not volatile (`now()`, `current_date`, a constant) gets one
/// value for every existing row from PostgreSQL's `ADD COLUMN` — the default is evaluated once
/// (the "fast default"). The copy runs in many transactions, where `now()` would differ from
/// chunk to chunk, so such a default is evaluated once here, in the shadow's transaction, and
/// the column is copied as that constant (found by a fresh tester: 12 different `loaded_at`
/// values for one `ADD COLUMN loaded_at timestamptz DEFAULT now()`). Volatile defaults
/// (`random()`, `nextval()`, `clock_timestamp()`) are evaluated per row by both, and identity
/// columns number rows; both keep taking their default.
pub(super) async fn fix_stable_defaults(
    tx: &tokio_postgres::Transaction<'_>,
    shadow_oid: u32,
    shadow_cols: &[catalog::Column],
    columns: &mut [crate::rewrite::plan::MappedColumn],
) -> Result<()> {
    use crate::error::RowExt;
    use crate::rewrite::plan::ColumnSource;
    if !columns.iter().any(|c| c.source == ColumnSource::Default) {
        return Ok(());
    }
    let what = "reading the defaults of the new columns";
    let rows = tx
        .query(
            include_str!("../../../sql/oracle_defaults.sql"),
            &[&shadow_oid],
        )
        .await
        .ctx(what)?;
    for r in &rows {
        let name: String = r.col(0, &what)?;
        let identity: bool = r.col(1, &what)?;
        let volatile: bool = r.col(2, &what)?;
        if identity || volatile {
            continue;
        }
        let Some(m) = columns
            .iter_mut()
            .find(|c| c.column.as_str() == name && c.source == ColumnSource::Default)
        else {
            continue;
        };
        let Some(col) = shadow_cols.iter().find(|c| c.name == m.column) else {
            continue;
        };
        let Some(default) = col.default_expr.as_deref() else {
            continue;
        };
        let value: Option<String> = tx
            .query_one(&format!("SELECT (({default}))::text"), &[])
            .await
            .ctx(format_args!(
                "evaluating the default of new column {}",
                col.name.as_str()
            ))?
            .col(0, &what)?;
        m.expr = Some(match value {
            Some(v) => format!("CAST({} AS {})", literal(&v), col.base_type),
            None => format!("CAST(NULL AS {})", col.base_type),
        });
    }
    Ok(())
}

/// The query that finds a row of `shadow` the foreign key `con_oid` would reject (MATCH SIMPLE:
/// a row with a NULL in the key is not checked), returning its key as text.
pub(super) async fn orphan_check(
    tx: &tokio_postgres::Transaction<'_>,
    con_oid: u32,
    shadow: &QualifiedName,
) -> Result<String> {
    use crate::error::RowExt;
    let what = "reading a foreign key the ALTER adds";
    let rows = tx
        .query(
            "SELECT pg_catalog.quote_ident(a.attname), pg_catalog.quote_ident(b.attname), \
                    c.confrelid::pg_catalog.regclass::text \
               FROM pg_catalog.pg_constraint c \
              CROSS JOIN LATERAL unnest(c.conkey, c.confkey) WITH ORDINALITY AS k(ck, fk, n) \
               JOIN pg_catalog.pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.ck \
               JOIN pg_catalog.pg_attribute b ON b.attrelid = c.confrelid AND b.attnum = k.fk \
              WHERE c.oid = $1 ORDER BY k.n",
            &[&con_oid],
        )
        .await
        .ctx(what)?;
    let mut mine = Vec::new();
    let mut theirs = Vec::new();
    let mut parent = String::new();
    for r in &rows {
        mine.push(r.col::<String>(0, &what)?);
        theirs.push(r.col::<String>(1, &what)?);
        parent = r.col(2, &what)?;
    }
    if mine.is_empty() {
        return Err(Error::failed(format!(
            "{what}: constraint oid {con_oid} has no columns"
        )));
    }
    let not_null = mine
        .iter()
        .map(|c| format!("s.{c} IS NOT NULL"))
        .collect::<Vec<_>>()
        .join(" AND ");
    let joined = mine
        .iter()
        .zip(&theirs)
        .map(|(a, b)| format!("p.{b} = s.{a}"))
        .collect::<Vec<_>>()
        .join(" AND ");
    let key = mine
        .iter()
        .map(|c| format!("s.{c}::text"))
        .collect::<Vec<_>>()
        .join(", ");
    Ok(format!(
        "SELECT concat_ws(', ', {key}) FROM {shadow} s WHERE {not_null} \
           AND NOT EXISTS (SELECT 1 FROM {parent} p WHERE {joined}) LIMIT 1"
    ))
}

/// A unique, non-partial index on exactly the row-identity columns.
pub(super) fn is_identity_index(ix: &catalog::Index, key: &[Ident]) -> bool {
    ix.unique
        && !ix.partial
        && ix.key_columns.len() == key.len()
        && key.iter().all(|k| ix.key_columns.contains(k))
}

/// True when values equal as the key column's new type and collation were equal in the source
/// (no change, integer widening, varchar/text without a collation change). The source type is
/// as `format_type` prints it (`integer`), the new one as its catalog name (`pg_catalog.int8`).
fn keeps_equality(k: &crate::rewrite::plan::KeyColumn) -> bool {
    let rank = |t: &str| match t {
        "smallint" | "pg_catalog.int2" => Some(0),
        "integer" | "pg_catalog.int4" => Some(1),
        "bigint" | "pg_catalog.int8" => Some(2),
        _ => None,
    };
    let text = |t: &str| {
        matches!(t, "text" | "pg_catalog.text" | "pg_catalog.varchar")
            || t.starts_with("character varying")
    };
    if k.shadow_collation.is_some() {
        return false;
    }
    match k.shadow_cast.as_deref() {
        None => true,
        Some(to) => {
            let from = k.source_type.as_str();
            matches!((rank(from), rank(to)), (Some(a), Some(b)) if a <= b)
                || (text(from) && text(to))
        }
    }
}

/// The shadow must keep a unique, non-partial index on exactly the row-identity columns until
/// the swap, or replay could not find rows by the logged key. When the ALTER took it away (a
/// changed primary key, issue 15), a temporary one is planned (`n`: the next free index number):
/// the source's key is unique in every row the shadow holds, since the shadow holds the
/// source's rows. The swap drops it.
///
/// Errors (refused, nothing created): with `--revertible` (a revert finds rows of the new table
/// by the old key, which the new table would no longer keep unique).
pub(super) fn identity_index(
    shadow_ix: &[catalog::Index],
    key: &[crate::rewrite::plan::KeyColumn],
    shadow: &QualifiedName,
    tmp: Ident,
    revertible: bool,
    table: &str,
) -> Result<Option<ShadowIndex>> {
    let names: Vec<Ident> = key.iter().map(|k| k.shadow_name.clone()).collect();
    if shadow_ix.iter().any(|ix| is_identity_index(ix, &names)) {
        return Ok(None);
    }
    // Two keys the source tells apart may be one in the new type or collation (numeric 1 and
    // 1.2 as int, 'k1' and 'K1' under a case-insensitive collation): the temporary index would
    // fail after the copy, and replay could not tell such rows apart. Integer widening and
    // varchar/text keep equality.
    if let Some(k) = key.iter().find(|k| !keeps_equality(k)) {
        return Err(Error::refused(format!(
            "cannot rewrite table {table}: the ALTER takes away the unique key on its row identity and changes the type or collation of {}, so rows the source tells apart by it may be equal in the new table, and replay finds rows by it",
            k.name
        ))
        .with_state("nothing was changed")
        .with_next("do it in two runs: first change the key (keeping the column as it is), then the column's type or collation"));
    }
    let cols = key
        .iter()
        .map(|k| k.shadow_name.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    if revertible {
        return Err(Error::refused(format!(
            "cannot rewrite table {table} with --revertible: after the ALTER no unique index covers exactly its row identity ({cols}); a revert finds the new table's rows by it"
        ))
        .with_state("nothing was changed")
        .with_next(format!("keep the old key unique (add `, ADD UNIQUE ({cols})` to the --alter), or run without --revertible")));
    }
    Ok(Some(ShadowIndex {
        create_sql: format!("CREATE UNIQUE INDEX {tmp} ON {shadow} ({cols})"),
        final_name: tmp.clone(),
        tmp_name: tmp,
        tablespace: None,
        constraint_sql: None,
        built_by_constraint: false,
        comment: None,
        after_catch_up: false,
        temporary: true,
        clustered: Some(false),
        column_stats: Some(Vec::new()),
    }))
}

/// Every foreign key that references the table must find a unique key on its columns in the new
/// table, or re-pointing it in the swap fails (issue 15: a changed primary key). PostgreSQL's
/// rule (transformFkeyCheckAttrs): a valid, immediate, non-partial unique index on exactly
/// those columns, in any order.
///
/// Errors (refused, nothing created): the first such foreign key, with the reason.
pub(super) fn refuse_lost_referenced_keys(
    src: &Source,
    columns: &[crate::rewrite::plan::MappedColumn],
    shadow_ix: &[catalog::Index],
) -> Result<()> {
    // Other tables' foreign keys, and the table's own (re-added in the swap).
    let referencing = src
        .incoming
        .iter()
        .map(|fk| (&fk.name, &fk.table, &fk.referenced_columns))
        .chain(
            src.constraints
                .iter()
                .filter(|c| c.kind == "f" && c.references == src.table.oid)
                .map(|c| (&c.name, &src.table.name, &c.referenced_columns)),
        );
    for (name, table, referenced) in referencing {
        let on_shadow: Option<Vec<&Ident>> = referenced
            .iter()
            .map(|c| {
                columns
                    .iter()
                    .find(|m| m.origin.as_ref() == Some(c))
                    .map(|m| &m.column)
            })
            .collect();
        let kept = on_shadow.is_some_and(|cols| {
            shadow_ix.iter().any(|ix| {
                ix.unique
                    && ix.immediate
                    && !ix.partial
                    && ix.key_columns.len() == ix.nkeys as usize
                    && ix.key_columns.len() == cols.len()
                    && cols.iter().all(|c| ix.key_columns.contains(c))
            })
        });
        if !kept {
            let cols = referenced
                .iter()
                .map(|c| c.to_string())
                .collect::<Vec<_>>()
                .join(", ");
            return Err(Error::refused(format!(
                "cannot rewrite table {}: foreign key {} of {} references ({cols}), and after the ALTER no unique key of the table covers exactly ({cols}); PostgreSQL needs one to keep the foreign key",
                src.table.name.human(),
                name,
                table.human()
            ))
            .with_state("nothing was changed")
            .with_next(format!(
                "keep a unique key on those columns (add `, ADD UNIQUE ({cols})` to the --alter), or drop the foreign key first"
            )));
        }
    }
    Ok(())
}

/// The source's replica identity on the shadow before the ALTER (which may change it, or drop
/// its index); `original_names`: (temporary name, source name) of each index.
pub(super) async fn replica_identity_step(
    tx: &tokio_postgres::Transaction<'_>,
    src: &Source,
    shadow: &QualifiedName,
    original_names: &[NamePair],
) -> Result<Option<Step>> {
    let sql = match src.table.replica_identity.as_str() {
        "f" => "FULL".to_string(),
        "n" => "NOTHING".to_string(),
        "i" => {
            let ri = crate::rewrite::build::replica_identity_index(tx, src.table.oid).await?;
            match ri.and_then(|n| original_names.iter().find(|(_, o)| o.as_str() == n)) {
                Some((tmp, _)) => format!("USING INDEX {tmp}"),
                None => return Ok(None),
            }
        }
        _ => return Ok(None),
    };
    Ok(Some(Step::new(
        format!("ALTER TABLE {shadow} REPLICA IDENTITY {sql}"),
        "giving the shadow the table's replica identity",
    )))
}

/// The shadow's replica identity after the ALTER; `shadow_ix` in the order the plan numbers
/// them. `USING INDEX` of an index the ALTER dropped (PostgreSQL then keeps the mark with no
/// index, which replicates like NOTHING and makes UPDATE and DELETE fail on a published table)
/// becomes DEFAULT: the replica identity follows the new primary key (issue 15).
pub(super) async fn replica_identity_after(
    tx: &tokio_postgres::Transaction<'_>,
    shadow_oid: u32,
    run: i64,
    shadow_ix: &[catalog::Index],
) -> Result<crate::rewrite::plan::ReplicaIdentity> {
    use crate::rewrite::plan::ReplicaIdentity as R;
    let what = "reading the shadow's replica identity";
    let row = tx
        .query_one(
            "SELECT c.relreplident::text, \
                    (SELECT ic.relname::text FROM pg_catalog.pg_index i \
                       JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid \
                      WHERE i.indrelid = c.oid AND i.indisreplident) \
               FROM pg_catalog.pg_class c WHERE c.oid = $1",
            &[&shadow_oid],
        )
        .await
        .ctx(what)?;
    let kind: String = row.try_get(0).ctx(what)?;
    let index: Option<String> = row.try_get(1).ctx(what)?;
    Ok(match kind.as_str() {
        "f" => R::Full,
        "n" => R::Nothing,
        "i" => match index.and_then(|n| shadow_ix.iter().position(|ix| ix.name.as_str() == n)) {
            Some(n) => R::Index(Ident::new(tmp_index_name(run, n))),
            None => R::Default,
        },
        _ => R::Default,
    })
}
