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

mod derive;
mod identity;
mod names;

pub(crate) use identity::identity_sequence_steps;

use crate::db::catalog;
use crate::db::ident::{literal, Ident, QualifiedName};
use crate::db::locking::{self, LockPolicy};
use crate::error::{DbContext, Error, Result, RowExt};
use crate::rewrite::mapping::MapArg;
use crate::rewrite::plan::{CapturePlan, Plan};
use crate::rewrite::preflight::Source;
use crate::rewrite::step::Step;
use crate::state::State;
use derive::{
    compile_mapping, identity_index, map_columns, plan_constraints, plan_indexes,
    refuse_dependents, refuse_lost_referenced_keys, replica_identity_after, replica_identity_step,
    NamePair,
};
use names::choose_index_names;
use tokio_postgres::Client;

pub struct ShadowRequest<'a> {
    pub alter: Option<&'a str>,
    pub maps: &'a [MapArg],
    /// Explicit shadow name (`--shadow-name`); default `<table>_new`.
    pub shadow_name: Option<&'a str>,
    /// `--revertible`: the old row identity must stay unique in the new table.
    pub revertible: bool,
    /// `--partition-by` / `--partition`: the shadow is a partitioned table (issue 15).
    pub partitioning: Option<&'a crate::rewrite::partitioning::PartitionRequest>,
    /// A plain shadow even for a partitioned source or `--partition-by`: `plan`'s estimate
    /// sessions, which run side by side (partitions have fixed names) and measure sizes (a
    /// partitioned table has none of its own).
    pub plain: bool,
    /// `plan`: rows that would have no partition are shown in the plan (`partition_sample`)
    /// instead of refused.
    pub show_unrouted: bool,
}

/// Temporary name of the n-th index the run builds on the shadow.
fn tmp_index_name(run: i64, n: usize) -> String {
    format!("hotswap_{run}_i{n}")
}

pub use crate::db::ident::reloption_sql;

/// Strips a trailing " NOT VALID" from a constraint definition.
fn strip_not_valid(def: &str) -> String {
    def.strip_suffix(" NOT VALID").unwrap_or(def).to_string()
}

/// The shadow's name: `--shadow-name` (checked: at most 63 bytes, not taken), or the first free
/// `<table>_new`. The one place it is decided, for `run`, its trial and `plan`.
pub async fn shadow_name(
    client: &impl tokio_postgres::GenericClient,
    table: &QualifiedName,
    requested: Option<&str>,
) -> Result<QualifiedName> {
    let name = match requested {
        Some(n) => {
            if n.len() > crate::db::ident::MAX_IDENT_BYTES {
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
    Ok(table.sibling(name))
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
    let shadow = shadow_name(&*client, &src.table.name, req.shadow_name).await?;
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
/// by a fresh tester, who was left a `hotswap` schema after an exit 3). Returns the plan the
/// trial made (with its `rewrite_probe`, issue 16).
pub async fn dry_run(
    client: &mut Client,
    state: &State,
    src: &Source,
    req: &ShadowRequest<'_>,
    policy: &LockPolicy,
) -> Result<Plan> {
    let table = &src.table.name;
    // The name the shadow will have, so the trial runs the statements the run will run.
    let shadow = shadow_name(&*client, table, req.shadow_name).await?;
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
            Ok(Some((plan, _))) => return Ok(plan),
            Ok(None) => {}
            Err(e) if e.is_lock_not_granted() => return Err(e),
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
    let (plan, _) = build_in(&tx, state, run, src, req, shadow).await?;
    // Default privileges may have granted the shadow to other roles: nobody may write into it
    // during the run, and the swap grants exactly the old table's privileges (acl.rs).
    crate::db::acl::keep_to_owner(&tx, &[crate::db::acl::Object::Table(shadow)]).await?;
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
) -> Result<(Plan, Vec<Step>)> {
    let table = &src.table.name;
    let t = &src.table;
    let mut done = Vec::new();
    for s in definition_steps(src, shadow)? {
        run_step(tx, s, &mut done).await?;
    }
    for s in identity::identity_sequence_steps(tx, src, shadow).await? {
        run_step(tx, s, &mut done).await?;
    }
    if t.owner.as_str() != current_user(tx).await? {
        let s = Step::new(
            format!("ALTER TABLE {shadow} OWNER TO {}", t.owner),
            format!(
                "giving the shadow to the table's owner {}",
                t.owner.as_str()
            ),
        );
        run_step(tx, s, &mut done).await?;
    }
    for s in constraint_steps(src, shadow) {
        run_step(tx, s, &mut done).await?;
    }
    let (index_steps, mut original_names) = index_steps(src, run, shadow)?;
    for s in index_steps {
        run_step(tx, s, &mut done).await?;
    }
    for s in statistics_steps(src, run, shadow) {
        run_step(tx, s, &mut done).await?;
    }
    if let Some(s) = replica_identity_step(tx, src, shadow, &original_names).await? {
        run_step(tx, s, &mut done).await?;
    }

    // The columns before the ALTER, by attnum: renames and type changes keep the attnum.
    let before_oid = relation_oid(tx, shadow).await?;
    let origins: Vec<(i32, Ident)> = catalog::columns(tx, before_oid)
        .await?
        .into_iter()
        .map(|c| (c.num, c.name))
        .collect();

    // Issue 16: the relfilenodes before the ALTER, to see whether PostgreSQL rewrites.
    let before = match req.alter {
        Some(_) => Some(crate::rewrite::fastpath::Snapshot::read(tx, before_oid).await?),
        None => None,
    };
    // Which identity sequences the ALTER positions itself (`RESTART`): marked now, read after.
    let marked = match req.alter {
        Some(_) => identity::mark(tx, before_oid).await?,
        None => Vec::new(),
    };
    if let Some(alter) = req.alter {
        if let Some(action) = crate::rewrite::alter_text::drop_cascade(alter) {
            return Err(Error::refused(format!(
                "cannot rewrite table {}: `{action}` would make PostgreSQL drop the objects that depend on what it drops (other tables' foreign keys, views); pg-hotswap never drops other objects",
                table.human()
            ))
            .with_state(format!("nothing was changed; {} is untouched", table.human()))
            .with_next("drop those objects first if they must go, then run without CASCADE"));
        }
        // Issue 15: the ALTER names the source's constraints; the shadow's index-backed ones
        // carry temporary names (index names are unique in a schema).
        let existing: Vec<NamePair> = original_names
            .iter()
            .map(|(tmp, orig)| (orig.clone(), tmp.clone()))
            .collect();
        let (alter, created) = crate::rewrite::alter_text::translate_names(alter, &existing, |n| {
            Ident::new(format!("hotswap_{run}_k{n}"))
        });
        original_names.extend(created);
        run_step(tx, alter_step(table, shadow, &alter), &mut done)
            .await
            .map_err(|e| {
                // PostgreSQL's message names the shadow's temporary index names: say the
                // user's (found by a fresh tester: `CLUSTER ON` a partial index named
                // "hotswap_0_i3").
                e.map_message(|message| {
                    original_names.iter().fold(message, |m, (tmp, orig)| {
                        m.replace(
                            &format!("\"{}\"", tmp.as_str()),
                            &format!("\"{}\"", orig.as_str()),
                        )
                    })
                })
                .with_kind(crate::error::Kind::Refused)
                .with_state(format!("nothing was changed; {} is untouched", table.human()))
                    .with_next("fix the --alter text (it takes the actions of ALTER TABLE, e.g. \"ALTER COLUMN id TYPE bigint, ADD COLUMN flags int NOT NULL DEFAULT 0\")")
            })?;
    }

    // Read back what the ALTER produced.
    let shadow_oid = relation_oid(tx, shadow).await?;
    let identity_positioned_by_alter =
        identity::positioned_by_alter(tx, shadow_oid, &marked).await?;
    // The storage options the ALTER sets or resets itself, with the values it gave them: the
    // swap applies them over the source's options as they are then.
    let alter_options = match req.alter {
        Some(alter) => {
            let after = table_options(tx, shadow_oid).await?;
            crate::rewrite::alter_text::storage_option_names(alter)
                .unwrap_or_default()
                .into_iter()
                .map(|(toast, name)| crate::rewrite::plan::OptionChange {
                    value: after.iter().find_map(|(t, o)| {
                        let (n, v) = o.split_once('=')?;
                        (*t == toast && n == name).then(|| v.to_string())
                    }),
                    toast,
                    name,
                })
                .collect()
        }
        None => Vec::new(),
    };
    let shadow_cols = catalog::columns(tx, shadow_oid).await?;
    let shadow_ix = catalog::indexes(tx, shadow_oid).await?;
    let shadow_cons = catalog::constraints(tx, shadow_oid).await?;
    let statistics = surviving_statistics(tx, src, run, shadow_oid).await?;
    let mut rewrite_probe = match &before {
        Some(b) => {
            // A temporary name the ALTER's translation gave (issue 15) means the user's name.
            let live = |n: &str| match original_names.iter().find(|(tmp, _)| tmp.as_str() == n) {
                Some((_, orig)) => orig.as_str().to_string(),
                None => names::derive_name(n, shadow.name.as_str(), table.name.as_str()),
            };
            let mut p = crate::rewrite::fastpath::Probe::compare(tx, b, shadow_oid, &live).await?;
            // Rebuilt indexes by the source's names, not the clone's temporary ones.
            for n in &mut p.rebuilt_indexes {
                if let Some((_, orig)) = original_names.iter().find(|(tmp, _)| tmp.as_str() == n) {
                    *n = orig.as_str().to_string();
                }
            }
            Some(p)
        }
        None => None,
    };

    let built = map_columns(tx, src, req, &origins, shadow_oid, &shadow_cols).await?;
    refuse_dependents(
        tx,
        src,
        shadow,
        shadow_oid,
        &origins,
        &shadow_cols,
        &built.dropped,
    )
    .await?;

    let shadow_key: Vec<Ident> = built.key.iter().map(|k| k.shadow_name.clone()).collect();
    let derive::PlannedIndexes {
        mut indexes,
        mut drops,
        chosen_by_postgres,
    } = plan_indexes(
        src,
        run,
        shadow,
        &shadow_ix,
        &shadow_key,
        &original_names,
        !req.plain && (req.partitioning.is_some() || t.relkind == "p"),
    )?;
    let tmp = Ident::new(tmp_index_name(run, shadow_ix.len()));
    indexes.extend(identity_index(
        &shadow_ix,
        &built.key,
        shadow,
        tmp,
        req.revertible,
        &table.human(),
    )?);
    refuse_lost_referenced_keys(src, &built.columns, &shadow_ix)?;
    let index_names =
        choose_index_names(tx, src, shadow_oid, &mut indexes, &chosen_by_postgres).await?;
    let replica_identity = replica_identity_after(tx, shadow_oid, run, &shadow_ix).await?;
    let mut late = plan_constraints(tx, src, shadow, &shadow_cons, &shadow_cols).await?;
    let (renames, chosen) = names::table_constraint_names(
        tx,
        src,
        shadow,
        &shadow_cons,
        &mut [&mut late.checks, &mut late.foreign_keys],
    )
    .await?;
    if let Some(p) = rewrite_probe.as_mut() {
        // In place, the ALTER's unnamed constraints and indexes take the names the copy gives
        // them (chosen over the schema as PostgreSQL chooses), not the shadow's cut to the
        // table's.
        for c in &mut p.new_constraints {
            if let Some((_, n)) = chosen.iter().find(|(old, _)| *old == c.clone_name) {
                c.name = n.clone();
            }
        }
        for i in &mut p.new_indexes {
            let on_shadow = |n: &usize| shadow_ix.get(*n).map(|x| x.name.as_str());
            if let Some((_, n)) = index_names
                .iter()
                .find(|(at, _)| on_shadow(at) == Some(i.clone_name.as_str()))
            {
                i.name = n.clone();
            }
        }
    }
    drops.extend(late.drops);
    drops.extend(renames);
    for s in drops {
        run_step(tx, s, &mut done).await?;
    }
    compile_mapping(tx, table, &built.columns).await?;

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
    let mut plan = Plan {
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
        late_checks: late.checks,
        foreign_keys: late.foreign_keys,
        self_foreign_keys: late.self_foreign_keys,
        capture,
        fingerprint: src.fingerprint.clone(),
        dropped_indexes,
        reverse: None,
        statistics: Some(statistics),
        sample_check: None,
        replica_identity: Some(replica_identity),
        rewrite_probe,
        partitioning: None,
        source_partitioned: false,
        // A partition rewritten on its own: the capture goes on its ancestors too, since a
        // statement through the parent fires only the parent's statement triggers
        // (`one_partition`).
        source_partitions: src
            .partitions
            .iter()
            .map(|p| (p.oid, p.name.clone()))
            .chain(src.partition_of.iter().flat_map(|of| of.ancestors.clone()))
            .collect(),
        partition_sample: None,
        partition_of: src.partition_of.clone(),
        settings_base: Some(crate::rewrite::carried::base(tx, src).await?),
        alter_options,
        sequence_bounds: Vec::new(),
        identity_positioned_by_alter,
    };
    // Issue 15: a partitioned shadow, for `--partition-by` or a partitioned source.
    plan.source_partitioned = t.relkind == "p";
    // A NULL the sample oracle missed in a column the ALTER makes NOT NULL would fail the copy
    // halfway (`oracle::nulls`); probed over the whole table before anything is created.
    if !req.plain {
        crate::rewrite::oracle::nulls::refuse_nulls(tx, src, &plan).await?;
    }
    // Issue 15: `--partition-interval` generates the partitions (`partition_ranges`).
    let generated = match req.partitioning {
        Some(p) => crate::rewrite::partition_ranges::expand(tx, src, &plan, p).await?,
        None => None,
    };
    let request = generated.as_ref().map(|g| &g.0).or(req.partitioning);
    if !req.plain && (request.is_some() || plan.source_partitioned) {
        crate::rewrite::partitioning::convert(tx, src, &mut plan, request, &mut done).await?;
    }
    if !req.plain && request.is_some() && !plan.source_partitioned {
        // Where the rows go; rows no partition takes are refused here (`plan` shows them).
        let sample =
            crate::rewrite::partition_sample::sample(tx, src, &plan, generated.map(|g| g.1))
                .await?;
        if let Some(e) = sample.refusal(table).filter(|_| !req.show_unrouted) {
            return Err(e);
        }
        plan.partition_sample = Some(sample);
    }
    if let Some(of) = &src.partition_of {
        // Issue 15: a partition rewritten on its own (`one_partition`).
        one_partition_shadow(tx, src, req, &plan, of, &mut done).await?;
    }
    // Issue 13, the sample oracle: PostgreSQL's own ALTER on sampled rows must give what the
    // mapping gives them, or nothing is created (`rewrite::oracle`; rolled back inside).
    plan.sample_check =
        Some(crate::rewrite::oracle::check_sample(tx, src, &plan, req.alter).await?);
    Ok((plan, done))
}

/// A partition's shadow: what a single-partition rewrite refuses once the ALTER has run, and
/// the bound's check constraint on the still empty shadow (`one_partition`).
async fn one_partition_shadow(
    tx: &tokio_postgres::Transaction<'_>,
    src: &Source,
    req: &ShadowRequest<'_>,
    plan: &Plan,
    of: &crate::rewrite::one_partition::PartitionOf,
    done: &mut Vec<Step>,
) -> Result<()> {
    let name = src.table.name.human();
    let refuse = |flag: &str, why: &str| {
        Error::refused(format!(
            "cannot rewrite partition {name} with {flag}: {why}"
        ))
        .with_state(format!("nothing was changed; {name} is untouched"))
    };
    if req.partitioning.is_some() {
        return Err(refuse(
            "--partition-by",
            "a partition cannot be partitioned while it stays attached",
        ));
    }
    let indexes: Vec<&Ident> = plan.indexes.iter().map(|i| &i.final_name).collect();
    crate::rewrite::one_partition::check_shadow(
        tx,
        (src.table.oid, &src.table.name, &src.columns),
        &indexes,
        plan.shadow_oid,
    )
    .await?;
    if let Some(s) = crate::rewrite::one_partition::shadow_step(of, &plan.shadow, plan.run_id) {
        run_step(tx, s, done).await?;
    }
    Ok(())
}

/// Executes `step` in the shadow's transaction and keeps it in `done` (what `plan` lists).
async fn run_step(
    tx: &tokio_postgres::Transaction<'_>,
    step: Step,
    done: &mut Vec<Step>,
) -> Result<()> {
    crate::rewrite::step::exec(tx, &step).await?;
    done.push(step);
    Ok(())
}

async fn relation_oid(tx: &tokio_postgres::Transaction<'_>, rel: &QualifiedName) -> Result<u32> {
    tx.query_one("SELECT $1::text::regclass::oid", &[&rel.to_string()])
        .await
        .ctx("looking up the shadow")?
        .col(0, &"looking up the shadow")
}

/// The shadow's table with the source's definition: `LIKE`, the storage options, autovacuum off
/// until the swap, and the per-column settings `LIKE` does not copy.
fn definition_steps(src: &Source, shadow: &QualifiedName) -> Result<Vec<Step>> {
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
    let mut steps = vec![Step::new(
        format!(
            "CREATE {unlogged}TABLE {shadow} (LIKE {table} INCLUDING DEFAULTS INCLUDING GENERATED \
             INCLUDING IDENTITY INCLUDING STORAGE INCLUDING COMPRESSION INCLUDING COMMENTS){tablespace}"
        ),
        format!("creating the shadow table {}", shadow.human()),
    )
    .locks("ACCESS SHARE", table, true)];
    let mut opts = Vec::new();
    for o in &t.reloptions {
        opts.push(reloption_sql(o, "")?);
    }
    for o in &t.toast_options {
        opts.push(reloption_sql(o, "toast.")?);
    }
    if !opts.is_empty() {
        steps.push(Step::new(
            format!("ALTER TABLE {shadow} SET ({})", opts.join(", ")),
            "copying the table's storage options to the shadow",
        ));
    }
    // No autovacuum on the shadow until the swap (which restores the source's setting): a
    // freshly loaded table attracts it, and it yields to a waiting lock only after
    // deadlock_timeout, longer than the build's and the swap's lock timeouts.
    steps.push(Step::new(
        format!(
            "ALTER TABLE {shadow} SET (autovacuum_enabled = false, toast.autovacuum_enabled = false)"
        ),
        "keeping autovacuum off the shadow until the swap",
    ));
    // Per-column settings LIKE does not copy: statistics targets and options (n_distinct...).
    for c in &src.columns {
        for (sql, what) in c.settings_sql(shadow)? {
            steps.push(Step::new(sql, what));
        }
    }
    Ok(steps)
}

/// The storage options of table `oid` and of its TOAST table (`true`), `name=value` each.
pub(crate) async fn table_options(
    tx: &impl tokio_postgres::GenericClient,
    oid: u32,
) -> Result<Vec<(bool, String)>> {
    let what = "reading a table's storage options";
    let row = tx
        .query_one(
            "SELECT COALESCE(c.reloptions, '{}')::text[], COALESCE(t.reloptions, '{}')::text[] \
               FROM pg_catalog.pg_class c LEFT JOIN pg_catalog.pg_class t ON t.oid = c.reltoastrelid \
              WHERE c.oid = $1",
            &[&oid],
        )
        .await
        .ctx(what)?;
    let table: Vec<String> = row.col(0, &what)?;
    let toast: Vec<String> = row.col(1, &what)?;
    Ok(table
        .into_iter()
        .map(|o| (false, o))
        .chain(toast.into_iter().map(|o| (true, o)))
        .collect())
}

/// Check constraints keep their names (they are per table); foreign keys to other tables too.
/// Self-referencing foreign keys are added at the swap, when the name means the new table.
fn constraint_steps(src: &Source, shadow: &QualifiedName) -> Vec<Step> {
    let mut steps = Vec::new();
    for c in src.constraints.iter().filter(|c| c.kind == "c") {
        steps.push(Step::new(
            format!("ALTER TABLE {shadow} ADD CONSTRAINT {} {}", c.name, c.def),
            format!("adding check constraint {} to the shadow", c.name.as_str()),
        ));
    }
    for c in src
        .constraints
        .iter()
        .filter(|c| c.kind == "f" && c.references != src.table.oid)
    {
        let mut s = Step::new(
            format!("ALTER TABLE {shadow} ADD CONSTRAINT {} {}", c.name, c.def),
            format!("adding foreign key {} to the shadow", c.name.as_str()),
        )
        .note("locks the referenced table SHARE ROW EXCLUSIVE (blocking its writes) until the shadow transaction commits, in milliseconds");
        if let Some(r) = &c.referenced_table {
            s = s.locks("SHARE ROW EXCLUSIVE", r, true);
        }
        steps.push(s);
    }
    steps
}

/// Every index under a temporary name, constraints attached the way the source has them.
/// Returns the steps and (temporary name, original name) of each.
fn index_steps(
    src: &Source,
    run: i64,
    shadow: &QualifiedName,
) -> Result<(Vec<Step>, Vec<NamePair>)> {
    let mut steps = Vec::new();
    let mut original_names = Vec::new();
    for (n, ix) in src.indexes.iter().enumerate() {
        let tmp = Ident::new(tmp_index_name(run, n));
        original_names.push((tmp.clone(), ix.name.clone()));
        if ix.built_by_constraint() {
            let def = ix.constraint_def.as_deref().unwrap_or_default();
            steps.push(Step::new(
                format!("ALTER TABLE {shadow} ADD CONSTRAINT {tmp} {def}"),
                format!("adding constraint {} to the shadow", ix.name.as_str()),
            ));
            continue;
        }
        let unique = if ix.unique { "UNIQUE " } else { "" };
        steps.push(Step::new(
            format!(
                "CREATE {unique}INDEX {tmp} ON {shadow} USING {}",
                ix.body()?
            ),
            format!("creating index {} on the shadow", ix.name.as_str()),
        ));
        if let Some(kind) = ix.constraint_type.as_deref() {
            steps.push(Step::new(
                format!(
                    "ALTER TABLE {shadow} ADD CONSTRAINT {tmp} {} USING INDEX {tmp}{}",
                    if kind == "p" { "PRIMARY KEY" } else { "UNIQUE" },
                    deferrable_clause(ix.deferrable, ix.deferred)
                ),
                format!("attaching constraint {} on the shadow", ix.name.as_str()),
            ));
        }
    }
    // The per-column statistics targets before the ALTER, which resets them on an index it
    // re-creates; the plan keeps what the shadow says after it.
    for (n, ix) in src.indexes.iter().enumerate() {
        let target = shadow.sibling(tmp_index_name(run, n).as_str());
        for (col, stat) in &ix.column_stats {
            steps.push(Step::new(
                format!("ALTER INDEX {target} ALTER COLUMN {col} SET STATISTICS {stat}"),
                format!(
                    "setting the statistics target of column {col} of index {} on the shadow",
                    ix.name.as_str()
                ),
            ));
        }
    }
    // The CLUSTER mark before the ALTER, which may move it (`CLUSTER ON`, `SET WITHOUT
    // CLUSTER`); the plan keeps what the shadow says after it (issue 15).
    for (n, ix) in src.indexes.iter().enumerate().filter(|(_, i)| i.clustered) {
        steps.push(Step::new(
            format!(
                "ALTER TABLE {shadow} CLUSTER ON {}",
                Ident::new(tmp_index_name(run, n))
            ),
            format!("marking {} for CLUSTER on the shadow", ix.name.as_str()),
        ));
    }
    Ok((steps, original_names))
}

/// The temporary name of the n-th extended statistics object of the source on the shadow (in
/// the object's own schema).
fn tmp_statistics_name(st: &catalog::Statistics, run: i64, n: usize) -> QualifiedName {
    st.name.sibling(format!("hotswap_{run}_s{n}"))
}

/// The source's extended statistics objects on the shadow, before the ALTER, under temporary
/// names, with their statistics target, owner and comment: the ALTER then does to them what
/// PostgreSQL's own would (drops one with a dropped column, follows a rename or a type change;
/// found by a helper: re-creating the source's definition after `DROP COLUMN` failed the swap).
fn statistics_steps(src: &Source, run: i64, shadow: &QualifiedName) -> Vec<Step> {
    let mut steps = Vec::new();
    for (n, st) in src.statistics.iter().enumerate() {
        let tmp = tmp_statistics_name(st, run, n);
        let what = format!("creating statistics {} on the shadow", st.name.human());
        steps.push(Step::new(st.create_sql(&tmp, shadow), what.clone()));
        if st.target >= 0 {
            steps.push(Step::new(
                format!("ALTER STATISTICS {tmp} SET STATISTICS {}", st.target),
                what.clone(),
            ));
        }
        steps.push(Step::new(
            format!("ALTER STATISTICS {tmp} OWNER TO {}", st.owner),
            what.clone(),
        ));
        if let Some(c) = &st.comment {
            steps.push(Step::new(
                format!("COMMENT ON STATISTICS {tmp} IS {}", literal(c)),
                what,
            ));
        }
    }
    steps
}

/// The statistics objects of [`statistics_steps`] the ALTER left on the shadow.
async fn surviving_statistics(
    tx: &tokio_postgres::Transaction<'_>,
    src: &Source,
    run: i64,
    shadow_oid: u32,
) -> Result<Vec<crate::rewrite::plan::ShadowStatistics>> {
    let left = catalog::statistics(tx, shadow_oid).await?;
    Ok(src
        .statistics
        .iter()
        .enumerate()
        .map(|(n, st)| (tmp_statistics_name(st, run, n), st))
        .filter(|(tmp, _)| left.iter().any(|l| &l.name == tmp))
        .map(|(tmp, st)| crate::rewrite::plan::ShadowStatistics {
            tmp_name: tmp,
            final_name: st.name.clone(),
        })
        .collect())
}

/// The user's ALTER, against the empty shadow. Sent over the extended protocol (`single`): the
/// server itself refuses a second statement, whatever quoting, dollar quote or comment hides its
/// `;` from the client-side check of the command line (`commands::flags`) (issue 9, hostile input).
fn alter_step(table: &QualifiedName, shadow: &QualifiedName, alter: &str) -> Step {
    Step::new(
        format!("ALTER TABLE {shadow} {alter}"),
        format!("the ALTER failed on the shadow of {}", table.human()),
    )
    .note("run against the empty shadow only")
    .single()
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

#[cfg(test)]
mod tests {
    use super::names::derive_name;
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
        // A 57-byte table: its shadow is `<table>_new` (61 bytes), and PostgreSQL names the new
        // key `<table>_` + `_pkey` (the shadow's name cut to fit 63 bytes); on the table itself
        // it would be `<table>_pkey` (62 bytes).
        let t = "a23456789012345678901234567890123456789012345678901234567";
        let shadow = format!("{t}_new");
        assert_eq!(
            derive_name(&format!("{t}__pkey"), &shadow, t),
            format!("{t}_pkey")
        );
        // 60 bytes: the table's name is cut too (`<59 bytes>_pkey` on the table).
        let t = "b23456789012345678901234567890123456789012345678901234567890";
        let shadow = crate::db::ident::fit_name(t, "_new");
        let on_shadow = format!("{}_pkey", &shadow[..58]);
        assert_eq!(on_shadow.len(), 63);
        assert_eq!(
            derive_name(&on_shadow, &shadow, t),
            format!("{}_pkey", &t[..58])
        );
        // The shadow's cut name was the table's key's own, so PostgreSQL numbered it.
        let on_shadow = format!("{}_pkey1", &shadow[..57]);
        assert_eq!(
            derive_name(&on_shadow, &shadow, t),
            format!("{}_pkey", &t[..58])
        );
        // A 63-byte name of the user's own that shares no prefix is kept.
        let own = "c".repeat(63);
        assert_eq!(derive_name(&own, &shadow, t), own);
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
