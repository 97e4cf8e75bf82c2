//! The way back (`run --revertible`, `revert`, `finish`).
//!
//! With `--revertible`, the swap installs a reverse capture on the new table: every write to it
//! records its key in a reverse log, so the old table (kept under `<table>_old`) can be brought
//! back in sync at any time. `revert` replays the reverse log into the old table through the
//! inverse mapping and swaps back with the same swap as the forward run (same lock discipline,
//! final replay under the lock), so writes made after the forward swap are not lost. `finish`
//! drops the old table and the reverse capture.
//!
//! Before doing anything, `revert` refuses what cannot be reverted safely: a column of the old
//! table that the new table no longer has (its values for rows written since the swap would be
//! lost; `--map-back col=expr` supplies them), and a row written since the swap whose values do
//! not fit the old table (checked by running the inverse mapping over exactly those rows).

use crate::db::catalog::{self, Column};
use crate::db::conn::{self, ConnSpec};
use crate::db::ident::{Ident, QualifiedName};
use crate::db::locking::{self, LockPolicy};
use crate::error::{DbContext, Error, Kind, Result, RowExt};
use crate::output::ui::say;
use crate::rewrite::capture::log_key_columns;
use crate::rewrite::mapping::MapArg;
use crate::rewrite::plan::{
    CapturePlan, ColumnSource, KeyColumn, LateConstraint, MappedColumn, Plan, ReversePlan,
    ShadowIndex,
};
use crate::rewrite::preflight::{self, Source};
use crate::rewrite::swap::{self, SwapRequest};
use crate::state::target::Target;
use crate::state::{Phase, State, Swapped};

/// Decides the way back when the shadow is created: `old` are the source's columns, `new` the
/// shadow's (after the ALTER).
pub fn reverse_plan(
    fwd: &Plan,
    src: &Source,
    new: &[Column],
    map_back: &[MapArg],
    state: &State,
) -> ReversePlan {
    let run = fwd.run_id;
    let mut unsafe_reasons = Vec::new();
    let mut columns = Vec::new();
    let mut overriding = false;
    for o in src.columns.iter() {
        if o.is_generated() {
            columns.push(MappedColumn {
                column: o.name.clone(),
                origin: None,
                source: ColumnSource::Generated,
                expr: None,
            });
            continue;
        }
        let descendant = fwd
            .columns
            .iter()
            .find(|c| c.origin.as_ref() == Some(&o.name));
        let (expr, origin) = if let Some(m) = map_back.iter().find(|m| m.column == o.name) {
            (
                Some(format!("CAST(({}) AS {})", m.expr, o.base_type)),
                descendant.map(|d| d.column.clone()),
            )
        } else if let Some(d) =
            descendant.filter(|d| matches!(d.source, ColumnSource::Using { .. }))
        {
            // A cast back would not undo an expression ((amount * 100)::bigint): the way back
            // must be said, as the way there was (issue 13).
            unsafe_reasons.push(format!(
                "column {:?} was rewritten with USING; give --map-back {}=<expression over the new row> to say how the old value is computed",
                o.name.as_str(),
                o.name.as_str()
            ));
            (None, Some(d.column.clone()))
        } else if let Some(d) = descendant {
            let n = new.iter().find(|c| c.name == d.column);
            match n {
                Some(n) if n.is_generated() => {
                    unsafe_reasons.push(format!(
                        "column {:?} became a generated column; give --map-back {}=<expression>",
                        o.name.as_str(),
                        o.name.as_str()
                    ));
                    (None, None)
                }
                Some(n) if n.type_oid == o.type_oid => {
                    (Some(n.name.to_string()), Some(n.name.clone()))
                }
                Some(n) => (
                    Some(format!("CAST({} AS {})", n.name, o.base_type)),
                    Some(n.name.clone()),
                ),
                None => (None, None),
            }
        } else {
            unsafe_reasons.push(format!(
                "column {:?} was dropped: rows written after the swap have no value for it \
                 (give --map-back {}=<expression over the new row>)",
                o.name.as_str(),
                o.name.as_str()
            ));
            (None, None)
        };
        if expr.is_some() && o.identity == "a" {
            overriding = true;
        }
        columns.push(MappedColumn {
            column: o.name.clone(),
            origin,
            source: match &expr {
                Some(e) => ColumnSource::Mapped { expr: e.clone() },
                None => ColumnSource::Default,
            },
            expr,
        });
    }
    let key = fwd
        .key
        .iter()
        .map(|k| {
            let n = new.iter().find(|c| c.name == k.shadow_name);
            let o = src.column(&k.name);
            let (new_type, cast) = match (n, o) {
                (Some(n), Some(o)) => (
                    n.type_name.clone(),
                    (n.type_oid != o.type_oid).then(|| o.base_type.clone()),
                ),
                _ => (k.source_type.clone(), None),
            };
            KeyColumn {
                name: k.shadow_name.clone(),
                shadow_name: k.name.clone(),
                source_type: new_type,
                shadow_cast: cast,
                // Not followed on the way back (a collation change of a key column).
                shadow_collation: None,
            }
        })
        .collect();
    let lost_columns = fwd
        .columns
        .iter()
        .filter(|c| c.expr.is_some() || c.source == ColumnSource::Default)
        .filter(|c| !columns.iter().any(|o| o.origin.as_ref() == Some(&c.column)))
        .map(|c| c.column.clone())
        .collect();
    let foreign_keys = LateConstraint::foreign_keys(src, |c| c.references != src.table.oid);
    let plan = Plan {
        run_id: run,
        source: fwd.source.clone(),
        source_oid: fwd.shadow_oid,
        shadow: fwd.source.clone(), // the old table's name is decided at the swap
        shadow_oid: fwd.source_oid,
        key,
        columns,
        dropped: Vec::new(),
        overriding,
        indexes: Vec::new(),
        late_checks: Vec::new(),
        foreign_keys: Vec::new(),
        // The forward swap took them off the old table, for replay into it (`swap::ddl`).
        self_foreign_keys: LateConstraint::foreign_keys(src, |c| c.references == src.table.oid),
        capture: CapturePlan {
            log: state.table(&format!("rlog_{run}")),
            function: state.table(&format!("rcapture_{run}")),
            truncate_function: state.table(&format!("rcapture_truncate_{run}")),
            trigger: Ident::new(format!("hotswap_rcapture_{run}")),
            truncate_trigger: Ident::new(format!("hotswap_rtruncate_{run}")),
        },
        fingerprint: String::new(),
        dropped_indexes: Vec::new(),
        reverse: None,
        statistics: None,
        sample_check: None,
        replica_identity: None,
        rewrite_probe: None,
        partitioning: reverse_partitioning(fwd, &mut unsafe_reasons),
        source_partitioned: fwd.partitioning.is_some(),
        // The new table's partitions, by the names they have after the swap; for a partition
        // rewritten on its own, its ancestors (the capture covers statements through them).
        source_partitions: match &fwd.partition_of {
            Some(_) => fwd.source_partitions.clone(),
            None => fwd
                .partitioning
                .iter()
                .flat_map(|p| &p.partitions)
                .map(|p| (p.oid, p.final_name.clone()))
                .collect(),
        },
        partition_sample: None,
        // A partition rewritten on its own goes back under the same parent with the same bound.
        partition_of: fwd.partition_of.clone(),
        settings_base: None,
        alter_options: Vec::new(),
        sequence_bounds: src.identity_sequence_bounds(),
        identity_positioned_by_alter: Vec::new(),
    };
    ReversePlan {
        plan,
        foreign_keys,
        unsafe_reasons,
        lost_columns,
    }
}

/// The way back for a rewritten partition tree (issue 15): the old tree is the shadow, each old
/// partition replacing the new partition that took its name. Names and storage options are
/// those at the forward swap's planning; `revert` reads the current ones by oid
/// ([`refresh_partitions`]). `None` for a plain table and for a conversion (the old table was
/// plain); a new partition with no old one (the run made it) cannot go back and is a reason
/// the revert is unsafe.
fn reverse_partitioning(
    fwd: &Plan,
    unsafe_reasons: &mut Vec<String>,
) -> Option<crate::rewrite::plan::ShadowPartitioning> {
    use crate::rewrite::plan::{ShadowPartition, ShadowPartitioning};
    let parts = fwd
        .partitioning
        .as_ref()
        .filter(|_| fwd.source_partitioned)?;
    let mut partitions = Vec::new();
    for p in &parts.partitions {
        let Some((old_oid, old_name)) = &p.replaces else {
            unsafe_reasons.push(format!(
                "partition {} was made by the rewrite and has no partition of the old table to go back to",
                p.final_name.human()
            ));
            continue;
        };
        partitions.push(ShadowPartition {
            name: old_name.clone(),
            oid: *old_oid,
            final_name: old_name.clone(),
            bound: p.bound.clone(),
            partitioned: p.partitioned,
            reloptions: Vec::new(),
            toast_options: Vec::new(),
            replaces: Some((p.oid, p.final_name.clone())),
        });
    }
    Some(ShadowPartitioning {
        key: parts.key.clone(),
        partitions,
    })
}

/// Before a revert of a partition tree: the old partitions' current names (the forward swap
/// moved them out of the way) and storage options, read by oid; refused when the new tree's
/// partitions are not the ones the reverse capture covers (a partition attached or detached
/// since the swap would lose its rows on the way back).
async fn refresh_partitions(
    ctl: &tokio_postgres::Client,
    plan: &mut Plan,
    src: &Source,
    table: &str,
) -> Result<()> {
    if let Some(of) = &plan.partition_of {
        // A partition rewritten on its own goes back by DETACH of the new one: it must still be
        // a partition of the same parent (a fresh tester detached it: the swap failed midway
        // on PostgreSQL's error).
        if src.partition_of.as_ref().map(|o| o.parent_oid) != Some(of.parent_oid) {
            return Err(Error::refused(format!(
                "cannot revert {table}: it is no longer a partition of {}",
                of.parent.human()
            ))
            .with_state("nothing was changed")
            .with_next(format!(
                "attach it back (ALTER TABLE {} ATTACH PARTITION {table} {}) and run revert again, or run `pg-hotswap finish --table {}` to keep it",
                of.parent,
                of.bound,
                crate::output::ui::shell_word(table)
            )));
        }
    }
    if plan.source_partitioned && plan.partition_of.is_none() {
        let mut now: Vec<u32> = src.partitions.iter().map(|p| p.oid).collect();
        let mut covered: Vec<u32> = plan.source_partitions.iter().map(|(o, _)| *o).collect();
        now.sort_unstable();
        covered.sort_unstable();
        if now != covered {
            return Err(Error::refused(format!(
                "cannot revert {table}: its partitions changed since the swap (a partition attached or detached since has no reverse capture)"
            ))
            .with_state("nothing was changed")
            .with_next("detach or attach partitions back as they were at the swap, or run `pg-hotswap finish` to keep the new table"));
        }
    }
    let Some(parts) = plan.partitioning.as_mut() else {
        return Ok(());
    };
    let old_root = plan.shadow_oid;
    let tree = catalog::partition_tree(ctl, old_root).await?;
    for p in parts.partitions.iter_mut() {
        let Some(now) = tree.iter().find(|t| t.oid == p.oid) else {
            return Err(Error::refused(format!(
                "cannot revert {table}: partition {} of the old table is gone or no longer in the old table",
                p.final_name.human()
            ))
            .with_state("nothing was changed"));
        };
        p.name = now.name.clone();
        p.reloptions = now.reloptions.clone();
        p.toast_options = now.toast_options.clone();
    }
    Ok(())
}

/// An earlier revert of this table that stopped without ending its run (killed, or its session
/// lost) is marked aborted: this revert starts over from the recorded forward run, and
/// `status` would otherwise show the stopped one as resumable, which `resume` refuses (a fresh
/// tester's finding). Only runs of `revert` are touched, and only while this process holds the
/// table's run lock.
async fn close_stopped_reverts(
    ctl: &tokio_postgres::Client,
    state: &State,
    oid: u32,
) -> Result<()> {
    for _ in 0..100 {
        let Some(run) = state.unfinished_run(ctl, oid).await? else {
            return Ok(());
        };
        if run.args.get("revert_of").is_none() {
            return Ok(());
        }
        state
            .finish(
                ctl,
                run.id,
                "aborted",
                Some("stopped before it ended; a later revert started over"),
            )
            .await?;
    }
    Ok(())
}

/// A TRUNCATE of the new table since the swap leaves a mark in the reverse log that replay
/// cannot apply to the old table (the rows the old table still has would come back): refused
/// before anything is changed, with what is true (a fresh tester got the forward run's message,
/// which advised `abort`).
async fn refuse_truncated(
    ctl: &tokio_postgres::Client,
    plan: &Plan,
    old: &QualifiedName,
    table: &str,
) -> Result<()> {
    let what = "looking for a TRUNCATE in the reverse log";
    let truncated: bool = ctl
        .query_one(
            &format!(
                "SELECT EXISTS (SELECT 1 FROM {} WHERE truncated)",
                plan.capture.log
            ),
            &[],
        )
        .await
        .ctx(what)?
        .col(0, &what)?;
    if truncated {
        return Err(Error::refused(format!(
            "cannot revert {table}: it (or one of its partitions) was truncated since the swap, and a TRUNCATE is not replayed into the old table"
        ))
        .with_state(format!(
            "nothing was changed; {table} keeps its rows, and the old table {} still has the rows it had at the swap",
            old.human()
        ))
        .with_next(format!(
            "run `pg-hotswap finish --table {}` to keep the new table and drop the old one",
            crate::output::ui::shell_word(table)
        )));
    }
    Ok(())
}

/// What `revert` needs besides its target.
pub struct RevertOptions {
    pub lock: LockPolicy,
    pub replay_batch: i64,
}

/// The revertible run of `oid` (the new table): (run id, forward plan, old table name, swap names).
async fn revertible_run(
    ctl: &tokio_postgres::Client,
    state: &State,
    oid: u32,
    table: &str,
) -> Result<(i64, Plan, String, serde_json::Value)> {
    let run = state
        .swapped_run(ctl, oid, Swapped::Revertible)
        .await?
        .ok_or_else(|| {
            Error::refused(format!(
                "{table} has no revertible rewrite: only a run with --revertible keeps the old table in sync, \
                 and only until `finish`"
            ))
            .with_state("nothing was changed")
        })?;
    let plan: Plan = serde_json::from_value(run.plan)
        .map_err(|e| Error::failed(format!("reading the recorded plan: {e}")))?;
    Ok((
        run.id,
        plan,
        run.old_name.unwrap_or_default(),
        run.swap.unwrap_or_default(),
    ))
}

/// `pg-hotswap revert`: swaps the old table back in, with every write made since the swap.
pub async fn revert(target: Target, opts: &RevertOptions) -> Result<()> {
    let Target {
        conn,
        table,
        state,
        client: mut ctl,
        oid,
    } = target;
    if !state.exists(&ctl).await? {
        return Err(Error::refused(format!(
            "{} has no revertible rewrite (no state schema)",
            table
        )));
    }
    if !state.try_lock_table(&ctl, oid).await? {
        return Err(
            Error::failed(format!("a pg-hotswap run is active on {}", table))
                .with_state("nothing was changed"),
        );
    }
    let (fwd_run, fwd, old_name, swap_names) = revertible_run(&ctl, &state, oid, &table).await?;
    let rev = fwd
        .reverse
        .as_ref()
        .ok_or_else(|| Error::failed("the recorded run has no reverse plan"))?;
    if !rev.unsafe_reasons.is_empty() {
        return Err(Error::refused(format!(
            "cannot revert {} safely: {}",
            table,
            rev.unsafe_reasons.join("; ")
        ))
        .with_state("nothing was changed")
        .with_next(format!("the old table {old_name} is still there; run `pg-hotswap finish --table {}` to drop it", crate::output::ui::shell_word(&table))));
    }
    let old = fwd.source.sibling(old_name.clone());
    if !catalog::names_relation(&ctl, &old, fwd.source_oid).await? {
        return Err(Error::refused(format!(
            "cannot revert {}: the old table {} is gone or was replaced",
            table,
            old.human()
        ))
        .with_state("nothing was changed"));
    }
    let src = {
        let (s, warnings) = preflight::inspect(&ctl, oid).await?;
        for w in warnings {
            say(&format!("warning: {w}"));
        }
        s
    };
    let mut plan = rev.plan.clone();
    plan.shadow = old.clone();
    plan.fingerprint = src.fingerprint.clone();
    plan.indexes = swap_names
        .get("old_indexes")
        .and_then(|v| v.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|pair| {
                    let orig = pair.get(0)?.as_str()?;
                    let now = pair.get(1)?.as_str()?;
                    Some(ShadowIndex {
                        tmp_name: Ident::new(now),
                        final_name: Ident::new(orig),
                        create_sql: String::new(),
                        tablespace: None,
                        constraint_sql: None,
                        built_by_constraint: false,
                        comment: None,
                        // The old table keeps all its unique indexes: replay into it must
                        // take complete batches (replay.rs, issue 13).
                        after_catch_up: true,
                        temporary: false,
                        clustered: None,
                        column_stats: None,
                    })
                })
                .collect()
        })
        .unwrap_or_default();

    refresh_partitions(&ctl, &mut plan, &src, &table).await?;
    if plan.partitioning.is_none() {
        // The old table gets its own storage options back, not the new table's (which has the
        // forward ALTER's `SET (...)`, the swap carries them and then these over them).
        let own = crate::rewrite::shadow::table_options(&ctl, fwd.source_oid).await?;
        let new: Vec<(bool, &String)> = src
            .table
            .reloptions
            .iter()
            .map(|o| (false, o))
            .chain(src.table.toast_options.iter().map(|o| (true, o)))
            .collect();
        let name = |o: &str| o.split_once('=').map_or(o, |(n, _)| n).to_string();
        plan.alter_options = new
            .iter()
            .filter(|(t, o)| !own.iter().any(|(t2, o2)| t2 == t && name(o2) == name(o)))
            .map(|(t, o)| crate::rewrite::plan::OptionChange {
                toast: *t,
                name: name(o),
                value: None,
            })
            .chain(own.iter().map(|(t, o)| crate::rewrite::plan::OptionChange {
                toast: *t,
                name: name(o),
                value: o.split_once('=').map(|(_, v)| v.to_string()),
            }))
            .collect();
    }
    refuse_truncated(&ctl, &plan, &old, &table).await?;
    // Rows written since the swap must fit the old table: run the inverse mapping over them.
    check_fits(&mut ctl, &plan, &table).await?;
    if !rev.lost_columns.is_empty() {
        say(&format!(
            "warning: reverting gives up the new columns {}",
            rev.lost_columns
                .iter()
                .map(|c| c.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }

    close_stopped_reverts(&ctl, &state, oid).await?;
    let args = serde_json::json!({ "revert_of": fwd_run });
    let run = state
        .create_run(&ctl, fwd.shadow_oid, &fwd.source, Some("revert"), &args)
        .await?;
    plan.run_id = run;
    // Recorded like a forward run's plan, so that `finish` can drop the table kept afterwards.
    let json = serde_json::to_value(&plan)
        .map_err(|e| Error::failed(format!("serializing the plan: {e}")))?;
    state.set_plan(&ctl, run, &json).await?;
    let result = revert_run(opts, &conn, &state, &mut ctl, &src, &plan, rev, fwd_run).await;
    match result {
        Ok(()) => Ok(()),
        Err(e) => {
            let _ = state.finish(&ctl, run, "aborted", Some(e.message())).await;
            // If the swap did not happen, the old table must not keep the foreign keys added
            // back for the revert: with stale rows they could block deletes in other tables.
            let swapped = catalog::names_relation(&ctl, &fwd.source, fwd.source_oid)
                .await
                .unwrap_or(false);
            if !swapped {
                if let Some(drop) = bound_check_drop(&plan) {
                    let _ = locking::run_ddl(
                        &ctl,
                        &opts.lock,
                        "removing the bound's check constraint added for the revert",
                        None,
                        &[drop],
                    )
                    .await;
                }
                for fk in &rev.foreign_keys {
                    let _ = locking::run_ddl(
                        &ctl,
                        &opts.lock,
                        "removing a foreign key added for the revert",
                        None,
                        &[format!(
                            "ALTER TABLE {} DROP CONSTRAINT IF EXISTS {}",
                            old, fk.name
                        )],
                    )
                    .await;
                }
            }
            // The swap's advice is a forward run's (`resume`, `abort`, options `revert` does
            // not take): a revert is continued by running it again (a fresh tester's report).
            let forward_advice = e
                .next()
                .is_some_and(|n| n.contains("resume") || n.contains("abort"));
            let e = if forward_advice {
                let table = crate::output::ui::shell_word(&table);
                let next = if e.kind() == Kind::LockTimeout {
                    format!("end the blocking transactions named above (or wait for them) and run `pg-hotswap revert --table {table}` again; `pg-hotswap finish --table {table}` keeps the new table instead")
                } else {
                    format!("fix the cause and run `pg-hotswap revert --table {table}` again; `pg-hotswap finish --table {table}` keeps the new table instead")
                };
                e.with_next(next)
            } else {
                e
            };
            Err(e.or_state(
                format!(
                    "{} is unchanged (the new table) and the old table is still kept in sync",
                    table
                ),
                "fix the cause and run `pg-hotswap revert` again",
            ))
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn revert_run(
    opts: &RevertOptions,
    conn: &ConnSpec,
    state: &State,
    ctl: &mut tokio_postgres::Client,
    src: &Source,
    plan: &Plan,
    rev: &ReversePlan,
    fwd_run: i64,
) -> Result<()> {
    state.set_phase(ctl, plan.run_id, Phase::Replay).await?;
    // The old table's foreign keys come back NOT VALID (replay's inserts are checked by them),
    // and are validated after the swap.
    let existing: Vec<String> = ctl
        .query(
            "SELECT conname::text FROM pg_catalog.pg_constraint WHERE conrelid = $1",
            &[&plan.shadow_oid],
        )
        .await
        .ctx("reading the old table's constraints")?
        .iter()
        .map(|r| r.col(0, &"reading the old table's constraints"))
        .collect::<Result<_>>()?;
    let mut to_validate = Vec::new();
    for fk in &rev.foreign_keys {
        if !existing.iter().any(|n| n == fk.name.as_str()) {
            locking::run_ddl(
                ctl,
                &opts.lock,
                &format!(
                    "adding foreign key {} back to {}",
                    fk.name.as_str(),
                    plan.shadow.human()
                ),
                None,
                &[format!(
                    "ALTER TABLE {} ADD CONSTRAINT {} {} NOT VALID",
                    plan.shadow, fk.name, fk.def
                )],
            )
            .await?;
        }
        if fk.validate {
            to_validate.push((plan.source.clone(), fk.name.clone()));
        }
    }
    if let Some(of) = &plan.partition_of {
        bound_check(ctl, opts, plan, of).await?;
    }
    let mut rc = conn::connect(conn, "revert-replay").await?;
    crate::rewrite::replay::prepare_session(&rc, plan).await?;
    let backlog = crate::rewrite::capture::backlog(&rc, plan).await?;
    say(&format!(
        "replaying {backlog} change{} made since the swap into {}",
        if backlog == 1 { "" } else { "s" },
        plan.shadow.human()
    ));
    // Revert has no pace options; it still gives up rather than chase a write load forever.
    let gov = crate::pacing::governor::Governor::inert(Default::default());
    crate::rewrite::replay::catch_up(
        &mut rc,
        plan,
        opts.replay_batch,
        opts.replay_batch,
        &gov,
        &opts.lock,
    )
    .await?;
    state.set_phase(ctl, plan.run_id, Phase::Swap).await?;
    // The rewritten table is kept as <table>_rewritten (`finish` drops it).
    let kept = catalog::free_name(
        &*ctl,
        &plan.source.schema,
        plan.source.name.as_str(),
        "_rewritten",
        &[],
    )
    .await?;
    let req = SwapRequest {
        policy: &opts.lock,
        gov: &gov,
        replay_limit: opts.replay_batch,
        old_name: Some(&kept),
        kept_suffix: "_rewritten",
        terminate_blockers_after: None,
    };
    let out = swap::swap(&mut rc, ctl, state, plan, src, &req).await?;
    say(&format!(
        "reverted: {} is the original table again (ACCESS EXCLUSIVE held {:.1} ms); the rewritten one is kept as {} (`pg-hotswap finish` drops it)",
        plan.source.human(),
        out.held.as_secs_f64() * 1000.0,
        out.old.human()
    ));
    let mut all = out.to_validate.clone();
    // The old table's own foreign keys now live on the table under its original name.
    all.extend(to_validate);
    for (_, w) in swap::validate_foreign_keys(ctl, &all, &opts.lock).await {
        say(&format!("warning: {w}"));
    }
    let c = &plan.capture;
    ctl.batch_execute(&crate::rewrite::capture::drop_log_statement(c))
        .await
        .ctx("removing the reverse log")?;
    for k in ["rlog", "rfunction", "rtrigger"] {
        state.mark_dropped(&*ctl, fwd_run, k).await?;
    }
    state.set_reverse(&*ctl, fwd_run, "reverted").await?;
    state.finish(ctl, plan.run_id, "succeeded", None).await?;
    Ok(())
}

/// A partition rewritten on its own goes back by ATTACH PARTITION, which scans the table it
/// attaches under the swap's lock unless a valid CHECK implies the bound (`one_partition`). The
/// old partition lost its partition constraint when the forward swap detached it: it gets the
/// bound back as a CHECK, added NOT VALID under the short lock timeout and validated with
/// SHARE UPDATE EXCLUSIVE, which lets replay go on writing it. The revert's swap drops it after
/// the attach (`one_partition::attach_steps`).
async fn bound_check(
    ctl: &tokio_postgres::Client,
    opts: &RevertOptions,
    plan: &Plan,
    of: &crate::rewrite::one_partition::PartitionOf,
) -> Result<()> {
    let Some(c) = &of.constraint else {
        return Ok(());
    };
    let name = crate::rewrite::one_partition::bound_constraint(plan.run_id);
    let old = &plan.shadow;
    locking::run_ddl(
        ctl,
        &opts.lock,
        &format!(
            "giving {} its partition bound as a check constraint",
            old.human()
        ),
        None,
        &[format!(
            "ALTER TABLE {old} ADD CONSTRAINT {name} CHECK ({c}) NOT VALID"
        )],
    )
    .await?;
    locking::run_ddl(
        ctl,
        &opts.lock,
        &format!("validating the bound's check constraint on {}", old.human()),
        None,
        &[format!("ALTER TABLE {old} VALIDATE CONSTRAINT {name}")],
    )
    .await?;
    Ok(())
}

/// The statement that removes [`bound_check`]'s constraint after a failed revert.
fn bound_check_drop(plan: &Plan) -> Option<String> {
    plan.partition_of.as_ref()?.constraint.as_ref()?;
    Some(format!(
        "ALTER TABLE {} DROP CONSTRAINT IF EXISTS {}",
        plan.shadow,
        crate::rewrite::one_partition::bound_constraint(plan.run_id)
    ))
}

/// Runs the inverse mapping over the rows written since the swap, in a transaction that is
/// rolled back: a value that no longer fits (a bigint beyond the old int, a longer string)
/// fails here, before anything is changed.
async fn check_fits(ctl: &mut tokio_postgres::Client, plan: &Plan, table: &str) -> Result<()> {
    let kcols = log_key_columns(plan);
    let tx = ctl
        .transaction()
        .await
        .ctx("checking the rows written since the swap")?;
    let sql = format!(
        // count(<row>) makes the server evaluate every mapped value (a bare count(*) would not).
        "SELECT count(ROW({})::text) FROM {} WHERE ({}) IN (SELECT {} FROM {} WHERE NOT truncated)",
        plan.select_list(),
        plan.source_from(),
        plan.key_list(),
        crate::db::ident::join_idents(&kcols),
        plan.capture.log
    );
    let r = tx.query_one(&sql, &[]).await;
    drop(tx);
    r.map(|_| ()).map_err(|e| {
        Error::db(format_args!("cannot revert {table}: a row written since the swap does not fit the old table"), e)
            .with_kind(Kind::Refused)
            .with_state("nothing was changed")
            .with_next("the new table keeps its data; run `pg-hotswap finish` to drop the old table once you are sure")
    })
}

/// What `finish` needs besides its target.
pub struct FinishOptions {
    pub lock: LockPolicy,
}

/// `pg-hotswap finish`: drops the kept old table and the reverse capture of the table's last
/// rewrite. Returns the name of the table dropped.
pub async fn finish(target: Target, opts: &FinishOptions) -> Result<Option<QualifiedName>> {
    let Target {
        table: table_arg,
        state,
        client: ctl,
        oid,
        ..
    } = target;
    if !state.exists(&ctl).await? {
        say(&format!("{} has no rewrite to finish", table_arg));
        return Ok(None);
    }
    if !state.try_lock_table(&ctl, oid).await? {
        return Err(
            Error::failed(format!("a pg-hotswap run is active on {}", table_arg))
                .with_state("nothing was changed"),
        );
    }
    let Some(last) = state.swapped_run(&ctl, oid, Swapped::Unfinished).await? else {
        say(&format!("{} has no rewrite to finish", table_arg));
        return Ok(None);
    };
    let run = last.id;
    let plan: Plan = serde_json::from_value(last.plan)
        .map_err(|e| Error::failed(format!("reading the recorded plan: {e}")))?;
    let old_name = last.old_name;
    let reverse = last.reverse;
    if reverse.as_deref() == Some("active") {
        if let Some(rev) = &plan.reverse {
            let c = &rev.plan.capture;
            let table = plan.source.clone();
            // On the new table and, when it is partitioned, on each of its partitions.
            let drops: Vec<String> = crate::rewrite::capture::tree(&rev.plan)
                .into_iter()
                .flat_map(|t| {
                    crate::rewrite::capture::drop_trigger_statements(
                        &c.trigger,
                        &c.truncate_trigger,
                        t,
                    )
                })
                .collect();
            locking::run_ddl(
                &ctl,
                &opts.lock,
                &format!("removing the reverse capture from {}", table.human()),
                Some(oid),
                &drops,
            )
            .await?;
            ctl.batch_execute(&crate::rewrite::capture::drop_log_statement(c))
                .await
                .ctx("removing the reverse log")?;
            for k in ["rlog", "rfunction", "rtrigger"] {
                state.mark_dropped(&ctl, run, k).await?;
            }
        }
    }
    let mut dropped = None;
    if let Some(old) = old_name {
        let old_q = plan.source.sibling(old);
        let same = catalog::names_relation(&ctl, &old_q, plan.source_oid).await?;
        if !same {
            say(&format!(
                "the old table {} is not the one the rewrite left (renamed, dropped or replaced since): nothing was dropped",
                old_q.human()
            ));
        }
        if same {
            locking::run_ddl(
                &ctl,
                &opts.lock,
                &format!("dropping the old table {}", old_q.human()),
                None,
                &[format!("DROP TABLE {old_q}")],
            )
            .await?;
            say(&format!("dropped the old table {}", old_q.human()));
            dropped = Some(old_q);
        }
    }
    state.set_reverse(&ctl, run, "finished").await?;
    Ok(dropped)
}
