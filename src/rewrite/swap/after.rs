//! What runs after the swap commits, each statement under the lock discipline: `ANALYZE` of the
//! new table when the swap created extended statistics on it, and the validation of the foreign
//! keys the swap added NOT VALID (SHARE UPDATE EXCLUSIVE: writes go on).

use super::ddl::to_validate;
use crate::db::ident::{Ident, QualifiedName};
use crate::db::locking::LockPolicy;
use crate::rewrite::plan::Plan;
use crate::rewrite::preflight::Source;
use crate::rewrite::step::{self, Step};
use tokio_postgres::Client;

/// After the swap: validates re-pointed foreign keys without blocking writes (SHARE UPDATE
/// EXCLUSIVE), each under the lock discipline. Returns the ones that failed, by name, with a
/// message: such a constraint stays NOT VALID and still checks every new write.
pub async fn validate_foreign_keys(
    client: &Client,
    to_validate: &[(QualifiedName, Ident)],
    policy: &LockPolicy,
) -> Vec<(Ident, String)> {
    let mut failed = Vec::new();
    for (table, name) in to_validate {
        let s = validate_step(table, name);
        if let Err(e) =
            step::exec_locked(client, policy, &s.what, None, std::slice::from_ref(&s)).await
        {
            failed.push((
                name.clone(),
                format!(
                    "{e}; the constraint stays NOT VALID (it still checks new writes); validate it later with ALTER TABLE {table} VALIDATE CONSTRAINT {name}"
                ),
            ));
        }
    }
    failed
}

/// `VALIDATE CONSTRAINT` of a foreign key re-pointed or added NOT VALID by the swap: scans the
/// referencing table under SHARE UPDATE EXCLUSIVE, so writes go on.
pub fn validate_step(table: &QualifiedName, name: &Ident) -> Step {
    Step::new(
        format!("ALTER TABLE {table} VALIDATE CONSTRAINT {name}"),
        format!(
            "validating foreign key {} on {}",
            name.as_str(),
            table.human()
        ),
    )
    .locks("SHARE UPDATE EXCLUSIVE", table, true)
    .note("scans the referencing table; writes go on")
}

/// What runs after the swap commits, each under the lock discipline: `ANALYZE` of the new table
/// when the swap created extended statistics on it (writes go on), then the validation of the
/// foreign keys the swap added NOT VALID.
pub fn after_swap_steps(plan: &Plan, src: &Source) -> Vec<Step> {
    let mut out = Vec::new();
    if let Some(s) = analyze_step(plan, src) {
        out.push(s);
    }
    for (t, n) in to_validate(plan, src) {
        out.push(validate_step(&t, &n));
    }
    out
}

/// `ANALYZE` of the new table, when the swap created extended statistics objects on it (from
/// their definitions: a plan without `statistics`).
pub fn analyze_step(plan: &Plan, src: &Source) -> Option<Step> {
    // Statistics made on the shadow were filled by its ANALYZE in the build.
    (!src.statistics.is_empty() && plan.statistics.is_none()).then(|| {
        Step::new(
            format!("ANALYZE {}", plan.source),
            format!("analyzing {}", plan.source.human()),
        )
        .locks("SHARE UPDATE EXCLUSIVE", &plan.source, true)
    })
}
