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

use crate::conn::{self, ConnSpec};
use crate::error::{DbContext, Error, Kind, Result, RowExt};
use crate::state::{Phase, State};
use crate::ui::say;
use crate::window::{self, Verdict, Window};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
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
    /// Give up (without swapping) when the replay backlog has not shrunk for this long.
    pub converge_timeout: Duration,
    /// How often the conditions are checked.
    pub poll: Duration,
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
            converge_timeout: Duration::from_secs(300),
            poll: Duration::from_secs(1),
        }
    }
}

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
    fn holds_copy(&self) -> bool {
        self.paused || self.not_yet.is_some() || self.throttle.is_some() || self.window.is_some()
    }
    fn holds_replay(&self) -> bool {
        self.paused || self.not_yet.is_some() || self.throttle.is_some()
    }
    /// The one reason shown to people, most important first.
    fn reason(&self, note: Option<&str>) -> Option<String> {
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

/// The run's handle on the governor; cheap to clone into copy workers.
#[derive(Clone)]
pub struct Governor {
    rx: watch::Receiver<Gate>,
    opts: Arc<PaceOptions>,
    /// What the run itself is waiting for (e.g. the operator's cut-over), shown in `status`.
    note: Arc<Mutex<Option<String>>>,
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
        watcher.publish(&first).await;
        let task_tx = tx.clone();
        let task = tokio::spawn(async move { watcher.watch(task_tx).await });
        Ok(Governor {
            rx,
            opts: Arc::new(opts.clone()),
            note,
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
    /// or a manual cut-over not yet requested), or None to go ahead.
    pub fn swap_hold(&self, run: i64) -> Result<Option<String>> {
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
            return Ok(Some(
                "ready to swap: waiting for the operator's cut-over (`pg-hotswap cutover`, or SET control = 'cutover'); replaying meanwhile"
                    .into(),
            ));
        }
        Ok(None)
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

    /// The operator's cut-over request was taken: clear it so a later run is not affected.
    pub async fn cutover_taken(&self, ctl: &Client, state: &State, run: i64) -> Result<()> {
        ctl.execute(
            &format!(
                "UPDATE {} SET control = NULL WHERE id = $1 AND control = 'cutover'",
                state.table("runs")
            ),
            &[&run],
        )
        .await
        .ctx("clearing the cut-over request")?;
        Ok(())
    }
}

/// The background task's state.
struct Watcher {
    spec: ConnSpec,
    state: State,
    run: i64,
    opts: PaceOptions,
    client: Option<Client>,
    replicas: Vec<Option<Client>>,
    note: Arc<Mutex<Option<String>>>,
    shown: Option<String>,
    since: Instant,
    backlog_warned: i64,
    last_backlog_check: Option<Instant>,
    last_lag: Option<f64>,
    /// The run's phase, read with the operator's request (for the events recorded).
    phase: Phase,
    /// The run's change log, once the plan names it.
    log: Option<crate::ident::QualifiedName>,
}

impl Watcher {
    fn new(spec: ConnSpec, state: State, run: i64, opts: PaceOptions) -> Watcher {
        let replicas = opts.replicas.iter().map(|_| None).collect();
        Watcher {
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

    async fn watch(mut self, tx: watch::Sender<Gate>) {
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
    async fn decide(&mut self) -> Gate {
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
        let row = client
            .query_one(
                &format!(
                    "SELECT control, phase FROM {} WHERE id = $1",
                    self.state.table("runs")
                ),
                &[&self.run],
            )
            .await
            .ctx("reading the operator's request")?;
        let control: Option<String> = row.col(0, &"reading the operator's request")?;
        self.phase = Phase::parse(row.col(1, &"reading the operator's request")?)
            .unwrap_or(Phase::Preflight);
        match control.as_deref() {
            Some("pause") => gate.paused = true,
            Some("abort") => gate.abort = true,
            Some("cutover") => gate.cutover = true,
            _ => {}
        }
        let now = test_clock();
        if let Some(at) = &self.opts.start_at {
            let wait: f64 = client
                .query_one(
                    "SELECT extract(epoch FROM $1::text::timestamptz - COALESCE($2::text::timestamptz, now()))::float8",
                    &[at, &now],
                )
                .await
                .ctx("checking --start-at")?
                .col(0, &"checking --start-at")?;
            if wait > 0.0 {
                gate.waiting_secs = Some(wait.ceil() as i64);
                gate.not_yet = Some(format!("waiting for --start-at {at}"));
            }
        }
        if !self.opts.windows.is_empty() {
            let mut local = Vec::with_capacity(self.opts.windows.len());
            for w in &self.opts.windows {
                let s: i64 = client
                    .query_one(
                        "SELECT extract(epoch FROM COALESCE($1::text::timestamptz, now()) \
                                AT TIME ZONE COALESCE($2, current_setting('TimeZone')))::int8",
                        &[&now, &w.tz],
                    )
                    .await
                    .ctx("reading the time for --window")?
                    .col(0, &"reading the time for --window")?;
                local.push(s);
            }
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
            let primary: f64 = client
                .query_one(
                    "SELECT COALESCE(max(extract(epoch FROM replay_lag)), 0)::float8 FROM pg_catalog.pg_stat_replication",
                    &[],
                )
                .await
                .ctx("reading replication lag from pg_stat_replication")?
                .col(0, &"reading replication lag from pg_stat_replication")?;
            let mut worst = Some((primary, "the primary's pg_stat_replication".to_string()));
            for (i, spec) in self.opts.replicas.iter().enumerate() {
                let lag = replica_lag(&mut self.replicas[i], spec).await;
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
            let active: i64 = client
                .query_one(
                    "SELECT count(*) FROM pg_catalog.pg_stat_activity \
                      WHERE state = 'active' AND backend_type = 'client backend' \
                        AND pid <> pg_backend_pid() AND application_name NOT LIKE $1 || '/%' \
                        AND datname = current_database()",
                    &[&base],
                )
                .await
                .ctx("counting active sessions")?
                .col(0, &"counting active sessions")?;
            if active > max && gate.throttle.is_none() {
                gate.throttle = Some(format!(
                    "throttled: {active} active sessions exceed --max-active {max}"
                ));
            }
        }
        if let Some(q) = &self.opts.throttle_query {
            if gate.throttle.is_none() {
                match run_throttle_query(client, q).await {
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
    async fn publish(&mut self, gate: &Gate) {
        let note = self.note.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let reason = gate.reason(note.as_deref());
        if reason != self.shown {
            let held_for = self.since.elapsed();
            // Shown once per change (above the progress bar on a terminal, as a line otherwise).
            crate::progress::throttle(reason.as_ref().map(|r| match gate.waiting_secs {
                Some(w) => format!("{r} (in {})", window::human_secs(w)),
                None => r.clone(),
            }));
            if let Some(c) = &self.client {
                let _ = c
                    .execute(
                        &format!(
                            "UPDATE {} SET throttle = $2, throttle_since = CASE WHEN $2::text IS NULL THEN NULL ELSE clock_timestamp() END, \
                                    waiting_until = COALESCE($4::text::timestamptz, clock_timestamp()) + make_interval(secs => $3::float8) \
                              WHERE id = $1",
                            self.state.table("runs")
                        ),
                        // One clock per computation (issue 13): the wait was measured on the
                        // test clock when one is set, so the time it ends is too.
                        &[&self.run, &reason, &gate.waiting_secs.map(|s| s as f64), &test_clock()],
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
            let _ = c
                .execute(
                    &format!(
                        "UPDATE {} SET lag_s = $2 WHERE id = $1",
                        self.state.table("runs")
                    ),
                    &[&self.run, &lag],
                )
                .await;
        }
        // Held (the copy, or replay too): the log grows with every write meanwhile.
        if gate.holds_copy() && gate.not_yet.is_none() {
            self.watch_backlog().await;
        }
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
            let row = c
                .query_opt(
                    &format!(
                        "SELECT plan #>> '{{capture,log,schema}}', plan #>> '{{capture,log,name}}' FROM {} WHERE id = $1",
                        self.state.table("runs")
                    ),
                    &[&self.run],
                )
                .await
                .ok()
                .flatten();
            if let Some(row) = row {
                // A row of another shape is skipped like a failed query: no backlog reported.
                let what = "reading the run's change log";
                if let (Ok(Some(schema)), Ok(Some(name))) = (
                    row.col::<Option<String>>(0, &what),
                    row.col::<Option<String>>(1, &what),
                ) {
                    self.log = Some(crate::ident::QualifiedName::new(schema, name));
                }
            }
        }
        let Some(log) = &self.log else { return };
        // Not there (yet, or any more): nothing to report.
        let n = crate::capture::backlog_estimate_of(c, log).await.ok();
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

async fn replica_lag(slot: &mut Option<Client>, spec: &ConnSpec) -> Result<f64> {
    if slot.is_none() {
        *slot = Some(conn::connect(spec, "replica-lag").await?);
    }
    let c = slot.as_ref().expect("connected above");
    let r = c
        .query_one(
            "SELECT CASE WHEN pg_last_wal_receive_lsn() IS NOT DISTINCT FROM pg_last_wal_replay_lsn() THEN 0 \
                    ELSE COALESCE(extract(epoch FROM clock_timestamp() - pg_last_xact_replay_timestamp()), 0) END::float8",
            &[],
        )
        .await;
    match r {
        Ok(row) => row.col(0, &"reading replica lag"),
        Err(e) => {
            *slot = None;
            Err(Error::db("reading replica lag", e))
        }
    }
}

/// Runs the user's throttle query in a read-only transaction with a 10 s statement timeout; it
/// must return one boolean.
async fn run_throttle_query(client: &mut Client, q: &str) -> Result<bool> {
    let tx = client
        .build_transaction()
        .read_only(true)
        .start()
        .await
        .ctx("starting the throttle query's transaction")?;
    tx.batch_execute("SET LOCAL statement_timeout = '10s'")
        .await
        .ctx("limiting the throttle query to 10 s")?;
    let row = tx.query_opt(q, &[]).await.ctx("running --throttle-query")?;
    let v = match row {
        None => false,
        Some(r) if r.is_empty() => {
            return Err(Error::usage("--throttle-query returned no column"));
        }
        Some(r) => r
            .try_get::<_, Option<bool>>(0)
            .map_err(|_| Error::usage("--throttle-query must return a boolean"))?
            .unwrap_or(false),
    };
    tx.rollback().await.ctx("ending the throttle query")?;
    Ok(v)
}

/// In debug builds, `PGHOTSWAP_TEST_CLOCK=<file>` names a file holding the time (a timestamptz
/// literal) the windows and `--start-at` are judged by; tests move it to open and close windows.
#[cfg(debug_assertions)]
fn test_clock() -> Option<String> {
    let path = std::env::var_os("PGHOTSWAP_TEST_CLOCK")?;
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

#[cfg(not(debug_assertions))]
fn test_clock() -> Option<String> {
    None
}

/// Checks the pace options against the server before anything is created, and resolves
/// `--start-at` to an absolute time: time zones of the windows, the throttle query (runs once
/// and returns a boolean), the replicas (reachable standbys), and the visibility of lag and
/// sessions to this role (a warning when it cannot see them).
pub async fn validate(client: &mut Client, opts: &mut PaceOptions) -> Result<Vec<String>> {
    let mut warnings = Vec::new();
    for w in &opts.windows {
        if let Some(tz) = &w.tz {
            client
                .query_one("SELECT now() AT TIME ZONE $1", &[tz])
                .await
                .map_err(|e| {
                    Error::usage(format!(
                        "--window {w}: the server does not know the time zone {tz:?}: {e}"
                    ))
                    .with_state("nothing was changed")
                    .with_next("use a name from pg_timezone_names, e.g. Europe/Berlin or UTC")
                })?;
        }
    }
    if let Some(at) = opts.start_at.clone() {
        let now = test_clock();
        let resolved: Option<String> = if is_clock_time(&at) {
            // "01:00": the next time the server's clock shows it.
            client
                .query_one(
                    "WITH n AS (SELECT COALESCE($2::text::timestamptz, now()) AS t), \
                          c AS (SELECT (date_trunc('day', n.t) + $1::time)::timestamptz AS c, n.t FROM n) \
                     SELECT (CASE WHEN c > t THEN c ELSE c + interval '1 day' END)::text FROM c",
                    &[&at, &now],
                )
                .await
                .ok()
                .map(|r| r.col(0, &"resolving --start-at"))
                .transpose()?
        } else {
            client
                .query_one("SELECT $1::text::timestamptz::text", &[&at])
                .await
                .ok()
                .map(|r| r.col(0, &"resolving --start-at"))
                .transpose()?
        };
        let resolved = resolved.ok_or_else(|| {
            Error::usage(format!("--start-at {at:?} is not a time the server understands"))
                .with_state("nothing was changed")
                .with_next("give HH:MM (the next time the server's clock shows it) or a timestamp such as '2026-11-22 01:00 Europe/Berlin'")
        })?;
        opts.start_at = Some(resolved);
    }
    if let Some(q) = &opts.throttle_query {
        run_throttle_query(client, q).await.map_err(|e| {
            Error::usage(format!("--throttle-query cannot be used: {}", e.message()))
                .with_state("nothing was changed")
                .with_next(
                    "give one read-only SELECT that returns a single boolean (true = back off)",
                )
        })?;
    }
    for spec in &opts.replicas {
        let c = conn::connect(spec, "replica-lag").await?;
        let standby: bool = c
            .query_one("SELECT pg_is_in_recovery()", &[])
            .await
            .ctx("checking --replica-dsn")?
            .col(0, &"checking --replica-dsn")?;
        if !standby {
            return Err(Error::usage(format!(
                "--replica-dsn {} is not a standby (pg_is_in_recovery() is false)",
                conn::describe(&spec.config)
            ))
            .with_state("nothing was changed")
            .with_next("name the replicas whose lag should slow the run"));
        }
    }
    if opts.max_lag.is_some() || opts.max_active.is_some() {
        let sees_all: bool = client
            .query_one(
                "SELECT rolsuper OR pg_has_role(current_user, 'pg_read_all_stats', 'MEMBER') FROM pg_roles WHERE rolname = current_user",
                &[],
            )
            .await
            .ctx("checking what this role sees of pg_stat_activity")?
            .col(0, &"checking what this role sees of pg_stat_activity")?;
        if !sees_all {
            warnings.push(
                "this role is not a member of pg_read_all_stats: --max-lag and --max-active see only its own sessions and walsenders; \
                 grant pg_read_all_stats, or use --replica-dsn for lag"
                    .into(),
            );
        }
    }
    Ok(warnings)
}

fn is_clock_time(s: &str) -> bool {
    let b = s.as_bytes();
    (b.len() == 5 && b[2] == b':' || b.len() == 8 && b[2] == b':' && b[5] == b':')
        && s.chars().filter(|c| *c != ':').all(|c| c.is_ascii_digit())
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

    #[test]
    fn clock_times_are_recognised() {
        assert!(is_clock_time("01:00"));
        assert!(is_clock_time("23:59:30"));
        assert!(!is_clock_time("2026-11-22 01:00"));
        assert!(!is_clock_time("1:00"));
    }
}
