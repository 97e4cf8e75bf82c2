//! The governor's decision: what the run may do now ([`Gate`]), made once a second by the
//! background task ([`Watcher`]) from its signals, and what follows from a change — it is shown,
//! recorded in `events` and on the run (`runs.throttle`, `throttle_since`, `waiting_until`,
//! `lag_s` for `status`), and while the run is held the change log is measured as it grows.
//!
//! What each hold stops: a pause holds copy, replay and the swap; a throttle (lag, sessions,
//! query) holds copy and replay; a closed window holds copy and the swap but not replay.
//!
//! Invariant kept here: a condition that cannot be checked holds the run (and says why); it is
//! never taken as "go on".

use super::signals::{self, test_clock};
use super::PaceOptions;
use crate::db::conn::{self, ConnSpec};
use crate::error::Result;
use crate::output::ui::say;
use crate::pacing::window::{self, Verdict};
use crate::state::{Phase, State};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio_postgres::Client;

/// What the run may do now, as last decided by the governor task.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Gate {
    pub paused: bool,
    pub abort: bool,
    pub cutover: bool,
    /// Before `--start-at`: why and until when.
    pub not_yet: Option<String>,
    /// Lag, sessions or the throttle query: why copy and replay wait.
    pub throttle: Option<String>,
    /// Outside every window: why copy and the swap wait.
    pub window: Option<String>,
    /// Seconds from the decision until the wait is expected to end (start or window opening).
    pub waiting_secs: Option<i64>,
}

impl Gate {
    pub(super) fn holds_copy(&self) -> bool {
        self.paused || self.not_yet.is_some() || self.throttle.is_some() || self.window.is_some()
    }
    pub(super) fn holds_replay(&self) -> bool {
        self.paused || self.not_yet.is_some() || self.throttle.is_some()
    }
    /// The one reason shown to people, most important first.
    pub(super) fn reason(&self, note: Option<&str>) -> Option<String> {
        if self.abort {
            return Some("aborting on request".into());
        }
        if self.paused {
            return Some(
                "paused by the operator (continue with `pg-hotswap resume`, or SET control = NULL in the runs table)"
                    .into(),
            );
        }
        self.not_yet
            .clone()
            .or_else(|| self.throttle.clone())
            .or_else(|| self.window.clone())
            .or_else(|| note.map(str::to_string))
    }
}

/// The background task's state.
pub(super) struct Watcher {
    spec: ConnSpec,
    state: State,
    run: i64,
    opts: PaceOptions,
    client: Option<Client>,
    replicas: Vec<Option<Client>>,
    pub(super) note: Arc<Mutex<Option<String>>>,
    shown: Option<String>,
    since: Instant,
    backlog_warned: i64,
    last_backlog_check: Option<Instant>,
    last_lag: Option<f64>,
    /// The run's phase, read with the operator's request (for the events recorded).
    phase: Phase,
    /// The run's change log, once the plan names it.
    log: Option<crate::db::ident::QualifiedName>,
    /// Hooks and the metrics file (issue 19).
    pub(super) outward: super::outward::Outward,
}

impl Watcher {
    pub(super) fn new(spec: ConnSpec, state: State, run: i64, opts: PaceOptions) -> Watcher {
        let replicas = opts.replicas.iter().map(|_| None).collect();
        let outward = super::outward::Outward::new(opts.hooks.clone(), opts.metrics_file.clone());
        Watcher {
            outward,
            spec,
            state,
            run,
            opts,
            client: None,
            replicas,
            note: Arc::new(Mutex::new(None)),
            shown: None,
            since: Instant::now(),
            backlog_warned: 0,
            last_backlog_check: None,
            last_lag: None,
            phase: Phase::Preflight,
            log: None,
        }
    }

    pub(super) async fn watch(mut self, tx: watch::Sender<Gate>) {
        loop {
            tokio::time::sleep(self.opts.poll).await;
            let gate = self.decide().await;
            tx.send_if_modified(|g| {
                if *g != gate {
                    *g = gate.clone();
                    true
                } else {
                    false
                }
            });
            self.publish(&gate).await;
        }
    }

    /// Checks every condition; a condition that cannot be checked holds the run (say why).
    pub(super) async fn decide(&mut self) -> Gate {
        match self.try_decide().await {
            Ok(g) => g,
            Err(e) => {
                self.client = None;
                Gate {
                    throttle: Some(format!(
                        "holding: cannot check the pace conditions ({}); retrying",
                        e.message()
                    )),
                    ..Gate::default()
                }
            }
        }
    }

    async fn try_decide(&mut self) -> Result<Gate> {
        if self.client.is_none() {
            self.client = Some(conn::connect(&self.spec, "governor").await?);
        }
        let mut gate = Gate::default();
        let client = self.client.as_mut().expect("connected above");
        let (control, phase) = self.state.request_and_phase(&*client, self.run).await?;
        self.phase = phase;
        match control.as_deref() {
            Some("pause") => gate.paused = true,
            Some("abort") => gate.abort = true,
            Some("cutover") => gate.cutover = true,
            _ => {}
        }
        let now = test_clock();
        if let Some(at) = &self.opts.start_at {
            let wait = signals::start_wait(client, at, &now).await?;
            if wait > 0.0 {
                gate.waiting_secs = Some(wait.ceil() as i64);
                gate.not_yet = Some(format!("waiting for --start-at {at}"));
            }
        }
        if !self.opts.windows.is_empty() {
            let local = signals::window_times(client, &self.opts.windows, &now).await?;
            let verdict = window::verdict(self.opts.windows.iter().zip(local));
            if let Verdict::Closed { opens_in } = verdict {
                let list = self
                    .opts
                    .windows
                    .iter()
                    .map(|w| w.to_string())
                    .collect::<Vec<_>>()
                    .join(", ");
                gate.window = Some(match opens_in {
                    Some(s) => {
                        gate.waiting_secs = gate.waiting_secs.or(Some(s));
                        format!(
                            "outside the window ({list}): not copying or swapping until it opens"
                        )
                    }
                    None => format!("outside the window ({list}), which never opens"),
                });
            }
        }
        if let Some(max) = self.opts.max_lag {
            let primary = signals::primary_lag(client).await?;
            let mut worst = Some((primary, "the primary's pg_stat_replication".to_string()));
            for (i, spec) in self.opts.replicas.iter().enumerate() {
                let lag = signals::replica_lag(&mut self.replicas[i], spec).await;
                let lag = match lag {
                    Ok(l) => l,
                    Err(e) => {
                        gate.throttle = Some(format!(
                            "holding: cannot read the lag of replica {} ({})",
                            conn::describe(&spec.config),
                            e.message()
                        ));
                        continue;
                    }
                };
                if worst.as_ref().map(|(w, _)| lag > *w).unwrap_or(true) {
                    worst = Some((lag, format!("replica {}", conn::describe(&spec.config))));
                }
            }
            if let Some((lag, where_)) = worst {
                self.last_lag = Some(lag);
                if lag > max.as_secs_f64() && gate.throttle.is_none() {
                    gate.throttle = Some(format!(
                        "throttled: replication lag {lag:.1} s on {where_} exceeds --max-lag {:.1} s",
                        max.as_secs_f64()
                    ));
                }
            }
        }
        let client = self.client.as_mut().expect("connected above");
        if let Some(max) = self.opts.max_active {
            let base = self
                .spec
                .config
                .get_application_name()
                .unwrap_or(conn::APPLICATION_NAME)
                .to_string();
            let active = signals::active_sessions(client, &base).await?;
            if active > max && gate.throttle.is_none() {
                gate.throttle = Some(format!(
                    "throttled: {active} active sessions exceed --max-active {max}"
                ));
            }
        }
        if let Some(q) = &self.opts.throttle_query {
            if gate.throttle.is_none() {
                match signals::run_throttle_query(client, q).await {
                    Ok(true) => {
                        gate.throttle = Some("throttled: --throttle-query returned true".into())
                    }
                    Ok(false) => {}
                    Err(e) => {
                        gate.throttle = Some(format!(
                            "holding: --throttle-query failed ({}); retrying",
                            e.message()
                        ))
                    }
                }
            }
        }
        Ok(gate)
    }

    /// Shows and records a change of what holds the run; while replay is held, watches the
    /// backlog.
    pub(super) async fn publish(&mut self, gate: &Gate) {
        let note = self.note.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let reason = gate.reason(note.as_deref());
        if reason != self.shown {
            let held_for = self.since.elapsed();
            // Shown once per change (above the progress bar on a terminal, as a line otherwise).
            crate::output::progress::throttle(reason.as_ref().map(|r| match gate.waiting_secs {
                Some(w) => format!("{r} (in {})", window::human_secs(w)),
                None => r.clone(),
            }));
            if let Some(c) = &self.client {
                // One clock per computation (issue 13): the wait was measured on the test
                // clock when one is set, so the time it ends is too.
                let _ = self
                    .state
                    .record_hold(
                        c,
                        self.run,
                        reason.as_deref(),
                        gate.waiting_secs.map(|s| s as f64),
                        test_clock().as_deref(),
                    )
                    .await;
                let msg = reason.clone().unwrap_or_else(|| {
                    format!(
                        "going on (held for {})",
                        window::human_secs(held_for.as_secs() as i64)
                    )
                });
                let _ = self
                    .state
                    .event(c, self.run, self.phase, "pace", &msg, None)
                    .await;
            }
            self.shown = reason;
            self.since = Instant::now();
            self.backlog_warned = 0;
        }
        if let (Some(lag), Some(c)) = (self.last_lag, &self.client) {
            let _ = self.state.record_lag(c, self.run, lag).await;
        }
        // Held (the copy, or replay too): the log grows with every write meanwhile.
        if gate.holds_copy() && gate.not_yet.is_none() {
            self.watch_backlog().await;
        }
        self.outward
            .tick(
                self.client.as_ref(),
                &self.state,
                self.run,
                gate,
                self.phase,
            )
            .await;
    }

    /// While the run is held the log grows with every write: measure it every 30 s and say so
    /// each time it doubles (from 10,000 changes).
    async fn watch_backlog(&mut self) {
        if self
            .last_backlog_check
            .map(|t| t.elapsed() < Duration::from_secs(30))
            .unwrap_or(false)
        {
            return;
        }
        self.last_backlog_check = Some(Instant::now());
        let Some(c) = &self.client else { return };
        if self.log.is_none() {
            // Not named yet, or a plan of another shape: no backlog reported.
            self.log = self.state.change_log_of(c, self.run).await.ok().flatten();
        }
        let Some(log) = &self.log else { return };
        // Not there (yet, or any more): nothing to report.
        let n = crate::state::backlog_estimate_of(c, log).await.ok();
        if let Some(n) = n {
            if n >= 10_000 && n >= self.backlog_warned * 2 {
                self.backlog_warned = n;
                let msg = format!(
                    "warning: the run is held ({} for {}) and the change log has grown to about {n} changes; \
                     they are replayed after the copy (a long hold makes the final catch-up longer)",
                    self.shown.as_deref().unwrap_or("held"),
                    window::human_secs(self.since.elapsed().as_secs() as i64)
                );
                say(&msg);
                let _ = self
                    .state
                    .event(
                        c,
                        self.run,
                        self.phase,
                        "backlog",
                        &msg,
                        Some(serde_json::json!({ "backlog": n })),
                    )
                    .await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_each_hold_stops() {
        let paused = Gate {
            paused: true,
            ..Gate::default()
        };
        assert!(paused.holds_copy() && paused.holds_replay());
        let window = Gate {
            window: Some("closed".into()),
            ..Gate::default()
        };
        assert!(
            window.holds_copy() && !window.holds_replay(),
            "replay runs outside windows"
        );
        let throttled = Gate {
            throttle: Some("lag".into()),
            ..Gate::default()
        };
        assert!(throttled.holds_copy() && throttled.holds_replay());
        assert!(!Gate::default().holds_copy());
    }

    #[test]
    fn the_reason_shown_is_the_most_important() {
        let g = Gate {
            paused: true,
            window: Some("closed".into()),
            ..Gate::default()
        };
        assert!(g.reason(None).unwrap().starts_with("paused"));
        let g = Gate {
            window: Some("closed".into()),
            ..Gate::default()
        };
        assert_eq!(g.reason(Some("note")).as_deref(), Some("closed"));
        assert_eq!(
            Gate::default().reason(Some("note")).as_deref(),
            Some("note")
        );
        assert_eq!(Gate::default().reason(None), None);
    }
}
