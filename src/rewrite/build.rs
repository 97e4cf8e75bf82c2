//! Indexes and constraints on the shadow after the bulk copy, then the table-level attributes
//! (comment, grants, replica identity) and `ANALYZE`, so the new table has good
//! plans the moment it goes live.
//!
//! Index builds run in parallel on several connections (CREATE INDEX takes a SHARE lock, which
//! does not conflict with itself); constraints are attached afterwards, one at a time (they need
//! ACCESS EXCLUSIVE on the shadow, which nobody else uses). Every step checks what already
//! exists, so a resumed run continues where the last one stopped.
//!
//! Two stages (issue 13, "the shadow is consistent only after catch-up"): [`Stage::Bulk`] right
//! after the copy builds what holds on any mix of moments — plain indexes, the row identity's
//! own index, per-row checks; [`Stage::Consistent`] builds the constraints that compare rows
//! (other unique indexes, exclusion constraints) at the consistency point, after a complete
//! catch-up (`replay`). Foreign keys are not built here at all: while the application writes the
//! tables they reference, their checks on the shadow would see rows replay has not yet
//! removed and make the application's own statements fail; the swap adds them `NOT VALID`
//! and validates them after it commits.

use crate::db::conn::{self, ConnSpec};
use crate::db::ident::{literal, Ident};
use crate::db::locking;
use crate::error::{DbContext, Error, Result, RowExt};
use crate::rewrite::plan::{Plan, ShadowIndex};
use crate::rewrite::preflight::Source;
use crate::rewrite::step::{self, Step};
use std::sync::Arc;
use tokio_postgres::Client;

/// Runs `step` (statements on the shadow only) in one transaction that may wait up to
/// [`locking::SHADOW_WAIT`] for its locks.
async fn on_shadow(client: &Client, step: &Step) -> Result<()> {
    let r = client
        .batch_execute(&format!(
            "BEGIN; {}; {}; COMMIT",
            locking::local_timeout_sql(locking::SHADOW_WAIT),
            step.sql
        ))
        .await;
    if r.is_err() {
        let _ = client.batch_execute("ROLLBACK").await;
    }
    r.ctx(&step.what)?;
    step::record(std::slice::from_ref(step));
    Ok(())
}

pub struct BuildOptions {
    pub jobs: usize,
    /// `maintenance_work_mem` for index builds, e.g. "256MB".
    pub maintenance_work_mem: String,
}

/// Which of the planned indexes and constraints a [`build`] call makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// After the copy: what replay and the steps before verification use — the unique index
    /// replay finds rows by, the constraints it backs, per-row checks.
    Bulk,
    /// Beside verification, after the catch-up (issue 16): the plain indexes
    /// ([`ShadowIndex::is_plain`]), which nothing before the swap reads. Verification only
    /// reads the shadow (ACCESS SHARE, which CREATE INDEX's SHARE lock allows), so the two
    /// share the server instead of taking turns. A run with `--order-by` builds them with
    /// [`Stage::Bulk`] instead: CLUSTER may order the table by one of them.
    Beside,
    /// At the consistency point: unique indexes (but the row identity's) and exclusion
    /// constraints.
    Consistent,
}

impl Stage {
    fn takes(self, ix: &ShadowIndex) -> bool {
        match self {
            Stage::Consistent => ix.after_catch_up,
            Stage::Bulk => !ix.after_catch_up && !ix.is_plain(),
            Stage::Beside => !ix.after_catch_up && ix.is_plain(),
        }
    }
}

/// How many indexes and constraints `stage` makes (built or not).
pub fn stage_size(plan: &Plan, stage: Stage) -> usize {
    plan.indexes.iter().filter(|i| stage.takes(i)).count()
}

/// True when the plan has constraints for [`Stage::Consistent`].
pub fn has_consistent_stage(plan: &Plan) -> bool {
    plan.indexes.iter().any(|i| i.after_catch_up)
}

/// True when every index of [`Stage::Consistent`] exists on the shadow already (a resumed run).
pub async fn consistent_stage_built(client: &Client, plan: &Plan) -> Result<bool> {
    let existing = existing_relations(client, plan).await?;
    Ok(plan
        .indexes
        .iter()
        .filter(|i| i.after_catch_up)
        .all(|i| existing.contains(&i.tmp_name.as_str().to_string())))
}

/// Builds every planned index and constraint of `stage` that does not exist yet.
pub async fn build(
    client: &Client,
    spec: &ConnSpec,
    plan: &Plan,
    opts: &BuildOptions,
    stage: Stage,
) -> Result<()> {
    let existing = existing_relations(client, plan).await?;
    let todo: Vec<Step> = index_steps(plan, stage)
        .into_iter()
        .filter(|(name, _)| !existing.contains(name))
        .map(|(_, s)| s)
        .collect();
    let queue = Arc::new(std::sync::Mutex::new(todo));
    let mut set = tokio::task::JoinSet::new();
    for w in 0..opts.jobs.max(1) {
        let queue = queue.clone();
        let spec = spec.clone();
        let session = session_step(&opts.maintenance_work_mem);
        set.spawn(async move {
            let c = conn::connect(&spec, &format!("index-{w}")).await?;
            // This session builds indexes on the shadow only (see locking::SHADOW_WAIT).
            step::exec(&c, &session).await?;
            loop {
                let next = queue.lock().unwrap_or_else(|e| e.into_inner()).pop();
                let Some(s) = next else { break };
                let started = std::time::Instant::now();
                crate::failpoint::hold("build-index").await;
                step::exec(&c, &s).await?;
                tracing::info!(
                    step = s.what.as_str(),
                    secs = started.elapsed().as_secs_f64(),
                    "index built"
                );
            }
            Ok::<(), Error>(())
        });
    }
    let mut first_err = None;
    while let Some(j) = set.join_next().await {
        let r = j.map_err(|e| Error::failed(format!("an index worker panicked: {e}")))?;
        if let Err(e) = r {
            first_err.get_or_insert(e);
        }
    }
    if let Some(e) = first_err {
        return Err(e);
    }

    let cons = shadow_constraint_names(client, plan).await?;
    for (name, s) in constraint_steps(plan, stage) {
        if name.is_some_and(|n| cons.contains(&n)) {
            continue;
        }
        on_shadow(client, &s).await?;
    }
    Ok(())
}

/// The setting of each index connection (`maintenance_work_mem`, and the shadow's lock wait).
pub fn session_step(maintenance_work_mem: &str) -> Step {
    Step::new(
        format!(
            "SET maintenance_work_mem = {}; {}",
            literal(maintenance_work_mem),
            locking::session_timeout_sql(locking::SHADOW_WAIT)
        ),
        "setting maintenance_work_mem",
    )
}

/// The index builds of `stage`, each with the temporary name of the index it creates (skipped
/// when it exists: a resumed run). They run in parallel on the index connections.
pub fn index_steps(plan: &Plan, stage: Stage) -> Vec<(String, Step)> {
    plan.indexes
        .iter()
        .filter(|i| stage.takes(i) && !i.built_by_constraint)
        .map(|ix| {
            let ts = match &ix.tablespace {
                Some(t) => format!("SET default_tablespace = {}", literal(t.as_str())),
                None => "SET default_tablespace = ''".to_string(),
            };
            let step = Step::new(
                format!("{ts}; {}", ix.create_sql),
                format!(
                    "building index {} on {}",
                    ix.final_name.as_str(),
                    plan.shadow.human()
                ),
            )
            .locks("SHARE", &plan.shadow, false)
            .note(format!("becomes {}", ix.final_name.as_str()));
            (ix.tmp_name.as_str().to_string(), step)
        })
        .collect()
}

/// The constraints of `stage`, one at a time after the index builds, each with the name of the
/// constraint it adds (skipped when it exists), and the index comments (no name: always run).
pub fn constraint_steps(plan: &Plan, stage: Stage) -> Vec<(Option<String>, Step)> {
    let shadow = &plan.shadow;
    let mut out = Vec::new();
    for ix in plan.indexes.iter().filter(|i| stage.takes(i)) {
        if let Some(sql) = &ix.constraint_sql {
            out.push((
                Some(ix.tmp_name.as_str().to_string()),
                Step::new(
                    sql.clone(),
                    format!(
                        "adding constraint {} to {}",
                        ix.final_name.as_str(),
                        shadow.human()
                    ),
                )
                .locks("ACCESS EXCLUSIVE", shadow, false)
                .note(format!("becomes {}", ix.final_name.as_str())),
            ));
        }
        if let Some(c) = &ix.comment {
            out.push((
                None,
                Step::new(
                    format!(
                        "COMMENT ON INDEX {} IS {}",
                        shadow.sibling(ix.tmp_name.as_str()),
                        literal(c)
                    ),
                    "copying an index comment",
                ),
            ));
        }
    }
    out
}

/// Privileges for the new table, exactly as the source has them: when the source has explicit
/// privileges, the owner's implicit ones are revoked first and every entry granted again (so an
/// owner that revoked some of its own privileges stays that way). Column privileges follow their
/// column through a rename. They go into the swap, after the last replay: an owner that revoked
/// its own INSERT could otherwise not replay into the shadow.
pub fn grant_statements(
    plan: &Plan,
    src: &Source,
    target: &crate::db::ident::QualifiedName,
) -> Vec<String> {
    let mut stmts = Vec::new();
    if src.table.has_acl {
        stmts.push(format!("REVOKE ALL ON {target} FROM {}", src.table.owner));
    }
    for g in &src.grants {
        match &g.column {
            None => stmts.push(g.sql(target)),
            Some(c) => {
                if let Some(col) = plan.shadow_column_of(c) {
                    let mut g = g.clone();
                    g.column = Some(col.clone());
                    stmts.push(g.sql(target));
                }
            }
        }
    }
    stmts
}

/// Row level security and policies for the new table. They go into the swap transaction, not
/// onto the shadow earlier: with FORCE ROW LEVEL SECURITY they would apply to replay's inserts.
pub fn security_statements(src: &Source, target: &crate::db::ident::QualifiedName) -> Vec<String> {
    let mut stmts = Vec::new();
    if src.table.row_security {
        stmts.push(format!("ALTER TABLE {target} ENABLE ROW LEVEL SECURITY"));
    }
    if src.table.force_row_security {
        stmts.push(format!("ALTER TABLE {target} FORCE ROW LEVEL SECURITY"));
    }
    for p in &src.policies {
        stmts.push(p.sql(target));
    }
    stmts
}

/// Which of [`attribute_steps`] a [`prepare`] call runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attributes {
    /// Those whose locks let verification read the shadow meanwhile (SHARE UPDATE EXCLUSIVE:
    /// comment, statistics targets, CLUSTER ON, `ANALYZE`).
    BesideReads,
    /// The rest (the replica identity: ACCESS EXCLUSIVE), after verification's reads.
    AfterReads,
}

impl Attributes {
    /// The part `step` (one of [`attribute_steps`]) belongs to, by the locks it takes.
    pub fn of(step: &Step) -> Attributes {
        if step.locks.iter().any(|l| l.mode == "ACCESS EXCLUSIVE") {
            Attributes::AfterReads
        } else {
            Attributes::BesideReads
        }
    }
}

/// Puts the table-level attributes of the source on the shadow and analyzes it: the steps of
/// `part` (see [`Attributes`]).
pub async fn prepare(client: &Client, plan: &Plan, src: &Source, part: Attributes) -> Result<()> {
    let ri = replica_identity_index(client, src.table.oid).await?;
    for s in attribute_steps(plan, src, ri.as_deref()) {
        if Attributes::of(&s) == part {
            on_shadow(client, &s).await?;
        }
    }
    Ok(())
}

/// The table-level attributes of the source for the shadow (comment, per-index statistics
/// targets, CLUSTER ON, replica identity), then `ANALYZE`. `replica_identity_index` is the
/// source's replica identity index ([`replica_identity_index`]).
pub fn attribute_steps(
    plan: &Plan,
    src: &Source,
    replica_identity_index: Option<&str>,
) -> Vec<Step> {
    let shadow = &plan.shadow;
    let t = &src.table;
    // Each of these takes SHARE UPDATE EXCLUSIVE (PostgreSQL's ALTER TABLE reference); the
    // replica identity, below, ACCESS EXCLUSIVE.
    let mut stmts = Vec::new();
    stmts.push(match &t.comment {
        Some(c) => format!("COMMENT ON TABLE {shadow} IS {}", literal(c)),
        None => format!("COMMENT ON TABLE {shadow} IS NULL"),
    });
    // Index settings that live outside the index definition.
    for ix in &plan.indexes {
        let orig = src.indexes.iter().find(|s| s.name == ix.final_name);
        let target = shadow.sibling(ix.tmp_name.as_str());
        // What the ALTER left of the source's targets; in a plan from before that was kept,
        // the source's.
        let stats = match &ix.column_stats {
            Some(s) => s.as_slice(),
            None => orig.map(|o| o.column_stats.as_slice()).unwrap_or_default(),
        };
        for (col, stat) in stats {
            stmts.push(format!(
                "ALTER INDEX {target} ALTER COLUMN {col} SET STATISTICS {stat}"
            ));
        }
        if ix
            .clustered
            .unwrap_or_else(|| orig.is_some_and(|o| o.clustered))
        {
            stmts.push(format!("ALTER TABLE {shadow} CLUSTER ON {}", ix.tmp_name));
        }
    }
    let shared = stmts.len();
    use crate::rewrite::plan::ReplicaIdentity as R;
    match &plan.replica_identity {
        // What the shadow said after the ALTER (issue 15: the ALTER's own setting wins).
        Some(ri) => stmts.push(format!(
            "ALTER TABLE {shadow} REPLICA IDENTITY {}",
            match ri {
                R::Default => "DEFAULT".to_string(),
                R::Full => "FULL".to_string(),
                R::Nothing => "NOTHING".to_string(),
                R::Index(tmp) => format!("USING INDEX {tmp}"),
            }
        )),
        None => carried_replica_identity(plan, t, replica_identity_index, &mut stmts),
    }
    let what = format!("carrying table attributes over to {}", shadow.human());
    let mut steps: Vec<Step> = stmts
        .into_iter()
        .enumerate()
        .map(|(i, s)| {
            let mode = if i < shared {
                "SHARE UPDATE EXCLUSIVE"
            } else {
                "ACCESS EXCLUSIVE"
            };
            Step::new(s, what.clone()).locks(mode, shadow, false)
        })
        .collect();
    steps.push(
        Step::new(
            format!("ANALYZE {shadow}"),
            format!("analyzing {}", shadow.human()),
        )
        .locks("SHARE UPDATE EXCLUSIVE", shadow, false),
    );
    steps
}

/// The source's replica identity, for a plan recorded before the shadow's own was kept.
fn carried_replica_identity(
    plan: &Plan,
    t: &crate::db::catalog::Table,
    replica_identity_index: Option<&str>,
    stmts: &mut Vec<String>,
) {
    let shadow = &plan.shadow;
    match t.replica_identity.as_str() {
        "f" => stmts.push(format!("ALTER TABLE {shadow} REPLICA IDENTITY FULL")),
        "n" => stmts.push(format!("ALTER TABLE {shadow} REPLICA IDENTITY NOTHING")),
        "i" => {
            if let Some(ix) = replica_identity_index
                .and_then(|ri| plan.indexes.iter().find(|i| i.final_name.as_str() == ri))
            {
                stmts.push(format!(
                    "ALTER TABLE {shadow} REPLICA IDENTITY USING INDEX {}",
                    ix.tmp_name
                ));
            }
        }
        _ => {}
    }
}

/// The name of `table`'s replica identity index, if it has one.
pub async fn replica_identity_index(
    client: &impl tokio_postgres::GenericClient,
    table: u32,
) -> Result<Option<String>> {
    client
        .query_opt(
            "SELECT c.relname::text FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid \
              WHERE i.indrelid = $1 AND i.indisreplident",
            &[&table],
        )
        .await
        .ctx("reading the replica identity index")?
        .map(|r| r.col(0, &"reading the replica identity index"))
        .transpose()
}

async fn existing_relations(client: &Client, plan: &Plan) -> Result<Vec<String>> {
    client
        .query(
            "SELECT c.relname::text FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid \
              WHERE i.indrelid = $1",
            &[&plan.shadow_oid],
        )
        .await
        .ctx("reading the shadow's indexes")?
        .iter()
        .map(|r| r.col(0, &"reading the shadow's indexes"))
        .collect()
}

async fn shadow_constraint_names(client: &Client, plan: &Plan) -> Result<Vec<String>> {
    client
        .query(
            "SELECT conname::text FROM pg_catalog.pg_constraint WHERE conrelid = $1",
            &[&plan.shadow_oid],
        )
        .await
        .ctx("reading the shadow's constraints")?
        .iter()
        .map(|r| r.col(0, &"reading the shadow's constraints"))
        .collect()
}

/// `--order-by`, resolved against the source before anything is created.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OrderBy {
    /// An index of the source: the shadow is clustered on its twin.
    Index(Ident),
    /// Columns of the source: the shadow is clustered on a temporary index over them.
    Columns(Vec<Ident>),
}

/// Resolves `--order-by` (an index name, or columns separated by commas, each as written in SQL:
/// `"Created At"` keeps its case) against the source. A usage error (exit 2) when it names
/// neither.
pub fn order_by(src: &Source, text: &str) -> Result<OrderBy> {
    let t = text.trim();
    let name = |s: &str| {
        let s = s.trim();
        match s.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
            Some(q) => q.replace("\"\"", "\""),
            None => s.to_lowercase(),
        }
    };
    if let Some(ix) = src.indexes.iter().find(|i| i.name.as_str() == name(t)) {
        return Ok(OrderBy::Index(ix.name.clone()));
    }
    let mut cols = Vec::new();
    for part in t.split(',') {
        let n = name(part);
        match src.columns.iter().find(|c| c.name.as_str() == n) {
            Some(c) => cols.push(c.name.clone()),
            None => {
                return Err(Error::usage(format!(
                    "--order-by {text:?}: {} has no index or column named {n:?}",
                    src.table.name.human()
                ))
                .with_state("nothing was changed")
                .with_next("name an index of the table, or its columns separated by commas"))
            }
        }
    }
    Ok(OrderBy::Columns(cols))
}

/// The statements that write the shadow's rows in `order` (an online CLUSTER): on the named
/// index's twin, or on a temporary index over the columns (as the shadow names them after the
/// ALTER), dropped again. `CLUSTER` rewrites only the shadow (ACCESS EXCLUSIVE on it, which
/// nobody else uses) and its indexes. Errors when the ALTER dropped what it names, or the index
/// is one built only at the consistency point.
pub fn cluster_steps(
    plan: &Plan,
    order: &OrderBy,
    maintenance_work_mem: &str,
) -> Result<Vec<Step>> {
    let shadow = &plan.shadow;
    let mwm = format!(
        "SET LOCAL maintenance_work_mem = {}",
        literal(maintenance_work_mem)
    );
    let cluster = |ix: &Ident| {
        Step::new(
            format!("{mwm}; CLUSTER {shadow} USING {ix}"),
            format!("writing the rows of {} in order (CLUSTER)", shadow.human()),
        )
        .locks("ACCESS EXCLUSIVE", shadow, false)
        .note("rewrites the shadow in the --order-by order; the application does not use it")
    };
    match order {
        OrderBy::Index(name) => {
            let ix = plan
                .indexes
                .iter()
                .find(|i| &i.final_name == name && !i.after_catch_up && !i.built_by_constraint)
                .ok_or_else(|| {
                    Error::usage(format!(
                        "--order-by {}: the new table has no such index before the catch-up (the ALTER dropped it, or it is a unique index built later)",
                        name.as_str()
                    ))
                    .with_next("name the index's columns instead")
                })?;
            Ok(vec![cluster(&ix.tmp_name)])
        }
        OrderBy::Columns(cols) => {
            let shadow_cols = cols
                .iter()
                .map(|c| {
                    plan.shadow_column_of(c).cloned().ok_or_else(|| {
                        Error::usage(format!("--order-by: the ALTER drops column {}", c.as_str()))
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            let tmp = Ident::new(format!("hotswap_{}_order", plan.run_id));
            Ok(vec![
                Step::new(
                    format!(
                        "{mwm}; CREATE INDEX {tmp} ON {shadow} ({})",
                        crate::db::ident::join_idents(&shadow_cols)
                    ),
                    "building the --order-by index on the shadow",
                )
                .locks("SHARE", shadow, false),
                cluster(&tmp),
                Step::new(
                    format!("DROP INDEX {}", shadow.sibling(tmp.as_str())),
                    "dropping the --order-by index",
                )
                .locks("ACCESS EXCLUSIVE", shadow, false),
            ])
        }
    }
}

/// Writes the shadow's rows in `order` ([`cluster_steps`]), each statement in its own
/// transaction with the shadow's lock wait.
pub async fn cluster(
    client: &Client,
    plan: &Plan,
    order: &OrderBy,
    maintenance_work_mem: &str,
) -> Result<()> {
    for s in cluster_steps(plan, order, maintenance_work_mem)? {
        on_shadow(client, &s).await?;
    }
    Ok(())
}

/// `pg_stats.correlation` of the first `--order-by` column on `table` (1: rows in its order;
/// near 0: no order), once analyzed.
pub async fn order_correlation(
    client: &Client,
    table: &crate::db::ident::QualifiedName,
    column: &Ident,
) -> Result<Option<f32>> {
    client
        .query_opt(
            "SELECT correlation FROM pg_catalog.pg_stats WHERE schemaname = $1 AND tablename = $2 AND attname = $3",
            &[&table.schema.as_str(), &table.name.as_str(), &column.as_str()],
        )
        .await
        .ctx("reading the correlation of the --order-by column")?
        .map(|r| r.col::<Option<f32>>(0, &"reading the correlation of the --order-by column"))
        .transpose()
        .map(Option::flatten)
}
