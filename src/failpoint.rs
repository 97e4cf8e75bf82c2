//! Failure injection for tests: with `PGHOTSWAP_FAILPOINT=<name>[@<n>]` in the environment, the
//! process exits abruptly (status 86, no clean-up, its sessions cut off like in a crash) the n-th
//! time (default: the first) it reaches the point `<name>`. Compiled into debug builds only, so a
//! release binary never reads the variable.
//!
//! Points: `phase-<phase>` right after a phase is recorded, `copy-chunk` after a chunk commits,
//! `replay-batch` after a replay batch commits, `swap-locked` inside the swap transaction while
//! it holds the ACCESS EXCLUSIVE lock, `swapped` after the swap commits.

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
