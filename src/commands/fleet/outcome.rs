//! How a `fleet run` ends (issue 18): the report of the swaps (text or JSON), the exit of a
//! cut-over (0, or the split named), and the end before the gate when a target failed (every
//! failed target named; with `--on-failure abort` the others aborted first).
//!
//! Invariant kept here: a non-zero exit names every target that failed or did not swap, and
//! says which targets have the new table and which the old.

use super::gate::{self, CutoverReport};
use super::status::{self, Probe, Standing, TargetStatus};
use super::{read_all, FleetCutover, FleetRunArgs, FleetTargetArgs, OnFailure, RunReport};
use crate::commands::flags::OutputFormat;
use crate::error::{Error, Result};
use crate::output::ui::say;
use std::time::{Duration, Instant};

/// A report of targets that swapped on their own (per-target cut-over, or before).
pub(super) fn report_of(statuses: &[TargetStatus]) -> CutoverReport {
    let mut r = CutoverReport::default();
    for s in statuses {
        if s.standing == Standing::Swapped {
            r.swapped.push(gate::SwapLine {
                target: s.target.clone(),
                run_id: s.run_id,
                swapped_at: s.swapped_at,
                earlier: false,
                retries: 0,
            });
        }
    }
    let times: Vec<f64> = r.swapped.iter().filter_map(|l| l.swapped_at).collect();
    if !times.is_empty() {
        let lo = times.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = times.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        r.spread_secs = Some(hi - lo);
    }
    r
}

pub(super) fn finish_report(
    fleet_id: &str,
    statuses: &[TargetStatus],
    report: &CutoverReport,
    output: OutputFormat,
    outcome: &str,
) {
    match output {
        OutputFormat::Json => crate::commands::print_json(&RunReport {
            fleet_id,
            outcome,
            targets: statuses,
            cutover: Some(report),
        }),
        OutputFormat::Text => {
            crate::output::ui::outln!("fleet {fleet_id}: {outcome}");
            crate::output::ui::out!("{}", report.render());
        }
    }
}

/// The exit of a cut-over: 0 when every target it was to swap swapped.
pub(super) fn cutover_result(
    report: &CutoverReport,
    t: &FleetTargetArgs,
    fleet_id: &str,
    canary: bool,
) -> Result<i32> {
    if report.failed.is_empty() && report.not_ready.is_empty() {
        if canary {
            say(&format!(
                "fleet {fleet_id}: canary swapped; the other targets wait ready (replaying): `pg-hotswap fleet cutover --targets {} --table {}` swaps them",
                crate::output::ui::shell_word(&t.targets.display().to_string()),
                crate::output::ui::shell_word(&t.table)
            ));
        }
        return Ok(0);
    }
    let names: Vec<String> = report
        .failed
        .iter()
        .map(|(t, e)| format!("{t}: {e}"))
        .chain(report.not_ready.iter().map(|t| format!("{t}: not ready")))
        .collect();
    Err(Error::failed(format!(
        "fleet {fleet_id}: the cut-over is split: {} swapped, not swapped: {}",
        report.swapped.len(),
        names.join("; ")
    ))
    .with_state("the swapped targets have the new table; the others still have the old one (their runs keep the shadow in sync where they still run)")
    .with_next(format!(
        "`pg-hotswap fleet cutover --targets {} --table {}` tries the rest again; a --revertible fleet can go back with `pg-hotswap fleet revert`",
        crate::output::ui::shell_word(&t.targets.display().to_string()),
        crate::output::ui::shell_word(&t.table)
    )))
}

/// A target failed before the gate: nobody swaps; with `--on-failure abort` the others are
/// aborted (each run is asked once it is recorded, and this waits, bounded, until they have
/// removed what they created). The error names every failed target.
pub(super) async fn fail_before_gate(
    probes: &mut [Probe],
    children: &mut [Option<tokio::process::Child>],
    fleet_id: &str,
    args: &FleetRunArgs,
    failures: Vec<(String, String)>,
) -> Result<i32> {
    let failed: Vec<&str> = failures.iter().map(|(t, _)| t.as_str()).collect();
    let state = if args.cutover == FleetCutover::PerTarget {
        // Each target swapped as it got ready: the fleet is split between those and the failed.
        let st = read_all(probes, Some(fleet_id)).await;
        let swapped: Vec<&str> = st
            .iter()
            .filter(|s| s.standing == Standing::Swapped)
            .map(|s| s.target.as_str())
            .collect();
        format!(
            "per-target cut-over: {} target(s) swapped{}; the failed ones were not",
            swapped.len(),
            if swapped.is_empty() {
                String::new()
            } else {
                format!(" ({})", swapped.join(", "))
            }
        )
    } else if args.on_failure == OnFailure::Abort {
        let mut asked = vec![false; probes.len()];
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            for c in children.iter_mut() {
                if c.as_mut()
                    .is_some_and(|c| matches!(c.try_wait(), Ok(Some(_))))
                {
                    *c = None;
                }
            }
            let st = read_all(probes, Some(fleet_id)).await;
            let mut live = children.iter().any(Option::is_some);
            for (i, s) in st.iter().enumerate() {
                if !matches!(s.standing, Standing::Ready | Standing::Working) {
                    continue;
                }
                live = true;
                let (Some(run), false) = (s.run_id, asked[i]) else {
                    continue;
                };
                let state = probes[i].state().clone();
                if let Ok(client) = probes[i].client().await {
                    asked[i] = state
                        .request(client, run, Some("abort"))
                        .await
                        .unwrap_or(false);
                }
            }
            if !live || Instant::now() > deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        let aborted: Vec<String> = (0..probes.len())
            .filter(|&i| asked[i])
            .map(|i| probes[i].target.label.clone())
            .collect();
        format!(
            "no target was swapped; aborted (everything their runs created removed): {}",
            if aborted.is_empty() {
                "none".to_string()
            } else {
                aborted.join(", ")
            }
        )
    } else {
        let st = read_all(probes, Some(fleet_id)).await;
        let ready = st.iter().filter(|s| s.standing == Standing::Ready).count();
        let going = (0..probes.len())
            .filter(|&i| {
                st[i].standing != Standing::Ready
                    && !failed.contains(&probes[i].target.label.as_str())
                    && (children[i].is_some() || st[i].standing == Standing::Working)
            })
            .count();
        format!(
            "no target was swapped; {ready} ready and {going} still on their way: their runs go on in their own processes and wait ready, replaying"
        )
    };
    let statuses = read_all(probes, Some(fleet_id)).await;
    if args.output == OutputFormat::Json {
        crate::commands::print_json(&RunReport {
            fleet_id,
            outcome: "failed",
            targets: &statuses,
            cutover: None,
        });
    } else {
        crate::output::ui::out!("{}", status::render(&statuses));
    }
    let named: Vec<String> = failures.iter().map(|(t, e)| format!("{t}: {e}")).collect();
    Err(Error::failed(format!(
        "fleet {fleet_id}: {} target(s) failed{}: {}",
        failures.len(),
        if args.cutover == FleetCutover::Gated {
            " before the cut-over"
        } else {
            ""
        },
        named.join("; ")
    ))
    .with_state(state)
    .with_next(format!(
        "fix what the error names, then run the same `pg-hotswap fleet run` again: {} (`pg-hotswap fleet status --targets {} --table {}` shows each)",
        match args.on_failure {
            OnFailure::Wait => "ready targets are reused, not copied again",
            OnFailure::Abort => "the aborted targets start anew",
        },
        crate::output::ui::shell_word(&args.t.targets.display().to_string()),
        crate::output::ui::shell_word(&args.t.table)
    )))
}
