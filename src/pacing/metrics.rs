//! `--metrics-file` (issue 19): the run's gauges and counters in the Prometheus text exposition
//! format, for node_exporter's textfile collector — rows and bytes copied, chunks done and
//! planned, the replay backlog, the phase (a labelled gauge), swap lock attempts and the
//! longest lock, what holds the run (pause, throttle, window, cut-over hook), the replication
//! lag, and when the file was written. The governor writes it every few seconds from the
//! figures it reads anyway.
//!
//! Invariant kept here: the file is replaced atomically (written to a temporary file in the
//! same directory, then renamed over it), so the collector never reads half a file; every
//! sample line is `name{labels} value` with its label values escaped.

use crate::state::{Phase, RunFigures};
use std::fmt::Write as _;
use std::path::Path;

/// What the governor knows of the run besides its recorded figures.
#[derive(Clone, Debug, Default)]
pub struct Live {
    pub run_id: i64,
    pub backlog: Option<i64>,
    pub paused: bool,
    pub throttled: bool,
    pub window_closed: bool,
    pub waiting_start: bool,
    /// Times `on-before-cutover` postponed the swap.
    pub cutover_postponed: u64,
    /// Seconds since the Unix epoch.
    pub now: f64,
}

/// A label value as the exposition format wants it: backslash, double quote and newline escaped.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The metrics file's text.
pub fn render(f: &RunFigures, live: &Live) -> String {
    let labels = format!("table=\"{}\",run_id=\"{}\"", escape(&f.table), live.run_id);
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, samples: &[(Option<String>, f64)]| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for (extra, v) in samples {
            let l = match extra {
                Some(e) => format!("{labels},{e}"),
                None => labels.clone(),
            };
            let _ = writeln!(out, "{name}{{{l}}} {v}");
        }
    };
    let one = |v: f64| [(None, v)];
    let flag = |b: bool| if b { 1.0 } else { 0.0 };
    metric(
        "pghotswap_rows_copied_total",
        "counter",
        "Rows copied into the new table by the run.",
        &one(f.rows_copied as f64),
    );
    metric(
        "pghotswap_bytes_copied_total",
        "counter",
        "Bytes of COPY data copied into the new table by the run.",
        &one(f.bytes_copied as f64),
    );
    metric(
        "pghotswap_chunks_done",
        "gauge",
        "Copy chunks done.",
        &one(f.chunks_done as f64),
    );
    metric(
        "pghotswap_chunks_total",
        "gauge",
        "Copy chunks planned.",
        &one(f.chunks_total as f64),
    );
    if let Some(b) = live.backlog {
        metric(
            "pghotswap_replay_backlog",
            "gauge",
            "Captured changes waiting to be replayed (estimated from the change log's key).",
            &one(b as f64),
        );
    }
    let phases: Vec<(Option<String>, f64)> = Phase::ALL
        .iter()
        .map(|p| {
            (
                Some(format!("phase=\"{}\"", p.as_str())),
                flag(p.as_str() == f.phase),
            )
        })
        .collect();
    metric(
        "pghotswap_phase",
        "gauge",
        "1 for the phase the run is in, 0 for the others.",
        &phases,
    );
    metric(
        "pghotswap_lock_attempts_total",
        "counter",
        "Attempts to take the swap's ACCESS EXCLUSIVE lock (lock_timeout each).",
        &one(f.lock_attempts as f64),
    );
    metric(
        "pghotswap_lock_longest_seconds",
        "gauge",
        "Longest time the swap held its ACCESS EXCLUSIVE lock.",
        &one(f.longest_lock_ms.unwrap_or(0.0) / 1000.0),
    );
    metric(
        "pghotswap_paused",
        "gauge",
        "1 while the operator has paused the run.",
        &one(flag(live.paused)),
    );
    metric(
        "pghotswap_throttled",
        "gauge",
        "1 while lag, active sessions or the throttle query hold copy and replay.",
        &one(flag(live.throttled)),
    );
    metric(
        "pghotswap_window_closed",
        "gauge",
        "1 while outside every --window (copy and swap wait).",
        &one(flag(live.window_closed)),
    );
    metric(
        "pghotswap_waiting_start",
        "gauge",
        "1 while waiting for --start-at.",
        &one(flag(live.waiting_start)),
    );
    metric(
        "pghotswap_cutover_postponed_total",
        "counter",
        "Times the on-before-cutover hook postponed the swap.",
        &one(live.cutover_postponed as f64),
    );
    if let Some(l) = f.lag_secs {
        metric(
            "pghotswap_replication_lag_seconds",
            "gauge",
            "Replication lag last measured for --max-lag.",
            &one(l),
        );
    }
    metric(
        "pghotswap_last_update_timestamp_seconds",
        "gauge",
        "When this file was written (Unix time); stale while the process is gone.",
        &one(live.now.floor()),
    );
    out
}

/// Replaces `path` with `text` atomically: a temporary file next to it, then a rename.
pub async fn write_atomic(path: &Path, text: &str) -> std::io::Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "metrics".into());
    // A dot name: node_exporter reads only *.prom files, so it never sees the temporary one.
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    tokio::fs::write(&tmp, text).await?;
    tokio::fs::rename(&tmp, path).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_sample_line_is_name_labels_value() {
        let f = RunFigures {
            table: "app.\"we\\ird\"".into(),
            phase: "copy".into(),
            rows_copied: 1234,
            chunks_done: 2,
            chunks_total: 5,
            ..RunFigures::default()
        };
        let text = render(
            &f,
            &Live {
                run_id: 7,
                backlog: Some(10),
                paused: true,
                ..Live::default()
            },
        );
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (name, rest) = line.split_once('{').expect(line);
            assert!(name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
            let (labels, value) = rest.rsplit_once("} ").expect(line);
            assert!(labels.contains("run_id=\"7\""), "{line}");
            value.parse::<f64>().expect(line);
        }
        assert!(text.contains("table=\"app.\\\"we\\\\ird\\\"\""), "{text}");
        assert!(text.contains("pghotswap_rows_copied_total{table="));
        assert!(text.contains("phase=\"copy\"} 1\n"));
        assert!(text.contains("phase=\"swap\"} 0\n"));
        assert!(text.contains("pghotswap_paused{table=\"app.\\\"we\\\\ird\\\"\",run_id=\"7\"} 1\n"));
        assert!(text.contains("pghotswap_replay_backlog{"));
    }

    #[tokio::test]
    async fn the_file_is_replaced_whole() {
        let d = std::env::temp_dir().join(format!("pghotswap-metrics-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let p = d.join("run.prom");
        write_atomic(&p, "a 1\n").await.unwrap();
        write_atomic(&p, "b 2\n").await.unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "b 2\n");
        assert_eq!(
            std::fs::read_dir(&d).unwrap().count(),
            1,
            "no temporary left"
        );
        let _ = std::fs::remove_dir_all(&d);
    }
}
