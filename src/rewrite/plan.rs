//! The plan of a run: every name and statement the later phases need, decided once when the
//! shadow is created and stored in `runs.plan` (JSON), so that a later process can continue the
//! run from what is recorded.

use crate::db::ident::{Ident, QualifiedName};
use serde::{Deserialize, Serialize};

/// How a shadow column gets its value from a source row.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub enum ColumnSource {
    /// Same name, same type.
    Same,
    /// Same name, explicit cast to the new type.
    Cast { from: String, to: String },
    /// Renamed by the ALTER (`RENAME COLUMN`), with a cast when its type changed too.
    Renamed {
        from: String,
        cast_to: Option<String>,
    },
    /// `ALTER COLUMN ... TYPE ... USING expr`: the expression PostgreSQL's ALTER evaluates.
    Using {
        from: String,
        expr: String,
        to: String,
    },
    /// `--map col=expr`.
    Mapped { expr: String },
    /// New column: takes its default.
    Default,
    /// Generated column: computed by the server, never copied.
    Generated,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MappedColumn {
    pub column: Ident,
    /// The source column this one descends from (same attnum), if any.
    pub origin: Option<Ident>,
    pub source: ColumnSource,
    /// The SQL expression over the source row (`None` for Default/Generated).
    pub expr: Option<String>,
}

/// A row-identity column: its source type, and the cast that turns a logged key into the
/// shadow's type (None when the type is unchanged).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct KeyColumn {
    /// The column's name in the source.
    pub name: Ident,
    /// Its name in the shadow (differs after `RENAME COLUMN`).
    pub shadow_name: Ident,
    pub source_type: String,
    pub shadow_cast: Option<String>,
    /// The shadow column's collation (quoted, qualified) when it differs from the source's: a
    /// logged key is then compared with the shadow's keys in it.
    #[serde(default)]
    pub shadow_collation: Option<String>,
}

impl KeyColumn {
    /// True when the shadow compares this key column otherwise than the source (another type
    /// or collation): two spellings the source holds equal ('A@x' and 'a@x' in citext) can then
    /// be two keys in the shadow, so the capture must log both (issue 21).
    pub fn equality_changes(&self) -> bool {
        self.shadow_cast.is_some() || self.shadow_collation.is_some()
    }
}

/// An index to build on the shadow after the copy. `create_sql` creates it under its temporary
/// name; the swap renames it to `final_name`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ShadowIndex {
    pub tmp_name: Ident,
    pub final_name: Ident,
    pub create_sql: String,
    pub tablespace: Option<Ident>,
    /// For indexes that back a constraint: the `ALTER TABLE ... ADD CONSTRAINT` that attaches
    /// it (PRIMARY KEY / UNIQUE ... USING INDEX) or, for exclusion constraints, builds it.
    pub constraint_sql: Option<String>,
    /// Exclusion constraints build their index themselves: no `create_sql` then.
    pub built_by_constraint: bool,
    /// A constraint that compares rows (a unique index other than the row identity's, an
    /// exclusion constraint): built only at the consistency point, after the catch-up, when
    /// the shadow equals the source as of one moment (issue 13; `replay`).
    #[serde(default)]
    pub after_catch_up: bool,
    pub comment: Option<String>,
    /// Only for replay (issue 15): a unique index on the source's row identity that the ALTER
    /// took away (a changed primary key). Built with the bulk indexes so replay finds rows by
    /// the logged key; the swap drops it instead of naming it.
    #[serde(default)]
    pub temporary: bool,
    /// Marked for CLUSTER after the ALTER (the source's mark carried, or the ALTER's own
    /// `CLUSTER ON` / `SET WITHOUT CLUSTER`); None in plans recorded before this was kept (the
    /// source's mark is used then).
    #[serde(default)]
    pub clustered: Option<bool>,
    /// Per-column statistics targets (index column number, target) after the ALTER: the
    /// source's, set on the shadow's index before the ALTER, as far as PostgreSQL's own ALTER
    /// kept them (it resets them on an index it re-creates, e.g. an expression index over a
    /// column whose type changes). None in plans recorded before this was kept (the source's
    /// are used then).
    #[serde(default)]
    pub column_stats: Option<Vec<(i32, i32)>>,
}

impl ShadowIndex {
    /// A plain index: not unique, backing no constraint, not the temporary index replay finds
    /// rows by. Replay looks rows up by the row identity's unique index, the constraints need
    /// theirs, and verification reads ranges of the key; nothing before the swap reads a plain
    /// index, so it is built beside verification (`Stage::Beside` in `rewrite::build`).
    /// Unique is read from `create_sql`, which `shadow::derive` writes as `CREATE UNIQUE INDEX`
    /// for every unique index (also in plans recorded by earlier versions).
    pub fn is_plain(&self) -> bool {
        !self.temporary
            && !self.built_by_constraint
            && self.constraint_sql.is_none()
            && !self.create_sql.starts_with("CREATE UNIQUE ")
    }
}

/// A constraint added to the shadow after the copy (NOT VALID checks, foreign keys).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LateConstraint {
    pub name: Ident,
    /// Definition as pg_get_constraintdef prints it, without a trailing NOT VALID.
    pub def: String,
    /// Validate after adding (false keeps a NOT VALID constraint NOT VALID).
    pub validate: bool,
    /// For a foreign key the ALTER adds: a query over the shadow that returns the key of a row
    /// the constraint would reject (none: none). Run before the swap, since PostgreSQL's ALTER
    /// fails on such a row while the NOT VALID key added in the swap would not.
    #[serde(default)]
    pub orphan_check: Option<String>,
}

impl LateConstraint {
    /// The source's foreign keys that `keep` selects, as a later step adds them again (NOT
    /// VALID, then validated if they were).
    pub fn foreign_keys(
        src: &crate::rewrite::preflight::Source,
        keep: impl Fn(&crate::db::catalog::Constraint) -> bool,
    ) -> Vec<LateConstraint> {
        src.constraints
            .iter()
            .filter(|c| c.kind == "f" && keep(c))
            .map(|c| LateConstraint {
                orphan_check: None,
                name: c.name.clone(),
                def: c
                    .def
                    .strip_suffix(" NOT VALID")
                    .unwrap_or(&c.def)
                    .to_string(),
                validate: c.validated,
            })
            .collect()
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CapturePlan {
    pub log: QualifiedName,
    pub function: QualifiedName,
    pub truncate_function: QualifiedName,
    pub trigger: Ident,
    pub truncate_trigger: Ident,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Plan {
    pub run_id: i64,
    pub source: QualifiedName,
    pub source_oid: u32,
    pub shadow: QualifiedName,
    pub shadow_oid: u32,
    pub key: Vec<KeyColumn>,
    pub columns: Vec<MappedColumn>,
    /// Source columns that no shadow column of the same name receives.
    pub dropped: Vec<Ident>,
    /// Needs `OVERRIDING SYSTEM VALUE` to insert into the shadow (identity ALWAYS columns).
    pub overriding: bool,
    pub indexes: Vec<ShadowIndex>,
    pub late_checks: Vec<LateConstraint>,
    pub foreign_keys: Vec<LateConstraint>,
    /// Foreign keys of the table that reference the table itself: added at the swap.
    pub self_foreign_keys: Vec<LateConstraint>,
    pub capture: CapturePlan,
    pub fingerprint: String,
    /// Indexes of the source dropped by the ALTER (reported, not built).
    pub dropped_indexes: Vec<Ident>,
    /// With `--revertible`: the plan of the way back (new table -> old table), whose capture
    /// the swap installs on the new table. See `revert.rs`.
    #[serde(default)]
    pub reverse: Option<Box<ReversePlan>>,
    /// The source's extended statistics objects, created on the shadow before the ALTER under
    /// temporary names, as they survived it (PostgreSQL's ALTER drops one with a dropped column,
    /// and follows renames and type changes); the swap gives them their names. None: a plan
    /// made before this existed, or a revert's: the swap creates them from their definitions.
    #[serde(default)]
    pub statistics: Option<Vec<ShadowStatistics>>,
    /// What the sample oracle found when the shadow was created (issue 13; `oracle/`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sample_check: Option<SampleCheck>,
    /// The replica identity after the ALTER (the source's, set on the shadow before it, or the
    /// ALTER's own). None: a plan made before this was kept (the source's is carried then).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replica_identity: Option<ReplicaIdentity>,
    /// What the ALTER did to the trial clone's relfilenodes: whether a rewrite is needed at all
    /// (issue 16; `fastpath`). None without an ALTER, or in a plan made before this existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rewrite_probe: Option<crate::rewrite::fastpath::Probe>,
    /// The shadow is a partitioned table (`--partition-by`, issue 15): its key and partitions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partitioning: Option<ShadowPartitioning>,
    /// The source is a partitioned table (a revert's plan after `--partition-by`): its rows are
    /// read through its parent, not `ONLY`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub source_partitioned: bool,
    /// The source's partitions at every depth (oid, name), when it is partitioned, or the
    /// partitioned tables above a partition rewritten on its own (`one_partition`): the capture
    /// triggers go on each, since a statement that names a partition fires only its own
    /// statement-level triggers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub source_partitions: Vec<(u32, QualifiedName)>,
    /// Sampled rows per partition of a partitioned shadow, and rows no partition takes
    /// (`partition_sample`, issue 15).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition_sample: Option<crate::rewrite::partition_report::PartitionSample>,
    /// The source is a partition rewritten on its own: the swap detaches it from this parent
    /// and attaches the new table with its bound (issue 15; `one_partition`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition_of: Option<crate::rewrite::one_partition::PartitionOf>,
    /// The source's per-column settings and index statistics targets when the shadow was made:
    /// the swap carries the ones changed during the run unless the ALTER set them
    /// (`rewrite::carried`). None in a plan made before this was kept, and in a revert's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settings_base: Option<SettingsBase>,
    /// The storage options the ALTER itself sets or resets (`SET (fillfactor = 40)`, `RESET
    /// (...)`, `toast.` ones): the swap applies them over the source's options as they are then,
    /// as PostgreSQL's ALTER would over the table's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alter_options: Vec<OptionChange>,
    /// A revert's: the bounds the shadow's identity sequences (the original table's) had before
    /// the forward swap narrowed them (`swap::sequences`); the revert's swap gives
    /// them back before carrying the position. Empty in a forward plan.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sequence_bounds: Vec<crate::db::catalog::SequenceBounds>,
    /// The shadow's identity columns whose sequence the ALTER positioned itself (`RESTART [WITH
    /// n]`, or `DROP IDENTITY` then `ADD GENERATED`): the swap keeps that position instead of
    /// carrying the old sequence's, as PostgreSQL's ALTER would (`shadow::identity`). Empty in a
    /// plan made before this was kept, and in a revert's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub identity_positioned_by_alter: Vec<Ident>,
}

/// One storage option the ALTER sets (`value` Some) or resets (None); `toast` for a `toast.`
/// one.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct OptionChange {
    pub toast: bool,
    pub name: String,
    pub value: Option<String>,
}

impl Plan {
    /// `FROM` target for the source's rows: `ONLY source` for a plain table (preflight refuses
    /// inheritance; ONLY keeps a child added later out), the parent of a partitioned one.
    pub fn source_from(&self) -> String {
        from_rel(&self.source, self.source_partitioned)
    }

    /// `FROM` target for the shadow's rows: the parent of a partitioned shadow reads its
    /// partitions; `ONLY shadow` otherwise.
    pub fn shadow_from(&self) -> String {
        from_rel(&self.shadow, self.partitioning.is_some())
    }
}

/// One column's settings that live outside the table's definition (`sql/column_settings.sql`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ColumnSettings {
    pub name: Ident,
    /// `SET STATISTICS`, -1 for the default.
    pub stat_target: i32,
    /// `attstorage`: p, e, x or m.
    pub storage: String,
    /// `attcompression`: empty for the default, p (pglz) or l (lz4).
    pub compression: String,
    /// `n_distinct=100`...
    pub options: Vec<String>,
    pub comment: Option<String>,
}

/// The source's settings when the run started, recorded in the plan (`rewrite::carried`): what tells a setting the
/// ALTER changed (the shadow's differs from it) from one it left alone.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct SettingsBase {
    pub columns: Vec<ColumnSettings>,
    /// Per source index (by name): its columns' statistics targets (column number, target),
    /// the default ones left out.
    pub index_stats: Vec<(Ident, Vec<(i32, i32)>)>,
    /// The replica identity: `relreplident` and, for `i`, the index's name.
    #[serde(default)]
    pub replica_identity: Option<(String, Option<Ident>)>,
    /// The owner (`ALTER TABLE ... OWNER TO` may be one of the ALTER's actions).
    #[serde(default)]
    pub owner: Option<Ident>,
}

/// `REPLICA IDENTITY` of the new table.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub enum ReplicaIdentity {
    Default,
    Full,
    Nothing,
    /// `USING INDEX`, by the index's temporary name on the shadow.
    Index(Ident),
}

/// An extended statistics object of the source on the shadow: its temporary name there, and the
/// name it takes in the swap.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ShadowStatistics {
    pub tmp_name: QualifiedName,
    pub final_name: QualifiedName,
}

/// The way back, decided when the shadow is created; completed with the names the swap chose
/// when `revert` runs.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ReversePlan {
    /// Same shape as a forward plan: source = the new table, shadow = the old table.
    pub plan: Plan,
    /// The old table's outgoing foreign keys (dropped at the swap), to add back before reverting.
    pub foreign_keys: Vec<LateConstraint>,
    /// Why reverting would not be safe (empty when it is).
    pub unsafe_reasons: Vec<String>,
    /// New columns whose values a revert gives up.
    pub lost_columns: Vec<Ident>,
}

impl Plan {
    /// A key of one integer column (smallint, integer, bigint): its chunks are planned
    /// arithmetically, and `plan` samples it by key ranges.
    pub fn has_integer_key(&self) -> bool {
        self.key.len() == 1
            && ["smallint", "integer", "bigint"].contains(&self.key[0].source_type.as_str())
    }

    /// Columns the copy writes, in order.
    pub fn copy_columns(&self) -> Vec<&Ident> {
        self.columns
            .iter()
            .filter(|c| c.expr.is_some())
            .map(|c| &c.column)
            .collect()
    }

    /// Expressions the copy reads from the source, in the order of [`Plan::copy_columns`].
    pub fn select_list(&self) -> String {
        self.columns
            .iter()
            .filter_map(|c| c.expr.as_deref())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The shadow column that descends from source column `src`, if any.
    pub fn shadow_column_of(&self, src: &Ident) -> Option<&Ident> {
        self.columns
            .iter()
            .find(|c| c.origin.as_ref() == Some(src))
            .map(|c| &c.column)
    }

    /// `"k1", "k2"` over the shadow.
    pub fn shadow_key_list(&self) -> String {
        crate::db::ident::join_idents(self.key.iter().map(|k| &k.shadow_name))
    }

    /// `"k1", "k2"` over the source.
    pub fn key_list(&self) -> String {
        crate::db::ident::join_idents(self.key.iter().map(|k| &k.name))
    }
}

/// What the sample check (the oracle, `oracle/`) did, for `plan` (in full) and `run` (one line:
/// `SampleCheck::summary`, in `oracle/report.rs`). Recorded in the plan; the oracle fills it.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct SampleCheck {
    /// False when the check could not be carried out (the reason is in `notes`).
    pub done: bool,
    /// Rows of the table that went through both the ALTER and the mapping.
    pub rows: u64,
    /// Rows with NULLs put in that went through both.
    pub edge_rows: u64,
    /// Columns set to NULL in those rows.
    pub edge_nulls: u64,
    /// Shadow columns compared.
    pub compared: Vec<String>,
    /// Shadow columns not compared, and why.
    pub skipped: Vec<SkippedColumn>,
    pub notes: Vec<String>,
    pub millis: f64,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SkippedColumn {
    pub column: String,
    pub reason: String,
}

/// The partitioned shadow, as recorded in the plan (issue 15; made by `rewrite::partitioning`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ShadowPartitioning {
    /// The partition key as PostgreSQL prints it (`pg_get_partkeydef`).
    pub key: String,
    /// Every partition of the shadow at every depth, parents first.
    pub partitions: Vec<ShadowPartition>,
}

/// A partition of the shadow.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ShadowPartition {
    /// Its name during the run.
    pub name: QualifiedName,
    /// Its oid (kept through the swap's renames).
    #[serde(default)]
    pub oid: u32,
    /// Its name after the swap: the source partition's it replaces, or the name given.
    pub final_name: QualifiedName,
    /// As PostgreSQL prints it.
    pub bound: String,
    /// Partitioned in turn (it has no storage options then).
    #[serde(default)]
    pub partitioned: bool,
    /// Storage options it takes in the swap (autovacuum is off until then).
    #[serde(default)]
    pub reloptions: Vec<String>,
    #[serde(default)]
    pub toast_options: Vec<String>,
    /// The source's partition it replaces in a rewrite of a partitioned table: its oid, and its
    /// name (which the swap frees for this one).
    #[serde(default)]
    pub replaces: Option<(u32, QualifiedName)>,
}

impl ShadowPartitioning {
    /// The partitions that hold rows (leaves) or take storage options.
    pub fn stored(&self) -> impl Iterator<Item = &ShadowPartition> {
        self.partitions.iter().filter(|p| !p.partitioned)
    }
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
