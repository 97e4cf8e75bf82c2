//! Sequences across the swap. Serial sequences are handed to the new table's column. An identity
//! sequence cannot be: the new table has its own, which takes the old one's name, privileges and
//! comment and continues [`SEQUENCE_RESERVE`] increments past the old one's position, while the
//! old one is closed just below (the reason is on the constant). A revert gives the original
//! sequence back the bounds the forward swap narrowed (`Plan::sequence_bounds`).

use super::Names;
use crate::db::catalog;
use crate::db::ident::{first_free, literal, make_object_name, Ident, QualifiedName};
use crate::error::{DbContext, Error, Result, RowExt};
use crate::rewrite::plan::Plan;
use crate::rewrite::preflight::Source;
use crate::rewrite::step::Step;
use tokio_postgres::GenericClient;

pub(super) struct SequenceFacts {
    old: QualifiedName,
    new: Option<String>,
    /// The new sequence's oid.
    new_oid: Option<u32>,
    /// The old sequence's position and bounds and the new one's bounds (None: no new sequence).
    position: Option<SequencePosition>,
    /// The ALTER positioned the new sequence (`RESTART`): its next value, which the swap keeps
    /// (`Plan::identity_positioned_by_alter`).
    positioned_by_alter: Option<i128>,
    /// The new sequence's own next value (`last_value`, one increment on when called).
    own_next: Option<i128>,
    /// The ALTER named the new sequence (`SEQUENCE NAME`): it keeps that name, and the old
    /// one's privileges and comment stay with the old one, as PostgreSQL's DROP IDENTITY
    /// drops them.
    named_by_alter: bool,
    grants: Vec<catalog::Grant>,
    comment: Option<String>,
}

/// An identity sequence at the swap: the old one's position and bounds, the new one's bounds.
#[derive(Clone, Copy, Debug)]
struct SequencePosition {
    last_value: i64,
    is_called: bool,
    increment: i64,
    min: i64,
    max: i64,
    start: i64,
    new_oid: u32,
    new_min: i64,
    new_max: i64,
}

/// How many values (in increments) the new identity sequence skips past the old one's position:
/// this many, or a tenth of what the new sequence has left when that is less.
///
/// A statement that looked the sequence's name up before the swap (`SELECT nextval('t_id_seq')`
/// on its own, as ORMs that fetch keys ahead do) and then waited for the swap's lock draws from
/// the *old* sequence once the swap commits; the application inserts that value into the new
/// table. The new sequence starts this many values further on, and the old one is closed just
/// below where the new one starts (MAXVALUE, NO CYCLE): such a straggler gets a value no one else
/// gets, or, past the reserve, PostgreSQL's "reached maximum value" — never a duplicate key.
/// PostgreSQL's own ALTER TABLE keeps one sequence; sequences promise no gapless numbering
/// (a rolled-back nextval, a cache, a crash all skip values).
pub const SEQUENCE_RESERVE: i64 = 1000;

/// Where the new sequence starts and how the old one is closed. None when the old position
/// does not fit the new sequence's bounds (the old statement, which lets PostgreSQL say why).
#[derive(Debug, PartialEq, Eq)]
struct SequenceCarry {
    /// The new sequence's next value (`setval(..., false)`).
    next: i64,
    /// The old sequence's new MAXVALUE (ascending) or MINVALUE (descending), when one is valid.
    close_at: Option<i64>,
}

impl SequencePosition {
    fn carry(&self, new_min: i64, new_max: i64) -> Option<SequenceCarry> {
        let inc = i128::from(self.increment);
        let last = i128::from(self.last_value);
        let (lo, hi) = (i128::from(new_min), i128::from(new_max));
        let next_old = if self.is_called { last + inc } else { last };
        if next_old < lo || next_old > hi {
            return None;
        }
        // What the new sequence has left from there, in increments; the reserve takes at most
        // a tenth of it (a sequence near its end keeps nearly all it had: a fresh tester's
        // smallint identity with 468 values left kept one when the reserve was clamped).
        let left = if inc > 0 {
            (hi - next_old) / inc + 1
        } else {
            (next_old - lo) / -inc + 1
        };
        let next = next_old + inc * i128::from(SEQUENCE_RESERVE).min(left / 10);
        Some(SequenceCarry {
            next: i64::try_from(next).ok()?,
            close_at: self.close_before(next),
        })
    }

    /// Whether `a` comes after `b` in this sequence's direction.
    fn beyond(&self, a: i128, b: i128) -> bool {
        if self.increment > 0 {
            a > b
        } else {
            a < b
        }
    }

    /// The old sequence's new MAXVALUE (ascending) or MINVALUE (descending) that stops it just
    /// before `next`, the new sequence's next value. None when no valid bound does it: a bound
    /// must still hold the current value and START and stay on the right side of the other
    /// bound. So an old sequence the ALTER restarted the new one behind (`RESTART WITH 1`) is
    /// not closed: a session that waited for the swap draws its next value, past every row the
    /// table had, where closing it at its last value failed that session's `nextval` (a fresh
    /// tester); the new sequence meets the table's rows long before it meets those values.
    fn close_before(&self, next: i128) -> Option<i64> {
        let last = i128::from(self.last_value);
        let (start, min, max) = (
            i128::from(self.start),
            i128::from(self.min),
            i128::from(self.max),
        );
        let valid = |cap: i128| {
            if self.increment > 0 {
                cap >= last && cap >= start && cap > min && cap < max
            } else {
                cap <= last && cap <= start && cap < max && cap > min
            }
        };
        let cap = if self.increment > 0 {
            next - 1
        } else {
            next + 1
        };
        valid(cap)
            .then_some(cap)
            .and_then(|c| i64::try_from(c).ok())
    }
}

/// What the swap does with sequences, read under its lock.
pub(super) struct Sequences {
    /// Per identity sequence of the source.
    carried: Vec<SequenceFacts>,
    /// Identity and serial sequences the ALTER made for columns the source had none for, by
    /// their current names (schema-qualified, quoted), and the names the swap gives them.
    renamed: Vec<(QualifiedName, Ident)>,
}

/// Reads, per identity sequence of the source, the new table's sequence and the old one's
/// position (under the swap's lock: it cannot move until COMMIT), privileges and comment; and
/// the names the new table's other identity sequences take ([`new_names`]).
pub(super) async fn read(tx: &impl GenericClient, plan: &Plan, src: &Source) -> Result<Sequences> {
    let carried = read_carried(tx, plan, src).await?;
    let renamed = new_names(tx, plan, &carried).await?;
    Ok(Sequences { carried, renamed })
}

async fn read_carried(
    tx: &impl GenericClient,
    plan: &Plan,
    src: &Source,
) -> Result<Vec<SequenceFacts>> {
    let mut sequences = Vec::new();
    for s in src.sequences.iter().filter(|s| s.deptype == "i") {
        // The shadow's column that came from this one (a RENAME COLUMN renamed it); none when
        // the ALTER drops it, and the old sequence stays with the old table.
        let Some(column) = plan.shadow_column_of(&s.column).map(|c| c.as_str()) else {
            continue;
        };
        let what = "reading the identity sequences' positions";
        let row = tx
            .query_one(
                &format!(
                    "SELECT pg_catalog.pg_get_serial_sequence($1, $2), o.last_value, o.is_called, \
                            p.seqincrement, p.seqmin, p.seqmax, p.seqstart, q.seqrelid, q.seqmin, q.seqmax, \
                            c.relname::text \
                       FROM {} o \
                       JOIN pg_catalog.pg_sequence p ON p.seqrelid = $3 \
                       LEFT JOIN pg_catalog.pg_sequence q \
                         ON q.seqrelid = pg_catalog.to_regclass(pg_catalog.pg_get_serial_sequence($1, $2)) \
                       LEFT JOIN pg_catalog.pg_class c ON c.oid = q.seqrelid",
                    s.name
                ),
                &[&plan.shadow.to_string(), &column, &s.oid],
            )
            .await
            .ctx(what)?;
        let new: Option<String> = row.col(0, &what)?;
        let new_oid: Option<u32> = row.col(7, &what)?;
        // A name the ALTER gave the new sequence (`DROP IDENTITY, ADD GENERATED ... (SEQUENCE
        // NAME s)`) stays, as PostgreSQL keeps it; only a name PostgreSQL chose for the shadow
        // takes the old sequence's (a fresh tester: `SEQUENCE NAME` was lost).
        // Only a sequence the ALTER made (positioned by it, below) can have such a name; a
        // revert's shadow holds the original sequence under the name the forward swap gave.
        let relname: Option<String> = row.col(10, &what)?;
        let position = match (
            new_oid,
            row.col::<Option<i64>>(8, &what)?,
            row.col::<Option<i64>>(9, &what)?,
        ) {
            (Some(oid), Some(new_min), Some(new_max)) => Some(SequencePosition {
                last_value: row.col(1, &what)?,
                is_called: row.col(2, &what)?,
                increment: row.col(3, &what)?,
                min: row.col(4, &what)?,
                max: row.col(5, &what)?,
                start: row.col(6, &what)?,
                new_oid: oid,
                new_min,
                new_max,
            }),
            _ => None,
        };
        // The new sequence's own next value: where the ALTER put it (`RESTART`), or, in a
        // revert, where the original sequence stood, which the revert never goes back behind.
        let own_next = match &new {
            Some(seq) => {
                let what = "reading the new identity sequence's position";
                let row = tx
                    .query_one(
                        &format!(
                            "SELECT s.last_value, s.is_called, p.seqincrement \
                               FROM {seq} s, pg_catalog.pg_sequence p \
                              WHERE p.seqrelid = pg_catalog.to_regclass($1)"
                        ),
                        &[seq],
                    )
                    .await
                    .ctx(what)?;
                let last = i128::from(row.col::<i64>(0, &what)?);
                let called: bool = row.col(1, &what)?;
                let inc = i128::from(row.col::<i64>(2, &what)?);
                // In i128: a sequence at its very end is no overflow here.
                Some(if called { last + inc } else { last })
            }
            None => None,
        };
        let positioned_by_alter = own_next.filter(|_| {
            plan.identity_positioned_by_alter
                .iter()
                .any(|c| c.as_str() == column)
        });
        let named_by_alter = positioned_by_alter.is_some()
            && relname.is_some_and(|r| !is_shadow_choice(plan, column, &r));
        sequences.push(SequenceFacts {
            old: s.name.clone(),
            new,
            new_oid,
            position,
            positioned_by_alter,
            own_next,
            named_by_alter,
            grants: catalog::grants(tx, s.oid).await?,
            comment: catalog::relation_comment(tx, s.oid).await?,
        });
    }
    Ok(sequences)
}

/// Whether `relname` is a name PostgreSQL chose for a sequence of the shadow's `column`
/// (`ChooseRelationName(shadow, column, "seq")`), not one the ALTER gave.
fn is_shadow_choice(plan: &Plan, column: &str, relname: &str) -> bool {
    (0..100).any(|k| make_object_name(plan.shadow.name.as_str(), column, &seq_label(k)) == relname)
}

/// `seq`, then `seq1`, `seq2`...: the labels `ChooseRelationName` tries.
fn seq_label(k: usize) -> String {
    match k {
        0 => "seq".to_string(),
        k => format!("seq{k}"),
    }
}

/// The names of the new table's identity and serial sequences that no source sequence hands
/// its name to (`ADD COLUMN n int GENERATED ... AS IDENTITY`, `ADD GENERATED` on a serial or
/// plain column, `ADD COLUMN n bigserial`; the shadow owns no other sequence):
/// PostgreSQL named them after the shadow (`t_new_n_seq`); they take the name its ALTER would
/// have given them on the table, `ChooseRelationName(table, column, "seq")` — `t_n_seq`, or
/// `t_id_seq1` beside a serial column's own `t_id_seq`, which stays. A name the ALTER gave
/// (`SEQUENCE NAME`) is kept. Read under the swap's lock, where no other name can appear.
async fn new_names(
    tx: &impl GenericClient,
    plan: &Plan,
    carried: &[SequenceFacts],
) -> Result<Vec<(QualifiedName, Ident)>> {
    let what = "reading the names the new table's sequences could take";
    let table = plan.source.name.as_str();
    let mut out = Vec::new();
    for seq in catalog::sequences(tx, plan.shadow_oid).await? {
        let (relname, column) = (seq.name.name.as_str(), seq.column.as_str());
        if carried.iter().any(|f| f.new_oid == Some(seq.oid)) {
            continue;
        }
        if !is_shadow_choice(plan, column, relname) {
            continue;
        }
        // The schema's relations among the names tried, in one read (this runs under the
        // swap's lock).
        let candidate = |k: usize| make_object_name(table, column, &seq_label(k));
        let tried: Vec<String> = (0..1000).map(candidate).collect();
        let taken: Vec<String> = tx
            .query(
                "SELECT c.relname::text FROM pg_catalog.pg_class c \
                   JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
                  WHERE n.nspname = $1 AND c.relname = ANY($2)",
                &[&seq.name.schema.as_str(), &tried],
            )
            .await
            .ctx(what)?
            .iter()
            .map(|r| r.col(0, &what))
            .collect::<Result<_>>()?;
        // A long table's shadow name is cut to the same prefix: the name can be this
        // sequence's already (a fresh tester: a 57-byte table got `..._n_seq1`).
        let chosen = first_free(candidate, |n| n != relname && taken.iter().any(|t| t == n));
        if let Some(name) = chosen.filter(|n| n != relname) {
            out.push((seq.name.clone(), Ident::new(name)));
        }
    }
    Ok(out)
}

/// Identity sequences: the new table's sequence continues from the old one's position and takes
/// its name, privileges and comment. Serial sequences are handed to the new table's column, so
/// dropping the old table later does not drop the sequence the new table's default uses.
pub(super) fn steps(
    plan: &Plan,
    src: &Source,
    names: &Names,
    sequences: &Sequences,
    out: &mut Vec<Step>,
) -> Result<()> {
    let shadow = &plan.shadow;
    for (current, name) in &sequences.renamed {
        out.push(Step::new(
            format!("ALTER SEQUENCE {current} RENAME TO {name}"),
            "naming a sequence the ALTER made as PostgreSQL's ALTER would",
        ));
    }
    for f in &sequences.carried {
        let Some(new_seq) = &f.new else { continue };
        let old = &f.old;
        let lock = |s: Step| s.locks("ACCESS EXCLUSIVE", old, true);
        let restored = f
            .position
            .and_then(|p| plan.sequence_bounds.iter().find(|b| b.oid == p.new_oid));
        if let Some(b) = restored {
            // A revert: the original sequence gets back the bounds the forward swap narrowed.
            out.push(Step::new(
                format!(
                    "ALTER SEQUENCE {new_seq} MINVALUE {} MAXVALUE {} {}",
                    b.min,
                    b.max,
                    if b.cycle { "CYCLE" } else { "NO CYCLE" }
                ),
                "giving the identity sequence back its bounds",
            ));
        }
        if let Some(next) = f.positioned_by_alter {
            // The ALTER restarted the new sequence: it stays there, as PostgreSQL's ALTER
            // leaves it; the old one is closed below it all the same.
            if let Some(cap) = f.position.and_then(|p| p.close_before(next)) {
                out.push(lock(close_step(old, f.position, cap)));
            }
        } else {
            let carry = f.position.and_then(|p| {
                let (lo, hi) = restored.map_or((p.new_min, p.new_max), |b| (b.min, b.max));
                let c = p.carry(lo, hi)?;
                // A revert never puts the original sequence behind where it stood: a forward
                // ALTER that restarted the sequence lower would otherwise hand the original
                // table's own keys out again (a fresh tester: duplicate keys after `revert`).
                match (restored, f.own_next) {
                    (Some(_), Some(own)) if p.beyond(own, i128::from(c.next)) => {
                        Some(SequenceCarry {
                            next: i64::try_from(own).ok()?,
                            close_at: p.close_before(own),
                        })
                    }
                    _ => Some(c),
                }
            });
            match carry {
                Some(c) => {
                    out.push(lock(Step::new(
                        format!(
                            "SELECT pg_catalog.setval({}::regclass, {}, false)",
                            literal(new_seq),
                            c.next
                        ),
                        "carrying the identity sequence position over",
                    )));
                    if let Some(cap) = c.close_at {
                        out.push(lock(close_step(old, f.position, cap)));
                    }
                }
                None => out.push(lock(Step::new(
                    format!(
                        "SELECT pg_catalog.setval({}::regclass, last_value, is_called) FROM {old}",
                        literal(new_seq)
                    ),
                    "carrying the identity sequence position over",
                ))),
            }
        }
        let old_name = names
            .old_sequences
            .iter()
            .find(|(q, _)| q == old)
            .map(|(_, n)| n.clone())
            .ok_or_else(|| Error::failed(format!("no name decided for {}", old.human())))?;
        out.push(lock(Step::new(
            format!("ALTER SEQUENCE {old} RENAME TO {}", Ident::new(old_name)),
            "renaming the old identity sequence",
        )));
        if f.named_by_alter {
            continue;
        }
        out.push(Step::new(
            format!("ALTER SEQUENCE {new_seq} RENAME TO {}", old.name),
            "renaming the new identity sequence",
        ));
        for g in &f.grants {
            out.push(Step::new(
                format!(
                    "GRANT {} ON SEQUENCE {old} TO {}{}",
                    g.privilege,
                    g.grantee,
                    if g.grantable {
                        " WITH GRANT OPTION"
                    } else {
                        ""
                    }
                ),
                "carrying an identity sequence's privileges over",
            ));
        }
        if let Some(c) = &f.comment {
            out.push(Step::new(
                format!("COMMENT ON SEQUENCE {old} IS {}", literal(c)),
                "carrying an identity sequence's comment over",
            ));
        }
    }
    for s in src.sequences.iter().filter(|s| s.deptype == "a") {
        if let Some(col) = plan.shadow_column_of(&s.column) {
            out.push(
                Step::new(
                    format!("ALTER SEQUENCE {} OWNED BY {}.{}", s.name, shadow, col),
                    "handing the serial sequence to the new table",
                )
                .locks("ACCESS EXCLUSIVE", &s.name, true),
            );
        }
    }
    Ok(())
}

/// `ALTER SEQUENCE old MAXVALUE cap NO CYCLE` (MINVALUE for a descending one).
fn close_step(old: &QualifiedName, position: Option<SequencePosition>, cap: i64) -> Step {
    let bound = if position.is_some_and(|p| p.increment > 0) {
        "MAXVALUE"
    } else {
        "MINVALUE"
    };
    Step::new(
        format!("ALTER SEQUENCE {old} {bound} {cap} NO CYCLE"),
        "closing the old identity sequence below the new one's values",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pos(
        last_value: i64,
        is_called: bool,
        increment: i64,
        min: i64,
        max: i64,
    ) -> SequencePosition {
        SequencePosition {
            last_value,
            is_called,
            increment,
            min,
            max,
            start: if increment > 0 { min } else { max },
            new_oid: 1,
            new_min: min,
            new_max: max,
        }
    }

    #[test]
    fn the_new_sequence_starts_a_reserve_past_the_old_one_which_is_closed_below_it() {
        let r = SEQUENCE_RESERVE;
        let p = pos(200, true, 1, 1, i64::from(i32::MAX));
        let c = p.carry(p.new_min, p.new_max).unwrap();
        assert_eq!(
            c,
            SequenceCarry {
                next: 201 + r,
                close_at: Some(200 + r)
            }
        );
        // Never used: the old one's next value is its last_value.
        let p = pos(1, false, 1, 1, 100_000);
        assert_eq!(p.carry(1, 100_000).unwrap().next, 1 + r);
        // Descending, by 3.
        let p = pos(-598, true, -3, -100_000_000, -1);
        let c = p.carry(p.new_min, p.new_max).unwrap();
        assert_eq!(
            c,
            SequenceCarry {
                next: -601 - 3 * r,
                close_at: Some(-600 - 3 * r)
            }
        );
    }

    #[test]
    fn near_its_end_the_reserve_shrinks_and_the_old_one_closes_where_it_can() {
        // 468 values left (a fresh tester's smallint identity): the reserve takes a tenth.
        let p = pos(32299, true, 1, 32000, 32767);
        assert_eq!(
            p.carry(32000, 32767).unwrap(),
            SequenceCarry {
                next: 32346,
                close_at: Some(32345)
            }
        );
        // Ten values left: one for the reserve.
        let p = pos(90, true, 1, 1, 100);
        assert_eq!(
            p.carry(1, 100).unwrap(),
            SequenceCarry {
                next: 92,
                close_at: Some(91)
            }
        );
        // Descending by 50, 400 values left: 40 increments of reserve.
        let p = pos(-100_000 + 50 * 400, true, -50, -100_000, -1);
        assert_eq!(
            p.carry(-100_000, -1).unwrap().next,
            -100_000 + 50 * 399 - 50 * 40
        );
        // A wider new sequence (int -> bigint) keeps the whole reserve; the old one needs no
        // bound of ours: it ends below the new one's values already.
        let p = pos(90, true, 1, 1, 100);
        assert_eq!(
            p.carry(1, i64::MAX).unwrap(),
            SequenceCarry {
                next: 91 + SEQUENCE_RESERVE,
                close_at: None
            }
        );
        // Exhausted: the old position does not fit; PostgreSQL says why.
        let p = pos(100, true, 1, 1, 100);
        assert_eq!(p.carry(1, 100), None);
        // One value left: no reserve, and no bound below the current value.
        let p = pos(100, false, 1, 1, 100);
        assert_eq!(
            p.carry(1, 100),
            Some(SequenceCarry {
                next: 100,
                close_at: None
            })
        );
        // Near i64's end: no overflow.
        let p = pos(i64::MAX - 5, true, 1, 1, i64::MAX);
        assert_eq!(p.carry(1, i64::MAX).unwrap().next, i64::MAX - 4);
    }

    #[test]
    fn an_old_sequence_restarted_behind_stays_open() {
        // The ALTER restarted the new sequence at 50, behind the old one's 200: the old one
        // keeps handing out values past the table's rows to sessions that waited.
        let p = pos(200, true, 1, 1, i64::from(i32::MAX));
        assert_eq!(p.close_before(50), None);
        assert_eq!(p.close_before(5000), Some(4999));
        let p = pos(200, false, 1, 1, i64::from(i32::MAX));
        assert_eq!(p.close_before(50), None);
        // Descending.
        let p = pos(-200, true, -1, i64::from(i32::MIN), -1);
        assert_eq!(p.close_before(-50), None);
        assert_eq!(p.close_before(-5000), Some(-4999));
    }
}
