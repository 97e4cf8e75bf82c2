//! Progress of a run, for the operator watching it.
//!
//! On a terminal (stderr is a tty, no `-q`, text logs) one live line drawn with `indicatif`:
//! the phase, rows and bytes copied against the estimate, the rate and time left, the replay
//! backlog and, when the run waits or slows down, why. Elsewhere (a file, a pipe, `journald`)
//! a plain progress line through `ui::say` at most every 5 seconds, with the same figures as
//! JSON fields under `--log-format json`.
//!
//! The state is global so that any part of the run can report without being handed a handle
//! (the replay reports its backlog, the throttler its reason): every function here is cheap and
//! a no-op where there is nothing to show. All other stderr output goes through [`println`] and
//! [`suspend`] so it appears above the bar instead of garbling it.

use crate::output::ui;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Plain progress lines come at most this often.
const PLAIN_EVERY: Duration = Duration::from_secs(5);
/// How often the copy counters are read for the bar.
const BAR_POLL: Duration = Duration::from_millis(200);

/// Figures of the copy phase.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct CopyFigures {
    pub rows: u64,
    pub bytes: u64,
    pub chunks_done: u64,
    pub chunks_total: u64,
    /// Rows expected in all (the table's estimate); the ETA is computed against it.
    pub est_rows: u64,
}

struct Shared {
    /// Draw a bar when a phase starts (set once by the binary).
    bar_wanted: bool,
    bar: Option<ProgressBar>,
    phase: String,
    copy: Option<(CopyFigures, Instant)>,
    backlog: Option<u64>,
    throttle: Option<String>,
    last_plain: Option<Instant>,
}

impl Shared {
    /// Nothing shown yet, no bar.
    const EMPTY: Shared = Shared {
        bar_wanted: false,
        bar: None,
        phase: String::new(),
        copy: None,
        backlog: None,
        throttle: None,
        last_plain: None,
    };
}

/// Counters the copy workers add to and the progress display reads.
#[derive(Default, Debug)]
pub struct CopyCounters {
    pub rows: std::sync::atomic::AtomicU64,
    pub bytes: std::sync::atomic::AtomicU64,
    pub chunks_done: std::sync::atomic::AtomicU64,
}

static SHARED: Mutex<Shared> = Mutex::new(Shared::EMPTY);

fn shared() -> MutexGuard<'static, Shared> {
    // A panic elsewhere must not take the progress display down with it.
    SHARED.lock().unwrap_or_else(|e| e.into_inner())
}

/// Chooses the display: a live bar when `bar` (stderr is a terminal, no `-q`, text logs),
/// plain lines otherwise.
pub fn init(bar: bool) {
    shared().bar_wanted = bar;
}

/// A new phase begins (`shadow`, `copy`, `replay`...).
pub fn phase(name: &str) {
    let mut s = shared();
    s.phase = name.to_string();
    if name != "copy" {
        s.copy = None;
    }
    s.last_plain = None;
    if s.bar_wanted && s.bar.is_none() {
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        bar.enable_steady_tick(Duration::from_millis(120));
        ui::set_bar(Some(bar.clone()));
        s.bar = Some(bar);
    }
    redraw(&s);
}

/// The copy's counters (called often; draws at most every 5 s in plain mode).
pub fn copy(rows: u64, bytes: u64, chunks_done: u64, chunks_total: u64, est_rows: u64) {
    let figures = CopyFigures {
        rows,
        bytes,
        chunks_done,
        chunks_total,
        est_rows,
    };
    let mut s = shared();
    let started = match s.copy {
        Some((_, t)) => t,
        None => Instant::now(),
    };
    s.copy = Some((figures, started));
    if s.bar.is_some() {
        redraw(&s);
        return;
    }
    if due(&mut s) {
        let (text, fields) = copy_line(&figures, started.elapsed(), s.backlog);
        drop(s);
        ui::say_with(&text, fields);
    }
}

/// Captured changes not replayed yet.
pub fn backlog(n: u64) {
    let mut s = shared();
    s.backlog = Some(n);
    if s.bar.is_some() {
        redraw(&s);
        return;
    }
    // During the copy the copy line carries the backlog.
    if s.copy.is_none() && due(&mut s) {
        let phase = s.phase.clone();
        drop(s);
        let mut fields = serde_json::Map::new();
        fields.insert("phase".into(), phase.clone().into());
        fields.insert("backlog".into(), n.into());
        ui::say_with(
            &format!(
                "{}: {n} captured change{} to replay",
                if phase.is_empty() { "replay" } else { &phase },
                if n == 1 { "" } else { "s" }
            ),
            fields,
        );
    }
}

/// Why the run waits or slows down (a time window, replica lag, load), or `None` when it goes
/// at full speed again. Plain mode prints each change once.
pub fn throttle(reason: Option<String>) {
    let mut s = shared();
    if s.throttle == reason {
        return;
    }
    let was = std::mem::replace(&mut s.throttle, reason.clone());
    if s.bar.is_some() {
        redraw(&s);
        return;
    }
    drop(s);
    let mut fields = serde_json::Map::new();
    fields.insert(
        "throttle".into(),
        reason
            .clone()
            .map(Into::into)
            .unwrap_or(serde_json::Value::Null),
    );
    match (reason, was) {
        (Some(r), _) => ui::say_with(&format!("waiting: {r}"), fields),
        (None, Some(w)) => ui::say_with(&format!("going on at full speed (was: {w})"), fields),
        (None, None) => {}
    }
}

/// Removes the bar (before the final report or an error is printed) and forgets the run's
/// figures. Harmless to call more than once.
pub fn finish() {
    let mut s = shared();
    if let Some(bar) = s.bar.take() {
        ui::set_bar(None);
        bar.finish_and_clear();
    }
    s.phase.clear();
    s.copy = None;
    s.backlog = None;
    s.throttle = None;
    s.last_plain = None;
}

/// Reads the copy workers' counters into [`copy`] until dropped, then once more.
pub struct CopyWatch {
    task: tokio::task::JoinHandle<()>,
    read: Arc<dyn Fn() + Send + Sync>,
}

impl Drop for CopyWatch {
    fn drop(&mut self) {
        self.task.abort();
        (self.read)();
    }
}

/// Starts watching the copy's counters (`chunks` chunks to copy, about `est_rows` rows).
pub fn watch_copy(counters: Arc<CopyCounters>, chunks: u64, est_rows: u64) -> CopyWatch {
    let read: Arc<dyn Fn() + Send + Sync> = Arc::new(move || {
        copy(
            counters.rows.load(Ordering::Relaxed),
            counters.bytes.load(Ordering::Relaxed),
            counters.chunks_done.load(Ordering::Relaxed),
            chunks,
            est_rows,
        )
    });
    read();
    let tick = read.clone();
    let every = if shared().bar.is_some() {
        BAR_POLL
    } else {
        // Often enough that the 5-second lines are on time.
        Duration::from_secs(1)
    };
    let task = tokio::spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            tick();
        }
    });
    CopyWatch { task, read }
}

/// Whether a plain line is due; the first call of a phase only starts the clock.
fn due(s: &mut Shared) -> bool {
    match s.last_plain {
        None => {
            s.last_plain = Some(Instant::now());
            false
        }
        Some(t) if t.elapsed() >= PLAIN_EVERY => {
            s.last_plain = Some(Instant::now());
            true
        }
        Some(_) => false,
    }
}

/// Rows per second and seconds left, from the figures and the time the copy has taken.
fn rate_and_eta(f: &CopyFigures, elapsed: Duration) -> (f64, Option<f64>) {
    let rate = f.rows as f64 / elapsed.as_secs_f64().max(0.001);
    let eta = (rate > 0.0 && f.est_rows > f.rows).then(|| (f.est_rows - f.rows) as f64 / rate);
    (rate, eta)
}

/// The plain copy line and its JSON fields.
fn copy_line(
    f: &CopyFigures,
    elapsed: Duration,
    backlog: Option<u64>,
) -> (String, serde_json::Map<String, serde_json::Value>) {
    let (rate, eta) = rate_and_eta(f, elapsed);
    let mut text = format!(
        "copy: {}/{} chunks, {} rows ({}), {rate:.0} rows/s",
        f.chunks_done,
        f.chunks_total,
        f.rows,
        ui::bytes(f.bytes)
    );
    if let Some(e) = eta {
        text.push_str(&format!(", about {} left", ui::duration(e)));
    }
    if let Some(b) = backlog {
        text.push_str(&format!(", {b} captured changes to replay"));
    }
    let mut fields = serde_json::Map::new();
    fields.insert("phase".into(), "copy".into());
    fields.insert("rows".into(), f.rows.into());
    fields.insert("bytes".into(), f.bytes.into());
    fields.insert("chunks_done".into(), f.chunks_done.into());
    fields.insert("chunks_total".into(), f.chunks_total.into());
    fields.insert("est_rows".into(), f.est_rows.into());
    fields.insert("rows_per_sec".into(), (rate.round() as u64).into());
    if let Some(e) = eta {
        fields.insert("eta_secs".into(), (e.round() as u64).into());
    }
    if let Some(b) = backlog {
        fields.insert("backlog".into(), b.into());
    }
    (text, fields)
}

/// The bar's message after the phase name.
fn bar_message(s: &Shared) -> String {
    let mut parts = Vec::new();
    if let Some((f, started)) = &s.copy {
        let (rate, eta) = rate_and_eta(f, started.elapsed());
        parts.push(format!(
            "{}/{} rows ({}) · chunk {}/{} · {rate:.0} rows/s{}",
            f.rows,
            f.est_rows.max(f.rows),
            ui::bytes(f.bytes),
            f.chunks_done,
            f.chunks_total,
            eta.map(|e| format!(" · ETA {}", ui::duration(e)))
                .unwrap_or_default()
        ));
    }
    if let Some(b) = s.backlog {
        parts.push(format!("backlog {b}"));
    }
    if let Some(t) = &s.throttle {
        parts.push(format!("waiting: {t}"));
    }
    parts.join(" · ")
}

fn redraw(s: &Shared) {
    let Some(bar) = &s.bar else { return };
    // Colours only where ui::colour allows them (NO_COLOR); the bar itself is drawn on a
    // terminal only.
    let template = match (&s.copy, ui::colour()) {
        (Some((f, _)), colour) => {
            bar.set_length(f.est_rows.max(f.rows).max(1));
            bar.set_position(f.rows);
            if colour {
                "{spinner:.cyan} {prefix:.bold} {elapsed:>4} [{bar:24.cyan/blue}] {wide_msg}"
            } else {
                "{spinner} {prefix} {elapsed:>4} [{bar:24}] {wide_msg}"
            }
        }
        (None, true) => "{spinner:.cyan} {prefix:.bold} {elapsed:>4} {wide_msg}",
        (None, false) => "{spinner} {prefix} {elapsed:>4} {wide_msg}",
    };
    bar.set_message(bar_message(s));
    bar.set_prefix(s.phase.clone());
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_line_has_rate_eta_and_fields() {
        let f = CopyFigures {
            rows: 1000,
            bytes: 2_000_000,
            chunks_done: 2,
            chunks_total: 10,
            est_rows: 5000,
        };
        let (text, fields) = copy_line(&f, Duration::from_secs(10), Some(7));
        assert_eq!(
            text,
            "copy: 2/10 chunks, 1000 rows (2.0 MB), 100 rows/s, about 40 s left, 7 captured changes to replay"
        );
        assert_eq!(fields["rows_per_sec"], 100);
        assert_eq!(fields["eta_secs"], 40);
        assert_eq!(fields["backlog"], 7);
    }

    #[test]
    fn no_eta_past_the_estimate() {
        let f = CopyFigures {
            rows: 6000,
            est_rows: 5000,
            ..CopyFigures::default()
        };
        let (text, fields) = copy_line(&f, Duration::from_secs(1), None);
        assert!(!text.contains("left"), "{text}");
        assert!(!fields.contains_key("eta_secs"));
    }

    #[test]
    fn bar_message_names_backlog_and_throttle() {
        let s = Shared {
            bar_wanted: false,
            bar: None,
            phase: "replay".into(),
            copy: None,
            backlog: Some(12),
            throttle: Some("replica lag 30 s".into()),
            last_plain: None,
        };
        assert_eq!(bar_message(&s), "backlog 12 · waiting: replica lag 30 s");
    }

    #[test]
    fn plain_lines_wait_for_their_interval() {
        let mut s = Shared::EMPTY;
        assert!(!due(&mut s), "the first call only starts the clock");
        assert!(!due(&mut s));
        s.last_plain = Some(Instant::now() - PLAIN_EVERY);
        assert!(due(&mut s));
        assert!(!due(&mut s));
    }
}
