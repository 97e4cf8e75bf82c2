//! Pacing and steering of a running run: one background task (its own session,
//! `pg-hotswap/governor`) checks once a second what the run may do now, and the copy workers,
//! index builds, verification, replay and the swap ask it before each unit of work (the copy's
//! permit covers the builds and verification: they load the server like the copy does).
//!
//! What it checks: the operator's request in `runs.control` (`pause`, `cutover`, `abort`, written
//! by `pg-hotswap pause|cutover|abort` or by one SQL statement from any client); `--start-at`;
//! the low-traffic `--window`s; replication lag on the primary and on `--replica-dsn`s
//! (`--max-lag`); active sessions (`--max-active`); the user's `--throttle-query`. `--nice`
//! pauses after each chunk or replay batch in proportion to its duration.
//!
//! What each holds: a pause holds copy, replay and the swap; a throttle (lag, sessions, query)
//! holds copy and replay; a closed window holds copy and the swap but not replay, which runs at
//! the pace of the application's writes once the copy is done (replay never runs during the copy)
//! and keeps the backlog (and the log's size) bounded.
//! Every change of what holds the run is logged with its reason, recorded in `events`, and shown
//! by `status` (`runs.throttle`, `throttle_since`, `waiting_until`); while the run is held the
//! backlog is measured and reported as it grows, so it never grows unnoticed.
//!
//! Issue 19: the same task runs the `--hooks-dir` hooks of the events it sees and writes the
//! `--metrics-file`; `on-before-cutover` gates the swap through [`Governor::swap_hold`].
//!
//! Parts: this file holds the options and the run's handle (the permits it hands out);
//! `decision` the background task and what it decides, `signals` the measurements it reads,
//! `validate` the check of the options before the run creates anything, `outward` the hooks
//! and the metrics file.

mod decision;
mod outward;
mod signals;
mod validate;

pub use decision::Gate;
pub use validate::validate;

use crate::db::conn::ConnSpec;
use crate::error::{Error, Kind, Result};
use crate::pacing::hooks::{Event, Hooks};
use crate::pacing::window::Window;
use crate::state::{State, READY_NOTE};
use decision::Watcher;
use outward::HookGate;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio_postgres::Client;

/// When the swap happens once the shadow is ready.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Cutover {
    /// As soon as it is ready (and inside a window, if any).
    #[default]
    Auto,
    /// Keep replaying and wait for `pg-hotswap cutover` (or `control = 'cutover'`).
    Manual,
}

/// The pace and schedule options of `run` (none of them change the result, so a resumed run may
/// use other ones).
#[derive(Clone, Debug)]
pub struct PaceOptions {
    pub max_lag: Option<Duration>,
    pub replicas: Vec<ConnSpec>,
    pub max_active: Option<i64>,
    pub throttle_query: Option<String>,
    pub nice: f64,
    pub windows: Vec<Window>,
    /// `--start-at` as given; resolved to an absolute time by [`validate`].
    pub start_at: Option<String>,
    pub cutover: Cutover,
    /// Whether `--cutover` was given: a continued run keeps its recorded mode otherwise.
    pub cutover_given: bool,
    /// Give up (without swapping) when the replay backlog has not shrunk for this long.
    pub converge_timeout: Duration,
    /// How often the conditions are checked.
    pub poll: Duration,
    /// `--hooks-dir` (issue 19), checked before the run creates anything.
    pub hooks: Option<Hooks>,
    /// `--metrics-file` (issue 19).
    pub metrics_file: Option<PathBuf>,
}

impl Default for PaceOptions {
    fn default() -> Self {
        PaceOptions {
            max_lag: None,
            replicas: Vec::new(),
            max_active: None,
            throttle_query: None,
            nice: 0.0,
            windows: Vec::new(),
            start_at: None,
            cutover: Cutover::Auto,
            cutover_given: false,
            converge_timeout: Duration::from_secs(300),
            poll: Duration::from_secs(1),
            hooks: None,
            metrics_file: None,
        }
    }
}

/// The run's handle on the governor; cheap to clone into copy workers.
#[derive(Clone)]
pub struct Governor {
    rx: watch::Receiver<Gate>,
    opts: Arc<PaceOptions>,
    /// What the run itself is waiting for (e.g. the operator's cut-over), shown in `status`.
    note: Arc<Mutex<Option<String>>>,
    /// The `on-before-cutover` gate the task keeps (issue 19).
    hook_gate: Arc<Mutex<HookGate>>,
    /// Whether the metrics file has its final figures (the task writes no more then).
    metrics_final: Arc<tokio::sync::Mutex<bool>>,
    _task: Arc<TaskGuard>,
}

/// Aborts the task when the last handle goes; keeps the channel's sender alive.
struct TaskGuard(
    Option<tokio::task::JoinHandle<()>>,
    #[allow(dead_code)] Option<watch::Sender<Gate>>,
);

impl Drop for TaskGuard {
    fn drop(&mut self) {
        if let Some(t) = self.0.take() {
            t.abort();
        }
    }
}

/// The error the run returns when the operator aborted it.
pub fn aborted_error(run: i64) -> Error {
    Error::new(
        Kind::Aborted,
        format!("run {run} was aborted on request (pg-hotswap abort, or control = 'abort')"),
    )
}

impl Governor {
    /// A governor that never holds anything (for `revert`, and tests of the parts).
    pub fn inert(opts: PaceOptions) -> Governor {
        let (tx, rx) = watch::channel(Gate::default());
        Governor {
            rx,
            opts: Arc::new(opts),
            note: Arc::new(Mutex::new(None)),
            hook_gate: Arc::new(Mutex::new(HookGate::default())),
            metrics_final: Arc::new(tokio::sync::Mutex::new(false)),
            _task: Arc::new(TaskGuard(None, Some(tx))),
        }
    }

    /// Starts the governor task for `run`. Its first decision is made before this returns, so
    /// nothing is copied before a closed window or a pause is known.
    pub async fn start(
        spec: &ConnSpec,
        state: &State,
        run: i64,
        opts: &PaceOptions,
    ) -> Result<Governor> {
        let mut watcher = Watcher::new(spec.clone(), state.clone(), run, opts.clone());
        let first = watcher.decide().await;
        let (tx, rx) = watch::channel(first.clone());
        let note = Arc::new(Mutex::new(None));
        watcher.note = note.clone();
        let hook_gate = watcher.outward.gate.clone();
        let metrics_final = watcher.outward.metrics_final.clone();
        watcher.publish(&first).await;
        let task_tx = tx.clone();
        let task = tokio::spawn(async move { watcher.watch(task_tx).await });
        Ok(Governor {
            rx,
            opts: Arc::new(opts.clone()),
            note,
            hook_gate,
            metrics_final,
            _task: Arc::new(TaskGuard(Some(task), Some(tx))),
        })
    }

    pub fn options(&self) -> &PaceOptions {
        &self.opts
    }

    fn gate(&self) -> Gate {
        self.rx.borrow().clone()
    }

    async fn wait_while(&self, run: i64, held: impl Fn(&Gate) -> bool) -> Result<()> {
        let mut rx = self.rx.clone();
        loop {
            {
                let g = rx.borrow_and_update();
                if g.abort {
                    return Err(aborted_error(run));
                }
                if !held(&g) {
                    return Ok(());
                }
            }
            if rx.changed().await.is_err() {
                return Ok(());
            }
        }
    }

    /// Waits until a chunk may be copied (not paused, throttled, before the start or outside
    /// the windows); fails when the operator aborted the run.
    pub async fn copy_permit(&self, run: i64) -> Result<()> {
        self.wait_while(run, Gate::holds_copy).await
    }

    /// Waits until a replay batch may run (not paused or throttled).
    pub async fn replay_permit(&self, run: i64) -> Result<()> {
        self.wait_while(run, Gate::holds_replay).await
    }

    /// Waits for `--start-at` (and a pause or a throttle) before the run creates anything.
    pub async fn start_permit(&self, run: i64) -> Result<()> {
        self.wait_while(run, |g| {
            g.paused || g.not_yet.is_some() || g.throttle.is_some()
        })
        .await
    }

    /// Why the swap must wait now (paused, outside the windows without an explicit cut-over,
    /// a manual cut-over not yet requested, or `on-before-cutover` not yet passed), or None to
    /// go ahead. The run asks this once it is ready: that is the `on-ready` event.
    pub fn swap_hold(&self, run: i64) -> Result<Option<String>> {
        let other = self.other_swap_hold(run)?;
        let Some(hooks) = &self.opts.hooks else {
            return Ok(other);
        };
        let mut hg = self.hook_gate.lock().unwrap_or_else(|e| e.into_inner());
        // Ready: the task tells `on-ready` on its next tick, with the figures it reads then;
        // the swap waits for that tick (a second at most).
        hg.ready_asked = true;
        if !hg.ready_told {
            return Ok(other.or_else(|| Some(format!("{READY_NOTE}: telling the on-ready hook"))));
        }
        if other.is_some() || !hooks.has(Event::BeforeCutover) {
            // Asked again once nothing else holds the swap: its answer is about that moment.
            hg.ready = false;
            hg.approved = false;
            return Ok(other);
        }
        if hg.approved {
            return Ok(None);
        }
        hg.ready = true;
        Ok(Some(hg.why.clone().unwrap_or_else(|| {
            format!("{READY_NOTE}: waiting for the on-before-cutover hook")
        })))
    }

    fn other_swap_hold(&self, run: i64) -> Result<Option<String>> {
        let g = self.gate();
        if g.abort {
            return Err(aborted_error(run));
        }
        if g.paused {
            return Ok(g.reason(None));
        }
        if g.cutover {
            return Ok(None);
        }
        if let Some(w) = g.window {
            return Ok(Some(w));
        }
        if self.opts.cutover == Cutover::Manual {
            // `fleet` reads readiness from this note's first words (state::READY_NOTE).
            return Ok(Some(format!(
                "{READY_NOTE}: waiting for the operator's cut-over (`pg-hotswap cutover`, or SET control = 'cutover'); replaying meanwhile"
            )));
        }
        Ok(None)
    }

    /// Whether the operator has asked to abort, now (for a loop that checks between steps).
    pub fn abort_requested(&self) -> bool {
        self.rx.borrow().abort
    }

    /// Whether the operator asked to abort (checked by steps that cannot wait on a permit).
    pub async fn aborted(&self) {
        let mut rx = self.rx.clone();
        loop {
            if rx.borrow_and_update().abort {
                return;
            }
            if rx.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    /// Runs `fut`, or fails with the abort error as soon as the operator aborts the run (the
    /// future is dropped: its sessions close and their transactions roll back).
    pub async fn abortable<T>(
        &self,
        run: i64,
        fut: impl std::future::Future<Output = Result<T>>,
    ) -> Result<T> {
        tokio::select! {
            r = fut => r,
            _ = self.aborted() => Err(aborted_error(run)),
        }
    }

    /// `--nice`: the pause after a unit of work that took `took`.
    pub async fn nice(&self, took: Duration) {
        if self.opts.nice > 0.0 {
            tokio::time::sleep(took.mul_f64(self.opts.nice.min(100.0))).await;
        }
    }

    /// Sets what the run itself is waiting for (shown in `status` when nothing else holds it).
    pub fn set_note(&self, note: Option<String>) {
        *self.note.lock().unwrap_or_else(|e| e.into_inner()) = note;
    }

    /// `--metrics-file`: written once more when the run ends, with its recorded figures (phase
    /// `done` and the swap's lock figures after a success): the ticks stop with the run, and a
    /// file left in its last running phase would look like a run whose process vanished.
    pub async fn final_metrics(&self, ctl: &Client, state: &State, run: i64) {
        let Some(path) = &self.opts.metrics_file else {
            return;
        };
        let Ok(figures) = state.run_figures(ctl, run).await else {
            return;
        };
        let postponed = self
            .hook_gate
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .postponed;
        let live = outward::live(run, None, &self.gate(), postponed);
        let text = crate::pacing::metrics::render(&figures, &live);
        // After a write of the task in flight; the task writes no more after this one.
        let mut done = self.metrics_final.lock().await;
        *done = true;
        if let Err(e) = crate::pacing::metrics::write_atomic(path, &text).await {
            crate::output::ui::say(&format!(
                "warning: cannot write --metrics-file {}: {e}",
                path.display()
            ));
        }
    }

    /// The operator's cut-over request was taken: clear it so a later run is not affected.
    pub async fn cutover_taken(&self, ctl: &Client, state: &State, run: i64) -> Result<()> {
        state.clear_request(ctl, run, "cutover").await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn manual_cutover_waits_for_the_request_and_windows_yield_to_it() {
        let g = Governor::inert(PaceOptions {
            cutover: Cutover::Manual,
            ..PaceOptions::default()
        });
        assert!(g.swap_hold(1).unwrap().unwrap().contains("cut-over"));
        let tx = g._task.1.as_ref().unwrap();
        tx.send_replace(Gate {
            cutover: true,
            window: Some("closed".into()),
            ..Gate::default()
        });
        assert_eq!(g.swap_hold(1).unwrap(), None);
        tx.send_replace(Gate {
            abort: true,
            ..Gate::default()
        });
        assert_eq!(g.swap_hold(1).unwrap_err().kind(), Kind::Aborted);
        assert_eq!(g.copy_permit(1).await.unwrap_err().kind(), Kind::Aborted);
    }
}
