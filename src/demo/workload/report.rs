//! What the writers did: committed transactions by kind, errors, client-side latency
//! (a histogram), merged over the writers. Part of the workload (`super`).

use super::OpKind;
use hdrhistogram::Histogram;
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// What the writers did.
#[derive(Debug)]
pub struct WorkloadReport {
    /// Committed transactions.
    pub transactions: u64,
    /// Error messages (each names the writer, the kind of transaction and the key); at most
    /// [`MAX_KEPT_ERRORS`] per writer are kept.
    pub errors: Vec<String>,
    /// All errors, including those not kept in `errors`.
    pub error_count: u64,
    /// Latency of committed transactions as seen by the client, in microseconds.
    pub latency: Histogram<u64>,
    /// Committed transactions per kind.
    pub by_kind: BTreeMap<OpKind, u64>,
    /// From [`start`] to the end of [`Workload::stop`].
    pub elapsed: Duration,
}

impl WorkloadReport {
    pub(super) fn empty() -> WorkloadReport {
        WorkloadReport {
            transactions: 0,
            errors: Vec::new(),
            error_count: 0,
            latency: new_histogram(),
            by_kind: BTreeMap::new(),
            elapsed: Duration::ZERO,
        }
    }

    pub(super) fn merge(&mut self, w: WriterReport) {
        self.transactions += w.transactions;
        self.errors.extend(w.errors);
        self.error_count += w.error_count;
        // Same bounds on both sides: `add` cannot fail.
        let _ = self.latency.add(&w.latency);
        for (kind, n) in w.by_kind {
            *self.by_kind.entry(kind).or_default() += n;
        }
    }

    pub fn p50_ms(&self) -> f64 {
        self.latency.value_at_quantile(0.50) as f64 / 1000.0
    }

    pub fn p99_ms(&self) -> f64 {
        self.latency.value_at_quantile(0.99) as f64 / 1000.0
    }

    pub fn max_ms(&self) -> f64 {
        self.latency.max() as f64 / 1000.0
    }
}

impl fmt::Display for WorkloadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} transactions in {:.1}s, {} errors, latency p50 {:.2} ms p99 {:.2} ms max {:.2} ms",
            self.transactions,
            self.elapsed.as_secs_f64(),
            self.error_count,
            self.p50_ms(),
            self.p99_ms(),
            self.max_ms()
        )?;
        let kinds: Vec<String> = self
            .by_kind
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        if !kinds.is_empty() {
            write!(f, " ({})", kinds.join(", "))?;
        }
        Ok(())
    }
}

pub(super) fn new_histogram() -> Histogram<u64> {
    // 1 us .. 1 h, 3 significant digits.
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")
}

pub(super) struct WriterReport {
    pub(super) transactions: u64,
    pub(super) errors: Vec<String>,
    pub(super) error_count: u64,
    pub(super) latency: Histogram<u64>,
    pub(super) by_kind: BTreeMap<OpKind, u64>,
}
