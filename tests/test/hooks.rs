//! Issue 19: hooks and metrics, through the real binary. A hooks directory with a script per
//! event that appends its event and `PGHOTSWAP_*` environment to a file records a successful
//! run (on-start, on-copy-done, on-ready, on-before-cutover, on-success, with the run's facts)
//! and a failed one (on-failure with the error and the exit status); an `on-before-cutover`
//! that fails twice postpones the swap twice and the run still succeeds; a hook that is not
//! executable is refused before anything is created. `--metrics-file` holds Prometheus text
//! with the copy's rows while the run waits for its cut-over.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Output;
use std::time::{Duration, Instant};

use tokio_postgres::Client;

use crate::harness::{all_output, assert_exit, describe, hotswap_async, hotswap_command, TestDb};

const ROWS: i64 = 20_000;

const EVENTS: [&str; 7] = [
    "on-start",
    "on-copy-done",
    "on-ready",
    "on-before-cutover",
    "on-success",
    "on-failure",
    "on-stop",
];

/// A temporary directory of hook scripts, removed at the end.
struct HookDir(PathBuf);

impl HookDir {
    /// A script per event appending one line to `record`: its `PGHOTSWAP_*` variables, sorted,
    /// separated by the unit separator (so values may hold spaces).
    fn recording(tag: &str) -> HookDir {
        let d = std::env::temp_dir().join(format!("pg-hotswap-hooks-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        let h = HookDir(d);
        for e in EVENTS {
            h.script(e, "");
        }
        h
    }

    fn record(&self) -> PathBuf {
        self.0.join("record")
    }

    /// Writes hook `event`: records itself, then runs `tail` (its exit status is the hook's).
    fn script(&self, event: &str, tail: &str) {
        let p = self.0.join(event);
        let body = format!(
            "#!/bin/sh\nprintf '%s\\n' \"$(env | grep '^PGHOTSWAP_' | sort | tr '\\n' '\\037')\" >> '{}'\n{tail}\n",
            self.record().display()
        );
        std::fs::write(&p, body).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    fn arg(&self) -> &str {
        self.0.to_str().unwrap()
    }

    /// The recorded hook runs, in order: each its variables.
    fn runs(&self) -> Vec<BTreeMap<String, String>> {
        let text = std::fs::read_to_string(self.record()).unwrap_or_default();
        text.lines()
            .map(|l| {
                l.split('\u{1f}')
                    .filter_map(|kv| kv.split_once('='))
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect()
            })
            .collect()
    }

    fn events(&self) -> Vec<String> {
        self.runs()
            .iter()
            .map(|r| r.get("PGHOTSWAP_EVENT").cloned().unwrap_or_default())
            .collect()
    }
}

impl Drop for HookDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `items (id int primary key, v text)` with [`ROWS`] rows whose `v` is a number, except the row
/// `bad_id` (if any), whose `v` is not.
async fn setup(test: &str, bad_id: Option<i64>) -> (TestDb, Client) {
    let db = TestDb::new(test).await;
    let client = db.client().await;
    client
        .batch_execute(&format!(
            "CREATE TABLE items (id int PRIMARY KEY, v text NOT NULL); \
             INSERT INTO items SELECT i, i::text FROM generate_series(1, {ROWS}) i;"
        ))
        .await
        .unwrap();
    if let Some(b) = bad_id {
        client
            .execute(
                "UPDATE items SET v = 'not a number' WHERE id = $1",
                &[&(b as i32)],
            )
            .await
            .unwrap();
    }
    (db, client)
}

fn run_args<'a>(db: &'a TestDb, extra: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec![
        "run",
        "--dsn",
        &db.conninfo,
        "--table",
        "public.items",
        "--alter",
        "ALTER COLUMN v TYPE int USING v::int",
        "--chunk-rows",
        "5000",
    ];
    a.extend_from_slice(extra);
    a
}

async fn last_run_id(client: &Client) -> i64 {
    client
        .query_one("SELECT max(id) FROM hotswap.runs", &[])
        .await
        .unwrap()
        .get(0)
}

fn var<'a>(r: &'a BTreeMap<String, String>, k: &str) -> &'a str {
    r.get(k).map(String::as_str).unwrap_or("")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_successful_run_tells_each_event_with_the_runs_facts() {
    let (db, client) = setup("hooks_success", None).await;
    let hooks = HookDir::recording("success");
    let out = hotswap_async(&run_args(&db, &["--hooks-dir", hooks.arg()])).await;
    assert_exit(&out, 0);
    let run = last_run_id(&client).await.to_string();
    assert_eq!(
        hooks.events(),
        [
            "on-start",
            "on-copy-done",
            "on-ready",
            "on-before-cutover",
            "on-success"
        ],
        "{}",
        describe(&out)
    );
    for r in hooks.runs() {
        assert_eq!(var(&r, "PGHOTSWAP_RUN_ID"), run, "{r:?}");
        assert!(var(&r, "PGHOTSWAP_TABLE").contains("items"), "{r:?}");
        assert!(!var(&r, "PGHOTSWAP_PHASE").is_empty(), "{r:?}");
    }
    let runs = hooks.runs();
    let phase = |i: usize| var(&runs[i], "PGHOTSWAP_PHASE").to_string();
    assert!(
        ["preflight", "shadow"].contains(&phase(0).as_str()),
        "on-start comes before the copy: {}",
        phase(0)
    );
    assert!(
        ![
            "preflight",
            "shadow",
            "capture",
            "copy",
            "swap",
            "finish",
            "done"
        ]
        .contains(&phase(1).as_str()),
        "on-copy-done after the copy, before the swap: {}",
        phase(1)
    );
    let before = &runs[3];
    assert_eq!(var(before, "PGHOTSWAP_ROWS_COPIED"), ROWS.to_string());
    assert_eq!(
        var(before, "PGHOTSWAP_CHUNKS_DONE"),
        var(before, "PGHOTSWAP_CHUNKS_TOTAL")
    );
    assert_eq!(var(before, "PGHOTSWAP_ATTEMPT"), "1");
    assert_eq!(var(&runs[4], "PGHOTSWAP_EXIT_CODE"), "0");
    assert_eq!(var(&runs[4], "PGHOTSWAP_ROWS_COPIED"), ROWS.to_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_run_tells_on_failure_with_the_error_and_exit_status() {
    let (db, client) = setup("hooks_failure", Some(12_345)).await;
    let hooks = HookDir::recording("failure");
    hooks.script("on-start", "echo 'hello from on-start'");
    let out = hotswap_async(&run_args(&db, &["--hooks-dir", hooks.arg()])).await;
    let code = out.status.code().expect("exited");
    assert_ne!(code, 0, "{}", describe(&out));
    assert!(
        all_output(&out).contains("hook on-start: hello from on-start"),
        "the hook's output is in the log: {}",
        describe(&out)
    );
    let events = hooks.events();
    assert_eq!(events.first().map(String::as_str), Some("on-start"));
    assert_eq!(
        events.last().map(String::as_str),
        Some("on-failure"),
        "{events:?}"
    );
    assert!(!events
        .iter()
        .any(|e| e == "on-success" || e == "on-before-cutover"));
    let runs = hooks.runs();
    let f = runs.last().unwrap();
    assert_eq!(var(f, "PGHOTSWAP_EXIT_CODE"), code.to_string());
    assert!(
        var(f, "PGHOTSWAP_ERROR").contains("not a number"),
        "the error names the failing value: {f:?}"
    );
    assert_eq!(
        var(f, "PGHOTSWAP_RUN_ID"),
        last_run_id(&client).await.to_string()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_before_cutover_that_fails_twice_postpones_the_swap_twice() {
    let (db, client) = setup("hooks_postpone", None).await;
    let hooks = HookDir::recording("postpone");
    let count = hooks.0.join("count");
    hooks.script(
        "on-before-cutover",
        &format!(
            "n=$(cat '{c}' 2>/dev/null || echo 0); n=$((n+1)); echo $n > '{c}'; echo \"not yet ($n)\"; [ $n -ge 3 ]",
            c = count.display()
        ),
    );
    let out = hotswap_async(&run_args(&db, &["--hooks-dir", hooks.arg()])).await;
    assert_exit(&out, 0);
    assert_eq!(
        std::fs::read_to_string(&count).unwrap().trim(),
        "3",
        "asked three times"
    );
    let runs = hooks.runs();
    let asked: Vec<_> = runs
        .iter()
        .filter(|r| var(r, "PGHOTSWAP_EVENT") == "on-before-cutover")
        .collect();
    assert_eq!(
        asked
            .iter()
            .map(|r| var(r, "PGHOTSWAP_ATTEMPT"))
            .collect::<Vec<_>>(),
        ["1", "2", "3"]
    );
    for r in &asked {
        assert!(
            !["swap", "finish", "done"].contains(&var(r, "PGHOTSWAP_PHASE")),
            "not swapped while asking: {r:?}"
        );
    }
    let text = all_output(&out);
    assert_eq!(
        text.matches("hook on-before-cutover exited with status 1")
            .count(),
        2,
        "{}",
        describe(&out)
    );
    assert_eq!(
        hooks.events().last().map(String::as_str),
        Some("on-success")
    );
    let ty: String = client
        .query_one(
            "SELECT format_type(atttypid, atttypmod) FROM pg_attribute \
              WHERE attrelid = 'public.items'::regclass AND attname = 'v'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(ty, "integer", "swapped in the end");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hook_that_is_not_executable_is_refused_before_anything_is_created() {
    let (db, client) = setup("hooks_not_exec", None).await;
    let hooks = HookDir::recording("not_exec");
    std::fs::set_permissions(
        hooks.0.join("on-ready"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let out = hotswap_async(&run_args(&db, &["--hooks-dir", hooks.arg()])).await;
    assert_exit(&out, 2);
    assert!(all_output(&out).contains("on-ready"), "{}", describe(&out));
    let state: bool = client
        .query_one("SELECT to_regnamespace('hotswap') IS NOT NULL", &[])
        .await
        .unwrap()
        .get(0);
    assert!(!state, "nothing was created");
    assert!(hooks.runs().is_empty());
}

/// Every non-comment line is `name{labels} value`: the samples, by name and labels.
fn parse_prometheus(text: &str) -> BTreeMap<String, f64> {
    let mut samples = BTreeMap::new();
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("not `series value`: {line:?}"));
        let (name, labels) = series
            .split_once('{')
            .unwrap_or_else(|| panic!("no labels: {line:?}"));
        assert!(
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "metric name {name:?}"
        );
        assert!(labels.ends_with('}'), "labels not closed: {line:?}");
        for pair in labels.trim_end_matches('}').split("\",") {
            let (k, v) = pair
                .split_once("=\"")
                .unwrap_or_else(|| panic!("label {pair:?} in {line:?}"));
            assert!(k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
            let _ = v;
        }
        let v: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("value {value:?} in {line:?}"));
        samples.insert(series.to_string(), v);
    }
    samples
}

fn sample(samples: &BTreeMap<String, f64>, name: &str, label: &str) -> Option<f64> {
    samples
        .iter()
        .find(|(k, _)| k.starts_with(&format!("{name}{{")) && k.contains(label))
        .map(|(_, v)| *v)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_metrics_file_shows_the_copy_while_the_run_waits() {
    let (db, client) = setup("hooks_metrics", None).await;
    let dir = HookDir::recording("metrics");
    let path = dir.0.join("pg-hotswap.prom");
    let path_arg = path.to_str().unwrap().to_string();
    let args = run_args(&db, &["--cutover", "manual", "--metrics-file", &path_arg]);
    let child = tokio::process::Command::from(hotswap_command(&args))
        .kill_on_drop(true)
        .spawn()
        .expect("spawning pg-hotswap");
    let run = tokio::spawn(async move {
        tokio::time::timeout(Duration::from_secs(180), child.wait_with_output())
            .await
            .expect("pg-hotswap did not finish")
            .expect("waiting for pg-hotswap")
    });
    let started = Instant::now();
    let samples = loop {
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "the metrics file never showed the copied rows: {:?}",
            std::fs::read_to_string(&path).ok()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let s = parse_prometheus(&text);
        if sample(&s, "pghotswap_rows_copied_total", "") == Some(ROWS as f64)
            && sample(&s, "pghotswap_phase", "phase=\"copy\"") == Some(0.0)
        {
            break s;
        }
    };
    let run_id = last_run_id(&client).await;
    let label = format!("run_id=\"{run_id}\"");
    assert_eq!(
        sample(&samples, "pghotswap_chunks_done", &label),
        sample(&samples, "pghotswap_chunks_total", &label)
    );
    assert!(sample(&samples, "pghotswap_chunks_total", &label).unwrap_or(0.0) >= 4.0);
    assert_eq!(
        samples
            .iter()
            .filter(|(k, v)| k.starts_with("pghotswap_phase{") && **v == 1.0)
            .count(),
        1,
        "one phase at a time: {samples:?}"
    );
    assert!(sample(&samples, "pghotswap_replay_backlog", &label).is_some());
    assert_eq!(sample(&samples, "pghotswap_paused", &label), Some(0.0));
    let out = hotswap_async(&["cutover", "--dsn", &db.conninfo, "--table", "public.items"]).await;
    assert_exit(&out, 0);
    let out: Output = run.await.unwrap();
    assert_exit(&out, 0);
    // The file's last figures are the outcome: the phase `done` and the swap's lock (it used to
    // keep the last running phase, which the stale-file alert reads as a vanished process).
    let s = parse_prometheus(&std::fs::read_to_string(&path).unwrap());
    assert_eq!(
        sample(&s, "pghotswap_phase", "phase=\"done\""),
        Some(1.0),
        "{s:?}"
    );
    assert!(sample(&s, "pghotswap_lock_attempts_total", &label).unwrap_or(0.0) >= 1.0);
}

/// Runs `args` in `cwd`, killed if it takes longer than `limit`: its output, and how long it took.
async fn run_in(cwd: &std::path::Path, args: &[&str], limit: Duration) -> (Output, Duration) {
    let mut cmd = hotswap_command(args);
    cmd.current_dir(cwd);
    let child = tokio::process::Command::from(cmd)
        .kill_on_drop(true)
        .spawn()
        .expect("spawning pg-hotswap");
    let t = Instant::now();
    let out = tokio::time::timeout(limit, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("pg-hotswap did not finish within {limit:?}"))
        .expect("waiting for pg-hotswap");
    (out, t.elapsed())
}

/// `--hooks-dir hooks`, relative to the working directory: each hook runs (it was looked up as
/// `hooks/hooks/on-start`, inside the directory it runs in, and could not be started).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relative_hooks_dir_runs_its_hooks() {
    let (db, _client) = setup("hooks_relative", None).await;
    let hooks = HookDir::recording("relative");
    let parent = hooks.0.parent().unwrap();
    let rel = hooks.0.file_name().unwrap().to_str().unwrap();
    let (out, _) = run_in(
        parent,
        &run_args(&db, &["--hooks-dir", rel]),
        Duration::from_secs(120),
    )
    .await;
    assert_exit(&out, 0);
    assert_eq!(
        hooks.events(),
        [
            "on-start",
            "on-copy-done",
            "on-ready",
            "on-before-cutover",
            "on-success"
        ],
        "{}",
        describe(&out)
    );
}

/// An `on-before-cutover` that starts something in the background (which keeps its stdout) and
/// exits 0 lets the swap go: the hook ended when its process did (it used to be waited for until
/// the background process closed its output, past the timeout, and count as failed, so the swap
/// was postponed for ever).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hook_that_leaves_a_background_process_has_ended_when_it_exits() {
    let (db, _client) = setup("hooks_background", None).await;
    let hooks = HookDir::recording("background");
    hooks.script("on-before-cutover", "sleep 12 &\necho approved");
    let (out, _) = run_in(
        &std::env::temp_dir(),
        &run_args(&db, &["--hooks-dir", hooks.arg(), "--hook-timeout", "3s"]),
        Duration::from_secs(60),
    )
    .await;
    assert_exit(&out, 0);
    let events = hooks.events();
    assert_eq!(
        events.iter().filter(|e| *e == "on-before-cutover").count(),
        1,
        "asked once, and it passed: {events:?}\n{}",
        describe(&out)
    );
    let log = all_output(&out);
    assert!(log.contains("hook on-before-cutover: approved"), "{log}");
    assert!(!log.contains("killed"), "{log}");
}

/// A hook killed at `--hook-timeout` has what it printed before in the log (its output used to
/// be read only once it ended, and was lost with it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hook_killed_at_its_timeout_has_its_output_logged() {
    let (db, _client) = setup("hooks_killed_output", None).await;
    let hooks = HookDir::recording("killed_output");
    hooks.script("on-start", "echo 'calling the pager'\nsleep 20");
    let (out, took) = run_in(
        &std::env::temp_dir(),
        &run_args(&db, &["--hooks-dir", hooks.arg(), "--hook-timeout", "2s"]),
        Duration::from_secs(120),
    )
    .await;
    assert_exit(&out, 0);
    let log = all_output(&out);
    assert!(log.contains("hook on-start: calling the pager"), "{log}");
    assert!(
        log.contains("on-start ran longer than --hook-timeout"),
        "{log}"
    );
    assert!(took < Duration::from_secs(60), "{took:?}");
}

/// A hook queued before the end (here `on-ready`, slower than the swap) still runs to its end
/// when the directory has no `on-success`: the process used to exit without waiting for it,
/// killing it midway.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_hook_is_not_cut_short_when_the_run_ends() {
    let (db, _client) = setup("hooks_queued_at_exit", None).await;
    let hooks = HookDir::recording("queued_at_exit");
    for e in ["on-success", "on-failure", "on-before-cutover"] {
        std::fs::remove_file(hooks.0.join(e)).unwrap();
    }
    let marker = hooks.0.join("posted");
    hooks.script(
        "on-ready",
        &format!("sleep 3\necho posted > '{}'", marker.display()),
    );
    let (out, _) = run_in(
        &std::env::temp_dir(),
        &run_args(&db, &["--hooks-dir", hooks.arg()]),
        Duration::from_secs(120),
    )
    .await;
    assert_exit(&out, 0);
    assert!(
        marker.exists(),
        "on-ready was cut short: {:?}\n{}",
        hooks.events(),
        describe(&out)
    );
}

/// Ctrl-C while a slow `on-before-cutover` runs: the tool exits 130 at once (the hook, whose
/// answer nobody waits for any more, is killed) instead of waiting out `--hook-timeout`, and
/// `on-failure` is told the exit status.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_during_on_before_cutover_does_not_wait_for_the_hook() {
    let (db, _client) = setup("hooks_ctrl_c", None).await;
    let hooks = HookDir::recording("ctrl_c");
    hooks.script("on-before-cutover", "sleep 40");
    let args = run_args(&db, &["--hooks-dir", hooks.arg(), "--hook-timeout", "60s"]);
    let child = tokio::process::Command::from(hotswap_command(&args))
        .kill_on_drop(true)
        .spawn()
        .expect("spawning pg-hotswap");
    let pid = child.id().unwrap();
    let started = Instant::now();
    while !hooks.events().iter().any(|e| e == "on-before-cutover") {
        assert!(started.elapsed() < Duration::from_secs(90), "never asked");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let t = Instant::now();
    let status = std::process::Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = tokio::time::timeout(Duration::from_secs(90), child.wait_with_output())
        .await
        .expect("pg-hotswap did not finish")
        .unwrap();
    let took = t.elapsed();
    assert_exit(&out, 130);
    assert!(took < Duration::from_secs(15), "exit took {took:?}");
    let runs = hooks.runs();
    let last = runs.last().unwrap();
    assert_eq!(var(last, "PGHOTSWAP_EVENT"), "on-failure", "{runs:?}");
    assert_eq!(var(last, "PGHOTSWAP_EXIT_CODE"), "130");
}

/// A hook printing an escape sequence (colour) with stderr not a terminal: the log has no
/// byte 0x1b (docs/operations.md, "The log in a file"); the sequence is shown as `\x1b`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hooks_escape_codes_do_not_reach_a_log_file() {
    let (db, _client) = setup("hooks_escape_codes", None).await;
    let hooks = HookDir::recording("escape_codes");
    hooks.script("on-start", "printf '\\033[31mred\\033[0m\\r\\n'");
    let out = hotswap_async(&run_args(&db, &["--hooks-dir", hooks.arg()])).await;
    assert_exit(&out, 0);
    assert!(!out.stderr.contains(&0x1b), "{}", describe(&out));
    assert!(
        all_output(&out).contains("hook on-start: \\x1b[31mred\\x1b[0m"),
        "{}",
        describe(&out)
    );
}

/// `PGHOTSWAP_TABLE` is the table as `--table` gave it, so a hook can hand it back to another
/// command (`abort --table "$PGHOTSWAP_TABLE"`); a mixed-case name in its human form (`App.Big T`)
/// was refused there (found by a fresh tester).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_table_in_the_hooks_environment_is_the_one_given() {
    let db = TestDb::new("hooks_table_as_given").await;
    let client = db.client().await;
    client
        .batch_execute(
            r#"CREATE SCHEMA "App"; CREATE TABLE "App"."Big T" (id int PRIMARY KEY, v text NOT NULL);
               INSERT INTO "App"."Big T" SELECT i, i::text FROM generate_series(1, 3000) i;"#,
        )
        .await
        .unwrap();
    let hooks = HookDir::recording("table_as_given");
    let table = r#""App"."Big T""#;
    let out = hotswap_async(&[
        "run",
        "--dsn",
        &db.conninfo,
        "--table",
        table,
        "--chunk-rows",
        "1000",
        "--hooks-dir",
        hooks.arg(),
    ])
    .await;
    assert_exit(&out, 0);
    let runs = hooks.runs();
    assert!(runs.len() >= 4, "{runs:?}");
    for r in &runs {
        assert_eq!(var(r, "PGHOTSWAP_TABLE"), table, "{r:?}");
    }
}
