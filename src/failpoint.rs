//! Failure injection for tests: with `PGHOTSWAP_FAILPOINT=<name>[@<n>]` in the environment, the
//! process exits abruptly (status 86, no clean-up, its sessions cut off like in a crash) the n-th
//! time (default: the first) it reaches the point `<name>`. Compiled into debug builds only, so a
//! release binary never reads the variable.
//!
//! `hold` is the gentle sibling: `PGHOTSWAP_HOLD=<name>:<file>[,<name>:<file>...]` waits at a
//! point while its file exists, and says it is waiting by creating `<file>.held` (`before-swap-lock`: after the last
//! catch-up, before the swap takes its lock; issue 20, points inside units of work whose session
//! a test cuts off while they wait: `copy-unit` before a copy unit commits, `copy-unit-committed` after, `replay-batch` before
//! a replay batch commits, `build-index` on an index session before its build, `verify-range` on
//! a verification session before its range, `before-swap-transaction` after the swap's last look at what it carries, before its
//! transaction begins, `swap-locked` inside the swap holding its lock,
//! `swap-before-commit` inside the swap after its last statement, `before-claim` after preflight, before the run takes the table's advisory lock).
//!
//! Points: `phase-<phase>` right after a phase is recorded, `copy-chunk` after a chunk commits,
//! `replay-batch` after a replay batch commits, `swap-locked` inside the swap transaction while
//! it holds the ACCESS EXCLUSIVE lock, `swapped` after the swap commits, `in-place-unit` before
//! each unit of statements of an ALTER applied in place (`fastpath::apply`).
//!
//! `number` replaces a figure read from the server (`PGHOTSWAP_DF_AVAILABLE`: the free space
//! `df` reported), for a condition a test cannot create on a shared machine.

/// Exit status of a failpoint, distinct from every documented one.
pub const EXIT: i32 = 86;

#[cfg(debug_assertions)]
pub fn hit(name: &str) {
    use std::collections::HashMap;
    use std::sync::Mutex;
    static COUNTS: Mutex<Option<HashMap<String, u32>>> = Mutex::new(None);
    let Ok(spec) = std::env::var("PGHOTSWAP_FAILPOINT") else {
        return;
    };
    let (point, nth) = match spec.split_once('@') {
        Some((p, n)) => (p.to_string(), n.parse::<u32>().unwrap_or(1)),
        None => (spec.clone(), 1),
    };
    if point != name {
        return;
    }
    let mut guard = COUNTS.lock().unwrap_or_else(|e| e.into_inner());
    let counts = guard.get_or_insert_with(HashMap::new);
    let c = counts.entry(point).or_insert(0);
    *c += 1;
    if *c == nth {
        eprintln!("failpoint {name} reached: exiting abruptly");
        std::process::exit(EXIT);
    }
}

#[cfg(not(debug_assertions))]
#[inline(always)]
pub fn hit(_name: &str) {}

/// With `PGHOTSWAP_HOLD=<name>:<file>` in the environment (debug builds only), waits at the point
/// `<name>` while `<file>` exists, so a test can act at exactly that moment (e.g. write a burst
/// between the last catch-up and the swap's lock) and then remove the file to let the run go on.
#[cfg(debug_assertions)]
pub async fn hold(name: &str) {
    let Ok(specs) = std::env::var("PGHOTSWAP_HOLD") else {
        return;
    };
    let Some(file) = specs
        .split(',')
        .filter_map(|spec| spec.split_once(':'))
        .find_map(|(point, file)| (point == name).then_some(file))
    else {
        return;
    };
    if std::path::Path::new(file).exists() {
        let _ = std::fs::write(format!("{file}.held"), b"");
    }
    while std::path::Path::new(file).exists() {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[cfg(not(debug_assertions))]
#[inline(always)]
pub async fn hold(_name: &str) {}

/// A figure a test puts in place of one read from the server: the environment variable `var`
/// parsed as a number (debug builds only; `PGHOTSWAP_DF_AVAILABLE`, the free bytes `df`
/// reported, see `rewrite/checks/disk.rs`). None when unset or not a number.
#[cfg(debug_assertions)]
pub fn number(var: &str) -> Option<u64> {
    std::env::var(var).ok()?.trim().parse().ok()
}

#[cfg(not(debug_assertions))]
#[inline(always)]
pub fn number(_var: &str) -> Option<u64> {
    None
}
