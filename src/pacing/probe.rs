//! The read probe: how long a trivial read of the table takes, measured from a separate session
//! every 100 ms for the whole run, into an HDR histogram — the evidence, in the final report,
//! of what the run cost the application's reads (a read that waits for the swap's lock shows up
//! here as a slow one). The probe waits as long as the application would: no lock_timeout.

use crate::db::conn::{self, ConnSpec};
use crate::db::ident::QualifiedName;
use crate::error::Result;
use hdrhistogram::Histogram;
use serde::Serialize;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const INTERVAL: Duration = Duration::from_millis(100);

#[derive(Clone, Debug, Default, Serialize)]
pub struct ProbeReport {
    pub reads: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// Reads that failed (the table renamed under a cached plan, a lost connection...).
    pub errors: u64,
}

pub struct Probe {
    stop: Arc<AtomicBool>,
    handle: tokio::task::JoinHandle<(Histogram<u64>, u64)>,
}

/// Starts probing `table` (by name, so after the swap it reads the new table).
pub async fn start(spec: &ConnSpec, table: &QualifiedName) -> Result<Probe> {
    let mut client = conn::connect(spec, "probe").await?;
    crate::db::locking::unbounded(&client).await?;
    let spec = spec.clone();
    let sql = format!("SELECT 1 FROM {table} LIMIT 1");
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let handle = tokio::spawn(async move {
        let mut hist =
            Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).expect("histogram bounds");
        let mut errors = 0;
        while !flag.load(Ordering::Relaxed) {
            if client.is_closed() {
                // Its session was lost (issue 20): count the miss and open another.
                if let Ok(c) = conn::connect(&spec, "probe").await {
                    if crate::db::locking::unbounded(&c).await.is_ok() {
                        client = c;
                    }
                }
            }
            let started = Instant::now();
            // Simple protocol: no prepared statement to go stale when the table is swapped.
            match client.simple_query(&sql).await {
                Ok(_) => {
                    let us = started.elapsed().as_micros().max(1) as u64;
                    let _ = hist.record(us.min(3_600_000_000));
                }
                Err(_) => errors += 1,
            }
            tokio::time::sleep(INTERVAL).await;
        }
        (hist, errors)
    });
    Ok(Probe { stop, handle })
}

impl Probe {
    pub async fn stop(self) -> ProbeReport {
        self.stop.store(true, Ordering::Relaxed);
        match self.handle.await {
            Ok((h, errors)) => ProbeReport {
                reads: h.len(),
                p50_ms: h.value_at_quantile(0.5) as f64 / 1000.0,
                p99_ms: h.value_at_quantile(0.99) as f64 / 1000.0,
                max_ms: h.max() as f64 / 1000.0,
                errors,
            },
            Err(_) => ProbeReport::default(),
        }
    }
}
