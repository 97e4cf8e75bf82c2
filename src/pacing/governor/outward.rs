//! What the governor tells the world outside the run (issue 19): the hooks of `--hooks-dir` for
//! the events it sees once a second (`on-start`, `on-copy-done`, `on-stop` when something starts
//! holding the run, and `on-before-cutover` when the run is ready to swap), and the
//! `--metrics-file`, written every few seconds from the run's figures.
//!
//! Invariants kept here: nothing here holds the governor's loop (hooks run on their own queue;
//! `on-before-cutover`'s outcome is collected on a later tick), and the swap is let through only
//! after `on-before-cutover` exited 0 since the last time something else held it
//! ([`HookGate`]; a non-zero exit postpones the swap, and the hook is asked again).

use super::Gate;
use crate::db::ident::QualifiedName;
use crate::output::ui::say;
use crate::pacing::hooks::{Event, Hooks, Outcome};
use crate::pacing::metrics::{self, Live};
use crate::state::{Phase, RunFigures, State};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::oneshot;
use tokio_postgres::Client;

/// How often the metrics file is written (the figures are read on every tick, so the hooks are
/// told fresh ones).
const METRICS_EVERY: Duration = Duration::from_secs(2);

/// The `on-before-cutover` gate, shared by the run's swap permit and the governor's task.
#[derive(Debug, Default)]
pub(super) struct HookGate {
    /// The run asked for its swap permit: it is ready (`on-ready` is to be told).
    pub ready_asked: bool,
    /// `on-copy-done` and `on-ready` were queued, with the figures of that tick.
    pub ready_told: bool,
    /// The run is ready and nothing else holds the swap: `on-before-cutover` is to be asked.
    pub ready: bool,
    /// The hook exited 0 since the run became ready.
    pub approved: bool,
    /// Times it postponed the swap.
    pub postponed: u64,
    /// Why the swap waits for it now.
    pub why: Option<String>,
}

/// The governor task's side of hooks and metrics.
pub(super) struct Outward {
    hooks: Option<Hooks>,
    metrics_file: Option<PathBuf>,
    pub(super) gate: Arc<Mutex<HookGate>>,
    started: bool,
    stop_shown: Option<String>,
    asked: Option<oneshot::Receiver<Outcome>>,
    metrics_at: Option<Instant>,
    figures: RunFigures,
    log: Option<QualifiedName>,
    backlog: Option<i64>,
    metrics_warned: bool,
    /// Held across each write of the metrics file; true once the run's final figures are
    /// written ([`super::Governor::final_metrics`]), after which the ticks write no more.
    pub(super) metrics_final: Arc<tokio::sync::Mutex<bool>>,
}

impl Outward {
    pub(super) fn new(hooks: Option<Hooks>, metrics_file: Option<PathBuf>) -> Outward {
        Outward {
            hooks,
            metrics_file,
            gate: Arc::new(Mutex::new(HookGate::default())),
            started: false,
            stop_shown: None,
            asked: None,
            metrics_at: None,
            figures: RunFigures::default(),
            log: None,
            backlog: None,
            metrics_warned: false,
            metrics_final: Arc::new(tokio::sync::Mutex::new(false)),
        }
    }

    /// One tick: the figures (every few seconds), the hooks of what changed, the
    /// `on-before-cutover` gate, the metrics file.
    pub(super) async fn tick(
        &mut self,
        client: Option<&Client>,
        state: &State,
        run: i64,
        gate: &Gate,
        phase: Phase,
    ) {
        if self.hooks.is_none() && self.metrics_file.is_none() {
            return;
        }
        if let Some(c) = client {
            if let Ok(f) = state.run_figures(c, run).await {
                self.figures = f;
            }
            if self.log.is_none() {
                self.log = state.change_log_of(c, run).await.ok().flatten();
            }
            if let Some(log) = &self.log {
                self.backlog = crate::state::backlog_estimate_of(c, log).await.ok();
            }
        }
        self.figures.phase = phase.as_str().to_string();
        if let Some(h) = self.hooks.clone() {
            self.tell_hooks(&h, run, gate, phase);
        }
        let due = self
            .metrics_at
            .map(|t| t.elapsed() >= METRICS_EVERY)
            .unwrap_or(true);
        if due {
            self.metrics_at = Some(Instant::now());
            self.write_metrics(run, gate).await;
        }
    }

    fn tell_hooks(&mut self, h: &Hooks, run: i64, gate: &Gate, phase: Phase) {
        let f = &self.figures;
        h.update(|x| {
            // The table as the command was given it (`--table`), so a hook can hand it back to
            // `pg-hotswap abort --table "$PGHOTSWAP_TABLE"`; the run's record only when unset.
            if x.table.is_empty() {
                x.table = f.table.clone();
            }
            x.run_id = Some(run);
            x.phase = phase.as_str().to_string();
            x.rows_copied = f.rows_copied;
            x.bytes_copied = f.bytes_copied;
            x.chunks_done = f.chunks_done;
            x.chunks_total = f.chunks_total;
            x.backlog = self.backlog;
        });
        if !self.started {
            self.started = true;
            h.queue(Event::Start, &[]);
        }
        // Once per process: also when a resumed run finds its copy done.
        if phase > Phase::Copy {
            h.queue_once(Event::CopyDone);
        }
        let stop = if gate.abort { None } else { gate.reason(None) };
        if stop != self.stop_shown {
            if let Some(r) = &stop {
                h.queue(Event::Stop, &[("PGHOTSWAP_REASON", r.clone())]);
            }
            self.stop_shown = stop;
        }
        self.before_cutover(h);
    }

    /// Tells `on-ready` once the run asked for its swap permit; asks `on-before-cutover` while
    /// the run is ready and nothing else holds the swap; collects its answer on a later tick.
    fn before_cutover(&mut self, h: &Hooks) {
        let mut g = self.gate.lock().unwrap_or_else(|e| e.into_inner());
        if g.ready_asked && !g.ready_told {
            // The copy is done whether or not a tick saw its phase.
            h.queue_once(Event::CopyDone);
            h.queue_once(Event::Ready);
            g.ready_told = true;
        }
        if let Some(rx) = &mut self.asked {
            let outcome = match rx.try_recv() {
                Ok(o) => o,
                Err(oneshot::error::TryRecvError::Empty) => return,
                Err(oneshot::error::TryRecvError::Closed) => {
                    Outcome::Refused("did not report".into())
                }
            };
            self.asked = None;
            match outcome {
                Outcome::Passed | Outcome::Missing => {
                    if g.ready {
                        g.approved = true;
                        g.why = None;
                    }
                }
                Outcome::Refused(why) => {
                    g.postponed += 1;
                    let msg = format!(
                        "the swap is postponed: the on-before-cutover hook {why} (time {}); asking it again",
                        g.postponed
                    );
                    say(&msg);
                    g.why = Some(msg);
                }
            }
            return;
        }
        if g.ready && !g.approved {
            let attempt = (g.postponed + 1).to_string();
            self.asked = Some(h.ask(Event::BeforeCutover, &[("PGHOTSWAP_ATTEMPT", attempt)]));
        }
    }

    async fn write_metrics(&mut self, run: i64, gate: &Gate) {
        let Some(path) = &self.metrics_file else {
            return;
        };
        let postponed = self
            .gate
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .postponed;
        let text = metrics::render(&self.figures, &live(run, self.backlog, gate, postponed));
        let done = self.metrics_final.lock().await;
        if *done {
            return;
        }
        if let Err(e) = metrics::write_atomic(path, &text).await {
            if !self.metrics_warned {
                self.metrics_warned = true;
                say(&format!(
                    "warning: cannot write --metrics-file {}: {e}",
                    path.display()
                ));
            }
        }
    }
}

/// What the metrics file says besides the run's recorded figures.
pub(super) fn live(run: i64, backlog: Option<i64>, gate: &Gate, postponed: u64) -> Live {
    Live {
        run_id: run,
        backlog,
        paused: gate.paused,
        throttled: gate.throttle.is_some(),
        window_closed: gate.window.is_some(),
        waiting_start: gate.not_yet.is_some(),
        cutover_postponed: postponed,
        now: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0),
    }
}
