//! Issue 19, "Output that reads well in a file": with stderr redirected to a file, a run with
//! lock retries writes one line per event and no escape codes (`src/output/ui.rs`, the tracing
//! set-up in `src/main.rs`). The log used to carry ANSI colour codes on the tracing `WARN` lines
//! and to say each failed swap attempt twice (a tracing `WARN` line and the plain line).
//!
//! How the swap is made to retry: another session holds ACCESS SHARE on the table in an idle
//! transaction (no snapshot, so the swap does not wait for it as an old snapshot), which the
//! swap's ACCESS EXCLUSIVE conflicts with and nothing else of the run does; with
//! `--lock-timeout 100ms --max-lock-attempts 3` the run tries three times and stops with exit 4.

use std::fs::File;
use std::process::Stdio;
use std::time::Duration;

use pg_hotswap::demo::workload::{create_tables, TableSpec};
use serde_json::Value;

use crate::harness::{hotswap_command, table_arg, TestDb};

const ATTEMPTS: usize = 3;

/// What a run with stderr redirected to a file left there, and its exit code.
struct Logged {
    code: Option<i32>,
    stderr: Vec<u8>,
}

impl Logged {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

/// Runs `pg-hotswap run` on a fresh table while another session holds ACCESS SHARE on it, with
/// stderr written to a file (not a pipe, not a terminal); `RUST_LOG` and `NO_COLOR` removed so
/// that the defaults are what is tested.
async fn run_with_lock_retries(name: &str, extra: &[&str]) -> Logged {
    let db = TestDb::new(name).await;
    let client = db.client().await;
    let spec = TableSpec::simple("public", name);
    create_tables(&client, &spec, 2_000).await.unwrap();
    let table = table_arg(&spec.table);
    let blocker = db.client().await;
    blocker
        .batch_execute(&format!(
            "BEGIN; LOCK TABLE {} IN ACCESS SHARE MODE",
            spec.table
        ))
        .await
        .unwrap();

    let dir = std::env::temp_dir().join(format!("hs-logfile-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("stderr.log");
    let mut args = vec![
        "run",
        "--dsn",
        &db.conninfo,
        "--table",
        &table,
        "--alter",
        "ALTER COLUMN id TYPE bigint",
        "--lock-timeout",
        "100ms",
        "--max-lock-attempts",
        "3",
        "--retry-delay",
        "100ms",
    ];
    args.extend_from_slice(extra);
    let mut cmd = hotswap_command(&args);
    cmd.env_remove("RUST_LOG")
        .env_remove("NO_COLOR")
        .stderr(Stdio::from(File::create(&path).unwrap()));
    let child = tokio::process::Command::from(cmd)
        .kill_on_drop(true)
        .spawn()
        .expect("spawning pg-hotswap");
    let out = tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
        .await
        .expect("pg-hotswap did not finish within 120 s")
        .expect("waiting for pg-hotswap");
    blocker.batch_execute("ROLLBACK").await.unwrap();
    let stderr = std::fs::read(&path).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let logged = Logged {
        code: out.status.code(),
        stderr,
    };
    assert_eq!(
        logged.code,
        Some(4),
        "the swap should have run out of lock attempts (exit 4)\n--- stdout ---\n{}\n--- stderr file ---\n{}",
        String::from_utf8_lossy(&out.stdout),
        logged.text()
    );
    logged
}

/// A text line without its leading timestamp (`2026-11-21T15:06:11Z`, or tracing's with
/// microseconds), so that the same event said twice in the same second compares equal.
fn without_timestamp(line: &str) -> &str {
    match line.split_once(char::is_whitespace) {
        Some((first, rest)) if first.len() >= 20 && first.as_bytes()[4] == b'-' => rest.trim(),
        _ => line,
    }
}

#[tokio::test]
async fn a_log_in_a_file_has_one_plain_line_per_event() {
    let logged = run_with_lock_retries("logfile_text", &[]).await;
    let text = logged.text();
    assert!(
        !logged.stderr.contains(&0x1b),
        "the log in a file carries escape codes:\n{}",
        text.escape_debug()
    );
    let mut seen = std::collections::HashSet::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        assert!(
            seen.insert(without_timestamp(line)),
            "a line is repeated: {line}\n--- stderr file ---\n{text}"
        );
    }
    // Each failed attempt is one event, said once: the line naming the session that holds the
    // lock (the final error names it too).
    let attempt_lines: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("holds AccessShareLock") && !l.starts_with("error:"))
        .collect();
    assert_eq!(
        attempt_lines.len(),
        ATTEMPTS,
        "each of the {ATTEMPTS} swap attempts should be one line:\n{}\n--- stderr file ---\n{text}",
        attempt_lines.join("\n")
    );
    for (i, line) in attempt_lines.iter().enumerate() {
        assert!(
            line.contains(&format!("swap attempt {}/{ATTEMPTS}", i + 1)),
            "line {} of the attempts: {line}",
            i + 1
        );
    }
}

#[tokio::test]
async fn a_json_log_in_a_file_is_one_object_per_line() {
    let logged = run_with_lock_retries("logfile_json", &["--log-format", "json"]).await;
    let text = logged.text();
    assert!(!logged.stderr.contains(&0x1b), "{}", text.escape_debug());
    let mut attempts = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not one JSON object per line ({e}): {line}\n{text}"));
        assert!(v.is_object(), "{line}");
        for key in ["timestamp", "level", "message"] {
            assert!(v.get(key).is_some(), "no {key}: {line}");
        }
        // A failed attempt names the session holding the lock (so does the final error).
        let message = v["message"].as_str().unwrap_or_default();
        if message.contains("holds AccessShareLock") && v["level"] != "ERROR" {
            attempts.push((v["level"].clone(), v["attempt"].as_u64()));
        }
    }
    let expected: Vec<(Value, Option<u64>)> = (1..=ATTEMPTS as u64)
        .map(|i| (Value::from("WARN"), Some(i)))
        .collect();
    assert_eq!(
        attempts, expected,
        "one WARN object, with its attempt number, per swap attempt:\n{text}"
    );
    let last: Value = serde_json::from_str(text.lines().last().unwrap_or("{}")).unwrap();
    assert_eq!(last["level"], "ERROR", "{text}");
    assert_eq!(last["exit_code"], 4, "{text}");
}

/// `without_timestamp` strips both timestamp shapes and nothing else.
#[test]
fn timestamps_are_stripped() {
    assert_eq!(
        without_timestamp("2026-11-21T15:06:11Z  copied 5 rows"),
        "copied 5 rows"
    );
    assert_eq!(
        without_timestamp("2026-11-21T15:06:11.123456Z  WARN x: y"),
        "WARN x: y"
    );
    assert_eq!(without_timestamp("error: boom"), "error: boom");
    assert_eq!(without_timestamp("  state: x"), "  state: x");
}
