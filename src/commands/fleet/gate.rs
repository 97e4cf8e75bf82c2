//! The fleet's cut-over (issue 18): the ready targets told to swap one after another (each a
//! `cutover` request in its `runs.control`, the same as `pg-hotswap cutover`), then watched
//! until each has swapped or stopped; a swap that failed is tried again by continuing that
//! target's run (`pg-hotswap resume`); and the report: when each target swapped (the `swap`
//! event's time on its server) and the spread between the first and the last swap, including
//! targets an earlier fleet process swapped (the split while it lasted).
//!
//! Invariant kept here: a request goes only to a target that is ready (caught up, replaying,
//! a process attached) when it is sent; nothing here swaps a target that was not ready, and a
//! target that failed to swap is reported by name with the split it leaves.

use super::status::{Probe, Standing, TargetStatus};
use super::ChildLauncher;
use crate::error::Result;
use crate::output::ui::say;
use serde::Serialize;
use std::time::{Duration, Instant};

/// How long the cut-over waits for the targets told to swap (each is ready: its swap is the
/// last catch-up and a lock of `--lock-timeout`, tried `--max-lock-attempts` times).
const SWAP_WAIT: Duration = Duration::from_secs(600);

/// One target's swap.
#[derive(Clone, Debug, Serialize)]
pub struct SwapLine {
    pub target: String,
    pub run_id: Option<i64>,
    /// When the swap committed, seconds since the epoch on the target server's clock.
    pub swapped_at: Option<f64>,
    /// Swapped by an earlier fleet process (before this command).
    pub earlier: bool,
    /// How many times its run was continued because its swap had failed.
    pub retries: u32,
}

/// What the cut-over did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct CutoverReport {
    pub swapped: Vec<SwapLine>,
    /// Targets whose swap failed (after the retries), with the error.
    pub failed: Vec<(String, String)>,
    /// Targets not swapped because they were not ready.
    pub not_ready: Vec<String>,
    /// Seconds between the first and the last swap of the fleet (server clocks).
    pub spread_secs: Option<f64>,
}

impl CutoverReport {
    /// The report for people.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let first = self
            .swapped
            .iter()
            .filter_map(|l| l.swapped_at)
            .fold(f64::INFINITY, f64::min);
        for l in &self.swapped {
            s.push_str(&format!(
                "  {}: swapped{}{}{}{}\n",
                l.target,
                l.run_id.map(|r| format!(" (run {r})")).unwrap_or_default(),
                l.swapped_at
                    .filter(|_| first.is_finite())
                    .map(|t| format!(" at +{:.3} s", t - first))
                    .unwrap_or_default(),
                if l.earlier {
                    ", by an earlier fleet process"
                } else {
                    ""
                },
                match l.retries {
                    0 => String::new(),
                    n => format!(", after its swap failed and its run was continued {n} time(s)"),
                }
            ));
        }
        for (t, e) in &self.failed {
            s.push_str(&format!("  {t}: NOT swapped: {e}\n"));
        }
        for t in &self.not_ready {
            s.push_str(&format!("  {t}: not swapped (not ready)\n"));
        }
        let earlier = self.swapped.iter().filter(|l| l.earlier).count();
        let now = self.swapped.len() - earlier;
        match self.spread_secs {
            Some(sp) if earlier > 0 => s.push_str(&format!(
                "split: {earlier} target(s) swapped by an earlier fleet process, {now} now; the fleet had two schemas for {sp:.3} s (first to last swap)\n"
            )),
            Some(sp) => s.push_str(&format!(
                "spread: {} target(s) swapped within {sp:.3} s (first to last swap)\n",
                self.swapped.len()
            )),
            None => {}
        }
        if !self.failed.is_empty() || !self.not_ready.is_empty() {
            s.push_str(&format!(
                "split: {} swapped, {} not swapped\n",
                self.swapped.len(),
                self.failed.len() + self.not_ready.len()
            ));
        }
        s
    }
}

/// Tells the ready targets among `which` (indexes into `probes`) to swap, one after another,
/// and waits until each has swapped; targets swapped before are reported as earlier swaps. A
/// failed swap is tried again by continuing the run (`retries` times) through `launch`.
pub async fn cutover(
    probes: &mut [Probe],
    which: &[usize],
    fleet_id: &str,
    launch: &ChildLauncher,
    retries: u32,
) -> Result<CutoverReport> {
    let mut report = CutoverReport::default();
    let mut told: Vec<usize> = Vec::new();
    for &i in which {
        let s = probes[i].read(Some(fleet_id)).await;
        match s.standing {
            Standing::Swapped => report.swapped.push(line(&s, true, 0)),
            Standing::Ready => {
                let run = s.run_id.unwrap_or_default();
                let sent = request_cutover(&mut probes[i], run).await;
                match sent {
                    Ok(true) => {
                        say(&format!(
                            "fleet: cut-over requested on {} (run {run})",
                            probes[i].target.label
                        ));
                        told.push(i);
                        crate::failpoint::hit("fleet-cutover-sent");
                    }
                    Ok(false) => report.failed.push((
                        s.target.clone(),
                        "the run stopped before the cut-over request".into(),
                    )),
                    Err(e) => report
                        .failed
                        .push((s.target.clone(), e.message().to_string())),
                }
            }
            _ => report.not_ready.push(s.target.clone()),
        }
    }
    for i in told {
        let s = wait_swapped(&mut probes[i], fleet_id, launch, retries).await;
        match s {
            Ok((s, retries)) => report.swapped.push(line(&s, false, retries)),
            Err(e) => report.failed.push((probes[i].target.label.clone(), e)),
        }
    }
    let times: Vec<f64> = report.swapped.iter().filter_map(|l| l.swapped_at).collect();
    if !times.is_empty() {
        let lo = times.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = times.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        report.spread_secs = Some(hi - lo);
    }
    Ok(report)
}

fn line(s: &TargetStatus, earlier: bool, retries: u32) -> SwapLine {
    SwapLine {
        target: s.target.clone(),
        run_id: s.run_id,
        swapped_at: s.swapped_at,
        earlier,
        retries,
    }
}

/// Records the cut-over request for run `run` of the probe's target.
async fn request_cutover(p: &mut Probe, run: i64) -> Result<bool> {
    let state = p.state().clone();
    let client = p.client().await?;
    state.request(client, run, Some("cutover")).await
}

/// Waits until the target has swapped; a run that stopped without swapping (its lock attempts
/// exhausted, say) is continued again, up to `retries` times. The final status and how many
/// times the run was continued, or the error.
async fn wait_swapped(
    p: &mut Probe,
    fleet_id: &str,
    launch: &ChildLauncher,
    retries: u32,
) -> std::result::Result<(TargetStatus, u32), String> {
    let started = Instant::now();
    let mut tries = 0;
    loop {
        let s = p.read(Some(fleet_id)).await;
        match s.standing {
            // The swap's event is written just after its commit: wait for it (its time is the
            // report's), unless the run is over without one.
            Standing::Swapped
                if s.swapped_at.is_some() || s.status.as_deref() != Some("running") =>
            {
                return Ok((s, tries))
            }
            Standing::Stopped => {
                let why = s.error.clone().unwrap_or_else(|| "the run stopped".into());
                if tries >= retries {
                    return Err(format!("{why} (after {tries} more attempt(s))"));
                }
                tries += 1;
                say(&format!(
                    "fleet: the swap of {} did not happen ({why}); continuing its run (attempt {tries} of {retries})",
                    p.target.label
                ));
                match launch.resume(&p.target).await {
                    Ok(0) => {}
                    Ok(code) => say(&format!(
                        "fleet: continuing the run of {} ended with exit status {code}",
                        p.target.label
                    )),
                    Err(e) => return Err(e.message().to_string()),
                }
            }
            _ => {}
        }
        if started.elapsed() > SWAP_WAIT {
            return Err(format!(
                "it has not swapped within {} s of the cut-over request",
                SWAP_WAIT.as_secs()
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
