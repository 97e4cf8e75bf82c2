//! Pacing of a running run: the `governor` (pause, throttles, lag, windows, the operator's
//! requests), low-traffic `window`s, the read `probe` that measures what the run costs the
//! application, and what the governor tells outside the run (issue 19): the operator's `hooks`
//! and the Prometheus `metrics` file.

pub mod governor;
pub mod hooks;
pub mod metrics;
pub mod probe;
pub mod window;
