//! The run's summary on stdout (`--output text`): rows, bytes, replay, the swap lock, the old
//! table, phases, verification, WAL and the read probe. `--output json` serializes the same
//! report instead.

use crate::output::ui;
use crate::rewrite::migrator::RunReport;

/// Prints the summary of a finished run.
pub(super) fn print(r: &RunReport) {
    if let Some(statements) = &r.in_place {
        crate::output::ui::outln!(
            "pg-hotswap: altered {} in place, no rewrite needed (run {})",
            r.table,
            r.run_id
        );
        for s in statements {
            crate::output::ui::outln!("  ran:                {s}");
        }
        crate::output::ui::outln!(
            "  lock attempts:      {} (each waited at most --lock-timeout); ACCESS EXCLUSIVE held at most {:.1} ms",
            r.lock_attempts, r.longest_lock_ms
        );
        crate::output::ui::outln!("  total:              {:.1} s", r.total_secs);
        for w in &r.warnings {
            crate::output::ui::outln!("  warning: {w}");
        }
        return;
    }
    crate::output::ui::outln!("pg-hotswap: rewrote {} (run {})", r.table, r.run_id);
    crate::output::ui::outln!("  rows copied:        {}", r.rows_copied);
    crate::output::ui::outln!("  bytes copied:       {}", ui::bytes(r.bytes_copied));
    crate::output::ui::outln!(
        "  changes replayed:   {} (largest backlog measured: {})",
        r.replayed_log_rows,
        r.replay_backlog_peak
    );
    crate::output::ui::outln!(
        "  swap lock:          held {:.1} ms (attempt {}; longest wait or hold {:.1} ms)",
        r.lock_held_ms,
        r.lock_attempts,
        r.longest_lock_ms
    );
    if r.fault_retries > 0 {
        crate::output::ui::outln!(
            "  lost sessions:      {} (reconnected and redone)",
            r.fault_retries
        );
    }
    match (&r.old_table, r.old_table_dropped) {
        (Some(o), false) => crate::output::ui::outln!(
            "  old table:          kept as {o} (drop it when you no longer need a way back)"
        ),
        (Some(o), true) => crate::output::ui::outln!("  old table:          {o} dropped"),
        _ => {}
    }
    if !r.dropped_columns.is_empty() {
        crate::output::ui::outln!("  dropped columns:    {}", r.dropped_columns.join(", "));
    }
    let phases: Vec<String> = r
        .phases
        .iter()
        .map(|(p, s)| format!("{p} {s:.1}s"))
        .collect();
    crate::output::ui::outln!("  phases:             {}", phases.join(", "));
    if let Some(v) = &r.verify {
        if v.chunks_verified > 0 {
            crate::output::ui::outln!(
                "  verified:           {} rows in {} of {} chunks ({}), {} repaired",
                v.rows_verified,
                v.chunks_verified,
                v.chunks_total,
                v.mode,
                v.repaired
            );
        } else {
            crate::output::ui::outln!("  verified:           no (--verify off)");
        }
    }
    if let Some(w) = r.wal_bytes {
        crate::output::ui::outln!(
            "  WAL written:        {} (by the whole server during the run)",
            ui::bytes(w)
        );
    }
    if let Some(p) = &r.read_probe {
        crate::output::ui::outln!(
            "  reads of the table: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms over {} reads every 100 ms{}",
            p.p50_ms,
            p.p99_ms,
            p.max_ms,
            p.reads,
            if p.errors > 0 { format!(" ({} failed)", p.errors) } else { String::new() }
        );
    }
    crate::output::ui::outln!("  total:              {:.1} s", r.total_secs);
    for w in &r.warnings {
        crate::output::ui::outln!("  warning: {w}");
    }
}
