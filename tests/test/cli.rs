//! The binary's own surface (issue 8): completion scripts and the man page generated from the
//! flags, and `--log-format json`, where every line on stderr is one JSON object.

use crate::harness::{assert_exit, describe, hotswap_async, TestDb};

#[tokio::test]
async fn completions_and_man_page_name_every_subcommand() {
    for shell in ["bash", "zsh", "fish"] {
        let out = hotswap_async(&["completions", shell]).await;
        assert_exit(&out, 0);
        let script = String::from_utf8_lossy(&out.stdout);
        for sub in [
            "run", "plan", "resume", "abort", "status", "revert", "finish",
        ] {
            assert!(script.contains(sub), "{shell} completions lack {sub}");
        }
    }
    let out = hotswap_async(&["man"]).await;
    assert_exit(&out, 0);
    let page = String::from_utf8_lossy(&out.stdout);
    assert!(page.contains(".TH pg-hotswap 1"), "{page}");
    for sub in [
        "run", "plan", "resume", "abort", "status", "revert", "finish",
    ] {
        assert!(page.contains(&format!("pg\\-hotswap\\-{sub}(1)")), "{page}");
    }
    let out = hotswap_async(&["man", "plan"]).await;
    assert_exit(&out, 0);
    assert!(String::from_utf8_lossy(&out.stdout).contains("\\-\\-sample\\-rows"));
    let out = hotswap_async(&["completions", "klingon"]).await;
    assert_exit(&out, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_log_lines_are_json_objects() {
    let db = TestDb::new("json_log_lines").await;
    let client = db.client().await;
    client
        .batch_execute(
            "CREATE TABLE t (id int PRIMARY KEY, v text);
             INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 5000) g;",
        )
        .await
        .unwrap();
    let out = hotswap_async(&[
        "run",
        "--dsn",
        &db.conninfo,
        "--table",
        "t",
        "--alter",
        "ALTER COLUMN id TYPE bigint",
        "--log-format",
        "json",
        "-v",
    ])
    .await;
    assert_exit(&out, 0);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let mut messages = Vec::new();
    let mut levels = std::collections::BTreeSet::new();
    for line in stderr.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {line}\n{}", describe(&out)));
        assert!(v["timestamp"].is_string(), "{line}");
        levels.insert(v["level"].as_str().unwrap_or("").to_string());
        messages.push(v["message"].as_str().unwrap_or("").to_string());
    }
    // The operator's lines and the -v diagnostics (tracing) both came as JSON.
    assert!(
        messages.iter().any(|m| m.starts_with("swapped:")),
        "{messages:#?}"
    );
    assert!(
        levels.contains("INFO") && levels.contains("DEBUG"),
        "{levels:?}"
    );

    // Errors too: one object with the state, the next step and the exit code.
    let out = hotswap_async(&[
        "run",
        "--dsn",
        &db.conninfo,
        "--table",
        "no_such_table",
        "--log-format",
        "json",
    ])
    .await;
    let last = String::from_utf8_lossy(&out.stderr)
        .lines()
        .last()
        .unwrap_or("")
        .to_string();
    let v: serde_json::Value = serde_json::from_str(&last).expect("the error is a JSON line");
    assert_eq!(v["level"], "ERROR", "{last}");
    assert_eq!(
        v["exit_code"].as_i64(),
        out.status.code().map(i64::from),
        "{last}"
    );
    assert!(
        v["message"].as_str().unwrap().contains("no_such_table"),
        "{last}"
    );
}
