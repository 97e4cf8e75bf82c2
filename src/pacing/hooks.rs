//! `--hooks-dir` (issue 19): the operator's executables run at the events of a run, named after
//! them (`on-start`, `on-copy-done`, `on-ready`, `on-before-cutover`, `on-success`,
//! `on-failure`, `on-stop`), with the run's facts in their environment (`PGHOTSWAP_EVENT`,
//! `PGHOTSWAP_TABLE`, `PGHOTSWAP_RUN_ID`, `PGHOTSWAP_PHASE`, the progress figures, and for a
//! failure the error and the exit status). The governor queues the events it sees (start, the
//! copy done, ready, held); `commands/run.rs` fires the end (success, failure). A non-zero exit
//! of `on-before-cutover` postpones the swap (the governor's swap permit asks again a second
//! later, as gh-ost does).
//!
//! Invariants kept here: a hook never blocks the run beyond `--hook-timeout` (it is killed
//! then); hooks run one at a time, in the order of their events, from one queue; a missing hook
//! is skipped, and one that cannot be run is refused before the run creates anything
//! ([`Hooks::load`], exit 2); a hook's stdout and stderr go to the log, line by line, as it
//! writes them; a hook has ended when its process exits (a background process it left holding
//! its output is not waited for); a hook whose answer nobody waits for any more is killed.

use crate::error::{Error, Result};
use crate::output::ui::say;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// The events a hook can be named after.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Event {
    Start,
    CopyDone,
    Ready,
    BeforeCutover,
    Success,
    Failure,
    Stop,
}

impl Event {
    pub const ALL: [Event; 7] = [
        Event::Start,
        Event::CopyDone,
        Event::Ready,
        Event::BeforeCutover,
        Event::Success,
        Event::Failure,
        Event::Stop,
    ];

    /// The hook's file name, which is also `PGHOTSWAP_EVENT`.
    pub fn name(self) -> &'static str {
        match self {
            Event::Start => "on-start",
            Event::CopyDone => "on-copy-done",
            Event::Ready => "on-ready",
            Event::BeforeCutover => "on-before-cutover",
            Event::Success => "on-success",
            Event::Failure => "on-failure",
            Event::Stop => "on-stop",
        }
    }
}

/// How a hook ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// No such file in the hooks directory.
    Missing,
    /// It ran and exited with status 0.
    Passed,
    /// It could not be started, exited non-zero, was killed by a signal, or outlived the
    /// timeout: why, in words.
    Refused(String),
}

/// What the hooks are told about the run (updated by the governor as it reads the run).
#[derive(Clone, Debug, Default)]
pub struct Facts {
    pub table: String,
    pub run_id: Option<i64>,
    pub phase: String,
    pub rows_copied: i64,
    pub bytes_copied: i64,
    pub chunks_done: i64,
    pub chunks_total: i64,
    pub backlog: Option<i64>,
}

impl Facts {
    fn env(&self, event: Event) -> Vec<(String, String)> {
        [
            ("PGHOTSWAP_EVENT", event.name().to_string()),
            ("PGHOTSWAP_TABLE", self.table.clone()),
            (
                "PGHOTSWAP_RUN_ID",
                self.run_id.map(|r| r.to_string()).unwrap_or_default(),
            ),
            ("PGHOTSWAP_PHASE", self.phase.clone()),
            ("PGHOTSWAP_ROWS_COPIED", self.rows_copied.to_string()),
            ("PGHOTSWAP_BYTES_COPIED", self.bytes_copied.to_string()),
            ("PGHOTSWAP_CHUNKS_DONE", self.chunks_done.to_string()),
            ("PGHOTSWAP_CHUNKS_TOTAL", self.chunks_total.to_string()),
            (
                "PGHOTSWAP_BACKLOG",
                self.backlog.map(|b| b.to_string()).unwrap_or_default(),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }
}

/// One hook to run: its event, its environment, and who waits for its outcome.
struct Job {
    event: Event,
    env: Vec<(String, String)>,
    reply: Option<oneshot::Sender<Outcome>>,
}

/// The hooks of a run: the directory, the timeout, the facts, and the queue that runs them in
/// order. Cheap to clone (one shared queue).
#[derive(Clone)]
pub struct Hooks {
    inner: Arc<Inner>,
}

struct Inner {
    dir: PathBuf,
    timeout: Duration,
    facts: Mutex<Facts>,
    /// Events fired once per process (the copy done, ready).
    fired: Mutex<HashSet<Event>>,
    /// The queue, its runner started on first use (on the runtime).
    queue: OnceLock<mpsc::UnboundedSender<Job>>,
}

impl std::fmt::Debug for Hooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hooks")
            .field("dir", &self.inner.dir)
            .field("timeout", &self.inner.timeout)
            .finish()
    }
}

impl Hooks {
    /// The hooks in `dir`: the directory must exist, and each hook present must be a file this
    /// user can execute; otherwise a usage error (nothing has been created yet).
    pub fn load(dir: &Path, timeout: Duration) -> Result<Hooks> {
        let refuse = |what: String| {
            Error::usage(what)
                .with_state("nothing was changed")
                .with_next("make each hook an executable file (chmod +x), or remove it")
        };
        if !dir.is_dir() {
            return Err(
                Error::usage(format!("--hooks-dir {}: not a directory", dir.display()))
                    .with_state("nothing was changed"),
            );
        }
        for e in Event::ALL {
            let path = dir.join(e.name());
            let Ok(meta) = std::fs::metadata(&path) else {
                continue;
            };
            if !meta.is_file() {
                return Err(refuse(format!("hook {} is not a file", path.display())));
            }
            if !is_executable(&path, &meta) {
                return Err(refuse(format!("hook {} is not executable", path.display())));
            }
        }
        // Absolute: a hook runs with the directory as its working directory, so a relative
        // path would be looked up inside itself (`hooks/hooks/on-start`).
        let dir = std::path::absolute(dir).map_err(|e| {
            Error::usage(format!("--hooks-dir {}: {e}", dir.display()))
                .with_state("nothing was changed")
        })?;
        Ok(Hooks {
            inner: Arc::new(Inner {
                dir,
                timeout,
                facts: Mutex::new(Facts::default()),
                fired: Mutex::new(HashSet::new()),
                queue: OnceLock::new(),
            }),
        })
    }

    /// Whether the directory holds a hook for `event`.
    pub fn has(&self, event: Event) -> bool {
        self.inner.dir.join(event.name()).is_file()
    }

    /// Changes the facts the next hooks are told.
    pub fn update(&self, f: impl FnOnce(&mut Facts)) {
        f(&mut self.inner.facts.lock().unwrap_or_else(|e| e.into_inner()));
    }

    fn job(
        &self,
        event: Event,
        extra: &[(&str, String)],
        reply: Option<oneshot::Sender<Outcome>>,
    ) -> Job {
        let mut env = self
            .inner
            .facts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .env(event);
        env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.clone())));
        Job { event, env, reply }
    }

    fn send(&self, job: Job) {
        let tx = self.inner.queue.get_or_init(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            tokio::spawn(runner(self.inner.dir.clone(), self.inner.timeout, rx));
            tx
        });
        // The runner lives as long as the queue's sender (this struct): it cannot be gone.
        let _ = tx.send(job);
    }

    /// Queues the hook of `event` after those queued before; the run does not wait for it.
    pub fn queue(&self, event: Event, extra: &[(&str, String)]) {
        if self.has(event) {
            self.send(self.job(event, extra, None));
        }
    }

    /// Queues `event` the first time it is asked for in this process; later calls do nothing.
    pub fn queue_once(&self, event: Event) {
        let first = self
            .inner
            .fired
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(event);
        if first {
            self.queue(event, &[]);
        }
    }

    /// Queues the hook of `event` and returns where its outcome arrives, after the hooks
    /// queued before it (Missing when there is no such hook). Dropping the receiver kills the
    /// hook if it is still running: nobody waits for its answer any more.
    pub fn ask(&self, event: Event, extra: &[(&str, String)]) -> oneshot::Receiver<Outcome> {
        let (tx, rx) = oneshot::channel();
        // Queued even without the hook: the answer comes after the hooks before it, so that
        // `fire` at the end of the run waits for them rather than the process cutting them short.
        self.send(self.job(event, extra, Some(tx)));
        rx
    }

    /// Runs the hook of `event` after the ones queued before it, and waits for it and them (each
    /// of them bounded by the timeout).
    pub async fn fire(&self, event: Event, extra: &[(&str, String)]) -> Outcome {
        self.ask(event, extra).await.unwrap_or(Outcome::Missing)
    }
}

#[cfg(unix)]
fn is_executable(_path: &Path, meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o111 != 0
}

#[cfg(not(unix))]
fn is_executable(path: &Path, _meta: &std::fs::Metadata) -> bool {
    path.extension().is_some()
}

/// Runs the queued hooks one at a time, in order.
async fn runner(dir: PathBuf, timeout: Duration, mut rx: mpsc::UnboundedReceiver<Job>) {
    while let Some(mut job) = rx.recv().await {
        let outcome = run_one(&dir, timeout, job.event, &job.env, job.reply.as_mut()).await;
        if let Some(r) = job.reply {
            let _ = r.send(outcome);
        }
    }
}

/// A line of a hook's output longer than this is logged in pieces of this size.
const MAX_LINE: u64 = 64 * 1024;

/// How long the output of a hook that ended is still read: what its pipes hold is logged, but a
/// process it left in the background (holding its stdout) is not waited for.
const DRAIN: Duration = Duration::from_millis(500);

/// Logs what a hook writes, line by line, as it writes it.
async fn pump(name: &'static str, out: impl tokio::io::AsyncRead + Unpin) {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt};
    let mut out = tokio::io::BufReader::new(out);
    let mut line = Vec::new();
    loop {
        line.clear();
        match (&mut out).take(MAX_LINE).read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                let text = String::from_utf8_lossy(&line);
                say(&format!(
                    "hook {name}: {}",
                    printable(text.trim_end_matches(['\n', '\r']))
                ));
            }
        }
    }
}

/// A line of a hook's output with its control characters (escape sequences, carriage returns)
/// written as `\x1b`: the log has no escape codes but its own (docs/operations.md, "The log in
/// a file").
fn printable(line: &str) -> String {
    line.chars()
        .map(|c| {
            if c.is_control() && c != '\t' {
                // Control characters are C0, DEL and C1: all below 0x100.
                format!("\\x{:02x}", c as u32)
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// Runs one hook with its environment, its output to the log as it comes, killed after
/// `timeout` or when `asked` (the one waiting for its answer) is gone. The hook has ended when
/// its process exits, whatever it left running in the background.
async fn run_one(
    dir: &Path,
    timeout: Duration,
    event: Event,
    env: &[(String, String)],
    asked: Option<&mut oneshot::Sender<Outcome>>,
) -> Outcome {
    let name = event.name();
    let path = dir.join(name);
    if !path.is_file() {
        return Outcome::Missing;
    }
    let child = tokio::process::Command::new(&path)
        .current_dir(dir)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            let why = format!("could not be started: {e}");
            say(&format!("warning: hook {name} {why}"));
            return Outcome::Refused(why);
        }
    };
    let pumps: Vec<_> = [
        child.stdout.take().map(|o| tokio::spawn(pump(name, o))),
        child.stderr.take().map(|e| tokio::spawn(pump(name, e))),
    ]
    .into_iter()
    .flatten()
    .collect();
    let gone = async {
        match asked {
            Some(a) => a.closed().await,
            None => std::future::pending().await,
        }
    };
    let ended = tokio::select! {
        r = tokio::time::timeout(timeout, child.wait()) => Some(r),
        _ = gone => None,
    };
    if !matches!(ended, Some(Ok(Ok(_)))) {
        let _ = child.kill().await;
    }
    let deadline = tokio::time::Instant::now() + DRAIN;
    for mut p in pumps {
        if tokio::time::timeout_at(deadline, &mut p).await.is_err() {
            p.abort();
        }
    }
    let why = match ended {
        Some(Ok(Ok(status))) if status.success() => return Outcome::Passed,
        Some(Ok(Ok(status))) => {
            let why = match status.code() {
                Some(c) => format!("exited with status {c}"),
                None => "was killed by a signal".to_string(),
            };
            say(&format!("hook {name} {why}"));
            return Outcome::Refused(why);
        }
        Some(Ok(Err(e))) => format!("failed: {e}"),
        Some(Err(_)) => format!("ran longer than --hook-timeout {timeout:?} and was killed"),
        None => "was killed: the run no longer waits for its answer".to_string(),
    };
    say(&format!("warning: hook {name} {why}"));
    Outcome::Refused(why)
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn script(dir: &Path, name: &str, body: &str, mode: u32) {
        let p = dir.join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    fn tempdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("pghotswap-hooks-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn a_hook_that_is_not_executable_is_a_usage_error() {
        let d = tempdir("mode");
        assert!(Hooks::load(&d, Duration::from_secs(1)).is_ok(), "empty dir");
        script(&d, "on-start", "true", 0o644);
        let e = Hooks::load(&d, Duration::from_secs(1)).unwrap_err();
        assert_eq!(e.kind(), crate::error::Kind::Usage);
        assert!(e.message().contains("on-start"), "{}", e.message());
        script(&d, "on-start", "true", 0o755);
        assert!(Hooks::load(&d, Duration::from_secs(1)).is_ok());
        assert!(Hooks::load(&d.join("nope"), Duration::from_secs(1)).is_err());
        let _ = std::fs::remove_dir_all(&d);
    }

    #[tokio::test]
    async fn hooks_get_the_facts_and_are_killed_after_the_timeout() {
        let d = tempdir("run");
        script(
            &d,
            "on-failure",
            "echo \"$PGHOTSWAP_EVENT $PGHOTSWAP_RUN_ID $PGHOTSWAP_EXIT_CODE\" > out; exit 3",
            0o755,
        );
        script(&d, "on-stop", "sleep 30", 0o755);
        let h = Hooks::load(&d, Duration::from_millis(300)).unwrap();
        h.update(|f| f.run_id = Some(42));
        let o = h
            .fire(Event::Failure, &[("PGHOTSWAP_EXIT_CODE", "5".into())])
            .await;
        assert_eq!(o, Outcome::Refused("exited with status 3".into()));
        assert_eq!(
            std::fs::read_to_string(d.join("out")).unwrap().trim(),
            "on-failure 42 5"
        );
        let t = std::time::Instant::now();
        let o = h.fire(Event::Stop, &[]).await;
        assert!(matches!(o, Outcome::Refused(w) if w.contains("killed")));
        assert!(t.elapsed() < Duration::from_secs(5));
        assert_eq!(h.fire(Event::Success, &[]).await, Outcome::Missing);
        let _ = std::fs::remove_dir_all(&d);
    }
}
