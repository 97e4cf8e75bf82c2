//! No rewrite when none is needed (issue 16): whether the ALTER needs a copy at all, decided in
//! one place ([`decide`]), and, when it does not, the statements that apply it to the live table
//! instead ([`InPlace`]) and their execution ([`apply`]).
//!
//! How it is decided — by asking PostgreSQL, not by a hand list: the shadow's trial
//! (`shadow::build_in`, rolled back when `plan` or `run` only try it) creates an empty clone of
//! the table with all its indexes and applies the ALTER to it. [`Snapshot::read`] records the
//! relfilenode of the clone and of each of its indexes before the ALTER, [`Probe::compare`]
//! after it: a changed relfilenode of the table means PostgreSQL rewrote it, a vanished index
//! relfilenode that it rebuilt an index. Either (or an option that only makes sense for a copy)
//! takes the rewrite path, with the reason in [`Why`].
//!
//! Invariant kept (DESIGN.md, "Every DDL on the live table uses a short lock_timeout and
//! retries"): every statement on the live table runs under `--lock-timeout` and is retried with
//! jittered backoff up to `--max-lock-attempts` (`db::locking::Retry`), never an unbounded wait;
//! and nothing long runs under ACCESS EXCLUSIVE: CHECK and FOREIGN KEY constraints are added
//! `NOT VALID` and validated afterwards (SHARE UPDATE EXCLUSIVE), `SET NOT NULL` follows a
//! validated `CHECK (col IS NOT NULL)` (so PostgreSQL skips its scan; the helper is dropped in
//! the same transaction), `ADD UNIQUE` / `PRIMARY KEY` builds its index `CONCURRENTLY` and then
//! attaches it (`USING INDEX`). If a step fails, the helpers, the unvalidated constraints and the
//! indexes built so far are removed again, and the error says what was already applied.

mod apply;
mod probe;
mod stopped;

pub use apply::{apply, Applied};
pub use probe::{NewConstraint, NewIndex, Probe, Snapshot};
pub use stopped::{aborted_message, remove_leftovers};

use crate::db::ident::{Ident, QualifiedName};
use crate::rewrite::alter_text::{self, Kind as Tok, Token};
use crate::rewrite::preflight::Source;
use crate::rewrite::step::Step;

/// Why the rewrite path is taken.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Why {
    /// `--force-rewrite`.
    Forced,
    /// No `--alter`: rebuilding the table is the point (an online VACUUM FULL).
    NoAlter,
    /// `--order-by`: the rows must be written anew, in order.
    OrderBy,
    /// `--revertible`: the way back keeps the old table, which only a copy has.
    Revertible,
    /// `--map`: a computed or renamed column is filled by the copy.
    Maps,
    /// `--partition-by`: the rows move into a partitioned table (issue 15).
    Partitioning,
    /// PostgreSQL rewrote the clone (its relfilenode changed).
    TableRewritten,
    /// The ALTER changes storage parameters (fillfactor, toast_tuple_target...), which only
    /// pages written later follow: the copy writes every row under them (DESIGN.md lists "a
    /// different fillfactor" among the rewrites the tool is for).
    StorageParameters,
    /// PostgreSQL rebuilt an index of the clone.
    IndexRebuilt(String),
    /// The ALTER creates an index PostgreSQL would build under ACCESS EXCLUSIVE (an inline
    /// UNIQUE, an EXCLUDE constraint), which the copy builds without blocking.
    IndexUnderLock(String),
    /// The ALTER adds a constraint inside another action (a column constraint), which
    /// PostgreSQL would check with a scan under ACCESS EXCLUSIVE.
    ConstraintUnderLock(String),
    /// The ALTER text could not be read into actions.
    Unreadable(String),
    /// The ALTER drops a key (issue 15): in place, the table would be without it until a new
    /// one is built, and statements that need it (ON CONFLICT, replicated UPDATEs) would fail;
    /// the copy keeps a key at every moment.
    KeyDropped(String),
    /// The ALTER drops, renames or retypes something and also adds what must be validated or
    /// built afterwards: in place the first would commit before the second could fail, which
    /// PostgreSQL's ALTER never leaves (a fresh tester, session 14: `DROP COLUMN legacy, ADD
    /// CHECK ...` lost the column's values when the check failed).
    NotAtomic(String),
}

impl std::fmt::Display for Why {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Why::Forced => f.write_str("--force-rewrite was given"),
            Why::NoAlter => f.write_str("no --alter: the table is rebuilt as it is"),
            Why::Partitioning => {
                f.write_str("--partition-by moves the rows into a partitioned table")
            }
            Why::OrderBy => f.write_str("--order-by writes the rows anew, in order"),
            Why::Revertible => f.write_str(
                "--revertible keeps the old table to swap back to, which only a copy has",
            ),
            Why::Maps => f.write_str("--map fills columns through the copy"),
            Why::TableRewritten => {
                f.write_str("PostgreSQL rewrites the table for this ALTER (its relfilenode changed on a trial clone)")
            }
            Why::StorageParameters => f.write_str(
                "the ALTER changes storage parameters, which only rows written later follow; the copy writes every row under them",
            ),
            Why::IndexRebuilt(i) => write!(
                f,
                "PostgreSQL rebuilds index {i} for this ALTER (its relfilenode changed on a trial clone)"
            ),
            Why::IndexUnderLock(i) => write!(
                f,
                "the ALTER creates index {i}, which PostgreSQL would build under ACCESS EXCLUSIVE"
            ),
            Why::ConstraintUnderLock(c) => write!(
                f,
                "the ALTER adds constraint {c} inside another action, which PostgreSQL would check under ACCESS EXCLUSIVE"
            ),
            Why::Unreadable(e) => write!(f, "the --alter text could not be split into actions ({e})"),
            Why::NotAtomic(a) => write!(
                f,
                "the ALTER both changes what it cannot give back ({a}) and adds constraints or indexes checked afterwards: in place a failed check would leave the first done; the copy applies the whole ALTER at the swap"
            ),
            Why::KeyDropped(k) => write!(
                f,
                "the ALTER drops the key {k}: in place the table would be without it until the new one is built; the copy keeps a key at every moment"
            ),
        }
    }
}

/// What the run options ask, as far as the decision is concerned.
#[derive(Clone, Copy, Debug, Default)]
pub struct Ask<'a> {
    pub alter: Option<&'a str>,
    pub force_rewrite: bool,
    pub order_by: bool,
    pub revertible: bool,
    pub maps: bool,
    pub partitioning: bool,
}

impl Ask<'_> {
    /// The reason to rewrite that needs no trial, if any.
    pub fn rewrite_anyway(&self) -> Option<Why> {
        if self.force_rewrite {
            Some(Why::Forced)
        } else if self.partitioning {
            Some(Why::Partitioning)
        } else if self.alter.is_none() {
            Some(Why::NoAlter)
        } else if self.order_by {
            Some(Why::OrderBy)
        } else if self.revertible {
            Some(Why::Revertible)
        } else if self.maps {
            Some(Why::Maps)
        } else {
            None
        }
    }
}

/// The decision.
#[derive(Clone, Debug)]
pub enum Decision {
    /// No rewrite needed: these statements instead.
    InPlace(InPlace),
    Rewrite(Why),
}

impl Decision {
    /// "no rewrite needed" or "rewrite: <why>", for people.
    pub fn describe(&self) -> String {
        match self {
            Decision::InPlace(_) => {
                "no rewrite needed: PostgreSQL applies this ALTER without rewriting the table \
                 (relfilenodes unchanged on a trial clone)"
                    .to_string()
            }
            Decision::Rewrite(w) => format!("rewrite: {w}"),
        }
    }
}

/// One unit of the in-place path: a transaction under the lock rule, or one statement that
/// cannot run in a transaction (`CREATE INDEX CONCURRENTLY`).
#[derive(Clone, Debug)]
pub enum Unit {
    Transaction {
        what: String,
        steps: Vec<Step>,
    },
    Concurrently {
        what: String,
        step: Step,
        /// `DROP INDEX CONCURRENTLY IF EXISTS` of the index the step builds.
        undo: Box<Step>,
        /// The index the step builds.
        index: Ident,
    },
}

impl Unit {
    pub fn steps(&self) -> &[Step] {
        match self {
            Unit::Transaction { steps, .. } => steps,
            Unit::Concurrently { step, .. } => std::slice::from_ref(step),
        }
    }
    pub fn in_transaction(&self) -> bool {
        matches!(self, Unit::Transaction { .. })
    }
}

/// The statements that apply the ALTER to the live table, in order, and what to remove if one
/// fails (helper and unvalidated constraints, indexes built for a constraint).
#[derive(Clone, Debug)]
pub struct InPlace {
    pub table: QualifiedName,
    pub units: Vec<Unit>,
    /// Per unit index: constraints added NOT VALID by earlier units that are not validated (or,
    /// for helpers, not dropped) by the time that unit starts.
    pending_constraints: Vec<Vec<Ident>>,
    /// Per unit index: indexes built by earlier units and not yet attached.
    pending_indexes: Vec<Vec<Ident>>,
}

/// What one action of the ALTER is, for the in-place path.
enum Action<'a> {
    /// Run as written, in the first transaction.
    Plain(&'a str),
    /// `ADD [CONSTRAINT n] CHECK ...` / `FOREIGN KEY ...` (without NOT VALID).
    Validated {
        name: Option<Ident>,
        kind: &'static str,
        body: &'a str,
    },
    /// `ADD [CONSTRAINT n] CHECK ... NOT VALID` / `FOREIGN KEY ... NOT VALID`: added in the
    /// first transaction, under the name the trial gives it (PostgreSQL checks no existing
    /// row).
    NotValid {
        name: Option<Ident>,
        kind: &'static str,
        /// From `CHECK` / `FOREIGN` to the end, `NOT VALID` included.
        body: &'a str,
    },
    /// `VALIDATE CONSTRAINT n` of a constraint the table has: its own unit, under SHARE UPDATE
    /// EXCLUSIVE (in the first transaction it scanned the table under ACCESS EXCLUSIVE; a fresh
    /// tester, session 14: 3.2 s), and left NOT VALID, as it was, should it fail.
    Revalidate(Ident),
    /// `ALTER [COLUMN] c SET NOT NULL`.
    NotNull(Ident),
    /// `ADD [CONSTRAINT n] UNIQUE ...` / `PRIMARY KEY ...` (not `USING INDEX`).
    Unique { name: Option<Ident>, primary: bool },
}

fn word(sql: &str, t: Option<&Token>) -> Option<String> {
    t.filter(|t| t.kind == Tok::Word)
        .map(|t| sql[t.start..t.end].to_ascii_lowercase())
}

fn is(sql: &str, t: Option<&Token>, w: &str) -> bool {
    word(sql, t).as_deref() == Some(w)
}

/// Words at parenthesis depth 0 of an action (lower-cased).
fn top_words(sql: &str, toks: &[Token]) -> Vec<String> {
    let mut depth = 0;
    let mut out = Vec::new();
    for t in toks {
        match t.kind {
            Tok::Open => depth += 1,
            Tok::Close => depth -= 1,
            Tok::Word if depth == 0 => out.push(sql[t.start..t.end].to_ascii_lowercase()),
            _ => {}
        }
    }
    out
}

/// Reads one action of `alter` (its tokens, its text).
fn classify<'a>(alter: &'a str, toks: &[Token], text: &'a str) -> Action<'a> {
    let t = |i: usize| toks.get(i);
    let words = top_words(alter, toks);
    if is(alter, t(0), "add") {
        let (name, i) = if is(alter, t(1), "constraint") {
            (t(2).and_then(|x| alter_text::ident_of(alter, x)), 3)
        } else {
            (None, 1)
        };
        let ends_not_valid = words.len() >= 2 && words[words.len() - 2..] == ["not", "valid"];
        let end = toks.last().map(|x| x.end).unwrap_or(0);
        let rest = || t(i).map(|x| &alter[x.start..end]).unwrap_or("");
        let kind = if is(alter, t(i), "check") {
            Some("c")
        } else if is(alter, t(i), "foreign") && is(alter, t(i + 1), "key") {
            Some("f")
        } else {
            None
        };
        match kind {
            Some(kind) if ends_not_valid => {
                return Action::NotValid {
                    name,
                    kind,
                    body: rest(),
                }
            }
            Some(kind) => {
                return Action::Validated {
                    name,
                    kind,
                    body: rest(),
                }
            }
            None => {}
        }
        let using_index = words.windows(2).any(|w| w == ["using", "index"])
            && !words
                .windows(3)
                .any(|w| w == ["using", "index", "tablespace"]);
        if is(alter, t(i), "unique") && !using_index {
            return Action::Unique {
                name,
                primary: false,
            };
        }
        if is(alter, t(i), "primary") && is(alter, t(i + 1), "key") && !using_index {
            return Action::Unique {
                name,
                primary: true,
            };
        }
        return Action::Plain(text);
    }
    if is(alter, t(0), "validate") && is(alter, t(1), "constraint") && toks.len() == 3 {
        if let Some(c) = t(2).and_then(|x| alter_text::ident_of(alter, x)) {
            return Action::Revalidate(c);
        }
    }
    // ALTER [COLUMN] c SET NOT NULL
    let n = toks.len();
    if is(alter, t(0), "alter")
        && (n == 5 || (n == 6 && is(alter, t(1), "column")))
        && is(alter, t(n - 3), "set")
        && is(alter, t(n - 2), "not")
        && is(alter, t(n - 1), "null")
    {
        if let Some(c) = t(n - 4).and_then(|x| alter_text::ident_of(alter, x)) {
            return Action::NotNull(c);
        }
    }
    Action::Plain(text)
}

/// Whether an action run as written loses something a failed step after it could not give back:
/// a DROP, a RENAME, a type change (judged from its words; a false alarm only costs a copy).
fn cannot_be_given_back(text: &str) -> bool {
    let t = text.trim_start().to_ascii_lowercase();
    t.starts_with("drop")
        || t.starts_with("rename")
        || (t.starts_with("alter")
            && (t.contains(" type ") || t.contains(" set data type ") || t.contains(" drop ")))
}

/// The name of the n-th helper `CHECK (col IS NOT NULL)`.
fn helper_name(n: usize) -> Ident {
    Ident::new(format!("hotswap_not_null_{n}"))
}

/// Takes the first of `pool` that `pick` accepts and nobody took yet.
fn claim<T>(pool: &[T], taken: &mut [bool], pick: impl Fn(&T) -> bool) -> Option<usize> {
    let i = (0..pool.len()).find(|&i| !taken[i] && pick(&pool[i]))?;
    taken[i] = true;
    Some(i)
}

/// Decides, from the run's options and the trial's [`Probe`], whether the ALTER needs a
/// rewrite; when not, the statements that apply it in place.
pub fn decide(ask: &Ask<'_>, probe: &Probe, src: &Source) -> Decision {
    if ask.rewrite_anyway().is_none() {
        if let Some(k) = ask.alter.and_then(|a| dropped_key(a, src)) {
            return Decision::Rewrite(Why::KeyDropped(k));
        }
    }
    let not_null = |c: &Ident| src.column(c).is_some_and(|x| x.not_null);
    decide_for(ask, probe, &src.table.name, &not_null)
}

/// The first index-backed constraint of the table (primary key, unique, exclusion) that a
/// `DROP CONSTRAINT` action of `alter` names.
fn dropped_key(alter: &str, src: &Source) -> Option<String> {
    let refs = alter_text::object_names(alter).ok()?;
    for (toks, _) in alter_text::actions(alter).ok()? {
        let (Some(a), Some(z)) = (toks.first(), toks.last()) else {
            continue;
        };
        if !alter[a.start..a.end].eq_ignore_ascii_case("drop") {
            continue;
        }
        let named = refs.iter().filter(|r| {
            r.start >= a.start && r.end <= z.end && r.role == alter_text::NameRole::Existing
        });
        for r in named {
            if src
                .indexes
                .iter()
                .any(|i| i.name == r.name && i.constraint_type.is_some())
            {
                return Some(r.name.as_str().to_string());
            }
        }
    }
    None
}

/// [`decide`] for `table`, whose columns `not_null` tells apart.
fn decide_for(
    ask: &Ask<'_>,
    probe: &Probe,
    table: &QualifiedName,
    not_null: &dyn Fn(&Ident) -> bool,
) -> Decision {
    if let Some(w) = ask.rewrite_anyway() {
        return Decision::Rewrite(w);
    }
    if probe.table_rewritten {
        return Decision::Rewrite(Why::TableRewritten);
    }
    if probe.storage_changed {
        return Decision::Rewrite(Why::StorageParameters);
    }
    if let Some(i) = probe.rebuilt_indexes.first() {
        return Decision::Rewrite(Why::IndexRebuilt(i.clone()));
    }
    let alter = ask.alter.unwrap_or_default();
    match in_place(alter, probe, table, not_null) {
        Ok(p) => Decision::InPlace(p),
        Err(w) => Decision::Rewrite(w),
    }
}

/// The in-place statements for `alter`, or why there are none.
fn in_place(
    alter: &str,
    probe: &Probe,
    table: &QualifiedName,
    not_null: &dyn Fn(&Ident) -> bool,
) -> std::result::Result<InPlace, Why> {
    let actions = alter_text::actions(alter).map_err(|e| Why::Unreadable(e.to_string()))?;
    let mut idx_taken = vec![false; probe.new_indexes.len()];
    let mut con_taken = vec![false; probe.new_constraints.len()];
    let parsed: Vec<Action<'_>> = actions
        .iter()
        .map(|(toks, text)| classify(alter, toks, text))
        .collect();
    // Named constraints and indexes claim theirs first; unnamed ones then take the rest in order.
    for a in &parsed {
        match a {
            Action::Validated {
                name: Some(n),
                kind,
                ..
            }
            | Action::NotValid {
                name: Some(n),
                kind,
                ..
            } => {
                claim(&probe.new_constraints, &mut con_taken, |c| {
                    &c.name == n && c.kind == *kind
                });
            }
            Action::Unique { name: Some(n), .. } => {
                claim(&probe.new_indexes, &mut idx_taken, |i| &i.name == n);
            }
            _ => {}
        }
    }
    let mut first: Vec<String> = Vec::new();
    let mut first_locks_fk = false;
    let mut validations: Vec<(Ident, &'static str)> = Vec::new();
    let mut helpers: Vec<(Ident, Ident)> = Vec::new();
    let mut revalidations: Vec<Ident> = Vec::new();
    let mut builds: Vec<(NewIndex, bool)> = Vec::new();
    // A constraint's name: the ALTER's, or the one the trial gives an unnamed one (in order of
    // the actions, as PostgreSQL made them). NOT VALID ones are named this way too: run as
    // written, an unnamed one could take the name of a constraint named later in the ALTER.
    let mut constraint_name = |name: &Option<Ident>, kind: &str, body: &str| match name {
        Some(n) => Ok(n.clone()),
        None => claim(&probe.new_constraints, &mut con_taken, |c| c.kind == kind)
            .map(|i| probe.new_constraints[i].name.clone())
            .ok_or_else(|| Why::ConstraintUnderLock(body.to_string())),
    };
    for a in &parsed {
        match a {
            Action::Plain(text) => first.push(text.to_string()),
            Action::Validated { name, kind, body } => {
                let name = constraint_name(name, kind, body)?;
                first_locks_fk |= *kind == "f";
                first.push(format!("ADD CONSTRAINT {name} {body} NOT VALID"));
                validations.push((name, kind));
            }
            Action::NotValid { name, kind, body } => {
                let name = constraint_name(name, kind, body)?;
                first_locks_fk |= *kind == "f";
                first.push(format!("ADD CONSTRAINT {name} {body}"));
            }
            Action::Revalidate(c) => revalidations.push(c.clone()),
            Action::NotNull(col) => {
                let already = not_null(col);
                if already {
                    first.push(format!("ALTER COLUMN {col} SET NOT NULL"));
                } else {
                    let h = helper_name(helpers.len());
                    first.push(format!(
                        "ADD CONSTRAINT {h} CHECK ({col} IS NOT NULL) NOT VALID"
                    ));
                    helpers.push((h, col.clone()));
                }
            }
            Action::Unique { name, primary } => {
                let kind = if *primary { "p" } else { "u" };
                let i = match name {
                    Some(n) => probe.new_indexes.iter().position(|i| &i.name == n),
                    None => claim(&probe.new_indexes, &mut idx_taken, |i| {
                        i.constraint.as_deref() == Some(kind)
                    }),
                }
                .ok_or_else(|| Why::IndexUnderLock(format!("of {}", table.human())))?;
                let ix = probe.new_indexes[i].clone();
                if *primary {
                    // PRIMARY KEY USING INDEX sets the columns NOT NULL: validated first.
                    for c in &ix.key_columns {
                        let nn = not_null(c);
                        if !nn && !helpers.iter().any(|(_, h)| h == c) {
                            let h = helper_name(helpers.len());
                            first.push(format!(
                                "ADD CONSTRAINT {h} CHECK ({c} IS NOT NULL) NOT VALID"
                            ));
                            helpers.push((h, c.clone()));
                        }
                    }
                }
                builds.push((ix, *primary));
            }
        }
    }
    if let Some(i) = idx_taken.iter().position(|t| !t) {
        return Err(Why::IndexUnderLock(
            probe.new_indexes[i].name.as_str().into(),
        ));
    }
    if let Some(i) = con_taken.iter().position(|t| !t) {
        return Err(Why::ConstraintUnderLock(
            probe.new_constraints[i].name.as_str().into(),
        ));
    }

    // Only additions may commit before the checks that follow them can fail: whatever drops,
    // renames or retypes is applied at once by the copy's swap instead.
    let later = !validations.is_empty()
        || !helpers.is_empty()
        || !revalidations.is_empty()
        || !builds.is_empty();
    if later {
        if let Some(a) = parsed.iter().find_map(|a| match a {
            Action::Plain(text) if cannot_be_given_back(text) => Some(text.to_string()),
            _ => None,
        }) {
            return Err(Why::NotAtomic(a));
        }
    }
    let mut units = Vec::new();
    let exclusive = |s: Step| s.locks("ACCESS EXCLUSIVE", table, true);
    if !first.is_empty() {
        let mut s = exclusive(
            Step::new(
                format!("ALTER TABLE {table} {}", first.join(", ")),
                format!("applying the ALTER to {} in place", table.human()),
            )
            .note("no rewrite: PostgreSQL changes only the catalog; constraints are added NOT VALID and validated next, without blocking writes")
            .single(),
        );
        if first_locks_fk {
            s = s.note("no rewrite; a FOREIGN KEY added NOT VALID also locks the referenced table SHARE ROW EXCLUSIVE for a moment");
        }
        units.push(Unit::Transaction {
            what: format!("applying the ALTER to {} in place", table.human()),
            steps: vec![s],
        });
    }
    // The ALTER's own VALIDATEs last: a failure leaves nothing of them to remove.
    let all_validations = validations
        .iter()
        .cloned()
        .chain(helpers.iter().map(|(h, _)| (h.clone(), "c")))
        .chain(revalidations.iter().map(|c| (c.clone(), "c")));
    for (name, kind) in all_validations {
        let what = format!(
            "validating constraint {} of {}",
            name.as_str(),
            table.human()
        );
        let mut s = Step::new(
            format!("ALTER TABLE {table} VALIDATE CONSTRAINT {name}"),
            what.clone(),
        )
        .locks("SHARE UPDATE EXCLUSIVE", table, true)
        .note("scans the table without blocking its reads and writes");
        if kind == "f" {
            s = s.note("scans the table without blocking its reads and writes; locks the referenced table ROW SHARE");
        }
        units.push(Unit::Transaction {
            what,
            steps: vec![s],
        });
    }
    for (ix, _) in &builds {
        let what = format!("building index {} of {}", ix.name.as_str(), table.human());
        let step = Step::new(
            format!(
                "CREATE UNIQUE INDEX CONCURRENTLY {} ON {table} USING {}",
                ix.name, ix.body
            ),
            what.clone(),
        )
        .locks("SHARE UPDATE EXCLUSIVE", table, true)
        .note("builds without blocking writes; waits (at most --lock-timeout) for transactions older than it");
        let undo = Step::new(
            format!(
                "DROP INDEX CONCURRENTLY IF EXISTS {}",
                table.sibling(ix.name.as_str())
            ),
            format!("removing the unfinished index {}", ix.name.as_str()),
        );
        units.push(Unit::Concurrently {
            what,
            step,
            undo: Box::new(undo),
            index: ix.name.clone(),
        });
    }
    let mut last: Vec<Step> = Vec::new();
    if !helpers.is_empty() {
        // The helpers are dropped by a statement of their own: dropped in the same ALTER
        // TABLE, they no longer prove anything when PostgreSQL checks the column at its end,
        // and it scans the whole table under ACCESS EXCLUSIVE (a fresh tester, session 14:
        // 85 ms for 1,000,000 rows, growing with the table).
        let parts: Vec<String> = helpers
            .iter()
            .map(|(_, c)| format!("ALTER COLUMN {c} SET NOT NULL"))
            .collect();
        last.push(exclusive(
            Step::new(
                format!("ALTER TABLE {table} {}", parts.join(", ")),
                format!("setting NOT NULL on {}", table.human()),
            )
            .note("no scan: a validated CHECK (col IS NOT NULL) proves it"),
        ));
    }
    for (ix, primary) in &builds {
        let deferrable = match (ix.deferrable, ix.deferred) {
            (true, true) => " DEFERRABLE INITIALLY DEFERRED",
            (true, false) => " DEFERRABLE",
            _ => "",
        };
        last.push(exclusive(Step::new(
            format!(
                "ALTER TABLE {table} ADD CONSTRAINT {n} {} USING INDEX {n}{deferrable}",
                if *primary { "PRIMARY KEY" } else { "UNIQUE" },
                n = ix.name
            ),
            format!(
                "attaching constraint {} to {}",
                ix.name.as_str(),
                table.human()
            ),
        )));
    }
    if !helpers.is_empty() {
        let parts: Vec<String> = helpers
            .iter()
            .map(|(h, _)| format!("DROP CONSTRAINT {h}"))
            .collect();
        last.push(exclusive(Step::new(
            format!("ALTER TABLE {table} {}", parts.join(", ")),
            format!("removing the helper checks from {}", table.human()),
        )));
    }
    if !last.is_empty() {
        units.push(Unit::Transaction {
            what: format!("finishing the ALTER of {}", table.human()),
            steps: last,
        });
    }

    // What a failure at each unit leaves to remove.
    let n_first = usize::from(!first.is_empty());
    let n_valid = validations.len() + helpers.len() + revalidations.len();
    let mut pending_constraints = Vec::new();
    let mut pending_indexes = Vec::new();
    for u in 0..units.len() {
        let mut cons = Vec::new();
        if u >= n_first {
            // Unvalidated user constraints: those whose VALIDATE has not committed.
            for (k, (name, _)) in validations.iter().enumerate() {
                if u <= n_first + k {
                    cons.push(name.clone());
                }
            }
            // Helpers until the last unit commits.
            cons.extend(helpers.iter().map(|(h, _)| h.clone()));
        }
        pending_constraints.push(cons);
        let built = u.saturating_sub(n_first + n_valid).min(builds.len());
        pending_indexes.push(
            builds[..built]
                .iter()
                .map(|(i, _)| i.name.clone())
                .collect(),
        );
    }
    Ok(InPlace {
        table: table.clone(),
        units,
        pending_constraints,
        pending_indexes,
    })
}

impl InPlace {
    /// Every statement, in order (what `plan` lists and `run` executes).
    pub fn steps(&self) -> impl Iterator<Item = &Step> {
        self.units.iter().flat_map(|u| u.steps().iter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(alter: &str) -> Vec<String> {
        alter_text::actions(alter)
            .unwrap()
            .iter()
            .map(|(t, text)| match classify(alter, t, text) {
                Action::Plain(_) => "plain".to_string(),
                Action::Validated { name, kind, .. } => {
                    format!(
                        "{kind}:{}",
                        name.map(|n| n.as_str().to_string()).unwrap_or_default()
                    )
                }
                Action::NotValid { name, kind, .. } => format!(
                    "{kind}-notvalid:{}",
                    name.map(|n| n.as_str().to_string()).unwrap_or_default()
                ),
                Action::Revalidate(c) => format!("validate:{}", c.as_str()),
                Action::NotNull(c) => format!("notnull:{}", c.as_str()),
                Action::Unique { name, primary } => format!(
                    "{}:{}",
                    if primary { "pk" } else { "uq" },
                    name.map(|n| n.as_str().to_string()).unwrap_or_default()
                ),
            })
            .collect()
    }

    #[test]
    fn actions_are_classified() {
        assert_eq!(
            kinds("ADD COLUMN a int, ADD CHECK (a > 0), ADD CONSTRAINT \"Pos\" CHECK (a > 0)"),
            ["plain", "c:", "c:Pos"]
        );
        assert_eq!(
            kinds("ADD CONSTRAINT k CHECK (a > 0) NOT VALID, ADD FOREIGN KEY (a) REFERENCES p"),
            ["c-notvalid:k", "f:"]
        );
        assert_eq!(
            kinds("ADD FOREIGN KEY (a) REFERENCES p NOT VALID, ADD CHECK (a <> 0) NOT VALID"),
            ["f-notvalid:", "c-notvalid:"]
        );
        assert_eq!(
            kinds(
                "ALTER COLUMN v SET NOT NULL, ALTER w SET NOT NULL, ALTER COLUMN v DROP NOT NULL"
            ),
            ["notnull:v", "notnull:w", "plain"]
        );
        assert_eq!(
            kinds(
                "ADD UNIQUE (email), ADD CONSTRAINT pk PRIMARY KEY (id), ADD UNIQUE USING INDEX i"
            ),
            ["uq:", "pk:pk", "plain"]
        );
        assert_eq!(
            kinds("ALTER COLUMN \"column\" SET NOT NULL"),
            ["notnull:column"]
        );
    }

    /// What a failure at each unit leaves to remove: unvalidated constraints until their
    /// VALIDATE commits, helpers until the last transaction, built indexes until attached.
    #[test]
    fn a_failure_removes_what_is_not_finished() {
        let probe = Probe {
            new_indexes: vec![NewIndex {
                name: Ident::new("t_email_key"),
                body: "btree (email)".into(),
                unique: true,
                constraint: Some("u".into()),
                deferrable: false,
                deferred: false,
                key_columns: vec![Ident::new("email")],
                tablespace: None,
                clone_name: "t_new_email_key".into(),
            }],
            new_constraints: vec![NewConstraint {
                name: Ident::new("t_n_check"),
                kind: "c".into(),
                clone_name: "t_new_n_check".into(),
            }],
            ..Probe::default()
        };
        let table = QualifiedName::new("public", "t");
        let not_null = |c: &Ident| c.as_str() == "id";
        let ask = Ask {
            alter: Some("ADD CHECK (n > 0), ALTER COLUMN email SET NOT NULL, ADD UNIQUE (email)"),
            ..Ask::default()
        };
        let Decision::InPlace(p) = decide_for(&ask, &probe, &table, &not_null) else {
            panic!("not in place")
        };
        // first, validate t_n_check, validate helper, build index, last
        assert_eq!(p.units.len(), 5);
        let names = |v: &[Ident]| v.iter().map(|i| i.as_str().to_string()).collect::<Vec<_>>();
        assert!(p.pending_constraints[0].is_empty());
        assert_eq!(
            names(&p.pending_constraints[1]),
            ["t_n_check", "hotswap_not_null_0"]
        );
        assert_eq!(names(&p.pending_constraints[2]), ["hotswap_not_null_0"]);
        assert_eq!(names(&p.pending_constraints[4]), ["hotswap_not_null_0"]);
        assert!(p.pending_indexes[3].is_empty());
        assert_eq!(names(&p.pending_indexes[4]), ["t_email_key"]);
        // An inline UNIQUE in ADD COLUMN is not split off: the copy builds it.
        let ask = Ask {
            alter: Some("ADD COLUMN email2 text UNIQUE"),
            ..Ask::default()
        };
        assert!(matches!(
            decide_for(&ask, &probe, &table, &not_null),
            Decision::Rewrite(Why::IndexUnderLock(_))
        ));
        // PostgreSQL's answer wins.
        let rewritten = Probe {
            table_rewritten: true,
            ..Probe::default()
        };
        assert!(matches!(
            decide_for(&ask, &rewritten, &table, &not_null),
            Decision::Rewrite(Why::TableRewritten)
        ));
    }

    #[test]
    fn options_that_need_a_copy_decide_before_any_trial() {
        let a = Ask {
            alter: Some("ADD COLUMN a int"),
            ..Default::default()
        };
        assert_eq!(a.rewrite_anyway(), None);
        assert_eq!(
            Ask {
                force_rewrite: true,
                ..a
            }
            .rewrite_anyway(),
            Some(Why::Forced)
        );
        assert_eq!(
            Ask { alter: None, ..a }.rewrite_anyway(),
            Some(Why::NoAlter)
        );
        assert_eq!(
            Ask {
                revertible: true,
                ..a
            }
            .rewrite_anyway(),
            Some(Why::Revertible)
        );
        assert_eq!(
            Ask {
                order_by: true,
                ..a
            }
            .rewrite_anyway(),
            Some(Why::OrderBy)
        );
    }
}
