//! The shadow table: `<table>_new` with the source's definition and the user's ALTER applied,
//! and the plan derived from it (column mapping, indexes and constraints to build after the copy).
//!
//! How the ALTER sees a complete table: in one transaction the shadow is created with the
//! source's columns, check constraints, outgoing foreign keys and every index (under temporary
//! names), then the ALTER runs against it — so a type change rewrites the index definitions, a
//! dropped column takes its indexes along, `ADD UNIQUE` adds one. Then the resulting index and
//! constraint definitions are read back from the catalog, recorded in the plan, and dropped, so
//! that the bulk copy loads a bare table (faster; DESIGN.md measured index builds afterwards as
//! the fastest). If anything fails, the transaction rolls back and nothing is left.

use crate::catalog;
use crate::error::{DbContext, Error, Kind, Result, RowExt};
use crate::ident::{fit_name, literal, Ident, QualifiedName};
use crate::locking::{self, LockPolicy};
use crate::mapping::{self, MapArg};
use crate::plan::{CapturePlan, LateConstraint, Plan, ShadowIndex};
use crate::preflight::Source;
use crate::state::State;
use tokio_postgres::Client;

pub struct ShadowRequest<'a> {
    pub alter: Option<&'a str>,
    pub maps: &'a [MapArg],
    /// Explicit shadow name (`--shadow-name`); default `<table>_new`.
    pub shadow_name: Option<&'a str>,
}

/// Temporary name of the n-th index the run builds on the shadow.
fn tmp_index_name(run: i64, n: usize) -> String {
    format!("hotswap_{run}_i{n}")
}

/// Renders one `reloptions` entry (`name=value`) for `SET (...)`, with `prefix` (`toast.`).
pub fn reloption_sql(opt: &str, prefix: &str) -> Result<String> {
    let (name, value) = opt
        .split_once('=')
        .ok_or_else(|| Error::failed(format!("unexpected storage option {opt:?}")))?;
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    {
        return Err(Error::failed(format!(
            "unexpected storage option name {name:?}"
        )));
    }
    Ok(format!("{prefix}{name} = {}", literal(value)))
}

/// Strips a trailing " NOT VALID" from a constraint definition.
fn strip_not_valid(def: &str) -> String {
    def.strip_suffix(" NOT VALID").unwrap_or(def).to_string()
}

/// Creates the shadow and returns the plan. Nothing is left behind on error.
pub async fn create(
    client: &mut Client,
    state: &State,
    run: i64,
    src: &Source,
    req: &ShadowRequest<'_>,
    policy: &LockPolicy,
) -> Result<Plan> {
    let table = &src.table.name;
    let shadow_name = match req.shadow_name {
        Some(n) => {
            if n.len() > crate::ident::MAX_IDENT_BYTES {
                return Err(Error::usage(format!(
                    "--shadow-name {n:?} is longer than 63 bytes; PostgreSQL would truncate it"
                )));
            }
            if catalog::relation_exists(client, &table.schema, n).await? {
                return Err(Error::usage(format!(
                    "--shadow-name {n:?}: a relation of that name already exists in schema {}",
                    table.schema.as_str()
                )));
            }
            n.to_string()
        }
        None => catalog::free_name(client, &table.schema, table.name.as_str(), "_new", &[]).await?,
    };
    let shadow = table.sibling(shadow_name.clone());

    let mut tries = locking::Retry::new(policy, "creating the shadow");
    loop {
        tries.start();
        let result = create_once(client, state, run, src, req, &shadow, policy).await;
        if let Some(plan) = tries.settle(result).await? {
            return Ok(plan);
        }
    }
}

/// Builds the shadow in a transaction that is always rolled back, creating nothing: what the
/// shadow step would refuse (the ALTER, the mapping, dependent objects, the sample check) is
/// refused before the state schema exists (DESIGN.md, "refuse before creating anything"; found
/// by a fresh tester, who was left a `hotswap` schema after an exit 3).
pub async fn dry_run(
    client: &mut Client,
    state: &State,
    src: &Source,
    req: &ShadowRequest<'_>,
    policy: &LockPolicy,
) -> Result<()> {
    let table = &src.table.name;
    let name = catalog::free_name(client, &table.schema, table.name.as_str(), "_new", &[]).await?;
    let shadow = table.sibling(name);
    let mut tries = locking::Retry::new(policy, "trying the shadow");
    loop {
        tries.start();
        let tx = client
            .transaction()
            .await
            .ctx("starting the shadow's trial transaction")?;
        let result = async {
            locking::set_local_timeout(&tx, policy.timeout).await?;
            build_in(&tx, state, 0, src, req, &shadow).await
        }
        .await;
        tx.rollback()
            .await
            .ctx("rolling the shadow's trial transaction back")?;
        match tries.settle(result).await {
            Ok(Some(_)) => return Ok(()),
            Ok(None) => {}
            Err(e) if e.is_lock_timeout() => return Err(e),
            Err(e) => {
                return Err(e.or_state(
                    format!("nothing was changed; {} is untouched", table.human()),
                    "fix the cause and run again",
                ))
            }
        }
    }
}

async fn create_once(
    client: &mut Client,
    state: &State,
    run: i64,
    src: &Source,
    req: &ShadowRequest<'_>,
    shadow: &QualifiedName,
    policy: &LockPolicy,
) -> Result<Plan> {
    let tx = client
        .transaction()
        .await
        .ctx("starting the shadow transaction")?;
    locking::set_local_timeout(&tx, policy.timeout).await?;
    state
        .record_object(&tx, run, "table", shadow, Some(src.table.oid))
        .await?;
    let plan = build_in(&tx, state, run, src, req, shadow).await?;
    // Default privileges may have granted the shadow to other roles: nobody may write into it
    // during the run, and the swap grants exactly the old table's privileges (acl.rs).
    crate::acl::keep_to_owner(&tx, &[crate::acl::Object::Table(shadow)]).await?;
    let json = serde_json::to_value(&plan)
        .map_err(|e| Error::failed(format!("serializing the plan: {e}")))?;
    state.set_plan(&tx, run, &json).await?;
    tx.commit().await.ctx("committing the shadow table")?;
    Ok(plan)
}

/// Creates the shadow inside the caller's transaction and returns the plan, writing nothing to
/// the state tables. `run` names the temporary objects. `plan` (the dry run) calls this in a
/// transaction it rolls back, so the ALTER and the mapping are validated against the real
/// table without changing anything.
pub async fn build_in(
    tx: &tokio_postgres::Transaction<'_>,
    state: &State,
    run: i64,
    src: &Source,
    req: &ShadowRequest<'_>,
    shadow: &QualifiedName,
) -> Result<Plan> {
    let table = &src.table.name;
    let t = &src.table;
    let unlogged = if t.persistence == "u" {
        "UNLOGGED "
    } else {
        ""
    };
    let tablespace = t
        .tablespace
        .as_ref()
        .map(|ts| format!(" TABLESPACE {ts}"))
        .unwrap_or_default();
    tx.batch_execute(&format!(
        "CREATE {unlogged}TABLE {shadow} (LIKE {table} INCLUDING DEFAULTS INCLUDING GENERATED \
         INCLUDING IDENTITY INCLUDING STORAGE INCLUDING COMPRESSION INCLUDING COMMENTS){tablespace}"
    ))
    .await
    .ctx(format_args!("creating the shadow table {}", shadow.human()))?;

    let mut opts = Vec::new();
    for o in &t.reloptions {
        opts.push(reloption_sql(o, "")?);
    }
    for o in &t.toast_options {
        opts.push(reloption_sql(o, "toast.")?);
    }
    if !opts.is_empty() {
        tx.batch_execute(&format!("ALTER TABLE {shadow} SET ({})", opts.join(", ")))
            .await
            .ctx("copying the table's storage options to the shadow")?;
    }
    // No autovacuum on the shadow until the swap (which restores the source's setting): a
    // freshly loaded table attracts it, and it yields to a waiting lock only after
    // deadlock_timeout, longer than the build's and the swap's lock timeouts.
    tx.batch_execute(&format!(
        "ALTER TABLE {shadow} SET (autovacuum_enabled = false, toast.autovacuum_enabled = false)"
    ))
    .await
    .ctx("keeping autovacuum off the shadow until the swap")?;
    // Per-column settings LIKE does not copy: statistics targets and options (n_distinct...).
    for c in &src.columns {
        if c.stat_target >= 0 {
            tx.batch_execute(&format!(
                "ALTER TABLE {shadow} ALTER COLUMN {} SET STATISTICS {}",
                c.name, c.stat_target
            ))
            .await
            .ctx("copying a column's statistics target")?;
        }
        if !c.options.is_empty() {
            let opts = c
                .options
                .iter()
                .map(|o| reloption_sql(o, ""))
                .collect::<Result<Vec<_>>>()?;
            tx.batch_execute(&format!(
                "ALTER TABLE {shadow} ALTER COLUMN {} SET ({})",
                c.name,
                opts.join(", ")
            ))
            .await
            .ctx("copying a column's options")?;
        }
    }
    // Identity sequences: LIKE gives the new one the right options but not always the right
    // type; make it the old one's twin before the ALTER, so a type change then does to it exactly
    // what ALTER TABLE would.
    for s in src.sequences.iter().filter(|s| s.deptype == "i") {
        let row = tx
            .query_one(
                "SELECT pg_catalog.pg_get_serial_sequence($1, $2), \
                        pg_catalog.format_type(seqtypid, NULL), seqstart, seqincrement, seqmin, seqmax, seqcache, seqcycle \
                   FROM pg_catalog.pg_sequence WHERE seqrelid = $3",
                &[&shadow.to_string(), &s.column.as_str(), &s.oid],
            )
            .await
            .ctx("reading an identity sequence")?;
        let what = "reading an identity sequence";
        let new_seq: Option<String> = row.col(0, &what)?;
        if let Some(new_seq) = new_seq {
            let (ty, start, inc, min, max, cache, cycle): (String, i64, i64, i64, i64, i64, bool) = (
                row.col(1, &what)?,
                row.col(2, &what)?,
                row.col(3, &what)?,
                row.col(4, &what)?,
                row.col(5, &what)?,
                row.col(6, &what)?,
                row.col(7, &what)?,
            );
            tx.batch_execute(&format!(
                "ALTER SEQUENCE {new_seq} AS {ty} INCREMENT BY {inc} MINVALUE {min} MAXVALUE {max} \
                 START WITH {start} CACHE {cache} {}",
                if cycle { "CYCLE" } else { "NO CYCLE" }
            ))
            .await
            .ctx("copying an identity sequence's options")?;
        }
    }
    if t.owner.as_str() != current_user(tx).await? {
        tx.batch_execute(&format!("ALTER TABLE {shadow} OWNER TO {}", t.owner))
            .await
            .ctx(format_args!(
                "giving the shadow to the table's owner {}",
                t.owner.as_str()
            ))?;
    }

    // Check constraints keep their names (they are per table); foreign keys to other tables
    // too. Self-referencing foreign keys are added at the swap, when the name means the new table.
    for c in src.constraints.iter().filter(|c| c.kind == "c") {
        tx.batch_execute(&format!(
            "ALTER TABLE {shadow} ADD CONSTRAINT {} {}",
            c.name, c.def
        ))
        .await
        .ctx(format_args!(
            "adding check constraint {} to the shadow",
            c.name.as_str()
        ))?;
    }
    for c in src
        .constraints
        .iter()
        .filter(|c| c.kind == "f" && c.references != t.oid)
    {
        tx.batch_execute(&format!(
            "ALTER TABLE {shadow} ADD CONSTRAINT {} {}",
            c.name, c.def
        ))
        .await
        .ctx(format_args!(
            "adding foreign key {} to the shadow",
            c.name.as_str()
        ))?;
    }

    // Every index under a temporary name, constraints attached the way the source has them.
    let mut original_names = Vec::new();
    for (n, ix) in src.indexes.iter().enumerate() {
        let tmp = Ident::new(tmp_index_name(run, n));
        original_names.push((tmp.clone(), ix.name.clone()));
        if ix.built_by_constraint() {
            let def = ix.constraint_def.as_deref().unwrap_or_default();
            tx.batch_execute(&format!("ALTER TABLE {shadow} ADD CONSTRAINT {tmp} {def}"))
                .await
                .ctx(format_args!(
                    "adding constraint {} to the shadow",
                    ix.name.as_str()
                ))?;
            continue;
        }
        let unique = if ix.unique { "UNIQUE " } else { "" };
        tx.batch_execute(&format!(
            "CREATE {unique}INDEX {tmp} ON {shadow} USING {}",
            ix.body()?
        ))
        .await
        .ctx(format_args!(
            "creating index {} on the shadow",
            ix.name.as_str()
        ))?;
        if let Some(kind) = ix.constraint_type.as_deref() {
            tx.batch_execute(&format!(
                "ALTER TABLE {shadow} ADD CONSTRAINT {tmp} {} USING INDEX {tmp}{}",
                if kind == "p" { "PRIMARY KEY" } else { "UNIQUE" },
                deferrable_clause(ix.deferrable, ix.deferred)
            ))
            .await
            .ctx(format_args!(
                "attaching constraint {} on the shadow",
                ix.name.as_str()
            ))?;
        }
    }

    // The columns before the ALTER, by attnum: renames and type changes keep the attnum.
    let before_oid: u32 = tx
        .query_one("SELECT $1::text::regclass::oid", &[&shadow.to_string()])
        .await
        .ctx("looking up the shadow")?
        .col(0, &"looking up the shadow")?;
    let origins: Vec<(i32, Ident)> = catalog::columns(tx, before_oid)
        .await?
        .into_iter()
        .map(|c| (c.num, c.name))
        .collect();

    if let Some(alter) = req.alter {
        // The extended protocol (`execute`, not `batch_execute`): the server itself refuses a
        // second statement, whatever quoting, dollar quote or comment hides its `;` from the
        // client-side check in cli.rs (issue 9, hostile input).
        tx.execute(&format!("ALTER TABLE {shadow} {alter}"), &[])
            .await
            .map_err(|e| {
                Error::db(format_args!("the ALTER failed on the shadow of {}", table.human()), e)
                    .with_kind(Kind::Refused)
                    .with_state(format!("nothing was changed; {} is untouched", table.human()))
                    .with_next("fix the --alter text (it takes the actions of ALTER TABLE, e.g. \"ALTER COLUMN id TYPE bigint, ADD COLUMN flags int NOT NULL DEFAULT 0\")")
            })?;
    }

    // Read back what the ALTER produced.
    let shadow_oid: u32 = tx
        .query_one("SELECT $1::text::regclass::oid", &[&shadow.to_string()])
        .await
        .ctx("looking up the shadow")?
        .col(0, &"looking up the shadow")?;
    let shadow_cols = catalog::columns(tx, shadow_oid).await?;
    let shadow_ix = catalog::indexes(tx, shadow_oid).await?;
    let shadow_cons = catalog::constraints(tx, shadow_oid).await?;

    // The USING expressions of the ALTER: the empty shadow kept no trace of them (issue 13).
    let type_changes = match req.alter {
        Some(alter) => crate::alter_text::type_changes(alter).map_err(|e| {
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
        &shadow_cols,
        Some(&origins),
        &src.key,
        req.maps,
        &type_changes,
    )?;
    fix_stable_defaults(tx, shadow_oid, &shadow_cols, &mut built.columns).await?;
    // Key columns whose collation the ALTER changes are compared in the shadow's (issue 21).
    let src_names: Vec<&str> = built.key.iter().map(|k| k.name.as_str()).collect();
    let dst_names: Vec<&str> = built.key.iter().map(|k| k.shadow_name.as_str()).collect();
    let src_coll = crate::verify::collations(tx, t.oid, &src_names).await?;
    let dst_coll = crate::verify::collations(tx, shadow_oid, &dst_names).await?;
    for ((k, sc), dc) in built.key.iter_mut().zip(src_coll).zip(dst_coll) {
        if sc != dc {
            k.shadow_collation = dc;
        }
    }

    // --- dependents (issue 13, input 6): refuse what PostgreSQL's ALTER refuses because of a
    // view, rule, policy, trigger... on a dropped or retyped column, before anything is copied;
    // and probe the views the swap re-creates over retyped or renamed columns.
    {
        let mut retyped = Vec::new();
        let mut renamed = Vec::new();
        for c in &shadow_cols {
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
        crate::dependents::refuse_dependents(tx, t.oid, &built.dropped, &retyped, &table.human())
            .await?;
        retyped.extend(renamed);
        crate::dependents::probe_views(tx, t.oid, &retyped, shadow, table).await?;
    }
    // --- end dependents

    let shadow_key: Vec<Ident> = built.key.iter().map(|k| k.shadow_name.clone()).collect();
    // The row identity's own index is built with the bulk indexes (replay finds rows by it, and
    // the copy cannot duplicate a key); every other unique index and every exclusion constraint
    // compares rows, so it waits for the consistency point (issue 13).
    let identity_index = shadow_ix
        .iter()
        .position(|ix| is_identity_index(ix, &shadow_key));
    let mut indexes = Vec::new();
    let mut drops = Vec::new();
    for (n, ix) in shadow_ix.iter().enumerate() {
        let final_name = match original_names.iter().find(|(tmp, _)| tmp == &ix.name) {
            Some((_, orig)) => orig.clone(),
            None => Ident::new(derive_name(
                ix.name.as_str(),
                shadow.name.as_str(),
                table.name.as_str(),
            )),
        };
        let tmp = Ident::new(tmp_index_name(run, n));
        let (create_sql, constraint_sql, by_constraint) = match ix.constraint_type.as_deref() {
            // Exclusion constraints and temporal keys (issue 14): only their constraint makes
            // their index.
            _ if ix.built_by_constraint() => (
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
        match &ix.constraint_name {
            Some(c) => drops.push(format!("ALTER TABLE {shadow} DROP CONSTRAINT {c}")),
            None => drops.push(format!("DROP INDEX {}", shadow.sibling(ix.name.as_str()))),
        }
        let comment = src
            .indexes
            .iter()
            .find(|s| s.name == final_name)
            .and_then(|s| s.comment.clone());
        let compares_rows = ix.unique || ix.constraint_type.as_deref() == Some("x");
        indexes.push(crate::plan::ShadowIndex {
            tmp_name: tmp,
            final_name,
            create_sql,
            tablespace: ix.tablespace.clone(),
            constraint_sql,
            built_by_constraint: by_constraint,
            comment,
            after_catch_up: compares_rows && identity_index != Some(n),
        });
    }
    check_identity_survives(&indexes, &shadow_ix, &shadow_key, &table.human())?;

    let mut late_checks = Vec::new();
    let mut foreign_keys = Vec::new();
    for c in &shadow_cons {
        match c.kind.as_str() {
            "c" if !c.validated => {
                late_checks.push(LateConstraint {
                    orphan_check: None,
                    name: c.name.clone(),
                    def: strip_not_valid(&c.def),
                    validate: false,
                });
                drops.push(format!("ALTER TABLE {shadow} DROP CONSTRAINT {}", c.name));
            }
            "f" => {
                let on_source = src.constraints.iter().find(|s| s.name == c.name);
                let was_valid = on_source.map(|s| s.validated).unwrap_or(c.validated);
                // A foreign key the ALTER adds (and validates) must hold on the rows before
                // the swap, as PostgreSQL's ALTER would refuse them.
                let orphan_check = match on_source {
                    None if c.validated => Some(orphan_check(tx, c.oid, shadow).await?),
                    _ => None,
                };
                foreign_keys.push(LateConstraint {
                    orphan_check,
                    name: c.name.clone(),
                    def: strip_not_valid(&c.def),
                    validate: was_valid,
                });
                drops.push(format!("ALTER TABLE {shadow} DROP CONSTRAINT {}", c.name));
            }
            _ => {}
        }
    }
    let mut self_foreign_keys = Vec::new();
    for c in src
        .constraints
        .iter()
        .filter(|c| c.kind == "f" && c.references == t.oid)
    {
        if c.columns
            .iter()
            .all(|col| shadow_cols.iter().any(|s| &s.name == col))
        {
            self_foreign_keys.push(LateConstraint {
                orphan_check: None,
                name: c.name.clone(),
                def: strip_not_valid(&c.def),
                validate: c.validated,
            });
        }
    }
    for d in &drops {
        tx.batch_execute(d)
            .await
            .ctx("removing indexes from the shadow for the bulk copy")?;
    }

    // The mapping must compile against the source before anything is copied.
    let select_list = built
        .columns
        .iter()
        .filter_map(|c| c.expr.as_deref())
        .collect::<Vec<_>>()
        .join(", ");
    // Prepared, not executed, and over the extended protocol: a `--map` expression that closes
    // the CAST around it and appends `; DROP ...` is refused by the server as a second statement.
    if !select_list.is_empty() {
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
    }
    let dropped_indexes = src
        .indexes
        .iter()
        .filter(|s| !indexes.iter().any(|i| i.final_name == s.name))
        .map(|s| s.name.clone())
        .collect();

    let capture = CapturePlan {
        log: state.table(&format!("log_{run}")),
        function: state.table(&format!("capture_{run}")),
        truncate_function: state.table(&format!("capture_truncate_{run}")),
        trigger: Ident::new(format!("hotswap_capture_{run}")),
        truncate_trigger: Ident::new(format!("hotswap_truncate_{run}")),
    };
    let plan = Plan {
        run_id: run,
        source: table.clone(),
        source_oid: t.oid,
        shadow: shadow.clone(),
        shadow_oid,
        key: built.key,
        columns: built.columns,
        dropped: built.dropped,
        overriding: built.overriding,
        indexes,
        late_checks,
        foreign_keys,
        self_foreign_keys,
        capture,
        fingerprint: src.fingerprint.clone(),
        dropped_indexes,
        reverse: None,
        sample_check: None,
    };
    // Issue 13, the sample oracle: PostgreSQL's own ALTER on sampled rows must give what the
    // mapping gives them, or nothing is created (`oracle.rs`; rolled back inside).
    let mut plan = plan;
    plan.sample_check = Some(crate::oracle::check_sample(tx, src, &plan, req.alter).await?);
    Ok(plan)
}

/// A new column whose default is not volatile (`now()`, `current_date`, a constant) gets one
/// value for every existing row from PostgreSQL's `ADD COLUMN` — the default is evaluated once
/// (the "fast default"). The copy runs in many transactions, where `now()` would differ from
/// chunk to chunk, so such a default is evaluated once here, in the shadow's transaction, and
/// the column is copied as that constant (found by a fresh tester: 12 different `loaded_at`
/// values for one `ADD COLUMN loaded_at timestamptz DEFAULT now()`). Volatile defaults
/// (`random()`, `nextval()`, `clock_timestamp()`) are evaluated per row by both, and identity
/// columns number rows; both keep taking their default.
async fn fix_stable_defaults(
    tx: &tokio_postgres::Transaction<'_>,
    shadow_oid: u32,
    shadow_cols: &[catalog::Column],
    columns: &mut [crate::plan::MappedColumn],
) -> Result<()> {
    use crate::error::RowExt;
    use crate::plan::ColumnSource;
    if !columns.iter().any(|c| c.source == ColumnSource::Default) {
        return Ok(());
    }
    let what = "reading the defaults of the new columns";
    let rows = tx
        .query(include_str!("../sql/oracle_defaults.sql"), &[&shadow_oid])
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
async fn orphan_check(
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
        "SELECT concat_ws(', ', {key}) FROM ONLY {shadow} s WHERE {not_null} \
           AND NOT EXISTS (SELECT 1 FROM {parent} p WHERE {joined}) LIMIT 1"
    ))
}

async fn current_user(tx: &tokio_postgres::Transaction<'_>) -> Result<String> {
    tx.query_one("SELECT current_user::text", &[])
        .await
        .ctx("reading current_user")?
        .col(0, &"reading current_user")
}

fn deferrable_clause(deferrable: bool, deferred: bool) -> &'static str {
    match (deferrable, deferred) {
        (true, true) => " DEFERRABLE INITIALLY DEFERRED",
        (true, false) => " DEFERRABLE",
        _ => "",
    }
}

/// A name PostgreSQL chose for an index the ALTER added on the shadow (`t_new_email_key`),
/// turned into the name it would have chosen on the table (`t_email_key`).
fn derive_name(name: &str, shadow: &str, table: &str) -> String {
    match name.strip_prefix(shadow) {
        Some(rest) if rest.starts_with('_') => fit_name(table, rest),
        _ => name.to_string(),
    }
}

/// A unique, non-partial index on exactly the row-identity columns.
fn is_identity_index(ix: &catalog::Index, key: &[Ident]) -> bool {
    ix.unique
        && !ix.partial
        && ix.key_columns.len() == key.len()
        && key.iter().all(|k| ix.key_columns.contains(k))
}

/// The shadow must keep a unique, non-partial index on exactly the row-identity columns, or
/// replay could not find rows and the swapped table would have lost its key.
fn check_identity_survives(
    planned: &[ShadowIndex],
    shadow_ix: &[catalog::Index],
    key: &[Ident],
    table: &str,
) -> Result<()> {
    let ok = shadow_ix.iter().any(|ix| is_identity_index(ix, key));
    if ok && !planned.is_empty() {
        Ok(())
    } else {
        Err(Error::refused(format!(
            "cannot rewrite table {table}: after the ALTER the table would have no unique index on its row identity ({}); pg-hotswap needs it to match rows",
            key.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(", ")
        ))
        .with_state("nothing was changed"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reloptions_are_rendered_with_literals() {
        assert_eq!(
            reloption_sql("fillfactor=70", "").unwrap(),
            "fillfactor = '70'"
        );
        assert_eq!(
            reloption_sql("autovacuum_enabled=false", "toast.").unwrap(),
            "toast.autovacuum_enabled = 'false'"
        );
        assert!(reloption_sql("bad name=1", "").is_err());
        assert!(reloption_sql("x);drop table t;--=1", "").is_err());
    }

    #[test]
    fn derived_names_follow_the_table() {
        assert_eq!(derive_name("t_new_email_key", "t_new", "t"), "t_email_key");
        assert_eq!(derive_name("custom_idx", "t_new", "t"), "custom_idx");
    }

    #[test]
    fn not_valid_suffix_is_stripped() {
        assert_eq!(
            strip_not_valid("CHECK ((a > 0)) NOT VALID"),
            "CHECK ((a > 0))"
        );
        assert_eq!(strip_not_valid("CHECK ((a > 0))"), "CHECK ((a > 0))");
    }
}
